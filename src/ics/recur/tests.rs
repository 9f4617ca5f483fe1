use std::time::Instant as Clock;

use chrono::{NaiveDateTime, TimeZone};

use super::*;
use crate::ics::parse;

fn utc(s: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
        .unwrap_or_else(|_| panic!("bad time {s}"))
        .and_utc()
}

/// A VCALENDAR around the given components (lines joined with CRLF).
fn cal(body: &str) -> Component {
    let text = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{}\r\nEND:VCALENDAR\r\n",
        body.trim()
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("\r\n")
    );
    parse(text.as_bytes()).unwrap()
}

fn starts(list: &[Instance]) -> Vec<String> {
    list.iter()
        .map(|i| i.start.format("%Y-%m-%d %H:%M").to_string())
        .collect()
}

fn expand(c: &Component, from: &str, to: &str) -> Vec<Instance> {
    instances(c, utc(from), utc(to), &ExpandOptions::default()).unwrap()
}

const WEEKLY_BERLIN: &str = "
    BEGIN:VEVENT
    UID:weekly@x
    DTSTAMP:20240101T000000Z
    SEQUENCE:2
    DTSTART;TZID=Europe/Berlin:20240311T090000
    DTEND;TZID=Europe/Berlin:20240311T100000
    RRULE:FREQ=WEEKLY;COUNT=6
    EXDATE:20240318T080000Z
    END:VEVENT
    BEGIN:VEVENT
    UID:weekly@x
    DTSTAMP:20240101T000000Z
    RECURRENCE-ID;TZID=Europe/Berlin:20240325T090000
    DTSTART;TZID=Europe/Berlin:20240325T110000
    DTEND;TZID=Europe/Berlin:20240325T113000
    SUMMARY:moved
    END:VEVENT";

#[test]
fn rule_exdate_override_and_dst() {
    let c = cal(WEEKLY_BERLIN);
    let got = expand(&c, "2024-01-01 00:00", "2025-01-01 00:00");
    // 03-11 and 03-18 are CET (+1), from 03-31 CEST (+2); 03-18 is excluded
    // by a UTC EXDATE; 03-25 is moved by an override that has no SEQUENCE
    // while the master has SEQUENCE:2.
    assert_eq!(
        starts(&got),
        [
            "2024-03-11 08:00",
            "2024-03-25 10:00",
            "2024-04-01 07:00",
            "2024-04-08 07:00",
            "2024-04-15 07:00"
        ]
    );
    let moved = &got[1];
    assert_eq!(moved.component, 1);
    assert_eq!((moved.end - moved.start).num_minutes(), 30);
    assert_eq!(
        moved.recurrence_id,
        Some(DateTimeValue::Zoned {
            local: NaiveDateTime::parse_from_str("2024-03-25 09:00", "%Y-%m-%d %H:%M").unwrap(),
            tzid: "Europe/Berlin".into()
        })
    );
    assert!(got
        .iter()
        .filter(|i| i.component == 0)
        .all(|i| (i.end - i.start).num_minutes() == 60));
    assert_eq!(
        got[0]
            .recurrence_id
            .as_ref()
            .map(|r| r.to_string())
            .as_deref(),
        Some("20240311T090000")
    );
}

