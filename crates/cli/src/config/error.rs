//! What can be wrong with a configuration, said so that the user knows
//! what to fix.

use std::path::PathBuf;

/// A configuration error, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// On one line: TOML's own message spans several, with a drawing.
    #[error("invalid config file {path}, {at}: {message}")]
    Parse {
        path: PathBuf,
        /// "line L" and the key there, if any.
        at: String,
        message: String,
    },
    #[error("invalid setting: {0}")]
    Invalid(String),
}
