//! The `rolekeeper` binary as operators meet it: development mode, `token`,
//! `health`, `migrate`, `--help`, configuration errors, metrics, and a
//! graceful SIGTERM that loses no accepted operation and ends open health
//! watches.

mod process_support;

use process_support::{SECRET, Server, http_get, run_binary};
use rolekeeper::pb::{
    longrunning::{WaitOperationRequest, operations_client::OperationsClient},
    v1::{
        self, organization_service_client::OrganizationServiceClient,
        role_service_client::RoleServiceClient,
    },
};
use std::time::Duration;
use tonic::{Request, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;

fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    request
}

async fn channel(server: &Server) -> Channel {
    Channel::from_shared(server.url())
        .expect("valid url")
        .connect()
        .await
        .expect("connect")
}

fn mint(scope: &str, org: Option<&str>) -> String {
    rolekeeper::auth::mint_hs256(
        SECRET.as_bytes(),
        "process-test",
        org,
        scope,
        Duration::from_secs(600),
    )
    .expect("mint")
}

#[tokio::test]
async fn dev_mode_prints_a_working_admin_token_and_token_reuses_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path(), &[], &[]);
    let lines = server.stdout_lines(2);
    assert!(lines[0].contains("development admin token"), "{lines:?}");
    let token = lines[1].trim().to_owned();

    let mut orgs = OrganizationServiceClient::new(channel(&server).await);
    let created = orgs
        .create_organization(authed(
            v1::CreateOrganizationRequest {
                organization: Some(v1::Organization {
                    organization_id: "dev".into(),
                    ..Default::default()
                }),
            },
            &token,
        ))
        .await
        .expect("the printed token is an admin token")
        .into_inner();
    assert_eq!(created.organization_id, "dev");

    let key = dir.path().join("rolekeeper-dev.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let output = run_binary(
        dir.path(),
        &[
            "token",
            "--sub",
            "ops",
            "--org",
            "dev",
            "--scope",
            "organization:read",
        ],
        &[],
    );
    assert!(output.status.success());
    let minted = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(
        minted.lines().count(),
        1,
        "token prints nothing else: {minted}"
    );
    let got = orgs
        .get_organization(authed(
            v1::GetOrganizationRequest {
                organization_id: "dev".into(),
            },
            minted.trim(),
        ))
        .await
        .expect("a token minted with the dev key is accepted");
    assert_eq!(got.into_inner().organization_id, "dev");
}

#[test]
fn dev_mode_refuses_a_non_loopback_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run_binary(dir.path(), &["serve", "--listen", "0.0.0.0:0"], &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("only listens on loopback"), "{stderr}");
}

#[test]
fn serve_help_documents_every_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run_binary(dir.path(), &["serve", "--help"], &[]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for env in [
        "ROLEKEEPER_LISTEN",
        "ROLEKEEPER_DATABASE_URL",
        "ROLEKEEPER_METRICS_LISTEN",
        "ROLEKEEPER_LOG_FORMAT",
        "ROLEKEEPER_HS256_SECRET",
        "ROLEKEEPER_HS256_SECRET_FILE",
        "ROLEKEEPER_JWT_KEYS",
        "ROLEKEEPER_JWT_ISSUER",
        "ROLEKEEPER_JWT_AUDIENCE",
        "ROLEKEEPER_WORKERS",
        "ROLEKEEPER_OPERATION_RETENTION",
        "ROLEKEEPER_MAX_WAIT",
        "ROLEKEEPER_DRAIN_TIMEOUT",
        "ROLEKEEPER_OPERATION_LEASE",
        "ROLEKEEPER_RATE_LIMIT",
        "ROLEKEEPER_RATE_BURST",
        "ROLEKEEPER_MAX_IN_FLIGHT",
        "ROLEKEEPER_MAX_PENDING_OPERATIONS",
        "ROLEKEEPER_READ_CACHE_MIB",
        "ROLEKEEPER_SOLO",
        "ROLEKEEPER_TLS_CERT",
        "ROLEKEEPER_TLS_KEY",
        "ROLEKEEPER_TLS_CLIENT_CA",
    ] {
        assert!(help.contains(env), "--help does not mention {env}:\n{help}");
    }
}

