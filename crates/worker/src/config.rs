//! The worker's configuration file (TOML), with environment overrides for brokers and secrets.
//!
//! Every table rejects unknown keys, so a misspelt setting fails at start with the key's name
//! instead of being silently ignored. With no `[kafka]` table the worker runs the embedded
//! default: JSON Lines from files or standard input, hits and dead letters to files or
//! standard output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A configuration that could not be read or is inconsistent.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read configuration: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is invalid or holds an unknown key (the message names it, with line and column).
    #[error("{path}: invalid configuration: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Settings that cannot work together.
    #[error("invalid configuration: {0}")]
    Inconsistent(String),
}

/// The whole worker configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Names this worker in hits, dead letters and logs. Default: `<hostname>-<pid>`.
    #[serde(default)]
    pub worker_id: Option<String>,
    /// Sigma rule files or folders (every `.yml`/`.yaml` below a folder).
    #[serde(default)]
    pub rules: Vec<PathBuf>,
    /// YARA-X rule files or folders (every `.yar`/`.yara` below a folder).
    #[serde(default)]
    pub yara: Vec<PathBuf>,
    /// Field and logsource mapping files (TOML), merged in order.
    #[serde(default)]
    pub mapping: Vec<PathBuf>,
    /// Event fields holding payloads for YARA-X, `FIELD[:base64|text|sha256ref]`.
    #[serde(default)]
    pub payload_fields: Vec<String>,
    /// YARA-X scan limits and the blob folder for `sha256ref` payload fields.
    #[serde(default)]
    pub yara_scan: YaraScanConfig,
    /// TLP label of rules that carry none (default `TLP:CLEAR`).
    #[serde(default)]
    pub default_tlp: Option<String>,
    /// Records larger than this many bytes are dead-lettered as `too_large`. Default 1 MiB.
    #[serde(default = "defaults::max_event_bytes")]
    pub max_event_bytes: usize,
    /// Most records evaluated together in one batch. Default 500.
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
    /// Longest wait for a batch to fill, in milliseconds. Default 100.
    #[serde(default = "defaults::batch_wait_ms")]
    pub batch_wait_ms: u64,
    /// Most records read but not yet fully acknowledged; past it the input is paused. This
    /// bounds memory and the duplicates a crash can cause. Default 10,000.
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: usize,
    /// On SIGTERM/SIGINT, how long to finish in-flight batches, wait for acknowledgements and
    /// commit before leaving anyway, in seconds. Default 30.
    #[serde(default = "defaults::shutdown_deadline_secs")]
    pub shutdown_deadline_secs: u64,
    /// Address of the Prometheus endpoint (`/metrics`, `/healthz`, `/readyz`); none when unset.
    #[serde(default)]
    pub metrics_addr: Option<String>,
    /// The hub to take the tenant's deployable rule set from (with or instead of files).
    #[serde(default)]
    pub hub: Option<HubConfig>,
    /// Hot reload: watching rule folders, the expiry timer.
    #[serde(default)]
    pub reload: ReloadConfig,
    /// Files mode (the embedded default), used when `kafka` is absent.
    #[serde(default)]
    pub files: FilesConfig,
    /// Kafka mode.
    #[serde(default)]
    pub kafka: Option<KafkaConfig>,
}

/// Where rules come from when they come from the hub.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Base URL of the hub.
    pub url: String,
    /// The tenant whose reviewed rules this worker runs.
    pub tenant: String,
    /// File holding the API token (`FOUNDRY_HUB_TOKEN` overrides it).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Long-poll wait asked of the hub, in seconds: a change reaches the worker as soon as the
    /// hub has it, and an idle worker asks once per this interval. Default 30.
    #[serde(default = "defaults::hub_poll_wait_secs")]
    pub poll_wait_secs: u64,
    /// Pause after a failed poll before the next, in seconds. Default 5.
    #[serde(default = "defaults::hub_retry_secs")]
    pub retry_secs: u64,
}

