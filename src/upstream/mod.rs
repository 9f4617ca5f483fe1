//! Upstream providers: Google Calendar v3 and Microsoft Graph clients, the
//! mapping between their JSON and iCalendar, and the emulator of both.
//!
//! Every call goes through [`http::Upstream`] (classification, retry,
//! backoff); OAuth goes through [`oauth::OauthClient`].

pub mod emulator;
pub mod google;
pub mod graph;
pub mod http;
pub mod oauth;
pub mod provider;

pub use http::{RetryPolicy, Upstream, UpstreamError};

use chrono::{Datelike, NaiveDate};

/// Whether a provider's ISO 8601 date or date-time starts with a plain
/// four-digit year. chrono's `%Y` also takes a sign and more digits
/// (`-2025-04-22`, `+12025-01-01`), which iCalendar cannot write.
pub fn four_digit_year(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// A provider's `YYYY-MM-DD` date, or `None`.
pub fn iso_date(s: &str) -> Option<NaiveDate> {
    if !four_digit_year(s) {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// A provider's iCalUID (or id) as the UID of the object made from it:
/// without control characters (a line break cannot be written into a UID
/// line as it is) and trimmed, as an object's analysis reads it back.
pub fn clean_uid(raw: &str) -> String {
    let kept: String = raw.chars().filter(|c| !c.is_control()).collect();
    kept.trim().to_string()
}

/// Whether a moment's year can be written as iCalendar's four digits
/// (an offset or a zone can move year 9999 or 0001 over the edge).
pub fn writable_year(d: &impl Datelike) -> bool {
    (1..=9999).contains(&d.year())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_dates_need_a_plain_four_digit_year() {
        assert_eq!(iso_date("2025-04-22"), NaiveDate::from_ymd_opt(2025, 4, 22));
        for bad in [
            "-2025-04-22",
            "+2025-04-22",
            "12025-04-22",
            "25-04-22",
            "2025-4-22x",
            "",
        ] {
            assert_eq!(iso_date(bad), None, "{bad}");
        }
        assert!(writable_year(
            &NaiveDate::from_ymd_opt(9999, 12, 31).unwrap()
        ));
        assert!(!writable_year(
            &NaiveDate::from_ymd_opt(10000, 1, 1).unwrap()
        ));
        assert!(!writable_year(&NaiveDate::from_ymd_opt(0, 1, 1).unwrap()));
        assert_eq!(clean_uid(" a\r\nb\tc@x "), "abc@x");
        assert_eq!(clean_uid("a,b;c\\d"), "a,b;c\\d");
    }
}
