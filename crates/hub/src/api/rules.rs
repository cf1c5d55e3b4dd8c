//! Rule endpoints of the owning tenant: write (validated), read, versions, status, audit.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::sharing::withdraw_shared;
use super::{own_rule, AppState, Body, Caller};
use crate::diff::unified;
use crate::error::{ApiError, ApiResult};
use crate::model::{check_transition, Origin, Role, RuleKind, RuleStatus, Tlp};
use crate::store::community;
use crate::store::rules::{self as rule_store, NewRuleOrigin, RuleMeta, RuleRow, VersionRow};
use crate::store::tenants::bump_generation;
use crate::store::{format_time, parse_time};
use crate::tlp::{check_not_weaker, check_shareable};

/// Body of `POST /v1/rules` and `POST /v1/rules/{id}/versions`. Omitted metadata of a new
/// version is taken from the previous version.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleWrite {
    kind: Option<RuleKind>,
    text: Option<String>,
    title: Option<String>,
    description: Option<String>,
    tlp: Option<String>,
    confidence: Option<i64>,
    valid_until: Option<String>,
    author: Option<String>,
    source: Option<String>,
    references: Option<Vec<String>>,
    attack_tags: Option<Vec<String>>,
    comment: Option<String>,
}

/// A title from the rule itself: Sigma `title:`, else the first YARA rule name.
fn title_from_text(kind: RuleKind, text: &str) -> String {
    let found = match kind {
        RuleKind::Sigma => text
            .lines()
            .find_map(|l| l.strip_prefix("title:"))
            .map(|t| t.trim().trim_matches(['\'', '"']).to_string()),
        RuleKind::Yara => text
            .split_whitespace()
            .skip_while(|w| *w != "rule")
            .nth(1)
            .map(|n| {
                n.trim_end_matches('{')
                    .split(':')
                    .next()
                    .unwrap_or(n)
                    .trim()
                    .to_string()
            }),
    };
    found
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "untitled rule".to_string())
}

fn merge_meta(
    input: &RuleWrite,
    base: Option<&RuleMeta>,
    kind: RuleKind,
    text: &str,
) -> ApiResult<RuleMeta> {
    let tlp = match (&input.tlp, base) {
        (Some(t), _) => Tlp::parse_lenient(t).map_err(ApiError::bad_request)?,
        (None, Some(b)) => b.tlp,
        (None, None) => return Err(ApiError::bad_request(
            "tlp is required: one of TLP:CLEAR, TLP:GREEN, TLP:AMBER, TLP:AMBER+STRICT, TLP:RED",
        )),
    };
    let confidence = match (input.confidence, base) {
        (Some(c), _) if (0..=100).contains(&c) => c as u8,
        (Some(c), _) => {
            return Err(ApiError::bad_request(format!(
                "confidence {c} is outside 0-100"
            )))
        }
        (None, Some(b)) => b.confidence,
        (None, None) => return Err(ApiError::bad_request("confidence (0-100) is required")),
    };
    let valid_until = match (&input.valid_until, base) {
        (Some(v), _) if v.is_empty() => None,
        (Some(v), _) => Some(format_time(parse_time(v).map_err(ApiError::bad_request)?)),
        (None, Some(b)) => b.valid_until.clone(),
        (None, None) => None,
    };
    let pick = |new: &Option<String>, old: Option<&String>, default: String| {
        new.clone().or_else(|| old.cloned()).unwrap_or(default)
    };
    Ok(RuleMeta {
        title: pick(
            &input.title,
            base.map(|b| &b.title),
            title_from_text(kind, text),
        ),
        description: pick(
            &input.description,
            base.map(|b| &b.description),
            String::new(),
        ),
        tlp,
        confidence,
        valid_until,
        author: pick(&input.author, base.map(|b| &b.author), String::new()),
        source: pick(&input.source, base.map(|b| &b.source), String::new()),
        references: input
            .references
            .clone()
            .or_else(|| base.map(|b| b.references.clone()))
            .unwrap_or_default(),
        attack_tags: input
            .attack_tags
            .clone()
            .or_else(|| base.map(|b| b.attack_tags.clone()))
            .unwrap_or_default(),
    })
}

