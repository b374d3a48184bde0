//! A few HTTP/2 channels to the server shared by all client tasks, the
//! authenticated gRPC stubs made from them, and unary calls whose answers
//! are left undecoded.

use crate::{Result, fail};
use bytes::{Buf, Bytes};
use rolekeeper::pb::{
    longrunning::{Operation, WaitOperationRequest, operations_client::OperationsClient},
    v1::{
        organization_service_client::OrganizationServiceClient,
        role_service_client::RoleServiceClient,
    },
};
use std::{marker::PhantomData, net::SocketAddr, time::Duration};
use tonic::{
    Request, Status,
    codec::{Codec, DecodeBuf, Decoder},
    codegen::http::uri::PathAndQuery,
    metadata::AsciiMetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};
use tonic_prost::{ProstCodec, prost::Message};

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

    /// Client task `client`'s way to call a unary method and take its
    /// answer undecoded; `authed` adds the bearer token.
    pub fn unary(&self, client: usize, authed: bool) -> Unary {
        Unary {
            channel: self.channel(client),
            bearer: authed.then(|| self.bearer.clone()),
        }
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

/// A unary call whose answer is left undecoded.
#[derive(Debug)]
pub struct Unary {
    channel: Channel,
    bearer: Option<Bearer>,
}

impl Unary {
    /// Calls the method at `path` (`/package.Service/Method`) with
    /// `request`; returns the answer's bytes as they came.
    pub async fn call<M: Message + Default + 'static>(
        self,
        path: &'static str,
        request: M,
    ) -> Result<Bytes> {
        let path = PathAndQuery::from_static(path);
        let request = Request::new(request);
        let answer = match self.bearer {
            Some(bearer) => {
                let mut grpc =
                    tonic::client::Grpc::new(InterceptedService::new(self.channel, bearer));
                grpc.ready().await?;
                grpc.unary(request, path, RawCodec::default()).await?
            }
            None => {
                let mut grpc = tonic::client::Grpc::new(self.channel);
                grpc.ready().await?;
                grpc.unary(request, path, RawCodec::default()).await?
            }
        };
        Ok(answer.into_inner())
    }
}

/// Encodes requests of type `M` with prost and takes answers as bytes.
struct RawCodec<M>(PhantomData<M>);

impl<M> Default for RawCodec<M> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<M: Message + Default + 'static> Codec for RawCodec<M> {
    type Encode = M;
    type Decode = Bytes;
    type Encoder = <ProstCodec<M, M> as Codec>::Encoder;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<M, M>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

/// Takes a message's bytes as they are.
struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> std::result::Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}
