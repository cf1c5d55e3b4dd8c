//! Building a rule set: reading rule files and hub texts, compiling them, and reporting what
//! failed. A strict build (hot reload) rejects the whole set when any rule fails.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use foundry_sigma::{
    compile_filter, compile_rule, filter_applies, parse_documents, CompileOptions, CompiledRule,
    Document, FieldTable, FilterDocument,
};

use crate::hit::Provenance;
use crate::mapping::Mapping;
use crate::ruleset::RuleSet;
use crate::yara::YaraPart;

/// Trust metadata given to a rule by where it came from (the hub), overriding its own.
#[derive(Debug, Clone, Default)]
pub struct SourceMeta {
    /// 0–100.
    pub confidence: Option<u8>,
    /// TLP label.
    pub tlp: Option<String>,
    /// Provenance.
    pub provenance: Option<Provenance>,
    /// The rule's version (the hub's).
    pub version: Option<String>,
    /// After this instant the rule is not loaded (RFC 3339 or a date).
    pub valid_until: Option<String>,
}

/// Which language a source holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// Sigma YAML.
    Sigma,
    /// YARA-X.
    Yara,
}

/// One rule file's text.
#[derive(Debug, Clone)]
pub struct RuleSource {
    /// Where it came from (a path, or `hub:<id>`).
    pub path: String,
    /// The text.
    pub text: String,
    /// Sigma or YARA.
    pub kind: SourceKind,
    /// Hub metadata, when the rule came from the hub.
    pub meta: SourceMeta,
}

/// A rule file that failed, for reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadFailure {
    /// The file.
    pub path: String,
    /// The rendered error, `path:line:column: error[CODE]: …`.
    pub error: String,
    /// Set when the failure is due to a feature the engine deliberately does not support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
}

/// What loading a rule set found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoadReport {
    /// Files read.
    pub files: usize,
    /// Sigma rules compiled.
    pub sigma_rules: usize,
    /// Sigma filters applied.
    pub filters: usize,
    /// YARA rules compiled.
    pub yara_rules: usize,
    /// Correlation rules read but not evaluated yet.
    pub correlations_not_evaluated: Vec<String>,
    /// Rules with a Sigma v1 aggregation (`| count() by x > 5`), compiled but not
    /// evaluated yet.
    pub aggregations_not_evaluated: Vec<String>,
    /// Rules left out because their `valid_until` has passed.
    pub expired: Vec<String>,
    /// Files that failed.
    pub failed: Vec<LoadFailure>,
    /// Non-fatal notes (`path:line:column: warning: …`).
    pub warnings: Vec<String>,
}

/// A rule set that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RuleSetError {
    /// A rule file or folder could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// At least one rule failed and the build was strict.
    #[error("{} rule file(s) failed; first: {}", report.failed.len(), report.failed.first().map_or("", |f| f.error.as_str()))]
    Rejected {
        /// The full report.
        report: Box<LoadReport>,
    },
}

/// Trust and version metadata resolved for one compiled rule.
#[derive(Debug, Clone)]
pub struct RuleInfo {
    /// Confidence 0–100.
    pub confidence: u8,
    /// TLP label.
    pub tlp: String,
    /// Provenance.
    pub provenance: Provenance,
    /// Version.
    pub version: String,
}

pub(crate) struct SigmaEntry {
    pub(crate) rule: CompiledRule,
    pub(crate) info: RuleInfo,
}

/// Builds a [`RuleSet`] from files, folders and texts.
#[derive(Debug, Default)]
pub struct RuleSetBuilder {
    sources: Vec<RuleSource>,
    mapping: Mapping,
    strict: bool,
    hub_version: Option<String>,
    default_tlp: Option<String>,
    yara_limits: crate::yara::YaraConfig,
    /// Files found under a folder that could not be read or are not UTF-8: reported by
    /// `build` like rules that fail to compile, so one bad file does not stop the others.
    unreadable: Vec<LoadFailure>,
}

impl RuleSetBuilder {
    /// A builder with no rules and no mapping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rejects the whole set if any rule fails (hot reload); otherwise failures are reported
    /// and the rest load (`foundry scan`).
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Uses a field and logsource mapping.
    pub fn mapping(mut self, mapping: Mapping) -> Self {
        self.mapping = mapping;
        self
    }

    /// Records the hub's version of this rule set.
    pub fn hub_version(mut self, version: Option<String>) -> Self {
        self.hub_version = version;
        self
    }

