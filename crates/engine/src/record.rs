//! Turning one JSON event into the field view that compiled rules read.
//!
//! The rule set compiles every field path it may need into a trie of object keys. Walking an
//! event follows the trie where it can, so each value is visited once and only the values some
//! rule can ask about are sorted into per-field slots; every other leaf still lands in the
//! list that keyword searches and the literal prefilter read.

use serde_json::Value;

use foundry_sigma::{EventValue, EventView, FieldId, ValueKind};

use crate::flat::{FlatEvent, FlatKind, FlatLeaf};

/// A trie over object keys, built once per rule set.
#[derive(Debug, Default, Clone)]
pub struct PathTrie {
    /// Children by key, hashed with [`key_hash`] (so a caller that hashed a key already, as
    /// the direct decoder does for its repeated-key check, does not hash it again).
    children: hashbrown::HashTable<(Box<str>, PathTrie)>,
    /// The child for a `*` segment: any one key.
    any: Option<Box<PathTrie>>,
    fields: Vec<FieldId>,
}

/// The hash of an object key that [`PathTrie`] lookups take (fixed, not per process: the
/// trie's keys are the rules' field names, not event data).
pub(crate) fn key_hash(key: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(key)
}

impl PathTrie {
    /// Registers `path` (dot-separated) as a place where `field` is found.
    pub fn insert(&mut self, path: &str, field: FieldId) {
        let mut node = self;
        for seg in path.split('.') {
            node = if seg == "*" {
                node.any.get_or_insert_with(Default::default)
            } else {
                let entry =
                    node.children
                        .entry(key_hash(seg), |(k, _)| **k == *seg, |(k, _)| key_hash(k));
                &mut entry
                    .or_insert_with(|| (seg.into(), PathTrie::default()))
                    .into_mut()
                    .1
            };
        }
        if !node.fields.contains(&field) {
            node.fields.push(field);
        }
    }

    /// The fields found at this node.
    pub fn fields(&self) -> &[FieldId] {
        &self.fields
    }

    fn get(&self, key: &str, hash: u64) -> Option<&PathTrie> {
        self.children
            .find(hash, |(k, _)| **k == *key)
            .map(|(_, c)| c)
    }

    pub(crate) fn child(&self, key: &str) -> Option<&PathTrie> {
        self.child_hashed(key, key_hash(key))
    }

    /// [`PathTrie::child`] for a key whose [`key_hash`] is `hash`.
    pub(crate) fn child_hashed(&self, key: &str, hash: u64) -> Option<&PathTrie> {
        if self.children.is_empty() {
            return self.any.as_deref();
        }
        if let Some(c) = self.get(key, hash) {
            return Some(c);
        }
        // Windows renders some EventData names with spaces ("Threat Name"); Sigma rules
        // name them without ("ThreatName").
        if key.contains(' ') {
            let joined = key.replace(' ', "");
            if let Some(c) = self.get(&joined, key_hash(&joined)) {
                return Some(c);
            }
        }
        // A `*` segment in a path (e.g. `Event.UserData.*`) stands for any one key.
        if let Some(c) = &self.any {
            return Some(c);
        }
        // Flat layouts write nested paths as one key ("winlog.event_data.Image").
        if key.contains('.') {
            let mut node = self;
            for seg in key.split('.') {
                node = node.get(seg, key_hash(seg))?;
            }
            return Some(node);
        }
        None
    }
}

/// An event's values: those of rule fields first, sorted by field, then every other leaf.
pub struct EventRecord<'a> {
    values: Vec<EventValue<'a>>,
    field_ids: Vec<FieldId>,
    /// For a directly decoded event, its text lower-cased (ASCII letters) in one piece (see
    /// [`EventRecord::haystacks`]).
    lower_text: Option<&'a str>,
}

