//! Health that means something: with its own throwaway PostgreSQL cluster,
//! the test stops the database under a running server and checks that
//! health turns NOT_SERVING and calls fail fast with UNAVAILABLE + RetryInfo,
//! then starts it again and checks that service resumes without a restart.
//! Both for a plain read and for a cached one, which first asks the
//! database for its organization's version on a connection of its own.
//! Needs the PostgreSQL 15 server binaries; without them it is skipped,
//! unless `REQUIRE_POSTGRES=1`.

use rolekeeper::{
    ServerSettings,
    pb::v1::{
        self, organization_service_client::OrganizationServiceClient,
        role_service_client::RoleServiceClient,
    },
};
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};
use tonic::{Code, Request, Status, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const SECRET: &[u8] = b"outage-test-secret-0123456789abcdef";

/// A private PostgreSQL cluster in a temporary directory.
struct Cluster {
    dir: PathBuf,
    port: u16,
}

fn as_postgres(command: &str) -> bool {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let status = if is_root {
        Command::new("su")
            .args(["postgres", "-s", "/bin/bash", "-c", command])
            .status()
    } else {
        Command::new("bash").args(["-c", command]).status()
    };
    status.is_ok_and(|s| s.success())
}

impl Cluster {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("rk-outage-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let _ = Command::new("chown")
            .args(["postgres:postgres", &dir.display().to_string()])
            .status();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let cluster = Self { dir, port };
        assert!(
            as_postgres(&format!(
                "{PG_BIN}/initdb -D '{}' -U postgres -A trust --no-sync >/dev/null",
                cluster.data().display()
            )),
            "initdb failed"
        );
        cluster.pg_ctl_start();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn pg_ctl_start(&self) {
        assert!(
            as_postgres(&format!(
                "{PG_BIN}/pg_ctl -D '{data}' -l '{dir}/log' -w -o \"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='{dir}'\" start >/dev/null",
                data = self.data().display(),
                dir = self.dir.display(),
                port = self.port
            )),
            "pg_ctl start failed"
        );
    }

    fn pg_ctl_stop(&self) {
        assert!(
            as_postgres(&format!(
                "{PG_BIN}/pg_ctl -D '{}' -m immediate -w stop >/dev/null",
                self.data().display()
            )),
            "pg_ctl stop failed"
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        as_postgres(&format!(
            "{PG_BIN}/pg_ctl -D '{}' -m immediate stop >/dev/null 2>&1",
            self.data().display()
        ));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn health(channel: &Channel) -> ServingStatus {
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "rolekeeper.v1.RoleService".into(),
        })
        .await
        .expect("health answers even while the database is down")
        .into_inner()
        .status()
}

async fn wait_for(channel: &Channel, wanted: ServingStatus) {
    for _ in 0..300 {
        if health(channel).await == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("health never became {wanted:?}");
}

fn authorized<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

/// GetOrganization of `o`, and CheckPermission of a user it does not have
/// (a cached read: NOT_FOUND once the database answers).
async fn reads(channel: &Channel, token: &str) -> [Result<(), Status>; 2] {
    let org = OrganizationServiceClient::new(channel.clone())
        .get_organization(authorized(
            token,
            v1::GetOrganizationRequest {
                organization_id: "o".into(),
            },
        ))
        .await
        .map(|org| assert_eq!(org.into_inner().organization_id, "o"));
    let check = RoleServiceClient::new(channel.clone())
        .check_permission(authorized(
            token,
            v1::CheckPermissionRequest {
                organization_id: "o".into(),
                user_id: "nobody".into(),
                permission: "documents.read".into(),
                workspace_id: String::new(),
            },
        ))
        .await
        .map(drop);
    let check = match check {
        Err(status) if status.code() == Code::NotFound => Ok(()),
        other => other,
    };
    [org, check]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_flips_health_and_fails_fast() {
    if !Path::new(PG_BIN).join("initdb").exists() {
        assert!(
            std::env::var("REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "REQUIRE_POSTGRES=1 but {PG_BIN}/initdb is missing"
        );
        eprintln!("skipped: no PostgreSQL server binaries in {PG_BIN}");
        return;
    }
    let cluster = Cluster::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rolekeeper::run(
        ServerSettings::new(cluster.url(), SECRET),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    wait_for(&channel, ServingStatus::Serving).await;
    let token =
        rolekeeper::auth::mint_hs256(SECRET, "ops", None, "admin", Duration::from_secs(600))
            .expect("mint");
    let mut orgs = OrganizationServiceClient::new(channel.clone());
    let mut create = Request::new(v1::CreateOrganizationRequest {
        organization: Some(v1::Organization {
            organization_id: "o".into(),
            ..Default::default()
        }),
    });
    create.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    orgs.create_organization(create).await.expect("created");

    for answer in reads(&channel, &token).await {
        answer.expect("both reads answer while the database is up");
    }

    cluster.pg_ctl_stop();
    wait_for(&channel, ServingStatus::NotServing).await;
    let during = tokio::time::timeout(Duration::from_secs(15), reads(&channel, &token))
        .await
        .expect("a call during the outage must not hang");
    for answer in during {
        let status = answer.expect_err("the database is down");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        let details = status.get_error_details();
        assert!(
            details.retry_info().is_some(),
            "UNAVAILABLE carries RetryInfo"
        );
        assert_eq!(
            details.error_info().map(|i| i.reason.as_str()),
            Some("DATABASE_UNAVAILABLE")
        );
    }

    cluster.pg_ctl_start();
    wait_for(&channel, ServingStatus::Serving).await;
    let mut recovered = false;
    for _ in 0..50 {
        match reads(&channel, &token).await {
            [Ok(()), Ok(())] => {
                recovered = true;
                break;
            }
            answers => {
                for status in answers.into_iter().filter_map(Result::err) {
                    assert_eq!(
                        status.code(),
                        Code::Unavailable,
                        "unexpected error after recovery: {status:?}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(recovered, "service resumed without a restart");
    let _ = stop.send(());
    server.await.expect("server task").expect("clean shutdown");
}
