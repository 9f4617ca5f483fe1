//! The write path: which local changes go upstream, the outbox rows that
//! record them in the same batch as the change, and the worker that drains
//! them (idempotent writes, etag guards, conflicts, refusals).
//!
//! Where a change goes:
//! - an event of a *bidirectional mirrored* calendar (written through
//!   CalDAV) → that calendar upstream;
//! - an event of a staff member's native `appointments` calendar (admin API
//!   or CalDAV) → their *primary* calendar, if they have one.
//!
//! Every upstream copy carries calbridge's marker `"<event id>;<etag>"`
//! (Google: a private extended property; Graph: a single-value extended
//! property), so a retry after a crash finds its own earlier write, and a
//! pull recognises calbridge's own writes (no echo, no duplicate).

use crate::model::outbox::{OutboxEntry, OutboxOp};
use crate::model::{now, AccountId, Calendar, CalendarSource, Direction, EventMeta};
use crate::store::db::outbox::next_seq;
use crate::store::db::DbResult;
use crate::store::{Batch, Db};

/// Where a change to an event of `cal` is written upstream: the target
/// calendar and its account.
pub fn target_for(db: &Db, cal: &Calendar) -> DbResult<Option<(Calendar, AccountId)>> {
    match &cal.source {
        CalendarSource::Mirrored { account, .. } => {
            Ok((cal.direction == Direction::Bidirectional).then(|| (cal.clone(), account.clone())))
        }
        CalendarSource::Native if cal.slug == "appointments" => Ok(db
            .calendars_of_staff(&cal.staff)?
            .into_iter()
            .find(|c| c.primary && !c.is_native() && c.direction == Direction::Bidirectional)
            .and_then(|c| match &c.source {
                CalendarSource::Mirrored { account, .. } => {
                    let a = account.clone();
                    Some((c, a))
                }
                CalendarSource::Native => None,
            })),
        CalendarSource::Native => Ok(None),
    }
}

/// The idempotency key of a new upstream copy of `meta` in `target`.
pub fn insert_key(meta: &EventMeta, target: &Calendar, seq: u64) -> String {
    format!("{}:{}:{seq}", meta.id, target.id)
}

/// The marker an upstream copy of `meta` carries.
pub fn marker(meta: &EventMeta) -> String {
    format!("{};{}", meta.id, meta.etag)
}

/// Split a marker into (event id, etag).
pub fn parse_marker(m: &str) -> Option<(&str, &str)> {
    let (id, etag) = m.split_once(';')?;
    crate::model::EventId::parse(id)?;
    Some((id, etag))
}

/// Outbox rows for a created or changed event (`old`: the event before,
/// whose bytes are kept to roll back to).
pub fn upsert_rows(
    db: &Db,
    source: &Calendar,
    target: &(Calendar, AccountId),
    meta: &EventMeta,
    old: Option<&EventMeta>,
) -> DbResult<Batch> {
    let previous = match old {
        Some(o) => db.event_body(&source.id, &o.href)?,
        None => None,
    };
    let seq = next_seq();
    db.outbox_rows(OutboxEntry {
        seq,
        account: target.1.clone(),
        target: target.0.id.clone(),
        source: source.id.clone(),
        href: meta.href.clone(),
        event: meta.id.clone(),
        op: OutboxOp::Upsert,
        key: insert_key(meta, &target.0, seq),
        remote: meta.remote.clone(),
        previous,
        attempts: 0,
        next_attempt: 0,
        last_error: None,
        created: now(),
    })
}

/// Outbox rows for a deleted event.
pub fn delete_rows(
    db: &Db,
    source: &Calendar,
    target: &(Calendar, AccountId),
    old: &EventMeta,
) -> DbResult<Batch> {
    let previous = db.event_body(&source.id, &old.href)?;
    let seq = next_seq();
    db.outbox_rows(OutboxEntry {
        seq,
        account: target.1.clone(),
        target: target.0.id.clone(),
        source: source.id.clone(),
        href: old.href.clone(),
        event: old.id.clone(),
        op: OutboxOp::Delete,
        key: insert_key(old, &target.0, seq),
        remote: old.remote.clone(),
        previous,
        attempts: 0,
        next_attempt: 0,
        last_error: None,
        created: now(),
    })
}

/// The `extra` hook for [`Db::put_event`] on `cal`: queue the change
/// upstream when the calendar has somewhere to write it.
pub fn on_put<'a>(
    db: &'a Db,
    cal: &'a Calendar,
) -> DbResult<impl FnOnce(&EventMeta, Option<&EventMeta>) -> DbResult<Batch> + 'a> {
    let target = target_for(db, cal)?;
    Ok(
        move |meta: &EventMeta, old: Option<&EventMeta>| match &target {
            Some(t) => upsert_rows(db, cal, t, meta, old),
            None => Ok(Batch::new()),
        },
    )
}

/// The `extra` hook for [`Db::delete_event`] on `cal`.
pub fn on_delete<'a>(
    db: &'a Db,
    cal: &'a Calendar,
) -> DbResult<impl FnOnce(&EventMeta) -> DbResult<Batch> + 'a> {
    let target = target_for(db, cal)?;
    Ok(move |old: &EventMeta| match &target {
        Some(t) => delete_rows(db, cal, t, old),
        None => Ok(Batch::new()),
    })
}

