//! Microsoft Graph calendars and events as the emulator stores and renders
//! them.
//!
//! Owns: the stored calendar/event types (series masters keep their
//! occurrences' changes as overrides keyed by original start, as Exchange
//! does), parsing create/update bodies, expanding a calendar into the
//! instances of a time window, and rendering events in Graph's JSON shape
//! under the caller's `Prefer` choices. Pure: no locking, no HTTP.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Duration, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{json, Map, Value};

use super::super::errors::GraphError;
use super::super::ids;
use super::super::state::UserKey;
use super::super::time::{
    any_zone, graph_local, graph_stamp, local_to_utc, parse_graph_date_time, utc_to_local,
    windows_name,
};
use super::recur::Recurrence;

/// A calendar in a Microsoft mailbox.
#[derive(Debug, Clone)]
pub(crate) struct MCal {
    pub id: String,
    pub owner: UserKey,
    pub name: String,
    pub color: String,
    pub hex_color: String,
    pub is_default: bool,
    pub version: u64,
    pub events: HashMap<String, MEvent>,
    /// Bumped to invalidate every delta token issued for this calendar.
    pub delta_epoch: u64,
    /// Delta tokens issued for this calendar, oldest first; the oldest are
    /// evicted like Exchange's delta-token cache does.
    pub delta_tokens: VecDeque<String>,
}

/// A start or end time: a wall-clock time in the event's own zone.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MTime {
    pub local: NaiveDateTime,
    pub tz: Tz,
}

impl MTime {
    pub fn instant(&self) -> DateTime<Utc> {
        local_to_utc(self.tz, self.local)
    }

    fn parse(v: &Value, which: &str) -> Result<MTime, GraphError> {
        let zone_name = v.get("timeZone").and_then(Value::as_str).unwrap_or("UTC");
        let tz = any_zone(zone_name).ok_or_else(|| {
            GraphError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "TimeZoneNotSupportedException",
                &format!("A valid TimeZone value must be specified. The following TimeZone value is not supported: '{zone_name}'."),
            )
        })?;
        let dt = v.get("dateTime").and_then(Value::as_str).ok_or_else(|| {
            GraphError::bad_request(&format!("The {which} dateTime is required."))
        })?;
        let local = parse_graph_date_time(dt, tz).ok_or_else(|| {
            GraphError::bad_request(&format!(
                "Cannot convert the literal '{dt}' to the expected type 'Edm.DateTime'."
            ))
        })?;
        Ok(MTime { local, tz })
    }
}

/// The writable content of an event, an occurrence or an exception.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MContent {
    pub subject: String,
    pub body_type: String,
    pub body: String,
    pub start: MTime,
    pub end: MTime,
    pub is_all_day: bool,
    pub location: Value,
    pub sensitivity: String,
    pub show_as: String,
    pub importance: String,
    pub categories: Value,
    pub attendees: Value,
    pub is_reminder_on: bool,
    pub reminder_minutes: i64,
    pub is_cancelled: bool,
    pub svep: Vec<(String, String)>,
}

/// A change to one occurrence of a series.
#[derive(Debug, Clone)]
pub(crate) enum Override {
    /// The occurrence was deleted (it leaves every view).
    Deleted,
    /// The occurrence was changed and is now an exception.
    Modified {
        content: Box<MContent>,
        version: u64,
        last_modified: DateTime<Utc>,
    },
}

/// A stored Graph event: a single instance or a series master. Deleted
/// events stay as tombstones so delta can report them.
#[derive(Debug, Clone)]
pub(crate) struct MEvent {
    pub id: String,
    pub ical_uid: String,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub version: u64,
    pub transaction_id: Option<String>,
    pub content: MContent,
    pub recurrence: Option<Recurrence>,
    /// Occurrence changes keyed by original start (Unix seconds).
    pub overrides: BTreeMap<i64, Override>,
    pub deleted: bool,
    pub created_seq: u64,
    pub changed_seq: u64,
}

impl MEvent {
    pub fn change_key(&self) -> String {
        ids::change_key(&self.id, self.version)
    }

    /// The original start of the occurrence on `date`.
    pub fn occurrence_start(&self, date: chrono::NaiveDate) -> DateTime<Utc> {
        local_to_utc(
            self.content.start.tz,
            date.and_time(self.content.start.local.time()),
        )
    }

