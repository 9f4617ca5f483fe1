//! The emulator's in-memory world: users, OAuth clients and grants,
//! calendars of both providers, sync/delta state, faults and the request
//! log — and the public control surface over it.
//!
//! Everything lives in one [`State`] behind one `std::sync::Mutex`: every
//! operation is short and never awaits while holding it, so a blocking lock
//! is simpler than an async one and cannot deadlock across `.await`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::HeaderMap;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::faults::{FaultBook, FaultRule};
use super::google::model::GCal;
use super::graph::model::MCal;
use super::ids;

/// Which provider a user, client, token or request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Google,
    Microsoft,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Google => "google",
            Provider::Microsoft => "microsoft",
        }
    }
}

/// A user is identified by provider and lower-cased email.
pub(crate) type UserKey = (Provider, String);

/// The Google OAuth client registered by default.
pub const DEFAULT_GOOGLE_CLIENT_ID: &str = "calbridge-emulator.apps.googleusercontent.com";
/// The secret of [`DEFAULT_GOOGLE_CLIENT_ID`].
pub const DEFAULT_GOOGLE_CLIENT_SECRET: &str = "emulator-google-secret";
/// The Microsoft application registered by default.
pub const DEFAULT_MICROSOFT_CLIENT_ID: &str = "5e7a9d3c-0b1f-4c2e-9a6d-ca1b0e0c0001";
/// The secret of [`DEFAULT_MICROSOFT_CLIENT_ID`].
pub const DEFAULT_MICROSOFT_CLIENT_SECRET: &str = "emulator-microsoft-secret";

/// An OAuth client (Google "OAuth client", Microsoft "app registration").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthClient {
    pub provider: Provider,
    pub client_id: String,
    /// When set, the token endpoint requires it (form field or HTTP Basic).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Allowed redirect URIs; empty allows any.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
}

/// Start-up settings. Everything here can also be changed at run time.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Lifetime of access tokens (`expires_in`); both providers use 3599 s.
    pub access_token_ttl: Duration,
    /// Lifetime of authorization codes.
    pub code_ttl: Duration,
    /// Lifetime of refresh tokens; `None` never expires them by age
    /// (Google "Testing" apps would be 7 days, Microsoft 90 days).
    pub refresh_token_ttl: Option<Duration>,
    /// Seed of the RNG that decides probabilistic faults.
    pub fault_seed: u64,
    /// The base URL written into links (`@odata.nextLink`, `htmlLink`);
    /// when `None` it is taken from each request's `Host` header.
    pub base_url: Option<String>,
    /// Concurrent requests per app and mailbox Graph allows (4).
    pub graph_mailbox_concurrency: usize,
    /// Delta tokens kept per Graph calendar before the oldest expire.
    pub delta_tokens_kept: usize,
    /// OAuth clients known at start.
    pub clients: Vec<OAuthClient>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            access_token_ttl: Duration::seconds(3599),
            code_ttl: Duration::minutes(10),
            refresh_token_ttl: None,
            fault_seed: 0,
            base_url: None,
            graph_mailbox_concurrency: 4,
            delta_tokens_kept: 100,
            clients: vec![
                OAuthClient {
                    provider: Provider::Google,
                    client_id: DEFAULT_GOOGLE_CLIENT_ID.into(),
                    client_secret: Some(DEFAULT_GOOGLE_CLIENT_SECRET.into()),
                    redirect_uris: Vec::new(),
                },
                OAuthClient {
                    provider: Provider::Microsoft,
                    client_id: DEFAULT_MICROSOFT_CLIENT_ID.into(),
                    client_secret: Some(DEFAULT_MICROSOFT_CLIENT_SECRET.into()),
                    redirect_uris: Vec::new(),
                },
            ],
        }
    }
}

