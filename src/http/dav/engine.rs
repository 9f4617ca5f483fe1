//! The one place the CalDAV handlers use the iCalendar engine
//! ([`crate::ics::object`], [`crate::ics::recur`], [`crate::ics::tz`]):
//! validating a PUT body as a calendar object resource, recurrence-aware
//! time-range tests for calendar-query filters (RFC 4791 §9.9, including
//! the VTODO table and alarm triggers), `expand` / `limit-recurrence-set`,
//! and busy time for free-busy-query.
//!
//! Owns: mapping the engine's answers and errors onto CalDAV
//! (preconditions, [`TimeRangeTest`]). Must not: parse iCalendar values or
//! expand recurrences itself; that is `crate::ics`'s.

use std::cell::RefCell;

use chrono::{DateTime, Datelike, Duration, Utc};

use crate::dav::request::TimeRange;
use crate::dav::{Condition, DavError, TimeRangeTest};
use crate::ics::object::{self, ObjectError};
use crate::ics::recur::{self, ExpandOptions, Instance};
use crate::ics::tz::{resolve_name, Zone, Zones};
use crate::ics::value::{DateTimeValue, IcsDuration};
use crate::ics::{Component, Property};

/// Most instances looked at to answer one time-range test: enough for any
/// view, bounded for an open range over an endless rule.
const FILTER_MAX_INSTANCES: usize = 2_000;

/// The zone floating times and dates are read in, from an IANA name (UTC
/// when the name is unknown).
pub fn zone(name: &str) -> Zone {
    resolve_name(name).map(Zone::Iana).unwrap_or(Zone::Utc)
}

fn options(zone_name: &str, max_instances: usize) -> ExpandOptions {
    ExpandOptions {
        max_instances,
        ..crate::objects::options(Some(zone_name))
    }
}

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
/// `zone_name` (an IANA name). Whether the calendar holds its component
/// type is the caller's check.
pub fn analyze(cal: &Component, zone_name: &str) -> Result<Analyzed, DavError> {
    let info = object::analyze(cal, &options(zone_name, recur::DEFAULT_MAX_INSTANCES))
        .map_err(object_error)?;
    Ok(Analyzed {
        kind: info.kind.name().to_string(),
        uid: info.uid,
        start: info.start,
        end: info.end,
        recurring: info.recurring,
    })
}

fn object_error(e: ObjectError) -> DavError {
    let condition = match e.precondition() {
        "valid-calendar-data" => Condition::ValidCalendarData,
        _ => Condition::ValidCalendarObjectResource,
    };
    DavError::condition(condition, e.message())
}

fn utc(t: Option<DateTime<Utc>>, open: DateTime<Utc>) -> DateTime<Utc> {
    t.unwrap_or(open)
}

