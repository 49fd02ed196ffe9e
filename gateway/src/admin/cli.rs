//! The command line of `nostr-pg-admin`, and what each command prints and
//! exits with:
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | done (refused events are outcomes, not failures); a mirror stopped by SIGINT or SIGTERM |
//! | 1 | failed: the input, the database, the other relay or the output gave out |
//! | 2 | bad arguments |
//! | 130 | interrupted (SIGINT); an import or sync prints its summary first |

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio::sync::mpsc;

use super::export::{self, ExportError, ExportOptions, Order};
use super::import::{self, ImportOptions};
use super::mirror::{self, MirrorEnd, MirrorOptions};
use super::sync::{self, Direction, SyncOptions};
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
    about = "nostr_pg operators' tool: import, export, NIP-77 sync and mirroring, through the relay's rules"
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
    /// Reconcile with another relay over NIP-77: fetch what we lack, send what it lacks.
    /// Summary on stderr (with --json, also as JSON on stdout).
    Sync(SyncArgs),
    /// Store what several relays carry, live, resuming where each left off.
    /// Runs until SIGINT or SIGTERM; per-relay counters on stderr.
    Mirror(MirrorArgs),
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The other relay, ws:// or wss://.
    pub url: String,
    /// One NIP-01 filter (JSON object): what to reconcile; everything by default.
    #[arg(long, default_value = "{}")]
    pub filter: String,
    #[arg(long, value_enum, default_value_t = Direction::Both)]
    pub dir: Direction,
    /// The summary as JSON on stdout too.
    #[arg(long)]
    pub json: bool,
    /// Ids per REQ when fetching (and events read here at a time when sending).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub ids_per_req: u32,
    /// EVENTs sent and not yet answered with OK, at most.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub window: u32,
    /// Events per publish_batch (at most nostr.max_batch).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// More of our events matching the filter is an error (40 bytes each in memory).
    #[arg(long, default_value_t = 50_000_000)]
    pub max_items: usize,
    /// Seconds to wait for the relay's next message.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Refusals shown per direction.
    #[arg(long, default_value_t = 5)]
    pub samples: usize,
    /// Seconds between progress lines when stderr is not a terminal.
    #[arg(long, default_value_t = 10)]
    pub progress_secs: u64,
}

#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// The upstream relays, ws:// or wss://.
    #[arg(required = true)]
    pub urls: Vec<String>,
    /// One NIP-01 filter (JSON object): what to mirror; everything by default.
    #[arg(long)]
    pub filter: Option<String>,
    /// On (re)subscribing, ask for events since the saved cursor minus this many seconds.
    #[arg(long, default_value_t = 600)]
    pub since_margin: i64,
    /// Events queued per upstream before its reader waits.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub queue: u32,
    /// Events per publish_batch.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// First reconnect delay in milliseconds (doubling up to --max-backoff-ms).
    #[arg(long, default_value_t = 500)]
    pub min_backoff_ms: u64,
    #[arg(long, default_value_t = 60_000)]
    pub max_backoff_ms: u64,
    /// Seconds between summaries on stderr.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub summary_secs: u64,
    /// The final summary as JSON on stdout too.
    #[arg(long)]
    pub json: bool,
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
        Command::Sync(args) => run_sync(&url, args).await,
        Command::Mirror(args) => run_mirror(&url, args).await,
    }
}

fn admin_db(url: &str, connections: usize) -> Result<Db, u8> {
    let settings = DatabaseConfig {
        pool_size: connections,
        // A big batch on a busy server may take a while; a hung one should not
        // hold the tool forever either.
        statement_timeout_ms: 600_000,
        acquire_timeout_ms: 600_000,
        ..DatabaseConfig::default()
    };
    Db::named(url, settings, APPLICATION_NAME).map_err(|e| {
        eprintln!("nostr-pg-admin: {e}");
        EXIT_USAGE
    })
}

/// Signals as messages on a channel, and the task forwarding them.
fn watch_signals(terminate_too: bool) -> Result<(mpsc::Receiver<()>, Vec<tokio::task::JoinHandle<()>>), u8> {
    let (tx, rx) = mpsc::channel(4);
    let mut tasks = Vec::new();
    match interrupts() {
        Ok(stream) => tasks.push(tokio::spawn(forward_interrupts(stream, tx.clone()))),
        Err(e) => {
            eprintln!("nostr-pg-admin: cannot watch SIGINT: {e}");
            return Err(EXIT_FAILED);
        }
    }
    #[cfg(unix)]
    if terminate_too {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(stream) => tasks.push(tokio::spawn(forward_interrupts(stream, tx))),
            Err(e) => {
                eprintln!("nostr-pg-admin: cannot watch SIGTERM: {e}");
                return Err(EXIT_FAILED);
            }
        }
    }
    Ok((rx, tasks))
}

