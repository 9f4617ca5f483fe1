//! `cargo fuzz run dav_request`: see [`calbridge::fuzzing::dav_request`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| calbridge::fuzzing::dav_request(data));
