//! Initial values from the command line (`--set UNIT:TABLE:ADDR=VALUE`) and the
//! `--animate` random walk over them.
//!
//! Lives in the library rather than the binary so the parsing and the walk are unit
//! tested, and so a test harness can seed a bank with the same syntax the demo
//! scripts use.

use std::collections::HashMap;
use std::str::FromStr;

use rand::Rng;
use thiserror::Error;

use crate::bank::{Bank, Table};

/// How far an animated register may drift from its initial value.
pub const WALK_BOUND: i16 = 1;

/// Why a `--set` argument was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PresetError {
    /// Not of the form `UNIT:TABLE:ADDR=VALUE`.
    #[error("expected UNIT:TABLE:ADDR=VALUE, got {0:?}")]
    Syntax(String),
    /// The unit id is not 0..=255.
    #[error("bad unit id {0:?} (0..=255)")]
    Unit(String),
    /// The table is not one of hr, ir, co, di.
    #[error("bad table {0:?} (hr, ir, co or di)")]
    Table(String),
    /// The address is not 0..=65535.
    #[error("bad address {0:?} (0..=65535)")]
    Address(String),
    /// The value does not fit the table.
    #[error("bad value {0:?} for {1}")]
    Value(String, &'static str),
}

/// One initial value: `UNIT:TABLE:ADDR=VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// Unit (slave) id.
    pub unit: u8,
    /// Target table.
    pub table: Table,
    /// Register or bit address.
    pub addr: u16,
    /// Register value, or 0/1 for bits.
    pub value: u16,
}

impl Preset {
    /// Store this value in the bank.
    pub fn apply(&self, bank: &Bank) {
        bank.set(self.unit, self.table, self.addr, self.value);
    }
}

fn parse_table(s: &str) -> Option<Table> {
    match s.to_ascii_lowercase().as_str() {
        "hr" => Some(Table::Holding),
        "ir" => Some(Table::Input),
        "co" => Some(Table::Coil),
        "di" => Some(Table::Discrete),
        _ => None,
    }
}

/// Decimal or `0x` hex `u16`; negative decimals are stored as two's complement `i16`.
fn parse_register(s: &str) -> Option<u16> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return u16::from_str_radix(hex, 16).ok();
    }
    if s.starts_with('-') {
        return s.parse::<i16>().ok().map(|v| v as u16);
    }
    s.parse::<u16>().ok()
}

fn parse_bit(s: &str) -> Option<u16> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "on" => Some(1),
        "0" | "false" | "off" => Some(0),
        _ => None,
    }
}

impl FromStr for Preset {
    type Err = PresetError;

    fn from_str(s: &str) -> Result<Preset, PresetError> {
        let syntax = || PresetError::Syntax(s.to_owned());
        let (target, value) = s.split_once('=').ok_or_else(syntax)?;
        let mut parts = target.split(':');
        let (Some(unit), Some(table), Some(addr), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(syntax());
        };
        let unit = unit.trim();
        let unit = unit
            .parse()
            .map_err(|_| PresetError::Unit(unit.to_owned()))?;
        let table_s = table.trim();
        let table = parse_table(table_s).ok_or_else(|| PresetError::Table(table_s.to_owned()))?;
        let addr = addr.trim();
        let addr = addr
            .parse()
            .map_err(|_| PresetError::Address(addr.to_owned()))?;
        let value_s = value.trim();
        let value = match table {
            Table::Holding | Table::Input => parse_register(value_s)
                .ok_or_else(|| PresetError::Value(value_s.to_owned(), "a register (u16/i16)"))?,
            Table::Coil | Table::Discrete => parse_bit(value_s)
                .ok_or_else(|| PresetError::Value(value_s.to_owned(), "a bit (0/1)"))?,
        };
        Ok(Preset {
            unit,
            table,
            addr,
            value,
        })
    }
}

/// One register being animated.
#[derive(Debug, Clone, Copy)]
struct Walker {
    preset: Preset,
    offset: i16,
}

/// Random walk of preset registers around their initial values, so a demo shows
/// live-looking data. Bits are left alone.
#[derive(Debug, Clone, Default)]
pub struct Animator {
    walkers: Vec<Walker>,
}

