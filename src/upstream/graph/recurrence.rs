//! Graph's recurrence (`pattern` + `range`) ↔ RRULE.
//!
//! | Graph | RRULE |
//! | --- | --- |
//! | daily | `FREQ=DAILY;INTERVAL=n` |
//! | weekly (daysOfWeek, firstDayOfWeek) | `FREQ=WEEKLY;BYDAY=…;WKST=…` |
//! | absoluteMonthly (dayOfMonth) | `FREQ=MONTHLY;BYMONTHDAY=d` |
//! | relativeMonthly (daysOfWeek, index) | `FREQ=MONTHLY;BYDAY=…;BYSETPOS=1..4/-1` |
//! | absoluteYearly (month, dayOfMonth) | `FREQ=YEARLY;BYMONTH=m;BYMONTHDAY=d` |
//! | relativeYearly (month, daysOfWeek, index) | `FREQ=YEARLY;BYMONTH=m;BYDAY=…;BYSETPOS=…` |
//! | range endDate / numbered / noEnd | `UNTIL` / `COUNT` / none |
//!
//! What Graph cannot express (sub-daily frequencies, BYWEEKNO, BYYEARDAY,
//! several BYMONTH or BYMONTHDAY values, negative BYMONTHDAY, BYSETPOS other
//! than 1..4/-1, BYHOUR…) is refused with a reason, never silently changed.

use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Pattern {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "one")]
    pub interval: u32,
    #[serde(default)]
    pub month: u32,
    #[serde(default)]
    pub day_of_month: u32,
    #[serde(default)]
    pub days_of_week: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_day_of_week: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Range {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    #[serde(default)]
    pub number_of_occurrences: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence_time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Recurrence {
    pub pattern: Pattern,
    pub range: Range,
}

const DAYS: &[(&str, &str)] = &[
    ("sunday", "SU"),
    ("monday", "MO"),
    ("tuesday", "TU"),
    ("wednesday", "WE"),
    ("thursday", "TH"),
    ("friday", "FR"),
    ("saturday", "SA"),
];

const INDEXES: &[(&str, i32)] = &[
    ("first", 1),
    ("second", 2),
    ("third", 3),
    ("fourth", 4),
    ("last", -1),
];

fn day_code(d: &str) -> Option<&'static str> {
    DAYS.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(d))
        .map(|(_, c)| *c)
}

fn day_name(c: &str) -> Option<&'static str> {
    DAYS.iter()
        .find(|(_, k)| k.eq_ignore_ascii_case(c))
        .map(|(n, _)| *n)
}

/// How the series starts, for UNTIL: a DATE series gets a DATE UNTIL; a
/// timed one the end of `endDate` in its zone, in UTC.
#[derive(Debug, Clone, Copy)]
pub enum StartKind {
    Date,
    Timed(chrono_tz::Tz),
}

