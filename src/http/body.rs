//! Request bodies with a size limit: raw bytes, and JSON that fails with a
//! JSON error naming the problem.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
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
