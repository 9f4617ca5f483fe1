//! The one HTTP client every upstream call goes through: provider error
//! shapes classified into [`UpstreamError`], transient failures retried with
//! exponential backoff and full jitter, `Retry-After` honoured, bodies read
//! with a size limit and parsed with a clear error for garbage.

use std::time::Duration;

use rand::Rng;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

/// Largest response body accepted from a provider.
pub const MAX_RESPONSE: usize = 64 << 20;

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// 401: the access token was refused (refresh once, then reconnect).
    #[error("the provider refused the access token")]
    Unauthorized,
    /// 429, or Google's 403 rate-limit reasons.
    #[error("rate limited by the provider{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, timeouts, connection failures.
    #[error("the provider is unavailable: {message}")]
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// 410: sync token / delta token no longer valid (or resource deleted).
    #[error("the provider's sync state expired ({0})")]
    Gone(String),
    /// 412: the remote etag changed.
    #[error("the remote item changed since it was read")]
    PreconditionFailed,
    #[error("not found upstream")]
    NotFound,
    /// A refusal that will not change by retrying (400, 403, 409…).
    #[error("the provider refused the request ({status} {reason}): {message}")]
    Refused {
        status: u16,
        reason: String,
        message: String,
    },
    /// A 2xx whose body is not what the API documents.
    #[error("the provider answered something unreadable: {0}")]
    Garbage(String),
}

impl UpstreamError {
    /// Worth trying again later without any change.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            UpstreamError::RateLimited { .. }
                | UpstreamError::Unavailable { .. }
                | UpstreamError::Garbage(_)
        )
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstreamError::RateLimited { retry_after }
            | UpstreamError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Backoff settings. Tests shrink them.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in one call before the error goes back to the caller.
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// A `Retry-After` longer than this is not waited out in-call: the
    /// error goes back so the scheduler can reschedule the whole run.
    pub max_inline_wait: Duration,
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(32),
            max_inline_wait: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with full jitter for attempt `n` (0-based).
    pub fn backoff(&self, n: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << n.min(16));
        let ceiling = exp.min(self.cap);
        let ms = ceiling.as_millis().max(1) as u64;
        Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms))
    }
}

/// A reqwest client with rustls (ring) and sane timeouts.
pub fn build_client(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("calbridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds with a crypto provider installed")
}

#[derive(Clone)]
pub struct Upstream {
    pub http: reqwest::Client,
    pub policy: RetryPolicy,
}

/// `Retry-After` in seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Classify a non-2xx response from Google's or Graph's error shapes.
pub fn classify(status: u16, headers: &HeaderMap, body: &[u8]) -> UpstreamError {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let err = &json["error"];
    // Google: error.errors[0].reason; Graph: error.code.
    let reason = err["errors"][0]["reason"]
        .as_str()
        .or_else(|| err["code"].as_str())
        .or_else(|| err.as_str())
        .unwrap_or("")
        .to_string();
    let message = err["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    let ra = retry_after(headers);
    match status {
        401 => UpstreamError::Unauthorized,
        403 if matches!(
            reason.as_str(),
            "rateLimitExceeded" | "userRateLimitExceeded" | "ApplicationThrottled"
        ) =>
        {
            UpstreamError::RateLimited { retry_after: ra }
        }
        404 => UpstreamError::NotFound,
        410 => UpstreamError::Gone(if reason.is_empty() {
            "gone".into()
        } else {
            reason
        }),
        412 => UpstreamError::PreconditionFailed,
        429 => UpstreamError::RateLimited { retry_after: ra },
        408 | 500..=599 => UpstreamError::Unavailable {
            message: format!("{status} {reason}").trim().to_string(),
            retry_after: ra,
        },
        _ => UpstreamError::Refused {
            status,
            reason,
            message,
        },
    }
}

/// A successful response: status, headers and body.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Reply {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, UpstreamError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| UpstreamError::Garbage(format!("{e} (in {} bytes)", self.body.len())))
    }
}

async fn read_body(resp: reqwest::Response) -> Result<bytes::Bytes, UpstreamError> {
    if resp
        .content_length()
        .is_some_and(|n| n as usize > MAX_RESPONSE)
    {
        return Err(UpstreamError::Garbage("response too large".into()));
    }
    let mut resp = resp;
    let mut buf = bytes::BytesMut::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if buf.len() + c.len() > MAX_RESPONSE {
                    return Err(UpstreamError::Garbage("response too large".into()));
                }
                buf.extend_from_slice(&c);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) => {
                return Err(UpstreamError::Unavailable {
                    message: format!("body cut off: {e}"),
                    retry_after: None,
                })
            }
        }
    }
}