/// Graph recurrence → RRULE value (without `RRULE:`).
pub fn to_rrule(r: &Recurrence, start: StartKind) -> Result<String, String> {
    let p = &r.pattern;
    let mut parts = Vec::new();
    let days = |list: &[String]| -> Result<String, String> {
        let codes: Vec<&str> = list
            .iter()
            .map(|d| day_code(d).ok_or_else(|| format!("unknown day {d:?}")))
            .collect::<Result<_, _>>()?;
        if codes.is_empty() {
            return Err("a pattern without daysOfWeek".into());
        }
        Ok(codes.join(","))
    };
    let index = |i: &Option<String>| -> Result<i32, String> {
        let name = i.as_deref().unwrap_or("first");
        INDEXES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("unknown index {name:?}"))
    };
    let month = || -> Result<u32, String> {
        match p.month {
            1..=12 => Ok(p.month),
            m => Err(format!("month {m} is not 1 to 12")),
        }
    };
    let day_of_month = || -> Result<u32, String> {
        match p.day_of_month {
            1..=31 => Ok(p.day_of_month),
            d => Err(format!("dayOfMonth {d} is not 1 to 31")),
        }
    };
    match p.kind.as_str() {
        "daily" => parts.push("FREQ=DAILY".to_string()),
        "weekly" => {
            parts.push("FREQ=WEEKLY".into());
            parts.push(format!("BYDAY={}", days(&p.days_of_week)?));
        }
        "absoluteMonthly" => {
            parts.push("FREQ=MONTHLY".into());
            parts.push(format!("BYMONTHDAY={}", day_of_month()?));
        }
        "relativeMonthly" => {
            parts.push("FREQ=MONTHLY".into());
            parts.push(format!("BYDAY={}", days(&p.days_of_week)?));
            parts.push(format!("BYSETPOS={}", index(&p.index)?));
        }
        "absoluteYearly" => {
            parts.push("FREQ=YEARLY".into());
            parts.push(format!("BYMONTH={}", month()?));
            parts.push(format!("BYMONTHDAY={}", day_of_month()?));
        }
        "relativeYearly" => {
            parts.push("FREQ=YEARLY".into());
            parts.push(format!("BYMONTH={}", month()?));
            parts.push(format!("BYDAY={}", days(&p.days_of_week)?));
            parts.push(format!("BYSETPOS={}", index(&p.index)?));
        }
        other => return Err(format!("unknown recurrence pattern {other:?}")),
    }
    if p.interval > 1 {
        parts.push(format!("INTERVAL={}", p.interval));
    }
    if p.kind == "weekly" {
        let wkst = p
            .first_day_of_week
            .as_deref()
            .and_then(day_code)
            .unwrap_or("SU");
        parts.push(format!("WKST={wkst}"));
    }
    match r.range.kind.as_str() {
        "noEnd" | "" => {}
        "numbered" => parts.push(format!("COUNT={}", r.range.number_of_occurrences.max(1))),
        "endDate" => {
            let end = r
                .range
                .end_date
                .as_deref()
                .and_then(crate::upstream::iso_date)
                .ok_or("an endDate range without a valid endDate")?;
            match start {
                StartKind::Date => parts.push(format!("UNTIL={}", end.format("%Y%m%d"))),
                StartKind::Timed(tz) => {
                    // The end date is inclusive in the recurrence's zone.
                    let last = end.and_hms_opt(23, 59, 59).expect("valid time");
                    let utc = tz
                        .from_local_datetime(&last)
                        .latest()
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .unwrap_or_else(|| last.and_utc());
                    parts.push(format!("UNTIL={}", utc.format("%Y%m%dT%H%M%SZ")));
                }
            }
        }
        other => return Err(format!("unknown recurrence range {other:?}")),
    }
    Ok(parts.join(";"))
}

