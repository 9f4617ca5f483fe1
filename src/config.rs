//! Configuration: raw settings from a TOML file, `CALBRIDGE_*` environment
//! variables and command-line flags (precedence: flag > environment > file >
//! default), validated into a [`Config`] the rest of the program can trust.
//!
//! Every error names the key that is wrong, in the file's dotted form.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("cannot read config file {path}: {message}")]
    File { path: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Every setting as written, before validation. Field names are the TOML
/// keys; unknown keys are refused so a typo does not pass silently.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub security: RawSecurity,
    #[serde(default)]
    pub sync: RawSync,
    #[serde(default)]
    pub feeds: RawFeeds,
    #[serde(default)]
    pub google: RawProvider,
    #[serde(default)]
    pub microsoft: RawProvider,
    #[serde(default)]
    pub log: RawLog,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub max_body: Option<String>,
    pub dav_max_body: Option<String>,
    pub request_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub path: Option<String>,
    pub cache: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSecurity {
    pub admin_token: Option<String>,
    pub secret_key: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub interval: Option<String>,
    pub past_window: Option<String>,
    pub max_calendars_per_account: Option<toml::Value>,
    pub concurrency: Option<toml::Value>,
    pub backoff_base: Option<String>,
    pub backoff_cap: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawFeeds {
    pub refresh_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub revoke_url: Option<String>,
    pub api_base: Option<String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
}

/// Command-line overrides (the highest precedence).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub data: Option<String>,
    pub public_url: Option<String>,
}

/// `(dotted key, environment variable)` for every setting.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("server.listen", "CALBRIDGE_LISTEN"),
    ("server.public_url", "CALBRIDGE_PUBLIC_URL"),
    ("server.max_body", "CALBRIDGE_MAX_BODY"),
    ("server.dav_max_body", "CALBRIDGE_DAV_MAX_BODY"),
    ("server.request_timeout", "CALBRIDGE_REQUEST_TIMEOUT"),
    ("store.path", "CALBRIDGE_DATA"),
    ("store.cache", "CALBRIDGE_STORE_CACHE"),
    ("security.admin_token", "CALBRIDGE_ADMIN_TOKEN"),
    ("security.secret_key", "CALBRIDGE_SECRET_KEY"),
    ("sync.interval", "CALBRIDGE_SYNC_INTERVAL"),
    ("sync.past_window", "CALBRIDGE_SYNC_PAST_WINDOW"),
    (
        "sync.max_calendars_per_account",
        "CALBRIDGE_SYNC_MAX_CALENDARS_PER_ACCOUNT",
    ),
    ("sync.concurrency", "CALBRIDGE_SYNC_CONCURRENCY"),
    ("sync.backoff_base", "CALBRIDGE_SYNC_BACKOFF_BASE"),
    ("sync.backoff_cap", "CALBRIDGE_SYNC_BACKOFF_CAP"),
    ("feeds.refresh_interval", "CALBRIDGE_FEEDS_REFRESH_INTERVAL"),
    ("google.client_id", "CALBRIDGE_GOOGLE_CLIENT_ID"),
    ("google.client_secret", "CALBRIDGE_GOOGLE_CLIENT_SECRET"),
    ("google.auth_url", "CALBRIDGE_GOOGLE_AUTH_URL"),
    ("google.token_url", "CALBRIDGE_GOOGLE_TOKEN_URL"),
    ("google.revoke_url", "CALBRIDGE_GOOGLE_REVOKE_URL"),
    ("google.api_base", "CALBRIDGE_GOOGLE_API_BASE"),
    ("microsoft.tenant", "CALBRIDGE_MICROSOFT_TENANT"),
    ("microsoft.client_id", "CALBRIDGE_MICROSOFT_CLIENT_ID"),
    (
        "microsoft.client_secret",
        "CALBRIDGE_MICROSOFT_CLIENT_SECRET",
    ),
    ("microsoft.auth_url", "CALBRIDGE_MICROSOFT_AUTH_URL"),
    ("microsoft.token_url", "CALBRIDGE_MICROSOFT_TOKEN_URL"),
    ("microsoft.api_base", "CALBRIDGE_MICROSOFT_API_BASE"),
    ("log.level", "CALBRIDGE_LOG"),
    ("log.format", "CALBRIDGE_LOG_FORMAT"),
];

