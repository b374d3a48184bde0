//! The command line and the validated settings derived from it.

use crate::{Result, fail};
use clap::Parser;
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

/// Benchmark rolekeeper end to end over gRPC and report every figure as a
/// ratio to a baseline measured in the same run.
///
/// Build both binaries first (`cargo build --release --bins`): the server is
/// the `rolekeeper` binary next to this one, started as a child process.
#[derive(Debug, Parser)]
#[command(name = "rolekeeper-bench", version, about)]
pub struct Options {
    /// A `postgres://` URL of a server where the benchmark may create (and
    /// afterwards drop) databases. Without it: a SQLite file in a temporary
    /// directory.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,

    /// Concurrent clients (tokio tasks) in every load phase.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub clients: usize,

    /// HTTP/2 connections the clients share.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub channels: usize,

    /// Measured seconds per phase (default 10; 3 with --quick).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,

    /// Unmeasured warm-up seconds before each phase.
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    pub warmup: u64,

    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// A small data set and 3-second phases, for a run of about a minute.
    #[arg(long)]
    pub quick: bool,

    /// Organizations to seed (default 100; 10 with --quick).
    #[arg(long, value_name = "N")]
    pub orgs: Option<usize>,

    /// Users in all, spread evenly over the organizations (default 10000;
    /// 1000 with --quick).
    #[arg(long, value_name = "N")]
    pub users: Option<usize>,

    /// Organization roles per organization (default 50; 20 with --quick).
    #[arg(long, value_name = "N")]
    pub roles: Option<usize>,

    /// Permissions per role (default 20; 10 with --quick).
    #[arg(long, value_name = "N")]
    pub permissions: Option<usize>,

    /// Roles each seeded user holds.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub roles_per_user: usize,

    /// Users given one role by the single AddRoleMembers call (at most
    /// 10000, the API limit).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub bulk_users: usize,

    /// Operation workers of the server (`ROLEKEEPER_WORKERS`); default: the
    /// server's own default.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// The server binary; default: `rolekeeper` next to this binary.
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,

    /// Keep the temporary directory (server log, SQLite files) afterwards.
    #[arg(long)]
    pub keep_temp: bool,

    /// Times the load phases run against the same server. The server's
    /// resident memory after each round shows whether it grows (from the
    /// second round on: the first warms caches and pools); the table's
    /// throughput figures are those of the first round.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub rounds: usize,

    /// Slices each phase's measured time is cut into. A ratio's phases take
    /// turns slice by slice (health and the three reads; raw commits and
    /// assign operations), so that both sides of a ratio see the same
    /// stretch of a noisy machine (default 5; 3 with --quick).
    #[arg(long, value_name = "N")]
    pub slices: Option<usize>,

    /// Decode every answer of the health and read phases into its message,
    /// as a typed client does. By default those clients take each answer's
    /// bytes as they come, as h2load does: they share the machine's cores
    /// with the server, and decoding a large answer (ListUserRoles: every
    /// permission of every role) would count the client's work against the
    /// server. Either way each read is called once and its answer checked
    /// before the load.
    #[arg(long)]
    pub decode_answers: bool,
}

/// What to seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedPlan {
    /// Organizations `bench-000`, `bench-001`, ...
    pub orgs: usize,
    /// Users per organization.
    pub users_per_org: usize,
    /// Organization roles per organization.
    pub roles: usize,
    /// Permissions per role.
    pub permissions: usize,
    /// Roles each user holds.
    pub roles_per_user: usize,
    /// Users of the bulk organization, all added to one role at once.
    pub bulk_users: usize,
}

impl SeedPlan {
    /// Users over all regular organizations.
    pub fn users(&self) -> usize {
        self.orgs * self.users_per_org
    }

    /// One line for the log and the table.
    pub fn describe(&self) -> String {
        format!(
            "{} orgs, {} users, {} roles/org x {} permissions, {} roles/user; bulk {} users",
            self.orgs,
            self.users(),
            self.roles,
            self.permissions,
            self.roles_per_user,
            self.bulk_users
        )
    }
}

/// Validated settings of one run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The PostgreSQL server to create databases on, if any.
    pub postgres_url: Option<String>,
    /// Concurrent clients per phase.
    pub clients: usize,
    /// HTTP/2 connections.
    pub channels: usize,
    /// Unmeasured time before each phase.
    pub warmup: Duration,
    /// Measured time of each phase.
    pub duration: Duration,
    /// Where to write JSON.
    pub json: Option<PathBuf>,
    /// What to seed.
    pub seed: SeedPlan,
    /// `ROLEKEEPER_WORKERS` for the server.
    pub workers: Option<usize>,
    /// Keep the temporary directory.
    pub keep_temp: bool,
    /// Rounds of load phases.
    pub rounds: usize,
    /// Slices of each phase's measured time.
    pub slices: usize,
    /// Whether the health and read phases decode their answers.
    pub decode_answers: bool,
}

