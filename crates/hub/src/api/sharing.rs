//! Sharing: opt-in settings, sanitized preview, publication, withdrawal.
//!
//! Withdrawal (an engineer unsharing, a label that forbids sharing, a revoked or deprecated
//! rule, or the admin withdrawing the opt-in) revokes the community rule and every tenant's
//! local copy of it, so nothing withdrawn stays deployable anywhere.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::AnyConnection;

use super::rules::render;
use super::{own_rule, AppState, Body, Caller};
use crate::diff::unified;
use crate::error::{ApiError, ApiResult};
use crate::model::{AttributionMode, Role, RuleStatus, Tlp};
use crate::sanitize::{SanitizeProfile, Sanitized, Sanitizer};
use crate::store::community::{self, SharedRow};
use crate::store::rules::{self as rule_store, RuleRow};
use crate::store::tenants::{self, bump_generation, TenantRow};

/// Builds the sanitizer of a tenant from its stored profile and its own ids.
pub(crate) fn sanitizer_for(tenant: &TenantRow) -> ApiResult<Sanitizer> {
    let profile: SanitizeProfile = serde_json::from_str(&tenant.profile).unwrap_or_default();
    let ids = vec![tenant.id.clone(), tenant.name.clone()];
    Sanitizer::new(&profile, &ids).map_err(|m| {
        ApiError::conflict(
            "profile_invalid",
            format!("the tenant's sanitization profile: {m}"),
        )
    })
}

/// Revokes community rule `shared_id` and every local copy of it; returns affected tenants.
pub(crate) async fn withdraw_shared(
    conn: &mut AnyConnection,
    shared_id: &str,
    actor: &str,
) -> Result<(), sqlx::Error> {
    community::revoke(&mut *conn, shared_id).await?;
    for copy in rule_store::copies_of(&mut *conn, shared_id).await? {
        if copy.status() == RuleStatus::Revoked {
            continue;
        }
        rule_store::set_status(&mut *conn, &copy.id, RuleStatus::Revoked).await?;
        sqlx::query("UPDATE pending_updates SET state = 'superseded' WHERE rule_id = $1 AND state = 'pending'")
            .bind(&copy.id)
            .execute(&mut *conn)
            .await?;
        rule_store::audit(
            &mut *conn,
            &copy.tenant_id,
            Some(&copy.id),
            "hub",
            "status.revoked.upstream_withdrawn",
            Some(copy.current_version),
            None,
            &format!(
                "-status: {}\n+status: revoked\n# the community source was withdrawn\n",
                copy.status
            ),
        )
        .await?;
        bump_generation(&mut *conn, &copy.tenant_id).await?;
    }
    tracing::info!(shared = shared_id, actor, "community rule withdrawn");
    Ok(())
}

/// Body of `PUT /v1/tenants/{tenant}/settings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    sharing_opt_in: bool,
    attribution: Option<AttributionMode>,
}

/// `PUT /v1/tenants/{tenant}/settings` (admin): opt in or out; out withdraws every share.
pub async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    Body(settings): Body<Settings>,
) -> ApiResult<Json<Value>> {
    caller.own_tenant(&tenant)?;
    caller.require(&[Role::Admin], "changing tenant settings")?;
    let actor = caller.actor();
    let mut w = state.store.begin_write().await?;
    let row = tenants::tenant_in(&mut w.tx, &tenant)
        .await?
        .ok_or_else(|| ApiError::tenant_not_found(&tenant))?;
    let attribution = settings.attribution.unwrap_or(
        row.attribution
            .parse()
            .unwrap_or(AttributionMode::Pseudonym),
    );
    tenants::set_settings(&mut w.tx, &tenant, settings.sharing_opt_in, attribution).await?;
    if row.opted_in() && !settings.sharing_opt_in {
        for shared in community::live_shared_of_owner(&mut w.tx, &tenant).await? {
            withdraw_shared(&mut w.tx, &shared.id, &actor).await?;
        }
    }
    let diff =
        format!(
        "-sharing_opt_in: {}\n+sharing_opt_in: {}\n-attribution: {}\n+attribution: {attribution}\n",
        row.opted_in(), settings.sharing_opt_in, row.attribution
    );
    rule_store::audit(
        &mut w.tx,
        &tenant,
        None,
        &actor,
        "tenant.settings",
        None,
        None,
        &diff,
    )
    .await?;
    w.commit().await?;
    state.notify_change();
    Ok(Json(
        json!({"tenant": tenant, "sharing_opt_in": settings.sharing_opt_in,
                   "attribution": attribution}),
    ))
}

