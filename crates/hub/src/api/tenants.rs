//! Tenant endpoints: who am I, settings, sanitization profile, users, deployable set.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AppState, Body, Caller};
use crate::error::{ApiError, ApiResult};
use crate::model::Role;
use crate::sanitize::{SanitizeProfile, Sanitizer};
use crate::store::rules as rule_store;
use crate::store::tenants::{self, TenantRow};

async fn own(state: &AppState, caller: &Caller, tenant: &str) -> ApiResult<TenantRow> {
    caller.own_tenant(tenant)?;
    state
        .store
        .tenant(tenant)
        .await?
        .ok_or_else(|| ApiError::tenant_not_found(tenant))
}

/// `GET /v1/me`
pub async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let t = own(&state, &caller, &caller.0.tenant_id.clone()).await?;
    Ok(Json(
        json!({"user": caller.0, "tenant": {"id": t.id, "name": t.name,
        "pseudonym": t.pseudonym, "sharing_opt_in": t.opted_in(),
        "attribution": t.attribution}}),
    ))
}

/// `GET /v1/tenants/{tenant}/settings`
pub async fn settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Value>> {
    let t = own(&state, &caller, &tenant).await?;
    Ok(Json(json!({"tenant": t.id, "sharing_opt_in": t.opted_in(),
                   "attribution": t.attribution, "pseudonym": t.pseudonym})))
}

/// `GET /v1/tenants/{tenant}/profile` (admin).
pub async fn profile(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> ApiResult<Json<SanitizeProfile>> {
    let t = own(&state, &caller, &tenant).await?;
    caller.require(
        &[Role::Admin, Role::Engineer],
        "reading the sanitization profile",
    )?;
    Ok(Json(serde_json::from_str(&t.profile).unwrap_or_default()))
}

/// `PUT /v1/tenants/{tenant}/profile` (admin): replace the sanitization profile.
pub async fn put_profile(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    Body(profile): Body<SanitizeProfile>,
) -> ApiResult<Json<SanitizeProfile>> {
    let t = own(&state, &caller, &tenant).await?;
    caller.require(&[Role::Admin], "changing the sanitization profile")?;
    Sanitizer::new(&profile, std::slice::from_ref(&t.id))
        .map_err(|m| ApiError::bad_request(format!("profile not saved: {m}")))?;
    let json = serde_json::to_string(&profile).expect("profile serializes");
    let mut w = state.store.begin_write().await?;
    tenants::set_profile(&mut w.tx, &tenant, &json).await?;
    rule_store::audit(
        &mut w.tx,
        &tenant,
        None,
        &caller.actor(),
        "tenant.profile",
        None,
        None,
        "# sanitization profile replaced\n",
    )
    .await?;
    w.commit().await?;
    Ok(Json(profile))
}

/// Body of `POST /v1/tenants/{tenant}/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    role: Role,
}

/// `POST /v1/tenants/{tenant}/users` (admin): a user and its token, shown once.
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    Body(input): Body<NewUser>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    own(&state, &caller, &tenant).await?;
    caller.require(&[Role::Admin], "creating users")?;
    let (user, token) = state
        .store
        .create_user(&tenant, &input.name, input.role)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"user": user, "token": token})),
    ))
}

fn etag_matches(headers: &HeaderMap, version: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|tag| {
                let t = tag.trim().trim_start_matches("W/").trim_matches('"');
                t == version || t == "*"
            })
        })
}

/// `GET /v1/tenants/{tenant}/deployable[?wait=N]`: the bundle workers run (see
/// [`crate::bundle`] for the protocol).
pub async fn deployable(
    State(state): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.own_tenant(&tenant)?;
    let wait = match query.get("wait") {
        Some(w) => w.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("wait must be a number of seconds, got '{w}'"))
        })?,
        None => 0,
    };
    let wait = Duration::from_secs(wait.min(state.config.long_poll_max_secs));
    let deadline = Instant::now() + wait;
    let mut changes = state.subscribe();
    loop {
        let bundle = state.bundles.get(&state.store, &tenant).await?;
        let etag = HeaderValue::from_str(&format!("\"{}\"", bundle.version))
            .expect("hex is a valid header value");
        if !etag_matches(&headers, &bundle.version) {
            let mut resp = (StatusCode::OK, bundle.body.as_str().to_owned()).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(header::ETAG, etag);
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            return Ok(resp);
        }
        let now = Instant::now();
        if now >= deadline {
            let mut resp = StatusCode::NOT_MODIFIED.into_response();
            resp.headers_mut().insert(header::ETAG, etag);
            return Ok(resp);
        }
        // Wake on a local change, or after a second to see other hub processes and expiry.
        let nap = (deadline - now).min(Duration::from_secs(1));
        let _ = tokio::time::timeout(nap, changes.changed()).await;
    }
}
