//! Tells a rule author's mistake apart from a rule that YARA 4 accepts but YARA-X rejects
//! on purpose.
//!
//! The differences come from YARA-X's "Differences with YARA" page and from the modules it
//! ships. Classification reads the error code plus the title, labels and notes of YARA-X's
//! report; those texts are not a stable API, so each check is pinned by a test in
//! `tests/compile.rs` and an unknown text simply yields `None` (a plain error).

use crate::error::LabelInfo;
use crate::YaraCompileError;

/// Modules that exist for YARA 4 (built in or as a widely used plugin). When one of them is
/// unknown to the YARA-X build in use, the rule needs a feature YARA-X does not provide.
/// `androguard` was a third-party YARA 4 module that YARA-X never had; the others are
/// listed because a YARA-X build may leave them out.
const YARA4_MODULES: &[&str] = &[
    "androguard",
    "console",
    "cuckoo",
    "dex",
    "dotnet",
    "elf",
    "hash",
    "lnk",
    "macho",
    "magic",
    "math",
    "pe",
    "string",
    "time",
    "vt",
];

/// Returns a short explanation when the error comes from a deliberate YARA-X difference.
pub(crate) fn classify(
    code: &str,
    title: &str,
    labels: &[LabelInfo],
    footers: &[String],
) -> Option<&'static str> {
    let notes = || {
        labels
            .iter()
            .map(|l| l.text.as_str())
            .chain(footers.iter().map(String::as_str))
    };
    match code {
        // E010: unknown module `name`.
        "E010" => {
            let module = between_backticks(title)?;
            YARA4_MODULES
                .contains(&module)
                .then_some("the module exists for YARA 4 but not in this YARA-X build")
        }
        // E014: invalid regular expression. YARA-X's note suggests the escaped form.
        "E014" => {
            if notes().any(|n| n.contains("did you mean `\\{`")) {
                Some(
                    "`{` outside a repetition must be escaped as `\\{` in YARA-X regular \
                     expressions (YARA 4 read it as a literal)",
                )
            } else if notes().any(|n| n.contains("did you mean `\\")) {
                Some(
                    "YARA-X rejects unknown escape sequences in regular expressions \
                     (YARA 4 dropped the backslash)",
                )
            } else {
                None
            }
        }
        _ => {
            let base64_too_short =
                notes().any(|n| n.contains("base64") && n.contains("at least 3"));
            base64_too_short.then_some(
                "base64 patterns need at least 3 bytes in YARA-X (YARA 4 allowed shorter ones)",
            )
        }
    }
}

/// Marks the follow-on errors of a missing module as unsupported too.
///
/// A rule that imports `androguard` gets E010 at the import and then E009 ("unknown
/// identifier `androguard`") wherever it uses the module. The E009 alone cannot tell a
/// missing module from a forgotten import, so it is marked only when the same compilation
/// reported the module itself as unsupported.
pub(crate) fn mark_missing_module_uses(errors: &mut [YaraCompileError]) {
    let missing: Vec<String> = errors
        .iter()
        .filter(|e| e.code == "E010" && e.unsupported.is_some())
        .filter_map(|e| between_backticks(&e.message).map(str::to_string))
        .collect();
    if missing.is_empty() {
        return;
    }
    for error in errors
        .iter_mut()
        .filter(|e| e.code == "E009" && e.unsupported.is_none())
    {
        if between_backticks(&error.message).is_some_and(|id| missing.iter().any(|m| m == id)) {
            error.unsupported = Some("uses a module that exists for YARA 4 but not in YARA-X");
        }
    }
}

fn between_backticks(text: &str) -> Option<&str> {
    let start = text.find('`')? + 1;
    let len = text[start..].find('`')?;
    Some(&text[start..start + len])
}
