//! iCalendar (RFC 5545): a lossless component tree, its parser and serializer,
//! and (in the submodules) values, time zones and recurrence.
//!
//! Everything here is pure: no I/O, no tokio, no store. Parsing keeps every
//! component, property, parameter and value in order and as written; only
//! what carries no meaning is normalised (folding, line ends, the letter
//! case of names, stray spaces around names and parameter values, NUL and
//! other control bytes that no value may hold), so `serialize(parse(x))`
//! parses back to the same tree. Values stay in their escaped wire form;
//! [`text`] decodes TEXT values on demand. Keep the raw bytes where they
//! matter (ETags): the serializer re-folds and quotes as RFC 5545 says.
//!
//! Layout:
//! - this file: [`Component`], [`Property`], [`Param`], [`parse`], [`serialize`];
//! - [`text`]: TEXT escaping and unescaping;
//! - [`value`]: DATE / DATE-TIME, DURATION, PERIOD, EXDATE / RDATE lists;
//! - [`tz`]: TZID resolution (IANA, Windows, Outlook, VTIMEZONE) and
//!   wall-clock <-> UTC;
//! - [`vtimezone`]: VTIMEZONE generation for IANA zones;
//! - [`rrule`]: RRULE parsing and bounded iteration;
//! - [`recur`]: instances of a calendar object (RRULE + RDATE − EXDATE +
//!   overrides), CalDAV expand and limit-recurrence-set;
//! - [`object`]: CalDAV calendar object resource validation;
//! - [`windows_zones`]: the CLDR Windows <-> IANA zone table (generated).
//!
//! Invariants: nothing here does I/O or imports tokio, hyper, axum or the
//! store; no input makes these functions panic or run unbounded.

pub mod object;
pub mod recur;
pub mod rrule;
pub mod text;
pub mod tz;
pub mod value;
pub mod vtimezone;
pub mod windows_zones;

use std::fmt;

/// Deepest component nesting accepted (VCALENDAR > VEVENT > VALARM is 3).
/// Real files never go past 4; a bound keeps hostile input from recursing.
pub const MAX_DEPTH: usize = 16;

/// Longest unfolded content line accepted, in bytes.
pub const MAX_LINE: usize = 1 << 20;

/// Why an iCalendar object was refused. The message names the problem and,
/// where there is one, the line it was found on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcsError {
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl IcsError {
    fn syntax(line: usize, message: impl Into<String>) -> Self {
        IcsError::Syntax {
            line,
            message: message.into(),
        }
    }
}

/// A property parameter: `NAME=value[,value...]`, values without quotes and
/// with RFC 6868 `^` escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Upper-cased name.
    pub name: String,
    pub values: Vec<String>,
}

impl Param {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Param {
            name: name.into().to_ascii_uppercase(),
            values: vec![value.into()],
        }
    }

    /// The first value (most parameters have exactly one).
    pub fn value(&self) -> &str {
        self.values.first().map(String::as_str).unwrap_or("")
    }
}

/// One content line: `NAME;PARAM=...:value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// Upper-cased name.
    pub name: String,
    pub params: Vec<Param>,
    /// The value as written (TEXT values still escaped).
    pub value: String,
}

impl Property {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Property {
            name: name.into().to_ascii_uppercase(),
            params: Vec::new(),
            value: value.into(),
        }
    }

    /// A TEXT property from plain text (escaped here).
    pub fn text(name: impl Into<String>, plain: &str) -> Self {
        Property::new(name, text::escape(plain))
    }

    pub fn with_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push(Param::new(name, value));
        self
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(Param::value)
    }

    pub fn set_param(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .params
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            Some(p) => p.values = vec![value],
            None => self.params.push(Param::new(name, value)),
        }
    }

    pub fn remove_param(&mut self, name: &str) {
        self.params.retain(|p| !p.name.eq_ignore_ascii_case(name));
    }

    /// The value decoded as TEXT (unescaped).
    pub fn text_value(&self) -> String {
        text::unescape(&self.value)
    }
}

/// A component (`BEGIN:NAME` … `END:NAME`) with its properties in order and
/// its sub-components in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Component {
    /// Upper-cased name.
    pub name: String,
    pub props: Vec<Property>,
    pub children: Vec<Component>,
}

impl Component {
    pub fn new(name: impl Into<String>) -> Self {
        Component {
            name: name.into().to_ascii_uppercase(),
            props: Vec::new(),
            children: Vec::new(),
        }
    }

