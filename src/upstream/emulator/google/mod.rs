//! The Google Calendar API v3 front, under `/calendar/v3/`.
//!
//! Owns: calendarList (list with paging and sync tokens, get), calendars.get,
//! events list/get/insert/patch/update/delete/instances, and freeBusy — with
//! Google's paging (`nextSyncToken` only on the last page), incremental sync
//! over a per-calendar change log, soft deletes, exceptions as separate
//! events, conditional requests, and Google's error shapes. Recurrence
//! expansion comes from [`recur::expand_google_series`] only.

pub(crate) mod model;
pub(crate) mod recur;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::errors::{json_body, json_ok, GoogleError};
use super::ids;
use super::state::{Emulator, GPage, GSyncToken, Grant, Provider, State as World, UserKey};
use super::time::{google_date_time, google_stamp, iana_zone, parse_rfc3339};
use model::{
    has_extended_property, instance_id, matches_query, merge_patch, parse_event, parse_instance_id,
    render_cancelled, render_event, render_virtual, GCal, GEvent, RenderCtx,
};
use recur::InstanceStart;

type GResult = Result<Response, GoogleError>;

const LIST_SCOPES: &[&str] = &[
    "calendar",
    "calendar.readonly",
    "calendar.calendarlist",
    "calendar.calendarlist.readonly",
];
const CAL_SCOPES: &[&str] = &[
    "calendar",
    "calendar.readonly",
    "calendar.calendars",
    "calendar.calendars.readonly",
];
const READ_SCOPES: &[&str] = &[
    "calendar",
    "calendar.readonly",
    "calendar.events",
    "calendar.events.readonly",
    "calendar.events.owned",
    "calendar.events.owned.readonly",
];
const WRITE_SCOPES: &[&str] = &["calendar", "calendar.events", "calendar.events.owned"];
const FREEBUSY_SCOPES: &[&str] = &[
    "calendar",
    "calendar.readonly",
    "calendar.events",
    "calendar.events.readonly",
    "calendar.events.freebusy",
    "calendar.freebusy",
];

/// Instances one series yields at most in a list without `timeMax`.
const SERIES_CAP: usize = 2500;

/// The Google Calendar routes.
pub(crate) fn routes() -> Router<Arc<Emulator>> {
    Router::new()
        .route("/calendar/v3/users/me/calendarList", get(calendar_list))
        .route(
            "/calendar/v3/users/me/calendarList/{calendarId}",
            get(calendar_list_entry),
        )
        .route("/calendar/v3/calendars/{calendarId}", get(calendar_get))
        .route(
            "/calendar/v3/calendars/{calendarId}/events",
            get(events_list).post(events_insert),
        )
        .route(
            "/calendar/v3/calendars/{calendarId}/events/{eventId}",
            get(events_get)
                .patch(events_patch)
                .put(events_update)
                .delete(events_delete),
        )
        .route(
            "/calendar/v3/calendars/{calendarId}/events/{eventId}/instances",
            get(events_instances),
        )
        .route("/calendar/v3/freeBusy", post(free_busy))
}

/// Query parameters, repeatable, in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<String>) -> Params {
        Params(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, GoogleError> {
        match self.get(key) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(GoogleError::invalid(&format!(
                "Invalid value '{v}'. Values must match the following regular expression: 'true|false'"
            ))
            .at("parameter", key)),
        }
    }

    fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, GoogleError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_rfc3339(v)
                .map(|t| Some(t.with_timezone(&Utc)))
                .ok_or_else(|| GoogleError::bad_request("Bad Request").at("parameter", key)),
        }
    }

    fn max_results(&self, default: usize, max: usize) -> Result<usize, GoogleError> {
        match self.get("maxResults") {
            None => Ok(default),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 1 => Ok((n as usize).min(max)),
                _ => Err(GoogleError::invalid(&format!("Invalid value '{v}'."))
                    .at("parameter", "maxResults")),
            },
        }
    }

    fn zone(&self) -> Result<Option<Tz>, GoogleError> {
        match self.get("timeZone") {
            None => Ok(None),
            Some(z) => iana_zone(z).map(Some).ok_or_else(|| {
                GoogleError::invalid("Invalid time zone.").at("parameter", "timeZone")
            }),
        }
    }
}

