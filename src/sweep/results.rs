//! A sweep's results: `results.csv`, one typed row per point, and `results-by-resolution.csv`,
//! one row per point and resolution (long format). Written and read here only; every reader
//! (resume, `merge`, `plot`, `compare`, the paper's figures) goes through [`read_results`].
//!
//! Every grid dimension is a column (policy, mix, arrival, cv, rate, SLO scale, seed,
//! granularity, steps, GPUs, nodes, GPUs per node, profile), so that any of them can be
//! plotted against without re-deriving it from the scenario. Each row carries its point's
//! `digest` (see `digest.rs`): the key that resume and merge match results by.
//!
//! Why a sibling file for the resolutions, rather than one column per resolution: the
//! resolutions of a run depend on its mix (a trace or a custom mix can hold any), so wide
//! columns would change from grid to grid and leave most cells empty. Long rows
//! (`digest, resolution, requests, met, slo_attainment`) have a fixed header, join on
//! `digest`, and load as they are into a data frame. Both files are written together (the
//! resolution rows of a point first, then its row), and a row whose resolution rows are
//! missing is refused.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::cost::profile::ProfileTable;
use crate::error::{Error, InputError, Result};
use crate::metrics::Summary;
use crate::policy::tetriserve::RoundLength;
use crate::scenario::{CostSource, Scenario, WorkloadSource};
use crate::workload::arrival::ArrivalProcess;

/// The columns of `results.csv`.
pub const HEADER: &str = "index,digest,scenario,policy,mix,arrival,cv,rate_per_min,slo_scale,seed,granularity,steps,gpus,nodes,gpus_per_node,profile,requests,met,missed,dropped,slo_attainment,latency_mean_s,latency_p50_s,latency_p90_s,latency_p99_s,gpu_seconds,utilization,mean_degree,attainment_bound,gpu_hours_busy,gpu_hours_provisioned,usd,usd_per_1k_met_images,energy_wh,wh_per_met_image";

/// The cost columns, last in [`HEADER`] (added after the others): what a run cost, as
/// `metrics::CostSummary` prices it (dollars on provisioned GPU-hours, energy on busy ones,
/// both per met image too). Older results files lack them: plots, `compare` and the figures
/// read such files with the cells empty (and refuse to plot a cost from them), while resume
/// and `merge` refuse them, since reused rows would carry no cost.
pub const COST_COLUMNS: [&str; 6] = [
    "gpu_hours_busy",
    "gpu_hours_provisioned",
    "usd",
    "usd_per_1k_met_images",
    "energy_wh",
    "wh_per_met_image",
];

/// The columns of `results-by-resolution.csv`.
pub const RESOLUTION_HEADER: &str = "index,digest,policy,resolution,requests,met,slo_attainment";

/// One resolution of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolutionCell {
    pub requests: usize,
    pub met: usize,
    /// `met / requests`, a fraction.
    pub attainment: f64,
}

