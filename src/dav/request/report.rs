//! REPORT bodies: calendar-query, calendar-multiget, free-busy-query
//! (RFC 4791 §7), sync-collection (RFC 6578), expand-property (RFC 3253
//! §3.8), principal-property-search and principal-search-property-set
//! (RFC 3744 §9.4–9.5), and the pieces they share: `calendar-data`
//! selection (RFC 4791 §9.6), filters (§9.7) and time ranges (§9.9).
//!
//! A report this module does not know is a 403 with `DAV:supported-report`.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use super::{prop_names, prop_request, PropFind, QName};
use crate::dav::error::{Condition, DavError};
use crate::dav::href;
use crate::dav::name::{names, NS_CALDAV, NS_DAV};
use crate::dav::xml::{self, Element};
use crate::ics::{Component, Property};

/// A parsed REPORT body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    CalendarQuery(CalendarQuery),
    CalendarMultiget(CalendarMultiget),
    SyncCollection(SyncCollection),
    FreeBusyQuery(FreeBusyQuery),
    ExpandProperty(ExpandProperty),
    PrincipalPropertySearch(PrincipalPropertySearch),
    PrincipalSearchPropertySet,
}

impl Report {
    /// The root element name of this report (for logs and supported-report-set).
    pub fn name(&self) -> QName {
        match self {
            Report::CalendarQuery(_) => names::CALENDAR_QUERY,
            Report::CalendarMultiget(_) => names::CALENDAR_MULTIGET,
            Report::SyncCollection(_) => names::SYNC_COLLECTION,
            Report::FreeBusyQuery(_) => names::FREE_BUSY_QUERY,
            Report::ExpandProperty(_) => names::EXPAND_PROPERTY,
            Report::PrincipalPropertySearch(_) => names::PRINCIPAL_PROPERTY_SEARCH,
            Report::PrincipalSearchPropertySet => names::PRINCIPAL_SEARCH_PROPERTY_SET,
        }
    }
}

/// `CALDAV:calendar-query` (RFC 4791 §7.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarQuery {
    /// The properties to return; `Prop(vec![])` when the body names none
    /// (answer with hrefs only).
    pub props: PropFind,
    /// Present when `C:calendar-data` is among `props`.
    pub calendar_data: Option<CalendarDataRequest>,
    /// The root filter; its name is always VCALENDAR.
    pub filter: CompFilter,
    /// `C:timezone`: a VCALENDAR with the VTIMEZONE for floating times.
    pub timezone: Option<String>,
    /// `C:timezone-id` (RFC 7809): an IANA name for floating times.
    pub timezone_id: Option<String>,
}

/// `CALDAV:calendar-multiget` (RFC 4791 §7.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarMultiget {
    pub props: PropFind,
    pub calendar_data: Option<CalendarDataRequest>,
    /// Decoded paths, in request order (duplicates kept; answer each once).
    pub hrefs: Vec<String>,
}

/// `DAV:sync-collection` (RFC 6578 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncCollection {
    /// Empty on the initial sync.
    pub sync_token: String,
    pub level: SyncLevel,
    /// `DAV:limit/DAV:nresults`.
    pub limit: Option<u32>,
    pub props: PropFind,
    pub calendar_data: Option<CalendarDataRequest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncLevel {
    One,
    Infinite,
}

/// `CALDAV:free-busy-query` (RFC 4791 §7.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeBusyQuery {
    pub range: TimeRange,
}

/// `DAV:expand-property` (RFC 3253 §3.8): which href-valued properties to
/// follow and what to return from the resources they point to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandProperty {
    pub properties: Vec<ExpandItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandItem {
    pub name: QName,
    pub children: Vec<ExpandItem>,
}

/// `DAV:principal-property-search` (RFC 3744 §9.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalPropertySearch {
    pub test: SearchTest,
    pub searches: Vec<PropertySearch>,
    /// The properties to return for each matching principal.
    pub props: Vec<QName>,
    pub apply_to_principal_collection_set: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchTest {
    AllOf,
    AnyOf,
}

