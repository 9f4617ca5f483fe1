//! The typed store's invariants: preconditions, UID uniqueness, the change
//! log behind sync tokens, the time index, batches.

use std::sync::Arc;

use super::*;
use crate::model::{Calendar, CalendarId, EventId, StaffId};
use crate::store::SledStore;

fn db() -> Db {
    Db::open(Arc::new(SledStore::temporary().unwrap())).unwrap()
}

fn setup() -> (Db, CalendarId) {
    let db = db();
    let c = db.create_company("Acme", "UTC").unwrap();
    let (_, cal) = db
        .create_staff(&c.id, "Anna", "anna@acme.example", "UTC", &[])
        .unwrap();
    (db, cal.id)
}

fn w(cal: &CalendarId, href: &str, uid: &str, start: i64, end: i64, body: &str) -> EventWrite {
    EventWrite {
        calendar: cal.clone(),
        href: href.into(),
        uid: uid.into(),
        start,
        end,
        recurring: false,
        body: body.as_bytes().to_vec(),
        remote: None,
        id: None,
        last_modified: None,
    }
}

fn put(db: &Db, ev: EventWrite, pre: Precondition) -> DbResult<PutOutcome> {
    db.put_event(ev, &pre, |_, _| Ok(Batch::new()))
}

#[test]
fn preconditions_and_uid_uniqueness() {
    let (db, cal) = setup();
    let a = put(
        &db,
        w(&cal, "a.ics", "u1", 0, 10, "A"),
        Precondition::IfAbsent,
    )
    .unwrap();
    assert!(a.created);
    assert!(matches!(
        put(
            &db,
            w(&cal, "a.ics", "u1", 0, 10, "A2"),
            Precondition::IfAbsent
        ),
        Err(DbError::PreconditionFailed)
    ));
    assert!(matches!(
        put(
            &db,
            w(&cal, "a.ics", "u1", 0, 10, "A2"),
            Precondition::IfMatch("nope".into())
        ),
        Err(DbError::PreconditionFailed)
    ));
    let a2 = put(
        &db,
        w(&cal, "a.ics", "u1", 0, 10, "A2"),
        Precondition::IfMatch(format!("\"{}\"", a.meta.etag)),
    )
    .unwrap();
    assert_ne!(a2.meta.etag, a.meta.etag);
    assert_eq!(a2.meta.id, a.meta.id, "the id survives changes");
    match put(&db, w(&cal, "b.ics", "u1", 0, 10, "B"), Precondition::None) {
        Err(DbError::UidConflict { href, .. }) => assert_eq!(href, "a.ics"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        db.delete_event(&cal, "missing.ics", &Precondition::None, |_| Ok(
            Batch::new()
        )),
        Err(DbError::NotFound)
    ));
    // After deleting, the UID is free again.
    db.delete_event(&cal, "a.ics", &Precondition::IfExists, |_| Ok(Batch::new()))
        .unwrap();
    put(
        &db,
        w(&cal, "b.ics", "u1", 0, 10, "B"),
        Precondition::IfAbsent,
    )
    .unwrap();
    assert_eq!(
        db.href_for_uid(&cal, "u1").unwrap().as_deref(),
        Some("b.ics")
    );
}

#[test]
fn identical_writes_change_nothing() {
    let (db, cal) = setup();
    put(&db, w(&cal, "a.ics", "u1", 0, 10, "A"), Precondition::None).unwrap();
    let seq = db.calendar_seq(&cal).unwrap().unwrap();
    let again = put(&db, w(&cal, "a.ics", "u1", 0, 10, "A"), Precondition::None).unwrap();
    assert!(again.unchanged);
    assert_eq!(
        db.calendar_seq(&cal).unwrap().unwrap(),
        seq,
        "no sequence number spent"
    );
}

