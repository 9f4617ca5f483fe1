//! Expansion of a calendar object resource (RFC 5545 §3.8.5, RFC 4791
//! §9.6.5, §9.6.6, §9.9): the instances of each VEVENT / VTODO / VJOURNAL
//! master with its RRULE, RDATE, EXDATE (and the deprecated EXRULE), merged
//! with the RECURRENCE-ID overrides of the same UID.
//!
//! This module owns the recurrence *set* (which instances exist, when they
//! start and end in UTC, which component describes each) and the CalDAV
//! `expand` / `limit-recurrence-set` rewrites. The rule arithmetic is
//! [`crate::ics::rrule`]'s, the zones [`crate::ics::tz`]'s.
//!
//! Choices worth knowing:
//! - An override replaces the instance with the same RECURRENCE-ID, matched
//!   on RECURRENCE-ID alone (never SEQUENCE): as instants when both are
//!   date-times, as dates when either is a DATE.
//! - DTSTART is always an instance (RFC 5545 §3.8.5.3), and counts toward
//!   COUNT even when the rule would not produce it.
//! - An override whose RECURRENCE-ID matches no instance still appears.
//! - An all-day instance starts and ends at midnight of its dates in
//!   [`ExpandOptions::floating`], so it is never shifted a day.
//! - An override without DTEND / DURATION keeps the master's length.
//! - Expansion is bounded: at most [`ExpandOptions::max_instances`]
//!   instances (the earliest), and the rule iterators' own bounds.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use super::rrule::{RRule, RRuleIter};
use super::tz::{Zone, Zones};
use super::value::{date_list, format_utc, rdate_list, DateTimeValue, IcsDuration, RDate};
use super::{Component, IcsError, Param, Property};

/// One occurrence of a recurrence set.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The RECURRENCE-ID identifying this instance (in the form of the
    /// master's DTSTART, or the override's own); `None` for a component
    /// that does not recur.
    pub recurrence_id: Option<DateTimeValue>,
    /// Index into `cal.children` of the component describing this instance.
    pub component: usize,
    pub all_day: bool,
}

/// How to expand.
#[derive(Debug, Clone)]
pub struct ExpandOptions {
    /// The zone of floating times and of DATE values (a user's or a
    /// calendar's zone). Default UTC.
    pub floating: Zone,
    /// At most this many instances are returned (the earliest).
    pub max_instances: usize,
}

/// Default for [`ExpandOptions::max_instances`]: two years of an hourly
/// event, far beyond any calendar view.
pub const DEFAULT_MAX_INSTANCES: usize = 20_000;

/// Most occurrences walked from DTSTART for a rule with COUNT (a bigger
/// COUNT is truncated there).
const COUNT_WALK_LIMIT: usize = 200_000;

/// Most EXRULE occurrences read per range (EXRULE is deprecated and rare).
const EXRULE_LIMIT: usize = 100_000;

impl Default for ExpandOptions {
    fn default() -> Self {
        ExpandOptions {
            floating: Zone::Utc,
            max_instances: DEFAULT_MAX_INSTANCES,
        }
    }
}

/// The components that take part in recurrence.
pub(crate) fn is_recurring_kind(c: &Component) -> bool {
    matches!(c.name.as_str(), "VEVENT" | "VTODO" | "VJOURNAL")
}

/// How long each instance lasts.
#[derive(Debug, Clone, Copy)]
enum Length {
    /// Exact seconds (DTEND - DTSTART of date-times).
    Exact(i64),
    /// Whole days from a DATE (all-day).
    Days(i64),
    /// A DURATION: days on the calendar, the rest exact.
    Nominal(IcsDuration),
}

impl Length {
    fn end(&self, local: NaiveDateTime, start: DateTime<Utc>, zone: &Zone) -> DateTime<Utc> {
        let end = match self {
            Length::Exact(s) => start
                .checked_add_signed(Duration::seconds(*s))
                .unwrap_or(start),
            Length::Days(n) => zone.to_utc(
                local
                    .checked_add_signed(Duration::days(*n))
                    .unwrap_or(local),
            ),
            Length::Nominal(d) => d.add_in_zone(local, zone),
        };
        end.max(start)
    }

    /// An upper bound of the length in seconds (DST can add an hour a day).
    fn bound(&self) -> i64 {
        match self {
            Length::Exact(s) => *s,
            Length::Days(n) => n * 86_400 + 2 * 86_400,
            Length::Nominal(d) => d.approx_seconds().abs() + 2 * 86_400,
        }
    }
}

