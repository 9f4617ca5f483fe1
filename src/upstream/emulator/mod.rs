//! An emulator of Google Calendar v3, Microsoft Graph v1.0 and their OAuth
//! endpoints, faithful to the providers' wire contracts. Used by tests,
//! `calbridge demo`, `calbridge fake-upstream` and the benchmarks.
