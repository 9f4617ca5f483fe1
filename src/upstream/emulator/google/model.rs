//! Google Calendar v3 resources as the emulator stores and renders them.
//!
//! Owns: the stored calendar and event types, parsing and validating event
//! bodies (insert/update/patch), and rendering events, instances and
//! cancelled tombstones in Google's JSON shape. Pure: no locking, no HTTP.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde_json::{json, Map, Value};

use super::super::errors::GoogleError;
use super::super::ids;
use super::super::state::UserKey;
use super::super::time::{date_start, google_date_time, google_stamp, iana_zone, local_to_utc};
use super::recur::{expand_google_series, is_unbounded, InstanceStart, SeriesStart};

/// A calendar of a Google user (an entry of their calendar list).
#[derive(Debug, Clone)]
pub(crate) struct GCal {
    pub id: String,
    pub owner: UserKey,
    pub summary: String,
    pub description: Option<String>,
    pub time_zone: String,
    pub color_id: String,
    pub background_color: String,
    pub foreground_color: String,
    pub primary: bool,
    pub etag_num: u64,
    /// Global sequence number of the last change to this calendar's entry.
    pub list_seq: u64,
    pub events: HashMap<String, GEvent>,
    /// Bumped to invalidate every sync token issued for this calendar.
    pub sync_epoch: u64,
    /// Sequence number of the last event change (what sync tokens record).
    pub change_seq: u64,
    pub last_change: DateTime<Utc>,
}

impl GCal {
    pub fn tz(&self) -> Tz {
        iana_zone(&self.time_zone).unwrap_or(Tz::UTC)
    }
}

/// A start or end of a Google event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GTime {
    /// An all-day date (`date`; an end date is exclusive).
    Date(NaiveDate),
    /// A point in time (`dateTime`), with the event's own `timeZone` if set.
    At {
        at: DateTime<Utc>,
        tz: Option<String>,
    },
}

impl GTime {
    /// The instant this time denotes; dates are read in `cal_tz`.
    pub fn instant(&self, cal_tz: Tz) -> DateTime<Utc> {
        match self {
            GTime::Date(d) => date_start(cal_tz, *d),
            GTime::At { at, .. } => *at,
        }
    }

    /// Renders as `{date}` or `{dateTime, timeZone?}`; `display` is the zone
    /// to write the offset in when the event has no zone of its own or the
    /// caller asked for another one.
    pub fn render(&self, display: Tz, force_display: bool) -> Value {
        match self {
            GTime::Date(d) => json!({"date": d.format("%Y-%m-%d").to_string()}),
            GTime::At { at, tz } => {
                let zone = if force_display {
                    display
                } else {
                    tz.as_deref().and_then(iana_zone).unwrap_or(display)
                };
                let mut v = json!({"dateTime": google_date_time(*at, zone)});
                if let Some(z) = tz {
                    v["timeZone"] = json!(z);
                }
                v
            }
        }
    }

    fn parse(v: &Value, which: &str) -> Result<GTime, GoogleError> {
        let obj = v.as_object().ok_or_else(|| {
            GoogleError::invalid(&format!("Invalid {which} time.")).at("parameter", which)
        })?;
        let tz = match obj.get("timeZone") {
            None | Some(Value::Null) => None,
            Some(Value::String(z)) => {
                if iana_zone(z).is_none() {
                    return Err(GoogleError::invalid(&format!(
                        "Invalid time zone definition for {which} time."
                    )));
                }
                Some(z.clone())
            }
            Some(_) => return Err(GoogleError::invalid("Invalid time zone definition.")),
        };
        let date = obj.get("date").and_then(Value::as_str);
        let date_time = obj.get("dateTime").and_then(Value::as_str);
        match (date, date_time) {
            (Some(d), None) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map(GTime::Date)
                .map_err(|_| GoogleError::invalid(&format!("Invalid {which} time."))),
            (None, Some(dt)) => {
                if let Ok(t) = DateTime::parse_from_rfc3339(dt) {
                    return Ok(GTime::At {
                        at: t.with_timezone(&Utc),
                        tz,
                    });
                }
                let local = NaiveDateTime::parse_from_str(dt, "%Y-%m-%dT%H:%M:%S%.f")
                    .map_err(|_| GoogleError::invalid(&format!("Invalid {which} time.")))?;
                let zone = tz.as_deref().and_then(iana_zone).ok_or_else(|| {
                    GoogleError::bad_request(&format!(
                        "Missing time zone definition for {which} time."
                    ))
                })?;
                Ok(GTime::At {
                    at: local_to_utc(zone, local),
                    tz,
                })
            }
            (Some(_), Some(_)) => Err(GoogleError::invalid(&format!(
                "Invalid {which} time: both date and dateTime are set."
            ))),
            (None, None) => Err(GoogleError::required(&format!("Missing {which} time."))),
        }
    }
}