    /// The series' occurrence original starts up to `until`.
    pub fn occurrence_starts(&self, until: DateTime<Utc>, max: usize) -> Vec<DateTime<Utc>> {
        let Some(rec) = &self.recurrence else {
            return Vec::new();
        };
        let until_date = utc_to_local(self.content.start.tz, until).date() + Duration::days(1);
        rec.dates(until_date, max)
            .into_iter()
            .map(|d| self.occurrence_start(d))
            .filter(|t| *t <= until)
            .collect()
    }

    /// True when `original` is an occurrence of this series.
    pub fn has_occurrence(&self, original: DateTime<Utc>) -> bool {
        self.occurrence_starts(original, 200_000)
            .contains(&original)
    }
}

/// What a Graph view shows: a single instance, an occurrence or an
/// exception (never a series master).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InstanceKind {
    Single,
    Occurrence,
    Exception,
}

/// One item of a calendar view, detached from the store.
#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub id: String,
    pub kind: InstanceKind,
    pub master_id: Option<String>,
    pub original_start: Option<DateTime<Utc>>,
    pub content: MContent,
    pub ical_uid: String,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub change_key: String,
    pub transaction_id: Option<String>,
}

impl Instance {
    pub fn start(&self) -> DateTime<Utc> {
        self.content.start.instant()
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.content.end.instant()
    }

    /// True when the instance overlaps `[ws, we)` (a zero-length instance
    /// counts when it starts inside the window).
    pub fn overlaps(&self, ws: DateTime<Utc>, we: DateTime<Utc>) -> bool {
        let (s, e) = (self.start(), self.end());
        if s == e {
            s >= ws && s < we
        } else {
            s < we && e > ws
        }
    }
}

/// The instance of `ev` (a single event) as a view item.
pub(crate) fn single_instance(ev: &MEvent) -> Instance {
    Instance {
        id: ev.id.clone(),
        kind: InstanceKind::Single,
        master_id: None,
        original_start: None,
        content: ev.content.clone(),
        ical_uid: ev.ical_uid.clone(),
        created: ev.created,
        last_modified: ev.last_modified,
        change_key: ev.change_key(),
        transaction_id: ev.transaction_id.clone(),
    }
}

/// The occurrence of series `ev` that originally starts at `original`, or
/// `None` when that occurrence was deleted.
pub(crate) fn occurrence(ev: &MEvent, original: DateTime<Utc>) -> Option<Instance> {
    let id = ids::graph_occurrence_id(&ev.id, original.timestamp());
    let date = utc_to_local(ev.content.start.tz, original).date();
    let ical_uid = ids::graph_occurrence_ical_uid(&ev.ical_uid, date);
    match ev.overrides.get(&original.timestamp()) {
        Some(Override::Deleted) => None,
        Some(Override::Modified {
            content,
            version,
            last_modified,
            ..
        }) => Some(Instance {
            change_key: ids::change_key(&id, *version),
            id,
            kind: InstanceKind::Exception,
            master_id: Some(ev.id.clone()),
            original_start: Some(original),
            content: content.as_ref().clone(),
            ical_uid,
            created: ev.created,
            last_modified: *last_modified,
            transaction_id: None,
        }),
        None => {
            let dur = ev.content.end.instant() - ev.content.start.instant();
            let mut content = ev.content.clone();
            content.start = MTime {
                local: utc_to_local(ev.content.start.tz, original),
                tz: ev.content.start.tz,
            };
            content.end = MTime {
                local: utc_to_local(ev.content.end.tz, original + dur),
                tz: ev.content.end.tz,
            };
            Some(Instance {
                change_key: ids::change_key(&id, ev.version),
                id,
                kind: InstanceKind::Occurrence,
                master_id: Some(ev.id.clone()),
                original_start: Some(original),
                content,
                ical_uid,
                created: ev.created,
                last_modified: ev.last_modified,
                transaction_id: None,
            })
        }
    }
}

