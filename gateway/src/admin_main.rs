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
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nostr-pg-admin: cannot start runtime: {e}");
            return ExitCode::from(cli::EXIT_FAILED);
        }
    };
    ExitCode::from(runtime.block_on(cli::run(args)))
}
