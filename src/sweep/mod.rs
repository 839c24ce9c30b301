//! Sweeps: a grid of runs from a scenario's `[sweep]` table (policies x profiles x GPUs x steps
//! x mixes x CVs x rates x SLO scales x round granularities x seeds), run in parallel, one
//! `results.csv` row per run. With `scale_load_with_gpus`, a point's rate and request count
//! grow with its GPUs (the same load per GPU for the same time, as a cluster scales out).
//!
//! Every point is an independent run: the scenario with that point's values, one policy. Its
//! workload depends only on the scenario and the point's workload values, so every policy at a
//! point replays the same trace. Each point is keyed by the digest of its fully resolved
//! scenario (`digest.rs`), so a result is reused only for exactly the scenario that made it.
//! Rows are written in grid order whatever the thread count, and appended to
//! `results.partial.csv` as they finish, so that an interrupted sweep resumes where it stopped.
//! `results.csv` and its manifest are replaced together, only once every row exists (the partial
//! rows have their own manifest, which marks a `--rerun`'s rows as replacing the complete ones),
//! so an interrupted sweep, a rerun too, resumes from what it finished. While it runs, a sweep
//! holds the lock of its results file (`files::DirLock`): a second sweep or a merge into the
//! same results is refused, naming it.
//! `--shard i/n` (or `auto` under a batch system's job array, `shards.rs`) runs every n-th
//! point; `merge` joins the shards' files. The file formats are in `results.rs`; `plot.rs` draws
//! a results file against any grid dimension.

pub mod digest;
pub mod plot;
pub mod results;
pub mod shards;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::{Error, InputError, Result};
use crate::policy::PolicyKind;
use crate::scenario::{Overrides, RawScenario, RawSweep, Scenario, WorkloadSource};
use crate::simulate::simulate;
use digest::{FileDigests, Manifest, Resolved};
pub use results::{ResultRow, csv_field, read_results};
pub use shards::{Shard, merge};

/// One run of the grid: a policy and the values of the dimensions the grid varies (`None`:
/// the scenario's own value).
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Position in grid order.
    pub index: usize,
    pub policy: String,
    pub profile: Option<String>,
    pub gpus: Option<u32>,
    pub steps: Option<u32>,
    pub mix: Option<String>,
    pub cv: Option<f64>,
    pub rate_per_min: Option<f64>,
    /// Requests generated (set only by `scale_load_with_gpus`).
    pub requests: Option<usize>,
    pub slo_scale: Option<f64>,
    pub granularity: Option<u32>,
    pub seed: Option<u64>,
    /// The digest of the point's resolved scenario (`digest.rs`).
    pub digest: String,
}

impl Point {
    fn overrides(&self) -> Overrides {
        Overrides {
            policies: vec![self.policy.clone()],
            profile: self.profile.clone(),
            gpus: self.gpus,
            steps: self.steps,
            mix: self.mix.clone(),
            cv: self.cv,
            rate_per_min: self.rate_per_min,
            requests: self.requests,
            slo_scale: self.slo_scale,
            granularity_steps: self.granularity,
            seed: self.seed,
            ..Overrides::default()
        }
    }

    /// The point's values, for messages: `policy=rssp, gpus=8, seed=2`.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("policy={}", self.policy)];
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        };
        add("profile", self.profile.clone());
        add("gpus", self.gpus.map(|v| v.to_string()));
        add("steps", self.steps.map(|v| v.to_string()));
        add("mix", self.mix.clone());
        add("cv", self.cv.map(|v| v.to_string()));
        add("rate_per_min", self.rate_per_min.map(|v| v.to_string()));
        add("requests", self.requests.map(|v| v.to_string()));
        add("slo_scale", self.slo_scale.map(|v| v.to_string()));
        add("granularity", self.granularity.map(|v| v.to_string()));
        add("seed", self.seed.map(|v| v.to_string()));
        parts.join(", ")
    }
}

/// A scenario and its grid.
pub struct Grid {
    pub name: String,
    pub raw: RawScenario,
    pub source: String,
    pub points: Vec<Point>,
    /// The resolved scenario with its `[sweep]` table: what the manifest records.
    pub resolved: Resolved,
}