impl Upstream {
    pub fn new(policy: RetryPolicy) -> Self {
        Upstream {
            http: build_client(policy.timeout),
            policy,
        }
    }

    /// Send a request built by `make` (called again for each attempt),
    /// retrying transient failures. Non-2xx answers come back classified.
    pub async fn send(
        &self,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Reply, UpstreamError> {
        let mut attempt = 0;
        loop {
            let err: UpstreamError = match make(&self.http).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    match read_body(resp).await {
                        Ok(body) if (200..300).contains(&status) || status == 304 => {
                            return Ok(Reply {
                                status,
                                headers,
                                body,
                            })
                        }
                        Ok(body) => classify(status, &headers, &body),
                        Err(e) => e,
                    }
                }
                Err(e) => UpstreamError::Unavailable {
                    message: if e.is_timeout() {
                        "timed out".to_string()
                    } else {
                        format!("connection failed: {}", e.without_url())
                    },
                    retry_after: None,
                },
            };
            attempt += 1;
            let retry = matches!(
                err,
                UpstreamError::RateLimited { .. } | UpstreamError::Unavailable { .. }
            );
            if !retry || attempt >= self.policy.attempts {
                return Err(err);
            }
            let wait = match err.retry_after() {
                Some(ra) if ra > self.policy.max_inline_wait => return Err(err),
                Some(ra) => ra,
                None => self.policy.backoff(attempt - 1),
            };
            tracing::debug!(error = %err, wait_ms = wait.as_millis() as u64, "retrying upstream call");
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_provider_errors() {
        let h = HeaderMap::new();
        let google = |reason: &str| {
            format!(
                r#"{{"error":{{"errors":[{{"domain":"usageLimits","reason":"{reason}","message":"m"}}],"code":403,"message":"m"}}}}"#
            )
        };
        assert!(matches!(
            classify(403, &h, google("rateLimitExceeded").as_bytes()),
            UpstreamError::RateLimited { .. }
        ));
        assert!(matches!(
            classify(403, &h, google("userRateLimitExceeded").as_bytes()),
            UpstreamError::RateLimited { .. }
        ));
        assert!(matches!(
            classify(403, &h, google("forbiddenForNonOrganizer").as_bytes()),
            UpstreamError::Refused { status: 403, .. }
        ));
        assert!(matches!(
            classify(403, &h, google("quotaExceeded").as_bytes()),
            UpstreamError::Refused { .. }
        ));
        let mut ra = HeaderMap::new();
        ra.insert("retry-after", "7".parse().unwrap());
        match classify(
            429,
            &ra,
            br#"{"error":{"code":"ApplicationThrottled","message":"MailboxConcurrency"}}"#,
        ) {
            UpstreamError::RateLimited { retry_after } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            e => panic!("{e:?}"),
        }
        assert!(
            matches!(classify(410, &h, br#"{"error":{"code":"syncStateNotFound"}}"#), UpstreamError::Gone(r) if r == "syncStateNotFound")
        );
        assert!(matches!(
            classify(412, &h, b""),
            UpstreamError::PreconditionFailed
        ));
        assert!(matches!(
            classify(503, &h, b"<html>"),
            UpstreamError::Unavailable { .. }
        ));
        assert!(matches!(
            classify(401, &h, b""),
            UpstreamError::Unauthorized
        ));
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let p = RetryPolicy::default();
        for n in 0..20 {
            let d = p.backoff(n);
            assert!(d <= p.cap, "{d:?}");
        }
        let first: u128 = (0..50).map(|_| p.backoff(0).as_millis()).max().unwrap();
        let later: u128 = (0..50).map(|_| p.backoff(4).as_millis()).min().unwrap();
        assert!(first <= 500 && later >= 4000);
    }

    #[test]
    fn retry_after_as_seconds_or_date() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "120".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        h.insert(
            "retry-after",
            httpdate::fmt_http_date(later).parse().unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(d <= Duration::from_secs(30) && d >= Duration::from_secs(28));
    }
}
