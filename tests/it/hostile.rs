//! Hostile input beyond each feature's own bad-input tests: bodies over
//! the limits however they are framed, deep and wide documents, huge
//! headers, compressed bodies, bytes that are not UTF-8 wherever bytes go,
//! and CR/LF in every value that reaches a header or an iCalendar line
//! (from the admin API, CalDAV and upstream providers).
//!
//! Every case: a clear 4xx (or, where a value is legitimately stored, a
//! feed and objects that still parse with nothing forged), nothing stored,
//! and the server still healthy and quick for the next request.

use crate::common;
use crate::rawhttp;

use std::time::Duration;

use base64::Engine;
use calbridge::upstream::emulator::{Emulator, Provider};
use common::{use_emulator, TestServer};
use rawhttp::RawResponse;
use reqwest::StatusCode;
use serde_json::{json, Value};

const DAV_LIMIT: usize = 64 * 1024;

struct World {
    t: TestServer,
    staff: String,
    email: String,
    password: String,
    feed: String,
}

impl World {
    async fn new() -> World {
        let t = TestServer::start_with(|raw| raw.set("server.dav_max_body", "64KiB".into())).await;
        Self::with(t).await
    }

    async fn with(t: TestServer) -> World {
        let (_, staff) = t.company_with_staff("UTC").await;
        let (_, s) = t.api("GET", &format!("/api/v1/staff/{staff}"), None).await;
        let pw = t
            .create(&format!("/api/v1/staff/{staff}/app-passwords"), json!({}))
            .await;
        let f = t
            .create("/api/v1/feeds", json!({"scope": "staff", "id": staff}))
            .await;
        let url = f["url"].as_str().unwrap();
        World {
            email: s["email"].as_str().unwrap().to_string(),
            password: pw["password"].as_str().unwrap().to_string(),
            feed: url[url.find("/feeds/").unwrap()..].to_string(),
            staff,
            t,
        }
    }

    fn addr(&self) -> String {
        rawhttp::addr_of(&self.t.base)
    }

    fn cal(&self) -> String {
        format!("/dav/calendars/{}/appointments/", self.staff)
    }

