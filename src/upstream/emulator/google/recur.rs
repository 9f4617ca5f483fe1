//! Expansion of a Google series (`recurrence` lines) into instance starts.
//!
//! Everything the Google front does with recurring events — `singleEvents`,
//! `instances`, `freeBusy`, series time spans — goes through the single
//! function [`expand_google_series`].
//!
//! LEAD: this is a deliberately minimal stand-in. It understands
//! `RRULE:FREQ=DAILY|WEEKLY` with `INTERVAL`, `COUNT`, `UNTIL`, `WKST` and
//! `BYDAY` (no ordinals), plus `EXDATE` and `RDATE`. Replace its body with
//! the crate's `ics::recur` engine once that lands; the signature is what the
//! rest of the Google front relies on. A rule it does not understand yields
//! only the first instance (plus RDATEs), never an error.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;

use super::super::time::{iana_zone, local_to_utc, utc_to_local};

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

/// Upper bound on the iterations of one expansion, whatever the rule says.
const MAX_STEPS: usize = 200_000;

/// Expands a series into its instance starts, in order, stopping after
/// `until` (inclusive) or `max` instances. EXDATEs are removed after COUNT
/// is applied, as RFC 5545 specifies; RDATEs are added.
pub(crate) fn expand_google_series(
    start: SeriesStart,
    recurrence: &[String],
    until: DateTime<Utc>,
    max: usize,
) -> Vec<InstanceStart> {
    let mut out: Vec<InstanceStart> = Vec::new();
    let mut excluded: Vec<InstanceStart> = Vec::new();
    let mut excluded_dates: Vec<NaiveDate> = Vec::new();
    let mut had_rule = false;
    for line in recurrence {
        let (name, params, value) = split_line(line);
        match name.as_str() {
            "RRULE" => {
                had_rule = true;
                out.extend(expand_rule(start, value, until, max));
            }
            "EXDATE" => {
                for v in parse_date_list(start, &params, value) {
                    match v {
                        InstanceStart::Date(d) => {
                            excluded.push(InstanceStart::Date(d));
                            excluded_dates.push(d);
                        }
                        at => excluded.push(at),
                    }
                }
            }
            "RDATE" => out.extend(parse_date_list(start, &params, value)),
            _ => {}
        }
    }
    if !had_rule {
        out.push(first_instance(start));
    }
    out.retain(|i| match (i, start) {
        (InstanceStart::At(t), SeriesStart::At(_, tz)) => {
            !excluded.contains(i) && !excluded_dates.contains(&utc_to_local(tz, *t).date())
        }
        _ => !excluded.contains(i),
    });
    out.retain(|i| match i {
        InstanceStart::Date(d) => date_instant(*d) <= until,
        InstanceStart::At(t) => *t <= until,
    });
    out.sort();
    out.dedup();
    out.truncate(max);
    out
}

