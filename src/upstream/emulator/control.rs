//! The emulator's own control surface: seeding and inspecting events
//! programmatically, and the same controls over HTTP under `/_emulator/`
//! (JSON) so `calbridge fake-upstream` can be driven by scripts.
//!
//! Owns nothing of the providers' contracts: every write goes through the
//! same code paths the provider fronts use, so seeded data is exactly what
//! an API client would have created.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use chrono::Duration;
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::json_body;
use super::faults::FaultRule;
use super::state::{
    user_info, Emulator, OAuthClient, Provider, State as World, UserKey, DEFAULT_GOOGLE_CLIENT_ID,
    DEFAULT_MICROSOFT_CLIENT_ID,
};
use super::{google, graph};

/// A seeding call the provider front refused, with the provider's error.
#[derive(Debug, Clone)]
pub struct SeedError {
    pub status: u16,
    pub body: Value,
}

impl std::fmt::Display for SeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "emulator refused the seed ({}): {}",
            self.status, self.body
        )
    }
}

impl std::error::Error for SeedError {}

fn not_found(what: &str) -> SeedError {
    SeedError {
        status: 404,
        body: json!({"error": {"code": "notFound", "message": format!("{what} not found")}}),
    }
}

fn resolve_calendar(st: &World, user: &UserKey, calendar: &str) -> Option<String> {
    let u = st.user(user)?;
    if calendar == "primary" || calendar == "default" {
        return u.calendars.first().cloned();
    }
    u.calendars.iter().find(|c| *c == calendar).cloned()
}

fn inspect_base(st: &World) -> String {
    st.config
        .base_url
        .clone()
        .unwrap_or_else(|| "http://emulator.invalid".to_string())
}

impl Emulator {
    /// Inserts a Google event (the `events.insert` body) into a user's
    /// calendar (`primary` allowed) as the API would; returns the event.
    pub fn seed_google_event(
        &self,
        email: &str,
        calendar: &str,
        body: Value,
    ) -> Result<Value, SeedError> {
        let mut st = self.lock();
        let user = (Provider::Google, email.trim().to_lowercase());
        let cal = resolve_calendar(&st, &user, calendar).ok_or_else(|| not_found("calendar"))?;
        let id = google::insert_event(&mut st, &cal, &body).map_err(|e| SeedError {
            status: e.status.as_u16(),
            body: e.body(),
        })?;
        let base = inspect_base(&st);
        let all = google::dump_events(&st, &cal, &base).unwrap_or_default();
        all.into_iter()
            .find(|e| e["id"] == json!(id))
            .ok_or_else(|| not_found("event"))
    }

    /// Every event of a Google calendar in full, cancelled ones included.
    pub fn google_events(&self, email: &str, calendar: &str) -> Vec<Value> {
        let st = self.lock();
        let user = (Provider::Google, email.trim().to_lowercase());
        let Some(cal) = resolve_calendar(&st, &user, calendar) else {
            return Vec::new();
        };
        google::dump_events(&st, &cal, &inspect_base(&st)).unwrap_or_default()
    }

    /// Creates a Graph event (the `POST …/events` body) in a user's
    /// calendar (`default` allowed) as the API would; returns the event.
    pub fn seed_graph_event(
        &self,
        email: &str,
        calendar: &str,
        body: Value,
    ) -> Result<Value, SeedError> {
        let mut st = self.lock();
        let user = (Provider::Microsoft, email.trim().to_lowercase());
        let cal = resolve_calendar(&st, &user, calendar).ok_or_else(|| not_found("calendar"))?;
        let obj = body.as_object().ok_or_else(|| SeedError {
            status: 400,
            body: json!({"error": {"code": "BadRequest", "message": "body must be an object"}}),
        })?;
        let (id, _) = graph::create_event(&mut st, &cal, obj).map_err(|e| SeedError {
            status: e.status.as_u16(),
            body: e.body(),
        })?;
        let all = graph::dump_events(&st, &cal).unwrap_or_default();
        all.into_iter()
            .find(|e| e["id"] == json!(id))
            .ok_or_else(|| not_found("event"))
    }

