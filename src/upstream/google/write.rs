//! iCalendar → Google Calendar writes, and the pieces of the write layer
//! both providers share (the Graph writer, [`crate::upstream::graph::write`],
//! uses them).
//!
//! # What goes where
//!
//! | iCalendar | Google event |
//! | --- | --- |
//! | SUMMARY, DESCRIPTION, LOCATION | `summary`, `description`, `location` |
//! | DTSTART / DTEND / DURATION | `start` / `end`: `{date}` (end exclusive) or `{dateTime, timeZone}` |
//! | RRULE, EXRULE, EXDATE, RDATE | `recurrence` lines (no DTSTART), values in the start's zone |
//! | CLASS | `visibility` (PUBLIC → public, PRIVATE / unknown → private, CONFIDENTIAL → confidential, none → default) |
//! | TRANSP | `transparency` |
//! | STATUS | `status` (TENTATIVE → tentative, else confirmed) |
//! | X-GOOGLE-COLOR-ID, COLOR | `colorId` (COLOR by the palette's CSS names) |
//! | VALARM | `reminders` (`useDefault: false`, at most 5 overrides, popup/email) |
//! | ATTENDEE | `attendees` (every write carries `sendUpdates=none`) |
//! | UID | `iCalUID` (on insert) |
//! | the caller's marker | `extendedProperties.private.calbridge` |
//! | RECURRENCE-ID overrides | the instance `{master}_{YYYYMMDDTHHMMSSZ}` (UTC) or `_{YYYYMMDD}` patched |
//! | an override with STATUS:CANCELLED | the instance deleted (a cancelled exception) |
//!
//! Times: a TZID is resolved like everywhere in calbridge (IANA, Windows,
//! Outlook names, the object's own VTIMEZONE); a custom VTIMEZONE becomes
//! the IANA zone with the same offsets over the event's years. Floating
//! times are taken in the calendar's zone. UTC stays UTC (`timeZone: UTC`).
//!
//! EXDATE stays in `recurrence` (Google accepts it): the whole rule set is
//! part of the master, so a full update of the master also brings back an
//! occurrence whose EXDATE was removed, with no per-instance request.
//!
//! Refused ([`Unexpressible`]): objects without exactly one VEVENT series
//! (VTODO, VJOURNAL, several UIDs, overrides without their master), no
//! DTSTART, a cancelled master (delete it instead), an unknown TZID, a
//! recurring event in a custom zone no IANA zone matches, RDATE periods,
//! an override whose RECURRENCE-ID is not an occurrence of the series.
//! Not written: ORGANIZER (Google makes the calendar's owner the
//! organizer). Left out with a warning (in [`SeriesWrite::warnings`] and
//! [`RemoteState::warnings`]): CATEGORIES (no Google field), alarms Google
//! cannot hold (after the start, beyond four weeks, more than five, at a
//! fixed time in a series), a COLOR outside Google's palette.
//!
//! # Idempotency
//!
//! An insert uses the event id [`event_id_for`] derives from the caller's
//! idempotency key. A retry after a crash gets `409 duplicate`; the event
//! with that id is then read: live → the insert happened (exceptions are
//! applied as for an update); cancelled → [`UpstreamError::Gone`] (deleted
//! upstream since: the caller decides, nothing is recreated silently).
//! An update is a PATCH carrying every mapped field (absent ones as `null`),
//! guarded with `If-Match`: stale mapped fields are cleared while what
//! calbridge does not map (conference links, attachments, other apps'
//! extended properties) survives, which a PUT would drop.
//!
//! After an update the series' existing exceptions are read back: changed
//! occurrences the object no longer overrides are reset to the master's
//! values, cancelled ones it no longer excludes are restored, orphans are
//! cancelled; exceptions already equal to what is wanted are not touched.

use std::cell::RefCell;
use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use futures_util::stream::{self, StreamExt};
use percent_encoding::utf8_percent_encode;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::map::EVENT_COLORS;
use super::{Google, SEGMENT};
use crate::ics::rrule::RRule;
use crate::ics::tz::{Zone, Zones};
use crate::ics::value::{date_list, rdate_list, DateTimeValue, IcsDuration, RDate};
use crate::ics::{Component, Property};
use crate::upstream::http::UpstreamError;

// ===================================================================
// Shared by both providers

/// Why an object cannot be written to a provider, as one sentence a staff
/// member understands (it becomes the CalDAV error text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unexpressible(pub String);

impl Unexpressible {
    pub fn new(reason: impl Into<String>) -> Self {
        Unexpressible(reason.into())
    }
}

/// The provider's id and etag of an event calbridge wrote before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    pub id: String,
    /// `None` writes unconditionally (no `If-Match`).
    pub etag: Option<String>,
}

/// The series master as the provider has it after a write.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteState {
    pub id: String,
    /// Equal to what the next sync reports for the master while nothing
    /// else changes it.
    pub etag: String,
    /// Last modification upstream, Unix seconds.
    pub updated: Option<i64>,
    pub json: Value,
    /// What was written differently from the object, or not at all.
    pub warnings: Vec<String>,
    /// The series' other pieces after the write, as an incremental pull
    /// delivers them (Google: its changed and cancelled occurrences), so
    /// the sync engine can keep the series whole and recognise its own
    /// write when the pieces come back. `None`: the provider's pulls fetch
    /// series whole (Graph), nothing to keep.
    pub exceptions: Option<Vec<Value>>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The object cannot be expressed by this provider: nothing was sent.
    #[error("{0}")]
    Unexpressible(String),
    /// The provider refused or failed (`PreconditionFailed` for a stale
    /// etag, `Gone` for an event deleted upstream, …).
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl From<Unexpressible> for WriteError {
    fn from(e: Unexpressible) -> Self {
        WriteError::Unexpressible(e.0)
    }
}

/// Instance writes in flight at once for one series (Graph allows four
/// concurrent requests per mailbox).
pub const WRITE_CONCURRENCY: usize = 4;

/// A start or end as providers take it: an all-day date, or an instant with
/// the IANA zone it is shown in (`None`: a zone with no IANA equivalent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    Date(NaiveDate),
    At {
        utc: DateTime<Utc>,
        zone: Option<Tz>,
    },
}

impl Moment {
    pub fn is_date(&self) -> bool {
        matches!(self, Moment::Date(_))
    }

    /// The instant; a date is its midnight in `floating`.
    pub fn instant(&self, floating: Tz) -> DateTime<Utc> {
        match self {
            Moment::Date(d) => Zone::Iana(floating).to_utc(d.and_time(chrono::NaiveTime::MIN)),
            Moment::At { utc, .. } => *utc,
        }
    }

    /// The wall-clock time in its own zone (UTC without one; a date is
    /// its midnight).
    pub fn local(&self) -> NaiveDateTime {
        match self {
            Moment::Date(d) => d.and_time(chrono::NaiveTime::MIN),
            Moment::At { utc, zone } => utc.with_timezone(&zone.unwrap_or(Tz::UTC)).naive_local(),
        }
    }

    /// The same occurrence expressed like `like` (EXDATE, RDATE and
    /// RECURRENCE-ID take the form of the series' start).
    pub fn shaped_like(&self, like: &Moment, floating: Tz) -> Moment {
        match (self, like) {
            (Moment::Date(d), Moment::Date(_)) => Moment::Date(*d),
            (Moment::At { utc, .. }, Moment::Date(_)) => {
                Moment::Date(utc.with_timezone(&floating).date_naive())
            }
            (Moment::Date(d), Moment::At { zone, .. }) => {
                let z = zone.unwrap_or(Tz::UTC);
                let local = d.and_time(like.local().time());
                Moment::At {
                    utc: Zone::Iana(z).to_utc(local),
                    zone: *zone,
                }
            }
            (Moment::At { utc, .. }, Moment::At { zone, .. }) => Moment::At {
                utc: *utc,
                zone: *zone,
            },
        }
    }
}

