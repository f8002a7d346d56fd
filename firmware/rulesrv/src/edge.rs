//! The firing decision of a rule, as a pure state machine: actions fire on the rising edge of
//! the condition (false/unknown -> true), not on every evaluation while it stays true, and not
//! again within the cooldown after a firing.

/// Per-rule edge state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edge {
    was_true: bool,
    last_fired_ms: Option<u64>,
}

impl Edge {
    /// Feeds one evaluation (`None` = unknown, treated as false); returns whether to fire.
    pub fn step(&mut self, value: Option<bool>, now_ms: u64, cooldown_ms: u64) -> bool {
        let is_true = value == Some(true);
        let rising = is_true && !self.was_true;
        self.was_true = is_true;
        let cooled = self
            .last_fired_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= cooldown_ms);
        if rising && cooled {
            self.last_fired_ms = Some(now_ms);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_per_rising_edge() {
        let mut e = Edge::default();
        assert!(e.step(Some(true), 0, 0));
        assert!(!e.step(Some(true), 10, 0), "still true: no second firing");
        assert!(!e.step(Some(false), 20, 0));
        assert!(e.step(Some(true), 30, 0));
    }

    #[test]
    fn unknown_counts_as_false() {
        let mut e = Edge::default();
        assert!(!e.step(None, 0, 0));
        assert!(e.step(Some(true), 1, 0));
        assert!(!e.step(None, 2, 0));
        assert!(e.step(Some(true), 3, 0));
    }

    #[test]
    fn cooldown_suppresses_a_quick_second_edge() {
        let mut e = Edge::default();
        assert!(e.step(Some(true), 0, 1000));
        e.step(Some(false), 100, 1000);
        assert!(!e.step(Some(true), 200, 1000), "within the cooldown");
        e.step(Some(false), 1100, 1000);
        assert!(e.step(Some(true), 1200, 1000));
    }
}
