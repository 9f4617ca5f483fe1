//! RRULE (RFC 5545 §3.3.10): parsing, writing, and the occurrences a rule
//! produces from a DTSTART, in wall-clock (naive) time.
//!
//! This module owns the recurrence arithmetic only. It does not know about
//! zones (the caller converts each occurrence, and a UTC `UNTIL`, through
//! [`crate::ics::tz::Zone`]), nor about RDATE / EXDATE / overrides, which
//! [`crate::ics::recur`] combines.
//!
//! How occurrences are found: the rule walks its periods (a year, month,
//! week, day, hour, minute or second, times INTERVAL). In each period the
//! candidate days are the days of the period that pass every BYxxx day rule
//! present (the expand / limit table of §3.8.5.3 reduces to that, once the
//! defaults taken from DTSTART are filled in), and the candidate times are
//! the product of the hour, minute and second lists. Candidates are never
//! materialised: day list × time lists form a sorted index space, so
//! BYSETPOS and "first candidate after T" are index arithmetic.
//!
//! Hostile rules are bounded: at most [`RRuleIter::with_limit`] occurrences
//! are produced (counting those skipped because they precede a window
//! start), a run of empty periods long enough to prove the rule never
//! matches again ends the walk (the Gregorian calendar repeats every 400
//! years), and a work budget caps the total effort. [`RRuleIter::truncated`]
//! tells whether a bound, rather than the rule, ended the walk.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Weekday};

use super::value::DateTimeValue;
use super::IcsError;

/// FREQ, ordered from the finest to the coarsest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Frequency {
    Secondly,
    Minutely,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Frequency {
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Secondly => "SECONDLY",
            Frequency::Minutely => "MINUTELY",
            Frequency::Hourly => "HOURLY",
            Frequency::Daily => "DAILY",
            Frequency::Weekly => "WEEKLY",
            Frequency::Monthly => "MONTHLY",
            Frequency::Yearly => "YEARLY",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "SECONDLY" => Frequency::Secondly,
            "MINUTELY" => Frequency::Minutely,
            "HOURLY" => Frequency::Hourly,
            "DAILY" => Frequency::Daily,
            "WEEKLY" => Frequency::Weekly,
            "MONTHLY" => Frequency::Monthly,
            "YEARLY" => Frequency::Yearly,
            _ => return None,
        })
    }
}

/// One BYDAY entry: a weekday, optionally with an ordinal (`-1SU`, `2MO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WeekdayNum {
    pub ordinal: Option<i8>,
    pub weekday: Weekday,
}

impl fmt::Display for WeekdayNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.ordinal {
            write!(f, "{n}")?;
        }
        f.write_str(weekday_code(self.weekday))
    }
}

pub(crate) fn weekday_code(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    }
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_uppercase().as_str() {
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

/// A parsed recurrence rule. Lists keep the values as written (order and
/// duplicates included) so that [`RRule::to_string`] stays close to the
/// input; iteration sorts and deduplicates its own copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RRule {
    pub freq: Frequency,
    pub interval: u32,
    pub count: Option<u32>,
    pub until: Option<DateTimeValue>,
    pub wkst: Weekday,
    pub by_second: Vec<u8>,
    pub by_minute: Vec<u8>,
    pub by_hour: Vec<u8>,
    pub by_day: Vec<WeekdayNum>,
    pub by_month_day: Vec<i8>,
    pub by_year_day: Vec<i16>,
    pub by_week_no: Vec<i8>,
    pub by_month: Vec<u8>,
    pub by_set_pos: Vec<i16>,
}

/// Most occurrences one iterator produces unless told otherwise.
pub const DEFAULT_LIMIT: usize = 1_000_000;

/// Units of work (periods visited, days examined, occurrences produced)
/// after which an iterator gives up. Generous for any real rule; a few tens
/// of milliseconds for a hostile one.
pub const WORK_BUDGET: u64 = 5_000_000;

/// Last year iCalendar can write; iteration stops there.
const MAX_YEAR: i32 = 9999;

impl RRule {
    /// A rule of this frequency with no other parts.
    pub fn new(freq: Frequency) -> Self {
        RRule {
            freq,
            interval: 1,
            count: None,
            until: None,
            wkst: Weekday::Mon,
            by_second: Vec::new(),
            by_minute: Vec::new(),
            by_hour: Vec::new(),
            by_day: Vec::new(),
            by_month_day: Vec::new(),
            by_year_day: Vec::new(),
            by_week_no: Vec::new(),
            by_month: Vec::new(),
            by_set_pos: Vec::new(),
        }
    }

