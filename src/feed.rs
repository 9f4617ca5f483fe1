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
    /// The stored ETag (32 hex digits, a hash of `body`): lets a render
    /// reuse what the previous one made of an unchanged object, in which
    /// case `body` may be left empty (see [`render_with`]).
    pub etag: Option<&'a str>,
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

/// What one stored object contributes to a feed: everything the feed needs
/// from it, so a render after a change re-reads only the objects that
/// changed (see [`Memo`]).
#[derive(Clone, Default)]
struct Piece {
    /// The object's UID; `None` when it could not be read.
    uid: Option<String>,
    /// Whether it publishes anything (a cancelled series does not, nor a
    /// free event in busy output).
    emitted: bool,
    /// Its VEVENTs, serialized.
    events: Bytes,
    /// The TZIDs its events use, with the earliest year each is used in.
    tzids: Vec<(String, i32)>,
    /// The VTIMEZONEs it carries: (TZID, serialized).
    zones: Vec<(String, Bytes)>,
}

/// A memoised piece is found by the object's ETag and last-modified time
/// (the only inputs besides the options, which a [`Memo`] is tied to).
type PieceKey = (u128, Timestamp);

fn piece_key(obj: &FeedObject<'_>) -> Option<PieceKey> {
    let etag = obj.etag?;
    (etag.len() == 32)
        .then(|| u128::from_str_radix(etag, 16).ok())
        .flatten()
        .map(|e| (e, obj.last_modified))
}

/// The pieces of a feed's last render, so the next render after a change
/// parses only new and changed objects. Their event bytes are slices of
/// the rendered feed: the memo costs an index, not a second copy.
#[derive(Default)]
pub struct Memo {
    options: Option<(Privacy, bool)>,
    pieces: HashMap<PieceKey, Piece>,
    /// Every distinct VTIMEZONE seen, shared by the pieces that carry it.
    zones: HashSet<Bytes>,
}

impl Memo {
    fn usable(&self, opts: &RenderOptions<'_>) -> bool {
        self.options == Some((opts.privacy, opts.keep_alarms))
    }

    /// Whether a render with these options can reuse what it made of the
    /// object with this ETag and last-modified time (its body is then not
    /// needed).
    pub fn has(
        &self,
        privacy: Privacy,
        keep_alarms: bool,
        etag: &str,
        last_modified: Timestamp,
    ) -> bool {
        self.options == Some((privacy, keep_alarms))
            && piece_key(&FeedObject {
                body: &[],
                last_modified,
                etag: Some(etag),
            })
            .is_some_and(|k| self.pieces.contains_key(&k))
    }
}

/// [`render_piece`] for `objects[i]`, asking `fetch` for a body the
/// caller left out.
fn fresh_piece(
    objects: &[FeedObject<'_>],
    i: usize,
    opts: &RenderOptions<'_>,
    strip: &[String],
    zone_set: &mut HashSet<Bytes>,
    fetch: &mut dyn FnMut(usize) -> Option<Vec<u8>>,
) -> Piece {
    let obj = &objects[i];
    if obj.body.is_empty() {
        if let Some(body) = fetch(i) {
            let obj = FeedObject {
                body: &body,
                ..*obj
            };
            return render_piece(&obj, opts, strip, zone_set);
        }
    }
    render_piece(obj, opts, strip, zone_set)
}

/// The stored object's contribution. `strip` lists TZIDs nothing can
/// define: they are removed so the times read as floating rather than
/// refer to nothing.
fn render_piece(
    obj: &FeedObject<'_>,
    opts: &RenderOptions<'_>,
    strip: &[String],
    zone_set: &mut HashSet<Bytes>,
) -> Piece {
    let Ok(cal) = ics::parse(obj.body) else {
        return Piece::default();
    };
    let vevents: Vec<&Component> = cal.children_named("VEVENT").collect();
    let Some(uid) = vevents.iter().find_map(|e| e.value("UID")) else {
        return Piece::default();
    };
    let mut piece = Piece {
        uid: Some(uid.to_string()),
        ..Piece::default()
    };
    let busy = opts.privacy == Privacy::Busy;
    let master = vevents
        .iter()
        .find(|e| e.prop("RECURRENCE-ID").is_none())
        .copied();
    if master.is_some_and(is_cancelled) || (busy && master.is_some_and(is_transparent)) {
        return piece;
    }
    // A private series is private in every instance, overrides included.
    let private_series = master.is_some_and(is_private);
    let mut events = Vec::with_capacity(obj.body.len());
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
            match piece.tzids.iter_mut().find(|(t, _)| *t == tzid) {
                Some(u) => u.1 = u.1.min(year),
                None => piece.tzids.push((tzid, year)),
            }
        }
        if !strip.is_empty() {
            for p in &mut ev.props {
                if p.param("TZID")
                    .is_some_and(|t| strip.iter().any(|u| u == t))
                {
                    p.remove_param("TZID");
                }
            }
        }
        events.extend_from_slice(&ev.to_ics());
        piece.emitted = true;
    }
    if piece.emitted {
        piece.events = Bytes::from(events);
        for z in cal.children_named("VTIMEZONE") {
            if let Some(id) = z.value("TZID") {
                let bytes = Bytes::from(z.to_ics());
                let shared = match zone_set.get(&bytes) {
                    Some(b) => b.clone(),
                    None => {
                        zone_set.insert(bytes.clone());
                        bytes
                    }
                };
                piece.zones.push((id.to_string(), shared));
            }
        }
    }
    piece
}

