//! OAuth 2.0 authorization-code flow with PKCE, as Google
//! (`/o/oauth2/v2/auth`, `/token`, `/revoke`) and the Microsoft identity
//! platform v2.0 (`/{tenant}/oauth2/v2.0/authorize`, `…/token`) run it.
//!
//! Owns: client checks, consent (instant, for the user named by
//! `login_hint`, created on first use), single-use short-lived codes, PKCE
//! S256 verification, refresh (Google keeps the refresh token, Microsoft
//! rotates it on every use), revocation, and each provider's error shape.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::errors::{google_oauth_error, json_body, json_ok, microsoft_oauth_error};
use super::ids;
use super::state::{AuthCode, Emulator, GrantState, Provider, State as World, UserKey};

const GOOGLE_SCOPE_PREFIX: &str = "https://www.googleapis.com/auth/";
const GOOGLE_SCOPES: &[&str] = &[
    "calendar",
    "calendar.readonly",
    "calendar.events",
    "calendar.events.readonly",
    "calendar.events.owned",
    "calendar.events.owned.readonly",
    "calendar.events.freebusy",
    "calendar.freebusy",
    "calendar.calendarlist",
    "calendar.calendarlist.readonly",
    "calendar.calendars",
    "calendar.calendars.readonly",
    "calendar.settings.readonly",
    "calendar.acls",
    "calendar.acls.readonly",
    "calendar.app.created",
    "userinfo.email",
    "userinfo.profile",
];

fn params(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

fn get<'a>(p: &'a [(String, String)], key: &str) -> Option<&'a str> {
    p.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn google_scope_ok(s: &str) -> bool {
    matches!(s, "openid" | "email" | "profile")
        || s.strip_prefix(GOOGLE_SCOPE_PREFIX)
            .is_some_and(|rest| GOOGLE_SCOPES.contains(&rest))
}

/// Normalises a Microsoft scope: Graph permissions become
/// `https://graph.microsoft.com/{Name}`; OIDC scopes stay short.
fn microsoft_scope(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    if ["openid", "profile", "email", "offline_access"].contains(&lower.as_str()) {
        return Some(lower);
    }
    let name = s.strip_prefix("https://graph.microsoft.com/").unwrap_or(s);
    let valid = name == ".default"
        || (name.contains('.')
            && name
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric())));
    valid.then(|| format!("https://graph.microsoft.com/{name}"))
}

/// The page an authorization server shows when it cannot redirect.
fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1><p>{detail}</p></body></html>"
        )),
    )
        .into_response()
}

/// Redirects to the client with the given parameters, as `response_mode`
/// asks (query by default, fragment, or an auto-submitted form).
fn redirect_with(redirect_uri: &str, mode: Option<&str>, pairs: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The redirect_uri is not a valid URL.",
        );
    };
    match mode {
        Some("fragment") => {
            let frag: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs.iter())
                .finish();
            url.set_fragment(Some(&frag));
        }
        Some("form_post") => {
            let inputs: String = pairs
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<input type=\"hidden\" name=\"{}\" value=\"{}\"/>",
                        html_escape(k),
                        html_escape(v)
                    )
                })
                .collect();
            return Html(format!(
                "<html><body onload=\"document.forms[0].submit()\"><form method=\"POST\" action=\"{}\">{inputs}</form></body></html>",
                html_escape(redirect_uri)
            ))
            .into_response();
        }
        _ => {
            url.query_pairs_mut().extend_pairs(pairs.iter());
        }
    }
    (
        StatusCode::FOUND,
        [(header::LOCATION, url.to_string())],
        String::new(),
    )
        .into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `GET /o/oauth2/v2/auth`
pub(crate) async fn google_authorize(
    State(emu): State<Arc<Emulator>>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = params(q.unwrap_or_default().as_bytes());
    authorize(&emu, Provider::Google, &p)
}

/// `GET /{tenant}/oauth2/v2.0/authorize`
pub(crate) async fn microsoft_authorize(
    State(emu): State<Arc<Emulator>>,
    Path(_tenant): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = params(q.unwrap_or_default().as_bytes());
    authorize(&emu, Provider::Microsoft, &p)
}