    /// The first property with this name.
    pub fn prop(&self, name: &str) -> Option<&Property> {
        self.props
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    pub fn prop_mut(&mut self, name: &str) -> Option<&mut Property> {
        self.props
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Every property with this name, in order.
    pub fn props_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Property> + 'a {
        self.props
            .iter()
            .filter(move |p| p.name.eq_ignore_ascii_case(name))
    }

    /// The value of the first property with this name, as written.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.prop(name).map(|p| p.value.as_str())
    }

    /// Replace every property of this name with `prop`.
    pub fn set(&mut self, prop: Property) {
        let name = prop.name.clone();
        match self.props.iter().position(|p| p.name == name) {
            Some(i) => {
                self.props[i] = prop;
                let mut j = 0;
                self.props.retain(|p| {
                    j += 1;
                    j - 1 == i || p.name != name
                });
            }
            None => self.props.push(prop),
        }
    }

    pub fn push(&mut self, prop: Property) {
        self.props.push(prop);
    }

    pub fn remove(&mut self, name: &str) {
        self.props.retain(|p| !p.name.eq_ignore_ascii_case(name));
    }

    /// Direct sub-components with this name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Component> + 'a {
        self.children
            .iter()
            .filter(move |c| c.name.eq_ignore_ascii_case(name))
    }

    /// Serialize this component (and its children) as folded content lines.
    pub fn to_ics(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        write_component(self, &mut out);
        out
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_ics()))
    }
}

/// Parse exactly one top-level component (normally VCALENDAR).
pub fn parse(input: &[u8]) -> Result<Component, IcsError> {
    let mut all = parse_all(input)?;
    match all.len() {
        0 => Err(IcsError::Invalid("no BEGIN:VCALENDAR found".into())),
        1 => Ok(all.pop().expect("one")),
        n => Err(IcsError::Invalid(format!(
            "{n} top-level components; exactly one VCALENDAR is expected"
        ))),
    }
}

/// Parse every top-level component of a stream (some exports concatenate
/// several VCALENDARs).
///
/// Lenient where real software is sloppy but the meaning is certain: a BOM,
/// LF or bare CR line ends, NUL bytes (dropped: RFC 5545 allows none, and
/// some Exchange exports pad TZIDs with them), blank lines (also inside a
/// fold, as old Mozilla Calendar wrote), lower-case names, spaces around
/// names, around `-` inside a name and around parameter values, parameters
/// without a value, backslash-escaped `;` `,` `:` inside an unquoted
/// parameter value (Apple's X-APPLE-STRUCTURED-LOCATION). Refused, with the
/// line number: anything else that is not `NAME[;PARAM=...]:value`,
/// unbalanced BEGIN/END, properties outside a component, non-UTF-8 input.
/// Linear in the input; never panics.
pub fn parse_all(input: &[u8]) -> Result<Vec<Component>, IcsError> {
    let text = decode(input)?;
    let lines = physical_lines(&text);
    let mut roots = Vec::new();
    let mut stack: Vec<Component> = Vec::new();
    for (line_no, line) in unfold(&lines) {
        let line = line?;
        let prop = parse_line(&line, line_no)?;
        match prop.name.as_str() {
            "BEGIN" => {
                let name = prop.value.trim();
                if !is_name(name) {
                    return Err(IcsError::syntax(line_no, "BEGIN without a component name"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(IcsError::syntax(line_no, "components nested too deeply"));
                }
                stack.push(Component::new(name));
            }
            "END" => {
                let name = prop.value.trim().to_ascii_uppercase();
                let Some(done) = stack.pop() else {
                    return Err(IcsError::syntax(
                        line_no,
                        format!("END:{name} without a matching BEGIN"),
                    ));
                };
                if done.name != name {
                    return Err(IcsError::syntax(
                        line_no,
                        format!("END:{name} closes BEGIN:{}", done.name),
                    ));
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => roots.push(done),
                }
            }
            _ => match stack.last_mut() {
                Some(c) => c.props.push(prop),
                None => {
                    let where_ = match roots.last() {
                        Some(last) => format!("after END:{}", last.name),
                        None => "before any BEGIN".to_string(),
                    };
                    return Err(IcsError::syntax(
                        line_no,
                        format!("property {} {where_}, outside of any component", prop.name),
                    ));
                }
            },
        }
    }
    if let Some(open) = stack.last() {
        return Err(IcsError::Invalid(format!(
            "BEGIN:{} is never closed (truncated file?)",
            open.name
        )));
    }
    Ok(roots)
}

/// The input as text: UTF-8 without BOM and without NUL bytes.
fn decode(input: &[u8]) -> Result<std::borrow::Cow<'_, str>, IcsError> {
    use std::borrow::Cow;
    let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    let bytes: Cow<'_, [u8]> = if input.contains(&0) {
        Cow::Owned(input.iter().copied().filter(|b| *b != 0).collect())
    } else {
        Cow::Borrowed(input)
    };
    let not_utf8 = |bytes: &[u8], e: std::str::Utf8Error| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        IcsError::syntax(
            line,
            format!(
                "not UTF-8 (byte 0x{:02X} at offset {at}); iCalendar text must be UTF-8",
                bytes[at]
            ),
        )
    };
    match bytes {
        Cow::Borrowed(b) => std::str::from_utf8(b)
            .map(Cow::Borrowed)
            .map_err(|e| not_utf8(b, e)),
        Cow::Owned(v) => match std::str::from_utf8(&v) {
            Ok(_) => Ok(Cow::Owned(String::from_utf8(v).expect("checked"))),
            Err(e) => Err(not_utf8(&v, e)),
        },
    }
}

