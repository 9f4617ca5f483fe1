//! Secrets: feed tokens, the admin token, app passwords, OAuth states,
//! codes and tokens — how they are made, kept, compared and never shown.
//!
//! - Feed tokens carry 256 random bits, only their SHA-256 is stored, and
//!   a rotated, altered or truncated token opens nothing.
//! - The OAuth `state` works once, expires, belongs to one provider, and
//!   a code issued in one staff member's flow cannot complete another's
//!   (PKCE binds it).
//! - After a full run (Google and Microsoft connected and synced, app
//!   passwords, feeds), no token, password, state or key appears in clear
//!   in any file of the data directory (while the staff e-mail and event
//!   text do: the files are readable, so the absence means something).
//! - The real binary at `trace` level, through a flow that uses every
//!   secret (admin token, Basic credentials, feed tokens, OAuth state and
//!   code, access and refresh tokens, refreshes, client secrets), logs
//!   none of them.
//! - Upstream URLs come only from configuration: a paging link or a
//!   redirect to another host is not followed.

use crate::child;
use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use calbridge::upstream::emulator::{self as emu, Emulator};
use common::{use_emulator, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn token_of(feed_url: &str) -> String {
    feed_url
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".ics")
        .to_string()
}

/// Every byte of every file under `dir`.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Whether `needle` is in `hay` as is, hex-encoded, or inside any run of
/// base64 (standard or URL-safe, at any alignment): the encodings a store
/// or a log line might wrap a secret in.
fn exposed(hay: &[u8], needle: &str) -> bool {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let n = needle.as_bytes();
    if contains(hay, n) || contains(hay, calbridge::crypto::hex(n).as_bytes()) {
        return true;
    }
    let is_b64 = |b: &u8| b.is_ascii_alphanumeric() || b"+/-_".contains(b);
    for run in hay.split(|b| !is_b64(b)).filter(|r| r.len() >= 16) {
        for off in 0..4 {
            let s = &run[off..];
            let s = &s[..s.len() / 4 * 4];
            for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                if let Ok(d) = engine.decode(s) {
                    if contains(&d, n) {
                        return true;
                    }
                }
            }
        }
    }
    false
}

