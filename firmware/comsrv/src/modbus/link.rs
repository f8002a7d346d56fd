//! The transport of a Modbus channel: a TCP connection (tokio-modbus) or a share of a serial
//! line (the line scheduler). The poll loop and the write path see one interface, so retry,
//! backoff and read-back logic exist once.

use super::line::{LineError, LineHandle, Priority};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_modbus::client::{tcp, Client, Context, Writer};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::{Request, Slave};
use voltage_core::rtu::{self, Response};
use voltage_core::types::ReadFunction;

/// One Modbus operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Read {
        function: ReadFunction,
        start: u16,
        count: u16,
    },
    WriteCoil {
        addr: u16,
        value: bool,
    },
    WriteRegister {
        addr: u16,
        value: u16,
    },
    WriteRegisters {
        addr: u16,
        values: Vec<u16>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Registers(Vec<u16>),
    Bits(Vec<bool>),
    Done,
}

/// Request-level failures (the device or the link), as opposed to configuration problems.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    Timeout,
    Exception(u8),
    /// The link itself failed (connection refused or reset, device missing).
    Transport(String),
    /// An answer that is not a valid answer (mismatched header, bad CRC, truncated frame).
    Protocol(String),
}

pub enum Link {
    Tcp { addr: String, ctx: Option<Context> },
    Rtu { line: Arc<LineHandle> },
}

impl Link {
    pub fn describe(&self) -> String {
        match self {
            Link::Tcp { addr, .. } => addr.clone(),
            Link::Rtu { line } => format!("{} ({})", line.name, line.settings.describe()),
        }
    }

    /// Whether a connection must be (re)established before the next call.
    pub fn needs_connect(&self) -> bool {
        matches!(self, Link::Tcp { ctx: None, .. })
    }

    pub fn is_up(&self) -> bool {
        !self.needs_connect()
    }

    pub async fn connect(&mut self, deadline: Duration) -> Result<(), String> {
        let Link::Tcp { addr, ctx } = self else {
            return Ok(());
        };
        let fut = async {
            let target = tokio::net::lookup_host(addr.as_str())
                .await
                .map_err(|e| format!("resolve {addr}: {e}"))?
                .next()
                .ok_or_else(|| format!("resolve {addr}: no address"))?;
            let stream = TcpStream::connect(target)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            let _ = stream.set_nodelay(true);
            Ok::<_, String>(tcp::attach(stream))
        };
        let c = tokio::time::timeout(deadline, fut)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "connect {addr}: timed out after {} ms",
                    deadline.as_millis()
                ))
            })?;
        *ctx = Some(c);
        Ok(())
    }

    pub async fn close(&mut self) {
        if let Link::Tcp { ctx, .. } = self {
            if let Some(mut c) = ctx.take() {
                let _ = c.disconnect().await;
            }
        }
    }

    pub async fn call(
        &mut self,
        slave: u8,
        op: &Op,
        deadline: Duration,
        prio: Priority,
    ) -> Result<Reply, CallError> {
        match self {
            Link::Tcp { ctx, .. } => {
                let Some(c) = ctx.as_mut() else {
                    return Err(CallError::Transport("not connected".into()));
                };
                let r = tcp_call(c, slave, op, deadline).await;
                if matches!(
                    r,
                    Err(CallError::Timeout | CallError::Transport(_) | CallError::Protocol(_))
                ) {
                    // A late or mismatched answer would be taken for the next request's.
                    *ctx = None;
                }
                r
            }
            Link::Rtu { line } => rtu_call(line, slave, op, deadline, prio).await,
        }
    }
}

