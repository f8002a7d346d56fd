#![no_main]
//! Fuzz target `wal_recovery`: the check is in firmware/fuzzing (shared with the corpus replay test).

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| fuzzing::target("wal_recovery").expect("known target")(data)
);
