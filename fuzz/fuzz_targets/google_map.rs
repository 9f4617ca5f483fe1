//! `cargo fuzz run google_map`: see [`calbridge::fuzzing::google_map`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| calbridge::fuzzing::google_map(data));
