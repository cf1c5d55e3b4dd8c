//! The hit record: one rule firing on one event, with provenance and confidence.

use serde::{Deserialize, Serialize};

/// Which engine produced a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// A Sigma rule.
    Sigma,
    /// A YARA-X rule.
    Yara,
}

/// The rule part of a hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HitRule {
    /// Sigma: the rule id (or name, or title). YARA: `namespace:identifier`.
    pub id: String,
    /// Sigma: the title. YARA: the identifier.
    pub title: String,
    /// sigma or yara.
    pub kind: RuleKind,
    /// The rule's level, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The rule's version: the hub's version, or a content hash for local rules.
    pub version: String,
    /// Tags (ATT&CK and others).
    pub tags: Vec<String>,
}

/// The rule set that produced a hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HitRuleset {
    /// The rule set's content hash (and hub version when it came from the hub).
    pub version: String,
}

/// Where a rule came from and who vouched for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// local, community or hub.
    pub origin: String,
    /// The rule's author.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The rule's id on the hub.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub_rule_id: Option<String>,
    /// The analyst who approved the rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reviewed_by: Option<String>,
    /// When it was approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reviewed_at: Option<String>,
    /// The file the rule was loaded from, for local rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Where the event came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventOrigin {
    /// The input: a file name, `-`, or the Kafka topic.
    pub source: String,
    /// 0-based index of the record in its input (line, EVTX record, or Kafka offset).
    pub offset: u64,
    /// Kafka topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Kafka partition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// The event's own time, when it carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

/// A payload that a YARA rule matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HitPayload {
    /// The event field the payload came from (concrete path, e.g. `attachments[0].content_b64`).
    pub field: String,
    /// SHA-256 of the decoded payload, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// One rule firing on one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The rule.
    pub rule: HitRule,
    /// The rule set.
    pub ruleset: HitRuleset,
    /// 0–100.
    pub confidence: u8,
    /// TLP 2.0 label, e.g. `TLP:GREEN`.
    pub tlp: String,
    /// Where the rule came from.
    pub provenance: Provenance,
    /// The event.
    pub event: EventOrigin,
    /// Sigma: search identifier → fields. YARA: namespace, tags, meta and matched strings.
    pub matched: serde_json::Value,
    /// For YARA hits, the payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<HitPayload>,
    /// The worker that produced the hit, when streaming.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// When the hit was produced (RFC 3339, UTC).
    pub detected_at: String,
}
