//! Live properties of every resource under `/dav/`: which names each kind
//! of resource has, their values, and the privileges the current user
//! holds on it.
//!
//! Owns: the property catalogue (what PROPFIND, PROPNAME, allprop and the
//! REPORTs return) and the `calendar-data` rendering (selection, expand,
//! limit-recurrence-set). Must not: read the store or write XML; handlers
//! pass the stored values in and [`crate::dav::Multistatus`] writes them.

use std::time::{Duration, UNIX_EPOCH};

use crate::dav::name::{NS_CALDAV, NS_CALSERVER, NS_DAV, NS_ICAL};
use crate::dav::request::CalendarDataRequest;
use crate::dav::xml::escape_text;
use crate::dav::{names, DavError, PropFind, PropStats, PropValue, QName};
use crate::model::{Calendar, EventMeta, Staff};

use super::engine;

/// A resource whose properties are asked for, with what its values come
/// from.
#[derive(Clone, Copy)]
pub enum Res<'a> {
    Root,
    Principals,
    Calendars,
    Principal,
    Home,
    /// A calendar collection and its change sequence.
    Calendar {
        cal: &'a Calendar,
        seq: u64,
    },
    /// A calendar object; `body` only when a property needs it.
    Object {
        cal: &'a Calendar,
        meta: &'a EventMeta,
        body: Option<&'a [u8]>,
    },
}

/// Who is asking and where hrefs start.
pub struct Viewer<'a> {
    pub staff: &'a Staff,
    /// Path of `server.public_url` (empty or `/prefix`).
    pub prefix: &'a str,
    /// `server.dav_max_body`, the largest object accepted.
    pub max_resource_size: usize,
}

impl Viewer<'_> {
    pub fn principal_href(&self) -> String {
        format!("{}/dav/principals/{}/", self.prefix, self.staff.id)
    }

    pub fn home_href(&self) -> String {
        format!("{}/dav/calendars/{}/", self.prefix, self.staff.id)
    }

    fn floating_zone<'z>(&'z self, cal: &'z Calendar) -> &'z str {
        zone_of(cal, self.staff)
    }
}

/// The zone floating times and dates of `cal` are read in: the calendar's
/// own, else its owner's.
pub fn zone_of<'a>(cal: &'a Calendar, staff: &'a Staff) -> &'a str {
    cal.timezone.as_deref().unwrap_or(&staff.timezone)
}

/// The base every sync token starts with (RFC 6578 §3.2: a URI).
pub const SYNC_TOKEN_BASE: &str = "http://calbridge/sync/";

/// The sync token (and getctag) of a calendar at sequence `seq`.
pub fn sync_token(cal: &Calendar, seq: u64) -> String {
    format!("{SYNC_TOKEN_BASE}{}/{seq}", cal.id)
}

/// The sequence number a sync token of `cal` carries; `None` for a token
/// of another calendar or one that is not ours.
pub fn parse_sync_token(cal: &Calendar, token: &str) -> Option<u64> {
    let rest = token.trim().strip_prefix(SYNC_TOKEN_BASE)?;
    let (id, seq) = rest.rsplit_once('/')?;
    if id != cal.id.as_str() || seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    seq.parse().ok()
}

const CALENDAR_REPORTS: [QName; 5] = [
    names::CALENDAR_QUERY,
    names::CALENDAR_MULTIGET,
    names::SYNC_COLLECTION,
    names::FREE_BUSY_QUERY,
    names::EXPAND_PROPERTY,
];
const OBJECT_REPORTS: [QName; 3] = [
    names::CALENDAR_QUERY,
    names::CALENDAR_MULTIGET,
    names::EXPAND_PROPERTY,
];
const PRINCIPAL_REPORTS: [QName; 3] = [
    names::EXPAND_PROPERTY,
    names::PRINCIPAL_PROPERTY_SEARCH,
    names::PRINCIPAL_SEARCH_PROPERTY_SET,
];
const HOME_REPORTS: [QName; 2] = [names::CALENDAR_MULTIGET, names::EXPAND_PROPERTY];

const COMMON: [QName; 6] = [
    names::RESOURCETYPE,
    names::CURRENT_USER_PRINCIPAL,
    names::CURRENT_USER_PRIVILEGE_SET,
    names::SUPPORTED_REPORT_SET,
    names::PRINCIPAL_COLLECTION_SET,
    names::OWNER,
];

const PRINCIPAL: [QName; 8] = [
    names::DISPLAYNAME,
    names::PRINCIPAL_URL,
    names::CALENDAR_HOME_SET,
    names::CALENDAR_USER_ADDRESS_SET,
    names::CALENDAR_USER_TYPE,
    names::EMAIL_ADDRESS_SET,
    names::GROUP_MEMBERSHIP,
    names::ALTERNATE_URI_SET,
];

