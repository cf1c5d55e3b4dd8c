//! Scanning one payload with a [`YaraRuleSet`] under [`ScanLimits`], producing [`YaraHit`]s.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Payload, ScanError, YaraRuleSet};

/// Bounds on the work one event's payloads may cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanLimits {
    /// Wall-clock budget of one scan. YARA-X checks it on a one-second heartbeat, so the
    /// effective budget is rounded up to whole seconds and a scan may overrun it by up to
    /// about a second. Default 5 s.
    pub timeout: Duration,
    /// Largest payload scanned, in bytes; larger ones are refused with
    /// [`ScanError::TooLarge`] before any scanning. Default 32 MiB.
    pub max_payload_bytes: usize,
    /// Most payloads taken from one event; further ones are dropped and reported as a
    /// [`crate::PayloadProblemKind::TooMany`]. Default 16.
    pub max_payloads_per_event: usize,
    /// Most matched strings reported in one hit ([`YaraHit::strings`]); the hit says when
    /// more were left out. Matching itself is not affected. Default 32.
    pub max_matched_strings: usize,
}

impl Default for ScanLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_payload_bytes: 32 * 1024 * 1024,
            max_payloads_per_event: 16,
            max_matched_strings: 32,
        }
    }
}

/// One rule that matched one payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct YaraHit {
    /// The rule's identifier.
    pub identifier: String,
    /// The rule's namespace (by default its file stem).
    pub namespace: String,
    /// The rule's tags.
    pub tags: Vec<String>,
    /// All meta entries of the rule, in order. A key declared several times (signature-base
    /// lists `hash1`, `hash2`... but some rules repeat `hash`) becomes an array of its values;
    /// byte-string values are rendered lossily as UTF-8.
    pub meta: Map<String, Value>,
    /// Where the rule's patterns matched, at most [`ScanLimits::max_matched_strings`].
    pub strings: Vec<MatchedString>,
    /// True when more matches existed than [`YaraHit::strings`] holds.
    pub strings_truncated: bool,
    /// Concrete event field the payload came from.
    pub payload_field: String,
    /// Lowercase hex SHA-256 of the payload.
    pub payload_sha256: String,
    /// Payload size in bytes.
    pub payload_size: usize,
}

impl YaraHit {
    /// The rule's handling label from meta `tlp`, normalized to TLP 2.0 (`TLP:CLEAR`,
    /// `TLP:GREEN`, `TLP:AMBER`, `TLP:AMBER+STRICT`, `TLP:RED`); `white`/`TLP:WHITE` (TLP
    /// 1.0) reads as `TLP:CLEAR`. Case and the `TLP:` prefix are optional. `None` when the
    /// meta is absent or not a TLP label; the caller applies its default.
    pub fn tlp(&self) -> Option<String> {
        let raw = self
            .meta_scalar("tlp")?
            .as_str()?
            .trim()
            .to_ascii_uppercase();
        let label = raw.strip_prefix("TLP:").unwrap_or(&raw).trim();
        let label = match label {
            "WHITE" | "CLEAR" => "CLEAR",
            "GREEN" => "GREEN",
            "AMBER" => "AMBER",
            "AMBER+STRICT" => "AMBER+STRICT",
            "RED" => "RED",
            _ => return None,
        };
        Some(format!("TLP:{label}"))
    }

    /// The rule's confidence, 0 to 100, from meta `confidence`, else `score` (the name
    /// signature-base uses). Integers and numeric strings are read; values are clamped to
    /// 0..=100. `None` when neither is present or numeric.
    pub fn confidence(&self) -> Option<u8> {
        ["confidence", "score"].iter().find_map(|key| {
            let value = self.meta_scalar(key)?;
            let number = match value {
                Value::Number(n) => n.as_f64()?,
                Value::String(s) => s.trim().parse::<f64>().ok()?,
                _ => return None,
            };
            number
                .is_finite()
                .then(|| number.clamp(0.0, 100.0).round() as u8)
        })
    }

    /// First value of a meta key (repeated keys hold an array).
    fn meta_scalar(&self, key: &str) -> Option<&Value> {
        match self.meta.get(key)? {
            Value::Array(values) => values.first(),
            value => Some(value),
        }
    }
}

/// One match of one pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchedString {
    /// The pattern's identifier, `$` included (`$eicar`).
    pub identifier: String,
    /// Byte offset of the match in the payload.
    pub offset: usize,
    /// Length of the match in bytes.
    pub length: usize,
}

self_cell::self_cell!(
    /// A scanner together with the rules it borrows, so that it can outlive a call.
    struct CachedScanner {
        owner: Arc<yara_x::Rules>,
        #[not_covariant]
        dependent: Scanner,
    }
);

type Scanner<'r> = yara_x::Scanner<'r>;

