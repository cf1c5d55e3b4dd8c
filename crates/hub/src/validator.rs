//! The one thing the hub knows about matching: whether a rule text compiles.

use crate::model::RuleKind;

/// Compiles a rule text and says whether it is acceptable.
///
/// The hub validates every write (new rule, new version, sanitized share, merged upstream
/// update) through this trait and nothing else; the `foundry` binary wires it to the engine
/// crate's compiler, so the hub never depends on how rules are matched.
pub trait RuleValidator: Send + Sync {
    /// `Ok(())` if `text` compiles as a rule of `kind`, otherwise the compiler's reason.
    fn validate(&self, kind: RuleKind, text: &str) -> Result<(), String>;
}

impl<F> RuleValidator for F
where
    F: Fn(RuleKind, &str) -> Result<(), String> + Send + Sync,
{
    fn validate(&self, kind: RuleKind, text: &str) -> Result<(), String> {
        self(kind, text)
    }
}
