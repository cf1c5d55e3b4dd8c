//! The Sigma language for Threat Foundry.
//!
//! A Sigma file is read by [`parse_documents`] into [`Document`]s — detection rules,
//! filters and correlations — each keeping the line and column it came from. A rule is
//! compiled by [`compile_rule`] into a [`CompiledRule`]: its searches become
//! [`detection::FieldCondition`]s of [`matcher::ValueMatcher`]s over fields interned in a
//! shared [`FieldTable`], and its condition a [`condition::Condition`] tree. A compiled rule
//! evaluates against any [`event::EventView`]; the engine crate supplies views built from JSON
//! events, routes events by logsource and uses [`CompiledRule::required_literals`] to skip
//! rules that cannot match.
//!
//! Semantics follow the Sigma specification v2 (and pySigma where the text is unclear):
//! values are case-insensitive unless `cased`; `*` and `?` are wildcards with `\` escapes;
//! lists are OR-linked unless `all`; maps are AND-linked; `null` means absent or null;
//! regular expressions search a substring and run in linear time.

#![warn(missing_docs)]

pub mod condition;
pub mod detection;
pub mod error;
pub mod event;
pub mod matcher;
pub mod modifier;
pub mod pattern;
pub mod rule;
pub mod yaml;

use std::collections::HashMap;

pub use condition::{AggregateFunction, Aggregation, AggregationKind, Comparison};
pub use detection::{CompileOptions, Detection, Literal, Needle, Selectivity};
pub use error::{ErrorCode, Position, SigmaError};
pub use event::{EventValue, EventView, ValueKind};
pub use matcher::FieldId;
pub use rule::{
    CorrelationDocument, Document, FilterDocument, FilterTarget, Logsource, Metadata, RuleDocument,
};

use yaml::{Node, NodeValue};

/// Field names interned to small integers, shared by every rule of a rule set.
#[derive(Debug, Clone, Default)]
pub struct FieldTable {
    names: Vec<String>,
    ids: HashMap<String, FieldId>,
}

impl FieldTable {
    /// The id of `name`, adding it if new.
    pub fn intern(&mut self, name: &str) -> FieldId {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as FieldId;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    /// The id of `name`, if interned.
    pub fn get(&self, name: &str) -> Option<FieldId> {
        self.ids.get(name).copied()
    }

    /// The name of an id.
    pub fn name(&self, id: FieldId) -> &str {
        &self.names[id as usize]
    }

    /// How many fields are interned.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no field is interned.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Every interned name with its id.
    pub fn iter(&self) -> impl Iterator<Item = (FieldId, &str)> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (i as FieldId, n.as_str()))
    }
}

/// Parses every document of a Sigma file. Sigma v1 collections (`action: global`, `reset`,
/// `repeat`) are merged into the documents they apply to.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, SigmaError> {
    let nodes = yaml::load_documents(text)?;
    let mut global: Option<Node> = None;
    let mut previous: Option<Node> = None;
    let mut docs = Vec::new();
    for node in nodes {
        if matches!(node.value, NodeValue::Null) {
            continue;
        }
        match node.get("action").and_then(Node::as_str) {
            Some("global") => {
                global = Some(without_action(&node));
                continue;
            }
            Some("reset") => {
                global = None;
                continue;
            }
            Some("repeat") => {
                let Some(prev) = previous.clone() else {
                    return Err(SigmaError::new(
                        ErrorCode::InvalidField,
                        node.position,
                        "'action: repeat' has no previous document",
                    ));
                };
                let merged = merge(&prev, &without_action(&node));
                docs.push(Document::from_node(&merged)?);
                previous = Some(merged);
                continue;
            }
            _ => {}
        }
        let merged = match &global {
            Some(g) => merge(g, &node),
            None => node,
        };
        docs.push(Document::from_node(&merged)?);
        previous = Some(merged);
    }
    if docs.is_empty() {
        return Err(SigmaError::new(
            ErrorCode::MissingField,
            Position { line: 1, column: 1 },
            "the file holds no sigma document",
        ));
    }
    Ok(docs)
}

fn without_action(node: &Node) -> Node {
    let entries = node
        .as_map()
        .unwrap_or_default()
        .iter()
        .filter(|(k, _)| k.as_str() != Some("action"))
        .cloned();
    Node {
        position: node.position,
        value: NodeValue::Map(entries.collect()),
    }
}

/// Deep-merges `over` onto `base`: mappings merge key by key, anything else is replaced.
fn merge(base: &Node, over: &Node) -> Node {
    match (&base.value, &over.value) {
        (NodeValue::Map(b), NodeValue::Map(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                match out.iter_mut().find(|(bk, _)| bk.value == k.value) {
                    Some((_, bv)) => *bv = merge(bv, v),
                    None => out.push((k.clone(), v.clone())),
                }
            }
            Node {
                position: over.position,
                value: NodeValue::Map(out),
            }
        }
        _ => over.clone(),
    }
}

