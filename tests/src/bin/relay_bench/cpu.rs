//! CPU time spent by a relay during a workload, from `/proc/PID/stat`: the
//! load generator shares the machine's cores with the relay, so events/s alone
//! says as much about the client as about the relay. CPU-seconds per 1,000
//! operations is the number that compares across relays and across runs.
//!
//! A relay is one or more root processes (the nostr_pg gateway and the
//! postmaster of its cluster; strfry alone). Each root counts with all its
//! descendants: a live child by its own times, a child that exited by what
//! the kernel added to its parent's `cutime`/`cstime` when it was reaped, so
//! Postgres backends that come and go during a workload are all counted.

use std::collections::{HashMap, HashSet};

use crate::error::BenchError;

/// The fields of `/proc/PID/stat` the accounting needs, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub ppid: u32,
    pub utime: u64,
    pub stime: u64,
    pub cutime: u64,
    pub cstime: u64,
}

impl ProcStat {
    /// The process's own time plus that of its reaped children.
    pub fn ticks(&self) -> u64 {
        self.utime + self.stime + self.cutime + self.cstime
    }
}

/// Parses one `/proc/PID/stat` line. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so the fields are
/// counted from the last `)`.
pub fn parse_stat(text: &str) -> Result<ProcStat, BenchError> {
    let bad = |why: &str| BenchError::Relay(format!("unreadable /proc stat line ({why}): {text:.80}"));
    let close = text.rfind(')').ok_or_else(|| bad("no command name"))?;
    let rest = text
        .get(close + 1..)
        .ok_or_else(|| bad("nothing after the command name"))?;
    // After the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64, BenchError> {
        fields
            .get(n - 3)
            .ok_or_else(|| bad(&format!("no field {n}")))?
            .parse::<i64>()
            .map(|v| v.max(0) as u64)
            .map_err(|_| bad(&format!("field {n} is not a number")))
    };
    Ok(ProcStat {
        ppid: u32::try_from(field(4)?).map_err(|_| bad("ppid out of range"))?,
        utime: field(14)?,
        stime: field(15)?,
        cutime: field(16)?,
        cstime: field(17)?,
    })
}

/// Parses a PID list as run.sh passes it: `123`, `123:456` or `123,456`.
pub fn parse_pids(list: &str) -> Result<Vec<u32>, BenchError> {
    list.split([',', ':'])
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.trim()
                .parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| BenchError::Usage(format!("`{p}` in `{list}` is not a process id")))
        })
        .collect()
}

/// Every process on the machine: pid → stat. Processes that vanish while
/// the directory is read are skipped; they are accounted in their parent.
fn snapshot() -> Result<HashMap<u32, ProcStat>, BenchError> {
    let mut all = HashMap::new();
    for entry in std::fs::read_dir("/proc").map_err(BenchError::io("read /proc"))? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            all.insert(pid, parse_stat(&text)?);
        }
    }
    Ok(all)
}

/// Clock ticks of the given roots and all their live descendants (each
/// process once, even when roots overlap).
pub fn tree_ticks(all: &HashMap<u32, ProcStat>, roots: &[u32]) -> u64 {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, stat) in all {
        children.entry(stat.ppid).or_default().push(pid);
    }
    let mut seen = HashSet::new();
    let mut stack: Vec<u32> = roots.to_vec();
    let mut total = 0;
    while let Some(pid) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        if let Some(stat) = all.get(&pid) {
            total += stat.ticks();
        }
        if let Some(kids) = children.get(&pid) {
            stack.extend(kids);
        }
    }
    total
}

/// Clock ticks per second of `/proc` times (USER_HZ).
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|&t| t > 0.0)
        .unwrap_or(100.0)
}

/// CPU-seconds used between `start` and `stop`.
#[derive(Debug, Clone, Copy)]
pub struct CpuUsed {
    /// The relay's processes (None when no PID was given).
    pub relay_s: Option<f64>,
    /// This load generator (all its threads).
    pub bench_s: f64,
}

pub struct CpuMeter {
    pids: Vec<u32>,
    hz: f64,
    relay_start: u64,
    bench_start: u64,
}

fn own_ticks() -> Result<u64, BenchError> {
    let text = std::fs::read_to_string("/proc/self/stat").map_err(BenchError::io("read /proc/self/stat"))?;
    let s = parse_stat(&text)?;
    Ok(s.utime + s.stime)
}

