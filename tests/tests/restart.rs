//! Postgres restarts under a running gateway: it answers `error:` while the
//! database is down and serves again, live fanout included, once it is back,
//! without being restarted. Uses a cluster of its own (it stops it).
// Test helpers expect freely: a failed expectation is a failed test (the
// workspace's expect_used lint is for code clients and the database reach).
#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use e2e::now;
use e2e::relay::{Client, Gateway};
use nostr_pg_core::hex;
use nostr_pg_core::sign::Keys;
use serde_json::json;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pg_config/cluster.sh")
}

fn cluster(cmd: &str, dir: &str, port: u16) -> String {
    let out = std::process::Command::new("bash")
        .arg(script())
        .args([cmd, dir, &port.to_string()])
        .output()
        .expect("run cluster.sh");
    assert!(
        out.status.success(),
        "cluster.sh {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

struct OwnCluster {
    dir: String,
    port: u16,
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        cluster("stop", &self.dir, self.port);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn gateway_survives_a_postgres_restart() {
    let port = e2e::free_port();
    let dir = std::env::temp_dir().join(format!("nostr_pg-restart-{}", std::process::id()));
    let dir = dir.to_string_lossy().into_owned();
    let own = OwnCluster { dir: dir.clone(), port };
    let url = cluster("start", &dir, port);
    let gw = Gateway::start(&url, &[]).await;
    let keys = Keys::from_seed("restart");
    let mut c = Client::connect(&gw.url).await;
    let before = keys.sign(now(), 1, vec![], "before");
    assert_eq!(c.publish(&before.canonical_json()).await[2], true);

    cluster("stop", &dir, port);
    let during = keys.sign(now(), 1, vec![], "during");
    let f = c.publish(&during.canonical_json()).await;
    assert_eq!(f[2], false, "{f}");
    assert!(f[3].as_str().unwrap_or_default().starts_with("error:"), "{f}");
    let closed = c
        .req("down", &[json!({"kinds": [1]})])
        .await
        .expect_err("CLOSED while down");
    assert!(closed[2].as_str().unwrap_or_default().starts_with("error:"), "{closed}");

    cluster("start", &dir, port);
    // The same connection works again once the gateway has reconnected.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let after = keys.sign(now(), 1, vec![], "after");
    loop {
        let f = c.publish(&after.canonical_json()).await;
        if f[2] == true {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "gateway did not recover: {f}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stored = c.req("up", &[json!({"kinds": [1]})]).await.expect("req after restart");
    assert_eq!(stored.len(), 2, "{stored:?}");

    // Live fanout is back too (the LISTEN connection was re-established).
    let mut sub = Client::connect(&gw.url).await;
    sub.req("live", &[json!({"kinds": [1]})]).await.expect("req");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    loop {
        let live = keys.sign(now(), 1, vec![], &format!("live {n}"));
        c.publish(&live.canonical_json()).await;
        if let Some(f) = sub.try_recv(Duration::from_secs(2)).await {
            if f[0] == "EVENT" && f[2]["id"] == hex::encode(&live.id).as_str() {
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "live fanout did not come back");
        n += 1;
    }
    drop(own);
}
