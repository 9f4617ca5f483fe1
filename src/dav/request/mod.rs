//! Typed WebDAV/CalDAV requests: bodies of PROPFIND, PROPPATCH, MKCALENDAR,
//! extended MKCOL and REPORT parse into values; headers in [`headers`].
//!
//! Owns: what each body means (RFC 4918 §14, RFC 4791 §5.3.1, §7, §9,
//! RFC 5689, RFC 6578, RFC 3253 §3.8, RFC 3744 §9.4–9.5), with the leniency
//! real clients need (empty PROPFIND = allprop, missing sync-level = 1,
//! any prefix, unknown elements ignored per RFC 4918 §17) and errors that
//! name the problem. Must not: touch the store or decide what a resource
//! contains; all bytes go through [`crate::dav::xml`] first.

pub mod headers;
pub mod report;

pub use super::name::{names, QName, NS_CALDAV, NS_CALSERVER, NS_DAV, NS_ICAL};
pub use headers::{prefers_minimal, Depth, EntityTag, EtagCondition};
pub use report::*;

use std::collections::HashSet;
use std::fmt;

use super::error::{Condition, DavError};
use super::xml::{self, Element};

/// A PROPFIND body (RFC 4918 §9.1, §14.20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropFind {
    /// `<allprop/>` (or an empty body), with the `<include>`d names that
    /// allprop does not return by itself.
    AllProp { include: Vec<QName> },
    /// `<propname/>`: names only.
    PropName,
    /// `<prop>`: these names, in request order, without duplicates.
    Prop(Vec<QName>),
}

/// Parses a PROPFIND body. An empty body is allprop (RFC 4918 §9.1).
pub fn parse_propfind(body: &[u8]) -> Result<PropFind, DavError> {
    let Some(root) = xml::parse_optional(body)? else {
        return Ok(PropFind::AllProp {
            include: Vec::new(),
        });
    };
    expect_root(&root, &names::PROPFIND)?;
    Ok(prop_request(&root)?.unwrap_or(PropFind::AllProp {
        include: Vec::new(),
    }))
}

/// The `allprop | propname | prop` choice inside `parent` (PROPFIND and
/// REPORT bodies share it). `None` when none is present.
pub(crate) fn prop_request(parent: &Element) -> Result<Option<PropFind>, DavError> {
    let prop = parent.child(&names::PROP);
    let allprop = parent.child(&names::ALLPROP);
    let propname = parent.child(&names::PROPNAME);
    match (prop, allprop, propname) {
        (None, None, None) => Ok(None),
        (Some(p), None, None) => Ok(Some(PropFind::Prop(prop_names(p)))),
        (None, Some(_), None) => Ok(Some(PropFind::AllProp {
            include: parent
                .child(&names::INCLUDE)
                .map(prop_names)
                .unwrap_or_default(),
        })),
        (None, None, Some(_)) => Ok(Some(PropFind::PropName)),
        _ => Err(DavError::bad_request(format!(
            "<{}> must contain only one of <prop>, <allprop>, <propname>",
            parent.name.local
        ))),
    }
}

/// The names of the child elements of a `<D:prop>`, deduplicated.
/// A set keeps this linear: a body may name up to 100 000 properties.
pub(crate) fn prop_names(prop: &Element) -> Vec<QName> {
    let mut seen = HashSet::new();
    prop.elements()
        .filter(|e| seen.insert(&e.name))
        .map(|e| e.name.clone())
        .collect()
}

pub(crate) fn expect_root(root: &Element, want: &QName) -> Result<(), DavError> {
    if &root.name == want {
        Ok(())
    } else {
        Err(DavError::bad_request(format!(
            "expected the root element {want}, found {}",
            root.name
        )))
    }
}

/// A PROPPATCH body (RFC 4918 §14.19): set and remove operations in
/// document order (the order they must be applied in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyUpdate {
    pub ops: Vec<PropOp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropOp {
    Set(SetProperty),
    Remove(QName),
}

