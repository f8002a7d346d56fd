#![no_main]
//! Fuzz target `modbus_rtu`: the check is in firmware/fuzzing (shared with the corpus replay test).

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| fuzzing::target("modbus_rtu").expect("known target")(data)
);