async fn tcp_call(
    c: &mut Context,
    slave: u8,
    op: &Op,
    deadline: Duration,
) -> Result<Reply, CallError> {
    c.set_slave(Slave(slave));
    if let Op::Read {
        function,
        start,
        count,
    } = op
    {
        // The request is sent through `call` rather than the read helpers: a byzantine
        // slave answering with another count must be refused here (the helpers only
        // debug_assert the count, so a debug build panicked and a release build passed
        // a short answer on).
        let req = match function {
            ReadFunction::Coils => Request::ReadCoils(*start, *count),
            ReadFunction::DiscreteInputs => Request::ReadDiscreteInputs(*start, *count),
            ReadFunction::HoldingRegisters => Request::ReadHoldingRegisters(*start, *count),
            ReadFunction::InputRegisters => Request::ReadInputRegisters(*start, *count),
        };
        return match tokio::time::timeout(deadline, c.call(req)).await {
            Err(_) => Err(CallError::Timeout),
            Ok(Ok(Ok(r))) => read_reply(r, *count as usize),
            Ok(Ok(Err(code))) => Err(CallError::Exception(u8::from(code))),
            Ok(Err(tokio_modbus::Error::Transport(e))) => Err(CallError::Transport(e.to_string())),
            Ok(Err(tokio_modbus::Error::Protocol(e))) => Err(CallError::Protocol(e.to_string())),
        };
    }
    let fut = async {
        match op {
            // Answered above.
            Op::Read { .. } => Ok(Ok(Reply::Done)),
            Op::WriteCoil { addr, value } => c
                .write_single_coil(*addr, *value)
                .await
                .map(|r| r.map(|_| Reply::Done)),
            Op::WriteRegister { addr, value } => c
                .write_single_register(*addr, *value)
                .await
                .map(|r| r.map(|_| Reply::Done)),
            Op::WriteRegisters { addr, values } => c
                .write_multiple_registers(*addr, values)
                .await
                .map(|r| r.map(|_| Reply::Done)),
        }
    };
    match tokio::time::timeout(deadline, fut).await {
        Err(_) => Err(CallError::Timeout),
        Ok(Ok(Ok(reply))) => Ok(reply),
        Ok(Ok(Err(code))) => Err(CallError::Exception(u8::from(code))),
        Ok(Err(tokio_modbus::Error::Transport(e))) => Err(CallError::Transport(e.to_string())),
        Ok(Err(tokio_modbus::Error::Protocol(e))) => Err(CallError::Protocol(e.to_string())),
    }
}

/// The values of a read's answer, checked against the requested count (bits come padded to
/// whole bytes).
fn read_reply(r: tokio_modbus::Response, count: usize) -> Result<Reply, CallError> {
    let short =
        |got: usize| CallError::Protocol(format!("{got} values in answer to a read of {count}"));
    match r {
        tokio_modbus::Response::ReadCoils(mut v)
        | tokio_modbus::Response::ReadDiscreteInputs(mut v) => {
            if v.len() < count || v.len() > count.div_ceil(8) * 8 {
                return Err(short(v.len()));
            }
            v.truncate(count);
            Ok(Reply::Bits(v))
        }
        tokio_modbus::Response::ReadHoldingRegisters(v)
        | tokio_modbus::Response::ReadInputRegisters(v) => {
            if v.len() != count {
                return Err(short(v.len()));
            }
            Ok(Reply::Registers(v))
        }
        other => Err(CallError::Protocol(format!(
            "{other:?} in answer to a read"
        ))),
    }
}

fn pdu_of(op: &Op) -> Vec<u8> {
    match op {
        Op::Read {
            function,
            start,
            count,
        } => rtu::read_pdu(function.code(), *start, *count),
        Op::WriteCoil { addr, value } => {
            let mut p = vec![5];
            p.extend_from_slice(&addr.to_be_bytes());
            p.extend_from_slice(if *value { &[0xFF, 0x00] } else { &[0x00, 0x00] });
            p
        }
        Op::WriteRegister { addr, value } => {
            let mut p = vec![6];
            p.extend_from_slice(&addr.to_be_bytes());
            p.extend_from_slice(&value.to_be_bytes());
            p
        }
        Op::WriteRegisters { addr, values } => {
            let mut p = vec![16];
            p.extend_from_slice(&addr.to_be_bytes());
            p.extend_from_slice(&(values.len() as u16).to_be_bytes());
            p.push((values.len() * 2) as u8);
            for v in values {
                p.extend_from_slice(&v.to_be_bytes());
            }
            p
        }
    }
}

async fn rtu_call(
    line: &LineHandle,
    slave: u8,
    op: &Op,
    deadline: Duration,
    prio: Priority,
) -> Result<Reply, CallError> {
    match line.transact(slave, pdu_of(op), deadline, prio).await {
        Ok(Response::Exception(code)) => Err(CallError::Exception(code)),
        Ok(Response::Data(pdu)) => match op {
            Op::Read {
                function, count, ..
            } if function.is_bits() => rtu::bits(&pdu, *count)
                .map(Reply::Bits)
                .map_err(|e| CallError::Protocol(e.to_string())),
            Op::Read { count, .. } => rtu::registers(&pdu, *count)
                .map(Reply::Registers)
                .map_err(|e| CallError::Protocol(e.to_string())),
            _ => Ok(Reply::Done),
        },
        Err(LineError::Timeout) => Err(CallError::Timeout),
        Err(LineError::Frame(e)) => Err(CallError::Protocol(e.to_string())),
        Err(LineError::Io(e)) => Err(CallError::Transport(e)),
    }
}