/// One property being set: its name, the text inside it (all descendant
/// text, not trimmed) and its content as a self-contained XML fragment
/// (what a dead property stores and [`crate::dav::PropValue::Xml`] writes
/// back). `element` is the parsed property element itself.
#[derive(Clone, PartialEq, Eq)]
pub struct SetProperty {
    pub name: QName,
    pub text: String,
    pub inner_xml: String,
    pub element: Element,
}

impl SetProperty {
    fn from_element(e: &Element) -> SetProperty {
        SetProperty {
            name: e.name.clone(),
            text: e.text(),
            inner_xml: e.inner_xml(),
            element: e.clone(),
        }
    }
}

impl fmt::Debug for SetProperty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetProperty")
            .field("name", &self.name)
            .field("text", &self.text)
            .field("inner_xml", &self.inner_xml)
            .finish()
    }
}

/// Parses a PROPPATCH body.
pub fn parse_proppatch(body: &[u8]) -> Result<PropertyUpdate, DavError> {
    let root = xml::parse(body)?;
    expect_root(&root, &names::PROPERTYUPDATE)?;
    let mut ops = Vec::new();
    for e in root.elements() {
        let set = e.is(&names::SET);
        if !set && !e.is(&names::REMOVE) {
            continue;
        }
        for prop in e.children_named(&names::PROP) {
            for p in prop.elements() {
                ops.push(if set {
                    PropOp::Set(SetProperty::from_element(p))
                } else {
                    PropOp::Remove(p.name.clone())
                });
            }
        }
    }
    if ops.is_empty() {
        return Err(DavError::bad_request(
            "<propertyupdate> sets or removes no property",
        ));
    }
    Ok(PropertyUpdate { ops })
}

/// The properties a collection is created with (MKCALENDAR, RFC 4791
/// §5.3.1; extended MKCOL, RFC 5689), with the ones calbridge understands
/// pulled out and checked. Text values are trimmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionProps {
    /// `DAV:resourcetype` (extended MKCOL only; MKCALENDAR implies
    /// collection + calendar).
    pub resourcetype: Option<Vec<QName>>,
    pub displayname: Option<String>,
    /// `CALDAV:calendar-description`.
    pub description: Option<String>,
    /// `ICAL:calendar-color` (Apple: `#RRGGBBAA`).
    pub color: Option<String>,
    /// `ICAL:calendar-order`.
    pub order: Option<String>,
    /// `CALDAV:supported-calendar-component-set`, upper-cased names.
    pub components: Option<Vec<String>>,
    /// `CALDAV:calendar-timezone`: a VCALENDAR with exactly one VTIMEZONE
    /// (checked here).
    pub timezone: Option<String>,
    /// Everything else, in order, for the handler to store as dead
    /// properties or refuse.
    pub other: Vec<SetProperty>,
}

impl CollectionProps {
    /// Interprets a list of set properties (from MKCALENDAR, MKCOL or the
    /// `Set` operations of a PROPPATCH).
    pub fn from_properties(props: Vec<SetProperty>) -> Result<CollectionProps, DavError> {
        let mut out = CollectionProps::default();
        for p in props {
            let n = &p.name;
            if *n == names::DISPLAYNAME {
                out.displayname = Some(p.text.trim().to_string());
            } else if *n == names::CALENDAR_DESCRIPTION {
                out.description = Some(p.text.trim().to_string());
            } else if *n == names::CALENDAR_COLOR {
                out.color = Some(p.text.trim().to_string());
            } else if *n == names::CALENDAR_ORDER {
                out.order = Some(p.text.trim().to_string());
            } else if *n == names::RESOURCETYPE {
                out.resourcetype = Some(prop_names(&p.element));
            } else if *n == names::SUPPORTED_CALENDAR_COMPONENT_SET {
                out.components = Some(component_set(&p.element)?);
            } else if *n == names::CALENDAR_TIMEZONE {
                out.timezone = Some(calendar_timezone(&p.text)?);
            } else {
                out.other.push(p);
            }
        }
        Ok(out)
    }
}

