//! A Postgres cluster of a test's own (through `pg_config/cluster.sh`), for
//! tests that stop, restart or crash it. Stopped and removed on drop.

use std::path::PathBuf;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pg_config/cluster.sh")
}

/// Runs `cluster.sh CMD DIR PORT`; its stdout, or its stderr as the error.
pub fn run(cmd: &str, dir: &str, port: u16) -> Result<String, String> {
    run_with(cmd, dir, port, &[])
}

/// Runs `cluster.sh CMD DIR PORT EXTRA...`.
fn run_with(cmd: &str, dir: &str, port: u16, extra: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("bash")
        .arg(script())
        .args([cmd, dir, &port.to_string()])
        .args(extra)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

pub struct OwnCluster {
    pub dir: String,
    pub port: u16,
    /// The admin URL of its `nostr` database (the extension created).
    pub url: String,
}

impl OwnCluster {
    /// Creates and starts a cluster in the temp dir, on a free port.
    pub fn start(label: &str) -> OwnCluster {
        let port = crate::free_port();
        let dir = temp_dir(label);
        let url = run("start", &dir, port).unwrap_or_else(|e| panic!("start cluster {dir}: {e}"));
        OwnCluster { dir, port, url }
    }

    /// A physical backup of this running cluster (`pg_basebackup`), started
    /// as a cluster of its own on another free port.
    pub fn base_backup(&self, label: &str) -> OwnCluster {
        let dir = temp_dir(label);
        run_with("basebackup", &self.dir, self.port, &[&dir])
            .unwrap_or_else(|e| panic!("pg_basebackup into {dir}: {e}"));
        let port = crate::free_port();
        let url = run("start", &dir, port).unwrap_or_else(|e| panic!("start the backup {dir}: {e}"));
        OwnCluster { dir, port, url }
    }

    /// `stop` (fast shutdown), `start` again, or `crash` (immediate).
    pub fn ctl(&self, cmd: &str) {
        run(cmd, &self.dir, self.port).unwrap_or_else(|e| panic!("cluster.sh {cmd}: {e}"));
    }

    /// The postmaster's process id.
    pub fn postmaster_pid(&self) -> u32 {
        let text = std::fs::read_to_string(format!("{}/postmaster.pid", self.dir)).expect("postmaster.pid");
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("pid line")
    }
}

fn temp_dir(label: &str) -> String {
    let dir = std::env::temp_dir().join(format!("nostr_pg-{label}-{}", std::process::id()));
    dir.to_string_lossy().into_owned()
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = run("stop", &self.dir, self.port);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
