//! Typed iCalendar values (RFC 5545 §3.3): DATE / DATE-TIME in their four
//! forms, DURATION, PERIOD, and the multi-valued EXDATE / RDATE lists.
//!
//! This module owns the wire format of these values: parsing them from a
//! [`Property`] (leniently, where real software is sloppy but the meaning is
//! certain) and writing them back. It knows nothing about what a TZID means;
//! [`crate::ics::tz`] resolves zones.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};

use super::tz::{Zone, Zones};
use super::{IcsError, Param, Property};

/// A DATE or DATE-TIME value in one of the forms RFC 5545 §3.3.5 allows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DateTimeValue {
    /// `VALUE=DATE`: a calendar day with no time (all-day).
    Date(NaiveDate),
    /// Local time with no zone ("floating"): the same wall-clock time
    /// wherever the reader is.
    Floating(NaiveDateTime),
    /// UTC (`...Z`); the naive value is the UTC wall-clock time.
    Utc(NaiveDateTime),
    /// Wall-clock time in the zone named by `TZID` (resolved by the caller).
    Zoned { local: NaiveDateTime, tzid: String },
}

impl DateTimeValue {
    /// Read the value of a DATE / DATE-TIME property (DTSTART, DTEND, DUE,
    /// RECURRENCE-ID, a single EXDATE value, ...).
    pub fn from_property(p: &Property) -> Result<Self, IcsError> {
        Self::from_value(&p.value, &p.params)
            .map_err(|e| IcsError::Invalid(format!("{}: {}", p.name, e)))
    }

    /// Read one value with the property's parameters (`VALUE=`, `TZID=`).
    ///
    /// Lenient where the meaning is certain: a `TZID` on a UTC value is
    /// ignored (the `Z` wins), an 8-digit value is a DATE even without
    /// `VALUE=DATE`, `VALUE=DATE` on a date-time keeps the date, lower-case
    /// `t`/`z`, missing seconds, ISO 8601 dashes and colons, a leap second.
    pub fn from_value(value: &str, params: &[Param]) -> Result<Self, IcsError> {
        let value = value.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        let param = |name: &str| {
            params
                .iter()
                .find(|p| p.name.eq_ignore_ascii_case(name))
                .map(Param::value)
        };
        let want_date = param("VALUE").is_some_and(|v| v.trim().eq_ignore_ascii_case("DATE"));
        let parsed = parse_date_or_date_time(value)
            .ok_or_else(|| IcsError::Invalid(format!("{value:?} is not a DATE or DATE-TIME")))?;
        Ok(match parsed {
            Parsed::Date(d) => DateTimeValue::Date(d),
            Parsed::DateTime(dt, _) if want_date => DateTimeValue::Date(dt.date()),
            Parsed::DateTime(dt, true) => DateTimeValue::Utc(dt),
            Parsed::DateTime(dt, false) => match param("TZID").map(clean_tzid) {
                Some(tzid) if !tzid.is_empty() => DateTimeValue::Zoned { local: dt, tzid },
                _ => DateTimeValue::Floating(dt),
            },
        })
    }

    /// A property carrying this value, with `VALUE=DATE` or `TZID=` as needed.
    pub fn to_property(&self, name: &str) -> Property {
        let mut p = Property::new(name, self.format_value());
        match self {
            DateTimeValue::Date(_) => p.params.push(Param::new("VALUE", "DATE")),
            DateTimeValue::Zoned { tzid, .. } => p.params.push(Param::new("TZID", tzid.clone())),
            _ => {}
        }
        p
    }

    pub fn is_date(&self) -> bool {
        matches!(self, DateTimeValue::Date(_))
    }

    /// The wall-clock time as written (a DATE is its midnight).
    pub fn local(&self) -> NaiveDateTime {
        match self {
            DateTimeValue::Date(d) => d.and_time(NaiveTime::MIN),
            DateTimeValue::Floating(t) | DateTimeValue::Utc(t) => *t,
            DateTimeValue::Zoned { local, .. } => *local,
        }
    }

    pub fn date(&self) -> NaiveDate {
        self.local().date()
    }

