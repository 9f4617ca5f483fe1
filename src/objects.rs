//! The calendar objects calbridge stores, seen through the `ics` engine:
//! analysis with the right zone for floating times and dates, the VTIMEZONE
//! blocks an object or feed needs, and instance starts. One place, so the
//! admin API, CalDAV, the provider mappings and the feeds agree.
//!
//! Pure: no I/O.

use chrono::{DateTime, Datelike, Utc};

use crate::ics::object::{self, ObjectError, ObjectInfo};
use crate::ics::recur::{self, ExpandOptions};
use crate::ics::tz::{Zone, Zones};
use crate::ics::{self, Component};

/// Expansion options with floating times and dates in `zone` (an IANA or
/// Windows name; UTC when absent or unknown).
pub fn options(zone: Option<&str>) -> ExpandOptions {
    let floating = zone
        .and_then(|z| {
            z.parse::<chrono_tz::Tz>()
                .ok()
                .or_else(|| ics::tz::resolve_name(z))
        })
        .map(Zone::Iana)
        .unwrap_or(Zone::Utc);
    ExpandOptions {
        floating,
        ..ExpandOptions::default()
    }
}

/// Validate an object and compute its index fields.
pub fn analyze(cal: &Component, zone: Option<&str>) -> Result<ObjectInfo, ObjectError> {
    object::analyze(cal, &options(zone))
}

/// A VTIMEZONE for `tzid` (an IANA name, or a name that resolves to one),
/// exact from `first_year` to ten years from now.
pub fn vtimezone_block(tzid: &str, first_year: i32) -> Option<Component> {
    let this_year = Utc::now().year();
    let from = first_year.clamp(1900, this_year + 50) - 1;
    let to = this_year.max(first_year) + 10;
    // Making one walks the zone's transitions over the years: most of the
    // time of mapping a provider event. The same few zones come back again
    // and again, so the blocks are kept (a bounded number of them).
    type Made = std::collections::HashMap<(String, i32, i32), Component>;
    static MADE: std::sync::Mutex<Option<Made>> = std::sync::Mutex::new(None);
    const KEEP: usize = 256;
    let key = (tzid.to_string(), from, to);
    if let Some(c) = MADE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(&key))
    {
        return Some(c.clone());
    }
    let block = ics::vtimezone::vtimezone(tzid, from, to).map(|mut c| {
        // Keep the TZID exactly as the events spell it.
        c.set(ics::Property::new("TZID", tzid));
        c
    })?;
    let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
    let map = made.get_or_insert_with(Default::default);
    if map.len() >= KEEP {
        map.clear();
    }
    map.insert(key, block.clone());
    Some(block)
}

/// The year a property value starts with (`20260302T…` → 2026).
fn value_year(v: &str) -> Option<i32> {
    v.get(..4)?.parse().ok()
}

/// Every TZID the object's components use, with the earliest year it is
/// used in.
pub fn tzids_used(cal: &Component) -> Vec<(String, i32)> {
    let mut out: Vec<(String, i32)> = Vec::new();
    fn walk(c: &Component, out: &mut Vec<(String, i32)>) {
        if c.name == "VTIMEZONE" {
            return;
        }
        for p in &c.props {
            if let Some(t) = p.param("TZID") {
                let year = p
                    .value
                    .split(',')
                    .filter_map(value_year)
                    .min()
                    .unwrap_or_else(|| Utc::now().year());
                match out.iter_mut().find(|(id, _)| id == t) {
                    Some(entry) => entry.1 = entry.1.min(year),
                    None => out.push((t.to_string(), year)),
                }
            }
        }
        for ch in &c.children {
            walk(ch, out);
        }
    }
    walk(cal, &mut out);
    out
}

