//! Upstream providers: Google Calendar v3 and Microsoft Graph clients, the
//! mapping between their JSON and iCalendar, and the emulator of both.
//!
//! Every call goes through [`http::Upstream`] (classification, retry,
//! backoff); OAuth goes through [`oauth::OauthClient`].

pub mod emulator;
pub mod google;
pub mod graph;
pub mod http;
pub mod oauth;
pub mod provider;

pub use http::{RetryPolicy, Upstream, UpstreamError};
