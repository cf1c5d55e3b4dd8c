//! Payloads: the bytes inside an event that YARA-X scans.
//!
//! A [`PayloadSpec`] (`attachments[].content_b64`, `ScriptBlockText:text`,
//! `sample.sha256:sha256ref`) names where they are and how they are encoded;
//! [`extract_payloads`] applies the specs to one event.
//!
//! A payload that cannot be read never stops the event: it comes back as a
//! [`PayloadProblem`] beside the payloads that could be read, and the event still goes
//! through the Sigma rules. The engine turns each problem into a note on stderr (or the
//! dead-letter output, with the event's offset) and counts it. We deliberately do not fall
//! back to scanning the raw field text when base64 decoding fails: a hit on text that was
//! meant to be decoded would be misleading, and a field declared base64 that holds
//! something else is a configuration or producer fault worth surfacing.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use base64::alphabet;
use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ScanLimits;

/// How the text of a payload field turns into bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadEncoding {
    /// Base64, standard or URL-safe alphabet, padding optional, whitespace ignored. The
    /// default.
    Base64,
    /// The field's text as UTF-8 bytes.
    Text,
    /// The field holds a SHA-256 (64 hex digits) naming a file in the blob folder
    /// ([`PayloadSpec::blob_dir`]); the payload is that file's content.
    Sha256Ref,
}

/// Where a payload sits in an event and how it is encoded.
///
/// Parsed from `FIELD[:base64|text|sha256ref]`. `FIELD` is a dotted path into the event's
/// JSON objects; a segment followed by `[]` iterates every element of an array
/// (`attachments[].content_b64`), `[N]` takes one element. A dotted segment also matches a
/// key that itself contains dots (`"Event.EventData.Payload"` as one flat key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayloadSpec {
    /// The field path as written (without the encoding suffix).
    pub field: String,
    /// The encoding.
    pub encoding: PayloadEncoding,
    /// Folder holding blobs named by their lowercase hex SHA-256, for
    /// [`PayloadEncoding::Sha256Ref`]. Set it with [`PayloadSpec::with_blob_dir`].
    pub blob_dir: Option<PathBuf>,
    #[serde(skip)]
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    EachElement,
    Element(usize),
}

/// A payload spec that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid payload field `{spec}`: {reason}")]
pub struct PayloadSpecError {
    /// The spec as given.
    pub spec: String,
    /// What is wrong with it.
    pub reason: String,
}

impl PayloadSpec {
    /// Sets the blob folder used by `sha256ref` fields.
    #[must_use]
    pub fn with_blob_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.blob_dir = Some(dir.into());
        self
    }
}

impl FromStr for PayloadSpec {
    type Err = PayloadSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| PayloadSpecError {
            spec: spec.to_string(),
            reason: reason.into(),
        };
        let (field, encoding) = match spec.rsplit_once(':') {
            Some((field, "base64")) => (field, PayloadEncoding::Base64),
            Some((field, "text")) => (field, PayloadEncoding::Text),
            Some((field, "sha256ref")) => (field, PayloadEncoding::Sha256Ref),
            Some((_, other)) => {
                return Err(err(&format!(
                    "unknown encoding `{other}` (expected base64, text or sha256ref)"
                )))
            }
            None => (spec, PayloadEncoding::Base64),
        };
        let segments = parse_path(field).map_err(|r| err(&r))?;
        Ok(Self {
            field: field.to_string(),
            encoding,
            blob_dir: None,
            segments,
        })
    }
}

impl fmt::Display for PayloadSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoding = match self.encoding {
            PayloadEncoding::Base64 => "base64",
            PayloadEncoding::Text => "text",
            PayloadEncoding::Sha256Ref => "sha256ref",
        };
        write!(f, "{}:{encoding}", self.field)
    }
}

fn parse_path(field: &str) -> Result<Vec<Segment>, String> {
    if field.is_empty() {
        return Err("empty field path".into());
    }
    let mut segments = Vec::new();
    for part in field.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() && (segments.is_empty() || rest.is_empty()) {
            return Err("empty path segment".into());
        }
        if !name.is_empty() {
            segments.push(Segment::Key(name.to_string()));
        }
        while !rest.is_empty() {
            let close = rest.find(']').ok_or("unclosed `[`")?;
            let inside = &rest[1..close];
            segments.push(if inside.is_empty() {
                Segment::EachElement
            } else {
                Segment::Element(
                    inside
                        .parse()
                        .map_err(|_| format!("bad array index `{inside}`"))?,
                )
            });
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(format!("unexpected `{rest}` after `]`"));
            }
        }
    }
    Ok(segments)
}

