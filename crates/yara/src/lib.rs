//! YARA-X for Threat Foundry: compile YARA rules, pull payloads out of events, scan them
//! under limits.
//!
//! The pieces, in the order the engine uses them:
//!
//! - [`YaraSource`] is one rule file (path, text, namespace). [`YaraRuleSet::compile`] turns
//!   a list of them into a [`YaraRuleSet`], all or nothing, or returns every
//!   [`YaraCompileError`] (rendered like a compiler: `path:line:col: error[E012]: ...`, with
//!   [`YaraCompileError::unsupported`] set when YARA-X deliberately lacks what the rule
//!   needs). [`check_file`] does the same for one file, for `foundry rules check`.
//! - [`PayloadSpec`] (`attachments[].content_b64`, `ScriptBlockText:text`) says where an
//!   event carries payloads; [`extract_payloads`] yields the [`Payload`]s of one event and a
//!   [`PayloadProblem`] for each field it could not decode, without ever failing the event.
//! - [`YaraRuleSet::scan`] scans one payload under [`ScanLimits`] (time, size) and returns
//!   [`YaraHit`]s, or a [`ScanError`] the caller counts (`Timeout`, `TooLarge`, `Other`).
//!
//! Sharing: a [`YaraRuleSet`] is an `Arc` over YARA-X's compiled rules, `Send + Sync` and
//! cheap to clone, so one set serves every worker thread. The per-scan state (a
//! `yara_x::Scanner`) is not shareable; each thread keeps its own in a small thread-local cache
//! (see [`YaraRuleSet::scan`]).
//!
//! This crate knows nothing of Kafka, Sigma or hit formatting: the engine wraps a
//! [`YaraHit`] into the product's hit (`rule.id` = `namespace:identifier`).

#![warn(missing_docs)]

mod compile;
mod error;
mod payload;
mod scan;
mod unsupported;

pub use compile::{check_file, CheckOk, YaraRuleSet, YaraSource, EXTERNAL_VARIABLES};
pub use error::{ScanError, YaraCompileError, IO_ERROR_CODE};
pub use payload::{
    extract_payloads, Payload, PayloadEncoding, PayloadProblem, PayloadProblemKind, PayloadSpec,
    PayloadSpecError,
};
pub use scan::{MatchedString, ScanLimits, YaraHit};
