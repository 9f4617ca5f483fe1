//! Connected upstream accounts: one Google or Microsoft identity of one staff
//! member, its encrypted tokens, its sync status, and the OAuth state of a
//! connection in progress.

use serde::{Deserialize, Serialize};

use super::{AccountId, CompanyId, Provider, StaffId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Waiting for the staff member to finish the OAuth consent.
    Connecting,
    Syncing,
    Ok,
    /// The provider refused the refresh token: the staff member must
    /// reconnect. Sync is stopped.
    AuthorizationExpired,
    /// Backing off after the provider's rate limit; resumes by itself.
    RateLimited,
    Error,
}

/// Progress of the sync run in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncProgress {
    pub calendars_done: u32,
    pub calendars_total: u32,
    /// Events stored in this run so far.
    pub events: u64,
    pub pages: u64,
}

/// An upstream item that could not be stored, named in the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedItem {
    pub calendar: String,
    pub remote_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub company: CompanyId,
    pub staff: StaffId,
    pub provider: Provider,
    /// The remote identity (e-mail) once connected.
    pub email: Option<String>,
    pub status: AccountStatus,
    /// A sentence a staff member understands, when something is wrong.
    pub error: Option<String>,
    pub last_sync: Option<Timestamp>,
    pub next_sync: Option<Timestamp>,
    pub progress: Option<SyncProgress>,
    /// Items skipped by the last sync.
    #[serde(default)]
    pub skipped: Vec<SkippedItem>,
    /// Sealed [`TokenSet`] JSON (see `crypto::SecretBox`).
    #[serde(default, with = "sealed_bytes")]
    pub tokens: Option<Vec<u8>>,
    /// Consecutive failed runs, for backoff.
    #[serde(default)]
    pub failures: u32,
    pub created: Timestamp,
}

/// OAuth tokens, only ever stored sealed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Unix seconds when the access token expires.
    pub expires_at: Timestamp,
    #[serde(default)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A connection in progress: created with the authorization URL, consumed
/// (once) by the callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OauthState {
    pub account: AccountId,
    pub staff: StaffId,
    pub provider: Provider,
    /// Sealed PKCE verifier.
    #[serde(with = "sealed_bytes_req")]
    pub verifier: Vec<u8>,
    pub created: Timestamp,
}

/// How long an authorization URL stays usable.
pub const OAUTH_STATE_TTL: i64 = 15 * 60;

/// One remote calendar of an account, as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteCalendar {
    pub id: String,
    pub name: String,
    pub color: Option<String>,
    pub can_edit: bool,
    /// The provider's default calendar of the account.
    pub is_default: bool,
    pub timezone: Option<String>,
}

mod sealed_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let v: Option<String> = Option::deserialize(d)?;
        v.map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

mod sealed_bytes_req {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let v = String::deserialize(d)?;
        STANDARD.decode(v).map_err(serde::de::Error::custom)
    }
}
