//! The Modbus application layer: one request PDU in, one response PDU (or silence) out.
//!
//! This is deliberately free of any transport: it sees neither the MBAP header nor
//! a socket, so the TCP server and a future RTU framing (address byte + CRC) can
//! share it unchanged. It is also where fault injection lives, so every transport
//! gets silent units and injected exceptions for free; only the response delay is
//! left to the transport, because waiting is an I/O concern.
//!
//! Validation follows the Modbus Application Protocol v1.1b3 order: unsupported
//! function -> 01, malformed body or quantity out of range -> 03, range past
//! address 65535 -> 02. A body whose length does not match what the function code
//! implies is answered with 03 rather than dropped, as the spec asks.

use crate::bank::{Bank, Table};

/// Function codes this simulator implements.
pub mod function {
    /// FC1 Read Coils.
    pub const READ_COILS: u8 = 0x01;
    /// FC2 Read Discrete Inputs.
    pub const READ_DISCRETE_INPUTS: u8 = 0x02;
    /// FC3 Read Holding Registers.
    pub const READ_HOLDING_REGISTERS: u8 = 0x03;
    /// FC4 Read Input Registers.
    pub const READ_INPUT_REGISTERS: u8 = 0x04;
    /// FC5 Write Single Coil.
    pub const WRITE_SINGLE_COIL: u8 = 0x05;
    /// FC6 Write Single Register.
    pub const WRITE_SINGLE_REGISTER: u8 = 0x06;
    /// FC15 Write Multiple Coils.
    pub const WRITE_MULTIPLE_COILS: u8 = 0x0F;
    /// FC16 Write Multiple Registers.
    pub const WRITE_MULTIPLE_REGISTERS: u8 = 0x10;
}

/// Standard exception codes produced by the simulator itself.
pub mod exception {
    /// 01: function code not supported.
    pub const ILLEGAL_FUNCTION: u8 = 0x01;
    /// 02: address range not available.
    pub const ILLEGAL_DATA_ADDRESS: u8 = 0x02;
    /// 03: quantity out of range or malformed request body.
    pub const ILLEGAL_DATA_VALUE: u8 = 0x03;
    /// 04: unrecoverable error while performing the action (injection only).
    pub const SERVER_DEVICE_FAILURE: u8 = 0x04;
}

/// Spec limits on the quantity field.
pub const MAX_READ_BITS: u16 = 2000;
/// FC3/FC4 maximum registers per request.
pub const MAX_READ_REGISTERS: u16 = 125;
/// FC15 maximum coils per request.
pub const MAX_WRITE_BITS: u16 = 1968;
/// FC16 maximum registers per request.
pub const MAX_WRITE_REGISTERS: u16 = 123;

/// A parsed, validated request. `data` slices borrow the request PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request<'a> {
    ReadBits {
        table: Table,
        start: u16,
        qty: u16,
    },
    ReadRegisters {
        table: Table,
        start: u16,
        qty: u16,
    },
    WriteCoil {
        addr: u16,
        on: bool,
    },
    WriteRegister {
        addr: u16,
        value: u16,
    },
    WriteCoils {
        start: u16,
        qty: u16,
        packed: &'a [u8],
    },
    WriteRegisters {
        start: u16,
        qty: u16,
        data: &'a [u8],
    },
}

impl Request<'_> {
    /// The `[start, start + count)` range the request touches, for fault matching.
    fn range(&self) -> (u16, u16) {
        match *self {
            Request::ReadBits { start, qty, .. }
            | Request::ReadRegisters { start, qty, .. }
            | Request::WriteCoils { start, qty, .. }
            | Request::WriteRegisters { start, qty, .. } => (start, qty),
            Request::WriteCoil { addr, .. } | Request::WriteRegister { addr, .. } => (addr, 1),
        }
    }
}

/// Answer one request PDU (function code + body) addressed to `unit`.
///
/// Returns the response PDU, an exception PDU (`function | 0x80`, code), or `None`
/// when the unit is silent or the PDU is empty: the caller must then send nothing.
/// Every call counts towards [`Bank::requests`]. Never panics.
pub fn handle_pdu(bank: &Bank, unit: u8, pdu: &[u8]) -> Option<Vec<u8>> {
    bank.count_request();
    if bank.is_silent(unit) {
        return None;
    }
    let (&function, body) = pdu.split_first()?;
    let request = match parse(function, body) {
        Ok(request) => request,
        Err(code) => return Some(exception_pdu(function, code)),
    };
    let (start, count) = request.range();
    if let Some(code) = bank.injected_exception(unit, function, start, count) {
        return Some(exception_pdu(function, code));
    }
    Some(execute(bank, unit, function, request, body))
}

