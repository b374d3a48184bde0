//! Wiring: database, operation workers, the four services, health,
//! reflection, and the call layer (`x-request-id`, one log line and metrics
//! per call), served on a given listener until a shutdown future resolves.

use crate::{
    api::{self, Api, CallInfo},
    auth::{AuthConfig, Authenticator},
    domain::Service,
    error::Error,
    limits::{InFlight, RateLimiter},
    monitor::{self, Readiness},
    operations::{self, Queue},
    pb,
    store::Store,
};
use http::HeaderValue;
use std::{
    future::Future,
    path::PathBuf,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::{Duration, Instant},
};
use tokio::{net::TcpListener, sync::watch};
use tonic::{body::Body, server::NamedService, transport::server::TcpIncoming};
use tonic_health::ServingStatus;

/// Everything [`run`] needs besides the listener.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// `sqlite://...` or `postgres://...`.
    pub database_url: String,
    /// Secret that verifies HS256 tokens; empty turns HS256 off.
    pub hs256_secret: Vec<u8>,
    /// PEM or JWKS file of RS256/ES256 public keys.
    pub jwt_keys: Option<PathBuf>,
    /// Required `iss` of every token.
    pub jwt_issuer: Option<String>,
    /// Required `aud` of every token.
    pub jwt_audience: Option<String>,
    /// Operation workers in this process (0: accept, never execute).
    pub workers: usize,
    /// How long finished operations are kept.
    pub operation_retention: Duration,
    /// Longest WaitOperation.
    pub max_wait: Duration,
    /// How long a worker's claim on an operation lasts.
    pub operation_lease: Duration,
    /// After shutdown starts, in-flight calls get this long to finish.
    pub drain_timeout: Duration,
    /// Requests per second per principal (0: unlimited).
    pub rate_limit: f64,
    /// Burst size of the per-principal rate limit.
    pub rate_burst: f64,
    /// Calls in flight at once; more are refused with `UNAVAILABLE`.
    pub max_in_flight: usize,
    /// Operations not yet done; more submissions are refused with `UNAVAILABLE`.
    pub max_pending_operations: u64,
    /// Bytes of cached reads, by estimated size (0: no cache).
    pub read_cache_bytes: usize,
    /// On PostgreSQL, whether this replica may become solo (see
    /// [`crate::domain::solo`]).
    pub solo: bool,
    /// Serve TLS (and require client certificates) when set.
    pub tls: Option<TlsSettings>,
}

/// PEM files for TLS.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// Server certificate chain.
    pub cert: PathBuf,
    /// Server private key.
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA (mTLS).
    pub client_ca: Option<PathBuf>,
}

impl TlsSettings {
    fn server_config(&self) -> Result<tonic::transport::ServerTlsConfig, Error> {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let read = |path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| Error::internal(format!("cannot read {}: {e}", path.display())))
        };
        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(read(&self.cert)?, read(&self.key)?));
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(Certificate::from_pem(read(ca)?));
        }
        Ok(config)
    }
}

impl ServerSettings {
    /// Settings with the defaults of `rolekeeper serve` for everything but
    /// the database and the secret.
    pub fn new(database_url: impl Into<String>, hs256_secret: impl Into<Vec<u8>>) -> Self {
        Self {
            database_url: database_url.into(),
            hs256_secret: hs256_secret.into(),
            jwt_keys: None,
            jwt_issuer: None,
            jwt_audience: None,
            workers: 4,
            operation_retention: Duration::from_secs(7 * 86_400),
            max_wait: Duration::from_secs(60),
            operation_lease: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            rate_limit: 0.0,
            rate_burst: 100.0,
            max_in_flight: 1024,
            max_pending_operations: 100_000,
            read_cache_bytes: 256 << 20,
            solo: true,
            tls: None,
        }
    }
}

/// Names of the services whose health is reported individually.
fn service_names() -> [&'static str; 4] {
    [
        pb::v1::organization_service_server::OrganizationServiceServer::<Api>::NAME,
        pb::v1::role_service_server::RoleServiceServer::<Api>::NAME,
        pb::v1::workspace_membership_service_server::WorkspaceMembershipServiceServer::<Api>::NAME,
        pb::longrunning::operations_server::OperationsServer::<Api>::NAME,
    ]
}

