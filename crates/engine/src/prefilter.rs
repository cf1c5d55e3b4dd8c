//! The shared literal prefilter: which rules could match an event at all.
//!
//! Every compiled rule offers a set of lower-cased literals at least one of which occurs in
//! any event it matches, each tied to the field whose values must hold it (see
//! `CompiledRule::required_literals`). Aho-Corasick automata over all rules' literals run
//! over the event's lower-cased values once; a rule is evaluated only if one of its literals
//! was seen where it must be, or if it offered no literal set. So the cost per event follows
//! the size of the event and the literals present, not the number of rules.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Input, MatchKind};
use foundry_sigma::{EventValue, Literal};

use crate::record::EventRecord;

/// A set of rule indices as a bit set.
#[derive(Debug, Clone, Default)]
pub struct RuleBits(Vec<u64>);

impl RuleBits {
    /// An empty set for `n` rules.
    pub fn new(n: usize) -> Self {
        RuleBits(vec![0; n.div_ceil(64)])
    }

    /// Adds a rule.
    pub fn insert(&mut self, i: u32) {
        self.0[(i / 64) as usize] |= 1 << (i % 64);
    }

    /// Whether a rule is in the set.
    pub fn contains(&self, i: u32) -> bool {
        self.0[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Empties the set.
    pub fn clear(&mut self) {
        self.0.iter_mut().for_each(|w| *w = 0);
    }

    /// Makes this an empty set for `n` rules, keeping the allocation.
    pub fn reset(&mut self, n: usize) {
        self.0.clear();
        self.0.resize(n.div_ceil(64), 0);
    }

    /// The set of those of `n` rules for which `member` holds.
    pub fn from_fn(n: usize, mut member: impl FnMut(usize) -> bool) -> Self {
        let mut bits = RuleBits::new(n);
        for i in 0..n {
            if member(i) {
                bits.insert(i as u32);
            }
        }
        bits
    }

    /// Keeps only the rules also in `other` (a set for the same rules).
    pub fn intersect_with(&mut self, other: &RuleBits) {
        for (w, o) in self.0.iter_mut().zip(&other.0) {
            *w &= o;
        }
    }

    /// Adds every rule of `other` (a set for the same rules).
    pub fn union_with(&mut self, other: &RuleBits) {
        for (w, o) in self.0.iter_mut().zip(&other.0) {
            *w |= o;
        }
    }

    /// The rules in the set, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(k, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros();
                    rest &= rest - 1;
                    k as u32 * 64 + bit
                })
            })
        })
    }
}

/// The literals of one field (or of keyword searches) in one automaton, with the rules that
/// offered each.
#[derive(Debug)]
struct Group {
    automaton: AhoCorasick,
    owners: Vec<Vec<u32>>,
    /// Per literal, how far past the start of its match the next literal can start.
    skip: Vec<u32>,
}

/// The literals of one field: those a value must contain, in an automaton, and those a
/// value must equal, in a hash map.
#[derive(Debug, Default)]
struct FieldGroup {
    contained: Option<Group>,
    equal: foldhash::HashMap<Box<str>, Vec<u32>>,
    /// Which byte lengths below 256 the `equal` literals have (bit per length), and whether
    /// any is longer: a value of another length is not hashed at all.
    equal_lengths: [u64; 4],
    equal_long: bool,
}

impl FieldGroup {
    fn new(contained: Option<Group>, equal: foldhash::HashMap<Box<str>, Vec<u32>>) -> Self {
        let mut equal_lengths = [0u64; 4];
        let mut equal_long = false;
        for text in equal.keys() {
            match text.len() {
                n @ 0..256 => equal_lengths[n / 64] |= 1 << (n % 64),
                _ => equal_long = true,
            }
        }
        FieldGroup {
            contained,
            equal,
            equal_lengths,
            equal_long,
        }
    }

    /// Marks the owners of every literal one lower-cased value holds or equals.
    fn mark(&self, value: &str, out: &mut RuleBits, found: &mut Vec<u32>) {
        if let Some(group) = &self.contained {
            group.mark(value.as_bytes(), out, found);
        }
        let n = value.len();
        let may_equal = match n {
            0..256 => self.equal_lengths[n / 64] & (1 << (n % 64)) != 0,
            _ => self.equal_long,
        };
        if may_equal {
            if let Some(owners) = self.equal.get(value) {
                for &r in owners {
                    out.insert(r);
                }
            }
        }
    }
}