/// A stored Google event: a single event, a series master, or an exception
/// (`recurring_event_id` set). Deleted events stay as `status: cancelled`.
#[derive(Debug, Clone)]
pub(crate) struct GEvent {
    pub id: String,
    pub ical_uid: String,
    pub status: String,
    pub start: GTime,
    pub end: GTime,
    pub recurrence: Vec<String>,
    pub recurring_event_id: Option<String>,
    pub original_start: Option<GTime>,
    /// Every other client-writable field, stored as given.
    pub fields: Map<String, Value>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub etag_num: u64,
    pub sequence: i64,
    pub created_seq: u64,
    pub updated_seq: u64,
}

/// Fields the server owns; a client sending them is ignored.
const READ_ONLY: &[&str] = &[
    "kind",
    "etag",
    "id",
    "htmlLink",
    "created",
    "updated",
    "creator",
    "organizer",
    "iCalUID",
    "recurringEventId",
    "originalStartTime",
    "start",
    "end",
    "recurrence",
    "status",
    "sequence",
    "hangoutLink",
    "privateCopy",
    "locked",
];

/// What a body parse produced, before it becomes (part of) a stored event.
#[derive(Debug, Clone)]
pub(crate) struct ParsedEvent {
    pub id: Option<String>,
    pub ical_uid: Option<String>,
    pub status: String,
    pub start: GTime,
    pub end: GTime,
    pub recurrence: Vec<String>,
    pub sequence: Option<i64>,
    pub fields: Map<String, Value>,
}

/// Parses and validates a full event body (insert or update).
pub(crate) fn parse_event(body: &Value) -> Result<ParsedEvent, GoogleError> {
    let obj = body
        .as_object()
        .ok_or_else(|| GoogleError::bad_request("The request body must be a JSON object."))?;
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            if !ids::is_valid_google_event_id(s) {
                return Err(GoogleError::invalid("Invalid resource id value."));
            }
            Some(s.clone())
        }
        Some(_) => return Err(GoogleError::invalid("Invalid resource id value.")),
    };
    let start = GTime::parse(
        obj.get("start")
            .ok_or_else(|| GoogleError::required("Missing start time."))?,
        "start",
    )?;
    let end = GTime::parse(
        obj.get("end")
            .ok_or_else(|| GoogleError::required("Missing end time."))?,
        "end",
    )?;
    match (&start, &end) {
        (GTime::Date(s), GTime::Date(e)) => {
            if e <= s {
                return Err(GoogleError::time_range_empty("end"));
            }
        }
        (GTime::At { at: s, .. }, GTime::At { at: e, .. }) => {
            if e < s {
                return Err(GoogleError::time_range_empty("end"));
            }
        }
        _ => {
            return Err(GoogleError::invalid(
                "Start and end times must either both be date or both be dateTime.",
            ))
        }
    }
    let recurrence = match obj.get("recurrence") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(lines)) => {
            let mut out = Vec::new();
            for l in lines {
                let s = l
                    .as_str()
                    .ok_or_else(|| GoogleError::invalid("Invalid recurrence rule."))?;
                let upper = s.trim().to_ascii_uppercase();
                let ok = ["RRULE:", "EXRULE:", "RDATE", "EXDATE"]
                    .iter()
                    .any(|p| upper.starts_with(p))
                    && !upper.contains("DTSTART");
                if !ok {
                    return Err(GoogleError::invalid("Invalid recurrence rule."));
                }
                out.push(s.trim().to_string());
            }
            out
        }
        Some(_) => return Err(GoogleError::invalid("Invalid recurrence rule.")),
    };
    if !recurrence.is_empty() {
        for (t, which) in [(&start, "start"), (&end, "end")] {
            if let GTime::At { tz: None, .. } = t {
                return Err(GoogleError::required(&format!(
                    "Missing time zone definition for {which} time."
                )));
            }
        }
    }
    let status = match obj.get("status") {
        None | Some(Value::Null) => "confirmed".to_string(),
        Some(Value::String(s)) if ["confirmed", "tentative", "cancelled"].contains(&s.as_str()) => {
            s.clone()
        }
        Some(_) => return Err(GoogleError::invalid("Invalid value for: status")),
    };
    for (key, allowed) in [
        (
            "visibility",
            &["default", "public", "private", "confidential"][..],
        ),
        ("transparency", &["opaque", "transparent"][..]),
    ] {
        if let Some(v) = obj.get(key) {
            if !v.is_null() && !v.as_str().is_some_and(|s| allowed.contains(&s)) {
                return Err(GoogleError::invalid(&format!("Invalid value for: {key}")));
            }
        }
    }
    let sequence = match obj.get("sequence") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| GoogleError::invalid("Invalid sequence value."))?,
        ),
    };
    let ical_uid = obj
        .get("iCalUID")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let fields = obj
        .iter()
        .filter(|(k, v)| !READ_ONLY.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(ParsedEvent {
        id,
        ical_uid,
        status,
        start,
        end,
        recurrence,
        sequence,
        fields,
    })
}

