#![no_main]
//! Fuzz target `yaml_configs`: the check is in firmware/fuzzing (shared with the corpus replay test).

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| fuzzing::target("yaml_configs").expect("known target")(data)
);