/// Bounds on YARA-X work per event, and where `sha256ref` payloads are found. Every limit
/// that is hit is counted in `foundry_payload_problems_total{reason}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct YaraScanConfig {
    /// Wall-clock budget of one payload scan, in seconds (whole seconds: YARA-X checks it
    /// once a second). Default 5.
    #[serde(default = "defaults::yara_timeout_secs")]
    pub timeout_secs: u64,
    /// Largest payload scanned, in bytes. Default 32 MiB.
    #[serde(default = "defaults::yara_max_payload_bytes")]
    pub max_payload_bytes: usize,
    /// Most payloads scanned per event. Default 16.
    #[serde(default = "defaults::yara_max_payloads_per_event")]
    pub max_payloads_per_event: usize,
    /// Most matched strings listed in one hit. Default 32.
    #[serde(default = "defaults::yara_max_matched_strings")]
    pub max_matched_strings: usize,
    /// Folder of blobs named by their SHA-256, for `FIELD:sha256ref` payload fields.
    #[serde(default)]
    pub blob_dir: Option<PathBuf>,
}

impl Default for YaraScanConfig {
    fn default() -> Self {
        toml::from_str("").expect("every YARA setting has a default")
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            url: String::new(),
            tenant: String::new(),
            token_file: None,
            poll_wait_secs: defaults::hub_poll_wait_secs(),
            retry_secs: defaults::hub_retry_secs(),
        }
    }
}

/// Hot reload of the rule set (see `reload`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    /// Watch the rule files and folders and reload when they change. Default true.
    #[serde(default = "defaults::yes")]
    pub watch: bool,
    /// Quiet time after the last file change before reloading, in milliseconds; also the
    /// wait between the two reads that must agree before a folder counts as settled.
    /// Default 500.
    #[serde(default = "defaults::reload_debounce_ms")]
    pub debounce_ms: u64,
    /// Timer, in seconds: re-reads the sources (catching changes a watcher missed) and drops
    /// rules whose `valid_until` has passed. Default 30.
    #[serde(default = "defaults::reload_interval_secs")]
    pub interval_secs: u64,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        toml::from_str("").expect("every reload setting has a default")
    }
}

/// The embedded default: JSON Lines in, JSON Lines out.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// Input files read one after the other (`-` is standard input). Default: standard input.
    #[serde(default)]
    pub input: Vec<String>,
    /// Where hits go, one JSON object a line (`-` is standard output). Default: standard output.
    #[serde(default)]
    pub output: Option<String>,
    /// Where dead letters go, one JSON object a line (`-` is standard output). Default:
    /// standard error, so they never mix with hits.
    #[serde(default)]
    pub dead_letter_output: Option<String>,
}

/// What a hit's Kafka key is.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum HitKey {
    /// The key of the input record that produced the hit (the default).
    #[default]
    Input,
    /// The rule's id, so one rule's hits share a partition.
    Rule,
    /// No key: the producer spreads hits over partitions.
    None,
}

/// One input topic and the logsource its events belong to.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct InputTopic {
    /// The topic.
    pub topic: String,
    /// Logsource product of every event on it (e.g. `windows`); unset lets the mapping decide.
    #[serde(default)]
    pub product: Option<String>,
    /// Logsource category (e.g. `process_creation`).
    #[serde(default)]
    pub category: Option<String>,
    /// Logsource service (e.g. `security`).
    #[serde(default)]
    pub service: Option<String>,
}

impl InputTopic {
    /// The logsource hint this topic gives its events, if it declares any.
    pub fn logsource(&self) -> Option<foundry_sigma::Logsource> {
        if self.product.is_none() && self.category.is_none() && self.service.is_none() {
            return None;
        }
        Some(foundry_sigma::Logsource {
            product: self.product.clone(),
            category: self.category.clone(),
            service: self.service.clone(),
            definition: None,
        })
    }
}