/// Every instance of one stored event overlapping `[ws, we)`.
pub(crate) fn event_instances(ev: &MEvent, ws: DateTime<Utc>, we: DateTime<Utc>) -> Vec<Instance> {
    if ev.deleted {
        return Vec::new();
    }
    if ev.recurrence.is_none() {
        let i = single_instance(ev);
        return if i.overlaps(ws, we) {
            vec![i]
        } else {
            Vec::new()
        };
    }
    let starts = ev.occurrence_starts(we, 200_000);
    let mut seen: Vec<i64> = Vec::new();
    let mut out = Vec::new();
    for original in starts {
        seen.push(original.timestamp());
        if let Some(i) = occurrence(ev, original) {
            if i.overlaps(ws, we) {
                out.push(i);
            }
        }
    }
    // Exceptions moved into the window from an occurrence after it.
    for (ts, o) in &ev.overrides {
        if seen.contains(ts) || !matches!(o, Override::Modified { .. }) {
            continue;
        }
        if let Some(original) = Utc.timestamp_opt(*ts, 0).single() {
            if let Some(i) = occurrence(ev, original) {
                if i.overlaps(ws, we) {
                    out.push(i);
                }
            }
        }
    }
    out
}

/// Every instance of a calendar overlapping `[ws, we)`, by start time.
pub(crate) fn calendar_instances(
    cal: &MCal,
    ws: DateTime<Utc>,
    we: DateTime<Utc>,
) -> Vec<Instance> {
    let mut out: Vec<Instance> = cal
        .events
        .values()
        .flat_map(|ev| event_instances(ev, ws, we))
        .collect();
    out.sort_by(|a, b| a.start().cmp(&b.start()).then_with(|| a.id.cmp(&b.id)));
    out
}

/// How the caller asked Graph to answer (`Prefer` headers and OData
/// options).
#[derive(Debug, Clone, Default)]
pub(crate) struct Prefs {
    /// `Prefer: outlook.timezone`: the zone and the label to write.
    pub tz: Option<(Tz, String)>,
    /// `Prefer: outlook.body-content-type="text"`.
    pub body_text: bool,
    /// `$expand=singleValueExtendedProperties(...)`: the ids to return
    /// (empty means all).
    pub expand_svep: Option<Vec<String>>,
    /// `$select`, lower-cased.
    pub select: Option<Vec<String>>,
}

/// Who owns the mailbox, for `organizer`.
pub(crate) struct Owner<'a> {
    pub name: &'a str,
    pub address: &'a str,
}

fn render_time(t: &MTime, all_day: bool, prefs: &Prefs) -> Value {
    let label = prefs
        .tz
        .as_ref()
        .map(|(_, l)| l.clone())
        .unwrap_or_else(|| "UTC".to_string());
    let local = if all_day {
        // All-day events are dates: midnight to midnight in any zone.
        t.local.date().and_time(NaiveTime::MIN)
    } else {
        let zone = prefs.tz.as_ref().map(|(z, _)| *z).unwrap_or(Tz::UTC);
        utc_to_local(zone, t.instant())
    };
    json!({"dateTime": graph_local(local), "timeZone": label})
}

fn full_location(loc: &Value) -> Value {
    let mut m = Map::new();
    m.insert("displayName".into(), json!(""));
    m.insert("locationType".into(), json!("default"));
    m.insert("uniqueIdType".into(), json!("unknown"));
    m.insert("address".into(), json!({}));
    m.insert("coordinates".into(), json!({}));
    if let Value::Object(given) = loc {
        for (k, v) in given {
            m.insert(k.clone(), v.clone());
        }
    }
    Value::Object(m)
}

/// HTML → text, enough for `bodyPreview` and `body-content-type="text"`.
pub(crate) fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    let mut tag = String::new();
    let mut skip = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                tag.clear();
            }
            '>' if in_tag => {
                in_tag = false;
                let t = tag.trim().to_ascii_lowercase();
                let name: String = t
                    .trim_start_matches('/')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                if name == "head" || name == "style" || name == "script" {
                    skip = !t.starts_with('/');
                }
                if ["br", "p", "div", "tr", "li"].contains(&name.as_str())
                    && t.starts_with('/') == (name != "br")
                {
                    out.push('\n');
                }
            }
            _ if in_tag => tag.push(c),
            _ if skip => {}
            '\r' => {}
            '\n' => out.push(' '),
            _ => out.push(c),
        }
    }
    let lines: Vec<&str> = out.split('\n').map(str::trim).collect();
    lines
        .join("\n")
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .trim()
        .to_string()
}

/// Text → the HTML document Graph returns for a text body.
pub(crate) fn text_to_html(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace("\r\n", "\n")
        .replace('\n', "<br>\r\n");
    format!("<html>\r\n<head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body>\r\n{escaped}\r\n</body>\r\n</html>\r\n")
}

