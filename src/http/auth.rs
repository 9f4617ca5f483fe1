//! Authentication: the admin bearer token, and HTTP Basic with a staff
//! member's e-mail and app password for CalDAV.
//!
//! Secrets are compared as hashes in constant time. Verified Basic
//! credentials are cached (keyed by a hash of user and password, never the
//! password itself) because CalDAV clients send them on every request and an
//! Argon2 verification costs milliseconds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::error::ApiError;
use super::App;
use crate::crypto;
use crate::model::StaffId;

/// Proof that the request carried the admin token.
pub struct Admin;

impl FromRequestParts<App> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        match presented {
            Some(t)
                if crypto::ct_eq(
                    crypto::token_hash(t).as_bytes(),
                    app.admin_token_hash.as_bytes(),
                ) =>
            {
                Ok(Admin)
            }
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// User name and password from `Authorization: Basic …`.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.trim().to_string(), pass.to_string()))
}

const CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_MAX: usize = 10_000;

/// Recently verified Basic credentials.
pub struct CredentialCache {
    /// A std mutex: held for a map lookup only, never across an await.
    entries: Mutex<HashMap<String, (StaffId, Instant)>>,
    /// Argon2 verifications running at once. Each holds 7 MiB while it
    /// runs and wrong passwords are never cached, so without a bound a
    /// burst of requests with wrong passwords takes that much memory per
    /// request (200 at once: 3.7 GB). Requests beyond it wait their turn;
    /// a permit lives as long as the verification, even when the request
    /// that asked for it is gone.
    verifying: std::sync::Arc<tokio::sync::Semaphore>,
    /// Argon2 working memory, one per verification that may run at once,
    /// reused (a std mutex: taken and returned around the blocking work).
    memories: std::sync::Arc<Mutex<Vec<crypto::Argon2Memory>>>,
}

impl Default for CredentialCache {
    fn default() -> Self {
        Self::new()
    }
}

impl CredentialCache {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        CredentialCache {
            entries: Mutex::new(HashMap::new()),
            verifying: std::sync::Arc::new(tokio::sync::Semaphore::new(cores.max(2))),
            memories: std::sync::Arc::default(),
        }
    }

    fn key(user: &str, pass: &str) -> String {
        crypto::sha256_hex(format!("{}\0{pass}", user.to_ascii_lowercase()).as_bytes())
    }

    fn lookup(&self, user: &str, pass: &str) -> Option<StaffId> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&Self::key(user, pass))
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(s, _)| s.clone())
    }

    fn remember(&self, user: &str, pass: &str, staff: StaffId) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CACHE_MAX {
            map.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if map.len() >= CACHE_MAX {
                map.clear();
            }
        }
        map.insert(Self::key(user, pass), (staff, Instant::now()));
    }

    /// Forget everything (after an app password or staff member is removed).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// The staff member these Basic credentials belong to, if any. The same
/// work is done for an unknown user as for a wrong password, so the answer
/// does not tell which part was wrong.
pub async fn verify_basic(app: &App, user: &str, pass: &str) -> Option<StaffId> {
    if user.is_empty() || pass.is_empty() || user.len() > 320 || pass.len() > 1024 {
        return None;
    }
    if let Some(s) = app.dav_auth.lookup(user, pass) {
        return Some(s);
    }
    let permit = app.dav_auth.verifying.clone().acquire_owned().await.ok()?;
    let memories = app.dav_auth.memories.clone();
    // Requests that waited while the same credentials were being verified
    // (a client opening several connections at once) find them cached now.
    if let Some(s) = app.dav_auth.lookup(user, pass) {
        return Some(s);
    }
    let db = app.db.clone();
    let (u, p) = (user.to_string(), pass.to_string());
    let found = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let pool = || memories.lock().unwrap_or_else(|e| e.into_inner());
        let mut mem = pool().pop().unwrap_or_default();
        let found = (|| {
            let mut checked = 0;
            for staff in db.staff_by_email(&u).ok()? {
                for ap in db.app_passwords(&staff.id).ok()? {
                    checked += 1;
                    if crypto::verify_password_with(&p, &ap.hash, &mut mem) {
                        return Some(staff.id);
                    }
                }
            }
            if checked == 0 {
                // Equalise timing with a real verification.
                let _ = crypto::verify_password_with(&p, DUMMY_HASH, &mut mem);
            }
            None
        })();
        pool().push(mem);
        found
    })
    .await
    .ok()
    .flatten();
    if let Some(s) = &found {
        app.dav_auth.remember(user, pass, s.clone());
    }
    found
}

/// An Argon2id hash of a fixed string with the parameters of
/// [`crypto::hash_password`], used to spend the same time on unknown users
/// (the result is ignored).
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=7168,t=5,p=1$WntYudUpOBNb8cp0uNXhqQ$4GAUuwDbtFyDo66/IO3TtxqJ2Vz//LUTyqBkBh9v2lE";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode("a@b.c:p:w"))
                .parse()
                .unwrap(),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("a@b.c".to_string(), "p:w".to_string()))
        );
        h.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert_eq!(basic_credentials(&h), None);
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(basic_credentials(&h), None);
    }

    #[test]
    fn dummy_hash_has_the_real_parameters() {
        assert!(argon2::password_hash::PasswordHash::new(DUMMY_HASH).is_ok());
        let real = crypto::hash_password("x");
        let params = |h: &str| h.split('$').nth(3).map(str::to_string);
        assert_eq!(params(DUMMY_HASH), params(&real));
    }
}
