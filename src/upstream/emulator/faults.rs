//! Faults on demand, Graph's mailbox concurrency limit, and the request
//! log — the "front door" every emulated request passes through.
//!
//! Owns: fault rules (what, for whom, how often — by count or by a seeded
//! probability so runs are reproducible), applying them in provider-shaped
//! responses, refusing a fifth concurrent request per app and mailbox as
//! Graph does, and recording each request for the control API. It must not
//! know about calendars or events.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::errors::{GoogleError, GraphError};
use super::state::{bearer, Emulator, GrantState, Provider, RequestRecord, UserKey};

/// What a fault does to a request it hits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Google 403 `rateLimitExceeded` (domain `usageLimits`).
    GoogleRateLimit,
    /// Google 403 `userRateLimitExceeded` (domain `usageLimits`).
    GoogleUserRateLimit,
    /// Google 429 `rateLimitExceeded`.
    GoogleTooManyRequests,
    /// Google 500 `backendError`.
    GoogleBackendError,
    /// Google 503 `backendError`.
    GoogleUnavailable,
    /// Graph 429 `ApplicationThrottled` with `Retry-After`.
    GraphThrottled { retry_after: u64 },
    /// Graph 503 `ServiceUnavailable` with `Retry-After`.
    GraphUnavailable { retry_after: u64 },
    /// A 200 whose body is not JSON; the request is not processed.
    Garbage,
    /// The request is processed, then its JSON body is cut in half (the
    /// client cannot know whether a write happened).
    Truncated,
    /// The request is processed after a delay (holds its Graph concurrency
    /// slot meanwhile).
    Delay { millis: u64 },
    /// Invalidates the user's sync/delta tokens, then processes the request.
    InvalidateSyncTokens,
    /// Expires the user's refresh tokens, then processes the request (a
    /// refresh gets `invalid_grant`; Microsoft AADSTS70008).
    RefreshTokenExpired,
    /// Revokes the user's grants, then processes the request (Microsoft
    /// AADSTS50173).
    RefreshTokenRevoked,
    /// Expires the presented access token, then processes the request (401).
    AccessTokenExpired,
}

impl FaultKind {
    fn provider(&self) -> Option<Provider> {
        match self {
            FaultKind::GoogleRateLimit
            | FaultKind::GoogleUserRateLimit
            | FaultKind::GoogleTooManyRequests
            | FaultKind::GoogleBackendError
            | FaultKind::GoogleUnavailable => Some(Provider::Google),
            FaultKind::GraphThrottled { .. } | FaultKind::GraphUnavailable { .. } => {
                Some(Provider::Microsoft)
            }
            _ => None,
        }
    }

    fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("kind").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default()
    }
}

/// A fault rule: which requests it matches and how often it fires. With
/// neither `count` nor `probability` it fires on every match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(flatten)]
    pub kind: FaultKind,
    /// Only this provider's requests (provider-specific kinds imply it).
    #[serde(default)]
    pub provider: Option<Provider>,
    /// Only requests by this user (email), known from the bearer token or,
    /// on token endpoints, from the code or refresh token.
    #[serde(default)]
    pub user: Option<String>,
    /// Only paths starting with this.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Only this HTTP method.
    #[serde(default)]
    pub method: Option<String>,
    /// Fire on the next N matching requests, then stop.
    #[serde(default)]
    pub count: Option<u32>,
    /// Fire on each matching request with this probability (seeded RNG).
    #[serde(default)]
    pub probability: Option<f64>,
    /// Let this many matching requests through before firing.
    #[serde(default)]
    pub after: u32,
}

impl FaultRule {
    /// A rule of this kind matching every request of its provider.
    pub fn new(kind: FaultKind) -> FaultRule {
        FaultRule {
            kind,
            provider: None,
            user: None,
            path_prefix: None,
            method: None,
            count: None,
            probability: None,
            after: 0,
        }
    }

    pub fn provider(mut self, p: Provider) -> Self {
        self.provider = Some(p);
        self
    }

    pub fn user(mut self, email: &str) -> Self {
        self.user = Some(email.to_lowercase());
        self
    }

    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.path_prefix = Some(prefix.to_string());
        self
    }

    pub fn method(mut self, m: &str) -> Self {
        self.method = Some(m.to_ascii_uppercase());
        self
    }

    /// Fire on the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.count = Some(n);
        self
    }

    /// Fire with probability `p` (0..=1) per matching request.
    pub fn probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }

    /// Skip the first `n` matching requests.
    pub fn after(mut self, n: u32) -> Self {
        self.after = n;
        self
    }
}