impl RawConfig {
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let key = e
                .message()
                .split('`')
                .nth(1)
                .map(str::to_string)
                .unwrap_or_else(|| "config".into());
            invalid(&key, e.message().trim().to_string())
        })
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Invalid { key, message } => ConfigError::Invalid {
                key,
                message: format!("{message} (in {})", path.display()),
            },
            other => other,
        })
    }

    /// Overlay environment variables (given as a map so tests need not
    /// touch the process environment).
    pub fn apply_env(&mut self, env: &BTreeMap<String, String>) {
        for (key, var) in ENV_KEYS {
            if let Some(v) = env.get(*var) {
                self.set(key, v.clone());
            }
        }
    }

    pub fn apply_flags(&mut self, flags: &Flags) {
        if let Some(v) = &flags.listen {
            self.set("server.listen", v.clone());
        }
        if let Some(v) = &flags.data {
            self.set("store.path", v.clone());
        }
        if let Some(v) = &flags.public_url {
            self.set("server.public_url", v.clone());
        }
    }

    /// Set one setting by its dotted key.
    pub fn set(&mut self, key: &str, v: String) {
        let num = |v: &str| {
            v.parse::<i64>()
                .map(toml::Value::Integer)
                .unwrap_or_else(|_| toml::Value::String(v.to_string()))
        };
        match key {
            "server.listen" => self.server.listen = Some(v),
            "server.public_url" => self.server.public_url = Some(v),
            "server.max_body" => self.server.max_body = Some(v),
            "server.dav_max_body" => self.server.dav_max_body = Some(v),
            "server.request_timeout" => self.server.request_timeout = Some(v),
            "store.path" => self.store.path = Some(v),
            "store.cache" => self.store.cache = Some(v),
            "security.admin_token" => self.security.admin_token = Some(v),
            "security.secret_key" => self.security.secret_key = Some(v),
            "sync.interval" => self.sync.interval = Some(v),
            "sync.past_window" => self.sync.past_window = Some(v),
            "sync.max_calendars_per_account" => self.sync.max_calendars_per_account = Some(num(&v)),
            "sync.concurrency" => self.sync.concurrency = Some(num(&v)),
            "sync.backoff_base" => self.sync.backoff_base = Some(v),
            "sync.backoff_cap" => self.sync.backoff_cap = Some(v),
            "feeds.refresh_interval" => self.feeds.refresh_interval = Some(v),
            "log.level" => self.log.level = Some(v),
            "log.format" => self.log.format = Some(v),
            other => {
                let (section, field) = other.split_once('.').unwrap_or((other, ""));
                let p = match section {
                    "google" => &mut self.google,
                    "microsoft" => &mut self.microsoft,
                    _ => return,
                };
                let slot = match field {
                    "tenant" => &mut p.tenant,
                    "client_id" => &mut p.client_id,
                    "client_secret" => &mut p.client_secret,
                    "auth_url" => &mut p.auth_url,
                    "token_url" => &mut p.token_url,
                    "revoke_url" => &mut p.revoke_url,
                    "api_base" => &mut p.api_base,
                    _ => return,
                };
                *slot = Some(v);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A secret setting: its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(v: impl Into<String>) -> Self {
        Secret(v.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One upstream provider's OAuth client and endpoints.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub auth_url: url::Url,
    pub token_url: url::Url,
    pub revoke_url: Option<url::Url>,
    /// The versioned API root, without a trailing slash.
    pub api_base: url::Url,
    /// Microsoft only: `common`, `organizations`, `consumers` or a tenant id.
    pub tenant: String,
}

impl ProviderConfig {
    /// Connecting needs a client id (a secret is optional for public clients).
    pub fn configured(&self) -> bool {
        self.client_id.as_deref().is_some_and(|s| !s.is_empty())
    }
}

#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub interval: Duration,
    pub past_window: Duration,
    pub max_calendars_per_account: usize,
    /// Accounts synced at the same time.
    pub concurrency: usize,
    /// First retry delay after an upstream failure; doubles up to the cap.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Base of every URL handed out, without a trailing slash.
    pub public_url: String,
    pub max_body: usize,
    pub dav_max_body: usize,
    pub request_timeout: Duration,
    pub store_path: PathBuf,
    pub store_cache_bytes: u64,
    pub admin_token: Option<Secret>,
    pub secret_key: Option<Secret>,
    pub sync: SyncConfig,
    pub feed_refresh: Duration,
    pub google: ProviderConfig,
    pub microsoft: ProviderConfig,
    pub log_level: String,
    pub log_format: LogFormat,
}

/// Parse `90s`, `5m`, `2h`, `30d`, `1w` (or a bare number of seconds).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "ms" => return Some(Duration::from_millis(n)),
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

/// Parse `1MiB`, `512KiB`, `10MB`, `1048576`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1024,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn url_setting(key: &str, value: Option<&str>, default: &str) -> Result<url::Url, ConfigError> {
    let v = value.unwrap_or(default).trim();
    let u = url::Url::parse(v).map_err(|e| invalid(key, format!("not a URL ({e}): {v:?}")))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(invalid(key, format!("must be an http(s) URL, not {v:?}")));
    }
    Ok(u)
}

fn duration_setting(
    key: &str,
    value: Option<&str>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let v = value.unwrap_or(default);
    parse_duration(v).ok_or_else(|| {
        invalid(
            key,
            format!("not a duration: {v:?} (use e.g. 90s, 5m, 2h, 30d)"),
        )
    })
}

fn int_setting(
    key: &str,
    value: Option<&toml::Value>,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    let n = match value {
        None => default,
        Some(toml::Value::Integer(n)) => *n,
        Some(toml::Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| invalid(key, format!("not a whole number: {s:?}")))?,
        Some(other) => return Err(invalid(key, format!("not a whole number: {other}"))),
    };
    if n < min || n > max {
        return Err(invalid(
            key,
            format!("must be between {min} and {max}, not {n}"),
        ));
    }
    Ok(n)
}

fn secret_setting(
    key: &str,
    value: Option<&str>,
    min_len: usize,
) -> Result<Option<Secret>, ConfigError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.len() < min_len => Err(invalid(
            key,
            format!("too short: use at least {min_len} characters"),
        )),
        Some(v) if v.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err(invalid(key, "must not contain whitespace"))
        }
        Some(v) => Ok(Some(Secret(v.to_string()))),
    }
}

