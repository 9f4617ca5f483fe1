//! The Google write layer against the emulator over HTTP: one-off, all-day,
//! multi-day, timed in a non-UTC zone, recurring with an override, a
//! cancelled occurrence and an EXDATE, fields, alarms and attendees (with
//! `sendUpdates=none` on every write, seen by a recording proxy), stale
//! etags, a retried insert, deletes, and the round trip: what the sync reads
//! back (`map_series`) is the written event, instance by instance, and the
//! etag the write returns is the one the sync reports.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use calbridge::ics::{self, Component};
use calbridge::upstream::emulator::{self as emu, Emulator, EmulatorHandle, Provider};
use calbridge::upstream::google::write::{event_id_for, RemoteRef, RemoteState, WriteError};
use calbridge::upstream::google::{map, Google};
use calbridge::upstream::provider::{Cursor, RemoteChange};
use calbridge::upstream::{RetryPolicy, Upstream, UpstreamError};
use serde_json::Value;

const EMAIL: &str = "anna@acme.example";
const ZONE: &str = "Europe/Berlin";

/// Items of one series: `(item id, JSON)`.
type Items = Vec<(String, Vec<u8>)>;

struct World {
    emu: EmulatorHandle,
    /// Talks to the emulator through the recording proxy.
    google: Google,
    token: String,
    calendar: String,
    /// `METHOD path?query` of every request through the proxy.
    log: Arc<Mutex<Vec<String>>>,
}

fn client(base: &str) -> Google {
    let api = Upstream::new(RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
        max_inline_wait: Duration::from_secs(1),
        timeout: Duration::from_secs(10),
    });
    Google::new(api, &format!("{base}/calendar/v3").parse().unwrap())
}

/// A proxy that forwards everything to `target` and records each request
/// line with its query string (the emulator's own log keeps paths only).
async fn recording_proxy(target: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let http = calbridge::upstream::http::build_client(Duration::from_secs(10));
    let seen = log.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (http, seen, target) = (http.clone(), seen.clone(), target.clone());
        async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 24).await.unwrap();
            let pq = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            seen.lock().unwrap().push(format!("{} {pq}", parts.method));
            let mut rb = http.request(parts.method.clone(), format!("{target}{pq}"));
            for (k, v) in &parts.headers {
                if k != "host" && k != "content-length" {
                    rb = rb.header(k, v);
                }
            }
            let resp = rb.body(bytes).send().await.unwrap();
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap();
            let mut out = axum::response::Response::new(axum::body::Body::from(body));
            *out.status_mut() = status;
            for (k, v) in &headers {
                if k != "content-length" && k != "transfer-encoding" {
                    out.headers_mut().insert(k.clone(), v.clone());
                }
            }
            out
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), log)
}

async fn world() -> World {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emu = Emulator::start(listener).await;
    let user = emu.create_user(Provider::Google, EMAIL, Some("Anna"), Some(ZONE));
    let calendar = user.calendars[0].id.clone();
    let token = emu
        .issue_tokens(
            Provider::Google,
            EMAIL,
            emu::DEFAULT_GOOGLE_CLIENT_ID,
            &["https://www.googleapis.com/auth/calendar".to_string()],
        )
        .unwrap()
        .access_token;
    let (proxy, log) = recording_proxy(emu.base_url.clone()).await;
    World {
        google: client(&proxy),
        emu,
        token,
        calendar,
        log,
    }
}

fn parse(body: &str) -> Component {
    let text = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{}END:VCALENDAR\r\n",
        body.trim_start().replace('\n', "\r\n")
    );
    ics::parse(text.as_bytes()).unwrap()
}

impl World {
    async fn write(
        &self,
        existing: Option<&RemoteRef>,
        cal: &Component,
        key: &str,
    ) -> Result<RemoteState, WriteError> {
        self.google
            .write_series(
                &self.token,
                &self.calendar,
                existing,
                cal,
                Some(ZONE),
                "calbridge:test",
                key,
            )
            .await
    }

