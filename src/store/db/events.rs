//! Events: the raw iCalendar object plus its index rows, the per-calendar
//! change sequence (getctag / sync-token) and the change log that
//! sync-collection reads.
//!
//! Index rows per event:
//! - `Events` / `Bodies` / `EventIds` / `EventUids` (and `RemoteIds` when it
//!   mirrors a remote event);
//! - `EventTimes` (keyed by start) when the series spans at most
//!   [`LONG_SPAN`] and does not recur, otherwise `EventLong`; a time-range
//!   query scans `EventTimes` from `start - LONG_SPAN` and all of `EventLong`,
//!   never another calendar;
//! - one `Changes` row at the event's latest sequence number. A deletion
//!   leaves a `Tombstones` row and a `Changes` row, so sync-collection since
//!   any token reads only the changes after it.

use std::collections::HashMap;

use super::{decode, encode, key, prefix, Db, DbError, DbResult, Precondition};
use crate::model::{now, CalendarId, EventId, EventMeta, RemoteRef, Timestamp};
use crate::store::{keys, Batch, StoreError, Tree};

/// Series longer than this (and every recurring series) are indexed in
/// `EventLong` instead of by start time.
pub const LONG_SPAN: i64 = 7 * 86_400;

const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;

/// What to store for one event resource.
#[derive(Debug, Clone)]
pub struct EventWrite {
    pub calendar: CalendarId,
    pub href: String,
    pub uid: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub recurring: bool,
    /// The iCalendar object, kept byte for byte.
    pub body: Vec<u8>,
    pub remote: Option<RemoteRef>,
    /// Id for a new event (a fresh one is generated when `None`); an existing
    /// event keeps its id.
    pub id: Option<EventId>,
    /// When the content last changed (defaults to now).
    pub last_modified: Option<Timestamp>,
}

/// One operation of [`Db::apply_events`].
#[derive(Debug, Clone)]
pub enum EventOp {
    Put(EventWrite, Precondition),
    Delete(String, Precondition),
}

/// A put that was applied (or found unchanged).
#[derive(Debug, Clone)]
pub struct PutResult {
    pub meta: EventMeta,
    pub old: Option<EventMeta>,
    pub unchanged: bool,
}

#[derive(Debug, Clone)]
pub enum OpOutcome {
    Put(Box<PutResult>),
    Deleted(Box<EventMeta>),
}

#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub meta: EventMeta,
    pub created: bool,
    /// The stored bytes and remote reference were already identical:
    /// nothing was written and no sequence number was used.
    pub unchanged: bool,
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: u64,
    pub href: String,
    pub deleted: bool,
}

/// The strong ETag of a body: 128 bits of its SHA-256.
pub fn etag_of(body: &[u8]) -> String {
    crate::crypto::sha256_hex(body)[..32].to_string()
}

fn event_key(cal: &CalendarId, href: &str) -> Vec<u8> {
    key(&[cal.as_str().as_bytes(), href.as_bytes()])
}

fn time_key(cal: &CalendarId, start: Timestamp, href: &str) -> Vec<u8> {
    let mut k = prefix(cal.as_str().as_bytes());
    k.extend_from_slice(&keys::ts(start));
    k.push(0);
    k.extend_from_slice(href.as_bytes());
    k
}

fn change_key(cal: &CalendarId, seq: u64) -> Vec<u8> {
    let mut k = prefix(cal.as_str().as_bytes());
    k.extend_from_slice(&keys::seq(seq));
    k
}

fn is_long(start: Timestamp, end: Timestamp, recurring: bool) -> bool {
    recurring || end.saturating_sub(start) > LONG_SPAN
}

/// Does `[start, end)` overlap `[qs, qe)`? A zero-length event at `qs` does
/// (RFC 4791 §9.9).
pub fn overlaps(start: Timestamp, end: Timestamp, qs: Timestamp, qe: Timestamp) -> bool {
    start < qe && (end > qs || (start == end && start >= qs))
}

impl Db {
    pub fn calendar_seq(&self, cal: &CalendarId) -> DbResult<Option<u64>> {
        Ok(self
            .store
            .get(Tree::CalSeq, cal.as_str().as_bytes())?
            .and_then(|v| keys::seq_from(&v)))
    }

