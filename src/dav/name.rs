//! Qualified XML names (`{namespace}local`) and the well-known WebDAV,
//! CalDAV, CalendarServer and Apple iCal names.
//!
//! Owns: [`QName`], the namespace URIs, and [`names`] (constants for every
//! element and property the handlers use). Must not: know anything about
//! requests, responses or storage; it is vocabulary only.

use std::borrow::Cow;
use std::fmt;

/// `DAV:` (RFC 4918, 3744, 5397, 6578).
pub const NS_DAV: &str = "DAV:";
/// CalDAV (RFC 4791).
pub const NS_CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
/// Apple's CalendarServer extensions (getctag, subscribed, ...).
pub const NS_CALSERVER: &str = "http://calendarserver.org/ns/";
/// Apple iCal extensions (calendar-color, calendar-order).
pub const NS_ICAL: &str = "http://apple.com/ns/ical/";
/// The `xml:` prefix namespace (xml:lang), bound implicitly in every document.
pub const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

/// A namespace-qualified name. The empty namespace means "no namespace".
///
/// Both parts are `Cow<'static, str>` so the well-known names below are
/// compile-time constants, while names read from requests are owned.
/// Equality and hashing compare the strings, so a constant equals a parsed
/// name with the same text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QName {
    pub ns: Cow<'static, str>,
    pub local: Cow<'static, str>,
}

impl QName {
    /// A name from owned or borrowed strings. Well-known namespaces are
    /// stored as static strings so parsed names cost one allocation.
    pub fn new(ns: impl Into<String>, local: impl Into<String>) -> QName {
        let ns: String = ns.into();
        let ns = match ns.as_str() {
            NS_DAV => Cow::Borrowed(NS_DAV),
            NS_CALDAV => Cow::Borrowed(NS_CALDAV),
            NS_CALSERVER => Cow::Borrowed(NS_CALSERVER),
            NS_ICAL => Cow::Borrowed(NS_ICAL),
            "" => Cow::Borrowed(""),
            _ => Cow::Owned(ns),
        };
        QName {
            ns,
            local: Cow::Owned(local.into()),
        }
    }

    pub const fn from_static(ns: &'static str, local: &'static str) -> QName {
        QName {
            ns: Cow::Borrowed(ns),
            local: Cow::Borrowed(local),
        }
    }

    pub const fn dav(local: &'static str) -> QName {
        QName::from_static(NS_DAV, local)
    }

    pub const fn caldav(local: &'static str) -> QName {
        QName::from_static(NS_CALDAV, local)
    }

    pub const fn calserver(local: &'static str) -> QName {
        QName::from_static(NS_CALSERVER, local)
    }

    pub const fn ical(local: &'static str) -> QName {
        QName::from_static(NS_ICAL, local)
    }

    /// Whether this is `{ns}local`.
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.ns == ns && self.local == local
    }
}

/// Clark notation, `{DAV:}getetag`: compact and unambiguous in logs and in
/// the golden files.
impl fmt::Display for QName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}{}", self.ns, self.local)
    }
}

impl fmt::Debug for QName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Element and property names used by requests, responses and handlers.
pub mod names {
    use super::QName;

    // DAV: request and response structure (RFC 4918)
    pub const MULTISTATUS: QName = QName::dav("multistatus");
    pub const RESPONSE: QName = QName::dav("response");
    pub const PROPSTAT: QName = QName::dav("propstat");
    pub const STATUS: QName = QName::dav("status");
    pub const HREF: QName = QName::dav("href");
    pub const PROP: QName = QName::dav("prop");
    pub const PROPFIND: QName = QName::dav("propfind");
    pub const ALLPROP: QName = QName::dav("allprop");
    pub const PROPNAME: QName = QName::dav("propname");
    pub const INCLUDE: QName = QName::dav("include");
    pub const PROPERTYUPDATE: QName = QName::dav("propertyupdate");
    pub const SET: QName = QName::dav("set");
    pub const REMOVE: QName = QName::dav("remove");
    pub const MKCOL: QName = QName::dav("mkcol");
    pub const ERROR: QName = QName::dav("error");
    pub const RESPONSEDESCRIPTION: QName = QName::dav("responsedescription");
    pub const COLLECTION: QName = QName::dav("collection");

