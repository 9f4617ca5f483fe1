//! Calendar collections: MKCALENDAR (RFC 4791 §5.3.1) and extended MKCOL
//! (RFC 5689) create further native calendars in the staff member's home;
//! DELETE removes a native calendar other than `appointments`.
//!
//! Owns: where a calendar may be created, which creation properties are
//! honoured (displayname, description, color, order, time zone, the
//! component set: events by default, tasks and journals when asked) and
//! which are ignored (anything
//! else a client sends along, e.g. Apple's schedule-calendar-transp).
//! Must not: touch mirrored calendars; those belong to their account.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::Response;

use crate::dav::request::CollectionProps;
use crate::dav::{names, parse_mkcalendar, parse_mkcol, Condition, DavError};
use crate::model::{now, Calendar, CalendarId, CalendarSource, Direction};
use crate::store::db::DbError;

use super::propfind::normalise_color;
use super::{body, db_error, engine, not_found, Ctx, Resolved, Target};

/// The component types a calendar created over CalDAV may hold (events
/// by default; a client asking for tasks or journals gets them).
pub const COMPONENTS: [&str; 3] = ["VEVENT", "VTODO", "VJOURNAL"];

/// The native calendar every staff member keeps.
pub const APPOINTMENTS: &str = "appointments";

fn must_be_null() -> DavError {
    DavError::condition(
        Condition::ResourceMustBeNull,
        "something already exists at this path",
    )
    .with_status(405)
}

pub async fn make(
    ctx: &Ctx,
    r: &Resolved,
    req: Request,
    mkcalendar: bool,
) -> Result<Response, DavError> {
    let slug = match &r.target {
        Target::NoCalendar { slug } => slug.clone(),
        Target::Object { .. } => {
            return Err(DavError::condition(
                Condition::CalendarCollectionLocationOk,
                "calendars cannot be created inside a calendar; create them in your home",
            ))
        }
        Target::Root | Target::Principals | Target::Calendars | Target::Principal => {
            return Err(DavError::condition(
                Condition::CalendarCollectionLocationOk,
                "calendars are created in your home, /dav/calendars/<you>/<name>/",
            )
            .with_status(403))
        }
        Target::Home | Target::Calendar(_) => return Err(must_be_null()),
    };
    let bytes = body(ctx, req).await?;
    let props = if mkcalendar {
        parse_mkcalendar(&bytes)?
    } else {
        let p = parse_mkcol(&bytes)?;
        if !p
            .resourcetype
            .as_ref()
            .is_some_and(|rt| rt.contains(&names::CALENDAR))
        {
            return Err(DavError::condition(
                Condition::ValidResourcetype,
                "only calendar collections can be created here (resourcetype collection + C:calendar)",
            ));
        }
        p
    };
    let cal = new_calendar(ctx, slug, props)?;
    ctx.write(move |db| db.create_calendar(&cal))
        .await
        .map_err(|e| match e {
            DbError::Duplicate(_) => must_be_null(),
            other => db_error(other),
        })?;
    Ok(Response::builder()
        .status(StatusCode::CREATED)
        .header(header::CONTENT_LENGTH, "0")
        .body(Body::empty())
        .expect("valid response"))
}

fn new_calendar(ctx: &Ctx, slug: String, p: CollectionProps) -> Result<Calendar, DavError> {
    let components = match &p.components {
        // RFC 4791 §5.3.1 leaves the default to the server: like Radicale
        // and Xandikos, a calendar created without a component set holds
        // events, tasks and journals (clients add tasks to it unasked).
        None => Some(COMPONENTS.iter().map(|c| c.to_string()).collect()),
        Some(asked) => {
            let unknown: Vec<&str> = asked
                .iter()
                .map(String::as_str)
                .filter(|c| !COMPONENTS.contains(c))
                .collect();
            if !unknown.is_empty() {
                return Err(DavError::condition(
                    Condition::SupportedCalendarComponent,
                    format!(
                        "calendars hold {}, not {}",
                        COMPONENTS.join(", "),
                        unknown.join(", ")
                    ),
                ));
            }
            (asked.as_slice() != ["VEVENT"]).then(|| asked.clone())
        }
    };
    let name = p
        .displayname
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().take(200).collect())
        .unwrap_or_else(|| slug.clone());
    Ok(Calendar {
        id: CalendarId::generate(),
        company: ctx.staff.company.clone(),
        staff: ctx.staff.id.clone(),
        slug,
        name,
        color: p.color.as_deref().and_then(normalise_color),
        description: p
            .description
            .filter(|d| !d.is_empty())
            .map(|d| d.chars().take(2000).collect()),
        order: p.order.and_then(|o| o.trim().parse().ok()),
        source: CalendarSource::Native,
        direction: Direction::Bidirectional,
        primary: false,
        conflicts: false,
        timezone: p
            .timezone
            .as_deref()
            .and_then(engine::zone_of_calendar_timezone),
        created: now(),
        components,
    })
}

pub async fn delete(ctx: &Ctx, r: &Resolved) -> Result<Response, DavError> {
    let cal = match &r.target {
        Target::Calendar(cal) => cal,
        Target::NoCalendar { .. } => return Err(not_found()),
        _ => {
            return Err(DavError::new(
                403,
                "only calendars you created can be deleted",
            ))
        }
    };
    let home = format!("{}/dav/calendars/{}/", ctx.prefix, ctx.staff.id);
    if !cal.is_native() {
        return Err(DavError::condition(
            Condition::NeedPrivileges(vec![(home, names::UNBIND)]),
            "a synced calendar is removed by deselecting it in its account",
        ));
    }
    if cal.slug == APPOINTMENTS || cal.primary {
        return Err(DavError::condition(
            Condition::NeedPrivileges(vec![(home, names::UNBIND)]),
            "the appointments calendar cannot be deleted",
        ));
    }
    let id = cal.id.clone();
    ctx.write(move |db| db.delete_calendar(&id))
        .await
        .map_err(db_error)?;
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .expect("valid response"))
}
