//! Time zones: what a TZID means and how wall-clock time maps to UTC.
//!
//! This module owns TZID resolution (IANA names and links, Windows names via
//! the CLDR table, Outlook display names, vendor-prefixed names, and finally
//! the object's own VTIMEZONE), the interpretation of a VTIMEZONE's
//! observances ([`CustomZone`]), and the RFC 5545 rules for wall-clock times
//! that do not exist (a DST gap: moved forward by the gap) or exist twice (a
//! DST overlap: the first occurrence). It does not write VTIMEZONEs
//! ([`crate::ics::vtimezone`] does).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use super::rrule::{RRule, RRuleIter};
use super::value::{clean_tzid, date_list, rdate_list, DateTimeValue, RDate};
use super::windows_zones::{IANA_TO_WINDOWS, WINDOWS_TO_IANA};
use super::{Component, IcsError};

/// A zone a wall-clock time can be in.
#[derive(Clone, Default)]
pub enum Zone {
    #[default]
    Utc,
    /// No zone: the caller decides (see [`Zone::or_floating`]). On its own,
    /// a floating time converts as if it were UTC.
    Floating,
    Iana(Tz),
    /// A zone defined by a VTIMEZONE that no known name matched.
    Custom(Arc<CustomZone>),
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Custom(c) => write!(f, "Custom({:?})", c.tzid),
            other => f.write_str(other.name()),
        }
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Zone::Utc, Zone::Utc) | (Zone::Floating, Zone::Floating) => true,
            (Zone::Iana(a), Zone::Iana(b)) => a == b,
            (Zone::Custom(a), Zone::Custom(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Zone {
    pub fn name(&self) -> &str {
        match self {
            Zone::Utc => "UTC",
            Zone::Floating => "floating",
            Zone::Iana(tz) => tz.name(),
            Zone::Custom(c) => &c.tzid,
        }
    }

    /// This zone, or `floating` if this is [`Zone::Floating`].
    pub fn or_floating(&self, floating: &Zone) -> Zone {
        match self {
            Zone::Floating => floating.clone(),
            other => other.clone(),
        }
    }

    /// Seconds east of UTC in effect at this UTC instant.
    pub fn offset_at(&self, utc: NaiveDateTime) -> i32 {
        match self {
            Zone::Utc | Zone::Floating => 0,
            Zone::Iana(tz) => tz.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
            Zone::Custom(c) => c.offset_at(utc),
        }
    }

    /// The instant of a wall-clock time in this zone. A time in a DST gap
    /// is moved forward by the gap; an ambiguous time (DST overlap) takes
    /// the first occurrence (RFC 5545 §3.3.5).
    pub fn to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        match self {
            Zone::Utc | Zone::Floating => local.and_utc(),
            Zone::Iana(tz) => match tz.from_local_datetime(&local) {
                chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
                chrono::LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
                chrono::LocalResult::None => self.resolve_local(local),
            },
            Zone::Custom(_) => self.resolve_local(local),
        }
    }

    /// The wall-clock time in this zone at an instant.
    pub fn from_utc(&self, utc: DateTime<Utc>) -> NaiveDateTime {
        let naive = utc.naive_utc();
        naive
            .checked_add_signed(Duration::seconds(i64::from(self.offset_at(naive))))
            .unwrap_or(naive)
    }

    /// Local -> UTC from the offsets alone: try the offsets in effect a day
    /// before and a day after; an offset is right if it is in effect at
    /// the instant it gives. Neither right means a gap: use the earlier.
    fn resolve_local(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let day = Duration::days(1);
        let before = self.offset_at(local.checked_sub_signed(day).unwrap_or(local));
        let after = self.offset_at(local.checked_add_signed(day).unwrap_or(local));
        let at = |offset: i32| {
            local
                .checked_sub_signed(Duration::seconds(i64::from(offset)))
                .unwrap_or(local)
        };
        let valid = |offset: i32| self.offset_at(at(offset)) == offset;
        let utc = match (valid(before), valid(after)) {
            (true, true) => at(before).min(at(after)),
            (true, false) => at(before),
            (false, true) => at(after),
            (false, false) => at(before),
        };
        utc.and_utc()
    }
}

// ---------------------------------------------------------------------------
// VTIMEZONE interpretation

/// One STANDARD or DAYLIGHT observance of a VTIMEZONE.
#[derive(Debug, Clone)]
struct Observance {
    /// First onset, wall-clock time in the `from` offset.
    start: NaiveDateTime,
    from: i32,
    to: i32,
    rule: Option<RRule>,
    /// The rule's UNTIL as wall-clock time in the `from` offset.
    until: Option<NaiveDateTime>,
    rdates: Vec<NaiveDateTime>,
    /// The rule's onsets, walked once and kept.
    memo: OnsetMemo,
}

/// Most onsets of one observance rule that are walked and kept. A real
/// rule is yearly: from 1601 (Outlook's DTSTART) this reaches past 3600. A
/// denser rule (only a hostile VTIMEZONE has one) keeps the offset of its
/// last kept onset from there on. 2 048 onsets take 24 KiB.
const MEMO_ONSETS: usize = 2_048;

/// The onsets of an observance's rule from its first, in order, walked on
/// demand as far as the latest lookup needs and kept, so that every lookup
/// after the first is a binary search.
///
/// Why: every wall-clock conversion looks up the onset in effect, several
/// per instance. A lookup used to walk the rule from 800 days back (or from
/// DTSTART, for a rule with COUNT) each time; with a hostile rule
/// (`FREQ=HOURLY` or denser, a COUNT walked from 1601, a rule that never
/// matches) each walk ran to the iterator's limits, and expanding a few
/// instances took longer than libFuzzer's 10 s timeout (found by fuzzing).
/// Now the walk happens once per observance and zone, within
/// [`MEMO_ONSETS`] onsets and the iterator's work budget.
#[derive(Debug, Default)]
struct OnsetMemo(Mutex<MemoState>);

#[derive(Debug, Clone, Default)]
struct MemoState {
    onsets: Vec<NaiveDateTime>,
    /// Positioned after the last kept onset; made on the first lookup.
    iter: Option<RRuleIter>,
    /// The rule (or the kept-onsets bound) has no more onsets.
    done: bool,
}

impl Clone for OnsetMemo {
    fn clone(&self) -> Self {
        OnsetMemo(Mutex::new(self.state().clone()))
    }
}

impl OnsetMemo {
    fn state(&self) -> std::sync::MutexGuard<'_, MemoState> {
        // The state is consistent between statements; a panic elsewhere
        // while it was held leaves it usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A zone defined by a VTIMEZONE component.
#[derive(Debug, Clone)]
pub struct CustomZone {
    pub tzid: String,
    observances: Vec<Observance>,
}

/// Parse `+HHMM`, `-HHMM`, `+HHMMSS` (lenient: `+HH:MM`, `+HH`).
pub fn parse_utc_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => (1, s),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| digits.get(r).and_then(|d| d.parse::<i32>().ok());
    let (h, m, sec) = match digits.len() {
        2 => (n(0..2)?, 0, 0),
        4 => (n(0..2)?, n(2..4)?, 0),
        6 => (n(0..2)?, n(2..4)?, n(4..6)?),
        _ => return None,
    };
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60 + sec))
}

