//! Rules, their immutable versions, approvals and the audit log.
//!
//! Every read here that takes a tenant filters on it in SQL, so a rule of another tenant is
//! simply absent: the API cannot tell "not yours" from "does not exist" because the store
//! never returns the difference.

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, AnyPool, FromRow};

use super::{new_id, now_text, sha256_hex};
use crate::model::{Origin, RuleKind, RuleStatus, Tlp};

/// The metadata every rule version carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleMeta {
    /// Short title.
    pub title: String,
    /// Free-text description.
    pub description: String,
    /// Handling label.
    pub tlp: Tlp,
    /// How sure the author is that a hit is real, 0–100.
    pub confidence: u8,
    /// RFC 3339 time after which the rule is never deployed; `None` for no expiry.
    pub valid_until: Option<String>,
    /// Who wrote it.
    pub author: String,
    /// Source attribution (report, feed, colleague …).
    pub source: String,
    /// Reference URLs or document names.
    pub references: Vec<String>,
    /// ATT&CK tags such as `attack.t1059.001`.
    pub attack_tags: Vec<String>,
}

impl RuleMeta {
    /// Text form used in diffs: one `key: value` line per field, in a fixed order.
    pub fn diff_lines(&self) -> String {
        format!(
            "# title: {}\n# description: {}\n# tlp: {}\n# confidence: {}\n# valid_until: {}\n\
             # author: {}\n# source: {}\n# references: {}\n# attack_tags: {}\n",
            self.title,
            self.description.replace('\n', " "),
            self.tlp,
            self.confidence,
            self.valid_until.as_deref().unwrap_or("-"),
            self.author,
            self.source,
            self.references.join(", "),
            self.attack_tags.join(", ")
        )
    }
}

/// The content hash of one version: kind, text and metadata.
pub fn version_hash(kind: RuleKind, text: &str, meta: &RuleMeta) -> String {
    let meta_json = serde_json::to_string(meta).expect("metadata serializes");
    sha256_hex(format!("{kind}\n{text}\n{meta_json}").as_bytes())
}

