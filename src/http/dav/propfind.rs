//! PROPFIND (RFC 4918 §9.1) over every resource, and PROPPATCH (§9.2) of
//! the properties a staff member may change on a native calendar.
//!
//! Owns: depth handling (0 and 1; infinity refused with
//! `DAV:propfind-finite-depth`), which members a collection lists, and
//! the all-or-nothing rule of PROPPATCH (one refused property fails the
//! others with 424). Must not: define property values ([`super::props`]).

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;

use crate::dav::request::{prefers_minimal, Depth, PropOp};
use crate::dav::{
    names, parse_propfind, parse_proppatch, Condition, DavError, Multistatus, PropFind, PropStats,
    PropValue, QName,
};
use crate::model::Calendar;

use super::props::{self, Res, Viewer};
use super::{body, db_error, header_text, multistatus, not_found, Ctx, Resolved, Target};

/// `Prefer: return=minimal` or `Brief: t`.
pub fn minimal(headers: &HeaderMap) -> bool {
    prefers_minimal(
        header_text(headers, "prefer").as_deref(),
        header_text(headers, "brief").as_deref(),
    )
}

/// Writes one resource's answer to `req` into `ms`.
pub fn respond(
    ms: &mut Multistatus,
    v: &Viewer<'_>,
    href: &str,
    res: &Res<'_>,
    req: &PropFind,
    calendar_data: Option<String>,
) {
    if let PropFind::PropName = req {
        ms.propname_response(href, &props::all_names(res));
        return;
    }
    let mut stats = PropStats::new();
    props::collect(v, res, req, calendar_data, &mut stats);
    ms.response(href, stats.as_slice());
}

pub async fn propfind(ctx: &Ctx, r: &Resolved, req: Request) -> Result<Response, DavError> {
    let depth = Depth::parse(header_text(req.headers(), "depth").as_deref())?;
    let depth = match depth.unwrap_or(Depth::Infinity) {
        Depth::Infinity => {
            return Err(DavError::condition(
                Condition::PropfindFiniteDepth,
                "PROPFIND with Depth: infinity is not supported; use Depth: 0 or 1",
            ))
        }
        d => d,
    };
    let minimal = minimal(req.headers());
    let body = body(ctx, req).await?;
    let pf = parse_propfind(&body)?;
    let v = ctx.viewer();
    let db = ctx.db();
    let mut ms = Multistatus::new().minimal(minimal);
    let deep = depth == Depth::One;
    let home = v.home_href();
    match &r.target {
        Target::NoCalendar { .. } => return Err(not_found()),
        Target::Root => {
            respond(&mut ms, &v, &r.path, &Res::Root, &pf, None);
            if deep {
                let p = format!("{}/dav/principals/", ctx.prefix);
                respond(&mut ms, &v, &p, &Res::Principals, &pf, None);
                let c = format!("{}/dav/calendars/", ctx.prefix);
                respond(&mut ms, &v, &c, &Res::Calendars, &pf, None);
            }
        }
        Target::Principals => {
            respond(&mut ms, &v, &r.path, &Res::Principals, &pf, None);
            if deep {
                respond(&mut ms, &v, &v.principal_href(), &Res::Principal, &pf, None);
            }
        }
        Target::Calendars => {
            respond(&mut ms, &v, &r.path, &Res::Calendars, &pf, None);
            if deep {
                respond(&mut ms, &v, &home, &Res::Home, &pf, None);
            }
        }
        Target::Principal => respond(&mut ms, &v, &r.path, &Res::Principal, &pf, None),
        Target::Home => {
            respond(&mut ms, &v, &r.path, &Res::Home, &pf, None);
            if deep {
                for cal in db.calendars_of_staff(&ctx.staff.id).map_err(db_error)? {
                    let seq = db.calendar_seq(&cal.id).map_err(db_error)?.unwrap_or(0);
                    let href = format!("{}{}/", r.path, cal.slug);
                    respond(
                        &mut ms,
                        &v,
                        &href,
                        &Res::Calendar { cal: &cal, seq },
                        &pf,
                        None,
                    );
                }
            }
        }
        Target::Calendar(cal) => {
            let seq = db.calendar_seq(&cal.id).map_err(db_error)?.unwrap_or(0);
            respond(&mut ms, &v, &r.path, &Res::Calendar { cal, seq }, &pf, None);
            if deep {
                members(ctx, &mut ms, cal, &r.path, &pf)?;
            }
        }
        Target::Object { cal, name } => {
            let meta = db
                .event(&cal.id, name)
                .map_err(db_error)?
                .ok_or_else(not_found)?;
            let body = if props::needs_body(&pf) {
                db.event_body(&cal.id, name).map_err(db_error)?
            } else {
                None
            };
            let data = match (&body, props::wants_calendar_data(&pf)) {
                (Some(b), true) => Some(props::calendar_data(&v, cal, b, None)?),
                _ => None,
            };
            let res = Res::Object {
                cal,
                meta: &meta,
                body: body.as_deref(),
            };
            respond(&mut ms, &v, &r.path, &res, &pf, data);
        }
    }
    Ok(multistatus(ms.finish(), minimal))
}

