//! VTIMEZONE generation for IANA zones, so that feeds carry a definition
//! for every TZID they use (RFC 5545 §3.6.5).
//!
//! chrono-tz does not expose a zone's transitions, so they are found by
//! probing the zone's offset over the requested years (every 12 hours, then
//! a binary search to the second). Transitions that repeat yearly on the
//! same month, weekday and wall-clock time (the n-th or last such weekday)
//! become one observance with a yearly RRULE; the rest (historical changes,
//! Morocco's Ramadan pauses) become plain observances with RDATEs.

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::{OffsetComponents, OffsetName, Tz};

use super::rrule::{days_in_month, weekday_code};
use super::tz::{format_utc_offset, resolve_name};
use super::value::{format_utc, DateTimeValue};
use super::{Component, Property};

/// How far apart offset probes are: shorter than any real period between
/// two changes of a zone's offset.
const PROBE_STEP: i64 = 12 * 3600;

#[derive(Debug, Clone)]
struct Transition {
    /// First instant with the new offset.
    utc: NaiveDateTime,
    from: i32,
    to: i32,
    daylight: bool,
    name: Option<String>,
}

impl Transition {
    /// The onset as wall-clock time in the old offset (VTIMEZONE's DTSTART).
    fn local(&self) -> NaiveDateTime {
        self.utc + Duration::seconds(i64::from(self.from))
    }

    /// Weekday positions in the month this onset can be written as: the
    /// n-th (1..=4) and/or the last (-1).
    fn positions(&self) -> Vec<i8> {
        let d = self.local().date();
        let mut p = Vec::with_capacity(2);
        let nth = (d.day0() / 7 + 1) as i8;
        if nth <= 4 {
            p.push(nth);
        }
        if d.day() + 7 > days_in_month(d.year(), d.month()) {
            p.push(-1);
        }
        p
    }
}

fn offset(tz: Tz, utc: &NaiveDateTime) -> i32 {
    tz.offset_from_utc_datetime(utc).fix().local_minus_utc()
}