    /// A full sync pass as the engine runs it: every item by series.
    async fn pull(&self) -> Vec<(String, Items)> {
        let g = client(&self.emu.base_url);
        let mut cursor = Cursor::default();
        let mut out: Vec<(String, Items)> = Vec::new();
        let window_start = chrono::Utc::now().timestamp() - 30 * 86_400;
        loop {
            let page = g
                .pull_page(&self.token, &self.calendar, &cursor, window_start)
                .await
                .unwrap();
            for ch in page.changes {
                if let RemoteChange::Upsert { series, item, json } = ch {
                    match out.iter_mut().find(|(s, _)| *s == series) {
                        Some((_, items)) => items.push((item, json)),
                        None => out.push((series, vec![(item, json)])),
                    }
                }
            }
            cursor = page.cursor;
            if page.done {
                return out;
            }
        }
    }

    /// The series as the sync maps it, and the master's etag it reports.
    async fn read_back(&self, id: &str) -> (Component, String) {
        let all = self.pull().await;
        let (_, items) = all
            .iter()
            .find(|(s, _)| s == id)
            .unwrap_or_else(|| panic!("series {id} not listed"));
        let m = map::map_series(id, items, Some(ZONE)).unwrap();
        (ics::parse(&m.ics).unwrap(), m.etag.unwrap())
    }

