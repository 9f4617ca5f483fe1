//! Crash safety: the real `calbridge serve` takes concurrent CalDAV PUTs
//! and DELETEs (two calendars) and admin-API appointment writes, and is
//! killed with SIGKILL at a random moment, again and again; after each
//! kill the store is opened directly and checked index by index, then the
//! server is restarted on it and checked over HTTP.
//!
//! What must hold after every kill:
//! - the store opens (directly, and the server comes up healthy);
//! - every write that was acknowledged (a 2xx fully read) is there with
//!   the same bytes and ETag (CalDAV) or the same fields (appointments);
//!   a write in flight at the kill is either wholly there or wholly not;
//! - nothing is half-written: every event row has its body, id, UID and
//!   time index and one change-log row, and nothing else is left over;
//! - PROPFIND, GET, sync-collection (from scratch and from the token of
//!   the round before), calendar-query time ranges, the admin API's list
//!   and the ICS feed all agree with each other and with the model.
//!
//! `CALBRIDGE_CRASH_ROUNDS` raises the number of kills (default 24).

use crate::child;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use calbridge::dav::names;
use calbridge::dav::xml;
use calbridge::store::{Db, SledStore, Store, Tree};
use child::Child;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ADMIN: &str = "crash-test-admin-token-0123456789abcdef";
const SECRET: &str = "crash-test-secret-key-0123456789abcdef";
/// 2031-01-06T00:00:00Z: every event lies after it (inside the feed window).
const BASE: i64 = 1_925_164_800;
const HOUR: i64 = 3600;
const DAV_WRITERS: usize = 4;
const API_WRITERS: usize = 2;
const CALENDARS: [&str; 2] = ["appointments", "work"];

// ---------------------------------------------------------------- model

/// The shape of an event, which decides which index holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// One hour (`event_times`).
    Short,
    /// Ten days (`event_long`).
    Long,
    /// Weekly, three one-hour instances (`event_long`, recurrence aware).
    Weekly,
}

/// A CalDAV object as written.
#[derive(Debug, Clone, PartialEq)]
struct Obj {
    body: String,
    /// Known once the server acknowledged (or a GET showed) it.
    etag: Option<String>,
    uid: String,
    start: i64,
    shape: Shape,
}

impl Obj {
    fn instances(&self) -> Vec<(i64, i64)> {
        match self.shape {
            Shape::Short => vec![(self.start, self.start + HOUR)],
            Shape::Long => vec![(self.start, self.start + 10 * 24 * HOUR)],
            Shape::Weekly => (0..3)
                .map(|w| {
                    let s = self.start + w * 7 * 24 * HOUR;
                    (s, s + HOUR)
                })
                .collect(),
        }
    }
}

/// One key: what was acknowledged, and what a write in flight at the kill
/// would have made it (`Some(None)`: a delete in flight).
#[derive(Debug)]
struct Slot<T> {
    acked: Option<T>,
    pending: Option<Option<T>>,
    owner: usize,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            acked: None,
            pending: None,
            owner: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Fields {
    summary: String,
    location: String,
    start: i64,
}

#[derive(Debug, Clone)]
struct Appt {
    fields: Fields,
    uid: String,
    etag: String,
}

#[derive(Default)]
struct Model {
    /// (calendar slug, href) → object.
    objs: BTreeMap<(String, String), Slot<Obj>>,
    /// appointment id → appointment.
    appts: BTreeMap<String, Slot<Appt>>,
    /// Appointment creates in flight (their ids are not known yet).
    creating: Vec<(usize, Fields)>,
    counter: u64,
    acked_writes: u64,
}

impl Model {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }
}

type Shared = Arc<Mutex<Model>>;

fn lock(m: &Shared) -> std::sync::MutexGuard<'_, Model> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------- bodies

fn ics_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn parse_rfc3339(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        .timestamp()
}

/// A calendar object; now and then a large one (a DESCRIPTION of up to
/// 200 KiB, folded) so that writes span many pages.
fn object(uid: &str, n: u64, rng: &mut impl Rng) -> Obj {
    let start = BASE + n as i64 * 5 * HOUR;
    let shape = match rng.gen_range(0..6) {
        0 => Shape::Long,
        1 => Shape::Weekly,
        _ => Shape::Short,
    };
    let end = match shape {
        Shape::Long => start + 10 * 24 * HOUR,
        _ => start + HOUR,
    };
    let rrule = if shape == Shape::Weekly {
        "RRULE:FREQ=WEEKLY;COUNT=3\r\n"
    } else {
        ""
    };
    let pad_len = if rng.gen_bool(0.1) {
        rng.gen_range(10_000..200_000)
    } else {
        rng.gen_range(0..400)
    };
    let pad: String = (0..pad_len)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let mut description = format!("DESCRIPTION:write {n} {pad}");
    // Fold at 74 octets (ASCII only here).
    let mut folded = String::new();
    while description.len() > 74 {
        let rest = description.split_off(74);
        folded.push_str(&description);
        folded.push_str("\r\n ");
        description = rest;
    }
    folded.push_str(&description);
    let body = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calbridge crash test//EN\r\n\
         BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{}\r\nDTEND:{}\r\n\
         {rrule}SUMMARY:crash write {n}\r\n{folded}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        ics_time(start),
        ics_time(end),
    );
    Obj {
        body,
        etag: None,
        uid: uid.to_string(),
        start,
        shape,
    }
}