/// Queue every appointment of a staff member for their primary calendar
/// (the "push existing data" button). Idempotent: an event already written
/// upstream is updated, not created again, and queued entries coalesce.
/// Returns how many were queued; `None` when there is no primary calendar.
pub fn push_existing(db: &Db, staff: &crate::model::StaffId) -> DbResult<Option<usize>> {
    let native = db.appointments_calendar(staff)?;
    let Some(target) = target_for(db, &native)? else {
        return Ok(None);
    };
    let mut queued = 0;
    let mut batch = Batch::new();
    for meta in db.events_of_calendar(&native.id)? {
        batch.extend(upsert_rows(db, &native, &target, &meta, None)?);
        queued += 1;
        if batch.ops.len() > 2000 {
            db.commit_rows(std::mem::take(&mut batch))?;
        }
    }
    db.commit_rows(batch)?;
    Ok(Some(queued))
}

/// What processing one entry came to.
#[derive(Debug)]
pub enum Step {
    /// Written (or nothing left to write): the entry is gone.
    Done,
    /// Try again later (rate limit, outage): the account stops draining so
    /// its writes stay in order.
    Retry(crate::upstream::UpstreamError),
    /// The provider refuses for good: rolled back locally where that is
    /// possible, named in the status, not retried.
    Refused(String),
}

/// Undo a local change the provider refused for good. A CalDAV write into
/// a mirrored calendar goes back to the version before it (or away, if it
/// created the event); an appointment stays (the platform owns it) and
/// only the status names the refusal.
pub fn roll_back(db: &Db, e: &OutboxEntry) -> DbResult<()> {
    use crate::store::db::{DbError, EventWrite, Precondition};
    if e.source != e.target {
        return Ok(());
    }
    let current = db.event(&e.source, &e.href)?;
    match (e.op, &e.previous, current) {
        (OutboxOp::Upsert, Some(prev), Some(cur)) => {
            let Ok(cal) = crate::ics::parse(prev) else {
                return Ok(());
            };
            let source = db.calendar(&e.source)?;
            let zone = source.as_ref().and_then(|c| c.timezone.clone());
            let Ok(info) = crate::objects::analyze(&cal, zone.as_deref()) else {
                return Ok(());
            };
            let w = EventWrite {
                calendar: e.source.clone(),
                href: e.href.clone(),
                uid: info.uid,
                start: info.start,
                end: info.end,
                recurring: info.recurring,
                body: prev.clone(),
                remote: cur.remote.clone(),
                id: None,
                last_modified: None,
            };
            match db.put_event(w, &Precondition::IfMatch(cur.etag.clone()), |_, _| {
                Ok(Batch::new())
            }) {
                Ok(_) | Err(DbError::PreconditionFailed) | Err(DbError::UidConflict { .. }) => {
                    Ok(())
                }
                Err(err) => Err(err),
            }
        }
        (OutboxOp::Upsert, None, Some(cur)) => {
            match db.delete_event(
                &e.source,
                &e.href,
                &Precondition::IfMatch(cur.etag.clone()),
                |_| Ok(Batch::new()),
            ) {
                Ok(_) | Err(DbError::PreconditionFailed) | Err(DbError::NotFound) => Ok(()),
                Err(err) => Err(err),
            }
        }
        (OutboxOp::Delete, Some(prev), None) => {
            // The delete was refused: the event comes back.
            let Ok(cal) = crate::ics::parse(prev) else {
                return Ok(());
            };
            let Ok(info) = crate::objects::analyze(&cal, None) else {
                return Ok(());
            };
            let w = EventWrite {
                calendar: e.source.clone(),
                href: e.href.clone(),
                uid: info.uid,
                start: info.start,
                end: info.end,
                recurring: info.recurring,
                body: prev.clone(),
                remote: e.remote.clone(),
                id: Some(e.event.clone()),
                last_modified: None,
            };
            match db.put_event(w, &Precondition::IfAbsent, |_, _| Ok(Batch::new())) {
                Ok(_) | Err(DbError::PreconditionFailed) | Err(DbError::UidConflict { .. }) => {
                    Ok(())
                }
                Err(err) => Err(err),
            }
        }
        _ => Ok(()),
    }
}

/// Can a change to an event of `source` be written where it must go? A
/// write the target provider cannot express is refused before anything is
/// stored, with the reason (e.g. "Microsoft calendars cannot repeat
/// hourly").
pub fn check_expressible(
    db: &Db,
    source: &Calendar,
    object: &crate::ics::Component,
) -> DbResult<Result<(), String>> {
    let Some((target, account)) = target_for(db, source)? else {
        return Ok(Ok(()));
    };
    let Some(acc) = db.account(&account)? else {
        return Ok(Ok(()));
    };
    let zone = target.timezone.as_deref();
    let verdict = match acc.provider {
        crate::model::Provider::Google => {
            crate::upstream::google::write::event_from_ics(object, zone).map(|_| ())
        }
        crate::model::Provider::Microsoft => {
            crate::upstream::graph::write::event_from_ics(object, zone).map(|_| ())
        }
    };
    Ok(verdict.map_err(|u| u.0))
}

/// The `extra` hook for [`Db::apply_events`] on `cal` (puts and deletes in
/// one batch, e.g. a CalDAV MOVE within a calendar).
pub fn on_ops<'a>(
    db: &'a Db,
    cal: &'a Calendar,
) -> DbResult<impl FnMut(&crate::store::db::OpOutcome) -> DbResult<Batch> + 'a> {
    use crate::store::db::OpOutcome;
    let target = target_for(db, cal)?;
    Ok(move |out: &OpOutcome| match (&target, out) {
        (Some(t), OpOutcome::Put(p)) if !p.unchanged => {
            upsert_rows(db, cal, t, &p.meta, p.old.as_ref())
        }
        (Some(t), OpOutcome::Deleted(old)) => delete_rows(db, cal, t, old),
        _ => Ok(Batch::new()),
    })
}