/// A user of either provider.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub display_name: String,
    /// Google's numeric id or Graph's object id.
    pub id: String,
    /// Calendar ids; the first is the primary (Google) / default (Graph).
    pub calendars: Vec<String>,
    /// Clients this user already consented to (Google issues a refresh
    /// token on first consent only, unless `prompt=consent`).
    pub consented: HashSet<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    pub provider: Provider,
    pub client_id: String,
    pub redirect_uri: String,
    pub user: UserKey,
    pub scopes: Vec<String>,
    pub challenge: String,
    pub issued: DateTime<Utc>,
    pub used: bool,
    pub issue_refresh: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantState {
    Active,
    Expired,
    Revoked,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshGrant {
    pub provider: Provider,
    pub client_id: String,
    pub user: UserKey,
    pub scopes: Vec<String>,
    pub issued: DateTime<Utc>,
    pub state: GrantState,
}

#[derive(Debug, Clone)]
pub(crate) struct AccessGrant {
    pub provider: Provider,
    pub client_id: String,
    pub user: UserKey,
    pub scopes: Vec<String>,
    pub expires: DateTime<Utc>,
    pub revoked: bool,
    /// The refresh token this access token came with or from.
    pub refresh: Option<String>,
}

/// Google sync token state: the calendar and the change sequence it saw.
#[derive(Debug, Clone)]
pub(crate) struct GSyncToken {
    pub calendar: String,
    pub seq: u64,
    pub epoch: u64,
}

/// A Google list page cursor: the rest of a result fixed at its first page.
#[derive(Debug, Clone)]
pub(crate) struct GPage {
    pub calendar: String,
    pub items: Vec<Value>,
    pub page_size: usize,
    pub next_sync: Option<String>,
}

/// Graph delta state: the window of a round and what the client has.
#[derive(Debug, Clone)]
pub(crate) struct DeltaState {
    pub calendar: String,
    pub user: UserKey,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Instance id → changeKey the client holds after this round.
    pub snapshot: HashMap<String, String>,
    pub seq: u64,
    pub epoch: u64,
}

/// One page source of a Graph delta round.
#[derive(Debug, Clone)]
pub(crate) struct MPage {
    pub calendar: String,
    pub user: UserKey,
    pub items: Vec<super::graph::DeltaItem>,
    pub page_size: usize,
    pub delta_token: String,
    pub link_path: String,
    pub epoch: u64,
}

/// One request the emulator answered (the control API's request log).
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub method: String,
    /// The route template, e.g. `/calendar/v3/calendars/{calendarId}/events`.
    pub route: String,
    pub path: String,
    pub provider: Option<Provider>,
    pub user: Option<String>,
    pub status: u16,
    pub fault: Option<String>,
}

/// Bounded request log plus unbounded per-route counters.
#[derive(Debug, Default)]
pub(crate) struct RequestBook {
    pub counts: HashMap<String, u64>,
    pub log: VecDeque<RequestRecord>,
}

const LOG_KEEP: usize = 20_000;
const PAGES_KEEP: usize = 10_000;

/// The whole in-memory world.
pub(crate) struct State {
    pub config: EmulatorConfig,
    pub clock_offset: Duration,
    pub seq: u64,
    pub last_etag: u64,
    pub users: HashMap<UserKey, User>,
    pub clients: HashMap<(Provider, String), OAuthClient>,
    pub codes: HashMap<String, AuthCode>,
    pub access: HashMap<String, AccessGrant>,
    pub refresh: HashMap<String, RefreshGrant>,
    pub gcals: HashMap<String, GCal>,
    pub g_sync: HashMap<String, GSyncToken>,
    pub g_sync_index: HashMap<(String, u64, u64), String>,
    pub g_pages: HashMap<String, GPage>,
    pub g_pages_order: VecDeque<String>,
    pub mcals: HashMap<String, MCal>,
    pub m_delta: HashMap<String, DeltaState>,
    pub m_pages: HashMap<String, MPage>,
    pub m_pages_order: VecDeque<String>,
    pub faults: FaultBook,
    pub requests: RequestBook,
    pub in_flight: HashMap<(String, String), usize>,
}

