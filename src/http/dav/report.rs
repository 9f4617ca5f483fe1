//! REPORT: calendar-query and calendar-multiget (RFC 4791 §7.8–7.9),
//! sync-collection (RFC 6578), free-busy-query (RFC 4791 §7.10),
//! expand-property (RFC 3253 §3.8, Apple's principal lookups) and the
//! principal searches of RFC 3744 §9.4–9.5 (over the user's own principal:
//! nobody else is visible).
//!
//! Owns: choosing candidates from the store's indexes (time index for
//! time ranges, change log for sync tokens), deciding when a body must be
//! parsed, and never truncating silently (`DAV:limit` is honoured with a
//! 507 and a continuation token). Must not: evaluate filters or expand
//! recurrences itself ([`crate::dav::filter`], [`super::engine`]).

use std::collections::{HashMap, HashSet};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::Response;

use crate::dav::request::{
    CalendarDataRequest, CalendarMultiget, CalendarQuery, CompFilter, ExpandItem, ExpandProperty,
    FreeBusyQuery, MatchType, PrincipalPropertySearch, SearchTest, SyncCollection,
};
use crate::dav::xml::escape_text;
use crate::dav::{
    filter, names, parse_report, Condition, DavError, Multistatus, PropFind, PropStats, PropValue,
    Report,
};
use crate::ics::{Component, Property};
use crate::model::{Calendar, EventMeta};

use super::engine::{self, BusyKind, TimeTest};
use super::path::{self, Place};
use super::propfind::{minimal, respond};
use super::props::{self, Res, Viewer};
use super::{body, db_error, multistatus, not_found, Ctx, Resolved, Target};

pub async fn report(ctx: &Ctx, r: &Resolved, req: Request) -> Result<Response, DavError> {
    let minimal = minimal(req.headers());
    let bytes = body(ctx, req).await?;
    let report = parse_report(&bytes)?;
    if let Target::NoCalendar { .. } = r.target {
        return Err(not_found());
    }
    match report {
        Report::CalendarQuery(q) => calendar_query(ctx, r, &q, minimal),
        Report::CalendarMultiget(m) => multiget(ctx, r, &m, minimal),
        Report::SyncCollection(s) => sync_collection(ctx, r, &s, minimal),
        Report::FreeBusyQuery(f) => free_busy(ctx, r, &f),
        Report::ExpandProperty(e) => expand_property(ctx, r, &e),
        Report::PrincipalPropertySearch(s) => principal_search(ctx, &s),
        Report::PrincipalSearchPropertySet => Ok(search_property_set()),
    }
}

fn unsupported(report: &str, here: &str) -> DavError {
    DavError::condition(
        Condition::SupportedReport,
        format!("the {report} report is served on {here}"),
    )
}

/// Writes the responses for objects of one calendar: the properties a
/// report asks for, with `calendar-data` rendered as requested.
struct ObjectAnswers<'a> {
    v: Viewer<'a>,
    cal: &'a Calendar,
    props: &'a PropFind,
    data: Option<&'a CalendarDataRequest>,
    /// Whether answering needs the object's body.
    needs_body: bool,
}

