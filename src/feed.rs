//! ICS feeds: rendering a scope's events into one RFC 5545 calendar (pure:
//! bytes in, bytes out) and the cache of rendered bytes keyed by a
//! fingerprint of everything the output depends on, so an unchanged feed is
//! served without rendering.
//!
//! Rendering rules:
//! - each stored object contributes its VEVENTs (master + overrides, so
//!   recurring events stay RRULE + overrides, never expanded) and the
//!   VTIMEZONEs they use; an object whose UID was already emitted is skipped
//!   (the same meeting seen in two calendars, or an appointment mirrored back
//!   from the primary calendar);
//! - `busy` privacy, and any CLASS:PRIVATE/CONFIDENTIAL event, keep only the
//!   times and recurrence and read "Busy"; transparent (free) events are left
//!   out of busy output; cancelled series are left out;
//! - every TZID used gets a VTIMEZONE; every VEVENT has UID, DTSTAMP and
//!   DTSTART; lines are CRLF and folded at 75 octets by the serializer.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;

use crate::ics::{self, Component, Property};
use crate::model::{FeedId, Privacy, Timestamp};

/// One stored object to publish.
pub struct FeedObject<'a> {
    pub body: &'a [u8],
    pub last_modified: Timestamp,
}

pub struct RenderOptions<'a> {
    pub name: &'a str,
    pub privacy: Privacy,
    /// Keep VALARMs (a staff member's own feed); group and company feeds
    /// drop them so nobody is reminded of someone else's meetings.
    pub keep_alarms: bool,
    pub refresh: Duration,
    /// The zone shown as the calendar's default (X-WR-TIMEZONE).
    pub timezone: Option<&'a str>,
    /// A VFREEBUSY to publish: (uid, range start, range end, busy periods).
    pub freebusy: Option<(&'a str, Timestamp, Timestamp, &'a [crate::freebusy::Busy])>,
}

/// What a render produced besides the bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RenderStats {
    pub events: usize,
    pub skipped_unreadable: usize,
    pub skipped_duplicate: usize,
    /// TZIDs no VTIMEZONE could be found or made for.
    pub undefined_zones: usize,
}

/// Properties a busy-only event keeps.
const BUSY_KEEP: &[&str] = &[
    "UID",
    "DTSTAMP",
    "DTSTART",
    "DTEND",
    "DURATION",
    "RRULE",
    "RDATE",
    "EXDATE",
    "RECURRENCE-ID",
    "SEQUENCE",
    "STATUS",
    "TRANSP",
    "CREATED",
    "LAST-MODIFIED",
];

fn iso_duration(d: Duration) -> String {
    let s = d.as_secs().max(60);
    if s % 86_400 == 0 {
        format!("P{}D", s / 86_400)
    } else if s % 3600 == 0 {
        format!("PT{}H", s / 3600)
    } else {
        format!("PT{}M", s / 60)
    }
}

fn utc_stamp(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

fn is_private(ev: &Component) -> bool {
    matches!(
        ev.value("CLASS")
            .map(|c| c.trim().to_ascii_uppercase())
            .as_deref(),
        Some("PRIVATE") | Some("CONFIDENTIAL")
    )
}

fn is_transparent(ev: &Component) -> bool {
    ev.value("TRANSP")
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("TRANSPARENT"))
}

fn is_cancelled(ev: &Component) -> bool {
    ev.value("STATUS")
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("CANCELLED"))
}

fn busy_only(ev: &Component) -> Component {
    let mut out = Component::new("VEVENT");
    for p in &ev.props {
        if BUSY_KEEP.contains(&p.name.as_str()) {
            out.props.push(p.clone());
        }
    }
    out.push(Property::new("SUMMARY", "Busy"));
    out.push(Property::new("CLASS", "PRIVATE"));
    out
}

