//! An emulator of Google Calendar API v3, Microsoft Graph v1.0 (calendars)
//! and both providers' OAuth 2.0 endpoints, faithful to their wire
//! contracts. Tests, `calbridge demo`, `calbridge fake-upstream` and the
//! benchmarks talk to it; any client of the real APIs can use it.
//!
//! # Layout
//! - `state`: the in-memory world behind one mutex, and the programmatic
//!   controls on [`Emulator`] (users, calendars, tokens, faults, request
//!   counts, clock).
//! - `oauth`: authorize/token/revoke for Google and the Microsoft identity
//!   platform (code flow with PKCE S256).
//! - `google`: Calendar v3 under `/calendar/v3/` (recurrence expansion in
//!   `google::recur::expand_google_series`, on the crate's `ics::recur`).
//! - `graph`: Graph v1.0 calendars under `/v1.0/` (Graph's own recurrence
//!   patterns in `graph::recur`).
//! - `faults`: [`FaultRule`]s, Graph's mailbox concurrency limit, and the
//!   request log — the middleware in front of every provider route.
//! - `control`: `/_emulator/…` JSON controls and event seeding/inspection.
//! - `errors`, `ids`, `time`: provider error shapes, id look-alikes, zone
//!   and timestamp handling.
//!
//! # Invariants
//! - Every write — API, control API, or seeding helper — goes through the
//!   same provider code path, bumps the item's etag/changeKey and records a
//!   change sequence number, so sync tokens and delta links see it.
//! - The state lock is never held across an `.await`.
//!
//! # Use
//! ```no_run
//! # async fn demo() {
//! use calbridge::upstream::emulator::{Emulator, FaultKind, FaultRule, Provider};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let emu = Emulator::start(listener).await;
//! emu.create_user(Provider::Google, "ann@example.com", None, Some("Europe/Berlin"));
//! emu.add_fault(FaultRule::new(FaultKind::GoogleRateLimit).times(2));
//! // point a client at emu.base_url …
//! emu.shutdown().await;
//! # }
//! ```

mod control;
mod errors;
mod faults;
mod google;
mod graph;
mod ids;
mod oauth;
mod state;
mod time;

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use control::SeedError;
pub use faults::{FaultKind, FaultRule};
pub use state::{
    CalendarInfo, Emulator, EmulatorConfig, IssuedTokens, OAuthClient, Provider, RequestRecord,
    UserInfo, DEFAULT_GOOGLE_CLIENT_ID, DEFAULT_GOOGLE_CLIENT_SECRET, DEFAULT_MICROSOFT_CLIENT_ID,
    DEFAULT_MICROSOFT_CLIENT_SECRET,
};

/// Every emulator route, ready to serve or to mount.
pub fn router(emu: Arc<Emulator>) -> Router {
    Router::new()
        .merge(google::routes())
        .merge(graph::routes())
        .route("/o/oauth2/v2/auth", get(oauth::google_authorize))
        .route("/token", post(oauth::google_token))
        .route("/revoke", post(oauth::google_revoke))
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            get(oauth::microsoft_authorize),
        )
        .route("/{tenant}/oauth2/v2.0/token", post(oauth::microsoft_token))
        .route_layer(middleware::from_fn_with_state(
            emu.clone(),
            faults::front_door,
        ))
        .merge(control::routes())
        .fallback(unknown_route)
        .with_state(emu)
}

/// Unknown paths answer in the shape of the provider whose prefix they use.
async fn unknown_route(req: Request) -> Response {
    let path = req.uri().path().to_string();
    match faults::provider_of(&path) {
        Some(Provider::Google) => errors::GoogleError::not_found().into_response(),
        Some(Provider::Microsoft) => errors::GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "Resource not found for the segment '{}'.",
                path.rsplit('/').next().unwrap_or("")
            ),
        )
        .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// A running emulator. Dereferences to [`Emulator`] for the controls; stops
/// serving on [`EmulatorHandle::shutdown`] or when dropped.
pub struct EmulatorHandle {
    /// `http://127.0.0.1:PORT` — the root of every emulated API.
    pub base_url: String,
    /// The shared state (also reachable through `Deref`).
    pub state: Arc<Emulator>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl EmulatorHandle {
    /// Stops serving and waits for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// The root of Google's token endpoint etc. are all under `base_url`;
    /// this joins a path to it.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }
}

impl Deref for EmulatorHandle {
    type Target = Emulator;

    fn deref(&self) -> &Emulator {
        &self.state
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Emulator {
    /// Serves a new emulator with the default configuration on `listener`.
    pub async fn start(listener: TcpListener) -> EmulatorHandle {
        Self::start_with(EmulatorConfig::default(), listener).await
    }

    /// Serves a new emulator with `config` on `listener`.
    pub async fn start_with(config: EmulatorConfig, listener: TcpListener) -> EmulatorHandle {
        let emu = Emulator::new(config);
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let host = if addr.ip().is_unspecified() {
            format!("127.0.0.1:{}", addr.port())
        } else {
            addr.to_string()
        };
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(emu.clone(), listener, async move {
            let _ = rx.await;
        }));
        EmulatorHandle {
            base_url: format!("http://{host}"),
            state: emu,
            shutdown: Some(tx),
            task: Some(task),
        }
    }
}

/// Serves `emu` on `listener` until `shutdown` completes (for
/// `calbridge fake-upstream --listen ADDR`).
pub async fn serve(
    emu: Arc<Emulator>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = router(emu);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "emulator server stopped");
    }
}

/// The calbridge settings (dotted config keys and values) that point both
/// providers at an emulator serving at `base`, with its default OAuth
/// clients. Used by `calbridge demo`, the tests and the benchmarks.
pub fn client_settings(base: &str) -> Vec<(&'static str, String)> {
    vec![
        ("google.client_id", DEFAULT_GOOGLE_CLIENT_ID.into()),
        ("google.client_secret", DEFAULT_GOOGLE_CLIENT_SECRET.into()),
        ("google.auth_url", format!("{base}/o/oauth2/v2/auth")),
        ("google.token_url", format!("{base}/token")),
        ("google.revoke_url", format!("{base}/revoke")),
        ("google.api_base", format!("{base}/calendar/v3")),
        ("microsoft.client_id", DEFAULT_MICROSOFT_CLIENT_ID.into()),
        (
            "microsoft.client_secret",
            DEFAULT_MICROSOFT_CLIENT_SECRET.into(),
        ),
        (
            "microsoft.auth_url",
            format!("{base}/common/oauth2/v2.0/authorize"),
        ),
        (
            "microsoft.token_url",
            format!("{base}/common/oauth2/v2.0/token"),
        ),
        ("microsoft.api_base", format!("{base}/v1.0")),
    ]
}
