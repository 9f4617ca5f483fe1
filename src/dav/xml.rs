//! A safe, namespace-aware XML reader for request bodies, and the small
//! element tree it builds.
//!
//! Owns: turning untrusted bytes into an [`Element`] tree whose names are
//! resolved to `{namespace}local` (clients use any prefix: `D:`, `d:`, `A:`,
//! a default namespace), and serializing a subtree back into a self-contained
//! fragment (for dead properties). Refuses, each with its own [`XmlError`]:
//! any DOCTYPE (so no entity can ever be declared, let alone expanded), any
//! entity reference other than the five predefined ones and numeric character
//! references, processing instructions, nesting deeper than
//! [`Limits::max_depth`], more than [`Limits::max_elements`] elements,
//! bodies over [`Limits::max_bytes`], non-UTF-8 input, characters XML 1.0
//! forbids, and every well-formedness error quick-xml reports.
//!
//! Memory stays proportional to the input: each element, attribute and text
//! node holds at most what was read, and the limits above bound the count.
//!
//! Must not: interpret WebDAV semantics (that is [`super::request`]), do I/O,
//! or ever resolve anything from outside the document.

use std::fmt::Write as _;

use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use quick_xml::XmlVersion;

use super::name::{QName, NS_XML};

const XMLNS_NAMESPACE: &str = "http://www.w3.org/2000/xmlns/";
const XML_NAMESPACE: &str = "http://www.w3.org/XML/1998/namespace";

/// Bounds on what one request body may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest element nesting. Real CalDAV bodies stay under 12 (a
    /// calendar-query filter is the deepest); 64 leaves room and stops
    /// recursion bombs.
    pub max_depth: usize,
    /// Most elements in one document. A multiget of 10 000 hrefs is ~10k.
    pub max_elements: usize,
    /// Largest body. The HTTP layer enforces its own limit (413); this one
    /// keeps the parser safe if it is ever called with more.
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_elements: 100_000,
            max_bytes: 8 << 20,
        }
    }
}

/// Why a body was refused as XML. Every message says what was wrong and,
/// where it helps, the byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the request body is empty; an XML document was expected")]
    Empty,
    #[error("the XML body is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the XML body is not UTF-8 (invalid byte sequence at offset {offset})")]
    NotUtf8 { offset: usize },
    #[error("the XML body declares encoding {0:?}; only UTF-8 is accepted")]
    UnsupportedEncoding(String),
    #[error("DOCTYPE declarations are not allowed (offset {offset})")]
    Doctype { offset: u64 },
    #[error(
        "entity reference &{name}; is not allowed (offset {offset}); only &lt; &gt; &amp; \
         &apos; &quot; and numeric character references are"
    )]
    Entity { name: String, offset: u64 },
    #[error("processing instruction <?{target}?> is not allowed (offset {offset})")]
    ProcessingInstruction { target: String, offset: u64 },
    #[error("elements are nested deeper than {limit} levels (offset {offset})")]
    TooDeep { limit: usize, offset: u64 },
    #[error("the document has more than {limit} elements")]
    TooManyElements { limit: usize },
    #[error("character U+{code:04X} is not allowed in XML 1.0 (offset {offset})")]
    ForbiddenChar { code: u32, offset: u64 },
    #[error("namespace prefix {prefix:?} is not declared (offset {offset})")]
    UnknownPrefix { prefix: String, offset: u64 },
    #[error("malformed XML at offset {offset}: {message}")]
    Malformed { offset: u64, message: String },
}

/// An element: resolved name, attributes (without `xmlns` declarations) and
/// children in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: QName,
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
}

/// An attribute. Unprefixed attributes have the empty namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub name: QName,
    pub value: String,
}

