//! calbridge's integration tests, one module per area, built as one test
//! binary: one link instead of twenty-odd (a clean `cargo test` is faster
//! and takes a fraction of the disk). Run one area with
//! `cargo test --test it <module>::`, e.g. `cargo test --test it caldav::`.
//!
//! `common` starts an in-process server (and the in-process emulator);
//! `child` runs the real `calbridge` binary as a child process (crash
//! safety, load, secrets); `rawhttp` speaks HTTP/1.1 over a bare socket
//! for what reqwest will not send.

mod child;
mod common;
mod rawhttp;

mod api;
mod backup;
mod bidirectional;
mod bidirectional_caldav;
mod caldav;
mod corpus;
mod crash_safety;
mod dav_golden;
mod emulator_google;
mod emulator_graph;
mod feeds;
mod fuzz_regressions;
mod google_sync;
mod google_write;
mod graph_sync;
mod graph_write;
mod hostile;
mod isolation;
mod keepalive;
mod load;
mod outbox_crash;
mod secrets;