/// An exception response PDU.
pub fn exception_pdu(function: u8, code: u8) -> Vec<u8> {
    vec![function | 0x80, code]
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// `start + qty` must not pass address 65535 (qty is already >= 1).
fn check_range(start: u16, qty: u16) -> Result<(), u8> {
    if u32::from(start) + u32::from(qty) > 0x1_0000 {
        Err(exception::ILLEGAL_DATA_ADDRESS)
    } else {
        Ok(())
    }
}

/// Parse a `start, qty` pair body (exactly 4 bytes) and check both limits.
fn parse_range(body: &[u8], max_qty: u16) -> Result<(u16, u16), u8> {
    if body.len() != 4 {
        return Err(exception::ILLEGAL_DATA_VALUE);
    }
    let (Some(start), Some(qty)) = (be16(body, 0), be16(body, 2)) else {
        return Err(exception::ILLEGAL_DATA_VALUE);
    };
    if qty == 0 || qty > max_qty {
        return Err(exception::ILLEGAL_DATA_VALUE);
    }
    check_range(start, qty)?;
    Ok((start, qty))
}

/// Parse a multiple-write body: start, qty, byte count, data.
fn parse_multi_write(
    body: &[u8],
    max_qty: u16,
    bytes_for: fn(u16) -> usize,
) -> Result<(u16, u16, &[u8]), u8> {
    let (Some(start), Some(qty), Some(&byte_count)) = (be16(body, 0), be16(body, 2), body.get(4))
    else {
        return Err(exception::ILLEGAL_DATA_VALUE);
    };
    if qty == 0 || qty > max_qty {
        return Err(exception::ILLEGAL_DATA_VALUE);
    }
    let data = body.get(5..).unwrap_or_default();
    if usize::from(byte_count) != bytes_for(qty) || data.len() != usize::from(byte_count) {
        return Err(exception::ILLEGAL_DATA_VALUE);
    }
    check_range(start, qty)?;
    Ok((start, qty, data))
}

fn parse(function: u8, body: &[u8]) -> Result<Request<'_>, u8> {
    use function::*;
    match function {
        READ_COILS | READ_DISCRETE_INPUTS => {
            let (start, qty) = parse_range(body, MAX_READ_BITS)?;
            let table = if function == READ_COILS {
                Table::Coil
            } else {
                Table::Discrete
            };
            Ok(Request::ReadBits { table, start, qty })
        }
        READ_HOLDING_REGISTERS | READ_INPUT_REGISTERS => {
            let (start, qty) = parse_range(body, MAX_READ_REGISTERS)?;
            let table = if function == READ_HOLDING_REGISTERS {
                Table::Holding
            } else {
                Table::Input
            };
            Ok(Request::ReadRegisters { table, start, qty })
        }
        WRITE_SINGLE_COIL | WRITE_SINGLE_REGISTER => {
            let (Some(addr), Some(value), 4) = (be16(body, 0), be16(body, 2), body.len()) else {
                return Err(exception::ILLEGAL_DATA_VALUE);
            };
            if function == WRITE_SINGLE_REGISTER {
                return Ok(Request::WriteRegister { addr, value });
            }
            match value {
                0xFF00 => Ok(Request::WriteCoil { addr, on: true }),
                0x0000 => Ok(Request::WriteCoil { addr, on: false }),
                _ => Err(exception::ILLEGAL_DATA_VALUE),
            }
        }
        WRITE_MULTIPLE_COILS => {
            let (start, qty, packed) =
                parse_multi_write(body, MAX_WRITE_BITS, |qty| usize::from(qty).div_ceil(8))?;
            Ok(Request::WriteCoils { start, qty, packed })
        }
        WRITE_MULTIPLE_REGISTERS => {
            let (start, qty, data) =
                parse_multi_write(body, MAX_WRITE_REGISTERS, |qty| usize::from(qty) * 2)?;
            Ok(Request::WriteRegisters { start, qty, data })
        }
        _ => Err(exception::ILLEGAL_FUNCTION),
    }
}

fn execute(bank: &Bank, unit: u8, function: u8, request: Request<'_>, body: &[u8]) -> Vec<u8> {
    match request {
        Request::ReadBits { table, start, qty } => {
            let mut values = [0u16; MAX_READ_BITS as usize];
            let values = &mut values[..usize::from(qty)];
            bank.read_range(unit, table, start, qty, values);
            let byte_count = usize::from(qty).div_ceil(8);
            let mut out = Vec::with_capacity(2 + byte_count);
            out.push(function);
            out.push(byte_count as u8); // <= 250
            out.extend(values.chunks(8).map(|chunk| {
                chunk
                    .iter()
                    .enumerate()
                    .fold(0u8, |acc, (i, &v)| acc | (u8::from(v != 0) << i))
            }));
            out
        }
        Request::ReadRegisters { table, start, qty } => {
            let mut values = [0u16; MAX_READ_REGISTERS as usize];
            let values = &mut values[..usize::from(qty)];
            bank.read_range(unit, table, start, qty, values);
            let mut out = Vec::with_capacity(2 + values.len() * 2);
            out.push(function);
            out.push((values.len() * 2) as u8); // <= 250
            for v in values.iter() {
                out.extend_from_slice(&v.to_be_bytes());
            }
            out
        }
        Request::WriteCoil { addr, on } => {
            if !bank.ignores_writes(unit) {
                bank.set_coil(unit, addr, on);
            }
            echo(function, body)
        }
        Request::WriteRegister { addr, value } => {
            if !bank.ignores_writes(unit) {
                bank.set_holding(unit, addr, value);
            }
            echo(function, body)
        }
        Request::WriteCoils { start, qty, packed } => {
            let values: Vec<u16> = (0..usize::from(qty))
                .map(|i| u16::from(packed.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1)))
                .collect();
            if !bank.ignores_writes(unit) {
                bank.write_range(unit, Table::Coil, start, &values);
            }
            echo_range(function, start, qty)
        }
        Request::WriteRegisters { start, qty, data } => {
            let values: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            if !bank.ignores_writes(unit) {
                bank.write_range(unit, Table::Holding, start, &values);
            }
            echo_range(function, start, qty)
        }
    }
}

/// FC5/FC6 answer with a copy of the request.
fn echo(function: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + body.len());
    out.push(function);
    out.extend_from_slice(body);
    out
}

/// FC15/FC16 answer with the start address and quantity written.
fn echo_range(function: u8, start: u16, qty: u16) -> Vec<u8> {
    let [s0, s1] = start.to_be_bytes();
    let [q0, q1] = qty.to_be_bytes();
    vec![function, s0, s1, q0, q1]
}

#[cfg(test)]
mod tests;
