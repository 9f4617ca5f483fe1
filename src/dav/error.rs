//! The one error type of the DAV layer: an HTTP status, an optional
//! precondition/postcondition ([`Condition`]) and a human message, and the
//! `<D:error>` body that goes with it.
//!
//! Owns: which status each condition normally carries and the exact XML of
//! each condition (RFC 4918 §16, RFC 4791 §1.3 and the sections naming each
//! precondition, RFC 3744 §7.1.1, RFC 6578 §3.7). Must not: decide *when* a
//! condition applies; handlers do that.

use super::href;
use super::name::{names, QName};
use super::response::XmlOut;
use super::xml::XmlError;

/// A WebDAV/CalDAV precondition or postcondition, written inside
/// `<D:error>` (and inside a `<D:propstat>` or `<D:response>` where the
/// protocol allows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// CALDAV:valid-calendar-data (RFC 4791 §5.3.2.1): the body is not valid iCalendar.
    ValidCalendarData,
    /// CALDAV:valid-calendar-object-resource: e.g. several UIDs, METHOD present.
    ValidCalendarObjectResource,
    /// CALDAV:supported-calendar-component: component type not allowed here.
    SupportedCalendarComponent,
    /// CALDAV:supported-calendar-data: media type or version not supported.
    SupportedCalendarData,
    /// CALDAV:no-uid-conflict, with the href already holding the UID.
    NoUidConflict { href: String },
    /// CALDAV:calendar-collection-location-ok (MKCALENDAR, COPY/MOVE).
    CalendarCollectionLocationOk,
    /// CALDAV:max-resource-size.
    MaxResourceSize,
    /// DAV:need-privileges (RFC 3744 §7.1.1): one (href, privilege) per
    /// missing privilege.
    NeedPrivileges(Vec<(String, QName)>),
    /// DAV:propfind-finite-depth (RFC 4918 §9.1): Depth: infinity refused.
    PropfindFiniteDepth,
    /// DAV:valid-sync-token (RFC 6578 §3.2): unknown or expired token.
    ValidSyncToken,
    /// DAV:supported-report (RFC 3253 §3.6).
    SupportedReport,
    /// DAV:number-of-matches-within-limits (RFC 5323/6578): truncated result.
    NumberOfMatchesWithinLimits,
    /// CALDAV:valid-filter.
    ValidFilter,
    /// CALDAV:supported-filter.
    SupportedFilter,
    /// CALDAV:supported-collation.
    SupportedCollation,
    /// DAV:resource-must-be-null (MKCALENDAR/MKCOL on an existing resource).
    ResourceMustBeNull,
    /// CALDAV:valid-calendar-timezone (MKCALENDAR/PROPPATCH calendar-timezone).
    ValidCalendarTimezone,
    /// DAV:cannot-modify-protected-property (RFC 4918 §16), for PROPPATCH.
    CannotModifyProtectedProperty,
    /// DAV:valid-resourcetype (RFC 5689 §3.3), extended MKCOL.
    ValidResourcetype,
}

impl Condition {
    /// The element naming this condition.
    pub fn name(&self) -> QName {
        match self {
            Condition::ValidCalendarData => QName::caldav("valid-calendar-data"),
            Condition::ValidCalendarObjectResource => {
                QName::caldav("valid-calendar-object-resource")
            }
            Condition::SupportedCalendarComponent => QName::caldav("supported-calendar-component"),
            Condition::SupportedCalendarData => QName::caldav("supported-calendar-data"),
            Condition::NoUidConflict { .. } => QName::caldav("no-uid-conflict"),
            Condition::CalendarCollectionLocationOk => {
                QName::caldav("calendar-collection-location-ok")
            }
            Condition::MaxResourceSize => QName::caldav("max-resource-size"),
            Condition::NeedPrivileges(_) => names::NEED_PRIVILEGES,
            Condition::PropfindFiniteDepth => QName::dav("propfind-finite-depth"),
            Condition::ValidSyncToken => QName::dav("valid-sync-token"),
            Condition::SupportedReport => names::SUPPORTED_REPORT,
            Condition::NumberOfMatchesWithinLimits => QName::dav("number-of-matches-within-limits"),
            Condition::ValidFilter => QName::caldav("valid-filter"),
            Condition::SupportedFilter => QName::caldav("supported-filter"),
            Condition::SupportedCollation => QName::caldav("supported-collation"),
            Condition::ResourceMustBeNull => QName::dav("resource-must-be-null"),
            Condition::ValidCalendarTimezone => QName::caldav("valid-calendar-timezone"),
            Condition::CannotModifyProtectedProperty => {
                QName::dav("cannot-modify-protected-property")
            }
            Condition::ValidResourcetype => QName::dav("valid-resourcetype"),
        }
    }