fn authorize(emu: &Emulator, provider: Provider, p: &[(String, String)]) -> Response {
    let mut st = emu.lock();
    let Some(client_id) = get(p, "client_id") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: client_id",
        );
    };
    let Some(client) = st.clients.get(&(provider, client_id.to_string())).cloned() else {
        return match provider {
            Provider::Google => error_page(
                StatusCode::UNAUTHORIZED,
                "Error 401: invalid_client",
                "The OAuth client was not found.",
            ),
            Provider::Microsoft => error_page(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                &format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory."),
            ),
        };
    };
    let Some(redirect_uri) = get(p, "redirect_uri") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: redirect_uri",
        );
    };
    if !client.redirect_uris.is_empty() && !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return match provider {
            Provider::Google => error_page(
                StatusCode::BAD_REQUEST,
                "Error 400: redirect_uri_mismatch",
                "The redirect URI in the request does not match the ones authorized for the OAuth client.",
            ),
            Provider::Microsoft => error_page(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("AADSTS50011: The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'."),
            ),
        };
    }
    let state = get(p, "state").unwrap_or("");
    let mode = get(p, "response_mode");
    let fail = |error: &str, description: &str| {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if !state.is_empty() {
            pairs.push(("state", state));
        }
        redirect_with(redirect_uri, mode, &pairs)
    };
    if get(p, "response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            match provider {
                Provider::Google => "Unsupported response_type: only 'code' is supported.",
                Provider::Microsoft => "AADSTS70005: The provided value for the input parameter 'response_type' is not allowed for this request. Expected value: 'code'.",
            },
        );
    }
    let raw_scopes: Vec<&str> = get(p, "scope").unwrap_or("").split_whitespace().collect();
    if raw_scopes.is_empty() {
        return fail(
            "invalid_scope",
            match provider {
                Provider::Google => "Missing required parameter: scope",
                Provider::Microsoft => {
                    "AADSTS900144: The request body must contain the following parameter: 'scope'."
                }
            },
        );
    }
    let scopes: Vec<String> = match provider {
        Provider::Google => {
            if let Some(bad) = raw_scopes.iter().find(|s| !google_scope_ok(s)) {
                return fail(
                    "invalid_scope",
                    &format!("Some requested scopes were invalid. {{invalid=[{bad}]}}"),
                );
            }
            raw_scopes.iter().map(|s| s.to_string()).collect()
        }
        Provider::Microsoft => {
            let mut out = Vec::new();
            for s in &raw_scopes {
                match microsoft_scope(s) {
                    Some(n) => out.push(n),
                    None => {
                        return fail(
                            "invalid_client",
                            &format!("AADSTS70011: The provided value for the input parameter 'scope' is not valid. The scope '{s}' is not valid."),
                        )
                    }
                }
            }
            out
        }
    };
    let Some(challenge) = get(p, "code_challenge") else {
        return fail("invalid_request", match provider {
            Provider::Google => "Missing required parameter: code_challenge (PKCE is required by this emulator)",
            Provider::Microsoft => "AADSTS9002325: Proof Key for Code Exchange is required for cross-origin authorization code redemption.",
        });
    };
    if get(p, "code_challenge_method") != Some("S256") {
        return fail(
            "invalid_request",
            "Invalid code_challenge_method: only S256 is accepted.",
        );
    }
    let Some(login_hint) = get(p, "login_hint") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "login_hint required",
            "The emulator consents at once for the user named by login_hint; pass login_hint=<email>.",
        );
    };
    if !login_hint.contains('@') {
        return fail("invalid_request", "login_hint must be an email address.");
    }
    let user = st.ensure_user(provider, login_hint, None, None);
    let issue_refresh = match provider {
        Provider::Google => {
            let offline = get(p, "access_type") == Some("offline");
            let prompt_consent =
                get(p, "prompt").is_some_and(|pr| pr.split(' ').any(|x| x == "consent"));
            let first = st
                .users
                .get(&user)
                .is_some_and(|u| !u.consented.contains(client_id));
            offline && (prompt_consent || first)
        }
        Provider::Microsoft => scopes.iter().any(|s| s == "offline_access"),
    };
    if let Some(u) = st.users.get_mut(&user) {
        u.consented.insert(client_id.to_string());
    }
    let code = match provider {
        Provider::Google => format!("4/0A{}", ids::opaque(48)),
        Provider::Microsoft => format!("0.A{}", ids::opaque(96)),
    };
    let now = st.now();
    st.codes.insert(
        code.clone(),
        AuthCode {
            provider,
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            user,
            scopes: scopes.clone(),
            challenge: challenge.to_string(),
            issued: now,
            used: false,
            issue_refresh,
        },
    );
    let scope_str = scopes.join(" ");
    let mut pairs = vec![("code", code.as_str())];
    if !state.is_empty() {
        pairs.push(("state", state));
    }
    if provider == Provider::Google {
        pairs.push(("scope", scope_str.as_str()));
    }
    redirect_with(redirect_uri, mode, &pairs)
}

