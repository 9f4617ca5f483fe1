//! Microsoft Graph event JSON → iCalendar.
//!
//! A series is stored as the master (or single instance) JSON, the full
//! JSON of each exception, a compact record of each plain occurrence, and a
//! `_window` item giving the span the instances were listed for. The object
//! has the master as VEVENT with an RRULE from Graph's pattern, each
//! exception as a RECURRENCE-ID override, and an EXDATE for each instance
//! the pattern yields inside the window that Graph no longer lists
//! (cancelled occurrences).
//!
//! Times come from Graph in UTC (no `Prefer: outlook.timezone`) and are
//! written in the event's own zone (`originalStartTimeZone`, Windows → IANA).
//! All-day events become DATE values taken in that zone, never shifted a
//! day; a zone that does not map keeps the UTC instant and is named in the
//! status.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;

use super::recurrence::{self, Recurrence, StartKind};
use super::zones;
use crate::ics::{Component, Property};
use crate::upstream::provider::{MapError, MappedSeries};

pub const PRODID: &str = "-//calbridge//Microsoft Graph mirror//EN";

/// The window item's id inside a series.
pub const WINDOW_ITEM: &str = "_window";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DateTimeTz {
    pub date_time: String,
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailAddress {
    pub name: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub email_address: Option<EmailAddress>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResponseStatus {
    pub response: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attendee {
    pub email_address: Option<EmailAddress>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub status: Option<ResponseStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    pub content_type: Option<String>,
    pub content: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExtendedProperty {
    pub id: String,
    pub value: Option<String>,
}

/// The fields of a Graph event calbridge reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphEvent {
    pub id: String,
    #[serde(rename = "@odata.etag")]
    pub etag: Option<String>,
    #[serde(rename = "iCalUId")]
    pub ical_uid: Option<String>,
    pub created_date_time: Option<String>,
    pub last_modified_date_time: Option<String>,
    pub subject: Option<String>,
    pub body: Option<ItemBody>,
    pub start: Option<DateTimeTz>,
    pub end: Option<DateTimeTz>,
    pub original_start_time_zone: Option<String>,
    #[serde(default)]
    pub is_all_day: bool,
    #[serde(default)]
    pub is_cancelled: bool,
    pub location: Option<Location>,
    pub sensitivity: Option<String>,
    pub show_as: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub series_master_id: Option<String>,
    pub original_start: Option<String>,
    pub recurrence: Option<Recurrence>,
    pub organizer: Option<Recipient>,
    #[serde(default)]
    pub attendees: Vec<Attendee>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub is_reminder_on: bool,
    pub reminder_minutes_before_start: Option<i64>,
    #[serde(default)]
    pub single_value_extended_properties: Vec<ExtendedProperty>,
}

/// The name of calbridge's own extended property (idempotency marker).
pub const ORIGIN_PROPERTY: &str = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name calbridge";

/// Parse Graph's `2026-03-02T09:00:00.0000000` in `time_zone`.
pub fn instant(t: &DateTimeTz) -> Result<DateTime<Utc>, MapError> {
    let raw = t.date_time.trim().trim_end_matches('Z');
    let local = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M"))
        .ok()
        .filter(|_| crate::upstream::four_digit_year(raw))
        .ok_or_else(|| MapError(format!("invalid dateTime {:?}", t.date_time)))?;
    let zone = t.time_zone.as_deref().unwrap_or("UTC");
    let iana = zones::iana(zone).ok_or_else(|| MapError(format!("unknown time zone {zone:?}")))?;
    let tz: chrono_tz::Tz = iana
        .parse()
        .map_err(|_| MapError(format!("unknown time zone {iana:?}")))?;
    let utc = tz
        .from_local_datetime(&local)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|| local.and_utc());
    if !crate::upstream::writable_year(&utc) || !crate::upstream::writable_year(&local) {
        return Err(MapError(format!("invalid dateTime {:?}", t.date_time)));
    }
    Ok(utc)
}

/// The event's own zone, or `None` (with a warning) when it does not map.
fn own_zone(ev: &GraphEvent, warnings: &mut Vec<String>) -> Option<chrono_tz::Tz> {
    let name = ev
        .original_start_time_zone
        .as_deref()
        .or(ev.start.as_ref().and_then(|s| s.time_zone.as_deref()))?;
    match zones::iana(name).and_then(|z| z.parse::<chrono_tz::Tz>().ok()) {
        Some(tz) => Some(tz),
        None => {
            warnings.push(format!(
                "time zone {name:?} has no IANA equivalent: times kept in UTC"
            ));
            None
        }
    }
}

/// The calendar date of an all-day boundary. In the event's zone when it is
/// known; otherwise the nearest UTC midnight (right for any offset under
/// 12 hours either way).
fn all_day_date(t: DateTime<Utc>, zone: Option<chrono_tz::Tz>) -> NaiveDate {
    match zone {
        Some(tz) => t.with_timezone(&tz).date_naive(),
        None => (t + chrono::Duration::hours(12)).date_naive(),
    }
}

#[derive(Debug, Clone)]
enum When {
    Date(NaiveDate),
    Zoned(DateTime<Utc>, chrono_tz::Tz),
    Utc(DateTime<Utc>),
}

impl When {
    fn of(t: DateTime<Utc>, all_day: bool, zone: Option<chrono_tz::Tz>) -> When {
        if all_day {
            return When::Date(all_day_date(t, zone));
        }
        match zone {
            Some(tz) if tz != chrono_tz::UTC => When::Zoned(t, tz),
            _ => When::Utc(t),
        }
    }

    fn property(&self, name: &str) -> Property {
        match self {
            When::Date(d) => {
                Property::new(name, d.format("%Y%m%d").to_string()).with_param("VALUE", "DATE")
            }
            When::Zoned(t, tz) => Property::new(
                name,
                t.with_timezone(tz).format("%Y%m%dT%H%M%S").to_string(),
            )
            .with_param("TZID", tz.name()),
            When::Utc(t) => Property::new(name, t.format("%Y%m%dT%H%M%SZ").to_string()),
        }
    }

    fn utc(&self) -> i64 {
        match self {
            When::Date(d) => d
                .and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc()
                .timestamp(),
            When::Zoned(t, _) | When::Utc(t) => t.timestamp(),
        }
    }
}

/// Plain text from an HTML body (Graph's default body type).
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    let bytes = html.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'<' {
            let end = match html[i..].find('>') {
                Some(e) => i + e + 1,
                None => break,
            };
            let tag = &lower[i + 1..end - 1];
            let name = tag
                .trim_start_matches('/')
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap_or("");
            if !tag.starts_with('/') && matches!(name, "style" | "script" | "head" | "title") {
                // Skip the element with its content.
                let close = format!("</{name}");
                i = lower[end..]
                    .find(&close)
                    .map(|p| end + p)
                    .unwrap_or(bytes.len());
                if let Some(gt) = html[i..].find('>') {
                    i += gt + 1;
                }
                continue;
            }
            if matches!(
                name,
                "br" | "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4"
            ) && (tag.starts_with('/') || name == "br")
            {
                out.push('\n');
            }
            i = end;
        } else {
            let next = html[i..].find('<').map(|p| i + p).unwrap_or(bytes.len());
            out.push_str(&decode_entities(&html[i..next]));
            i = next;
        }
    }
    // Collapse the blank lines markup leaves behind.
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    let mut text = String::new();
    let mut blank = 0;
    for l in lines {
        if l.trim().is_empty() {
            blank += 1;
            if blank > 1 || text.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(l);
    }
    text.trim().to_string()
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.replace('\r', "");
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        let after = &rest[p..];
        let Some(semi) = after.find(';').filter(|x| *x <= 10) else {
            out.push('&');
            rest = &after[1..];
            continue;
        };
        let ent = &after[1..semi];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some(' '),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => out.push(c),
            None => out.push_str(&after[..=semi]),
        }
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    out.replace('\r', "")
}

