//! `HubConfig`: the hub's TOML configuration, documented field by field.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::HubError;

/// Configuration of `foundry hub`, read from TOML. Every field has a default, so an empty file
/// (or no file) gives a working hub on `127.0.0.1:8470` with a SQLite file in the working dir.
///
/// ```toml
/// listen = "127.0.0.1:8470"
/// db_url = "sqlite://foundry-hub.db?mode=rwc"
/// flag_false_positives = 20
/// long_poll_max_secs = 60
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// Address the HTTP API listens on. Default `127.0.0.1:8470`; use port 0 for any free port.
    pub listen: SocketAddr,
    /// Database URL. `sqlite://PATH?mode=rwc` (the default, `sqlite://foundry-hub.db?mode=rwc`,
    /// creates the file) or `postgres://user:pass@host:port/db` for PostgreSQL. Migrations run
    /// at start-up either way.
    pub db_url: String,
    /// Maximum pooled database connections. Default 16 (SQLite serialises writes anyway).
    pub max_db_connections: u32,
    /// A shared rule is flagged to its owner once the community has posted at least this many
    /// false-positive verdicts on it and no true positive. Default 20.
    pub flag_false_positives: u64,
    /// Upper bound for `?wait=N` on the deployable-set endpoint, in seconds. Default 60.
    pub long_poll_max_secs: u64,
    /// Largest accepted rule text, in bytes. Default 262144 (256 KiB).
    pub max_rule_bytes: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8470)),
            db_url: "sqlite://foundry-hub.db?mode=rwc".to_string(),
            max_db_connections: 16,
            flag_false_positives: 20,
            long_poll_max_secs: 60,
            max_rule_bytes: 256 * 1024,
        }
    }
}

impl HubConfig {
    /// Parses a configuration from TOML text; unknown fields are an error.
    pub fn from_toml(text: &str) -> Result<HubConfig, HubError> {
        toml::from_str(text).map_err(|e| HubError::Config(e.to_string()))
    }

    /// Reads and parses a TOML configuration file.
    pub fn load(path: &Path) -> Result<HubConfig, HubError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| HubError::Config(format!("cannot read {}: {e}", path.display())))?;
        HubConfig::from_toml(&text)
    }
}