/// Write an offset as `+HHMM` (or `+HHMMSS` when it has seconds).
pub fn format_utc_offset(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    if a % 60 == 0 {
        format!("{sign}{:02}{:02}", a / 3600, a / 60 % 60)
    } else {
        format!("{sign}{:02}{:02}{:02}", a / 3600, a / 60 % 60, a % 60)
    }
}

impl CustomZone {
    /// Read a VTIMEZONE. Observances that cannot be read are refused with a
    /// message naming the TZID and the problem.
    pub fn from_component(c: &Component) -> Result<CustomZone, IcsError> {
        let tzid = c.value("TZID").map(clean_tzid).unwrap_or_default();
        let bad = |msg: String| IcsError::Invalid(format!("VTIMEZONE {tzid:?}: {msg}"));
        let mut observances = Vec::new();
        for ob in c
            .children
            .iter()
            .filter(|o| o.name == "STANDARD" || o.name == "DAYLIGHT")
        {
            let start = ob
                .prop("DTSTART")
                .ok_or_else(|| bad(format!("{} without DTSTART", ob.name)))
                .and_then(|p| DateTimeValue::from_property(p).map_err(|e| bad(e.to_string())))?
                .local();
            let offset = |name: &str| {
                ob.value(name)
                    .and_then(parse_utc_offset)
                    .ok_or_else(|| bad(format!("{} without a valid {name}", ob.name)))
            };
            let to = offset("TZOFFSETTO")?;
            // TZOFFSETFROM is required; a missing one is read as TZOFFSETTO.
            let from = offset("TZOFFSETFROM").unwrap_or(to);
            let rule = match ob.prop("RRULE") {
                Some(p) => Some(RRule::parse(&p.value).map_err(|e| bad(e.to_string()))?),
                None => None,
            };
            let until = rule.as_ref().and_then(|r| match &r.until {
                Some(DateTimeValue::Utc(u)) => {
                    u.checked_add_signed(Duration::seconds(i64::from(from)))
                }
                Some(_) => r.naive_until(),
                None => None,
            });
            let mut rdates = Vec::new();
            for p in ob.props_named("RDATE") {
                for r in rdate_list(p).map_err(|e| bad(e.to_string()))? {
                    rdates.push(match r {
                        RDate::At(v) => v.local(),
                        RDate::Period(p) => p.start.local(),
                    });
                }
            }
            rdates.sort_unstable();
            observances.push(Observance {
                start,
                from,
                to,
                rule,
                until,
                rdates,
                memo: OnsetMemo::default(),
            });
        }
        // An EXDATE on an observance is so rare it is not worth a branch on
        // every lookup; read it only to refuse nonsense.
        for ob in &c.children {
            for p in ob.props_named("EXDATE") {
                date_list(p).map_err(|e| bad(e.to_string()))?;
            }
        }
        if observances.is_empty() {
            return Err(bad("no STANDARD or DAYLIGHT observance".into()));
        }
        Ok(CustomZone { tzid, observances })
    }

