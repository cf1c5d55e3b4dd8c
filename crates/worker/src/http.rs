//! The HTTP endpoint: `/metrics` (Prometheus text), `/healthz`, `/readyz`, and
//! `POST /admin/reload` (hot reload on demand). Bind it to a local or otherwise protected
//! address: the admin route has no authentication of its own.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::metrics::Metrics;
use crate::reload::{Reloader, Trigger};

/// What `/readyz` reports: ready once a rule set runs and, for Kafka, the consumer has had
/// its first assignment.
#[derive(Debug, Default)]
pub struct Readiness {
    ruleset: AtomicBool,
    needs_assignment: AtomicBool,
    assigned: AtomicBool,
    reload_error: Mutex<Option<String>>,
}

impl Readiness {
    /// Nothing loaded yet.
    pub fn new() -> Arc<Readiness> {
        Arc::new(Readiness::default())
    }
    /// A rule set is (or is no longer) running.
    pub fn set_ruleset(&self, loaded: bool) {
        self.ruleset.store(loaded, Ordering::Release);
    }
    /// Readiness waits for a consumer-group assignment.
    pub fn require_assignment(&self) {
        self.needs_assignment.store(true, Ordering::Release);
    }
    /// The consumer has (or has lost) its assignment.
    pub fn set_assigned(&self, assigned: bool) {
        self.assigned.store(assigned, Ordering::Release);
    }
    /// The last reload was rejected with `error` (the old set still runs), or succeeded.
    pub fn set_reload_error(&self, error: Option<String>) {
        *self.reload_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }
    /// Why the last reload was rejected, if it was.
    pub fn reload_error(&self) -> Option<String> {
        self.reload_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Whether the worker is ready for traffic.
    pub fn ready(&self) -> bool {
        self.ruleset.load(Ordering::Acquire)
            && (!self.needs_assignment.load(Ordering::Acquire)
                || self.assigned.load(Ordering::Acquire))
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    reloader: Option<Arc<Reloader>>,
}

/// The router, for embedding or testing. Without a reloader, `/admin/reload` answers 404.
pub fn router(
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    reloader: Option<Arc<Reloader>>,
) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .route("/admin/reload", post(reload_handler))
        .with_state(AppState {
            metrics,
            readiness,
            reloader,
        })
}

/// Reloads now and answers what happened: 200 with the outcome, 409 with the reason when
/// the new set was rejected (the old one keeps running).
async fn reload_handler(State(state): State<AppState>) -> impl IntoResponse {
    let Some(reloader) = state.reloader else {
        return (
            StatusCode::NOT_FOUND,
            Json(
                json!({"code": "no_reloader", "message": "this worker has no reloadable rule set"}),
            ),
        );
    };
    match tokio::task::spawn_blocking(move || reloader.reload(Trigger::Admin)).await {
        Ok(Ok(outcome)) => (StatusCode::OK, Json(json!(outcome))),
        Ok(Err(e)) => (
            StatusCode::CONFLICT,
            Json(json!({"code": "reload_rejected", "message": e.to_string()})),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"code": "reload_failed", "message": e.to_string()})),
        ),
    }
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Ready (200) or not (503), with the running rule-set version and, when the last reload
/// was rejected, why: the worker still runs its old set then, so it stays ready.
async fn ready_handler(State(state): State<AppState>) -> impl IntoResponse {
    let ready = state.readiness.ready();
    let version = state
        .reloader
        .as_ref()
        .map(|r| r.handle().current().version().to_string());
    let body = json!({
        "ready": ready,
        "ruleset_version": version,
        "last_reload_error": state.readiness.reload_error(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Binds `addr` and serves until the runtime stops. Returns the bound address.
pub async fn serve(
    addr: &str,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    reloader: Option<Arc<Reloader>>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "metrics endpoint listening");
    let app = router(metrics, readiness, reloader);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok((bound, task))
}
