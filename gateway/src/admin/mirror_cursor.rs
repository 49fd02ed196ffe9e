//! Where `mirror` resumes from: one row per upstream relay and filter in
//! `nostr_mirror.cursors`, a table of this tool's own (created on first use;
//! the extension's schema is not touched), on a connection of its own.

use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::db::tls::Target;

const CREATE: &str = include_str!("sql/mirror_cursors.sql");
const SAVE: &str = include_str!("sql/mirror_cursor_save.sql");
const LOAD: &str = "SELECT last_created_at FROM nostr_mirror.cursors WHERE upstream = $1 AND filter = $2";
/// As the tool's pooled connections call themselves.
const APPLICATION_NAME: &str = "nostr_pg_admin";
const EXISTS: &str = "SELECT to_regclass('nostr_mirror.cursors') IS NOT NULL";

pub struct Cursors {
    client: Mutex<Client>,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Cursors {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Cursors {
    /// Connects and creates the table if it is missing (which needs the
    /// CREATE privilege on the database once; an existing table does not).
    pub async fn open(url: &str) -> Result<Cursors, String> {
        let mut target = Target::parse(url).map_err(|e| e.to_string())?;
        target.config.application_name(APPLICATION_NAME);
        let (client, connection) = target.connect().await.map_err(|e| format!("database: {e}"))?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("mirror cursor connection: {e}");
            }
        });
        let exists: bool = client
            .query_one(EXISTS, &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| format!("database: {e}"))?;
        if !exists {
            client
                .batch_execute(CREATE)
                .await
                .map_err(|e| format!("cannot create nostr_mirror.cursors: {e}"))?;
        }
        Ok(Cursors {
            client: Mutex::new(client),
            driver,
        })
    }

    pub async fn load(&self, upstream: &str, filter: &str) -> Result<Option<i64>, String> {
        let c = self.client.lock().await;
        let row = c
            .query_opt(LOAD, &[&upstream, &filter])
            .await
            .map_err(|e| format!("database: {e}"))?;
        row.map(|r| r.try_get(0))
            .transpose()
            .map_err(|e| format!("database: {e}"))
    }

    pub async fn save(&self, upstream: &str, filter: &str, created_at: i64) -> Result<(), String> {
        let c = self.client.lock().await;
        c.execute(SAVE, &[&upstream, &filter, &created_at])
            .await
            .map(|_| ())
            .map_err(|e| format!("database: {e}"))
    }
}
