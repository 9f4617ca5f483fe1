//! End-to-end tests of the CalDAV endpoint against a real server: every
//! method, the properties clients probe, every REPORT, isolation between
//! staff members, and the bad input of issue 3. Multistatus bodies are
//! parsed and checked (hrefs, properties, statuses), not just status codes.

use crate::common;

use std::collections::BTreeSet;

use calbridge::dav::xml::{self, Element};
use calbridge::dav::{names, QName};
use common::TestServer;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::json;

// ---------------------------------------------------------------- helpers

struct User {
    staff: String,
    email: String,
    password: String,
}

impl User {
    fn home(&self) -> String {
        format!("/dav/calendars/{}/", self.staff)
    }

    fn cal(&self, slug: &str) -> String {
        format!("/dav/calendars/{}/{slug}/", self.staff)
    }

    fn principal(&self) -> String {
        format!("/dav/principals/{}/", self.staff)
    }
}

async fn company(srv: &TestServer) -> String {
    let c = srv
        .create(
            "/api/v1/companies",
            json!({"name": "Acme", "timezone": "Europe/Berlin"}),
        )
        .await;
    c["id"].as_str().unwrap().to_string()
}

async fn user(srv: &TestServer, company: &str, name: &str) -> User {
    let email = format!("{name}.{}@acme.example", common::rand_suffix()).to_lowercase();
    let s = srv
        .create(
            &format!("/api/v1/companies/{company}/staff"),
            json!({"name": name, "email": email, "timezone": "Europe/Berlin"}),
        )
        .await;
    let staff = s["id"].as_str().unwrap().to_string();
    let p = srv
        .create(&format!("/api/v1/staff/{staff}/app-passwords"), json!({}))
        .await;
    User {
        staff,
        email,
        password: p["password"].as_str().unwrap().to_string(),
    }
}

/// A server with one company and one staff member.
async fn setup() -> (TestServer, User) {
    let srv = TestServer::start().await;
    let c = company(&srv).await;
    let u = user(&srv, &c, "Anna").await;
    (srv, u)
}

struct Resp {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn raw(
    srv: &TestServer,
    auth: Option<(&str, &str)>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Vec<u8>>,
) -> Resp {
    let mut req = srv.client.request(
        Method::from_bytes(method.as_bytes()).unwrap(),
        srv.url(path),
    );
    if let Some((u, p)) = auth {
        req = req.basic_auth(u, Some(p));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.body(body.into()).send().await.expect("request");
    Resp {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: String::from_utf8_lossy(&r.bytes().await.unwrap()).into_owned(),
    }
}

async fn dav(
    srv: &TestServer,
    u: &User,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Vec<u8>>,
) -> Resp {
    raw(
        srv,
        Some((&u.email, &u.password)),
        method,
        path,
        headers,
        body,
    )
    .await
}

async fn propfind(srv: &TestServer, u: &User, path: &str, depth: &str, props: &str) -> Resp {
    let body = format!(
        r#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/" xmlns:i="http://apple.com/ns/ical/"><d:prop>{props}</d:prop></d:propfind>"#
    );
    dav(srv, u, "PROPFIND", path, &[("Depth", depth)], body).await
}

async fn report(srv: &TestServer, u: &User, path: &str, depth: &str, body: &str) -> Resp {
    dav(
        srv,
        u,
        "REPORT",
        path,
        &[("Depth", depth), ("Content-Type", "application/xml")],
        body.to_string(),
    )
    .await
}

async fn put(srv: &TestServer, u: &User, path: &str, body: &str, headers: &[(&str, &str)]) -> Resp {
    let mut h = vec![("Content-Type", "text/calendar; charset=utf-8")];
    h.extend_from_slice(headers);
    dav(srv, u, "PUT", path, &h, body.to_string()).await
}

fn vcal(inner: &str) -> String {
    let lines: Vec<&str> = inner
        .trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calbridge tests//EN\r\n{}\r\nEND:VCALENDAR\r\n",
        lines.join("\r\n")
    )
}

fn event(uid: &str, start: &str, end: &str, summary: &str) -> String {
    vcal(&format!(
        "BEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20260101T000000Z\nDTSTART:{start}\nDTEND:{end}\nSUMMARY:{summary}\nEND:VEVENT"
    ))
}

/// One `<D:response>` of a multistatus.
struct Entry {
    href: String,
    status: Option<u16>,
    propstats: Vec<(u16, Element)>,
    error: Option<Element>,
}

impl Entry {
    fn prop(&self, name: &QName) -> Option<(u16, &Element)> {
        self.propstats
            .iter()
            .find_map(|(s, prop)| prop.child(name).map(|e| (*s, e)))
    }

    /// The property, which must have been found (200).
    fn found(&self, name: &QName) -> &Element {
        match self.prop(name) {
            Some((200, e)) => e,
            other => panic!("{name} on {}: {:?}", self.href, other.map(|(s, _)| s)),
        }
    }

    fn text(&self, name: &QName) -> String {
        self.found(name).text().trim().to_string()
    }

    fn status_of(&self, name: &QName) -> Option<u16> {
        self.prop(name).map(|(s, _)| s)
    }

    /// The hrefs inside a property.
    fn hrefs(&self, name: &QName) -> Vec<String> {
        self.found(name)
            .children_named(&names::HREF)
            .map(|h| h.text().trim().to_string())
            .collect()
    }

    /// Names of the empty child elements of a property (resourcetype...).
    fn kinds(&self, name: &QName) -> Vec<QName> {
        self.found(name)
            .elements()
            .map(|e| e.name.clone())
            .collect()
    }
}

struct Ms {
    entries: Vec<Entry>,
    sync_token: Option<String>,
}

impl Ms {
    fn get(&self, href: &str) -> &Entry {
        self.entries
            .iter()
            .find(|e| e.href == href)
            .unwrap_or_else(|| panic!("no response for {href}; have {:?}", self.hrefs()))
    }

    fn hrefs(&self) -> BTreeSet<String> {
        self.entries.iter().map(|e| e.href.clone()).collect()
    }
}

fn status_code(line: &str) -> u16 {
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"))
}

/// Parses a 207 body (and checks the status and content type).
fn ms(r: &Resp) -> Ms {
    assert_eq!(r.status, 207, "expected 207, got {}: {}", r.status, r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/xml")),
        "{:?}",
        r.header("content-type")
    );
    let root = xml::parse(r.body.as_bytes()).expect("multistatus parses");
    assert_eq!(root.name, names::MULTISTATUS);
    let entries = root
        .children_named(&names::RESPONSE)
        .map(|resp| Entry {
            href: percent_encoding::percent_decode_str(
                resp.child(&names::HREF).expect("href").text().trim(),
            )
            .decode_utf8()
            .unwrap()
            .into_owned(),
            status: resp.child(&names::STATUS).map(|s| status_code(&s.text())),
            propstats: resp
                .children_named(&names::PROPSTAT)
                .map(|ps| {
                    (
                        status_code(&ps.child(&names::STATUS).expect("status").text()),
                        ps.child(&names::PROP).expect("prop").clone(),
                    )
                })
                .collect(),
            error: resp.child(&names::ERROR).cloned(),
        })
        .collect();
    Ms {
        entries,
        sync_token: root
            .child(&names::SYNC_TOKEN)
            .map(|t| t.text().trim().to_string()),
    }
}

/// The condition named in a `<D:error>` body.
fn condition(r: &Resp) -> QName {
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/xml")),
        "no XML error body ({}): {}",
        r.status,
        r.body
    );
    let root = xml::parse(r.body.as_bytes()).expect("error body parses");
    assert_eq!(root.name, names::ERROR, "{}", r.body);
    let name = root.elements().next().expect("a condition").name.clone();
    name
}

fn caldav(local: &'static str) -> QName {
    QName::caldav(local)
}

/// The calendar's sync token, via PROPFIND.
async fn token(srv: &TestServer, u: &User, cal: &str) -> String {
    let r = propfind(srv, u, cal, "0", "<d:sync-token/>").await;
    ms(&r).get(cal).text(&names::SYNC_TOKEN)
}

/// The member hrefs of a calendar, via PROPFIND Depth 1.
async fn members(srv: &TestServer, u: &User, cal: &str) -> BTreeSet<String> {
    let r = propfind(srv, u, cal, "1", "<d:getetag/>").await;
    let mut set = ms(&r).hrefs();
    set.remove(cal);
    set
}

// ---------------------------------------------------------------- discovery

