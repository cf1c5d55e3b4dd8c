//! The rule set: an immutable, versioned snapshot of compiled rules ready to evaluate events.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use foundry_sigma::{FieldId, FieldTable, Logsource};

use crate::builder::SigmaEntry;
use crate::hit::{EventOrigin, Hit, HitRule, HitRuleset, RuleKind};
use crate::mapping::Mapping;
use crate::prefilter::{Prefilter, RuleBits};
use crate::record::{EventRecord, PathTrie};
use crate::yara::YaraPart;

struct Classifier {
    conditions: Vec<(FieldId, Vec<String>)>,
    logsource: Logsource,
}

/// A declared logsource as (product, category, service), the key of the route cache.
type RouteKey = (Option<String>, Option<String>, Option<String>);

/// An immutable, versioned snapshot of compiled rules.
pub struct RuleSet {
    version: String,
    trie: PathTrie,
    rules: Vec<SigmaEntry>,
    classifiers: Vec<Classifier>,
    /// Per classifier, the rules whose logsource it is compatible with.
    routes: Vec<Arc<RuleBits>>,
    all_rules: Arc<RuleBits>,
    prefilter: Prefilter,
    route_cache: RwLock<HashMap<RouteKey, Arc<RuleBits>>>,
    indexing: bool,
    yara: Option<YaraPart>,
    time_fields: Vec<FieldId>,
    pub(crate) next_expiry: Option<chrono::DateTime<chrono::Utc>>,
}

/// Field paths that commonly carry an event's own time, tried in order.
const TIME_FIELDS: &[&str] = &[
    "@timestamp",
    "UtcTime",
    "TimeCreated",
    "EventTime",
    "timestamp",
    "eventTime",
];

fn compatible(rule: &Logsource, event: &Logsource) -> bool {
    let eq = |r: &Option<String>, e: &Option<String>| match r {
        None => true,
        Some(r) => e.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(r)),
    };
    eq(&rule.product, &event.product)
        && eq(&rule.category, &event.category)
        && eq(&rule.service, &event.service)
}

impl RuleSet {
    pub(crate) fn assemble(
        rules: Vec<SigmaEntry>,
        mut fields: FieldTable,
        mapping: &Mapping,
        yara: Option<YaraPart>,
        version: String,
    ) -> RuleSet {
        let classifiers: Vec<Classifier> = mapping
            .logsource
            .iter()
            .map(|l| Classifier {
                conditions: l
                    .when
                    .iter()
                    .map(|(f, v)| (fields.intern(f), v.values()))
                    .collect(),
                logsource: l.logsource(),
            })
            .collect();
        let time_fields: Vec<FieldId> = TIME_FIELDS.iter().map(|f| fields.intern(f)).collect();
        let mut trie = PathTrie::default();
        for (id, name) in fields.iter() {
            for path in mapping.paths_for(name) {
                trie.insert(&path, id);
            }
        }
        trie.insert(
            "Event.System.TimeCreated.#attributes.SystemTime",
            fields.intern("TimeCreated"),
        );
        let routes = classifiers
            .iter()
            .map(|c| {
                Arc::new(RuleBits::from_fn(rules.len(), |i| {
                    compatible(&rules[i].rule.logsource, &c.logsource)
                }))
            })
            .collect();
        let sets: Vec<Option<Vec<String>>> =
            rules.iter().map(|e| e.rule.required_literals()).collect();
        let prefilter = Prefilter::new(&sets);
        let (always, literals) = prefilter.stats();
        tracing::debug!(
            rules = rules.len(),
            always,
            literals,
            "literal prefilter built"
        );
        RuleSet {
            version,
            all_rules: Arc::new(RuleBits::from_fn(rules.len(), |_| true)),
            trie,
            rules,
            classifiers,
            routes,
            prefilter,
            route_cache: RwLock::new(HashMap::new()),
            indexing: true,
            yara,
            time_fields,
            next_expiry: None,
        }
    }

    /// The earliest `valid_until` among the loaded rules: from then on this set runs a rule
    /// it should not, and a reload (which drops it) is due.
    pub fn next_expiry(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.next_expiry
    }

    /// The version: a content hash of every rule file and the mapping (with the hub's version).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Number of Sigma rules.
    pub fn sigma_rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Number of YARA rules.
    pub fn yara_rule_count(&self) -> usize {
        self.yara.as_ref().map_or(0, YaraPart::rule_count)
    }

