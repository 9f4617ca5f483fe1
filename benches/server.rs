//! Benchmarks of the server's other hot paths: writing a multistatus
//! (PROPFIND depth 1 and sync-collection over a 5,000-event collection, a
//! multiget of 100 with calendar data), and mapping provider pages into
//! calendar objects (a Google page of 250 events, a Graph page of 100,
//! a weekly series with its exceptions from each).

use std::hint::black_box;

use calbridge::dav::{names, Multistatus, PropStats, PropValue};
use calbridge::upstream::google::map as google;
use calbridge::upstream::graph::map as graph;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};

const TYPICAL: &[u8] = include_bytes!("../fixtures/ics/apple-weekly-override.ics");

fn href(i: usize) -> String {
    format!("/dav/calendars/stf_8cXbJ2yQ/appointments/3f2b8a1c-77d0-4e3a-9f1e-{i:012}.ics")
}

fn etag(i: usize) -> String {
    format!("\"{:032x}\"", i as u128 * 0x9e37_79b9_7f4a_7c15)
}

fn multistatus(c: &mut Criterion) {
    c.bench_function("multistatus: PROPFIND depth 1, 5,000 etags", |b| {
        b.iter(|| {
            let mut ms = Multistatus::new();
            for i in 0..5_000 {
                let mut p = PropStats::new();
                p.found(names::GETETAG, PropValue::Text(etag(i)));
                p.found(names::RESOURCETYPE, PropValue::ResourceType(Vec::new()));
                ms.response(&href(i), p.as_slice());
            }
            black_box(ms.finish())
        })
    });
    c.bench_function("multistatus: sync-collection, 5,000 changes", |b| {
        b.iter(|| {
            let mut ms = Multistatus::new();
            for i in 0..5_000 {
                if i % 50 == 0 {
                    ms.response_status(&href(i), 404);
                    continue;
                }
                let mut p = PropStats::new();
                p.found(names::GETETAG, PropValue::Text(etag(i)));
                ms.response(&href(i), p.as_slice());
            }
            ms.sync_token("https://calbridge.example/sync/cal_x/5000");
            black_box(ms.finish())
        })
    });
    let data = String::from_utf8(TYPICAL.to_vec()).unwrap();
    c.bench_function(
        "multistatus: multiget of 100 with calendar-data (2 KB each)",
        |b| {
            b.iter(|| {
                let mut ms = Multistatus::new();
                for i in 0..100 {
                    let mut p = PropStats::new();
                    p.found(names::GETETAG, PropValue::Text(etag(i)));
                    p.found(names::CALENDAR_DATA, PropValue::CalendarData(data.clone()));
                    ms.response(&href(i), p.as_slice());
                }
                black_box(ms.finish())
            })
        },
    );
}

/// A Google Calendar v3 event as `events.list` returns it.
fn google_event(i: usize) -> Value {
    let day = 1 + i % 28;
    let mut ev = json!({
        "kind": "calendar#event",
        "etag": format!("\"33{:014}\"", i * 7919),
        "id": format!("k2v9{:024x}", i * 104_729),
        "status": "confirmed",
        "htmlLink": format!("https://www.google.com/calendar/event?eid=azJ2OXt7aX19{i}"),
        "created": "2026-03-02T10:15:07.000Z",
        "updated": "2026-10-28T08:01:44.512Z",
        "summary": format!("Consultation {i} – Müller"),
        "description": "Bitte Unterlagen mitbringen.\nJoin: https://meet.google.com/abc-defg-hij",
        "location": "Praxis Mitte, Torstraße 12, 10119 Berlin",
        "colorId": "5",
        "creator": {"email": "anna@acme.example", "self": true},
        "organizer": {"email": "anna@acme.example", "displayName": "Anna Müller", "self": true},
        "start": {"dateTime": format!("2026-12-{day:02}T09:00:00+01:00"), "timeZone": "Europe/Berlin"},
        "end": {"dateTime": format!("2026-12-{day:02}T09:45:00+01:00"), "timeZone": "Europe/Berlin"},
        "iCalUID": format!("k2v9{:024x}@google.com", i * 104_729),
        "sequence": 1,
        "attendees": [
            {"email": "anna@acme.example", "displayName": "Anna Müller", "organizer": true, "self": true, "responseStatus": "accepted"},
            {"email": "bob@example.com", "displayName": "Bob Smith", "responseStatus": "needsAction"},
            {"email": "chloe@example.fr", "responseStatus": "tentative", "optional": true}
        ],
        "guestsCanInviteOthers": false,
        "reminders": {"useDefault": false, "overrides": [{"method": "popup", "minutes": 15}, {"method": "email", "minutes": 1440}]},
        "extendedProperties": {"private": {"booking": format!("bk_{i}")}},
        "eventType": "default"
    });
    if i % 10 == 0 {
        ev["recurrence"] = json!([
            "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20270630T215959Z",
            "EXDATE;TZID=Europe/Berlin:20261216T090000"
        ]);
    }
    if i % 25 == 0 {
        ev["visibility"] = json!("private");
    }
    ev
}

