//! A real calbridge server on 127.0.0.1:0 with a fresh store, driven over
//! HTTP by the end-to-end tests.

use std::sync::Arc;

use calbridge::config::RawConfig;
use calbridge::server::Server;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub app: calbridge::http::App,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip()
        .build()
        .expect("client")
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut RawConfig)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, tune).await
    }

    /// Start on an existing store directory (restart tests).
    pub async fn start_in(dir: tempfile::TempDir, tune: impl FnOnce(&mut RawConfig)) -> Self {
        // RUST_LOG=calbridge=debug shows the server's log in failing tests.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut raw = RawConfig::default();
        raw.set("server.listen", addr.to_string());
        raw.set("store.path", dir.path().display().to_string());
        raw.set("security.admin_token", ADMIN_TOKEN.into());
        raw.set("security.secret_key", "test-secret-key-0123456789".into());
        tune(&mut raw);
        let config = Arc::new(raw.validate().expect("test config"));
        let server = Server::open(config.clone()).expect("server");
        let app = server.app.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(listener, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        TestServer {
            base: config.public_url.clone(),
            client: client(),
            app,
            dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// An admin API call: (status, JSON body or Null).
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                self.url(path),
            )
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, v)
    }

    /// POST and expect 201; returns the body.
    pub async fn create(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.api("POST", path, Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "POST {path}: {v}");
        v
    }

    /// A company with one staff member; returns (company id, staff id).
    pub async fn company_with_staff(&self, tz: &str) -> (String, String) {
        let email = format!("anna{}@acme.example", rand_suffix());
        self.company_with_named_staff(tz, "Anna", &email).await
    }

    /// A company in `tz` with one staff member of this name and e-mail
    /// (the e-mail an emulated account signs in with); (company, staff).
    pub async fn company_with_named_staff(
        &self,
        tz: &str,
        name: &str,
        email: &str,
    ) -> (String, String) {
        let c = self
            .create(
                "/api/v1/companies",
                serde_json::json!({"name": "Acme", "timezone": tz}),
            )
            .await;
        let cid = c["id"].as_str().unwrap().to_string();
        let s = self
            .create(
                &format!("/api/v1/companies/{cid}/staff"),
                serde_json::json!({"name": name, "email": email}),
            )
            .await;
        (cid, s["id"].as_str().unwrap().to_string())
    }

    /// Stop the server and wait for it to finish.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        // Let the store's handles close before reuse.
        drop(self.app);
        self.dir
    }
}

pub fn rand_suffix() -> String {
    calbridge::crypto::random_id(6)
}

/// Fetch a URL without auth: (status, headers, body).
pub async fn get(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let s = r.status();
    let h = r.headers().clone();
    (s, h, r.bytes().await.unwrap().to_vec())
}

/// Point a server's Google and Microsoft settings at an emulator.
pub fn use_emulator(raw: &mut RawConfig, base: &str) {
    for (key, value) in calbridge::upstream::emulator::client_settings(base) {
        raw.set(key, value);
    }
    // Only explicit triggers sync in tests; failures retry fast.
    raw.set("sync.interval", "1h".into());
    raw.set("sync.backoff_base", "1s".into());
    raw.set("sync.backoff_cap", "2s".into());
}

/// The occurrences of a series in the emulator's default calendar over the
/// next 60 days, as the provider's own `instances` call lists them
/// (Google's `items`, Graph's `value`).
pub async fn upstream_instances(
    client: &reqwest::Client,
    emu: &calbridge::upstream::emulator::EmulatorHandle,
    provider: calbridge::upstream::emulator::Provider,
    token: &str,
    series: &str,
) -> Vec<Value> {
    use calbridge::upstream::emulator::Provider;
    let url = match provider {
        Provider::Google => emu.url(&format!(
            "/calendar/v3/calendars/primary/events/{series}/instances"
        )),
        Provider::Microsoft => {
            let from = chrono::Utc::now().format("%Y-%m-%dT00:00:00Z");
            let to = (chrono::Utc::now() + chrono::Duration::days(60)).format("%Y-%m-%dT00:00:00Z");
            emu.url(&format!(
                "/v1.0/me/events/{series}/instances?startDateTime={from}&endDateTime={to}"
            ))
        }
    };
    let r = client.get(url).bearer_auth(token).send().await.unwrap();
    assert!(r.status().is_success(), "instances: {}", r.status());
    let v: Value = r.json().await.unwrap();
    v["items"]
        .as_array()
        .or(v["value"].as_array())
        .unwrap_or_else(|| panic!("no instances in {v}"))
        .clone()
}

impl TestServer {
    /// Connect an account through the real flow: authorization URL →
    /// emulator consent (302) → callback. Returns the account id.
    pub async fn connect(&self, staff: &str, provider: &str) -> String {
        let v = self
            .create(
                &format!("/api/v1/staff/{staff}/accounts"),
                serde_json::json!({"provider": provider}),
            )
            .await;
        let url = v["authorization_url"]
            .as_str()
            .expect("authorization_url")
            .to_string();
        let r = self.client.get(&url).send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::FOUND,
            "authorize: {}",
            r.text().await.unwrap()
        );
        let location = r.headers()["location"].to_str().unwrap().to_string();
        assert!(
            location.starts_with(&self.url(&format!("/oauth/{provider}/callback"))),
            "{location}"
        );
        let cb = self.client.get(&location).send().await.unwrap();
        let status = cb.status();
        let text = cb.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "callback: {text}");
        v["id"].as_str().unwrap().to_string()
    }

    /// Trigger a sync and wait for a run that started after the trigger
    /// to finish; returns the account's status then.
    pub async fn sync_and_wait(&self, account: &str) -> Value {
        let id = calbridge::model::AccountId(account.to_string());
        // The run to wait for is the first to start after this point: a
        // run in flight now (counted in `started`) may have read upstream
        // before the test's latest changes; a trigger during it schedules
        // another.
        let (started, _) = self.app.sync.run_counts(&id);
        let target = started + 1;
        let (s, v) = self
            .api("POST", &format!("/api/v1/accounts/{account}/sync"), None)
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        self.wait_for_runs(account, target).await
    }

    /// Wait until the account has finished `n` runs since the server
    /// started; returns its status then.
    pub async fn wait_for_runs(&self, account: &str, n: u64) -> Value {
        let id = calbridge::model::AccountId(account.to_string());
        for _ in 0..800 {
            if self.app.sync.run_counts(&id).1 >= n {
                let (_, now) = self
                    .api("GET", &format!("/api/v1/accounts/{account}/status"), None)
                    .await;
                return now;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let (_, now) = self
            .api("GET", &format!("/api/v1/accounts/{account}/status"), None)
            .await;
        panic!(
            "run {n} of {account} did not finish: {:?}, status {now}",
            self.app.sync.run_counts(&id)
        );
    }

    /// Wait for the run after the current one (a retry scheduled by
    /// backoff) to finish.
    pub async fn wait_for_next_run(&self, account: &str) -> Value {
        let id = calbridge::model::AccountId(account.to_string());
        let (_, finished) = self.app.sync.run_counts(&id);
        self.wait_for_runs(account, finished + 1).await
    }
}
