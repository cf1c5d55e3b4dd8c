//! Sigma documents: rules, filters and correlations, with their metadata.

use crate::error::{ErrorCode, Position, SigmaError};
use crate::yaml::{Node, NodeValue};

/// The `logsource` of a rule or filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Logsource {
    /// e.g. `process_creation`.
    pub category: Option<String>,
    /// e.g. `windows`.
    pub product: Option<String>,
    /// e.g. `security`.
    pub service: Option<String>,
    /// Free text on how to collect the log.
    pub definition: Option<String>,
}

impl Logsource {
    fn parse(node: &Node) -> Result<Logsource, SigmaError> {
        if node.as_map().is_none() {
            return Err(invalid(node, "logsource", "a mapping"));
        }
        Ok(Logsource {
            category: opt_string(node, "category")?,
            product: opt_string(node, "product")?,
            service: opt_string(node, "service")?,
            definition: opt_string(node, "definition")?,
        })
    }
}

/// A `related` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Related {
    /// The related rule's id.
    pub id: String,
    /// derived, obsolete, merged, renamed or similar.
    pub kind: String,
}

/// Metadata common to every Sigma document.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Metadata {
    /// `title` (required).
    pub title: String,
    /// `id`, a UUID by convention.
    pub id: Option<String>,
    /// `name`, a unique symbolic name used by correlations.
    pub name: Option<String>,
    /// `status`.
    pub status: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `license`.
    pub license: Option<String>,
    /// `author`.
    pub author: Option<String>,
    /// `references`.
    pub references: Vec<String>,
    /// `date`.
    pub date: Option<String>,
    /// `modified`.
    pub modified: Option<String>,
    /// `tags`.
    pub tags: Vec<String>,
    /// `level`.
    pub level: Option<String>,
    /// `falsepositives`.
    pub falsepositives: Vec<String>,
    /// `fields`.
    pub fields: Vec<String>,
    /// `related`.
    pub related: Vec<Related>,
    /// Other top-level scalar attributes (custom attributes such as `confidence` or `tlp`).
    pub custom: std::collections::BTreeMap<String, String>,
    /// Where the document starts in its file.
    #[serde(skip)]
    pub position: Position,
}

const STANDARD_KEYS: &[&str] = &[
    "title",
    "id",
    "name",
    "status",
    "description",
    "license",
    "author",
    "references",
    "date",
    "modified",
    "tags",
    "level",
    "falsepositives",
    "fields",
    "related",
    "logsource",
    "detection",
    "correlation",
    "filter",
    "taxonomy",
    "scope",
];

const STATUSES: &[&str] = &[
    "stable",
    "test",
    "experimental",
    "deprecated",
    "unsupported",
];
const LEVELS: &[&str] = &["informational", "low", "medium", "high", "critical"];

impl Metadata {
    fn parse(doc: &Node) -> Result<Metadata, SigmaError> {
        let title = match doc.get("title") {
            Some(n) => n
                .scalar_text()
                .ok_or_else(|| invalid(n, "title", "a string"))?,
            None => {
                return Err(SigmaError::new(
                    ErrorCode::MissingField,
                    doc.position,
                    "the document has no 'title'",
                )
                .expected("title: <short description>"))
            }
        };
        let status = opt_string(doc, "status")?;
        if let (Some(s), Some(n)) = (&status, doc.get("status")) {
            if !STATUSES.contains(&s.as_str()) {
                return Err(invalid(n, "status", &STATUSES.join(", ")));
            }
        }
        let level = opt_string(doc, "level")?;
        if let (Some(l), Some(n)) = (&level, doc.get("level")) {
            if !LEVELS.contains(&l.as_str()) {
                return Err(invalid(n, "level", &LEVELS.join(", ")));
            }
        }
        let mut related = Vec::new();
        if let Some(node) = doc.get("related") {
            let NodeValue::Seq(items) = &node.value else {
                return Err(invalid(node, "related", "a list of {id, type}"));
            };
            for item in items {
                let id = opt_string(item, "id")?
                    .ok_or_else(|| invalid(item, "related", "an entry with 'id'"))?;
                let kind = opt_string(item, "type")?.unwrap_or_default();
                related.push(Related { id, kind });
            }
        }
        Ok(Metadata {
            title,
            id: opt_string(doc, "id")?,
            name: opt_string(doc, "name")?,
            status,
            description: opt_string(doc, "description")?,
            license: opt_string(doc, "license")?,
            author: opt_string(doc, "author")?,
            references: string_list(doc, "references")?,
            date: opt_string(doc, "date")?,
            modified: opt_string(doc, "modified")?,
            tags: string_list(doc, "tags")?,
            level,
            falsepositives: string_list(doc, "falsepositives")?,
            fields: string_list(doc, "fields")?,
            related,
            custom: doc
                .as_map()
                .unwrap_or_default()
                .iter()
                .filter_map(|(k, v)| {
                    let key = k.as_str()?;
                    (!STANDARD_KEYS.contains(&key))
                        .then(|| Some((key.to_string(), v.scalar_text()?)))?
                })
                .collect(),
            position: doc.position,
        })
    }
}

