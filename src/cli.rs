//! What the subcommands of the binary do: logging, secrets, development
//! mode, signals. Kept out of `main.rs` so it is testable and documented.

use crate::{
    auth,
    config::{DatabaseArgs, HealthArgs, LogFormat, ServeArgs, TokenArgs},
    error::Error,
    server::{ServerSettings, TlsSettings, run},
    store::Store,
};
use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

/// Name of the development-mode key file.
pub const DEV_KEY_FILE: &str = "rolekeeper-dev.key";

/// Histogram buckets (seconds) for call and operation latencies.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Lifetime of the admin token printed in development mode.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The directory of a SQLite database file, or the working directory.
fn key_dir(database_url: &str) -> PathBuf {
    database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        .filter(|path| !path.is_empty() && !path.starts_with(":memory:"))
        .and_then(|path| Path::new(path).parent().map(Path::to_path_buf))
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Reads the development key in `dir`, creating it (mode 0600) if absent.
pub fn dev_key(dir: &Path) -> Result<Vec<u8>, Error> {
    let path = dir.join(DEV_KEY_FILE);
    if let Ok(existing) = fs::read_to_string(&path) {
        let key = existing.trim();
        if !key.is_empty() {
            return Ok(key.as_bytes().to_vec());
        }
    }
    let key: String = {
        use rand::Rng;
        let bytes: [u8; 32] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))?;
    file.write_all(key.as_bytes())
        .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))?;
    Ok(key.into_bytes())
}

/// `rolekeeper serve`.
pub async fn serve(args: ServeArgs) -> Result<(), Error> {
    init_tracing(args.log_format);
    let secret = match (&args.hs256_secret, &args.hs256_secret_file) {
        (Some(secret), _) => Some(secret.as_bytes().to_vec()),
        (None, Some(file)) => Some(
            fs::read_to_string(file)
                .map_err(|e| Error::internal(format!("cannot read {}: {e}", file.display())))?
                .trim_end()
                .as_bytes()
                .to_vec(),
        ),
        (None, None) => None,
    };
    if secret.as_ref().is_some_and(|s| s.len() < 32) {
        return Err(Error::internal(
            "the HS256 secret must be at least 32 bytes long",
        ));
    }
    let secret = match secret {
        Some(secret) => secret,
        None if args.jwt_keys.is_some() => Vec::new(),
        None => {
            if !args.listen.ip().is_loopback() {
                return Err(Error::internal(format!(
                    "development mode (no ROLEKEEPER_HS256_SECRET) only listens on loopback, not {}",
                    args.listen
                )));
            }
            let secret = dev_key(&key_dir(&args.database.database_url))?;
            let token = auth::mint_hs256(&secret, "dev-admin", None, "admin", DEV_TOKEN_TTL)?;
            tracing::warn!(
                "development mode: no ROLEKEEPER_HS256_SECRET or ROLEKEEPER_JWT_KEYS; using {DEV_KEY_FILE}. \
                 Never run this way in production."
            );
            println!("development admin token (valid 12h):\n{token}");
            secret
        }
    };
    if let Some(addr) = args.metrics_listen.0 {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets(LATENCY_BUCKETS)
            .and_then(|builder| builder.install())
            .map_err(|e| Error::internal(format!("cannot serve metrics on {addr}: {e}")))?;
        tracing::info!(%addr, "metrics on /metrics");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Error::internal(format!("cannot listen on {}: {e}", args.listen)))?;
    tracing::info!(listen = %args.listen, "rolekeeper serving");
    let settings = ServerSettings {
        database_url: args.database.database_url,
        hs256_secret: secret,
        jwt_keys: args.jwt_keys,
        jwt_issuer: args.jwt_issuer,
        jwt_audience: args.jwt_audience,
        workers: args.workers,
        operation_retention: args.operation_retention,
        max_wait: args.max_wait,
        operation_lease: args.operation_lease,
        drain_timeout: args.drain_timeout,
        rate_limit: args.rate_limit,
        rate_burst: args.rate_burst,
        max_in_flight: args.max_in_flight,
        max_pending_operations: args.max_pending_operations,
        read_cache_bytes: usize::try_from(args.read_cache_mib << 20).unwrap_or(usize::MAX),
        solo: args.solo,
        tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsSettings {
                cert,
                key,
                client_ca: args.tls_client_ca,
            }),
            _ => None,
        },
    };
    run(settings, listener, shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// `rolekeeper migrate`.
pub async fn migrate(args: DatabaseArgs) -> Result<(), Error> {
    init_tracing(LogFormat::Pretty);
    let store = Store::connect(&args.database_url).await?;
    store.migrate().await?;
    tracing::info!("migrations applied");
    store.close().await
}

/// `rolekeeper token`: prints a token and nothing else on stdout.
pub fn token(args: TokenArgs) -> Result<(), Error> {
    let secret = match args.hs256_secret {
        Some(secret) => secret.into_bytes(),
        None => dev_key(Path::new("."))?,
    };
    let token = auth::mint_hs256(
        &secret,
        &args.sub,
        args.org.as_deref(),
        &args.scope,
        args.ttl,
    )?;
    println!("{token}");
    Ok(())
}

/// `rolekeeper health`: a gRPC health check, for container probes.
pub async fn health(args: HealthArgs) -> Result<(), Error> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let unavailable = |message: String| Error::Unavailable {
        reason: "NOT_SERVING".into(),
        message,
        retry_after: Duration::from_secs(1),
    };
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", args.addr))
        .map_err(|e| Error::internal(format!("bad address: {e}")))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(3))
        .connect()
        .await
        .map_err(|e| unavailable(format!("cannot reach {}: {e}", args.addr)))?;
    let mut client = HealthClient::new(channel);
    let status = client
        .check(HealthCheckRequest {
            service: args.service,
        })
        .await
        .map_err(|e| unavailable(format!("health check failed: {}", e.message())))?
        .into_inner()
        .status();
    if status == ServingStatus::Serving {
        println!("SERVING");
        Ok(())
    } else {
        Err(unavailable(format!("{status:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_key_sits_beside_the_sqlite_file() {
        assert_eq!(
            key_dir("sqlite://data/rk.db?mode=rwc"),
            PathBuf::from("data")
        );
        assert_eq!(key_dir("sqlite://rk.db?mode=rwc"), PathBuf::from("."));
        assert_eq!(key_dir("postgres://x@y/z"), PathBuf::from("."));
    }

    #[test]
    fn dev_key_is_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = dev_key(dir.path()).expect("created");
        let second = dev_key(dir.path()).expect("reused");
        assert_eq!(first, second);
        assert_eq!(first.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(DEV_KEY_FILE))
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
