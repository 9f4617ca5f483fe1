//! Contract tests for the Google half of the emulator: OAuth 2.0 with PKCE
//! and Calendar API v3, driven over real HTTP with `reqwest`, checking the
//! behaviour Google documents (and a sync engine relies on).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use calbridge::upstream::emulator::{
    Emulator, EmulatorHandle, FaultKind, FaultRule, Provider, DEFAULT_GOOGLE_CLIENT_ID,
    DEFAULT_GOOGLE_CLIENT_SECRET,
};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const REDIRECT: &str = "http://localhost:8080/oauth/google/callback";
const CAL_SCOPE: &str = "https://www.googleapis.com/auth/calendar";
const EVENTS_ROUTE: &str = "/calendar/v3/calendars/{calendarId}/events";

async fn emulator() -> EmulatorHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Emulator::start(listener).await
}

fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn pkce() -> (String, String) {
    let verifier = format!(
        "verifier-{}-0123456789-abcdefghijklmnopqrstuvwxyz",
        rand::random::<u64>()
    );
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Runs the authorize step; returns the query of the redirect.
async fn authorize(
    emu: &EmulatorHandle,
    c: &Client,
    email: &str,
    scope: &str,
    extra: &[(&str, &str)],
    challenge: &str,
) -> Vec<(String, String)> {
    let mut q = vec![
        ("client_id", DEFAULT_GOOGLE_CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", scope),
        ("state", "st-123"),
        ("login_hint", email),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    q.extend_from_slice(extra);
    let r = c
        .get(emu.url("/o/oauth2/v2/auth"))
        .query(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    url::Url::parse(&loc)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

async fn redeem(
    emu: &EmulatorHandle,
    c: &Client,
    code: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    let r = c
        .post(emu.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", DEFAULT_GOOGLE_CLIENT_ID),
            ("client_secret", DEFAULT_GOOGLE_CLIENT_SECRET),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn refresh(emu: &EmulatorHandle, c: &Client, token: &str) -> (StatusCode, Value) {
    let r = c
        .post(emu.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", DEFAULT_GOOGLE_CLIENT_ID),
            ("client_secret", DEFAULT_GOOGLE_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

/// A full login; returns (access token, refresh token).
async fn login(emu: &EmulatorHandle, c: &Client, email: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let q = authorize(
        emu,
        c,
        email,
        CAL_SCOPE,
        &[("access_type", "offline"), ("prompt", "consent")],
        &challenge,
    )
    .await;
    let (status, body) = redeem(emu, c, param(&q, "code").unwrap(), &verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["access_token"].as_str().unwrap().to_string(),
        body["refresh_token"].as_str().unwrap().to_string(),
    )
}

struct Api<'a> {
    emu: &'a EmulatorHandle,
    c: Client,
    token: String,
}

impl Api<'_> {
    fn url(&self, path: &str) -> String {
        self.emu.url(&format!("/calendar/v3{path}"))
    }

    async fn send(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let r = rb.bearer_auth(&self.token).send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, v)
    }

    async fn get(&self, path: &str, q: &[(&str, &str)]) -> (StatusCode, Value) {
        let (s, _, v) = self.send(self.c.get(self.url(path)).query(q)).await;
        (s, v)
    }

    async fn insert(&self, body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self
            .send(
                self.c
                    .post(self.url("/calendars/primary/events"))
                    .json(&body),
            )
            .await;
        (s, v)
    }

    async fn patch(&self, id: &str, body: Value, if_match: Option<&str>) -> (StatusCode, Value) {
        let mut rb = self
            .c
            .patch(self.url(&format!("/calendars/primary/events/{id}")))
            .json(&body);
        if let Some(e) = if_match {
            rb = rb.header("If-Match", e);
        }
        let (s, _, v) = self.send(rb).await;
        (s, v)
    }

    async fn delete(&self, id: &str) -> StatusCode {
        self.send(
            self.c
                .delete(self.url(&format!("/calendars/primary/events/{id}"))),
        )
        .await
        .0
    }

    /// Follows nextPageToken to the end; returns (items, pages, sync token).
    async fn list_all(&self, q: &[(&str, &str)]) -> (Vec<Value>, Vec<Value>, String) {
        let mut items = Vec::new();
        let mut pages = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut qq: Vec<(&str, &str)> = q.to_vec();
            if let Some(t) = &page_token {
                qq.push(("pageToken", t));
            }
            let (s, v) = self.get("/calendars/primary/events", &qq).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            items.extend(v["items"].as_array().unwrap().iter().cloned());
            pages.push(v.clone());
            match v["nextPageToken"].as_str() {
                Some(t) => page_token = Some(t.to_string()),
                None => {
                    return (
                        items,
                        pages,
                        v["nextSyncToken"].as_str().unwrap().to_string(),
                    )
                }
            }
        }
    }
}

fn timed(summary: &str, day: u32, hour: u32) -> Value {
    json!({
        "summary": summary,
        "start": {"dateTime": format!("2026-03-{day:02}T{hour:02}:00:00+01:00")},
        "end": {"dateTime": format!("2026-03-{day:02}T{:02}:00:00+01:00", hour + 1)},
    })
}

fn error_reason(v: &Value) -> (&str, &str, i64) {
    (
        v["error"]["errors"][0]["domain"].as_str().unwrap_or(""),
        v["error"]["errors"][0]["reason"].as_str().unwrap_or(""),
        v["error"]["code"].as_i64().unwrap_or(0),
    )
}

#[tokio::test]
async fn oauth_code_flow_with_pkce_refresh_and_revocation() {
    let emu = emulator().await;
    let c = client();
    let (verifier, challenge) = pkce();
    let scope = format!("{CAL_SCOPE} openid email");
    let q = authorize(
        &emu,
        &c,
        "Ann@Example.com",
        &scope,
        &[("access_type", "offline"), ("prompt", "consent")],
        &challenge,
    )
    .await;
    assert_eq!(param(&q, "state"), Some("st-123"));
    let code = param(&q, "code").unwrap().to_string();

    // A wrong verifier is refused, and burns the code.
    let (s, body) = redeem(
        &emu,
        &c,
        &code,
        "not-the-verifier-0123456789012345678901234567",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (s, body) = redeem(&emu, &c, &code, &verifier).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    // A fresh code with the right verifier gives Google's token response.
    let (verifier, challenge) = pkce();
    let q = authorize(
        &emu,
        &c,
        "ann@example.com",
        &scope,
        &[("access_type", "offline"), ("prompt", "consent")],
        &challenge,
    )
    .await;
    let code = param(&q, "code").unwrap().to_string();
    let (s, tok) = redeem(&emu, &c, &code, &verifier).await;
    assert_eq!(s, StatusCode::OK, "{tok}");
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["expires_in"], 3599);
    assert!(tok["scope"].as_str().unwrap().contains(CAL_SCOPE));
    assert!(tok["id_token"].is_string());
    let refresh_token = tok["refresh_token"].as_str().unwrap().to_string();
    let access = tok["access_token"].as_str().unwrap().to_string();

    // Codes are single-use.
    let (s, body) = redeem(&emu, &c, &code, &verifier).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // Refresh keeps the refresh token (none in the answer).
    let (s, body) = refresh(&emu, &c, &refresh_token).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.get("refresh_token").is_none());
    assert_ne!(body["access_token"], json!(access));

    // The token reaches the user's data; the primary calendar is the email.
    let api = Api {
        emu: &emu,
        c: c.clone(),
        token: access.clone(),
    };
    let (s, list) = api.get("/users/me/calendarList", &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["items"][0]["id"], "ann@example.com");
    assert_eq!(list["items"][0]["primary"], true);
    assert_eq!(list["items"][0]["accessRole"], "owner");

    // Without prompt=consent a second authorization gets no refresh token.
    let (verifier2, challenge2) = pkce();
    let q = authorize(
        &emu,
        &c,
        "ann@example.com",
        CAL_SCOPE,
        &[("access_type", "offline")],
        &challenge2,
    )
    .await;
    let (s, tok2) = redeem(&emu, &c, param(&q, "code").unwrap(), &verifier2).await;
    assert_eq!(s, StatusCode::OK);
    assert!(tok2.get("refresh_token").is_none());

    // Access tokens expire: 401 in Google's shape.
    emu.advance_clock(chrono::Duration::seconds(3600));
    let (s, body) = api.get("/users/me/calendarList", &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(error_reason(&body), ("global", "authError", 401));

    // Revocation: refresh gets invalid_grant with Google's description.
    emu.revoke_refresh_tokens("ann@example.com");
    let (s, body) = refresh(&emu, &c, &refresh_token).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    );

    // Expiry of another user's refresh token, and the revoke endpoint.
    let (_, bob_refresh) = login(&emu, &c, "bob@example.com").await;
    emu.expire_refresh_tokens("bob@example.com");
    let (s, body) = refresh(&emu, &c, &bob_refresh).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (_, carol_refresh) = login(&emu, &c, "carol@example.com").await;
    let r = c
        .post(emu.url("/revoke"))
        .form(&[("token", carol_refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, _) = refresh(&emu, &c, &carol_refresh).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Bad client secret and bad requests at authorize.
    let r = c
        .post(emu.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", DEFAULT_GOOGLE_CLIENT_ID),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get(emu.url("/o/oauth2/v2/auth"))
        .query(&[
            ("client_id", "unknown"),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get(emu.url("/o/oauth2/v2/auth"))
        .query(&[
            ("client_id", DEFAULT_GOOGLE_CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "https://www.googleapis.com/auth/nope"),
            ("state", "s"),
            ("login_hint", "a@b.c"),
            ("code_challenge", "x"),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap();
    assert!(
        loc.contains("error=invalid_scope") && loc.contains("state=s"),
        "{loc}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn paging_and_incremental_sync() {
    let emu = emulator().await;
    let c = client();
    let (token, _) = login(&emu, &c, "ann@example.com").await;
    let api = Api {
        emu: &emu,
        c,
        token,
    };
    for i in 0..5 {
        let (s, v) = api.insert(timed(&format!("e{i}"), 2 + i, 9)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["kind"], "calendar#event");
        assert!(v["etag"].as_str().unwrap().starts_with('"'));
        assert!(v["updated"].as_str().unwrap().ends_with('Z'));
    }

    // 3 pages at maxResults=2; the sync token only on the last one.
    let (items, pages, sync) = api.list_all(&[("maxResults", "2")]).await;
    assert_eq!(pages.len(), 3);
    assert_eq!(items.len(), 5);
    for p in &pages[..2] {
        assert!(p["nextPageToken"].is_string());
        assert!(p.get("nextSyncToken").is_none());
        assert_eq!(p["items"].as_array().unwrap().len(), 2);
    }
    assert!(pages[2].get("nextPageToken").is_none());
    assert_eq!(pages[2]["kind"], "calendar#events");

    // Nothing changed: no items and the same token.
    let (_, _, again) = api.list_all(&[("syncToken", &sync)]).await;
    let (items0, _, same) = api.list_all(&[("syncToken", &sync)]).await;
    assert!(items0.is_empty());
    assert_eq!(same, sync);
    assert_eq!(again, sync);

    // Insert, patch and delete show up in the next incremental sync.
    let (_, new) = api.insert(timed("new", 20, 10)).await;
    let patched_id = items[0]["id"].as_str().unwrap();
    let (s, _) = api
        .patch(patched_id, json!({"summary": "renamed"}), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let deleted_id = items[1]["id"].as_str().unwrap();
    assert_eq!(api.delete(deleted_id).await, StatusCode::NO_CONTENT);
    let (changes, _, next) = api.list_all(&[("syncToken", &sync)]).await;
    assert_ne!(next, sync);
    assert_eq!(changes.len(), 3, "{changes:?}");
    let by_id = |id: &str| changes.iter().find(|e| e["id"] == id).cloned().unwrap();
    assert_eq!(by_id(new["id"].as_str().unwrap())["summary"], "new");
    assert_eq!(by_id(patched_id)["summary"], "renamed");
    let gone = by_id(deleted_id);
    assert_eq!(gone["status"], "cancelled");
    assert!(gone.get("summary").is_none() && gone.get("start").is_none());
    // A deleted event is soft: still there with showDeleted, not without.
    let (all, _, _) = api.list_all(&[("showDeleted", "true")]).await;
    assert_eq!(all.len(), 6);
    let (live, _, _) = api.list_all(&[]).await;
    assert_eq!(live.len(), 5);

    // Forbidden combinations and dead tokens.
    let (s, body) = api
        .get(
            "/calendars/primary/events",
            &[("syncToken", &next), ("timeMin", "2026-03-01T00:00:00Z")],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, body) = api
        .get("/calendars/primary/events", &[("syncToken", "1CPbogus")])
        .await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(error_reason(&body), ("calendar", "fullSyncRequired", 410));
    emu.invalidate_sync_tokens(Some("ann@example.com"));
    let (s, body) = api
        .get("/calendars/primary/events", &[("syncToken", &next)])
        .await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(
        body["error"]["message"],
        "Sync token is no longer valid, a full sync is required."
    );

    // timeMin/timeMax are exclusive bounds on end/start.
    let (inside, _, _) = api
        .list_all(&[
            ("timeMin", "2026-03-03T10:00:00+01:00"),
            ("timeMax", "2026-03-05T09:00:00+01:00"),
        ])
        .await;
    let names: Vec<&str> = inside
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["e2"], "{names:?}");
    let (s, body) = api
        .get(
            "/calendars/primary/events",
            &[
                ("timeMin", "2026-03-05T00:00:00Z"),
                ("timeMax", "2026-03-01T00:00:00Z"),
            ],
        )
        .await;
    assert_eq!(
        (s, error_reason(&body).1),
        (StatusCode::BAD_REQUEST, "timeRangeEmpty")
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn conditional_requests_ids_and_duplicates() {
    let emu = emulator().await;
    let c = client();
    let (token, _) = login(&emu, &c, "ann@example.com").await;
    let api = Api {
        emu: &emu,
        c: c.clone(),
        token,
    };
    let mut body = timed("mine", 2, 9);
    body["id"] = json!("calbridge0123456789");
    body["extendedProperties"] = json!({"private": {"calbridge": "appt-1"}});
    let (s, ev) = api.insert(body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{ev}");
    assert_eq!(ev["id"], "calbridge0123456789");
    let etag = ev["etag"].as_str().unwrap().to_string();

    // If-None-Match on get → 304; stale If-Match → 412.
    let (s, _, _) = api
        .send(
            c.get(api.url("/calendars/primary/events/calbridge0123456789"))
                .header("If-None-Match", &etag),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    let (s, v) = api
        .patch("calbridge0123456789", json!({"summary": "a"}), Some(&etag))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_ne!(v["etag"].as_str().unwrap(), etag);
    let (s, v) = api
        .patch("calbridge0123456789", json!({"summary": "b"}), Some(&etag))
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED);
    assert_eq!(error_reason(&v), ("global", "conditionNotMet", 412));
    let (s, _, _) = api
        .send(
            c.delete(api.url("/calendars/primary/events/calbridge0123456789"))
                .header("If-Match", &etag),
        )
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED);

    // The private extended property finds our own writes.
    let (s, found) = api
        .get(
            "/calendars/primary/events",
            &[("privateExtendedProperty", "calbridge=appt-1")],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let (_, none) = api
        .get(
            "/calendars/primary/events",
            &[("privateExtendedProperty", "calbridge=appt-2")],
        )
        .await;
    assert!(none["items"].as_array().unwrap().is_empty());

    // Ids must be base32hex, 5–1024 characters.
    let mut bad = timed("bad", 3, 9);
    bad["id"] = json!("NotBase32Hex");
    let (s, v) = api.insert(bad).await;
    assert_eq!(
        (s, error_reason(&v).1),
        (StatusCode::BAD_REQUEST, "invalid")
    );

    // Re-inserting an existing or deleted id → 409 duplicate.
    let (s, v) = api.insert(body.clone()).await;
    assert_eq!(
        (s, error_reason(&v)),
        (StatusCode::CONFLICT, ("global", "duplicate", 409))
    );
    assert_eq!(
        api.delete("calbridge0123456789").await,
        StatusCode::NO_CONTENT
    );
    let (s, v) = api.insert(body).await;
    assert_eq!((s, error_reason(&v).1), (StatusCode::CONFLICT, "duplicate"));
    // A deleted event can still be read, and deleting it again is 410.
    let (s, v) = api
        .get("/calendars/primary/events/calbridge0123456789", &[])
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    assert_eq!(api.delete("calbridge0123456789").await, StatusCode::GONE);
    // …and undeleted by an update.
    let (s, v) = api
        .patch("calbridge0123456789", json!({"status": "confirmed"}), None)
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("confirmed"))
    );

    // Four insert attempts reached the emulator; one event exists.
    assert_eq!(emu.request_count("POST", EVENTS_ROUTE), 4);
    assert_eq!(
        emu.request_count("POST", "/calendar/v3/calendars/primary/events"),
        4
    );
    assert_eq!(emu.google_events("ann@example.com", "primary").len(), 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn recurring_series_instances_and_exceptions() {
    let emu = emulator().await;
    let c = client();
    let (token, _) = login(&emu, &c, "ann@example.com").await;
    let api = Api {
        emu: &emu,
        c: c.clone(),
        token,
    };

    // Recurring timed events need a time zone.
    let (s, v) = api
        .insert(json!({"summary": "x", "start": {"dateTime": "2026-03-02T09:00:00Z"}, "end": {"dateTime": "2026-03-02T10:00:00Z"}, "recurrence": ["RRULE:FREQ=DAILY"]}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    let (s, master) = api
        .insert(json!({
            "summary": "standup",
            "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2026-03-02T09:30:00", "timeZone": "Europe/Berlin"},
            "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4"],
        }))
        .await;
    assert_eq!(s, StatusCode::OK, "{master}");
    let mid = master["id"].as_str().unwrap().to_string();
    assert_eq!(master["start"]["dateTime"], "2026-03-02T09:00:00+01:00");

    let (s, inst) = api
        .get(&format!("/calendars/primary/events/{mid}/instances"), &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<&str> = inst["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            format!("{mid}_20260302T080000Z"),
            format!("{mid}_20260309T080000Z"),
            format!("{mid}_20260316T080000Z"),
            format!("{mid}_20260323T080000Z"),
        ]
    );
    assert_eq!(inst["items"][1]["recurringEventId"], json!(mid));
    assert_eq!(
        inst["items"][1]["originalStartTime"]["dateTime"],
        "2026-03-09T09:00:00+01:00"
    );

    // Patching an instance id makes an exception event.
    let second = format!("{mid}_20260309T080000Z");
    let (s, ex) = api
        .patch(&second, json!({"summary": "moved", "start": {"dateTime": "2026-03-09T11:00:00+01:00"}, "end": {"dateTime": "2026-03-09T11:30:00+01:00"}}), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{ex}");
    assert_eq!(ex["id"], json!(second));
    assert_eq!(ex["recurringEventId"], json!(mid));
    assert_eq!(ex["iCalUID"], master["iCalUID"]);
    assert_eq!(
        ex["originalStartTime"]["dateTime"],
        "2026-03-09T09:00:00+01:00"
    );

    // Deleting an instance id makes a cancelled exception.
    let third = format!("{mid}_20260316T080000Z");
    assert_eq!(api.delete(&third).await, StatusCode::NO_CONTENT);

    // Unexpanded list without showDeleted still has the cancelled exception.
    let (items, _, _) = api.list_all(&[]).await;
    assert_eq!(items.len(), 3, "{items:?}");
    let cancelled = items.iter().find(|e| e["id"] == json!(third)).unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["recurringEventId"], json!(mid));
    assert_eq!(
        cancelled["originalStartTime"]["dateTime"],
        "2026-03-16T09:00:00+01:00"
    );
    assert!(cancelled.get("summary").is_none());

    // Expanded: three live instances in start order, the moved one included.
    let (s, single) = api
        .get(
            "/calendars/primary/events",
            &[("singleEvents", "true"), ("orderBy", "startTime")],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let got: Vec<(&str, &str)> = single["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["summary"].as_str().unwrap(),
                e["start"]["dateTime"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("standup", "2026-03-02T09:00:00+01:00"),
            ("moved", "2026-03-09T11:00:00+01:00"),
            ("standup", "2026-03-23T09:00:00+01:00"),
        ]
    );
    let (s, _) = api
        .get("/calendars/primary/events", &[("orderBy", "startTime")])
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // freeBusy sees the instances, the moved one at its new time.
    let (s, _, fb) = api
        .send(c.post(api.url("/freeBusy")).json(&json!({
            "timeMin": "2026-03-09T00:00:00Z", "timeMax": "2026-03-17T00:00:00Z",
            "items": [{"id": "primary"}, {"id": "nobody@example.com"}]
        })))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        fb["calendars"]["primary"]["busy"],
        json!([{"start": "2026-03-09T10:00:00Z", "end": "2026-03-09T10:30:00Z"}])
    );
    assert_eq!(
        fb["calendars"]["nobody@example.com"]["errors"][0]["reason"],
        "notFound"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn faults_scopes_and_isolation() {
    let emu = emulator().await;
    let c = client();
    let (token, _) = login(&emu, &c, "ann@example.com").await;
    let api = Api {
        emu: &emu,
        c: c.clone(),
        token,
    };

    emu.add_fault(FaultRule::new(FaultKind::GoogleUserRateLimit).times(1));
    emu.add_fault(FaultRule::new(FaultKind::GoogleTooManyRequests).times(1));
    let (s, v) = api.get("/calendars/primary/events", &[]).await;
    assert_eq!(
        (s, error_reason(&v)),
        (
            StatusCode::FORBIDDEN,
            ("usageLimits", "userRateLimitExceeded", 403)
        )
    );
    let (s, v) = api.get("/calendars/primary/events", &[]).await;
    assert_eq!(
        (s, error_reason(&v)),
        (
            StatusCode::TOO_MANY_REQUESTS,
            ("usageLimits", "rateLimitExceeded", 429)
        )
    );
    let (s, _) = api.get("/calendars/primary/events", &[]).await;
    assert_eq!(s, StatusCode::OK);

    // 500 backendError scoped to one path prefix, over the HTTP control API.
    let r = c
        .post(emu.url("/_emulator/faults"))
        .json(&json!({"kind": "google_backend_error", "path_prefix": "/calendar/v3/freeBusy", "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (s, _) = api.get("/calendars/primary/events", &[]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, v) = api
        .send(c.post(api.url("/freeBusy")).json(&json!({"timeMin": "2026-03-01T00:00:00Z", "timeMax": "2026-03-02T00:00:00Z", "items": []})))
        .await;
    assert_eq!(
        (s, error_reason(&v).1),
        (StatusCode::INTERNAL_SERVER_ERROR, "backendError")
    );

    // Garbage: a 200 that is not JSON.
    emu.add_fault(FaultRule::new(FaultKind::Garbage).times(1));
    let r = c
        .get(api.url("/calendars/primary/events"))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());

    // Truncated: the insert happens, the answer is cut; a retry with the
    // same id is a 409, so no duplicate is ever created.
    emu.add_fault(FaultRule::new(FaultKind::Truncated).times(1).method("POST"));
    let mut body = timed("once", 4, 9);
    body["id"] = json!("once00000001");
    let r = c
        .post(api.url("/calendars/primary/events"))
        .bearer_auth(&api.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());
    let (s, _) = api.insert(body).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let events = emu.google_events("ann@example.com", "primary");
    assert_eq!(events.iter().filter(|e| e["summary"] == "once").count(), 1);
    assert_eq!(emu.request_count("POST", EVENTS_ROUTE), 2);

    // Scopes: a read-only token cannot write.
    let (verifier, challenge) = pkce();
    let q = authorize(
        &emu,
        &c,
        "ann@example.com",
        "https://www.googleapis.com/auth/calendar.readonly",
        &[("access_type", "offline")],
        &challenge,
    )
    .await;
    let (_, tok) = redeem(&emu, &c, param(&q, "code").unwrap(), &verifier).await;
    let ro = Api {
        emu: &emu,
        c: c.clone(),
        token: tok["access_token"].as_str().unwrap().to_string(),
    };
    let (s, v) = ro.insert(timed("nope", 5, 9)).await;
    assert_eq!(
        (s, error_reason(&v).1),
        (StatusCode::FORBIDDEN, "insufficientPermissions")
    );
    let (s, _) = ro.get("/calendars/primary/events", &[]).await;
    assert_eq!(s, StatusCode::OK);

    // A token only reaches its own user's calendars.
    let (bob, _) = login(&emu, &c, "bob@example.com").await;
    let bob_api = Api {
        emu: &emu,
        c: c.clone(),
        token: bob,
    };
    let (s, v) = bob_api.get("/calendars/ann@example.com/events", &[]).await;
    assert_eq!((s, error_reason(&v).1), (StatusCode::NOT_FOUND, "notFound"));

    // Seeded RNG: the same seed gives the same fault pattern.
    let pattern = |seed: u64| {
        let api = &api;
        let emu = &emu;
        async move {
            emu.clear_faults();
            emu.set_fault_seed(seed);
            emu.add_fault(
                FaultRule::new(FaultKind::GoogleBackendError)
                    .probability(0.5)
                    .provider(Provider::Google),
            );
            let mut v = Vec::new();
            for _ in 0..16 {
                v.push(api.get("/calendars/primary/events", &[]).await.0.as_u16());
            }
            emu.clear_faults();
            v
        }
    };
    let a = pattern(42).await;
    let b = pattern(42).await;
    assert_eq!(a, b);
    assert!(a.contains(&500) && a.contains(&200), "{a:?}");

    // The request log over HTTP.
    let log: Value = c
        .get(emu.url("/_emulator/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        log["counts"][format!("POST {EVENTS_ROUTE}")]
            .as_u64()
            .unwrap()
            >= 2
    );
    assert!(log["log"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["fault"] == "truncated"));
    emu.shutdown().await;
}

#[tokio::test]
async fn control_api_seeds_and_drives_over_http() {
    let emu = emulator().await;
    let c = client();
    let r = c
        .post(emu.url("/_emulator/users"))
        .json(&json!({"provider": "google", "email": "dee@example.com", "time_zone": "America/New_York"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["calendars"][0]["id"], "dee@example.com");
    let r = c
        .post(emu.url("/_emulator/users/google/dee@example.com/calendars"))
        .json(&json!({"name": "Team"}))
        .send()
        .await
        .unwrap();
    let team: Value = r.json().await.unwrap();
    let team_id = team["id"].as_str().unwrap().to_string();
    let r = c
        .post(emu.url(&format!("/_emulator/users/google/dee@example.com/calendars/{team_id}/events")))
        .json(&json!({"summary": "seeded", "start": {"date": "2026-03-02"}, "end": {"date": "2026-03-03"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .post(emu.url("/_emulator/users/google/dee@example.com/tokens"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let tokens: Value = r.json().await.unwrap();
    let api = Api {
        emu: &emu,
        c: c.clone(),
        token: tokens["access_token"].as_str().unwrap().to_string(),
    };
    let (s, list) = api
        .get("/users/me/calendarList", &[("maxResults", "1")])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(list["nextPageToken"].is_string());
    let (s, v) = api.get(&format!("/calendars/{team_id}/events"), &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"][0]["start"], json!({"date": "2026-03-02"}));
    assert_eq!(v["items"][0]["end"], json!({"date": "2026-03-03"}));
    assert_eq!(v["timeZone"], "UTC");
    let dump: Value = c
        .get(emu.url(&format!(
            "/_emulator/users/google/dee@example.com/calendars/{team_id}/events"
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dump.as_array().unwrap().len(), 1);
    let r = c
        .post(emu.url("/_emulator/access-tokens/expire"))
        .json(&json!({"email": "dee@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, _) = api.get("/users/me/calendarList", &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    emu.shutdown().await;
}

#[tokio::test]
async fn all_day_series_and_expanded_incremental_sync() {
    let emu = emulator().await;
    let c = client();
    let (token, _) = login(&emu, &c, "ann@example.com").await;
    let api = Api {
        emu: &emu,
        c,
        token,
    };
    let (s, m) = api
        .insert(json!({
            "summary": "on call",
            "start": {"date": "2026-03-02"},
            "end": {"date": "2026-03-03"},
            "recurrence": ["RRULE:FREQ=DAILY;COUNT=3", "EXDATE;VALUE=DATE:20260303"],
        }))
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let mid = m["id"].as_str().unwrap().to_string();

    // All-day instances: `_YYYYMMDD` ids, dates kept as dates.
    let (items, _, sync) = api.list_all(&[("singleEvents", "true")]).await;
    let ids: Vec<&str> = items.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        vec![format!("{mid}_20260302"), format!("{mid}_20260304")]
    );
    assert_eq!(items[1]["start"], json!({"date": "2026-03-04"}));
    assert_eq!(items[1]["end"], json!({"date": "2026-03-05"}));
    assert_eq!(items[1]["originalStartTime"], json!({"date": "2026-03-04"}));

    // A stale If-Match on an instance is refused before anything changes.
    let (s, _) = api
        .patch(
            &format!("{mid}_20260304"),
            json!({"summary": "x"}),
            Some("\"1\""),
        )
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED);
    let (s, _) = api
        .patch(&format!("{mid}_20260305"), json!({"summary": "x"}), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // An instance change shows up in the expanded incremental sync.
    let (s, _) = api
        .patch(
            &format!("{mid}_20260304"),
            json!({"summary": "swap"}),
            Some(m["etag"].as_str().unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (changes, _, next) = api
        .list_all(&[("singleEvents", "true"), ("syncToken", &sync)])
        .await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["summary"], "swap");
    assert_eq!(changes[0]["recurringEventId"], json!(mid));

    // Deleting the series cancels every instance, reported to the next sync.
    assert_eq!(api.delete(&mid).await, StatusCode::NO_CONTENT);
    let (gone, _, _) = api
        .list_all(&[("singleEvents", "true"), ("syncToken", &next)])
        .await;
    assert_eq!(gone.len(), 2, "{gone:?}");
    assert!(gone.iter().all(|e| e["status"] == "cancelled"));

    // Calendar-list sync tokens survive an events sync-token invalidation.
    let (s, list) = api.get("/users/me/calendarList", &[]).await;
    assert_eq!(s, StatusCode::OK);
    let list_sync = list["nextSyncToken"].as_str().unwrap().to_string();
    emu.invalidate_sync_tokens(None);
    let (s, again) = api
        .get("/users/me/calendarList", &[("syncToken", &list_sync)])
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(again["items"].as_array().unwrap().is_empty());
    emu.shutdown().await;
}
