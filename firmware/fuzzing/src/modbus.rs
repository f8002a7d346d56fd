//! Modbus responses from a byzantine slave, RTU (voltage-core's frame parser, as the line
//! scheduler uses it) and TCP (comsrv's link over tokio-modbus, on an in-memory connection).
//!
//! Inputs are either raw bytes (anything a device may send) or a well-formed answer to a known
//! request with one deliberate defect: wrong length, unit id, function code or CRC, an exception,
//! truncation or trailing bytes. A well-formed answer must decode to exactly the values sent; a
//! defective one must be refused (or, for trailing bytes on RTU, ignored), never mistaken.

use arbitrary::{Arbitrary, Unstructured};
use comsrv::{CallError, Link, Op, Priority, Reply};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use voltage_core::rtu::{self, FrameError, Response};
use voltage_core::types::ReadFunction;

/// What is wrong with an otherwise valid answer.
#[derive(Debug, Arbitrary)]
enum Defect {
    None,
    Truncate(u8),
    Trailing(Vec<u8>),
    BadCrc,
    WrongSlave(u8),
    WrongFunction(u8),
    Exception(u8),
    ByteCount(u8),
    /// TCP only: a transaction id that is not the request's.
    WrongTransaction(u16),
    /// TCP only: the MBAP length field.
    LengthField(u16),
    /// TCP only: the MBAP protocol id.
    Protocol(u16),
}

#[derive(Debug, Arbitrary)]
struct Case {
    slave: u8,
    function: u8,
    start: u16,
    count: u8,
    values: Vec<u16>,
    defect: Defect,
}

impl Case {
    fn function(&self) -> ReadFunction {
        ReadFunction::from_code(self.function % 4 + 1).expect("1..=4")
    }

    /// 1..=125 registers, 1..=255 bits (one byte count each).
    fn count(&self) -> u16 {
        let c = self.count.max(1) as u16;
        if self.function().is_bits() {
            c
        } else {
            c.min(125)
        }
    }

    fn registers(&self) -> Vec<u16> {
        (0..self.count() as usize)
            .map(|i| self.values.get(i).copied().unwrap_or(i as u16))
            .collect()
    }

    fn bits(&self) -> Vec<bool> {
        self.registers().iter().map(|v| v & 1 == 1).collect()
    }

    /// The correct response PDU (function, byte count, data).
    fn pdu(&self) -> Vec<u8> {
        let f = self.function();
        let mut pdu = vec![f.code()];
        if f.is_bits() {
            let bits = self.bits();
            let mut data = vec![0u8; bits.len().div_ceil(8)];
            for (i, b) in bits.iter().enumerate() {
                if *b {
                    data[i / 8] |= 1 << (i % 8);
                }
            }
            pdu.push(data.len() as u8);
            pdu.extend_from_slice(&data);
        } else {
            let regs = self.registers();
            pdu.push((regs.len() * 2) as u8);
            for r in regs {
                pdu.extend_from_slice(&r.to_be_bytes());
            }
        }
        pdu
    }
}

/// RTU: raw frames (byte 0 even) or defective answers (byte 0 odd).
pub fn check_rtu(data: &[u8]) {
    match data.split_first() {
        Some((mode, rest)) if mode & 1 == 1 => {
            if let Ok(case) = Case::arbitrary_take_rest(Unstructured::new(rest)) {
                rtu_case(&case);
            }
        }
        Some((_, rest)) if rest.len() >= 3 => rtu_raw(rest[0], rest[1], rest[2], &rest[3..]),
        _ => {}
    }
}

fn rtu_raw(slave: u8, function: u8, count: u8, buf: &[u8]) {
    // The receiver asks after every chunk how long the frame will be.
    for i in 0..=buf.len() {
        if let Some(need) = rtu::expected_len(function, &buf[..i]) {
            assert!(
                need >= 5,
                "a frame is never shorter than 5 bytes, said {need}"
            );
        }
    }
    let Ok(resp) = rtu::parse_response(slave, function, buf) else {
        return;
    };
    assert_eq!(buf[0], slave, "accepted a frame from another slave");
    let need = rtu::expected_len(function, buf).expect("accepted, so its length is known");
    assert_eq!(
        rtu::crc16(&buf[..need - 2]).to_le_bytes(),
        [buf[need - 2], buf[need - 1]],
        "accepted a frame with a bad CRC"
    );
    if let Response::Data(pdu) = resp {
        assert_eq!(pdu[0], function, "accepted another function's answer");
        let count = count as u16;
        if let Ok(regs) = rtu::registers(&pdu, count) {
            assert_eq!(regs.len(), count as usize);
        }
        if let Ok(bits) = rtu::bits(&pdu, count) {
            assert_eq!(bits.len(), count as usize);
        }
    }
}

