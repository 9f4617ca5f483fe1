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
//! # Use from a handler
//! ```
//! use calbridge::dav::request::Depth;
//! use calbridge::dav::{self, names, DavError, Multistatus, PropFind, PropStats, PropValue};
//!
//! fn propfind(depth: Option<&str>, body: &[u8]) -> Result<Vec<u8>, DavError> {
//!     let _depth = Depth::parse(depth)?.unwrap_or(Depth::Infinity);
//!     let wanted = match dav::parse_propfind(body)? {
//!         PropFind::Prop(names) => names,
//!         PropFind::AllProp { include } => [vec![names::DISPLAYNAME], include].concat(),
//!         PropFind::PropName => vec![names::DISPLAYNAME, names::GETCTAG],
//!     };
//!     let mut stats = PropStats::new();
//!     for name in wanted {
//!         match name {
//!             n if n == names::DISPLAYNAME => stats.found(n, PropValue::Text("Work".into())),
//!             n if n == names::GETCTAG => stats.found(n, PropValue::Text("\"42\"".into())),
//!             n => stats.not_found(n),
//!         }
//!     }
//!     let mut ms = Multistatus::new();
//!     ms.response("/dav/calendars/s1/appointments/", stats.as_slice());
//!     Ok(ms.finish()) // 207, Content-Type: application/xml; charset=utf-8
//! }
//!
//! let body = br#"<d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/">
//!   <d:prop><d:displayname/><cs:getctag/><d:getetag/></d:prop></d:propfind>"#;
//! let xml = String::from_utf8(propfind(Some("0"), body).unwrap()).unwrap();
//! assert!(xml.contains("<CS:getctag>\"42\"</CS:getctag>"));
//! assert!(xml.contains("HTTP/1.1 404 Not Found"));
//!
//! // Errors: answer `e.status`; body `e.to_xml()` (application/xml) when
//! // there is a condition, else `e.message` as text/plain.
//! let e = propfind(None, b"<!DOCTYPE x><x/>").unwrap_err();
//! assert_eq!((e.status, e.to_xml()), (400, None));
//! ```
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
pub use filter::TimeRangeTest;
pub use name::{names, QName, NS_CALDAV, NS_CALSERVER, NS_DAV, NS_ICAL};
pub use request::{
    parse_mkcalendar, parse_mkcol, parse_propfind, parse_proppatch, parse_report, PropFind, Report,
};
pub use response::{Multistatus, Prop, PropStat, PropStats, PropValue};