    /// The status a violation normally carries: 403 for preconditions a
    /// retry cannot fix (RFC 4791 §1.3), 507 for truncated results
    /// (RFC 6578 §3.6), 409 for a location that cannot hold a calendar.
    pub fn default_status(&self) -> u16 {
        match self {
            Condition::NumberOfMatchesWithinLimits => 507,
            Condition::CalendarCollectionLocationOk => 409,
            _ => 403,
        }
    }

    pub(crate) fn write(&self, out: &mut XmlOut) {
        let name = self.name();
        match self {
            Condition::NoUidConflict { href: h } => {
                out.start(&name);
                out.text_element(&names::HREF, &href::encode(h));
                out.end();
            }
            Condition::NeedPrivileges(list) => {
                out.start(&name);
                for (h, privilege) in list {
                    out.start(&names::RESOURCE);
                    out.text_element(&names::HREF, &href::encode(h));
                    out.start(&names::PRIVILEGE);
                    out.empty(privilege);
                    out.end();
                    out.end();
                }
                out.end();
            }
            _ => out.empty(&name),
        }
    }
}

/// A DAV-layer failure: the status to answer, the condition to name in the
/// `<D:error>` body (if any) and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct DavError {
    pub status: u16,
    pub condition: Option<Condition>,
    pub message: String,
}

impl DavError {
    pub fn new(status: u16, message: impl Into<String>) -> DavError {
        DavError {
            status,
            condition: None,
            message: message.into(),
        }
    }

    /// 400 without a condition: the request cannot be understood.
    pub fn bad_request(message: impl Into<String>) -> DavError {
        DavError::new(400, message)
    }

    /// A violated condition with its usual status.
    pub fn condition(condition: Condition, message: impl Into<String>) -> DavError {
        DavError {
            status: condition.default_status(),
            condition: Some(condition),
            message: message.into(),
        }
    }

    /// The same error with another status (e.g. a handler answering 409
    /// instead of 403 for a particular case).
    pub fn with_status(mut self, status: u16) -> DavError {
        self.status = status;
        self
    }

    /// The `<D:error>` body: the condition element followed by a
    /// `<CS:error-description>` with the message (Apple's servers add such an
    /// element; other clients ignore unknown elements). `None` when there is
    /// no condition; answer the message as `text/plain` then.
    pub fn to_xml(&self) -> Option<String> {
        let condition = self.condition.as_ref()?;
        let mut out = XmlOut::document();
        out.start_root(&names::ERROR);
        condition.write(&mut out);
        if !self.message.is_empty() {
            out.text_element(&names::ERROR_DESCRIPTION, &self.message);
        }
        out.end();
        Some(out.finish())
    }
}

