//! The gRPC layer: one file per service. Each handler authenticates,
//! authorizes (scope, then organization, before any validation or lookup),
//! converts the request, calls the domain, and converts the answer back.

mod convert;
mod memberships;
mod operations;
mod organizations;
mod roles;

use crate::{
    auth::{Authenticator, Principal},
    error::{Error, TokenProblem},
    limits::RateLimiter,
    monitor::Readiness,
    operations::{Operation, Queue},
    pb::longrunning,
};
use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};
use tonic::{Request, Response, Status, metadata::MetadataValue};

/// Per-call facts shared with the server's call layer through request
/// extensions: the `x-request-id`, and the principal once authenticated
/// (for the log line).
#[derive(Debug, Clone)]
pub struct CallInfo {
    /// The caller's `x-request-id`, or a generated one.
    pub request_id: String,
    /// Set by the handler after authentication.
    pub principal: Arc<OnceLock<String>>,
}

/// State shared by the four gRPC services.
#[derive(Clone, Debug)]
pub struct Api {
    queue: Queue,
    auth: Arc<Authenticator>,
    max_wait: Duration,
    readiness: Arc<Readiness>,
    rate: Arc<RateLimiter>,
}

/// One authenticated call in progress.
struct Ctx {
    principal: Principal,
    request_id: String,
}

/// Seconds a client should wait before polling a pending operation again.
const RETRY_AFTER_SECONDS: &str = "1";

impl Api {
    /// The API over `queue`, verifying tokens with `auth`; WaitOperation
    /// blocks at most `max_wait`; calls fail fast while `readiness` says so
    /// and are admitted per principal by `rate`.
    pub fn new(
        queue: Queue,
        auth: Authenticator,
        max_wait: Duration,
        readiness: Arc<Readiness>,
        rate: RateLimiter,
    ) -> Self {
        Self {
            queue,
            auth: Arc::new(auth),
            max_wait,
            readiness,
            rate: Arc::new(rate),
        }
    }

    /// Authenticates a call and splits off its message. While the server
    /// drains or the database is down, calls fail fast with `UNAVAILABLE`.
    #[allow(clippy::result_large_err)]
    fn begin<T>(&self, request: Request<T>) -> Result<(Ctx, T), Status> {
        let call = request.extensions().get::<CallInfo>().cloned();
        let request_id = call.as_ref().map_or_else(
            || uuid::Uuid::new_v4().to_string(),
            |c| c.request_id.clone(),
        );
        self.readiness
            .check()
            .map_err(|err| err.into_status(&request_id))?;
        let principal = match request.metadata().get("authorization") {
            None => self.auth.authenticate(None),
            Some(value) => match value.to_str() {
                Ok(text) => self.auth.authenticate(Some(text)),
                Err(_) => Err(Error::Unauthenticated {
                    problem: TokenProblem::Invalid,
                    message: "the authorization metadata is not text".into(),
                }),
            },
        }
        .map_err(|err| err.into_status(&request_id))?;
        if let Some(call) = call {
            let _ = call.principal.set(principal.sub.clone());
        }
        self.rate
            .admit(&principal.sub, std::time::Instant::now())
            .map_err(|err| err.into_status(&request_id))?;
        Ok((
            Ctx {
                principal,
                request_id,
            },
            request.into_inner(),
        ))
    }
}

impl Ctx {
    /// Sends `result`, turning an error into a `Status` with details.
    #[allow(clippy::result_large_err)]
    fn respond<T>(&self, result: Result<T, Error>) -> Result<Response<T>, Status> {
        result
            .map(Response::new)
            .map_err(|err| err.into_status(&self.request_id))
    }

    /// Sends an operation, with `retry-after` while it is not done.
    #[allow(clippy::result_large_err)]
    fn respond_operation(
        &self,
        result: Result<Operation, Error>,
    ) -> Result<Response<longrunning::Operation>, Status> {
        let mut response = self.respond(result.map(convert::operation))?;
        if !response.get_ref().done {
            response.metadata_mut().insert(
                "retry-after",
                MetadataValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        Ok(response)
    }
}

pub use memberships::membership_service;
pub use operations::operations_service;
pub use organizations::organization_service;
pub use roles::role_service;