    pub fn tzid(&self) -> Option<&str> {
        match self {
            DateTimeValue::Zoned { tzid, .. } => Some(tzid),
            _ => None,
        }
    }

    /// The same kind of value (same zone, or DATE) at another local time.
    pub fn with_local(&self, local: NaiveDateTime) -> DateTimeValue {
        match self {
            DateTimeValue::Date(_) => DateTimeValue::Date(local.date()),
            DateTimeValue::Floating(_) => DateTimeValue::Floating(local),
            DateTimeValue::Utc(_) => DateTimeValue::Utc(local),
            DateTimeValue::Zoned { tzid, .. } => DateTimeValue::Zoned {
                local,
                tzid: tzid.clone(),
            },
        }
    }

    /// The zone this value's wall-clock time is in. DATE and floating values
    /// use `floating`; an unknown TZID falls back to `floating` too (the
    /// reader's best guess, as most clients do).
    pub fn zone(&self, zones: &Zones, floating: &Zone) -> Zone {
        match self {
            DateTimeValue::Date(_) | DateTimeValue::Floating(_) => floating.clone(),
            DateTimeValue::Utc(_) => Zone::Utc,
            DateTimeValue::Zoned { tzid, .. } => {
                zones.resolve(tzid).unwrap_or_else(|| floating.clone())
            }
        }
    }

    /// The instant this value denotes.
    pub fn to_utc(&self, zones: &Zones, floating: &Zone) -> DateTime<Utc> {
        match self {
            DateTimeValue::Utc(t) => t.and_utc(),
            _ => self.zone(zones, floating).to_utc(self.local()),
        }
    }

    /// The value as written on the wire (`20240105`, `20240105T090000`,
    /// `20240105T080000Z`).
    pub fn format_value(&self) -> String {
        let mut s = String::with_capacity(16);
        match self {
            DateTimeValue::Date(d) => push_date(&mut s, *d),
            DateTimeValue::Floating(t) | DateTimeValue::Zoned { local: t, .. } => {
                push_date_time(&mut s, *t)
            }
            DateTimeValue::Utc(t) => {
                push_date_time(&mut s, *t);
                s.push('Z');
            }
        }
        s
    }
}

impl fmt::Display for DateTimeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format_value())
    }
}

/// Trim the whitespace, NULs and stray quotes some writers leave around a
/// TZID (see the NUL-padded names of some Exchange exports).
pub fn clean_tzid(raw: &str) -> String {
    raw.trim_matches(|c: char| c.is_whitespace() || c.is_control() || c == '"')
        .to_string()
}

/// `YYYYMMDDTHHMMSSZ` for a UTC instant.
pub fn format_utc(t: DateTime<Utc>) -> String {
    DateTimeValue::Utc(t.naive_utc()).format_value()
}

fn push_num(s: &mut String, n: u32, width: usize) {
    let digits = n.to_string();
    for _ in digits.len()..width {
        s.push('0');
    }
    s.push_str(&digits);
}

fn push_date(s: &mut String, d: NaiveDate) {
    // Years outside 0..=9999 cannot be written in iCalendar; clamp rather
    // than emit a value nobody can read.
    push_num(s, d.year().clamp(0, 9999) as u32, 4);
    push_num(s, d.month(), 2);
    push_num(s, d.day(), 2);
}

fn push_date_time(s: &mut String, t: NaiveDateTime) {
    push_date(s, t.date());
    s.push('T');
    push_num(s, t.hour(), 2);
    push_num(s, t.minute(), 2);
    push_num(s, t.second(), 2);
}

enum Parsed {
    Date(NaiveDate),
    DateTime(NaiveDateTime, bool),
}

fn number(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 {
        return None;
    }
    b.iter().try_fold(0u32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

/// Parse `YYYYMMDD` (or `YYYY-MM-DD`).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let (y, m, d) = match b.len() {
        8 => (&b[0..4], &b[4..6], &b[6..8]),
        10 if b[4] == b'-' && b[7] == b'-' => (&b[0..4], &b[5..7], &b[8..10]),
        _ => return None,
    };
    NaiveDate::from_ymd_opt(number(y)? as i32, number(m)?, number(d)?)
}