impl Group {
    /// Marks in `out` the owners of every literal occurring in `haystack`. `found` is scratch.
    ///
    /// The automaton reports, from a position on, the leftmost match and of those the longest.
    /// Every other literal starting there is a prefix of the longest one, and a literal's
    /// owners include those of its prefixes. The search goes on from the first position inside
    /// the match where another literal could start (see `skip_within`), so every position
    /// where a literal starts is visited and nothing present goes unmarked. This beats an
    /// overlapping search, which cannot skip ahead with the automaton's prefilter.
    fn mark(&self, haystack: &[u8], out: &mut RuleBits, found: &mut Vec<u32>) {
        found.clear();
        let mut at = 0;
        while at < haystack.len() {
            let Some(m) = self.automaton.find(Input::new(haystack).range(at..)) else {
                break;
            };
            let p = m.pattern().as_u32();
            found.push(p);
            at = m.start() + self.skip[p as usize] as usize;
        }
        // A literal such as `\windows\` occurs many times per value; its owners are marked
        // once.
        found.sort_unstable();
        found.dedup();
        for &p in found.iter() {
            for &r in &self.owners[p as usize] {
                out.insert(r);
            }
        }
    }
}

/// Buffers a prefilter pass reuses, kept from event to event.
#[derive(Debug, Default)]
pub struct Scratch {
    found: Vec<u32>,
    buffer: Vec<u8>,
}

/// The compiled prefilter.
///
/// A literal that a field's condition requires can only occur in that field's values, so
/// each field gets an automaton of its own literals, run over its values only: a rendered
/// `Message` of 500 bytes is searched for the few literals rules ask of `Message`, not for
/// the thousands asked of `CommandLine`. Literals of keyword searches are looked for in
/// every value.
#[derive(Debug)]
pub struct Prefilter {
    /// Literals of keyword searches, found in any value.
    anywhere: Option<Group>,
    /// Indexed by field id: the literals that must occur in that field's values.
    by_field: Vec<Option<FieldGroup>>,
    /// Rules that offered no literal set and are always evaluated.
    always: RuleBits,
    rules: usize,
    literals: usize,
}

/// Literals being gathered for one group: text -> index, and each index's owners.
#[derive(Default)]
struct Gathering {
    index: std::collections::HashMap<String, usize>,
    literals: Vec<String>,
    owners: Vec<Vec<u32>>,
    /// Literals a whole value must equal, with their owners.
    equal: foldhash::HashMap<Box<str>, Vec<u32>>,
}

impl Gathering {
    fn add_equal(&mut self, text: &str, rule: u32) {
        let owners = self.equal.entry(text.into()).or_default();
        if owners.last() != Some(&rule) {
            owners.push(rule);
        }
    }

    fn add(&mut self, text: &str, rule: u32) {
        let id = match self.index.get(text) {
            Some(id) => *id,
            None => {
                self.literals.push(text.to_string());
                self.owners.push(Vec::new());
                self.index.insert(text.to_string(), self.owners.len() - 1);
                self.owners.len() - 1
            }
        };
        if self.owners[id].last() != Some(&rule) {
            self.owners[id].push(rule);
        }
    }

    /// The group's automaton; past the automaton's size limits its rules are always
    /// evaluated instead (the prefilter is switched off for them, not the rules).
    fn build(mut self, always: &mut RuleBits) -> Option<Group> {
        // A literal's owners take in those of every literal that is a prefix of it (see
        // `Group::mark`).
        let closed: Vec<Vec<u32>> = self
            .literals
            .iter()
            .enumerate()
            .map(|(id, lit)| {
                let mut owners = self.owners[id].clone();
                for k in (1..lit.len()).filter(|k| lit.is_char_boundary(*k)) {
                    if let Some(prefix) = self.index.get(&lit[..k]) {
                        owners.extend_from_slice(&self.owners[*prefix]);
                    }
                }
                owners.sort_unstable();
                owners.dedup();
                owners
            })
            .collect();
        self.owners = closed;
        let skip = skip_within(&self.literals);
        match AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&self.literals)
        {
            Ok(automaton) => Some(Group {
                automaton,
                owners: self.owners,
                skip,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "literal prefilter disabled for some rules");
                for r in self.owners.iter().flatten() {
                    always.insert(*r);
                }
                None
            }
        }
    }
}