impl<'a> ObjectAnswers<'a> {
    fn new(
        ctx: &'a Ctx,
        cal: &'a Calendar,
        props: &'a PropFind,
        data: Option<&'a CalendarDataRequest>,
    ) -> ObjectAnswers<'a> {
        ObjectAnswers {
            v: ctx.viewer(),
            cal,
            props,
            data,
            needs_body: props::needs_body(props) || props::wants_calendar_data(props),
        }
    }

    fn write(
        &self,
        ms: &mut Multistatus,
        href: &str,
        meta: &EventMeta,
        body: Option<&[u8]>,
    ) -> Result<(), DavError> {
        let data = match body {
            Some(b) if props::wants_calendar_data(self.props) => {
                Some(props::calendar_data(&self.v, self.cal, b, self.data)?)
            }
            _ => None,
        };
        let res = Res::Object {
            cal: self.cal,
            meta,
            body,
        };
        respond(ms, &self.v, href, &res, self.props, data);
        Ok(())
    }

    /// Writes `meta`, reading its body when needed (an object deleted in
    /// between is a 404).
    fn write_loaded(
        &self,
        ctx: &Ctx,
        ms: &mut Multistatus,
        href: &str,
        meta: &EventMeta,
    ) -> Result<(), DavError> {
        if !self.needs_body {
            return self.write(ms, href, meta, None);
        }
        match ctx
            .db()
            .event_body(&self.cal.id, &meta.href)
            .map_err(db_error)?
        {
            Some(b) => self.write(ms, href, meta, Some(&b)),
            None => {
                ms.response_status(href, 404);
                Ok(())
            }
        }
    }
}

// ---- calendar-query ----

/// What the filter asks of the object as a whole, when that can be told
/// from the index alone.
enum Shape {
    /// Every VEVENT object matches (no test beyond "has a VEVENT").
    All,
    /// Objects whose VEVENTs overlap this range match.
    Range(crate::dav::request::TimeRange),
    /// Only a component this calendar never holds can match: none does.
    Nothing,
    /// Anything else: parse each candidate and evaluate.
    Full(Option<crate::dav::request::TimeRange>),
}

fn shape(f: &CompFilter, cal: &Calendar) -> Shape {
    if let [c] = f.comp_filters.as_slice() {
        if !c.is_not_defined && !cal.holds(&c.name) {
            return Shape::Nothing;
        }
    }
    // The index alone answers only for calendars of events.
    if !f.prop_filters.is_empty() || cal.component_types() != ["VEVENT"] {
        return Shape::Full(None);
    }
    match f.comp_filters.as_slice() {
        [] => Shape::All,
        [c] if c.is_not_defined => {
            if c.name == "VEVENT" {
                Shape::Nothing
            } else {
                Shape::All
            }
        }
        [c] if c.name != "VEVENT" => Shape::Nothing,
        [c] if c.prop_filters.is_empty() && c.comp_filters.is_empty() => match c.time_range {
            None => Shape::All,
            Some(r) => Shape::Range(r),
        },
        [c] => Shape::Full(c.time_range),
        _ => Shape::Full(None),
    }
}

fn bound(t: Option<chrono::DateTime<chrono::Utc>>, default: i64) -> i64 {
    t.map_or(default, |t| t.timestamp())
}

fn calendar_query(
    ctx: &Ctx,
    r: &Resolved,
    q: &CalendarQuery,
    minimal: bool,
) -> Result<Response, DavError> {
    let (cal, only, base) = match &r.target {
        Target::Calendar(cal) => (&**cal, None, r.path.as_str()),
        Target::Object { cal, name } => (&**cal, Some(name.as_str()), r.parent_path()),
        _ => return Err(unsupported("calendar-query", "calendars and their objects")),
    };
    let db = ctx.db();
    let zone = query_zone(ctx, cal, q);
    let shape = shape(&q.filter, cal);
    let candidates: Vec<EventMeta> = match (&shape, only) {
        (Shape::Nothing, _) => Vec::new(),
        (_, Some(name)) => db
            .event(&cal.id, name)
            .map_err(db_error)?
            .into_iter()
            .collect(),
        (Shape::Range(tr), None) | (Shape::Full(Some(tr)), None) => {
            // The index holds spans in the calendar's zone; floating times
            // read in another zone can move by up to 14 hours.
            let slack = if zone.is_some() { 14 * 3600 } else { 0 };
            let mut v = db
                .events_overlapping(
                    &cal.id,
                    bound(tr.start, i64::MIN / 2).saturating_sub(slack),
                    bound(tr.end, i64::MAX).saturating_add(slack),
                )
                .map_err(db_error)?;
            v.sort_by(|a, b| a.href.cmp(&b.href));
            v
        }
        _ => db.events_of_calendar(&cal.id).map_err(db_error)?,
    };
    let answers = ObjectAnswers::new(ctx, cal, &q.props, q.calendar_data.as_ref());
    let mut ms = Multistatus::new().minimal(minimal);
    let mut href = String::new();
    for meta in &candidates {
        href.clear();
        href.push_str(base);
        href.push_str(&meta.href);
        // The index decides for single events; a recurring series (and any
        // other filter) needs its instances.
        let exact = match &shape {
            Shape::All => true,
            Shape::Range(_) => !meta.recurring && zone.is_none(),
            _ => false,
        };
        if exact {
            answers.write_loaded(ctx, &mut ms, &href, meta)?;
            continue;
        }
        let Some(body) = db.event_body(&cal.id, &meta.href).map_err(db_error)? else {
            continue;
        };
        let Ok(obj) = crate::ics::parse(&body) else {
            continue;
        };
        let tt = TimeTest::new(&obj, zone.as_deref().unwrap_or(ctx.zone(cal)));
        if filter::matches(&obj, &q.filter, &tt) {
            answers.write(&mut ms, &href, meta, Some(&body))?;
        }
    }
    Ok(multistatus(ms.finish(), minimal))
}