impl Animator {
    /// Animate every holding/input register preset (the last preset of a point wins).
    pub fn new(presets: &[Preset]) -> Animator {
        let mut latest: HashMap<(u8, Table, u16), Preset> = HashMap::new();
        let mut order = Vec::new();
        for p in presets {
            if matches!(p.table, Table::Holding | Table::Input) {
                let key = (p.unit, p.table, p.addr);
                if latest.insert(key, *p).is_none() {
                    order.push(key);
                }
            }
        }
        let walkers = order
            .iter()
            .filter_map(|key| latest.get(key))
            .map(|&preset| Walker { preset, offset: 0 })
            .collect();
        Animator { walkers }
    }

    /// Number of animated registers.
    pub fn len(&self) -> usize {
        self.walkers.len()
    }

    /// True when nothing is animated.
    pub fn is_empty(&self) -> bool {
        self.walkers.is_empty()
    }

    /// Move every register one step (±1), staying within [`WALK_BOUND`] of its
    /// initial value, and store the new values.
    pub fn step<R: Rng + ?Sized>(&mut self, bank: &Bank, rng: &mut R) {
        for w in &mut self.walkers {
            let step = if rng.random_bool(0.5) { 1 } else { -1 };
            w.offset = (w.offset + step).clamp(-WALK_BOUND, WALK_BOUND);
            let p = w.preset;
            bank.set(
                p.unit,
                p.table,
                p.addr,
                p.value.saturating_add_signed(w.offset),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn parses_all_tables() {
        let p: Preset = "1:hr:100=1234".parse().unwrap();
        assert_eq!(
            p,
            Preset {
                unit: 1,
                table: Table::Holding,
                addr: 100,
                value: 1234
            }
        );
        assert_eq!("2:IR:0=0xFFFF".parse::<Preset>().unwrap().value, 0xFFFF);
        assert_eq!("2:ir:0=-2".parse::<Preset>().unwrap().value, 0xFFFE);
        let co: Preset = "255:co:65535=on".parse().unwrap();
        assert_eq!(
            (co.unit, co.table, co.addr, co.value),
            (255, Table::Coil, 65535, 1)
        );
        assert_eq!("3:di:7=0".parse::<Preset>().unwrap().table, Table::Discrete);
    }

    #[test]
    fn rejects_bad_input() {
        let err = |s: &str| s.parse::<Preset>().unwrap_err();
        assert!(matches!(err("1:hr:100"), PresetError::Syntax(_)));
        assert!(matches!(err("1:hr=5"), PresetError::Syntax(_)));
        assert!(matches!(err("1:hr:1:2=5"), PresetError::Syntax(_)));
        assert!(matches!(err("256:hr:1=5"), PresetError::Unit(_)));
        assert!(matches!(err("1:xx:1=5"), PresetError::Table(_)));
        assert!(matches!(err("1:hr:65536=5"), PresetError::Address(_)));
        assert!(matches!(err("1:hr:1=65536"), PresetError::Value(..)));
        assert!(matches!(err("1:hr:1=-40000"), PresetError::Value(..)));
        assert!(matches!(err("1:co:1=2"), PresetError::Value(..)));
    }

    #[test]
    fn apply_sets_bank() {
        let bank = Bank::new();
        "5:co:3=1".parse::<Preset>().unwrap().apply(&bank);
        "5:hr:3=9".parse::<Preset>().unwrap().apply(&bank);
        assert!(bank.coil(5, 3));
        assert_eq!(bank.holding(5, 3), 9);
    }

    #[test]
    fn animation_walks_registers_within_bound() {
        let presets: Vec<Preset> = ["1:hr:0=100", "1:ir:0=0", "1:co:0=1", "1:hr:0=500"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let bank = Bank::new();
        presets.iter().for_each(|p| p.apply(&bank));
        let mut anim = Animator::new(&presets);
        assert_eq!(anim.len(), 2, "bits skipped, duplicate point merged");
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            anim.step(&bank, &mut rng);
            let hr = bank.holding(1, 0);
            assert!((499..=501).contains(&hr), "hr drifted to {hr}");
            assert!(bank.input(1, 0) <= 1, "saturates at 0");
            seen.insert(hr);
            assert!(bank.coil(1, 0));
        }
        assert_eq!(seen.len(), 3, "walk visits every value in the band");
    }
}