#[tokio::test]
async fn discovery_from_well_known_to_calendars() {
    let (srv, u) = setup().await;

    // RFC 6764: the well-known URI redirects, without needing credentials.
    let r = raw(&srv, None, "PROPFIND", "/.well-known/caldav", &[], "").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/dav/"));
    // A client given only the host asks the server root: it speaks CalDAV
    // and sends PROPFIND on to the context path; other methods find nothing.
    let r = raw(&srv, None, "OPTIONS", "/", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(r.header("dav").unwrap().contains("calendar-access"));
    let r = raw(&srv, None, "PROPFIND", "/", &[("Depth", "0")], "").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/dav/"));
    assert_eq!(raw(&srv, None, "GET", "/", &[], "").await.status, 404);
    assert_eq!(raw(&srv, None, "PUT", "/", &[], "x").await.status, 404);

    // OPTIONS advertises the classes and methods, without credentials.
    let r = raw(&srv, None, "OPTIONS", "/dav/", &[], "").await;
    assert_eq!(r.status, 200);
    let dav_header = r.header("dav").unwrap();
    for class in ["1", "3", "calendar-access", "extended-mkcol"] {
        assert!(
            dav_header.split(',').any(|c| c.trim() == class),
            "{dav_header}"
        );
    }
    let allow = r.header("allow").unwrap();
    for m in [
        "PROPFIND",
        "REPORT",
        "PUT",
        "DELETE",
        "MKCALENDAR",
        "PROPPATCH",
    ] {
        assert!(allow.contains(m), "{allow}");
    }

    // The context path names the current user's principal.
    let r = propfind(
        &srv,
        &u,
        "/dav/",
        "0",
        "<d:current-user-principal/><d:resourcetype/>",
    )
    .await;
    let m = ms(&r);
    assert_eq!(
        m.get("/dav/").hrefs(&names::CURRENT_USER_PRINCIPAL),
        vec![u.principal()]
    );

    // The principal: home set, addresses, name, type.
    let r = propfind(
        &srv,
        &u,
        &u.principal(),
        "0",
        "<c:calendar-home-set/><c:calendar-user-address-set/><d:principal-URL/><d:displayname/><d:resourcetype/><cs:email-address-set/><c:schedule-inbox-URL/><d:principal-collection-set/>",
    )
    .await;
    let m = ms(&r);
    let p = m.get(&u.principal());
    assert_eq!(p.hrefs(&caldav("calendar-home-set")), vec![u.home()]);
    assert_eq!(p.hrefs(&names::PRINCIPAL_URL), vec![u.principal()]);
    let addresses = p.hrefs(&caldav("calendar-user-address-set"));
    assert!(
        addresses.contains(&format!("mailto:{}", u.email)),
        "{addresses:?}"
    );
    assert_eq!(p.text(&names::DISPLAYNAME), "Anna");
    assert!(p.kinds(&names::RESOURCETYPE).contains(&names::PRINCIPAL));
    assert!(p.text(&names::EMAIL_ADDRESS_SET).contains(&u.email));
    assert_eq!(p.status_of(&caldav("schedule-inbox-URL")), Some(404));
    assert_eq!(
        p.hrefs(&names::PRINCIPAL_COLLECTION_SET),
        vec!["/dav/principals/"]
    );

    // The home lists the appointments calendar with what clients probe.
    let r = propfind(
        &srv,
        &u,
        &u.home(),
        "1",
        "<d:resourcetype/><d:displayname/><i:calendar-color/><i:calendar-order/><c:calendar-description/><c:supported-calendar-component-set/><c:supported-calendar-data/><cs:getctag/><d:sync-token/><d:current-user-privilege-set/><d:owner/><d:supported-report-set/><c:max-resource-size/><c:calendar-timezone/><d:quota-available-bytes/>",
    )
    .await;
    let m = ms(&r);
    assert_eq!(m.hrefs(), BTreeSet::from([u.home(), u.cal("appointments")]));
    let home = m.get(&u.home());
    assert_eq!(home.kinds(&names::RESOURCETYPE), vec![names::COLLECTION]);
    let cal = m.get(&u.cal("appointments"));
    assert_eq!(
        cal.kinds(&names::RESOURCETYPE),
        vec![names::COLLECTION, names::CALENDAR]
    );
    assert_eq!(cal.text(&names::DISPLAYNAME), "Appointments");
    assert!(cal.text(&names::CALENDAR_COLOR).starts_with('#'));
    assert_eq!(cal.text(&names::CALENDAR_ORDER), "0");
    let comps: Vec<String> = cal
        .found(&names::SUPPORTED_CALENDAR_COMPONENT_SET)
        .elements()
        .map(|c| c.attr("name").unwrap().to_string())
        .collect();
    assert_eq!(comps, vec!["VEVENT"]);
    let data = cal.found(&names::SUPPORTED_CALENDAR_DATA);
    assert_eq!(
        data.child(&names::CALENDAR_DATA)
            .unwrap()
            .attr("content-type"),
        Some("text/calendar")
    );
    let ctag = cal.text(&names::GETCTAG);
    let sync = cal.text(&names::SYNC_TOKEN);
    assert!(sync.starts_with("http://calbridge/sync/cal_"), "{sync}");
    assert_eq!(ctag, sync);
    let privileges: Vec<QName> = cal
        .found(&names::CURRENT_USER_PRIVILEGE_SET)
        .children_named(&names::PRIVILEGE)
        .flat_map(|p| p.elements().map(|e| e.name.clone()).collect::<Vec<_>>())
        .collect();
    for p in [
        names::READ,
        names::WRITE,
        names::WRITE_CONTENT,
        names::BIND,
        names::UNBIND,
    ] {
        assert!(privileges.contains(&p), "{p} in {privileges:?}");
    }
    assert_eq!(cal.hrefs(&names::OWNER), vec![u.principal()]);
    let reports: Vec<QName> = cal
        .found(&names::SUPPORTED_REPORT_SET)
        .children_named(&names::SUPPORTED_REPORT)
        .map(|s| {
            s.child(&names::REPORT)
                .unwrap()
                .elements()
                .next()
                .unwrap()
                .name
                .clone()
        })
        .collect();
    for r in [
        names::CALENDAR_QUERY,
        names::CALENDAR_MULTIGET,
        names::SYNC_COLLECTION,
        names::FREE_BUSY_QUERY,
    ] {
        assert!(reports.contains(&r), "{r} in {reports:?}");
    }
    assert_eq!(
        cal.text(&caldav("max-resource-size")),
        (10 << 20).to_string()
    );
    assert!(cal
        .text(&names::CALENDAR_TIMEZONE)
        .contains("TZID:Europe/Berlin"));
    assert_eq!(cal.status_of(&names::QUOTA_AVAILABLE_BYTES), Some(404));
}

#[tokio::test]
async fn email_paths_encoded_or_not_reach_the_same_home() {
    let (srv, u) = setup().await;
    let encoded = u.email.replace('@', "%40");
    for seg in [u.email.clone(), encoded, u.email.to_uppercase()] {
        let path = format!("/dav/calendars/{seg}/appointments/");
        let r = propfind(&srv, &u, &path, "0", "<d:displayname/>").await;
        let m = ms(&r);
        assert_eq!(m.entries.len(), 1, "{}", r.body);
        assert_eq!(m.entries[0].text(&names::DISPLAYNAME), "Appointments");
        let r = propfind(
            &srv,
            &u,
            &format!("/dav/principals/{seg}/"),
            "0",
            "<c:calendar-home-set/>",
        )
        .await;
        assert_eq!(
            ms(&r).entries[0].hrefs(&caldav("calendar-home-set")),
            vec![u.home()]
        );
    }
    // An object PUT through the e-mail path is the same object.
    let by_mail = format!("/dav/calendars/{}/appointments/m.ics", u.email);
    let r = put(
        &srv,
        &u,
        &by_mail,
        &event("m", "20260302T090000Z", "20260302T100000Z", "Mail"),
        &[],
    )
    .await;
    assert_eq!(r.status, 201);
    let r = dav(
        &srv,
        &u,
        "GET",
        &format!("{}m.ics", u.cal("appointments")),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("SUMMARY:Mail"));
}

#[tokio::test]
async fn propfind_forms_and_depth() {
    let (srv, u) = setup().await;
    let cal = u.cal("appointments");
    put(
        &srv,
        &u,
        &format!("{cal}a.ics"),
        &event("a", "20260302T090000Z", "20260302T100000Z", "A"),
        &[],
    )
    .await;

    // Depth: infinity and a missing Depth are refused with the condition.
    for depth in [Some("infinity"), None] {
        let mut h = vec![];
        if let Some(d) = depth {
            h.push(("Depth", d));
        }
        let r = dav(&srv, &u, "PROPFIND", &cal, &h, "").await;
        assert_eq!(r.status, 403, "{depth:?}");
        assert_eq!(condition(&r), QName::dav("propfind-finite-depth"));
    }

    // An empty body is allprop: what exists, no 404s, no calendar-data.
    let r = dav(&srv, &u, "PROPFIND", &cal, &[("Depth", "1")], "").await;
    let m = ms(&r);
    assert_eq!(m.entries.len(), 2);
    let obj = m.get(&format!("{cal}a.ics"));
    assert!(obj.text(&names::GETETAG).starts_with('"'));
    assert!(obj
        .text(&names::GETCONTENTTYPE)
        .starts_with("text/calendar"));
    assert!(obj.text(&names::GETLASTMODIFIED).ends_with("GMT"));
    assert!(obj.prop(&names::CALENDAR_DATA).is_none());
    assert!(m
        .entries
        .iter()
        .all(|e| e.propstats.iter().all(|(s, _)| *s == 200)));

    // allprop with include adds what was asked.
    let r = dav(
        &srv,
        &u,
        "PROPFIND",
        &cal,
        &[("Depth", "0")],
        r#"<propfind xmlns="DAV:"><allprop/><include><sync-token/></include></propfind>"#,
    )
    .await;
    assert!(ms(&r)
        .get(&cal)
        .text(&names::SYNC_TOKEN)
        .starts_with("http://"));

    // propname lists names only.
    let r = dav(
        &srv,
        &u,
        "PROPFIND",
        &cal,
        &[("Depth", "0")],
        r#"<propfind xmlns="DAV:"><propname/></propfind>"#,
    )
    .await;
    let m = ms(&r);
    let e = m.get(&cal);
    for n in [
        names::GETCTAG,
        names::SYNC_TOKEN,
        names::SUPPORTED_CALENDAR_COMPONENT_SET,
    ] {
        assert!(e.found(&n).children.is_empty(), "{n}");
    }

    // Prefer: return=minimal leaves out the 404s.
    let r = dav(
        &srv,
        &u,
        "PROPFIND",
        &cal,
        &[("Depth", "0"), ("Prefer", "return=minimal")],
        r#"<propfind xmlns="DAV:"><prop><displayname/><quota-used-bytes/></prop></propfind>"#,
    )
    .await;
    let m = ms(&r);
    assert_eq!(r.header("preference-applied"), Some("return=minimal"));
    assert!(m.get(&cal).prop(&names::QUOTA_USED_BYTES).is_none());

    // An object asked for calendar-data and its length.
    let r = propfind(
        &srv,
        &u,
        &format!("{cal}a.ics"),
        "0",
        "<c:calendar-data/><d:getcontentlength/><d:displayname/>",
    )
    .await;
    let m = ms(&r);
    let e = m.get(&format!("{cal}a.ics"));
    assert!(e.text(&names::CALENDAR_DATA).contains("UID:a"));
    assert!(e.text(&names::GETCONTENTLENGTH).parse::<usize>().unwrap() > 50);
    assert_eq!(e.status_of(&names::DISPLAYNAME), Some(404));

    // Depth 1 on the root and the collections of principals and homes.
    let r = propfind(&srv, &u, "/dav/", "1", "<d:resourcetype/>").await;
    assert_eq!(
        ms(&r).hrefs(),
        BTreeSet::from([
            "/dav/".into(),
            "/dav/principals/".into(),
            "/dav/calendars/".into()
        ])
    );
    let r = propfind(&srv, &u, "/dav/principals/", "1", "<d:resourcetype/>").await;
    assert_eq!(
        ms(&r).hrefs(),
        BTreeSet::from(["/dav/principals/".into(), u.principal()])
    );
    let r = propfind(&srv, &u, "/dav/calendars/", "1", "<d:resourcetype/>").await;
    assert_eq!(
        ms(&r).hrefs(),
        BTreeSet::from(["/dav/calendars/".into(), u.home()])
    );

    // Missing things are 404s.
    let r = propfind(&srv, &u, &u.cal("nope"), "0", "<d:resourcetype/>").await;
    assert_eq!(r.status, 404);
    let r = propfind(&srv, &u, &format!("{cal}nope.ics"), "0", "<d:getetag/>").await;
    assert_eq!(r.status, 404);
}

// ---------------------------------------------------------------- auth and isolation

#[tokio::test]
async fn authentication_and_its_failures() {
    let (srv, u) = setup().await;
    let path = u.cal("appointments");
    let no_auth = raw(&srv, None, "PROPFIND", &path, &[("Depth", "0")], "").await;
    let wrong_pw = raw(
        &srv,
        Some((&u.email, "wrong-password")),
        "PROPFIND",
        &path,
        &[("Depth", "0")],
        "",
    )
    .await;
    let wrong_user = raw(
        &srv,
        Some(("nobody@acme.example", &u.password)),
        "PROPFIND",
        &path,
        &[("Depth", "0")],
        "",
    )
    .await;
    for r in [&no_auth, &wrong_pw, &wrong_user] {
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"calbridge\"")
        );
    }
    // No hint which part was wrong.
    assert_eq!(wrong_pw.body, wrong_user.body);
    assert!(!wrong_pw.body.to_lowercase().contains("password is"));
    // The user name is case-insensitive, like e-mail.
    let r = raw(
        &srv,
        Some((&u.email.to_uppercase(), &u.password)),
        "PROPFIND",
        &path,
        &[("Depth", "0")],
        "",
    )
    .await;
    assert_eq!(r.status, 207);
    // A write with bad credentials stores nothing.
    let r = raw(
        &srv,
        Some((&u.email, "wrong")),
        "PUT",
        &format!("{path}x.ics"),
        &[],
        event("x", "20260302T090000Z", "20260302T100000Z", "X"),
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(members(&srv, &u, &path).await.is_empty());
}