/// Bytes taken from an event, ready to scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payload {
    /// Concrete path of the field, array indices filled in: `attachments[1].content_b64`.
    pub field: String,
    /// The decoded bytes.
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// Lowercase hex SHA-256 of `bytes`.
    pub sha256: String,
}

impl Payload {
    /// Wraps bytes found at `field`, computing their SHA-256.
    pub fn new(field: impl Into<String>, bytes: Vec<u8>) -> Self {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Self {
            field: field.into(),
            bytes,
            sha256,
        }
    }
}

/// A payload field that was present but could not be turned into a payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayloadProblem {
    /// Concrete path of the field (or the spec's path for [`PayloadProblemKind::TooMany`]).
    pub field: String,
    /// What went wrong.
    pub kind: PayloadProblemKind,
}

impl fmt::Display for PayloadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "payload field `{}`: {}", self.field, self.kind)
    }
}

/// The kinds of [`PayloadProblem`]. A field that is absent or `null` is not a problem:
/// most events simply carry no payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PayloadProblemKind {
    /// The field is not a string (a number, an object, an array not marked `[]`).
    #[error("expected a string, found {found}")]
    NotAString {
        /// JSON type found.
        found: String,
    },
    /// The base64 text does not decode.
    #[error("invalid base64: {reason}")]
    InvalidBase64 {
        /// The decoder's message.
        reason: String,
    },
    /// A `sha256ref` value that is not 64 hex digits, or no blob folder configured.
    #[error("invalid blob reference: {reason}")]
    InvalidBlobRef {
        /// What is wrong.
        reason: String,
    },
    /// The referenced blob could not be read, or its content does not hash to its name.
    #[error("cannot read blob {sha256}: {reason}")]
    BlobUnreadable {
        /// The referenced SHA-256.
        sha256: String,
        /// What went wrong.
        reason: String,
    },
    /// A blob larger than [`ScanLimits::max_payload_bytes`]; it was not read. (Inline
    /// payloads are already in memory with the event: they are extracted and the size
    /// limit is enforced by [`crate::YaraRuleSet::scan`], which returns
    /// [`crate::ScanError::TooLarge`].)
    #[error("blob of {size} bytes exceeds the limit of {limit} bytes")]
    BlobTooLarge {
        /// Blob size in bytes.
        size: u64,
        /// The limit in force.
        limit: usize,
    },
    /// More payloads than [`ScanLimits::max_payloads_per_event`]; the rest were dropped.
    #[error("{dropped} payload(s) dropped beyond the limit of {limit} per event")]
    TooMany {
        /// How many payload fields were dropped.
        dropped: usize,
        /// The limit in force.
        limit: usize,
    },
}

/// Applies `specs` to one event, in order.
///
/// Returns the payloads found (at most `limits.max_payloads_per_event`, in spec then array
/// order) and the problems met. Absent, `null` and empty-string fields yield nothing. Never
/// panics on any JSON input.
pub fn extract_payloads(
    event: &Value,
    specs: &[PayloadSpec],
    limits: &ScanLimits,
) -> (Vec<Payload>, Vec<PayloadProblem>) {
    let mut payloads = Vec::new();
    let mut problems = Vec::new();
    let mut dropped = 0usize;
    let mut first_dropped: Option<String> = None;
    for spec in specs {
        let mut found = Vec::new();
        walk(event, &spec.segments, String::new(), &mut found);
        for (field, value) in found {
            let text = match value {
                Value::Null => continue,
                Value::String(s) if s.is_empty() => continue,
                Value::String(s) => s,
                other => {
                    let found = json_type(other).to_string();
                    problems.push(PayloadProblem {
                        field,
                        kind: PayloadProblemKind::NotAString { found },
                    });
                    continue;
                }
            };
            if payloads.len() >= limits.max_payloads_per_event {
                dropped += 1;
                first_dropped.get_or_insert(field);
                continue;
            }
            match decode(text, spec, limits) {
                Ok(bytes) => payloads.push(Payload::new(field, bytes)),
                Err(kind) => problems.push(PayloadProblem { field, kind }),
            }
        }
    }
    if dropped > 0 {
        let limit = limits.max_payloads_per_event;
        problems.push(PayloadProblem {
            field: first_dropped.unwrap_or_default(),
            kind: PayloadProblemKind::TooMany { dropped, limit },
        });
    }
    (payloads, problems)
}

