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
            // A literal such as `\windows\` occurs many times per event; its owners are
            // marked once.
            let mut seen = RuleBits::new(self.owners.len());
            for m in ac.find_overlapping_iter(haystack) {
                let p = m.pattern().as_u32();
                if seen.contains(p) {
                    continue;
                }
                seen.insert(p);
                for &r in &self.owners[p as usize] {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn candidates_are_rules_with_a_literal_present() {
        // Rule 0 needs "cmd.exe" or "pwsh", rule 1 "certutil", rule 2 offers no set.
        let p = Prefilter::new(&[
            Some(vec!["cmd.exe".into(), "pwsh".into()]),
            Some(vec!["certutil".into()]),
            None,
        ]);
        let mut out = RuleBits::new(3);
        p.candidates("c:\\windows\\cmd.exe\0cmd.exe /c\0", &mut out);
        assert_eq!(out.iter().collect::<Vec<_>>(), [0, 2]);
        p.candidates("certutil -urlcache\0pwsh\0", &mut out);
        assert_eq!(out.iter().collect::<Vec<_>>(), [0, 1, 2]);
        p.candidates("notepad.exe\0", &mut out);
        assert_eq!(out.iter().collect::<Vec<_>>(), [2]);
    }
}
