//! Runtime fault control (`voltage-sim --control ADDR`): a line-based TCP interface through
//! which a test bench switches simulated slaves off and on and pokes or reads registers while
//! the firmware under test keeps polling.
//!
//! Hardware-in-the-loop scenarios ("one slave powered off, the others keep their rate") need
//! to change a running simulator from outside its process; command-line presets only seed it.
//! The protocol is one command per line, one answer line per command, so `nc`, a shell script
//! or a labgrid driver can use it without a client library:
//!
//! ```text
//! slave 12 off        -> ok        (unit 12 reads requests and never answers)
//! slave 12 on         -> ok
//! set 1:hr:20=42      -> ok        (same syntax as --set)
//! get 1:hr:20         -> ok 42
//! clear               -> ok        (drops every fault: silent units, delays, exceptions)
//! requests            -> ok 1234   (requests served so far)
//! ping                -> ok
//! bogus               -> error unknown command "bogus" (...)
//! ```
//!
//! Bind it to loopback: anyone who can connect can change the simulated plant.

use std::io;
use std::net::SocketAddr;

use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::bank::{Bank, Table};
use crate::preset::{Preset, PresetError};

/// Longest command line accepted; a longer one closes the connection.
const MAX_LINE: usize = 256;

/// One parsed control command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `slave N on|off`: `off` makes the unit silent (powered off), `on` answers again.
    Slave { unit: u8, on: bool },
    /// `set UNIT:TABLE:ADDR=VALUE`.
    Set(Preset),
    /// `get UNIT:TABLE:ADDR`.
    Get { unit: u8, table: Table, addr: u16 },
    /// `clear`: every fault off.
    Clear,
    /// `requests`: the number of requests served.
    Requests,
    /// `ping`.
    Ping,
}

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    /// No such command.
    #[error("unknown command {0:?} (slave, set, get, clear, requests, ping)")]
    Unknown(String),
    /// Wrong arguments for a known command.
    #[error("usage: {0}")]
    Usage(&'static str),
    /// A bad unit, table, address or value.
    #[error(transparent)]
    Preset(#[from] PresetError),
}

impl Command {
    /// Parses one line (surrounding whitespace ignored).
    pub fn parse(line: &str) -> Result<Command, CommandError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["slave", unit, state] => {
                let unit = unit
                    .parse::<u8>()
                    .map_err(|_| PresetError::Unit((*unit).to_string()))?;
                let on = match *state {
                    "on" => true,
                    "off" => false,
                    _ => return Err(CommandError::Usage("slave UNIT on|off")),
                };
                Ok(Command::Slave { unit, on })
            }
            ["slave", ..] => Err(CommandError::Usage("slave UNIT on|off")),
            ["set", preset] => Ok(Command::Set(preset.parse()?)),
            ["set", ..] => Err(CommandError::Usage("set UNIT:TABLE:ADDR=VALUE")),
            ["get", what] => {
                // Reuse the preset parser for UNIT:TABLE:ADDR by giving it a dummy value.
                let p: Preset = format!("{what}=0").parse()?;
                Ok(Command::Get {
                    unit: p.unit,
                    table: p.table,
                    addr: p.addr,
                })
            }
            ["get", ..] => Err(CommandError::Usage("get UNIT:TABLE:ADDR")),
            ["clear"] => Ok(Command::Clear),
            ["requests"] => Ok(Command::Requests),
            ["ping"] => Ok(Command::Ping),
            [other, ..] => Err(CommandError::Unknown((*other).to_string())),
            [] => Err(CommandError::Usage("one command per line")),
        }
    }

    /// Applies the command to `bank` and returns the answer line (without newline).
    pub fn execute(self, bank: &Bank) -> String {
        match self {
            Command::Slave { unit, on } => {
                bank.set_silent(unit, !on);
                info!(unit, on, "control: slave power");
                "ok".into()
            }
            Command::Set(p) => {
                p.apply(bank);
                "ok".into()
            }
            Command::Get { unit, table, addr } => format!("ok {}", bank.get(unit, table, addr)),
            Command::Clear => {
                bank.clear_faults();
                info!("control: faults cleared");
                "ok".into()
            }
            Command::Requests => format!("ok {}", bank.requests()),
            Command::Ping => "ok".into(),
        }
    }
}

/// Answers one line: the command's answer, or `error ...`.
pub fn answer(bank: &Bank, line: &str) -> String {
    match Command::parse(line) {
        Ok(cmd) => cmd.execute(bank),
        Err(err) => format!("error {err}"),
    }
}

