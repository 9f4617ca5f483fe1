//! The HTTP server: router, authentication and the handlers of the admin
//! API, feeds, CalDAV and the OAuth callbacks. Only this module knows about
//! hyper and axum.
//!
//! [`run`] takes an already-bound listener and a shutdown future, so tests
//! bind `127.0.0.1:0` and drive the real server.

pub mod api;
pub mod auth;
pub mod body;
pub mod dav;
pub mod error;
pub mod feeds;
pub mod oauth;
pub mod ops;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::config::Config;
use crate::feed::FeedCache;
use crate::store::Db;

/// Everything a handler may need; cloned per request (cheap: all `Arc`s).
#[derive(Clone)]
pub struct App {
    pub inner: Arc<AppInner>,
}

pub struct AppInner {
    pub db: Db,
    pub config: Arc<Config>,
    /// SHA-256 of the admin token; compared in constant time.
    pub admin_token_hash: String,
    pub feeds: FeedCache,
    pub metrics: ops::Metrics,
    pub dav_auth: auth::CredentialCache,
    pub sync: Arc<crate::sync::SyncEngine>,
    pub secrets: crate::crypto::SecretBox,
    /// False until start-up work is done, and again while shutting down.
    pub ready: AtomicBool,
    pub started: Instant,
}

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.inner
    }
}

/// What [`App::new`] found about the admin token.
pub enum AdminToken {
    /// Taken from the configuration.
    Configured,
    /// Generated now: shown once, only its hash is stored.
    Generated(String),
    /// Generated at an earlier start (its hash is stored).
    Stored,
}

impl App {
    pub fn new(
        config: Arc<Config>,
        db: Db,
        secrets: crate::crypto::SecretBox,
    ) -> Result<(App, AdminToken), crate::store::db::DbError> {
        let (admin_token_hash, token) = match &config.admin_token {
            Some(t) => (
                crate::crypto::token_hash(t.expose()),
                AdminToken::Configured,
            ),
            None => match db.meta("admin_token_hash")? {
                Some(h) => (String::from_utf8_lossy(&h).into_owned(), AdminToken::Stored),
                None => {
                    let token = crate::crypto::random_token();
                    let hash = crate::crypto::token_hash(&token);
                    let stored = db.init_meta("admin_token_hash", hash.as_bytes())?;
                    if stored == hash.as_bytes() {
                        (hash, AdminToken::Generated(token))
                    } else {
                        (
                            String::from_utf8_lossy(&stored).into_owned(),
                            AdminToken::Stored,
                        )
                    }
                }
            },
        };
        let sync = crate::sync::SyncEngine::new(db.clone(), config.clone(), secrets.clone());
        let app = App {
            inner: Arc::new(AppInner {
                sync,
                secrets,
                feeds: FeedCache::new(),
                metrics: ops::Metrics::new(),
                dav_auth: auth::CredentialCache::new(),
                ready: AtomicBool::new(false),
                started: Instant::now(),
                admin_token_hash,
                config,
                db,
            }),
        };
        Ok((app, token))
    }

    /// Run blocking store work (writes flush to disk) off the async threads.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, error::ApiError>
    where
        F: FnOnce(&Db) -> Result<T, crate::store::db::DbError> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.db.clone();
        Ok(tokio::task::spawn_blocking(move || f(&db)).await??)
    }

    /// A URL under `server.public_url`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.config.public_url, path)
    }
}