/// For each literal `l`, the smallest `k >= 1` at which another occurrence of some literal
/// could start inside a match of `l`, or `l.len()`. A literal starting `k` bytes into the
/// match begins with `l[k..]`'s first two bytes (or its last byte, at `k = len - 1`), so a
/// position where no literal's first bytes fit is skipped. Literals are at least one byte.
fn skip_within(literals: &[String]) -> Vec<u32> {
    let firsts: std::collections::HashSet<u8> =
        literals.iter().filter_map(|l| l.bytes().next()).collect();
    let pairs: std::collections::HashSet<[u8; 2]> = literals
        .iter()
        .filter_map(|l| l.as_bytes().get(..2).map(|p| [p[0], p[1]]))
        .collect();
    literals
        .iter()
        .map(|l| {
            let b = l.as_bytes();
            (1..b.len())
                .find(|&k| match b.get(k..k + 2) {
                    Some(p) => pairs.contains(&[p[0], p[1]]),
                    None => firsts.contains(&b[k]),
                })
                .unwrap_or(b.len()) as u32
        })
        .collect()
}

impl Prefilter {
    /// Builds the prefilter for the rules `members` (indices into `sets`, each rule's literal
    /// set; `None`: always evaluate).
    pub fn new(sets: &[Option<Vec<Literal>>], members: impl IntoIterator<Item = u32>) -> Prefilter {
        let mut anywhere = Gathering::default();
        let mut by_field: Vec<Gathering> = Vec::new();
        let mut always = RuleBits::new(sets.len());
        let mut rules = 0;
        for rule in members {
            rules += 1;
            match &sets[rule as usize] {
                Some(lits) if !lits.is_empty() => {
                    for lit in lits {
                        let group = match lit.field {
                            None => &mut anywhere,
                            Some(f) => {
                                let f = f as usize;
                                if by_field.len() <= f {
                                    by_field.resize_with(f + 1, Gathering::default);
                                }
                                &mut by_field[f]
                            }
                        };
                        if lit.exact && lit.field.is_some() {
                            group.add_equal(&lit.text, rule);
                        } else {
                            group.add(&lit.text, rule);
                        }
                    }
                }
                _ => always.insert(rule),
            }
        }
        let literals = anywhere.literals.len()
            + by_field
                .iter()
                .map(|g| g.literals.len() + g.equal.len())
                .sum::<usize>();
        let nonempty = |g: Gathering, always: &mut RuleBits| {
            if g.literals.is_empty() {
                None
            } else {
                g.build(always)
            }
        };
        let anywhere = nonempty(anywhere, &mut always);
        let by_field = by_field
            .into_iter()
            .map(|mut g| {
                let equal = std::mem::take(&mut g.equal);
                let contained = nonempty(g, &mut always);
                (contained.is_some() || !equal.is_empty())
                    .then(|| FieldGroup::new(contained, equal))
            })
            .collect();
        Prefilter {
            anywhere,
            by_field,
            always,
            rules,
            literals,
        }
    }

    /// Adds to `out` every one of its rules that could match the event.
    pub fn candidates(&self, record: &EventRecord<'_>, out: &mut RuleBits, scratch: &mut Scratch) {
        out.union_with(&self.always);
        let found = &mut scratch.found;
        if let Some(group) = &self.anywhere {
            for haystack in record.haystacks(&mut scratch.buffer) {
                group.mark(haystack, out, found);
            }
        }
        for (field, values) in record.fields() {
            let Some(Some(group)) = self.by_field.get(field as usize) else {
                continue;
            };
            for text in values.iter().filter_map(EventValue::lower) {
                group.mark(text, out, found);
            }
        }
    }

    /// How many of its rules are always evaluated, how many literals are indexed, and in how
    /// many automata (one per field, one for keyword searches).
    pub fn stats(&self) -> PrefilterStats {
        PrefilterStats {
            rules: self.rules,
            always: self.always.iter().count(),
            literals: self.literals,
            automata: self
                .by_field
                .iter()
                .flatten()
                .filter(|g| g.contained.is_some())
                .count()
                + usize::from(self.anywhere.is_some()),
        }
    }
}

