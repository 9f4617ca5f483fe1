//! Calendar object resources: GET, HEAD, PUT and DELETE with strong
//! ETags, `If-Match` / `If-None-Match`, and the CalDAV PUT preconditions
//! (RFC 4791 §5.3.2.1).
//!
//! Owns: turning a request body into a stored object (parse, validate,
//! index fields) and the conditional-write rule: the etag checked is the
//! etag the store must still see when it commits. Must not: rewrite the
//! object; the bytes a client PUT are the bytes GET returns.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;

use crate::dav::request::EtagCondition;
use crate::dav::{names, Condition, DavError};
use crate::model::EventMeta;
use crate::store::db::{DbError, EventWrite, Precondition};
use crate::store::Batch;

use super::{
    body, db_error, engine, header_text, not_found, precondition_failed, Ctx, Resolved, Target,
};

/// The precondition a write must carry: `None` without conditional
/// headers; otherwise the headers are checked against `current` here
/// (412 when they fail) and the state they were checked against is pinned
/// for the store.
pub fn precondition(
    headers: &HeaderMap,
    current: Option<&EventMeta>,
) -> Result<Precondition, DavError> {
    let parse = |name: &str| {
        header_text(headers, name)
            .map(|v| EtagCondition::parse(&v))
            .transpose()
    };
    let (if_match, if_none_match) = (parse("if-match")?, parse("if-none-match")?);
    if if_match.is_none() && if_none_match.is_none() {
        return Ok(Precondition::None);
    }
    let cur = current.map(EventMeta::etag_header);
    let ok = if_match.as_ref().is_none_or(|c| c.if_match(cur.as_deref()))
        && if_none_match
            .as_ref()
            .is_none_or(|c| c.if_none_match(cur.as_deref()));
    if !ok {
        return Err(precondition_failed());
    }
    Ok(match current {
        Some(m) => Precondition::IfMatch(m.etag.clone()),
        None => Precondition::IfAbsent,
    })
}

/// 403 `DAV:need-privileges` for a write to a read-only calendar.
pub fn read_only(path: &str, privilege: crate::dav::QName) -> DavError {
    DavError::condition(
        Condition::NeedPrivileges(vec![(path.to_string(), privilege)]),
        "this calendar is read-only: it mirrors a calendar synced in one direction",
    )
}

fn location_not_ok() -> DavError {
    DavError::condition(
        Condition::CalendarCollectionLocationOk,
        "calendar objects are stored inside a calendar collection: \
         /dav/calendars/<you>/<calendar>/<name>.ics",
    )
}

pub async fn get(ctx: &Ctx, r: &Resolved, req: Request) -> Result<Response, DavError> {
    let Target::Object { cal, name } = &r.target else {
        return match &r.target {
            Target::NoCalendar { .. } => Err(not_found()),
            _ => Err(DavError::new(
                405,
                "GET is served for calendar objects; use PROPFIND or REPORT on collections",
            )),
        };
    };
    let db = ctx.db();
    let meta = db
        .event(&cal.id, name)
        .map_err(db_error)?
        .ok_or_else(not_found)?;
    let etag = meta.etag_header();
    let headers = req.headers();
    if let Some(v) = header_text(headers, "if-match") {
        if !EtagCondition::parse(&v)?.if_match(Some(&etag)) {
            return Err(precondition_failed());
        }
    }
    let not_modified = match header_text(headers, "if-none-match") {
        Some(v) => !EtagCondition::parse(&v)?.if_none_match(Some(&etag)),
        None => false,
    };
    let mut builder = Response::builder().header(header::ETAG, &etag).header(
        header::LAST_MODIFIED,
        httpdate::fmt_http_date(
            std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(meta.last_modified.max(0) as u64),
        ),
    );
    if not_modified {
        builder = builder.status(StatusCode::NOT_MODIFIED);
        return Ok(builder.body(Body::empty()).expect("valid response"));
    }
    let body = db
        .event_body(&cal.id, name)
        .map_err(db_error)?
        .ok_or_else(not_found)?;
    let body = if req.method() == Method::HEAD {
        builder = builder.header(header::CONTENT_LENGTH, body.len());
        Body::empty()
    } else {
        Body::from(body)
    };
    Ok(builder
        .header(header::CONTENT_TYPE, "text/calendar; charset=utf-8")
        .body(body)
        .expect("valid response"))
}

