//! Tenants, users and API tokens. Tokens are shown once and stored only as SHA-256 hashes.

use serde::Serialize;
use sqlx::{AnyConnection, FromRow};

use super::{new_id, now_text, random_hex, sha256_hex, Store};
use crate::error::HubError;
use crate::model::{AttributionMode, Role};

/// A tenant as stored.
#[derive(Debug, Clone, FromRow)]
pub struct TenantRow {
    /// Tenant id (chosen by the operator, e.g. `acme`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Stable pseudonym shown instead of the name when the tenant prefers.
    pub pseudonym: String,
    /// 1 when the tenant's admin opted in to community sharing.
    pub sharing_opt_in: i64,
    /// `name` or `pseudonym`.
    pub attribution: String,
    /// Sanitization profile, JSON.
    pub profile: String,
    /// Bumped on every change that may alter the deployable set.
    pub deploy_generation: i64,
    /// Creation time.
    pub created_at: String,
}

impl TenantRow {
    /// Whether community sharing is on.
    pub fn opted_in(&self) -> bool {
        self.sharing_opt_in != 0
    }

    /// The name other tenants see on this tenant's shared rules.
    pub fn display_attribution(&self) -> String {
        match self.attribution.parse::<AttributionMode>() {
            Ok(AttributionMode::Name) => self.name.clone(),
            _ => self.pseudonym.clone(),
        }
    }
}

/// An authenticated user.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct UserRow {
    /// User id.
    pub id: String,
    /// The user's tenant.
    pub tenant_id: String,
    /// Display name, used in audit records and `reviewed_by`.
    pub name: String,
    /// Role text (see [`Role`]).
    pub role: String,
}

impl UserRow {
    /// The parsed role; an unknown stored role is treated as the least privileged.
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Reader)
    }
}

macro_rules! tenant_cols {
    () => {
        "id, name, pseudonym, sharing_opt_in, attribution, profile, \
                           deploy_generation, created_at"
    };
}

/// Tenant ids appear in URLs and in sanitization; keep them to a safe alphabet.
fn check_tenant_id(id: &str) -> Result<(), HubError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(HubError::Invalid(format!(
            "tenant id '{id}' must be 1-64 characters of a-z, A-Z, 0-9, '-' or '_'"
        )))
    }
}

impl Store {
    /// Creates a tenant with sharing off and a fresh pseudonym.
    pub async fn create_tenant(&self, id: &str, name: &str) -> Result<TenantRow, HubError> {
        check_tenant_id(id)?;
        if self.tenant(id).await?.is_some() {
            return Err(HubError::Invalid(format!("tenant '{id}' already exists")));
        }
        let pseudonym = format!("member-{}", random_hex(4));
        let mut w = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO tenants (id, name, pseudonym, sharing_opt_in, attribution, profile, \
             deploy_generation, created_at) VALUES ($1, $2, $3, 0, 'pseudonym', '{}', 0, $4)",
        )
        .bind(id)
        .bind(name)
        .bind(&pseudonym)
        .bind(now_text())
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        tracing::info!(tenant = id, "tenant created");
        Ok(self.tenant(id).await?.expect("tenant just inserted"))
    }

    /// Creates a user and returns it with its API token (shown once, stored hashed).
    pub async fn create_user(
        &self,
        tenant_id: &str,
        name: &str,
        role: Role,
    ) -> Result<(UserRow, String), HubError> {
        if self.tenant(tenant_id).await?.is_none() {
            return Err(HubError::Invalid(format!(
                "no tenant '{tenant_id}'; create it first"
            )));
        }
        let token = format!("fht_{}", random_hex(32));
        let user = UserRow {
            id: new_id("u_"),
            tenant_id: tenant_id.to_string(),
            name: name.to_string(),
            role: role.as_str().to_string(),
        };
        let mut w = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, tenant_id, name, role, token_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&user.id)
        .bind(&user.tenant_id)
        .bind(&user.name)
        .bind(&user.role)
        .bind(sha256_hex(token.as_bytes()))
        .bind(now_text())
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        tracing::info!(tenant = tenant_id, user = %user.id, role = %role, "user created");
        Ok((user, token))
    }

    /// The user owning `token`, if any.
    pub async fn user_by_token(&self, token: &str) -> Result<Option<UserRow>, sqlx::Error> {
        sqlx::query_as::<_, UserRow>(
            "SELECT id, tenant_id, name, role FROM users WHERE token_hash = $1",
        )
        .bind(sha256_hex(token.as_bytes()))
        .fetch_optional(&self.pool)
        .await
    }

    /// One tenant.
    pub async fn tenant(&self, id: &str) -> Result<Option<TenantRow>, sqlx::Error> {
        sqlx::query_as::<_, TenantRow>(concat!(
            "SELECT ",
            tenant_cols!(),
            " FROM tenants WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// All tenants (for admin listings and the CLI).
    pub async fn tenants(&self) -> Result<Vec<TenantRow>, sqlx::Error> {
        sqlx::query_as::<_, TenantRow>(concat!(
            "SELECT ",
            tenant_cols!(),
            " FROM tenants ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await
    }

    /// The tenant's deploy generation (cheap check used by every poll).
    pub async fn deploy_generation(&self, tenant_id: &str) -> Result<i64, sqlx::Error> {
        let row: (i64,) = sqlx::query_as("SELECT deploy_generation FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.0)
    }
}

/// Reads a tenant inside a transaction.
pub async fn tenant_in(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<TenantRow>, sqlx::Error> {
    sqlx::query_as::<_, TenantRow>(concat!(
        "SELECT ",
        tenant_cols!(),
        " FROM tenants WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Marks a tenant's deployable set as possibly changed.
pub async fn bump_generation(conn: &mut AnyConnection, tenant_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tenants SET deploy_generation = deploy_generation + 1 WHERE id = $1")
        .bind(tenant_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Updates sharing settings; returns the new row.
pub async fn set_settings(
    conn: &mut AnyConnection,
    tenant_id: &str,
    opt_in: bool,
    attribution: AttributionMode,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tenants SET sharing_opt_in = $1, attribution = $2 WHERE id = $3")
        .bind(i64::from(opt_in))
        .bind(attribution.as_str())
        .bind(tenant_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces the sanitization profile (JSON text, validated by the caller).
pub async fn set_profile(
    conn: &mut AnyConnection,
    tenant_id: &str,
    profile_json: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tenants SET profile = $1 WHERE id = $2")
        .bind(profile_json)
        .bind(tenant_id)
        .execute(conn)
        .await?;
    Ok(())
}
