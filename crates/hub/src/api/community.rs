//! Community catalogue, imports and pending upstream updates.
//!
//! A community rule the caller may not see is answered exactly like one that does not exist
//! ([`ApiError::rule_not_found`]); neither the owner's tenant id nor its local rule id is ever
//! part of an answer to another tenant.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::rules::{render, validate};
use super::{own_rule, AppState, Caller};
use crate::diff::unified;
use crate::error::{ApiError, ApiResult};
use crate::model::{Origin, Role, RuleStatus};
use crate::store::community::{self, pending_meta, PendingView, SharedRow};
use crate::store::feedback::community_quality;
use crate::store::rules::{self as rule_store, NewRuleOrigin};
use crate::store::tenants::bump_generation;
use crate::tlp::may_see;

/// Loads a community rule the caller may see, or answers `not_found`.
async fn visible(state: &AppState, caller: &Caller, id: &str) -> ApiResult<SharedRow> {
    let mut conn = state.store.pool().acquire().await?;
    let Some(shared) = community::shared_in(&mut conn, id).await? else {
        return Err(ApiError::rule_not_found(id));
    };
    let recipients = community::recipients_in(&mut conn, id).await?;
    let viewer = state.store.tenant(caller.tenant()).await?;
    let opted_in = viewer.as_ref().is_some_and(|t| t.opted_in());
    if may_see(&shared, &recipients, caller.tenant(), opted_in) {
        Ok(shared)
    } else {
        Err(ApiError::rule_not_found(id))
    }
}

fn summary(s: &SharedRow) -> Value {
    json!({"id": s.id, "version": s.version, "kind": s.kind, "title": s.title, "tlp": s.tlp,
           "confidence": s.confidence, "valid_until": s.valid_until,
           "attribution": s.attribution(), "updated_at": s.updated_at})
}

/// `GET /v1/community/rules`: every community rule the caller may see.
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let viewer = state.store.tenant(caller.tenant()).await?;
    let opted_in = viewer.as_ref().is_some_and(|t| t.opted_in());
    let mut conn = state.store.pool().acquire().await?;
    let mut out = Vec::new();
    for s in community::live_shared(state.store.pool()).await? {
        let recipients = community::recipients_in(&mut conn, &s.id).await?;
        if may_see(&s, &recipients, caller.tenant(), opted_in) {
            out.push(summary(&s));
        }
    }
    Ok(Json(json!({"count": out.len(), "rules": out})))
}

/// `GET /v1/community/rules/{id}`: text, metadata, attribution and community quality.
pub async fn get_shared(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = visible(&state, &caller, &id).await?;
    let mut conn = state.store.pool().acquire().await?;
    let quality = community_quality(&mut conn, &s.id, &s.rule_id).await?;
    let meta = s.meta();
    let mut view = summary(&s);
    let extra = json!({"text": s.text, "description": meta.description, "author": meta.author,
        "source_attribution": meta.source, "references": meta.references,
        "attack_tags": meta.attack_tags, "version_hash": s.version_hash,
        "shared_at": s.shared_at, "community": quality});
    if let (Some(v), Some(e)) = (view.as_object_mut(), extra.as_object()) {
        v.extend(e.clone());
    }
    Ok(Json(view))
}

/// `POST /v1/community/rules/{id}/import`: a local copy in `proposed`, awaiting review.
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(&[Role::Engineer], "importing rules")?;
    let s = visible(&state, &caller, &id).await?;
    if s.owner_tenant_id == caller.tenant() {
        return Err(ApiError::conflict(
            "own_rule",
            "this community rule is your own tenant's",
        ));
    }
    validate(&state, s.kind(), &s.text)?;
    let actor = caller.actor();
    let meta = s.meta();
    let mut w = state.store.begin_write().await?;
    let existing = rule_store::copies_of(&mut w.tx, &s.id)
        .await?
        .into_iter()
        .find(|c| c.tenant_id == caller.tenant() && c.status() != RuleStatus::Revoked);
    if let Some(copy) = existing {
        return Err(ApiError::conflict(
            "already_imported",
            format!("your tenant already has a copy of this rule: '{}'", copy.id),
        ));
    }
    let origin = NewRuleOrigin {
        origin: Origin::Community,
        source: Some((s.id.clone(), s.version, meta.tlp, s.text.clone())),
    };
    let (rid, hash) = rule_store::insert_rule(
        &mut w.tx,
        caller.tenant(),
        s.kind(),
        RuleStatus::Proposed,
        origin,
        &s.text,
        &meta,
        &actor,
    )
    .await?;
    let diff = unified(
        "",
        &render(&s.text, &meta),
        "/dev/null",
        &format!("{rid}@1"),
    );
    rule_store::audit(
        &mut w.tx,
        caller.tenant(),
        Some(&rid),
        &actor,
        "rule.imported",
        Some(1),
        Some(&hash),
        &diff,
    )
    .await?;
    w.commit().await?;
    let rule = own_rule(&state, &caller, &rid).await?;
    Ok((
        StatusCode::CREATED,
        Json(super::rules::rule_view(&state, &rule).await?),
    ))
}

