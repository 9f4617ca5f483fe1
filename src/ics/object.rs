//! Validation of a CalDAV calendar object resource (RFC 4791 §4.1): one
//! VCALENDAR holding the components of a single UID (a master and its
//! RECURRENCE-ID overrides), and the index fields a store keeps for it.
//!
//! This module decides whether an object may be stored and names the CalDAV
//! precondition it fails; it never rewrites the object (the raw bytes are
//! what gets stored). A rule that yields no instance is *not* an error
//! (sabre/dav #1423: clients write such events and expect them kept).

use std::collections::HashSet;

use super::recur::{series_span, ExpandOptions};
use super::rrule::RRule;
use super::tz::Zones;
use super::value::{clean_tzid, date_list, rdate_list, DateTimeValue, IcsDuration};
use super::Component;

/// The kind of the components of an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ComponentKind {
    Event,
    Todo,
    Journal,
    FreeBusy,
    Other(String),
}

impl ComponentKind {
    pub fn from_name(name: &str) -> Self {
        match name.to_ascii_uppercase().as_str() {
            "VEVENT" => ComponentKind::Event,
            "VTODO" => ComponentKind::Todo,
            "VJOURNAL" => ComponentKind::Journal,
            "VFREEBUSY" => ComponentKind::FreeBusy,
            other => ComponentKind::Other(other.to_string()),
        }
    }

    /// The component name (`VEVENT`, ...).
    pub fn name(&self) -> &str {
        match self {
            ComponentKind::Event => "VEVENT",
            ComponentKind::Todo => "VTODO",
            ComponentKind::Journal => "VJOURNAL",
            ComponentKind::FreeBusy => "VFREEBUSY",
            ComponentKind::Other(n) => n,
        }
    }
}

/// What the store indexes about a valid object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub uid: String,
    pub kind: ComponentKind,
    /// UTC seconds of the series' first start (`i64::MIN`: matches any
    /// time, like a VTODO without dates).
    pub start: i64,
    /// UTC seconds of the series' last end; `i64::MAX` when unbounded.
    pub end: i64,
    /// An RRULE or RDATE, or overrides.
    pub recurring: bool,
    /// Every TZID referenced, in order of first use.
    pub tzids: Vec<String>,
    pub has_alarms: bool,
}

/// Why an object cannot be stored. [`ObjectError::precondition`] names the
/// CalDAV precondition (RFC 4791 §5.3.2.1) to report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("the object is a {0}, not a VCALENDAR")]
    NotCalendar(String),
    #[error("the VCALENDAR holds no calendar component")]
    Empty,
    #[error("a stored calendar object must not have a METHOD property (it is an iTIP message)")]
    Method,
    #[error("a {0} has no UID")]
    MissingUid(String),
    #[error("one calendar object may hold only one UID, found {0:?} and {1:?}")]
    SeveralUids(String, String),
    #[error("one calendar object may hold only one kind of component, found {0} and {1}")]
    MixedKinds(String, String),
    #[error("UID {0:?} has more than one component without RECURRENCE-ID")]
    SeveralMasters(String),
    #[error("UID {uid:?} has two overrides for RECURRENCE-ID {rid}")]
    DuplicateOverride { uid: String, rid: String },
    #[error("{0}")]
    InvalidData(String),
}

impl ObjectError {
    /// Local name of the CalDAV precondition element (namespace
    /// `urn:ietf:params:xml:ns:caldav`) this error violates.
    pub fn precondition(&self) -> &'static str {
        match self {
            ObjectError::NotCalendar(_) | ObjectError::Empty | ObjectError::InvalidData(_) => {
                "valid-calendar-data"
            }
            _ => "valid-calendar-object-resource",
        }
    }

    /// A sentence for the client (the Display text).
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// The TZIDs referenced by a component and its sub-components, appended
/// to `out` without duplicates.
fn collect_tzids(c: &Component, out: &mut Vec<String>) {
    for p in &c.props {
        if let Some(t) = p.param("TZID") {
            let t = clean_tzid(t);
            if !t.is_empty() && !out.contains(&t) {
                out.push(t);
            }
        }
    }
    for child in &c.children {
        collect_tzids(child, out);
    }
}

