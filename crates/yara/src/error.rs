//! Errors of this crate: a rule that does not compile ([`YaraCompileError`]) and a scan
//! that did not run to the end ([`ScanError`]).
//!
//! A compile error is reported like a compiler would: `path:line:col: error[E012]: message`.
//! The position and the stable code come from YARA-X's own report, so that what a rule
//! author reads here matches what `yr check` prints. YARA-X does not expose the line and
//! column of a label through accessors; it does serialize them, and that serialized form is
//! the documented JSON output of `yr check --output-format json`, so we read it from there.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::unsupported;

/// Code used for failures that happen before YARA-X sees the rule text (unreadable file).
pub const IO_ERROR_CODE: &str = "io";

/// Why a YARA source (or one of the files it includes) was rejected.
///
/// `Display` renders one line, `path:line:col: error[CODE]: message`, followed by
/// `  = note: not supported by YARA-X: ...` when the failure comes from a deliberate
/// difference between YARA-X and YARA 4 (see [`YaraCompileError::unsupported`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct YaraCompileError {
    /// File the error points at: the included file when the fault is inside an include.
    pub path: PathBuf,
    /// 1-based line of the fault, when YARA-X located it.
    pub line: Option<u32>,
    /// 1-based column of the fault, when YARA-X located it.
    pub column: Option<u32>,
    /// YARA-X's stable error code (`E001` syntax error, `E010` unknown module, `E012`
    /// duplicate rule, `E014` invalid regular expression ...), or [`IO_ERROR_CODE`].
    pub code: &'static str,
    /// One-line description: YARA-X's title and, when it adds something, its label.
    pub message: String,
    /// Set when the rule uses something YARA-X deliberately lacks or rejects although YARA 4
    /// accepted it: a module that YARA-X does not ship (`androguard`), an unescaped `{` or an
    /// unknown escape in a regular expression, a base64 pattern under 3 bytes... The text
    /// names the difference (the message names the module or pattern); callers count these
    /// apart from plain mistakes.
    pub unsupported: Option<&'static str>,
    /// YARA-X's full report with the source snippet and the caret under the span, for
    /// humans. Empty for I/O errors.
    pub report: String,
}

impl YaraCompileError {
    /// Builds an error for a file that could not be read.
    pub fn io(path: &Path, err: &std::io::Error) -> Self {
        Self {
            path: path.to_path_buf(),
            line: None,
            column: None,
            code: IO_ERROR_CODE,
            message: format!("cannot read rule file: {err}"),
            unsupported: None,
            report: String::new(),
        }
    }

    /// Converts one of YARA-X's errors. `fallback_path` is used when the error carries no
    /// origin (it always does for sources added by this crate).
    pub(crate) fn from_yara_x(err: &yara_x::errors::CompileError, fallback_path: &Path) -> Self {
        let title = err.title().to_string();
        let labels: Vec<LabelInfo> = err.labels().filter_map(|l| label_info(&l)).collect();
        let footers: Vec<String> = err.footers().filter_map(|f| footer_text(&f)).collect();
        // The primary label is the one at error level; notes point at related places
        // (where a duplicate rule was first declared, for instance).
        let primary = labels
            .iter()
            .find(|l| l.level == "error")
            .or_else(|| labels.first());
        let mut message = title.clone();
        if let Some(label) = primary {
            if !label.text.is_empty() && label.text != title {
                message = format!("{title}: {}", label.text);
            }
        }
        let code = err.code();
        let unsupported = unsupported::classify(code, &title, &labels, &footers);
        Self {
            path: primary
                .and_then(|l| l.origin.clone())
                .map(PathBuf::from)
                .unwrap_or_else(|| fallback_path.to_path_buf()),
            line: primary.map(|l| l.line),
            column: primary.map(|l| l.column),
            code,
            message,
            unsupported,
            report: err.to_string(),
        }
    }
}

impl fmt::Display for YaraCompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": error[{}]: {}", self.code, self.message)?;
        if let Some(why) = &self.unsupported {
            write!(f, "\n  = note: not supported by YARA-X: {why}")?;
        }
        Ok(())
    }
}

/// What the crate needs from a YARA-X report label.
#[derive(Debug, Clone)]
pub(crate) struct LabelInfo {
    pub(crate) level: String,
    pub(crate) origin: Option<String>,
    pub(crate) line: u32,
    pub(crate) column: u32,
    pub(crate) text: String,
}

/// Reads a YARA-X report label through its serialized form.
///
/// YARA-X's `Label` type is not nameable from outside the crate and keeps `line`/`column`
/// private, but it serializes them (that is what `yr check --output-format json` prints).
/// A missing field would mean YARA-X changed that format; the error is then reported
/// without a position rather than dropped.
fn label_info<L: Serialize>(label: &L) -> Option<LabelInfo> {
    let value = serde_json::to_value(label).ok()?;
    let text = |key: &str| {
        value
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    let number = |key: &str| value.get(key).and_then(serde_json::Value::as_u64);
    Some(LabelInfo {
        level: text("level")?,
        origin: text("code_origin"),
        line: u32::try_from(number("line")?).ok()?,
        column: u32::try_from(number("column")?).ok()?,
        text: text("text").unwrap_or_default(),
    })
}

fn footer_text<F: Serialize>(footer: &F) -> Option<String> {
    let value = serde_json::to_value(footer).ok()?;
    Some(value.get("text")?.as_str()?.to_string())
}

/// Why a payload was not scanned to the end. Callers count each kind apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScanError {
    /// The scan ran past [`crate::ScanLimits::timeout`] and was aborted; no hit is reported.
    #[error("scan timed out")]
    Timeout,
    /// The payload is larger than [`crate::ScanLimits::max_payload_bytes`]; it was not scanned.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Payload size in bytes.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Any other failure reported by YARA-X (a module that failed to parse its input ...).
    #[error("scan failed: {0}")]
    Other(String),
}