    /// Parse a RECUR value. Lenient about order, letter case, spaces, a
    /// trailing `;`, `INTERVAL=0` (read as 1), `X-` parts, `RSCALE=GREGORIAN`
    /// and both COUNT and UNTIL (the first reached ends the rule); refuses
    /// a missing FREQ, repeated parts, unknown parts and out-of-range values
    /// with a message naming the part.
    pub fn parse(s: &str) -> Result<Self, IcsError> {
        let bad = |msg: String| IcsError::Invalid(format!("RRULE {s:?}: {msg}"));
        let mut freq = None;
        let mut rule = RRule::new(Frequency::Daily);
        let mut seen: Vec<String> = Vec::new();
        for part in s.split(';') {
            let part = part.trim_matches(|c: char| c.is_whitespace() || c == '\0');
            if part.is_empty() {
                continue;
            }
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not NAME=VALUE")))?;
            let name = name.trim().to_ascii_uppercase();
            let value = value.trim();
            if name.starts_with("X-") {
                continue;
            }
            if seen.contains(&name) {
                return Err(bad(format!("{name} given twice")));
            }
            seen.push(name.clone());
            match name.as_str() {
                "FREQ" => {
                    freq = Some(
                        Frequency::parse(value)
                            .ok_or_else(|| bad(format!("unknown FREQ {value:?}")))?,
                    )
                }
                "INTERVAL" => {
                    let n: u32 = value
                        .parse()
                        .map_err(|_| bad(format!("INTERVAL {value:?} is not a number")))?;
                    rule.interval = n.max(1);
                }
                "COUNT" => {
                    rule.count = Some(
                        value
                            .parse()
                            .map_err(|_| bad(format!("COUNT {value:?} is not a number")))?,
                    )
                }
                "UNTIL" => {
                    rule.until = Some(
                        DateTimeValue::from_value(value, &[])
                            .map_err(|_| bad(format!("UNTIL {value:?} is not a date")))?,
                    )
                }
                "WKST" => {
                    rule.wkst = parse_weekday(value)
                        .ok_or_else(|| bad(format!("WKST {value:?} is not a weekday")))?
                }
                "BYSECOND" => rule.by_second = int_list(value, 0, 60, false).map_err(&bad)?,
                "BYMINUTE" => rule.by_minute = int_list(value, 0, 59, false).map_err(&bad)?,
                "BYHOUR" => rule.by_hour = int_list(value, 0, 23, false).map_err(&bad)?,
                "BYMONTHDAY" => rule.by_month_day = int_list(value, 1, 31, true).map_err(&bad)?,
                "BYYEARDAY" => rule.by_year_day = int_list(value, 1, 366, true).map_err(&bad)?,
                "BYWEEKNO" => rule.by_week_no = int_list(value, 1, 53, true).map_err(&bad)?,
                "BYMONTH" => rule.by_month = int_list(value, 1, 12, false).map_err(&bad)?,
                "BYSETPOS" => rule.by_set_pos = int_list(value, 1, 366, true).map_err(&bad)?,
                "BYDAY" => {
                    for item in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
                        rule.by_day.push(
                            parse_weekday_num(item)
                                .ok_or_else(|| bad(format!("BYDAY {item:?} is not a weekday")))?,
                        );
                    }
                }
                "RSCALE" if value.eq_ignore_ascii_case("GREGORIAN") => {}
                "SKIP" if value.eq_ignore_ascii_case("OMIT") => {}
                _ => return Err(bad(format!("unknown or unsupported part {name}={value}"))),
            }
        }
        rule.freq = freq.ok_or_else(|| bad("no FREQ".into()))?;
        Ok(rule)
    }

    /// The occurrences from `dtstart` (wall-clock time), in order. UNTIL is
    /// compared as written (a DATE includes its whole day); call
    /// [`RRuleIter::with_until`] to compare against a UTC UNTIL converted to
    /// the rule's zone.
    pub fn iter(&self, dtstart: NaiveDateTime) -> RRuleIter {
        RRuleIter::new(self, dtstart)
    }

    /// UNTIL as wall-clock time without any zone conversion (a DATE is the
    /// end of its day).
    pub fn naive_until(&self) -> Option<NaiveDateTime> {
        self.until.as_ref().map(|u| match u {
            DateTimeValue::Date(d) => d.and_hms_opt(23, 59, 59).expect("valid time"),
            other => other.local(),
        })
    }
}