/// One row of `results.csv` (one run of one policy at one grid point), with its resolutions.
/// Field names follow the columns, shortened where the column carries a unit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResultRow {
    /// Position in grid order.
    pub index: usize,
    /// The point's scenario digest (16 hex digits).
    pub digest: String,
    pub scenario: String,
    pub policy: String,
    /// The mix, or `trace:<path>` for a replayed trace.
    pub mix: String,
    /// `poisson`, `gamma`, `constant`, `on-off`, or `trace`.
    pub arrival: String,
    /// Coefficient of variation of gamma arrivals (empty column otherwise).
    pub cv: Option<f64>,
    /// `rate_per_min`: mean arrival rate; NaN for a replayed trace (empty column).
    pub rate: f64,
    /// `slo_scale`.
    pub scale: f64,
    pub seed: u64,
    /// Round granularity in steps, or `tau=<ms>ms` for a fixed round length.
    pub granularity: String,
    pub steps: u32,
    /// GPUs in total, nodes, GPUs per node.
    pub gpus: u32,
    pub nodes: u32,
    pub gpus_per_node: u32,
    /// A built-in profile's name, a profile file's name, or `analytic:<model>/<gpu>`.
    pub profile: String,
    pub requests: usize,
    pub met: usize,
    pub missed: usize,
    pub dropped: usize,
    /// `slo_attainment`, a fraction.
    pub attainment: f64,
    /// Latencies of finished requests, seconds (`latency_mean_s`, ...).
    pub latency_mean: f64,
    pub latency_p50: f64,
    pub latency_p90: f64,
    pub latency_p99: f64,
    pub gpu_seconds: f64,
    pub utilization: f64,
    pub mean_degree: f64,
    /// `attainment_bound`: the upper bound on attainment for this workload (NaN if absent).
    pub bound: f64,
    /// Busy and provisioned GPU-hours (NaN in a file older than the cost columns).
    pub gpu_hours_busy: f64,
    pub gpu_hours_provisioned: f64,
    /// Dollars on provisioned GPU-hours, and per 1,000 met images; watt-hours, and per met
    /// image (NaN, an empty cell, where the price or power is unknown, per image where
    /// nothing was met, or in an older file).
    pub usd: f64,
    pub usd_per_1k_met_images: f64,
    pub energy_wh: f64,
    pub wh_per_met_image: f64,
    /// From `results-by-resolution.csv`, keyed like `1024x1024`.
    pub per_resolution: BTreeMap<String, ResolutionCell>,
}

