#![no_main]
//! Fuzz target `modbus_tcp`: the check is in firmware/fuzzing (shared with the corpus replay test).

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| fuzzing::target("modbus_tcp").expect("known target")(data)
);
