//! Graph's `patternedRecurrence` (`recurrencePattern` + `recurrenceRange`):
//! parsing, validation, rendering and expansion into occurrence dates.
//!
//! This is Graph's own recurrence model, so the emulator implements it in
//! full: `daily`, `weekly`, `absoluteMonthly`, `relativeMonthly`,
//! `absoluteYearly`, `relativeYearly`; ranges `endDate`, `noEnd`, `numbered`.
//! Pure date arithmetic; the caller adds the series' time of day and zone.

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde_json::{json, Value};

use super::super::errors::GraphError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatternKind {
    Daily,
    Weekly,
    AbsoluteMonthly,
    RelativeMonthly,
    AbsoluteYearly,
    RelativeYearly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WeekIndex {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeKind {
    EndDate,
    NoEnd,
    Numbered,
}

/// A parsed `patternedRecurrence`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recurrence {
    pub kind: PatternKind,
    pub interval: u32,
    pub month: u32,
    pub day_of_month: u32,
    pub days_of_week: Vec<Weekday>,
    pub first_day_of_week: Weekday,
    pub index: WeekIndex,
    pub range: RangeKind,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub count: u32,
    /// `recurrenceTimeZone` as the client named it (rendered back as given).
    pub time_zone: Option<String>,
}

/// Upper bound on generated candidate dates per expansion.
const MAX_STEPS: usize = 100_000;

fn day_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

fn parse_day(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_lowercase().as_str() {
        "monday" => Weekday::Mon,
        "tuesday" => Weekday::Tue,
        "wednesday" => Weekday::Wed,
        "thursday" => Weekday::Thu,
        "friday" => Weekday::Fri,
        "saturday" => Weekday::Sat,
        "sunday" => Weekday::Sun,
        _ => return None,
    })
}

fn bad(msg: &str) -> GraphError {
    GraphError::bad_request(msg)
}

