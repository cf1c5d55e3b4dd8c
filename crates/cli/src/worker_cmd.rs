//! `foundry worker`: the streaming worker. Reads the configuration file, lets flags override
//! it, and runs `foundry_worker::Worker` with the metrics endpoint and signal handling.

use std::path::{Path, PathBuf};

use anyhow::Context;
use foundry_worker::{HubConfig, InputTopic, KafkaConfig, Worker, WorkerConfig};

/// Arguments of `foundry worker`. Flags override the configuration file.
#[derive(clap::Args, Debug, Default)]
pub struct WorkerArgs {
    /// Configuration file (TOML). Default: config/worker.toml when it exists and no --rules
    /// or --yara is given.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers; switches the worker to Kafka mode.
    #[arg(long, value_name = "HOSTS")]
    pub brokers: Option<String>,
    /// Consumer group id.
    #[arg(long, value_name = "ID")]
    pub group: Option<String>,
    /// Input topic (repeatable); replaces the configured inputs.
    #[arg(long = "input-topic", value_name = "TOPIC")]
    pub input_topic: Vec<String>,
    /// Topic for hits.
    #[arg(long = "hits-topic", value_name = "TOPIC")]
    pub hits_topic: Option<String>,
    /// Topic for dead letters.
    #[arg(long = "dead-letter-topic", value_name = "TOPIC")]
    pub dead_letter_topic: Option<String>,
    /// Sigma rule file or folder (repeatable); replaces the configured ones.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// YARA-X rule file or folder (repeatable); replaces the configured ones.
    #[arg(long = "yara", value_name = "PATH")]
    pub yara: Vec<PathBuf>,
    /// Field and logsource mapping (repeatable); replaces the configured ones.
    #[arg(long = "mapping", value_name = "FILE")]
    pub mapping: Vec<PathBuf>,
    /// Event field holding a payload for YARA-X: FIELD[:base64|text|sha256ref] (repeatable).
    #[arg(long = "payload-field", value_name = "FIELD[:ENC]")]
    pub payload_field: Vec<String>,
    /// Hub URL to take the tenant's reviewed rules from.
    #[arg(long, value_name = "URL")]
    pub hub: Option<String>,
    /// Tenant id on the hub.
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,
    /// File holding the hub API token.
    #[arg(long = "token-file", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Address for /metrics, /healthz and /readyz, e.g. 127.0.0.1:9464.
    #[arg(long = "metrics-addr", value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Files mode: JSON Lines input (repeatable; - for standard input).
    #[arg(long, value_name = "FILE")]
    pub input: Vec<String>,
    /// Files mode: where hits go (- for standard output).
    #[arg(long, value_name = "FILE")]
    pub output: Option<String>,
    /// Files mode: where dead letters go (default standard error).
    #[arg(long = "dead-letter-output", value_name = "FILE")]
    pub dead_letter_output: Option<String>,
    /// This worker's id in hits and dead letters (default hostname-pid).
    #[arg(long = "worker-id", value_name = "ID")]
    pub worker_id: Option<String>,
    /// Write hits and commit offsets in Kafka transactions.
    #[arg(long = "exactly-once")]
    pub exactly_once: bool,
    /// Seconds a graceful stop may take.
    #[arg(long = "shutdown-deadline", value_name = "SECONDS")]
    pub shutdown_deadline: Option<u64>,
}