/// The objects of a calendar, from their metadata (bodies only when a
/// property needs them).
fn members(
    ctx: &Ctx,
    ms: &mut Multistatus,
    cal: &Calendar,
    base: &str,
    pf: &PropFind,
) -> Result<(), DavError> {
    let v = ctx.viewer();
    let db = ctx.db();
    let mut href = String::with_capacity(base.len() + 48);
    let mut write = |ms: &mut Multistatus, meta: &crate::model::EventMeta, body: Option<&[u8]>| {
        href.clear();
        href.push_str(base);
        href.push_str(&meta.href);
        let data = match (body, props::wants_calendar_data(pf)) {
            (Some(b), true) => Some(props::calendar_data(&v, cal, b, None)?),
            _ => None,
        };
        let res = Res::Object { cal, meta, body };
        respond(ms, &v, &href, &res, pf, data);
        Ok::<(), DavError>(())
    };
    if props::needs_body(pf) {
        for (meta, body) in db.events_with_bodies(&cal.id).map_err(db_error)? {
            write(ms, &meta, Some(&body))?;
        }
    } else {
        for meta in db.events_of_calendar(&cal.id).map_err(db_error)? {
            write(ms, &meta, None)?;
        }
    }
    Ok(())
}

/// The properties PROPPATCH may change on a native calendar.
fn settable(name: &QName) -> bool {
    [
        names::DISPLAYNAME,
        names::CALENDAR_COLOR,
        names::CALENDAR_ORDER,
        names::CALENDAR_DESCRIPTION,
        names::CALENDAR_TIMEZONE,
    ]
    .contains(name)
}

/// Why one PROPPATCH operation cannot be applied: the status and the
/// condition for its propstat.
struct Refusal {
    status: u16,
    condition: Option<Condition>,
    message: String,
}

/// Applies one operation to `cal` (in memory), or says why not.
fn apply(cal: &mut Calendar, op: &PropOp) -> Result<(), Refusal> {
    let (name, text) = match op {
        PropOp::Set(p) => (&p.name, Some(p.text.trim())),
        PropOp::Remove(n) => (n, None),
    };
    let bad_value = |m: String| Refusal {
        status: 409,
        condition: None,
        message: m,
    };
    if !settable(name) {
        let live = props::is_live(name);
        return Err(Refusal {
            status: 403,
            condition: live.then_some(Condition::CannotModifyProtectedProperty),
            message: if live {
                format!("{name} is a protected property")
            } else {
                format!("{name}: calbridge does not store other properties")
            },
        });
    }
    if *name == names::DISPLAYNAME {
        cal.name = match text {
            Some(t) if !t.is_empty() => t.chars().take(200).collect(),
            _ => cal.slug.clone(),
        };
    } else if *name == names::CALENDAR_DESCRIPTION {
        cal.description = text
            .filter(|t| !t.is_empty())
            .map(|t| t.chars().take(2000).collect());
    } else if *name == names::CALENDAR_COLOR {
        cal.color =
            match text {
                None | Some("") => None,
                Some(t) => Some(normalise_color(t).ok_or_else(|| {
                    bad_value(format!("{t:?} is not a #RRGGBB or #RRGGBBAA color"))
                })?),
            };
    } else if *name == names::CALENDAR_ORDER {
        cal.order =
            match text {
                None | Some("") => None,
                Some(t) => Some(t.parse::<i64>().map_err(|_| {
                    bad_value(format!("calendar-order must be an integer, not {t:?}"))
                })?),
            };
    } else if *name == names::CALENDAR_TIMEZONE {
        cal.timezone = match text {
            None | Some("") => None,
            Some(t) => Some(super::engine::zone_of_calendar_timezone(t).ok_or_else(|| {
                Refusal {
                    status: 403,
                    condition: Some(Condition::ValidCalendarTimezone),
                    message:
                        "calendar-timezone must be a VCALENDAR with one VTIMEZONE of a known zone"
                            .into(),
                }
            })?),
        };
    }
    Ok(())
}

