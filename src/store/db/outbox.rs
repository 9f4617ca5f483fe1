//! The outbox (local changes waiting to go upstream), its per-event index,
//! the conflict log, and recording a remote reference without a content
//! change.
//!
//! Entries are keyed `account \0 seq`, so one account's entries drain in
//! the order they were made. `OutboxIndex` keeps at most one pending entry
//! per (target calendar, event): a later change to the same event replaces
//! the pending one (the worker always writes the event as it is when it
//! runs), keeping the oldest rollback version.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{decode, encode, key, prefix, Db, DbError, DbResult};
use crate::model::outbox::{ConflictRecord, OutboxEntry};
use crate::model::{AccountId, CalendarId, EventId, EventMeta, RemoteRef};
use crate::store::{keys, Batch, StoreError, Tree};

static LAST_SEQ: AtomicU64 = AtomicU64::new(0);

/// A sequence number that only grows: nanoseconds since the epoch, bumped
/// past the last one handed out in this process.
pub fn next_seq() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut last = LAST_SEQ.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST_SEQ.compare_exchange(last, next, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

fn entry_key(account: &AccountId, seq: u64) -> Vec<u8> {
    let mut k = prefix(account.as_str().as_bytes());
    k.extend_from_slice(&keys::seq(seq));
    k
}

fn index_key(target: &CalendarId, event: &EventId) -> Vec<u8> {
    key(&[target.as_str().as_bytes(), event.as_str().as_bytes()])
}

impl Db {
    /// Rows that queue `entry`, replacing a pending entry for the same
    /// event and target (whose rollback version is kept).
    pub fn outbox_rows(&self, mut entry: OutboxEntry) -> DbResult<Batch> {
        let mut b = Batch::new();
        let ik = index_key(&entry.target, &entry.event);
        if let Some(old_key) = self.store.get(Tree::OutboxIndex, &ik)? {
            if let Some(raw) = self.store.get(Tree::Outbox, &old_key)? {
                let old: OutboxEntry = decode(Tree::Outbox, &raw)?;
                // The version before the first unsent change is what a
                // refusal rolls back to.
                entry.previous = old.previous.clone();
                entry.created = old.created;
                entry.key = old.key.clone();
                if entry.remote.is_none() {
                    entry.remote = old.remote;
                }
                b.delete(Tree::Outbox, old_key);
            }
        }
        let k = entry_key(&entry.account, entry.seq);
        b.put(Tree::Outbox, k.clone(), encode(&entry));
        b.put(Tree::OutboxIndex, ik, k);
        Ok(b)
    }

    /// Every pending entry of an account, oldest first.
    pub fn outbox_of(&self, account: &AccountId) -> DbResult<Vec<OutboxEntry>> {
        self.scan_json(Tree::Outbox, &prefix(account.as_str().as_bytes()))
    }

    /// Accounts with pending entries.
    pub fn outbox_accounts(&self) -> DbResult<Vec<AccountId>> {
        let mut out: Vec<AccountId> = Vec::new();
        for r in self.store.scan_prefix(Tree::Outbox, b"") {
            let (k, _) = r?;
            let id = String::from_utf8_lossy(keys::split(&k)[0]).into_owned();
            if out.last().map(|a| a.as_str()) != Some(id.as_str()) {
                out.push(AccountId(id));
            }
        }
        Ok(out)
    }

    /// The oldest pending entry of every account (what a drain starts
    /// with).
    pub fn outbox_heads(&self) -> DbResult<Vec<OutboxEntry>> {
        let mut out: Vec<OutboxEntry> = Vec::new();
        let mut last: Option<String> = None;
        for r in self.store.scan_prefix(Tree::Outbox, b"") {
            let (k, v) = r?;
            let account = String::from_utf8_lossy(keys::split(&k)[0]).into_owned();
            if last.as_deref() == Some(account.as_str()) {
                continue;
            }
            out.push(decode(Tree::Outbox, &v)?);
            last = Some(account);
        }
        Ok(out)
    }

    /// The pending entry for an event written to `target`, if any.
    pub fn outbox_pending(
        &self,
        target: &CalendarId,
        event: &EventId,
    ) -> DbResult<Option<OutboxEntry>> {
        let Some(k) = self
            .store
            .get(Tree::OutboxIndex, &index_key(target, event))?
        else {
            return Ok(None);
        };
        self.get_json(Tree::Outbox, &k)
    }

    /// Rows removing a processed entry (only if it is still the one
    /// queued: a newer change for the same event stays).
    pub fn outbox_done_rows(&self, e: &OutboxEntry) -> DbResult<Batch> {
        let mut b = Batch::new();
        let k = entry_key(&e.account, e.seq);
        b.delete(Tree::Outbox, k.clone());
        let ik = index_key(&e.target, &e.event);
        if self.store.get(Tree::OutboxIndex, &ik)?.as_deref() == Some(k.as_slice()) {
            b.delete(Tree::OutboxIndex, ik);
        }
        Ok(b)
    }

    /// Store a failed attempt's bookkeeping (if the entry still exists).
    pub fn outbox_update(&self, e: &OutboxEntry) -> DbResult<()> {
        let k = entry_key(&e.account, e.seq);
        let Some(raw) = self.store.get(Tree::Outbox, &k)? else {
            return Ok(());
        };
        let mut b = Batch::new();
        b.expect(Tree::Outbox, k.clone(), Some(raw));
        b.put(Tree::Outbox, k, encode(e));
        match self.store.commit(b) {
            Ok(()) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A row adding a record to an account's conflict log.
    pub fn conflict_row(account: &AccountId, record: &ConflictRecord) -> Batch {
        let mut b = Batch::new();
        b.put(
            Tree::Conflicts,
            entry_key(account, next_seq()),
            encode(record),
        );
        b
    }

    /// Record which remote copy an event corresponds to (after a write
    /// went upstream), without counting it as a change of the event: its
    /// ETag and the calendar's sync token stay as they are. `extra` joins
    /// the batch (removing the outbox entry, storing provider items).
    pub fn set_remote(
        &self,
        cal: &CalendarId,
        href: &str,
        remote: RemoteRef,
        extra: Batch,
    ) -> DbResult<EventMeta> {
        let _guard = self.lock(cal.as_str());
        let ek = key(&[cal.as_str().as_bytes(), href.as_bytes()]);
        let raw = self
            .store
            .get(Tree::Events, &ek)?
            .ok_or(DbError::NotFound)?;
        let mut meta: EventMeta = decode(Tree::Events, &raw)?;
        let mut b = Batch::new();
        b.expect(Tree::Events, ek.clone(), Some(raw));
        let c = cal.as_str().as_bytes();
        if let Some(old) = &meta.remote {
            if old.id != remote.id {
                b.delete(Tree::RemoteIds, key(&[c, old.id.as_bytes()]));
            }
        }
        b.put(
            Tree::RemoteIds,
            key(&[c, remote.id.as_bytes()]),
            href.as_bytes().to_vec(),
        );
        meta.remote = Some(remote);
        b.put(Tree::Events, ek, encode(&meta));
        b.extend(extra);
        self.store.commit(b)?;
        Ok(meta)
    }
}