/// `Some(why)` when a grid list is empty or repeats a value.
fn refused<T: PartialEq + std::fmt::Debug>(v: &Option<Vec<T>>) -> Option<String> {
    let v = v.as_ref()?;
    if v.is_empty() {
        return Some("is empty: the grid would be empty".into());
    }
    v.iter()
        .find(|x| v.iter().filter(|y| y == x).count() > 1)
        .map(|x| format!("lists {x:?} more than once; a repeated value is the same point"))
}

/// The values of one dimension: the listed ones, or the scenario's own (`None`).
fn values<T: Clone>(v: &Option<Vec<T>>) -> Vec<Option<T>> {
    v.as_ref()
        .map(|v| v.iter().cloned().map(Some).collect())
        .unwrap_or_else(|| vec![None])
}

impl Grid {
    /// The grid of a scenario (file merged onto the default). Without a `[sweep]` table the
    /// grid is the scenario's policies at its own values. Every point's scenario is validated
    /// and digested here, before anything runs.
    pub fn new(raw: RawScenario, source: &str) -> Result<Grid> {
        let sweep = raw.sweep.clone().unwrap_or_default();
        // Validate the base scenario once, and expand `all` / `paper` / `ablation` into names.
        let base = Scenario::from_raw(raw.clone(), source)?;
        let policies = grid_policies(&raw, &sweep, &base, source)?;
        check_dimensions(&raw, &sweep, &policies, source)?;
        let mut points = expand_points(&sweep, &policies);
        if sweep.scale_load_with_gpus == Some(true) {
            scale_load(&mut points, &raw, &base);
        }
        let mut files = FileDigests::default();
        for (i, p) in points.iter_mut().enumerate() {
            p.index = i;
            let raw_p = point_raw(&raw, p, source)?;
            let s = Scenario::from_raw(raw_p.clone(), source).map_err(|e| at_point(e, p))?;
            // Refused here rather than when the point's turn comes, after hours of other runs.
            if let Some(PolicyKind::XditSp(k)) = s.policies.first()
                && *k > s.cluster.gpus_per_node
            {
                return Err(at_point(
                    Error::config_hint(
                        format!(
                            "{source}: policy xdit-sp{k} needs {k} GPUs in one node, but nodes have {}",
                            s.cluster.gpus_per_node
                        ),
                        "leave it out of sweep.policies, or give sweep.gpus values that fill whole nodes",
                    ),
                    p,
                ));
            }
            p.digest = digest::digest(&digest::resolve(&raw_p, false, &mut files)?);
        }
        let resolved = digest::resolve(&raw, true, &mut files)?;
        Ok(Grid {
            name: base.name,
            raw,
            source: source.to_string(),
            points,
            resolved,
        })
    }

    /// The validated scenario of one point.
    pub fn scenario(&self, p: &Point) -> Result<Scenario> {
        Scenario::from_raw(point_raw(&self.raw, p, &self.source)?, &self.source)
            .map_err(|e| at_point(e, p))
    }

    /// The digest of the whole grid (scenario and `[sweep]` table).
    pub fn digest(&self) -> String {
        digest::digest(&self.resolved)
    }

    /// The manifest of the results of this grid (or of one shard of it).
    pub fn manifest(&self, shard: Option<(usize, usize)>) -> Manifest {
        Manifest {
            scenario: self.name.clone(),
            grid: self.digest(),
            points: self.points.len(),
            shard,
            resolved: self.resolved.clone(),
            tetriserve: Some(crate::files::VERSION.to_string()),
            replaces: false,
            digests: self.points.iter().map(|p| p.digest.clone()).collect(),
        }
    }
}

/// The grid's policy names: `sweep.policies` (with `all` / `paper` / `ablation` expanded against the
/// scenario's cluster), else the scenario's own.
fn grid_policies(
    raw: &RawScenario,
    sweep: &RawSweep,
    base: &Scenario,
    source: &str,
) -> Result<Vec<String>> {
    let kinds = match &sweep.policies {
        None => base.policies.clone(),
        Some(names) => {
            let mut raw1 = raw.clone();
            raw1.policy.run = Some(names.clone());
            Scenario::from_raw(raw1, source)?.policies
        }
    };
    Ok(kinds.iter().map(PolicyKind::to_string).collect())
}