#[test]
fn change_log_reports_exactly_what_changed_since_a_token() {
    let (db, cal) = setup();
    for i in 0..5 {
        put(
            &db,
            w(&cal, &format!("{i}.ics"), &format!("u{i}"), 0, 10, "x"),
            Precondition::None,
        )
        .unwrap();
    }
    let (t0, all) = db.changes_since(&cal, 0).unwrap().unwrap();
    assert_eq!(t0, 5);
    assert_eq!(all.len(), 5);
    put(
        &db,
        w(&cal, "1.ics", "u1", 0, 10, "changed"),
        Precondition::None,
    )
    .unwrap();
    put(
        &db,
        w(&cal, "1.ics", "u1", 0, 10, "changed again"),
        Precondition::None,
    )
    .unwrap();
    db.delete_event(&cal, "3.ics", &Precondition::None, |_| Ok(Batch::new()))
        .unwrap();
    let (t1, since) = db.changes_since(&cal, t0).unwrap().unwrap();
    assert_eq!(t1, 8);
    let mut got: Vec<(String, bool)> = since.iter().map(|c| (c.href.clone(), c.deleted)).collect();
    got.sort();
    assert_eq!(
        got,
        vec![("1.ics".into(), false), ("3.ics".into(), true)],
        "one row per href"
    );
    // Initial sync never lists deletions; a future token is refused.
    let (_, initial) = db.changes_since(&cal, 0).unwrap().unwrap();
    assert_eq!(initial.len(), 4);
    assert!(db.changes_since(&cal, 99).unwrap().is_none());
    // Re-creating a deleted href replaces its tombstone.
    put(
        &db,
        w(&cal, "3.ics", "u3", 0, 10, "back"),
        Precondition::IfAbsent,
    )
    .unwrap();
    let (_, since) = db.changes_since(&cal, t1).unwrap().unwrap();
    assert_eq!(since.len(), 1);
    assert!(!since[0].deleted);
    assert_eq!(db.changes_since(&cal, t0).unwrap().unwrap().1.len(), 2);
}

#[test]
fn time_index_finds_short_long_and_recurring_events() {
    let (db, cal) = setup();
    let day = 86_400;
    put(
        &db,
        w(&cal, "short.ics", "s", 10 * day, 10 * day + 3600, "s"),
        Precondition::None,
    )
    .unwrap();
    put(
        &db,
        w(&cal, "long.ics", "l", 0, 30 * day, "l"),
        Precondition::None,
    )
    .unwrap();
    let mut rec = w(&cal, "rec.ics", "r", 2 * day, i64::MAX, "r");
    rec.recurring = true;
    put(&db, rec, Precondition::None).unwrap();
    put(
        &db,
        w(&cal, "zero.ics", "z", 20 * day, 20 * day, "z"),
        Precondition::None,
    )
    .unwrap();
    let hits = |s: i64, e: i64| {
        let mut v: Vec<String> = db
            .events_overlapping(&cal, s, e)
            .unwrap()
            .into_iter()
            .map(|m| m.href)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        hits(10 * day, 11 * day),
        vec!["long.ics", "rec.ics", "short.ics"]
    );
    assert_eq!(
        hits(10 * day + 3600, 11 * day),
        vec!["long.ics", "rec.ics"],
        "end is exclusive"
    );
    assert_eq!(
        hits(20 * day, 20 * day + 1),
        vec!["long.ics", "rec.ics", "zero.ics"]
    );
    assert_eq!(hits(40 * day, 41 * day), vec!["rec.ics"]);
    assert_eq!(hits(-10 * day, -day), Vec::<String>::new());
    // Moving an event moves its index row.
    put(
        &db,
        w(&cal, "short.ics", "s", 50 * day, 50 * day + 60, "moved"),
        Precondition::None,
    )
    .unwrap();
    assert_eq!(hits(10 * day, 11 * day), vec!["long.ics", "rec.ics"]);
    assert_eq!(hits(50 * day, 51 * day), vec!["rec.ics", "short.ics"]);
}

#[test]
fn batches_apply_many_ops_with_one_commit_and_per_op_outcomes() {
    let (db, cal) = setup();
    put(&db, w(&cal, "keep.ics", "k", 0, 1, "k"), Precondition::None).unwrap();
    let ops = vec![
        EventOp::Put(w(&cal, "a.ics", "ua", 0, 1, "a"), Precondition::None),
        EventOp::Put(w(&cal, "a.ics", "ua", 0, 1, "a2"), Precondition::None),
        EventOp::Put(w(&cal, "b.ics", "ua", 0, 1, "b"), Precondition::None),
        EventOp::Delete("keep.ics".into(), Precondition::None),
        EventOp::Put(w(&cal, "c.ics", "k", 0, 1, "c"), Precondition::None),
        EventOp::Delete("nothing.ics".into(), Precondition::None),
    ];
    let mut extras = 0;
    let out = db
        .apply_events(&cal, ops, |_| {
            extras += 1;
            Ok(Batch::new())
        })
        .unwrap();
    assert!(out[0].is_ok() && out[1].is_ok());
    assert!(
        matches!(out[2], Err(DbError::UidConflict { .. })),
        "UID taken earlier in the batch"
    );
    assert!(out[3].is_ok());
    assert!(out[4].is_ok(), "UID freed earlier in the batch");
    assert!(matches!(out[5], Err(DbError::NotFound)));
    assert_eq!(extras, 4);
    assert_eq!(db.event_body(&cal, "a.ics").unwrap().unwrap(), b"a2");
    assert_eq!(db.calendar_seq(&cal).unwrap().unwrap(), 5);
    let ids: Vec<EventId> = db
        .events_of_calendar(&cal)
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids.len(), 2);
    for id in ids {
        assert!(db.event_by_id(&id).unwrap().is_some());
    }
}