    /// Identifiers of every rule, for metrics bookkeeping.
    pub fn rule_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .rules
            .iter()
            .map(|e| e.rule.identifier().to_string())
            .collect();
        if let Some(y) = &self.yara {
            ids.extend(y.rule_ids());
        }
        ids
    }

    /// Switches routing and the literal prefilter off (every rule sees every event), for
    /// benchmarks that measure what indexing buys.
    pub fn set_indexing(&mut self, on: bool) {
        self.indexing = on;
    }

    /// Whether payload fields are configured for YARA-X.
    pub fn has_yara(&self) -> bool {
        self.yara.is_some()
    }

    fn route(&self, record: &EventRecord<'_>, hint: Option<&Logsource>) -> Arc<RuleBits> {
        if let Some(h) = hint {
            let key = (h.product.clone(), h.category.clone(), h.service.clone());
            if let Some(r) = self
                .route_cache
                .read()
                .ok()
                .and_then(|c| c.get(&key).cloned())
            {
                return r;
            }
            let r = Arc::new(RuleBits::from_fn(self.rules.len(), |i| {
                compatible(&self.rules[i].rule.logsource, h)
            }));
            if let Ok(mut c) = self.route_cache.write() {
                c.insert(key, r.clone());
            }
            return r;
        }
        let matched: Vec<usize> = self
            .classifiers
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.conditions.iter().all(|(f, want)| {
                    use foundry_sigma::EventView as _;
                    record.field(*f).is_some_and(|vs| {
                        vs.iter()
                            .any(|v| v.lower().is_some_and(|t| want.iter().any(|w| w == t)))
                    })
                })
            })
            .map(|(i, _)| i)
            .collect();
        match matched.as_slice() {
            [] => self.all_rules.clone(),
            [one] => self.routes[*one].clone(),
            many => {
                let mut all = RuleBits::new(self.rules.len());
                for i in many {
                    all.union_with(&self.routes[*i]);
                }
                Arc::new(all)
            }
        }
    }

    /// Evaluates one event: every Sigma rule that routing and the prefilter let through, and
    /// YARA-X over its payloads. `hint` is the logsource the input declares, if any.
    pub fn evaluate(
        &self,
        event: &Value,
        origin: &EventOrigin,
        hint: Option<&Logsource>,
    ) -> Evaluation {
        let record = EventRecord::new(event, &self.trie);
        let mut origin = origin.clone();
        if origin.time.is_none() {
            origin.time = self.event_time(&record);
        }
        // The detection time, read from the clock once, when the event's first hit is made.
        let now = std::cell::OnceCell::new();
        let now = || -> &str {
            now.get_or_init(|| {
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            })
        };
        let mut out = Evaluation::default();
        let check = |i: u32, out: &mut Evaluation| {
            let entry = &self.rules[i as usize];
            if let Some(matched) = entry.rule.evaluate(&record) {
                out.hits
                    .push(self.sigma_hit(entry, &matched, &origin, now()));
            }
        };
        if self.indexing {
            let route = self.route(&record, hint);
            let mut haystack = String::new();
            record.haystack(&mut haystack);
            let mut bits = RuleBits::new(self.rules.len());
            self.prefilter.candidates(&haystack, &mut bits);
            bits.intersect_with(&route);
            for i in bits.iter() {
                check(i, &mut out);
            }
        } else {
            for i in 0..self.rules.len() as u32 {
                check(i, &mut out);
            }
        }
        if let Some(y) = &self.yara {
            y.scan_event(event, &origin, &self.version, now(), &mut out);
        }
        out
    }

    /// Evaluates a batch across cores, keeping order.
    pub fn evaluate_batch(
        &self,
        events: &[(Value, EventOrigin)],
        hint: Option<&Logsource>,
    ) -> Vec<Evaluation> {
        use rayon::prelude::*;
        events
            .par_iter()
            .map(|(e, o)| self.evaluate(e, o, hint))
            .collect()
    }

    fn event_time(&self, record: &EventRecord<'_>) -> Option<String> {
        use foundry_sigma::EventView as _;
        self.time_fields.iter().find_map(|f| {
            record
                .field(*f)
                .and_then(|vs| vs.first())
                .and_then(|v| v.text().map(str::to_string))
        })
    }

    fn sigma_hit(
        &self,
        entry: &SigmaEntry,
        matched: &[usize],
        origin: &EventOrigin,
        now: &str,
    ) -> Hit {
        let rule = &entry.rule;
        let mut m = serde_json::Map::new();
        for &i in matched {
            let fields = rule.search_fields[i]
                .iter()
                .map(|f| Value::String(f.clone()))
                .collect();
            m.insert(
                rule.detection.searches[i].name.clone(),
                Value::Array(fields),
            );
        }
        Hit {
            rule: HitRule {
                id: rule.identifier().to_string(),
                title: rule.meta.title.clone(),
                kind: RuleKind::Sigma,
                level: rule.meta.level.clone(),
                version: entry.info.version.clone(),
                tags: rule.meta.tags.clone(),
            },
            ruleset: HitRuleset {
                version: self.version.clone(),
            },
            confidence: entry.info.confidence,
            tlp: entry.info.tlp.clone(),
            provenance: entry.info.provenance.clone(),
            event: origin.clone(),
            matched: Value::Object(m),
            payload: None,
            worker: None,
            detected_at: now.to_string(),
        }
    }
}

/// The outcome of evaluating one event.
#[derive(Debug, Default, Clone)]
pub struct Evaluation {
    /// Hits, Sigma first, then YARA.
    pub hits: Vec<Hit>,
    /// Payloads that could not be decoded or scanned: (field, reason class, detail).
    pub payload_problems: Vec<PayloadProblem>,
}

/// A payload that could not be scanned.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PayloadProblem {
    /// The event field.
    pub field: String,
    /// A bounded reason class: `undecodable`, `too_large`, `timeout`, `too_many`, `error`.
    pub reason: &'static str,
    /// Details.
    pub detail: String,
}