#[test]
fn bad_settings_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 6] = [
        (&["serve", "--workers", "many"], &[], "--workers"),
        (
            &["serve"],
            &[("ROLEKEEPER_READ_CACHE_MIB", "-1")],
            "--read-cache-mib",
        ),
        (&["serve"], &[("ROLEKEEPER_SOLO", "maybe")], "--solo"),
        (
            &["serve"],
            &[("ROLEKEEPER_OPERATION_RETENTION", "1w")],
            "7d",
        ),
        (
            &["serve"],
            &[("ROLEKEEPER_METRICS_LISTEN", "nowhere")],
            "nowhere",
        ),
        (
            &["serve"],
            &[("ROLEKEEPER_HS256_SECRET", "short")],
            "at least 32 bytes",
        ),
    ];
    for (args, envs, expected) in cases {
        let output = run_binary(dir.path(), args, envs);
        assert!(!output.status.success(), "{args:?} {envs:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?} {envs:?}: {stderr}");
    }
}

#[test]
fn secrets_never_reach_the_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(
        dir.path(),
        &[],
        &[
            ("ROLEKEEPER_HS256_SECRET", SECRET),
            ("ROLEKEEPER_LOG_FORMAT", "json"),
        ],
    );
    let token = mint("admin", None);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut orgs = OrganizationServiceClient::new(channel(&server).await);
        // A change: successful reads are logged at DEBUG, changes at INFO.
        let _ = orgs
            .create_organization(authed(
                v1::CreateOrganizationRequest {
                    organization: Some(v1::Organization {
                        organization_id: "logged".into(),
                        ..Default::default()
                    }),
                },
                &token,
            ))
            .await
            .expect("created");
    });
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(30)).success());
    let logs = server.stderr();
    assert!(
        logs.contains("\"method\":\"/rolekeeper.v1.OrganizationService/CreateOrganization\""),
        "{logs}"
    );
    assert!(logs.contains("\"principal\":\"process-test\""), "{logs}");
    assert!(!logs.contains(SECRET), "the secret leaked into the logs");
    assert!(!logs.contains(&token), "the token leaked into the logs");
}