const CALENDAR: [QName; 12] = [
    names::DISPLAYNAME,
    names::CALENDAR_DESCRIPTION,
    names::CALENDAR_COLOR,
    names::CALENDAR_ORDER,
    names::CALENDAR_TIMEZONE,
    names::SUPPORTED_CALENDAR_COMPONENT_SET,
    names::SUPPORTED_CALENDAR_DATA,
    names::SUPPORTED_COLLATION_SET,
    names::MAX_RESOURCE_SIZE,
    names::GETCTAG,
    names::SYNC_TOKEN,
    names::CREATIONDATE,
];

const OBJECT: [QName; 6] = [
    names::GETETAG,
    names::GETCONTENTTYPE,
    names::GETCONTENTLENGTH,
    names::GETLASTMODIFIED,
    names::CREATIONDATE,
    names::CALENDAR_DATA,
];

/// Every property name of a resource (the PROPNAME answer).
pub fn all_names(res: &Res<'_>) -> Vec<QName> {
    let mut out = COMMON.to_vec();
    match res {
        Res::Principal => out.extend(PRINCIPAL),
        Res::Home => out.push(names::DISPLAYNAME),
        Res::Calendar { .. } => out.extend(CALENDAR),
        Res::Object { .. } => out.extend(OBJECT),
        Res::Root | Res::Principals | Res::Calendars => {}
    }
    out
}

/// Whether `name` is a live property of any resource here (PROPPATCH
/// answers `DAV:cannot-modify-protected-property` for those).
pub fn is_live(name: &QName) -> bool {
    COMMON
        .iter()
        .chain(&PRINCIPAL)
        .chain(&CALENDAR)
        .chain(&OBJECT)
        .any(|n| n == name)
}

/// The properties `<D:allprop/>` returns: everything but the expensive or
/// RFC-excluded ones (calendar-data, sync-token, supported-*-set,
/// current-user-privilege-set).
fn allprop_names(res: &Res<'_>) -> Vec<QName> {
    let excluded = [
        names::CALENDAR_DATA,
        names::SYNC_TOKEN,
        names::SUPPORTED_REPORT_SET,
        names::SUPPORTED_COLLATION_SET,
        names::CURRENT_USER_PRIVILEGE_SET,
        names::GETCONTENTLENGTH,
    ];
    all_names(res)
        .into_iter()
        .filter(|n| !excluded.contains(n))
        .collect()
}

/// Whether answering `req` for an object needs its body.
pub fn needs_body(req: &PropFind) -> bool {
    match req {
        PropFind::Prop(list) => list
            .iter()
            .any(|n| *n == names::CALENDAR_DATA || *n == names::GETCONTENTLENGTH),
        PropFind::AllProp { include } => include.contains(&names::CALENDAR_DATA),
        PropFind::PropName => false,
    }
}

/// The privileges the viewer holds on a resource (RFC 3744 §5.4). A
/// read-only mirrored calendar and its objects grant reading only; a
/// writable mirrored one grants content but not its properties.
pub fn privileges(res: &Res<'_>) -> Vec<QName> {
    let mut p = vec![names::READ, names::READ_CURRENT_USER_PRIVILEGE_SET];
    match res {
        Res::Calendar { cal, .. } | Res::Object { cal, .. } => {
            p.push(names::READ_FREE_BUSY);
            if cal.writable() {
                if cal.is_native() {
                    p.push(names::WRITE);
                    p.push(names::WRITE_PROPERTIES);
                }
                p.push(names::WRITE_CONTENT);
                p.push(names::BIND);
                p.push(names::UNBIND);
            }
        }
        Res::Home => {
            p.push(names::BIND);
            p.push(names::UNBIND);
        }
        Res::Root | Res::Principals | Res::Calendars | Res::Principal => {}
    }
    p
}

