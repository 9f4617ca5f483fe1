//! Appointments (events of a staff member's native `appointments` calendar)
//! and free/busy.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::directory::load_staff;
use super::{paged, Admin, Page};
use crate::http::body::JsonBody;
use crate::http::error::{ApiError, ApiResult};
use crate::http::App;
use crate::model::appointment::{self, Appointment, AppointmentChange, FieldError, NewAppointment};
use crate::model::{EventId, EventMeta, Staff};
use crate::store::db::{EventWrite, Precondition};
use crate::sync::outbox;

fn field(e: FieldError) -> ApiError {
    ApiError::invalid(e.field, e.message)
}

/// A query bound: RFC 3339 or a date (midnight UTC).
fn bound(field: &str, v: &str) -> ApiResult<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v.trim()) {
        return Ok(t.timestamp());
    }
    if let Ok(d) = NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp());
    }
    Err(ApiError::invalid(
        field,
        format!("not an RFC 3339 time or a date: {v:?}"),
    ))
}

#[derive(Deserialize)]
pub struct RangeQuery {
    start: Option<String>,
    end: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn range(q: &RangeQuery) -> ApiResult<(i64, i64)> {
    let s = q
        .start
        .as_deref()
        .map(|v| bound("start", v))
        .transpose()?
        .unwrap_or(i64::MIN / 2);
    let e = q
        .end
        .as_deref()
        .map(|v| bound("end", v))
        .transpose()?
        .unwrap_or(i64::MAX);
    if e <= s {
        return Err(ApiError::invalid("end", "must be after start"));
    }
    Ok((s, e))
}

fn view(staff: &Staff, meta: &EventMeta, body: &[u8]) -> Option<Appointment> {
    appointment::from_ics(
        body,
        meta.id.as_str(),
        staff.id.as_str(),
        &meta.etag,
        meta.last_modified,
        &staff.timezone,
    )
}

pub async fn create(
    _: Admin,
    State(app): State<App>,
    Path(staff): Path<String>,
    JsonBody(body): JsonBody<NewAppointment>,
) -> ApiResult<Response> {
    let s = load_staff(&app, &staff).await?;
    let times = appointment::parse_times(
        &body.start,
        &body.end,
        body.all_day.unwrap_or(false),
        body.timezone.as_deref(),
        &s.timezone,
    )
    .map_err(field)?;
    let uid = format!("{}@calbridge", crate::crypto::random_id(26));
    let ics = appointment::to_ics(&body, &uid, &times, Utc::now()).map_err(field)?;
    let cal = app.db.appointments_calendar(&s.id)?;
    expressible(&app, &cal, &ics)?;
    let id = EventId::generate();
    let (start, end, recurring) = appointment::index_span(&ics, &s.timezone).map_err(field)?;
    let w = EventWrite {
        calendar: cal.id.clone(),
        href: format!("{id}.ics"),
        uid,
        start,
        end,
        recurring,
        body: ics.clone(),
        remote: None,
        id: Some(id),
        last_modified: None,
    };
    let out = app
        .blocking(move |db| db.put_event(w, &Precondition::IfAbsent, outbox::on_put(db, &cal)?))
        .await?;
    let v = view(&s, &out.meta, &ics).ok_or_else(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub async fn list(
    _: Admin,
    State(app): State<App>,
    Path(staff): Path<String>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Response> {
    let s = load_staff(&app, &staff).await?;
    let (start, end) = range(&q)?;
    let cal = app.db.appointments_calendar(&s.id)?;
    let mut items = Vec::new();
    for meta in app.db.events_overlapping(&cal.id, start, end)? {
        if let Some(body) = app.db.event_body(&cal.id, &meta.href)? {
            if let Some(v) = view(&s, &meta, &body) {
                items.push((meta.start, v));
            }
        }
    }
    let mut extra = Vec::new();
    if let Some(v) = &q.start {
        extra.push(format!("start={}", urlenc(v)));
    }
    if let Some(v) = &q.end {
        extra.push(format!("end={}", urlenc(v)));
    }
    let page = Page {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let keyed = items
        .into_iter()
        .map(|(start, v)| (format!("{:020}.{}", start.saturating_add(1 << 62), v.id), v))
        .collect();
    paged(
        &app,
        &format!("/api/v1/staff/{}/appointments", s.id),
        &extra.join("&"),
        keyed,
        &page,
    )
}

fn urlenc(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// An appointment's event and its staff member; 404 for anything that is
/// not in a native appointments calendar.
async fn load(app: &App, raw: &str) -> ApiResult<(EventMeta, Staff)> {
    let id = EventId::parse(raw).ok_or_else(|| ApiError::not_found("appointment"))?;
    let meta = app
        .db
        .event_by_id(&id)?
        .ok_or_else(|| ApiError::not_found("appointment"))?;
    let cal = app
        .db
        .calendar(&meta.calendar)?
        .filter(|c| c.is_native())
        .ok_or_else(|| ApiError::not_found("appointment"))?;
    let staff = app
        .db
        .staff(&cal.staff)?
        .ok_or_else(|| ApiError::not_found("appointment"))?;
    Ok((meta, staff))
}

pub async fn get_one(
    _: Admin,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<Json<Appointment>> {
    let (meta, staff) = load(&app, &id).await?;
    let body = app
        .db
        .event_body(&meta.calendar, &meta.href)?
        .ok_or_else(|| ApiError::not_found("appointment"))?;
    view(&staff, &meta, &body).map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unreadable",
            "this event has no readable start time",
        )
    })
}

fn if_match(headers: &HeaderMap, current: &str) -> Precondition {
    match headers
        .get(axum::http::header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        Some(v) => Precondition::IfMatch(
            v.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_string(),
        ),
        None => Precondition::IfMatch(current.to_string()),
    }
}

pub async fn patch(
    _: Admin,
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(change): JsonBody<AppointmentChange>,
) -> ApiResult<Json<Appointment>> {
    let (meta, staff) = load(&app, &id).await?;
    let body = app
        .db
        .event_body(&meta.calendar, &meta.href)?
        .ok_or_else(|| ApiError::not_found("appointment"))?;
    let new_body =
        appointment::apply_change(&body, &change, &staff.timezone, Utc::now()).map_err(field)?;
    let (start, end, recurring) =
        appointment::index_span(&new_body, &staff.timezone).map_err(field)?;
    if let Some(cal) = app.db.calendar(&meta.calendar)? {
        expressible(&app, &cal, &new_body)?;
    }
    let pre = if_match(&headers, &meta.etag);
    let w = EventWrite {
        calendar: meta.calendar.clone(),
        href: meta.href.clone(),
        uid: meta.uid.clone(),
        start,
        end,
        recurring,
        body: new_body.clone(),
        remote: meta.remote.clone(),
        id: None,
        last_modified: None,
    };
    let out = app
        .blocking(move |db| {
            let cal = db
                .calendar(&w.calendar)?
                .ok_or(crate::store::db::DbError::NotFound)?;
            let hook = outbox::on_put(db, &cal)?;
            db.put_event(w, &pre, hook)
        })
        .await?;
    view(&staff, &out.meta, &new_body)
        .map(Json)
        .ok_or_else(ApiError::internal)
}

pub async fn cancel(
    _: Admin,
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let (meta, _) = load(&app, &id).await?;
    let pre = if_match(&headers, &meta.etag);
    app.blocking(move |db| {
        let cal = db
            .calendar(&meta.calendar)?
            .ok_or(crate::store::db::DbError::NotFound)?;
        let hook = outbox::on_delete(db, &cal)?;
        db.delete_event(&meta.calendar, &meta.href, &pre, hook)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct FreeBusyQuery {
    start: String,
    end: String,
}

/// Busy periods over appointments and every `conflicts` calendar.
pub async fn freebusy(
    _: Admin,
    State(app): State<App>,
    Path(staff): Path<String>,
    Query(q): Query<FreeBusyQuery>,
) -> ApiResult<Json<Value>> {
    let s = load_staff(&app, &staff).await?;
    let (start, end) = (bound("start", &q.start)?, bound("end", &q.end)?);
    if end <= start {
        return Err(ApiError::invalid("end", "must be after start"));
    }
    if end - start > 366 * 86_400 {
        return Err(ApiError::invalid(
            "end",
            "the range may span at most 366 days",
        ));
    }
    let s2 = s.clone();
    let busy = app
        .blocking(move |db| crate::freebusy::busy_periods(db, &s2, start, end))
        .await?;
    let list: Vec<Value> = busy
        .iter()
        .map(|b| {
            json!({
                "start": super::directory::rfc3339(b.start),
                "end": super::directory::rfc3339(b.end),
                "source": b.source,
            })
        })
        .collect();
    Ok(Json(json!({"busy": list})))
}

/// `POST /api/v1/staff/{staff}/push-existing`: write every appointment to
/// the primary calendar (idempotent).
pub async fn push_existing(
    _: Admin,
    State(app): State<App>,
    Path(staff): Path<String>,
) -> ApiResult<Response> {
    let s = load_staff(&app, &staff).await?;
    let id = s.id.clone();
    let queued = app
        .blocking(move |db| outbox::push_existing(db, &id))
        .await?;
    let Some(queued) = queued else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_primary_calendar",
            "this staff member has no primary calendar: select a bidirectional calendar with primary: true first",
        ));
    };
    if let Some(t) = outbox::target_for(&app.db, &app.db.appointments_calendar(&s.id)?)? {
        app.sync.trigger(&t.1);
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"queued": queued}))).into_response())
}

/// Refuse (422 on `rrule`) an appointment the staff member's primary
/// calendar cannot hold, before anything is stored.
fn expressible(app: &App, cal: &crate::model::Calendar, ics: &[u8]) -> ApiResult<()> {
    let Ok(obj) = crate::ics::parse(ics) else {
        return Ok(());
    };
    match outbox::check_expressible(&app.db, cal, &obj)? {
        Ok(()) => Ok(()),
        Err(reason) => Err(ApiError::invalid(
            "rrule",
            format!("the staff member's primary calendar cannot hold this appointment: {reason}"),
        )),
    }
}
