//! The Microsoft Graph v1.0 calendar front, under `/v1.0/`.
//!
//! Owns: `/me`, calendars, events (create/get/update/delete, by calendar or
//! mailbox-wide), instances, calendarView and calendarView delta — with
//! Graph's `Prefer` handling (`outlook.timezone`, `outlook.body-content-type`,
//! `odata.maxpagesize`, answered in `Preference-Applied`), delta rounds whose
//! window is fixed in the token and which return instances only,
//! `@removed` entries, harmless replays, `transactionId` de-duplication,
//! single-value extended properties, and Graph's error shape.

pub(crate) mod model;
pub(crate) mod recur;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use super::errors::GraphError;
use super::google::base_url;
use super::ids;
use super::state::{
    AuthFailure, DeltaState, Emulator, Grant, MPage, Provider, State as World, UserKey,
};
use super::time::{any_zone, parse_window_bound, windows_name};
use model::{
    apply_body, calendar_instances, empty_content, event_instances, occurrence, render_event,
    render_instance, same_property_id, validate_times, Instance, MCal, MEvent, MTime, Override,
    Owner, Prefs,
};
use recur::Recurrence;

type MResult = Result<Response, GraphError>;

const READ_SCOPES: &[&str] = &[
    "calendars.read",
    "calendars.readwrite",
    "calendars.read.shared",
    "calendars.readwrite.shared",
    "calendars.readbasic",
    ".default",
];
const WRITE_SCOPES: &[&str] = &[
    "calendars.readwrite",
    "calendars.readwrite.shared",
    ".default",
];
const ME_SCOPES: &[&str] = &[
    "user.read",
    "user.readbasic.all",
    "user.read.all",
    "user.readwrite",
    "user.readwrite.all",
    "directory.read.all",
    ".default",
];

/// Default page size of calendarView/instances/event lists ($top).
const DEFAULT_TOP: usize = 10;
/// Default page size of a delta round without `odata.maxpagesize`.
const DEFAULT_DELTA_PAGE: usize = 10;

/// One entry of a delta page.
#[derive(Debug, Clone)]
pub(crate) enum DeltaItem {
    Changed(Box<Instance>),
    Removed(String),
}

/// The Graph routes.
pub(crate) fn routes() -> Router<Arc<Emulator>> {
    Router::new()
        .route("/v1.0/me", get(me))
        .route(
            "/v1.0/me/calendars",
            get(calendars_list).post(calendars_create),
        )
        .route("/v1.0/me/calendars/{calendarId}", get(calendar_get))
        .route("/v1.0/me/calendar", get(default_calendar_get))
        .route(
            "/v1.0/me/events",
            get(events_list_default).post(events_create_default),
        )
        .route(
            "/v1.0/me/calendar/events",
            get(events_list_default).post(events_create_default),
        )
        .route(
            "/v1.0/me/calendars/{calendarId}/events",
            get(events_list_in).post(events_create_in),
        )
        .route(
            "/v1.0/me/events/{eventId}",
            get(event_get).patch(event_patch).delete(event_delete),
        )
        .route(
            "/v1.0/me/calendar/events/{eventId}",
            get(event_get).patch(event_patch).delete(event_delete),
        )
        .route(
            "/v1.0/me/calendars/{calendarId}/events/{eventId}",
            get(event_get_in)
                .patch(event_patch_in)
                .delete(event_delete_in),
        )
        .route("/v1.0/me/events/{eventId}/instances", get(instances))
        .route(
            "/v1.0/me/calendar/events/{eventId}/instances",
            get(instances),
        )
        .route(
            "/v1.0/me/calendars/{calendarId}/events/{eventId}/instances",
            get(instances_in),
        )
        .route("/v1.0/me/calendarView", get(view_default))
        .route("/v1.0/me/calendar/calendarView", get(view_default))
        .route("/v1.0/me/calendars/{calendarId}/calendarView", get(view_in))
        .route("/v1.0/me/calendarView/delta", get(delta_default))
        .route("/v1.0/me/calendar/calendarView/delta", get(delta_default))
        .route(
            "/v1.0/me/calendars/{calendarId}/calendarView/delta",
            get(delta_in),
        )
}

// ------------------------------------------------------------------ plumbing

/// Query parameters; Graph matches their names case-insensitively.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<String>) -> Query {
        Query(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn usize(&self, key: &str) -> Result<Option<usize>, GraphError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                GraphError::new(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("Invalid {key} value '{v}'."),
                )
            }),
        }
    }
}

/// Splits a `Prefer` header into `name=value` pairs, honouring quotes.
fn prefer_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for h in headers.get_all("prefer") {
        let Ok(s) = h.to_str() else { continue };
        let mut parts = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        for c in s.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    cur.push(c);
                }
                ',' | ';' if !quoted => parts.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
        }
        parts.push(cur);
        for p in parts {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            out.push((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            ));
        }
    }
    out
}

/// How to answer: preferences, OData options, and the `Preference-Applied`
/// entries they produced.
struct Answer {
    prefs: Prefs,
    max_page: Option<usize>,
    applied: Vec<String>,
}