fn utc_text(t: &str) -> Option<String> {
    if !crate::upstream::four_digit_year(t) {
        return None;
    }
    let d = DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(t.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
                .map(|n| n.and_utc())
        })
        .ok()
        .filter(crate::upstream::writable_year)?;
    Some(d.format("%Y%m%dT%H%M%SZ").to_string())
}

pub fn parse_time(t: Option<&str>) -> Option<i64> {
    let t = t?;
    DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp())
        .or_else(|_| {
            NaiveDateTime::parse_from_str(t.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
                .map(|n| n.and_utc().timestamp())
        })
        .ok()
}

fn person(name: &str, r: &EmailAddress) -> Option<Property> {
    let address = r.address.as_deref().filter(|a| !a.is_empty())?;
    let mut p = Property::new(name, format!("mailto:{address}"));
    if let Some(n) = r.name.as_deref().filter(|n| !n.is_empty()) {
        p.set_param("CN", n);
    }
    Some(p)
}

/// The properties shared by masters and exceptions.
fn describe(ev: &GraphEvent, c: &mut Component) {
    if let Some(s) = ev.subject.as_deref() {
        c.push(Property::text("SUMMARY", s));
    }
    if let Some(b) = &ev.body {
        let content = b.content.as_deref().unwrap_or("");
        let text = if b
            .content_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("html"))
        {
            html_to_text(content)
        } else {
            content.replace('\r', "").trim().to_string()
        };
        if !text.is_empty() {
            c.push(Property::text("DESCRIPTION", &text));
        }
    }
    if let Some(l) = ev
        .location
        .as_ref()
        .and_then(|l| l.display_name.as_deref())
        .filter(|l| !l.is_empty())
    {
        c.push(Property::text("LOCATION", l));
    }
    match ev.sensitivity.as_deref() {
        Some("private") | Some("personal") => c.push(Property::new("CLASS", "PRIVATE")),
        Some("confidential") => c.push(Property::new("CLASS", "CONFIDENTIAL")),
        _ => {}
    }
    let show_as = ev.show_as.as_deref().unwrap_or("busy");
    c.push(Property::new(
        "TRANSP",
        if show_as == "free" {
            "TRANSPARENT"
        } else {
            "OPAQUE"
        },
    ));
    let busy = match show_as {
        "free" => "FREE",
        "tentative" => "TENTATIVE",
        "oof" => "OOF",
        "workingElsewhere" => "WORKINGELSEWHERE",
        _ => "BUSY",
    };
    c.push(Property::new("X-MICROSOFT-CDO-BUSYSTATUS", busy));
    c.push(Property::new(
        "STATUS",
        if ev.is_cancelled {
            "CANCELLED"
        } else if show_as == "tentative" {
            "TENTATIVE"
        } else {
            "CONFIRMED"
        },
    ));
    if let Some(o) = ev
        .organizer
        .as_ref()
        .and_then(|o| o.email_address.as_ref())
        .and_then(|e| person("ORGANIZER", e))
    {
        c.push(o);
    }
    for a in &ev.attendees {
        let Some(mut p) = a.email_address.as_ref().and_then(|e| person("ATTENDEE", e)) else {
            continue;
        };
        let partstat = match a.status.as_ref().and_then(|s| s.response.as_deref()) {
            Some("accepted") | Some("organizer") => "ACCEPTED",
            Some("declined") => "DECLINED",
            Some("tentativelyAccepted") => "TENTATIVE",
            _ => "NEEDS-ACTION",
        };
        p.set_param("PARTSTAT", partstat);
        match a.kind.as_deref() {
            Some("optional") => p.set_param("ROLE", "OPT-PARTICIPANT"),
            Some("resource") => {
                p.set_param("ROLE", "NON-PARTICIPANT");
                p.set_param("CUTYPE", "RESOURCE");
            }
            _ => p.set_param("ROLE", "REQ-PARTICIPANT"),
        }
        c.push(p);
    }
    if !ev.categories.is_empty() {
        let list: Vec<String> = ev
            .categories
            .iter()
            .map(|s| crate::ics::text::escape(s))
            .collect();
        c.push(Property::new("CATEGORIES", list.join(",")));
    }
    if let Some(t) = ev.created_date_time.as_deref().and_then(utc_text) {
        c.push(Property::new("CREATED", t));
    }
    match ev.last_modified_date_time.as_deref().and_then(utc_text) {
        Some(t) => {
            c.push(Property::new("LAST-MODIFIED", t.clone()));
            c.push(Property::new("DTSTAMP", t));
        }
        None => c.push(Property::new(
            "DTSTAMP",
            Utc::now().format("%Y%m%dT%H%M%SZ").to_string(),
        )),
    }
    if let Some(mark) = ev
        .single_value_extended_properties
        .iter()
        .find(|p| p.id.eq_ignore_ascii_case(ORIGIN_PROPERTY))
        .and_then(|p| p.value.as_deref())
    {
        c.push(Property::text("X-CALBRIDGE-ORIGIN", mark));
    }
    if ev.is_reminder_on {
        if let Some(m) = ev.reminder_minutes_before_start {
            let mut a = Component::new("VALARM");
            a.push(Property::new("ACTION", "DISPLAY"));
            a.push(Property::new("DESCRIPTION", "Reminder"));
            a.push(Property::new("TRIGGER", format!("-PT{m}M")));
            c.children.push(a);
        }
    }
}

