//! Writing WebDAV responses from typed values: `<D:multistatus>` with
//! responses, propstats grouped by status, per-resource statuses, a
//! sync-token, PROPNAME answers, and the 507 "truncated" response.
//!
//! Owns: the XML shape of every property value the handlers emit
//! ([`PropValue`]), namespace prefixes (`D:`, `C:`, `CS:`, `ICAL:` declared
//! once on the root; any other namespace declared where it is used), href
//! encoding on output, and escaping of every text and attribute (a value
//! can never break out of its element: `<`, `&`, `>` are escaped, so `]]>`
//! is harmless, and characters XML 1.0 cannot carry are dropped).
//! Must not: decide which properties a resource has or what they contain.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use super::error::Condition;
use super::href;
use super::name::{names, QName, NS_CALDAV, NS_CALSERVER, NS_DAV, NS_ICAL};
use super::xml::{escape_attr_into, escape_text_into};

/// The fixed prefixes declared on every root element we write.
const PREFIXES: [(&str, &str); 4] = [
    ("D", NS_DAV),
    ("C", NS_CALDAV),
    ("CS", NS_CALSERVER),
    ("ICAL", NS_ICAL),
];

/// The standard reason phrase for a status code used in WebDAV bodies.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        207 => "Multi-Status",
        301 => "Moved Permanently",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        423 => "Locked",
        424 => "Failed Dependency",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

fn status_line(status: u16) -> std::borrow::Cow<'static, str> {
    // The common ones without formatting: a PROPFIND over a large
    // collection writes one per resource.
    match status {
        200 => "HTTP/1.1 200 OK".into(),
        403 => "HTTP/1.1 403 Forbidden".into(),
        404 => "HTTP/1.1 404 Not Found".into(),
        _ => format!("HTTP/1.1 {status} {}", reason_phrase(status)).into(),
    }
}

/// A small XML writer over quick-xml's `Writer`: names are rendered with the
/// fixed prefixes, every text and attribute is escaped here, and open
/// elements are tracked so `end()` needs no argument.
pub(crate) struct XmlOut {
    w: Writer<Vec<u8>>,
    /// The tags of the open elements, one after the other, and where each
    /// starts: no allocation per element.
    open: String,
    starts: Vec<usize>,
    /// Reused for each start tag and each escaped text.
    scratch: String,
}

impl XmlOut {
    /// A document with the XML declaration written, indented by one space.
    pub(crate) fn document() -> XmlOut {
        let mut out = XmlOut {
            w: Writer::new_with_indent(Vec::with_capacity(1024), b' ', 1),
            open: String::new(),
            starts: Vec::new(),
            scratch: String::new(),
        };
        out.event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)));
        out
    }

    /// Writing into a `Vec<u8>` cannot fail; this is the single place that
    /// says so.
    fn event(&mut self, e: Event<'_>) {
        let _infallible = self.w.write_event(e);
    }

    /// The root element, declaring the four fixed prefixes.
    pub(crate) fn start_root(&mut self, name: &QName) {
        let mut content = String::new();
        let len = render_into(name, &mut content);
        for (prefix, ns) in PREFIXES {
            content.push_str(" xmlns:");
            content.push_str(prefix);
            content.push_str("=\"");
            escape_attr_into(ns, &mut content);
            content.push('"');
        }
        self.push_open(&content[..len]);
        self.event(Event::Start(BytesStart::from_content(content, len)));
    }

    fn push_open(&mut self, tag: &str) {
        self.starts.push(self.open.len());
        self.open.push_str(tag);
    }

    /// Writes a start or empty tag through the scratch buffer.
    fn tag(&mut self, name: &QName, attrs: &[(&str, &str)], empty: bool) {
        let mut content = std::mem::take(&mut self.scratch);
        content.clear();
        let len = render_into(name, &mut content);
        for (k, v) in attrs {
            content.push(' ');
            content.push_str(k);
            content.push_str("=\"");
            escape_attr_into(v, &mut content);
            content.push('"');
        }
        if empty {
            self.event(Event::Empty(BytesStart::from_content(
                content.as_str(),
                len,
            )));
        } else {
            self.push_open(&content[..len]);
            self.event(Event::Start(BytesStart::from_content(
                content.as_str(),
                len,
            )));
        }
        self.scratch = content;
    }

    pub(crate) fn start(&mut self, name: &QName) {
        self.start_with(name, &[]);
    }

    /// `attrs` keys must be plain attribute names (they are ours, never a
    /// client's); values are escaped.
    pub(crate) fn start_with(&mut self, name: &QName, attrs: &[(&str, &str)]) {
        self.tag(name, attrs, false);
    }

    pub(crate) fn empty(&mut self, name: &QName) {
        self.empty_with(name, &[]);
    }

    pub(crate) fn empty_with(&mut self, name: &QName, attrs: &[(&str, &str)]) {
        self.tag(name, attrs, true);
    }

    pub(crate) fn end(&mut self) {
        if let Some(at) = self.starts.pop() {
            let open = std::mem::take(&mut self.open);
            self.event(Event::End(BytesEnd::new(&open[at..])));
            self.open = open;
            self.open.truncate(at);
        }
    }

    /// Escaped character data.
    pub(crate) fn text(&mut self, s: &str) {
        if !s.is_empty() {
            let mut escaped = std::mem::take(&mut self.scratch);
            escaped.clear();
            escape_text_into(s, &mut escaped);
            self.event(Event::Text(BytesText::from_escaped(escaped.as_str())));
            self.scratch = escaped;
        }
    }

    /// A pre-built fragment, written as is.
    pub(crate) fn raw(&mut self, xml: &str) {
        if !xml.is_empty() {
            self.event(Event::Text(BytesText::from_escaped(xml)));
        }
    }

    /// `<name>text</name>`, or `<name/>` when the text is empty.
    pub(crate) fn text_element(&mut self, name: &QName, text: &str) {
        if text.is_empty() {
            self.empty(name);
        } else {
            self.start(name);
            self.text(text);
            self.end();
        }
    }

    pub(crate) fn finish(mut self) -> String {
        while !self.starts.is_empty() {
            self.end();
        }
        let mut bytes = self.w.into_inner();
        bytes.push(b'\n');
        // Everything written came from `&str`, so this is UTF-8.
        String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
    }
}

