//! Operations endpoints: `/healthz` (the process answers), `/readyz` (the
//! store answers and the server accepts work), `/metrics` (Prometheus text).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::App;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub group: &'static str,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabel {
    pub group: &'static str,
}

/// The process's counters. Registered once; encoded on each scrape.
pub struct Metrics {
    /// A std mutex: encoding takes microseconds and never awaits.
    registry: Mutex<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<GroupLabel, Histogram>,
    pub feed_renders: Counter,
    pub feed_cache_hits: Counter,
    pub feed_not_modified: Counter,
    pub uptime: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("calbridge");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<GroupLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
            ])
        });
        let feed_renders = Counter::default();
        let feed_cache_hits = Counter::default();
        let feed_not_modified = Counter::default();
        let uptime = Gauge::<f64, AtomicU64>::default();
        registry.register("http_requests", "HTTP requests served", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route group",
            latency.clone(),
        );
        registry.register("feed_renders", "ICS feeds rendered", feed_renders.clone());
        registry.register(
            "feed_cache_hits",
            "ICS feed polls served from cached bytes",
            feed_cache_hits.clone(),
        );
        registry.register(
            "feed_not_modified",
            "ICS feed polls answered 304",
            feed_not_modified.clone(),
        );
        registry.register("uptime_seconds", "Seconds since start", uptime.clone());
        Metrics {
            registry: Mutex::new(registry),
            requests,
            latency,
            feed_renders,
            feed_cache_hits,
            feed_not_modified,
            uptime,
        }
    }

    pub fn observe(&self, group: &'static str, method: &str, status: u16, elapsed: Duration) {
        // Unknown methods are folded so a client cannot grow the label set.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" | "PROPFIND"
            | "PROPPATCH" | "REPORT" | "MKCALENDAR" | "MKCOL" => method.to_string(),
            _ => "other".to_string(),
        };
        self.requests
            .get_or_create(&RequestLabels {
                group,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&GroupLabel { group })
            .observe(elapsed.as_secs_f64());
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The metrics label for a path.
pub fn route_group(path: &str) -> &'static str {
    if path.starts_with("/api/") {
        "api"
    } else if path.starts_with("/feeds/") {
        "feeds"
    } else if path.starts_with("/dav/") || path == "/dav" || path.starts_with("/.well-known/") {
        "dav"
    } else if path.starts_with("/oauth/") {
        "oauth"
    } else if matches!(path, "/healthz" | "/readyz" | "/metrics") {
        "ops"
    } else {
        "other"
    }
}

pub fn router() -> Router<App> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<App>) -> Response {
    let store_ok = app.db.meta("schema_version").is_ok();
    if store_ok && app.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(app): State<App>) -> Response {
    app.metrics.uptime.set(app.started.elapsed().as_secs_f64());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}
