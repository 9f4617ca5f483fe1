//! iCalendar → Microsoft Graph writes.
//!
//! # What goes where
//!
//! | iCalendar | Graph event |
//! | --- | --- |
//! | SUMMARY | `subject` |
//! | DESCRIPTION | `body {contentType: "text"}` |
//! | LOCATION | `location.displayName` |
//! | DTSTART / DTEND / DURATION | `start` / `end` `{dateTime: "YYYY-MM-DDTHH:MM:SS", timeZone: <Windows name>}` |
//! | DATE values | `isAllDay` with midnight-to-midnight times (end exclusive) in the calendar's zone |
//! | RRULE | `recurrence` via [`recurrence::from_rrule`] |
//! | EXDATE, overrides with STATUS:CANCELLED | the occurrences deleted |
//! | RECURRENCE-ID overrides | the occurrences patched (matched on `originalStart`) |
//! | CLASS | `sensitivity` (PRIVATE / unknown → private, CONFIDENTIAL → confidential, else normal) |
//! | TRANSP, X-MICROSOFT-CDO-BUSYSTATUS, STATUS:TENTATIVE | `showAs` |
//! | VALARM | `isReminderOn`, `reminderMinutesBeforeStart` (one reminder: the earliest) |
//! | CATEGORIES | `categories` |
//! | the caller's marker | `singleValueExtendedProperties [{id: ORIGIN_PROPERTY, value}]` |
//! | the caller's idempotency key | `transactionId` (create) |
//!
//! Attendees are never written: Graph sends an invitation to every attendee
//! of an event it creates or changes, and calbridge must not mail people on
//! a staff member's behalf. ORGANIZER is the mailbox owner anyway. UID
//! cannot be written either (`iCalUId` is Graph's own): the remote id is
//! the link between both sides.
//!
//! Refused ([`Unexpressible`]), besides what the shared checks refuse
//! (see [`crate::upstream::google::write`]): everything
//! [`recurrence::from_rrule`] refuses ("Microsoft calendars cannot …":
//! sub-daily rules, several BYMONTH, BYSETPOS outside 1..4/-1, …), several
//! RRULEs, RDATE, EXRULE, a series whose DTSTART is not an occurrence of
//! its rule (Outlook would move the start), an override moved past a
//! neighbouring occurrence (Exchange refuses it), and a time zone with no
//! Windows equivalent. Before [`recurrence::from_rrule`] sees a rule, a
//! weekly rule without WKST gets RFC 5545's WKST=MO and UNTIL becomes the
//! date of the last occurrence it allows (Graph's `endDate` is a date).
//!
//! # Idempotency
//!
//! A create carries the idempotency key as `transactionId`: Graph (and the
//! emulator) answer a repeated create with the event made the first time.
//! An update reads the master first, sends only what changed (Outlook drops
//! a series' exceptions whenever its times or pattern are written) with
//! `If-Match`, then lists the occurrences and patches, deletes or resets
//! them, at most [`WRITE_CONCURRENCY`] requests at a time. Occurrences
//! deleted upstream cannot be brought back through Graph: that is reported
//! as a warning.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use percent_encoding::utf8_percent_encode;
use serde_json::{json, Map, Value};

use super::map::{self, DateTimeTz, ORIGIN_PROPERTY};
use super::recurrence::{self, Recurrence};
use super::{zones, Graph, HORIZON, PREFER, SEGMENT};
use crate::ics::rrule::{Frequency, RRule};
use crate::ics::value::DateTimeValue;
use crate::ics::Component;
use crate::upstream::google::write::{
    alarms, describe_moment, equivalent_zone, run_bounded, series, text, without_nulls, Moment,
    Probe, Series,
};
pub use crate::upstream::google::write::{
    RemoteRef, RemoteState, Unexpressible, WriteError, WRITE_CONCURRENCY,
};
use crate::upstream::http::UpstreamError;

const PROVIDER: &str = "Microsoft calendars";

/// One occurrence to patch.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphOccurrenceWrite {
    /// The occurrence's original start (Graph's `originalStart`).
    pub original_start: DateTime<Utc>,
    pub body: Value,
}

/// What to send for one series.
#[derive(Debug, Clone)]
pub struct GraphSeriesWrite {
    /// The event body. Every mapped field is present (`recurrence: null`
    /// for a single event), so it doubles as a PATCH body.
    pub master: Value,
    /// Original starts of the occurrences to delete (EXDATE, cancelled
    /// overrides).
    pub deletions: Vec<DateTime<Utc>>,
    pub overrides: Vec<GraphOccurrenceWrite>,
    pub warnings: Vec<String>,
    plain: Value,
    start: Moment,
    end: Moment,
    occurrences: Probe,
    /// The zone occurrences are laid out in (dates of an all-day series).
    zone: Tz,
    recurring: bool,
}

