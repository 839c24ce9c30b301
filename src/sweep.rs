//! Sweeps: a grid of runs (policies x mixes x rates x SLO scales x seeds x round
//! granularities) from a scenario's `[sweep]` table, run in parallel, one `results.csv` row per
//! run.
//!
//! Every point is an independent run: the scenario with that point's values, one policy. Its
//! workload depends only on the scenario, mix, rate, scale and seed, so every policy at a point
//! replays the same trace. Rows are keyed by their coordinates, written in grid order whatever
//! the thread count, and appended to `results.partial.csv` as they finish, so that an
//! interrupted sweep resumes where it stopped. `--shard i/n` runs every n-th point for batch
//! systems; `merge` joins the shards' files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::{Error, InputError, Result};
use crate::metrics::Summary;
use crate::policy::PolicyKind;
use crate::policy::tetriserve::RoundLength;
use crate::report::{bound_cell, metric_cells};
use crate::scenario::{Overrides, RawScenario, RawSweep, Scenario, WorkloadSource};
use crate::simulate::simulate;

/// The columns of `results.csv`.
pub const HEADER: &str = "index,key,scenario,policy,mix,rate_per_min,slo_scale,seed,granularity,requests,met,missed,dropped,slo_attainment,latency_mean_s,latency_p50_s,latency_p90_s,latency_p99_s,gpu_seconds,utilization,mean_degree,per_resolution,attainment_bound";

/// One run of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Position in grid order.
    pub index: usize,
    pub policy: String,
    pub mix: Option<String>,
    pub rate_per_min: Option<f64>,
    pub slo_scale: Option<f64>,
    pub seed: Option<u64>,
    pub granularity: Option<u32>,
}

impl Point {
    fn overrides(&self) -> Overrides {
        Overrides {
            policies: vec![self.policy.clone()],
            mix: self.mix.clone(),
            rate_per_min: self.rate_per_min,
            slo_scale: self.slo_scale,
            seed: self.seed,
            granularity_steps: self.granularity,
            ..Overrides::default()
        }
    }
}

/// A scenario and its grid.
pub struct Grid {
    pub name: String,
    pub raw: RawScenario,
    pub source: String,
    pub points: Vec<Point>,
}

impl Grid {
    /// The grid of a scenario (file merged onto the default). Without a `[sweep]` table the
    /// grid is the scenario's policies at its own values.
    pub fn new(raw: RawScenario, source: &str) -> Result<Grid> {
        let sweep = raw.sweep.clone().unwrap_or_default();
        // Validate the base scenario once, and expand `all` / `ablation` into names.
        let base = Scenario::from_raw(raw.clone(), source)?;
        let policies: Vec<String> = match &sweep.policies {
            None => base.policies.iter().map(PolicyKind::to_string).collect(),
            Some(names) => {
                let mut raw1 = raw.clone();
                raw1.policy.run = Some(names.clone());
                Scenario::from_raw(raw1, source)?
                    .policies
                    .iter()
                    .map(PolicyKind::to_string)
                    .collect()
            }
        };
        let RawSweep {
            mixes,
            rates_per_min,
            slo_scales,
            seeds,
            granularity_steps,
            ..
        } = sweep;
        // An empty list would make an empty grid, and a repeated value the same point twice.
        let bad = |key: &str, why: &str| {
            Error::Input(InputError::new(source, why.to_string()).field(format!("sweep.{key}")))
        };
        if policies.is_empty() {
            return Err(bad("policies", "lists no policy: the grid would be empty"));
        }
        fn repeated<T: PartialEq + std::fmt::Debug>(v: &Option<Vec<T>>) -> Option<String> {
            let v = v.as_ref()?;
            if v.is_empty() {
                return Some("is empty: the grid would be empty".into());
            }
            v.iter()
                .find(|x| v.iter().filter(|y| y == x).count() > 1)
                .map(|x| format!("lists {x:?} more than once; a repeated value is the same point"))
        }
        for (key, why) in [
            ("mixes", repeated(&mixes)),
            ("rates_per_min", repeated(&rates_per_min)),
            ("slo_scales", repeated(&slo_scales)),
            ("seeds", repeated(&seeds)),
            ("granularity_steps", repeated(&granularity_steps)),
        ] {
            if let Some(why) = why {
                return Err(bad(key, &why));
            }
        }
        if let Some(p) = policies
            .iter()
            .find(|p| policies.iter().filter(|q| q == p).count() > 1)
        {
            return Err(bad("policies", &format!("lists {p} more than once")));
        }
        let opt = |v: Option<Vec<f64>>| {
            v.map(|v| v.into_iter().map(Some).collect())
                .unwrap_or_else(|| vec![None])
        };
        let mixes: Vec<Option<String>> = mixes
            .map(|v| v.into_iter().map(Some).collect())
            .unwrap_or_else(|| vec![None]);
        let rates = opt(rates_per_min);
        let scales = opt(slo_scales);
        let seeds: Vec<Option<u64>> = seeds
            .map(|v| v.into_iter().map(Some).collect())
            .unwrap_or_else(|| vec![None]);
        let grans: Vec<Option<u32>> = granularity_steps
            .map(|v| v.into_iter().map(Some).collect())
            .unwrap_or_else(|| vec![None]);
        let mut points = Vec::new();
        for mix in &mixes {
            for &rate in &rates {
                for &scale in &scales {
                    for &gran in &grans {
                        for &seed in &seeds {
                            for policy in &policies {
                                points.push(Point {
                                    index: points.len(),
                                    policy: policy.clone(),
                                    mix: mix.clone(),
                                    rate_per_min: rate,
                                    slo_scale: scale,
                                    seed,
                                    granularity: gran,
                                });
                            }
                        }
                    }
                }
            }
        }
        Ok(Grid {
            name: base.name,
            raw,
            source: source.to_string(),
            points,
        })
    }