    /// Seconds east of UTC in effect at this instant: the offset of the
    /// latest onset at or before it; before every onset, the TZOFFSETFROM of
    /// the earliest.
    pub fn offset_at(&self, utc: NaiveDateTime) -> i32 {
        let mut best: Option<(NaiveDateTime, i32)> = None;
        let mut earliest: Option<(NaiveDateTime, i32)> = None;
        for ob in &self.observances {
            let shift = Duration::seconds(i64::from(ob.from));
            let first = ob.start - shift;
            if earliest.is_none_or(|(t, _)| first < t) {
                earliest = Some((first, ob.from));
            }
            let Some(target) = utc.checked_add_signed(shift) else {
                continue;
            };
            if let Some(onset) = ob.last_onset_at_or_before(target) {
                let onset = onset - shift;
                if best.is_none_or(|(t, _)| onset > t) {
                    best = Some((onset, ob.to));
                }
            }
        }
        best.or(earliest).map(|(_, off)| off).unwrap_or(0)
    }
}

impl Observance {
    /// The latest onset (wall-clock, `from` offset) at or before `target`.
    fn last_onset_at_or_before(&self, target: NaiveDateTime) -> Option<NaiveDateTime> {
        if target < self.start {
            return None;
        }
        let mut best = Some(self.start);
        // RDATEs are sorted: a binary search, not a scan of every one.
        let n = self.rdates.partition_point(|r| *r <= target);
        best = best.max(n.checked_sub(1).map(|i| self.rdates[i]));
        if let Some(rule) = &self.rule {
            best = best.max(self.rule_onset_at_or_before(rule, target));
        }
        best
    }

    /// The latest onset of the rule at or before `target`, from the memo,
    /// walking the rule further only when every kept onset precedes it.
    fn rule_onset_at_or_before(
        &self,
        rule: &RRule,
        target: NaiveDateTime,
    ) -> Option<NaiveDateTime> {
        let mut state = self.memo.state();
        let MemoState { onsets, iter, done } = &mut *state;
        while !*done && onsets.last().is_none_or(|last| *last <= target) {
            let walk = iter.get_or_insert_with(|| {
                rule.iter(self.start)
                    .with_until(self.until)
                    .with_limit(MEMO_ONSETS)
            });
            match walk.next() {
                Some(t) => onsets.push(t),
                None => {
                    *done = true;
                    *iter = None;
                }
            }
        }
        let n = onsets.partition_point(|t| *t <= target);
        n.checked_sub(1).map(|i| onsets[i])
    }
}

// ---------------------------------------------------------------------------
// Name resolution