impl Recurrence {
    /// Parses and validates a `recurrence` object as Graph requires it.
    pub fn parse(v: &Value) -> Result<Recurrence, GraphError> {
        let pattern = v
            .get("pattern")
            .filter(|p| p.is_object())
            .ok_or_else(|| bad("Recurrence pattern is required."))?;
        let range = v
            .get("range")
            .filter(|p| p.is_object())
            .ok_or_else(|| bad("Recurrence range is required."))?;
        let kind = match pattern
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("daily") => PatternKind::Daily,
            Some("weekly") => PatternKind::Weekly,
            Some("absolutemonthly") => PatternKind::AbsoluteMonthly,
            Some("relativemonthly") => PatternKind::RelativeMonthly,
            Some("absoluteyearly") => PatternKind::AbsoluteYearly,
            Some("relativeyearly") => PatternKind::RelativeYearly,
            _ => return Err(bad("Invalid recurrence pattern type.")),
        };
        let int = |key: &str| pattern.get(key).and_then(Value::as_u64).unwrap_or(0) as u32;
        let interval = match pattern.get("interval").and_then(Value::as_u64) {
            Some(i) if i >= 1 => i as u32,
            _ => return Err(bad("Recurrence pattern interval must be at least 1.")),
        };
        let mut days_of_week = Vec::new();
        if let Some(Value::Array(days)) = pattern.get("daysOfWeek") {
            for d in days {
                let w = d
                    .as_str()
                    .and_then(parse_day)
                    .ok_or_else(|| bad("Invalid daysOfWeek value."))?;
                if !days_of_week.contains(&w) {
                    days_of_week.push(w);
                }
            }
        }
        let first_day_of_week = match pattern.get("firstDayOfWeek").and_then(Value::as_str) {
            None => Weekday::Sun,
            Some(s) => parse_day(s).ok_or_else(|| bad("Invalid firstDayOfWeek value."))?,
        };
        let index = match pattern
            .get("index")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("first") => WeekIndex::First,
            Some("second") => WeekIndex::Second,
            Some("third") => WeekIndex::Third,
            Some("fourth") => WeekIndex::Fourth,
            Some("last") => WeekIndex::Last,
            Some(_) => return Err(bad("Invalid recurrence pattern index.")),
        };
        let month = int("month");
        let day_of_month = int("dayOfMonth");
        match kind {
            PatternKind::Weekly | PatternKind::RelativeMonthly | PatternKind::RelativeYearly
                if days_of_week.is_empty() =>
            {
                return Err(bad(
                    "daysOfWeek is required for this recurrence pattern type.",
                ))
            }
            PatternKind::AbsoluteMonthly | PatternKind::AbsoluteYearly
                if !(1..=31).contains(&day_of_month) =>
            {
                return Err(bad("dayOfMonth must be between 1 and 31."))
            }
            _ => {}
        }
        if matches!(
            kind,
            PatternKind::AbsoluteYearly | PatternKind::RelativeYearly
        ) && !(1..=12).contains(&month)
        {
            return Err(bad("month must be between 1 and 12."));
        }
        let range_kind = match range
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("enddate") => RangeKind::EndDate,
            Some("noend") => RangeKind::NoEnd,
            Some("numbered") => RangeKind::Numbered,
            _ => return Err(bad("Invalid recurrence range type.")),
        };
        let date = |key: &str| {
            range
                .get(key)
                .and_then(Value::as_str)
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        };
        let start_date =
            date("startDate").ok_or_else(|| bad("Recurrence range startDate is required."))?;
        let end_date = match range_kind {
            RangeKind::EndDate => {
                let e =
                    date("endDate").ok_or_else(|| bad("Recurrence range endDate is required."))?;
                if e < start_date {
                    return Err(bad("Recurrence range endDate is before its startDate."));
                }
                Some(e)
            }
            _ => None,
        };
        let count = range
            .get("numberOfOccurrences")
            .and_then(Value::as_u64)
            .unwrap_or(0) as u32;
        if range_kind == RangeKind::Numbered && count == 0 {
            return Err(bad("numberOfOccurrences must be at least 1."));
        }
        let time_zone = range
            .get("recurrenceTimeZone")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(Recurrence {
            kind,
            interval,
            month,
            day_of_month,
            days_of_week,
            first_day_of_week,
            index,
            range: range_kind,
            start_date,
            end_date,
            count,
            time_zone,
        })
    }

    /// Renders the way Graph returns it: every property present.
    pub fn render(&self, default_tz: &str) -> Value {
        let kind = match self.kind {
            PatternKind::Daily => "daily",
            PatternKind::Weekly => "weekly",
            PatternKind::AbsoluteMonthly => "absoluteMonthly",
            PatternKind::RelativeMonthly => "relativeMonthly",
            PatternKind::AbsoluteYearly => "absoluteYearly",
            PatternKind::RelativeYearly => "relativeYearly",
        };
        let index = match self.index {
            WeekIndex::First => "first",
            WeekIndex::Second => "second",
            WeekIndex::Third => "third",
            WeekIndex::Fourth => "fourth",
            WeekIndex::Last => "last",
        };
        let range = match self.range {
            RangeKind::EndDate => "endDate",
            RangeKind::NoEnd => "noEnd",
            RangeKind::Numbered => "numbered",
        };
        json!({
            "pattern": {
                "type": kind,
                "interval": self.interval,
                "month": self.month,
                "dayOfMonth": self.day_of_month,
                "firstDayOfWeek": day_name(self.first_day_of_week),
                "index": index,
                "daysOfWeek": self.days_of_week.iter().map(|d| day_name(*d)).collect::<Vec<_>>(),
            },
            "range": {
                "type": range,
                "startDate": self.start_date.format("%Y-%m-%d").to_string(),
                "endDate": self
                    .end_date
                    .map(|d| d.format("%Y-%m-%d").to_string())
                    .unwrap_or_else(|| "0001-01-01".to_string()),
                "recurrenceTimeZone": self.time_zone.as_deref().unwrap_or(default_tz),
                "numberOfOccurrences": if self.range == RangeKind::Numbered { self.count } else { 0 },
            }
        })
    }

    /// The occurrence dates of the series, in order, up to `until`
    /// (inclusive) and at most `max` of them.
    pub fn dates(&self, until: NaiveDate, max: usize) -> Vec<NaiveDate> {
        let last = match self.end_date {
            Some(e) if e < until => e,
            _ => until,
        };
        let limit = match self.range {
            RangeKind::Numbered => (self.count as usize).min(max),
            _ => max,
        };
        let mut out = Vec::new();
        let start = self.start_date;
        let interval = self.interval as i64;
        let mut k: i64 = 0;
        let mut steps = 0;
        'outer: while out.len() < limit && steps < MAX_STEPS {
            steps += 1;
            let candidates = match self.kind {
                PatternKind::Daily => vec![start + Duration::days(k * interval)],
                PatternKind::Weekly => {
                    let week0 =
                        start - Duration::days(days_after(self.first_day_of_week, start.weekday()));
                    let base = week0 + Duration::weeks(k * interval);
                    let mut v: Vec<NaiveDate> = self
                        .days_of_week
                        .iter()
                        .map(|d| base + Duration::days(days_after(self.first_day_of_week, *d)))
                        .collect();
                    v.sort();
                    v
                }
                PatternKind::AbsoluteMonthly | PatternKind::RelativeMonthly => {
                    let Some((y, m)) = add_months(start.year(), start.month(), k * interval) else {
                        break;
                    };
                    self.monthly_date(y, m).into_iter().collect()
                }
                PatternKind::AbsoluteYearly | PatternKind::RelativeYearly => {
                    let y = start.year() as i64 + k * interval;
                    if y > 9999 {
                        break;
                    }
                    self.monthly_date(y as i32, self.month)
                        .into_iter()
                        .collect()
                }
            };
            k += 1;
            for d in candidates {
                if d > last {
                    break 'outer;
                }
                if d < start {
                    continue;
                }
                out.push(d);
                if out.len() >= limit {
                    break 'outer;
                }
            }
        }
        out
    }

    /// The date this pattern picks in month `m` of year `y`, if any.
    fn monthly_date(&self, y: i32, m: u32) -> Option<NaiveDate> {
        match self.kind {
            PatternKind::AbsoluteMonthly | PatternKind::AbsoluteYearly => {
                // Outlook puts "day 31" on the last day of shorter months.
                let day = self.day_of_month.min(days_in_month(y, m));
                NaiveDate::from_ymd_opt(y, m, day)
            }
            _ => {
                let dim = days_in_month(y, m);
                let matching: Vec<NaiveDate> = (1..=dim)
                    .filter_map(|d| NaiveDate::from_ymd_opt(y, m, d))
                    .filter(|d| self.days_of_week.contains(&d.weekday()))
                    .collect();
                match self.index {
                    WeekIndex::First => matching.first().copied(),
                    WeekIndex::Second => matching.get(1).copied(),
                    WeekIndex::Third => matching.get(2).copied(),
                    WeekIndex::Fourth => matching.get(3).copied(),
                    WeekIndex::Last => matching.last().copied(),
                }
            }
        }
    }
}