/// A Graph event as `calendarView/delta` returns it (with the text body
/// calbridge asks for).
fn graph_event(i: usize) -> Value {
    let day = 1 + i % 28;
    json!({
        "@odata.etag": format!("W/\"DwAAABYAAAB{i:08}Zb3T0Ldxi+Z2Bq3w==\""),
        "id": format!("AAMkAGI2TG93AAA{i:010}RgAAAAA="),
        "createdDateTime": "2026-03-02T10:15:07.1234567Z",
        "lastModifiedDateTime": "2026-10-28T08:01:44.5123456Z",
        "changeKey": format!("DwAAABYAAAB{i:08}Zb3T0Ldxi"),
        "categories": ["Blue category"],
        "originalStartTimeZone": "W. Europe Standard Time",
        "originalEndTimeZone": "W. Europe Standard Time",
        "iCalUId": format!("040000008200E00074C5B7101A82E00800000000{i:016x}"),
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": true,
        "hasAttachments": false,
        "subject": format!("Consultation {i} – Müller"),
        "bodyPreview": "Bitte Unterlagen mitbringen.",
        "importance": "normal",
        "sensitivity": if i % 25 == 0 { "private" } else { "normal" },
        "isAllDay": false,
        "isCancelled": false,
        "isOrganizer": true,
        "responseRequested": true,
        "showAs": "busy",
        "type": "singleInstance",
        "webLink": format!("https://outlook.office365.com/owa/?itemid=AAMkAGI2TG93AAA{i:010}"),
        "body": {"contentType": "text", "content": "Bitte Unterlagen mitbringen.\r\nJoin: https://teams.microsoft.com/l/meetup-join/19%3ameeting"},
        "start": {"dateTime": format!("2026-12-{day:02}T08:00:00.0000000"), "timeZone": "UTC"},
        "end": {"dateTime": format!("2026-12-{day:02}T08:45:00.0000000"), "timeZone": "UTC"},
        "location": {"displayName": "Praxis Mitte", "locationType": "default"},
        "attendees": [
            {"type": "required", "status": {"response": "none", "time": "0001-01-01T00:00:00Z"}, "emailAddress": {"name": "Bob Smith", "address": "bob@example.com"}},
            {"type": "optional", "status": {"response": "tentativelyAccepted", "time": "2026-10-01T12:00:00Z"}, "emailAddress": {"name": "Chloé Dubois", "address": "chloe@example.fr"}}
        ],
        "organizer": {"emailAddress": {"name": "Anna Müller", "address": "anna@acme.example"}}
    })
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn mapping(c: &mut Criterion) {
    let page: Vec<(String, Vec<u8>)> = (0..250)
        .map(|i| {
            let ev = google_event(i);
            (ev["id"].as_str().unwrap().to_string(), bytes(&ev))
        })
        .collect();
    c.bench_function("google: map a page of 250 events", |b| {
        b.iter(|| {
            for item in &page {
                black_box(
                    google::map_series(&item.0, std::slice::from_ref(item), Some("Europe/Berlin"))
                        .unwrap(),
                );
            }
        })
    });
    // A weekly series with two moved occurrences and a cancelled one.
    let master = google_event(0);
    let id = master["id"].as_str().unwrap().to_string();
    let mut items = vec![(id.clone(), bytes(&master))];
    for (k, day) in [(1, "07"), (2, "09"), (3, "14")] {
        let mut ex = google_event(0);
        ex.as_object_mut().unwrap().remove("recurrence");
        let orig = format!("2026-12-{day}T09:00:00+01:00");
        ex["id"] = json!(format!("{id}_202612{day}T080000Z"));
        ex["recurringEventId"] = json!(id);
        ex["originalStartTime"] = json!({"dateTime": orig, "timeZone": "Europe/Berlin"});
        if k == 3 {
            ex = json!({"id": ex["id"], "status": "cancelled", "recurringEventId": id, "originalStartTime": ex["originalStartTime"]});
        } else {
            ex["start"] = json!({"dateTime": format!("2026-12-{day}T11:00:00+01:00"), "timeZone": "Europe/Berlin"});
            ex["end"] = json!({"dateTime": format!("2026-12-{day}T11:45:00+01:00"), "timeZone": "Europe/Berlin"});
        }
        items.push((ex["id"].as_str().unwrap().to_string(), bytes(&ex)));
    }
    c.bench_function("google: map a weekly series with 3 exceptions", |b| {
        b.iter(|| black_box(google::map_series(&id, &items, Some("Europe/Berlin")).unwrap()))
    });

    let page: Vec<(String, Vec<u8>)> = (0..100)
        .map(|i| {
            let ev = graph_event(i);
            (ev["id"].as_str().unwrap().to_string(), bytes(&ev))
        })
        .collect();
    c.bench_function("graph: map a page of 100 events", |b| {
        b.iter(|| {
            for item in &page {
                black_box(graph::map_series(&item.0, std::slice::from_ref(item), None).unwrap());
            }
        })
    });
    // A weekly series (Pacific time) as fetch_series hands it over: the
    // master, compact occurrence records, one exception, the window.
    let mut master = graph_event(0);
    master["type"] = json!("seriesMaster");
    master["start"] =
        json!({"dateTime": "2026-12-07T09:00:00.0000000", "timeZone": "Pacific Standard Time"});
    master["end"] =
        json!({"dateTime": "2026-12-07T09:30:00.0000000", "timeZone": "Pacific Standard Time"});
    master["recurrence"] = json!({
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "sunday"},
        "range": {"type": "numbered", "startDate": "2026-12-07", "numberOfOccurrences": 26, "recurrenceTimeZone": "Pacific Standard Time"}
    });
    let id = master["id"].as_str().unwrap().to_string();
    let mut items = vec![(id.clone(), bytes(&master))];
    let first = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
    for k in 0..26 {
        if k == 5 {
            continue; // cancelled: not listed
        }
        let day = first + chrono::Duration::weeks(k);
        let orig = format!("{}T17:00:00Z", day.format("%Y-%m-%d"));
        let occ = if k == 3 {
            let mut ex = graph_event(0);
            ex["type"] = json!("exception");
            ex["seriesMasterId"] = json!(id);
            ex["originalStart"] = json!(orig);
            ex["start"] = json!({"dateTime": format!("{}T19:00:00.0000000", day.format("%Y-%m-%d")), "timeZone": "UTC"});
            ex["end"] = json!({"dateTime": format!("{}T19:30:00.0000000", day.format("%Y-%m-%d")), "timeZone": "UTC"});
            ex
        } else {
            json!({"id": format!("{id}_{k}"), "type": "occurrence", "originalStart": orig})
        };
        items.push((format!("{id}_{k}"), bytes(&occ)));
    }
    items.push((
        graph::WINDOW_ITEM.to_string(),
        bytes(&json!({"start": 1_795_000_000i64, "end": 1_860_000_000i64})),
    ));
    c.bench_function(
        "graph: map a weekly series (26 instances, 1 exception, 1 cancelled)",
        |b| b.iter(|| black_box(graph::map_series(&id, &items, None).unwrap())),
    );
}

criterion_group!(server, multistatus, mapping);
criterion_main!(server);