/// A rule compiled for evaluation.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// Metadata.
    pub meta: Metadata,
    /// The logsource.
    pub logsource: Logsource,
    /// The compiled detection.
    pub detection: Detection,
    /// Filters whose conditions are ANDed onto the detection.
    pub filters: Vec<Detection>,
    /// Field names of each search, for reporting what matched.
    pub search_fields: Vec<Vec<String>>,
    /// Non-fatal problems found while compiling.
    pub warnings: Vec<SigmaError>,
}

impl CompiledRule {
    /// Evaluates the rule; on a hit returns the indices of the searches that held.
    pub fn evaluate(&self, event: &dyn EventView) -> Option<Vec<usize>> {
        let matched = self.detection.evaluate(event)?;
        for f in &self.filters {
            f.evaluate(event)?;
        }
        Some(matched)
    }

    /// Lower-cased literals, each with the field whose values hold it, of which at least one
    /// occurs in every event the rule matches, or `None` when the rule has no such set.
    pub fn required_literals(&self) -> Option<Vec<Literal>> {
        self.detection.required()
    }

    /// The rule's Sigma v1 aggregation (`| count() by x > 5`, `| near y`), if it has one.
    /// Such a rule needs state across events; the engine does not evaluate it yet.
    pub fn aggregation(&self) -> Option<&Aggregation> {
        self.detection.aggregation.as_ref()
    }

    /// The stable identifier: `id`, else `name`, else the title.
    pub fn identifier(&self) -> &str {
        self.meta
            .id
            .as_deref()
            .or(self.meta.name.as_deref())
            .unwrap_or(&self.meta.title)
    }
}

/// Compiles a detection rule.
pub fn compile_rule(
    doc: &RuleDocument,
    fields: &mut FieldTable,
    options: &CompileOptions,
) -> Result<CompiledRule, SigmaError> {
    let mut warnings = Vec::new();
    let detection = detection::compile(&doc.detection, fields, options, &mut warnings)?;
    let search_fields = detection
        .searches
        .iter()
        .map(|s| {
            let mut names: Vec<String> = Vec::new();
            for item in s.alternatives.iter().flatten() {
                let name = item
                    .field
                    .map_or("keywords", |f| fields.name(f))
                    .to_string();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            names
        })
        .collect();
    Ok(CompiledRule {
        meta: doc.meta.clone(),
        logsource: doc.logsource.clone(),
        detection,
        filters: Vec::new(),
        search_fields,
        warnings,
    })
}

/// Compiles a filter's searches and condition.
pub fn compile_filter(
    doc: &FilterDocument,
    fields: &mut FieldTable,
    options: &CompileOptions,
) -> Result<Detection, SigmaError> {
    let mut warnings = Vec::new();
    let detection = detection::compile(&doc.detection, fields, options, &mut warnings)?;
    if let Some(agg) = &detection.aggregation {
        return Err(SigmaError::new(
            ErrorCode::ConditionSyntax,
            agg.position,
            format!("a filter cannot aggregate ('| {}')", agg.text),
        )
        .expected("a condition without '|'"));
    }
    Ok(detection)
}

/// Whether a filter applies to a rule: it names the rule (by id or name) or targets any,
/// and every logsource field the filter sets equals the rule's (case-insensitive).
pub fn filter_applies(filter: &FilterDocument, rule: &CompiledRule) -> bool {
    let named = match &filter.target {
        FilterTarget::Any => true,
        FilterTarget::Rules(names) => names.iter().any(|n| {
            Some(n.as_str()) == rule.meta.id.as_deref()
                || Some(n.as_str()) == rule.meta.name.as_deref()
        }),
    };
    let fits = |want: &Option<String>, have: &Option<String>| match want {
        None => true,
        Some(w) => have.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(w)),
    };
    named
        && fits(&filter.logsource.category, &rule.logsource.category)
        && fits(&filter.logsource.product, &rule.logsource.product)
        && fits(&filter.logsource.service, &rule.logsource.service)
}

/// What [`check_text`] found in a text that compiled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checked {
    /// Documents in the text.
    pub documents: usize,
    /// Titles and aggregations (`title: count() by x > 5`) of rules with a Sigma v1
    /// aggregation: they compile but are not evaluated yet.
    pub aggregations: Vec<String>,
}

/// Parses and compiles every document of a text, for validation.
pub fn check_text(text: &str, options: &CompileOptions) -> Result<Checked, SigmaError> {
    let docs = parse_documents(text)?;
    let mut fields = FieldTable::default();
    let mut checked = Checked {
        documents: docs.len(),
        aggregations: Vec::new(),
    };
    for doc in &docs {
        match doc {
            Document::Rule(r) => {
                let rule = compile_rule(r, &mut fields, options)?;
                if let Some(agg) = rule.aggregation() {
                    checked
                        .aggregations
                        .push(format!("{}: {}", rule.meta.title, agg.text));
                }
            }
            Document::Filter(f) => {
                compile_filter(f, &mut fields, options)?;
            }
            Document::Correlation(_) => {}
        }
    }
    Ok(checked)
}
