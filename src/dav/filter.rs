//! Evaluating a calendar-query filter against one calendar object
//! (RFC 4791 §9.7): comp-filter nesting, is-not-defined, prop-filter,
//! param-filter and text-match with collations and negation.
//!
//! Owns the filter logic. Does not own time: whether a component or a
//! property overlaps a time range depends on recurrence expansion and time
//! zones, which live in [`crate::ics`]; the caller supplies that through
//! [`TimeRangeTest`]. Must not: load objects, expand recurrences itself, or
//! do I/O.

use crate::dav::request::{Collation, CompFilter, ParamFilter, PropFilter, TextMatch, TimeRange};
use crate::ics::{Component, Property};

/// Time-range answers the filter needs; implemented by the caller on top of
/// the `ics` recurrence engine.
pub trait TimeRangeTest {
    /// Whether the component at `path` overlaps `range` per RFC 4791 §9.9.
    ///
    /// `cal` is the whole calendar object (the VCALENDAR root, with every
    /// VTIMEZONE and every member of the recurrence set), `path` the child
    /// indices from the root to the component (`[2]` = `cal.children[2]`,
    /// `[2, 0]` = its first sub-component, e.g. a VALARM). For a recurring
    /// VEVENT/VTODO/VJOURNAL the answer covers its instances (the master's
    /// instances minus overridden ones, or the override's own instance);
    /// for a VALARM it is about the alarm's trigger times (§9.9); floating
    /// times are taken in the query's time zone.
    fn component_overlaps(&self, cal: &Component, path: &[usize], range: &TimeRange) -> bool;

    /// Whether a date or date-time property value (DTSTAMP, LAST-MODIFIED,
    /// COMPLETED, CREATED, ...) lies in `range`. Non-date values: `false`.
    fn property_overlaps(&self, prop: &Property, range: &TimeRange) -> bool;
}

/// Whether the calendar object `cal` (its VCALENDAR root) matches `filter`
/// (the root comp-filter of a calendar-query).
pub fn matches(cal: &Component, filter: &CompFilter, time: &dyn TimeRangeTest) -> bool {
    if !cal.name.eq_ignore_ascii_case(&filter.name) {
        return filter.is_not_defined;
    }
    if filter.is_not_defined {
        return false;
    }
    let mut path = Vec::new();
    comp_matches(cal, cal, &mut path, filter, time)
}

/// `comp` (at `path` in `root`) has the filter's name; do its tests pass?
fn comp_matches(
    root: &Component,
    comp: &Component,
    path: &mut Vec<usize>,
    filter: &CompFilter,
    time: &dyn TimeRangeTest,
) -> bool {
    if let Some(range) = &filter.time_range {
        if !time.component_overlaps(root, path, range) {
            return false;
        }
    }
    if !filter
        .prop_filters
        .iter()
        .all(|pf| prop_filter_matches(comp, pf, time))
    {
        return false;
    }
    filter.comp_filters.iter().all(|cf| {
        let mut named = comp
            .children
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name.eq_ignore_ascii_case(&cf.name));
        if cf.is_not_defined {
            return named.next().is_none();
        }
        named.any(|(i, child)| {
            path.push(i);
            let ok = comp_matches(root, child, path, cf, time);
            path.pop();
            ok
        })
    })
}

fn prop_filter_matches(comp: &Component, pf: &PropFilter, time: &dyn TimeRangeTest) -> bool {
    let mut props = comp.props_named(&pf.name);
    if pf.is_not_defined {
        return props.next().is_none();
    }
    props.any(|p| {
        pf.time_range
            .as_ref()
            .is_none_or(|r| time.property_overlaps(p, r))
            && pf
                .text_match
                .as_ref()
                .is_none_or(|tm| tm.matches(&p.text_value()))
            && pf.param_filters.iter().all(|f| param_filter_matches(p, f))
    })
}

