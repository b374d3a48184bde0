//! Helpers for tests that run the real `rolekeeper` binary as a child
//! process: free ports, readiness polling, signals, and clean-up on drop.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

/// The HS256 secret the child servers use (32+ bytes).
pub const SECRET: &str = "process-test-secret-0123456789abcdef";

/// The binary under test: `ROLEKEEPER_BIN` when set (CI points it at the
/// release build), else the one cargo built for these tests.
pub fn binary() -> String {
    std::env::var("ROLEKEEPER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_rolekeeper").to_owned())
}

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address")
}

/// A running `rolekeeper serve`, killed on drop. Its stderr (the log) goes to
/// a file, never to a pipe nobody drains: a full pipe would block the
/// server's logging and with it the server.
pub struct Server {
    /// The child process.
    pub child: Child,
    /// Its gRPC address.
    pub addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Server {
    /// Starts `rolekeeper serve` in `dir` with `args` and `envs` and waits
    /// (at most 60 s) until its port accepts connections.
    pub fn start(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::start_at(free_addr(), dir, args, envs)
    }

    /// Like [`Server::start`], on a given address (to restart in place).
    pub fn start_at(addr: SocketAddr, dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let listen = addr.to_string();
        let log = dir.join(format!("server-{}.log", uuid::Uuid::new_v4().simple()));
        let log_file = std::fs::File::create(&log).expect("create the server log");
        let mut command = Command::new(binary());
        command
            .current_dir(dir)
            .arg("serve")
            .args(["--listen", &listen])
            .args(args)
            .env_remove("ROLEKEEPER_HS256_SECRET")
            .env_remove("ROLEKEEPER_DATABASE_URL")
            .env("ROLEKEEPER_METRICS_LISTEN", "off")
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command.spawn().expect("start rolekeeper");
        let mut server = Self { child, addr, log };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rolekeeper exited before serving: {status}");
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("rolekeeper did not listen on {} within 60 s", self.addr);
    }

    /// `http://addr`, for tonic endpoints.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The first `lines` lines of the child's stdout.
    pub fn stdout_lines(&mut self, lines: usize) -> Vec<String> {
        let stdout = self.child.stdout.take().expect("stdout is piped");
        BufReader::new(stdout)
            .lines()
            .take(lines)
            .map(|l| l.expect("stdout is text"))
            .collect()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Sends SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (at most `limit`) for the child to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "rolekeeper did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion with `args` in `dir`.
pub fn run_binary(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(binary());
    command
        .current_dir(dir)
        .args(args)
        .env_remove("ROLEKEEPER_HS256_SECRET")
        .env_remove("ROLEKEEPER_DATABASE_URL");
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().expect("run rolekeeper")
}

/// A plain HTTP/1.0 GET on loopback; returns the body.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// The PostgreSQL server tests may create databases on
/// (`ROLEKEEPER_TEST_POSTGRES_URL`). `None` means skip; with
/// `REQUIRE_POSTGRES=1` that is a failure instead.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("ROLEKEEPER_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "REQUIRE_POSTGRES=1 but ROLEKEEPER_TEST_POSTGRES_URL is not set"
            );
            eprintln!("skipped: ROLEKEEPER_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// The database a process test should use for `backend`: a SQLite file in
/// `dir`, or a fresh PostgreSQL database created through
/// `ROLEKEEPER_TEST_POSTGRES_URL`. `None` means skip (no PostgreSQL
/// configured); with `REQUIRE_POSTGRES=1` that is a failure instead.
pub async fn database_url(postgres: bool, dir: &Path) -> Option<String> {
    if !postgres {
        return Some(format!("sqlite://{}?mode=rwc", dir.join("rk.db").display()));
    }
    let admin_url = postgres_admin_url()?;
    use sea_orm::{ConnectionTrait, Database};
    let name = format!("rk_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(&admin_url)
        .await
        .expect("connect to PostgreSQL");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    let _ = admin.close().await;
    let (base, _) = admin_url.rsplit_once('/').expect("URL has a database path");
    Some(format!("{base}/{name}"))
}
