//! The streaming worker of Threat Foundry: `foundry worker`.
//!
//! A [`Worker`] is built from a [`WorkerConfig`]: it compiles the rule set into a
//! [`RuleSetHandle`] (swappable between batches, the seam hot reload uses), registers its
//! [`Metrics`], and [`Worker::run`]s one [`pipeline`]: records from a [`pipeline::Source`]
//! are decoded and evaluated in batches across cores, hits go to a [`pipeline::HitSink`],
//! undecodable records to a [`pipeline::DeadLetterSink`], and input offsets are committed
//! only once every output of a record is acknowledged ([`delivery::Delivery`] holds that
//! protocol).
//!
//! Two families of sources and sinks share the pipeline: [`kafka`] (a consumer group with
//! cooperative-sticky rebalancing, at-least-once by default, Kafka transactions as an
//! option) and [`file`] (JSON Lines files or standard input and output, the embedded default).
//! [`http`] serves `/metrics`, `/healthz`, `/readyz` and `POST /admin/reload`. The
//! [`reload::Reloader`] replaces the running rule set while the stream runs — on file
//! changes ([`watch`]), SIGHUP, the admin route, a new bundle from the [`hub`], or its timer
//! (expiry) — and never with a set in which any rule fails. A [`Shutdown`] handle stops a run
//! gracefully — stop fetching, finish in-flight batches, wait for acknowledgements, commit,
//! leave the group — within the configured deadline.

#![warn(missing_docs)]

pub mod config;
pub mod delivery;
pub mod file;
pub mod http;
pub mod hub;
pub mod kafka;
pub mod metrics;
pub mod pipeline;
pub mod reload;
pub mod rules;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

pub use config::{
    ConfigError, HitKey, HubConfig, InputTopic, KafkaConfig, ReloadConfig, WorkerConfig,
    YaraScanConfig,
};
pub use delivery::{Delivery, PartitionKey, Ticket};
pub use http::Readiness;
pub use metrics::Metrics;
pub use pipeline::{
    DeadLetterSink, HitSink, RawRecord, RecordHeaders, RunSummary, Shutdown, Source,
};
pub use reload::{ReloadOutcome, Reloader, Trigger};
pub use rules::{build_rule_set, rule_set_builder, RuleSetHandle};

use foundry_engine::RuleSet;

/// Why a worker could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The rule set could not be built.
    #[error("rules: {0}")]
    Rules(String),
    /// A file or stream could not be read or written.
    #[error("io: {0}")]
    Io(String),
    /// Kafka refused something the worker cannot do without.
    #[error("kafka: {0}")]
    Kafka(String),
    /// A pipeline stage failed.
    #[error("pipeline: {0}")]
    Pipeline(String),
    /// A configured feature this build does not provide.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// One worker: configuration, running rule set, metrics, readiness and its stop handle.
pub struct Worker {
    config: WorkerConfig,
    id: String,
    rules: RuleSetHandle,
    reloader: Option<Arc<Reloader>>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    delivery: Arc<Delivery>,
    shutdown: Shutdown,
}

impl Worker {
    /// Validates the configuration and compiles its rules (rules that fail are logged and
    /// left out, as `foundry scan` does; later reloads are strict). With a hub configured,
    /// its deployable set is fetched first.
    pub fn new(config: WorkerConfig) -> Result<Worker, WorkerError> {
        config.validate()?;
        let metrics = Arc::new(Metrics::new());
        let readiness = Readiness::new();
        let reloader = Reloader::start(config.clone(), metrics.clone(), readiness.clone())?;
        let rules = reloader.handle().clone();
        Ok(Worker::assemble(
            config,
            rules,
            Some(reloader),
            metrics,
            readiness,
        ))
    }

    /// A worker running an already built rule set, without hot reload (benchmarks).
    pub fn with_rule_set(config: WorkerConfig, set: RuleSet) -> Result<Worker, WorkerError> {
        let metrics = Arc::new(Metrics::new());
        let readiness = Readiness::new();
        let rules = RuleSetHandle::new(set, metrics.clone());
        readiness.set_ruleset(true);
        Ok(Worker::assemble(config, rules, None, metrics, readiness))
    }