/// Appends the tag for a name and, for a namespace without a fixed
/// prefix, the ` xmlns:X="..."` declaration to put on that element;
/// returns the length of the tag alone.
fn render_into(name: &QName, out: &mut String) -> usize {
    let from = out.len();
    if let Some((prefix, _)) = PREFIXES.iter().find(|(_, ns)| *ns == name.ns) {
        out.push_str(prefix);
        out.push(':');
        out.push_str(&name.local);
        return out.len() - from;
    }
    if name.ns.is_empty() {
        // No default namespace is ever declared by this writer.
        out.push_str(&name.local);
        return out.len() - from;
    }
    out.push_str("X:");
    out.push_str(&name.local);
    let len = out.len() - from;
    out.push_str(" xmlns:X=\"");
    escape_attr_into(&name.ns, out);
    out.push('"');
    len
}

/// The value of one property, in the shapes handlers emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    /// `<name/>`: 404/403/424 entries, PROPNAME answers, empty values.
    Empty,
    /// Escaped text: displayname, getetag, getctag, sync-token,
    /// getcontenttype, getlastmodified, calendar-color, calendar-order,
    /// calendar-description, calendar-timezone...
    Text(String),
    /// An integer: getcontentlength, max-resource-size, calendar-order.
    Integer(i64),
    /// One `<D:href>` (a decoded path, encoded here): current-user-principal,
    /// principal-URL, owner, schedule-*-URL.
    Href(String),
    /// Several `<D:href>`: calendar-home-set, calendar-user-address-set,
    /// principal-collection-set, group-membership.
    Hrefs(Vec<String>),
    /// The resource types as empty elements: `D:collection`, `C:calendar`,
    /// `D:principal`, `CS:subscribed`...
    ResourceType(Vec<QName>),
    /// `<C:comp name="VEVENT"/>` per component name.
    SupportedCalendarComponentSet(Vec<String>),
    /// `<C:calendar-data content-type="text/calendar" version="2.0"/>`.
    SupportedCalendarData,
    /// `<D:supported-report><D:report><X/></D:report></D:supported-report>`
    /// per report name.
    SupportedReportSet(Vec<QName>),
    /// `<D:privilege><X/></D:privilege>` per privilege:
    /// current-user-privilege-set.
    Privileges(Vec<QName>),
    /// iCalendar text as escaped character data (never CDATA; CRs are kept
    /// as `&#13;`).
    CalendarData(String),
    /// Empty child elements, for anything else that is a list of names.
    Elements(Vec<QName>),
    /// A pre-built fragment written as is: a dead property stored from a
    /// PROPPATCH ([`super::xml::Element::inner_xml`]) or a hand-built value.
    /// It must be well-formed and use no prefixes other than `D`, `C`, `CS`
    /// and `ICAL`; it must not rely on a default namespace.
    Xml(String),
}

