//! The real `calbridge` binary as a child process on a data directory of
//! the test's choosing: for tests that kill it (`kill -9`), restart it on
//! the same store, or read what it logs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub struct Child {
    proc: Option<std::process::Child>,
    pub base: String,
    /// Where the child's stderr (its log) goes.
    pub log: PathBuf,
}

impl Child {
    /// `calbridge serve` on `data`, listening on a fresh port, with `env`
    /// on top of an environment cleared of every `CALBRIDGE_*` variable.
    /// Its stderr is appended to `log`.
    pub fn serve(data: &Path, log: &Path, env: &[(&str, &str)]) -> Child {
        Self::serve_bin(Path::new(env!("CARGO_BIN_EXE_calbridge")), data, log, env)
    }

    /// [`Child::serve`] with another build of the binary (a release one).
    pub fn serve_bin(bin: &Path, data: &Path, log: &Path, env: &[(&str, &str)]) -> Child {
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data")
            .arg(data);
        Self::spawn(cmd, port, log, env)
    }

    /// Any subcommand (e.g. `fake-upstream --listen …`) listening on `port`.
    pub fn spawn(mut cmd: Command, port: u16, log: &Path, env: &[(&str, &str)]) -> Child {
        for (k, _) in std::env::vars() {
            if k.starts_with("CALBRIDGE_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err));
        let proc = cmd.spawn().expect("spawn calbridge");
        Child {
            proc: Some(proc),
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn pid(&self) -> u32 {
        self.proc.as_ref().expect("running").id()
    }

    /// Wait until `GET /healthz` answers 200 (or `path` does), failing the
    /// test with the log's tail if it does not within `limit`.
    pub async fn wait_ready(&mut self, path: &str, limit: Duration) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Some(p) = self.proc.as_mut() {
                if let Ok(Some(status)) = p.try_wait() {
                    panic!(
                        "calbridge exited with {status} before it was ready:\n{}",
                        self.log_tail(40)
                    );
                }
            }
            if let Ok(r) = client.get(self.url(path)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                started.elapsed() < limit,
                "calbridge did not answer {path} within {limit:?}:\n{}",
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL (`kill -9`) and reap: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            // std's kill is SIGKILL on Unix.
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut p = self.proc.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(p.id().to_string())
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(s)) = p.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = p.kill();
        p.wait().ok()
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The `CALBRIDGE_*` variables that point a server at an emulator at `base`.
pub fn emulator_env(base: &str) -> Vec<(String, String)> {
    let vars: std::collections::BTreeMap<&str, &str> =
        calbridge::config::ENV_KEYS.iter().copied().collect();
    calbridge::upstream::emulator::client_settings(base)
        .into_iter()
        .map(|(k, v)| (vars[k].to_string(), v))
        .collect()
}

/// Connect `staff` to `provider` over HTTP only, as a staff member's
/// browser would: the authorization URL, the emulator's consent (302), the
/// callback. Returns (account id, the state, the code).
pub async fn connect_over_http(
    c: &reqwest::Client,
    base: &str,
    admin: &str,
    staff: &str,
    provider: &str,
) -> (String, String, String) {
    let r = c
        .post(format!("{base}/api/v1/staff/{staff}/accounts"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"provider": provider}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    let url = v["authorization_url"].as_str().unwrap().to_string();
    let param = |u: &str, name: &str| {
        url::Url::parse(u)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 302, "authorize");
    let cb = r.headers()["location"].to_str().unwrap().to_string();
    let r = c.get(&cb).send().await.unwrap();
    let status = r.status();
    assert_eq!(
        status,
        200,
        "callback: {}",
        r.text().await.unwrap_or_default()
    );
    (
        v["id"].as_str().unwrap().to_string(),
        param(&url, "state"),
        param(&cb, "code"),
    )
}