/// What the front door knows about a request when deciding faults.
#[derive(Debug, Clone)]
pub(crate) struct RequestFacts {
    pub provider: Option<Provider>,
    pub user: Option<UserKey>,
    pub path: String,
    pub method: String,
}

struct Entry {
    id: u64,
    rule: FaultRule,
    seen: u32,
    fired: u32,
}

/// The active fault rules and the seeded RNG behind probabilities.
pub(crate) struct FaultBook {
    entries: Vec<Entry>,
    rng: StdRng,
    next_id: u64,
}

impl FaultBook {
    pub fn new(seed: u64) -> FaultBook {
        FaultBook {
            entries: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            next_id: 1,
        }
    }

    pub fn add(&mut self, rule: FaultRule) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push(Entry {
            id,
            rule,
            seen: 0,
            fired: 0,
        });
        id
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.id != id);
        before != self.entries.len()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn reseed(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(seed);
    }

    pub fn describe(&self) -> Vec<Value> {
        self.entries
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(&e.rule).unwrap_or(Value::Null);
                v["id"] = json!(e.id);
                v["fired"] = json!(e.fired);
                v
            })
            .collect()
    }

    /// Decides the faults for one request: the total delay and at most one
    /// other fault (the first rule that fires).
    pub fn decide(&mut self, facts: &RequestFacts) -> (u64, Vec<FaultKind>) {
        let mut delay = 0;
        let mut hits = Vec::new();
        let mut terminal = false;
        for e in &mut self.entries {
            let r = &e.rule;
            let provider = r.provider.or(r.kind.provider());
            if provider.is_some() && provider != facts.provider {
                continue;
            }
            if let Some(u) = &r.user {
                if !facts
                    .user
                    .as_ref()
                    .is_some_and(|k| k.1.eq_ignore_ascii_case(u))
                {
                    continue;
                }
            }
            if r.path_prefix
                .as_deref()
                .is_some_and(|p| !facts.path.starts_with(p))
            {
                continue;
            }
            if r.method
                .as_deref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(&facts.method))
            {
                continue;
            }
            if r.count.is_some_and(|c| e.fired >= c) {
                continue;
            }
            let is_delay = matches!(r.kind, FaultKind::Delay { .. });
            if terminal && !is_delay {
                continue;
            }
            e.seen += 1;
            if e.seen <= r.after {
                continue;
            }
            if let Some(p) = r.probability {
                if self.rng.gen::<f64>() >= p {
                    continue;
                }
            }
            e.fired += 1;
            match &r.kind {
                FaultKind::Delay { millis } => delay += millis,
                k => {
                    if is_terminal(k) {
                        terminal = true;
                    }
                    hits.push(k.clone());
                }
            }
        }
        (delay, hits)
    }
}

/// Kinds that answer instead of the handler (at most one applies).
fn is_terminal(k: &FaultKind) -> bool {
    !matches!(
        k,
        FaultKind::InvalidateSyncTokens
            | FaultKind::RefreshTokenExpired
            | FaultKind::RefreshTokenRevoked
            | FaultKind::AccessTokenExpired
            | FaultKind::Truncated
            | FaultKind::Delay { .. }
    )
}

/// The provider a path belongs to; `None` for the control API.
pub(crate) fn provider_of(path: &str) -> Option<Provider> {
    if path.starts_with("/calendar/v3/")
        || path.starts_with("/o/oauth2/")
        || path == "/token"
        || path == "/revoke"
    {
        Some(Provider::Google)
    } else if path.starts_with("/v1.0/") || path.contains("/oauth2/v2.0/") {
        Some(Provider::Microsoft)
    } else {
        None
    }
}

fn is_token_endpoint(path: &str) -> bool {
    path == "/token" || path == "/revoke" || path.ends_with("/oauth2/v2.0/token")
}

/// Releases a Graph concurrency slot when the request ends.
struct Slot {
    emu: Arc<Emulator>,
    key: (String, String),
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.emu.lock();
        if let Some(n) = st.in_flight.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
    }
}

