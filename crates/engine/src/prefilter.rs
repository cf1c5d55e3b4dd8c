//! The shared literal prefilter: which rules could match an event at all.
//!
//! Every compiled rule offers a set of lower-cased literals at least one of which occurs in
//! any event it matches (see `CompiledRule::required_literals`). One Aho-Corasick automaton
//! over all rules' literals runs over the event's lower-cased values once; a rule is
//! evaluated only if one of its literals was seen, or if it offered no literal set. So the
//! cost per event follows the number of literals present, not the number of rules.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

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
}

/// The compiled prefilter.
#[derive(Debug)]
pub struct Prefilter {
    automaton: Option<AhoCorasick>,
    /// For each literal, the rules that offered it.
    owners: Vec<Vec<u32>>,
    /// Rules that offered no literal set and are always evaluated.
    always: RuleBits,
    rules: usize,
}

impl Prefilter {
    /// Builds the prefilter from each rule's literal set (`None`: always evaluate).
    pub fn new(sets: &[Option<Vec<String>>]) -> Prefilter {
        let mut literals: Vec<String> = Vec::new();
        let mut index = std::collections::HashMap::new();
        let mut owners: Vec<Vec<u32>> = Vec::new();
        let mut always = RuleBits::new(sets.len());
        for (rule, set) in sets.iter().enumerate() {
            match set {
                Some(lits) if !lits.is_empty() => {
                    for lit in lits {
                        let id = *index.entry(lit.clone()).or_insert_with(|| {
                            literals.push(lit.clone());
                            owners.push(Vec::new());
                            owners.len() - 1
                        });
                        if owners[id].last() != Some(&(rule as u32)) {
                            owners[id].push(rule as u32);
                        }
                    }
                }
                _ => always.insert(rule as u32),
            }
        }
        let built = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(&literals);
        let automaton = match built {
            Ok(ac) if !literals.is_empty() => Some(ac),
            Ok(_) => None,
            Err(e) => {
                // Past the automaton's size limits the prefilter is switched off, not the rules.
                tracing::warn!(error = %e, "literal prefilter disabled");
                for r in 0..sets.len() {
                    always.insert(r as u32);
                }
                None
            }
        };
        Prefilter {
            automaton,
            owners,
            always,
            rules: sets.len(),
        }
    }

    /// Marks in `out` every rule that could match a haystack of lower-cased values.
    pub fn candidates(&self, haystack: &str, out: &mut RuleBits) {
        out.0.clone_from(&self.always.0);
        if let Some(ac) = &self.automaton {
            for m in ac.find_overlapping_iter(haystack) {
                for &r in &self.owners[m.pattern().as_usize()] {
                    out.insert(r);
                }
            }
        }
    }

    /// How many rules are always evaluated, and how many literals are indexed.
    pub fn stats(&self) -> (usize, usize) {
        let always = (0..self.rules as u32)
            .filter(|r| self.always.contains(*r))
            .count();
        (always, self.owners.len())
    }
}