/// The zones of one calendar object: its VTIMEZONEs, read once.
#[derive(Debug, Clone, Default)]
pub struct Zones {
    custom: Vec<Arc<CustomZone>>,
}

impl Zones {
    /// Read every VTIMEZONE of a VCALENDAR. One that cannot be read is left
    /// out (its TZID may still resolve by name).
    pub fn from_calendar(cal: &Component) -> Zones {
        let custom = cal
            .children_named("VTIMEZONE")
            .filter_map(|c| CustomZone::from_component(c).ok())
            .map(Arc::new)
            .collect();
        Zones { custom }
    }

    /// The zone a TZID names: a known name first (IANA, Windows, Outlook,
    /// prefixed), then the calendar's own VTIMEZONE, then the fixed offset
    /// of an Outlook display name whose city nobody knows.
    pub fn resolve(&self, tzid: &str) -> Option<Zone> {
        if let Some(tz) = resolve_name(tzid) {
            return Some(Zone::Iana(tz));
        }
        let clean = clean_tzid(tzid);
        let custom = self.custom.iter().find(|c| c.tzid == clean).or_else(|| {
            self.custom
                .iter()
                .find(|c| c.tzid.eq_ignore_ascii_case(&clean))
        });
        if let Some(c) = custom {
            return Some(Zone::Custom(c.clone()));
        }
        display_offset(&clean)
            .and_then(|(secs, _)| fixed_offset_zone(secs))
            .map(Zone::Iana)
    }
}

/// Windows zone name -> IANA zone (CLDR, territory 001).
pub fn windows_to_iana(name: &str) -> Option<&'static str> {
    let name = name.trim();
    match WINDOWS_TO_IANA.binary_search_by(|(w, _)| (*w).cmp(name)) {
        Ok(i) => Some(WINDOWS_TO_IANA[i].1),
        Err(_) => WINDOWS_TO_IANA
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(name))
            .map(|(_, i)| *i),
    }
}

/// Current IANA names CLDR still lists under an older name.
const RENAMED: &[(&str, &str)] = &[
    ("Africa/Asmara", "Africa/Asmera"),
    ("America/Argentina/Buenos_Aires", "America/Buenos_Aires"),
    ("America/Argentina/Catamarca", "America/Catamarca"),
    ("America/Argentina/Cordoba", "America/Cordoba"),
    ("America/Argentina/Jujuy", "America/Jujuy"),
    ("America/Argentina/Mendoza", "America/Mendoza"),
    ("America/Atikokan", "America/Coral_Harbour"),
    ("America/Indiana/Indianapolis", "America/Indianapolis"),
    ("America/Kentucky/Louisville", "America/Louisville"),
    ("America/Nuuk", "America/Godthab"),
    ("Asia/Ho_Chi_Minh", "Asia/Saigon"),
    ("Asia/Istanbul", "Europe/Istanbul"),
    ("Asia/Kathmandu", "Asia/Katmandu"),
    ("Asia/Kolkata", "Asia/Calcutta"),
    ("Asia/Thimphu", "Asia/Thimbu"),
    ("Asia/Yangon", "Asia/Rangoon"),
    ("Atlantic/Faroe", "Atlantic/Faeroe"),
    ("Etc/Universal", "Etc/UTC"),
    ("Etc/Zulu", "Etc/UTC"),
    ("Europe/Kyiv", "Europe/Kiev"),
    ("GMT", "Etc/GMT"),
    ("Pacific/Chuuk", "Pacific/Truk"),
    ("Pacific/Kanton", "Pacific/Enderbury"),
    ("Pacific/Pohnpei", "Pacific/Ponape"),
    ("UTC", "Etc/UTC"),
    ("Universal", "Etc/UTC"),
    ("Zulu", "Etc/UTC"),
];

/// IANA zone -> Windows zone name (CLDR), following renamed zones.
pub fn iana_to_windows(name: &str) -> Option<&'static str> {
    let lookup = |n: &str| {
        IANA_TO_WINDOWS
            .binary_search_by(|(i, _)| (*i).cmp(n))
            .ok()
            .map(|i| IANA_TO_WINDOWS[i].1)
    };
    let name = name.trim();
    lookup(name).or_else(|| {
        RENAMED
            .iter()
            .find(|(new, _)| *new == name)
            .and_then(|(_, old)| lookup(old))
    })
}