/// A rule as stored (the mutable head; content lives in [`VersionRow`]).
#[derive(Debug, Clone, FromRow)]
pub struct RuleRow {
    /// Hub rule id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// `sigma` or `yara`.
    pub kind: String,
    /// Review state.
    pub status: String,
    /// Latest version number.
    pub current_version: i64,
    /// `local` or `community`.
    pub origin: String,
    /// Community rule id this copy was imported from.
    pub source_shared_id: Option<String>,
    /// Community version last taken from upstream.
    pub source_version: Option<i64>,
    /// Label of the community source: the copy's label may never be weaker.
    pub source_tlp: Option<String>,
    /// Upstream text of `source_version`, to tell whether the copy was tuned locally.
    pub base_text: Option<String>,
    /// Community id when this tenant shares the rule.
    pub shared_id: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl RuleRow {
    /// Parsed kind.
    pub fn kind(&self) -> RuleKind {
        self.kind.parse().unwrap_or(RuleKind::Sigma)
    }
    /// Parsed status.
    pub fn status(&self) -> RuleStatus {
        self.status.parse().unwrap_or(RuleStatus::Draft)
    }
    /// Parsed origin.
    pub fn origin(&self) -> Origin {
        self.origin.parse().unwrap_or(Origin::Local)
    }
    /// The label floor inherited from the community source, if imported.
    pub fn source_tlp(&self) -> Option<Tlp> {
        self.source_tlp.as_deref().and_then(|t| t.parse().ok())
    }
}

/// One immutable version of a rule.
#[derive(Debug, Clone, FromRow)]
pub struct VersionRow {
    /// Rule id.
    pub rule_id: String,
    /// Version number, from 1.
    pub version: i64,
    /// Content hash.
    pub version_hash: String,
    /// Rule text.
    pub text: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// TLP label text.
    pub tlp: String,
    /// Confidence 0–100.
    pub confidence: i64,
    /// Expiry.
    pub valid_until: Option<String>,
    /// Author.
    pub author: String,
    /// Source attribution.
    pub source: String,
    /// JSON array of references.
    pub refs: String,
    /// JSON array of ATT&CK tags.
    pub attack_tags: String,
    /// User who wrote the version.
    pub created_by: String,
    /// When.
    pub created_at: String,
}

impl VersionRow {
    /// The version's metadata.
    pub fn meta(&self) -> RuleMeta {
        RuleMeta {
            title: self.title.clone(),
            description: self.description.clone(),
            tlp: self.tlp.parse().unwrap_or(Tlp::Red),
            confidence: self.confidence.clamp(0, 100) as u8,
            valid_until: self.valid_until.clone(),
            author: self.author.clone(),
            source: self.source.clone(),
            references: serde_json::from_str(&self.refs).unwrap_or_default(),
            attack_tags: serde_json::from_str(&self.attack_tags).unwrap_or_default(),
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct AuditRow {
    /// Record id.
    pub id: String,
    /// Rule concerned, if any.
    pub rule_id: Option<String>,
    /// Who (user name and id).
    pub actor: String,
    /// What, e.g. `rule.created`, `status.approved`, `share.published`.
    pub action: String,
    /// When.
    pub at: String,
    /// Version concerned.
    pub version: Option<i64>,
    /// Its content hash.
    pub version_hash: Option<String>,
    /// Unified diff of the change (empty when nothing textual changed).
    pub diff: String,
}

macro_rules! rule_cols {
    () => {
        "id, tenant_id, kind, status, current_version, origin, source_shared_id, \
                         source_version, source_tlp, base_text, shared_id, created_at, updated_at"
    };
}
macro_rules! version_cols {
    () => {
        "rule_id, version, version_hash, text, title, description, tlp, \
                            confidence, valid_until, author, source, refs, attack_tags, \
                            created_by, created_at"
    };
}

/// Where a new rule comes from.
pub struct NewRuleOrigin {
    /// Local or community.
    pub origin: Origin,
    /// Community id, version, label and text for imports.
    pub source: Option<(String, i64, Tlp, String)>,
}

/// Inserts a rule with its first version; returns the rule id and version hash.
#[allow(clippy::too_many_arguments)]
pub async fn insert_rule(
    conn: &mut AnyConnection,
    tenant_id: &str,
    kind: RuleKind,
    status: RuleStatus,
    origin: NewRuleOrigin,
    text: &str,
    meta: &RuleMeta,
    actor: &str,
) -> Result<(String, String), sqlx::Error> {
    let id = new_id("r_");
    let now = now_text();
    let (sid, sver, stlp, stext) = match origin.source {
        Some((sid, sver, stlp, stext)) => (
            Some(sid),
            Some(sver),
            Some(stlp.as_str().to_string()),
            Some(stext),
        ),
        None => (None, None, None, None),
    };
    sqlx::query(concat!(
        "INSERT INTO rules (",
        rule_cols!(),
        ") VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9, NULL, $10, $10)"
    ))
    .bind(&id)
    .bind(tenant_id)
    .bind(kind.as_str())
    .bind(status.as_str())
    .bind(origin.origin.as_str())
    .bind(sid)
    .bind(sver)
    .bind(stlp)
    .bind(stext)
    .bind(&now)
    .execute(&mut *conn)
    .await?;
    let hash = insert_version(conn, &id, 1, kind, text, meta, actor).await?;
    Ok((id, hash))
}

/// Inserts version `version` of a rule; returns its hash.
pub async fn insert_version(
    conn: &mut AnyConnection,
    rule_id: &str,
    version: i64,
    kind: RuleKind,
    text: &str,
    meta: &RuleMeta,
    actor: &str,
) -> Result<String, sqlx::Error> {
    let hash = version_hash(kind, text, meta);
    sqlx::query(concat!(
        "INSERT INTO rule_versions (",
        version_cols!(),
        ") \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    ))
    .bind(rule_id)
    .bind(version)
    .bind(&hash)
    .bind(text)
    .bind(&meta.title)
    .bind(&meta.description)
    .bind(meta.tlp.as_str())
    .bind(i64::from(meta.confidence))
    .bind(meta.valid_until.clone())
    .bind(&meta.author)
    .bind(&meta.source)
    .bind(serde_json::to_string(&meta.references).expect("strings serialize"))
    .bind(serde_json::to_string(&meta.attack_tags).expect("strings serialize"))
    .bind(actor)
    .bind(now_text())
    .execute(&mut *conn)
    .await?;
    if version > 1 {
        sqlx::query("UPDATE rules SET current_version = $1, updated_at = $2 WHERE id = $3")
            .bind(version)
            .bind(now_text())
            .bind(rule_id)
            .execute(conn)
            .await?;
    }
    Ok(hash)
}

/// A rule of `tenant_id`, read from the pool.
pub async fn rule(
    pool: &AnyPool,
    tenant_id: &str,
    id: &str,
) -> Result<Option<RuleRow>, sqlx::Error> {
    sqlx::query_as::<_, RuleRow>(concat!(
        "SELECT ",
        rule_cols!(),
        " FROM rules WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(pool)
    .await
}

/// A rule of `tenant_id`, read inside a transaction.
pub async fn rule_in(
    conn: &mut AnyConnection,
    tenant_id: &str,
    id: &str,
) -> Result<Option<RuleRow>, sqlx::Error> {
    sqlx::query_as::<_, RuleRow>(concat!(
        "SELECT ",
        rule_cols!(),
        " FROM rules WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(conn)
    .await
}

/// All rules of a tenant, newest first.
pub async fn rules_of(pool: &AnyPool, tenant_id: &str) -> Result<Vec<RuleRow>, sqlx::Error> {
    sqlx::query_as::<_, RuleRow>(concat!(
        "SELECT ",
        rule_cols!(),
        " FROM rules WHERE tenant_id = $1 ORDER BY created_at DESC, id"
    ))
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}

/// Local copies (in any tenant) imported from a community rule.
pub async fn copies_of(
    conn: &mut AnyConnection,
    shared_id: &str,
) -> Result<Vec<RuleRow>, sqlx::Error> {
    sqlx::query_as::<_, RuleRow>(concat!(
        "SELECT ",
        rule_cols!(),
        " FROM rules WHERE source_shared_id = $1 ORDER BY id"
    ))
    .bind(shared_id)
    .fetch_all(conn)
    .await
}

/// One version of a rule (the caller has already checked the rule's tenant).
pub async fn version_in(
    conn: &mut AnyConnection,
    rule_id: &str,
    version: i64,
) -> Result<Option<VersionRow>, sqlx::Error> {
    sqlx::query_as::<_, VersionRow>(concat!(
        "SELECT ",
        version_cols!(),
        " FROM rule_versions WHERE rule_id = $1 AND version = $2"
    ))
    .bind(rule_id)
    .bind(version)
    .fetch_optional(conn)
    .await
}

/// One version, from the pool.
pub async fn version(
    pool: &AnyPool,
    rule_id: &str,
    version: i64,
) -> Result<Option<VersionRow>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    version_in(&mut conn, rule_id, version).await
}

/// Every version of a rule, oldest first.
pub async fn versions(pool: &AnyPool, rule_id: &str) -> Result<Vec<VersionRow>, sqlx::Error> {
    sqlx::query_as::<_, VersionRow>(concat!(
        "SELECT ",
        version_cols!(),
        " FROM rule_versions WHERE rule_id = $1 ORDER BY version"
    ))
    .bind(rule_id)
    .fetch_all(pool)
    .await
}

/// Sets a rule's status.
pub async fn set_status(
    conn: &mut AnyConnection,
    rule_id: &str,
    status: RuleStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE rules SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(status.as_str())
        .bind(now_text())
        .bind(rule_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records the community link fields of a rule (shared id, upstream version and base text).
pub async fn set_links(conn: &mut AnyConnection, rule: &RuleRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE rules SET shared_id = $1, source_version = $2, base_text = $3, updated_at = $4 \
         WHERE id = $5",
    )
    .bind(rule.shared_id.clone())
    .bind(rule.source_version)
    .bind(rule.base_text.clone())
    .bind(now_text())
    .bind(&rule.id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that `reviewer` approved `version` of a rule.
pub async fn insert_approval(
    conn: &mut AnyConnection,
    rule_id: &str,
    version: i64,
    reviewer: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO approvals (rule_id, version, reviewer, approved_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (rule_id, version) DO NOTHING",
    )
    .bind(rule_id)
    .bind(version)
    .bind(reviewer)
    .bind(now_text())
    .execute(conn)
    .await?;
    Ok(())
}

/// Who approved a version, and when.
pub async fn approval(
    pool: &AnyPool,
    rule_id: &str,
    version: i64,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT reviewer, approved_at FROM approvals WHERE rule_id = $1 AND version = $2",
    )
    .bind(rule_id)
    .bind(version)
    .fetch_optional(pool)
    .await
}

/// Appends an audit record.
#[allow(clippy::too_many_arguments)]
pub async fn audit(
    conn: &mut AnyConnection,
    tenant_id: &str,
    rule_id: Option<&str>,
    actor: &str,
    action: &str,
    version: Option<i64>,
    version_hash: Option<&str>,
    diff: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (id, tenant_id, rule_id, actor, action, at, version, version_hash, \
         diff) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id("a_"))
    .bind(tenant_id)
    .bind(rule_id.map(str::to_string))
    .bind(actor)
    .bind(action)
    .bind(now_text())
    .bind(version)
    .bind(version_hash.map(str::to_string))
    .bind(diff)
    .execute(conn)
    .await?;
    tracing::info!(
        tenant = tenant_id,
        rule = rule_id,
        actor,
        action,
        version,
        "state change"
    );
    Ok(())
}

/// The audit trail of a rule of `tenant_id`, oldest first.
pub async fn audit_of(
    pool: &AnyPool,
    tenant_id: &str,
    rule_id: &str,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as::<_, AuditRow>(
        "SELECT id, rule_id, actor, action, at, version, version_hash, diff FROM audit_log \
         WHERE tenant_id = $1 AND rule_id = $2 ORDER BY at, id",
    )
    .bind(tenant_id)
    .bind(rule_id)
    .fetch_all(pool)
    .await
}

/// A candidate for the deployable set: a deployable-state rule whose current version has an
/// approval record (the join is the guarantee: no approval row, no deployment).
#[derive(Debug, Clone, FromRow)]
pub struct DeployableRow {
    /// Rule id.
    pub id: String,
    /// Origin text.
    pub origin: String,
    /// Community source id.
    pub source_shared_id: Option<String>,
    /// Community source version.
    pub source_version: Option<i64>,
    /// Reviewer name.
    pub reviewer: String,
    /// Approval time.
    pub approved_at: String,
    /// Kind text.
    pub kind: String,
    /// Version number.
    pub version: i64,
    /// Version hash.
    pub version_hash: String,
    /// Rule text.
    pub text: String,
    /// Title.
    pub title: String,
    /// TLP text.
    pub tlp: String,
    /// Confidence.
    pub confidence: i64,
    /// Expiry.
    pub valid_until: Option<String>,
    /// Author.
    pub author: String,
}

/// Approved or deployed rules of a tenant with an approval of their current version.
pub async fn deployable_candidates(
    pool: &AnyPool,
    tenant_id: &str,
) -> Result<Vec<DeployableRow>, sqlx::Error> {
    sqlx::query_as::<_, DeployableRow>(
        "SELECT r.id, r.origin, r.source_shared_id, r.source_version, a.reviewer, a.approved_at, \
         r.kind, v.version, v.version_hash, v.text, v.title, v.tlp, v.confidence, v.valid_until, \
         v.author \
         FROM rules r \
         JOIN rule_versions v ON v.rule_id = r.id AND v.version = r.current_version \
         JOIN approvals a ON a.rule_id = r.id AND a.version = r.current_version \
         WHERE r.tenant_id = $1 AND r.status IN ('approved', 'deployed') \
         ORDER BY r.id",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}
