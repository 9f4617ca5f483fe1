//! Upstream providers: Google Calendar v3 and Microsoft Graph clients, the
//! mapping between their JSON and iCalendar, and the emulator of both.

pub mod emulator;
