//! Community rules (sanitized copies published by their owner), recipients and pending
//! upstream updates.
//!
//! Reads here return rows regardless of who asks; the API filters every one of them through
//! [`crate::tlp::may_see`] before anything is answered.

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AnyPool, FromRow};

use super::rules::RuleMeta;
use super::{new_id, now_text};
use crate::model::{RuleKind, Tlp};

/// A community rule joined with what visibility needs from its owner.
#[derive(Debug, Clone, FromRow)]
pub struct SharedRow {
    /// Community id.
    pub id: String,
    /// Owner tenant (never shown to others).
    pub owner_tenant_id: String,
    /// Owner's local rule id (never shown to others).
    pub rule_id: String,
    /// Community version, from 1.
    pub version: i64,
    /// Owner's local version it was made from.
    pub local_version: i64,
    /// Kind text.
    pub kind: String,
    /// Sanitized text.
    pub text: String,
    /// Hash of the sanitized version.
    pub version_hash: String,
    /// Sanitized title.
    pub title: String,
    /// Sanitized description.
    pub description: String,
    /// Label.
    pub tlp: String,
    /// Confidence.
    pub confidence: i64,
    /// Expiry.
    pub valid_until: Option<String>,
    /// Sanitized author.
    pub author: String,
    /// Sanitized source.
    pub source: String,
    /// JSON references (sanitized).
    pub refs: String,
    /// JSON ATT&CK tags.
    pub attack_tags: String,
    /// 1 when withdrawn.
    pub revoked: i64,
    /// Set when community false positives crossed the threshold with no true positive.
    pub flagged_at: Option<String>,
    /// First publication.
    pub shared_at: String,
    /// Last publication.
    pub updated_at: String,
    /// 1 when the owner tenant is opted in.
    pub owner_opt_in: i64,
    /// Owner's name or pseudonym, per its choice.
    pub owner_name: String,
    /// Owner's pseudonym.
    pub owner_pseudonym: String,
    /// Owner's attribution mode.
    pub owner_attribution: String,
}

impl SharedRow {
    /// Parsed label (unknown text is treated as RED, the safe side).
    pub fn tlp(&self) -> Tlp {
        self.tlp.parse().unwrap_or(Tlp::Red)
    }
    /// Parsed kind.
    pub fn kind(&self) -> RuleKind {
        self.kind.parse().unwrap_or(RuleKind::Sigma)
    }
    /// What other tenants see as the source.
    pub fn attribution(&self) -> String {
        if self.owner_attribution == "name" {
            self.owner_name.clone()
        } else {
            self.owner_pseudonym.clone()
        }
    }
    /// The published metadata.
    pub fn meta(&self) -> RuleMeta {
        RuleMeta {
            title: self.title.clone(),
            description: self.description.clone(),
            tlp: self.tlp(),
            confidence: self.confidence.clamp(0, 100) as u8,
            valid_until: self.valid_until.clone(),
            author: self.author.clone(),
            source: self.source.clone(),
            references: serde_json::from_str(&self.refs).unwrap_or_default(),
            attack_tags: serde_json::from_str(&self.attack_tags).unwrap_or_default(),
        }
    }
}

macro_rules! shared_select {
    () => {
        "SELECT s.id, s.owner_tenant_id, s.rule_id, s.version, \
    s.local_version, s.kind, s.text, s.version_hash, s.title, s.description, s.tlp, \
    s.confidence, s.valid_until, s.author, s.source, s.refs, s.attack_tags, s.revoked, \
    s.flagged_at, s.shared_at, s.updated_at, t.sharing_opt_in AS owner_opt_in, \
    t.name AS owner_name, t.pseudonym AS owner_pseudonym, t.attribution AS owner_attribution \
    FROM shared_rules s JOIN tenants t ON t.id = s.owner_tenant_id"
    };
}

