//! Applying a page of remote changes to a mirrored calendar: provider items
//! stored, each touched series rebuilt into one iCalendar object, events put
//! or deleted, and the cursor saved — all in one atomic batch, so a crash
//! mid-page replays the page (every step is idempotent) and never leaves
//! half of it.

use std::collections::{BTreeMap, HashSet};

use crate::model::account::SkippedItem;
use crate::model::outbox::{ConflictRecord, Kept, OutboxEntry, OutboxOp};
use crate::model::{AccountId, CalendarSource, EventId, EventMeta};
use crate::model::{Calendar, RemoteRef};
use crate::store::db::{DbError, DbResult, EventOp, EventWrite, OpOutcome, Precondition};
use crate::store::{Batch, Db};
use crate::sync::outbox;
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
    let mut twins: Vec<Twin> = Vec::new();
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
            if let Some(local) = db.event(&cal.id, &href)? {
                if db.outbox_pending(&cal.id, &local.id)?.is_some() {
                    // Changed here, deleted upstream: the change wins; the
                    // outbox writes it back as a new remote event.
                    tail.extend(conflict(cal, &local, Kept::Local, "deleted upstream while changed here: the change was kept and is written back", None, None)?);
                    continue;
                }
            }
            ops.push(EventOp::Delete(href, Precondition::None));
        } else {
            remote_delete_of_twin(db, cal, series)?;
        }
    }
    for (series, update) in &touched {
        let mut items: BTreeMap<String, Vec<u8>> =
            db.remote_items(&cal.id, series)?.into_iter().collect();
        // The series' etag is its master's: an exception that changed on
        // its own (moved, cancelled, edited occurrence) leaves it as it
        // was, so the etag alone cannot say "nothing changed".
        let mut pieces = Pieces::default();
        match update {
            SeriesUpdate::Patch(item_changes) => {
                for (item, json) in item_changes {
                    if item != series {
                        pieces.note(items.get(item).map(Vec::as_slice), json.as_deref());
                    }
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
                // Graph: an occurrence moved, edited or cancelled leaves the
                // series master (and its changeKey) as it was.
                for (item, json) in fresh {
                    if item != series {
                        pieces.note(items.get(item).map(Vec::as_slice), Some(json));
                    }
                }
                let present: HashSet<&str> = fresh.iter().map(|(i, _)| i.as_str()).collect();
                for (item, old) in &items {
                    if item != series && !present.contains(item.as_str()) {
                        pieces.note(Some(old), None);
                    }
                }
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
        let href = match reconcile(db, cal, series, &mapped, pieces, &mut tail, &mut twins)? {
            Decision::Skip => continue,
            Decision::Delete(href) => {
                ops.push(EventOp::Delete(href, Precondition::None));
                continue;
            }
            Decision::Put(href) => href,
        };
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
    for t in twins {
        apply_twin(db, cal, t)?;
    }
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

/// What to do with a mapped series.
enum Decision {
    /// Nothing: calbridge already has this version (an echo of its own
    /// write, or an unchanged item), or the local version won a conflict.
    Skip,
    /// Store it under this href.
    Put(String),
    /// Remove the local copy under this href.
    Delete(String),
}

/// The appointment (in the staff member's native calendar) whose upstream
/// copy is this series of their primary calendar, if any.
fn twin_by_remote(db: &Db, cal: &Calendar, series: &str) -> DbResult<Option<EventMeta>> {
    if !cal.primary || cal.is_native() {
        return Ok(None);
    }
    let Ok(native) = db.appointments_calendar(&cal.staff) else {
        return Ok(None);
    };
    match db.href_for_remote(&native.id, series)? {
        Some(h) => db.event(&native.id, &h),
        None => Ok(None),
    }
}

/// calbridge's own copy of an event living in another calendar (an
/// appointment written to the primary calendar), seen again upstream.
struct Twin {
    local: EventMeta,
    series: String,
    mapped: MappedSeries,
    pieces: Pieces,
}

/// How a series' pieces other than its master (exceptions, occurrences)
/// compare with what calbridge stored of them.
#[derive(Debug, Default, Clone, Copy)]
struct Pieces {
    /// A piece calbridge had changed or went away: the series changed.
    changed: bool,
    /// A piece calbridge had not seen: a change upstream, or calbridge's
    /// own write of exceptions coming back as the provider keeps them.
    new: bool,
}

impl Pieces {
    fn note(&mut self, old: Option<&[u8]>, new: Option<&[u8]>) {
        match (old, new) {
            (None, Some(_)) => self.new = true,
            (Some(_), None) => self.changed = true,
            (Some(a), Some(b)) if !same_piece(a, b) => self.changed = true,
            _ => {}
        }
    }

    /// Whether the series as mapped is the version calbridge has: the
    /// master's etag is the known one and no piece changed; pieces not
    /// seen before must say what the stored object says of its exceptions.
    fn unchanged(
        &self,
        known: Option<&str>,
        mapped: &MappedSeries,
        stored: impl FnOnce() -> DbResult<Option<Vec<u8>>>,
        zone: Option<&str>,
    ) -> DbResult<bool> {
        if mapped.etag.is_none() || known != mapped.etag.as_deref() || self.changed {
            return Ok(false);
        }
        if !self.new {
            return Ok(true);
        }
        Ok(stored()?.is_some_and(|body| same_exceptions(&body, &mapped.ics, zone)))
    }
}

/// Two versions of one provider piece: by their etags when both carry one
/// (a provider may shape the same version differently in a list and in a
/// single read), else byte for byte.
fn same_piece(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    let tag = |j: &[u8]| -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(j).ok()?;
        ["etag", "@odata.etag"]
            .iter()
            .find_map(|k| v[*k].as_str().map(str::to_string))
    };
    matches!((tag(a), tag(b)), (Some(x), Some(y)) if x == y)
}

/// What an object says about its exceptions, in instants (the same time
/// written in another zone or form is equal): the occurrences excluded or
/// cancelled, and per changed occurrence its start, end and summary.
#[derive(Debug, PartialEq, Eq)]
struct ExceptionShape {
    excluded: std::collections::BTreeSet<i64>,
    changed: BTreeMap<i64, (i64, i64, Option<String>)>,
}

fn exception_shape(ics: &[u8], zone: Option<&str>) -> Option<ExceptionShape> {
    use crate::upstream::google::write::series;
    let cal = crate::ics::parse(ics).ok()?;
    let s = series(&cal, zone, "").ok()?;
    let floating = s.times.floating();
    let at = |m: crate::upstream::google::write::Moment| {
        m.shaped_like(&s.start, floating)
            .instant(floating)
            .timestamp()
    };
    let mut excluded: std::collections::BTreeSet<i64> =
        s.exdates().ok()?.into_iter().map(at).collect();
    let summary =
        |c: &crate::ics::Component| c.prop("SUMMARY").map(|p| p.text_value().trim().to_string());
    let mut changed = BTreeMap::new();
    for o in &s.overrides {
        let rid = at(s.times.of(o, "RECURRENCE-ID").ok()??);
        if o.value("STATUS")
            .is_some_and(|v| v.eq_ignore_ascii_case("CANCELLED"))
        {
            excluded.insert(rid);
            continue;
        }
        let (start, end) = s.times.span(o).ok()?;
        let title = summary(o).or_else(|| summary(s.master));
        changed.insert(
            rid,
            (
                start.instant(floating).timestamp(),
                end.instant(floating).timestamp(),
                title,
            ),
        );
    }
    Some(ExceptionShape { excluded, changed })
}

/// Whether two objects of one series agree on its exceptions (see
/// [`ExceptionShape`]); `false` when either cannot be read.
fn same_exceptions(a: &[u8], b: &[u8], zone: Option<&str>) -> bool {
    match (exception_shape(a, zone), exception_shape(b, zone)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn account_of(cal: &Calendar) -> Option<&AccountId> {
    match &cal.source {
        CalendarSource::Mirrored { account, .. } => Some(account),
        CalendarSource::Native => None,
    }
}

fn conflict(
    cal: &Calendar,
    local: &EventMeta,
    kept: Kept,
    reason: &str,
    lost: Option<&[u8]>,
    remote_modified: Option<i64>,
) -> DbResult<Batch> {
    let Some(account) = account_of(cal) else {
        return Ok(Batch::new());
    };
    Ok(Db::conflict_row(
        account,
        &ConflictRecord {
            at: crate::model::now(),
            calendar: cal.id.clone(),
            href: local.href.clone(),
            uid: local.uid.clone(),
            kept,
            reason: reason.to_string(),
            lost: lost.map(|b| String::from_utf8_lossy(b).into_owned()),
            local_modified: Some(local.last_modified),
            remote_modified,
        },
    ))
}

/// A pending delete of this series' local copy (the local event is gone,
/// the outbox still has to delete it upstream).
fn pending_delete(db: &Db, cal: &Calendar, series: &str) -> DbResult<Option<OutboxEntry>> {
    let Some(account) = account_of(cal) else {
        return Ok(None);
    };
    Ok(db.outbox_of(account)?.into_iter().find(|e| {
        e.target == cal.id
            && e.op == OutboxOp::Delete
            && e.remote.as_ref().is_some_and(|r| r.id == series)
    }))
}

fn reconcile(
    db: &Db,
    cal: &Calendar,
    series: &str,
    mapped: &MappedSeries,
    pieces: Pieces,
    tail: &mut Batch,
    twins: &mut Vec<Twin>,
) -> DbResult<Decision> {
    // calbridge wrote this series: find the local event it came from.
    let origin = mapped
        .origin
        .as_deref()
        .and_then(outbox::parse_marker)
        .map(|(id, _)| EventId(id.to_string()));
    let origin_event = match &origin {
        Some(id) => db.event_by_id(id)?,
        None => None,
    };
    // An appointment calbridge wrote to this (primary) calendar: known by
    // its marker (Google lists extended properties) or by the remote id
    // recorded after the write (Graph's delta does not return them).
    let twin = match &origin_event {
        Some(o) if o.calendar != cal.id => Some(o.clone()),
        Some(_) => None,
        None => twin_by_remote(db, cal, series)?,
    };
    if let Some(t) = twin {
        twins.push(Twin {
            local: t,
            series: series.to_string(),
            mapped: mapped.clone(),
            pieces,
        });
        // A copy imported before the write was recorded goes away.
        if let Some(h) = db.href_for_remote(&cal.id, series)? {
            return Ok(Decision::Delete(h));
        }
        return Ok(Decision::Skip);
    }
    let local = match db.href_for_remote(&cal.id, series)? {
        Some(h) => db.event(&cal.id, &h)?,
        // Written by calbridge, remote id not yet recorded (a crash between
        // the upstream write and recording it).
        None => origin_event,
    };
    let Some(local) = local else {
        if let Some(pending) = pending_delete(db, cal, series)? {
            if pending.remote.as_ref().and_then(|r| r.etag.as_deref()) == mapped.etag.as_deref() {
                // Unchanged upstream: the pending delete goes through.
                return Ok(Decision::Skip);
            }
            // Deleted here, changed upstream: the change wins.
            tail.extend(db.outbox_done_rows(&pending)?);
            let gone = EventMeta {
                id: pending.event.clone(),
                calendar: cal.id.clone(),
                href: pending.href.clone(),
                uid: mapped.uid.clone(),
                etag: String::new(),
                seq: 0,
                start: mapped.start,
                end: mapped.end,
                recurring: mapped.recurring,
                created: 0,
                last_modified: pending.created,
                remote: None,
            };
            tail.extend(conflict(
                cal,
                &gone,
                Kept::Remote,
                "deleted here while changed upstream: the change was kept and the event restored",
                None,
                mapped.updated,
            )?);
            return Ok(Decision::Put(pending.href));
        }
        return Ok(Decision::Put(href_for(db, cal, series)?));
    };
    let known = local.remote.as_ref().and_then(|r| r.etag.as_deref());
    let stored = || db.event_body(&cal.id, &local.href);
    if pieces.unchanged(known, mapped, stored, cal.timezone.as_deref())? {
        // The version calbridge already has (its own write coming back, or
        // an item that did not change): nothing to do, no ETag churn.
        return Ok(Decision::Skip);
    }
    if let Some(pending) = db.outbox_pending(&cal.id, &local.id)? {
        // Changed on both sides since the last sync: the most recent wins.
        let remote_time = mapped.updated.unwrap_or(0);
        if remote_time > local.last_modified {
            let lost = db.event_body(&cal.id, &local.href)?;
            tail.extend(db.outbox_done_rows(&pending)?);
            tail.extend(conflict(
                cal,
                &local,
                Kept::Remote,
                "changed on both sides: the upstream change is newer and was kept",
                lost.as_deref(),
                mapped.updated,
            )?);
            return Ok(Decision::Put(local.href));
        }
        tail.extend(conflict(
            cal,
            &local,
            Kept::Local,
            "changed on both sides: the local change is newer and was kept",
            Some(&mapped.ics),
            mapped.updated,
        )?);
        return Ok(Decision::Skip);
    }
    Ok(Decision::Put(local.href))
}

/// The upstream copy of an appointment came back: record its remote
/// reference, ignore the echo, apply an upstream edit to the appointment,
/// or settle a conflict with a pending local change.
fn apply_twin(db: &Db, primary: &Calendar, t: Twin) -> DbResult<()> {
    let Some(native) = db.calendar(&t.local.calendar)? else {
        return Ok(());
    };
    let Some(local) = db.event(&native.id, &t.local.href)? else {
        return Ok(());
    };
    let remote = RemoteRef {
        id: t.series.clone(),
        etag: t.mapped.etag.clone(),
        updated: t.mapped.updated,
    };
    let known = local.remote.as_ref().and_then(|r| r.etag.as_deref());
    let stored = || db.event_body(&native.id, &local.href);
    if t.pieces
        .unchanged(known, &t.mapped, stored, primary.timezone.as_deref())?
    {
        return Ok(());
    }
    let marker_etag = t
        .mapped
        .origin
        .as_deref()
        .and_then(outbox::parse_marker)
        .map(|(_, e)| e.to_string());
    let pending = db.outbox_pending(&primary.id, &local.id)?;
    if marker_etag.as_deref() == Some(local.etag.as_str())
        && pending.is_none()
        && local.remote.as_ref().map(|r| r.id.as_str()) != Some(t.series.as_str())
    {
        // Our own write, seen before its result was recorded.
        db.set_remote(&native.id, &local.href, remote, Batch::new())?;
        return Ok(());
    }
    let remote_newer = t.mapped.updated.unwrap_or(0) > local.last_modified;
    // Every local change is queued durably until it reaches upstream: with
    // nothing queued, nothing changed here and the upstream edit applies.
    let unchanged_here = pending.is_none();
    if unchanged_here || remote_newer {
        // Edited upstream (and newer): the appointment follows.
        let mut extra = Batch::new();
        if let Some(p) = &pending {
            extra.extend(db.outbox_done_rows(p)?);
            let lost = db.event_body(&native.id, &local.href)?;
            extra.extend(conflict(
                primary,
                &local,
                Kept::Remote,
                "changed on both sides: the upstream change is newer and was kept",
                lost.as_deref(),
                t.mapped.updated,
            )?);
        }
        let w = EventWrite {
            calendar: native.id.clone(),
            href: local.href.clone(),
            uid: local.uid.clone(),
            start: t.mapped.start,
            end: t.mapped.end,
            recurring: t.mapped.recurring,
            body: t.mapped.ics.clone(),
            remote: Some(remote),
            id: None,
            last_modified: t.mapped.updated,
        };
        // No outbox hook: this change came from upstream.
        match db.put_event(w, &Precondition::IfMatch(local.etag.clone()), |_, _| {
            Ok(extra)
        }) {
            Ok(_) | Err(DbError::PreconditionFailed) => {}
            Err(e) => return Err(e),
        }
        return Ok(());
    }
    // The local change is newer: keep it (the outbox overwrites upstream).
    db.commit_rows(conflict(
        primary,
        &local,
        Kept::Local,
        "changed on both sides: the local change is newer and was kept",
        Some(&t.mapped.ics),
        t.mapped.updated,
    )?)
}

/// The upstream copy of an appointment was deleted upstream.
fn remote_delete_of_twin(db: &Db, primary: &Calendar, series: &str) -> DbResult<()> {
    if primary.is_native() {
        return Ok(());
    }
    let Ok(native) = db.appointments_calendar(&primary.staff) else {
        return Ok(());
    };
    let Some(href) = db.href_for_remote(&native.id, series)? else {
        return Ok(());
    };
    let Some(local) = db.event(&native.id, &href)? else {
        return Ok(());
    };
    if db.outbox_pending(&primary.id, &local.id)?.is_some() {
        // Changed here, deleted upstream: the change wins and is written
        // back as a new event.
        return db.commit_rows(conflict(
            primary,
            &local,
            Kept::Local,
            "deleted upstream while changed here: the change was kept and is written back",
            None,
            None,
        )?);
    }
    // Deleted upstream, unchanged here: the appointment is cancelled.
    match db.delete_event(
        &native.id,
        &href,
        &Precondition::IfMatch(local.etag.clone()),
        |_| Ok(Batch::new()),
    ) {
        Ok(_) | Err(DbError::PreconditionFailed) | Err(DbError::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_compare_by_etag_when_both_have_one() {
        let a = br#"{"id":"x","etag":"\"1\"","summary":"A"}"#;
        let b = br#"{"summary":"A","etag":"\"1\"","id":"x","kind":"calendar#event"}"#;
        let c = br#"{"id":"x","etag":"\"2\"","summary":"A"}"#;
        assert!(same_piece(a, b));
        assert!(!same_piece(a, c));
        let g1 = br#"{"id":"o","@odata.etag":"W/\"k1\""}"#;
        let g2 = br#"{"@odata.etag":"W/\"k1\"","id":"o"}"#;
        assert!(same_piece(g1, g2));
        // Without etags: byte for byte.
        assert!(same_piece(br#"{"id":"o"}"#, br#"{"id":"o"}"#));
        assert!(!same_piece(br#"{"id":"o"}"#, br#"{"id": "o"}"#));
        assert!(!same_piece(b"garbage", b"other garbage"));
    }

    #[test]
    fn pieces_seen_new_or_changed() {
        let mut p = Pieces::default();
        p.note(Some(b"{}"), Some(b"{}"));
        assert!(!p.changed && !p.new);
        p.note(None, Some(b"{}"));
        assert!(p.new && !p.changed);
        p.note(None, None);
        assert!(!p.changed);
        p.note(Some(b"{}"), None);
        assert!(p.changed);
    }

    const BERLIN: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:s@t\r\nDTSTART;TZID=Europe/Berlin:20300107T090000\r\nDTEND;TZID=Europe/Berlin:20300107T093000\r\nRRULE:FREQ=WEEKLY;COUNT=5\r\nEXDATE;TZID=Europe/Berlin:20300128T090000\r\nSUMMARY:Review\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:s@t\r\nRECURRENCE-ID;TZID=Europe/Berlin:20300114T090000\r\nDTSTART;TZID=Europe/Berlin:20300114T140000\r\nDTEND;TZID=Europe/Berlin:20300114T143000\r\nSUMMARY:Review\\, moved\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn exceptions_compare_as_instants() {
        // The same series as a provider might give it back: UTC times, the
        // exclusion as a cancelled occurrence, the summary unescaped.
        let utc = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//p//p//EN\r\nBEGIN:VEVENT\r\nUID:s@t\r\nDTSTART:20300107T080000Z\r\nDTEND:20300107T083000Z\r\nRRULE:FREQ=WEEKLY;COUNT=5\r\nSUMMARY:Review\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:s@t\r\nRECURRENCE-ID:20300114T080000Z\r\nDTSTART:20300114T130000Z\r\nDTEND:20300114T133000Z\r\nSUMMARY:Review\\, moved\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:s@t\r\nRECURRENCE-ID:20300128T080000Z\r\nDTSTART:20300128T080000Z\r\nDTEND:20300128T083000Z\r\nSTATUS:CANCELLED\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        assert!(same_exceptions(BERLIN.as_bytes(), utc.as_bytes(), None));
        // Moved by an hour, renamed, or one exception fewer: different.
        let later = utc.replace("DTSTART:20300114T130000Z", "DTSTART:20300114T140000Z");
        assert!(!same_exceptions(BERLIN.as_bytes(), later.as_bytes(), None));
        let renamed = utc.replace("Review\\, moved", "Review\\, renamed");
        assert!(!same_exceptions(
            BERLIN.as_bytes(),
            renamed.as_bytes(),
            None
        ));
        let fewer = utc.replace("STATUS:CANCELLED", "SUMMARY:Review");
        assert!(!same_exceptions(BERLIN.as_bytes(), fewer.as_bytes(), None));
        assert!(!same_exceptions(BERLIN.as_bytes(), b"not iCalendar", None));
    }
}
