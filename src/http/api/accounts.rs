//! Connected accounts: connect (authorization URL), list, remote calendars
//! and their selection, status, sync now, reconnect, disconnect.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::directory::{load_staff, rfc3339};
use super::Admin;
use crate::http::body::JsonBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::App;
use crate::model::account::{Account, AccountStatus, OauthState, RemoteCalendar};
use crate::model::{
    now, AccountId, Calendar, CalendarId, CalendarSource, Direction, Provider, Staff,
};
use crate::sync::tokens;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    provider: String,
}

fn status_str(s: AccountStatus) -> Value {
    json!(s)
}

fn account_json(a: &Account) -> Value {
    json!({
        "id": a.id,
        "provider": a.provider,
        "email": a.email,
        "status": status_str(a.status),
        "last_sync": a.last_sync.map(rfc3339),
        "error": a.error,
    })
}

async fn load(app: &App, raw: &str) -> ApiResult<Account> {
    let id = AccountId::parse(raw).ok_or_else(|| ApiError::not_found("account"))?;
    app.db
        .account(&id)?
        .ok_or_else(|| ApiError::not_found("account"))
}

/// A fresh authorization URL for `account`, with its single-use state.
async fn authorization_url(app: &App, account: &Account, staff: &Staff) -> ApiResult<String> {
    let clients = app.sync.clients(account.provider).ok_or_else(|| {
        ApiError::invalid(
            "provider",
            format!(
                "{} is not configured on this server (set its client_id)",
                account.provider.as_str()
            ),
        )
    })?;
    let state = crate::crypto::random_token();
    let start = clients.oauth.start(&state, Some(&staff.email));
    let record = OauthState {
        account: account.id.clone(),
        staff: staff.id.clone(),
        provider: account.provider,
        verifier: app.secrets.seal(start.verifier.as_bytes()),
        created: now(),
    };
    let hash = crate::crypto::token_hash(&state);
    app.blocking(move |db| db.put_oauth_state(&hash, &record))
        .await?;
    Ok(start.url)
}

pub async fn connect(
    _: Admin,
    State(app): State<App>,
    Path(staff): Path<String>,
    JsonBody(body): JsonBody<Connect>,
) -> ApiResult<Response> {
    let s = load_staff(&app, &staff).await?;
    let provider = Provider::parse(&body.provider)
        .ok_or_else(|| ApiError::invalid("provider", "must be \"google\" or \"microsoft\""))?;
    if app.sync.clients(provider).is_none() {
        return Err(ApiError::invalid(
            "provider",
            format!(
                "{} is not configured on this server (set its client_id)",
                provider.as_str()
            ),
        ));
    }
    let account = Account {
        id: AccountId::generate(),
        company: s.company.clone(),
        staff: s.id.clone(),
        provider,
        email: None,
        status: AccountStatus::Connecting,
        error: None,
        last_sync: None,
        next_sync: None,
        progress: None,
        skipped: Vec::new(),
        tokens: None,
        failures: 0,
        created: now(),
    };
    let stored = account.clone();
    app.blocking(move |db| db.create_account(&stored)).await?;
    let url = authorization_url(&app, &account, &s).await?;
    let mut v = account_json(&account);
    v["authorization_url"] = json!(url);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub async fn list(
    _: Admin,
    State(app): State<App>,
    Path(staff): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = load_staff(&app, &staff).await?;
    let list: Vec<Value> = app
        .db
        .accounts_of_staff(&s.id)?
        .iter()
        .map(account_json)
        .collect();
    Ok(Json(json!(list)))
}

/// A valid access token, or an error a staff member understands.
async fn token_for(app: &App, a: &Account) -> ApiResult<String> {
    let clients = app.sync.clients(a.provider).ok_or_else(|| {
        ApiError::unavailable(format!("{} is not configured", a.provider.as_str()))
    })?;
    tokens::access_token(&app.db, &app.secrets, &clients.oauth, a, false)
        .await
        .map_err(|e| match e {
            tokens::TokenError::Expired(m) => {
                ApiError::new(StatusCode::CONFLICT, "authorization_expired", m)
            }
            other => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                other.to_string(),
            ),
        })
}