    fn live_masters(&self) -> Vec<Value> {
        self.emu
            .google_events(EMAIL, &self.calendar)
            .into_iter()
            .filter(|e| e["status"] != "cancelled" && e.get("recurringEventId").is_none())
            .collect()
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// What a calendar user sees of one instance.
#[derive(Debug, PartialEq)]
struct Seen {
    start: i64,
    end: i64,
    all_day: bool,
    summary: String,
    description: String,
    location: String,
    class: String,
    transp: String,
    status: String,
    /// Seconds from the start.
    alarms: Vec<i64>,
    attendees: Vec<String>,
    color: String,
}

fn seen(cal: &Component) -> Vec<Seen> {
    let opts = calbridge::objects::options(Some(ZONE));
    let from = "2026-01-01T00:00:00Z".parse().unwrap();
    let to = "2029-01-01T00:00:00Z".parse().unwrap();
    let mut out: Vec<Seen> = ics::recur::instances(cal, from, to, &opts)
        .unwrap()
        .into_iter()
        .map(|i| {
            let c = &cal.children[i.component];
            let t = |n: &str| c.prop(n).map(|p| p.text_value()).unwrap_or_default();
            let v = |n: &str, d: &str| c.value(n).unwrap_or(d).to_ascii_uppercase();
            let mut alarms: Vec<i64> = c
                .children_named("VALARM")
                .map(|a| {
                    ics::value::IcsDuration::parse(a.value("TRIGGER").unwrap_or(""))
                        .unwrap()
                        .approx_seconds()
                })
                .collect();
            alarms.sort();
            let mut attendees: Vec<String> = c
                .props_named("ATTENDEE")
                .map(|p| {
                    format!(
                        "{} {} {}",
                        p.value.to_ascii_lowercase(),
                        p.param("PARTSTAT").unwrap_or("NEEDS-ACTION"),
                        p.param("ROLE").unwrap_or("REQ-PARTICIPANT")
                    )
                })
                .collect();
            attendees.sort();
            Seen {
                start: i.start.timestamp(),
                end: i.end.timestamp(),
                all_day: i.all_day,
                summary: t("SUMMARY"),
                description: t("DESCRIPTION"),
                location: t("LOCATION"),
                class: v("CLASS", "PUBLIC"),
                transp: v("TRANSP", "OPAQUE"),
                status: v("STATUS", "CONFIRMED"),
                alarms,
                attendees,
                color: v("COLOR", ""),
            }
        })
        .collect();
    out.sort_by_key(|s| s.start);
    out
}

/// The round trip: the sync's object shows every instance the written one
/// shows, with the same mapped properties.
fn assert_same_event(written: &Component, back: &Component) {
    let (a, b) = (seen(written), seen(back));
    assert!(!a.is_empty());
    assert_eq!(a, b, "written:\n{written}\nread back:\n{back}");
    let uid = |c: &Component| {
        c.children_named("VEVENT")
            .next()
            .and_then(|e| e.value("UID"))
            .map(str::to_string)
    };
    assert_eq!(uid(written), uid(back));
}

fn master_of(back: &Component) -> &Component {
    back.children_named("VEVENT")
        .find(|e| e.prop("RECURRENCE-ID").is_none())
        .unwrap()
}

#[tokio::test]
async fn timed_one_off_in_chicago_keeps_zone_instant_fields_and_notifies_nobody() {
    let w = world().await;
    let cal = parse(
        "
BEGIN:VEVENT
UID:dentist-1@calbridge.test
DTSTAMP:20261101T000000Z
DTSTART;TZID=Central Standard Time:20270302T090000
DTEND;TZID=Central Standard Time:20270302T100000
SUMMARY:Dentist\\, Dr. Who
DESCRIPTION:Bring\\nX-rays
LOCATION:Main St; 5
CLASS:PRIVATE
TRANSP:TRANSPARENT
COLOR:crimson
ORGANIZER:mailto:anna@acme.example
ATTENDEE;CN=Bo;PARTSTAT=ACCEPTED;ROLE=OPT-PARTICIPANT:mailto:bo@example.com
ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:cy@example.com
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Reminder
TRIGGER:-PT10M
END:VALARM
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Reminder
TRIGGER:-PT1H
END:VALARM
END:VEVENT
",
    );
    let state = w.write(None, &cal, "key-dentist").await.unwrap();
    assert_eq!(state.id, event_id_for("key-dentist"));
    let j = &state.json;
    // The Windows zone became its IANA name; 09:00 Chicago is 15:00 UTC.
    assert_eq!(j["start"]["timeZone"], "America/Chicago");
    let start = chrono::DateTime::parse_from_rfc3339(j["start"]["dateTime"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(start, 1_803_999_600);
    assert_eq!(
        j["extendedProperties"]["private"]["calbridge"],
        "calbridge:test"
    );
    assert_eq!(j["iCalUID"], "dentist-1@calbridge.test");
    // Every write went out with sendUpdates=none.
    let writes: Vec<String> = w
        .requests()
        .into_iter()
        .filter(|r| !r.starts_with("GET"))
        .collect();
    assert!(!writes.is_empty());
    for r in &writes {
        assert!(r.contains("sendUpdates=none"), "{r}");
    }
    let (back, etag) = w.read_back(&state.id).await;
    assert_eq!(
        etag, state.etag,
        "the next sync reports the etag the write returned"
    );
    assert_same_event(&cal, &back);
    let m = master_of(&back);
    assert_eq!(
        m.prop("DTSTART").unwrap().param("TZID"),
        Some("America/Chicago")
    );
    assert_eq!(m.value("DTSTART"), Some("20270302T090000"));
}

#[tokio::test]
async fn all_day_and_multi_day_events_stay_on_their_dates() {
    let w = world().await;
    let holiday = parse(
        "
BEGIN:VEVENT
UID:xmas@calbridge.test
DTSTART;VALUE=DATE:20271224
DTEND;VALUE=DATE:20271227
SUMMARY:Christmas
END:VEVENT
",
    );
    let state = w
        .google
        .write_series(
            &w.token,
            &w.calendar,
            None,
            &holiday,
            Some("Pacific/Kiritimati"),
            "m",
            "key-xmas",
        )
        .await
        .unwrap();
    assert_eq!(state.json["start"]["date"], "2027-12-24");
    assert_eq!(state.json["end"]["date"], "2027-12-27");
    let (back, _) = w.read_back(&state.id).await;
    let m = master_of(&back);
    assert_eq!(
        (m.value("DTSTART"), m.value("DTEND")),
        (Some("20271224"), Some("20271227"))
    );
    assert_same_event(&holiday, &back);

    let trip = parse(
        "
BEGIN:VEVENT
UID:trip@calbridge.test
DTSTART;TZID=Europe/Berlin:20270310T180000
DTEND;TZID=Asia/Tokyo:20270312T090000
SUMMARY:Flight and conference
END:VEVENT
",
    );
    let state = w.write(None, &trip, "key-trip").await.unwrap();
    assert_eq!(state.json["end"]["timeZone"], "Asia/Tokyo");
    let (back, _) = w.read_back(&state.id).await;
    assert_same_event(&trip, &back);
}

const WEEKLY: &str = "
BEGIN:VEVENT
UID:standup@calbridge.test
DTSTART;TZID=Europe/Berlin:20270301T090000
DTEND;TZID=Europe/Berlin:20270301T091500
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=8
EXDATE;TZID=Europe/Berlin:20270322T090000
SUMMARY:Standup
LOCATION:Room 1
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Reminder
TRIGGER:-PT5M
END:VALARM
END:VEVENT
BEGIN:VEVENT
UID:standup@calbridge.test
RECURRENCE-ID;TZID=Europe/Berlin:20270308T090000
DTSTART;TZID=Europe/Berlin:20270308T110000
DTEND;TZID=Europe/Berlin:20270308T113000
SUMMARY:Standup (moved)
LOCATION:Room 2
END:VEVENT
BEGIN:VEVENT
UID:standup@calbridge.test
RECURRENCE-ID;TZID=Europe/Berlin:20270329T090000
DTSTART;TZID=Europe/Berlin:20270329T090000
STATUS:CANCELLED
END:VEVENT
";

#[tokio::test]
async fn recurring_series_with_an_override_an_exdate_and_a_cancelled_occurrence() {
    let w = world().await;
    let cal = parse(WEEKLY);
    let state = w.write(None, &cal, "key-standup").await.unwrap();
    let rec: Vec<&str> = state.json["recurrence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        rec,
        vec![
            "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=8",
            "EXDATE;TZID=Europe/Berlin:20270322T090000"
        ]
    );
    let events = w.emu.google_events(EMAIL, &w.calendar);
    let moved = events
        .iter()
        .find(|e| e["id"] == format!("{}_20270308T080000Z", state.id))
        .expect("the moved occurrence is an exception");
    assert_eq!(moved["summary"], "Standup (moved)");
    assert!(
        events
            .iter()
            .any(|e| e["id"] == format!("{}_20270329T070000Z", state.id)
                && e["status"] == "cancelled")
    );
    let (back, etag) = w.read_back(&state.id).await;
    assert_eq!(etag, state.etag);
    assert_same_event(&cal, &back);
    assert_eq!(
        seen(&back).len(),
        6,
        "8 weeks less an EXDATE and a cancelled one"
    );
}

#[tokio::test]
async fn updates_need_the_current_etag_and_leave_nothing_stale() {
    let w = world().await;
    let cal = parse(WEEKLY);
    let first = w.write(None, &cal, "key-u").await.unwrap();
    // Changed on both sides: the stale etag is refused.
    let renamed = parse(&WEEKLY.replacen("SUMMARY:Standup\n", "SUMMARY:Daily sync\n", 1));
    let stale = RemoteRef {
        id: first.id.clone(),
        etag: Some("\"1\"".into()),
    };
    match w.write(Some(&stale), &renamed, "key-u2").await {
        Err(WriteError::Upstream(UpstreamError::PreconditionFailed)) => {}
        other => panic!("{other:?}"),
    }
    let current = RemoteRef {
        id: first.id.clone(),
        etag: Some(first.etag.clone()),
    };
    let second = w.write(Some(&current), &renamed, "key-u2").await.unwrap();
    assert_eq!(second.json["summary"], "Daily sync");
    assert_ne!(second.etag, first.etag);
    let (back, etag) = w.read_back(&first.id).await;
    assert_eq!(etag, second.etag);
    assert_same_event(&renamed, &back);

    // Drop the override, the location, the alarm and the EXDATE, and
    // un-cancel the cancelled occurrence: the provider follows.
    let plain = parse(
        "
BEGIN:VEVENT
UID:standup@calbridge.test
DTSTART;TZID=Europe/Berlin:20270301T090000
DTEND;TZID=Europe/Berlin:20270301T091500
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=8
SUMMARY:Daily sync
END:VEVENT
",
    );
    let current = RemoteRef {
        id: first.id.clone(),
        etag: Some(second.etag.clone()),
    };
    let third = w.write(Some(&current), &plain, "key-u3").await.unwrap();
    assert!(third.json.get("location").is_none());
    assert_eq!(third.json["reminders"]["overrides"], serde_json::json!([]));
    let (back, etag) = w.read_back(&first.id).await;
    assert_eq!(etag, third.etag);
    assert_same_event(&plain, &back);
    assert_eq!(seen(&back).len(), 8);
    // Writing the same object again touches no occurrence.
    w.log.lock().unwrap().clear();
    let current = RemoteRef {
        id: first.id.clone(),
        etag: Some(third.etag.clone()),
    };
    w.write(Some(&current), &plain, "key-u4").await.unwrap();
    let instance_writes: Vec<String> = w
        .requests()
        .into_iter()
        .filter(|r| !r.starts_with("GET") && r.contains(&format!("{}_", first.id)))
        .collect();
    assert!(instance_writes.is_empty(), "{instance_writes:?}");
}

#[tokio::test]
async fn a_retried_insert_never_makes_a_second_event() {
    let w = world().await;
    let cal = parse(WEEKLY);
    let a = w.write(None, &cal, "key-retry").await.unwrap();
    // The worker crashed before recording the answer and tries again.
    let b = w.write(None, &cal, "key-retry").await.unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(a.etag, b.etag, "nothing was rewritten");
    assert_eq!(w.live_masters().len(), 1);
    let (back, _) = w.read_back(&a.id).await;
    assert_same_event(&cal, &back);
    // Deleted upstream in between: reported, not recreated.
    w.google
        .delete_series(&w.token, &w.calendar, &a.id, None)
        .await
        .unwrap();
    match w.write(None, &cal, "key-retry").await {
        Err(WriteError::Upstream(UpstreamError::Gone(_))) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(w.live_masters().len(), 0);
    // Another key with the same UID: Google's duplicate refusal surfaces.
    let other_uid = parse(
        "
BEGIN:VEVENT
UID:taken@calbridge.test
DTSTART:20270301T090000Z
END:VEVENT
",
    );
    w.write(None, &other_uid, "key-x").await.unwrap();
    match w.write(None, &other_uid, "key-y").await {
        Err(WriteError::Upstream(UpstreamError::Refused { status: 409, .. })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(w.live_masters().len(), 1);
}

#[tokio::test]
async fn deletes_are_guarded_and_idempotent() {
    let w = world().await;
    let cal = parse(WEEKLY);
    let s = w.write(None, &cal, "key-del").await.unwrap();
    match w
        .google
        .delete_series(&w.token, &w.calendar, &s.id, Some("\"1\""))
        .await
    {
        Err(WriteError::Upstream(UpstreamError::PreconditionFailed)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(w.live_masters().len(), 1);
    w.google
        .delete_series(&w.token, &w.calendar, &s.id, Some(&s.etag))
        .await
        .unwrap();
    w.google
        .delete_series(&w.token, &w.calendar, &s.id, Some(&s.etag))
        .await
        .unwrap();
    w.google
        .delete_series(&w.token, &w.calendar, "neverexisted0", None)
        .await
        .unwrap();
    assert!(w.live_masters().is_empty());
    assert!(w
        .requests()
        .iter()
        .filter(|r| r.starts_with("DELETE"))
        .all(|r| r.contains("sendUpdates=none")));
}

#[tokio::test]
async fn what_google_cannot_hold_is_refused_before_any_request() {
    let w = world().await;
    for (body, words) in [
        ("BEGIN:VTODO\nUID:t\nSUMMARY:Todo\nEND:VTODO\n", "VTODO"),
        (
            "BEGIN:VEVENT\nUID:n\nSUMMARY:No start\nEND:VEVENT\n",
            "DTSTART",
        ),
    ] {
        match w.write(None, &parse(body), "key-bad").await {
            Err(WriteError::Unexpressible(why)) => assert!(why.contains(words), "{why}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(w.requests().is_empty());
}
