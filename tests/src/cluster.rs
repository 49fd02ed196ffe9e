//! A Postgres cluster of a test's own (through `pg_config/cluster.sh`), for
//! tests that stop, restart or crash it. Stopped and removed on drop.

use std::path::PathBuf;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pg_config/cluster.sh")
}

/// Runs `cluster.sh CMD DIR PORT`; its stdout, or its stderr as the error.
pub fn run(cmd: &str, dir: &str, port: u16) -> Result<String, String> {
    run_with(&[], cmd, dir, port, &[], true)
}

/// Like [`run`]; with `preload` false the cluster does not preload the
/// extension's library (as a server that never had it in
/// `shared_preload_libraries`).
pub fn run_preloading(cmd: &str, dir: &str, port: u16, preload: bool) -> Result<String, String> {
    run_with(&[], cmd, dir, port, &[], preload)
}

/// Runs `WRAPPER... bash cluster.sh CMD DIR PORT EXTRA...` (a wrapper such as
/// `ip netns exec NS` runs the server in another network namespace).
fn run_with(
    wrapper: &[String],
    cmd: &str,
    dir: &str,
    port: u16,
    extra: &[&str],
    preload: bool,
) -> Result<String, String> {
    let (program, before) = match wrapper.split_first() {
        Some((first, rest)) => (
            first.as_str(),
            rest.iter().map(String::as_str).chain(["bash"]).collect(),
        ),
        None => ("bash", Vec::new()),
    };
    let out = std::process::Command::new(program)
        .args(before)
        .arg(script())
        .args([cmd, dir, &port.to_string()])
        .args(extra)
        .env("NOSTR_PG_PRELOAD", if preload { "on" } else { "off" })
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
    preload: bool,
    /// Put before `cluster.sh` when it starts the server (a namespace's
    /// `ip netns exec`), empty for this namespace.
    wrapper: Vec<String>,
}

impl OwnCluster {
    /// Creates and starts a cluster in the temp dir, on a free port.
    pub fn start(label: &str) -> OwnCluster {
        OwnCluster::start_preloading(label, true)
    }

    /// Like [`OwnCluster::start`], preloading the extension's library or not.
    pub fn start_preloading(label: &str, preload: bool) -> OwnCluster {
        let port = crate::free_port();
        let dir = temp_dir(label);
        let url = run_preloading("start", &dir, port, preload).unwrap_or_else(|e| panic!("start cluster {dir}: {e}"));
        OwnCluster {
            dir,
            port,
            url,
            preload,
            wrapper: Vec::new(),
        }
    }

    /// A physical backup of this running cluster (`pg_basebackup`), started
    /// as a cluster of its own on another free port.
    pub fn base_backup(&self, label: &str) -> OwnCluster {
        let dir = temp_dir(label);
        run_with(&[], "basebackup", &self.dir, self.port, &[&dir], self.preload)
            .unwrap_or_else(|e| panic!("pg_basebackup into {dir}: {e}"));
        let port = crate::free_port();
        let url =
            run_preloading("start", &dir, port, self.preload).unwrap_or_else(|e| panic!("start the backup {dir}: {e}"));
        OwnCluster {
            dir,
            port,
            url,
            preload: self.preload,
            wrapper: Vec::new(),
        }
    }

    /// A streaming hot standby of this running cluster (`pg_basebackup -R`),
    /// started on another free port; its `url` names the same database.
    pub fn standby(&self, label: &str) -> OwnCluster {
        let dir = temp_dir(label);
        run_with(&[], "standby", &self.dir, self.port, &[&dir], self.preload)
            .unwrap_or_else(|e| panic!("pg_basebackup -R into {dir}: {e}"));
        let port = crate::free_port();
        let url = run_preloading("start", &dir, port, self.preload)
            .unwrap_or_else(|e| panic!("start the standby {dir}: {e}"));
        OwnCluster {
            dir,
            port,
            url,
            preload: self.preload,
            wrapper: Vec::new(),
        }
    }

    /// Waits until `standby` has replayed everything this cluster has
    /// written so far (its WAL position, read now). Polls; the bound only
    /// limits a failure.
    pub async fn wait_replayed_by(&self, standby: &OwnCluster) {
        let primary = crate::connect(&self.url).await;
        let replica = crate::connect(&standby.url).await;
        let target: String = primary
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .expect("pg_current_wal_lsn")
            .get(0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let done: bool = replica
                .query_one(
                    "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)",
                    &[&target],
                )
                .await
                .expect("pg_last_wal_replay_lsn")
                .get(0);
            if done {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "standby on port {} did not replay up to {target}",
                standby.port
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// `stop` (fast shutdown), `start` again, or `crash` (immediate).
    pub fn ctl(&self, cmd: &str) {
        run_with(&self.wrapper, cmd, &self.dir, self.port, &[], self.preload)
            .unwrap_or_else(|e| panic!("cluster.sh {cmd}: {e}"));
    }

    /// Starts a cluster in directory `dir` with `wrapper` before
    /// `cluster.sh` (`ip netns exec NS`: the server runs in namespace NS, on
    /// its loopback), on `port`; then makes it listen on `addresses` of that
    /// namespace as well and trust connections from `network` (a CIDR), and
    /// restarts it. `url` names the first address.
    pub fn start_wrapped(wrapper: Vec<String>, dir: &str, port: u16, addresses: &[&str], network: &str) -> OwnCluster {
        let first =
            run_with(&wrapper, "start", dir, port, &[], true).unwrap_or_else(|e| panic!("start cluster {dir}: {e}"));
        let address = addresses.first().copied().unwrap_or("127.0.0.1");
        let cluster = OwnCluster {
            dir: dir.to_owned(),
            port,
            url: first.replacen("127.0.0.1", address, 1),
            preload: true,
            wrapper,
        };
        let listen = std::iter::once("127.0.0.1")
            .chain(addresses.iter().copied())
            .collect::<Vec<_>>()
            .join(",");
        cluster.append_conf("postgresql.conf", &format!("listen_addresses = '{listen}'\n"));
        cluster.append_conf("pg_hba.conf", &format!("host all all {network} trust\n"));
        cluster.ctl("stop");
        cluster.ctl("start");
        cluster
    }

    /// Appends `text` to a file of the data directory.
    fn append_conf(&self, name: &str, text: &str) {
        use std::io::Write;
        let path = std::path::Path::new(&self.dir).join(name);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .unwrap_or_else(|e| panic!("append to {path:?}: {e}"));
    }

    /// Serves TLS with this certificate and key (PEM) and replaces
    /// `pg_hba.conf` with `hba`, then restarts. The files go into the data
    /// directory, owned like it (the key readable by its owner only, as the
    /// server demands).
    pub fn use_tls(&self, cert_pem: &str, key_pem: &str, hba: &str) {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = std::path::Path::new(&self.dir);
        let owner = std::fs::metadata(dir).expect("data directory");
        let write = |name: &str, text: &str, mode: u32| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("chmod {path:?}: {e}"));
            std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid()))
                .unwrap_or_else(|e| panic!("chown {path:?}: {e}"));
        };
        write("server.crt", cert_pem, 0o644);
        write("server.key", key_pem, 0o600);
        write("pg_hba.conf", hba, 0o600);
        let conf = dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
        text.push_str(
            "\n# TLS (OwnCluster::use_tls)\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
        );
        std::fs::write(&conf, text).expect("write postgresql.conf");
        self.ctl("stop");
        self.ctl("start");
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
        let _ = run_with(&self.wrapper, "stop", &self.dir, self.port, &[], self.preload);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
