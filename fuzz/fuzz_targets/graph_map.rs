//! `cargo fuzz run graph_map`: see [`calbridge::fuzzing::graph_map`] for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| calbridge::fuzzing::graph_map(data));