/// Render a feed.
pub fn render(objects: &[FeedObject<'_>], opts: &RenderOptions<'_>) -> (Vec<u8>, RenderStats) {
    let mut stats = RenderStats::default();
    let mut out = Vec::with_capacity(256 + objects.len() * 400);
    let mut header = Component::new("VCALENDAR");
    header.push(Property::new("VERSION", "2.0"));
    header.push(Property::new("PRODID", crate::model::appointment::PRODID));
    header.push(Property::new("CALSCALE", "GREGORIAN"));
    header.push(Property::new("METHOD", "PUBLISH"));
    header.push(Property::text("X-WR-CALNAME", opts.name));
    if let Some(tz) = opts.timezone {
        header.push(Property::new("X-WR-TIMEZONE", tz));
    }
    let ttl = iso_duration(opts.refresh);
    header.push(Property::new("REFRESH-INTERVAL", ttl.clone()).with_param("VALUE", "DURATION"));
    header.push(Property::new("X-PUBLISHED-TTL", ttl));
    out.extend_from_slice(b"BEGIN:VCALENDAR\r\n");
    for p in &header.props {
        ics::write_property(p, &mut out);
    }

    let mut events: Vec<Component> = Vec::with_capacity(objects.len());
    let mut seen_uids: HashSet<String> = HashSet::with_capacity(objects.len());
    let mut zones: HashMap<String, Component> = HashMap::new();
    // Every TZID used, with the earliest year it is used in.
    let mut used: Vec<(String, i32)> = Vec::new();
    let busy = opts.privacy == Privacy::Busy;
    for obj in objects {
        let Ok(cal) = ics::parse(obj.body) else {
            stats.skipped_unreadable += 1;
            continue;
        };
        let vevents: Vec<&Component> = cal.children_named("VEVENT").collect();
        let Some(uid) = vevents.iter().find_map(|e| e.value("UID")) else {
            stats.skipped_unreadable += 1;
            continue;
        };
        if !seen_uids.insert(uid.to_string()) {
            stats.skipped_duplicate += 1;
            continue;
        }
        let master = vevents
            .iter()
            .find(|e| e.prop("RECURRENCE-ID").is_none())
            .copied();
        if master.is_some_and(is_cancelled) {
            continue;
        }
        if busy && master.is_some_and(is_transparent) {
            continue;
        }
        // A private series is private in every instance, overrides included.
        let private_series = master.is_some_and(is_private);
        let mut emitted = false;
        for ev in vevents {
            let mut ev = if busy || private_series || is_private(ev) {
                busy_only(ev)
            } else {
                let mut e = ev.clone();
                if !opts.keep_alarms {
                    e.children.retain(|c| c.name != "VALARM");
                }
                e
            };
            if ev.prop("DTSTART").is_none() {
                continue;
            }
            if ev.prop("DTSTAMP").is_none() {
                ev.push(Property::new("DTSTAMP", utc_stamp(obj.last_modified)));
            }
            for (tzid, year) in crate::objects::tzids_used(&ev) {
                match used.iter_mut().find(|(t, _)| *t == tzid) {
                    Some(u) => u.1 = u.1.min(year),
                    None => used.push((tzid, year)),
                }
            }
            events.push(ev);
            emitted = true;
        }
        if emitted {
            stats.events += 1;
            for z in cal.children_named("VTIMEZONE") {
                if let Some(id) = z.value("TZID") {
                    zones.entry(id.to_string()).or_insert_with(|| z.clone());
                }
            }
        }
    }
    // A VTIMEZONE for every TZID used: the object's own definition, or one
    // generated for a known zone. A TZID nothing can define is dropped, so
    // its times read as floating rather than refer to nothing.
    let mut undefined: Vec<String> = Vec::new();
    for (tzid, year) in &used {
        match zones
            .remove(tzid)
            .or_else(|| crate::objects::vtimezone_block(tzid, *year))
        {
            Some(z) => out.extend_from_slice(&z.to_ics()),
            None => undefined.push(tzid.clone()),
        }
    }
    for mut ev in events {
        if !undefined.is_empty() {
            for p in &mut ev.props {
                if p.param("TZID")
                    .is_some_and(|t| undefined.iter().any(|u| u == t))
                {
                    p.remove_param("TZID");
                }
            }
            stats.undefined_zones = undefined.len();
        }
        out.extend_from_slice(&ev.to_ics());
    }
    if let Some((uid, from, to, busy)) = opts.freebusy {
        out.extend_from_slice(&vfreebusy(uid, from, to, busy).to_ics());
    }
    out.extend_from_slice(b"END:VCALENDAR\r\n");
    (out, stats)
}

/// A VFREEBUSY listing busy periods (RFC 5545 §3.6.4), one FREEBUSY
/// property per period so no line grows without bound.
pub fn vfreebusy(
    uid: &str,
    from: Timestamp,
    to: Timestamp,
    busy: &[crate::freebusy::Busy],
) -> Component {
    let mut c = Component::new("VFREEBUSY");
    c.push(Property::new("UID", uid));
    c.push(Property::new("DTSTAMP", utc_stamp(crate::model::now())));
    c.push(Property::new("DTSTART", utc_stamp(from)));
    c.push(Property::new("DTEND", utc_stamp(to)));
    for b in busy {
        c.push(
            Property::new(
                "FREEBUSY",
                format!("{}/{}", utc_stamp(b.start), utc_stamp(b.end)),
            )
            .with_param("FBTYPE", "BUSY"),
        );
    }
    c
}

/// A rendered feed, ready to serve.
pub struct CachedFeed {
    pub fingerprint: u64,
    /// Strong ETag value (quoted).
    pub etag: String,
    pub body: Bytes,
    /// Compressed on first request for it.
    gzip: OnceLock<Bytes>,
    pub last_modified: String,
}

impl CachedFeed {
    pub fn new(fingerprint: u64, body: Vec<u8>, last_modified: Timestamp) -> Self {
        let etag = format!("\"{}\"", &crate::crypto::sha256_hex(&body)[..32]);
        CachedFeed {
            fingerprint,
            etag,
            body: Bytes::from(body),
            gzip: OnceLock::new(),
            last_modified: httpdate::fmt_http_date(
                std::time::UNIX_EPOCH + Duration::from_secs(last_modified.max(0) as u64),
            ),
        }
    }

    pub fn gzip(&self) -> Bytes {
        self.gzip
            .get_or_init(|| {
                use std::io::Write;
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(self.body.len() / 4),
                    flate2::Compression::default(),
                );
                enc.write_all(&self.body)
                    .expect("writing to a Vec cannot fail");
                Bytes::from(enc.finish().expect("writing to a Vec cannot fail"))
            })
            .clone()
    }
}