/// The start of a component: DTSTART, or DUE for a VTODO without one.
fn start_of(c: &Component) -> Result<Option<DateTimeValue>, IcsError> {
    match c
        .prop("DTSTART")
        .or_else(|| (c.name == "VTODO").then(|| c.prop("DUE")).flatten())
    {
        Some(p) => DateTimeValue::from_property(p).map(Some),
        None => Ok(None),
    }
}

/// The length given by DTEND (DUE for a VTODO) or DURATION, if any.
fn own_length(
    c: &Component,
    start: &DateTimeValue,
    zones: &Zones,
    floating: &Zone,
) -> Result<Option<Length>, IcsError> {
    let end_name = if c.name == "VTODO" { "DUE" } else { "DTEND" };
    let has_dtstart = c.prop("DTSTART").is_some();
    if let Some(p) = c.prop(end_name).filter(|_| has_dtstart) {
        let end = DateTimeValue::from_property(p)?;
        return Ok(Some(match start {
            DateTimeValue::Date(d) => Length::Days((end.date() - *d).num_days().max(1)),
            _ => Length::Exact(
                (end.to_utc(zones, floating) - start.to_utc(zones, floating))
                    .num_seconds()
                    .max(0),
            ),
        }));
    }
    if let Some(p) = c.prop("DURATION").filter(|_| has_dtstart) {
        let d = IcsDuration::parse(&p.value)
            .map_err(|e| IcsError::Invalid(format!("{}: {e}", p.name)))?;
        return Ok(Some(match start {
            DateTimeValue::Date(_) if d.exact_seconds() == 0 => {
                Length::Days(d.nominal_days().max(1))
            }
            _ => Length::Nominal(d),
        }));
    }
    Ok(None)
}

fn default_length(start: &DateTimeValue) -> Length {
    if start.is_date() {
        Length::Days(1)
    } else {
        Length::Exact(0)
    }
}

/// Whether [start, end) overlaps [lo, hi) in the sense of RFC 4791 §9.9
/// (a zero-length instance overlaps when lo <= start < hi).
fn overlaps(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
) -> bool {
    if end > start {
        start < hi && end > lo
    } else {
        start >= lo && start < hi
    }
}

/// A RECURRENCE-ID (or an instance's would-be one) reduced to what is
/// compared: the instant of a date-time, the date of a DATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum RidKey {
    At(i64),
    Day(NaiveDate),
}

/// The components of one UID: the master and its overrides.
#[derive(Debug, Default)]
struct Group {
    master: Option<usize>,
    overrides: Vec<usize>,
}

/// Components of `cal` that recur, grouped by UID in order of appearance.
/// A component without UID is a group of its own.
fn groups(cal: &Component) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    let mut by_uid: HashMap<&str, usize> = HashMap::new();
    for (i, c) in cal.children.iter().enumerate() {
        if !is_recurring_kind(c) {
            continue;
        }
        let g = match c.value("UID").map(str::trim) {
            Some(uid) => *by_uid.entry(uid).or_insert_with(|| {
                out.push(Group::default());
                out.len() - 1
            }),
            None => {
                out.push(Group::default());
                out.len() - 1
            }
        };
        if c.prop("RECURRENCE-ID").is_some() {
            out[g].overrides.push(i);
        } else if out[g].master.is_none() {
            out[g].master = Some(i);
        } else {
            // A second master for the same UID: expand it as its own series
            // rather than lose it (object::analyze refuses such objects).
            out.push(Group {
                master: Some(i),
                overrides: Vec::new(),
            });
        }
    }
    out
}

/// An override read from its component.
#[derive(Debug)]
struct Override {
    index: usize,
    rid: DateTimeValue,
    key: RidKey,
    /// The original instant of the instance it replaces.
    rid_utc: DateTime<Utc>,
    this_and_future: bool,
    cancelled: bool,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    all_day: bool,
    /// Its own length, if it states one.
    length: Option<Length>,
}

fn is_cancelled(c: &Component) -> bool {
    c.value("STATUS")
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("CANCELLED"))
}

fn key_of(v: &DateTimeValue, zones: &Zones, floating: &Zone) -> RidKey {
    match v {
        DateTimeValue::Date(d) => RidKey::Day(*d),
        other => RidKey::At(other.to_utc(zones, floating).timestamp()),
    }
}

