//! Serial line settings of RTU channels, resolved from a channel's parameters and, for a
//! logical port name (`rs485-1`), from the board file (see [`super::board`]).

use super::{Board, ChannelConfig};
use serde::{Deserialize, Serialize};

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

/// The line settings of an RTU channel: its parameters, with a logical port name resolved
/// through the board (whose RS-485 settings apply unless the channel gives its own).
pub(super) fn resolve_serial(
    cfg: &ChannelConfig,
    board: Option<&Board>,
) -> Result<SerialSettings, String> {
    let p = &cfg.parameters;
    let name = p.device.clone().unwrap_or_default();
    let (device, port_name, board_rs485) = if name.starts_with('/') {
        (name, None, None)
    } else {
        let Some(board) = board else {
            return Err(format!(
                "parameters.device {name:?} is a port name, but voltage.yaml names no board (board: path/to/board.toml)"
            ));
        };
        let Some(port) = board.ports.get(&name) else {
            let known: Vec<&str> = board.ports.keys().map(String::as_str).collect();
            return Err(format!(
                "parameters.device {name:?} is not a port of board {:?}; its ports are: {}",
                board.board,
                known.join(", ")
            ));
        };
        (port.device.clone(), Some(name), port.rs485.clone())
    };
    Ok(SerialSettings {
        device,
        port_name,
        baud_rate: p.baud_rate.unwrap_or(9600),
        data_bits: p.data_bits.unwrap_or(8),
        parity: p.parity.unwrap_or(Parity::None),
        stop_bits: p.stop_bits.unwrap_or(1),
        rs485: p.rs485.clone().or(board_rs485),
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse_board;

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