/// A rendered feed and the pieces it was made of (see [`Memo`]).
pub struct Rendered {
    pub body: Vec<u8>,
    pub stats: RenderStats,
    options: (Privacy, bool),
    /// Each memoisable piece with the range of its events in `body`.
    pieces: Vec<(PieceKey, Piece, std::ops::Range<usize>)>,
    zones: HashSet<Bytes>,
}

impl Rendered {
    /// The memo for the next render, sharing `body`'s bytes.
    pub fn memo(self, body: &Bytes) -> Memo {
        let pieces = self
            .pieces
            .into_iter()
            .map(|(k, mut p, r)| {
                p.events = body.slice(r);
                (k, p)
            })
            .collect();
        Memo {
            options: Some(self.options),
            pieces,
            zones: self.zones,
        }
    }
}

/// Render a feed.
pub fn render(objects: &[FeedObject<'_>], opts: &RenderOptions<'_>) -> (Vec<u8>, RenderStats) {
    let r = render_with(objects, opts, None, &mut |_| None);
    (r.body, r.stats)
}

/// Render a feed, reusing the pieces of the previous render that are
/// still current: only new and changed objects are parsed. The bytes are
/// the same as [`render`]'s. An object whose body was left empty (because
/// [`Memo::has`] it) gets it from `fetch(index)` if it is needed after all.
pub fn render_with(
    objects: &[FeedObject<'_>],
    opts: &RenderOptions<'_>,
    previous: Option<&Memo>,
    fetch: &mut dyn FnMut(usize) -> Option<Vec<u8>>,
) -> Rendered {
    let previous = previous.filter(|m| m.usable(opts));
    let mut zone_set = previous.map(|m| m.zones.clone()).unwrap_or_default();
    let mut pieces: Vec<(Option<PieceKey>, Piece)> = Vec::with_capacity(objects.len());
    for (i, obj) in objects.iter().enumerate() {
        let key = piece_key(obj);
        let known = key
            .and_then(|k| previous.and_then(|m| m.pieces.get(&k)))
            .cloned();
        let piece = match known {
            Some(p) => p,
            None => fresh_piece(objects, i, opts, &[], &mut zone_set, fetch),
        };
        pieces.push((key, piece));
    }

    let mut stats = RenderStats::default();
    let mut seen_uids: HashSet<&str> = HashSet::with_capacity(objects.len());
    let mut published: Vec<usize> = Vec::with_capacity(objects.len());
    let mut zones: HashMap<&str, &Bytes> = HashMap::new();
    // Every TZID used, with the earliest year it is used in.
    let mut used: Vec<(String, i32)> = Vec::new();
    for (i, (_, piece)) in pieces.iter().enumerate() {
        let Some(uid) = piece.uid.as_deref() else {
            stats.skipped_unreadable += 1;
            continue;
        };
        if !seen_uids.insert(uid) {
            stats.skipped_duplicate += 1;
            continue;
        }
        if !piece.emitted {
            continue;
        }
        stats.events += 1;
        published.push(i);
        for (tzid, year) in &piece.tzids {
            match used.iter_mut().find(|(t, _)| t == tzid) {
                Some(u) => u.1 = u.1.min(*year),
                None => used.push((tzid.clone(), *year)),
            }
        }
        for (id, z) in &piece.zones {
            zones.entry(id.as_str()).or_insert(z);
        }
    }

    let mut out = Vec::with_capacity(
        1024 + published
            .iter()
            .map(|&i| pieces[i].1.events.len())
            .sum::<usize>(),
    );
    write_header(opts, &mut out);
    // A VTIMEZONE for every TZID used: the object's own definition, or one
    // generated for a known zone. A TZID nothing can define is dropped, so
    // its times read as floating rather than refer to nothing.
    let mut undefined: Vec<String> = Vec::new();
    for (tzid, year) in &used {
        match zones.remove(tzid.as_str()) {
            Some(z) => out.extend_from_slice(z),
            None => match crate::objects::vtimezone_block(tzid, *year) {
                Some(z) => out.extend_from_slice(&z.to_ics()),
                None => undefined.push(tzid.clone()),
            },
        }
    }
    stats.undefined_zones = undefined.len();
    // Where each memoisable published piece's events are in the body.
    let mut ranges: HashMap<usize, std::ops::Range<usize>> = HashMap::new();
    for &i in &published {
        let (key, piece) = &pieces[i];
        let strip = !undefined.is_empty()
            && piece
                .tzids
                .iter()
                .any(|(t, _)| undefined.iter().any(|u| u == t));
        if strip {
            // Rare: rendered again without the TZIDs, and not memoised.
            let p = fresh_piece(objects, i, opts, &undefined, &mut zone_set, fetch);
            out.extend_from_slice(&p.events);
            continue;
        }
        let from = out.len();
        out.extend_from_slice(&piece.events);
        if key.is_some() {
            ranges.insert(i, from..out.len());
        }
    }
    if let Some((uid, from, to, busy)) = opts.freebusy {
        out.extend_from_slice(&vfreebusy(uid, from, to, busy).to_ics());
    }
    out.extend_from_slice(b"END:VCALENDAR\r\n");

    // Pieces worth keeping: published ones (with their range in the body)
    // and the ones that publish nothing, so neither is parsed again.
    let mut kept: Vec<(PieceKey, Piece, std::ops::Range<usize>)> = Vec::with_capacity(pieces.len());
    for (i, (key, piece)) in pieces.into_iter().enumerate() {
        let Some(k) = key else { continue };
        match ranges.remove(&i) {
            Some(r) => kept.push((k, piece, r)),
            None if !piece.emitted => kept.push((k, piece, 0..0)),
            None => {}
        }
    }
    Rendered {
        body: out,
        stats,
        options: (opts.privacy, opts.keep_alarms),
        pieces: kept,
        zones: zone_set,
    }
}

fn write_header(opts: &RenderOptions<'_>, out: &mut Vec<u8>) {
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
        ics::write_property(p, out);
    }
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
    /// What the next render can reuse.
    pub memo: Memo,
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
            memo: Memo::default(),
        }
    }

    /// A render with its memo (see [`render_with`]).
    pub fn rendered(fingerprint: u64, mut rendered: Rendered, last_modified: Timestamp) -> Self {
        let body = std::mem::take(&mut rendered.body);
        let mut feed = Self::new(fingerprint, body, last_modified);
        feed.memo = rendered.memo(&feed.body);
        feed
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

    /// The last render, current or not (what a new render can reuse).
    pub fn latest(&self, id: &FeedId) -> Option<Arc<CachedFeed>> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).cloned()
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