#[tokio::test]
async fn feed_tokens_are_long_random_and_only_their_hash_is_kept() {
    let t = TestServer::start().await;
    let (cid, sid) = t.company_with_staff("UTC").await;
    let mut tokens = Vec::new();
    for (scope, id) in [
        ("staff", sid.as_str()),
        ("company", cid.as_str()),
        ("staff", sid.as_str()),
    ] {
        let f = t
            .create("/api/v1/feeds", json!({"scope": scope, "id": id}))
            .await;
        tokens.push((
            f["id"].as_str().unwrap().to_string(),
            token_of(f["url"].as_str().unwrap()),
        ));
    }
    for (_, tok) in &tokens {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(tok)
            .expect("URL-safe base64");
        assert!(raw.len() * 8 >= 128, "{} bits", raw.len() * 8);
        assert_eq!(raw.len(), 32);
    }
    let distinct: std::collections::BTreeSet<_> = tokens.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(distinct.len(), tokens.len());

    // Rotation: the old token opens nothing, the new one does.
    let (fid, old) = tokens[0].clone();
    let (st, r) = t
        .api("POST", &format!("/api/v1/feeds/{fid}/rotate"), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let new = token_of(r["url"].as_str().unwrap());
    let status = |tok: String| {
        let c = t.client.clone();
        let url = t.url(&format!("/feeds/{tok}.ics"));
        async move { c.get(url).send().await.unwrap().status() }
    };
    assert_eq!(status(new.clone()).await, StatusCode::OK);
    assert_eq!(status(old.clone()).await, StatusCode::NOT_FOUND);
    // Near misses open nothing either (and say nothing different).
    let live = tokens[1].1.clone();
    let mut flipped = live.clone().into_bytes();
    flipped[42] = if flipped[42] == b'A' { b'B' } else { b'A' };
    let near = [
        String::from_utf8(flipped).unwrap(),
        live[..42].to_string(),
        format!("{live}A"),
        live.to_uppercase(),
        calbridge::crypto::token_hash(&live),
    ];
    for n in near {
        let r = t
            .client
            .get(t.url(&format!("/feeds/{n}.ics")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{n}");
        assert_eq!(r.text().await.unwrap(), "Not Found\n");
    }

    // The store holds each live token's SHA-256, never the token.
    let dump = dump(&t);
    for tok in [&new, &live, &tokens[2].1] {
        assert!(contains(
            &dump,
            calbridge::crypto::token_hash(tok).as_bytes()
        ));
        assert!(!exposed(&dump, tok), "a feed token is stored in clear");
    }
    assert!(
        !contains(&dump, calbridge::crypto::token_hash(&old).as_bytes()),
        "the rotated hash is gone"
    );
}

/// Every key and value of the store, concatenated.
fn dump(t: &TestServer) -> Vec<u8> {
    let mut out = Vec::new();
    t.app
        .db
        .store()
        .snapshot(&mut |_, k, v| {
            out.extend_from_slice(k);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
            Ok(())
        })
        .unwrap();
    out
}

async fn emulator_and_server() -> (emu::EmulatorHandle, TestServer) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = Emulator::start(listener).await;
    let base = e.base_url.clone();
    let t = TestServer::start_with(|raw| use_emulator(raw, &base)).await;
    (e, t)
}

/// The query parameters of a URL.
fn query(url: &str) -> std::collections::BTreeMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Start a connection: (account id, authorization URL).
async fn start_connect(t: &TestServer, staff: &str, provider: &str) -> (String, String) {
    let v = t
        .create(
            &format!("/api/v1/staff/{staff}/accounts"),
            json!({"provider": provider}),
        )
        .await;
    (
        v["id"].as_str().unwrap().to_string(),
        v["authorization_url"].as_str().unwrap().to_string(),
    )
}

/// Consent at the emulator: the callback URL it redirects to.
async fn consent(t: &TestServer, authorization_url: &str) -> String {
    let r = t.client.get(authorization_url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    r.headers()["location"].to_str().unwrap().to_string()
}

async fn callback(t: &TestServer, url: &str) -> (StatusCode, String) {
    let r = t.client.get(url).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

fn with_query(url: &str, code: &str, state: &str) -> String {
    let base = url.split('?').next().unwrap();
    format!("{base}?code={}&state={}", urlencode(code), urlencode(state))
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn oauth_state_is_single_use_expiring_and_bound_to_its_flow() {
    let (_e, t) = emulator_and_server().await;
    let (cid, anna) = t.company_with_staff("UTC").await;
    let bob = t
        .create(
            &format!("/api/v1/companies/{cid}/staff"),
            json!({"name": "Bob", "email": "bob@acme.example"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The authorization URL carries a long random state and PKCE.
    let (acc_a, url_a) = start_connect(&t, &anna, "google").await;
    let q = query(&url_a);
    let state_a = q["state"].clone();
    assert!(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&state_a)
            .unwrap()
            .len()
            >= 16,
        "state {state_a}"
    );
    assert_eq!(
        q.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    assert!(q.get("code_challenge").is_some_and(|c| c.len() >= 43));
    assert!(!url_a.contains("code_verifier"));

    // Only the state's hash is stored.
    let d = dump(&t);
    assert!(!exposed(&d, &state_a));
    assert!(contains(
        &d,
        calbridge::crypto::token_hash(&state_a).as_bytes()
    ));

    // A code from Bob's flow cannot complete Anna's: it was issued for
    // Bob's PKCE challenge.
    let (acc_b, url_b) = start_connect(&t, &bob, "google").await;
    let cb_b = consent(&t, &url_b).await;
    let code_b = query(&cb_b)["code"].clone();
    let (s, text) = callback(&t, &with_query(&cb_b, &code_b, &state_a)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{text}");
    let account = |id: &str| {
        t.app
            .db
            .account(&calbridge::model::AccountId(id.into()))
            .unwrap()
            .unwrap()
    };
    assert!(
        account(&acc_a).tokens.is_none(),
        "Anna's account got Bob's grant"
    );
    assert!(account(&acc_b).tokens.is_none());
    // Anna's state was spent by that attempt: single use even when it fails.
    let cb_a = consent(&t, &url_a).await;
    let (s, text) = callback(&t, &cb_a).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("already used"), "{text}");
    assert!(account(&acc_a).tokens.is_none());

    // A fresh flow works once; a replay of its callback is refused and
    // changes nothing.
    let (acc_a2, url_a2) = start_connect(&t, &anna, "google").await;
    let cb = consent(&t, &url_a2).await;
    assert_eq!(callback(&t, &cb).await.0, StatusCode::OK);
    let sealed = account(&acc_a2).tokens.clone().expect("connected");
    let (s, _) = callback(&t, &cb).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(account(&acc_a2).tokens, Some(sealed));

    // A state is for its provider only, and is spent by the wrong one.
    let (_, url_m) = start_connect(&t, &bob, "google").await;
    let cb_m = consent(&t, &url_m).await;
    let wrong = cb_m.replace("/oauth/google/callback", "/oauth/microsoft/callback");
    let (s, text) = callback(&t, &wrong).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(callback(&t, &cb_m).await.0, StatusCode::BAD_REQUEST);

    // A state of a removed account is refused.
    let (acc_gone, url_gone) = start_connect(&t, &bob, "google").await;
    let cb_gone = consent(&t, &url_gone).await;
    let (s, _) = t
        .api("DELETE", &format!("/api/v1/accounts/{acc_gone}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(callback(&t, &cb_gone).await.0, StatusCode::BAD_REQUEST);

    // An expired state is refused (and removed).
    let (acc_old, url_old) = start_connect(&t, &bob, "google").await;
    let state_old = query(&url_old)["state"].clone();
    let hash = calbridge::crypto::token_hash(&state_old);
    let mut rec = t.app.db.take_oauth_state(&hash).unwrap().expect("pending");
    assert_eq!(rec.account.as_str(), acc_old);
    assert_eq!(rec.staff.as_str(), bob);
    rec.created -= calbridge::model::account::OAUTH_STATE_TTL + 1;
    t.app.db.put_oauth_state(&hash, &rec).unwrap();
    let cb_old = consent(&t, &url_old).await;
    let (s, text) = callback(&t, &cb_old).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{text}");
    assert!(t.app.db.take_oauth_state(&hash).unwrap().is_none());

    // Made-up states.
    for bogus in ["", "x", &"A".repeat(43), &"A".repeat(5000)] {
        let url = with_query(&cb_old, "4/0Acode", bogus);
        assert_eq!(
            callback(&t, &url).await.0,
            StatusCode::BAD_REQUEST,
            "{bogus:.20}"
        );
    }
}

/// Connect an account and select its first calendar both ways, as primary.
async fn connect_and_select(t: &TestServer, staff: &str, provider: &str) -> String {
    let account = t.connect(staff, provider).await;
    let (s, cals) = t
        .api(
            "GET",
            &format!("/api/v1/accounts/{account}/calendars"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{cals}");
    let remote = cals[0]["id"].as_str().unwrap().to_string();
    let (s, v) = t
        .api(
            "PUT",
            &format!("/api/v1/accounts/{account}/calendars/{}", urlencode(&remote)),
            Some(json!({"selected": true, "direction": "bidirectional", "primary": provider == "google"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    account
}

#[tokio::test]
async fn no_secret_is_stored_in_clear() {
    let (e, t) = emulator_and_server().await;
    let (_, sid) = t.company_with_staff("UTC").await;
    let (_, staff) = t.api("GET", &format!("/api/v1/staff/{sid}"), None).await;
    let email = staff["email"].as_str().unwrap().to_string();
    let google = connect_and_select(&t, &sid, "google").await;
    let microsoft = connect_and_select(&t, &sid, "microsoft").await;
    let appt = t
        .create(
            &format!("/api/v1/staff/{sid}/appointments"),
            json!({"summary": "Plaintext marker appointment", "start": "2031-01-01T09:00:00Z", "end": "2031-01-01T10:00:00Z"}),
        )
        .await;
    assert!(appt["id"].is_string());
    for a in [&google, &microsoft] {
        let st = t.sync_and_wait(a).await;
        assert_eq!(st["status"], "ok", "{st}");
    }
    // Force a refresh so a rotated refresh token is stored too.
    e.expire_access_tokens(&email);
    for a in [&google, &microsoft] {
        let st = t.sync_and_wait(a).await;
        assert_eq!(st["status"], "ok", "{st}");
    }
    let pw = t
        .create(&format!("/api/v1/staff/{sid}/app-passwords"), json!({}))
        .await["password"]
        .as_str()
        .unwrap()
        .to_string();
    let feed = token_of(
        t.create("/api/v1/feeds", json!({"scope": "staff", "id": sid}))
            .await["url"]
            .as_str()
            .unwrap(),
    );
    let (_, pending_url) = start_connect(&t, &sid, "google").await;
    let pending_state = query(&pending_url)["state"].clone();

    let mut secrets: Vec<(String, String)> = vec![
        ("admin token".into(), common::ADMIN_TOKEN.into()),
        ("secret key".into(), "test-secret-key-0123456789".into()),
        ("app password".into(), pw),
        ("feed token".into(), feed),
        ("pending OAuth state".into(), pending_state),
        (
            "Google client secret".into(),
            emu::DEFAULT_GOOGLE_CLIENT_SECRET.into(),
        ),
        (
            "Microsoft client secret".into(),
            emu::DEFAULT_MICROSOFT_CLIENT_SECRET.into(),
        ),
    ];
    for a in [&google, &microsoft] {
        let acc = t
            .app
            .db
            .account(&calbridge::model::AccountId(a.clone()))
            .unwrap()
            .unwrap();
        let tokens =
            calbridge::sync::tokens::unseal(&t.app.secrets, acc.tokens.as_ref().unwrap()).unwrap();
        secrets.push((format!("{a} access token"), tokens.access_token.clone()));
        secrets.push((
            format!("{a} refresh token"),
            tokens.refresh_token.clone().expect("refresh token"),
        ));
    }
    let dir = t.stop().await;
    let files = files_under(dir.path());
    assert!(!files.is_empty());
    // The files are plain enough that text in them can be found.
    let all: Vec<u8> = files.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    assert!(
        contains(&all, email.as_bytes()),
        "positive control: the e-mail is findable"
    );
    assert!(
        contains(&all, b"Plaintext marker appointment"),
        "positive control"
    );
    for (what, secret) in &secrets {
        // The whole secret, and its first 16 characters.
        for needle in [secret.as_str(), &secret[..16.min(secret.len())]] {
            for (name, bytes) in &files {
                assert!(!exposed(bytes, needle), "{what} in clear in {name}");
            }
        }
    }
}

// ---------------------------------------------------------------- logs

/// Poll an account's status until a sync that finished after `since` is
/// visible.
async fn wait_synced(
    c: &reqwest::Client,
    base: &str,
    admin: &str,
    account: &str,
    since: Option<&str>,
) -> Value {
    for _ in 0..600 {
        let v: Value = c
            .get(format!("{base}/api/v1/accounts/{account}/status"))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let last = v["last_sync"].as_str();
        if last.is_some() && last != since && v["status"] != "syncing" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no sync of {account} finished");
}

/// Occurrences of an emulator-issued token (by its provider prefix and at
/// least 20 more token characters) in `log`.
fn token_shaped(log: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for prefix in ["ya29.a0", "1//0", "EwB4A", "M.C5", "4/0A"] {
        for (i, _) in log.match_indices(prefix) {
            let rest: String = log[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            if rest.len() >= 20 {
                hits.push(format!("{prefix}{rest}"));
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_logged_at_trace_level() {
    let tmp = tempfile::tempdir().unwrap();
    let emu_port = child::free_port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_calbridge"));
    cmd.args([
        "fake-upstream",
        "--listen",
        &format!("127.0.0.1:{emu_port}"),
    ]);
    let mut upstream = child::Child::spawn(cmd, emu_port, &tmp.path().join("emulator.log"), &[]);
    upstream
        .wait_ready("/_emulator/health", Duration::from_secs(60))
        .await;

    let admin = "log-test-admin-token-0123456789abcdef";
    let secret_key = "log-test-secret-key-0123456789abcdef";
    let settings = emu::client_settings(&upstream.base);
    let env_keys: std::collections::BTreeMap<&str, &str> =
        calbridge::config::ENV_KEYS.iter().copied().collect();
    let mut env: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (env_keys[k].to_string(), v.clone()))
        .collect();
    env.extend([
        ("CALBRIDGE_ADMIN_TOKEN".to_string(), admin.to_string()),
        ("CALBRIDGE_SECRET_KEY".to_string(), secret_key.to_string()),
        ("CALBRIDGE_LOG".to_string(), "trace".to_string()),
        ("CALBRIDGE_SYNC_INTERVAL".to_string(), "1h".to_string()),
    ]);
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let log = tmp.path().join("server.log");
    let mut server = child::Child::serve(&tmp.path().join("data"), &log, &env_ref);
    server.wait_ready("/readyz", Duration::from_secs(60)).await;
    let base = server.base.clone();
    let c = common::client();
    let api = |method: &str, path: &str, body: Option<Value>| {
        let mut req = c
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(admin);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.unwrap();
            let s = r.status();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // The directory, an app password, CalDAV with it.
    let (_, co) = api("POST", "/api/v1/companies", Some(json!({"name": "Logs"}))).await;
    let email = "logs@logs.example";
    let (_, st) = api(
        "POST",
        &format!("/api/v1/companies/{}/staff", co["id"].as_str().unwrap()),
        Some(json!({"name": "Logs", "email": email})),
    )
    .await;
    let sid = st["id"].as_str().unwrap().to_string();
    let (_, pw) = api(
        "POST",
        &format!("/api/v1/staff/{sid}/app-passwords"),
        Some(json!({})),
    )
    .await;
    let password = pw["password"].as_str().unwrap().to_string();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"));
    let r = c
        .request(
            "PROPFIND".parse().unwrap(),
            format!("{base}/dav/calendars/{sid}/"),
        )
        .basic_auth(email, Some(&password))
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 207);
    let r = c
        .put(format!("{base}/dav/calendars/{email}/appointments/log.ics"))
        .basic_auth(email, Some(&password))
        .header("Content-Type", "text/calendar")
        .body("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//EN\r\nBEGIN:VEVENT\r\nUID:log\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20310101T090000Z\r\nDTEND:20310101T100000Z\r\nSUMMARY:log\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Failed logins: a wrong password, a wrong admin token.
    let wrong_password = "wrong-password-0123456789abcdef";
    let r = c
        .request("PROPFIND".parse().unwrap(), format!("{base}/dav/"))
        .basic_auth(email, Some(wrong_password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let wrong_admin = "wrong-admin-token-0123456789abcdef";
    let r = c
        .get(format!("{base}/api/v1/companies?token={admin}"))
        .bearer_auth(wrong_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Feeds: fetched, rotated, the old one fetched again.
    let (_, f) = api(
        "POST",
        "/api/v1/feeds",
        Some(json!({"scope": "staff", "id": sid})),
    )
    .await;
    let feed_old = token_of(f["url"].as_str().unwrap());
    assert_eq!(
        c.get(format!("{base}/feeds/{feed_old}.ics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (_, f2) = api(
        "POST",
        &format!("/api/v1/feeds/{}/rotate", f["id"].as_str().unwrap()),
        None,
    )
    .await;
    let feed_new = token_of(f2["url"].as_str().unwrap());
    assert_eq!(
        c.get(format!("{base}/feeds/{feed_old}.ics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let _ = c
        .get(format!("{base}/feeds/{feed_new}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.get(format!("{base}/feeds/{feed_new}.ics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Google and Microsoft through the real flow; states and codes noted.
    let mut states = Vec::new();
    let mut codes = Vec::new();
    let mut accounts = Vec::new();
    for provider in ["google", "microsoft"] {
        let (s, v) = api(
            "POST",
            &format!("/api/v1/staff/{sid}/accounts"),
            Some(json!({"provider": provider})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        let url = v["authorization_url"].as_str().unwrap();
        states.push(query(url)["state"].clone());
        let r = c.get(url).send().await.unwrap();
        assert_eq!(r.status(), 302);
        let cb = r.headers()["location"].to_str().unwrap().to_string();
        codes.push(query(&cb)["code"].clone());
        let r = c.get(&cb).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let account = v["id"].as_str().unwrap().to_string();
        let (_, cals) = api(
            "GET",
            &format!("/api/v1/accounts/{account}/calendars"),
            None,
        )
        .await;
        let remote = cals[0]["id"].as_str().unwrap().to_string();
        let (s, v) = api(
            "PUT",
            &format!("/api/v1/accounts/{account}/calendars/{}", urlencode(&remote)),
            Some(json!({"selected": true, "direction": "bidirectional", "primary": provider == "google"})),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        accounts.push(account);
    }
    // An appointment goes upstream; syncs run; access tokens expire and
    // are refreshed.
    let (s, _) = api(
        "POST",
        &format!("/api/v1/staff/{sid}/appointments"),
        Some(json!({"summary": "to upstream", "start": "2031-02-01T09:00:00Z", "end": "2031-02-01T10:00:00Z"})),
    )
    .await;
    assert_eq!(s, 201);
    let mut last = Vec::new();
    for a in &accounts {
        let (s, _) = api("POST", &format!("/api/v1/accounts/{a}/sync"), None).await;
        assert_eq!(s, 202);
        let v = wait_synced(&c, &base, admin, a, None).await;
        assert_eq!(v["status"], "ok", "{v}");
        last.push(v["last_sync"].as_str().unwrap().to_string());
    }
    let r = c
        .post(upstream.url("/_emulator/access-tokens/expire"))
        .json(&json!({"email": email}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (a, l) in accounts.iter().zip(&last) {
        let (s, _) = api("POST", &format!("/api/v1/accounts/{a}/sync"), None).await;
        assert_eq!(s, 202);
        let v = wait_synced(&c, &base, admin, a, Some(l)).await;
        assert_eq!(v["status"], "ok", "{v}");
    }
    // A backup through the API (the admin token again).
    let r = c
        .get(format!("{base}/api/v1/backup"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    assert!(
        server.terminate().is_some_and(|s| s.success()),
        "clean exit"
    );
    let text = server.log_text();
    // Positive controls: this is a trace log of the flow above.
    assert!(text.contains("TRACE"), "trace lines are logged");
    assert!(
        text.contains("/oauth/google/callback"),
        "requests are logged"
    );
    assert!(
        text.contains("/feeds/<token>.ics"),
        "feed requests are logged, redacted"
    );

    // The tokens calbridge holds now (after the refresh).
    let store = calbridge::store::SledStore::open(&tmp.path().join("data"), 8 << 20).unwrap();
    let db = calbridge::store::Db::open(Arc::new(store)).unwrap();
    let sbox = calbridge::crypto::SecretBox::new(secret_key);
    let mut secrets: Vec<(String, String)> = vec![
        ("admin token".into(), admin.into()),
        ("wrong admin token".into(), wrong_admin.into()),
        ("secret key".into(), secret_key.into()),
        ("app password".into(), password.clone()),
        ("wrong password".into(), wrong_password.into()),
        ("Basic credentials".into(), basic),
        ("old feed token".into(), feed_old),
        ("new feed token".into(), feed_new),
        (
            "Google client secret".into(),
            emu::DEFAULT_GOOGLE_CLIENT_SECRET.into(),
        ),
        (
            "Microsoft client secret".into(),
            emu::DEFAULT_MICROSOFT_CLIENT_SECRET.into(),
        ),
    ];
    secrets.extend(states.into_iter().map(|s| ("OAuth state".to_string(), s)));
    secrets.extend(codes.into_iter().map(|s| ("OAuth code".to_string(), s)));
    for a in &accounts {
        let acc = db
            .account(&calbridge::model::AccountId(a.clone()))
            .unwrap()
            .unwrap();
        let tokens = calbridge::sync::tokens::unseal(&sbox, acc.tokens.as_ref().unwrap()).unwrap();
        secrets.push(("access token".into(), tokens.access_token));
        secrets.push(("refresh token".into(), tokens.refresh_token.unwrap()));
    }
    let mut found = Vec::new();
    for (what, s) in &secrets {
        if exposed(text.as_bytes(), s) {
            found.push(what.clone());
        }
    }
    for hit in token_shaped(&text) {
        found.push(format!("a token-shaped string {}…", &hit[..12]));
    }
    for marker in [
        "code_verifier=",
        "client_secret=",
        "refresh_token=",
        "access_token=",
        "Authorization: Bearer",
        "authorization: Bearer",
    ] {
        if text.contains(marker) {
            found.push(format!("the marker {marker:?}"));
        }
    }
    if !found.is_empty() {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                secrets.iter().any(|(_, s)| l.contains(s.as_str())) || !token_shaped(l).is_empty()
            })
            .take(5)
            .collect();
        panic!(
            "the log ({} lines) shows {found:?}; e.g.\n{}",
            text.lines().count(),
            lines
                .iter()
                .map(|l| &l[..l.len().min(400)])
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    eprintln!(
        "trace log of {} lines holds no secret",
        text.lines().count()
    );
    drop(upstream);
}

// ---------------------------------------------------------------- SSRF

/// Status, headers and body of a fake upstream's answer.
type Answer = (u16, Vec<(&'static str, String)>, String);

/// A server that answers every request with `answer(path_and_query)` and
/// counts what it got.
async fn fake(answer: fn(&str, u16, u16) -> Answer, other: u16) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            let (status, headers, body) = answer(
                uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
                port,
                other,
            );
            let mut r = axum::response::Response::new(axum::body::Body::from(body));
            *r.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            for (k, v) in headers {
                r.headers_mut().insert(k, v.parse().unwrap());
            }
            r
        }
    });
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (port, hits)
}

/// The "other host": counts requests, answers an empty page.
fn elsewhere(_: &str, _: u16, _: u16) -> Answer {
    (200, vec![], r#"{"value": [], "items": []}"#.into())
}

/// The configured API host: each path gives another trick.
fn configured(path: &str, me: u16, other: u16) -> Answer {
    let page = |next: String| {
        (
            200,
            vec![],
            json!({"value": [{"id": "c1", "name": "Cal", "canEdit": true}], "@odata.nextLink": next}).to_string(),
        )
    };
    let p = path.split('?').next().unwrap();
    match p {
        "/other-port/me/calendars" => page(format!("http://127.0.0.1:{other}/v1.0/me/calendars")),
        "/other-name/me/calendars" => page(format!("http://localhost:{me}/v1.0/me/calendars")),
        "/other-scheme/me/calendars" => page(format!("https://127.0.0.1:{me}/v1.0/me/calendars")),
        "/userinfo/me/calendars" => page(format!(
            "http://127.0.0.1:{me}@127.0.0.1:{other}/v1.0/me/calendars"
        )),
        "/relative/me/calendars" => page(format!("//127.0.0.1:{other}/v1.0/me/calendars")),
        "/redirect/me/calendars" | "/redirect/users/me/calendarList" => (
            302,
            vec![(
                "location",
                format!("http://127.0.0.1:{other}/v1.0/me/calendars"),
            )],
            String::new(),
        ),
        "/same/me/calendars" if path.contains("page=2") => (
            200,
            vec![],
            json!({"value": [{"id": "c2", "name": "Two", "canEdit": true}]}).to_string(),
        ),
        "/same/me/calendars" => page(format!("http://127.0.0.1:{me}/same/me/calendars?page=2")),
        // Where the "other name" trick lands if followed: a page that
        // would make the call succeed.
        "/v1.0/me/calendars" => (
            200,
            vec![],
            json!({"value": [{"id": "LEAKED", "name": "Leaked", "canEdit": true}]}).to_string(),
        ),
        _ => (404, vec![], "{}".into()),
    }
}

#[tokio::test]
async fn upstream_requests_stay_on_the_configured_hosts() {
    use calbridge::upstream::{RetryPolicy, Upstream};
    let (other, other_hits) = fake(elsewhere, 0).await;
    let (me, my_hits) = fake(configured, other).await;
    let policy = RetryPolicy {
        attempts: 1,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(10),
        max_inline_wait: Duration::from_millis(10),
        timeout: Duration::from_secs(10),
    };
    let graph = |prefix: &str| {
        calbridge::upstream::graph::Graph::new(
            Upstream::new(policy.clone()),
            &url::Url::parse(&format!("http://127.0.0.1:{me}/{prefix}")).unwrap(),
        )
    };
    // Positive control: a link on the same host is followed.
    let cals = graph("same")
        .calendars("tok")
        .await
        .expect("same-host paging");
    assert_eq!(cals.len(), 2, "{cals:?}");
    for prefix in [
        "other-port",
        "other-name",
        "other-scheme",
        "userinfo",
        "relative",
        "redirect",
    ] {
        let r = graph(prefix).calendars("tok").await;
        assert!(r.is_err(), "{prefix}: {r:?}");
    }
    let google = calbridge::upstream::google::Google::new(
        Upstream::new(policy.clone()),
        &url::Url::parse(&format!("http://127.0.0.1:{me}/redirect")).unwrap(),
    );
    assert!(google.calendars("tok").await.is_err());
    assert_eq!(
        other_hits.load(Ordering::SeqCst),
        0,
        "a request left the configured host"
    );
    assert!(my_hits.load(Ordering::SeqCst) >= 8);
}