/// The whole router.
pub fn router(app: App) -> Router {
    Router::new()
        .merge(ops::router())
        .merge(api::router(app.clone()))
        .merge(feeds::router())
        .merge(oauth::router())
        .merge(dav::router())
        .fallback(not_found)
        .layer(middleware::from_fn(body::drain_unread))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

async fn not_found() -> error::ApiError {
    error::ApiError::not_found("path")
}

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

/// The path as it may be logged: feed tokens never appear.
pub fn loggable_path(path: &str) -> String {
    if let Some(rest) = path.strip_prefix("/feeds/") {
        let ext = if rest.ends_with(".ics") { ".ics" } else { "" };
        return format!("/feeds/<token>{ext}");
    }
    let mut p: String = path.chars().take(200).collect();
    if path.len() > 200 {
        p.push('…');
    }
    p
}

/// Per-request span, metrics and timeout. The query string is never logged
/// (OAuth codes and states travel there).
async fn observe(State(app): State<App>, req: Request, next: Next) -> Response {
    let id = REQUEST_IDS.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let path = loggable_path(req.uri().path());
    let group = ops::route_group(req.uri().path());
    let span = tracing::info_span!("request", id, %method, path = %path);
    let started = Instant::now();
    let timeout = app.config.request_timeout;
    let fut = tracing::Instrument::instrument(next.run(req), span.clone());
    let response = match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => {
            let mut r = Response::new(axum::body::Body::from("request timed out\n"));
            *r.status_mut() = axum::http::StatusCode::REQUEST_TIMEOUT;
            r
        }
    };
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    app.metrics.observe(group, method.as_str(), status, elapsed);
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, ms = elapsed.as_secs_f64() * 1e3, "served");
        } else {
            tracing::debug!(status, ms = elapsed.as_secs_f64() * 1e3, "served");
        }
    });
    response
}

/// How long a client may take to send a request's headers (and, on a new
/// connection, its first bytes).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Wait until the client has sent enough to tell HTTP/1 from HTTP/2, for at
/// most `limit`; false when it did not (or closed). hyper-util's automatic
/// protocol detection reads these bytes with no time limit and hyper's
/// header-read timeout only starts after it, so without this a connection
/// that sends nothing, or a slice of the HTTP/2 preface, is held open
/// forever. The bytes are peeked, not consumed.
async fn protocol_known(stream: &tokio::net::TcpStream, limit: Duration) -> bool {
    const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 24];
    loop {
        match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                if n >= H2_PREFACE.len() || buf[..n] != H2_PREFACE[..n] {
                    return true;
                }
                // Part of the HTTP/2 preface: peek returns the same bytes at
                // once until more arrive, so wait a little between looks.
                if tokio::time::Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => return false,
        }
    }
}

/// A connection whose writes may not stall: when the client accepts no
/// byte of a response for `limit` (it reads slowly or not at all and the
/// socket buffers are full), the write fails and hyper drops the
/// connection. The request timeout cannot do this: it ends when the
/// response starts, not when it has been sent.
struct WriteStall<T> {
    io: T,
    limit: Duration,
    /// Set while a write is pending; cleared by any progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteStall<T> {
    fn new(io: T, limit: Duration) -> Self {
        WriteStall {
            io,
            limit,
            stalled: None,
        }
    }

    fn check<R>(
        &mut self,
        r: Poll<std::io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<R>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading the response",
            )));
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteStall<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteStall<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.check(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.check(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.check(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.check(r, cx)
    }
}

/// Serve `router` on `listener` until `shutdown` resolves, then finish the
/// requests in flight (up to 10 s) and return.
pub async fn run(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let router = router(app.clone());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Slow clients that never finish their headers are cut off.
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(64 * 1024)
        // Header names go out as `Content-Type`, not `content-type`: HTTP
        // says case does not matter, but some proxies and older DAV
        // clients match names byte for byte (python-caldav's proxy test
        // rewrites `\r\nContent-Type: ` and finds nothing otherwise).
        .title_case_headers(true)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    app.ready.store(true, Ordering::SeqCst);
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off, don't spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        let write_stall = app.config.request_timeout;
        tokio::spawn(async move {
            if !protocol_known(&stream, HEADER_READ_TIMEOUT).await {
                return;
            }
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    router.clone().oneshot(req.map(axum::body::Body::new))
                });
            let io = TokioIo::new(WriteStall::new(stream, write_stall));
            let conn = builder.serve_connection_with_upgrades(io, service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    app.ready.store(false, Ordering::SeqCst);
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("connections still open after 10 s; closing them");
        }
    }
    Ok(())
}