/// A detection rule before compilation.
#[derive(Debug, Clone)]
pub struct RuleDocument {
    /// Metadata.
    pub meta: Metadata,
    /// The logsource.
    pub logsource: Logsource,
    /// The raw `detection` node.
    pub detection: Node,
}

/// Which rules a filter applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterTarget {
    /// Every rule whose logsource fits.
    Any,
    /// Rules named by id or name.
    Rules(Vec<String>),
}

/// A filter document: extra conditions ANDed onto the rules it names.
#[derive(Debug, Clone)]
pub struct FilterDocument {
    /// Metadata.
    pub meta: Metadata,
    /// The logsource the filter constrains (a rule must have each field it sets).
    pub logsource: Logsource,
    /// The rules it applies to.
    pub target: FilterTarget,
    /// The `filter` node minus `rules` — searches and a condition, like a detection.
    pub detection: Node,
}

/// A correlation rule (parsed and validated; evaluated in a later release).
#[derive(Debug, Clone)]
pub struct CorrelationDocument {
    /// Metadata.
    pub meta: Metadata,
    /// event_count, value_count, temporal, temporal_ordered, value_sum, value_avg,
    /// value_percentile or value_median.
    pub kind: String,
    /// The rules it correlates, by id or name.
    pub rules: Vec<String>,
    /// Group-by fields.
    pub group_by: Vec<String>,
    /// The time window, as written (e.g. `1h`).
    pub timespan: String,
}

/// One document of a Sigma file.
#[derive(Debug, Clone)]
pub enum Document {
    /// A detection rule.
    Rule(RuleDocument),
    /// A filter.
    Filter(FilterDocument),
    /// A correlation rule.
    Correlation(CorrelationDocument),
}

const CORRELATION_TYPES: &[&str] = &[
    "event_count",
    "value_count",
    "temporal",
    "temporal_ordered",
    "value_sum",
    "value_avg",
    "value_percentile",
    "value_median",
];

impl Document {
    /// Reads one document from its YAML node.
    pub fn from_node(doc: &Node) -> Result<Document, SigmaError> {
        if doc.as_map().is_none() {
            return Err(SigmaError::new(
                ErrorCode::InvalidField,
                doc.position,
                format!("a sigma document must be a mapping, found {}", doc.kind()),
            ));
        }
        let meta = Metadata::parse(doc)?;
        if let Some(c) = doc.get("correlation") {
            return parse_correlation(meta, c).map(Document::Correlation);
        }
        let logsource = match doc.get("logsource") {
            Some(n) => Logsource::parse(n)?,
            None if doc.get("filter").is_some() => Logsource::default(),
            None => {
                return Err(SigmaError::new(
                    ErrorCode::MissingField,
                    doc.position,
                    "the rule has no 'logsource'",
                )
                .expected("logsource: {category, product, service}"))
            }
        };
        if let Some(filter) = doc.get("filter") {
            let Some(entries) = filter.as_map() else {
                return Err(invalid(filter, "filter", "a mapping"));
            };
            let target = match filter.get("rules") {
                None => FilterTarget::Any,
                Some(n) if n.as_str() == Some("any") => FilterTarget::Any,
                Some(n) => match &n.value {
                    NodeValue::Seq(items) if items.is_empty() => FilterTarget::Any,
                    _ => FilterTarget::Rules(string_list(filter, "rules")?),
                },
            };
            let rest = entries
                .iter()
                .filter(|(k, _)| k.as_str() != Some("rules"))
                .cloned()
                .collect();
            let detection = Node {
                position: filter.position,
                value: NodeValue::Map(rest),
            };
            return Ok(Document::Filter(FilterDocument {
                meta,
                logsource,
                target,
                detection,
            }));
        }
        let Some(detection) = doc.get("detection") else {
            return Err(SigmaError::new(
                ErrorCode::MissingField,
                doc.position,
                "the rule has no 'detection'",
            )
            .expected("detection: {<search identifiers>, condition}"));
        };
        Ok(Document::Rule(RuleDocument {
            meta,
            logsource,
            detection: detection.clone(),
        }))
    }
}