/// Physical lines: split on CRLF, LF or a bare CR (old Mac exports).
fn physical_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::with_capacity(text.len() / 40 + 1);
    for l in text.split('\n') {
        let l = l.strip_suffix('\r').unwrap_or(l);
        lines.extend(l.split('\r'));
    }
    lines
}

fn is_continuation(l: &str) -> bool {
    l.starts_with([' ', '\t'])
}

/// Logical lines (unfolded), each with the 1-based number of its first
/// physical line. Blank lines are skipped, also between a line and its
/// continuation.
fn unfold<'a>(
    lines: &'a [&'a str],
) -> impl Iterator<Item = (usize, Result<String, IcsError>)> + 'a {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < lines.len() && lines[i].trim().is_empty() {
            i += 1;
        }
        let first = *lines.get(i)?;
        let no = i + 1;
        i += 1;
        let mut line = first.to_string();
        loop {
            let mut j = i;
            while j < lines.len() && lines[j].is_empty() {
                j += 1;
            }
            match lines.get(j) {
                Some(next) if is_continuation(next) => {
                    line.push_str(&next[1..]);
                    i = j + 1;
                    if line.len() > MAX_LINE {
                        i = lines.len();
                        return Some((no, Err(IcsError::syntax(no, "content line too long"))));
                    }
                }
                _ => break,
            }
        }
        Some((no, Ok(line)))
    })
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A property or parameter name with stray spaces removed (`REFRESH -
/// INTERVAL`), if what is left is a name; spaces inside a word are not
/// stray, so `Room 4350` stays refused.
fn clean_name(raw: &str) -> Option<String> {
    let t = raw.trim();
    if is_name(t) {
        return Some(t.to_ascii_uppercase());
    }
    let joined = t.split('-').map(str::trim).collect::<Vec<_>>().join("-");
    is_name(&joined).then(|| joined.to_ascii_uppercase())
}

fn shown(line: &str) -> String {
    let mut s: String = line.chars().take(40).collect();
    if s.len() < line.len() {
        s.push('…');
    }
    s
}