impl ResultRow {
    /// The row of a finished run.
    pub fn of(index: usize, digest: &str, s: &Scenario, policy: &str, m: &Summary) -> ResultRow {
        let (mix, arrival, cv, rate, scale) = match &s.workload {
            WorkloadSource::Synthetic(w) => {
                let (name, cv) = match w.arrival {
                    ArrivalProcess::Poisson { .. } => ("poisson", None),
                    ArrivalProcess::Gamma { cv, .. } => ("gamma", Some(cv)),
                    ArrivalProcess::Constant { .. } => ("constant", None),
                    ArrivalProcess::OnOff { .. } => ("on-off", None),
                };
                (
                    w.mix.to_string(),
                    name,
                    cv,
                    w.arrival.mean_rate_per_s() * 60.0,
                    w.slo_scale,
                )
            }
            WorkloadSource::Trace { path, slo } => (
                format!("trace:{}", path.display()),
                "trace",
                None,
                f64::NAN,
                slo.scale,
            ),
        };
        let granularity = match s.policy_config.tetriserve.round {
            RoundLength::Steps(g) => g.to_string(),
            RoundLength::Fixed(t) => format!("tau={}ms", t.as_millis()),
        };
        let profile = match &s.cost {
            CostSource::Profile(p) => profile_name(p),
            CostSource::Analytic(a) => format!("analytic:{}/{}", a.model.name, a.gpu.name),
        };
        ResultRow {
            index,
            digest: digest.to_string(),
            scenario: s.name.clone(),
            policy: policy.to_string(),
            mix,
            arrival: arrival.to_string(),
            cv,
            rate,
            scale,
            seed: s.seed,
            granularity,
            steps: s.policy_config.steps,
            gpus: s.cluster.total_gpus(),
            nodes: s.cluster.nodes,
            gpus_per_node: s.cluster.gpus_per_node,
            profile,
            requests: m.requests,
            met: m.met,
            missed: m.missed,
            dropped: m.dropped,
            attainment: m.slo_attainment,
            latency_mean: m.latency.mean_s,
            latency_p50: m.latency.p50_s,
            latency_p90: m.latency.p90_s,
            latency_p99: m.latency.p99_s,
            gpu_seconds: m.gpu_seconds,
            utilization: m.utilization,
            mean_degree: m.mean_degree,
            bound: m.slo_attainment_bound.unwrap_or(f64::NAN),
            gpu_hours_busy: m.gpu_hours_busy,
            gpu_hours_provisioned: m.gpu_hours_provisioned,
            usd: m.cost.usd.unwrap_or(f64::NAN),
            usd_per_1k_met_images: m.cost.usd_per_1k_met_images.unwrap_or(f64::NAN),
            energy_wh: m.cost.energy_wh.unwrap_or(f64::NAN),
            wh_per_met_image: m.cost.wh_per_met_image.unwrap_or(f64::NAN),
            per_resolution: m
                .per_resolution
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        ResolutionCell {
                            requests: v.requests,
                            met: v.met,
                            attainment: v.slo_attainment,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The row as a `results.csv` line (no newline). Metrics have six decimals, coordinates
    /// their shortest exact form, so reading a row and writing it again changes no byte.
    pub fn line(&self) -> String {
        let opt = |v: f64| {
            if v.is_nan() {
                String::new()
            } else {
                format!("{v}")
            }
        };
        let mut s = String::new();
        let _ = write!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{}",
            self.index,
            self.digest,
            csv_field(&self.scenario),
            csv_field(&self.policy),
            csv_field(&self.mix),
            self.arrival,
            self.cv.map(|c| format!("{c}")).unwrap_or_default(),
            opt(self.rate),
            self.scale,
            self.seed,
            csv_field(&self.granularity),
            self.steps,
            self.gpus,
            self.nodes,
            self.gpus_per_node,
            csv_field(&self.profile),
            self.requests,
            self.met,
            self.missed,
            self.dropped,
            self.attainment,
            self.latency_mean,
            self.latency_p50,
            self.latency_p90,
            self.latency_p99,
            self.gpu_seconds,
            self.utilization,
            self.mean_degree,
            if self.bound.is_nan() {
                String::new()
            } else {
                format!("{:.6}", self.bound)
            }
        );
        for v in self.costs() {
            if v.is_nan() {
                s.push(',');
            } else {
                let _ = write!(s, ",{v:.6}");
            }
        }
        s
    }

    /// The values of [`COST_COLUMNS`], in their order.
    pub fn costs(&self) -> [f64; 6] {
        [
            self.gpu_hours_busy,
            self.gpu_hours_provisioned,
            self.usd,
            self.usd_per_1k_met_images,
            self.energy_wh,
            self.wh_per_met_image,
        ]
    }

    /// The row's `results-by-resolution.csv` lines, each ending in a newline.
    pub fn resolution_lines(&self) -> String {
        let mut s = String::new();
        for (res, c) in &self.per_resolution {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{:.6}",
                self.index,
                self.digest,
                csv_field(&self.policy),
                csv_field(res),
                c.requests,
                c.met,
                c.attainment
            );
        }
        s
    }
}

/// A built-in profile's name, or a profile file's name.
fn profile_name(p: &ProfileTable) -> String {
    let src = p.source();
    if let Some(name) = src
        .strip_prefix("<builtin ")
        .and_then(|s| s.strip_suffix('>'))
    {
        return name.to_string();
    }
    Path::new(src)
        .file_name()
        .map_or_else(|| src.to_string(), |n| n.to_string_lossy().into_owned())
}

/// A CSV field, quoted when it holds a comma, a quote or a newline.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The resolution file beside a results file: `results.csv` -> `results-by-resolution.csv`,
/// `results.shard-0-of-2.csv` -> `results-by-resolution.shard-0-of-2.csv`, `mine.csv` ->
/// `mine-by-resolution.csv`.
pub fn by_resolution_path(results: &Path) -> PathBuf {
    let name = results
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let new = if let Some(rest) = name.strip_prefix("results.") {
        format!("results-by-resolution.{rest}")
    } else if let Some(stem) = name.strip_suffix(".csv") {
        format!("{stem}-by-resolution.csv")
    } else {
        format!("{name}-by-resolution")
    };
    results.with_file_name(new)
}

/// Writes `rows` (in the given order) as a results file and its resolution file, each
/// atomically (a temporary sibling renamed into place), the resolution file first.
pub fn write_results(path: &Path, rows: &[ResultRow]) -> Result<()> {
    let mut main = String::from(HEADER);
    main.push('\n');
    let mut res = String::from(RESOLUTION_HEADER);
    res.push('\n');
    for r in rows {
        main.push_str(&r.line());
        main.push('\n');
        res.push_str(&r.resolution_lines());
    }
    crate::files::write_file(&by_resolution_path(path), res.as_bytes())?;
    crate::files::write_file(path, main.as_bytes())
}

/// Reads a results file and, when it exists, its resolution file. Refuses a file without rows.
pub fn read_results(path: &Path) -> Result<Vec<ResultRow>> {
    let rows = read(path, Resolutions::IfPresent)?;
    if rows.is_empty() {
        return Err(Error::Input(
            InputError::new(
                path.display().to_string(),
                "the results file has a header but no rows",
            )
            .hint("run `tetriserve sweep` to fill it"),
        ));
    }
    Ok(rows)
}

/// Refuses rows read from a file older than the cost columns (their busy GPU-hours, which
/// every newer row has, are missing), where they would be reused or merged: the results
/// written from them would carry no cost.
pub fn require_costs(path: &Path, rows: &[ResultRow]) -> Result<()> {
    if rows.iter().all(|r| !r.gpu_hours_busy.is_nan()) {
        return Ok(());
    }
    Err(Error::Input(
        InputError::new(
            path.display().to_string(),
            format!(
                "no cost columns ({}): these results were made by an older tetriserve, and rows reused from them would carry no cost",
                COST_COLUMNS.join(", ")
            ),
        )
        .line(1)
        .hint("run the sweep again with --rerun (it replaces them), or give another --out"),
    ))
}

/// How [`read`] treats the resolution file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Resolutions {
    /// Read it if it exists (a copied `results.csv` alone still plots).
    IfPresent,
    /// It must exist, and every row must have its resolutions (resume, merge, `compare
    /// --resolution`).
    Required,
    /// Rows without resolution rows are dropped (a partial file: the process stopped
    /// between the two writes); the caller runs their points again.
    DropIncomplete,
}