impl<'a> EventRecord<'a> {
    /// Walks an event along the trie.
    pub fn new(event: &'a Value, trie: &PathTrie) -> EventRecord<'a> {
        let mut mapped: Vec<(FieldId, EventValue<'a>)> = Vec::new();
        let mut other: Vec<EventValue<'a>> = Vec::new();
        walk(event, Some(trie), &mut mapped, &mut other);
        EventRecord::assemble(mapped, other)
    }

    /// The values of an event decoded by [`FlatEvent::parse`], as [`EventRecord::new`] makes
    /// them from the parsed tree.
    pub fn from_flat(event: &'a FlatEvent<'_>) -> EventRecord<'a> {
        let all_ascii = event.text.is_ascii();
        let value = |leaf: &FlatLeaf<'_>| match leaf.kind {
            FlatKind::Null => EventValue::new(ValueKind::Null),
            FlatKind::Bool(b) => EventValue::new(ValueKind::Bool(b)),
            FlatKind::Number(n) => EventValue::new(ValueKind::Number(n)),
            FlatKind::Integer(n, start, end) => EventValue::from_number(n, event.str(start, end)),
            FlatKind::Str(start, end) => {
                let text = event.str(start, end);
                if all_ascii || text.is_ascii() {
                    EventValue::with_lower(text, event.lower(start, end))
                } else {
                    EventValue::new(ValueKind::Str(text))
                }
            }
            FlatKind::Object => EventValue::new(ValueKind::Object),
        };
        // (field, leaf index): sorted, the values of each field keep document order.
        let mut order: Vec<(FieldId, u32)> = Vec::with_capacity(event.leaves.len());
        for (i, leaf) in event.leaves.iter().enumerate() {
            order.extend(leaf.fields.iter().map(|f| (*f, i as u32)));
        }
        order.sort_unstable();
        let mut values = Vec::with_capacity(order.len() + event.leaves.len());
        let mut field_ids = Vec::with_capacity(order.len());
        for &(f, i) in &order {
            field_ids.push(f);
            values.push(value(&event.leaves[i as usize]));
        }
        values.extend(
            event
                .leaves
                .iter()
                .filter(|l| l.fields.is_empty())
                .map(value),
        );
        EventRecord {
            values,
            field_ids,
            lower_text: Some(&event.lower),
        }
    }

    fn assemble(
        mut mapped: Vec<(FieldId, EventValue<'a>)>,
        other: Vec<EventValue<'a>>,
    ) -> EventRecord<'a> {
        mapped.sort_by_key(|(f, _)| *f);
        let mut field_ids = Vec::with_capacity(mapped.len());
        let mut values = Vec::with_capacity(mapped.len() + other.len());
        for (f, v) in mapped {
            field_ids.push(f);
            values.push(v);
        }
        values.extend(other);
        EventRecord {
            values,
            field_ids,
            lower_text: None,
        }
    }

    /// The fields present, each with its values, in ascending field order.
    pub fn fields(&self) -> impl Iterator<Item = (FieldId, &[EventValue<'a>])> + '_ {
        let mut start = 0;
        std::iter::from_fn(move || {
            let id = *self.field_ids.get(start)?;
            // Runs are short (most fields have one value): a linear scan beats a search.
            let len = self.field_ids[start..]
                .iter()
                .position(|f| *f != id)
                .unwrap_or(self.field_ids.len() - start);
            let run = &self.values[start..start + len];
            start += len;
            Some((id, run))
        })
    }

    /// Every value's lower-cased text, for the keyword literals of the prefilter, in at most
    /// two pieces: each value's text lies whole in one of them. Text that `out` holds is
    /// joined by NUL; the text of a directly decoded event is used in place, its strings run
    /// together (a literal found across two of them only costs a rule evaluation).
    pub fn haystacks<'s>(&'s self, out: &'s mut Vec<u8>) -> [&'s [u8]; 2] {
        out.clear();
        match self.lower_text {
            Some(lower) => {
                // The values whose text is not in the lower-cased copy: `from_flat` gives
                // exactly the ASCII strings and the integers their text from it.
                for v in &self.values {
                    if let (false, Some(t)) = (v.has_given_text(), v.lower()) {
                        out.extend_from_slice(t.as_bytes());
                        out.push(0);
                    }
                }
                [lower.as_bytes(), &out[..]]
            }
            None => {
                for v in &self.values {
                    // ASCII text is lower-cased as it is copied, without keeping a
                    // lower-cased copy per value.
                    match v.text() {
                        Some(t) if t.is_ascii() => {
                            out.extend(t.as_bytes().iter().map(u8::to_ascii_lowercase));
                        }
                        _ => match v.lower() {
                            Some(t) => out.extend_from_slice(t.as_bytes()),
                            None => continue,
                        },
                    }
                    out.push(0);
                }
                [&out[..], &[]]
            }
        }
    }
}

fn leaf(v: &Value) -> Option<EventValue<'_>> {
    Some(match v {
        Value::Null => EventValue::new(ValueKind::Null),
        Value::Bool(b) => EventValue::new(ValueKind::Bool(*b)),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            EventValue::new(ValueKind::Number(f))
        }
        Value::String(s) => EventValue::new(ValueKind::Str(s)),
        Value::Array(_) | Value::Object(_) => return None,
    })
}

