//! A small YAML tree that keeps the position and the original text of every node.
//!
//! Sigma compares values as strings, so a plain scalar such as `0x10` or `01234` must keep
//! the text the author wrote; and every diagnostic needs a line and a column. saphyr's
//! loader with early parsing switched off gives both; this module turns its output into a
//! tree that the rest of the crate walks.

use saphyr::{MarkedYaml, Scalar, ScalarStyle, YamlData, YamlLoader};
use saphyr_parser::{Event, Parser};

use crate::error::{ErrorCode, Position, SigmaError};

/// A YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub position: Position,
    /// The node's content.
    pub value: NodeValue,
}

/// The content of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// `null`, `~` or an empty plain scalar.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer, with the text as written.
    Int(i64, String),
    /// A float, with the text as written.
    Float(f64, String),
    /// A string (quoted, block, or a plain scalar that is nothing else).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The string content of a string node.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The text of any scalar as Sigma reads it (numbers as written, booleans as words).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            NodeValue::Str(s) => Some(s.clone()),
            NodeValue::Int(_, text) | NodeValue::Float(_, text) => Some(text.clone()),
            NodeValue::Bool(b) => Some(b.to_string()),
            NodeValue::Null | NodeValue::Seq(_) | NodeValue::Map(_) => None,
        }
    }

    /// The entries of a mapping node.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            NodeValue::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// Looks up a key of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// A short name of the node's type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Int(..) => "an integer",
            NodeValue::Float(..) => "a number",
            NodeValue::Str(_) => "a string",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }
}

/// Parses every document of a YAML text.
pub fn load_documents(text: &str) -> Result<Vec<Node>, SigmaError> {
    check_depth(text)?;
    let mut loader: YamlLoader<'_, MarkedYaml<'_>> = YamlLoader::default();
    loader.early_parse(false);
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut loader, true) {
        return Err(scan_error(&e));
    }
    if let Some(e) = loader.error() {
        return Err(scan_error(e));
    }
    loader
        .into_documents()
        .into_iter()
        .map(|doc| convert(&doc, 0))
        .collect()
}

/// How deep YAML collections may nest. saphyr's loader recurses once per level and so does
/// [`convert`], so a hostile file of `- - - - …` (100 000 levels fit in 200 KB) would overflow
/// the stack; a Sigma rule nests four or five levels.
pub const MAX_DEPTH: usize = 64;

/// Refuses a text whose collections nest deeper than [`MAX_DEPTH`], walking the parser's
/// events without recursion before the recursive loader sees the text.
fn check_depth(text: &str) -> Result<(), SigmaError> {
    let mut depth = 0usize;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| scan_error(&e))?;
        match event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(too_deep(Position {
                        line: span.start.line(),
                        column: span.start.col() + 1,
                    }));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn too_deep(position: Position) -> SigmaError {
    SigmaError::new(
        ErrorCode::YamlSyntax,
        position,
        format!("yaml nests deeper than {MAX_DEPTH} levels"),
    )
    .expected("a rule of a few nested mappings and lists")
}

fn scan_error(e: &saphyr_parser::ScanError) -> SigmaError {
    let marker = e.marker();
    SigmaError::new(
        ErrorCode::YamlSyntax,
        Position {
            line: marker.line(),
            column: marker.col() + 1,
        },
        format!("invalid yaml: {}", e.info()),
    )
}

/// `depth` counts enclosing collections: aliases can still nest anchors past [`MAX_DEPTH`]
/// after [`check_depth`] has passed the text, and this walk recurses.
fn convert(node: &MarkedYaml<'_>, depth: usize) -> Result<Node, SigmaError> {
    let position = Position {
        line: node.span.start.line(),
        column: node.span.start.col() + 1,
    };
    if depth > MAX_DEPTH {
        return Err(too_deep(position));
    }
    let value = match &node.data {
        YamlData::Representation(text, style, tag) => {
            scalar(text, *style, tag.as_ref().map(|t| t.suffix.as_str()))
        }
        YamlData::Value(v) => match v {
            Scalar::Null => NodeValue::Null,
            Scalar::Boolean(b) => NodeValue::Bool(*b),
            Scalar::Integer(i) => NodeValue::Int(*i, i.to_string()),
            Scalar::FloatingPoint(f) => NodeValue::Float(f.into_inner(), f.to_string()),
            Scalar::String(s) => NodeValue::Str(s.to_string()),
        },
        YamlData::Sequence(items) => {
            let items = items.iter().map(|i| convert(i, depth + 1));
            NodeValue::Seq(items.collect::<Result<_, _>>()?)
        }
        YamlData::Mapping(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (k, v) in map.iter() {
                entries.push((convert(k, depth + 1)?, convert(v, depth + 1)?));
            }
            NodeValue::Map(entries)
        }
        YamlData::Tagged(_, inner) => return convert(inner, depth),
        YamlData::Alias(_) | YamlData::BadValue => {
            return Err(SigmaError::new(
                ErrorCode::YamlSyntax,
                position,
                "unsupported or invalid yaml node (alias or bad value)",
            ))
        }
    };
    Ok(Node { position, value })
}

/// Resolves a scalar by the YAML 1.2 core schema, keeping the text for numbers.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> NodeValue {
    if style != ScalarStyle::Plain || tag == Some("str") {
        return NodeValue::Str(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return NodeValue::Null,
        "true" | "True" | "TRUE" => return NodeValue::Bool(true),
        "false" | "False" | "FALSE" => return NodeValue::Bool(false),
        _ => {}
    }
    if let Some(i) = parse_int(text) {
        return NodeValue::Int(i, text.to_string());
    }
    if looks_like_float(text) {
        if let Ok(f) = text.parse::<f64>() {
            return NodeValue::Float(f, text.to_string());
        }
    }
    NodeValue::Str(text.to_string())
}

fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if negative { -value } else { value })
}

fn looks_like_float(text: &str) -> bool {
    let body = text.trim_start_matches(['-', '+']);
    !body.is_empty()
        && body.bytes().any(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
}
