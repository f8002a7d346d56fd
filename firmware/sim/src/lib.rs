//! `voltage-sim`: a Modbus TCP slave simulator with fault injection.
//!
//! The firmware talks to field devices over Modbus; integration tests, the demo and
//! load benchmarks need devices that can be told to misbehave on cue (answer
//! slowly, never answer, raise exceptions on part of a range) and that can serve
//! hundreds of units from one process. Off-the-shelf simulators do not inject
//! faults per unit and range, so this crate implements the protocol directly:
//!
//! - [`bank`]: the shared, sparse register tables and the fault plan;
//! - [`pdu`]: the transport-independent request engine ([`handle_pdu`]);
//! - [`mbap`]: Modbus TCP framing;
//! - [`server`]: the tokio listener ([`SimServer`]);
//! - [`rtu`]: the same engine on a serial line ([`RtuServer`]), e.g. one end of a socat pty pair;
//! - [`preset`]: `UNIT:TABLE:ADDR=VALUE` seeds and the demo animation;
//! - [`control`]: runtime fault control over a line-based TCP socket (`--control ADDR`).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use voltage_sim::{Bank, SimServer};
//! let bank = Bank::new();
//! bank.set_holdings(1, 0, &[230, 231, 229]);
//! bank.set_silent(2, true); // unit 2 is "dead"
//! let server = SimServer::bind("127.0.0.1:0".parse().unwrap(), bank).await?;
//! println!("serving on {}", server.local_addr());
//! server.stop().await;
//! # Ok(()) }
//! ```

pub mod bank;
pub mod control;
pub mod mbap;
pub mod pdu;
pub mod preset;
pub mod rtu;
pub mod server;

pub use bank::{Bank, Corruption, Table};
pub use control::{Command, CommandError, ControlServer};
pub use mbap::FrameError;
pub use pdu::handle_pdu;
pub use preset::{Animator, Preset, PresetError};
pub use rtu::RtuServer;
pub use server::{ConnectionError, SimServer};