fn answer_prefs(headers: &HeaderMap, q: &Query) -> Answer {
    let mut prefs = Prefs::default();
    let mut applied = Vec::new();
    let mut max_page = None;
    for (k, v) in prefer_pairs(headers) {
        match k.as_str() {
            "outlook.timezone" => {
                if let Some(tz) = any_zone(&v) {
                    let label = windows_name(tz);
                    prefs.tz = Some((tz, label));
                    applied.push(format!("outlook.timezone=\"{v}\""));
                }
            }
            "outlook.body-content-type" => {
                prefs.body_text = v.eq_ignore_ascii_case("text");
                applied.push(format!(
                    "outlook.body-content-type=\"{}\"",
                    v.to_ascii_lowercase()
                ));
            }
            "odata.maxpagesize" => {
                if let Ok(n) = v.parse::<usize>() {
                    if n >= 1 {
                        max_page = Some(n.min(1000));
                        applied.push(format!("odata.maxpagesize={}", n.min(1000)));
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(expand) = q.get("$expand") {
        if expand
            .to_ascii_lowercase()
            .contains("singlevalueextendedproperties")
        {
            prefs.expand_svep = Some(quoted_after(expand, "id eq '"));
        }
    }
    if let Some(sel) = q.get("$select") {
        prefs.select = Some(sel.split(',').map(|s| s.trim().to_string()).collect());
    }
    Answer {
        prefs,
        max_page,
        applied,
    }
}

/// Every `'…'` literal that follows `marker` (case-insensitive).
fn quoted_after(s: &str, marker: &str) -> Vec<String> {
    let lower = s.to_ascii_lowercase();
    let marker = marker.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find(&marker) {
        let start = from + i + marker.len();
        match s[start..].find('\'') {
            Some(end) => {
                out.push(s[start..start + end].to_string());
                from = start + end + 1;
            }
            None => break,
        }
    }
    out
}

fn respond(status: StatusCode, v: &Value, applied: &[String]) -> Response {
    let mut r = (status, v.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(
            "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8",
        ),
    );
    if !applied.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&applied.join(", ")) {
            h.insert("preference-applied", v);
        }
    }
    r
}

fn authenticate(st: &World, headers: &HeaderMap, scopes: &[&str]) -> Result<Grant, GraphError> {
    let grant = st
        .authenticate(Provider::Microsoft, headers)
        .map_err(|e| match e {
            AuthFailure::Missing => GraphError::auth("Access token is empty."),
            AuthFailure::Expired => {
                GraphError::auth("Lifetime validation failed, the token is expired.")
            }
            AuthFailure::Unknown => {
                GraphError::auth("Access token validation failure. Invalid audience.")
            }
        })?;
    if !grant.has_any(scopes) {
        return Err(GraphError::access_denied());
    }
    Ok(grant)
}

fn calendar_of(st: &World, user: &UserKey, raw: Option<&str>) -> Result<String, GraphError> {
    match raw {
        None => st
            .user(user)
            .and_then(|u| u.calendars.first().cloned())
            .ok_or_else(GraphError::not_found),
        Some(id) => match st.mcals.get(id) {
            Some(c) if &c.owner == user => Ok(id.to_string()),
            _ => Err(GraphError::not_found()),
        },
    }
}

fn owner_names(st: &World, user: &UserKey) -> (String, String) {
    let name = st
        .user(user)
        .map(|u| u.display_name.clone())
        .unwrap_or_default();
    (name, user.1.clone())
}

fn parse_body(body: &Bytes) -> Result<Map<String, Value>, GraphError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(GraphError::unreadable_body()),
    }
}

/// Compares an `If-Match` value with a change key (`W/"…"` or bare).
fn change_key_matches(header_value: &str, change_key: &str) -> bool {
    header_value.split(',').any(|v| {
        let v = v.trim();
        v == "*" || v.trim_start_matches("W/").trim_matches('"') == change_key
    })
}

fn if_match(headers: &HeaderMap, change_key: &str) -> Result<(), GraphError> {
    match headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        Some(h) if !change_key_matches(h, change_key) => Err(GraphError::irresolvable_conflict()),
        _ => Ok(()),
    }
}

// ------------------------------------------------------------ me, calendars

async fn me(State(emu): State<Arc<Emulator>>, headers: HeaderMap) -> MResult {
    let st = emu.lock();
    let grant = st
        .authenticate(Provider::Microsoft, &headers)
        .map_err(|_| GraphError::auth("Access token validation failure. Invalid audience."))?;
    if !grant.has_any(ME_SCOPES) {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ));
    }
    let u = st.user(&grant.user).ok_or_else(GraphError::not_found)?;
    let mut names = u.display_name.splitn(2, ' ');
    let given = names.next().unwrap_or("").to_string();
    let surname = names.next().unwrap_or("").to_string();
    let base = base_url(&st, &headers);
    Ok(respond(
        StatusCode::OK,
        &json!({
            "@odata.context": format!("{base}/v1.0/$metadata#users/$entity"),
            "businessPhones": [],
            "displayName": u.display_name,
            "givenName": given,
            "jobTitle": null,
            "mail": grant.user.1,
            "mobilePhone": null,
            "officeLocation": null,
            "preferredLanguage": "en-US",
            "surname": surname,
            "userPrincipalName": grant.user.1,
            "id": u.id,
        }),
        &[],
    ))
}