// ---------------------------------------------------------------- setup

struct Setup {
    staff: String,
    email: String,
    password: String,
    /// `/feeds/<token>.ics`
    feed_path: String,
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip()
        .build()
        .unwrap()
}

async fn admin(
    c: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = c
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{base}{path}"),
        )
        .bearer_auth(ADMIN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("admin request");
    let s = r.status();
    let bytes = r.bytes().await.unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (s, v)
}

/// Every item of an admin list, following its `Link: <…>; rel="next"` pages.
async fn admin_list(c: &reqwest::Client, base: &str, first: &str) -> Result<Vec<Value>, String> {
    let mut items = Vec::new();
    let mut next = Some(format!("{base}{first}"));
    while let Some(url) = next.take() {
        let r = c
            .get(&url)
            .bearer_auth(ADMIN)
            .send()
            .await
            .map_err(|e| format!("list {url}: {e}"))?;
        let st = r.status();
        next = r
            .headers()
            .get("link")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.strip_prefix('<'))
            .and_then(|l| l.split_once(">; rel=\"next\""))
            // The link is absolute on the configured public URL; keep its
            // path and query.
            .and_then(|(u, _)| u.find("/api/").map(|i| format!("{base}{}", &u[i..])));
        let v: Value = r.json().await.map_err(|e| format!("list {url}: {e}"))?;
        if st != 200 {
            return Err(format!("list {url}: {st} {v}"));
        }
        items.extend(v.as_array().ok_or("list is not an array")?.iter().cloned());
        if items.len() > 100_000 {
            return Err("list pages never end".into());
        }
    }
    Ok(items)
}

