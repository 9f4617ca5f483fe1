//! [`Db`]: typed access over any [`Store`]. It owns key layouts, secondary
//! indexes and the multi-key updates that keep them consistent; each public
//! write is one atomic, durable batch.
//!
//! Writes are synchronous (a commit waits for the flush); async callers run
//! them on the blocking pool. Read-modify-write sequences on one calendar are
//! serialised by a striped lock *and* guarded by a precondition on the
//! calendar's sequence number, so a lost update is impossible even if two
//! processes shared a store.

mod accounts;
mod directory;
mod events;
mod feeds;
pub mod outbox;

pub use directory::StaffChange;
pub use events::{
    etag_of, overlaps, Change, EventOp, EventWrite, OpOutcome, PutOutcome, PutResult, LONG_SPAN,
};

use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{keys, Batch, Store, StoreError, Tree};

/// Version of the on-disk layout this build writes.
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("not found")]
    NotFound,
    /// An `If-Match` / `If-None-Match` condition did not hold.
    #[error("precondition failed")]
    PreconditionFailed,
    /// Another resource in the calendar already has this UID.
    #[error("UID {uid} is already used by {href}")]
    UidConflict { uid: String, href: String },
    /// A uniqueness rule (e.g. e-mail within a company) would be broken.
    #[error("{0}")]
    Duplicate(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type DbResult<T> = Result<T, DbError>;

/// Write precondition from HTTP conditional headers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Precondition {
    #[default]
    None,
    /// `If-Match: "etag"`: the resource exists with this etag.
    IfMatch(String),
    /// `If-Match: *`: the resource exists.
    IfExists,
    /// `If-None-Match: *`: the resource does not exist.
    IfAbsent,
}

const STRIPES: usize = 64;

#[derive(Clone)]
pub struct Db {
    store: Arc<dyn Store>,
    /// Serialises read-modify-write per calendar (striped by id hash): a std
    /// mutex because writes run on blocking threads and never await.
    stripes: Arc<Vec<Mutex<()>>>,
}

impl Db {
    /// Wrap a store, creating or migrating its layout.
    pub fn open(store: Arc<dyn Store>) -> DbResult<Self> {
        let db = Db {
            store,
            stripes: Arc::new((0..STRIPES).map(|_| Mutex::new(())).collect()),
        };
        db.migrate()?;
        Ok(db)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn migrate(&self) -> DbResult<()> {
        let found = self
            .store
            .get(Tree::Meta, b"schema_version")?
            .map(|v| {
                std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    .ok_or_else(|| StoreError::Corrupt("schema_version".into()))
            })
            .transpose()?;
        match found {
            None => {
                let mut b = Batch::new();
                b.put(Tree::Meta, "schema_version", SCHEMA_VERSION.to_string());
                self.store.commit(b)?;
            }
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::Corrupt(format!(
                    "the store has schema version {v}, newer than this calbridge ({SCHEMA_VERSION}); upgrade calbridge"
                ))
                .into())
            }
            Some(v) => {
                // Migration hook: each step rewrites what changed between
                // versions, then records the new version in the same batch.
                let mut b = Batch::new();
                if v < 2 {
                    // 1 → 2: the slug index of calendars.
                    for row in self.store.scan_prefix(Tree::Calendars, b"") {
                        let (_, raw) = row?;
                        let cal: crate::model::Calendar = decode(Tree::Calendars, &raw)?;
                        self.calendar_rows(&mut b, &cal);
                    }
                }
                b.put(Tree::Meta, "schema_version", SCHEMA_VERSION.to_string());
                self.store.commit(b)?;
            }
        }
        Ok(())
    }

    fn lock(&self, calendar: &str) -> MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        calendar.hash(&mut h);
        let i = (h.finish() as usize) % STRIPES;
        self.stripes[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get_json<T: DeserializeOwned>(&self, tree: Tree, key: &[u8]) -> DbResult<Option<T>> {
        match self.store.get(tree, key)? {
            None => Ok(None),
            Some(v) => Ok(Some(decode(tree, &v)?)),
        }
    }

    fn scan_json<T: DeserializeOwned>(&self, tree: Tree, prefix: &[u8]) -> DbResult<Vec<T>> {
        self.store
            .scan_prefix(tree, prefix)
            .map(|r| {
                let (_, v) = r?;
                decode(tree, &v)
            })
            .collect()
    }

    /// Keys (after `prefix`) of an index scan.
    fn scan_index(&self, tree: Tree, prefix: &[u8]) -> DbResult<Vec<String>> {
        self.store
            .scan_prefix(tree, prefix)
            .map(|r| {
                let (k, _) = r?;
                Ok(String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
            })
            .collect()
    }

    /// A value from the meta tree (server settings).
    pub fn meta(&self, key: &str) -> DbResult<Option<Vec<u8>>> {
        Ok(self.store.get(Tree::Meta, key.as_bytes())?)
    }

    pub fn set_meta(&self, key: &str, value: &[u8]) -> DbResult<()> {
        let mut b = Batch::new();
        b.put(Tree::Meta, key, value.to_vec());
        Ok(self.store.commit(b)?)
    }

    /// Store `value` under `key` only if nothing is there yet; returns what
    /// is stored afterwards.
    pub fn init_meta(&self, key: &str, value: &[u8]) -> DbResult<Vec<u8>> {
        let mut b = Batch::new();
        b.expect(Tree::Meta, key, None);
        b.put(Tree::Meta, key, value.to_vec());
        match self.store.commit(b) {
            Ok(()) => Ok(value.to_vec()),
            Err(StoreError::Conflict) => Ok(self.meta(key)?.unwrap_or_default()),
            Err(e) => Err(e.into()),
        }
    }
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("model types serialize")
}

pub(crate) fn decode<T: DeserializeOwned>(tree: Tree, v: &[u8]) -> DbResult<T> {
    serde_json::from_slice(v)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", tree.name())).into())
}

pub(crate) use keys::{key, prefix};

#[cfg(test)]
mod tests;