    fn basic(&self) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.email, self.password))
        )
    }

    /// A raw request with the staff member's Basic credentials (when
    /// `path` is under `/dav`) or the admin token (under `/api`).
    async fn raw(
        &self,
        method: &str,
        path: &[u8],
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> RawResponse {
        let req = self.request(method, path, headers, body);
        rawhttp::send(&self.addr(), &req).await.expect("an answer")
    }

    fn request(
        &self,
        method: &str,
        path: &[u8],
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> Vec<u8> {
        let auth = if path.starts_with(b"/api") {
            format!("Bearer {}", common::ADMIN_TOKEN)
        } else {
            self.basic()
        };
        let mut h: Vec<(&str, &[u8])> = Vec::new();
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            h.push(("Authorization", auth.as_bytes()));
        }
        h.extend_from_slice(headers);
        rawhttp::build(method, path, &h, body)
    }

    /// Everything a request could have changed: the calendar's sync
    /// token, the appointments, the companies, the feed's bytes.
    async fn state(&self) -> (String, Value, Value, Vec<u8>) {
        let r = self
            .raw(
                "PROPFIND",
                self.cal().as_bytes(),
                &[("Depth", b"0")],
                br#"<d:propfind xmlns:d="DAV:"><d:prop><d:sync-token/></d:prop></d:propfind>"#,
            )
            .await;
        assert_eq!(r.status, 207);
        let token = r.text();
        let token = token[token.find("sync-token>").unwrap()..].to_string();
        let (_, appts) = self
            .t
            .api(
                "GET",
                &format!("/api/v1/staff/{}/appointments", self.staff),
                None,
            )
            .await;
        let (_, companies) = self.t.api("GET", "/api/v1/companies", None).await;
        let (_, _, feed) = common::get(&self.t.client, &self.t.url(&self.feed), &[]).await;
        (token, appts, companies, feed)
    }

    /// The server answers a plain request at once.
    async fn healthy(&self) {
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            self.t.client.get(self.t.url("/healthz")).send(),
        )
        .await
        .expect("healthz within 10 s")
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

fn event(uid: &str, summary_line: &str, pad: usize) -> String {
    let mut desc = String::new();
    for i in 0..pad {
        if i % 70 == 0 && i > 0 {
            desc.push_str("\r\n ");
        }
        desc.push('x');
    }
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//hostile//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n\
         DTSTAMP:20260101T000000Z\r\nDTSTART:20310101T090000Z\r\nDTEND:20310101T100000Z\r\n\
         {summary_line}\r\nDESCRIPTION:{desc}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// A body sent in chunks of 8 KiB.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(8192) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn assert_4xx(r: &RawResponse, what: &str) {
    assert!(
        (400..500).contains(&r.status),
        "{what}: {} {}",
        r.status,
        r.text()
    );
}

// ---------------------------------------------------------------- limits

#[tokio::test]
async fn bodies_over_the_limits_are_413_however_they_are_framed() {
    let w = World::new().await;
    let before = w.state().await;
    let big_json = format!("{{\"name\": \"{}\"}}", "x".repeat((1 << 20) + 10));
    let te = ("Transfer-Encoding", b"chunked".as_slice());
    let json_ct = ("Content-Type", b"application/json".as_slice());

    // Admin API, 1 MiB: chunked (no Content-Length), and a declared
    // length refused before any of it is sent.
    let r = w
        .raw(
            "POST",
            b"/api/v1/companies",
            &[json_ct, te],
            &chunked(big_json.as_bytes()),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.text());
    let r = w
        .raw(
            "POST",
            b"/api/v1/companies",
            &[json_ct, ("Content-Length", b"10737418240")],
            b"",
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.text());
    let appt = format!("/api/v1/staff/{}/appointments", w.staff);
    let r = w
        .raw(
            "POST",
            appt.as_bytes(),
            &[json_ct, te],
            &chunked(big_json.as_bytes()),
        )
        .await;
    assert_eq!(r.status, 413);

    // CalDAV, server.dav_max_body: at the limit is fine, one byte over is
    // not; chunked or declared; every method that takes a body.
    let base = event("limit", "SUMMARY:limit", 0).len();
    let mut pad = DAV_LIMIT - base;
    pad -= pad / 73 * 3; // folding adds "\r\n " every 70 characters
    let mut at_limit = event("limit", "SUMMARY:limit", pad);
    while at_limit.len() < DAV_LIMIT {
        pad += 1;
        at_limit = event("limit", "SUMMARY:limit", pad);
    }
    while at_limit.len() > DAV_LIMIT {
        pad -= 1;
        at_limit = event("limit", "SUMMARY:limit", pad);
    }
    let over = format!("{at_limit}X:{}\r\n", "y".repeat(10));
    let obj = format!("{}limit.ics", w.cal());
    let ics = ("Content-Type", b"text/calendar".as_slice());
    for body in [
        over.as_bytes().to_vec(),
        event("o", "SUMMARY:o", 200_000).into_bytes(),
    ] {
        let r = w.raw("PUT", obj.as_bytes(), &[ics], &body).await;
        assert_eq!(r.status, 413, "declared {}", body.len());
        assert!(r.text().contains("max-resource-size"), "{}", r.text());
        let r = w
            .raw("PUT", obj.as_bytes(), &[ics, te], &chunked(&body))
            .await;
        assert_eq!(r.status, 413, "chunked {}", body.len());
    }
    let r = w
        .raw(
            "PUT",
            obj.as_bytes(),
            &[ics, ("Content-Length", b"99999999999")],
            b"",
        )
        .await;
    assert_eq!(r.status, 413);
    let xml = ("Content-Type", b"application/xml".as_slice());
    let huge_xml = format!(
        "<d:propfind xmlns:d=\"DAV:\"><d:prop>{}</d:prop></d:propfind>",
        "<d:getetag/>".repeat(DAV_LIMIT / 10)
    );
    let depth0 = ("Depth", b"0".as_slice());
    for m in ["PROPFIND", "REPORT", "PROPPATCH", "MKCALENDAR"] {
        let path = if m == "MKCALENDAR" {
            format!("/dav/calendars/{}/new/", w.staff)
        } else {
            w.cal()
        };
        let r = w
            .raw(
                m,
                path.as_bytes(),
                &[xml, te, depth0],
                &chunked(huge_xml.as_bytes()),
            )
            .await;
        assert_eq!(r.status, 413, "{m} chunked: {}", r.text());
        let r = w
            .raw(m, path.as_bytes(), &[xml, depth0], huge_xml.as_bytes())
            .await;
        assert_eq!(r.status, 413, "{m}: {}", r.text());
    }
    assert_eq!(w.state().await, before, "nothing was stored");
    w.healthy().await;

    // The object of exactly the limit is accepted.
    assert_eq!(at_limit.len(), DAV_LIMIT);
    let r = w
        .raw(
            "PUT",
            obj.as_bytes(),
            &[ics, te],
            &chunked(at_limit.as_bytes()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test]
async fn deep_and_wide_documents_are_refused_without_harm() {
    let w = World::new().await;
    let before = w.state().await;
    let xml = ("Content-Type", b"application/xml".as_slice());
    let deep = format!(
        "<d:propfind xmlns:d=\"DAV:\">{}{}</d:propfind>",
        "<d:prop>".repeat(3000),
        "</d:prop>".repeat(3000)
    );
    let wide = format!(
        "<d:propfind xmlns:d=\"DAV:\"><d:prop>{}</d:prop></d:propfind>",
        "<a/>".repeat(12_000)
    );
    let many_ns = format!(
        "<d:propfind xmlns:d=\"DAV:\" {}><d:prop><d:getetag/></d:prop></d:propfind>",
        (0..3000)
            .map(|i| format!("xmlns:n{i}=\"urn:{i}\""))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let long_name = format!(
        "<d:propfind xmlns:d=\"DAV:\"><d:prop><d:{}/></d:prop></d:propfind>",
        "n".repeat(60_000)
    );
    let w2 = World::with(
        TestServer::start_with(|raw| raw.set("server.dav_max_body", "10MiB".into())).await,
    )
    .await;
    let very_wide = format!(
        "<d:propfind xmlns:d=\"DAV:\"><d:prop>{}</d:prop></d:propfind>",
        "<a/>".repeat(150_000)
    );
    for m in ["PROPFIND", "REPORT", "PROPPATCH", "MKCALENDAR"] {
        let path = if m == "MKCALENDAR" {
            format!("/dav/calendars/{}/deep/", w.staff)
        } else {
            w.cal()
        };
        for (what, body) in [
            ("deep", &deep),
            ("many namespaces", &many_ns),
            ("long name", &long_name),
        ] {
            let body = body.replace(
                "propfind",
                match m {
                    "PROPPATCH" => "propertyupdate",
                    "MKCALENDAR" => "mkcalendar",
                    _ => "propfind",
                },
            );
            let r = w
                .raw(m, path.as_bytes(), &[xml, ("Depth", b"0")], body.as_bytes())
                .await;
            if what == "deep" {
                assert_eq!(r.status, 400, "{m} {what}: {}", r.text());
            } else {
                assert!(r.status < 500, "{m} {what}: {}", r.status);
            }
        }
        let _ = w
            .raw(m, path.as_bytes(), &[xml, ("Depth", b"0")], wide.as_bytes())
            .await;
        let path2 = path.replace(&w.staff, &w2.staff);
        let r = w2
            .raw(
                m,
                path2.as_bytes(),
                &[xml, ("Depth", b"0")],
                very_wide.as_bytes(),
            )
            .await;
        assert_eq!(r.status, 400, "{m} 150k elements: {}", r.text());
        w.healthy().await;
    }

    // JSON nested 100 000 deep (serde's recursion limit), and iCalendar
    // components nested 20 000 deep.
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let json_ct = ("Content-Type", b"application/json".as_slice());
    let r = w
        .raw(
            "POST",
            b"/api/v1/companies",
            &[json_ct],
            deep_json.as_bytes(),
        )
        .await;
    assert_4xx(&r, "JSON nested 100 000 deep");
    let deep_obj = format!(
        "{{\"summary\": {}1{}}}",
        "{\"a\":".repeat(50_000),
        "}".repeat(50_000)
    );
    let appt = format!("/api/v1/staff/{}/appointments", w.staff);
    let r = w
        .raw("POST", appt.as_bytes(), &[json_ct], deep_obj.as_bytes())
        .await;
    assert_4xx(&r, "deep JSON object");
    let mut nested = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//EN\r\n");
    for _ in 0..2000 {
        nested.push_str("BEGIN:X-N\r\n");
    }
    nested.push_str(
        "BEGIN:VEVENT\r\nUID:deep\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20310101T090000Z\r\nEND:VEVENT\r\n",
    );
    for _ in 0..2000 {
        nested.push_str("END:X-N\r\n");
    }
    nested.push_str("END:VCALENDAR\r\n");
    let ics = ("Content-Type", b"text/calendar".as_slice());
    let r = w
        .raw(
            "PUT",
            format!("{}deep.ics", w.cal()).as_bytes(),
            &[ics],
            nested.as_bytes(),
        )
        .await;
    assert_4xx(&r, "iCalendar nested 2000 deep");
    let mut deeper = String::from("BEGIN:VCALENDAR\r\n");
    for _ in 0..20_000 {
        deeper.push_str("BEGIN:X\r\n");
    }
    let r = w2
        .raw(
            "PUT",
            format!("{}deeper.ics", w2.cal()).as_bytes(),
            &[ics],
            deeper.as_bytes(),
        )
        .await;
    assert_4xx(&r, "unterminated iCalendar nested 20000 deep");
    assert_eq!(w.state().await, before, "nothing was stored");
    w.healthy().await;
    w2.healthy().await;
}

#[tokio::test]
async fn huge_headers_and_urls_are_refused() {
    let w = World::new().await;
    let before = w.state().await;
    let long = "v".repeat(70 * 1024);
    let many: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (format!("X-Many-{i}"), b"value".to_vec()))
        .collect();
    let many_ref: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let long_path = format!("{}{}.ics", w.cal(), "p".repeat(70 * 1024));
    let long_query = format!("/api/v1/companies?{}", "q=1&".repeat(20_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "one 70 KiB header",
            w.request(
                "GET",
                w.cal().as_bytes(),
                &[("X-Long", long.as_bytes())],
                b"",
            ),
        ),
        (
            "300 headers",
            w.request("GET", w.cal().as_bytes(), &many_ref, b""),
        ),
        (
            "a 70 KiB path",
            w.request("PUT", long_path.as_bytes(), &[], b""),
        ),
        (
            "an 80 KiB query",
            w.request("GET", long_query.as_bytes(), &[], b""),
        ),
        (
            "a 70 KiB Authorization",
            w.request(
                "GET",
                b"/api/v1/companies",
                &[("Authorization", long.as_bytes())],
                b"",
            ),
        ),
        (
            "a 70 KiB cookie",
            w.request("GET", b"/healthz", &[("Cookie", long.as_bytes())], b""),
        ),
    ];
    for (what, req) in cases {
        let started = std::time::Instant::now();
        let r = rawhttp::send(&w.addr(), &req).await;
        match r {
            Ok(r) => assert!(
                [400, 413, 414, 431].contains(&r.status),
                "{what}: {} {}",
                r.status,
                r.text()
            ),
            Err(e) => panic!("{what}: no answer ({e}); a clear 4xx was expected"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what} answered quickly"
        );
        w.healthy().await;
    }
    // A long but acceptable path segment is simply not found.
    let r = w
        .raw(
            "GET",
            format!("{}{}.ics", w.cal(), "p".repeat(300)).as_bytes(),
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(w.state().await, before);
}

#[tokio::test]
async fn compressed_request_bodies_are_refused() {
    use std::io::Write;
    let w = World::new().await;
    let before = w.state().await;
    let gz = |b: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    };
    let ev = event("gz", "SUMMARY:gz", 10);
    let propfind = br#"<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>"#;
    let obj = format!("{}gz.ics", w.cal());
    let appt = format!("/api/v1/staff/{}/appointments", w.staff);
    let appt_json =
        br#"{"summary":"gz","start":"2031-01-01T09:00:00Z","end":"2031-01-01T10:00:00Z"}"#;
    for enc in [
        "gzip",
        "GZIP",
        "x-gzip",
        "deflate",
        "br",
        "zstd",
        "gzip, identity",
        "identity, gzip",
        " gzip ",
    ] {
        let e = ("Content-Encoding", enc.as_bytes());
        // (method, path, headers, body)
        type Case<'a> = (&'a str, String, Vec<(&'a str, &'a [u8])>, Vec<u8>);
        let cases: Vec<Case> = vec![
            (
                "PUT",
                obj.clone(),
                vec![("Content-Type", b"text/calendar"), e],
                gz(ev.as_bytes()),
            ),
            ("PROPFIND", w.cal(), vec![("Depth", b"1"), e], gz(propfind)),
            ("REPORT", w.cal(), vec![("Depth", b"1"), e], gz(propfind)),
            ("PROPPATCH", w.cal(), vec![e], gz(propfind)),
            (
                "MKCALENDAR",
                format!("/dav/calendars/{}/gz/", w.staff),
                vec![e],
                gz(b""),
            ),
            (
                "POST",
                appt.clone(),
                vec![("Content-Type", b"application/json"), e],
                gz(appt_json),
            ),
            (
                "POST",
                "/api/v1/companies".into(),
                vec![("Content-Type", b"application/json"), e],
                gz(br#"{"name":"gz"}"#),
            ),
        ];
        for (m, path, headers, body) in cases {
            let r = w.raw(m, path.as_bytes(), &headers, &body).await;
            assert_eq!(r.status, 415, "{m} {path} with {enc:?}: {}", r.text());
        }
    }
    // A transfer coding other than chunked is not decoded either: the
    // bytes are not iCalendar, so nothing is stored.
    let r = w
        .raw(
            "PUT",
            obj.as_bytes(),
            &[
                ("Content-Type", b"text/calendar"),
                ("Transfer-Encoding", b"gzip, chunked"),
            ],
            &chunked(&gz(ev.as_bytes())),
        )
        .await;
    assert_4xx(&r, "Transfer-Encoding: gzip, chunked");
    assert_eq!(w.state().await, before, "nothing was stored");
    // Positive control: identity is fine.
    let r = w
        .raw(
            "PUT",
            obj.as_bytes(),
            &[
                ("Content-Type", b"text/calendar"),
                ("Content-Encoding", b"identity"),
            ],
            ev.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    w.healthy().await;
}

#[tokio::test]
async fn bytes_that_are_not_utf8_are_refused_everywhere() {
    let w = World::new().await;
    let before = w.state().await;
    let cal = w.cal();
    let obj = format!("{cal}u.ics");
    let bad = b"\xff\xfe\xc3\x28\xa0\xa1";
    let with = |prefix: &str, suffix: &str| {
        let mut v = prefix.as_bytes().to_vec();
        v.extend_from_slice(bad);
        v.extend_from_slice(suffix.as_bytes());
        v
    };
    let ev = event("u", "SUMMARY:u", 0);
    let ics = ("Content-Type", b"text/calendar".as_slice());
    let json_ct = ("Content-Type", b"application/json".as_slice());
    let appt = format!("/api/v1/staff/{}/appointments", w.staff);
    let latin1_event = ev
        .replace("SUMMARY:u", "SUMMARY:caf\u{e9}")
        .replace('\u{e9}', "\u{0}");
    let mut latin1 = latin1_event.into_bytes();
    for b in latin1.iter_mut() {
        if *b == 0 {
            *b = 0xe9;
        }
    }
    let bad_xml = with(
        "<d:propfind xmlns:d=\"DAV:\"><d:prop><d:displayname>",
        "</d:displayname></d:prop></d:propfind>",
    );
    let bad_json = with(
        "{\"summary\":\"",
        "\",\"start\":\"2031-01-01T09:00:00Z\",\"end\":\"2031-01-01T10:00:00Z\"}",
    );
    let basic_bad = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode([w.email.as_bytes(), b":\xff\xfe"].concat())
    );
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        // Paths, raw and percent-encoded.
        (
            "raw bytes in a DAV path".into(),
            w.request("GET", &with(&cal, ".ics"), &[], b""),
        ),
        (
            "raw bytes in a PUT path".into(),
            w.request("PUT", &with(&cal, ".ics"), &[ics], ev.as_bytes()),
        ),
        (
            "encoded bytes in a PUT path".into(),
            w.request(
                "PUT",
                format!("{cal}%ff%fe.ics").as_bytes(),
                &[ics],
                ev.as_bytes(),
            ),
        ),
        (
            "raw bytes in an API path".into(),
            w.request("GET", &with("/api/v1/staff/", ""), &[], b""),
        ),
        (
            "encoded bytes in an API path".into(),
            w.request("DELETE", b"/api/v1/appointments/evt_%ff%fe", &[], b""),
        ),
        (
            "raw bytes in a feed path".into(),
            w.request("GET", &with("/feeds/", ".ics"), &[], b""),
        ),
        // Query strings.
        (
            "raw bytes in a query".into(),
            w.request("GET", &with(&format!("{appt}?start="), ""), &[], b""),
        ),
        (
            "encoded bytes in a query".into(),
            w.request(
                "GET",
                format!("{appt}?start=%ff&end=%fe").as_bytes(),
                &[],
                b"",
            ),
        ),
        (
            "encoded bytes in a cursor".into(),
            w.request(
                "GET",
                b"/api/v1/companies?cursor=%ff%fe&limit=%ff",
                &[],
                b"",
            ),
        ),
        (
            "encoded bytes in an OAuth callback".into(),
            w.request(
                "GET",
                b"/oauth/google/callback?state=%ff%fe&code=%ff",
                &[],
                b"",
            ),
        ),
        // Headers.
        (
            "raw bytes in Basic".into(),
            w.request(
                "PROPFIND",
                cal.as_bytes(),
                &[("Authorization", &with("Basic ", ""))],
                b"",
            ),
        ),
        (
            "a Basic password that is not UTF-8".into(),
            w.request(
                "PROPFIND",
                cal.as_bytes(),
                &[("Authorization", basic_bad.as_bytes())],
                b"",
            ),
        ),
        (
            "raw bytes in Bearer".into(),
            w.request(
                "GET",
                b"/api/v1/companies",
                &[("Authorization", &with("Bearer ", ""))],
                b"",
            ),
        ),
        (
            "raw bytes in If-Match".into(),
            w.request(
                "PUT",
                obj.as_bytes(),
                &[ics, ("If-Match", &with("\"", "\""))],
                ev.as_bytes(),
            ),
        ),
        (
            "raw bytes in If-None-Match".into(),
            w.request(
                "PUT",
                obj.as_bytes(),
                &[ics, ("If-None-Match", &with("", ""))],
                ev.as_bytes(),
            ),
        ),
        (
            "raw bytes in Destination".into(),
            w.request(
                "COPY",
                obj.as_bytes(),
                &[("Destination", &with(&cal, ".ics"))],
                b"",
            ),
        ),
        (
            "raw bytes in Depth".into(),
            w.request("PROPFIND", cal.as_bytes(), &[("Depth", bad)], b""),
        ),
        (
            "raw bytes in Content-Type (API)".into(),
            w.request(
                "POST",
                b"/api/v1/companies",
                &[("Content-Type", bad)],
                b"{\"name\":\"u\"}",
            ),
        ),
        (
            "raw bytes in Content-Type (PUT)".into(),
            w.request(
                "PUT",
                obj.as_bytes(),
                &[("Content-Type", bad)],
                ev.as_bytes(),
            ),
        ),
        (
            "raw bytes in Content-Encoding".into(),
            w.request(
                "PUT",
                obj.as_bytes(),
                &[ics, ("Content-Encoding", bad)],
                ev.as_bytes(),
            ),
        ),
        // Bodies.
        (
            "an iCalendar body in Latin-1".into(),
            w.request("PUT", obj.as_bytes(), &[ics], &latin1),
        ),
        (
            "an XML body with bad bytes".into(),
            w.request("PROPPATCH", cal.as_bytes(), &[], &bad_xml),
        ),
        (
            "a REPORT body with bad bytes".into(),
            w.request("REPORT", cal.as_bytes(), &[("Depth", b"1")], &bad_xml),
        ),
        (
            "a JSON body with bad bytes".into(),
            w.request("POST", appt.as_bytes(), &[json_ct], &bad_json),
        ),
        (
            "a UTF-16 JSON body".into(),
            w.request(
                "POST",
                b"/api/v1/companies",
                &[json_ct],
                &"{\"name\":\"u\"}"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .collect::<Vec<_>>(),
            ),
        ),
    ];
    // Also as a header name (not allowed by HTTP at all).
    let mut weird = w.request("GET", b"/healthz", &[], b"");
    let at = weird.windows(2).position(|x| x == b"\r\n").unwrap() + 2;
    weird.splice(at..at, with("X-", ": 1\r\n"));
    cases.push(("raw bytes in a header name".into(), weird));
    for (what, req) in cases {
        let r = rawhttp::send(&w.addr(), &req)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_4xx(&r, &what);
    }
    assert_eq!(w.state().await, before, "nothing was stored");
    w.healthy().await;
}

// ---------------------------------------------------------------- CR/LF

/// A feed body must be valid RFC 5545 framing: CRLF only, no bare CR or
/// LF inside a line, lines of at most 75 octets.
fn check_feed(body: &[u8]) -> calbridge::ics::Component {
    let text = std::str::from_utf8(body).expect("UTF-8");
    assert!(text.ends_with("\r\n"));
    for line in text.split("\r\n") {
        assert!(
            !line.contains('\r') && !line.contains('\n'),
            "bare line break in {line:?}"
        );
        assert!(line.len() <= 75, "line of {} octets", line.len());
    }
    calbridge::ics::parse(body).expect("the feed parses")
}

const INJECTIONS: &[&str] = &[
    "a\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:forged\r\nSUMMARY:FORGED",
    "b\nEND:VEVENT\nBEGIN:VEVENT\nUID:forged2\nSUMMARY:FORGED",
    "c\rEND:VEVENT\rBEGIN:VEVENT\rUID:forged3\rSUMMARY:FORGED",
    "d\r\n X-FOLDED-FORGED:1",
    "e\r\n\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nEND:VALARM",
    "f\u{85}END:VEVENT\u{2028}BEGIN:VEVENT\u{2029}UID:forged4",
    "g;X-PARAM=1:forged\\,\"quoted\"",
];

/// Text as iCalendar can carry it: line breaks are `\n`.
/// Other control characters are dropped.
fn lf(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|c| *c == '\n' || !c.is_control())
        .collect()
}

/// No forged component or property anywhere in the feed.
fn assert_not_forged(cal: &calbridge::ics::Component, events: usize) {
    let vevents: Vec<_> = cal.children_named("VEVENT").collect();
    assert_eq!(vevents.len(), events, "exactly the events written");
    for e in &vevents {
        let uid = e.prop("UID").unwrap().text_value();
        assert!(!uid.starts_with("forged"), "a forged UID");
        // Reminders mapped from a provider are real VALARMs with a
        // TRIGGER; the injected one has none.
        for c in &e.children {
            assert!(
                c.name == "VALARM" && c.prop("TRIGGER").is_some(),
                "a forged sub-component: {c:?}"
            );
        }
        assert!(e.prop("X-FOLDED-FORGED").is_none());
    }
}

#[tokio::test]
async fn crlf_in_admin_values_cannot_forge_lines() {
    let w = World::new().await;
    let (cid, _) = (w.t.company_with_staff("UTC").await.0, ());
    // Names reach X-WR-CALNAME and headers of nothing: control characters
    // are refused outright.
    for bad in [
        "Acme\r\nX-FORGED:1",
        "Acme\nX",
        "Acme\rX",
        "Acme\u{85}X",
        "Acme\u{0}",
        "Acme\u{7f}",
    ] {
        let (s, v) =
            w.t.api("POST", "/api/v1/companies", Some(json!({"name": bad})))
                .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}: {v}");
        let (s, _) =
            w.t.api(
                "POST",
                &format!("/api/v1/companies/{cid}/groups"),
                Some(json!({"name": bad})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        let (s, _) =
            w.t.api(
                "POST",
                &format!("/api/v1/companies/{cid}/staff"),
                Some(json!({"name": bad, "email": "x@y.example"})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        let (s, _) =
            w.t.api(
                "PATCH",
                &format!("/api/v1/staff/{}", w.staff),
                Some(json!({"name": bad})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        let (s, _) =
            w.t.api(
                "POST",
                &format!("/api/v1/staff/{}/app-passwords", w.staff),
                Some(json!({"label": bad})),
            )
            .await;
        assert!(
            s.is_client_error() || s == StatusCode::CREATED,
            "{bad:?}: {s}"
        );
    }
    for bad in [
        "a@b.example\r\nBcc: x@y",
        "a\n@b.example",
        "a@b.example\u{0}",
    ] {
        let (s, _) =
            w.t.api(
                "POST",
                &format!("/api/v1/companies/{cid}/staff"),
                Some(json!({"name": "N", "email": bad})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
    }

    // Free text in appointments is escaped, on create and on change; the
    // fields that are not free text refuse line breaks.
    let appt = format!("/api/v1/staff/{}/appointments", w.staff);
    let mut ids = Vec::new();
    for (i, inj) in INJECTIONS.iter().enumerate() {
        let (s, v) = w
            .t
            .api(
                "POST",
                &appt,
                Some(json!({"summary": inj, "description": inj, "location": inj,
                    "start": format!("2031-01-{:02}T09:00:00Z", i + 1), "end": format!("2031-01-{:02}T10:00:00Z", i + 1)})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{inj:?}: {v}");
        assert_eq!(v["summary"], lf(inj), "the text round-trips");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    for (id, inj) in ids.iter().zip(INJECTIONS.iter().rev()) {
        let (s, v) =
            w.t.api(
                "PATCH",
                &format!("/api/v1/appointments/{id}"),
                Some(json!({"summary": inj, "location": inj})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["location"], lf(inj));
    }
    for (field, bad) in [
        ("timezone", "UTC\r\nX-FORGED:1"),
        ("rrule", "FREQ=DAILY\r\nBEGIN:VEVENT"),
        ("rrule", "FREQ=DAILY;COUNT=2\nX-FORGED:1"),
        ("start", "2031-01-01T09:00:00Z\r\nX:1"),
        ("visibility", "public\r\nX:1"),
    ] {
        let mut body =
            json!({"summary": "s", "start": "2031-02-01T09:00:00Z", "end": "2031-02-01T10:00:00Z"});
        body[field] = json!(bad);
        let (s, v) = w.t.api("POST", &appt, Some(body)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{field} {bad:?}: {v}");
    }
    let (_, _, body) = common::get(&w.t.client, &w.t.url(&w.feed), &[]).await;
    let cal = check_feed(&body);
    assert_not_forged(&cal, INJECTIONS.len());
    // Each stored object is one event too.
    for id in &ids {
        let r = w
            .raw("GET", format!("{}{id}.ics", w.cal()).as_bytes(), &[], b"")
            .await;
        let obj = calbridge::ics::parse(&r.body).expect("parses");
        assert_not_forged(&obj, 1);
    }

    // Values reflected into response headers: nothing is injected.
    for path in [
        "/api/v1/companies?limit=1&cursor=%0D%0ASet-Cookie:%20pwn=1".to_string(),
        format!("{appt}?limit=1&start=2030-01-01%0D%0ASet-Cookie:%20pwn=1"),
        format!("{appt}?limit=1&start=2030-01-01"),
    ] {
        let r = w.raw("GET", path.as_bytes(), &[], b"").await;
        assert!(r.status < 500);
        assert!(r.header("set-cookie").is_none(), "{path}: {:?}", r.headers);
        for (k, v) in &r.headers {
            assert!(
                !k.contains("pwn") && !v.contains('\r') && !v.contains('\n'),
                "{k}: {v}"
            );
        }
    }
    // The OAuth callback reflects the provider's error text as HTML, escaped.
    let r = w
        .raw(
            "GET",
            b"/oauth/google/callback?state=x&error=%3Cscript%3Ealert(1)%3C%2Fscript%3E&error_description=%0D%0ASet-Cookie:x",
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(!r.text().contains("<script>"));
    assert!(r.header("set-cookie").is_none());
}

#[tokio::test]
async fn crlf_through_caldav_cannot_forge_lines() {
    let w = World::new().await;
    let cal = w.cal();
    let ics = ("Content-Type", b"text/calendar".as_slice());
    // Bare CR or LF inside a value, or a fold that starts a new line: a
    // PUT is either refused or stored as one event that the feed writes
    // back with nothing forged.
    let bodies = [
        event(
            "cr1",
            "SUMMARY:x\rEND:VEVENT\rBEGIN:VEVENT\rUID:forged\rSUMMARY:FORGED",
            0,
        ),
        event(
            "cr2",
            "SUMMARY:x\r\n\rBEGIN:VALARM\r\nACTION:DISPLAY\r\nEND:VALARM",
            0,
        ),
        event("cr3", "SUMMARY:x\\nEND:VEVENT\\nBEGIN:VEVENT", 0),
        event("cr4", "SUMMARY;X-P=\"a\r\nb\":x", 0),
        event("cr5", "SUMMARY:x\u{85}END:VEVENT\u{2028}BEGIN:VEVENT", 0),
    ];
    let mut stored = 0;
    for (i, b) in bodies.iter().enumerate() {
        let r = w
            .raw(
                "PUT",
                format!("{cal}cr{i}.ics").as_bytes(),
                &[ics],
                b.as_bytes(),
            )
            .await;
        assert!(
            r.status == 201 || (400..500).contains(&r.status),
            "{b:?}: {}",
            r.status
        );
        if r.status == 201 {
            // The client's own object: stored byte for byte, and it
            // parses (how it framed its own lines is its business).
            stored += 1;
            let g = w
                .raw("GET", format!("{cal}cr{i}.ics").as_bytes(), &[], b"")
                .await;
            assert_eq!(g.body, b.as_bytes());
            calbridge::ics::parse(&g.body).expect("stored object parses");
        }
    }
    // Calendar properties: stored as text, never a line anywhere.
    let r = w
        .raw(
            "PROPPATCH",
            cal.as_bytes(),
            &[],
            br##"<d:propertyupdate xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:i="http://apple.com/ns/ical/"><d:set><d:prop><d:displayname>n&#13;&#10;END:VCALENDAR&#13;&#10;BEGIN:VEVENT</d:displayname><c:calendar-description>d&#13;&#10;X-FORGED:1</c:calendar-description><i:calendar-color>#ff0000&#13;&#10;X:1</i:calendar-color></d:prop></d:set></d:propertyupdate>"##,
        )
        .await;
    assert!(
        r.status == 207 || (400..500).contains(&r.status),
        "{}",
        r.status
    );
    let r = w
        .raw(
            "PROPFIND",
            cal.as_bytes(),
            &[("Depth", b"0")],
            br#"<d:propfind xmlns:d="DAV:"><d:allprop/></d:propfind>"#,
        )
        .await;
    assert_eq!(r.status, 207);
    calbridge::dav::xml::parse(&r.body).expect("the multistatus still parses");
    let (_, _, body) = common::get(&w.t.client, &w.t.url(&w.feed), &[]).await;
    let feed = check_feed(&body);
    assert!(feed.prop("X-FORGED").is_none());
    // One VEVENT per stored object: none was split into more by the way
    // the feed writes it.
    let uids: Vec<String> = feed
        .children_named("VEVENT")
        .map(|e| e.prop("UID").unwrap().text_value())
        .collect();
    assert!(uids.len() >= stored, "{uids:?}");
    w.healthy().await;
}

#[tokio::test]
async fn crlf_from_upstream_cannot_forge_lines() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emu = Emulator::start(listener).await;
    let base = emu.base_url.clone();
    let t = TestServer::start_with(|raw| use_emulator(raw, &base)).await;
    let w = World::with(t).await;
    let name = "Evil\"; X-FORGED=1:\r\nBEGIN:VEVENT\r\nUID:forged";
    // Within Graph's delta window (two years ahead).
    let day = |i: usize| {
        (chrono::Utc::now() + chrono::Duration::days(10 + i as i64))
            .format("%Y-%m-%d")
            .to_string()
    };
    emu.create_user(Provider::Google, &w.email, Some(name), Some("UTC"));
    emu.create_user(Provider::Microsoft, &w.email, Some(name), Some("UTC"));
    for (i, inj) in INJECTIONS.iter().enumerate() {
        emu.seed_google_event(
            &w.email,
            "primary",
            json!({
                "summary": inj, "description": inj, "location": inj,
                "start": {"dateTime": format!("{}T09:00:00Z", day(i))},
                "end": {"dateTime": format!("{}T10:00:00Z", day(i))},
                "attendees": [{"email": "x@y.example", "displayName": name}],
            }),
        )
        .unwrap();
        emu.seed_graph_event(
            &w.email,
            "default",
            json!({
                "subject": inj,
                "body": {"contentType": "text", "content": inj},
                "location": {"displayName": inj},
                "start": {"dateTime": format!("{}T11:00:00", day(i)), "timeZone": "UTC"},
                "end": {"dateTime": format!("{}T12:00:00", day(i)), "timeZone": "UTC"},
                "attendees": [{"emailAddress": {"address": "x@y.example", "name": name}, "type": "required"}],
            }),
        )
        .unwrap();
    }
    for provider in ["google", "microsoft"] {
        let account = w.t.connect(&w.staff, provider).await;
        let (_, cals) =
            w.t.api(
                "GET",
                &format!("/api/v1/accounts/{account}/calendars"),
                None,
            )
            .await;
        for c in cals.as_array().unwrap() {
            let remote = c["id"].as_str().unwrap();
            let (s, v) =
                w.t.api(
                    "PUT",
                    &format!(
                        "/api/v1/accounts/{account}/calendars/{}",
                        percent_encoding::utf8_percent_encode(
                            remote,
                            percent_encoding::NON_ALPHANUMERIC
                        )
                    ),
                    Some(json!({"selected": true})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
        let st = w.t.sync_and_wait(&account).await;
        assert_eq!(st["status"], "ok", "{st}");
    }
    let (_, _, body) = common::get(&w.t.client, &w.t.url(&w.feed), &[]).await;
    let feed = check_feed(&body);
    assert_not_forged(&feed, 2 * INJECTIONS.len());
    let mut named = 0;
    for e in feed.children_named("VEVENT") {
        for p in e
            .props
            .iter()
            .filter(|p| p.name == "ATTENDEE" || p.name == "ORGANIZER")
        {
            // The name survives whole (RFC 6868 carries its quote and
            // line breaks inside the parameter), so nothing leaked out.
            if let Some(cn) = p.param("CN") {
                assert_eq!(cn, lf(name), "{p:?}");
                named += 1;
            }
            assert!(
                p.params.iter().all(|x| x.name != "X-FORGED"),
                "a forged parameter: {p:?}"
            );
        }
    }
    assert!(
        named >= 2 * INJECTIONS.len(),
        "attendees with names: {named}"
    );
}
