//! `tetriserve plot RESULTS`: one chart of a sweep's results, a metric against any grid
//! dimension, one line per policy (and per mix when there are several), mean and 95%
//! confidence interval over the seeds.
//!
//! A chart averages only over seeds. Any other dimension that takes more than one value among
//! the rows of one line at one x is refused, naming it, rather than averaged silently; a
//! dimension that follows from x (the nodes of a GPU count) is not. Numeric dimensions draw
//! lines; categorical ones (profile, mix, arrival) grouped bars.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::mean_ci95;
use super::results::{ResultRow, read_results};
use crate::error::{Error, Result};
use crate::report::plot::{Frame, Series, grouped_bars, line_chart};

/// A grid dimension as a column: its name, its value as text (for grouping and messages),
/// and its value as a number when it has one.
struct Dim {
    name: &'static str,
    /// The axis title for people.
    label: &'static str,
    text: fn(&ResultRow) -> String,
    num: Option<fn(&ResultRow) -> f64>,
}

fn dims() -> Vec<Dim> {
    fn f(v: f64) -> String {
        if v.is_nan() {
            String::new()
        } else {
            format!("{v}")
        }
    }
    vec![
        Dim {
            name: "scenario",
            label: "Scenario",
            text: |r| r.scenario.clone(),
            num: None,
        },
        Dim {
            name: "profile",
            label: "Cost profile",
            text: |r| r.profile.clone(),
            num: None,
        },
        Dim {
            name: "gpus",
            label: "GPUs",
            text: |r| r.gpus.to_string(),
            num: Some(|r| f64::from(r.gpus)),
        },
        Dim {
            name: "nodes",
            label: "Nodes",
            text: |r| r.nodes.to_string(),
            num: Some(|r| f64::from(r.nodes)),
        },
        Dim {
            name: "gpus_per_node",
            label: "GPUs per node",
            text: |r| r.gpus_per_node.to_string(),
            num: Some(|r| f64::from(r.gpus_per_node)),
        },
        Dim {
            name: "steps",
            label: "Denoising steps",
            text: |r| r.steps.to_string(),
            num: Some(|r| f64::from(r.steps)),
        },
        Dim {
            name: "mix",
            label: "Resolution mix",
            text: |r| r.mix.clone(),
            num: None,
        },
        Dim {
            name: "arrival",
            label: "Arrival process",
            text: |r| r.arrival.clone(),
            num: None,
        },
        Dim {
            name: "cv",
            label: "Burstiness (CV of inter-arrival gaps)",
            text: |r| r.cv.map(f).unwrap_or_default(),
            num: Some(|r| r.cv.unwrap_or(f64::NAN)),
        },
        Dim {
            name: "rate_per_min",
            label: "Load (requests per minute)",
            text: |r| f(r.rate),
            num: Some(|r| r.rate),
        },
        Dim {
            name: "slo_scale",
            label: "SLO scale (x each resolution's base)",
            text: |r| f(r.scale),
            num: Some(|r| r.scale),
        },
        Dim {
            name: "granularity",
            label: "Round length (TetriServe granularity)",
            text: |r| r.granularity.clone(),
            num: Some(|r| r.granularity.parse().unwrap_or(f64::NAN)),
        },
    ]
}

/// What a chart shows on its y axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    Attainment,
    LatencyP50,
    LatencyP90,
    LatencyP99,
    GpuHours,
    /// The cost columns (`results::COST_COLUMNS`), by the same names.
    GpuHoursBusy,
    GpuHoursProvisioned,
    Usd,
    UsdPer1kMet,
    EnergyWh,
    WhPerMet,
}

impl Metric {
    pub const NAMES: &'static str = "attainment, latency_p50, latency_p90, latency_p99, gpu_hours, gpu_hours_busy, gpu_hours_provisioned, usd, usd_per_1k_met_images, energy_wh, wh_per_met_image";

