//! Verdicts on hits and rule quality, per tenant and (anonymised) for the community.
//!
//! A community rule whose community-wide false positives reach the configured threshold with
//! no true positive at all is flagged once to its owner (`shared.flagged_at` on the owner's
//! rule view) and logged.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{own_rule, AppState, Body, Caller};
use crate::error::{ApiError, ApiResult};
use crate::model::Verdict;
use crate::store::community;
use crate::store::feedback::{community_quality, insert_verdict, rule_quality};

/// Body of `POST /v1/rules/{id}/verdicts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictInput {
    verdict: Verdict,
    /// Rule version the hits came from; defaults to the current version.
    version: Option<i64>,
    /// How many hits this verdict covers; default 1.
    count: Option<i64>,
}

/// `POST /v1/rules/{id}/verdicts` (any role of the owning tenant).
pub async fn post_verdict(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(input): Body<VerdictInput>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let rule = own_rule(&state, &caller, &id).await?;
    let version = input.version.unwrap_or(rule.current_version);
    if version < 1 || version > rule.current_version {
        return Err(ApiError::bad_request(format!(
            "version {version} does not exist; this rule has versions 1..{}",
            rule.current_version
        )));
    }
    let count = input.count.unwrap_or(1);
    if !(1..=1_000_000).contains(&count) {
        return Err(ApiError::bad_request("count must be between 1 and 1000000"));
    }
    let mut w = state.store.begin_write().await?;
    insert_verdict(
        &mut w.tx,
        caller.tenant(),
        &rule.id,
        version,
        input.verdict,
        count,
        &caller.actor(),
    )
    .await?;
    let linked = rule
        .shared_id
        .clone()
        .or_else(|| rule.source_shared_id.clone());
    if let Some(sid) = linked {
        if let Some(shared) = community::shared_in(&mut w.tx, &sid).await? {
            let q = community_quality(&mut w.tx, &sid, &shared.rule_id).await?;
            let threshold = state.config.flag_false_positives as i64;
            if q.quality.true_positive == 0
                && q.quality.false_positive >= threshold
                && community::flag(&mut w.tx, &sid).await?
            {
                tracing::warn!(shared = %sid, owner = %shared.owner_tenant_id,
                    false_positives = q.quality.false_positive,
                    "community rule flagged: false positives and no true positive");
            }
        }
    }
    w.commit().await?;
    let (total, _) = rule_quality(state.store.pool(), caller.tenant(), &rule.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"rule_id": rule.id, "version": version,
        "quality": total})),
    ))
}

/// `GET /v1/rules/{id}/quality`: precision and volume here, and the community aggregate.
pub async fn quality(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let rule = own_rule(&state, &caller, &id).await?;
    let (total, per_version) = rule_quality(state.store.pool(), caller.tenant(), &rule.id).await?;
    let versions: Vec<Value> = per_version
        .into_iter()
        .map(|(v, q)| json!({"version": v, "quality": q}))
        .collect();
    let linked = rule
        .shared_id
        .clone()
        .or_else(|| rule.source_shared_id.clone());
    let mut community_view = Value::Null;
    let mut flagged_at = Value::Null;
    if let Some(sid) = linked {
        let mut conn = state.store.pool().acquire().await?;
        if let Some(shared) = community::shared_in(&mut conn, &sid).await? {
            community_view = json!(community_quality(&mut conn, &sid, &shared.rule_id).await?);
            if rule.shared_id.is_some() {
                flagged_at = json!(shared.flagged_at);
            }
        }
    }
    Ok(Json(
        json!({"rule_id": rule.id, "tenant": total, "versions": versions,
                   "community": community_view, "flagged_at": flagged_at}),
    ))
}
