//! The deployable set: what a tenant's workers run, served as one versioned bundle.
//!
//! # Protocol
//!
//! `GET /v1/tenants/{tenant}/deployable` answers a [`Bundle`] whose `version` is a SHA-256 over
//! the included rules (id, version hash, review and source); the same value is the `ETag`. A
//! worker sends it back in `If-None-Match` and gets `304 Not Modified` while nothing changed;
//! with `?wait=N` the hub holds the request up to N seconds (capped by the configuration) and
//! answers as soon as the set changes. A rule is included only when its status is approved or
//! deployed, an approval record exists for its *current* version (the SQL join enforces it),
//! and its `valid_until` is in the future.
//!
//! # Caching
//!
//! Hundreds of workers poll the same tenant, so the serialized bundle is cached per tenant and
//! keyed by the tenant's `deploy_generation` (bumped in the same transaction as every change
//! that may alter the set) and by the earliest `valid_until` among its rules, after which it is
//! rebuilt so that expiry needs no write. Reading the generation from the database, rather than
//! trusting an in-process flag, keeps several hub processes on one PostgreSQL correct. Waiters
//! wake on an in-process change signal, and at least once a second to catch changes made by
//! other processes and expiries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::rules::deployable_candidates;
use crate::store::{community, format_time, parse_time, sha256_hex, Store};

/// Provenance of an imported rule in the bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundleSource {
    /// The sharing tenant's name or pseudonym.
    pub attribution: String,
    /// Community rule id.
    pub rule_id: String,
    /// Community version the copy was last taken from.
    pub version: i64,
}

/// One rule of the deployable set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundleRule {
    /// Hub rule id.
    pub hub_rule_id: String,
    /// Version number.
    pub version: i64,
    /// Content hash of that version.
    pub version_hash: String,
    /// `sigma` or `yara`.
    pub kind: String,
    /// Rule text.
    pub text: String,
    /// Title.
    pub title: String,
    /// TLP label, e.g. `TLP:GREEN`.
    pub tlp: String,
    /// Confidence 0–100.
    pub confidence: i64,
    /// Expiry, RFC 3339.
    pub valid_until: Option<String>,
    /// Author.
    pub author: String,
    /// `local` or `community`.
    pub origin: String,
    /// Present for imported rules.
    pub source: Option<BundleSource>,
    /// Reviewer who approved this version.
    pub reviewed_by: String,
    /// When.
    pub reviewed_at: String,
}

/// A tenant's deployable set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bundle {
    /// Tenant id.
    pub tenant: String,
    /// Content hash of the set; also the `ETag`.
    pub version: String,
    /// When this bundle was assembled.
    pub generated_at: String,
    /// The rules.
    pub rules: Vec<BundleRule>,
}

/// A serialized bundle ready to send.
#[derive(Debug, Clone)]
pub struct CachedBundle {
    /// Bundle version (ETag).
    pub version: String,
    /// JSON body.
    pub body: Arc<String>,
    generation: i64,
    stale_at: Option<DateTime<Utc>>,
}

/// Per-tenant cache of serialized bundles (see the module docs).
#[derive(Debug, Default)]
pub struct BundleCache {
    entries: Mutex<HashMap<String, CachedBundle>>,
}

impl BundleCache {
    /// The current bundle of `tenant`, from cache when still valid.
    pub async fn get(&self, store: &Store, tenant: &str) -> Result<CachedBundle, sqlx::Error> {
        let generation = store.deploy_generation(tenant).await?;
        let now = Utc::now();
        if let Some(hit) = self.entries.lock().expect("cache lock").get(tenant) {
            if hit.generation == generation && hit.stale_at.is_none_or(|t| now < t) {
                return Ok(hit.clone());
            }
        }
        let (bundle, stale_at) = build(store, tenant, now).await?;
        let cached = CachedBundle {
            version: bundle.version.clone(),
            body: Arc::new(serde_json::to_string(&bundle).expect("bundle serializes")),
            generation,
            stale_at,
        };
        self.entries
            .lock()
            .expect("cache lock")
            .insert(tenant.to_string(), cached.clone());
        Ok(cached)
    }
}

/// Assembles the deployable set of `tenant` as of `now`; also returns when it next expires.
pub async fn build(
    store: &Store,
    tenant: &str,
    now: DateTime<Utc>,
) -> Result<(Bundle, Option<DateTime<Utc>>), sqlx::Error> {
    let mut rules = Vec::new();
    let mut stale_at: Option<DateTime<Utc>> = None;
    for row in deployable_candidates(store.pool(), tenant).await? {
        if let Some(until) = &row.valid_until {
            // An unparseable expiry is treated as expired: never deploy what we cannot date.
            match parse_time(until) {
                Ok(t) if t > now => stale_at = Some(stale_at.map_or(t, |s| s.min(t))),
                _ => continue,
            }
        }
        let source = match &row.source_shared_id {
            Some(sid) => community::shared(store.pool(), sid)
                .await?
                .map(|s| BundleSource {
                    attribution: s.attribution(),
                    rule_id: s.id.clone(),
                    version: row.source_version.unwrap_or(s.version),
                }),
            None => None,
        };
        rules.push(BundleRule {
            hub_rule_id: row.id,
            version: row.version,
            version_hash: row.version_hash,
            kind: row.kind,
            text: row.text,
            title: row.title,
            tlp: row.tlp,
            confidence: row.confidence,
            valid_until: row.valid_until,
            author: row.author,
            origin: row.origin,
            source,
            reviewed_by: row.reviewer,
            reviewed_at: row.approved_at,
        });
    }
    let mut fingerprint = String::new();
    for r in &rules {
        let src = r
            .source
            .as_ref()
            .map(|s| format!("{}@{}:{}", s.rule_id, s.version, s.attribution));
        fingerprint.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            r.hub_rule_id,
            r.version_hash,
            r.reviewed_by,
            r.reviewed_at,
            src.unwrap_or_default()
        ));
    }
    let version = sha256_hex(format!("{tenant}\n{fingerprint}").as_bytes());
    let bundle = Bundle {
        tenant: tenant.to_string(),
        version,
        generated_at: format_time(now),
        rules,
    };
    Ok((bundle, stale_at))
}
