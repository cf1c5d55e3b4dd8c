//! The Threat Foundry community hub.
//!
//! Tenants keep their Sigma and YARA-X rules here, share sanitized copies with the community
//! under TLP 2.0, review what they import, and serve each tenant's deployable rule set to its
//! workers. The main types, and how they fit:
//!
//! * [`HubConfig`] — the TOML configuration; [`serve`] runs the hub from it.
//! * [`Store`] — the database (SQLite by default, PostgreSQL by URL) behind sqlx's `Any`
//!   driver, with versioned migrations in `crates/hub/migrations`. Admin helpers
//!   ([`Store::create_tenant`], [`Store::create_user`]) are what `foundry hub` subcommands call.
//! * [`RuleValidator`] — the only thing the hub knows about matching: "does this compile".
//!   Every write (rule, version, sanitized share, merged update) goes through it.
//! * [`model`] — the vocabulary: [`RuleKind`], [`Tlp`], [`RuleStatus`], [`Role`], origins,
//!   verdicts, and the review transitions.
//! * [`tlp`] — who may see a community rule; what may be shared; labels never weaken.
//! * [`sanitize`] — the [`Sanitizer`] that turns a tenant's registered values and built-in
//!   classes (private addresses, e-mail, profile paths, UNC hosts, tenant ids) into
//!   placeholders before a rule leaves the tenant.
//! * [`bundle`] — the deployable set served to workers, with ETag and long poll.
//! * [`api`] — the REST routes ([`router`]); [`openapi`] documents them at `/openapi.json`.
//!
//! Isolation is structural: every rule read is filtered by the caller's tenant in SQL, every
//! community read passes [`tlp::may_see`], and a rule one may not see is answered exactly as one
//! that does not exist.

#![warn(missing_docs)]

pub mod api;
pub mod bundle;
pub mod config;
pub mod diff;
pub mod error;
pub mod model;
pub mod openapi;
pub mod sanitize;
pub mod store;
pub mod tlp;
pub mod validator;

use std::net::SocketAddr;
use std::sync::Arc;

pub use api::AppState;
pub use config::HubConfig;
pub use error::{ApiError, HubError};
pub use model::{Role, RuleKind, RuleStatus, Tlp};
pub use sanitize::{SanitizeProfile, Sanitizer};
pub use store::Store;
pub use validator::RuleValidator;

/// The HTTP router over prepared state (tests drive it directly).
pub fn router(state: AppState) -> axum::Router {
    api::router(state)
}

/// Opens the store named by `config.db_url` (running migrations) and builds the API state.
pub async fn open(
    config: HubConfig,
    validator: Arc<dyn RuleValidator>,
) -> Result<AppState, HubError> {
    let store = Store::open(&config.db_url, config.max_db_connections).await?;
    Ok(AppState::new(store, validator, config))
}

/// Binds `config.listen` and serves the hub until the process ends.
pub async fn serve(config: HubConfig, validator: Arc<dyn RuleValidator>) -> Result<(), HubError> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let state = open(config, validator).await?;
    serve_on(listener, state).await
}

/// Serves the hub on an already bound listener (lets callers use port 0 and read the address).
pub async fn serve_on(listener: tokio::net::TcpListener, state: AppState) -> Result<(), HubError> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "hub listening");
    axum::serve(listener, router(state)).await?;
    Ok(())
}
