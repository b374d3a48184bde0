//! The one error type of the service and its single conversion into a
//! `tonic::Status` with AIP-193 details.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use tonic::Code;
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// `ErrorInfo.domain` of every error.
pub const ERROR_DOMAIN: &str = "rolekeeper.v1";

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenProblem {
    /// No `authorization` metadata.
    Missing,
    /// Not a `Bearer` token, malformed, wrong signature, issuer, audience...
    Invalid,
    /// Past its `exp`.
    Expired,
}

/// A violated field of a request: `field` is a path like `role_ids[2]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Path of the offending field.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

impl Violation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Everything that can go wrong, as the caller should learn it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    /// The request is malformed (`INVALID_ARGUMENT` + `BadRequest`).
    #[error("invalid argument: {}", describe_violations(.0))]
    InvalidArgument(Vec<Violation>),
    /// No usable token (`UNAUTHENTICATED`).
    #[error("{message}")]
    Unauthenticated {
        /// Which problem.
        problem: TokenProblem,
        /// Human readable, never containing the token.
        message: String,
    },
    /// The token lacks a scope (`PERMISSION_DENIED`, reason `SCOPE_MISSING`).
    #[error("the token lacks the scope `{required_scope}`")]
    ScopeMissing {
        /// The scope the RPC needs.
        required_scope: String,
    },
    /// The token may not act on this organization (`PERMISSION_DENIED`).
    #[error("the token may not act on organization `{organization_id}`")]
    OrganizationForbidden {
        /// The organization of the request.
        organization_id: String,
    },
    /// The operation belongs to an organization the token may not act on
    /// (`PERMISSION_DENIED`, reason `ORGANIZATION_FORBIDDEN`). The caller
    /// named the operation, not the organization: which one is not said.
    #[error("the token may not act on the organization of this operation")]
    OperationForbidden,
    /// A resource does not exist (`NOT_FOUND` + `ResourceInfo`).
    #[error("{resource_type} `{resource_name}` not found")]
    NotFound {
        /// E.g. `rolekeeper.v1.Role`.
        resource_type: String,
        /// E.g. `organizations/o1/roles/r1`.
        resource_name: String,
    },
    /// A resource with the same key exists (`ALREADY_EXISTS` + `ResourceInfo`).
    #[error("{message}")]
    AlreadyExists {
        /// `ErrorInfo.reason`, e.g. `ROLE_EXISTS`.
        reason: String,
        /// The conflicting resource's type.
        resource_type: String,
        /// The conflicting resource's name.
        resource_name: String,
        /// Human readable.
        message: String,
    },
    /// An etag did not match (`ABORTED`).
    #[error("{message}")]
    Aborted {
        /// `ErrorInfo.reason`, e.g. `ETAG_MISMATCH`.
        reason: String,
        /// Human readable.
        message: String,
    },
    /// The system is not in the state the request needs
    /// (`FAILED_PRECONDITION` + `PreconditionFailure`).
    #[error("{description}")]
    FailedPrecondition {
        /// `ErrorInfo.reason` and `PreconditionViolation.type`, e.g. `ROLE_IN_USE`.
        reason: String,
        /// `PreconditionViolation.subject`: the resource name.
        subject: String,
        /// Human readable.
        description: String,
    },
    /// The operation was cancelled before it applied anything (`CANCELLED`).
    #[error("the operation was cancelled before it was applied")]
    Cancelled,
    /// The caller exceeded its request rate (`RESOURCE_EXHAUSTED` +
    /// `RetryInfo` + `QuotaFailure`).
    #[error("{description}")]
    ResourceExhausted {
        /// `QuotaViolation.subject`, e.g. `principal:alice`.
        subject: String,
        /// Human readable.
        description: String,
        /// When a request would be admitted again.
        retry_after: Duration,
    },
    /// The service cannot answer now; retry later (`UNAVAILABLE` + `RetryInfo`).
    #[error("{message}")]
    Unavailable {
        /// `ErrorInfo.reason`, e.g. `DATABASE_UNAVAILABLE`.
        reason: String,
        /// Human readable.
        message: String,
        /// Suggested delay before retrying.
        retry_after: Duration,
    },
    /// The server has no such method (`UNIMPLEMENTED`).
    #[error("this server has no method `{method}`")]
    Unimplemented {
        /// The request's path, `/package.Service/Method`.
        method: String,
    },
    /// A bug or an unexpected database failure. The text is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Longest message sent to a caller, in characters.
