//! A few HTTP/2 channels to the server shared by all client tasks, and the
//! authenticated gRPC stubs made from them.

use crate::{Result, fail};
use rolekeeper::pb::{
    longrunning::{Operation, WaitOperationRequest, operations_client::OperationsClient},
    v1::{
        organization_service_client::OrganizationServiceClient,
        role_service_client::RoleServiceClient,
    },
};
use std::{net::SocketAddr, time::Duration};
use tonic::{
    Request, Status,
    metadata::AsciiMetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};
use tonic_health::pb::health_client::HealthClient;

/// Longest time any single RPC may take (WaitOperation included).
const RPC_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one WaitOperation call asks the server to block.
const WAIT_SLICE: Duration = Duration::from_secs(20);

/// WaitOperation calls before an operation counts as stuck.
const MAX_WAITS: usize = 30;

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Debug, Clone)]
pub struct Bearer(AsciiMetadataValue);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> std::result::Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A channel with the bearer token.
pub type Authed = InterceptedService<Channel, Bearer>;

/// The channels and the token; cheap to clone.
#[derive(Debug, Clone)]
pub struct Clients {
    channels: Vec<Channel>,
    bearer: Bearer,
}

impl Clients {
    /// Opens `channels` HTTP/2 connections to `addr`.
    pub async fn connect(addr: SocketAddr, channels: usize, token: &str) -> Result<Self> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(RPC_TIMEOUT)
            .tcp_nodelay(true);
        let mut opened = Vec::with_capacity(channels);
        for _ in 0..channels.max(1) {
            opened.push(endpoint.connect().await?);
        }
        let bearer = Bearer(format!("Bearer {token}").parse()?);
        Ok(Self {
            channels: opened,
            bearer,
        })
    }

    /// The channel client task `client` uses.
    fn channel(&self, client: usize) -> Channel {
        self.channels[client % self.channels.len()].clone()
    }

    fn authed(&self, client: usize) -> Authed {
        InterceptedService::new(self.channel(client), self.bearer.clone())
    }

    /// `grpc.health.v1.Health` (no token).
    pub fn health(&self, client: usize) -> HealthClient<Channel> {
        HealthClient::new(self.channel(client))
    }

    /// `rolekeeper.v1.RoleService`.
    pub fn roles(&self, client: usize) -> RoleServiceClient<Authed> {
        RoleServiceClient::new(self.authed(client))
    }

    /// `rolekeeper.v1.OrganizationService`.
    pub fn orgs(&self, client: usize) -> OrganizationServiceClient<Authed> {
        OrganizationServiceClient::new(self.authed(client))
    }

    /// `google.longrunning.Operations`.
    pub fn ops(&self, client: usize) -> OperationsClient<Authed> {
        OperationsClient::new(self.authed(client)).max_decoding_message_size(64 * 1024 * 1024)
    }
}

/// Waits (WaitOperation, woken by completion) until `operation` is done;
/// an operation that ended with an error is an error.
pub async fn wait_done(ops: &mut OperationsClient<Authed>, operation: Operation) -> Result<()> {
    let mut operation = operation;
    for _ in 0..MAX_WAITS {
        if operation.done {
            return match operation.result {
                Some(rolekeeper::pb::longrunning::operation::Result::Error(status)) => fail(
                    format!("operation {} failed: {}", operation.name, status.message),
                ),
                _ => Ok(()),
            };
        }
        let request = WaitOperationRequest {
            name: operation.name.clone(),
            timeout: Some(prost_types::Duration {
                seconds: i64::try_from(WAIT_SLICE.as_secs()).unwrap_or(20),
                nanos: 0,
            }),
        };
        operation = ops.wait_operation(request).await?.into_inner();
    }
    fail(format!(
        "operation {} is not done after {MAX_WAITS} waits",
        operation.name
    ))
}