/// Parse one unfolded content line.
fn parse_line(line: &str, line_no: usize) -> Result<Property, IcsError> {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() && bytes[i] != b';' && bytes[i] != b':' {
        i += 1;
    }
    let Some(name) = clean_name(&line[..i]) else {
        return Err(IcsError::syntax(
            line_no,
            if i == bytes.len() {
                format!(
                    "not a content line (no ':'; a line break inside a value?): {:?}",
                    shown(line)
                )
            } else {
                format!(
                    "not a content line (expected NAME:value): {:?}",
                    shown(line)
                )
            },
        ));
    };
    let mut prop = Property {
        name,
        params: Vec::new(),
        value: String::new(),
    };
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && matches!(bytes[*i], b' ' | b'\t') {
            *i += 1;
        }
    };
    while i < bytes.len() && bytes[i] == b';' {
        i += 1;
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b';' && bytes[i] != b':' {
            i += 1;
        }
        let raw_name = &line[start..i];
        let Some(pname) = clean_name(raw_name) else {
            return Err(IcsError::syntax(
                line_no,
                format!(
                    "malformed parameter name {:?} in {}",
                    raw_name.trim(),
                    prop.name
                ),
            ));
        };
        if i >= bytes.len() || bytes[i] != b'=' {
            // A parameter without a value (e.g. Outlook's bare "ENCODING").
            prop.params.push(Param {
                name: pname,
                values: Vec::new(),
            });
            continue;
        }
        i += 1; // '='
        let mut values = Vec::new();
        loop {
            skip_ws(&mut i);
            if i < bytes.len() && bytes[i] == b'"' {
                let start = i + 1;
                let Some(len) = line[start..].find('"') else {
                    return Err(IcsError::syntax(
                        line_no,
                        format!(
                            "unterminated quoted value of parameter {pname} in {}",
                            prop.name
                        ),
                    ));
                };
                values.push(decode_param(&line[start..start + len]));
                i = start + len + 1;
                skip_ws(&mut i);
            } else {
                let start = i;
                while i < bytes.len() && !matches!(bytes[i], b',' | b';' | b':') {
                    // `\;` from writers that TEXT-escape parameter values.
                    if bytes[i] == b'\\' && matches!(bytes.get(i + 1), Some(b',' | b';' | b':')) {
                        i += 1;
                    }
                    i += 1;
                }
                values.push(decode_param(line[start..i].trim_end_matches([' ', '\t'])));
            }
            if i < bytes.len() && bytes[i] == b',' {
                i += 1;
                continue;
            }
            break;
        }
        prop.params.push(Param {
            name: pname,
            values,
        });
    }
    if i >= bytes.len() && prop.params.is_empty() {
        return Err(IcsError::syntax(
            line_no,
            format!(
                "not a content line (no ':'; a line break inside a value?): {:?}",
                shown(line)
            ),
        ));
    }
    if i >= bytes.len() || bytes[i] != b':' {
        return Err(IcsError::syntax(
            line_no,
            format!(
                "{} has no ':' before its value: {:?}",
                prop.name,
                shown(line)
            ),
        ));
    }
    prop.value = line[i + 1..].to_string();
    Ok(prop)
}