/// One `DAV:property-search`: does any of `props` match `text`?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertySearch {
    pub props: Vec<QName>,
    pub text: String,
    /// Apple's `match-type` attribute; RFC 3744 means "contains, caseless".
    pub match_type: MatchType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    Contains,
    StartsWith,
    EndsWith,
    Equals,
}

/// What `C:calendar-data` asks for (RFC 4791 §9.6). Content type and
/// version were checked to be `text/calendar` 2.0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CalendarDataRequest {
    /// Which components and properties to return; `None` = everything.
    pub comp: Option<CompSelection>,
    /// Return the recurrence set expanded into instances in this range
    /// (both ends present).
    pub expand: Option<TimeRange>,
    /// Return only overrides that affect this range (both ends present).
    pub limit_recurrence_set: Option<TimeRange>,
    /// Return only FREEBUSY periods in this range (both ends present).
    pub limit_freebusy_set: Option<TimeRange>,
}

/// `C:comp`: a component to return and what of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompSelection {
    /// Upper-cased component name.
    pub name: String,
    /// `None` = all properties (`C:allprop`, or no `C:prop` given).
    pub props: Option<Vec<PropSelection>>,
    /// `None` = all sub-components (`C:allcomp`, or no `C:comp` given).
    pub comps: Option<Vec<CompSelection>>,
}

/// `C:prop name="..." novalue="yes|no"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropSelection {
    pub name: String,
    pub novalue: bool,
}

/// `C:comp-filter` (RFC 4791 §9.7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompFilter {
    /// Upper-cased component name.
    pub name: String,
    pub is_not_defined: bool,
    pub time_range: Option<TimeRange>,
    pub prop_filters: Vec<PropFilter>,
    pub comp_filters: Vec<CompFilter>,
}

/// `C:prop-filter` (RFC 4791 §9.7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropFilter {
    pub name: String,
    pub is_not_defined: bool,
    pub time_range: Option<TimeRange>,
    pub text_match: Option<TextMatch>,
    pub param_filters: Vec<ParamFilter>,
}

/// `C:param-filter` (RFC 4791 §9.7.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamFilter {
    pub name: String,
    pub is_not_defined: bool,
    pub text_match: Option<TextMatch>,
}

/// `C:text-match` (RFC 4791 §9.7.5): substring match under a collation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMatch {
    pub text: String,
    pub collation: Collation,
    pub negate: bool,
}

/// The collations CalDAV servers must (i;ascii-casemap, i;octet) or
/// commonly (i;unicode-casemap) support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Collation {
    #[default]
    AsciiCasemap,
    Octet,
    UnicodeCasemap,
}

impl Collation {
    pub fn parse(s: &str) -> Option<Collation> {
        match s {
            "i;ascii-casemap" => Some(Collation::AsciiCasemap),
            "i;octet" => Some(Collation::Octet),
            "i;unicode-casemap" => Some(Collation::UnicodeCasemap),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Collation::AsciiCasemap => "i;ascii-casemap",
            Collation::Octet => "i;octet",
            Collation::UnicodeCasemap => "i;unicode-casemap",
        }
    }
}

/// `C:time-range` (RFC 4791 §9.9): half-open `[start, end)`, either end
/// may be open (at least one is present).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

impl TimeRange {
    /// Whether `[start, end)` (an instance) overlaps this range, with the
    /// RFC 4791 §9.9 rule for zero-length instances (`start == end`
    /// overlaps when it lies inside the range, its start included).
    pub fn overlaps(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        let before_end = self.end.is_none_or(|e| start < e);
        let after_start = self
            .start
            .is_none_or(|s| if end > start { end > s } else { start >= s });
        before_end && after_start
    }
}