/// A child of an element. Adjacent text, CDATA and references are merged
/// into one `Text` node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    pub fn new(name: QName) -> Element {
        Element {
            name,
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Whether this element is `{ns}local`.
    pub fn is(&self, name: &QName) -> bool {
        &self.name == name
    }

    /// Child elements (text nodes skipped).
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element with this name.
    pub fn child(&self, name: &QName) -> Option<&Element> {
        self.elements().find(|e| &e.name == name)
    }

    /// Every child element with this name.
    pub fn children_named<'a>(&'a self, name: &QName) -> impl Iterator<Item = &'a Element> + 'a {
        let name = name.clone();
        self.elements().filter(move |e| e.name == name)
    }

    /// The value of the unprefixed attribute `local`.
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name.ns.is_empty() && a.name.local == local)
            .map(|a| a.value.as_str())
    }

    /// All text inside this element, descendants included, in order.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.collect_text(&mut out);
        out
    }

    fn collect_text(&self, out: &mut String) {
        for n in &self.children {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) => e.collect_text(out),
            }
        }
    }

    /// This element as a self-contained XML fragment: every namespace used
    /// is declared inside it, so it can be stored and later embedded in any
    /// document that does not declare a default namespace.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        write_element(self, "", &mut out);
        out
    }

    /// The children of this element as a self-contained fragment (see
    /// [`Element::to_xml`]). This is the "raw inner XML" of a property value.
    pub fn inner_xml(&self) -> String {
        let mut out = String::new();
        write_children(&self.children, "", &mut out);
        out
    }
}

fn write_children(children: &[Node], default_ns: &str, out: &mut String) {
    for n in children {
        match n {
            Node::Text(t) => escape_text_into(t, out),
            Node::Element(e) => write_element(e, default_ns, out),
        }
    }
}

/// Writes `e` with `xmlns="..."` wherever its namespace differs from the
/// default in scope, and one `xmlns:aN` per namespaced attribute.
fn write_element(e: &Element, default_ns: &str, out: &mut String) {
    out.push('<');
    out.push_str(&e.name.local);
    if e.name.ns != default_ns {
        out.push_str(" xmlns=\"");
        escape_attr_into(&e.name.ns, out);
        out.push('"');
    }
    for (i, a) in e.attrs.iter().enumerate() {
        out.push(' ');
        if a.name.ns == NS_XML {
            out.push_str("xml:");
        } else if !a.name.ns.is_empty() {
            let _ = write!(out, "xmlns:a{i}=\"");
            escape_attr_into(&a.name.ns, out);
            let _ = write!(out, "\" a{i}:");
        }
        out.push_str(&a.name.local);
        out.push_str("=\"");
        escape_attr_into(&a.value, out);
        out.push('"');
    }
    if e.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    write_children(&e.children, &e.name.ns, out);
    out.push_str("</");
    out.push_str(&e.name.local);
    out.push('>');
}

/// Whether XML 1.0 allows this character anywhere in a document.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escapes text content: `&`, `<`, `>` (so `]]>` can never appear), and CR
/// as `&#13;` (a raw CR would be normalised away by the reader; iCalendar
/// needs its CRLFs). Characters XML 1.0 forbids are dropped: they cannot be
/// represented at all, not even as references.
///
/// Runs of characters that need nothing are copied whole (calendar-data of
/// thousands of objects goes through here): only ASCII specials, controls
/// and the lead byte of U+FFFE / U+FFFF (0xEF) stop a run, and each of
/// those starts a character, so slicing there is always on a boundary.
pub fn escape_text_into(s: &str, out: &mut String) {
    out.reserve(s.len());
    let bytes = s.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        let plain = match bytes[i] {
            b'&' | b'<' | b'>' | b'\r' | 0xEF => false,
            b'\t' | b'\n' => true,
            b => b >= 0x20,
        };
        if plain {
            i += 1;
            continue;
        }
        out.push_str(&s[start..i]);
        let c = s[i..].chars().next().unwrap_or('\0');
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
        i += c.len_utf8();
        start = i;
    }
    out.push_str(&s[start..]);
}

/// Escapes an attribute value for double quotes; whitespace other than
/// space is written as references so attribute normalisation keeps it.
pub fn escape_attr_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
    }
}

/// [`escape_text_into`] into a new string.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    escape_text_into(s, &mut out);
    out
}

/// Parses a body with the default [`Limits`]. An empty or whitespace-only
/// body is [`XmlError::Empty`]; see [`parse_optional`] for methods where an
/// empty body means something.
pub fn parse(input: &[u8]) -> Result<Element, XmlError> {
    parse_with(input, &Limits::default())
}