/// RFC 6868: `^n` newline, `^'` double quote, `^^` caret. Control
/// characters other than TAB are dropped (the writer cannot write them).
fn decode_param(raw: &str) -> String {
    if !raw.contains('^') && !raw.contains(|c: char| c.is_control() && c != '\t') {
        return raw.to_string();
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '^' {
            match chars.peek() {
                Some('n') | Some('N') => {
                    out.push('\n');
                    chars.next();
                }
                Some('\'') => {
                    out.push('"');
                    chars.next();
                }
                Some('^') => {
                    out.push('^');
                    chars.next();
                }
                _ => out.push('^'),
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out
}

fn write_param_value(v: &str, out: &mut String) {
    // Quote what an unquoted value cannot hold, and what the lenient
    // reader would otherwise trim or read as an escape.
    let needs_quotes =
        v.contains([';', ':', ',', '\\']) || v.starts_with([' ', '\t']) || v.ends_with([' ', '\t']);
    let encoded: String = if v.contains(['^', '"', '\n', '\r']) {
        let mut s = String::with_capacity(v.len() + 4);
        for c in v.chars() {
            match c {
                '^' => s.push_str("^^"),
                '"' => s.push_str("^'"),
                '\n' => s.push_str("^n"),
                '\r' => {}
                c if c.is_control() && c != '\t' => {}
                c => s.push(c),
            }
        }
        s
    } else {
        v.chars()
            .filter(|c| !c.is_control() || *c == '\t')
            .collect()
    };
    if needs_quotes {
        out.push('"');
        out.push_str(&encoded);
        out.push('"');
    } else {
        out.push_str(&encoded);
    }
}

/// Write one content line, folded at 75 octets without splitting a UTF-8
/// character, terminated by CRLF.
pub fn write_property(p: &Property, out: &mut Vec<u8>) {
    let mut line = String::with_capacity(p.name.len() + p.value.len() + 16);
    line.push_str(&p.name);
    for param in &p.params {
        line.push(';');
        line.push_str(&param.name);
        if !param.values.is_empty() {
            line.push('=');
            for (k, v) in param.values.iter().enumerate() {
                if k > 0 {
                    line.push(',');
                }
                write_param_value(v, &mut line);
            }
        }
    }
    line.push(':');
    // A value never carries a raw line break: one that reached here from code
    // (not from the parser, which splits on them) is escaped, so no value can
    // forge a content line.
    if p.value.contains(['\r', '\n']) {
        line.push_str(&p.value.replace("\r\n", "\\n").replace(['\r', '\n'], "\\n"));
    } else {
        line.push_str(&p.value);
    }
    fold_into(&line, out);
}

/// Fold a logical line at 75 octets (continuations start with one space that
/// counts toward the 75) and append it with CRLF.
pub fn fold_into(line: &str, out: &mut Vec<u8>) {
    const LIMIT: usize = 75;
    let bytes = line.as_bytes();
    let mut start = 0;
    let mut first = true;
    while start < bytes.len() {
        let room = if first { LIMIT } else { LIMIT - 1 };
        let mut end = (start + room).min(bytes.len());
        while end < bytes.len() && !line.is_char_boundary(end) {
            end -= 1;
        }
        if !first {
            out.push(b' ');
        }
        out.extend_from_slice(&bytes[start..end]);
        out.extend_from_slice(b"\r\n");
        start = end;
        first = false;
    }
    if bytes.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
}

fn write_component(c: &Component, out: &mut Vec<u8>) {
    out.extend_from_slice(b"BEGIN:");
    out.extend_from_slice(c.name.as_bytes());
    out.extend_from_slice(b"\r\n");
    for p in &c.props {
        write_property(p, out);
    }
    for child in &c.children {
        write_component(child, out);
    }
    out.extend_from_slice(b"END:");
    out.extend_from_slice(c.name.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Serialize a component tree.
pub fn serialize(c: &Component) -> Vec<u8> {
    c.to_ics()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:a@b\r\nDTSTAMP:20240101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20240105T090000\r\nSUMMARY:Caf\u{e9} \\, meeting\r\n with a fold\r\nATTENDEE;DELEGATED-FROM=\"mailto:a@x\",\"mailto:b@x\";CN=\"Doe; Jane\":mailto:j@x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn parses_components_params_and_folds() {
        let cal = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(cal.name, "VCALENDAR");
        let ev = &cal.children[0];
        assert_eq!(ev.name, "VEVENT");
        assert_eq!(ev.value("SUMMARY"), Some("Café \\, meetingwith a fold"));
        assert_eq!(
            ev.prop("SUMMARY").unwrap().text_value(),
            "Café , meetingwith a fold"
        );
        let att = ev.prop("ATTENDEE").unwrap();
        assert_eq!(att.params[0].values, vec!["mailto:a@x", "mailto:b@x"]);
        assert_eq!(att.param("CN"), Some("Doe; Jane"));
        assert_eq!(att.value, "mailto:j@x");
        assert_eq!(
            ev.prop("DTSTART").unwrap().param("tzid"),
            Some("Europe/Berlin")
        );
    }

    #[test]
    fn round_trips() {
        let cal = parse(SAMPLE.as_bytes()).unwrap();
        let out = serialize(&cal);
        assert_eq!(parse(&out).unwrap(), cal);
    }

    #[test]
    fn folds_at_75_octets_without_splitting_characters() {
        let mut c = Component::new("VEVENT");
        c.push(Property::text("SUMMARY", &"é".repeat(100)));
        c.push(Property::new("DESCRIPTION", "x".repeat(300)));
        let out = c.to_ics();
        let text = String::from_utf8(out.clone()).expect("folding kept UTF-8 intact");
        for line in text.split("\r\n") {
            assert!(line.len() <= 75, "line of {} octets: {line:?}", line.len());
        }
        assert!(!text.replace("\r\n", "").contains('\n'));
        assert_eq!(parse_all(&out).unwrap()[0], c);
    }

    #[test]
    fn raw_newlines_in_values_cannot_forge_lines() {
        let mut c = Component::new("VEVENT");
        c.push(Property::new("SUMMARY", "x\r\nBEGIN:VEVENT\r\nUID:forged"));
        let out = c.to_ics();
        let back = parse_all(&out).unwrap();
        assert_eq!(back.len(), 1);
        assert!(back[0].children.is_empty());
        assert_eq!(back[0].props.len(), 1);
    }

    #[test]
    fn rfc6868_parameter_escapes() {
        let line = "ATTENDEE;CN=\"a ^'b^' ^^ c^nd\":mailto:x@y";
        let p = parse_line(line, 1).unwrap();
        assert_eq!(p.param("CN"), Some("a \"b\" ^ c\nd"));
        let mut out = Vec::new();
        write_property(&p, &mut out);
        assert_eq!(
            parse_line(std::str::from_utf8(&out).unwrap().trim_end(), 1).unwrap(),
            p
        );
    }

    #[test]
    fn accepts_lf_only_and_bom() {
        let lf = format!("\u{feff}{}", SAMPLE.replace("\r\n", "\n"));
        assert_eq!(
            parse(lf.as_bytes()).unwrap(),
            parse(SAMPLE.as_bytes()).unwrap()
        );
    }

    #[test]
    fn lenient_where_the_meaning_is_certain() {
        // Mozilla Calendar 0.x: a blank line inside each fold.
        let moz = "BEGIN:VCALENDAR\nVERSION\n\n :2.0\nBEGIN:VEVENT\nDTSTART\n\n ;VALUE=DATE\n :20031225\nEND:VEVENT\nEND:VCALENDAR\n";
        let cal = parse(moz.as_bytes()).unwrap();
        assert_eq!(cal.value("VERSION"), Some("2.0"));
        let dtstart = cal.children[0].prop("DTSTART").unwrap();
        assert_eq!(
            (dtstart.param("VALUE"), dtstart.value.as_str()),
            (Some("DATE"), "20031225")
        );
        // Stray spaces around a name's dashes and a parameter's '='.
        let p = parse_line("REFRESH - INTERVAL; VALUE = DURATION :PT48H", 1).unwrap();
        assert_eq!(
            (p.name.as_str(), p.param("VALUE"), p.value.as_str()),
            ("REFRESH-INTERVAL", Some("DURATION"), "PT48H")
        );
        // Apple escapes ';' inside an unquoted parameter value.
        let p = parse_line("X-APPLE-STRUCTURED-LOCATION;VALUE=URI;X-TITLE=Hauptstraße 1-5\\; 4041 Linz;X-APPLE-RADIUS=70:geo:48.3,14.2", 1).unwrap();
        assert_eq!(p.param("X-TITLE"), Some("Hauptstraße 1-5\\; 4041 Linz"));
        assert_eq!(p.param("X-APPLE-RADIUS"), Some("70"));
        assert_eq!(p.value, "geo:48.3,14.2");
        // A NUL-padded TZID (Exchange) reads, and round-trips, without NULs.
        let nul = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;TZID=Europe/Stockholm\0\0\0:20191121T110000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let cal = parse(nul.as_bytes()).unwrap();
        assert_eq!(
            cal.children[0].prop("DTSTART").unwrap().param("TZID"),
            Some("Europe/Stockholm")
        );
        assert_eq!(parse(&serialize(&cal)).unwrap(), cal);
    }

    #[test]
    fn parameter_values_survive_the_round_trip() {
        for value in [
            " leading",
            "trailing ",
            "back\\slash",
            "a;b",
            "quote\"d",
            "",
            "tab\tin",
            "ends with \\",
        ] {
            let mut c = Component::new("X");
            c.push(Property::new("X-P", "v").with_param("X-Q", value));
            let back = parse_all(&c.to_ics()).unwrap();
            assert_eq!(back[0], c, "{value:?}");
        }
    }

    #[test]
    fn refuses_broken_input_with_a_line_number() {
        let check = |input: &str, needle: &str| {
            let err = parse(input.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        };
        check(
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VCALENDAR\r\n",
            "line 3",
        );
        check("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n", "never closed");
        check(
            "BEGIN:VCALENDAR\r\nno colon here\r\nEND:VCALENDAR\r\n",
            "line 2",
        );
        check(
            "BEGIN:VCALENDAR\r\nLOCATION:Room\r\n4350 B\r\nEND:VCALENDAR\r\n",
            "line 3: not a content line",
        );
        check(
            "BEGIN:VCALENDAR\r\nORGANIZER;CN=Joe\r\nEND:VCALENDAR\r\n",
            "ORGANIZER has no ':'",
        );
        check(
            "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nX-COMMENT:x\r\n",
            "after END:VCALENDAR",
        );
        check(
            "BEGIN:VCALENDAR\r\nMeeting notes: bring laptop\r\nEND:VCALENDAR\r\n",
            "line 2: not a content line",
        );
        check("VERSION:2.0\r\n", "outside of any component");
        check("", "no BEGIN:VCALENDAR");
        check(
            "BEGIN:VCALENDAR\r\nX;P=\"open:1\r\nEND:VCALENDAR\r\n",
            "unterminated",
        );
        let deep = "BEGIN:X\r\n".repeat(40);
        check(&deep, "nested too deeply");
        assert!(parse(&[0xff, 0xfe, 0x00])
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
        let latin1 = b"BEGIN:VCALENDAR\r\nSUMMARY:M\xfcller\r\nEND:VCALENDAR\r\n";
        assert!(parse(latin1)
            .unwrap_err()
            .to_string()
            .starts_with("line 2: not UTF-8 (byte 0xFC"));
    }

    /// Property-test cases: `PROPTEST_CASES` when set (for long runs), else `n`.
    pub(crate) fn cases(n: u32) -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(n)
    }

    /// Lines an iCalendar mutator draws from: valid, sloppy and broken.
    const FRAGMENTS: &[&str] = &[
        "BEGIN:VCALENDAR",
        "END:VCALENDAR",
        "BEGIN:VEVENT",
        "END:VEVENT",
        "BEGIN:VALARM",
        "END:VALARM",
        "VERSION:2.0",
        "UID:x@y",
        "DTSTART;TZID=Europe/Berlin:20240101T090000",
        "SUMMARY:a\\, b",
        "ATTENDEE;CN=\"Doe; J\";ROLE=CHAIR:mailto:j@x",
        " folded tail",
        "\tTAB fold",
        "",
        "x-lower;p=1:v",
        "NAME",
        "A;B",
        "A;B=\"open:",
        "A;=x:y",
        ";:",
        ":",
        "REFRESH - INTERVAL;VALUE = DURATION:PT1H",
        "X-Q;X-T=a\\;b:c",
        "\u{0}",
        "é:ü",
        "RRULE:FREQ=SECONDLY",
        "END:X",
        "BEGIN:",
        "A;B=^n^'^^:v",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(cases(2000)))]

        /// Any bytes: never a panic; what is accepted round-trips.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            if let Ok(roots) = parse_all(&bytes) {
                let out: Vec<u8> = roots.iter().flat_map(serialize).collect();
                proptest::prop_assert_eq!(parse_all(&out).unwrap(), roots);
            }
        }

        /// Mixed valid, sloppy and broken lines with any line ends: accepted
        /// input round-trips, refused input says why.
        #[test]
        fn mutated_calendars_round_trip_or_are_refused(
            picks in proptest::collection::vec((0..FRAGMENTS.len(), 0..3usize), 0..40)
        ) {
            let mut text = String::new();
            for (i, eol) in picks {
                text.push_str(FRAGMENTS[i]);
                text.push_str(["\r\n", "\n", "\r"][eol]);
            }
            match parse_all(text.as_bytes()) {
                Ok(roots) => {
                    let out: Vec<u8> = roots.iter().flat_map(serialize).collect();
                    proptest::prop_assert_eq!(parse_all(&out).unwrap(), roots);
                }
                Err(e) => proptest::prop_assert!(!e.to_string().trim().is_empty()),
            }
        }
    }

    #[test]
    fn big_inputs_parse_in_linear_time() {
        use std::time::Instant;
        // One 1 MB folded value, 100k parameters, 100k properties.
        let long = format!(
            "BEGIN:X\r\nDESCRIPTION:{}\r\nEND:X\r\n",
            "abcdefghi\r\n ".repeat(100_000)
        );
        let params = format!(
            "BEGIN:X\r\nX-P{}:v\r\nEND:X\r\n",
            ";A=\"q\"".repeat(100_000)
        );
        let props = format!("BEGIN:X\r\n{}END:X\r\n", "SUMMARY:s\r\n".repeat(100_000));
        for input in [long, params, props] {
            let start = Instant::now();
            let c = parse(input.as_bytes()).unwrap();
            serialize(&c);
            assert!(start.elapsed().as_secs() < 5, "took {:?}", start.elapsed());
        }
        // Past the line limit: refused, not slow.
        let huge = format!(
            "BEGIN:X\r\nD:{}\r\nEND:X\r\n",
            "0123456789\r\n ".repeat(MAX_LINE / 10 + 10)
        );
        assert!(parse(huge.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("too long"));
    }
}
