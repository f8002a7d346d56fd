//! Board files (`board-configs/<board>.toml`): what one controller model is: its Rust target and
//! Yocto MACHINE, its serial ports by the names printed on the housing with their RS-485
//! direction control, its CAN interfaces and GPIO lines, and the defaults a configuration gets
//! on it (where the data partition is, how Redis is reached).
//!
//! Why boards: the same site configuration is flashed onto different controller models, whose
//! RS-485 ports are different UARTs (`/dev/ttymxc2` here, `/dev/ttyS1` there) with different
//! driver-enable wiring. Channels name the port; the board file, chosen per device in
//! `voltage.yaml` (`board:`) or with `voltage run --board`, supplies the rest.
//!
//! [`check_board`] is what `voltage check-board` runs: the TOML must parse (located errors), and
//! the content must make sense for the kernel (RS-485 delays the serial core accepts, a
//! direction control that actually toggles, a CAN bitrate controllers support, ...).

use super::Rs485Config;
use crate::error::{ConfigError, ConfigErrors};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The board file format this firmware reads. A newer file is refused (a firmware rolled back
/// by the A/B update must not guess at keys it does not know).
pub const BOARD_SCHEMA: u32 = 1;

/// Rust targets the firmware is built and tested for (`scripts/cross-build`).
pub const RUST_TARGETS: &[&str] = &[
    "aarch64-unknown-linux-gnu",
    "aarch64-unknown-linux-musl",
    "armv7-unknown-linux-gnueabihf",
    "x86_64-unknown-linux-gnu",
];

/// The serial core clamps `delay_rts_before_send`/`after_send` to this (RS485_MAX_RTS_DELAY).
pub const MAX_RTS_DELAY_MS: u32 = 100;

/// CAN bitrates the usual controllers (FlexCAN, M_CAN, MCP251x) support.
pub const CAN_BITRATES: &[u32] = &[
    10_000, 20_000, 50_000, 100_000, 125_000, 250_000, 500_000, 800_000, 1_000_000,
];

/// `board-configs/<board>.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    #[serde(default = "first_schema")]
    pub schema_version: u32,
    pub board: String,
    #[serde(default)]
    pub description: String,
    /// What the image for this board is built for (absent on development boards).
    pub target: Option<BoardTarget>,
    #[serde(default)]
    pub ports: BTreeMap<String, BoardPort>,
    #[serde(default)]
    pub can: BTreeMap<String, CanPort>,
    #[serde(default)]
    pub gpio: BTreeMap<String, GpioLine>,
    /// Configuration defaults on this board; `voltage.yaml` keys win.
    #[serde(default)]
    pub defaults: BoardDefaults,
}

fn first_schema() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardTarget {
    /// Rust target triple, e.g. `aarch64-unknown-linux-gnu`.
    pub rust_target: String,
    /// Yocto `MACHINE`, e.g. `raspberrypi4-64` (the kas file of the same name builds it).
    pub yocto_machine: String,
}

/// Who drives the RS-485 transceiver's driver-enable (DE) pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The UART's RTS line, toggled by the kernel in RS-485 mode.
    Rts,
    /// A GPIO the kernel toggles in RS-485 mode (device tree `rts-gpios` on the UART).
    Gpio,
    /// The transceiver switches by itself (auto-direction HATs, USB adapters).
    Auto,
}