/// Whether a request's Content-Type may carry iCalendar (absent, or
/// `text/calendar` with any parameters).
fn is_calendar_type(headers: &HeaderMap) -> bool {
    match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        None => true,
        Some(ct) => ct
            .split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/calendar")),
    }
}

pub async fn put(ctx: &Ctx, r: &Resolved, req: Request) -> Result<Response, DavError> {
    let (cal, name) = match &r.target {
        Target::Object { cal, name } => (cal, name),
        Target::Calendar(_) => {
            return Err(DavError::new(
                405,
                "PUT of a collection is not supported; PUT objects into it",
            ))
        }
        _ => return Err(location_not_ok()),
    };
    if !cal.writable() {
        return Err(read_only(&r.path, names::WRITE_CONTENT));
    }
    if !is_calendar_type(req.headers()) {
        return Err(DavError::condition(
            Condition::SupportedCalendarData,
            "calendar objects are text/calendar (iCalendar 2.0)",
        ));
    }
    let headers = req.headers().clone();
    let bytes = body(ctx, req).await?;
    let invalid = |m: String| DavError::condition(Condition::ValidCalendarData, m);
    if std::str::from_utf8(&bytes).is_err() {
        return Err(invalid("the body is not UTF-8 iCalendar".into()));
    }
    let obj = crate::ics::parse(&bytes).map_err(|e| invalid(format!("not iCalendar: {e}")))?;
    let info = engine::analyze(&obj, ctx.zone(cal))?;
    if !cal.holds(&info.kind) {
        return Err(DavError::condition(
            Condition::SupportedCalendarComponent,
            format!(
                "this calendar holds {} only, not {}",
                cal.component_types().join(", "),
                info.kind
            ),
        ));
    }
    let current = ctx.db().event(&cal.id, name).map_err(db_error)?;
    let pre = precondition(&headers, current.as_ref())?;
    let w = EventWrite {
        calendar: cal.id.clone(),
        href: name.clone(),
        uid: info.uid,
        start: info.start,
        end: info.end,
        recurring: info.recurring,
        body: bytes.to_vec(),
        remote: current.and_then(|m| m.remote),
        id: None,
        last_modified: None,
    };
    let out = ctx
        .write(move |db| db.put_event(w, &pre, |_, _| Batch::new()))
        .await
        .map_err(|e| match e {
            DbError::UidConflict { uid, href } => DavError::condition(
                Condition::NoUidConflict {
                    href: format!("{}{href}", r.parent_path()),
                },
                format!("UID {uid:?} is already used by another object of this calendar"),
            ),
            other => db_error(other),
        })?;
    let status = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    };
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(&out.meta.etag_header()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

pub async fn delete(ctx: &Ctx, r: &Resolved, req: Request) -> Result<Response, DavError> {
    let Target::Object { cal, name } = &r.target else {
        return Err(not_found());
    };
    let current = ctx
        .db()
        .event(&cal.id, name)
        .map_err(db_error)?
        .ok_or_else(not_found)?;
    if !cal.writable() {
        return Err(read_only(r.parent_path(), names::UNBIND));
    }
    let pre = precondition(req.headers(), Some(&current))?;
    let (id, name) = (cal.id.clone(), name.clone());
    ctx.write(move |db| db.delete_event(&id, &name, &pre, |_| Batch::new()))
        .await
        .map_err(db_error)?;
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .expect("valid response"))
}