/// Collects `(concrete path, value)` for every value the path reaches.
fn walk<'v>(
    value: &'v Value,
    segments: &[Segment],
    path: String,
    out: &mut Vec<(String, &'v Value)>,
) {
    let Some((first, rest)) = segments.split_first() else {
        out.push((path, value));
        return;
    };
    match first {
        Segment::Key(_) => {
            let Value::Object(map) = value else { return };
            // Try `a`, then the flat keys `a.b`, `a.b.c`...: some producers flatten nested
            // names into one key with dots.
            let keys = rest
                .iter()
                .take_while(|s| matches!(s, Segment::Key(_)))
                .count();
            let mut name = String::new();
            for taken in 0..=keys {
                let Segment::Key(part) = &segments[taken] else {
                    break;
                };
                if taken > 0 {
                    name.push('.');
                }
                name.push_str(part);
                if let Some(child) = map.get(&name) {
                    let child_path = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}.{name}")
                    };
                    walk(child, &segments[taken + 1..], child_path, out);
                    return;
                }
            }
        }
        Segment::EachElement => {
            if let Value::Array(items) = value {
                for (i, item) in items.iter().enumerate() {
                    walk(item, rest, format!("{path}[{i}]"), out);
                }
            }
        }
        Segment::Element(i) => {
            if let Some(item) = value.as_array().and_then(|items| items.get(*i)) {
                walk(item, rest, format!("{path}[{i}]"), out);
            }
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array (mark the field with `[]` to iterate it)",
        Value::Object(_) => "an object",
    }
}

fn decode(
    text: &str,
    spec: &PayloadSpec,
    limits: &ScanLimits,
) -> Result<Vec<u8>, PayloadProblemKind> {
    match spec.encoding {
        PayloadEncoding::Text => Ok(text.as_bytes().to_vec()),
        PayloadEncoding::Base64 => {
            decode_base64(text).map_err(|reason| PayloadProblemKind::InvalidBase64 { reason })
        }
        PayloadEncoding::Sha256Ref => read_blob(text, spec, limits),
    }
}

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decodes base64 in either alphabet, padded or not, ignoring ASCII whitespace (MIME
/// bodies wrap lines every 76 characters).
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let url_safe = compact.iter().any(|b| matches!(b, b'-' | b'_'));
    let standard = compact.iter().any(|b| matches!(b, b'+' | b'/'));
    if url_safe && standard {
        return Err("mixes the standard (+/) and URL-safe (-_) alphabets".into());
    }
    let engine = if url_safe {
        &URL_SAFE_LENIENT
    } else {
        &STANDARD_LENIENT
    };
    engine
        .decode(&compact)
        .map_err(|e| e.to_string().to_lowercase())
}

fn read_blob(
    text: &str,
    spec: &PayloadSpec,
    limits: &ScanLimits,
) -> Result<Vec<u8>, PayloadProblemKind> {
    let invalid = |reason: String| PayloadProblemKind::InvalidBlobRef { reason };
    let sha256 = text.trim().to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("expected 64 hex digits".into()));
    }
    let Some(dir) = &spec.blob_dir else {
        return Err(invalid("no blob folder configured".into()));
    };
    let path = dir.join(&sha256);
    let unreadable = |reason: String| PayloadProblemKind::BlobUnreadable {
        sha256: sha256.clone(),
        reason,
    };
    let size = std::fs::metadata(&path)
        .map_err(|e| unreadable(e.to_string()))?
        .len();
    if size > limits.max_payload_bytes as u64 {
        return Err(PayloadProblemKind::BlobTooLarge {
            size,
            limit: limits.max_payload_bytes,
        });
    }
    let bytes = std::fs::read(&path).map_err(|e| unreadable(e.to_string()))?;
    if hex::encode(Sha256::digest(&bytes)) != sha256 {
        return Err(unreadable("content does not match its sha256".into()));
    }
    Ok(bytes)
}