fn has_alarm(c: &Component) -> bool {
    c.children
        .iter()
        .any(|x| x.name == "VALARM" || has_alarm(x))
}

/// Check the typed values a server interprets, naming the component and
/// the property on failure.
fn check_values(c: &Component, uid: &str) -> Result<(), ObjectError> {
    // Value errors already start with the property name.
    let fail = |e: String| ObjectError::InvalidData(format!("{} {uid:?}: {e}", c.name));
    if c.name == "VEVENT" && c.prop("DTSTART").is_none() {
        return Err(ObjectError::InvalidData(format!(
            "VEVENT {uid:?} has no DTSTART"
        )));
    }
    for p in &c.props {
        match p.name.as_str() {
            "DTSTART" | "DTEND" | "DUE" | "RECURRENCE-ID" => {
                DateTimeValue::from_property(p).map_err(|e| fail(e.to_string()))?;
            }
            "DURATION" => {
                IcsDuration::parse(&p.value).map_err(|e| fail(e.to_string()))?;
            }
            "RRULE" | "EXRULE" => {
                RRule::parse(&p.value).map_err(|e| fail(e.to_string()))?;
            }
            "RDATE" => {
                rdate_list(p).map_err(|e| fail(e.to_string()))?;
            }
            "EXDATE" => {
                date_list(p).map_err(|e| fail(e.to_string()))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Validate a calendar object resource and compute its index fields.
pub fn analyze(cal: &Component, opts: &ExpandOptions) -> Result<ObjectInfo, ObjectError> {
    if cal.name != "VCALENDAR" {
        return Err(ObjectError::NotCalendar(cal.name.clone()));
    }
    if cal.prop("METHOD").is_some() {
        return Err(ObjectError::Method);
    }
    let comps: Vec<&Component> = cal
        .children
        .iter()
        .filter(|c| c.name != "VTIMEZONE")
        .collect();
    let first = comps.first().ok_or(ObjectError::Empty)?;
    let kind = ComponentKind::from_name(&first.name);
    let mut uid: Option<String> = None;
    let mut master_seen = false;
    let mut rids: HashSet<i64> = HashSet::new();
    let zones = Zones::from_calendar(cal);
    let mut recurring = false;
    for c in &comps {
        if c.name != first.name {
            return Err(ObjectError::MixedKinds(first.name.clone(), c.name.clone()));
        }
        let this = c
            .value("UID")
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ObjectError::MissingUid(c.name.clone()))?;
        match &uid {
            Some(u) if u != this => {
                return Err(ObjectError::SeveralUids(u.clone(), this.to_string()))
            }
            Some(_) => {}
            None => uid = Some(this.to_string()),
        }
        check_values(c, this)?;
        match c.prop("RECURRENCE-ID") {
            None => {
                if master_seen {
                    return Err(ObjectError::SeveralMasters(this.to_string()));
                }
                master_seen = true;
                recurring |= c.prop("RRULE").is_some() || c.prop("RDATE").is_some();
            }
            Some(p) => {
                recurring = true;
                let rid = DateTimeValue::from_property(p).expect("checked by check_values");
                if !rids.insert(rid.to_utc(&zones, &opts.floating).timestamp()) {
                    return Err(ObjectError::DuplicateOverride {
                        uid: this.to_string(),
                        rid: rid.to_string(),
                    });
                }
            }
        }
    }
    let (start, end) = match kind {
        ComponentKind::Event | ComponentKind::Todo | ComponentKind::Journal => {
            series_span(cal, opts).map_err(|e| ObjectError::InvalidData(e.to_string()))?
        }
        _ => (i64::MIN, i64::MAX),
    };
    let mut tzids = Vec::new();
    for c in &comps {
        collect_tzids(c, &mut tzids);
    }
    Ok(ObjectInfo {
        uid: uid.expect("at least one component"),
        kind,
        start,
        end,
        recurring,
        tzids,
        has_alarms: comps.iter().any(|c| has_alarm(c)),
    })
}

/// Split a VCALENDAR holding several UIDs (an ICS feed, an import) into
/// one calendar object per UID, in order of first appearance. Each keeps
/// the calendar's properties except METHOD and the VTIMEZONEs its
/// components reference. A component without UID becomes an object of its
/// own.
pub fn split_by_uid(cal: &Component) -> Vec<Component> {
    let mut out: Vec<(Option<String>, Component)> = Vec::new();
    for c in cal.children.iter().filter(|c| c.name != "VTIMEZONE") {
        let uid = c.value("UID").map(|u| u.trim().to_string());
        let slot = match &uid {
            Some(u) => out
                .iter()
                .position(|(k, _)| k.as_deref() == Some(u.as_str())),
            None => None,
        };
        match slot {
            Some(i) => out[i].1.children.push(c.clone()),
            None => {
                let mut obj = Component::new(cal.name.clone());
                obj.props = cal
                    .props
                    .iter()
                    .filter(|p| p.name != "METHOD")
                    .cloned()
                    .collect();
                obj.children.push(c.clone());
                out.push((uid, obj));
            }
        }
    }
    out.into_iter()
        .map(|(_, mut obj)| {
            let mut tzids = Vec::new();
            for c in &obj.children {
                collect_tzids(c, &mut tzids);
            }
            let zones: Vec<Component> = cal
                .children_named("VTIMEZONE")
                .filter(|z| {
                    z.value("TZID")
                        .is_some_and(|t| tzids.contains(&clean_tzid(t)))
                })
                .cloned()
                .collect();
            obj.children.splice(0..0, zones);
            obj
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ics::parse;

    fn cal(body: &str) -> Component {
        let text = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{}\r\nEND:VCALENDAR\r\n",
            body.trim()
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("\r\n")
        );
        parse(text.as_bytes()).unwrap()
    }

    fn check_err(body: &str, precondition: &str, needle: &str) {
        let err = analyze(&cal(body), &ExpandOptions::default()).unwrap_err();
        assert_eq!(err.precondition(), precondition, "{err}");
        assert!(
            err.message().contains(needle),
            "{err:?} should mention {needle:?}"
        );
    }

    #[test]
    fn a_recurring_event_with_override() {
        let info = analyze(
            &cal("
                BEGIN:VTIMEZONE
                TZID:Europe/Berlin
                BEGIN:STANDARD
                DTSTART:19701025T030000
                TZOFFSETFROM:+0200
                TZOFFSETTO:+0100
                END:STANDARD
                END:VTIMEZONE
                BEGIN:VEVENT
                UID:abc
                DTSTART;TZID=Europe/Berlin:20240101T090000
                DTEND;TZID=Europe/Berlin:20240101T100000
                RRULE:FREQ=WEEKLY
                BEGIN:VALARM
                ACTION:DISPLAY
                TRIGGER:-PT15M
                END:VALARM
                END:VEVENT
                BEGIN:VEVENT
                UID:abc
                RECURRENCE-ID;TZID=Europe/Berlin:20240108T090000
                DTSTART;TZID=W. Europe Standard Time:20240108T110000
                END:VEVENT"),
            &ExpandOptions::default(),
        )
        .unwrap();
        assert_eq!(info.uid, "abc");
        assert_eq!(info.kind, ComponentKind::Event);
        assert_eq!(info.start, 1_704_096_000);
        assert_eq!(info.end, i64::MAX);
        assert!(info.recurring && info.has_alarms);
        assert_eq!(info.tzids, ["Europe/Berlin", "W. Europe Standard Time"]);
    }

    #[test]
    fn a_single_todo_and_a_rule_without_instances() {
        let info = analyze(
            &cal("BEGIN:VTODO\nUID:t\nDUE:20240101T100000Z\nEND:VTODO"),
            &ExpandOptions::default(),
        )
        .unwrap();
        assert_eq!(
            (
                info.kind,
                info.start,
                info.end,
                info.recurring,
                info.has_alarms
            ),
            (
                ComponentKind::Todo,
                1_704_103_200,
                1_704_103_200,
                false,
                false
            )
        );
        // sabre/dav #1423: stored, not refused.
        let info = analyze(
            &cal("BEGIN:VEVENT\nUID:n\nDTSTART:20240101T100000Z\nRRULE:FREQ=YEARLY;COUNT=2;BYMONTH=2;BYMONTHDAY=30\nEXDATE:20240101T100000Z\nEND:VEVENT"),
            &ExpandOptions::default(),
        )
        .unwrap();
        assert!(info.recurring);
    }

    #[test]
    fn refusals_name_their_precondition() {
        let res = "valid-calendar-object-resource";
        let data = "valid-calendar-data";
        check_err(
            "METHOD:REQUEST\nBEGIN:VEVENT\nUID:1\nDTSTART:20240101T100000Z\nEND:VEVENT",
            res,
            "METHOD",
        );
        check_err(
            "BEGIN:VEVENT\nDTSTART:20240101T100000Z\nEND:VEVENT",
            res,
            "no UID",
        );
        check_err(
            "BEGIN:VEVENT\nUID:1\nDTSTART:20240101T100000Z\nEND:VEVENT\nBEGIN:VEVENT\nUID:2\nDTSTART:20240101T100000Z\nEND:VEVENT",
            res,
            "\"1\" and \"2\"",
        );
        check_err(
            "BEGIN:VEVENT\nUID:1\nDTSTART:20240101T100000Z\nEND:VEVENT\nBEGIN:VTODO\nUID:1\nEND:VTODO",
            res,
            "VEVENT and VTODO",
        );
        check_err(
            "BEGIN:VEVENT\nUID:1\nDTSTART:20240101T100000Z\nEND:VEVENT\nBEGIN:VEVENT\nUID:1\nDTSTART:20240102T100000Z\nEND:VEVENT",
            res,
            "more than one component without RECURRENCE-ID",
        );
        check_err(
            "BEGIN:VEVENT\nUID:1\nRECURRENCE-ID:20240101T100000Z\nDTSTART:20240101T100000Z\nEND:VEVENT\n\
             BEGIN:VEVENT\nUID:1\nRECURRENCE-ID;TZID=Europe/London:20240101T100000\nDTSTART:20240101T100000Z\nEND:VEVENT",
            res,
            "two overrides",
        );
        check_err(
            "BEGIN:VTIMEZONE\nTZID:x\nEND:VTIMEZONE",
            data,
            "no calendar component",
        );
        check_err(
            "BEGIN:VEVENT\nUID:1\nDTSTART:tomorrow\nEND:VEVENT",
            data,
            "VEVENT \"1\": DTSTART:",
        );
        check_err(
            "BEGIN:VEVENT\nUID:1\nSUMMARY:no start\nEND:VEVENT",
            data,
            "no DTSTART",
        );
        check_err(
            "BEGIN:VEVENT\nUID:1\nDTSTART:20240101T100000Z\nRRULE:FREQ=DAILY;BYHOUR=25\nEND:VEVENT",
            data,
            "BYHOUR",
        );
        check_err(
            "BEGIN:VEVENT\nUID:1\nDTSTART:20240101T100000Z\nDURATION:1 hour\nEND:VEVENT",
            data,
            "DURATION",
        );
        let not_cal = parse(b"BEGIN:VCARD\r\nFN:x\r\nEND:VCARD\r\n").unwrap();
        let err = analyze(&not_cal, &ExpandOptions::default()).unwrap_err();
        assert_eq!(
            (err.precondition(), err.to_string().contains("VCARD")),
            ("valid-calendar-data", true)
        );
    }

    #[test]
    fn split_by_uid_keeps_referenced_zones() {
        let c = cal("
            METHOD:PUBLISH
            BEGIN:VTIMEZONE
            TZID:A
            BEGIN:STANDARD
            DTSTART:19700101T000000
            TZOFFSETFROM:+0100
            TZOFFSETTO:+0100
            END:STANDARD
            END:VTIMEZONE
            BEGIN:VEVENT
            UID:1
            DTSTART;TZID=A:20240101T100000
            END:VEVENT
            BEGIN:VEVENT
            UID:2
            DTSTART:20240101T100000Z
            END:VEVENT
            BEGIN:VEVENT
            UID:1
            RECURRENCE-ID;TZID=A:20240101T100000
            DTSTART;TZID=A:20240101T120000
            END:VEVENT");
        let parts = split_by_uid(&c);
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0]
                .children
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["VTIMEZONE", "VEVENT", "VEVENT"]
        );
        assert_eq!(parts[1].children.len(), 1);
        assert!(parts.iter().all(|p| p.prop("METHOD").is_none()));
        for p in &parts {
            analyze(p, &ExpandOptions::default()).unwrap();
        }
    }
}
