//! `rolekeeper-bench`: an end-to-end benchmark that reports ratios.
//!
//! It starts the `rolekeeper` binary that sits next to it as a child process
//! on a free loopback port and a fresh database (a SQLite file in a temporary
//! directory, or a new database on a given PostgreSQL server), seeds it over
//! gRPC, and drives it over real gRPC with concurrent clients. Every figure
//! is reported against a baseline measured in the same run on the same
//! machine, so the numbers travel between machines:
//!
//! - `grpc.health.v1.Health/Check` is the gRPC ceiling; GetRole,
//!   ListUserRoles and CheckPermission are ratios to it. Their clients take
//!   the answers undecoded, as h2load does, unless `--decode-answers`.
//! - The database's raw commit rate (one single-row insert per transaction,
//!   same database kind, same settings, same concurrency) is the ceiling of
//!   completed AssignUserRoles operations.
//! - AddRoleMembers with 10,000 users is timed from accepted to done.
//! - The server's resident memory is read from `/proc/<pid>/status`.
//!
//! The tour: [`options`] (the command line), [`environment`] (temporary
//! directory and databases), [`process`] (the child server), [`clients`]
//! (channels and authenticated stubs), [`seed`], [`load`] (the closed-loop
//! driver), [`phases`] (what each phase sends), [`commit`] (the raw commit
//! baseline) and [`report`] (table and JSON).

#[path = "rolekeeper-bench/clients.rs"]
mod clients;
#[path = "rolekeeper-bench/commit.rs"]
mod commit;
#[path = "rolekeeper-bench/environment.rs"]
mod environment;
#[path = "rolekeeper-bench/load.rs"]
mod load;
#[path = "rolekeeper-bench/options.rs"]
mod options;
#[path = "rolekeeper-bench/phases.rs"]
mod phases;
#[path = "rolekeeper-bench/process.rs"]
mod process;
#[path = "rolekeeper-bench/report.rs"]
mod report;
#[path = "rolekeeper-bench/seed.rs"]
mod seed;

use clap::Parser;
use std::{process::ExitCode, time::Duration};

/// Any error of the benchmark, with a message that says what failed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The benchmark's result type.
pub type Result<T> = std::result::Result<T, BoxError>;

/// An error from a message.
pub fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(message.into().into())
}

/// How long the whole seeding may take before the run is abandoned.
const SEED_TIMEOUT: Duration = Duration::from_secs(1800);

fn main() -> ExitCode {
    let options = options::Options::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("rolekeeper-bench: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_async(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rolekeeper-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Prepares the environment, runs the benchmark (or stops on Ctrl-C), and
/// always cleans up: the server process is killed when [`run`] returns or
/// is dropped, the databases and the temporary directory afterwards.
async fn main_async(options: options::Options) -> Result<()> {
    let settings = options.settings()?;
    let server_bin = options.server_binary()?;
    let mut env = environment::Environment::create(settings.postgres_url.as_deref())?;
    let outcome = tokio::select! {
        outcome = run(&settings, &server_bin, &mut env) => outcome,
        _ = tokio::signal::ctrl_c() => fail("interrupted"),
    };
    if outcome.is_err() {
        eprintln!(
            "rolekeeper-bench: the server log was {}{}",
            env.dir().join(process::LOG_FILE).display(),
            if settings.keep_temp {
                ""
            } else {
                " (removed; keep it with --keep-temp)"
            }
        );
    }
    env.cleanup(settings.keep_temp).await;
    outcome
}

/// The benchmark proper: server, seed, phases, report.
async fn run(
    settings: &options::Settings,
    server_bin: &std::path::Path,
    env: &mut environment::Environment,
) -> Result<()> {
    let server_url = env.fresh_database("server").await?;
    let mut server = process::ServerProcess::spawn(server_bin, &server_url, env.dir(), settings)?;
    server.wait_ready().await?;
    let clients =
        clients::Clients::connect(server.addr(), settings.channels, server.token()).await?;
    eprintln!(
        "rolekeeper-bench: server pid {} on {} ({}), seeding {}",
        server.pid(),
        server.addr(),
        env.backend(),
        settings.seed.describe()
    );
    let seeded = tokio::time::timeout(SEED_TIMEOUT, seed::seed(&clients, settings))
        .await
        .or_else(|_| fail(format!("seeding took longer than {SEED_TIMEOUT:?}")))??;
    let baseline_url = env.fresh_database("commit-baseline").await?;
    let results = phases::run_all(settings, &clients, &server, &baseline_url).await?;
    let report = report::Report::new(settings, env.backend(), &seeded, results);
    println!("{}", report.table());
    if let Some(path) = &settings.json {
        report.write_json(path)?;
        eprintln!("rolekeeper-bench: wrote {}", path.display());
    }
    server.stop();
    Ok(())
}