impl CpuMeter {
    pub fn start(pids: &[u32]) -> Result<CpuMeter, BenchError> {
        for pid in pids {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Err(BenchError::Usage(format!("process {pid} (--pids) is not running")));
            }
        }
        let relay_start = if pids.is_empty() {
            0
        } else {
            tree_ticks(&snapshot()?, pids)
        };
        Ok(CpuMeter {
            pids: pids.to_vec(),
            hz: ticks_per_second(),
            relay_start,
            bench_start: own_ticks()?,
        })
    }

    pub fn stop(&self) -> Result<CpuUsed, BenchError> {
        let bench = own_ticks()?.saturating_sub(self.bench_start);
        let relay = if self.pids.is_empty() {
            None
        } else {
            Some(tree_ticks(&snapshot()?, &self.pids).saturating_sub(self.relay_start))
        };
        Ok(CpuUsed {
            relay_s: relay.map(|t| t as f64 / self.hz),
            bench_s: bench as f64 / self.hz,
        })
    }
}

impl CpuUsed {
    /// Adds `relay_cpu_s`, `bench_cpu_s` and both per 1,000 operations.
    pub fn record(&self, r: &mut crate::record::Record, ops: u64) {
        let per_1k = |s: f64| if ops > 0 { s * 1000.0 / ops as f64 } else { f64::NAN };
        if let Some(relay) = self.relay_s {
            r.set("relay_cpu_s", relay).set("relay_cpu_s_per_1k", per_1k(relay));
        }
        r.set("bench_cpu_s", self.bench_s)
            .set("bench_cpu_s_per_1k", per_1k(self.bench_s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stat_lines() {
        // A real line shape: the name has spaces and parentheses.
        let line = "4242 (post (gres) x) S 17 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 75 30 12 20 0 1 0 123456 1000000 500 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            ProcStat {
                ppid: 17,
                utime: 250,
                stime: 75,
                cutime: 30,
                cstime: 12
            }
        );
        assert_eq!(s.ticks(), 367);
        assert!(parse_stat("12 (cut short) S 1 2").is_err());
        assert!(parse_stat("no parentheses at all").is_err());
        // Our own stat line parses.
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_stat(&own).is_ok());
    }

    #[test]
    fn sums_trees() {
        let st = |ppid, utime| ProcStat {
            ppid,
            utime,
            stime: 1,
            cutime: 0,
            cstime: 0,
        };
        // 10 → {11, 12 → 13}; 20 unrelated; 30 a second root.
        let all: HashMap<u32, ProcStat> = [
            (10, st(1, 100)),
            (11, st(10, 10)),
            (12, st(10, 20)),
            (13, st(12, 5)),
            (20, st(1, 1000)),
            (30, st(1, 7)),
        ]
        .into_iter()
        .collect();
        assert_eq!(tree_ticks(&all, &[10]), 101 + 11 + 21 + 6);
        assert_eq!(tree_ticks(&all, &[10, 30]), 139 + 8);
        // Overlapping roots count each process once.
        assert_eq!(tree_ticks(&all, &[10, 12]), 139);
        assert_eq!(tree_ticks(&all, &[99]), 0);
    }

    #[test]
    fn reads_pid_lists() {
        assert_eq!(parse_pids("12").unwrap(), vec![12]);
        assert_eq!(parse_pids("12:34").unwrap(), vec![12, 34]);
        assert_eq!(parse_pids("12,34:56").unwrap(), vec![12, 34, 56]);
        assert_eq!(parse_pids("").unwrap(), Vec::<u32>::new());
        assert!(parse_pids("12:x").is_err());
        assert!(parse_pids("0").is_err());
    }

    #[test]
    fn measures_own_cpu() {
        // Spin until the kernel has charged this process 10 ticks (what a
        // busy machine grants is not known, so wait for the ticks, bounded).
        let me = std::process::id();
        let meter = CpuMeter::start(&[me]).unwrap();
        let start = own_ticks().unwrap();
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut x = 0u64;
        while own_ticks().unwrap() < start + 10 {
            assert!(std::time::Instant::now() < give_up, "no CPU time charged in 60 s");
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        let used = meter.stop().unwrap();
        assert!(used.bench_s >= 10.0 / meter.hz, "{used:?}");
        // This process is the relay here: its tree includes every thread.
        assert!(used.relay_s.unwrap() >= used.bench_s, "{used:?}");
    }
}
