//! The REST API: routes, shared state, authentication and JSON extraction.
//!
//! Every route but `/openapi.json` and `/healthz` needs `Authorization: Bearer <token>`; the
//! token decides the tenant. Handlers only ever look up rules through the caller's tenant, and
//! community rules through [`crate::tlp::may_see`], so another tenant's rule is answered with
//! the same `404 not_found` as an id that never existed.

mod community;
mod feedback;
mod rules;
mod sharing;
mod tenants;

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::bundle::BundleCache;
use crate::config::HubConfig;
use crate::error::{ApiError, ApiResult};
use crate::model::Role;
use crate::store::rules::RuleRow;
use crate::store::tenants::UserRow;
use crate::store::{rules as rule_store, Store};
use crate::validator::RuleValidator;

/// Shared state of the HTTP API.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Compiles rule texts.
    pub validator: Arc<dyn RuleValidator>,
    /// Configuration.
    pub config: Arc<HubConfig>,
    /// Cached deployable bundles.
    pub bundles: Arc<BundleCache>,
    changes: Arc<watch::Sender<u64>>,
}

impl AppState {
    /// Builds the state from an opened store.
    pub fn new(store: Store, validator: Arc<dyn RuleValidator>, config: HubConfig) -> AppState {
        let (tx, _rx) = watch::channel(0);
        AppState {
            store,
            validator,
            config: Arc::new(config),
            bundles: Arc::new(BundleCache::default()),
            changes: Arc::new(tx),
        }
    }

    /// Wakes long-polling workers after a committed change.
    pub fn notify_change(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every later [`AppState::notify_change`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub UserRow);

impl Caller {
    /// The caller's tenant id.
    pub fn tenant(&self) -> &str {
        &self.0.tenant_id
    }

    /// Actor text for audit records: `name (user id)`.
    pub fn actor(&self) -> String {
        format!("{} ({})", self.0.name, self.0.id)
    }

    /// Refuses unless the caller has one of `roles` (admins pass every check).
    pub fn require(&self, roles: &[Role], action: &str) -> ApiResult<()> {
        let role = self.0.role();
        if role == Role::Admin || roles.contains(&role) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::forbidden(format!(
            "{action} needs role {} (or admin); your role is '{role}'",
            names.join(" or ")
        )))
    }

    /// Refuses with `not_found` unless `tenant` is the caller's own.
    pub fn own_tenant(&self, tenant: &str) -> ApiResult<()> {
        if tenant == self.tenant() {
            Ok(())
        } else {
            Err(ApiError::tenant_not_found(tenant))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Caller> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(ApiError::unauthorized)?;
        match state.store.user_by_token(token.trim()).await? {
            Some(user) => Ok(Caller(user)),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// `Json<T>` whose rejection is a JSON [`ApiError`] that says what is wrong with the body.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Body<T>> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(ApiError::bad_request(format!(
                "the request body is not what this endpoint expects: {}; send JSON as \
                 described in /openapi.json",
                e.body_text()
            ))),
        }
    }
}

/// Loads a rule of the caller's tenant or answers `not_found`.
pub(crate) async fn own_rule(state: &AppState, caller: &Caller, id: &str) -> ApiResult<RuleRow> {
    rule_store::rule(state.store.pool(), caller.tenant(), id)
        .await?
        .ok_or_else(|| ApiError::rule_not_found(id))
}

async fn not_found_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_route",
        "no such endpoint; see /openapi.json for the routes this hub serves",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method; see /openapi.json",
    )
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::document())
}

/// The hub's HTTP routes over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/v1/me", get(tenants::me))
        .route(
            "/v1/tenants/{tenant}/settings",
            get(tenants::settings).put(sharing::put_settings),
        )
        .route(
            "/v1/tenants/{tenant}/profile",
            get(tenants::profile).put(tenants::put_profile),
        )
        .route("/v1/tenants/{tenant}/users", post(tenants::create_user))
        .route("/v1/tenants/{tenant}/deployable", get(tenants::deployable))
        .route("/v1/rules", get(rules::list).post(rules::create))
        .route("/v1/rules/{id}", get(rules::get_rule))
        .route(
            "/v1/rules/{id}/versions",
            get(rules::versions).post(rules::new_version),
        )
        .route("/v1/rules/{id}/versions/{version}", get(rules::get_version))
        .route("/v1/rules/{id}/status", post(rules::set_status))
        .route("/v1/rules/{id}/audit", get(rules::audit))
        .route("/v1/rules/{id}/share/preview", post(sharing::preview))
        .route(
            "/v1/rules/{id}/share",
            post(sharing::share).delete(sharing::unshare),
        )
        .route("/v1/rules/{id}/pending", get(community::pending))
        .route(
            "/v1/rules/{id}/pending/{pending}/accept",
            post(community::accept),
        )
        .route(
            "/v1/rules/{id}/pending/{pending}/reject",
            post(community::reject),
        )
        .route("/v1/rules/{id}/verdicts", post(feedback::post_verdict))
        .route("/v1/rules/{id}/quality", get(feedback::quality))
        .route("/v1/community/rules", get(community::list))
        .route("/v1/community/rules/{id}", get(community::get_shared))
        .route("/v1/community/rules/{id}/import", post(community::import))
        .fallback(not_found_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}
