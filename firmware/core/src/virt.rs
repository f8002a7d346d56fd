//! Virtual (simulated) point patterns: sine, random walk, step function and constant.
//!
//! A virtual channel lets integrators commission models, alarms and dashboards before the
//! devices are wired. Patterns are pure functions of elapsed time (random walk also of its
//! previous value and a random source), so they are tested without a clock.

use rand::Rng;

/// How one virtual point moves. Parsed from the `pattern` and `params` cells of
/// `mapping/{type}_mapping.csv`, e.g. `sine` with `amplitude=100;frequency=0.1;phase=0;offset=50`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "pattern", rename_all = "snake_case")]
pub enum Pattern {
    /// `offset + amplitude * sin(2π·frequency·t + phase)`; frequency in Hz, phase in radians.
    Sine {
        amplitude: f64,
        frequency: f64,
        phase: f64,
        offset: f64,
    },
    /// Starts at `initial`, moves by a uniform step in `[-step, step]` per sample, clamped to
    /// `[min, max]`.
    RandomWalk {
        initial: f64,
        step: f64,
        min: f64,
        max: f64,
    },
    /// Cycles through `values`, holding each for `duration_ms`.
    Step { values: Vec<f64>, duration_ms: u64 },
    /// Always `value`.
    Constant { value: f64 },
}

impl Pattern {
    pub const NAMES: &'static str = "sine, random_walk, step, constant";