/// Bytes read and written by a render from which [`release_free_memory`]
/// is worth its cost (it holds the allocator while it walks the heap).
pub const RELEASE_AFTER: usize = 1 << 20;

/// Hand the memory a large render freed back to the system. A render reads
/// and parses every changed object (thousands of small blocks, megabytes
/// in all); glibc keeps freed small blocks in its arenas, so without this
/// the server stays that much larger after each large render (measured on
/// a 5,000-event feed: 7 MB of the peak, 8-14 MB at rest).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
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
                etag: None,
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
                etag: None,
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
                    etag: None,
                },
                FeedObject {
                    body: &again,
                    last_modified: 0,
                    etag: None,
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
                    etag: None,
                },
                FeedObject {
                    body: &good,
                    last_modified: 0,
                    etag: None,
                },
            ],
            &opts(Privacy::Full),
        );
        assert_eq!(stats.skipped_unreadable, 1);
        assert!(ics::parse(&out).is_ok());
    }

    /// A render that reuses the previous render's pieces gives exactly the
    /// bytes of a render from scratch, whatever changed in between.
    #[test]
    fn reusing_the_previous_render_gives_the_same_bytes() {
        let etag = |b: &[u8]| crate::store::db::etag_of(b);
        let cancelled = obj(&EV
            .replace("UID:one", "UID:gone")
            .replace("SUMMARY:Dentist\\, Dr. Who", "SUMMARY:x\nSTATUS:CANCELLED"));
        let private = obj(&EV.replace("UID:one", "UID:priv").replace(
            "SUMMARY:Dentist\\, Dr. Who",
            "SUMMARY:Dentist\nCLASS:PRIVATE",
        ));
        let nowhere = obj(&EV
            .replace("UID:one", "UID:nowhere")
            .replace("Europe/Berlin", "Nowhere/Special"));
        let defined = obj(&EV
            .replace("UID:one", "UID:defines")
            .replace("Europe/Berlin", "Nowhere/Special"));
        let nowhere = {
            // Without its VTIMEZONE: a TZID nothing can define.
            let t = String::from_utf8(nowhere).unwrap();
            let a = t.find("BEGIN:VTIMEZONE").unwrap();
            let b = t.find("END:VTIMEZONE\r\n").unwrap() + "END:VTIMEZONE\r\n".len();
            format!("{}{}", &t[..a], &t[b..]).into_bytes()
        };
        let first = vec![
            obj(EV),
            cancelled.clone(),
            b"garbage".to_vec(),
            private.clone(),
            obj(&EV.replace("SUMMARY:Dentist", "SUMMARY:Duplicate")),
            obj(&EV.replace("UID:one", "UID:two")),
            defined,
            nowhere,
        ];
        // One object changed, the one defining Nowhere/Special removed (so
        // a reused piece now needs its TZIDs stripped), order changed.
        let mut second = first.clone();
        second[5] = obj(&EV
            .replace("UID:one", "UID:two")
            .replace("Dentist", "Doctor"));
        second.remove(6);
        second.swap(0, 3);
        for privacy in [Privacy::Full, Privacy::Busy] {
            let opts = opts(privacy);
            let tags: Vec<String> = first.iter().map(|b| etag(b)).collect();
            let objects: Vec<FeedObject<'_>> = first
                .iter()
                .zip(&tags)
                .map(|(b, t)| FeedObject {
                    body: b,
                    last_modified: 7,
                    etag: Some(t),
                })
                .collect();
            let r = render_with(&objects, &opts, None, &mut |_| None);
            let body = Bytes::from(r.body.clone());
            assert_eq!(r.body, render(&objects, &opts).0);
            assert_eq!(r.stats.undefined_zones, 0);
            let memo = r.memo(&body);
            assert_eq!(memo.pieces.len(), 7, "all but the duplicate are kept");

            let tags: Vec<String> = second.iter().map(|b| etag(b)).collect();
            let objects: Vec<FeedObject<'_>> = second
                .iter()
                .zip(&tags)
                .map(|(b, t)| FeedObject {
                    body: b,
                    last_modified: 7,
                    etag: Some(t),
                })
                .collect();
            // Bodies the memo has are left out, and fetched if needed.
            let lean: Vec<FeedObject<'_>> = objects
                .iter()
                .map(|o| FeedObject {
                    body: if memo.has(privacy, true, o.etag.unwrap(), 7) {
                        &[]
                    } else {
                        o.body
                    },
                    ..*o
                })
                .collect();
            let mut fetched = Vec::new();
            let again = render_with(&lean, &opts, Some(&memo), &mut |i| {
                fetched.push(i);
                Some(second[i].clone())
            });
            assert_eq!(fetched, vec![6], "only the object to strip is fetched");
            let (fresh, stats) = render(&objects, &opts);
            assert_eq!(
                String::from_utf8(again.body).unwrap(),
                String::from_utf8(fresh).unwrap()
            );
            assert_eq!(again.stats, stats);
            assert_eq!(stats.undefined_zones, 1);
            assert_eq!(stats.skipped_unreadable, 1);
            assert_eq!(stats.skipped_duplicate, 1);
        }
    }
}
