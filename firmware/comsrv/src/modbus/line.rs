//! One scheduler task per serial line: every request of every channel and slave on the line goes
//! through it, one transaction on the wire at a time.
//!
//! Why a single owner: RS-485 is half duplex and shared; two channels writing at once garble
//! both frames. The scheduler keeps the t3.5 silence between frames, serves writes before polls,
//! applies each request's deadline, and resynchronises after garbage (a bad CRC or a partial
//! frame: wait for silence, drop what arrived). It measures what an integrator needs to tune a
//! bus: requests, timeouts, CRC errors, exceptions, bus utilisation (time on the wire / wall
//! time) and each slave's average response time, published to Redis every second.

use super::rs485;
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_serial::{SerialPort, SerialPortBuilderExt, SerialStream};
use voltage_core::config::{Parity, SerialSettings};
use voltage_core::rtu::{self, FrameError, Response};
use voltage_store::Store;

/// What a transaction on the line ended with.
#[derive(Debug, Clone, PartialEq)]
pub enum LineError {
    Timeout,
    Frame(FrameError),
    Io(String),
}

/// Request priority: writes are served before polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Write,
    Poll,
}

struct Job {
    slave: u8,
    pdu: Vec<u8>,
    deadline: Duration,
    reply: oneshot::Sender<Result<Response, LineError>>,
}

/// A handle to a line's scheduler; the task ends when the last handle is dropped.
pub struct LineHandle {
    pub settings: SerialSettings,
    pub name: String,
    high: mpsc::Sender<Job>,
    low: mpsc::Sender<Job>,
}

impl LineHandle {
    /// Starts the scheduler of a line.
    pub fn start(settings: SerialSettings, store: Store) -> LineHandle {
        let (high, hrx) = mpsc::channel(64);
        let (low, lrx) = mpsc::channel(1024);
        let name = settings
            .port_name
            .clone()
            .unwrap_or_else(|| settings.device.clone());
        tokio::spawn(run(settings.clone(), name.clone(), store, hrx, lrx));
        LineHandle {
            settings,
            name,
            high,
            low,
        }
    }

    /// Runs one transaction: sends `pdu` to `slave`, returns the response PDU or exception.
    pub async fn transact(
        &self,
        slave: u8,
        pdu: Vec<u8>,
        deadline: Duration,
        prio: Priority,
    ) -> Result<Response, LineError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            slave,
            pdu,
            deadline,
            reply,
        };
        let q = match prio {
            Priority::Write => &self.high,
            Priority::Poll => &self.low,
        };
        q.send(job)
            .await
            .map_err(|_| LineError::Io("line scheduler stopped".into()))?;
        rx.await
            .map_err(|_| LineError::Io("line scheduler stopped".into()))?
    }
}

/// One slave's share of the line: what was asked of it and how it went, so a dead or noisy
/// slave shows by name, not only in the line's totals.
#[derive(Default)]
struct SlaveTiming {
    requests: u64,
    answers: u64,
    timeouts: u64,
    /// CRC, framing and exception answers.
    errors: u64,
    total: Duration,
}

#[derive(Default)]
struct Stats {
    requests: u64,
    timeouts: u64,
    crc_errors: u64,
    frame_errors: u64,
    exceptions: u64,
    io_errors: u64,
    garbage_bytes: u64,
    wire: Duration,
    window_wire: Duration,
    slaves: BTreeMap<u8, SlaveTiming>,
}

fn open(s: &SerialSettings, name: &str) -> Result<SerialStream, String> {
    let parity = match s.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let port = tokio_serial::new(&s.device, s.baud_rate)
        .data_bits(if s.data_bits == 7 {
            tokio_serial::DataBits::Seven
        } else {
            tokio_serial::DataBits::Eight
        })
        .parity(parity)
        .stop_bits(if s.stop_bits == 2 {
            tokio_serial::StopBits::Two
        } else {
            tokio_serial::StopBits::One
        })
        .open_native_async()
        .map_err(|e| format!("open {}: {e}", s.device))?;
    if let Some(r) = &s.rs485 {
        match rs485::apply(port.as_raw_fd(), r) {
            Ok(()) => tracing::info!(line = name, device = %s.device, "kernel RS-485 mode set"),
            Err(e) => tracing::warn!(line = name, device = %s.device, error = %e,
                "port does not support kernel RS-485 mode (pty or adapter with automatic direction); going on without it"),
        }
    }
    Ok(port)
}

