//! Turning one JSON event into the field view that compiled rules read.
//!
//! The rule set compiles every field path it may need into a trie of object keys. Walking an
//! event follows the trie where it can, so each value is visited once and only the values some
//! rule can ask about are sorted into per-field slots; every other leaf still lands in the
//! list that keyword searches and the literal prefilter read.

use foldhash::HashMap;
use serde_json::Value;

use foundry_sigma::{EventValue, EventView, FieldId, ValueKind};

/// A trie over object keys, built once per rule set.
#[derive(Debug, Default, Clone)]
pub struct PathTrie {
    children: HashMap<String, PathTrie>,
    fields: Vec<FieldId>,
}

impl PathTrie {
    /// Registers `path` (dot-separated) as a place where `field` is found.
    pub fn insert(&mut self, path: &str, field: FieldId) {
        let mut node = self;
        for seg in path.split('.') {
            node = node.children.entry(seg.to_string()).or_default();
        }
        if !node.fields.contains(&field) {
            node.fields.push(field);
        }
    }

    fn child(&self, key: &str) -> Option<&PathTrie> {
        if let Some(c) = self.children.get(key) {
            return Some(c);
        }
        // Windows renders some EventData names with spaces ("Threat Name"); Sigma rules
        // name them without ("ThreatName").
        if key.contains(' ') {
            if let Some(c) = self.children.get(&key.replace(' ', "")) {
                return Some(c);
            }
        }
        // A `*` segment in a path (e.g. `Event.UserData.*`) stands for any one key.
        if let Some(c) = self.children.get("*") {
            return Some(c);
        }
        // Flat layouts write nested paths as one key ("winlog.event_data.Image").
        if key.contains('.') {
            let mut node = self;
            for seg in key.split('.') {
                node = node.children.get(seg)?;
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
}

impl<'a> EventRecord<'a> {
    /// Walks an event along the trie.
    pub fn new(event: &'a Value, trie: &PathTrie) -> EventRecord<'a> {
        let mut mapped: Vec<(FieldId, EventValue<'a>)> = Vec::new();
        let mut other: Vec<EventValue<'a>> = Vec::new();
        walk(event, Some(trie), &mut mapped, &mut other);
        mapped.sort_by_key(|(f, _)| *f);
        let mut field_ids = Vec::with_capacity(mapped.len());
        let mut values = Vec::with_capacity(mapped.len() + other.len());
        for (f, v) in mapped {
            field_ids.push(f);
            values.push(v);
        }
        values.extend(other);
        EventRecord { values, field_ids }
    }

    /// The fields present, each with its values, in ascending field order.
    pub fn fields(&self) -> impl Iterator<Item = (FieldId, &[EventValue<'a>])> + '_ {
        let mut start = 0;
        std::iter::from_fn(move || {
            let id = *self.field_ids.get(start)?;
            let len = self.field_ids[start..].partition_point(|f| *f == id);
            let run = &self.values[start..start + len];
            start += len;
            Some((id, run))
        })
    }

    /// Every value's lower-cased text joined by NUL, for the literal prefilter.
    pub fn haystack(&self, out: &mut String) {
        out.clear();
        for v in &self.values {
            if let Some(t) = v.lower() {
                out.push_str(t);
                out.push('\0');
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
