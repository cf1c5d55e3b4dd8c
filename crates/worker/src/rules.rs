//! The running rule set, and building one from the worker's configuration.

use std::sync::Arc;

use arc_swap::ArcSwap;
use foundry_engine::{LoadReport, Mapping, RuleSet, RuleSetBuilder, YaraConfig};

use crate::config::WorkerConfig;
use crate::metrics::Metrics;
use crate::WorkerError;

/// The rule set the pipeline runs, replaceable while it runs.
///
/// The pipeline reads [`RuleSetHandle::current`] once per batch and evaluates the whole batch
/// with that snapshot, so every hit of a batch carries one rule-set version, and a swap takes
/// effect at the next batch boundary without stopping the stream. Hot reload (module
/// `reload`, to come) only has to build a new set — strictly, so a set with any failed rule
/// never runs — and call [`RuleSetHandle::swap`].
#[derive(Clone)]
pub struct RuleSetHandle {
    current: Arc<ArcSwap<RuleSet>>,
    metrics: Arc<Metrics>,
}

impl RuleSetHandle {
    /// Wraps the first rule set.
    pub fn new(set: RuleSet, metrics: Arc<Metrics>) -> RuleSetHandle {
        metrics.ruleset_loaded(set.version(), set.sigma_rule_count(), set.yara_rule_count());
        RuleSetHandle {
            current: Arc::new(ArcSwap::from_pointee(set)),
            metrics,
        }
    }

    /// The rule set to evaluate the next batch with.
    pub fn current(&self) -> Arc<RuleSet> {
        self.current.load_full()
    }

    /// Replaces the running rule set; batches already evaluating keep the one they took.
    pub fn swap(&self, set: RuleSet) {
        self.metrics
            .ruleset_loaded(set.version(), set.sigma_rule_count(), set.yara_rule_count());
        self.current.store(Arc::new(set));
    }
}

/// Builds the rule set a configuration names. `strict` rejects the whole set when any rule
/// fails (what hot reload wants); otherwise failures are logged and the rest load.
pub fn build_rule_set(
    config: &WorkerConfig,
    strict: bool,
) -> Result<(RuleSet, LoadReport), WorkerError> {
    if config.hub.is_some() {
        return Err(WorkerError::Unsupported(
            "rules from the hub are not loaded by the worker yet; give --rules/--yara paths".into(),
        ));
    }
    let mut mapping = Mapping::default();
    for path in &config.mapping {
        mapping.merge(Mapping::from_file(path).map_err(|e| WorkerError::Rules(e.to_string()))?);
    }
    let mut payload_fields = Vec::new();
    for spec in &config.payload_fields {
        payload_fields.push(
            spec.parse()
                .map_err(|e: foundry_yara::PayloadSpecError| WorkerError::Rules(e.to_string()))?,
        );
    }
    let mut builder = RuleSetBuilder::new()
        .strict(strict)
        .mapping(mapping)
        .default_tlp(config.default_tlp.clone())
        .yara_config(YaraConfig {
            payload_fields,
            limits: foundry_yara::ScanLimits::default(),
        });
    let rules_err = |e: foundry_engine::RuleSetError| WorkerError::Rules(e.to_string());
    for path in &config.rules {
        builder.add_sigma_path(path).map_err(rules_err)?;
    }
    for path in &config.yara {
        builder.add_yara_path(path).map_err(rules_err)?;
    }
    let (set, report) = builder.build().map_err(rules_err)?;
    for failure in &report.failed {
        tracing::warn!(path = %failure.path, error = %failure.error, "rule not loaded");
    }
    Ok((set, report))
}
