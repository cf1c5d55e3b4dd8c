//! Field and logsource mapping, in the style of pySigma processing pipelines.
//!
//! A mapping file (TOML) says three things: where nested layouts keep the fields Sigma names
//! directly (`flatten` roots such as `Event.EventData`), which event paths a Sigma field may
//! be found at (`[fields]`), and which events belong to which logsource (`[[logsource]]`
//! entries with `when` conditions on fields). Several mapping files merge in order.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use foundry_sigma::Logsource;

/// One value or a list of values in a `when` condition.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single string.
    One(String),
    /// A single integer.
    Int(i64),
    /// A list.
    Many(Vec<OneOrMany>),
}

impl OneOrMany {
    /// The accepted values, lower-cased.
    pub fn values(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.to_lowercase()],
            OneOrMany::Int(i) => vec![i.to_string()],
            OneOrMany::Many(items) => items.iter().flat_map(OneOrMany::values).collect(),
        }
    }
}

/// One logsource classification rule.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogsourceRule {
    /// The product the event belongs to.
    pub product: Option<String>,
    /// The category the event belongs to.
    pub category: Option<String>,
    /// The service the event belongs to.
    pub service: Option<String>,
    /// Every field named here must hold one of its values (case-insensitive); the value
    /// `"*"` accepts any value (the field must be present with one).
    pub when: BTreeMap<String, OneOrMany>,
}

impl LogsourceRule {
    /// The logsource this rule assigns.
    pub fn logsource(&self) -> Logsource {
        Logsource {
            category: self.category.clone(),
            product: self.product.clone(),
            service: self.service.clone(),
            definition: None,
        }
    }
}

/// A field and logsource mapping.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Object paths whose children are addressable by their own names, e.g. `Event.EventData`
    /// makes `Event.EventData.Image` answer to `Image`.
    #[serde(default)]
    pub flatten: Vec<String>,
    /// For a Sigma field name, the event paths to look in, in order. A field not listed is
    /// looked up under its own name (and under each flatten root).
    #[serde(default)]
    pub fields: BTreeMap<String, Vec<String>>,
    /// Logsource classification rules; an event gets every logsource whose rule it satisfies.
    #[serde(default)]
    pub logsource: Vec<LogsourceRule>,
    /// Values for `expand` placeholders.
    #[serde(default)]
    pub placeholders: BTreeMap<String, Vec<String>>,
}

/// A mapping file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// The file could not be read.
    #[error("{path}: cannot read mapping: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid mapping.
    #[error("{path}: invalid mapping: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong (with line and column from the TOML parser).
        message: String,
    },
}

impl Mapping {
    /// Reads a mapping file.
    pub fn from_file(path: &Path) -> Result<Mapping, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Mapping::from_toml(&text).map_err(|message| MappingError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses a mapping from TOML text.
    pub fn from_toml(text: &str) -> Result<Mapping, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))
    }

    /// Appends another mapping's entries after this one's.
    pub fn merge(&mut self, other: Mapping) {
        for root in other.flatten {
            if !self.flatten.contains(&root) {
                self.flatten.push(root);
            }
        }
        for (field, paths) in other.fields {
            let entry = self.fields.entry(field).or_default();
            for p in paths {
                if !entry.contains(&p) {
                    entry.push(p);
                }
            }
        }
        self.logsource.extend(other.logsource);
        self.placeholders.extend(other.placeholders);
    }

    /// The event paths a Sigma field is looked up at.
    pub fn paths_for(&self, field: &str) -> Vec<String> {
        let mut paths = self.fields.get(field).cloned().unwrap_or_default();
        if !paths.iter().any(|p| p == field) {
            paths.push(field.to_string());
        }
        let direct: Vec<String> = paths.clone();
        for root in &self.flatten {
            for p in &direct {
                paths.push(format!("{root}.{p}"));
            }
        }
        paths
    }
}