fn is_utc(tz: Tz) -> bool {
    tz.name() == "UTC" || tz.name() == "Etc/UTC" || tz == Tz::UTC
}

/// An IANA zone whose offsets equal `zone`'s on every day of
/// `[from_year, to_year]` (samples at noon UTC), preferring zones with a
/// Windows name. Used for custom VTIMEZONEs and for IANA names Graph does
/// not know.
pub fn equivalent_zone(zone: &Zone, from_year: i32, to_year: i32) -> Option<Tz> {
    let first = NaiveDate::from_ymd_opt(from_year.clamp(1900, 2200), 1, 1)?;
    let last = NaiveDate::from_ymd_opt(to_year.clamp(from_year, 2200), 12, 31)?;
    let mut samples = Vec::new();
    let mut d = first;
    while d <= last {
        samples.push(d.and_hms_opt(12, 0, 0)?);
        d = d.succ_opt()?;
    }
    let wanted: Vec<i32> = samples.iter().map(|s| zone.offset_at(*s)).collect();
    let mut candidates: Vec<Tz> = chrono_tz::TZ_VARIANTS.to_vec();
    // Zones Windows knows first (Graph needs them), then the rest.
    candidates.sort_by_key(|tz| {
        (
            crate::ics::tz::iana_to_windows(tz.name()).is_none(),
            tz.name().starts_with("Etc/"),
        )
    });
    candidates.into_iter().find(|tz| {
        samples
            .iter()
            .zip(&wanted)
            .all(|(s, w)| tz.offset_from_utc_datetime(s).fix().local_minus_utc() == *w)
    })
}

/// Resolves the time values of one object.
pub struct Times {
    zones: Zones,
    calendar_zone: Option<Tz>,
    equivalents: RefCell<HashMap<String, Option<Tz>>>,
}

impl Times {
    pub fn new(cal: &Component, calendar_zone: Option<&str>) -> Times {
        Times {
            zones: Zones::from_calendar(cal),
            calendar_zone: calendar_zone.and_then(crate::ics::tz::resolve_name),
            equivalents: RefCell::new(HashMap::new()),
        }
    }

    /// The zone of floating times and dates: the calendar's, else UTC.
    pub fn floating(&self) -> Tz {
        self.calendar_zone.unwrap_or(Tz::UTC)
    }

    /// One value as a [`Moment`].
    pub fn moment(&self, v: &DateTimeValue) -> Result<Moment, Unexpressible> {
        Ok(match v {
            DateTimeValue::Date(d) => Moment::Date(*d),
            DateTimeValue::Utc(t) => Moment::At {
                utc: t.and_utc(),
                zone: Some(Tz::UTC),
            },
            DateTimeValue::Floating(t) => {
                let tz = self.floating();
                Moment::At {
                    utc: Zone::Iana(tz).to_utc(*t),
                    zone: Some(tz),
                }
            }
            DateTimeValue::Zoned { local, tzid } => match self.zones.resolve(tzid) {
                Some(Zone::Iana(tz)) => Moment::At {
                    utc: Zone::Iana(tz).to_utc(*local),
                    zone: Some(tz),
                },
                Some(Zone::Utc) => Moment::At {
                    utc: local.and_utc(),
                    zone: Some(Tz::UTC),
                },
                Some(Zone::Floating) => self.moment(&DateTimeValue::Floating(*local))?,
                Some(z @ Zone::Custom(_)) => {
                    let year = local.year();
                    let zone = *self
                        .equivalents
                        .borrow_mut()
                        .entry(tzid.clone())
                        .or_insert_with(|| {
                            let to = year.max(Utc::now().year()) + 3;
                            equivalent_zone(&z, year - 1, to)
                        });
                    Moment::At {
                        utc: z.to_utc(*local),
                        zone,
                    }
                }
                None => {
                    return Err(Unexpressible::new(format!(
                        "The time zone {tzid:?} is neither a known zone nor defined by a VTIMEZONE in the event."
                    )))
                }
            },
        })
    }

    /// The value of a date/date-time property.
    pub fn of(&self, c: &Component, name: &str) -> Result<Option<Moment>, Unexpressible> {
        let Some(p) = c.prop(name) else {
            return Ok(None);
        };
        let v = DateTimeValue::from_property(p)
            .map_err(|e| Unexpressible::new(format!("{name} cannot be read ({e}).")))?;
        self.moment(&v).map(Some)
    }

    /// Start and end of a VEVENT: DTEND, else DURATION, else RFC 5545's
    /// defaults (one day for a date, zero length for a time).
    pub fn span(&self, c: &Component) -> Result<(Moment, Moment), Unexpressible> {
        let start = self
            .of(c, "DTSTART")?
            .ok_or_else(|| Unexpressible::new("The event has no start (DTSTART)."))?;
        let end = match (self.of(c, "DTEND")?, c.prop("DURATION")) {
            (Some(e), _) => e,
            (None, Some(p)) => {
                let d = IcsDuration::parse(&p.value)
                    .map_err(|e| Unexpressible::new(format!("DURATION cannot be read ({e}).")))?;
                match start {
                    Moment::Date(s) => {
                        let days = (d.approx_seconds() / 86_400).max(1);
                        Moment::Date(s + Duration::days(days))
                    }
                    Moment::At { zone, .. } => {
                        let z = Zone::Iana(zone.unwrap_or(Tz::UTC));
                        Moment::At {
                            utc: d.add_in_zone(start.local(), &z),
                            zone,
                        }
                    }
                }
            }
            (None, None) => match start {
                Moment::Date(s) => Moment::Date(s + Duration::days(1)),
                other => other,
            },
        };
        match (start, end) {
            (Moment::Date(s), Moment::Date(e)) => {
                // An all-day event lasts at least its day.
                let e = if e <= s { s + Duration::days(1) } else { e };
                Ok((Moment::Date(s), Moment::Date(e)))
            }
            (Moment::At { utc: s, .. }, Moment::At { utc: e, .. }) => {
                if e < s {
                    return Err(Unexpressible::new("The event ends before it starts."));
                }
                Ok((start, end))
            }
            _ => Err(Unexpressible::new(
                "The event's start and end must both be dates or both be date-times.",
            )),
        }
    }
}

/// An object split into its series: the master VEVENT and its overrides.
pub struct Series<'a> {
    pub cal: &'a Component,
    pub master: &'a Component,
    pub overrides: Vec<&'a Component>,
    pub uid: String,
    pub times: Times,
    pub start: Moment,
    pub end: Moment,
    /// The master has an RRULE or RDATE.
    pub recurring: bool,
}