/// Parse `HHMMSS` (or `HH:MM:SS`, or `HHMM`); a leap second reads as :59.
fn parse_time(s: &str) -> Option<NaiveTime> {
    let b = s.as_bytes();
    let (h, m, sec) = match b.len() {
        6 => (&b[0..2], &b[2..4], Some(&b[4..6])),
        8 if b[2] == b':' && b[5] == b':' => (&b[0..2], &b[3..5], Some(&b[6..8])),
        4 => (&b[0..2], &b[2..4], None),
        5 if b[2] == b':' => (&b[0..2], &b[3..5], None),
        _ => return None,
    };
    let sec = match sec {
        Some(s) => number(s)?.min(59),
        None => 0,
    };
    NaiveTime::from_hms_opt(number(h)?, number(m)?, sec)
}

fn parse_date_or_date_time(s: &str) -> Option<Parsed> {
    match s.find(['T', 't']) {
        None => parse_date(s).map(Parsed::Date),
        Some(i) => {
            let (date, time) = (&s[..i], &s[i + 1..]);
            let (time, utc) = match time.strip_suffix(['Z', 'z']) {
                Some(t) => (t, true),
                None => (time, false),
            };
            Some(Parsed::DateTime(
                parse_date(date)?.and_time(parse_time(time)?),
                utc,
            ))
        }
    }
}

/// A DURATION (RFC 5545 §3.3.6). Weeks and days are nominal (added on the
/// calendar, so a day across a DST change is 23 or 25 hours); hours,
/// minutes and seconds are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IcsDuration {
    pub negative: bool,
    pub weeks: u32,
    pub days: u32,
    pub hours: u32,
    pub minutes: u32,
    pub seconds: u32,
}

/// Longest duration accepted, in seconds (about 1,000 years): anything
/// longer is garbage and would overflow date arithmetic.
const MAX_DURATION_SECS: i64 = 1_000 * 366 * 86_400;

impl IcsDuration {
    /// Parse `[+-]P[nW][nD][T[nH][nM][nS]]` (case-insensitive; `P1W2D`,
    /// which RFC 5545 does not allow but ISO 8601 does, is accepted).
    pub fn parse(s: &str) -> Result<Self, IcsError> {
        let bad = |why: &str| IcsError::Invalid(format!("DURATION {s:?}: {why}"));
        let t = s.trim();
        let (negative, rest) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        let rest = rest
            .strip_prefix(['P', 'p'])
            .ok_or_else(|| bad("must start with P"))?;
        let mut d = IcsDuration {
            negative,
            ..Default::default()
        };
        let mut in_time = false;
        let mut num: Option<u32> = None;
        let mut any = false;
        let mut last_unit = 0u8;
        let mut time_units = 0;
        for c in rest.bytes() {
            match c.to_ascii_uppercase() {
                b'0'..=b'9' => {
                    let n = num.unwrap_or(0);
                    num = Some(
                        n.checked_mul(10)
                            .and_then(|n| n.checked_add(u32::from(c - b'0')))
                            .ok_or_else(|| bad("number too large"))?,
                    );
                }
                b'T' => {
                    if in_time || num.is_some() {
                        return Err(bad("misplaced T"));
                    }
                    in_time = true;
                }
                unit => {
                    let n = num.take().ok_or_else(|| bad("a unit without a number"))?;
                    // Units must come in order, each at most once.
                    let rank = match (unit, in_time) {
                        // `PT1W` (weeks after the T) is not RFC 5545 but
                        // can only mean one week.
                        (b'W', _) => 1,
                        (b'D', false) => 2,
                        (b'H', true) => 3,
                        (b'M', true) => 4,
                        (b'S', true) => 5,
                        _ => return Err(bad("unknown or misplaced unit")),
                    };
                    if rank <= last_unit {
                        return Err(bad("units out of order"));
                    }
                    last_unit = rank;
                    if in_time {
                        time_units += 1;
                    }
                    match rank {
                        1 => d.weeks = n,
                        2 => d.days = n,
                        3 => d.hours = n,
                        4 => d.minutes = n,
                        _ => d.seconds = n,
                    }
                    any = true;
                }
            }
        }
        if num.is_some() {
            return Err(bad("a number without a unit"));
        }
        if !any {
            return Err(bad("no duration given"));
        }
        if in_time && time_units == 0 {
            return Err(bad("T without hours, minutes or seconds"));
        }
        if d.nominal_days().abs() * 86_400 + d.exact_seconds().abs() > MAX_DURATION_SECS {
            return Err(bad("longer than 1000 years"));
        }
        Ok(d)
    }

