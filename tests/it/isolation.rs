//! Isolation: nobody reaches what is not theirs.
//!
//! - [`ROUTES`] lists every route of the router with the guard that
//!   protects it. [`every_route_is_listed_with_its_guard`] reads the route
//!   paths out of `src/http/**` and probes which methods each one answers,
//!   so a new route, or a new method on a route, that is not in the list
//!   fails the build; the tests below take their routes from the list.
//! - Every admin route refuses every request without the admin token
//!   (nothing, a wrong one, its hash, a staff member's Basic credentials,
//!   the token in the query string) with 401, and stores nothing.
//! - Every CalDAV method, on every form of path that could name another
//!   staff member's home (id, e-mail raw / encoded / other case, `..`
//!   tricks, encoded separators), answers 403/404 without a byte of the
//!   other's data, for a colleague in the same company and for staff of
//!   another company (one of whom shares the attacker's e-mail address);
//!   hrefs in REPORT bodies and COPY/MOVE destinations that name another
//!   home are refused the same way; and the whole store is byte for byte
//!   what it was before the attempts.

use crate::common;
use crate::rawhttp;

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use common::TestServer;
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

/// What protects a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// `Authorization: Bearer <admin token>`.
    Admin,
    /// HTTP Basic with a staff member's e-mail and app password; the path
    /// must name the authenticated staff member's own home.
    Dav,
    /// The feed token in the path is the capability.
    FeedToken,
    /// The single-use OAuth `state` is the capability.
    OauthState,
    /// Nothing secret: health, readiness, metrics, the well-known and root
    /// redirects.
    Public,
}

/// Methods a route answers; `ANY` for routes that take every method.
const ANY: &[&str] = &["*"];

/// Every route of `calbridge::http::router`, with its methods and guard.
const ROUTES: &[(&str, &[&str], Guard)] = &[
    ("/api/v1/companies", &["GET", "POST"], Guard::Admin),
    ("/api/v1/companies/{company}", &["GET"], Guard::Admin),
    (
        "/api/v1/companies/{company}/groups",
        &["GET", "POST"],
        Guard::Admin,
    ),
    (
        "/api/v1/companies/{company}/staff",
        &["GET", "POST"],
        Guard::Admin,
    ),
    ("/api/v1/groups/{group}", &["GET"], Guard::Admin),
    (
        "/api/v1/staff/{staff}",
        &["GET", "PATCH", "DELETE"],
        Guard::Admin,
    ),
    (
        "/api/v1/staff/{staff}/app-passwords",
        &["GET", "POST"],
        Guard::Admin,
    ),
    (
        "/api/v1/staff/{staff}/app-passwords/{id}",
        &["DELETE"],
        Guard::Admin,
    ),
    (
        "/api/v1/staff/{staff}/appointments",
        &["GET", "POST"],
        Guard::Admin,
    ),
    (
        "/api/v1/appointments/{id}",
        &["GET", "PATCH", "DELETE"],
        Guard::Admin,
    ),
    ("/api/v1/staff/{staff}/freebusy", &["GET"], Guard::Admin),
    (
        "/api/v1/staff/{staff}/push-existing",
        &["POST"],
        Guard::Admin,
    ),
    (
        "/api/v1/staff/{staff}/accounts",
        &["GET", "POST"],
        Guard::Admin,
    ),
    (
        "/api/v1/accounts/{account}",
        &["GET", "DELETE"],
        Guard::Admin,
    ),
    (
        "/api/v1/accounts/{account}/calendars",
        &["GET"],
        Guard::Admin,
    ),
    (
        "/api/v1/accounts/{account}/calendars/{remote}",
        &["PUT"],
        Guard::Admin,
    ),
    ("/api/v1/accounts/{account}/status", &["GET"], Guard::Admin),
    ("/api/v1/accounts/{account}/sync", &["POST"], Guard::Admin),
    (
        "/api/v1/accounts/{account}/reconnect",
        &["POST"],
        Guard::Admin,
    ),
    ("/api/v1/backup", &["GET"], Guard::Admin),
    ("/api/v1/feeds", &["POST"], Guard::Admin),
    ("/api/v1/feeds/{feed}", &["GET", "DELETE"], Guard::Admin),
    ("/api/v1/feeds/{feed}/rotate", &["POST"], Guard::Admin),
    ("/feeds/{file}", &["GET"], Guard::FeedToken),
    ("/oauth/{provider}/callback", &["GET"], Guard::OauthState),
    ("/healthz", &["GET"], Guard::Public),
    ("/readyz", &["GET"], Guard::Public),
    ("/metrics", &["GET"], Guard::Public),
    // OPTIONS answers with the DAV classes, PROPFIND/REPORT redirect to
    // /dav/ (clients given only the host); nothing else is served.
    ("/", ANY, Guard::Public),
    ("/.well-known/caldav", ANY, Guard::Public),
    ("/.well-known/caldav/", ANY, Guard::Public),
    ("/dav", ANY, Guard::Dav),
    ("/dav/", ANY, Guard::Dav),
    ("/dav/{*rest}", ANY, Guard::Dav),
];