/// Reads a results file (empty when it has only a header).
pub fn read(path: &Path, resolutions: Resolutions) -> Result<Vec<ResultRow>> {
    let source = path.display().to_string();
    let text = crate::error::read_text(path, crate::error::limits::SMALL_BYTES, "results file")?;
    let (mut reader, header) = csv_reader(&text, &source)?;
    if !header.iter().any(|h| h == "digest") {
        return Err(Error::Input(
            InputError::new(
                &source,
                "no column `digest`: these results were made by an older tetriserve (or are not a sweep's results.csv), so the scenario they came from cannot be checked",
            )
            .line(1)
            .hint("run the sweep again with --rerun (it replaces them), or give another --out"),
        ));
    }
    let costs_present = COST_COLUMNS.iter().all(|c| header.iter().any(|h| h == *c));
    let expected = HEADER
        .split(',')
        .filter(|c| costs_present || !COST_COLUMNS.contains(c));
    let cols = Columns::new(&header, expected, &source)?;
    let mut rows = Vec::new();
    for_each_record(&mut reader, &cols, &source, |f| {
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        let mut costs = [f64::NAN; 6];
        if costs_present {
            for (slot, name) in costs.iter_mut().zip(COST_COLUMNS) {
                if !f.text(name)?.is_empty() {
                    *slot = f.num(name, &non_negative, "a non-negative number")?;
                }
            }
        }
        let [
            gpu_hours_busy,
            gpu_hours_provisioned,
            usd,
            usd_per_1k_met_images,
            energy_wh,
            wh_per_met_image,
        ] = costs;
        let fraction = |v: f64| (0.0..=1.0).contains(&v);
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let rate = match f.text("rate_per_min")? {
            "" => f64::NAN,
            _ => f.num("rate_per_min", &positive, "a positive rate")?,
        };
        let cv = match f.text("cv")? {
            "" => None,
            _ => Some(f.num("cv", &positive, "a positive coefficient of variation")?),
        };
        let bound = match f.text("attainment_bound")? {
            "" => f64::NAN,
            _ => f.num("attainment_bound", &fraction, "a fraction from 0 to 1")?,
        };
        let digest = f.text("digest")?;
        if digest.len() != 16 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(f.bad("digest", format!("expected 16 hex digits, got `{digest}`")));
        }
        rows.push(ResultRow {
            index: f.int("index")?,
            digest: digest.to_string(),
            scenario: f.text("scenario")?.to_string(),
            policy: f.text("policy")?.to_string(),
            mix: f.text("mix")?.to_string(),
            arrival: f.text("arrival")?.to_string(),
            cv,
            rate,
            scale: f.num("slo_scale", &positive, "a positive SLO scale")?,
            seed: f.int("seed")?,
            granularity: f.text("granularity")?.to_string(),
            steps: f.int("steps")?,
            gpus: f.int("gpus")?,
            nodes: f.int("nodes")?,
            gpus_per_node: f.int("gpus_per_node")?,
            profile: f.text("profile")?.to_string(),
            requests: f.int("requests")?,
            met: f.int("met")?,
            missed: f.int("missed")?,
            dropped: f.int("dropped")?,
            attainment: f.num("slo_attainment", &fraction, "a fraction from 0 to 1")?,
            latency_mean: f.num("latency_mean_s", &non_negative, "seconds")?,
            latency_p50: f.num("latency_p50_s", &non_negative, "seconds")?,
            latency_p90: f.num("latency_p90_s", &non_negative, "seconds")?,
            latency_p99: f.num("latency_p99_s", &non_negative, "seconds")?,
            gpu_seconds: f.num("gpu_seconds", &non_negative, "GPU-seconds")?,
            utilization: f.num("utilization", &non_negative, "a fraction")?,
            mean_degree: f.num("mean_degree", &non_negative, "a degree")?,
            bound,
            gpu_hours_busy,
            gpu_hours_provisioned,
            usd,
            usd_per_1k_met_images,
            energy_wh,
            wh_per_met_image,
            per_resolution: BTreeMap::new(),
        });
        let r = rows.last().expect("just pushed");
        if r.met + r.missed + r.dropped != r.requests {
            return Err(f.bad(
                "requests",
                format!(
                    "met {} + missed {} + dropped {} is not requests {}",
                    r.met, r.missed, r.dropped, r.requests
                ),
            ));
        }
        check_attainment(r.attainment, r.met, r.requests)
            .map_err(|m| f.bad("slo_attainment", m))?;
        Ok(())
    })?;
    let res_path = by_resolution_path(path);
    if resolutions == Resolutions::IfPresent && !res_path.exists() {
        return Ok(rows);
    }
    if !res_path.exists() && rows.is_empty() {
        return Ok(rows);
    }
    let cells = read_resolutions(&res_path, resolutions)?;
    attach(rows, cells, path, &res_path, resolutions)
}