/// The base URL links are written with.
pub(crate) fn base_url(st: &World, headers: &HeaderMap) -> String {
    if let Some(b) = &st.config.base_url {
        return b.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn authenticate(st: &World, headers: &HeaderMap, scopes: &[&str]) -> Result<Grant, GoogleError> {
    let grant = st
        .authenticate(Provider::Google, headers)
        .map_err(|_| GoogleError::auth())?;
    if !grant.has_any(scopes) {
        return Err(GoogleError::insufficient_scope());
    }
    Ok(grant)
}

/// Resolves `primary` and checks the calendar belongs to the caller.
fn calendar_id(st: &World, user: &UserKey, raw: &str) -> Result<String, GoogleError> {
    let id = if raw == "primary" {
        st.user(user)
            .and_then(|u| u.calendars.first().cloned())
            .ok_or_else(GoogleError::not_found)?
    } else {
        raw.to_string()
    };
    match st.gcals.get(&id) {
        Some(c) if &c.owner == user => Ok(id),
        _ => Err(GoogleError::not_found()),
    }
}

fn owner_of(st: &World, cal: &GCal) -> (String, String) {
    let name = st
        .user(&cal.owner)
        .map(|u| u.display_name.clone())
        .unwrap_or_default();
    (cal.owner.1.clone(), name)
}

fn parse_json(body: &Bytes) -> Result<Value, GoogleError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|_| GoogleError::parse_error())
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// True when an `If-Match`/`If-None-Match` value names `etag` (or `*`).
fn etag_matches(header_value: &str, etag: &str) -> bool {
    header_value
        .split(',')
        .map(|s| s.trim().trim_start_matches("W/"))
        .any(|s| s == "*" || s == etag)
}

// ---------------------------------------------------------------- calendars

fn list_entry(cal: &GCal) -> Value {
    let mut v = json!({
        "kind": "calendar#calendarListEntry",
        "etag": format!("\"{}\"", cal.etag_num),
        "id": cal.id,
        "summary": cal.summary,
        "timeZone": cal.time_zone,
        "colorId": cal.color_id,
        "backgroundColor": cal.background_color,
        "foregroundColor": cal.foreground_color,
        "selected": true,
        "accessRole": "owner",
        "defaultReminders": [{"method": "popup", "minutes": 10}],
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    });
    if let Some(d) = &cal.description {
        v["description"] = json!(d);
    }
    if cal.primary {
        v["primary"] = json!(true);
        v["notificationSettings"] = json!({"notifications": [
            {"type": "eventCreation", "method": "email"},
            {"type": "eventChange", "method": "email"},
            {"type": "eventCancellation", "method": "email"},
            {"type": "eventResponse", "method": "email"}
        ]});
    }
    v
}

async fn calendar_list(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> GResult {
    let p = Params::parse(q);
    let mut st = emu.lock();
    let grant = authenticate(&st, &headers, LIST_SCOPES)?;
    let list_key = format!("calendarList:{}", grant.user.1);
    if let Some(token) = p.get("pageToken") {
        return next_page(
            &mut st,
            token,
            &list_key,
            "calendar#calendarList",
            json!({}),
        );
    }
    let max = p.max_results(100, 250)?;
    let since = match p.get("syncToken") {
        None => None,
        Some(t) => match st.g_sync.get(t) {
            Some(s) if s.calendar == list_key => Some(s.seq),
            _ => return Err(GoogleError::full_sync_required()),
        },
    };
    let user = st
        .user(&grant.user)
        .cloned()
        .ok_or_else(GoogleError::auth)?;
    let mut items = Vec::new();
    let mut newest = 0;
    for id in &user.calendars {
        if let Some(cal) = st.gcals.get(id) {
            newest = newest.max(cal.list_seq);
            if since.is_none_or(|s| cal.list_seq > s) {
                items.push(list_entry(cal));
            }
        }
    }
    let sync = sync_token(&mut st, &list_key, newest, 0);
    paged(
        &mut st,
        &list_key,
        "calendar#calendarList",
        json!({}),
        items,
        max,
        Some(sync),
    )
}

async fn calendar_list_entry(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path(calendar): Path<String>,
) -> GResult {
    let st = emu.lock();
    let grant = authenticate(&st, &headers, LIST_SCOPES)?;
    let id = calendar_id(&st, &grant.user, &calendar)?;
    Ok(json_ok(&list_entry(&st.gcals[&id])))
}

async fn calendar_get(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path(calendar): Path<String>,
) -> GResult {
    let st = emu.lock();
    let grant = authenticate(&st, &headers, CAL_SCOPES)?;
    let id = calendar_id(&st, &grant.user, &calendar)?;
    let cal = &st.gcals[&id];
    let mut v = json!({
        "kind": "calendar#calendar",
        "etag": format!("\"{}\"", cal.etag_num),
        "id": cal.id,
        "summary": cal.summary,
        "timeZone": cal.time_zone,
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    });
    if let Some(d) = &cal.description {
        v["description"] = json!(d);
    }
    Ok(json_ok(&v))
}

// ------------------------------------------------------------ paging, sync

/// The sync token for `(key, seq)`: the same string for the same state.
fn sync_token(st: &mut World, key: &str, seq: u64, epoch: u64) -> String {
    if let Some(t) = st.g_sync_index.get(&(key.to_string(), seq, epoch)) {
        return t.clone();
    }
    let t = format!("CP{}", ids::opaque(24));
    st.g_sync.insert(
        t.clone(),
        GSyncToken {
            calendar: key.to_string(),
            seq,
            epoch,
        },
    );
    st.g_sync_index
        .insert((key.to_string(), seq, epoch), t.clone());
    t
}

/// Answers the first page of a result and keeps the rest behind a page
/// token; the sync token only goes out with the last page.
fn paged(
    st: &mut World,
    key: &str,
    kind: &str,
    envelope: Value,
    mut items: Vec<Value>,
    page_size: usize,
    next_sync: Option<String>,
) -> GResult {
    let rest = if items.len() > page_size {
        items.split_off(page_size)
    } else {
        Vec::new()
    };
    let mut v = envelope;
    v["kind"] = json!(kind);
    v["etag"] = json!(format!("\"p{}\"", st.next_etag()));
    if rest.is_empty() {
        if let Some(s) = next_sync {
            v["nextSyncToken"] = json!(s);
        }
    } else {
        let token = ids::opaque(32);
        st.remember_google_page(
            token.clone(),
            GPage {
                calendar: key.to_string(),
                items: rest,
                page_size,
                next_sync,
            },
        );
        v["nextPageToken"] = json!(token);
    }
    v["items"] = Value::Array(items);
    Ok(json_ok(&v))
}

fn next_page(st: &mut World, token: &str, key: &str, kind: &str, envelope: Value) -> GResult {
    let page = match st.g_pages.remove(token) {
        Some(p) if p.calendar == key => p,
        _ => {
            return Err(
                GoogleError::invalid("Invalid page token value.").at("parameter", "pageToken")
            )
        }
    };
    paged(
        st,
        key,
        kind,
        envelope,
        page.items,
        page.page_size,
        page.next_sync,
    )
}

// ------------------------------------------------------------------ events

/// The `events.list` parameters that matter for filtering.
struct ListQuery {
    show_deleted: bool,
    single_events: bool,
    time_min: Option<DateTime<Utc>>,
    time_max: Option<DateTime<Utc>>,
    updated_min: Option<DateTime<Utc>>,
    q: Option<String>,
    ical_uid: Option<String>,
    private_props: Vec<String>,
    shared_props: Vec<String>,
    order_by: Option<String>,
}

struct Entry {
    start: DateTime<Utc>,
    updated: DateTime<Utc>,
    created: u64,
    id: String,
    value: Value,
}

fn in_range(start: DateTime<Utc>, end: DateTime<Utc>, q: &ListQuery) -> bool {
    q.time_min
        .is_none_or(|m| end > m || (start == end && start >= m))
        && q.time_max.is_none_or(|m| start < m)
}

fn calendar_envelope(cal: &GCal, display: Option<Tz>) -> Value {
    json!({
        "summary": cal.summary,
        "description": cal.description.clone().unwrap_or_default(),
        "updated": google_stamp(cal.last_change),
        "timeZone": display.map(|z| z.name().to_string()).unwrap_or_else(|| cal.time_zone.clone()),
        "accessRole": "owner",
        "defaultReminders": [{"method": "popup", "minutes": 10}],
    })
}

/// Selects and renders the events of one `events.list` answer. `since` is
/// the change sequence of an incremental sync.
fn collect(
    cal: &GCal,
    q: &ListQuery,
    since: Option<u64>,
    ctx: &RenderCtx<'_>,
    now: DateTime<Utc>,
) -> Vec<Entry> {
    let tz = cal.tz();
    let incremental = since.is_some();
    let horizon = q.time_max.unwrap_or(now + Duration::days(730));
    let mut out = Vec::new();
    for ev in cal.events.values() {
        if since.is_some_and(|s| ev.updated_seq <= s) {
            continue;
        }
        if !incremental {
            if q.ical_uid.as_deref().is_some_and(|u| u != ev.ical_uid) {
                continue;
            }
            if !q
                .private_props
                .iter()
                .all(|f| has_extended_property(ev, "private", f))
                || !q
                    .shared_props
                    .iter()
                    .all(|f| has_extended_property(ev, "shared", f))
            {
                continue;
            }
            if q.q.as_deref().is_some_and(|text| !matches_query(ev, text)) {
                continue;
            }
            if q.updated_min.is_some_and(|m| ev.updated < m) {
                continue;
            }
        }
        let deleted_visible = incremental || q.show_deleted || q.updated_min.is_some();
        let (start, end) = (ev.start.instant(tz), ev.end.instant(tz));
        let entry = |value: Value, start: DateTime<Utc>| Entry {
            start,
            updated: ev.updated,
            created: ev.created_seq,
            id: ev.id.clone(),
            value,
        };
        if q.single_events && ev.is_master() {
            for inst in ev.instances(tz, horizon, SERIES_CAP) {
                let id = instance_id(&ev.id, inst);
                if cal.events.contains_key(&id) {
                    continue; // the exception stands for this instance
                }
                if ev.is_cancelled() && !deleted_visible {
                    continue;
                }
                let (s, e) = ev.instance_times(inst);
                let (s, e) = (s.instant(tz), e.instant(tz));
                if !incremental && !in_range(s, e, q) {
                    continue;
                }
                out.push(Entry {
                    start: s,
                    updated: ev.updated,
                    created: ev.created_seq,
                    id,
                    value: render_virtual(ev, inst, ctx),
                });
            }
            continue;
        }
        if ev.is_cancelled() {
            // Cancelled exceptions come back even without showDeleted when
            // series are not expanded, as Google does.
            let exception_of_series = ev.recurring_event_id.is_some() && !q.single_events;
            if !deleted_visible && !exception_of_series {
                continue;
            }
        }
        let overlaps = if ev.is_master() {
            q.time_max.is_none_or(|m| start < m)
                && q.time_min
                    .is_none_or(|m| ev.series_end(tz).is_none_or(|e| e > m))
        } else {
            in_range(start, end, q)
        };
        if !incremental && !overlaps {
            continue;
        }
        let value = if ev.is_cancelled() {
            render_cancelled(ev, ctx)
        } else {
            render_event(ev, ctx)
        };
        out.push(entry(value, start));
    }
    match q.order_by.as_deref() {
        Some("startTime") => out.sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id))),
        Some("updated") => out.sort_by(|a, b| a.updated.cmp(&b.updated).then(a.id.cmp(&b.id))),
        _ if q.single_events => out.sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id))),
        _ => out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id))),
    }
    out
}