    /// The TLP label of rules that carry none (default `TLP:CLEAR`).
    pub fn default_tlp(mut self, tlp: Option<String>) -> Self {
        self.default_tlp = tlp;
        self
    }

    /// Payload locations and limits for YARA-X.
    pub fn yara_config(mut self, config: crate::yara::YaraConfig) -> Self {
        self.yara_limits = config;
        self
    }

    /// Adds one source.
    pub fn add_source(&mut self, source: RuleSource) {
        self.sources.push(source);
    }

    /// Adds a Sigma file or every `.yml`/`.yaml` below a folder (sorted, for a stable version).
    pub fn add_sigma_path(&mut self, path: &Path) -> Result<(), RuleSetError> {
        self.add_path(path, SourceKind::Sigma)
    }

    /// Adds a YARA file or every `.yar`/`.yara` below a folder.
    pub fn add_yara_path(&mut self, path: &Path) -> Result<(), RuleSetError> {
        self.add_path(path, SourceKind::Yara)
    }

    fn add_path(&mut self, path: &Path, kind: SourceKind) -> Result<(), RuleSetError> {
        let io = |source| RuleSetError::Io {
            path: path.display().to_string(),
            source,
        };
        let files = if path.is_dir() {
            let exts: &[&str] = match kind {
                SourceKind::Sigma => &["yml", "yaml"],
                SourceKind::Yara => &["yar", "yara"],
            };
            files_under(path, exts).map_err(io)?
        } else {
            vec![path.to_path_buf()]
        };
        let named_file = !path.is_dir();
        for file in files {
            let shown = file.display().to_string();
            let bytes = match std::fs::read(&file) {
                Ok(bytes) => bytes,
                // A file the user named is an error of the command line.
                Err(source) if named_file => {
                    return Err(RuleSetError::Io {
                        path: shown,
                        source,
                    })
                }
                Err(e) => {
                    self.unreadable.push(LoadFailure {
                        error: format!("{shown}: cannot read: {e}"),
                        path: shown,
                        unsupported: None,
                    });
                    continue;
                }
            };
            // Not lossily: a replaced byte would silently change what the rule matches.
            let text = match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(e) => {
                    self.unreadable
                        .push(not_utf8(&shown, e.as_bytes(), e.utf8_error()));
                    continue;
                }
            };
            self.sources.push(RuleSource {
                path: shown,
                text,
                kind,
                meta: SourceMeta::default(),
            });
        }
        Ok(())
    }

    /// A content hash of everything gathered so far (paths, texts, hub metadata, unreadable
    /// files). Two reads of a folder with the same fingerprint saw the same files, which is
    /// how hot reload tells a settled folder from one still being written.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for source in &self.sources {
            hasher.update(source.path.as_bytes());
            hasher.update([0]);
            hasher.update(source.text.as_bytes());
            hasher.update([0]);
            hasher.update(format!("{:?}", source.meta).as_bytes());
            hasher.update([0]);
        }
        for failure in &self.unreadable {
            hasher.update(failure.error.as_bytes());
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())
    }

    /// Compiles everything into a rule set.
    pub fn build(self) -> Result<(RuleSet, LoadReport), RuleSetError> {
        let mut report = LoadReport {
            files: self.sources.len() + self.unreadable.len(),
            failed: self.unreadable.clone(),
            ..LoadReport::default()
        };
        let mut fields = FieldTable::default();
        let options = CompileOptions {
            placeholders: self.mapping.placeholders.clone().into_iter().collect(),
        };
        let now = chrono::Utc::now();
        let mut rules: Vec<SigmaEntry> = Vec::new();
        let mut filters: Vec<(FilterDocument, foundry_sigma::Detection)> = Vec::new();
        let mut hasher = Sha256::new();
        let mut yara_sources = Vec::new();
        let mut next_expiry: Option<chrono::DateTime<chrono::Utc>> = None;
        let mut note_expiry = |until: chrono::DateTime<chrono::Utc>| {
            next_expiry = Some(next_expiry.map_or(until, |t| t.min(until)));
        };
        for source in &self.sources {
            hasher.update(source.path.as_bytes());
            hasher.update([0]);
            hasher.update(source.text.as_bytes());
            hasher.update([0]);
            // Expiry the source carries (the hub's) applies to every rule in it, of any kind.
            if let Some(until) = source.meta.valid_until.as_deref() {
                match parse_instant(until) {
                    Some(t) if t > now => note_expiry(t),
                    // An expiry that cannot be read is treated as passed: never run a rule
                    // whose validity cannot be established.
                    _ => {
                        report.expired.push(source.path.clone());
                        continue;
                    }
                }
            }
            if source.kind == SourceKind::Yara {
                yara_sources.push(source.clone());
                continue;
            }
            let fail = |e: foundry_sigma::SigmaError| LoadFailure {
                path: source.path.clone(),
                error: e.render(&source.path),
                unsupported: (e.code == foundry_sigma::ErrorCode::Unsupported)
                    .then(|| e.message.clone()),
            };
            let docs = match parse_documents(&source.text) {
                Ok(docs) => docs,
                Err(e) => {
                    report.failed.push(fail(e));
                    continue;
                }
            };
            let file_version = short_hash(source.text.as_bytes());
            let mut file_rules = Vec::new();
            let mut file_failed = None;
            for (i, doc) in docs.iter().enumerate() {
                match doc {
                    Document::Rule(r) => match compile_rule(r, &mut fields, &options) {
                        Ok(rule) if rule.aggregation().is_some() => {
                            // Counting across events is correlation work; firing the
                            // selection alone on every event would be a flood of false hits.
                            report.aggregations_not_evaluated.push(format!(
                                "{}: {} ('| {}'): sigma v1 aggregation, not evaluated yet",
                                source.path,
                                rule.meta.title,
                                rule.aggregation().map_or("", |a| a.text.as_str())
                            ));
                        }
                        Ok(rule) => {
                            if let Some(until) = valid_until(&rule, &source.meta) {
                                if until <= now {
                                    report
                                        .expired
                                        .push(format!("{}: {}", source.path, rule.meta.title));
                                    continue;
                                }
                                note_expiry(until);
                            }
                            for w in &rule.warnings {
                                report.warnings.push(format!(
                                    "{}:{}:{}: warning: {}",
                                    source.path, w.position.line, w.position.column, w.message
                                ));
                            }
                            let version = source.meta.version.clone().unwrap_or_else(|| {
                                if docs.len() > 1 {
                                    format!("{file_version}.{i}")
                                } else {
                                    file_version.clone()
                                }
                            });
                            let info =
                                rule_info(&rule, source, version, self.default_tlp.as_deref());
                            file_rules.push(SigmaEntry { rule, info });
                        }
                        Err(e) => {
                            file_failed = Some(fail(e));
                            break;
                        }
                    },
                    Document::Filter(f) => match compile_filter(f, &mut fields, &options) {
                        Ok(det) => filters.push((f.clone(), det)),
                        Err(e) => {
                            file_failed = Some(fail(e));
                            break;
                        }
                    },
                    Document::Correlation(c) => report.correlations_not_evaluated.push(format!(
                        "{}: {} ({}): not evaluated yet",
                        source.path, c.meta.title, c.kind
                    )),
                }
            }
            match file_failed {
                Some(f) => report.failed.push(f),
                None => rules.extend(file_rules),
            }
        }
        for (doc, det) in &filters {
            let mut applied = false;
            for entry in rules.iter_mut() {
                if filter_applies(doc, &entry.rule) {
                    entry.rule.filters.push(det.clone());
                    applied = true;
                }
            }
            if applied {
                report.filters += 1;
            } else {
                report.warnings.push(format!(
                    "filter '{}' applies to no loaded rule",
                    doc.meta.title
                ));
            }
        }
        let yara = self.compile_yara(yara_sources, &mut report);
        report.sigma_rules = rules.len();
        if self.strict && !report.failed.is_empty() {
            return Err(RuleSetError::Rejected {
                report: Box::new(report),
            });
        }
        hasher.update(format!("{:?}", self.mapping).as_bytes());
        // What expired is part of the set's identity: the same files with one rule fewer
        // are another set.
        for expired in &report.expired {
            hasher.update(expired.as_bytes());
            hasher.update([0]);
        }
        let digest = hex::encode(hasher.finalize());
        let version = match &self.hub_version {
            Some(h) => format!("{h}+{}", &digest[..12]),
            None => digest[..16].to_string(),
        };
        let mut set = RuleSet::assemble(rules, fields, &self.mapping, yara, version);
        set.next_expiry = next_expiry;
        tracing::info!(
            version = %set.version(),
            sigma_rules = report.sigma_rules,
            yara_rules = report.yara_rules,
            failed = report.failed.len(),
            "rule set compiled"
        );
        Ok((set, report))
    }
}