/// One row of `results-by-resolution.csv`: (digest, policy) -> resolution -> cell, with the
/// line it came from.
type Cells = BTreeMap<(String, String), (u64, BTreeMap<String, ResolutionCell>)>;

/// Refuses an attainment that is not `met / requests` (as written: six decimals), so that
/// an edited cell cannot disagree with the counts every reader also uses.
fn check_attainment(attainment: f64, met: usize, requests: usize) -> Result<(), String> {
    if requests == 0 {
        return Ok(());
    }
    let expected = met as f64 / requests as f64;
    if (attainment - expected).abs() > 1e-6 {
        return Err(format!(
            "{attainment} is not met / requests = {met} / {requests} = {expected:.6}; the cells disagree (was the file edited?)"
        ));
    }
    Ok(())
}

fn read_resolutions(path: &Path, how: Resolutions) -> Result<Cells> {
    let source = path.display().to_string();
    if !path.exists() {
        return Err(Error::Input(
            InputError::new(&source, "missing: it holds the per-resolution results")
                .hint("it is written beside results.csv by `tetriserve sweep`; copy both files together, or run the sweep again"),
        ));
    }
    let text = crate::error::read_text(path, crate::error::limits::SMALL_BYTES, "results file")?;
    let (mut reader, header) = csv_reader(&text, &source)?;
    let cols = Columns::new(&header, RESOLUTION_HEADER.split(','), &source)?;
    let mut cells = Cells::new();
    for_each_record(&mut reader, &cols, &source, |f| {
        let fraction = |v: f64| (0.0..=1.0).contains(&v);
        let cell = ResolutionCell {
            requests: f.int("requests")?,
            met: f.int("met")?,
            attainment: f.num("slo_attainment", &fraction, "a fraction from 0 to 1")?,
        };
        if cell.met > cell.requests {
            return Err(f.bad(
                "met",
                format!("{} met of {} requests", cell.met, cell.requests),
            ));
        }
        check_attainment(cell.attainment, cell.met, cell.requests)
            .map_err(|m| f.bad("slo_attainment", m))?;
        let res = f.text("resolution")?.to_string();
        let entry = cells
            .entry((f.text("digest")?.to_string(), f.text("policy")?.to_string()))
            .or_insert((f.line, BTreeMap::new()));
        if entry.1.contains_key(&res) {
            if how != Resolutions::DropIncomplete {
                return Err(f.bad("resolution", format!("a second row for {res} of this run")));
            }
            // A partial file: the run stopped after some of a point's rows, and the point ran
            // again; its later rows replace the earlier ones.
            *entry = (f.line, BTreeMap::new());
        }
        entry.1.insert(res, cell);
        Ok(())
    })?;
    Ok(cells)
}