#[test]
fn override_without_sequence_suppresses_master_with_sequence() {
    // calcard pairs overrides on (SEQUENCE, RECURRENCE-ID) and keeps the
    // master instance here; RFC 5545 pairs on RECURRENCE-ID alone.
    let c = cal("
        BEGIN:VEVENT
        UID:s@x
        SEQUENCE:2
        DTSTART:20240101T090000Z
        DURATION:PT1H
        RRULE:FREQ=DAILY;COUNT=3
        END:VEVENT
        BEGIN:VEVENT
        UID:s@x
        RECURRENCE-ID:20240102T090000Z
        DTSTART:20240102T150000Z
        DURATION:PT1H
        END:VEVENT");
    let got = expand(&c, "2024-01-01 00:00", "2024-02-01 00:00");
    assert_eq!(
        starts(&got),
        ["2024-01-01 09:00", "2024-01-02 15:00", "2024-01-03 09:00"]
    );
    assert_eq!(got[1].component, 1);
}

#[test]
fn orphan_override_still_appears_and_cancelled_ones_vanish() {
    let c = cal("
        BEGIN:VEVENT
        UID:o@x
        DTSTART:20240101T090000Z
        RRULE:FREQ=DAILY;COUNT=3
        END:VEVENT
        BEGIN:VEVENT
        UID:o@x
        RECURRENCE-ID:20240101T100000Z
        DTSTART:20240105T100000Z
        END:VEVENT
        BEGIN:VEVENT
        UID:o@x
        RECURRENCE-ID:20240102T090000Z
        DTSTART:20240102T090000Z
        STATUS:CANCELLED
        END:VEVENT");
    let got = expand(&c, "2024-01-01 00:00", "2024-02-01 00:00");
    assert_eq!(
        starts(&got),
        ["2024-01-01 09:00", "2024-01-03 09:00", "2024-01-05 10:00"]
    );
}

#[test]
fn this_and_future_shifts_later_instances() {
    let c = cal("
        BEGIN:VEVENT
        UID:f@x
        DTSTART:20240101T090000Z
        DTEND:20240101T100000Z
        RRULE:FREQ=DAILY;COUNT=5
        END:VEVENT
        BEGIN:VEVENT
        UID:f@x
        RECURRENCE-ID;RANGE=THISANDFUTURE:20240103T090000Z
        DTSTART:20240103T120000Z
        DTEND:20240103T140000Z
        SUMMARY:later and longer
        END:VEVENT");
    let got = expand(&c, "2024-01-01 00:00", "2024-02-01 00:00");
    assert_eq!(
        starts(&got),
        [
            "2024-01-01 09:00",
            "2024-01-02 09:00",
            "2024-01-03 12:00",
            "2024-01-04 12:00",
            "2024-01-05 12:00"
        ]
    );
    assert!(got[3..]
        .iter()
        .all(|i| i.component == 1 && (i.end - i.start).num_hours() == 2));
    assert_eq!(
        got[4].recurrence_id.as_ref().unwrap().to_string(),
        "20240105T090000Z"
    );
    // A window that only the shift brings instances into.
    assert_eq!(
        starts(&expand(&c, "2024-01-05 11:00", "2024-01-05 13:00")),
        ["2024-01-05 12:00"]
    );
}

#[test]
fn exdate_matches_across_value_types_and_zones() {
    let c = cal("
        BEGIN:VEVENT
        UID:e@x
        DTSTART;TZID=America/New_York:20240101T090000
        RRULE:FREQ=DAILY;COUNT=5
        EXDATE;TZID=Europe/Berlin:20240102T150000
        EXDATE;VALUE=DATE:20240104
        END:VEVENT");
    let got = expand(&c, "2024-01-01 00:00", "2024-02-01 00:00");
    assert_eq!(
        starts(&got),
        ["2024-01-01 14:00", "2024-01-03 14:00", "2024-01-05 14:00"]
    );
    // An all-day series excluded by a date-time EXDATE on the same date.
    let c = cal("
        BEGIN:VEVENT
        UID:d@x
        DTSTART;VALUE=DATE:20240101
        RRULE:FREQ=DAILY;COUNT=3
        EXDATE:20240102T000000
        END:VEVENT");
    assert_eq!(
        starts(&expand(&c, "2024-01-01 00:00", "2024-02-01 00:00")),
        ["2024-01-01 00:00", "2024-01-03 00:00"]
    );
}

#[test]
fn all_day_instances_stay_on_their_dates() {
    let c = cal("
        BEGIN:VEVENT
        UID:a@x
        DTSTART;VALUE=DATE:20240101
        DTEND;VALUE=DATE:20240103
        RRULE:FREQ=YEARLY;COUNT=2
        END:VEVENT
        BEGIN:VEVENT
        UID:b@x
        DTSTART;VALUE=DATE:20240601
        END:VEVENT");
    let tokyo = Zone::Iana(chrono_tz::Asia::Tokyo);
    let opts = ExpandOptions {
        floating: tokyo.clone(),
        ..Default::default()
    };
    let got = instances(&c, utc("2023-01-01 00:00"), utc("2026-01-01 00:00"), &opts).unwrap();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|i| i.all_day));
    // Midnight in Tokyo is 15:00 UTC the day before.
    assert_eq!(
        starts(&got),
        ["2023-12-31 15:00", "2024-05-31 15:00", "2024-12-31 15:00"]
    );
    assert_eq!((got[0].end - got[0].start).num_days(), 2);
    assert_eq!(
        (got[1].end - got[1].start).num_days(),
        1,
        "a DATE without DTEND lasts one day"
    );
    assert_eq!(
        tokyo.from_utc(got[1].start).date().to_string(),
        "2024-06-01"
    );
    assert_eq!(
        got[2].recurrence_id,
        Some(DateTimeValue::Date(
            chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()
        ))
    );
}

#[test]
fn rdates_with_periods_and_dtstart_counts_toward_count() {
    let c = cal("
        BEGIN:VEVENT
        UID:r@x
        DTSTART:20240101T090000Z
        DTEND:20240101T093000Z
        RDATE;VALUE=PERIOD:20240110T120000Z/PT3H,20240111T120000Z/20240111T123000Z
        RDATE:20240101T090000Z,20240120T090000Z
        END:VEVENT");
    let got = expand(&c, "2024-01-01 00:00", "2024-02-01 00:00");
    assert_eq!(
        starts(&got),
        [
            "2024-01-01 09:00",
            "2024-01-10 12:00",
            "2024-01-11 12:00",
            "2024-01-20 09:00"
        ]
    );
    let lengths: Vec<i64> = got
        .iter()
        .map(|i| (i.end - i.start).num_minutes())
        .collect();
    assert_eq!(lengths, [30, 180, 30, 30]);
    // DTSTART on a Monday, rule on Tuesdays: DTSTART is the first of 3.
    let c = cal("
        BEGIN:VEVENT
        UID:c@x
        DTSTART:20240101T090000Z
        RRULE:FREQ=WEEKLY;BYDAY=TU;COUNT=3
        END:VEVENT");
    assert_eq!(
        starts(&expand(&c, "2024-01-01 00:00", "2024-03-01 00:00")),
        ["2024-01-01 09:00", "2024-01-02 09:00", "2024-01-09 09:00"]
    );
}

#[test]
fn overlap_follows_rfc4791() {
    let c = cal("
        BEGIN:VEVENT
        UID:z@x
        DTSTART:20240101T090000Z
        END:VEVENT
        BEGIN:VEVENT
        UID:y@x
        DTSTART:20240101T100000Z
        DTEND:20240101T110000Z
        END:VEVENT");
    // Zero-length at the range start is in; an event ending at the start is out.
    assert_eq!(expand(&c, "2024-01-01 09:00", "2024-01-01 09:30").len(), 1);
    assert_eq!(expand(&c, "2024-01-01 08:00", "2024-01-01 09:00").len(), 0);
    assert_eq!(expand(&c, "2024-01-01 11:00", "2024-01-01 12:00").len(), 0);
    assert_eq!(expand(&c, "2024-01-01 10:59", "2024-01-01 12:00").len(), 1);
    assert_eq!(
        expand(&c, "2024-01-01 09:00", "2024-01-01 10:30")
            .iter()
            .map(|i| i.recurrence_id.is_none())
            .collect::<Vec<_>>(),
        [true, true]
    );
}

#[test]
fn floating_times_use_the_callers_zone() {
    let c = cal("
        BEGIN:VEVENT
        UID:fl@x
        DTSTART:20240701T090000
        DTEND:20240701T100000
        END:VEVENT
        BEGIN:VEVENT
        UID:unknown@x
        DTSTART;TZID=Nowhere/Special:20240701T090000
        END:VEVENT");
    let opts = ExpandOptions {
        floating: Zone::Iana(chrono_tz::Europe::Berlin),
        ..Default::default()
    };
    let got = instances(&c, utc("2024-07-01 00:00"), utc("2024-07-02 00:00"), &opts).unwrap();
    assert_eq!(starts(&got), ["2024-07-01 07:00", "2024-07-01 07:00"]);
}

#[test]
fn windows_and_vtimezone_zones() {
    let c = cal("
        BEGIN:VTIMEZONE
        TZID:Custom Zone
        BEGIN:STANDARD
        DTSTART:16010101T000000
        TZOFFSETFROM:+0330
        TZOFFSETTO:+0330
        END:STANDARD
        END:VTIMEZONE
        BEGIN:VEVENT
        UID:w@x
        DTSTART;TZID=W. Europe Standard Time:20240101T090000
        RRULE:FREQ=MONTHLY;COUNT=7
        END:VEVENT
        BEGIN:VEVENT
        UID:c@x
        DTSTART;TZID=Custom Zone:20240101T090000
        END:VEVENT");
    let got = expand(&c, "2024-01-01 00:00", "2025-01-01 00:00");
    assert_eq!(
        starts(&got),
        [
            "2024-01-01 05:30",
            "2024-01-01 08:00",
            "2024-02-01 08:00",
            "2024-03-01 08:00",
            "2024-04-01 07:00",
            "2024-05-01 07:00",
            "2024-06-01 07:00",
            "2024-07-01 07:00"
        ]
    );
}

#[test]
fn an_old_weekly_rule_expands_cheaply_over_a_month() {
    let c = cal("
        BEGIN:VEVENT
        UID:old@x
        DTSTART;TZID=Europe/Berlin:20190107T090000
        DTEND;TZID=Europe/Berlin:20190107T100000
        RRULE:FREQ=WEEKLY;BYDAY=MO,WE
        END:VEVENT");
    let got = expand(&c, "2024-03-01 00:00", "2024-04-01 00:00");
    assert_eq!(got.len(), 8);
    assert_eq!(starts(&got)[0], "2024-03-04 08:00");
    assert_eq!(starts(&got)[7], "2024-03-27 08:00");
}

#[test]
fn hostile_series_are_bounded() {
    let c = cal("
        BEGIN:VEVENT
        UID:h@x
        DTSTART:20200101T000000Z
        RRULE:FREQ=SECONDLY
        END:VEVENT
        BEGIN:VEVENT
        UID:n@x
        DTSTART:20200101T000000Z
        RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30
        END:VEVENT
        BEGIN:VEVENT
        UID:k@x
        DTSTART:20200101T000000Z
        RRULE:FREQ=MINUTELY;COUNT=4000000000
        END:VEVENT");
    let opts = ExpandOptions {
        max_instances: 5_000,
        ..Default::default()
    };
    let clock = Clock::now();
    let got = instances(&c, utc("2024-01-01 00:00"), utc("2026-01-01 00:00"), &opts).unwrap();
    assert_eq!(got.len(), 5_000);
    assert!(clock.elapsed().as_secs() < 10, "took {:?}", clock.elapsed());
    let (s, e) = series_span(&c, &opts).unwrap();
    assert_eq!((s, e), (utc("2020-01-01 00:00").timestamp(), i64::MAX));
}

#[test]
fn series_span_is_quick_and_right() {
    let span = |body: &str| series_span(&cal(body), &ExpandOptions::default()).unwrap();
    let t = |s: &str| utc(s).timestamp();
    assert_eq!(
        span("BEGIN:VEVENT\nUID:1\nDTSTART:20240101T090000Z\nDTEND:20240101T100000Z\nRRULE:FREQ=DAILY;COUNT=10\nEND:VEVENT"),
        (t("2024-01-01 09:00"), t("2024-01-10 10:00"))
    );
    assert_eq!(
        span("BEGIN:VEVENT\nUID:1\nDTSTART:20240101T090000Z\nRRULE:FREQ=DAILY\nEND:VEVENT").1,
        i64::MAX
    );
    let (_, until_end) = span("BEGIN:VEVENT\nUID:1\nDTSTART:20240101T090000Z\nRRULE:FREQ=DAILY;UNTIL=20240301T000000Z\nEND:VEVENT");
    assert!(until_end >= t("2024-02-29 09:00") && until_end < t("2024-03-05 00:00"));
    // An override moved past the end of the series extends the span; an
    // RDATE before DTSTART starts it.
    assert_eq!(
        span("BEGIN:VEVENT\nUID:1\nDTSTART:20240101T090000Z\nRRULE:FREQ=DAILY;COUNT=2\nRDATE:20231201T090000Z\nEND:VEVENT\n\
              BEGIN:VEVENT\nUID:1\nRECURRENCE-ID:20240102T090000Z\nDTSTART:20240301T090000Z\nDURATION:PT2H\nEND:VEVENT"),
        (t("2023-12-01 09:00"), t("2024-03-01 11:00"))
    );
    // An unscheduled VTODO matches every range.
    assert_eq!(
        span("BEGIN:VTODO\nUID:1\nSUMMARY:x\nEND:VTODO"),
        (i64::MIN, i64::MAX)
    );
    // A rule that never yields still spans its DTSTART.
    assert_eq!(
        span("BEGIN:VEVENT\nUID:1\nDTSTART:20240101T090000Z\nRRULE:FREQ=YEARLY;COUNT=3;BYMONTH=2;BYMONTHDAY=30\nEND:VEVENT"),
        (t("2024-01-01 09:00"), t("2024-01-01 09:00"))
    );
}

#[test]
fn expand_calendar_writes_utc_instances() {
    let c = cal(&format!(
        "BEGIN:VTIMEZONE\nTZID:Europe/Berlin\nBEGIN:STANDARD\nDTSTART:19701025T030000\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nEND:STANDARD\nEND:VTIMEZONE\n{WEEKLY_BERLIN}"
    ));
    let out = expand_calendar(
        &c,
        utc("2024-03-01 00:00"),
        utc("2024-04-05 00:00"),
        &ExpandOptions::default(),
    )
    .unwrap();
    assert!(out.children_named("VTIMEZONE").next().is_none());
    let evs: Vec<&Component> = out.children_named("VEVENT").collect();
    assert_eq!(evs.len(), 3);
    for ev in &evs {
        for gone in ["RRULE", "EXDATE", "RDATE"] {
            assert!(ev.prop(gone).is_none(), "{gone} left in {ev}");
        }
        assert!(ev.value("DTSTART").unwrap().ends_with('Z'));
        assert!(ev.value("RECURRENCE-ID").unwrap().ends_with('Z'));
        assert!(ev.props.iter().all(|p| p.param("TZID").is_none()), "{ev}");
    }
    assert_eq!(evs[0].value("RECURRENCE-ID"), Some("20240311T080000Z"));
    assert_eq!(evs[0].value("DTEND"), Some("20240311T090000Z"));
    assert_eq!(evs[1].value("SUMMARY"), Some("moved"));
    assert_eq!(evs[1].value("RECURRENCE-ID"), Some("20240325T080000Z"));
    assert_eq!(evs[1].value("DTSTART"), Some("20240325T100000Z"));
    assert_eq!(evs[2].value("DTSTART"), Some("20240401T070000Z"));
    // The result is itself an object that expands to the same instances.
    let again = expand(&out, "2024-03-01 00:00", "2024-04-05 00:00");
    assert_eq!(
        starts(&again),
        ["2024-03-11 08:00", "2024-03-25 10:00", "2024-04-01 07:00"]
    );
}

#[test]
fn limit_recurrence_set_keeps_master_and_overrides_in_range() {
    let c = cal(WEEKLY_BERLIN);
    let inside = limit_recurrence_set(
        &c,
        utc("2024-03-20 00:00"),
        utc("2024-03-30 00:00"),
        &ExpandOptions::default(),
    )
    .unwrap();
    assert_eq!(inside.children.len(), 2);
    let outside = limit_recurrence_set(
        &c,
        utc("2024-04-05 00:00"),
        utc("2024-05-01 00:00"),
        &ExpandOptions::default(),
    )
    .unwrap();
    assert_eq!(outside.children.len(), 1);
    assert!(outside.children[0].prop("RRULE").is_some());
}

#[test]
fn instances_are_sorted_across_uids_and_todos_use_due() {
    let c = cal("
        BEGIN:VTODO
        UID:t@x
        DUE:20240101T120000Z
        END:VTODO
        BEGIN:VEVENT
        UID:e@x
        DTSTART:20240101T080000Z
        DTEND:20240101T130000Z
        END:VEVENT
        BEGIN:VTODO
        UID:t2@x
        DTSTART:20240101T100000Z
        DUE:20240101T110000Z
        END:VTODO");
    let got = expand(&c, "2024-01-01 00:00", "2024-01-02 00:00");
    assert_eq!(
        starts(&got),
        ["2024-01-01 08:00", "2024-01-01 10:00", "2024-01-01 12:00"]
    );
    assert_eq!(
        got[1].end,
        Utc.with_ymd_and_hms(2024, 1, 1, 11, 0, 0).unwrap()
    );
    assert_eq!(
        got.iter().map(|i| i.component).collect::<Vec<_>>(),
        [1, 2, 0]
    );
}

#[test]
fn bad_values_are_errors_not_panics() {
    let c = cal("BEGIN:VEVENT\nUID:1\nDTSTART:20240101T090000Z\nRRULE:FREQ=SOMETIMES\nEND:VEVENT");
    let err = instances(
        &c,
        utc("2024-01-01 00:00"),
        utc("2024-02-01 00:00"),
        &ExpandOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("FREQ"), "{err}");
    let c = cal("BEGIN:VEVENT\nUID:1\nDTSTART:2024-13-01\nEND:VEVENT");
    assert!(series_span(&c, &ExpandOptions::default())
        .unwrap_err()
        .to_string()
        .contains("DTSTART"));
}

#[test]
fn any_range_is_safe_and_all_day_rules_stay_on_dates() {
    let c = cal("
        BEGIN:VEVENT
        UID:x@x
        DTSTART;VALUE=DATE:20240101
        RRULE:FREQ=DAILY;COUNT=3;BYHOUR=10
        RDATE:20240110T150000Z
        END:VEVENT
        BEGIN:VEVENT
        UID:y@x
        DTSTART:20240101T090000Z
        RRULE:FREQ=WEEKLY
        END:VEVENT");
    let opts = ExpandOptions {
        max_instances: 10,
        ..Default::default()
    };
    let all = instances(
        &c,
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        &opts,
    )
    .unwrap();
    assert_eq!(all.len(), 10);
    let days: Vec<String> = all
        .iter()
        .filter(|i| i.all_day)
        .map(|i| i.start.format("%Y-%m-%d %H:%M").to_string())
        .collect();
    assert_eq!(
        days,
        [
            "2024-01-01 00:00",
            "2024-01-02 00:00",
            "2024-01-03 00:00",
            "2024-01-10 00:00"
        ]
    );
    let span = series_span(&c, &opts).unwrap();
    assert_eq!(span.1, i64::MAX);
    expand_calendar(
        &c,
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        &opts,
    )
    .unwrap();
    limit_recurrence_set(
        &c,
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        &opts,
    )
    .unwrap();
}