/// One serial port of a board.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardPort {
    pub device: String,
    #[serde(default)]
    pub description: String,
    pub rs485: Option<Rs485Config>,
    /// Default: `rts` when kernel RS-485 mode is enabled, none otherwise.
    pub direction: Option<Direction>,
    /// `direction = "gpio"`: the pin as `<gpiochip>:<line>`, e.g. `gpiochip0:17`. It must be the
    /// UART's `rts-gpios` in the device tree; it is listed here so `check-board` and the
    /// commissioning sheet agree with the wiring.
    pub direction_gpio: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanPort {
    /// Network interface, e.g. `can0`.
    pub interface: String,
    pub bitrate: u32,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpioDirection {
    Input,
    Output,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioLine {
    pub chip: String,
    pub line: u32,
    pub direction: GpioDirection,
    #[serde(default)]
    pub active_low: bool,
    #[serde(default)]
    pub description: String,
}

/// The board's overlay on the configuration defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardDefaults {
    /// Where the daemon keeps data that must survive updates (the data partition).
    pub data_dir: Option<String>,
    /// How Redis is reached on this board, e.g. `redis+unix:///run/redis/redis.sock`.
    pub redis_url: Option<String>,
}

/// Parses a board file, with located errors (syntax, unknown keys, types).
pub fn parse_board(file: &str, text: &str) -> Result<Board, ConfigError> {
    toml::from_str::<Board>(text).map_err(|e| match e.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            ConfigError::at(file, line, col, e.message().to_string())
        }
        None => ConfigError::file(file, e.message().to_string()),
    })
}

/// Parses and validates a board file: every problem, each at the table it belongs to.
pub fn check_board(file: &str, text: &str) -> Result<Board, ConfigErrors> {
    let board = parse_board(file, text)?;
    let problems = board.problems();
    if problems.is_empty() {
        return Ok(board);
    }
    Err(ConfigErrors(
        problems
            .into_iter()
            .map(|(table, msg)| match find_table(text, &table) {
                Some(line) => ConfigError::at(file, line, 1, msg),
                None => ConfigError::file(file, msg),
            })
            .collect(),
    ))
}