/// The methods probed on each route.
const PROBE: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Every method the CalDAV endpoint serves is attacked below; a method
/// added to `ALLOW` without joining this list fails the build.
const DAV_METHODS: &[&str] = &[
    "OPTIONS",
    "GET",
    "HEAD",
    "PUT",
    "DELETE",
    "PROPFIND",
    "PROPPATCH",
    "REPORT",
    "MKCALENDAR",
    "MKCOL",
    "COPY",
    "MOVE",
];

/// The `.route("…"` paths written in the HTTP layer's source.
fn routes_in_source() -> BTreeSet<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http"),
        &mut files,
    );
    let mut found = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for other in [".nest(", ".route_service(", ".nest_service("] {
            assert!(
                !text.contains(other),
                "{}: uses {other}; teach routes_in_source to read it",
                f.display()
            );
        }
        let mut rest = text.as_str();
        while let Some(i) = rest.find(".route(") {
            rest = rest[i + ".route(".len()..].trim_start();
            let path = rest
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .map(|(p, _)| p.to_string())
                .unwrap_or_else(|| panic!("{}: a .route( without a literal path", f.display()));
            found.insert(path);
        }
    }
    found
}

/// Ids to put into route templates (they need not exist: every guard is
/// checked before any lookup).
fn instantiate(template: &str, ids: &BTreeMap<&str, String>) -> String {
    let mut out = template.to_string();
    for (k, v) in ids {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

fn placeholder_ids() -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("company", "cmp_aaaaaaaaaaaaaaaaaaaa".to_string()),
        ("group", "grp_aaaaaaaaaaaaaaaaaaaa".to_string()),
        ("staff", "stf_aaaaaaaaaaaaaaaaaaaa".to_string()),
        ("id", "evt_aaaaaaaaaaaaaaaaaaaa".to_string()),
        ("account", "acc_aaaaaaaaaaaaaaaaaaaa".to_string()),
        ("remote", "primary".to_string()),
        ("feed", "fd_aaaaaaaaaaaaaaaaaaaa".to_string()),
        ("file", "x.ics".to_string()),
        ("provider", "google".to_string()),
        ("*rest", "x".to_string()),
    ])
}

/// A digest of every key and value of every tree.
fn store_digest(t: &TestServer) -> String {
    let mut h = Sha256::new();
    t.app
        .db
        .store()
        .snapshot(&mut |tree, k, v| {
            h.update(tree.name().as_bytes());
            h.update((k.len() as u64).to_be_bytes());
            h.update(k);
            h.update((v.len() as u64).to_be_bytes());
            h.update(v);
            Ok(())
        })
        .unwrap();
    calbridge::crypto::hex(&h.finalize())
}

