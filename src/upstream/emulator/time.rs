//! Time zones and timestamp formats shared by the Google and Graph fronts.
//!
//! Owns: resolving zone names the way each provider accepts them (IANA for
//! Google; Windows *or* IANA for Graph, through the CLDR tables in
//! [`crate::ics::windows_zones`]), turning wall-clock times into instants
//! across DST gaps, and the exact timestamp spellings each provider writes.
//! It does no I/O and knows nothing about events.

use chrono::{
    DateTime, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Utc,
};
use chrono_tz::Tz;

use crate::ics::windows_zones::{IANA_TO_WINDOWS, WINDOWS_TO_IANA};

/// Resolves an IANA zone name (the only kind Google accepts).
pub(crate) fn iana_zone(name: &str) -> Option<Tz> {
    if name.eq_ignore_ascii_case("utc") || name == "Etc/UTC" || name == "GMT" {
        return Some(Tz::UTC);
    }
    name.parse::<Tz>().ok()
}

/// Resolves a zone name the way Graph does: a Windows name, an IANA name,
/// or one of Graph's spellings of UTC.
pub(crate) fn any_zone(name: &str) -> Option<Tz> {
    let trimmed = name.trim();
    if trimmed.eq_ignore_ascii_case("utc")
        || trimmed.eq_ignore_ascii_case("tzone://Microsoft/Utc")
        || trimmed.eq_ignore_ascii_case("Coordinated Universal Time")
    {
        return Some(Tz::UTC);
    }
    if let Ok(i) = WINDOWS_TO_IANA.binary_search_by(|(w, _)| (*w).cmp(trimmed)) {
        return iana_zone(WINDOWS_TO_IANA[i].1);
    }
    if let Some((_, iana)) = WINDOWS_TO_IANA
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(trimmed))
    {
        return iana_zone(iana);
    }
    iana_zone(trimmed)
}

/// The Windows name Graph uses for a zone; IANA zones CLDR does not map keep
/// their IANA name (Graph echoes such names back as given).
pub(crate) fn windows_name(tz: Tz) -> String {
    let name = tz.name();
    if tz == Tz::UTC || name == "UTC" || name == "Etc/UTC" {
        return "UTC".to_string();
    }
    match IANA_TO_WINDOWS.binary_search_by(|(i, _)| (*i).cmp(name)) {
        Ok(i) => IANA_TO_WINDOWS[i].1.to_string(),
        Err(_) => name.to_string(),
    }
}

/// The instant a wall-clock time names in `tz`. An ambiguous time (DST
/// fall-back) takes the earlier instant; a time inside a DST gap moves
/// forward by the gap, as calendar applications do.
pub(crate) fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        LocalResult::None => {
            // Find where the wall clock exists again (gaps are at most a few
            // hours), then read `local` with the offset in force just before
            // the gap: 02:30 in a 02:00→03:00 gap becomes 03:30.
            let mut probe = local;
            for _ in 0..(24 * 60) {
                probe += Duration::minutes(1);
                if let LocalResult::Single(t) | LocalResult::Ambiguous(t, _) =
                    tz.from_local_datetime(&probe)
                {
                    let before = t.with_timezone(&Utc) - Duration::seconds(1);
                    let offset = tz.offset_from_utc_datetime(&before.naive_utc()).fix();
                    let secs = i64::from(offset.local_minus_utc());
                    return Utc.from_utc_datetime(&(local - Duration::seconds(secs)));
                }
            }
            Utc.from_utc_datetime(&local)
        }
    }
}

/// The wall-clock time of an instant in `tz`.
pub(crate) fn utc_to_local(tz: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&tz).naive_local()
}

/// Midnight at the start of `date` in `tz`, as an instant.
pub(crate) fn date_start(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    local_to_utc(tz, date.and_time(NaiveTime::MIN))
}

