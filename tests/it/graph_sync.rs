//! Microsoft end to end through the real connect flow: a weekly series in
//! Pacific Standard Time with a moved and a cancelled occurrence, a
//! "second Tuesday" series, an all-day event that keeps its date, a private
//! event, rename and delete through delta, 410 resync, throttling with
//! Retry-After, rotated refresh tokens and invalid_grant.

use crate::common;

use calbridge::upstream::emulator::{self as emu, Emulator, FaultKind, FaultRule, Provider};
use common::{get, use_emulator, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

const EMAIL: &str = "ben@contoso.example";

struct World {
    emu: emu::EmulatorHandle,
    t: TestServer,
    account: String,
    feed: String,
    token: String,
    calendar: calbridge::model::CalendarId,
}

async fn graph(w: &World, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req =
        w.t.client
            .request(method.parse().unwrap(), w.emu.url(&format!("/v1.0{path}")))
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
    emu.create_user(
        Provider::Microsoft,
        EMAIL,
        Some("Ben"),
        Some("Pacific Standard Time"),
    );
    let base = emu.base_url.clone();
    let t = TestServer::start_with(|raw| use_emulator(raw, &base)).await;
    let (_, staff) = t
        .company_with_named_staff("America/Los_Angeles", "Ben", EMAIL)
        .await;
    let account = t.connect(&staff, "microsoft").await;
    let (s, cals) = t
        .api(
            "GET",
            &format!("/api/v1/accounts/{account}/calendars"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{cals}");
    let default = cals
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["default"] == true)
        .expect("a default calendar")
        .clone();
    assert_eq!(default["can_edit"], true);
    let enc = percent_encoding::utf8_percent_encode(
        default["id"].as_str().unwrap(),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    let (s, v) = t
        .api(
            "PUT",
            &format!("/api/v1/accounts/{account}/calendars/{enc}"),
            Some(json!({"selected": true, "direction": "read_only"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let f = t
        .create(
            "/api/v1/feeds",
            json!({"scope": "staff", "id": staff, "include": ["external"]}),
        )
        .await;
    let token = emu
        .issue_tokens(
            Provider::Microsoft,
            EMAIL,
            emu::DEFAULT_MICROSOFT_CLIENT_ID,
            &["Calendars.ReadWrite".to_string()],
        )
        .unwrap()
        .access_token;
    let calendar = t
        .app
        .db
        .calendars_of_staff(&calbridge::model::StaffId(staff.clone()))
        .unwrap()
        .into_iter()
        .find(|c| !c.is_native())
        .unwrap()
        .id;
    World {
        emu,
        t,
        account,
        feed: f["url"].as_str().unwrap().to_string(),
        token,
        calendar,
    }
}

async fn feed(w: &World) -> calbridge::ics::Component {
    let (s, _, body) = get(&w.t.client, &w.feed, &[]).await;
    assert_eq!(s, StatusCode::OK);
    calbridge::ics::parse(&body).unwrap()
}

fn by_summary<'a>(
    cal: &'a calbridge::ics::Component,
    name: &str,
) -> Vec<&'a calbridge::ics::Component> {
    cal.children_named("VEVENT")
        .filter(|e| e.prop("SUMMARY").map(|p| p.text_value()).as_deref() == Some(name))
        .collect()
}

fn seed(w: &World, body: Value) -> Value {
    w.emu.seed_graph_event(EMAIL, "default", body).unwrap()
}

/// The occurrences of series `id` from day `from` to day `to` (UTC).
async fn instances(w: &World, id: &str, from: &str, to: &str) -> Vec<Value> {
    let (s, v) = graph(
        w,
        "GET",
        &format!(
            "/me/events/{id}/instances?startDateTime={from}T00:00:00Z&endDateTime={to}T00:00:00Z"
        ),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["value"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_exceptions_all_day_private_delta_and_faults() {
    let w = world().await;
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    let monday = today - chrono::Duration::days(today.weekday().num_days_from_monday() as i64 + 7);
    let d = |n: i64| {
        (monday + chrono::Duration::days(n))
            .format("%Y-%m-%d")
            .to_string()
    };

    // Weekly on Mondays 09:00 Pacific, starting last week.
    let weekly = seed(
        &w,
        json!({
            "subject": "Weekly sync",
            "start": {"dateTime": format!("{}T09:00:00", d(0)), "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": format!("{}T09:30:00", d(0)), "timeZone": "Pacific Standard Time"},
            "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "sunday"},
                            "range": {"type": "noEnd", "startDate": d(0), "recurrenceTimeZone": "Pacific Standard Time"}}
        }),
    );
    let wid = weekly["id"].as_str().unwrap();
    let inst = instances(&w, wid, &d(0), &d(30)).await;
    assert!(inst.len() >= 4);
    let second = inst[1]["id"].as_str().unwrap();
    let third = inst[2]["id"].as_str().unwrap();
    let (s, v) = graph(&w, "PATCH", &format!("/me/events/{second}"), Some(json!({"subject": "Weekly sync (moved)", "start": {"dateTime": format!("{}T11:00:00", d(7)), "timeZone": "Pacific Standard Time"}, "end": {"dateTime": format!("{}T11:30:00", d(7)), "timeZone": "Pacific Standard Time"}}))).await;
    assert!(s.is_success(), "{s} {v}");
    let (s, _) = graph(&w, "DELETE", &format!("/me/events/{third}"), None).await;
    assert!(s.is_success());
    // Second Tuesday of every month.
    seed(
        &w,
        json!({
            "subject": "Board meeting",
            "start": {"dateTime": format!("{}T14:00:00", d(1)), "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": format!("{}T15:00:00", d(1)), "timeZone": "Pacific Standard Time"},
            "recurrence": {"pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["tuesday"], "index": "second"},
                            "range": {"type": "noEnd", "startDate": d(1)}}
        }),
    );
    // All-day, in a zone far from UTC; private; a one-off.
    seed(
        &w,
        json!({"subject": "Offsite", "isAllDay": true, "start": {"dateTime": format!("{}T00:00:00", d(10)), "timeZone": "Tokyo Standard Time"}, "end": {"dateTime": format!("{}T00:00:00", d(12)), "timeZone": "Tokyo Standard Time"}}),
    );
    seed(
        &w,
        json!({"subject": "Doctor", "sensitivity": "private", "start": {"dateTime": format!("{}T08:00:00", d(9)), "timeZone": "Pacific Standard Time"}, "end": {"dateTime": format!("{}T09:00:00", d(9)), "timeZone": "Pacific Standard Time"}}),
    );
    let lunch = seed(
        &w,
        json!({"subject": "Lunch", "body": {"contentType": "html", "content": "<p>Bring <b>menus</b> &amp; cash</p>"}, "location": {"displayName": "Cafe"}, "start": {"dateTime": format!("{}T12:00:00", d(8)), "timeZone": "Pacific Standard Time"}, "end": {"dateTime": format!("{}T13:00:00", d(8)), "timeZone": "Pacific Standard Time"}}),
    );

    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    let cal = feed(&w).await;

    // The weekly series: one resource, RRULE, one override, one EXDATE, in
    // the event's own zone (Pacific → America/Los_Angeles), not UTC.
    let uid = weekly["iCalUId"].as_str().unwrap();
    let parts: Vec<_> = cal
        .children_named("VEVENT")
        .filter(|e| e.value("UID") == Some(uid))
        .collect();
    if parts.is_empty() {
        for e in cal.children_named("VEVENT") {
            eprintln!("UIDX {:?} {:?}", e.value("UID"), e.value("SUMMARY"));
        }
        eprintln!("STATUS {st}");
        let stored = w.t.app.db.events_of_calendar(&w.calendar).unwrap();
        eprintln!("STORED {}", stored.len());
        for r in w.emu.requests() {
            eprintln!("REQ {r:?}");
        }
    }
    assert_eq!(parts.len(), 2, "master + one override, not loose instances");
    let master = parts
        .iter()
        .find(|e| e.prop("RECURRENCE-ID").is_none())
        .unwrap();
    assert_eq!(
        master.prop("DTSTART").unwrap().param("TZID"),
        Some("America/Los_Angeles")
    );
    assert_eq!(
        master.value("DTSTART"),
        Some(format!("{}T090000", d(0).replace('-', "")).as_str())
    );
    assert_eq!(master.value("RRULE"), Some("FREQ=WEEKLY;BYDAY=MO;WKST=SU"));
    assert_eq!(
        master.props_named("EXDATE").count(),
        1,
        "the cancelled occurrence"
    );
    assert_eq!(
        master.value("EXDATE"),
        Some(format!("{}T090000", d(14).replace('-', "")).as_str())
    );
    let o = parts
        .iter()
        .find(|e| e.prop("RECURRENCE-ID").is_some())
        .unwrap();
    assert_eq!(
        o.value("RECURRENCE-ID"),
        Some(format!("{}T090000", d(7).replace('-', "")).as_str())
    );
    assert_eq!(
        o.value("DTSTART"),
        Some(format!("{}T110000", d(7).replace('-', "")).as_str())
    );
    assert_eq!(
        o.prop("SUMMARY").unwrap().text_value(),
        "Weekly sync (moved)"
    );

    let board = by_summary(&cal, "Board meeting");
    assert_eq!(
        board[0].value("RRULE"),
        Some("FREQ=MONTHLY;BYDAY=TU;BYSETPOS=2")
    );

    let offsite = by_summary(&cal, "Offsite");
    assert_eq!(
        offsite[0].prop("DTSTART").unwrap().param("VALUE"),
        Some("DATE")
    );
    assert_eq!(
        offsite[0].value("DTSTART"),
        Some(d(10).replace('-', "").as_str()),
        "not shifted a day"
    );
    assert_eq!(
        offsite[0].value("DTEND"),
        Some(d(12).replace('-', "").as_str())
    );

    assert!(
        by_summary(&cal, "Doctor").is_empty(),
        "private events show as busy in feeds"
    );
    let stored = w.t.app.db.events_with_bodies(&w.calendar).unwrap();
    let doctor = stored
        .iter()
        .find(|(_, b)| String::from_utf8_lossy(b).contains("Doctor"))
        .unwrap();
    assert!(String::from_utf8_lossy(&doctor.1).contains("CLASS:PRIVATE"));

    let l = by_summary(&cal, "Lunch");
    assert_eq!(
        l[0].prop("DESCRIPTION").unwrap().text_value(),
        "Bring menus & cash"
    );
    assert_eq!(l[0].prop("LOCATION").unwrap().text_value(), "Cafe");

    // Rename and delete through delta.
    let lid = lunch["id"].as_str().unwrap();
    let (s, _) = graph(
        &w,
        "PATCH",
        &format!("/me/events/{lid}"),
        Some(json!({"subject": "Team lunch"})),
    )
    .await;
    assert!(s.is_success());
    let doctor_id = w
        .emu
        .graph_events(EMAIL, "default")
        .into_iter()
        .find(|e| e["subject"] == "Doctor")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = graph(&w, "DELETE", &format!("/me/events/{doctor_id}"), None).await;
    assert!(s.is_success());
    let before = w.t.app.db.events_of_calendar(&w.calendar).unwrap().len();
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    let cal = feed(&w).await;
    assert_eq!(by_summary(&cal, "Team lunch").len(), 1);
    assert!(by_summary(&cal, "Lunch").is_empty());
    assert_eq!(
        w.t.app.db.events_of_calendar(&w.calendar).unwrap().len(),
        before - 1
    );

    // 410 syncStateNotFound: full resync, nothing lost or doubled.
    w.emu.invalidate_sync_tokens(Some(EMAIL));
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    assert_eq!(
        w.t.app.db.events_of_calendar(&w.calendar).unwrap().len(),
        before - 1
    );

    // Throttling with Retry-After is waited out inside the run.
    w.emu.add_fault(
        FaultRule::new(FaultKind::GraphThrottled { retry_after: 1 })
            .provider(Provider::Microsoft)
            .path_prefix("/v1.0/me/calendars")
            .times(2),
    );
    seed(
        &w,
        json!({"subject": "After throttling", "start": {"dateTime": format!("{}T10:00:00", d(20)), "timeZone": "UTC"}, "end": {"dateTime": format!("{}T11:00:00", d(20)), "timeZone": "UTC"}}),
    );
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    assert_eq!(by_summary(&feed(&w).await, "After throttling").len(), 1);

    // Rotated refresh tokens: force refreshes; each new one is stored and
    // the next refresh uses it (the emulator refuses reused ones).
    for _ in 0..3 {
        w.emu.expire_access_tokens(EMAIL);
        let st = w.t.sync_and_wait(&w.account).await;
        assert_eq!(st["status"], "ok", "{st}");
    }

    // invalid_grant → authorization_expired with "reconnect".
    w.emu.revoke_refresh_tokens(EMAIL);
    w.emu.expire_access_tokens(EMAIL);
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "authorization_expired", "{st}");
    assert!(st["error"].as_str().unwrap().contains("reconnect"));
}

/// An occurrence moved, then another cancelled, after the series was
/// synced: the master's changeKey does not move, and both must still
/// arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occurrences_changed_after_the_series_synced_arrive() {
    let w = world().await;
    let start = (chrono::Utc::now() + chrono::Duration::days(2)).date_naive();
    let d = |n: i64| {
        (start + chrono::Duration::days(n))
            .format("%Y-%m-%d")
            .to_string()
    };
    let series = seed(
        &w,
        json!({
            "subject": "Standup",
            "start": {"dateTime": format!("{}T09:00:00", d(0)), "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": format!("{}T09:15:00", d(0)), "timeZone": "Pacific Standard Time"},
            "recurrence": {"pattern": {"type": "daily", "interval": 1},
                            "range": {"type": "numbered", "numberOfOccurrences": 10, "startDate": d(0)}}
        }),
    );
    assert_eq!(w.t.sync_and_wait(&w.account).await["status"], "ok");
    let cal = feed(&w).await;
    assert_eq!(by_summary(&cal, "Standup").len(), 1);

    let sid = series["id"].as_str().unwrap();
    let inst = instances(&w, sid, &d(0), &d(12)).await;
    let (s, v) = graph(&w, "PATCH", &format!("/me/events/{}", inst[3]["id"].as_str().unwrap()), Some(json!({"subject": "Standup (moved)", "start": {"dateTime": format!("{}T11:00:00", d(3)), "timeZone": "Pacific Standard Time"}, "end": {"dateTime": format!("{}T11:15:00", d(3)), "timeZone": "Pacific Standard Time"}}))).await;
    assert!(s.is_success(), "{s} {v}");
    let (_, master) = graph(&w, "GET", &format!("/me/events/{sid}"), None).await;
    assert_eq!(
        master["changeKey"], series["changeKey"],
        "the master did not change"
    );
    assert_eq!(w.t.sync_and_wait(&w.account).await["status"], "ok");
    let cal = feed(&w).await;
    assert_eq!(
        by_summary(&cal, "Standup (moved)").len(),
        1,
        "the moved occurrence arrived"
    );

    let (s, _) = graph(
        &w,
        "DELETE",
        &format!("/me/events/{}", inst[5]["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert!(s.is_success());
    assert_eq!(w.t.sync_and_wait(&w.account).await["status"], "ok");
    let cal = feed(&w).await;
    let master = by_summary(&cal, "Standup")
        .into_iter()
        .find(|e| e.prop("RECURRENCE-ID").is_none())
        .unwrap();
    assert!(
        master.prop("EXDATE").is_some(),
        "the cancelled occurrence is an EXDATE: {master:?}"
    );
}