/// Reads the configuration file (if any) and applies the flags over it.
pub fn resolve_config(args: &WorkerArgs) -> anyhow::Result<WorkerConfig> {
    let default = Path::new("config/worker.toml");
    let path = match &args.config {
        Some(p) => Some(p.clone()),
        None if args.rules.is_empty() && args.yara.is_empty() && default.exists() => {
            tracing::info!(config = %default.display(), "using the shipped configuration");
            Some(default.to_path_buf())
        }
        None => None,
    };
    let mut c = match &path {
        Some(p) => WorkerConfig::from_file(p)?,
        None => {
            let mut c = WorkerConfig::default();
            c.apply_env(|n| std::env::var(n).ok(), std::env::vars());
            c
        }
    };
    let replace = |dst: &mut Vec<PathBuf>, src: &[PathBuf]| {
        if !src.is_empty() {
            *dst = src.to_vec();
        }
    };
    replace(&mut c.rules, &args.rules);
    replace(&mut c.yara, &args.yara);
    replace(&mut c.mapping, &args.mapping);
    if !args.payload_field.is_empty() {
        c.payload_fields = args.payload_field.clone();
    }
    if args.hub.is_some() || args.tenant.is_some() || args.token_file.is_some() {
        let hub = c.hub.get_or_insert_with(HubConfig::default);
        if let Some(url) = &args.hub {
            hub.url = url.clone();
        }
        if let Some(tenant) = &args.tenant {
            hub.tenant = tenant.clone();
        }
        if args.token_file.is_some() {
            hub.token_file = args.token_file.clone();
        }
    }
    if args.metrics_addr.is_some() {
        c.metrics_addr = args.metrics_addr.clone();
    }
    if args.worker_id.is_some() {
        c.worker_id = args.worker_id.clone();
    }
    if let Some(s) = args.shutdown_deadline {
        c.shutdown_deadline_secs = s;
    }
    if !args.input.is_empty() {
        c.files.input = args.input.clone();
    }
    if args.output.is_some() {
        c.files.output = args.output.clone();
    }
    if args.dead_letter_output.is_some() {
        c.files.dead_letter_output = args.dead_letter_output.clone();
    }
    let kafka_flags = args.brokers.is_some()
        || args.group.is_some()
        || !args.input_topic.is_empty()
        || args.hits_topic.is_some()
        || args.dead_letter_topic.is_some()
        || args.exactly_once;
    if kafka_flags {
        let k = c.kafka.get_or_insert_with(KafkaConfig::default);
        if let Some(b) = &args.brokers {
            k.brokers = b.clone();
        }
        if let Some(g) = &args.group {
            k.group = g.clone();
        }
        if !args.input_topic.is_empty() {
            k.inputs = args
                .input_topic
                .iter()
                .map(|t| InputTopic {
                    topic: t.clone(),
                    ..InputTopic::default()
                })
                .collect();
        }
        if let Some(t) = &args.hits_topic {
            k.hits_topic = t.clone();
        }
        if let Some(t) = &args.dead_letter_topic {
            k.dead_letter_topic = t.clone();
        }
        if args.exactly_once {
            k.exactly_once = true;
        }
    }
    Ok(c)
}

/// Runs the worker until its input ends or SIGTERM/SIGINT (a second signal aborts).
pub fn run(args: WorkerArgs) -> anyhow::Result<i32> {
    let config = resolve_config(&args)?;
    let worker = Worker::new(config).context("starting the worker")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("foundry-io")
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        if let Some(addr) = worker.config().metrics_addr.clone() {
            foundry_worker::http::serve(
                &addr,
                worker.metrics(),
                worker.readiness(),
                worker.reloader(),
            )
            .await
            .with_context(|| format!("binding the metrics endpoint on {addr}"))?;
        }
        #[cfg(unix)]
        if let Some(reloader) = worker.reloader() {
            use tokio::signal::unix::{signal, SignalKind};
            let mut hangups = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading the rule set");
                    reloader.trigger(foundry_worker::Trigger::Signal);
                }
            });
        }
        let shutdown = worker.shutdown();
        tokio::spawn(async move {
            let mut signals = 0;
            loop {
                wait_for_signal().await;
                signals += 1;
                if signals == 1 {
                    tracing::info!("stopping: finishing in-flight batches (signal again to abort)");
                    shutdown.stop();
                } else {
                    tracing::warn!("aborting without waiting for acknowledgements");
                    shutdown.abort();
                    break;
                }
            }
        });
        let summary = tokio::task::spawn_blocking(move || worker.run())
            .await
            .context("worker thread")??;
        eprintln!(
            "foundry worker: {} events, {} hits, {} dead letters{}",
            summary.events,
            summary.hits,
            summary.dead_letters,
            if summary.unacknowledged > 0 {
                format!(
                    ", {} unacknowledged at the deadline",
                    summary.unacknowledged
                )
            } else {
                String::new()
            }
        );
        Ok(0)
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
