//! The upstream sync loop: a scheduler that runs every connected account
//! every `sync.interval` (with jitter), or at once on a trigger, with at most
//! `sync.concurrency` accounts at a time and never two runs of one account
//! (so never two syncs of one calendar); per-calendar incremental pulls;
//! errors turned into a status a staff member understands plus a backoff
//! that resumes by itself.

pub mod outbox;
pub mod pull;
pub mod tokens;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Notify, Semaphore};

use crate::config::Config;
use crate::crypto::SecretBox;
use crate::model::account::{Account, AccountStatus, SkippedItem, SyncProgress};
use crate::model::{
    now, AccountId, Calendar, CalendarSource, Direction, Provider, RemoteRef, Timestamp,
};
use crate::store::db::DbError;
use crate::store::Db;
use crate::upstream::google::write::{
    RemoteRef as WriteRef, RemoteState as WriteState, WriteError,
};
use crate::upstream::google::{self, Google};
use crate::upstream::graph::{self, Graph};
use crate::upstream::oauth::OauthClient;
use crate::upstream::provider::{is_resync, Cursor, Page, RemoteChange};
use crate::upstream::{RetryPolicy, Upstream, UpstreamError};

/// Every piece of one series: `(item id, provider JSON)`.
type SeriesItems = Vec<(String, Vec<u8>)>;

type MapFn =
    fn(
        &str,
        &[(String, Vec<u8>)],
        Option<&str>,
    ) -> Result<crate::upstream::provider::MappedSeries, crate::upstream::provider::MapError>;