/// Body of `POST /v1/rules/{id}/share`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    #[serde(default)]
    recipients: Vec<String>,
}

fn replacement_counts(s: &Sanitized) -> BTreeMap<String, usize> {
    s.report
        .counts
        .iter()
        .map(|(class, n)| {
            (
                serde_json::to_value(class)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                *n,
            )
        })
        .collect()
}

struct Prepared {
    rule: RuleRow,
    version: i64,
    sanitized: Sanitized,
    diff: String,
    compile_error: Option<String>,
}

async fn prepare(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Prepared> {
    caller.require(&[Role::Engineer], "sharing rules")?;
    let rule = own_rule(state, caller, id).await?;
    let tenant = state
        .store
        .tenant(caller.tenant())
        .await?
        .ok_or_else(|| ApiError::tenant_not_found(caller.tenant()))?;
    let v = rule_store::version(state.store.pool(), &rule.id, rule.current_version)
        .await?
        .ok_or_else(|| ApiError::rule_not_found(id))?;
    let meta = v.meta();
    let sanitizer = sanitizer_for(&tenant)?;
    let sanitized = sanitizer.rule(rule.kind(), &v.text, &meta).map_err(|m| {
        ApiError::unprocessable("sanitize_failed", format!("cannot sanitize this rule: {m}"))
    })?;
    let compile_error = state.validator.validate(rule.kind(), &sanitized.text).err();
    let diff = unified(
        &render(&v.text, &meta),
        &render(&sanitized.text, &sanitized.meta),
        &format!("{id}@{} (yours)", v.version),
        "community (sanitized)",
    );
    Ok(Prepared {
        rule,
        version: v.version,
        sanitized,
        diff,
        compile_error,
    })
}

/// `POST /v1/rules/{id}/share/preview`: what would be published, and whether it compiles.
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let p = prepare(&state, &caller, &id).await?;
    let shareable =
        crate::tlp::check_shareable(p.sanitized.meta.tlp, p.rule.origin(), p.rule.source_tlp());
    Ok(Json(json!({
        "rule_id": p.rule.id, "version": p.version,
        "compiles": p.compile_error.is_none(), "compile_error": p.compile_error,
        "shareable": shareable.is_ok(), "not_shareable_reason": shareable.err(),
        "replacements": replacement_counts(&p.sanitized),
        "diff": p.diff,
        "sanitized": {"text": p.sanitized.text, "title": p.sanitized.meta.title,
            "description": p.sanitized.meta.description, "author": p.sanitized.meta.author,
            "source": p.sanitized.meta.source, "references": p.sanitized.meta.references},
    })))
}