    pub fn parse(s: &str) -> Result<Metric> {
        Ok(match s {
            "attainment" => Metric::Attainment,
            "latency_p50" => Metric::LatencyP50,
            "latency_p90" => Metric::LatencyP90,
            "latency_p99" => Metric::LatencyP99,
            "gpu_hours" => Metric::GpuHours,
            "gpu_hours_busy" => Metric::GpuHoursBusy,
            "gpu_hours_provisioned" => Metric::GpuHoursProvisioned,
            "usd" => Metric::Usd,
            "usd_per_1k_met_images" => Metric::UsdPer1kMet,
            "energy_wh" => Metric::EnergyWh,
            "wh_per_met_image" => Metric::WhPerMet,
            other => {
                return Err(Error::config_hint(
                    format!("--y `{other}` is not a metric of sweep results"),
                    format!("expected one of {}", Metric::NAMES),
                ));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Metric::Attainment => "attainment",
            Metric::LatencyP50 => "latency_p50",
            Metric::LatencyP90 => "latency_p90",
            Metric::LatencyP99 => "latency_p99",
            Metric::GpuHours => "gpu_hours",
            Metric::GpuHoursBusy => "gpu_hours_busy",
            Metric::GpuHoursProvisioned => "gpu_hours_provisioned",
            Metric::Usd => "usd",
            Metric::UsdPer1kMet => "usd_per_1k_met_images",
            Metric::EnergyWh => "energy_wh",
            Metric::WhPerMet => "wh_per_met_image",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Metric::Attainment => "SLO attainment (%)",
            Metric::LatencyP50 => "latency p50 (s)",
            Metric::LatencyP90 => "latency p90 (s)",
            Metric::LatencyP99 => "latency p99 (s)",
            Metric::GpuHours => "busy GPU-hours per run",
            Metric::GpuHoursBusy => "busy GPU-hours per run",
            Metric::GpuHoursProvisioned => "provisioned GPU-hours per run",
            Metric::Usd => "US dollars per run (provisioned GPU-hours)",
            Metric::UsdPer1kMet => "US dollars per 1,000 met images",
            Metric::EnergyWh => "energy per run (Wh)",
            Metric::WhPerMet => "Wh per met image",
        }
    }

    fn of(self, r: &ResultRow) -> f64 {
        match self {
            Metric::Attainment => 100.0 * r.attainment,
            Metric::LatencyP50 => r.latency_p50,
            Metric::LatencyP90 => r.latency_p90,
            Metric::LatencyP99 => r.latency_p99,
            Metric::GpuHours => r.gpu_seconds / 3600.0,
            Metric::GpuHoursBusy => r.gpu_hours_busy,
            Metric::GpuHoursProvisioned => r.gpu_hours_provisioned,
            Metric::Usd => r.usd,
            Metric::UsdPer1kMet => r.usd_per_1k_met_images,
            Metric::EnergyWh => r.energy_wh,
            Metric::WhPerMet => r.wh_per_met_image,
        }
    }
}

/// `text` with its first letter upper-case.
fn capitalised(text: &str) -> String {
    let mut c = text.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The smallest and largest finite value.
fn finite_span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
}

/// The dimensions `--x` accepts.
pub fn x_names() -> String {
    dims()
        .iter()
        .filter(|d| d.name != "scenario")
        .map(|d| d.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Makes `out` a directory for charts: created if missing, refused if it is something else.
pub fn output_dir(out: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        return Err(Error::config_hint(
            format!("--out {} exists and is not a directory", out.display()),
            "--out names a directory the charts are written into; give another path",
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))
}

/// A chart point: (x, mean, low, high).
type Point = (f64, f64, f64, f64);

/// Lines of the mean +- 95% CI over seeds of `y` against the numeric `x`, one per `label`
/// (in first-seen order, the grid's), each interval's ends passed through `clamp`. Both
/// `tetriserve plot` and the paper's figures aggregate rows this way, so that a chart of the
/// same rows shows the same numbers whichever command drew it.
pub fn mean_lines(
    rows: &[&ResultRow],
    x: impl Fn(&ResultRow) -> f64,
    label: impl Fn(&ResultRow) -> String,
    y: impl Fn(&ResultRow) -> f64,
    clamp: impl Fn(f64) -> f64,
) -> Vec<Series> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<(String, u64), Vec<f64>> = BTreeMap::new();
    for r in rows {
        let l = label(r);
        if !order.contains(&l) {
            order.push(l.clone());
        }
        groups.entry((l, x(r).to_bits())).or_default().push(y(r));
    }
    order
        .into_iter()
        .map(|l| {
            let mut points: Vec<Point> = groups
                .iter()
                .filter(|((s, _), _)| *s == l)
                .map(|((_, xb), v)| {
                    let (m, h) = mean_ci95(v);
                    (f64::from_bits(*xb), m, clamp(m - h), clamp(m + h))
                })
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                label: l,
                points,
                dashed: false,
            }
        })
        .collect()
}

/// The dashed upper-bound lines (percent), one per `label` (in label order): at each x the
/// mean over seeds of the bound, taken once per (label, x, seed), since every policy at a
/// point replays the same workload and so has the same bound. Rows without a bound are left
/// out; no line when none has one.
pub fn bound_lines(
    rows: &[&ResultRow],
    x: impl Fn(&ResultRow) -> f64,
    label: impl Fn(&ResultRow) -> String,
) -> Vec<Series> {
    let mut per: BTreeMap<String, BTreeMap<(u64, u64), f64>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.bound.is_finite()) {
        per.entry(label(r))
            .or_default()
            .insert((x(r).to_bits(), r.seed), 100.0 * r.bound);
    }
    per.into_iter()
        .map(|(l, m)| {
            let mut by_x: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
            for ((xb, _), b) in m {
                by_x.entry(xb).or_default().push(b);
            }
            let mut points: Vec<Point> = by_x
                .into_iter()
                .map(|(xb, v)| {
                    let m = v.iter().sum::<f64>() / v.len() as f64;
                    (f64::from_bits(xb), m, m, m)
                })
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                label: l,
                points,
                dashed: true,
            }
        })
        .collect()
}

