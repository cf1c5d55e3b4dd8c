//! Prometheus metrics, and the one place where a worker event is both logged and counted.
//!
//! Label values are bounded by construction: rule ids and levels come from the loaded rule
//! set, reasons from fixed enums, topics and partitions from the configuration and the
//! assignment. No value taken from an event ever becomes a label.

use std::sync::Mutex;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use foundry_engine::{DeadLetterReason, Hit};

/// Every metric the worker exports, registered in its own registry.
pub struct Metrics {
    registry: Registry,
    /// `foundry_events_consumed_total`.
    pub events_consumed: IntCounter,
    /// `foundry_hits_total{rule,level}`.
    pub hits: IntCounterVec,
    /// `foundry_dead_letters_total{reason}`.
    pub dead_letters: IntCounterVec,
    /// `foundry_payload_problems_total{reason}`.
    pub payload_problems: IntCounterVec,
    /// `foundry_evaluation_seconds`: time to decode and evaluate one batch.
    pub evaluation_seconds: Histogram,
    /// `foundry_batch_size`: records per evaluated batch.
    pub batch_size: Histogram,
    /// `foundry_in_flight_events`: records read and not yet fully acknowledged.
    pub in_flight: IntGauge,
    /// `foundry_consumer_lag{topic,partition}` for the partitions this worker owns.
    pub consumer_lag: IntGaugeVec,
    /// `foundry_commit_failures_total`.
    pub commit_failures: IntCounter,
    /// `foundry_delivery_failures_total`: outputs Kafka refused, re-sent.
    pub delivery_failures: IntCounter,
    /// `foundry_ruleset_info{version}`: 1 for the running rule set.
    pub ruleset_info: IntGaugeVec,
    /// `foundry_stage_seconds{stage}`: time per batch in each pipeline stage (fetch, emit).
    pub stage_seconds: HistogramVec,
    /// `foundry_ruleset_reloads_total{trigger}`: rule sets swapped in by a reload.
    pub reloads: IntCounterVec,
    /// `foundry_ruleset_reload_failures_total`: reloads rejected (the old set kept running).
    pub reload_failures: IntCounter,
    /// `foundry_ruleset_reload_seconds`: time from reading the sources to the swap.
    pub reload_seconds: Histogram,
    /// `foundry_ruleset_rules{kind}`: rules in the running set.
    pub ruleset_rules: IntGaugeVec,
    /// `foundry_ruleset_expired_rules`: rules left out of the running set as expired.
    pub expired_rules: IntGauge,
    /// `foundry_hub_poll_failures_total`: polls of the hub that failed.
    pub hub_poll_failures: IntCounter,
    ruleset_version: Mutex<Option<String>>,
}

fn levels() -> [&'static str; 6] {
    ["informational", "low", "medium", "high", "critical", "none"]
}