/// Parses a REPORT body.
pub fn parse_report(body: &[u8]) -> Result<Report, DavError> {
    let root = xml::parse(body)?;
    let n = &root.name;
    if *n == names::CALENDAR_QUERY {
        calendar_query(&root).map(Report::CalendarQuery)
    } else if *n == names::CALENDAR_MULTIGET {
        calendar_multiget(&root).map(Report::CalendarMultiget)
    } else if *n == names::SYNC_COLLECTION {
        sync_collection(&root).map(Report::SyncCollection)
    } else if *n == names::FREE_BUSY_QUERY {
        free_busy_query(&root).map(Report::FreeBusyQuery)
    } else if *n == names::EXPAND_PROPERTY {
        Ok(Report::ExpandProperty(ExpandProperty {
            properties: expand_items(&root)?,
        }))
    } else if *n == names::PRINCIPAL_PROPERTY_SEARCH {
        principal_property_search(&root).map(Report::PrincipalPropertySearch)
    } else if *n == names::PRINCIPAL_SEARCH_PROPERTY_SET {
        Ok(Report::PrincipalSearchPropertySet)
    } else {
        Err(DavError::condition(
            Condition::SupportedReport,
            format!("the {n} report is not supported"),
        ))
    }
}

/// The properties of a REPORT and, when they include `C:calendar-data`,
/// what it selects.
fn report_props(root: &Element) -> Result<(PropFind, Option<CalendarDataRequest>), DavError> {
    let props = prop_request(root)?.unwrap_or(PropFind::Prop(Vec::new()));
    let calendar_data = match root
        .child(&names::PROP)
        .and_then(|p| p.child(&names::CALENDAR_DATA))
    {
        Some(cd) => Some(calendar_data_request(cd)?),
        None => None,
    };
    Ok((props, calendar_data))
}

fn calendar_query(root: &Element) -> Result<CalendarQuery, DavError> {
    let (props, calendar_data) = report_props(root)?;
    let filter = root.child(&names::FILTER).ok_or_else(|| {
        DavError::condition(Condition::ValidFilter, "calendar-query needs a <C:filter>")
    })?;
    let filter = parse_filter(filter)?;
    let timezone = root
        .child(&names::TIMEZONE)
        .map(|t| t.text().trim().to_string());
    let timezone_id = root
        .child(&QName::caldav("timezone-id"))
        .map(|t| t.text().trim().to_string());
    Ok(CalendarQuery {
        props,
        calendar_data,
        filter,
        timezone,
        timezone_id,
    })
}

