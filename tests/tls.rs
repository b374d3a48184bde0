//! TLS and mTLS with certificates the test generates: a TLS client that
//! trusts the CA gets through; with a client CA configured, a client without
//! a certificate (or with one from another CA) is refused, and a plaintext
//! client never reaches a handler.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rolekeeper::{ServerSettings, TlsSettings};
use std::{path::Path, time::Duration};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const SECRET: &[u8] = b"tls-test-secret-0123456789abcdef-xx";

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
    stranger: (String, String),
}

fn leaf(names: &[&str], issuer: &CertifiedIssuer<'_, KeyPair>) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("params");
    let cert = params.signed_by(&key, issuer).expect("signed");
    (cert.pem(), key.serialize_pem())
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

fn pki() -> Pki {
    let ca = new_ca("rolekeeper test CA");
    let other = new_ca("someone else's CA");
    Pki {
        ca_pem: ca.pem(),
        server: leaf(&["localhost", "127.0.0.1"], &ca),
        client: leaf(&["client.test"], &ca),
        stranger: leaf(&["stranger.test"], &other),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write PEM");
    path
}

async fn serve(
    dir: &Path,
    pki: &Pki,
    mutual: bool,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let mut settings = ServerSettings::new(
        format!("sqlite://{}?mode=rwc", dir.join("tls.db").display()),
        SECRET,
    );
    settings.tls = Some(TlsSettings {
        cert: write(dir, "server.pem", &pki.server.0),
        key: write(dir, "server.key", &pki.server.1),
        client_ca: mutual.then(|| write(dir, "ca.pem", &pki.ca_pem)),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(rolekeeper::run(settings, listener, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Health over a channel with `tls` (or plaintext with `None`); `Err` when
/// the connection or the call fails. Retries briefly while the server starts.
async fn check(
    addr: std::net::SocketAddr,
    tls: Option<ClientTlsConfig>,
) -> Result<ServingStatus, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut last = String::new();
    for _ in 0..50 {
        let mut endpoint = Channel::from_shared(format!("{scheme}://{addr}"))
            .expect("url")
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(2));
        if let Some(tls) = tls.clone() {
            endpoint = endpoint.tls_config(tls).expect("client TLS");
        }
        match endpoint.connect().await {
            Ok(channel) => {
                return HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map(|r| r.into_inner().status())
                    .map_err(|s| s.to_string());
            }
            Err(err) => {
                last = format!("{err:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Err(last)
}

fn trusting(pki: &Pki) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost")
}

#[tokio::test]
async fn tls_serves_clients_that_trust_the_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki();
    let (addr, _stop) = serve(dir.path(), &pki, false).await;
    assert_eq!(
        check(addr, Some(trusting(&pki))).await,
        Ok(ServingStatus::Serving)
    );
    assert!(
        check(addr, None).await.is_err(),
        "plaintext must not get through"
    );
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki();
    let (addr, _stop) = serve(dir.path(), &pki, true).await;
    let with_cert = trusting(&pki).identity(Identity::from_pem(&pki.client.0, &pki.client.1));
    assert_eq!(
        check(addr, Some(with_cert)).await,
        Ok(ServingStatus::Serving)
    );
    assert!(
        check(addr, Some(trusting(&pki))).await.is_err(),
        "a client without a certificate is refused"
    );
    let stranger = trusting(&pki).identity(Identity::from_pem(&pki.stranger.0, &pki.stranger.1));
    assert!(
        check(addr, Some(stranger)).await.is_err(),
        "a certificate from another CA is refused"
    );
}
