//! Access tokens of connected accounts: unsealed only in memory, refreshed
//! before they expire, rotated refresh tokens stored at once, and a refused
//! refresh (`invalid_grant`) turned into `authorization_expired`.

use crate::crypto::SecretBox;
use crate::model::account::{Account, AccountStatus, TokenSet};
use crate::model::now;
use crate::store::Db;
use crate::upstream::oauth::{OauthClient, OauthError};

/// Refresh this long before the access token expires.
pub const REFRESH_MARGIN: i64 = 120;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The account needs the staff member to reconnect.
    #[error("{0}")]
    Expired(String),
    /// Try again later.
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Store(String),
}

pub fn seal(secrets: &SecretBox, t: &TokenSet) -> Vec<u8> {
    secrets.seal(&serde_json::to_vec(t).expect("tokens serialize"))
}

pub fn unseal(secrets: &SecretBox, sealed: &[u8]) -> Option<TokenSet> {
    serde_json::from_slice(&secrets.open(sealed)?).ok()
}

/// The sentence shown when a provider refuses the grant.
pub fn expired_message(provider: &str) -> String {
    format!("{provider} no longer accepts calbridge's access (it was revoked or expired); reconnect the account")
}

/// A valid access token for `account`, refreshing (and storing the
/// refreshed tokens) when needed. `force` refreshes even if not expiring
/// (after a 401).
pub async fn access_token(
    db: &Db,
    secrets: &SecretBox,
    oauth: &OauthClient,
    account: &Account,
    force: bool,
) -> Result<String, TokenError> {
    let provider = match account.provider {
        crate::model::Provider::Google => "Google",
        crate::model::Provider::Microsoft => "Microsoft",
    };
    let sealed = account.tokens.as_deref().ok_or_else(|| {
        TokenError::Expired("the account is not connected yet; open the authorization link".into())
    })?;
    let tokens = unseal(secrets, sealed).ok_or_else(|| {
        TokenError::Expired(
            "the stored tokens cannot be decrypted (was security.secret_key changed?); reconnect the account".into(),
        )
    })?;
    if !force && tokens.expires_at - REFRESH_MARGIN > now() {
        return Ok(tokens.access_token);
    }
    let Some(refresh) = tokens.refresh_token.clone() else {
        return Err(TokenError::Expired(expired_message(provider)));
    };
    match oauth.refresh(&refresh).await {
        Ok(fresh) => {
            let sealed = seal(secrets, &fresh);
            let db = db.clone();
            let id = account.id.clone();
            tokio::task::spawn_blocking(move || {
                db.modify_account(&id, |a| a.tokens = Some(sealed.clone()))
            })
            .await
            .map_err(|e| TokenError::Store(e.to_string()))?
            .map_err(|e| TokenError::Store(e.to_string()))?;
            Ok(fresh.access_token)
        }
        Err(OauthError::InvalidGrant(detail)) => {
            tracing::info!(account = %account.id, "refresh refused by the provider: {}", detail.split(':').next().unwrap_or(""));
            let db = db.clone();
            let id = account.id.clone();
            let msg = expired_message(provider);
            let m2 = msg.clone();
            let _ = tokio::task::spawn_blocking(move || {
                db.modify_account(&id, |a| {
                    a.status = AccountStatus::AuthorizationExpired;
                    a.error = Some(m2.clone());
                    a.next_sync = None;
                })
            })
            .await;
            Err(TokenError::Expired(msg))
        }
        Err(e) => Err(TokenError::Transient(e.to_string())),
    }
}