impl GEvent {
    /// The client-writable view of this event, the base a patch merges into.
    pub fn writable(&self) -> Value {
        let mut m = self.fields.clone();
        m.insert("start".into(), self.start.render(Tz::UTC, false));
        m.insert("end".into(), self.end.render(Tz::UTC, false));
        if !self.recurrence.is_empty() {
            m.insert("recurrence".into(), json!(self.recurrence));
        }
        m.insert("status".into(), json!(self.status));
        Value::Object(m)
    }

    pub fn is_cancelled(&self) -> bool {
        self.status == "cancelled"
    }

    pub fn is_master(&self) -> bool {
        !self.recurrence.is_empty() && self.recurring_event_id.is_none()
    }

    pub fn etag(&self) -> String {
        format!("\"{}\"", self.etag_num)
    }

    /// The series start for expansion (masters only).
    pub fn series_start(&self, cal_tz: Tz) -> SeriesStart {
        match &self.start {
            GTime::Date(d) => SeriesStart::Date(*d),
            GTime::At { at, tz } => {
                let zone = tz.as_deref().and_then(iana_zone).unwrap_or(cal_tz);
                SeriesStart::At(at.with_timezone(&zone).naive_local(), zone)
            }
        }
    }

    /// Instance starts of this series up to `until`, at most `max`.
    pub fn instances(&self, cal_tz: Tz, until: DateTime<Utc>, max: usize) -> Vec<InstanceStart> {
        expand_google_series(self.series_start(cal_tz), &self.recurrence, until, max)
    }

    /// The end of the series' last instance, or `None` when it never ends.
    pub fn series_end(&self, cal_tz: Tz) -> Option<DateTime<Utc>> {
        if is_unbounded(&self.recurrence) {
            return None;
        }
        let far = Utc::now() + Duration::days(365 * 200);
        let last = self.instances(cal_tz, far, 100_000).into_iter().last();
        let dur = self.end.instant(cal_tz) - self.start.instant(cal_tz);
        Some(match last {
            Some(i) => instance_instant(i, cal_tz) + dur,
            None => self.end.instant(cal_tz),
        })
    }

    /// Start and end of the instance that starts at `original`.
    pub fn instance_times(&self, original: InstanceStart) -> (GTime, GTime) {
        match (original, &self.start, &self.end) {
            (InstanceStart::Date(d), GTime::Date(s), GTime::Date(e)) => {
                (GTime::Date(d), GTime::Date(d + (*e - *s)))
            }
            (InstanceStart::At(t), GTime::At { at: s, tz }, GTime::At { at: e, tz: etz }) => (
                GTime::At {
                    at: t,
                    tz: tz.clone(),
                },
                GTime::At {
                    at: t + (*e - *s),
                    tz: etz.clone(),
                },
            ),
            // A mismatch cannot be stored; fall back to the master's times.
            _ => (self.start.clone(), self.end.clone()),
        }
    }