async fn run(
    s: SerialSettings,
    name: String,
    store: Store,
    mut high: mpsc::Receiver<Job>,
    mut low: mpsc::Receiver<Job>,
) {
    let gap = rtu::t3_5(s.baud_rate);
    let bits = s.bits_per_char();
    let mut port: Option<SerialStream> = None;
    let mut last_activity = Instant::now();
    let mut stats = Stats::default();
    let mut window_start = Instant::now();
    let mut publish = tokio::time::interval(Duration::from_secs(1));
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open_failed_at: Option<Instant> = None;
    let mut log_every = tokio::time::interval(Duration::from_secs(60));
    log_every.tick().await;
    tracing::info!(line = %name, device = %s.device, settings = %s.describe(), t3_5_us = gap.as_micros() as u64, "serial line started");
    loop {
        let job = tokio::select! {
            biased;
            Some(j) = high.recv() => j,
            Some(j) = low.recv() => j,
            _ = publish.tick() => {
                publish_stats(&store, &name, &mut stats, &mut window_start).await;
                continue;
            }
            _ = log_every.tick() => {
                tracing::info!(line = %name, requests = stats.requests, timeouts = stats.timeouts, crc_errors = stats.crc_errors,
                    frame_errors = stats.frame_errors, exceptions = stats.exceptions, wire_ms = stats.wire.as_millis() as u64,
                    "line statistics");
                continue;
            }
            else => break,
        };
        if port.is_none() {
            // Do not hammer a missing device: one open attempt per second at most.
            if open_failed_at.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                stats.io_errors += 1;
                let _ = job
                    .reply
                    .send(Err(LineError::Io(format!("{} cannot be opened", s.device))));
                continue;
            }
            match open(&s, &name) {
                Ok(p) => {
                    port = Some(p);
                    open_failed_at = None;
                }
                Err(e) => {
                    tracing::warn!(line = %name, error = %e, "serial device unavailable");
                    open_failed_at = Some(Instant::now());
                    stats.io_errors += 1;
                    let _ = job.reply.send(Err(LineError::Io(e)));
                    continue;
                }
            }
        }
        let p = port.as_mut().expect("opened above");
        let silent = last_activity.elapsed();
        if silent < gap {
            tokio::time::sleep(gap - silent).await;
        }
        if let Ok(n) = p.bytes_to_read() {
            if n > 0 {
                stats.garbage_bytes += n as u64;
                let _ = p.clear(tokio_serial::ClearBuffer::Input);
            }
        }
        let function = job.pdu.first().copied().unwrap_or(0);
        let req = rtu::frame(job.slave, &job.pdu);
        stats.requests += 1;
        stats.slaves.entry(job.slave).or_default().requests += 1;
        let sent_at = Instant::now();
        if let Err(e) = p.write_all(&req).await {
            stats.io_errors += 1;
            tracing::warn!(line = %name, error = %e, "serial write failed; reopening the port");
            port = None;
            let _ = job.reply.send(Err(LineError::Io(e.to_string())));
            continue;
        }
        let tx_time = rtu::wire_time(req.len(), bits, s.baud_rate);
        let (result, got) = receive(p, job.slave, function, job.deadline + tx_time, gap).await;
        let elapsed = sent_at.elapsed();
        let wire = tx_time + rtu::wire_time(got, bits, s.baud_rate);
        stats.wire += wire;
        stats.window_wire += wire;
        match &result {
            Ok(Response::Data(_)) | Ok(Response::Exception(_)) => {
                let t = stats.slaves.entry(job.slave).or_default();
                if matches!(result, Ok(Response::Exception(_))) {
                    stats.exceptions += 1;
                    t.errors += 1;
                }
                t.answers += 1;
                t.total += elapsed;
            }
            Err(LineError::Timeout) => {
                stats.timeouts += 1;
                stats.slaves.entry(job.slave).or_default().timeouts += 1;
            }
            Err(LineError::Frame(f)) => {
                if matches!(f, FrameError::Crc { .. }) {
                    stats.crc_errors += 1;
                } else {
                    stats.frame_errors += 1;
                }
                stats.slaves.entry(job.slave).or_default().errors += 1;
            }
            Err(LineError::Io(_)) => {
                stats.io_errors += 1;
                port = None;
            }
        }
        if matches!(result, Err(LineError::Frame(_))) {
            // Resynchronise: whatever is still arriving belongs to the broken frame.
            if let Some(p) = port.as_mut() {
                stats.garbage_bytes += drain_until_silent(p, gap).await as u64;
            }
        }
        last_activity = Instant::now();
        let _ = job.reply.send(result);
    }
    publish_stats(&store, &name, &mut stats, &mut window_start).await;
    tracing::info!(line = %name, "serial line stopped");
}