/// Build one calendar object from a series' items.
pub fn map_series(
    series: &str,
    items: &[(String, Vec<u8>)],
    _calendar_zone: Option<&str>,
) -> Result<MappedSeries, MapError> {
    let mut warnings = Vec::new();
    let mut master: Option<GraphEvent> = None;
    let mut exceptions = Vec::new();
    let mut present: Vec<i64> = Vec::new();
    let mut window: Option<(i64, i64)> = None;
    for (item, json) in items {
        if item == WINDOW_ITEM {
            let v: serde_json::Value = serde_json::from_slice(json).unwrap_or_default();
            if let (Some(s), Some(e)) = (v["start"].as_i64(), v["end"].as_i64()) {
                window = Some((s, e));
            }
            continue;
        }
        let ev: GraphEvent = match serde_json::from_slice(json) {
            Ok(e) => e,
            Err(e) => {
                warnings.push(format!("{item}: unreadable ({e})"));
                continue;
            }
        };
        if item == series {
            master = Some(ev);
            continue;
        }
        if let Some(t) = parse_time(ev.original_start.as_deref()) {
            present.push(t);
        }
        if ev.kind.as_deref() == Some("exception") && !ev.is_cancelled {
            exceptions.push(ev);
        }
    }
    let master =
        master.ok_or_else(|| MapError("the series' master event has not been received".into()))?;
    if master.is_cancelled {
        return Err(MapError("the event is cancelled".into()));
    }
    let zone = own_zone(&master, &mut warnings);
    let start = instant(
        master
            .start
            .as_ref()
            .ok_or_else(|| MapError("no start".into()))?,
    )?;
    let end = match master.end.as_ref() {
        Some(e) => instant(e)?,
        None => start,
    };
    let all_day = master.is_all_day;
    let ds = When::of(start, all_day, zone);
    let mut de = When::of(end, all_day, zone);
    if let (When::Date(s), When::Date(e)) = (&ds, &de) {
        if e <= s {
            de = When::Date(s.succ_opt().unwrap_or(*s));
        }
    }
    // Trimmed as the object's analysis trims it, so the index and the
    // object agree on the UID.
    let uid = master
        .ical_uid
        .as_deref()
        .map(crate::upstream::clean_uid)
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| crate::upstream::clean_uid(&master.id));
    if uid.is_empty() {
        return Err(MapError("an event without iCalUId or id".into()));
    }
    let mut m = Component::new("VEVENT");
    m.push(Property::new("UID", uid.clone()));
    let dtstart = ds.property("DTSTART");
    m.push(dtstart.clone());
    m.push(de.property("DTEND"));
    let mut recurring = false;
    if let Some(r) = &master.recurrence {
        let kind = match &ds {
            When::Date(_) => StartKind::Date,
            _ => StartKind::Timed(zone.unwrap_or(chrono_tz::UTC)),
        };
        match recurrence::to_rrule(r, kind) {
            Ok(rule) => {
                recurring = true;
                m.push(Property::new("RRULE", rule));
                // Cancelled occurrences: what the pattern yields in the
                // listed window that Graph no longer lists.
                if let Some((ws, we)) = window {
                    let mut probe = Component::new("VCALENDAR");
                    probe.children.push(m.clone());
                    match crate::objects::instance_starts(&probe, ws, we, zone.map(|z| z.name())) {
                        Ok(expected) => {
                            for t in expected {
                                if !present.contains(&t) {
                                    let at = DateTime::from_timestamp(t, 0).unwrap_or_default();
                                    m.push(When::of(at, all_day, zone).property("EXDATE"));
                                }
                            }
                        }
                        Err(e) => {
                            warnings.push(format!("{}: cannot expand the series ({e})", master.id))
                        }
                    }
                }
            }
            Err(e) => warnings.push(format!(
                "{}: recurrence not understood ({e}); kept as a single event",
                master.id
            )),
        }
    }
    describe(&master, &mut m);
    let mut overrides = Vec::new();
    for ex in &exceptions {
        let Some(orig) = ex
            .original_start
            .as_deref()
            .and_then(|t| parse_time(Some(t)))
        else {
            warnings.push(format!("{}: exception without originalStart", ex.id));
            continue;
        };
        let rid = When::of(
            DateTime::from_timestamp(orig, 0).unwrap_or_default(),
            all_day,
            zone,
        );
        let (Some(s), Some(e)) = (ex.start.as_ref(), ex.end.as_ref()) else {
            warnings.push(format!("{}: exception without start or end", ex.id));
            continue;
        };
        let (s, e) = match (instant(s), instant(e)) {
            (Ok(s), Ok(e)) => (s, e),
            _ => {
                warnings.push(format!("{}: unreadable exception times", ex.id));
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
        let (os, oe) = (
            When::of(s, ex.is_all_day, zone),
            When::of(e, ex.is_all_day, zone),
        );
        o.push(os.property("DTSTART"));
        o.push(oe.property("DTEND"));
        describe(ex, &mut o);
        overrides.push((os.utc(), oe.utc(), o));
    }
    let mut cal = Component::new("VCALENDAR");
    cal.push(Property::new("VERSION", "2.0"));
    cal.push(Property::new("PRODID", PRODID));
    cal.children.push(m);
    cal.children
        .extend(overrides.into_iter().map(|(_, _, o)| o));
    crate::objects::add_missing_vtimezones(&mut cal);
    let (span_start, span_end) = match crate::objects::analyze(&cal, zone.map(|z| z.name())) {
        Ok(info) => (info.start, info.end),
        Err(e) => {
            warnings.push(format!("{}: {}", master.id, e.message()));
            (
                ds.utc(),
                if recurring {
                    i64::MAX
                } else {
                    de.utc().max(ds.utc())
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
        updated: parse_time(master.last_modified_date_time.as_deref()),
        warnings,
        origin: master
            .single_value_extended_properties
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(ORIGIN_PROPERTY))
            .and_then(|p| p.value.clone()),
    })
}
