//! Configuration errors that always say where: file, line and column when the source has them.
//!
//! Field engineers fix configs over a serial console; an error that names the exact cell of a CSV
//! or the key of a YAML file saves a site visit. Loading collects every error it finds instead of
//! stopping at the first one.

use std::fmt;

/// One problem in one configuration file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A problem at a known position (1-based line and column).
    #[error("{file}:{line}:{column}: {message}")]
    At {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
    /// A problem that belongs to a file as a whole (missing, unreadable, inconsistent).
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

impl ConfigError {
    pub fn at(file: impl fmt::Display, line: u64, column: u64, message: impl Into<String>) -> Self {
        ConfigError::At {
            file: file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    pub fn file(file: impl fmt::Display, message: impl Into<String>) -> Self {
        ConfigError::File {
            file: file.to_string(),
            message: message.into(),
        }
    }

    /// The message without its location prefix.
    pub fn message(&self) -> &str {
        match self {
            ConfigError::At { message, .. } | ConfigError::File { message, .. } => message,
        }
    }
}

/// Every error found while loading a configuration directory, in file order.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}