/// Every chrono-tz zone by lower-case name.
fn lower_names() -> &'static HashMap<String, Tz> {
    static MAP: OnceLock<HashMap<String, Tz>> = OnceLock::new();
    MAP.get_or_init(|| {
        chrono_tz::TZ_VARIANTS
            .iter()
            .map(|tz| (tz.name().to_ascii_lowercase(), *tz))
            .collect()
    })
}

/// Zones by the lower-case city of their name ("new york"), the first
/// (alphabetical) zone winning.
fn cities() -> &'static HashMap<String, Tz> {
    static MAP: OnceLock<HashMap<String, Tz>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut map = HashMap::new();
        for tz in chrono_tz::TZ_VARIANTS.iter() {
            let name = tz.name();
            if name.starts_with("Etc/") || name.starts_with("SystemV/") {
                continue;
            }
            if let Some((_, city)) = name.rsplit_once('/') {
                map.entry(city.replace('_', " ").to_ascii_lowercase())
                    .or_insert(*tz);
            }
        }
        // Outlook names for which no IANA zone is named.
        for (city, tz) in [
            ("beijing", chrono_tz::Asia::Shanghai),
            ("new delhi", chrono_tz::Asia::Kolkata),
            ("mumbai", chrono_tz::Asia::Kolkata),
            ("chennai", chrono_tz::Asia::Kolkata),
            ("osaka", chrono_tz::Asia::Tokyo),
            ("sapporo", chrono_tz::Asia::Tokyo),
            ("wellington", chrono_tz::Pacific::Auckland),
            ("hanoi", chrono_tz::Asia::Bangkok),
            ("islamabad", chrono_tz::Asia::Karachi),
            ("abu dhabi", chrono_tz::Asia::Dubai),
            ("muscat", chrono_tz::Asia::Muscat),
            ("bern", chrono_tz::Europe::Zurich),
            ("edinburgh", chrono_tz::Europe::London),
            ("st. petersburg", chrono_tz::Europe::Moscow),
        ] {
            map.entry(city.to_string()).or_insert(tz);
        }
        map
    })
}

/// Outlook display names that name a region instead of a city.
const REGIONS: &[(&str, Tz)] = &[
    ("coordinated universal time", chrono_tz::Etc::UTC),
    ("eastern time (us & canada)", chrono_tz::America::New_York),
    ("central time (us & canada)", chrono_tz::America::Chicago),
    ("mountain time (us & canada)", chrono_tz::America::Denver),
    (
        "pacific time (us & canada)",
        chrono_tz::America::Los_Angeles,
    ),
    ("atlantic time (canada)", chrono_tz::America::Halifax),
    ("alaska", chrono_tz::America::Anchorage),
    ("hawaii", chrono_tz::Pacific::Honolulu),
    ("arizona", chrono_tz::America::Phoenix),
    ("newfoundland", chrono_tz::America::St_Johns),
    ("saskatchewan", chrono_tz::America::Regina),
    ("indiana (east)", chrono_tz::America::Indiana::Indianapolis),
    ("greenwich mean time", chrono_tz::Europe::London),
    ("brasilia", chrono_tz::America::Sao_Paulo),
    ("mid-atlantic", chrono_tz::Atlantic::South_Georgia),
    ("azores", chrono_tz::Atlantic::Azores),
    ("cape verde is.", chrono_tz::Atlantic::Cape_Verde),
];

fn by_name(name: &str) -> Option<Tz> {
    if let Ok(tz) = name.parse::<Tz>() {
        return Some(tz);
    }
    if let Some(tz) = windows_to_iana(name).and_then(|i| i.parse::<Tz>().ok()) {
        return Some(tz);
    }
    lower_names().get(&name.to_ascii_lowercase()).copied()
}

/// `(UTC+01:00) …` / `(GMT-03.30) …` / `(UTC) …`: the offset in seconds and
/// the rest of the name.
fn display_offset(name: &str) -> Option<(i32, &str)> {
    let inner_end = name.find(')')?;
    let inner = name.strip_prefix('(')?.get(..inner_end - 1)?.trim();
    let rest = name[inner_end + 1..].trim();
    let offset = inner
        .strip_prefix("UTC")
        .or_else(|| inner.strip_prefix("GMT"))?
        .trim();
    if offset.is_empty() {
        return Some((0, rest));
    }
    let normalised = offset.replace('.', ":");
    Some((parse_utc_offset(&normalised)?, rest))
}