fn read_override(
    cal: &Component,
    index: usize,
    master_length: Option<Length>,
    zones: &Zones,
    floating: &Zone,
) -> Result<Override, IcsError> {
    let c = &cal.children[index];
    let rid_prop = c.prop("RECURRENCE-ID").expect("grouped as an override");
    let rid = DateTimeValue::from_property(rid_prop)?;
    let this_and_future = rid_prop
        .param("RANGE")
        .is_some_and(|r| r.trim().eq_ignore_ascii_case("THISANDFUTURE"));
    let start_value = start_of(c)?.unwrap_or_else(|| rid.clone());
    let zone = start_value.zone(zones, floating);
    let start = start_value.to_utc(zones, floating);
    let length = own_length(c, &start_value, zones, floating)?;
    let used = length
        .or(master_length)
        .unwrap_or_else(|| default_length(&start_value));
    let end = used.end(start_value.local(), start, &zone);
    Ok(Override {
        index,
        key: key_of(&rid, zones, floating),
        rid_utc: rid.to_utc(zones, floating),
        rid,
        this_and_future,
        cancelled: is_cancelled(c),
        start,
        end,
        all_day: start_value.is_date(),
        length,
    })
}

/// The parts of a master that define its recurrence set.
struct Master {
    index: usize,
    dtstart: DateTimeValue,
    zone: Zone,
    length: Length,
    rules: Vec<RRule>,
    exrules: Vec<RRule>,
    rdates: Vec<RDate>,
    exdates: Vec<DateTimeValue>,
}

impl Master {
    fn read(
        cal: &Component,
        index: usize,
        zones: &Zones,
        floating: &Zone,
    ) -> Result<Option<Self>, IcsError> {
        let comp = &cal.children[index];
        let Some(dtstart) = start_of(comp)? else {
            return Ok(None);
        };
        let zone = dtstart.zone(zones, floating);
        let length = own_length(comp, &dtstart, zones, floating)?
            .unwrap_or_else(|| default_length(&dtstart));
        let rules = |name: &str| -> Result<Vec<RRule>, IcsError> {
            comp.props_named(name)
                .map(|p| RRule::parse(&p.value))
                .collect()
        };
        let mut rdates = Vec::new();
        for p in comp.props_named("RDATE") {
            rdates.extend(rdate_list(p)?);
        }
        let mut exdates = Vec::new();
        for p in comp.props_named("EXDATE") {
            exdates.extend(date_list(p)?);
        }
        Ok(Some(Master {
            index,
            rules: rules("RRULE")?,
            exrules: rules("EXRULE")?,
            dtstart,
            zone,
            length,
            rdates,
            exdates,
        }))
    }

    fn recurs(&self) -> bool {
        !self.rules.is_empty() || !self.rdates.is_empty()
    }

    /// UNTIL as wall-clock time in the master's zone.
    fn until_local(&self, rule: &RRule) -> Option<NaiveDateTime> {
        match &rule.until {
            Some(DateTimeValue::Utc(u)) if !matches!(self.zone, Zone::Utc) => {
                Some(self.zone.from_utc(u.and_utc()))
            }
            _ => rule.naive_until(),
        }
    }

    /// The rule's occurrences as wall-clock times from `from` (when given
    /// and the rule has no COUNT, without walking from DTSTART), with
    /// DTSTART counting toward COUNT as RFC 5545 says.
    fn occurrences(&self, rule: &RRule, from: Option<NaiveDateTime>, limit: usize) -> RRuleIter {
        let start = self.dtstart.local();
        let mut rule = rule.clone();
        if let Some(c) = rule.count {
            let first = rule.iter(start).next();
            let synced = match first {
                Some(f) if self.is_all_day() => f.date() == start.date(),
                other => other == Some(start),
            };
            if !synced {
                rule.count = Some(c.saturating_sub(1));
            }
        }
        let walk = if rule.count.is_some() {
            COUNT_WALK_LIMIT
        } else {
            limit
        };
        let mut it = rule
            .iter(start)
            .with_until(self.until_local(&rule))
            .with_limit(walk);
        if let Some(from) = from {
            it = it.starting_at(from);
        }
        it
    }

    fn is_all_day(&self) -> bool {
        self.dtstart.is_date()
    }

