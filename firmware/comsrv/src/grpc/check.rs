//! Checking a plugin's BatchRead answer against what was asked, as a pure function.
//!
//! A plugin is code the firmware did not write, possibly in another language and updated on its
//! own: its answers are input like bytes off a wire. Values for points that were not asked for,
//! duplicates, NaN or infinity where a number is due, an unspecified quality or a timestamp far
//! in the future are counted and dropped (or, for the timestamp, reported); they never reach
//! Redis and never stop the other values of the same answer.

use std::collections::{BTreeMap, BTreeSet};
use voltage_core::PointType;
use voltage_plugin::v1;
use voltage_store::Quality;

/// How far ahead of comsrv's clock a device timestamp may be before it is reported.
pub const FUTURE_SLACK_MS: u64 = 60_000;

/// Longest piece of plugin text (an error message) carried into a status or log line.
const MAX_TEXT: usize = 200;

pub fn wire_type(kind: PointType) -> v1::PointType {
    match kind {
        PointType::Telemetry => v1::PointType::Telemetry,
        PointType::Signal => v1::PointType::Signal,
        PointType::Control => v1::PointType::Control,
        PointType::Adjustment => v1::PointType::Adjustment,
    }
}

fn from_wire(t: i32) -> Option<PointType> {
    match v1::PointType::try_from(t).ok()? {
        v1::PointType::Telemetry => Some(PointType::Telemetry),
        v1::PointType::Signal => Some(PointType::Signal),
        v1::PointType::Control => Some(PointType::Control),
        v1::PointType::Adjustment => Some(PointType::Adjustment),
        v1::PointType::Unspecified => None,
    }
}

/// Plugin text cut to a length fit for a status field, control characters replaced.
pub fn clip(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_TEXT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > MAX_TEXT {
        out.push('…');
    }
    out
}

/// The usable part of an answer.
#[derive(Debug, Default, PartialEq)]
pub struct Checked {
    /// `(type, point_id, raw value)` of every usable value.
    pub values: Vec<(PointType, u32, f64)>,
    /// Every asked point that is not a good current read, with its mark.
    pub marks: BTreeMap<(PointType, u32), Quality>,
    /// One line per problem (garbage, BAD values, missing points); each counts as an error.
    pub problems: Vec<String>,
}