/// Largest accepted value of the size flags.
const MAX_SIZE: usize = 1_000_000;
/// Largest AddRoleMembers request the API accepts.
const MAX_BULK_USERS: usize = 10_000;

impl Options {
    /// Checks the flags and fills in the defaults (`--quick` or full size).
    pub fn settings(&self) -> Result<Settings> {
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return fail(
                "--database-url takes a postgres:// URL; without it the benchmark uses a \
                 temporary SQLite file",
            );
        }
        let pick = |given: Option<usize>, full: usize, quick: usize| {
            given.unwrap_or(if self.quick { quick } else { full })
        };
        let orgs = pick(self.orgs, 100, 10);
        let users = pick(self.users, 10_000, 1_000);
        let seed = SeedPlan {
            orgs,
            users_per_org: users / orgs.max(1),
            roles: pick(self.roles, 50, 20),
            permissions: pick(self.permissions, 20, 10),
            roles_per_user: self.roles_per_user,
            bulk_users: self.bulk_users,
        };
        check_seed(&seed)?;
        let duration = self.duration.unwrap_or(if self.quick { 3 } else { 10 });
        check_range("--clients", self.clients, 1, 4096)?;
        check_range("--channels", self.channels, 1, 256)?;
        check_range("--duration", duration as usize, 1, 3600)?;
        check_range("--warmup", self.warmup as usize, 0, 600)?;
        check_range("--rounds", self.rounds, 1, 100)?;
        let slices = pick(self.slices, 5, 3);
        check_range("--slices", slices, 1, duration as usize * 10)?;
        if let Some(workers) = self.workers {
            check_range("--workers", workers, 1, 256)?;
        }
        Ok(Settings {
            postgres_url: self.database_url.clone(),
            clients: self.clients,
            channels: self.channels.min(self.clients),
            warmup: Duration::from_secs(self.warmup),
            duration: Duration::from_secs(duration),
            json: self.json.clone(),
            seed,
            workers: self.workers,
            keep_temp: self.keep_temp,
            rounds: self.rounds,
            slices,
            decode_answers: self.decode_answers,
        })
    }

    /// The server binary: `--server-bin`, or `rolekeeper` next to this
    /// executable. Warns when it looks older than this binary.
    pub fn server_binary(&self) -> Result<PathBuf> {
        let own = std::env::current_exe()?;
        let path = match &self.server_bin {
            Some(path) => path.clone(),
            None => own
                .with_file_name("rolekeeper")
                .with_extension(std::env::consts::EXE_EXTENSION),
        };
        if !path.is_file() {
            return fail(format!(
                "no server binary at {}; run `cargo build --release --bins` first \
                 (or pass --server-bin)",
                path.display()
            ));
        }
        warn_if_stale(&path, &own);
        Ok(path)
    }
}

/// `cargo run --bin rolekeeper-bench` does not rebuild the server: say so
/// when the server binary predates this one.
fn warn_if_stale(server: &Path, own: &Path) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(server_time), Some(own_time)) = (modified(server), modified(own))
        && server_time + Duration::from_secs(60) < own_time
    {
        eprintln!(
            "rolekeeper-bench: warning: {} is older than this benchmark; \
             `cargo build --release --bins` rebuilds it",
            server.display()
        );
    }
}

fn check_seed(seed: &SeedPlan) -> Result<()> {
    check_range("--orgs", seed.orgs, 1, 10_000)?;
    check_range(
        "--users (per organization)",
        seed.users_per_org,
        1,
        MAX_SIZE,
    )?;
    check_range("--users (in all)", seed.users(), 1, MAX_SIZE)?;
    check_range("--roles", seed.roles, 1, 1000)?;
    check_range("--permissions", seed.permissions, 1, 1000)?;
    check_range("--roles-per-user", seed.roles_per_user, 0, seed.roles)?;
    check_range("--bulk-users", seed.bulk_users, 1, MAX_BULK_USERS)
}

fn check_range(flag: &str, value: usize, min: usize, max: usize) -> Result<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        fail(format!(
            "{flag} must be between {min} and {max}, not {value}"
        ))
    }
}
