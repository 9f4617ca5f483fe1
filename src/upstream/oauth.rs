//! OAuth 2.0 authorization code flow with PKCE (S256) for Google and the
//! Microsoft identity platform, on the `oauth2` crate with reqwest as its
//! HTTP client. Tokens leave this module only as a [`TokenSet`], which the
//! caller seals before storing.

use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, TokenResponse, TokenUrl,
};

use crate::config::ProviderConfig;
use crate::model::account::TokenSet;
use crate::model::{now, Provider};

/// Google's scope for reading and writing calendars.
pub const GOOGLE_SCOPE: &str = "https://www.googleapis.com/auth/calendar";
/// Microsoft Graph scopes: refresh tokens and calendar read/write.
pub const MICROSOFT_SCOPES: &[&str] = &["offline_access", "Calendars.ReadWrite"];

#[derive(Debug, thiserror::Error)]
pub enum OauthError {
    /// The grant (code or refresh token) was refused for good: reconnect.
    #[error("the provider refused the authorization ({0}); reconnect the account")]
    InvalidGrant(String),
    /// The provider could not be reached or answered 5xx: try again later.
    #[error("the provider's token endpoint is unavailable: {0}")]
    Unavailable(String),
    #[error("the provider refused the token request: {0}")]
    Refused(String),
    #[error("{0} is not configured (set its client_id)")]
    NotConfigured(&'static str),
}

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// One provider's OAuth client.
pub struct OauthClient {
    pub provider: Provider,
    client: Client,
    http: reqwest::Client,
    revoke_url: Option<url::Url>,
}

/// What the staff member opens, and the secret half the callback needs.
pub struct AuthorizationStart {
    pub url: String,
    /// The PKCE verifier: seal it, keep it with the state.
    pub verifier: String,
}

impl OauthClient {
    pub fn new(
        provider: Provider,
        cfg: &ProviderConfig,
        redirect_uri: &str,
        timeout: Duration,
    ) -> Result<Self, OauthError> {
        let name = provider.as_str();
        let id = cfg
            .client_id
            .clone()
            .ok_or(OauthError::NotConfigured(name))?;
        let mut client = BasicClient::new(ClientId::new(id))
            .set_auth_uri(AuthUrl::from_url(cfg.auth_url.clone()))
            .set_token_uri(TokenUrl::from_url(cfg.token_url.clone()))
            .set_redirect_uri(
                RedirectUrl::new(redirect_uri.to_string())
                    .map_err(|e| OauthError::Refused(format!("redirect URI: {e}")))?,
            )
            // Both providers accept the client credentials in the body;
            // Microsoft requires it.
            .set_auth_type(AuthType::RequestBody);
        if let Some(secret) = &cfg.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_string()));
        }
        Ok(OauthClient {
            provider,
            client,
            http: super::http::build_client(timeout),
            revoke_url: cfg.revoke_url.clone(),
        })
    }

    /// The authorization URL for `state` (PKCE S256; offline access).
    pub fn start(&self, state: &str, login_hint: Option<&str>) -> AuthorizationStart {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_string();
        let mut req = self
            .client
            .authorize_url(move || CsrfToken::new(state))
            .set_pkce_challenge(challenge);
        match self.provider {
            Provider::Google => {
                req = req
                    .add_scope(Scope::new(GOOGLE_SCOPE.into()))
                    .add_extra_param("access_type", "offline")
                    .add_extra_param("prompt", "consent")
                    .add_extra_param("include_granted_scopes", "true");
            }
            Provider::Microsoft => {
                for s in MICROSOFT_SCOPES {
                    req = req.add_scope(Scope::new((*s).into()));
                }
                req = req.add_extra_param("response_mode", "query");
            }
        }
        if let Some(h) = login_hint {
            req = req.add_extra_param("login_hint", h.to_string());
        }
        let (url, _) = req.url();
        AuthorizationStart {
            url: url.to_string(),
            verifier: verifier.secret().to_string(),
        }
    }

    /// The `oauth2` crate's HTTP client: owns its reqwest client so the
    /// future borrows nothing (and is `Send` for any lifetime).
    fn http_client(
        &self,
    ) -> impl Fn(
        oauth2::HttpRequest,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, reqwest::Error>> + Send>,
    > {
        let http = self.http.clone();
        move |req| Box::pin(call(http.clone(), req))
    }

    fn tokens<TR: TokenResponse>(&self, r: &TR, previous_refresh: Option<&str>) -> TokenSet {
        TokenSet {
            access_token: r.access_token().secret().to_string(),
            // Google sends a refresh token only at consent; Microsoft rotates
            // it on every use, so the newest one always wins.
            refresh_token: r
                .refresh_token()
                .map(|t| t.secret().to_string())
                .or_else(|| previous_refresh.map(str::to_string)),
            expires_at: now() + r.expires_in().map(|d| d.as_secs() as i64).unwrap_or(3600),
            scope: r
                .scopes()
                .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
        }
    }

    fn map_err<E: std::error::Error>(
        e: RequestTokenError<E, oauth2::StandardErrorResponse<BasicErrorResponseType>>,
    ) -> OauthError {
        match e {
            RequestTokenError::ServerResponse(r) => {
                let desc = r.error_description().cloned().unwrap_or_default();
                match r.error() {
                    BasicErrorResponseType::InvalidGrant => {
                        OauthError::InvalidGrant(if desc.is_empty() {
                            "invalid_grant".into()
                        } else {
                            desc
                        })
                    }
                    other => OauthError::Refused(format!("{other}: {desc}")),
                }
            }
            RequestTokenError::Request(e) => OauthError::Unavailable(e.to_string()),
            RequestTokenError::Parse(e, body) => {
                let text = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
                // A 5xx page is not JSON: transient.
                OauthError::Unavailable(format!("unreadable token response ({e}): {text}"))
            }
            RequestTokenError::Other(m) => OauthError::Unavailable(m),
        }
    }

    /// Exchange an authorization code (with its PKCE verifier) for tokens.
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<TokenSet, OauthError> {
        let client = self.http_client();
        let resp = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
            .request_async(&client)
            .await
            .map_err(Self::map_err)?;
        Ok(self.tokens(&resp, None))
    }

    /// Get a fresh access token (and, from Microsoft, a new refresh token).
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, OauthError> {
        let client = self.http_client();
        let rt = RefreshToken::new(refresh_token.to_string());
        let mut req = self.client.exchange_refresh_token(&rt);
        if self.provider == Provider::Microsoft {
            for s in MICROSOFT_SCOPES {
                req = req.add_scope(Scope::new((*s).into()));
            }
        }
        let resp = req.request_async(&client).await.map_err(Self::map_err)?;
        Ok(self.tokens(&resp, Some(refresh_token)))
    }

    /// Revoke a token at the provider (Google has an endpoint; Microsoft
    /// has none for delegated tokens, which expire on their own).
    pub async fn revoke(&self, token: &str) -> Result<(), OauthError> {
        let Some(url) = &self.revoke_url else {
            return Ok(());
        };
        let resp = self
            .http
            .post(url.clone())
            .form(&[("token", token)])
            .send()
            .await
            .map_err(|e| OauthError::Unavailable(e.without_url().to_string()))?;
        if resp.status().is_success() || resp.status().as_u16() == 400 {
            // 400 means the token was already invalid: revoked either way.
            Ok(())
        } else {
            Err(OauthError::Unavailable(format!(
                "revoke answered {}",
                resp.status()
            )))
        }
    }
}

async fn call(
    http: reqwest::Client,
    req: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let (parts, body) = req.into_parts();
    let resp = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let mut builder = http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        builder = builder.header(k, v);
    }
    let body = resp.bytes().await?.to_vec();
    Ok(builder
        .body(body)
        .expect("status and headers came from a response"))
}