fn rtu_case(case: &Case) {
    let f = case.function().code();
    let count = case.count();
    let slave = case.slave;
    let good = rtu::frame(slave, &case.pdu());
    let (buf, expect_ok) = match &case.defect {
        Defect::Truncate(n) => {
            let cut = 1 + *n as usize % (good.len() - 1);
            let buf = good[..good.len() - cut].to_vec();
            let r = rtu::parse_response(slave, f, &buf);
            assert!(
                matches!(r, Err(FrameError::Truncated { .. })),
                "a frame cut by {cut} bytes gave {r:?}"
            );
            return;
        }
        Defect::Trailing(extra) => {
            let mut b = good.clone();
            b.extend_from_slice(extra);
            (b, true)
        }
        Defect::BadCrc => {
            let mut b = good.clone();
            *b.last_mut().expect("not empty") ^= 0x5A;
            let r = rtu::parse_response(slave, f, &b);
            assert!(
                matches!(r, Err(FrameError::Crc { .. })),
                "bad CRC gave {r:?}"
            );
            return;
        }
        Defect::WrongSlave(s) if *s != slave => {
            let r = rtu::parse_response(*s, f, &good);
            assert_eq!(
                r,
                Err(FrameError::WrongSlave {
                    got: slave,
                    want: *s
                })
            );
            return;
        }
        Defect::WrongFunction(other) if *other != f && *other != f | 0x80 => {
            let mut pdu = case.pdu();
            pdu[0] = *other;
            let r = rtu::parse_response(slave, f, &rtu::frame(slave, &pdu));
            assert!(
                r.is_err(),
                "function {other:#04x} accepted for {f:#04x}: {r:?}"
            );
            return;
        }
        Defect::Exception(code) => {
            let r = rtu::parse_response(slave, f, &rtu::frame(slave, &[f | 0x80, *code]));
            assert_eq!(r, Ok(Response::Exception(*code)));
            return;
        }
        Defect::ByteCount(n) => {
            let mut pdu = case.pdu();
            if pdu[1] == *n {
                return;
            }
            pdu[1] = *n;
            (rtu::frame(slave, &pdu), false)
        }
        _ => (good, true),
    };
    let decoded = match rtu::parse_response(slave, f, &buf) {
        Ok(Response::Data(pdu)) if case.function().is_bits() => {
            rtu::bits(&pdu, count).map(Reply::Bits)
        }
        Ok(Response::Data(pdu)) => rtu::registers(&pdu, count).map(Reply::Registers),
        Ok(Response::Exception(c)) => panic!("a data frame read as exception {c}"),
        Err(e) => Err(e),
    };
    if expect_ok {
        assert_eq!(decoded, Ok(expected_reply(case)), "a valid frame misread");
    } else {
        assert!(decoded.is_err(), "a wrong byte count accepted: {decoded:?}");
    }
}

