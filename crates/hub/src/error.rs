//! Errors: [`HubError`] for the library and start-up, [`ApiError`] for HTTP answers.
//!
//! Every API error is JSON `{"code": "...", "message": "..."}`. The code is stable (clients
//! branch on it); the message says what to fix. A rule the caller may not see is always
//! answered with [`ApiError::rule_not_found`], the very answer given for an id that does not
//! exist, so that no status, body or timing-independent detail tells the two apart.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// Errors of the hub outside a single HTTP request: configuration, database, listening.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The configuration could not be read or parsed.
    #[error("invalid hub configuration: {0}")]
    Config(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The listener could not be bound or the server failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// An admin action was refused (duplicate tenant, unknown tenant, bad role …).
    #[error("{0}")]
    Invalid(String),
}

/// An HTTP error answer: status, stable code and a message that says what to fix.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `not_found`, `rule_invalid`.
    pub code: &'static str,
    /// Human-readable explanation and remedy.
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    /// Builds an error answer.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown API token; send 'Authorization: Bearer <token>' with a token \
             created by 'foundry hub create-user' or by a tenant admin",
        )
    }

    /// 403 `forbidden_role`: the caller's role may not do this inside its own tenant.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden_role", message)
    }

    /// 404 `not_found` for a rule id: identical for "does not exist" and "may not see".
    pub fn rule_not_found(id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no rule '{id}' is visible to you; check the id and your tenant"),
        )
    }

    /// 404 `not_found` for a tenant other than the caller's own (or one that does not exist).
    pub fn tenant_not_found(id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no tenant '{id}' is visible to you; use your own tenant id"),
        )
    }

    /// 409 `conflict` with a specific code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    /// 422 with a specific code (rule text or metadata is unacceptable).
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: &self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        tracing::error!(error = %e, "database error while serving a request");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the hub's database failed; retry later, and see the hub log if it persists",
        )
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> ApiError {
        match e {
            HubError::Database(e) => e.into(),
            HubError::Invalid(m) => ApiError::bad_request(m),
            other => {
                tracing::error!(error = %other, "hub error while serving a request");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal hub error; see the hub log",
                )
            }
        }
    }
}

/// Result type of API handlers.
pub type ApiResult<T> = Result<T, ApiError>;
