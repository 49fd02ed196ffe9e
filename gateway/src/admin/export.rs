//! `export [--filter JSON] [--order newest|seq]`: the stored canonical events
//! as JSON Lines, exactly the text the relay serves (so `export | import`
//! into another database stores the same bytes).
//!
//! The rows come through a server-side portal, `fetch` rows at a time, in
//! one read-only repeatable-read transaction: the output is one consistent
//! snapshot, and neither side ever holds more than one fetch of it. Events
//! past their NIP-40 expiration that housekeeping has not removed yet are
//! left out, as the relay never serves them (and an import would refuse
//! them).

use std::io::{self, Write};

use nostr_pg_core::Filter;
use thiserror::Error;
use tokio_postgres::IsolationLevel;

use super::progress::Progress;
use crate::db::tls::{Target, TlsError};

const EXPORT_NEWEST: &str = include_str!("sql/export_newest.sql");
const EXPORT_SEQ: &str = include_str!("sql/export_seq.sql");

/// The order events are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Order {
    /// `created_at` descending, ties by lowest id (REQ's order).
    Newest,
    /// As stored (`seq`, ascending): the order they were accepted in.
    Seq,
}

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("--filter: {0}")]
    Filter(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("writing the output: {0}")]
    Write(#[from] io::Error),
}

#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// One NIP-01 filter object; its `limit` caps the events written.
    pub filter: Option<String>,
    pub order: Order,
    /// Rows per fetch from the portal.
    pub fetch: i32,
    pub progress_every: std::time::Duration,
}

/// Writes the events to `out`; returns how many.
pub async fn run(url: &str, opts: &ExportOptions, out: &mut dyn Write) -> Result<u64, ExportError> {
    let limit = match &opts.filter {
        Some(f) => Filter::parse(f).map_err(|e| ExportError::Filter(e.to_string()))?.limit,
        None => None,
    };
    let limit = limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
    let target = Target::parse(url)?;
    let (mut client, connection) = target.connect().await?;
    let driver = tokio::spawn(connection);
    let sql = match opts.order {
        Order::Newest => EXPORT_NEWEST,
        Order::Seq => EXPORT_SEQ,
    };
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let statement = tx.prepare(sql).await?;
    let portal = tx.bind(&statement, &[&opts.filter, &limit]).await?;
    let mut progress = Progress::new(opts.progress_every);
    let mut written: u64 = 0;
    loop {
        let rows = tx.query_portal(&portal, opts.fetch).await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let event: &str = row.try_get(0)?;
            out.write_all(event.as_bytes())?;
            out.write_all(b"\n")?;
        }
        written += rows.len() as u64;
        progress.tick(&format!("{written} events exported"));
    }
    out.flush()?;
    tx.commit().await?;
    drop(client);
    if let Ok(Err(e)) = driver.await {
        return Err(e.into());
    }
    progress.finish();
    Ok(written)
}