fn body_json(c: &MContent, prefs: &Prefs) -> (Value, String) {
    let is_html = c.body_type.eq_ignore_ascii_case("html");
    let text = if is_html {
        html_to_text(&c.body)
    } else {
        c.body.clone()
    };
    let preview: String = text.chars().take(255).collect();
    let body = if prefs.body_text {
        json!({"contentType": "text", "content": text})
    } else if is_html {
        json!({"contentType": "html", "content": c.body})
    } else if c.body.is_empty() {
        json!({"contentType": "html", "content": ""})
    } else {
        json!({"contentType": "html", "content": text_to_html(&c.body)})
    };
    (body, preview)
}

#[allow(clippy::too_many_arguments)]
fn render_common(
    id: &str,
    kind: &str,
    c: &MContent,
    ical_uid: &str,
    created: DateTime<Utc>,
    last_modified: DateTime<Utc>,
    change_key: &str,
    transaction_id: Option<&str>,
    owner: &Owner<'_>,
    prefs: &Prefs,
) -> Map<String, Value> {
    let (body, preview) = body_json(c, prefs);
    let location = full_location(&c.location);
    let locations = if location["displayName"]
        .as_str()
        .is_some_and(|s| !s.is_empty())
    {
        json!([location.clone()])
    } else {
        json!([])
    };
    let mut m = Map::new();
    m.insert("@odata.etag".into(), json!(format!("W/\"{change_key}\"")));
    m.insert("id".into(), json!(id));
    m.insert("createdDateTime".into(), json!(graph_stamp(created)));
    m.insert(
        "lastModifiedDateTime".into(),
        json!(graph_stamp(last_modified)),
    );
    m.insert("changeKey".into(), json!(change_key));
    m.insert("categories".into(), c.categories.clone());
    m.insert("transactionId".into(), json!(transaction_id));
    m.insert(
        "originalStartTimeZone".into(),
        json!(windows_name(c.start.tz)),
    );
    m.insert("originalEndTimeZone".into(), json!(windows_name(c.end.tz)));
    m.insert("iCalUId".into(), json!(ical_uid));
    m.insert(
        "reminderMinutesBeforeStart".into(),
        json!(c.reminder_minutes),
    );
    m.insert("isReminderOn".into(), json!(c.is_reminder_on));
    m.insert("hasAttachments".into(), json!(false));
    m.insert("subject".into(), json!(c.subject));
    m.insert("bodyPreview".into(), json!(preview));
    m.insert("importance".into(), json!(c.importance));
    m.insert("sensitivity".into(), json!(c.sensitivity));
    m.insert("isAllDay".into(), json!(c.is_all_day));
    m.insert("isCancelled".into(), json!(c.is_cancelled));
    m.insert("isOrganizer".into(), json!(true));
    m.insert("responseRequested".into(), json!(true));
    m.insert("seriesMasterId".into(), Value::Null);
    m.insert("showAs".into(), json!(c.show_as));
    m.insert("type".into(), json!(kind));
    m.insert(
        "webLink".into(),
        json!(format!(
            "https://outlook.office365.com/owa/?itemid={}&exvsurl=1&path=/calendar/item",
            percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
        )),
    );
    m.insert("onlineMeetingUrl".into(), Value::Null);
    m.insert("isOnlineMeeting".into(), json!(false));
    m.insert("onlineMeetingProvider".into(), json!("unknown"));
    m.insert("allowNewTimeProposals".into(), json!(true));
    m.insert("isDraft".into(), json!(false));
    m.insert("hideAttendees".into(), json!(false));
    m.insert(
        "responseStatus".into(),
        json!({"response": "organizer", "time": "0001-01-01T00:00:00Z"}),
    );
    m.insert("body".into(), body);
    m.insert("start".into(), render_time(&c.start, c.is_all_day, prefs));
    m.insert("end".into(), render_time(&c.end, c.is_all_day, prefs));
    m.insert("location".into(), location);
    m.insert("locations".into(), locations);
    m.insert("recurrence".into(), Value::Null);
    m.insert("attendees".into(), c.attendees.clone());
    m.insert(
        "organizer".into(),
        json!({"emailAddress": {"name": owner.name, "address": owner.address}}),
    );
    m.insert("onlineMeeting".into(), Value::Null);
    if let Some(filter) = &prefs.expand_svep {
        let props: Vec<Value> = c
            .svep
            .iter()
            .filter(|(pid, _)| filter.is_empty() || filter.iter().any(|f| same_property_id(f, pid)))
            .map(|(pid, v)| json!({"id": pid, "value": v}))
            .collect();
        m.insert(
            "singleValueExtendedProperties@odata.context".into(),
            json!("singleValueExtendedProperties"),
        );
        m.insert("singleValueExtendedProperties".into(), Value::Array(props));
    }
    m
}