/// An error in one `[sweep]` list.
fn list_error(source: &str, key: &str, why: &str) -> Error {
    Error::Input(InputError::new(source, why.to_string()).field(format!("sweep.{key}")))
}

/// Refuses a grid that would be empty, run a point twice, or sweep a dimension the scenario
/// ignores (a no-op dimension is refused rather than swept).
fn check_dimensions(
    raw: &RawScenario,
    sweep: &RawSweep,
    policies: &[String],
    source: &str,
) -> Result<()> {
    let bad = |key: &str, why: &str| list_error(source, key, why);
    if policies.is_empty() {
        return Err(bad("policies", "lists no policy: the grid would be empty"));
    }
    let RawSweep {
        policies: _,
        mixes,
        rates_per_min,
        slo_scales,
        seeds,
        granularity_steps,
        cvs,
        gpus,
        steps,
        profiles,
        scale_load_with_gpus,
    } = sweep;
    for (key, why) in [
        ("profiles", refused(profiles)),
        ("gpus", refused(gpus)),
        ("steps", refused(steps)),
        ("mixes", refused(mixes)),
        ("cvs", refused(cvs)),
        ("rates_per_min", refused(rates_per_min)),
        ("slo_scales", refused(slo_scales)),
        ("granularity_steps", refused(granularity_steps)),
        ("seeds", refused(seeds)),
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
    let arrival = raw.workload.arrival_name();
    if cvs.is_some() && (arrival != "gamma" || raw.workload.trace.is_some()) {
        return Err(Error::Input(
            InputError::new(
                source,
                format!("the coefficient of variation applies to gamma arrivals, and this scenario's arrivals are `{arrival}`{}", if raw.workload.trace.is_some() { " (replayed from a trace)" } else { "" }),
            )
            .field("sweep.cvs")
            .hint("set [workload] arrival = \"gamma\" (and no trace), or remove `cvs`"),
        ));
    }
    if *scale_load_with_gpus == Some(true) && gpus.is_none() {
        return Err(Error::Input(
            InputError::new(
                source,
                "scales the load with the GPUs, but the grid does not vary the GPUs: it would change nothing",
            )
            .field("sweep.scale_load_with_gpus")
            .hint("add `gpus = [8, 16, 32]` (say) to [sweep], or remove scale_load_with_gpus"),
        ));
    }
    if raw.workload.trace.is_some() {
        for (key, set) in [
            ("mixes", mixes.is_some()),
            ("rates_per_min", rates_per_min.is_some()),
            ("scale_load_with_gpus", *scale_load_with_gpus == Some(true)),
        ] {
            if set {
                return Err(bad(
                    key,
                    "a replayed trace has its own arrivals and resolutions; this dimension would change nothing",
                ));
            }
        }
    }
    Ok(())
}

/// Every point of the grid, outer dimensions first; within a point, the policies last, so
/// that the runs that share a workload are neighbours. Indices and digests are filled later.
fn expand_points(sweep: &RawSweep, policies: &[String]) -> Vec<Point> {
    fn expand<T: Clone>(
        points: Vec<Point>,
        vals: &[Option<T>],
        set: impl Fn(&mut Point, Option<T>),
    ) -> Vec<Point> {
        let mut out = Vec::with_capacity(points.len() * vals.len());
        for p in points {
            for v in vals {
                let mut q = p.clone();
                set(&mut q, v.clone());
                out.push(q);
            }
        }
        out
    }
    let mut points = vec![Point {
        index: 0,
        policy: String::new(),
        profile: None,
        gpus: None,
        steps: None,
        mix: None,
        cv: None,
        rate_per_min: None,
        requests: None,
        slo_scale: None,
        granularity: None,
        seed: None,
        digest: String::new(),
    }];
    points = expand(points, &values(&sweep.profiles), |p, v| p.profile = v);
    points = expand(points, &values(&sweep.gpus), |p, v| p.gpus = v);
    points = expand(points, &values(&sweep.steps), |p, v| p.steps = v);
    points = expand(points, &values(&sweep.mixes), |p, v| p.mix = v);
    points = expand(points, &values(&sweep.cvs), |p, v| p.cv = v);
    points = expand(points, &values(&sweep.rates_per_min), |p, v| {
        p.rate_per_min = v
    });
    points = expand(points, &values(&sweep.slo_scales), |p, v| p.slo_scale = v);
    points = expand(points, &values(&sweep.granularity_steps), |p, v| {
        p.granularity = v
    });
    points = expand(points, &values(&sweep.seeds), |p, v| p.seed = v);
    let names: Vec<Option<String>> = policies.iter().cloned().map(Some).collect();
    expand(points, &names, |p, v| p.policy = v.unwrap_or_default())
}

/// `[sweep] scale_load_with_gpus`: every point of `g` GPUs runs `g / G` times the scenario's
/// (or its own swept) rate and `g / G` times its requests (rounded, at least one), `G` the
/// scenario's own GPUs. A trace was refused before.
fn scale_load(points: &mut [Point], raw: &RawScenario, base: &Scenario) {
    let WorkloadSource::Synthetic(spec) = &base.workload else {
        return;
    };
    let own = f64::from(base.cluster.total_gpus());
    let rate = raw
        .workload
        .rate_per_min
        .unwrap_or_else(|| spec.arrival.mean_rate_per_s() * 60.0);
    for p in points {
        if let Some(g) = p.gpus {
            let f = f64::from(g) / own;
            p.rate_per_min = Some(p.rate_per_min.unwrap_or(rate) * f);
            p.requests = Some(((spec.requests as f64 * f).round() as usize).max(1));
        }
    }
}

/// The raw scenario of one point: the grid's with the point's values applied.
fn point_raw(raw: &RawScenario, p: &Point, source: &str) -> Result<RawScenario> {
    let mut r = raw.clone();
    r.apply(&p.overrides()).map_err(|e| match (e, p.gpus) {
        (Error::Config { message, .. }, Some(g)) => Error::Input(
            InputError::new(source, format!("{g} GPUs: {message}"))
                .field("sweep.gpus")
                .hint("each value is the total GPUs: at most one node, or a multiple of [cluster] gpus_per_node"),
        ),
        (e, _) => e,
    })?;
    Ok(r)
}

/// An error of one point's scenario, saying which point.
fn at_point(e: Error, p: &Point) -> Error {
    match e {
        Error::Input(mut ie) => {
            ie.message = format!("{} (grid point {})", ie.message, p.describe());
            Error::Input(ie)
        }
        Error::Config { message, hint } => Error::Config {
            message: format!("{message} (grid point {})", p.describe()),
            hint,
        },
        other => other,
    }
}

/// How to run a sweep.
#[derive(Clone, Debug, Default)]
pub struct SweepOptions {
    /// `(i, n)`: run the points whose index is `i` modulo `n`.
    pub shard: Option<(usize, usize)>,
    /// Also write each run's directory under `out/runs/`.
    pub write_runs: bool,
    /// Run every point again, replacing the results there are.
    pub rerun: bool,
    /// Worker threads (default: all cores).
    /// Worker threads, 1 to [`MAX_JOBS`] (default: rayon's, one per core).
    pub jobs: Option<usize>,
}

/// What a sweep did.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepReport {
    pub results: PathBuf,
    /// Points run now.
    pub ran: usize,
    /// Points whose results were reused: same scenario digest.
    pub reused: usize,
}