/// Split and check an object. `provider` names the provider in reasons
/// ("Google Calendar", "Microsoft calendars").
pub fn series<'a>(
    cal: &'a Component,
    calendar_zone: Option<&str>,
    provider: &str,
) -> Result<Series<'a>, Unexpressible> {
    if cal.name != "VCALENDAR" {
        return Err(Unexpressible::new(format!(
            "The object is a {}, not a VCALENDAR.",
            cal.name
        )));
    }
    let mut events = Vec::new();
    for c in &cal.children {
        match c.name.as_str() {
            "VEVENT" => events.push(c),
            "VTIMEZONE" => {}
            other => {
                return Err(Unexpressible::new(format!(
                    "{provider} stores events only; this object holds a {other}."
                )))
            }
        }
    }
    if events.is_empty() {
        return Err(Unexpressible::new("The object holds no event (VEVENT)."));
    }
    let uid = events[0]
        .value("UID")
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| Unexpressible::new("The event has no UID."))?
        .to_string();
    if events.iter().any(|e| e.value("UID") != Some(uid.as_str())) {
        return Err(Unexpressible::new(
            "The object holds events with different UIDs; write one event per object.",
        ));
    }
    let (masters, overrides): (Vec<&Component>, Vec<&Component>) = events
        .into_iter()
        .partition(|e| e.prop("RECURRENCE-ID").is_none());
    let master = match masters.as_slice() {
        [m] => *m,
        [] => {
            return Err(Unexpressible::new(
                "The object holds only changed occurrences (RECURRENCE-ID) without the event they belong to.",
            ))
        }
        _ => {
            return Err(Unexpressible::new(
                "The object holds several events without RECURRENCE-ID under one UID.",
            ))
        }
    };
    if master
        .value("STATUS")
        .is_some_and(|s| s.eq_ignore_ascii_case("CANCELLED"))
    {
        return Err(Unexpressible::new(
            "The event is cancelled (STATUS:CANCELLED); delete it instead of writing it.",
        ));
    }
    let times = Times::new(cal, calendar_zone);
    let (start, end) = times.span(master)?;
    let recurring = master.prop("RRULE").is_some() || master.prop("RDATE").is_some();
    if !recurring && !overrides.is_empty() {
        return Err(Unexpressible::new(
            "The object changes occurrences (RECURRENCE-ID) of an event that does not repeat.",
        ));
    }
    let mut seen = Vec::new();
    for o in &overrides {
        if o.prop("RECURRENCE-ID")
            .and_then(|p| p.param("RANGE"))
            .is_some()
        {
            return Err(Unexpressible::new(format!(
                "{provider} cannot change \"this and future\" occurrences in one override (RECURRENCE-ID;RANGE=THISANDFUTURE)."
            )));
        }
        let rid = times
            .of(o, "RECURRENCE-ID")?
            .expect("overrides have RECURRENCE-ID")
            .shaped_like(&start, times.floating())
            .instant(times.floating());
        if seen.contains(&rid) {
            return Err(Unexpressible::new(
                "The object changes the same occurrence twice (repeated RECURRENCE-ID).",
            ));
        }
        seen.push(rid);
    }
    Ok(Series {
        cal,
        master,
        overrides,
        uid,
        times,
        start,
        end,
        recurring,
    })
}

/// The occurrences of a series' master, to test instants against.
#[derive(Debug, Clone)]
pub struct Probe {
    cal: Component,
    floating: Tz,
}

impl Probe {
    /// True when an occurrence starts at `t`.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.starts(t.timestamp(), t.timestamp() + 1)
            .contains(&t.timestamp())
    }

    /// Occurrence starts (Unix seconds) in `[from, to)`.
    pub fn starts(&self, from: i64, to: i64) -> Vec<i64> {
        crate::objects::instance_starts(&self.cal, from, to, Some(self.floating.name()))
            .unwrap_or_default()
    }
}

impl Series<'_> {
    /// The master alone (with its VTIMEZONEs), EXDATEs kept or not.
    pub fn probe(&self, with_exdates: bool) -> Probe {
        let mut cal = Component::new("VCALENDAR");
        cal.push(Property::new("VERSION", "2.0"));
        cal.children.extend(
            self.cal
                .children
                .iter()
                .filter(|c| c.name == "VTIMEZONE")
                .cloned(),
        );
        let mut m = self.master.clone();
        if !with_exdates {
            m.remove("EXDATE");
        }
        cal.children.push(m);
        Probe {
            cal,
            floating: self.times.floating(),
        }
    }

    /// An override's RECURRENCE-ID in the master's form, checked to be an
    /// occurrence of the series and not excluded by an EXDATE.
    pub fn recurrence_id(
        &self,
        o: &Component,
        plain: &Probe,
        with_exdates: &Probe,
    ) -> Result<Moment, Unexpressible> {
        let floating = self.times.floating();
        let rid = self
            .times
            .of(o, "RECURRENCE-ID")?
            .ok_or_else(|| Unexpressible::new("An override has no RECURRENCE-ID."))?
            .shaped_like(&self.start, floating);
        let at = rid.instant(floating);
        if !plain.contains(at) {
            return Err(Unexpressible::new(format!(
                "The change to the occurrence of {} does not match any occurrence of the series.",
                describe_moment(&rid)
            )));
        }
        if !with_exdates.contains(at) {
            return Err(Unexpressible::new(format!(
                "The occurrence of {} is both changed and excluded (EXDATE).",
                describe_moment(&rid)
            )));
        }
        Ok(rid)
    }

    /// Every EXDATE value in the master's form.
    pub fn exdates(&self) -> Result<Vec<Moment>, Unexpressible> {
        let mut out = Vec::new();
        for p in self.master.props_named("EXDATE") {
            for v in date_list(p)
                .map_err(|e| Unexpressible::new(format!("EXDATE cannot be read ({e}).")))?
            {
                out.push(
                    self.times
                        .moment(&v)?
                        .shaped_like(&self.start, self.times.floating()),
                );
            }
        }
        Ok(out)
    }
}

/// A moment for a reason sentence.
pub fn describe_moment(m: &Moment) -> String {
    match m {
        Moment::Date(d) => d.format("%Y-%m-%d").to_string(),
        Moment::At { utc, zone } => {
            let tz = zone.unwrap_or(Tz::UTC);
            format!(
                "{} ({})",
                utc.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
                tz.name()
            )
        }
    }
}

/// One reminder a provider can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alarm {
    /// Minutes before the start (≥ 0).
    pub minutes: i64,
    /// E-mail rather than a pop-up.
    pub email: bool,
}

/// The VALARMs of a component as reminders before the start. Alarms no
/// provider can hold (after the start, absolute in a series, unreadable)
/// are left out with a warning; ACTION:NONE is skipped silently.
pub fn alarms(
    c: &Component,
    start: &Moment,
    end: &Moment,
    floating: Tz,
    recurring: bool,
    warnings: &mut Vec<String>,
) -> Vec<Alarm> {
    let mut out: Vec<Alarm> = Vec::new();
    let length = (end.instant(floating) - start.instant(floating)).num_seconds();
    for a in c.children_named("VALARM") {
        let action = a.value("ACTION").unwrap_or("DISPLAY").to_ascii_uppercase();
        if action == "NONE" {
            continue;
        }
        let email = action == "EMAIL"
            || a.value("X-GOOGLE-REMINDER-METHOD")
                .is_some_and(|m| m.eq_ignore_ascii_case("email"));
        let Some(trigger) = a.prop("TRIGGER") else {
            warnings.push("An alarm without TRIGGER was left out.".into());
            continue;
        };
        let before = if trigger
            .param("VALUE")
            .is_some_and(|v| v.eq_ignore_ascii_case("DATE-TIME"))
        {
            if recurring {
                warnings.push("An alarm at a fixed time in a repeating event was left out.".into());
                continue;
            }
            match DateTimeValue::from_property(trigger) {
                Ok(DateTimeValue::Utc(t)) => (start.instant(floating) - t.and_utc()).num_seconds(),
                _ => {
                    warnings.push("An alarm with an unreadable time was left out.".into());
                    continue;
                }
            }
        } else {
            let Ok(d) = IcsDuration::parse(&trigger.value) else {
                warnings.push("An alarm with an unreadable TRIGGER was left out.".into());
                continue;
            };
            let from_start = if trigger
                .param("RELATED")
                .is_some_and(|r| r.eq_ignore_ascii_case("END"))
            {
                length + d.approx_seconds()
            } else {
                d.approx_seconds()
            };
            -from_start
        };
        if before < 0 {
            warnings.push("An alarm after the event's start was left out.".into());
            continue;
        }
        let alarm = Alarm {
            minutes: before / 60,
            email,
        };
        if !out.contains(&alarm) {
            out.push(alarm);
        }
    }
    out
}

/// Plain text of a TEXT property.
pub fn text(c: &Component, name: &str) -> Option<String> {
    c.prop(name).map(Property::text_value)
}

