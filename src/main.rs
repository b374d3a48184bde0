//! The `rolekeeper` binary: parses the command line and calls the library.

use clap::Parser;
use rolekeeper::config::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("rolekeeper: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => rolekeeper::cli::serve(*args).await,
            Command::Migrate(args) => rolekeeper::cli::migrate(args).await,
            Command::Token(args) => rolekeeper::cli::token(args),
            Command::Health(args) => rolekeeper::cli::health(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rolekeeper: {err}");
            ExitCode::FAILURE
        }
    }
}
