//! The one mapping from errors to HTTP: status plus `{"Message","Code"}` as AWS
//! writes it. 4xx messages pass through to the caller; 5xx are logged with detail
//! and the body says nothing secret.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::provisioning::ProvisionError;
use crate::store::StoreError;

/// The body of every error answer, AWS's shape (`Code` is also sent as
/// `x-amzn-ErrorType`, where botocore reads it).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
#[schema(as = Error)]
pub struct ErrorBody {
    /// AWS's error code: `ValidationException` (400), `UnauthorizedException`
    /// (401), `AccessDeniedException` (403), `ResourceNotFoundException` (404),
    /// `ConflictException` (409), `PayloadTooLarge` (413), `ThrottlingException`
    /// (429), `InternalServerException` (500), or a SigV4 refusal's code.
    #[schema(example = "ValidationException")]
    pub code: &'static str,
    /// What is wrong and how to fix it; for a 500 only
    /// `internal error; see the server log`.
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// AWS's error code when the status alone does not say it
    /// (`InvalidSignatureException`, `UnknownOperationException`, ...).
    pub aws_code: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            aws_code: None,
        }
    }

    /// An error with AWS's code for it (botocore maps the code, not the status).
    pub fn aws(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            aws_code: Some(code),
            ..ApiError::new(status, message)
        }
    }

    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    fn code(&self) -> &'static str {
        if let Some(c) = self.aws_code {
            return c;
        }
        match self.status {
            StatusCode::BAD_REQUEST => "ValidationException",
            StatusCode::UNAUTHORIZED => "UnauthorizedException",
            StatusCode::FORBIDDEN => "AccessDeniedException",
            StatusCode::NOT_FOUND => "ResourceNotFoundException",
            StatusCode::CONFLICT => "ConflictException",
            StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLarge",
            StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowedException",
            StatusCode::TOO_MANY_REQUESTS => "ThrottlingException",
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
        let body = ErrorBody {
            code: self.code(),
            message,
        };
        // botocore reads the code from this header for REST-JSON services.
        let code = axum::http::HeaderValue::from_static(self.code());
        (self.status, [("x-amzn-ErrorType", code)], Json(body)).into_response()
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
