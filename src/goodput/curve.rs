//! Capacity as a curve: attainment (mean, 95% confidence band over the seeds, and each
//! resolution's) and cost at every cluster size or load of a range, with the target drawn,
//! as one table and two charts for a slide.
//!
//! A search answers with one point; the curve shows how sharp that answer is: how much
//! attainment one step fewer GPUs loses, which resolution falls first, and what each step
//! costs per 1,000 met images. Its points are [`Planner::measure`]'s, so a search run beside
//! it reuses them.

use std::path::{Path, PathBuf};

use super::{Measure, Planner};
use crate::error::Result;
use crate::report::plot::{Frame, Series, line_chart};

/// What the curve's x axis is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// Cluster sizes at one load.
    Gpus,
    /// Sizes of one pool of disaggregated stages at one load, the rest of the cluster fixed.
    Pool(super::Pool),
    /// Loads (requests per minute; a log's are its scales times its rate) on one cluster.
    Rate,
}

/// One measured point of a curve.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// GPUs, or requests per minute.
    pub x: f64,
    /// What [`Planner::measure`] took: the GPUs, or the rate or scale.
    pub measure: Measure,
    /// Whether the point meets the target under the planner's criterion.
    pub meets: bool,
}

/// Measures every point: `xs` are cluster sizes (`Axis::Gpus`, load at `load`) or points of
/// the load (`Axis::Rate`: rates, or a log's scales, on `gpus` GPUs).
pub fn measure(
    planner: &Planner,
    target: f64,
    axis: Axis,
    xs: &[f64],
    load: f64,
    gpus: Option<u32>,
) -> Result<Vec<Point>> {
    xs.iter()
        .map(|&x| {
            let (m, shown) = match axis {
                // Cluster sizes are whole numbers of GPUs by construction.
                // GPU counts are whole numbers by construction; a pool-sizing planner applies
                // them to its pool.
                Axis::Gpus | Axis::Pool(_) => (planner.measure(load, Some(x as u32))?, x),
                Axis::Rate => (planner.measure(x, gpus)?, planner.rate_at(x)),
            };
            Ok(Point {
                x: shown,
                meets: planner.meets(&m, target),
                measure: m,
            })
        })
        .collect()
}

/// `n` evenly spaced points from `lo` to `hi`, both included.
pub fn spaced(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![lo],
        _ => (0..n)
            .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
            .collect(),
    }
}

/// The resolutions of a curve, smallest first, as they appear in its points.
fn resolutions(points: &[Point]) -> Vec<crate::workload::Resolution> {
    let mut all: Vec<crate::workload::Resolution> = Vec::new();
    for p in points {
        for c in &p.measure.per_resolution {
            if !all.contains(&c.resolution) {
                all.push(c.resolution);
            }
        }
    }
    all.sort_by_key(|r| (r.tokens(), *r));
    all
}