impl GraphSeriesWrite {
    /// Tag the master and every patched occurrence with calbridge's marker.
    pub fn mark(&mut self, marker: &str) {
        let tag = |v: &mut Value| {
            v["singleValueExtendedProperties"] = json!([{"id": ORIGIN_PROPERTY, "value": marker}]);
        };
        tag(&mut self.master);
        tag(&mut self.plain);
        for o in &mut self.overrides {
            tag(&mut o.body);
        }
    }

    /// The body of the plain occurrence originally at `original`.
    fn plain_at(&self, original: DateTime<Utc>) -> Value {
        let mut v = self.plain.clone();
        let (s, e) = match (self.start, self.end) {
            (Moment::Date(s), Moment::Date(e)) => {
                let d = original.with_timezone(&self.zone).date_naive();
                (Moment::Date(d), Moment::Date(d + (e - s)))
            }
            (s, e) => {
                let zone = match s {
                    Moment::At { zone, .. } => zone,
                    Moment::Date(_) => Some(self.zone),
                };
                let len = e.instant(self.zone) - s.instant(self.zone);
                (
                    Moment::At {
                        utc: original,
                        zone,
                    },
                    Moment::At {
                        utc: original + len,
                        zone,
                    },
                )
            }
        };
        // The zones were checked when the master was mapped.
        if let (Ok(s), Ok(e)) = (graph_time(&s, self.zone), graph_time(&e, self.zone)) {
            v["start"] = s;
            v["end"] = e;
        }
        v
    }
}

/// The Windows name Graph takes for a zone (an equivalent zone's when the
/// IANA name has none).
pub fn windows_zone(tz: Tz, year: i32) -> Option<&'static str> {
    if matches!(
        tz.name(),
        "UTC" | "Etc/UTC" | "Etc/GMT" | "GMT" | "Etc/Universal" | "Etc/Zulu"
    ) {
        return Some("UTC");
    }
    zones::windows(tz.name()).or_else(|| {
        equivalent_zone(&crate::ics::tz::Zone::Iana(tz), year - 1, year + 3)
            .and_then(|e| zones::windows(e.name()))
    })
}

/// `{dateTime, timeZone}`; a date is its midnight in `all_day_zone`.
fn graph_time(m: &Moment, all_day_zone: Tz) -> Result<Value, Unexpressible> {
    use chrono::Datelike;
    let (local, tz) = match m {
        Moment::Date(d) => (d.and_time(chrono::NaiveTime::MIN), all_day_zone),
        Moment::At { utc, zone } => {
            let tz = zone.unwrap_or(Tz::UTC);
            (utc.with_timezone(&tz).naive_local(), tz)
        }
    };
    let name = windows_zone(tz, local.year()).ok_or_else(|| {
        Unexpressible::new(format!(
            "Microsoft calendars know no time zone like {}.",
            tz.name()
        ))
    })?;
    Ok(json!({"dateTime": local.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": name}))
}

/// CATEGORIES values (comma-separated, TEXT-escaped), every property.
fn categories(c: &Component) -> Vec<String> {
    let mut out = Vec::new();
    for p in c.props_named("CATEGORIES") {
        let mut cur = String::new();
        let mut escaped = false;
        for ch in p.value.chars() {
            match ch {
                ',' if !escaped => {
                    out.push(crate::ics::text::unescape(&cur));
                    cur.clear();
                }
                _ => {
                    escaped = ch == '\\' && !escaped;
                    cur.push(ch);
                }
            }
        }
        out.push(crate::ics::text::unescape(&cur));
    }
    out.retain(|s| !s.trim().is_empty());
    out
}

fn sensitivity(c: &Component) -> &'static str {
    match c.value("CLASS").map(str::to_ascii_uppercase).as_deref() {
        None | Some("PUBLIC") => "normal",
        Some("CONFIDENTIAL") => "confidential",
        Some(_) => "private",
    }
}

fn show_as(c: &Component, warnings: &mut Vec<String>) -> &'static str {
    let tentative = c
        .value("STATUS")
        .is_some_and(|s| s.eq_ignore_ascii_case("TENTATIVE"));
    if c.value("TRANSP")
        .is_some_and(|t| t.eq_ignore_ascii_case("TRANSPARENT"))
    {
        if tentative {
            warnings.push(
                "A free (transparent) event cannot also be tentative in Microsoft calendars; it was written as free."
                    .into(),
            );
        }
        return "free";
    }
    match c
        .value("X-MICROSOFT-CDO-BUSYSTATUS")
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("TENTATIVE") => return "tentative",
        Some("OOF") => return "oof",
        Some("WORKINGELSEWHERE") => return "workingElsewhere",
        _ => {}
    }
    if tentative {
        "tentative"
    } else {
        "busy"
    }
}