    /// The `originalStartTime` object for an instance of this series.
    pub fn original_start_of(&self, original: InstanceStart) -> GTime {
        match original {
            InstanceStart::Date(d) => GTime::Date(d),
            InstanceStart::At(t) => GTime::At {
                at: t,
                tz: match &self.start {
                    GTime::At { tz, .. } => tz.clone(),
                    GTime::Date(_) => None,
                },
            },
        }
    }
}

/// The instant an instance start denotes (dates read in `cal_tz`).
pub(crate) fn instance_instant(i: InstanceStart, cal_tz: Tz) -> DateTime<Utc> {
    match i {
        InstanceStart::Date(d) => date_start(cal_tz, d),
        InstanceStart::At(t) => t,
    }
}

/// The instance id Google gives an occurrence: `{master}_{YYYYMMDDTHHMMSSZ}`
/// or `{master}_{YYYYMMDD}` for all-day series.
pub(crate) fn instance_id(master: &str, original: InstanceStart) -> String {
    match original {
        InstanceStart::Date(d) => format!("{master}_{}", d.format("%Y%m%d")),
        InstanceStart::At(t) => format!("{master}_{}", t.format("%Y%m%dT%H%M%SZ")),
    }
}

/// Splits an instance id into its master id and original start.
pub(crate) fn parse_instance_id(id: &str) -> Option<(&str, InstanceStart)> {
    let (master, suffix) = id.rsplit_once('_')?;
    if let Some(z) = suffix.strip_suffix('Z') {
        let t = NaiveDateTime::parse_from_str(z, "%Y%m%dT%H%M%S").ok()?;
        return Some((master, InstanceStart::At(t.and_utc())));
    }
    let d = NaiveDate::parse_from_str(suffix, "%Y%m%d").ok()?;
    Some((master, InstanceStart::Date(d)))
}

/// Context a rendering needs beyond the event itself.
pub(crate) struct RenderCtx<'a> {
    pub cal: &'a GCal,
    pub owner_email: &'a str,
    pub owner_name: &'a str,
    /// The `timeZone` query parameter, when given.
    pub display_tz: Option<Tz>,
    pub base_url: &'a str,
}

impl RenderCtx<'_> {
    fn tz(&self) -> (Tz, bool) {
        match self.display_tz {
            Some(z) => (z, true),
            None => (self.cal.tz(), false),
        }
    }

    fn html_link(&self, id: &str) -> String {
        let eid = STANDARD.encode(format!("{id} {}", self.cal.id));
        format!(
            "{}/calendar/event?eid={}",
            self.base_url,
            eid.trim_end_matches('=')
        )
    }
}

/// Renders a stored event in full.
pub(crate) fn render_event(ev: &GEvent, ctx: &RenderCtx<'_>) -> Value {
    let (tz, force) = ctx.tz();
    let mut m = Map::new();
    m.insert("kind".into(), json!("calendar#event"));
    m.insert("etag".into(), json!(ev.etag()));
    m.insert("id".into(), json!(ev.id));
    m.insert("status".into(), json!(ev.status));
    m.insert("htmlLink".into(), json!(ctx.html_link(&ev.id)));
    m.insert("created".into(), json!(google_stamp(ev.created)));
    m.insert("updated".into(), json!(google_stamp(ev.updated)));
    for key in ["summary", "description", "location", "colorId"] {
        if let Some(v) = ev.fields.get(key) {
            m.insert(key.into(), v.clone());
        }
    }
    m.insert(
        "creator".into(),
        json!({"email": ctx.owner_email, "displayName": ctx.owner_name, "self": true}),
    );
    let organizer = if ctx.cal.primary {
        json!({"email": ctx.owner_email, "displayName": ctx.owner_name, "self": true})
    } else {
        json!({"email": ctx.cal.id, "displayName": ctx.cal.summary, "self": true})
    };
    m.insert("organizer".into(), organizer);
    m.insert("start".into(), ev.start.render(tz, force));
    m.insert("end".into(), ev.end.render(tz, force));
    if !ev.recurrence.is_empty() {
        m.insert("recurrence".into(), json!(ev.recurrence));
    }
    if let Some(r) = &ev.recurring_event_id {
        m.insert("recurringEventId".into(), json!(r));
    }
    if let Some(o) = &ev.original_start {
        m.insert("originalStartTime".into(), o.render(tz, force));
    }
    for key in ["transparency", "visibility"] {
        if let Some(v) = ev.fields.get(key) {
            m.insert(key.into(), v.clone());
        }
    }
    m.insert("iCalUID".into(), json!(ev.ical_uid));
    m.insert("sequence".into(), json!(ev.sequence));
    for (k, v) in &ev.fields {
        if !m.contains_key(k) && k != "reminders" {
            m.insert(k.clone(), v.clone());
        }
    }
    m.insert(
        "reminders".into(),
        ev.fields
            .get("reminders")
            .cloned()
            .unwrap_or_else(|| json!({"useDefault": true})),
    );
    m.entry("eventType").or_insert(json!("default"));
    Value::Object(m)
}

