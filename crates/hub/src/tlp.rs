//! TLP 2.0 handling: who may see a community rule, what may be shared, and the rule that a
//! label never gets weaker on import.
//!
//! These functions are the single place where the handling rules are decided; the API calls
//! them for every community read, and the isolation property test exercises them through it.

use crate::model::{Origin, Tlp};
use crate::store::community::SharedRow;

/// Whether tenant `viewer` (opted in or not) may see community rule `shared`.
///
/// The owner always sees its own. Anyone else needs: the rule not withdrawn, the owner still
/// opted in, and the label allowing it — CLEAR to every tenant, GREEN to opted-in tenants,
/// AMBER to named recipients only, AMBER+STRICT and RED to nobody.
pub fn may_see(
    shared: &SharedRow,
    recipients: &[String],
    viewer: &str,
    viewer_opted_in: bool,
) -> bool {
    if shared.owner_tenant_id == viewer {
        return true;
    }
    if shared.revoked != 0 || shared.owner_opt_in == 0 {
        return false;
    }
    match shared.tlp() {
        Tlp::Clear => true,
        Tlp::Green => viewer_opted_in,
        Tlp::Amber => recipients.iter().any(|r| r == viewer),
        Tlp::AmberStrict | Tlp::Red => false,
    }
}

/// Why a rule with this label and origin may not be shared, or `Ok` if it may.
///
/// `source_tlp` is the label of the community rule an imported copy came from.
pub fn check_shareable(tlp: Tlp, origin: Origin, source_tlp: Option<Tlp>) -> Result<(), String> {
    match tlp {
        Tlp::Red | Tlp::AmberStrict => {
            return Err(format!(
                "{tlp} rules never leave their tenant; relabel the rule (new version) if it may \
                 be shared"
            ))
        }
        _ => {}
    }
    if origin == Origin::Community {
        if let Some(src) = source_tlp {
            if src.strictness() >= Tlp::Amber.strictness() {
                return Err(format!(
                    "this rule was imported under {src}; recipients of AMBER rules may not \
                     share them on"
                ));
            }
        }
    }
    Ok(())
}

/// The label an imported copy (or a new version of one) must carry at least.
pub fn check_not_weaker(requested: Tlp, floor: Option<Tlp>) -> Result<(), String> {
    match floor {
        Some(floor) if requested.strictness() < floor.strictness() => Err(format!(
            "label {requested} is weaker than {floor} of the community source; an imported \
             rule keeps at least its source's label"
        )),
        _ => Ok(()),
    }
}
