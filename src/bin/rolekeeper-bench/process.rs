//! The server under test: the `rolekeeper` binary as a child process on a
//! free loopback port, its readiness, its memory, and killing it — also when
//! the benchmark fails or is interrupted, because [`ServerProcess`] kills
//! the child when dropped.

use crate::{Result, fail, options::Settings};
use std::{
    fs::File,
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};
use tokio::time::Instant;
use tonic::transport::Endpoint;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Name of the server's log file in the temporary directory.
pub const LOG_FILE: &str = "server.log";

/// How long the server may take to migrate and answer health checks.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Lifetime of the benchmark's admin token.
const TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// Lines of the server log shown when it fails to start.
const LOG_TAIL_LINES: usize = 20;

/// A running `rolekeeper serve` child process.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    token: String,
    log: PathBuf,
}

/// Resident memory of the server, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Memory {
    /// `VmRSS`: resident now, MiB.
    pub rss_mib: f64,
    /// `VmHWM`: the peak resident size so far, MiB.
    pub peak_mib: f64,
}

impl ServerProcess {
    /// Starts `rolekeeper serve --listen 127.0.0.1:<free port>` on
    /// `database_url` with a fresh random HS256 secret, logging to
    /// [`LOG_FILE`] in `dir`. Inherited `ROLEKEEPER_*` variables are removed
    /// so nothing but these settings applies.
    pub fn spawn(bin: &Path, database_url: &str, dir: &Path, settings: &Settings) -> Result<Self> {
        let addr = free_loopback_addr()?;
        let metrics_addr = free_loopback_addr()?;
        let secret = random_secret();
        let log = dir.join(LOG_FILE);
        let log_file = File::create(&log)?;
        let mut command = Command::new(bin);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ROLEKEEPER_") {
                command.env_remove(key);
            }
        }
        command
            .args(["serve", "--listen", &addr.to_string()])
            .env("ROLEKEEPER_DATABASE_URL", database_url)
            .env("ROLEKEEPER_HS256_SECRET", &secret)
            .env("ROLEKEEPER_METRICS_LISTEN", metrics_addr.to_string())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file));
        if let Some(workers) = settings.workers {
            command.env("ROLEKEEPER_WORKERS", workers.to_string());
        }
        let token = rolekeeper::auth::mint_hs256(
            secret.as_bytes(),
            "rolekeeper-bench",
            None,
            "admin",
            TOKEN_TTL,
        )?;
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        Ok(Self {
            child,
            addr,
            token,
            log,
        })
    }

    /// Waits until the server answers `grpc.health.v1.Health/Check` with
    /// `SERVING`; fails with the log's tail if it exits or takes too long.
    pub async fn wait_ready(&mut self) -> Result<()> {
        let channel = Endpoint::from_shared(format!("http://{}", self.addr))?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(2))
            .connect_lazy();
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return fail(format!(
                    "the server exited ({status}) while starting; its log ends with:\n{}",
                    self.log_tail()
                ));
            }
            let request = HealthCheckRequest {
                service: String::new(),
            };
            if let Ok(reply) = HealthClient::new(channel.clone()).check(request).await
                && reply.into_inner().status == ServingStatus::Serving as i32
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        fail(format!(
            "the server did not become ready within {READY_TIMEOUT:?}; its log ends with:\n{}",
            self.log_tail()
        ))
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An admin token the server accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory now and at its peak.
    pub fn memory(&self) -> Result<Memory> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {path} (Linux only): {e}"))?;
        Ok(Memory {
            rss_mib: status_kib(&status, "VmRSS:")? / 1024.0,
            peak_mib: status_kib(&status, "VmHWM:")? / 1024.0,
        })
    }

    /// Kills the server and reaps it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// The last lines of the server log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback address with a port that was free a moment ago.
fn free_loopback_addr() -> Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?)
}

/// 32 random bytes, hex encoded: a valid HS256 secret for this run only.
fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The kB figure of a `/proc/<pid>/status` line such as `VmRSS:  1234 kB`.
fn status_kib(status: &str, key: &str) -> Result<f64> {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .ok_or_else(|| format!("no {key} in /proc status"))?;
    let figure = line.trim().trim_end_matches("kB").trim();
    Ok(figure
        .parse::<f64>()
        .map_err(|e| format!("bad {key} line `{line}`: {e}"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_figures() {
        let status = "Name:\trolekeeper\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\n";
        assert_eq!(status_kib(status, "VmRSS:").ok(), Some(20480.0));
        assert_eq!(status_kib(status, "VmHWM:").ok(), Some(40960.0));
        assert!(status_kib(status, "VmSwap:").is_err());
    }
}