/// Renders a cancelled event the way lists return deletions: little more
/// than its id and status (plus the series link for exceptions).
pub(crate) fn render_cancelled(ev: &GEvent, ctx: &RenderCtx<'_>) -> Value {
    let (tz, force) = ctx.tz();
    let mut v = json!({
        "kind": "calendar#event",
        "etag": ev.etag(),
        "id": ev.id,
        "status": "cancelled",
    });
    if let (Some(r), Some(o)) = (&ev.recurring_event_id, &ev.original_start) {
        v["recurringEventId"] = json!(r);
        v["originalStartTime"] = o.render(tz, force);
    }
    v
}

/// Renders an instance of a series that has no exception of its own.
pub(crate) fn render_virtual(
    master: &GEvent,
    original: InstanceStart,
    ctx: &RenderCtx<'_>,
) -> Value {
    let (tz, force) = ctx.tz();
    let id = instance_id(&master.id, original);
    let orig = master.original_start_of(original).render(tz, force);
    if master.is_cancelled() {
        return json!({
            "kind": "calendar#event",
            "etag": master.etag(),
            "id": id,
            "status": "cancelled",
            "recurringEventId": master.id,
            "originalStartTime": orig,
        });
    }
    let mut v = render_event(master, ctx);
    let (start, end) = master.instance_times(original);
    let obj = v.as_object_mut().expect("rendered event is an object");
    obj.remove("recurrence");
    obj.insert("id".into(), json!(id));
    obj.insert("htmlLink".into(), json!(ctx.html_link(&id)));
    obj.insert("start".into(), start.render(tz, force));
    obj.insert("end".into(), end.render(tz, force));
    obj.insert("recurringEventId".into(), json!(master.id));
    obj.insert("originalStartTime".into(), orig);
    v
}