    /// Every stored event of a Graph calendar: singles and series masters
    /// with `@emulator.deleted` and `@emulator.overrides` (occurrence
    /// changes) added.
    pub fn graph_events(&self, email: &str, calendar: &str) -> Vec<Value> {
        let st = self.lock();
        let user = (Provider::Microsoft, email.trim().to_lowercase());
        let Some(cal) = resolve_calendar(&st, &user, calendar) else {
            return Vec::new();
        };
        graph::dump_events(&st, &cal).unwrap_or_default()
    }
}

/// The `/_emulator` routes.
pub(crate) fn routes() -> Router<Arc<Emulator>> {
    Router::new()
        .route(
            "/_emulator/health",
            get(|| async { json_answer(StatusCode::OK, json!({"ok": true})) }),
        )
        .route("/_emulator/users", get(users_list).post(users_create))
        .route("/_emulator/users/{provider}/{email}", get(user_get))
        .route(
            "/_emulator/users/{provider}/{email}/calendars",
            post(calendar_create),
        )
        .route(
            "/_emulator/users/{provider}/{email}/tokens",
            post(tokens_issue),
        )
        .route(
            "/_emulator/users/{provider}/{email}/calendars/{calendar}/events",
            get(events_dump).post(events_seed),
        )
        .route("/_emulator/sync-tokens/invalidate", post(sync_invalidate))
        .route("/_emulator/refresh-tokens/expire", post(refresh_expire))
        .route("/_emulator/refresh-tokens/revoke", post(refresh_revoke))
        .route("/_emulator/access-tokens/expire", post(access_expire))
        .route(
            "/_emulator/faults",
            get(faults_list).post(faults_add).delete(faults_clear),
        )
        .route("/_emulator/faults/seed", post(faults_seed))
        .route("/_emulator/faults/{id}", delete(fault_remove))
        .route(
            "/_emulator/requests",
            get(requests_get).delete(requests_reset),
        )
        .route("/_emulator/clients", post(clients_add))
        .route("/_emulator/config", post(config_set))
        .route("/_emulator/clock/advance", post(clock_advance))
}

fn json_answer(status: StatusCode, v: Value) -> Response {
    (status, json_body(&v)).into_response()
}

fn bad(msg: &str) -> Response {
    json_answer(
        StatusCode::BAD_REQUEST,
        json!({"error": {"code": "badRequest", "message": msg}}),
    )
}

fn missing(msg: &str) -> Response {
    json_answer(
        StatusCode::NOT_FOUND,
        json!({"error": {"code": "notFound", "message": msg}}),
    )
}

fn body_of<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Response> {
    let raw: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(raw).map_err(|e| bad(&format!("invalid JSON body: {e}")))
}

fn provider_of(raw: &str) -> Result<Provider, Response> {
    match raw {
        "google" => Ok(Provider::Google),
        "microsoft" => Ok(Provider::Microsoft),
        _ => Err(bad("provider must be google or microsoft")),
    }
}

async fn users_list(State(emu): State<Arc<Emulator>>) -> Response {
    json_answer(StatusCode::OK, json!(emu.users()))
}

#[derive(Deserialize)]
struct NewUser {
    provider: Provider,
    email: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
}

async fn users_create(State(emu): State<Arc<Emulator>>, body: Bytes) -> Response {
    let u: NewUser = match body_of(&body) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if !u.email.contains('@') {
        return bad("email must be an email address");
    }
    let info = emu.create_user(
        u.provider,
        &u.email,
        u.display_name.as_deref(),
        u.time_zone.as_deref(),
    );
    json_answer(StatusCode::CREATED, json!(info))
}

async fn user_get(
    State(emu): State<Arc<Emulator>>,
    Path((provider, email)): Path<(String, String)>,
) -> Response {
    let provider = match provider_of(&provider) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match emu.user(provider, &email) {
        Some(u) => json_answer(StatusCode::OK, json!(u)),
        None => missing("no such user"),
    }
}

