//! The hub's vocabulary: rule kinds, TLP labels, review states, roles, origins and verdicts.
//!
//! Every enum here is stored in the database as the same lower-case string that appears in
//! JSON, so a row read back with [`std::str::FromStr`] round-trips exactly.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// The stable text form used in JSON and in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} '{}'; expected one of: {}",
                        stringify!($name), other, [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// The language a rule is written in.
    RuleKind {
        /// A Sigma rule (YAML).
        Sigma => "sigma",
        /// A YARA-X rule (YARA source text).
        Yara => "yara",
    }
);

string_enum!(
    /// A Traffic Light Protocol 2.0 handling label.
    Tlp {
        /// TLP:CLEAR — may go to every tenant.
        Clear => "TLP:CLEAR",
        /// TLP:GREEN — may go to opted-in community members.
        Green => "TLP:GREEN",
        /// TLP:AMBER — only to named recipient tenants, who may not share it on.
        Amber => "TLP:AMBER",
        /// TLP:AMBER+STRICT — never leaves the tenant.
        AmberStrict => "TLP:AMBER+STRICT",
        /// TLP:RED — never leaves the tenant.
        Red => "TLP:RED",
    }
);

impl Tlp {
    /// Rank from least (0, CLEAR) to most restrictive (4, RED); "weaker" means a lower rank.
    pub fn strictness(self) -> u8 {
        match self {
            Tlp::Clear => 0,
            Tlp::Green => 1,
            Tlp::Amber => 2,
            Tlp::AmberStrict => 3,
            Tlp::Red => 4,
        }
    }

    /// The stricter of two labels.
    pub fn stricter(self, other: Tlp) -> Tlp {
        if other.strictness() > self.strictness() {
            other
        } else {
            self
        }
    }

    /// Accepts `TLP:GREEN`, `GREEN`, `green`, `amber+strict` … and returns the canonical label.
    pub fn parse_lenient(s: &str) -> Result<Tlp, String> {
        let upper = s.trim().to_ascii_uppercase();
        let full = if upper.starts_with("TLP:") {
            upper
        } else {
            format!("TLP:{upper}")
        };
        full.parse()
    }
}

string_enum!(
    /// Where a rule is in its review life cycle.
    RuleStatus {
        /// Being written; never deployed.
        Draft => "draft",
        /// Waiting for a reviewer; imported rules start here.
        Proposed => "proposed",
        /// Approved by a reviewer of the owning tenant; deployable.
        Approved => "approved",
        /// Marked as running on the tenant's workers; deployable.
        Deployed => "deployed",
        /// Retired by the tenant; not deployable.
        Deprecated => "deprecated",
        /// Withdrawn (by a reviewer, or because its community source was withdrawn).
        Revoked => "revoked",
    }
);

impl RuleStatus {
    /// Whether a rule in this state belongs in the deployable set (expiry is checked apart).
    pub fn is_deployable(self) -> bool {
        matches!(self, RuleStatus::Approved | RuleStatus::Deployed)
    }
}

string_enum!(
    /// What a user may do inside their tenant.
    Role {
        /// Writes rules, shares and imports them.
        Engineer => "engineer",
        /// Approves, rejects and revokes rules; reviews upstream updates.
        Reviewer => "reviewer",
        /// Tenant settings, sanitization profile and users; may also do everything else.
        Admin => "admin",
        /// Reads rules and the deployable set, posts verdicts (workers and analysts).
        Reader => "reader",
    }
);

string_enum!(
    /// Where a rule came from.
    Origin {
        /// Written in this tenant.
        Local => "local",
        /// Imported from the community.
        Community => "community",
    }
);

string_enum!(
    /// An analyst's verdict on a hit.
    Verdict {
        /// The hit was a real detection of what the rule is about.
        TruePositive => "true_positive",
        /// The hit should not have fired.
        FalsePositive => "false_positive",
        /// The rule fired as written, but on activity that is allowed here.
        Benign => "benign",
    }
);

string_enum!(
    /// How a sharing tenant is named on its community rules.
    AttributionMode {
        /// The tenant's display name.
        Name => "name",
        /// A stable pseudonym generated when the tenant was created.
        Pseudonym => "pseudonym",
    }
);

/// Checks whether `role` may move a rule from `from` to `to`; the error says why not.
pub fn check_transition(from: RuleStatus, to: RuleStatus, role: Role) -> Result<(), String> {
    use RuleStatus::*;
    let is = |r: Role| role == r || role == Role::Admin;
    let allowed = match (from, to) {
        (Draft, Proposed) => is(Role::Engineer),
        (Proposed, Draft) => is(Role::Engineer) || is(Role::Reviewer),
        (Proposed, Approved) => is(Role::Reviewer),
        (Approved, Deployed) => is(Role::Reviewer) || is(Role::Engineer),
        (Draft | Proposed | Approved | Deployed, Deprecated) => {
            is(Role::Reviewer) || is(Role::Engineer)
        }
        (Draft | Proposed | Approved | Deployed | Deprecated, Revoked) => is(Role::Reviewer),
        _ => {
            return Err(format!(
                "a rule cannot go from '{from}' to '{to}'; allowed: draft→proposed, \
                 proposed→approved|draft, approved→deployed, any→deprecated|revoked"
            ))
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "role '{role}' may not move a rule from '{from}' to '{to}'"
        ))
    }
}
