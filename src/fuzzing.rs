//! The checks behind the `cargo fuzz` targets (`fuzz/fuzz_targets/`), one
//! `pub fn` per target, kept in the crate so that `tests/it/fuzz_regressions.rs`
//! replays every saved crash input through exactly the code the fuzzer ran.
//!
//! Each function takes arbitrary bytes, drives the parsers and mappers that
//! see hostile input, and panics only when a property is broken:
//! - [`ics_roundtrip`]: `parse_all` → `serialize` → `parse_all` gives the
//!   same tree; split and analysis of every VCALENDAR return.
//! - [`ics_expand`]: a small VCALENDAR whose DTSTART, RRULE, EXDATE, RDATE,
//!   override, length, VTIMEZONE rule and EXRULE come from the input, expanded
//!   over a window a CalDAV client or a feed would ask for. The property is
//!   that every call returns (libFuzzer's `-timeout` and `-rss_limit_mb`
//!   bound time and memory) with at most `max_instances` sorted instances.
//! - [`dav_request`]: the XML reader and every request-body parser; what
//!   they accept is written back (element fragments, multistatus) and must
//!   parse again; calendar-query filters are evaluated on a fixed calendar.
//! - [`google_map`], [`graph_map`]: provider JSON items → one calendar
//!   object; an `Ok` object must parse and pass [`object::analyze`].
//!
//! Pure, like the modules it drives: no I/O, no clock (windows are fixed
//! dates), so a saved input replays identically forever. Not used by the
//! server.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

use crate::dav::filter::{self, TimeRangeTest};
use crate::dav::request::{
    self, Depth, EntityTag, EtagCondition, PropFind, PropOp, Report, TimeRange,
};
use crate::dav::response::{Multistatus, PropStats, PropValue};
use crate::dav::xml;
use crate::ics::object::{self, split_by_uid};
use crate::ics::recur::{self, ExpandOptions};
use crate::ics::rrule::RRule;
use crate::ics::tz::Zone;
use crate::ics::value::DateTimeValue;
use crate::ics::{self, Component, Property};
use crate::upstream::provider::{MappedSeries, RemoteChange};
use crate::upstream::{google, graph};

// ---------------------------------------------------------------------------
// ics_roundtrip

