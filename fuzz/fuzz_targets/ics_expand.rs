//! `cargo fuzz run ics_expand`: see [`calbridge::fuzzing::ics_expand`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| calbridge::fuzzing::ics_expand(data));