/// The zone of floating times a query asks for (`C:timezone` or
/// `C:timezone-id`), when it differs from the calendar's.
fn query_zone(ctx: &Ctx, cal: &Calendar, q: &CalendarQuery) -> Option<String> {
    let asked = q.timezone_id.clone().or_else(|| {
        q.timezone
            .as_deref()
            .and_then(engine::zone_of_calendar_timezone)
    })?;
    (asked != ctx.zone(cal)).then_some(asked)
}

// ---- calendar-multiget ----

fn multiget(
    ctx: &Ctx,
    _r: &Resolved,
    m: &CalendarMultiget,
    minimal: bool,
) -> Result<Response, DavError> {
    let db = ctx.db();
    let mut calendars: HashMap<String, Option<Calendar>> = HashMap::new();
    let mut seen = HashSet::new();
    let mut ms = Multistatus::new().minimal(minimal);
    for h in &m.hrefs {
        if !seen.insert(h.as_str()) {
            continue;
        }
        let Ok(located) = path::from_decoded(h, &ctx.prefix, &ctx.staff) else {
            ms.response_status(h, 404);
            continue;
        };
        let Place::Object { slug, name } = located.place else {
            ms.response_status(h, 404);
            continue;
        };
        if !calendars.contains_key(&slug) {
            let cal = db
                .calendar_by_slug(&ctx.staff.id, &slug)
                .map_err(db_error)?;
            calendars.insert(slug.clone(), cal);
        }
        let Some(cal) = calendars.get(&slug).and_then(Option::as_ref) else {
            ms.response_status(h, 404);
            continue;
        };
        let Some(meta) = db.event(&cal.id, &name).map_err(db_error)? else {
            ms.response_status(h, 404);
            continue;
        };
        let answers = ObjectAnswers::new(ctx, cal, &m.props, m.calendar_data.as_ref());
        answers.write_loaded(ctx, &mut ms, h, &meta)?;
    }
    Ok(multistatus(ms.finish(), minimal))
}

// ---- sync-collection ----

fn invalid_token(why: &str) -> DavError {
    DavError::condition(
        Condition::ValidSyncToken,
        format!("{why}; start again with an empty sync-token"),
    )
}

