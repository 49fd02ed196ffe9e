//! The command line of `nostr-pg-admin`, and what each command prints and
//! exits with:
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | done (an import's refused lines are outcomes, not failures) |
//! | 1 | failed: the input, the database or the output gave out |
//! | 2 | bad arguments |
//! | 130 | interrupted (SIGINT); an import prints its summary first |

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio::sync::mpsc;

use super::export::{self, ExportError, ExportOptions, Order};
use super::import::{self, ImportOptions};
use super::tally::End;
use crate::config::{Config, DatabaseConfig};
use crate::db::Db;

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

const APPLICATION_NAME: &str = "nostr_pg_admin";

#[derive(Debug, Parser)]
#[command(
    name = "nostr-pg-admin",
    about = "nostr_pg operators' tool: import and export events through the relay's rules"
)]
pub struct AdminCli {
    /// PostgreSQL connection URL (env DATABASE_URL; sslmode and sslrootcert as for the gateway).
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// The gateway's TOML file, for its `database_url` when no other is given.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish JSON Lines events (plain, gzip or zstd) through every relay rule.
    /// Summary on stderr, the same as JSON on stdout.
    Import(ImportArgs),
    /// Write the stored canonical events as JSON Lines to stdout.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to import, `-` for standard input.
    pub file: String,
    /// Events per batch (one statement and one commit; at most nostr.max_batch).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Batches published at once, each on its own connection.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub connections: u32,
    /// Longer lines are counted as `too-long` and skipped without being read into memory.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_line_bytes: usize,
    /// Publish every line, even those whose event is already stored.
    #[arg(long)]
    pub no_skip_stored: bool,
    /// Sample lines shown per outcome.
    #[arg(long, default_value_t = 5)]
    pub samples: usize,
    /// Seconds between progress lines when stderr is not a terminal.
    #[arg(long, default_value_t = 10)]
    pub progress_secs: u64,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// One NIP-01 filter (JSON object); its `limit` caps the events written.
    #[arg(long)]
    pub filter: Option<String>,
    #[arg(long, value_enum, default_value_t = Order::Newest)]
    pub order: Order,
    /// Rows fetched from the database at a time.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i32).range(1..))]
    pub fetch: i32,
    /// Seconds between progress lines when stderr is not a terminal.
    #[arg(long, default_value_t = 10)]
    pub progress_secs: u64,
}

/// The database URL: the flag, else DATABASE_URL, else the config file's.
pub fn database_url(cli: &AdminCli, env: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    if let Some(url) = cli.database_url.clone().filter(|u| !u.is_empty()) {
        return Ok(url);
    }
    if let Some(url) = env("DATABASE_URL").filter(|u| !u.is_empty()) {
        return Ok(url);
    }
    if let Some(path) = &cli.config {
        let config = Config::from_file(path).map_err(|e| e.to_string())?;
        if !config.database_url.is_empty() {
            return Ok(config.database_url);
        }
    }
    Err("no database URL: pass --database-url, set DATABASE_URL or `database_url` in the --config file".into())
}

/// Runs the command; the process exit code.
pub async fn run(cli: AdminCli) -> u8 {
    let url = match database_url(&cli, |n| std::env::var(n).ok()) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("nostr-pg-admin: {e}");
            return EXIT_USAGE;
        }
    };
    match cli.command {
        Command::Import(args) => run_import(&url, args).await,
        Command::Export(args) => run_export(&url, args).await,
    }
}

