//! Benchmarks of the iCalendar engine on the paths the server's targets
//! depend on: parsing and writing stored objects (feeds render 5,000
//! events in <= 20 ms) and expanding recurrence over a month (a CalDAV
//! calendar-query over a month in <= 3 ms).

use std::hint::black_box;

use calbridge::ics::recur::{instances, ExpandOptions};
use calbridge::ics::rrule::RRule;
use calbridge::ics::vtimezone::vtimezone;
use calbridge::ics::{parse, serialize, Component};
use chrono::{NaiveDate, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};

/// A typical client-written event: VTIMEZONE, a weekly rule with EXDATE,
/// an override, an alarm, folded UTF-8 text (about 2 KB).
const TYPICAL: &[u8] = include_bytes!("../fixtures/ics/apple-weekly-override.ics");

const OLD_WEEKLY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\n\
BEGIN:VEVENT\r\nUID:old-weekly@example.org\r\nDTSTAMP:20190101T000000Z\r\n\
DTSTART;TZID=Europe/Berlin:20190107T090000\r\nDTEND;TZID=Europe/Berlin:20190107T100000\r\n\
RRULE:FREQ=WEEKLY;BYDAY=MO,WE\r\nEXDATE;TZID=Europe/Berlin:20240304T090000\r\n\
SUMMARY:Five-year-old weekly meeting\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:old-weekly@example.org\r\nDTSTAMP:20190101T000000Z\r\n\
RECURRENCE-ID;TZID=Europe/Berlin:20240313T090000\r\nDTSTART;TZID=Europe/Berlin:20240313T140000\r\n\
DTEND;TZID=Europe/Berlin:20240313T150000\r\nSUMMARY:Moved once\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

fn feed_of(n: usize) -> Component {
    let one = parse(TYPICAL).expect("fixture parses");
    let mut cal = Component::new("VCALENDAR");
    cal.props = one.props.clone();
    cal.children
        .extend(one.children_named("VTIMEZONE").cloned());
    let events: Vec<Component> = one.children_named("VEVENT").cloned().collect();
    for i in 0..n {
        let mut ev = events[i % events.len()].clone();
        if let Some(uid) = ev.prop_mut("UID") {
            uid.value = format!("{}-{i}", uid.value);
        }
        cal.children.push(ev);
    }
    cal
}

fn benches(c: &mut Criterion) {
    c.bench_function("parse typical event (2 KB)", |b| {
        b.iter(|| parse(black_box(TYPICAL)).unwrap())
    });
    let cal = parse(TYPICAL).unwrap();
    c.bench_function("serialize typical event", |b| {
        b.iter(|| serialize(black_box(&cal)))
    });
    c.bench_function("parse + serialize typical event", |b| {
        b.iter(|| serialize(&parse(black_box(TYPICAL)).unwrap()))
    });

    let feed = feed_of(5_000);
    c.bench_function("serialize 5,000 events (feed body)", |b| {
        b.iter(|| serialize(black_box(&feed)))
    });

    let (from, to) = (
        Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap(),
    );
    let opts = ExpandOptions::default();
    let old = parse(OLD_WEEKLY.as_bytes()).unwrap();
    c.bench_function("expand 5-year-old weekly rule over a month", |b| {
        b.iter(|| instances(black_box(&old), from, to, &opts).unwrap())
    });
    c.bench_function("parse + expand 5-year-old weekly rule over a month", |b| {
        b.iter(|| {
            let cal = parse(black_box(OLD_WEEKLY.as_bytes())).unwrap();
            instances(&cal, from, to, &opts).unwrap()
        })
    });

    let rule = RRule::parse("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30").unwrap();
    let start = NaiveDate::from_ymd_opt(2024, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    c.bench_function("rrule that never matches (gives up after 400 years)", |b| {
        b.iter(|| rule.iter(black_box(start)).count())
    });

    c.bench_function("vtimezone Europe/Berlin 2020-2030", |b| {
        b.iter(|| vtimezone(black_box("Europe/Berlin"), 2020, 2030).unwrap())
    });
}

criterion_group!(ics, benches);
criterion_main!(ics);