/// Gives each row its resolutions; checks that they add up to the row's requests.
fn attach(
    rows: Vec<ResultRow>,
    mut cells: Cells,
    path: &Path,
    res_path: &Path,
    how: Resolutions,
) -> Result<Vec<ResultRow>> {
    let mut out = Vec::with_capacity(rows.len());
    for (i, mut r) in rows.into_iter().enumerate() {
        match cells.remove(&(r.digest.clone(), r.policy.clone())) {
            Some((line, c)) => {
                let (n, met) = c
                    .values()
                    .fold((0, 0), |(n, m), c| (n + c.requests, m + c.met));
                if (n, met) != (r.requests, r.met) {
                    return Err(Error::Input(
                        InputError::new(
                            res_path.display().to_string(),
                            format!(
                                "the resolutions of {} at point {} add up to {met} met of {n} requests, but {} says {} of {}",
                                r.policy,
                                r.digest,
                                path.display(),
                                r.met,
                                r.requests
                            ),
                        )
                        .line(line)
                        .hint("the two files come from different sweeps; copy them together"),
                    ));
                }
                r.per_resolution = c;
                out.push(r);
            }
            None if how == Resolutions::DropIncomplete => {}
            None => {
                return Err(Error::Input(
                    InputError::new(
                        path.display().to_string(),
                        format!(
                            "{} has no rows for this run ({} at point {})",
                            res_path.display(),
                            r.policy,
                            r.digest
                        ),
                    )
                    .line(i as u64 + 2)
                    .hint("the two files come from different sweeps; copy them together, or run the sweep again"),
                ));
            }
        }
    }
    Ok(out)
}