/// True when the series has no end (an RRULE without COUNT or UNTIL).
pub(crate) fn is_unbounded(recurrence: &[String]) -> bool {
    recurrence.iter().any(|line| {
        let (name, _, value) = split_line(line);
        name == "RRULE" && {
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

/// Splits `NAME;P=V:value` into its upper-cased name, parameters and value.
fn split_line(line: &str) -> (String, Vec<(String, String)>, &str) {
    let (head, value) = line.split_once(':').unwrap_or((line, ""));
    let mut parts = head.split(';');
    let name = parts.next().unwrap_or("").trim().to_ascii_uppercase();
    let params = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_uppercase(), v.trim().to_string()))
        .collect();
    (name, params, value.trim())
}

/// Parses the values of an EXDATE/RDATE line.
fn parse_date_list(
    start: SeriesStart,
    params: &[(String, String)],
    value: &str,
) -> Vec<InstanceStart> {
    let tzid = params
        .iter()
        .find(|(k, _)| k == "TZID")
        .and_then(|(_, v)| iana_zone(v));
    let series_tz = match start {
        SeriesStart::At(_, tz) => tz,
        SeriesStart::Date(_) => Tz::UTC,
    };
    value
        .split(',')
        .filter_map(|v| {
            let v = v.trim();
            if let Ok(d) = NaiveDate::parse_from_str(v, "%Y%m%d") {
                return Some(InstanceStart::Date(d));
            }
            if let Some(z) = v.strip_suffix('Z') {
                let t = NaiveDateTime::parse_from_str(z, "%Y%m%dT%H%M%S").ok()?;
                return Some(InstanceStart::At(t.and_utc()));
            }
            let t = NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S").ok()?;
            Some(InstanceStart::At(local_to_utc(
                tzid.unwrap_or(series_tz),
                t,
            )))
        })
        .map(|i| match (i, start) {
            // A timed value on an all-day series names that day.
            (InstanceStart::At(t), SeriesStart::Date(_)) => InstanceStart::Date(t.date_naive()),
            (other, _) => other,
        })
        .collect()
}

enum Until {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
    Local(NaiveDateTime),
}

fn weekday(code: &str) -> Option<Weekday> {
    Some(match code {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

/// Expands one RRULE value. Unsupported rules give only the first instance.
fn expand_rule(
    start: SeriesStart,
    rule: &str,
    until: DateTime<Utc>,
    max: usize,
) -> Vec<InstanceStart> {
    let mut freq = None;
    let mut interval: i64 = 1;
    let mut count: Option<usize> = None;
    let mut rule_until: Option<Until> = None;
    let mut by_day: Vec<Weekday> = Vec::new();
    let mut wkst = Weekday::Mon;
    let mut supported = true;
    for part in rule.split(';') {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let v = v.trim().to_ascii_uppercase();
        match k.trim().to_ascii_uppercase().as_str() {
            "FREQ" => freq = Some(v),
            "INTERVAL" => interval = v.parse().unwrap_or(1).max(1),
            "COUNT" => count = v.parse().ok(),
            "UNTIL" => {
                rule_until = if let Ok(d) = NaiveDate::parse_from_str(&v, "%Y%m%d") {
                    Some(Until::Date(d))
                } else if let Some(z) = v.strip_suffix('Z') {
                    NaiveDateTime::parse_from_str(z, "%Y%m%dT%H%M%S")
                        .ok()
                        .map(|t| Until::Instant(t.and_utc()))
                } else {
                    NaiveDateTime::parse_from_str(&v, "%Y%m%dT%H%M%S")
                        .ok()
                        .map(Until::Local)
                }
            }
            "WKST" => wkst = weekday(&v).unwrap_or(Weekday::Mon),
            "BYDAY" => {
                for d in v.split(',') {
                    match weekday(d.trim()) {
                        Some(w) => by_day.push(w),
                        None => supported = false,
                    }
                }
            }
            _ => supported = false,
        }
    }
    let first = first_instance(start);
    let freq = match freq.as_deref() {
        Some("DAILY") if supported && by_day.is_empty() => "DAILY",
        Some("WEEKLY") if supported => "WEEKLY",
        _ => {
            tracing::debug!(
                rule,
                "emulator: recurrence rule not expanded by the stand-in"
            );
            return vec![first];
        }
    };
    let (d0, time, tz) = match start {
        SeriesStart::Date(d) => (d, None, Tz::UTC),
        SeriesStart::At(local, tz) => (local.date(), Some(local.time()), tz),
    };
    if freq == "WEEKLY" && by_day.is_empty() {
        by_day.push(d0.weekday());
    }
    let to_instance = |d: NaiveDate| match time {
        None => InstanceStart::Date(d),
        Some(t) => InstanceStart::At(local_to_utc(tz, d.and_time(t))),
    };
    let past_until = |d: NaiveDate, inst: &InstanceStart| -> bool {
        match (&rule_until, inst) {
            (None, _) => false,
            (Some(Until::Date(u)), _) => d > *u,
            (Some(Until::Instant(u)), InstanceStart::At(t)) => t > u,
            (Some(Until::Instant(u)), InstanceStart::Date(_)) => d > u.date_naive(),
            (Some(Until::Local(u)), _) => match time {
                Some(t) => d.and_time(t) > *u,
                None => d > u.date(),
            },
        }
    };
    let mut out = Vec::new();
    let mut emitted = 0usize;
    let week_start = d0 - Duration::days(days_from(wkst, d0.weekday()));
    let mut step = 0i64;
    let mut steps = 0usize;
    'outer: loop {
        steps += 1;
        if steps > MAX_STEPS {
            break;
        }
        let candidates: Vec<NaiveDate> = if freq == "DAILY" {
            vec![d0 + Duration::days(step * interval)]
        } else {
            let base = week_start + Duration::weeks(step * interval);
            let mut days: Vec<NaiveDate> = by_day
                .iter()
                .map(|w| base + Duration::days(days_from(wkst, *w)))
                .collect();
            days.sort();
            days.dedup();
            days
        };
        step += 1;
        for d in candidates {
            if d < d0 {
                continue;
            }
            let inst = to_instance(d);
            if past_until(d, &inst) {
                break 'outer;
            }
            let at = match inst {
                InstanceStart::Date(d) => date_instant(d),
                InstanceStart::At(t) => t,
            };
            if at > until || out.len() >= max {
                break 'outer;
            }
            if count.is_some_and(|c| emitted >= c) {
                break 'outer;
            }
            out.push(inst);
            emitted += 1;
        }
    }
    if !out.contains(&first) && count.is_none_or(|c| c > 0) {
        out.insert(0, first);
        if let Some(c) = count {
            out.truncate(c);
        }
    }
    out
}

/// Days from `from` forward to `to` within a week (0..=6).
fn days_from(from: Weekday, to: Weekday) -> i64 {
    (to.num_days_from_monday() as i64 - from.num_days_from_monday() as i64).rem_euclid(7)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let monthly = expand_google_series(
            SeriesStart::Date(d),
            &["RRULE:FREQ=MONTHLY;BYMONTHDAY=2".to_string()],
            far(),
            100,
        );
        assert_eq!(monthly, vec![InstanceStart::Date(d)]);
        assert!(is_unbounded(&["RRULE:FREQ=DAILY".to_string()]));
        assert!(!is_unbounded(&["RRULE:FREQ=DAILY;COUNT=2".to_string()]));
    }
}
