//! Companies, groups, staff and app passwords.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_email, check_name, check_timezone, paged, Admin, Page};
use crate::http::body::{JsonBody, OptionalJson};
use crate::http::error::{ApiError, ApiResult};
use crate::http::App;
use crate::model::{
    AppPassword, AppPasswordId, Company, CompanyId, Group, GroupId, Staff, StaffId,
};
use crate::store::db::StaffChange;

fn company_json(c: &Company) -> Value {
    json!({"id": c.id, "name": c.name, "timezone": c.timezone, "created": rfc3339(c.created)})
}

fn group_json(g: &Group) -> Value {
    json!({"id": g.id, "name": g.name, "company": g.company, "created": rfc3339(g.created)})
}

pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

pub fn staff_json(app: &App, s: &Staff) -> Value {
    json!({
        "id": s.id,
        "company": s.company,
        "name": s.name,
        "email": s.email,
        "timezone": s.timezone,
        "groups": s.groups,
        "created": rfc3339(s.created),
        "caldav": {
            "url": app.url("/dav/"),
            "principal": app.url(&format!("/dav/principals/{}/", s.id)),
            "username": s.email,
        }
    })
}

/// A company id from a path, or 404.
pub async fn load_company(app: &App, raw: &str) -> ApiResult<Company> {
    let id = CompanyId::parse(raw).ok_or_else(|| ApiError::not_found("company"))?;
    app.db
        .company(&id)?
        .ok_or_else(|| ApiError::not_found("company"))
}

