//! Ports for the servers the suites start as processes (redis-server, influxd, mosquitto,
//! nginx, the daemon), which must be told a port before they bind it.
//!
//! Asking the kernel for an ephemeral port and releasing it races twice: another test of the
//! same binary may be handed the same port before the process binds it, and the kernel hands
//! ports of that range to every outgoing connection too (a Redis client's local port can take
//! it). Both happened in CI ("Address already in use" from the daemon, a broker that never
//! came up). So ports come from below the ephemeral range (Linux: 32768-60999), one counter
//! per test binary starting at a place derived from the process id, each checked free when
//! handed out. Test binaries run one after another, so within a run no two servers are given
//! the same port.

use std::sync::atomic::{AtomicU32, Ordering};

const FIRST: u32 = 10_000;
const LAST: u32 = 32_000;

/// A port below the ephemeral range that nothing listens on now and that no other caller in
/// this process has been given.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = LAST - FIRST;
    let start = FIRST + (std::process::id().wrapping_mul(7919) % span);
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + (start - FIRST + n) % span;
        let port = u16::try_from(port).expect("below 32000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{LAST}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_are_unique_and_outside_the_ephemeral_range() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let p = super::free_port();
            assert!((10_000..32_000).contains(&p), "{p}");
            assert!(seen.insert(p), "{p} handed out twice");
        }
    }
}