    // DAV: properties
    pub const RESOURCETYPE: QName = QName::dav("resourcetype");
    pub const DISPLAYNAME: QName = QName::dav("displayname");
    pub const GETETAG: QName = QName::dav("getetag");
    pub const GETCONTENTTYPE: QName = QName::dav("getcontenttype");
    pub const GETCONTENTLENGTH: QName = QName::dav("getcontentlength");
    pub const GETLASTMODIFIED: QName = QName::dav("getlastmodified");
    pub const CREATIONDATE: QName = QName::dav("creationdate");
    pub const SUPPORTEDLOCK: QName = QName::dav("supportedlock");
    pub const LOCKDISCOVERY: QName = QName::dav("lockdiscovery");
    pub const QUOTA_AVAILABLE_BYTES: QName = QName::dav("quota-available-bytes");
    pub const QUOTA_USED_BYTES: QName = QName::dav("quota-used-bytes");
    pub const SUPPORTED_REPORT_SET: QName = QName::dav("supported-report-set");
    pub const SUPPORTED_REPORT: QName = QName::dav("supported-report");
    pub const REPORT: QName = QName::dav("report");
    pub const RESOURCE_ID: QName = QName::dav("resource-id");
    pub const ADD_MEMBER: QName = QName::dav("add-member");

    // RFC 5397 / RFC 3744 principals and privileges
    pub const CURRENT_USER_PRINCIPAL: QName = QName::dav("current-user-principal");
    pub const PRINCIPAL: QName = QName::dav("principal");
    pub const PRINCIPAL_URL: QName = QName::dav("principal-URL");
    pub const PRINCIPAL_COLLECTION_SET: QName = QName::dav("principal-collection-set");
    pub const OWNER: QName = QName::dav("owner");
    pub const GROUP_MEMBERSHIP: QName = QName::dav("group-membership");
    pub const GROUP_MEMBER_SET: QName = QName::dav("group-member-set");
    pub const ALTERNATE_URI_SET: QName = QName::dav("alternate-URI-set");
    pub const CURRENT_USER_PRIVILEGE_SET: QName = QName::dav("current-user-privilege-set");
    pub const ACL: QName = QName::dav("acl");
    pub const PRIVILEGE: QName = QName::dav("privilege");
    pub const READ: QName = QName::dav("read");
    pub const WRITE: QName = QName::dav("write");
    pub const WRITE_PROPERTIES: QName = QName::dav("write-properties");
    pub const WRITE_CONTENT: QName = QName::dav("write-content");
    pub const BIND: QName = QName::dav("bind");
    pub const UNBIND: QName = QName::dav("unbind");
    pub const READ_ACL: QName = QName::dav("read-acl");
    pub const READ_CURRENT_USER_PRIVILEGE_SET: QName =
        QName::dav("read-current-user-privilege-set");
    pub const ALL: QName = QName::dav("all");
    pub const NEED_PRIVILEGES: QName = QName::dav("need-privileges");
    pub const RESOURCE: QName = QName::dav("resource");

    // RFC 6578 sync-collection
    pub const SYNC_COLLECTION: QName = QName::dav("sync-collection");
    pub const SYNC_TOKEN: QName = QName::dav("sync-token");
    pub const SYNC_LEVEL: QName = QName::dav("sync-level");
    pub const LIMIT: QName = QName::dav("limit");
    pub const NRESULTS: QName = QName::dav("nresults");

    // RFC 3253 expand-property, RFC 3744 principal searches
    pub const EXPAND_PROPERTY: QName = QName::dav("expand-property");
    pub const PROPERTY: QName = QName::dav("property");
    pub const PRINCIPAL_PROPERTY_SEARCH: QName = QName::dav("principal-property-search");
    pub const PROPERTY_SEARCH: QName = QName::dav("property-search");
    pub const MATCH: QName = QName::dav("match");
    pub const APPLY_TO_PRINCIPAL_COLLECTION_SET: QName =
        QName::dav("apply-to-principal-collection-set");
    pub const PRINCIPAL_SEARCH_PROPERTY_SET: QName = QName::dav("principal-search-property-set");
    pub const PRINCIPAL_MATCH: QName = QName::dav("principal-match");
    pub const ACL_PRINCIPAL_PROP_SET: QName = QName::dav("acl-principal-prop-set");

