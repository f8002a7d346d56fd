//! Pure state machines for link and slave health: reconnect backoff and per-slave backoff.
//!
//! Why: on a shared bus or TCP gateway, a dead slave that is polled every cycle costs a full
//! timeout each time and starves the healthy ones. After `after` consecutive failed polls a slave
//! is skipped for a delay that doubles per further failure (capped), then probed once; one
//! success restores it. Time is passed in, so the machines are tested without a clock.

use rand::Rng;
use std::time::Duration;

/// Exponential backoff with jitter for reconnecting a channel.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The delay before the next attempt: `initial * 2^attempt`, capped at `max`, with up to 20%
    /// random jitter subtracted so that many channels do not reconnect in lockstep.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = rng.random_range(0.0..0.2);
        base.mul_f64(1.0 - jitter)
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Health of one slave as seen by the poller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlaveState {
    /// Answering, or failing fewer than `after` times in a row.
    Online { failures: u32 },
    /// Skipped until `until_ms`; then one probe poll decides.
    BackedOff { failures: u32, until_ms: u64 },
}

#[derive(Debug, Clone)]
pub struct SlaveHealth {
    state: SlaveState,
    after: u32,
    base_ms: u64,
    max_ms: u64,
}

impl SlaveHealth {
    /// `after`: failures before backing off; `base_ms`: first backoff; `max_ms`: cap.
    pub fn new(after: u32, base_ms: u64, max_ms: u64) -> Self {
        SlaveHealth {
            state: SlaveState::Online { failures: 0 },
            after: after.max(1),
            base_ms: base_ms.max(1),
            max_ms: max_ms.max(base_ms.max(1)),
        }
    }

    pub fn state(&self) -> &SlaveState {
        &self.state
    }

    /// Whether the slave should be polled at `now_ms`.
    pub fn should_poll(&self, now_ms: u64) -> bool {
        match self.state {
            SlaveState::Online { .. } => true,
            SlaveState::BackedOff { until_ms, .. } => now_ms >= until_ms,
        }
    }

    /// Whether the slave is currently considered offline.
    pub fn is_offline(&self) -> bool {
        matches!(self.state, SlaveState::BackedOff { .. })
    }

    pub fn on_success(&mut self) {
        self.state = SlaveState::Online { failures: 0 };
    }

    pub fn on_failure(&mut self, now_ms: u64) {
        let failures = match self.state {
            SlaveState::Online { failures } | SlaveState::BackedOff { failures, .. } => {
                failures.saturating_add(1)
            }
        };
        if failures < self.after {
            self.state = SlaveState::Online { failures };
            return;
        }
        let exp = (failures - self.after).min(20);
        let delay = self.base_ms.saturating_mul(1u64 << exp).min(self.max_ms);
        self.state = SlaveState::BackedOff {
            failures,
            until_ms: now_ms.saturating_add(delay),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let d: Vec<u128> = (0..6).map(|_| b.next_delay(&mut rng).as_millis()).collect();
        let bases = [100u128, 200, 400, 800, 1000, 1000];
        for (got, base) in d.iter().zip(bases) {
            assert!(*got <= base && *got >= base * 8 / 10, "{got} vs {base}");
        }
        b.reset();
        assert!(b.next_delay(&mut rng).as_millis() <= 100);
    }

    #[test]
    fn a_slave_is_backed_off_after_n_failures_and_restored_by_one_success() {
        let mut h = SlaveHealth::new(3, 1000, 8000);
        h.on_failure(0);
        h.on_failure(0);
        assert!(h.should_poll(0) && !h.is_offline());
        h.on_failure(10);
        assert_eq!(
            h.state(),
            &SlaveState::BackedOff {
                failures: 3,
                until_ms: 1010
            }
        );
        assert!(!h.should_poll(1009));
        assert!(h.should_poll(1010));
        h.on_failure(1010); // the probe failed: twice as long
        assert_eq!(
            h.state(),
            &SlaveState::BackedOff {
                failures: 4,
                until_ms: 3010
            }
        );
        for _ in 0..10 {
            h.on_failure(5000);
        }
        assert_eq!(
            h.state(),
            &SlaveState::BackedOff {
                failures: 14,
                until_ms: 13_000
            }
        );
        h.on_success();
        assert!(h.should_poll(5000) && !h.is_offline());
    }
}
