//! The admin API end to end: every route, and the bad input each must refuse
//! without storing anything.

use crate::common;

use common::{TestServer, ADMIN_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn err_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn err_field(v: &Value) -> &str {
    v["error"]["field"].as_str().unwrap_or("")
}

#[tokio::test]
async fn companies_groups_and_staff() {
    let t = TestServer::start().await;
    let c = t
        .create(
            "/api/v1/companies",
            json!({"name": "Acme Physio", "timezone": "Europe/Berlin"}),
        )
        .await;
    let cid = c["id"].as_str().unwrap();
    assert_eq!(c["name"], "Acme Physio");
    assert_eq!(c["timezone"], "Europe/Berlin");
    let (s, got) = t
        .api("GET", &format!("/api/v1/companies/{cid}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["id"], c["id"]);

    let g1 = t
        .create(
            &format!("/api/v1/companies/{cid}/groups"),
            json!({"name": "Front desk"}),
        )
        .await;
    let g2 = t
        .create(
            &format!("/api/v1/companies/{cid}/groups"),
            json!({"name": "Therapists"}),
        )
        .await;
    let (_, groups) = t
        .api("GET", &format!("/api/v1/companies/{cid}/groups"), None)
        .await;
    assert_eq!(groups.as_array().unwrap().len(), 2);

    let staff = t
        .create(
            &format!("/api/v1/companies/{cid}/staff"),
            json!({"name": "Anna", "email": "Anna@Acme.example", "groups": [g1["id"], g2["id"]]}),
        )
        .await;
    let sid = staff["id"].as_str().unwrap();
    assert_eq!(staff["email"], "anna@acme.example");
    assert_eq!(
        staff["timezone"], "Europe/Berlin",
        "defaults to the company's zone"
    );
    assert_eq!(staff["groups"].as_array().unwrap().len(), 2);
    assert!(staff["caldav"]["principal"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/dav/principals/{sid}/")));

    let (_, g) = t
        .api(
            "GET",
            &format!("/api/v1/groups/{}", g1["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(g["members"], json!([sid]));

    // PATCH: rename, move to one group, change zone.
    let (s, p) = t
        .api(
            "PATCH",
            &format!("/api/v1/staff/{sid}"),
            Some(json!({"name": "Anna K.", "groups": [g2["id"]], "timezone": "America/Chicago"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["name"], "Anna K.");
    assert_eq!(p["timezone"], "America/Chicago");
    let (_, g) = t
        .api(
            "GET",
            &format!("/api/v1/groups/{}", g1["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(g["members"], json!([]));
    let (_, g) = t
        .api(
            "GET",
            &format!("/api/v1/groups/{}", g2["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(g["members"], json!([sid]));

    // Same e-mail twice in one company: refused, naming who.
    let (s, v) = t
        .api(
            "POST",
            &format!("/api/v1/companies/{cid}/staff"),
            Some(json!({"name": "B", "email": "anna@acme.example"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    let (s, list) = t
        .api("GET", &format!("/api/v1/companies/{cid}/staff"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);

    let (s, _) = t.api("DELETE", &format!("/api/v1/staff/{sid}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = t.api("GET", &format!("/api/v1/staff/{sid}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(err_code(&v), "not_found");
    let (_, g) = t
        .api(
            "GET",
            &format!("/api/v1/groups/{}", g2["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(g["members"], json!([]));
}

#[tokio::test]
async fn lists_page_with_link_headers() {
    let t = TestServer::start().await;
    let c = t.create("/api/v1/companies", json!({"name": "P"})).await;
    let cid = c["id"].as_str().unwrap();
    for i in 0..5 {
        t.create(
            &format!("/api/v1/companies/{cid}/staff"),
            json!({"name": format!("S{i}"), "email": format!("s{i}@p.example")}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut url = t.url(&format!("/api/v1/companies/{cid}/staff?limit=2"));
    loop {
        let r = t
            .client
            .get(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let link = r
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_string());
        let page: Vec<Value> = r.json().await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|s| s["id"].as_str().unwrap().to_string()));
        match link {
            Some(l) => {
                url = l
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_string()
            }
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen.len(), 5);
    assert_eq!(
        sorted.len(),
        5,
        "no staff member appears twice across pages"
    );
    let (s, v) = t
        .api(
            "GET",
            &format!("/api/v1/companies/{cid}/staff?limit=0"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err_field(&v), "limit");
}

#[tokio::test]
async fn app_passwords_are_shown_once_and_revocable() {
    let t = TestServer::start().await;
    let (_, sid) = t.company_with_staff("UTC").await;
    let ap = t
        .create(
            &format!("/api/v1/staff/{sid}/app-passwords"),
            json!({"label": "iPhone"}),
        )
        .await;
    let pw = ap["password"].as_str().unwrap();
    assert!(pw.len() >= 32);
    assert!(ap["username"].as_str().unwrap().contains('@'));
    // An empty body works too.
    let r = t
        .client
        .post(t.url(&format!("/api/v1/staff/{sid}/app-passwords")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (_, list) = t
        .api("GET", &format!("/api/v1/staff/{sid}/app-passwords"), None)
        .await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(
        list.iter().all(|a| a.get("password").is_none()),
        "never shown again"
    );
    // Stored hashed: the password is nowhere in the store.
    let store = &t.app.db;
    let stored = store
        .app_passwords(&calbridge::model::StaffId(sid.clone()))
        .unwrap();
    assert!(stored
        .iter()
        .all(|a| a.hash.starts_with("$argon2id$") && !a.hash.contains(pw)));
    let (s, _) = t
        .api(
            "DELETE",
            &format!(
                "/api/v1/staff/{sid}/app-passwords/{}",
                ap["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t
        .api(
            "DELETE",
            &format!(
                "/api/v1/staff/{sid}/app-passwords/{}",
                ap["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn appointments_create_read_change_cancel() {
    let t = TestServer::start().await;
    let (_, sid) = t.company_with_staff("Europe/Berlin").await;
    let a = t
        .create(
            &format!("/api/v1/staff/{sid}/appointments"),
            json!({
                "summary": "Massage, 60 min; room 2",
                "start": "2030-03-02T09:00:00+01:00",
                "end": "2030-03-02T10:00:00+01:00",
                "timezone": "Europe/Berlin",
                "description": "Line one\nLine two",
                "location": "Room 2",
                "visibility": "private"
            }),
        )
        .await;
    let id = a["id"].as_str().unwrap();
    assert!(a["uid"].as_str().unwrap().ends_with("@calbridge"));
    assert_eq!(a["summary"], "Massage, 60 min; room 2");
    assert_eq!(a["start"], "2030-03-02T09:00:00+01:00");
    assert_eq!(a["timezone"], "Europe/Berlin");
    assert_eq!(a["description"], "Line one\nLine two");
    assert_eq!(a["visibility"], "private");
    assert_eq!(a["all_day"], false);

    let (s, got) = t
        .api("GET", &format!("/api/v1/appointments/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, a);

    // Range listing: inside, outside.
    let (_, inside) = t
        .api(
            "GET",
            &format!("/api/v1/staff/{sid}/appointments?start=2030-03-01&end=2030-03-03"),
            None,
        )
        .await;
    assert_eq!(inside.as_array().unwrap().len(), 1);
    let (_, outside) = t
        .api(
            "GET",
            &format!("/api/v1/staff/{sid}/appointments?start=2030-03-03&end=2030-03-04"),
            None,
        )
        .await;
    assert_eq!(outside.as_array().unwrap().len(), 0);

    // All-day and recurring.
    let d = t
        .create(
            &format!("/api/v1/staff/{sid}/appointments"),
            json!({"summary": "Holiday", "start": "2030-03-05", "end": "2030-03-07", "all_day": true}),
        )
        .await;
    assert_eq!(d["all_day"], true);
    assert_eq!(d["start"], "2030-03-05");
    assert_eq!(d["end"], "2030-03-07");
    assert!(d.get("timezone").is_none());
    let r = t
        .create(
            &format!("/api/v1/staff/{sid}/appointments"),
            json!({"summary": "Stand-up", "start": "2030-03-04T09:00:00+01:00", "end": "2030-03-04T09:15:00+01:00", "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=10"}),
        )
        .await;
    assert_eq!(r["rrule"], "FREQ=WEEKLY;BYDAY=MO;COUNT=10");
    assert_eq!(
        r["timezone"], "Europe/Berlin",
        "defaults to the staff member's zone"
    );

    // PATCH moves it and clears the location; SEQUENCE goes up, id stays.
    let (s, p) = t
        .api(
            "PATCH",
            &format!("/api/v1/appointments/{id}"),
            Some(json!({"start": "2030-03-02T11:00:00+01:00", "end": "2030-03-02T12:00:00+01:00", "location": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["id"], a["id"]);
    assert_eq!(p["start"], "2030-03-02T11:00:00+01:00");
    assert!(p.get("location").is_none());
    assert_eq!(p["summary"], a["summary"]);
    assert_ne!(p["etag"], a["etag"]);

    // A stale If-Match is refused.
    let r412 = t
        .client
        .patch(t.url(&format!("/api/v1/appointments/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .header("If-Match", format!("\"{}\"", a["etag"].as_str().unwrap()))
        .json(&json!({"summary": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r412.status(), StatusCode::PRECONDITION_FAILED);

    let (s, _) = t
        .api("DELETE", &format!("/api/v1/appointments/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t
        .api("GET", &format!("/api/v1/appointments/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = t
        .api("DELETE", &format!("/api/v1/appointments/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn freebusy_over_appointments() {
    let t = TestServer::start().await;
    let (_, sid) = t.company_with_staff("UTC").await;
    for (s, e) in [
        ("2030-01-01T09:00:00Z", "2030-01-01T10:00:00Z"),
        ("2030-01-01T09:30:00Z", "2030-01-01T11:00:00Z"),
        ("2030-01-02T09:00:00Z", "2030-01-02T10:00:00Z"),
    ] {
        t.create(
            &format!("/api/v1/staff/{sid}/appointments"),
            json!({"summary": "x", "start": s, "end": e}),
        )
        .await;
    }
    let (s, fb) = t
        .api(
            "GET",
            &format!(
                "/api/v1/staff/{sid}/freebusy?start=2030-01-01T00:00:00Z&end=2030-01-01T23:59:59Z"
            ),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        fb["busy"],
        json!([{"start": "2030-01-01T09:00:00Z", "end": "2030-01-01T11:00:00Z", "source": "appointments"}])
    );
    let (s, v) = t
        .api(
            "GET",
            &format!(
                "/api/v1/staff/{sid}/freebusy?start=2030-01-02T00:00:00Z&end=2030-01-01T00:00:00Z"
            ),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err_field(&v), "end");
}

#[tokio::test]
async fn auth_is_required_everywhere() {
    let t = TestServer::start().await;
    let (cid, sid) = t.company_with_staff("UTC").await;
    let routes = [
        ("POST", "/api/v1/companies".to_string()),
        ("GET", "/api/v1/companies".to_string()),
        ("GET", format!("/api/v1/companies/{cid}")),
        ("POST", format!("/api/v1/companies/{cid}/groups")),
        ("GET", format!("/api/v1/companies/{cid}/groups")),
        ("POST", format!("/api/v1/companies/{cid}/staff")),
        ("GET", format!("/api/v1/companies/{cid}/staff")),
        ("GET", format!("/api/v1/staff/{sid}")),
        ("PATCH", format!("/api/v1/staff/{sid}")),
        ("DELETE", format!("/api/v1/staff/{sid}")),
        ("POST", format!("/api/v1/staff/{sid}/app-passwords")),
        ("GET", format!("/api/v1/staff/{sid}/app-passwords")),
        ("POST", format!("/api/v1/staff/{sid}/appointments")),
        ("GET", format!("/api/v1/staff/{sid}/appointments")),
        (
            "GET",
            format!("/api/v1/staff/{sid}/freebusy?start=2030-01-01&end=2030-01-02"),
        ),
        ("POST", "/api/v1/feeds".to_string()),
    ];
    for (method, path) in &routes {
        for auth in [
            None,
            Some("Bearer wrong-token-xxxxxxxxxxxxxxxx"),
            Some("Basic YTpi"),
        ] {
            let mut req = t
                .client
                .request(method.parse().unwrap(), t.url(path))
                .json(&json!({}));
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let r = req.send().await.unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {auth:?}"
            );
            let v: Value = r.json().await.unwrap();
            assert_eq!(err_code(&v), "unauthorized");
        }
    }
    // Nothing was created by the refused calls.
    let (_, staff) = t.api("GET", &format!("/api/v1/staff/{sid}"), None).await;
    assert_eq!(staff["name"], "Anna");
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let t = TestServer::start().await;
    let (cid, sid) = t.company_with_staff("UTC").await;
    let post_raw = |path: String, body: Vec<u8>, ct: &'static str| {
        let t = &t;
        async move {
            let r = t
                .client
                .post(t.url(&path))
                .bearer_auth(ADMIN_TOKEN)
                .header("Content-Type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            let s = r.status();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Malformed JSON → 400 naming the problem.
    let (s, v) = post_raw(
        "/api/v1/companies".into(),
        b"{\"name\": ".to_vec(),
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("JSON"),
        "{v}"
    );
    let (s, _) = post_raw("/api/v1/companies".into(), b"".to_vec(), "application/json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = post_raw(
        "/api/v1/companies".into(),
        b"{\"name\":\"a\"} trailing".to_vec(),
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = post_raw(
        "/api/v1/companies".into(),
        b"name=a".to_vec(),
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Wrong types and unknown fields name the field.
    let (s, v) = post_raw(
        "/api/v1/companies".into(),
        br#"{"name": 5}"#.to_vec(),
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err_field(&v), "name");
    let (s, _) = post_raw(
        "/api/v1/companies".into(),
        br#"{"name": "a", "evil": 1}"#.to_vec(),
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Over 1 MiB → 413.
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(1 << 20));
    let (s, v) = post_raw(
        "/api/v1/companies".into(),
        big.into_bytes(),
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    // A compressed body is refused (no decompression bombs).
    let r = t
        .client
        .post(t.url("/api/v1/companies"))
        .bearer_auth(ADMIN_TOKEN)
        .header("Content-Encoding", "gzip")
        .header("Content-Type", "application/json")
        .body(vec![0x1f, 0x8b, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Validation → 422 naming the field.
    let appt = format!("/api/v1/staff/{sid}/appointments");
    let cases = [
        (
            json!({"summary": "x", "start": "2030-01-01T10:00:00Z", "end": "2030-01-01T09:00:00Z"}),
            "end",
        ),
        (
            json!({"summary": "x", "start": "2030-01-01T10:00:00Z", "end": "2030-01-01T10:00:00Z"}),
            "end",
        ),
        (
            json!({"summary": "x", "start": "yesterday", "end": "2030-01-01T09:00:00Z"}),
            "start",
        ),
        (
            json!({"summary": "x", "start": "2030-01-01T09:00:00Z", "end": "2030-01-01T10:00:00Z", "timezone": "Mars/Olympus"}),
            "timezone",
        ),
        (
            json!({"summary": "x", "start": "2030-01-01T09:00:00Z", "end": "2030-01-01T10:00:00Z", "rrule": "FREQ=SOMETIMES"}),
            "rrule",
        ),
        (
            json!({"summary": "x", "start": "2030-01-01T09:00:00Z", "end": "2030-01-01T10:00:00Z", "rrule": "BYDAY=MO"}),
            "rrule",
        ),
        (
            json!({"summary": "", "start": "2030-01-01T09:00:00Z", "end": "2030-01-01T10:00:00Z"}),
            "summary",
        ),
        (
            json!({"summary": "x", "start": "2030-01-02", "end": "2030-01-01", "all_day": true}),
            "end",
        ),
        (
            json!({"summary": "x", "start": "2030-01-01T09:00:00Z", "end": "2030-01-02", "all_day": true}),
            "start",
        ),
        (
            json!({"summary": "x", "start": "2030-01-01T09:00:00Z", "end": "2030-01-01T10:00:00Z", "visibility": "secret"}),
            "visibility",
        ),
        (
            json!({"start": "2030-01-01T09:00:00Z", "end": "2030-01-01T10:00:00Z"}),
            "",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = t.api("POST", &appt, Some(body.clone())).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {v}");
        if !field.is_empty() {
            assert_eq!(err_field(&v), field, "{body} → {v}");
        }
    }
    let (s, v) = t
        .api(
            "POST",
            &format!("/api/v1/companies/{cid}/staff"),
            Some(json!({"name": "B", "email": "not-an-email"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err_field(&v), "email");
    let (s, v) = t
        .api(
            "POST",
            &format!("/api/v1/companies/{cid}/staff"),
            Some(json!({"name": "B", "email": "b@x.example", "timezone": "Nowhere/Land"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err_field(&v), "timezone");
    let (s, v) = t
        .api(
            "POST",
            &format!("/api/v1/companies/{cid}/staff"),
            Some(json!({"name": "B", "email": "b@x.example", "groups": ["grp_doesnotexist"]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err_field(&v), "groups");
    let (s, _) = t
        .api(
            "POST",
            "/api/v1/companies",
            Some(json!({"name": "X", "timezone": "Bogus/Zone"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // Unknown ids → 404, also for ids of the wrong kind or malformed ones.
    for path in [
        "/api/v1/staff/stf_doesnotexist0000".to_string(),
        format!("/api/v1/staff/{cid}"),
        "/api/v1/staff/..%2F..%2Fetc".to_string(),
        "/api/v1/appointments/evt_nope00000000".to_string(),
        "/api/v1/companies/cmp_nope00000000".to_string(),
        "/api/v1/feeds/fd_nope0000000000".to_string(),
        "/api/v1/no/such/route".to_string(),
    ] {
        let (s, v) = t.api("GET", &path, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
    }
    let (s, _) = t
        .api("POST", "/api/v1/staff/stf_doesnotexist0000/appointments", Some(json!({"summary": "x", "start": "2030-01-01T09:00:00Z", "end": "2030-01-01T10:00:00Z"})))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // None of it stored anything: one company, one staff member, no appointments.
    let (_, companies) = t.api("GET", "/api/v1/companies", None).await;
    assert_eq!(companies.as_array().unwrap().len(), 1);
    let (_, staff) = t
        .api("GET", &format!("/api/v1/companies/{cid}/staff"), None)
        .await;
    assert_eq!(staff.as_array().unwrap().len(), 1);
    let (_, appts) = t.api("GET", &appt, None).await;
    assert_eq!(appts.as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn ops_endpoints() {
    let t = TestServer::start().await;
    let (s, _, body) = common::get(&t.client, &t.url("/healthz"), &[]).await;
    assert_eq!((s, body.as_slice()), (StatusCode::OK, b"ok\n".as_slice()));
    let (s, _, _) = common::get(&t.client, &t.url("/readyz"), &[]).await;
    assert_eq!(s, StatusCode::OK);
    let _ = t.api("GET", "/api/v1/companies", None).await;
    let (s, h, body) = common::get(&t.client, &t.url("/metrics"), &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h["content-type"].to_str().unwrap().contains("openmetrics"));
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("calbridge_http_requests_total{group=\"api\",method=\"GET\",status=\"200\"}"),
        "{text}"
    );
}