/// The results file a sweep (or shard) writes in `out`.
pub fn results_path(out: &Path, shard: Option<(usize, usize)>) -> PathBuf {
    match shard {
        None => out.join("results.csv"),
        Some((i, n)) => out.join(format!("results.shard-{i}-of-{n}.csv")),
    }
}

/// The file a sweep appends rows to as runs finish: `results.partial.csv`.
pub fn partial_path(results: &Path) -> PathBuf {
    results.with_extension("partial.csv")
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
    if keep == 0 {
        // Only a torn header: the file starts again (with its header) as if it were not there.
        std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
        return Ok(true);
    }
    crate::files::write_file(path, &text.as_bytes()[..keep])?;
    Ok(true)
}

/// The rows already in `out` for this sweep (its results file, then its partial file), by
/// digest; refuses rows made from another scenario, naming what changed.
fn stored_rows(
    grid: &Grid,
    results: &Path,
    partial: &Path,
    mine: &BTreeSet<&str>,
) -> Result<BTreeMap<String, ResultRow>> {
    let mut stored: BTreeMap<String, ResultRow> = BTreeMap::new();
    let mut from = |rows: Vec<ResultRow>| {
        for r in rows {
            stored.entry(r.digest.clone()).or_insert(r);
        }
    };
    // Partial results of an interrupted `--rerun` of this very grid: the complete results
    // are being replaced, so only the partial rows count.
    let partial_manifest = Manifest::read(&Manifest::path_of(partial))?;
    let replacing = partial_manifest
        .as_ref()
        .is_some_and(|m| m.replaces && m.grid == grid.digest());
    if results.exists() && !replacing {
        let rows = results::read(results, results::Resolutions::Required)?;
        results::require_costs(results, &rows)?;
        from(rows);
    }
    for p in [partial.to_path_buf(), results::by_resolution_path(partial)] {
        if drop_torn_tail(&p)? {
            eprintln!(
                "warning: {}: dropped a row cut short by an earlier interrupted run; its point runs again",
                p.display()
            );
        }
    }
    if partial.exists() {
        let rows = results::read(partial, results::Resolutions::DropIncomplete)?;
        results::require_costs(partial, &rows)?;
        from(rows);
    }
    let stale: Vec<&ResultRow> = stored
        .values()
        .filter(|r| !mine.contains(r.digest.as_str()))
        .collect();
    if stale.is_empty() {
        return Ok(stored);
    }
    // What the stale rows were made from: the partial rows' manifest if they are among them,
    // else the complete results'.
    let stale_partial = partial.exists()
        && partial_manifest.is_some()
        && stale
            .iter()
            .any(|r| !results_digests(results).contains(&r.digest));
    let manifest_path = if stale_partial {
        Manifest::path_of(partial)
    } else {
        Manifest::path_of(results)
    };
    let changes = match Manifest::read(&manifest_path)? {
        Some(m) => {
            let d = digest::diff(&m.resolved, &grid.resolved);
            if d.is_empty() {
                "  (the scenario's keys are the same: a profile or trace file it reads, or the default scenario of this tetriserve, changed)".to_string()
            } else {
                d.iter()
                    .map(|l| format!("  {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        None => format!(
            "  (what changed cannot be named: {} is missing)",
            manifest_path.display()
        ),
    };
    Err(Error::config_hint(
        format!(
            "{} holds {} result(s) made from a different scenario than {}; what changed:\n{changes}",
            results.parent().unwrap_or(Path::new(".")).display(),
            stale.len(),
            grid.source
        ),
        "run with --rerun to run every point again (replacing those results), or give another --out",
    ))
}

/// The digests of the rows of a complete results file (none if it is missing or unreadable).
fn results_digests(results: &Path) -> BTreeSet<String> {
    if !results.exists() {
        return BTreeSet::new();
    }
    results::read(results, results::Resolutions::Required)
        .map(|rows| rows.into_iter().map(|r| r.digest).collect())
        .unwrap_or_default()
}

/// The most worker threads a sweep starts (`--jobs`): each runs one simulation at a time, so
/// more threads than points or cores only cost memory.
pub const MAX_JOBS: usize = 1024;

/// Runs the grid into `out`. A point whose results exist for the same scenario digest is
/// reused unless `rerun`; results made from another scenario are refused (see
/// [`SweepOptions::rerun`]). `progress` is called after each run with (done, total).
pub fn run(
    grid: &Grid,
    out: &Path,
    opts: &SweepOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<SweepReport> {
    if let Some(j) = opts.jobs
        && !(1..=MAX_JOBS).contains(&j)
    {
        return Err(Error::config_hint(
            format!("--jobs {j}: expected 1 to {MAX_JOBS} worker threads"),
            "leave it out for one thread per core",
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let results = results_path(out, opts.shard);
    let partial = partial_path(&results);
    let partial_res = results::by_resolution_path(&partial);
    let partial_manifest = Manifest::path_of(&partial);
    // One sweep at a time writes these results (shards of one grid each have their own).
    let _lock = crate::files::DirLock::acquire(
        out,
        &results.file_name().unwrap_or_default().to_string_lossy(),
        "sweep",
    )?;
    if opts.write_runs {
        // Run directories an interrupted sweep left half-written.
        crate::files::remove_stale_temps(&out.join("runs"), None);
    }
    let mine: Vec<&Point> = grid
        .points
        .iter()
        .filter(|p| opts.shard.is_none_or(|(i, n)| p.index % n == i))
        .collect();
    let digests: BTreeSet<&str> = mine.iter().map(|p| p.digest.as_str()).collect();
    let mut done = if opts.rerun {
        for p in [&partial, &partial_res, &partial_manifest] {
            if p.exists() {
                std::fs::remove_file(p).map_err(|e| Error::io(p, e))?;
            }
        }
        BTreeMap::new()
    } else {
        stored_rows(grid, &results, &partial, &digests)?
    };
    // Points of this shard whose results are missing, with their scenarios.
    let mut todo = Vec::new();
    let mut reused = 0;
    for p in &mine {
        if let Some(r) = done.get_mut(&p.digest) {
            // The grid may have grown around the point: its row takes the point's index now.
            r.index = p.index;
            reused += 1;
        } else {
            todo.push(((*p).clone(), grid.scenario(p)?));
        }
    }
    let manifest = grid.manifest(opts.shard);
    if todo.is_empty() && !opts.rerun && !partial.exists() && results.exists() {
        // Every point's result is there: when the file already holds exactly these rows,
        // nothing is written (a complete sweep resumes in a read-only directory too).
        let mut rows: Vec<&ResultRow> = done.values().collect();
        rows.sort_by_key(|r| r.index);
        let same = results::read(&results, results::Resolutions::Required)
            .is_ok_and(|stored| stored.iter().eq(rows.iter().copied()));
        let manifest_same = Manifest::read(&Manifest::path_of(&results))
            .ok()
            .flatten()
            .is_some_and(|m| m.grid == manifest.grid);
        if same && manifest_same {
            return Ok(SweepReport {
                results,
                ran: 0,
                reused,
            });
        }
    }
    // The partial rows' manifest, written before the first of them: the complete results
    // and their manifest are replaced only at the end, together, so that an interrupted
    // sweep (a `--rerun` too) resumes from what it had finished.
    if !partial.exists() || Manifest::read(&partial_manifest)?.is_none() {
        Manifest {
            replaces: opts.rerun,
            ..manifest.clone()
        }
        .write(&partial_manifest)?;
    }
    let files = {
        let open = |path: &Path, header: &str| -> Result<std::fs::File> {
            use std::io::Write as _;
            let exists = path.exists();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            if !exists {
                writeln!(f, "{header}").map_err(|e| Error::io(path, e))?;
            }
            Ok(f)
        };
        Mutex::new((
            open(&partial, results::HEADER)?,
            open(&partial_res, results::RESOLUTION_HEADER)?,
        ))
    };
    let total = todo.len();
    let finished = Mutex::new(0usize);
    let run_one = |(p, scenario): &(Point, Scenario)| -> Result<ResultRow> {
        use std::io::Write as _;
        let runs = simulate(scenario)?;
        let r = runs
            .into_iter()
            .next()
            .ok_or_else(|| Error::config("a sweep point ran no policy"))?;
        let row = ResultRow::of(p.index, &p.digest, scenario, &p.policy, &r.summary);
        if opts.write_runs {
            let dir = out
                .join("runs")
                .join(format!("{:05}-{}-{}", p.index, p.policy, p.digest));
            crate::report::write_dir(
                &dir,
                &crate::report::run_files(
                    &r.records,
                    &r.summary,
                    None,
                    crate::report::WorkRows::Merged,
                ),
                true,
            )?;
        }
        {
            // The resolutions first: a row whose resolutions are missing is dropped on resume.
            let mut f = files.lock().expect("no panics while holding the lock");
            f.1.write_all(row.resolution_lines().as_bytes())
                .and_then(|_| f.1.flush())
                .map_err(|e| Error::io(&partial_res, e))?;
            writeln!(f.0, "{}", row.line())
                .and_then(|_| f.0.flush())
                .map_err(|e| Error::io(&partial, e))?;
        }
        let mut n = finished.lock().expect("no panics while holding the lock");
        *n += 1;
        progress(*n, total);
        Ok(row)
    };
    let new_rows: Vec<Result<ResultRow>> = match opts.jobs {
        Some(j) => rayon::ThreadPoolBuilder::new()
            .num_threads(j)
            .build()
            .map_err(|e| Error::config(format!("starting {j} threads: {e}")))?
            .install(|| todo.par_iter().map(run_one).collect()),
        None => todo.par_iter().map(run_one).collect(),
    };
    for r in new_rows {
        let r = r?;
        done.insert(r.digest.clone(), r);
    }
    let mut rows: Vec<ResultRow> = done.into_values().collect();
    rows.sort_by_key(|r| r.index);
    results::write_results(&results, &rows)?;
    manifest.write(&Manifest::path_of(&results))?;
    drop(files);
    for p in [&partial, &partial_res, &partial_manifest] {
        if p.exists() {
            std::fs::remove_file(p).map_err(|e| Error::io(p, e))?;
        }
    }
    Ok(SweepReport {
        results,
        ran: total,
        reused,
    })
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

    fn grid(text: &str) -> Result<Grid> {
        let raw = RawScenario::parse(text, "s.toml", Path::new("."))
            .unwrap()
            .or(RawScenario::default_scenario());
        Grid::new(raw, "s.toml")
    }

    #[test]
    fn the_load_scales_with_the_gpus() {
        // The default scenario: 8 GPUs, 300 requests at 12 req/min.
        let g = grid(
            "[sweep]\npolicies = [\"rssp\"]\ngpus = [4, 8, 32]\nrates_per_min = [6.0, 12.0]\nscale_load_with_gpus = true\n",
        )
        .unwrap();
        let got: Vec<(Option<u32>, Option<f64>, Option<usize>)> = g
            .points
            .iter()
            .map(|p| (p.gpus, p.rate_per_min, p.requests))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(4), Some(3.0), Some(150)),
                (Some(4), Some(6.0), Some(150)),
                (Some(8), Some(6.0), Some(300)),
                (Some(8), Some(12.0), Some(300)),
                (Some(32), Some(24.0), Some(1200)),
                (Some(32), Some(48.0), Some(1200)),
            ]
        );
        // The point's scenario generates that load, and its digest differs from the unscaled one.
        let s = g.scenario(&g.points[5]).unwrap();
        assert_eq!(s.cluster.total_gpus(), 32);
        assert_eq!(s.load_workload().unwrap().len(), 1200);
        assert!(
            g.points[5]
                .describe()
                .contains("rate_per_min=48, requests=1200")
        );
        let plain = grid(
            "[sweep]\npolicies = [\"rssp\"]\ngpus = [4, 8, 32]\nrates_per_min = [6.0, 12.0]\n",
        )
        .unwrap();
        assert_eq!(plain.points[5].rate_per_min, Some(12.0));
        assert_eq!(plain.points[5].requests, None);
        assert_ne!(plain.points[5].digest, g.points[5].digest);
        assert_eq!(
            plain.points[2].digest, g.points[2].digest,
            "8 GPUs: unscaled"
        );
        // Without the scenario's rate swept, the scenario's own rate scales.
        let g = grid("[sweep]\ngpus = [16]\nscale_load_with_gpus = true\n").unwrap();
        assert_eq!(
            (g.points[0].rate_per_min, g.points[0].requests),
            (Some(24.0), Some(600))
        );
        // `false` is the scenario's own load.
        let g = grid("[sweep]\ngpus = [16]\nscale_load_with_gpus = false\n").unwrap();
        assert_eq!(
            (g.points[0].rate_per_min, g.points[0].requests),
            (None, None)
        );
    }

    #[test]
    fn scaling_the_load_needs_gpus_and_a_generated_workload() {
        let e = grid("[sweep]\nseeds = [1]\nscale_load_with_gpus = true\n")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("sweep.scale_load_with_gpus") && e.contains("does not vary the GPUs"),
            "{e}"
        );
        let e = grid(
            "[workload]\ntrace = \"traces/tiny.csv\"\n[sweep]\ngpus = [8, 16]\nscale_load_with_gpus = true\n",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("sweep.scale_load_with_gpus") && e.contains("replayed trace"),
            "{e}"
        );
    }
}
