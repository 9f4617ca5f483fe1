//! Expansion of a Google series (`recurrence` lines) into instance starts.
//!
//! Everything the Google front does with recurring events — `singleEvents`,
//! `instances`, `freeBusy`, series time spans — goes through the single
//! function [`expand_google_series`].
//!
//! The expansion itself is the crate's recurrence engine (`ics::recur`): the
//! series becomes a one-VEVENT calendar (DTSTART in the series' zone plus
//! the `recurrence` lines) and its instances are listed. A rule the engine
//! refuses yields only the first instance, never an error.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;

use super::super::time::local_to_utc;
use crate::ics::{self, Component, Property};

/// Where a series starts: an all-day date or a wall-clock time in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeriesStart {
    Date(NaiveDate),
    At(NaiveDateTime, Tz),
}

/// The start of one instance of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum InstanceStart {
    Date(NaiveDate),
    At(DateTime<Utc>),
}

/// Expands a series into its instance starts, in order, up to `until`
/// (inclusive) and at most `max` instances. EXDATEs remove instances after
/// COUNT is applied and RDATEs add them, as RFC 5545 specifies.
pub(crate) fn expand_google_series(
    start: SeriesStart,
    recurrence: &[String],
    until: DateTime<Utc>,
    max: usize,
) -> Vec<InstanceStart> {
    let first = first_instance(start);
    let mut ev = Component::new("VEVENT");
    ev.push(Property::new("UID", "series"));
    ev.push(match start {
        SeriesStart::Date(d) => {
            Property::new("DTSTART", d.format("%Y%m%d").to_string()).with_param("VALUE", "DATE")
        }
        SeriesStart::At(local, tz) => {
            Property::new("DTSTART", local.format("%Y%m%dT%H%M%S").to_string())
                .with_param("TZID", tz.name())
        }
    });
    for line in recurrence {
        let text = format!("BEGIN:X\r\n{}\r\nEND:X\r\n", line.trim());
        if let Ok(mut roots) = ics::parse_all(text.as_bytes()) {
            if let Some(mut c) = roots.pop() {
                if c.props.len() == 1
                    && matches!(
                        c.props[0].name.as_str(),
                        "RRULE" | "EXDATE" | "RDATE" | "EXRULE"
                    )
                {
                    ev.push(c.props.remove(0));
                }
            }
        }
    }
    let mut cal = Component::new("VCALENDAR");
    cal.children.push(ev);
    let from = match first {
        InstanceStart::Date(d) => date_instant(d),
        InstanceStart::At(t) => t,
    };
    let opts = ics::recur::ExpandOptions {
        max_instances: max,
        ..Default::default()
    };
    let Ok(list) = ics::recur::instances(
        &cal,
        from - chrono::Duration::seconds(1),
        until + chrono::Duration::seconds(1),
        &opts,
    ) else {
        return if first_start(first) <= until {
            vec![first]
        } else {
            Vec::new()
        };
    };
    let mut out: Vec<InstanceStart> = list
        .into_iter()
        .filter(|i| i.start <= until)
        .map(|i| {
            if i.all_day {
                InstanceStart::Date(i.start.date_naive())
            } else {
                InstanceStart::At(i.start)
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out.truncate(max);
    out
}

fn first_start(i: InstanceStart) -> DateTime<Utc> {
    match i {
        InstanceStart::Date(d) => date_instant(d),
        InstanceStart::At(t) => t,
    }
}

/// True when the series has no end (an RRULE without COUNT or UNTIL).
pub(crate) fn is_unbounded(recurrence: &[String]) -> bool {
    recurrence.iter().any(|line| {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        name.trim().eq_ignore_ascii_case("RRULE") && {
            let upper = value.to_ascii_uppercase();
            !upper.contains("COUNT=") && !upper.contains("UNTIL=")
        }
    })
}

fn first_instance(start: SeriesStart) -> InstanceStart {
    match start {
        SeriesStart::Date(d) => InstanceStart::Date(d),
        SeriesStart::At(local, tz) => InstanceStart::At(local_to_utc(tz, local)),
    }
}

fn date_instant(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(NaiveTime::MIN).and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
    }

    fn far() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn daily_count_keeps_wall_clock_across_dst() {
        let tz = Tz::Europe__Berlin;
        let got = expand_google_series(
            SeriesStart::At(at(2026, 3, 28, 9), tz),
            &["RRULE:FREQ=DAILY;COUNT=3".to_string()],
            far(),
            100,
        );
        let hours: Vec<String> = got
            .iter()
            .map(|i| match i {
                InstanceStart::At(t) => t.format("%d %H").to_string(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(hours, vec!["28 08", "29 07", "30 07"]);
    }

    #[test]
    fn weekly_byday_interval_until_and_exdate() {
        let tz = Tz::UTC;
        // Monday 2 March 2026.
        let got = expand_google_series(
            SeriesStart::At(at(2026, 3, 2, 9), tz),
            &[
                "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;UNTIL=20260401T000000Z".to_string(),
                "EXDATE:20260304T090000Z".to_string(),
            ],
            far(),
            100,
        );
        let days: Vec<u32> = got
            .iter()
            .map(|i| match i {
                InstanceStart::At(t) => t.day(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(days, vec![2, 16, 18, 30]);
    }

    #[test]
    fn all_day_and_unsupported_rules() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let got = expand_google_series(
            SeriesStart::Date(d),
            &["RRULE:FREQ=DAILY;INTERVAL=3;COUNT=2".to_string()],
            far(),
            100,
        );
        assert_eq!(
            got,
            vec![
                InstanceStart::Date(d),
                InstanceStart::Date(NaiveDate::from_ymd_opt(2026, 3, 5).unwrap())
            ]
        );
        // Any rule the engine knows expands (monthly here), capped at max.
        let monthly = expand_google_series(
            SeriesStart::Date(d),
            &["RRULE:FREQ=MONTHLY;BYMONTHDAY=2".to_string()],
            far(),
            3,
        );
        let month = |m| InstanceStart::Date(NaiveDate::from_ymd_opt(2026, m, 2).unwrap());
        assert_eq!(monthly, vec![month(3), month(4), month(5)]);
        // A rule the engine refuses yields just the first instance.
        let bad = expand_google_series(
            SeriesStart::Date(d),
            &["RRULE:FREQ=SOMETIMES".to_string()],
            far(),
            100,
        );
        assert_eq!(bad, vec![InstanceStart::Date(d)]);
        assert!(is_unbounded(&["RRULE:FREQ=DAILY".to_string()]));
        assert!(!is_unbounded(&["RRULE:FREQ=DAILY;COUNT=2".to_string()]));
    }
}
