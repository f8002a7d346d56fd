//! A deliberately tiny, independent Modbus TCP client for the integration tests.
//!
//! It does not reuse the crate's framing code, so a symmetric bug in encode and
//! decode cannot hide itself.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest a test waits for an answer that should come.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Client {
    pub stream: TcpStream,
    next_tid: u16,
}

/// A raw request PDU: function, two big-endian words.
pub fn pdu(function: u8, a: u16, b: u16) -> Vec<u8> {
    let mut p = vec![function];
    p.extend_from_slice(&a.to_be_bytes());
    p.extend_from_slice(&b.to_be_bytes());
    p
}

/// A raw MBAP frame.
pub fn frame(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut f = tid.to_be_bytes().to_vec();
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
    f.push(unit);
    f.extend_from_slice(pdu);
    f
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            next_tid: 0x100,
        }
    }

    /// Send one request; returns its transaction id.
    pub async fn send(&mut self, unit: u8, pdu: &[u8]) -> u16 {
        self.next_tid = self.next_tid.wrapping_add(1);
        let tid = self.next_tid;
        self.stream
            .write_all(&frame(tid, unit, pdu))
            .await
            .expect("write");
        tid
    }

    /// Receive one response: (transaction id, unit, pdu). None on timeout.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<(u16, u8, Vec<u8>)> {
        tokio::time::timeout(wait, async {
            let mut head = [0u8; 7];
            self.stream
                .read_exact(&mut head)
                .await
                .expect("read header");
            assert_eq!(&head[2..4], &[0, 0], "protocol id");
            let len = u16::from_be_bytes([head[4], head[5]]) as usize;
            assert!((2..=254).contains(&len), "length {len}");
            let mut body = vec![0u8; len - 1];
            self.stream.read_exact(&mut body).await.expect("read pdu");
            (u16::from_be_bytes([head[0], head[1]]), head[6], body)
        })
        .await
        .ok()
    }

    pub async fn recv(&mut self) -> (u16, u8, Vec<u8>) {
        self.recv_within(ANSWER_TIMEOUT)
            .await
            .expect("response timed out")
    }

    /// Send and wait for the matching response PDU.
    pub async fn request(&mut self, unit: u8, pdu: &[u8]) -> Vec<u8> {
        let tid = self.send(unit, pdu).await;
        let (rtid, runit, resp) = self.recv().await;
        assert_eq!((rtid, runit), (tid, unit), "transaction/unit echoed");
        resp
    }

    /// FC3/FC4 read; Err(exception code).
    pub async fn read_registers(
        &mut self,
        unit: u8,
        function: u8,
        start: u16,
        qty: u16,
    ) -> Result<Vec<u16>, u8> {
        let resp = self.request(unit, &pdu(function, start, qty)).await;
        if resp[0] == function | 0x80 {
            return Err(resp[1]);
        }
        assert_eq!(resp[0], function);
        assert_eq!(resp[1] as usize, qty as usize * 2, "byte count");
        Ok(resp[2..]
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect())
    }

    /// FC1/FC2 read; Err(exception code).
    pub async fn read_bits(
        &mut self,
        unit: u8,
        function: u8,
        start: u16,
        qty: u16,
    ) -> Result<Vec<bool>, u8> {
        let resp = self.request(unit, &pdu(function, start, qty)).await;
        if resp[0] == function | 0x80 {
            return Err(resp[1]);
        }
        assert_eq!(resp[1] as usize, (qty as usize).div_ceil(8), "byte count");
        Ok((0..qty as usize)
            .map(|i| resp[2 + i / 8] >> (i % 8) & 1 == 1)
            .collect())
    }

    /// FC16 write; Err(exception code).
    pub async fn write_registers(
        &mut self,
        unit: u8,
        start: u16,
        values: &[u16],
    ) -> Result<(), u8> {
        let mut p = pdu(16, start, values.len() as u16);
        p.push((values.len() * 2) as u8);
        for v in values {
            p.extend_from_slice(&v.to_be_bytes());
        }
        let resp = self.request(unit, &p).await;
        if resp[0] == 0x90 {
            return Err(resp[1]);
        }
        assert_eq!(resp, pdu(16, start, values.len() as u16));
        Ok(())
    }

    /// True if the server closed the connection (EOF or reset) within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(wait, self.stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}
