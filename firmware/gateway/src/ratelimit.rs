//! Per-client request rate limit: one token bucket per client IP address.
//!
//! Why per IP and before authentication: a misbehaving HMI or a scanner on the site network must
//! not starve the controller's two cores, whether or not it holds a token. The bucket is pure
//! (time is passed in) so its arithmetic is tested without sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn full(burst: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: burst as f64,
            last: now,
        }
    }

    /// Takes one token at `now`, or says how long until one is there.
    pub fn take(&mut self, now: Instant, per_second: f64, burst: u32) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(burst as f64);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / per_second))
        }
    }

    /// Whether the bucket has refilled completely by `now` (its client can be forgotten).
    fn is_full(&self, now: Instant, per_second: f64, burst: u32) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * per_second >= burst as f64
    }
}

/// Buckets of every client seen recently.
pub struct Limiter {
    per_second: f64,
    burst: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// Past this many clients, those whose bucket is full again are dropped (a full bucket is what
/// a new client gets anyway).
const PRUNE_AT: usize = 4096;

impl Limiter {
    pub fn new(per_second: f64, burst: u32) -> Limiter {
        Limiter {
            per_second,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// One request of `client` at `now`: allowed, or refused with the time to wait.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= PRUNE_AT {
            let (rate, burst) = (self.per_second, self.burst);
            b.retain(|_, k| !k.is_full(now, rate, burst));
        }
        b.entry(client)
            .or_insert_with(|| Bucket::full(self.burst, now))
            .take(now, self.per_second, self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_rate_and_the_wait_is_exact() {
        let t0 = Instant::now();
        let mut b = Bucket::full(3, t0);
        for _ in 0..3 {
            assert_eq!(b.take(t0, 2.0, 3), Ok(()));
        }
        // Empty: one token comes after 1 / 2 s.
        assert_eq!(b.take(t0, 2.0, 3), Err(Duration::from_millis(500)));
        let t1 = t0 + Duration::from_millis(250);
        assert_eq!(b.take(t1, 2.0, 3), Err(Duration::from_millis(250)));
        let t2 = t0 + Duration::from_millis(500);
        assert_eq!(b.take(t2, 2.0, 3), Ok(()));
        assert!(b.take(t2, 2.0, 3).is_err());
        // A long pause refills to the burst, no more.
        let t3 = t2 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.take(t3, 2.0, 3), Ok(()));
        }
        assert!(b.take(t3, 2.0, 3).is_err());
    }

    #[test]
    fn clients_have_their_own_buckets_and_full_ones_are_forgotten() {
        let l = Limiter::new(1.0, 1);
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.check(a, t0).is_ok());
        assert!(l.check(a, t0).is_err());
        assert!(l.check(b, t0).is_ok(), "another client is not limited by a");
        for i in 0..PRUNE_AT as u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            let _ = l.check(ip, t0);
        }
        let later = t0 + Duration::from_secs(5);
        assert!(l.check(a, later).is_ok());
        assert!(l.buckets.lock().unwrap().len() < 10, "full buckets pruned");
    }
}