    fn key_at(&self, local: NaiveDateTime, utc: DateTime<Utc>) -> RidKey {
        if self.is_all_day() {
            RidKey::Day(local.date())
        } else {
            RidKey::At(utc.timestamp())
        }
    }
}

/// EXDATE / EXRULE exclusions.
#[derive(Default)]
struct Exclusions {
    at: HashSet<i64>,
    days: HashSet<NaiveDate>,
    /// Dates (as written) of date-time exclusions, for all-day masters.
    at_dates: HashSet<NaiveDate>,
}

impl Exclusions {
    fn excludes(&self, key: RidKey, local_date: NaiveDate) -> bool {
        match key {
            RidKey::At(t) => self.at.contains(&t) || self.days.contains(&local_date),
            RidKey::Day(d) => self.days.contains(&d) || self.at_dates.contains(&d),
        }
    }
}

/// Overrides indexed for matching against master instances.
#[derive(Default)]
struct OverrideIndex {
    at: HashMap<i64, usize>,
    days: HashMap<NaiveDate, usize>,
    at_dates: HashMap<NaiveDate, usize>,
    /// RANGE=THISANDFUTURE overrides: (original instant, position), sorted.
    future: Vec<(i64, usize)>,
}

impl OverrideIndex {
    fn new(overrides: &[Override]) -> Self {
        let mut ix = OverrideIndex::default();
        for (i, o) in overrides.iter().enumerate() {
            match o.key {
                RidKey::At(t) => {
                    ix.at.entry(t).or_insert(i);
                    ix.at_dates.entry(o.rid.date()).or_insert(i);
                }
                RidKey::Day(d) => {
                    ix.days.entry(d).or_insert(i);
                }
            }
            if o.this_and_future {
                ix.future.push((o.rid_utc.timestamp(), i));
            }
        }
        ix.future.sort_unstable();
        ix
    }

    fn exact(&self, key: RidKey, local_date: NaiveDate) -> Option<usize> {
        match key {
            RidKey::At(t) => self
                .at
                .get(&t)
                .or_else(|| self.days.get(&local_date))
                .copied(),
            RidKey::Day(d) => self.days.get(&d).or_else(|| self.at_dates.get(&d)).copied(),
        }
    }

    /// The THISANDFUTURE override in force for an instance originally at
    /// `utc`: the latest one at or before it.
    fn future_for(&self, utc: i64) -> Option<usize> {
        let n = self.future.partition_point(|(t, _)| *t <= utc);
        n.checked_sub(1).map(|i| self.future[i].1)
    }

    /// Largest shift a THISANDFUTURE override applies, in seconds.
    fn max_shift(&self, overrides: &[Override]) -> i64 {
        self.future
            .iter()
            .map(|(_, i)| {
                (overrides[*i].start - overrides[*i].rid_utc)
                    .num_seconds()
                    .abs()
            })
            .max()
            .unwrap_or(0)
    }
}

/// The expansion of one UID group into `out`.
fn expand_group(
    cal: &Component,
    group: &Group,
    zones: &Zones,
    window: (DateTime<Utc>, DateTime<Utc>),
    opts: &ExpandOptions,
    out: &mut Vec<Instance>,
) -> Result<(), IcsError> {
    let floating = &opts.floating;
    let master = match group.master {
        Some(i) => Master::read(cal, i, zones, floating)?,
        None => None,
    };
    let overrides: Vec<Override> = group
        .overrides
        .iter()
        .map(|&i| read_override(cal, i, master.as_ref().map(|m| m.length), zones, floating))
        .collect::<Result<_, _>>()?;
    let index = OverrideIndex::new(&overrides);
    let (lo, hi) = window;

    if let Some(m) = &master {
        expand_master(m, &overrides, &index, zones, window, opts, out)?;
    }
    for o in &overrides {
        if !o.cancelled && overlaps(o.start, o.end, lo, hi) {
            out.push(Instance {
                start: o.start,
                end: o.end,
                recurrence_id: Some(o.rid.clone()),
                component: o.index,
                all_day: o.all_day,
            });
        }
    }
    Ok(())
}

