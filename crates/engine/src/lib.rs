//! Rule sets for Threat Foundry: compiled Sigma and YARA-X rules evaluated on events.
//!
//! A [`RuleSetBuilder`] gathers rule files (or hub texts), a [`Mapping`] of fields and
//! logsources, and YARA-X payload settings, and builds an immutable [`RuleSet`] named by a
//! content hash. [`RuleSet::evaluate`] takes one JSON event and its [`EventOrigin`] and
//! returns an [`Evaluation`]: [`Hit`]s, plus payloads that could not be scanned.
//!
//! Inside, each event is walked once into an [`record::EventRecord`] along a trie of the
//! field paths rules use: from a parsed JSON tree, or, for raw records
//! ([`RuleSet::evaluate_bytes`]), straight from the text by [`flat`]. Routing by logsource
//! picks the rule logsources the event may reach; each has a literal [`prefilter`] that
//! drops its rules none of whose required literals occur in the fields that must hold them;
//! the rest are evaluated. [`decode`] classifies undecodable records for dead-lettering,
//! and [`input`] reads JSON Lines, JSON and EVTX files as records.

#![warn(missing_docs)]

pub mod builder;
pub mod decode;
pub mod flat;
pub mod hit;
pub mod input;
pub mod mapping;
pub mod prefilter;
pub mod record;
pub mod ruleset;
pub mod yara;

pub use builder::{
    LoadFailure, LoadReport, RuleSetBuilder, RuleSetError, RuleSource, SourceKind, SourceMeta,
};
pub use decode::{decode_event, DeadLetterReason, DecodeError};
pub use hit::{EventOrigin, Hit, HitPayload, HitRule, HitRuleset, Provenance, RuleKind};
pub use mapping::Mapping;
pub use ruleset::{Evaluation, PayloadProblem, RuleSet};
pub use yara::YaraConfig;

/// Validates one rule's text by compiling it with the product's own engines, as the hub
/// does on every write. `kind` is `sigma` or `yara`.
pub fn validate_rule_text(kind: &str, text: &str) -> Result<(), String> {
    match kind {
        "sigma" => foundry_sigma::check_text(text, &foundry_sigma::CompileOptions::default())
            .map(|_| ())
            .map_err(|e| e.to_string()),
        "yara" => {
            foundry_yara::YaraRuleSet::compile(&[foundry_yara::YaraSource::new("rule.yar", text)])
                .map(|_| ())
                .map_err(|errs| {
                    errs.iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
        }
        other => Err(format!(
            "unknown rule kind '{other}' (expected sigma or yara)"
        )),
    }
}