#[test]
fn deleting_a_staff_member_removes_everything_of_theirs() {
    let (db, cal) = setup();
    put(&db, w(&cal, "a.ics", "u", 0, 1, "a"), Precondition::None).unwrap();
    let staff = db.calendar(&cal).unwrap().unwrap().staff;
    db.delete_staff(&staff).unwrap();
    assert!(db.calendar(&cal).unwrap().is_none());
    for tree in [
        Tree::Events,
        Tree::Bodies,
        Tree::EventIds,
        Tree::EventUids,
        Tree::EventTimes,
        Tree::Changes,
        Tree::CalSeq,
        Tree::Staff,
        Tree::StaffEmail,
        Tree::StaffCalendars,
        Tree::StaffCalendarSlugs,
    ] {
        assert_eq!(db.store().len(tree), 0, "{tree:?} left behind");
    }
}

#[test]
fn the_scan_finds_what_the_time_index_finds_in_the_same_order() {
    let (db, cal) = setup();
    let day = 86_400;
    // A deterministic mix: short events (some sharing a start), long
    // ones, recurring ones, zero-length ones.
    let mut x: u64 = 7;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    for i in 0..300 {
        let start = (next(60) as i64) * day + (next(4) as i64) * 3600;
        let end = match next(10) {
            0 => start,
            1 => start + (8 + next(20) as i64) * day,
            _ => start + 3600,
        };
        let mut ev = w(
            &cal,
            &format!("e{i:03}.ics"),
            &format!("u{i}"),
            start,
            end,
            "x",
        );
        ev.recurring = next(8) == 0;
        if ev.recurring {
            ev.end = i64::MAX;
        }
        put(&db, ev, Precondition::None).unwrap();
    }
    for (s, e) in [
        (0, i64::MAX),
        (20 * day, i64::MAX),
        (10 * day, 40 * day),
        (30 * day, 30 * day + 1),
    ] {
        let index: Vec<String> = db
            .events_overlapping(&cal, s, e)
            .unwrap()
            .into_iter()
            .map(|m| m.href)
            .collect();
        let scan: Vec<String> = db
            .events_overlapping_by_scan(&cal, s, e)
            .unwrap()
            .into_iter()
            .map(|m| m.href)
            .collect();
        assert!(!index.is_empty());
        assert_eq!(index, scan, "window {s}..{e}");
    }
}

#[test]
fn calendars_are_found_by_name_and_a_version_1_store_gets_the_index() {
    let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
    let db = Db::open(store.clone()).unwrap();
    let c = db.create_company("Acme", "UTC").unwrap();
    let (anna, appts) = db
        .create_staff(&c.id, "Anna", "anna@acme.example", "UTC", &[])
        .unwrap();
    let (bob, _) = db
        .create_staff(&c.id, "Bob", "bob@acme.example", "UTC", &[])
        .unwrap();
    let mut work = appts.clone();
    work.id = CalendarId::generate();
    work.slug = "work".into();
    db.create_calendar(&work).unwrap();
    assert!(matches!(
        db.create_calendar(&Calendar {
            id: CalendarId::generate(),
            ..work.clone()
        }),
        Err(DbError::Duplicate(_))
    ));
    let found =
        |db: &Db, who: &StaffId, slug: &str| db.calendar_by_slug(who, slug).unwrap().map(|c| c.id);
    assert_eq!(found(&db, &anna.id, "work"), Some(work.id.clone()));
    assert_eq!(found(&db, &anna.id, "appointments"), Some(appts.id.clone()));
    assert_eq!(found(&db, &bob.id, "work"), None);
    assert_eq!(found(&db, &anna.id, "wor"), None);

    // A store written by schema version 1 had no slug index.
    let mut b = Batch::new();
    for row in store.scan_prefix(Tree::StaffCalendarSlugs, b"") {
        b.delete(Tree::StaffCalendarSlugs, row.unwrap().0.to_vec());
    }
    b.put(Tree::Meta, "schema_version", "1");
    store.commit(b).unwrap();
    assert_eq!(found(&db, &anna.id, "work"), None);
    let db = Db::open(store.clone()).unwrap();
    assert_eq!(found(&db, &anna.id, "work"), Some(work.id.clone()));
    assert!(found(&db, &bob.id, "appointments").is_some());
    assert_eq!(
        store.get(Tree::Meta, b"schema_version").unwrap().as_deref(),
        Some(SCHEMA_VERSION.to_string().as_bytes())
    );

    db.delete_calendar(&work.id).unwrap();
    assert_eq!(found(&db, &anna.id, "work"), None);
    db.create_calendar(&work).unwrap();
    assert_eq!(found(&db, &anna.id, "work"), Some(work.id));
}
