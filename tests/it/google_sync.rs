//! Google end to end: connect through the real authorization URL, the
//! emulator's consent and the callback; select calendars; sync; check the
//! feed; change and delete upstream; then 410, rate limits, 5xx, garbage
//! and invalid_grant — and that nothing is lost.

use crate::common;

use calbridge::upstream::emulator::{self as emu, Emulator, FaultKind, FaultRule, Provider};
use common::{get, use_emulator, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

const EMAIL: &str = "anna@acme.example";

struct World {
    emu: emu::EmulatorHandle,
    t: TestServer,
    staff: String,
    account: String,
    feed: String,
    token: String,
}

async fn google_api(
    w: &World,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req =
        w.t.client
            .request(
                method.parse().unwrap(),
                w.emu.url(&format!("/calendar/v3{path}")),
            )
            .bearer_auth(&w.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let s = r.status();
    let text = r.text().await.unwrap();
    (s, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn world() -> World {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emu = Emulator::start(listener).await;
    emu.create_user(Provider::Google, EMAIL, Some("Anna"), Some("Europe/Berlin"));
    let base = emu.base_url.clone();
    let t = TestServer::start_with(|raw| use_emulator(raw, &base)).await;
    let (_, staff) = t
        .company_with_named_staff("Europe/Berlin", "Anna", EMAIL)
        .await;
    let account = t.connect(&staff, "google").await;
    let f = t
        .create("/api/v1/feeds", json!({"scope": "staff", "id": staff}))
        .await;
    let token = emu
        .issue_tokens(
            Provider::Google,
            EMAIL,
            emu::DEFAULT_GOOGLE_CLIENT_ID,
            &["https://www.googleapis.com/auth/calendar".to_string()],
        )
        .unwrap()
        .access_token;
    World {
        emu,
        t,
        staff,
        account,
        feed: f["url"].as_str().unwrap().to_string(),
        token,
    }
}

async fn feed_events(w: &World) -> Vec<calbridge::ics::Component> {
    let (s, _, body) = get(&w.t.client, &w.feed, &[]).await;
    assert_eq!(s, StatusCode::OK);
    calbridge::ics::parse(&body)
        .unwrap()
        .children_named("VEVENT")
        .cloned()
        .collect()
}

fn summaries(evs: &[calbridge::ics::Component]) -> Vec<String> {
    let mut v: Vec<String> = evs
        .iter()
        .filter_map(|e| e.prop("SUMMARY").map(|p| p.text_value()))
        .collect();
    v.sort();
    v
}

fn seed(w: &World, body: Value) -> Value {
    w.emu.seed_google_event(EMAIL, "primary", body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_select_sync_change_delete_and_recover() {
    let w = world().await;
    // The account is connected with the identity the provider reports.
    let (_, accounts) =
        w.t.api("GET", &format!("/api/v1/staff/{}/accounts", w.staff), None)
            .await;
    assert_eq!(accounts[0]["email"], EMAIL);
    assert_eq!(accounts[0]["provider"], "google");

    // Upstream data: one-off, all-day, multi-day, a weekly series with a
    // moved and a cancelled instance, Chicago, private, colored.
    let soon = (chrono::Utc::now() + chrono::Duration::days(7)).date_naive();
    let day = |n: i64| (soon + chrono::Duration::days(n)).to_string();
    seed(
        &w,
        json!({"summary": "One-off", "start": {"dateTime": format!("{}T10:00:00+01:00", day(0)), "timeZone": "Europe/Berlin"}, "end": {"dateTime": format!("{}T11:00:00+01:00", day(0)), "timeZone": "Europe/Berlin"}}),
    );
    seed(
        &w,
        json!({"summary": "All day", "start": {"date": day(1)}, "end": {"date": day(2)}}),
    );
    seed(
        &w,
        json!({"summary": "Trip", "start": {"date": day(2)}, "end": {"date": day(5)}}),
    );
    seed(
        &w,
        json!({"summary": "Chicago call", "start": {"dateTime": format!("{}T09:00:00-06:00", day(3)), "timeZone": "America/Chicago"}, "end": {"dateTime": format!("{}T09:30:00-06:00", day(3)), "timeZone": "America/Chicago"}}),
    );
    seed(
        &w,
        json!({"summary": "Private thing", "visibility": "private", "colorId": "11", "start": {"dateTime": format!("{}T15:00:00+01:00", day(4)), "timeZone": "Europe/Berlin"}, "end": {"dateTime": format!("{}T16:00:00+01:00", day(4)), "timeZone": "Europe/Berlin"}}),
    );
    // A weekly series (UTC times, so no DST arithmetic in the test) that
    // started two weeks ago, inside the sync window.
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    let monday = today - chrono::Duration::days(today.weekday().num_days_from_monday() as i64 + 14);
    let wk = |n: i64| {
        (monday + chrono::Duration::days(7 * n))
            .format("%Y-%m-%d")
            .to_string()
    };
    let compact = |d: &str| d.replace('-', "");
    let series = seed(
        &w,
        json!({"summary": "Weekly", "start": {"dateTime": format!("{}T09:00:00Z", wk(0)), "timeZone": "UTC"}, "end": {"dateTime": format!("{}T09:30:00Z", wk(0)), "timeZone": "UTC"}, "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO"]}),
    );
    let sid = series["id"].as_str().unwrap();
    let (s, moved) = google_api(&w, "PATCH", &format!("/calendars/primary/events/{sid}_{}T090000Z", compact(&wk(1))), Some(json!({"summary": "Weekly (moved)", "start": {"dateTime": format!("{}T11:00:00Z", wk(1)), "timeZone": "UTC"}, "end": {"dateTime": format!("{}T11:30:00Z", wk(1)), "timeZone": "UTC"}}))).await;
    assert!(s.is_success(), "{s} {moved}");
    let (s, _) = google_api(
        &w,
        "DELETE",
        &format!(
            "/calendars/primary/events/{sid}_{}T090000Z",
            compact(&wk(2))
        ),
        None,
    )
    .await;
    assert!(s.is_success(), "{s}");

    // Pick the primary calendar (read-only, counted as busy).
    let (s, cals) =
        w.t.api(
            "GET",
            &format!("/api/v1/accounts/{}/calendars", w.account),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{cals}");
    let primary = cals
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["default"] == true)
        .unwrap()
        .clone();
    assert!(primary["color"].as_str().unwrap().starts_with('#'));
    let remote = primary["id"].as_str().unwrap();
    let enc = percent_encoding::utf8_percent_encode(remote, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let (s, v) =
        w.t.api(
            "PUT",
            &format!("/api/v1/accounts/{}/calendars/{enc}", w.account),
            Some(json!({"selected": true, "direction": "read_only", "conflicts": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["selected"], true);

    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    assert!(st["last_sync"].is_string());

    let evs = feed_events(&w).await;
    // Sorted; the private event reads "Busy" in the feed.
    assert_eq!(
        summaries(&evs),
        [
            "All day",
            "Busy",
            "Chicago call",
            "One-off",
            "Trip",
            "Weekly",
            "Weekly (moved)"
        ]
    );
    let weekly: Vec<_> = evs
        .iter()
        .filter(|e| e.prop("UID").map(|u| u.value.as_str()) == series["iCalUID"].as_str())
        .collect();
    assert_eq!(
        weekly.len(),
        2,
        "one master and one override, not loose instances"
    );
    let master = weekly
        .iter()
        .find(|e| e.prop("RECURRENCE-ID").is_none())
        .unwrap();
    assert_eq!(master.value("RRULE"), Some("FREQ=WEEKLY;BYDAY=MO"));
    assert_eq!(
        master.value("DTSTART"),
        Some(format!("{}T090000Z", compact(&wk(0))).as_str())
    );
    assert_eq!(
        master.value("EXDATE"),
        Some(format!("{}T090000Z", compact(&wk(2))).as_str()),
        "the cancelled instance"
    );
    let o = weekly
        .iter()
        .find(|e| e.prop("RECURRENCE-ID").is_some())
        .unwrap();
    assert_eq!(
        o.value("RECURRENCE-ID"),
        Some(format!("{}T090000Z", compact(&wk(1))).as_str())
    );
    assert_eq!(
        o.value("DTSTART"),
        Some(format!("{}T110000Z", compact(&wk(1))).as_str())
    );
    let chicago = evs
        .iter()
        .find(|e| e.prop("SUMMARY").unwrap().text_value() == "Chicago call")
        .unwrap();
    assert_eq!(
        chicago.prop("DTSTART").unwrap().param("TZID"),
        Some("America/Chicago")
    );
    assert_eq!(
        chicago.value("DTSTART"),
        Some(format!("{}T090000", day(3).replace('-', "")).as_str())
    );
    let all_day = evs
        .iter()
        .find(|e| e.prop("SUMMARY").unwrap().text_value() == "All day")
        .unwrap();
    assert_eq!(
        all_day.value("DTSTART"),
        Some(day(1).replace('-', "").as_str())
    );
    assert_eq!(
        all_day.prop("DTSTART").unwrap().param("VALUE"),
        Some("DATE")
    );
    let trip = evs
        .iter()
        .find(|e| e.prop("SUMMARY").unwrap().text_value() == "Trip")
        .unwrap();
    assert_eq!(trip.value("DTEND"), Some(day(5).replace('-', "").as_str()));

    // The mirrored calendar keeps Google's color.
    let cals =
        w.t.app
            .db
            .calendars_of_staff(&calbridge::model::StaffId(w.staff.clone()))
            .unwrap();
    let mirror = cals.iter().find(|c| !c.is_native()).unwrap();
    assert_eq!(mirror.color.as_deref(), primary["color"].as_str());
    // The private event is stored whole (CalDAV owner sees it) but the
    // feed shows it as busy.
    let stored = w.t.app.db.events_with_bodies(&mirror.id).unwrap();
    let private = stored
        .iter()
        .find(|(_, b)| String::from_utf8_lossy(b).contains("Private thing"))
        .unwrap();
    let text = String::from_utf8_lossy(&private.1);
    assert!(text.contains("CLASS:PRIVATE") && text.contains("COLOR:crimson"));

    // Incremental: rename, delete, add.
    let one_off = w
        .emu
        .google_events(EMAIL, "primary")
        .into_iter()
        .find(|e| e["summary"] == "One-off")
        .unwrap();
    let oid = one_off["id"].as_str().unwrap();
    let (s, _) = google_api(
        &w,
        "PATCH",
        &format!("/calendars/primary/events/{oid}"),
        Some(json!({"summary": "One-off renamed"})),
    )
    .await;
    assert!(s.is_success());
    let trip_id = w
        .emu
        .google_events(EMAIL, "primary")
        .into_iter()
        .find(|e| e["summary"] == "Trip")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = google_api(
        &w,
        "DELETE",
        &format!("/calendars/primary/events/{trip_id}"),
        None,
    )
    .await;
    assert!(s.is_success());
    seed(
        &w,
        json!({"summary": "New", "start": {"date": day(6)}, "end": {"date": day(7)}}),
    );
    let before_etags: Vec<(String, String)> =
        w.t.app
            .db
            .events_of_calendar(&mirror.id)
            .unwrap()
            .into_iter()
            .map(|m| (m.href, m.etag))
            .collect();
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    let names = summaries(&feed_events(&w).await);
    assert!(
        names.contains(&"One-off renamed".to_string()) && !names.contains(&"One-off".to_string())
    );
    assert!(!names.contains(&"Trip".to_string()));
    assert!(names.contains(&"New".to_string()));
    // Unchanged events keep their ETags (no churn for CalDAV clients).
    let after: Vec<(String, String)> =
        w.t.app
            .db
            .events_of_calendar(&mirror.id)
            .unwrap()
            .into_iter()
            .map(|m| (m.href, m.etag))
            .collect();
    let kept = before_etags.iter().filter(|b| after.contains(b)).count();
    assert_eq!(
        kept,
        before_etags.len() - 2,
        "only the renamed and deleted events changed"
    );

    // 410: the sync token is invalidated; a full resync loses nothing.
    w.emu.invalidate_sync_tokens(Some(EMAIL));
    let count_before = w.t.app.db.events_of_calendar(&mirror.id).unwrap().len();
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    assert_eq!(
        w.t.app.db.events_of_calendar(&mirror.id).unwrap().len(),
        count_before
    );
    assert!(
        w.emu
            .request_count("GET", "/calendar/v3/calendars/{calendarId}/events")
            > 0
    );

    // Rate limits: the run fails with rate_limited, then resumes by itself.
    w.emu.add_fault(
        FaultRule::new(FaultKind::GoogleRateLimit)
            .provider(Provider::Google)
            .path_prefix("/calendar/v3/calendars")
            .times(10),
    );
    seed(
        &w,
        json!({"summary": "During rate limit", "start": {"date": day(8)}, "end": {"date": day(9)}}),
    );
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "rate_limited", "{st}");
    assert!(st["error"].as_str().unwrap().contains("slow down"));
    assert!(st["next_sync"].is_string());
    w.emu.clear_faults();
    let st = w.t.wait_for_next_run(&w.account).await;
    assert_eq!(st["status"], "ok", "resumed by itself: {st}");
    assert!(summaries(&feed_events(&w).await).contains(&"During rate limit".to_string()));

    // 5xx and garbage: error with a clear message, nothing lost, resumes.
    for kind in [FaultKind::GoogleBackendError, FaultKind::Garbage] {
        w.emu.add_fault(
            FaultRule::new(kind)
                .provider(Provider::Google)
                .path_prefix("/calendar/v3/calendars")
                .times(10),
        );
        let before = w.t.app.db.events_of_calendar(&mirror.id).unwrap().len();
        let st = w.t.sync_and_wait(&w.account).await;
        assert_eq!(st["status"], "error", "{st}");
        assert!(
            st["error"].as_str().unwrap().contains("resumes by itself"),
            "{st}"
        );
        assert_eq!(
            w.t.app.db.events_of_calendar(&mirror.id).unwrap().len(),
            before,
            "nothing lost"
        );
        w.emu.clear_faults();
        let st = w.t.wait_for_next_run(&w.account).await;
        assert_eq!(st["status"], "ok", "{st}");
    }

    // invalid_grant: the account stops with authorization_expired and says
    // to reconnect; sync-now is refused; data stays.
    w.emu.revoke_refresh_tokens(EMAIL);
    w.emu.expire_access_tokens(EMAIL);
    let before = w.t.app.db.events_of_calendar(&mirror.id).unwrap().len();
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "authorization_expired", "{st}");
    assert!(st["error"].as_str().unwrap().contains("reconnect"));
    let (s, _) =
        w.t.api(
            "POST",
            &format!("/api/v1/accounts/{}/sync", w.account),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(
        w.t.app.db.events_of_calendar(&mirror.id).unwrap().len(),
        before
    );
    // Reconnect gives a fresh URL that completes the flow again.
    let (s, r) =
        w.t.api(
            "POST",
            &format!("/api/v1/accounts/{}/reconnect", w.account),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let r =
        w.t.client
            .get(r["authorization_url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let id = calbridge::model::AccountId(w.account.clone());
    let (_, finished) = w.t.app.sync.run_counts(&id);
    assert_eq!(
        w.t.client.get(&loc).send().await.unwrap().status(),
        StatusCode::OK
    );
    let st = w.t.wait_for_runs(&w.account, finished + 1).await;
    assert_eq!(st["status"], "ok", "{st}");

    // Disconnect revokes and removes the calendar and its events.
    let (s, _) =
        w.t.api("DELETE", &format!("/api/v1/accounts/{}", w.account), None)
            .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(w.t.app.db.calendar(&mirror.id).unwrap().is_none());
    assert!(w.emu.request_count("POST", "/revoke") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_refuses_bad_states_and_duplicate_identities() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emu = Emulator::start(listener).await;
    let base = emu.base_url.clone();
    let t = TestServer::start_with(|raw| use_emulator(raw, &base)).await;
    let c = t.create("/api/v1/companies", json!({"name": "Acme"})).await;
    let cid = c["id"].as_str().unwrap();
    let anna = t
        .create(
            &format!("/api/v1/companies/{cid}/staff"),
            json!({"name": "Anna", "email": EMAIL}),
        )
        .await;
    let ben = t
        .create(
            &format!("/api/v1/companies/{cid}/staff"),
            json!({"name": "Ben", "email": "ben@acme.example"}),
        )
        .await;

    // Unknown state, missing code, missing state → 400, nothing stored.
    for q in ["?code=x&state=nope", "?state=", "?code=abc"] {
        let r = t
            .client
            .get(t.url(&format!("/oauth/google/callback{q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
    }
    let v = t
        .create(
            &format!("/api/v1/staff/{}/accounts", anna["id"].as_str().unwrap()),
            json!({"provider": "google"}),
        )
        .await;
    let r = t
        .client
        .get(v["authorization_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let url = reqwest::Url::parse(&loc).unwrap();
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    // Missing code with a real state consumes nothing useful: 400.
    let r = t
        .client
        .get(t.url(&format!("/oauth/google/callback?state={state}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // The state was single-use: the real callback now fails too.
    let r = t.client.get(&loc).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (_, st) = t
        .api(
            "GET",
            &format!("/api/v1/accounts/{}/status", v["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_ne!(st["status"], "ok");

    // Connected once for Anna; the same Google identity for Ben is refused,
    // naming Anna.
    t.connect(anna["id"].as_str().unwrap(), "google").await;
    let v = t
        .create(
            &format!("/api/v1/staff/{}/accounts", ben["id"].as_str().unwrap()),
            json!({"provider": "google"}),
        )
        .await;
    // Ben's consent happens as Anna's Google user.
    let auth = v["authorization_url"].as_str().unwrap().replace(
        "login_hint=ben%40acme.example",
        "login_hint=anna%40acme.example",
    );
    let r = t.client.get(&auth).send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = t.client.get(&loc).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let text = r.text().await.unwrap();
    assert!(text.contains("Anna"), "{text}");
    let (_, st) = t
        .api(
            "GET",
            &format!("/api/v1/accounts/{}/status", v["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(st["error"].as_str().unwrap().contains("already connected"));

    // Unconfigured providers and bad provider names are refused.
    let (s, e) = t
        .api(
            "POST",
            &format!("/api/v1/staff/{}/accounts", ben["id"].as_str().unwrap()),
            Some(json!({"provider": "yahoo"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["error"]["field"], "provider");
}

/// An occurrence moved upstream after its series was synced: only the
/// exception changes (the master's etag stays), and the move must still
/// arrive, on the same page as the master or on a later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_occurrence_moved_after_the_series_synced_arrives() {
    let w = world().await;
    let start = (chrono::Utc::now() + chrono::Duration::days(3)).date_naive();
    let series = seed(
        &w,
        json!({"summary": "Standup", "start": {"dateTime": format!("{start}T07:00:00Z"), "timeZone": "UTC"}, "end": {"dateTime": format!("{start}T07:30:00Z"), "timeZone": "UTC"}, "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=10"]}),
    );
    let (_, cals) =
        w.t.api(
            "GET",
            &format!("/api/v1/accounts/{}/calendars", w.account),
            None,
        )
        .await;
    let remote = cals
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["default"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let enc = percent_encoding::utf8_percent_encode(&remote, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let (s, v) =
        w.t.api(
            "PUT",
            &format!("/api/v1/accounts/{}/calendars/{enc}", w.account),
            Some(json!({"selected": true, "direction": "read_only"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(w.t.sync_and_wait(&w.account).await["status"], "ok");
    let evs = feed_events(&w).await;
    assert_eq!(summaries(&evs), ["Standup"]);

    let id = series["id"].as_str().unwrap();
    let (s, inst) = google_api(
        &w,
        "GET",
        &format!("/calendars/primary/events/{id}/instances"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{inst}");
    let third = inst["items"][2].clone();
    let day = (start + chrono::Duration::days(14)).to_string();
    let (s, v) = google_api(
        &w,
        "PATCH",
        &format!("/calendars/primary/events/{}", third["id"].as_str().unwrap()),
        Some(json!({"summary": "Standup (moved)", "start": {"dateTime": format!("{day}T08:00:00Z"), "timeZone": "UTC"}, "end": {"dateTime": format!("{day}T08:30:00Z"), "timeZone": "UTC"}})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, master) = google_api(&w, "GET", &format!("/calendars/primary/events/{id}"), None).await;
    assert_eq!(
        master["etag"], series["etag"],
        "the master itself did not change"
    );

    assert_eq!(w.t.sync_and_wait(&w.account).await["status"], "ok");
    let evs = feed_events(&w).await;
    assert_eq!(summaries(&evs), ["Standup", "Standup (moved)"]);
    let moved = evs
        .iter()
        .find(|e| e.prop("RECURRENCE-ID").is_some())
        .expect("the moved occurrence is an override of the series");
    assert_eq!(
        moved.value("DTSTART"),
        Some(format!("{}T080000Z", day.replace('-', "")).as_str())
    );
}