fn param_filter_matches(prop: &Property, pf: &ParamFilter) -> bool {
    let param = prop
        .params
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(&pf.name));
    match param {
        None => pf.is_not_defined,
        Some(_) if pf.is_not_defined => false,
        Some(p) => pf
            .text_match
            .as_ref()
            .is_none_or(|tm| tm.matches(&p.values.join(","))),
    }
}

impl TextMatch {
    /// Substring match of `self.text` in `value` under the collation, then
    /// negated if asked (RFC 4791 §9.7.5). i;unicode-casemap is approximated
    /// by Unicode lower-casing (no normalisation).
    pub fn matches(&self, value: &str) -> bool {
        let found = match self.collation {
            Collation::Octet => value.contains(self.text.as_str()),
            Collation::AsciiCasemap => value
                .to_ascii_lowercase()
                .contains(&self.text.to_ascii_lowercase()),
            Collation::UnicodeCasemap => value.to_lowercase().contains(&self.text.to_lowercase()),
        };
        found != self.negate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dav::request::{parse_report, parse_utc, Report};

    /// A fake: components overlap when their DTSTART (UTC form only) is in
    /// the range; no recurrence. Records the paths it was asked about.
    struct FakeTime {
        asked: std::cell::RefCell<Vec<Vec<usize>>>,
    }

    impl FakeTime {
        fn new() -> FakeTime {
            FakeTime {
                asked: Default::default(),
            }
        }
    }

    fn at(c: &Component, path: &[usize]) -> Component {
        path.iter().fold(c.clone(), |c, &i| c.children[i].clone())
    }

    impl TimeRangeTest for FakeTime {
        fn component_overlaps(&self, cal: &Component, path: &[usize], range: &TimeRange) -> bool {
            self.asked.borrow_mut().push(path.to_vec());
            let comp = at(cal, path);
            comp.prop("DTSTART")
                .is_some_and(|p| self.property_overlaps(p, range))
        }

        fn property_overlaps(&self, prop: &Property, range: &TimeRange) -> bool {
            parse_utc(&prop.value)
                .map(|t| range.overlaps(t, t))
                .unwrap_or(false)
        }
    }

    const CAL: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n\
BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:1\r\nSUMMARY:Team Meeting\\, weekly\r\nDTSTART:20240305T090000Z\r\n\
ATTENDEE;PARTSTAT=ACCEPTED;CN=Ana:mailto:ana@example.com\r\n\
CATEGORIES:Work,Ops\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nEND:VALARM\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:1\r\nRECURRENCE-ID:20240312T090000Z\r\nSUMMARY:Café planning\r\nDTSTART:20240312T100000Z\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

    fn filter(inner: &str) -> CompFilter {
        let body = format!(
            r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><C:filter><C:comp-filter name="VCALENDAR">{inner}</C:comp-filter></C:filter></C:calendar-query>"#
        );
        match parse_report(body.as_bytes()).unwrap() {
            Report::CalendarQuery(q) => q.filter,
            other => panic!("{other:?}"),
        }
    }

    fn check(inner: &str, expected: bool) {
        let cal = crate::ics::parse(CAL.as_bytes()).unwrap();
        let got = matches(&cal, &filter(inner), &FakeTime::new());
        assert_eq!(got, expected, "filter {inner}");
    }

    #[test]
    fn component_presence_and_absence() {
        check("", true);
        check(r#"<C:comp-filter name="VEVENT"/>"#, true);
        check(r#"<C:comp-filter name="VTODO"/>"#, false);
        check(
            r#"<C:comp-filter name="VTODO"><C:is-not-defined/></C:comp-filter>"#,
            true,
        );
        check(
            r#"<C:comp-filter name="VEVENT"><C:is-not-defined/></C:comp-filter>"#,
            false,
        );
        check(
            r#"<C:comp-filter name="VEVENT"><C:comp-filter name="VALARM"/></C:comp-filter>"#,
            true,
        );
        check(
            r#"<C:comp-filter name="VEVENT"><C:comp-filter name="VALARM"/><C:comp-filter name="VTODO"/></C:comp-filter>"#,
            false,
        );
    }

    #[test]
    fn time_range_uses_the_callers_answer_per_component() {
        let cal = crate::ics::parse(CAL.as_bytes()).unwrap();
        let time = FakeTime::new();
        let f = filter(
            r#"<C:comp-filter name="VEVENT"><C:time-range start="20240312T000000Z" end="20240313T000000Z"/></C:comp-filter>"#,
        );
        assert!(matches(&cal, &f, &time));
        assert_eq!(
            *time.asked.borrow(),
            vec![vec![1], vec![2]],
            "master first, then the override"
        );
        check(
            r#"<C:comp-filter name="VEVENT"><C:time-range start="20250101T000000Z"/></C:comp-filter>"#,
            false,
        );
        check(
            r#"<C:comp-filter name="VEVENT"><C:comp-filter name="VALARM"><C:time-range end="20300101T000000Z"/></C:comp-filter></C:comp-filter>"#,
            false,
        );
    }

    #[test]
    fn prop_filters_and_text_match() {
        check(
            r#"<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match>meeting, WEEKLY</C:text-match></C:prop-filter></C:comp-filter>"#,
            true,
        );
        check(
            r#"<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match collation="i;octet">meeting</C:text-match></C:prop-filter></C:comp-filter>"#,
            false,
        );
        check(
            r#"<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match collation="i;ascii-casemap">CAFÉ</C:text-match></C:prop-filter></C:comp-filter>"#,
            false,
        );
        check(
            r#"<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match collation="i;unicode-casemap">CAFÉ</C:text-match></C:prop-filter></C:comp-filter>"#,
            true,
        );
        check(
            r#"<C:comp-filter name="VEVENT"><C:prop-filter name="LOCATION"><C:is-not-defined/></C:prop-filter></C:comp-filter>"#,
            true,
        );
        check(
            r#"<C:comp-filter name="VEVENT"><C:prop-filter name="LOCATION"/></C:comp-filter>"#,
            false,
        );
        check(
            r#"<C:comp-filter name="VEVENT"><C:prop-filter name="DTSTART"><C:time-range start="20240305T000000Z" end="20240306T000000Z"/></C:prop-filter></C:comp-filter>"#,
            true,
        );
    }

    #[test]
    fn negation_is_per_property_instance() {
        // One VEVENT's SUMMARY lacks "meeting", so a negated match succeeds.
        check(
            r#"<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match negate-condition="yes">meeting</C:text-match></C:prop-filter></C:comp-filter>"#,
            true,
        );
        check(
            r#"<C:comp-filter name="VEVENT"><C:prop-filter name="UID"><C:text-match negate-condition="yes">1</C:text-match></C:prop-filter></C:comp-filter>"#,
            false,
        );
    }

    #[test]
    fn param_filters() {
        let attendee = |inner: &str| {
            format!(
                r#"<C:comp-filter name="VEVENT"><C:prop-filter name="ATTENDEE">{inner}</C:prop-filter></C:comp-filter>"#
            )
        };
        check(
            &attendee(
                r#"<C:param-filter name="PARTSTAT"><C:text-match>accepted</C:text-match></C:param-filter>"#,
            ),
            true,
        );
        check(
            &attendee(
                r#"<C:param-filter name="PARTSTAT"><C:text-match>declined</C:text-match></C:param-filter>"#,
            ),
            false,
        );
        check(
            &attendee(r#"<C:param-filter name="ROLE"><C:is-not-defined/></C:param-filter>"#),
            true,
        );
        check(&attendee(r#"<C:param-filter name="ROLE"/>"#), false);
        check(
            &attendee(
                r#"<C:text-match>mailto:ana@</C:text-match><C:param-filter name="CN"><C:text-match>an</C:text-match></C:param-filter>"#,
            ),
            true,
        );
    }

    #[test]
    fn root_name_must_match() {
        let cal = crate::ics::parse(CAL.as_bytes()).unwrap();
        let mut f = filter("");
        f.name = "VCARD".into();
        assert!(!matches(&cal, &f, &FakeTime::new()));
        f.is_not_defined = true;
        assert!(matches(&cal, &f, &FakeTime::new()));
    }
}