fn parse_weekday_num(item: &str) -> Option<WeekdayNum> {
    let split = item.len().checked_sub(2)?;
    if !item.is_char_boundary(split) {
        return None;
    }
    let (num, day) = item.split_at(split);
    let weekday = parse_weekday(day)?;
    let num = num.trim();
    let ordinal = if num.is_empty() || num == "+" {
        None
    } else {
        let n: i8 = num.strip_prefix('+').unwrap_or(num).parse().ok()?;
        if n == 0 || !(-53..=53).contains(&n) {
            return None;
        }
        Some(n)
    };
    Some(WeekdayNum { ordinal, weekday })
}

fn int_list<T: TryFrom<i32>>(
    value: &str,
    min: i32,
    max: i32,
    signed: bool,
) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        let n: i32 = item
            .strip_prefix('+')
            .unwrap_or(item)
            .parse()
            .map_err(|_| format!("{item:?} is not a number"))?;
        let ok = (min..=max).contains(&n) || (signed && (-max..=-min).contains(&n));
        if !ok {
            return Err(if signed {
                format!("{n} is outside ±{min}..{max}")
            } else {
                format!("{n} is outside {min}..{max}")
            });
        }
        out.push(T::try_from(n).map_err(|_| format!("{n} is out of range"))?);
    }
    Ok(out)
}

impl FromStr for RRule {
    type Err = IcsError;
    fn from_str(s: &str) -> Result<Self, IcsError> {
        RRule::parse(s)
    }
}

fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, name: &str, v: &[T]) -> fmt::Result {
    if v.is_empty() {
        return Ok(());
    }
    write!(f, ";{name}=")?;
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{x}")?;
    }
    Ok(())
}

