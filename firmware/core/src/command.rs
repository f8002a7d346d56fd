//! Validation of control and adjustment commands against their point tables, as pure functions.
//!
//! A command outside what the table allows is refused with a message naming the limit, never
//! clamped: a clamped setpoint on a battery inverter is a different setpoint than the operator
//! asked for.

use crate::points::PointDef;

/// What to write for a command, in raw (device) units.
#[derive(Debug, Clone, PartialEq)]
pub enum WritePlan {
    /// Write one value (latching control or adjustment).
    Single { raw: f64 },
    /// Write `on`, wait `ms`, write `off` (momentary control).
    Pulse { on: f64, off: f64, ms: u64 },
}

fn name(def: &PointDef) -> String {
    format!("point {} ({})", def.point_id, def.signal_name)
}

/// A control command: `value` is 1 (on) or 0 (off).
pub fn plan_control(def: &PointDef, value: f64) -> Result<WritePlan, String> {
    if value != 0.0 && value != 1.0 {
        return Err(format!(
            "control value {value} for {} must be 0 or 1",
            name(def)
        ));
    }
    let spec = def.control.clone().unwrap_or(crate::points::ControlSpec {
        control_type: "latching".into(),
        on_value: 1.0,
        off_value: 0.0,
        pulse_duration_ms: 0,
    });
    let on = (value == 1.0) != def.reverse;
    if spec.control_type == "momentary" {
        if value != 1.0 {
            return Err(format!(
                "{} is a momentary control: it is triggered with 1, not 0",
                name(def)
            ));
        }
        let (on_v, off_v) = if def.reverse {
            (spec.off_value, spec.on_value)
        } else {
            (spec.on_value, spec.off_value)
        };
        return Ok(WritePlan::Pulse {
            on: on_v,
            off: off_v,
            ms: spec.pulse_duration_ms,
        });
    }
    Ok(WritePlan::Single {
        raw: if on { spec.on_value } else { spec.off_value },
    })
}

/// An adjustment command in engineering units; returns the raw value to write.
pub fn plan_adjustment(def: &PointDef, value: f64) -> Result<f64, String> {
    if !value.is_finite() {
        return Err(format!("value for {} is not a finite number", name(def)));
    }
    if let Some(l) = &def.limits {
        if let Some(min) = l.min_value.filter(|m| value < *m) {
            return Err(format!(
                "value {value} is below min_value {min} of {}",
                name(def)
            ));
        }
        if let Some(max) = l.max_value.filter(|m| value > *m) {
            return Err(format!(
                "value {value} is above max_value {max} of {}",
                name(def)
            ));
        }
        if let Some(step) = l.step {
            let base = l.min_value.unwrap_or(0.0);
            let n = (value - base) / step;
            if (n - n.round()).abs() > 1e-6 {
                return Err(format!(
                    "value {value} is not a multiple of step {step} (from {base}) of {}",
                    name(def)
                ));
            }
        }
    }
    crate::codec::raw_from_engineering(value, def.scale, def.offset)
        .ok_or_else(|| format!("{} has scale 0: no raw value gives {value}", name(def)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::points::{ControlSpec, Limits};

    fn def() -> PointDef {
        PointDef {
            point_id: 3,
            signal_name: "Power Limit".into(),
            scale: 0.1,
            offset: 0.0,
            unit: "kW".into(),
            reverse: false,
            data_type: "float".into(),
            description: String::new(),
            control: None,
            limits: Some(Limits {
                min_value: Some(0.0),
                max_value: Some(100.0),
                step: Some(0.5),
            }),
        }
    }

    #[test]
    fn adjustments_inside_the_limits_become_raw_values() {
        assert!((plan_adjustment(&def(), 50.5).unwrap() - 505.0).abs() < 1e-9);
    }

    #[test]
    fn adjustments_outside_the_limits_are_refused_naming_the_limit() {
        assert_eq!(
            plan_adjustment(&def(), 120.0).unwrap_err(),
            "value 120 is above max_value 100 of point 3 (Power Limit)"
        );
        assert!(plan_adjustment(&def(), -1.0)
            .unwrap_err()
            .contains("below min_value 0"));
        assert!(plan_adjustment(&def(), 50.3)
            .unwrap_err()
            .contains("not a multiple of step 0.5"));
        assert!(plan_adjustment(&def(), f64::NAN).is_err());
    }

    #[test]
    fn controls_map_to_on_and_off_values_with_reverse_and_pulses() {
        let mut d = def();
        d.limits = None;
        d.control = Some(ControlSpec {
            control_type: "latching".into(),
            on_value: 0xFF00 as f64,
            off_value: 0.0,
            pulse_duration_ms: 0,
        });
        assert_eq!(
            plan_control(&d, 1.0).unwrap(),
            WritePlan::Single { raw: 65280.0 }
        );
        assert_eq!(
            plan_control(&d, 0.0).unwrap(),
            WritePlan::Single { raw: 0.0 }
        );
        d.reverse = true;
        assert_eq!(
            plan_control(&d, 1.0).unwrap(),
            WritePlan::Single { raw: 0.0 }
        );
        assert!(plan_control(&d, 2.0)
            .unwrap_err()
            .contains("must be 0 or 1"));
        d.reverse = false;
        d.control = Some(ControlSpec {
            control_type: "momentary".into(),
            on_value: 1.0,
            off_value: 0.0,
            pulse_duration_ms: 300,
        });
        assert_eq!(
            plan_control(&d, 1.0).unwrap(),
            WritePlan::Pulse {
                on: 1.0,
                off: 0.0,
                ms: 300
            }
        );
        assert!(plan_control(&d, 0.0).unwrap_err().contains("momentary"));
    }
}
