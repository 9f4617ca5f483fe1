//! Identifier and opaque-token generation.
//!
//! Owns the look of every id the emulator hands out (Google's base32hex event
//! ids, Graph's base64 item ids and GUIDs, OAuth codes and tokens). Clients
//! must treat all of them as opaque; they only resemble the real ones so that
//! logs and fixtures read naturally.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::Rng;

/// Random bytes from the thread RNG. Ids need not be reproducible (fault
/// decisions use the seeded RNG instead), only unique and unguessable.
fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill(&mut v[..]);
    v
}

/// An opaque URL-safe token with `bytes` bytes of entropy.
pub(crate) fn opaque(bytes: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(bytes))
}

/// A lowercase GUID (`8-4-4-4-12`).
pub(crate) fn guid() -> String {
    let b = random_bytes(16);
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A Google event id: 26 characters of base32hex (`[a-v0-9]`).
pub(crate) fn google_event_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
    let mut rng = rand::thread_rng();
    (0..26)
        .map(|_| ALPHABET[rng.gen_range(0..32)] as char)
        .collect()
}

/// True when `id` is a valid client-chosen Google event id: base32hex
/// characters, 5 to 1024 of them.
pub(crate) fn is_valid_google_event_id(id: &str) -> bool {
    (5..=1024).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b))
}

/// A Graph item id in Exchange's look (`AAMkA…=`), URL-safe.
pub(crate) fn graph_item_id() -> String {
    format!("AAMkA{}AAA=", URL_SAFE_NO_PAD.encode(random_bytes(33)))
}

/// A Graph `changeKey`-looking version string for a version number.
pub(crate) fn change_key(salt: &str, version: u64) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(version.to_be_bytes());
    let d = h.finalize();
    STANDARD.encode(&d[..15])
}

/// The Outlook-style hex global object id used as `iCalUId`: a fixed class
/// id, four instance-date bytes (zero for the series), a timestamp, and a
/// random tail.
pub(crate) fn graph_ical_uid() -> String {
    let tail: String = random_bytes(16)
        .iter()
        .map(|x| format!("{x:02X}"))
        .collect();
    format!("040000008200E00074C5B7101A82E00800000000{tail}")
}

/// The per-occurrence `iCalUId`: the series' id with the instance date
/// written into bytes 16..20 (year hi, year lo, month, day), as Outlook does.
pub(crate) fn graph_occurrence_ical_uid(series: &str, date: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    if series.len() < 40 || !series.starts_with("040000008200E00074C5B7101A82E008") {
        return format!("{series}-{}", date.format("%Y%m%d"));
    }
    let y = date.year() as u16;
    format!(
        "{}{:02X}{:02X}{:02X}{:02X}{}",
        &series[..32],
        y >> 8,
        y & 0xff,
        date.month(),
        date.day(),
        &series[40..]
    )
}

/// Encodes an occurrence id from its series master id and original start,
/// so that the occurrence can be addressed before it ever changed.
pub(crate) fn graph_occurrence_id(master: &str, original_start_unix: i64) -> String {
    format!(
        "AAMkOcc{}",
        URL_SAFE_NO_PAD.encode(format!("{master}\u{1}{original_start_unix}"))
    )
}

/// Decodes an occurrence id made by [`graph_occurrence_id`].
pub(crate) fn parse_graph_occurrence_id(id: &str) -> Option<(String, i64)> {
    let rest = id.strip_prefix("AAMkOcc")?;
    let raw = URL_SAFE_NO_PAD.decode(rest).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (master, ts) = s.split_once('\u{1}')?;
    Some((master.to_string(), ts.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_ids_are_base32hex() {
        for _ in 0..50 {
            assert!(is_valid_google_event_id(&google_event_id()));
        }
        assert!(!is_valid_google_event_id("abcd"));
        assert!(!is_valid_google_event_id("abcdw"));
        assert!(!is_valid_google_event_id("ABCDE"));
        assert!(is_valid_google_event_id("abcde"));
    }

    #[test]
    fn occurrence_ids_round_trip() {
        let m = graph_item_id();
        let id = graph_occurrence_id(&m, 1_772_442_000);
        assert_eq!(parse_graph_occurrence_id(&id), Some((m, 1_772_442_000)));
        assert_eq!(parse_graph_occurrence_id("AAMkAxyz"), None);
    }

    #[test]
    fn occurrence_ical_uid_carries_the_date() {
        let s = graph_ical_uid();
        let d = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let o = graph_occurrence_ical_uid(&s, d);
        assert_eq!(&o[32..40], "07EA0302");
        assert_eq!(&o[..32], &s[..32]);
        assert_eq!(&o[40..], &s[40..]);
    }
}