fn print_json(value: &serde_json::Value) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{value}").and_then(|()| stdout.flush()) {
        eprintln!("nostr-pg-admin: cannot write the summary to stdout: {e}");
    }
}

async fn run_sync(url: &str, args: SyncArgs) -> u8 {
    if let Err(e) = nostr_pg_core::Filter::parse(&args.filter) {
        eprintln!("nostr-pg-admin: --filter: {e}");
        return EXIT_USAGE;
    }
    if let Err(e) = super::upstream::check_url(&args.url) {
        eprintln!("nostr-pg-admin: {e}");
        return EXIT_USAGE;
    }
    let db = match admin_db(url, 2) {
        Ok(db) => db,
        Err(code) => return code,
    };
    let (rx, signals) = match watch_signals(false) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let opts = SyncOptions {
        url: args.url,
        filter: args.filter,
        direction: args.dir,
        ids_per_req: args.ids_per_req as usize,
        window: args.window as usize,
        batch: args.batch as usize,
        max_items: args.max_items,
        timeout: Duration::from_secs(args.timeout.max(1)),
        samples: args.samples,
        progress_every: Duration::from_secs(args.progress_secs),
    };
    let report = sync::run(db, opts, rx).await;
    signals.iter().for_each(|s| s.abort());
    eprint!("{}", report.text());
    if args.json {
        print_json(&report.json());
    }
    match report.end {
        End::Complete => 0,
        End::Interrupted => EXIT_INTERRUPTED,
        End::Failed(_) => EXIT_FAILED,
    }
}

async fn run_mirror(url: &str, args: MirrorArgs) -> u8 {
    if let Err(e) = mirror::parse_filter(args.filter.as_deref()) {
        eprintln!("nostr-pg-admin: {e}");
        return EXIT_USAGE;
    }
    for u in &args.urls {
        if let Err(e) = super::upstream::check_url(u) {
            eprintln!("nostr-pg-admin: {e}");
            return EXIT_USAGE;
        }
    }
    // One connection per upstream's writer, so none waits for another's.
    let db = match admin_db(url, args.urls.len() + 1) {
        Ok(db) => db,
        Err(code) => return code,
    };
    let (rx, signals) = match watch_signals(true) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let opts = MirrorOptions {
        urls: args.urls,
        database_url: url.to_owned(),
        filter: args.filter,
        since_margin: args.since_margin.max(0),
        queue: args.queue as usize,
        batch: args.batch as usize,
        min_backoff: Duration::from_millis(args.min_backoff_ms.max(1)),
        max_backoff: Duration::from_millis(args.max_backoff_ms.max(args.min_backoff_ms).max(1)),
        summary_every: Duration::from_secs(args.summary_secs),
    };
    let report = mirror::run(db, opts, rx).await;
    signals.iter().for_each(|s| s.abort());
    eprint!("{}", report.text());
    if args.json {
        print_json(&report.json());
    }
    match report.end {
        MirrorEnd::Stopped => 0,
        MirrorEnd::Abandoned => EXIT_INTERRUPTED,
        MirrorEnd::Failed(why) => {
            eprintln!("nostr-pg-admin: mirror failed: {why}");
            EXIT_FAILED
        }
    }
}

async fn run_import(url: &str, args: ImportArgs) -> u8 {
    let connections = args.connections as usize;
    let db = match admin_db(url, connections) {
        Ok(db) => db,
        Err(code) => return code,
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
    let (rx, signals) = match watch_signals(false) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let report = import::run(db, opts, rx).await;
    signals.iter().for_each(|s| s.abort());
    eprint!("{}", report.text());
    print_json(&report.json());
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
    fn parses_every_command() {
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
        let cli = parse(&["nostr-pg-admin", "sync", "wss://r", "--dir", "down", "--json"]);
        assert!(matches!(
            cli.command,
            Command::Sync(SyncArgs {
                dir: Direction::Down,
                json: true,
                ..
            })
        ));
        let cli = parse(&["nostr-pg-admin", "mirror", "ws://a", "ws://b", "--since-margin", "0"]);
        assert!(matches!(&cli.command, Command::Mirror(m) if m.urls.len() == 2 && m.since_margin == 0));
        assert!(
            AdminCli::try_parse_from(["nostr-pg-admin", "mirror"]).is_err(),
            "needs a URL"
        );
        assert!(AdminCli::try_parse_from(["nostr-pg-admin", "sync", "ws://a", "--dir", "sideways"]).is_err());
        assert!(AdminCli::try_parse_from(["nostr-pg-admin", "import", "-", "--batch", "0"]).is_err());
        assert!(AdminCli::try_parse_from(["nostr-pg-admin", "export", "--order", "oldest"]).is_err());
    }
}