async fn events_list(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path(calendar): Path<String>,
    RawQuery(raw): RawQuery,
) -> GResult {
    let p = Params::parse(raw);
    let mut st = emu.lock();
    let grant = authenticate(&st, &headers, READ_SCOPES)?;
    let cal_id = calendar_id(&st, &grant.user, &calendar)?;
    let display = p.zone()?;
    let envelope = calendar_envelope(&st.gcals[&cal_id], display);
    if let Some(token) = p.get("pageToken") {
        return next_page(&mut st, token, &cal_id, "calendar#events", envelope);
    }
    let max = p.max_results(250, 2500)?;
    let q = ListQuery {
        show_deleted: p.bool("showDeleted")?.unwrap_or(false),
        single_events: p.bool("singleEvents")?.unwrap_or(false),
        time_min: p.time("timeMin")?,
        time_max: p.time("timeMax")?,
        updated_min: p.time("updatedMin")?,
        q: p.get("q").map(str::to_string),
        ical_uid: p.get("iCalUID").map(str::to_string),
        private_props: p.all("privateExtendedProperty"),
        shared_props: p.all("sharedExtendedProperty"),
        order_by: p.get("orderBy").map(str::to_string),
    };
    if let Some(o) = &q.order_by {
        if o != "startTime" && o != "updated" {
            return Err(
                GoogleError::invalid(&format!("Invalid value '{o}'.")).at("parameter", "orderBy")
            );
        }
        if o == "startTime" && !q.single_events {
            return Err(GoogleError::bad_request(
                "The requested ordering is not available for the particular query.",
            ));
        }
    }
    if let (Some(a), Some(b)) = (q.time_min, q.time_max) {
        if b <= a {
            return Err(GoogleError::time_range_empty("timeMax"));
        }
    }
    let cal = &st.gcals[&cal_id];
    let since = match p.get("syncToken") {
        None => None,
        Some(token) => {
            for forbidden in [
                "timeMin",
                "timeMax",
                "updatedMin",
                "q",
                "orderBy",
                "iCalUID",
                "privateExtendedProperty",
                "sharedExtendedProperty",
            ] {
                if p.get(forbidden).is_some() {
                    return Err(GoogleError::invalid(&format!(
                        "The syncToken parameter cannot be used together with {forbidden}."
                    ))
                    .at("parameter", "syncToken"));
                }
            }
            match st.g_sync.get(token) {
                Some(t) if t.calendar == cal_id && t.epoch == cal.sync_epoch => Some(t.seq),
                _ => return Err(GoogleError::full_sync_required()),
            }
        }
    };
    let (owner_email, owner_name) = owner_of(&st, cal);
    let base = base_url(&st, &headers);
    let ctx = RenderCtx {
        cal,
        owner_email: &owner_email,
        owner_name: &owner_name,
        display_tz: display,
        base_url: &base,
    };
    let now = st.now();
    let items: Vec<Value> = collect(cal, &q, since, &ctx, now)
        .into_iter()
        .map(|e| e.value)
        .collect();
    let (seq, epoch) = (cal.change_seq, cal.sync_epoch);
    let sync = sync_token(&mut st, &cal_id, seq, epoch);
    paged(
        &mut st,
        &cal_id,
        "calendar#events",
        envelope,
        items,
        max,
        Some(sync),
    )
}

