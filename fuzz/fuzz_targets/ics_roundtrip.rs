//! `cargo fuzz run ics_roundtrip`: see [`calbridge::fuzzing::ics_roundtrip`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| calbridge::fuzzing::ics_roundtrip(data));
