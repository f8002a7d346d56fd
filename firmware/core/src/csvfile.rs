//! A small layer over the `csv` crate that keeps line and column of every cell, checks the
//! header against the columns a file may have, and turns every problem into a located
//! [`ConfigError`].
//!
//! Tables come from spreadsheets: a UTF-8 BOM, surrounding blanks, empty trailing lines and
//! `#` comment lines are accepted; an unknown or missing column is an error at the header.

use crate::error::ConfigError;

/// One non-empty cell with its position (1-based line and column).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cell<'a> {
    pub value: &'a str,
    pub line: u64,
    pub column: u64,
}

pub(crate) struct Row {
    pub line: u64,
    cells: Vec<(String, u64)>,
    columns: std::sync::Arc<Vec<String>>,
}

impl Row {
    /// The trimmed cell of `column`, or `None` when the column is absent or the cell is empty.
    pub fn get(&self, column: &str) -> Option<Cell<'_>> {
        let idx = self.columns.iter().position(|c| c == column)?;
        let (value, col) = self.cells.get(idx)?;
        let v = value.trim();
        if v.is_empty() {
            None
        } else {
            Some(Cell {
                value: v,
                line: self.line,
                column: *col,
            })
        }
    }
}

/// Parses `text` as a CSV table named `file`. `allowed` lists every column the file may have,
/// `required` the ones it must have. Errors are appended to `errors`; rows that could not be
/// read at all are skipped (their error is reported).
pub(crate) fn read(
    file: &str,
    text: &str,
    allowed: &[&str],
    required: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Vec<Row> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = loop {
        match records.next() {
            None => {
                errors.push(ConfigError::file(
                    file,
                    "empty file: expected a header line",
                ));
                return Vec::new();
            }
            Some(Err(e)) => {
                errors.push(csv_error(file, &e));
                return Vec::new();
            }
            Some(Ok(r)) if r.iter().all(|c| c.trim().is_empty()) => continue,
            Some(Ok(r)) => break r,
        }
    };
    let header_line = header.position().map(|p| p.line()).unwrap_or(1);
    let header_cols = columns_of(&header);
    let mut columns = Vec::new();
    for (name, col) in header.iter().zip(&header_cols) {
        let name = name.trim().to_ascii_lowercase();
        if !allowed.contains(&name.as_str()) {
            errors.push(ConfigError::at(
                file,
                header_line,
                *col,
                format!(
                    "unknown column {name:?}; this file's columns are: {}",
                    allowed.join(", ")
                ),
            ));
        } else if columns.contains(&name) {
            errors.push(ConfigError::at(
                file,
                header_line,
                *col,
                format!("column {name:?} appears twice"),
            ));
        }
        columns.push(name);
    }
    for req in required {
        if !columns.iter().any(|c| c == req) {
            errors.push(ConfigError::at(
                file,
                header_line,
                1,
                format!("missing required column {req:?}"),
            ));
        }
    }
    let columns = std::sync::Arc::new(columns);
    let mut rows = Vec::new();
    for rec in records {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                errors.push(csv_error(file, &e));
                continue;
            }
        };
        if rec.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if rec.len() > columns.len() {
            let col = columns_of(&rec)[columns.len()];
            errors.push(ConfigError::at(
                file,
                line,
                col,
                format!(
                    "{} cells but the header has {} columns",
                    rec.len(),
                    columns.len()
                ),
            ));
            continue;
        }
        let cols = columns_of(&rec);
        rows.push(Row {
            line,
            cells: rec.iter().map(str::to_string).zip(cols).collect(),
            columns: columns.clone(),
        });
    }
    rows
}

/// 1-based byte columns of each field of an unquoted record (quoted fields shift by their quotes;
/// close enough to find the cell).
fn columns_of(rec: &csv::StringRecord) -> Vec<u64> {
    let mut col = 1u64;
    rec.iter()
        .map(|f| {
            let c = col;
            col += f.len() as u64 + 1;
            c
        })
        .collect()
}

fn csv_error(file: &str, e: &csv::Error) -> ConfigError {
    match e.position() {
        Some(p) => ConfigError::at(file, p.line(), 1, format!("unreadable CSV: {e}")),
        None => ConfigError::file(file, format!("unreadable CSV: {e}")),
    }
}

/// Parses a cell with `FromStr`, reporting `what` and the accepted form on failure.
pub(crate) fn parse<T: std::str::FromStr>(
    file: &str,
    cell: Cell<'_>,
    column: &str,
    expected: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    match cell.value.parse::<T>() {
        Ok(v) => Some(v),
        Err(_) => {
            errors.push(ConfigError::at(
                file,
                cell.line,
                cell.column,
                format!("{column}: {:?} is not {expected}", cell.value),
            ));
            None
        }
    }
}

/// Parses a boolean cell: true/false, 1/0, yes/no (any case).
pub(crate) fn parse_bool(
    file: &str,
    cell: Cell<'_>,
    column: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<bool> {
    match cell.value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => {
            errors.push(ConfigError::at(
                file,
                cell.line,
                cell.column,
                format!(
                    "{column}: {:?} is not a boolean (true/false, 1/0)",
                    cell.value
                ),
            ));
            None
        }
    }
}
