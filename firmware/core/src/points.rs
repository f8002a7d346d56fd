//! Point tables (`telemetry.csv`, `signal.csv`, `control.csv`, `adjustment.csv`) and their
//! protocol mappings (`mapping/{type}_mapping.csv`), in the VoltageEMS layout and columns so
//! existing tables load unchanged.
//!
//! A missing table file means "no points of that type". A mapping row for a point the table does
//! not define is an error; a table point without a mapping is a warning (it is not polled).

use crate::csvfile::{self, Cell, Row};
use crate::error::ConfigError;
use crate::types::{ByteOrder, DataType, PointType, ReadFunction};
use crate::virt::Pattern;
use std::collections::BTreeMap;

/// One row of a point table: what the value means.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PointDef {
    pub point_id: u32,
    pub signal_name: String,
    pub scale: f64,
    pub offset: f64,
    pub unit: String,
    pub reverse: bool,
    /// The engineering type as written in the table (`float`, `int`, `bool`, or a register type).
    pub data_type: String,
    pub description: String,
    /// Control points: how a command is written.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub control: Option<ControlSpec>,
    /// Adjustment points: the range a setpoint must stay in.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub limits: Option<Limits>,
}

/// `control.csv` columns beyond the signal ones.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ControlSpec {
    /// `latching` (the value stays) or `momentary` (on, then off after `pulse_duration_ms`).
    pub control_type: String,
    /// Raw value written for "on" (a coil is on for any non-zero value).
    pub on_value: f64,
    pub off_value: f64,
    pub pulse_duration_ms: u64,
}

/// `adjustment.csv` columns beyond the telemetry ones (engineering units).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Limits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
}

/// One row of a Modbus mapping: where the value is read.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModbusMapping {
    pub slave_id: u8,
    pub function_code: u8,
    /// Address on the wire (0-based).
    pub register_address: u16,
    pub data_type: DataType,
    pub byte_order: ByteOrder,
    pub bit_position: Option<u8>,
}

impl ModbusMapping {
    pub fn read_function(&self) -> ReadFunction {
        ReadFunction::from_code(self.function_code).expect("validated at load")
    }

    /// Width in the unit of the read function: bits for FC1/2, registers for FC3/4.
    pub fn width(&self) -> u16 {
        if self.read_function().is_bits() {
            1
        } else {
            self.data_type.registers()
        }
    }
}

/// One row of a `grpc` channel's mapping: the plugin's own address of the point, passed to the
/// plugin unchanged (a DL/T 645 data identifier, a JSON field name, an IEC 104 IOA, ...).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PluginMapping {
    pub address: String,
}

/// Longest plugin address accepted (it travels in every poll).
pub const MAX_PLUGIN_ADDRESS: usize = 256;

/// Where a point's value comes from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Source {
    Modbus(ModbusMapping),
    Virtual(Pattern),
    Plugin(PluginMapping),
}

/// A point with its meaning and its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub kind: PointType,
    pub def: PointDef,
    pub source: Option<Source>,
}

/// Which mapping columns a channel's protocol uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingKind {
    Modbus,
    Virtual,
    Plugin,
}

const TELEMETRY_COLUMNS: &[&str] = &[
    "point_id",
    "signal_name",
    "scale",
    "offset",
    "unit",
    "reverse",
    "data_type",
    "description",
];
const SIGNAL_COLUMNS: &[&str] = &[
    "point_id",
    "signal_name",
    "reverse",
    "data_type",
    "description",
];
const MODBUS_COLUMNS: &[&str] = &[
    "point_id",
    "slave_id",
    "function_code",
    "register_address",
    "data_type",
    "byte_order",
    "bit_position",
    "description",
];
const CONTROL_COLUMNS: &[&str] = &[
    "point_id",
    "signal_name",
    "reverse",
    "data_type",
    "description",
    "control_type",
    "on_value",
    "off_value",
    "pulse_duration_ms",
];
const ADJUSTMENT_COLUMNS: &[&str] = &[
    "point_id",
    "signal_name",
    "scale",
    "offset",
    "unit",
    "reverse",
    "data_type",
    "description",
    "min_value",
    "max_value",
    "step",
];
const VIRTUAL_COLUMNS: &[&str] = &["point_id", "pattern", "params", "description"];
const PLUGIN_COLUMNS: &[&str] = &["point_id", "address", "description"];
const ENGINEERING_TYPES: &str = "float, double, int, uint, bool, or a register type";