impl State {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.clock_offset
    }

    /// The next change sequence number (every write takes one).
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A strictly increasing etag number derived from the clock.
    pub fn next_etag(&mut self) -> u64 {
        let micros = self.now().timestamp_micros().max(0) as u64;
        self.last_etag = micros.max(self.last_etag + 1);
        self.last_etag
    }

    pub fn user(&self, key: &UserKey) -> Option<&User> {
        self.users.get(key)
    }

    pub fn remember_google_page(&mut self, token: String, page: GPage) {
        self.g_pages.insert(token.clone(), page);
        self.g_pages_order.push_back(token);
        while self.g_pages_order.len() > PAGES_KEEP {
            if let Some(old) = self.g_pages_order.pop_front() {
                self.g_pages.remove(&old);
            }
        }
    }

    pub fn remember_graph_page(&mut self, token: String, page: MPage) {
        self.m_pages.insert(token.clone(), page);
        self.m_pages_order.push_back(token);
        while self.m_pages_order.len() > PAGES_KEEP {
            if let Some(old) = self.m_pages_order.pop_front() {
                self.m_pages.remove(&old);
            }
        }
    }

    pub fn record(&mut self, rec: RequestRecord) {
        *self
            .requests
            .counts
            .entry(format!("{} {}", rec.method, rec.route))
            .or_insert(0) += 1;
        if rec.path != rec.route {
            *self
                .requests
                .counts
                .entry(format!("{} {}", rec.method, rec.path))
                .or_insert(0) += 1;
        }
        self.requests.log.push_back(rec);
        while self.requests.log.len() > LOG_KEEP {
            self.requests.log.pop_front();
        }
    }

    /// Creates (or returns) a user with a primary/default calendar.
    pub fn ensure_user(
        &mut self,
        provider: Provider,
        email: &str,
        display_name: Option<&str>,
        time_zone: Option<&str>,
    ) -> UserKey {
        let key: UserKey = (provider, email.trim().to_lowercase());
        if self.users.contains_key(&key) {
            return key;
        }
        let name = display_name
            .map(str::to_string)
            .unwrap_or_else(|| default_display_name(&key.1));
        let id = match provider {
            Provider::Google => {
                let n: u128 = rand::random::<u64>() as u128 * 1000 + 100_000_000_000_000_000;
                n.to_string()
            }
            Provider::Microsoft => ids::guid(),
        };
        self.users.insert(
            key.clone(),
            User {
                display_name: name,
                id,
                calendars: Vec::new(),
                consented: HashSet::new(),
            },
        );
        let default_name = match provider {
            Provider::Google => key.1.clone(),
            Provider::Microsoft => "Calendar".to_string(),
        };
        self.add_calendar(&key, &default_name, time_zone, true);
        key
    }

    /// Adds a calendar to a user; returns its id.
    pub fn add_calendar(
        &mut self,
        user: &UserKey,
        name: &str,
        time_zone: Option<&str>,
        primary: bool,
    ) -> String {
        let seq = self.next_seq();
        let etag = self.next_etag();
        let now = self.now();
        let id = match user.0 {
            Provider::Google => {
                let id = if primary {
                    user.1.clone()
                } else {
                    format!(
                        "{}@group.calendar.google.com",
                        ids::opaque(20).to_lowercase()
                    )
                };
                let colors = ["#9fe1e7", "#7bd148", "#ffad46", "#a4bdfc", "#f691b2"];
                let n = self.users.get(user).map(|u| u.calendars.len()).unwrap_or(0);
                self.gcals.insert(
                    id.clone(),
                    GCal {
                        id: id.clone(),
                        owner: user.clone(),
                        summary: name.to_string(),
                        description: None,
                        time_zone: time_zone.unwrap_or("UTC").to_string(),
                        color_id: (14 + n % 5).to_string(),
                        background_color: colors[n % 5].to_string(),
                        foreground_color: "#000000".into(),
                        primary,
                        etag_num: etag,
                        list_seq: seq,
                        events: HashMap::new(),
                        sync_epoch: 0,
                        change_seq: seq,
                        last_change: now,
                    },
                );
                id
            }
            Provider::Microsoft => {
                let id = ids::graph_item_id();
                self.mcals.insert(
                    id.clone(),
                    MCal {
                        id: id.clone(),
                        owner: user.clone(),
                        name: name.to_string(),
                        color: "auto".into(),
                        hex_color: String::new(),
                        is_default: primary,
                        version: 1,
                        events: HashMap::new(),
                        delta_epoch: 0,
                        delta_tokens: VecDeque::new(),
                    },
                );
                id
            }
        };
        if let Some(u) = self.users.get_mut(user) {
            u.calendars.push(id.clone());
        }
        id
    }

    /// Issues an access token (and optionally a refresh token).
    pub fn issue_tokens(
        &mut self,
        provider: Provider,
        client_id: &str,
        user: &UserKey,
        scopes: &[String],
        with_refresh: bool,
    ) -> IssuedTokens {
        let now = self.now();
        let refresh_token = with_refresh.then(|| {
            let t = match provider {
                Provider::Google => format!("1//0{}", ids::opaque(64)),
                Provider::Microsoft => format!("M.C5{}", ids::opaque(96)),
            };
            self.refresh.insert(
                t.clone(),
                RefreshGrant {
                    provider,
                    client_id: client_id.to_string(),
                    user: user.clone(),
                    scopes: scopes.to_vec(),
                    issued: now,
                    state: GrantState::Active,
                },
            );
            t
        });
        let access_token =
            self.issue_access(provider, client_id, user, scopes, refresh_token.clone());
        IssuedTokens {
            access_token,
            refresh_token,
            expires_in: self.config.access_token_ttl.num_seconds(),
        }
    }

    pub fn issue_access(
        &mut self,
        provider: Provider,
        client_id: &str,
        user: &UserKey,
        scopes: &[String],
        refresh: Option<String>,
    ) -> String {
        let token = match provider {
            Provider::Google => format!("ya29.a0{}", ids::opaque(96)),
            Provider::Microsoft => format!("EwB4A{}", ids::opaque(128)),
        };
        let expires = self.now() + self.config.access_token_ttl;
        self.access.insert(
            token.clone(),
            AccessGrant {
                provider,
                client_id: client_id.to_string(),
                user: user.clone(),
                scopes: scopes.to_vec(),
                expires,
                revoked: false,
                refresh,
            },
        );
        token
    }

    /// The grant behind a request's bearer token.
    pub fn authenticate(
        &self,
        provider: Provider,
        headers: &HeaderMap,
    ) -> Result<Grant, AuthFailure> {
        let token = bearer(headers).ok_or(AuthFailure::Missing)?;
        let g = self.access.get(token).ok_or(AuthFailure::Unknown)?;
        if g.provider != provider || g.revoked {
            return Err(AuthFailure::Unknown);
        }
        if g.expires <= self.now() {
            return Err(AuthFailure::Expired);
        }
        if !self.users.contains_key(&g.user) {
            return Err(AuthFailure::Unknown);
        }
        Ok(Grant {
            user: g.user.clone(),
            scopes: g.scopes.clone(),
        })
    }

    /// Users with this email under either provider (or all when `None`).
    pub fn users_matching(&self, email: Option<&str>) -> Vec<UserKey> {
        let email = email.map(|e| e.trim().to_lowercase());
        self.users
            .keys()
            .filter(|k| email.as_deref().is_none_or(|e| k.1 == e))
            .cloned()
            .collect()
    }

    /// Invalidates every Google sync token and Graph delta token of the
    /// given users' calendars.
    pub fn invalidate_sync_state(&mut self, users: &[UserKey]) {
        for cal in self.gcals.values_mut() {
            if users.contains(&cal.owner) {
                cal.sync_epoch += 1;
            }
        }
        for cal in self.mcals.values_mut() {
            if users.contains(&cal.owner) {
                cal.delta_epoch += 1;
                for t in cal.delta_tokens.drain(..) {
                    self.m_delta.remove(&t);
                }
            }
        }
        // Calendar-list tokens are keyed by user, not calendar: they stay.
        let gcals = &self.gcals;
        self.g_sync.retain(|_, t| {
            gcals
                .get(&t.calendar)
                .is_none_or(|c| c.sync_epoch == t.epoch)
        });
        self.g_sync_index
            .retain(|(cal, _, epoch), _| gcals.get(cal).is_none_or(|c| c.sync_epoch == *epoch));
        let mcals = &self.mcals;
        self.m_pages.retain(|_, p| {
            mcals
                .get(&p.calendar)
                .is_some_and(|c| c.delta_epoch == p.epoch)
        });
    }

    pub fn set_refresh_state(&mut self, users: &[UserKey], state: GrantState) {
        for g in self.refresh.values_mut() {
            if users.contains(&g.user) && g.state == GrantState::Active {
                g.state = state;
            }
        }
        if state == GrantState::Revoked {
            for a in self.access.values_mut() {
                if users.contains(&a.user) {
                    a.revoked = true;
                }
            }
        }
    }

    pub fn expire_access(&mut self, users: &[UserKey]) {
        let past = self.now() - Duration::seconds(1);
        for a in self.access.values_mut() {
            if users.contains(&a.user) {
                a.expires = past;
            }
        }
    }

    /// Drops a Graph delta token once too many newer ones exist.
    pub fn remember_delta_token(&mut self, calendar: &str, token: String, state: DeltaState) {
        let keep = self.config.delta_tokens_kept.max(1);
        self.m_delta.insert(token.clone(), state);
        if let Some(cal) = self.mcals.get_mut(calendar) {
            cal.delta_tokens.push_back(token);
            while cal.delta_tokens.len() > keep {
                if let Some(old) = cal.delta_tokens.pop_front() {
                    self.m_delta.remove(&old);
                }
            }
        }
    }
}