#[derive(Deserialize)]
struct NewCalendar {
    name: String,
    #[serde(default)]
    time_zone: Option<String>,
}

async fn calendar_create(
    State(emu): State<Arc<Emulator>>,
    Path((provider, email)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let provider = match provider_of(&provider) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let c: NewCalendar = match body_of(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match emu.create_calendar(provider, &email, &c.name, c.time_zone.as_deref()) {
        Some(id) => json_answer(StatusCode::CREATED, json!({"id": id, "name": c.name})),
        None => missing("no such user"),
    }
}

#[derive(Deserialize)]
struct TokenRequest {
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

async fn tokens_issue(
    State(emu): State<Arc<Emulator>>,
    Path((provider, email)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let provider = match provider_of(&provider) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let t: TokenRequest = match body_of(&body) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (client, scopes) = match provider {
        Provider::Google => (
            t.client_id
                .unwrap_or_else(|| DEFAULT_GOOGLE_CLIENT_ID.into()),
            t.scopes.unwrap_or_else(|| {
                vec![
                    "https://www.googleapis.com/auth/calendar".into(),
                    "openid".into(),
                    "email".into(),
                ]
            }),
        ),
        Provider::Microsoft => (
            t.client_id
                .unwrap_or_else(|| DEFAULT_MICROSOFT_CLIENT_ID.into()),
            t.scopes.unwrap_or_else(|| {
                [
                    "offline_access",
                    "https://graph.microsoft.com/Calendars.ReadWrite",
                    "https://graph.microsoft.com/User.Read",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect()
            }),
        ),
    };
    match emu.issue_tokens(provider, &email, &client, &scopes) {
        Some(t) => json_answer(StatusCode::CREATED, json!(t)),
        None => missing("no such user"),
    }
}

async fn events_dump(
    State(emu): State<Arc<Emulator>>,
    Path((provider, email, calendar)): Path<(String, String, String)>,
) -> Response {
    let provider = match provider_of(&provider) {
        Ok(p) => p,
        Err(r) => return r,
    };
    {
        let st = emu.lock();
        let user = (provider, email.trim().to_lowercase());
        if user_info(&st, &user).is_none() || resolve_calendar(&st, &user, &calendar).is_none() {
            return missing("no such user or calendar");
        }
    }
    let events = match provider {
        Provider::Google => emu.google_events(&email, &calendar),
        Provider::Microsoft => emu.graph_events(&email, &calendar),
    };
    json_answer(StatusCode::OK, json!(events))
}

async fn events_seed(
    State(emu): State<Arc<Emulator>>,
    Path((provider, email, calendar)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let provider = match provider_of(&provider) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let body: Value = match body_of(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let result = match provider {
        Provider::Google => emu.seed_google_event(&email, &calendar, body),
        Provider::Microsoft => emu.seed_graph_event(&email, &calendar, body),
    };
    match result {
        Ok(v) => json_answer(StatusCode::CREATED, v),
        Err(e) => json_answer(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            e.body,
        ),
    }
}

#[derive(Deserialize, Default)]
struct EmailBody {
    #[serde(default)]
    email: Option<String>,
}

async fn sync_invalidate(State(emu): State<Arc<Emulator>>, body: Bytes) -> Response {
    match body_of::<EmailBody>(&body) {
        Ok(b) => {
            emu.invalidate_sync_tokens(b.email.as_deref());
            json_answer(StatusCode::OK, json!({"ok": true}))
        }
        Err(r) => r,
    }
}

fn with_email(body: &Bytes, f: impl FnOnce(&str)) -> Response {
    match body_of::<EmailBody>(body) {
        Ok(EmailBody { email: Some(e) }) => {
            f(&e);
            json_answer(StatusCode::OK, json!({"ok": true}))
        }
        Ok(_) => bad("email is required"),
        Err(r) => r,
    }
}

async fn refresh_expire(State(emu): State<Arc<Emulator>>, body: Bytes) -> Response {
    with_email(&body, |e| emu.expire_refresh_tokens(e))
}

async fn refresh_revoke(State(emu): State<Arc<Emulator>>, body: Bytes) -> Response {
    with_email(&body, |e| emu.revoke_refresh_tokens(e))
}

async fn access_expire(State(emu): State<Arc<Emulator>>, body: Bytes) -> Response {
    with_email(&body, |e| emu.expire_access_tokens(e))
}

async fn faults_list(State(emu): State<Arc<Emulator>>) -> Response {
    json_answer(StatusCode::OK, json!(emu.faults()))
}

async fn faults_add(State(emu): State<Arc<Emulator>>, body: Bytes) -> Response {
    match body_of::<FaultRule>(&body) {
        Ok(rule) => json_answer(StatusCode::CREATED, json!({"id": emu.add_fault(rule)})),
        Err(r) => r,
    }
}

async fn faults_clear(State(emu): State<Arc<Emulator>>) -> Response {
    emu.clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

async fn fault_remove(State(emu): State<Arc<Emulator>>, Path(id): Path<u64>) -> Response {
    if emu.remove_fault(id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        missing("no such fault")
    }
}

#[derive(Deserialize)]
struct Seed {
    seed: u64,
}

async fn faults_seed(State(emu): State<Arc<Emulator>>, body: Bytes) -> Response {
    match body_of::<Seed>(&body) {
        Ok(s) => {
            emu.set_fault_seed(s.seed);
            json_answer(StatusCode::OK, json!({"ok": true}))
        }
        Err(r) => r,
    }
}

async fn requests_get(State(emu): State<Arc<Emulator>>) -> Response {
    json_answer(
        StatusCode::OK,
        json!({"counts": emu.request_counts(), "log": emu.requests()}),
    )
}

async fn requests_reset(State(emu): State<Arc<Emulator>>) -> Response {
    emu.reset_requests();
    StatusCode::NO_CONTENT.into_response()
}

async fn clients_add(State(emu): State<Arc<Emulator>>, body: Bytes) -> Response {
    match body_of::<OAuthClient>(&body) {
        Ok(c) => {
            emu.register_client(c);
            json_answer(StatusCode::CREATED, json!({"ok": true}))
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct ConfigChange {
    #[serde(default)]
    access_token_ttl_secs: Option<i64>,
    #[serde(default)]
    code_ttl_secs: Option<i64>,
    #[serde(default)]
    refresh_token_ttl_secs: Option<i64>,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    delta_tokens_kept: Option<usize>,
}

async fn config_set(
    State(emu): State<Arc<Emulator>>,
    _headers: HeaderMap,
    body: Bytes,
) -> Response {
    let c: ConfigChange = match body_of(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut st = emu.lock();
    if let Some(s) = c.access_token_ttl_secs {
        st.config.access_token_ttl = Duration::seconds(s);
    }
    if let Some(s) = c.code_ttl_secs {
        st.config.code_ttl = Duration::seconds(s);
    }
    if let Some(s) = c.refresh_token_ttl_secs {
        st.config.refresh_token_ttl = (s > 0).then(|| Duration::seconds(s));
    }
    if let Some(b) = c.base_url {
        st.config.base_url = (!b.is_empty()).then_some(b);
    }
    if let Some(n) = c.delta_tokens_kept {
        st.config.delta_tokens_kept = n.max(1);
    }
    json_answer(StatusCode::OK, json!({"ok": true}))
}

#[derive(Deserialize)]
struct Advance {
    seconds: i64,
}

async fn clock_advance(State(emu): State<Arc<Emulator>>, body: Bytes) -> Response {
    match body_of::<Advance>(&body) {
        Ok(a) => {
            emu.advance_clock(Duration::seconds(a.seconds));
            json_answer(StatusCode::OK, json!({"ok": true}))
        }
        Err(r) => r,
    }
}
