//! The write path under faults and crashes: 1,000 writes (500 CalDAV PUTs
//! into a bidirectional Google calendar, 500 appointments through the admin
//! API pushed to it as the primary calendar) while the emulator answers 30%
//! of calendar requests with 429/500 and truncates 5% of inserts after
//! applying them, and `calbridge serve` is killed with SIGKILL three times.
//! Afterwards Google holds exactly the 1,000 events: none lost, none twice.
//!
//! Real processes: `calbridge fake-upstream` (its state outlives calbridge's
//! deaths) and `calbridge serve` on one data directory.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ADMIN: &str = "crash-test-admin-token-0123456789";
const EMAIL: &str = "kim@acme.example";
const WRITES_PER_KIND: usize = 500;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

struct Server {
    child: Option<Child>,
    port: u16,
    data: std::path::PathBuf,
    emu: String,
    log: std::path::PathBuf,
}

impl Server {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_calbridge"));
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", self.port),
            "--data",
        ])
        .arg(&self.data)
        .env("CALBRIDGE_ADMIN_TOKEN", ADMIN)
        .env("CALBRIDGE_SECRET_KEY", "crash-test-secret-key-0123456789")
        .env("CALBRIDGE_SYNC_INTERVAL", "1h")
        .env("CALBRIDGE_SYNC_BACKOFF_BASE", "100ms")
        .env("CALBRIDGE_SYNC_BACKOFF_CAP", "1s")
        .env("CALBRIDGE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log);
        for (key, value) in calbridge::upstream::emulator::client_settings(&self.emu) {
            let var = calbridge::config::ENV_KEYS
                .iter()
                .find(|(k, _)| *k == key)
                .unwrap()
                .1;
            cmd.env(var, value);
        }
        self.child = Some(cmd.spawn().unwrap());
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGKILL: no shutdown, no flush beyond what was acknowledged.
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_ready(&self, c: &reqwest::Client) {
        for _ in 0..300 {
            if let Ok(r) = c.get(self.url("/readyz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the server did not come up; log: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn api(
    c: &reqwest::Client,
    s: &Server,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut r = c
        .request(method.parse().unwrap(), s.url(path))
        .bearer_auth(ADMIN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {path}: {status} {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_writes_survive_faults_and_kills_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    // The emulator, in its own process.
    let emu_port = free_port();
    let mut emu = Command::new(env!("CARGO_BIN_EXE_calbridge"))
        .args([
            "fake-upstream",
            "--listen",
            &format!("127.0.0.1:{emu_port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let emu_url = format!("http://127.0.0.1:{emu_port}");
    for _ in 0..200 {
        if c.get(format!("{emu_url}/_emulator/health"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let r = c
        .post(format!("{emu_url}/_emulator/users"))
        .json(&json!({"provider": "google", "email": EMAIL, "time_zone": "Europe/Berlin"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let mut server = Server {
        child: None,
        port: free_port(),
        data: dir.path().join("data"),
        emu: emu_url.clone(),
        log: dir.path().join("server.log"),
    };
    server.start();
    server.wait_ready(&c).await;

    // Company, staff, app password, Google connected, primary calendar.
    let company = api(
        &c,
        &server,
        "POST",
        "/api/v1/companies",
        Some(json!({"name": "Acme", "timezone": "Europe/Berlin"})),
    )
    .await;
    let staff = api(
        &c,
        &server,
        "POST",
        &format!(
            "/api/v1/companies/{}/staff",
            company["id"].as_str().unwrap()
        ),
        Some(json!({"name": "Kim", "email": EMAIL})),
    )
    .await;
    let sid = staff["id"].as_str().unwrap().to_string();
    let ap = api(
        &c,
        &server,
        "POST",
        &format!("/api/v1/staff/{sid}/app-passwords"),
        Some(json!({})),
    )
    .await;
    let password = ap["password"].as_str().unwrap().to_string();
    let acc = api(
        &c,
        &server,
        "POST",
        &format!("/api/v1/staff/{sid}/accounts"),
        Some(json!({"provider": "google"})),
    )
    .await;
    let account = acc["id"].as_str().unwrap().to_string();
    let consent = c
        .get(acc["authorization_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let callback = consent.headers()["location"].to_str().unwrap().to_string();
    assert!(c.get(&callback).send().await.unwrap().status().is_success());
    let cals = api(
        &c,
        &server,
        "GET",
        &format!("/api/v1/accounts/{account}/calendars"),
        None,
    )
    .await;
    let primary = cals
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["default"] == true)
        .unwrap()
        .clone();
    let enc = percent_encoding::utf8_percent_encode(
        primary["id"].as_str().unwrap(),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    api(
        &c,
        &server,
        "PUT",
        &format!("/api/v1/accounts/{account}/calendars/{enc}"),
        Some(json!({"selected": true, "direction": "bidirectional", "primary": true})),
    )
    .await;
    // The collection the CalDAV writes go to.
    let home = format!("/dav/calendars/{sid}/");
    let propfind = c
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            server.url(&home),
        )
        .basic_auth(EMAIL, Some(&password))
        .header("Depth", "1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let collection = propfind
        .split("<D:href>")
        .filter_map(|h| h.split("</D:href>").next())
        .find(|h| h.starts_with(&home) && h.len() > home.len() && !h.contains("appointments"))
        .expect("the mirrored collection")
        .to_string();

    // 30% of calendar requests fail (429 or 500, nothing applied); 5% of
    // inserts are applied and then have their answer cut off.
    for rule in [
        json!({"kind": "google_too_many_requests", "path_prefix": "/calendar/v3/calendars", "probability": 0.15}),
        json!({"kind": "google_backend_error", "path_prefix": "/calendar/v3/calendars", "probability": 0.15}),
        json!({"kind": "truncated", "provider": "google", "path_prefix": "/calendar/v3/calendars", "method": "POST", "probability": 0.05}),
    ] {
        let r = c
            .post(format!("{emu_url}/_emulator/faults"))
            .json(&rule)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    // Writers: every write is retried until it is acknowledged; a retry
    // first checks whether the lost attempt landed (CalDAV: If-None-Match;
    // API: the summary is looked up).
    let server = Arc::new(tokio::sync::Mutex::new(server));
    let port = server.lock().await.port;
    let base = format!("http://127.0.0.1:{port}");
    let acked = Arc::new(AtomicUsize::new(0));
    let day0 = chrono::Utc::now().date_naive() + chrono::Duration::days(2);
    let mut writers = Vec::new();
    for worker in 0..8usize {
        let (c, base, acked, collection, password, sid) = (
            c.clone(),
            base.clone(),
            acked.clone(),
            collection.clone(),
            password.clone(),
            sid.clone(),
        );
        writers.push(tokio::spawn(async move {
            for i in (worker..2 * WRITES_PER_KIND).step_by(8) {
                let day = day0 + chrono::Duration::days((i % 60) as i64);
                let hour = 8 + (i % 10);
                loop {
                    let done = if i % 2 == 0 {
                        let body = format!(
                            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:dav-{i}@test\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{}T{hour:02}0000Z\r\nDTEND:{}T{hour:02}3000Z\r\nSUMMARY:dav-{i}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
                            day.format("%Y%m%d"),
                            day.format("%Y%m%d")
                        );
                        match c
                            .put(format!("{base}{collection}dav-{i}.ics"))
                            .basic_auth(EMAIL, Some(&password))
                            .header("Content-Type", "text/calendar")
                            .header("If-None-Match", "*")
                            .body(body)
                            .send()
                            .await
                        {
                            // 412: an earlier attempt landed before the crash.
                            Ok(r) => r.status().is_success() || r.status() == reqwest::StatusCode::PRECONDITION_FAILED,
                            Err(_) => false,
                        }
                    } else {
                        let summary = format!("api-{i}");
                        let exists = match c.get(format!("{base}/api/v1/staff/{sid}/appointments?limit=1000")).bearer_auth(ADMIN).send().await {
                            Ok(r) if r.status().is_success() => {
                                let list: Value = r.json().await.unwrap_or(Value::Null);
                                list.as_array().is_some_and(|l| l.iter().any(|a| a["summary"] == summary.as_str()))
                            }
                            _ => false,
                        };
                        exists
                            || match c
                                .post(format!("{base}/api/v1/staff/{sid}/appointments"))
                                .bearer_auth(ADMIN)
                                .json(&json!({"summary": summary, "start": format!("{day}T{hour:02}:00:00Z"), "end": format!("{day}T{hour:02}:30:00Z")}))
                                .send()
                                .await
                            {
                                Ok(r) => r.status().is_success(),
                                Err(_) => false,
                            }
                    };
                    if done {
                        acked.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }

    // Three kills at random moments: during the writes and while the
    // outbox drains.
    let mut kills = 0;
    let started = Instant::now();
    while kills < 3 {
        let wait = 400
            + (calbridge::crypto::random_id(2)
                .bytes()
                .map(|b| b as u64)
                .sum::<u64>()
                % 1500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let mut s = server.lock().await;
        s.kill();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.start();
        s.wait_ready(&c).await;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(acked.load(Ordering::Relaxed), 2 * WRITES_PER_KIND);
    let writes_done = started.elapsed();

    // The faults really happened (a test that never met one proves nothing).
    let log: Value = c
        .get(format!("{emu_url}/_emulator/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fired = |kind: &str| {
        log["log"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["fault"].as_str().is_some_and(|f| f.contains(kind)))
            .count()
    };
    let (too_many, backend, truncated) = (fired("too_many"), fired("backend"), fired("truncated"));
    let calendar_requests = log["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/calendar/v3/calendars"))
        })
        .count();
    // Under a 30% failure rate the ordered outbox backs off, so most of
    // the upstream writes happen once the faults are lifted below.
    eprintln!("faults injected while writing: {too_many} × 429, {backend} × 500, {truncated} truncated inserts in {calendar_requests} calendar requests");
    assert!(
        too_many > 0 && backend > 0 && truncated > 0,
        "{:?}",
        log["log"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["fault"].as_str())
            .take(5)
            .collect::<Vec<_>>()
    );

    // Faults off; let the outbox drain.
    c.delete(format!("{emu_url}/_emulator/faults"))
        .send()
        .await
        .unwrap();
    let s = server.lock().await;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let st = api(
            &c,
            &s,
            "GET",
            &format!("/api/v1/accounts/{account}/status"),
            None,
        )
        .await;
        if st["pending_writes"] == 0 && st["status"] != "syncing" {
            break;
        }
        assert!(Instant::now() < deadline, "the outbox did not drain: {st}");
        let _ = c
            .post(s.url(&format!("/api/v1/accounts/{account}/sync")))
            .bearer_auth(ADMIN)
            .send()
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drained = started.elapsed();

    // Exactly the 1,000 events upstream.
    let events: Vec<Value> = c
        .get(format!(
            "{emu_url}/_emulator/users/google/{EMAIL}/calendars/primary/events"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut live: Vec<String> = events
        .iter()
        .filter(|e| e["status"] != "cancelled")
        .map(|e| e["summary"].as_str().unwrap_or("").to_string())
        .collect();
    live.sort();
    let mut expected: Vec<String> = (0..2 * WRITES_PER_KIND)
        .map(|i| {
            if i % 2 == 0 {
                format!("dav-{i}")
            } else {
                format!("api-{i}")
            }
        })
        .collect();
    expected.sort();
    let dupes: Vec<&String> = live
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| &w[0])
        .collect();
    assert!(dupes.is_empty(), "duplicated upstream: {dupes:?}");
    let missing: Vec<&String> = expected
        .iter()
        .filter(|e| live.binary_search(e).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "lost: {} of them, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(live.len(), 2 * WRITES_PER_KIND);
    // And the local side has them once each too.
    let appts = api(
        &c,
        &s,
        "GET",
        &format!("/api/v1/staff/{sid}/appointments?limit=1000"),
        None,
    )
    .await;
    assert_eq!(appts.as_array().unwrap().len(), WRITES_PER_KIND);
    eprintln!(
        "outbox crash test: {} writes acknowledged in {:.1}s with {kills} kills; upstream complete after {:.1}s; {} events upstream, no duplicate",
        2 * WRITES_PER_KIND,
        writes_done.as_secs_f64(),
        drained.as_secs_f64(),
        live.len()
    );
    drop(s);
    let _ = emu.kill();
    let _ = emu.wait();
}
