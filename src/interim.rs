//! Stand-ins for the ics engine's values, zones and recurrence while that
//! engine is being written on its own branch. Every use goes away when it
//! merges; nothing else may depend on this module.

use crate::ics::{Component, Property};

/// One content line (`NAME;PARAMS:value`) parsed into a property.
pub fn parse_property_line(line: &str) -> Result<Property, crate::ics::IcsError> {
    let text = format!(
        "BEGIN:X\r\n{}\r\nEND:X\r\n",
        line.trim_end_matches(['\r', '\n'])
    );
    let mut roots = crate::ics::parse_all(text.as_bytes())?;
    let mut c = roots
        .pop()
        .ok_or_else(|| crate::ics::IcsError::Invalid("empty".into()))?;
    if c.props.len() != 1 || !c.children.is_empty() {
        return Err(crate::ics::IcsError::Invalid(format!(
            "not one content line: {line:?}"
        )));
    }
    Ok(c.props.remove(0))
}

/// A VTIMEZONE for an IANA zone (none until the engine lands).
pub fn vtimezone_for(_iana: &str) -> Option<Component> {
    None
}

/// The end of a recurring series if it is bounded (unknown until the
/// engine lands: treated as unbounded).
pub fn series_end_hint(_master: &Component, _first: &(i64, i64)) -> Option<i64> {
    None
}

/// Windows zone name → IANA (CLDR table).
pub fn windows_to_iana(name: &str) -> Option<&'static str> {
    let t = crate::ics::windows_zones::WINDOWS_TO_IANA;
    t.binary_search_by(|(w, _)| (*w).cmp(name))
        .ok()
        .map(|i| t[i].1)
}

/// IANA → Windows zone name (CLDR table).
pub fn iana_to_windows(name: &str) -> Option<&'static str> {
    let t = crate::ics::windows_zones::IANA_TO_WINDOWS;
    t.binary_search_by(|(i, _)| (*i).cmp(name))
        .ok()
        .map(|i| t[i].1)
}

/// Instance starts (UTC seconds) of an RRULE series within `[from, to)`
/// (unknown until the engine lands: none).
pub fn instance_starts(
    _rrule: &str,
    _dtstart: &Property,
    _from: i64,
    _to: i64,
) -> Option<Vec<i64>> {
    None
}