/// `POST /v1/rules/{id}/share`: publish (or republish) the sanitized current version.
pub async fn share(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<ShareRequest>,
) -> ApiResult<Json<Value>> {
    let p = prepare(&state, &caller, &id).await?;
    let tenant = state
        .store
        .tenant(caller.tenant())
        .await?
        .ok_or_else(|| ApiError::tenant_not_found(caller.tenant()))?;
    if !tenant.opted_in() {
        return Err(ApiError::conflict(
            "sharing_disabled",
            format!(
                "community sharing is off for tenant '{}'; an admin must PUT \
             /v1/tenants/{}/settings with sharing_opt_in: true first",
                tenant.id, tenant.id
            ),
        ));
    }
    if matches!(
        p.rule.status(),
        RuleStatus::Revoked | RuleStatus::Deprecated
    ) {
        return Err(ApiError::conflict(
            "rule_retired",
            format!("a {} rule cannot be shared", p.rule.status()),
        ));
    }
    let meta = &p.sanitized.meta;
    crate::tlp::check_shareable(meta.tlp, p.rule.origin(), p.rule.source_tlp())
        .map_err(|m| ApiError::conflict("tlp_forbids_sharing", m))?;
    let mut recipients = req.recipients.clone();
    recipients.sort();
    recipients.dedup();
    if meta.tlp == Tlp::Amber {
        if recipients.is_empty() {
            return Err(ApiError::bad_request(
                "a TLP:AMBER rule goes only to named tenants; list them in 'recipients'",
            ));
        }
        for r in &recipients {
            if r == caller.tenant() || state.store.tenant(r).await?.is_none() {
                return Err(ApiError::bad_request(format!(
                    "recipient '{r}' is not another tenant of this hub; check the tenant id"
                )));
            }
        }
    } else if !recipients.is_empty() {
        return Err(ApiError::bad_request(format!(
            "recipients apply to TLP:AMBER only; this rule is {}",
            meta.tlp
        )));
    }
    if let Some(reason) = &p.compile_error {
        return Err(ApiError::unprocessable(
            "sanitized_rule_invalid",
            format!(
                "after sanitization the rule no longer compiles: {reason}; see the preview \
             (POST /v1/rules/{id}/share/preview) and rewrite the values the sanitizer replaced"
            ),
        ));
    }
    let actor = caller.actor();
    let hash = rule_store::version_hash(p.rule.kind(), &p.sanitized.text, meta);
    let mut w = state.store.begin_write().await?;
    let existing: Option<SharedRow> = match &p.rule.shared_id {
        Some(sid) => community::shared_in(&mut w.tx, sid).await?,
        None => None,
    };
    let (sid, version) = community::publish(
        &mut w.tx,
        existing.as_ref(),
        caller.tenant(),
        &p.rule.id,
        p.version,
        p.rule.kind(),
        &p.sanitized.text,
        &hash,
        meta,
        &recipients,
    )
    .await?;
    let mut linked = p.rule.clone();
    linked.shared_id = Some(sid.clone());
    rule_store::set_links(&mut w.tx, &linked).await?;
    if existing.is_some() {
        // Importers get the new version as a pending change, never as an overwrite — and
        // only those who may see the new publication (an AMBER recipient dropped from the
        // list, or a tenant no longer opted in for GREEN, keeps its copy but gets nothing new).
        let published = community::shared_in(&mut w.tx, &sid)
            .await?
            .expect("community rule just published");
        for copy in rule_store::copies_of(&mut w.tx, &sid).await? {
            if copy.status() == RuleStatus::Revoked {
                continue;
            }
            let viewer_opt_in = tenants::tenant_in(&mut w.tx, &copy.tenant_id)
                .await?
                .is_some_and(|t| t.opted_in());
            if !crate::tlp::may_see(&published, &recipients, &copy.tenant_id, viewer_opt_in) {
                continue;
            }
            community::offer_update(
                &mut w.tx,
                &copy.id,
                &copy.tenant_id,
                &sid,
                version,
                &p.sanitized.text,
                meta,
            )
            .await?;
            rule_store::audit(
                &mut w.tx,
                &copy.tenant_id,
                Some(&copy.id),
                "hub",
                "update.offered",
                Some(copy.current_version),
                None,
                &format!("# community version {version} is waiting for review\n"),
            )
            .await?;
        }
    }
    rule_store::audit(
        &mut w.tx,
        caller.tenant(),
        Some(&p.rule.id),
        &actor,
        "share.published",
        Some(p.version),
        Some(&hash),
        &p.diff,
    )
    .await?;
    w.commit().await?;
    state.notify_change();
    tracing::info!(tenant = caller.tenant(), rule = %p.rule.id, shared = %sid, version,
        tlp = %meta.tlp, "rule shared");
    Ok(Json(
        json!({"rule_id": p.rule.id, "community_id": sid, "version": version,
                   "tlp": meta.tlp, "recipients": recipients,
                   "replacements": replacement_counts(&p.sanitized)}),
    ))
}

/// `DELETE /v1/rules/{id}/share`: withdraw from the community (and every importer).
pub async fn unshare(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(
        &[Role::Engineer, Role::Reviewer],
        "withdrawing shared rules",
    )?;
    let rule = own_rule(&state, &caller, &id).await?;
    let Some(sid) = rule.shared_id.clone() else {
        return Err(ApiError::conflict("not_shared", "this rule is not shared"));
    };
    let actor = caller.actor();
    let mut w = state.store.begin_write().await?;
    withdraw_shared(&mut w.tx, &sid, &actor).await?;
    rule_store::audit(
        &mut w.tx,
        caller.tenant(),
        Some(&rule.id),
        &actor,
        "share.withdrawn",
        Some(rule.current_version),
        None,
        "",
    )
    .await?;
    w.commit().await?;
    state.notify_change();
    Ok(Json(
        json!({"rule_id": rule.id, "community_id": sid, "revoked": true}),
    ))
}