/// Extended property ids compare case-insensitively, ignoring spacing.
pub(crate) fn same_property_id(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

fn apply_select(mut m: Map<String, Value>, prefs: &Prefs) -> Value {
    if let Some(sel) = &prefs.select {
        m.retain(|k, _| {
            k.starts_with('@')
                || k == "id"
                || k.starts_with("singleValueExtendedProperties")
                || sel.iter().any(|s| s.eq_ignore_ascii_case(k))
        });
    }
    Value::Object(m)
}

/// Renders a view item (single instance, occurrence or exception).
pub(crate) fn render_instance(i: &Instance, owner: &Owner<'_>, prefs: &Prefs) -> Value {
    let kind = match i.kind {
        InstanceKind::Single => "singleInstance",
        InstanceKind::Occurrence => "occurrence",
        InstanceKind::Exception => "exception",
    };
    let mut m = render_common(
        &i.id,
        kind,
        &i.content,
        &i.ical_uid,
        i.created,
        i.last_modified,
        &i.change_key,
        i.transaction_id.as_deref(),
        owner,
        prefs,
    );
    if let Some(master) = &i.master_id {
        m.insert("seriesMasterId".into(), json!(master));
    }
    if let Some(o) = i.original_start {
        m.insert(
            "originalStart".into(),
            json!(o.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        );
    }
    apply_select(m, prefs)
}

/// Renders a stored event as `GET /me/events/{id}` returns it (a single
/// instance or a series master with its `recurrence`).
pub(crate) fn render_event(ev: &MEvent, owner: &Owner<'_>, prefs: &Prefs) -> Value {
    let kind = if ev.recurrence.is_some() {
        "seriesMaster"
    } else {
        "singleInstance"
    };
    let mut m = render_common(
        &ev.id,
        kind,
        &ev.content,
        &ev.ical_uid,
        ev.created,
        ev.last_modified,
        &ev.change_key(),
        ev.transaction_id.as_deref(),
        owner,
        prefs,
    );
    if let Some(r) = &ev.recurrence {
        m.insert(
            "recurrence".into(),
            r.render(&windows_name(ev.content.start.tz)),
        );
    }
    apply_select(m, prefs)
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, GraphError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(GraphError::bad_request(&format!(
            "Invalid value for property '{key}'."
        ))),
    }
}

fn enum_field(
    obj: &Map<String, Value>,
    key: &str,
    allowed: &[&str],
) -> Result<Option<String>, GraphError> {
    match str_field(obj, key)? {
        None => Ok(None),
        Some(s) => allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(s))
            .map(|a| Some(a.to_string()))
            .ok_or_else(|| {
                GraphError::bad_request(&format!(
                    "Requested value '{s}' was not found for property '{key}'."
                ))
            }),
    }
}

/// Default content for a new event.
pub(crate) fn empty_content() -> MContent {
    let now = Utc::now().naive_utc();
    MContent {
        subject: String::new(),
        body_type: "text".into(),
        body: String::new(),
        start: MTime {
            local: now,
            tz: Tz::UTC,
        },
        end: MTime {
            local: now,
            tz: Tz::UTC,
        },
        is_all_day: false,
        location: json!({"displayName": ""}),
        sensitivity: "normal".into(),
        show_as: "busy".into(),
        importance: "normal".into(),
        categories: json!([]),
        attendees: json!([]),
        is_reminder_on: true,
        reminder_minutes: 15,
        is_cancelled: false,
        svep: Vec::new(),
    }
}

