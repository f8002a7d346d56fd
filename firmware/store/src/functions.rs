//! The Redis Functions libraries (`scripts/redis-functions/*.lua`), embedded in the binary so the
//! daemon always loads the code that matches it, and the check that they are loaded.
//!
//! Why a version function: after a Redis restart without persistence, or a `FUNCTION FLUSH`, the
//! libraries are gone and every FCALL fails. The daemon calls `voltage_functions_version` at start
//! and whenever it notices a reconnect, and reloads when the answer is missing or different.

use crate::{Store, StoreError};

/// `(library name, Lua source)` of every library, in load order.
pub const LIBRARIES: &[(&str, &str)] = &[(
    "voltage_core",
    include_str!("../../../scripts/redis-functions/core.lua"),
)];

/// The version string `voltage_functions_version` must return (the `VERSION` in core.lua).
pub fn expected_version() -> &'static str {
    let core = LIBRARIES[0].1;
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

    /// Loads every library with `FUNCTION LOAD REPLACE`.
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
    #[test]
    fn the_embedded_core_library_declares_its_name_and_version() {
        let (name, code) = super::LIBRARIES[0];
        assert!(code.starts_with(&format!("#!lua name={name}")));
        assert_ne!(super::expected_version(), "unknown");
    }
}
