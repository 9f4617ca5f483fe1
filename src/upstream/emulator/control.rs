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
use axum::http::StatusCode;
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
        Ok(google::render_stored(&st, &cal, &id, None, &base))
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
        graph::dump_event(&st, &cal, &id).ok_or_else(|| not_found("event"))
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

/// A refused control request: status and message.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let code = if self.0 == StatusCode::NOT_FOUND {
            "notFound"
        } else {
            "badRequest"
        };
        json_answer(self.0, json!({"error": {"code": code, "message": self.1}}))
    }
}

type Answer = Result<Response, Refusal>;

fn bad(msg: &str) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, msg.to_string())
}

fn missing(msg: &str) -> Refusal {
    Refusal(StatusCode::NOT_FOUND, msg.to_string())
}

fn body_of<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Refusal> {
    let raw: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(raw).map_err(|e| bad(&format!("invalid JSON body: {e}")))
}

fn provider_of(raw: &str) -> Result<Provider, Refusal> {
    match raw {
        "google" => Ok(Provider::Google),
        "microsoft" => Ok(Provider::Microsoft),
        _ => Err(bad("provider must be google or microsoft")),
    }
}

fn ok() -> Answer {
    Ok(json_answer(StatusCode::OK, json!({"ok": true})))
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

async fn users_create(State(emu): State<Arc<Emulator>>, body: Bytes) -> Answer {
    let u: NewUser = body_of(&body)?;
    if !u.email.contains('@') {
        return Err(bad("email must be an email address"));
    }
    let info = emu.create_user(
        u.provider,
        &u.email,
        u.display_name.as_deref(),
        u.time_zone.as_deref(),
    );
    Ok(json_answer(StatusCode::CREATED, json!(info)))
}

async fn user_get(
    State(emu): State<Arc<Emulator>>,
    Path((provider, email)): Path<(String, String)>,
) -> Answer {
    let u = emu
        .user(provider_of(&provider)?, &email)
        .ok_or_else(|| missing("no such user"))?;
    Ok(json_answer(StatusCode::OK, json!(u)))
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
) -> Answer {
    let provider = provider_of(&provider)?;
    let c: NewCalendar = body_of(&body)?;
    let id = emu
        .create_calendar(provider, &email, &c.name, c.time_zone.as_deref())
        .ok_or_else(|| missing("no such user"))?;
    Ok(json_answer(
        StatusCode::CREATED,
        json!({"id": id, "name": c.name}),
    ))
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
) -> Answer {
    let provider = provider_of(&provider)?;
    let t: TokenRequest = body_of(&body)?;
    let (client, scopes) = match provider {
        Provider::Google => (
            t.client_id
                .unwrap_or_else(|| DEFAULT_GOOGLE_CLIENT_ID.into()),
            t.scopes.unwrap_or_else(|| {
                [
                    "https://www.googleapis.com/auth/calendar",
                    "openid",
                    "email",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect()
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
    let tokens = emu
        .issue_tokens(provider, &email, &client, &scopes)
        .ok_or_else(|| missing("no such user"))?;
    Ok(json_answer(StatusCode::CREATED, json!(tokens)))
}

async fn events_dump(
    State(emu): State<Arc<Emulator>>,
    Path((provider, email, calendar)): Path<(String, String, String)>,
) -> Answer {
    let provider = provider_of(&provider)?;
    {
        let st = emu.lock();
        let user = (provider, email.trim().to_lowercase());
        if user_info(&st, &user).is_none() || resolve_calendar(&st, &user, &calendar).is_none() {
            return Err(missing("no such user or calendar"));
        }
    }
    let events = match provider {
        Provider::Google => emu.google_events(&email, &calendar),
        Provider::Microsoft => emu.graph_events(&email, &calendar),
    };
    Ok(json_answer(StatusCode::OK, json!(events)))
}

async fn events_seed(
    State(emu): State<Arc<Emulator>>,
    Path((provider, email, calendar)): Path<(String, String, String)>,
    body: Bytes,
) -> Answer {
    let provider = provider_of(&provider)?;
    let body: Value = body_of(&body)?;
    let result = match provider {
        Provider::Google => emu.seed_google_event(&email, &calendar, body),
        Provider::Microsoft => emu.seed_graph_event(&email, &calendar, body),
    };
    Ok(match result {
        Ok(v) => json_answer(StatusCode::CREATED, v),
        Err(e) => json_answer(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            e.body,
        ),
    })
}

#[derive(Deserialize, Default)]
struct EmailBody {
    #[serde(default)]
    email: Option<String>,
}

async fn sync_invalidate(State(emu): State<Arc<Emulator>>, body: Bytes) -> Answer {
    let b: EmailBody = body_of(&body)?;
    emu.invalidate_sync_tokens(b.email.as_deref());
    ok()
}

fn email_of(body: &Bytes) -> Result<String, Refusal> {
    body_of::<EmailBody>(body)?
        .email
        .ok_or_else(|| bad("email is required"))
}

async fn refresh_expire(State(emu): State<Arc<Emulator>>, body: Bytes) -> Answer {
    emu.expire_refresh_tokens(&email_of(&body)?);
    ok()
}

async fn refresh_revoke(State(emu): State<Arc<Emulator>>, body: Bytes) -> Answer {
    emu.revoke_refresh_tokens(&email_of(&body)?);
    ok()
}

async fn access_expire(State(emu): State<Arc<Emulator>>, body: Bytes) -> Answer {
    emu.expire_access_tokens(&email_of(&body)?);
    ok()
}

async fn faults_list(State(emu): State<Arc<Emulator>>) -> Response {
    json_answer(StatusCode::OK, json!(emu.faults()))
}

async fn faults_add(State(emu): State<Arc<Emulator>>, body: Bytes) -> Answer {
    let rule: FaultRule = body_of(&body)?;
    Ok(json_answer(
        StatusCode::CREATED,
        json!({"id": emu.add_fault(rule)}),
    ))
}

async fn faults_clear(State(emu): State<Arc<Emulator>>) -> Response {
    emu.clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

async fn fault_remove(State(emu): State<Arc<Emulator>>, Path(id): Path<u64>) -> Answer {
    if emu.remove_fault(id) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(missing("no such fault"))
    }
}

#[derive(Deserialize)]
struct Seed {
    seed: u64,
}

async fn faults_seed(State(emu): State<Arc<Emulator>>, body: Bytes) -> Answer {
    let s: Seed = body_of(&body)?;
    emu.set_fault_seed(s.seed);
    ok()
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

async fn clients_add(State(emu): State<Arc<Emulator>>, body: Bytes) -> Answer {
    let c: OAuthClient = body_of(&body)?;
    emu.register_client(c);
    Ok(json_answer(StatusCode::CREATED, json!({"ok": true})))
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

async fn config_set(State(emu): State<Arc<Emulator>>, body: Bytes) -> Answer {
    let c: ConfigChange = body_of(&body)?;
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
    ok()
}

#[derive(Deserialize)]
struct Advance {
    seconds: i64,
}

async fn clock_advance(State(emu): State<Arc<Emulator>>, body: Bytes) -> Answer {
    let a: Advance = body_of(&body)?;
    emu.advance_clock(Duration::seconds(a.seconds));
    ok()
}
