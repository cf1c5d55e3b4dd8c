//! The rule set: an immutable, versioned snapshot of compiled rules ready to evaluate events.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use foundry_sigma::{FieldId, FieldTable, Literal, Logsource};

use crate::builder::SigmaEntry;
use crate::decode::{record_text, DecodeError};
use crate::flat::FlatEvent;
use crate::hit::{EventOrigin, Hit, HitRule, HitRuleset, RuleKind};
use crate::input::EventInput;
use crate::mapping::Mapping;
use crate::prefilter::{Prefilter, RuleBits, Scratch};
use crate::record::{EventRecord, PathTrie};
use crate::yara::YaraPart;

struct Classifier {
    conditions: Vec<(FieldId, Vec<String>)>,
    logsource: Logsource,
}

/// A declared logsource as (product, category, service), the key of the route cache.
type RouteKey = (Option<String>, Option<String>, Option<String>);

/// The rules that declare one logsource (compared case-insensitively), with a prefilter over
/// their literals only: an event is searched only for the literals of rules it may reach, so
/// a process-creation event is not searched for what image-load rules ask of `Image`.
struct LogsourceClass {
    logsource: Logsource,
    prefilter: Prefilter,
}

/// Where an event's candidate rules come from.
enum Route {
    /// The prefilters of these classes, whose rules are exactly those the event may reach.
    Classes(Vec<usize>),
    /// The whole set's prefilter, kept to these rules: for events that may reach many
    /// classes (no classifier matched, or a declared logsource that sets few keys), where
    /// one search beats many.
    Merged(RuleBits),
}

/// A classifier value that accepts any value of its field (the field must have one).
const ANY_VALUE: &str = "*";

/// Beyond this many classes, an event is searched with the whole set's prefilter.
const MAX_CLASSES_PER_ROUTE: usize = 16;

thread_local! {
    /// Each evaluating thread's candidate set and prefilter buffers, reused from event to
    /// event instead of allocated for each.
    static SCRATCH: std::cell::RefCell<(RuleBits, Scratch)> = Default::default();
}

