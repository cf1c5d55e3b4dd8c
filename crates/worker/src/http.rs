//! The HTTP endpoint: `/metrics` (Prometheus text), `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;

/// What `/readyz` reports: ready once a rule set runs and, for Kafka, the consumer has had
/// its first assignment.
#[derive(Debug, Default)]
pub struct Readiness {
    ruleset: AtomicBool,
    needs_assignment: AtomicBool,
    assigned: AtomicBool,
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
}

/// The router, for embedding or testing.
pub fn router(metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .with_state(AppState { metrics, readiness })
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn ready_handler(State(state): State<AppState>) -> impl IntoResponse {
    if state.readiness.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Binds `addr` and serves until the runtime stops. Returns the bound address.
pub async fn serve(
    addr: &str,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "metrics endpoint listening");
    let app = router(metrics, readiness);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok((bound, task))
}