/// Refuses a chart that would average over anything but seeds: a dimension other than `x`
/// (and the mix, when it makes its own lines) that takes several values among the rows of
/// one line at one x.
fn refuse_hidden_dimensions(
    results: &Path,
    x: &str,
    rows: &[ResultRow],
    xd: &Dim,
    by_mix: bool,
    label: &dyn Fn(&ResultRow) -> String,
) -> Result<()> {
    let mut groups: BTreeMap<(String, String), Vec<&ResultRow>> = BTreeMap::new();
    for r in rows {
        groups.entry((label(r), (xd.text)(r))).or_default().push(r);
    }
    for d in dims()
        .iter()
        .filter(|d| d.name != x && !(by_mix && d.name == "mix"))
    {
        let hidden = groups
            .values()
            .any(|g| g.iter().map(|r| (d.text)(r)).collect::<BTreeSet<_>>().len() > 1);
        if hidden {
            let list: BTreeSet<String> = rows.iter().map(|r| (d.text)(r)).collect();
            let list: Vec<String> = list.into_iter().collect();
            return Err(Error::config_hint(
                format!(
                    "{} has {} values of {} ({}); a chart against {x} would average over them",
                    results.display(),
                    list.len(),
                    d.name,
                    list.join(", ")
                ),
                if d.name == "scenario" {
                    "keep the rows of one scenario in a copy of the file".to_string()
                } else {
                    format!(
                        "plot against it (--x {}), or keep the rows of one {} in a copy of the file",
                        d.name, d.name
                    )
                },
            ));
        }
    }
    Ok(())
}

/// Refuses a metric some rows have no value of (an empty cell), naming why it can be empty,
/// rather than drawing a mean over fewer seeds or a gap.
fn refuse_missing_values(results: &Path, y: Metric, rows: &[ResultRow]) -> Result<()> {
    let missing = rows.iter().filter(|r| y.of(r).is_nan()).count();
    if missing == 0 {
        return Ok(());
    }
    let old = rows.iter().all(|r| r.gpu_hours_busy.is_nan());
    let (why, hint) = if old {
        (
            "the file has no cost columns: it was made by an older tetriserve".to_string(),
            "run the sweep again with --rerun to add them".to_string(),
        )
    } else {
        (
            "the cell is empty where the price or power is unknown, or, per met image, where no image met its deadline".to_string(),
            "set [cluster] gpu_price_per_hour and gpu_power_w in the scenario, or plot another --y".to_string(),
        )
    };
    Err(Error::config_hint(
        format!(
            "{}: {missing} of {} rows have no `{}` ({why})",
            results.display(),
            rows.len(),
            y.name()
        ),
        hint,
    ))
}

/// Draws `y` against `x` from the results file `results` into the directory `out`, as
/// `<y>-vs-<x>.png` and `.svg`; returns the files written.
/// How a chart of results is dressed for a reader: a title instead of the default, a
/// horizontal reference line (a target, in the y metric's unit), a caption under the chart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Style {
    pub title: Option<String>,
    pub target: Option<f64>,
    pub caption: Option<String>,
}

