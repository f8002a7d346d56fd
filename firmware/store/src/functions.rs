//! The Redis Functions libraries (`scripts/redis-functions/*.lua`), embedded in the binary so the
//! daemon always loads the code that matches it, and the check that they are loaded.
//!
//! Why a version function: after a Redis restart without persistence, or a `FUNCTION FLUSH`, the
//! libraries are gone and every FCALL fails. The daemon calls `voltage_functions_version` at start
//! and whenever it notices a reconnect, and reloads when the answer is missing or different.
//!
//! `voltage_core` (the library with the version function) is loaded last: the version marker only
//! appears once every other library loaded, so a load that failed half-way is retried by the next
//! [`Store::ensure_functions`] instead of being taken for current. The functions, their keys and
//! their errors: `docs/redis-functions.md`.

use crate::{Store, StoreError};

/// The name of the library that carries `voltage_functions_version`.
pub const CORE_LIBRARY: &str = "voltage_core";

/// `(library name, Lua source)` of every library, in load order (the core last).
pub const LIBRARIES: &[(&str, &str)] = &[
    (
        "voltage_model",
        include_str!("../../../scripts/redis-functions/model.lua"),
    ),
    (
        "voltage_alarm",
        include_str!("../../../scripts/redis-functions/alarm.lua"),
    ),
    (
        "voltage_rule",
        include_str!("../../../scripts/redis-functions/rule.lua"),
    ),
    (
        CORE_LIBRARY,
        include_str!("../../../scripts/redis-functions/core.lua"),
    ),
];

/// The version string `voltage_functions_version` must return (the `VERSION` in core.lua).
pub fn expected_version() -> &'static str {
    let core = LIBRARIES
        .iter()
        .find(|(name, _)| *name == CORE_LIBRARY)
        .map(|(_, code)| *code)
        .unwrap_or("");
    core.lines()
        .find_map(|l| l.trim().strip_prefix("local VERSION = '"))
        .and_then(|r| r.split('\'').next())
        .unwrap_or("unknown")
}

/// What [`Store::ensure_functions`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionsState {
    /// Already loaded at the expected version.
    Current,
    /// Missing or outdated (what was there, if anything), now loaded.
    Loaded { previous: Option<String> },
}

impl Store {
    /// The version of the loaded libraries, or `None` when they are not loaded.
    pub async fn functions_version(&self) -> Result<Option<String>, StoreError> {
        let mut c = self.conn.clone();
        let r: redis::RedisResult<String> = redis::cmd("FCALL_RO")
            .arg("voltage_functions_version")
            .arg(0)
            .query_async(&mut c)
            .await;
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.to_string().contains("Function not found") => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Loads every library with `FUNCTION LOAD REPLACE`, in [`LIBRARIES`] order; stops at the
    /// first that fails (so the core's version marker is not loaded after a failure).
    pub async fn load_functions(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        for (name, code) in LIBRARIES {
            redis::cmd("FUNCTION")
                .arg("LOAD")
                .arg("REPLACE")
                .arg(*code)
                .query_async::<String>(&mut c)
                .await
                .map_err(|e| StoreError::Functions {
                    library: name.to_string(),
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// Loads the libraries unless the expected version is already there.
    pub async fn ensure_functions(&self) -> Result<FunctionsState, StoreError> {
        let current = self.functions_version().await?;
        if current.as_deref() == Some(expected_version()) {
            return Ok(FunctionsState::Current);
        }
        self.load_functions().await?;
        Ok(FunctionsState::Loaded { previous: current })
    }
}

#[cfg(test)]
mod tests {
    use super::{expected_version, CORE_LIBRARY, LIBRARIES};

    const HELPER_START: &str = "-- >>> argument checking";
    const HELPER_END: &str = "-- <<< argument checking";

    #[test]
    fn the_embedded_core_library_declares_its_name_and_version() {
        let (name, code) = LIBRARIES.last().copied().unwrap();
        assert_eq!(name, CORE_LIBRARY, "the core (version marker) loads last");
        assert!(code.starts_with(&format!("#!lua name={name}\n")));
        assert_ne!(expected_version(), "unknown");
    }

    #[test]
    fn every_library_starts_with_its_own_name_line() {
        for (name, code) in LIBRARIES {
            let first = code.lines().next().unwrap_or("");
            assert_eq!(first, format!("#!lua name={name}"));
        }
        let mut names: Vec<_> = LIBRARIES.iter().map(|(n, _)| *n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), LIBRARIES.len(), "library names are unique");
    }

    #[test]
    fn every_lua_file_of_the_scripts_directory_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/redis-functions");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .expect("scripts/redis-functions")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "lua"))
            .map(|p| std::fs::read_to_string(&p).expect("read library"))
            .collect();
        let mut embedded: Vec<String> = LIBRARIES.iter().map(|(_, c)| c.to_string()).collect();
        on_disk.sort();
        embedded.sort();
        assert!(
            on_disk == embedded,
            "scripts/redis-functions/*.lua and functions::LIBRARIES differ: add the new library to LIBRARIES"
        );
    }

    #[test]
    fn the_argument_checking_block_is_the_same_in_every_library_that_has_one() {
        let blocks: Vec<(&str, &str)> = LIBRARIES
            .iter()
            .filter(|(name, _)| *name != CORE_LIBRARY)
            .map(|(name, code)| {
                let start = code
                    .find(HELPER_START)
                    .unwrap_or_else(|| panic!("{name}: no '{HELPER_START}' block"));
                let end = code[start..]
                    .find(HELPER_END)
                    .unwrap_or_else(|| panic!("{name}: no '{HELPER_END}' line"));
                (*name, &code[start..start + end])
            })
            .collect();
        assert!(blocks.len() >= 3);
        for (name, block) in &blocks[1..] {
            assert!(
                block == &blocks[0].1,
                "the argument checking block of {name} differs from {}'s: keep the copies identical",
                blocks[0].0
            );
        }
    }
}