/// Days from `from` forward to `to` within a week (0..=6).
fn days_after(from: Weekday, to: Weekday) -> i64 {
    (to.num_days_from_sunday() as i64 - from.num_days_from_sunday() as i64).rem_euclid(7)
}

fn add_months(y: i32, m: u32, add: i64) -> Option<(i32, u32)> {
    let total = y as i64 * 12 + (m as i64 - 1) + add;
    let ny = total.div_euclid(12);
    if ny > 9999 {
        return None;
    }
    Some((ny as i32, (total.rem_euclid(12) + 1) as u32))
}

fn days_in_month(y: i32, m: u32) -> u32 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    match (
        NaiveDate::from_ymd_opt(ny, nm, 1),
        NaiveDate::from_ymd_opt(y, m, 1),
    ) {
        (Some(a), Some(b)) => (a - b).num_days() as u32,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn rec(pattern: Value, range: Value) -> Recurrence {
        Recurrence::parse(&json!({"pattern": pattern, "range": range})).unwrap()
    }

    #[test]
    fn weekly_numbered() {
        let r = rec(
            json!({"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "wednesday"], "firstDayOfWeek": "sunday"}),
            json!({"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 4}),
        );
        assert_eq!(
            r.dates(d(2027, 1, 1), 100),
            vec![d(2026, 3, 2), d(2026, 3, 4), d(2026, 3, 9), d(2026, 3, 11)]
        );
    }

    #[test]
    fn weekly_start_mid_week_skips_earlier_days() {
        let r = rec(
            json!({"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "friday"]}),
            json!({"type": "endDate", "startDate": "2026-03-04", "endDate": "2026-03-31"}),
        );
        assert_eq!(
            r.dates(d(2027, 1, 1), 100),
            vec![
                d(2026, 3, 6),
                d(2026, 3, 16),
                d(2026, 3, 20),
                d(2026, 3, 30)
            ]
        );
    }

    #[test]
    fn monthly_variants() {
        let abs = rec(
            json!({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31}),
            json!({"type": "numbered", "startDate": "2026-01-31", "numberOfOccurrences": 3}),
        );
        assert_eq!(
            abs.dates(d(2027, 1, 1), 100),
            vec![d(2026, 1, 31), d(2026, 2, 28), d(2026, 3, 31)]
        );
        let rel = rec(
            json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["thursday"], "index": "last"}),
            json!({"type": "noEnd", "startDate": "2026-03-01"}),
        );
        assert_eq!(
            rel.dates(d(2026, 5, 31), 100),
            vec![d(2026, 3, 26), d(2026, 4, 30), d(2026, 5, 28)]
        );
        let weekend = rec(
            json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["saturday", "sunday"], "index": "first"}),
            json!({"type": "numbered", "startDate": "2026-03-01", "numberOfOccurrences": 2}),
        );
        assert_eq!(
            weekend.dates(d(2027, 1, 1), 100),
            vec![d(2026, 3, 1), d(2026, 4, 4)]
        );
    }

    #[test]
    fn yearly_variants_and_rendering() {
        let abs = rec(
            json!({"type": "absoluteYearly", "interval": 1, "dayOfMonth": 29, "month": 2}),
            json!({"type": "numbered", "startDate": "2027-01-01", "numberOfOccurrences": 2}),
        );
        assert_eq!(
            abs.dates(d(2040, 1, 1), 100),
            vec![d(2027, 2, 28), d(2028, 2, 29)]
        );
        let rel = rec(
            json!({"type": "relativeYearly", "interval": 1, "daysOfWeek": ["thursday"], "index": "fourth", "month": 11}),
            json!({"type": "numbered", "startDate": "2026-01-01", "numberOfOccurrences": 1}),
        );
        assert_eq!(rel.dates(d(2040, 1, 1), 100), vec![d(2026, 11, 26)]);
        let v = rel.render("UTC");
        assert_eq!(v["pattern"]["type"], "relativeYearly");
        assert_eq!(v["range"]["endDate"], "0001-01-01");
        assert_eq!(v["range"]["recurrenceTimeZone"], "UTC");
    }

    #[test]
    fn validation() {
        assert!(Recurrence::parse(&json!({"pattern": {"type": "weekly", "interval": 1}, "range": {"type": "noEnd", "startDate": "2026-01-01"}})).is_err());
        assert!(Recurrence::parse(&json!({"pattern": {"type": "daily", "interval": 0}, "range": {"type": "noEnd", "startDate": "2026-01-01"}})).is_err());
        assert!(Recurrence::parse(&json!({"pattern": {"type": "daily", "interval": 1}, "range": {"type": "endDate", "startDate": "2026-01-01"}})).is_err());
    }
}