/// Every change of offset in `[start, end)`.
fn transitions(tz: Tz, start: NaiveDateTime, end: NaiveDateTime) -> Vec<Transition> {
    let mut out = Vec::new();
    let mut t = start;
    let mut off = offset(tz, &t);
    while t < end {
        let next = t + Duration::seconds(PROBE_STEP);
        let next_off = offset(tz, &next);
        if next_off != off {
            // The change happened in (t, next]: find its first second.
            let (mut lo, mut hi) = (t, next);
            while hi - lo > Duration::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if offset(tz, &mid) == off {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let at = tz.offset_from_utc_datetime(&hi);
            out.push(Transition {
                utc: hi,
                from: off,
                to: next_off,
                daylight: at.dst_offset() > Duration::zero(),
                name: at.abbreviation().map(str::to_string),
            });
        }
        t = next;
        off = next_off;
    }
    out
}

/// Transitions that repeat yearly with one pattern.
#[derive(Debug)]
struct Run {
    members: Vec<Transition>,
    positions: Vec<i8>,
}

impl Run {
    fn key(t: &Transition) -> (bool, i32, i32, u32, chrono::Weekday, u32, Option<&str>) {
        let l = t.local();
        (
            t.daylight,
            t.from,
            t.to,
            l.month(),
            l.weekday(),
            l.num_seconds_from_midnight(),
            t.name.as_deref(),
        )
    }

    fn accepts(&self, t: &Transition) -> bool {
        let last = self.members.last().expect("a run is never empty");
        Run::key(last) == Run::key(t)
            && last.local().year() + 1 == t.local().year()
            && t.positions().iter().any(|p| self.positions.contains(p))
    }
}

fn observance(first: &Transition) -> Component {
    let mut c = Component::new(if first.daylight {
        "DAYLIGHT"
    } else {
        "STANDARD"
    });
    c.push(Property::new("TZOFFSETFROM", format_utc_offset(first.from)));
    c.push(Property::new("TZOFFSETTO", format_utc_offset(first.to)));
    if let Some(name) = &first.name {
        c.push(Property::text("TZNAME", name));
    }
    c.push(Property::new(
        "DTSTART",
        DateTimeValue::Floating(first.local()).format_value(),
    ));
    c
}

/// A VTIMEZONE for an IANA zone, exact for instants in the years
/// `from_year..=to_year` (and, for zones still following a yearly rule, for
/// later years while the rule holds). TZID is the name given when it is an
/// IANA name, else the IANA name it resolves to. `None` for unknown zones
/// or an empty year range.
pub fn vtimezone(iana: &str, from_year: i32, to_year: i32) -> Option<Component> {
    let tz: Tz = iana.parse().ok().or_else(|| resolve_name(iana))?;
    let tzid = if iana.parse::<Tz>().is_ok() {
        iana
    } else {
        tz.name()
    };
    if from_year > to_year || !(1..=9998).contains(&from_year) || to_year > 9998 {
        return None;
    }
    // Probe a little beyond the years so onsets near New Year (in any
    // offset) are caught.
    let start = Utc
        .with_ymd_and_hms(from_year, 1, 1, 0, 0, 0)
        .single()?
        .naive_utc()
        - Duration::days(2);
    let end = Utc
        .with_ymd_and_hms(to_year + 1, 1, 1, 0, 0, 0)
        .single()?
        .naive_utc()
        + Duration::days(2);
    let found = transitions(tz, start, end);

    let mut vtz = Component::new("VTIMEZONE");
    vtz.push(Property::new("TZID", tzid));
    if found.is_empty() {
        let at = tz.offset_from_utc_datetime(&start);
        let off = at.fix().local_minus_utc();
        vtz.children.push(observance(&Transition {
            utc: start + Duration::days(2) - Duration::seconds(i64::from(off)),
            from: off,
            to: off,
            daylight: false,
            name: at.abbreviation().map(str::to_string),
        }));
        return Some(vtz);
    }

    let mut runs: Vec<Run> = Vec::new();
    for t in found {
        match runs.iter_mut().rev().find(|r| r.accepts(&t)) {
            Some(run) => {
                let keep: Vec<i8> = t
                    .positions()
                    .into_iter()
                    .filter(|p| run.positions.contains(p))
                    .collect();
                run.positions = keep;
                run.members.push(t);
            }
            None => runs.push(Run {
                positions: t.positions(),
                members: vec![t],
            }),
        }
    }

    // Singles (no yearly pattern) with the same offsets and name share one
    // observance through RDATE.
    let mut singles: Vec<(Component, Transition)> = Vec::new();
    for run in runs {
        let first = &run.members[0];
        if run.members.len() == 1 {
            let same = singles.iter_mut().find(|(_, f)| {
                (f.daylight, f.from, f.to, &f.name)
                    == (first.daylight, first.from, first.to, &first.name)
            });
            match same {
                Some((c, _)) => c.push(Property::new(
                    "RDATE",
                    DateTimeValue::Floating(first.local()).format_value(),
                )),
                None => singles.push((observance(first), first.clone())),
            }
            continue;
        }
        let last = run.members.last().expect("a run is never empty");
        let pos = if run.positions.contains(&-1) {
            -1
        } else {
            run.positions[0]
        };
        let l = first.local();
        let mut rule = format!(
            "FREQ=YEARLY;BYMONTH={};BYDAY={pos}{}",
            l.month(),
            weekday_code(l.weekday())
        );
        if last.local().year() < to_year {
            rule.push_str(";UNTIL=");
            rule.push_str(&format_utc(DateTime::<Utc>::from_naive_utc_and_offset(
                last.utc, Utc,
            )));
        }
        let mut c = observance(first);
        c.push(Property::new("RRULE", rule));
        vtz.children.push(c);
    }
    vtz.children.extend(singles.into_iter().map(|(c, _)| c));
    Some(vtz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ics::tz::{CustomZone, Zone};
    use std::sync::Arc;

    /// The generated VTIMEZONE, read back as a custom zone, gives chrono-tz's
    /// offset at every sample instant and on both sides of each onset.
    fn check_zone(name: &str, from: i32, to: i32) -> Component {
        let vtz = vtimezone(name, from, to).unwrap_or_else(|| panic!("{name}: no VTIMEZONE"));
        let text = String::from_utf8(vtz.to_ics()).unwrap();
        let reparsed = crate::ics::parse(text.as_bytes()).unwrap();
        let custom = Zone::Custom(Arc::new(CustomZone::from_component(&reparsed).unwrap()));
        let tz: Tz = name.parse().unwrap();
        let real = Zone::Iana(tz);
        let mut t = Utc
            .with_ymd_and_hms(from, 1, 1, 0, 0, 0)
            .unwrap()
            .naive_utc();
        let end = Utc
            .with_ymd_and_hms(to + 1, 1, 1, 0, 0, 0)
            .unwrap()
            .naive_utc();
        let mut samples = 0;
        while t < end {
            assert_eq!(
                custom.offset_at(t),
                real.offset_at(t),
                "{name} at {t} UTC\n{text}"
            );
            t += Duration::seconds(13 * 3600 + 17 * 60 + 7);
            samples += 1;
        }
        assert!(samples > 1000);
        for tr in transitions(
            tz,
            Utc.with_ymd_and_hms(from, 1, 1, 0, 0, 0)
                .unwrap()
                .naive_utc(),
            end,
        ) {
            for s in [tr.utc - Duration::seconds(1), tr.utc] {
                assert_eq!(
                    custom.offset_at(s),
                    real.offset_at(s),
                    "{name} at {s} UTC\n{text}"
                );
            }
            // Wall-clock conversion agrees too, gap and overlap included.
            let local = tr.local();
            assert_eq!(
                custom.to_utc(local),
                real.to_utc(local),
                "{name} local {local}"
            );
        }
        vtz
    }

    #[test]
    fn generated_zones_match_chrono_tz() {
        for name in [
            "Europe/Berlin",
            "America/Chicago",
            "America/Sao_Paulo",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
            "Pacific/Chatham",
            "Africa/Casablanca",
            "Europe/London",
            "America/Santiago",
            "Asia/Tehran",
        ] {
            check_zone(name, 2010, 2030);
        }
        // Historical years with rule changes.
        check_zone("America/New_York", 1990, 2012);
        check_zone("Europe/Moscow", 2005, 2016);
    }

    #[test]
    fn yearly_rules_where_the_zone_has_one() {
        let berlin = check_zone("Europe/Berlin", 2020, 2030);
        let text = String::from_utf8(berlin.to_ics()).unwrap();
        assert_eq!(berlin.children.len(), 2, "{text}");
        assert!(
            text.contains("RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n"),
            "{text}"
        );
        assert!(
            text.contains("RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n"),
            "{text}"
        );
        assert!(text.contains("TZID:Europe/Berlin\r\n"));
        assert!(text.contains("TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:20200329T020000\r\n"), "{text}");
        // Chicago: second Sunday of March, first Sunday of November.
        let chicago =
            String::from_utf8(check_zone("America/Chicago", 2020, 2030).to_ics()).unwrap();
        assert!(chicago.contains("BYMONTH=3;BYDAY=2SU"), "{chicago}");
        assert!(chicago.contains("BYMONTH=11;BYDAY=1SU"), "{chicago}");
        // Sao Paulo stopped DST in 2019: its rules end with an UNTIL.
        let sp = String::from_utf8(check_zone("America/Sao_Paulo", 2012, 2025).to_ics()).unwrap();
        assert!(sp.contains("UNTIL="), "{sp}");
        // Lord Howe's half-hour DST.
        let lh = String::from_utf8(check_zone("Australia/Lord_Howe", 2020, 2025).to_ics()).unwrap();
        assert!(
            lh.contains("TZOFFSETFROM:+1030\r\nTZOFFSETTO:+1100"),
            "{lh}"
        );
        // Kolkata has no transition: one STANDARD observance.
        let kolkata = check_zone("Asia/Kolkata", 2020, 2030);
        assert_eq!(kolkata.children.len(), 1);
        assert_eq!(kolkata.children[0].value("TZOFFSETTO"), Some("+0530"));
    }

    #[test]
    fn unknown_zone_or_range() {
        assert!(vtimezone("Mars/Olympus", 2020, 2030).is_none());
        assert!(vtimezone("Europe/Berlin", 2030, 2020).is_none());
        // A Windows name resolves, and the TZID is the IANA name.
        let v = vtimezone("W. Europe Standard Time", 2024, 2025).unwrap();
        assert_eq!(v.value("TZID"), Some("Europe/Berlin"));
    }
}