/// `serialize(parse(x))` parses back to the identical tree, for every root
/// of every accepted input; every VCALENDAR (and each per-UID object split
/// from it) goes through [`object::analyze`] without panicking.
pub fn ics_roundtrip(data: &[u8]) {
    let Ok(roots) = ics::parse_all(data) else {
        return;
    };
    let opts = ExpandOptions::default();
    for root in &roots {
        let bytes = ics::serialize(root);
        let again = match ics::parse_all(&bytes) {
            Ok(a) => a,
            Err(e) => panic!(
                "serialized output does not parse ({e}):\n{}",
                String::from_utf8_lossy(&bytes)
            ),
        };
        assert_eq!(again.len(), 1, "one root serialized, several parsed");
        assert_eq!(&again[0], root, "round trip changed the tree");
        // Serializing is deterministic: the re-parsed tree writes the same bytes.
        assert_eq!(ics::serialize(&again[0]), bytes, "serialize not stable");
        if root.name == "VCALENDAR" {
            let _ = object::analyze(root, &opts);
            for obj in split_by_uid(root) {
                let _ = object::analyze(&obj, &opts);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// ics_expand

/// The input's lines, in order (missing lines are empty; `\r` is dropped):
///
/// 1. DTSTART: `;TZID=Custom:20250310T090000`, `:20250310`, or a bare value;
/// 2. RRULE value (empty: none);
/// 3. EXDATE, 4. RDATE (as 1; empty: none);
/// 5. RECURRENCE-ID of an override (as 1; empty: no override);
/// 6. the override's DTSTART (as 1; empty: its RECURRENCE-ID);
/// 7. the master's length: `P…` is a DURATION, anything else DTEND as 1;
/// 8. the RRULE of the DAYLIGHT observance of the VTIMEZONE `Custom`
///    (empty: no VTIMEZONE);
/// 9. the window: a digit (see [`expand_window`]) then a letter for the
///    zone of floating times (see [`expand_zone`]);
/// 10. EXRULE value (empty: none).
///
/// Then: the instances over the window, the series span, CalDAV expand and
/// limit-recurrence-set, analysis, and the RRULE on its own.
pub fn ics_expand(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let mut next = || lines.next().unwrap_or("");
    let (dtstart, rrule, exdate, rdate, rid, rid_start, length, tz_rule, window, exrule) = (
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
    );
    let (start, end) = expand_window(window.bytes().next());
    let opts = ExpandOptions {
        floating: expand_zone(window.as_bytes().get(1).copied()),
        ..ExpandOptions::default()
    };

    // The rule alone, as a client's rule would be iterated for a preview.
    if let Ok(rule) = RRule::parse(rrule) {
        let from = DateTimeValue::from_value(value_of(dtstart), &[])
            .map(|v| v.local())
            .unwrap_or_else(|_| noon(2025, 3, 10));
        let n = rule.iter(from).take(1_000).count();
        assert!(n <= 1_000);
    }

    let mut ics = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fuzz//EN\r\n");
    if !tz_rule.is_empty() {
        ics.push_str(
            "BEGIN:VTIMEZONE\r\nTZID:Custom\r\n\
             BEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\n\
             TZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n\
             BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\n\
             TZOFFSETTO:+0200\r\n",
        );
        push_line(&mut ics, "RRULE", &format!(":{tz_rule}"));
        ics.push_str("END:DAYLIGHT\r\nEND:VTIMEZONE\r\n");
    }
    ics.push_str("BEGIN:VEVENT\r\nUID:fuzz@calbridge\r\nDTSTAMP:20250101T000000Z\r\n");
    push_line(&mut ics, "DTSTART", dtstart);
    if !rrule.is_empty() {
        push_line(&mut ics, "RRULE", &format!(":{rrule}"));
    }
    if !exrule.is_empty() {
        push_line(&mut ics, "EXRULE", &format!(":{exrule}"));
    }
    if !exdate.is_empty() {
        push_line(&mut ics, "EXDATE", exdate);
    }
    if !rdate.is_empty() {
        push_line(&mut ics, "RDATE", rdate);
    }
    if !length.is_empty() {
        if matches!(
            length.trim_start_matches(['+', '-']).bytes().next(),
            Some(b'P' | b'p')
        ) {
            push_line(&mut ics, "DURATION", &format!(":{length}"));
        } else {
            push_line(&mut ics, "DTEND", length);
        }
    }
    ics.push_str("SUMMARY:master\r\nEND:VEVENT\r\n");
    if !rid.is_empty() {
        ics.push_str("BEGIN:VEVENT\r\nUID:fuzz@calbridge\r\nDTSTAMP:20250101T000000Z\r\n");
        push_line(&mut ics, "RECURRENCE-ID", rid);
        push_line(
            &mut ics,
            "DTSTART",
            if rid_start.is_empty() { rid } else { rid_start },
        );
        ics.push_str("SUMMARY:override\r\nEND:VEVENT\r\n");
    }
    ics.push_str("END:VCALENDAR\r\n");
    let Ok(cal) = ics::parse(ics.as_bytes()) else {
        return;
    };

    let _ = object::analyze(&cal, &opts);
    let _ = recur::series_span(&cal, &opts);
    if let Ok(list) = recur::instances(&cal, start, end, &opts) {
        assert!(list.len() <= opts.max_instances, "too many instances");
        assert!(
            list.windows(2).all(|w| w[0].start <= w[1].start),
            "instances not sorted"
        );
        for i in &list {
            assert!(i.end >= i.start, "an instance ends before it starts");
            assert!(i.component < cal.children.len());
        }
    }
    if let Ok(expanded) = recur::expand_calendar(&cal, start, end, &opts) {
        assert!(expanded.children.len() <= opts.max_instances);
    }
    let _ = recur::limit_recurrence_set(&cal, start, end, &opts);
}

/// `NAME` + the line: a line starting with `;` or `:` carries its own
/// parameters and colon, anything else is the bare value.
fn push_line(ics: &mut String, name: &str, line: &str) {
    ics.push_str(name);
    if !line.starts_with([';', ':']) {
        ics.push(':');
    }
    ics.push_str(line);
    ics.push_str("\r\n");
}

/// The value part of a line in [`push_line`] form.
fn value_of(line: &str) -> &str {
    if line.starts_with([';', ':']) {
        line.rsplit_once(':').map_or("", |(_, v)| v)
    } else {
        line
    }
}

fn noon(y: i32, m: u32, d: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .expect("valid date")
}

fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
        .single()
        .expect("valid date")
}

/// The windows real callers ask for: a CalDAV client's month view (the
/// default), a week view, a year, a feed's past year and two years ahead,
/// and a free-busy lookup of eight weeks.
pub fn expand_window(selector: Option<u8>) -> (DateTime<Utc>, DateTime<Utc>) {
    match selector {
        Some(b'1') => (utc(2025, 3, 10), utc(2025, 3, 17)),
        Some(b'2') => (utc(2025, 1, 1), utc(2026, 1, 1)),
        Some(b'3') => (utc(2024, 3, 1), utc(2027, 3, 1)),
        Some(b'4') => (utc(2025, 3, 1), utc(2025, 4, 26)),
        _ => (utc(2025, 3, 1), utc(2025, 4, 1)),
    }
}

/// The zone of floating times and dates: UTC (default), or a zone with DST
/// (`b` Berlin, `n` New York), a half-hour one (`k` Kolkata) or one whose
/// DST shift is half an hour (`l` Lord Howe).
pub fn expand_zone(selector: Option<u8>) -> Zone {
    let tz = match selector {
        Some(b'b') => chrono_tz::Europe::Berlin,
        Some(b'n') => chrono_tz::America::New_York,
        Some(b'k') => chrono_tz::Asia::Kolkata,
        Some(b'l') => chrono_tz::Australia::Lord_Howe,
        _ => return Zone::Utc,
    };
    Zone::Iana(tz)
}

// ---------------------------------------------------------------------------
// dav_request

/// The calendar object calendar-query filters are evaluated against: a
/// weekly meeting in Berlin with an override, attendees with parameters
/// and an alarm.
const FILTER_CALENDAR: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fuzz//EN\r\n\
BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n\
TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n\
END:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\n\
TZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:weekly@calbridge\r\nDTSTAMP:20250101T000000Z\r\n\
DTSTART;TZID=Europe/Berlin:20250303T090000\r\nDTEND;TZID=Europe/Berlin:20250303T100000\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10\r\nSUMMARY:Weekly sync\r\nCATEGORIES:Work,Team\r\n\
ORGANIZER;CN=Ann:mailto:ann@example.com\r\n\
ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:mailto:bob@example.com\r\n\
BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Reminder\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n\
END:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:weekly@calbridge\r\nDTSTAMP:20250101T000000Z\r\n\
RECURRENCE-ID;TZID=Europe/Berlin:20250310T090000\r\n\
DTSTART;TZID=Europe/Berlin:20250310T110000\r\nDTEND;TZID=Europe/Berlin:20250310T120000\r\n\
SUMMARY:Weekly sync (moved)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

/// A time-range answer without recurrence: a component overlaps when its
/// own DTSTART..DTEND does; a property when its date-time value lies in the
/// range. It also checks that every path the filter asks about exists.
struct FixedTime;

impl TimeRangeTest for FixedTime {
    fn component_overlaps(&self, cal: &Component, path: &[usize], range: &TimeRange) -> bool {
        let mut c = cal;
        for &i in path {
            c = c
                .children
                .get(i)
                .unwrap_or_else(|| panic!("filter path {path:?} leaves the calendar"));
        }
        let at = |name: &str| {
            c.prop(name)
                .and_then(|p| DateTimeValue::from_property(p).ok())
                .map(|v| Zone::Utc.to_utc(v.local()))
        };
        match at("DTSTART") {
            Some(s) => range.overlaps(s, at("DTEND").unwrap_or(s)),
            None => true,
        }
    }

    fn property_overlaps(&self, prop: &Property, range: &TimeRange) -> bool {
        DateTimeValue::from_property(prop)
            .map(|v| {
                let t = Zone::Utc.to_utc(v.local());
                range.overlaps(t, t)
            })
            .unwrap_or(false)
    }
}

/// The XML reader and every request parser on the same bytes, the header
/// parsers on its first lines. What is accepted is written back: an
/// element as a fragment must parse to itself; PROPFIND names and
/// PROPPATCH values in a multistatus must give well-formed XML;
/// calendar-query filters and calendar-data selections run on a fixed
/// calendar.
pub fn dav_request(data: &[u8]) {
    if let Ok(root) = xml::parse(data) {
        let fragment = root.to_xml();
        match xml::parse(fragment.as_bytes()) {
            Ok(again) => assert_eq!(again, root, "element changed by to_xml: {fragment}"),
            Err(e) => panic!("to_xml wrote what does not parse ({e}): {fragment}"),
        }
    }
    if let Ok(found) = request::parse_propfind(data) {
        let mut ms = Multistatus::new();
        match found {
            PropFind::Prop(names) | PropFind::AllProp { include: names } => {
                ms.propname_response("/dav/a b/", &names);
                let mut stats = PropStats::new();
                for n in names {
                    stats.not_found(n);
                }
                ms.response("/dav/%/", stats.as_slice());
            }
            PropFind::PropName => {}
        }
        well_formed(ms.finish());
    }
    if let Ok(update) = request::parse_proppatch(data) {
        let mut stats = PropStats::new();
        for op in update.ops {
            match op {
                PropOp::Set(p) => {
                    stats.found(p.name.clone(), PropValue::Xml(p.inner_xml.clone()));
                    stats.forbidden(p.name);
                }
                PropOp::Remove(n) => stats.not_found(n),
            }
        }
        let mut ms = Multistatus::new();
        ms.response("/dav/c/", stats.as_slice());
        well_formed(ms.finish());
    }
    for parsed in [request::parse_mkcalendar(data), request::parse_mkcol(data)]
        .into_iter()
        .flatten()
    {
        if let Some(tz) = parsed.timezone {
            let _ = ics::parse(tz.as_bytes());
        }
    }
    if let Ok(report) = request::parse_report(data) {
        let cal = ics::parse(FILTER_CALENDAR.as_bytes()).expect("the fixed calendar parses");
        let (data_request, hrefs) = match &report {
            Report::CalendarQuery(q) => {
                filter::matches(&cal, &q.filter, &FixedTime);
                (q.calendar_data.as_ref(), Vec::new())
            }
            Report::CalendarMultiget(m) => (m.calendar_data.as_ref(), m.hrefs.clone()),
            Report::SyncCollection(s) => (s.calendar_data.as_ref(), Vec::new()),
            _ => (None, Vec::new()),
        };
        if let Some(r) = data_request {
            let selected = r.select(&cal);
            let bytes = ics::serialize(&selected);
            assert!(
                ics::parse(&bytes).is_ok(),
                "a calendar-data selection does not parse"
            );
            let opts = ExpandOptions::default();
            if let Some(TimeRange {
                start: Some(s),
                end: Some(e),
            }) = r.expand
            {
                let _ = recur::expand_calendar(&cal, s, e, &opts);
            }
            if let Some(TimeRange {
                start: Some(s),
                end: Some(e),
            }) = r.limit_recurrence_set
            {
                let _ = recur::limit_recurrence_set(&cal, s, e, &opts);
            }
        }
        let mut ms = Multistatus::new();
        for h in &hrefs {
            ms.response_status(h, 404);
        }
        well_formed(ms.finish());
    }
    let text = String::from_utf8_lossy(data);
    for line in text.lines().take(4) {
        let _ = Depth::parse(Some(line));
        let _ = EntityTag::parse(line);
        if let Ok(cond) = EtagCondition::parse(line) {
            cond.if_match(Some("\"abc\""));
            cond.if_none_match(None);
        }
        request::prefers_minimal(Some(line), Some(line));
        let _ = crate::dav::href::decode(line);
    }
}

fn well_formed(body: Vec<u8>) {
    if let Err(e) = xml::parse(&body) {
        panic!(
            "multistatus is not well-formed XML ({e}):\n{}",
            String::from_utf8_lossy(&body)
        );
    }
}

// ---------------------------------------------------------------------------
// google_map and graph_map

/// The input as provider items: an RFC 7464 JSON text sequence, each item
/// after an RS byte (0x1E). The first is the series master (item id `s`),
/// the others pieces of the same series (`s_1`, `s_2`, …). Bytes before the
/// first RS are ignored, so a lone JSON file is no item; each item is
/// handed over as raw bytes, whether it is JSON or not.
pub fn provider_items(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    data.split(|b| *b == 0x1E)
        .skip(1)
        .take(16)
        .enumerate()
        .map(|(i, item)| {
            let id = if i == 0 {
                "s".to_string()
            } else {
                format!("s_{i}")
            };
            (id, item.to_vec())
        })
        .collect()
}

/// An `Ok` mapping is a calendar object calbridge can store: it parses and
/// passes [`object::analyze`], its UID is the analysed one, its span is
/// ordered.
fn check_mapped(m: &MappedSeries) {
    let cal = match ics::parse(&m.ics) {
        Ok(c) => c,
        Err(e) => panic!(
            "mapped object does not parse ({e}):\n{}",
            String::from_utf8_lossy(&m.ics)
        ),
    };
    match object::analyze(&cal, &ExpandOptions::default()) {
        Ok(info) => assert_eq!(info.uid, m.uid, "mapped UID differs from the object's"),
        Err(e) => panic!(
            "mapped object fails analysis ({e}):\n{}",
            String::from_utf8_lossy(&m.ics)
        ),
    }
    assert!(m.start <= m.end, "mapped span ends before it starts");
}

/// Google items → [`google::map::map_series`] (without a calendar zone on
/// the raw items; with one on the items as [`google::change_of`] stores
/// them), and `change_of` on every item that is JSON.
pub fn google_map(data: &[u8]) {
    let items = provider_items(data);
    if let Ok(m) = google::map::map_series("s", &items, None) {
        check_mapped(&m);
    }
    let defaults = serde_json::json!([{"method": "popup", "minutes": 10}]);
    let mut stored = Vec::new();
    for (id, bytes) in &items {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            continue;
        };
        if let RemoteChange::Upsert { json, .. } = google::change_of(&v, &defaults) {
            stored.push((id.clone(), json));
        }
    }
    if let Ok(m) = google::map::map_series("s", &stored, Some("America/New_York")) {
        check_mapped(&m);
    }
}

/// Graph items → [`graph::map::map_series`] (with the list window a pull
/// adds: two years), `change_of` on every item that is JSON, and the
/// recurrence mapping both ways: an item read as a Graph `recurrence` must
/// give an RRULE calbridge parses; an item's text read as an RRULE that
/// Graph can express must come back through `to_rrule`.
pub fn graph_map(data: &[u8]) {
    let mut items = provider_items(data);
    let window = serde_json::json!({"start": utc(2025, 1, 1).timestamp(),
                                    "end": utc(2027, 1, 1).timestamp()});
    items.push((
        graph::map::WINDOW_ITEM.to_string(),
        serde_json::to_vec(&window).expect("JSON"),
    ));
    if let Ok(m) = graph::map::map_series("s", &items, None) {
        check_mapped(&m);
    }
    use graph::recurrence::{from_rrule, to_rrule, Recurrence, StartKind};
    let kinds = [StartKind::Date, StartKind::Timed(chrono_tz::Europe::Berlin)];
    for (_, bytes) in &items[..items.len() - 1] {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
            let _ = graph::change_of(&v);
        }
        if let Ok(r) = serde_json::from_slice::<Recurrence>(bytes) {
            for kind in kinds {
                if let Ok(rule) = to_rrule(&r, kind) {
                    if let Err(e) = RRule::parse(&rule) {
                        panic!("to_rrule gave an RRULE calbridge refuses: {e}");
                    }
                }
            }
        }
        let text = String::from_utf8_lossy(bytes);
        let rule = text.lines().next().unwrap_or("");
        if let Ok(r) = from_rrule(rule, noon(2025, 3, 10), "Europe/Berlin") {
            for kind in kinds {
                if let Err(e) = to_rrule(&r, kind) {
                    panic!("from_rrule({rule:?}) gave {r:?}, which to_rrule refuses: {e}");
                }
            }
        }
    }
}