fn parse_correlation(meta: Metadata, c: &Node) -> Result<CorrelationDocument, SigmaError> {
    let bad = |n: &Node, msg: &str| {
        SigmaError::new(ErrorCode::InvalidCorrelation, n.position, msg.to_string())
    };
    if c.as_map().is_none() {
        return Err(bad(c, "'correlation' must be a mapping"));
    }
    let kind = opt_string(c, "type")?.ok_or_else(|| bad(c, "the correlation has no 'type'"))?;
    if !CORRELATION_TYPES.contains(&kind.as_str()) {
        return Err(bad(
            c.get("type").unwrap_or(c),
            &format!("unknown correlation type '{kind}'"),
        )
        .expected(CORRELATION_TYPES.join(", ")));
    }
    let rules = string_list(c, "rules")?;
    if rules.is_empty() {
        return Err(bad(c, "the correlation names no 'rules'"));
    }
    let timespan =
        opt_string(c, "timespan")?.ok_or_else(|| bad(c, "the correlation has no 'timespan'"))?;
    // Compared as bytes: the last character may be multi-byte, where slicing the str panics.
    let unit_ok = match timespan.as_bytes().split_last() {
        Some((unit, digits)) => {
            !digits.is_empty()
                && digits.iter().all(u8::is_ascii_digit)
                && matches!(unit, b's' | b'm' | b'h' | b'd' | b'w' | b'M' | b'y')
        }
        None => false,
    };
    if !unit_ok {
        return Err(bad(
            c.get("timespan").unwrap_or(c),
            &format!("invalid timespan '{timespan}'"),
        )
        .expected("a number and a unit, e.g. 5m or 1h"));
    }
    if !kind.starts_with("temporal") && c.get("condition").is_none() {
        return Err(bad(c, "the correlation has no 'condition'"));
    }
    Ok(CorrelationDocument {
        meta,
        kind,
        rules,
        group_by: string_list(c, "group-by")?,
        timespan,
    })
}

fn invalid(node: &Node, field: &str, expected: &str) -> SigmaError {
    SigmaError::new(
        ErrorCode::InvalidField,
        node.position,
        format!("'{field}' has an invalid value ({})", node.kind()),
    )
    .expected(expected.to_string())
}

fn opt_string(node: &Node, key: &str) -> Result<Option<String>, SigmaError> {
    match node.get(key) {
        None => Ok(None),
        Some(n) if matches!(n.value, NodeValue::Null) => Ok(None),
        Some(n) => n
            .scalar_text()
            .map(Some)
            .ok_or_else(|| invalid(n, key, "a string")),
    }
}

fn string_list(node: &Node, key: &str) -> Result<Vec<String>, SigmaError> {
    match node.get(key) {
        None => Ok(Vec::new()),
        Some(n) => match &n.value {
            NodeValue::Null => Ok(Vec::new()),
            NodeValue::Seq(items) => items
                .iter()
                .map(|i| {
                    i.scalar_text()
                        .ok_or_else(|| invalid(i, key, "a list of strings"))
                })
                .collect(),
            _ => n
                .scalar_text()
                .map(|s| vec![s])
                .ok_or_else(|| invalid(n, key, "a list of strings")),
        },
    }
}
