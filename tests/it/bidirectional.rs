//! Bidirectional sync end to end, for both providers: appointments go to
//! the primary calendar and never come back as duplicates; edits on either
//! side arrive; echoes change nothing; conflicts keep the newest and log the
//! loser; delete against modify keeps the modification; push-existing twice
//! creates nothing twice; what a provider cannot express is refused.

use crate::common;

use calbridge::model::{AccountId, StaffId};
use calbridge::upstream::emulator::{self as emu, Emulator, Provider};
use common::{get, use_emulator, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct World {
    emu: emu::EmulatorHandle,
    t: TestServer,
    staff: String,
    account: String,
    email: String,
    provider: Provider,
    token: String,
    feed: String,
}

async fn world(provider: Provider) -> World {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emu = Emulator::start(listener).await;
    let email = "dana@acme.example".to_string();
    emu.create_user(provider, &email, Some("Dana"), Some("Europe/Berlin"));
    let base = emu.base_url.clone();
    let t = TestServer::start_with(|raw| use_emulator(raw, &base)).await;
    let (_, staff) = t
        .company_with_named_staff("Europe/Berlin", "Dana", &email)
        .await;
    let pname = match provider {
        Provider::Google => "google",
        Provider::Microsoft => "microsoft",
    };
    let account = t.connect(&staff, pname).await;
    let (_, cals) = t
        .api(
            "GET",
            &format!("/api/v1/accounts/{account}/calendars"),
            None,
        )
        .await;
    let default = cals
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["default"] == true)
        .unwrap()
        .clone();
    let enc = percent_encoding::utf8_percent_encode(
        default["id"].as_str().unwrap(),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    let (s, v) = t
        .api(
            "PUT",
            &format!("/api/v1/accounts/{account}/calendars/{enc}"),
            Some(json!({"selected": true, "direction": "bidirectional", "primary": true, "conflicts": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["primary"], true);
    let token = match provider {
        Provider::Google => {
            emu.issue_tokens(
                provider,
                &email,
                emu::DEFAULT_GOOGLE_CLIENT_ID,
                &["https://www.googleapis.com/auth/calendar".into()],
            )
            .unwrap()
            .access_token
        }
        Provider::Microsoft => {
            emu.issue_tokens(
                provider,
                &email,
                emu::DEFAULT_MICROSOFT_CLIENT_ID,
                &["Calendars.ReadWrite".into()],
            )
            .unwrap()
            .access_token
        }
    };
    let f = t
        .create("/api/v1/feeds", json!({"scope": "staff", "id": staff}))
        .await;
    let w = World {
        emu,
        t,
        staff,
        account,
        email,
        provider,
        token,
        feed: f["url"].as_str().unwrap().to_string(),
    };
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    w
}

/// Live upstream events (cancelled ones left out).
fn upstream(w: &World) -> Vec<Value> {
    match w.provider {
        Provider::Google => w
            .emu
            .google_events(&w.email, "primary")
            .into_iter()
            .filter(|e| e["status"] != "cancelled")
            .collect(),
        Provider::Microsoft => w
            .emu
            .graph_events(&w.email, "default")
            .into_iter()
            .filter(|e| e["@emulator.deleted"] != true)
            .collect(),
    }
}

fn title(e: &Value) -> String {
    e["summary"]
        .as_str()
        .or(e["subject"].as_str())
        .unwrap_or("")
        .to_string()
}

async fn provider_patch(w: &World, e: &Value, title: &str) {
    let id = e["id"].as_str().unwrap();
    let (url, body) = match w.provider {
        Provider::Google => (
            w.emu
                .url(&format!("/calendar/v3/calendars/primary/events/{id}")),
            json!({"summary": title}),
        ),
        Provider::Microsoft => (
            w.emu.url(&format!("/v1.0/me/events/{id}")),
            json!({"subject": title}),
        ),
    };
    let r =
        w.t.client
            .patch(url)
            .bearer_auth(&w.token)
            .json(&body)
            .send()
            .await
            .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn provider_delete(w: &World, e: &Value) {
    let id = e["id"].as_str().unwrap();
    let url = match w.provider {
        Provider::Google => w
            .emu
            .url(&format!("/calendar/v3/calendars/primary/events/{id}")),
        Provider::Microsoft => w.emu.url(&format!("/v1.0/me/events/{id}")),
    };
    let r =
        w.t.client
            .delete(url)
            .bearer_auth(&w.token)
            .send()
            .await
            .unwrap();
    assert!(r.status().is_success());
}

async fn feed_titles(w: &World) -> Vec<String> {
    let (_, _, body) = get(&w.t.client, &w.feed, &[]).await;
    let mut v: Vec<String> = calbridge::ics::parse(&body)
        .unwrap()
        .children_named("VEVENT")
        .filter(|e| e.prop("RECURRENCE-ID").is_none())
        .filter_map(|e| e.prop("SUMMARY").map(|p| p.text_value()))
        .collect();
    v.sort();
    v
}

async fn appointment(w: &World, summary: &str, day: i64, extra: Value) -> Value {
    let start = chrono::Utc::now().date_naive() + chrono::Duration::days(day);
    let mut body = json!({"summary": summary, "start": format!("{start}T09:00:00+01:00"), "end": format!("{start}T10:00:00+01:00")});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    w.t.create(&format!("/api/v1/staff/{}/appointments", w.staff), body)
        .await
}

async fn both_ways(provider: Provider) {
    let w = world(provider).await;
    // Appointment → primary calendar, once, with its UID.
    let a = appointment(&w, "Massage", 3, json!({})).await;
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    assert_eq!(st["pending_writes"], 0, "{st}");
    let up = upstream(&w);
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(title(&up[0]), "Massage");
    let uid_field = if provider == Provider::Google {
        "iCalUID"
    } else {
        "iCalUId"
    };
    if provider == Provider::Google {
        assert_eq!(up[0][uid_field], a["uid"]);
    }
    // It comes back through the pull but is not imported twice.
    assert_eq!(feed_titles(&w).await, vec!["Massage"]);
    let id = calbridge::model::EventId(a["id"].as_str().unwrap().to_string());
    let etag_after_push = w.t.app.db.event_by_id(&id).unwrap().unwrap().etag;
    // No echo: another sync changes nothing.
    w.t.sync_and_wait(&w.account).await;
    assert_eq!(
        w.t.app.db.event_by_id(&id).unwrap().unwrap().etag,
        etag_after_push
    );
    assert_eq!(upstream(&w).len(), 1);

    // Local edit → upstream (still one event).
    let (s, _) =
        w.t.api(
            "PATCH",
            &format!("/api/v1/appointments/{}", a["id"].as_str().unwrap()),
            Some(json!({"summary": "Massage (60 min)"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    w.t.sync_and_wait(&w.account).await;
    let up = upstream(&w);
    assert_eq!(up.len(), 1);
    assert_eq!(title(&up[0]), "Massage (60 min)");

    // Upstream edit → the appointment follows.
    provider_patch(&w, &up[0], "Massage (moved by Dana)").await;
    w.t.sync_and_wait(&w.account).await;
    let (_, got) =
        w.t.api(
            "GET",
            &format!("/api/v1/appointments/{}", a["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(got["summary"], "Massage (moved by Dana)");
    assert_eq!(feed_titles(&w).await, vec!["Massage (moved by Dana)"]);

    // Conflict: both sides change between syncs; the newest wins, the
    // loser is logged.
    provider_patch(&w, &upstream(&w)[0], "Remote version").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.t.api(
        "PATCH",
        &format!("/api/v1/appointments/{}", a["id"].as_str().unwrap()),
        Some(json!({"summary": "Local version"})),
    )
    .await;
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    assert_eq!(
        title(&upstream(&w)[0]),
        "Local version",
        "the newer local change wins"
    );
    let (_, got) =
        w.t.api(
            "GET",
            &format!("/api/v1/appointments/{}", a["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(got["summary"], "Local version");
    let conflicts = st["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{st}");
    assert_eq!(conflicts[0]["kept"], "local");
    assert!(conflicts[0]["lost"]
        .as_str()
        .unwrap()
        .contains("Remote version"));

    // Push existing, twice: nothing is created twice.
    appointment(&w, "Second", 4, json!({})).await;
    for _ in 0..2 {
        let (s, v) =
            w.t.api(
                "POST",
                &format!("/api/v1/staff/{}/push-existing", w.staff),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        assert_eq!(v["queued"], 2);
        w.t.sync_and_wait(&w.account).await;
    }
    let mut titles: Vec<String> = upstream(&w).iter().map(title).collect();
    titles.sort();
    assert_eq!(titles, vec!["Local version", "Second"]);

    // Cancelling an appointment deletes it upstream.
    let (s, _) =
        w.t.api(
            "DELETE",
            &format!("/api/v1/appointments/{}", a["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    w.t.sync_and_wait(&w.account).await;
    let titles: Vec<String> = upstream(&w).iter().map(title).collect();
    assert_eq!(titles, vec!["Second"]);

    // Deleted upstream while unchanged here: the appointment is cancelled.
    provider_delete(&w, &upstream(&w)[0]).await;
    w.t.sync_and_wait(&w.account).await;
    let (_, list) =
        w.t.api(
            "GET",
            &format!("/api/v1/staff/{}/appointments", w.staff),
            None,
        )
        .await;
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");

    // Free/busy counts the appointment and the primary calendar once.
    let b = appointment(&w, "Busy check", 5, json!({})).await;
    w.t.sync_and_wait(&w.account).await;
    let day = (chrono::Utc::now().date_naive() + chrono::Duration::days(5)).to_string();
    let (_, fb) =
        w.t.api(
            "GET",
            &format!(
                "/api/v1/staff/{}/freebusy?start={day}&end={day}T23:59:59Z",
                w.staff
            ),
            None,
        )
        .await;
    assert_eq!(fb["busy"].as_array().unwrap().len(), 1, "{fb}");
    let _ = b;

    // Nothing pending, nothing failing.
    let (_, st) =
        w.t.api(
            "GET",
            &format!("/api/v1/accounts/{}/status", w.account),
            None,
        )
        .await;
    assert_eq!(st["pending_writes"], 0);
    assert_eq!(st["failing_writes"], json!([]));
    let _ = (StaffId(w.staff.clone()), AccountId(w.account.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_appointments_both_ways() {
    both_ways(Provider::Google).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsoft_appointments_both_ways() {
    both_ways(Provider::Microsoft).await;
}

/// A recurring appointment, written upstream: one of its occurrences is
/// renamed there afterwards (Google: an instance patch; Graph: an
/// occurrence patched into an exception). The series' etag is its
/// master's and does not move; the change must still reach the
/// appointment, once, and the write itself must not come back as a change.
async fn occurrence_changed_upstream(provider: Provider) {
    let w = world(provider).await;
    let a = appointment(&w, "Standup", 3, json!({"rrule": "FREQ=WEEKLY;COUNT=4"})).await;
    let id = calbridge::model::EventId(a["id"].as_str().unwrap().to_string());
    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    assert_eq!(st["pending_writes"], 0, "{st}");
    let etag = w.t.app.db.event_by_id(&id).unwrap().unwrap().etag;
    w.t.sync_and_wait(&w.account).await;
    assert_eq!(
        w.t.app.db.event_by_id(&id).unwrap().unwrap().etag,
        etag,
        "no echo"
    );

    let up = upstream(&w);
    let series = up.iter().find(|e| title(e) == "Standup").expect("upstream");
    let sid = series["id"].as_str().unwrap();
    let list = common::upstream_instances(&w.t.client, &w.emu, provider, &w.token, sid).await;
    assert_eq!(list.len(), 4, "{list:?}");
    provider_patch(&w, &list[1], "Standup (moved)").await;

    let st = w.t.sync_and_wait(&w.account).await;
    assert_eq!(st["status"], "ok", "{st}");
    let (_, _, body) = get(&w.t.client, &w.feed, &[]).await;
    let cal = calbridge::ics::parse(&body).unwrap();
    let moved: Vec<_> = cal
        .children_named("VEVENT")
        .filter(|e| e.prop("RECURRENCE-ID").is_some())
        .filter_map(|e| e.prop("SUMMARY").map(|p| p.text_value()))
        .collect();
    assert_eq!(
        moved,
        vec!["Standup (moved)"],
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(feed_titles(&w).await, vec!["Standup"]);
    let changed = w.t.app.db.event_by_id(&id).unwrap().unwrap().etag;
    assert_ne!(changed, etag);
    w.t.sync_and_wait(&w.account).await;
    assert_eq!(
        w.t.app.db.event_by_id(&id).unwrap().unwrap().etag,
        changed,
        "changed once, not on every sync"
    );
    assert_eq!(
        upstream(&w)
            .iter()
            .filter(|e| title(e) == "Standup")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_occurrence_changed_upstream_reaches_the_appointment() {
    occurrence_changed_upstream(Provider::Google).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsoft_occurrence_changed_upstream_reaches_the_appointment() {
    occurrence_changed_upstream(Provider::Microsoft).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_refuses_what_it_cannot_express() {
    let w = world(Provider::Microsoft).await;
    let start = chrono::Utc::now().date_naive() + chrono::Duration::days(3);
    let (s, v) = w
        .t
        .api(
            "POST",
            &format!("/api/v1/staff/{}/appointments", w.staff),
            Some(json!({"summary": "x", "start": format!("{start}T09:00:00Z"), "end": format!("{start}T10:00:00Z"), "rrule": "FREQ=HOURLY;COUNT=3"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["field"], "rrule");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Microsoft"),
        "{v}"
    );
    let (_, list) =
        w.t.api(
            "GET",
            &format!("/api/v1/staff/{}/appointments", w.staff),
            None,
        )
        .await;
    assert_eq!(list.as_array().unwrap().len(), 0, "nothing stored");
}
