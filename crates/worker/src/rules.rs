//! The running rule set, and building one from the worker's configuration.

use std::sync::Arc;

use arc_swap::ArcSwap;
use foundry_engine::{LoadReport, Mapping, RuleSet, RuleSetBuilder, YaraConfig};

use crate::config::WorkerConfig;
use crate::hub::Bundle;
use crate::metrics::Metrics;
use crate::WorkerError;

/// The rule set the pipeline runs, replaceable while it runs.
///
/// The pipeline reads [`RuleSetHandle::current`] once per batch and evaluates the whole batch
/// with that snapshot, so every hit of a batch carries one rule-set version, and a swap takes
/// effect at the next batch boundary without stopping the stream. [`crate::reload`] builds
/// new sets — strictly, so a set with any failed rule never runs — and calls
/// [`RuleSetHandle::swap`].
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

    /// Replaces the running rule set and hands back the one it replaced; batches already
    /// evaluating keep the one they took.
    pub fn swap(&self, set: RuleSet) -> Arc<RuleSet> {
        self.metrics
            .ruleset_loaded(set.version(), set.sigma_rule_count(), set.yara_rule_count());
        self.current.swap(Arc::new(set))
    }
}

/// A builder holding everything a configuration names — mapping, payload settings, rule
/// files and folders, and the hub bundle's rules — read now, not yet compiled. `strict`
/// rejects the whole set when any rule fails (what hot reload wants).
pub fn rule_set_builder(
    config: &WorkerConfig,
    bundle: Option<&Bundle>,
    strict: bool,
) -> Result<RuleSetBuilder, WorkerError> {
    let mut mapping = Mapping::default();
    for path in &config.mapping {
        mapping.merge(Mapping::from_file(path).map_err(|e| WorkerError::Rules(e.to_string()))?);
    }
    let scan = &config.yara_scan;
    let mut payload_fields = Vec::new();
    for spec in &config.payload_fields {
        let spec: foundry_yara::PayloadSpec = spec
            .parse()
            .map_err(|e| WorkerError::Rules(format!("payload_fields: {e}")))?;
        payload_fields.push(match &scan.blob_dir {
            Some(dir) => spec.with_blob_dir(dir),
            None => spec,
        });
    }
    let limits = foundry_yara::ScanLimits {
        timeout: std::time::Duration::from_secs(scan.timeout_secs.max(1)),
        max_payload_bytes: scan.max_payload_bytes,
        max_payloads_per_event: scan.max_payloads_per_event,
        max_matched_strings: scan.max_matched_strings,
    };
    let mut builder = RuleSetBuilder::new()
        .strict(strict)
        .mapping(mapping)
        .default_tlp(config.default_tlp.clone())
        .hub_version(bundle.map(|b| b.version.clone()))
        .yara_config(YaraConfig {
            payload_fields,
            limits,
        });
    let rules_err = |e: foundry_engine::RuleSetError| WorkerError::Rules(e.to_string());
    for path in &config.rules {
        builder.add_sigma_path(path).map_err(rules_err)?;
    }
    for path in &config.yara {
        builder.add_yara_path(path).map_err(rules_err)?;
    }
    if let Some(bundle) = bundle {
        for source in bundle.sources()? {
            builder.add_source(source);
        }
    }
    Ok(builder)
}

/// Builds the rule set a configuration names from files only (benchmarks, tests). Rule
/// failures are logged; with `strict` they reject the set.
pub fn build_rule_set(
    config: &WorkerConfig,
    strict: bool,
) -> Result<(RuleSet, LoadReport), WorkerError> {
    let (set, report) = rule_set_builder(config, None, strict)?
        .build()
        .map_err(|e| WorkerError::Rules(e.to_string()))?;
    for failure in &report.failed {
        tracing::warn!(path = %failure.path, error = %failure.error, "rule not loaded");
    }
    Ok((set, report))
}