/// RRULE value → Graph recurrence, for a series starting at `start`
/// (local time in `zone`). Refused with the reason when Graph cannot
/// express the rule.
pub fn from_rrule(rule: &str, start: NaiveDateTime, zone: &str) -> Result<Recurrence, String> {
    // Only a rule calbridge itself accepts (values in range, known parts)
    // is translated; stored objects have passed this check already.
    crate::ics::rrule::RRule::parse(rule.trim().trim_start_matches("RRULE:"))
        .map_err(|e| e.to_string())?;
    let mut freq = None;
    let mut interval = 1u32;
    let mut byday: Vec<String> = Vec::new();
    let mut bymonthday: Vec<i32> = Vec::new();
    let mut bymonth: Vec<u32> = Vec::new();
    let mut bysetpos: Vec<i32> = Vec::new();
    let mut count = None;
    let mut until = None;
    let mut wkst = None;
    for part in rule
        .trim()
        .trim_start_matches("RRULE:")
        .split(';')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("malformed RRULE part {part:?}"))?;
        let v = v.trim();
        match k.trim().to_ascii_uppercase().as_str() {
            "FREQ" => freq = Some(v.to_ascii_uppercase()),
            "INTERVAL" => interval = v.parse().map_err(|_| format!("INTERVAL={v}"))?,
            "BYDAY" => {
                byday = v
                    .split(',')
                    .map(|s| s.trim().to_ascii_uppercase())
                    .collect()
            }
            "BYMONTHDAY" => {
                bymonthday = v
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|_| format!("BYMONTHDAY={v}")))
                    .collect::<Result<_, _>>()?
            }
            "BYMONTH" => {
                bymonth = v
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|_| format!("BYMONTH={v}")))
                    .collect::<Result<_, _>>()?
            }
            "BYSETPOS" => {
                bysetpos = v
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|_| format!("BYSETPOS={v}")))
                    .collect::<Result<_, _>>()?
            }
            "COUNT" => count = Some(v.parse::<u32>().map_err(|_| format!("COUNT={v}"))?),
            "UNTIL" => until = Some(v.to_string()),
            "WKST" => wkst = Some(v.to_ascii_uppercase()),
            other => {
                return Err(format!(
                    "Microsoft calendars cannot express {other} in a recurrence"
                ))
            }
        }
    }
    let freq = freq.ok_or("the RRULE has no FREQ")?;
    if bymonth.len() > 1 {
        return Err("Microsoft calendars cannot repeat in several months (BYMONTH with more than one month)".into());
    }
    if bymonthday.len() > 1 || bymonthday.iter().any(|d| *d < 1) {
        return Err(
            "Microsoft calendars cannot express several or negative BYMONTHDAY values".into(),
        );
    }
    if bysetpos.len() > 1 || bysetpos.iter().any(|p| !matches!(p, 1..=4 | -1)) {
        return Err("Microsoft calendars only express BYSETPOS 1 to 4 or -1".into());
    }
    // BYDAY with ordinals (2TU) becomes BYDAY=TU + an index.
    let mut ordinal: Option<i32> = None;
    let mut names = Vec::new();
    for d in &byday {
        let split = d.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(d.len());
        let (n, code) = d.split_at(split);
        if !n.is_empty() {
            let n: i32 = n.parse().map_err(|_| format!("BYDAY={d}"))?;
            if ordinal.is_some_and(|o| o != n) {
                return Err("Microsoft calendars cannot mix different BYDAY ordinals".into());
            }
            ordinal = Some(n);
        }
        names.push(
            day_name(code)
                .ok_or_else(|| format!("unknown day {code:?}"))?
                .to_string(),
        );
    }
    let index = match (ordinal, bysetpos.first()) {
        (Some(_), Some(_)) => {
            return Err("BYDAY ordinals together with BYSETPOS cannot be expressed".into())
        }
        (Some(n), None) | (None, Some(&n)) => Some(
            INDEXES
                .iter()
                .find(|(_, v)| *v == n)
                .map(|(name, _)| name.to_string())
                .ok_or(
                    "Microsoft calendars only express the first to fourth or the last weekday",
                )?,
        ),
        (None, None) => None,
    };
    use chrono::Datelike;
    let mut p = Pattern {
        interval,
        ..Pattern::default()
    };
    match freq.as_str() {
        "DAILY" => {
            if !names.is_empty() || !bymonthday.is_empty() || !bymonth.is_empty() || index.is_some()
            {
                return Err(
                    "a daily rule with BY-parts cannot be expressed; use a weekly rule".into(),
                );
            }
            p.kind = "daily".into();
        }
        "WEEKLY" => {
            if !bymonthday.is_empty() || !bymonth.is_empty() || index.is_some() {
                return Err("this weekly rule cannot be expressed".into());
            }
            p.kind = "weekly".into();
            p.days_of_week = if names.is_empty() {
                vec![DAYS[start.weekday().num_days_from_sunday() as usize]
                    .0
                    .to_string()]
            } else {
                names.clone()
            };
            p.first_day_of_week = Some(
                wkst.as_deref()
                    .and_then(day_name)
                    // RFC 5545: WKST defaults to Monday.
                    .unwrap_or("monday")
                    .to_string(),
            );
        }
        "MONTHLY" | "YEARLY" => {
            let yearly = freq == "YEARLY";
            if yearly {
                p.month = bymonth.first().copied().unwrap_or(start.month());
            } else if !bymonth.is_empty() {
                return Err("a monthly rule limited to some months cannot be expressed".into());
            }
            if !names.is_empty() {
                p.kind = if yearly {
                    "relativeYearly"
                } else {
                    "relativeMonthly"
                }
                .into();
                p.days_of_week = names.clone();
                p.index = Some(index.ok_or(
                    "a rule on every such weekday of the month cannot be expressed (Microsoft needs first..fourth or last)",
                )?);
            } else {
                if index.is_some() {
                    return Err("BYSETPOS without BYDAY cannot be expressed".into());
                }
                p.kind = if yearly {
                    "absoluteYearly"
                } else {
                    "absoluteMonthly"
                }
                .into();
                p.day_of_month = bymonthday.first().map(|d| *d as u32).unwrap_or(start.day());
            }
        }
        other => {
            return Err(format!(
                "Microsoft calendars cannot repeat {}",
                other.to_lowercase()
            ))
        }
    }
    let start_date = start.date().format("%Y-%m-%d").to_string();
    let range = match (count, until) {
        (Some(_), Some(_)) => return Err("COUNT and UNTIL together are invalid".into()),
        (Some(n), None) => Range {
            kind: "numbered".into(),
            start_date: Some(start_date),
            number_of_occurrences: n,
            recurrence_time_zone: Some(zone.to_string()),
            ..Range::default()
        },
        (None, Some(u)) => {
            let end = until_date(&u, zone, start.time())
                .ok_or_else(|| format!("UNTIL={u} is not a date"))?;
            Range {
                kind: "endDate".into(),
                start_date: Some(start_date),
                end_date: Some(end.format("%Y-%m-%d").to_string()),
                recurrence_time_zone: Some(zone.to_string()),
                ..Range::default()
            }
        }
        (None, None) => Range {
            kind: "noEnd".into(),
            start_date: Some(start_date),
            recurrence_time_zone: Some(zone.to_string()),
            ..Range::default()
        },
    };
    Ok(Recurrence { pattern: p, range })
}