    /// Builds a pattern from its name and `key=value;key=value` parameters. Unknown names and
    /// keys, missing keys and inconsistent bounds are errors.
    pub fn parse(name: &str, params: &str) -> Result<Pattern, String> {
        let mut kv: Vec<(String, String)> = Vec::new();
        for part in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("parameter {part:?} is not key=value"))?;
            kv.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let allowed: &[&str] = match name {
            "sine" => &["amplitude", "frequency", "phase", "offset"],
            "random_walk" => &["initial", "step", "min", "max"],
            "step" => &["values", "duration_ms"],
            "constant" => &["value"],
            _ => {
                return Err(format!(
                    "unknown pattern {name:?}; expected one of {}",
                    Self::NAMES
                ))
            }
        };
        for (k, _) in &kv {
            if !allowed.contains(&k.as_str()) {
                return Err(format!(
                    "unknown parameter {k:?} for {name}; expected {}",
                    allowed.join(", ")
                ));
            }
        }
        let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        let num = |k: &str, default: Option<f64>| -> Result<f64, String> {
            match get(k) {
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| format!("{k}={v:?} is not a finite number")),
                None => default.ok_or_else(|| format!("{name} needs {k}=...")),
            }
        };
        let p = match name {
            "sine" => Pattern::Sine {
                amplitude: num("amplitude", None)?,
                frequency: num("frequency", None)?,
                phase: num("phase", Some(0.0))?,
                offset: num("offset", Some(0.0))?,
            },
            "random_walk" => {
                let (min, max) = (num("min", None)?, num("max", None)?);
                let initial = num("initial", Some((min + max) / 2.0))?;
                let step = num("step", None)?;
                if min > max {
                    return Err(format!("min {min} is greater than max {max}"));
                }
                if !(min..=max).contains(&initial) {
                    return Err(format!("initial {initial} is outside [{min}, {max}]"));
                }
                if step < 0.0 {
                    return Err(format!("step {step} is negative"));
                }
                Pattern::RandomWalk {
                    initial,
                    step,
                    min,
                    max,
                }
            }
            "step" => {
                let values = get("values")
                    .ok_or("step needs values=v1|v2|...")?
                    .split('|')
                    .map(|v| {
                        v.trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|x| x.is_finite())
                            .ok_or_else(|| format!("step value {v:?} is not a finite number"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let duration_ms = num("duration_ms", None)?;
                if duration_ms < 1.0 {
                    return Err("duration_ms must be at least 1".into());
                }
                Pattern::Step {
                    values,
                    duration_ms: duration_ms as u64,
                }
            }
            _ => Pattern::Constant {
                value: num("value", None)?,
            },
        };
        Ok(p)
    }
}

/// One virtual point's generator state.
#[derive(Debug, Clone)]
pub struct Generator {
    pattern: Pattern,
    last: f64,
}

impl Generator {
    pub fn new(pattern: Pattern) -> Self {
        let last = match &pattern {
            Pattern::RandomWalk { initial, .. } => *initial,
            _ => 0.0,
        };
        Generator { pattern, last }
    }

    /// The value at `elapsed_ms` since the channel started.
    pub fn sample(&mut self, elapsed_ms: u64, rng: &mut impl Rng) -> f64 {
        let v = match &self.pattern {
            Pattern::Sine {
                amplitude,
                frequency,
                phase,
                offset,
            } => {
                let t = elapsed_ms as f64 / 1000.0;
                offset + amplitude * (2.0 * std::f64::consts::PI * frequency * t + phase).sin()
            }
            Pattern::RandomWalk { step, min, max, .. } => {
                let delta = if *step > 0.0 {
                    rng.random_range(-*step..=*step)
                } else {
                    0.0
                };
                (self.last + delta).clamp(*min, *max)
            }
            Pattern::Step {
                values,
                duration_ms,
            } => {
                if values.is_empty() {
                    0.0
                } else {
                    values[((elapsed_ms / duration_ms) % values.len() as u64) as usize]
                }
            }
            Pattern::Constant { value } => *value,
        };
        self.last = v;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn sine_stays_within_offset_plus_minus_amplitude_and_hits_its_peak() {
        let mut g =
            Generator::new(Pattern::parse("sine", "amplitude=100;frequency=1;offset=50").unwrap());
        let mut rng = StdRng::seed_from_u64(1);
        assert!((g.sample(250, &mut rng) - 150.0).abs() < 1e-9);
        for t in (0..5000).step_by(7) {
            let v = g.sample(t, &mut rng);
            assert!((-50.0..=150.0).contains(&v), "{v}");
        }
    }

    #[test]
    fn random_walk_never_leaves_its_bounds() {
        let mut g = Generator::new(
            Pattern::parse("random_walk", "initial=45;step=10;min=-50;max=50").unwrap(),
        );
        let mut rng = StdRng::seed_from_u64(7);
        let vals: Vec<f64> = (0..10_000).map(|i| g.sample(i, &mut rng)).collect();
        assert!(vals.iter().all(|v| (-50.0..=50.0).contains(v)));
        assert!(vals.iter().any(|v| *v != 45.0), "it must move");
    }

    #[test]
    fn step_cycles_through_its_values() {
        let mut g =
            Generator::new(Pattern::parse("step", "values=0|100|50|75;duration_ms=500").unwrap());
        let mut rng = StdRng::seed_from_u64(0);
        let got: Vec<f64> = [0, 499, 500, 1000, 1500, 2000]
            .iter()
            .map(|t| g.sample(*t, &mut rng))
            .collect();
        assert_eq!(got, vec![0.0, 0.0, 100.0, 50.0, 75.0, 0.0]);
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        assert!(Pattern::parse("saw", "")
            .unwrap_err()
            .contains("unknown pattern"));
        assert!(Pattern::parse("sine", "amplitude=1")
            .unwrap_err()
            .contains("frequency"));
        assert!(Pattern::parse("sine", "amplitude=1;frequency=1;colour=red")
            .unwrap_err()
            .contains("colour"));
        assert!(Pattern::parse("random_walk", "step=1;min=5;max=1")
            .unwrap_err()
            .contains("greater"));
        assert!(Pattern::parse("step", "values=1|x;duration_ms=5")
            .unwrap_err()
            .contains("\"x\""));
        assert!(Pattern::parse("constant", "value=nan").is_err());
    }
}
