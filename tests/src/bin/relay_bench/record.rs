//! One JSON line per measurement: which relay, which workload and case, which
//! round, the numbers, and a latency curve. Workloads append; `report` reads.

use std::collections::BTreeMap;
use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::error::BenchError;
use crate::stats::Latencies;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub relay: String,
    pub workload: String,
    pub case: String,
    pub round: u32,
    pub metrics: BTreeMap<String, f64>,
    /// (quantile, ms) of the case's main latency; empty when it has none.
    #[serde(default)]
    pub curve: Vec<(f64, f64)>,
}

impl Record {
    pub fn new(relay: &str, workload: &str, case: &str, round: u32) -> Record {
        Record {
            relay: relay.to_owned(),
            workload: workload.to_owned(),
            case: case.to_owned(),
            round,
            metrics: BTreeMap::new(),
            curve: Vec::new(),
        }
    }

    pub fn set(&mut self, name: &str, value: f64) -> &mut Record {
        self.metrics.insert(name.to_owned(), value);
        self
    }

    /// Stores p50/p90/p99/p99.9/max/mean under `prefix` and keeps the curve.
    pub fn latencies(&mut self, prefix: &str, lat: &mut Latencies, keep_curve: bool) -> &mut Record {
        self.set(&format!("{prefix}p50_ms"), lat.quantile_ms(0.5));
        self.set(&format!("{prefix}p90_ms"), lat.quantile_ms(0.9));
        self.set(&format!("{prefix}p99_ms"), lat.quantile_ms(0.99));
        self.set(&format!("{prefix}p999_ms"), lat.quantile_ms(0.999));
        self.set(&format!("{prefix}max_ms"), lat.quantile_ms(1.0));
        self.set(&format!("{prefix}mean_ms"), lat.mean_ms());
        self.set(&format!("{prefix}samples"), lat.len() as f64);
        if keep_curve {
            self.curve = lat.curve();
        }
        self
    }

    /// Appends to the JSONL file and echoes a one-line summary to stderr.
    pub fn append(&self, path: &str) -> Result<(), BenchError> {
        let line = serde_json::to_string(self).map_err(BenchError::json("encode record"))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(BenchError::io(format!("open {path}")))?;
        writeln!(f, "{line}").map_err(BenchError::io(format!("write {path}")))?;
        let summary: Vec<String> = self.metrics.iter().map(|(k, v)| format!("{k}={v:.2}")).collect();
        eprintln!(
            "relay_bench: {} {}/{} round {}: {}",
            self.relay,
            self.workload,
            self.case,
            self.round,
            summary.join(" ")
        );
        Ok(())
    }

    pub fn read_all(path: &str) -> Result<Vec<Record>, BenchError> {
        let text = std::fs::read_to_string(path).map_err(BenchError::io(format!("read {path}")))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(BenchError::json(format!("record in {path}"))))
            .collect()
    }
}