const MAX_MESSAGE: usize = 512;
/// Most field violations sent in one `BadRequest`.
const MAX_VIOLATIONS: usize = 10;
/// Longest field path, description, metadata value or resource name sent.
const MAX_DETAIL: usize = 200;

/// `text` cut to `max` characters (marked with `…`). Errors echo caller
/// input; unbounded, a long value would push the status past the peer's
/// header-size limit and the caller would see a protocol error instead.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

fn describe_violations(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// One field violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![Violation::new(field, description)])
    }

    /// `NOT_FOUND` of a resource of `resource_type` called `resource_name`.
    pub fn not_found(resource_type: &str, resource_name: impl Into<String>) -> Self {
        Self::NotFound {
            resource_type: resource_type.to_owned(),
            resource_name: resource_name.into(),
        }
    }

    /// `ALREADY_EXISTS` of `resource_name`.
    pub fn already_exists(reason: &str, resource_type: &str, resource_name: String) -> Self {
        Self::AlreadyExists {
            message: format!("{resource_type} `{resource_name}` already exists"),
            reason: reason.to_owned(),
            resource_type: resource_type.to_owned(),
            resource_name,
        }
    }

    /// `FAILED_PRECONDITION` with one violation.
    pub fn precondition(reason: &str, subject: String, description: impl Into<String>) -> Self {
        Self::FailedPrecondition {
            reason: reason.to_owned(),
            subject,
            description: description.into(),
        }
    }

    /// `INTERNAL` from anything printable.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::Unauthenticated { .. } => Code::Unauthenticated,
            Self::ScopeMissing { .. }
            | Self::OrganizationForbidden { .. }
            | Self::OperationForbidden => Code::PermissionDenied,
            Self::NotFound { .. } => Code::NotFound,
            Self::AlreadyExists { .. } => Code::AlreadyExists,
            Self::Aborted { .. } => Code::Aborted,
            Self::FailedPrecondition { .. } => Code::FailedPrecondition,
            Self::Cancelled => Code::Cancelled,
            Self::ResourceExhausted { .. } => Code::ResourceExhausted,
            Self::Unavailable { .. } => Code::Unavailable,
            Self::Unimplemented { .. } => Code::Unimplemented,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// `ErrorInfo.reason`: a stable UPPER_SNAKE_CASE name of the problem.
    pub fn reason(&self) -> &str {
        match self {
            Self::InvalidArgument(_) => "INVALID_ARGUMENT",
            Self::Unauthenticated { problem, .. } => match problem {
                TokenProblem::Missing => "TOKEN_MISSING",
                TokenProblem::Invalid => "TOKEN_INVALID",
                TokenProblem::Expired => "TOKEN_EXPIRED",
            },
            Self::ScopeMissing { .. } => "SCOPE_MISSING",
            Self::OrganizationForbidden { .. } | Self::OperationForbidden => {
                "ORGANIZATION_FORBIDDEN"
            }
            Self::NotFound { .. } => "NOT_FOUND",
            Self::AlreadyExists { reason, .. }
            | Self::Aborted { reason, .. }
            | Self::FailedPrecondition { reason, .. }
            | Self::Unavailable { reason, .. } => reason,
            Self::Cancelled => "CANCELLED",
            Self::ResourceExhausted { .. } => "RATE_LIMITED",
            Self::Unimplemented { .. } => "METHOD_NOT_FOUND",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// The message the caller sees; `INTERNAL` hides its cause.
    fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => "internal error; the request id is in the server log".to_owned(),
            other => other.to_string(),
        }
    }

    /// Converts into a `tonic::Status` carrying `ErrorInfo`, `RequestInfo` and
    /// the details that belong to the code. The only place errors become
    /// statuses.
    pub fn into_status(self, request_id: &str) -> tonic::Status {
        let mut details = ErrorDetails::new();
        let mut metadata = std::collections::HashMap::new();
        match &self {
            Self::InvalidArgument(violations) => {
                let mut shown: Vec<FieldViolation> = violations
                    .iter()
                    .take(MAX_VIOLATIONS)
                    .map(|v| {
                        FieldViolation::new(
                            clip(&v.field, MAX_DETAIL),
                            clip(&v.description, MAX_DETAIL),
                        )
                    })
                    .collect();
                if violations.len() > MAX_VIOLATIONS {
                    shown.push(FieldViolation::new(
                        "",
                        format!("and {} more violations", violations.len() - MAX_VIOLATIONS),
                    ));
                }
                details.set_bad_request(shown);
            }
            Self::ScopeMissing { required_scope } => {
                metadata.insert("required_scope".to_owned(), required_scope.clone());
            }
            Self::OrganizationForbidden { organization_id } => {
                metadata.insert(
                    "organization_id".to_owned(),
                    clip(organization_id, MAX_DETAIL),
                );
            }
            Self::Unimplemented { method } => {
                metadata.insert("method".to_owned(), clip(method, MAX_DETAIL));
            }
            Self::NotFound {
                resource_type,
                resource_name,
            }
            | Self::AlreadyExists {
                resource_type,
                resource_name,
                ..
            } => {
                details.set_resource_info(resource_type, clip(resource_name, MAX_DETAIL), "", "");
            }
            Self::FailedPrecondition {
                reason,
                subject,
                description,
            } => {
                details.add_precondition_failure_violation(
                    reason,
                    clip(subject, MAX_DETAIL),
                    clip(description, MAX_DETAIL),
                );
            }
            Self::Unavailable { retry_after, .. } => {
                details.set_retry_info(Some(*retry_after));
            }
            Self::ResourceExhausted {
                subject,
                description,
                retry_after,
            } => {
                details.set_retry_info(Some(*retry_after));
                details.add_quota_failure_violation(clip(subject, MAX_DETAIL), description);
            }
            Self::Unauthenticated { .. }
            | Self::OperationForbidden
            | Self::Aborted { .. }
            | Self::Cancelled
            | Self::Internal(_) => {}
        }
        if let Self::Internal(cause) = &self {
            tracing::error!(request_id, %cause, "internal error");
        }
        details.set_error_info(self.reason(), ERROR_DOMAIN, metadata);
        details.set_request_info(request_id, "");
        tonic::Status::with_error_details(
            self.code(),
            clip(&self.public_message(), MAX_MESSAGE),
            details,
        )
    }
}

impl Error {
    /// Whether this is `UNAVAILABLE`: the database or the server, not the
    /// request, and worth a retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// Whether the service or its database failed (`UNAVAILABLE`,
    /// `INTERNAL`), rather than the request not fitting the data.
    pub fn is_fault(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Internal(_))
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(err: sea_orm::DbErr) -> Self {
        crate::store::classify_db_error(err)
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_input_is_bounded() {
        let long = "x".repeat(20_000);
        let violations = (0..1000)
            .map(|i| Violation::new(format!("role_ids[{i}]"), format!("duplicate id `{long}`")))
            .collect();
        let status = Error::InvalidArgument(violations).into_status("r");
        assert!(status.message().chars().count() <= MAX_MESSAGE + 1);
        assert!(
            status.details().len() < 8 * 1024,
            "{} bytes",
            status.details().len()
        );
        let forbidden = Error::OrganizationForbidden {
            organization_id: long,
        }
        .into_status("r");
        assert!(forbidden.details().len() < 2 * 1024);
        assert_eq!(clip("äöü", 2), "äö…");
        assert_eq!(clip("abc", 3), "abc");
    }
}
