//! The one place the CalDAV handlers use the iCalendar engine: validating
//! a PUT body as a calendar object resource, recurrence-aware time-range
//! tests for calendar-query filters, `expand` / `limit-recurrence-set`,
//! and busy time for free-busy-query.
//!
//! Owns: mapping the engine's answers and errors onto CalDAV
//! (preconditions, [`TimeRangeTest`]). Must not: parse iCalendar values or
//! expand recurrences itself; that is `crate::ics`'s.
//!
//! INTERIM: until the `ics` branch (values, zones, recurrence, object
//! validation) merges, the bodies below use the small stand-ins of
//! [`crate::model::appointment`] and treat a recurring series as
//! overlapping every range its span overlaps.

use chrono::{DateTime, TimeZone, Utc};

use crate::dav::request::{parse_utc, TimeRange};
use crate::dav::{Condition, DavError, TimeRangeTest};
use crate::ics::{Component, Property};
use crate::model::appointment::{current_times, Times};

/// What the store indexes about a valid object.
#[derive(Debug, Clone)]
pub struct Analyzed {
    /// The component type (`VEVENT`, `VTODO`, ...).
    pub kind: String,
    pub uid: String,
    /// UTC seconds of the series' first start and last end
    /// (`i64::MIN` / `i64::MAX` when open).
    pub start: i64,
    pub end: i64,
    pub recurring: bool,
}

/// Validates a calendar object resource whose floating times are in
/// `zone` (an IANA name). Whether the calendar holds its component type
/// is the caller's check.
pub fn analyze(cal: &Component, zone: &str) -> Result<Analyzed, DavError> {
    let data = |m: String| DavError::condition(Condition::ValidCalendarData, m);
    let resource = |m: String| DavError::condition(Condition::ValidCalendarObjectResource, m);
    if cal.name != "VCALENDAR" {
        return Err(data(format!(
            "the object is a {}, not a VCALENDAR",
            cal.name
        )));
    }
    if cal.prop("METHOD").is_some() {
        return Err(resource(
            "a stored calendar object must not have a METHOD property".into(),
        ));
    }
    let comps: Vec<&Component> = cal
        .children
        .iter()
        .filter(|c| c.name != "VTIMEZONE")
        .collect();
    let first = comps
        .first()
        .ok_or_else(|| data("the VCALENDAR holds no calendar component".into()))?;
    let mut uid: Option<&str> = None;
    let mut span: Option<(i64, i64)> = None;
    let mut recurring = comps.len() > 1;
    for c in &comps {
        if c.name != first.name {
            return Err(resource(format!(
                "one calendar object may hold only one kind of component, found {} and {}",
                first.name, c.name
            )));
        }
        let this = c
            .value("UID")
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| resource(format!("a {} has no UID", c.name)))?;
        match uid {
            Some(u) if u != this => {
                return Err(resource(format!(
                    "one calendar object may hold only one UID, found {u:?} and {this:?}"
                )))
            }
            _ => uid = Some(this),
        }
        recurring |= c.prop("RRULE").is_some() || c.prop("RDATE").is_some();
        let Some((times, _)) = current_times(c, zone) else {
            if c.name == "VEVENT" {
                return Err(data(format!("VEVENT {this:?} has no readable DTSTART")));
            }
            span = Some((i64::MIN, i64::MAX));
            continue;
        };
        let (s, e) = times.span();
        span = Some(match span {
            None => (s, e),
            Some((a, b)) => (a.min(s), b.max(e)),
        });
    }
    let (start, mut end) = span.unwrap_or((i64::MIN, i64::MAX));
    if recurring {
        end = i64::MAX;
    }
    Ok(Analyzed {
        kind: first.name.clone(),
        uid: uid.unwrap_or_default().to_string(),
        start,
        end,
        recurring,
    })
}

/// Time-range answers for one calendar object, for
/// [`crate::dav::filter::matches`].
pub struct TimeTest<'a> {
    zone: &'a str,
}

impl<'a> TimeTest<'a> {
    pub fn new(_cal: &Component, zone: &'a str) -> TimeTest<'a> {
        TimeTest { zone }
    }
}

fn utc(t: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(t, 0).single().unwrap_or_default()
}

fn times_of(c: &Component, zone: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let (times, _) = current_times(c, zone)?;
    Some(match times {
        Times::Timed { start, end, .. } => (start, end),
        t @ Times::AllDay { .. } => {
            let (s, e) = t.span();
            (utc(s), utc(e))
        }
    })
}

impl TimeRangeTest for TimeTest<'_> {
    fn component_overlaps(&self, cal: &Component, path: &[usize], range: &TimeRange) -> bool {
        let Some(&top) = path.first() else {
            return false;
        };
        let Some(c) = cal.children.get(top) else {
            return false;
        };
        if path.len() > 1 {
            // Alarms: not evaluated by the stand-in.
            return false;
        }
        let Some((s, e)) = times_of(c, self.zone) else {
            return false;
        };
        if c.prop("RRULE").is_some() || c.prop("RDATE").is_some() {
            return range.end.is_none_or(|end| s < end);
        }
        range.overlaps(s, e)
    }

    fn property_overlaps(&self, prop: &Property, range: &TimeRange) -> bool {
        parse_utc(&prop.value)
            .map(|t| range.overlaps(t, t))
            .unwrap_or(false)
    }
}

/// `<C:expand>`: the recurrence set as instances in the range.
pub fn expand(cal: &Component, _range: &TimeRange, _zone: &str) -> Result<Component, DavError> {
    Ok(cal.clone())
}

/// `<C:limit-recurrence-set>`: the overrides that affect the range.
pub fn limit_recurrence_set(
    cal: &Component,
    _range: &TimeRange,
    _zone: &str,
) -> Result<Component, DavError> {
    Ok(cal.clone())
}

/// Kinds of busy time (RFC 5545 FBTYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BusyKind {
    Busy,
    Tentative,
}

/// Busy periods of one object in `[start, end)`, clipped to it.
pub fn busy(cal: &Component, start: i64, end: i64, zone: &str) -> Vec<(i64, i64, BusyKind)> {
    let mut out = Vec::new();
    for c in cal.children.iter().filter(|c| c.name == "VEVENT") {
        if !crate::freebusy::is_busy(c) {
            continue;
        }
        let Some((s, e)) = times_of(c, zone) else {
            continue;
        };
        let (s, e) = (s.timestamp().max(start), e.timestamp().min(end));
        if s < e {
            out.push((s, e, busy_kind(c)));
        }
    }
    out
}

fn busy_kind(c: &Component) -> BusyKind {
    if c.value("STATUS")
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("TENTATIVE"))
    {
        BusyKind::Tentative
    } else {
        BusyKind::Busy
    }
}

/// A `CALDAV:calendar-timezone` value for an IANA zone, if the engine can
/// write one.
pub fn calendar_timezone(_iana: &str) -> Option<String> {
    None
}

/// The IANA zone a `CALDAV:calendar-timezone` value (a VCALENDAR with one
/// VTIMEZONE) stands for, if any.
pub fn zone_of_calendar_timezone(text: &str) -> Option<String> {
    let cal = crate::ics::parse(text.trim().as_bytes()).ok()?;
    let tzid = cal.children_named("VTIMEZONE").next()?.value("TZID")?;
    let tzid = tzid.trim();
    tzid.parse::<chrono_tz::Tz>()
        .ok()
        .map(|z| z.name().to_string())
}