fn sync_collection(
    ctx: &Ctx,
    r: &Resolved,
    s: &SyncCollection,
    minimal: bool,
) -> Result<Response, DavError> {
    let Target::Calendar(cal) = &r.target else {
        return Err(unsupported("sync-collection", "calendar collections"));
    };
    let since = if s.sync_token.trim().is_empty() {
        0
    } else {
        props::parse_sync_token(cal, &s.sync_token)
            .ok_or_else(|| invalid_token("the sync-token is not one of this calendar"))?
    };
    let db = ctx.db();
    let (current, mut changes) = db
        .changes_since(&cal.id, since)
        .map_err(db_error)?
        .ok_or_else(|| invalid_token("the sync-token is from the future"))?;
    let mut token = current;
    let limit = s.limit.filter(|n| *n > 0).map(|n| n as usize);
    let truncated = match limit {
        Some(n) if changes.len() > n => {
            changes.truncate(n);
            token = changes.last().map_or(since, |c| c.seq);
            true
        }
        _ => false,
    };
    let answers = ObjectAnswers::new(ctx, cal, &s.props, s.calendar_data.as_ref());
    let mut ms = Multistatus::new().minimal(minimal);
    let mut href = String::new();
    for change in &changes {
        href.clear();
        href.push_str(&r.path);
        href.push_str(&change.href);
        let meta = if change.deleted {
            None
        } else {
            db.event(&cal.id, &change.href).map_err(db_error)?
        };
        match meta {
            Some(meta) => answers.write_loaded(ctx, &mut ms, &href, &meta)?,
            None => ms.response_status(&href, 404),
        }
    }
    if truncated {
        ms.truncated(&r.path);
    }
    ms.sync_token(&props::sync_token(cal, token));
    Ok(multistatus(ms.finish(), minimal))
}

// ---- free-busy-query ----

/// Longest free-busy range answered (an open end is cut here).
const FREEBUSY_MAX: i64 = 366 * 86_400;

fn free_busy(ctx: &Ctx, r: &Resolved, f: &FreeBusyQuery) -> Result<Response, DavError> {
    let Target::Calendar(cal) = &r.target else {
        return Err(unsupported("free-busy-query", "calendar collections"));
    };
    let start =
        f.range.start.map(|t| t.timestamp()).ok_or_else(|| {
            DavError::bad_request("free-busy-query needs a time-range with a start")
        })?;
    let end = bound(f.range.end, start.saturating_add(FREEBUSY_MAX))
        .min(start.saturating_add(FREEBUSY_MAX));
    let db = ctx.db();
    let mut periods: Vec<(i64, i64, BusyKind)> = Vec::new();
    for meta in db
        .events_overlapping(&cal.id, start, end)
        .map_err(db_error)?
    {
        let Some(body) = db.event_body(&cal.id, &meta.href).map_err(db_error)? else {
            continue;
        };
        let Ok(obj) = crate::ics::parse(&body) else {
            continue;
        };
        periods.extend(engine::busy(&obj, start, end, ctx.zone(cal)));
    }
    let mut fb = Component::new("VFREEBUSY");
    fb.push(Property::new("DTSTAMP", utc_text(crate::model::now())));
    fb.push(Property::new("DTSTART", utc_text(start)));
    fb.push(Property::new("DTEND", utc_text(end)));
    for (kind, fbtype) in [
        (BusyKind::Busy, "BUSY"),
        (BusyKind::Tentative, "BUSY-TENTATIVE"),
    ] {
        let mut list: Vec<(i64, i64)> = periods
            .iter()
            .filter(|p| p.2 == kind)
            .map(|p| (p.0, p.1))
            .collect();
        for (s, e) in merge(&mut list) {
            fb.push(
                Property::new("FREEBUSY", format!("{}/{}", utc_text(s), utc_text(e)))
                    .with_param("FBTYPE", fbtype),
            );
        }
    }
    let mut vcal = Component::new("VCALENDAR");
    vcal.push(Property::new("VERSION", "2.0"));
    vcal.push(Property::new("PRODID", crate::model::appointment::PRODID));
    vcal.children.push(fb);
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/calendar; charset=utf-8")
        .body(Body::from(crate::ics::serialize(&vcal)))
        .expect("valid response"))
}