/// Where an event id points: a stored event or a not-yet-changed instance.
enum Target {
    Stored(String),
    Virtual {
        master: String,
        original: InstanceStart,
    },
}

fn resolve(cal: &GCal, event_id: &str) -> Result<Target, GoogleError> {
    if cal.events.contains_key(event_id) {
        return Ok(Target::Stored(event_id.to_string()));
    }
    let (master_id, original) = parse_instance_id(event_id).ok_or_else(GoogleError::not_found)?;
    let master = cal
        .events
        .get(master_id)
        .filter(|m| m.is_master())
        .ok_or_else(GoogleError::not_found)?;
    let tz = cal.tz();
    let until = model::instance_instant(original, tz);
    if !master.instances(tz, until, 200_000).contains(&original) {
        return Err(GoogleError::not_found());
    }
    Ok(Target::Virtual {
        master: master_id.to_string(),
        original,
    })
}

/// Touches the change log: a new sequence, etag and `updated`.
fn bump(st: &mut World, cal_id: &str, ev: &mut GEvent) {
    let seq = st.next_seq();
    let etag = st.next_etag();
    let now = st.now();
    ev.updated_seq = seq;
    ev.etag_num = etag;
    ev.updated = now;
    if let Some(cal) = st.gcals.get_mut(cal_id) {
        cal.change_seq = seq;
        cal.last_change = now;
    }
}