/// Compiles a rule text through the validator; the error is `422 rule_invalid`.
pub(crate) fn validate(state: &AppState, kind: RuleKind, text: &str) -> ApiResult<()> {
    if text.len() > state.config.max_rule_bytes {
        return Err(ApiError::unprocessable(
            "rule_too_large",
            format!(
                "the rule text is {} bytes; the hub accepts at most {}",
                text.len(),
                state.config.max_rule_bytes
            ),
        ));
    }
    state.validator.validate(kind, text).map_err(|reason| {
        ApiError::unprocessable(
            "rule_invalid",
            format!("the {kind} rule does not compile: {reason}; fix the text and send it again"),
        )
    })
}

/// Diffable rendering of a version: text then metadata lines.
pub(crate) fn render(text: &str, meta: &RuleMeta) -> String {
    let mut s = text.to_string();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s.push_str(&meta.diff_lines());
    s
}

async fn current(state: &AppState, rule: &RuleRow) -> ApiResult<VersionRow> {
    rule_store::version(state.store.pool(), &rule.id, rule.current_version)
        .await?
        .ok_or_else(|| ApiError::rule_not_found(&rule.id))
}

/// Full JSON view of a rule for its own tenant.
pub(crate) async fn rule_view(state: &AppState, rule: &RuleRow) -> ApiResult<Value> {
    let v = current(state, rule).await?;
    let meta = v.meta();
    let approval = rule_store::approval(state.store.pool(), &rule.id, v.version).await?;
    let source = match &rule.source_shared_id {
        Some(sid) => community::shared(state.store.pool(), sid).await?.map(|s| {
            json!({"attribution": s.attribution(), "rule_id": s.id,
                   "version": rule.source_version, "tlp": rule.source_tlp})
        }),
        None => None,
    };
    let shared = match &rule.shared_id {
        Some(sid) => community::shared(state.store.pool(), sid).await?.map(|s| {
            json!({"community_id": s.id, "version": s.version, "revoked": s.revoked != 0,
                   "flagged_at": s.flagged_at})
        }),
        None => None,
    };
    Ok(json!({
        "id": rule.id, "kind": rule.kind, "status": rule.status, "origin": rule.origin,
        "version": v.version, "version_hash": v.version_hash, "text": v.text,
        "title": meta.title, "description": meta.description, "tlp": meta.tlp,
        "confidence": meta.confidence, "valid_until": meta.valid_until, "author": meta.author,
        "source_attribution": meta.source, "references": meta.references,
        "attack_tags": meta.attack_tags,
        "source": source, "shared": shared,
        "reviewed_by": approval.as_ref().map(|a| &a.0),
        "reviewed_at": approval.as_ref().map(|a| &a.1),
        "created_at": rule.created_at, "updated_at": rule.updated_at,
    }))
}

/// `POST /v1/rules`
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(input): Body<RuleWrite>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(&[Role::Engineer], "writing rules")?;
    let kind = input
        .kind
        .ok_or_else(|| ApiError::bad_request("kind is required: sigma or yara"))?;
    let text = input
        .text
        .clone()
        .ok_or_else(|| ApiError::bad_request("text is required"))?;
    let meta = merge_meta(&input, None, kind, &text)?;
    validate(&state, kind, &text)?;
    let actor = caller.actor();
    let mut w = state.store.begin_write().await?;
    let origin = NewRuleOrigin {
        origin: Origin::Local,
        source: None,
    };
    let (id, hash) = rule_store::insert_rule(
        &mut w.tx,
        caller.tenant(),
        kind,
        RuleStatus::Draft,
        origin,
        &text,
        &meta,
        &actor,
    )
    .await?;
    let diff = unified("", &render(&text, &meta), "/dev/null", &format!("{id}@1"));
    let diff = with_comment(diff, input.comment.as_deref());
    rule_store::audit(
        &mut w.tx,
        caller.tenant(),
        Some(&id),
        &actor,
        "rule.created",
        Some(1),
        Some(&hash),
        &diff,
    )
    .await?;
    w.commit().await?;
    let rule = own_rule(&state, &caller, &id).await?;
    Ok((StatusCode::CREATED, Json(rule_view(&state, &rule).await?)))
}