    /// The validated scenario of one point.
    pub fn scenario(&self, p: &Point) -> Result<Scenario> {
        let mut raw = self.raw.clone();
        raw.apply(&p.overrides())?;
        Scenario::from_raw(raw, &self.source)
    }
}

/// The coordinates a run actually had (the point's values, or the scenario's where the grid
/// does not vary them), in the form `results.csv` writes them.
struct Coordinates {
    policy: String,
    mix: String,
    rate: String,
    scale: String,
    seed: String,
    granularity: String,
}

impl Coordinates {
    fn of(s: &Scenario, policy: &str) -> Coordinates {
        let (mix, rate, scale) = match &s.workload {
            WorkloadSource::Synthetic(w) => (
                w.mix.to_string(),
                format!("{}", w.arrival.mean_rate_per_s() * 60.0),
                format!("{}", w.slo_scale),
            ),
            WorkloadSource::Trace { path, slo } => (
                format!("trace:{}", path.display()),
                String::new(),
                format!("{}", slo.scale),
            ),
        };
        let granularity = match s.policy_config.tetriserve.round {
            RoundLength::Steps(g) => g.to_string(),
            RoundLength::Fixed(t) => format!("tau={}ms", t.as_millis()),
        };
        Coordinates {
            policy: policy.to_string(),
            mix,
            rate,
            scale,
            seed: s.seed.to_string(),
            granularity,
        }
    }

    fn key(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}",
            self.policy, self.mix, self.rate, self.scale, self.seed, self.granularity
        )
    }
}

/// One `results.csv` row for a finished run.
fn row(index: usize, scenario: &str, c: &Coordinates, m: &Summary) -> String {
    let per_res: Vec<String> = m
        .per_resolution
        .iter()
        .map(|(k, v)| format!("{k}={:.6}", v.slo_attainment))
        .collect();
    let mut s = String::new();
    let _ = write!(
        s,
        "{index},{},{scenario},{},{},{},{},{},{},{},{},{}",
        csv_field(&c.key()),
        c.policy,
        csv_field(&c.mix),
        c.rate,
        c.scale,
        c.seed,
        c.granularity,
        metric_cells(m),
        per_res.join(";"),
        bound_cell(m)
    );
    s
}

/// A CSV field, quoted when it holds a comma, a quote or a newline.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// How to run a sweep.
#[derive(Clone, Debug, Default)]
pub struct SweepOptions {
    /// `(i, n)`: run the points whose index is `i` modulo `n`.
    pub shard: Option<(usize, usize)>,
    /// Also write each run's directory under `out/runs/`.
    pub write_runs: bool,
    /// Run points again even if their results exist.
    pub rerun: bool,
    /// Worker threads (default: all cores).
    pub jobs: Option<usize>,
}

