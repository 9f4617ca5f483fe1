//! The Graph write layer against the emulator over HTTP: one-off in a
//! non-UTC zone (Windows zone names), all-day and multi-day, a recurring
//! series with an override, an EXDATE and a cancelled occurrence, fields
//! and the reminder, attendees never written, stale etags, updates that
//! keep exceptions, a retried create, deletes, the mailbox concurrency
//! limit, and the round trip: what the sync reads back (`fetch_series` +
//! `map_series`) is the written event, instance by instance, with the etag
//! the write returned.

use std::time::Duration;

use calbridge::ics::{self, Component};
use calbridge::upstream::emulator::{self as emu, Emulator, EmulatorHandle, Provider};
use calbridge::upstream::graph::write::{RemoteRef, RemoteState, WriteError};
use calbridge::upstream::graph::{map, Graph};
use calbridge::upstream::{RetryPolicy, Upstream, UpstreamError};
use serde_json::{json, Value};

const EMAIL: &str = "ben@contoso.example";
const ZONE: &str = "America/Los_Angeles";

struct World {
    emu: EmulatorHandle,
    graph: Graph,
    token: String,
    calendar: String,
}

async fn world() -> World {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emu = Emulator::start(listener).await;
    let user = emu.create_user(
        Provider::Microsoft,
        EMAIL,
        Some("Ben"),
        Some("Pacific Standard Time"),
    );
    let calendar = user.calendars[0].id.clone();
    let token = emu
        .issue_tokens(
            Provider::Microsoft,
            EMAIL,
            emu::DEFAULT_MICROSOFT_CLIENT_ID,
            &[
                "offline_access".to_string(),
                "Calendars.ReadWrite".to_string(),
            ],
        )
        .unwrap()
        .access_token;
    let api = Upstream::new(RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
        max_inline_wait: Duration::from_secs(2),
        timeout: Duration::from_secs(10),
    });
    let graph = Graph::new(api, &format!("{}/v1.0", emu.base_url).parse().unwrap());
    World {
        emu,
        graph,
        token,
        calendar,
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
        self.write_in(existing, cal, key, ZONE).await
    }

    async fn write_in(
        &self,
        existing: Option<&RemoteRef>,
        cal: &Component,
        key: &str,
        zone: &str,
    ) -> Result<RemoteState, WriteError> {
        self.graph
            .write_series(
                &self.token,
                &self.calendar,
                existing,
                cal,
                Some(zone),
                "calbridge:test",
                key,
            )
            .await
    }

    /// The series as the sync fetches and maps it, and its master etag.
    async fn read_back(&self, id: &str, zone: &str) -> (Component, String) {
        let window_start = chrono::Utc::now().timestamp() - 30 * 86_400;
        let items = self
            .graph
            .fetch_series(&self.token, id, window_start)
            .await
            .unwrap();
        let m = map::map_series(id, &items, Some(zone)).unwrap();
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        (ics::parse(&m.ics).unwrap(), m.etag.unwrap())
    }

    fn stored(&self) -> Vec<Value> {
        self.emu
            .graph_events(EMAIL, &self.calendar)
            .into_iter()
            .filter(|e| e["@emulator.deleted"] != true)
            .collect()
    }

    /// Requests other than on the master itself (occurrence writes).
    fn occurrence_writes(&self, master: &str) -> Vec<String> {
        let own = format!("/v1.0/me/events/{master}");
        let decoded = |p: &str| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        };
        self.emu
            .requests()
            .into_iter()
            .filter(|r| matches!(r.method.as_str(), "PATCH" | "DELETE") && decoded(&r.path) != own)
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

/// What a calendar user sees of one instance (attendees and colors are
/// not Graph's to hold).
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
    categories: String,
}

fn seen(cal: &Component, zone: &str) -> Vec<Seen> {
    let opts = calbridge::objects::options(Some(zone));
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
            Seen {
                start: i.start.timestamp(),
                end: i.end.timestamp(),
                all_day: i.all_day,
                summary: t("SUMMARY"),
                description: t("DESCRIPTION"),
                location: t("LOCATION"),
                class: match v("CLASS", "PUBLIC").as_str() {
                    "PUBLIC" => "PUBLIC".into(),
                    other => other.to_string(),
                },
                transp: v("TRANSP", "OPAQUE"),
                status: v("STATUS", "CONFIRMED"),
                alarms,
                categories: c.value("CATEGORIES").unwrap_or("").to_string(),
            }
        })
        .collect();
    out.sort_by_key(|s| s.start);
    out
}

fn assert_same_event(written: &Component, back: &Component, zone: &str) {
    let (a, b) = (seen(written, zone), seen(back, zone));
    assert!(!a.is_empty());
    assert_eq!(a, b, "written:\n{written}\nread back:\n{back}");
}

