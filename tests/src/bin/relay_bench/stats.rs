//! Latency samples: exact quantiles over every sample (runs are short enough
//! to keep them all), and a quantile curve for the plot.

use std::time::Duration;

/// Quantiles kept in the JSON records, dense in the tail where relays differ.
const CURVE: [f64; 24] = [
    0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.993, 0.995, 0.997, 0.998,
    0.999, 0.9995, 0.9999, 1.0,
];

#[derive(Default, Clone)]
pub struct Latencies {
    nanos: Vec<u64>,
    sorted: bool,
}

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        self.nanos.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.sorted = false;
    }

    pub fn extend(&mut self, other: Latencies) {
        self.nanos.extend(other.nanos);
        self.sorted = false;
    }

    pub fn len(&self) -> usize {
        self.nanos.len()
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.nanos.sort_unstable();
            self.sorted = true;
        }
    }

    /// Nearest-rank quantile in milliseconds; 0 when empty.
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        self.sort();
        let n = self.nanos.len();
        if n == 0 {
            return 0.0;
        }
        let rank = ((n as f64 * q).ceil() as usize).clamp(1, n);
        self.nanos.get(rank - 1).map_or(0.0, |&v| v as f64 / 1e6)
    }

    pub fn mean_ms(&self) -> f64 {
        if self.nanos.is_empty() {
            return 0.0;
        }
        self.nanos.iter().map(|&v| v as f64).sum::<f64>() / self.nanos.len() as f64 / 1e6
    }

    /// (quantile, milliseconds) pairs.
    pub fn curve(&mut self) -> Vec<(f64, f64)> {
        CURVE.iter().map(|&q| (q, self.quantile_ms(q))).collect()
    }
}
