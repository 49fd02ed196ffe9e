//! Rounds folded into one value per (workload, case, relay, metric): the
//! median over rounds, so one disturbed round does not decide a comparison.
//! Latency curves are averaged quantile by quantile.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::record::Record;

#[derive(Debug, Default, Clone, Serialize)]
pub struct Cell {
    pub metrics: BTreeMap<String, f64>,
    pub rounds: usize,
    pub curve: Vec<(f64, f64)>,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Relays in report order: nostr_pg first, then peers as they appear.
    pub relays: Vec<String>,
    /// "workload/case" → relay → cell.
    pub cells: BTreeMap<String, BTreeMap<String, Cell>>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v.get(n / 2).copied().unwrap_or(f64::NAN),
        _ => (v.get(n / 2 - 1).copied().unwrap_or(f64::NAN) + v.get(n / 2).copied().unwrap_or(f64::NAN)) / 2.0,
    }
}

impl Summary {
    pub fn build(records: &[Record], main: &str) -> Summary {
        let mut relays: Vec<String> = vec![main.to_owned()];
        let mut groups: BTreeMap<String, BTreeMap<String, Vec<&Record>>> = BTreeMap::new();
        for r in records {
            if !relays.contains(&r.relay) {
                relays.push(r.relay.clone());
            }
            groups
                .entry(format!("{}/{}", r.workload, r.case))
                .or_default()
                .entry(r.relay.clone())
                .or_default()
                .push(r);
        }
        let mut cells = BTreeMap::new();
        for (key, by_relay) in groups {
            let mut row = BTreeMap::new();
            for (relay, rs) in by_relay {
                let mut names: Vec<&String> = rs.iter().flat_map(|r| r.metrics.keys()).collect();
                names.sort();
                names.dedup();
                let metrics = names
                    .into_iter()
                    .map(|m| {
                        (
                            m.clone(),
                            median(rs.iter().filter_map(|r| r.metrics.get(m).copied()).collect()),
                        )
                    })
                    .collect();
                let with_curve: Vec<&&Record> = rs.iter().filter(|r| !r.curve.is_empty()).collect();
                let curve = with_curve
                    .first()
                    .map(|first| {
                        first
                            .curve
                            .iter()
                            .enumerate()
                            .map(|(i, &(q, _))| {
                                let vals: Vec<f64> =
                                    with_curve.iter().filter_map(|r| r.curve.get(i).map(|p| p.1)).collect();
                                (q, vals.iter().sum::<f64>() / vals.len().max(1) as f64)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                row.insert(
                    relay,
                    Cell {
                        metrics,
                        rounds: rs.len(),
                        curve,
                    },
                );
            }
            cells.insert(key, row);
        }
        relays.retain(|r| cells.values().any(|row| row.contains_key(r)));
        Summary { relays, cells }
    }

    pub fn get(&self, key: &str, relay: &str, metric: &str) -> Option<f64> {
        self.cells
            .get(key)?
            .get(relay)?
            .metrics
            .get(metric)
            .copied()
            .filter(|v| v.is_finite())
    }
}
