#![no_main]
//! Fuzz target `rule_expr`: the check is in firmware/fuzzing (shared with the corpus replay test).

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| fuzzing::target("rule_expr").expect("known target")(data)
);
