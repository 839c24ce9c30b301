//! The policy comparison: a human table for the terminal and a CSV for tools, each optionally
//! with every policy's attainment per resolution.
//!
//! GPU time appears twice: busy (what the GPUs computed) and provisioned (the cluster held for
//! the run's makespan); dollars follow provisioned time, energy busy time (`metrics::summary`).

use std::fmt::Write as _;

use crate::metrics::Summary;

/// A fixed-width table, one row per policy.
pub fn comparison_table(summaries: &[Summary]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>6} {:>9} {:>8} {:>11}",
        "policy",
        "SLO att.",
        "met",
        "missed",
        "p50 lat",
        "p99 lat",
        "busy GPU-h",
        "prov GPU-h",
        "util",
        "$/1k met",
        "Wh/met",
        "decide p99"
    );
    let bound = summaries.iter().find_map(|m| m.slo_attainment_bound);
    for m in summaries {
        let _ = writeln!(
            s,
            "{:<16} {:>8.1}% {:>9} {:>9} {:>8.2}s {:>8.2}s {:>10.3} {:>10.3} {:>5.0}% {:>9} {:>8} {:>9.1}us",
            m.policy,
            100.0 * m.slo_attainment,
            format!("{}/{}", m.met, m.requests),
            m.missed + m.dropped,
            m.latency.p50_s,
            m.latency.p99_s,
            m.gpu_hours_busy,
            m.gpu_hours_provisioned,
            100.0 * m.utilization,
            shown(m.cost.usd_per_1k_met_images, 2),
            shown(m.cost.wh_per_met_image, 1),
            m.scheduler.p99_us
        );
    }
    if let Some(b) = bound {
        let _ = writeln!(
            s,
            "{:<16} {:>8.1}%  (no policy can do better on this workload and cluster)",
            "upper bound",
            100.0 * b
        );
    }
    // The first of the best, so a reader comparing many rows sees the answer at once.
    if summaries.len() > 1 {
        let best = summaries
            .iter()
            .reduce(|a, m| if m.met > a.met { m } else { a });
        if let Some(m) = best {
            let _ = writeln!(s, "most met: {} ({}/{})", m.policy, m.met, m.requests);
        }
    }
    s
}

/// A figure with `digits` decimals, or `-` where it is unknown.
fn shown(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}"))
}

/// The cost columns of `comparison.csv` (not of sweep `results.csv`).
const COST_COLUMNS: &str =
    "gpu_hours_busy,gpu_hours_provisioned,usd,usd_per_1k_met_images,energy_wh,wh_per_met_image";

/// The cells of [`COST_COLUMNS`] for one summary; unknown figures are empty cells.
fn cost_cells(m: &Summary) -> String {
    let cell = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
    format!(
        "{:.6},{:.6},{},{},{},{}",
        m.gpu_hours_busy,
        m.gpu_hours_provisioned,
        cell(m.cost.usd),
        cell(m.cost.usd_per_1k_met_images),
        cell(m.cost.energy_wh),
        cell(m.cost.wh_per_met_image),
    )
}

/// The resolutions of `summaries`' per-resolution attainment, smallest image first.
fn resolutions(summaries: &[Summary]) -> Vec<&str> {
    let mut keys: Vec<&str> = summaries
        .iter()
        .flat_map(|m| m.per_resolution.keys().map(String::as_str))
        .collect();
    let order = |k: &str| {
        k.parse::<crate::workload::Resolution>()
            .map(|r| (r.tokens(), r.width, r.height))
            .unwrap_or((u64::MAX, 0, 0))
    };
    keys.sort_by(|a, b| order(a).cmp(&order(b)).then(a.cmp(b)));
    keys.dedup();
    keys
}

/// Each policy's SLO attainment per resolution (`simulate --by-resolution`): one column per
/// resolution, `att% (met/requests)`; `-` where a policy saw no request of it.
pub fn resolution_table(summaries: &[Summary]) -> String {
    let keys = resolutions(summaries);
    let mut s = String::new();
    let _ = write!(s, "{:<16}", "SLO att. by res");
    for k in &keys {
        let _ = write!(s, " {k:>20}");
    }
    s.push('\n');
    for m in summaries {
        let _ = write!(s, "{:<16}", m.policy);
        for k in &keys {
            let cell = match m.per_resolution.get(*k) {
                Some(r) => format!(
                    "{:.1}% ({}/{})",
                    100.0 * r.slo_attainment,
                    r.met,
                    r.requests
                ),
                None => "-".to_string(),
            };
            let _ = write!(s, " {cell:>20}");
        }
        s.push('\n');
    }
    s
}

/// [`comparison_csv`] with one `slo_attainment_<WxH>` column per resolution (empty where a
/// policy saw no request of it).
pub fn comparison_csv_by_resolution(summaries: &[Summary]) -> String {
    csv_with_resolutions(summaries, &resolutions(summaries))
}

/// `comparison.csv`'s columns, then one `slo_attainment_<WxH>` column per key of `keys`.
fn csv_with_resolutions(summaries: &[Summary], keys: &[&str]) -> String {
    let mut s = format!("policy,{METRIC_COLUMNS},slo_attainment_bound,{COST_COLUMNS}");
    for k in keys {
        let _ = write!(s, ",slo_attainment_{k}");
    }
    s.push('\n');
    for m in summaries {
        let _ = write!(
            s,
            "{},{},{},{}",
            m.policy,
            metric_cells(m),
            bound_cell(m),
            cost_cells(m)
        );
        for k in keys {
            match m.per_resolution.get(*k) {
                Some(r) => {
                    let _ = write!(s, ",{:.6}", r.slo_attainment);
                }
                None => s.push(','),
            }
        }
        s.push('\n');
    }
    s
}

/// The summary metric columns shared by `comparison.csv` and sweep `results.csv`.
pub const METRIC_COLUMNS: &str = "requests,met,missed,dropped,slo_attainment,latency_mean_s,latency_p50_s,latency_p90_s,latency_p99_s,gpu_seconds,utilization,mean_degree";

/// The cells of [`METRIC_COLUMNS`] for one summary (deterministic figures only).
pub fn metric_cells(m: &Summary) -> String {
    format!(
        "{},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6}",
        m.requests,
        m.met,
        m.missed,
        m.dropped,
        m.slo_attainment,
        m.latency.mean_s,
        m.latency.p50_s,
        m.latency.p90_s,
        m.latency.p99_s,
        m.gpu_seconds,
        m.utilization,
        m.mean_degree,
    )
}

/// The upper-bound cell: empty for a summary without one (built outside a run).
pub fn bound_cell(m: &Summary) -> String {
    m.slo_attainment_bound
        .map(|b| format!("{b:.6}"))
        .unwrap_or_default()
}

/// `comparison.csv`: the deterministic columns of each summary (no wall-clock figures).
pub fn comparison_csv(summaries: &[Summary]) -> String {
    csv_with_resolutions(summaries, &[])
}
