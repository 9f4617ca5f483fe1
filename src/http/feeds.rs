//! `GET`/`HEAD /feeds/<token>.ics`: the public ICS feeds.
//!
//! The token is the capability: it is looked up by its hash, and anything
//! that is not a live token gets the same bare 404. A poll of an unchanged
//! feed computes a fingerprint from the calendars' change sequences and is
//! answered from cached bytes (or 304) without rendering.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::App;
use crate::feed::{self, CachedFeed, FeedObject, RenderOptions};
use crate::model::{Calendar, Feed, FeedScopeKind, GroupId, Include, Privacy, StaffId};
use crate::store::db::DbError;
use crate::store::Db;

pub fn router() -> Router<App> {
    Router::new().route("/feeds/{file}", get(serve_feed))
}

fn bare_404() -> Response {
    (StatusCode::NOT_FOUND, "Not Found\n").into_response()
}

/// A token as handed out: 43 URL-safe base64 characters.
fn plausible_token(t: &str) -> bool {
    t.len() == 43
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The calendars a feed covers, its display name and default zone; `None`
/// when its target is gone.
pub struct Scope {
    pub name: String,
    pub timezone: Option<String>,
    pub calendars: Vec<Calendar>,
    pub keep_alarms: bool,
}

fn wanted(feed: &Feed, cal: &Calendar) -> bool {
    if cal.is_native() {
        feed.include.contains(&Include::Appointments)
    } else {
        feed.include.contains(&Include::External)
    }
}

pub fn resolve_scope(db: &Db, feed: &Feed) -> Result<Option<Scope>, DbError> {
    let staff_cals = |id: &StaffId| -> Result<Vec<Calendar>, DbError> {
        Ok(db
            .calendars_of_staff(id)?
            .into_iter()
            .filter(|c| wanted(feed, c))
            .collect())
    };
    let scope = match feed.scope {
        FeedScopeKind::Staff => {
            let Some(s) = db.staff(&StaffId(feed.target.clone()))? else {
                return Ok(None);
            };
            Scope {
                name: s.name.clone(),
                timezone: Some(s.timezone.clone()),
                calendars: staff_cals(&s.id)?,
                keep_alarms: true,
            }
        }
        FeedScopeKind::Group => {
            let Some(g) = db.group(&GroupId(feed.target.clone()))? else {
                return Ok(None);
            };
            let mut calendars = Vec::new();
            for m in db.group_members(&g.id)? {
                calendars.extend(staff_cals(&m)?);
            }
            let tz = db.company(&g.company)?.map(|c| c.timezone);
            Scope {
                name: g.name,
                timezone: tz,
                calendars,
                keep_alarms: false,
            }
        }
        FeedScopeKind::Company => {
            let Some(c) = db.company(&crate::model::CompanyId(feed.target.clone()))? else {
                return Ok(None);
            };
            let mut calendars = Vec::new();
            for s in db.staff_of_company(&c.id)? {
                calendars.extend(staff_cals(&s.id)?);
            }
            Scope {
                name: c.name,
                timezone: Some(c.timezone),
                calendars,
                keep_alarms: false,
            }
        }
    };
    Ok(Some(scope))
}

/// The start of the published window: `now - past_window`, at a day
/// boundary so the fingerprint changes once a day, not every second.
pub fn window_start(past: Duration, now: i64) -> i64 {
    let s = now - past.as_secs() as i64;
    s - s.rem_euclid(86_400)
}

/// Render (or fetch from cache) a feed. Blocking: run off the async threads.
pub fn load(app: &App, feed: &Feed) -> Result<Option<Arc<CachedFeed>>, DbError> {
    let db = &app.db;
    let Some(scope) = resolve_scope(db, feed)? else {
        return Ok(None);
    };
    let window = window_start(app.config.sync.past_window, crate::model::now());
    // A staff busy feed's free/busy reads every conflicts calendar, even
    // ones the feed does not list: they all count for freshness.
    let watched = match (feed.privacy, feed.scope) {
        (Privacy::Busy, FeedScopeKind::Staff) => {
            db.calendars_of_staff(&StaffId(feed.target.clone()))?
        }
        _ => scope.calendars.clone(),
    };
    let mut seqs = Vec::with_capacity(watched.len());
    for c in &watched {
        seqs.push((
            c.id.as_str().to_string(),
            db.calendar_seq(&c.id)?.unwrap_or(0),
        ));
    }
    let fp = feed::fingerprint((
        feed.id.as_str(),
        feed.generation,
        format!("{:?}{:?}", feed.privacy, feed.include),
        window,
        &scope.name,
        &seqs,
    ));
    if let Some(hit) = app.feeds.get(&feed.id, fp) {
        app.metrics.feed_cache_hits.inc();
        return Ok(Some(hit));
    }
    // The previous render (if any) lends the pieces of unchanged objects,
    // whose bodies are then not read.
    let previous = app.feeds.latest(&feed.id);
    let known = |etag: &str, lm: i64| {
        previous
            .as_ref()
            .is_some_and(|p| p.memo.has(feed.privacy, scope.keep_alarms, etag, lm))
    };
    let mut bodies: Vec<(Vec<u8>, i64, String, usize, String)> = Vec::new();
    let mut newest = 0;
    // Native calendars first, so a mirrored copy of an appointment is the
    // duplicate that gets dropped.
    let mut cals = scope.calendars.clone();
    cals.sort_by_key(|c| !c.is_native());
    for (ci, c) in cals.iter().enumerate() {
        for meta in db.events_overlapping_by_scan(&c.id, window, i64::MAX)? {
            let body = if known(&meta.etag, meta.last_modified) {
                Vec::new()
            } else {
                match db.event_body(&c.id, &meta.href)? {
                    Some(b) => b,
                    None => continue,
                }
            };
            newest = newest.max(meta.last_modified);
            bodies.push((body, meta.last_modified, meta.etag, ci, meta.href));
        }
    }
    let objects: Vec<FeedObject<'_>> = bodies
        .iter()
        .map(|(b, lm, etag, ..)| FeedObject {
            body: b,
            last_modified: *lm,
            etag: Some(etag),
        })
        .collect();
    // A staff member's busy feed also publishes their free/busy.
    let fb_range = (window, crate::model::now() + 90 * 86_400);
    let busy = match (feed.privacy, feed.scope) {
        (Privacy::Busy, FeedScopeKind::Staff) => match db.staff(&StaffId(feed.target.clone()))? {
            Some(s) => Some(crate::freebusy::busy_periods(
                db, &s, fb_range.0, fb_range.1,
            )?),
            None => None,
        },
        _ => None,
    };
    let fb_uid = format!("{}-freebusy@calbridge", feed.id);
    let rendered = feed::render_with(
        &objects,
        &RenderOptions {
            name: &scope.name,
            privacy: feed.privacy,
            keep_alarms: scope.keep_alarms,
            refresh: app.config.feed_refresh,
            timezone: scope.timezone.as_deref(),
            freebusy: busy
                .as_deref()
                .map(|b| (fb_uid.as_str(), fb_range.0, fb_range.1, b)),
        },
        previous.as_ref().map(|p| &p.memo),
        &mut |i| {
            let (_, _, _, ci, href) = &bodies[i];
            db.event_body(&cals[*ci].id, href).ok().flatten()
        },
    );
    drop(previous);
    let stats = rendered.stats.clone();
    if stats.skipped_unreadable > 0 {
        tracing::warn!(feed = %feed.id, skipped = stats.skipped_unreadable, "unreadable events left out of a feed");
    }
    app.metrics.feed_renders.inc();
    let cached = Arc::new(CachedFeed::rendered(fp, rendered, newest));
    app.feeds.put(feed.id.clone(), cached.clone());
    let read: usize = bodies.iter().map(|b| b.0.len()).sum();
    drop(objects);
    drop(bodies);
    if read + cached.body.len() >= crate::feed::RELEASE_AFTER {
        crate::feed::release_free_memory();
    }
    Ok(Some(cached))
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut it = part.split(';');
            let coding = it.next().unwrap_or("").trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip"))
                && q > 0.0
        })
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