/// Like [`parse`], but an empty or whitespace-only body is `Ok(None)`
/// (PROPFIND treats it as allprop, MKCALENDAR as "no properties").
pub fn parse_optional(input: &[u8]) -> Result<Option<Element>, XmlError> {
    match parse(input) {
        Ok(e) => Ok(Some(e)),
        Err(XmlError::Empty) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses a body within `limits`.
pub fn parse_with(input: &[u8], limits: &Limits) -> Result<Element, XmlError> {
    if input.len() > limits.max_bytes {
        return Err(XmlError::TooLarge {
            size: input.len(),
            limit: limits.max_bytes,
        });
    }
    if input.starts_with(&[0xFF, 0xFE]) || input.starts_with(&[0xFE, 0xFF]) {
        return Err(XmlError::UnsupportedEncoding("UTF-16".into()));
    }
    let text = std::str::from_utf8(input).map_err(|e| XmlError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let text = &text[bom..];
    if text.trim().is_empty() {
        return Err(XmlError::Empty);
    }
    if let Some((i, c)) = text.char_indices().find(|&(_, c)| !is_xml_char(c)) {
        return Err(XmlError::ForbiddenChar {
            code: c as u32,
            offset: (i + bom) as u64,
        });
    }
    TreeBuilder {
        reader: NsReader::from_str(text),
        limits,
        stack: Vec::new(),
        root: None,
        elements: 0,
        seen_anything: false,
        bom: bom as u64,
        event_start: 0,
    }
    .run()
}

struct TreeBuilder<'i, 'l> {
    reader: NsReader<&'i [u8]>,
    limits: &'l Limits,
    /// Open elements, innermost last; its length is the current depth.
    stack: Vec<Element>,
    root: Option<Element>,
    elements: usize,
    /// Whether any markup or text came before (an XML declaration must be first).
    seen_anything: bool,
    /// Offsets reported are into the original body, BOM included.
    bom: u64,
    /// Where the event being handled starts, for error offsets.
    event_start: u64,
}

impl TreeBuilder<'_, '_> {
    fn pos(&self) -> u64 {
        self.event_start + self.bom
    }

    fn malformed(&self, message: impl Into<String>) -> XmlError {
        XmlError::Malformed {
            offset: self.pos(),
            message: message.into(),
        }
    }

    fn run(mut self) -> Result<Element, XmlError> {
        {
            let config = self.reader.config_mut();
            config.check_end_names = true;
            config.check_comments = true;
            config.expand_empty_elements = false;
            config.allow_unmatched_ends = false;
            config.allow_dangling_amp = false;
        }
        loop {
            self.event_start = self.reader.buffer_position();
            let (ns, event) = match self.reader.read_resolved_event() {
                Ok(ok) => ok,
                Err(e) => {
                    let offset = self.reader.error_position() + self.bom;
                    return Err(map_quick_xml_error(e, offset));
                }
            };
            let ns = match ns {
                ResolveResult::Bound(ns) => Ok(ns.0.to_string()),
                ResolveResult::Unbound => Ok(String::new()),
                ResolveResult::Unknown(prefix) => Err(prefix),
            };
            match event {
                Event::Decl(decl) => {
                    if self.seen_anything {
                        return Err(self.malformed("the XML declaration must come first"));
                    }
                    self.seen_anything = true;
                    if let Some(enc) = decl.encoding() {
                        let enc = enc.map_err(|e| self.malformed(e.to_string()))?;
                        let lower = enc.to_ascii_lowercase();
                        if !matches!(lower.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
                            return Err(XmlError::UnsupportedEncoding(enc.into_owned()));
                        }
                    }
                }
                Event::DocType(_) => return Err(XmlError::Doctype { offset: self.pos() }),
                Event::PI(pi) => {
                    return Err(XmlError::ProcessingInstruction {
                        target: pi.target().to_string(),
                        offset: self.pos(),
                    })
                }
                Event::Comment(_) => self.seen_anything = true,
                Event::Start(start) => {
                    self.seen_anything = true;
                    let el = self.open(ns, &start)?;
                    self.stack.push(el);
                }
                Event::Empty(start) => {
                    self.seen_anything = true;
                    let el = self.open(ns, &start)?;
                    self.close(el)?;
                }
                Event::End(_) => {
                    // quick-xml has checked that the name matches.
                    let el = self
                        .stack
                        .pop()
                        .ok_or_else(|| self.malformed("end tag without a start tag"))?;
                    self.close(el)?;
                }
                Event::Text(t) => {
                    let raw = t.xml10_content();
                    if !raw.trim().is_empty() {
                        self.seen_anything = true;
                    }
                    if raw.contains("]]>") {
                        return Err(self.malformed("\"]]>\" is not allowed in text"));
                    }
                    self.text(&raw)?;
                }
                Event::CData(c) => {
                    self.seen_anything = true;
                    if self.stack.is_empty() {
                        return Err(self.malformed("CDATA outside the root element"));
                    }
                    let content = c.xml10_content();
                    self.text(&content)?;
                }
                Event::GeneralRef(r) => {
                    self.seen_anything = true;
                    let c = if r.is_char_ref() {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) if is_xml_char(c) => c,
                            Ok(Some(c)) => {
                                return Err(XmlError::ForbiddenChar {
                                    code: c as u32,
                                    offset: self.pos(),
                                })
                            }
                            Ok(None) | Err(_) => {
                                return Err(self
                                    .malformed(format!("invalid character reference &{};", &*r)))
                            }
                        }
                    } else {
                        match &*r {
                            "lt" => '<',
                            "gt" => '>',
                            "amp" => '&',
                            "apos" => '\'',
                            "quot" => '"',
                            other => {
                                return Err(XmlError::Entity {
                                    name: other.to_string(),
                                    offset: self.pos(),
                                })
                            }
                        }
                    };
                    let mut buf = [0u8; 4];
                    self.text(c.encode_utf8(&mut buf))?;
                }
                Event::Eof => break,
            }
        }
        if let Some(open) = self.stack.last() {
            return Err(self.malformed(format!(
                "unexpected end of document: <{}> is not closed",
                open.name.local
            )));
        }
        self.root
            .take()
            .ok_or_else(|| self.malformed("no root element"))
    }

    /// Builds an element from a start tag: limits, names, attributes.
    fn open(
        &mut self,
        ns: Result<String, String>,
        start: &BytesStart,
    ) -> Result<Element, XmlError> {
        if self.stack.is_empty() && self.root.is_some() {
            return Err(self.malformed("more than one root element"));
        }
        if self.stack.len() + 1 > self.limits.max_depth {
            return Err(XmlError::TooDeep {
                limit: self.limits.max_depth,
                offset: self.pos(),
            });
        }
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(XmlError::TooManyElements {
                limit: self.limits.max_elements,
            });
        }
        let raw_name = start.name().into_inner();
        check_name(raw_name).map_err(|m| self.malformed(m))?;
        let ns = ns.map_err(|prefix| XmlError::UnknownPrefix {
            prefix,
            offset: self.pos(),
        })?;
        let ns = self.namespace_name(&ns)?;
        // Only the `xml` prefix may name the XML namespace, and no element
        // is defined in it.
        if ns == XML_NAMESPACE {
            return Err(self.malformed(format!("no element is in the namespace {XML_NAMESPACE}")));
        }
        let local = start.local_name().into_inner();
        let mut el = Element::new(QName::new(ns, local));
        for attr in start.attributes() {
            let attr = attr.map_err(|e| self.malformed(e.to_string()))?;
            let key = attr.key;
            if key.as_namespace_binding().is_some() {
                continue;
            }
            check_name(key.into_inner()).map_err(|m| self.malformed(m))?;
            let (ans, alocal) = self.reader.resolver().resolve_attribute(key);
            let ans = match ans {
                ResolveResult::Bound(n) => self.namespace_name(n.0)?,
                ResolveResult::Unbound => String::new(),
                ResolveResult::Unknown(prefix) => {
                    return Err(XmlError::UnknownPrefix {
                        prefix,
                        offset: self.pos(),
                    })
                }
            };
            let value = attr
                .normalized_value_with(XmlVersion::Implicit1_0, 1, predefined_entity)
                .map_err(|e| map_quick_xml_error(e, self.pos()))?;
            if let Some(c) = value.chars().find(|&c| !is_xml_char(c)) {
                return Err(XmlError::ForbiddenChar {
                    code: c as u32,
                    offset: self.pos(),
                });
            }
            el.attrs.push(Attr {
                name: QName::new(ans, alocal.into_inner()),
                value: value.into_owned(),
            });
        }
        Ok(el)
    }

    /// A namespace name from its `xmlns` declaration as written. The name
    /// is the attribute's normalized value (Namespaces in XML §3, XML
    /// §3.3.3: `xmlns:X="a&amp;b"` names `a&b`), but quick-xml resolves
    /// prefixes to the raw text. Taken raw, a name holding `&amp;` or `&gt;`
    /// grew on every write-back of a dead property, and an undeclared entity
    /// or a forbidden character reference got through (found by fuzzing).
    fn namespace_name(&self, raw: &str) -> Result<String, XmlError> {
        let attr = Attribute {
            key: quick_xml::name::QName("xmlns"),
            value: raw.into(),
        };
        let value = attr
            .normalized_value_with(XmlVersion::Implicit1_0, 1, predefined_entity)
            .map_err(|e| map_quick_xml_error(e, self.pos()))?;
        if let Some(c) = value.chars().find(|&c| !is_xml_char(c)) {
            return Err(XmlError::ForbiddenChar {
                code: c as u32,
                offset: self.pos(),
            });
        }
        // Namespaces in XML 1.0 §3: no prefix may be bound to the xmlns
        // namespace (and nothing could be written back in it).
        if value == XMLNS_NAMESPACE {
            return Err(self.malformed(format!("the namespace {XMLNS_NAMESPACE} is reserved")));
        }
        Ok(value.into_owned())
    }

    fn close(&mut self, el: Element) -> Result<(), XmlError> {
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(Node::Element(el)),
            None => self.root = Some(el),
        }
        Ok(())
    }

    fn text(&mut self, s: &str) -> Result<(), XmlError> {
        match self.stack.last_mut() {
            None => {
                if s.trim().is_empty() {
                    Ok(())
                } else {
                    Err(self.malformed("text outside the root element"))
                }
            }
            Some(el) => {
                if let Some(Node::Text(t)) = el.children.last_mut() {
                    t.push_str(s);
                } else {
                    el.children.push(Node::Text(s.to_string()));
                }
                Ok(())
            }
        }
    }
}

