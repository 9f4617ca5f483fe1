//! Time-zone names as Graph uses them: Windows names (and a fixed list of
//! IANA names) in requests and answers, `tzone://Microsoft/…` specials.

/// The IANA zone for a Graph zone name, if it has one.
pub fn iana(name: &str) -> Option<String> {
    let n = name.trim().trim_matches('\0');
    if n.is_empty() {
        return None;
    }
    if matches!(
        n,
        "UTC"
            | "tzone://Microsoft/Utc"
            | "Coordinated Universal Time"
            | "UTC-00"
            | "Etc/UTC"
            | "GMT"
    ) {
        return Some("UTC".into());
    }
    if let Some(i) = crate::ics::tz::windows_to_iana(n) {
        return Some(i.to_string());
    }
    n.parse::<chrono_tz::Tz>()
        .ok()
        .map(|tz| tz.name().to_string())
}

/// The Windows name Graph prefers for an IANA zone.
pub fn windows(iana: &str) -> Option<&'static str> {
    if iana == "UTC" || iana == "Etc/UTC" {
        return Some("UTC");
    }
    crate::ics::tz::iana_to_windows(iana)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One zone per family: Europe, the Americas, Asia, Oceania, Africa,
    /// half-hour offsets, and UTC spellings.
    #[test]
    fn windows_and_iana_names_map_both_ways() {
        let cases = [
            ("W. Europe Standard Time", "Europe/Berlin"),
            ("GMT Standard Time", "Europe/London"),
            ("Pacific Standard Time", "America/Los_Angeles"),
            ("Eastern Standard Time", "America/New_York"),
            ("Central Standard Time", "America/Chicago"),
            ("E. South America Standard Time", "America/Sao_Paulo"),
            ("Tokyo Standard Time", "Asia/Tokyo"),
            ("India Standard Time", "Asia/Calcutta"),
            ("AUS Eastern Standard Time", "Australia/Sydney"),
            ("New Zealand Standard Time", "Pacific/Auckland"),
            ("South Africa Standard Time", "Africa/Johannesburg"),
            ("Iran Standard Time", "Asia/Tehran"),
        ];
        for (win, zone) in cases {
            let got = iana(win).unwrap_or_else(|| panic!("{win}"));
            let want: chrono_tz::Tz = zone.parse().unwrap();
            let got_tz: chrono_tz::Tz = got.parse().unwrap();
            // Links (Asia/Calcutta = Asia/Kolkata) compare by offsets.
            let t = chrono::NaiveDate::from_ymd_opt(2026, 7, 1)
                .unwrap()
                .and_hms_opt(12, 0, 0)
                .unwrap();
            use chrono::{Offset, TimeZone};
            assert_eq!(
                want.offset_from_utc_datetime(&t).fix(),
                got_tz.offset_from_utc_datetime(&t).fix(),
                "{win}"
            );
            assert_eq!(
                iana(zone)
                    .as_deref()
                    .map(|z| z.parse::<chrono_tz::Tz>().is_ok()),
                Some(true)
            );
            assert!(windows(&got).is_some(), "{got}");
        }
        assert_eq!(iana("tzone://Microsoft/Utc").as_deref(), Some("UTC"));
        assert_eq!(iana("tzone://Microsoft/Custom"), None);
        assert_eq!(iana("Mars Standard Time"), None);
    }
}
