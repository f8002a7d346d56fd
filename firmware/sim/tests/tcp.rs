//! End-to-end tests against a real `SimServer` over loopback TCP.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{frame, pdu, Client};
use tokio::io::AsyncWriteExt;
use voltage_sim::{Bank, SimServer};

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start(bank: Bank) -> SimServer {
    SimServer::bind(any_port(), bank).await.expect("bind")
}

#[tokio::test]
async fn register_read_write_round_trip() {
    let bank = Bank::new();
    bank.set_holdings(1, 100, &[11, 22, 33]);
    bank.set_inputs(1, 0, &[0xFFFF, 7]);
    let server = start(bank.clone()).await;
    let mut c = Client::connect(server.local_addr()).await;

    assert_eq!(
        c.read_registers(1, 3, 99, 5).await,
        Ok(vec![0, 11, 22, 33, 0])
    );
    assert_eq!(c.read_registers(1, 4, 0, 2).await, Ok(vec![0xFFFF, 7]));
    assert_eq!(
        c.read_registers(2, 3, 100, 1).await,
        Ok(vec![0]),
        "unit 2 is separate"
    );

    let echo = c.request(1, &pdu(6, 101, 0xBEEF)).await;
    assert_eq!(echo, pdu(6, 101, 0xBEEF));
    c.write_registers(1, 200, &[1, 2, 3]).await.unwrap();
    assert_eq!(
        c.read_registers(1, 3, 100, 3).await,
        Ok(vec![11, 0xBEEF, 33])
    );
    assert_eq!(bank.holding(1, 202), 3, "writes land in the shared bank");
    assert_eq!(server.bank().holding(1, 101), 0xBEEF);

    // Changes made through the bank are visible to clients immediately.
    bank.set_holding(1, 100, 4242);
    assert_eq!(c.read_registers(1, 3, 100, 1).await, Ok(vec![4242]));
    server.stop().await;
}

#[tokio::test]
async fn bit_read_write_round_trip() {
    let bank = Bank::new();
    bank.set_discrete(5, 3, true);
    let server = start(bank.clone()).await;
    let mut c = Client::connect(server.local_addr()).await;

    assert_eq!(c.request(5, &pdu(5, 1, 0xFF00)).await, pdu(5, 1, 0xFF00));
    let mut fc15 = pdu(15, 8, 10);
    fc15.extend_from_slice(&[2, 0b0000_0101, 0b10]);
    assert_eq!(c.request(5, &fc15).await, pdu(15, 8, 10));

    let coils = c.read_bits(5, 1, 0, 18).await.unwrap();
    let on: Vec<usize> = coils
        .iter()
        .enumerate()
        .filter(|(_, b)| **b)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(on, vec![1, 8, 10, 17]);
    assert!(bank.coil(5, 17) && !bank.coil(5, 16));
    assert_eq!(
        c.read_bits(5, 2, 0, 4).await,
        Ok(vec![false, false, false, true])
    );
    server.stop().await;
}

#[tokio::test]
async fn spec_exceptions_over_tcp() {
    let server = start(Bank::new()).await;
    let mut c = Client::connect(server.local_addr()).await;
    assert_eq!(c.read_registers(1, 3, 0, 126).await, Err(3));
    assert_eq!(c.read_registers(1, 4, 65500, 100).await, Err(2));
    assert_eq!(c.request(1, &pdu(0x2B, 0, 0)).await, vec![0xAB, 1]);
    // The connection survives exceptions.
    assert_eq!(c.read_registers(1, 3, 0, 1).await, Ok(vec![0]));
    server.stop().await;
}