#[tokio::test]
async fn a_staff_member_sees_only_their_own_home() {
    let srv = TestServer::start().await;
    let c = company(&srv).await;
    let a = user(&srv, &c, "Anna").await;
    let b = user(&srv, &c, "Bob").await;
    let a_obj = format!("{}secret.ics", a.cal("appointments"));
    assert_eq!(
        put(
            &srv,
            &a,
            &a_obj,
            &event("secret", "20260302T090000Z", "20260302T100000Z", "Secret"),
            &[]
        )
        .await
        .status,
        201
    );
    let before = token(&srv, &a, &a.cal("appointments")).await;

    // Bob, by Anna's id or e-mail (raw, encoded), reads and writes nothing.
    for seg in [
        a.staff.clone(),
        a.email.clone(),
        a.email.replace('@', "%40"),
    ] {
        let cal = format!("/dav/calendars/{seg}/appointments/");
        let obj = format!("{cal}secret.ics");
        let r = propfind(
            &srv,
            &b,
            &format!("/dav/calendars/{seg}/"),
            "1",
            "<d:displayname/>",
        )
        .await;
        assert_eq!(r.status, 404, "{seg}");
        assert_eq!(
            propfind(&srv, &b, &cal, "0", "<d:displayname/>")
                .await
                .status,
            404
        );
        assert_eq!(dav(&srv, &b, "GET", &obj, &[], "").await.status, 404);
        assert_eq!(dav(&srv, &b, "DELETE", &obj, &[], "").await.status, 404);
        let r = put(
            &srv,
            &b,
            &format!("{cal}new.ics"),
            &event("bobs", "20260302T090000Z", "20260302T100000Z", "B"),
            &[],
        )
        .await;
        assert_eq!(r.status, 404);
        let r = dav(
            &srv,
            &b,
            "MKCALENDAR",
            &format!("/dav/calendars/{seg}/x/"),
            &[],
            "",
        )
        .await;
        assert_eq!(r.status, 404);
        let r = propfind(
            &srv,
            &b,
            &format!("/dav/principals/{seg}/"),
            "0",
            "<d:displayname/>",
        )
        .await;
        assert_eq!(r.status, 404);
        let r = report(
            &srv,
            &b,
            &cal,
            "1",
            r#"<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/></d:prop><c:filter><c:comp-filter name="VCALENDAR"/></c:filter></c:calendar-query>"#,
        )
        .await;
        assert_eq!(r.status, 404);
    }
    // A multiget from Bob's own calendar naming Anna's object: 404 inside.
    let r = report(
        &srv,
        &b,
        &b.cal("appointments"),
        "1",
        &format!(
            r#"<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:calendar-data/></d:prop><d:href>{a_obj}</d:href></c:calendar-multiget>"#
        ),
    )
    .await;
    let m = ms(&r);
    assert_eq!(m.get(&a_obj).status, Some(404));
    assert!(!r.body.contains("Secret"));
    // Nothing of Anna's changed.
    assert_eq!(token(&srv, &a, &a.cal("appointments")).await, before);
    let r = dav(&srv, &a, "GET", &a_obj, &[], "").await;
    assert!(r.body.contains("SUMMARY:Secret"));
}

/// The status of a request sent byte for byte over TCP (HTTP clients
/// normalise `..` and `%2e%2e` away before sending).
async fn raw_status(srv: &TestServer, u: &User, method: &str, path: &str) -> u16 {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = srv.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", u.email, u.password));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\nDepth: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    status_code(text.lines().next().unwrap_or(""))
}

#[tokio::test]
async fn paths_outside_the_layout_and_traversal() {
    let (srv, u) = setup().await;
    let home = u.home();
    let cases = [
        (format!("{home}../"), 403),
        (format!("{home}%2e%2e/%2E%2E/"), 403),
        (format!("{home}appointments/..%2F..%2Fx.ics"), 403),
        (format!("{home}appointments/a%5cb.ics"), 403),
        (format!("{home}appointments/%ff.ics"), 403),
        ("/dav/../api/v1/companies".to_string(), 403),
        ("/dav/./calendars/".to_string(), 403),
        ("/dav/other/".to_string(), 404),
        (format!("{home}appointments/x.ics/y"), 404),
    ];
    for (path, want) in cases {
        assert_eq!(
            raw_status(&srv, &u, "PROPFIND", &path).await,
            want,
            "{path}"
        );
        assert_eq!(raw_status(&srv, &u, "DELETE", &path).await, want, "{path}");
        let put_status = raw_status(&srv, &u, "PUT", &path).await;
        assert!(put_status == want, "PUT {path}: {put_status}");
    }
    assert!(members(&srv, &u, &u.cal("appointments")).await.is_empty());
    // Outside /dav/ CalDAV methods are not served; only the root sends
    // PROPFIND on to /dav/ (clients given the bare host).
    let r = dav(&srv, &u, "PROPFIND", "/", &[("Depth", "0")], "").await;
    assert_eq!(r.status, 301);
    let r = dav(&srv, &u, "PROPFIND", "/api/", &[("Depth", "0")], "").await;
    assert_eq!(r.status, 404);
    let r = dav(&srv, &u, "DELETE", "/", &[], "").await;
    assert_eq!(r.status, 404);
}

// ---------------------------------------------------------------- objects