/// Migrates the database, starts the workers, and serves gRPC on `listener`
/// until `shutdown` resolves; then stops accepting, finishes in-flight RPCs
/// and running operations, and returns.
pub async fn run(
    settings: ServerSettings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let auth = Authenticator::new(AuthConfig {
        hs256_secret: (!settings.hs256_secret.is_empty()).then(|| settings.hs256_secret.clone()),
        jwt_keys: settings.jwt_keys.clone(),
        issuer: settings.jwt_issuer.clone(),
        audience: settings.jwt_audience.clone(),
    })?;
    let store = Store::connect(&settings.database_url).await?;
    store.migrate().await?;
    let queue = Queue::new(
        Service::new(store.clone(), settings.read_cache_bytes, settings.solo),
        settings.operation_lease,
        settings.max_pending_operations,
        settings.workers > 0,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = operations::spawn_workers(&queue, settings.workers, stop_rx.clone()).await?;
    let retention =
        operations::spawn_retention(&queue, settings.operation_retention, stop_rx.clone());
    let listener_task = operations::spawn_listener(&queue, stop_rx.clone());

    let readiness = Arc::new(Readiness::default());
    let api = Api::new(
        queue,
        auth,
        settings.max_wait,
        readiness.clone(),
        RateLimiter::new(settings.rate_limit, settings.rate_burst),
    );
    let in_flight = InFlight::new(settings.max_in_flight);
    let health = tonic_health::server::HealthReporter::new();
    let (drain_started, mut drain_rx) = watch::channel(false);
    let health_service = crate::health::service(&health, drain_rx.clone());
    monitor::set_health(&health, &service_names(), ServingStatus::Serving).await;
    let probe = monitor::spawn(
        store.clone(),
        readiness.clone(),
        health.clone(),
        service_names().to_vec(),
        stop_rx,
    );
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(Error::internal)?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(Error::internal)?;

    let draining = async move {
        shutdown.await;
        tracing::info!("shutting down: refusing new calls, draining in-flight ones");
        readiness.start_draining();
        monitor::set_health(&health, &service_names(), ServingStatus::NotServing).await;
        let _ = drain_started.send(true);
    };
    let drain_deadline = async move {
        let _ = drain_rx.wait_for(|started| *started).await;
        tokio::time::sleep(settings.drain_timeout).await;
    };
    // Room for oversized bearer tokens to reach authentication, which refuses
    // them with UNAUTHENTICATED; beyond this HTTP/2 itself answers 431.
    let mut builder =
        tonic::transport::Server::builder().http2_max_header_list_size(MAX_HEADER_LIST);
    if let Some(tls) = &settings.tls {
        builder = builder
            .tls_config(tls.server_config()?)
            .map_err(|e| Error::internal(format!("invalid TLS configuration: {e}")))?;
    }
    let serve = builder
        .layer(tower::layer::layer_fn(move |inner| CallService {
            inner,
            in_flight: in_flight.clone(),
        }))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(api::organization_service(api.clone()))
        .add_service(api::role_service(api.clone()))
        .add_service(api::membership_service(api.clone()))
        .add_service(api::operations_service(api))
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY small responses wait for delayed ACKs (~40 ms).
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            draining,
        );
    let served = tokio::select! {
        served = serve => served.map_err(Error::internal),
        () = drain_deadline => {
            tracing::warn!(timeout = ?settings.drain_timeout, "drain timeout: dropping calls still in flight");
            Ok(())
        }
    };

    let _ = stop_tx.send(true);
    workers.join().await;
    let _ = retention.await;
    let _ = listener_task.await;
    let _ = probe.await;
    store.close().await?;
    served
}

/// Largest request header block accepted, in bytes.
const MAX_HEADER_LIST: u32 = 64 * 1024;

/// Longest `x-request-id` accepted from a caller; longer ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// Reads or generates `x-request-id`, hands it to the handlers through
/// request extensions, returns it on every response, and logs and counts
/// each call with its method, code, latency and principal.
#[derive(Clone, Debug)]
struct CallService<S> {
    inner: S,
    in_flight: InFlight,
}

/// Health and reflection stay answerable under overload.
fn exempt_from_shedding(path: &str) -> bool {
    path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.")
}

/// Whether `path` names a call that changes nothing (`Get*`, `List*`,
/// `CheckPermission`, `WaitOperation`, health, reflection). Those that
/// succeed are logged at `DEBUG`: a permission service answers many of
/// them per request of its callers; changes and failures stay at `INFO`.
fn is_read(path: &str) -> bool {
    let rpc = path.rsplit('/').next().unwrap_or_default();
    [
        "Get",
        "List",
        "Check",
        "Wait",
        "Watch",
        "ServerReflectionInfo",
    ]
    .iter()
    .any(|prefix| rpc.starts_with(prefix))
}

/// Largest request message accepted, in bytes (plus the 5-byte gRPC frame
/// header). Larger ones get `INVALID_ARGUMENT` with the usual details.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Reads a unary request body, refusing more than [`MAX_REQUEST_BYTES`].
async fn bounded_body(body: Body) -> Result<Body, Error> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, MAX_REQUEST_BYTES + 5);
    match limited.collect().await {
        Ok(collected) => Ok(Body::new(http_body_util::Full::new(collected.to_bytes()))),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(Error::invalid(
            "request",
            format!("the message is larger than {MAX_REQUEST_BYTES} bytes"),
        )),
        Err(err) => Err(Error::invalid(
            "request",
            format!("unreadable request body: {err}"),
        )),
    }
}