/// Turns an instance into a stored exception, a copy of its master.
fn materialize(st: &mut World, cal_id: &str, master_id: &str, original: InstanceStart) -> String {
    let seq = st.next_seq();
    let etag = st.next_etag();
    let now = st.now();
    let cal = st.gcals.get_mut(cal_id).expect("calendar exists");
    let m = cal.events.get(master_id).expect("master exists").clone();
    let (start, end) = m.instance_times(original);
    let id = instance_id(master_id, original);
    cal.events.insert(
        id.clone(),
        GEvent {
            id: id.clone(),
            ical_uid: m.ical_uid.clone(),
            status: m.status.clone(),
            start,
            end,
            recurrence: Vec::new(),
            recurring_event_id: Some(master_id.to_string()),
            original_start: Some(m.original_start_of(original)),
            fields: m.fields.clone(),
            created: now,
            updated: now,
            etag_num: etag,
            sequence: m.sequence,
            created_seq: seq,
            updated_seq: seq,
        },
    );
    cal.change_seq = seq;
    cal.last_change = now;
    id
}

pub(crate) fn render_stored(
    st: &World,
    cal_id: &str,
    event_id: &str,
    display: Option<Tz>,
    base: &str,
) -> Value {
    let cal = &st.gcals[cal_id];
    let (email, name) = owner_of(st, cal);
    let ctx = RenderCtx {
        cal,
        owner_email: &email,
        owner_name: &name,
        display_tz: display,
        base_url: base,
    };
    render_event(&cal.events[event_id], &ctx)
}

/// Inserts an event into a calendar (also used by the control API).
pub(crate) fn insert_event(
    st: &mut World,
    cal_id: &str,
    body: &Value,
) -> Result<String, GoogleError> {
    let parsed = parse_event(body)?;
    let cal = st.gcals.get(cal_id).ok_or_else(GoogleError::not_found)?;
    let id = match parsed.id {
        Some(id) => {
            if cal.events.contains_key(&id) {
                return Err(GoogleError::duplicate());
            }
            id
        }
        None => loop {
            let id = ids::google_event_id();
            if !cal.events.contains_key(&id) {
                break id;
            }
        },
    };
    let ical_uid = parsed
        .ical_uid
        .unwrap_or_else(|| format!("{id}@google.com"));
    if cal
        .events
        .values()
        .any(|e| e.ical_uid == ical_uid && e.recurring_event_id.is_none() && !e.is_cancelled())
    {
        return Err(GoogleError::duplicate());
    }
    let seq = st.next_seq();
    let etag = st.next_etag();
    let now = st.now();
    let cal = st.gcals.get_mut(cal_id).expect("calendar exists");
    cal.events.insert(
        id.clone(),
        GEvent {
            id: id.clone(),
            ical_uid,
            status: parsed.status,
            start: parsed.start,
            end: parsed.end,
            recurrence: parsed.recurrence,
            recurring_event_id: None,
            original_start: None,
            fields: parsed.fields,
            created: now,
            updated: now,
            etag_num: etag,
            sequence: parsed.sequence.unwrap_or(0).max(0),
            created_seq: seq,
            updated_seq: seq,
        },
    );
    cal.change_seq = seq;
    cal.last_change = now;
    Ok(id)
}