impl RuleSetBuilder {
    /// Compiles the YARA-X sources into one part. YARA-X compiles a set as a whole, so when
    /// some files fail and the build is lenient, those files are reported and left out and
    /// the rest compiled again, as one bad Sigma file does not stop the others either.
    fn compile_yara(
        &self,
        mut sources: Vec<RuleSource>,
        report: &mut LoadReport,
    ) -> Option<YaraPart> {
        while !sources.is_empty() {
            let failures =
                match YaraPart::compile(&sources, &self.yara_limits, self.default_tlp.as_deref()) {
                    Ok(part) => {
                        report.yara_rules = part.rule_count();
                        return Some(part);
                    }
                    Err(failures) => failures,
                };
            let before = sources.len();
            if !self.strict {
                sources.retain(|s| !failures.iter().any(|f| f.path == s.path));
            }
            report.failed.extend(failures);
            if self.strict || sources.len() == before {
                // Strict builds reject the set anyway; failures naming no source (an include
                // gone wrong) cannot be isolated, so nothing of the YARA part loads.
                return None;
            }
        }
        None
    }
}

/// The files under `dir` (recursively) whose extension is one of `exts`, in path order.
/// Hidden entries (a leading `.`) are skipped.
pub(crate) fn files_under(dir: &Path, exts: &[&str]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') {
                continue; // editors' and Kubernetes' hidden staging files
            }
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A rule file that is not UTF-8, reported at the line and column of its first bad byte.
fn not_utf8(path: &str, bytes: &[u8], e: std::str::Utf8Error) -> LoadFailure {
    let valid = String::from_utf8_lossy(&bytes[..e.valid_up_to()]);
    let line = valid.matches('\n').count() + 1;
    let column = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    LoadFailure {
        path: path.to_string(),
        error: format!(
            "{path}:{line}:{column}: error: the file is not valid utf-8 (byte {})",
            e.valid_up_to()
        ),
        unsupported: None,
    }
}

