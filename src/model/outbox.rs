//! The outbox: local changes waiting to be written upstream, and the
//! conflict log.
//!
//! An entry is committed in the same atomic batch as the local change it
//! describes, before any upstream call, so a change acknowledged to a client
//! reaches the provider eventually even if the process dies right after.

use serde::{Deserialize, Serialize};

use super::{AccountId, CalendarId, EventId, RemoteRef, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxOp {
    /// Create or update the remote copy from the local object as it is
    /// when the entry is processed.
    Upsert,
    /// Delete the remote copy.
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Orders entries of one account (monotonic, unique in a store).
    pub seq: u64,
    pub account: AccountId,
    /// The mirrored calendar the write goes to.
    pub target: CalendarId,
    /// Where the local object lives: `target` itself (a CalDAV write into a
    /// mirrored calendar) or a native calendar (an appointment pushed to
    /// the staff member's primary calendar).
    pub source: CalendarId,
    pub href: String,
    pub event: EventId,
    pub op: OutboxOp,
    /// Fixes the identity of an insert upstream (Google: the event id;
    /// Graph: the transactionId), so a retry after a crash finds the event
    /// it already created instead of creating a second one. Kept when a
    /// later change replaces a pending entry.
    #[serde(default)]
    pub key: String,
    /// For deletes: the remote copy to delete (the local event is gone).
    #[serde(default)]
    pub remote: Option<RemoteRef>,
    /// The local object before this change, to roll back to if the
    /// provider refuses the write (`None`: the change created it).
    #[serde(default, with = "opt_bytes")]
    pub previous: Option<Vec<u8>>,
    #[serde(default)]
    pub attempts: u32,
    /// Not before this time (backoff after a failure).
    #[serde(default)]
    pub next_attempt: Timestamp,
    #[serde(default)]
    pub last_error: Option<String>,
    pub created: Timestamp,
}

/// Which side a conflict kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kept {
    Local,
    Remote,
}

/// One entry of an account's conflict log: a change on both sides between
/// two syncs. The losing version is kept here, not thrown away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictRecord {
    pub at: Timestamp,
    pub calendar: CalendarId,
    pub href: String,
    pub uid: String,
    pub kept: Kept,
    /// What happened, in a sentence.
    pub reason: String,
    /// The losing version as iCalendar text (`None`: the loser was a
    /// deletion).
    pub lost: Option<String>,
    pub local_modified: Option<Timestamp>,
    pub remote_modified: Option<Timestamp>,
}

mod opt_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let v: Option<String> = Option::deserialize(d)?;
        v.map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