/// Rendered feeds by id.
#[derive(Default)]
pub struct FeedCache {
    /// A std mutex: held only to clone an `Arc` in or out.
    entries: Mutex<HashMap<FeedId, Arc<CachedFeed>>>,
}

impl FeedCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached render if its fingerprint still matches.
    pub fn get(&self, id: &FeedId, fingerprint: u64) -> Option<Arc<CachedFeed>> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id)
            .filter(|c| c.fingerprint == fingerprint)
            .cloned()
    }

    pub fn put(&self, id: FeedId, feed: Arc<CachedFeed>) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(id, feed);
    }

    pub fn remove(&self, id: &FeedId) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// A fingerprint over everything a feed's bytes depend on.
pub fn fingerprint(parts: impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(body: &str) -> Vec<u8> {
        body.replace('\n', "\r\n").into_bytes()
    }

    const EV: &str = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\nBEGIN:VTIMEZONE\nTZID:Europe/Berlin\nBEGIN:STANDARD\nDTSTART:19701025T030000\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nEND:STANDARD\nEND:VTIMEZONE\nBEGIN:VEVENT\nUID:one\nDTSTART;TZID=Europe/Berlin:20261123T090000\nDTEND;TZID=Europe/Berlin:20261123T100000\nSUMMARY:Dentist\\, Dr. Who\nDESCRIPTION:secret notes\nRRULE:FREQ=WEEKLY;COUNT=3\nBEGIN:VALARM\nACTION:DISPLAY\nTRIGGER:-PT5M\nEND:VALARM\nEND:VEVENT\nBEGIN:VEVENT\nUID:one\nRECURRENCE-ID;TZID=Europe/Berlin:20261130T090000\nDTSTART;TZID=Europe/Berlin:20261130T110000\nDTEND;TZID=Europe/Berlin:20261130T120000\nSUMMARY:Dentist moved\nEND:VEVENT\nEND:VCALENDAR\n";

    fn opts(privacy: Privacy) -> RenderOptions<'static> {
        RenderOptions {
            name: "Anna",
            privacy,
            keep_alarms: true,
            refresh: Duration::from_secs(3600),
            timezone: Some("Europe/Berlin"),
            freebusy: None,
        }
    }

    #[test]
    fn full_feed_keeps_series_overrides_and_zones() {
        let body = obj(EV);
        let (out, stats) = render(
            &[FeedObject {
                body: &body,
                last_modified: 0,
            }],
            &opts(Privacy::Full),
        );
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(stats.events, 1);
        assert!(text.contains("X-WR-CALNAME:Anna\r\n"));
        assert!(text.contains("REFRESH-INTERVAL;VALUE=DURATION:PT1H\r\n"));
        assert!(text.contains("X-PUBLISHED-TTL:PT1H\r\n"));
        assert!(text.contains("RRULE:FREQ=WEEKLY;COUNT=3"));
        assert!(text.contains("RECURRENCE-ID;TZID=Europe/Berlin:20261130T090000"));
        assert_eq!(text.matches("BEGIN:VTIMEZONE").count(), 1);
        assert!(text.contains("BEGIN:VALARM"));
        // Every VEVENT got a DTSTAMP.
        let cal = ics::parse(&out).unwrap();
        for ev in cal.children_named("VEVENT") {
            assert!(ev.prop("DTSTAMP").is_some() && ev.prop("UID").is_some());
        }
    }

    #[test]
    fn busy_feed_hides_everything_but_times() {
        let body = obj(EV);
        let (out, _) = render(
            &[FeedObject {
                body: &body,
                last_modified: 0,
            }],
            &opts(Privacy::Busy),
        );
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("Dentist"));
        assert!(!text.contains("secret"));
        assert!(!text.contains("VALARM"));
        assert_eq!(text.matches("SUMMARY:Busy").count(), 2);
        assert!(text.contains("RRULE:FREQ=WEEKLY;COUNT=3"));
    }

    #[test]
    fn private_events_are_busy_even_in_full_feeds_and_duplicates_collapse() {
        let private = obj(&EV.replace(
            "SUMMARY:Dentist\\, Dr. Who",
            "SUMMARY:Dentist\nCLASS:PRIVATE",
        ));
        let again = obj(EV);
        let (out, stats) = render(
            &[
                FeedObject {
                    body: &private,
                    last_modified: 0,
                },
                FeedObject {
                    body: &again,
                    last_modified: 0,
                },
            ],
            &opts(Privacy::Full),
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(stats.skipped_duplicate, 1);
        assert_eq!(text.matches("SUMMARY:Busy").count(), 2);
        assert!(!text.contains("secret notes"));
        assert!(!text.contains("Dentist"), "{text}");
    }

    #[test]
    fn unreadable_objects_are_skipped_not_fatal() {
        let good = obj(EV);
        let (out, stats) = render(
            &[
                FeedObject {
                    body: b"garbage",
                    last_modified: 0,
                },
                FeedObject {
                    body: &good,
                    last_modified: 0,
                },
            ],
            &opts(Privacy::Full),
        );
        assert_eq!(stats.skipped_unreadable, 1);
        assert!(ics::parse(&out).is_ok());
    }
}