/// Add a generated VTIMEZONE for every TZID the object uses but does not
/// define (when the TZID names a known zone). VTIMEZONEs go first.
pub fn add_missing_vtimezones(cal: &mut Component) {
    let defined: Vec<String> = cal
        .children_named("VTIMEZONE")
        .filter_map(|z| z.value("TZID").map(str::to_string))
        .collect();
    let mut blocks = Vec::new();
    for (tzid, year) in tzids_used(cal) {
        if defined.contains(&tzid) {
            continue;
        }
        if let Some(b) = vtimezone_block(&tzid, year) {
            blocks.push(b);
        }
    }
    let at = cal
        .children
        .iter()
        .position(|c| c.name != "VTIMEZONE")
        .unwrap_or(cal.children.len());
    for (i, b) in blocks.into_iter().enumerate() {
        cal.children.insert(at + i, b);
    }
}

/// Start instants (UTC seconds) of every instance of `cal` whose start lies
/// in `[from, to)`.
pub fn instance_starts(
    cal: &Component,
    from: i64,
    to: i64,
    zone: Option<&str>,
) -> Result<Vec<i64>, ics::IcsError> {
    // Year 1 to year 9999: what an iCalendar value can say.
    const MIN: i64 = -62_135_596_800;
    const MAX: i64 = 253_402_300_799;
    let (Some(f), Some(t)) = (
        DateTime::from_timestamp(from.clamp(MIN, MAX), 0),
        DateTime::from_timestamp(to.clamp(MIN, MAX), 0),
    ) else {
        return Ok(Vec::new());
    };
    let mut opts = options(zone);
    opts.max_instances = 100_000;
    Ok(recur::instances(cal, f, t, &opts)?
        .into_iter()
        .map(|i| i.start.timestamp())
        .filter(|s| *s >= from && *s < to)
        .collect())
}

/// The zones an object's values resolve through.
pub fn zones(cal: &Component) -> Zones {
    Zones::from_calendar(cal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_vtimezones_are_added_for_known_zones_only() {
        let mut cal = ics::parse(
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID=Europe/Berlin:20200106T090000\r\nDTEND;TZID=W. Europe Standard Time:20200106T100000\r\nEXDATE;TZID=Mars/Olympus:20200113T090000\r\nRRULE:FREQ=WEEKLY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        )
        .unwrap();
        add_missing_vtimezones(&mut cal);
        let ids: Vec<_> = cal
            .children_named("VTIMEZONE")
            .filter_map(|z| z.value("TZID"))
            .collect();
        assert_eq!(ids, vec!["Europe/Berlin", "W. Europe Standard Time"]);
        assert_eq!(cal.children[0].name, "VTIMEZONE");
        // The generated block covers the event's year.
        let berlin = &cal.children[0];
        let first = berlin
            .children
            .iter()
            .filter_map(|o| o.value("DTSTART"))
            .filter_map(value_year)
            .min()
            .unwrap();
        assert!(first <= 2020);
        // The object still analyses, with the zone resolved.
        let info = analyze(&cal, None).unwrap();
        assert!(info.recurring && info.end == i64::MAX);
        assert_eq!(info.start, 1_578_297_600);
    }

    #[test]
    fn kept_vtimezone_blocks_are_the_ones_made_fresh() {
        let this_year = Utc::now().year();
        for tzid in [
            "Europe/Berlin",
            "W. Europe Standard Time",
            "America/Chicago",
        ] {
            let first = vtimezone_block(tzid, 2019).unwrap();
            let again = vtimezone_block(tzid, 2019).unwrap();
            let mut fresh = ics::vtimezone::vtimezone(tzid, 2018, this_year + 10).unwrap();
            fresh.set(ics::Property::new("TZID", tzid));
            assert_eq!(first.to_ics(), fresh.to_ics());
            assert_eq!(again.to_ics(), fresh.to_ics());
            assert_eq!(again.value("TZID"), Some(tzid));
        }
        assert!(vtimezone_block("Mars/Olympus", 2019).is_none());
    }

    #[test]
    fn instance_starts_follow_the_rule_in_its_zone() {
        let cal = ics::parse(b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID=America/Los_Angeles:20261102T090000\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").unwrap();
        let starts = instance_starts(&cal, 0, i64::MAX / 2, None).unwrap();
        // 09:00 Pacific standard time is 17:00 UTC.
        assert_eq!(starts, vec![1_793_638_800, 1_794_243_600, 1_794_848_400]);
    }
}