fn short_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..6])
}

fn valid_until(rule: &CompiledRule, meta: &SourceMeta) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = meta
        .valid_until
        .clone()
        .or_else(|| rule.meta.custom.get("valid_until").cloned())?;
    parse_instant(&text)
}

/// Parses an RFC 3339 instant or a `YYYY-MM-DD` / `YYYY/MM/DD` date (end of that day, UTC).
pub fn parse_instant(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text.trim()) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .or_else(|_| chrono::NaiveDate::parse_from_str(text.trim(), "%Y/%m/%d"))
        .ok()?;
    Some(d.and_hms_opt(23, 59, 59)?.and_utc())
}

/// Normalises a TLP label to `TLP:NAME` in upper case.
pub fn normalize_tlp(label: &str) -> String {
    let upper = label.trim().to_ascii_uppercase();
    if upper.starts_with("TLP:") {
        upper
    } else {
        format!("TLP:{upper}")
    }
}

/// Confidence of a rule that states none, from its level.
fn confidence_for_level(level: Option<&str>) -> u8 {
    match level {
        Some("critical") => 90,
        Some("high") => 75,
        Some("medium") => 60,
        Some("low") => 45,
        Some("informational") => 30,
        _ => 50,
    }
}

fn rule_info(
    rule: &CompiledRule,
    source: &RuleSource,
    version: String,
    default_tlp: Option<&str>,
) -> RuleInfo {
    let custom = &rule.meta.custom;
    let confidence = source
        .meta
        .confidence
        .or_else(|| {
            custom
                .get("confidence")
                .and_then(|c| c.parse::<u8>().ok())
                .map(|c| c.min(100))
        })
        .unwrap_or_else(|| confidence_for_level(rule.meta.level.as_deref()));
    let tlp = source
        .meta
        .tlp
        .clone()
        .or_else(|| custom.get("tlp").cloned())
        .or_else(|| default_tlp.map(str::to_string))
        .map(|t| normalize_tlp(&t))
        .unwrap_or_else(|| "TLP:CLEAR".to_string());
    let provenance = source
        .meta
        .provenance
        .clone()
        .unwrap_or_else(|| Provenance {
            origin: "local".into(),
            author: rule.meta.author.clone(),
            path: Some(source.path.clone()),
            ..Provenance::default()
        });
    RuleInfo {
        confidence,
        tlp,
        provenance,
        version,
    }
}