async fn remote_calendars(app: &App, a: &Account) -> ApiResult<Vec<RemoteCalendar>> {
    let token = token_for(app, a).await?;
    let clients = app
        .sync
        .clients(a.provider)
        .ok_or_else(ApiError::internal)?;
    clients.api.calendars(&token).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
            format!("could not list the calendars: {e}"),
        )
    })
}

fn mirrored(cals: &[Calendar], remote: &str) -> Option<Calendar> {
    cals.iter()
        .find(|c| matches!(&c.source, CalendarSource::Mirrored { remote_id, .. } if remote_id == remote))
        .cloned()
}

fn calendar_json(r: &RemoteCalendar, local: Option<&Calendar>) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "color": r.color,
        "can_edit": r.can_edit,
        "default": r.is_default,
        "selected": local.is_some(),
        "direction": local.map(|c| c.direction).unwrap_or(Direction::ReadOnly),
        "primary": local.is_some_and(|c| c.primary),
        "conflicts": local.is_some_and(|c| c.conflicts),
    })
}

pub async fn calendars(
    _: Admin,
    State(app): State<App>,
    Path(account): Path<String>,
) -> ApiResult<Json<Value>> {
    let a = load(&app, &account).await?;
    let remote = remote_calendars(&app, &a).await?;
    let local = app.db.calendars_of_account(&a)?;
    let list: Vec<Value> = remote
        .iter()
        .map(|r| calendar_json(r, mirrored(&local, &r.id).as_ref()))
        .collect();
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    selected: bool,
    #[serde(default)]
    direction: Option<Direction>,
    #[serde(default)]
    primary: Option<bool>,
    #[serde(default)]
    conflicts: Option<bool>,
}

/// A collection name (CalDAV path segment) for a mirrored calendar.
fn slug_for(name: &str, taken: &[Calendar]) -> String {
    let mut base: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    base.truncate(40);
    if base.is_empty() || base == "appointments" {
        base = format!("calendar-{base}").trim_end_matches('-').to_string();
    }
    let mut slug = base.clone();
    let mut n = 2;
    while taken.iter().any(|c| c.slug == slug) {
        slug = format!("{base}-{n}");
        n += 1;
    }
    slug
}

pub async fn select(
    _: Admin,
    State(app): State<App>,
    Path((account, remote)): Path<(String, String)>,
    JsonBody(body): JsonBody<Selection>,
) -> ApiResult<Json<Value>> {
    let a = load(&app, &account).await?;
    let remote_list = remote_calendars(&app, &a).await?;
    let r = remote_list
        .iter()
        .find(|c| c.id == remote)
        .cloned()
        .ok_or_else(|| ApiError::not_found("remote calendar"))?;
    let local = app.db.calendars_of_account(&a)?;
    let existing = mirrored(&local, &remote);
    if !body.selected {
        if let Some(c) = existing {
            app.blocking(move |db| db.delete_calendar(&c.id)).await?;
        }
        return Ok(Json(calendar_json(&r, None)));
    }
    let direction = body
        .direction
        .or(existing.as_ref().map(|c| c.direction))
        .unwrap_or(Direction::ReadOnly);
    if direction == Direction::Bidirectional && !r.can_edit {
        return Err(ApiError::invalid(
            "direction",
            format!(
                "{:?} is read-only upstream; it can only be synced read_only",
                r.name
            ),
        ));
    }
    let primary = body
        .primary
        .unwrap_or(existing.as_ref().is_some_and(|c| c.primary));
    if primary && direction != Direction::Bidirectional {
        return Err(ApiError::invalid(
            "primary",
            "the primary calendar receives appointments, so it must be bidirectional",
        ));
    }
    if existing.is_none() && local.len() >= app.config.sync.max_calendars_per_account {
        return Err(ApiError::invalid(
            "selected",
            format!(
                "at most {} calendars can be synced per account; deselect one first",
                app.config.sync.max_calendars_per_account
            ),
        ));
    }
    let all_of_staff = app.db.calendars_of_staff(&a.staff)?;
    let cal = match existing {
        Some(mut c) => {
            c.direction = direction;
            c.primary = primary;
            c.conflicts = body.conflicts.unwrap_or(c.conflicts);
            c.name = r.name.clone();
            c.color = r.color.clone().or(c.color);
            c
        }
        None => Calendar {
            id: CalendarId::generate(),
            company: a.company.clone(),
            staff: a.staff.clone(),
            slug: slug_for(&r.name, &all_of_staff),
            name: r.name.clone(),
            color: r.color.clone(),
            description: Some(format!("{} ({})", r.name, a.provider.as_str())),
            order: Some(10 + local.len() as i64),
            source: CalendarSource::Mirrored {
                account: a.id.clone(),
                remote_id: r.id.clone(),
            },
            direction,
            primary,
            conflicts: body.conflicts.unwrap_or(true),
            timezone: r.timezone.clone(),
            created: now(),
            components: None,
        },
    };
    let is_new = app.db.calendar(&cal.id)?.is_none();
    let stored = cal.clone();
    app.blocking(move |db| {
        if primary {
            // One primary calendar per staff member.
            for mut other in db.calendars_of_staff(&stored.staff)? {
                if other.primary && other.id != stored.id {
                    other.primary = false;
                    db.update_calendar(&other)?;
                }
            }
        }
        if is_new {
            db.create_calendar(&stored)
        } else {
            db.update_calendar(&stored)
        }
    })
    .await?;
    app.sync.trigger(&a.id);
    Ok(Json(calendar_json(&r, Some(&cal))))
}