/// Sorted, overlapping periods merged.
fn merge(list: &mut [(i64, i64)]) -> Vec<(i64, i64)> {
    list.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &(s, e) in list.iter() {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn utc_text(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

// ---- expand-property ----

/// The resource at a decoded path, for expand-property, with what its
/// properties need from the store.
enum Owned {
    Simple(Res<'static>),
    Calendar(Box<Calendar>, u64),
}

fn load(ctx: &Ctx, path: &str) -> Option<Owned> {
    let located = path::from_decoded(path, &ctx.prefix, &ctx.staff).ok()?;
    Some(match located.place {
        Place::Root => Owned::Simple(Res::Root),
        Place::Principals => Owned::Simple(Res::Principals),
        Place::Principal => Owned::Simple(Res::Principal),
        Place::Calendars => Owned::Simple(Res::Calendars),
        Place::Home => Owned::Simple(Res::Home),
        Place::Calendar { slug } => {
            let cal = ctx.db().calendar_by_slug(&ctx.staff.id, &slug).ok()??;
            let seq = ctx.db().calendar_seq(&cal.id).ok()?.unwrap_or(0);
            Owned::Calendar(Box::new(cal), seq)
        }
        Place::Object { .. } => return None,
    })
}

fn as_res(o: &Owned) -> Res<'_> {
    match o {
        Owned::Simple(r) => *r,
        Owned::Calendar(cal, seq) => Res::Calendar { cal, seq: *seq },
    }
}

/// The properties of one resource for expand-property, following hrefs
/// of the items that have children (at most `depth` levels).
fn expanded_stats(ctx: &Ctx, res: &Res<'_>, items: &[ExpandItem], depth: usize) -> PropStats {
    let v = ctx.viewer();
    let mut stats = PropStats::new();
    for item in items {
        let Some(value) = props::value(&v, res, &item.name) else {
            stats.not_found(item.name.clone());
            continue;
        };
        let hrefs = match &value {
            PropValue::Href(h) => vec![h.clone()],
            PropValue::Hrefs(list) => list.clone(),
            _ => Vec::new(),
        };
        if item.children.is_empty() || hrefs.is_empty() || depth == 0 {
            stats.found(item.name.clone(), value);
            continue;
        }
        let inner = fragment(|ms| {
            for h in &hrefs {
                match load(ctx, h) {
                    Some(o) => {
                        let s = expanded_stats(ctx, &as_res(&o), &item.children, depth - 1);
                        ms.response(h, s.as_slice());
                    }
                    None => ms.response_status(h, 404),
                }
            }
        });
        stats.found(item.name.clone(), PropValue::Xml(inner));
    }
    stats
}

/// `<D:response>` elements written by our multistatus writer, without the
/// document around them, to nest inside a property value.
fn fragment(build: impl FnOnce(&mut Multistatus)) -> String {
    let mut ms = Multistatus::new();
    build(&mut ms);
    let doc = String::from_utf8(ms.finish()).unwrap_or_default();
    let open_end = doc
        .find("<D:multistatus")
        .and_then(|i| doc[i..].find('>').map(|j| i + j + 1));
    match (open_end, doc.rfind("</D:multistatus>")) {
        (Some(a), Some(b)) if a <= b => doc[a..b].trim().to_string(),
        _ => String::new(),
    }
}

fn expand_property(ctx: &Ctx, r: &Resolved, e: &ExpandProperty) -> Result<Response, DavError> {
    let owned;
    let res = match &r.target {
        Target::Root => Res::Root,
        Target::Principals => Res::Principals,
        Target::Principal => Res::Principal,
        Target::Calendars => Res::Calendars,
        Target::Home => Res::Home,
        Target::Calendar(cal) => {
            let seq = ctx
                .db()
                .calendar_seq(&cal.id)
                .map_err(db_error)?
                .unwrap_or(0);
            owned = Owned::Calendar(cal.clone(), seq);
            as_res(&owned)
        }
        Target::Object { .. } | Target::NoCalendar { .. } => {
            return Err(unsupported("expand-property", "principals and collections"))
        }
    };
    let stats = expanded_stats(ctx, &res, &e.properties, 3);
    let mut ms = Multistatus::new();
    ms.response(&r.path, stats.as_slice());
    Ok(multistatus(ms.finish(), false))
}

// ---- principal searches ----

fn matches_text(value: &str, m: &crate::dav::request::PropertySearch) -> bool {
    let v = value.to_lowercase();
    let t = m.text.trim().to_lowercase();
    match m.match_type {
        MatchType::Contains => v.contains(&t),
        MatchType::StartsWith => v.starts_with(&t),
        MatchType::EndsWith => v.ends_with(&t),
        MatchType::Equals => v == t,
    }
}

/// Only the user's own principal is visible, so a search answers it or
/// nothing (a search with no test lists every visible principal: it).
fn principal_search(ctx: &Ctx, s: &PrincipalPropertySearch) -> Result<Response, DavError> {
    let v = ctx.viewer();
    let staff = &ctx.staff;
    let values = |name: &crate::dav::QName| -> Vec<String> {
        if *name == names::DISPLAYNAME {
            vec![staff.name.clone()]
        } else if *name == names::CALENDAR_USER_ADDRESS_SET {
            vec![format!("mailto:{}", staff.email), v.principal_href()]
        } else if *name == names::EMAIL_ADDRESS_SET {
            vec![staff.email.clone()]
        } else {
            Vec::new()
        }
    };
    let test = |search: &crate::dav::request::PropertySearch| {
        search
            .props
            .iter()
            .any(|n| values(n).iter().any(|val| matches_text(val, search)))
    };
    let hit = match s.test {
        SearchTest::AllOf => s.searches.iter().all(test),
        SearchTest::AnyOf => s.searches.iter().any(test),
    };
    let mut ms = Multistatus::new();
    if hit {
        // No properties named (python-caldav puts them beside an empty
        // <D:prop>): answer the ones a principal search is for.
        let wanted = if s.props.is_empty() {
            vec![
                names::DISPLAYNAME,
                names::CALENDAR_HOME_SET,
                names::PRINCIPAL_URL,
                names::CALENDAR_USER_ADDRESS_SET,
            ]
        } else {
            s.props.clone()
        };
        let mut stats = PropStats::new();
        props::collect(
            &v,
            &Res::Principal,
            &PropFind::Prop(wanted),
            None,
            &mut stats,
        );
        ms.response(&v.principal_href(), stats.as_slice());
    }
    Ok(multistatus(ms.finish(), false))
}

fn search_property_set() -> Response {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:principal-search-property-set xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\" xmlns:CS=\"http://calendarserver.org/ns/\">\n",
    );
    for (prop, description) in [
        ("D:displayname", "Display name"),
        ("C:calendar-user-address-set", "Calendar user address"),
        ("CS:email-address-set", "E-mail address"),
    ] {
        xml.push_str(&format!(
            " <D:principal-search-property><D:prop><{prop}/></D:prop><D:description xml:lang=\"en\">{}</D:description></D:principal-search-property>\n",
            escape_text(description)
        ));
    }
    xml.push_str("</D:principal-search-property-set>\n");
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
        .body(Body::from(xml))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_periods() {
        let mut v = vec![(5, 6), (1, 3), (2, 4), (6, 8), (10, 11)];
        assert_eq!(merge(&mut v), vec![(1, 4), (5, 8), (10, 11)]);
    }

    #[test]
    fn fragments_are_the_inner_responses() {
        let f = fragment(|ms| ms.response_status("/dav/x/", 404));
        assert!(f.starts_with("<D:response>"), "{f}");
        assert!(f.ends_with("</D:response>"), "{f}");
        assert!(f.contains("HTTP/1.1 404 Not Found"));
    }
}
