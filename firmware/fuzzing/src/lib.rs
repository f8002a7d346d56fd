//! The checks behind every fuzz target, as plain functions of a byte slice.
//!
//! Why a crate of its own: the fuzz targets in `fuzz/` need libFuzzer (and a nightly-only
//! instrumentation flag), the replay test must run on stable in `cargo test --workspace`. Both call
//! the same [`TARGETS`], so every input the fuzzer ever found interesting (the committed corpus)
//! and every crash it found (`fuzz/regressions/`) stays a test.
//!
//! Each check panics only when a property fails: decoding or parsing panicked, a round trip did
//! not give back what was encoded, or an error did not say where.

pub mod codec;
pub mod config;
pub mod expr;
pub mod http;
pub mod modbus;
pub mod wal;

/// One fuzz target: its name (the file in `fuzz/fuzz_targets/` and the corpus directory) and
/// its check.
pub struct Target {
    pub name: &'static str,
    pub check: fn(&[u8]),
}

/// Every target, in the order `scripts/fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "modbus_rtu",
        check: modbus::check_rtu,
    },
    Target {
        name: "modbus_tcp",
        check: modbus::check_tcp,
    },
    Target {
        name: "register_codec",
        check: codec::check,
    },
    Target {
        name: "csv_tables",
        check: config::check_csv,
    },
    Target {
        name: "yaml_configs",
        check: config::check_yaml,
    },
    Target {
        name: "rule_expr",
        check: expr::check,
    },
    Target {
        name: "wal_recovery",
        check: wal::check,
    },
    Target {
        name: "http_bodies",
        check: http::check,
    },
];

/// The check of target `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|t| t.name == name).map(|t| t.check)
}
