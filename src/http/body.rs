//! Request bodies with a size limit: raw bytes, and JSON that fails with a
//! JSON error naming the problem.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::App;

#[derive(Debug)]
pub enum BodyError {
    TooLarge(usize),
    /// The client went away or sent a broken body.
    Read(String),
    /// A `Content-Encoding` we do not accept on requests.
    Encoded(String),
}

impl BodyError {
    pub fn to_api(&self) -> ApiError {
        match self {
            BodyError::TooLarge(limit) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the request body is larger than the limit of {limit} bytes"),
            ),
            BodyError::Read(m) => ApiError::bad_request(format!("could not read the body: {m}")),
            BodyError::Encoded(e) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!("request bodies with Content-Encoding {e:?} are not accepted"),
            ),
        }
    }
}

/// Read at most `limit` bytes. A declared `Content-Length` over the limit is
/// refused before reading; compressed request bodies are refused (a small
/// gzip body can expand without bound).
pub async fn read_limited(req: Request, limit: usize) -> Result<Bytes, BodyError> {
    if let Some(enc) = req.headers().get(header::CONTENT_ENCODING) {
        let enc = enc.to_str().unwrap_or("?").trim().to_ascii_lowercase();
        if enc != "identity" && !enc.is_empty() {
            return Err(BodyError::Encoded(enc));
        }
    }
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(BodyError::TooLarge(limit));
        }
    }
    let body: Body = req.into_body();
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(BodyError::TooLarge(limit))
            } else {
                Err(BodyError::Read(e.to_string()))
            }
        }
    }
}

/// A JSON body of at most `server.max_body` bytes.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<App> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &App) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            if !ct.starts_with("application/json") && !ct.contains("+json") {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("expected Content-Type: application/json, not {ct:?}"),
                ));
            }
        }
        let bytes = read_limited(req, app.config.max_body)
            .await
            .map_err(|e| e.to_api())?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; a JSON object is expected",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        use serde_json::error::Category;
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Data if path != "." => ApiError::invalid(&path, inner.to_string()),
            Category::Data => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                inner.to_string(),
            ),
            _ => ApiError::bad_request(format!("invalid JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    Ok(value)
}

/// Like [`JsonBody`], but an empty body means `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<App> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &App) -> Result<Self, ApiError> {
        let bytes = read_limited(req, app.config.max_body)
            .await
            .map_err(|e| e.to_api())?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// The most of an unread request body drained so the connection can be
/// reused; anything larger closes the connection instead.
const DRAIN_LIMIT: u64 = 1 << 20;

/// A request body that hands back whatever its reader left unread when it
/// is dropped (see [`drain_unread`]).
struct Reclaim {
    inner: Option<Body>,
    slot: Arc<Mutex<Option<Body>>>,
}

impl http_body::Body for Reclaim {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        match self.inner.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner
            .as_ref()
            .map(http_body::Body::size_hint)
            .unwrap_or_default()
    }
}

impl Drop for Reclaim {
    fn drop(&mut self) {
        if let Some(b) = self.inner.take() {
            if !http_body::Body::is_end_stream(&b) {
                if let Ok(mut slot) = self.slot.lock() {
                    *slot = Some(b);
                }
            }
        }
    }
}

/// Middleware: a handler that answers without reading the request body (a
/// 401 challenge, a redirect, an early 4xx) would otherwise leave hyper to
/// close the connection under a client that is about to reuse it, which
/// clients report as "remote end closed connection without response". The
/// rest of a small body is read and dropped before the answer goes out; a
/// large one, or one the client is waiting on `100-continue` to send, gets
/// `Connection: close` so the client knows not to reuse the connection.
pub async fn drain_unread(req: Request, next: axum::middleware::Next) -> Response {
    if http_body::Body::is_end_stream(req.body()) {
        return next.run(req).await;
    }
    let waits_for_continue = req
        .headers()
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let slot = Arc::new(Mutex::new(None));
    let req = req.map(|b| {
        Body::new(Reclaim {
            inner: Some(b),
            slot: slot.clone(),
        })
    });
    let mut resp = next.run(req).await;
    let left = slot.lock().ok().and_then(|mut s| s.take());
    if let Some(body) = left {
        let drainable = !waits_for_continue && declared.is_none_or(|n| n <= DRAIN_LIMIT);
        let drained = drainable
            && tokio::time::timeout(std::time::Duration::from_secs(5), async {
                let mut body = http_body_util::Limited::new(body, DRAIN_LIMIT as usize);
                while let Some(frame) = body.frame().await {
                    if frame.is_err() {
                        return false;
                    }
                }
                true
            })
            .await
            .unwrap_or(false);
        if !drained {
            resp.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
    }
    resp
}