#[tokio::test]
async fn every_route_is_listed_with_its_guard() {
    let listed: BTreeSet<String> = ROUTES.iter().map(|(p, _, _)| p.to_string()).collect();
    let in_source = routes_in_source();
    assert!(
        in_source.len() >= 30,
        "the scan found too little: {in_source:?}"
    );
    let missing: Vec<_> = in_source.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "routes without an isolation test (add them to ROUTES): {missing:?}"
    );
    let stale: Vec<_> = listed.difference(&in_source).collect();
    assert!(
        stale.is_empty(),
        "ROUTES lists routes that are gone: {stale:?}"
    );

    let allow: BTreeSet<&str> = calbridge::http::dav::ALLOW.split(", ").collect();
    let tested: BTreeSet<&str> = DAV_METHODS.iter().copied().collect();
    assert_eq!(allow, tested, "every CalDAV method must be attacked below");

    // Which methods does each route answer? Axum says 405 for the others.
    let t = TestServer::start().await;
    let ids = placeholder_ids();
    for (template, methods, guard) in ROUTES {
        let path = instantiate(template, &ids);
        for m in PROBE {
            let r = t
                .client
                .request(m.parse().unwrap(), t.url(&path))
                .send()
                .await
                .unwrap();
            let routed = r.status() != StatusCode::METHOD_NOT_ALLOWED;
            let listed = *methods == ANY || methods.contains(m);
            assert_eq!(
                routed,
                listed,
                "{m} {template}: answered {} but ROUTES says {}",
                r.status(),
                if listed { "routed" } else { "not routed" }
            );
            if *guard == Guard::Admin && routed {
                assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{m} {path}");
            }
            if *guard == Guard::Dav {
                assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{m} {path}");
            }
        }
    }
}

#[tokio::test]
async fn every_admin_route_refuses_without_the_admin_token() {
    let t = TestServer::start().await;
    let (cid, sid) = t.company_with_staff("UTC").await;
    let g = t
        .create(
            &format!("/api/v1/companies/{cid}/groups"),
            json!({"name": "G"}),
        )
        .await;
    let pw = t
        .create(&format!("/api/v1/staff/{sid}/app-passwords"), json!({}))
        .await;
    let appt = t
        .create(
            &format!("/api/v1/staff/{sid}/appointments"),
            json!({"summary": "S", "start": "2031-01-01T09:00:00Z", "end": "2031-01-01T10:00:00Z"}),
        )
        .await;
    let feed = t
        .create("/api/v1/feeds", json!({"scope": "staff", "id": sid}))
        .await;
    let (_, staff) = t.api("GET", &format!("/api/v1/staff/{sid}"), None).await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        staff["email"].as_str().unwrap(),
        pw["password"].as_str().unwrap()
    ));
    let mut ids = placeholder_ids();
    ids.insert("company", cid.clone());
    ids.insert("group", g["id"].as_str().unwrap().to_string());
    ids.insert("staff", sid.clone());
    ids.insert("feed", feed["id"].as_str().unwrap().to_string());
    let hash = calbridge::crypto::token_hash(common::ADMIN_TOKEN);
    let wrong_auth: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some("Bearer wrong-token-0123456789abcdef".into()),
        Some(format!("Bearer {hash}")),
        Some(format!("Bearer {}x", common::ADMIN_TOKEN)),
        Some(format!(
            "Bearer {}",
            &common::ADMIN_TOKEN[..common::ADMIN_TOKEN.len() - 1]
        )),
        Some(format!("Bearer {}", common::ADMIN_TOKEN.to_uppercase())),
        Some(format!("Basic {basic}")),
        Some(format!("Token {}", common::ADMIN_TOKEN)),
        Some(format!("Bearer\t{}", common::ADMIN_TOKEN)),
    ];
    let mut checked = 0;
    for (template, methods, guard) in ROUTES {
        if *guard != Guard::Admin {
            continue;
        }
        let ids_here = if template.starts_with("/api/v1/appointments/") {
            let mut i = ids.clone();
            i.insert("id", appt["id"].as_str().unwrap().to_string());
            i
        } else if template.ends_with("/app-passwords/{id}") {
            let mut i = ids.clone();
            i.insert("id", pw["id"].as_str().unwrap().to_string());
            i
        } else {
            ids.clone()
        };
        let path = instantiate(template, &ids_here);
        for m in *methods {
            for auth in &wrong_auth {
                let mut req = t
                    .client
                    .request(m.parse().unwrap(), t.url(&path))
                    .json(&json!({"name": "X", "summary": "X", "provider": "google"}));
                if let Some(a) = auth {
                    // Some values cannot be sent by reqwest (NUL): skip those.
                    match reqwest::header::HeaderValue::from_str(a) {
                        Ok(v) => req = req.header("Authorization", v),
                        Err(_) => continue,
                    }
                }
                let r = req.send().await.unwrap();
                assert_eq!(
                    r.status(),
                    StatusCode::UNAUTHORIZED,
                    "{m} {path} with {auth:?}"
                );
                let body = r.text().await.unwrap();
                assert!(
                    !body.contains(&cid) && !body.contains(&sid),
                    "{m} {path}: {body}"
                );
                checked += 1;
            }
            // The token in the query string is not a credential.
            let r = t
                .client
                .request(
                    m.parse().unwrap(),
                    t.url(&format!(
                        "{path}?access_token={0}&token={0}",
                        common::ADMIN_TOKEN
                    )),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{m} {path}?access_token"
            );
            // And with the token it is not a 401 (the refusals above were
            // the guard, not a broken route).
            let r = t
                .client
                .request(m.parse().unwrap(), t.url(&path))
                .bearer_auth(common::ADMIN_TOKEN)
                .header("If-Match", "\"no-such-etag\"")
                .json(&json!({"selected": false}))
                .send()
                .await
                .unwrap();
            assert_ne!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{m} {path} with the token"
            );
        }
    }
    assert!(checked > 300, "{checked}");
}

