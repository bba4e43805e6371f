//! Configuration: built-in defaults, overridden by a TOML file, overridden by
//! `SESSIONGATE_*` environment variables, overridden by flags. One struct
//! serves clap (flags and environment) and serde (the file), so a setting has
//! the same name everywhere: `--idle-timeout`, `SESSIONGATE_IDLE_TIMEOUT`,
//! `idle_timeout = "5m"`.
//!
//! `settings` holds every setting, `sources` reads and layers them,
//! `resolve` applies defaults and checks values into a [`Config`];
//! `listen` is the listen address and `error` what can be wrong.

mod error;
mod listen;
mod resolve;
mod settings;
mod sources;

pub use error::ConfigError;
pub use listen::ListenAddr;
pub use resolve::{default_data_dir, Config, DEFAULT_LISTEN};
pub use settings::{parse_duration, LogFormat, Settings};

#[cfg(test)]
mod tests;
