//! Google Calendar event JSON ↔ iCalendar.
//!
//! A series is the master event plus its exceptions (events with
//! `recurringEventId`): the master becomes the VEVENT with RRULE/EXDATE/
//! RDATE, each exception a VEVENT with RECURRENCE-ID (in the master's
//! DTSTART form), each cancelled exception an EXDATE. Times keep the event's
//! own zone (`start.timeZone`), all-day events stay DATE values.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::ics::{Component, Property};
use crate::upstream::provider::{MapError, MappedSeries};

pub const PRODID: &str = "-//calbridge//Google Calendar mirror//EN";

/// Google's event color palette (colorId → background), and the nearest
/// CSS3 color name RFC 7986 COLOR takes.
pub const EVENT_COLORS: &[(&str, &str, &str)] = &[
    ("1", "#a4bdfc", "lightsteelblue"),
    ("2", "#7ae7bf", "aquamarine"),
    ("3", "#dbadff", "plum"),
    ("4", "#ff887c", "salmon"),
    ("5", "#fbd75b", "gold"),
    ("6", "#ffb878", "sandybrown"),
    ("7", "#46d6db", "mediumturquoise"),
    ("8", "#e1e1e1", "lightgray"),
    ("9", "#5484ed", "royalblue"),
    ("10", "#51b749", "mediumseagreen"),
    ("11", "#dc2127", "crimson"),
];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GTime {
    pub date: Option<String>,
    pub date_time: Option<String>,
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GPerson {
    pub email: Option<String>,
    pub display_name: Option<String>,
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub resource: bool,
    pub response_status: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct GReminder {
    pub method: Option<String>,
    pub minutes: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GReminders {
    #[serde(default)]
    pub use_default: bool,
    #[serde(default)]
    pub overrides: Vec<GReminder>,
}

/// The fields of a Google event calbridge reads. Unknown fields are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GEvent {
    pub id: String,
    pub status: Option<String>,
    pub etag: Option<String>,
    #[serde(rename = "iCalUID")]
    pub ical_uid: Option<String>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub color_id: Option<String>,
    pub created: Option<String>,
    pub updated: Option<String>,
    pub start: Option<GTime>,
    pub end: Option<GTime>,
    pub end_time_unspecified: Option<bool>,
    #[serde(default)]
    pub recurrence: Vec<String>,
    pub recurring_event_id: Option<String>,
    pub original_start_time: Option<GTime>,
    pub transparency: Option<String>,
    pub visibility: Option<String>,
    pub sequence: Option<i64>,
    pub organizer: Option<GPerson>,
    #[serde(default)]
    pub attendees: Vec<GPerson>,
    pub reminders: Option<GReminders>,
    pub html_link: Option<String>,
    pub extended_properties: Option<Value>,
    /// Injected by calbridge from the list response when stored.
    #[serde(rename = "_defaultReminders", default)]
    pub default_reminders: Vec<GReminder>,
}

impl GEvent {
    pub fn is_cancelled(&self) -> bool {
        self.status.as_deref() == Some("cancelled")
    }
}

/// A time as its iCalendar value: DATE, or local time with TZID, or UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    Date(NaiveDate),
    Zoned(chrono::NaiveDateTime, chrono_tz::Tz),
    Utc(DateTime<Utc>),
}

impl Stamp {
    pub fn property(&self, name: &str) -> Property {
        match self {
            Stamp::Date(d) => {
                Property::new(name, d.format("%Y%m%d").to_string()).with_param("VALUE", "DATE")
            }
            Stamp::Zoned(t, tz) => Property::new(name, t.format("%Y%m%dT%H%M%S").to_string())
                .with_param("TZID", tz.name()),
            Stamp::Utc(t) => Property::new(name, t.format("%Y%m%dT%H%M%SZ").to_string()),
        }
    }

    /// The instant (dates: UTC midnight) for spans.
    pub fn utc(&self) -> i64 {
        match self {
            Stamp::Date(d) => d
                .and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc()
                .timestamp(),
            Stamp::Zoned(t, tz) => {
                use chrono::TimeZone;
                tz.from_local_datetime(t)
                    .earliest()
                    .map(|d| d.timestamp())
                    .unwrap_or_else(|| t.and_utc().timestamp())
            }
            Stamp::Utc(t) => t.timestamp(),
        }
    }

    /// The same instant expressed like `like` (RECURRENCE-ID and EXDATE
    /// must match the master's DTSTART form).
    pub fn shaped_like(&self, like: &Stamp) -> Stamp {
        match (self, like) {
            (Stamp::Date(_), _) => self.clone(),
            (_, Stamp::Date(_)) => {
                let d = chrono::DateTime::from_timestamp(self.utc(), 0).unwrap_or_default();
                Stamp::Date(d.date_naive())
            }
            (_, Stamp::Zoned(_, tz)) => {
                let t = chrono::DateTime::from_timestamp(self.utc(), 0).unwrap_or_default();
                Stamp::Zoned(t.with_timezone(tz).naive_local(), *tz)
            }
            (_, Stamp::Utc(_)) => {
                Stamp::Utc(chrono::DateTime::from_timestamp(self.utc(), 0).unwrap_or_default())
            }
        }
    }
}

/// Read a Google time. `fallback_zone` is the calendar's zone.
pub fn stamp(
    t: &GTime,
    fallback_zone: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<Stamp, MapError> {
    if let Some(d) = &t.date {
        return crate::upstream::iso_date(d)
            .map(Stamp::Date)
            .ok_or_else(|| MapError(format!("invalid date {d:?}")));
    }
    let dt = t
        .date_time
        .as_deref()
        .ok_or_else(|| MapError("a time has neither date nor dateTime".into()))?;
    let instant = DateTime::parse_from_rfc3339(dt)
        .ok()
        .filter(|d| crate::upstream::four_digit_year(dt) && crate::upstream::writable_year(d))
        .map(|d| d.with_timezone(&Utc))
        .filter(crate::upstream::writable_year)
        .ok_or_else(|| MapError(format!("invalid dateTime {dt:?}")))?;
    let zone_name = t.time_zone.as_deref().or(fallback_zone);
    match zone_name {
        Some(z) => match z.parse::<chrono_tz::Tz>() {
            // UTC needs no VTIMEZONE: write it as a UTC value.
            Ok(tz)
                if matches!(
                    tz.name(),
                    "UTC" | "Etc/UTC" | "Etc/GMT" | "GMT" | "Etc/Universal" | "Etc/Zulu"
                ) =>
            {
                Ok(Stamp::Utc(instant))
            }
            Ok(tz) => {
                let local = instant.with_timezone(&tz).naive_local();
                if !crate::upstream::writable_year(&local) {
                    return Err(MapError(format!("invalid dateTime {dt:?}")));
                }
                Ok(Stamp::Zoned(local, tz))
            }
            Err(_) => {
                warnings.push(format!("unknown time zone {z:?}: kept as UTC"));
                Ok(Stamp::Utc(instant))
            }
        },
        None => Ok(Stamp::Utc(instant)),
    }
}

fn utc_prop(name: &str, rfc3339: Option<&str>) -> Option<Property> {
    let t = DateTime::parse_from_rfc3339(rfc3339?)
        .ok()?
        .with_timezone(&Utc);
    Some(Property::new(name, t.format("%Y%m%dT%H%M%SZ").to_string()))
}

pub fn parse_time(rfc3339: Option<&str>) -> Option<i64> {
    DateTime::parse_from_rfc3339(rfc3339?)
        .ok()
        .map(|t| t.timestamp())
}

fn person(name: &str, p: &GPerson) -> Option<Property> {
    let email = p.email.as_deref()?;
    let mut prop = Property::new(name, format!("mailto:{email}"));
    if let Some(n) = p.display_name.as_deref().filter(|n| !n.is_empty()) {
        prop.set_param("CN", n);
    }
    if name == "ATTENDEE" {
        let partstat = match p.response_status.as_deref() {
            Some("accepted") => "ACCEPTED",
            Some("declined") => "DECLINED",
            Some("tentative") => "TENTATIVE",
            _ => "NEEDS-ACTION",
        };
        prop.set_param("PARTSTAT", partstat);
        prop.set_param(
            "ROLE",
            if p.optional {
                "OPT-PARTICIPANT"
            } else {
                "REQ-PARTICIPANT"
            },
        );
        if p.resource {
            prop.set_param("CUTYPE", "RESOURCE");
        }
    }
    Some(prop)
}

fn alarm(r: &GReminder) -> Option<Component> {
    let minutes = r.minutes?;
    let mut a = Component::new("VALARM");
    a.push(Property::new("ACTION", "DISPLAY"));
    a.push(Property::new("DESCRIPTION", "Reminder"));
    a.push(Property::new("TRIGGER", format!("-PT{minutes}M")));
    if let Some(m) = r.method.as_deref().filter(|m| *m != "popup") {
        a.push(Property::text("X-GOOGLE-REMINDER-METHOD", m));
    }
    Some(a)
}

/// The properties shared by masters and exceptions.
fn describe(ev: &GEvent, c: &mut Component) {
    if let Some(s) = ev.summary.as_deref() {
        c.push(Property::text("SUMMARY", s));
    }
    if let Some(s) = ev.description.as_deref().filter(|s| !s.is_empty()) {
        c.push(Property::text("DESCRIPTION", s));
    }
    if let Some(s) = ev.location.as_deref().filter(|s| !s.is_empty()) {
        c.push(Property::text("LOCATION", s));
    }
    match ev.visibility.as_deref() {
        Some("private") => c.push(Property::new("CLASS", "PRIVATE")),
        Some("confidential") => c.push(Property::new("CLASS", "CONFIDENTIAL")),
        Some("public") => c.push(Property::new("CLASS", "PUBLIC")),
        _ => {}
    }
    c.push(Property::new(
        "TRANSP",
        if ev.transparency.as_deref() == Some("transparent") {
            "TRANSPARENT"
        } else {
            "OPAQUE"
        },
    ));
    match ev.status.as_deref() {
        Some("tentative") => c.push(Property::new("STATUS", "TENTATIVE")),
        Some("cancelled") => c.push(Property::new("STATUS", "CANCELLED")),
        _ => c.push(Property::new("STATUS", "CONFIRMED")),
    }
    if let Some(id) = ev.color_id.as_deref() {
        if let Some((_, _, name)) = EVENT_COLORS.iter().find(|(k, _, _)| *k == id) {
            c.push(Property::new("COLOR", *name));
        }
        c.push(Property::text("X-GOOGLE-COLOR-ID", id));
    }
    if let Some(o) = ev.organizer.as_ref().and_then(|o| person("ORGANIZER", o)) {
        c.push(o);
    }
    for a in &ev.attendees {
        if let Some(p) = person("ATTENDEE", a) {
            c.push(p);
        }
    }
    if let Some(s) = ev.sequence {
        c.push(Property::new("SEQUENCE", s.max(0).to_string()));
    }
    if let Some(p) = utc_prop("CREATED", ev.created.as_deref()) {
        c.push(p);
    }
    if let Some(p) = utc_prop("LAST-MODIFIED", ev.updated.as_deref()) {
        c.push(p.clone());
        c.push(Property::new("DTSTAMP", p.value));
    } else {
        c.push(Property::new(
            "DTSTAMP",
            Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
        ));
    }
    if let Some(link) = ev.html_link.as_deref() {
        c.push(Property::new("URL", link));
    }
    if let Some(mark) = ev
        .extended_properties
        .as_ref()
        .and_then(|x| x["private"]["calbridge"].as_str())
    {
        c.push(Property::text("X-CALBRIDGE-ORIGIN", mark));
    }
    let reminders = ev.reminders.clone().unwrap_or_default();
    let list = if reminders.use_default {
        &ev.default_reminders
    } else {
        &reminders.overrides
    };
    for r in list {
        if let Some(a) = alarm(r) {
            c.children.push(a);
        }
    }
}

/// Times of an event: (start, end), with Google's defaults.
fn times(
    ev: &GEvent,
    zone: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<(Stamp, Stamp), MapError> {
    let start = stamp(
        ev.start
            .as_ref()
            .ok_or_else(|| MapError("no start".into()))?,
        zone,
        warnings,
    )?;
    let end = match ev.end.as_ref() {
        Some(e) if ev.end_time_unspecified != Some(true) => stamp(e, zone, warnings)?,
        _ => match &start {
            Stamp::Date(d) => Stamp::Date(d.succ_opt().unwrap_or(*d)),
            other => other.clone(),
        },
    };
    Ok((start, end))
}

/// Build one calendar object from a series' items (`(item id, JSON)`),
/// where the master's item id equals `series`.
pub fn map_series(
    series: &str,
    items: &[(String, Vec<u8>)],
    calendar_zone: Option<&str>,
) -> Result<MappedSeries, MapError> {
    let mut warnings = Vec::new();
    let mut master: Option<GEvent> = None;
    let mut exceptions: Vec<GEvent> = Vec::new();
    for (item, json) in items {
        let ev: GEvent = match serde_json::from_slice(json) {
            Ok(e) => e,
            Err(e) => {
                warnings.push(format!("{item}: unreadable ({e})"));
                continue;
            }
        };
        if item == series {
            master = Some(ev);
        } else {
            exceptions.push(ev);
        }
    }
    let master =
        master.ok_or_else(|| MapError("the series' master event has not been received".into()))?;
    if master.is_cancelled() {
        return Err(MapError("the event is cancelled".into()));
    }
    let (start, end) = times(&master, calendar_zone, &mut warnings)?;
    let mut m = Component::new("VEVENT");
    // Trimmed as the object's analysis trims it, so the index and the
    // object agree on the UID.
    let uid = master
        .ical_uid
        .as_deref()
        .map(crate::upstream::clean_uid)
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("{}@google.com", crate::upstream::clean_uid(&master.id)));
    m.push(Property::new("UID", uid.clone()));
    m.push(start.property("DTSTART"));
    m.push(end.property("DTEND"));
    let mut recurring = false;
    for line in &master.recurrence {
        match parse_property_line(line) {
            Ok(p) if matches!(p.name.as_str(), "RRULE" | "EXDATE" | "RDATE" | "EXRULE") => {
                // A line whose value calbridge cannot read would make the
                // whole stored object invalid (found by fuzzing): leave out
                // that line only, and say so.
                if let Err(e) = check_recurrence_value(&p) {
                    warnings.push(format!("{}: recurrence line ignored ({e})", master.id));
                    continue;
                }
                recurring = true;
                m.push(p);
            }
            Ok(p) => warnings.push(format!("{}: recurrence line {} ignored", master.id, p.name)),
            Err(e) => warnings.push(format!(
                "{}: recurrence line {line:?} unreadable ({e})",
                master.id
            )),
        }
    }
    describe(&master, &mut m);
    let mut overrides = Vec::new();
    exceptions.sort_by(|a, b| a.id.cmp(&b.id));
    for ex in &exceptions {
        let Some(orig) = ex.original_start_time.as_ref() else {
            warnings.push(format!("{}: exception without originalStartTime", ex.id));
            continue;
        };
        let rid = match stamp(orig, calendar_zone, &mut warnings) {
            Ok(s) => s.shaped_like(&start),
            Err(e) => {
                warnings.push(format!("{}: {e}", ex.id));
                continue;
            }
        };
        if ex.is_cancelled() {
            m.push(rid.property("EXDATE"));
            continue;
        }
        let (s, e) = match times(ex, calendar_zone, &mut warnings) {
            Ok(t) => t,
            Err(e) => {
                warnings.push(format!("{}: {e}", ex.id));
                continue;
            }
        };
        // Two pieces for one occurrence (an item listed twice across pages,
        // or two ids with one original start) would give two overrides with
        // one RECURRENCE-ID, which no calendar object may hold (found by
        // fuzzing): the first one wins.
        let rid_prop = rid.property("RECURRENCE-ID");
        if overrides
            .iter()
            .any(|(_, _, o): &(_, _, Component)| o.prop("RECURRENCE-ID") == Some(&rid_prop))
        {
            warnings.push(format!(
                "{}: a second exception for the same occurrence, ignored",
                ex.id
            ));
            continue;
        }
        let mut o = Component::new("VEVENT");
        o.push(Property::new("UID", uid.clone()));
        o.push(rid_prop);
        o.push(s.property("DTSTART"));
        o.push(e.property("DTEND"));
        // Google returns full exception events, so every field is the
        // exception's own (no inheritance needed).
        describe(ex, &mut o);
        overrides.push((s.utc(), e.utc(), o));
    }
    let mut cal = Component::new("VCALENDAR");
    cal.push(Property::new("VERSION", "2.0"));
    cal.push(Property::new("PRODID", PRODID));
    cal.children.push(m);
    cal.children
        .extend(overrides.into_iter().map(|(_, _, o)| o));
    crate::objects::add_missing_vtimezones(&mut cal);
    let (span_start, span_end) = match crate::objects::analyze(&cal, calendar_zone) {
        Ok(info) => (info.start, info.end),
        Err(e) => {
            warnings.push(format!("{}: {}", master.id, e.message()));
            (
                start.utc(),
                if recurring {
                    i64::MAX
                } else {
                    end.utc().max(start.utc())
                },
            )
        }
    };
    Ok(MappedSeries {
        uid,
        ics: cal.to_ics(),
        start: span_start,
        end: span_end,
        recurring,
        etag: master.etag.clone(),
        updated: parse_time(master.updated.as_deref()),
        warnings,
        origin: master
            .extended_properties
            .as_ref()
            .and_then(|x| x["private"]["calbridge"].as_str())
            .map(str::to_string),
    })
}

/// The value of a recurrence line read as object analysis will read it.
fn check_recurrence_value(p: &Property) -> Result<(), crate::ics::IcsError> {
    use crate::ics::value::{date_list, rdate_list};
    match p.name.as_str() {
        "RRULE" | "EXRULE" => crate::ics::rrule::RRule::parse(&p.value).map(|_| ()),
        "RDATE" => rdate_list(p).map(|_| ()),
        "EXDATE" => date_list(p).map(|_| ()),
        _ => Ok(()),
    }
}

/// One recurrence line (`RRULE:…`, `EXDATE;TZID=…:…`) as a property.
fn parse_property_line(line: &str) -> Result<Property, crate::ics::IcsError> {
    let text = format!(
        "BEGIN:X\r\n{}\r\nEND:X\r\n",
        line.trim_end_matches(['\r', '\n'])
    );
    let mut roots = crate::ics::parse_all(text.as_bytes())?;
    match roots.pop() {
        Some(mut c) if c.props.len() == 1 && c.children.is_empty() => Ok(c.props.remove(0)),
        _ => Err(crate::ics::IcsError::Invalid(format!(
            "not one content line: {line:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(v: Value) -> (String, Vec<u8>) {
        (
            v["id"].as_str().unwrap().to_string(),
            serde_json::to_vec(&v).unwrap(),
        )
    }

    fn vevents(ics: &[u8]) -> Vec<Component> {
        crate::ics::parse(ics)
            .unwrap()
            .children_named("VEVENT")
            .cloned()
            .collect()
    }

    #[test]
    fn one_off_in_chicago_keeps_its_zone_and_fields() {
        let ev = json!({
            "id": "abc123", "status": "confirmed", "etag": "\"3181161784712000\"",
            "iCalUID": "abc123@google.com", "summary": "Dentist, Dr. Who",
            "description": "Bring\nX-rays", "location": "Main St; 5",
            "start": {"dateTime": "2026-03-02T09:00:00-06:00", "timeZone": "America/Chicago"},
            "end": {"dateTime": "2026-03-02T10:00:00-06:00", "timeZone": "America/Chicago"},
            "visibility": "private", "colorId": "11", "transparency": "transparent",
            "updated": "2026-02-01T10:00:00.000Z", "created": "2026-01-01T10:00:00.000Z",
            "organizer": {"email": "boss@example.com", "displayName": "The Boss"},
            "attendees": [{"email": "a@example.com", "responseStatus": "accepted", "optional": true}],
            "reminders": {"useDefault": false, "overrides": [{"method": "popup", "minutes": 10}]}
        });
        let m = map_series("abc123", &[item(ev)], None).unwrap();
        assert_eq!(m.uid, "abc123@google.com");
        assert!(!m.recurring);
        assert_eq!(m.etag.as_deref(), Some("\"3181161784712000\""));
        let evs = vevents(&m.ics);
        assert_eq!(evs.len(), 1);
        let e = &evs[0];
        assert_eq!(
            e.prop("DTSTART").unwrap().param("TZID"),
            Some("America/Chicago")
        );
        assert_eq!(e.value("DTSTART"), Some("20260302T090000"));
        assert_eq!(e.prop("SUMMARY").unwrap().text_value(), "Dentist, Dr. Who");
        assert_eq!(e.prop("DESCRIPTION").unwrap().text_value(), "Bring\nX-rays");
        assert_eq!(e.prop("LOCATION").unwrap().text_value(), "Main St; 5");
        assert_eq!(e.value("CLASS"), Some("PRIVATE"));
        assert_eq!(e.value("TRANSP"), Some("TRANSPARENT"));
        assert_eq!(e.value("COLOR"), Some("crimson"));
        assert_eq!(e.value("ORGANIZER"), Some("mailto:boss@example.com"));
        let att = e.prop("ATTENDEE").unwrap();
        assert_eq!(att.param("PARTSTAT"), Some("ACCEPTED"));
        assert_eq!(att.param("ROLE"), Some("OPT-PARTICIPANT"));
        assert_eq!(e.children[0].value("TRIGGER"), Some("-PT10M"));
        assert_eq!(m.start, 1_772_463_600);
        assert_eq!(m.end, 1_772_467_200);
    }

    #[test]
    fn all_day_stays_on_its_date() {
        let ev = json!({"id": "d1", "summary": "Holiday", "start": {"date": "2026-12-24"}, "end": {"date": "2026-12-26"}});
        let m = map_series("d1", &[item(ev)], Some("Pacific/Kiritimati")).unwrap();
        let e = &vevents(&m.ics)[0];
        assert_eq!(e.value("DTSTART"), Some("20261224"));
        assert_eq!(e.prop("DTSTART").unwrap().param("VALUE"), Some("DATE"));
        assert_eq!(e.value("DTEND"), Some("20261226"), "end stays exclusive");
    }

    #[test]
    fn weekly_series_with_a_moved_and_a_cancelled_instance_is_one_object() {
        let master = json!({
            "id": "w1", "iCalUID": "w1@google.com", "summary": "Standup",
            "start": {"dateTime": "2026-03-02T09:00:00+01:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2026-03-02T09:15:00+01:00", "timeZone": "Europe/Berlin"},
            "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10"]
        });
        let moved = json!({
            "id": "w1_20260309T080000Z", "recurringEventId": "w1", "iCalUID": "w1@google.com",
            "summary": "Standup (moved)", "status": "confirmed",
            "originalStartTime": {"dateTime": "2026-03-09T09:00:00+01:00", "timeZone": "Europe/Berlin"},
            "start": {"dateTime": "2026-03-09T11:00:00+01:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2026-03-09T11:15:00+01:00", "timeZone": "Europe/Berlin"}
        });
        let cancelled = json!({
            "id": "w1_20260316T080000Z", "recurringEventId": "w1", "status": "cancelled",
            "originalStartTime": {"dateTime": "2026-03-16T09:00:00+01:00", "timeZone": "Europe/Berlin"}
        });
        let m = map_series("w1", &[item(master), item(moved), item(cancelled)], None).unwrap();
        assert!(m.recurring);
        let evs = vevents(&m.ics);
        assert_eq!(evs.len(), 2, "master + one override");
        let master = evs
            .iter()
            .find(|e| e.prop("RECURRENCE-ID").is_none())
            .unwrap();
        assert_eq!(master.value("RRULE"), Some("FREQ=WEEKLY;BYDAY=MO;COUNT=10"));
        let exdate = master.prop("EXDATE").unwrap();
        assert_eq!(
            (exdate.param("TZID"), exdate.value.as_str()),
            (Some("Europe/Berlin"), "20260316T090000")
        );
        let o = evs
            .iter()
            .find(|e| e.prop("RECURRENCE-ID").is_some())
            .unwrap();
        assert_eq!(o.value("RECURRENCE-ID"), Some("20260309T090000"));
        assert_eq!(
            o.prop("RECURRENCE-ID").unwrap().param("TZID"),
            Some("Europe/Berlin")
        );
        assert_eq!(o.value("DTSTART"), Some("20260309T110000"));
        assert_eq!(o.value("UID"), Some("w1@google.com"));
    }

    #[test]
    fn exceptions_without_their_master_wait_and_bad_zones_do_not_shift_times() {
        let ex = json!({"id": "m_1", "recurringEventId": "m", "originalStartTime": {"date": "2026-01-01"}, "start": {"date": "2026-01-02"}, "end": {"date": "2026-01-03"}});
        assert!(map_series("m", &[item(ex)], None).is_err());
        let ev = json!({"id": "z", "start": {"dateTime": "2026-03-02T09:00:00-06:00", "timeZone": "Mars/Base"}, "end": {"dateTime": "2026-03-02T10:00:00-06:00", "timeZone": "Mars/Base"}});
        let m = map_series("z", &[item(ev)], None).unwrap();
        assert_eq!(
            vevents(&m.ics)[0].value("DTSTART"),
            Some("20260302T150000Z"),
            "same instant, in UTC"
        );
        assert!(m.warnings.iter().any(|w| w.contains("Mars/Base")));
    }

    #[test]
    fn default_reminders_apply_when_asked() {
        let ev = json!({"id": "r", "start": {"date": "2026-01-01"}, "end": {"date": "2026-01-02"},
            "reminders": {"useDefault": true}, "_defaultReminders": [{"method": "popup", "minutes": 30}]});
        let m = map_series("r", &[item(ev)], None).unwrap();
        assert_eq!(
            vevents(&m.ics)[0].children[0].value("TRIGGER"),
            Some("-PT30M")
        );
    }
}