/// Reads one response frame: until its expected length, the deadline, or a silence of t3.5
/// after some bytes (a truncated frame). Returns the result and the bytes received.
async fn receive(
    p: &mut SerialStream,
    slave: u8,
    function: u8,
    deadline: Duration,
    gap: Duration,
) -> (Result<Response, LineError>, usize) {
    let end = tokio::time::Instant::now() + deadline;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        if let Some(need) = rtu::expected_len(function, &buf) {
            if buf.len() >= need {
                let n = buf.len();
                return (
                    rtu::parse_response(slave, function, &buf).map_err(LineError::Frame),
                    n,
                );
            }
        }
        if buf.len() > 256 {
            return (
                Err(LineError::Frame(FrameError::WrongLength {
                    got: buf.len(),
                    want: 256,
                })),
                buf.len(),
            );
        }
        let wait = if buf.is_empty() {
            end.saturating_duration_since(tokio::time::Instant::now())
        } else {
            // Inside a frame the line must not fall silent for t3.5 (relaxed to 20 ms for
            // USB adapters and ptys, which deliver in bursts).
            (gap * 4)
                .max(Duration::from_millis(20))
                .min(end.saturating_duration_since(tokio::time::Instant::now()))
        };
        match tokio::time::timeout(wait, p.read(&mut chunk)).await {
            Ok(Ok(0)) => tokio::time::sleep(gap).await,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return (Err(LineError::Io(e.to_string())), buf.len()),
            Err(_) if buf.is_empty() => return (Err(LineError::Timeout), 0),
            Err(_) => {
                let need = rtu::expected_len(function, &buf).unwrap_or(5);
                let got = buf.len();
                return (
                    Err(LineError::Frame(FrameError::Truncated { got, need })),
                    got,
                );
            }
        }
        if tokio::time::Instant::now() >= end && !buf.is_empty() {
            let need = rtu::expected_len(function, &buf).unwrap_or(5);
            if buf.len() < need {
                let got = buf.len();
                return (
                    Err(LineError::Frame(FrameError::Truncated { got, need })),
                    got,
                );
            }
        }
    }
}

/// Reads and discards until the line has been silent for t3.5; returns the bytes dropped.
async fn drain_until_silent(p: &mut SerialStream, gap: Duration) -> usize {
    let mut chunk = [0u8; 256];
    let mut dropped = 0;
    while let Ok(Ok(n)) =
        tokio::time::timeout(gap.max(Duration::from_millis(5)), p.read(&mut chunk)).await
    {
        if n == 0 {
            break;
        }
        dropped += n;
    }
    dropped
}

async fn publish_stats(store: &Store, name: &str, st: &mut Stats, window_start: &mut Instant) {
    let window = window_start.elapsed().as_secs_f64().max(0.001);
    let util = 100.0 * st.window_wire.as_secs_f64() / window;
    st.window_wire = Duration::ZERO;
    *window_start = Instant::now();
    let mut f: Vec<(String, String)> = vec![
        ("requests".into(), st.requests.to_string()),
        ("timeouts".into(), st.timeouts.to_string()),
        ("crc_errors".into(), st.crc_errors.to_string()),
        ("frame_errors".into(), st.frame_errors.to_string()),
        ("exceptions".into(), st.exceptions.to_string()),
        ("io_errors".into(), st.io_errors.to_string()),
        ("garbage_bytes".into(), st.garbage_bytes.to_string()),
        ("wire_ms_total".into(), st.wire.as_millis().to_string()),
        ("bus_utilisation_pct".into(), format!("{util:.1}")),
    ];
    for (slave, t) in &st.slaves {
        let avg = t.total.as_secs_f64() * 1000.0 / t.answers.max(1) as f64;
        f.push((
            format!("slave_{slave}_avg_response_ms"),
            format!("{avg:.2}"),
        ));
        f.push((format!("slave_{slave}_answers"), t.answers.to_string()));
        f.push((format!("slave_{slave}_requests"), t.requests.to_string()));
        f.push((format!("slave_{slave}_timeouts"), t.timeouts.to_string()));
        f.push((format!("slave_{slave}_errors"), t.errors.to_string()));
    }
    if st.requests > 0 {
        tracing::debug!(
            line = name,
            requests = st.requests,
            timeouts = st.timeouts,
            crc_errors = st.crc_errors,
            bus_utilisation_pct = format!("{util:.1}"),
            "line stats"
        );
    }
    if let Err(e) = store.write_line_stats(name, &f).await {
        tracing::debug!(line = name, error = %e, "cannot publish line stats");
    }
}