/// The last date an UNTIL allows, in the series' zone: the date of the
/// UNTIL instant there, or the day before when UNTIL falls before that
/// day's occurrence (Graph's `endDate` includes the whole day).
fn until_date(u: &str, zone: &str, start_time: chrono::NaiveTime) -> Option<NaiveDate> {
    if u.len() == 8 {
        return NaiveDate::parse_from_str(u, "%Y%m%d").ok();
    }
    let (t, utc) = match u.strip_suffix('Z') {
        Some(t) => (t, true),
        None => (u, false),
    };
    let mut local = NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%S").ok()?;
    if utc {
        let tz: chrono_tz::Tz = crate::upstream::graph::zones::iana(zone)
            .and_then(|z| z.parse().ok())
            .unwrap_or(chrono_tz::UTC);
        local = tz.from_utc_datetime(&local).naive_local();
    }
    if local.time() >= start_time {
        Some(local.date())
    } else {
        local.date().pred_opt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(pattern: serde_json::Value, range: serde_json::Value) -> Recurrence {
        serde_json::from_value(serde_json::json!({"pattern": pattern, "range": range})).unwrap()
    }

    #[test]
    fn patterns_map_to_the_documented_rrules() {
        let berlin = StartKind::Timed(chrono_tz::Europe::Berlin);
        let cases = [
            (
                rec(
                    serde_json::json!({"type": "daily", "interval": 2}),
                    serde_json::json!({"type": "numbered", "numberOfOccurrences": 5}),
                ),
                "FREQ=DAILY;INTERVAL=2;COUNT=5",
            ),
            (
                rec(
                    serde_json::json!({"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "wednesday"], "firstDayOfWeek": "monday"}),
                    serde_json::json!({"type": "noEnd"}),
                ),
                "FREQ=WEEKLY;BYDAY=MO,WE;WKST=MO",
            ),
            (
                rec(
                    serde_json::json!({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 15}),
                    serde_json::json!({"type": "endDate", "endDate": "2026-12-31"}),
                ),
                "FREQ=MONTHLY;BYMONTHDAY=15;UNTIL=20261231T225959Z",
            ),
            (
                rec(
                    serde_json::json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["tuesday"], "index": "second"}),
                    serde_json::json!({"type": "noEnd"}),
                ),
                "FREQ=MONTHLY;BYDAY=TU;BYSETPOS=2",
            ),
            (
                rec(
                    serde_json::json!({"type": "absoluteYearly", "interval": 1, "month": 3, "dayOfMonth": 2}),
                    serde_json::json!({"type": "noEnd"}),
                ),
                "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=2",
            ),
            (
                rec(
                    serde_json::json!({"type": "relativeYearly", "interval": 1, "month": 11, "daysOfWeek": ["thursday"], "index": "fourth"}),
                    serde_json::json!({"type": "noEnd"}),
                ),
                "FREQ=YEARLY;BYMONTH=11;BYDAY=TH;BYSETPOS=4",
            ),
            (
                rec(
                    serde_json::json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"}),
                    serde_json::json!({"type": "noEnd"}),
                ),
                "FREQ=MONTHLY;BYDAY=FR;BYSETPOS=-1",
            ),
        ];
        for (r, want) in cases {
            assert_eq!(to_rrule(&r, berlin).unwrap(), want);
        }
        let all_day = rec(
            serde_json::json!({"type": "daily"}),
            serde_json::json!({"type": "endDate", "endDate": "2026-03-10"}),
        );
        assert_eq!(
            to_rrule(&all_day, StartKind::Date).unwrap(),
            "FREQ=DAILY;UNTIL=20260310"
        );
    }

    #[test]
    fn wkst_defaults_to_monday_and_until_respects_the_time_of_day() {
        let start = NaiveDate::from_ymd_opt(2027, 3, 1)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        let r = from_rrule("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SU", start, "Europe/Berlin").unwrap();
        assert_eq!(r.pattern.first_day_of_week.as_deref(), Some("monday"));
        // 06:59Z on 26 April is 08:59 in Berlin, before that day's 09:00.
        let r = from_rrule(
            "FREQ=WEEKLY;BYDAY=MO;UNTIL=20270426T065900Z",
            start,
            "Europe/Berlin",
        )
        .unwrap();
        assert_eq!(r.range.end_date.as_deref(), Some("2027-04-25"));
        // 07:00Z is exactly 09:00: that occurrence is included.
        let r = from_rrule(
            "FREQ=WEEKLY;BYDAY=MO;UNTIL=20270426T070000Z",
            start,
            "Europe/Berlin",
        )
        .unwrap();
        assert_eq!(r.range.end_date.as_deref(), Some("2027-04-26"));
    }

    #[test]
    fn inexpressible_rules_are_refused_with_a_reason() {
        let start = NaiveDate::from_ymd_opt(2026, 3, 2)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        for rule in [
            "FREQ=HOURLY",
            "FREQ=MONTHLY;BYDAY=TU;BYSETPOS=5",
            "FREQ=YEARLY;BYMONTH=1,7;BYMONTHDAY=1",
            "FREQ=MONTHLY;BYMONTHDAY=-1",
            "FREQ=YEARLY;BYWEEKNO=20",
            "FREQ=DAILY;BYHOUR=9,17",
            "FREQ=MONTHLY;BYDAY=MO",
        ] {
            let e = from_rrule(rule, start, "Europe/Berlin").unwrap_err();
            assert!(!e.is_empty(), "{rule}");
        }
        let r = from_rrule("FREQ=MONTHLY;BYDAY=2TU", start, "Europe/Berlin").unwrap();
        assert_eq!(
            (r.pattern.kind.as_str(), r.pattern.index.as_deref()),
            ("relativeMonthly", Some("second"))
        );
    }

    fn arb_pattern() -> impl Strategy<Value = Recurrence> {
        let days = prop::sample::subsequence(
            DAYS.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>(),
            1..=7,
        );
        let idx = prop::sample::select(
            INDEXES
                .iter()
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>(),
        );
        let kind = prop::sample::select(vec![
            "daily",
            "weekly",
            "absoluteMonthly",
            "relativeMonthly",
            "absoluteYearly",
            "relativeYearly",
        ]);
        let first =
            prop::sample::select(DAYS.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>());
        let range = prop_oneof![
            Just(("noEnd".to_string(), 0u32, None)),
            (1u32..500).prop_map(|n| ("numbered".to_string(), n, None)),
            (0i64..2000).prop_map(|d| (
                "endDate".to_string(),
                0,
                Some(
                    (NaiveDate::from_ymd_opt(2026, 3, 2).unwrap() + chrono::Duration::days(d))
                        .format("%Y-%m-%d")
                        .to_string()
                )
            )),
        ];
        (
            kind,
            1u32..30,
            1u32..=12,
            1u32..=28,
            days,
            first,
            idx,
            range,
        )
            .prop_map(
                |(kind, interval, month, dom, days, first, idx, (rk, n, end))| {
                    let mut p = Pattern {
                        kind: kind.to_string(),
                        interval,
                        ..Pattern::default()
                    };
                    match kind {
                        "weekly" => {
                            p.days_of_week = days;
                            p.first_day_of_week = Some(first);
                        }
                        "absoluteMonthly" => p.day_of_month = dom,
                        "relativeMonthly" => {
                            p.days_of_week = days;
                            p.index = Some(idx);
                        }
                        "absoluteYearly" => {
                            p.month = month;
                            p.day_of_month = dom;
                        }
                        "relativeYearly" => {
                            p.month = month;
                            p.days_of_week = days;
                            p.index = Some(idx);
                        }
                        _ => {}
                    }
                    Recurrence {
                        pattern: p,
                        range: Range {
                            kind: rk,
                            start_date: Some("2026-03-02".into()),
                            end_date: end,
                            number_of_occurrences: n,
                            recurrence_time_zone: Some("Europe/Berlin".into()),
                        },
                    }
                },
            )
    }

    fn normalise(mut r: Recurrence) -> Recurrence {
        let order = |d: &String| DAYS.iter().position(|(n, _)| n == d).unwrap_or(9);
        r.pattern.days_of_week.sort_by_key(order);
        if r.pattern.kind != "weekly" {
            r.pattern.first_day_of_week = None;
        }
        r
    }

    proptest! {
        /// Every Graph pattern survives Graph → RRULE → Graph unchanged.
        #[test]
        fn every_pattern_round_trips_through_rrule(r in arb_pattern(), all_day in any::<bool>()) {
            let start = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap().and_hms_opt(if all_day { 0 } else { 9 }, 0, 0).unwrap();
            let kind = if all_day { StartKind::Date } else { StartKind::Timed(chrono_tz::Europe::Berlin) };
            let rule = to_rrule(&r, kind).unwrap();
            let back = from_rrule(&rule, start, "Europe/Berlin").unwrap();
            prop_assert_eq!(normalise(back), normalise(r), "via {}", rule);
        }
    }
}
