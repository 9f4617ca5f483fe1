//! Free/busy: the busy periods of a staff member over their appointments
//! and every calendar marked `conflicts`, with recurring events expanded and
//! transparent (free) or cancelled events left out.
//!
//! Used by the admin API, CalDAV free-busy-query and busy feeds.

use crate::ics;
use crate::model::{Calendar, Staff, Timestamp};
use crate::store::db::DbResult;
use crate::store::Db;

/// One busy period, clipped to the query range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    pub start: Timestamp,
    pub end: Timestamp,
    /// `appointments`, or `<provider>:<calendar name>` for a mirrored one.
    pub source: String,
}

fn counts(cal: &Calendar) -> bool {
    cal.is_native() || cal.conflicts
}

fn source_of(cal: &Calendar) -> String {
    if cal.is_native() {
        cal.slug.clone()
    } else {
        format!("calendar:{}", cal.name)
    }
}

/// Is this VEVENT busy time? (not TRANSPARENT, not CANCELLED; tasks and
/// journals, which calendars made over CalDAV may hold, never are)
pub fn is_busy(ev: &ics::Component) -> bool {
    if !ev.name.eq_ignore_ascii_case("VEVENT") {
        return false;
    }
    let transparent = ev
        .value("TRANSP")
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("TRANSPARENT"));
    let cancelled = ev
        .value("STATUS")
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("CANCELLED"));
    !transparent && !cancelled
}

/// Busy periods in `[start, end)`, sorted, overlapping ones of one source
/// merged.
pub fn busy_periods(
    db: &Db,
    staff: &Staff,
    start: Timestamp,
    end: Timestamp,
) -> DbResult<Vec<Busy>> {
    let mut out = Vec::new();
    for cal in db.calendars_of_staff(&staff.id)? {
        if !counts(&cal) {
            continue;
        }
        let source = source_of(&cal);
        let mut periods = Vec::new();
        let zone = cal
            .timezone
            .clone()
            .unwrap_or_else(|| staff.timezone.clone());
        let opts = crate::objects::options(Some(&zone));
        let (Some(from), Some(to)) = (
            chrono::DateTime::from_timestamp(start, 0),
            chrono::DateTime::from_timestamp(end, 0),
        ) else {
            continue;
        };
        // Floating times and dates can sit up to 14 hours from UTC.
        for meta in db.events_overlapping(&cal.id, start - 14 * 3600, end + 14 * 3600)? {
            let Some(body) = db.event_body(&cal.id, &meta.href)? else {
                continue;
            };
            let Ok(obj) = ics::parse(&body) else { continue };
            let Ok(list) = ics::recur::instances(&obj, from, to, &opts) else {
                continue;
            };
            for inst in list {
                let Some(comp) = obj.children.get(inst.component) else {
                    continue;
                };
                if !is_busy(comp) {
                    continue;
                }
                let (s, e) = (
                    inst.start.timestamp().max(start),
                    inst.end.timestamp().min(end),
                );
                if s < e {
                    periods.push((s, e));
                }
            }
        }
        periods.sort();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (s, e) in periods {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        out.extend(merged.into_iter().map(|(s, e)| Busy {
            start: s,
            end: e,
            source: source.clone(),
        }));
    }
    out.sort_by_key(|b| (b.start, b.end));
    Ok(out)
}