fn master_of(back: &Component) -> &Component {
    back.children_named("VEVENT")
        .find(|e| e.prop("RECURRENCE-ID").is_none())
        .unwrap()
}

#[tokio::test]
async fn timed_one_off_in_new_york_maps_fields_and_writes_no_attendee() {
    let w = world().await;
    let cal = parse(
        "
BEGIN:VEVENT
UID:call-1@calbridge.test
DTSTART;TZID=America/New_York:20270302T090000
DTEND;TZID=America/New_York:20270302T093000
SUMMARY:Call with Contoso\\, Inc.
DESCRIPTION:Agenda:\\n1. Budget
LOCATION:Teams
CLASS:PRIVATE
TRANSP:TRANSPARENT
CATEGORIES:Blue category
ATTENDEE;CN=Ann;PARTSTAT=NEEDS-ACTION:mailto:ann@example.com
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Reminder
TRIGGER:-PT20M
END:VALARM
END:VEVENT
",
    );
    let state = w.write(None, &cal, "key-call").await.unwrap();
    let j = &state.json;
    assert_eq!(j["start"]["timeZone"], "UTC", "Graph answers in UTC");
    assert_eq!(j["originalStartTimeZone"], "Eastern Standard Time");
    assert_eq!(j["start"]["dateTime"], "2027-03-02T14:00:00.0000000");
    assert_eq!(j["transactionId"], "key-call");
    assert_eq!(
        j["singleValueExtendedProperties"][0]["value"],
        "calbridge:test"
    );
    assert!(state.warnings.iter().any(|x| x.contains("invitations")));
    let stored = w.stored();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["attendees"], json!([]), "no invitation goes out");
    let (back, etag) = w.read_back(&state.id, ZONE).await;
    assert_eq!(
        etag, state.etag,
        "the next sync reports the etag the write returned"
    );
    assert_same_event(&cal, &back, ZONE);
    let m = master_of(&back);
    assert_eq!(
        m.prop("DTSTART").unwrap().param("TZID"),
        Some("America/New_York")
    );
    assert_eq!(m.value("DTSTART"), Some("20270302T090000"));
}

#[tokio::test]
async fn all_day_and_multi_day_events_keep_their_dates() {
    let w = world().await;
    let holiday = parse(
        "
BEGIN:VEVENT
UID:golden-week@calbridge.test
DTSTART;VALUE=DATE:20270429
DTEND;VALUE=DATE:20270506
SUMMARY:Golden Week
END:VEVENT
",
    );
    let state = w
        .write_in(None, &holiday, "key-gw", "Asia/Tokyo")
        .await
        .unwrap();
    assert_eq!(state.json["isAllDay"], true);
    let (back, _) = w.read_back(&state.id, "Asia/Tokyo").await;
    let m = master_of(&back);
    assert_eq!(
        (m.value("DTSTART"), m.value("DTEND")),
        (Some("20270429"), Some("20270506"))
    );
    assert_same_event(&holiday, &back, "Asia/Tokyo");

    let trip = parse(
        "
BEGIN:VEVENT
UID:trip@calbridge.test
DTSTART;TZID=Pacific Standard Time:20270310T180000
DTEND;TZID=Pacific Standard Time:20270312T090000
SUMMARY:Offsite
END:VEVENT
",
    );
    let state = w.write(None, &trip, "key-trip").await.unwrap();
    let (back, _) = w.read_back(&state.id, ZONE).await;
    assert_same_event(&trip, &back, ZONE);
}

const WEEKLY: &str = "
BEGIN:VEVENT
UID:standup@calbridge.test
DTSTART;TZID=America/Los_Angeles:20270301T090000
DTEND;TZID=America/Los_Angeles:20270301T091500
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=8
EXDATE;TZID=America/Los_Angeles:20270322T090000
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
RECURRENCE-ID;TZID=America/Los_Angeles:20270308T090000
DTSTART;TZID=America/Los_Angeles:20270308T110000
DTEND;TZID=America/Los_Angeles:20270308T113000
SUMMARY:Standup (moved)
LOCATION:Room 2
END:VEVENT
BEGIN:VEVENT
UID:standup@calbridge.test
RECURRENCE-ID;TZID=America/Los_Angeles:20270329T090000
DTSTART;TZID=America/Los_Angeles:20270329T090000
STATUS:CANCELLED
END:VEVENT
";