fn calendar_json(st: &World, cal: &MCal) -> Value {
    let (name, address) = owner_names(st, &cal.owner);
    json!({
        "id": cal.id,
        "name": cal.name,
        "color": cal.color,
        "hexColor": cal.hex_color,
        "isDefaultCalendar": cal.is_default,
        "changeKey": ids::change_key(&cal.id, cal.version),
        "canShare": true,
        "canViewPrivateItems": true,
        "canEdit": true,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness",
        "isTallyingResponses": true,
        "isRemovable": !cal.is_default,
        "owner": {"name": name, "address": address},
    })
}

async fn calendars_list(State(emu): State<Arc<Emulator>>, headers: HeaderMap) -> MResult {
    let st = emu.lock();
    let grant = authenticate(&st, &headers, READ_SCOPES)?;
    let base = base_url(&st, &headers);
    let cals: Vec<Value> = st
        .user(&grant.user)
        .map(|u| u.calendars.clone())
        .unwrap_or_default()
        .iter()
        .filter_map(|id| st.mcals.get(id))
        .map(|c| calendar_json(&st, c))
        .collect();
    Ok(respond(
        StatusCode::OK,
        &json!({
            "@odata.context": format!("{base}/v1.0/$metadata#users('{}')/calendars", grant.user.1),
            "value": cals,
        }),
        &[],
    ))
}

async fn calendars_create(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    body: Bytes,
) -> MResult {
    let body = parse_body(&body)?;
    let mut st = emu.lock();
    let grant = authenticate(&st, &headers, WRITE_SCOPES)?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| GraphError::bad_request("The calendar name is required."))?;
    let id = st.add_calendar(&grant.user, name, None, false);
    if let Some(color) = body.get("color").and_then(Value::as_str) {
        if let Some(c) = st.mcals.get_mut(&id) {
            c.color = color.to_string();
        }
    }
    Ok(respond(
        StatusCode::CREATED,
        &calendar_json(&st, &st.mcals[&id]),
        &[],
    ))
}

async fn calendar_get(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path(calendar): Path<String>,
) -> MResult {
    calendar_answer(&emu, &headers, Some(&calendar))
}

async fn default_calendar_get(State(emu): State<Arc<Emulator>>, headers: HeaderMap) -> MResult {
    calendar_answer(&emu, &headers, None)
}

fn calendar_answer(emu: &Emulator, headers: &HeaderMap, calendar: Option<&str>) -> MResult {
    let st = emu.lock();
    let grant = authenticate(&st, headers, READ_SCOPES)?;
    let id = calendar_of(&st, &grant.user, calendar)?;
    Ok(respond(
        StatusCode::OK,
        &calendar_json(&st, &st.mcals[&id]),
        &[],
    ))
}

// ------------------------------------------------------------------ events

/// Where an event id points.
enum Found {
    Event {
        cal: String,
        id: String,
    },
    Occurrence {
        cal: String,
        master: String,
        original: DateTime<Utc>,
    },
}

fn find(st: &World, user: &UserKey, calendar: Option<&str>, id: &str) -> Result<Found, GraphError> {
    let cals: Vec<String> = match calendar {
        Some(c) => vec![calendar_of(st, user, Some(c))?],
        None => st
            .user(user)
            .map(|u| u.calendars.clone())
            .unwrap_or_default(),
    };
    if let Some((master, ts)) = ids::parse_graph_occurrence_id(id) {
        let original = DateTime::from_timestamp(ts, 0).ok_or_else(GraphError::not_found)?;
        for c in &cals {
            let Some(ev) = st.mcals[c].events.get(&master) else {
                continue;
            };
            if ev.deleted || ev.recurrence.is_none() {
                continue;
            }
            if matches!(ev.overrides.get(&ts), Some(Override::Deleted)) {
                return Err(GraphError::not_found());
            }
            if ev.has_occurrence(original) || ev.overrides.contains_key(&ts) {
                return Ok(Found::Occurrence {
                    cal: c.clone(),
                    master,
                    original,
                });
            }
        }
        return Err(GraphError::not_found());
    }
    for c in &cals {
        if st.mcals[c].events.get(id).is_some_and(|e| !e.deleted) {
            return Ok(Found::Event {
                cal: c.clone(),
                id: id.to_string(),
            });
        }
    }
    Err(GraphError::not_found())
}

fn render_found(st: &World, found: &Found, prefs: &Prefs) -> Result<Value, GraphError> {
    let (cal, user) = match found {
        Found::Event { cal, .. } | Found::Occurrence { cal, .. } => (cal, &st.mcals[cal].owner),
    };
    let (name, address) = owner_names(st, user);
    let owner = Owner {
        name: &name,
        address: &address,
    };
    Ok(match found {
        Found::Event { id, .. } => render_event(&st.mcals[cal].events[id], &owner, prefs),
        Found::Occurrence {
            master, original, ..
        } => {
            let inst = occurrence(&st.mcals[cal].events[master], *original)
                .ok_or_else(GraphError::not_found)?;
            render_instance(&inst, &owner, prefs)
        }
    })
}

/// Moves a new or reshaped series so that its start is its first
/// occurrence, as Outlook does.
fn anchor_series(content: &mut model::MContent, rec: &Recurrence) -> Result<(), GraphError> {
    let first = rec
        .dates(rec.start_date + Duration::days(3700), 1)
        .into_iter()
        .next()
        .ok_or_else(|| GraphError::bad_request("The recurrence pattern has no occurrences."))?;
    let dur = content.end.local - content.start.local;
    content.start.local = first.and_time(content.start.local.time());
    content.end = MTime {
        local: content.start.local + dur,
        tz: content.end.tz,
    };
    Ok(())
}

