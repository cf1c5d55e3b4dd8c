//! Verdicts on hits and the counts derived from them.

use serde::Serialize;
use sqlx::{AnyConnection, AnyPool};

use super::{new_id, now_text};
use crate::model::Verdict;

/// Verdict counts and the precision they imply.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Quality {
    /// True positives.
    pub true_positive: i64,
    /// False positives.
    pub false_positive: i64,
    /// Benign (fired as written on allowed activity).
    pub benign: i64,
    /// All verdicts.
    pub volume: i64,
    /// `tp / (tp + fp)`; benign verdicts count in volume only. `None` with no tp or fp yet.
    pub precision: Option<f64>,
}

impl Quality {
    fn add(&mut self, verdict: &str, count: i64) {
        match verdict.parse::<Verdict>() {
            Ok(Verdict::TruePositive) => self.true_positive += count,
            Ok(Verdict::FalsePositive) => self.false_positive += count,
            Ok(Verdict::Benign) => self.benign += count,
            Err(_) => return,
        }
        self.volume += count;
        let judged = self.true_positive + self.false_positive;
        self.precision = (judged > 0).then(|| self.true_positive as f64 / judged as f64);
    }

    fn from_rows(rows: Vec<(String, i64)>) -> Quality {
        let mut q = Quality::default();
        for (verdict, count) in rows {
            q.add(&verdict, count);
        }
        q
    }
}

/// Records `count` verdicts on one version of a rule.
pub async fn insert_verdict(
    conn: &mut AnyConnection,
    tenant_id: &str,
    rule_id: &str,
    version: i64,
    verdict: Verdict,
    count: i64,
    actor: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO verdicts (id, tenant_id, rule_id, version, verdict, count, actor, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id("v_"))
    .bind(tenant_id)
    .bind(rule_id)
    .bind(version)
    .bind(verdict.as_str())
    .bind(count)
    .bind(actor)
    .bind(now_text())
    .execute(conn)
    .await?;
    Ok(())
}

/// Quality of one rule in its own tenant, over all versions and per version.
pub async fn rule_quality(
    pool: &AnyPool,
    tenant_id: &str,
    rule_id: &str,
) -> Result<(Quality, Vec<(i64, Quality)>), sqlx::Error> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT version, verdict, count FROM verdicts WHERE tenant_id = $1 AND rule_id = $2 \
         ORDER BY version",
    )
    .bind(tenant_id)
    .bind(rule_id)
    .fetch_all(pool)
    .await?;
    let mut total = Quality::default();
    let mut per_version: Vec<(i64, Quality)> = Vec::new();
    for (version, verdict, count) in rows {
        total.add(&verdict, count);
        match per_version.last_mut() {
            Some((v, q)) if *v == version => q.add(&verdict, count),
            _ => {
                let mut q = Quality::default();
                q.add(&verdict, count);
                per_version.push((version, q));
            }
        }
    }
    Ok((total, per_version))
}

/// Anonymised community aggregate of a shared rule: every tenant's copy plus the owner's rule.
#[derive(Debug, Clone, Serialize)]
pub struct CommunityQuality {
    /// Tenants whose copy (or original) is approved or deployed.
    pub tenants_deploying: i64,
    /// Summed verdicts of all tenants.
    #[serde(flatten)]
    pub quality: Quality,
}

/// Computes the community aggregate of community rule `shared_id` (owner rule `owner_rule`).
pub async fn community_quality(
    conn: &mut AnyConnection,
    shared_id: &str,
    owner_rule: &str,
) -> Result<CommunityQuality, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT v.verdict, v.count FROM verdicts v JOIN rules r ON r.id = v.rule_id \
         WHERE r.source_shared_id = $1 OR r.id = $2",
    )
    .bind(shared_id)
    .bind(owner_rule)
    .fetch_all(&mut *conn)
    .await?;
    let (deploying,): (i64,) = sqlx::query_as(
        "SELECT COUNT(DISTINCT tenant_id) FROM rules WHERE (source_shared_id = $1 OR id = $2) \
         AND status IN ('approved', 'deployed')",
    )
    .bind(shared_id)
    .bind(owner_rule)
    .fetch_one(conn)
    .await?;
    Ok(CommunityQuality {
        tenants_deploying: deploying,
        quality: Quality::from_rows(rows),
    })
}