/// Runs instance writes, at most [`WRITE_CONCURRENCY`] at once; the first
/// error (in submission order) is returned after all have finished.
pub async fn run_bounded<F>(ops: Vec<F>) -> Result<(), UpstreamError>
where
    F: std::future::Future<Output = Result<(), UpstreamError>>,
{
    let results: Vec<(usize, Result<(), UpstreamError>)> = stream::iter(
        ops.into_iter()
            .enumerate()
            .map(|(i, f)| async move { (i, f.await) }),
    )
    .buffer_unordered(WRITE_CONCURRENCY)
    .collect()
    .await;
    let mut results = results;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().try_for_each(|(_, r)| r)
}

/// A JSON value without its `null` members (for inserts).
pub fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

// ===================================================================
// Google

/// Google reminders a single event can hold.
const MAX_REMINDERS: usize = 5;
/// Google's longest reminder: four weeks.
const MAX_REMINDER_MINUTES: i64 = 40_320;

/// A stable Google event id for an idempotency key: 32 characters of
/// base32hex (`[0-9a-v]`) from the key's SHA-256.
pub fn event_id_for(key: &str) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let digest = Sha256::digest(key.as_bytes());
    let bytes = &digest[..20];
    let mut out = String::with_capacity(32);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    out
}

/// One changed or cancelled occurrence.
#[derive(Debug, Clone, PartialEq)]
pub enum ExceptionWrite {
    /// PATCH the instance `{master}_{instance_suffix}` with `body`.
    Modified {
        /// `{date}` or `{dateTime, timeZone}`.
        original_start: Value,
        /// `YYYYMMDDTHHMMSSZ` (UTC) or `YYYYMMDD` (all-day).
        instance_suffix: String,
        body: Value,
    },
    /// DELETE the instance (an override with STATUS:CANCELLED).
    Cancelled {
        original_start: Value,
        instance_suffix: String,
    },
}

impl ExceptionWrite {
    pub fn instance_suffix(&self) -> &str {
        match self {
            ExceptionWrite::Modified {
                instance_suffix, ..
            }
            | ExceptionWrite::Cancelled {
                instance_suffix, ..
            } => instance_suffix,
        }
    }
}

/// What to send for one series.
#[derive(Debug, Clone)]
pub struct SeriesWrite {
    /// The events resource body of the master. Every mapped field is
    /// present (`null` when the object has none), so it doubles as a
    /// PATCH body; inserts drop the `null`s.
    pub master: Value,
    pub exceptions: Vec<ExceptionWrite>,
    pub warnings: Vec<String>,
    /// The master's fields without recurrence: what a plain occurrence is.
    plain: Value,
    start: Moment,
    end: Moment,
    /// The master's occurrences, EXDATEs applied.
    occurrences: Probe,
    floating: Tz,
}

impl SeriesWrite {
    /// Tag the master and every changed occurrence with calbridge's origin
    /// marker (`extendedProperties.private.calbridge`).
    pub fn mark(&mut self, marker: &str) {
        let tag = |v: &mut Value| {
            v["extendedProperties"] = json!({"private": {"calbridge": marker}});
        };
        tag(&mut self.master);
        tag(&mut self.plain);
        for e in &mut self.exceptions {
            if let ExceptionWrite::Modified { body, .. } = e {
                tag(body);
            }
        }
    }

    /// The body of the plain occurrence originally at `original`.
    fn plain_at(&self, original: &Moment) -> Value {
        let mut v = self.plain.clone();
        let (s, e) = match (original, self.start, self.end) {
            (Moment::Date(d), Moment::Date(s), Moment::Date(e)) => {
                (Moment::Date(*d), Moment::Date(*d + (e - s)))
            }
            (o, s, e) => {
                let at = o.shaped_like(&s, self.floating).instant(self.floating);
                let zone = match s {
                    Moment::At { zone, .. } => zone,
                    Moment::Date(_) => Some(self.floating),
                };
                let len = e.instant(self.floating) - s.instant(self.floating);
                (
                    Moment::At { utc: at, zone },
                    Moment::At {
                        utc: at + len,
                        zone,
                    },
                )
            }
        };
        v["start"] = google_time(&s);
        v["end"] = google_time(&e);
        v
    }
}

/// `{date}` or `{dateTime, timeZone}`, with the other keys `null` so that
/// a PATCH never mixes the two kinds.
pub fn google_time(m: &Moment) -> Value {
    match m {
        Moment::Date(d) => json!({
            "date": d.format("%Y-%m-%d").to_string(),
            "dateTime": null,
            "timeZone": null,
        }),
        Moment::At { utc, zone } => {
            let tz = zone.unwrap_or(Tz::UTC);
            json!({
                "date": null,
                "dateTime": utc.with_timezone(&tz).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "timeZone": if is_utc(tz) { "UTC" } else { tz.name() },
            })
        }
    }
}

/// A recurrence value (EXDATE/RDATE item) in the form of the start.
fn recurrence_value(m: &Moment) -> String {
    match m {
        Moment::Date(d) => d.format("%Y%m%d").to_string(),
        Moment::At { utc, zone } => match zone {
            Some(tz) if !is_utc(*tz) => utc
                .with_timezone(tz)
                .naive_local()
                .format("%Y%m%dT%H%M%S")
                .to_string(),
            _ => utc.format("%Y%m%dT%H%M%SZ").to_string(),
        },
    }
}

/// `EXDATE;TZID=…:a,b`, `EXDATE;VALUE=DATE:a`, `EXDATE:aZ`.
fn recurrence_line(name: &str, start: &Moment, values: &[Moment]) -> String {
    let list: Vec<String> = values.iter().map(recurrence_value).collect();
    let params = match start {
        Moment::Date(_) => ";VALUE=DATE".to_string(),
        Moment::At { zone: Some(tz), .. } if !is_utc(*tz) => format!(";TZID={}", tz.name()),
        _ => String::new(),
    };
    format!("{name}{params}:{}", list.join(","))
}

/// An RRULE with its UNTIL in the form Google wants: UTC for a timed
/// series, a DATE for an all-day one.
fn rrule_for_google(value: &str, start: &Moment, floating: Tz) -> Result<String, Unexpressible> {
    let rule = RRule::parse(value)
        .map_err(|e| Unexpressible::new(format!("The RRULE cannot be read ({e}).")))?;
    let Some(until) = rule.until.as_ref() else {
        return Ok(value.trim().to_string());
    };
    let new_until = match (start, until) {
        (Moment::At { zone, .. }, DateTimeValue::Floating(t)) => {
            let z = Zone::Iana(zone.unwrap_or(Tz::UTC));
            z.to_utc(*t).format("%Y%m%dT%H%M%SZ").to_string()
        }
        (Moment::At { zone, .. }, DateTimeValue::Date(d)) => {
            let z = Zone::Iana(zone.unwrap_or(Tz::UTC));
            z.to_utc(d.and_hms_opt(23, 59, 59).expect("valid time"))
                .format("%Y%m%dT%H%M%SZ")
                .to_string()
        }
        (Moment::Date(_), DateTimeValue::Utc(t)) => t
            .and_utc()
            .with_timezone(&floating)
            .format("%Y%m%d")
            .to_string(),
        (Moment::Date(_), DateTimeValue::Floating(t) | DateTimeValue::Zoned { local: t, .. }) => {
            t.format("%Y%m%d").to_string()
        }
        _ => return Ok(value.trim().to_string()),
    };
    let parts: Vec<String> = value
        .trim()
        .split(';')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            if p.trim().to_ascii_uppercase().starts_with("UNTIL=") {
                format!("UNTIL={new_until}")
            } else {
                p.trim().to_string()
            }
        })
        .collect();
    Ok(parts.join(";"))
}

fn visibility(c: &Component) -> &'static str {
    match c.value("CLASS").map(str::to_ascii_uppercase).as_deref() {
        None => "default",
        Some("PUBLIC") => "public",
        Some("CONFIDENTIAL") => "confidential",
        // RFC 5545: an unknown class is treated as PRIVATE.
        Some(_) => "private",
    }
}

