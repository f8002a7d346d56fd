//! Core of the VoltageEMS edge firmware: configuration types, point tables, value codecs,
//! read planning and the pure state machines the services drive.
//!
//! Why a separate crate: everything here is deterministic and testable without Redis, sockets
//! or a clock. Services own the I/O loops and feed this crate's functions with what they read.
//! The only I/O in this crate is reading configuration files in [`config::load_dir`], so that
//! `voltage check-config` and the running daemon share one parser and one set of error messages.

pub mod codec;
pub mod command;
pub mod config;
mod csvfile;
pub mod error;
pub mod expr;
pub mod health;
pub mod plan;
pub mod points;
pub mod rtu;
pub mod time;
pub mod types;
pub mod virt;

pub use error::{ConfigError, ConfigErrors};
pub use types::{ByteOrder, DataType, PointType};