/// The mapped fields of a master or an override, every key present.
#[allow(clippy::too_many_arguments)]
fn describe(
    c: &Component,
    start: &Moment,
    end: &Moment,
    zone: Tz,
    floating: Tz,
    recurring: bool,
    warnings: &mut Vec<String>,
) -> Result<Map<String, Value>, Unexpressible> {
    let mut m = Map::new();
    m.insert(
        "subject".into(),
        json!(text(c, "SUMMARY").unwrap_or_default()),
    );
    m.insert(
        "body".into(),
        json!({"contentType": "text", "content": text(c, "DESCRIPTION").unwrap_or_default()}),
    );
    m.insert("start".into(), graph_time(start, zone)?);
    m.insert("end".into(), graph_time(end, zone)?);
    m.insert("isAllDay".into(), json!(start.is_date()));
    m.insert(
        "location".into(),
        json!({"displayName": text(c, "LOCATION").unwrap_or_default()}),
    );
    m.insert("sensitivity".into(), json!(sensitivity(c)));
    m.insert("showAs".into(), json!(show_as(c, warnings)));
    m.insert("categories".into(), json!(categories(c)));
    let list = alarms(c, start, end, floating, recurring, warnings);
    match list.iter().map(|a| a.minutes).max() {
        Some(minutes) => {
            if list.len() > 1 {
                warnings.push(
                    "Microsoft calendars keep one reminder per event: the earliest alarm was kept."
                        .into(),
                );
            }
            m.insert("isReminderOn".into(), json!(true));
            m.insert("reminderMinutesBeforeStart".into(), json!(minutes));
        }
        None => {
            m.insert("isReminderOn".into(), json!(false));
        }
    }
    if c.prop("ATTENDEE").is_some() {
        warnings.push(
            "Attendees are not written to Microsoft calendars (Outlook would send them invitations)."
                .into(),
        );
    }
    if c.prop("COLOR").is_some() {
        warnings.push(
            "Microsoft calendar events have no color of their own; COLOR was left out.".into(),
        );
    }
    Ok(m)
}

/// An RRULE prepared for [`recurrence::from_rrule`]: RFC 5545's WKST=MO
/// spelled out for weekly rules, and UNTIL as the date of the last
/// occurrence it allows in the series' zone.
fn graph_rule(value: &str, start: &Moment, zone: Tz) -> Result<String, Unexpressible> {
    let rule = RRule::parse(value)
        .map_err(|e| Unexpressible::new(format!("The RRULE cannot be read ({e}).")))?;
    let start_local = start_local(start, zone);
    let mut parts: Vec<String> = value
        .trim()
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    if rule.freq == Frequency::Weekly
        && !parts
            .iter()
            .any(|p| p.to_ascii_uppercase().starts_with("WKST="))
    {
        parts.push("WKST=MO".into());
    }
    if let Some(until) = &rule.until {
        let local_until = match until {
            DateTimeValue::Date(d) => d.and_hms_opt(23, 59, 59).expect("valid time"),
            DateTimeValue::Utc(t) => t.and_utc().with_timezone(&zone).naive_local(),
            DateTimeValue::Floating(t) | DateTimeValue::Zoned { local: t, .. } => *t,
        };
        let last: NaiveDate = if local_until.time() >= start_local.time() {
            local_until.date()
        } else {
            local_until.date().pred_opt().unwrap_or(local_until.date())
        };
        for p in &mut parts {
            if p.to_ascii_uppercase().starts_with("UNTIL=") {
                *p = format!("UNTIL={}", last.format("%Y%m%d"));
            }
        }
    }
    Ok(parts.join(";"))
}

fn start_local(start: &Moment, zone: Tz) -> chrono::NaiveDateTime {
    match start {
        Moment::Date(d) => d.and_time(chrono::NaiveTime::MIN),
        Moment::At { utc, .. } => utc.with_timezone(&zone).naive_local(),
    }
}

/// The master's recurrence, or the reason Graph cannot hold it.
fn recurrence_of(s: &Series<'_>, zone: Tz) -> Result<Option<Recurrence>, Unexpressible> {
    let m = s.master;
    if m.prop("RDATE").is_some() {
        return Err(Unexpressible::new(
            "Microsoft calendars cannot add single extra occurrences (RDATE) to a series.",
        ));
    }
    if m.prop("EXRULE").is_some() {
        return Err(Unexpressible::new(
            "Microsoft calendars cannot exclude occurrences by a rule (EXRULE).",
        ));
    }
    let rules: Vec<&str> = m.props_named("RRULE").map(|p| p.value.as_str()).collect();
    let rule = match rules.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        _ => {
            return Err(Unexpressible::new(
                "Microsoft calendars hold one recurrence rule per series; this event has several RRULEs.",
            ))
        }
    };
    let prepared = graph_rule(rule, &s.start, zone)?;
    let local = start_local(&s.start, zone);
    use chrono::Datelike;
    let zone_name = windows_zone(zone, local.year()).ok_or_else(|| {
        Unexpressible::new(format!(
            "Microsoft calendars know no time zone like {}.",
            zone.name()
        ))
    })?;
    let r = recurrence::from_rrule(&prepared, local, zone_name).map_err(|e| {
        if e.starts_with("Microsoft") {
            Unexpressible::new(format!("{e}."))
        } else {
            Unexpressible::new(format!(
                "Microsoft calendars cannot express this RRULE: {e}."
            ))
        }
    })?;
    let parsed = RRule::parse(&prepared)
        .map_err(|e| Unexpressible::new(format!("The RRULE cannot be read ({e}).")))?;
    if parsed.iter(local).next() != Some(local) {
        return Err(Unexpressible::new(format!(
            "Microsoft calendars start a series on its first occurrence, and the start ({}) is not one of the days the RRULE yields.",
            describe_moment(&s.start)
        )));
    }
    Ok(Some(r))
}