/// `POST /token`
pub(crate) async fn google_token(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token(&emu, Provider::Google, &headers, &body, "common")
}

/// `POST /{tenant}/oauth2/v2.0/token`
pub(crate) async fn microsoft_token(
    State(emu): State<Arc<Emulator>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token(&emu, Provider::Microsoft, &headers, &body, &tenant)
}

/// A failure at the token endpoint in the provider's shape.
enum TokenError {
    /// Google: error + description; Microsoft: error + AADSTS code + text.
    Grant(&'static str, &'static str, u32, String),
    Client(StatusCode, &'static str, &'static str, u32, String),
}

fn token_error(provider: Provider, e: TokenError) -> Response {
    match (provider, e) {
        (Provider::Google, TokenError::Grant(error, desc, _, _)) => {
            google_oauth_error(StatusCode::BAD_REQUEST, error, desc)
        }
        (Provider::Google, TokenError::Client(status, error, desc, _, _)) => {
            google_oauth_error(status, error, desc)
        }
        (Provider::Microsoft, TokenError::Grant(error, _, code, text)) => {
            let error = if error == "redirect_uri_mismatch" {
                "invalid_grant"
            } else {
                error
            };
            microsoft_oauth_error(StatusCode::BAD_REQUEST, error, code, &text)
        }
        (Provider::Microsoft, TokenError::Client(status, error, _, code, text)) => {
            let status = if error == "invalid_client" {
                StatusCode::UNAUTHORIZED
            } else {
                status
            };
            microsoft_oauth_error(status, error, code, &text)
        }
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    let dec = |x: &str| {
        percent_encoding::percent_decode_str(x)
            .decode_utf8_lossy()
            .into_owned()
    };
    Some((dec(id), dec(secret)))
}

fn token(
    emu: &Emulator,
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    tenant: &str,
) -> Response {
    let p = params(body);
    let basic = basic_credentials(headers);
    let client_id = get(&p, "client_id")
        .map(str::to_string)
        .or_else(|| basic.as_ref().map(|(id, _)| id.clone()));
    let secret = get(&p, "client_secret")
        .map(str::to_string)
        .or_else(|| basic.as_ref().map(|(_, s)| s.clone()));
    let mut st = emu.lock();
    let result = (|| {
        let client_id = client_id.ok_or(TokenError::Client(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Could not determine client ID from request.",
            900144,
            "The request body must contain the following parameter: 'client_id'.".into(),
        ))?;
        let client = st
            .clients
            .get(&(provider, client_id.clone()))
            .cloned()
            .ok_or_else(|| {
                TokenError::Client(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "The OAuth client was not found.",
                    700016,
                    format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
                )
            })?;
        if let Some(expected) = &client.client_secret {
            if secret.as_deref() != Some(expected.as_str()) {
                return Err(TokenError::Client(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "Unauthorized",
                    7000215,
                    format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
                ));
            }
        }
        match get(&p, "grant_type") {
            Some("authorization_code") => redeem_code(&mut st, provider, &client_id, &p),
            Some("refresh_token") => refresh(&mut st, provider, &client_id, &p),
            other => Err(TokenError::Client(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Invalid grant_type",
                70003,
                format!(
                    "The app requested an unsupported grant type '{}'.",
                    other.unwrap_or("")
                ),
            )),
        }
    })();
    match result {
        Ok(v) => json_ok(&v),
        Err(e) => token_error(provider, e),
    }
}

fn invalid_grant(google: &'static str, code: u32, text: &str) -> TokenError {
    TokenError::Grant("invalid_grant", google, code, text.to_string())
}

fn redeem_code(
    st: &mut World,
    provider: Provider,
    client_id: &str,
    p: &[(String, String)],
) -> Result<Value, TokenError> {
    let code = get(p, "code").ok_or_else(|| {
        TokenError::Client(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: code",
            900144,
            "The request body must contain the following parameter: 'code'.".into(),
        )
    })?;
    let now = st.now();
    let ttl = st.config.code_ttl;
    let c = st
        .codes
        .get_mut(code)
        .filter(|c| c.provider == provider)
        .ok_or_else(|| {
            invalid_grant(
                "Malformed auth code.",
                70000,
                "The provided value for the 'code' parameter is not valid.",
            )
        })?;
    if c.client_id != client_id {
        return Err(invalid_grant(
            "Unauthorized",
            70000,
            "The provided value for the 'code' parameter is not valid: it was issued to another client.",
        ));
    }
    if c.used {
        return Err(invalid_grant(
            "Bad Request",
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        ));
    }
    // A redemption attempt burns the code, whatever its outcome.
    c.used = true;
    if now - c.issued > ttl {
        return Err(invalid_grant(
            "Bad Request",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
        ));
    }
    if get(p, "redirect_uri") != Some(c.redirect_uri.as_str()) {
        return Err(TokenError::Grant(
            "redirect_uri_mismatch",
            "Bad Request",
            50011,
            "The redirect URI specified in the request does not match the redirect URI used to obtain the authorization code.".into(),
        ));
    }
    let Some(verifier) = get(p, "code_verifier") else {
        return Err(TokenError::Grant(
            "invalid_grant",
            "Missing code verifier.",
            900144,
            "The request body must contain the following parameter: 'code_verifier'.".into(),
        ));
    };
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if computed != c.challenge {
        return Err(invalid_grant(
            "Invalid code verifier.",
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        ));
    }
    let (user, scopes, with_refresh) = (c.user.clone(), c.scopes.clone(), c.issue_refresh);
    let issued = st.issue_tokens(provider, client_id, &user, &scopes, with_refresh);
    Ok(token_body(
        st,
        provider,
        client_id,
        &user,
        &scopes,
        &issued.access_token,
        issued.refresh_token.as_deref(),
    ))
}

fn refresh(
    st: &mut World,
    provider: Provider,
    client_id: &str,
    p: &[(String, String)],
) -> Result<Value, TokenError> {
    let token = get(p, "refresh_token").ok_or_else(|| {
        TokenError::Client(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: refresh_token",
            900144,
            "The request body must contain the following parameter: 'refresh_token'.".into(),
        )
    })?;
    let now = st.now();
    let ttl = st.config.refresh_token_ttl;
    let g = st
        .refresh
        .get_mut(token)
        .filter(|g| g.provider == provider)
        .ok_or_else(|| {
            invalid_grant(
                "Bad Request",
                9002313,
                "Invalid request. Request is malformed or invalid.",
            )
        })?;
    if ttl.is_some_and(|t| now - g.issued > t) && g.state == GrantState::Active {
        g.state = GrantState::Expired;
    }
    match g.state {
        GrantState::Active => {}
        GrantState::Expired => {
            return Err(invalid_grant(
                "Token has been expired or revoked.",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
            ))
        }
        GrantState::Revoked => {
            return Err(invalid_grant(
                "Token has been expired or revoked.",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.",
            ))
        }
    }
    if g.client_id != client_id {
        return Err(invalid_grant(
            "Unauthorized",
            70000,
            "The refresh token was issued to a different client.",
        ));
    }
    let (user, mut scopes) = (g.user.clone(), g.scopes.clone());
    if !st.users.contains_key(&user) {
        return Err(invalid_grant(
            "Token has been expired or revoked.",
            50173,
            "The user account no longer exists.",
        ));
    }
    match provider {
        Provider::Google => {
            let access =
                st.issue_access(provider, client_id, &user, &scopes, Some(token.to_string()));
            Ok(token_body(
                st, provider, client_id, &user, &scopes, &access, None,
            ))
        }
        Provider::Microsoft => {
            // A narrower `scope` may be asked for; offline_access stays.
            if let Some(asked) = get(p, "scope") {
                let asked: Vec<String> = asked
                    .split_whitespace()
                    .filter_map(microsoft_scope)
                    .collect();
                let narrowed: Vec<String> = scopes
                    .iter()
                    .filter(|s| asked.contains(s) || *s == "offline_access")
                    .cloned()
                    .collect();
                if narrowed.iter().any(|s| s != "offline_access") {
                    scopes = narrowed;
                }
            }
            // Microsoft rotates: every refresh returns a new refresh token
            // (the old one keeps working until it expires).
            let issued = st.issue_tokens(provider, client_id, &user, &scopes, true);
            Ok(token_body(
                st,
                provider,
                client_id,
                &user,
                &scopes,
                &issued.access_token,
                issued.refresh_token.as_deref(),
            ))
        }
    }
}

/// A token response as the provider shapes it.
fn token_body(
    st: &World,
    provider: Provider,
    client_id: &str,
    user: &UserKey,
    scopes: &[String],
    access: &str,
    refresh: Option<&str>,
) -> Value {
    let expires_in = st.config.access_token_ttl.num_seconds();
    let mut v = match provider {
        Provider::Google => json!({
            "access_token": access,
            "expires_in": expires_in,
            "scope": scopes.join(" "),
            "token_type": "Bearer",
        }),
        Provider::Microsoft => json!({
            "token_type": "Bearer",
            "scope": scopes.iter().filter(|s| *s != "offline_access").cloned().collect::<Vec<_>>().join(" "),
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": access,
        }),
    };
    if let Some(r) = refresh {
        v["refresh_token"] = json!(r);
    }
    if scopes.iter().any(|s| s == "openid") {
        v["id_token"] = json!(id_token(st, provider, client_id, user));
    }
    v
}

/// An unsigned-looking ID token carrying the user's identity claims.
fn id_token(st: &World, provider: Provider, client_id: &str, user: &UserKey) -> String {
    let now = st.now().timestamp();
    let u = st.users.get(user);
    let name = u.map(|u| u.display_name.clone()).unwrap_or_default();
    let sub = u.map(|u| u.id.clone()).unwrap_or_default();
    let claims = match provider {
        Provider::Google => json!({
            "iss": "https://accounts.google.com", "aud": client_id, "sub": sub,
            "email": user.1, "email_verified": true, "name": name, "iat": now, "exp": now + 3600,
        }),
        Provider::Microsoft => json!({
            "iss": "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
            "aud": client_id, "sub": sub, "oid": sub, "tid": "9188040d-6c67-4c5b-b112-36a304b66dad",
            "preferred_username": user.1, "email": user.1, "name": name, "iat": now, "nbf": now, "exp": now + 3600, "ver": "2.0",
        }),
    };
    let header = json!({"alg": "RS256", "kid": "emulator", "typ": "JWT"});
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        ids::opaque(64)
    )
}