async fn run_import(url: &str, args: ImportArgs) -> u8 {
    let connections = args.connections as usize;
    let settings = DatabaseConfig {
        pool_size: connections,
        // A big batch on a busy server may take a while; a hung one should not
        // hold the import forever either.
        statement_timeout_ms: 600_000,
        acquire_timeout_ms: 600_000,
        ..DatabaseConfig::default()
    };
    let db = match Db::named(url, settings, APPLICATION_NAME) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("nostr-pg-admin: {e}");
            return EXIT_USAGE;
        }
    };
    let opts = ImportOptions {
        input: args.file,
        batch: args.batch as usize,
        connections,
        max_line_bytes: args.max_line_bytes,
        skip_stored: !args.no_skip_stored,
        samples: args.samples,
        progress_every: Duration::from_secs(args.progress_secs),
    };
    let (tx, rx) = mpsc::channel(4);
    let signals = match interrupts() {
        Ok(stream) => tokio::spawn(forward_interrupts(stream, tx)),
        Err(e) => {
            eprintln!("nostr-pg-admin: cannot watch SIGINT: {e}");
            return EXIT_FAILED;
        }
    };
    let report = import::run(db, opts, rx).await;
    signals.abort();
    eprint!("{}", report.text());
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{}", report.json()).and_then(|()| stdout.flush()) {
        eprintln!("nostr-pg-admin: cannot write the summary to stdout: {e}");
    }
    match report.end {
        End::Complete => 0,
        End::Interrupted => EXIT_INTERRUPTED,
        End::Failed(_) => EXIT_FAILED,
    }
}

/// SIGINT, watched from now on (not from a task's first poll: an interrupt
/// right after the start must not kill the process without a summary).
#[cfg(unix)]
fn interrupts() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
}

/// Each SIGINT becomes one message.
#[cfg(unix)]
async fn forward_interrupts(mut stream: tokio::signal::unix::Signal, tx: mpsc::Sender<()>) {
    while stream.recv().await.is_some() {
        if tx.send(()).await.is_err() {
            return;
        }
    }
}

#[cfg(not(unix))]
fn interrupts() -> std::io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
async fn forward_interrupts((): (), tx: mpsc::Sender<()>) {
    while tokio::signal::ctrl_c().await.is_ok() {
        if tx.send(()).await.is_err() {
            return;
        }
    }
}

async fn run_export(url: &str, args: ExportArgs) -> u8 {
    let opts = ExportOptions {
        filter: args.filter,
        order: args.order,
        fetch: args.fetch,
        progress_every: Duration::from_secs(args.progress_secs),
    };
    let started = std::time::Instant::now();
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout().lock());
    match export::run(url, &opts, &mut out).await {
        Ok(n) => {
            eprintln!("exported {n} events in {:.1} s", started.elapsed().as_secs_f64());
            0
        }
        Err(e @ ExportError::Filter(_)) => {
            eprintln!("nostr-pg-admin: {e}");
            EXIT_USAGE
        }
        Err(e) => {
            eprintln!("nostr-pg-admin: export failed: {e}");
            EXIT_FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> AdminCli {
        AdminCli::try_parse_from(args).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn url_from_flag_then_env_then_config() {
        let none = |_: &str| None;
        let env = |n: &str| (n == "DATABASE_URL").then(|| "postgres://env".to_owned());
        let cli = parse(&["nostr-pg-admin", "import", "-", "--database-url", "postgres://flag"]);
        assert_eq!(database_url(&cli, env).as_deref(), Ok("postgres://flag"));
        let cli = parse(&["nostr-pg-admin", "export"]);
        assert_eq!(database_url(&cli, env).as_deref(), Ok("postgres://env"));
        assert!(database_url(&cli, none).is_err());
    }

    #[test]
    fn parses_both_commands() {
        let cli = parse(&[
            "nostr-pg-admin",
            "--database-url",
            "u",
            "import",
            "f.jsonl.zst",
            "--batch",
            "100",
        ]);
        assert!(matches!(cli.command, Command::Import(ImportArgs { batch: 100, .. })));
        let cli = parse(&[
            "nostr-pg-admin",
            "export",
            "--order",
            "seq",
            "--filter",
            "{\"kinds\":[1]}",
        ]);
        assert!(matches!(
            cli.command,
            Command::Export(ExportArgs { order: Order::Seq, .. })
        ));
        assert!(AdminCli::try_parse_from(["nostr-pg-admin", "import", "-", "--batch", "0"]).is_err());
        assert!(AdminCli::try_parse_from(["nostr-pg-admin", "export", "--order", "oldest"]).is_err());
    }
}
