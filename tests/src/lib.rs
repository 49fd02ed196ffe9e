//! Support for the end-to-end tests in `tests/tests/`: a fresh database per
//! test on the cluster named by `NOSTR_PG_TEST_URL` (set by
//! `pg_config/test.sh`), with the extension created in it.
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

pub mod admin;
pub mod cluster;
pub mod delay;
pub mod multihost;
pub mod netns;
pub mod nip86;
pub mod proxy;
pub mod relay;
pub mod rng;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_postgres::Client;

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

/// `url` (a `postgres://` URL) with its user and password replaced.
pub fn with_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let location = rest.split_once('@').map_or(rest, |(_, l)| l);
    format!("{scheme}://{user}:{password}@{location}")
}

/// Connects as the gateway would (the URL's `sslmode` and `sslrootcert`
/// honoured, see `gateway::db::tls`).
pub async fn connect(url: &str) -> Client {
    let (client, conn) = gateway::db::tls::connect(url)
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
        TestDb::with_extension(label, Some("CREATE EXTENSION nostr_pg")).await
    }

    /// A fresh database in which `create` (if any) runs first, for tests of
    /// other versions of the extension.
    pub async fn with_extension(label: &str, create: Option<&str>) -> TestDb {
        TestDb::on_cluster(&cluster_url(), label, create).await
    }

    /// A fresh database on the cluster `admin` names (a superuser's URL).
    pub async fn on_cluster(admin: &str, label: &str, create: Option<&str>) -> TestDb {
        let admin = admin.to_owned();
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
        if let Some(sql) = create {
            let db = connect(&url).await;
            db.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        }
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
                    if let Ok((c, conn)) = gateway::db::tls::connect(&admin).await {
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

/// A login role created for one test, not a superuser, with no privilege
/// of its own; dropped when it ends. Declare it before the [`TestDb`] it is
/// granted rights in: locals drop in reverse order, and a role cannot be
/// dropped while a database holds grants to it.
pub struct TestRole {
    pub name: String,
    pub password: String,
    admin: String,
}

impl TestRole {
    pub async fn new(label: &str) -> TestRole {
        let admin = cluster_url();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("r_{label}_{}_{n}", std::process::id());
        // Made of digits and letters we chose: safe to write into the SQL.
        let password = format!("pw{}x{n}", std::process::id());
        let c = connect(&admin).await;
        c.batch_execute(&format!(
            "DROP ROLE IF EXISTS {name}; CREATE ROLE {name} LOGIN NOSUPERUSER PASSWORD '{password}'"
        ))
        .await
        .expect("create role");
        TestRole { name, password, admin }
    }

    /// `db_url` with this role as the user.
    pub fn url(&self, db_url: &str) -> String {
        with_user(db_url, &self.name, &self.password)
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(async move {
                    if let Ok((c, conn)) = gateway::db::tls::connect(&admin).await {
                        tokio::spawn(conn);
                        let _ = c.batch_execute(&format!("DROP ROLE IF EXISTS {name}")).await;
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

/// The ids (hex) of every stored event, in order.
pub async fn stored_ids(c: &Client) -> BTreeSet<String> {
    c.query("SELECT encode(id, 'hex') FROM nostr.events", &[])
        .await
        .expect("stored ids")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// How many events are stored.
pub async fn stored_count(c: &Client) -> i64 {
    c.query_one("SELECT count(*) FROM nostr.events", &[])
        .await
        .expect("count events")
        .get(0)
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
