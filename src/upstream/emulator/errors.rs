//! Error bodies in each provider's own shape.
//!
//! Owns: Google's `{"error":{"errors":[…],"code","message"}}`, Graph's
//! `{"error":{"code","message","innerError":{…}}}`, and the OAuth 2.0 token
//! endpoint errors of Google and the Microsoft identity platform (with
//! `AADSTS` codes). Handlers return these as `Err(…)`; nothing else in the
//! emulator spells an error body.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{json, Value};

use super::ids;

/// A Google Calendar API error.
#[derive(Debug, Clone)]
pub(crate) struct GoogleError {
    pub status: StatusCode,
    pub domain: &'static str,
    pub reason: &'static str,
    pub message: String,
    pub location: Option<(&'static str, String)>,
}

impl GoogleError {
    pub fn new(status: StatusCode, domain: &'static str, reason: &'static str, msg: &str) -> Self {
        GoogleError {
            status,
            domain,
            reason,
            message: msg.to_string(),
            location: None,
        }
    }

    pub fn at(mut self, location_type: &'static str, location: &str) -> Self {
        self.location = Some((location_type, location.to_string()));
        self
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "global", "notFound", "Not Found")
    }

    pub fn invalid(message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "global", "invalid", message)
    }

    pub fn required(message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "global", "required", message)
    }

    pub fn bad_request(message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "global", "badRequest", message)
    }

    pub fn parse_error() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "global",
            "parseError",
            "Parse Error",
        )
    }

    pub fn auth() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "global",
            "authError",
            "Invalid Credentials",
        )
        .at("header", "Authorization")
    }

    pub fn insufficient_scope() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "global",
            "insufficientPermissions",
            "Request had insufficient authentication scopes.",
        )
    }

    pub fn duplicate() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "global",
            "duplicate",
            "The requested identifier already exists.",
        )
    }

    pub fn deleted() -> Self {
        Self::new(
            StatusCode::GONE,
            "global",
            "deleted",
            "Resource has been deleted",
        )
    }

    pub fn condition_not_met() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "global",
            "conditionNotMet",
            "Precondition Failed",
        )
        .at("header", "If-Match")
    }

    pub fn full_sync_required() -> Self {
        Self::new(
            StatusCode::GONE,
            "calendar",
            "fullSyncRequired",
            "Sync token is no longer valid, a full sync is required.",
        )
        .at("parameter", "syncToken")
    }

    pub fn time_range_empty(location: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "calendar",
            "timeRangeEmpty",
            "The specified time range is empty.",
        )
        .at("parameter", location)
    }

    pub fn body(&self) -> Value {
        let mut item = json!({
            "domain": self.domain,
            "reason": self.reason,
            "message": self.message,
        });
        if let Some((lt, l)) = &self.location {
            item["locationType"] = json!(lt);
            item["location"] = json!(l);
        }
        json!({
            "error": {
                "errors": [item],
                "code": self.status.as_u16(),
                "message": self.message,
            }
        })
    }
}

impl IntoResponse for GoogleError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, json_body(&self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
                ),
            );
        }
        resp
    }
}

/// A Microsoft Graph error.
#[derive(Debug, Clone)]
pub(crate) struct GraphError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &'static str, message: &str) -> Self {
        GraphError {
            status,
            code,
            message: message.to_string(),
            retry_after: None,
        }
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    pub fn bad_request(message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ErrorInvalidRequest", message)
    }

    pub fn invalid_parameter(message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ErrorInvalidParameter", message)
    }

    pub fn unreadable_body() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )
    }

    pub fn auth(message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
    }

    pub fn access_denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )
    }

    pub fn irresolvable_conflict() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
        )
    }

    pub fn sync_state_not_found() -> Self {
        Self::new(
            StatusCode::GONE,
            "syncStateNotFound",
            "The sync state generation is not found or has expired. Please restart synchronization without a state token.",
        )
    }

    pub fn throttled(message: &str, retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "ApplicationThrottled",
            message,
        );
        e.retry_after = Some(retry_after);
        e
    }

    pub fn body(&self) -> Value {
        json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                    "request-id": ids::guid(),
                    "client-request-id": ids::guid(),
                }
            }
        })
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, json_body(&self.body())).into_response();
        let h = resp.headers_mut();
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
                ),
            );
        }
        resp
    }
}

/// An OAuth 2.0 token-endpoint error (RFC 6749 §5.2) in Google's shape.
pub(crate) fn google_oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        json_body(&json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// An OAuth 2.0 token-endpoint error in the Microsoft identity platform's
/// shape: the `AADSTS` code leads the description and is repeated in
/// `error_codes`.
pub(crate) fn microsoft_oauth_error(
    status: StatusCode,
    error: &str,
    aadsts: u32,
    text: &str,
) -> Response {
    let now = Utc::now();
    let trace = ids::guid();
    let correlation = ids::guid();
    let description = format!(
        "AADSTS{aadsts}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {}",
        now.format("%Y-%m-%d %H:%M:%SZ")
    );
    (
        status,
        json_body(&json!({
            "error": error,
            "error_description": description,
            "error_codes": [aadsts],
            "timestamp": now.format("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={aadsts}"),
        })),
    )
        .into_response()
}

/// A JSON body with the content type both providers send.
pub(crate) fn json_body(v: &Value) -> ([(header::HeaderName, &'static str); 1], String) {
    (
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        v.to_string(),
    )
}

/// A 200 JSON response.
pub(crate) fn json_ok(v: &Value) -> Response {
    (StatusCode::OK, json_body(v)).into_response()
}
