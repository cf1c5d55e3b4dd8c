//! Compiling YARA sources into a [`YaraRuleSet`], and checking one file for
//! `foundry rules check`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::error::YaraCompileError;

/// External variables that rule sets in the wild read (signature-base's THOR rules use
/// them). They are defined as empty strings so that such rules compile; a condition like
/// `filename == "x.exe"` is then simply false on a payload, which has no file name.
///
/// TODO: Set `filename` and `extension` per scan from the payload's field or attachment
/// name once the engine passes one, so that rules keyed on file names can fire.
pub const EXTERNAL_VARIABLES: &[&str] = &["filename", "filepath", "extension", "filetype", "owner"];

/// One YARA rule file to compile: where it comes from, its text and its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YaraSource {
    /// Path of the file. Shown in errors and used to resolve its `include` directives; it
    /// need not exist when the text has none (rules stored by the hub, for instance).
    pub path: PathBuf,
    /// The rule text.
    pub text: String,
    /// Namespace of the file's rules. `None` derives it from the file stem (see
    /// [`YaraSource::namespace`]).
    pub namespace: Option<String>,
}

impl YaraSource {
    /// A source with the namespace derived from its path.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
            namespace: None,
        }
    }

    /// Reads a rule file from disk.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, YaraCompileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| YaraCompileError::io(path, &e))?;
        Ok(Self::new(path, text))
    }

    /// Sets an explicit namespace.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The namespace the rules of this source go to: the explicit one, else the file stem
    /// (`rules/yara/eicar.yar` -> `eicar`), else `default`.
    ///
    /// Each file getting its own namespace is what lets two files each declare a private
    /// helper rule with the same name (YARA-X error E012 otherwise).
    pub fn namespace(&self) -> String {
        self.namespace.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "default".to_string())
        })
    }
}

/// Compiled YARA-X rules, ready to scan payloads.
///
/// Cheap to clone and `Send + Sync`: the compiled rules sit behind an `Arc` and are shared
/// by every thread. Scanning needs a `yara_x::Scanner`, which is neither `Send` nor cheap to
/// build (it instantiates the rules' WebAssembly module), so each thread keeps one in a
/// small thread-local cache; see [`YaraRuleSet::scan`](crate::YaraRuleSet::scan).
#[derive(Clone)]
pub struct YaraRuleSet {
    pub(crate) rules: Arc<yara_x::Rules>,
    rule_count: usize,
    namespaces: Vec<String>,
}

impl std::fmt::Debug for YaraRuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YaraRuleSet")
            .field("rule_count", &self.rule_count)
            .field("namespaces", &self.namespaces)
            .finish_non_exhaustive()
    }
}

impl YaraRuleSet {
    /// Compiles every source into one rule set.
    ///
    /// All or nothing: if any rule of any source fails, every error is returned (YARA-X
    /// keeps going after an error, so one call reports them all) and no rule set is built,
    /// because a rule set that fails to load must never replace the running one.
    ///
    /// Each source gets its own namespace ([`YaraSource::namespace`]). When two sources
    /// would derive the same namespace from their file stems (`a/x.yar`, `b/x.yar`), the
    /// later ones get `x_2`, `x_3`... so that they do not collide; an explicit namespace is
    /// used as given, letting callers put several files in one namespace on purpose.
    ///
    /// `include` directives resolve relative to the including file (YARA-X does this for
    /// nested includes, and the directory of each top-level source is added to the include
    /// path for the others).
    ///
    /// TODO: YARA-X's include path is shared by the whole compilation, so a top-level file
    /// could pick up an include from another source's directory when its own directory
    /// lacks the file; compiling each directory in its own compiler and merging is not
    /// possible with YARA-X 1.22, so callers that need exactness compile one file per set.
    pub fn compile(sources: &[YaraSource]) -> Result<Self, Vec<YaraCompileError>> {
        let mut compiler = new_compiler();
        let mut include_dirs: Vec<PathBuf> = Vec::new();
        for source in sources {
            let dir = source.path.parent().filter(|d| !d.as_os_str().is_empty());
            let dir = dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            if !include_dirs.contains(&dir) {
                compiler.add_include_dir(&dir);
                include_dirs.push(dir);
            }
        }

        let mut used: HashSet<String> = HashSet::new();
        let mut namespaces = Vec::with_capacity(sources.len());
        let mut origins = Vec::with_capacity(sources.len());
        for source in sources {
            let namespace = match &source.namespace {
                Some(explicit) => explicit.clone(),
                None => unique_namespace(&source.namespace(), &used),
            };
            used.insert(namespace.clone());
            compiler.new_namespace(&namespace);
            let origin = source.path.to_string_lossy().into_owned();
            let code = yara_x::SourceCode::from(source.text.as_str()).with_origin(origin);
            // Errors are collected by the compiler; the returned one is only the first.
            let _ = compiler.add_source(code);
            namespaces.push(namespace);
            origins.push(source.path.clone());
        }

        let fallback = origins.first().cloned().unwrap_or_default();
        let mut errors: Vec<YaraCompileError> = compiler
            .errors()
            .iter()
            .map(|e| YaraCompileError::from_yara_x(e, &fallback))
            .collect();
        if !errors.is_empty() {
            crate::unsupported::mark_missing_module_uses(&mut errors);
            tracing::debug!(
                sources = sources.len(),
                errors = errors.len(),
                "yara compile failed"
            );
            return Err(errors);
        }
        let warnings = compiler.warnings().len();
        let rules = compiler.build();
        let rule_count = rules.iter().len();
        tracing::info!(
            sources = sources.len(),
            rules = rule_count,
            warnings,
            "yara rules compiled"
        );
        namespaces.dedup();
        Ok(Self {
            rules: Arc::new(rules),
            rule_count,
            namespaces,
        })
    }

    /// Number of compiled rules, private ones included.
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// Namespaces in the order their sources were given.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }
}

/// Result of checking one rule file that compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CheckOk {
    /// Number of rules the file compiled to, private ones and included files' rules counted.
    pub rules: usize,
}

/// Reads and compiles one rule file on its own, for `foundry rules check`.
///
/// The file gets the same treatment as in [`YaraRuleSet::compile`]: its own namespace, the
/// [`EXTERNAL_VARIABLES`], includes relative to the file. On failure the first error is
/// returned (YARA-X reports them in source order); use [`YaraRuleSet::compile`] to get all.
pub fn check_file(path: impl AsRef<Path>) -> Result<CheckOk, YaraCompileError> {
    let source = YaraSource::read(path)?;
    match YaraRuleSet::compile(std::slice::from_ref(&source)) {
        Ok(set) => Ok(CheckOk {
            rules: set.rule_count(),
        }),
        Err(mut errors) => Err(errors.swap_remove(0)),
    }
}

fn new_compiler<'a>() -> yara_x::Compiler<'a> {
    let mut compiler = yara_x::Compiler::new();
    for name in EXTERNAL_VARIABLES {
        // A fresh compiler has no globals and these names are valid identifiers, so this
        // cannot fail; if YARA-X ever refused one, rules using it would report E009.
        if let Err(err) = compiler.define_global(name, "") {
            tracing::warn!(variable = name, %err, "cannot define yara external variable");
        }
    }
    compiler
}

fn unique_namespace(base: &str, used: &HashSet<String>) -> String {
    if !used.contains(base) {
        return base.to_string();
    }
    let mut n = 2;
    loop {
        let candidate = format!("{base}_{n}");
        if !used.contains(&candidate) {
            tracing::debug!(namespace = %candidate, "namespace taken by another file, renamed");
            return candidate;
        }
        n += 1;
    }
}
