//! Modbus RTU framing and timing, as pure functions: CRC-16, request frames, response parsing,
//! and the silent intervals derived from the line settings.
//!
//! Why here and not in a transport: the line scheduler, the simulator and the tests must agree on
//! exactly the same bytes and timings, and all of it is testable without a serial port. Parsing
//! never panics on any bytes: garbage, truncated frames and bad CRCs are typed errors the
//! scheduler counts and resynchronises from.

use std::time::Duration;

/// Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF), sent low byte first.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for b in data {
        crc ^= *b as u16;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// `slave + pdu + crc` as sent on the wire.
pub fn frame(slave: u8, pdu: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(pdu.len() + 3);
    f.push(slave);
    f.extend_from_slice(pdu);
    let crc = crc16(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

/// Bits per character on the wire: start + data + parity + stop.
pub fn bits_per_char(data_bits: u8, parity: bool, stop_bits: u8) -> u32 {
    1 + data_bits as u32 + parity as u32 + stop_bits as u32
}

/// Time to send `bytes` characters of `bits` bits at `baud`.
pub fn wire_time(bytes: usize, bits: u32, baud: u32) -> Duration {
    Duration::from_secs_f64(bytes as f64 * bits as f64 / baud.max(1) as f64)
}

/// The t3.5 inter-frame silence. The Modbus serial line spec fixes it at 1.75 ms above
/// 19200 baud; below, 3.5 character times (11 bits each, as the spec counts).
pub fn t3_5(baud: u32) -> Duration {
    if baud > 19_200 {
        Duration::from_micros(1750)
    } else {
        Duration::from_secs_f64(3.5 * 11.0 / baud.max(1) as f64)
    }
}

/// The t1.5 inter-character timeout (750 µs above 19200 baud).
pub fn t1_5(baud: u32) -> Duration {
    if baud > 19_200 {
        Duration::from_micros(750)
    } else {
        Duration::from_secs_f64(1.5 * 11.0 / baud.max(1) as f64)
    }
}

/// Why a response frame was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("truncated frame: {got} of {need} bytes")]
    Truncated { got: usize, need: usize },
    #[error("CRC mismatch: frame says {frame:04X}, computed {computed:04X}")]
    Crc { frame: u16, computed: u16 },
    #[error("answer from slave {got}, expected {want}")]
    WrongSlave { got: u8, want: u8 },
    #[error("function {got:#04x} in answer to {want:#04x}")]
    WrongFunction { got: u8, want: u8 },
    #[error("byte count {got} where {want} was expected")]
    WrongLength { got: usize, want: usize },
}

/// How many bytes the full response to `function` needs, given the bytes received so far
/// (`None` while the header that tells is not complete). Exceptions are 5 bytes.
pub fn expected_len(function: u8, buf: &[u8]) -> Option<usize> {
    if buf.len() < 2 {
        return None;
    }
    if buf[1] == function | 0x80 {
        return Some(5);
    }
    match function {
        1..=4 => buf.get(2).map(|n| 3 + *n as usize + 2),
        5 | 6 | 15 | 16 => Some(8),
        _ => Some(5),
    }
}

/// A parsed response PDU (function and data, without slave and CRC), or an exception code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Data(Vec<u8>),
    Exception(u8),
}

/// Checks and parses a complete response frame for `slave`/`function`.
pub fn parse_response(slave: u8, function: u8, buf: &[u8]) -> Result<Response, FrameError> {
    let need = expected_len(function, buf).unwrap_or(5);
    if buf.len() < need {
        return Err(FrameError::Truncated {
            got: buf.len(),
            need,
        });
    }
    let f = &buf[..need];
    let computed = crc16(&f[..need - 2]);
    let frame_crc = u16::from_le_bytes([f[need - 2], f[need - 1]]);
    if computed != frame_crc {
        return Err(FrameError::Crc {
            frame: frame_crc,
            computed,
        });
    }
    if f[0] != slave {
        return Err(FrameError::WrongSlave {
            got: f[0],
            want: slave,
        });
    }
    if f[1] == function | 0x80 {
        return Ok(Response::Exception(f[2]));
    }
    if f[1] != function {
        return Err(FrameError::WrongFunction {
            got: f[1],
            want: function,
        });
    }
    Ok(Response::Data(f[1..need - 2].to_vec()))
}

