#![no_main]
//! Fuzz target `csv_tables`: the check is in firmware/fuzzing (shared with the corpus replay test).

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| fuzzing::target("csv_tables").expect("known target")(data)
);
