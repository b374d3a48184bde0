//! The command line: every `serve` setting is a flag and a `ROLEKEEPER_*`
//! environment variable, validated by clap before anything starts.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// `rolekeeper`: roles, role assignments and workspace memberships over gRPC.
#[derive(Debug, Parser)]
#[command(name = "rolekeeper", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (migrations run first).
    Serve(Box<ServeArgs>),
    /// Run the database migrations and exit.
    Migrate(DatabaseArgs),
    /// Print a signed HS256 token (and nothing else) on stdout.
    Token(TokenArgs),
    /// Ask a running server's gRPC health service; exit 0 when SERVING.
    Health(HealthArgs),
}

/// Arguments of `rolekeeper health`.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Address of the server.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub addr: SocketAddr,
    /// Service name to check; empty means the whole server.
    #[arg(long, default_value = "")]
    pub service: String,
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `sqlite://path?mode=rwc` or `postgres://user:pass@host/db`. Default: the
    /// SQLite file `rolekeeper.db` in the working directory.
    #[arg(long, env = "ROLEKEEPER_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

/// The default database: an embedded SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://rolekeeper.db?mode=rwc";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Settings of `rolekeeper serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address of the gRPC listener. Without an auth key (development mode)
    /// only loopback addresses are accepted.
    #[arg(long, env = "ROLEKEEPER_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Log format; the filter comes from `RUST_LOG` (default `info,sqlx=warn`).
    #[arg(
        long,
        env = "ROLEKEEPER_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,

    /// HS256 secret that signs bearer tokens. Prefer the environment variable
    /// (or `--hs256-secret-file`) over the flag: flags show up in `ps`.
    /// Without any key the server runs in development mode.
    #[arg(long, env = "ROLEKEEPER_HS256_SECRET", hide_env_values = true)]
    pub hs256_secret: Option<String>,

    /// File whose contents (trailing newline trimmed) are the HS256 secret.
    #[arg(
        long,
        env = "ROLEKEEPER_HS256_SECRET_FILE",
        conflicts_with = "hs256_secret"
    )]
    pub hs256_secret_file: Option<PathBuf>,

    /// RS256/ES256 public keys: a PEM public key (RSA >= 2048 bits or EC P-256)
    /// or a JWKS file (keys selected by `kid`); re-read within ~1 s of a change.
    #[arg(long, env = "ROLEKEEPER_JWT_KEYS")]
    pub jwt_keys: Option<PathBuf>,

    /// Required `iss` claim of every token.
    #[arg(long, env = "ROLEKEEPER_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` claim of every token.
    #[arg(long, env = "ROLEKEEPER_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Number of operation workers in this process.
    #[arg(long, env = "ROLEKEEPER_WORKERS", default_value_t = 4)]
    pub workers: usize,

    /// How long finished operations are kept, e.g. `7d`, `12h`, `90s`.
    #[arg(long, env = "ROLEKEEPER_OPERATION_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub operation_retention: Duration,

    /// Longest time a WaitOperation call blocks, e.g. `60s`.
    #[arg(long, env = "ROLEKEEPER_MAX_WAIT", default_value = "60s", value_parser = parse_duration)]
    pub max_wait: Duration,

    /// Lease written on a claimed operation. Workers claim and apply in one
    /// transaction, so a replica that dies mid-operation frees its work when
    /// that transaction aborts; the lease is the backstop for a claim that
    /// somehow stays committed.
    #[arg(long, env = "ROLEKEEPER_OPERATION_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub operation_lease: Duration,

    /// On SIGTERM/SIGINT, how long in-flight calls may take to finish.
    #[arg(long, env = "ROLEKEEPER_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Requests per second admitted per principal (token `sub`); 0 means
    /// unlimited. Beyond it calls get RESOURCE_EXHAUSTED with RetryInfo.
    #[arg(long, env = "ROLEKEEPER_RATE_LIMIT", default_value_t = 0.0)]
    pub rate_limit: f64,

    /// Burst size of the per-principal rate limit.
    #[arg(long, env = "ROLEKEEPER_RATE_BURST", default_value_t = 100.0)]
    pub rate_burst: f64,

    /// Calls in flight at once; beyond it calls get UNAVAILABLE with RetryInfo.
    #[arg(long, env = "ROLEKEEPER_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,

    /// Operations not yet done; beyond it bulk calls get UNAVAILABLE with RetryInfo.
    #[arg(
        long,
        env = "ROLEKEEPER_MAX_PENDING_OPERATIONS",
        default_value_t = 100_000
    )]
    pub max_pending_operations: u64,

    /// Memory for cached reads (roles, users' roles, compiled permissions),
    /// in MiB by estimated size; past it whole organizations' entries are
    /// dropped. 0 turns the cache off.
    #[arg(long, env = "ROLEKEEPER_READ_CACHE_MIB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(0..=1 << 20))]
    pub read_cache_mib: u64,

    /// On PostgreSQL, whether this replica may answer cached reads from
    /// memory while it is alone on the database (solo mode); it still keeps
    /// others from becoming solo while it runs. Turn it off behind a proxy
    /// that pools transactions, where session advisory locks do not hold.
    #[arg(long, env = "ROLEKEEPER_SOLO", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub solo: bool,

    /// PEM certificate chain: serve TLS (needs `--tls-key`).
    #[arg(long, env = "ROLEKEEPER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `--tls-cert`. Keep the file mode 0600.
    #[arg(long, env = "ROLEKEEPER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificate: require client certificates signed by it (mTLS).
    #[arg(long, env = "ROLEKEEPER_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Address of the Prometheus `/metrics` listener; `off` disables it.
    #[arg(long, env = "ROLEKEEPER_METRICS_LISTEN", default_value = "127.0.0.1:9464", value_parser = parse_metrics_listen)]
    pub metrics_listen: MetricsListen,
}

/// Where `/metrics` is served, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsListen(pub Option<SocketAddr>);

fn parse_metrics_listen(text: &str) -> Result<MetricsListen, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(MetricsListen(None));
    }
    text.parse()
        .map(|addr| MetricsListen(Some(addr)))
        .map_err(|_| format!("`{text}` is not an address like 127.0.0.1:9464, nor `off`"))
}

/// Arguments of `rolekeeper token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The principal (`sub` claim).
    #[arg(long, default_value = "dev")]
    pub sub: String,
    /// The organization the token acts on (`org` claim); omit for admin tokens.
    #[arg(long)]
    pub org: Option<String>,
    /// Space-separated scopes: `organization:read`, `organization:write`, `admin`.
    #[arg(long, default_value = "organization:write")]
    pub scope: String,
    /// Lifetime, e.g. `1h`.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
    /// HS256 secret; without it the development key `rolekeeper-dev.key` in the
    /// working directory is used.
    #[arg(long, env = "ROLEKEEPER_HS256_SECRET", hide_env_values = true)]
    pub hs256_secret: Option<String>,
}

/// Parses `90s`, `15m`, `12h`, `7d` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s, 15m, 12h or 7d"))?;
    let seconds = match unit {
        "" | "s" => Some(value),
        "m" => value.checked_mul(60),
        "h" => value.checked_mul(3600),
        "d" => value.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(|| format!("`{text}` is not a duration like 90s, 15m, 12h or 7d"))?;
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