fn predefined_entity(name: &str) -> Option<&'static str> {
    match name {
        "lt" => Some("<"),
        "gt" => Some(">"),
        "amp" => Some("&"),
        "apos" => Some("'"),
        "quot" => Some("\""),
        _ => None,
    }
}

/// Element and attribute names must be XML names (`prefix:local` at most),
/// so nothing read here can break the markup it is later written into.
fn check_name(name: &str) -> Result<(), String> {
    let mut parts = name.split(':');
    let ok = |p: &str| {
        let mut chars = p.chars();
        match chars.next() {
            Some(c) if c.is_alphabetic() || c == '_' || !c.is_ascii() => {}
            _ => return false,
        }
        chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.') || !c.is_ascii())
    };
    let first = parts.next().unwrap_or("");
    let second = parts.next();
    let valid = parts.next().is_none()
        && ok(first)
        && second.is_none_or(ok)
        && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(format!("invalid XML name {name:?}"))
    }
}

fn map_quick_xml_error(e: quick_xml::Error, offset: u64) -> XmlError {
    use quick_xml::escape::EscapeError;
    match e {
        quick_xml::Error::Escape(EscapeError::UnrecognizedEntity(_, name)) => {
            XmlError::Entity { name, offset }
        }
        quick_xml::Error::Namespace(quick_xml::name::NamespaceError::UnknownPrefix(prefix)) => {
            XmlError::UnknownPrefix { prefix, offset }
        }
        other => XmlError::Malformed {
            offset,
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run-copying escaper agrees with escaping one character at a time.
    #[test]
    fn escaping_agrees_with_the_per_character_rule() {
        fn reference(s: &str) -> String {
            let mut out = String::new();
            for c in s.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '\r' => out.push_str("&#13;"),
                    c if is_xml_char(c) => out.push(c),
                    _ => {}
                }
            }
            out
        }
        let samples = [
            "",
            "plain",
            "BEGIN:VCALENDAR\r\nSUMMARY:a & b <c> ]]>\r\n",
            "\u{0}\u{1}\t\n\u{1f} x",
            "caf\u{e9} \u{fffe}\u{ffff}\u{fffd}\u{f000}\u{1f600}",
            "\u{ef}\u{ff}",
        ];
        for s in samples {
            assert_eq!(escape_text(s), reference(s), "{s:?}");
        }
        proptest::proptest!(|(s in "\\PC*|[\\x00-\\x7f\\u{fff0}-\\u{ffff}]*")| {
            proptest::prop_assert_eq!(escape_text(&s), reference(&s));
        });
    }
    use crate::dav::name::{names, NS_CALDAV, NS_DAV};

    fn err(input: &str) -> XmlError {
        parse(input.as_bytes()).expect_err("should be refused")
    }

    #[test]
    fn resolves_arbitrary_prefixes_and_default_namespace() {
        let a = parse(br#"<A:propfind xmlns:A="DAV:"><A:prop><A:getetag/></A:prop></A:propfind>"#)
            .unwrap();
        let b = parse(br#"<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>"#).unwrap();
        assert_eq!(a, b);
        assert!(a.is(&names::PROPFIND));
        assert!(a
            .child(&names::PROP)
            .unwrap()
            .child(&names::GETETAG)
            .is_some());
    }

    #[test]
    fn text_predefined_entities_and_char_refs() {
        let e =
            parse(b"<a xmlns='DAV:'>x &lt;&amp;&gt; &#65;&#x42; &quot;&apos;<![CDATA[<c>]]></a>")
                .unwrap();
        assert_eq!(e.text(), "x <&> AB \"'<c>");
        assert_eq!(e.children.len(), 1, "adjacent text merged");
    }

    #[test]
    fn attributes_resolve_namespaces_and_entities() {
        let e = parse(br#"<C:comp xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:x="urn:x" name="V&amp;E" x:y="1"/>"#)
            .unwrap();
        assert_eq!(e.name, QName::new(NS_CALDAV, "comp"));
        assert_eq!(e.attr("name"), Some("V&E"));
        assert_eq!(e.attrs[1].name, QName::new("urn:x", "y"));
        assert_eq!(e.attrs.len(), 2, "xmlns declarations are not attributes");
    }

    #[test]
    fn namespace_names_are_unescaped_and_survive_to_xml() {
        let e =
            parse(br#"<x:a xmlns:x="urn:a&amp;b&gt;c" xmlns:y="urn:&#x79;" y:k="v"/>"#).unwrap();
        assert_eq!(e.name, QName::new("urn:a&b>c", "a"));
        assert_eq!(e.attrs[0].name, QName::new("urn:y", "k"));
        let again = parse(e.to_xml().as_bytes()).unwrap();
        assert_eq!(again, e);
        assert!(matches!(
            err(r#"<x:a xmlns:x="urn:&bogus;"/>"#),
            XmlError::Entity { .. } | XmlError::Malformed { .. }
        ));
        assert!(matches!(
            err(r#"<a xmlns="urn:&#1;"/>"#),
            XmlError::ForbiddenChar { code: 1, .. }
        ));
    }

    #[test]
    fn reserved_namespaces_are_refused() {
        for doc in [
            r#"<a xmlns="http://www.w3.org/2000/xmlns/"/>"#,
            r#"<x:a xmlns:x="http://www.w3.org/2000/xmlns/"/>"#,
            r#"<a xmlns:x="http://www.w3.org/2000/xmlns/" x:k="v"/>"#,
            r#"<x:a xmlns:x="http://www.w3.org/XML/1998/namespace"/>"#,
        ] {
            assert!(matches!(err(doc), XmlError::Malformed { .. }), "{doc}");
        }
        let e = parse(br#"<a xml:lang="de"/>"#).unwrap();
        assert_eq!(e.attrs.len(), 1);
    }

    #[test]
    fn doctype_is_refused_even_harmless() {
        assert!(matches!(err("<!DOCTYPE a><a/>"), XmlError::Doctype { .. }));
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><lolz>&lol2;</lolz>"#;
        assert!(matches!(err(laughs), XmlError::Doctype { .. }));
    }

    #[test]
    fn undeclared_entities_are_refused_in_text_and_attributes() {
        assert_eq!(
            err("<a>&xxe;</a>"),
            XmlError::Entity {
                name: "xxe".into(),
                offset: 3
            }
        );
        assert!(matches!(err("<a b='&xxe;'/>"), XmlError::Entity { name, .. } if name == "xxe"));
    }

    #[test]
    fn processing_instructions_are_refused() {
        assert!(matches!(
            err("<?xml version='1.0'?><?xml-stylesheet href='x'?><a/>"),
            XmlError::ProcessingInstruction { target, .. } if target == "xml-stylesheet"
        ));
        assert!(matches!(
            err("<a/><?php x?>"),
            XmlError::ProcessingInstruction { .. }
        ));
        assert!(matches!(
            err(" <a/><?xml version='1.0'?>"),
            XmlError::Malformed { .. }
        ));
    }

    #[test]
    fn depth_limit() {
        let ok = format!("{}{}", "<a>".repeat(64), "</a>".repeat(64));
        assert!(parse(ok.as_bytes()).is_ok());
        let deep = format!("{}{}", "<a>".repeat(65), "</a>".repeat(65));
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(XmlError::TooDeep { limit: 64, .. })
        ));
        let hostile = "<a>".repeat(10_000);
        assert!(matches!(
            parse(hostile.as_bytes()),
            Err(XmlError::TooDeep { .. })
        ));
    }

    #[test]
    fn element_count_and_size_limits() {
        let limits = Limits {
            max_elements: 10,
            ..Limits::default()
        };
        let body = format!("<a>{}</a>", "<b/>".repeat(10));
        assert!(matches!(
            parse_with(body.as_bytes(), &limits),
            Err(XmlError::TooManyElements { limit: 10 })
        ));
        let limits = Limits {
            max_bytes: 8,
            ..Limits::default()
        };
        assert!(matches!(
            parse_with(b"<a></a>  ", &limits),
            Err(XmlError::TooLarge { size: 9, limit: 8 })
        ));
    }

    #[test]
    fn encodings() {
        assert!(matches!(
            parse(b"<a>\xff</a>"),
            Err(XmlError::NotUtf8 { offset: 3 })
        ));
        assert!(matches!(
            parse(b"\xff\xfe<\0a\0/\0>\0"),
            Err(XmlError::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            err("<?xml version='1.0' encoding='ISO-8859-1'?><a/>"),
            XmlError::UnsupportedEncoding(e) if e == "ISO-8859-1"
        ));
        assert!(parse("\u{feff}<?xml version='1.0' encoding='UTF-8'?><a/>".as_bytes()).is_ok());
    }

    #[test]
    fn forbidden_characters() {
        assert!(matches!(
            err("<a>\u{1}</a>"),
            XmlError::ForbiddenChar { code: 1, offset: 3 }
        ));
        assert!(matches!(
            err("<a>&#1;</a>"),
            XmlError::ForbiddenChar { code: 1, .. }
        ));
        assert!(matches!(err("<a>&#0;</a>"), XmlError::Malformed { .. }));
        assert!(matches!(err("<a>]]></a>"), XmlError::Malformed { .. }));
    }

    #[test]
    fn malformed_documents() {
        for bad in [
            "<a>",
            "<a><b></a>",
            "</a>",
            "<a/><b/>",
            "text<a/>",
            "<a></a>tail",
            "<a b='1' b='2'/>",
            "<a b=1/>",
            "<x:a/>",
            "<a><!-- a -- b --></a>",
            "<1a/>",
            "<a",
            "   ",
        ] {
            let e = parse(bad.as_bytes());
            assert!(e.is_err(), "{bad:?} was accepted: {e:?}");
        }
        assert!(matches!(err("<x:a/>"), XmlError::UnknownPrefix { prefix, .. } if prefix == "x"));
        assert_eq!(err("  "), XmlError::Empty);
        assert!(parse_optional(b" \r\n").unwrap().is_none());
    }

    #[test]
    fn inner_xml_is_self_contained() {
        let e = parse(
            br#"<D:prop xmlns:D="DAV:" xmlns:X="urn:x"><X:color a="1&quot;" xml:lang="en">#FF<b xmlns="">&lt;&#13;</b></X:color></D:prop>"#,
        )
        .unwrap();
        let inner = e.inner_xml();
        assert_eq!(
            inner,
            r#"<color xmlns="urn:x" a="1&quot;" xml:lang="en">#FF<b xmlns="">&lt;&#13;</b></color>"#
        );
        let back = parse(inner.as_bytes()).unwrap();
        assert_eq!(&back, e.elements().next().unwrap());
        let _ = NS_DAV;
    }

    #[test]
    fn escaping_strips_what_xml_cannot_carry() {
        assert_eq!(
            escape_text("a]]>b<&\u{1}\u{fffe}\r\n"),
            "a]]&gt;b&lt;&amp;&#13;\n"
        );
        let mut s = String::new();
        escape_attr_into("\"\t\n", &mut s);
        assert_eq!(s, "&quot;&#9;&#10;");
    }
}