fn expected_reply(case: &Case) -> Reply {
    if case.function().is_bits() {
        Reply::Bits(case.bits())
    } else {
        Reply::Registers(case.registers())
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
}

/// TCP: comsrv's link sends a read, the peer answers with the input (raw when byte 0 is even,
/// a defective answer when odd) and closes.
pub fn check_tcp(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let (case, raw) = if mode & 1 == 1 {
        match Case::arbitrary_take_rest(Unstructured::new(rest)) {
            Ok(c) => (c, None),
            Err(_) => return,
        }
    } else {
        let mut u = Unstructured::new(rest);
        let (Ok(slave), Ok(function), Ok(count)) = (
            u8::arbitrary(&mut u),
            u8::arbitrary(&mut u),
            u8::arbitrary(&mut u),
        ) else {
            return;
        };
        let case = Case {
            slave,
            function,
            start: 0,
            count,
            values: Vec::new(),
            defect: Defect::None,
        };
        (case, Some(u.take_rest().to_vec()))
    };
    RUNTIME.with(|rt| rt.block_on(tcp_case(&case, raw)));
}

async fn tcp_case(case: &Case, raw: Option<Vec<u8>>) {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let slave = case.slave;
    let pdu = case.pdu();
    let defect = raw.is_none().then_some(&case.defect);
    let answer = async move {
        let mut hdr = [0u8; 7];
        server
            .read_exact(&mut hdr)
            .await
            .expect("the request's MBAP header");
        let len = u16::from_be_bytes([hdr[4], hdr[5]]) as usize;
        let mut req = vec![0u8; len.saturating_sub(1)];
        server
            .read_exact(&mut req)
            .await
            .expect("the request's PDU");
        let bytes = match (&raw, defect) {
            (Some(r), _) => r.clone(),
            (None, Some(d)) => tcp_answer(u16::from_be_bytes([hdr[0], hdr[1]]), slave, pdu, d),
            (None, None) => unreachable!("raw or a defect"),
        };
        let _ = server.write_all(&bytes).await;
        let _ = server.shutdown().await;
        // Keep the read side open until the client is done.
        let mut sink = Vec::new();
        let _ = server.read_to_end(&mut sink).await;
    };
    let mut link = Link::Tcp {
        addr: "fuzz".into(),
        ctx: Some(tokio_modbus::client::tcp::attach_slave(
            client,
            tokio_modbus::Slave(slave),
        )),
    };
    let op = Op::Read {
        function: case.function(),
        start: case.start,
        count: case.count(),
    };
    let call = async {
        let r = link
            .call(slave, &op, Duration::from_secs(10), Priority::Poll)
            .await;
        link.close().await;
        r
    };
    let (r, ()) = tokio::join!(call, answer);
    if matches!(r, Err(CallError::Timeout)) {
        panic!("a closed connection read as a timeout");
    }
    // Whatever was accepted has the requested length.
    match &r {
        Ok(Reply::Registers(v)) => assert_eq!(v.len(), case.count() as usize, "register count"),
        Ok(Reply::Bits(v)) => assert_eq!(v.len(), case.count() as usize, "bit count"),
        Ok(Reply::Done) => panic!("a read answered as a write"),
        Err(_) => {}
    }
    match defect {
        Some(Defect::None) | Some(Defect::Trailing(_)) => {
            assert_eq!(r, Ok(expected_reply(case)), "a valid answer misread")
        }
        Some(Defect::Exception(code)) => assert_eq!(r, Err(CallError::Exception(*code))),
        Some(Defect::WrongTransaction(_)) | Some(Defect::Truncate(_)) | Some(Defect::BadCrc) => {}
        Some(Defect::WrongSlave(s)) if *s != slave => {
            assert!(
                r.is_err(),
                "an answer from unit {s} accepted for {slave}: {r:?}"
            )
        }
        Some(Defect::ByteCount(_)) | Some(Defect::WrongFunction(_)) => {}
        _ => {}
    }
}

/// The MBAP frame of an answer with `defect`.
fn tcp_answer(tid: u16, slave: u8, mut pdu: Vec<u8>, defect: &Defect) -> Vec<u8> {
    let (mut tid, mut unit, mut proto, mut len) = (tid, slave, 0u16, None);
    let mut trailing = Vec::new();
    let mut cut = 0;
    match defect {
        Defect::WrongTransaction(t) => tid = *t,
        Defect::WrongSlave(s) => unit = *s,
        Defect::Protocol(p) => proto = *p,
        Defect::LengthField(l) => len = Some(*l),
        Defect::WrongFunction(f) => pdu[0] = *f,
        Defect::Exception(code) => pdu = vec![pdu[0] | 0x80, *code],
        Defect::ByteCount(n) => pdu[1] = *n,
        Defect::Trailing(t) => trailing = t.clone(),
        Defect::Truncate(n) => cut = 1 + *n as usize % (pdu.len() + 6),
        Defect::BadCrc | Defect::None => {}
    }
    let mut out = Vec::with_capacity(pdu.len() + 7);
    out.extend_from_slice(&tid.to_be_bytes());
    out.extend_from_slice(&proto.to_be_bytes());
    out.extend_from_slice(&len.unwrap_or(pdu.len() as u16 + 1).to_be_bytes());
    out.push(unit);
    out.extend_from_slice(&pdu);
    out.truncate(out.len() - cut.min(out.len()));
    // Trailing bytes come as a separate (garbage) frame after the answer: ignored or refused
    // by the next call, never mixed into this one.
    let _ = trailing;
    out
}