fn pct(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Most items named in an account's status.
const MAX_SKIPPED: usize = 50;

/// One provider's clients.
pub struct ProviderClients {
    pub oauth: OauthClient,
    pub api: ProviderApi,
}

/// The provider APIs the engine drives.
pub enum ProviderApi {
    Google(Google),
    Graph(Graph),
}

impl ProviderApi {
    pub async fn identity(&self, token: &str) -> Result<String, UpstreamError> {
        match self {
            ProviderApi::Google(g) => g.identity(token).await,
            ProviderApi::Graph(g) => g.identity(token).await,
        }
    }

    pub async fn calendars(
        &self,
        token: &str,
    ) -> Result<Vec<crate::model::account::RemoteCalendar>, UpstreamError> {
        match self {
            ProviderApi::Google(g) => g.calendars(token).await,
            ProviderApi::Graph(g) => g.calendars(token).await,
        }
    }

    async fn pull_page(
        &self,
        token: &str,
        remote: &str,
        cursor: &Cursor,
        window: Timestamp,
    ) -> Result<Page, UpstreamError> {
        match self {
            ProviderApi::Google(g) => g.pull_page(token, remote, cursor, window).await,
            ProviderApi::Graph(g) => g.pull_page(token, remote, cursor, window).await,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_series(
        &self,
        token: &str,
        remote_cal: &str,
        existing: Option<&WriteRef>,
        cal: &crate::ics::Component,
        zone: Option<&str>,
        marker: &str,
        key: &str,
    ) -> Result<WriteState, WriteError> {
        match self {
            ProviderApi::Google(g) => {
                g.write_series(token, remote_cal, existing, cal, zone, marker, key)
                    .await
            }
            ProviderApi::Graph(g) => {
                g.write_series(token, remote_cal, existing, cal, zone, marker, key)
                    .await
            }
        }
    }

    async fn delete_series(
        &self,
        token: &str,
        remote_cal: &str,
        id: &str,
        etag: Option<&str>,
    ) -> Result<(), WriteError> {
        match self {
            ProviderApi::Google(g) => g.delete_series(token, remote_cal, id, etag).await,
            ProviderApi::Graph(g) => g.delete_series(token, remote_cal, id, etag).await,
        }
    }

    /// The remote master as the provider has it now: (etag, last
    /// modified, JSON); `None` when it is gone.
    async fn fetch_master(
        &self,
        token: &str,
        remote_cal: &str,
        id: &str,
    ) -> Result<Option<(Option<String>, Option<i64>, serde_json::Value)>, UpstreamError> {
        let (url, etag_field, updated_field) = match self {
            ProviderApi::Google(g) => (
                format!(
                    "{}{}/events/{}",
                    g.base,
                    Google::calendar_path(remote_cal),
                    pct(id)
                ),
                "etag",
                "updated",
            ),
            ProviderApi::Graph(g) => (
                format!("{}/me/events/{}", g.base, pct(id)),
                "@odata.etag",
                "lastModifiedDateTime",
            ),
        };
        let api = match self {
            ProviderApi::Google(g) => &g.api,
            ProviderApi::Graph(g) => &g.api,
        };
        match api.send(|c| c.get(&url).bearer_auth(token)).await {
            Ok(r) => {
                let v: serde_json::Value = r.json()?;
                if v["status"] == "cancelled" || v["isCancelled"] == true {
                    return Ok(None);
                }
                let etag = v[etag_field].as_str().map(str::to_string);
                let updated = v[updated_field]
                    .as_str()
                    .and_then(|t| graph::map::parse_time(Some(t)));
                Ok(Some((etag, updated, v)))
            }
            Err(UpstreamError::NotFound) | Err(UpstreamError::Gone(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The provider's series mapping (a plain function: it runs on the
    /// blocking pool).
    fn mapper(&self) -> MapFn {
        match self {
            ProviderApi::Google(_) => google::map::map_series,
            ProviderApi::Graph(_) => graph::map::map_series,
        }
    }
}

/// Why a run stopped early.
#[derive(Debug)]
enum RunError {
    Upstream(UpstreamError),
    Token(tokens::TokenError),
    Store(DbError),
}

impl From<UpstreamError> for RunError {
    fn from(e: UpstreamError) -> Self {
        RunError::Upstream(e)
    }
}

impl From<DbError> for RunError {
    fn from(e: DbError) -> Self {
        RunError::Store(e)
    }
}

pub struct SyncEngine {
    pub db: Db,
    pub config: Arc<Config>,
    pub secrets: SecretBox,
    pub google: Option<ProviderClients>,
    pub microsoft: Option<ProviderClients>,
    /// When each account is due next (unix seconds). A std mutex: only
    /// held to read or update the map, never across an await.
    due: Mutex<HashMap<AccountId, Timestamp>>,
    running: Mutex<HashSet<AccountId>>,
    /// Runs started and finished per account (tests and status pages wait
    /// on these instead of guessing from timestamps).
    runs: Mutex<HashMap<AccountId, (u64, u64)>>,
    wake: Notify,
    limit: Arc<Semaphore>,
}

impl SyncEngine {
    pub fn new(db: Db, config: Arc<Config>, secrets: SecretBox) -> Arc<Self> {
        let policy = RetryPolicy {
            base: config.sync.backoff_base.min(Duration::from_secs(2)),
            cap: config.sync.backoff_cap.min(Duration::from_secs(32)),
            ..RetryPolicy::default()
        };
        let upstream = Upstream::new(policy);
        let redirect = |p: &str| format!("{}/oauth/{p}/callback", config.public_url);
        let google = config.google.configured().then(|| ProviderClients {
            oauth: OauthClient::new(
                Provider::Google,
                &config.google,
                &redirect("google"),
                Duration::from_secs(30),
            )
            .expect("a configured provider has a client id"),
            api: ProviderApi::Google(Google::new(upstream.clone(), &config.google.api_base)),
        });
        let microsoft = config.microsoft.configured().then(|| ProviderClients {
            oauth: OauthClient::new(
                Provider::Microsoft,
                &config.microsoft,
                &redirect("microsoft"),
                Duration::from_secs(30),
            )
            .expect("a configured provider has a client id"),
            api: ProviderApi::Graph(Graph::new(upstream.clone(), &config.microsoft.api_base)),
        });
        let limit = Arc::new(Semaphore::new(config.sync.concurrency));
        Arc::new(SyncEngine {
            db,
            secrets,
            google,
            microsoft,
            due: Mutex::new(HashMap::new()),
            running: Mutex::new(HashSet::new()),
            runs: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            limit,
            config,
        })
    }

    pub fn clients(&self, p: Provider) -> Option<&ProviderClients> {
        match p {
            Provider::Google => self.google.as_ref(),
            Provider::Microsoft => self.microsoft.as_ref(),
        }
    }

    /// Run this account's sync as soon as possible.
    pub fn trigger(&self, id: &AccountId) {
        self.due
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), 0);
        self.wake.notify_one();
    }

    /// Due at `at`, unless something (a trigger during the run) already
    /// asked for earlier.
    fn schedule(&self, id: &AccountId, at: Timestamp) {
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        let slot = due.entry(id.clone()).or_insert(at);
        *slot = (*slot).min(at);
    }

    /// (runs started, runs finished) of an account since this start.
    pub fn run_counts(&self, id: &AccountId) -> (u64, u64) {
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied()
            .unwrap_or((0, 0))
    }

    /// Is a run of this account in flight?
    pub fn is_running(&self, id: &AccountId) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    fn jittered_interval(&self) -> i64 {
        let base = self.config.sync.interval.as_secs() as i64;
        let spread = (base / 10).max(1);
        base + rand::thread_rng().gen_range(-spread..=spread)
    }

    /// Backoff after `failures` consecutive failed runs, at least `floor`.
    fn backoff(&self, failures: u32, floor: Option<Duration>) -> i64 {
        let base = self.config.sync.backoff_base.as_secs_f64().max(0.001);
        let cap = self.config.sync.backoff_cap.as_secs_f64();
        let exp = (base * 2f64.powi(failures.min(20) as i32)).min(cap);
        let jittered = rand::thread_rng().gen_range(exp / 2.0..=exp);
        let floor = floor.map(|d| d.as_secs_f64()).unwrap_or(0.0);
        jittered.max(floor).ceil() as i64
    }

    /// The scheduler: runs until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        // Every account with tokens starts due (spread over the first
        // interval so a restart does not hit the providers all at once).
        if let Ok(accounts) = self.db.all_accounts() {
            let interval = self.config.sync.interval.as_secs().max(1) as i64;
            let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
            for a in accounts {
                if a.tokens.is_some() && a.status != AccountStatus::AuthorizationExpired {
                    let at = a
                        .next_sync
                        .unwrap_or(0)
                        .min(now() + rand::thread_rng().gen_range(0..interval));
                    due.insert(a.id, at);
                }
            }
        }
        tokio::pin!(shutdown);
        tracing::debug!("sync scheduler started");
        loop {
            let t = now();
            // Local changes waiting to go upstream make their account due
            // at once (whichever path queued them: API, CalDAV, push).
            if let Ok(heads) = self.db.outbox_heads() {
                for h in heads.into_iter().filter(|h| h.next_attempt <= t) {
                    self.schedule(&h.account, t);
                }
            }
            let ready: Vec<AccountId> = {
                let due = self.due.lock().unwrap_or_else(|p| p.into_inner());
                let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                due.iter()
                    .filter(|(id, at)| **at <= t && !running.contains(*id))
                    .map(|(id, _)| id.clone())
                    .collect()
            };
            if !ready.is_empty() {
                tracing::debug!(ready = ready.len(), "accounts due");
            }
            for id in ready {
                let Ok(permit) = self.limit.clone().try_acquire_owned() else {
                    break;
                };
                {
                    let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
                    let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                    let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
                    due.remove(&id);
                    running.insert(id.clone());
                    runs.entry(id.clone()).or_default().0 += 1;
                }
                let me = self.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let span = tracing::info_span!("sync", account = %id);
                    tracing::Instrument::instrument(me.run_account(&id), span).await;
                    {
                        let mut running = me.running.lock().unwrap_or_else(|p| p.into_inner());
                        let mut runs = me.runs.lock().unwrap_or_else(|p| p.into_inner());
                        running.remove(&id);
                        runs.entry(id.clone()).or_default().1 += 1;
                    }
                    me.wake.notify_one();
                });
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    fn set_status(&self, id: &AccountId, f: impl FnMut(&mut Account)) {
        if let Err(e) = self.db.modify_account(id, f) {
            if !matches!(e, DbError::NotFound) {
                tracing::warn!(account = %id, error = %e, "cannot update account status");
            }
        }
    }

    /// One run of one account. Never panics, never returns an error: the
    /// outcome is the account's status and its next due time.
    pub async fn run_account(self: &Arc<Self>, id: &AccountId) {
        let Ok(Some(account)) = self.db.account(id) else {
            return;
        };
        tracing::debug!(status = ?account.status, "sync run starts");
        if account.tokens.is_none() || account.status == AccountStatus::AuthorizationExpired {
            return;
        }
        let Some(clients) = self.clients(account.provider) else {
            self.set_status(id, |a| {
                a.status = AccountStatus::Error;
                a.error = Some(format!(
                    "{} is not configured on this server",
                    a.provider.as_str()
                ));
            });
            return;
        };
        let calendars: Vec<Calendar> = match self.db.calendars_of_account(&account) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot read calendars");
                self.schedule(id, now() + self.backoff(account.failures, None));
                return;
            }
        };
        let total = calendars.len() as u32;
        self.set_status(id, |a| {
            a.status = AccountStatus::Syncing;
            a.progress = Some(SyncProgress {
                calendars_total: total,
                ..SyncProgress::default()
            });
        });
        let started = std::time::Instant::now();
        let mut skipped = Vec::new();
        let result = self
            .run_calendars(&account, clients, &calendars, &mut skipped)
            .await;
        skipped.truncate(MAX_SKIPPED);
        let provider = match account.provider {
            Provider::Google => "Google",
            Provider::Microsoft => "Microsoft",
        };
        match result {
            Ok(()) => {
                let next = now() + self.jittered_interval();
                tracing::info!(
                    ms = started.elapsed().as_millis() as u64,
                    calendars = total,
                    "sync done"
                );
                self.set_status(id, |a| {
                    a.status = AccountStatus::Ok;
                    a.error = None;
                    a.last_sync = Some(now());
                    a.next_sync = Some(next);
                    a.progress = None;
                    a.failures = 0;
                    a.skipped = skipped.clone();
                });
                self.schedule(id, next);
            }
            Err(RunError::Token(tokens::TokenError::Expired(msg))) => {
                self.set_status(id, |a| {
                    a.status = AccountStatus::AuthorizationExpired;
                    a.error = Some(msg.clone());
                    a.next_sync = None;
                    a.progress = None;
                });
            }
            Err(e) => {
                let failures = account.failures + 1;
                let (status, floor, msg) = match &e {
                    RunError::Upstream(UpstreamError::RateLimited { retry_after }) => (
                        AccountStatus::RateLimited,
                        *retry_after,
                        format!("{provider} asked calbridge to slow down; syncing resumes by itself"),
                    ),
                    RunError::Upstream(UpstreamError::Unauthorized) => (
                        AccountStatus::Error,
                        None,
                        format!("{provider} refused calbridge's access token; retrying, reconnect the account if this persists"),
                    ),
                    RunError::Upstream(u) => (
                        AccountStatus::Error,
                        u.retry_after(),
                        format!("{provider} could not be reached or answered wrongly ({u}); syncing resumes by itself"),
                    ),
                    RunError::Token(t) => (
                        AccountStatus::Error,
                        None,
                        format!("could not renew access to {provider} ({t}); syncing resumes by itself"),
                    ),
                    RunError::Store(s) => (AccountStatus::Error, None, format!("calbridge could not store the events ({s})")),
                };
                let next = now() + self.backoff(failures - 1, floor);
                tracing::warn!(error = ?e, next_in_s = next - now(), "sync failed");
                self.set_status(id, |a| {
                    a.status = status;
                    a.error = Some(msg.clone());
                    a.next_sync = Some(next);
                    a.failures = failures;
                    a.skipped = skipped.clone();
                });
                self.schedule(id, next);
            }
        }
    }

    async fn run_calendars(
        &self,
        account: &Account,
        clients: &ProviderClients,
        calendars: &[Calendar],
        skipped: &mut Vec<SkippedItem>,
    ) -> Result<(), RunError> {
        let mut token =
            tokens::access_token(&self.db, &self.secrets, &clients.oauth, account, false)
                .await
                .map_err(RunError::Token)?;
        let mut refreshed = false;
        // Local changes go up first, so the pull that follows sees them.
        loop {
            match self.drain_outbox(account, clients, &token, skipped).await {
                Err(RunError::Upstream(UpstreamError::Unauthorized)) if !refreshed => {
                    refreshed = true;
                    let fresh = self.db.account(&account.id)?.ok_or(DbError::NotFound)?;
                    token =
                        tokens::access_token(&self.db, &self.secrets, &clients.oauth, &fresh, true)
                            .await
                            .map_err(RunError::Token)?;
                }
                other => break other?,
            }
        }
        for (i, cal) in calendars.iter().enumerate() {
            let CalendarSource::Mirrored { remote_id, .. } = &cal.source else {
                continue;
            };
            loop {
                match self
                    .sync_calendar(account, clients, cal, remote_id, &token, skipped)
                    .await
                {
                    Ok(()) => break,
                    Err(RunError::Upstream(UpstreamError::Unauthorized)) if !refreshed => {
                        // One refresh, then retry the calendar.
                        refreshed = true;
                        let fresh = self.db.account(&account.id)?.ok_or(DbError::NotFound)?;
                        token = tokens::access_token(
                            &self.db,
                            &self.secrets,
                            &clients.oauth,
                            &fresh,
                            true,
                        )
                        .await
                        .map_err(RunError::Token)?;
                    }
                    Err(RunError::Upstream(UpstreamError::NotFound)) => {
                        skipped.push(SkippedItem {
                            calendar: cal.name.clone(),
                            remote_id: remote_id.clone(),
                            reason: "the calendar no longer exists upstream".into(),
                        });
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            self.set_status(&account.id, |a| {
                if let Some(p) = a.progress.as_mut() {
                    p.calendars_done = i as u32 + 1;
                }
            });
        }
        Ok(())
    }

    /// Write the account's pending changes upstream, oldest first. A
    /// transient failure stops the drain (order is kept) and fails the run
    /// with its backoff; a refusal is rolled back and named.
    async fn drain_outbox(
        &self,
        account: &Account,
        clients: &ProviderClients,
        token: &str,
        skipped: &mut Vec<SkippedItem>,
    ) -> Result<(), RunError> {
        let entries = self.db.outbox_of(&account.id)?;
        let t = now();
        for mut e in entries {
            if e.next_attempt > t {
                break;
            }
            let step = self.push_entry(clients, token, &mut e).await?;
            match step {
                outbox::Step::Done => {}
                outbox::Step::Refused(reason) => {
                    tracing::warn!(event = %e.event, %reason, "upstream refused a write; rolled back");
                    let db = self.db.clone();
                    let entry = e.clone();
                    tokio::task::spawn_blocking(move || -> Result<(), DbError> {
                        outbox::roll_back(&db, &entry)?;
                        db.commit_rows(db.outbox_done_rows(&entry)?)
                    })
                    .await
                    .map_err(|e| {
                        RunError::Store(DbError::Store(crate::store::StoreError::Backend(
                            e.to_string(),
                        )))
                    })??;
                    skipped.push(SkippedItem {
                        calendar: e.target.to_string(),
                        remote_id: e.event.to_string(),
                        reason: format!(
                            "the provider refused a change, so it was undone here: {reason}"
                        ),
                    });
                }
                outbox::Step::Retry(err) => {
                    e.attempts += 1;
                    let wait = self.backoff(e.attempts.saturating_sub(1), err.retry_after());
                    e.next_attempt = now() + wait;
                    e.last_error = Some(err.to_string());
                    self.db.outbox_update(&e)?;
                    return Err(RunError::Upstream(err));
                }
            }
        }
        Ok(())
    }

    /// One outbox entry: write it upstream and record the result.
    async fn push_entry(
        &self,
        clients: &ProviderClients,
        token: &str,
        e: &mut crate::model::outbox::OutboxEntry,
    ) -> Result<outbox::Step, RunError> {
        use crate::model::outbox::{ConflictRecord, Kept, OutboxOp};
        let done =
            |db: &Db, e: &crate::model::outbox::OutboxEntry| -> Result<outbox::Step, RunError> {
                db.commit_rows(db.outbox_done_rows(e)?)?;
                Ok(outbox::Step::Done)
            };
        let Some(target) = self.db.calendar(&e.target)? else {
            return done(&self.db, e);
        };
        let CalendarSource::Mirrored { remote_id, .. } = &target.source else {
            return done(&self.db, e);
        };
        if target.direction != Direction::Bidirectional {
            return Ok(outbox::Step::Refused(format!(
                "{} is read-only now",
                target.name
            )));
        }
        let zone = target.timezone.clone();
        match e.op {
            OutboxOp::Delete => {
                let Some(remote) = e.remote.clone() else {
                    // Never written upstream (or not known to be): a Google
                    // insert by this key would have a known id.
                    if let ProviderApi::Google(_) = clients.api {
                        let id = crate::upstream::google::write::event_id_for(&e.key);
                        match clients.api.delete_series(token, remote_id, &id, None).await {
                            Ok(()) => {}
                            Err(WriteError::Upstream(u))
                                if u.is_transient() || matches!(u, UpstreamError::Unauthorized) =>
                            {
                                return Ok(outbox::Step::Retry(u));
                            }
                            Err(_) => {}
                        }
                    }
                    return done(&self.db, e);
                };
                match clients
                    .api
                    .delete_series(token, remote_id, &remote.id, remote.etag.as_deref())
                    .await
                {
                    Ok(()) => done(&self.db, e),
                    Err(WriteError::Upstream(UpstreamError::PreconditionFailed)) => {
                        // Changed upstream after the last sync: the change
                        // wins over the deletion; the pull restores it.
                        let lost = None;
                        let rec = ConflictRecord {
                            at: now(),
                            calendar: e.target.clone(),
                            href: e.href.clone(),
                            uid: String::new(),
                            kept: Kept::Remote,
                            reason: "deleted here while changed upstream: the change was kept and the event restored".into(),
                            lost,
                            local_modified: Some(e.created),
                            remote_modified: None,
                        };
                        let mut b = self.db.outbox_done_rows(e)?;
                        b.extend(Db::conflict_row(&e.account, &rec));
                        self.db.commit_rows(b)?;
                        Ok(outbox::Step::Done)
                    }
                    Err(WriteError::Upstream(u))
                        if u.is_transient() || matches!(u, UpstreamError::Unauthorized) =>
                    {
                        if matches!(u, UpstreamError::Unauthorized) {
                            return Err(RunError::Upstream(u));
                        }
                        Ok(outbox::Step::Retry(u))
                    }
                    Err(err) => Ok(outbox::Step::Refused(err.to_string())),
                }
            }
            OutboxOp::Upsert => {
                let Some(meta) = self.db.event(&e.source, &e.href)? else {
                    return done(&self.db, e);
                };
                if meta.id != e.event {
                    return done(&self.db, e);
                }
                let Some(body) = self.db.event_body(&e.source, &e.href)? else {
                    return done(&self.db, e);
                };
                let Ok(cal) = crate::ics::parse(&body) else {
                    return Ok(outbox::Step::Refused(
                        "the stored event cannot be read".into(),
                    ));
                };
                let marker = outbox::marker(&meta);
                let mut existing = meta.remote.as_ref().map(|r| WriteRef {
                    id: r.id.clone(),
                    etag: r.etag.clone(),
                });
                let mut recreated = false;
                let mut retried_conflict = false;
                loop {
                    let result = clients
                        .api
                        .write_series(
                            token,
                            remote_id,
                            existing.as_ref(),
                            &cal,
                            zone.as_deref(),
                            &marker,
                            &e.key,
                        )
                        .await;
                    match result {
                        Ok(state) => {
                            let remote = RemoteRef {
                                id: state.id.clone(),
                                etag: Some(state.etag.clone()),
                                updated: state.updated,
                            };
                            let mut extra = self.db.outbox_done_rows(e)?;
                            // Keep the provider's JSON of the series (the
                            // master, and Google's exceptions) so later
                            // partial changes compose with it, and so the
                            // write, coming back, is known as unchanged.
                            // Under the target calendar: a pull of it sees
                            // the series (a twin when the source differs).
                            let json = serde_json::to_vec(&state.json).unwrap_or_default();
                            extra.extend(self.db.remote_items_removal(&e.target, &state.id)?);
                            extra.extend(Db::remote_item_row(
                                &e.target, &state.id, &state.id, &json,
                            ));
                            extra.extend(Db::item_owner_row(&e.target, &state.id, &state.id));
                            for x in state.exceptions.iter().flatten() {
                                let Some(item) = x["id"].as_str().filter(|i| *i != state.id) else {
                                    continue;
                                };
                                let json = serde_json::to_vec(x).unwrap_or_default();
                                extra
                                    .extend(Db::remote_item_row(&e.target, &state.id, item, &json));
                                extra.extend(Db::item_owner_row(&e.target, item, &state.id));
                            }
                            match self.db.set_remote(&e.source, &e.href, remote, extra) {
                                Ok(_) | Err(DbError::NotFound) => {}
                                Err(err) => return Err(err.into()),
                            }
                            return Ok(outbox::Step::Done);
                        }
                        Err(WriteError::Unexpressible(reason)) => {
                            return Ok(outbox::Step::Refused(reason))
                        }
                        Err(WriteError::Upstream(UpstreamError::PreconditionFailed))
                            if !retried_conflict =>
                        {
                            retried_conflict = true;
                            let Some(ex) = existing.clone() else {
                                return Ok(outbox::Step::Refused(
                                    "the provider refused the write".into(),
                                ));
                            };
                            match clients.api.fetch_master(token, remote_id, &ex.id).await? {
                                None => {
                                    existing = None;
                                }
                                Some((etag, updated, json)) => {
                                    let remote_newer = updated.unwrap_or(0) > meta.last_modified;
                                    let lost = serde_json::to_string_pretty(&json).ok();
                                    if remote_newer {
                                        let rec = ConflictRecord {
                                            at: now(),
                                            calendar: e.target.clone(),
                                            href: meta.href.clone(),
                                            uid: meta.uid.clone(),
                                            kept: Kept::Remote,
                                            reason: "changed on both sides: the upstream change is newer and was kept".into(),
                                            lost: Some(String::from_utf8_lossy(&body).into_owned()),
                                            local_modified: Some(meta.last_modified),
                                            remote_modified: updated,
                                        };
                                        let mut b = self.db.outbox_done_rows(e)?;
                                        b.extend(Db::conflict_row(&e.account, &rec));
                                        self.db.commit_rows(b)?;
                                        return Ok(outbox::Step::Done);
                                    }
                                    let rec = ConflictRecord {
                                        at: now(),
                                        calendar: e.target.clone(),
                                        href: meta.href.clone(),
                                        uid: meta.uid.clone(),
                                        kept: Kept::Local,
                                        reason: "changed on both sides: the local change is newer and was kept".into(),
                                        lost,
                                        local_modified: Some(meta.last_modified),
                                        remote_modified: updated,
                                    };
                                    self.db.commit_rows(Db::conflict_row(&e.account, &rec))?;
                                    existing = Some(WriteRef { id: ex.id, etag });
                                }
                            }
                        }
                        Err(WriteError::Upstream(UpstreamError::NotFound))
                        | Err(WriteError::Upstream(UpstreamError::Gone(_)))
                            if existing.is_some() && !recreated =>
                        {
                            // Deleted upstream while changed here: the change
                            // wins, written back as a new event (a new key, so
                            // it is not mistaken for the deleted one).
                            recreated = true;
                            existing = None;
                            e.key = format!(
                                "{}:recreated:{}",
                                e.key,
                                crate::store::db::outbox::next_seq()
                            );
                            self.db.outbox_update(e)?;
                        }
                        Err(WriteError::Upstream(u))
                            if matches!(u, UpstreamError::Unauthorized) =>
                        {
                            return Err(RunError::Upstream(u));
                        }
                        Err(WriteError::Upstream(u)) if u.is_transient() => {
                            return Ok(outbox::Step::Retry(u))
                        }
                        Err(err) => return Ok(outbox::Step::Refused(err.to_string())),
                    }
                }
            }
        }
    }

    /// Graph names instances, not series: fetch every series a page
    /// touched (or whose instance it removed) whole, at most
    /// [`graph::MAILBOX_CONCURRENCY`] requests at a time.
    async fn fetch_touched_series(
        &self,
        api: &ProviderApi,
        token: &str,
        cal: &Calendar,
        page: &mut Page,
        window: Timestamp,
    ) -> Result<(), RunError> {
        let ProviderApi::Graph(g) = api else {
            return Ok(());
        };
        let mut wanted: Vec<String> = Vec::new();
        for ch in &page.changes {
            let series = match ch {
                RemoteChange::SeriesTouched { series } => Some(series.clone()),
                RemoteChange::RemoveUnknown { item } => {
                    if self.db.href_for_remote(&cal.id, item)?.is_some() {
                        None
                    } else {
                        self.db.series_of_item(&cal.id, item)?
                    }
                }
                _ => None,
            };
            if let Some(s) = series {
                if !wanted.contains(&s) {
                    wanted.push(s);
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let start = page.cursor.window_start.unwrap_or(window);
        use futures_util::stream::{self, StreamExt};
        let fetched: Vec<(String, Result<SeriesItems, UpstreamError>)> = stream::iter(wanted)
            .map(|s| async move {
                let r = g.fetch_series(token, &s, start).await;
                (s, r)
            })
            .buffer_unordered(graph::MAILBOX_CONCURRENCY)
            .collect()
            .await;
        for (series, r) in fetched {
            page.changes
                .push(RemoteChange::ReplaceSeries { series, items: r? });
        }
        Ok(())
    }

    async fn sync_calendar(
        &self,
        account: &Account,
        clients: &ProviderClients,
        cal: &Calendar,
        remote_id: &str,
        token: &str,
        skipped: &mut Vec<SkippedItem>,
    ) -> Result<(), RunError> {
        let mut cursor: Cursor = self.db.sync_state(&cal.id)?.unwrap_or_default();
        let window = now() - self.config.sync.past_window.as_secs() as i64;
        let mut fresh_pass = cursor.token.is_none() && cursor.page.is_none();
        let mut resynced = false;
        let mut seen = HashSet::new();
        loop {
            let page = match clients
                .api
                .pull_page(token, remote_id, &cursor, window)
                .await
            {
                Ok(p) => p,
                Err(e) if is_resync(&e) && !resynced => {
                    tracing::info!(calendar = %cal.id, "sync state expired upstream; full resync");
                    resynced = true;
                    fresh_pass = true;
                    seen.clear();
                    cursor = Cursor::default();
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let mut page = page;
            self.fetch_touched_series(&clients.api, token, cal, &mut page, window)
                .await?;
            let zone = cal.timezone.clone();
            let map_fn = clients.api.mapper();
            let db = self.db.clone();
            let c = cal.clone();
            let next_cursor = page.cursor.clone();
            let changes = page.changes;
            let mut seen_local = std::mem::take(&mut seen);
            // Mapping and the page commit are CPU and disk work: keep them
            // off the async threads.
            let (outcome, seen_back, sk) = tokio::task::spawn_blocking(move || {
                let mapper = |series: &str, items: &[(String, Vec<u8>)]| {
                    map_fn(series, items, zone.as_deref())
                };
                let mut sk = Vec::new();
                let r = pull::apply_page(
                    &db,
                    &c,
                    &changes,
                    &next_cursor,
                    &mapper,
                    &mut seen_local,
                    &mut sk,
                );
                (r, seen_local, sk)
            })
            .await
            .map_err(|e| {
                RunError::Store(DbError::Store(crate::store::StoreError::Backend(
                    e.to_string(),
                )))
            })?;
            seen = seen_back;
            skipped.extend(sk);
            let outcome = outcome?;
            self.set_status(&account.id, |a| {
                if let Some(p) = a.progress.as_mut() {
                    p.pages += 1;
                    p.events += outcome.stored;
                }
            });
            cursor = page.cursor;
            if page.done {
                if fresh_pass {
                    let removed = pull::sweep_orphans(&self.db, cal, &seen)?;
                    if removed > 0 {
                        tracing::info!(calendar = %cal.id, removed, "removed events deleted upstream");
                    }
                }
                return Ok(());
            }
        }
    }
}