async fn setup(c: &reqwest::Client, base: &str) -> Setup {
    let (s, co) = admin(
        c,
        base,
        "POST",
        "/api/v1/companies",
        Some(json!({"name": "Crash", "timezone": "UTC"})),
    )
    .await;
    assert_eq!(s, 201, "{co}");
    let email = "crash@crash.example".to_string();
    let (s, st) = admin(
        c,
        base,
        "POST",
        &format!("/api/v1/companies/{}/staff", co["id"].as_str().unwrap()),
        Some(json!({"name": "Crash", "email": email, "timezone": "UTC"})),
    )
    .await;
    assert_eq!(s, 201, "{st}");
    let staff = st["id"].as_str().unwrap().to_string();
    let (s, pw) = admin(
        c,
        base,
        "POST",
        &format!("/api/v1/staff/{staff}/app-passwords"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 201, "{pw}");
    let (s, feed) = admin(
        c,
        base,
        "POST",
        "/api/v1/feeds",
        Some(json!({"scope": "staff", "id": staff})),
    )
    .await;
    assert_eq!(s, 201, "{feed}");
    let url = feed["url"].as_str().unwrap();
    let feed_path = url[url.find("/feeds/").unwrap()..].to_string();
    let setup = Setup {
        staff,
        email,
        password: pw["password"].as_str().unwrap().to_string(),
        feed_path,
    };
    let r = dav(
        c,
        base,
        &setup,
        "MKCALENDAR",
        &cal_path(&setup, "work"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.0, 201, "{}", r.2);
    setup
}

fn cal_path(s: &Setup, slug: &str) -> String {
    format!("/dav/calendars/{}/{slug}/", s.staff)
}

/// A CalDAV request: (status, ETag, body).
async fn dav(
    c: &reqwest::Client,
    base: &str,
    s: &Setup,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Vec<u8>>,
) -> (u16, Option<String>, String) {
    try_dav(c, base, s, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

async fn try_dav(
    c: &reqwest::Client,
    base: &str,
    s: &Setup,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Vec<u8>>,
) -> Result<(u16, Option<String>, String), reqwest::Error> {
    let mut req = c
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{base}{path}"),
        )
        .basic_auth(&s.email, Some(&s.password));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.body(body.into()).send().await?;
    let status = r.status().as_u16();
    let etag = r
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = r.bytes().await?;
    Ok((status, etag, String::from_utf8_lossy(&bytes).into_owned()))
}

// ---------------------------------------------------------------- writers

/// CalDAV writer `w`: creates, replaces (If-Match) and deletes its own
/// objects in one calendar until the server goes away.
async fn dav_writer(
    base: String,
    s: Arc<Setup>,
    model: Shared,
    w: usize,
    errors: Arc<Mutex<Vec<String>>>,
) {
    let c = client();
    let slug = CALENDARS[w % CALENDARS.len()].to_string();
    let cal = cal_path(&s, &slug);
    loop {
        // Decide the operation under the lock, send it without.
        let (href, new, pre) = {
            let mut m = lock(&model);
            let live: Vec<(String, Obj)> = m
                .objs
                .iter()
                .filter(|((c, _), slot)| c == &slug && slot.owner == w && slot.acked.is_some())
                .map(|((_, h), slot)| (h.clone(), slot.acked.clone().unwrap()))
                .collect();
            let n = m.next();
            let mut rng = rand::thread_rng();
            let roll: f64 = rng.gen();
            if live.len() < 3 || roll < 0.5 {
                let href = format!("w{w}-{n}.ics");
                let obj = object(&format!("crash-{w}-{n}"), n, &mut rng);
                let slot = m.objs.entry((slug.clone(), href.clone())).or_default();
                slot.owner = w;
                slot.pending = Some(Some(obj.clone()));
                (href, Some(obj), "*".to_string())
            } else {
                let (href, cur) = live[rng.gen_range(0..live.len())].clone();
                let new = (roll < 0.8).then(|| object(&cur.uid, n, &mut rng));
                let slot = m.objs.get_mut(&(slug.clone(), href.clone())).unwrap();
                slot.pending = Some(new.clone());
                (href, new, cur.etag.clone().unwrap())
            }
        };
        let path = format!("{cal}{href}");
        let result = match &new {
            Some(obj) => {
                let cond = if pre == "*" {
                    "If-None-Match"
                } else {
                    "If-Match"
                };
                try_dav(
                    &c,
                    &base,
                    &s,
                    "PUT",
                    &path,
                    &[(cond, pre.as_str()), ("Content-Type", "text/calendar")],
                    obj.body.clone(),
                )
                .await
            }
            None => {
                try_dav(
                    &c,
                    &base,
                    &s,
                    "DELETE",
                    &path,
                    &[("If-Match", pre.as_str())],
                    "",
                )
                .await
            }
        };
        let Ok((status, etag, text)) = result else {
            // The server is gone: the write stays pending.
            return;
        };
        let mut m = lock(&model);
        let ok = match &new {
            Some(_) if pre == "*" => status == 201,
            Some(_) => status == 204,
            None => status == 204,
        };
        if !ok {
            errors.lock().unwrap().push(format!(
                "{} {path}: {status} {text}",
                if new.is_some() { "PUT" } else { "DELETE" }
            ));
            return;
        }
        m.acked_writes += 1;
        let slot = m.objs.get_mut(&(slug.clone(), href)).unwrap();
        slot.pending = None;
        slot.acked = new.map(|mut o| {
            o.etag = etag;
            o
        });
        if new_etag_missing(slot) {
            errors.lock().unwrap().push(format!("PUT {path}: no ETag"));
            return;
        }
    }
}

fn new_etag_missing(slot: &Slot<Obj>) -> bool {
    slot.acked.as_ref().is_some_and(|o| o.etag.is_none())
}

/// Admin-API writer `w`: creates, changes and cancels its own appointments.
async fn api_writer(
    base: String,
    s: Arc<Setup>,
    model: Shared,
    w: usize,
    errors: Arc<Mutex<Vec<String>>>,
) {
    let c = client();
    enum Op {
        Create(Fields),
        Patch(String, Fields, String),
        Cancel(String, String),
    }
    loop {
        let op = {
            let mut m = lock(&model);
            let live: Vec<(String, Appt)> = m
                .appts
                .iter()
                .filter(|(_, slot)| slot.owner == w && slot.acked.is_some())
                .map(|(id, slot)| (id.clone(), slot.acked.clone().unwrap()))
                .collect();
            let n = m.next();
            let mut rng = rand::thread_rng();
            let roll: f64 = rng.gen();
            let fields = Fields {
                summary: format!("appointment {w}-{n}"),
                location: format!("room {}", rng.gen_range(1..999)),
                start: BASE + n as i64 * 5 * HOUR + 2 * HOUR,
            };
            if live.len() < 3 || roll < 0.45 {
                m.creating.push((w, fields.clone()));
                Op::Create(fields)
            } else {
                let (id, cur) = live[rng.gen_range(0..live.len())].clone();
                let slot = m.appts.get_mut(&id).unwrap();
                if roll < 0.8 {
                    slot.pending = Some(Some(Appt {
                        fields: fields.clone(),
                        uid: cur.uid.clone(),
                        etag: String::new(),
                    }));
                    Op::Patch(id, fields, cur.etag)
                } else {
                    slot.pending = Some(None);
                    Op::Cancel(id, cur.etag)
                }
            }
        };
        let (method, path, body, etag) = match &op {
            Op::Create(f) => (
                "POST",
                format!("/api/v1/staff/{}/appointments", s.staff),
                Some(json!({"summary": f.summary, "location": f.location,
                    "start": rfc3339(f.start), "end": rfc3339(f.start + HOUR), "timezone": "UTC"})),
                None,
            ),
            Op::Patch(id, f, etag) => (
                "PATCH",
                format!("/api/v1/appointments/{id}"),
                Some(json!({"summary": f.summary, "location": f.location,
                    "start": rfc3339(f.start), "end": rfc3339(f.start + HOUR)})),
                Some(etag.clone()),
            ),
            Op::Cancel(id, etag) => (
                "DELETE",
                format!("/api/v1/appointments/{id}"),
                None,
                Some(etag.clone()),
            ),
        };
        let mut req = c
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{base}{path}"),
            )
            .bearer_auth(ADMIN);
        if let Some(e) = etag {
            req = req.header("If-Match", format!("\"{e}\""));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let Ok(resp) = req.send().await else { return };
        let status = resp.status().as_u16();
        let Ok(bytes) = resp.bytes().await else {
            return;
        };
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let mut m = lock(&model);
        match op {
            Op::Create(f) if status == 201 => {
                m.creating.retain(|(_, c)| c != &f);
                let appt = appt_from_json(&v);
                assert_eq!(appt.fields, f, "the create answered what was asked");
                let id = v["id"].as_str().unwrap().to_string();
                m.appts.insert(
                    id,
                    Slot {
                        acked: Some(appt),
                        pending: None,
                        owner: w,
                    },
                );
            }
            Op::Patch(id, _, _) if status == 200 => {
                let slot = m.appts.get_mut(&id).unwrap();
                slot.pending = None;
                slot.acked = Some(appt_from_json(&v));
            }
            Op::Cancel(id, _) if status == 204 => {
                m.appts.remove(&id);
            }
            _ => {
                errors
                    .lock()
                    .unwrap()
                    .push(format!("{method} {path}: {status} {v}"));
                return;
            }
        }
        m.acked_writes += 1;
    }
}

fn appt_from_json(v: &Value) -> Appt {
    Appt {
        fields: Fields {
            summary: v["summary"].as_str().unwrap_or_default().to_string(),
            location: v["location"].as_str().unwrap_or_default().to_string(),
            start: parse_rfc3339(v["start"].as_str().expect("start")),
        },
        uid: v["uid"].as_str().expect("uid").to_string(),
        etag: v["etag"]
            .as_str()
            .expect("etag")
            .trim_matches('"')
            .to_string(),
    }
}

// ---------------------------------------------------------------- checks

/// What one calendar holds: href → (etag, uid, instances).
type Members = BTreeMap<String, (String, String, Vec<(i64, i64)>)>;

/// The store, opened directly after a kill, with every index checked
/// against the event rows.
fn check_store(dir: &std::path::Path, staff: &str) -> Result<usize, String> {
    let store =
        SledStore::open(dir, 8 << 20).map_err(|e| format!("the store does not open: {e}"))?;
    let keys = |t: Tree| -> BTreeSet<Vec<u8>> {
        store
            .scan_prefix(t, b"")
            .map(|r| r.expect("readable").0)
            .collect()
    };
    let events = keys(Tree::Events);
    let bodies = keys(Tree::Bodies);
    if events != bodies {
        return Err(format!(
            "events without a body: {:?}; bodies without an event: {:?}",
            events
                .difference(&bodies)
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect::<Vec<_>>(),
            bodies
                .difference(&events)
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect::<Vec<_>>()
        ));
    }
    let n = events.len();
    let counts = [
        ("event_ids", store.len(Tree::EventIds)),
        ("event_uids", store.len(Tree::EventUids)),
        (
            "event_times + event_long",
            store.len(Tree::EventTimes) + store.len(Tree::EventLong),
        ),
    ];
    for (what, c) in counts {
        if c != n {
            return Err(format!("{what}: {c} rows for {n} events"));
        }
    }
    let (changes, tombstones) = (store.len(Tree::Changes), store.len(Tree::Tombstones));
    if changes != n + tombstones {
        return Err(format!(
            "changes: {changes} rows for {n} events and {tombstones} tombstones"
        ));
    }
    let db = Db::open(Arc::new(store)).map_err(|e| format!("Db::open: {e}"))?;
    let staff = calbridge::model::StaffId(staff.to_string());
    let mut seen = 0;
    for cal in db.calendars_of_staff(&staff).map_err(|e| e.to_string())? {
        let all = db
            .events_with_bodies(&cal.id)
            .map_err(|e| format!("{}: {e}", cal.slug))?;
        let seq = db
            .calendar_seq(&cal.id)
            .map_err(|e| e.to_string())?
            .unwrap_or(0);
        let hrefs: BTreeSet<String> = all.iter().map(|(m, _)| m.href.clone()).collect();
        for (meta, body) in &all {
            let at = format!("{}/{}", cal.slug, meta.href);
            if calbridge::store::db::etag_of(body) != meta.etag {
                return Err(format!("{at}: the body does not match its etag"));
            }
            if calbridge::ics::parse(body).is_err() {
                return Err(format!("{at}: the body does not parse"));
            }
            let by_id = db.event_by_id(&meta.id).map_err(|e| e.to_string())?;
            if by_id.as_ref().map(|m| &m.href) != Some(&meta.href) {
                return Err(format!("{at}: event_ids points to {by_id:?}"));
            }
            if db
                .href_for_uid(&cal.id, &meta.uid)
                .map_err(|e| e.to_string())?
                != Some(meta.href.clone())
            {
                return Err(format!("{at}: event_uids does not point to it"));
            }
            if meta.seq > seq {
                return Err(format!("{at}: seq {} after the calendar's {seq}", meta.seq));
            }
        }
        let (_, changes) = db
            .changes_since(&cal.id, 0)
            .map_err(|e| e.to_string())?
            .ok_or("changes_since(0) refused")?;
        let changed: BTreeSet<String> = changes.iter().map(|c| c.href.clone()).collect();
        if changed != hrefs || changes.len() != hrefs.len() {
            return Err(format!(
                "{}: changes_since(0) {changed:?} vs events {hrefs:?}",
                cal.slug
            ));
        }
        let overlapping: BTreeSet<String> = db
            .events_overlapping(&cal.id, i64::MIN / 2, i64::MAX / 2)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|m| m.href)
            .collect();
        if overlapping != hrefs {
            return Err(format!(
                "{}: time index {overlapping:?} vs events {hrefs:?}",
                cal.slug
            ));
        }
        seen += all.len();
    }
    if seen != n {
        return Err(format!(
            "{n} events in the store, {seen} in the staff's calendars"
        ));
    }
    Ok(n)
}

/// One response of a multistatus: href, status, getetag.
type Entry = (String, Option<u16>, Option<String>);

fn multistatus(body: &str) -> (Vec<Entry>, Option<String>) {
    let limits = xml::Limits {
        max_depth: 64,
        max_elements: 10_000_000,
        max_bytes: 1 << 30,
    };
    let root = xml::parse_with(body.as_bytes(), &limits).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(root.name, names::MULTISTATUS, "{body}");
    let status = |t: String| t.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    let entries = root
        .children_named(&names::RESPONSE)
        .map(|r| {
            let href =
                percent_encoding::percent_decode_str(r.child(&names::HREF).unwrap().text().trim())
                    .decode_utf8()
                    .unwrap()
                    .into_owned();
            let st = r.child(&names::STATUS).and_then(|s| status(s.text()));
            let etag = r
                .children_named(&names::PROPSTAT)
                .filter(|ps| ps.child(&names::STATUS).and_then(|s| status(s.text())) == Some(200))
                .find_map(|ps| {
                    ps.child(&names::PROP)?
                        .child(&names::GETETAG)
                        .map(|e| e.text().trim().to_string())
                });
            (href, st, etag)
        })
        .collect();
    let token = root
        .child(&names::SYNC_TOKEN)
        .map(|t| t.text().trim().to_string());
    (entries, token)
}

/// Resolve what survived: every key is checked against its acknowledged
/// state and its write in flight, and the model adopts what is there.
async fn resolve(c: &reqwest::Client, base: &str, s: &Setup, model: &Shared) -> Result<(), String> {
    let keys: Vec<(String, String)> = lock(model).objs.keys().cloned().collect();
    for (slug, href) in keys {
        let path = format!("{}{href}", cal_path(s, &slug));
        let (status, etag, body) = dav(c, base, s, "GET", &path, &[], "").await;
        let mut m = lock(model);
        let slot = m.objs.get_mut(&(slug.clone(), href.clone())).unwrap();
        let actual = match status {
            404 => None,
            200 => Some(body),
            other => return Err(format!("GET {path}: {other}")),
        };
        let matches = |cand: &Option<Obj>, strict: bool| match (cand, &actual) {
            (None, None) => true,
            (Some(o), Some(b)) => &o.body == b && (!strict || o.etag.is_none() || o.etag == etag),
            _ => false,
        };
        let chosen = if matches(&slot.acked, true) {
            slot.acked.clone()
        } else if let Some(p) = slot.pending.as_ref().filter(|p| matches(p, false)) {
            p.clone()
        } else {
            return Err(format!(
                "{path}: acknowledged {} (etag {:?}), in flight {}, found {} (etag {etag:?})",
                describe(&slot.acked),
                slot.acked.as_ref().and_then(|o| o.etag.clone()),
                slot.pending
                    .as_ref()
                    .map(describe)
                    .unwrap_or_else(|| "nothing".into()),
                actual
                    .as_ref()
                    .map(|b| first_summary(b))
                    .unwrap_or_else(|| "nothing".into()),
            ));
        };
        slot.pending = None;
        slot.acked = chosen.map(|mut o| {
            o.etag = etag.clone();
            o
        });
    }
    lock(model).objs.retain(|_, slot| slot.acked.is_some());

    // Appointments: the admin list, each one by id, and creates in flight.
    let items = admin_list(
        c,
        base,
        &format!("/api/v1/staff/{}/appointments?limit=500", s.staff),
    )
    .await?;
    let listed: BTreeMap<String, Value> = items
        .iter()
        .map(|a| (a["id"].as_str().unwrap().to_string(), a.clone()))
        .collect();
    let check = adopt_appointments(model, listed)?;
    for (id, a) in check {
        let (st, v) = admin(c, base, "GET", &format!("/api/v1/appointments/{id}"), None).await;
        if st != 200 || appt_from_json(&v).fields != a.fields {
            return Err(format!("GET appointment {id}: {st} {v}, expected {a:?}"));
        }
    }
    Ok(())
}

/// Checks the listed appointments against the model (acknowledged or in
/// flight), adopts what survived, and returns what to read back by id.
fn adopt_appointments(
    model: &Shared,
    mut listed: BTreeMap<String, Value>,
) -> Result<Vec<(String, Appt)>, String> {
    let mut m = lock(model);
    let ids: Vec<String> = m.appts.keys().cloned().collect();
    for id in ids {
        let slot = m.appts.get_mut(&id).unwrap();
        let actual = listed.remove(&id).map(|v| appt_from_json(&v));
        let ok_acked = match (&slot.acked, &actual) {
            (Some(a), Some(b)) => a.fields == b.fields && a.etag == b.etag && a.uid == b.uid,
            (None, None) => true,
            _ => false,
        };
        let ok_pending = match (&slot.pending, &actual) {
            (Some(Some(a)), Some(b)) => a.fields == b.fields && a.uid == b.uid,
            (Some(None), None) => true,
            _ => false,
        };
        if !ok_acked && !ok_pending {
            return Err(format!(
                "appointment {id}: acknowledged {:?}, in flight {:?}, found {actual:?}",
                slot.acked, slot.pending
            ));
        }
        slot.pending = None;
        slot.acked = actual;
    }
    m.appts.retain(|_, slot| slot.acked.is_some());
    // What is left in the list: CalDAV objects (checked above) or creates
    // that were in flight.
    let creating = std::mem::take(&mut m.creating);
    for (id, v) in listed {
        if v["uid"].as_str().is_some_and(|u| u.starts_with("crash-")) {
            continue;
        }
        let a = appt_from_json(&v);
        let Some((owner, _)) = creating.iter().find(|(_, f)| f == &a.fields) else {
            return Err(format!("appointment {id} was never written: {v}"));
        };
        m.appts.insert(
            id,
            Slot {
                acked: Some(a),
                pending: None,
                owner: *owner,
            },
        );
    }
    // Each one by id too (the id index).
    let check: Vec<(String, Appt)> = m
        .appts
        .iter()
        .map(|(id, s)| (id.clone(), s.acked.clone().unwrap()))
        .collect();
    Ok(check)
}

fn describe(o: &Option<Obj>) -> String {
    o.as_ref()
        .map(|o| first_summary(&o.body))
        .unwrap_or_else(|| "nothing".into())
}

fn first_summary(body: &str) -> String {
    body.lines()
        .find(|l| l.starts_with("SUMMARY:"))
        .unwrap_or("?")
        .to_string()
}

/// The members each calendar must have, from the (resolved) model.
fn expected(model: &Shared) -> BTreeMap<String, Members> {
    let m = lock(model);
    let mut out: BTreeMap<String, Members> = CALENDARS
        .iter()
        .map(|c| (c.to_string(), Members::new()))
        .collect();
    for ((slug, href), slot) in &m.objs {
        let o = slot.acked.as_ref().unwrap();
        out.get_mut(slug).unwrap().insert(
            href.clone(),
            (o.etag.clone().unwrap(), o.uid.clone(), o.instances()),
        );
    }
    for (id, slot) in &m.appts {
        let a = slot.acked.as_ref().unwrap();
        out.get_mut("appointments").unwrap().insert(
            format!("{id}.ics"),
            (
                format!("\"{}\"", a.etag),
                a.uid.clone(),
                vec![(a.fields.start, a.fields.start + HOUR)],
            ),
        );
    }
    out
}

/// PROPFIND, sync-collection (initial and since `last`), time ranges and
/// the feed against the expected members. Returns each calendar's new
/// sync token with the members it was taken at.
async fn check_views(
    c: &reqwest::Client,
    base: &str,
    s: &Setup,
    want: &BTreeMap<String, Members>,
    last: &BTreeMap<String, (String, Members)>,
) -> Result<BTreeMap<String, (String, Members)>, String> {
    let mut tokens = BTreeMap::new();
    let mut uids = BTreeSet::new();
    let mut rng = rand::rngs::StdRng::from_entropy();
    for (slug, members) in want {
        let cal = cal_path(s, slug);
        let want_etags: BTreeMap<String, String> = members
            .iter()
            .map(|(h, (e, _, _))| (format!("{cal}{h}"), e.clone()))
            .collect();
        uids.extend(members.values().map(|(_, u, _)| u.clone()));

        // PROPFIND Depth 1.
        let (st, _, body) = dav(
            c,
            base,
            s,
            "PROPFIND",
            &cal,
            &[("Depth", "1")],
            r#"<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>"#,
        )
        .await;
        if st != 207 {
            return Err(format!("PROPFIND {cal}: {st} {body}"));
        }
        let found: BTreeMap<String, String> = multistatus(&body)
            .0
            .into_iter()
            .filter(|(h, _, _)| h != &cal)
            .map(|(h, _, e)| (h, e.unwrap_or_default()))
            .collect();
        if found != want_etags {
            return Err(format!("PROPFIND {cal}: {}", diff(&found, &want_etags)));
        }
        // Every appointment's body is readable with its etag (CalDAV ones
        // were read by `resolve`).
        for (h, (etag, _, _)) in members.iter().filter(|(h, _)| !h.starts_with('w')) {
            let (st, e, _) = dav(c, base, s, "GET", &format!("{cal}{h}"), &[], "").await;
            if st != 200 || e.as_deref() != Some(etag.as_str()) {
                return Err(format!("GET {cal}{h}: {st} {e:?}, expected {etag}"));
            }
        }

        // sync-collection from scratch.
        let sync = |token: &str| {
            format!(
                r#"<d:sync-collection xmlns:d="DAV:"><d:sync-token>{token}</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"#
            )
        };
        let (st, _, body) = dav(c, base, s, "REPORT", &cal, &[("Depth", "1")], sync("")).await;
        if st != 207 {
            return Err(format!("sync-collection {cal}: {st} {body}"));
        }
        let (entries, token) = multistatus(&body);
        let found: BTreeMap<String, String> = entries
            .into_iter()
            .map(|(h, _, e)| (h, e.unwrap_or_default()))
            .collect();
        if found != want_etags {
            return Err(format!(
                "initial sync-collection {cal}: {}",
                diff(&found, &want_etags)
            ));
        }
        let token = token.ok_or("no sync-token")?;

        // sync-collection since the last round's token: every href whose
        // state changed is reported, each as it is now.
        if let Some((old_token, old_members)) = last.get(slug) {
            let (st, _, body) = dav(
                c,
                base,
                s,
                "REPORT",
                &cal,
                &[("Depth", "1")],
                sync(old_token),
            )
            .await;
            if st != 207 {
                return Err(format!("sync-collection since {old_token}: {st} {body}"));
            }
            let reported: BTreeMap<String, (Option<u16>, Option<String>)> = multistatus(&body)
                .0
                .into_iter()
                .map(|(h, st, e)| (h, (st, e)))
                .collect();
            let old: BTreeMap<String, String> = old_members
                .iter()
                .map(|(h, (e, _, _))| (format!("{cal}{h}"), e.clone()))
                .collect();
            for h in old.keys().chain(want_etags.keys()) {
                if old.get(h) != want_etags.get(h) && !reported.contains_key(h) {
                    return Err(format!("sync since {old_token} misses {h}"));
                }
            }
            for (h, (st, e)) in &reported {
                match want_etags.get(h) {
                    Some(want) if e.as_ref() == Some(want) => {}
                    None if *st == Some(404) => {}
                    other => {
                        return Err(format!(
                            "sync since {old_token}: {h} reported as {st:?} {e:?}, is {other:?}"
                        ))
                    }
                }
            }
        }
        tokens.insert(slug.clone(), (token, members.clone()));

        // calendar-query over random windows (and one over everything).
        let hi = BASE + span_end(members);
        for i in 0..5 {
            let (qs, qe) = if i == 0 {
                (BASE - 365 * 24 * HOUR, hi + 365 * 24 * HOUR)
            } else {
                let qs = rng.gen_range(BASE - 24 * HOUR..hi.max(BASE + HOUR));
                (qs, qs + rng.gen_range(HOUR..20 * 24 * HOUR))
            };
            let q = format!(
                r#"<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/></d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT"><c:time-range start="{}" end="{}"/></c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"#,
                ics_time(qs),
                ics_time(qe)
            );
            let (st, _, body) = dav(c, base, s, "REPORT", &cal, &[("Depth", "1")], q).await;
            if st != 207 {
                return Err(format!("calendar-query {cal}: {st} {body}"));
            }
            let found: BTreeSet<String> = multistatus(&body)
                .0
                .into_iter()
                .map(|(h, _, _)| h)
                .collect();
            let want: BTreeSet<String> = members
                .iter()
                .filter(|(_, (_, _, inst))| inst.iter().any(|(s, e)| *s < qe && *e > qs))
                .map(|(h, _)| format!("{cal}{h}"))
                .collect();
            if found != want {
                return Err(format!(
                    "calendar-query {cal} [{}, {}): found {} want {}; extra {:?} missing {:?}",
                    ics_time(qs),
                    ics_time(qe),
                    found.len(),
                    want.len(),
                    found.difference(&want).collect::<Vec<_>>(),
                    want.difference(&found).collect::<Vec<_>>()
                ));
            }
        }
    }

    // The feed publishes exactly the stored events.
    let r = c
        .get(format!("{base}{}", s.feed_path))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 200 {
        return Err(format!("feed: {}", r.status()));
    }
    let body = r.bytes().await.map_err(|e| e.to_string())?;
    let cal = calbridge::ics::parse(&body).map_err(|e| format!("feed does not parse: {e}"))?;
    let feed_uids: Vec<String> = cal
        .children_named("VEVENT")
        .map(|e| e.prop("UID").map(|p| p.text_value()).unwrap_or_default())
        .collect();
    let feed_set: BTreeSet<String> = feed_uids.iter().cloned().collect();
    if feed_set != uids || feed_uids.len() != uids.len() {
        return Err(format!(
            "feed has {} events ({} distinct), the store {}; extra {:?} missing {:?}",
            feed_uids.len(),
            feed_set.len(),
            uids.len(),
            feed_set.difference(&uids).collect::<Vec<_>>(),
            uids.difference(&feed_set).collect::<Vec<_>>()
        ));
    }
    Ok(tokens)
}

/// How far after BASE the calendar's events reach.
fn span_end(members: &Members) -> i64 {
    members
        .values()
        .flat_map(|(_, _, inst)| inst.iter().map(|(_, e)| *e))
        .max()
        .unwrap_or(BASE)
        - BASE
}

fn diff(found: &BTreeMap<String, String>, want: &BTreeMap<String, String>) -> String {
    let extra: Vec<_> = found
        .iter()
        .filter(|(k, v)| want.get(*k) != Some(v))
        .collect();
    let missing: Vec<_> = want
        .iter()
        .filter(|(k, v)| found.get(*k) != Some(v))
        .collect();
    format!("unexpected {extra:?}; expected but not found {missing:?}")
}

// ---------------------------------------------------------------- the test

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9() {
    let rounds: usize = std::env::var("CALBRIDGE_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let env = [
        ("CALBRIDGE_ADMIN_TOKEN", ADMIN),
        ("CALBRIDGE_SECRET_KEY", SECRET),
        ("CALBRIDGE_LOG", "warn"),
    ];
    let c = client();
    let mut server = Child::serve(&data, &log, &env);
    server.wait_ready("/readyz", Duration::from_secs(60)).await;
    let s = Arc::new(setup(&c, &server.base).await);
    let model: Shared = Arc::default();
    let mut last_tokens = BTreeMap::new();
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut checked_events = 0;
    let mut kills = 0;

    for round in 0..=rounds {
        if round > 0 {
            server = Child::serve(&data, &log, &env);
            server.wait_ready("/readyz", Duration::from_secs(60)).await;
        }
        let base = server.base.clone();
        resolve(&c, &base, &s, &model)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}\nlog:\n{}", server.log_tail(30)));
        let want = expected(&model);
        checked_events += want.values().map(BTreeMap::len).sum::<usize>();
        last_tokens = check_views(&c, &base, &s, &want, &last_tokens)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}\nlog:\n{}", server.log_tail(30)));
        if round == rounds {
            break;
        }

        // Write concurrently and kill the server at a random moment.
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut tasks = Vec::new();
        for w in 0..DAV_WRITERS {
            tasks.push(tokio::spawn(dav_writer(
                base.clone(),
                s.clone(),
                model.clone(),
                w,
                errors.clone(),
            )));
        }
        for w in 0..API_WRITERS {
            tasks.push(tokio::spawn(api_writer(
                base.clone(),
                s.clone(),
                model.clone(),
                w,
                errors.clone(),
            )));
        }
        let delay = rng.gen_range(100..1500);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill9();
        kills += 1;
        for t in tasks {
            t.await.expect("writer panicked");
        }
        let errors = errors.lock().unwrap().clone();
        assert!(
            errors.is_empty(),
            "round {round}: refused writes: {errors:?}"
        );

        // The store opens directly and every index agrees.
        let n = tokio::task::spawn_blocking({
            let data = data.clone();
            let staff = s.staff.clone();
            move || check_store(&data, &staff)
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("after kill {kills}: {e}"));
        assert!(n > 0 || round == 0);
    }
    let m = lock(&model);
    eprintln!(
        "crash safety: {kills} kills survived, {} acknowledged writes, {checked_events} event checks, {} CalDAV objects and {} appointments at the end",
        m.acked_writes,
        m.objs.len(),
        m.appts.len()
    );
    assert!(kills >= 20 || rounds < 20);
    assert!(m.acked_writes > 0);
}
