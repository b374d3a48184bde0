//! Admission control: the per-principal rate limit answers
//! RESOURCE_EXHAUSTED with RetryInfo and QuotaFailure; the bounds on calls in
//! flight and on the operation queue answer UNAVAILABLE with RetryInfo
//! instead of queueing without limit. Requests the server cannot read (too
//! large, not decodable, for an unknown method) get documented errors with
//! details too.

use rolekeeper::{
    ServerSettings,
    pb::{
        longrunning::{WaitOperationRequest, operations_client::OperationsClient},
        v1::{
            self, organization_service_client::OrganizationServiceClient,
            role_service_client::RoleServiceClient,
        },
    },
};
use std::time::Duration;
use tonic::{Code, Request, Status, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;

const SECRET: &[u8] = b"limits-test-secret-0123456789abcdef";

struct Running {
    channel: Channel,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(configure: impl FnOnce(&mut ServerSettings)) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
    let mut settings = ServerSettings::new(url, SECRET);
    configure(&mut settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(rolekeeper::run(settings, listener, async move {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect_lazy();
    Running {
        channel,
        _dir: dir,
        stop: Some(stop),
    }
}

fn authed<T>(message: T, sub: &str) -> Request<T> {
    let token = rolekeeper::auth::mint_hs256(SECRET, sub, None, "admin", Duration::from_secs(600))
        .expect("mint");
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

async fn list_orgs(channel: &Channel, sub: &str) -> Result<(), Status> {
    let mut orgs = OrganizationServiceClient::new(channel.clone());
    for _ in 0..50 {
        match orgs
            .list_organizations(authed(v1::ListOrganizationsRequest::default(), sub))
            .await
        {
            Err(status)
                if status.code() == Code::Unavailable && status.message().contains("transport") =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other.map(drop),
        }
    }
    Err(Status::unavailable("server did not start"))
}

fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn rate_limit_is_per_principal_with_retry_info_and_quota_failure() {
    let server = start(|s| {
        s.rate_limit = 1.0;
        s.rate_burst = 3.0;
    })
    .await;
    for _ in 0..3 {
        list_orgs(&server.channel, "alice")
            .await
            .expect("within the burst");
    }
    let refused = list_orgs(&server.channel, "alice")
        .await
        .expect_err("the burst is spent");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(reason(&refused), "RATE_LIMITED");
    let details = refused.get_error_details();
    let retry = details
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(retry > Duration::ZERO && retry <= Duration::from_secs(1));
    let quota = details.quota_failure().expect("QuotaFailure");
    assert_eq!(quota.violations[0].subject, "principal:alice");
    list_orgs(&server.channel, "bob")
        .await
        .expect("another principal has its own bucket");
}

#[tokio::test]
async fn full_in_flight_slots_shed_calls_but_not_health() {
    let server = start(|s| {
        s.max_in_flight = 1;
        s.workers = 0;
    })
    .await;
    let mut orgs = OrganizationServiceClient::new(server.channel.clone());
    list_orgs(&server.channel, "admin").await.expect("up");
    orgs.create_organization(authed(
        v1::CreateOrganizationRequest {
            organization: Some(v1::Organization {
                organization_id: "o".into(),
                ..Default::default()
            }),
        },
        "admin",
    ))
    .await
    .expect("org");
    orgs.create_user(authed(
        v1::CreateUserRequest {
            organization_id: "o".into(),
            user: Some(v1::User {
                user_id: "u".into(),
                ..Default::default()
            }),
        },
        "admin",
    ))
    .await
    .expect("user");
    // Hold the only slot with a WaitOperation that cannot finish (no workers).
    RoleServiceClient::new(server.channel.clone())
        .create_role(authed(
            v1::CreateRoleRequest {
                organization_id: "o".into(),
                role: Some(v1::Role {
                    role_id: "r".into(),
                    name: "R".into(),
                    ..Default::default()
                }),
            },
            "admin",
        ))
        .await
        .expect("role");
    let name = RoleServiceClient::new(server.channel.clone())
        .assign_user_roles(authed(
            v1::AssignUserRolesRequest {
                organization_id: "o".into(),
                user_id: "u".into(),
                role_ids: vec!["r".into()],
                request_id: String::new(),
            },
            "admin",
        ))
        .await
        .expect("accepted")
        .into_inner()
        .name;
    let mut ops = OperationsClient::new(server.channel.clone());
    let (entered, mut entered_rx) = tokio::sync::oneshot::channel();
    let waiter = tokio::spawn(async move {
        let call = ops.wait_operation(authed(
            WaitOperationRequest {
                name,
                timeout: Some(prost_types::Duration {
                    seconds: 30,
                    nanos: 0,
                }),
            },
            "admin",
        ));
        let _ = entered.send(());
        call.await
    });
    let _ = (&mut entered_rx).await;
    let mut shed = None;
    for _ in 0..100 {
        match list_orgs(&server.channel, "admin").await {
            Err(status) if reason(&status) == "OVERLOADED" => {
                shed = Some(status);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let shed = shed.expect("a second call is shed while the slot is held");
    assert_eq!(shed.code(), Code::Unavailable);
    assert!(shed.get_error_details().retry_info().is_some());
    let health = HealthClient::new(server.channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health is exempt")
        .into_inner();
    assert_eq!(health.status(), ServingStatus::Serving);
    waiter.abort();
}

#[tokio::test]
async fn a_full_operation_queue_refuses_new_operations() {
    let server = start(|s| {
        s.workers = 0;
        s.max_pending_operations = 2;
    })
    .await;
    list_orgs(&server.channel, "admin").await.expect("up");
    let mut orgs = OrganizationServiceClient::new(server.channel.clone());
    let mut roles = RoleServiceClient::new(server.channel.clone());
    orgs.create_organization(authed(
        v1::CreateOrganizationRequest {
            organization: Some(v1::Organization {
                organization_id: "o".into(),
                ..Default::default()
            }),
        },
        "admin",
    ))
    .await
    .expect("org");
    for u in ["u1", "u2", "u3"] {
        orgs.create_user(authed(
            v1::CreateUserRequest {
                organization_id: "o".into(),
                user: Some(v1::User {
                    user_id: u.into(),
                    ..Default::default()
                }),
            },
            "admin",
        ))
        .await
        .expect("user");
    }
    roles
        .create_role(authed(
            v1::CreateRoleRequest {
                organization_id: "o".into(),
                role: Some(v1::Role {
                    role_id: "r".into(),
                    name: "R".into(),
                    ..Default::default()
                }),
            },
            "admin",
        ))
        .await
        .expect("role");
    let assign = |user: &str| {
        authed(
            v1::AssignUserRolesRequest {
                organization_id: "o".into(),
                user_id: user.into(),
                role_ids: vec!["r".into()],
                request_id: String::new(),
            },
            "admin",
        )
    };
    roles.assign_user_roles(assign("u1")).await.expect("first");
    roles.assign_user_roles(assign("u2")).await.expect("second");
    let full = roles
        .assign_user_roles(assign("u3"))
        .await
        .expect_err("the queue is full");
    assert_eq!(full.code(), Code::Unavailable);
    assert_eq!(reason(&full), "QUEUE_FULL");
    assert!(full.get_error_details().retry_info().is_some());
}

#[tokio::test]
async fn an_oversized_message_is_invalid_argument_with_details() {
    let server = start(|_| {}).await;
    list_orgs(&server.channel, "admin").await.expect("up");
    let refused = RoleServiceClient::new(server.channel.clone())
        .create_role(authed(
            v1::CreateRoleRequest {
                organization_id: "o".into(),
                role: Some(v1::Role {
                    name: "big".into(),
                    description: "x".repeat(5 * 1024 * 1024),
                    ..Default::default()
                }),
            },
            "admin",
        ))
        .await
        .expect_err("5 MiB is over the limit");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let details = refused.get_error_details();
    assert_eq!(
        details
            .bad_request()
            .map(|b| b.field_violations[0].field.as_str()),
        Some("request")
    );
    assert!(details.request_info().is_some());
}

/// Sends `message` to `path` as it is, whatever the method expects.
async fn raw_call(
    channel: &Channel,
    path: &'static str,
    message: prost_types::Duration,
) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<prost_types::Duration, ()>::default();
    grpc.unary(
        authed(message, "admin"),
        http::uri::PathAndQuery::from_static(path),
        codec,
    )
    .await
    .map(drop)
}

#[tokio::test]
async fn an_undecodable_message_is_invalid_argument_with_details() {
    let server = start(|_| {}).await;
    list_orgs(&server.channel, "admin").await.expect("up");
    // Field 1 of GetRoleRequest is a string; a Duration's is a varint.
    let refused = raw_call(
        &server.channel,
        "/rolekeeper.v1.RoleService/GetRole",
        prost_types::Duration {
            seconds: 7,
            nanos: 0,
        },
    )
    .await
    .expect_err("not a GetRoleRequest");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let details = refused.get_error_details();
    let violation = &details.bad_request().expect("BadRequest").field_violations[0];
    assert_eq!(violation.field, "request");
    assert!(
        violation.description.contains("GetRoleRequest"),
        "{violation:?}"
    );
    assert_eq!(reason(&refused), "INVALID_ARGUMENT");
    assert!(details.request_info().is_some());
}

#[tokio::test]
async fn an_unknown_method_is_unimplemented_with_details() {
    let server = start(|_| {}).await;
    list_orgs(&server.channel, "admin").await.expect("up");
    for path in [
        "/rolekeeper.v1.RoleService/NoSuchMethod",
        "/no.such.Service/Method",
    ] {
        let refused = raw_call(&server.channel, path, prost_types::Duration::default())
            .await
            .expect_err("no such method");
        assert_eq!(refused.code(), Code::Unimplemented, "{path}: {refused:?}");
        assert!(refused.message().contains(path), "{path}: {refused:?}");
        let details = refused.get_error_details();
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "METHOD_NOT_FOUND");
        assert_eq!(info.metadata.get("method").map(String::as_str), Some(path));
        assert!(details.request_info().is_some());
    }
}