/// `POST /revoke` (Google): revokes the grant behind a refresh or access
/// token — the refresh token and every access token made from it.
pub(crate) async fn google_revoke(
    State(emu): State<Arc<Emulator>>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let mut p = params(&body);
    p.extend(params(q.unwrap_or_default().as_bytes()));
    let Some(token) = get(&p, "token").map(str::to_string) else {
        return google_oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: token",
        );
    };
    let mut st = emu.lock();
    let is_refresh = st
        .refresh
        .get(&token)
        .is_some_and(|g| g.provider == Provider::Google);
    let grant_refresh = if is_refresh {
        Some(token.clone())
    } else {
        match st
            .access
            .get_mut(&token)
            .filter(|a| a.provider == Provider::Google && !a.revoked)
        {
            Some(a) => {
                a.revoked = true;
                a.refresh.clone()
            }
            None => {
                return google_oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_token",
                    "Token expired or revoked",
                )
            }
        }
    };
    if let Some(r) = grant_refresh {
        if let Some(g) = st.refresh.get_mut(&r) {
            g.state = GrantState::Revoked;
        }
        for a in st.access.values_mut() {
            if a.refresh.as_deref() == Some(r.as_str()) {
                a.revoked = true;
            }
        }
    }
    (StatusCode::OK, json_body(&json!({}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_validate_like_the_providers() {
        assert!(google_scope_ok("https://www.googleapis.com/auth/calendar"));
        assert!(google_scope_ok("openid"));
        assert!(!google_scope_ok("calendar"));
        assert_eq!(
            microsoft_scope("Calendars.ReadWrite").as_deref(),
            Some("https://graph.microsoft.com/Calendars.ReadWrite")
        );
        assert_eq!(
            microsoft_scope("offline_access").as_deref(),
            Some("offline_access")
        );
        assert_eq!(microsoft_scope("nonsense"), None);
    }

    #[test]
    fn basic_auth_is_decoded() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode("id%3Ax:secret"))
                .parse()
                .unwrap(),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("id:x".into(), "secret".into()))
        );
    }
}