/// One property: its name and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prop {
    pub name: QName,
    pub value: PropValue,
}

/// The properties of one resource that share a status, with an optional
/// condition (e.g. `cannot-modify-protected-property` on a 403) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropStat {
    pub status: u16,
    pub props: Vec<Prop>,
    pub error: Option<Condition>,
    pub description: Option<String>,
}

/// Collects properties and groups them by status (ascending, so 200 comes
/// first), ready for [`Multistatus::response`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropStats(Vec<PropStat>);

impl PropStats {
    pub fn new() -> PropStats {
        PropStats::default()
    }

    fn group(&mut self, status: u16) -> &mut PropStat {
        let i = match self.0.iter().position(|p| p.status >= status) {
            Some(i) if self.0[i].status == status => i,
            Some(i) => {
                self.0.insert(i, PropStat::new(status));
                i
            }
            None => {
                self.0.push(PropStat::new(status));
                self.0.len() - 1
            }
        };
        &mut self.0[i]
    }

    pub fn add(&mut self, status: u16, name: QName, value: PropValue) {
        self.group(status).props.push(Prop { name, value });
    }

    /// 200 with a value.
    pub fn found(&mut self, name: QName, value: PropValue) {
        self.add(200, name, value);
    }

    /// 404: the property is not defined on this resource.
    pub fn not_found(&mut self, name: QName) {
        self.add(404, name, PropValue::Empty);
    }

    /// 403: e.g. PROPPATCH of a protected property.
    pub fn forbidden(&mut self, name: QName) {
        self.add(403, name, PropValue::Empty);
    }

    /// 424: PROPPATCH entries not applied because another one failed.
    pub fn failed_dependency(&mut self, name: QName) {
        self.add(424, name, PropValue::Empty);
    }

    /// Attaches a condition and message to the group of `status`.
    pub fn set_error(&mut self, status: u16, error: Condition, description: Option<String>) {
        let g = self.group(status);
        g.error = Some(error);
        g.description = description;
    }

    pub fn as_slice(&self) -> &[PropStat] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PropStat {
    pub fn new(status: u16) -> PropStat {
        PropStat {
            status,
            props: Vec::new(),
            error: None,
            description: None,
        }
    }
}

/// A `207 Multi-Status` body being written.
///
/// ```
/// use calbridge::dav::{Multistatus, PropStats, PropValue, names};
/// let mut ms = Multistatus::new();
/// let mut p = PropStats::new();
/// p.found(names::GETETAG, PropValue::Text("\"e1\"".into()));
/// p.not_found(names::GETCTAG);
/// ms.response("/dav/calendars/s1/appointments/a.ics", p.as_slice());
/// ms.sync_token("https://calbridge/sync/42");
/// let body: Vec<u8> = ms.finish();
/// assert!(String::from_utf8(body).unwrap().contains("HTTP/1.1 404 Not Found"));
/// ```
pub struct Multistatus {
    out: XmlOut,
    /// `Prefer: return=minimal` (RFC 8144): 404 propstats are left out.
    minimal: bool,
    /// Written last, where RFC 6578 puts it, whenever it was set.
    sync_token: Option<String>,
}

impl Default for Multistatus {
    fn default() -> Self {
        Multistatus::new()
    }
}

impl Multistatus {
    pub fn new() -> Multistatus {
        let mut out = XmlOut::document();
        out.start_root(&names::MULTISTATUS);
        Multistatus {
            out,
            minimal: false,
            sync_token: None,
        }
    }

    /// Leave out 404 propstats (`Prefer: return=minimal` / `Brief: t`).
    pub fn minimal(mut self, minimal: bool) -> Multistatus {
        self.minimal = minimal;
        self
    }

    /// A resource with its properties grouped by status. `href` is a
    /// decoded path; it is encoded here.
    pub fn response(&mut self, href: &str, propstats: &[PropStat]) {
        let out = &mut self.out;
        out.start(&names::RESPONSE);
        out.text_element(&names::HREF, &href::encode(href));
        let mut written = 0;
        for ps in propstats {
            if self.minimal && ps.status == 404 {
                continue;
            }
            write_propstat(out, ps);
            written += 1;
        }
        if written == 0 {
            // A response needs a propstat or a status; an empty 200 says
            // "nothing to report" (RFC 8144 §2.1 does the same).
            write_propstat(out, &PropStat::new(200));
        }
        out.end();
    }