impl Board {
    /// What is wrong with a parsed board: `(table, message)`; the table locates the message.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let top = String::new();
        if self.schema_version == 0 {
            p.push((top.clone(), "schema_version must be 1 or more".into()));
        } else if self.schema_version > BOARD_SCHEMA {
            p.push((top.clone(), format!(
                "schema_version {} is newer than this firmware reads (up to {BOARD_SCHEMA}); use a board file written for this firmware",
                self.schema_version
            )));
        }
        if !is_name(&self.board) {
            p.push((
                top.clone(),
                format!(
                    "board {:?}: use lowercase letters, digits, '-', '_' or '.'",
                    self.board
                ),
            ));
        }
        if let Some(t) = &self.target {
            if !RUST_TARGETS.contains(&t.rust_target.as_str()) {
                p.push((
                    "target".into(),
                    format!(
                        "target.rust_target {:?} is not a target this firmware is built for ({})",
                        t.rust_target,
                        RUST_TARGETS.join(", ")
                    ),
                ));
            }
            if !is_name(&t.yocto_machine) {
                p.push((
                    "target".into(),
                    format!(
                        "target.yocto_machine {:?} is not a Yocto MACHINE name",
                        t.yocto_machine
                    ),
                ));
            }
        }
        let mut devices: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, port) in &self.ports {
            let table = format!("ports.{name}");
            for m in port.problems(name) {
                p.push((table.clone(), m));
            }
            if let Some(other) = devices.insert(&port.device, name) {
                p.push((
                    table.clone(),
                    format!("ports.{name}: device {} is also port {other}", port.device),
                ));
            }
        }
        let mut ifaces: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, c) in &self.can {
            let table = format!("can.{name}");
            if c.interface.is_empty() || c.interface.len() > 15 || c.interface.contains('/') {
                p.push((
                    table.clone(),
                    format!(
                        "can.{name}: interface {:?} is not a network interface name",
                        c.interface
                    ),
                ));
            }
            if !CAN_BITRATES.contains(&c.bitrate) {
                p.push((
                    table.clone(),
                    format!(
                        "can.{name}: bitrate {} is not a CAN bitrate ({})",
                        c.bitrate,
                        CAN_BITRATES
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            if let Some(other) = ifaces.insert(&c.interface, name) {
                p.push((
                    table,
                    format!("can.{name}: interface {} is also {other}", c.interface),
                ));
            }
        }
        for (name, g) in &self.gpio {
            if g.chip.is_empty() {
                p.push((
                    format!("gpio.{name}"),
                    format!("gpio.{name}: chip is empty"),
                ));
            }
        }
        if let Some(d) = &self.defaults.data_dir {
            if !d.starts_with('/') {
                p.push((
                    "defaults".into(),
                    format!("defaults.data_dir {d:?} must be an absolute path"),
                ));
            }
        }
        if let Some(u) = &self.defaults.redis_url {
            if !["redis://", "redis+unix://", "unix://"]
                .iter()
                .any(|s| u.starts_with(s))
            {
                p.push((
                    "defaults".into(),
                    format!(
                        "defaults.redis_url {u:?} must start with redis://, redis+unix:// or unix://"
                    ),
                ));
            }
        }
        p
    }
}

impl BoardPort {
    /// The direction control in effect: as given, else `rts` in kernel RS-485 mode.
    pub fn direction(&self) -> Option<Direction> {
        self.direction.or(match &self.rs485 {
            Some(r) if r.enabled => Some(Direction::Rts),
            _ => None,
        })
    }

    fn problems(&self, name: &str) -> Vec<String> {
        let mut p = Vec::new();
        let at = |m: String| format!("ports.{name}: {m}");
        if name.starts_with('/') {
            p.push(at(
                "a port name cannot start with '/' (channels take such a value as a device path)"
                    .into(),
            ));
        }
        if !self.device.starts_with('/') {
            p.push(at(format!(
                "device {:?} must be an absolute path such as /dev/ttyS1",
                self.device
            )));
        }
        let kernel = self.rs485.as_ref().filter(|r| r.enabled);
        if let Some(r) = kernel {
            for (key, v) in [
                ("delay_before_send_ms", r.delay_before_send_ms),
                ("delay_after_send_ms", r.delay_after_send_ms),
            ] {
                if v > MAX_RTS_DELAY_MS {
                    p.push(at(format!(
                        "rs485.{key} = {v}: the kernel accepts at most {MAX_RTS_DELAY_MS} ms"
                    )));
                }
            }
        }
        match self.direction() {
            Some(Direction::Rts) | Some(Direction::Gpio) => match kernel {
                None => p.push(at(format!(
                    "direction = \"{}\" needs kernel RS-485 mode ([ports.{name}.rs485] enabled = true)",
                    if self.direction() == Some(Direction::Rts) { "rts" } else { "gpio" }
                ))),
                Some(r) if r.rts_on_send == r.rts_after_send => p.push(at(format!(
                    "rs485.rts_on_send and rts_after_send are both {}: the driver-enable pin would never change, so the transceiver would never {}",
                    r.rts_on_send,
                    if r.rts_on_send { "receive" } else { "send" }
                ))),
                Some(_) => {}
            },
            Some(Direction::Auto) if kernel.is_some() => p.push(at(
                "direction = \"auto\": the transceiver switches by itself; set rs485.enabled = false (or remove [rs485]) so RTS is not driven as well"
                    .into(),
            )),
            Some(Direction::Auto) | None => {}
        }
        match (&self.direction_gpio, self.direction()) {
            (Some(g), Some(Direction::Gpio)) => {
                if !valid_gpio(g) {
                    p.push(at(format!(
                        "direction_gpio {g:?}: write <gpiochip>:<line>, e.g. gpiochip0:17"
                    )));
                }
            }
            (None, Some(Direction::Gpio)) => p.push(at(
                "direction = \"gpio\" needs direction_gpio = \"<gpiochip>:<line>\"".into(),
            )),
            (Some(_), _) => p.push(at(
                "direction_gpio is given but direction is not \"gpio\"".into()
            )),
            (None, _) => {}
        }
        p
    }
}

fn valid_gpio(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((chip, line)) => !chip.is_empty() && line.parse::<u32>().is_ok(),
        None => false,
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// 1-based line of the header `[table]` (or `[table.` sub-table); the first line for "".
fn find_table(text: &str, table: &str) -> Option<u64> {
    if table.is_empty() {
        return Some(1);
    }
    let exact = format!("[{table}]");
    let sub = format!("[{table}.");
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.starts_with(&exact) || l.starts_with(&sub)
        })
        .map(|i| i as u64 + 1)
}

pub(crate) fn line_col(text: &str, offset: usize) -> (u64, u64) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() as u64 + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0) as u64
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