#[tokio::test]
async fn injected_exception_on_part_of_a_range() {
    let bank = Bank::new();
    bank.set_holdings(1, 0, &(0..20).collect::<Vec<u16>>());
    bank.add_exception(1, 3, 10, 5, 2);
    bank.add_exception(1, 16, 50, 1, 4);
    let server = start(bank.clone()).await;
    let mut c = Client::connect(server.local_addr()).await;

    assert_eq!(c.read_registers(1, 3, 0, 10).await, Ok((0..10).collect()));
    assert_eq!(
        c.read_registers(1, 3, 8, 4).await,
        Err(2),
        "overlaps the start"
    );
    assert_eq!(
        c.read_registers(1, 3, 14, 6).await,
        Err(2),
        "overlaps the end"
    );
    assert_eq!(c.read_registers(1, 3, 15, 5).await, Ok((15..20).collect()));
    assert_eq!(
        c.read_registers(1, 4, 10, 1).await,
        Ok(vec![0]),
        "other function"
    );
    assert_eq!(
        c.read_registers(2, 3, 10, 1).await,
        Ok(vec![0]),
        "other unit"
    );

    assert_eq!(c.write_registers(1, 48, &[9, 9, 9]).await, Err(4));
    assert_eq!(bank.holding(1, 48), 0, "excepted write is not applied");

    bank.clear_faults();
    assert_eq!(c.read_registers(1, 3, 10, 2).await, Ok(vec![10, 11]));
    server.stop().await;
}

#[tokio::test]
async fn silent_unit_does_not_block_other_units_on_same_connection() {
    let bank = Bank::new();
    bank.set_holding(1, 0, 111);
    bank.set_holding(9, 0, 999);
    bank.set_silent(9, true);
    let server = start(bank.clone()).await;
    let mut c = Client::connect(server.local_addr()).await;

    let silent_tid = c.send(9, &pdu(3, 0, 1)).await;
    let live_tid = c.send(1, &pdu(3, 0, 1)).await;
    let (tid, unit, resp) = c.recv().await;
    assert_eq!((tid, unit), (live_tid, 1), "only the live unit answers");
    assert_eq!(resp, vec![3, 2, 0, 111]);
    assert!(
        c.recv_within(Duration::from_millis(300)).await.is_none(),
        "silent unit {silent_tid} must never answer"
    );
    assert_eq!(bank.requests(), 2, "dropped request still counted");

    // Connection stays usable; reviving the unit makes it answer again.
    bank.set_silent(9, false);
    assert_eq!(c.read_registers(9, 3, 0, 1).await, Ok(vec![999]));
    server.stop().await;
}

#[tokio::test]
async fn delay_postpones_answers() {
    let bank = Bank::new();
    bank.set_holding(1, 0, 5);
    let server = start(bank.clone()).await;
    let mut slow = Client::connect(server.local_addr()).await;
    let mut fast = Client::connect(server.local_addr()).await;

    let delay = Duration::from_millis(500);
    bank.set_delay(Some(1), delay);
    let t0 = Instant::now();
    let slow_tid = slow.send(1, &pdu(3, 0, 1)).await;
    // Another connection to another unit is not held up by the slow one.
    assert_eq!(fast.read_registers(2, 3, 0, 1).await, Ok(vec![0]));
    assert!(
        t0.elapsed() < delay,
        "unit 2 answered after {:?}",
        t0.elapsed()
    );
    let (tid, _, resp) = slow.recv().await;
    assert_eq!(tid, slow_tid);
    assert_eq!(resp, vec![3, 2, 0, 5]);
    assert!(
        t0.elapsed() >= delay,
        "answered after only {:?}",
        t0.elapsed()
    );

    // None applies to every unit; ZERO clears.
    bank.set_delay(None, delay);
    let t0 = Instant::now();
    assert_eq!(fast.read_registers(2, 3, 0, 1).await, Ok(vec![0]));
    assert!(t0.elapsed() >= delay);
    bank.set_delay(None, Duration::ZERO);
    let t0 = Instant::now();
    assert_eq!(slow.read_registers(1, 3, 0, 1).await, Ok(vec![5]));
    assert!(t0.elapsed() < delay);
    server.stop().await;
}

#[tokio::test]
async fn pipelined_requests_answer_in_order() {
    let bank = Bank::new();
    bank.set_holdings(1, 0, &[10, 20, 30]);
    let server = start(bank).await;
    let mut c = Client::connect(server.local_addr()).await;
    let mut burst = Vec::new();
    for (i, tid) in [7u16, 8, 9].into_iter().enumerate() {
        burst.extend(frame(tid, 1, &pdu(3, i as u16, 1)));
    }
    c.stream.write_all(&burst).await.unwrap();
    for (i, want_tid) in [7u16, 8, 9].into_iter().enumerate() {
        let (tid, unit, resp) = c.recv().await;
        assert_eq!((tid, unit), (want_tid, 1));
        assert_eq!(resp, vec![3, 2, 0, 10 * (i as u8 + 1)]);
    }
    server.stop().await;
}