    /// A duration of exactly `secs` seconds (written with days when whole
    /// days, which is how most software writes them).
    pub fn from_seconds(secs: i64) -> Self {
        let negative = secs < 0;
        let mut s = secs.unsigned_abs().min(MAX_DURATION_SECS as u64);
        let days = s / 86_400;
        s %= 86_400;
        IcsDuration {
            negative,
            weeks: 0,
            days: days as u32,
            hours: (s / 3600) as u32,
            minutes: (s / 60 % 60) as u32,
            seconds: (s % 60) as u32,
        }
    }

    /// Signed number of nominal days (weeks included).
    pub fn nominal_days(&self) -> i64 {
        let d = i64::from(self.weeks) * 7 + i64::from(self.days);
        if self.negative {
            -d
        } else {
            d
        }
    }

    /// Signed number of exact seconds (hours, minutes, seconds).
    pub fn exact_seconds(&self) -> i64 {
        let s =
            i64::from(self.hours) * 3600 + i64::from(self.minutes) * 60 + i64::from(self.seconds);
        if self.negative {
            -s
        } else {
            s
        }
    }

    /// The length if every day had 24 hours, in seconds.
    pub fn approx_seconds(&self) -> i64 {
        self.nominal_days() * 86_400 + self.exact_seconds()
    }

    /// Add to a wall-clock time, treating every part as wall-clock time
    /// (right for floating values and DATEs).
    pub fn add_to(&self, local: NaiveDateTime) -> NaiveDateTime {
        local
            .checked_add_signed(Duration::seconds(self.approx_seconds()))
            .unwrap_or(local)
    }

    /// Add to a wall-clock time in `zone`: the nominal part on the calendar,
    /// then the exact part on the UTC time line (RFC 5545 §3.3.6).
    pub fn add_in_zone(&self, local: NaiveDateTime, zone: &Zone) -> DateTime<Utc> {
        let day_moved = local
            .checked_add_signed(Duration::days(self.nominal_days()))
            .unwrap_or(local);
        let utc = zone.to_utc(day_moved);
        utc.checked_add_signed(Duration::seconds(self.exact_seconds()))
            .unwrap_or(utc)
    }
}

impl fmt::Display for IcsDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        f.write_str("P")?;
        let time = self.hours > 0 || self.minutes > 0 || self.seconds > 0;
        if self.weeks > 0 && self.days == 0 && !time {
            return write!(f, "{}W", self.weeks);
        }
        let days = u64::from(self.weeks) * 7 + u64::from(self.days);
        if days > 0 {
            write!(f, "{days}D")?;
        }
        if time {
            f.write_str("T")?;
            if self.hours > 0 {
                write!(f, "{}H", self.hours)?;
            }
            if self.minutes > 0 {
                write!(f, "{}M", self.minutes)?;
            }
            if self.seconds > 0 {
                write!(f, "{}S", self.seconds)?;
            }
        } else if days == 0 {
            f.write_str("T0S")?;
        }
        Ok(())
    }
}

/// The end of a PERIOD: an explicit end or a duration from the start.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeriodEnd {
    At(DateTimeValue),
    Duration(IcsDuration),
}

/// A PERIOD value (RFC 5545 §3.3.9): `start/end` or `start/duration`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Period {
    pub start: DateTimeValue,
    pub end: PeriodEnd,
}

impl Period {
    /// Parse one period; `params` supplies the TZID for both ends.
    pub fn parse(value: &str, params: &[Param]) -> Result<Self, IcsError> {
        let (a, b) = value
            .split_once('/')
            .ok_or_else(|| IcsError::Invalid(format!("PERIOD {value:?} has no '/'")))?;
        let start = DateTimeValue::from_value(a, params)?;
        let b = b.trim();
        let end = if b.starts_with(['P', 'p', '+', '-']) {
            PeriodEnd::Duration(IcsDuration::parse(b)?)
        } else {
            PeriodEnd::At(DateTimeValue::from_value(b, params)?)
        };
        Ok(Period { start, end })
    }

