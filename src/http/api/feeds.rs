//! Feed management: create (the URL is shown once), rotate, revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::directory::rfc3339;
use super::Admin;
use crate::crypto;
use crate::http::body::JsonBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::App;
use crate::model::{CompanyId, Feed, FeedId, FeedScopeKind, GroupId, Include, Privacy, StaffId};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFeed {
    scope: FeedScopeKind,
    id: String,
    #[serde(default)]
    privacy: Option<Privacy>,
    #[serde(default)]
    include: Option<Vec<Include>>,
}

fn feed_json(app: &App, f: &Feed, token: Option<&str>) -> Value {
    let mut v = json!({
        "id": f.id,
        "scope": f.scope,
        "target": f.target,
        "privacy": f.privacy,
        "include": f.include,
        "created": rfc3339(f.created),
    });
    if let Some(t) = token {
        let url = app.url(&format!("/feeds/{t}.ics"));
        let webcal = match url.split_once("://") {
            Some((_, rest)) => format!("webcal://{rest}"),
            None => url.clone(),
        };
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        v["url"] = json!(url);
        v["webcal_url"] = json!(webcal);
        v["subscribe"] = json!({
            "google": format!("https://calendar.google.com/calendar/r?cid={}", enc(&webcal)),
            "outlook": format!("https://outlook.live.com/calendar/0/addfromweb?url={}", enc(&url)),
            "apple": webcal,
        });
    }
    v
}

/// The company the target belongs to, or a 422 naming `id`.
fn target_company(app: &App, scope: FeedScopeKind, id: &str) -> ApiResult<CompanyId> {
    let missing = || ApiError::invalid("id", format!("no {scope:?} with id {id:?}").to_lowercase());
    let company = match scope {
        FeedScopeKind::Staff => StaffId::parse(id)
            .and_then(|s| app.db.staff(&s).ok().flatten())
            .map(|s| s.company),
        FeedScopeKind::Group => GroupId::parse(id)
            .and_then(|g| app.db.group(&g).ok().flatten())
            .map(|g| g.company),
        FeedScopeKind::Company => CompanyId::parse(id)
            .and_then(|c| app.db.company(&c).ok().flatten())
            .map(|c| c.id),
    };
    company.ok_or_else(missing)
}

pub async fn create(
    _: Admin,
    State(app): State<App>,
    JsonBody(body): JsonBody<NewFeed>,
) -> ApiResult<Response> {
    let company = target_company(&app, body.scope, &body.id)?;
    let mut include = body
        .include
        .unwrap_or_else(|| vec![Include::Appointments, Include::External]);
    include.sort_by_key(|i| *i as u8);
    include.dedup();
    if include.is_empty() {
        return Err(ApiError::invalid(
            "include",
            "must name at least one of appointments, external",
        ));
    }
    let token = crypto::random_token();
    let feed = Feed {
        id: FeedId::generate(),
        company,
        scope: body.scope,
        target: body.id,
        privacy: body.privacy.unwrap_or(Privacy::Full),
        include,
        token_hash: crypto::token_hash(&token),
        created: crate::model::now(),
        generation: 0,
    };
    let stored = feed.clone();
    app.blocking(move |db| db.create_feed(&stored)).await?;
    Ok((
        StatusCode::CREATED,
        Json(feed_json(&app, &feed, Some(&token))),
    )
        .into_response())
}

fn parse_id(raw: &str) -> ApiResult<FeedId> {
    FeedId::parse(raw).ok_or_else(|| ApiError::not_found("feed"))
}

pub async fn get_one(
    _: Admin,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let f = app
        .db
        .feed(&id)?
        .ok_or_else(|| ApiError::not_found("feed"))?;
    Ok(Json(feed_json(&app, &f, None)))
}

pub async fn rotate(
    _: Admin,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let token = crypto::random_token();
    let hash = crypto::token_hash(&token);
    let f = app
        .blocking(move |db| db.rotate_feed(&id, &hash))
        .await
        .map_err(|e| {
            if e.status == StatusCode::NOT_FOUND {
                ApiError::not_found("feed")
            } else {
                e
            }
        })?;
    app.feeds.remove(&f.id);
    Ok(Json(feed_json(&app, &f, Some(&token))))
}

pub async fn revoke(
    _: Admin,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    let f = app
        .blocking(move |db| db.delete_feed(&id))
        .await
        .map_err(|e| {
            if e.status == StatusCode::NOT_FOUND {
                ApiError::not_found("feed")
            } else {
                e
            }
        })?;
    app.feeds.remove(&f.id);
    Ok(StatusCode::NO_CONTENT)
}
