//! Threshold alarm rules on points, as a pure state machine (time passed in, no I/O).
//!
//! An alarm is raised when the value is above `high` (or below `low`) continuously for
//! `on_delay_ms`, and cleared when it is back inside the band narrowed by `deadband` continuously
//! for `off_delay_ms`: a value hovering at the limit does not flap. A `latching` rule never clears
//! by itself (the operator resolves it; [`Threshold::operator_resolved`] re-arms it). While
//! shelved, a rule raises nothing; its state keeps following the value, so an alarm whose
//! condition still holds when the shelving expires is raised then.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRule {
    pub id: String,
    /// `comsrv:{channel}:{T|S|C|A}:{point}`.
    pub point: String,
    pub title: String,
    #[serde(default = "warning")]
    pub level: String,
    pub high: Option<f64>,
    pub low: Option<f64>,
    #[serde(default)]
    pub deadband: f64,
    #[serde(default)]
    pub on_delay_ms: u64,
    #[serde(default)]
    pub off_delay_ms: u64,
    #[serde(default)]
    pub latching: bool,
}

fn warning() -> String {
    "Warning".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    Normal,
    /// Over the limit since `since`, waiting for the on-delay.
    Pending {
        since: u64,
    },
    Active,
    /// Back in the band since `since`, waiting for the off-delay.
    Clearing {
        since: u64,
    },
    /// Condition gone, alarm kept for the operator (latching).
    Latched,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Raise,
    Clear,
}

#[derive(Debug, Clone)]
pub struct Threshold {
    pub rule: ThresholdRule,
    state: State,
    /// Whether an alarm is open for this rule (raised and not cleared/resolved).
    open: bool,
    shelved_until: Option<u64>,
}