/// An immutable, versioned snapshot of compiled rules.
pub struct RuleSet {
    version: String,
    trie: PathTrie,
    rules: Vec<SigmaEntry>,
    classifiers: Vec<Classifier>,
    classes: Vec<LogsourceClass>,
    /// The prefilter over every rule, for merged routes.
    prefilter: Prefilter,
    /// The fields classifiers read, each with every value some classifier accepts and
    /// whether one accepts any value (`*`).
    route_fields: Vec<(FieldId, foldhash::HashSet<String>, bool)>,
    /// Routes by an event's route key (see `route_key`).
    classified_routes: RwLock<foldhash::HashMap<String, Arc<Route>>>,
    /// Routes by the logsource an input declares.
    route_cache: RwLock<foldhash::HashMap<RouteKey, Arc<Route>>>,
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
        let sets: Vec<Option<Vec<Literal>>> =
            rules.iter().map(|e| e.rule.required_literals()).collect();
        let mut members: Vec<(Logsource, Vec<u32>)> = Vec::new();
        let mut class_of: HashMap<RouteKey, usize> = HashMap::new();
        for (i, entry) in rules.iter().enumerate() {
            let l = &entry.rule.logsource;
            let lower = |v: &Option<String>| v.as_deref().map(str::to_lowercase);
            let key = (lower(&l.product), lower(&l.category), lower(&l.service));
            let class = *class_of.entry(key.clone()).or_insert_with(|| {
                members.push((
                    Logsource {
                        product: key.0,
                        category: key.1,
                        service: key.2,
                        definition: None,
                    },
                    Vec::new(),
                ));
                members.len() - 1
            });
            members[class].1.push(i as u32);
        }
        // Built on the calling thread: a worker reloads on a low-priority thread of its own,
        // and work handed to the rayon pool would run at the evaluate stage's priority.
        let prefilter = Prefilter::new(&sets, 0..rules.len() as u32);
        let classes: Vec<LogsourceClass> = members
            .into_iter()
            .map(|(logsource, ids)| LogsourceClass {
                logsource,
                prefilter: Prefilter::new(&sets, ids),
            })
            .collect();
        let mut route_fields: Vec<(FieldId, foldhash::HashSet<String>, bool)> = Vec::new();
        for (f, want) in classifiers.iter().flat_map(|c| &c.conditions) {
            match route_fields.iter_mut().find(|(g, _, _)| g == f) {
                Some((_, values, _)) => values.extend(want.iter().cloned()),
                None => route_fields.push((*f, want.iter().cloned().collect(), false)),
            }
        }
        for (_, values, any) in &mut route_fields {
            *any = values.contains(ANY_VALUE);
        }
        let stats = prefilter.stats();
        tracing::debug!(
            rules = stats.rules,
            always = stats.always,
            literals = stats.literals,
            automata = stats.automata,
            classes = classes.len(),
            "literal prefilter built"
        );
        RuleSet {
            version,
            trie,
            rules,
            classifiers,
            classes,
            prefilter,
            route_fields,
            classified_routes: RwLock::new(foldhash::HashMap::default()),
            route_cache: RwLock::new(foldhash::HashMap::default()),
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

    /// The route of events that may come from any of `logsources`.
    fn plan(&self, logsources: &[&Logsource]) -> Route {
        let reaches = |rule: &Logsource| logsources.iter().any(|l| compatible(rule, l));
        let classes: Vec<usize> = (0..self.classes.len())
            .filter(|c| reaches(&self.classes[*c].logsource))
            .collect();
        if classes.len() <= MAX_CLASSES_PER_ROUTE {
            Route::Classes(classes)
        } else {
            Route::Merged(RuleBits::from_fn(self.rules.len(), |i| {
                reaches(&self.rules[i].rule.logsource)
            }))
        }
    }

    /// A cached route, made on first use.
    fn cached<K, Q>(
        &self,
        cache: &RwLock<foldhash::HashMap<K, Arc<Route>>>,
        key: &Q,
        make: impl FnOnce() -> Route,
    ) -> Arc<Route>
    where
        K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
        Q: std::hash::Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(r) = cache.read().ok().and_then(|c| c.get(key).cloned()) {
            return r;
        }
        let route = Arc::new(make());
        if let Ok(mut c) = cache.write() {
            c.insert(key.to_owned(), route.clone());
        }
        route
    }

    fn route(&self, record: &EventRecord<'_>, hint: Option<&Logsource>) -> Arc<Route> {
        if let Some(h) = hint {
            let key = (h.product.clone(), h.category.clone(), h.service.clone());
            return self.cached(&self.route_cache, &key, || self.plan(&[h]));
        }
        // Events with the same classifier-relevant values take the same route; the route is
        // worked out once per distinct key.
        let key = self.route_key(record);
        self.cached(&self.classified_routes, key.as_str(), || {
            self.classify(record)
        })
    }

    /// What classifiers can see of an event: per classifier field, the values (lower-cased)
    /// that some classifier accepts. Other values cannot change any classifier's outcome, so
    /// the key space stays as small as the mapping.
    fn route_key(&self, record: &EventRecord<'_>) -> String {
        use foundry_sigma::EventView as _;
        let mut key = String::new();
        for (f, accepted, any) in &self.route_fields {
            let values = record.field(*f).unwrap_or(&[]);
            // A classifier that accepts any value (`*`) sees whether the field has one.
            if *any && values.iter().any(|v| v.text().is_some()) {
                key.push('\u{1d}');
            }
            for t in values.iter().filter_map(|v| v.lower()) {
                if accepted.contains(t) {
                    key.push_str(t);
                    key.push('\u{1f}');
                }
            }
            key.push('\u{1e}');
        }
        key
    }

