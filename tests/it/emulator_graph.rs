//! Contract tests for the Microsoft half of the emulator: the identity
//! platform's auth-code flow with PKCE and Graph v1.0 calendars, driven over
//! real HTTP with `reqwest`, checking the behaviour Microsoft documents.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use calbridge::upstream::emulator::{
    Emulator, EmulatorHandle, FaultKind, FaultRule, DEFAULT_MICROSOFT_CLIENT_ID,
    DEFAULT_MICROSOFT_CLIENT_SECRET,
};
use reqwest::header::HeaderMap;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const REDIRECT: &str = "http://localhost:8080/oauth/microsoft/callback";
const SCOPES: &str = "offline_access openid Calendars.ReadWrite User.Read";
const PROP_ID: &str = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name calbridgeId";

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
        "v-{}-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFG",
        rand::random::<u64>()
    );
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

async fn authorize(
    emu: &EmulatorHandle,
    c: &Client,
    email: &str,
    scope: &str,
    challenge: &str,
) -> String {
    let r = c
        .get(emu.url("/common/oauth2/v2.0/authorize"))
        .query(&[
            ("client_id", DEFAULT_MICROSOFT_CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("response_mode", "query"),
            ("scope", scope),
            ("state", "ms-state"),
            ("login_hint", email),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q: Vec<(String, String)> = loc.query_pairs().into_owned().collect();
    assert!(q.contains(&("state".into(), "ms-state".into())));
    q.into_iter().find(|(k, _)| k == "code").unwrap().1
}

async fn token(emu: &EmulatorHandle, c: &Client, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut f = vec![
        ("client_id", DEFAULT_MICROSOFT_CLIENT_ID),
        ("client_secret", DEFAULT_MICROSOFT_CLIENT_SECRET),
    ];
    f.extend_from_slice(form);
    let r = c
        .post(emu.url("/common/oauth2/v2.0/token"))
        .form(&f)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn redeem(
    emu: &EmulatorHandle,
    c: &Client,
    code: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    token(
        emu,
        c,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("scope", SCOPES),
        ],
    )
    .await
}

async fn login_with(
    emu: &EmulatorHandle,
    c: &Client,
    email: &str,
    scopes: &str,
) -> (String, Option<String>) {
    let (verifier, challenge) = pkce();
    let code = authorize(emu, c, email, scopes, &challenge).await;
    let (s, body) = redeem(emu, c, &code, &verifier).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    (
        body["access_token"].as_str().unwrap().to_string(),
        body["refresh_token"].as_str().map(str::to_string),
    )
}

async fn login(emu: &EmulatorHandle, c: &Client, email: &str) -> Graph {
    let (access, _) = login_with(emu, c, email, SCOPES).await;
    Graph {
        base: emu.base_url.clone(),
        c: c.clone(),
        token: access,
    }
}

fn aadsts(v: &Value) -> i64 {
    v["error_codes"][0].as_i64().unwrap_or(0)
}

struct Graph {
    base: String,
    c: Client,
    token: String,
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Graph {
    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}/v1.0{path}", self.base)
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder, prefer: &[&str]) -> Resp {
        let mut rb = rb.bearer_auth(&self.token);
        for p in prefer {
            rb = rb.header("Prefer", *p);
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, prefer: &[&str]) -> Resp {
        self.send(self.c.get(self.url(path)), prefer).await
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(self.c.post(self.url(path)).json(&body), &[])
            .await
    }

    async fn patch(&self, path: &str, body: Value, if_match: Option<&str>) -> Resp {
        let mut rb = self.c.patch(self.url(path)).json(&body);
        if let Some(e) = if_match {
            rb = rb.header("If-Match", e);
        }
        self.send(rb, &[]).await
    }

    async fn delete(&self, path: &str) -> StatusCode {
        self.send(self.c.delete(self.url(path)), &[]).await.status
    }

    /// Runs one delta round to its deltaLink; returns (items, page count,
    /// deltaLink).
    async fn delta_round(&self, first: &str, page: usize) -> (Vec<Value>, usize, String) {
        let prefer = format!("odata.maxpagesize={page}");
        let mut url = first.to_string();
        let mut items = Vec::new();
        let mut pages = 0;
        loop {
            let r = self.get(&url, &[&prefer]).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            pages += 1;
            let v = r.body;
            items.extend(v["value"].as_array().unwrap().iter().cloned());
            if let Some(next) = v["@odata.nextLink"].as_str() {
                assert!(next.contains("$skiptoken="), "{next}");
                assert!(v.get("@odata.deltaLink").is_none());
                url = next.to_string();
            } else {
                let d = v["@odata.deltaLink"].as_str().unwrap().to_string();
                assert!(d.contains("$deltatoken="), "{d}");
                return (items, pages, d);
            }
        }
    }
}

fn single(subject: &str, day: u32) -> Value {
    json!({
        "subject": subject,
        "start": {"dateTime": format!("2026-03-{day:02}T09:00:00"), "timeZone": "UTC"},
        "end": {"dateTime": format!("2026-03-{day:02}T10:00:00"), "timeZone": "UTC"},
    })
}

const WINDOW: &str = "?startDateTime=2026-03-01T00:00:00Z&endDateTime=2026-04-01T00:00:00Z";

fn removed_ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter(|i| i.get("@removed").is_some())
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn oauth_code_flow_pkce_rotation_and_aadsts_errors() {
    let emu = emulator().await;
    let c = client();
    let (verifier, challenge) = pkce();
    let code = authorize(&emu, &c, "ann@contoso.com", SCOPES, &challenge).await;

    // Wrong verifier → invalid_grant AADSTS501481; the code is then spent.
    let (s, body) = redeem(
        &emu,
        &c,
        &code,
        "wrong-verifier-0123456789012345678901234567890",
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(aadsts(&body), 501481);
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS501481:"));
    let (s, body) = redeem(&emu, &c, &code, &verifier).await;
    assert_eq!((s, aadsts(&body)), (StatusCode::BAD_REQUEST, 54005));

    let (verifier, challenge) = pkce();
    let code = authorize(&emu, &c, "ann@contoso.com", SCOPES, &challenge).await;
    let (s, tok) = redeem(&emu, &c, &code, &verifier).await;
    assert_eq!(s, StatusCode::OK, "{tok}");
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["expires_in"], 3599);
    assert_eq!(tok["ext_expires_in"], 3599);
    assert!(tok["scope"]
        .as_str()
        .unwrap()
        .contains("Calendars.ReadWrite"));
    let first_refresh = tok["refresh_token"].as_str().unwrap().to_string();
    // Reused code → AADSTS54005.
    let (s, body) = redeem(&emu, &c, &code, &verifier).await;
    assert_eq!((s, aadsts(&body)), (StatusCode::BAD_REQUEST, 54005));

    // Microsoft rotates the refresh token on every use.
    let (s, r1) = token(
        &emu,
        &c,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first_refresh),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r1}");
    let second_refresh = r1["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second_refresh, first_refresh);
    let (s, r2) = token(
        &emu,
        &c,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &second_refresh),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_ne!(r2["refresh_token"], json!(second_refresh));

    // /me and the default calendar's owner.
    let g = Graph {
        base: emu.base_url.clone(),
        c: c.clone(),
        token: r2["access_token"].as_str().unwrap().to_string(),
    };
    let me = g.get("/me", &[]).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["mail"], "ann@contoso.com");
    assert_eq!(me.body["userPrincipalName"], "ann@contoso.com");
    assert!(me.body["id"].is_string() && me.body["displayName"].is_string());
    let cal = g.get("/me/calendar", &[]).await;
    assert_eq!(cal.body["isDefaultCalendar"], true);
    assert_eq!(cal.body["owner"]["address"], "ann@contoso.com");

    // Expired (AADSTS70008) and revoked (AADSTS50173) grants.
    emu.expire_refresh_tokens("ann@contoso.com");
    let (s, body) = token(
        &emu,
        &c,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", r2["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str(), aadsts(&body)),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"), 70008)
    );
    let (_, bob_refresh) = login_with(&emu, &c, "bob@contoso.com", SCOPES).await;
    emu.revoke_refresh_tokens("bob@contoso.com");
    let (s, body) = token(
        &emu,
        &c,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &bob_refresh.unwrap()),
        ],
    )
    .await;
    assert_eq!((s, aadsts(&body)), (StatusCode::BAD_REQUEST, 50173));

    // The refresh-expiry fault on the token endpoint.
    let (_, carol_refresh) = login_with(&emu, &c, "carol@contoso.com", SCOPES).await;
    emu.add_fault(
        FaultRule::new(FaultKind::RefreshTokenExpired)
            .path_prefix("/common/oauth2")
            .user("carol@contoso.com")
            .times(1),
    );
    let (s, body) = token(
        &emu,
        &c,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", carol_refresh.as_deref().unwrap()),
        ],
    )
    .await;
    assert_eq!((s, aadsts(&body)), (StatusCode::BAD_REQUEST, 70008));

    // Without offline_access there is no refresh token; without User.Read
    // /me is refused.
    let (access, refresh) = login_with(&emu, &c, "dan@contoso.com", "Calendars.Read").await;
    assert!(refresh.is_none());
    let ro = Graph {
        base: emu.base_url.clone(),
        c: c.clone(),
        token: access,
    };
    assert_eq!(ro.get("/me", &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(ro.get("/me/calendars", &[]).await.status, StatusCode::OK);
    let w = ro.post("/me/events", single("x", 2)).await;
    assert_eq!(
        (w.status, w.body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("ErrorAccessDenied"))
    );

    // Bad secret → 401 invalid_client AADSTS7000215.
    let r = c
        .post(emu.url("/common/oauth2/v2.0/token"))
        .form(&[
            ("client_id", DEFAULT_MICROSOFT_CLIENT_ID),
            ("client_secret", "nope"),
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), aadsts(&body)),
        (Some("invalid_client"), 7000215)
    );

    // Codes are short-lived: ten minutes later it has expired (AADSTS70008).
    let (late_verifier, late_challenge) = pkce();
    let late = authorize(&emu, &c, "ann@contoso.com", SCOPES, &late_challenge).await;
    emu.advance_clock(chrono::Duration::minutes(11));
    let (s, body) = redeem(&emu, &c, &late, &late_verifier).await;
    assert_eq!((s, aadsts(&body)), (StatusCode::BAD_REQUEST, 70008));

    emu.shutdown().await;
}