/// `GET /v1/rules/{id}/pending`: upstream changes offered to a local copy.
pub async fn pending(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let rule = own_rule(&state, &caller, &id).await?;
    let local = rule_store::version(state.store.pool(), &rule.id, rule.current_version)
        .await?
        .ok_or_else(|| ApiError::rule_not_found(&id))?;
    let base = rule.base_text.clone().unwrap_or_default();
    let views: Vec<PendingView> = community::pending_of(state.store.pool(), caller.tenant(), &id)
        .await?
        .into_iter()
        .map(|p| PendingView {
            upstream_diff: unified(&base, &p.text, "upstream (imported)", "upstream (offered)"),
            local_diff: unified(&base, &local.text, "upstream (imported)", "local copy"),
            merge_required: local.text != base,
            id: p.id,
            upstream_version: p.upstream_version,
            state: p.state,
            created_at: p.created_at,
        })
        .collect();
    Ok(Json(json!({"rule_id": rule.id, "pending": views})))
}

/// Body of `POST /v1/rules/{id}/pending/{pending}/accept`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    /// Merged text, required when the copy was tuned locally.
    text: Option<String>,
    comment: Option<String>,
}

/// `POST /v1/rules/{id}/pending/{pending}/accept` (reviewer): a new approved version.
pub async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, pid)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    caller.require(&[Role::Reviewer], "accepting upstream updates")?;
    // The body is optional: an untuned copy takes the upstream text as offered.
    let input: Accept = if body.iter().all(u8::is_ascii_whitespace) {
        Accept::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("the body must be {{\"text\"?, \"comment\"?}}: {e}"))
        })?
    };
    let rule = own_rule(&state, &caller, &id).await?;
    let actor = caller.actor();
    let mut w = state.store.begin_write().await?;
    let p = community::pending_in(&mut w.tx, caller.tenant(), &pid)
        .await?
        .filter(|p| p.rule_id == rule.id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("rule '{id}' has no pending change '{pid}'"),
            )
        })?;
    if p.state != "pending" {
        return Err(ApiError::conflict(
            "not_pending",
            format!("this change is {}", p.state),
        ));
    }
    let local = rule_store::version_in(&mut w.tx, &rule.id, rule.current_version)
        .await?
        .ok_or_else(|| ApiError::rule_not_found(&id))?;
    let tuned = rule.base_text.as_deref() != Some(local.text.as_str());
    let text =
        match (&input.text, tuned) {
            (Some(t), _) => t.clone(),
            (None, false) => p.text.clone(),
            (None, true) => return Err(ApiError::conflict(
                "merge_required",
                "the local copy was tuned since it was imported; send the merged text in 'text' \
             (GET /v1/rules/{id}/pending shows the upstream and local diffs)",
            )),
        };
    validate(&state, rule.kind(), &text)?;
    let upstream = pending_meta(&p).ok_or_else(|| {
        ApiError::conflict(
            "not_pending",
            "the pending change is unreadable; ask the sharing tenant to republish",
        )
    })?;
    let mut meta = upstream.clone();
    // Local handling never gets weaker: keep the stricter of local and upstream labels.
    meta.tlp = local.meta().tlp.stricter(upstream.tlp);
    let floor = rule
        .source_tlp()
        .map_or(upstream.tlp, |f| f.stricter(upstream.tlp));
    let version = rule.current_version + 1;
    let hash = rule_store::insert_version(
        &mut w.tx,
        &rule.id,
        version,
        rule.kind(),
        &text,
        &meta,
        &actor,
    )
    .await?;
    rule_store::insert_approval(&mut w.tx, &rule.id, version, &caller.0.name).await?;
    rule_store::set_status(&mut w.tx, &rule.id, RuleStatus::Approved).await?;
    sqlx::query(
        "UPDATE rules SET source_version = $1, source_tlp = $2, base_text = $3 \
                 WHERE id = $4",
    )
    .bind(p.upstream_version)
    .bind(floor.as_str())
    .bind(&p.text)
    .bind(&rule.id)
    .execute(&mut *w.tx)
    .await?;
    community::set_pending_state(&mut w.tx, &p.id, "accepted").await?;
    let mut diff = unified(
        &render(&local.text, &local.meta()),
        &render(&text, &meta),
        &format!("{id}@{}", local.version),
        &format!("{id}@{version}"),
    );
    if let Some(c) = &input.comment {
        diff.push_str(&format!("# comment: {c}\n"));
    }
    rule_store::audit(
        &mut w.tx,
        caller.tenant(),
        Some(&rule.id),
        &actor,
        "update.accepted",
        Some(version),
        Some(&hash),
        &diff,
    )
    .await?;
    bump_generation(&mut w.tx, caller.tenant()).await?;
    w.commit().await?;
    state.notify_change();
    let rule = own_rule(&state, &caller, &id).await?;
    Ok(Json(super::rules::rule_view(&state, &rule).await?))
}

/// `POST /v1/rules/{id}/pending/{pending}/reject` (reviewer).
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, pid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.require(&[Role::Reviewer], "rejecting upstream updates")?;
    let rule = own_rule(&state, &caller, &id).await?;
    let mut w = state.store.begin_write().await?;
    let p = community::pending_in(&mut w.tx, caller.tenant(), &pid)
        .await?
        .filter(|p| p.rule_id == rule.id && p.state == "pending")
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("rule '{id}' has no pending change '{pid}'"),
            )
        })?;
    community::set_pending_state(&mut w.tx, &p.id, "rejected").await?;
    rule_store::audit(
        &mut w.tx,
        caller.tenant(),
        Some(&rule.id),
        &caller.actor(),
        "update.rejected",
        Some(rule.current_version),
        None,
        &format!("# community version {} rejected\n", p.upstream_version),
    )
    .await?;
    w.commit().await?;
    Ok(Json(
        json!({"rule_id": rule.id, "pending": p.id, "state": "rejected"}),
    ))
}