pub async fn load_staff(app: &App, raw: &str) -> ApiResult<Staff> {
    let id = StaffId::parse(raw).ok_or_else(|| ApiError::not_found("staff member"))?;
    app.db
        .staff(&id)?
        .ok_or_else(|| ApiError::not_found("staff member"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCompany {
    name: String,
    #[serde(default)]
    timezone: Option<String>,
}

pub async fn create_company(
    _: Admin,
    State(app): State<App>,
    JsonBody(body): JsonBody<NewCompany>,
) -> ApiResult<Response> {
    let name = check_name("name", &body.name)?;
    let tz = check_timezone("timezone", body.timezone.as_deref().unwrap_or("UTC"))?;
    let c = app
        .blocking(move |db| db.create_company(&name, &tz))
        .await?;
    Ok((StatusCode::CREATED, Json(company_json(&c))).into_response())
}

pub async fn list_companies(
    _: Admin,
    State(app): State<App>,
    Query(page): Query<Page>,
) -> ApiResult<Response> {
    let all = app
        .db
        .companies()?
        .iter()
        .map(|c| (c.id.to_string(), company_json(c)))
        .collect();
    paged(&app, "/api/v1/companies", "", all, &page)
}

pub async fn get_company(
    _: Admin,
    State(app): State<App>,
    Path(company): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(company_json(&load_company(&app, &company).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    name: String,
}

pub async fn create_group(
    _: Admin,
    State(app): State<App>,
    Path(company): Path<String>,
    JsonBody(body): JsonBody<NewGroup>,
) -> ApiResult<Response> {
    let c = load_company(&app, &company).await?;
    let name = check_name("name", &body.name)?;
    let g = app
        .blocking(move |db| db.create_group(&c.id, &name))
        .await?;
    Ok((StatusCode::CREATED, Json(group_json(&g))).into_response())
}

pub async fn list_groups(
    _: Admin,
    State(app): State<App>,
    Path(company): Path<String>,
    Query(page): Query<Page>,
) -> ApiResult<Response> {
    let c = load_company(&app, &company).await?;
    let all = app
        .db
        .groups_of_company(&c.id)?
        .iter()
        .map(|g| (g.id.to_string(), group_json(g)))
        .collect();
    paged(
        &app,
        &format!("/api/v1/companies/{}/groups", c.id),
        "",
        all,
        &page,
    )
}

pub async fn get_group(
    _: Admin,
    State(app): State<App>,
    Path(group): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = GroupId::parse(&group).ok_or_else(|| ApiError::not_found("group"))?;
    let g = app
        .db
        .group(&id)?
        .ok_or_else(|| ApiError::not_found("group"))?;
    let mut v = group_json(&g);
    v["members"] = json!(app.db.group_members(&g.id)?);
    Ok(Json(v))
}

/// Group ids from a request, each checked to exist in the company.
fn check_groups(app: &App, company: &CompanyId, ids: &[String]) -> ApiResult<Vec<GroupId>> {
    let mut out = Vec::new();
    for raw in ids {
        let g = GroupId::parse(raw)
            .and_then(|id| app.db.group(&id).ok().flatten())
            .filter(|g| &g.company == company)
            .ok_or_else(|| {
                ApiError::invalid("groups", format!("no group {raw:?} in this company"))
            })?;
        out.push(g.id);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewStaff {
    name: String,
    email: String,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

pub async fn create_staff(
    _: Admin,
    State(app): State<App>,
    Path(company): Path<String>,
    JsonBody(body): JsonBody<NewStaff>,
) -> ApiResult<Response> {
    let c = load_company(&app, &company).await?;
    let name = check_name("name", &body.name)?;
    let email = check_email(&body.email)?;
    let tz = check_timezone("timezone", body.timezone.as_deref().unwrap_or(&c.timezone))?;
    let groups = check_groups(&app, &c.id, &body.groups)?;
    let (s, _) = app
        .blocking(move |db| db.create_staff(&c.id, &name, &email, &tz, &groups))
        .await?;
    Ok((StatusCode::CREATED, Json(staff_json(&app, &s))).into_response())
}

pub async fn list_staff(
    _: Admin,
    State(app): State<App>,
    Path(company): Path<String>,
    Query(page): Query<Page>,
) -> ApiResult<Response> {
    let c = load_company(&app, &company).await?;
    let all = app
        .db
        .staff_of_company(&c.id)?
        .iter()
        .map(|s| (s.id.to_string(), staff_json(&app, s)))
        .collect();
    paged(
        &app,
        &format!("/api/v1/companies/{}/staff", c.id),
        "",
        all,
        &page,
    )
}

pub async fn get_staff(
    _: Admin,
    State(app): State<App>,
    Path(staff): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = load_staff(&app, &staff).await?;
    Ok(Json(staff_json(&app, &s)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffPatch {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    groups: Option<Vec<String>>,
}

pub async fn patch_staff(
    _: Admin,
    State(app): State<App>,
    Path(staff): Path<String>,
    JsonBody(body): JsonBody<StaffPatch>,
) -> ApiResult<Json<Value>> {
    let s = load_staff(&app, &staff).await?;
    let change = StaffChange {
        name: body
            .name
            .as_deref()
            .map(|n| check_name("name", n))
            .transpose()?,
        email: body.email.as_deref().map(check_email).transpose()?,
        timezone: body
            .timezone
            .as_deref()
            .map(|t| check_timezone("timezone", t))
            .transpose()?,
        groups: body
            .groups
            .as_deref()
            .map(|g| check_groups(&app, &s.company, g))
            .transpose()?,
    };
    let email_changed = change.email.is_some();
    let updated = app
        .blocking(move |db| db.update_staff(&s.id, change))
        .await?;
    if email_changed {
        app.dav_auth.clear();
    }
    Ok(Json(staff_json(&app, &updated)))
}

pub async fn delete_staff(
    _: Admin,
    State(app): State<App>,
    Path(staff): Path<String>,
) -> ApiResult<StatusCode> {
    let s = load_staff(&app, &staff).await?;
    app.blocking(move |db| db.delete_staff(&s.id)).await?;
    app.dav_auth.clear();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewAppPassword {
    #[serde(default)]
    label: Option<String>,
}

/// 32 random characters from a 36-letter alphabet: about 165 bits.
fn new_app_password() -> String {
    let raw = crate::crypto::random_id(32);
    // Groups of four for readability when typed into a phone.
    raw.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect::<Vec<_>>()
        .join("-")
}

pub async fn create_app_password(
    _: Admin,
    State(app): State<App>,
    Path(staff): Path<String>,
    OptionalJson(body): OptionalJson<NewAppPassword>,
) -> ApiResult<Response> {
    let s = load_staff(&app, &staff).await?;
    let label = body.label.map(|l| check_name("label", &l)).transpose()?;
    let password = new_app_password();
    let hash = {
        let p = password.clone();
        tokio::task::spawn_blocking(move || crate::crypto::hash_password(&p)).await?
    };
    let ap = AppPassword {
        id: AppPasswordId::generate(),
        staff: s.id.clone(),
        label,
        hash,
        created: crate::model::now(),
    };
    let stored = ap.clone();
    app.blocking(move |db| db.create_app_password(&stored))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": ap.id,
            "label": ap.label,
            "username": s.email,
            "password": password,
            "created": rfc3339(ap.created),
            "caldav_url": app.url("/dav/"),
        })),
    )
        .into_response())
}

pub async fn list_app_passwords(
    _: Admin,
    State(app): State<App>,
    Path(staff): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = load_staff(&app, &staff).await?;
    let list: Vec<Value> = app
        .db
        .app_passwords(&s.id)?
        .iter()
        .map(|a| json!({"id": a.id, "label": a.label, "username": s.email, "created": rfc3339(a.created)}))
        .collect();
    Ok(Json(json!(list)))
}

pub async fn delete_app_password(
    _: Admin,
    State(app): State<App>,
    Path((staff, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let s = load_staff(&app, &staff).await?;
    let id = AppPasswordId::parse(&id).ok_or_else(|| ApiError::not_found("app password"))?;
    app.blocking(move |db| db.delete_app_password(&s.id, &id))
        .await
        .map_err(|e| {
            if e.status == StatusCode::NOT_FOUND {
                ApiError::not_found("app password")
            } else {
                e
            }
        })?;
    app.dav_auth.clear();
    Ok(StatusCode::NO_CONTENT)
}
