#![no_main]
//! Fuzz target `http_bodies`: the check is in firmware/fuzzing (shared with the corpus replay test).

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| fuzzing::target("http_bodies").expect("known target")(data)
);