/// Query of `GET /v1/rules`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
}

/// `GET /v1/rules`
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let wanted = match &q.status {
        Some(s) => Some(s.parse::<RuleStatus>().map_err(ApiError::bad_request)?),
        None => None,
    };
    let mut out = Vec::new();
    for rule in rule_store::rules_of(state.store.pool(), caller.tenant()).await? {
        if wanted.is_some_and(|w| w != rule.status()) {
            continue;
        }
        let v = current(&state, &rule).await?;
        out.push(json!({
            "id": rule.id, "kind": rule.kind, "status": rule.status, "origin": rule.origin,
            "version": v.version, "title": v.title, "tlp": v.tlp, "confidence": v.confidence,
            "valid_until": v.valid_until, "shared": rule.shared_id.is_some(),
            "updated_at": rule.updated_at,
        }));
    }
    Ok(Json(json!({"count": out.len(), "rules": out})))
}

/// `GET /v1/rules/{id}`
pub async fn get_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let rule = own_rule(&state, &caller, &id).await?;
    Ok(Json(rule_view(&state, &rule).await?))
}

fn version_json(v: &VersionRow) -> Value {
    let meta = v.meta();
    json!({"version": v.version, "version_hash": v.version_hash, "text": v.text,
           "title": meta.title, "description": meta.description, "tlp": meta.tlp,
           "confidence": meta.confidence, "valid_until": meta.valid_until,
           "author": meta.author, "source_attribution": meta.source,
           "references": meta.references, "attack_tags": meta.attack_tags,
           "created_by": v.created_by, "created_at": v.created_at})
}

/// `GET /v1/rules/{id}/versions`
pub async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let rule = own_rule(&state, &caller, &id).await?;
    let all = rule_store::versions(state.store.pool(), &rule.id).await?;
    Ok(Json(
        json!({"rule_id": rule.id, "versions": all.iter().map(version_json).collect::<Vec<_>>()}),
    ))
}

/// `GET /v1/rules/{id}/versions/{version}`
pub async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let rule = own_rule(&state, &caller, &id).await?;
    let n: i64 = version
        .parse()
        .map_err(|_| ApiError::bad_request("version must be a number"))?;
    let v = rule_store::version(state.store.pool(), &rule.id, n)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "rule '{id}' has no version {n}; it has 1..{}",
                    rule.current_version
                ),
            )
        })?;
    Ok(Json(version_json(&v)))
}

/// `POST /v1/rules/{id}/versions`: a new immutable version; the rule returns to draft.
pub async fn new_version(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(input): Body<RuleWrite>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(&[Role::Engineer], "writing rules")?;
    let rule = own_rule(&state, &caller, &id).await?;
    if input.kind.is_some_and(|k| k != rule.kind()) {
        return Err(ApiError::bad_request(
            "a rule's kind cannot change; create a new rule",
        ));
    }
    if rule.status() == RuleStatus::Revoked {
        return Err(ApiError::conflict(
            "rule_revoked",
            "this rule is revoked and takes no new versions; create a new rule",
        ));
    }
    let prev = current(&state, &rule).await?;
    let prev_meta = prev.meta();
    let text = input.text.clone().unwrap_or_else(|| prev.text.clone());
    let meta = merge_meta(&input, Some(&prev_meta), rule.kind(), &text)?;
    check_not_weaker(meta.tlp, rule.source_tlp())
        .map_err(|m| ApiError::unprocessable("tlp_weaker_than_source", m))?;
    validate(&state, rule.kind(), &text)?;
    let actor = caller.actor();
    let version = rule.current_version + 1;
    let mut w = state.store.begin_write().await?;
    // Re-read inside the transaction: a concurrent writer may have taken this version number.
    let fresh = rule_store::rule_in(&mut w.tx, caller.tenant(), &id)
        .await?
        .ok_or_else(|| ApiError::rule_not_found(&id))?;
    if fresh.current_version != rule.current_version {
        return Err(ApiError::conflict(
            "version_conflict",
            "another version was written meanwhile; fetch the rule and retry",
        ));
    }
    let hash =
        rule_store::insert_version(&mut w.tx, &id, version, rule.kind(), &text, &meta, &actor)
            .await?;
    rule_store::set_status(&mut w.tx, &id, RuleStatus::Draft).await?;
    let diff = unified(
        &render(&prev.text, &prev_meta),
        &render(&text, &meta),
        &format!("{id}@{}", prev.version),
        &format!("{id}@{version}"),
    );
    let diff = with_comment(diff, input.comment.as_deref());
    rule_store::audit(
        &mut w.tx,
        caller.tenant(),
        Some(&id),
        &actor,
        "version.created",
        Some(version),
        Some(&hash),
        &diff,
    )
    .await?;
    // A label that forbids sharing withdraws the community copy at once.
    if let Some(sid) = &rule.shared_id {
        if check_shareable(meta.tlp, rule.origin(), rule.source_tlp()).is_err() {
            withdraw_shared(&mut w.tx, sid, &actor).await?;
        }
    }
    bump_generation(&mut w.tx, caller.tenant()).await?;
    w.commit().await?;
    state.notify_change();
    let rule = own_rule(&state, &caller, &id).await?;
    Ok((StatusCode::CREATED, Json(rule_view(&state, &rule).await?)))
}