#[tokio::test]
async fn delta_paging_removals_replays_and_resets() {
    let emu = emulator().await;
    let c = client();
    let g = login(&emu, &c, "ann@contoso.com").await;
    let cal = g.get("/me/calendar", &[]).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ids = Vec::new();
    for d in 2..7 {
        let r = g
            .post(
                &format!("/me/calendars/{cal}/events"),
                single(&format!("e{d}"), d),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    let outside = g.post("/me/events", json!({"subject": "later", "start": {"dateTime": "2026-05-02T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-05-02T10:00:00", "timeZone": "UTC"}})).await;

    // Paging honours odata.maxpagesize: 2 + 2 + 1, deltaLink at the end.
    let first = format!("/me/calendars/{cal}/calendarView/delta{WINDOW}");
    let r = g.get(&first, &["odata.maxpagesize=2"]).await;
    assert!(r.headers["preference-applied"]
        .to_str()
        .unwrap()
        .contains("odata.maxpagesize=2"));
    let (items, pages, delta) = g.delta_round(&first, 2).await;
    assert_eq!(pages, 3);
    assert_eq!(items.len(), 5);
    for i in &items {
        assert_eq!(i["type"], "singleInstance");
        assert_eq!(i["@odata.type"], "#microsoft.graph.event");
        assert!(i["@odata.etag"].as_str().unwrap().starts_with("W/\""));
        assert_eq!(i["start"]["timeZone"], "UTC");
        assert!(i["start"]["dateTime"]
            .as_str()
            .unwrap()
            .ends_with(".0000000"));
    }

    // Nothing changed: an empty round.
    let (none, _, delta) = g.delta_round(&delta, 2).await;
    assert!(none.is_empty(), "{none:?}");

    // Delete, update, move out of the window, create outside the window.
    assert_eq!(
        g.delete(&format!("/me/events/{}", ids[0])).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        g.patch(
            &format!("/me/events/{}", ids[1]),
            json!({"subject": "renamed"}),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    let moved = g.patch(&format!("/me/events/{}", ids[2]), json!({"start": {"dateTime": "2026-04-10T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-04-10T10:00:00", "timeZone": "UTC"}}), None).await;
    assert_eq!(moved.status, StatusCode::OK);
    let late = g.post("/me/events", json!({"subject": "late", "start": {"dateTime": "2026-06-02T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-06-02T10:00:00", "timeZone": "UTC"}})).await;
    let (changes, _, next) = g.delta_round(&delta, 10).await;
    let removed = removed_ids(&changes);
    assert!(removed.contains(&ids[0]), "{changes:?}");
    assert!(removed.contains(&ids[2]), "{changes:?}");
    assert!(removed.contains(&late.body["id"].as_str().unwrap().to_string()));
    assert!(!removed.contains(&outside.body["id"].as_str().unwrap().to_string()));
    let updated: Vec<&Value> = changes
        .iter()
        .filter(|i| i.get("@removed").is_none())
        .collect();
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["subject"], "renamed");
    for r in changes.iter().filter(|i| i.get("@removed").is_some()) {
        assert_eq!(r["@removed"], json!({"reason": "deleted"}));
    }

    // Replaying the older deltaLink is harmless: the same changes again.
    let (replay, _, _) = g.delta_round(&delta, 10).await;
    assert_eq!(replay.len(), changes.len());

    // An invalid token is 410 syncStateNotFound in Graph's error shape.
    let bad = format!("/me/calendars/{cal}/calendarView/delta?$deltatoken=bogus");
    let r = g.get(&bad, &[]).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(r.body["error"]["code"], "syncStateNotFound");
    assert!(r.body["error"]["innerError"]["request-id"].is_string());
    emu.invalidate_sync_tokens(Some("ann@contoso.com"));
    assert_eq!(g.get(&next, &[]).await.status, StatusCode::GONE);

    // The default-calendar delta path works the same way.
    let (all, _, _) = g
        .delta_round(&format!("/me/calendarView/delta{WINDOW}"), 50)
        .await;
    assert_eq!(all.len(), 3);
    emu.shutdown().await;
}

#[tokio::test]
async fn series_occurrences_exceptions_and_cancellations() {
    let emu = emulator().await;
    let c = client();
    let g = login(&emu, &c, "ann@contoso.com").await;
    let master = g
        .post(
            "/me/events",
            json!({
                "subject": "1:1",
                "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "Pacific Standard Time"},
                "end": {"dateTime": "2026-03-02T09:30:00", "timeZone": "Pacific Standard Time"},
                "recurrence": {
                    "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "sunday"},
                    "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 4}
                }
            }),
        )
        .await;
    assert_eq!(master.status, StatusCode::CREATED, "{}", master.body);
    assert_eq!(master.body["type"], "seriesMaster");
    assert_eq!(master.body["recurrence"]["pattern"]["type"], "weekly");
    assert_eq!(
        master.body["recurrence"]["range"]["recurrenceTimeZone"],
        "Pacific Standard Time"
    );
    assert_eq!(
        master.body["originalStartTimeZone"],
        "Pacific Standard Time"
    );
    let mid = master.body["id"].as_str().unwrap().to_string();

    // Delta gives occurrences only, never the master; DST is honoured.
    let first = format!("/me/calendarView/delta{WINDOW}");
    let (items, _, delta) = g.delta_round(&first, 10).await;
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(items
        .iter()
        .all(|i| i["type"] == "occurrence" && i["seriesMasterId"] == json!(mid)));
    let starts: Vec<&str> = items
        .iter()
        .map(|i| i["start"]["dateTime"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        vec![
            "2026-03-02T17:00:00.0000000",
            "2026-03-09T16:00:00.0000000",
            "2026-03-16T16:00:00.0000000",
            "2026-03-23T16:00:00.0000000"
        ]
    );
    let uids: std::collections::HashSet<&str> = items
        .iter()
        .map(|i| i["iCalUId"].as_str().unwrap())
        .collect();
    assert_eq!(uids.len(), 4);
    assert!(!uids.contains(master.body["iCalUId"].as_str().unwrap()));
    assert_eq!(items[1]["originalStart"], "2026-03-09T16:00:00Z");
    let occ: Vec<String> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();

    let inst = g
        .get(&format!("/me/events/{mid}/instances{WINDOW}"), &[])
        .await;
    assert_eq!(inst.body["value"].as_array().unwrap().len(), 4);

    // PATCH of an occurrence makes an exception; DELETE cancels one.
    let ex = g
        .patch(&format!("/me/events/{}", occ[1]), json!({"subject": "moved", "start": {"dateTime": "2026-03-10T09:00:00", "timeZone": "Pacific Standard Time"}, "end": {"dateTime": "2026-03-10T09:30:00", "timeZone": "Pacific Standard Time"}}), None)
        .await;
    assert_eq!(ex.status, StatusCode::OK, "{}", ex.body);
    assert_eq!(ex.body["type"], "exception");
    assert_eq!(ex.body["id"], json!(occ[1]));
    assert_eq!(
        g.delete(&format!("/me/events/{}", occ[2])).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        g.get(&format!("/me/events/{}", occ[2]), &[]).await.status,
        StatusCode::NOT_FOUND
    );

    let (changes, _, delta) = g.delta_round(&delta, 10).await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    let changed = changes
        .iter()
        .find(|i| i.get("@removed").is_none())
        .unwrap();
    assert_eq!(
        (changed["type"].as_str(), changed["subject"].as_str()),
        (Some("exception"), Some("moved"))
    );
    assert_eq!(changed["start"]["dateTime"], "2026-03-10T16:00:00.0000000");
    assert_eq!(removed_ids(&changes), vec![occ[2].clone()]);

    let view = g.get(&format!("/me/calendarView{WINDOW}"), &[]).await;
    let types: Vec<&str> = view.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["occurrence", "exception", "occurrence"]);

    // PATCH on the master updates the series' occurrences.
    let m = g
        .patch(
            &format!("/me/events/{mid}"),
            json!({"subject": "1:1 renamed"}),
            None,
        )
        .await;
    assert_eq!(m.status, StatusCode::OK);
    let (changes, _, _) = g.delta_round(&delta, 10).await;
    let subjects: Vec<&str> = changes
        .iter()
        .map(|i| i["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, vec!["1:1 renamed", "1:1 renamed"]);

    // The stored view for inspection lists the overrides.
    let stored = emu.graph_events("ann@contoso.com", "default");
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0]["@emulator.overrides"].as_array().unwrap().len(),
        2
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn etags_transaction_ids_extended_properties_and_bodies() {
    let emu = emulator().await;
    let c = client();
    let g = login(&emu, &c, "ann@contoso.com").await;
    let mut body = single("mine", 2);
    body["transactionId"] = json!("tx-0001");
    body["body"] = json!({"contentType": "text", "content": "line 1\nline <2>"});
    body["singleValueExtendedProperties"] = json!([{"id": PROP_ID, "value": "appt-42"}]);
    let a = g.post("/me/events", body.clone()).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let b = g.post("/me/events", body).await;
    assert_eq!(b.status, StatusCode::CREATED);
    assert_eq!(a.body["id"], b.body["id"]);
    assert_eq!(a.body["transactionId"], "tx-0001");
    assert_eq!(emu.graph_events("ann@contoso.com", "default").len(), 1);
    assert_eq!(emu.request_count("POST", "/v1.0/me/events"), 2);
    let id = a.body["id"].as_str().unwrap().to_string();

    // HTML body by default, text when asked.
    let html = g.get(&format!("/me/events/{id}"), &[]).await;
    assert_eq!(html.body["body"]["contentType"], "html");
    assert!(html.body["body"]["content"]
        .as_str()
        .unwrap()
        .contains("line &lt;2&gt;"));
    assert_eq!(html.body["bodyPreview"], "line 1\nline <2>");
    assert!(html.body.get("singleValueExtendedProperties").is_none());
    let text = g
        .get(
            &format!("/me/events/{id}"),
            &["outlook.body-content-type=\"text\""],
        )
        .await;
    assert_eq!(
        text.body["body"],
        json!({"contentType": "text", "content": "line 1\nline <2>"})
    );
    assert!(text.headers["preference-applied"]
        .to_str()
        .unwrap()
        .contains("outlook.body-content-type"));

    // Extended properties come back with $expand and filter lists.
    let expand =
        format!("/me/events/{id}?$expand=singleValueExtendedProperties($filter=id eq '{PROP_ID}')");
    let e = g.get(&expand, &[]).await;
    assert_eq!(
        e.body["singleValueExtendedProperties"],
        json!([{"id": PROP_ID, "value": "appt-42"}])
    );
    let filter = format!("/me/events?$filter=singleValueExtendedProperties/Any(ep: ep/id eq '{PROP_ID}' and ep/value eq 'appt-42')");
    let f = g.get(&filter, &[]).await;
    assert_eq!(f.status, StatusCode::OK, "{}", f.body);
    assert_eq!(f.body["value"].as_array().unwrap().len(), 1);

    // If-Match: the current etag works, a stale one is 412.
    let etag = a.body["@odata.etag"].as_str().unwrap().to_string();
    let ok = g
        .patch(
            &format!("/me/events/{id}"),
            json!({"subject": "v2"}),
            Some(&etag),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_ne!(ok.body["@odata.etag"], json!(etag));
    assert_ne!(ok.body["changeKey"], a.body["changeKey"]);
    let stale = g
        .patch(
            &format!("/me/events/{id}"),
            json!({"subject": "v3"}),
            Some(&etag),
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.body["error"]["code"], "ErrorIrresolvableConflict");

    // Bad bodies are Graph-shaped 400s.
    let r = g
        .send(g.c.post(g.url("/me/events")).body("{not json"), &[])
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("BadRequest"))
    );
    let r = g.post("/me/events", json!({"subject": "x", "showAs": "sleepy", "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    emu.shutdown().await;
}

#[tokio::test]
async fn time_zones_and_all_day_events() {
    let emu = emulator().await;
    let c = client();
    let g = login(&emu, &c, "ann@contoso.com").await;
    let r = g
        .post("/me/events", json!({"subject": "berlin", "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "W. Europe Standard Time"}, "end": {"dateTime": "2026-03-02T10:00:00", "timeZone": "W. Europe Standard Time"}}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        r.body["start"],
        json!({"dateTime": "2026-03-02T08:00:00.0000000", "timeZone": "UTC"})
    );
    assert_eq!(r.body["originalStartTimeZone"], "W. Europe Standard Time");
    let id = r.body["id"].as_str().unwrap().to_string();

    let pst = g
        .get(
            &format!("/me/events/{id}"),
            &["outlook.timezone=\"Pacific Standard Time\""],
        )
        .await;
    assert_eq!(
        pst.body["start"],
        json!({"dateTime": "2026-03-02T00:00:00.0000000", "timeZone": "Pacific Standard Time"})
    );
    assert_eq!(
        pst.headers["preference-applied"].to_str().unwrap(),
        "outlook.timezone=\"Pacific Standard Time\""
    );
    let ny = g
        .get(
            &format!("/me/events/{id}"),
            &["outlook.timezone=\"America/New_York\""],
        )
        .await;
    assert_eq!(
        ny.body["start"],
        json!({"dateTime": "2026-03-02T03:00:00.0000000", "timeZone": "Eastern Standard Time"})
    );

    // IANA names are accepted in requests; the event keeps its own zone.
    let r = g
        .post("/me/events", json!({"subject": "iana", "start": {"dateTime": "2026-07-01T09:00:00", "timeZone": "Europe/Berlin"}, "end": {"dateTime": "2026-07-01T10:00:00", "timeZone": "Europe/Berlin"}}))
        .await;
    assert_eq!(r.body["originalStartTimeZone"], "W. Europe Standard Time");
    assert_eq!(r.body["start"]["dateTime"], "2026-07-01T07:00:00.0000000");
    let r = g.post("/me/events", json!({"subject": "x", "start": {"dateTime": "2026-07-01T09:00:00", "timeZone": "Mars/Olympus"}, "end": {"dateTime": "2026-07-01T10:00:00", "timeZone": "UTC"}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // All-day events stay on their dates in every zone.
    let day = g
        .post("/me/events", json!({"subject": "holiday", "isAllDay": true, "start": {"dateTime": "2026-03-02T00:00:00", "timeZone": "Tokyo Standard Time"}, "end": {"dateTime": "2026-03-03T00:00:00", "timeZone": "Tokyo Standard Time"}}))
        .await;
    assert_eq!(day.status, StatusCode::CREATED, "{}", day.body);
    let did = day.body["id"].as_str().unwrap().to_string();
    for prefer in [&[][..], &["outlook.timezone=\"Pacific Standard Time\""][..]] {
        let v = g.get(&format!("/me/events/{did}"), prefer).await.body;
        assert_eq!(v["isAllDay"], true);
        assert_eq!(v["start"]["dateTime"], "2026-03-02T00:00:00.0000000");
        assert_eq!(v["end"]["dateTime"], "2026-03-03T00:00:00.0000000");
    }
    let bad = g
        .post("/me/events", json!({"subject": "bad", "isAllDay": true, "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-03T09:00:00", "timeZone": "UTC"}}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // calendarView pages with $top and honours the time zone preference.
    let view = g
        .get(
            &format!("/me/calendarView{WINDOW}&$top=1"),
            &["outlook.timezone=\"Tokyo Standard Time\""],
        )
        .await;
    assert_eq!(view.body["value"].as_array().unwrap().len(), 1);
    assert!(view.body["@odata.nextLink"]
        .as_str()
        .unwrap()
        .contains("skip=1"));
    assert_eq!(
        view.body["value"][0]["start"]["timeZone"],
        "Tokyo Standard Time"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn throttling_concurrency_and_auth_errors() {
    let emu = emulator().await;
    let c = client();
    let g = login(&emu, &c, "ann@contoso.com").await;

    emu.add_fault(FaultRule::new(FaultKind::GraphThrottled { retry_after: 7 }).times(1));
    let r = g.get("/me/calendars", &[]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "7");
    assert_eq!(r.body["error"]["code"], "ApplicationThrottled");
    assert_eq!(g.get("/me/calendars", &[]).await.status, StatusCode::OK);
    emu.add_fault(FaultRule::new(FaultKind::GraphUnavailable { retry_after: 3 }).times(1));
    let r = g.get("/me/calendars", &[]).await;
    assert_eq!(
        (r.status, r.headers["retry-after"].to_str().unwrap()),
        (StatusCode::SERVICE_UNAVAILABLE, "3")
    );

    // Four slow requests hold the mailbox; the fifth is refused.
    emu.add_fault(
        FaultRule::new(FaultKind::Delay { millis: 600 })
            .path_prefix("/v1.0/me/calendars")
            .times(4),
    );
    let mut slow = Vec::new();
    for _ in 0..4 {
        let (url, token, c) = (g.url("/me/calendars"), g.token.clone(), c.clone());
        slow.push(tokio::spawn(async move {
            c.get(url).bearer_auth(token).send().await.unwrap().status()
        }));
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    let fifth = g.get("/me/calendar", &[]).await;
    assert_eq!(fifth.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(fifth.body["error"]["code"], "ApplicationThrottled");
    assert!(fifth.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("MailboxConcurrency"));
    assert!(fifth.headers.contains_key("retry-after"));
    // Another mailbox is not affected.
    let bob = login(&emu, &c, "bob@contoso.com").await;
    assert_eq!(bob.get("/me/calendar", &[]).await.status, StatusCode::OK);
    for h in slow {
        assert_eq!(h.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(g.get("/me/calendar", &[]).await.status, StatusCode::OK);

    // Access tokens: expired and missing → 401 InvalidAuthenticationToken.
    emu.add_fault(
        FaultRule::new(FaultKind::AccessTokenExpired)
            .user("ann@contoso.com")
            .times(1),
    );
    let r = g.get("/me/calendar", &[]).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("InvalidAuthenticationToken"))
    );
    assert!(r.headers.contains_key("www-authenticate"));
    let r = c.get(g.url("/me/calendar")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A token only reaches its own mailbox.
    let ann_cal = emu
        .user(
            calbridge::upstream::emulator::Provider::Microsoft,
            "ann@contoso.com",
        )
        .unwrap()
        .calendars[0]
        .id
        .clone();
    assert_eq!(
        bob.get(&format!("/me/calendars/{ann_cal}/events"), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    emu.shutdown().await;
}