    pub fn event(&self, cal: &CalendarId, href: &str) -> DbResult<Option<EventMeta>> {
        self.get_json(Tree::Events, &event_key(cal, href))
    }

    pub fn event_body(&self, cal: &CalendarId, href: &str) -> DbResult<Option<Vec<u8>>> {
        Ok(self.store.get(Tree::Bodies, &event_key(cal, href))?)
    }

    pub fn event_by_id(&self, id: &EventId) -> DbResult<Option<EventMeta>> {
        let Some(loc) = self.store.get(Tree::EventIds, id.as_str().as_bytes())? else {
            return Ok(None);
        };
        self.get_json(Tree::Events, &loc)
    }

    /// The href of the event with this UID in the calendar.
    pub fn href_for_uid(&self, cal: &CalendarId, uid: &str) -> DbResult<Option<String>> {
        Ok(self
            .store
            .get(
                Tree::EventUids,
                &key(&[cal.as_str().as_bytes(), uid.as_bytes()]),
            )?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The href of the event mirroring this remote id in the calendar.
    pub fn href_for_remote(&self, cal: &CalendarId, remote_id: &str) -> DbResult<Option<String>> {
        Ok(self
            .store
            .get(
                Tree::RemoteIds,
                &key(&[cal.as_str().as_bytes(), remote_id.as_bytes()]),
            )?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Every event of a calendar, ordered by href.
    pub fn events_of_calendar(&self, cal: &CalendarId) -> DbResult<Vec<EventMeta>> {
        self.scan_json(Tree::Events, &prefix(cal.as_str().as_bytes()))
    }

    /// Every event with its body, ordered by href.
    pub fn events_with_bodies(&self, cal: &CalendarId) -> DbResult<Vec<(EventMeta, Vec<u8>)>> {
        let p = prefix(cal.as_str().as_bytes());
        let metas = self.store.scan_prefix(Tree::Events, &p);
        let mut bodies = self.store.scan_prefix(Tree::Bodies, &p);
        let mut out = Vec::new();
        for m in metas {
            let (k, v) = m?;
            let meta: EventMeta = decode(Tree::Events, &v)?;
            // Both trees hold the same keys in the same order.
            let body = loop {
                match bodies.next() {
                    Some(Ok((bk, bv))) if bk == k => break bv,
                    Some(Ok((bk, _))) if bk < k => continue,
                    Some(Err(e)) => return Err(e.into()),
                    _ => {
                        return Err(StoreError::Corrupt(format!("no body for {}", meta.href)).into())
                    }
                }
            };
            out.push((meta, body));
        }
        Ok(out)
    }

    /// [`Db::events_overlapping`] for a window that covers most of the
    /// calendar (a feed's: from a month ago on): one pass over the
    /// calendar's event rows instead of a lookup per event, which is
    /// several times cheaper when most events match. Same events, same
    /// order: short events by start then href, then long ones by href.
    pub fn events_overlapping_by_scan(
        &self,
        cal: &CalendarId,
        start: Timestamp,
        end: Timestamp,
    ) -> DbResult<Vec<EventMeta>> {
        let mut short = Vec::new();
        let mut long = Vec::new();
        for m in self.events_of_calendar(cal)? {
            if !overlaps(m.start, m.end, start, end) {
                continue;
            }
            if is_long(m.start, m.end, m.recurring) {
                long.push(m);
            } else {
                short.push(m);
            }
        }
        // Stable: equal starts stay in href order, as in the time index.
        short.sort_by_key(|m| m.start);
        short.extend(long);
        Ok(short)
    }

    /// Events whose series span overlaps `[start, end)`, in no given order.
    /// For recurring events this is a candidate set: the caller checks the
    /// instances.
    pub fn events_overlapping(
        &self,
        cal: &CalendarId,
        start: Timestamp,
        end: Timestamp,
    ) -> DbResult<Vec<EventMeta>> {
        let mut hrefs = Vec::new();
        let p = prefix(cal.as_str().as_bytes());
        let from = time_key(cal, start.saturating_sub(LONG_SPAN), "");
        let to = {
            let mut k = p.clone();
            k.extend_from_slice(&keys::ts(end));
            k.push(0);
            k
        };
        for r in self.store.range(Tree::EventTimes, &from, &to) {
            let (k, v) = r?;
            let rest = &k[p.len()..];
            let (Some(s), Some(e)) = (keys::ts_from(rest), keys::ts_from(&v)) else {
                continue;
            };
            if overlaps(s, e, start, end) {
                hrefs.push(String::from_utf8_lossy(&rest[9..]).into_owned());
            }
        }
        for r in self.store.scan_prefix(Tree::EventLong, &p) {
            let (k, v) = r?;
            let (Some(s), Some(e)) = (keys::ts_from(&v), v.get(8..).and_then(keys::ts_from)) else {
                continue;
            };
            if overlaps(s, e, start, end) {
                hrefs.push(String::from_utf8_lossy(&k[p.len()..]).into_owned());
            }
        }
        let mut out = Vec::with_capacity(hrefs.len());
        for h in hrefs {
            if let Some(m) = self.event(cal, &h)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Store an event (create or replace), checking the precondition and
    /// UID uniqueness. `extra` adds rows to the same atomic batch (the
    /// outbox intent of a write that must reach upstream).
    pub fn put_event(
        &self,
        w: EventWrite,
        pre: &Precondition,
        extra: impl FnOnce(&EventMeta, Option<&EventMeta>) -> DbResult<Batch>,
    ) -> DbResult<PutOutcome> {
        let cal = w.calendar.clone();
        let mut extra = Some(extra);
        let mut outcomes =
            self.apply_events(&cal, vec![EventOp::Put(w, pre.clone())], |out| {
                match (out, extra.take()) {
                    (OpOutcome::Put(o), Some(f)) if !o.unchanged => f(&o.meta, o.old.as_ref()),
                    _ => Ok(Batch::new()),
                }
            })?;
        match outcomes.pop() {
            Some(Ok(OpOutcome::Put(o))) => Ok(PutOutcome {
                created: o.old.is_none(),
                meta: o.meta,
                unchanged: o.unchanged,
            }),
            Some(Err(e)) => Err(e),
            _ => unreachable!("one op gives one outcome"),
        }
    }

    /// Delete an event, leaving a tombstone for sync-collection.
    pub fn delete_event(
        &self,
        cal: &CalendarId,
        href: &str,
        pre: &Precondition,
        extra: impl FnOnce(&EventMeta) -> DbResult<Batch>,
    ) -> DbResult<EventMeta> {
        let mut extra = Some(extra);
        let mut outcomes = self.apply_events(
            cal,
            vec![EventOp::Delete(href.to_string(), pre.clone())],
            |out| match (out, extra.take()) {
                (OpOutcome::Deleted(old), Some(f)) => f(old),
                _ => Ok(Batch::new()),
            },
        )?;
        match outcomes.pop() {
            Some(Ok(OpOutcome::Deleted(old))) => Ok(*old),
            Some(Err(e)) => Err(e),
            _ => unreachable!("one op gives one outcome"),
        }
    }

    /// Apply several puts and deletes to one calendar in one atomic batch
    /// with one flush (a sync page). Each op gets its own outcome; an op
    /// that fails its precondition or UID check is left out and the others
    /// still apply. `extra` is called for each applied op and its rows join
    /// the batch. Returns `Err` only when the batch as a whole failed.
    pub fn apply_events(
        &self,
        cal: &CalendarId,
        ops: Vec<EventOp>,
        mut extra: impl FnMut(&OpOutcome) -> DbResult<Batch>,
    ) -> DbResult<Vec<DbResult<OpOutcome>>> {
        self.apply_events_with(cal, ops, &mut extra, Batch::new())
    }

    /// [`Db::apply_events`] with rows that must commit with the ops (a
    /// sync cursor, provider items).
    pub fn apply_events_with(
        &self,
        cal: &CalendarId,
        ops: Vec<EventOp>,
        extra: &mut dyn FnMut(&OpOutcome) -> DbResult<Batch>,
        tail: Batch,
    ) -> DbResult<Vec<DbResult<OpOutcome>>> {
        let _guard = self.lock(cal.as_str());
        let cur_seq = self.calendar_seq(cal)?.ok_or(DbError::NotFound)?;
        let mut seq = cur_seq;
        let mut b = Batch::new();
        b.expect(
            Tree::CalSeq,
            cal.as_str(),
            Some(keys::seq(cur_seq).to_vec()),
        );
        // What this batch already did, so later ops see earlier ones.
        let mut overlay: HashMap<String, Option<EventMeta>> = HashMap::new();
        let mut uid_overlay: HashMap<String, Option<String>> = HashMap::new();
        let mut results = Vec::with_capacity(ops.len());
        let t = now();
        for op in ops {
            let href = match &op {
                EventOp::Put(w, _) => w.href.clone(),
                EventOp::Delete(h, _) => h.clone(),
            };
            let ek = event_key(cal, &href);
            let old: Option<EventMeta> = match overlay.get(&href) {
                Some(o) => o.clone(),
                None => {
                    let raw = self.store.get(Tree::Events, &ek)?;
                    b.expect(Tree::Events, ek.clone(), raw.clone());
                    raw.as_deref()
                        .map(|v| decode(Tree::Events, v))
                        .transpose()?
                }
            };
            match op {
                EventOp::Put(w, pre) => {
                    if let Err(e) = check(&pre, old.as_ref()) {
                        results.push(Err(e));
                        continue;
                    }
                    let holder = match uid_overlay.get(&w.uid) {
                        Some(h) => h.clone(),
                        None => self.href_for_uid(cal, &w.uid)?,
                    };
                    if let Some(other) = holder {
                        if other != w.href {
                            results.push(Err(DbError::UidConflict {
                                uid: w.uid,
                                href: other,
                            }));
                            continue;
                        }
                    }
                    let etag = etag_of(&w.body);
                    if let Some(o) = &old {
                        if o.etag == etag && o.remote == w.remote && o.uid == w.uid {
                            let out = OpOutcome::Put(Box::new(PutResult {
                                meta: o.clone(),
                                old: Some(o.clone()),
                                unchanged: true,
                            }));
                            results.push(Ok(out));
                            continue;
                        }
                    }
                    seq += 1;
                    let meta = EventMeta {
                        id: old
                            .as_ref()
                            .map(|o| o.id.clone())
                            .or(w.id.clone())
                            .unwrap_or_else(EventId::generate),
                        calendar: cal.clone(),
                        href: w.href.clone(),
                        uid: w.uid.clone(),
                        etag,
                        seq,
                        start: w.start,
                        end: w.end,
                        recurring: w.recurring,
                        created: old.as_ref().map(|o| o.created).unwrap_or(t),
                        last_modified: w.last_modified.unwrap_or(t),
                        remote: w.remote.clone(),
                    };
                    if let Some(o) = &old {
                        self.unindex(&mut b, o);
                        if o.uid != meta.uid {
                            uid_overlay.insert(o.uid.clone(), None);
                        }
                    } else if let Some(ts) = self.store.get(Tree::Tombstones, &ek)? {
                        // Re-created after a deletion: the tombstone goes.
                        b.delete(Tree::Tombstones, ek.clone());
                        if let Some(s) = keys::seq_from(&ts) {
                            b.delete(Tree::Changes, change_key(cal, s));
                        }
                    }
                    b.put(Tree::Events, ek.clone(), encode(&meta));
                    b.put(Tree::Bodies, ek.clone(), w.body);
                    self.index(&mut b, &meta);
                    let mut change = vec![KIND_PUT];
                    change.extend_from_slice(w.href.as_bytes());
                    b.put(Tree::Changes, change_key(cal, seq), change);
                    uid_overlay.insert(meta.uid.clone(), Some(meta.href.clone()));
                    overlay.insert(href, Some(meta.clone()));
                    let out = OpOutcome::Put(Box::new(PutResult {
                        meta,
                        old,
                        unchanged: false,
                    }));
                    b.extend(extra(&out)?);
                    results.push(Ok(out));
                }
                EventOp::Delete(_, pre) => {
                    if let Err(e) = check(&pre, old.as_ref()) {
                        results.push(Err(e));
                        continue;
                    }
                    let Some(old) = old else {
                        results.push(Err(DbError::NotFound));
                        continue;
                    };
                    seq += 1;
                    self.unindex(&mut b, &old);
                    b.delete(Tree::Events, ek.clone());
                    b.delete(Tree::Bodies, ek.clone());
                    b.put(Tree::Tombstones, ek.clone(), keys::seq(seq).to_vec());
                    let mut change = vec![KIND_DELETE];
                    change.extend_from_slice(href.as_bytes());
                    b.put(Tree::Changes, change_key(cal, seq), change);
                    uid_overlay.insert(old.uid.clone(), None);
                    overlay.insert(href, None);
                    let out = OpOutcome::Deleted(Box::new(old));
                    b.extend(extra(&out)?);
                    results.push(Ok(out));
                }
            }
        }
        if seq != cur_seq {
            b.put(Tree::CalSeq, cal.as_str(), keys::seq(seq).to_vec());
        }
        b.extend(tail);
        self.store.commit(b)?;
        Ok(results)
    }

    fn index(&self, b: &mut Batch, m: &EventMeta) {
        let cal = m.calendar.as_str().as_bytes();
        b.put(
            Tree::EventIds,
            m.id.as_str(),
            key(&[cal, m.href.as_bytes()]),
        );
        b.put(
            Tree::EventUids,
            key(&[cal, m.uid.as_bytes()]),
            m.href.as_bytes().to_vec(),
        );
        if let Some(r) = &m.remote {
            b.put(
                Tree::RemoteIds,
                key(&[cal, r.id.as_bytes()]),
                m.href.as_bytes().to_vec(),
            );
        }
        if is_long(m.start, m.end, m.recurring) {
            let mut v = keys::ts(m.start).to_vec();
            v.extend_from_slice(&keys::ts(m.end));
            b.put(Tree::EventLong, key(&[cal, m.href.as_bytes()]), v);
        } else {
            b.put(
                Tree::EventTimes,
                time_key(&m.calendar, m.start, &m.href),
                keys::ts(m.end).to_vec(),
            );
        }
    }

    fn unindex(&self, b: &mut Batch, m: &EventMeta) {
        let cal = m.calendar.as_str().as_bytes();
        b.delete(Tree::EventIds, m.id.as_str());
        b.delete(Tree::EventUids, key(&[cal, m.uid.as_bytes()]));
        if let Some(r) = &m.remote {
            b.delete(Tree::RemoteIds, key(&[cal, r.id.as_bytes()]));
        }
        b.delete(Tree::EventLong, key(&[cal, m.href.as_bytes()]));
        b.delete(Tree::EventTimes, time_key(&m.calendar, m.start, &m.href));
        b.delete(Tree::Changes, change_key(&m.calendar, m.seq));
    }

    /// Changes after `since` (0: every live event). `None` when `since` is
    /// not a sequence number this calendar has reached, so the caller can
    /// refuse the token.
    pub fn changes_since(
        &self,
        cal: &CalendarId,
        since: u64,
    ) -> DbResult<Option<(u64, Vec<Change>)>> {
        let current = self.calendar_seq(cal)?.ok_or(DbError::NotFound)?;
        if since > current {
            return Ok(None);
        }
        let p = prefix(cal.as_str().as_bytes());
        let from = change_key(cal, since + 1);
        let to = keys::prefix_end(&p);
        let mut out = Vec::new();
        for r in self.store.range(Tree::Changes, &from, &to) {
            let (k, v) = r?;
            let Some(seq) = keys::seq_from(&k[p.len()..]) else {
                continue;
            };
            if seq > current {
                // Written after we read the sequence: the next sync sees it.
                break;
            }
            let deleted = v.first() == Some(&KIND_DELETE);
            if since == 0 && deleted {
                continue;
            }
            out.push(Change {
                seq,
                href: String::from_utf8_lossy(&v[1..]).into_owned(),
                deleted,
            });
        }
        Ok(Some((current, out)))
    }
}

fn check(pre: &Precondition, old: Option<&EventMeta>) -> DbResult<()> {
    let ok = match (pre, old) {
        (Precondition::None, _) => true,
        (Precondition::IfMatch(e), Some(o)) => o.etag == e.trim_matches('"'),
        (Precondition::IfMatch(_), None) => false,
        (Precondition::IfExists, o) => o.is_some(),
        (Precondition::IfAbsent, o) => o.is_none(),
    };
    if ok {
        Ok(())
    } else {
        Err(DbError::PreconditionFailed)
    }
}