/// iCalendar object → the Graph writes of its series. `calendar_zone` is
/// the calendar's zone (floating times and all-day dates are laid out in
/// it).
pub fn event_from_ics(
    cal: &Component,
    calendar_zone: Option<&str>,
) -> Result<GraphSeriesWrite, Unexpressible> {
    let s = series(cal, calendar_zone, PROVIDER)?;
    let floating = s.times.floating();
    let mut warnings = Vec::new();
    let zone = match s.start {
        Moment::Date(_) => floating,
        Moment::At { zone: Some(z), .. } => z,
        Moment::At { zone: None, .. } => {
            if s.recurring {
                return Err(Unexpressible::new(
                    "The event repeats in a time zone of its own that matches no zone Microsoft calendars know.",
                ));
            }
            warnings.push(
                "The event's own time zone matches no zone Microsoft calendars know: it was written in UTC (same times)."
                    .into(),
            );
            Tz::UTC
        }
    };
    let recurrence = recurrence_of(&s, zone)?;
    let mut master = describe(
        s.master,
        &s.start,
        &s.end,
        zone,
        floating,
        s.recurring,
        &mut warnings,
    )?;
    let plain = Value::Object(master.clone());
    master.insert(
        "recurrence".into(),
        match &recurrence {
            Some(r) => serde_json::to_value(r).expect("recurrence serializes"),
            None => Value::Null,
        },
    );
    let plain_probe = s.probe(false);
    let occurrences = s.probe(true);
    let mut deletions: Vec<DateTime<Utc>> = s.exdates()?.iter().map(|m| m.instant(zone)).collect();
    let mut overrides = Vec::new();
    for o in &s.overrides {
        let rid = s.recurrence_id(o, &plain_probe, &occurrences)?;
        let at = rid.instant(zone);
        if o.value("STATUS")
            .is_some_and(|v| v.eq_ignore_ascii_case("CANCELLED"))
        {
            deletions.push(at);
            continue;
        }
        let (os, oe) = s.times.span(o)?;
        check_boundaries(&plain_probe, &rid, at, &os, zone)?;
        let body = describe(o, &os, &oe, zone, floating, false, &mut warnings)?;
        overrides.push(GraphOccurrenceWrite {
            original_start: at,
            body: Value::Object(body),
        });
    }
    deletions.sort();
    deletions.dedup();
    warnings.dedup();
    Ok(GraphSeriesWrite {
        master: Value::Object(master),
        deletions,
        overrides,
        warnings,
        plain,
        start: s.start,
        end: s.end,
        occurrences,
        zone,
        recurring: recurrence.is_some(),
    })
}

/// Exchange refuses to move an occurrence onto or past the day of the
/// previous or next occurrence.
fn check_boundaries(
    plain: &Probe,
    rid: &Moment,
    at: DateTime<Utc>,
    new_start: &Moment,
    zone: Tz,
) -> Result<(), Unexpressible> {
    const REACH: i64 = 4 * 366 * 86_400;
    let t = at.timestamp();
    let around = plain.starts(t - REACH, t + REACH);
    let day = |ts: i64| {
        DateTime::from_timestamp(ts, 0)
            .unwrap_or_default()
            .with_timezone(&zone)
            .date_naive()
    };
    let new_day = day(new_start.instant(zone).timestamp());
    let prev = around.iter().copied().filter(|x| *x < t).max();
    let next = around.iter().copied().filter(|x| *x > t).min();
    let crosses =
        prev.is_some_and(|p| new_day <= day(p)) || next.is_some_and(|n| new_day >= day(n));
    if crosses {
        return Err(Unexpressible::new(format!(
            "Microsoft calendars cannot move the occurrence of {} onto or past the day of another occurrence.",
            describe_moment(rid)
        )));
    }
    Ok(())
}

// ------------------------------------------------------------ comparison

fn instant_of(v: &Value) -> Option<i64> {
    let t: DateTimeTz = serde_json::from_value(v.clone()).ok()?;
    map::instant(&t).ok().map(|t| t.timestamp())
}

/// The zone an event's `start`/`end` is kept in: Graph answers in UTC and
/// names the event's own zone in `originalStartTimeZone`/`…End…`.
fn zone_of(event: &Value, key: &str) -> Option<String> {
    let original = if key == "start" {
        "originalStartTimeZone"
    } else {
        "originalEndTimeZone"
    };
    event[original]
        .as_str()
        .or(event[key]["timeZone"].as_str())
        .and_then(zones::iana)
}

