//! ICS feeds end to end: scopes, privacy, include, window, rotate/revoke,
//! conditional GET, gzip, HEAD, and the RFC 5545 rules every feed obeys.

use crate::common;

use std::io::Read;

use common::{get, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Checks every feed must pass: CRLF only, no line over 75 octets, parses,
/// every VEVENT has UID, DTSTAMP and DTSTART.
fn check_rfc5545(body: &[u8]) -> calbridge::ics::Component {
    let text = std::str::from_utf8(body).expect("UTF-8");
    assert!(text.ends_with("\r\n"));
    for line in text.split("\r\n") {
        assert!(
            !line.contains('\n') && !line.contains('\r'),
            "bare line break in {line:?}"
        );
        assert!(line.len() <= 75, "line of {} octets: {line:?}", line.len());
    }
    let cal = calbridge::ics::parse(body).expect("feed parses");
    assert_eq!(cal.name, "VCALENDAR");
    for ev in cal.children_named("VEVENT") {
        for p in ["UID", "DTSTAMP", "DTSTART"] {
            assert!(ev.prop(p).is_some(), "VEVENT without {p}");
        }
    }
    cal
}

fn summaries(cal: &calbridge::ics::Component) -> Vec<String> {
    let mut v: Vec<String> = cal
        .children_named("VEVENT")
        .filter_map(|e| e.prop("SUMMARY").map(|p| p.text_value()))
        .collect();
    v.sort();
    v
}

async fn appointment(
    t: &TestServer,
    sid: &str,
    summary: &str,
    start: &str,
    end: &str,
    extra: Value,
) -> Value {
    let mut body = json!({"summary": summary, "start": start, "end": end});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    t.create(&format!("/api/v1/staff/{sid}/appointments"), body)
        .await
}

struct Org {
    cid: String,
    group: String,
    anna: String,
    ben: String,
    carl: String,
}

async fn org(t: &TestServer) -> Org {
    let c = t
        .create(
            "/api/v1/companies",
            json!({"name": "Acme", "timezone": "Europe/Berlin"}),
        )
        .await;
    let cid = c["id"].as_str().unwrap().to_string();
    let g = t
        .create(
            &format!("/api/v1/companies/{cid}/groups"),
            json!({"name": "Team A"}),
        )
        .await;
    let group = g["id"].as_str().unwrap().to_string();
    let mk = |name: &'static str, groups: Vec<String>| {
        let cid = cid.clone();
        async move {
            t.create(
                &format!("/api/v1/companies/{cid}/staff"),
                json!({"name": name, "email": format!("{}@acme.example", name.to_lowercase()), "groups": groups}),
            )
            .await["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let anna = mk("Anna", vec![group.clone()]).await;
    let ben = mk("Ben", vec![group.clone()]).await;
    let carl = mk("Carl", vec![]).await;
    Org {
        cid,
        group,
        anna,
        ben,
        carl,
    }
}

async fn feed(t: &TestServer, scope: &str, id: &str, extra: Value) -> Value {
    let mut body = json!({"scope": scope, "id": id});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    t.create("/api/v1/feeds", body).await
}

#[tokio::test]
async fn staff_group_and_company_feeds() {
    let t = TestServer::start().await;
    let o = org(&t).await;
    appointment(
        &t,
        &o.anna,
        "Anna 1",
        "2031-01-01T09:00:00Z",
        "2031-01-01T10:00:00Z",
        json!({}),
    )
    .await;
    appointment(
        &t,
        &o.ben,
        "Ben 1",
        "2031-01-02T09:00:00Z",
        "2031-01-02T10:00:00Z",
        json!({}),
    )
    .await;
    appointment(
        &t,
        &o.carl,
        "Carl 1",
        "2031-01-03T09:00:00Z",
        "2031-01-03T10:00:00Z",
        json!({}),
    )
    .await;

    let f = feed(&t, "staff", &o.anna, json!({})).await;
    let url = f["url"].as_str().unwrap();
    assert!(url.starts_with(&t.base) && url.ends_with(".ics"));
    assert!(f["webcal_url"].as_str().unwrap().starts_with("webcal://"));
    for k in ["google", "outlook", "apple"] {
        assert!(f["subscribe"][k].as_str().unwrap().len() > 10, "{k}");
    }
    let token = url.rsplit('/').next().unwrap().trim_end_matches(".ics");
    assert!(token.len() >= 22, "at least 128 bits");

    let (s, h, body) = get(&t.client, url, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "text/calendar; charset=utf-8");
    let cal = check_rfc5545(&body);
    assert_eq!(summaries(&cal), vec!["Anna 1"]);
    assert_eq!(cal.prop("X-WR-CALNAME").unwrap().text_value(), "Anna");
    assert!(cal.prop("REFRESH-INTERVAL").unwrap().param("VALUE") == Some("DURATION"));
    assert!(cal.prop("X-PUBLISHED-TTL").is_some());

    let g = feed(&t, "group", &o.group, json!({})).await;
    let (_, _, body) = get(&t.client, g["url"].as_str().unwrap(), &[]).await;
    let cal = check_rfc5545(&body);
    assert_eq!(summaries(&cal), vec!["Anna 1", "Ben 1"]);
    assert_eq!(cal.prop("X-WR-CALNAME").unwrap().text_value(), "Team A");

    let c = feed(&t, "company", &o.cid, json!({})).await;
    let (_, _, body) = get(&t.client, c["url"].as_str().unwrap(), &[]).await;
    assert_eq!(
        summaries(&check_rfc5545(&body)),
        vec!["Anna 1", "Ben 1", "Carl 1"]
    );

    // A group feed follows membership changes.
    t.api(
        "PATCH",
        &format!("/api/v1/staff/{}", o.carl),
        Some(json!({"groups": [o.group]})),
    )
    .await;
    let (_, _, body) = get(&t.client, g["url"].as_str().unwrap(), &[]).await;
    assert_eq!(
        summaries(&check_rfc5545(&body)),
        vec!["Anna 1", "Ben 1", "Carl 1"]
    );

    // Feeds for unknown targets are refused.
    let (s, v) = t
        .api(
            "POST",
            "/api/v1/feeds",
            Some(json!({"scope": "staff", "id": "stf_nobody000000"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["field"], "id");
    let (s, _) = t
        .api(
            "POST",
            "/api/v1/feeds",
            Some(json!({"scope": "team", "id": o.anna})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = t
        .api(
            "POST",
            "/api/v1/feeds",
            Some(json!({"scope": "staff", "id": o.anna, "include": []})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn busy_privacy_shows_only_times() {
    let t = TestServer::start().await;
    let o = org(&t).await;
    appointment(
        &t,
        &o.anna,
        "Therapy with Mr. Smith",
        "2031-01-01T09:00:00Z",
        "2031-01-01T10:00:00Z",
        json!({"description": "diagnosis: secret", "location": "Room 7"}),
    )
    .await;
    appointment(
        &t,
        &o.anna,
        "Weekly",
        "2031-01-01T12:00:00Z",
        "2031-01-01T13:00:00Z",
        json!({"rrule": "FREQ=WEEKLY;COUNT=4"}),
    )
    .await;
    let f = feed(&t, "staff", &o.anna, json!({"privacy": "busy"})).await;
    assert_eq!(f["privacy"], "busy");
    let (_, _, body) = get(&t.client, f["url"].as_str().unwrap(), &[]).await;
    let cal = check_rfc5545(&body);
    let text = String::from_utf8(body).unwrap();
    for secret in ["Smith", "secret", "Room 7", "Weekly"] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
    assert_eq!(summaries(&cal), vec!["Busy", "Busy"]);
    assert!(text.contains("DTSTART;TZID=Europe/Berlin:20310101T100000"));
    assert!(
        text.contains("RRULE:FREQ=WEEKLY;COUNT=4"),
        "series stay series, not expanded"
    );
}

#[tokio::test]
async fn window_keeps_whole_series_and_drops_old_events() {
    let t = TestServer::start().await;
    let o = org(&t).await;
    appointment(
        &t,
        &o.anna,
        "Long ago",
        "2020-01-01T09:00:00Z",
        "2020-01-01T10:00:00Z",
        json!({}),
    )
    .await;
    appointment(
        &t,
        &o.anna,
        "Old series still running",
        "2020-01-06T09:00:00Z",
        "2020-01-06T10:00:00Z",
        json!({"rrule": "FREQ=WEEKLY"}),
    )
    .await;
    let recent = (chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339();
    let recent_end =
        (chrono::Utc::now() - chrono::Duration::days(3) + chrono::Duration::hours(1)).to_rfc3339();
    appointment(&t, &o.anna, "Last week", &recent, &recent_end, json!({})).await;
    let f = feed(&t, "staff", &o.anna, json!({})).await;
    let (_, _, body) = get(&t.client, f["url"].as_str().unwrap(), &[]).await;
    let cal = check_rfc5545(&body);
    assert_eq!(
        summaries(&cal),
        vec!["Last week", "Old series still running"]
    );
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("DTSTART;TZID=Europe/Berlin:20200106T100000"),
        "the series is kept whole from its first instance"
    );
}

#[tokio::test]
async fn conditional_get_gzip_and_head() {
    let t = TestServer::start().await;
    let o = org(&t).await;
    appointment(
        &t,
        &o.anna,
        "A",
        "2031-01-01T09:00:00Z",
        "2031-01-01T10:00:00Z",
        json!({}),
    )
    .await;
    let f = feed(&t, "staff", &o.anna, json!({})).await;
    let url = f["url"].as_str().unwrap();
    let (s, h, plain) = get(&t.client, url, &[]).await;
    assert_eq!(s, StatusCode::OK);
    let etag = h["etag"].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "strong ETag"
    );
    assert!(h.get("content-encoding").is_none(), "no gzip unless asked");

    let (s, h2, body) = get(&t.client, url, &[("If-None-Match", &etag)]).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(h2["etag"].to_str().unwrap(), etag);

    let (s, h3, gz) = get(&t.client, url, &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h3["content-encoding"], "gzip");
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, plain);

    let head = t.client.head(url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        plain.len().to_string()
    );
    assert_eq!(head.headers()["etag"].to_str().unwrap(), etag);

    // A change gives a new ETag and the old one no longer matches.
    appointment(
        &t,
        &o.anna,
        "B",
        "2031-01-02T09:00:00Z",
        "2031-01-02T10:00:00Z",
        json!({}),
    )
    .await;
    let (s, h4, _) = get(&t.client, url, &[("If-None-Match", &etag)]).await;
    assert_eq!(s, StatusCode::OK);
    assert_ne!(h4["etag"].to_str().unwrap(), etag);
    // Unchanged again → the cached bytes, same ETag.
    let (_, h5, _) = get(&t.client, url, &[]).await;
    assert_eq!(h5["etag"], h4["etag"]);
}

#[tokio::test]
async fn rotate_and_revoke() {
    let t = TestServer::start().await;
    let o = org(&t).await;
    let f = feed(&t, "staff", &o.anna, json!({})).await;
    let old = f["url"].as_str().unwrap().to_string();
    let id = f["id"].as_str().unwrap();
    assert_eq!(get(&t.client, &old, &[]).await.0, StatusCode::OK);
    let (s, r) = t
        .api("POST", &format!("/api/v1/feeds/{id}/rotate"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let new = r["url"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let (s, _, body) = get(&t.client, &old, &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body, b"Not Found\n", "a bare 404 that tells nothing");
    assert_eq!(get(&t.client, &new, &[]).await.0, StatusCode::OK);
    let (s, info) = t.api("GET", &format!("/api/v1/feeds/{id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(info.get("url").is_none(), "the token is never shown again");
    let (s, _) = t.api("DELETE", &format!("/api/v1/feeds/{id}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, body) = get(&t.client, &new, &[]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body, b"Not Found\n");
    let (s, _) = t
        .api("POST", &format!("/api/v1/feeds/{id}/rotate"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Unknown tokens of any shape: the same bare 404.
    for bad in [
        "/feeds/x.ics",
        "/feeds/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.ics",
        "/feeds/%2E%2E%2Fapi%2Fv1.ics",
        "/feeds/",
    ] {
        let (s, _, body) = get(&t.client, &t.url(bad), &[]).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{bad}");
        if bad.ends_with(".ics") {
            assert_eq!(body, b"Not Found\n");
        }
    }
    // Feeds of a deleted staff member stop working.
    let f2 = feed(&t, "staff", &o.ben, json!({})).await;
    t.api("DELETE", &format!("/api/v1/staff/{}", o.ben), None)
        .await;
    assert_eq!(
        get(&t.client, f2["url"].as_str().unwrap(), &[]).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn feed_tokens_are_stored_hashed() {
    let t = TestServer::start().await;
    let o = org(&t).await;
    let f = feed(&t, "staff", &o.anna, json!({})).await;
    let token = f["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".ics")
        .to_string();
    let stored = t
        .app
        .db
        .feed(&calbridge::model::FeedId(
            f["id"].as_str().unwrap().to_string(),
        ))
        .unwrap()
        .unwrap();
    assert_eq!(stored.token_hash, calbridge::crypto::token_hash(&token));
    assert!(!format!("{stored:?}").contains(&token));
}

#[tokio::test]
async fn hostile_text_cannot_forge_feed_lines() {
    let t = TestServer::start().await;
    let o = org(&t).await;
    appointment(
        &t,
        &o.anna,
        "Hi\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:forged\r\nSUMMARY:Forged",
        "2031-01-01T09:00:00Z",
        "2031-01-01T10:00:00Z",
        json!({"description": "x\rBEGIN:VALARM\n", "location": "a;b,c\\d"}),
    )
    .await;
    let f = feed(&t, "staff", &o.anna, json!({})).await;
    let (_, _, body) = get(&t.client, f["url"].as_str().unwrap(), &[]).await;
    let cal = check_rfc5545(&body);
    let events: Vec<_> = cal.children_named("VEVENT").collect();
    assert_eq!(events.len(), 1, "no forged event");
    assert!(events[0].children.is_empty(), "no forged VALARM");
    assert_eq!(events[0].prop("LOCATION").unwrap().text_value(), "a;b,c\\d");
    assert!(events[0]
        .prop("SUMMARY")
        .unwrap()
        .text_value()
        .contains("UID:forged"));
}

#[tokio::test]
async fn busy_feeds_carry_free_busy() {
    let t = TestServer::start().await;
    let o = org(&t).await;
    let soon = chrono::Utc::now() + chrono::Duration::days(2);
    let at = |h: i64| {
        (soon + chrono::Duration::hours(h))
            .format("%Y-%m-%dT%H:00:00Z")
            .to_string()
    };
    appointment(&t, &o.anna, "Busy one", &at(0), &at(1), json!({})).await;
    appointment(&t, &o.anna, "Overlapping", &at(0), &at(2), json!({})).await;
    appointment(
        &t,
        &o.anna,
        "Daily",
        &at(5),
        &at(6),
        json!({"rrule": "FREQ=DAILY;COUNT=3"}),
    )
    .await;
    let f = feed(&t, "staff", &o.anna, json!({"privacy": "busy"})).await;
    let (_, _, body) = get(&t.client, f["url"].as_str().unwrap(), &[]).await;
    let cal = check_rfc5545(&body);
    let fb: Vec<_> = cal.children_named("VFREEBUSY").collect();
    assert_eq!(fb.len(), 1);
    let periods: Vec<String> = fb[0]
        .props_named("FREEBUSY")
        .map(|p| p.value.clone())
        .collect();
    let stamp = |h: i64| {
        (soon + chrono::Duration::hours(h))
            .format("%Y%m%dT%H0000Z")
            .to_string()
    };
    // Overlapping appointments merge; the recurring one is expanded.
    assert_eq!(periods[0], format!("{}/{}", stamp(0), stamp(2)));
    assert_eq!(periods.len(), 4, "{periods:?}");
    assert!(periods.contains(&format!("{}/{}", stamp(29), stamp(30))));
    // A full feed has none.
    let full = feed(&t, "staff", &o.anna, json!({})).await;
    let (_, _, body) = get(&t.client, full["url"].as_str().unwrap(), &[]).await;
    assert_eq!(check_rfc5545(&body).children_named("VFREEBUSY").count(), 0);
}