/// Maps a hit's level to a bounded label value.
fn level_label(level: Option<&str>) -> &'static str {
    let level = level.unwrap_or("none");
    levels()
        .into_iter()
        .find(|l| l.eq_ignore_ascii_case(level))
        .unwrap_or("none")
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let m = Metrics {
            events_consumed: counter(
                "foundry_events_consumed_total",
                "Records read from the input.",
            ),
            hits: counter_vec(
                "foundry_hits_total",
                "Hits produced, by rule and level.",
                &["rule", "level"],
            ),
            dead_letters: counter_vec(
                "foundry_dead_letters_total",
                "Records sent to the dead letters.",
                &["reason"],
            ),
            payload_problems: counter_vec(
                "foundry_payload_problems_total",
                "YARA-X payloads that could not be scanned.",
                &["reason"],
            ),
            evaluation_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "foundry_evaluation_seconds",
                    "Time to decode and evaluate one batch.",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16).expect("valid buckets")),
            )
            .expect("valid metric"),
            batch_size: Histogram::with_opts(
                HistogramOpts::new("foundry_batch_size", "Records per evaluated batch.")
                    .buckets(prometheus::exponential_buckets(1.0, 2.0, 14).expect("valid buckets")),
            )
            .expect("valid metric"),
            in_flight: IntGauge::new(
                "foundry_in_flight_events",
                "Records read and not yet fully acknowledged.",
            )
            .expect("valid metric"),
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "foundry_consumer_lag",
                    "Records behind the end of each owned partition.",
                ),
                &["topic", "partition"],
            )
            .expect("valid metric"),
            commit_failures: counter(
                "foundry_commit_failures_total",
                "Offset commits that failed.",
            ),
            delivery_failures: counter(
                "foundry_delivery_failures_total",
                "Outputs Kafka refused; they are re-sent.",
            ),
            ruleset_info: IntGaugeVec::new(
                Opts::new(
                    "foundry_ruleset_info",
                    "The running rule set (value 1), by version.",
                ),
                &["version"],
            )
            .expect("valid metric"),
            stage_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "foundry_stage_seconds",
                    "Time spent per pipeline stage and batch.",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16).expect("valid buckets")),
                &["stage"],
            )
            .expect("valid metric"),
            reloads: counter_vec(
                "foundry_ruleset_reloads_total",
                "Rule sets swapped in by a reload, by trigger.",
                &["trigger"],
            ),
            reload_failures: counter(
                "foundry_ruleset_reload_failures_total",
                "Reloads rejected because a rule failed; the old set kept running.",
            ),
            reload_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "foundry_ruleset_reload_seconds",
                    "Time from reading the rule sources to swapping the new set in.",
                )
                .buckets(prometheus::exponential_buckets(0.005, 2.0, 14).expect("valid buckets")),
            )
            .expect("valid metric"),
            ruleset_rules: IntGaugeVec::new(
                Opts::new(
                    "foundry_ruleset_rules",
                    "Rules in the running set, by kind.",
                ),
                &["kind"],
            )
            .expect("valid metric"),
            expired_rules: IntGauge::new(
                "foundry_ruleset_expired_rules",
                "Rules left out of the running set because their valid_until has passed.",
            )
            .expect("valid metric"),
            hub_poll_failures: counter(
                "foundry_hub_poll_failures_total",
                "Polls of the hub's deployable set that failed.",
            ),
            registry,
            ruleset_version: Mutex::new(None),
        };
        let r = &m.registry;
        for c in [
            &m.events_consumed,
            &m.commit_failures,
            &m.delivery_failures,
            &m.reload_failures,
            &m.hub_poll_failures,
        ] {
            r.register(Box::new(c.clone())).expect("unique metric");
        }
        for c in [&m.hits, &m.dead_letters, &m.payload_problems, &m.reloads] {
            r.register(Box::new(c.clone())).expect("unique metric");
        }
        r.register(Box::new(m.evaluation_seconds.clone()))
            .expect("unique metric");
        r.register(Box::new(m.batch_size.clone()))
            .expect("unique metric");
        r.register(Box::new(m.in_flight.clone()))
            .expect("unique metric");
        r.register(Box::new(m.consumer_lag.clone()))
            .expect("unique metric");
        r.register(Box::new(m.ruleset_info.clone()))
            .expect("unique metric");
        r.register(Box::new(m.stage_seconds.clone()))
            .expect("unique metric");
        r.register(Box::new(m.reload_seconds.clone()))
            .expect("unique metric");
        r.register(Box::new(m.ruleset_rules.clone()))
            .expect("unique metric");
        r.register(Box::new(m.expired_rules.clone()))
            .expect("unique metric");
        for reason in DeadLetterReason::ALL {
            m.dead_letters.with_label_values(&[reason.as_str()]);
        }
        m
    }

    /// The registry, e.g. to add process metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Dead letters counted so far for `reason`.
    pub fn dead_letter_count(&self, reason: DeadLetterReason) -> u64 {
        self.dead_letters
            .with_label_values(&[reason.as_str()])
            .get()
    }

    /// A rule set starts running: log it and switch the info series to its version.
    pub fn ruleset_loaded(&self, version: &str, sigma: usize, yara: usize) {
        tracing::info!(
            version,
            sigma_rules = sigma,
            yara_rules = yara,
            "rule set running"
        );
        let mut current = self
            .ruleset_version
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(old) = current.take() {
            let _ = self.ruleset_info.remove_label_values(&[&old]);
        }
        self.ruleset_info.with_label_values(&[version]).set(1);
        *current = Some(version.to_string());
        self.ruleset_rules
            .with_label_values(&["sigma"])
            .set(sigma as i64);
        self.ruleset_rules
            .with_label_values(&["yara"])
            .set(yara as i64);
    }

    /// A reload swapped a new set in: log it, count it, and drop the per-rule series of rules
    /// the new set no longer has (their counters are gone with them, never decremented).
    pub fn reloaded(
        &self,
        trigger: &str,
        from: &str,
        to: &str,
        rule_ids: &[String],
        expired: usize,
        took: std::time::Duration,
    ) {
        tracing::info!(
            trigger,
            from,
            to,
            expired,
            seconds = took.as_secs_f64(),
            "rule set reloaded"
        );
        self.reloads.with_label_values(&[trigger]).inc();
        self.reload_seconds.observe(took.as_secs_f64());
        self.expired_rules.set(expired as i64);
        let keep: std::collections::HashSet<&str> = rule_ids.iter().map(String::as_str).collect();
        let mut gone = Vec::new();
        for family in self.hits.collect() {
            for metric in family.get_metric() {
                let labels: Vec<(&str, &str)> = metric
                    .get_label()
                    .iter()
                    .map(|l| (l.name(), l.value()))
                    .collect();
                let value = |name: &str| labels.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
                if let (Some(rule), Some(level)) = (value("rule"), value("level")) {
                    if !keep.contains(rule) {
                        gone.push((rule.to_string(), level.to_string()));
                    }
                }
            }
        }
        for (rule, level) in gone {
            let _ = self.hits.remove_label_values(&[&rule, &level]);
        }
    }

    /// A reload was rejected: log it and count it; the old set keeps running.
    pub fn reload_failed(&self, trigger: &str, running: &str, error: &dyn std::fmt::Display) {
        tracing::error!(
            trigger,
            running,
            %error,
            "rule set reload rejected; the running set stays"
        );
        self.reload_failures.inc();
    }

    /// A poll of the hub failed; the next one follows after the retry pause.
    pub fn hub_poll_failed(&self, error: &dyn std::fmt::Display) {
        tracing::warn!(%error, "hub poll failed; the running set stays");
        self.hub_poll_failures.inc();
    }

    /// Hits of one event were produced.
    pub fn hits_produced(&self, hits: &[Hit]) {
        for hit in hits {
            let level = level_label(hit.rule.level.as_deref());
            self.hits
                .with_label_values(&[hit.rule.id.as_str(), level])
                .inc();
        }
    }

    /// A record went to the dead letters (logged at debug: it is per event).
    pub fn dead_lettered(
        &self,
        reason: DeadLetterReason,
        topic: &str,
        partition: i32,
        offset: i64,
        detail: &str,
    ) {
        tracing::debug!(
            reason = reason.as_str(),
            topic,
            partition,
            offset,
            detail,
            "record dead-lettered"
        );
        self.dead_letters
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// A payload of `record` could not be scanned (logged at debug: it is per event). The
    /// event itself is not lost: its other payloads and its Sigma hits still count.
    pub fn payload_problem(
        &self,
        record: &crate::pipeline::RawRecord,
        problem: &foundry_engine::PayloadProblem,
    ) {
        tracing::debug!(
            reason = problem.reason,
            topic = %record.key.topic,
            partition = record.key.partition,
            offset = record.offset,
            field = %problem.field,
            detail = %problem.detail,
            "payload not scanned"
        );
        self.payload_problems
            .with_label_values(&[problem.reason])
            .inc();
    }

    /// An offset commit failed.
    pub fn commit_failed(&self, error: &dyn std::fmt::Display) {
        tracing::warn!(%error, "offset commit failed; a later commit supersedes it");
        self.commit_failures.inc();
    }

    /// Kafka refused an output; it will be re-sent.
    pub fn delivery_failed(&self, topic: &str, error: &dyn std::fmt::Display) {
        tracing::warn!(topic, %error, "delivery failed; re-sending");
        self.delivery_failures.inc();
    }

    /// Partitions were assigned to this worker.
    pub fn partitions_assigned(&self, partitions: &[(String, i32)]) {
        tracing::info!(?partitions, "partitions assigned");
        for (t, p) in partitions {
            self.consumer_lag
                .with_label_values(&[t.as_str(), &p.to_string()])
                .set(0);
        }
    }

    /// Partitions were taken from this worker.
    pub fn partitions_revoked(&self, partitions: &[(String, i32)], drained: bool) {
        tracing::info!(?partitions, drained, "partitions revoked");
        for (t, p) in partitions {
            let _ = self
                .consumer_lag
                .remove_label_values(&[t.as_str(), &p.to_string()]);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_bounded() {
        assert_eq!(level_label(Some("HIGH")), "high");
        assert_eq!(level_label(Some("whatever an attacker wrote")), "none");
        assert_eq!(level_label(None), "none");
    }

    #[test]
    fn a_reload_drops_the_series_of_removed_rules_only() {
        let m = Metrics::new();
        m.hits.with_label_values(&["kept", "high"]).inc_by(3);
        m.hits.with_label_values(&["removed", "low"]).inc_by(2);
        let ids = vec!["kept".to_string(), "new".to_string()];
        m.reloaded("admin", "v1", "v2", &ids, 0, std::time::Duration::ZERO);
        let text = m.render();
        assert!(
            text.contains("foundry_hits_total{level=\"high\",rule=\"kept\"} 3"),
            "{text}"
        );
        assert!(!text.contains("rule=\"removed\""), "{text}");
        assert!(text.contains("foundry_ruleset_reloads_total{trigger=\"admin\"} 1"));
    }

    #[test]
    fn exposition_names_the_series() {
        let m = Metrics::new();
        m.ruleset_loaded("abc", 0, 0);
        m.ruleset_loaded("def", 0, 0);
        let text = m.render();
        assert!(
            text.contains("foundry_ruleset_info{version=\"def\"} 1"),
            "{text}"
        );
        assert!(!text.contains("version=\"abc\""));
        assert!(text.contains("foundry_dead_letters_total{reason=\"not_json\"} 0"));
    }
}