impl RawConfig {
    /// Validate into a [`Config`], naming the first key that is wrong.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let listen_s = self.server.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen: SocketAddr = listen_s.trim().parse().map_err(|_| {
            invalid(
                "server.listen",
                format!("not an address like 127.0.0.1:8080: {listen_s:?}"),
            )
        })?;
        let public_url = match &self.server.public_url {
            Some(u) => {
                let parsed = url_setting("server.public_url", Some(u), "")?;
                if parsed.query().is_some() || parsed.fragment().is_some() {
                    return Err(invalid(
                        "server.public_url",
                        "must not have a query or fragment",
                    ));
                }
                parsed.as_str().trim_end_matches('/').to_string()
            }
            None => format!("http://{listen}"),
        };
        let size = |key: &str, v: &Option<String>, default: &str| -> Result<usize, ConfigError> {
            let s = v.as_deref().unwrap_or(default);
            let n = parse_size(s)
                .ok_or_else(|| invalid(key, format!("not a size: {s:?} (use e.g. 1MiB)")))?;
            if n < 1024 {
                return Err(invalid(key, "must be at least 1KiB"));
            }
            Ok(n as usize)
        };
        let max_body = size("server.max_body", &self.server.max_body, "1MiB")?;
        let dav_max_body = size("server.dav_max_body", &self.server.dav_max_body, "10MiB")?;
        let request_timeout = duration_setting(
            "server.request_timeout",
            self.server.request_timeout.as_deref(),
            "30s",
        )?;
        let store_path = PathBuf::from(self.store.path.as_deref().unwrap_or("./data"));
        if store_path.as_os_str().is_empty() {
            return Err(invalid("store.path", "must not be empty"));
        }
        let cache = self.store.cache.as_deref().unwrap_or("32MiB");
        let store_cache_bytes = parse_size(cache)
            .filter(|n| *n >= (1 << 20))
            .ok_or_else(|| {
                invalid(
                    "store.cache",
                    format!("not a size of at least 1MiB: {cache:?}"),
                )
            })?;
        let interval = duration_setting("sync.interval", self.sync.interval.as_deref(), "5m")?;
        if interval < Duration::from_secs(1) {
            return Err(invalid("sync.interval", "must be at least 1s"));
        }
        let past_window =
            duration_setting("sync.past_window", self.sync.past_window.as_deref(), "30d")?;
        let max_cal = int_setting(
            "sync.max_calendars_per_account",
            self.sync.max_calendars_per_account.as_ref(),
            10,
            1,
            1000,
        )?;
        let concurrency = int_setting(
            "sync.concurrency",
            self.sync.concurrency.as_ref(),
            4,
            1,
            256,
        )?;
        let backoff_base =
            duration_setting("sync.backoff_base", self.sync.backoff_base.as_deref(), "1s")?;
        let backoff_cap =
            duration_setting("sync.backoff_cap", self.sync.backoff_cap.as_deref(), "15m")?;
        if backoff_base.is_zero() || backoff_cap < backoff_base {
            return Err(invalid(
                "sync.backoff_cap",
                "must be at least sync.backoff_base, which must be above 0",
            ));
        }
        let feed_refresh = duration_setting(
            "feeds.refresh_interval",
            self.feeds.refresh_interval.as_deref(),
            "1h",
        )?;
        let google = ProviderConfig {
            client_id: self.google.client_id.clone().filter(|s| !s.is_empty()),
            client_secret: self
                .google
                .client_secret
                .clone()
                .filter(|s| !s.is_empty())
                .map(Secret),
            auth_url: url_setting(
                "google.auth_url",
                self.google.auth_url.as_deref(),
                "https://accounts.google.com/o/oauth2/v2/auth",
            )?,
            token_url: url_setting(
                "google.token_url",
                self.google.token_url.as_deref(),
                "https://oauth2.googleapis.com/token",
            )?,
            revoke_url: Some(url_setting(
                "google.revoke_url",
                self.google.revoke_url.as_deref(),
                "https://oauth2.googleapis.com/revoke",
            )?),
            api_base: url_setting(
                "google.api_base",
                self.google.api_base.as_deref(),
                "https://www.googleapis.com/calendar/v3",
            )?,
            tenant: String::new(),
        };
        if self.google.tenant.is_some() {
            return Err(invalid("google.tenant", "only Microsoft has a tenant"));
        }
        let tenant = self
            .microsoft
            .tenant
            .clone()
            .unwrap_or_else(|| "common".into());
        if tenant.is_empty()
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(invalid(
                "microsoft.tenant",
                format!("not a tenant name or id: {tenant:?}"),
            ));
        }
        let ms_default =
            |path: &str| format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/{path}");
        let microsoft = ProviderConfig {
            client_id: self.microsoft.client_id.clone().filter(|s| !s.is_empty()),
            client_secret: self
                .microsoft
                .client_secret
                .clone()
                .filter(|s| !s.is_empty())
                .map(Secret),
            auth_url: url_setting(
                "microsoft.auth_url",
                self.microsoft.auth_url.as_deref(),
                &ms_default("authorize"),
            )?,
            token_url: url_setting(
                "microsoft.token_url",
                self.microsoft.token_url.as_deref(),
                &ms_default("token"),
            )?,
            revoke_url: match self.microsoft.revoke_url.as_deref() {
                Some(u) => Some(url_setting("microsoft.revoke_url", Some(u), "")?),
                None => None,
            },
            api_base: url_setting(
                "microsoft.api_base",
                self.microsoft.api_base.as_deref(),
                "https://graph.microsoft.com/v1.0",
            )?,
            tenant,
        };
        let log_format = match self.log.format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log.format",
                    format!("must be \"text\" or \"json\", not {other:?}"),
                ))
            }
        };
        let log_level = self.log.level.clone().unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(invalid(
                "log.level",
                format!("not a log filter: {log_level:?} (e.g. info or calbridge=debug)"),
            ));
        }
        Ok(Config {
            listen,
            public_url,
            max_body,
            dav_max_body,
            request_timeout,
            store_path,
            store_cache_bytes,
            admin_token: secret_setting(
                "security.admin_token",
                self.security.admin_token.as_deref(),
                16,
            )?,
            secret_key: secret_setting(
                "security.secret_key",
                self.security.secret_key.as_deref(),
                16,
            )?,
            sync: SyncConfig {
                interval,
                past_window,
                max_calendars_per_account: max_cal as usize,
                concurrency: concurrency as usize,
                backoff_base,
                backoff_cap,
            },
            feed_refresh,
            google,
            microsoft,
            log_level,
            log_format,
        })
    }
}