fn component_set(e: &Element) -> Result<Vec<String>, DavError> {
    let mut comps = Vec::new();
    let mut seen = HashSet::new();
    for c in e.children_named(&names::COMP) {
        let name = c.attr("name").map(str::trim).unwrap_or("");
        if name.is_empty() {
            return Err(DavError::bad_request(
                "<C:comp> in supported-calendar-component-set needs a name",
            ));
        }
        let name = name.to_ascii_uppercase();
        if seen.insert(name.clone()) {
            comps.push(name);
        }
    }
    if comps.is_empty() {
        return Err(DavError::condition(
            Condition::SupportedCalendarComponent,
            "supported-calendar-component-set names no component",
        ));
    }
    Ok(comps)
}

fn calendar_timezone(text: &str) -> Result<String, DavError> {
    let text = text.trim();
    let bad = |why: String| {
        DavError::condition(
            Condition::ValidCalendarTimezone,
            format!("calendar-timezone: {why}"),
        )
    };
    let cal = crate::ics::parse(text.as_bytes()).map_err(|e| bad(e.to_string()))?;
    if cal.name != "VCALENDAR" {
        return Err(bad(format!("{} is not a VCALENDAR", cal.name)));
    }
    let zones = cal.children_named("VTIMEZONE").count();
    let others = cal.children.len() - zones;
    if zones != 1 || others != 0 {
        return Err(bad(format!(
            "expected exactly one VTIMEZONE and nothing else, found {zones} VTIMEZONE and {others} other components"
        )));
    }
    Ok(text.to_string())
}

/// Parses a MKCALENDAR body (RFC 4791 §5.3.1). An empty body creates a
/// calendar with no properties set.
pub fn parse_mkcalendar(body: &[u8]) -> Result<CollectionProps, DavError> {
    let Some(root) = xml::parse_optional(body)? else {
        return Ok(CollectionProps::default());
    };
    expect_root(&root, &names::MKCALENDAR)?;
    CollectionProps::from_properties(set_properties(&root))
}

/// Parses an extended MKCOL body (RFC 5689 §5.1). An empty body is a plain
/// MKCOL (a collection with no properties).
pub fn parse_mkcol(body: &[u8]) -> Result<CollectionProps, DavError> {
    let Some(root) = xml::parse_optional(body)? else {
        return Ok(CollectionProps::default());
    };
    expect_root(&root, &names::MKCOL)?;
    let props = CollectionProps::from_properties(set_properties(&root))?;
    if let Some(rt) = &props.resourcetype {
        if !rt.contains(&names::COLLECTION) {
            return Err(DavError::condition(
                Condition::ValidResourcetype,
                "MKCOL resourcetype must include DAV:collection",
            ));
        }
    }
    Ok(props)
}