/// The far past and future standing in for an open end of a range.
fn open_start() -> DateTime<Utc> {
    DateTime::from_timestamp(-62_135_596_800, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn open_end() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Time-range answers for one calendar object, for
/// [`crate::dav::filter::matches`]. Instances are expanded once per range
/// and reused for every component the filter asks about; the object's
/// VTIMEZONEs are read only if a property value needs them.
pub struct TimeTest<'c> {
    cal: &'c Component,
    zones: std::cell::OnceCell<Zones>,
    opts: ExpandOptions,
    cache: RefCell<Option<(TimeRange, Vec<Instance>)>>,
}

impl<'c> TimeTest<'c> {
    pub fn new(cal: &'c Component, zone_name: &str) -> TimeTest<'c> {
        TimeTest {
            cal,
            zones: std::cell::OnceCell::new(),
            opts: options(zone_name, FILTER_MAX_INSTANCES),
            cache: RefCell::new(None),
        }
    }

    /// `f` over the instances of `cal` in `[lo, hi)`, expanded once for
    /// `key`.
    fn with_instances<R>(
        &self,
        cal: &Component,
        key: &TimeRange,
        lo: DateTime<Utc>,
        hi: DateTime<Utc>,
        f: impl FnOnce(&[Instance]) -> R,
    ) -> R {
        let mut cache = self.cache.borrow_mut();
        if cache.as_ref().is_none_or(|(k, _)| k != key) {
            let found = recur::instances(cal, lo, hi, &self.opts).unwrap_or_default();
            *cache = Some((*key, found));
        }
        f(cache
            .as_ref()
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default())
    }

    fn value_utc(&self, p: &Property) -> Option<DateTime<Utc>> {
        let zones = self.zones.get_or_init(|| Zones::from_calendar(self.cal));
        DateTimeValue::from_property(p)
            .ok()
            .map(|v| v.to_utc(zones, &self.opts.floating))
    }

    /// RFC 4791 §9.9 for a VTODO instance starting at `s` and ending at
    /// `e` (DUE, or DTSTART + DURATION), or for one without dates.
    fn todo_overlaps(&self, c: &Component, inst: Option<&Instance>, range: &TimeRange) -> bool {
        let (lo, hi) = (utc(range.start, open_start()), utc(range.end, open_end()));
        let has_start = c.prop("DTSTART").is_some();
        let has_due = c.prop("DUE").is_some();
        let has_duration = c.prop("DURATION").is_some();
        if let Some(i) = inst {
            let (s, e) = (i.start, i.end);
            return match (has_start, has_duration, has_due) {
                (true, true, _) => lo <= e && (hi > s || hi >= e),
                (true, false, true) => (lo < e || lo <= s) && (hi > s || hi >= e),
                (true, false, false) => lo <= s && hi > s,
                _ => lo < s && hi >= s,
            };
        }
        if has_start || has_due {
            // Dated, but no instance falls near the range.
            return false;
        }
        let completed = c.prop("COMPLETED").and_then(|p| self.value_utc(p));
        let created = c.prop("CREATED").and_then(|p| self.value_utc(p));
        match (completed, created) {
            (Some(done), Some(made)) => (lo <= made || lo <= done) && (hi >= made || hi >= done),
            (Some(done), None) => lo <= done && hi >= done,
            (None, Some(made)) => hi > made,
            (None, None) => true,
        }
    }

    /// The alarms of the component at `parent` trigger within `range`
    /// (RFC 4791 §9.9: each trigger time, repetitions included).
    fn alarm_overlaps(
        &self,
        cal: &Component,
        parent: usize,
        alarm: &Component,
        range: &TimeRange,
    ) -> bool {
        let (lo, hi) = (utc(range.start, open_start()), utc(range.end, open_end()));
        let Some(trigger) = alarm.prop("TRIGGER") else {
            return false;
        };
        let repeat = alarm
            .value("REPEAT")
            .and_then(|r| r.trim().parse::<i64>().ok())
            .unwrap_or(0)
            .clamp(0, 1_000);
        let interval = alarm
            .value("DURATION")
            .and_then(|d| IcsDuration::parse(d).ok())
            .map_or(0, |d| d.approx_seconds());
        let in_range = |t: DateTime<Utc>| {
            (0..=repeat).any(|k| {
                let at = t + Duration::seconds(k.saturating_mul(interval));
                lo <= at && at < hi
            })
        };
        let absolute = trigger
            .param("VALUE")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("DATE-TIME"));
        if absolute {
            return self.value_utc(trigger).is_some_and(in_range);
        }
        let Ok(offset) = IcsDuration::parse(&trigger.value) else {
            return false;
        };
        let offset = Duration::seconds(offset.approx_seconds());
        let from_end = trigger
            .param("RELATED")
            .is_some_and(|r| r.trim().eq_ignore_ascii_case("END"));
        // Instances whose triggers can reach the range: widen it by the
        // trigger offset and the repetitions.
        let reach = Duration::seconds(
            offset
                .num_seconds()
                .abs()
                .saturating_add(repeat.saturating_mul(interval.abs()))
                .saturating_add(86_400),
        );
        let key = TimeRange {
            start: Some(lo - reach),
            end: Some(hi + reach),
        };
        self.with_instances(cal, &key, lo - reach, hi + reach, |all| {
            all.iter()
                .filter(|i| i.component == parent)
                .any(|i| in_range(if from_end { i.end } else { i.start } + offset))
        })
    }
}

impl TimeRangeTest for TimeTest<'_> {
    fn component_overlaps(&self, cal: &Component, path: &[usize], range: &TimeRange) -> bool {
        let Some((&top, rest)) = path.split_first() else {
            return false;
        };
        let Some(c) = cal.children.get(top) else {
            return false;
        };
        if let [alarm] = rest {
            return c
                .children
                .get(*alarm)
                .is_some_and(|a| a.name == "VALARM" && self.alarm_overlaps(cal, top, a, range));
        }
        if !rest.is_empty() {
            return false;
        }
        let (lo, hi) = (utc(range.start, open_start()), utc(range.end, open_end()));
        if c.name == "VTODO" {
            // A due-only task's instance sits at DUE, which RFC 4791 counts
            // when the range ends on it: look a second further.
            return self.with_instances(cal, range, lo, hi + Duration::seconds(1), |all| {
                let mut own = all.iter().filter(|i| i.component == top).peekable();
                if own.peek().is_none() {
                    return self.todo_overlaps(c, None, range);
                }
                own.any(|i| self.todo_overlaps(c, Some(i), range))
            });
        }
        self.with_instances(cal, range, lo, hi, |all| {
            all.iter()
                .any(|i| i.component == top && range.overlaps(i.start, i.end))
        })
    }

    fn property_overlaps(&self, prop: &Property, range: &TimeRange) -> bool {
        self.value_utc(prop).is_some_and(|t| range.overlaps(t, t))
    }
}

