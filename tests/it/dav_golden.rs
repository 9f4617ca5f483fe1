//! Golden tests for the DAV protocol layer.
//!
//! - Every `fixtures/dav/requests/<kind>--<name>.xml` is parsed with the
//!   parser for `<kind>` (propfind, proppatch, mkcalendar, mkcol, report) and
//!   the result, printed as `{:#?}` or as `ERROR <status> <condition>` plus
//!   the message, must equal `<kind>--<name>.txt` beside it. A few hostile
//!   inputs too large to keep as files are generated here and checked the
//!   same way.
//! - Every multistatus / error body built in [`responses`] must equal
//!   `fixtures/dav/responses/<name>.xml`.
//!
//! `DAV_GOLDEN_BLESS=1 cargo test --test it dav_golden::` (re)writes the expected
//! files; review the diff before committing it.

use std::fmt::Debug;
use std::fs;
use std::path::{Path, PathBuf};

use calbridge::dav::request::{
    parse_mkcalendar, parse_mkcol, parse_propfind, parse_proppatch, parse_report, PropOp,
};
use calbridge::dav::{names, Condition, DavError, Multistatus, PropStats, PropValue, QName};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dav")
}

fn bless() -> bool {
    std::env::var_os("DAV_GOLDEN_BLESS").is_some()
}

/// Compares `actual` with the file at `expected`; records a readable
/// failure instead of panicking so one run reports every mismatch.
fn check(actual: &str, expected: &Path, failures: &mut Vec<String>) {
    if bless() {
        fs::write(expected, actual).expect("write expected file");
        return;
    }
    match fs::read_to_string(expected) {
        Ok(want) if want == actual => {}
        Ok(want) => failures.push(format!(
            "{}:\n--- expected\n{want}\n--- actual\n{actual}",
            expected.display()
        )),
        Err(_) => failures.push(format!(
            "{} is missing; run with DAV_GOLDEN_BLESS=1 and review it. Actual:\n{actual}",
            expected.display()
        )),
    }
}

fn render<T: Debug>(r: Result<T, DavError>) -> String {
    match r {
        Ok(v) => format!("{v:#?}\n"),
        Err(e) => format!(
            "ERROR {} {}\n{}\n",
            e.status,
            e.condition
                .as_ref()
                .map(|c| c.name().to_string())
                .unwrap_or_else(|| "-".into()),
            e.message
        ),
    }
}

fn parse_as(kind: &str, body: &[u8]) -> String {
    match kind {
        "propfind" => render(parse_propfind(body)),
        "proppatch" => render(parse_proppatch(body)),
        "mkcalendar" => render(parse_mkcalendar(body)),
        "mkcol" => render(parse_mkcol(body)),
        "report" => render(parse_report(body)),
        other => panic!("unknown fixture kind {other:?}"),
    }
}

#[test]
fn request_fixtures_parse_as_expected() {
    let dir = fixtures().join("requests");
    let mut inputs: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("fixtures/dav/requests")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 40,
        "fixtures went missing: {}",
        inputs.len()
    );

    let mut failures = Vec::new();
    for input in &inputs {
        let stem = input.file_stem().unwrap().to_str().unwrap();
        let kind = stem.split("--").next().unwrap();
        let body = fs::read(input).unwrap();
        check(
            &parse_as(kind, &body),
            &input.with_extension("txt"),
            &mut failures,
        );
    }

    // Hostile inputs generated here rather than stored.
    let deep = "<D:prop xmlns:D=\"DAV:\">".repeat(10_000);
    let many = format!(
        "<D:propfind xmlns:D=\"DAV:\"><D:prop>{}</D:prop></D:propfind>",
        "<D:getetag/>".repeat(100_001)
    );
    let huge = format!(
        "<D:propfind xmlns:D=\"DAV:\"><D:prop><D:displayname>{}</D:displayname></D:prop></D:propfind>",
        "x".repeat(9 << 20)
    );
    for (name, body) in [
        ("propfind--generated-10k-deep", deep.as_bytes()),
        ("propfind--generated-100k-elements", many.as_bytes()),
        ("propfind--generated-9mib", huge.as_bytes()),
    ] {
        let stem = name.split("--").next().unwrap();
        check(
            &parse_as(stem, body),
            &dir.join(format!("{name}.txt")),
            &mut failures,
        );
    }

    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_expected_file_has_an_input() {
    let dir = fixtures().join("requests");
    for entry in fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|x| x == "txt") {
            let stem = p.file_stem().unwrap().to_str().unwrap();
            assert!(
                p.with_extension("xml").exists() || stem.contains("--generated-"),
                "{} has no input",
                p.display()
            );
        }
    }
}

const CAL_DATA: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calbridge//EN\r\nBEGIN:VEVENT\r\nUID:040000008200E00074C5B7101A82E008@example.com\r\nDTSTAMP:20240301T080000Z\r\nDTSTART;TZID=Europe/Berlin:20240305T090000\r\nDURATION:PT1H\r\nSUMMARY:Review <draft> & sign ]]> off\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