/// A read request PDU.
pub fn read_pdu(function: u8, start: u16, count: u16) -> Vec<u8> {
    let mut p = vec![function];
    p.extend_from_slice(&start.to_be_bytes());
    p.extend_from_slice(&count.to_be_bytes());
    p
}

/// Registers from a read response PDU (`fc, byte count, data`), checking the count.
pub fn registers(pdu: &[u8], count: u16) -> Result<Vec<u16>, FrameError> {
    let want = count as usize * 2;
    let data = pdu.get(2..).unwrap_or(&[]);
    if pdu.get(1).copied().unwrap_or(0) as usize != want || data.len() != want {
        return Err(FrameError::WrongLength {
            got: data.len(),
            want,
        });
    }
    Ok(data
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect())
}

/// Bits from a read response PDU, checking the count.
pub fn bits(pdu: &[u8], count: u16) -> Result<Vec<bool>, FrameError> {
    let want = (count as usize).div_ceil(8);
    let data = pdu.get(2..).unwrap_or(&[]);
    if pdu.get(1).copied().unwrap_or(0) as usize != want || data.len() != want {
        return Err(FrameError::WrongLength {
            got: data.len(),
            want,
        });
    }
    Ok((0..count as usize)
        .map(|i| data[i / 8] >> (i % 8) & 1 == 1)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc_of_the_spec_example() {
        // Read holding registers, slave 1, address 0, count 1: 01 03 00 00 00 01 84 0A
        assert_eq!(
            frame(1, &read_pdu(3, 0, 1)),
            vec![0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0A]
        );
    }

    #[test]
    fn t3_5_follows_the_baud_rate_with_a_floor_above_19200() {
        assert_eq!(t3_5(9600).as_micros(), 4010); // 3.5 * 11 / 9600 s
        assert_eq!(t3_5(19200).as_micros(), 2005);
        assert_eq!(t3_5(38400), Duration::from_micros(1750));
        assert_eq!(t3_5(115_200), Duration::from_micros(1750));
        assert_eq!(t1_5(9600).as_micros(), 1718);
        assert_eq!(wire_time(8, 11, 9600).as_micros(), 9166);
    }

    #[test]
    fn responses_are_checked_for_crc_slave_function_and_length() {
        let ok = frame(2, &[3, 4, 0x12, 0x34, 0x56, 0x78]);
        let Response::Data(pdu) = parse_response(2, 3, &ok).unwrap() else {
            panic!()
        };
        assert_eq!(registers(&pdu, 2).unwrap(), vec![0x1234, 0x5678]);
        assert!(matches!(
            registers(&pdu, 3),
            Err(FrameError::WrongLength { .. })
        ));
        let mut bad = ok.clone();
        bad[3] ^= 0xFF;
        assert!(matches!(
            parse_response(2, 3, &bad),
            Err(FrameError::Crc { .. })
        ));
        assert!(matches!(
            parse_response(3, 3, &ok),
            Err(FrameError::WrongSlave { got: 2, want: 3 })
        ));
        assert!(matches!(
            parse_response(2, 3, &ok[..5]),
            Err(FrameError::Truncated { got: 5, need: 9 })
        ));
        assert_eq!(
            parse_response(2, 3, &frame(2, &[0x83, 2])).unwrap(),
            Response::Exception(2)
        );
        let coils = frame(1, &[1, 1, 0b101]);
        let Response::Data(pdu) = parse_response(1, 1, &coils).unwrap() else {
            panic!()
        };
        assert_eq!(bits(&pdu, 3).unwrap(), vec![true, false, true]);
    }

    proptest! {
        #[test]
        fn parsing_never_panics_on_any_bytes(buf in proptest::collection::vec(any::<u8>(), 0..300), f in 0u8..20, s in any::<u8>()) {
            let _ = expected_len(f, &buf);
            if let Ok(Response::Data(pdu)) = parse_response(s, f, &buf) {
                let _ = registers(&pdu, 3);
                let _ = bits(&pdu, 9);
            }
        }
    }
}