fn overrides_of(stored: &Value) -> Vec<(String, String)> {
    stored["@emulator.overrides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["originalStart"].as_str().unwrap().to_string(),
                o["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn recurring_series_with_an_override_an_exdate_and_a_cancelled_occurrence() {
    let w = world().await;
    let cal = parse(WEEKLY);
    let state = w.write(None, &cal, "key-standup").await.unwrap();
    assert_eq!(state.json["type"], "seriesMaster");
    assert_eq!(state.json["recurrence"]["pattern"]["type"], "weekly");
    assert_eq!(state.json["recurrence"]["range"]["numberOfOccurrences"], 8);
    let stored = w.stored();
    assert_eq!(stored.len(), 1);
    // 09:00 Pacific (PST until March 14th, PDT after) in UTC.
    assert_eq!(
        overrides_of(&stored[0]),
        vec![
            ("2027-03-08T17:00:00Z".into(), "modified".into()),
            ("2027-03-22T16:00:00Z".into(), "deleted".into()),
            ("2027-03-29T16:00:00Z".into(), "deleted".into()),
        ]
    );
    let (back, etag) = w.read_back(&state.id, ZONE).await;
    assert_eq!(etag, state.etag);
    assert_same_event(&cal, &back, ZONE);
    assert_eq!(seen(&back, ZONE).len(), 6);
}

#[tokio::test]
async fn updates_need_the_current_etag_and_keep_or_reset_exceptions() {
    let w = world().await;
    let cal = parse(WEEKLY);
    let first = w.write(None, &cal, "key-u").await.unwrap();
    let renamed = parse(&WEEKLY.replacen("SUMMARY:Standup\n", "SUMMARY:Daily sync\n", 1));
    let stale = RemoteRef {
        id: first.id.clone(),
        etag: Some("W/\"stale\"".into()),
    };
    match w.write(Some(&stale), &renamed, "key-u2").await {
        Err(WriteError::Upstream(UpstreamError::PreconditionFailed)) => {}
        other => panic!("{other:?}"),
    }
    w.emu.reset_requests();
    let current = RemoteRef {
        id: first.id.clone(),
        etag: Some(first.etag.clone()),
    };
    let second = w.write(Some(&current), &renamed, "key-u2").await.unwrap();
    assert_eq!(second.json["subject"], "Daily sync");
    assert_ne!(second.etag, first.etag);
    // Only the master changed: the exceptions stayed and were not rewritten.
    assert_eq!(w.occurrence_writes(&first.id), Vec::<String>::new());
    assert_eq!(overrides_of(&w.stored()[0]).len(), 3);
    let (back, etag) = w.read_back(&first.id, ZONE).await;
    assert_eq!(etag, second.etag);
    assert_same_event(&renamed, &back, ZONE);

    // The override dropped: that occurrence is reset to the master's values.
    let no_override = parse(
        "
BEGIN:VEVENT
UID:standup@calbridge.test
DTSTART;TZID=America/Los_Angeles:20270301T090000
DTEND;TZID=America/Los_Angeles:20270301T091500
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=8
EXDATE;TZID=America/Los_Angeles:20270322T090000,20270329T090000
SUMMARY:Daily sync
END:VEVENT
",
    );
    let current = RemoteRef {
        id: first.id.clone(),
        etag: Some(second.etag.clone()),
    };
    let third = w
        .write(Some(&current), &no_override, "key-u3")
        .await
        .unwrap();
    assert_eq!(third.json["location"]["displayName"], "");
    assert_eq!(third.json["isReminderOn"], false);
    let (back, etag) = w.read_back(&first.id, ZONE).await;
    assert_eq!(etag, third.etag);
    assert_same_event(&no_override, &back, ZONE);

    // An occurrence deleted upstream cannot come back through Graph: said.
    let restore = parse(
        "
BEGIN:VEVENT
UID:standup@calbridge.test
DTSTART;TZID=America/Los_Angeles:20270301T090000
DTEND;TZID=America/Los_Angeles:20270301T091500
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=8
EXDATE;TZID=America/Los_Angeles:20270329T090000
SUMMARY:Daily sync
END:VEVENT
",
    );
    let current = RemoteRef {
        id: first.id.clone(),
        etag: Some(third.etag.clone()),
    };
    let fourth = w.write(Some(&current), &restore, "key-u4").await.unwrap();
    assert!(
        fourth
            .warnings
            .iter()
            .any(|x| x.contains("2027-03-22T16:00:00Z") && x.contains("cannot be restored")),
        "{:?}",
        fourth.warnings
    );

    // A new pattern is written (Outlook drops the exceptions) and the
    // override is applied again.
    let daily = parse(
        "
BEGIN:VEVENT
UID:standup@calbridge.test
DTSTART;TZID=America/Los_Angeles:20270301T090000
DTEND;TZID=America/Los_Angeles:20270301T091500
RRULE:FREQ=DAILY;COUNT=5
SUMMARY:Daily sync
END:VEVENT
BEGIN:VEVENT
UID:standup@calbridge.test
RECURRENCE-ID;TZID=America/Los_Angeles:20270303T090000
DTSTART;TZID=America/Los_Angeles:20270303T100000
DTEND;TZID=America/Los_Angeles:20270303T101500
SUMMARY:Later today
END:VEVENT
",
    );
    let current = RemoteRef {
        id: first.id.clone(),
        etag: Some(fourth.etag.clone()),
    };
    let fifth = w.write(Some(&current), &daily, "key-u5").await.unwrap();
    assert_eq!(fifth.json["recurrence"]["pattern"]["type"], "daily");
    let (back, etag) = w.read_back(&first.id, ZONE).await;
    assert_eq!(etag, fifth.etag);
    assert_same_event(&daily, &back, ZONE);
}

#[tokio::test]
async fn a_retried_create_never_makes_a_second_event() {
    let w = world().await;
    let cal = parse(WEEKLY);
    let a = w.write(None, &cal, "key-retry").await.unwrap();
    w.emu.reset_requests();
    let b = w.write(None, &cal, "key-retry").await.unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(a.etag, b.etag);
    assert_eq!(w.stored().len(), 1);
    assert_eq!(w.occurrence_writes(&a.id), Vec::<String>::new());
    let (back, _) = w.read_back(&a.id, ZONE).await;
    assert_same_event(&cal, &back, ZONE);
}

#[tokio::test]
async fn deletes_are_guarded_and_idempotent() {
    let w = world().await;
    let s = w.write(None, &parse(WEEKLY), "key-del").await.unwrap();
    match w
        .graph
        .delete_series(&w.token, &w.calendar, &s.id, Some("W/\"stale\""))
        .await
    {
        Err(WriteError::Upstream(UpstreamError::PreconditionFailed)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(w.stored().len(), 1);
    for _ in 0..2 {
        w.graph
            .delete_series(&w.token, &w.calendar, &s.id, Some(&s.etag))
            .await
            .unwrap();
    }
    assert!(w.stored().is_empty());
}

#[tokio::test]
async fn many_changed_occurrences_stay_within_the_mailbox_concurrency_limit() {
    let w = world().await;
    let mut body = String::from(
        "
BEGIN:VEVENT
UID:daily@calbridge.test
DTSTART;TZID=America/Los_Angeles:20270405T080000
DTEND;TZID=America/Los_Angeles:20270405T083000
RRULE:FREQ=DAILY;COUNT=20
SUMMARY:Daily
END:VEVENT
",
    );
    for day in 6..=17 {
        body.push_str(&format!(
            "BEGIN:VEVENT\nUID:daily@calbridge.test\nRECURRENCE-ID;TZID=America/Los_Angeles:202704{day:02}T080000\nDTSTART;TZID=America/Los_Angeles:202704{day:02}T120000\nDTEND;TZID=America/Los_Angeles:202704{day:02}T123000\nSUMMARY:Daily at noon {day}\nEND:VEVENT\n"
        ));
    }
    let cal = parse(&body);
    let s = w.write(None, &cal, "key-many").await.unwrap();
    let throttled: Vec<_> = w
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.status == 429)
        .collect();
    assert!(throttled.is_empty(), "{throttled:?}");
    assert_eq!(w.occurrence_writes(&s.id).len(), 12);
    let (back, _) = w.read_back(&s.id, ZONE).await;
    assert_same_event(&cal, &back, ZONE);
}

#[tokio::test]
async fn what_graph_cannot_hold_is_refused_before_any_request() {
    let w = world().await;
    let with_rule = |rule: &str| {
        parse(&format!(
            "BEGIN:VEVENT\nUID:r\nDTSTART;TZID=America/Los_Angeles:20270302T090000\n{rule}\nEND:VEVENT\n"
        ))
    };
    for (cal, words) in [
        (with_rule("RRULE:FREQ=HOURLY"), "hourly"),
        (
            with_rule("RRULE:FREQ=MONTHLY;BYDAY=TU;BYSETPOS=5"),
            "BYSETPOS",
        ),
        (
            with_rule("RRULE:FREQ=YEARLY;BYMONTH=3,9;BYMONTHDAY=2"),
            "several months",
        ),
        (
            with_rule("RRULE:FREQ=DAILY\nRDATE;TZID=America/Los_Angeles:20270310T120000"),
            "RDATE",
        ),
        (
            parse("BEGIN:VTODO\nUID:t\nSUMMARY:Todo\nEND:VTODO\n"),
            "VTODO",
        ),
    ] {
        match w.write(None, &cal, "key-bad").await {
            Err(WriteError::Unexpressible(why)) => assert!(why.contains(words), "{why}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(w.emu.requests().is_empty());
    assert!(w.stored().is_empty());
}