async fn events_insert(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path(calendar): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> GResult {
    let p = Params::parse(raw);
    let body = parse_json(&body)?;
    let mut st = emu.lock();
    let grant = authenticate(&st, &headers, WRITE_SCOPES)?;
    let cal_id = calendar_id(&st, &grant.user, &calendar)?;
    let id = insert_event(&mut st, &cal_id, &body)?;
    let base = base_url(&st, &headers);
    Ok(json_ok(&render_stored(&st, &cal_id, &id, p.zone()?, &base)))
}

async fn events_get(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path((calendar, event_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> GResult {
    let p = Params::parse(raw);
    let st = emu.lock();
    let grant = authenticate(&st, &headers, READ_SCOPES)?;
    let cal_id = calendar_id(&st, &grant.user, &calendar)?;
    let cal = &st.gcals[&cal_id];
    let base = base_url(&st, &headers);
    let display = p.zone()?;
    let (etag, value) = match resolve(cal, &event_id)? {
        Target::Stored(id) => (
            cal.events[&id].etag(),
            render_stored(&st, &cal_id, &id, display, &base),
        ),
        Target::Virtual { master, original } => {
            let (email, name) = owner_of(&st, cal);
            let ctx = RenderCtx {
                cal,
                owner_email: &email,
                owner_name: &name,
                display_tz: display,
                base_url: &base,
            };
            let m = &cal.events[&master];
            (m.etag(), render_virtual(m, original, &ctx))
        }
    };
    if let Some(h) = header_str(&headers, header::IF_NONE_MATCH) {
        if etag_matches(h, &etag) {
            return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
        }
    }
    if let Some(h) = header_str(&headers, header::IF_MATCH) {
        if !etag_matches(h, &etag) {
            return Err(GoogleError::condition_not_met());
        }
    }
    Ok(json_ok(&value))
}

/// Shared body of update (PUT) and patch: the new full body is `build`'s
/// result given the current writable view.
fn modify(
    st: &mut World,
    headers: &HeaderMap,
    cal_id: &str,
    event_id: &str,
    build: impl FnOnce(Value) -> Value,
) -> Result<String, GoogleError> {
    let target = resolve(&st.gcals[cal_id], event_id)?;
    let current_etag = match &target {
        Target::Stored(id) => st.gcals[cal_id].events[id].etag(),
        Target::Virtual { master, .. } => st.gcals[cal_id].events[master].etag(),
    };
    if let Some(h) = header_str(headers, header::IF_MATCH) {
        if !etag_matches(h, &current_etag) {
            return Err(GoogleError::condition_not_met());
        }
    }
    let id = match target {
        Target::Stored(id) => id,
        Target::Virtual { master, original } => {
            // Validate before materializing so a bad body leaves no trace.
            let probe = {
                let cal = &st.gcals[cal_id];
                let m = &cal.events[&master];
                let mut v = m.writable();
                let (s, e) = m.instance_times(original);
                v["start"] = s.render(Tz::UTC, false);
                v["end"] = e.render(Tz::UTC, false);
                if let Some(o) = v.as_object_mut() {
                    o.remove("recurrence");
                }
                build(v)
            };
            let mut parsed = parse_event(&probe)?;
            parsed.recurrence.clear();
            let id = materialize(st, cal_id, &master, original);
            apply(st, cal_id, &id, parsed)?;
            return Ok(id);
        }
    };
    let current = st.gcals[cal_id].events[&id].writable();
    let mut parsed = parse_event(&build(current))?;
    if st.gcals[cal_id].events[&id].recurring_event_id.is_some() {
        parsed.recurrence.clear();
    }
    apply(st, cal_id, &id, parsed)?;
    Ok(id)
}

fn apply(
    st: &mut World,
    cal_id: &str,
    id: &str,
    parsed: model::ParsedEvent,
) -> Result<(), GoogleError> {
    let mut ev = st.gcals[cal_id].events[id].clone();
    let reshaped =
        ev.start != parsed.start || ev.end != parsed.end || ev.recurrence != parsed.recurrence;
    let auto = if reshaped {
        ev.sequence + 1
    } else {
        ev.sequence
    };
    ev.sequence = match parsed.sequence {
        Some(s) if s < ev.sequence => {
            return Err(GoogleError::invalid(
                "Invalid sequence value. The specified sequence number is below the current sequence number of the resource.",
            ))
        }
        Some(s) => s.max(auto),
        None => auto,
    };
    let was_master = ev.is_master();
    ev.status = parsed.status;
    ev.start = parsed.start;
    ev.end = parsed.end;
    ev.recurrence = parsed.recurrence;
    ev.fields = parsed.fields;
    bump(st, cal_id, &mut ev);
    let cancel_series = was_master && ev.is_cancelled();
    st.gcals
        .get_mut(cal_id)
        .expect("calendar exists")
        .events
        .insert(id.to_string(), ev);
    if cancel_series {
        cancel_exceptions(st, cal_id, id);
    }
    Ok(())
}

fn cancel_exceptions(st: &mut World, cal_id: &str, master_id: &str) {
    let ids: Vec<String> = st.gcals[cal_id]
        .events
        .values()
        .filter(|e| e.recurring_event_id.as_deref() == Some(master_id) && !e.is_cancelled())
        .map(|e| e.id.clone())
        .collect();
    for id in ids {
        let mut ev = st.gcals[cal_id].events[&id].clone();
        ev.status = "cancelled".into();
        bump(st, cal_id, &mut ev);
        st.gcals
            .get_mut(cal_id)
            .expect("calendar exists")
            .events
            .insert(id, ev);
    }
}

async fn events_update(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path((calendar, event_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> GResult {
    let p = Params::parse(raw);
    let body = parse_json(&body)?;
    let mut st = emu.lock();
    let grant = authenticate(&st, &headers, WRITE_SCOPES)?;
    let cal_id = calendar_id(&st, &grant.user, &calendar)?;
    let id = modify(&mut st, &headers, &cal_id, &event_id, |_| body)?;
    let base = base_url(&st, &headers);
    Ok(json_ok(&render_stored(&st, &cal_id, &id, p.zone()?, &base)))
}

async fn events_patch(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path((calendar, event_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> GResult {
    let p = Params::parse(raw);
    let body = parse_json(&body)?;
    if !body.is_object() {
        return Err(GoogleError::bad_request(
            "The request body must be a JSON object.",
        ));
    }
    let mut st = emu.lock();
    let grant = authenticate(&st, &headers, WRITE_SCOPES)?;
    let cal_id = calendar_id(&st, &grant.user, &calendar)?;
    let id = modify(&mut st, &headers, &cal_id, &event_id, |mut base| {
        merge_patch(&mut base, &body);
        base
    })?;
    let base = base_url(&st, &headers);
    Ok(json_ok(&render_stored(&st, &cal_id, &id, p.zone()?, &base)))
}

async fn events_delete(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path((calendar, event_id)): Path<(String, String)>,
) -> GResult {
    let mut st = emu.lock();
    let grant = authenticate(&st, &headers, WRITE_SCOPES)?;
    let cal_id = calendar_id(&st, &grant.user, &calendar)?;
    let id = match resolve(&st.gcals[&cal_id], &event_id)? {
        Target::Stored(id) => {
            let ev = &st.gcals[&cal_id].events[&id];
            if ev.is_cancelled() {
                return Err(GoogleError::deleted());
            }
            if let Some(h) = header_str(&headers, header::IF_MATCH) {
                if !etag_matches(h, &ev.etag()) {
                    return Err(GoogleError::condition_not_met());
                }
            }
            id
        }
        Target::Virtual { master, original } => {
            if let Some(h) = header_str(&headers, header::IF_MATCH) {
                if !etag_matches(h, &st.gcals[&cal_id].events[&master].etag()) {
                    return Err(GoogleError::condition_not_met());
                }
            }
            materialize(&mut st, &cal_id, &master, original)
        }
    };
    let mut ev = st.gcals[&cal_id].events[&id].clone();
    let was_master = ev.is_master();
    ev.status = "cancelled".into();
    bump(&mut st, &cal_id, &mut ev);
    st.gcals
        .get_mut(&cal_id)
        .expect("calendar exists")
        .events
        .insert(id.clone(), ev);
    if was_master {
        cancel_exceptions(&mut st, &cal_id, &id);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn events_instances(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path((calendar, event_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> GResult {
    let p = Params::parse(raw);
    let mut st = emu.lock();
    let grant = authenticate(&st, &headers, READ_SCOPES)?;
    let cal_id = calendar_id(&st, &grant.user, &calendar)?;
    let key = format!("{cal_id}\u{1}instances\u{1}{event_id}");
    let display = p.zone()?;
    let cal = &st.gcals[&cal_id];
    let master = cal
        .events
        .get(&event_id)
        .ok_or_else(GoogleError::not_found)?;
    let mut envelope = calendar_envelope(cal, display);
    envelope["summary"] = master.fields.get("summary").cloned().unwrap_or(json!(""));
    if let Some(token) = p.get("pageToken") {
        return next_page(&mut st, token, &key, "calendar#events", envelope);
    }
    let max = p.max_results(250, 2500)?;
    let show_deleted = p.bool("showDeleted")?.unwrap_or(false);
    let time_min = p.time("timeMin")?;
    let time_max = p.time("timeMax")?;
    let original_start = p.get("originalStart").map(str::to_string);
    let q = ListQuery {
        show_deleted,
        single_events: true,
        time_min,
        time_max,
        updated_min: None,
        q: None,
        ical_uid: None,
        private_props: Vec::new(),
        shared_props: Vec::new(),
        order_by: None,
    };
    let (email, name) = owner_of(&st, cal);
    let base = base_url(&st, &headers);
    let ctx = RenderCtx {
        cal,
        owner_email: &email,
        owner_name: &name,
        display_tz: display,
        base_url: &base,
    };
    let tz = cal.tz();
    let mut entries: Vec<(DateTime<Utc>, Value)> = Vec::new();
    if master.is_master() {
        let horizon = time_max.unwrap_or(st.now() + Duration::days(730));
        for inst in master.instances(tz, horizon, SERIES_CAP) {
            let id = instance_id(&master.id, inst);
            let (value, s, e, cancelled) = match cal.events.get(&id) {
                Some(ex) => (
                    if ex.is_cancelled() {
                        render_cancelled(ex, &ctx)
                    } else {
                        render_event(ex, &ctx)
                    },
                    ex.start.instant(tz),
                    ex.end.instant(tz),
                    ex.is_cancelled(),
                ),
                None => {
                    let (s, e) = master.instance_times(inst);
                    (
                        render_virtual(master, inst, &ctx),
                        s.instant(tz),
                        e.instant(tz),
                        master.is_cancelled(),
                    )
                }
            };
            if cancelled && !show_deleted {
                continue;
            }
            if !in_range(s, e, &q) {
                continue;
            }
            if let Some(o) = &original_start {
                let ours = value
                    .get("originalStartTime")
                    .and_then(|v| v.get("dateTime").or(v.get("date")));
                let want = parse_rfc3339(o).map(|t| t.with_timezone(&Utc));
                let matches = match (ours.and_then(Value::as_str), want) {
                    (Some(x), Some(w)) => {
                        parse_rfc3339(x).map(|t| t.with_timezone(&Utc)) == Some(w)
                    }
                    (Some(x), None) => x == o,
                    _ => false,
                };
                if !matches {
                    continue;
                }
            }
            entries.push((s, value));
        }
    }
    entries.sort_by_key(|a| a.0);
    let items = entries.into_iter().map(|(_, v)| v).collect();
    paged(&mut st, &key, "calendar#events", envelope, items, max, None)
}

// ---------------------------------------------------------------- freeBusy

/// Busy intervals of a calendar within `[min, max)`, merged.
fn busy(cal: &GCal, min: DateTime<Utc>, max: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let tz = cal.tz();
    let mut spans = Vec::new();
    let transparent =
        |e: &GEvent| e.fields.get("transparency").and_then(Value::as_str) == Some("transparent");
    for ev in cal.events.values() {
        if ev.is_cancelled() || transparent(ev) {
            continue;
        }
        if ev.is_master() {
            for inst in ev.instances(tz, max, 100_000) {
                if cal.events.contains_key(&instance_id(&ev.id, inst)) {
                    continue;
                }
                let (s, e) = ev.instance_times(inst);
                spans.push((s.instant(tz), e.instant(tz)));
            }
        } else {
            spans.push((ev.start.instant(tz), ev.end.instant(tz)));
        }
    }
    let mut spans: Vec<_> = spans
        .into_iter()
        .filter(|(s, e)| *s < max && *e > min && e > s)
        .map(|(s, e)| (s.max(min), e.min(max)))
        .collect();
    spans.sort();
    let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for (s, e) in spans {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

async fn free_busy(State(emu): State<Arc<Emulator>>, headers: HeaderMap, body: Bytes) -> GResult {
    let body = parse_json(&body)?;
    let st = emu.lock();
    let grant = authenticate(&st, &headers, FREEBUSY_SCOPES)?;
    let time = |key: &str| -> Result<DateTime<Utc>, GoogleError> {
        let s = body.get(key).and_then(Value::as_str).ok_or_else(|| {
            GoogleError::required(&format!("Missing {key}.")).at("parameter", key)
        })?;
        parse_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| GoogleError::invalid(&format!("Invalid {key}.")).at("parameter", key))
    };
    let (min, max) = (time("timeMin")?, time("timeMax")?);
    if max <= min {
        return Err(GoogleError::time_range_empty("timeMax"));
    }
    let tz = match body.get("timeZone").and_then(Value::as_str) {
        Some(z) => iana_zone(z).ok_or_else(|| GoogleError::invalid("Invalid time zone."))?,
        None => Tz::UTC,
    };
    let mut calendars = serde_json::Map::new();
    if let Some(Value::Array(items)) = body.get("items") {
        for item in items {
            let Some(raw) = item.get("id").and_then(Value::as_str) else {
                continue;
            };
            let entry = match calendar_id(&st, &grant.user, raw) {
                Ok(id) => {
                    let periods: Vec<Value> = busy(&st.gcals[&id], min, max)
                        .into_iter()
                        .map(|(s, e)| json!({"start": google_date_time(s, tz), "end": google_date_time(e, tz)}))
                        .collect();
                    json!({"busy": periods})
                }
                Err(_) => {
                    json!({"errors": [{"domain": "global", "reason": "notFound"}], "busy": []})
                }
            };
            calendars.insert(raw.to_string(), entry);
        }
    }
    Ok((
        StatusCode::OK,
        json_body(&json!({
            "kind": "calendar#freeBusy",
            "timeMin": google_date_time(min, tz),
            "timeMax": google_date_time(max, tz),
            "calendars": calendars,
        })),
    )
        .into_response())
}

/// Every event of a Google calendar in full, cancelled ones included, for
/// inspection by tests and the control API.
pub(crate) fn dump_events(st: &World, cal_id: &str, base: &str) -> Option<Vec<Value>> {
    let cal = st.gcals.get(cal_id)?;
    let (email, name) = owner_of(st, cal);
    let ctx = RenderCtx {
        cal,
        owner_email: &email,
        owner_name: &name,
        display_tz: None,
        base_url: base,
    };
    let mut evs: Vec<&GEvent> = cal.events.values().collect();
    evs.sort_by_key(|e| e.created_seq);
    Some(evs.into_iter().map(|e| render_event(e, &ctx)).collect())
}

#[cfg(test)]
mod tests {
    use super::model::GTime;
    use super::*;

    #[test]
    fn etag_headers_match_weak_and_lists() {
        assert!(etag_matches("\"12\"", "\"12\""));
        assert!(etag_matches("W/\"12\", \"13\"", "\"12\""));
        assert!(etag_matches("*", "\"12\""));
        assert!(!etag_matches("\"11\"", "\"12\""));
    }

    #[test]
    fn gtime_kinds() {
        let t = GTime::Date(chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
        assert_eq!(t.render(Tz::UTC, false), json!({"date": "2026-03-02"}));
    }
}