fn calendar_multiget(root: &Element) -> Result<CalendarMultiget, DavError> {
    let (props, calendar_data) = report_props(root)?;
    let hrefs = root
        .children_named(&names::HREF)
        .map(|h| href::decode(&h.text()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CalendarMultiget {
        props,
        calendar_data,
        hrefs,
    })
}

fn sync_collection(root: &Element) -> Result<SyncCollection, DavError> {
    let (props, calendar_data) = report_props(root)?;
    let sync_token = root
        .child(&names::SYNC_TOKEN)
        .map(|t| t.text().trim().to_string())
        .unwrap_or_default();
    let level = match root.child(&names::SYNC_LEVEL).map(|l| l.text()) {
        None => SyncLevel::One,
        Some(l) => match l.trim() {
            "1" => SyncLevel::One,
            "infinite" | "infinity" => SyncLevel::Infinite,
            other => {
                return Err(DavError::bad_request(format!(
                    "sync-level must be 1 or infinite, not {other:?}"
                )))
            }
        },
    };
    let limit = match root.child(&names::LIMIT) {
        None => None,
        Some(l) => {
            let n = l
                .child(&names::NRESULTS)
                .ok_or_else(|| DavError::bad_request("<D:limit> needs <D:nresults>"))?
                .text();
            Some(n.trim().parse::<u32>().map_err(|_| {
                DavError::bad_request(format!(
                    "nresults must be a non-negative integer, not {:?}",
                    n.trim()
                ))
            })?)
        }
    };
    Ok(SyncCollection {
        sync_token,
        level,
        limit,
        props,
        calendar_data,
    })
}

fn free_busy_query(root: &Element) -> Result<FreeBusyQuery, DavError> {
    let tr = root
        .child(&names::TIME_RANGE)
        .ok_or_else(|| DavError::bad_request("free-busy-query needs a <C:time-range>"))?;
    let range =
        time_range(tr).map_err(|m| DavError::bad_request(format!("free-busy-query: {m}")))?;
    Ok(FreeBusyQuery { range })
}

fn expand_items(parent: &Element) -> Result<Vec<ExpandItem>, DavError> {
    parent
        .children_named(&names::PROPERTY)
        .map(|p| {
            let local = p
                .attr("name")
                .filter(|n| !n.trim().is_empty())
                .ok_or_else(|| DavError::bad_request("<D:property> needs a name attribute"))?;
            let ns = p.attr("namespace").unwrap_or(NS_DAV);
            Ok(ExpandItem {
                name: QName::new(ns, local.trim()),
                children: expand_items(p)?,
            })
        })
        .collect()
}

fn principal_property_search(root: &Element) -> Result<PrincipalPropertySearch, DavError> {
    let test = match root.attr("test") {
        None | Some("allof") => SearchTest::AllOf,
        Some("anyof") => SearchTest::AnyOf,
        Some(other) => {
            return Err(DavError::bad_request(format!(
                "test must be allof or anyof, not {other:?}"
            )))
        }
    };
    let mut searches = Vec::new();
    for s in root.children_named(&names::PROPERTY_SEARCH) {
        let props = s.child(&names::PROP).map(prop_names).unwrap_or_default();
        let m = s
            .child(&names::MATCH)
            .ok_or_else(|| DavError::bad_request("<D:property-search> needs <D:match>"))?;
        let match_type = match m.attr("match-type") {
            None | Some("contains") => MatchType::Contains,
            Some("starts-with") => MatchType::StartsWith,
            Some("ends-with") => MatchType::EndsWith,
            Some("equals") => MatchType::Equals,
            Some(other) => {
                return Err(DavError::bad_request(format!(
                    "unknown match-type {other:?}"
                )))
            }
        };
        if props.is_empty() {
            return Err(DavError::bad_request(
                "<D:property-search> names no property",
            ));
        }
        searches.push(PropertySearch {
            props,
            text: m.text(),
            match_type,
        });
    }
    Ok(PrincipalPropertySearch {
        test,
        searches,
        props: root.child(&names::PROP).map(prop_names).unwrap_or_default(),
        apply_to_principal_collection_set: root
            .child(&names::APPLY_TO_PRINCIPAL_COLLECTION_SET)
            .is_some(),
    })
}

/// Parses a `C:calendar-data` element of a request.
pub fn calendar_data_request(e: &Element) -> Result<CalendarDataRequest, DavError> {
    let content_type = e.attr("content-type").unwrap_or("text/calendar");
    let media = content_type.split(';').next().unwrap_or("").trim();
    let version = e.attr("version").unwrap_or("2.0");
    if !media.eq_ignore_ascii_case("text/calendar") || version.trim() != "2.0" {
        return Err(DavError::condition(
            Condition::SupportedCalendarData,
            format!("calendar-data {content_type} version {version} is not supported; text/calendar 2.0 is"),
        ));
    }
    let range = |name: &QName| -> Result<Option<TimeRange>, DavError> {
        let Some(el) = e.child(name) else {
            return Ok(None);
        };
        let r =
            time_range(el).map_err(|m| DavError::bad_request(format!("{}: {m}", name.local)))?;
        if r.start.is_none() || r.end.is_none() {
            return Err(DavError::bad_request(format!(
                "{} needs both start and end",
                name.local
            )));
        }
        Ok(Some(r))
    };
    Ok(CalendarDataRequest {
        comp: e.child(&names::COMP).map(comp_selection).transpose()?,
        expand: range(&names::EXPAND)?,
        limit_recurrence_set: range(&names::LIMIT_RECURRENCE_SET)?,
        limit_freebusy_set: range(&names::LIMIT_FREEBUSY_SET)?,
    })
}

fn required_name(e: &Element) -> Result<String, String> {
    match e.attr("name").map(str::trim) {
        Some(n) if !n.is_empty() => Ok(n.to_ascii_uppercase()),
        _ => Err(format!("<C:{}> needs a name attribute", e.name.local)),
    }
}

fn comp_selection(e: &Element) -> Result<CompSelection, DavError> {
    let name = required_name(e).map_err(DavError::bad_request)?;
    let props = if e.child(&names::CALDAV_ALLPROP).is_some() {
        None
    } else {
        let list = e
            .children_named(&names::CALDAV_PROP)
            .map(|p| {
                Ok(PropSelection {
                    name: required_name(p).map_err(DavError::bad_request)?,
                    novalue: p.attr("novalue") == Some("yes"),
                })
            })
            .collect::<Result<Vec<_>, DavError>>()?;
        (!list.is_empty()).then_some(list)
    };
    let comps = if e.child(&names::ALLCOMP).is_some() {
        None
    } else {
        let list = e
            .children_named(&names::COMP)
            .map(comp_selection)
            .collect::<Result<Vec<_>, _>>()?;
        (!list.is_empty()).then_some(list)
    };
    Ok(CompSelection { name, props, comps })
}

impl CompSelection {
    /// The part of `c` this selection asks for. Names compare without case;
    /// `novalue` properties keep their parameters with an empty value.
    pub fn apply(&self, c: &Component) -> Component {
        let mut out = Component::new(c.name.clone());
        out.props = match &self.props {
            None => c.props.clone(),
            Some(sel) => c
                .props
                .iter()
                .filter_map(|p| {
                    let s = sel.iter().find(|s| s.name.eq_ignore_ascii_case(&p.name))?;
                    let mut p: Property = p.clone();
                    if s.novalue {
                        p.value.clear();
                    }
                    Some(p)
                })
                .collect(),
        };
        out.children = match &self.comps {
            None => c.children.clone(),
            Some(sel) => c
                .children
                .iter()
                .filter_map(|child| {
                    sel.iter()
                        .find(|s| s.name.eq_ignore_ascii_case(&child.name))
                        .map(|s| s.apply(child))
                })
                .collect(),
        };
        out
    }
}

impl CalendarDataRequest {
    /// The calendar object as this request selects it (component and
    /// property selection only; expansion and limits need recurrence, which
    /// the caller applies from `expand` / `limit_*`).
    pub fn select(&self, cal: &Component) -> Component {
        match &self.comp {
            Some(sel) => sel.apply(cal),
            None => cal.clone(),
        }
    }
}

fn valid_filter(message: impl Into<String>) -> DavError {
    DavError::condition(Condition::ValidFilter, message)
}

/// Parses `C:filter`: exactly one `C:comp-filter` named VCALENDAR.
pub fn parse_filter(filter: &Element) -> Result<CompFilter, DavError> {
    let mut comps = filter.children_named(&names::COMP_FILTER);
    let root = comps
        .next()
        .ok_or_else(|| valid_filter("<C:filter> needs a <C:comp-filter name=\"VCALENDAR\">"))?;
    if comps.next().is_some() {
        return Err(valid_filter(
            "<C:filter> must hold exactly one <C:comp-filter>",
        ));
    }
    let cf = comp_filter(root, 0)?;
    if cf.name != "VCALENDAR" {
        return Err(valid_filter(format!(
            "the outer comp-filter must name VCALENDAR, not {}",
            cf.name
        )));
    }
    Ok(cf)
}

/// Unknown CalDAV elements inside a filter would silently widen the result
/// if ignored, so they are refused; other namespaces are ignored.
fn check_known(e: &Element, allowed: &[&QName]) -> Result<(), DavError> {
    for c in e.elements() {
        if c.name.ns == NS_CALDAV && !allowed.contains(&&c.name) {
            return Err(DavError::condition(
                Condition::SupportedFilter,
                format!(
                    "<C:{}> is not supported inside <C:{}>",
                    c.name.local, e.name.local
                ),
            ));
        }
    }
    Ok(())
}

fn comp_filter(e: &Element, depth: usize) -> Result<CompFilter, DavError> {
    check_known(
        e,
        &[
            &names::IS_NOT_DEFINED,
            &names::TIME_RANGE,
            &names::PROP_FILTER,
            &names::COMP_FILTER,
        ],
    )?;
    let name = required_name(e).map_err(valid_filter)?;
    let is_not_defined = e.child(&names::IS_NOT_DEFINED).is_some();
    let time_range = match e.child(&names::TIME_RANGE) {
        Some(t) => Some(time_range(t).map_err(valid_filter)?),
        None => None,
    };
    if time_range.is_some() && depth == 0 {
        return Err(valid_filter(
            "a time-range cannot apply to VCALENDAR itself",
        ));
    }
    let prop_filters = e
        .children_named(&names::PROP_FILTER)
        .map(prop_filter)
        .collect::<Result<Vec<_>, _>>()?;
    let comp_filters = e
        .children_named(&names::COMP_FILTER)
        .map(|c| comp_filter(c, depth + 1))
        .collect::<Result<Vec<_>, _>>()?;
    if is_not_defined
        && (time_range.is_some() || !prop_filters.is_empty() || !comp_filters.is_empty())
    {
        return Err(valid_filter(format!(
            "comp-filter {name}: is-not-defined cannot be combined with other tests"
        )));
    }
    Ok(CompFilter {
        name,
        is_not_defined,
        time_range,
        prop_filters,
        comp_filters,
    })
}

fn prop_filter(e: &Element) -> Result<PropFilter, DavError> {
    check_known(
        e,
        &[
            &names::IS_NOT_DEFINED,
            &names::TIME_RANGE,
            &names::TEXT_MATCH,
            &names::PARAM_FILTER,
        ],
    )?;
    let name = required_name(e).map_err(valid_filter)?;
    let is_not_defined = e.child(&names::IS_NOT_DEFINED).is_some();
    let time_range = match e.child(&names::TIME_RANGE) {
        Some(t) => Some(time_range(t).map_err(valid_filter)?),
        None => None,
    };
    let text_match = e.child(&names::TEXT_MATCH).map(text_match).transpose()?;
    let param_filters = e
        .children_named(&names::PARAM_FILTER)
        .map(param_filter)
        .collect::<Result<Vec<_>, _>>()?;
    if is_not_defined && (time_range.is_some() || text_match.is_some() || !param_filters.is_empty())
    {
        return Err(valid_filter(format!(
            "prop-filter {name}: is-not-defined cannot be combined with other tests"
        )));
    }
    if time_range.is_some() && text_match.is_some() {
        return Err(valid_filter(format!(
            "prop-filter {name}: time-range and text-match cannot be combined"
        )));
    }
    Ok(PropFilter {
        name,
        is_not_defined,
        time_range,
        text_match,
        param_filters,
    })
}

fn param_filter(e: &Element) -> Result<ParamFilter, DavError> {
    check_known(e, &[&names::IS_NOT_DEFINED, &names::TEXT_MATCH])?;
    let name = required_name(e).map_err(valid_filter)?;
    let is_not_defined = e.child(&names::IS_NOT_DEFINED).is_some();
    let text_match = e.child(&names::TEXT_MATCH).map(text_match).transpose()?;
    if is_not_defined && text_match.is_some() {
        return Err(valid_filter(format!(
            "param-filter {name}: is-not-defined cannot be combined with text-match"
        )));
    }
    Ok(ParamFilter {
        name,
        is_not_defined,
        text_match,
    })
}

fn text_match(e: &Element) -> Result<TextMatch, DavError> {
    let collation = match e.attr("collation") {
        None => Collation::default(),
        Some(c) => Collation::parse(c.trim()).ok_or_else(|| {
            DavError::condition(
                Condition::SupportedCollation,
                format!("collation {c:?} is not supported; use i;ascii-casemap, i;octet or i;unicode-casemap"),
            )
        })?,
    };
    let negate = match e.attr("negate-condition").map(str::trim) {
        None | Some("no") => false,
        Some("yes") => true,
        Some(other) => {
            return Err(valid_filter(format!(
                "negate-condition must be yes or no, not {other:?}"
            )))
        }
    };
    Ok(TextMatch {
        text: e.text(),
        collation,
        negate,
    })
}

/// Reads the `start`/`end` attributes of a time-range-like element.
fn time_range(e: &Element) -> Result<TimeRange, String> {
    let start = e.attr("start").map(parse_utc).transpose()?;
    let end = e.attr("end").map(parse_utc).transpose()?;
    if start.is_none() && end.is_none() {
        return Err(format!("<C:{}> needs start or end", e.name.local));
    }
    if let (Some(s), Some(en)) = (start, end) {
        if en <= s {
            return Err(format!("<C:{}> end must be after start", e.name.local));
        }
    }
    Ok(TimeRange { start, end })
}

/// Parses an iCalendar UTC date-time, `YYYYMMDDTHHMMSSZ`. Anything else
/// (a local time, a date, another format) is refused with a reason.
pub fn parse_utc(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let shape_ok = b.len() == 16 && b[8] == b'T' && b[15] == b'Z';
    if !shape_ok {
        return Err(if b.len() == 15 && b.get(8) == Some(&b'T') {
            format!("{s:?} is not in UTC; time ranges must end in Z")
        } else {
            format!("{s:?} is not a UTC date-time (YYYYMMDDTHHMMSSZ)")
        });
    }
    let parts = (
        digits(0..4),
        digits(4..6),
        digits(6..8),
        digits(9..11),
        digits(11..13),
        digits(13..15),
    );
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = parts else {
        return Err(format!("{s:?} is not a UTC date-time (YYYYMMDDTHHMMSSZ)"));
    };
    NaiveDate::from_ymd_opt(y as i32, mo, d)
        .and_then(|date| date.and_hms_opt(h, mi, sec))
        .map(|naive| Utc.from_utc_datetime(&naive))
        .ok_or_else(|| format!("{s:?} is not a valid date-time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(body: &str) -> Result<Report, DavError> {
        parse_report(body.as_bytes())
    }

    #[test]
    fn utc_parsing() {
        let t = parse_utc("20240301T101500Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-03-01T10:15:00+00:00");
        assert!(parse_utc("20240301T101500")
            .unwrap_err()
            .contains("not in UTC"));
        assert!(parse_utc("20240301").is_err());
        assert!(parse_utc("20240231T000000Z").is_err());
        assert!(parse_utc("2024-03-01T10:15:00Z").is_err());
        assert!(parse_utc("+0240301T101500Z").is_err());
    }

    #[test]
    fn time_range_overlap_rules() {
        let r = TimeRange {
            start: Some(parse_utc("20240301T000000Z").unwrap()),
            end: Some(parse_utc("20240302T000000Z").unwrap()),
        };
        let t = |s: &str| parse_utc(s).unwrap();
        assert!(r.overlaps(t("20240229T230000Z"), t("20240301T010000Z")));
        assert!(
            !r.overlaps(t("20240229T230000Z"), t("20240301T000000Z")),
            "end is exclusive"
        );
        assert!(!r.overlaps(t("20240302T000000Z"), t("20240302T010000Z")));
        assert!(
            r.overlaps(t("20240301T000000Z"), t("20240301T000000Z")),
            "zero length at start"
        );
        assert!(!r.overlaps(t("20240302T000000Z"), t("20240302T000000Z")));
        let open = TimeRange {
            start: None,
            end: Some(t("20240301T000000Z")),
        };
        assert!(open.overlaps(t("19700101T000000Z"), t("19700102T000000Z")));
    }

    #[test]
    fn unknown_report_is_supported_report_error() {
        let e = report(r#"<D:acl-principal-prop-set xmlns:D="DAV:"/>"#).unwrap_err();
        assert_eq!(e.status, 403);
        assert_eq!(e.condition, Some(Condition::SupportedReport));
        assert!(e.message.contains("{DAV:}acl-principal-prop-set"));
    }

    #[test]
    fn filter_validation() {
        let q = |filter: &str| {
            report(&format!(
                r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter>{filter}</C:filter></C:calendar-query>"#
            ))
        };
        let cond = |r: Result<Report, DavError>| r.unwrap_err().condition;
        assert_eq!(
            cond(q(r#"<C:comp-filter name="VEVENT"/>"#)),
            Some(Condition::ValidFilter)
        );
        assert_eq!(cond(q("")), Some(Condition::ValidFilter));
        assert_eq!(
            cond(q(
                r#"<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20240101T000000"/></C:comp-filter></C:comp-filter>"#
            )),
            Some(Condition::ValidFilter)
        );
        assert_eq!(
            cond(q(
                r#"<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match collation="i;klingon">x</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter>"#
            )),
            Some(Condition::SupportedCollation)
        );
        assert_eq!(
            cond(q(
                r#"<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:is-not-defined/><C:prop-filter name="X"/></C:comp-filter></C:comp-filter>"#
            )),
            Some(Condition::ValidFilter)
        );
        assert_eq!(
            cond(q(
                r#"<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:regex>.*</C:regex></C:comp-filter></C:comp-filter>"#
            )),
            Some(Condition::SupportedFilter)
        );
        assert_eq!(
            cond(q(
                r#"<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20240102T000000Z" end="20240101T000000Z"/></C:comp-filter></C:comp-filter>"#
            )),
            Some(Condition::ValidFilter)
        );
        assert!(q(r#"<C:comp-filter name="vcalendar"><C:comp-filter name="VEVENT"><X:y xmlns:X="urn:x"/></C:comp-filter></C:comp-filter>"#).is_ok());
    }

    #[test]
    fn calendar_data_selection_applies() {
        let r = report(
            r#"<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
              <D:prop><C:calendar-data><C:comp name="VCALENDAR"><C:prop name="VERSION"/>
                <C:comp name="VEVENT"><C:prop name="SUMMARY"/><C:prop name="UID"/><C:prop name="ATTACH" novalue="yes"/></C:comp>
              </C:comp></C:calendar-data></D:prop>
              <D:href>/a.ics</D:href></C:calendar-multiget>"#,
        )
        .unwrap();
        let Report::CalendarMultiget(m) = r else {
            panic!()
        };
        let cal = crate::ics::parse(
            b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTIMEZONE\r\nTZID:X\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:1\r\nSUMMARY:s\r\nDTSTART:20240101T000000Z\r\nATTACH;FMTTYPE=text/plain:http://x\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        )
        .unwrap();
        let out = m.calendar_data.unwrap().select(&cal);
        let text = String::from_utf8(out.to_ics()).unwrap();
        assert_eq!(
            text,
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:1\r\nSUMMARY:s\r\nATTACH;FMTTYPE=text/plain:\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        );
    }

    #[test]
    fn unsupported_calendar_data_type() {
        let e = report(
            r#"<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data content-type="application/calendar+json"/></D:prop></C:calendar-multiget>"#,
        )
        .unwrap_err();
        assert_eq!(e.condition, Some(Condition::SupportedCalendarData));
    }

    #[test]
    fn sync_collection_details() {
        let r = report(
            r#"<sync-collection xmlns="DAV:"><sync-token/><prop><getetag/></prop></sync-collection>"#,
        )
        .unwrap();
        let Report::SyncCollection(s) = r else {
            panic!()
        };
        assert_eq!(s.sync_token, "");
        assert_eq!(s.level, SyncLevel::One);
        assert_eq!(s.limit, None);
        assert!(report(r#"<sync-collection xmlns="DAV:"><sync-token/><sync-level>2</sync-level></sync-collection>"#).is_err());
        assert!(report(r#"<sync-collection xmlns="DAV:"><sync-token/><limit><nresults>-1</nresults></limit></sync-collection>"#).is_err());
    }
}
