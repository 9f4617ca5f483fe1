//! An appointment as the admin API sees it, and its iCalendar form.
//!
//! Creating builds a new VCALENDAR; changing patches the stored object's
//! master VEVENT in place, so whatever a CalDAV client added (alarms,
//! attendees, overrides) survives an API edit. Reading goes the other way:
//! any event in a staff member's `appointments` calendar, however it was
//! written, reads back as an appointment.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::ics::{self, Component, Property};

/// Why an appointment was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn field_err(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

pub const MAX_TEXT: usize = 64 * 1024;
pub const MAX_SUMMARY: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Default,
    Public,
    Private,
    Confidential,
}

impl Visibility {
    fn class(self) -> Option<&'static str> {
        match self {
            Visibility::Default => None,
            Visibility::Public => Some("PUBLIC"),
            Visibility::Private => Some("PRIVATE"),
            Visibility::Confidential => Some("CONFIDENTIAL"),
        }
    }

    fn from_class(class: Option<&str>) -> Self {
        match class.map(|c| c.trim().to_ascii_uppercase()).as_deref() {
            Some("PUBLIC") => Visibility::Public,
            Some("PRIVATE") => Visibility::Private,
            Some("CONFIDENTIAL") => Visibility::Confidential,
            _ => Visibility::Default,
        }
    }
}

/// Body of `POST …/appointments`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAppointment {
    pub summary: String,
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub all_day: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub visibility: Option<Visibility>,
    #[serde(default)]
    pub rrule: Option<String>,
}

/// Body of `PATCH /api/v1/appointments/{id}`: every field optional; `null`
/// clears description, location and rrule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppointmentChange {
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub all_day: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub location: Option<Option<String>>,
    #[serde(default)]
    pub visibility: Option<Visibility>,
    #[serde(default, deserialize_with = "nullable")]
    pub rrule: Option<Option<String>>,
}

fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// An appointment as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Appointment {
    pub id: String,
    pub uid: String,
    pub staff: String,
    pub summary: String,
    /// RFC 3339 for timed events, `YYYY-MM-DD` for all-day ones.
    pub start: String,
    pub end: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    pub all_day: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub visibility: Visibility,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rrule: Option<String>,
    pub status: String,
    pub etag: String,
    pub updated: String,
}

/// The validated times of an appointment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Times {
    AllDay {
        start: NaiveDate,
        end: NaiveDate,
    },
    Timed {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        zone: chrono_tz::Tz,
    },
}

impl Times {
    /// UTC span for the index (all-day dates as UTC midnights).
    pub fn span(&self) -> (i64, i64) {
        match self {
            Times::AllDay { start, end } => (midnight(*start), midnight(*end)),
            Times::Timed { start, end, .. } => (start.timestamp(), end.timestamp()),
        }
    }
}

fn midnight(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp()
}

pub fn parse_zone(field: &'static str, name: &str) -> Result<chrono_tz::Tz, FieldError> {
    name.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        field_err(
            field,
            format!("unknown time zone {name:?}; use an IANA name such as Europe/Berlin"),
        )
    })
}

/// Validate start/end/zone/all-day into [`Times`].
pub fn parse_times(
    start: &str,
    end: &str,
    all_day: bool,
    timezone: Option<&str>,
    default_zone: &str,
) -> Result<Times, FieldError> {
    if all_day {
        let d = |field: &'static str, s: &str| {
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
                field_err(
                    field,
                    format!("an all-day {field} is a date YYYY-MM-DD, not {s:?}"),
                )
            })
        };
        let (s, e) = (d("start", start)?, d("end", end)?);
        if e <= s {
            return Err(field_err(
                "end",
                "must be after start (an all-day end date is exclusive)",
            ));
        }
        if let Some(tz) = timezone {
            parse_zone("timezone", tz)?;
        }
        return Ok(Times::AllDay { start: s, end: e });
    }
    let zone = parse_zone("timezone", timezone.unwrap_or(default_zone))?;
    let t = |field: &'static str, s: &str| {
        DateTime::parse_from_rfc3339(s.trim())
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| {
                field_err(
                    field,
                    format!("not an RFC 3339 time such as 2026-03-02T09:00:00+01:00: {s:?}"),
                )
            })
    };
    let (s, e) = (t("start", start)?, t("end", end)?);
    if e <= s {
        return Err(field_err("end", "must be after start"));
    }
    if e - s > chrono::Duration::days(366 * 5) {
        return Err(field_err(
            "end",
            "an appointment may last at most five years",
        ));
    }
    Ok(Times::Timed {
        start: s,
        end: e,
        zone,
    })
}

