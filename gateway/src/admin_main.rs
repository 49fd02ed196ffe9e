//! `nostr-pg-admin [--database-url URL] import FILE|- | export [--filter JSON]
//! [--order newest|seq]`: the operators' tool (see `gateway::admin`).

use std::process::ExitCode;

use clap::Parser;
use gateway::admin::cli::{self, AdminCli};

fn main() -> ExitCode {
    let args = match AdminCli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() { cli::EXIT_USAGE } else { 0 };
            if let Err(print) = e.print() {
                eprintln!("nostr-pg-admin: {print}");
            }
            return ExitCode::from(code);
        }
    };
    let Some(runtime) = gateway::process::start("nostr-pg-admin", tracing::Level::WARN) else {
        return ExitCode::from(cli::EXIT_FAILED);
    };
    ExitCode::from(runtime.block_on(cli::run(args)))
}
