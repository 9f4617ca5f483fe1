//! The admin API (`/api/v1`, JSON, `Authorization: Bearer <admin token>`).
//!
//! Every handler takes the [`Admin`] extractor first, so no route can be
//! added without authentication. Lists return a JSON array and page with
//! `?limit=&cursor=` plus a `Link: <…>; rel="next"` header.

mod accounts;
mod appointments;
mod directory;
mod feeds;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::App;

pub use super::auth::Admin;

pub fn router(_app: App) -> Router<App> {
    Router::new()
        .route(
            "/api/v1/companies",
            post(directory::create_company).get(directory::list_companies),
        )
        .route("/api/v1/companies/{company}", get(directory::get_company))
        .route(
            "/api/v1/companies/{company}/groups",
            post(directory::create_group).get(directory::list_groups),
        )
        .route(
            "/api/v1/companies/{company}/staff",
            post(directory::create_staff).get(directory::list_staff),
        )
        .route("/api/v1/groups/{group}", get(directory::get_group))
        .route(
            "/api/v1/staff/{staff}",
            get(directory::get_staff)
                .patch(directory::patch_staff)
                .delete(directory::delete_staff),
        )
        .route(
            "/api/v1/staff/{staff}/app-passwords",
            post(directory::create_app_password).get(directory::list_app_passwords),
        )
        .route(
            "/api/v1/staff/{staff}/app-passwords/{id}",
            axum::routing::delete(directory::delete_app_password),
        )
        .route(
            "/api/v1/staff/{staff}/appointments",
            post(appointments::create).get(appointments::list),
        )
        .route(
            "/api/v1/appointments/{id}",
            get(appointments::get_one)
                .patch(appointments::patch)
                .delete(appointments::cancel),
        )
        .route(
            "/api/v1/staff/{staff}/freebusy",
            get(appointments::freebusy),
        )
        .route(
            "/api/v1/staff/{staff}/push-existing",
            post(appointments::push_existing),
        )
        .route(
            "/api/v1/staff/{staff}/accounts",
            post(accounts::connect).get(accounts::list),
        )
        .route(
            "/api/v1/accounts/{account}",
            axum::routing::delete(accounts::disconnect).get(accounts::status),
        )
        .route(
            "/api/v1/accounts/{account}/calendars",
            get(accounts::calendars),
        )
        .route(
            "/api/v1/accounts/{account}/calendars/{remote}",
            axum::routing::put(accounts::select),
        )
        .route("/api/v1/accounts/{account}/status", get(accounts::status))
        .route("/api/v1/accounts/{account}/sync", post(accounts::sync_now))
        .route(
            "/api/v1/accounts/{account}/reconnect",
            post(accounts::reconnect),
        )
        .route("/api/v1/backup", get(backup))
        .route("/api/v1/feeds", post(feeds::create))
        .route(
            "/api/v1/feeds/{feed}",
            get(feeds::get_one).delete(feeds::revoke),
        )
        .route("/api/v1/feeds/{feed}/rotate", post(feeds::rotate))
}

/// `?limit=&cursor=` of list routes.
#[derive(Debug, Deserialize, Default)]
pub struct Page {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;

/// Answer one page of `items`, given with their sort keys (the cursor is
/// the last key of a page), with a `Link` to the next page.
pub fn paged<T: Serialize>(
    app: &App,
    path: &str,
    extra_query: &str,
    mut items: Vec<(String, T)>,
    page: &Page,
) -> ApiResult<Response> {
    let limit = page.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(c) = &page.cursor {
        items.retain(|(k, _)| k.as_str() > c.as_str());
    }
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more {
        items.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    let items: Vec<T> = items.into_iter().map(|(_, t)| t).collect();
    let mut resp = Json(items).into_response();
    if let Some(n) = next {
        let sep = if extra_query.is_empty() { "" } else { "&" };
        let link = format!(
            "<{}{}?{}{}limit={}&cursor={}>; rel=\"next\"",
            app.config.public_url,
            path,
            extra_query,
            sep,
            limit,
            percent_encoding::utf8_percent_encode(&n, percent_encoding::NON_ALPHANUMERIC)
        );
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

/// A non-empty, bounded, single-line name.
pub fn check_name(field: &str, v: &str) -> ApiResult<String> {
    let t = v.trim();
    if t.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if t.len() > 200 {
        return Err(ApiError::invalid(field, "longer than 200 bytes"));
    }
    if t.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(t.to_string())
}

/// A plausible e-mail address (it is also the CalDAV user name).
pub fn check_email(v: &str) -> ApiResult<String> {
    let e = v.trim().to_ascii_lowercase();
    let bad = || ApiError::invalid("email", format!("not an e-mail address: {v:?}"));
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = e.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty() || local.contains('@') || local.contains(':') || domain.is_empty() {
        return Err(bad());
    }
    let domain_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if !domain_ok {
        return Err(bad());
    }
    Ok(e)
}

pub fn check_timezone(field: &str, v: &str) -> ApiResult<String> {
    crate::model::appointment::parse_zone("timezone", v)
        .map(|z| z.name().to_string())
        .map_err(|e| ApiError::invalid(field, e.message))
}

/// `GET /api/v1/backup`: a consistent snapshot of the whole store (see
/// [`crate::backup`]); writes wait while it is taken.
async fn backup(
    _: Admin,
    axum::extract::State(app): axum::extract::State<App>,
) -> ApiResult<Response> {
    let store = app.db.store().clone();
    let (bytes, stats) = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        crate::backup::write_backup(store.as_ref(), &mut out).map(|s| (out, s))
    })
    .await?
    .map_err(|e| {
        tracing::error!(error = %e, "backup failed");
        ApiError::internal()
    })?;
    let name = format!(
        "calbridge-{}.backup",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&stats.records.to_string()) {
        h.insert("x-calbridge-records", v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            check_email(" Anna@Example.COM ").unwrap(),
            "anna@example.com"
        );
        assert!(check_email("a@b").is_ok());
        for bad in [
            "",
            "no-at",
            "@x.com",
            "a@",
            "a b@x.com",
            "a@x..com",
            "a@-x.com",
            "a:b@x.com",
        ] {
            let e = check_email(bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("email"), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(check_name("name", "  Anna ").unwrap(), "Anna");
        assert!(check_name("name", "   ").is_err());
        assert!(check_name("name", "a\nb").is_err());
        assert!(check_name("name", &"x".repeat(201)).is_err());
    }
}