/// The middleware in front of every provider route.
pub(crate) async fn front_door(
    State(emu): State<Arc<Emulator>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let Some(provider) = provider_of(&path) else {
        return next.run(req).await;
    };

    // Who is asking: the bearer token's user, or on token endpoints the
    // user behind the code or refresh token in the form body.
    let mut req = req;
    let mut presented_refresh: Option<String> = None;
    let (user, client) = {
        let bearer_token = bearer(req.headers()).map(str::to_string);
        if is_token_endpoint(&path) && method == Method::POST {
            let (parts, body) = req.into_parts();
            let bytes = to_bytes(body, 1 << 20).await.unwrap_or_default();
            let mut code = None;
            let query = parts.uri.query().unwrap_or("").to_string();
            for (k, v) in url::form_urlencoded::parse(&bytes)
                .chain(url::form_urlencoded::parse(query.as_bytes()))
            {
                match k.as_ref() {
                    "refresh_token" => presented_refresh = Some(v.into_owned()),
                    "token" => presented_refresh = Some(v.into_owned()),
                    "code" => code = Some(v.into_owned()),
                    _ => {}
                }
            }
            req = Request::from_parts(parts, Body::from(bytes));
            let st = emu.lock();
            let user = presented_refresh
                .as_ref()
                .and_then(|t| {
                    st.refresh
                        .get(t)
                        .map(|g| g.user.clone())
                        .or_else(|| st.access.get(t).map(|g| g.user.clone()))
                })
                .or_else(|| code.and_then(|c| st.codes.get(&c).map(|c| c.user.clone())));
            (user, None)
        } else {
            let st = emu.lock();
            match bearer_token.and_then(|t| st.access.get(&t).cloned()) {
                Some(g) => (Some(g.user), Some(g.client_id)),
                None => (None, None),
            }
        }
    };
    let facts = RequestFacts {
        provider: Some(provider),
        user: user.clone(),
        path: path.clone(),
        method: method.as_str().to_string(),
    };

    // Graph: at most N concurrent requests per app and mailbox.
    let mut slot = None;
    if path.starts_with("/v1.0/") {
        if let (Some(u), Some(c)) = (&user, &client) {
            let key = (c.clone(), u.1.clone());
            let mut st = emu.lock();
            let limit = st.config.graph_mailbox_concurrency;
            let n = st.in_flight.entry(key.clone()).or_insert(0);
            if *n >= limit {
                let resp =
                    GraphError::throttled("Application is over its MailboxConcurrency limit.", 1)
                        .into_response();
                record(
                    &mut st,
                    &method,
                    &route,
                    &path,
                    provider,
                    &user,
                    &resp,
                    Some("mailbox_concurrency"),
                );
                return resp;
            }
            *n += 1;
            drop(st);
            slot = Some(Slot {
                emu: emu.clone(),
                key,
            });
        }
    }

    let (delay, hits) = emu.lock().faults.decide(&facts);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut truncate = false;
    let mut answer: Option<Response> = None;
    let mut fault_name = None;
    for hit in &hits {
        fault_name = Some(hit.name());
        match hit {
            FaultKind::InvalidateSyncTokens => {
                let mut st = emu.lock();
                let users = match &user {
                    Some(u) => vec![u.clone()],
                    None => st.users_matching(None),
                };
                st.invalidate_sync_state(&users);
            }
            FaultKind::RefreshTokenExpired | FaultKind::RefreshTokenRevoked => {
                let state = if *hit == FaultKind::RefreshTokenExpired {
                    GrantState::Expired
                } else {
                    GrantState::Revoked
                };
                let mut st = emu.lock();
                if let Some(u) = &user {
                    st.set_refresh_state(std::slice::from_ref(u), state);
                }
                if let Some(t) = &presented_refresh {
                    if let Some(g) = st.refresh.get_mut(t) {
                        g.state = state;
                    }
                }
            }
            FaultKind::AccessTokenExpired => {
                let mut st = emu.lock();
                let past = st.now() - chrono::Duration::seconds(1);
                if let Some(t) = bearer(req.headers()) {
                    if let Some(g) = st.access.get_mut(t) {
                        g.expires = past;
                    }
                }
            }
            FaultKind::Truncated => truncate = true,
            other => answer = Some(fault_response(other)),
        }
    }
    let resp = match answer {
        Some(r) => r,
        None => {
            let resp = next.run(req).await;
            if truncate {
                truncate_body(resp).await
            } else {
                resp
            }
        }
    };
    drop(slot);
    let mut st = emu.lock();
    record(
        &mut st,
        &method,
        &route,
        &path,
        provider,
        &user,
        &resp,
        fault_name.as_deref(),
    );
    resp
}