impl fmt::Display for RRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FREQ={}", self.freq.as_str())?;
        if let Some(u) = &self.until {
            write!(f, ";UNTIL={u}")?;
        }
        if let Some(c) = self.count {
            write!(f, ";COUNT={c}")?;
        }
        if self.interval != 1 {
            write!(f, ";INTERVAL={}", self.interval)?;
        }
        write_list(f, "BYSECOND", &self.by_second)?;
        write_list(f, "BYMINUTE", &self.by_minute)?;
        write_list(f, "BYHOUR", &self.by_hour)?;
        write_list(f, "BYDAY", &self.by_day)?;
        write_list(f, "BYMONTHDAY", &self.by_month_day)?;
        write_list(f, "BYYEARDAY", &self.by_year_day)?;
        write_list(f, "BYWEEKNO", &self.by_week_no)?;
        write_list(f, "BYMONTH", &self.by_month)?;
        write_list(f, "BYSETPOS", &self.by_set_pos)?;
        if self.wkst != Weekday::Mon {
            write!(f, ";WKST={}", weekday_code(self.wkst))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Iteration

/// The rule with DTSTART's defaults filled in, as bit masks and sorted lists.
#[derive(Debug, Clone)]
struct Plan {
    freq: Frequency,
    interval: i64,
    wkst: Weekday,
    months: u16,         // bit m (1..=12); 0 = any
    month_days_pos: u32, // bit d (1..=31)
    month_days_neg: u32, // bit d for -d
    year_days: Vec<i16>,
    week_nos: Vec<i8>,
    week_days: u8, // bit weekday.num_days_from_monday(), weekdays without ordinal
    nth_days: Vec<WeekdayNum>,
    /// Ordinals of BYDAY count within the month (else within the year).
    nth_in_month: bool,
    hours: Vec<u8>,   // expansion list (for frequencies coarser than HOURLY)
    minutes: Vec<u8>, // for frequencies coarser than MINUTELY
    seconds: Vec<u8>, // for frequencies coarser than SECONDLY
    hour_mask: u32,   // limits (0 = any)
    minute_mask: u64,
    second_mask: u64,
    set_pos: Vec<i16>,
    /// Months a YEARLY period scans.
    year_months: Vec<u32>,
}

fn sorted<T: Ord + Copy>(v: &[T]) -> Vec<T> {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.dedup();
    s
}

impl Plan {
    fn new(rule: &RRule, dtstart: NaiveDateTime) -> Plan {
        let freq = rule.freq;
        let mut by_month = sorted(&rule.by_month);
        let mut by_month_day = sorted(&rule.by_month_day);
        let mut by_day = rule.by_day.clone();
        let no_day_rules = rule.by_week_no.is_empty()
            && rule.by_year_day.is_empty()
            && rule.by_month_day.is_empty()
            && rule.by_day.is_empty();
        if no_day_rules {
            match freq {
                Frequency::Yearly => {
                    if by_month.is_empty() {
                        by_month = vec![dtstart.month() as u8];
                    }
                    by_month_day = vec![dtstart.day() as i8];
                }
                Frequency::Monthly => by_month_day = vec![dtstart.day() as i8],
                Frequency::Weekly => {
                    by_day = vec![WeekdayNum {
                        ordinal: None,
                        weekday: dtstart.weekday(),
                    }]
                }
                _ => {}
            }
        }
        // Ordinals only mean something in MONTHLY and YEARLY rules; elsewhere
        // (not allowed by RFC 5545) they are read as the plain weekday.
        let ordinals_allowed = matches!(freq, Frequency::Monthly | Frequency::Yearly);
        let mut week_days = 0u8;
        let mut nth_days = Vec::new();
        for wd in &by_day {
            match wd.ordinal {
                Some(_) if ordinals_allowed => nth_days.push(*wd),
                _ => week_days |= 1 << wd.weekday.num_days_from_monday(),
            }
        }
        let mut months = 0u16;
        for m in &by_month {
            months |= 1 << m;
        }
        let (mut pos, mut neg) = (0u32, 0u32);
        for d in &by_month_day {
            if *d > 0 {
                pos |= 1 << d;
            } else {
                neg |= 1 << (-*d);
            }
        }
        let expand_list = |list: &[u8], coarser_than: Frequency, default: u32| -> Vec<u8> {
            if freq <= coarser_than {
                Vec::new()
            } else if list.is_empty() {
                vec![default as u8]
            } else {
                // A leap second cannot be represented; like Feb 30 it is skipped.
                sorted(list).into_iter().filter(|v| *v < 60).collect()
            }
        };
        let mask = |list: &[u8]| {
            list.iter()
                .filter(|v| **v < 60)
                .fold(0u64, |m, v| m | 1 << v)
        };
        Plan {
            freq,
            interval: i64::from(rule.interval.max(1)),
            wkst: rule.wkst,
            months,
            month_days_pos: pos,
            month_days_neg: neg,
            year_days: sorted(&rule.by_year_day),
            week_nos: sorted(&rule.by_week_no),
            week_days,
            nth_days,
            nth_in_month: freq == Frequency::Monthly || !by_month.is_empty(),
            hours: expand_list(&rule.by_hour, Frequency::Hourly, dtstart.hour()),
            minutes: expand_list(&rule.by_minute, Frequency::Minutely, dtstart.minute()),
            seconds: expand_list(&rule.by_second, Frequency::Secondly, dtstart.second()),
            hour_mask: mask(&rule.by_hour) as u32,
            minute_mask: mask(&rule.by_minute),
            second_mask: if rule.by_second.is_empty() {
                0
            } else {
                // Only a leap second given: nothing can match; keep the mask
                // non-zero (bit 63 is no real second) so the limit applies.
                mask(&rule.by_second) | 1 << 63
            },
            set_pos: sorted(&rule.by_set_pos),
            year_months: if by_month.is_empty() {
                (1..=12).collect()
            } else {
                by_month.iter().map(|m| u32::from(*m)).collect()
            },
        }
    }

    /// Whether a day passes every day-level BYxxx rule.
    fn day_ok(&self, d: NaiveDate) -> bool {
        if self.months != 0 && self.months & (1 << d.month()) == 0 {
            return false;
        }
        if (self.month_days_pos | self.month_days_neg) != 0 {
            let day = d.day();
            let from_end = days_in_month(d.year(), d.month()) - day + 1;
            if self.month_days_pos & (1 << day) == 0 && self.month_days_neg & (1 << from_end) == 0 {
                return false;
            }
        }
        if !self.year_days.is_empty() {
            let n = d.ordinal() as i16;
            let len = days_in_year(d.year()) as i16;
            if !self
                .year_days
                .iter()
                .any(|&y| if y > 0 { y == n } else { len + 1 + y == n })
            {
                return false;
            }
        }
        if !self.week_nos.is_empty() {
            let (no, weeks) = week_number(d, self.wkst);
            if !self
                .week_nos
                .iter()
                .any(|&w| if w > 0 { w == no } else { weeks + 1 + w == no })
            {
                return false;
            }
        }
        if self.week_days != 0 || !self.nth_days.is_empty() {
            let wd = d.weekday();
            if self.week_days & (1 << wd.num_days_from_monday()) != 0 {
                return true;
            }
            let (index, len) = if self.nth_in_month {
                (d.day0() as i32, days_in_month(d.year(), d.month()) as i32)
            } else {
                (d.ordinal0() as i32, days_in_year(d.year()) as i32)
            };
            let from_start = index / 7 + 1;
            let from_end = -((len - 1 - index) / 7 + 1);
            return self.nth_days.iter().any(|n| {
                n.weekday == wd
                    && n.ordinal
                        .is_some_and(|o| i32::from(o) == from_start || i32::from(o) == from_end)
            });
        }
        true
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_year(y: i32) -> u32 {
    if is_leap(y) {
        366
    } else {
        365
    }
}

pub(crate) fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// First day of week 1 of `year` for weeks starting on `wkst`: the week
/// holding at least four days of the year (RFC 5545 §3.3.10, ISO 8601).
fn week_one_start(year: i32, wkst: Weekday) -> NaiveDate {
    let jan1 = NaiveDate::from_ymd_opt(year, 1, 1).expect("valid year");
    let into_week = (7 + jan1.weekday().num_days_from_monday() - wkst.num_days_from_monday()) % 7;
    if into_week <= 3 {
        jan1 - chrono::Duration::days(i64::from(into_week))
    } else {
        jan1 + chrono::Duration::days(i64::from(7 - into_week))
    }
}

/// (week number, number of weeks in that week-numbering year) of `d`.
fn week_number(d: NaiveDate, wkst: Weekday) -> (i8, i8) {
    let y = d.year();
    let this = week_one_start(y, wkst);
    let (start, next) = if d < this {
        (week_one_start(y - 1, wkst), this)
    } else {
        let next = week_one_start(y + 1, wkst);
        if d >= next {
            (next, week_one_start(y + 2, wkst))
        } else {
            (this, next)
        }
    };
    let no = (d - start).num_days() / 7 + 1;
    let weeks = (next - start).num_days() / 7;
    (no as i8, weeks as i8)
}

const SECS_PER_DAY: i64 = 86_400;

fn naive_secs(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp()
}

fn from_naive_secs(s: i64) -> Option<NaiveDateTime> {
    chrono::DateTime::from_timestamp(s, 0).map(|d| d.naive_utc())
}

/// Which candidates of the current period remain.
#[derive(Debug, Clone)]
enum Selection {
    /// Indices `next..end` of the candidate space.
    Range { next: usize, end: usize },
    /// BYSETPOS picks: sorted candidate indices, `pos` is the next to use.
    Picks { list: Vec<usize>, pos: usize },
}

/// Iterator over a rule's occurrences; see the module doc for its bounds.
#[derive(Debug, Clone)]
pub struct RRuleIter {
    plan: Plan,
    dtstart: NaiveDateTime,
    until: Option<NaiveDateTime>,
    /// Occurrences before this are counted (for COUNT) but not produced.
    after: Option<NaiveDateTime>,
    count_left: Option<u64>,
    limit: u64,
    produced: u64,
    work: u64,
    empty_run: u64,
    max_empty: u64,
    /// Index of the current period (in INTERVAL steps from DTSTART's period).
    period: i64,
    started: bool,
    done: bool,
    truncated: bool,
    // Period origins.
    year0: i32,
    month0: i64,
    week0: i64, // days from CE of DTSTART's week start
    day0: i64,
    sub0: i64, // naive seconds of DTSTART truncated to the unit
    // Current period's candidate space.
    days: Vec<NaiveDate>,
    hours: Vec<u8>,
    minutes: Vec<u8>,
    seconds: Vec<u8>,
    sel: Selection,
    // Sub-daily cache: the last day checked and its verdict.
    sub_day: i64,
    sub_day_ok: bool,
}

impl RRuleIter {
    fn new(rule: &RRule, dtstart: NaiveDateTime) -> Self {
        let plan = Plan::new(rule, dtstart);
        let date = dtstart.date();
        let days_ce = i64::from(date.num_days_from_ce());
        let back =
            (7 + date.weekday().num_days_from_monday() - plan.wkst.num_days_from_monday()) % 7;
        let unit = match plan.freq {
            Frequency::Hourly => 3600,
            Frequency::Minutely => 60,
            _ => 1,
        };
        let secs = naive_secs(dtstart);
        let max_empty = match plan.freq {
            Frequency::Yearly => 400,
            Frequency::Monthly => 4_800,
            Frequency::Weekly => 20_871,
            Frequency::Daily => 146_097,
            _ => 1_000_000,
        };
        RRuleIter {
            until: rule.naive_until(),
            after: None,
            count_left: rule.count.map(u64::from),
            limit: DEFAULT_LIMIT as u64,
            produced: 0,
            work: 0,
            empty_run: 0,
            max_empty,
            period: 0,
            started: false,
            done: false,
            truncated: false,
            year0: dtstart.year(),
            month0: i64::from(dtstart.year()) * 12 + i64::from(dtstart.month0()),
            week0: days_ce - i64::from(back),
            day0: days_ce,
            sub0: secs - secs.rem_euclid(unit),
            days: Vec::new(),
            hours: Vec::new(),
            minutes: Vec::new(),
            seconds: Vec::new(),
            sel: Selection::Range { next: 0, end: 0 },
            sub_day: i64::MIN,
            sub_day_ok: false,
            dtstart,
            plan,
        }
    }

    /// Compare occurrences against this UNTIL (wall-clock time in the rule's
    /// zone) instead of the rule's own, e.g. a UTC UNTIL converted.
    pub fn with_until(mut self, until: Option<NaiveDateTime>) -> Self {
        self.until = until;
        self
    }

    /// Produce at most `n` occurrences (counting those skipped by
    /// [`RRuleIter::starting_at`] when the rule has a COUNT).
    pub fn with_limit(mut self, n: usize) -> Self {
        self.limit = n as u64;
        self
    }

    /// Produce only occurrences at or after `t`. Without COUNT the walk
    /// jumps straight to the period holding `t` (no walk from DTSTART);
    /// with COUNT it walks from DTSTART, since every earlier occurrence
    /// counts. Call before the first `next()`.
    pub fn starting_at(mut self, t: NaiveDateTime) -> Self {
        if self.started || t <= self.dtstart {
            return self;
        }
        self.after = Some(t);
        if self.count_left.is_none() {
            self.period = self.period_index_at(t).max(0);
        }
        self
    }

    /// True when a bound (limit, work budget, empty-period cap, year 9999)
    /// rather than the rule itself ended the walk.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The index of the period holding wall-clock time `t`, rounded down to
    /// a multiple of INTERVAL steps.
    fn period_index_at(&self, t: NaiveDateTime) -> i64 {
        let units = match self.plan.freq {
            Frequency::Yearly => i64::from(t.year()) - i64::from(self.year0),
            Frequency::Monthly => i64::from(t.year()) * 12 + i64::from(t.month0()) - self.month0,
            Frequency::Weekly => {
                (i64::from(t.date().num_days_from_ce()) - self.week0).div_euclid(7)
            }
            Frequency::Daily => i64::from(t.date().num_days_from_ce()) - self.day0,
            Frequency::Hourly => (naive_secs(t) - self.sub0).div_euclid(3600),
            Frequency::Minutely => (naive_secs(t) - self.sub0).div_euclid(60),
            Frequency::Secondly => naive_secs(t) - self.sub0,
        };
        units.div_euclid(self.plan.interval)
    }

    fn stop(&mut self, truncated: bool) {
        self.done = true;
        self.truncated |= truncated;
    }

    /// Count one empty period; false (and the walk ends) when the run of
    /// empty periods or the work budget is exhausted.
    fn note_empty(&mut self) -> bool {
        self.empty_run += 1;
        self.work += 1;
        if self.empty_run > self.max_empty {
            // Long enough to be sure (for day-based frequencies) the rule
            // never matches again: the calendar repeats every 400 years.
            self.stop(self.plan.freq < Frequency::Daily);
            return false;
        }
        if self.work > WORK_BUDGET {
            self.stop(true);
            return false;
        }
        true
    }

    /// Load the next period with at least one candidate into `days` and the
    /// time lists. False when the walk is over.
    fn load_period(&mut self) -> bool {
        loop {
            if self.done {
                return false;
            }
            let found = if self.plan.freq >= Frequency::Daily {
                let ok = self.load_day_period();
                self.period += 1;
                ok
            } else {
                self.load_sub_daily_period()
            };
            if self.done {
                return false;
            }
            if found {
                let n =
                    self.days.len() * self.hours.len() * self.minutes.len() * self.seconds.len();
                if n > 0 {
                    self.sel = if self.plan.set_pos.is_empty() {
                        Selection::Range { next: 0, end: n }
                    } else {
                        let mut list: Vec<usize> = self
                            .plan
                            .set_pos
                            .iter()
                            .filter_map(|&p| {
                                let p = i64::from(p);
                                let i = if p > 0 { p - 1 } else { n as i64 + p };
                                (0..n as i64).contains(&i).then_some(i as usize)
                            })
                            .collect();
                        list.sort_unstable();
                        list.dedup();
                        Selection::Picks { list, pos: 0 }
                    };
                    if !self.sel_is_empty() {
                        self.empty_run = 0;
                        return true;
                    }
                }
            }
            if !self.note_empty() {
                return false;
            }
        }
    }

    fn sel_is_empty(&self) -> bool {
        match &self.sel {
            Selection::Range { next, end } => next >= end,
            Selection::Picks { list, pos } => *pos >= list.len(),
        }
    }

    /// Fill the candidate days of the current YEARLY / MONTHLY / WEEKLY /
    /// DAILY period.
    fn load_day_period(&mut self) -> bool {
        let step = self.period.saturating_mul(self.plan.interval);
        self.days.clear();
        let plan = &self.plan;
        match plan.freq {
            Frequency::Yearly => {
                let y = i64::from(self.year0).saturating_add(step);
                if y > i64::from(MAX_YEAR) {
                    self.stop(true);
                    return false;
                }
                let y = y as i32;
                for &m in &plan.year_months {
                    let first = NaiveDate::from_ymd_opt(y, m, 1).expect("valid month");
                    for d in first.iter_days().take(days_in_month(y, m) as usize) {
                        if plan.day_ok(d) {
                            self.days.push(d);
                        }
                    }
                    self.work += u64::from(days_in_month(y, m));
                }
            }
            Frequency::Monthly => {
                let mi = self.month0.saturating_add(step);
                let y = mi.div_euclid(12);
                if y > i64::from(MAX_YEAR) {
                    self.stop(true);
                    return false;
                }
                let (y, m) = (y as i32, mi.rem_euclid(12) as u32 + 1);
                if plan.months == 0 || plan.months & (1 << m) != 0 {
                    let first = NaiveDate::from_ymd_opt(y, m, 1).expect("valid month");
                    for d in first.iter_days().take(days_in_month(y, m) as usize) {
                        if plan.day_ok(d) {
                            self.days.push(d);
                        }
                    }
                    self.work += u64::from(days_in_month(y, m));
                }
            }
            Frequency::Weekly | Frequency::Daily => {
                let (first, len) = if plan.freq == Frequency::Weekly {
                    (self.week0.saturating_add(step.saturating_mul(7)), 7)
                } else {
                    (self.day0.saturating_add(step), 1)
                };
                for n in first..first + len {
                    let Some(d) = i32::try_from(n)
                        .ok()
                        .and_then(NaiveDate::from_num_days_from_ce_opt)
                        .filter(|d| d.year() <= MAX_YEAR)
                    else {
                        self.stop(true);
                        return false;
                    };
                    if plan.day_ok(d) {
                        self.days.push(d);
                    }
                }
                self.work += len as u64;
            }
            _ => unreachable!("sub-daily frequencies use load_sub_daily_period"),
        }
        if self.days.is_empty() {
            return false;
        }
        self.hours.clone_from(&self.plan.hours);
        self.minutes.clone_from(&self.plan.minutes);
        self.seconds.clone_from(&self.plan.seconds);
        true
    }

    /// Move to the next HOURLY / MINUTELY / SECONDLY period that passes the
    /// day, hour and minute limits, jumping over whole days, hours and
    /// minutes that fail them.
    fn load_sub_daily_period(&mut self) -> bool {
        let unit = match self.plan.freq {
            Frequency::Hourly => 3600,
            Frequency::Minutely => 60,
            _ => 1,
        };
        let step = self.plan.interval * unit;
        loop {
            let Some(t) = self
                .period
                .checked_mul(step)
                .and_then(|o| o.checked_add(self.sub0))
            else {
                self.stop(true);
                return false;
            };
            let day = t.div_euclid(SECS_PER_DAY);
            let sod = t.rem_euclid(SECS_PER_DAY);
            // Jump to the first period at or after `boundary`.
            let jump_to = |boundary: i64| -> i64 { (boundary - t + step - 1) / step };
            if day != self.sub_day {
                let date = from_naive_secs(t).map(|x| x.date());
                match date {
                    Some(d) if d.year() <= MAX_YEAR => {
                        self.sub_day = day;
                        self.sub_day_ok = self.plan.day_ok(d);
                    }
                    _ => {
                        self.stop(true);
                        return false;
                    }
                }
            }
            let (h, m, s) = (
                (sod / 3600) as u32,
                (sod / 60 % 60) as u32,
                (sod % 60) as u32,
            );
            let skip = if !self.sub_day_ok {
                Some(jump_to((day + 1) * SECS_PER_DAY))
            } else if self.plan.hour_mask != 0 && self.plan.hour_mask & (1 << h) == 0 {
                Some(jump_to(t - i64::from(m) * 60 - i64::from(s) + 3600))
            } else if self.plan.freq <= Frequency::Minutely
                && self.plan.minute_mask != 0
                && self.plan.minute_mask & (1 << m) == 0
            {
                Some(jump_to(t - i64::from(s) + 60))
            } else if self.plan.freq == Frequency::Secondly
                && self.plan.second_mask != 0
                && self.plan.second_mask & (1 << s) == 0
            {
                Some(1)
            } else {
                None
            };
            match skip {
                Some(k) => {
                    self.period += k.max(1);
                    if !self.note_empty() {
                        return false;
                    }
                }
                None => {
                    self.period += 1;
                    self.work += 1;
                    self.days.clear();
                    self.days
                        .push(from_naive_secs(t).expect("checked above").date());
                    self.hours.clear();
                    self.hours.push(h as u8);
                    self.minutes.clear();
                    if self.plan.freq <= Frequency::Minutely {
                        self.minutes.push(m as u8);
                    } else {
                        self.minutes.extend_from_slice(&self.plan.minutes);
                    }
                    self.seconds.clear();
                    if self.plan.freq == Frequency::Secondly {
                        self.seconds.push(s as u8);
                    } else {
                        self.seconds.extend_from_slice(&self.plan.seconds);
                    }
                    return true;
                }
            }
        }
    }

    /// Candidate `i` of the current period's sorted candidate space.
    fn candidate(&self, i: usize) -> NaiveDateTime {
        let (nh, nm, ns) = (self.hours.len(), self.minutes.len(), self.seconds.len());
        let per_day = nh * nm * ns;
        let day = self.days[i / per_day];
        let r = i % per_day;
        let time = NaiveTime::from_hms_opt(
            u32::from(self.hours[r / (nm * ns)]),
            u32::from(self.minutes[r / ns % nm]),
            u32::from(self.seconds[r % ns]),
        )
        .expect("lists hold valid times");
        day.and_time(time)
    }

    /// First position in the selection whose candidate is >= `t`.
    fn lower_bound(&self, t: NaiveDateTime) -> usize {
        let (mut lo, mut hi) = match &self.sel {
            Selection::Range { next, end } => (*next, *end),
            Selection::Picks { list, pos } => (*pos, list.len()),
        };
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let idx = match &self.sel {
                Selection::Range { .. } => mid,
                Selection::Picks { list, .. } => list[mid],
            };
            if self.candidate(idx) < t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn set_position(&mut self, p: usize) {
        match &mut self.sel {
            Selection::Range { next, .. } => *next = p,
            Selection::Picks { pos, .. } => *pos = p,
        }
    }

    fn cursor(&self) -> usize {
        match &self.sel {
            Selection::Range { next, .. } => *next,
            Selection::Picks { pos, .. } => *pos,
        }
    }
}

impl Iterator for RRuleIter {
    type Item = NaiveDateTime;

    fn next(&mut self) -> Option<NaiveDateTime> {
        self.started = true;
        loop {
            if self.done {
                return None;
            }
            if self.sel_is_empty() {
                if !self.load_period() {
                    return None;
                }
                // Skip, in one jump, what precedes DTSTART (never counted)
                // and what precedes the window start (counted for COUNT).
                let first = self.lower_bound(self.dtstart);
                self.set_position(first);
                if let Some(after) = self.after {
                    let p = self.lower_bound(after);
                    let skipped = (p - first) as u64;
                    // With COUNT the skipped occurrences were walked to and
                    // count against the limit; without it the jump was free.
                    if let (Some(left), true) = (&mut self.count_left, skipped > 0) {
                        if *left <= skipped {
                            self.stop(false);
                            return None;
                        }
                        *left -= skipped;
                        self.produced += skipped;
                        if self.produced > self.limit {
                            self.stop(true);
                            return None;
                        }
                    }
                    self.set_position(p);
                }
                continue;
            }
            if self.count_left == Some(0) {
                self.stop(false);
                return None;
            }
            if self.produced >= self.limit || self.work > WORK_BUDGET {
                self.stop(true);
                return None;
            }
            let p = self.cursor();
            let idx = match &self.sel {
                Selection::Range { .. } => p,
                Selection::Picks { list, .. } => list[p],
            };
            let t = self.candidate(idx);
            self.set_position(p + 1);
            if self.until.is_some_and(|u| t > u) {
                self.stop(false);
                return None;
            }
            self.produced += 1;
            self.work += 1;
            if let Some(left) = &mut self.count_left {
                *left -= 1;
            }
            return Some(t);
        }
    }
}

#[cfg(test)]
mod tests;