/// RFC 7386 merge of a patch into a writable event body (Google's patch
/// semantics). In `start`/`end`, giving `date` drops `dateTime` and the
/// zone, and giving `dateTime` drops `date`, so the two never mix.
pub(crate) fn merge_patch(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(k);
                } else if ["start", "end"].contains(&k.as_str()) && v.is_object() {
                    let slot = b.entry(k.clone()).or_insert(json!({}));
                    if v.get("date").is_some_and(|d| !d.is_null()) || !slot.is_object() {
                        *slot = v.clone();
                    } else {
                        if v.get("dateTime").is_some_and(|d| !d.is_null()) {
                            if let Some(o) = slot.as_object_mut() {
                                o.remove("date");
                            }
                        }
                        merge_patch(slot, v);
                    }
                } else {
                    let slot = b.entry(k.clone()).or_insert(Value::Null);
                    if v.is_object() && slot.is_object() {
                        merge_patch(slot, v);
                    } else {
                        *slot = v.clone();
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// True when the event matches every free-text term of `q`.
pub(crate) fn matches_query(ev: &GEvent, q: &str) -> bool {
    let mut hay = String::new();
    for key in ["summary", "description", "location"] {
        if let Some(s) = ev.fields.get(key).and_then(Value::as_str) {
            hay.push_str(s);
            hay.push('\n');
        }
    }
    if let Some(Value::Array(att)) = ev.fields.get("attendees") {
        for a in att {
            for key in ["email", "displayName"] {
                if let Some(s) = a.get(key).and_then(Value::as_str) {
                    hay.push_str(s);
                    hay.push('\n');
                }
            }
        }
    }
    let hay = hay.to_lowercase();
    q.split_whitespace()
        .all(|term| hay.contains(&term.to_lowercase()))
}

/// True when the event carries `key=value` among its private (or shared)
/// extended properties.
pub(crate) fn has_extended_property(ev: &GEvent, scope: &str, filter: &str) -> bool {
    let Some((k, v)) = filter.split_once('=') else {
        return false;
    };
    ev.fields
        .get("extendedProperties")
        .and_then(|p| p.get(scope))
        .and_then(|p| p.get(k))
        .and_then(Value::as_str)
        == Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_bad_ids_and_mixed_times() {
        let e = parse_event(
            &json!({"id": "UPPER", "start": {"date": "2026-03-02"}, "end": {"date": "2026-03-03"}}),
        )
        .unwrap_err();
        assert_eq!(e.reason, "invalid");
        let e = parse_event(
            &json!({"start": {"date": "2026-03-02"}, "end": {"dateTime": "2026-03-03T10:00:00Z"}}),
        )
        .unwrap_err();
        assert_eq!(e.reason, "invalid");
        let e =
            parse_event(&json!({"start": {"date": "2026-03-02"}, "end": {"date": "2026-03-02"}}))
                .unwrap_err();
        assert_eq!(e.reason, "timeRangeEmpty");
    }

    #[test]
    fn recurring_timed_events_need_a_zone() {
        let e = parse_event(&json!({
            "start": {"dateTime": "2026-03-02T09:00:00Z"},
            "end": {"dateTime": "2026-03-02T10:00:00Z"},
            "recurrence": ["RRULE:FREQ=DAILY"]
        }))
        .unwrap_err();
        assert_eq!(e.reason, "required");
        let ok = parse_event(&json!({
            "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "Europe/Berlin"},
            "recurrence": ["RRULE:FREQ=DAILY"]
        }))
        .unwrap();
        assert_eq!(
            ok.start,
            GTime::At {
                at: "2026-03-02T08:00:00Z".parse().unwrap(),
                tz: Some("Europe/Berlin".into())
            }
        );
    }

    #[test]
    fn instance_ids_round_trip() {
        let t: DateTime<Utc> = "2026-03-02T08:00:00Z".parse().unwrap();
        let id = instance_id("abcdef", InstanceStart::At(t));
        assert_eq!(id, "abcdef_20260302T080000Z");
        assert_eq!(
            parse_instance_id(&id),
            Some(("abcdef", InstanceStart::At(t)))
        );
        let d = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        assert_eq!(
            parse_instance_id("abc_20260302"),
            Some(("abc", InstanceStart::Date(d)))
        );
    }

    #[test]
    fn merge_patch_never_mixes_date_kinds() {
        let mut base = json!({"start": {"date": "2026-03-02"}, "end": {"dateTime": "2026-03-02T10:00:00Z", "timeZone": "Europe/Berlin"}, "summary": "a", "extendedProperties": {"private": {"x": "1"}}});
        merge_patch(
            &mut base,
            &json!({"start": {"dateTime": "2026-03-02T09:00:00Z"}, "end": {"dateTime": "2026-03-02T11:00:00Z"}, "summary": null, "extendedProperties": {"private": {"y": "2"}}}),
        );
        assert_eq!(base["start"], json!({"dateTime": "2026-03-02T09:00:00Z"}));
        assert_eq!(
            base["end"],
            json!({"dateTime": "2026-03-02T11:00:00Z", "timeZone": "Europe/Berlin"})
        );
        merge_patch(&mut base, &json!({"end": {"date": "2026-03-03"}}));
        assert_eq!(base["end"], json!({"date": "2026-03-03"}));
        assert!(base.get("summary").is_none());
        assert_eq!(
            base["extendedProperties"]["private"],
            json!({"x": "1", "y": "2"})
        );
    }
}
