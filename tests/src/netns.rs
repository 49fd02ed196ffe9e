//! Test hosts in network namespaces: one database host and N gateway hosts,
//! joined by veth pairs with addresses of 10.213.0.0/16, for the multi-host
//! test (`tests/tests/hosts.rs`) and its benchmark (`hosts_bench`).
//!
//! ```text
//!   root namespace (the test's clients)
//!     npc0 10.213.100.1 ── npd0 10.213.100.2   npdb   (the database host)
//!     npcI 10.213.(100+I).1 ── npgIc 10.213.(100+I).2   npgwI  (gateway host I)
//!   npdb: npdI 10.213.I.1 ── npgId 10.213.I.2 in npgwI (gateway I's database link)
//! ```
//!
//! Each gateway host has two links: one to the database host, which
//! [`Hosts::cut`] takes down (its connections then go half-open, as in a
//! real network cut: nothing arrives, nothing closes), and one to the root
//! namespace for the test's clients, which a cut leaves alone.
//!
//! Namespaces and links are named `np...` and are global to the machine, so
//! one run at a time holds a lock file; under it, whatever `np...` a crashed
//! run left behind (namespaces, the processes still in them, the database
//! it started, root-side links) is removed before anything is made. Drop
//! removes what this run made, also when the test panics.

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Every name this module makes starts with this.
const PREFIX: &str = "np";
/// The database host.
pub const DB_NS: &str = "npdb";
/// How long a run waits for another run of the multi-host test to finish.
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// Why the hosts cannot be made on this machine (the test says so and
/// fails, or skips when told to).
#[derive(Debug)]
pub struct Unavailable(pub String);

/// The namespaces and links of one run; removed on drop.
pub struct Hosts {
    gateways: usize,
    /// A directory of this run's (the database's data directory goes here).
    pub scratch: PathBuf,
    // Held until drop: another run waits for it.
    _lock: File,
}

/// Runs `ip ARGS`; its stdout, or a message with its stderr.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("{e}");
    }
}

/// Whether this process may make network namespaces: root (effective uid
/// 0, which `ip netns` needs) and iproute2's `ip` on the PATH.
pub fn check() -> Result<(), Unavailable> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    if euid != "0" {
        return Err(Unavailable(format!(
            "network namespaces need root (effective uid is {euid})"
        )));
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(Unavailable(format!(
            "`ip -V` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        Err(e) => Err(Unavailable(format!(
            "iproute2's `ip` is not available ({e}); on Debian: apt-get install iproute2"
        ))),
    }
}

/// The namespace of gateway host `i` (from 1).
pub fn gateway_ns(i: usize) -> String {
    format!("{PREFIX}gw{i}")
}

/// The database host's address on gateway `i`'s database link.
pub fn db_addr(i: usize) -> String {
    format!("10.213.{i}.1")
}

/// Gateway host `i`'s address on its client link (where it listens).
pub fn client_addr(i: usize) -> String {
    format!("10.213.{}.2", 100 + i)
}

/// The hardware address of 10.213.`x`.`y`: 02:00:0a:d5:`x`:`y` (hex).
fn mac(x: usize, y: usize) -> String {
    format!("02:00:0a:d5:{x:02x}:{y:02x}")
}

/// The database host's address on the root namespace's link.
pub const DB_ADMIN_ADDR: &str = "10.213.100.2";

/// `ip netns exec NS`, to put before a command that runs in namespace NS.
pub fn exec_in(ns: &str) -> Vec<String> {
    ["ip", "netns", "exec", ns].iter().map(|s| (*s).to_owned()).collect()
}

impl Hosts {
    /// Makes the database host and `gateways` gateway hosts (at most 99),
    /// after waiting for any other run and removing what a crashed one left.
    pub fn new(gateways: usize) -> Result<Hosts, Unavailable> {
        assert!((1..100).contains(&gateways), "1 to 99 gateway hosts");
        check()?;
        let lock = take_lock()?;
        let scratch = std::env::temp_dir().join("nostr_pg-hosts");
        remove_stale(&scratch);
        std::fs::create_dir_all(&scratch).unwrap_or_else(|e| panic!("mkdir {scratch:?}: {e}"));
        let hosts = Hosts {
            gateways,
            scratch,
            _lock: lock,
        };
        // From here on, Drop removes whatever was made if a step fails.
        if let Err(e) = ip(&["netns", "add", DB_NS]) {
            return Err(Unavailable(format!("cannot make a network namespace: {e}")));
        }
        must(&["-n", DB_NS, "link", "set", "lo", "up"]);
        link("npc0", None, "10.213.100.1/24", "npd0", DB_NS, "10.213.100.2/24");
        for i in 1..=gateways {
            let ns = gateway_ns(i);
            must(&["netns", "add", &ns]);
            must(&["-n", &ns, "link", "set", "lo", "up"]);
            link(
                &format!("npd{i}"),
                Some(DB_NS),
                &format!("{}/24", db_addr(i)),
                &format!("npg{i}d"),
                &ns,
                &format!("10.213.{i}.2/24"),
            );
            hosts.pin_neighbours(i);
            link(
                &format!("npc{i}"),
                None,
                &format!("10.213.{}.1/24", 100 + i),
                &format!("npg{i}c"),
                &ns,
                &format!("{}/24", client_addr(i)),
            );
        }
        Ok(hosts)
    }