fn walk<'a>(
    v: &'a Value,
    node: Option<&PathTrie>,
    mapped: &mut Vec<(FieldId, EventValue<'a>)>,
    other: &mut Vec<EventValue<'a>>,
) {
    let fields = node.map_or(&[][..], |n| n.fields.as_slice());
    match v {
        Value::Object(map) => {
            if !fields.is_empty() {
                // `{"#text": 4688, "#attributes": {…}}` is how EVTX renders qualified values.
                let inner = map
                    .get("#text")
                    .and_then(leaf)
                    .unwrap_or(EventValue::new(ValueKind::Object));
                for f in fields {
                    mapped.push((*f, inner.clone()));
                }
            }
            for (k, child) in map {
                walk(child, node.and_then(|n| n.child(k)), mapped, other);
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, node, mapped, other);
            }
        }
        _ => {
            let Some(value) = leaf(v) else { return };
            if fields.is_empty() {
                other.push(value);
            } else {
                for f in &fields[1..] {
                    mapped.push((*f, value.clone()));
                }
                mapped.push((fields[0], value));
            }
        }
    }
}

impl EventView for EventRecord<'_> {
    fn field(&self, id: FieldId) -> Option<&[EventValue<'_>]> {
        let start = self.field_ids.partition_point(|f| *f < id);
        let end = start + self.field_ids[start..].partition_point(|f| *f == id);
        (end > start).then(|| &self.values[start..end])
    }

    fn all_values(&self) -> &[EventValue<'_>] {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flat::FlatEvent;

    /// Every value as (field or none, kind, text and lower-cased text), the whole of what
    /// rules can read.
    fn seen(r: &EventRecord<'_>) -> Vec<(Option<FieldId>, String)> {
        r.values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    r.field_ids.get(i).copied(),
                    format!("{:?} {:?} {:?}", v.kind, v.text(), v.lower()),
                )
            })
            .collect()
    }

    fn trie() -> PathTrie {
        let mut t = PathTrie::default();
        for (path, field) in [
            ("Image", 0),
            ("Event.EventData.Image", 0),
            ("winlog.event_data.Image", 0),
            ("EventID", 1),
            ("Event.System.EventID", 1),
            ("winlog.event_id", 1),
            ("Event.UserData.*", 2),
            ("ThreatName", 3),
            ("CommandLine", 4),
            ("process.command_line", 4),
            ("process.command_line", 5),
        ] {
            t.insert(path, field);
        }
        t
    }

    fn same_as_tree(text: &str, trie: &PathTrie) {
        let tree: Value = serde_json::from_str(text).unwrap();
        let flat = FlatEvent::parse(text, trie).expect("a JSON object");
        assert_eq!(
            seen(&EventRecord::from_flat(&flat)),
            seen(&EventRecord::new(&tree, trie)),
            "{text}"
        );
    }

    #[test]
    fn direct_decoding_gives_the_values_of_the_parsed_tree() {
        let t = trie();
        for text in [
            r##"{"Image":"C:\\Windows\\cmd.exe","EventID":4688,"Other":[1,2.5,true,null]}"##,
            r##"{"Event":{"System":{"EventID":{"#text":4688,"#attributes":{"Q":"x"}}},"EventData":{"Image":"a"}}}"##,
            r##"{"Event":{"System":{"EventID":{"#attributes":{"Q":"x"}}}}}"##,
            r##"{"Event":{"System":{"EventID":{"#text":[1]}}}}"##,
            r##"{"Event":{"UserData":{"Any":{"x":"y"},"Other":"z"}}}"##,
            r##"{"Threat Name":"EICAR","winlog.event_data.Image":"flat","winlog":{"event_id":"1"}}"##,
            r##"{"process":{"command_line":"cmd \u0041 \"q\""},"CommandLine":["a","b"],"n":-3,"u":18446744073709551615}"##,
            r##"{"Image":{"nested":{"deeper":"v"}},"e":{},"a":[],"s":"\u00e9\u4e2d"}"##,
        ] {
            same_as_tree(text, &t);
        }
    }

    #[test]
    fn direct_decoding_declines_what_a_tree_would_read_differently() {
        let t = trie();
        // A tree keeps a repeated key once; not JSON objects are the tree path's errors.
        for text in [
            r##"{"Image":"a","Image":"b"}"##,
            r##"{"x":{"k":1,"k":2}}"##,
            r##"[{"Image":"a"}]"##,
            r##""text""##,
            r##"{"Image":"a"} trailing"##,
            r##"{"Image":"##,
        ] {
            assert!(FlatEvent::parse(text, &t).is_none(), "{text}");
        }
        // The same key in different objects is no repetition.
        same_as_tree(r##"{"Image":"a","x":{"Image":"b"}}"##, &t);
    }

    #[test]
    fn direct_decoding_matches_the_tree_on_every_corpus_record() {
        let t = trie();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/corpus/events/otrf");
        let files = crate::input::event_files(&root).expect("the OTRF corpus");
        let mut records = 0;
        for file in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "jsonl"))
        {
            let text = std::fs::read_to_string(file).unwrap();
            for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
                if serde_json::from_str::<Value>(line).is_ok() {
                    same_as_tree(line, &t);
                    records += 1;
                }
            }
        }
        assert!(records > 40_000, "{records} records");
    }
}