/// `#RRGGBB` from `#RRGGBB` or Apple's `#RRGGBBAA` (the alpha is dropped:
/// calendars are opaque everywhere they are shown).
pub fn normalise_color(s: &str) -> Option<String> {
    let hex = s.trim().strip_prefix('#')?;
    if !(hex.len() == 6 || hex.len() == 8) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(format!("#{}", hex[..6].to_ascii_uppercase()))
}

pub async fn proppatch(ctx: &Ctx, r: &Resolved, req: Request) -> Result<Response, DavError> {
    let body = body(ctx, req).await?;
    let update = parse_proppatch(&body)?;
    let mut cal = match &r.target {
        Target::Calendar(cal) => (**cal).clone(),
        Target::NoCalendar { .. } => return Err(not_found()),
        Target::Object { cal, name } => {
            ctx.db()
                .event(&cal.id, name)
                .map_err(db_error)?
                .ok_or_else(not_found)?;
            return Ok(refuse_all(
                r,
                &update.ops,
                "objects have no properties to change",
            ));
        }
        _ => {
            return Ok(refuse_all(
                r,
                &update.ops,
                "this resource has no properties to change",
            ))
        }
    };
    if !cal.is_native() {
        return Ok(refuse_all(
            r,
            &update.ops,
            "the properties of a synced calendar are changed at its provider",
        ));
    }
    let original = cal.clone();
    let mut refusals = Vec::new();
    for (i, op) in update.ops.iter().enumerate() {
        if let Err(e) = apply(&mut cal, op) {
            refusals.push((i, e));
        }
    }
    let name_of = |op: &PropOp| match op {
        PropOp::Set(p) => p.name.clone(),
        PropOp::Remove(n) => n.clone(),
    };
    let mut stats = PropStats::new();
    if refusals.is_empty() {
        if cal != original {
            let c = cal.clone();
            ctx.write(move |db| db.update_calendar(&c))
                .await
                .map_err(db_error)?;
        }
        for op in &update.ops {
            stats.found(name_of(op), PropValue::Empty);
        }
    } else {
        for (i, op) in update.ops.iter().enumerate() {
            match refusals.iter().find(|(j, _)| *j == i) {
                Some((_, e)) => {
                    stats.add(e.status, name_of(op), PropValue::Empty);
                    if let Some(c) = &e.condition {
                        stats.set_error(e.status, c.clone(), Some(e.message.clone()));
                    }
                }
                None => stats.failed_dependency(name_of(op)),
            }
        }
    }
    let mut ms = Multistatus::new();
    ms.response(&r.path, stats.as_slice());
    Ok(multistatus(ms.finish(), false))
}

/// A PROPPATCH where every property is refused (403, need-privileges).
fn refuse_all(r: &Resolved, ops: &[PropOp], why: &str) -> Response {
    let mut stats = PropStats::new();
    for op in ops {
        let name = match op {
            PropOp::Set(p) => p.name.clone(),
            PropOp::Remove(n) => n.clone(),
        };
        stats.forbidden(name);
    }
    stats.set_error(
        403,
        Condition::NeedPrivileges(vec![(r.path.clone(), names::WRITE_PROPERTIES)]),
        Some(why.to_string()),
    );
    let mut ms = Multistatus::new();
    ms.response(&r.path, stats.as_slice());
    multistatus(ms.finish(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colors() {
        assert_eq!(normalise_color("#63da38ff").as_deref(), Some("#63DA38"));
        assert_eq!(normalise_color(" #FF9500 ").as_deref(), Some("#FF9500"));
        for bad in ["red", "#12345", "#1234567", "#GGGGGG", "63DA38"] {
            assert_eq!(normalise_color(bad), None, "{bad}");
        }
    }
}
