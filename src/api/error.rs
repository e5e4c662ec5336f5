//! The one mapping from errors to HTTP: status plus `{"Message","Code"}` as AWS
//! writes it. 4xx messages pass through to the caller; 5xx are logged with detail
//! and the body says nothing secret.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::provisioning::ProvisionError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    fn code(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "ValidationException",
            StatusCode::UNAUTHORIZED => "UnauthorizedException",
            StatusCode::FORBIDDEN => "AccessDeniedException",
            StatusCode::NOT_FOUND => "ResourceNotFoundException",
            StatusCode::CONFLICT => "ConflictException",
            StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLarge",
            StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowedException",
            _ => "InternalServerException",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = if self.status.is_server_error() {
            tracing::error!(
                status = self.status.as_u16(),
                "API request failed: {}",
                self.message
            );
            "internal error; see the server log".to_string()
        } else {
            self.message.clone()
        };
        let body = serde_json::json!({"Message": message, "Code": self.code()});
        (self.status, Json(body)).into_response()
    }
}

/// Maps a store error, naming `what` when it is the thing that was not found:
/// `.map_err(missing(format!("blob {id}")))`.
pub fn missing(what: String) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(&what),
        other => other.into(),
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound => ApiError::not_found("resource"),
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            StoreError::Invalid(m) => ApiError::validation(m),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

impl From<ProvisionError> for ApiError {
    fn from(e: ProvisionError) -> ApiError {
        match e {
            ProvisionError::NoIssuer => ApiError::validation(e.to_string()),
            ProvisionError::Store(s) => s.into(),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}
