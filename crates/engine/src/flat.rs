//! Decoding a JSON event straight into the values rules read, without building a JSON tree.
//!
//! The parser (serde_json's) walks the text once, following the rule set's trie of field
//! paths as `record::EventRecord::new` does over a parsed tree: every leaf lands, in document
//! order, with the fields its path stands for. All string text goes into one buffer, so an
//! event costs a handful of allocations instead of one per key and value.
//!
//! The outcome is the same as parsing into `serde_json::Value` and walking that. Where the
//! two could differ (an object with a repeated key, which a tree keeps once) or the text is
//! not a JSON object, [`FlatEvent::parse`] declines and the caller takes the tree path, whose
//! errors are the ones reported.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use foundry_sigma::FieldId;

use crate::record::{key_hash, PathTrie};

/// One leaf of an event.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FlatKind {
    Null,
    Bool(bool),
    Number(f64),
    /// An integer that converts to `f64` exactly, with its text at a byte range of
    /// [`FlatEvent::text`] (written as the tree path formats it).
    Integer(f64, u32, u32),
    /// A byte range of [`FlatEvent::text`].
    Str(u32, u32),
    /// An object that a rule field names (its `#text` value, if any, replaces it).
    Object,
}

#[derive(Debug)]
pub(crate) struct FlatLeaf<'t> {
    pub(crate) fields: &'t [FieldId],
    pub(crate) kind: FlatKind,
}

/// An event's leaves, in document order, with the text of its strings.
#[derive(Debug, Default)]
pub struct FlatEvent<'t> {
    pub(crate) text: String,
    /// `text` with ASCII letters lower-cased (the same length, so a string's range holds its
    /// lower-cased text too, when the string is ASCII).
    pub(crate) lower: String,
    pub(crate) leaves: Vec<FlatLeaf<'t>>,
    /// Key hashes of the objects being read, innermost last (repeated-key check).
    keys: Vec<u64>,
}

impl<'t> FlatEvent<'t> {
    /// Parses a JSON object along `trie`; `None` when the text is not a JSON object or has
    /// an object with a repeated key (see the module notes).
    pub fn parse(text: &str, trie: &'t PathTrie) -> Option<FlatEvent<'t>> {
        if !text.trim_start().starts_with('{') {
            return None;
        }
        let mut out = FlatEvent {
            text: String::with_capacity(text.len()),
            lower: String::new(),
            leaves: Vec::with_capacity(64),
            keys: Vec::with_capacity(64),
        };
        let mut de = serde_json::Deserializer::from_str(text);
        Walker {
            node: Some(trie),
            out: &mut out,
        }
        .deserialize(&mut de)
        .ok()?;
        de.end().ok()?;
        out.lower = out.text.to_ascii_lowercase();
        Some(out)
    }

    /// The text of a string leaf.
    pub(crate) fn str(&self, start: u32, end: u32) -> &str {
        &self.text[start as usize..end as usize]
    }

    /// The same range of the lower-cased copy.
    pub(crate) fn lower(&self, start: u32, end: u32) -> &str {
        &self.lower[start as usize..end as usize]
    }
}

/// Visits one JSON value at a trie node; its value says whether the JSON value was a scalar.
struct Walker<'t, 'o> {
    node: Option<&'t PathTrie>,
    out: &'o mut FlatEvent<'t>,
}

impl Walker<'_, '_> {
    fn scalar(self, kind: FlatKind) -> bool {
        let fields = self.node.map_or(&[][..], PathTrie::fields);
        self.out.leaves.push(FlatLeaf { fields, kind });
        true
    }

    /// An integer keeps its decimal text when `f64` holds it exactly, as the tree path's
    /// number formatting writes it then; larger ones are formatted when asked.
    fn integer<E: de::Error>(self, v: i64) -> Result<bool, E> {
        if v.unsigned_abs() >= 1 << 53 {
            return Ok(self.scalar(FlatKind::Number(v as f64)));
        }
        let mut digits = itoa::Buffer::new();
        let (start, end) = self.out.push_text(digits.format(v))?;
        Ok(self.scalar(FlatKind::Integer(v as f64, start, end)))
    }
}

impl FlatEvent<'_> {
    /// Appends a string to the text; its byte range.
    fn push_text<E: de::Error>(&mut self, v: &str) -> Result<(u32, u32), E> {
        let start = self.text.len();
        self.text.push_str(v);
        let end = self.text.len();
        match (u32::try_from(start), u32::try_from(end)) {
            (Ok(start), Ok(end)) => Ok((start, end)),
            _ => Err(E::custom("event text over 4 GiB")),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walker<'_, '_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walker<'_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<bool, E> {
        Ok(self.scalar(FlatKind::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.integer(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        match i64::try_from(v) {
            Ok(v) => self.integer(v),
            Err(_) => Ok(self.scalar(FlatKind::Number(v as f64))),
        }
    }

    fn visit_f64<E>(self, v: f64) -> Result<bool, E> {
        Ok(self.scalar(FlatKind::Number(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        let (start, end) = self.out.push_text(v)?;
        Ok(self.scalar(FlatKind::Str(start, end)))
    }

    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(self.scalar(FlatKind::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        // Array items stand at the array's own place in the trie.
        while seq
            .next_element_seed(Walker {
                node: self.node,
                out: &mut *self.out,
            })?
            .is_some()
        {}
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let fields = self.node.map_or(&[][..], PathTrie::fields);
        // `{"#text": 4688, "#attributes": {…}}` is how EVTX renders qualified values: the
        // object stands for its `#text`.
        let placeholder = (!fields.is_empty()).then(|| {
            self.out.leaves.push(FlatLeaf {
                fields,
                kind: FlatKind::Object,
            });
            self.out.leaves.len() - 1
        });
        // This object's key hashes sit on top of the shared stack, above its parents'; a
        // 256-bit filter of them spares the scan for nearly every key that is new.
        let base = self.out.keys.len();
        let mut seen = [0u64; 4];
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let hash = key_hash(&key);
            let bit = (hash >> 56) as usize;
            if seen[bit / 64] & (1 << (bit % 64)) != 0 && self.out.keys[base..].contains(&hash) {
                return Err(de::Error::custom("repeated key"));
            }
            seen[bit / 64] |= 1 << (bit % 64);
            self.out.keys.push(hash);
            let child = self.node.and_then(|n| n.child_hashed(&key, hash));
            let first = self.out.leaves.len();
            let scalar = map.next_value_seed(Walker {
                node: child,
                out: &mut *self.out,
            })?;
            if let (Some(at), true, "#text") = (placeholder, scalar, key.as_ref()) {
                self.out.leaves[at].kind = self.out.leaves[first].kind;
            }
        }
        self.out.keys.truncate(base);
        Ok(false)
    }
}

/// An object key, borrowed from the text when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}