/// The curve as CSV: one row per point with attainment (mean, CI, worst seed, each
/// resolution), whether it meets the target, and cost.
pub fn to_csv(axis: Axis, criterion: &str, target: f64, points: &[Point]) -> String {
    let res = resolutions(points);
    let x = match axis {
        Axis::Gpus => "gpus".to_string(),
        Axis::Pool(p) => format!("{}_pool_gpus", p.name()),
        Axis::Rate => "rate_per_min".to_string(),
    };
    let mut head = vec![
        x,
        "slo_attainment".into(),
        "ci95_low".into(),
        "ci95_high".into(),
        "worst_seed_attainment".into(),
    ];
    head.extend(res.iter().map(|r| format!("attainment_{r}")));
    head.extend(
        [
            "target",
            "criterion",
            "meets_target",
            "runs",
            "requests",
            "met",
        ]
        .into_iter()
        .chain(crate::sweep::results::COST_COLUMNS)
        .map(String::from),
    );
    let opt = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v}"));
    let mut out = head.join(",") + "\n";
    for p in points {
        let m = &p.measure;
        let (low, high) = m.ci95_bounds();
        let mut row = vec![
            format!("{}", p.x),
            format!("{}", m.slo_attainment),
            format!("{low}"),
            format!("{high}"),
            opt(m.worst_run()),
        ];
        row.extend(res.iter().map(|r| {
            opt(m
                .per_resolution
                .iter()
                .find(|c| c.resolution == *r)
                .map(|c| c.attainment()))
        }));
        row.extend([
            format!("{target}"),
            criterion.to_string(),
            p.meets.to_string(),
            m.runs.to_string(),
            m.requests.to_string(),
            m.met.to_string(),
        ]);
        row.extend(m.cost_values().map(opt));
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// What the charts show, under them.
fn caption(points: &[Point]) -> String {
    let runs = points.first().map_or(0, |p| p.measure.runs);
    format!(
        "Simulated with the scenario's cost model (an estimate); {runs} run(s) per point; band: 95% CI of the mean"
    )
}

/// Draws the curve into `dir`: `attainment.png/.svg` (mean with its 95% band, each
/// resolution, the target dashed) and, where a price is known, `cost.png/.svg` (dollars per
/// 1,000 met images and provisioned GPU-hours per run). Returns the files' bases.
pub fn draw(
    dir: &Path,
    axis: Axis,
    policy: &str,
    target: f64,
    load_phrase: &str,
    points: &[Point],
) -> Result<Vec<PathBuf>> {
    let xs: Vec<f64> = points.iter().map(|p| p.x).collect();
    let x_label = match axis {
        Axis::Gpus => "GPUs".to_string(),
        Axis::Pool(p) => format!("{}-pool GPUs", p.name()),
        Axis::Rate => "Load (requests per minute)".to_string(),
    };
    let pct = |v: f64| (v * 100.0).clamp(0.0, 100.0);
    let mut series = vec![Series {
        label: format!("{policy}: mean (95% CI)"),
        points: points
            .iter()
            .map(|p| {
                let (low, high) = p.measure.ci95_bounds();
                (p.x, pct(p.measure.slo_attainment), pct(low), pct(high))
            })
            .collect(),
        dashed: false,
    }];
    let res = resolutions(points);
    if res.len() > 1 {
        for r in &res {
            let pts: Vec<(f64, f64, f64, f64)> = points
                .iter()
                .filter_map(|p| {
                    let c = p
                        .measure
                        .per_resolution
                        .iter()
                        .find(|c| c.resolution == *r)?;
                    let a = pct(c.attainment());
                    Some((p.x, a, a, a))
                })
                .collect();
            series.push(Series {
                label: format!("{r}"),
                points: pts,
                dashed: false,
            });
        }
    }
    let (lo, hi) = (
        xs.iter().copied().fold(f64::INFINITY, f64::min),
        xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    series.push(Series {
        label: format!("target {:.0}%", target * 100.0),
        points: vec![
            (lo, target * 100.0, target * 100.0, target * 100.0),
            (hi, target * 100.0, target * 100.0, target * 100.0),
        ],
        dashed: true,
    });
    let ticks = (xs.len() <= 16).then(|| xs.clone());
    let frame = Frame {
        title: format!("SLO attainment of {policy}, {load_phrase}"),
        x_label: x_label.clone(),
        y_label: "SLO attainment (%)".into(),
        y_range: Some((0.0, 100.0)),
        y_log2: false,
        x_log2: false,
        x_ticks: ticks.clone(),
        caption: Some(caption(points)),
        x_range: None,
    };
    let mut written = Vec::new();
    let base = dir.join("attainment");
    line_chart(&base, &frame, &series)?;
    written.push(base);

    let usd: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p.x, p.measure.cost.usd_per_1k_met_images?)))
        .collect();
    if !usd.is_empty() {
        let top = usd.iter().map(|p| p.1).fold(0.0, f64::max);
        let frame = Frame {
            title: format!("Cost per 1,000 met images, {policy}, {load_phrase}"),
            x_label,
            y_label: "US dollars per 1,000 met images (provisioned GPU-hours)".into(),
            // From zero, so that a larger cluster's cost reads at its true size.
            y_range: Some((0.0, (top * 1.1).max(1e-9))),
            y_log2: false,
            x_log2: false,
            x_ticks: ticks,
            caption: Some(caption(points)),
            x_range: None,
        };
        let base = dir.join("cost");
        line_chart(
            &base,
            &frame,
            &[Series {
                label: format!("{policy}: $ per 1,000 met images"),
                points: usd.iter().map(|&(x, y)| (x, y, y, y)).collect(),
                dashed: false,
            }],
        )?;
        written.push(base);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaced_points_include_both_ends() {
        assert_eq!(spaced(10.0, 40.0, 4), vec![10.0, 20.0, 30.0, 40.0]);
        assert_eq!(spaced(5.0, 9.0, 1), vec![5.0]);
        assert!(spaced(5.0, 9.0, 0).is_empty());
    }
}
