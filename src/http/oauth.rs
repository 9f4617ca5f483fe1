//! `GET /oauth/{provider}/callback`: the end of the connect flow. The state
//! is looked up by its hash and consumed in the same step (single use,
//! expires after 15 minutes, bound to the account and staff member it was
//! issued for); the code is exchanged with the PKCE verifier; the identity
//! is checked against the company's other connections; the tokens are
//! sealed before they are stored.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::App;
use crate::model::account::AccountStatus;
use crate::model::Provider;
use crate::sync::tokens;

pub fn router() -> Router<App> {
    Router::new().route("/oauth/{provider}/callback", get(callback))
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>{t}</h1><p>{x}</p></body></html>\n",
        t = esc(title),
        x = esc(text)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

fn refused(text: &str) -> Response {
    page(StatusCode::BAD_REQUEST, "Connection failed", text)
}

async fn callback(
    State(app): State<App>,
    Path(provider): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(provider) = Provider::parse(&provider) else {
        return page(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such provider.",
        );
    };
    let Some(state) = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 200)
    else {
        return refused(
            "The link has no state parameter. Start the connection again from the app.",
        );
    };
    let hash = crate::crypto::token_hash(state);
    let taken = app.blocking(move |db| db.take_oauth_state(&hash)).await;
    let st = match taken {
        Ok(Some(s)) => s,
        Ok(None) => {
            return refused("This connection link is unknown, was already used, or has expired. Start the connection again.")
        }
        Err(_) => return page(StatusCode::INTERNAL_SERVER_ERROR, "Connection failed", "Internal error; try again."),
    };
    if st.provider != provider {
        return refused("This connection link belongs to another provider.");
    }
    let set_error = |msg: String| {
        let db = app.db.clone();
        let id = st.account.clone();
        async move {
            let _ = tokio::task::spawn_blocking(move || {
                db.modify_account(&id, |a| {
                    if a.tokens.is_none() {
                        a.status = AccountStatus::Error;
                    }
                    a.error = Some(msg.clone());
                })
            })
            .await;
        }
    };
    if let Some(err) = &q.error {
        let text = if err == "access_denied" {
            "Access was declined, so nothing was connected.".to_string()
        } else {
            format!(
                "The provider reported an error: {err} {}",
                q.error_description.as_deref().unwrap_or("")
            )
        };
        set_error(text.clone()).await;
        return refused(&text);
    }
    let Some(code) = q.code.as_deref().filter(|c| !c.is_empty()) else {
        return refused("The provider sent no authorization code. Start the connection again.");
    };
    let Some(clients) = app.sync.clients(provider) else {
        return refused("This provider is not configured on the server.");
    };
    let Some(verifier) = app
        .secrets
        .open(&st.verifier)
        .and_then(|v| String::from_utf8(v).ok())
    else {
        return refused("This connection link can no longer be used. Start the connection again.");
    };
    let tokens = match clients.oauth.exchange(code, &verifier).await {
        Ok(t) => t,
        Err(e) => {
            let text = format!("The provider did not accept the authorization: {e}");
            set_error(text.clone()).await;
            return refused(&text);
        }
    };
    let email = match clients.api.identity(&tokens.access_token).await {
        Ok(e) => e,
        Err(e) => {
            let text = format!("Could not read the account's identity: {e}");
            set_error(text.clone()).await;
            return page(StatusCode::BAD_GATEWAY, "Connection failed", &text);
        }
    };
    let Ok(Some(account)) = app.db.account(&st.account) else {
        return refused("The account this link was made for has been removed.");
    };
    if account.staff != st.staff {
        return refused("This connection link was issued for someone else.");
    }
    let sealed = tokens::seal(&app.secrets, &tokens);
    let acc = account.clone();
    let em = email.clone();
    let claimed = app
        .blocking(move |db| {
            db.claim_identity(&acc, &em)?;
            db.modify_account(&acc.id, |a| {
                a.email = Some(em.clone());
                a.tokens = Some(sealed.clone());
                a.status = AccountStatus::Syncing;
                a.error = None;
                a.failures = 0;
            })
        })
        .await;
    match claimed {
        Ok(_) => {}
        Err(e) if e.code == "conflict" => {
            let holder = e
                .message
                .split_whitespace()
                .last()
                .and_then(crate::model::StaffId::parse)
                .and_then(|id| app.db.staff(&id).ok().flatten())
                .map(|s| format!("{} <{}>", s.name, s.email))
                .unwrap_or_else(|| "another staff member".into());
            let text = format!(
                "The {} account {email} is already connected to {holder} in this company.",
                provider_name(provider)
            );
            set_error(text.clone()).await;
            // The new grant is not kept: revoke it.
            let _ = clients
                .oauth
                .revoke(
                    tokens
                        .refresh_token
                        .as_deref()
                        .unwrap_or(&tokens.access_token),
                )
                .await;
            return page(StatusCode::CONFLICT, "Already connected elsewhere", &text);
        }
        Err(_) => {
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Connection failed",
                "Internal error; try again.",
            )
        }
    }
    app.sync.trigger(&st.account);
    page(
        StatusCode::OK,
        "Connected",
        &format!(
            "Your {} calendar {email} is connected. You can close this window.",
            provider_name(provider)
        ),
    )
}

fn provider_name(p: Provider) -> &'static str {
    match p {
        Provider::Google => "Google",
        Provider::Microsoft => "Microsoft",
    }
}