fn check_text(field: &'static str, v: &str, max: usize) -> Result<(), FieldError> {
    if v.len() > max {
        return Err(field_err(field, format!("longer than {max} bytes")));
    }
    if v.chars().any(|c| c == '\0') {
        return Err(field_err(field, "contains a NUL character"));
    }
    Ok(())
}

/// Check an RRULE value (without the `RRULE:` prefix).
pub fn check_rrule(rule: &str) -> Result<(), FieldError> {
    let rule = rule.trim();
    let rule = rule.strip_prefix("RRULE:").unwrap_or(rule);
    if rule.len() > 1024 {
        return Err(field_err("rrule", "longer than 1024 bytes"));
    }
    crate::ics::rrule::RRule::parse(rule)
        .map(|_| ())
        .map_err(|e| field_err("rrule", format!("invalid RRULE: {e}")))
}

fn local_value(t: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    zone.from_utc_datetime(&t.naive_utc())
        .naive_local()
        .format("%Y%m%dT%H%M%S")
        .to_string()
}

fn utc_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn set_times(ev: &mut Component, times: &Times) {
    ev.remove("DURATION");
    match times {
        Times::AllDay { start, end } => {
            ev.set(
                Property::new("DTSTART", start.format("%Y%m%d").to_string())
                    .with_param("VALUE", "DATE"),
            );
            ev.set(
                Property::new("DTEND", end.format("%Y%m%d").to_string())
                    .with_param("VALUE", "DATE"),
            );
        }
        Times::Timed { start, end, zone } => {
            let tz = zone.name();
            ev.set(Property::new("DTSTART", local_value(*start, *zone)).with_param("TZID", tz));
            ev.set(Property::new("DTEND", local_value(*end, *zone)).with_param("TZID", tz));
        }
    }
}

fn set_text(ev: &mut Component, name: &str, v: Option<&str>) {
    match v {
        Some(v) if !v.is_empty() => ev.set(Property::text(name, v)),
        _ => ev.remove(name),
    }
}

/// The VTIMEZONEs an appointment's object carries: one per zone it uses,
/// covering the years around its start.
fn zone_components(times: &Times) -> Vec<Component> {
    match times {
        Times::Timed { start, zone, .. } => {
            use chrono::Datelike;
            let y = start.year();
            crate::objects::vtimezone_block(zone.name(), y)
                .into_iter()
                .collect()
        }
        Times::AllDay { .. } => Vec::new(),
    }
}