fn color_id(c: &Component, warnings: &mut Vec<String>) -> Option<String> {
    if let Some(id) = c.prop("X-GOOGLE-COLOR-ID").map(Property::text_value) {
        if EVENT_COLORS.iter().any(|(k, _, _)| *k == id) {
            return Some(id);
        }
    }
    let color = c.value("COLOR")?;
    match EVENT_COLORS.iter().find(|(_, hex, name)| {
        name.eq_ignore_ascii_case(color.trim()) || hex.eq_ignore_ascii_case(color.trim())
    }) {
        Some((id, _, _)) => Some(id.to_string()),
        None => {
            warnings.push(format!(
                "The color {color:?} is not one of Google's event colors and was left out."
            ));
            None
        }
    }
}

fn mail_address(value: &str) -> Option<String> {
    let v = value.trim();
    let addr = if v.len() >= 7 && v[..7].eq_ignore_ascii_case("mailto:") {
        &v[7..]
    } else {
        v
    };
    addr.contains('@').then(|| addr.to_string())
}

fn attendees(c: &Component, warnings: &mut Vec<String>) -> Vec<Value> {
    let mut out = Vec::new();
    for p in c.props_named("ATTENDEE") {
        let Some(email) = mail_address(&p.value) else {
            warnings.push(format!(
                "The attendee {:?} has no e-mail address and was left out.",
                p.value
            ));
            continue;
        };
        let mut a = Map::new();
        a.insert("email".into(), json!(email));
        if let Some(cn) = p.param("CN").filter(|n| !n.is_empty()) {
            a.insert("displayName".into(), json!(cn));
        }
        if p.param("ROLE")
            .is_some_and(|r| r.eq_ignore_ascii_case("OPT-PARTICIPANT"))
        {
            a.insert("optional".into(), json!(true));
        }
        if p.param("CUTYPE")
            .is_some_and(|r| r.eq_ignore_ascii_case("RESOURCE") || r.eq_ignore_ascii_case("ROOM"))
        {
            a.insert("resource".into(), json!(true));
        }
        let status = match p.param("PARTSTAT").map(str::to_ascii_uppercase).as_deref() {
            Some("ACCEPTED") => "accepted",
            Some("DECLINED") => "declined",
            Some("TENTATIVE") => "tentative",
            _ => "needsAction",
        };
        a.insert("responseStatus".into(), json!(status));
        out.push(Value::Object(a));
    }
    out
}

fn reminders(list: &[Alarm], warnings: &mut Vec<String>) -> Value {
    let mut kept: Vec<Value> = Vec::new();
    let mut sorted = list.to_vec();
    sorted.sort_by_key(|a| std::cmp::Reverse(a.minutes));
    for a in sorted {
        if a.minutes > MAX_REMINDER_MINUTES {
            warnings.push(format!(
                "An alarm {} minutes before the start is beyond Google's four weeks and was left out.",
                a.minutes
            ));
            continue;
        }
        if kept.len() == MAX_REMINDERS {
            warnings.push(format!(
                "Google keeps at most {MAX_REMINDERS} alarms per event; the others were left out."
            ));
            break;
        }
        kept.push(json!({"method": if a.email { "email" } else { "popup" }, "minutes": a.minutes}));
    }
    json!({"useDefault": false, "overrides": kept})
}

/// The mapped fields of a master or an override, every key present.
fn describe(
    c: &Component,
    start: &Moment,
    end: &Moment,
    floating: Tz,
    recurring: bool,
    warnings: &mut Vec<String>,
) -> Map<String, Value> {
    let mut m = Map::new();
    let opt = |s: Option<String>| s.map(Value::String).unwrap_or(Value::Null);
    m.insert("summary".into(), opt(text(c, "SUMMARY")));
    m.insert("description".into(), opt(text(c, "DESCRIPTION")));
    m.insert("location".into(), opt(text(c, "LOCATION")));
    m.insert("start".into(), google_time(start));
    m.insert("end".into(), google_time(end));
    m.insert("visibility".into(), json!(visibility(c)));
    m.insert(
        "transparency".into(),
        json!(if c
            .value("TRANSP")
            .is_some_and(|t| t.eq_ignore_ascii_case("TRANSPARENT"))
        {
            "transparent"
        } else {
            "opaque"
        }),
    );
    m.insert(
        "status".into(),
        json!(if c
            .value("STATUS")
            .is_some_and(|s| s.eq_ignore_ascii_case("TENTATIVE"))
        {
            "tentative"
        } else {
            "confirmed"
        }),
    );
    m.insert("colorId".into(), opt(color_id(c, warnings)));
    m.insert("attendees".into(), Value::Array(attendees(c, warnings)));
    let list = alarms(c, start, end, floating, recurring, warnings);
    m.insert("reminders".into(), reminders(&list, warnings));
    if c.prop("CATEGORIES").is_some() {
        warnings.push("Google events have no categories; CATEGORIES was left out.".into());
    }
    m
}

/// iCalendar object → the Google writes of its series. `calendar_zone` is
/// the calendar's zone (floating times and dates are read in it).
pub fn event_from_ics(
    cal: &Component,
    calendar_zone: Option<&str>,
) -> Result<SeriesWrite, Unexpressible> {
    let s = series(cal, calendar_zone, "Google Calendar")?;
    let floating = s.times.floating();
    let mut warnings = Vec::new();
    if let Moment::At { zone: None, .. } = s.start {
        if s.recurring {
            return Err(Unexpressible::new(
                "The event repeats in a time zone of its own that matches no zone Google Calendar knows.",
            ));
        }
        warnings.push(
            "The event's own time zone matches no zone Google Calendar knows: it was written in UTC (same times)."
                .into(),
        );
    }
    let mut recurrence = Vec::new();
    for p in &s.master.props {
        match p.name.as_str() {
            "RRULE" => recurrence.push(format!(
                "RRULE:{}",
                rrule_for_google(&p.value, &s.start, floating)?
            )),
            "EXRULE" => recurrence.push(format!("EXRULE:{}", p.value.trim())),
            "EXDATE" => {
                let mut values = Vec::new();
                for v in date_list(p)
                    .map_err(|e| Unexpressible::new(format!("EXDATE cannot be read ({e}).")))?
                {
                    values.push(s.times.moment(&v)?.shaped_like(&s.start, floating));
                }
                if !values.is_empty() {
                    recurrence.push(recurrence_line("EXDATE", &s.start, &values));
                }
            }
            "RDATE" => {
                let mut values = Vec::new();
                for v in rdate_list(p)
                    .map_err(|e| Unexpressible::new(format!("RDATE cannot be read ({e}).")))?
                {
                    match v {
                        RDate::At(v) => {
                            values.push(s.times.moment(&v)?.shaped_like(&s.start, floating))
                        }
                        RDate::Period(_) => {
                            return Err(Unexpressible::new(
                                "Google Calendar cannot take extra occurrences given as periods (RDATE;VALUE=PERIOD).",
                            ))
                        }
                    }
                }
                if !values.is_empty() {
                    recurrence.push(recurrence_line("RDATE", &s.start, &values));
                }
            }
            _ => {}
        }
    }
    let mut master = describe(
        s.master,
        &s.start,
        &s.end,
        floating,
        s.recurring,
        &mut warnings,
    );
    let plain = Value::Object(master.clone());
    master.insert(
        "recurrence".into(),
        if recurrence.is_empty() {
            Value::Null
        } else {
            json!(recurrence)
        },
    );
    master.insert("iCalUID".into(), json!(s.uid));
    let plain_probe = s.probe(false);
    let occurrences = s.probe(true);
    let mut exceptions = Vec::new();
    for o in &s.overrides {
        let rid = s.recurrence_id(o, &plain_probe, &occurrences)?;
        let instance_suffix = match rid {
            Moment::Date(d) => d.format("%Y%m%d").to_string(),
            Moment::At { utc, .. } => utc.format("%Y%m%dT%H%M%SZ").to_string(),
        };
        let mut original_start = without_nulls(&google_time(&rid));
        if let (Moment::At { zone: None, .. }, Some(obj)) = (rid, original_start.as_object_mut()) {
            obj.insert("timeZone".into(), json!("UTC"));
        }
        if o.value("STATUS")
            .is_some_and(|v| v.eq_ignore_ascii_case("CANCELLED"))
        {
            exceptions.push(ExceptionWrite::Cancelled {
                original_start,
                instance_suffix,
            });
            continue;
        }
        let (os, oe) = s.times.span(o)?;
        let body = describe(o, &os, &oe, floating, false, &mut warnings);
        exceptions.push(ExceptionWrite::Modified {
            original_start,
            instance_suffix,
            body: Value::Object(body),
        });
    }
    warnings.dedup();
    Ok(SeriesWrite {
        master: Value::Object(master),
        exceptions,
        warnings,
        plain,
        start: s.start,
        end: s.end,
        occurrences,
        floating,
    })
}