/// Sizes of a prefilter, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefilterStats {
    /// Rules it covers.
    pub rules: usize,
    /// Of those, rules that offered no literal set and are always evaluated.
    pub always: usize,
    /// Distinct literals, counted per field.
    pub literals: usize,
    /// Automata: one per field with literals, one for keyword searches.
    pub automata: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::PathTrie;
    use serde_json::json;

    #[test]
    fn rule_bits_set_operations() {
        // 130 rules span three words; members picked by hand across the word boundaries.
        let a = RuleBits::from_fn(130, |i| [0, 63, 64, 129].contains(&i));
        let b = RuleBits::from_fn(130, |i| [1, 63, 100, 129].contains(&i));
        assert_eq!(a.iter().collect::<Vec<_>>(), [0, 63, 64, 129]);
        let mut both = a.clone();
        both.intersect_with(&b);
        assert_eq!(both.iter().collect::<Vec<_>>(), [63, 129]);
        let mut either = a.clone();
        either.union_with(&b);
        assert_eq!(either.iter().collect::<Vec<_>>(), [0, 1, 63, 64, 100, 129]);
        assert_eq!(RuleBits::new(130).iter().count(), 0);
    }

    fn lit(field: Option<u32>, text: &str) -> Literal {
        Literal {
            field,
            text: text.into(),
            exact: false,
        }
    }

    fn equal(field: u32, text: &str) -> Literal {
        Literal {
            field: Some(field),
            text: text.into(),
            exact: true,
        }
    }

    /// The candidates, the same whether the event is read from its tree or decoded directly.
    fn candidates(p: &Prefilter, event: serde_json::Value) -> Vec<u32> {
        let mut trie = PathTrie::default();
        trie.insert("CommandLine", 0);
        trie.insert("Image", 1);
        let run = |record: &EventRecord<'_>| {
            let mut out = RuleBits::new(3);
            p.candidates(record, &mut out, &mut Scratch::default());
            out.iter().collect::<Vec<u32>>()
        };
        let from_tree = run(&EventRecord::new(&event, &trie));
        let text = event.to_string();
        let flat = crate::flat::FlatEvent::parse(&text, &trie).expect("an object");
        assert_eq!(run(&EventRecord::from_flat(&flat)), from_tree, "{text}");
        from_tree
    }

    #[test]
    fn exact_literals_need_a_whole_value_equal_to_them() {
        // Fields: 0 CommandLine, 1 Image. Rule 0: CommandLine equal to 16; rule 1: Image
        // equal to c:\windows\cmd.exe or containing "powershell"; rule 2 offers no set.
        let sets = [
            Some(vec![equal(0, "16")]),
            Some(vec![
                equal(1, "c:\\windows\\cmd.exe"),
                lit(Some(1), "powershell"),
            ]),
            None,
        ];
        let p = Prefilter::new(&sets, 0..3);
        assert_eq!(candidates(&p, json!({"CommandLine": 16})), [0, 2]);
        assert_eq!(candidates(&p, json!({"CommandLine": "16"})), [0, 2]);
        assert_eq!(candidates(&p, json!({"CommandLine": [1, 16.0]})), [0, 2]);
        assert_eq!(candidates(&p, json!({"CommandLine": 160})), [2]);
        assert_eq!(candidates(&p, json!({"CommandLine": "x 16"})), [2]);
        assert_eq!(candidates(&p, json!({"Other": 16})), [2]);
        assert_eq!(
            candidates(&p, json!({"Image": "C:\\Windows\\CMD.EXE"})),
            [1, 2]
        );
        assert_eq!(
            candidates(&p, json!({"Image": "C:\\Windows\\cmd.exe.bak"})),
            [2]
        );
        assert_eq!(candidates(&p, json!({"Image": "x PowerShell"})), [1, 2]);
        // Values are looked up only at the lengths exact literals have, long ones included.
        let long = "a".repeat(300);
        let p = Prefilter::new(&[Some(vec![equal(0, &long)])], 0..1);
        assert_eq!(
            candidates(&p, json!({"CommandLine": long.to_uppercase()})),
            [0]
        );
        assert_eq!(
            candidates(&p, json!({"CommandLine": "a".repeat(299)})),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn keyword_literals_are_found_in_every_kind_of_value() {
        // Rule 0: keyword "4688"; rule 1: keyword "true"; rule 2: keyword "überprüfung",
        // which only Unicode lower-casing finds in "ÜBERPRÜFUNG"; rule 3: "-7".
        let sets = [
            Some(vec![lit(None, "4688")]),
            Some(vec![lit(None, "true")]),
            Some(vec![lit(None, "überprüfung")]),
            Some(vec![lit(None, "-7")]),
        ];
        let p = Prefilter::new(&sets, 0..4);
        let found = |event| candidates(&p, event);
        assert_eq!(found(json!({"EventID": 4688, "x": "a"})), [0]);
        assert_eq!(found(json!({"Image": "A", "ok": true})), [1]);
        assert_eq!(found(json!({"Image": "ÜBERPRÜFUNG", "n": -7})), [2, 3]);
        assert_eq!(
            found(json!({"CommandLine": ["x", 12.5, null, "4688"]})),
            [0]
        );
        assert_eq!(
            found(json!({"Image": "4 688", "b": false})),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn candidates_are_rules_with_a_literal_present_where_required() {
        // Fields: 0 CommandLine, 1 Image. Rule 0 needs "cmd.exe" in Image or "pwsh" in any
        // value (a keyword), rule 1 "certutil" in CommandLine, rule 2 offers no set.
        let sets = [
            Some(vec![lit(Some(1), "cmd.exe"), lit(None, "pwsh")]),
            Some(vec![lit(Some(0), "certutil")]),
            None,
        ];
        let p = Prefilter::new(&sets, 0..3);
        let event = json!({"Image": "C:\\Windows\\CMD.EXE", "CommandLine": "cmd.exe /c"});
        assert_eq!(candidates(&p, event), [0, 2]);
        let event = json!({"CommandLine": "CertUtil -urlcache", "Other": "pwsh -nop"});
        assert_eq!(candidates(&p, event), [0, 1, 2]);
        // The literals occur, but not in the fields that must hold them.
        let event = json!({"Image": "C:\\certutil.exe", "Other": "cmd.exe"});
        assert_eq!(candidates(&p, event), [2]);
        // A prefilter over some rules reports only those.
        let only_1 = Prefilter::new(&sets, [1]);
        let event = json!({"CommandLine": "certutil", "Other": "pwsh"});
        assert_eq!(candidates(&only_1, event), [1]);
        assert_eq!(
            only_1.stats(),
            PrefilterStats {
                rules: 1,
                always: 0,
                literals: 1,
                automata: 1
            }
        );
    }

    #[test]
    fn every_literal_present_is_found_however_literals_overlap() {
        // Over a four-letter alphabet, literals overlap, nest and share prefixes and suffixes
        // in every way; the literals present are by definition those `str::contains` finds.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut word = |len: u64| -> String {
            (0..len)
                .map(|_| ['a', 'b', 'c', '\\'][next(4) as usize])
                .collect()
        };
        for round in 0..300 {
            let count = 1 + round % 12;
            let literals: Vec<String> = (0..count)
                .map(|i| word(1 + (i * 7 + round) as u64 % 6))
                .collect();
            let sets: Vec<Option<Vec<Literal>>> = literals
                .iter()
                .map(|l| Some(vec![lit(Some(0), l)]))
                .collect();
            let p = Prefilter::new(&sets, 0..sets.len() as u32);
            let haystack = word(40);
            let mut record_trie = PathTrie::default();
            record_trie.insert("f", 0);
            let event = json!({ "f": haystack });
            let record = EventRecord::new(&event, &record_trie);
            let mut out = RuleBits::new(sets.len());
            p.candidates(&record, &mut out, &mut Scratch::default());
            let expected: Vec<u32> = (0..literals.len() as u32)
                .filter(|i| haystack.contains(literals[*i as usize].as_str()))
                .collect();
            assert_eq!(
                out.iter().collect::<Vec<_>>(),
                expected,
                "literals {literals:?} in {haystack:?}"
            );
        }
    }
}