/// Column positions by name, every expected column present.
struct Columns(BTreeMap<&'static str, usize>);

impl Columns {
    fn new(
        header: &csv::StringRecord,
        expected: impl IntoIterator<Item = &'static str>,
        source: &str,
    ) -> Result<Columns> {
        let mut map = BTreeMap::new();
        for name in expected {
            let i = header.iter().position(|h| h == name).ok_or_else(|| {
                Error::Input(
                    InputError::new(source, format!("no column `{name}`"))
                        .line(1)
                        .hint("give the results of `tetriserve sweep` (run it again with --rerun if they are older)"),
                )
            })?;
            map.insert(name, i);
        }
        Ok(Columns(map))
    }
}

/// One record's fields, parsed with errors naming the file, line and column.
/// A CSV reader over `text` and its header row.
fn csv_reader<'t>(
    text: &'t str,
    source: &str,
) -> Result<(csv::Reader<&'t [u8]>, csv::StringRecord)> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| {
            Error::Input(InputError::new(source, format!("unreadable header: {e}")).line(1))
        })?
        .clone();
    Ok((reader, header))
}

/// Calls `row` with the fields of every record after the header (lines numbered from 2).
fn for_each_record(
    reader: &mut csv::Reader<&[u8]>,
    cols: &Columns,
    source: &str,
    mut row: impl FnMut(&Fields) -> Result<()>,
) -> Result<()> {
    for (i, rec) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let rec = rec.map_err(|e| {
            Error::Input(InputError::new(source, format!("unreadable row: {e}")).line(line))
        })?;
        row(&Fields {
            rec: &rec,
            cols,
            source,
            line,
        })?;
    }
    Ok(())
}

struct Fields<'a> {
    rec: &'a csv::StringRecord,
    cols: &'a Columns,
    source: &'a str,
    line: u64,
}

