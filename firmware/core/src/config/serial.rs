//! Serial line settings of RTU channels, and board configurations that map logical port names
//! (`rs485-1`) to device paths and their RS-485 settings.
//!
//! Why boards: the same site configuration is flashed onto different controller models, whose
//! RS-485 ports are different UARTs (`/dev/ttymxc2` here, `/dev/ttyS1` there) with different
//! driver-enable wiring. Channels name the port as printed on the housing; the board file, chosen
//! per device in `voltage.yaml` (`board:`), supplies the rest.

use crate::error::ConfigError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Kernel RS-485 mode (`TIOCSRS485`), see `Documentation/driver-api/serial/serial-rs485.rst`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rs485Config {
    pub enabled: bool,
    /// Logical level of RTS while sending (drives the transceiver's DE pin).
    pub rts_on_send: bool,
    /// Logical level of RTS after sending.
    pub rts_after_send: bool,
    /// Delay between RTS assertion and the first bit, ms.
    pub delay_before_send_ms: u32,
    /// Delay between the last bit and RTS release, ms.
    pub delay_after_send_ms: u32,
    /// Keep receiving while sending (echo of own frames).
    pub rx_during_tx: bool,
}

impl Default for Rs485Config {
    fn default() -> Self {
        Rs485Config {
            enabled: true,
            rts_on_send: true,
            rts_after_send: false,
            delay_before_send_ms: 0,
            delay_after_send_ms: 0,
            rx_during_tx: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// Everything needed to open and time a serial line. Channels with equal `device` share one
/// line and must agree on the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SerialSettings {
    pub device: String,
    /// The logical name it was resolved from, if any.
    pub port_name: Option<String>,
    pub baud_rate: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: u8,
    pub rs485: Option<Rs485Config>,
}

impl SerialSettings {
    pub fn bits_per_char(&self) -> u32 {
        crate::rtu::bits_per_char(self.data_bits, self.parity != Parity::None, self.stop_bits)
    }

    /// Short text such as `9600 8N1`.
    pub fn describe(&self) -> String {
        let p = match self.parity {
            Parity::None => 'N',
            Parity::Even => 'E',
            Parity::Odd => 'O',
        };
        format!(
            "{} {}{}{}",
            self.baud_rate, self.data_bits, p, self.stop_bits
        )
    }
}

/// One port of a board.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardPort {
    pub device: String,
    #[serde(default)]
    pub description: String,
    pub rs485: Option<Rs485Config>,
}

/// `board-configs/<board>.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    pub board: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub ports: BTreeMap<String, BoardPort>,
}

/// Parses a board file, with located errors.
pub fn parse_board(file: &str, text: &str) -> Result<Board, ConfigError> {
    toml::from_str::<Board>(text).map_err(|e| match e.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            ConfigError::at(file, line, col, e.message().to_string())
        }
        None => ConfigError::file(file, e.message().to_string()),
    })
}

fn line_col(text: &str, offset: usize) -> (u64, u64) {
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
mod tests {
    use super::*;

    #[test]
    fn a_board_maps_logical_ports_to_devices() {
        let b = parse_board(
            "b.toml",
            "board = \"x\"\n[ports.rs485-1]\ndevice = \"/dev/ttymxc2\"\n[ports.rs485-1.rs485]\ndelay_before_send_ms = 1\n",
        )
        .unwrap();
        let p = &b.ports["rs485-1"];
        assert_eq!(p.device, "/dev/ttymxc2");
        let r = p.rs485.as_ref().unwrap();
        assert!(r.enabled && r.rts_on_send && !r.rts_after_send);
        assert_eq!(r.delay_before_send_ms, 1);
    }

    #[test]
    fn an_unknown_board_key_is_located() {
        let e = parse_board(
            "b.toml",
            "board = \"x\"\n[ports.a]\ndevice = \"/dev/x\"\nbaud = 9600\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("b.toml:4:1: unknown field `baud`"),
            "{e}"
        );
    }
}