/// Creates an event in a calendar (also used by the control API). Returns
/// the id and whether it is new (a repeated `transactionId` returns the
/// event created the first time).
pub(crate) fn create_event(
    st: &mut World,
    cal_id: &str,
    body: &Map<String, Value>,
) -> Result<(String, bool), GraphError> {
    let owner = st
        .mcals
        .get(cal_id)
        .ok_or_else(GraphError::not_found)?
        .owner
        .clone();
    let transaction_id = body
        .get("transactionId")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(t) = &transaction_id {
        let cals = st
            .user(&owner)
            .map(|u| u.calendars.clone())
            .unwrap_or_default();
        for c in cals {
            if let Some(ev) = st.mcals[&c]
                .events
                .values()
                .find(|e| !e.deleted && e.transaction_id.as_deref() == Some(t))
            {
                return Ok((ev.id.clone(), false));
            }
        }
    }
    if body.get("start").is_none_or(Value::is_null) || body.get("end").is_none_or(Value::is_null) {
        return Err(GraphError::bad_request(
            "An event needs a start and an end.",
        ));
    }
    let mut content = empty_content();
    apply_body(&mut content, body)?;
    let recurrence = match body.get("recurrence") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let r = Recurrence::parse(v)?;
            anchor_series(&mut content, &r)?;
            Some(r)
        }
    };
    validate_times(&content)?;
    let seq = st.next_seq();
    let now = st.now();
    let id = ids::graph_item_id();
    st.mcals
        .get_mut(cal_id)
        .expect("calendar exists")
        .events
        .insert(
            id.clone(),
            MEvent {
                id: id.clone(),
                ical_uid: ids::graph_ical_uid(),
                created: now,
                last_modified: now,
                version: 1,
                transaction_id,
                content,
                recurrence,
                overrides: Default::default(),
                deleted: false,
                created_seq: seq,
                changed_seq: seq,
            },
        );
    Ok((id, true))
}