/// Scanners kept per thread. More than one so that a thread serving several rule sets (one
/// per tenant, or the old and new set during a reload) does not rebuild a scanner at every
/// switch; few, because each holds its rule set alive.
const SCANNERS_PER_THREAD: usize = 4;

thread_local! {
    /// This thread's scanners, most recently used first.
    static SCANNERS: RefCell<Vec<CachedScanner>> = const { RefCell::new(Vec::new()) };
}

impl YaraRuleSet {
    /// Scans one payload and returns the hits of every non-private rule that matched.
    ///
    /// A payload over `limits.max_payload_bytes` is not scanned ([`ScanError::TooLarge`]); a
    /// scan that runs past `limits.timeout` is aborted ([`ScanError::Timeout`]) and reports no
    /// hit, even from rules that had already matched, so that a timeout never looks like a
    /// partial clean result.
    ///
    /// Scanner reuse: building a `yara_x::Scanner` instantiates the rules' WebAssembly module,
    /// and a scanner is neither `Send` nor `Sync`, so each thread keeps its own in a
    /// thread-local cache of the last few rule sets it scanned with (keyed by the identity of
    /// the compiled rules). After a hot reload the first scan on each thread builds a new
    /// scanner. The cache holds an `Arc` of each rule set, so a replaced set is freed once it
    /// has fallen out of the cache of every thread that used it, or those threads exited.
    pub fn scan(&self, payload: &Payload, limits: &ScanLimits) -> Result<Vec<YaraHit>, ScanError> {
        let size = payload.bytes.len();
        if size > limits.max_payload_bytes {
            return Err(ScanError::TooLarge {
                size,
                limit: limits.max_payload_bytes,
            });
        }
        SCANNERS.with(|cell| {
            // Scanning never re-enters this function on the same thread; if it ever did, a
            // temporary scanner keeps it correct.
            let Ok(mut cache) = cell.try_borrow_mut() else {
                return scan_with(&mut yara_x::Scanner::new(&self.rules), payload, limits);
            };
            match cache
                .iter()
                .position(|c| Arc::ptr_eq(c.borrow_owner(), &self.rules))
            {
                Some(0) => {}
                Some(i) => {
                    let hit = cache.remove(i);
                    cache.insert(0, hit);
                }
                None => {
                    cache.truncate(SCANNERS_PER_THREAD - 1);
                    let rules = Arc::clone(&self.rules);
                    cache.insert(0, CachedScanner::new(rules, |r| yara_x::Scanner::new(r)));
                }
            }
            cache[0].with_dependent_mut(|_, scanner| scan_with(scanner, payload, limits))
        })
    }
}

fn scan_with(
    scanner: &mut yara_x::Scanner<'_>,
    payload: &Payload,
    limits: &ScanLimits,
) -> Result<Vec<YaraHit>, ScanError> {
    scanner.set_timeout(limits.timeout);
    let results = scanner.scan(&payload.bytes).map_err(|err| match err {
        yara_x::ScanError::Timeout => ScanError::Timeout,
        other => ScanError::Other(other.to_string().to_lowercase()),
    })?;
    let hits = results
        .matching_rules()
        .map(|rule| to_hit(&rule, payload, limits))
        .collect();
    Ok(hits)
}

fn to_hit(rule: &yara_x::Rule<'_, '_>, payload: &Payload, limits: &ScanLimits) -> YaraHit {
    let mut strings = Vec::new();
    let mut truncated = false;
    'patterns: for pattern in rule.patterns() {
        for m in pattern.matches() {
            if strings.len() >= limits.max_matched_strings {
                truncated = true;
                break 'patterns;
            }
            let range = m.range();
            strings.push(MatchedString {
                identifier: pattern.identifier().to_string(),
                offset: range.start,
                length: range.len(),
            });
        }
    }
    YaraHit {
        identifier: rule.identifier().to_string(),
        namespace: rule.namespace().to_string(),
        tags: rule.tags().map(|t| t.identifier().to_string()).collect(),
        meta: meta_map(rule.metadata()),
        strings,
        strings_truncated: truncated,
        payload_field: payload.field.clone(),
        payload_sha256: payload.sha256.clone(),
        payload_size: payload.bytes.len(),
    }
}

fn meta_map(metadata: yara_x::Metadata<'_, '_>) -> Map<String, Value> {
    let mut map = Map::new();
    for (key, value) in metadata {
        let value = match value {
            yara_x::MetaValue::Integer(i) => Value::from(i),
            yara_x::MetaValue::Float(f) => Value::from(f),
            yara_x::MetaValue::Bool(b) => Value::from(b),
            yara_x::MetaValue::String(s) => Value::from(s),
            yara_x::MetaValue::Bytes(b) => Value::from(String::from_utf8_lossy(b).into_owned()),
        };
        match map.get_mut(key) {
            None => {
                map.insert(key.to_string(), value);
            }
            // Meta values are scalars in YARA, so an array here is one we built.
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
    map
}
