//! Sanitization of rules before they are shared.
//!
//! A [`Sanitizer`] is built from a tenant's [`SanitizeProfile`] (registered internal domains,
//! host-name patterns, user names, address ranges, ticket-id patterns) plus its own ids, and
//! the built-in detectors (private, unique-local and link-local addresses, e-mail addresses,
//! user-profile paths, UNC host names). It rewrites:
//!
//! * Sigma rules by parsing the YAML, replacing inside every scalar (keys included, so a
//!   selection named after the tenant is renamed consistently with the condition that names
//!   it) and emitting YAML again. Comments do not survive the round trip: they are dropped,
//!   which is the strictest way to sanitize them.
//! * YARA rules at the token level ([`yara`]).
//! * Free-text metadata: title, description, author, source, references.
//!
//! The caller must still compile the result; a rule that no longer compiles is not shared.

pub mod detectors;
pub mod yara;

use ipnet::IpNet;
use regex::Regex;
use saphyr::{LoadableYamlNode, Scalar, Yaml, YamlEmitter};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

use detectors::Detectors;
pub use detectors::{Class, Report};

use crate::model::RuleKind;
use crate::store::rules::RuleMeta;

/// A tenant's registered sensitive values. Stored as JSON; set by the tenant's admin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SanitizeProfile {
    /// Internal DNS domains (`corp.acme.com`); names under them are replaced too.
    pub internal_domains: Vec<String>,
    /// Regular expressions for host names (`ACME-WS\d{4}`), matched case-insensitively as
    /// whole tokens.
    pub host_patterns: Vec<String>,
    /// User and service-account names, matched case-insensitively as whole tokens.
    pub user_names: Vec<String>,
    /// Address ranges in CIDR form (`10.20.0.0/16`, `fd12:3456::/48`).
    pub address_ranges: Vec<String>,
    /// Regular expressions for ticket ids (`INC-\d{6}`), matched as whole tokens.
    pub ticket_patterns: Vec<String>,
}

/// Everything a sanitization produced.
#[derive(Debug, Clone)]
pub struct Sanitized {
    /// Sanitized rule text.
    pub text: String,
    /// Sanitized metadata.
    pub meta: RuleMeta,
    /// What was replaced.
    pub report: Report,
}

/// A compiled sanitizer for one tenant.
#[derive(Debug, Clone)]
pub struct Sanitizer {
    detectors: Detectors,
}

fn compile_patterns(field: &str, patterns: &[String]) -> Result<Vec<Regex>, String> {
    patterns
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            // Bounded size: a profile pattern runs over every shared rule.
            regex::RegexBuilder::new(&format!("(?i){p}"))
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("{field}: '{p}' is not a valid regular expression: {e}"))
        })
        .collect()
}

impl Sanitizer {
    /// Compiles a profile; `tenant_ids` are the tenant's own id, name and pseudonym-free
    /// identifiers. The error names the profile field and value to fix.
    pub fn new(profile: &SanitizeProfile, tenant_ids: &[String]) -> Result<Sanitizer, String> {
        let hosts = compile_patterns("host_patterns", &profile.host_patterns)?;
        let tickets = compile_patterns("ticket_patterns", &profile.ticket_patterns)?;
        let ranges = profile
            .address_ranges
            .iter()
            .map(|r| {
                r.trim().parse::<IpNet>().map_err(|e| {
                    format!("address_ranges: '{r}' is not a CIDR range like 10.20.0.0/16 ({e})")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let detectors = Detectors::new(
            tenant_ids,
            &profile.internal_domains,
            &hosts,
            &profile.user_names,
            &ranges,
            &tickets,
        );
        Ok(Sanitizer { detectors })
    }

    /// Sanitizes one free-text value.
    pub fn text(&self, s: &str, report: &mut Report) -> String {
        self.detectors.sanitize(s, report)
    }

    /// Sanitizes a rule's text and metadata.
    pub fn rule(&self, kind: RuleKind, text: &str, meta: &RuleMeta) -> Result<Sanitized, String> {
        let mut report = Report::default();
        let text = match kind {
            RuleKind::Sigma => self.sigma(text, &mut report)?,
            RuleKind::Yara => yara::sanitize_yara(text, &self.detectors, &mut report),
        };
        let mut meta = meta.clone();
        meta.title = self.text(&meta.title, &mut report);
        meta.description = self.text(&meta.description, &mut report);
        meta.author = self.text(&meta.author, &mut report);
        meta.source = self.text(&meta.source, &mut report);
        meta.references = meta
            .references
            .iter()
            .map(|r| self.text(r, &mut report))
            .collect();
        Ok(Sanitized { text, meta, report })
    }

    fn sigma(&self, text: &str, report: &mut Report) -> Result<String, String> {
        let docs =
            Yaml::load_from_str(text).map_err(|e| format!("the Sigma YAML does not parse: {e}"))?;
        let mut out = String::new();
        for doc in docs {
            let clean = self.walk(doc, report);
            let mut emitted = String::new();
            let mut emitter = YamlEmitter::new(&mut emitted);
            emitter.multiline(true);
            emitter
                .dump(&clean)
                .map_err(|e| format!("cannot re-emit the sanitized YAML: {e}"))?;
            out.push_str(&emitted);
            out.push('\n');
        }
        Ok(out)
    }

    fn walk<'a>(&self, node: Yaml<'a>, report: &mut Report) -> Yaml<'a> {
        match node {
            Yaml::Value(Scalar::String(s)) => {
                Yaml::Value(Scalar::String(Cow::Owned(self.text(&s, report))))
            }
            Yaml::Representation(s, style, tag) => {
                Yaml::Representation(Cow::Owned(self.text(&s, report)), style, tag)
            }
            Yaml::Sequence(items) => {
                Yaml::Sequence(items.into_iter().map(|i| self.walk(i, report)).collect())
            }
            Yaml::Mapping(map) => Yaml::Mapping(
                map.into_iter()
                    .map(|(k, v)| (self.walk(k, report), self.walk(v, report)))
                    .collect(),
            ),
            Yaml::Tagged(tag, inner) => Yaml::Tagged(tag, Box::new(self.walk(*inner, report))),
            other => other,
        }
    }
}
