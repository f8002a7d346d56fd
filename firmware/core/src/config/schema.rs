//! Schema versions of `voltage.yaml` (which covers the whole configuration directory) and the
//! migrations between them.
//!
//! Why: an A/B update can boot a controller back into the previous firmware, which then reads
//! whatever configuration the newer one left behind. So every file says which schema it is
//! written in; this firmware reads every older schema by migrating it (in memory, the file is
//! not rewritten), and refuses a newer one with a message that says so, instead of guessing at
//! keys it does not know.
//!
//! History:
//! - 1: files without `schema_version` (everything written before the key existed). Relative
//!   data paths (hissrv `wal.dir`) are relative to the configuration directory.
//! - 2: `schema_version: 2`; `data_dir` names where data that must survive updates lives (default
//!   `/var/lib/voltage`, or the board's `defaults.data_dir`), and relative data paths are
//!   relative to it, so a read-only `/etc/voltage` works. Migration from 1: `data_dir: .`, which
//!   keeps every relative path where schema 1 put it.

use super::VoltageConfig;
use crate::error::ConfigError;

/// The schema this firmware writes and reads natively.
pub const CONFIG_SCHEMA: u32 = 2;

/// The schema of a file without `schema_version`.
pub const UNVERSIONED: u32 = 1;

/// One step: from `from` to `from + 1`.
struct Step {
    from: u32,
    note: &'static str,
    apply: fn(&mut VoltageConfig),
}

const STEPS: &[Step] = &[Step {
    from: 1,
    note: "schema 1 -> 2: data_dir: . (relative data paths stay relative to the configuration directory)",
    apply: |v| {
        if v.data_dir.is_none() {
            v.data_dir = Some(".".into());
        }
    },
}];

/// What reading a file took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The schema the file was written in.
    pub from: u32,
    /// One line per step applied (empty when the file is current).
    pub notes: Vec<String>,
}

/// Brings a parsed `voltage.yaml` to [`CONFIG_SCHEMA`], or refuses it. `text` locates the error.
pub fn migrate(v: &mut VoltageConfig, file: &str, text: &str) -> Result<Migration, ConfigError> {
    let from = v.schema_version.unwrap_or(UNVERSIONED);
    let at = |msg: String| {
        let (line, col) = locate_key(text, "schema_version").unwrap_or((1, 1));
        ConfigError::at(file, line, col, msg)
    };
    if from == 0 {
        return Err(at("schema_version must be 1 or more".into()));
    }
    if from > CONFIG_SCHEMA {
        return Err(at(format!(
            "schema_version {from} is newer than this firmware reads (up to {CONFIG_SCHEMA}): \
             this configuration was written for a newer firmware; restore the configuration \
             saved with this firmware or update the firmware"
        )));
    }
    let mut notes = Vec::new();
    for step in STEPS.iter().filter(|s| s.from >= from) {
        (step.apply)(v);
        notes.push(step.note.to_string());
    }
    v.schema_version = Some(CONFIG_SCHEMA);
    Ok(Migration { from, notes })
}

/// Line and column of the value of a top-level `key:` in YAML text.
fn locate_key(text: &str, key: &str) -> Option<(u64, u64)> {
    let prefix = format!("{key}:");
    text.lines().enumerate().find_map(|(i, l)| {
        l.strip_prefix(&prefix).map(|rest| {
            let pad = rest.len() - rest.trim_start().len();
            (i as u64 + 1, (prefix.len() + pad) as u64 + 1)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_yaml;

    fn read(text: &str) -> Result<(VoltageConfig, Migration), ConfigError> {
        let mut v: VoltageConfig = parse_yaml("voltage.yaml", text)?;
        let m = migrate(&mut v, "voltage.yaml", text)?;
        Ok((v, m))
    }

    #[test]
    fn an_unversioned_file_is_schema_1_and_keeps_its_relative_paths() {
        let (v, m) = read("redis: {url: redis://127.0.0.1:6379}\n").unwrap();
        assert_eq!(m.from, 1);
        assert_eq!(m.notes.len(), 1);
        assert!(m.notes[0].starts_with("schema 1 -> 2"), "{:?}", m.notes);
        assert_eq!(v.data_dir.as_deref(), Some("."));
        assert_eq!(v.schema_version, Some(CONFIG_SCHEMA));
    }

    #[test]
    fn an_explicit_schema_1_file_migrates_and_keeps_a_data_dir_it_set() {
        let (v, m) = read("schema_version: 1\ndata_dir: /data/x\n").unwrap();
        assert_eq!(m.from, 1);
        assert_eq!(v.data_dir.as_deref(), Some("/data/x"));
    }

    #[test]
    fn a_current_file_is_not_migrated() {
        let (v, m) = read("schema_version: 2\n").unwrap();
        assert_eq!(m.from, 2);
        assert!(m.notes.is_empty());
        assert_eq!(
            v.data_dir, None,
            "schema 2 takes the board's or the built-in data_dir"
        );
    }

    #[test]
    fn a_newer_file_is_refused_at_its_version_key() {
        let e = read("redis: {url: redis://x}\nschema_version:   3\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "voltage.yaml:2:19: schema_version 3 is newer than this firmware reads (up to 2)"
            ),
            "{e}"
        );
    }

    #[test]
    fn schema_0_is_refused() {
        let e = read("schema_version: 0\n").unwrap_err().to_string();
        assert!(e.contains("schema_version must be 1 or more"), "{e}");
    }

    #[test]
    fn a_negative_or_text_version_is_a_type_error_with_location() {
        let e = read("schema_version: two\n").unwrap_err().to_string();
        assert!(e.starts_with("voltage.yaml:1:"), "{e}");
    }
}