    /// The instants this period spans.
    pub fn to_utc(&self, zones: &Zones, floating: &Zone) -> (DateTime<Utc>, DateTime<Utc>) {
        let zone = self.start.zone(zones, floating);
        let start = match &self.start {
            DateTimeValue::Utc(t) => t.and_utc(),
            v => zone.to_utc(v.local()),
        };
        let end = match &self.end {
            PeriodEnd::At(v) => v.to_utc(zones, floating),
            PeriodEnd::Duration(d) => d.add_in_zone(self.start.local(), &zone),
        };
        (start, end)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.start)?;
        match &self.end {
            PeriodEnd::At(v) => write!(f, "{v}"),
            PeriodEnd::Duration(d) => write!(f, "{d}"),
        }
    }
}

/// One value of an RDATE list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RDate {
    At(DateTimeValue),
    Period(Period),
}

fn list_items(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(|v| v.trim_matches(|c: char| c.is_whitespace() || c == '\0'))
        .filter(|v| !v.is_empty())
}

/// The values of a multi-valued DATE / DATE-TIME property (EXDATE, and
/// RDATE without periods). Empty items (a trailing comma) are skipped.
pub fn date_list(p: &Property) -> Result<Vec<DateTimeValue>, IcsError> {
    list_items(&p.value)
        .map(|v| {
            DateTimeValue::from_value(v, &p.params)
                .map_err(|e| IcsError::Invalid(format!("{}: {}", p.name, e)))
        })
        .collect()
}