    fn classify(&self, record: &EventRecord<'_>) -> Route {
        let matched: Vec<usize> = self
            .classifiers
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.conditions.iter().all(|(f, want)| {
                    use foundry_sigma::EventView as _;
                    let any = want.iter().any(|w| w == ANY_VALUE);
                    record.field(*f).is_some_and(|vs| {
                        vs.iter().any(|v| {
                            v.lower()
                                .is_some_and(|t| any || want.iter().any(|w| w == t))
                        })
                    })
                })
            })
            .map(|(i, _)| i)
            .collect();
        if matched.is_empty() {
            // Nothing says where the event comes from: every rule may see it.
            return Route::Merged(RuleBits::from_fn(self.rules.len(), |_| true));
        }
        let logsources: Vec<&Logsource> = matched
            .iter()
            .map(|i| &self.classifiers[*i].logsource)
            .collect();
        self.plan(&logsources)
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
        self.evaluate_record(&record, Some(event), origin, hint)
    }

    /// Decodes a raw record and evaluates it, as [`decode_event`](crate::decode_event) then
    /// [`RuleSet::evaluate`] would, with the same errors for records that are not usable.
    /// Without YARA-X payload fields no JSON tree is built: the text is decoded straight into
    /// the values rules read.
    pub fn evaluate_bytes(
        &self,
        bytes: &[u8],
        max_bytes: usize,
        origin: &EventOrigin,
        hint: Option<&Logsource>,
    ) -> Result<Evaluation, DecodeError> {
        if self.yara.is_none() {
            let text = record_text(bytes, max_bytes)?;
            if let Some(flat) = FlatEvent::parse(text, &self.trie) {
                let record = EventRecord::from_flat(&flat);
                return Ok(self.evaluate_record(&record, None, origin, hint));
            }
        }
        // Payloads are read from the tree; and a record the direct decoder declines (not an
        // object, bad JSON, a repeated key) gets the tree's outcome and errors.
        let event = crate::decode_event(bytes, max_bytes)?;
        Ok(self.evaluate(&event, origin, hint))
    }

    fn evaluate_record(
        &self,
        record: &EventRecord<'_>,
        event: Option<&Value>,
        origin: &EventOrigin,
        hint: Option<&Logsource>,
    ) -> Evaluation {
        // The origin hits carry, with the event's own time; made when the first hit is.
        let hit_origin = std::cell::OnceCell::new();
        let hit_origin = || -> &EventOrigin {
            hit_origin.get_or_init(|| {
                let mut o = origin.clone();
                if o.time.is_none() {
                    o.time = self.event_time(record);
                }
                o
            })
        };
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
            if let Some(matched) = entry.rule.evaluate(record) {
                out.hits
                    .push(self.sigma_hit(entry, &matched, hit_origin(), now()));
            }
        };
        if self.indexing {
            let route = self.route(record, hint);
            let mut run = |bits: &mut RuleBits, scratch: &mut Scratch| {
                bits.reset(self.rules.len());
                match &*route {
                    Route::Classes(classes) => {
                        for c in classes {
                            self.classes[*c].prefilter.candidates(record, bits, scratch);
                        }
                    }
                    Route::Merged(reachable) => {
                        self.prefilter.candidates(record, bits, scratch);
                        bits.intersect_with(reachable);
                    }
                }
                for i in bits.iter() {
                    check(i, &mut out);
                }
            };
            SCRATCH.with(|cell| match cell.try_borrow_mut() {
                Ok(mut held) => {
                    let (bits, scratch) = &mut *held;
                    run(bits, scratch);
                }
                Err(_) => run(&mut RuleBits::default(), &mut Scratch::default()),
            });
        } else {
            for i in 0..self.rules.len() as u32 {
                check(i, &mut out);
            }
        }
        if let (Some(y), Some(event)) = (&self.yara, event) {
            y.scan_event(event, hit_origin(), &self.version, now(), &mut out);
        }
        out
    }

    /// Evaluates an event as read from an input file (see [`crate::input::read_inputs`]).
    pub fn evaluate_input(
        &self,
        event: &EventInput,
        origin: &EventOrigin,
        hint: Option<&Logsource>,
    ) -> Result<Evaluation, DecodeError> {
        match event {
            EventInput::Tree(tree) => Ok(self.evaluate(tree, origin, hint)),
            EventInput::Text(bytes) => {
                self.evaluate_bytes(bytes, crate::input::MAX_FILE_RECORD, origin, hint)
            }
        }
    }

    /// Evaluates a batch of input events across cores, keeping order.
    pub fn evaluate_inputs(
        &self,
        events: &[(EventInput, EventOrigin)],
        hint: Option<&Logsource>,
    ) -> Vec<Result<Evaluation, DecodeError>> {
        use rayon::prelude::*;
        events
            .par_iter()
            .map(|(e, o)| self.evaluate_input(e, o, hint))
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