#[tokio::test]
async fn refused_admin_requests_store_nothing() {
    let t = TestServer::start().await;
    let (cid, sid) = t.company_with_staff("UTC").await;
    let appt = t
        .create(
            &format!("/api/v1/staff/{sid}/appointments"),
            json!({"summary": "S", "start": "2031-01-01T09:00:00Z", "end": "2031-01-01T10:00:00Z"}),
        )
        .await;
    let feed = t
        .create("/api/v1/feeds", json!({"scope": "staff", "id": sid}))
        .await;
    let mut ids = placeholder_ids();
    ids.insert("company", cid);
    ids.insert("staff", sid);
    ids.insert("feed", feed["id"].as_str().unwrap().to_string());
    ids.insert("id", appt["id"].as_str().unwrap().to_string());
    let before = store_digest(&t);
    for (template, methods, guard) in ROUTES {
        if *guard != Guard::Admin {
            continue;
        }
        let path = instantiate(template, &ids);
        for m in *methods {
            let r = t
                .client
                .request(m.parse().unwrap(), t.url(&path))
                .bearer_auth("not-the-admin-token-0123456789")
                .json(&json!({"name": "X", "summary": "X", "provider": "google", "email": "x@y.example",
                    "start": "2031-01-01T09:00:00Z", "end": "2031-01-01T10:00:00Z", "scope": "company", "id": "x"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{m} {path}");
        }
    }
    assert_eq!(
        store_digest(&t),
        before,
        "a refused request changed the store"
    );
}

// ---------------------------------------------------------------- CalDAV

struct Who {
    staff: String,
    email: String,
    password: String,
}

impl Who {
    fn basic(&self) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.email, self.password))
        )
    }
}

async fn staff(t: &TestServer, company: &str, name: &str, email: &str) -> Who {
    let s = t
        .create(
            &format!("/api/v1/companies/{company}/staff"),
            json!({"name": name, "email": email, "timezone": "UTC"}),
        )
        .await;
    let staff = s["id"].as_str().unwrap().to_string();
    let p = t
        .create(&format!("/api/v1/staff/{staff}/app-passwords"), json!({}))
        .await;
    Who {
        staff,
        email: email.to_string(),
        password: p["password"].as_str().unwrap().to_string(),
    }
}

