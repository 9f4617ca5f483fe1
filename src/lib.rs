//! calbridge: ICS feeds and CalDAV for a scheduling platform's staff, kept in
//! sync with Google Calendar and Microsoft Graph.
//!
//! # Layout
//! - [`config`]: raw settings (TOML, environment, flags) validated into a
//!   [`config::Config`] the rest of the program trusts.
//! - [`model`]: companies, groups, staff, calendars, events, feeds, accounts:
//!   plain data.
//! - [`ics`]: iCalendar parse / serialize / time zones / recurrence (pure).
//! - [`dav`]: WebDAV + CalDAV request parsing and multistatus writing (pure).
//! - [`store`]: the `Store` trait, its sled implementation and the typed
//!   [`store::Db`] that owns every key layout and index.
//! - [`feed`]: rendering ICS feeds (pure) and their cache.
//! - [`http`]: the server: router, auth, admin API, feeds, CalDAV, OAuth.
//! - [`upstream`]: Google and Graph clients, mapping, and the emulator.
//! - [`sync`]: scheduler, incremental pull, outbox push, conflict policy.
//! - [`crypto`]: tokens, hashes, password hashing, encryption at rest.
//! - [`objects`]: stored calendar objects through the ics engine (analysis,
//!   VTIMEZONE blocks, instance starts).
//! - [`freebusy`]: busy periods over appointments and conflict calendars.
//! - [`server`]: a whole server assembled from a config (serve, demo, tests).
//! - [`backup`]: consistent online backups and restore.
//! - [`demo`]: the sample company `calbridge demo` runs.
//! - [`fuzzing`]: the properties the `cargo fuzz` targets check, shared with
//!   the regression tests that replay saved crash inputs.

pub mod backup;
pub mod config;
pub mod crypto;
pub mod dav;
pub mod demo;
pub mod feed;
pub mod freebusy;
pub mod fuzzing;
pub mod http;
pub mod ics;
pub mod model;
pub mod objects;
pub mod server;
pub mod store;
pub mod sync;
pub mod upstream;