    /// A PROPNAME answer: every name, as an empty element, with 200.
    pub fn propname_response(&mut self, href: &str, props: &[QName]) {
        let ps = PropStat {
            status: 200,
            props: props
                .iter()
                .map(|n| Prop {
                    name: n.clone(),
                    value: PropValue::Empty,
                })
                .collect(),
            error: None,
            description: None,
        };
        self.response(href, std::slice::from_ref(&ps));
    }

    /// A resource with a status only: 404 for sync-collection deletions and
    /// multiget misses, 403 for hrefs outside the user's home.
    pub fn response_status(&mut self, href: &str, status: u16) {
        let out = &mut self.out;
        out.start(&names::RESPONSE);
        out.text_element(&names::HREF, &href::encode(href));
        out.text_element(&names::STATUS, &status_line(status));
        out.end();
    }

    /// A resource with a status and a condition inside `<D:error>`.
    pub fn response_error(
        &mut self,
        href: &str,
        status: u16,
        condition: &Condition,
        description: Option<&str>,
    ) {
        let out = &mut self.out;
        out.start(&names::RESPONSE);
        out.text_element(&names::HREF, &href::encode(href));
        out.text_element(&names::STATUS, &status_line(status));
        out.start(&names::ERROR);
        condition.write(out);
        out.end();
        if let Some(d) = description {
            out.text_element(&names::RESPONSEDESCRIPTION, d);
        }
        out.end();
    }

    /// The RFC 6578 §3.6 marker for a truncated result: a response for the
    /// request URI with `507` and `DAV:number-of-matches-within-limits`.
    pub fn truncated(&mut self, request_href: &str) {
        self.response_error(
            request_href,
            507,
            &Condition::NumberOfMatchesWithinLimits,
            None,
        );
    }

    /// The `<D:sync-token>` written after the responses.
    pub fn sync_token(&mut self, token: &str) {
        self.sync_token = Some(token.to_string());
    }