/// The values of an RDATE: dates, date-times or periods (`VALUE=PERIOD`,
/// or any item containing a '/').
pub fn rdate_list(p: &Property) -> Result<Vec<RDate>, IcsError> {
    list_items(&p.value)
        .map(|v| {
            if v.contains('/') {
                Period::parse(v, &p.params).map(RDate::Period)
            } else {
                DateTimeValue::from_value(v, &p.params).map(RDate::At)
            }
            .map_err(|e| IcsError::Invalid(format!("{}: {}", p.name, e)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn prop(line: &str) -> Property {
        let cal = crate::ics::parse(format!("BEGIN:X\r\n{line}\r\nEND:X\r\n").as_bytes()).unwrap();
        cal.props[0].clone()
    }

    #[test]
    fn reads_the_four_forms() {
        let check = |line: &str, want: DateTimeValue| {
            assert_eq!(
                DateTimeValue::from_property(&prop(line)).unwrap(),
                want,
                "{line}"
            );
        };
        let d = NaiveDate::from_ymd_opt(2024, 1, 5).unwrap();
        check("DTSTART;VALUE=DATE:20240105", DateTimeValue::Date(d));
        check("DTSTART:20240105", DateTimeValue::Date(d));
        check("DTSTART;VALUE=DATE:20240105T000000", DateTimeValue::Date(d));
        check(
            "DTSTART:20240105T090000",
            DateTimeValue::Floating(dt("2024-01-05 09:00:00")),
        );
        check(
            "DTSTART:20240105T090000Z",
            DateTimeValue::Utc(dt("2024-01-05 09:00:00")),
        );
        check(
            "DTSTART:20240105t0900z",
            DateTimeValue::Utc(dt("2024-01-05 09:00:00")),
        );
        check(
            "DTSTART;TZID=Europe/Berlin:20240105T090000Z",
            DateTimeValue::Utc(dt("2024-01-05 09:00:00")),
        );
        check(
            "DTSTART:2024-01-05T09:00:60Z",
            DateTimeValue::Utc(dt("2024-01-05 09:00:59")),
        );
        check(
            "DTSTART;TZID=\"Europe/Berlin\":20240105T090000",
            DateTimeValue::Zoned {
                local: dt("2024-01-05 09:00:00"),
                tzid: "Europe/Berlin".into(),
            },
        );
    }

    #[test]
    fn refuses_garbage_dates() {
        for v in [
            "2024",
            "20241301",
            "20240230",
            "20240105T250000",
            "20240105T0900000",
            "x",
            "",
        ] {
            let err = DateTimeValue::from_value(v, &[]).unwrap_err();
            assert!(err.to_string().contains("not a DATE"), "{v}: {err}");
        }
        let err = DateTimeValue::from_property(&prop("DUE:tomorrow")).unwrap_err();
        assert!(err.to_string().starts_with("DUE:"), "{err}");
    }

    #[test]
    fn writes_values_back() {
        for line in [
            "DTSTART;VALUE=DATE:20240105",
            "DTSTART:20240105T090000",
            "DTSTART:20240105T090000Z",
            "DTSTART;TZID=America/New_York:00010101T235959",
        ] {
            let p = prop(line);
            let v = DateTimeValue::from_property(&p).unwrap();
            assert_eq!(v.to_property("DTSTART"), p, "{line}");
        }
    }

    #[test]
    fn durations_parse_and_print() {
        let check = |s: &str, days: i64, secs: i64, printed: &str| {
            let d = IcsDuration::parse(s).unwrap();
            assert_eq!((d.nominal_days(), d.exact_seconds()), (days, secs), "{s}");
            assert_eq!(d.to_string(), printed, "{s}");
            assert_eq!(
                IcsDuration::parse(printed).unwrap().approx_seconds(),
                d.approx_seconds()
            );
        };
        check("P1W", 7, 0, "P1W");
        check("PT1H30M", 0, 5400, "PT1H30M");
        check("-P1DT2H", -1, -7200, "-P1DT2H");
        check("+p2dt0h0m5s", 2, 5, "P2DT5S");
        check("P1W2D", 9, 0, "P9D");
        check("PT1W", 7, 0, "P1W");
        check("PT0S", 0, 0, "PT0S");
        check("P0D", 0, 0, "PT0S");
        for bad in [
            "",
            "P",
            "PT",
            "1H",
            "PT1D",
            "P1H",
            "PT1S1M",
            "P1DT",
            "PT99999999999H",
            "P5",
            "PT1H1H",
        ] {
            assert!(
                IcsDuration::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        assert_eq!(IcsDuration::from_seconds(-90061).to_string(), "-P1DT1H1M1S");
        let d = IcsDuration::parse("P1DT2H").unwrap();
        assert_eq!(
            d.add_to(dt("2024-03-30 23:00:00")),
            dt("2024-04-01 01:00:00")
        );
    }

    #[test]
    fn nominal_days_follow_the_calendar_across_dst() {
        let berlin = Zone::Iana(chrono_tz::Europe::Berlin);
        // 2024-03-31 is the spring-forward day in Berlin.
        let start = dt("2024-03-30 12:00:00");
        let one_day = IcsDuration::parse("P1D").unwrap();
        let hours24 = IcsDuration::parse("PT24H").unwrap();
        let s = berlin.to_utc(start);
        assert_eq!((one_day.add_in_zone(start, &berlin) - s).num_hours(), 23);
        assert_eq!((hours24.add_in_zone(start, &berlin) - s).num_hours(), 24);
    }

    #[test]
    fn periods_and_lists() {
        let p =
            prop("RDATE;VALUE=PERIOD:19970101T180000Z/19970102T070000Z,19970308T230000Z/PT5H30M");
        let list = rdate_list(&p).unwrap();
        assert_eq!(list.len(), 2);
        let RDate::Period(second) = &list[1] else {
            panic!("not a period")
        };
        let (s, e) = second.to_utc(&Zones::default(), &Zone::Utc);
        assert_eq!((e - s).num_minutes(), 330);
        assert_eq!(second.to_string(), "19970308T230000Z/PT5H30M");
        let ex = prop("EXDATE;TZID=Europe/Berlin:20240105T090000,20240112T090000,");
        let dates = date_list(&ex).unwrap();
        assert_eq!(dates.len(), 2);
        assert_eq!(dates[1].tzid(), Some("Europe/Berlin"));
        assert!(date_list(&prop("EXDATE:20240105T090000,nope")).is_err());
    }
}