/// An `Etc/GMT±N` zone for a whole-hour offset.
fn fixed_offset_zone(secs: i32) -> Option<Tz> {
    if secs % 3600 != 0 {
        return None;
    }
    let h = secs / 3600;
    // Etc/GMT signs are inverted: Etc/GMT-1 is UTC+01:00.
    let name = match h.signum() {
        0 => "Etc/GMT".to_string(),
        1 => format!("Etc/GMT-{h}"),
        _ => format!("Etc/GMT+{}", -h),
    };
    name.parse().ok()
}

/// The standard offset of a zone today-ish: the smaller of its January and
/// July offsets (summer time adds, in either hemisphere).
fn base_offset(tz: Tz) -> i32 {
    [1, 7]
        .into_iter()
        .map(|m| {
            let probe = NaiveDate::from_ymd_opt(2025, m, 15)
                .expect("valid date")
                .and_hms_opt(12, 0, 0)
                .expect("valid time");
            tz.offset_from_utc_datetime(&probe).fix().local_minus_utc()
        })
        .min()
        .unwrap_or(0)
}

/// An Outlook display name: the first listed city (or region) whose zone
/// has the stated standard offset; failing that, the first one known.
fn by_display_name(name: &str) -> Option<Tz> {
    let (offset, rest) = display_offset(name)?;
    let lower = rest.to_ascii_lowercase();
    let mut found: Vec<Tz> = REGIONS
        .iter()
        .filter(|(region, _)| lower.starts_with(region))
        .map(|(_, tz)| *tz)
        .collect();
    for city in lower.split([',', '/', ';', '&', ':']) {
        let city = city.trim().trim_end_matches('.').trim();
        if let Some(tz) = cities().get(city) {
            found.push(*tz);
        }
    }
    found
        .iter()
        .find(|tz| base_offset(**tz) == offset)
        .or(found.first())
        .copied()
}