fn principal_propfind() -> Vec<u8> {
    let mut ms = Multistatus::new();
    let mut p = PropStats::new();
    p.found(
        names::CALENDAR_HOME_SET,
        PropValue::Hrefs(vec!["/dav/calendars/s1/".into()]),
    );
    p.found(
        names::CALENDAR_USER_ADDRESS_SET,
        PropValue::Hrefs(vec![
            "mailto:ana@example.com".into(),
            "/dav/principals/s1/".into(),
        ]),
    );
    p.found(
        names::CURRENT_USER_PRINCIPAL,
        PropValue::Href("/dav/principals/s1/".into()),
    );
    p.found(names::DISPLAYNAME, PropValue::Text("Ana Müller".into()));
    p.found(
        names::PRINCIPAL_COLLECTION_SET,
        PropValue::Hrefs(vec!["/dav/principals/".into()]),
    );
    p.found(
        names::PRINCIPAL_URL,
        PropValue::Href("/dav/principals/s1/".into()),
    );
    p.found(
        names::SUPPORTED_REPORT_SET,
        PropValue::SupportedReportSet(vec![names::EXPAND_PROPERTY]),
    );
    p.not_found(QName::calserver("dropbox-home-URL"));
    p.not_found(names::SCHEDULE_INBOX_URL);
    ms.response("/dav/principals/s1/", p.as_slice());
    ms.finish()
}

fn home_depth1() -> Vec<u8> {
    let mut ms = Multistatus::new().minimal(true);
    let mut home = PropStats::new();
    home.found(
        names::RESOURCETYPE,
        PropValue::ResourceType(vec![names::COLLECTION]),
    );
    home.found(
        names::CURRENT_USER_PRIVILEGE_SET,
        PropValue::Privileges(vec![names::READ, names::READ_CURRENT_USER_PRIVILEGE_SET]),
    );
    home.not_found(names::GETCTAG);
    ms.response("/dav/calendars/s1/", home.as_slice());

    let mut cal = PropStats::new();
    cal.found(
        names::RESOURCETYPE,
        PropValue::ResourceType(vec![names::COLLECTION, names::CALENDAR]),
    );
    cal.found(names::DISPLAYNAME, PropValue::Text("Appointments".into()));
    cal.found(names::CALENDAR_COLOR, PropValue::Text("#0A84FFFF".into()));
    cal.found(names::CALENDAR_ORDER, PropValue::Integer(1));
    cal.found(names::GETCTAG, PropValue::Text("\"c-42\"".into()));
    cal.found(
        names::SYNC_TOKEN,
        PropValue::Text("https://calbridge.example/sync/s1/appointments/42".into()),
    );
    cal.found(
        names::SUPPORTED_CALENDAR_COMPONENT_SET,
        PropValue::SupportedCalendarComponentSet(vec!["VEVENT".into()]),
    );
    cal.found(
        names::SUPPORTED_CALENDAR_DATA,
        PropValue::SupportedCalendarData,
    );
    cal.found(
        names::CURRENT_USER_PRIVILEGE_SET,
        PropValue::Privileges(vec![
            names::READ,
            names::WRITE,
            names::WRITE_PROPERTIES,
            names::WRITE_CONTENT,
            names::BIND,
            names::UNBIND,
            names::READ_CURRENT_USER_PRIVILEGE_SET,
        ]),
    );
    cal.found(
        names::SUPPORTED_REPORT_SET,
        PropValue::SupportedReportSet(vec![
            names::CALENDAR_QUERY,
            names::CALENDAR_MULTIGET,
            names::SYNC_COLLECTION,
            names::FREE_BUSY_QUERY,
        ]),
    );
    cal.found(names::OWNER, PropValue::Href("/dav/principals/s1/".into()));
    cal.not_found(QName::new("http://me.com/_namespace/", "bulk-requests"));
    ms.response("/dav/calendars/s1/appointments/", cal.as_slice());

    let mut mirrored = PropStats::new();
    mirrored.found(
        names::RESOURCETYPE,
        PropValue::ResourceType(vec![names::COLLECTION, names::CALENDAR]),
    );
    mirrored.found(
        names::DISPLAYNAME,
        PropValue::Text("Google: Family & Friends".into()),
    );
    mirrored.found(
        names::CURRENT_USER_PRIVILEGE_SET,
        PropValue::Privileges(vec![names::READ, names::READ_CURRENT_USER_PRIVILEGE_SET]),
    );
    ms.response("/dav/calendars/s1/g-family friends/", mirrored.as_slice());
    ms.finish()
}

fn multiget() -> Vec<u8> {
    let mut ms = Multistatus::new();
    let mut p = PropStats::new();
    p.found(names::GETETAG, PropValue::Text("\"e-7\"".into()));
    p.found(
        names::CALENDAR_DATA,
        PropValue::CalendarData(CAL_DATA.into()),
    );
    ms.response(
        "/dav/calendars/s1/appointments/040000008200E00074C5B7101A82E008@example.com.ics",
        p.as_slice(),
    );
    ms.response_status("/dav/calendars/s1/appointments/Café plan.ics", 404);
    ms.finish()
}