/// Load with the documented precedence: flags > environment > file > defaults.
pub fn load(flags: &Flags, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
    let path = flags
        .config
        .clone()
        .or_else(|| env.get("CALBRIDGE_CONFIG").map(PathBuf::from));
    let mut raw = match path {
        Some(p) => RawConfig::from_file(&p)?,
        None => RawConfig::default(),
    };
    raw.apply_env(env);
    raw.apply_flags(flags);
    raw.validate()
}

/// The process environment's `CALBRIDGE_*` variables.
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("CALBRIDGE_"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = RawConfig::default().validate().unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.store_path, PathBuf::from("./data"));
        assert_eq!(c.sync.interval, Duration::from_secs(300));
        assert_eq!(c.sync.past_window, Duration::from_secs(30 * 86_400));
        assert_eq!(c.sync.max_calendars_per_account, 10);
        assert_eq!(c.max_body, 1 << 20);
        assert_eq!(
            c.google.api_base.as_str(),
            "https://www.googleapis.com/calendar/v3"
        );
        assert_eq!(
            c.microsoft.token_url.as_str(),
            "https://login.microsoftonline.com/common/oauth2/v2.0/token"
        );
        assert!(!c.google.configured());
    }

    #[test]
    fn precedence_is_flag_env_file_default() {
        let mut raw = RawConfig::from_toml(
            "[server]\nlisten = \"127.0.0.1:1000\"\npublic_url = \"https://cal.example.com/\"\n[sync]\ninterval = \"10m\"\n",
        )
        .unwrap();
        raw.apply_env(&env(&[
            ("CALBRIDGE_LISTEN", "127.0.0.1:2000"),
            ("CALBRIDGE_SYNC_PAST_WINDOW", "7d"),
            (
                "CALBRIDGE_GOOGLE_API_BASE",
                "http://127.0.0.1:9/calendar/v3",
            ),
        ]));
        raw.apply_flags(&Flags {
            listen: Some("127.0.0.1:3000".into()),
            ..Flags::default()
        });
        let c = raw.validate().unwrap();
        assert_eq!(c.listen.port(), 3000);
        assert_eq!(c.public_url, "https://cal.example.com");
        assert_eq!(c.sync.interval, Duration::from_secs(600));
        assert_eq!(c.sync.past_window, Duration::from_secs(7 * 86_400));
        assert_eq!(c.google.api_base.as_str(), "http://127.0.0.1:9/calendar/v3");
    }

    #[test]
    fn errors_name_the_key() {
        let check = |toml_text: &str, envs: &[(&str, &str)], key: &str| {
            let mut raw = RawConfig::from_toml(toml_text).map_err(|e| e.to_string());
            let err = match &mut raw {
                Ok(r) => {
                    r.apply_env(&env(envs));
                    r.validate().unwrap_err().to_string()
                }
                Err(e) => e.clone(),
            };
            assert!(err.starts_with(key), "{err:?} should start with {key:?}");
        };
        check("[server]\nlisten = \"nope\"", &[], "server.listen");
        check("", &[("CALBRIDGE_SYNC_INTERVAL", "soon")], "sync.interval");
        check(
            "[sync]\nmax_calendars_per_account = 0",
            &[],
            "sync.max_calendars_per_account",
        );
        check(
            "",
            &[("CALBRIDGE_GOOGLE_TOKEN_URL", "ftp://x")],
            "google.token_url",
        );
        check(
            "",
            &[("CALBRIDGE_ADMIN_TOKEN", "short")],
            "security.admin_token",
        );
        check("[log]\nformat = \"xml\"", &[], "log.format");
        check("[server]\nlisen = \"x\"", &[], "lisen");
        check(
            "",
            &[("CALBRIDGE_MICROSOFT_TENANT", "a/b")],
            "microsoft.tenant",
        );
    }

    #[test]
    fn every_key_has_an_env_var_that_takes_effect() {
        for (key, var) in ENV_KEYS {
            let mut raw = RawConfig::default();
            raw.apply_env(&env(&[(var, "sentinel-value")]));
            // The sentinel makes validation fail on (or change) exactly this key.
            match raw.validate() {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(&k, key),
                Ok(c) => {
                    let dump = format!("{c:?}");
                    let secrets = [
                        c.admin_token.as_ref(),
                        c.secret_key.as_ref(),
                        c.google.client_secret.as_ref(),
                        c.microsoft.client_secret.as_ref(),
                    ];
                    let in_secret = secrets
                        .iter()
                        .flatten()
                        .any(|s| s.expose() == "sentinel-value");
                    assert!(
                        dump.contains("sentinel-value") || in_secret,
                        "{var} had no effect"
                    );
                    assert!(
                        !in_secret || !dump.contains("sentinel-value"),
                        "{var} leaks in Debug"
                    );
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("30d"), Some(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("10 kb"), Some(10_000));
        assert_eq!(parse_size("1PB"), None);
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    /// The documented example must load, and document every key.
    #[test]
    fn example_config_is_valid_and_complete() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/calbridge.example.toml");
        let raw = RawConfig::from_file(Path::new(path)).expect("example parses");
        raw.validate().expect("example validates");
        let text = std::fs::read_to_string(path).unwrap();
        for (key, var) in ENV_KEYS {
            let field = key.rsplit('.').next().unwrap();
            assert!(
                text.contains(&format!("{field} =")),
                "{key} is not documented"
            );
            assert!(text.contains(var), "{var} is not documented");
        }
    }
}