fn secret_event(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//isolation//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n\
         DTSTAMP:20260101T000000Z\r\nDTSTART:20310101T090000Z\r\nDTEND:20310101T100000Z\r\n\
         SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

async fn raw(
    t: &TestServer,
    who: &Who,
    method: &str,
    path: &[u8],
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> rawhttp::RawResponse {
    let auth = who.basic();
    let mut h: Vec<(&str, &[u8])> = vec![("Authorization", auth.as_bytes())];
    h.extend_from_slice(headers);
    let req = rawhttp::build(method, path, &h, body);
    rawhttp::send(&rawhttp::addr_of(&t.base), &req)
        .await
        .unwrap_or_else(|e| panic!("{method} {}: {e}", String::from_utf8_lossy(path)))
}

/// Extra headers and a body for one attempt.
type Attempt = (Vec<(&'static str, Vec<u8>)>, Vec<u8>);

/// The bodies each method is tried with.
fn bodies_for(method: &str, victim_hrefs: &[String]) -> Vec<Attempt> {
    let hrefs: String = victim_hrefs
        .iter()
        .map(|h| format!("<d:href>{h}</d:href>"))
        .collect();
    let xml = |b: String| {
        (
            vec![
                ("Content-Type", b"application/xml".to_vec()),
                ("Depth", b"1".to_vec()),
            ],
            b.into_bytes(),
        )
    };
    match method {
        "PROPFIND" => vec![
            xml(r#"<d:propfind xmlns:d="DAV:"><d:allprop/></d:propfind>"#.into()),
            (vec![("Depth", b"infinity".to_vec())], Vec::new()),
        ],
        "PROPPATCH" => vec![xml(
            r#"<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:displayname>pwned</d:displayname></d:prop></d:set></d:propertyupdate>"#.into(),
        )],
        "REPORT" => vec![
            xml(format!(r#"<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/><c:calendar-data/></d:prop>{hrefs}</c:calendar-multiget>"#)),
            xml(r#"<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:calendar-data/></d:prop><c:filter><c:comp-filter name="VCALENDAR"/></c:filter></c:calendar-query>"#.into()),
            xml(r#"<d:sync-collection xmlns:d="DAV:"><d:sync-token/><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"#.into()),
            xml(r#"<c:free-busy-query xmlns:c="urn:ietf:params:xml:ns:caldav"><c:time-range start="20300101T000000Z" end="20320101T000000Z"/></c:free-busy-query>"#.into()),
            xml(r#"<d:expand-property xmlns:d="DAV:"><d:property name="current-user-principal"><d:property name="displayname"/></d:property></d:expand-property>"#.into()),
            xml(r#"<d:principal-property-search xmlns:d="DAV:"><d:property-search><d:prop><d:displayname/></d:prop><d:match>a</d:match></d:property-search><d:prop><d:displayname/></d:prop></d:principal-property-search>"#.into()),
        ],
        "PUT" => vec![(
            vec![("Content-Type", b"text/calendar".to_vec())],
            secret_event("planted", "PLANTED").into_bytes(),
        )],
        "MKCALENDAR" | "MKCOL" => vec![(Vec::new(), Vec::new())],
        _ => vec![(Vec::new(), Vec::new())],
    }
}

#[tokio::test]
async fn caldav_reaches_nothing_across_staff_and_companies() {
    let t = TestServer::start().await;
    let co = |name: &'static str| {
        let t = &t;
        async move {
            t.create(
                "/api/v1/companies",
                json!({"name": name, "timezone": "UTC"}),
            )
            .await["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let (ca, cc) = (co("A").await, co("C").await);
    let anna = staff(&t, &ca, "Anna", "anna@a.example").await;
    let bert = staff(&t, &ca, "Bert", "bert@a.example").await;
    let cora = staff(&t, &cc, "Cora", "cora@c.example").await;
    // Another company's staff member with Anna's e-mail address: the same
    // CalDAV user name, another password, another home.
    let dora = staff(&t, &cc, "Dora", "anna@a.example").await;
    let victims = [&bert, &cora, &dora];

    let c = common::client();
    let put = |who: &Who, path: String, body: String| {
        let c = c.clone();
        let url = t.url(&path);
        let (e, p) = (who.email.clone(), who.password.clone());
        async move {
            let r = c
                .put(url)
                .basic_auth(e, Some(p))
                .header("Content-Type", "text/calendar")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED, "{path}");
        }
    };
    for (who, tag) in [
        (&anna, "ANNA"),
        (&bert, "BERT"),
        (&cora, "CORA"),
        (&dora, "DORA"),
    ] {
        let mk = raw(
            &t,
            who,
            "MKCALENDAR",
            format!("/dav/calendars/{}/private/", who.staff).as_bytes(),
            &[],
            b"",
        )
        .await;
        assert_eq!(mk.status, 201);
        for cal in ["appointments", "private"] {
            put(
                who,
                format!("/dav/calendars/{}/{cal}/secret.ics", who.staff),
                secret_event(&format!("uid-{tag}-{cal}"), &format!("SECRET-{tag}")),
            )
            .await;
        }
    }
    // Dora authenticates as herself with the shared user name.
    let r = raw(
        &t,
        &dora,
        "GET",
        b"/dav/calendars/anna@a.example/appointments/secret.ics",
        &[],
        b"",
    )
    .await;
    assert!(r.text().contains("SECRET-DORA"), "{}", r.text());
    let r = raw(
        &t,
        &anna,
        "GET",
        b"/dav/calendars/anna@a.example/appointments/secret.ics",
        &[],
        b"",
    )
    .await;
    assert!(r.text().contains("SECRET-ANNA"), "{}", r.text());

    let before = store_digest(&t);
    // What only the victim's data holds: the event text and UIDs, the
    // display name, the calendars' ids. (Ids and e-mails the attacker put
    // into the request may be echoed back: that tells nothing.)
    let needles = |v: &Who| -> Vec<String> {
        let (tag, name) = match v.staff.as_str() {
            s if s == bert.staff => ("BERT", "Bert"),
            s if s == cora.staff => ("CORA", "Cora"),
            _ => ("DORA", "Dora"),
        };
        let mut n = vec![
            format!("SECRET-{tag}"),
            format!("uid-{tag}"),
            name.to_string(),
        ];
        for c in t
            .app
            .db
            .calendars_of_staff(&calbridge::model::StaffId(v.staff.clone()))
            .unwrap()
        {
            n.push(c.id.to_string());
        }
        n
    };
    let leaks = |v: &Who, text: &str| -> Option<String> {
        needles(v).into_iter().find(|n| text.contains(n.as_str()))
    };
    let own = format!("/dav/calendars/{}/", anna.staff);
    let mut attempts = 0;
    for v in victims {
        let enc = v.email.replace('@', "%40");
        let upper = v.email.to_uppercase();
        // E-mail forms name Dora only for Dora: with Anna's credentials
        // they are Anna's own home.
        let mut homes: Vec<String> = vec![
            format!("/dav/calendars/{}/", v.staff),
            format!("{own}../{}/", v.staff),
            format!("{own}%2e%2e/{}/", v.staff),
            format!("{own}%2E%2E/{}/", v.staff),
            format!("{own}..%2f{}%2f", v.staff),
            format!("{own}appointments/..%2F..%2F{}%2F", v.staff),
            format!("{own}%252e%252e/{}/", v.staff),
            format!("{own}..%5c{}%5c", v.staff),
            format!("/dav/calendars/{}%00/", v.staff),
            format!("/dav/calendars/./{}/", v.staff),
            format!("/dav//calendars/{}/", v.staff),
        ];
        if v.email != anna.email {
            homes.push(format!("/dav/calendars/{}/", v.email));
            homes.push(format!("/dav/calendars/{enc}/"));
            homes.push(format!("/dav/calendars/{upper}/"));
        }
        let mut targets = Vec::new();
        for h in &homes {
            targets.push(h.clone());
            targets.push(format!("{h}appointments/"));
            targets.push(format!("{h}private/"));
            targets.push(format!("{h}appointments/secret.ics"));
            targets.push(format!("{h}private/secret.ics"));
            targets.push(format!("{h}private/new.ics"));
        }
        targets.push(format!("/dav/principals/{}/", v.staff));
        if v.email != anna.email {
            targets.push(format!("/dav/principals/{enc}/"));
        }
        let victim_hrefs: Vec<String> = homes
            .iter()
            .map(|h| format!("{h}appointments/secret.ics"))
            .chain([format!(
                "http://calbridge.test/dav/calendars/{}/appointments/secret.ics",
                v.staff
            )])
            .collect();
        for target in &targets {
            for m in DAV_METHODS {
                for (headers, body) in bodies_for(m, &victim_hrefs) {
                    let mut h: Vec<(&str, &[u8])> =
                        headers.iter().map(|(k, v)| (*k, v.as_slice())).collect();
                    let dest = format!("{own}appointments/copied.ics");
                    if *m == "COPY" || *m == "MOVE" {
                        h.push(("Destination", dest.as_bytes()));
                    }
                    let r = raw(&t, &anna, m, target.as_bytes(), &h, &body).await;
                    let text = r.text();
                    if *m == "OPTIONS" {
                        assert_eq!((r.status, text.as_str()), (200, ""), "OPTIONS {target}");
                    } else {
                        assert!(
                            [403, 404].contains(&r.status),
                            "{m} {target} as Anna: {} {text}",
                            r.status
                        );
                    }
                    if let Some(l) = leaks(v, &text) {
                        panic!("{m} {target} leaked {l}: {text}");
                    }
                    attempts += 1;
                }
            }
        }

        // From Anna's own collections, naming the victim in the body or
        // the Destination.
        for m in ["REPORT", "PROPFIND"] {
            for (headers, body) in bodies_for(m, &victim_hrefs) {
                let h: Vec<(&str, &[u8])> =
                    headers.iter().map(|(k, v)| (*k, v.as_slice())).collect();
                for path in [
                    own.clone(),
                    format!("{own}appointments/"),
                    format!("/dav/principals/{}/", anna.staff),
                    "/dav/".into(),
                    "/dav/principals/".into(),
                    "/dav/calendars/".into(),
                ] {
                    let r = raw(&t, &anna, m, path.as_bytes(), &h, &body).await;
                    assert!(r.status < 500, "{m} {path}: {}", r.status);
                    if let Some(l) = leaks(v, &r.text()) {
                        panic!("{m} {path} leaked {l}: {}", r.text());
                    }
                    attempts += 1;
                }
            }
        }
        for dest_home in &homes {
            for m in ["COPY", "MOVE"] {
                for dest in [
                    format!("{dest_home}appointments/stolen.ics"),
                    format!("{dest_home}appointments/secret.ics"),
                    format!("http://calbridge.test{dest_home}appointments/stolen.ics"),
                    format!("http://elsewhere.example{dest_home}appointments/stolen.ics"),
                ] {
                    let r = raw(
                        &t,
                        &anna,
                        m,
                        format!("{own}appointments/secret.ics").as_bytes(),
                        &[("Destination", dest.as_bytes()), ("Overwrite", b"T")],
                        b"",
                    )
                    .await;
                    assert!(
                        [400, 403, 404, 409].contains(&r.status),
                        "{m} to {dest}: {} {}",
                        r.status,
                        r.text()
                    );
                    attempts += 1;
                }
            }
        }
    }
    assert_eq!(store_digest(&t), before, "an attempt changed the store");
    // Everyone still has what they had.
    for (who, tag) in [
        (&anna, "ANNA"),
        (&bert, "BERT"),
        (&cora, "CORA"),
        (&dora, "DORA"),
    ] {
        for cal in ["appointments", "private"] {
            let r = raw(
                &t,
                who,
                "GET",
                format!("/dav/calendars/{}/{cal}/secret.ics", who.staff).as_bytes(),
                &[],
                b"",
            )
            .await;
            assert!(r.text().contains(&format!("SECRET-{tag}")), "{tag} {cal}");
        }
    }
    eprintln!("isolation: {attempts} cross-home attempts refused");
    assert!(attempts > 3000, "{attempts}");
}

#[tokio::test]
async fn app_passwords_and_admin_ids_stay_with_their_owner() {
    let t = TestServer::start().await;
    let (ca, a) = t.company_with_staff("UTC").await;
    let (_, b) = t.company_with_staff("UTC").await;
    let pb = t
        .create(&format!("/api/v1/staff/{b}/app-passwords"), json!({}))
        .await;
    // B's password cannot be removed through A's path.
    let (s, _) = t
        .api(
            "DELETE",
            &format!(
                "/api/v1/staff/{a}/app-passwords/{}",
                pb["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = t
        .api("GET", &format!("/api/v1/staff/{b}/app-passwords"), None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    // Another company's group cannot be joined.
    let (cc, _) = t.company_with_staff("UTC").await;
    let g = t
        .create(
            &format!("/api/v1/companies/{cc}/groups"),
            json!({"name": "C group"}),
        )
        .await;
    let (s, _) = t
        .api(
            "POST",
            &format!("/api/v1/companies/{ca}/staff"),
            Some(json!({"name": "X", "email": "x@a.example", "groups": [g["id"]]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = t
        .api(
            "PATCH",
            &format!("/api/v1/staff/{a}"),
            Some(json!({"groups": [g["id"]]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // A's password does not open B's home, and B's e-mail with A's
    // password is a plain 401.
    let pa = t
        .create(&format!("/api/v1/staff/{a}/app-passwords"), json!({}))
        .await;
    let (_, sb) = t.api("GET", &format!("/api/v1/staff/{b}"), None).await;
    let r = t
        .client
        .request("PROPFIND".parse().unwrap(), t.url("/dav/"))
        .basic_auth(sb["email"].as_str().unwrap(), pa["password"].as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