    /// The complete body.
    pub fn finish(mut self) -> Vec<u8> {
        if let Some(token) = self.sync_token.take() {
            self.out.text_element(&names::SYNC_TOKEN, &token);
        }
        self.out.finish().into_bytes()
    }
}

fn write_propstat(out: &mut XmlOut, ps: &PropStat) {
    out.start(&names::PROPSTAT);
    if ps.props.is_empty() {
        out.empty(&names::PROP);
    } else {
        out.start(&names::PROP);
        for p in &ps.props {
            write_prop(out, &p.name, &p.value);
        }
        out.end();
    }
    out.text_element(&names::STATUS, &status_line(ps.status));
    if let Some(c) = &ps.error {
        out.start(&names::ERROR);
        c.write(out);
        out.end();
    }
    if let Some(d) = &ps.description {
        out.text_element(&names::RESPONSEDESCRIPTION, d);
    }
    out.end();
}

fn write_prop(out: &mut XmlOut, name: &QName, value: &PropValue) {
    match value {
        PropValue::Empty => out.empty(name),
        PropValue::Text(t) | PropValue::CalendarData(t) => out.text_element(name, t),
        PropValue::Integer(i) => out.text_element(name, &i.to_string()),
        PropValue::Href(h) => {
            out.start(name);
            out.text_element(&names::HREF, &href::encode(h));
            out.end();
        }
        PropValue::Hrefs(list) => {
            if list.is_empty() {
                return out.empty(name);
            }
            out.start(name);
            for h in list {
                out.text_element(&names::HREF, &href::encode(h));
            }
            out.end();
        }
        PropValue::ResourceType(list) | PropValue::Elements(list) => {
            if list.is_empty() {
                return out.empty(name);
            }
            out.start(name);
            for n in list {
                out.empty(n);
            }
            out.end();
        }
        PropValue::SupportedCalendarComponentSet(comps) => {
            out.start(name);
            for c in comps {
                out.empty_with(&names::COMP, &[("name", c)]);
            }
            out.end();
        }
        PropValue::SupportedCalendarData => {
            out.start(name);
            out.empty_with(
                &names::CALENDAR_DATA,
                &[("content-type", "text/calendar"), ("version", "2.0")],
            );
            out.end();
        }
        PropValue::SupportedReportSet(reports) => {
            out.start(name);
            for r in reports {
                out.start(&names::SUPPORTED_REPORT);
                out.start(&names::REPORT);
                out.empty(r);
                out.end();
                out.end();
            }
            out.end();
        }
        PropValue::Privileges(privileges) => {
            out.start(name);
            for p in privileges {
                out.start(&names::PRIVILEGE);
                out.empty(p);
                out.end();
            }
            out.end();
        }
        PropValue::Xml(fragment) => {
            if fragment.is_empty() {
                return out.empty(name);
            }
            out.start(name);
            out.raw(fragment);
            out.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dav::xml;

    fn body(ms: Multistatus) -> String {
        String::from_utf8(ms.finish()).unwrap()
    }

    #[test]
    fn hostile_text_cannot_break_out() {
        let mut ms = Multistatus::new();
        let mut p = PropStats::new();
        let evil = "]]></D:displayname><D:owner>x</D:owner>&amp;<!--\u{0}\u{7}\u{1b}";
        p.found(names::DISPLAYNAME, PropValue::Text(evil.into()));
        p.found(
            names::CALENDAR_DATA,
            PropValue::CalendarData("BEGIN:VCALENDAR\r\nX:]]>\r\nEND:VCALENDAR\r\n".into()),
        );
        ms.response("/a/<b>&\"c\"", p.as_slice());
        let s = body(ms);
        let tree = xml::parse(s.as_bytes()).expect("output is well-formed");
        let prop = tree
            .child(&names::RESPONSE)
            .and_then(|r| r.child(&names::PROPSTAT))
            .and_then(|p| p.child(&names::PROP))
            .unwrap();
        assert_eq!(
            prop.child(&names::DISPLAYNAME).unwrap().text(),
            "]]></D:displayname><D:owner>x</D:owner>&amp;<!--"
        );
        assert_eq!(
            prop.child(&names::CALENDAR_DATA).unwrap().text(),
            "BEGIN:VCALENDAR\r\nX:]]>\r\nEND:VCALENDAR\r\n",
            "CRLF survives the round trip"
        );
        let href = tree
            .child(&names::RESPONSE)
            .and_then(|r| r.child(&names::HREF))
            .unwrap()
            .text();
        assert_eq!(href, "/a/%3Cb%3E%26%22c%22");
    }

    #[test]
    fn propstats_group_by_status_in_order() {
        let mut p = PropStats::new();
        p.not_found(names::GETCTAG);
        p.found(names::GETETAG, PropValue::Text("\"1\"".into()));
        p.forbidden(names::RESOURCETYPE);
        p.found(names::DISPLAYNAME, PropValue::Text("x".into()));
        let statuses: Vec<u16> = p.as_slice().iter().map(|s| s.status).collect();
        assert_eq!(statuses, [200, 403, 404]);
        assert_eq!(p.as_slice()[0].props.len(), 2);
    }

    #[test]
    fn minimal_drops_404_but_keeps_a_propstat() {
        let mut p = PropStats::new();
        p.not_found(names::GETCTAG);
        let mut ms = Multistatus::new().minimal(true);
        ms.response("/x/", p.as_slice());
        let s = body(ms);
        assert!(!s.contains("404"));
        assert!(s.contains("<D:prop/>"));
        assert!(s.contains("HTTP/1.1 200 OK"));
    }

    #[test]
    fn unknown_namespaces_are_declared_where_used() {
        let mut p = PropStats::new();
        p.found(
            QName::new("urn:example:x", "color"),
            PropValue::Xml("<shade xmlns=\"urn:example:x\">dark</shade>".into()),
        );
        p.not_found(QName::new("", "plain"));
        let mut ms = Multistatus::new();
        ms.response("/x/", p.as_slice());
        let s = body(ms);
        assert!(s.contains("<X:color xmlns:X=\"urn:example:x\"><shade xmlns=\"urn:example:x\">dark</shade></X:color>"), "{s}");
        assert!(s.contains("<plain/>"));
        let tree = xml::parse(s.as_bytes()).unwrap();
        let found = tree
            .child(&names::RESPONSE)
            .and_then(|r| r.child(&names::PROPSTAT))
            .and_then(|p| p.child(&names::PROP))
            .and_then(|p| p.child(&QName::new("urn:example:x", "color")))
            .unwrap();
        assert_eq!(found.text(), "dark");
    }

    #[test]
    fn sync_token_is_written_last() {
        let mut ms = Multistatus::new();
        ms.sync_token("tok-1");
        ms.response_status("/gone.ics", 404);
        let s = body(ms);
        let tok = s.find("<D:sync-token>tok-1</D:sync-token>").unwrap();
        assert!(s.find("/gone.ics").unwrap() < tok);
    }
}