async fn serve_feed(
    State(app): State<App>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = file.strip_suffix(".ics") else {
        return bare_404();
    };
    if !plausible_token(token) {
        return bare_404();
    }
    let hash = crate::crypto::token_hash(token);
    let app2 = app.clone();
    let result =
        tokio::task::spawn_blocking(move || -> Result<Option<Arc<CachedFeed>>, DbError> {
            let Some(feed) = app2.db.feed_by_token_hash(&hash)? else {
                return Ok(None);
            };
            load(&app2, &feed)
        })
        .await;
    let cached = match result {
        Ok(Ok(Some(c))) => c,
        Ok(Ok(None)) => return bare_404(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "feed failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "feed task failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
        }
    };
    let mut common = HeaderMap::new();
    let hv = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    common.insert(header::ETAG, hv(&cached.etag));
    common.insert(header::LAST_MODIFIED, hv(&cached.last_modified));
    common.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    common.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    common.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    common.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if etag_matches(&headers, &cached.etag) {
        app.metrics.feed_not_modified.inc();
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    common.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/calendar; charset=utf-8"),
    );
    common.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline; filename=\"calendar.ics\""),
    );
    if accepts_gzip(&headers) {
        common.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        (StatusCode::OK, common, cached.gzip()).into_response()
    } else {
        (StatusCode::OK, common, cached.body.clone()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, v.parse().unwrap());
            m
        };
        assert!(accepts_gzip(&h("gzip, deflate")));
        assert!(accepts_gzip(&h("br;q=1.0, gzip;q=0.5")));
        assert!(!accepts_gzip(&h("gzip;q=0")));
        assert!(!accepts_gzip(&h("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn window_starts_at_a_day_boundary() {
        let w = window_start(Duration::from_secs(30 * 86_400), 1_800_000_123);
        assert_eq!(w % 86_400, 0);
        assert!(w <= 1_800_000_123 - 30 * 86_400 && w > 1_800_000_123 - 31 * 86_400);
    }

    #[test]
    fn only_token_shaped_names_are_looked_up() {
        assert!(plausible_token(&crate::crypto::random_token()));
        assert!(!plausible_token("../../etc/passwd"));
        assert!(!plausible_token("short"));
    }
}