fn sync_collection_truncated() -> Vec<u8> {
    let mut ms = Multistatus::new();
    let mut p = PropStats::new();
    p.found(names::GETETAG, PropValue::Text("\"e-8\"".into()));
    p.found(
        names::GETCONTENTTYPE,
        PropValue::Text("text/calendar; charset=utf-8; component=vevent".into()),
    );
    ms.response("/dav/calendars/s1/appointments/new.ics", p.as_slice());
    ms.response_status("/dav/calendars/s1/appointments/deleted.ics", 404);
    ms.truncated("/dav/calendars/s1/appointments/");
    ms.sync_token("https://calbridge.example/sync/s1/appointments/43");
    ms.finish()
}

fn proppatch_atomic_failure() -> Vec<u8> {
    let mut ms = Multistatus::new();
    let mut p = PropStats::new();
    p.failed_dependency(names::DISPLAYNAME);
    p.forbidden(names::SUPPORTED_CALENDAR_COMPONENT_SET);
    p.set_error(
        403,
        Condition::CannotModifyProtectedProperty,
        Some("supported-calendar-component-set is fixed at creation".into()),
    );
    p.failed_dependency(names::CALENDAR_COLOR);
    ms.response("/dav/calendars/s1/appointments/", p.as_slice());
    ms.finish()
}

fn propname() -> Vec<u8> {
    let mut ms = Multistatus::new();
    ms.propname_response(
        "/dav/calendars/s1/appointments/",
        &[
            names::RESOURCETYPE,
            names::DISPLAYNAME,
            names::GETCTAG,
            names::CALENDAR_COLOR,
            QName::new("urn:x-example", "dead"),
        ],
    );
    ms.finish()
}

/// A dead property round trip: PROPPATCH body → stored inner XML → PROPFIND.
fn dead_property() -> Vec<u8> {
    let body = fs::read(fixtures().join("requests/proppatch--dead-property.xml")).unwrap();
    let update = parse_proppatch(&body).unwrap();
    let PropOp::Set(authors) = &update.ops[0] else {
        panic!("first op is a set")
    };
    let mut ms = Multistatus::new();
    let mut p = PropStats::new();
    p.found(
        authors.name.clone(),
        PropValue::Xml(authors.inner_xml.clone()),
    );
    ms.response("/dav/calendars/s1/appointments/", p.as_slice());
    ms.finish()
}

fn hostile_values() -> Vec<u8> {
    let mut ms = Multistatus::new();
    let mut p = PropStats::new();
    p.found(
        names::DISPLAYNAME,
        PropValue::Text("]]></D:displayname><D:owner>&amp;\u{1}\u{b}\u{fffe}</D:owner>".into()),
    );
    p.found(
        names::CALENDAR_DESCRIPTION,
        PropValue::Text("tab\tnewline\ncr\rend".into()),
    );
    p.found(
        names::SUPPORTED_CALENDAR_COMPONENT_SET,
        PropValue::SupportedCalendarComponentSet(vec!["V\"EVENT<".into()]),
    );
    ms.response("/dav/a b/<x>&\"y\"?#.ics", p.as_slice());
    ms.finish()
}

fn error_body(e: DavError) -> Vec<u8> {
    e.to_xml().expect("has a condition").into_bytes()
}

fn responses() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("propfind-principal", principal_propfind()),
        ("propfind-home-depth1-minimal", home_depth1()),
        ("multiget", multiget()),
        ("sync-collection-truncated", sync_collection_truncated()),
        ("proppatch-atomic-failure", proppatch_atomic_failure()),
        ("propname", propname()),
        ("dead-property", dead_property()),
        ("hostile-values", hostile_values()),
        (
            "error-need-privileges",
            error_body(DavError::condition(
                Condition::NeedPrivileges(vec![(
                    "/dav/calendars/s1/g-family friends/x.ics".into(),
                    names::WRITE_CONTENT,
                )]),
                "Google: Family & Friends is read-only in calbridge",
            )),
        ),
        (
            "error-no-uid-conflict",
            error_body(DavError::condition(
                Condition::NoUidConflict {
                    href: "/dav/calendars/s1/appointments/other.ics".into(),
                },
                "UID 040000008200E00074C5B7101A82E008@example.com is already used by other.ics",
            )),
        ),
        (
            "error-valid-sync-token",
            error_body(DavError::condition(
                Condition::ValidSyncToken,
                "sync token is unknown or expired; sync again from an empty token",
            )),
        ),
        (
            "error-supported-report",
            error_body(parse_report(br#"<D:acl-principal-prop-set xmlns:D="DAV:"/>"#).unwrap_err()),
        ),
        (
            "error-propfind-finite-depth",
            error_body(DavError::condition(Condition::PropfindFiniteDepth, "")),
        ),
    ]
}

#[test]
fn response_snapshots() {
    let dir = fixtures().join("responses");
    let mut failures = Vec::new();
    for (name, body) in responses() {
        let text = String::from_utf8(body).expect("UTF-8 body");
        // Every body we write must be accepted by our own strict reader.
        if let Err(e) = calbridge::dav::xml::parse(text.as_bytes()) {
            failures.push(format!("{name}: not well-formed: {e}"));
        }
        check(&text, &dir.join(format!("{name}.xml")), &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
