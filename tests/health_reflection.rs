//! grpc.health.v1 and server reflection (v1 and v1alpha), both without a
//! token.

#[macro_use]
mod common;

use common::*;
use prost::{Message as _, Name};
use prost_types::FileDescriptorProto;
use rolekeeper::pb::v1::{OperationMetadata, UserRoles};
use tonic::{Code, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

backend_tests!(
    health_reports_serving_without_token,
    reflection_v1_describes_services_and_any_types,
    reflection_v1alpha_describes_services_and_any_types,
    operation_any_types_use_canonical_type_urls,
);

const SERVICES: [&str; 4] = [
    "rolekeeper.v1.OrganizationService",
    "rolekeeper.v1.RoleService",
    "rolekeeper.v1.WorkspaceMembershipService",
    "google.longrunning.Operations",
];

async fn health_reports_serving_without_token(server: TestServer) {
    let mut health = HealthClient::new(server.channel());
    for service in std::iter::once("").chain(SERVICES) {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .must();
        assert_eq!(
            reply.status,
            ServingStatus::Serving as i32,
            "health of `{service}`"
        );
    }
    let status = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .fails();
    assert_eq!(status.code(), Code::NotFound);
}

/// What a reflection conversation returned.
struct Reflected {
    services: Vec<String>,
    files: Vec<FileDescriptorProto>,
}

impl Reflected {
    /// The file that declares the message or service `symbol`.
    fn declaring(&self, symbol: &str) -> Option<&FileDescriptorProto> {
        let (package, name) = symbol.rsplit_once('.')?;
        self.files.iter().find(|f| {
            f.package() == package
                && (f.message_type.iter().any(|m| m.name() == name)
                    || f.service.iter().any(|s| s.name() == name))
        })
    }
}

/// One reflection stream asking for the service list, then each of
/// `symbols` (file containing symbol) and `files` (file by name).
macro_rules! reflection_probe {
    ($name:ident, $($module:ident)::+) => {
        async fn $name(channel: Channel, symbols: &[String], files: &[String]) -> Reflected {
            use $($module)::+::{
                ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
                server_reflection_response::MessageResponse,
            };
            let request = |message: MessageRequest| ServerReflectionRequest {
                host: String::new(),
                message_request: Some(message),
            };
            let mut requests = vec![request(MessageRequest::ListServices(String::new()))];
            requests.extend(
                symbols
                    .iter()
                    .map(|s| request(MessageRequest::FileContainingSymbol(s.clone()))),
            );
            requests.extend(
                files
                    .iter()
                    .map(|f| request(MessageRequest::FileByFilename(f.clone()))),
            );
            let mut stream = ServerReflectionClient::new(channel)
                .server_reflection_info(tokio_stream::iter(requests))
                .await
                .expect("reflection answers without a token")
                .into_inner();
            let mut reflected = Reflected {
                services: Vec::new(),
                files: Vec::new(),
            };
            while let Some(reply) = stream.message().await.expect("reflection stream") {
                match reply.message_response {
                    Some(MessageResponse::ListServicesResponse(list)) => reflected
                        .services
                        .extend(list.service.into_iter().map(|s| s.name)),
                    Some(MessageResponse::FileDescriptorResponse(found)) => {
                        for bytes in &found.file_descriptor_proto {
                            reflected.files.push(
                                FileDescriptorProto::decode(bytes.as_slice())
                                    .expect("a FileDescriptorProto"),
                            );
                        }
                    }
                    other => panic!("unexpected reflection reply: {other:?}"),
                }
            }
            reflected
        }
    };
}

reflection_probe!(probe_v1, tonic_reflection::pb::v1);
reflection_probe!(probe_v1alpha, tonic_reflection::pb::v1alpha);

/// The `Any` type names of a real operation, as grpcurl would see them.
async fn operation_any_types(server: &TestServer) -> Vec<String> {
    server.seed().await;
    let op = server.assign_user_roles(ORG, "alice", &["reader"]).await;
    let roles: UserRoles = op_response(&op);
    assert_eq!(roles.roles.len(), 1);
    assert_eq!(op_metadata(&op).verb, "AssignUserRoles");
    let any_types: Vec<String> = [
        op.metadata.as_ref().map(|m| m.type_url.clone()),
        match &op.result {
            Some(rolekeeper::pb::longrunning::operation::Result::Response(any)) => {
                Some(any.type_url.clone())
            }
            _ => None,
        },
    ]
    .into_iter()
    .flatten()
    .map(|url| url.rsplit('/').next().unwrap_or_default().to_owned())
    .collect();
    assert_eq!(
        any_types,
        [OperationMetadata::full_name(), UserRoles::full_name()],
        "metadata and response types"
    );
    any_types
}

async fn operation_any_types_use_canonical_type_urls(server: TestServer) {
    server.seed().await;
    let op = server.assign_user_roles(ORG, "alice", &["reader"]).await;
    let metadata = op.metadata.as_ref().map(|m| m.type_url.as_str());
    assert_eq!(metadata, Some(type_url::<OperationMetadata>().as_str()));
    let response = match &op.result {
        Some(rolekeeper::pb::longrunning::operation::Result::Response(any)) => {
            any.type_url.as_str()
        }
        other => panic!("no response: {other:?}"),
    };
    assert_eq!(response, "type.googleapis.com/rolekeeper.v1.UserRoles");
}

async fn check_reflection<F, Fut>(server: TestServer, probe: F)
where
    F: Fn(Channel, Vec<String>, Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Reflected>,
{
    let any_types = operation_any_types(&server).await;
    let mut symbols = any_types.clone();
    symbols.extend(SERVICES.iter().map(|s| (*s).to_owned()));
    symbols.push("google.rpc.Status".into());
    let reflected = probe(server.channel(), symbols.clone(), vec![]).await;

    for service in SERVICES {
        assert!(
            reflected.services.iter().any(|s| s == service),
            "`{service}` listed in {:?}",
            reflected.services
        );
    }
    for symbol in &symbols {
        assert!(
            reflected.declaring(symbol).is_some(),
            "reflection resolves `{symbol}`"
        );
    }
    let file = reflected
        .declaring("rolekeeper.v1.UserRoles")
        .expect("checked");
    let message = file
        .message_type
        .iter()
        .find(|m| m.name() == "UserRoles")
        .expect("checked");
    let fields: Vec<&str> = message.field.iter().map(|f| f.name()).collect();
    assert_eq!(fields, ["organization_id", "user_id", "roles"]);

    // Every import of that file can be fetched by name, as grpcurl does.
    let imports = file.dependency.clone();
    assert!(!imports.is_empty());
    let by_name = probe(server.channel(), vec![], imports.clone()).await;
    for import in &imports {
        assert!(
            by_name.files.iter().any(|f| f.name() == import),
            "reflection serves `{import}`"
        );
    }
}

async fn reflection_v1_describes_services_and_any_types(server: TestServer) {
    check_reflection(server, |channel, symbols, files| async move {
        probe_v1(channel, &symbols, &files).await
    })
    .await;
}

async fn reflection_v1alpha_describes_services_and_any_types(server: TestServer) {
    check_reflection(server, |channel, symbols, files| async move {
        probe_v1alpha(channel, &symbols, &files).await
    })
    .await;
}
