//! The latency plot: one panel per workload, latency (log scale) against the
//! percentile on a "nines" axis (p90, p99, p99.9 equally spaced), one line per
//! relay, so tails are as visible as medians.

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::error::BenchError;
use crate::summary::Summary;

const PANELS: [(&str, &str); 4] = [
    ("ingest/wait_ok", "ingest: EVENT → OK (32 publishers, wait for OK)"),
    ("ingest/pipelined", "ingest: EVENT → OK (pipelined)"),
    ("query/mix", "queries: REQ → EOSE (mix, 32 clients)"),
    ("fanout/live", "fanout: publish → delivery (1,000 subscribers)"),
];
const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];
const FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];
/// The x axis ends at p99.99.
const MAX_NINES: f64 = 4.0;

/// One relay's line in a panel: its index (which picks the color), its name,
/// and its (nines, milliseconds) points.
type Series<'a> = (usize, &'a String, Vec<(f64, f64)>);

fn plot_err<E: std::fmt::Display>(e: E) -> BenchError {
    BenchError::Plot(e.to_string())
}

/// Text needs a TrueType font; DejaVu ships with Debian (fonts-dejavu-core).
fn load_font() -> Result<(), BenchError> {
    let path = std::env::var("RELAY_BENCH_FONT")
        .ok()
        .into_iter()
        .chain(FONTS.iter().map(|s| (*s).to_owned()))
        .find(|p| std::path::Path::new(p).exists())
        .ok_or_else(|| BenchError::Plot("no TrueType font found (apt-get install fonts-dejavu-core)".into()))?;
    let bytes = std::fs::read(&path).map_err(BenchError::io(format!("read {path}")))?;
    // plotters keeps fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| BenchError::Plot(format!("{path} is not a usable font")))
}

fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-12).log10()
}

fn nines_label(x: &f64) -> String {
    let q = 100.0 * (1.0 - 10f64.powf(-*x));
    if *x < 0.01 {
        "p0".into()
    } else {
        format!("p{}", format!("{q:.2}").trim_end_matches('0').trim_end_matches('.'))
    }
}

pub fn draw(s: &Summary, path: &str) -> Result<(), BenchError> {
    load_font()?;
    let root = BitMapBackend::new(path, (1500, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let areas = root.split_evenly((2, 2));
    for ((key, title), area) in PANELS.iter().zip(areas.iter()) {
        let Some(row) = s.cells.get(*key) else { continue };
        let series: Vec<Series> = s
            .relays
            .iter()
            .enumerate()
            .filter_map(|(i, relay)| {
                let cell = row.get(relay)?;
                let pts: Vec<(f64, f64)> = cell
                    .curve
                    .iter()
                    .filter(|(q, ms)| *q > 0.0 && nines(*q) <= MAX_NINES + 1e-9 && *ms > 0.0)
                    .map(|(q, ms)| (nines(*q), *ms))
                    .collect();
                (!pts.is_empty()).then_some((i, relay, pts))
            })
            .collect();
        let lo = series
            .iter()
            .flat_map(|s| s.2.iter().map(|p| p.1))
            .fold(f64::INFINITY, f64::min);
        let hi = series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).fold(0.0, f64::max);
        if series.is_empty() || !lo.is_finite() {
            continue;
        }
        let mut chart = ChartBuilder::on(area)
            .caption(*title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..MAX_NINES, ((lo * 0.8).max(1e-3)..hi * 1.25).log_scale())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_labels(5)
            .x_label_formatter(&nines_label)
            .x_desc("percentile")
            .y_desc("latency, ms (log)")
            .draw()
            .map_err(plot_err)?;
        for (i, relay, pts) in series {
            let color = COLORS.get(i % COLORS.len()).copied().unwrap_or(BLACK);
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(plot_err)?
                .label(relay.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 16))
            .draw()
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)
}