    // CalDAV (RFC 4791, RFC 6638 addresses)
    pub const CALENDAR: QName = QName::caldav("calendar");
    pub const MKCALENDAR: QName = QName::caldav("mkcalendar");
    pub const CALENDAR_HOME_SET: QName = QName::caldav("calendar-home-set");
    pub const CALENDAR_USER_ADDRESS_SET: QName = QName::caldav("calendar-user-address-set");
    pub const CALENDAR_USER_TYPE: QName = QName::caldav("calendar-user-type");
    pub const SCHEDULE_INBOX_URL: QName = QName::caldav("schedule-inbox-URL");
    pub const SCHEDULE_OUTBOX_URL: QName = QName::caldav("schedule-outbox-URL");
    pub const SCHEDULE_DEFAULT_CALENDAR_URL: QName = QName::caldav("schedule-default-calendar-URL");
    pub const SCHEDULE_CALENDAR_TRANSP: QName = QName::caldav("schedule-calendar-transp");
    pub const CALENDAR_DESCRIPTION: QName = QName::caldav("calendar-description");
    pub const CALENDAR_TIMEZONE: QName = QName::caldav("calendar-timezone");
    pub const SUPPORTED_CALENDAR_COMPONENT_SET: QName =
        QName::caldav("supported-calendar-component-set");
    pub const SUPPORTED_CALENDAR_DATA: QName = QName::caldav("supported-calendar-data");
    pub const SUPPORTED_COLLATION_SET: QName = QName::caldav("supported-collation-set");
    pub const MAX_RESOURCE_SIZE: QName = QName::caldav("max-resource-size");
    pub const MIN_DATE_TIME: QName = QName::caldav("min-date-time");
    pub const MAX_DATE_TIME: QName = QName::caldav("max-date-time");
    pub const MAX_INSTANCES: QName = QName::caldav("max-instances");
    pub const MAX_ATTENDEES_PER_INSTANCE: QName = QName::caldav("max-attendees-per-instance");
    pub const READ_FREE_BUSY: QName = QName::caldav("read-free-busy");
    pub const CALENDAR_DATA: QName = QName::caldav("calendar-data");
    pub const COMP: QName = QName::caldav("comp");
    pub const CALDAV_PROP: QName = QName::caldav("prop");
    pub const CALDAV_ALLPROP: QName = QName::caldav("allprop");
    pub const ALLCOMP: QName = QName::caldav("allcomp");
    pub const EXPAND: QName = QName::caldav("expand");
    pub const LIMIT_RECURRENCE_SET: QName = QName::caldav("limit-recurrence-set");
    pub const LIMIT_FREEBUSY_SET: QName = QName::caldav("limit-freebusy-set");
    pub const FILTER: QName = QName::caldav("filter");
    pub const COMP_FILTER: QName = QName::caldav("comp-filter");
    pub const PROP_FILTER: QName = QName::caldav("prop-filter");
    pub const PARAM_FILTER: QName = QName::caldav("param-filter");
    pub const IS_NOT_DEFINED: QName = QName::caldav("is-not-defined");
    pub const TEXT_MATCH: QName = QName::caldav("text-match");
    pub const TIME_RANGE: QName = QName::caldav("time-range");
    pub const TIMEZONE: QName = QName::caldav("timezone");
    pub const CALENDAR_QUERY: QName = QName::caldav("calendar-query");
    pub const CALENDAR_MULTIGET: QName = QName::caldav("calendar-multiget");
    pub const FREE_BUSY_QUERY: QName = QName::caldav("free-busy-query");

    // CalendarServer (Apple) extensions
    pub const GETCTAG: QName = QName::calserver("getctag");
    pub const SUBSCRIBED: QName = QName::calserver("subscribed");
    pub const SOURCE: QName = QName::calserver("source");
    pub const EMAIL_ADDRESS_SET: QName = QName::calserver("email-address-set");
    pub const CALENDAR_PROXY_READ_FOR: QName = QName::calserver("calendar-proxy-read-for");
    pub const CALENDAR_PROXY_WRITE_FOR: QName = QName::calserver("calendar-proxy-write-for");
    pub const PUSHKEY: QName = QName::calserver("pushkey");
    pub const PUSH_TRANSPORTS: QName = QName::calserver("push-transports");
    pub const CHECKSUM_VERSIONS: QName = QName::calserver("checksum-versions");
    pub const ALLOWED_SHARING_MODES: QName = QName::calserver("allowed-sharing-modes");
    pub const ERROR_DESCRIPTION: QName = QName::calserver("error-description");

    // Apple iCal
    pub const CALENDAR_COLOR: QName = QName::ical("calendar-color");
    pub const CALENDAR_ORDER: QName = QName::ical("calendar-order");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_equal_parsed_names() {
        let parsed = QName::new("DAV:", "getetag");
        assert_eq!(parsed, names::GETETAG);
        assert!(matches!(parsed.ns, Cow::Borrowed(_)));
        let other = QName::new("urn:x", "getetag");
        assert_ne!(other, names::GETETAG);
        assert_eq!(other.to_string(), "{urn:x}getetag");
    }

    #[test]
    fn hashes_agree_between_static_and_owned() {
        let mut set = std::collections::HashSet::new();
        set.insert(names::CALENDAR_COLOR);
        assert!(set.contains(&QName::new(NS_ICAL, "calendar-color")));
    }
}
