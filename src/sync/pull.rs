//! Applying a page of remote changes to a mirrored calendar: provider items
//! stored, each touched series rebuilt into one iCalendar object, events put
//! or deleted, and the cursor saved — all in one atomic batch, so a crash
//! mid-page replays the page (every step is idempotent) and never leaves
//! half of it.

use std::collections::{BTreeMap, HashSet};

use crate::model::account::SkippedItem;
use crate::model::{Calendar, RemoteRef};
use crate::store::db::{DbError, DbResult, EventOp, EventWrite, OpOutcome, Precondition};
use crate::store::{Batch, Db};
use crate::upstream::provider::{Cursor, MapError, MappedSeries, RemoteChange};

/// Builds one object from a series' items (provider-specific mapping).
pub type Mapper<'a> = dyn Fn(&str, &[(String, Vec<u8>)]) -> Result<MappedSeries, MapError> + 'a;

/// A piece of a series: its id and new JSON (`None`: removed).
type ItemChange = (String, Option<Vec<u8>>);

/// What a page does to one series.
enum SeriesUpdate {
    /// Some pieces changed; the rest stay as stored.
    Patch(Vec<ItemChange>),
    /// Every piece, fetched whole.
    Replace(Vec<(String, Vec<u8>)>),
}

/// What a page did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageOutcome {
    pub stored: u64,
    pub deleted: u64,
    pub unchanged: u64,
}

/// The href a series is stored under: its existing one, or one derived from
/// the provider id (only characters safe in a URL path).
pub fn href_for(db: &Db, cal: &Calendar, series: &str) -> DbResult<String> {
    if let Some(h) = db.href_for_remote(&cal.id, series)? {
        return Ok(h);
    }
    let safe: String = series
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    let digest = &crate::crypto::sha256_hex(series.as_bytes())[..8];
    Ok(format!("{safe}-{digest}.ics"))
}