#[tokio::test]
async fn objects_with_strong_etags_and_conditions() {
    let (srv, u) = setup().await;
    let cal = u.cal("appointments");
    let obj = format!("{cal}dentist.ics");
    let body = event("dentist", "20260302T090000Z", "20260302T100000Z", "Dentist");
    let t0 = token(&srv, &u, &cal).await;

    let r = put(&srv, &u, &obj, &body, &[("If-None-Match", "*")]).await;
    assert_eq!(r.status, 201);
    let etag = r.header("etag").unwrap().to_string();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
    let t1 = token(&srv, &u, &cal).await;
    assert_ne!(t0, t1, "a write bumps the sync token");

    // GET returns the bytes as PUT, with the same ETag.
    let r = dav(&srv, &u, "GET", &obj, &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/calendar"));
    assert!(r.header("last-modified").is_some());
    let r = dav(&srv, &u, "HEAD", &obj, &[], "").await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    assert_eq!(
        r.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    let r = dav(&srv, &u, "GET", &obj, &[("If-None-Match", &etag)], "").await;
    assert_eq!(r.status, 304);
    let r = dav(&srv, &u, "GET", &obj, &[("If-Match", "\"other\"")], "").await;
    assert_eq!(r.status, 412);

    // PROPFIND shows the same ETag.
    let r = propfind(&srv, &u, &obj, "0", "<d:getetag/>").await;
    assert_eq!(ms(&r).get(&obj).text(&names::GETETAG), etag);

    // Creating again or updating with a stale ETag: 412, nothing changes.
    let changed = body.replace("Dentist", "Dentist moved");
    assert_eq!(
        put(&srv, &u, &obj, &changed, &[("If-None-Match", "*")])
            .await
            .status,
        412
    );
    assert_eq!(
        put(&srv, &u, &obj, &changed, &[("If-Match", "\"stale\"")])
            .await
            .status,
        412
    );
    assert_eq!(
        put(&srv, &u, &obj, &changed, &[("If-Match", "W/\"x\"")])
            .await
            .status,
        412
    );
    assert_eq!(token(&srv, &u, &cal).await, t1);

    // The right ETag updates: 204 with the new ETag.
    let r = put(&srv, &u, &obj, &changed, &[("If-Match", &etag)]).await;
    assert_eq!(r.status, 204);
    let etag2 = r.header("etag").unwrap().to_string();
    assert_ne!(etag, etag2);
    let t2 = token(&srv, &u, &cal).await;
    assert_ne!(t1, t2);

    // An identical PUT changes nothing: same ETag, same sync token.
    let r = put(&srv, &u, &obj, &changed, &[]).await;
    assert_eq!((r.status, r.header("etag")), (204, Some(etag2.as_str())));
    assert_eq!(token(&srv, &u, &cal).await, t2);

    // DELETE honours If-Match too.
    assert_eq!(
        dav(&srv, &u, "DELETE", &obj, &[("If-Match", &etag)], "")
            .await
            .status,
        412
    );
    assert_eq!(
        dav(&srv, &u, "DELETE", &obj, &[("If-Match", &etag2)], "")
            .await
            .status,
        204
    );
    assert_eq!(dav(&srv, &u, "GET", &obj, &[], "").await.status, 404);
    assert_eq!(dav(&srv, &u, "DELETE", &obj, &[], "").await.status, 404);
    assert_ne!(token(&srv, &u, &cal).await, t2);

    // If-Match: * needs the object to exist.
    assert_eq!(
        put(&srv, &u, &obj, &body, &[("If-Match", "*")])
            .await
            .status,
        412
    );
}

#[tokio::test]
async fn a_recurring_event_and_its_overrides_are_one_resource() {
    let (srv, u) = setup().await;
    let cal = u.cal("appointments");
    let body = vcal(
        "BEGIN:VEVENT\nUID:weekly\nDTSTAMP:20260101T000000Z\nDTSTART;TZID=Europe/Berlin:20260105T090000\nDTEND;TZID=Europe/Berlin:20260105T100000\nRRULE:FREQ=WEEKLY;COUNT=10\nSUMMARY:Standup\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:weekly\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:20260112T090000\nDTSTART;TZID=Europe/Berlin:20260113T140000\nDTEND;TZID=Europe/Berlin:20260113T150000\nSUMMARY:Standup (moved)\nEND:VEVENT",
    );
    assert_eq!(
        put(&srv, &u, &format!("{cal}weekly.ics"), &body, &[])
            .await
            .status,
        201
    );
    assert_eq!(members(&srv, &u, &cal).await.len(), 1);
    // The override alone under another name is a UID conflict.
    let lone = vcal("BEGIN:VEVENT\nUID:weekly\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID:20260119T080000Z\nDTSTART:20260119T100000Z\nSUMMARY:x\nEND:VEVENT");
    let r = put(&srv, &u, &format!("{cal}other.ics"), &lone, &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(condition(&r), caldav("no-uid-conflict"));
    assert!(r.body.contains(&format!("{cal}weekly.ics")), "{}", r.body);
}

#[tokio::test]
async fn bad_objects_are_refused_with_their_precondition_and_nothing_is_stored() {
    let (srv, u) = setup().await;
    let cal = u.cal("appointments");
    put(
        &srv,
        &u,
        &format!("{cal}taken.ics"),
        &event("taken", "20260302T090000Z", "20260302T100000Z", "T"),
        &[],
    )
    .await;
    let before = token(&srv, &u, &cal).await;
    let two_uids = vcal("BEGIN:VEVENT\nUID:1\nDTSTART:20260101T100000Z\nEND:VEVENT\nBEGIN:VEVENT\nUID:2\nDTSTART:20260101T100000Z\nEND:VEVENT");
    let todo = vcal("BEGIN:VTODO\nUID:t\nDTSTAMP:20260101T000000Z\nSUMMARY:a task\nEND:VTODO");
    let method = vcal("METHOD:REQUEST\nBEGIN:VEVENT\nUID:m\nDTSTART:20260101T100000Z\nEND:VEVENT");
    let no_start = vcal("BEGIN:VEVENT\nUID:ns\nSUMMARY:when?\nEND:VEVENT");
    let conflict = event("taken", "20260303T090000Z", "20260303T100000Z", "Again");
    let cases: Vec<(&str, String, &str, u16, &str)> = vec![
        (
            "not ical",
            "hello world".into(),
            "text/calendar",
            403,
            "valid-calendar-data",
        ),
        (
            "vcard",
            "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nEND:VCARD\r\n".into(),
            "text/calendar",
            403,
            "valid-calendar-data",
        ),
        (
            "no start",
            no_start,
            "text/calendar",
            403,
            "valid-calendar-data",
        ),
        (
            "two uids",
            two_uids,
            "text/calendar",
            403,
            "valid-calendar-object-resource",
        ),
        (
            "method",
            method,
            "text/calendar",
            403,
            "valid-calendar-object-resource",
        ),
        (
            "todo",
            todo,
            "text/calendar",
            403,
            "supported-calendar-component",
        ),
        (
            "uid conflict",
            conflict,
            "text/calendar",
            403,
            "no-uid-conflict",
        ),
        (
            "json",
            "{}".into(),
            "application/json",
            403,
            "supported-calendar-data",
        ),
    ];
    for (what, body, ct, status, cond) in cases {
        let r = dav(
            &srv,
            &u,
            "PUT",
            &format!("{cal}bad.ics"),
            &[("Content-Type", ct)],
            body,
        )
        .await;
        assert_eq!(r.status, status, "{what}: {}", r.body);
        assert_eq!(condition(&r), caldav(cond), "{what}");
        // The error says what was wrong.
        assert!(r.body.contains("error-description"), "{what}: {}", r.body);
    }
    // Not UTF-8.
    let r = dav(
        &srv,
        &u,
        "PUT",
        &format!("{cal}bad.ics"),
        &[("Content-Type", "text/calendar")],
        b"BEGIN:VCALENDAR\r\nSUMMARY:M\xfcller\r\nEND:VCALENDAR\r\n".to_vec(),
    )
    .await;
    assert_eq!(condition(&r), caldav("valid-calendar-data"));
    // A compressed body is refused.
    let r = dav(
        &srv,
        &u,
        "PUT",
        &format!("{cal}bad.ics"),
        &[("Content-Encoding", "gzip")],
        vec![0x1f, 0x8b],
    )
    .await;
    assert_eq!(r.status, 415);
    assert_eq!(token(&srv, &u, &cal).await, before);
    assert_eq!(members(&srv, &u, &cal).await.len(), 1);
    // PUT where no calendar holds objects.
    let r = put(
        &srv,
        &u,
        &format!("{}loose.ics", u.home()),
        &event("l", "20260302T090000Z", "20260302T100000Z", "L"),
        &[],
    )
    .await;
    assert_eq!(r.status, 409);
    assert_eq!(condition(&r), caldav("calendar-collection-location-ok"));
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_and_store_nothing() {
    let srv = TestServer::start_with(|raw| raw.set("server.dav_max_body", "4KiB".into())).await;
    let c = company(&srv).await;
    let u = user(&srv, &c, "Anna").await;
    let cal = u.cal("appointments");
    let big = event(
        "big",
        "20260302T090000Z",
        "20260302T100000Z",
        &"x".repeat(5000),
    );
    let r = put(&srv, &u, &format!("{cal}big.ics"), &big, &[]).await;
    assert_eq!(r.status, 413);
    assert_eq!(condition(&r), caldav("max-resource-size"));
    let r = propfind(
        &srv,
        &u,
        &cal,
        "0",
        &format!("<d:displayname/>{}", "<d:getetag/>".repeat(400)),
    )
    .await;
    assert_eq!(r.status, 413);
    let r = propfind(&srv, &u, &cal, "1", "<c:max-resource-size/>").await;
    let m = ms(&r);
    assert_eq!(m.get(&cal).text(&caldav("max-resource-size")), "4096");
    assert_eq!(m.entries.len(), 1, "nothing stored");
}

#[tokio::test]
async fn hostile_and_malformed_xml() {
    let (srv, u) = setup().await;
    let cal = u.cal("appointments");
    let before = token(&srv, &u, &cal).await;
    let bodies = [
        "<d:propfind xmlns:d=\"DAV:\"><d:prop><d:getetag></d:prop>",
        "not xml at all",
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;\">]><d:propfind xmlns:d=\"DAV:\"><d:prop><d:displayname>&lol2;</d:displayname></d:prop></d:propfind>",
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><d:propfind xmlns:d=\"DAV:\"><d:prop>&xxe;</d:prop></d:propfind>",
        "<d:propfind xmlns:d=\"DAV:\"><d:prop>&undeclared;</d:prop></d:propfind>",
    ];
    for body in bodies {
        let r = dav(&srv, &u, "PROPFIND", &cal, &[("Depth", "0")], body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(!r.body.contains("root:"), "no entity was ever expanded");
        let r = dav(&srv, &u, "REPORT", &cal, &[("Depth", "1")], body).await;
        assert_eq!(r.status, 400);
        let update = body.replace("propfind", "propertyupdate");
        let r = dav(&srv, &u, "PROPPATCH", &cal, &[], update).await;
        assert_eq!(r.status, 400);
        let r = dav(
            &srv,
            &u,
            "MKCALENDAR",
            &u.cal("hostile"),
            &[],
            body.replace("propfind", "mkcalendar"),
        )
        .await;
        assert_eq!(r.status, 400);
    }
    // An unknown report is refused with DAV:supported-report.
    let r = report(&srv, &u, &cal, "1", r#"<x:nope xmlns:x="urn:x"/>"#).await;
    assert_eq!(r.status, 403);
    assert_eq!(condition(&r), names::SUPPORTED_REPORT);
    assert_eq!(token(&srv, &u, &cal).await, before);
    let r = propfind(&srv, &u, &u.home(), "1", "<d:resourcetype/>").await;
    assert_eq!(ms(&r).entries.len(), 2, "no calendar was created");
    // Unknown methods.
    let r = dav(&srv, &u, "LOCK", &cal, &[], "").await;
    assert_eq!(r.status, 405);
    assert!(r.header("allow").unwrap().contains("PROPFIND"));
}

// ---------------------------------------------------------------- collections

#[tokio::test]
async fn proppatch_is_all_or_nothing() {
    let (srv, u) = setup().await;
    let cal = u.cal("appointments");
    let r = dav(
        &srv,
        &u,
        "PROPPATCH",
        &cal,
        &[],
        r##"<d:propertyupdate xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:i="http://apple.com/ns/ical/"><d:set><d:prop>
            <d:displayname>Work &amp; life</d:displayname><i:calendar-color symbolic-color="custom">#63DA38FF</i:calendar-color>
            <i:calendar-order>3</i:calendar-order><c:calendar-description>Mine</c:calendar-description></d:prop></d:set></d:propertyupdate>"##,
    )
    .await;
    let m = ms(&r);
    let e = m.get(&cal);
    for n in [
        names::DISPLAYNAME,
        names::CALENDAR_COLOR,
        names::CALENDAR_ORDER,
        names::CALENDAR_DESCRIPTION,
    ] {
        assert_eq!(e.status_of(&n), Some(200), "{n}");
    }
    let r = propfind(
        &srv,
        &u,
        &cal,
        "0",
        "<d:displayname/><i:calendar-color/><i:calendar-order/><c:calendar-description/>",
    )
    .await;
    let m = ms(&r);
    let e = m.get(&cal);
    assert_eq!(e.text(&names::DISPLAYNAME), "Work & life");
    assert_eq!(e.text(&names::CALENDAR_COLOR), "#63DA38");
    assert_eq!(e.text(&names::CALENDAR_ORDER), "3");
    assert_eq!(e.text(&names::CALENDAR_DESCRIPTION), "Mine");

    // One protected, one unknown and one bad value: 403/403/409, the rest 424, nothing applied.
    let r = dav(
        &srv,
        &u,
        "PROPPATCH",
        &cal,
        &[],
        r#"<d:propertyupdate xmlns:d="DAV:" xmlns:i="http://apple.com/ns/ical/" xmlns:x="urn:x"><d:set><d:prop>
            <d:displayname>Changed</d:displayname><d:getetag>"x"</d:getetag><x:dead>v</x:dead><i:calendar-order>three</i:calendar-order></d:prop></d:set></d:propertyupdate>"#,
    )
    .await;
    let m = ms(&r);
    let e = m.get(&cal);
    assert_eq!(e.status_of(&names::DISPLAYNAME), Some(424));
    assert_eq!(e.status_of(&names::GETETAG), Some(403));
    assert_eq!(e.status_of(&QName::new("urn:x", "dead")), Some(403));
    assert_eq!(e.status_of(&names::CALENDAR_ORDER), Some(409));
    assert!(
        r.body.contains("cannot-modify-protected-property"),
        "{}",
        r.body
    );
    let r = propfind(&srv, &u, &cal, "0", "<d:displayname/>").await;
    assert_eq!(ms(&r).get(&cal).text(&names::DISPLAYNAME), "Work & life");

    // Removing a property clears it.
    let r = dav(
        &srv,
        &u,
        "PROPPATCH",
        &cal,
        &[],
        r#"<d:propertyupdate xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:remove><d:prop><c:calendar-description/></d:prop></d:remove></d:propertyupdate>"#,
    )
    .await;
    assert_eq!(
        ms(&r).get(&cal).status_of(&names::CALENDAR_DESCRIPTION),
        Some(200)
    );
    let r = propfind(&srv, &u, &cal, "0", "<c:calendar-description/>").await;
    assert_eq!(
        ms(&r).get(&cal).status_of(&names::CALENDAR_DESCRIPTION),
        Some(404)
    );

    // The principal's properties are not changeable.
    let r = dav(
        &srv,
        &u,
        "PROPPATCH",
        &u.principal(),
        &[],
        r#"<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>X</d:displayname></d:prop></d:set></d:propertyupdate>"#,
    )
    .await;
    assert_eq!(
        ms(&r).get(&u.principal()).status_of(&names::DISPLAYNAME),
        Some(403)
    );
}

#[tokio::test]
async fn mkcalendar_mkcol_and_delete_of_calendars() {
    let (srv, u) = setup().await;
    let work = u.cal("work");
    let tz = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTIMEZONE\r\nTZID:America/New_York\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n";
    let r = dav(
        &srv,
        &u,
        "MKCALENDAR",
        &work,
        &[],
        format!(
            r##"<c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:i="http://apple.com/ns/ical/"><d:set><d:prop>
            <d:displayname>Work</d:displayname><i:calendar-color>#FF9500FF</i:calendar-color><i:calendar-order>2</i:calendar-order>
            <c:supported-calendar-component-set><c:comp name="VEVENT"/></c:supported-calendar-component-set>
            <c:calendar-timezone><![CDATA[{tz}]]></c:calendar-timezone>
            <c:schedule-calendar-transp><c:opaque/></c:schedule-calendar-transp></d:prop></d:set></c:mkcalendar>"##
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = propfind(&srv, &u, &work, "0", "<d:displayname/><i:calendar-color/><i:calendar-order/><c:calendar-timezone/><d:resourcetype/><d:sync-token/>").await;
    let m = ms(&r);
    let e = m.get(&work);
    assert_eq!(e.text(&names::DISPLAYNAME), "Work");
    assert_eq!(e.text(&names::CALENDAR_COLOR), "#FF9500");
    assert_eq!(e.text(&names::CALENDAR_ORDER), "2");
    assert!(e
        .text(&names::CALENDAR_TIMEZONE)
        .contains("TZID:America/New_York"));
    assert!(e.kinds(&names::RESOURCETYPE).contains(&names::CALENDAR));
    // Again: the resource must be null.
    let r = dav(&srv, &u, "MKCALENDAR", &work, &[], "").await;
    assert_eq!(r.status, 405);
    assert_eq!(condition(&r), QName::dav("resource-must-be-null"));
    // Inside a calendar or outside the home: not a place for calendars.
    let r = dav(&srv, &u, "MKCALENDAR", &format!("{work}sub"), &[], "").await;
    assert_eq!(condition(&r), caldav("calendar-collection-location-ok"));
    let r = dav(&srv, &u, "MKCALENDAR", "/dav/principals/", &[], "").await;
    assert_eq!(r.status, 403);

    // A calendar created without a component set takes events, tasks and
    // journals, and says so.
    let mixed = u.cal("mixed");
    assert_eq!(
        dav(&srv, &u, "MKCALENDAR", &mixed, &[], "").await.status,
        201
    );
    let r = propfind(
        &srv,
        &u,
        &mixed,
        "0",
        "<c:supported-calendar-component-set/>",
    )
    .await;
    let comps: Vec<String> = ms(&r)
        .get(&mixed)
        .found(&names::SUPPORTED_CALENDAR_COMPONENT_SET)
        .elements()
        .map(|c| c.attr("name").unwrap().to_string())
        .collect();
    assert_eq!(comps, vec!["VEVENT", "VTODO", "VJOURNAL"]);
    let todo = vcal("BEGIN:VTODO\nUID:mixed-t\nDTSTAMP:20260101T000000Z\nSUMMARY:Task\nEND:VTODO");
    assert_eq!(
        put(&srv, &u, &format!("{mixed}t.ics"), &todo, &[])
            .await
            .status,
        201
    );
    let journal =
        vcal("BEGIN:VJOURNAL\nUID:mixed-j\nDTSTAMP:20260101T000000Z\nSUMMARY:Note\nEND:VJOURNAL");
    assert_eq!(
        put(&srv, &u, &format!("{mixed}j.ics"), &journal, &[])
            .await
            .status,
        201
    );

    // A task list holds tasks; the appointments calendar does not.
    let tasks = u.cal("tasks");
    let r = dav(
        &srv,
        &u,
        "MKCALENDAR",
        &tasks,
        &[],
        r#"<c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop><c:supported-calendar-component-set><c:comp name="VTODO"/></c:supported-calendar-component-set></d:prop></d:set></c:mkcalendar>"#,
    )
    .await;
    assert_eq!(r.status, 201);
    let todo = vcal("BEGIN:VTODO\nUID:t1\nDTSTAMP:20260101T000000Z\nDUE:20260110T120000Z\nSUMMARY:Task\nEND:VTODO");
    assert_eq!(
        put(&srv, &u, &format!("{tasks}t1.ics"), &todo, &[])
            .await
            .status,
        201
    );
    let ev = event("e1", "20260302T090000Z", "20260302T100000Z", "E");
    let r = put(&srv, &u, &format!("{tasks}e1.ics"), &ev, &[]).await;
    assert_eq!(condition(&r), caldav("supported-calendar-component"));
    let r = dav(
        &srv,
        &u,
        "MKCALENDAR",
        &u.cal("alarms"),
        &[],
        r#"<c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop><c:supported-calendar-component-set><c:comp name="VAVAILABILITY"/></c:supported-calendar-component-set></d:prop></d:set></c:mkcalendar>"#,
    )
    .await;
    assert_eq!(condition(&r), caldav("supported-calendar-component"));

    // Extended MKCOL makes a calendar; a plain collection is refused.
    let r = dav(
        &srv,
        &u,
        "MKCOL",
        &u.cal("team"),
        &[],
        r#"<d:mkcol xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop><d:resourcetype><d:collection/><c:calendar/></d:resourcetype><d:displayname>Team</d:displayname></d:prop></d:set></d:mkcol>"#,
    )
    .await;
    assert_eq!(r.status, 201);
    let r = dav(&srv, &u, "MKCOL", &u.cal("plain"), &[], "").await;
    assert_eq!(r.status, 403);
    assert_eq!(condition(&r), QName::dav("valid-resourcetype"));

    let r = propfind(&srv, &u, &u.home(), "1", "<d:displayname/>").await;
    assert_eq!(
        ms(&r).hrefs(),
        BTreeSet::from([
            u.home(),
            u.cal("appointments"),
            work.clone(),
            tasks.clone(),
            u.cal("team"),
            u.cal("mixed")
        ])
    );

    // Delete what was made; appointments stays.
    put(&srv, &u, &format!("{work}w.ics"), &ev, &[]).await;
    assert_eq!(dav(&srv, &u, "DELETE", &work, &[], "").await.status, 204);
    assert_eq!(
        propfind(&srv, &u, &work, "0", "<d:displayname/>")
            .await
            .status,
        404
    );
    let r = dav(&srv, &u, "DELETE", &u.cal("appointments"), &[], "").await;
    assert_eq!(r.status, 403);
    assert_eq!(condition(&r), names::NEED_PRIVILEGES);
    assert_eq!(
        dav(&srv, &u, "DELETE", &u.home(), &[], "").await.status,
        403
    );
    assert_eq!(
        dav(&srv, &u, "DELETE", &u.cal("gone"), &[], "")
            .await
            .status,
        404
    );
    // The same UID may live in two calendars.
    assert_eq!(
        put(&srv, &u, &format!("{}w.ics", u.cal("team")), &ev, &[])
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn read_only_mirrored_calendars_refuse_writes() {
    use calbridge::model::{AccountId, Calendar, CalendarId, CalendarSource, Direction, StaffId};
    use calbridge::store::db::{EventWrite, Precondition};
    let (srv, u) = setup().await;
    let db = srv.app.db.clone();
    let staff = db.staff(&StaffId(u.staff.clone())).unwrap().unwrap();
    let mirrored = Calendar {
        id: CalendarId::generate(),
        company: staff.company.clone(),
        staff: staff.id.clone(),
        slug: "google-team".into(),
        name: "Team (Google)".into(),
        color: Some("#4285F4".into()),
        description: None,
        order: Some(10),
        source: CalendarSource::Mirrored {
            account: AccountId("acc_testtesttest".into()),
            remote_id: "team@group.calendar.google.com".into(),
        },
        direction: Direction::ReadOnly,
        primary: false,
        conflicts: true,
        timezone: None,
        created: 0,
        components: None,
    };
    db.create_calendar(&mirrored).unwrap();
    let body = event("remote1", "20260302T090000Z", "20260302T100000Z", "Remote");
    db.put_event(
        EventWrite {
            calendar: mirrored.id.clone(),
            href: "remote1.ics".into(),
            uid: "remote1".into(),
            start: 1_772_442_000,
            end: 1_772_445_600,
            recurring: false,
            body: body.clone().into_bytes(),
            remote: None,
            id: None,
            last_modified: None,
        },
        &Precondition::None,
        |_, _| Ok(Default::default()),
    )
    .unwrap();
    let cal = u.cal("google-team");
    let obj = format!("{cal}remote1.ics");
    let before = token(&srv, &u, &cal).await;

    let r = propfind(
        &srv,
        &u,
        &cal,
        "1",
        "<d:current-user-privilege-set/><d:getetag/>",
    )
    .await;
    let m = ms(&r);
    let privileges: Vec<QName> = m
        .get(&cal)
        .found(&names::CURRENT_USER_PRIVILEGE_SET)
        .children_named(&names::PRIVILEGE)
        .flat_map(|p| p.elements().map(|e| e.name.clone()).collect::<Vec<_>>())
        .collect();
    assert!(privileges.contains(&names::READ));
    assert!(!privileges
        .iter()
        .any(|p| p.local.starts_with("write") || *p == names::BIND));
    assert!(m.get(&obj).text(&names::GETETAG).starts_with('"'));
    assert_eq!(dav(&srv, &u, "GET", &obj, &[], "").await.body, body);

    let r = put(&srv, &u, &obj, &body.replace("Remote", "Mine"), &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(condition(&r), names::NEED_PRIVILEGES);
    assert!(r.body.contains("write-content"), "{}", r.body);
    let r = put(
        &srv,
        &u,
        &format!("{cal}new.ics"),
        &event("n", "20260302T090000Z", "20260302T100000Z", "N"),
        &[],
    )
    .await;
    assert_eq!(condition(&r), names::NEED_PRIVILEGES);
    let r = dav(&srv, &u, "DELETE", &obj, &[], "").await;
    assert_eq!(condition(&r), names::NEED_PRIVILEGES);
    let r = dav(&srv, &u, "DELETE", &cal, &[], "").await;
    assert_eq!(condition(&r), names::NEED_PRIVILEGES);
    let r = dav(
        &srv,
        &u,
        "PROPPATCH",
        &cal,
        &[],
        r#"<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>X</d:displayname></d:prop></d:set></d:propertyupdate>"#,
    )
    .await;
    assert_eq!(ms(&r).get(&cal).status_of(&names::DISPLAYNAME), Some(403));
    assert!(r.body.contains("need-privileges"));
    assert_eq!(token(&srv, &u, &cal).await, before);
    assert_eq!(dav(&srv, &u, "GET", &obj, &[], "").await.body, body);
}

// ---------------------------------------------------------------- reports

/// A calendar with a timed event, an all-day event, a weekly series with a
/// moved instance, a transparent event and one with an alarm.
async fn fill(srv: &TestServer, u: &User) -> String {
    let cal = u.cal("appointments");
    let objects = [
        ("timed", event("timed", "20260302T090000Z", "20260302T100000Z", "Massage with Ana")),
        ("allday", vcal("BEGIN:VEVENT\nUID:allday\nDTSTAMP:20260101T000000Z\nDTSTART;VALUE=DATE:20260305\nDTEND;VALUE=DATE:20260306\nSUMMARY:Holiday\nEND:VEVENT")),
        ("weekly", vcal("BEGIN:VEVENT\nUID:weekly\nDTSTAMP:20260101T000000Z\nDTSTART;TZID=Europe/Berlin:20260105T090000\nDTEND;TZID=Europe/Berlin:20260105T100000\nRRULE:FREQ=WEEKLY;COUNT=12\nSUMMARY:Standup\nATTENDEE;PARTSTAT=ACCEPTED;CN=Bob:mailto:bob@acme.example\nEND:VEVENT\n\
             BEGIN:VEVENT\nUID:weekly\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:20260302T090000\nDTSTART;TZID=Europe/Berlin:20260303T150000\nDTEND;TZID=Europe/Berlin:20260303T160000\nSUMMARY:Standup (moved)\nEND:VEVENT")),
        ("free", vcal("BEGIN:VEVENT\nUID:free\nDTSTAMP:20260101T000000Z\nDTSTART:20260304T120000Z\nDTEND:20260304T130000Z\nTRANSP:TRANSPARENT\nSUMMARY:Lunch (free)\nEND:VEVENT")),
        ("alarm", vcal("BEGIN:VEVENT\nUID:alarm\nDTSTAMP:20260101T000000Z\nDTSTART:20260410T090000Z\nDTEND:20260410T100000Z\nSUMMARY:Dentist\nBEGIN:VALARM\nACTION:DISPLAY\nDESCRIPTION:x\nTRIGGER:-P1D\nEND:VALARM\nEND:VEVENT")),
    ];
    for (name, body) in objects {
        let r = put(srv, u, &format!("{cal}{name}.ics"), &body, &[]).await;
        assert_eq!(r.status, 201, "{name}: {}", r.body);
    }
    cal
}

fn query(props: &str, filter: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop>{props}</d:prop><c:filter><c:comp-filter name="VCALENDAR">{filter}</c:comp-filter></c:filter></c:calendar-query>"#
    )
}

fn range_filter(start: &str, end: &str) -> String {
    format!(
        r#"<c:comp-filter name="VEVENT"><c:time-range start="{start}" end="{end}"/></c:comp-filter>"#
    )
}

fn names_of(m: &Ms, cal: &str) -> BTreeSet<String> {
    m.entries
        .iter()
        .map(|e| {
            e.href
                .strip_prefix(cal)
                .unwrap()
                .trim_end_matches(".ics")
                .to_string()
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn calendar_query_filters_are_recurrence_aware() {
    let (srv, u) = setup().await;
    let cal = fill(&srv, &u).await;
    let q = |filter: String| query("<d:getetag/>", &filter);
    let run = |body: String| {
        let srv = &srv;
        let u = &u;
        let cal = cal.clone();
        async move {
            let r = report(srv, u, &cal, "1", &body).await;
            names_of(&ms(&r), &cal)
        }
    };

    // Everything, and every VEVENT.
    assert_eq!(
        run(q(String::new())).await,
        set(&["timed", "allday", "weekly", "free", "alarm"])
    );
    assert_eq!(
        run(q(r#"<c:comp-filter name="VEVENT"/>"#.into()))
            .await
            .len(),
        5
    );
    // Tasks: none here.
    assert!(run(q(r#"<c:comp-filter name="VTODO"/>"#.into()))
        .await
        .is_empty());

    // March 2: the timed event; the series' March 2 instance moved to March 3.
    assert_eq!(
        run(q(range_filter("20260302T000000Z", "20260303T000000Z"))).await,
        set(&["timed"])
    );
    assert_eq!(
        run(q(range_filter("20260303T000000Z", "20260304T000000Z"))).await,
        set(&["weekly"])
    );
    // A plain weekly instance (Monday Feb 9, 08:00 UTC).
    assert_eq!(
        run(q(range_filter("20260209T075900Z", "20260209T080100Z"))).await,
        set(&["weekly"])
    );
    // After the series ended (12 weeks from Jan 5): nothing.
    assert!(run(q(range_filter("20260401T000000Z", "20260405T000000Z")))
        .await
        .is_empty());
    // The all-day event covers its whole day in the calendar's zone.
    assert_eq!(
        run(q(range_filter("20260305T120000Z", "20260305T130000Z"))).await,
        set(&["allday"])
    );
    // A whole month.
    assert_eq!(
        run(q(range_filter("20260301T000000Z", "20260401T000000Z"))).await,
        set(&["timed", "allday", "weekly", "free"])
    );
    // Open ends.
    assert_eq!(
        run(q(r#"<c:comp-filter name="VEVENT"><c:time-range start="20260401T000000Z"/></c:comp-filter>"#.into())).await,
        set(&["alarm"])
    );

    // Text, properties and parameters.
    let text = |prop: &str, inner: &str| {
        q(format!(
            r#"<c:comp-filter name="VEVENT"><c:prop-filter name="{prop}">{inner}</c:prop-filter></c:comp-filter>"#
        ))
    };
    assert_eq!(
        run(text("SUMMARY", "<c:text-match>massage</c:text-match>")).await,
        set(&["timed"])
    );
    assert_eq!(
        run(text(
            "SUMMARY",
            r#"<c:text-match collation="i;octet">massage</c:text-match>"#
        ))
        .await,
        set(&[])
    );
    assert_eq!(
        run(text(
            "SUMMARY",
            r#"<c:text-match negate-condition="yes">a</c:text-match>"#
        ))
        .await,
        set(&["free", "alarm"]),
        "Lunch and Dentist are the SUMMARYs without an 'a'"
    );
    assert_eq!(run(text("TRANSP", "")).await, set(&["free"]));
    assert_eq!(run(text("TRANSP", "<c:is-not-defined/>")).await.len(), 4);
    assert_eq!(
        run(text("ATTENDEE", r#"<c:param-filter name="PARTSTAT"><c:text-match>ACCEPTED</c:text-match></c:param-filter>"#)).await,
        set(&["weekly"])
    );
    // Alarms: triggers a day before April 10, 09:00.
    let alarm = |s: &str, e: &str| {
        q(format!(
            r#"<c:comp-filter name="VEVENT"><c:comp-filter name="VALARM"><c:time-range start="{s}" end="{e}"/></c:comp-filter></c:comp-filter>"#
        ))
    };
    assert_eq!(
        run(alarm("20260409T080000Z", "20260409T100000Z")).await,
        set(&["alarm"])
    );
    assert!(run(alarm("20260410T080000Z", "20260410T100000Z"))
        .await
        .is_empty());

    // A bad filter is a 4xx with a condition.
    let r = report(
        &srv,
        &u,
        &cal,
        "1",
        &query(
            "<d:getetag/>",
            r#"<c:comp-filter name="VEVENT"><c:time-range start="yesterday"/></c:comp-filter>"#,
        ),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(condition(&r), caldav("valid-filter"));

    // On an object URL the query applies to that object.
    let r = report(
        &srv,
        &u,
        &format!("{cal}timed.ics"),
        "0",
        &q(range_filter("20260302T000000Z", "20260303T000000Z")),
    )
    .await;
    assert_eq!(ms(&r).hrefs(), BTreeSet::from([format!("{cal}timed.ics")]));
}

#[tokio::test]
async fn calendar_data_expand_and_limit_recurrence_set() {
    let (srv, u) = setup().await;
    let cal = fill(&srv, &u).await;
    let data = |inner: &str| format!("<d:getetag/><c:calendar-data>{inner}</c:calendar-data>");
    // Plain calendar-data is the stored object.
    let r = report(
        &srv,
        &u,
        &cal,
        "1",
        &query(
            &data(""),
            &range_filter("20260302T000000Z", "20260303T000000Z"),
        ),
    )
    .await;
    let m = ms(&r);
    let stored = dav(&srv, &u, "GET", &format!("{cal}timed.ics"), &[], "")
        .await
        .body;
    assert_eq!(
        m.get(&format!("{cal}timed.ics"))
            .text(&names::CALENDAR_DATA),
        stored.trim()
    );

    // expand: every instance in the range as its own VEVENT in UTC.
    let r = report(
        &srv,
        &u,
        &cal,
        "1",
        &query(
            &data(r#"<c:expand start="20260223T000000Z" end="20260310T000000Z"/>"#),
            r#"<c:comp-filter name="VEVENT"><c:prop-filter name="UID"><c:text-match collation="i;octet">weekly</c:text-match></c:prop-filter></c:comp-filter>"#,
        ),
    )
    .await;
    let m = ms(&r);
    let text = m
        .get(&format!("{cal}weekly.ics"))
        .text(&names::CALENDAR_DATA);
    let expanded = calbridge::ics::parse(text.as_bytes()).unwrap();
    let events: Vec<_> = expanded.children_named("VEVENT").collect();
    assert_eq!(events.len(), 3, "{text}");
    let rids: Vec<&str> = events
        .iter()
        .map(|e| e.value("RECURRENCE-ID").unwrap())
        .collect();
    assert_eq!(
        rids,
        ["20260223T080000Z", "20260302T080000Z", "20260309T080000Z"]
    );
    assert_eq!(events[1].value("DTSTART"), Some("20260303T140000Z"));
    assert_eq!(events[1].value("SUMMARY"), Some("Standup (moved)"));
    assert!(events.iter().all(|e| e.prop("RRULE").is_none()));
    assert!(expanded.children_named("VTIMEZONE").next().is_none());

    // limit-recurrence-set: master kept, only overrides in the range.
    let limited = |s: &str, e: &str| {
        query(
            &data(&format!(
                r#"<c:limit-recurrence-set start="{s}" end="{e}"/>"#
            )),
            r#"<c:comp-filter name="VEVENT"><c:prop-filter name="UID"><c:text-match>weekly</c:text-match></c:prop-filter></c:comp-filter>"#,
        )
    };
    let r = report(
        &srv,
        &u,
        &cal,
        "1",
        &limited("20260101T000000Z", "20260201T000000Z"),
    )
    .await;
    let text = ms(&r)
        .get(&format!("{cal}weekly.ics"))
        .text(&names::CALENDAR_DATA);
    assert_eq!(text.matches("BEGIN:VEVENT").count(), 1, "{text}");
    assert!(text.contains("RRULE:"));
    let r = report(
        &srv,
        &u,
        &cal,
        "1",
        &limited("20260301T000000Z", "20260401T000000Z"),
    )
    .await;
    let text = ms(&r)
        .get(&format!("{cal}weekly.ics"))
        .text(&names::CALENDAR_DATA);
    assert_eq!(text.matches("BEGIN:VEVENT").count(), 2, "{text}");

    // Component and property selection.
    let r = report(
        &srv,
        &u,
        &cal,
        "1",
        &query(
            &data(r#"<c:comp name="VCALENDAR"><c:prop name="VERSION"/><c:comp name="VEVENT"><c:prop name="SUMMARY"/><c:prop name="UID"/></c:comp></c:comp>"#),
            &range_filter("20260302T000000Z", "20260303T000000Z"),
        ),
    )
    .await;
    let text = ms(&r)
        .get(&format!("{cal}timed.ics"))
        .text(&names::CALENDAR_DATA);
    assert!(text.contains("SUMMARY:Massage with Ana") && text.contains("UID:timed"));
    assert!(
        !text.contains("DTSTART") && !text.contains("PRODID"),
        "{text}"
    );
}

#[tokio::test]
async fn calendar_multiget() {
    let (srv, u) = setup().await;
    let cal = fill(&srv, &u).await;
    let hrefs = [
        format!("{cal}timed.ics"),
        format!("{cal}allday.ics"),
        format!("{cal}missing.ics"),
        format!(
            "/dav/calendars/{}/appointments/weekly.ics",
            u.email.replace('@', "%40")
        ),
        "/dav/calendars/stf_someoneelse123/appointments/x.ics".to_string(),
        format!("{cal}timed.ics"),
    ];
    let body = format!(
        r#"<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/><c:calendar-data/></d:prop>{}</c:calendar-multiget>"#,
        hrefs
            .iter()
            .map(|h| format!("<d:href>{h}</d:href>"))
            .collect::<String>()
    );
    let r = report(&srv, &u, &cal, "1", &body).await;
    let m = ms(&r);
    assert_eq!(m.entries.len(), 5, "duplicates answered once");
    assert!(m
        .get(&hrefs[0])
        .text(&names::CALENDAR_DATA)
        .contains("UID:timed"));
    assert!(m.get(&hrefs[1]).text(&names::GETETAG).starts_with('"'));
    assert_eq!(m.get(&hrefs[2]).status, Some(404));
    let by_mail = format!("/dav/calendars/{}/appointments/weekly.ics", u.email);
    assert!(m
        .get(&by_mail)
        .text(&names::CALENDAR_DATA)
        .contains("RRULE"));
    assert_eq!(m.get(&hrefs[4]).status, Some(404));
}

fn sync_body(token: &str, limit: Option<u32>) -> String {
    let limit = limit
        .map(|n| format!("<d:limit><d:nresults>{n}</d:nresults></d:limit>"))
        .unwrap_or_default();
    format!(
        r#"<d:sync-collection xmlns:d="DAV:"><d:sync-token>{token}</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop>{limit}</d:sync-collection>"#
    )
}

#[tokio::test]
async fn sync_collection_reports_changes_and_deletions() {
    let (srv, u) = setup().await;
    let cal = fill(&srv, &u).await;

    // Initial sync: every member with its etag, and a token.
    let r = report(&srv, &u, &cal, "0", &sync_body("", None)).await;
    let m = ms(&r);
    assert_eq!(
        names_of(&m, &cal),
        set(&["timed", "allday", "weekly", "free", "alarm"])
    );
    assert!(m
        .entries
        .iter()
        .all(|e| e.text(&names::GETETAG).starts_with('"')));
    let t1 = m.sync_token.clone().unwrap();
    assert_eq!(t1, token(&srv, &u, &cal).await);

    // Nothing changed: nothing reported, same token.
    let r = report(&srv, &u, &cal, "0", &sync_body(&t1, None)).await;
    let m = ms(&r);
    assert!(m.entries.is_empty());
    assert_eq!(m.sync_token.as_deref(), Some(t1.as_str()));

    // Change one, delete one, add one (through the admin API: same store).
    let changed = event(
        "timed",
        "20260302T110000Z",
        "20260302T120000Z",
        "Massage later",
    );
    let new_etag = put(&srv, &u, &format!("{cal}timed.ics"), &changed, &[])
        .await
        .header("etag")
        .unwrap()
        .to_string();
    assert_eq!(
        dav(&srv, &u, "DELETE", &format!("{cal}free.ics"), &[], "")
            .await
            .status,
        204
    );
    let (s, appt) = srv
        .api(
            "POST",
            &format!("/api/v1/staff/{}/appointments", u.staff),
            Some(json!({"summary": "From the platform", "start": "2026-03-10T09:00:00+01:00", "end": "2026-03-10T10:00:00+01:00"})),
        )
        .await;
    assert_eq!(s.as_u16(), 201, "{appt}");
    let r = report(&srv, &u, &cal, "0", &sync_body(&t1, None)).await;
    let m = ms(&r);
    let appt_href = format!("{cal}{}.ics", appt["id"].as_str().unwrap());
    assert_eq!(
        m.hrefs(),
        BTreeSet::from([
            format!("{cal}timed.ics"),
            format!("{cal}free.ics"),
            appt_href.clone()
        ])
    );
    assert_eq!(
        m.get(&format!("{cal}timed.ics")).text(&names::GETETAG),
        new_etag
    );
    assert_eq!(m.get(&format!("{cal}free.ics")).status, Some(404));
    let t2 = m.sync_token.clone().unwrap();
    assert_ne!(t1, t2);
    // The platform's appointment reads over CalDAV.
    let r = dav(&srv, &u, "GET", &appt_href, &[], "").await;
    assert!(r.body.contains("SUMMARY:From the platform"), "{}", r.body);

    // Tokens that are not this calendar's, or from the future: valid-sync-token.
    let other = t2.rsplit_once('/').unwrap().0.replace("cal_", "cal_x");
    for bad in [
        "garbage".to_string(),
        format!("{other}/1"),
        format!("{}/999999", t2.rsplit_once('/').unwrap().0),
    ] {
        let r = report(&srv, &u, &cal, "0", &sync_body(&bad, None)).await;
        assert_eq!(r.status, 403, "{bad}");
        assert_eq!(condition(&r), QName::dav("valid-sync-token"));
    }
    // On something that is not a calendar: supported-report.
    let r = report(&srv, &u, &u.home(), "0", &sync_body("", None)).await;
    assert_eq!(condition(&r), names::SUPPORTED_REPORT);
}

#[tokio::test]
async fn sync_collection_honours_the_limit_with_507_and_continues() {
    let (srv, u) = setup().await;
    let cal = u.cal("appointments");
    for i in 0..7 {
        let r = put(
            &srv,
            &u,
            &format!("{cal}e{i}.ics"),
            &event(
                &format!("e{i}"),
                "20260302T090000Z",
                "20260302T100000Z",
                "E",
            ),
            &[],
        )
        .await;
        assert_eq!(r.status, 201);
    }
    let mut seen = BTreeSet::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        pages += 1;
        let r = report(&srv, &u, &cal, "0", &sync_body(&token, Some(3))).await;
        let m = ms(&r);
        let truncated = m.entries.iter().any(|e| e.status == Some(507));
        for e in &m.entries {
            if e.status == Some(507) {
                assert_eq!(e.href, cal);
                assert!(e
                    .error
                    .as_ref()
                    .unwrap()
                    .child(&QName::dav("number-of-matches-within-limits"))
                    .is_some());
            } else {
                seen.insert(e.href.clone());
            }
        }
        token = m.sync_token.clone().unwrap();
        if !truncated {
            break;
        }
        assert!(pages < 10);
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 7, "nothing was lost between pages");
}

#[tokio::test]
async fn free_busy_query() {
    let (srv, u) = setup().await;
    let cal = fill(&srv, &u).await;
    let r = report(
        &srv,
        &u,
        &cal,
        "1",
        r#"<c:free-busy-query xmlns:c="urn:ietf:params:xml:ns:caldav"><c:time-range start="20260302T000000Z" end="20260305T000000Z"/></c:free-busy-query>"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/calendar"));
    let fb = calbridge::ics::parse(r.body.as_bytes()).unwrap();
    let vfb = fb.children_named("VFREEBUSY").next().expect("VFREEBUSY");
    assert_eq!(vfb.value("DTSTART"), Some("20260302T000000Z"));
    let periods: Vec<&str> = vfb
        .props_named("FREEBUSY")
        .map(|p| p.value.as_str())
        .collect();
    // The timed event, the moved standup and the start of the all-day
    // holiday (midnight in Berlin); the transparent lunch is free.
    assert_eq!(
        periods,
        [
            "20260302T090000Z/20260302T100000Z",
            "20260303T140000Z/20260303T150000Z",
            "20260304T230000Z/20260305T000000Z"
        ]
    );
    assert!(vfb
        .props_named("FREEBUSY")
        .all(|p| p.param("FBTYPE") == Some("BUSY")));
}

#[tokio::test]
async fn principal_reports_apple_asks_for() {
    let (srv, u) = setup().await;
    let body =
        std::fs::read_to_string("fixtures/dav/requests/report--apple-expand-property.xml").unwrap();
    let r = report(&srv, &u, &u.principal(), "0", &body).await;
    let m = ms(&r);
    let p = m.get(&u.principal());
    assert_eq!(
        p.status_of(&QName::calserver("calendar-proxy-write-for")),
        Some(404)
    );
    assert_eq!(p.status_of(&names::GROUP_MEMBERSHIP), Some(200));

    // Expanding calendar-home-set follows the href into the home.
    let r = report(
        &srv,
        &u,
        &u.principal(),
        "0",
        r#"<d:expand-property xmlns:d="DAV:"><d:property name="calendar-home-set" namespace="urn:ietf:params:xml:ns:caldav"><d:property name="displayname"/><d:property name="resourcetype"/></d:property></d:expand-property>"#,
    )
    .await;
    let m = ms(&r);
    let home_set = m.get(&u.principal()).found(&caldav("calendar-home-set"));
    let nested = home_set.child(&names::RESPONSE).expect("nested response");
    assert_eq!(nested.child(&names::HREF).unwrap().text(), u.home());
    assert!(nested.text().contains("Anna"));

    // Searching principals finds yourself only.
    let search = |text: &str| {
        format!(
            r#"<d:principal-property-search xmlns:d="DAV:"><d:property-search><d:prop><d:displayname/></d:prop><d:match>{text}</d:match></d:property-search><d:prop><d:displayname/><c:calendar-home-set xmlns:c="urn:ietf:params:xml:ns:caldav"/></d:prop></d:principal-property-search>"#
        )
    };
    let r = report(&srv, &u, "/dav/principals/", "0", &search("ann")).await;
    let m = ms(&r);
    assert_eq!(m.hrefs(), BTreeSet::from([u.principal()]));
    assert_eq!(
        m.get(&u.principal()).hrefs(&caldav("calendar-home-set")),
        vec![u.home()]
    );
    let r = report(&srv, &u, "/dav/principals/", "0", &search("bob")).await;
    assert!(ms(&r).entries.is_empty());
    let r = report(
        &srv,
        &u,
        "/dav/principals/",
        "0",
        r#"<d:principal-search-property-set xmlns:d="DAV:"/>"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("principal-search-property") && r.body.contains("displayname"));
}

#[tokio::test]
async fn caldav_writes_reach_the_admin_api_and_feeds() {
    let (srv, u) = setup().await;
    let cal = u.cal("appointments");
    let r = put(
        &srv,
        &u,
        &format!("{cal}caldav.ics"),
        &event(
            "caldav-1",
            "20300302T090000Z",
            "20300302T100000Z",
            "Written over CalDAV",
        ),
        &[],
    )
    .await;
    assert_eq!(r.status, 201);
    let (s, list) = srv
        .api(
            "GET",
            &format!(
                "/api/v1/staff/{}/appointments?start=2030-03-01&end=2030-04-01",
                u.staff
            ),
            None,
        )
        .await;
    assert_eq!(s.as_u16(), 200);
    assert!(list.to_string().contains("Written over CalDAV"), "{list}");
    let feed = srv
        .create("/api/v1/feeds", json!({"scope": "staff", "id": u.staff}))
        .await;
    let url = feed["url"].as_str().unwrap();
    let (s, _, body) = common::get(&srv.client, url, &[]).await;
    assert_eq!(s.as_u16(), 200);
    assert!(String::from_utf8_lossy(&body).contains("Written over CalDAV"));
    // A CalDAV delete disappears from the feed.
    assert_eq!(
        dav(&srv, &u, "DELETE", &format!("{cal}caldav.ics"), &[], "")
            .await
            .status,
        204
    );
    let (_, _, body) = common::get(&srv.client, url, &[]).await;
    assert!(!String::from_utf8_lossy(&body).contains("Written over CalDAV"));
}

// ---------------------------------------------------------------- corpus

/// Every object of the corpus that the ics module accepts can be PUT and
/// read back with the same content (GET and calendar-data). Tasks and
/// journals go to a calendar made for them.
#[tokio::test]
async fn corpus_objects_round_trip_through_put_and_get() {
    use calbridge::ics::object::{analyze, split_by_uid};
    use calbridge::ics::recur::ExpandOptions;
    let dir = std::env::var("CALBRIDGE_CORPUS").unwrap_or_else(|_| "fixtures/ics".into());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ics"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .ics in {dir}");
    let (srv, u) = setup().await;
    let (mut read, mut stored, mut refused_by_ics, mut other_kinds) = (0, 0, 0, 0);
    for (i, file) in files.iter().enumerate() {
        let bytes = std::fs::read(file).unwrap();
        read += 1;
        let Ok(cal) = calbridge::ics::parse(&bytes) else {
            refused_by_ics += 1;
            continue;
        };
        // One calendar per file: UIDs repeat across files.
        let slug = format!("c{i}");
        let r = dav(
            &srv,
            &u,
            "MKCALENDAR",
            &u.cal(&slug),
            &[],
            r#"<c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop><c:supported-calendar-component-set><c:comp name="VEVENT"/><c:comp name="VTODO"/><c:comp name="VJOURNAL"/></c:supported-calendar-component-set></d:prop></d:set></c:mkcalendar>"#,
        )
        .await;
        assert_eq!(r.status, 201);
        for (j, part) in split_by_uid(&cal).iter().enumerate() {
            let Ok(info) = analyze(part, &ExpandOptions::default()) else {
                refused_by_ics += 1;
                continue;
            };
            if !matches!(info.kind.name(), "VEVENT" | "VTODO" | "VJOURNAL") {
                other_kinds += 1;
                continue;
            }
            let body = String::from_utf8(part.to_ics()).unwrap();
            let path = format!("{}p{j}.ics", u.cal(&slug));
            let r = put(&srv, &u, &path, &body, &[]).await;
            assert_eq!(r.status, 201, "{}: part {j}: {}", file.display(), r.body);
            let r = dav(&srv, &u, "GET", &path, &[], "").await;
            assert_eq!(r.status, 200);
            let back = calbridge::ics::parse(r.body.as_bytes()).unwrap();
            assert_eq!(
                &back,
                part,
                "{} part {j} read back differently",
                file.display()
            );
            let mg = report(
                &srv,
                &u,
                &u.cal(&slug),
                "1",
                &format!(r#"<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:calendar-data/></d:prop><d:href>{path}</d:href></c:calendar-multiget>"#),
            )
            .await;
            let data = ms(&mg).get(&path).text(&names::CALENDAR_DATA);
            assert_eq!(&calbridge::ics::parse(data.as_bytes()).unwrap(), part);
            stored += 1;
        }
    }
    assert_eq!(read, files.len(), "every corpus file was read");
    assert!(stored > 0, "nothing from {dir} was stored");
    eprintln!(
        "corpus {dir}: {read} files, {stored} objects stored and read back, {refused_by_ics} refused by the ics module, {other_kinds} of other component types"
    );
}

#[tokio::test]
async fn copy_and_move_between_names_and_calendars() {
    let (srv, u) = setup().await;
    let cal = u.cal("appointments");
    let work = u.cal("work");
    assert_eq!(
        dav(&srv, &u, "MKCALENDAR", &work, &[], "").await.status,
        201
    );
    let body = event("mv", "20260302T090000Z", "20260302T100000Z", "Move me");
    put(&srv, &u, &format!("{cal}a.ics"), &body, &[]).await;
    let dest = |path: &str| srv.url(path);

    // Rename inside one calendar.
    let r = dav(
        &srv,
        &u,
        "MOVE",
        &format!("{cal}a.ics"),
        &[("Destination", &dest(&format!("{cal}b.ics")))],
        "",
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        dav(&srv, &u, "GET", &format!("{cal}a.ics"), &[], "")
            .await
            .status,
        404
    );
    assert_eq!(
        dav(&srv, &u, "GET", &format!("{cal}b.ics"), &[], "")
            .await
            .body,
        body
    );

    // A copy in the same calendar would repeat the UID.
    let r = dav(
        &srv,
        &u,
        "COPY",
        &format!("{cal}b.ics"),
        &[("Destination", &dest(&format!("{cal}c.ics")))],
        "",
    )
    .await;
    assert_eq!(condition(&r), caldav("no-uid-conflict"));

    // Copy to another calendar, then move there over it (Overwrite: F refuses).
    let r = dav(
        &srv,
        &u,
        "COPY",
        &format!("{cal}b.ics"),
        &[("Destination", &dest(&format!("{work}b.ics")))],
        "",
    )
    .await;
    assert_eq!(r.status, 201);
    let r = dav(
        &srv,
        &u,
        "MOVE",
        &format!("{cal}b.ics"),
        &[
            ("Destination", &dest(&format!("{work}b.ics"))),
            ("Overwrite", "F"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 412);
    let r = dav(
        &srv,
        &u,
        "MOVE",
        &format!("{cal}b.ics"),
        &[("Destination", &dest(&format!("{work}b.ics")))],
        "",
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(members(&srv, &u, &cal).await.is_empty());
    assert_eq!(
        members(&srv, &u, &work).await,
        BTreeSet::from([format!("{work}b.ics")])
    );

    // Destinations outside your home or outside a calendar.
    let other = "/dav/calendars/stf_someoneelse123/appointments/x.ics";
    let r = dav(
        &srv,
        &u,
        "MOVE",
        &format!("{work}b.ics"),
        &[("Destination", &dest(other))],
        "",
    )
    .await;
    assert_eq!(r.status, 404);
    let r = dav(
        &srv,
        &u,
        "MOVE",
        &format!("{work}b.ics"),
        &[("Destination", &dest(&u.home()))],
        "",
    )
    .await;
    assert_eq!(r.status, 409);
    let r = dav(&srv, &u, "MOVE", &format!("{work}b.ics"), &[], "").await;
    assert_eq!(r.status, 400);
    assert_eq!(members(&srv, &u, &work).await.len(), 1);
}