fn set_properties(root: &Element) -> Vec<SetProperty> {
    root.children_named(&names::SET)
        .flat_map(|s| s.children_named(&names::PROP))
        .flat_map(|p| p.elements())
        .map(SetProperty::from_element)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propfind_forms() {
        assert_eq!(
            parse_propfind(b"").unwrap(),
            PropFind::AllProp { include: vec![] }
        );
        assert_eq!(
            parse_propfind(b"<propfind xmlns='DAV:'/>").unwrap(),
            PropFind::AllProp { include: vec![] }
        );
        assert_eq!(
            parse_propfind(b"<d:propfind xmlns:d='DAV:'><d:propname/></d:propfind>").unwrap(),
            PropFind::PropName
        );
        assert_eq!(
            parse_propfind(
                b"<d:propfind xmlns:d='DAV:'><d:allprop/><d:include><d:sync-token/></d:include></d:propfind>"
            )
            .unwrap(),
            PropFind::AllProp {
                include: vec![names::SYNC_TOKEN]
            }
        );
        assert_eq!(
            parse_propfind(
                b"<d:propfind xmlns:d='DAV:'><d:prop><d:getetag/><d:getetag/>text<x xmlns='urn:x'/></d:prop></d:propfind>"
            )
            .unwrap(),
            PropFind::Prop(vec![names::GETETAG, QName::new("urn:x", "x")])
        );
    }

    #[test]
    fn many_distinct_properties_parse_in_linear_time() {
        let props: String = (0..99_000).map(|i| format!("<x{i}/>")).collect();
        let body = format!("<propfind xmlns='DAV:'><prop>{props}</prop></propfind>");
        let started = std::time::Instant::now();
        let PropFind::Prop(names) = parse_propfind(body.as_bytes()).unwrap() else {
            panic!("prop request")
        };
        assert_eq!(names.len(), 99_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn propfind_errors() {
        let e = parse_propfind(b"<propfind xmlns='DAV'><prop/></propfind>").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("{DAV}propfind"), "{}", e.message);
        assert!(parse_propfind(b"<propfind xmlns='DAV:'><prop/><propname/></propfind>").is_err());
    }

    #[test]
    fn proppatch_keeps_order_and_inner_xml() {
        let u = parse_proppatch(
            br#"<D:propertyupdate xmlns:D="DAV:" xmlns:I="http://apple.com/ns/ical/">
              <D:remove><D:prop><I:calendar-order/></D:prop></D:remove>
              <D:set><D:prop><D:displayname> Work </D:displayname><I:calendar-color symbolic-color="red">#FF0000FF</I:calendar-color></D:prop></D:set>
            </D:propertyupdate>"#,
        )
        .unwrap();
        assert_eq!(u.ops.len(), 3);
        assert_eq!(u.ops[0], PropOp::Remove(names::CALENDAR_ORDER));
        let PropOp::Set(dn) = &u.ops[1] else { panic!() };
        assert_eq!(dn.text, " Work ");
        let PropOp::Set(color) = &u.ops[2] else {
            panic!()
        };
        assert_eq!(color.inner_xml, "#FF0000FF");
        assert_eq!(color.element.attr("symbolic-color"), Some("red"));
        assert!(parse_proppatch(b"<propertyupdate xmlns='DAV:'/>").is_err());
    }

    #[test]
    fn mkcalendar_properties() {
        let tz = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n";
        let body = format!(
            r#"<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>
            <D:displayname>Team</D:displayname>
            <C:supported-calendar-component-set><C:comp name="vevent"/><C:comp name="VTODO"/></C:supported-calendar-component-set>
            <C:calendar-timezone>{tz}</C:calendar-timezone>
            <X:foo xmlns:X="urn:x">bar</X:foo>
            </D:prop></D:set></C:mkcalendar>"#
        );
        let p = parse_mkcalendar(body.as_bytes()).unwrap();
        assert_eq!(p.displayname.as_deref(), Some("Team"));
        assert_eq!(p.components, Some(vec!["VEVENT".into(), "VTODO".into()]));
        assert!(p.timezone.unwrap().contains("TZID:Europe/Berlin"));
        assert_eq!(p.other.len(), 1);
        assert_eq!(parse_mkcalendar(b"").unwrap(), CollectionProps::default());

        let bad_tz = r#"<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:calendar-timezone>BEGIN:VCALENDAR
BEGIN:VEVENT
END:VEVENT
END:VCALENDAR</C:calendar-timezone></D:prop></D:set></C:mkcalendar>"#;
        let e = parse_mkcalendar(bad_tz.as_bytes()).unwrap_err();
        assert_eq!(e.condition, Some(Condition::ValidCalendarTimezone));
    }

    #[test]
    fn extended_mkcol_needs_collection() {
        let ok = parse_mkcol(
            br#"<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:resourcetype><D:collection/><C:calendar/></D:resourcetype></D:prop></D:set></D:mkcol>"#,
        )
        .unwrap();
        assert_eq!(
            ok.resourcetype,
            Some(vec![names::COLLECTION, names::CALENDAR])
        );
        let e = parse_mkcol(
            br#"<D:mkcol xmlns:D="DAV:"><D:set><D:prop><D:resourcetype><D:principal/></D:resourcetype></D:prop></D:set></D:mkcol>"#,
        )
        .unwrap_err();
        assert_eq!(e.condition, Some(Condition::ValidResourcetype));
    }
}