/// Resolve a TZID by name alone: an IANA name or link (any letter case), a
/// Windows name, an Outlook display name, or a vendor-prefixed IANA name
/// (`/mozilla.org/20050126_1/Europe/Berlin`, `tzone://Microsoft/Utc`).
/// Surrounding whitespace, quotes and NULs are ignored.
pub fn resolve_name(tzid: &str) -> Option<Tz> {
    let name = clean_tzid(tzid);
    if name.is_empty() {
        return None;
    }
    if let Some(tz) = by_name(&name) {
        return Some(tz);
    }
    if name.starts_with('(') {
        return by_display_name(&name);
    }
    // Vendor prefixes: try every suffix after a '/', longest first.
    for (i, _) in name.match_indices('/') {
        let suffix = &name[i + 1..];
        if suffix.is_empty() {
            continue;
        }
        if let Some(tz) = by_name(suffix) {
            return Some(tz);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn resolves_every_kind_of_name() {
        let check = |name: &str, want: &str| {
            assert_eq!(resolve_name(name).map(|t| t.name()), Some(want), "{name:?}");
        };
        check("Europe/Berlin", "Europe/Berlin");
        check("US/Eastern", "US/Eastern");
        check("europe/berlin", "Europe/Berlin");
        check("W. Europe Standard Time", "Europe/Berlin");
        check("w. europe standard time", "Europe/Berlin");
        check("Europe/Stockholm\0\0\0\0", "Europe/Stockholm");
        check(" \"America/New_York\" ", "America/New_York");
        check("/mozilla.org/20050126_1/Europe/Berlin", "Europe/Berlin");
        check(
            "/softwarestudio.org/Olson_20011030_5/America/New_York",
            "America/New_York",
        );
        check(
            "/citadel.org/20190914_1/America/Argentina/Buenos_Aires",
            "America/Argentina/Buenos_Aires",
        );
        check("tzone://Microsoft/Utc", "Etc/UTC");
        check(
            "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna",
            "Europe/Amsterdam",
        );
        check(
            "(GMT+01.00) Sarajevo / Skopje / Sofija / Vilnius / Warsaw / Zagreb",
            "Europe/Sarajevo",
        );
        check("(UTC-05:00) Eastern Time (US & Canada)", "America/New_York");
        check(
            "(UTC+05:30) Chennai, Kolkata, Mumbai, New Delhi",
            "Asia/Kolkata",
        );
        check("(UTC) Dublin, Edinburgh, Lisbon, London", "Europe/Dublin");
        check(
            "(UTC+08:00) Beijing, Chongqing, Hong Kong, Urumqi",
            "Asia/Shanghai",
        );
        assert_eq!(resolve_name("Mars/Olympus_Mons"), None);
        assert_eq!(resolve_name(""), None);
        assert_eq!(resolve_name("(UTC+01:00) Atlantis"), None);
    }

    #[test]
    fn windows_tables_both_ways() {
        assert_eq!(
            windows_to_iana("W. Europe Standard Time"),
            Some("Europe/Berlin")
        );
        assert_eq!(
            windows_to_iana("Pacific Standard Time"),
            Some("America/Los_Angeles")
        );
        assert_eq!(windows_to_iana("UTC"), Some("Etc/UTC"));
        assert_eq!(windows_to_iana("Nowhere Standard Time"), None);
        assert_eq!(
            iana_to_windows("Europe/Berlin"),
            Some("W. Europe Standard Time")
        );
        assert_eq!(iana_to_windows("Asia/Kolkata"), Some("India Standard Time"));
        assert_eq!(iana_to_windows("Europe/Kyiv"), Some("FLE Standard Time"));
        assert_eq!(iana_to_windows("Mars/Base"), None);
        // The generated tables stay sorted (binary search depends on it)
        // and every IANA name in them is one chrono-tz knows.
        assert!(WINDOWS_TO_IANA.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(IANA_TO_WINDOWS.windows(2).all(|w| w[0].0 < w[1].0));
        for (win, iana) in WINDOWS_TO_IANA {
            assert!(iana.parse::<Tz>().is_ok(), "{win} -> {iana}");
        }
    }

    #[test]
    fn gaps_move_forward_and_overlaps_take_the_first() {
        let berlin = Zone::Iana(chrono_tz::Europe::Berlin);
        // 2024-03-31 02:30 does not exist in Berlin: it is 03:30 CEST.
        assert_eq!(
            berlin.to_utc(dt("2024-03-31 02:30:00")).naive_utc(),
            dt("2024-03-31 01:30:00")
        );
        // 2024-10-27 02:30 happens twice: the first is CEST (+2).
        assert_eq!(
            berlin.to_utc(dt("2024-10-27 02:30:00")).naive_utc(),
            dt("2024-10-27 00:30:00")
        );
        assert_eq!(
            berlin.from_utc(dt("2024-07-01 10:00:00").and_utc()),
            dt("2024-07-01 12:00:00")
        );
        let floating = Zone::Floating;
        assert_eq!(floating.or_floating(&berlin), berlin);
        assert_eq!(Zone::Utc.or_floating(&berlin), Zone::Utc);
    }

    const BERLIN_VTIMEZONE: &str = "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:My Berlin\r\n\
        BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nDTSTART:19810329T020000\r\n\
        RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n\
        BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nDTSTART:19961027T030000\r\n\
        RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n\
        BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nDTSTART:19810927T030000\r\n\
        RRULE:FREQ=YEARLY;UNTIL=19950924T010000Z;BYMONTH=9;BYDAY=-1SU\r\nEND:STANDARD\r\n\
        END:VTIMEZONE\r\nEND:VCALENDAR\r\n";

    #[test]
    fn custom_zone_agrees_with_the_real_one() {
        let cal = crate::ics::parse(BERLIN_VTIMEZONE.as_bytes()).unwrap();
        let zones = Zones::from_calendar(&cal);
        let Some(Zone::Custom(custom)) = zones.resolve("My Berlin") else {
            panic!("custom zone not found")
        };
        let custom = Zone::Custom(custom);
        let real = Zone::Iana(chrono_tz::Europe::Berlin);
        let mut t = dt("1985-01-01 00:00:00");
        while t < dt("2030-01-01 00:00:00") {
            assert_eq!(custom.offset_at(t), real.offset_at(t), "at {t}");
            t += Duration::hours(97);
        }
        // Transition instants exactly, and local time either side.
        for (utc, offset) in [
            ("2024-03-31 00:59:59", 3600),
            ("2024-03-31 01:00:00", 7200),
            ("2024-10-27 00:59:59", 7200),
            ("2024-10-27 01:00:00", 3600),
            ("1990-09-30 00:59:59", 7200),
            ("1990-09-30 01:00:00", 3600),
        ] {
            assert_eq!(custom.offset_at(dt(utc)), offset, "{utc}");
        }
        assert_eq!(
            custom.to_utc(dt("2024-03-31 02:30:00")),
            real.to_utc(dt("2024-03-31 02:30:00"))
        );
        assert_eq!(
            custom.to_utc(dt("2024-10-27 02:30:00")),
            real.to_utc(dt("2024-10-27 02:30:00"))
        );
        // Before the first onset: the earliest observance's TZOFFSETFROM.
        assert_eq!(custom.offset_at(dt("1970-06-01 00:00:00")), 3600);
    }

    fn custom_zone(observances: &str) -> Arc<CustomZone> {
        let text = format!(
            "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:Z\r\n{observances}END:VTIMEZONE\r\nEND:VCALENDAR\r\n"
        );
        let cal = crate::ics::parse(text.as_bytes()).unwrap();
        Arc::new(CustomZone::from_component(&cal.children[0]).unwrap())
    }

    #[test]
    fn onsets_are_walked_once_in_any_lookup_order() {
        // Outlook's shape: from 1601, here with a COUNT (walked from DTSTART).
        let z = custom_zone(
            "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n\
             DTSTART:16010325T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;COUNT=1000\r\n\
             END:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n\
             DTSTART:16011028T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU;COUNT=1000\r\n\
             END:STANDARD\r\n",
        );
        let custom = Zone::Custom(z.clone());
        let real = Zone::Iana(chrono_tz::Europe::Berlin);
        for t in [
            "2030-07-01 12:00:00",
            "1999-01-01 12:00:00",
            "2024-03-31 01:00:00",
            "2024-03-31 00:59:59",
            "1997-10-26 00:59:59",
            "2030-12-01 12:00:00",
        ] {
            assert_eq!(custom.offset_at(dt(t)), real.offset_at(dt(t)), "at {t}");
        }
        // Walked as far as the latest lookup (2030) needed, and no further.
        let kept = z.observances[0].memo.state().onsets.len();
        assert!((429..=431).contains(&kept), "{kept} onsets kept");
    }

    #[test]
    fn a_dense_observance_rule_is_walked_within_bounds() {
        // An onset every second from 2025: no real zone, but a VTIMEZONE
        // anyone can send. Lookups stay cheap and the memo stays bounded.
        let z = custom_zone(
            "BEGIN:STANDARD\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0100\r\n\
             DTSTART:19700101T000000\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\n\
             TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nDTSTART:20250101T000000\r\n\
             RRULE:FREQ=SECONDLY\r\nEND:DAYLIGHT\r\n",
        );
        let custom = Zone::Custom(z.clone());
        let mut t = dt("2025-01-01 00:00:00");
        for _ in 0..5_000 {
            custom.to_utc(t);
            t += Duration::hours(1);
        }
        assert_eq!(custom.offset_at(dt("2025-01-01 00:10:00")), 7200);
        assert_eq!(custom.offset_at(dt("2024-12-31 22:00:00")), 3600);
        assert_eq!(z.observances[1].memo.state().onsets.len(), MEMO_ONSETS);
    }

    #[test]
    fn offsets_parse_with_seconds() {
        assert_eq!(parse_utc_offset("+0100"), Some(3600));
        assert_eq!(parse_utc_offset("-0530"), Some(-19800));
        assert_eq!(parse_utc_offset("+005328"), Some(3208));
        assert_eq!(parse_utc_offset("+01:00"), Some(3600));
        assert_eq!(parse_utc_offset("+2500"), None);
        assert_eq!(parse_utc_offset("abc"), None);
        assert_eq!(format_utc_offset(3208), "+005328");
        assert_eq!(format_utc_offset(-19800), "-0530");
        assert_eq!(format_utc_offset(0), "+0000");
    }

    #[test]
    fn outlook_fallbacks() {
        // A VTIMEZONE wins over a display name nobody knows; without one the
        // stated offset is used.
        let zones = Zones::default();
        assert_eq!(
            zones.resolve("(UTC+03:00) Atlantis"),
            Some(Zone::Iana(chrono_tz::Etc::GMTMinus3))
        );
        assert_eq!(zones.resolve("(UTC+03:30) Atlantis"), None);
        assert_eq!(zones.resolve("Unknown"), None);
    }
}
