//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use foundry_engine::{
    EventOrigin, LoadReport, Mapping, RuleSet, RuleSetBuilder, RuleSource, SourceKind, SourceMeta,
};
use serde_json::Value;

/// `../shared` beside the repository (CI lays it there too).
pub fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn windows_mapping() -> Mapping {
    Mapping::from_file(&repo().join("config/mappings/windows.toml")).expect("windows mapping")
}

/// A strict rule set from Sigma rule texts.
pub fn set_from_texts(texts: &[&str]) -> RuleSet {
    build(texts, None).0
}

/// A strict rule set from Sigma rule texts (files `0.yml`, `1.yml` …), with a mapping if
/// given, and what loading it found.
pub fn build(texts: &[&str], mapping: Option<Mapping>) -> (RuleSet, LoadReport) {
    let mut b = RuleSetBuilder::new().strict(true);
    if let Some(m) = mapping {
        b = b.mapping(m);
    }
    for (i, t) in texts.iter().enumerate() {
        b.add_source(RuleSource {
            path: format!("{i}.yml"),
            text: t.to_string(),
            kind: SourceKind::Sigma,
            meta: SourceMeta::default(),
        });
    }
    b.build().expect("rules compile")
}

/// Which of `events` the set's rules hit (any rule).
pub fn hits(set: &RuleSet, events: &[Value]) -> Vec<bool> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let origin = EventOrigin {
                source: "test".into(),
                offset: i as u64,
                ..EventOrigin::default()
            };
            !set.evaluate(e, &origin, None).hits.is_empty()
        })
        .collect()
}

/// Converts a saphyr-free YAML value (our own loader) to JSON for events written in YAML.
pub fn yaml_to_json(node: &foundry_sigma::yaml::Node) -> Value {
    use foundry_sigma::yaml::NodeValue;
    match &node.value {
        NodeValue::Null => Value::Null,
        NodeValue::Bool(b) => Value::Bool(*b),
        NodeValue::Int(i, _) => Value::from(*i),
        NodeValue::Float(f, _) => Value::from(*f),
        NodeValue::Str(s) => Value::String(s.clone()),
        NodeValue::Seq(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        NodeValue::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.scalar_text().unwrap_or_default(), yaml_to_json(v)))
                .collect(),
        ),
    }
}
