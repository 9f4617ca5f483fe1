//! The domain's plain data: companies, groups, staff, calendars, events,
//! feeds, app passwords, accounts. No I/O and no behaviour beyond
//! constructors and small derivations; the store persists these, the HTTP
//! layer shows them.
//!
//! Everything belongs to one company (tenant); every record carries its
//! company id so a lookup can be checked against the caller's scope.

pub mod account;
pub mod appointment;
pub mod outbox;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random id (100 random bits).
            pub fn generate() -> Self {
                $name(format!("{}{}", $prefix, crate::crypto::random_id(20)))
            }

            /// Accept a string only if it could be an id of this kind, so a
            /// path segment never reaches the store unchecked.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?;
                (rest.len() >= 8
                    && rest.len() <= 64
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
                .then(|| $name(s.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A tenant.
    CompanyId,
    "cmp_"
);
id_type!(GroupId, "grp_");
id_type!(StaffId, "stf_");
id_type!(CalendarId, "cal_");
id_type!(
    /// An event's stable id; for appointments it is the appointment id.
    EventId,
    "evt_"
);
id_type!(FeedId, "fd_");
id_type!(AppPasswordId, "ap_");
id_type!(AccountId, "acc_");

/// Seconds since the Unix epoch, UTC.
pub type Timestamp = i64;

/// The end of a span that never ends (an unbounded recurrence).
pub const FOREVER: Timestamp = i64::MAX;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Company {
    pub id: CompanyId,
    pub name: String,
    /// IANA zone; the default for staff and for floating times.
    pub timezone: String,
    pub created: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: GroupId,
    pub company: CompanyId,
    pub name: String,
    pub created: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staff {
    pub id: StaffId,
    pub company: CompanyId,
    pub name: String,
    /// Lower-cased; also the CalDAV user name.
    pub email: String,
    pub timezone: String,
    pub groups: Vec<GroupId>,
    pub created: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    ReadOnly,
    Bidirectional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "google" => Some(Provider::Google),
            "microsoft" => Some(Provider::Microsoft),
            _ => None,
        }
    }
}

/// Where a calendar's events come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CalendarSource {
    /// Owned by calbridge: written by the admin API and CalDAV.
    Native,
    /// A remote calendar selected for sync.
    Mirrored {
        account: AccountId,
        remote_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    pub id: CalendarId,
    pub company: CompanyId,
    pub staff: StaffId,
    /// The collection's path segment under the staff member's CalDAV home.
    pub slug: String,
    pub name: String,
    /// `#RRGGBB` (CalDAV clients and feeds show it).
    pub color: Option<String>,
    pub description: Option<String>,
    pub order: Option<i64>,
    pub source: CalendarSource,
    pub direction: Direction,
    /// Platform appointments are written here (one per staff member).
    pub primary: bool,
    /// Counted as busy in free/busy.
    pub conflicts: bool,
    /// IANA zone: floating times and CalDAV's calendar-timezone.
    #[serde(default)]
    pub timezone: Option<String>,
    pub created: Timestamp,
    /// The component types a calendar created over CalDAV holds
    /// (`VEVENT`, `VTODO`, `VJOURNAL`); `None` is events only, as for
    /// `appointments` and every mirrored calendar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
}

impl Calendar {
    /// The component types this calendar holds.
    pub fn component_types(&self) -> Vec<&str> {
        match &self.components {
            Some(list) if !list.is_empty() => list.iter().map(String::as_str).collect(),
            _ => vec!["VEVENT"],
        }
    }

    /// Whether objects of this component type may be stored here.
    pub fn holds(&self, component: &str) -> bool {
        self.component_types()
            .iter()
            .any(|c| c.eq_ignore_ascii_case(component))
    }

    pub fn is_native(&self) -> bool {
        matches!(self.source, CalendarSource::Native)
    }

    pub fn writable(&self) -> bool {
        self.direction == Direction::Bidirectional
    }
}

/// The remote copy an event mirrors (or was written to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RemoteRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The remote's own last-modified time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<Timestamp>,
}

/// Everything the store indexes about an event; the iCalendar object itself
/// is kept beside it, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMeta {
    pub id: EventId,
    pub calendar: CalendarId,
    /// Resource name inside the collection (`<something>.ics`).
    pub href: String,
    pub uid: String,
    /// Strong ETag value, without quotes.
    pub etag: String,
    /// The calendar's change sequence number at this event's last change.
    pub seq: u64,
    /// UTC span of the whole series.
    pub start: Timestamp,
    pub end: Timestamp,
    pub recurring: bool,
    pub created: Timestamp,
    pub last_modified: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteRef>,
}

impl EventMeta {
    /// The ETag header value (quoted).
    pub fn etag_header(&self) -> String {
        format!("\"{}\"", self.etag)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedScopeKind {
    Staff,
    Group,
    Company,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Privacy {
    Full,
    Busy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Include {
    /// The staff members' native calendars.
    Appointments,
    /// Their mirrored (Google/Microsoft) calendars.
    External,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feed {
    pub id: FeedId,
    pub company: CompanyId,
    pub scope: FeedScopeKind,
    /// The staff, group or company id the feed covers.
    pub target: String,
    pub privacy: Privacy,
    pub include: Vec<Include>,
    /// SHA-256 of the token, hex. The token itself is never stored.
    pub token_hash: String,
    pub created: Timestamp,
    /// Bumped on rotate; part of the cache key.
    pub generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPassword {
    pub id: AppPasswordId,
    pub staff: StaffId,
    pub label: Option<String>,
    /// Argon2id PHC string.
    pub hash: String,
    pub created: Timestamp,
}

/// Seconds since the epoch, now.
pub fn now() -> Timestamp {
    chrono::Utc::now().timestamp()
}