fn table_columns(kind: PointType) -> &'static [&'static str] {
    match kind {
        PointType::Telemetry => TELEMETRY_COLUMNS,
        PointType::Adjustment => ADJUSTMENT_COLUMNS,
        PointType::Signal => SIGNAL_COLUMNS,
        PointType::Control => CONTROL_COLUMNS,
    }
}

/// Parses one point table. `file` is the name used in errors.
pub fn parse_table(
    kind: PointType,
    file: &str,
    text: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<PointDef> {
    let rows = csvfile::read(
        file,
        text,
        table_columns(kind),
        &["point_id", "signal_name"],
        errors,
    );
    let mut seen: BTreeMap<u32, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for row in rows {
        let Some(point_id) = point_id(file, &row, &mut seen, errors) else {
            continue;
        };
        let f64_or = |c: &str, d: f64, errors: &mut Vec<ConfigError>| match row.get(c) {
            Some(cell) => csvfile::parse::<f64>(file, cell, c, "a number", errors)
                .filter(|v| v.is_finite())
                .unwrap_or(d),
            None => d,
        };
        let scale = f64_or("scale", 1.0, errors);
        let offset = f64_or("offset", 0.0, errors);
        let reverse = row
            .get("reverse")
            .and_then(|c| csvfile::parse_bool(file, c, "reverse", errors))
            .unwrap_or(false);
        let data_type = match row.get("data_type") {
            Some(c) => engineering_type(file, c, errors),
            None if kind.is_binary() => "bool".to_string(),
            None => "float".to_string(),
        };
        if reverse && !kind.is_binary() && data_type != "bool" {
            let c = row.get("reverse").expect("reverse is set");
            errors.push(ConfigError::at(
                file,
                c.line,
                c.column,
                "reverse: true is only meaningful for boolean points (signals, controls, bool telemetry)",
            ));
        }
        let control = (kind == PointType::Control).then(|| {
            let control_type = match row.get("control_type") {
                None => "latching".to_string(),
                Some(c) => match c.value.to_ascii_lowercase().as_str() {
                    v @ ("latching" | "momentary") => v.to_string(),
                    _ => {
                        errors.push(ConfigError::at(
                            file,
                            c.line,
                            c.column,
                            format!("control_type: {:?} is not latching or momentary", c.value),
                        ));
                        "latching".to_string()
                    }
                },
            };
            let pulse = row.get("pulse_duration_ms").and_then(|c| {
                csvfile::parse::<u64>(file, c, "pulse_duration_ms", "a duration in ms", errors)
            });
            if control_type == "momentary" && pulse.is_none() {
                errors.push(ConfigError::at(
                    file,
                    row.line,
                    1,
                    "pulse_duration_ms is required for a momentary control",
                ));
            }
            ControlSpec {
                on_value: f64_or("on_value", 1.0, errors),
                off_value: f64_or("off_value", 0.0, errors),
                pulse_duration_ms: pulse.unwrap_or(0),
                control_type,
            }
        });
        let limits = (kind == PointType::Adjustment).then(|| {
            let opt = |c: &str, errors: &mut Vec<ConfigError>| {
                row.get(c).and_then(|cell| {
                    csvfile::parse::<f64>(file, cell, c, "a number", errors)
                        .filter(|v| v.is_finite())
                })
            };
            let l = Limits {
                min_value: opt("min_value", errors),
                max_value: opt("max_value", errors),
                step: opt("step", errors),
            };
            if let (Some(a), Some(b)) = (l.min_value, l.max_value) {
                if a > b {
                    errors.push(ConfigError::at(
                        file,
                        row.line,
                        1,
                        format!("min_value {a} is greater than max_value {b}"),
                    ));
                }
            }
            if let Some(st) = l.step.filter(|s| *s <= 0.0) {
                errors.push(ConfigError::at(
                    file,
                    row.line,
                    1,
                    format!("step {st} must be positive"),
                ));
            }
            l
        });
        // A row with a bad cell is still recorded (with defaults) so that its mapping does not
        // also report "no row": the load fails anyway because `errors` is not empty.
        out.push(PointDef {
            point_id,
            signal_name: row
                .get("signal_name")
                .map(|c| c.value.to_string())
                .unwrap_or_default(),
            scale,
            offset,
            unit: row
                .get("unit")
                .map(|c| c.value.to_string())
                .unwrap_or_default(),
            reverse,
            data_type,
            description: row
                .get("description")
                .map(|c| c.value.to_string())
                .unwrap_or_default(),
            control,
            limits,
        });
    }
    out
}

fn engineering_type(file: &str, c: Cell<'_>, errors: &mut Vec<ConfigError>) -> String {
    let v = c.value.to_ascii_lowercase();
    match v.as_str() {
        "float" | "double" | "int" | "uint" | "bool" | "boolean" => v,
        _ if v.parse::<DataType>().is_ok() => v,
        _ => {
            errors.push(ConfigError::at(
                file,
                c.line,
                c.column,
                format!(
                    "data_type: unknown type {:?}; expected {ENGINEERING_TYPES}",
                    c.value
                ),
            ));
            v
        }
    }
}

fn point_id(
    file: &str,
    row: &Row,
    seen: &mut BTreeMap<u32, u64>,
    errors: &mut Vec<ConfigError>,
) -> Option<u32> {
    let Some(cell) = row.get("point_id") else {
        errors.push(ConfigError::at(file, row.line, 1, "point_id is empty"));
        return None;
    };
    let id = csvfile::parse::<u32>(file, cell, "point_id", "a whole number >= 0", errors)?;
    if let Some(first) = seen.insert(id, row.line) {
        errors.push(ConfigError::at(
            file,
            cell.line,
            cell.column,
            format!("point_id {id} is defined twice (first on line {first})"),
        ));
        return None;
    }
    Some(id)
}

/// Parses one Modbus mapping file into `point_id -> mapping`.
pub fn parse_modbus_mapping(
    kind: PointType,
    file: &str,
    text: &str,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<u32, (ModbusMapping, u64)> {
    let required = [
        "point_id",
        "slave_id",
        "function_code",
        "register_address",
        "data_type",
    ];
    let rows = csvfile::read(file, text, MODBUS_COLUMNS, &required, errors);
    let mut seen = BTreeMap::new();
    let mut out = BTreeMap::new();
    for row in rows {
        let n = errors.len();
        let Some(id) = point_id(file, &row, &mut seen, errors) else {
            continue;
        };
        let mut req = |c: &str| {
            let cell = row.get(c);
            if cell.is_none() {
                errors.push(ConfigError::at(
                    file,
                    row.line,
                    1,
                    format!("{c} is empty for point {id}"),
                ));
            }
            cell
        };
        let (Some(slave), Some(fc), Some(addr), Some(dt)) = (
            req("slave_id"),
            req("function_code"),
            req("register_address"),
            req("data_type"),
        ) else {
            continue;
        };
        let slave_id = csvfile::parse::<u8>(file, slave, "slave_id", "a unit id 0-255", errors);
        let function_code =
            csvfile::parse::<u8>(file, fc, "function_code", "a function code", errors);
        let register_address =
            csvfile::parse::<u16>(file, addr, "register_address", "an address 0-65535", errors);
        let data_type = match dt.value.parse::<DataType>() {
            Ok(d) => Some(d),
            Err(m) => {
                errors.push(ConfigError::at(
                    file,
                    dt.line,
                    dt.column,
                    format!("data_type: {m}"),
                ));
                None
            }
        };
        let byte_order = match row.get("byte_order") {
            None => Some(ByteOrder::ABCD),
            Some(c) => match c.value.parse::<ByteOrder>() {
                Ok(o) => Some(o),
                Err(m) => {
                    errors.push(ConfigError::at(
                        file,
                        c.line,
                        c.column,
                        format!("byte_order: {m}"),
                    ));
                    None
                }
            },
        };
        let bit_position = row.get("bit_position").and_then(|c| {
            csvfile::parse::<u8>(file, c, "bit_position", "a bit 0-15", errors)
                .filter(|b| {
                    let ok = *b <= 15;
                    if !ok {
                        errors.push(ConfigError::at(
                            file,
                            c.line,
                            c.column,
                            "bit_position: must be 0-15",
                        ));
                    }
                    ok
                })
                .map(|b| (b, c))
        });
        if errors.len() > n {
            continue;
        }
        let (slave_id, function_code, register_address, data_type, byte_order) = (
            slave_id.expect("checked"),
            function_code.expect("checked"),
            register_address.expect("checked"),
            data_type.expect("checked"),
            byte_order.expect("checked"),
        );
        let allowed_fc: &[u8] = match kind {
            PointType::Telemetry | PointType::Signal => &[1, 2, 3, 4],
            PointType::Control => &[1, 3, 5, 6, 15, 16],
            PointType::Adjustment => &[3, 6, 16],
        };
        if !allowed_fc.contains(&function_code) {
            errors.push(ConfigError::at(
                file,
                fc.line,
                fc.column,
                format!("function_code: {function_code} is not valid for {kind} points; expected one of {allowed_fc:?}"),
            ));
            continue;
        }
        let mapping = ModbusMapping {
            slave_id,
            function_code,
            register_address,
            data_type,
            byte_order,
            bit_position: bit_position.map(|(b, _)| b),
        };
        let bits = mapping.read_function().is_bits();
        if bits && data_type != DataType::Bool {
            errors.push(ConfigError::at(
                file,
                dt.line,
                dt.column,
                format!("data_type: function code {function_code} reads single bits, so the type must be bool, not {data_type}"),
            ));
            continue;
        }
        if let Some((_, c)) = bit_position {
            if bits || data_type != DataType::Bool {
                errors.push(ConfigError::at(
                    file,
                    c.line,
                    c.column,
                    "bit_position: applies only to data_type bool read from registers (function code 3 or 4)",
                ));
                continue;
            }
        }
        if register_address as u32 + mapping.width() as u32 > 65536 {
            errors.push(ConfigError::at(
                file,
                addr.line,
                addr.column,
                format!(
                    "register_address: {data_type} at {register_address} runs past address 65535"
                ),
            ));
            continue;
        }
        out.insert(id, (mapping, row.line));
    }
    out
}

/// Parses one virtual mapping file into `point_id -> pattern`.
pub fn parse_virtual_mapping(
    file: &str,
    text: &str,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<u32, (Pattern, u64)> {
    let rows = csvfile::read(
        file,
        text,
        VIRTUAL_COLUMNS,
        &["point_id", "pattern"],
        errors,
    );
    let mut seen = BTreeMap::new();
    let mut out = BTreeMap::new();
    for row in rows {
        let Some(id) = point_id(file, &row, &mut seen, errors) else {
            continue;
        };
        let Some(pat) = row.get("pattern") else {
            errors.push(ConfigError::at(
                file,
                row.line,
                1,
                format!("pattern is empty for point {id}"),
            ));
            continue;
        };
        let params = row.get("params").map(|c| c.value).unwrap_or("");
        match Pattern::parse(&pat.value.to_ascii_lowercase(), params) {
            Ok(p) => {
                out.insert(id, (p, row.line));
            }
            Err(m) => {
                let at = row
                    .get("params")
                    .filter(|_| !m.contains("unknown pattern"))
                    .unwrap_or(pat);
                errors.push(ConfigError::at(file, at.line, at.column, m));
            }
        }
    }
    out
}

/// Parses one `grpc` channel mapping file into `point_id -> plugin address`.
pub fn parse_plugin_mapping(
    file: &str,
    text: &str,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<u32, (PluginMapping, u64)> {
    let rows = csvfile::read(file, text, PLUGIN_COLUMNS, &["point_id", "address"], errors);
    let mut seen = BTreeMap::new();
    let mut out = BTreeMap::new();
    for row in rows {
        let Some(id) = point_id(file, &row, &mut seen, errors) else {
            continue;
        };
        let Some(addr) = row.get("address") else {
            errors.push(ConfigError::at(
                file,
                row.line,
                1,
                format!("address is empty for point {id}"),
            ));
            continue;
        };
        if addr.value.len() > MAX_PLUGIN_ADDRESS {
            errors.push(ConfigError::at(
                file,
                addr.line,
                addr.column,
                format!(
                    "address: {} characters, at most {MAX_PLUGIN_ADDRESS}",
                    addr.value.len()
                ),
            ));
            continue;
        }
        out.insert(
            id,
            (
                PluginMapping {
                    address: addr.value.to_string(),
                },
                row.line,
            ),
        );
    }
    out
}

/// Joins the tables of a channel with their mappings. `tables` and `mappings` are keyed by
/// point type; `mapping_files` names the mapping file of each type for errors.
pub fn join(
    tables: BTreeMap<PointType, Vec<PointDef>>,
    mut mappings: BTreeMap<PointType, BTreeMap<u32, (Source, u64)>>,
    mapping_files: &BTreeMap<PointType, String>,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Vec<Point> {
    let mut points = Vec::new();
    for kind in PointType::ALL {
        let defs = tables.get(&kind).cloned().unwrap_or_default();
        let mut map = mappings.remove(&kind).unwrap_or_default();
        for def in defs {
            let source = map.remove(&def.point_id).map(|(s, _)| s);
            if source.is_none() {
                warnings.push(format!(
                    "{kind} point {} ({}) has no mapping and will not be read",
                    def.point_id, def.signal_name
                ));
            }
            points.push(Point { kind, def, source });
        }
        for (id, (_, line)) in map {
            let file = mapping_files
                .get(&kind)
                .map(String::as_str)
                .unwrap_or("mapping");
            errors.push(ConfigError::at(
                file,
                line,
                1,
                format!("point_id {id} has no row in {}.csv", kind.name()),
            ));
        }
    }
    points
}

#[cfg(test)]
mod tests;
