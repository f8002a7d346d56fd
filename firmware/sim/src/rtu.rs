//! Modbus RTU slave on a serial line, sharing the PDU engine and fault plan of the TCP server.
//!
//! Frames are delimited the way a real slave does it: by a silent interval of t3.5 after the
//! last byte. A frame with a bad CRC is dropped without an answer (as the spec requires), and
//! broadcasts (unit 0) are executed without an answer. Faults specific to serial lines (a
//! corrupted CRC, a truncated answer) come from [`Bank::set_corruption`].

use crate::bank::{Bank, Corruption};
use crate::pdu::handle_pdu;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_serial::SerialPortBuilderExt;
use voltage_core::rtu;

/// A running RTU slave on one serial device.
#[derive(Debug)]
pub struct RtuServer {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RtuServer {
    /// Opens `path` (8N1 at `baud`) and answers every unit in `bank`.
    pub fn open(path: &str, baud: u32, bank: Bank) -> io::Result<RtuServer> {
        Self::open_with(path, baud, bank, false)
    }

    /// As [`RtuServer::open`]; with `emulate_wire_time` every answer is held back by the time
    /// the request and the answer would take on a real line at `baud` (11 bits per character),
    /// so that a pty pair (which has no baud rate) behaves like a physical bus in benchmarks.
    pub fn open_with(
        path: &str,
        baud: u32,
        bank: Bank,
        emulate_wire_time: bool,
    ) -> io::Result<RtuServer> {
        let port = tokio_serial::new(path, baud)
            .timeout(Duration::from_millis(50))
            .open_native_async()
            .map_err(io::Error::other)?;
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve(port, baud, bank, rx, emulate_wire_time));
        Ok(RtuServer {
            stop: Some(tx),
            task,
        })
    }

    /// Stops answering and closes the port.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for RtuServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut port: tokio_serial::SerialStream,
    baud: u32,
    bank: Bank,
    mut stop: oneshot::Receiver<()>,
    emulate_wire_time: bool,
) {
    let gap = rtu::t3_5(baud);
    let mut buf = vec![0u8; 512];
    let mut frame = Vec::with_capacity(260);
    loop {
        frame.clear();
        // Wait for the first byte of a frame (or stop).
        let n = tokio::select! {
            r = port.read(&mut buf) => r,
            _ = &mut stop => return,
        };
        match n {
            Ok(0) => {
                tokio::time::sleep(gap).await;
                continue;
            }
            Ok(n) => frame.extend_from_slice(&buf[..n]),
            Err(e) => {
                tracing::warn!(error = %e, "serial read failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        // The rest of the frame: until the line is silent for t3.5.
        while frame.len() < 256 {
            match tokio::time::timeout(gap.max(Duration::from_millis(2)), port.read(&mut buf)).await
            {
                Ok(Ok(n)) if n > 0 => frame.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        if frame.len() < 4 {
            tracing::debug!(bytes = frame.len(), "runt frame dropped");
            continue;
        }
        let (body, crc) = frame.split_at(frame.len() - 2);
        if rtu::crc16(body) != u16::from_le_bytes([crc[0], crc[1]]) {
            tracing::debug!(bytes = frame.len(), "frame with a bad CRC dropped");
            continue;
        }
        let unit = body[0];
        let delay = bank.response_delay(unit);
        let Some(pdu) = handle_pdu(&bank, unit, &body[1..]) else {
            continue;
        };
        if unit == 0 {
            continue; // broadcast: executed, never answered
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut out = rtu::frame(unit, &pdu);
        if emulate_wire_time {
            tokio::time::sleep(rtu::wire_time(frame.len() + out.len(), 11, baud)).await;
        }
        match bank.corruption(unit) {
            Corruption::None => {}
            Corruption::BadCrc => {
                let last = out.len() - 1;
                out[last] ^= 0x5A;
            }
            Corruption::Truncate => out.truncate(out.len() / 2),
        }
        if let Err(e) = port.write_all(&out).await {
            tracing::warn!(error = %e, "serial write failed");
        }
    }
}