/// The control listener; dropping it stops accepting (open connections end with their client).
#[derive(Debug)]
pub struct ControlServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl ControlServer {
    /// Binds `addr` (port 0 = ephemeral) and serves control connections on `bank`.
    pub async fn bind(addr: SocketAddr, bank: Bank) -> io::Result<ControlServer> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        info!(%local_addr, "control listening");
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let bank = bank.clone();
                        tokio::spawn(async move {
                            if let Err(err) = serve(stream, bank).await {
                                debug!(%peer, %err, "control connection ended");
                            }
                        });
                    }
                    Err(err) => warn!(%err, "control accept failed"),
                }
            }
        });
        Ok(ControlServer { local_addr, task })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(stream: TcpStream, bank: Bank) -> io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut rd)
            .take(MAX_LINE as u64 + 1)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        if line.len() > MAX_LINE && !line.ends_with('\n') {
            wr.write_all(b"error line too long\n").await?;
            return Ok(());
        }
        let mut reply = answer(&bank, line.trim());
        reply.push('\n');
        wr.write_all(reply.as_bytes()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        assert_eq!(
            Command::parse(" slave 12 off "),
            Ok(Command::Slave {
                unit: 12,
                on: false
            })
        );
        assert_eq!(
            Command::parse("slave 3 on"),
            Ok(Command::Slave { unit: 3, on: true })
        );
        assert_eq!(
            Command::parse("get 1:hr:20"),
            Ok(Command::Get {
                unit: 1,
                table: Table::Holding,
                addr: 20
            })
        );
        assert!(matches!(
            Command::parse("set 1:hr:20=-5"),
            Ok(Command::Set(Preset {
                unit: 1,
                addr: 20,
                value: 0xFFFB,
                ..
            }))
        ));
        assert_eq!(Command::parse("clear"), Ok(Command::Clear));
        assert_eq!(Command::parse("requests"), Ok(Command::Requests));
        assert_eq!(Command::parse("ping"), Ok(Command::Ping));
    }

    #[test]
    fn refuses_bad_lines_with_a_reason() {
        assert!(matches!(
            Command::parse("slave 300 off"),
            Err(CommandError::Preset(PresetError::Unit(_)))
        ));
        assert_eq!(
            Command::parse("slave 3 maybe"),
            Err(CommandError::Usage("slave UNIT on|off"))
        );
        assert_eq!(
            Command::parse("slave 3"),
            Err(CommandError::Usage("slave UNIT on|off"))
        );
        assert!(matches!(
            Command::parse("get 1:zz:0"),
            Err(CommandError::Preset(PresetError::Table(_)))
        ));
        assert_eq!(
            Command::parse("reboot now"),
            Err(CommandError::Unknown("reboot".into()))
        );
        assert!(Command::parse("").is_err());
        assert!(answer(&Bank::new(), "bogus").starts_with("error unknown command"));
    }

    #[test]
    fn commands_change_the_bank() {
        let bank = Bank::new();
        assert_eq!(answer(&bank, "set 2:hr:7=123"), "ok");
        assert_eq!(bank.holding(2, 7), 123);
        assert_eq!(answer(&bank, "get 2:hr:7"), "ok 123");
        assert_eq!(answer(&bank, "get 2:co:1"), "ok 0");
        // A silent unit reads the request and never answers: no response PDU.
        let read = [0x03, 0x00, 0x07, 0x00, 0x01];
        assert!(crate::handle_pdu(&bank, 2, &read).is_some());
        assert_eq!(answer(&bank, "slave 2 off"), "ok");
        assert!(crate::handle_pdu(&bank, 2, &read).is_none());
        assert_eq!(answer(&bank, "slave 2 on"), "ok");
        assert!(crate::handle_pdu(&bank, 2, &read).is_some());
        answer(&bank, "slave 2 off");
        assert_eq!(answer(&bank, "clear"), "ok");
        assert!(crate::handle_pdu(&bank, 2, &read).is_some());
    }

    #[tokio::test]
    async fn serves_lines_over_tcp() {
        let bank = Bank::new();
        let server = ControlServer::bind("127.0.0.1:0".parse().unwrap(), bank.clone())
            .await
            .unwrap();
        let stream = TcpStream::connect(server.local_addr()).await.unwrap();
        let (rd, mut wr) = stream.into_split();
        let mut rd = BufReader::new(rd).lines();
        wr.write_all(b"set 5:ir:1=9\nget 5:ir:1\nnope\n")
            .await
            .unwrap();
        assert_eq!(rd.next_line().await.unwrap().unwrap(), "ok");
        assert_eq!(rd.next_line().await.unwrap().unwrap(), "ok 9");
        assert!(rd
            .next_line()
            .await
            .unwrap()
            .unwrap()
            .starts_with("error unknown command"));
        assert_eq!(bank.input(5, 1), 9);
        wr.write_all(&[b'x'; MAX_LINE + 10]).await.unwrap();
        assert_eq!(
            rd.next_line().await.unwrap().unwrap(),
            "error line too long"
        );
    }
}
