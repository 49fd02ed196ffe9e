//! A relay spread over test hosts ([`crate::netns`]): PostgreSQL on the
//! database host, one gateway on each gateway host, and optionally a delay
//! on each gateway's path to the database.
//!
//! The database is a cluster this module starts in the database host's
//! namespace, listening on that host's addresses (port [`DB_PORT`]), so a
//! gateway's connections cross its database link to a real server and both
//! ends see what the link does. The shared test cluster cannot be used: it
//! lives in the root namespace on 127.0.0.1, which no other namespace
//! reaches. A gateway with a delay connects instead to a [`crate::delay`]
//! relay on the database host (port [`RELAY_PORT`] of the same address),
//! which holds each direction for the delay before passing it to the server
//! (the kernel here has no `sch_netem`, so `tc` cannot add latency).
//! Gateways listen on their client link, where the test's clients reach
//! them from the root namespace.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::cluster::OwnCluster;
use crate::netns::{self, Hosts, Unavailable};
use crate::relay::{Gateway, WAIT};

/// The database's port on the database host (a namespace of its own, so no
/// other cluster on the machine can hold it).
pub const DB_PORT: u16 = 56300;
/// Delay relays' port on the database host.
pub const RELAY_PORT: u16 = 56301;

/// What runs on the hosts. Fields drop in order: the gateways and relays
/// first, then the database, then the namespaces.
pub struct Site {
    pub gateways: Vec<Gateway>,
    relays: Vec<Child>,
    /// The database; its `url` reaches it from the root namespace.
    pub db: OwnCluster,
    pub hosts: Hosts,
}

/// How to start a [`Site`].
pub struct Plan<'a> {
    /// Delay each way on gateway i's database path (ms), one per gateway; 0:
    /// the gateway connects straight to the server.
    pub delays_ms: &'a [u64],
    /// The gateways' TOML config.
    pub config: &'a str,
    /// The `delay_relay` binary (needed when a delay is above 0).
    pub relay_bin: &'a Path,
}

impl Site {
    /// Makes the hosts and starts everything on them.
    pub async fn start(plan: &Plan<'_>) -> Result<Site, Unavailable> {
        let hosts = Hosts::new(plan.delays_ms.len())?;
        let dir = hosts.scratch.join("db").to_string_lossy().into_owned();
        let mut addresses: Vec<String> = vec![netns::DB_ADMIN_ADDR.to_owned()];
        addresses.extend((1..=hosts.gateways()).map(netns::db_addr));
        let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
        let db = OwnCluster::start_wrapped(netns::exec_in(netns::DB_NS), &dir, DB_PORT, &addresses, "10.213.0.0/16");
        let config = hosts.scratch.join("gateway.toml");
        std::fs::write(&config, plan.config).unwrap_or_else(|e| panic!("write {config:?}: {e}"));
        let config = config.to_string_lossy().into_owned();
        let mut site = Site {
            gateways: Vec::new(),
            relays: Vec::new(),
            db,
            hosts,
        };
        for (i, &delay) in (1..).zip(plan.delays_ms) {
            let port = if delay == 0 {
                DB_PORT
            } else {
                let relay = start_relay(plan.relay_bin, i, delay).await;
                site.relays.push(relay);
                RELAY_PORT
            };
            let url = format!("postgres://postgres@{}:{port}/nostr", netns::db_addr(i));
            let listen = format!("{}:0", netns::client_addr(i));
            let gw = Gateway::start_wrapped(
                &netns::exec_in(&netns::gateway_ns(i)),
                &listen,
                &url,
                &["--config", &config],
            )
            .await;
            site.gateways.push(gw);
        }
        Ok(site)
    }

    /// Gateway `i` (from 1).
    pub fn gateway(&self, i: usize) -> &Gateway {
        self.gateways
            .get(i.wrapping_sub(1))
            .unwrap_or_else(|| panic!("no gateway {i}"))
    }
}

/// A delay relay on the database host, on gateway `i`'s database address,
/// once it accepts connections.
async fn start_relay(bin: &Path, i: usize, delay_ms: u64) -> Child {
    let listen = format!("{}:{RELAY_PORT}", netns::db_addr(i));
    let upstream = format!("127.0.0.1:{DB_PORT}");
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns::DB_NS])
        .arg(bin)
        .args([
            "--listen",
            &listen,
            "--upstream",
            &upstream,
            "--delay-ms",
            &delay_ms.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin:?}: {e}"));
    let stdout = child.stdout.take().expect("relay stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("delay relay printed nothing")
        .expect("read relay stdout")
        .expect("delay relay exited");
    assert!(line.starts_with("listening on "), "delay relay said {line:?}");
    child
}