fn stored_object_error(e: crate::ics::IcsError) -> DavError {
    DavError::new(500, format!("a stored object cannot be expanded: {e}"))
}

/// `<C:expand>`: the recurrence set as instances in the range, in UTC.
pub fn expand(cal: &Component, range: &TimeRange, zone_name: &str) -> Result<Component, DavError> {
    recur::expand_calendar(
        cal,
        utc(range.start, open_start()),
        utc(range.end, open_end()),
        &options(zone_name, recur::DEFAULT_MAX_INSTANCES),
    )
    .map_err(stored_object_error)
}

/// `<C:limit-recurrence-set>`: the master and the overrides that affect
/// the range.
pub fn limit_recurrence_set(
    cal: &Component,
    range: &TimeRange,
    zone_name: &str,
) -> Result<Component, DavError> {
    recur::limit_recurrence_set(
        cal,
        utc(range.start, open_start()),
        utc(range.end, open_end()),
        &options(zone_name, recur::DEFAULT_MAX_INSTANCES),
    )
    .map_err(stored_object_error)
}

/// Kinds of busy time (RFC 5545 FBTYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BusyKind {
    Busy,
    Tentative,
}

/// Busy periods of one object's events in `[start, end)`, clipped to it:
/// every instance of a VEVENT that is neither transparent nor cancelled.
pub fn busy(cal: &Component, start: i64, end: i64, zone_name: &str) -> Vec<(i64, i64, BusyKind)> {
    let (Some(lo), Some(hi)) = (
        DateTime::from_timestamp(start, 0),
        DateTime::from_timestamp(end, 0),
    ) else {
        return Vec::new();
    };
    let opts = options(zone_name, recur::DEFAULT_MAX_INSTANCES);
    let Ok(found) = recur::instances(cal, lo, hi, &opts) else {
        return Vec::new();
    };
    found
        .iter()
        .filter_map(|i| {
            let c = cal.children.get(i.component)?;
            if c.name != "VEVENT" || !crate::freebusy::is_busy(c) {
                return None;
            }
            let (s, e) = (i.start.timestamp().max(start), i.end.timestamp().min(end));
            (s < e).then(|| (s, e, busy_kind(c)))
        })
        .collect()
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

/// A `CALDAV:calendar-timezone` value (a VCALENDAR with one VTIMEZONE)
/// for a zone name, exact for last year to ten years ahead.
pub fn calendar_timezone(name: &str) -> Option<String> {
    let year = Utc::now().year();
    let vtz = crate::ics::vtimezone::vtimezone(name, year - 1, year + 10)?;
    let mut cal = Component::new("VCALENDAR");
    cal.push(Property::new("VERSION", "2.0"));
    cal.push(Property::new("PRODID", crate::model::appointment::PRODID));
    cal.children.push(vtz);
    Some(String::from_utf8_lossy(&crate::ics::serialize(&cal)).into_owned())
}

/// The IANA zone a `CALDAV:calendar-timezone` value (a VCALENDAR with one
/// VTIMEZONE) stands for, if its TZID names one (IANA, Windows or Outlook
/// names all resolve).
pub fn zone_of_calendar_timezone(text: &str) -> Option<String> {
    let cal = crate::ics::parse(text.trim().as_bytes()).ok()?;
    let tzid = cal.children_named("VTIMEZONE").next()?.value("TZID")?;
    resolve_name(tzid).map(|z| z.name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dav::request::parse_utc;

    fn cal(body: &str) -> Component {
        let text = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{}\r\nEND:VCALENDAR\r\n",
            body.trim()
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("\r\n")
        );
        crate::ics::parse(text.as_bytes()).unwrap()
    }

    fn range(s: &str, e: &str) -> TimeRange {
        TimeRange {
            start: Some(parse_utc(s).unwrap()),
            end: Some(parse_utc(e).unwrap()),
        }
    }

    fn overlaps(c: &Component, path: &[usize], r: &TimeRange) -> bool {
        TimeTest::new(c, "Europe/Berlin").component_overlaps(c, path, r)
    }

    #[test]
    fn recurring_events_match_by_instance_and_overrides_move_them() {
        let c = cal("
            BEGIN:VEVENT
            UID:w
            DTSTART:20260105T090000Z
            DTEND:20260105T100000Z
            RRULE:FREQ=WEEKLY;COUNT=4
            END:VEVENT
            BEGIN:VEVENT
            UID:w
            RECURRENCE-ID:20260112T090000Z
            DTSTART:20260113T150000Z
            DTEND:20260113T160000Z
            END:VEVENT");
        // Week 2 moved from Monday to Tuesday afternoon.
        assert!(!overlaps(
            &c,
            &[0],
            &range("20260112T000000Z", "20260113T000000Z")
        ));
        assert!(overlaps(
            &c,
            &[1],
            &range("20260113T000000Z", "20260114T000000Z")
        ));
        assert!(overlaps(
            &c,
            &[0],
            &range("20260119T000000Z", "20260120T000000Z")
        ));
        assert!(!overlaps(
            &c,
            &[0],
            &range("20260202T000000Z", "20260203T000000Z")
        ));
    }

    #[test]
    fn todos_follow_the_rfc4791_table() {
        let c = cal("
            BEGIN:VTODO
            UID:due
            DUE:20260110T120000Z
            END:VTODO
            BEGIN:VTODO
            UID:undated
            END:VTODO
            BEGIN:VTODO
            UID:done
            COMPLETED:20260101T000000Z
            END:VTODO");
        assert!(overlaps(
            &c,
            &[0],
            &range("20260110T000000Z", "20260110T120000Z")
        ));
        assert!(!overlaps(
            &c,
            &[0],
            &range("20260110T120000Z", "20260111T000000Z")
        ));
        assert!(overlaps(
            &c,
            &[1],
            &range("19990101T000000Z", "19990102T000000Z")
        ));
        assert!(overlaps(
            &c,
            &[2],
            &range("20251231T000000Z", "20260102T000000Z")
        ));
        assert!(!overlaps(
            &c,
            &[2],
            &range("20260102T000000Z", "20260103T000000Z")
        ));
    }

    #[test]
    fn alarms_trigger_relative_to_each_instance() {
        let c = cal("
            BEGIN:VEVENT
            UID:a
            DTSTART:20260105T090000Z
            DTEND:20260105T100000Z
            RRULE:FREQ=DAILY;COUNT=3
            BEGIN:VALARM
            ACTION:DISPLAY
            TRIGGER:-PT30M
            END:VALARM
            END:VEVENT");
        assert!(overlaps(
            &c,
            &[0, 0],
            &range("20260106T082500Z", "20260106T083500Z")
        ));
        assert!(!overlaps(
            &c,
            &[0, 0],
            &range("20260106T090000Z", "20260106T100000Z")
        ));
        assert!(!overlaps(
            &c,
            &[0, 0],
            &range("20260108T082500Z", "20260108T083500Z")
        ));
    }

    #[test]
    fn refusals_carry_their_precondition() {
        let two = cal("
            BEGIN:VEVENT
            UID:1
            DTSTART:20260101T100000Z
            END:VEVENT
            BEGIN:VEVENT
            UID:2
            DTSTART:20260101T100000Z
            END:VEVENT");
        let e = analyze(&two, "UTC").unwrap_err();
        assert_eq!(e.condition, Some(Condition::ValidCalendarObjectResource));
        let bad = cal("BEGIN:VEVENT\r\nUID:1\r\nDTSTART:tomorrow\r\nEND:VEVENT");
        let e = analyze(&bad, "UTC").unwrap_err();
        assert_eq!(e.condition, Some(Condition::ValidCalendarData));
    }

    #[test]
    fn busy_time_expands_and_skips_free_events() {
        let c = cal("
            BEGIN:VEVENT
            UID:b
            DTSTART:20260105T090000Z
            DTEND:20260105T100000Z
            RRULE:FREQ=DAILY;COUNT=3
            END:VEVENT
            BEGIN:VEVENT
            UID:b
            RECURRENCE-ID:20260106T090000Z
            DTSTART:20260106T090000Z
            DTEND:20260106T100000Z
            TRANSP:TRANSPARENT
            END:VEVENT");
        let start = parse_utc("20260101T000000Z").unwrap().timestamp();
        let end = parse_utc("20260201T000000Z").unwrap().timestamp();
        let got = busy(&c, start, end, "UTC");
        assert_eq!(got.len(), 2, "{got:?}");
    }

    #[test]
    fn calendar_timezones_round_trip() {
        let text = calendar_timezone("Europe/Berlin").unwrap();
        assert!(text.contains("TZID:Europe/Berlin"));
        assert_eq!(
            zone_of_calendar_timezone(&text).as_deref(),
            Some("Europe/Berlin")
        );
        assert_eq!(zone_of_calendar_timezone("nonsense"), None);
    }
}