pub fn plot_results(
    results: &Path,
    x: &str,
    y: Metric,
    out: &Path,
    style: &Style,
) -> Result<Vec<PathBuf>> {
    let all = dims();
    let xd = all
        .iter()
        .find(|d| d.name == x && d.name != "scenario")
        .ok_or_else(|| {
            Error::config_hint(
                format!("--x `{x}` is not a grid dimension"),
                format!("expected one of {}", x_names()),
            )
        })?;
    let rows = read_results(results)?;
    // Lines: one per policy, and per mix when the file has several (unless x is the mix).
    let mixes: BTreeSet<&str> = rows.iter().map(|r| r.mix.as_str()).collect();
    let by_mix = mixes.len() > 1 && x != "mix";
    let label = |r: &ResultRow| {
        if by_mix {
            format!("{} ({})", r.policy, r.mix)
        } else {
            r.policy.clone()
        }
    };
    refuse_hidden_dimensions(results, x, &rows, xd, by_mix, &label)?;
    refuse_missing_values(results, y, &rows)?;
    output_dir(out)?;
    let base = out.join(format!("{}-vs-{x}", y.name()));
    let title = style
        .title
        .clone()
        .unwrap_or_else(|| format!("{} by {}", capitalised(y.label()), xd.label.to_lowercase()));
    // Attainment on its full scale; every other metric from zero, so that a larger value
    // reads at its true size.
    let top = rows
        .iter()
        .map(|r| y.of(r))
        .chain(style.target)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let y_range = if y == Metric::Attainment {
        (0.0, 100.0)
    } else {
        (0.0, if top > 0.0 { top * 1.12 } else { 1.0 })
    };
    // Ticks at the measured values when there are few of them (8, 16, 24, 32 GPUs rather than
    // 10, 15, 20).
    let mut xs: Vec<f64> = xd
        .num
        .map(|num| rows.iter().map(num).filter(|v| v.is_finite()).collect())
        .unwrap_or_default();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let frame = Frame {
        title,
        x_label: xd.label.into(),
        y_label: y.label().into(),
        y_range: Some(y_range),
        y_log2: false,
        x_log2: false,
        x_ticks: (!xs.is_empty() && xs.len() <= 16).then_some(xs),
        caption: style.caption.clone(),
        x_range: None,
    };
    let mut order: Vec<String> = Vec::new();
    for r in &rows {
        let l = label(r);
        if !order.contains(&l) {
            order.push(l);
        }
    }
    // The upper bound: one per workload, i.e. per (mix line, x, seed), the same for every
    // policy there.
    let bound_key = |r: &ResultRow| {
        if by_mix {
            format!("upper bound ({})", r.mix)
        } else {
            "upper bound".to_string()
        }
    };
    let numeric = xd.num.filter(|num| rows.iter().all(|r| num(r).is_finite()));
    if let Some(num) = numeric {
        let clamp = |v: f64| {
            if y == Metric::Attainment {
                v.clamp(0.0, 100.0)
            } else {
                v.max(0.0)
            }
        };
        let refs: Vec<&ResultRow> = rows.iter().collect();
        let mut series = mean_lines(&refs, num, label, |r| y.of(r), clamp);
        if y == Metric::Attainment {
            series.extend(bound_lines(&refs, num, bound_key));
        }
        if let Some(t) = style.target {
            let (lo, hi) = finite_span(refs.iter().map(|r| num(r)));
            series.push(Series {
                label: format!("target {}", crate::error::show_number(t)),
                points: vec![(lo, t, t, t), (hi, t, t, t)],
                dashed: true,
            });
        }
        line_chart(&base, &frame, &series)?;
    } else {
        if xd.num.is_some() && xd.name != "granularity" {
            let r = rows
                .iter()
                .find(|r| !xd.num.is_some_and(|n| n(r).is_finite()))
                .expect("a row without a number");
            return Err(Error::config_hint(
                format!(
                    "{}: the row of point {} ({}) has no {x} (its arrivals are {})",
                    results.display(),
                    r.index,
                    r.policy,
                    r.arrival
                ),
                "plot against a dimension every row has",
            ));
        }
        // Categories in first-seen order (the grid's).
        let mut cats: Vec<String> = Vec::new();
        for r in &rows {
            let c = (xd.text)(r);
            if !cats.contains(&c) {
                cats.push(c);
            }
        }
        // Mean and 95% CI half-width over the seeds of each bar.
        let mut names = order.clone();
        let (mut values, mut cis): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (Vec::new(), Vec::new());
        for l in &order {
            let (m, h): (Vec<f64>, Vec<f64>) = cats
                .iter()
                .map(|c| {
                    let v: Vec<f64> = rows
                        .iter()
                        .filter(|r| label(r) == *l && (xd.text)(r) == *c)
                        .map(|r| y.of(r))
                        .collect();
                    crate::sweep::mean_ci95(&v)
                })
                .unzip();
            values.push(m);
            cis.push(h);
        }
        if y == Metric::Attainment && !by_mix && rows.iter().all(|r| r.bound.is_finite()) {
            names.push("upper bound".into());
            let (m, h): (Vec<f64>, Vec<f64>) = cats
                .iter()
                .map(|c| {
                    let per_seed: BTreeMap<u64, f64> = rows
                        .iter()
                        .filter(|r| (xd.text)(r) == *c)
                        .map(|r| (r.seed, 100.0 * r.bound))
                        .collect();
                    crate::sweep::mean_ci95(&per_seed.into_values().collect::<Vec<_>>())
                })
                .unzip();
            values.push(m);
            cis.push(h);
        }
        if style.target.is_some() {
            return Err(Error::config_hint(
                format!("--target draws a line across a line chart, and `{x}` is drawn as bars"),
                "drop --target, or plot against a numeric dimension",
            ));
        }
        grouped_bars(&base, &frame, &cats, &names, &values, Some(&cis))?;
    }
    Ok(vec![base.with_extension("png"), base.with_extension("svg")])
}
