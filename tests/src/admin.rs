//! Running `nostr-pg-admin` as a process, as an operator would.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

use crate::relay::WAIT;

/// `$NOSTR_PG_ADMIN_BIN`, else `nostr-pg-admin` beside the gateway binary
/// (`cargo build -p gateway` builds both).
pub fn admin_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("NOSTR_PG_ADMIN_BIN") {
        return PathBuf::from(bin);
    }
    let gateway = std::env::var("NOSTR_PG_GATEWAY_BIN")
        .expect("NOSTR_PG_GATEWAY_BIN is not set: run the end-to-end tests with `bash pg_config/test.sh`");
    let bin = PathBuf::from(gateway).with_file_name("nostr-pg-admin");
    assert!(bin.exists(), "{} is missing: cargo build -p gateway", bin.display());
    bin
}

/// `nostr-pg-admin --database-url URL ARGS...` with piped stdio, killed on drop.
pub fn spawn(url: &str, args: &[&str]) -> Child {
    Command::new(admin_bin())
        .args(["--database-url", url])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn nostr-pg-admin")
}

/// What a finished import printed.
#[derive(Debug)]
pub struct Imported {
    pub status: ExitStatus,
    /// The JSON summary from stdout.
    pub summary: Value,
    pub stderr: String,
}

impl Imported {
    /// Lines of this outcome (`accepted`, `duplicate`, `invalid`, ...).
    pub fn count(&self, outcome: &str) -> u64 {
        self.summary["outcomes"][outcome].as_u64().unwrap_or(0)
    }

    /// The sample lines of an outcome: (line, reason).
    pub fn samples(&self, outcome: &str) -> Vec<(u64, String)> {
        self.summary["samples"][outcome]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|s| {
                        (
                            s["line"].as_u64().unwrap_or(0),
                            s["reason"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Waits (bounded) for an import to end and reads its summary.
pub async fn finish(child: Child) -> Imported {
    let out = tokio::time::timeout(WAIT * 4, child.wait_with_output())
        .await
        .expect("nostr-pg-admin did not finish in time")
        .expect("wait for nostr-pg-admin");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("summary is not JSON ({e}): {stdout:?}\nstderr: {stderr}"));
    Imported {
        status: out.status,
        summary,
        stderr,
    }
}

/// `import ARGS...` with `input` on stdin (closed afterwards) if given.
pub async fn import(url: &str, args: &[&str], input: Option<&[u8]>) -> Imported {
    let mut child = spawn(url, &[&["import"], args].concat());
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(bytes) = input {
        stdin.write_all(bytes).await.expect("write stdin");
    }
    drop(stdin);
    finish(child).await
}

/// `export ARGS...`: the bytes written to stdout.
pub async fn export(url: &str, args: &[&str]) -> Vec<u8> {
    let child = spawn(url, &[&["export"], args].concat());
    let out = tokio::time::timeout(WAIT * 4, child.wait_with_output())
        .await
        .expect("export did not finish in time")
        .expect("wait for export");
    assert!(
        out.status.success(),
        "export {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A file in the temporary directory, removed on drop.
pub struct TempFile {
    pub path: PathBuf,
}

static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl TempFile {
    pub fn new(name: &str, bytes: &[u8]) -> TempFile {
        let n = FILES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("nostr_pg-admin-{}-{n}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
        TempFile { path }
    }

    pub fn arg(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            eprintln!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// Waits until no connection of `nostr-pg-admin` is left in `database`: a
/// killed import's statement may still be running (and commit) on the
/// server until its backend notices the client is gone.
pub async fn wait_for_no_sessions(admin: &tokio_postgres::Client, database: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'nostr_pg_admin'",
                &[&database],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if n == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} admin sessions still in {database}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