/// True when an upstream event or occurrence already carries every mapped
/// field of `want`.
fn graph_matches(item: &Value, want: &Value) -> bool {
    let s = |v: &Value, path: &[&str]| -> String {
        let mut cur = v;
        for p in path {
            cur = &cur[*p];
        }
        cur.as_str()
            .unwrap_or("")
            .replace('\r', "")
            .trim()
            .to_string()
    };
    for path in [
        &["subject"][..],
        &["body", "content"],
        &["location", "displayName"],
        &["sensitivity"],
        &["showAs"],
    ] {
        if s(item, path) != s(want, path) {
            return false;
        }
    }
    let b = |v: &Value, k: &str| v[k].as_bool().unwrap_or(false);
    if b(item, "isAllDay") != b(want, "isAllDay")
        || b(item, "isReminderOn") != b(want, "isReminderOn")
    {
        return false;
    }
    if b(want, "isReminderOn")
        && item["reminderMinutesBeforeStart"].as_i64()
            != want["reminderMinutesBeforeStart"].as_i64()
    {
        return false;
    }
    let cats = |v: &Value| -> Vec<String> {
        let mut l: Vec<String> = v["categories"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        l.sort();
        l
    };
    cats(item) == cats(want)
        && instant_of(&item["start"]) == instant_of(&want["start"])
        && instant_of(&item["end"]) == instant_of(&want["end"])
}

/// True when the upstream master has the times and pattern of `want`
/// (writing them again would make Outlook drop the series' exceptions).
fn same_shape(item: &Value, want: &Value) -> bool {
    let times_same = ["start", "end"].iter().all(|k| {
        instant_of(&item[*k]) == instant_of(&want[*k]) && zone_of(item, k) == zone_of(want, k)
    }) && item["isAllDay"].as_bool().unwrap_or(false)
        == want["isAllDay"].as_bool().unwrap_or(false);
    let rec = |v: &Value| -> Option<Recurrence> {
        let mut r: Recurrence = serde_json::from_value(v["recurrence"].clone()).ok()?;
        r.pattern
            .days_of_week
            .iter_mut()
            .for_each(|d| *d = d.to_ascii_lowercase());
        r.pattern.days_of_week.sort();
        // Graph fills in every member; only those the type uses count.
        let kind = r.pattern.kind.clone();
        if kind != "weekly" {
            r.pattern.first_day_of_week = None;
        }
        if !kind.starts_with("relative") {
            r.pattern.index = None;
        }
        if !kind.ends_with("Yearly") {
            r.pattern.month = 0;
        }
        if !kind.starts_with("absolute") {
            r.pattern.day_of_month = 0;
        }
        if kind != "weekly" && !kind.starts_with("relative") {
            r.pattern.days_of_week.clear();
        }
        r.range.recurrence_time_zone = None;
        if r.range.kind != "numbered" {
            r.range.number_of_occurrences = 0;
        }
        if r.range.kind != "endDate" {
            r.range.end_date = None;
        }
        Some(r)
    };
    times_same && rec(item) == rec(want)
}

fn state_of(v: Value, warnings: Vec<String>) -> Result<RemoteState, UpstreamError> {
    let id = v["id"]
        .as_str()
        .ok_or_else(|| UpstreamError::Garbage("an event without an id".into()))?
        .to_string();
    let etag = v["@odata.etag"]
        .as_str()
        .ok_or_else(|| UpstreamError::Garbage("an event without an @odata.etag".into()))?
        .to_string();
    let updated = map::parse_time(v["lastModifiedDateTime"].as_str());
    Ok(RemoteState {
        id,
        etag,
        updated,
        json: v,
        warnings,
        exceptions: None,
    })
}

// ---------------------------------------------------------------- client

enum Op {
    Patch { id: String, body: Value },
    Delete { id: String },
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Graph {
    fn event_url(&self, id: &str) -> String {
        self.url(&format!("/me/events/{}", utf8_percent_encode(id, SEGMENT)))
    }

    /// The master with calbridge's extended property.
    async fn get_master(&self, token: &str, id: &str) -> Result<Value, UpstreamError> {
        let url = self.event_url(id);
        let expand = format!("singleValueExtendedProperties($filter=id eq '{ORIGIN_PROPERTY}')");
        self.api
            .send(|c| {
                c.get(&url)
                    .bearer_auth(token)
                    .header("Prefer", PREFER)
                    .query(&[("$expand", expand.as_str())])
            })
            .await?
            .json()
    }

    /// Write one series to a calendar: create it when `existing` is `None`
    /// (with `transactionId` = `idempotency_key`), else update the event
    /// `existing` names (`If-Match` with its etag when given). `marker`
    /// goes into calbridge's extended property.
    #[allow(clippy::too_many_arguments)]
    pub async fn write_series(
        &self,
        token: &str,
        calendar_id: &str,
        existing: Option<&RemoteRef>,
        cal: &Component,
        calendar_zone: Option<&str>,
        marker: &str,
        idempotency_key: &str,
    ) -> Result<RemoteState, WriteError> {
        let mut w = event_from_ics(cal, calendar_zone)?;
        w.mark(marker);
        let mut warnings = w.warnings.clone();
        let master: Value = match existing {
            None => {
                let url = self.url(&format!(
                    "/me/calendars/{}/events",
                    utf8_percent_encode(calendar_id, SEGMENT)
                ));
                let mut body = without_nulls(&w.master);
                body["transactionId"] = json!(idempotency_key);
                self.api
                    .send(|c| {
                        c.post(&url)
                            .bearer_auth(token)
                            .header("Prefer", PREFER)
                            .json(&body)
                    })
                    .await?
                    .json()?
            }
            Some(r) => {
                let before = self.get_master(token, &r.id).await?;
                if let Some(e) = &r.etag {
                    if before["@odata.etag"].as_str() != Some(e.as_str()) {
                        return Err(UpstreamError::PreconditionFailed.into());
                    }
                }
                let mut body = w.master.clone();
                if same_shape(&before, &w.master) {
                    if let Some(o) = body.as_object_mut() {
                        for k in ["start", "end", "isAllDay", "recurrence"] {
                            o.remove(k);
                        }
                    }
                }
                let url = self.event_url(&r.id);
                let etag = r.etag.clone();
                self.api
                    .send(|c| {
                        let mut req = c
                            .patch(&url)
                            .bearer_auth(token)
                            .header("Prefer", PREFER)
                            .json(&body);
                        if let Some(e) = &etag {
                            req = req.header(reqwest::header::IF_MATCH, e);
                        }
                        req
                    })
                    .await?
                    .json()?
            }
        };
        let id = master["id"]
            .as_str()
            .ok_or_else(|| UpstreamError::Garbage("an event without an id".into()))?
            .to_string();
        let touches = existing.is_some() || !w.overrides.is_empty() || !w.deletions.is_empty();
        if w.recurring && touches {
            let ops = self
                .occurrence_ops(token, &id, &w, existing.is_some(), &mut warnings)
                .await?;
            let futures: Vec<_> = ops.into_iter().map(|op| self.apply(token, op)).collect();
            run_bounded(futures).await?;
        }
        let fresh = self.get_master(token, &id).await?;
        Ok(state_of(fresh, warnings)?)
    }

    /// What to do to the occurrences of series `id` so they match `w`.
    async fn occurrence_ops(
        &self,
        token: &str,
        id: &str,
        w: &GraphSeriesWrite,
        update: bool,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<Op>, UpstreamError> {
        let day = chrono::Duration::days(1);
        let originals: Vec<DateTime<Utc>> = w
            .overrides
            .iter()
            .map(|o| o.original_start)
            .chain(w.deletions.iter().copied())
            .collect();
        let length = w.end.instant(w.zone) - w.start.instant(w.zone);
        let (mut from, mut to) = match (originals.iter().min(), originals.iter().max()) {
            (Some(a), Some(b)) => (*a - day, *b + day + length),
            _ => (Utc::now(), Utc::now()),
        };
        if update {
            // Stale exceptions: look where the sync looks.
            let now = Utc::now();
            let series_start = w.start.instant(w.zone);
            let lower = (now - chrono::Duration::days(366)).max(series_start - day);
            from = if originals.is_empty() {
                lower
            } else {
                from.min(lower)
            };
            to = to.max(now + chrono::Duration::seconds(HORIZON));
        }
        let listed = self.instances(token, id, from, to).await?;
        let by_original = |t: i64| {
            listed
                .iter()
                .find(|i| map::parse_time(i["originalStart"].as_str()) == Some(t))
        };
        let mut ops = Vec::new();
        let mut handled: Vec<i64> = Vec::new();
        for o in &w.overrides {
            let t = o.original_start.timestamp();
            handled.push(t);
            match by_original(t) {
                Some(i) => {
                    let Some(iid) = i["id"].as_str() else { continue };
                    if !(i["type"].as_str() == Some("exception") && graph_matches(i, &o.body)) {
                        ops.push(Op::Patch {
                            id: iid.to_string(),
                            body: o.body.clone(),
                        });
                    }
                }
                None => warnings.push(format!(
                    "The occurrence of {} was deleted in the Microsoft calendar and cannot be restored there, so its change was not written.",
                    iso(o.original_start)
                )),
            }
        }
        for d in &w.deletions {
            let t = d.timestamp();
            handled.push(t);
            if let Some(iid) = by_original(t).and_then(|i| i["id"].as_str()) {
                ops.push(Op::Delete {
                    id: iid.to_string(),
                });
            }
        }
        for i in &listed {
            let (Some(iid), Some(t)) = (
                i["id"].as_str(),
                map::parse_time(i["originalStart"].as_str()),
            ) else {
                continue;
            };
            if handled.contains(&t) || i["type"].as_str() != Some("exception") {
                continue;
            }
            let Some(original) = DateTime::from_timestamp(t, 0) else {
                continue;
            };
            let body = w.plain_at(original);
            if !graph_matches(i, &body) {
                ops.push(Op::Patch {
                    id: iid.to_string(),
                    body,
                });
            }
        }
        if update {
            let present: Vec<i64> = listed
                .iter()
                .filter_map(|i| map::parse_time(i["originalStart"].as_str()))
                .collect();
            for t in w.occurrences.starts(from.timestamp(), to.timestamp()) {
                if !present.contains(&t) && !handled.contains(&t) {
                    warnings.push(format!(
                        "The occurrence of {} was deleted in the Microsoft calendar and cannot be restored there.",
                        DateTime::from_timestamp(t, 0).map(iso).unwrap_or_default()
                    ));
                }
            }
        }
        Ok(ops)
    }

    /// Occurrences and exceptions of a series overlapping `[from, to)`.
    async fn instances(
        &self,
        token: &str,
        id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Value>, UpstreamError> {
        let mut next = Some(format!(
            "{}/instances?startDateTime={}&endDateTime={}&$top=500",
            self.event_url(id),
            iso(from),
            iso(to)
        ));
        let mut out = Vec::new();
        let mut pages = 0;
        while let Some(u) = next.take() {
            pages += 1;
            if pages > 1000 {
                return Err(UpstreamError::Garbage(
                    "the instance list never ended".into(),
                ));
            }
            let v: Value = self
                .api
                .send(|c| c.get(&u).bearer_auth(token).header("Prefer", PREFER))
                .await?
                .json()?;
            out.extend(
                v["value"]
                    .as_array()
                    .ok_or_else(|| UpstreamError::Garbage("instances without value".into()))?
                    .iter()
                    .filter(|i| i["isCancelled"].as_bool() != Some(true))
                    .cloned(),
            );
            if let Some(n) = v["@odata.nextLink"].as_str() {
                next = Some(self.checked_link(n)?);
            }
        }
        Ok(out)
    }

    async fn apply(&self, token: &str, op: Op) -> Result<(), UpstreamError> {
        match op {
            Op::Patch { id, body } => {
                let url = self.event_url(&id);
                self.api
                    .send(|c| {
                        c.patch(&url)
                            .bearer_auth(token)
                            .header("Prefer", PREFER)
                            .json(&body)
                    })
                    .await
                    .map(drop)
            }
            Op::Delete { id } => {
                let url = self.event_url(&id);
                match self.api.send(|c| c.delete(&url).bearer_auth(token)).await {
                    Ok(_) | Err(UpstreamError::NotFound) | Err(UpstreamError::Gone(_)) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Delete a series (`If-Match` with `etag` when given). An event that
    /// is already gone (404, 410) counts as deleted.
    pub async fn delete_series(
        &self,
        token: &str,
        _calendar_id: &str,
        remote_id: &str,
        etag: Option<&str>,
    ) -> Result<(), WriteError> {
        let url = self.event_url(remote_id);
        match self
            .api
            .send(|c| {
                let mut r = c.delete(&url).bearer_auth(token);
                if let Some(e) = etag {
                    r = r.header(reqwest::header::IF_MATCH, e);
                }
                r
            })
            .await
        {
            Ok(_) | Err(UpstreamError::NotFound) | Err(UpstreamError::Gone(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(body: &str) -> Component {
        let text = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{}END:VCALENDAR\r\n",
            body.replace('\n', "\r\n")
        );
        crate::ics::parse(text.as_bytes()).unwrap()
    }

    fn series_with(rule: &str) -> Component {
        cal(&format!(
            "BEGIN:VEVENT\nUID:r\nDTSTART;TZID=Europe/Berlin:20270302T090000\nDTEND;TZID=Europe/Berlin:20270302T100000\n{rule}\nEND:VEVENT\n"
        ))
    }

    fn refused(c: &Component) -> String {
        event_from_ics(c, Some("Europe/Berlin")).unwrap_err().0
    }

    #[test]
    fn rules_graph_cannot_hold_are_refused_with_the_reason() {
        for (rule, words) in [
            ("RRULE:FREQ=HOURLY", "cannot repeat hourly"),
            ("RRULE:FREQ=MONTHLY;BYDAY=TU;BYSETPOS=5", "BYSETPOS"),
            (
                "RRULE:FREQ=YEARLY;BYMONTH=1,7;BYMONTHDAY=2",
                "several months",
            ),
            (
                "RRULE:FREQ=DAILY\nRDATE;TZID=Europe/Berlin:20270310T090000",
                "RDATE",
            ),
            ("RRULE:FREQ=DAILY\nEXRULE:FREQ=WEEKLY", "EXRULE"),
            ("RRULE:FREQ=DAILY\nRRULE:FREQ=WEEKLY", "several RRULEs"),
            ("RRULE:FREQ=WEEKLY;BYDAY=MO", "first occurrence"),
        ] {
            let why = refused(&series_with(rule));
            assert!(why.contains(words), "{rule}: {why}");
            assert!(why.starts_with("Microsoft calendars"), "{rule}: {why}");
        }
        let rdate_only = series_with("RDATE;TZID=Europe/Berlin:20270310T090000");
        assert!(refused(&rdate_only).contains("RDATE"));
    }

    #[test]
    fn times_zones_and_fields_map() {
        let c = cal("BEGIN:VEVENT\nUID:x\nDTSTART;TZID=America/New_York:20270302T090000\nDTEND;TZID=America/New_York:20270302T093000\nSUMMARY:Call\nDESCRIPTION:Line 1\\nLine 2\nLOCATION:Room 4\nCLASS:PRIVATE\nTRANSP:TRANSPARENT\nCATEGORIES:Blue\\, dark,Work\nATTENDEE:mailto:a@example.com\nBEGIN:VALARM\nACTION:DISPLAY\nTRIGGER:-PT15M\nEND:VALARM\nBEGIN:VALARM\nACTION:DISPLAY\nTRIGGER:-PT1H\nEND:VALARM\nEND:VEVENT\n");
        let mut w = event_from_ics(&c, None).unwrap();
        w.mark("cb:9");
        let m = &w.master;
        assert_eq!(
            m["start"],
            json!({"dateTime": "2027-03-02T09:00:00", "timeZone": "Eastern Standard Time"})
        );
        assert_eq!(m["subject"], "Call");
        assert_eq!(
            m["body"],
            json!({"contentType": "text", "content": "Line 1\nLine 2"})
        );
        assert_eq!(m["location"]["displayName"], "Room 4");
        assert_eq!(m["sensitivity"], "private");
        assert_eq!(m["showAs"], "free");
        assert_eq!(m["categories"], json!(["Blue, dark", "Work"]));
        assert_eq!(m["isReminderOn"], true);
        assert_eq!(m["reminderMinutesBeforeStart"], 60);
        assert_eq!(m["recurrence"], Value::Null);
        assert!(m.get("attendees").is_none(), "attendees are never written");
        assert_eq!(
            m["singleValueExtendedProperties"],
            json!([{"id": ORIGIN_PROPERTY, "value": "cb:9"}])
        );
        assert!(w.warnings.iter().any(|x| x.contains("invitations")));
        assert!(w.warnings.iter().any(|x| x.contains("one reminder")));
    }

    #[test]
    fn all_day_is_midnight_to_midnight_in_the_calendar_zone() {
        let c = cal("BEGIN:VEVENT\nUID:d\nDTSTART;VALUE=DATE:20271224\nDTEND;VALUE=DATE:20271226\nEND:VEVENT\n");
        let w = event_from_ics(&c, Some("Asia/Tokyo")).unwrap();
        assert_eq!(w.master["isAllDay"], true);
        assert_eq!(
            w.master["start"],
            json!({"dateTime": "2027-12-24T00:00:00", "timeZone": "Tokyo Standard Time"})
        );
        assert_eq!(w.master["end"]["dateTime"], "2027-12-26T00:00:00");
        assert_eq!(w.master["isReminderOn"], false);
    }

    #[test]
    fn recurrence_exdates_and_overrides() {
        let c = cal("BEGIN:VEVENT\nUID:w\nDTSTART;TZID=Europe/Berlin:20270301T090000\nDTEND;TZID=Europe/Berlin:20270301T100000\nRRULE:FREQ=WEEKLY;BYDAY=MO;INTERVAL=2;UNTIL=20270426T065900Z\nEXDATE;TZID=Europe/Berlin:20270315T090000\nEND:VEVENT\nBEGIN:VEVENT\nUID:w\nRECURRENCE-ID;TZID=Europe/Berlin:20270329T090000\nDTSTART;TZID=Europe/Berlin:20270330T090000\nDTEND;TZID=Europe/Berlin:20270330T100000\nSUMMARY:Moved to Tuesday\nEND:VEVENT\n");
        let w = event_from_ics(&c, None).unwrap();
        let r = &w.master["recurrence"];
        assert_eq!(r["pattern"]["type"], "weekly");
        assert_eq!(r["pattern"]["interval"], 2);
        assert_eq!(
            r["pattern"]["firstDayOfWeek"], "monday",
            "RFC 5545's default WKST"
        );
        // UNTIL 06:59Z on the 26th is just before that day's 09:00 (07:00Z)
        // occurrence: the last allowed date is the 25th.
        assert_eq!(r["range"]["endDate"], "2027-04-25");
        assert_eq!(r["range"]["recurrenceTimeZone"], "W. Europe Standard Time");
        assert_eq!(
            w.deletions,
            vec!["2027-03-15T08:00:00Z".parse::<DateTime<Utc>>().unwrap()]
        );
        assert_eq!(w.overrides.len(), 1);
        assert_eq!(
            w.overrides[0].original_start,
            "2027-03-29T07:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(w.overrides[0].body["subject"], "Moved to Tuesday");
        // Moving it onto the next occurrence's day is refused.
        let far = cal("BEGIN:VEVENT\nUID:w\nDTSTART;TZID=Europe/Berlin:20270301T090000\nRRULE:FREQ=WEEKLY;COUNT=4\nEND:VEVENT\nBEGIN:VEVENT\nUID:w\nRECURRENCE-ID;TZID=Europe/Berlin:20270308T090000\nDTSTART;TZID=Europe/Berlin:20270315T080000\nEND:VEVENT\n");
        assert!(refused(&far).contains("onto or past"));
    }
}