/// Checks `answer` against the `asked` points. `now_ms` is comsrv's clock.
pub fn check(asked: &[(PointType, u32)], answer: &[v1::PointValue], now_ms: u64) -> Checked {
    let wanted: BTreeSet<(PointType, u32)> = asked.iter().copied().collect();
    let mut seen = BTreeSet::new();
    let mut c = Checked::default();
    for v in answer {
        let Some(kind) = from_wire(v.point_type) else {
            c.problems.push(format!(
                "value for point {} with point_type {} (not T, S, C or A)",
                v.point_id, v.point_type
            ));
            continue;
        };
        let key = (kind, v.point_id);
        if !wanted.contains(&key) {
            c.problems.push(format!(
                "value for {} {} which was not asked for",
                kind.letter(),
                v.point_id
            ));
            continue;
        }
        if !seen.insert(key) {
            c.problems.push(format!(
                "second value for {} {} (the first is kept)",
                kind.letter(),
                v.point_id
            ));
            continue;
        }
        let at = format!("{} {}", kind.letter(), v.point_id);
        let quality = match v1::Quality::try_from(v.quality) {
            Ok(v1::Quality::Good) => Quality::Good,
            Ok(v1::Quality::Uncertain) => Quality::Uncertain,
            Ok(v1::Quality::Bad) => {
                c.problems.push(format!("{at}: bad: {}", clip(&v.error)));
                c.marks.insert(key, Quality::Bad);
                continue;
            }
            _ => {
                c.problems.push(format!(
                    "{at}: quality {} is not GOOD, UNCERTAIN or BAD",
                    v.quality
                ));
                c.marks.insert(key, Quality::Bad);
                continue;
            }
        };
        if !v.value.is_finite() {
            c.problems
                .push(format!("{at}: value {} is not a finite number", v.value));
            c.marks.insert(key, Quality::Bad);
            continue;
        }
        if v.timestamp_ms > now_ms.saturating_add(FUTURE_SLACK_MS) {
            c.problems.push(format!(
                "{at}: timestamp {} is {} s ahead of this controller's clock (value kept)",
                v.timestamp_ms,
                (v.timestamp_ms - now_ms) / 1000
            ));
        }
        if quality != Quality::Good {
            c.marks.insert(key, quality);
        }
        c.values.push((kind, v.point_id, v.value));
    }
    let missing: Vec<String> = asked
        .iter()
        .filter(|k| !seen.contains(k))
        .map(|(k, id)| format!("{} {id}", k.letter()))
        .collect();
    if !missing.is_empty() {
        for k in asked.iter().filter(|k| !seen.contains(k)) {
            c.marks.insert(*k, Quality::Stale);
        }
        let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
        c.problems.push(format!(
            "no value for {} asked point(s): {}{}",
            missing.len(),
            shown.join(", "),
            if missing.len() > 5 { ", ..." } else { "" }
        ));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use PointType::*;

    fn pv(kind: v1::PointType, id: u32, value: f64, q: v1::Quality) -> v1::PointValue {
        v1::PointValue {
            point_id: id,
            point_type: kind as i32,
            value,
            quality: q as i32,
            timestamp_ms: 0,
            error: String::new(),
        }
    }

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn good_values_pass_and_uncertain_ones_are_marked() {
        let asked = [(Telemetry, 1), (Signal, 1)];
        let c = check(
            &asked,
            &[
                pv(v1::PointType::Telemetry, 1, 42.5, v1::Quality::Good),
                pv(v1::PointType::Signal, 1, 1.0, v1::Quality::Uncertain),
            ],
            NOW,
        );
        assert_eq!(c.values, [(Telemetry, 1, 42.5), (Signal, 1, 1.0)]);
        assert_eq!(c.marks, BTreeMap::from([((Signal, 1), Quality::Uncertain)]));
        assert!(c.problems.is_empty(), "{:?}", c.problems);
    }

    #[test]
    fn garbage_is_counted_and_dropped_without_losing_the_good_values() {
        let asked = [(Telemetry, 1), (Telemetry, 2), (Telemetry, 3)];
        let mut future = pv(v1::PointType::Telemetry, 3, 7.0, v1::Quality::Good);
        future.timestamp_ms = NOW + 3_600_000;
        let c = check(
            &asked,
            &[
                pv(v1::PointType::Telemetry, 1, f64::NAN, v1::Quality::Good),
                pv(v1::PointType::Telemetry, 2, 5.0, v1::Quality::Good),
                pv(v1::PointType::Telemetry, 2, 6.0, v1::Quality::Good),
                pv(v1::PointType::Telemetry, 99, 1.0, v1::Quality::Good),
                pv(v1::PointType::Signal, 2, 1.0, v1::Quality::Good),
                pv(v1::PointType::Unspecified, 1, 1.0, v1::Quality::Good),
                v1::PointValue {
                    point_type: 77,
                    ..pv(v1::PointType::Telemetry, 1, 1.0, v1::Quality::Good)
                },
                future,
            ],
            NOW,
        );
        assert_eq!(c.values, [(Telemetry, 2, 5.0), (Telemetry, 3, 7.0)]);
        assert_eq!(c.marks, BTreeMap::from([((Telemetry, 1), Quality::Bad)]));
        let p = c.problems.join("\n");
        assert_eq!(c.problems.len(), 7, "{p}");
        for want in [
            "T 1: value NaN is not a finite number",
            "second value for T 2",
            "T 99 which was not asked for",
            "S 2 which was not asked for",
            "point 1 with point_type 0",
            "point_type 77",
            "T 3: timestamp",
        ] {
            assert!(p.contains(want), "{want} missing in:\n{p}");
        }
    }

    #[test]
    fn bad_and_unspecified_quality_and_missing_points_are_marked() {
        let asked = [(Telemetry, 1), (Telemetry, 2), (Adjustment, 4)];
        let mut bad = pv(v1::PointType::Telemetry, 1, 0.0, v1::Quality::Bad);
        bad.error = "meter\u{7} silent ".repeat(50);
        let c = check(
            &asked,
            &[
                bad,
                pv(v1::PointType::Telemetry, 2, 3.0, v1::Quality::Unspecified),
            ],
            NOW,
        );
        assert!(c.values.is_empty());
        assert_eq!(
            c.marks,
            BTreeMap::from([
                ((Telemetry, 1), Quality::Bad),
                ((Telemetry, 2), Quality::Bad),
                ((Adjustment, 4), Quality::Stale),
            ])
        );
        assert_eq!(c.problems.len(), 3, "{:?}", c.problems);
        assert!(c.problems[0].starts_with("T 1: bad: meter  silent"));
        assert!(c.problems[0].chars().count() < 230, "clipped");
        assert!(c.problems[2].contains("no value for 1 asked point(s): A 4"));
    }
}
