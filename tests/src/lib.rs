//! Support for the end-to-end tests in `tests/tests/`: a fresh database per
//! test on the cluster named by `NOSTR_PG_TEST_URL` (set by
//! `pg_config/test.sh`), with the extension created in it.
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

pub mod cluster;
pub mod proxy;
pub mod relay;
pub mod rng;

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_postgres::{Client, NoTls};

/// The admin URL of the test cluster. Missing is an error, not a skip: these
/// tests are run by `pg_config/test.sh`, which starts the cluster.
pub fn cluster_url() -> String {
    std::env::var("NOSTR_PG_TEST_URL")
        .expect("NOSTR_PG_TEST_URL is not set: run the end-to-end tests with `bash pg_config/test.sh`")
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, db: &str) -> String {
    match url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{db}"),
        None => format!("{url}/{db}"),
    }
}

pub async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A database created for one test and dropped when it ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestDb {
    pub async fn new(label: &str) -> TestDb {
        let db = TestDb::empty(label).await;
        db.client()
            .await
            .batch_execute("CREATE EXTENSION nostr_pg")
            .await
            .expect("create extension");
        db
    }

    /// A database without the extension: what a restore starts from.
    pub async fn empty(label: &str) -> TestDb {
        let admin = cluster_url();
        let name = format!(
            "t_{}_{}_{}",
            label,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let c = connect(&admin).await;
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await
            .expect("drop database");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let url = with_database(&admin, &name);
        TestDb { name, url, admin }
    }

    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Best effort, off the async runtime: a leftover database is harmless
        // (the cluster is thrown away after the run).
        let admin = self.admin.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(async move {
                    if let Ok((c, conn)) = tokio_postgres::connect(&admin, NoTls).await {
                        tokio::spawn(conn);
                        let _ = c
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

/// `SELECT accepted, message FROM nostr.publish($1)` for one event.
pub async fn publish(c: &Client, json: &str) -> (bool, String) {
    let row = c
        .query_one("SELECT accepted, message FROM nostr.publish($1)", &[&json])
        .await
        .expect("publish");
    (row.get(0), row.get(1))
}

/// The backend process id of a connection.
pub async fn backend_pid(c: &Client) -> i32 {
    c.query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pg_backend_pid")
        .get(0)
}

/// Waits until backend `pid` waits on a lock (for example a publish queued
/// behind another transaction's locks): proof, not a guess, that two
/// transactions overlap. Polls; the bound only limits a failure.
pub async fn wait_until_blocked(observer: &Client, pid: i32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting = observer
            .query_one(
                "SELECT coalesce(bool_or(wait_event_type = 'Lock'), false) FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await
            .expect("pg_stat_activity")
            .get::<_, bool>(0);
        if waiting {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backend {pid} never waited on a lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A TCP port free on 127.0.0.1 right now, for a cluster a test starts itself.
/// (A fixed or pid-derived port can collide with the kernel's ephemeral ports.)
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The value after `name` (e.g. `--file`) on the command line, for the tools
/// in `src/bin`.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}