/// One community rule, whoever asks (visibility is the caller's job).
pub async fn shared_in(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<SharedRow>, sqlx::Error> {
    sqlx::query_as::<_, SharedRow>(concat!(shared_select!(), " WHERE s.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// One community rule from the pool.
pub async fn shared(pool: &AnyPool, id: &str) -> Result<Option<SharedRow>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    shared_in(&mut conn, id).await
}

/// Every live community rule (not revoked, owner opted in), oldest first.
pub async fn live_shared(pool: &AnyPool) -> Result<Vec<SharedRow>, sqlx::Error> {
    sqlx::query_as::<_, SharedRow>(concat!(
        shared_select!(),
        " WHERE s.revoked = 0 AND t.sharing_opt_in = 1 ORDER BY s.shared_at, s.id"
    ))
    .fetch_all(pool)
    .await
}

/// Live community rules published by one tenant.
pub async fn live_shared_of_owner(
    conn: &mut AnyConnection,
    owner: &str,
) -> Result<Vec<SharedRow>, sqlx::Error> {
    sqlx::query_as::<_, SharedRow>(concat!(
        shared_select!(),
        " WHERE s.revoked = 0 AND s.owner_tenant_id = $1 ORDER BY s.id"
    ))
    .bind(owner)
    .fetch_all(conn)
    .await
}

/// Recipient tenants of an AMBER community rule.
pub async fn recipients_in(
    conn: &mut AnyConnection,
    shared_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT tenant_id FROM shared_recipients WHERE shared_id = $1 ORDER BY 1")
            .bind(shared_id)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Publishes a new community rule or a new version of an existing one; returns its
/// community id and version.
#[allow(clippy::too_many_arguments)]
pub async fn publish(
    conn: &mut AnyConnection,
    existing: Option<&SharedRow>,
    owner: &str,
    rule_id: &str,
    local_version: i64,
    kind: RuleKind,
    text: &str,
    hash: &str,
    meta: &RuleMeta,
    recipients: &[String],
) -> Result<(String, i64), sqlx::Error> {
    let now = now_text();
    let refs = serde_json::to_string(&meta.references).expect("strings serialize");
    let tags = serde_json::to_string(&meta.attack_tags).expect("strings serialize");
    let (id, version) = match existing {
        Some(s) => {
            let version = s.version + 1;
            sqlx::query(
                "UPDATE shared_rules SET version = $1, local_version = $2, text = $3, \
                 version_hash = $4, title = $5, description = $6, tlp = $7, confidence = $8, \
                 valid_until = $9, author = $10, source = $11, refs = $12, attack_tags = $13, \
                 revoked = 0, updated_at = $14 WHERE id = $15",
            )
            .bind(version)
            .bind(local_version)
            .bind(text)
            .bind(hash)
            .bind(&meta.title)
            .bind(&meta.description)
            .bind(meta.tlp.as_str())
            .bind(i64::from(meta.confidence))
            .bind(meta.valid_until.clone())
            .bind(&meta.author)
            .bind(&meta.source)
            .bind(&refs)
            .bind(&tags)
            .bind(&now)
            .bind(&s.id)
            .execute(&mut *conn)
            .await?;
            (s.id.clone(), version)
        }
        None => {
            let id = new_id("c_");
            sqlx::query(
                "INSERT INTO shared_rules (id, owner_tenant_id, rule_id, version, local_version, \
                 kind, text, version_hash, title, description, tlp, confidence, valid_until, \
                 author, source, refs, attack_tags, revoked, flagged_at, shared_at, updated_at) \
                 VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                 $16, 0, NULL, $17, $17)",
            )
            .bind(&id)
            .bind(owner)
            .bind(rule_id)
            .bind(local_version)
            .bind(kind.as_str())
            .bind(text)
            .bind(hash)
            .bind(&meta.title)
            .bind(&meta.description)
            .bind(meta.tlp.as_str())
            .bind(i64::from(meta.confidence))
            .bind(meta.valid_until.clone())
            .bind(&meta.author)
            .bind(&meta.source)
            .bind(&refs)
            .bind(&tags)
            .bind(&now)
            .execute(&mut *conn)
            .await?;
            (id, 1)
        }
    };
    sqlx::query("DELETE FROM shared_recipients WHERE shared_id = $1")
        .bind(&id)
        .execute(&mut *conn)
        .await?;
    for tenant in recipients {
        sqlx::query("INSERT INTO shared_recipients (shared_id, tenant_id) VALUES ($1, $2)")
            .bind(&id)
            .bind(tenant)
            .execute(&mut *conn)
            .await?;
    }
    Ok((id, version))
}

/// Marks a community rule withdrawn.
pub async fn revoke(conn: &mut AnyConnection, shared_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE shared_rules SET revoked = 1, updated_at = $1 WHERE id = $2")
        .bind(now_text())
        .bind(shared_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Flags a community rule for its owner (once).
pub async fn flag(conn: &mut AnyConnection, shared_id: &str) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("UPDATE shared_rules SET flagged_at = $1 WHERE id = $2 AND flagged_at IS NULL")
            .bind(now_text())
            .bind(shared_id)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() > 0)
}

/// An upstream change waiting for review in an importing tenant.
#[derive(Debug, Clone, FromRow)]
pub struct PendingRow {
    /// Pending-change id.
    pub id: String,
    /// Local copy it applies to.
    pub rule_id: String,
    /// Importing tenant.
    pub tenant_id: String,
    /// Community rule id.
    pub shared_id: String,
    /// Community version offered.
    pub upstream_version: i64,
    /// Upstream (sanitized) text.
    pub text: String,
    /// Upstream metadata, JSON [`RuleMeta`].
    pub metadata: String,
    /// `pending`, `accepted`, `rejected` or `superseded`.
    pub state: String,
    /// When it arrived.
    pub created_at: String,
}

/// Offers a new upstream version to a local copy, superseding older pending offers.
pub async fn offer_update(
    conn: &mut AnyConnection,
    copy_rule_id: &str,
    tenant_id: &str,
    shared_id: &str,
    upstream_version: i64,
    text: &str,
    meta: &RuleMeta,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE pending_updates SET state = 'superseded' WHERE rule_id = $1 AND state = 'pending'",
    )
    .bind(copy_rule_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO pending_updates (id, rule_id, tenant_id, shared_id, upstream_version, text, \
         metadata, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8)",
    )
    .bind(new_id("p_"))
    .bind(copy_rule_id)
    .bind(tenant_id)
    .bind(shared_id)
    .bind(upstream_version)
    .bind(text)
    .bind(serde_json::to_string(meta).expect("metadata serializes"))
    .bind(now_text())
    .execute(conn)
    .await?;
    Ok(())
}

macro_rules! pending_cols {
    () => {
        "id, rule_id, tenant_id, shared_id, upstream_version, text, metadata, state, created_at"
    };
}

/// Pending changes of a local copy of `tenant_id`, newest first.
pub async fn pending_of(
    pool: &AnyPool,
    tenant_id: &str,
    rule_id: &str,
) -> Result<Vec<PendingRow>, sqlx::Error> {
    sqlx::query_as::<_, PendingRow>(concat!(
        "SELECT ",
        pending_cols!(),
        " FROM pending_updates WHERE tenant_id = $1 AND rule_id = $2 \
         ORDER BY created_at DESC, id"
    ))
    .bind(tenant_id)
    .bind(rule_id)
    .fetch_all(pool)
    .await
}

/// One pending change of `tenant_id`.
pub async fn pending_in(
    conn: &mut AnyConnection,
    tenant_id: &str,
    id: &str,
) -> Result<Option<PendingRow>, sqlx::Error> {
    sqlx::query_as::<_, PendingRow>(concat!(
        "SELECT ",
        pending_cols!(),
        " FROM pending_updates WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Sets a pending change's state.
pub async fn set_pending_state(
    conn: &mut AnyConnection,
    id: &str,
    state: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE pending_updates SET state = $1 WHERE id = $2")
        .bind(state)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Parses pending metadata.
pub fn pending_meta(p: &PendingRow) -> Option<RuleMeta> {
    serde_json::from_str(&p.metadata).ok()
}

/// Serializable view of a pending change, for the importing tenant.
#[derive(Debug, Serialize, Deserialize)]
pub struct PendingView {
    /// Pending-change id.
    pub id: String,
    /// Community version offered.
    pub upstream_version: i64,
    /// State.
    pub state: String,
    /// When it arrived.
    pub created_at: String,
    /// Diff from the upstream text the copy was made from to the offered text.
    pub upstream_diff: String,
    /// Diff from that upstream base to the local copy (local tuning).
    pub local_diff: String,
    /// Whether accepting needs a merged text (the copy was tuned locally).
    pub merge_required: bool,
}