// ------------------------------------------------------------ comparison

/// A time of a Google JSON event as (date, instant).
fn time_key(v: &Value) -> (Option<String>, Option<i64>) {
    (
        v["date"].as_str().map(str::to_string),
        v["dateTime"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp()),
    )
}

/// True when the upstream item already carries every mapped field of
/// `want` (so writing it again would change nothing).
fn google_matches(item: &Value, want: &Value) -> bool {
    let s = |v: &Value, k: &str, default: &str| -> String {
        v[k].as_str().unwrap_or(default).to_string()
    };
    for (k, default) in [
        ("summary", ""),
        ("description", ""),
        ("location", ""),
        ("colorId", ""),
        ("visibility", "default"),
        ("transparency", "opaque"),
        ("status", "confirmed"),
    ] {
        if s(item, k, default) != s(want, k, default) {
            return false;
        }
    }
    if time_key(&item["start"]) != time_key(&want["start"])
        || time_key(&item["end"]) != time_key(&want["end"])
    {
        return false;
    }
    let people = |v: &Value| -> Vec<(String, bool, String)> {
        let mut l: Vec<_> = v["attendees"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        (
                            p["email"].as_str().unwrap_or("").to_ascii_lowercase(),
                            p["optional"].as_bool().unwrap_or(false),
                            p["responseStatus"]
                                .as_str()
                                .unwrap_or("needsAction")
                                .to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        l.sort();
        l
    };
    let alarms = |v: &Value| -> (bool, Vec<(String, i64)>) {
        let r = &v["reminders"];
        let mut l: Vec<_> = r["overrides"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|o| {
                        (
                            o["method"].as_str().unwrap_or("popup").to_string(),
                            o["minutes"].as_i64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        l.sort();
        (r["useDefault"].as_bool().unwrap_or(true), l)
    };
    people(item) == people(want) && alarms(item) == alarms(want)
}

/// `originalStartTime` of an upstream exception as a moment.
fn original_of(item: &Value) -> Option<Moment> {
    let o = &item["originalStartTime"];
    if let Some(d) = o["date"].as_str() {
        return crate::upstream::iso_date(d).map(Moment::Date);
    }
    let t = DateTime::parse_from_rfc3339(o["dateTime"].as_str()?).ok()?;
    Some(Moment::At {
        utc: t.with_timezone(&Utc),
        zone: o["timeZone"].as_str().and_then(|z| z.parse().ok()),
    })
}

fn state_of(v: Value, warnings: Vec<String>) -> Result<RemoteState, UpstreamError> {
    let id = v["id"]
        .as_str()
        .ok_or_else(|| UpstreamError::Garbage("an event without an id".into()))?
        .to_string();
    let etag = v["etag"]
        .as_str()
        .ok_or_else(|| UpstreamError::Garbage("an event without an etag".into()))?
        .to_string();
    let updated = super::map::parse_time(v["updated"].as_str());
    Ok(RemoteState {
        id,
        etag,
        updated,
        json: v,
        warnings,
        exceptions: None,
    })
}

// ---------------------------------------------------------------- client

/// Every write notifies nobody: calbridge is not the organizer's mail client.
const SEND_UPDATES: (&str, &str) = ("sendUpdates", "none");

enum Op {
    Patch { id: String, body: Value },
    Delete { id: String },
}

impl Google {
    fn events_url(&self, calendar: &str) -> String {
        self.url(&format!("{}/events", Self::calendar_path(calendar)))
    }

    fn event_url(&self, calendar: &str, id: &str) -> String {
        format!(
            "{}/{}",
            self.events_url(calendar),
            utf8_percent_encode(id, SEGMENT)
        )
    }

    async fn get_event(
        &self,
        token: &str,
        calendar: &str,
        id: &str,
    ) -> Result<Value, UpstreamError> {
        let url = self.event_url(calendar, id);
        self.api
            .send(|c| c.get(&url).bearer_auth(token))
            .await?
            .json()
    }

    /// Write one series (master and overrides) to a calendar: insert it
    /// when `existing` is `None`, else update the event `existing` names
    /// (`If-Match` with its etag when given). `marker` goes into
    /// `extendedProperties.private.calbridge`; `idempotency_key` fixes the
    /// id of an insert (see [`event_id_for`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn write_series(
        &self,
        token: &str,
        calendar_id: &str,
        existing: Option<&RemoteRef>,
        cal: &Component,
        calendar_zone: Option<&str>,
        marker: &str,
        idempotency_key: &str,
    ) -> Result<RemoteState, WriteError> {
        let mut w = event_from_ics(cal, calendar_zone)?;
        w.mark(marker);
        let (master, reconcile) = match existing {
            None => self.insert(token, calendar_id, &w, idempotency_key).await?,
            Some(r) => {
                let url = self.event_url(calendar_id, &r.id);
                let mut body = w.master.clone();
                if let Some(o) = body.as_object_mut() {
                    o.remove("iCalUID");
                }
                let etag = r.etag.clone();
                let v: Value = self
                    .api
                    .send(|c| {
                        let mut req = c
                            .patch(&url)
                            .bearer_auth(token)
                            .query(&[SEND_UPDATES])
                            .json(&body);
                        if let Some(e) = &etag {
                            req = req.header(reqwest::header::IF_MATCH, e);
                        }
                        req
                    })
                    .await?
                    .json()?;
                (v, true)
            }
        };
        let master_id = master["id"]
            .as_str()
            .ok_or_else(|| UpstreamError::Garbage("an event without an id".into()))?
            .to_string();
        let mut ops: Vec<Op> = Vec::new();
        let upstream: Vec<Value> = if reconcile {
            self.series_listing(token, calendar_id, &master).await?.1
        } else {
            Vec::new()
        };
        let find = |id: &str| upstream.iter().find(|e| e["id"].as_str() == Some(id));
        let mut wanted: Vec<String> = Vec::new();
        for e in &w.exceptions {
            let id = format!("{master_id}_{}", e.instance_suffix());
            wanted.push(id.clone());
            match e {
                ExceptionWrite::Modified { body, .. } => {
                    if find(&id).is_some_and(|u| google_matches(u, body)) {
                        continue;
                    }
                    ops.push(Op::Patch {
                        id,
                        body: body.clone(),
                    });
                }
                ExceptionWrite::Cancelled { .. } => {
                    if find(&id).is_some_and(|u| u["status"].as_str() == Some("cancelled")) {
                        continue;
                    }
                    ops.push(Op::Delete { id });
                }
            }
        }
        for u in &upstream {
            let Some(id) = u["id"].as_str() else { continue };
            if wanted.iter().any(|w| w == id) {
                continue;
            }
            let Some(original) = original_of(u) else {
                continue;
            };
            let at = original
                .shaped_like(&w.start, w.floating)
                .instant(w.floating);
            let occurs = w.occurrences.contains(at);
            let cancelled = u["status"].as_str() == Some("cancelled");
            if occurs {
                // A stale change, or an occurrence cancelled upstream that
                // the object has again: back to a plain occurrence.
                let body = w.plain_at(&original);
                if cancelled || !google_matches(u, &body) {
                    ops.push(Op::Patch {
                        id: id.to_string(),
                        body,
                    });
                }
            } else if !cancelled {
                // Excluded now, or no longer an occurrence at all.
                ops.push(Op::Delete { id: id.to_string() });
            }
        }
        if ops.is_empty() {
            let mut state = state_of(master, w.warnings)?;
            state.exceptions = Some(upstream);
            return Ok(state);
        }
        let futures: Vec<_> = ops
            .into_iter()
            .map(|op| self.apply(token, calendar_id, op))
            .collect();
        run_bounded(futures).await?;
        // The master and its occurrences as Google keeps them now (ids,
        // etags, what it filled in): what the next pull compares with. One
        // listing by iCalUID has them all; the master is read on its own
        // only if the listing lacks it.
        let (listed, exceptions) = self.series_listing(token, calendar_id, &master).await?;
        let fresh = match listed {
            Some(m) => m,
            None => self.get_event(token, calendar_id, &master_id).await?,
        };
        let mut state = state_of(fresh, w.warnings)?;
        state.exceptions = Some(exceptions);
        Ok(state)
    }

    /// Insert with the key's id; on `409 duplicate` adopt the event the
    /// first attempt created, or report it deleted. Returns the master and
    /// whether existing exceptions must be read (an adopted event).
    async fn insert(
        &self,
        token: &str,
        calendar_id: &str,
        w: &SeriesWrite,
        key: &str,
    ) -> Result<(Value, bool), UpstreamError> {
        let id = event_id_for(key);
        let url = self.events_url(calendar_id);
        let mut body = without_nulls(&w.master);
        body["id"] = json!(id);
        let sent = self
            .api
            .send(|c| {
                c.post(&url)
                    .bearer_auth(token)
                    .query(&[SEND_UPDATES])
                    .json(&body)
            })
            .await;
        match sent {
            Ok(r) => Ok((r.json()?, false)),
            Err(dup @ UpstreamError::Refused { status: 409, .. }) => {
                match self.get_event(token, calendar_id, &id).await {
                    Ok(v) if v["status"].as_str() == Some("cancelled") => {
                        Err(UpstreamError::Gone(format!(
                            "the event calbridge created as {id} was deleted in Google Calendar since"
                        )))
                    }
                    Ok(v) => Ok((v, true)),
                    // Not ours: another event already has this UID.
                    Err(UpstreamError::NotFound) => Err(dup),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A series as listed by its iCalUID: the master (when listed) and its
    /// exceptions (changed or cancelled occurrences).
    async fn series_listing(
        &self,
        token: &str,
        calendar_id: &str,
        master: &Value,
    ) -> Result<(Option<Value>, Vec<Value>), UpstreamError> {
        let (Some(id), Some(uid)) = (master["id"].as_str(), master["iCalUID"].as_str()) else {
            return Ok((None, Vec::new()));
        };
        let url = self.events_url(calendar_id);
        let mut listed = None;
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        for _ in 0..100 {
            let p = page.clone();
            let v: Value = self
                .api
                .send(|c| {
                    let mut r = c.get(&url).bearer_auth(token).query(&[
                        ("iCalUID", uid),
                        ("showDeleted", "true"),
                        ("maxResults", "2500"),
                    ]);
                    if let Some(p) = &p {
                        r = r.query(&[("pageToken", p)]);
                    }
                    r
                })
                .await?
                .json()?;
            for e in v["items"].as_array().into_iter().flatten() {
                if e["recurringEventId"].as_str() == Some(id) {
                    out.push(e.clone());
                } else if e["id"].as_str() == Some(id) {
                    listed = Some(e.clone());
                }
            }
            match v["nextPageToken"].as_str() {
                Some(p) => page = Some(p.to_string()),
                None => return Ok((listed, out)),
            }
        }
        Err(UpstreamError::Garbage("the event list never ended".into()))
    }

    async fn apply(&self, token: &str, calendar_id: &str, op: Op) -> Result<(), UpstreamError> {
        match op {
            Op::Patch { id, body } => {
                let url = self.event_url(calendar_id, &id);
                self.api
                    .send(|c| {
                        c.patch(&url)
                            .bearer_auth(token)
                            .query(&[SEND_UPDATES])
                            .json(&body)
                    })
                    .await
                    .map(drop)
            }
            Op::Delete { id } => {
                let url = self.event_url(calendar_id, &id);
                match self
                    .api
                    .send(|c| c.delete(&url).bearer_auth(token).query(&[SEND_UPDATES]))
                    .await
                {
                    Ok(_) | Err(UpstreamError::NotFound) | Err(UpstreamError::Gone(_)) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Delete a series (`If-Match` with `etag` when given). An event that
    /// is already gone (404, 410) counts as deleted.
    pub async fn delete_series(
        &self,
        token: &str,
        calendar_id: &str,
        remote_id: &str,
        etag: Option<&str>,
    ) -> Result<(), WriteError> {
        let url = self.event_url(calendar_id, remote_id);
        match self
            .api
            .send(|c| {
                let mut r = c.delete(&url).bearer_auth(token).query(&[SEND_UPDATES]);
                if let Some(e) = etag {
                    r = r.header(reqwest::header::IF_MATCH, e);
                }
                r
            })
            .await
        {
            Ok(_) | Err(UpstreamError::NotFound) | Err(UpstreamError::Gone(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(body: &str) -> Component {
        let text = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{}END:VCALENDAR\r\n",
            body.replace('\n', "\r\n")
        );
        crate::ics::parse(text.as_bytes()).unwrap()
    }

    fn refused(c: &Component) -> String {
        event_from_ics(c, Some("Europe/Berlin")).unwrap_err().0
    }

    #[test]
    fn event_ids_are_stable_base32hex() {
        let a = event_id_for("outbox-17");
        assert_eq!(a, event_id_for("outbox-17"));
        assert_ne!(a, event_id_for("outbox-18"));
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'v')));
    }

    #[test]
    fn a_todo_or_an_event_without_start_is_refused_with_the_reason() {
        let todo = cal("BEGIN:VTODO\nUID:t1\nSUMMARY:Buy milk\nEND:VTODO\n");
        assert!(refused(&todo).contains("VTODO"), "{}", refused(&todo));
        let no_start = cal("BEGIN:VEVENT\nUID:e1\nSUMMARY:When?\nEND:VEVENT\n");
        assert!(refused(&no_start).contains("DTSTART"));
        let cancelled =
            cal("BEGIN:VEVENT\nUID:e2\nDTSTART:20270302T090000Z\nSTATUS:CANCELLED\nEND:VEVENT\n");
        assert!(refused(&cancelled).contains("delete it"));
        let two_uids = cal("BEGIN:VEVENT\nUID:a\nDTSTART:20270302T090000Z\nEND:VEVENT\nBEGIN:VEVENT\nUID:b\nDTSTART:20270302T090000Z\nEND:VEVENT\n");
        assert!(refused(&two_uids).contains("different UIDs"));
        let bad_rid = cal("BEGIN:VEVENT\nUID:w\nDTSTART;TZID=Europe/Berlin:20270301T090000\nRRULE:FREQ=WEEKLY;COUNT=3\nEND:VEVENT\nBEGIN:VEVENT\nUID:w\nRECURRENCE-ID;TZID=Europe/Berlin:20270302T090000\nDTSTART;TZID=Europe/Berlin:20270302T100000\nEND:VEVENT\n");
        assert!(refused(&bad_rid).contains("does not match any occurrence"));
        let period = cal("BEGIN:VEVENT\nUID:p\nDTSTART:20270301T090000Z\nRDATE;VALUE=PERIOD:20270305T090000Z/PT1H\nEND:VEVENT\n");
        assert!(refused(&period).contains("RDATE"));
        let unknown =
            cal("BEGIN:VEVENT\nUID:u\nDTSTART;TZID=Mars/Olympus:20270301T090000\nEND:VEVENT\n");
        assert!(refused(&unknown).contains("Mars/Olympus"));
    }

    #[test]
    fn windows_and_floating_times_get_iana_zones_and_exdates_follow_the_start() {
        let c = cal("BEGIN:VEVENT\nUID:s1\nSUMMARY:Standup\nDTSTART;TZID=W. Europe Standard Time:20270301T090000\nDTEND;TZID=W. Europe Standard Time:20270301T091500\nRRULE:FREQ=WEEKLY;UNTIL=20270401T000000\nEXDATE:20270308T080000Z\nEND:VEVENT\n");
        let w = event_from_ics(&c, Some("America/New_York")).unwrap();
        assert_eq!(w.master["start"]["timeZone"], "Europe/Berlin");
        assert_eq!(w.master["start"]["dateTime"], "2027-03-01T09:00:00+01:00");
        let rec: Vec<&str> = w.master["recurrence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        // A floating UNTIL is made UTC in the start's zone; the UTC EXDATE
        // is written in the start's zone.
        assert_eq!(
            rec,
            vec![
                "RRULE:FREQ=WEEKLY;UNTIL=20270331T220000Z",
                "EXDATE;TZID=Europe/Berlin:20270308T090000"
            ]
        );
        assert_eq!(w.master["iCalUID"], "s1");
        let floating =
            cal("BEGIN:VEVENT\nUID:f\nDTSTART:20270301T090000\nDURATION:PT30M\nEND:VEVENT\n");
        let w = event_from_ics(&floating, Some("America/New_York")).unwrap();
        assert_eq!(w.master["start"]["timeZone"], "America/New_York");
        assert_eq!(w.master["end"]["dateTime"], "2027-03-01T09:30:00-05:00");
    }

    #[test]
    fn all_day_keeps_dates_with_an_exclusive_end() {
        let c = cal("BEGIN:VEVENT\nUID:d\nDTSTART;VALUE=DATE:20271224\nDTEND;VALUE=DATE:20271226\nEND:VEVENT\n");
        let w = event_from_ics(&c, Some("Pacific/Kiritimati")).unwrap();
        assert_eq!(w.master["start"]["date"], "2027-12-24");
        assert_eq!(w.master["end"]["date"], "2027-12-26");
        let one = cal("BEGIN:VEVENT\nUID:d\nDTSTART;VALUE=DATE:20271224\nEND:VEVENT\n");
        assert_eq!(
            event_from_ics(&one, None).unwrap().master["end"]["date"],
            "2027-12-25"
        );
    }

    #[test]
    fn fields_alarms_and_attendees_map_and_nothing_unsupported_passes_silently() {
        let c = cal("BEGIN:VEVENT\nUID:x\nDTSTART:20270301T090000Z\nDTEND:20270301T100000Z\nSUMMARY:Review\\, final\nCLASS:CONFIDENTIAL\nTRANSP:TRANSPARENT\nSTATUS:TENTATIVE\nCOLOR:crimson\nCATEGORIES:Work\nATTENDEE;CN=Bo;ROLE=OPT-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:bo@example.com\nBEGIN:VALARM\nACTION:EMAIL\nTRIGGER:-P1D\nEND:VALARM\nBEGIN:VALARM\nACTION:DISPLAY\nTRIGGER;RELATED=END:-PT70M\nEND:VALARM\nBEGIN:VALARM\nACTION:DISPLAY\nTRIGGER:PT5M\nEND:VALARM\nBEGIN:VALARM\nACTION:NONE\nTRIGGER;VALUE=DATE-TIME:19760401T005545Z\nEND:VALARM\nEND:VEVENT\n");
        let w = event_from_ics(&c, None).unwrap();
        let m = &w.master;
        assert_eq!(m["summary"], "Review, final");
        assert_eq!(m["visibility"], "confidential");
        assert_eq!(m["transparency"], "transparent");
        assert_eq!(m["status"], "tentative");
        assert_eq!(m["colorId"], "11");
        assert_eq!(m["start"]["timeZone"], "UTC");
        assert_eq!(m["recurrence"], Value::Null);
        assert_eq!(
            m["attendees"],
            json!([{"email": "bo@example.com", "displayName": "Bo", "optional": true, "responseStatus": "accepted"}])
        );
        assert_eq!(
            m["reminders"],
            json!({"useDefault": false, "overrides": [
                {"method": "email", "minutes": 1440},
                {"method": "popup", "minutes": 10}
            ]})
        );
        assert!(w
            .warnings
            .iter()
            .any(|x| x.contains("after the event's start")));
        assert!(w.warnings.iter().any(|x| x.contains("CATEGORIES")));
    }

    #[test]
    fn overrides_become_instance_patches_and_cancelled_ones_deletes() {
        let c = cal("BEGIN:VEVENT\nUID:w\nDTSTART;TZID=Europe/Berlin:20270301T090000\nDTEND;TZID=Europe/Berlin:20270301T100000\nRRULE:FREQ=WEEKLY;COUNT=5\nSUMMARY:Weekly\nEND:VEVENT\nBEGIN:VEVENT\nUID:w\nRECURRENCE-ID;TZID=Europe/Berlin:20270308T090000\nDTSTART;TZID=Europe/Berlin:20270308T110000\nDTEND;TZID=Europe/Berlin:20270308T120000\nSUMMARY:Moved\nEND:VEVENT\nBEGIN:VEVENT\nUID:w\nRECURRENCE-ID:20270315T080000Z\nSTATUS:CANCELLED\nDTSTART:20270315T080000Z\nEND:VEVENT\n");
        let mut w = event_from_ics(&c, None).unwrap();
        w.mark("cb:1");
        assert_eq!(w.exceptions.len(), 2);
        match &w.exceptions[0] {
            ExceptionWrite::Modified {
                original_start,
                instance_suffix,
                body,
            } => {
                assert_eq!(instance_suffix, "20270308T080000Z");
                assert_eq!(
                    original_start,
                    &json!({"dateTime": "2027-03-08T09:00:00+01:00", "timeZone": "Europe/Berlin"})
                );
                assert_eq!(body["summary"], "Moved");
                assert_eq!(body["extendedProperties"]["private"]["calbridge"], "cb:1");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &w.exceptions[1],
            ExceptionWrite::Cancelled { instance_suffix, .. } if instance_suffix == "20270315T080000Z"
        ));
        assert_eq!(
            w.master["extendedProperties"]["private"]["calbridge"],
            "cb:1"
        );
    }

    #[test]
    fn a_custom_zone_becomes_the_matching_iana_zone() {
        let c = cal("BEGIN:VTIMEZONE\nTZID:My Berlin\nBEGIN:STANDARD\nDTSTART:19701025T030000\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\nEND:STANDARD\nBEGIN:DAYLIGHT\nDTSTART:19700329T020000\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\nEND:DAYLIGHT\nEND:VTIMEZONE\nBEGIN:VEVENT\nUID:c\nDTSTART;TZID=My Berlin:20270701T090000\nRRULE:FREQ=DAILY;COUNT=2\nEND:VEVENT\n");
        let w = event_from_ics(&c, None).unwrap();
        let zone = w.master["start"]["timeZone"].as_str().unwrap();
        let tz: Tz = zone.parse().unwrap();
        let t = NaiveDate::from_ymd_opt(2027, 1, 15)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap();
        assert_eq!(
            tz.offset_from_utc_datetime(&t).fix().local_minus_utc(),
            3600
        );
        assert_eq!(w.master["start"]["dateTime"], "2027-07-01T09:00:00+02:00");
    }
}
