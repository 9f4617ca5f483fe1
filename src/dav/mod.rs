//! WebDAV (RFC 4918) and CalDAV (RFC 4791, RFC 6578) protocol: request
//! bodies parse into typed values, responses are written from typed values.
//! No I/O, no store, no hyper/axum/tokio: the HTTP handlers call in here
//! with bytes and header strings and get values or bytes back.
//!
//! # Layout
//! - [`xml`]: the safe XML reader (no DOCTYPE, no entities, bounded depth
//!   and size, UTF-8 only) and the element tree it builds.
//! - [`name`]: [`QName`] and the DAV:, CalDAV, CalendarServer and Apple
//!   iCal vocabularies ([`names`]).
//! - [`request`]: PROPFIND, PROPPATCH, MKCALENDAR, extended MKCOL and REPORT
//!   bodies; `Depth`, `If-Match`/`If-None-Match`, `Prefer` headers.
//! - [`filter`]: calendar-query filter evaluation against an
//!   [`crate::ics::Component`], with time ranges answered by the caller
//!   ([`filter::TimeRangeTest`]).
//! - [`response`]: the multistatus writer and [`PropValue`].
//! - [`error`]: [`DavError`] (status + [`Condition`] + message) and its
//!   `<D:error>` body.
//! - [`href`]: percent-decoding of request hrefs and encoding of ours.
//!
//! # Invariants
//! - Every request byte passes through [`xml::parse`] before any meaning is
//!   given to it; nothing here resolves external entities, ever.
//! - Every string written goes through one escaping function; a property
//!   value can never produce markup.
//! - Paths are decoded on the way in and encoded on the way out, nowhere else.

pub mod error;
pub mod filter;
pub mod href;
pub mod name;
pub mod request;
pub mod response;
pub mod xml;

pub use error::{Condition, DavError};
pub use filter::{matches, TimeRangeTest};
pub use name::{names, QName, NS_CALDAV, NS_CALSERVER, NS_DAV, NS_ICAL};
pub use request::{
    parse_mkcalendar, parse_mkcol, parse_propfind, parse_proppatch, parse_report, PropFind, Report,
};
pub use response::{Multistatus, Prop, PropStat, PropStats, PropValue};
