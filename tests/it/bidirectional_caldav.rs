//! CalDAV writes into a bidirectional mirrored calendar reach the provider
//! (one-off, all-day, recurring with an override; change; delete), a
//! read-only one refuses writes, a remote change moves the CalDAV ETag once,
//! calbridge's own writes come back without moving it, and a deletion here
//! against a change upstream keeps the change.

use crate::common;

use calbridge::upstream::emulator::{self as emu, Emulator, Provider};
use common::{use_emulator, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct World {
    emu: emu::EmulatorHandle,
    t: TestServer,
    account: String,
    email: String,
    provider: Provider,
    password: String,
    token: String,
    /// CalDAV URL of the bidirectional mirrored collection.
    rw: String,
    /// … and of a read-only one.
    ro: String,
}

async fn world(provider: Provider) -> World {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emu = Emulator::start(listener).await;
    let email = "erin@acme.example".to_string();
    emu.create_user(provider, &email, Some("Erin"), Some("Europe/Berlin"));
    emu.create_calendar(provider, &email, "Holidays", Some("Europe/Berlin"))
        .unwrap();
    let base = emu.base_url.clone();
    let t = TestServer::start_with(|raw| use_emulator(raw, &base)).await;
    let (_, staff) = t
        .company_with_named_staff("Europe/Berlin", "Erin", &email)
        .await;
    let ap = t
        .create(&format!("/api/v1/staff/{staff}/app-passwords"), json!({}))
        .await;
    let pname = if provider == Provider::Google {
        "google"
    } else {
        "microsoft"
    };
    let account = t.connect(&staff, pname).await;
    let (_, cals) = t
        .api(
            "GET",
            &format!("/api/v1/accounts/{account}/calendars"),
            None,
        )
        .await;
    let enc = |c: &Value| {
        percent_encoding::utf8_percent_encode(
            c["id"].as_str().unwrap(),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string()
    };
    for c in cals.as_array().unwrap() {
        let body = if c["default"] == true {
            json!({"selected": true, "direction": "bidirectional"})
        } else {
            json!({"selected": true, "direction": "read_only"})
        };
        let (s, v) = t
            .api(
                "PUT",
                &format!("/api/v1/accounts/{account}/calendars/{}", enc(c)),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let mine = t
        .app
        .db
        .calendars_of_staff(&calbridge::model::StaffId(staff.clone()))
        .unwrap();
    let url_of = |pred: &dyn Fn(&calbridge::model::Calendar) -> bool| {
        let c = mine.iter().find(|c| !c.is_native() && pred(c)).unwrap();
        t.url(&format!("/dav/calendars/{staff}/{}/", c.slug))
    };
    let rw = url_of(&|c| c.writable());
    let ro = url_of(&|c| !c.writable());
    let scope = if provider == Provider::Google {
        "https://www.googleapis.com/auth/calendar"
    } else {
        "Calendars.ReadWrite"
    };
    let client_id = if provider == Provider::Google {
        emu::DEFAULT_GOOGLE_CLIENT_ID
    } else {
        emu::DEFAULT_MICROSOFT_CLIENT_ID
    };
    let token = emu
        .issue_tokens(provider, &email, client_id, &[scope.to_string()])
        .unwrap()
        .access_token;
    let w = World {
        emu,
        t,
        account,
        email,
        provider,
        password: ap["password"].as_str().unwrap().to_string(),
        token,
        rw,
        ro,
    };
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    w
}

impl World {
    fn dav(&self, method: &str, url: &str) -> reqwest::RequestBuilder {
        self.t
            .client
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
            .basic_auth(&self.email, Some(&self.password))
    }

    async fn put(&self, url: &str, body: &str, if_match: Option<&str>) -> (StatusCode, String) {
        let mut r = self
            .dav("PUT", url)
            .header("Content-Type", "text/calendar")
            .body(body.replace('\n', "\r\n"));
        if let Some(e) = if_match {
            r = r.header("If-Match", e);
        }
        let resp = r.send().await.unwrap();
        let etag = resp
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let s = resp.status();
        let text = resp.text().await.unwrap();
        assert!(
            s.is_success() || !text.is_empty() || s == StatusCode::PRECONDITION_FAILED,
            "{s}"
        );
        (s, if s.is_success() { etag } else { text })
    }

    async fn get(&self, url: &str) -> (StatusCode, String, String) {
        let r = self.dav("GET", url).send().await.unwrap();
        let s = r.status();
        let etag = r
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (s, etag, r.text().await.unwrap())
    }

    /// Live upstream events of the writable (default) calendar.
    fn upstream(&self) -> Vec<Value> {
        match self.provider {
            Provider::Google => self
                .emu
                .google_events(&self.email, "primary")
                .into_iter()
                .filter(|e| e["status"] != "cancelled")
                .collect(),
            Provider::Microsoft => self
                .emu
                .graph_events(&self.email, "default")
                .into_iter()
                .filter(|e| e["@emulator.deleted"] != true)
                .collect(),
        }
    }

    fn find(&self, title: &str) -> Option<Value> {
        self.upstream()
            .into_iter()
            .find(|e| e["summary"].as_str().or(e["subject"].as_str()) == Some(title))
    }

    async fn patch_upstream(&self, e: &Value, title: &str) {
        let id = e["id"].as_str().unwrap();
        let (url, body) = match self.provider {
            Provider::Google => (
                self.emu
                    .url(&format!("/calendar/v3/calendars/primary/events/{id}")),
                json!({"summary": title}),
            ),
            Provider::Microsoft => (
                self.emu.url(&format!("/v1.0/me/events/{id}")),
                json!({"subject": title}),
            ),
        };
        let r = self
            .t
            .client
            .patch(url)
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
}

fn event(uid: &str, summary: &str, start: &str, end: &str, extra: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//test//EN\nBEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20260101T000000Z\nDTSTART{start}\nDTEND{end}\nSUMMARY:{summary}\n{extra}END:VEVENT\nEND:VCALENDAR\n"
    )
}

async fn round_trip(provider: Provider) {
    let w = world(provider).await;
    let day = |n: i64| {
        (chrono::Utc::now().date_naive() + chrono::Duration::days(n))
            .format("%Y%m%d")
            .to_string()
    };

    // A one-off in Berlin time goes up.
    let one = format!("{}one.ics", w.rw);
    let (s, etag) = w
        .put(
            &one,
            &event(
                "one@test",
                "Planning",
                &format!(";TZID=Europe/Berlin:{}T100000", day(2)),
                &format!(";TZID=Europe/Berlin:{}T110000", day(2)),
                "",
            ),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{etag}");
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    assert_eq!(st["pending_writes"], 0, "{st}");
    let up = w.find("Planning").expect("written upstream");
    let start = up["start"]["dateTime"].as_str().unwrap();
    assert!(
        start.contains("T10:00:00") || start.contains("T09:00:00"),
        "{up}"
    );
    // Our own write came back: the CalDAV ETag did not move.
    let (_, etag_now, _) = w.get(&one).await;
    assert_eq!(etag_now, etag, "no echo");
    w.t.sync_and_wait(&w.account).await;
    assert_eq!(w.get(&one).await.1, etag, "still no echo");

    // All-day and a weekly series with a moved occurrence.
    let (s, _) = w
        .put(
            &format!("{}day.ics", w.rw),
            &event(
                "day@test",
                "Offsite",
                &format!(";VALUE=DATE:{}", day(5)),
                &format!(";VALUE=DATE:{}", day(7)),
                "",
            ),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let weekly = format!(
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//test//EN\nBEGIN:VEVENT\nUID:wk@test\nDTSTAMP:20260101T000000Z\nDTSTART;TZID=Europe/Berlin:{d0}T090000\nDTEND;TZID=Europe/Berlin:{d0}T093000\nRRULE:FREQ=WEEKLY;COUNT=4\nSUMMARY:Weekly\nEND:VEVENT\nBEGIN:VEVENT\nUID:wk@test\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:{d1}T090000\nDTSTART;TZID=Europe/Berlin:{d1}T140000\nDTEND;TZID=Europe/Berlin:{d1}T143000\nSUMMARY:Weekly (moved)\nEND:VEVENT\nEND:VCALENDAR\n",
        d0 = day(3),
        d1 = day(10)
    );
    let wk = format!("{}wk.ics", w.rw);
    let (s, wk_etag) = w.put(&wk, &weekly, None).await;
    assert_eq!(s, StatusCode::CREATED, "{wk_etag}");
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    let offsite = w.find("Offsite").expect("all-day upstream");
    match provider {
        Provider::Google => {
            assert_eq!(
                offsite["start"]["date"].as_str().unwrap().replace('-', ""),
                day(5)
            );
            assert_eq!(
                offsite["end"]["date"].as_str().unwrap().replace('-', ""),
                day(7)
            );
        }
        Provider::Microsoft => {
            assert_eq!(offsite["isAllDay"], true);
            assert!(offsite["start"]["dateTime"]
                .as_str()
                .unwrap()
                .replace('-', "")
                .starts_with(&day(5)));
        }
    }
    let weekly_up = w.find("Weekly").expect("series upstream");
    let moved = match provider {
        // Google lists the exception as its own event.
        Provider::Google => w
            .upstream()
            .into_iter()
            .any(|e| e["summary"] == "Weekly (moved)"),
        // Graph: the series' instances include the modified occurrence.
        Provider::Microsoft => {
            let id = weekly_up["id"].as_str().unwrap();
            let list =
                common::upstream_instances(&w.t.client, &w.emu, provider, &w.token, id).await;
            let subjects: Vec<&str> = list.iter().filter_map(|i| i["subject"].as_str()).collect();
            assert_eq!(subjects.len(), 4, "{subjects:?}");
            subjects.contains(&"Weekly (moved)")
        }
    };
    assert!(moved, "the override went up too");
    // The series and its override came back as the provider keeps them
    // (a master and an exception): still our own write, no ETag churn.
    assert_eq!(w.get(&wk).await.1, wk_etag, "no echo for the series");
    w.t.sync_and_wait(&w.account).await;
    assert_eq!(w.get(&wk).await.1, wk_etag, "still no echo for the series");

    // Change with If-Match; the provider keeps one event.
    let count = w.upstream().len();
    let (_, etag, _) = w.get(&one).await;
    let (s, new_etag) = w
        .put(
            &one,
            &event(
                "one@test",
                "Planning (moved)",
                &format!(";TZID=Europe/Berlin:{}T120000", day(2)),
                &format!(";TZID=Europe/Berlin:{}T130000", day(2)),
                "",
            ),
            Some(&etag),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    w.t.sync_and_wait(&w.account).await;
    assert_eq!(w.upstream().len(), count);
    assert!(w.find("Planning (moved)").is_some());
    assert_eq!(w.get(&one).await.1, new_etag);

    // A remote change moves the CalDAV ETag exactly once.
    let up = w.find("Planning (moved)").unwrap();
    w.patch_upstream(&up, "Planning (renamed upstream)").await;
    w.t.sync_and_wait(&w.account).await;
    let (_, e1, body) = w.get(&one).await;
    assert_ne!(e1, new_etag);
    assert!(body.contains("Planning (renamed upstream)"));
    w.t.sync_and_wait(&w.account).await;
    assert_eq!(w.get(&one).await.1, e1, "moved once, not on every sync");

    // Read-only calendar: 403 with DAV:need-privileges, nothing stored.
    let resp = w
        .dav("PUT", &format!("{}x.ics", w.ro))
        .header("Content-Type", "text/calendar")
        .body(
            event(
                "x@test",
                "nope",
                ":20300101T100000Z",
                ":20300101T110000Z",
                "",
            )
            .replace('\n', "\r\n"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.text().await.unwrap().contains("need-privileges"));

    // Delete goes up.
    let resp = w
        .dav("DELETE", &format!("{}day.ics", w.rw))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    w.t.sync_and_wait(&w.account).await;
    assert!(w.find("Offsite").is_none(), "deleted upstream");

    // Deleted here while changed upstream: the change wins and comes back.
    // The provider is briefly unavailable for deletes, so the delete is
    // still queued when the upstream change happens.
    let unavailable = match provider {
        Provider::Google => emu::FaultKind::GoogleBackendError,
        Provider::Microsoft => emu::FaultKind::GraphUnavailable { retry_after: 0 },
    };
    let fault = w.emu.add_fault(
        emu::FaultRule::new(unavailable)
            .provider(provider)
            .method("DELETE"),
    );
    let up = w.find("Planning (renamed upstream)").unwrap();
    let resp = w.dav("DELETE", &one).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.patch_upstream(&up, "Planning (kept)").await;
    w.emu.remove_fault(fault);
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    assert!(w.find("Planning (kept)").is_some(), "not deleted upstream");
    let stored =
        w.t.app
            .db
            .events_with_bodies(&calbridge::model::CalendarId(
                w.t.app
                    .db
                    .calendars_of_staff(
                        &w.t.app
                            .db
                            .account(&calbridge::model::AccountId(w.account.clone()))
                            .unwrap()
                            .unwrap()
                            .staff,
                    )
                    .unwrap()
                    .into_iter()
                    .find(|c| c.writable() && !c.is_native())
                    .unwrap()
                    .id
                    .0,
            ))
            .unwrap();
    assert!(
        stored
            .iter()
            .any(|(_, b)| String::from_utf8_lossy(b).contains("Planning (kept)")),
        "restored here"
    );
    assert!(
        st["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kept"] == "remote"),
        "{st}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_caldav_writes_go_upstream() {
    round_trip(Provider::Google).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsoft_caldav_writes_go_upstream() {
    round_trip(Provider::Microsoft).await;
}

/// A series with two changed occurrences, written from CalDAV; then one
/// occurrence is edited in CalDAV again, and afterwards the series is
/// renamed upstream. Google's incremental pull then brings the master
/// alone: the stored object must still have both changed occurrences (the
/// write kept the series' pieces), with the upstream rename.
async fn series_stays_whole(provider: Provider) {
    let w = world(provider).await;
    let day = |n: i64| {
        (chrono::Utc::now().date_naive() + chrono::Duration::days(n))
            .format("%Y%m%d")
            .to_string()
    };
    let series = |a: &str| {
        format!(
            "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//test//EN\nBEGIN:VEVENT\nUID:whole@test\nDTSTAMP:20260101T000000Z\nDTSTART;TZID=Europe/Berlin:{d0}T090000\nDTEND;TZID=Europe/Berlin:{d0}T093000\nRRULE:FREQ=WEEKLY;COUNT=5\nSUMMARY:Review\nEND:VEVENT\nBEGIN:VEVENT\nUID:whole@test\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:{d1}T090000\nDTSTART;TZID=Europe/Berlin:{d1}T140000\nDTEND;TZID=Europe/Berlin:{d1}T143000\nSUMMARY:{a}\nEND:VEVENT\nBEGIN:VEVENT\nUID:whole@test\nDTSTAMP:20260101T000000Z\nRECURRENCE-ID;TZID=Europe/Berlin:{d2}T090000\nDTSTART;TZID=Europe/Berlin:{d2}T160000\nDTEND;TZID=Europe/Berlin:{d2}T163000\nSUMMARY:Review (B)\nEND:VEVENT\nEND:VCALENDAR\n",
            d0 = day(3),
            d1 = day(10),
            d2 = day(17)
        )
    };
    let url = format!("{}whole.ics", w.rw);
    let (s, etag) = w.put(&url, &series("Review (A)"), None).await;
    assert_eq!(s, StatusCode::CREATED, "{etag}");
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["pending_writes"], 0, "{st}");
    let (s, etag2) = w.put(&url, &series("Review (A, later)"), Some(&etag)).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{etag2}");
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["pending_writes"], 0, "{st}");
    assert_eq!(w.get(&url).await.1, etag2, "the write came back unchanged");

    let master = w.find("Review").expect("series upstream");
    w.patch_upstream(&master, "Review (renamed)").await;
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    let (_, etag3, body) = w.get(&url).await;
    assert_ne!(etag3, etag2);
    let cal = calbridge::ics::parse(body.as_bytes()).unwrap();
    let mut titles: Vec<String> = cal
        .children_named("VEVENT")
        .filter_map(|e| e.prop("SUMMARY").map(|p| p.text_value()))
        .collect();
    titles.sort();
    assert_eq!(
        titles,
        vec!["Review (A, later)", "Review (B)", "Review (renamed)"],
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_series_stays_whole_after_local_and_upstream_edits() {
    series_stays_whole(Provider::Google).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsoft_series_stays_whole_after_local_and_upstream_edits() {
    series_stays_whole(Provider::Microsoft).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_refuses_inexpressible_caldav_puts() {
    let w = world(Provider::Microsoft).await;
    let (s, body) = w
        .put(
            &format!("{}hourly.ics", w.rw),
            &event(
                "h@test",
                "Hourly",
                ":20300101T100000Z",
                ":20300101T103000Z",
                "RRULE:FREQ=HOURLY;COUNT=3\n",
            ),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body.contains("valid-calendar-object-resource") && body.contains("Microsoft"),
        "{body}"
    );
    let (s, _, _) = w.get(&format!("{}hourly.ics", w.rw)).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing stored");
}