impl Threshold {
    pub fn new(rule: ThresholdRule) -> Self {
        Threshold {
            rule,
            state: State::Normal,
            open: false,
            shelved_until: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    fn violates(&self, v: f64) -> bool {
        self.rule.high.is_some_and(|h| v > h) || self.rule.low.is_some_and(|l| v < l)
    }

    fn cleared(&self, v: f64) -> bool {
        self.rule.high.is_none_or(|h| v <= h - self.rule.deadband)
            && self.rule.low.is_none_or(|l| v >= l + self.rule.deadband)
    }

    pub fn shelve(&mut self, until_ms: u64) {
        self.shelved_until = Some(until_ms);
    }

    /// Until when (epoch ms) the rule raises nothing, if it is shelved at `now`.
    pub fn shelved_until(&self, now: u64) -> Option<u64> {
        self.shelved_until.filter(|t| now < *t)
    }

    /// The operator resolved the alarm: forget it and re-arm (the state follows the value again).
    pub fn operator_resolved(&mut self) {
        self.open = false;
        if self.state == State::Latched {
            self.state = State::Normal;
        }
    }

    /// An unresolved alarm of this rule is already in the store (left by a previous run): the
    /// rule takes it over as if it had raised it, so it resolves it once the value is back in
    /// the band (or latches it), and does not raise a second one while the condition holds.
    pub fn adopt_open(&mut self) {
        self.open = true;
        if matches!(self.state, State::Normal | State::Pending { .. }) {
            self.state = State::Active;
        }
    }

    /// Feeds one reading (`None`: no value; the state holds). Returns what to do, if anything.
    pub fn step(&mut self, value: Option<f64>, now: u64) -> Option<Transition> {
        let v = value?;
        let r = &self.rule;
        self.state = match self.state {
            State::Normal | State::Latched if self.violates(v) => State::Pending { since: now },
            State::Pending { since } if !self.violates(v) => {
                let _ = since;
                State::Normal
            }
            State::Active if self.cleared(v) => State::Clearing { since: now },
            State::Clearing { .. } if !self.cleared(v) => State::Active,
            s => s,
        };
        if let State::Pending { since } = self.state {
            if now.saturating_sub(since) >= r.on_delay_ms {
                self.state = State::Active;
            }
        }
        if let State::Clearing { since } = self.state {
            if now.saturating_sub(since) >= r.off_delay_ms {
                self.state = if r.latching && self.open {
                    State::Latched
                } else {
                    State::Normal
                };
            }
        }
        let shelved = self.shelved_until.is_some_and(|t| now < t);
        match self.state {
            State::Active | State::Clearing { .. } if !self.open && !shelved => {
                self.open = true;
                Some(Transition::Raise)
            }
            State::Normal if self.open => {
                self.open = false;
                Some(Transition::Clear)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(on: u64, off: u64, latching: bool) -> Threshold {
        Threshold::new(ThresholdRule {
            id: "t".into(),
            point: "comsrv:1:T:1".into(),
            title: "hot".into(),
            level: "Major".into(),
            high: Some(80.0),
            low: None,
            deadband: 2.0,
            on_delay_ms: on,
            off_delay_ms: off,
            latching,
        })
    }

    #[test]
    fn raises_after_the_on_delay_and_not_before() {
        let mut t = rule(1000, 0, false);
        assert_eq!(t.step(Some(85.0), 0), None);
        assert_eq!(t.step(Some(85.0), 999), None);
        assert_eq!(t.step(Some(85.0), 1000), Some(Transition::Raise));
        assert_eq!(
            t.step(Some(90.0), 2000),
            None,
            "one alarm while it stays active"
        );
    }

    #[test]
    fn a_dip_during_the_on_delay_restarts_it() {
        let mut t = rule(1000, 0, false);
        t.step(Some(85.0), 0);
        t.step(Some(79.0), 500);
        assert_eq!(t.step(Some(85.0), 1200), None);
        assert_eq!(t.step(Some(85.0), 2200), Some(Transition::Raise));
    }

    #[test]
    fn the_deadband_and_off_delay_prevent_flapping() {
        let mut t = rule(0, 1000, false);
        assert_eq!(t.step(Some(81.0), 0), Some(Transition::Raise));
        assert_eq!(
            t.step(Some(79.0), 100),
            None,
            "79 is inside the deadband (clears at 78)"
        );
        assert_eq!(t.step(Some(77.0), 200), None, "off-delay running");
        assert_eq!(t.step(Some(79.5), 700), None, "back above 78: still active");
        assert_eq!(t.step(Some(77.0), 800), None);
        assert_eq!(t.step(Some(77.0), 1800), Some(Transition::Clear));
        assert_eq!(t.state(), State::Normal);
    }

    #[test]
    fn latching_alarms_wait_for_the_operator() {
        let mut t = rule(0, 0, true);
        assert_eq!(t.step(Some(81.0), 0), Some(Transition::Raise));
        assert_eq!(t.step(Some(70.0), 10), None, "no auto clear");
        assert_eq!(t.state(), State::Latched);
        assert!(t.is_open());
        t.operator_resolved();
        assert_eq!(t.step(Some(70.0), 20), None);
        assert_eq!(t.step(Some(81.0), 30), Some(Transition::Raise), "re-armed");
    }

    #[test]
    fn shelving_suppresses_raising_until_it_expires() {
        let mut t = rule(0, 0, false);
        assert_eq!(t.shelved_until(0), None);
        t.shelve(1000);
        assert_eq!(t.shelved_until(999), Some(1000));
        assert_eq!(t.shelved_until(1000), None, "expired");
        assert_eq!(t.step(Some(85.0), 0), None);
        assert_eq!(t.step(Some(85.0), 500), None);
        assert_eq!(
            t.step(Some(85.0), 1000),
            Some(Transition::Raise),
            "still over the limit when shelving ends"
        );
    }

    #[test]
    fn an_adopted_alarm_is_kept_while_the_condition_holds_and_cleared_after() {
        let mut t = rule(0, 500, false);
        t.adopt_open();
        assert_eq!(t.step(Some(85.0), 0), None, "no second alarm");
        assert!(t.is_open());
        assert_eq!(t.step(Some(70.0), 100), None, "off-delay running");
        assert_eq!(t.step(Some(70.0), 600), Some(Transition::Clear));
        let mut t = rule(0, 0, false);
        t.adopt_open();
        assert_eq!(
            t.step(Some(70.0), 0),
            Some(Transition::Clear),
            "gone while nobody watched"
        );
        let mut t = rule(0, 0, true);
        t.adopt_open();
        assert_eq!(
            t.step(Some(70.0), 0),
            None,
            "a latching one waits for the operator"
        );
        assert_eq!(t.state(), State::Latched);
    }

    #[test]
    fn missing_values_hold_the_state() {
        let mut t = rule(0, 0, false);
        t.step(Some(85.0), 0);
        assert_eq!(t.step(None, 10), None);
        assert!(t.is_open());
    }
}