/// How tonic's message starts when a request message does not decode.
const UNDECODABLE: &str = "failed to decode Protobuf message: ";

/// The bare statuses tonic answers by itself, as this service's errors with
/// their details: a request message that does not decode (tonic says
/// `INTERNAL`) is the caller's mistake, `INVALID_ARGUMENT`; an unknown
/// method (`UNIMPLEMENTED` without a message) gets a message and `ErrorInfo`.
fn framework_error(headers: &http::HeaderMap, method: &str) -> Option<Error> {
    // This service's own errors always carry details and tonic's never do:
    // only the latter are parsed.
    if headers.contains_key(tonic::Status::GRPC_STATUS_DETAILS) {
        return None;
    }
    let status = tonic::Status::from_header_map(headers)?;
    match status.code() {
        tonic::Code::Internal => status.message().strip_prefix(UNDECODABLE).map(|why| {
            Error::invalid(
                "request",
                format!("is not a valid request message of this method: {why}"),
            )
        }),
        tonic::Code::Unimplemented if status.message().is_empty() => Some(Error::Unimplemented {
            method: method.to_owned(),
        }),
        _ => None,
    }
}

impl<S, RB> tower::Service<http::Request<Body>> for CallService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID)
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let method = request.uri().path().to_owned();
        let refuse = move |err: Error, request_id: &str| {
            let mut response = err.into_status(request_id).into_http::<RB>();
            if let Ok(value) = HeaderValue::from_str(request_id) {
                response.headers_mut().insert("x-request-id", value);
            }
            response
        };
        let exempt = exempt_from_shedding(&method);
        let slot = if exempt {
            None
        } else {
            match self.in_flight.enter() {
                Ok(slot) => Some(slot),
                Err(err) => {
                    tracing::warn!(method, request_id, "overloaded: call refused");
                    metrics::counter!("rolekeeper_rpc_shed_total").increment(1);
                    let response = refuse(err, &request_id);
                    return Box::pin(async move { Ok(response) });
                }
            }
        };
        let principal = Arc::new(OnceLock::new());
        request.extensions_mut().insert(CallInfo {
            request_id: request_id.clone(),
            principal: principal.clone(),
        });
        let started = Instant::now();
        // The instance polled ready is the one to call; keep a fresh clone.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(async move {
            // Our services are unary: read the message whole, within the limit.
            // Health and reflection (streaming) pass through untouched.
            if !exempt {
                let (parts, body) = request.into_parts();
                match bounded_body(body).await {
                    Ok(body) => request = http::Request::from_parts(parts, body),
                    Err(err) => return Ok(refuse(err, &request_id)),
                }
            }
            let mut response = inner.call(request).await?;
            drop(slot);
            let mut method_label = method.as_str();
            if let Some(err) = framework_error(response.headers(), &method) {
                if matches!(err, Error::Unimplemented { .. }) {
                    // Callers choose paths: one label for all unknown ones.
                    method_label = "unknown";
                }
                response = refuse(err, &request_id);
            }
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map_or(tonic::Code::Ok, tonic::Code::from);
            let latency = started.elapsed();
            let code_name = format!("{code:?}");
            metrics::counter!("rolekeeper_rpc_requests_total", "method" => method_label.to_owned(), "code" => code_name.clone())
                .increment(1);
            metrics::histogram!("rolekeeper_rpc_duration_seconds", "method" => method_label.to_owned())
                .record(latency.as_secs_f64());
            macro_rules! log_call {
                ($level:expr) => {
                    tracing::event!(
                        $level,
                        method,
                        code = code_name,
                        latency_ms = latency.as_secs_f64() * 1000.0,
                        principal = principal.get().map_or("-", String::as_str),
                        request_id,
                        "rpc"
                    )
                };
            }
            if code == tonic::Code::Ok && is_read(&method) {
                log_call!(tracing::Level::DEBUG);
            } else {
                log_call!(tracing::Level::INFO);
            }
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert("x-request-id", value);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_read;

    #[test]
    fn reads_are_told_from_changes() {
        for path in [
            "/rolekeeper.v1.RoleService/GetRole",
            "/rolekeeper.v1.RoleService/ListUserRoles",
            "/rolekeeper.v1.RoleService/CheckPermission",
            "/google.longrunning.Operations/WaitOperation",
            "/grpc.health.v1.Health/Check",
        ] {
            assert!(is_read(path), "{path}");
        }
        for path in [
            "/rolekeeper.v1.RoleService/AssignUserRoles",
            "/rolekeeper.v1.RoleService/CreateRole",
            "/google.longrunning.Operations/CancelOperation",
            "/rolekeeper.v1.OrganizationService/DeleteUser",
        ] {
            assert!(!is_read(path), "{path}");
        }
    }
}