fn expand_master(
    m: &Master,
    overrides: &[Override],
    index: &OverrideIndex,
    zones: &Zones,
    (lo, hi): (DateTime<Utc>, DateTime<Utc>),
    opts: &ExpandOptions,
    out: &mut Vec<Instance>,
) -> Result<(), IcsError> {
    let floating = &opts.floating;
    // Instances starting in [cand_lo, cand_hi] can overlap the range.
    // Wall-clock time maps to UTC monotonically (gaps move forward,
    // overlaps take the first), so no candidate before local_lo can start
    // after cand_lo; past the end, a repeated hour can put a later
    // wall-clock time at an earlier instant, hence the 3 hours.
    let shift = index.max_shift(overrides);
    // Saturating: a caller may ask for everything (MIN_UTC..MAX_UTC).
    let cand_lo = lo
        .checked_sub_signed(Duration::seconds(m.length.bound().saturating_add(shift)))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let cand_hi = hi
        .checked_add_signed(Duration::seconds(shift))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let local_lo = m.zone.from_utc(cand_lo);
    let local_hi = m
        .zone
        .from_utc(cand_hi)
        .checked_add_signed(Duration::hours(3))
        .unwrap_or(NaiveDateTime::MAX);
    let mut excluded = Exclusions::default();
    for v in &m.exdates {
        match v {
            DateTimeValue::Date(d) => {
                excluded.days.insert(*d);
            }
            other => {
                excluded
                    .at
                    .insert(other.to_utc(zones, floating).timestamp());
                excluded.at_dates.insert(other.date());
            }
        }
    }
    for rule in &m.exrules {
        let occurrences = m.occurrences(rule, Some(local_lo), EXRULE_LIMIT);
        for t in occurrences.take_while(|t| *t <= local_hi) {
            if m.is_all_day() {
                excluded.days.insert(t.date());
            } else {
                excluded.at.insert(m.zone.to_utc(t).timestamp());
            }
        }
    }

    let recurs = m.recurs() || !overrides.is_empty();
    let mut seen: HashSet<RidKey> = HashSet::new();
    // Place one candidate (wall-clock start, or the instant of an RDATE,
    // and the end of an RDATE period); true if it became an instance.
    let mut emit = |local: NaiveDateTime,
                    given_utc: Option<DateTime<Utc>>,
                    given_end: Option<DateTime<Utc>>|
     -> bool {
        // An all-day instance is a date, whatever time a rule's BYHOUR or
        // a date-time RDATE gave it.
        let (local, given_utc) = if m.is_all_day() {
            (local.date().and_time(NaiveTime::MIN), None)
        } else {
            (local, given_utc)
        };
        let start = given_utc.unwrap_or_else(|| m.zone.to_utc(local));
        if start < cand_lo || start > cand_hi {
            return false;
        }
        // An RDATE in another zone is placed by its instant; its
        // RECURRENCE-ID is that instant as wall-clock time in the master's zone.
        let local = if given_utc.is_some() && !m.is_all_day() {
            m.zone.from_utc(start)
        } else {
            local
        };
        let key = m.key_at(local, start);
        if !seen.insert(key) || excluded.excludes(key, local.date()) {
            return false;
        }
        if index.exact(key, local.date()).is_some() {
            return false; // the override emits its own instance
        }
        let rid = recurs.then(|| m.dtstart.with_local(local));
        let mut end = given_end.unwrap_or_else(|| m.length.end(local, start, &m.zone));
        let (mut s, mut component) = (start, m.index);
        if let Some(i) = index.future_for(start.timestamp()) {
            let o = &overrides[i];
            if o.cancelled {
                return false;
            }
            s = start + (o.start - o.rid_utc);
            end = match o.length {
                Some(len) => len.end(m.zone.from_utc(s), s, &m.zone),
                None => end + (o.start - o.rid_utc),
            };
            component = o.index;
        }
        if !overlaps(s, end, lo, hi) {
            return false;
        }
        out.push(Instance {
            start: s,
            end,
            recurrence_id: rid,
            component,
            all_day: m.is_all_day(),
        });
        true
    };

    emit(m.dtstart.local(), None, None);
    for r in &m.rdates {
        match r {
            RDate::At(v) => {
                emit(v.local(), Some(v.to_utc(zones, floating)), None);
            }
            RDate::Period(p) => {
                let (s, e) = p.to_utc(zones, floating);
                emit(p.start.local(), Some(s), Some(e));
            }
        }
    }
    // Each rule contributes its earliest max_instances instances in the
    // range; the rule iterator bounds the walk to them.
    for rule in &m.rules {
        let mut accepted = 0;
        for t in m.occurrences(rule, Some(local_lo), usize::MAX) {
            if t > local_hi {
                break;
            }
            if emit(t, None, None) {
                accepted += 1;
                if accepted >= opts.max_instances {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// The instances of every recurring component of `cal` that overlap
/// `[range_start, range_end)` (RFC 4791 §9.9), sorted by start, at most
/// `opts.max_instances` (the earliest).
pub fn instances(
    cal: &Component,
    range_start: DateTime<Utc>,
    range_end: DateTime<Utc>,
    opts: &ExpandOptions,
) -> Result<Vec<Instance>, IcsError> {
    let zones = Zones::from_calendar(cal);
    let mut out = Vec::new();
    for g in groups(cal) {
        expand_group(cal, &g, &zones, (range_start, range_end), opts, &mut out)?;
    }
    out.sort_by(|a, b| a.start.cmp(&b.start).then(a.component.cmp(&b.component)));
    out.truncate(opts.max_instances);
    Ok(out)
}

/// The UTC span (seconds) of every instance of `cal`: (first start, last
/// end), `i64::MAX` as the end when the series never ends (or would take
/// too long to walk), `i64::MIN` as the start for a VTODO without dates
/// (RFC 4791 §9.9: it matches every range). Quick: an unbounded rule is not
/// walked, an UNTIL is used as is, only a COUNT is walked (bounded).
pub fn series_span(cal: &Component, opts: &ExpandOptions) -> Result<(i64, i64), IcsError> {
    let zones = Zones::from_calendar(cal);
    let floating = &opts.floating;
    let mut span: Option<(i64, i64)> = None;
    let mut widen = |s: i64, e: i64| {
        span = Some(match span {
            None => (s, e),
            Some((a, b)) => (a.min(s), b.max(e)),
        });
    };
    for g in groups(cal) {
        let master = match g.master {
            Some(i) => Master::read(cal, i, &zones, floating)?,
            None => None,
        };
        if g.master.is_some() && master.is_none() {
            widen(i64::MIN, i64::MAX);
        }
        let mut max_shift = 0;
        for &i in &g.overrides {
            let o = read_override(cal, i, master.as_ref().map(|m| m.length), &zones, floating)?;
            if o.this_and_future {
                max_shift = max_shift.max((o.start - o.rid_utc).num_seconds().abs());
            }
            if !o.cancelled {
                widen(o.start.timestamp(), o.end.timestamp());
            }
        }
        let Some(m) = master else { continue };
        let start = m.zone.to_utc(m.dtstart.local());
        let mut first = start.timestamp();
        let mut last = m.length.end(m.dtstart.local(), start, &m.zone).timestamp();
        for r in &m.rdates {
            let (s, e) = match r {
                RDate::At(v) => {
                    let s = v.to_utc(&zones, floating);
                    (s, m.length.end(v.local(), s, &v.zone(&zones, floating)))
                }
                RDate::Period(p) => p.to_utc(&zones, floating),
            };
            first = first.min(s.timestamp());
            last = last.max(e.timestamp());
        }
        for rule in &m.rules {
            let end = if rule.count.is_some() {
                let mut it = m.occurrences(rule, None, COUNT_WALK_LIMIT);
                let final_local = it.by_ref().last();
                if it.truncated() {
                    i64::MAX
                } else {
                    final_local.map_or(last, |l| {
                        m.length.end(l, m.zone.to_utc(l), &m.zone).timestamp()
                    })
                }
            } else if let Some(u) = m.until_local(rule) {
                let u = m.zone.to_utc(u.max(m.dtstart.local()));
                (u + Duration::seconds(m.length.bound())).timestamp()
            } else {
                i64::MAX
            };
            last = last.max(end);
        }
        // THISANDFUTURE moves later instances by up to max_shift either way.
        if last != i64::MAX {
            last = last.saturating_add(max_shift);
        }
        widen(first.saturating_sub(max_shift), last);
    }
    if span.is_none() && cal.children.iter().any(is_recurring_kind) {
        // Only components without any date (an unscheduled VTODO).
        return Ok((i64::MIN, i64::MAX));
    }
    span.ok_or_else(|| IcsError::Invalid("no VEVENT, VTODO or VJOURNAL to span".into()))
}

/// A date-time property rewritten in UTC (a DATE stays a DATE).
fn utc_property(name: &str, v: &DateTimeValue, zones: &Zones, floating: &Zone) -> Property {
    match v {
        DateTimeValue::Date(_) => v.to_property(name),
        other => Property::new(name, format_utc(other.to_utc(zones, floating))),
    }
}

/// RFC 4791 §9.6.5 `<C:expand>`: every instance overlapping the range as
/// its own component with RECURRENCE-ID, DTSTART / DTEND in UTC (all-day
/// instances keep DATEs), no RRULE / RDATE / EXDATE / EXRULE, and no
/// VTIMEZONE.
pub fn expand_calendar(
    cal: &Component,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    opts: &ExpandOptions,
) -> Result<Component, IcsError> {
    let zones = Zones::from_calendar(cal);
    let floating = &opts.floating;
    let mut out = Component::new(cal.name.clone());
    out.props = cal.props.clone();
    for inst in instances(cal, start, end, opts)? {
        let mut c = cal.children[inst.component].clone();
        c.props.retain(|p| {
            !matches!(
                p.name.as_str(),
                "RRULE"
                    | "RDATE"
                    | "EXDATE"
                    | "EXRULE"
                    | "RECURRENCE-ID"
                    | "DTSTART"
                    | "DTEND"
                    | "DUE"
            )
        });
        let orig = &cal.children[inst.component];
        let had_end = orig.prop("DTEND").is_some() || orig.prop("DUE").is_some();
        let has_duration = orig.prop("DURATION").is_some();
        let mut head = Vec::with_capacity(3);
        if let Some(rid) = &inst.recurrence_id {
            head.push(utc_property("RECURRENCE-ID", rid, &zones, floating));
        }
        if inst.all_day {
            let day = |t: DateTime<Utc>| DateTimeValue::Date(floating.from_utc(t).date());
            head.push(day(inst.start).to_property("DTSTART"));
            if had_end || !has_duration {
                head.push(day(inst.end).to_property(if orig.name == "VTODO" {
                    "DUE"
                } else {
                    "DTEND"
                }));
            }
        } else {
            head.push(Property::new("DTSTART", format_utc(inst.start)));
            if had_end || (!has_duration && inst.end > inst.start) {
                head.push(Property::new(
                    if orig.name == "VTODO" { "DUE" } else { "DTEND" },
                    format_utc(inst.end),
                ));
            }
        }
        // Any other date-time still bound to a zone moves to UTC.
        for p in &mut c.props {
            if p.param("TZID").is_some() {
                if let Ok(v @ DateTimeValue::Zoned { .. }) = DateTimeValue::from_property(p) {
                    let params: Vec<Param> = p
                        .params
                        .iter()
                        .filter(|x| x.name != "TZID")
                        .cloned()
                        .collect();
                    *p = utc_property(&p.name, &v, &zones, floating);
                    p.params.extend(params);
                }
            }
        }
        let at = c
            .props
            .iter()
            .position(|p| p.name == "UID")
            .map_or(0, |i| i + 1);
        c.props.splice(at..at, head);
        out.children.push(c);
    }
    Ok(out)
}

/// RFC 4791 §9.6.6 `<C:limit-recurrence-set>`: the master(s) and
/// VTIMEZONEs unchanged, and only the overrides that affect the range (their
/// own time or the time of the instance they replace overlaps it, or a
/// THISANDFUTURE override starting before its end).
pub fn limit_recurrence_set(
    cal: &Component,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    opts: &ExpandOptions,
) -> Result<Component, IcsError> {
    let zones = Zones::from_calendar(cal);
    let floating = &opts.floating;
    let mut keep = vec![true; cal.children.len()];
    for g in groups(cal) {
        let master = match g.master {
            Some(i) => Master::read(cal, i, &zones, floating)?,
            None => None,
        };
        let length = master.as_ref().map(|m| m.length);
        for &i in &g.overrides {
            let o = read_override(cal, i, length, &zones, floating)?;
            let original_end = match &master {
                Some(m) => m.length.end(m.zone.from_utc(o.rid_utc), o.rid_utc, &m.zone),
                None => o.rid_utc,
            };
            keep[i] = overlaps(o.start, o.end, start, end)
                || overlaps(o.rid_utc, original_end, start, end)
                || (o.this_and_future && o.rid_utc < end);
        }
    }
    let mut out = Component::new(cal.name.clone());
    out.props = cal.props.clone();
    out.children = cal
        .children
        .iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(c, _)| c.clone())
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests;
