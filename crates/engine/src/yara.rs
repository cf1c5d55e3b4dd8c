//! YARA-X inside a rule set: payloads pulled from events, scanned, and reported as hits in
//! the same format as Sigma hits.
//!
//! A payload that cannot be decoded or scanned is never a lost event: the event's Sigma hits
//! and other payloads still count, and the problem is returned beside the hits
//! ([`crate::Evaluation::payload_problems`]) for the caller to log and count.

use foundry_yara::{
    extract_payloads, PayloadProblemKind, PayloadSpec, ScanError, ScanLimits, YaraRuleSet,
    YaraSource,
};
use serde_json::{json, Value};

use crate::builder::{normalize_tlp, LoadFailure, RuleSource};
use crate::hit::{EventOrigin, Hit, HitPayload, HitRule, HitRuleset, Provenance, RuleKind};
use crate::ruleset::{Evaluation, PayloadProblem};

/// Where payloads are and how far scanning may go.
#[derive(Debug, Clone, Default)]
pub struct YaraConfig {
    /// Payload fields (`FIELD[:base64|text|sha256ref]`).
    pub payload_fields: Vec<PayloadSpec>,
    /// Limits per scan and per event.
    pub limits: ScanLimits,
}

/// Compiled YARA-X rules with their payload configuration.
pub struct YaraPart {
    rules: YaraRuleSet,
    config: YaraConfig,
    default_tlp: String,
    ids: Vec<String>,
}

impl YaraPart {
    pub(crate) fn compile(
        sources: &[RuleSource],
        config: &YaraConfig,
        default_tlp: Option<&str>,
    ) -> Result<YaraPart, Vec<LoadFailure>> {
        let yara_sources: Vec<YaraSource> = sources
            .iter()
            .map(|s| YaraSource::new(&s.path, s.text.clone()))
            .collect();
        match YaraRuleSet::compile(&yara_sources) {
            Ok(rules) => {
                let ids = rules.namespaces().to_vec();
                Ok(YaraPart {
                    rules,
                    config: config.clone(),
                    default_tlp: normalize_tlp(default_tlp.unwrap_or("TLP:CLEAR")),
                    ids,
                })
            }
            Err(errors) => Err(errors
                .into_iter()
                .map(|e| LoadFailure {
                    path: e.path.display().to_string(),
                    error: e.to_string(),
                    unsupported: e.unsupported.as_ref().map(|s| s.to_string()),
                })
                .collect()),
        }
    }

    pub(crate) fn rule_count(&self) -> usize {
        self.rules.rule_count()
    }

    pub(crate) fn rule_ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    pub(crate) fn scan_event(
        &self,
        event: &Value,
        origin: &EventOrigin,
        version: &str,
        now: &str,
        out: &mut Evaluation,
    ) {
        if self.config.payload_fields.is_empty() {
            return;
        }
        let (payloads, problems) =
            extract_payloads(event, &self.config.payload_fields, &self.config.limits);
        for p in problems {
            let reason = match p.kind {
                PayloadProblemKind::TooMany { .. } => "too_many",
                PayloadProblemKind::BlobTooLarge { .. } => "too_large",
                _ => "undecodable",
            };
            out.payload_problems.push(PayloadProblem {
                field: p.field.clone(),
                reason,
                detail: p.to_string(),
            });
        }
        for payload in &payloads {
            match self.rules.scan(payload, &self.config.limits) {
                Ok(hits) => {
                    for h in hits {
                        let confidence = h.confidence().unwrap_or(70);
                        let tlp = h
                            .tlp()
                            .map(|t| normalize_tlp(&t))
                            .unwrap_or_else(|| self.default_tlp.clone());
                        let author = h
                            .meta
                            .get("author")
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        out.hits.push(Hit {
                            rule: HitRule {
                                id: format!("{}:{}", h.namespace, h.identifier),
                                title: h.identifier.clone(),
                                kind: RuleKind::Yara,
                                level: None,
                                version: version.to_string(),
                                tags: h.tags.clone(),
                            },
                            ruleset: HitRuleset {
                                version: version.to_string(),
                            },
                            confidence,
                            tlp,
                            provenance: Provenance {
                                origin: "local".into(),
                                author,
                                ..Provenance::default()
                            },
                            event: origin.clone(),
                            matched: json!({
                                "namespace": h.namespace,
                                "tags": h.tags,
                                "meta": h.meta,
                                "strings": h.strings,
                                "strings_truncated": h.strings_truncated,
                            }),
                            payload: Some(HitPayload {
                                field: h.payload_field.clone(),
                                sha256: h.payload_sha256.clone(),
                                size: h.payload_size as u64,
                            }),
                            worker: None,
                            detected_at: now.to_string(),
                        });
                    }
                }
                Err(e) => {
                    let reason = match e {
                        ScanError::Timeout => "timeout",
                        ScanError::TooLarge { .. } => "too_large",
                        ScanError::Other(_) => "error",
                    };
                    out.payload_problems.push(PayloadProblem {
                        field: payload.field.clone(),
                        reason,
                        detail: e.to_string(),
                    });
                }
            }
        }
    }
}