/// Apply one page. `seen` collects the series present (for the orphan
/// sweep after a full pass); `skipped` collects items that could not be
/// stored, with the reason.
pub fn apply_page(
    db: &Db,
    cal: &Calendar,
    changes: &[RemoteChange],
    cursor: &Cursor,
    mapper: &Mapper<'_>,
    seen: &mut HashSet<String>,
    skipped: &mut Vec<SkippedItem>,
) -> DbResult<PageOutcome> {
    // Series touched by this page, in order, with their item changes.
    let mut touched: BTreeMap<String, SeriesUpdate> = BTreeMap::new();
    let mut removed_series: Vec<String> = Vec::new();
    for ch in changes {
        match ch {
            RemoteChange::Upsert { series, item, json } => {
                seen.insert(series.clone());
                patch(&mut touched, series).push((item.clone(), Some(json.clone())));
            }
            RemoteChange::ReplaceSeries { series, items } if items.is_empty() => {
                touched.remove(series);
                removed_series.push(series.clone());
            }
            RemoteChange::ReplaceSeries { series, items } => {
                seen.insert(series.clone());
                touched.insert(series.clone(), SeriesUpdate::Replace(items.clone()));
            }
            // Resolved by the engine before the page is applied.
            RemoteChange::SeriesTouched { .. } => {}
            RemoteChange::Remove { series, item } if item == series => {
                touched.remove(series);
                removed_series.push(series.clone());
            }
            RemoteChange::Remove { series, item } => {
                patch(&mut touched, series).push((item.clone(), None));
            }
            RemoteChange::RemoveUnknown { item } => {
                if db.href_for_remote(&cal.id, item)?.is_some() {
                    touched.remove(item);
                    removed_series.push(item.clone());
                }
            }
            RemoteChange::Skip { item, reason } => skipped.push(SkippedItem {
                calendar: cal.name.clone(),
                remote_id: item.clone(),
                reason: reason.clone(),
            }),
        }
    }
    let mut tail = Batch::new();
    let mut ops = Vec::new();
    for series in &removed_series {
        seen.remove(series);
        let old: Vec<String> = db
            .remote_items(&cal.id, series)?
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        tail.extend(db.item_owner_removal(&cal.id, &old));
        tail.extend(db.remote_items_removal(&cal.id, series)?);
        if let Some(href) = db.href_for_remote(&cal.id, series)? {
            ops.push(EventOp::Delete(href, Precondition::None));
        }
    }
    for (series, update) in &touched {
        let mut items: BTreeMap<String, Vec<u8>> =
            db.remote_items(&cal.id, series)?.into_iter().collect();
        match update {
            SeriesUpdate::Patch(item_changes) => {
                for (item, json) in item_changes {
                    match json {
                        Some(j) => {
                            tail.extend(Db::remote_item_row(&cal.id, series, item, j));
                            items.insert(item.clone(), j.clone());
                        }
                        None => {
                            tail.extend(db.remote_item_removal_row(&cal.id, series, item));
                            items.remove(item);
                        }
                    }
                }
            }
            SeriesUpdate::Replace(fresh) => {
                let old: Vec<String> = items.keys().cloned().collect();
                tail.extend(db.item_owner_removal(&cal.id, &old));
                tail.extend(db.remote_items_removal(&cal.id, series)?);
                items.clear();
                for (item, json) in fresh {
                    tail.extend(Db::remote_item_row(&cal.id, series, item, json));
                    tail.extend(Db::item_owner_row(&cal.id, item, series));
                    items.insert(item.clone(), json.clone());
                }
            }
        }
        let list: Vec<(String, Vec<u8>)> = items.into_iter().collect();
        let mapped = match mapper(series, &list) {
            Ok(m) => m,
            Err(e) => {
                // Exceptions can arrive before their master: not an error
                // until the pass ends without it.
                if !e.0.contains("has not been received") {
                    skipped.push(SkippedItem {
                        calendar: cal.name.clone(),
                        remote_id: series.clone(),
                        reason: e.0,
                    });
                }
                continue;
            }
        };
        for w in &mapped.warnings {
            skipped.push(SkippedItem {
                calendar: cal.name.clone(),
                remote_id: series.clone(),
                reason: w.clone(),
            });
        }
        let href = href_for(db, cal, series)?;
        ops.push(EventOp::Put(
            EventWrite {
                calendar: cal.id.clone(),
                href,
                uid: mapped.uid,
                start: mapped.start,
                end: mapped.end,
                recurring: mapped.recurring,
                body: mapped.ics,
                remote: Some(RemoteRef {
                    id: series.clone(),
                    etag: mapped.etag,
                    updated: mapped.updated,
                }),
                id: None,
                last_modified: mapped.updated,
            },
            Precondition::None,
        ));
    }
    tail.extend(Db::sync_state_row(&cal.id, cursor));
    let results = db.apply_events_with(&cal.id, ops, &mut |_| Ok(Batch::new()), tail)?;
    let mut out = PageOutcome::default();
    for r in results {
        match r {
            Ok(OpOutcome::Put(p)) if p.unchanged => out.unchanged += 1,
            Ok(OpOutcome::Put(_)) => out.stored += 1,
            Ok(OpOutcome::Deleted(_)) => out.deleted += 1,
            Err(DbError::UidConflict { uid, href }) => skipped.push(SkippedItem {
                calendar: cal.name.clone(),
                remote_id: uid.clone(),
                reason: format!("another event in this calendar ({href}) already has UID {uid}"),
            }),
            Err(DbError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// After a full pass: delete mirrored events whose series the provider no
/// longer has. Events without a remote reference (local writes waiting for
/// the outbox) are kept.
pub fn sweep_orphans(db: &Db, cal: &Calendar, seen: &HashSet<String>) -> DbResult<u64> {
    let mut ops = Vec::new();
    let mut tail = Batch::new();
    for meta in db.events_of_calendar(&cal.id)? {
        if let Some(r) = &meta.remote {
            if !seen.contains(&r.id) {
                tail.extend(db.remote_items_removal(&cal.id, &r.id)?);
                ops.push(EventOp::Delete(
                    meta.href.clone(),
                    Precondition::IfMatch(meta.etag.clone()),
                ));
            }
        }
    }
    if ops.is_empty() {
        return Ok(0);
    }
    let results = db.apply_events_with(&cal.id, ops, &mut |_| Ok(Batch::new()), tail)?;
    Ok(results.iter().filter(|r| r.is_ok()).count() as u64)
}

fn patch<'a>(
    touched: &'a mut BTreeMap<String, SeriesUpdate>,
    series: &str,
) -> &'a mut Vec<ItemChange> {
    let entry = touched
        .entry(series.to_string())
        .or_insert_with(|| SeriesUpdate::Patch(Vec::new()));
    if let SeriesUpdate::Replace(items) = entry {
        // A piece after a whole fetch in the same page: patch on top of it.
        let list = items.drain(..).map(|(i, j)| (i, Some(j))).collect();
        *entry = SeriesUpdate::Patch(list);
    }
    match entry {
        SeriesUpdate::Patch(v) => v,
        SeriesUpdate::Replace(_) => unreachable!("converted above"),
    }
}