async fn events_create_default(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> MResult {
    create_answer(&emu, &headers, q, body, None)
}

async fn events_create_in(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path(calendar): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> MResult {
    create_answer(&emu, &headers, q, body, Some(&calendar))
}

fn create_answer(
    emu: &Emulator,
    headers: &HeaderMap,
    q: Option<String>,
    body: Bytes,
    calendar: Option<&str>,
) -> MResult {
    let q = Query::parse(q);
    let body = parse_body(&body)?;
    let ans = answer_prefs(headers, &q);
    let mut st = emu.lock();
    let grant = authenticate(&st, headers, WRITE_SCOPES)?;
    let cal = calendar_of(&st, &grant.user, calendar)?;
    let (id, _) = create_event(&mut st, &cal, &body)?;
    let cal = find(&st, &grant.user, None, &id).map(|f| match f {
        Found::Event { cal, .. } | Found::Occurrence { cal, .. } => cal,
    })?;
    let v = render_found(&st, &Found::Event { cal, id }, &ans.prefs)?;
    Ok(respond(StatusCode::CREATED, &v, &ans.applied))
}

async fn event_get(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> MResult {
    get_answer(&emu, &headers, q, None, &id)
}

async fn event_get_in(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path((calendar, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> MResult {
    get_answer(&emu, &headers, q, Some(&calendar), &id)
}

fn get_answer(
    emu: &Emulator,
    headers: &HeaderMap,
    q: Option<String>,
    calendar: Option<&str>,
    id: &str,
) -> MResult {
    let q = Query::parse(q);
    let ans = answer_prefs(headers, &q);
    let st = emu.lock();
    let grant = authenticate(&st, headers, READ_SCOPES)?;
    let found = find(&st, &grant.user, calendar, id)?;
    let v = render_found(&st, &found, &ans.prefs)?;
    Ok(respond(StatusCode::OK, &v, &ans.applied))
}

async fn event_patch(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> MResult {
    patch_answer(&emu, &headers, q, None, &id, body)
}

async fn event_patch_in(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path((calendar, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> MResult {
    patch_answer(&emu, &headers, q, Some(&calendar), &id, body)
}

fn patch_answer(
    emu: &Emulator,
    headers: &HeaderMap,
    q: Option<String>,
    calendar: Option<&str>,
    id: &str,
    body: Bytes,
) -> MResult {
    let q = Query::parse(q);
    let body = parse_body(&body)?;
    let ans = answer_prefs(headers, &q);
    let mut st = emu.lock();
    let grant = authenticate(&st, headers, WRITE_SCOPES)?;
    let found = find(&st, &grant.user, calendar, id)?;
    update_event(&mut st, headers, &found, &body)?;
    let v = render_found(&st, &found, &ans.prefs)?;
    Ok(respond(StatusCode::OK, &v, &ans.applied))
}

fn update_event(
    st: &mut World,
    headers: &HeaderMap,
    found: &Found,
    body: &Map<String, Value>,
) -> Result<(), GraphError> {
    let seq = st.next_seq();
    let now = st.now();
    match found {
        Found::Event { cal, id } => {
            let mut ev = st.mcals[cal].events[id].clone();
            if_match(headers, &ev.change_key())?;
            let mut content = ev.content.clone();
            let times_changed = apply_body(&mut content, body)?;
            let mut reshaped = times_changed && ev.recurrence.is_some();
            match body.get("recurrence") {
                None => {}
                Some(Value::Null) => {
                    reshaped |= ev.recurrence.is_some();
                    ev.recurrence = None;
                }
                Some(v) => {
                    let r = Recurrence::parse(v)?;
                    reshaped |= ev.recurrence.as_ref() != Some(&r);
                    ev.recurrence = Some(r);
                }
            }
            if let Some(r) = &ev.recurrence {
                if reshaped {
                    anchor_series(&mut content, r)?;
                }
            }
            validate_times(&content)?;
            if reshaped {
                // Outlook drops a series' exceptions when its pattern or
                // times change.
                ev.overrides.clear();
            }
            ev.content = content;
            ev.version += 1;
            ev.last_modified = now;
            ev.changed_seq = seq;
            st.mcals
                .get_mut(cal)
                .expect("calendar exists")
                .events
                .insert(id.clone(), ev);
        }
        Found::Occurrence {
            cal,
            master,
            original,
        } => {
            if body.get("recurrence").is_some_and(|v| !v.is_null()) {
                return Err(GraphError::bad_request(
                    "An occurrence of a series cannot have its own recurrence.",
                ));
            }
            let mut ev = st.mcals[cal].events[master].clone();
            let inst = occurrence(&ev, *original).ok_or_else(GraphError::not_found)?;
            if_match(headers, &inst.change_key)?;
            let mut content = inst.content.clone();
            apply_body(&mut content, body)?;
            let version = match ev.overrides.get(&original.timestamp()) {
                Some(Override::Modified { version, .. }) => version + 1,
                _ => ev.version + 1,
            };
            ev.overrides.insert(
                original.timestamp(),
                Override::Modified {
                    content: Box::new(content),
                    version,
                    last_modified: now,
                },
            );
            ev.changed_seq = seq;
            st.mcals
                .get_mut(cal)
                .expect("calendar exists")
                .events
                .insert(master.clone(), ev);
        }
    }
    Ok(())
}

async fn event_delete(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> MResult {
    delete_answer(&emu, &headers, None, &id)
}

async fn event_delete_in(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    Path((calendar, id)): Path<(String, String)>,
) -> MResult {
    delete_answer(&emu, &headers, Some(&calendar), &id)
}

fn delete_answer(emu: &Emulator, headers: &HeaderMap, calendar: Option<&str>, id: &str) -> MResult {
    let mut st = emu.lock();
    let grant = authenticate(&st, headers, WRITE_SCOPES)?;
    let found = find(&st, &grant.user, calendar, id)?;
    let seq = st.next_seq();
    let now = st.now();
    match found {
        Found::Event { cal, id } => {
            let ev = st
                .mcals
                .get_mut(&cal)
                .expect("calendar exists")
                .events
                .get_mut(&id)
                .expect("event exists");
            if let Some(h) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
                if !change_key_matches(h, &ev.change_key()) {
                    return Err(GraphError::irresolvable_conflict());
                }
            }
            ev.deleted = true;
            ev.version += 1;
            ev.last_modified = now;
            ev.changed_seq = seq;
        }
        Found::Occurrence {
            cal,
            master,
            original,
        } => {
            let ev = st
                .mcals
                .get_mut(&cal)
                .expect("calendar exists")
                .events
                .get_mut(&master)
                .expect("master exists");
            if let Some(inst) = occurrence(ev, original) {
                if let Some(h) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
                    if !change_key_matches(h, &inst.change_key) {
                        return Err(GraphError::irresolvable_conflict());
                    }
                }
            }
            ev.overrides.insert(original.timestamp(), Override::Deleted);
            ev.changed_seq = seq;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ------------------------------------------------------- lists and views

/// Builds a `$skip` next link for a list that pages by offset.
fn skip_link(base: &str, uri: &Uri, q: &Query, skip: usize) -> String {
    let mut parts: Vec<String> =
        q.0.iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("$skip"))
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
    parts.push(format!("$skip={skip}"));
    format!("{base}{}?{}", uri.path(), parts.join("&"))
}

fn enc(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn offset_page(
    items: Vec<Value>,
    q: &Query,
    ans: &Answer,
    base: &str,
    uri: &Uri,
    context: String,
) -> Result<Value, GraphError> {
    let top = q
        .usize("$top")?
        .or(ans.max_page)
        .unwrap_or(DEFAULT_TOP)
        .clamp(1, 1000);
    let skip = q.usize("$skip")?.unwrap_or(0);
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(skip).take(top).collect();
    let mut v = json!({"@odata.context": context, "value": page});
    if skip + top < total {
        v["@odata.nextLink"] = json!(skip_link(base, uri, q, skip + top));
    }
    Ok(v)
}

fn window(q: &Query) -> Result<(DateTime<Utc>, DateTime<Utc>), GraphError> {
    let missing = || {
        GraphError::invalid_parameter(
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        )
    };
    let s = q.get("startDateTime").ok_or_else(missing)?;
    let e = q.get("endDateTime").ok_or_else(missing)?;
    let s = parse_window_bound(s)
        .ok_or_else(|| GraphError::invalid_parameter("Invalid StartDateTime."))?;
    let e = parse_window_bound(e)
        .ok_or_else(|| GraphError::invalid_parameter("Invalid EndDateTime."))?;
    Ok((s, e))
}

/// The extended-property filter the emulator understands:
/// `singleValueExtendedProperties/Any(ep: ep/id eq '…' and ep/value eq '…')`.
fn svep_filter(q: &Query) -> Result<Option<(String, Option<String>)>, GraphError> {
    let Some(f) = q.get("$filter") else {
        return Ok(None);
    };
    if !f
        .to_ascii_lowercase()
        .contains("singlevalueextendedproperties/any")
    {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidUrlQueryFilter",
            "The emulator supports only singleValueExtendedProperties/Any(ep: ep/id eq '…' and ep/value eq '…') filters.",
        ));
    }
    let id = quoted_after(f, "/id eq '").into_iter().next();
    let value = quoted_after(f, "/value eq '").into_iter().next();
    match id {
        Some(id) => Ok(Some((id, value))),
        None => Err(GraphError::bad_request("Invalid filter clause.")),
    }
}

async fn events_list_default(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> MResult {
    list_answer(&emu, &headers, &uri, q, None)
}

async fn events_list_in(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    uri: Uri,
    Path(calendar): Path<String>,
    RawQuery(q): RawQuery,
) -> MResult {
    list_answer(&emu, &headers, &uri, q, Some(&calendar))
}

fn list_answer(
    emu: &Emulator,
    headers: &HeaderMap,
    uri: &Uri,
    q: Option<String>,
    calendar: Option<&str>,
) -> MResult {
    let q = Query::parse(q);
    let ans = answer_prefs(headers, &q);
    let filter = svep_filter(&q)?;
    let st = emu.lock();
    let grant = authenticate(&st, headers, READ_SCOPES)?;
    let cal_id = calendar_of(&st, &grant.user, calendar)?;
    let cal = &st.mcals[&cal_id];
    let (name, address) = owner_names(&st, &cal.owner);
    let owner = Owner {
        name: &name,
        address: &address,
    };
    let mut evs: Vec<&MEvent> = cal
        .events
        .values()
        .filter(|e| !e.deleted)
        .filter(|e| match &filter {
            None => true,
            Some((pid, val)) => e.content.svep.iter().any(|(k, v)| {
                same_property_id(k, pid) && val.as_deref().is_none_or(|want| want == v)
            }),
        })
        .collect();
    evs.sort_by_key(|a| a.created_seq);
    let items = evs
        .into_iter()
        .map(|e| render_event(e, &owner, &ans.prefs))
        .collect();
    let base = base_url(&st, headers);
    let ctx = format!("{base}/v1.0/$metadata#users('{}')/events", grant.user.1);
    let v = offset_page(items, &q, &ans, &base, uri, ctx)?;
    Ok(respond(StatusCode::OK, &v, &ans.applied))
}

async fn instances(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> MResult {
    instances_answer(&emu, &headers, &uri, q, None, &id)
}

async fn instances_in(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    uri: Uri,
    Path((calendar, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> MResult {
    instances_answer(&emu, &headers, &uri, q, Some(&calendar), &id)
}

fn instances_answer(
    emu: &Emulator,
    headers: &HeaderMap,
    uri: &Uri,
    q: Option<String>,
    calendar: Option<&str>,
    id: &str,
) -> MResult {
    let q = Query::parse(q);
    let ans = answer_prefs(headers, &q);
    let (ws, we) = window(&q)?;
    let st = emu.lock();
    let grant = authenticate(&st, headers, READ_SCOPES)?;
    let Found::Event { cal, id } = find(&st, &grant.user, calendar, id)? else {
        return Err(GraphError::bad_request(
            "Instances can only be listed for a series master.",
        ));
    };
    let ev = &st.mcals[&cal].events[&id];
    let (name, address) = owner_names(&st, &grant.user);
    let owner = Owner {
        name: &name,
        address: &address,
    };
    let list = if ev.recurrence.is_some() {
        let mut l = event_instances(ev, ws, we);
        l.sort_by_key(|a| a.start());
        l
    } else {
        Vec::new()
    };
    let items = list
        .iter()
        .map(|i| render_instance(i, &owner, &ans.prefs))
        .collect();
    let base = base_url(&st, headers);
    let ctx = format!("{base}/v1.0/$metadata#Collection(event)");
    let v = offset_page(items, &q, &ans, &base, uri, ctx)?;
    Ok(respond(StatusCode::OK, &v, &ans.applied))
}

async fn view_default(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> MResult {
    view_answer(&emu, &headers, &uri, q, None)
}

async fn view_in(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    uri: Uri,
    Path(calendar): Path<String>,
    RawQuery(q): RawQuery,
) -> MResult {
    view_answer(&emu, &headers, &uri, q, Some(&calendar))
}

fn view_answer(
    emu: &Emulator,
    headers: &HeaderMap,
    uri: &Uri,
    q: Option<String>,
    calendar: Option<&str>,
) -> MResult {
    let q = Query::parse(q);
    let ans = answer_prefs(headers, &q);
    let (ws, we) = window(&q)?;
    let st = emu.lock();
    let grant = authenticate(&st, headers, READ_SCOPES)?;
    let cal_id = calendar_of(&st, &grant.user, calendar)?;
    let cal = &st.mcals[&cal_id];
    let (name, address) = owner_names(&st, &grant.user);
    let owner = Owner {
        name: &name,
        address: &address,
    };
    let items = calendar_instances(cal, ws, we)
        .iter()
        .map(|i| render_instance(i, &owner, &ans.prefs))
        .collect();
    let base = base_url(&st, headers);
    let ctx = format!(
        "{base}/v1.0/$metadata#users('{}')/calendars('{}')/calendarView",
        grant.user.1, cal_id
    );
    let v = offset_page(items, &q, &ans, &base, uri, ctx)?;
    Ok(respond(StatusCode::OK, &v, &ans.applied))
}

// -------------------------------------------------------------------- delta

async fn delta_default(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> MResult {
    delta_answer(&emu, &headers, &uri, q, None)
}

async fn delta_in(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    uri: Uri,
    Path(calendar): Path<String>,
    RawQuery(q): RawQuery,
) -> MResult {
    delta_answer(&emu, &headers, &uri, q, Some(&calendar))
}

/// Computes a delta round: what changed in the window since `prev` (or
/// everything, for an initial round), and the state after it.
fn delta_round(
    st: &World,
    cal: &MCal,
    user: &UserKey,
    ws: DateTime<Utc>,
    we: DateTime<Utc>,
    prev: Option<&DeltaState>,
) -> (Vec<DeltaItem>, DeltaState) {
    let current = calendar_instances(cal, ws, we);
    let snapshot: HashMap<String, String> = current
        .iter()
        .map(|i| (i.id.clone(), i.change_key.clone()))
        .collect();
    // Stored events with at least one instance in the window.
    let in_view: HashSet<&str> = current
        .iter()
        .map(|i| i.master_id.as_deref().unwrap_or(&i.id))
        .collect();
    let in_view: HashSet<String> = in_view.into_iter().map(str::to_string).collect();
    let mut items = Vec::new();
    match prev {
        None => items.extend(current.into_iter().map(|i| DeltaItem::Changed(Box::new(i)))),
        Some(prev) => {
            for i in current {
                if prev.snapshot.get(&i.id) != Some(&i.change_key) {
                    items.push(DeltaItem::Changed(Box::new(i)));
                }
            }
            let mut removed: Vec<&String> = prev
                .snapshot
                .keys()
                .filter(|id| !snapshot.contains_key(*id))
                .collect();
            removed.sort();
            let mut reported: HashSet<String> = removed.iter().map(|s| s.to_string()).collect();
            items.extend(removed.into_iter().map(|id| DeltaItem::Removed(id.clone())));
            // Changes outside the window are reported as removals too, as
            // Graph does; clients filter them by date.
            let mut outside: Vec<&MEvent> = cal
                .events
                .values()
                .filter(|e| e.changed_seq > prev.seq)
                .collect();
            outside.sort_by_key(|e| e.changed_seq);
            for ev in outside {
                if !in_view.contains(&ev.id) && reported.insert(ev.id.clone()) {
                    items.push(DeltaItem::Removed(ev.id.clone()));
                }
            }
        }
    }
    let state = DeltaState {
        calendar: cal.id.clone(),
        user: user.clone(),
        start: ws,
        end: we,
        snapshot,
        seq: st.seq,
        epoch: cal.delta_epoch,
    };
    (items, state)
}

fn delta_answer(
    emu: &Emulator,
    headers: &HeaderMap,
    uri: &Uri,
    q: Option<String>,
    calendar: Option<&str>,
) -> MResult {
    let q = Query::parse(q);
    let ans = answer_prefs(headers, &q);
    let mut st = emu.lock();
    let grant = authenticate(&st, headers, READ_SCOPES)?;
    let base = base_url(&st, headers);
    let link_path = uri.path().to_string();
    let page = if let Some(skip) = q.get("$skiptoken") {
        let page = st
            .m_pages
            .remove(skip)
            .filter(|p| p.user == grant.user)
            .ok_or_else(GraphError::sync_state_not_found)?;
        if st.mcals.get(&page.calendar).map(|c| c.delta_epoch) != Some(page.epoch) {
            return Err(GraphError::sync_state_not_found());
        }
        page
    } else {
        let (cal_id, ws, we, prev) = if let Some(token) = q.get("$deltatoken") {
            let prev = st
                .m_delta
                .get(token)
                .filter(|d| d.user == grant.user)
                .cloned()
                .ok_or_else(GraphError::sync_state_not_found)?;
            if st.mcals.get(&prev.calendar).map(|c| c.delta_epoch) != Some(prev.epoch) {
                return Err(GraphError::sync_state_not_found());
            }
            (prev.calendar.clone(), prev.start, prev.end, Some(prev))
        } else {
            let (ws, we) = window(&q)?;
            let cal_id = calendar_of(&st, &grant.user, calendar)?;
            (cal_id, ws, we, None)
        };
        let (items, state) =
            delta_round(&st, &st.mcals[&cal_id], &grant.user, ws, we, prev.as_ref());
        let token = format!("R0usmc{}", ids::opaque(24));
        let epoch = state.epoch;
        st.remember_delta_token(&cal_id, token.clone(), state);
        MPage {
            calendar: cal_id,
            user: grant.user.clone(),
            items,
            page_size: ans.max_page.unwrap_or(DEFAULT_DELTA_PAGE),
            delta_token: token,
            link_path,
            epoch,
        }
    };
    let page_size = ans.max_page.unwrap_or(page.page_size);
    let mut page = page;
    let rest = if page.items.len() > page_size {
        page.items.split_off(page_size)
    } else {
        Vec::new()
    };
    let (name, address) = owner_names(&st, &grant.user);
    let owner = Owner {
        name: &name,
        address: &address,
    };
    let value: Vec<Value> = page
        .items
        .iter()
        .map(|item| match item {
            DeltaItem::Changed(i) => {
                let mut v = render_instance(i, &owner, &ans.prefs);
                if let Some(o) = v.as_object_mut() {
                    o.insert("@odata.type".into(), json!("#microsoft.graph.event"));
                }
                v
            }
            DeltaItem::Removed(id) => json!({
                "@odata.type": "#microsoft.graph.event",
                "id": id,
                "@removed": {"reason": "deleted"},
            }),
        })
        .collect();
    let mut v = json!({
        "@odata.context": format!("{base}/v1.0/$metadata#Collection(event)"),
        "value": value,
    });
    if rest.is_empty() {
        v["@odata.deltaLink"] = json!(format!(
            "{base}{}?$deltatoken={}",
            page.link_path, page.delta_token
        ));
    } else {
        let skip = format!("R0usmc{}", ids::opaque(24));
        v["@odata.nextLink"] = json!(format!("{base}{}?$skiptoken={skip}", page.link_path));
        let next = MPage {
            items: rest,
            page_size,
            ..page
        };
        st.remember_graph_page(skip, next);
    }
    Ok(respond(StatusCode::OK, &v, &ans.applied))
}

/// Every stored event of a Graph calendar (tombstones flagged), for
/// inspection by tests and the control API.
pub(crate) fn dump_events(st: &World, cal_id: &str) -> Option<Vec<Value>> {
    let cal = st.mcals.get(cal_id)?;
    let mut evs: Vec<&MEvent> = cal.events.values().collect();
    evs.sort_by_key(|e| e.created_seq);
    Some(evs.into_iter().map(|e| inspect(st, cal, e)).collect())
}

/// One stored event as [`dump_events`] shows it.
pub(crate) fn dump_event(st: &World, cal_id: &str, id: &str) -> Option<Value> {
    let cal = st.mcals.get(cal_id)?;
    cal.events.get(id).map(|e| inspect(st, cal, e))
}

fn inspect(st: &World, cal: &MCal, e: &MEvent) -> Value {
    let (name, address) = owner_names(st, &cal.owner);
    let owner = Owner {
        name: &name,
        address: &address,
    };
    let prefs = Prefs {
        expand_svep: Some(Vec::new()),
        ..Prefs::default()
    };
    let mut v = render_event(e, &owner, &prefs);
    v["@emulator.deleted"] = json!(e.deleted);
    let overrides: Vec<Value> = e
        .overrides
        .iter()
        .map(|(ts, o)| {
            let at = DateTime::from_timestamp(*ts, 0).unwrap_or_default();
            json!({
                "originalStart": at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "occurrenceId": ids::graph_occurrence_id(&e.id, *ts),
                "state": match o { Override::Deleted => "deleted", Override::Modified { .. } => "modified" },
            })
        })
        .collect();
    v["@emulator.overrides"] = json!(overrides);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_headers_split_like_graph() {
        let mut h = HeaderMap::new();
        h.append(
            "prefer",
            "outlook.timezone=\"Pacific Standard Time\", odata.maxpagesize=2"
                .parse()
                .unwrap(),
        );
        h.append(
            "prefer",
            "outlook.body-content-type=\"text\"".parse().unwrap(),
        );
        let pairs = prefer_pairs(&h);
        assert_eq!(
            pairs[0],
            ("outlook.timezone".into(), "Pacific Standard Time".into())
        );
        assert_eq!(pairs[1], ("odata.maxpagesize".into(), "2".into()));
        assert_eq!(
            pairs[2],
            ("outlook.body-content-type".into(), "text".into())
        );
        let ans = answer_prefs(&h, &Query(Vec::new()));
        assert_eq!(ans.max_page, Some(2));
        assert!(ans.prefs.body_text);
        assert_eq!(
            ans.prefs.tz.as_ref().map(|t| t.1.as_str()),
            Some("Pacific Standard Time")
        );
        assert_eq!(ans.applied.len(), 3);
    }

    #[test]
    fn filters_and_expands_are_read() {
        let ids = quoted_after(
            "singleValueExtendedProperties($filter=id eq 'String {a} Name x' or id eq 'String {b} Name y')",
            "id eq '",
        );
        assert_eq!(ids, vec!["String {a} Name x", "String {b} Name y"]);
        let q = Query(vec![(
            "$filter".into(),
            "singleValueExtendedProperties/Any(ep: ep/id eq 'String {a} Name x' and ep/value eq '42')".into(),
        )]);
        assert_eq!(
            svep_filter(&q).unwrap(),
            Some(("String {a} Name x".into(), Some("42".into())))
        );
        let bad = Query(vec![("$filter".into(), "subject eq 'x'".into())]);
        assert!(svep_filter(&bad).is_err());
        assert!(change_key_matches("W/\"abc\"", "abc"));
        assert!(!change_key_matches("W/\"abd\"", "abc"));
    }
}