    fn assemble(
        config: WorkerConfig,
        rules: RuleSetHandle,
        reloader: Option<Arc<Reloader>>,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
    ) -> Worker {
        if config.kafka.is_some() {
            readiness.require_assignment();
        }
        let delivery = Delivery::new(config.max_in_flight.max(1), metrics.in_flight.clone());
        let id = config.worker_id();
        Worker {
            config,
            id,
            rules,
            reloader,
            metrics,
            readiness,
            delivery,
            shutdown: Shutdown::new(),
        }
    }

    /// The hot-reload driver (absent for a worker built with [`Worker::with_rule_set`]).
    pub fn reloader(&self) -> Option<Arc<Reloader>> {
        self.reloader.clone()
    }

    /// The running rule set.
    pub fn rules(&self) -> &RuleSetHandle {
        &self.rules
    }

    /// The metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// What `/readyz` reports.
    pub fn readiness(&self) -> Arc<Readiness> {
        self.readiness.clone()
    }

    /// The handle that stops [`Worker::run`].
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The delivery bookkeeping (offsets in flight and committable), for diagnostics.
    pub fn delivery(&self) -> Arc<Delivery> {
        self.delivery.clone()
    }

    /// The worker's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The configuration.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Runs the configured pipeline until the input ends (files) or the shutdown handle
    /// fires. Blocks the calling thread. Call once per worker.
    pub fn run(&self) -> Result<RunSummary, WorkerError> {
        match &self.config.kafka {
            Some(kafka) => {
                tracing::info!(worker = %self.id, brokers = %kafka.brokers, "worker starting in Kafka mode");
                let parts = kafka::connect(
                    kafka,
                    &self.id,
                    self.delivery.clone(),
                    self.metrics.clone(),
                    self.readiness.clone(),
                    self.shutdown.clone(),
                )?;
                self.run_with(
                    Box::new(parts.source),
                    Box::new(parts.hits),
                    Box::new(parts.dead_letters),
                )
            }
            None => {
                let files = &self.config.files;
                tracing::info!(worker = %self.id, inputs = ?files.input, "worker starting in files mode");
                let source = file::FileSource::open(&files.input, self.config.batch_size * 2)?;
                let hits =
                    file::JsonLinesSink::new(file::open_output(files.output.as_deref(), false)?);
                let letters = file::JsonLinesSink::new(file::open_output(
                    files.dead_letter_output.as_deref(),
                    true,
                )?);
                self.run_with(Box::new(source), Box::new(hits), Box::new(letters))
            }
        }
    }

    /// Runs the pipeline over any source and sinks (benchmarks, embedding).
    pub fn run_with(
        &self,
        source: Box<dyn Source>,
        hits: Box<dyn HitSink>,
        dead_letters: Box<dyn DeadLetterSink>,
    ) -> Result<RunSummary, WorkerError> {
        let c = &self.config;
        let settings = pipeline::PipelineSettings {
            batch_size: c.batch_size,
            batch_wait: Duration::from_millis(c.batch_wait_ms),
            max_event_bytes: c.max_event_bytes,
            commit_interval: Duration::from_millis(
                c.kafka.as_ref().map_or(0, |k| k.commit_interval_ms),
            ),
            shutdown_deadline: Duration::from_secs(c.shutdown_deadline_secs),
            worker_id: self.id.clone(),
            hit_key: c.kafka.as_ref().map_or(HitKey::Input, |k| k.hit_key),
        };
        if let Some(reloader) = &self.reloader {
            reloader.spawn()?;
        }
        let summary = pipeline::run_pipeline(
            source,
            hits,
            dead_letters,
            self.rules.clone(),
            self.delivery.clone(),
            self.metrics.clone(),
            settings,
            self.shutdown.clone(),
        );
        if let Some(reloader) = &self.reloader {
            reloader.stop();
        }
        let summary = summary?;
        tracing::info!(
            events = summary.events,
            hits = summary.hits,
            dead_letters = summary.dead_letters,
            unacknowledged = summary.unacknowledged,
            "worker stopped"
        );
        Ok(summary)
    }
}