/// Kafka mode.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port,...`. Environment `FOUNDRY_KAFKA_BROKERS` overrides it.
    #[serde(default)]
    pub brokers: String,
    /// Consumer group shared by every worker of a deployment. Default `foundry-workers`.
    #[serde(default = "defaults::group")]
    pub group: String,
    /// Input topics.
    #[serde(default)]
    pub inputs: Vec<InputTopic>,
    /// Topic hits are written to. Default `foundry-hits`.
    #[serde(default = "defaults::hits_topic")]
    pub hits_topic: String,
    /// Topic dead letters are written to. Default `foundry-dead-letters`.
    #[serde(default = "defaults::dead_letter_topic")]
    pub dead_letter_topic: String,
    /// The Kafka key of each hit. Default `input`.
    #[serde(default)]
    pub hit_key: HitKey,
    /// Where a group with no committed offset starts: `earliest` (default) or `latest`.
    #[serde(default = "defaults::auto_offset_reset")]
    pub auto_offset_reset: String,
    /// Least time between two offset commits, in milliseconds; 0 commits after every fetch
    /// that made progress. Default 500.
    #[serde(default = "defaults::commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// When partitions are revoked, how long to wait for their in-flight hits before
    /// committing what is safe and letting them go, in milliseconds. Default 10,000.
    #[serde(default = "defaults::revoke_wait_ms")]
    pub revoke_wait_ms: u64,
    /// Dead letters keep the original bytes up to this size; longer records are cut and the
    /// header `foundry-truncated-from` gives the original length. Default 900,000, under a
    /// broker's default 1 MB message limit: a dead letter the broker refuses would stall its
    /// partition, since outputs are re-sent until acknowledged.
    #[serde(default = "defaults::dead_letter_max_bytes")]
    pub dead_letter_max_bytes: usize,
    /// Most messages the producer queues before the pipeline waits. Default 100,000.
    #[serde(default = "defaults::producer_queue_messages")]
    pub producer_queue_messages: usize,
    /// How often librdkafka reports statistics (consumer lag), in milliseconds. Default 5,000.
    #[serde(default = "defaults::statistics_interval_ms")]
    pub statistics_interval_ms: u64,
    /// Write hits and commit offsets in Kafka transactions (exactly-once). Default off.
    #[serde(default)]
    pub exactly_once: bool,
    /// The transactional id with `exactly_once`. Default `<group>-<worker id>`.
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// librdkafka properties given to both consumer and producer (SASL, TLS, timeouts …),
    /// e.g. `"security.protocol" = "SASL_SSL"`. Environment `FOUNDRY_KAFKA_PROP_<NAME>` adds
    /// or overrides one (`FOUNDRY_KAFKA_PROP_SASL_PASSWORD` sets `sasl.password`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties for the consumer only.
    #[serde(default)]
    pub consumer_properties: BTreeMap<String, String>,
    /// librdkafka properties for the producer only.
    #[serde(default)]
    pub producer_properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        toml::from_str("").expect("every Kafka setting has a default")
    }
}

mod defaults {
    pub fn yara_timeout_secs() -> u64 {
        5
    }
    pub fn yara_max_payload_bytes() -> usize {
        32 << 20
    }
    pub fn yara_max_payloads_per_event() -> usize {
        16
    }
    pub fn yara_max_matched_strings() -> usize {
        32
    }
    pub fn yes() -> bool {
        true
    }
    pub fn hub_poll_wait_secs() -> u64 {
        30
    }
    pub fn hub_retry_secs() -> u64 {
        5
    }
    pub fn reload_debounce_ms() -> u64 {
        500
    }
    pub fn reload_interval_secs() -> u64 {
        30
    }
    pub fn max_event_bytes() -> usize {
        1 << 20
    }
    pub fn batch_size() -> usize {
        500
    }
    pub fn batch_wait_ms() -> u64 {
        100
    }
    pub fn max_in_flight() -> usize {
        10_000
    }
    pub fn shutdown_deadline_secs() -> u64 {
        30
    }
    pub fn group() -> String {
        "foundry-workers".into()
    }
    pub fn hits_topic() -> String {
        "foundry-hits".into()
    }
    pub fn dead_letter_topic() -> String {
        "foundry-dead-letters".into()
    }
    pub fn auto_offset_reset() -> String {
        "earliest".into()
    }
    pub fn commit_interval_ms() -> u64 {
        500
    }
    pub fn revoke_wait_ms() -> u64 {
        10_000
    }
    pub fn dead_letter_max_bytes() -> usize {
        900_000
    }
    pub fn producer_queue_messages() -> usize {
        100_000
    }
    pub fn statistics_interval_ms() -> u64 {
        5_000
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        toml::from_str("").expect("every worker setting has a default")
    }
}

