//! Files people edit by hand: the CSV point tables and mapping files, and every YAML config.
//!
//! Byte 0 chooses the parser, the rest is the file's text. Whatever the text, the parser returns
//! a value or errors, and every error names the file (and, when located, a line and column that
//! exist in the text).

use voltage_core::config::{
    self, ComsrvFile, GatewayConfig, HissrvConfig, NetsrvConfig, VoltageConfig,
};
use voltage_core::error::ConfigError;
use voltage_core::points;
use voltage_core::types::PointType;

const FILE: &str = "fuzz/input";

fn located(e: &ConfigError, text: &str) {
    // Line breaks as YAML counts them: CR LF, CR, LF, NEL, LS and PS.
    let lines = text
        .replace("\r\n", "\n")
        .matches(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
        .count() as u64
        + 2;
    match e {
        ConfigError::At {
            file,
            line,
            column,
            message,
        } => {
            assert!(file.starts_with(FILE), "error names {file:?}");
            assert!(
                *line >= 1 && *line <= lines,
                "line {line} of {lines}: {message}"
            );
            assert!(*column >= 1, "column {column}: {message}");
            assert!(!message.is_empty());
        }
        ConfigError::File { file, message } => {
            assert!(file.starts_with(FILE), "error names {file:?}");
            assert!(!message.is_empty());
        }
    }
}

fn text(data: &[u8]) -> Option<(u8, &str)> {
    let (sel, rest) = data.split_first()?;
    // The loader reads files with read_to_string: invalid UTF-8 never reaches the parsers.
    Some((*sel, std::str::from_utf8(rest).ok()?))
}

pub fn check_csv(data: &[u8]) {
    let Some((sel, text)) = text(data) else {
        return;
    };
    let kind = PointType::ALL[sel as usize % 4];
    let mut errors = Vec::new();
    match (sel / 4) % 4 {
        0 => {
            let defs = points::parse_table(kind, FILE, text, &mut errors);
            let mut ids: Vec<u32> = defs.iter().map(|d| d.point_id).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), defs.len(), "a point id accepted twice");
        }
        1 => {
            let _ = points::parse_modbus_mapping(kind, FILE, text, &mut errors);
        }
        2 => {
            let _ = points::parse_virtual_mapping(FILE, text, &mut errors);
        }
        _ => {
            let _ = points::parse_plugin_mapping(FILE, text, &mut errors);
        }
    }
    for e in &errors {
        located(e, text);
    }
}

/// The parse error of `text` as `T`, if any; a parsed value also goes through its own checks
/// (whose findings are not errors of the file's syntax, but must not panic).
fn parse_then<T: for<'de> serde::Deserialize<'de>, R>(
    text: &str,
    check: fn(&T) -> R,
) -> Vec<ConfigError> {
    match config::parse_yaml::<T>(FILE, text) {
        Ok(v) => {
            let _ = check(&v);
            Vec::new()
        }
        Err(e) => vec![e],
    }
}

pub fn check_yaml(data: &[u8]) {
    let Some((sel, text)) = text(data) else {
        return;
    };
    let errors: Vec<ConfigError> = match sel % 8 {
        0 => match config::parse_yaml::<VoltageConfig>(FILE, text) {
            Ok(mut v) => config::schema::migrate(&mut v, FILE, text)
                .err()
                .into_iter()
                .collect(),
            Err(e) => vec![e],
        },
        1 => match config::parse_yaml::<ComsrvFile>(FILE, text) {
            Ok(f) => {
                let mut errors = Vec::new();
                for c in &f.channels {
                    c.validate(FILE, 1, &mut errors);
                    let _ = c.parameters.plan_limits(1);
                }
                errors
            }
            Err(e) => vec![e],
        },
        2 => parse_then(text, HissrvConfig::problems),
        3 => parse_then(text, NetsrvConfig::problems),
        4 => parse_then(text, GatewayConfig::problems),
        5 => config::check_board(FILE, text)
            .err()
            .map(|e| e.0)
            .unwrap_or_default(),
        6 => {
            if let Err(m) = alarmsrv::monitor::parse_rules(FILE, text) {
                assert!(
                    m.starts_with(FILE),
                    "alarm rules error without its file: {m}"
                );
            }
            Vec::new()
        }
        _ => modsrv::template::parse(FILE, text)
            .err()
            .unwrap_or_default(),
    };
    for e in &errors {
        located(e, text);
    }
}