fn default_display_name(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    local
        .split(['.', '_', '-'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The token of an `Authorization: Bearer …` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// What an API call is allowed to do.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub user: UserKey,
    pub scopes: Vec<String>,
}

impl Grant {
    /// True when any granted scope ends with one of `names` (scopes are
    /// compared by their last path segment, case-insensitively, so
    /// `https://graph.microsoft.com/Calendars.Read` matches `calendars.read`).
    pub fn has_any(&self, names: &[&str]) -> bool {
        self.scopes.iter().any(|s| {
            let short = s.rsplit('/').next().unwrap_or(s);
            names.iter().any(|n| short.eq_ignore_ascii_case(n))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    Missing,
    Unknown,
    Expired,
}

/// Tokens issued directly by [`Emulator::issue_tokens`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: i64,
}

/// A user as the control API describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserInfo {
    pub provider: Provider,
    pub email: String,
    pub display_name: String,
    pub id: String,
    pub calendars: Vec<CalendarInfo>,
}

/// A calendar as the control API describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CalendarInfo {
    pub id: String,
    pub name: String,
    /// Google primary / Graph default calendar.
    pub primary: bool,
    pub time_zone: Option<String>,
}

/// The emulator: shared state behind an `Arc`, served by [`super::router`].
pub struct Emulator {
    state: Mutex<State>,
}

impl Emulator {
    /// A new, empty emulator.
    pub fn new(config: EmulatorConfig) -> Arc<Emulator> {
        let clients = config
            .clients
            .iter()
            .map(|c| ((c.provider, c.client_id.clone()), c.clone()))
            .collect();
        let seed = config.fault_seed;
        Arc::new(Emulator {
            state: Mutex::new(State {
                config,
                clock_offset: Duration::zero(),
                seq: 0,
                last_etag: 0,
                users: HashMap::new(),
                clients,
                codes: HashMap::new(),
                access: HashMap::new(),
                refresh: HashMap::new(),
                gcals: HashMap::new(),
                g_sync: HashMap::new(),
                g_sync_index: HashMap::new(),
                g_pages: HashMap::new(),
                g_pages_order: VecDeque::new(),
                mcals: HashMap::new(),
                m_delta: HashMap::new(),
                m_pages: HashMap::new(),
                m_pages_order: VecDeque::new(),
                faults: FaultBook::new(seed),
                requests: RequestBook::default(),
                in_flight: HashMap::new(),
            }),
        })
    }

    /// Locks the world. Poisoning is ignored: every mutation leaves the
    /// state consistent before it can panic.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a user (or returns the existing one) with a primary/default
    /// calendar. `time_zone` is the Google primary calendar's zone.
    pub fn create_user(
        &self,
        provider: Provider,
        email: &str,
        display_name: Option<&str>,
        time_zone: Option<&str>,
    ) -> UserInfo {
        let mut st = self.lock();
        let key = st.ensure_user(provider, email, display_name, time_zone);
        user_info(&st, &key).expect("user just created")
    }

    /// Describes a user.
    pub fn user(&self, provider: Provider, email: &str) -> Option<UserInfo> {
        let st = self.lock();
        user_info(&st, &(provider, email.trim().to_lowercase()))
    }

    /// Every user.
    pub fn users(&self) -> Vec<UserInfo> {
        let st = self.lock();
        let mut keys: Vec<&UserKey> = st.users.keys().collect();
        keys.sort();
        keys.into_iter().filter_map(|k| user_info(&st, k)).collect()
    }

    /// Adds a secondary calendar; returns its id.
    pub fn create_calendar(
        &self,
        provider: Provider,
        email: &str,
        name: &str,
        time_zone: Option<&str>,
    ) -> Option<String> {
        let mut st = self.lock();
        let key = (provider, email.trim().to_lowercase());
        st.users.contains_key(&key).then_some(())?;
        Some(st.add_calendar(&key, name, time_zone, false))
    }

    /// Registers (or replaces) an OAuth client.
    pub fn register_client(&self, client: OAuthClient) {
        let mut st = self.lock();
        st.clients
            .insert((client.provider, client.client_id.clone()), client);
    }

    /// Issues tokens for a user without the browser flow (benchmarks, demo).
    pub fn issue_tokens(
        &self,
        provider: Provider,
        email: &str,
        client_id: &str,
        scopes: &[String],
    ) -> Option<IssuedTokens> {
        let mut st = self.lock();
        let key = (provider, email.trim().to_lowercase());
        st.users.contains_key(&key).then_some(())?;
        Some(st.issue_tokens(provider, client_id, &key, scopes, true))
    }

    /// Adds a fault rule; returns its id.
    pub fn add_fault(&self, rule: FaultRule) -> u64 {
        self.lock().faults.add(rule)
    }

    /// Removes one fault rule.
    pub fn remove_fault(&self, id: u64) -> bool {
        self.lock().faults.remove(id)
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Reseeds the RNG behind probabilistic faults.
    pub fn set_fault_seed(&self, seed: u64) {
        self.lock().faults.reseed(seed);
    }

    /// The fault rules with their ids and how often each fired.
    pub fn faults(&self) -> Vec<Value> {
        self.lock().faults.describe()
    }

    /// Invalidates Google sync tokens and Graph delta tokens of the users
    /// with this email (any provider), or of everyone when `None`.
    pub fn invalidate_sync_tokens(&self, email: Option<&str>) {
        let mut st = self.lock();
        let users = st.users_matching(email);
        st.invalidate_sync_state(&users);
    }

    /// Expires the refresh tokens of the users with this email: the next
    /// refresh gets `invalid_grant` (Microsoft: AADSTS70008).
    pub fn expire_refresh_tokens(&self, email: &str) {
        let mut st = self.lock();
        let users = st.users_matching(Some(email));
        st.set_refresh_state(&users, GrantState::Expired);
    }

    /// Revokes the users' grants: refresh tokens fail with `invalid_grant`
    /// (Microsoft: AADSTS50173) and access tokens stop working.
    pub fn revoke_refresh_tokens(&self, email: &str) {
        let mut st = self.lock();
        let users = st.users_matching(Some(email));
        st.set_refresh_state(&users, GrantState::Revoked);
    }

    /// Expires every access token of the users with this email.
    pub fn expire_access_tokens(&self, email: &str) {
        let mut st = self.lock();
        let users = st.users_matching(Some(email));
        st.expire_access(&users);
    }

    /// Sets the lifetime of access tokens issued from now on.
    pub fn set_access_token_ttl(&self, ttl: Duration) {
        self.lock().config.access_token_ttl = ttl;
    }

    /// Moves the emulator's clock forward (token and code expiry).
    pub fn advance_clock(&self, by: Duration) {
        self.lock().clock_offset += by;
    }

    /// How many requests matched `"{METHOD} {route or path}"`, e.g.
    /// `("POST", "/calendar/v3/calendars/{calendarId}/events")`.
    pub fn request_count(&self, method: &str, route_or_path: &str) -> u64 {
        self.lock()
            .requests
            .counts
            .get(&format!(
                "{} {}",
                method.to_ascii_uppercase(),
                route_or_path
            ))
            .copied()
            .unwrap_or(0)
    }

    /// Every counter, keyed `"{METHOD} {route}"` and `"{METHOD} {path}"`.
    pub fn request_counts(&self) -> HashMap<String, u64> {
        self.lock().requests.counts.clone()
    }

    /// The most recent requests (up to 20 000), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.log.iter().cloned().collect()
    }

    /// Forgets the request log and counters.
    pub fn reset_requests(&self) {
        let mut st = self.lock();
        st.requests.counts.clear();
        st.requests.log.clear();
    }
}

pub(crate) fn user_info(st: &State, key: &UserKey) -> Option<UserInfo> {
    let u = st.users.get(key)?;
    let calendars = u
        .calendars
        .iter()
        .filter_map(|id| match key.0 {
            Provider::Google => st.gcals.get(id).map(|c| CalendarInfo {
                id: c.id.clone(),
                name: c.summary.clone(),
                primary: c.primary,
                time_zone: Some(c.time_zone.clone()),
            }),
            Provider::Microsoft => st.mcals.get(id).map(|c| CalendarInfo {
                id: c.id.clone(),
                name: c.name.clone(),
                primary: c.is_default,
                time_zone: None,
            }),
        })
        .collect();
    Some(UserInfo {
        provider: key.0,
        email: key.1.clone(),
        display_name: u.display_name.clone(),
        id: u.id.clone(),
        calendars,
    })
}
