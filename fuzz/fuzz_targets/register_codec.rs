#![no_main]
//! Fuzz target `register_codec`: the check is in firmware/fuzzing (shared with the corpus replay test).

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| fuzzing::target("register_codec").expect("known target")(data)
);