/// What a sweep did.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepReport {
    pub results: PathBuf,
    pub ran: usize,
    pub skipped: usize,
}

/// The results file a sweep (or shard) writes in `out`.
pub fn results_path(out: &Path, shard: Option<(usize, usize)>) -> PathBuf {
    match shard {
        None => out.join("results.csv"),
        Some((i, n)) => out.join(format!("results.shard-{i}-of-{n}.csv")),
    }
}

/// Reads the rows of a results file, by key (missing file: none).
pub fn read_rows(path: &Path) -> Result<BTreeMap<String, (usize, String)>> {
    let mut rows = BTreeMap::new();
    if !path.exists() {
        return Ok(rows);
    }
    let text = crate::error::read_text(path, crate::error::limits::SMALL_BYTES, "results file")?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    for (i, rec) in reader.records().enumerate() {
        let bad = |m: String| {
            Error::Input(InputError::new(path.display().to_string(), m).line(i as u64 + 2))
        };
        let rec = rec.map_err(|e| {
            bad(format!(
                "unreadable row ({e}); delete the file to start over"
            ))
        })?;
        let index: usize = rec
            .get(0)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("column `index` is not a number".into()))?;
        let key = rec
            .get(1)
            .ok_or_else(|| bad("missing column `key`".into()))?
            .to_string();
        let line: Vec<String> = rec.iter().map(csv_field).collect();
        rows.insert(key, (index, line.join(",")));
    }
    Ok(rows)
}

/// Drops a torn last row from the partial results at `path` (a run killed mid-write, a full
/// disk): everything after the last newline. Returns whether a row was dropped; its point
/// then simply runs again. Only the tail can be torn, since rows are appended whole.
pub fn drop_torn_tail(path: &Path) -> Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let text = crate::error::read_text(path, crate::error::limits::SMALL_BYTES, "results file")?;
    if text.is_empty() || text.ends_with('\n') {
        return Ok(false);
    }
    let keep = text.rfind('\n').map_or(0, |i| i + 1);
    let tmp = path.with_extension("csv.tmp");
    std::fs::write(&tmp, &text[..keep]).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(true)
}