/// Google's timestamp spelling for `created`/`updated`: UTC with millis.
pub(crate) fn google_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Google's `dateTime` spelling: RFC 3339 with the offset of `tz`.
pub(crate) fn google_date_time(t: DateTime<Utc>, tz: Tz) -> String {
    let local = t.with_timezone(&tz);
    if tz == Tz::UTC {
        local.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        local.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// Graph's timestamp spelling for `createdDateTime` and friends: UTC with
/// seven fractional digits.
pub(crate) fn graph_stamp(t: DateTime<Utc>) -> String {
    let nanos = t.timestamp_subsec_nanos() / 100;
    format!("{}.{:07}Z", t.format("%Y-%m-%dT%H:%M:%S"), nanos)
}

/// Graph's `dateTimeTimeZone.dateTime` spelling: a wall-clock time with
/// seven fractional digits and no offset.
pub(crate) fn graph_local(t: NaiveDateTime) -> String {
    let nanos = t.and_utc().timestamp_subsec_nanos() / 100;
    format!("{}.{:07}", t.format("%Y-%m-%dT%H:%M:%S"), nanos)
}

/// Parses an RFC 3339 timestamp that must carry an offset (Google rejects
/// `timeMin` without one).
pub(crate) fn parse_rfc3339(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s.trim()).ok()
}

/// Parses a date `YYYY-MM-DD`.
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// Parses a Graph `dateTime`: a wall-clock time with up to seven fractional
/// digits, optionally followed by `Z` or an offset (which is then applied,
/// giving the wall-clock time in `tz`).
pub(crate) fn parse_graph_date_time(s: &str, tz: Tz) -> Option<NaiveDateTime> {
    let s = s.trim();
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(s) {
        return Some(utc_to_local(tz, with_offset.with_timezone(&Utc)));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t);
        }
    }
    parse_date(s).map(|d| d.and_time(NaiveTime::MIN))
}

/// Parses a Graph query window bound (`startDateTime`/`endDateTime`): an
/// ISO 8601 time; without an offset it is read as UTC.
pub(crate) fn parse_window_bound(s: &str) -> Option<DateTime<Utc>> {
    parse_graph_date_time(s, Tz::UTC).map(|local| Utc.from_utc_datetime(&local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_iana_names_resolve_both_ways() {
        assert_eq!(
            any_zone("Pacific Standard Time"),
            Some(Tz::America__Los_Angeles)
        );
        assert_eq!(
            any_zone("pacific standard time"),
            Some(Tz::America__Los_Angeles)
        );
        assert_eq!(any_zone("Europe/Berlin"), Some(Tz::Europe__Berlin));
        assert_eq!(any_zone("UTC"), Some(Tz::UTC));
        assert_eq!(any_zone("Not A Zone"), None);
        assert_eq!(windows_name(Tz::Europe__Berlin), "W. Europe Standard Time");
        assert_eq!(windows_name(Tz::UTC), "UTC");
        assert_eq!(iana_zone("Pacific Standard Time"), None);
    }

    #[test]
    fn dst_gap_moves_forward() {
        let tz = Tz::Europe__Berlin;
        let local = NaiveDate::from_ymd_opt(2026, 3, 29)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        let t = local_to_utc(tz, local);
        assert_eq!(t.to_rfc3339(), "2026-03-29T01:30:00+00:00");
    }

    #[test]
    fn stamps_are_spelled_like_the_providers() {
        let t = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        assert_eq!(google_stamp(t), "2026-03-02T09:00:00.000Z");
        assert_eq!(graph_stamp(t), "2026-03-02T09:00:00.0000000Z");
        assert_eq!(graph_local(t.naive_utc()), "2026-03-02T09:00:00.0000000");
        assert_eq!(
            google_date_time(t, Tz::Europe__Berlin),
            "2026-03-02T10:00:00+01:00"
        );
        assert_eq!(
            parse_graph_date_time("2026-03-02T09:00:00.0000000", Tz::UTC),
            Some(t.naive_utc())
        );
    }
}
