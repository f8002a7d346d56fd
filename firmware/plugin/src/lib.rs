//! The plugin contract (`proto/voltage/plugin/v1/plugin.proto`) as Rust types: the client comsrv
//! polls plugins with, and the server trait a plugin written in Rust implements.
//!
//! Why a crate of its own: comsrv and every Rust plugin must agree on the same generated code,
//! and a plugin must not depend on comsrv (or Redis) to get it.

#![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]

/// Package `voltage.plugin.v1`.
pub mod v1 {
    tonic::include_proto!("voltage.plugin.v1");
}

/// The package name a plugin reports in `PluginInfo.contract`.
pub const CONTRACT: &str = "voltage.plugin.v1";