    pub fn gateways(&self) -> usize {
        self.gateways
    }

    /// Cuts gateway `i`'s database link by taking down its far end, on the
    /// database host. The gateway's own interface, address, route and
    /// neighbour entry stay, so what it sends is silently lost on the way,
    /// as behind a failed switch or cable: its open connections go
    /// half-open (nothing arrives, nothing closes) and new ones wait for
    /// their connect timeout. (Taking the gateway's own end down instead
    /// fails its sends at once with "network unreachable", an easier case.)
    pub fn cut(&self, i: usize) {
        must(&["-n", DB_NS, "link", "set", &format!("npd{i}"), "down"]);
    }

    /// Brings gateway `i`'s database link back.
    pub fn restore(&self, i: usize) {
        must(&["-n", DB_NS, "link", "set", &format!("npd{i}"), "up"]);
        self.pin_neighbours(i);
    }

    /// Fixed neighbour (ARP) entries at both ends of gateway `i`'s database
    /// link, so that neither host learns of a cut from failed address
    /// resolution ("no route to host"): packets just vanish. Taking a link
    /// down drops its end's entries, so [`Hosts::restore`] sets them again.
    fn pin_neighbours(&self, i: usize) {
        let (db_mac, gw_mac) = (mac(i, 1), mac(i, 2));
        must(&[
            "-n",
            DB_NS,
            "neigh",
            "replace",
            &format!("10.213.{i}.2"),
            "lladdr",
            &gw_mac,
            "dev",
            &format!("npd{i}"),
            "nud",
            "permanent",
        ]);
        let ns = gateway_ns(i);
        must(&[
            "-n",
            &ns,
            "neigh",
            "replace",
            &db_addr(i),
            "lladdr",
            &db_mac,
            "dev",
            &format!("npg{i}d"),
            "nud",
            "permanent",
        ]);
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Processes started in the namespaces are gone by now (their owners
        // were dropped first); anything left is removed like a crashed run's.
        remove_stale(&self.scratch);
    }
}

/// A veth pair: `a` (in `a_ns`, or the root namespace) with `a_addr`, and
/// `b` in `b_ns` with `b_addr`; both up.
fn link(a: &str, a_ns: Option<&str>, a_addr: &str, b: &str, b_ns: &str, b_addr: &str) {
    match a_ns {
        Some(ns) => must(&[
            "link", "add", a, "netns", ns, "type", "veth", "peer", "name", b, "netns", b_ns,
        ]),
        None => must(&["link", "add", a, "type", "veth", "peer", "name", b, "netns", b_ns]),
    }
    // Hardware addresses of our own choosing, so neighbour entries can be
    // fixed (see `mac`).
    let mac_of = |addr: &str| {
        let mut parts = addr.split(['.', '/']).skip(2).map(|p| p.parse::<usize>().unwrap_or(0));
        mac(parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    };
    let in_a = |args: &[&str]| match a_ns {
        Some(ns) => must(&[&["-n", ns], args].concat()),
        None => must(args),
    };
    in_a(&["link", "set", a, "address", &mac_of(a_addr)]);
    must(&["-n", b_ns, "link", "set", b, "address", &mac_of(b_addr)]);
    in_a(&["addr", "add", a_addr, "dev", a]);
    in_a(&["link", "set", a, "up"]);
    must(&["-n", b_ns, "addr", "add", b_addr, "dev", b]);
    must(&["-n", b_ns, "link", "set", b, "up"]);
}

/// The machine-wide lock of the multi-host runs (namespace names are global).
fn take_lock() -> Result<File, Unavailable> {
    let path = std::env::temp_dir().join("nostr_pg-hosts.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Unavailable(format!("open {path:?}: {e}")))?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                // Another run holds the hosts; nothing to wait on but the lock.
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("lock {path:?} (another multi-host run for {LOCK_WAIT:?}?): {e}"),
        }
    }
}

/// Removes every `np...` namespace (killing what still runs in it), the
/// database a run left in `scratch`, and `np...` links of the root namespace.
fn remove_stale(scratch: &std::path::Path) {
    let db = scratch.join("db");
    if db.join("postmaster.pid").exists() {
        let _ = crate::cluster::run("crash", &db.to_string_lossy(), 0);
    }
    let names = ip(&["netns", "list"]).unwrap_or_default();
    for ns in names
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
    {
        // Gateways and relays of this module's runs (pids are of this
        // namespace only): a crashed run could not stop them.
        for pid in ip(&["netns", "pids", ns]).unwrap_or_default().split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
        if let Err(e) = ip(&["netns", "del", ns]) {
            eprintln!("removing stale namespace {ns}: {e}");
        }
    }
    let links = ip(&["-o", "link", "show"]).unwrap_or_default();
    for name in links
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n))
        .filter(|n| n.starts_with(PREFIX))
    {
        let _ = ip(&["link", "del", name]);
    }
    let _ = std::fs::remove_dir_all(scratch);
}
