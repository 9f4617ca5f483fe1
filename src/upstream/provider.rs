//! What the sync engine needs from a provider, independent of its wire
//! shapes: identity, calendar list, incremental pull (pages of changes to
//! series), and the mapping of a series' provider JSON to one iCalendar
//! object.
//!
//! A *series* is what calbridge stores as one calendar object resource: a
//! one-off event, or a recurring master with its exceptions. Providers hand
//! out pieces (Google: master and exception events; Graph: instances, from
//! which masters are fetched); the engine keeps every piece's JSON in
//! `remote_items` and rebuilds the object from all pieces of a series when
//! any piece changes.

use serde::{Deserialize, Serialize};

use super::UpstreamError;
use crate::model::account::RemoteCalendar;
use crate::model::Timestamp;

/// One change in a page of a pull.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteChange {
    /// A piece of a series was created or changed. `item` is the piece's
    /// own id (the master's id for the master); `json` its provider JSON.
    Upsert {
        series: String,
        item: String,
        json: Vec<u8>,
    },
    /// One piece is gone. For the master (`item == series`) the whole
    /// series is gone.
    Remove { series: String, item: String },
    /// A provider id was removed and the provider does not say which series
    /// it belonged to (Graph's `@removed`): the engine looks it up.
    RemoveUnknown { item: String },
    /// A piece the provider sent but that cannot be used (garbage, a
    /// missing field): the page goes on, the status names it.
    Skip { item: String, reason: String },
    /// Something in this series changed (Graph reports instances, not
    /// series): the engine fetches the series whole before applying.
    SeriesTouched { series: String },
    /// Every piece of a series, fetched whole; replaces what is stored.
    ReplaceSeries {
        series: String,
        items: Vec<(String, Vec<u8>)>,
    },
}

/// Where an incremental pull resumes. Opaque to the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The provider's sync/delta token (or link) once a full pass ended.
    pub token: Option<String>,
    /// A page to resume an unfinished pass from.
    pub page: Option<String>,
    /// Unix seconds the pass in progress started (its window start).
    #[serde(default)]
    pub window_start: Option<Timestamp>,
}

/// The iCalendar object built from one series.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedSeries {
    pub uid: String,
    pub ics: Vec<u8>,
    pub start: Timestamp,
    pub end: Timestamp,
    pub recurring: bool,
    /// The master's etag and last-modified time upstream.
    pub etag: Option<String>,
    pub updated: Option<Timestamp>,
    /// Pieces of the series that were left out, with the reason.
    pub warnings: Vec<String>,
    /// calbridge's marker on the upstream copy (`"<event id>;<etag>"`):
    /// present when calbridge wrote this series.
    pub origin: Option<String>,
}

/// Why a series could not be mapped at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MapError(pub String);

/// One page of changes, as a pull delivers it.
#[derive(Debug, Default)]
pub struct Page {
    pub changes: Vec<RemoteChange>,
    /// The cursor to store once this page is applied.
    pub cursor: Cursor,
    /// True for the last page of a pass.
    pub done: bool,
}

/// The calendar list entry a provider returns, plus its access role.
pub type Calendars = Vec<RemoteCalendar>;

/// Errors of a pull that change what the engine does next.
pub fn is_resync(e: &UpstreamError) -> bool {
    matches!(e, UpstreamError::Gone(_))
}
