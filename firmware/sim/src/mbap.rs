//! Modbus TCP framing: the 7-byte MBAP header in front of every PDU.
//!
//! Kept apart from the PDU engine so the transport can change (RTU later) without
//! touching request handling. Decoding is incremental over a byte buffer because
//! TCP delivers a stream: a read may hold half a frame or several pipelined ones.
//! A bad header is unrecoverable (we cannot find the next frame boundary), so it
//! is reported as a [`FrameError`] and the connection is closed.

use thiserror::Error;

/// Size of the MBAP header: transaction id, protocol id, length, unit id.
pub const HEADER_LEN: usize = 7;
/// Smallest legal length field: unit id + function code.
pub const MIN_LENGTH: u16 = 2;
/// Largest legal length field: unit id + a 253-byte PDU.
pub const MAX_LENGTH: u16 = 254;

/// Why a byte stream is not Modbus TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The protocol id is not 0 (Modbus).
    #[error("protocol id {0} is not Modbus (0)")]
    Protocol(u16),
    /// The length field is outside 2..=254.
    #[error("MBAP length {0} outside {MIN_LENGTH}..={MAX_LENGTH}")]
    Length(u16),
}

/// The parts of the MBAP header a response needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Transaction id, echoed in the response.
    pub transaction: u16,
    /// Unit (slave) id.
    pub unit: u8,
}

/// One complete request frame borrowed from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Header fields.
    pub header: Header,
    /// Function code and body.
    pub pdu: &'a [u8],
    /// Bytes of the buffer this frame occupies (header + PDU).
    pub len: usize,
}

/// Decode the first frame in `buf`.
///
/// `Ok(None)` means more bytes are needed. The header is checked as soon as its
/// first six bytes are present, so garbage is rejected without waiting for a
/// body that may never come.
pub fn decode(buf: &[u8]) -> Result<Option<Frame<'_>>, FrameError> {
    let Some(head) = buf.get(..6) else {
        return Ok(None);
    };
    let protocol = u16::from_be_bytes([head[2], head[3]]);
    if protocol != 0 {
        return Err(FrameError::Protocol(protocol));
    }
    let length = u16::from_be_bytes([head[4], head[5]]);
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
        return Err(FrameError::Length(length));
    }
    let len = 6 + usize::from(length);
    let Some(frame) = buf.get(..len) else {
        return Ok(None);
    };
    Ok(Some(Frame {
        header: Header {
            transaction: u16::from_be_bytes([head[0], head[1]]),
            unit: frame[6],
        },
        pdu: &frame[HEADER_LEN..],
        len,
    }))
}

/// Append a response frame (header + `pdu`) to `out`.
///
/// `pdu` comes from the PDU engine and is at most 253 bytes, so the length
/// field cannot overflow.
pub fn encode(header: Header, pdu: &[u8], out: &mut Vec<u8>) {
    let length = u16::try_from(pdu.len() + 1).unwrap_or(u16::MAX);
    out.reserve(HEADER_LEN + pdu.len());
    out.extend_from_slice(&header.transaction.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&length.to_be_bytes());
    out.push(header.unit);
    out.extend_from_slice(pdu);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_complete_frame_and_leaves_rest() {
        let buf = [0x12, 0x34, 0, 0, 0, 6, 9, 3, 0, 1, 0, 2, 0xAA];
        let frame = decode(&buf).unwrap().unwrap();
        assert_eq!(
            frame.header,
            Header {
                transaction: 0x1234,
                unit: 9
            }
        );
        assert_eq!(frame.pdu, &[3, 0, 1, 0, 2]);
        assert_eq!(frame.len, 12);
    }

    #[test]
    fn partial_frames_need_more() {
        let buf = [0x12, 0x34, 0, 0, 0, 6, 9, 3, 0, 1, 0, 2];
        for n in 0..buf.len() {
            assert_eq!(decode(&buf[..n]), Ok(None), "prefix {n}");
        }
    }

    #[test]
    fn bad_protocol_is_rejected_early() {
        assert_eq!(decode(&[0, 1, 0, 1, 0, 6]), Err(FrameError::Protocol(1)));
    }

    #[test]
    fn bad_length_is_rejected() {
        assert_eq!(decode(&[0, 1, 0, 0, 0, 1]), Err(FrameError::Length(1)));
        assert_eq!(decode(&[0, 1, 0, 0, 0, 0]), Err(FrameError::Length(0)));
        assert_eq!(decode(&[0, 1, 0, 0, 0, 255]), Err(FrameError::Length(255)));
        assert_eq!(
            decode(&[0, 1, 0, 0, 0xFF, 0xFF]),
            Err(FrameError::Length(0xFFFF))
        );
        assert_eq!(decode(&[0, 1, 0, 0, 0, 254]), Ok(None));
    }

    #[test]
    fn minimal_frame_has_one_byte_pdu() {
        let frame = decode(&[0, 1, 0, 0, 0, 2, 1, 3]).unwrap().unwrap();
        assert_eq!(frame.pdu, &[3]);
    }

    #[test]
    fn encode_round_trips() {
        let mut out = vec![0xEE];
        let header = Header {
            transaction: 0xBEEF,
            unit: 17,
        };
        encode(header, &[3, 2, 0, 42], &mut out);
        assert_eq!(out, vec![0xEE, 0xBE, 0xEF, 0, 0, 0, 5, 17, 3, 2, 0, 42]);
        let frame = decode(&out[1..]).unwrap().unwrap();
        assert_eq!(frame.header, header);
        assert_eq!(frame.pdu, &[3, 2, 0, 42]);
    }
}