impl WorkerConfig {
    /// Reads a configuration file and applies the environment overrides.
    pub fn from_file(path: &Path) -> Result<WorkerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut config =
            WorkerConfig::from_toml(&text).map_err(|message| ConfigError::Invalid {
                path: path.display().to_string(),
                message,
            })?;
        config.apply_env(|name| std::env::var(name).ok(), std::env::vars());
        Ok(config)
    }

    /// Parses TOML text (no environment overrides).
    pub fn from_toml(text: &str) -> Result<WorkerConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))
    }

    /// Applies `FOUNDRY_KAFKA_BROKERS` and `FOUNDRY_KAFKA_PROP_*` from the environment. A
    /// broker override switches the worker to Kafka mode even without a `[kafka]` table.
    pub fn apply_env(
        &mut self,
        var: impl Fn(&str) -> Option<String>,
        vars: impl Iterator<Item = (String, String)>,
    ) {
        if let Some(brokers) = var("FOUNDRY_KAFKA_BROKERS").filter(|b| !b.trim().is_empty()) {
            self.kafka.get_or_insert_with(KafkaConfig::default).brokers = brokers;
        }
        for (name, value) in vars {
            if let Some(prop) = name.strip_prefix("FOUNDRY_KAFKA_PROP_") {
                if let Some(kafka) = self.kafka.as_mut() {
                    kafka
                        .properties
                        .insert(prop.to_ascii_lowercase().replace('_', "."), value);
                }
            }
        }
    }

    /// Checks settings that the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Inconsistent(m.to_string()));
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1");
        }
        if self.max_in_flight < self.batch_size {
            return bad("max_in_flight must be at least batch_size");
        }
        if self.rules.is_empty() && self.yara.is_empty() && self.hub.is_none() {
            return bad("no rules: set `rules`, `yara` or `hub`");
        }
        if let Some(h) = &self.hub {
            if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
                return bad("hub.url must start with http:// or https://");
            }
            if h.tenant.trim().is_empty() {
                return bad("hub.tenant is empty (set it or --tenant)");
            }
            if h.poll_wait_secs == 0 {
                return bad("hub.poll_wait_secs must be at least 1");
            }
        }
        if self.reload.interval_secs == 0 {
            return bad("reload.interval_secs must be at least 1");
        }
        if let Some(k) = &self.kafka {
            if k.brokers.trim().is_empty() {
                return bad("kafka.brokers is empty (set it or FOUNDRY_KAFKA_BROKERS)");
            }
            if k.inputs.is_empty() {
                return bad("kafka.inputs names no topic");
            }
            if !matches!(k.auto_offset_reset.as_str(), "earliest" | "latest") {
                return bad("kafka.auto_offset_reset must be `earliest` or `latest`");
            }
        }
        Ok(())
    }

    /// This worker's id: the configured one, or `<hostname>-<pid>`.
    pub fn worker_id(&self) -> String {
        self.worker_id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "worker".into());
            format!("{host}-{}", std::process::id())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let err = WorkerConfig::from_toml("rules = []\nbatch_sise = 3\n").unwrap_err();
        assert!(err.contains("batch_sise"), "{err}");
        let err = WorkerConfig::from_toml("[kafka]\nbrokers = \"b\"\ntopicz = []\n").unwrap_err();
        assert!(err.contains("topicz"), "{err}");
    }

    #[test]
    fn environment_overrides_brokers_and_secrets() {
        let mut c = WorkerConfig::from_toml("rules = [\"r\"]\n").unwrap();
        let env = [(
            "FOUNDRY_KAFKA_PROP_SASL_PASSWORD".to_string(),
            "s3cret".to_string(),
        )];
        c.apply_env(
            |n| (n == "FOUNDRY_KAFKA_BROKERS").then(|| "k:9092".into()),
            env.into_iter(),
        );
        let k = c.kafka.unwrap();
        assert_eq!(k.brokers, "k:9092");
        assert_eq!(k.properties["sasl.password"], "s3cret");
        assert_eq!(k.group, "foundry-workers");
    }
}