fn http_date(t: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
    httpdate::fmt_http_date(t)
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The content type of a stored object.
pub const OBJECT_CONTENT_TYPE: &str = "text/calendar; charset=utf-8; component=vevent";

/// The value of one live property, `None` when the resource has no such
/// property (404 in a propstat). `calendar-data` is rendered by
/// [`calendar_data`]; here it is only the raw body.
pub fn value(v: &Viewer<'_>, res: &Res<'_>, name: &QName) -> Option<PropValue> {
    let text = PropValue::Text;
    let ns = name.ns.as_ref();
    let local = name.local.as_ref();
    Some(match (ns, local) {
        (NS_DAV, "resourcetype") => PropValue::ResourceType(match res {
            Res::Principal => vec![names::COLLECTION, names::PRINCIPAL],
            Res::Calendar { .. } => vec![names::COLLECTION, names::CALENDAR],
            Res::Object { .. } => vec![],
            _ => vec![names::COLLECTION],
        }),
        (NS_DAV, "current-user-principal") => PropValue::Href(v.principal_href()),
        (NS_DAV, "principal-collection-set") => {
            PropValue::Hrefs(vec![format!("{}/dav/principals/", v.prefix)])
        }
        (NS_DAV, "current-user-privilege-set") => PropValue::Privileges(privileges(res)),
        (NS_DAV, "supported-report-set") => PropValue::SupportedReportSet(match res {
            Res::Calendar { .. } => CALENDAR_REPORTS.to_vec(),
            Res::Object { .. } => OBJECT_REPORTS.to_vec(),
            Res::Home => HOME_REPORTS.to_vec(),
            _ => PRINCIPAL_REPORTS.to_vec(),
        }),
        (NS_DAV, "owner") => match res {
            Res::Root | Res::Principals | Res::Calendars => return None,
            _ => PropValue::Href(v.principal_href()),
        },
        (NS_DAV, "displayname") => match res {
            Res::Principal | Res::Home => text(v.staff.name.clone()),
            Res::Calendar { cal, .. } => text(cal.name.clone()),
            _ => return None,
        },
        (NS_DAV, "creationdate") => match res {
            Res::Calendar { cal, .. } => text(rfc3339(cal.created)),
            Res::Object { meta, .. } => text(rfc3339(meta.created)),
            _ => return None,
        },
        _ => match res {
            Res::Principal => principal_value(v, ns, local)?,
            Res::Calendar { cal, seq } => calendar_value(v, cal, *seq, ns, local)?,
            Res::Object { meta, body, .. } => match (ns, local) {
                (NS_DAV, "getetag") => text(meta.etag_header()),
                (NS_DAV, "getcontenttype") => text(OBJECT_CONTENT_TYPE.into()),
                (NS_DAV, "getlastmodified") => text(http_date(meta.last_modified)),
                (NS_DAV, "getcontentlength") => PropValue::Integer((*body)?.len() as i64),
                _ => return None,
            },
            _ => return None,
        },
    })
}

fn principal_value(v: &Viewer<'_>, ns: &str, local: &str) -> Option<PropValue> {
    Some(match (ns, local) {
        (NS_DAV, "principal-URL") => PropValue::Href(v.principal_href()),
        (NS_DAV, "group-membership") | (NS_DAV, "alternate-URI-set") => PropValue::Hrefs(vec![]),
        (NS_CALDAV, "calendar-home-set") => PropValue::Hrefs(vec![v.home_href()]),
        (NS_CALDAV, "calendar-user-address-set") => PropValue::Hrefs(vec![
            format!("mailto:{}", v.staff.email),
            v.principal_href(),
        ]),
        (NS_CALDAV, "calendar-user-type") => PropValue::Text("INDIVIDUAL".into()),
        (NS_CALSERVER, "email-address-set") => PropValue::Xml(format!(
            "<CS:email-address>{}</CS:email-address>",
            escape_text(&v.staff.email)
        )),
        _ => return None,
    })
}

fn calendar_value(
    v: &Viewer<'_>,
    cal: &Calendar,
    seq: u64,
    ns: &str,
    local: &str,
) -> Option<PropValue> {
    Some(match (ns, local) {
        (NS_CALDAV, "calendar-description") => PropValue::Text(cal.description.clone()?),
        (NS_ICAL, "calendar-color") => PropValue::Text(cal.color.clone()?),
        (NS_ICAL, "calendar-order") => PropValue::Integer(cal.order?),
        (NS_CALDAV, "calendar-timezone") => {
            PropValue::Text(engine::calendar_timezone(v.floating_zone(cal))?)
        }
        (NS_CALDAV, "supported-calendar-component-set") => {
            PropValue::SupportedCalendarComponentSet(
                cal.component_types()
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            )
        }
        (NS_CALDAV, "supported-calendar-data") => PropValue::SupportedCalendarData,
        (NS_CALDAV, "supported-collation-set") => PropValue::Xml(
            ["i;ascii-casemap", "i;octet", "i;unicode-casemap"]
                .iter()
                .map(|c| format!("<C:supported-collation>{c}</C:supported-collation>"))
                .collect(),
        ),
        (NS_CALDAV, "max-resource-size") => PropValue::Integer(v.max_resource_size as i64),
        (NS_CALSERVER, "getctag") | (NS_DAV, "sync-token") => PropValue::Text(sync_token(cal, seq)),
        _ => return None,
    })
}

/// Fills `stats` with what `req` asks of `res`. `calendar_data` is the
/// rendered `C:calendar-data` of an object (see [`calendar_data`]).
pub fn collect(
    v: &Viewer<'_>,
    res: &Res<'_>,
    req: &PropFind,
    calendar_data: Option<String>,
    stats: &mut PropStats,
) {
    let mut calendar_data = calendar_data;
    let mut one = |name: &QName, stats: &mut PropStats| {
        if *name == names::CALENDAR_DATA {
            match (res, calendar_data.take()) {
                (Res::Object { .. }, Some(data)) => {
                    stats.found(name.clone(), PropValue::CalendarData(data))
                }
                _ => stats.not_found(name.clone()),
            }
            return;
        }
        match value(v, res, name) {
            Some(val) => stats.found(name.clone(), val),
            None => stats.not_found(name.clone()),
        }
    };
    match req {
        PropFind::Prop(list) => list.iter().for_each(|n| one(n, stats)),
        PropFind::AllProp { include } => {
            // allprop lists what exists; only `include`d names may be 404.
            let all = allprop_names(res);
            for name in &all {
                if let Some(val) = value(v, res, name) {
                    stats.found(name.clone(), val);
                }
            }
            for name in include.iter().filter(|n| !all.contains(n)) {
                one(name, stats);
            }
        }
        PropFind::PropName => {}
    }
}

/// Whether `req` asks for `C:calendar-data`.
pub fn wants_calendar_data(req: &PropFind) -> bool {
    match req {
        PropFind::Prop(list) => list.contains(&names::CALENDAR_DATA),
        PropFind::AllProp { include } => include.contains(&names::CALENDAR_DATA),
        PropFind::PropName => false,
    }
}

/// The `C:calendar-data` of an object as `request` asks for it: the
/// stored bytes as they are when nothing is selected, otherwise the
/// selected, expanded or limited object.
pub fn calendar_data(
    v: &Viewer<'_>,
    cal: &Calendar,
    body: &[u8],
    request: Option<&CalendarDataRequest>,
) -> Result<String, DavError> {
    let plain = request
        .is_none_or(|r| r.comp.is_none() && r.expand.is_none() && r.limit_recurrence_set.is_none());
    if plain {
        return Ok(match std::str::from_utf8(body) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(body).into_owned(),
        });
    }
    let request = request.expect("checked above");
    let zone = v.floating_zone(cal);
    let mut obj = crate::ics::parse(body)
        .map_err(|e| DavError::new(500, format!("a stored object cannot be read: {e}")))?;
    if let Some(range) = &request.expand {
        obj = engine::expand(&obj, range, zone)?;
    } else if let Some(range) = &request.limit_recurrence_set {
        obj = engine::limit_recurrence_set(&obj, range, zone)?;
    }
    let selected = request.select(&obj);
    Ok(String::from_utf8_lossy(&crate::ics::serialize(&selected)).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CalendarId, CalendarSource, CompanyId, Direction, StaffId};

    fn cal(direction: Direction, native: bool) -> Calendar {
        Calendar {
            id: CalendarId("cal_0123456789".into()),
            company: CompanyId("cmp_0123456789".into()),
            staff: StaffId("stf_0123456789".into()),
            slug: "work".into(),
            name: "Work".into(),
            color: None,
            description: None,
            order: None,
            source: if native {
                CalendarSource::Native
            } else {
                CalendarSource::Mirrored {
                    account: crate::model::AccountId("acc_0123456789".into()),
                    remote_id: "r".into(),
                }
            },
            direction,
            primary: false,
            conflicts: false,
            timezone: None,
            created: 0,
            components: None,
        }
    }

    #[test]
    fn sync_tokens_round_trip_and_refuse_strangers() {
        let c = cal(Direction::Bidirectional, true);
        let t = sync_token(&c, 42);
        assert_eq!(t, "http://calbridge/sync/cal_0123456789/42");
        assert_eq!(parse_sync_token(&c, &t), Some(42));
        for bad in [
            "",
            "42",
            "http://calbridge/sync/cal_other/42",
            "http://calbridge/sync/cal_0123456789/",
            "http://calbridge/sync/cal_0123456789/-1",
            "http://calbridge/sync/cal_0123456789/99999999999999999999999",
            "http://other/sync/cal_0123456789/1",
        ] {
            assert_eq!(parse_sync_token(&c, bad), None, "{bad}");
        }
    }

    #[test]
    fn read_only_calendars_grant_no_writes() {
        let ro = cal(Direction::ReadOnly, false);
        let p = privileges(&Res::Calendar { cal: &ro, seq: 0 });
        assert!(p.contains(&names::READ));
        assert!(!p
            .iter()
            .any(|n| n.local.starts_with("write") || *n == names::BIND));
        let mirrored = cal(Direction::Bidirectional, false);
        let p = privileges(&Res::Calendar {
            cal: &mirrored,
            seq: 0,
        });
        assert!(p.contains(&names::WRITE_CONTENT) && !p.contains(&names::WRITE_PROPERTIES));
        let native = cal(Direction::Bidirectional, true);
        let p = privileges(&Res::Calendar {
            cal: &native,
            seq: 0,
        });
        assert!(p.contains(&names::WRITE) && p.contains(&names::WRITE_PROPERTIES));
    }
}