/// Applies the writable properties of a create/update body to `c`.
/// Returns which of start/end changed.
pub(crate) fn apply_body(c: &mut MContent, obj: &Map<String, Value>) -> Result<bool, GraphError> {
    let mut times_changed = false;
    if let Some(s) = str_field(obj, "subject")? {
        c.subject = s.to_string();
    }
    if let Some(b) = obj.get("body").filter(|b| !b.is_null()) {
        let kind = b
            .get("contentType")
            .and_then(Value::as_str)
            .unwrap_or("text");
        c.body_type = if kind.eq_ignore_ascii_case("html") {
            "html"
        } else {
            "text"
        }
        .into();
        c.body = b
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
    }
    if let Some(v) = obj.get("start").filter(|v| !v.is_null()) {
        c.start = MTime::parse(v, "start")?;
        times_changed = true;
    }
    if let Some(v) = obj.get("end").filter(|v| !v.is_null()) {
        c.end = MTime::parse(v, "end")?;
        times_changed = true;
    }
    if let Some(v) = obj.get("isAllDay").filter(|v| !v.is_null()) {
        c.is_all_day = v
            .as_bool()
            .ok_or_else(|| GraphError::bad_request("Invalid value for property 'isAllDay'."))?;
        times_changed = true;
    }
    if let Some(v) = obj.get("location") {
        c.location = if v.is_null() {
            json!({"displayName": ""})
        } else {
            v.clone()
        };
    }
    if let Some(s) = enum_field(
        obj,
        "sensitivity",
        &["normal", "personal", "private", "confidential"],
    )? {
        c.sensitivity = s;
    }
    if let Some(s) = enum_field(
        obj,
        "showAs",
        &[
            "free",
            "tentative",
            "busy",
            "oof",
            "workingElsewhere",
            "unknown",
        ],
    )? {
        c.show_as = s;
    }
    if let Some(s) = enum_field(obj, "importance", &["low", "normal", "high"])? {
        c.importance = s;
    }
    if let Some(v) = obj.get("categories") {
        c.categories = if v.is_null() { json!([]) } else { v.clone() };
    }
    if let Some(v) = obj.get("attendees") {
        c.attendees = if v.is_null() { json!([]) } else { v.clone() };
    }
    if let Some(v) = obj.get("isReminderOn").and_then(Value::as_bool) {
        c.is_reminder_on = v;
    }
    if let Some(v) = obj
        .get("reminderMinutesBeforeStart")
        .and_then(Value::as_i64)
    {
        c.reminder_minutes = v;
    }
    if let Some(Value::Array(props)) = obj.get("singleValueExtendedProperties") {
        for p in props {
            let (Some(pid), Some(val)) = (
                p.get("id").and_then(Value::as_str),
                p.get("value").and_then(Value::as_str),
            ) else {
                return Err(GraphError::bad_request(
                    "A singleValueExtendedProperty needs an id and a value.",
                ));
            };
            match c.svep.iter_mut().find(|(k, _)| same_property_id(k, pid)) {
                Some(slot) => slot.1 = val.to_string(),
                None => c.svep.push((pid.to_string(), val.to_string())),
            }
        }
    }
    validate_times(c)?;
    Ok(times_changed)
}

/// Checks end ≥ start, and that an all-day event runs midnight to midnight.
pub(crate) fn validate_times(c: &MContent) -> Result<(), GraphError> {
    if c.end.instant() < c.start.instant() {
        return Err(GraphError::bad_request(
            "The end time of the event must be after its start time.",
        ));
    }
    if c.is_all_day {
        let midnight = |t: &MTime| t.local.time() == NaiveTime::MIN;
        if !midnight(&c.start) || !midnight(&c.end) || c.end.local.date() <= c.start.local.date() {
            return Err(GraphError::bad_request(
                "Your request can't be completed. If the event is an all-day event, its start and end must be at midnight and at least one day apart.",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_convert_both_ways() {
        let html = text_to_html("a < b\nnext");
        assert!(html.contains("a &lt; b<br>"));
        assert_eq!(html_to_text(&html), "a < b\nnext");
        assert_eq!(
            html_to_text(
                "<html><head><style>p{}</style></head><body><p>Hi&nbsp;there</p></body></html>"
            ),
            "Hi there"
        );
    }

    #[test]
    fn all_day_must_be_midnight() {
        let mut c = empty_content();
        let body = json!({
            "isAllDay": true,
            "start": {"dateTime": "2026-03-02T00:00:00", "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": "2026-03-03T00:00:00", "timeZone": "Pacific Standard Time"}
        });
        apply_body(&mut c, body.as_object().unwrap()).unwrap();
        assert_eq!(c.start.tz, Tz::America__Los_Angeles);
        let bad = json!({"start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"}});
        assert!(apply_body(&mut c, bad.as_object().unwrap()).is_err());
    }

    #[test]
    fn property_ids_compare_loosely() {
        assert!(same_property_id(
            "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name Color",
            "string  {66F5A359-4659-4830-9070-00047EC6AC6E} name color"
        ));
    }
}