#[tokio::test]
async fn malformed_frames_close_only_that_connection() {
    let server = start(Bank::new()).await;
    let addr = server.local_addr();
    let bad_frames: [&[u8]; 4] = [
        &[0, 1, 0, 1, 0, 6, 1, 3, 0, 0, 0, 1], // protocol id 1
        &[0, 1, 0, 0, 0, 255],                 // length > 254
        &[0, 1, 0, 0, 0, 1, 1],                // length < 2
        &[0, 1, 0, 0, 0, 0],                   // length 0
    ];
    for bad in bad_frames {
        let mut c = Client::connect(addr).await;
        // A valid request before the garbage is still answered.
        let mut bytes = frame(1, 1, &pdu(3, 0, 1));
        bytes.extend_from_slice(bad);
        c.stream.write_all(&bytes).await.unwrap();
        assert_eq!(c.recv().await, (1, 1, vec![3, 2, 0, 0]));
        assert!(
            c.closed_within(Duration::from_secs(5)).await,
            "bad frame {bad:?} must close"
        );
    }
    let mut c = Client::connect(addr).await;
    assert_eq!(
        c.read_registers(1, 3, 0, 1).await,
        Ok(vec![0]),
        "server still serves"
    );
    server.stop().await;
}

#[tokio::test]
async fn stop_closes_connections_and_frees_the_port() {
    let bank = Bank::new();
    bank.set_holding(1, 0, 77);
    let server = start(bank.clone()).await;
    let addr = server.local_addr();
    let mut idle = Client::connect(addr).await;
    let mut busy = Client::connect(addr).await;
    assert_eq!(busy.read_registers(1, 3, 0, 1).await, Ok(vec![77]));
    // A connection stuck in a long delay must not hold up stop().
    bank.set_delay(None, Duration::from_secs(30));
    busy.send(1, &pdu(3, 0, 1)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let t0 = Instant::now();
    server.stop().await;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        t0.elapsed()
    );
    assert!(
        idle.closed_within(Duration::from_secs(2)).await,
        "idle connection closed"
    );
    assert!(
        busy.closed_within(Duration::from_secs(2)).await,
        "busy connection closed"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens any more"
    );

    // The very same address can be bound again straight away.
    bank.clear_faults();
    let again = SimServer::bind(addr, bank).await.expect("rebind same port");
    assert_eq!(again.local_addr(), addr);
    let mut c = Client::connect(addr).await;
    assert_eq!(c.read_registers(1, 3, 0, 1).await, Ok(vec![77]));
    again.stop().await;
}

#[tokio::test]
async fn many_listeners_share_one_bank() {
    let bank = Bank::new();
    let a = start(bank.clone()).await;
    let b = start(bank.clone()).await;
    let mut ca = Client::connect(a.local_addr()).await;
    let mut cb = Client::connect(b.local_addr()).await;
    ca.write_registers(3, 10, &[1234]).await.unwrap();
    assert_eq!(cb.read_registers(3, 3, 10, 1).await, Ok(vec![1234]));
    a.stop().await;
    assert_eq!(
        cb.read_registers(3, 3, 10, 1).await,
        Ok(vec![1234]),
        "b unaffected by a.stop()"
    );
    b.stop().await;
}

#[tokio::test]
async fn many_units_many_points_are_cheap() {
    let bank = Bank::new();
    for unit in 0..=255u8 {
        let values: Vec<u16> = (0..100).map(|i| u16::from(unit) * 100 + i).collect();
        bank.set_holdings(unit, 0, &values);
    }
    let server = start(bank).await;
    let mut c = Client::connect(server.local_addr()).await;
    for unit in [0u8, 1, 128, 255] {
        let got = c.read_registers(unit, 3, 95, 10).await.unwrap();
        let base = u16::from(unit) * 100;
        let want: Vec<u16> = (95..100).map(|i| base + i).chain([0; 5]).collect();
        assert_eq!(got, want, "unit {unit}");
    }
    server.stop().await;
}