/// Body of `POST /v1/rules/{id}/status`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    status: String,
    comment: Option<String>,
}

/// `POST /v1/rules/{id}/status`: review transitions; approval records the reviewer.
pub async fn set_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(change): Body<StatusChange>,
) -> ApiResult<Json<Value>> {
    let to: RuleStatus = change.status.parse().map_err(ApiError::bad_request)?;
    let rule = own_rule(&state, &caller, &id).await?;
    let from = rule.status();
    check_transition(from, to, caller.0.role()).map_err(|m| {
        if m.starts_with("role") {
            ApiError::forbidden(m)
        } else {
            ApiError::conflict("invalid_transition", m)
        }
    })?;
    let v = current(&state, &rule).await?;
    if to.is_deployable() {
        // Re-check at approval time: the engine may have changed since the rule was written.
        validate(&state, rule.kind(), &v.text)?;
    }
    let actor = caller.actor();
    let mut w = state.store.begin_write().await?;
    let fresh = rule_store::rule_in(&mut w.tx, caller.tenant(), &id)
        .await?
        .ok_or_else(|| ApiError::rule_not_found(&id))?;
    if fresh.status != rule.status || fresh.current_version != rule.current_version {
        return Err(ApiError::conflict(
            "version_conflict",
            "the rule changed meanwhile; fetch it and retry",
        ));
    }
    if to == RuleStatus::Approved {
        rule_store::insert_approval(&mut w.tx, &id, v.version, &caller.0.name).await?;
    }
    rule_store::set_status(&mut w.tx, &id, to).await?;
    if matches!(to, RuleStatus::Revoked | RuleStatus::Deprecated) {
        if let Some(sid) = &rule.shared_id {
            withdraw_shared(&mut w.tx, sid, &actor).await?;
        }
    }
    let diff = format!(
        "-status: {from}\n+status: {to}\n{}",
        change
            .comment
            .as_deref()
            .map(|c| format!("# comment: {c}\n"))
            .unwrap_or_default()
    );
    rule_store::audit(
        &mut w.tx,
        caller.tenant(),
        Some(&id),
        &actor,
        &format!("status.{to}"),
        Some(v.version),
        Some(&v.version_hash),
        &diff,
    )
    .await?;
    bump_generation(&mut w.tx, caller.tenant()).await?;
    w.commit().await?;
    state.notify_change();
    let rule = own_rule(&state, &caller, &id).await?;
    Ok(Json(rule_view(&state, &rule).await?))
}

/// `GET /v1/rules/{id}/audit`
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let rule = own_rule(&state, &caller, &id).await?;
    let records = rule_store::audit_of(state.store.pool(), caller.tenant(), &rule.id).await?;
    Ok(Json(json!({"rule_id": rule.id, "records": records})))
}

/// Appends the writer's comment, if any, to an audit diff.
fn with_comment(diff: String, comment: Option<&str>) -> String {
    match comment {
        Some(c) if !c.is_empty() => format!("{diff}# comment: {c}\n"),
        _ => diff,
    }
}
