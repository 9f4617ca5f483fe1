//! Calendar object resources: GET, HEAD, PUT, DELETE, COPY and MOVE with
//! strong ETags, `If-Match` / `If-None-Match`, and the CalDAV PUT preconditions
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
use crate::sync::outbox;

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
    match headers.get(header::CONTENT_TYPE) {
        None => true,
        // A value that is not even text is not text/calendar either.
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|ct| ct.split(';').next())
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
    // A write that must go upstream is refused now, before anything is
    // stored, if the provider cannot express it.
    if let Err(reason) = outbox::check_expressible(ctx.db(), cal, &obj).map_err(db_error)? {
        return Err(DavError::condition(
            Condition::ValidCalendarObjectResource,
            format!("this calendar syncs upstream and the event cannot be written there: {reason}"),
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
        .write({
            let cal = (*cal).clone();
            move |db| {
                let hook = outbox::on_put(db, &cal)?;
                db.put_event(w, &pre, hook)
            }
        })
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
    let (c, name) = ((*cal).clone(), name.clone());
    ctx.write(move |db| {
        let hook = outbox::on_delete(db, &c)?;
        db.delete_event(&c.id, &name, &pre, hook)
    })
    .await
    .map_err(db_error)?;
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .expect("valid response"))
}

/// The `Destination` of a COPY or MOVE, resolved in the user's home; it
/// must name an object in a calendar that exists.
fn destination(ctx: &Ctx, headers: &HeaderMap) -> Result<Resolved, DavError> {
    let raw = header_text(headers, "destination")
        .ok_or_else(|| DavError::bad_request("COPY and MOVE need a Destination header"))?;
    let decoded = crate::dav::href::decode(&raw)?;
    let located =
        super::path::from_decoded(&decoded, &ctx.prefix, &ctx.staff).map_err(super::path_error)?;
    let resolved = super::resolve(ctx, located)?;
    match resolved.target {
        Target::Object { .. } => Ok(resolved),
        Target::Calendar(_) | Target::NoCalendar { .. } => Err(DavError::new(
            409,
            "the Destination names a collection; COPY and MOVE take objects to <calendar>/<name>.ics",
        )),
        _ => Err(location_not_ok()),
    }
}

/// COPY and MOVE of a calendar object to another name or calendar of the
/// same home (Apple Calendar moves events between calendars this way).
/// Within one calendar a MOVE is one atomic batch; across calendars the
/// copy is written before the original is removed, so a crash in between
/// leaves two copies, never none.
pub async fn copy_or_move(
    ctx: &Ctx,
    r: &Resolved,
    req: Request,
    is_move: bool,
) -> Result<Response, DavError> {
    use crate::store::db::EventOp;
    let Target::Object { cal, name } = &r.target else {
        return Err(DavError::new(
            403,
            "only calendar objects can be copied or moved",
        ));
    };
    let headers = req.headers();
    let db = ctx.db();
    let meta = db
        .event(&cal.id, name)
        .map_err(db_error)?
        .ok_or_else(not_found)?;
    let body = db
        .event_body(&cal.id, name)
        .map_err(db_error)?
        .ok_or_else(not_found)?;
    let dest = destination(ctx, headers)?;
    let Target::Object {
        cal: dest_cal,
        name: dest_name,
    } = &dest.target
    else {
        unreachable!("destination() returns objects only");
    };
    if dest_cal.id == cal.id && dest_name == name {
        return Err(DavError::new(403, "the Destination is the resource itself"));
    }
    if is_move && !cal.writable() {
        return Err(read_only(r.parent_path(), names::UNBIND));
    }
    if !dest_cal.writable() {
        return Err(read_only(&dest.path, names::WRITE_CONTENT));
    }
    let obj = crate::ics::parse(&body)
        .map_err(|e| DavError::new(500, format!("a stored object cannot be read: {e}")))?;
    let info = engine::analyze(&obj, ctx.zone(dest_cal))?;
    if !dest_cal.holds(&info.kind) {
        return Err(DavError::condition(
            Condition::SupportedCalendarComponent,
            format!("the destination calendar does not hold {}", info.kind),
        ));
    }
    let overwrite =
        !header_text(headers, "overwrite").is_some_and(|v| v.trim().eq_ignore_ascii_case("F"));
    let existing = db.event(&dest_cal.id, dest_name).map_err(db_error)?;
    let pre = match &existing {
        Some(_) if !overwrite => return Err(precondition_failed()),
        Some(m) => Precondition::IfMatch(m.etag.clone()),
        None => Precondition::IfAbsent,
    };
    let write = EventWrite {
        calendar: dest_cal.id.clone(),
        href: dest_name.clone(),
        uid: info.uid,
        start: info.start,
        end: info.end,
        recurring: info.recurring,
        body,
        // A rename inside one calendar keeps the event's identity (its id
        // and the remote copy it mirrors); a copy elsewhere is a new event.
        remote: (is_move && dest_cal.id == cal.id)
            .then(|| meta.remote.clone())
            .flatten(),
        id: (is_move && dest_cal.id == cal.id).then(|| meta.id.clone()),
        last_modified: Some(meta.last_modified),
    };
    let conflict = |e: DbError| match e {
        DbError::UidConflict { uid, href } => DavError::condition(
            Condition::NoUidConflict {
                href: format!("{}{href}", dest.parent_path()),
            },
            format!("UID {uid:?} is already used in the destination calendar"),
        ),
        other => db_error(other),
    };
    let (src_cal, src_name, src_etag) = (cal.id.clone(), name.clone(), meta.etag.clone());
    let src_full = (*cal).clone();
    if let Err(reason) = outbox::check_expressible(db, dest_cal, &obj).map_err(db_error)? {
        return Err(DavError::condition(
            Condition::ValidCalendarObjectResource,
            format!(
                "the destination syncs upstream and the event cannot be written there: {reason}"
            ),
        ));
    }
    if is_move && dest_cal.id == cal.id {
        // One batch: the original goes first so its UID is free for the
        // new name. Ops fail one by one, so should the put fail (a
        // concurrent change of the destination), the original is put back.
        let restore = EventWrite {
            href: src_name.clone(),
            ..write.clone()
        };
        let ops = vec![
            EventOp::Delete(src_name, Precondition::IfMatch(src_etag)),
            EventOp::Put(write, pre),
        ];
        let outcomes = ctx
            .write(move |db| {
                let hook = outbox::on_ops(db, &src_full)?;
                let out = db.apply_events(&src_cal, ops, hook)?;
                if let [Ok(_), Err(_)] = out.as_slice() {
                    let hook = outbox::on_put(db, &src_full)?;
                    db.put_event(restore, &Precondition::IfAbsent, hook)?;
                }
                Ok(out)
            })
            .await
            .map_err(db_error)?;
        for o in outcomes {
            o.map_err(conflict)?;
        }
    } else {
        let dest_full = (*dest_cal).clone();
        ctx.write(move |db| {
            let hook = outbox::on_put(db, &dest_full)?;
            db.put_event(write, &pre, hook)
        })
        .await
        .map_err(conflict)?;
        if is_move {
            ctx.write(move |db| {
                let hook = outbox::on_delete(db, &src_full)?;
                db.delete_event(&src_cal, &src_name, &Precondition::IfMatch(src_etag), hook)
            })
            .await
            .map_err(db_error)?;
        }
    }
    let status = if existing.is_some() {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    };
    Ok(Response::builder()
        .status(status)
        .body(Body::empty())
        .expect("valid response"))
}