pub async fn status(
    _: Admin,
    State(app): State<App>,
    Path(account): Path<String>,
) -> ApiResult<Json<Value>> {
    let a = load(&app, &account).await?;
    let conflicts = app.db.conflicts_of_account(&a.id)?;
    let outbox = app.db.outbox_of(&a.id)?;
    let failing: Vec<Value> = outbox
        .iter()
        .filter(|e| e.last_error.is_some())
        .map(|e| json!({"event": e.event, "attempts": e.attempts, "error": e.last_error, "next_attempt": rfc3339(e.next_attempt)}))
        .collect();
    Ok(Json(json!({
        "id": a.id,
        "provider": a.provider,
        "email": a.email,
        "status": status_str(a.status),
        "last_sync": a.last_sync.map(rfc3339),
        "next_sync": a.next_sync.map(rfc3339),
        "progress": a.progress,
        "error": a.error,
        "skipped": a.skipped,
        "conflicts": conflicts,
        "pending_writes": outbox.len(),
        "failing_writes": failing,
    })))
}

pub async fn sync_now(
    _: Admin,
    State(app): State<App>,
    Path(account): Path<String>,
) -> ApiResult<Response> {
    let a = load(&app, &account).await?;
    match a.status {
        AccountStatus::AuthorizationExpired => Err(ApiError::new(
            StatusCode::CONFLICT,
            "authorization_expired",
            a.error
                .unwrap_or_else(|| "reconnect the account first".into()),
        )),
        AccountStatus::Connecting => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_connected",
            "the account is not connected yet: open its authorization URL first",
        )),
        _ => {
            app.sync.trigger(&a.id);
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({"status": "sync started"})),
            )
                .into_response())
        }
    }
}

pub async fn reconnect(
    _: Admin,
    State(app): State<App>,
    Path(account): Path<String>,
) -> ApiResult<Json<Value>> {
    let a = load(&app, &account).await?;
    let s = app
        .db
        .staff(&a.staff)?
        .ok_or_else(|| ApiError::not_found("staff member"))?;
    let url = authorization_url(&app, &a, &s).await?;
    Ok(Json(json!({"authorization_url": url})))
}

pub async fn disconnect(
    _: Admin,
    State(app): State<App>,
    Path(account): Path<String>,
) -> ApiResult<StatusCode> {
    let a = load(&app, &account).await?;
    // Revoke at the provider first (best effort: a refusal means the token
    // was already dead), then forget everything locally.
    if let (Some(clients), Some(sealed)) = (app.sync.clients(a.provider), a.tokens.as_deref()) {
        if let Some(t) = tokens::unseal(&app.secrets, sealed) {
            let token = t.refresh_token.unwrap_or(t.access_token);
            if let Err(e) = clients.oauth.revoke(&token).await {
                tracing::warn!(account = %a.id, error = %e, "revoking the token upstream failed; removing it locally anyway");
            }
        }
    }
    let id = a.id.clone();
    app.blocking(move |db| db.delete_account(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