impl Fields<'_> {
    fn bad(&self, field: &str, message: String) -> Error {
        Error::Input(
            InputError::new(self.source, message)
                .line(self.line)
                .field(field),
        )
    }

    fn text(&self, name: &str) -> Result<&str> {
        let i = self.cols.0[name];
        self.rec
            .get(i)
            .ok_or_else(|| self.bad(name, "missing (the row is short)".into()))
    }

    fn int<T: std::str::FromStr>(&self, name: &str) -> Result<T> {
        let t = self.text(name)?;
        t.parse()
            .map_err(|_| self.bad(name, format!("expected a whole number, got `{t}`")))
    }

    /// A number that `ok` accepts; NaN, infinities and values outside the domain are refused,
    /// never drawn clamped or averaged.
    fn num(&self, name: &str, ok: &dyn Fn(f64) -> bool, what: &str) -> Result<f64> {
        let t = self.text(name)?;
        t.parse::<f64>()
            .ok()
            .filter(|v| ok(*v))
            .ok_or_else(|| self.bad(name, format!("expected {what}, got `{t}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ResultRow {
        ResultRow {
            index: 3,
            digest: "0123456789abcdef".into(),
            scenario: "s".into(),
            policy: "tetriserve".into(),
            mix: "custom:256=1,512=1".into(),
            arrival: "gamma".into(),
            cv: Some(2.5),
            rate: 12.000000000000002,
            scale: 1.5,
            seed: 7,
            granularity: "5".into(),
            steps: 28,
            gpus: 16,
            nodes: 2,
            gpus_per_node: 8,
            profile: "h100-flux1-dev".into(),
            requests: 10,
            met: 7,
            missed: 2,
            dropped: 1,
            attainment: 0.7,
            latency_mean: 1.25,
            latency_p50: 1.0,
            latency_p90: 2.0,
            latency_p99: 2.5,
            gpu_seconds: 12345.678901,
            utilization: 0.5,
            mean_degree: 2.25,
            bound: 0.9,
            gpu_hours_busy: 3.429355,
            gpu_hours_provisioned: 6.85871,
            usd: 20.57613,
            usd_per_1k_met_images: 2939.447143,
            energy_wh: 2400.5485,
            // Unknown (no power set): an empty cell that reads back as unknown.
            wh_per_met_image: f64::NAN,
            per_resolution: [("256x256", 6, 5, 5.0 / 6.0), ("512x512", 4, 2, 0.5)]
                .into_iter()
                .map(|(k, requests, met, a)| {
                    (
                        k.to_string(),
                        ResolutionCell {
                            requests,
                            met,
                            attainment: a,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn rows_round_trip_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("results.csv");
        let mut other = row();
        other.index = 4;
        other.digest = "fedcba9876543210".into();
        other.cv = None;
        other.rate = f64::NAN;
        other.bound = f64::NAN;
        write_results(&p, &[row(), other.clone()]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let res = std::fs::read_to_string(dir.path().join("results-by-resolution.csv")).unwrap();
        assert_eq!(res.lines().count(), 1 + 4);
        assert!(
            res.contains("3,0123456789abcdef,tetriserve,256x256,6,5,0.833333\n"),
            "{res}"
        );
        let back = read_results(&p).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].mix, "custom:256=1,512=1");
        assert_eq!(back[0].per_resolution["512x512"].met, 2);
        assert!(back[1].rate.is_nan() && back[1].cv.is_none() && back[1].bound.is_nan());
        assert_eq!(back[0].usd_per_1k_met_images, 2939.447143);
        assert!(back[0].wh_per_met_image.is_nan());
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .ends_with(",3.429355,6.858710,20.576130,2939.447143,2400.548500,"),
            "{text}"
        );
        write_results(&p, &back).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
    }

    #[test]
    fn bad_fields_are_named_by_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("results.csv");
        write_results(&p, &[row()]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let broken = text.replace(",0.700000,", ",1.700000,");
        std::fs::write(&p, broken).unwrap();
        let e = read_results(&p).unwrap_err().to_string();
        assert!(
            e.contains("results.csv:2: field `slo_attainment`: expected a fraction"),
            "{e}"
        );
        // An attainment that disagrees with the counts (sweep reuse, plot and compare read it).
        std::fs::write(&p, text.replace(",0.700000,", ",0.900000,")).unwrap();
        let e = read_results(&p).unwrap_err().to_string();
        assert!(
            e.contains("results.csv:2: field `slo_attainment`: 0.9 is not met / requests"),
            "{e}"
        );
        // Resolutions that do not add up to the row.
        write_results(&p, &[row()]).unwrap();
        let rp = dir.path().join("results-by-resolution.csv");
        let res = std::fs::read_to_string(&rp)
            .unwrap()
            .replace(",4,2,0.500000", ",4,1,0.250000");
        std::fs::write(&rp, res).unwrap();
        let e = read_results(&p).unwrap_err().to_string();
        assert!(
            e.contains("results-by-resolution.csv:2") && e.contains("6 met of 10"),
            "{e}"
        );
        // An old file without digests.
        std::fs::write(&p, "index,key,policy\n0,a,b\n").unwrap();
        let e = read_results(&p).unwrap_err().to_string();
        assert!(
            e.contains("no column `digest`") && e.contains("--rerun"),
            "{e}"
        );
    }

    #[test]
    fn resolution_files_sit_beside_their_results() {
        let p = |s: &str| {
            by_resolution_path(Path::new(s))
                .to_string_lossy()
                .into_owned()
        };
        assert_eq!(p("d/results.csv"), "d/results-by-resolution.csv");
        assert_eq!(
            p("d/results.shard-0-of-2.csv"),
            "d/results-by-resolution.shard-0-of-2.csv"
        );
        assert_eq!(
            p("d/results.partial.csv"),
            "d/results-by-resolution.partial.csv"
        );
        assert_eq!(p("mine.csv"), "mine-by-resolution.csv");
    }
}