#[tokio::test]
async fn metrics_health_and_migrate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    let output = run_binary(
        dir.path(),
        &["migrate"],
        &[("ROLEKEEPER_DATABASE_URL", &db)],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let metrics = process_support::free_addr();
    let metrics_arg = metrics.to_string();
    let server = Server::start(
        dir.path(),
        &["--metrics-listen", &metrics_arg],
        &[
            ("ROLEKEEPER_HS256_SECRET", SECRET),
            ("ROLEKEEPER_DATABASE_URL", &db),
        ],
    );
    let addr = server.addr.to_string();
    let health = run_binary(dir.path(), &["health", "--addr", &addr], &[]);
    assert!(health.status.success());
    assert_eq!(String::from_utf8_lossy(&health.stdout).trim(), "SERVING");

    let channel = channel(&server).await;
    let mut orgs = OrganizationServiceClient::new(channel.clone());
    let missing = orgs
        .get_organization(authed(
            v1::GetOrganizationRequest {
                organization_id: "nope".into(),
            },
            &mint("admin", None),
        ))
        .await
        .expect_err("no such organization");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    // Callers choose the path: unknown ones share one label.
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let unknown = grpc
        .unary(
            Request::new(()),
            http::uri::PathAndQuery::from_static("/made.up.Service/Method"),
            tonic_prost::ProstCodec::<(), ()>::default(),
        )
        .await
        .expect_err("no such method");
    assert_eq!(unknown.code(), tonic::Code::Unimplemented);

    let text = http_get(metrics, "/metrics");
    assert!(
        text.contains(r#"rolekeeper_rpc_requests_total{method="/rolekeeper.v1.OrganizationService/GetOrganization",code="NotFound"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"rolekeeper_rpc_requests_total{method="unknown",code="Unimplemented"} 1"#),
        "{text}"
    );
    assert!(!text.contains("made.up"), "{text}");
    assert!(
        text.contains("rolekeeper_rpc_duration_seconds_bucket"),
        "{text}"
    );
    for gauge in [
        r#"rolekeeper_operations{state="pending"} 0"#,
        "rolekeeper_operation_queue_depth 0",
        "rolekeeper_operation_oldest_pending_age_seconds 0",
        r#"rolekeeper_db_pool_connections{state="idle"}"#,
        "rolekeeper_database_up 1",
    ] {
        assert!(text.contains(gauge), "missing {gauge}:\n{text}");
    }

    drop(server);
    let down = run_binary(dir.path(), &["health", "--addr", &addr], &[]);
    assert!(
        !down.status.success(),
        "health must fail when nothing listens"
    );
}

/// Submits operations from several clients, sends SIGTERM while they are in
/// flight, and checks the server exits 0 and every accepted operation is
/// applied (after a restart if it had not run yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_loses_no_accepted_operation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let envs = [
        ("ROLEKEEPER_HS256_SECRET", SECRET),
        ("ROLEKEEPER_DATABASE_URL", db.as_str()),
    ];
    let mut server = Server::start(dir.path(), &[], &envs);
    let token = mint("admin", None);
    let channel = channel(&server).await;
    let mut orgs = OrganizationServiceClient::new(channel.clone());
    let mut roles = RoleServiceClient::new(channel.clone());
    orgs.create_organization(authed(
        v1::CreateOrganizationRequest {
            organization: Some(v1::Organization {
                organization_id: "o".into(),
                ..Default::default()
            }),
        },
        &token,
    ))
    .await
    .expect("org");
    for i in 0..20 {
        orgs.create_user(authed(
            v1::CreateUserRequest {
                organization_id: "o".into(),
                user: Some(v1::User {
                    user_id: format!("u{i}"),
                    ..Default::default()
                }),
            },
            &token,
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
            &token,
        ))
        .await
        .expect("role");

    let mut clients = Vec::new();
    for i in 0..20 {
        let mut roles = RoleServiceClient::new(channel.clone());
        let token = token.clone();
        clients.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            for _ in 0..10 {
                let request = authed(
                    v1::AssignUserRolesRequest {
                        organization_id: "o".into(),
                        user_id: format!("u{i}"),
                        role_ids: vec!["r".into()],
                        request_id: String::new(),
                    },
                    &token,
                );
                match roles.assign_user_roles(request).await {
                    Ok(op) => accepted.push(op.into_inner().name),
                    Err(_) => break,
                }
            }
            accepted
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.terminate();
    let mut accepted = Vec::new();
    for client in clients {
        accepted.extend(client.await.expect("client task"));
    }
    let status = server.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "exit status {status}");
    assert!(
        !accepted.is_empty(),
        "no operation was accepted before SIGTERM"
    );

    let server = Server::start(dir.path(), &[], &envs);
    let channel = channel_for(&server).await;
    let mut ops = OperationsClient::new(channel);
    for name in &accepted {
        let op = ops
            .wait_operation(authed(
                WaitOperationRequest {
                    name: name.clone(),
                    timeout: Some(prost_types::Duration {
                        seconds: 30,
                        nanos: 0,
                    }),
                },
                &token,
            ))
            .await
            .expect("accepted operations survive a restart")
            .into_inner();
        assert!(op.done, "{name} not done after restart");
        assert!(
            matches!(
                op.result,
                Some(rolekeeper::pb::longrunning::operation::Result::Response(_))
            ),
            "{name} did not succeed: {:?}",
            op.result
        );
    }
}

/// A health `Watch` left open (as a sidecar keeps one) sees `NOT_SERVING`
/// on SIGTERM and then ends, so the server exits instead of waiting out its
/// drain timeout (an hour here; the test allows a minute). The client's
/// connection keeps running on its own thread while the test waits for the
/// exit, answering the server's closing HTTP/2 ping as a sidecar would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_health_watches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
    let mut server = Server::start(
        dir.path(),
        &["--drain-timeout", "1h"],
        &[
            ("ROLEKEEPER_HS256_SECRET", SECRET),
            ("ROLEKEEPER_DATABASE_URL", &db),
        ],
    );
    let mut health = HealthClient::new(channel(&server).await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = watch.message().await.expect("first update");
    assert_eq!(first.map(|r| r.status), Some(ServingStatus::Serving as i32));

    server.terminate();
    let next = watch.message().await.expect("update on SIGTERM");
    assert_eq!(
        next.map(|r| r.status),
        Some(ServingStatus::NotServing as i32)
    );
    let end = tokio::time::timeout(Duration::from_secs(60), watch.message())
        .await
        .expect("the watch ends within a minute")
        .expect_err("the watch ends with an error");
    assert_eq!(end.code(), tonic::Code::Unavailable, "{end:?}");
    assert_eq!(
        end.get_error_details()
            .error_info()
            .map(|i| i.reason.clone()),
        Some("SHUTTING_DOWN".to_owned())
    );
    let status = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(60)));
    assert!(status.success(), "exit status {status}");
}

async fn channel_for(server: &Server) -> Channel {
    channel(server).await
}