#[allow(clippy::too_many_arguments)]
fn record(
    st: &mut super::state::State,
    method: &Method,
    route: &str,
    path: &str,
    provider: Provider,
    user: &Option<UserKey>,
    resp: &Response,
    fault: Option<&str>,
) {
    st.record(RequestRecord {
        method: method.as_str().to_string(),
        route: route.to_string(),
        path: path.to_string(),
        provider: Some(provider),
        user: user.as_ref().map(|u| u.1.clone()),
        status: resp.status().as_u16(),
        fault: fault.map(str::to_string),
    });
}

fn google_usage(status: StatusCode, reason: &'static str, message: &str) -> Response {
    GoogleError::new(status, "usageLimits", reason, message).into_response()
}

/// The response a terminal fault gives instead of the handler's.
fn fault_response(kind: &FaultKind) -> Response {
    match kind {
        FaultKind::GoogleRateLimit => google_usage(
            StatusCode::FORBIDDEN,
            "rateLimitExceeded",
            "Rate Limit Exceeded",
        ),
        FaultKind::GoogleUserRateLimit => google_usage(
            StatusCode::FORBIDDEN,
            "userRateLimitExceeded",
            "User Rate Limit Exceeded",
        ),
        FaultKind::GoogleTooManyRequests => google_usage(
            StatusCode::TOO_MANY_REQUESTS,
            "rateLimitExceeded",
            "Rate Limit Exceeded",
        ),
        FaultKind::GoogleBackendError => GoogleError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "global",
            "backendError",
            "Backend Error",
        )
        .into_response(),
        FaultKind::GoogleUnavailable => GoogleError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "global",
            "backendError",
            "The service is currently unavailable.",
        )
        .into_response(),
        FaultKind::GraphThrottled { retry_after } => {
            GraphError::throttled("Application is over its RequestRate limit.", *retry_after)
                .into_response()
        }
        FaultKind::GraphUnavailable { retry_after } => {
            let mut e = GraphError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "Service Unavailable",
            );
            e.retry_after = Some(*retry_after);
            e.into_response()
        }
        _ => {
            let mut r = (StatusCode::OK, "{\"kind\": \u{1}<html>garbage").into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=UTF-8"),
            );
            r
        }
    }
}

/// Keeps status and headers but cuts the body in half.
async fn truncate_body(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let cut = bytes.slice(..bytes.len() / 2);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(provider: Provider, path: &str) -> RequestFacts {
        RequestFacts {
            provider: Some(provider),
            user: Some((provider, "a@example.com".into())),
            path: path.into(),
            method: "GET".into(),
        }
    }

    #[test]
    fn count_after_and_provider_scoping() {
        let mut b = FaultBook::new(1);
        b.add(
            FaultRule::new(FaultKind::GoogleBackendError)
                .times(2)
                .after(1),
        );
        let g = facts(Provider::Google, "/calendar/v3/x");
        let m = facts(Provider::Microsoft, "/v1.0/me");
        assert!(b.decide(&m).1.is_empty());
        assert!(b.decide(&g).1.is_empty());
        assert_eq!(b.decide(&g).1, vec![FaultKind::GoogleBackendError]);
        assert_eq!(b.decide(&g).1, vec![FaultKind::GoogleBackendError]);
        assert!(b.decide(&g).1.is_empty());
    }

    #[test]
    fn probability_is_reproducible() {
        let run = |seed| {
            let mut b = FaultBook::new(seed);
            b.add(FaultRule::new(FaultKind::Garbage).probability(0.5));
            (0..64)
                .map(|_| !b.decide(&facts(Provider::Google, "/token")).1.is_empty())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        let hits = run(7).iter().filter(|h| **h).count();
        assert!(hits > 10 && hits < 54, "{hits}");
    }

    #[test]
    fn user_and_path_filters_and_json_shape() {
        let mut b = FaultBook::new(0);
        b.add(
            FaultRule::new(FaultKind::Delay { millis: 5 })
                .user("A@example.com")
                .path_prefix("/v1.0/me/events"),
        );
        assert_eq!(
            b.decide(&facts(Provider::Microsoft, "/v1.0/me/events/x")).0,
            5
        );
        assert_eq!(b.decide(&facts(Provider::Microsoft, "/v1.0/me")).0, 0);
        let rule: FaultRule = serde_json::from_value(
            json!({"kind": "graph_throttled", "retry_after": 3, "count": 1}),
        )
        .unwrap();
        assert_eq!(rule.kind, FaultKind::GraphThrottled { retry_after: 3 });
        assert_eq!(rule.count, Some(1));
    }
}