impl From<XmlError> for DavError {
    fn from(e: XmlError) -> DavError {
        let status = match e {
            XmlError::TooLarge { .. } => 413,
            _ => 400,
        };
        DavError::new(status, format!("invalid XML body: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn need_privileges_has_the_rfc3744_shape() {
        let e = DavError::condition(
            Condition::NeedPrivileges(vec![(
                "/dav/calendars/s1/team cal/".into(),
                names::WRITE_CONTENT,
            )]),
            "calendar \"team cal\" is read-only",
        );
        assert_eq!(e.status, 403);
        let xml = e.to_xml().unwrap();
        assert!(xml.contains(
            "<D:need-privileges>\n  <D:resource>\n   <D:href>/dav/calendars/s1/team%20cal/</D:href>\n   <D:privilege>\n    <D:write-content/>\n   </D:privilege>\n  </D:resource>\n </D:need-privileges>"
        ), "{xml}");
        assert!(xml.contains(
            "<CS:error-description>calendar \"team cal\" is read-only</CS:error-description>"
        ));
        crate::dav::xml::parse(xml.as_bytes()).expect("error body is well-formed");
    }

    #[test]
    fn no_uid_conflict_carries_the_href() {
        let e = DavError::condition(
            Condition::NoUidConflict {
                href: "/dav/calendars/s1/appointments/x@y.ics".into(),
            },
            "UID x@y is already used",
        );
        let xml = e.to_xml().unwrap();
        assert!(xml.contains("<C:no-uid-conflict>\n  <D:href>/dav/calendars/s1/appointments/x@y.ics</D:href>\n </C:no-uid-conflict>"), "{xml}");
    }

    #[test]
    fn plain_errors_have_no_xml_body() {
        assert_eq!(DavError::bad_request("x").to_xml(), None);
        let e: DavError = XmlError::TooLarge { size: 9, limit: 8 }.into();
        assert_eq!(e.status, 413);
    }

    #[test]
    fn condition_names_and_namespaces() {
        let all = [
            (
                Condition::ValidCalendarData,
                "{urn:ietf:params:xml:ns:caldav}valid-calendar-data",
            ),
            (
                Condition::ValidCalendarObjectResource,
                "{urn:ietf:params:xml:ns:caldav}valid-calendar-object-resource",
            ),
            (
                Condition::SupportedCalendarComponent,
                "{urn:ietf:params:xml:ns:caldav}supported-calendar-component",
            ),
            (
                Condition::SupportedCalendarData,
                "{urn:ietf:params:xml:ns:caldav}supported-calendar-data",
            ),
            (
                Condition::NoUidConflict { href: "/x".into() },
                "{urn:ietf:params:xml:ns:caldav}no-uid-conflict",
            ),
            (
                Condition::CalendarCollectionLocationOk,
                "{urn:ietf:params:xml:ns:caldav}calendar-collection-location-ok",
            ),
            (
                Condition::MaxResourceSize,
                "{urn:ietf:params:xml:ns:caldav}max-resource-size",
            ),
            (Condition::NeedPrivileges(vec![]), "{DAV:}need-privileges"),
            (
                Condition::PropfindFiniteDepth,
                "{DAV:}propfind-finite-depth",
            ),
            (Condition::ValidSyncToken, "{DAV:}valid-sync-token"),
            (Condition::SupportedReport, "{DAV:}supported-report"),
            (
                Condition::NumberOfMatchesWithinLimits,
                "{DAV:}number-of-matches-within-limits",
            ),
            (
                Condition::ValidFilter,
                "{urn:ietf:params:xml:ns:caldav}valid-filter",
            ),
            (
                Condition::SupportedFilter,
                "{urn:ietf:params:xml:ns:caldav}supported-filter",
            ),
            (
                Condition::SupportedCollation,
                "{urn:ietf:params:xml:ns:caldav}supported-collation",
            ),
            (Condition::ResourceMustBeNull, "{DAV:}resource-must-be-null"),
            (
                Condition::ValidCalendarTimezone,
                "{urn:ietf:params:xml:ns:caldav}valid-calendar-timezone",
            ),
            (
                Condition::CannotModifyProtectedProperty,
                "{DAV:}cannot-modify-protected-property",
            ),
            (Condition::ValidResourcetype, "{DAV:}valid-resourcetype"),
        ];
        for (c, want) in all {
            assert_eq!(c.name().to_string(), want);
            let body = DavError::condition(c, "m").to_xml().unwrap();
            let tree = crate::dav::xml::parse(body.as_bytes()).unwrap();
            assert_eq!(tree.elements().next().unwrap().name.to_string(), want);
        }
    }

    #[test]
    fn default_statuses() {
        assert_eq!(Condition::NumberOfMatchesWithinLimits.default_status(), 507);
        assert_eq!(Condition::ValidSyncToken.default_status(), 403);
        assert_eq!(
            DavError::condition(Condition::ValidFilter, "x")
                .with_status(400)
                .status,
            400
        );
    }
}