/// Build the iCalendar object of a new appointment.
pub fn to_ics(
    input: &NewAppointment,
    uid: &str,
    times: &Times,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, FieldError> {
    check_text("summary", &input.summary, MAX_SUMMARY)?;
    if input.summary.trim().is_empty() {
        return Err(field_err("summary", "must not be empty"));
    }
    if let Some(d) = &input.description {
        check_text("description", d, MAX_TEXT)?;
    }
    if let Some(l) = &input.location {
        check_text("location", l, MAX_TEXT)?;
    }
    if let Some(r) = &input.rrule {
        check_rrule(r)?;
    }
    let mut cal = Component::new("VCALENDAR");
    cal.push(Property::new("VERSION", "2.0"));
    cal.push(Property::new("PRODID", PRODID));
    cal.push(Property::new("CALSCALE", "GREGORIAN"));
    cal.children.extend(zone_components(times));
    let mut ev = Component::new("VEVENT");
    ev.push(Property::new("UID", uid));
    ev.push(Property::new("DTSTAMP", utc_stamp(now)));
    ev.push(Property::new("CREATED", utc_stamp(now)));
    ev.push(Property::new("LAST-MODIFIED", utc_stamp(now)));
    ev.push(Property::new("SEQUENCE", "0"));
    set_times(&mut ev, times);
    ev.push(Property::text("SUMMARY", &input.summary));
    set_text(&mut ev, "DESCRIPTION", input.description.as_deref());
    set_text(&mut ev, "LOCATION", input.location.as_deref());
    if let Some(c) = input.visibility.and_then(Visibility::class) {
        ev.push(Property::new("CLASS", c));
    }
    if let Some(r) = &input.rrule {
        let r = r.trim();
        ev.push(Property::new(
            "RRULE",
            r.strip_prefix("RRULE:").unwrap_or(r),
        ));
    }
    ev.push(Property::new("STATUS", "CONFIRMED"));
    ev.push(Property::new("TRANSP", "OPAQUE"));
    cal.children.push(ev);
    Ok(cal.to_ics())
}

pub const PRODID: &str = "-//calbridge//calbridge 1.0//EN";

/// The master VEVENT (no RECURRENCE-ID) of an object.
pub fn master(cal: &Component) -> Option<&Component> {
    cal.children
        .iter()
        .filter(|c| c.name == "VEVENT")
        .find(|c| c.prop("RECURRENCE-ID").is_none())
        .or_else(|| cal.children.iter().find(|c| c.name == "VEVENT"))
}

fn master_index(cal: &Component) -> Option<usize> {
    let m = master(cal)? as *const Component;
    cal.children.iter().position(|c| std::ptr::eq(c, m))
}

/// Read an appointment's times back from its master VEVENT, with the zone
/// name to show.
pub fn current_times(
    cal: &Component,
    ev: &Component,
    default_zone: &str,
) -> Option<(Times, Option<String>)> {
    use crate::ics::tz::{Zone, Zones};
    use crate::ics::value::{DateTimeValue, IcsDuration};
    let zones = Zones::from_calendar(cal);
    let floating_tz = parse_zone("timezone", default_zone).unwrap_or(chrono_tz::UTC);
    let floating = Zone::Iana(floating_tz);
    let start = DateTimeValue::from_property(ev.prop("DTSTART")?).ok()?;
    let end = ev
        .prop("DTEND")
        .and_then(|p| DateTimeValue::from_property(p).ok());
    let duration = ev
        .value("DURATION")
        .and_then(|d| IcsDuration::parse(d).ok());
    match &start {
        DateTimeValue::Date(s) => {
            let e = match (&end, &duration) {
                (Some(DateTimeValue::Date(e)), _) if e > s => *e,
                (None, Some(d)) => {
                    s.checked_add_signed(chrono::Duration::days(d.nominal_days().max(1)))?
                }
                _ => s.succ_opt()?,
            };
            Some((Times::AllDay { start: *s, end: e }, None))
        }
        other => {
            let s = other.to_utc(&zones, &floating);
            let e = match (end, duration) {
                (Some(e), _) => e.to_utc(&zones, &floating),
                (None, Some(d)) => d.add_in_zone(other.local(), &other.zone(&zones, &floating)),
                _ => s,
            };
            let (zone, name) = match other {
                DateTimeValue::Zoned { tzid, .. } => match zones.resolve(tzid) {
                    Some(Zone::Iana(tz)) => (tz, tz.name().to_string()),
                    _ => (chrono_tz::UTC, tzid.clone()),
                },
                DateTimeValue::Utc(_) => (chrono_tz::UTC, "UTC".to_string()),
                _ => (floating_tz, floating_tz.name().to_string()),
            };
            Some((
                Times::Timed {
                    start: s,
                    end: e.max(s),
                    zone,
                },
                Some(name),
            ))
        }
    }
}

/// The API view of a stored appointment object.
pub fn from_ics(
    body: &[u8],
    id: &str,
    staff: &str,
    etag: &str,
    updated: i64,
    default_zone: &str,
) -> Option<Appointment> {
    let cal = ics::parse(body).ok()?;
    let ev = master(&cal)?;
    let (times, tzname) = current_times(&cal, ev, default_zone)?;
    let (start, end, all_day) = match &times {
        Times::AllDay { start, end } => (start.to_string(), end.to_string(), true),
        Times::Timed { start, end, zone } => (
            zone.from_utc_datetime(&start.naive_utc()).to_rfc3339(),
            zone.from_utc_datetime(&end.naive_utc()).to_rfc3339(),
            false,
        ),
    };
    Some(Appointment {
        id: id.to_string(),
        uid: ev.value("UID").unwrap_or_default().to_string(),
        staff: staff.to_string(),
        summary: ev
            .prop("SUMMARY")
            .map(Property::text_value)
            .unwrap_or_default(),
        start,
        end,
        timezone: if all_day { None } else { tzname },
        all_day,
        description: ev.prop("DESCRIPTION").map(Property::text_value),
        location: ev.prop("LOCATION").map(Property::text_value),
        visibility: Visibility::from_class(ev.value("CLASS")),
        rrule: ev.value("RRULE").map(str::to_string),
        status: ev
            .value("STATUS")
            .unwrap_or("CONFIRMED")
            .to_ascii_lowercase(),
        etag: etag.to_string(),
        updated: Utc
            .timestamp_opt(updated, 0)
            .single()
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
    })
}

/// Apply a change to a stored object; returns the new bytes.
pub fn apply_change(
    body: &[u8],
    change: &AppointmentChange,
    default_zone: &str,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, FieldError> {
    let mut cal = ics::parse(body)
        .map_err(|e| field_err("id", format!("the stored event cannot be read: {e}")))?;
    let idx =
        master_index(&cal).ok_or_else(|| field_err("id", "the stored event has no VEVENT"))?;
    let (cur, cur_tz) = current_times(&cal, &cal.children[idx], default_zone)
        .ok_or_else(|| field_err("start", "the stored event has no readable start"))?;
    let all_day = change
        .all_day
        .unwrap_or(matches!(cur, Times::AllDay { .. }));
    let times = if change.start.is_some()
        || change.end.is_some()
        || change.all_day.is_some()
        || change.timezone.is_some()
    {
        let (cs, ce) = match &cur {
            Times::AllDay { start, end } => (start.to_string(), end.to_string()),
            Times::Timed { start, end, .. } => (start.to_rfc3339(), end.to_rfc3339()),
        };
        let zone = change
            .timezone
            .clone()
            .or(cur_tz.filter(|z| z.parse::<chrono_tz::Tz>().is_ok()));
        parse_times(
            change.start.as_deref().unwrap_or(&cs),
            change.end.as_deref().unwrap_or(&ce),
            all_day,
            zone.as_deref(),
            default_zone,
        )?
    } else {
        cur.clone()
    };
    if let Some(s) = &change.summary {
        check_text("summary", s, MAX_SUMMARY)?;
        if s.trim().is_empty() {
            return Err(field_err("summary", "must not be empty"));
        }
    }
    if let Some(Some(d)) = &change.description {
        check_text("description", d, MAX_TEXT)?;
    }
    if let Some(Some(l)) = &change.location {
        check_text("location", l, MAX_TEXT)?;
    }
    if let Some(Some(r)) = &change.rrule {
        check_rrule(r)?;
    }
    {
        let ev = &mut cal.children[idx];
        if times != cur {
            set_times(ev, &times);
        }
        if let Some(s) = &change.summary {
            ev.set(Property::text("SUMMARY", s));
        }
        if let Some(d) = &change.description {
            set_text(ev, "DESCRIPTION", d.as_deref());
        }
        if let Some(l) = &change.location {
            set_text(ev, "LOCATION", l.as_deref());
        }
        if let Some(v) = change.visibility {
            match v.class() {
                Some(c) => ev.set(Property::new("CLASS", c)),
                None => ev.remove("CLASS"),
            }
        }
        if let Some(r) = &change.rrule {
            match r {
                Some(r) => {
                    let r = r.trim();
                    ev.set(Property::new(
                        "RRULE",
                        r.strip_prefix("RRULE:").unwrap_or(r),
                    ))
                }
                None => ev.remove("RRULE"),
            }
        }
        let seq = ev
            .value("SEQUENCE")
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(0);
        ev.set(Property::new("SEQUENCE", (seq + 1).to_string()));
        ev.set(Property::new("DTSTAMP", utc_stamp(now)));
        ev.set(Property::new("LAST-MODIFIED", utc_stamp(now)));
    }
    // Make sure the zone the times now use has its VTIMEZONE.
    if let Times::Timed { zone, .. } = &times {
        let has = cal
            .children_named("VTIMEZONE")
            .any(|z| z.value("TZID") == Some(zone.name()));
        if !has {
            let comps = zone_components(&times);
            let at = cal
                .children
                .iter()
                .position(|c| c.name != "VTIMEZONE")
                .unwrap_or(0);
            for (i, c) in comps.into_iter().enumerate() {
                cal.children.insert(at + i, c);
            }
        }
    }
    Ok(cal.to_ics())
}

/// A naive local time, for tests and callers formatting values.
pub fn naive(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%S").ok()
}

/// The index fields of an appointment object: series span (UTC seconds,
/// `i64::MAX` for an unbounded series) and whether it recurs. Floating
/// times and dates count in `zone`.
pub fn index_span(body: &[u8], zone: &str) -> Result<(i64, i64, bool), FieldError> {
    let cal = ics::parse(body)
        .map_err(|e| field_err("start", format!("the event cannot be read: {e}")))?;
    let info =
        crate::objects::analyze(&cal, Some(zone)).map_err(|e| field_err("rrule", e.message()))?;
    Ok((info.start, info.end, info.recurring))
}