/// Writes rows (sorted by grid index) as a results file, atomically.
fn write_results(path: &Path, rows: &BTreeMap<String, (usize, String)>) -> Result<()> {
    let mut sorted: Vec<&(usize, String)> = rows.values().collect();
    sorted.sort();
    let mut text = String::from(HEADER);
    text.push('\n');
    for (_, line) in sorted {
        text.push_str(line);
        text.push('\n');
    }
    let tmp = path.with_extension("csv.tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Runs the grid into `out`, skipping points whose results exist unless `rerun`.
/// `progress` is called after each run with (done, total).
pub fn run(
    grid: &Grid,
    out: &Path,
    opts: &SweepOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<SweepReport> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let results = results_path(out, opts.shard);
    let partial = results.with_extension("partial.csv");
    let mut done = BTreeMap::new();
    if drop_torn_tail(&partial)? {
        eprintln!(
            "warning: {}: dropped a row cut short by an earlier interrupted run; its point runs again",
            partial.display()
        );
    }
    if !opts.rerun {
        done = read_rows(&results)?;
        done.extend(read_rows(&partial)?);
    }
    // Points of this shard whose results are missing, with their scenarios and keys.
    let mut todo = Vec::new();
    let mut skipped = 0;
    for p in &grid.points {
        if let Some((i, n)) = opts.shard
            && p.index % n != i
        {
            continue;
        }
        let scenario = grid.scenario(p)?;
        let key = Coordinates::of(&scenario, &p.policy).key();
        if done.contains_key(&key) {
            skipped += 1;
        } else {
            todo.push((p.clone(), scenario));
        }
    }
    let partial_file = {
        let exists = partial.exists();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&partial)
            .map_err(|e| Error::io(&partial, e))?;
        if !exists {
            writeln!(f, "{HEADER}").map_err(|e| Error::io(&partial, e))?;
        }
        Mutex::new(f)
    };
    let total = todo.len();
    let finished = Mutex::new(0usize);
    let run_one = |(p, scenario): &(Point, Scenario)| -> Result<(String, (usize, String))> {
        let runs = simulate(scenario)?;
        let r = runs
            .into_iter()
            .next()
            .ok_or_else(|| Error::config("a sweep point ran no policy"))?;
        let c = Coordinates::of(scenario, &p.policy);
        let line = row(p.index, &grid.name, &c, &r.summary);
        if opts.write_runs {
            let dir = out
                .join("runs")
                .join(format!("{:05}-{}", p.index, sanitize(&c.key())));
            crate::report::write_dir(
                &dir,
                &crate::report::run_files(&r.records, &r.summary, None),
                true,
            )?;
        }
        {
            let mut f = partial_file
                .lock()
                .expect("no panics while holding the lock");
            writeln!(f, "{line}")
                .and_then(|_| f.flush())
                .map_err(|e| Error::io(&partial, e))?;
        }
        let mut n = finished.lock().expect("no panics while holding the lock");
        *n += 1;
        progress(*n, total);
        Ok((c.key(), (p.index, line)))
    };
    let new_rows: Vec<Result<(String, (usize, String))>> = match opts.jobs {
        Some(j) => rayon::ThreadPoolBuilder::new()
            .num_threads(j.max(1))
            .build()
            .map_err(|e| Error::config(format!("starting {j} threads: {e}")))?
            .install(|| todo.par_iter().map(run_one).collect()),
        None => todo.par_iter().map(run_one).collect(),
    };
    for r in new_rows {
        let (k, v) = r?;
        done.insert(k, v);
    }
    write_results(&results, &done)?;
    std::fs::remove_file(&partial).map_err(|e| Error::io(&partial, e))?;
    Ok(SweepReport {
        results,
        ran: total,
        skipped,
    })
}

/// Joins every `results.shard-*-of-*.csv` (and an existing `results.csv`) in `dir` into
/// `results.csv`.
pub fn merge(dir: &Path) -> Result<(PathBuf, usize)> {
    let mut rows = read_rows(&dir.join("results.csv"))?;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut shards: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("results.shard-")
                    && n.ends_with(".csv")
                    && !n.ends_with(".partial.csv")
            })
        })
        .collect();
    shards.sort();
    if shards.is_empty() {
        return Err(Error::config_hint(
            format!("no shard results in {}", dir.display()),
            "run `tetriserve sweep --shard i/n --out DIR` first",
        ));
    }
    for s in &shards {
        rows.extend(read_rows(s)?);
    }
    let out = dir.join("results.csv");
    write_results(&out, &rows)?;
    Ok((out, rows.len()))
}

fn sanitize(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Mean and the half-width of a 95% confidence interval (Student's t) of `v`.
pub fn mean_ci95(v: &[f64]) -> (f64, f64) {
    let n = v.len();
    if n == 0 {
        return (f64::NAN, 0.0);
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    // Two-sided 97.5% quantiles of Student's t for 1..=30 degrees of freedom, then normal.
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    let t = T.get(n - 2).copied().unwrap_or(1.96);
    (mean, t * (var / n as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_intervals_use_student_t() {
        assert_eq!(mean_ci95(&[2.0]), (2.0, 0.0));
        // Two values 1 and 3: mean 2, sd sqrt(2), half-width 12.706 * sqrt(2) / sqrt(2).
        let (m, h) = mean_ci95(&[1.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((h - 12.706).abs() < 1e-9);
    }

    #[test]
    fn a_grid_expands_every_axis_in_order() {
        let text = "[sweep]\npolicies = [\"xdit-sp8\", \"rssp\"]\nslo_scales = [1.0, 1.5]\nseeds = [1, 2]\n";
        let raw = RawScenario::parse(text, "s.toml", Path::new("."))
            .unwrap()
            .or(RawScenario::default_scenario());
        let g = Grid::new(raw, "s.toml").unwrap();
        assert_eq!(g.points.len(), 8);
        let first: Vec<(String, Option<f64>, Option<u64>)> = g.points[..4]
            .iter()
            .map(|p| (p.policy.clone(), p.slo_scale, p.seed))
            .collect();
        assert_eq!(
            first,
            vec![
                ("xdit-sp8".into(), Some(1.0), Some(1)),
                ("rssp".into(), Some(1.0), Some(1)),
                ("xdit-sp8".into(), Some(1.0), Some(2)),
                ("rssp".into(), Some(1.0), Some(2))
            ]
        );
        assert!(g.points.iter().enumerate().all(|(i, p)| p.index == i));
    }
}
