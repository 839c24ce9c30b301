//! Capacity planning: the most load a cluster holds at a target SLO attainment (goodput), the
//! fewest GPUs that hold a given load, and what either costs.
//!
//! The load is either the scenario's generated workload at a rate (requests per minute, the
//! mean over seeds) or a log replayed at `F` times its own rate ([`Workload::time_scaled`]:
//! arrival gaps divided by `F`, SLOs kept). A log is read once and rescaled in memory.
//!
//! Both searches rest on an assumption the simulator does not guarantee: attainment falls as
//! the load rises ([`rate_search`], bisection on the rate or the scale) and rises with the GPUs
//! ([`gpu_search`], bisection over the cluster sizes the nodes allow). Each search measures the
//! ends of its range first and says when the answer lies at one of them; between the ends, a
//! curve that is not monotone can make bisection stop at any crossing of the target.
//!
//! Every point measured carries its cost ([`Measure`]): busy and provisioned GPU-hours, dollars
//! and energy per run (means over the seeds), and dollars per 1,000 met images and watt-hours
//! per met image pooled over the runs (`metrics::summary` defines them). Reports come as one line for people, or one JSON object
//! or CSV row with every field ([`Report`]).

pub mod curve;
mod report;

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::metrics::{CostSummary, Summary};
use crate::policy::PolicyKind;
use crate::scenario::{Overrides, RawScenario, Scenario, WorkloadSource};
use crate::simulate::summarise_workload;
use crate::slo_fit::NeverMet;
use crate::workload::Workload;

pub use report::{FieldValue, Report, gpu_report, load_phrase, rate_report};

/// What a point of a search serves.
#[derive(Clone, Debug)]
pub enum Load {
    /// The scenario's generator; each point is the mean over these seeds.
    Generated { seeds: Vec<u64> },
    /// A log, read once; points replay it at a scale factor.
    Log {
        path: PathBuf,
        workload: Workload,
        /// The log's own rate: (requests - 1) / (last arrival - first arrival), per minute.
        rate_per_min: f64,
    },
}

/// The rate of a log, requests per minute: (n - 1) arrivals over the span from the first to the
/// last, so that a log with gaps of `g` seconds has a rate of `60 / g`. A log of fewer than two
/// requests, or whose requests all arrive at once, has no rate to scale.
pub fn log_rate_per_min(w: &Workload) -> Option<f64> {
    let first = w.requests.first()?.arrival;
    let last = w.requests.last()?.arrival;
    let span = (last - first).as_secs();
    (w.len() >= 2 && span > 0.0).then(|| (w.len() - 1) as f64 / span * 60.0)
}

/// What "the target is met" means at a point of a search.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Criterion {
    /// The mean attainment over the runs reaches the target.
    #[default]
    Mean,
    /// The lower end of the 95% confidence interval of the mean over the seeds reaches it
    /// (with one run, the mean itself: there is no interval).
    CiLower,
    /// Every run (seed) reaches it on its own.
    EverySeed,
    /// Every resolution, its requests pooled over the runs, reaches it on its own.
    EveryResolution,
}

impl Criterion {
    pub const ALL: [Criterion; 4] = [
        Criterion::Mean,
        Criterion::CiLower,
        Criterion::EverySeed,
        Criterion::EveryResolution,
    ];

    /// The name the flag and the reports use.
    pub fn name(self) -> &'static str {
        match self {
            Criterion::Mean => "mean",
            Criterion::CiLower => "ci-lower",
            Criterion::EverySeed => "every-seed",
            Criterion::EveryResolution => "every-resolution",
        }
    }

    /// What the criterion asks, for people.
    pub fn phrase(self) -> &'static str {
        match self {
            Criterion::Mean => "mean over the runs",
            Criterion::CiLower => "lower end of the 95% CI over the seeds",
            Criterion::EverySeed => "on every seed",
            Criterion::EveryResolution => "for every resolution",
        }
    }
}

/// One resolution's requests at a point, pooled over its runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolutionCount {
    pub resolution: crate::workload::Resolution,
    pub requests: usize,
    pub met: usize,
}

impl ResolutionCount {
    pub fn attainment(&self) -> f64 {
        self.met as f64 / self.requests.max(1) as f64
    }
}

/// The runs of one point of a search (one per seed, or the one replay of a log).
#[derive(Clone, Debug, PartialEq)]
pub struct Measure {
    /// Mean SLO attainment over the runs.
    pub slo_attainment: f64,
    /// Half-width of the 95% confidence interval of that mean over the runs (Student's t);
    /// 0 with a single run.
    pub ci95: f64,
    /// Each run's attainment, in seed order.
    pub per_run: Vec<f64>,
    /// Per resolution, smallest first, pooled over the runs.
    pub per_resolution: Vec<ResolutionCount>,
    pub runs: usize,
    /// Summed over the runs.
    pub requests: usize,
    pub met: usize,
    /// Per run: the mean over the runs.
    pub gpu_hours_busy: f64,
    pub gpu_hours_provisioned: f64,
    /// Dollars and energy per run (means), and per met image pooled over the runs (all the
    /// runs' dollars over all their met images).
    pub cost: CostSummary,
}

impl Measure {
    /// Pools the summaries of one point, priced with `op`.
    fn of(summaries: &[Summary], op: &crate::cluster::OperatingCost) -> Measure {
        let n = summaries.len().max(1) as f64;
        let sum = |f: fn(&Summary) -> f64| summaries.iter().map(f).sum::<f64>();
        let (busy, provisioned) = (sum(|s| s.gpu_hours_busy), sum(|s| s.gpu_hours_provisioned));
        let met = summaries.iter().map(|s| s.met).sum();
        let mut cost = CostSummary::of(op, busy, provisioned, met);
        cost.usd = cost.usd.map(|x| x / n);
        cost.energy_wh = cost.energy_wh.map(|x| x / n);
        let per_run: Vec<f64> = summaries.iter().map(|s| s.slo_attainment).collect();
        let (mean, ci95) = crate::sweep::mean_ci95(&per_run);
        let mut per_resolution: Vec<ResolutionCount> = Vec::new();
        for s in summaries {
            for (key, r) in &s.per_resolution {
                // The summary's keys are `Resolution`s written out; they parse back.
                let Ok(resolution) = key.parse::<crate::workload::Resolution>() else {
                    continue;
                };
                match per_resolution
                    .iter_mut()
                    .find(|c| c.resolution == resolution)
                {
                    Some(c) => {
                        c.requests += r.requests;
                        c.met += r.met;
                    }
                    None => per_resolution.push(ResolutionCount {
                        resolution,
                        requests: r.requests,
                        met: r.met,
                    }),
                }
            }
        }
        per_resolution.sort_by_key(|c| (c.resolution.tokens(), c.resolution));
        Measure {
            slo_attainment: if summaries.is_empty() { 0.0 } else { mean },
            ci95,
            per_run,
            per_resolution,
            runs: summaries.len(),
            requests: summaries.iter().map(|s| s.requests).sum(),
            met,
            gpu_hours_busy: busy / n,
            gpu_hours_provisioned: provisioned / n,
            cost,
        }
    }

    /// Whether this point meets `target` under `criterion`.
    pub fn meets(&self, target: f64, criterion: Criterion) -> bool {
        match criterion {
            Criterion::Mean => self.slo_attainment >= target,
            Criterion::CiLower => self.slo_attainment - self.ci95 >= target,
            Criterion::EverySeed => {
                !self.per_run.is_empty() && self.per_run.iter().all(|&a| a >= target)
            }
            Criterion::EveryResolution => self
                .per_resolution
                .iter()
                .filter(|c| c.requests > 0)
                .all(|c| c.attainment() >= target),
        }
    }

    /// The 95% interval of the mean attainment, clamped to what attainment can be (0..1).
    pub fn ci95_bounds(&self) -> (f64, f64) {
        (
            (self.slo_attainment - self.ci95).max(0.0),
            (self.slo_attainment + self.ci95).min(1.0),
        )
    }

    /// The cost figures in the order of [`crate::sweep::results::COST_COLUMNS`] (the same
    /// names in every report): busy and provisioned GPU-hours, dollars, dollars per 1,000 met
    /// images, energy, energy per met image; `None` where the price or power is unknown.
    pub fn cost_values(&self) -> [Option<f64>; 6] {
        [
            Some(self.gpu_hours_busy),
            Some(self.gpu_hours_provisioned),
            self.cost.usd,
            self.cost.usd_per_1k_met_images,
            self.cost.energy_wh,
            self.cost.wh_per_met_image,
        ]
    }

    /// The lowest attainment of a single run.
    pub fn worst_run(&self) -> Option<f64> {
        self.per_run.iter().copied().reduce(f64::min)
    }

    /// The resolution with the lowest attainment, and that attainment.
    pub fn worst_resolution(&self) -> Option<&ResolutionCount> {
        self.per_resolution
            .iter()
            .filter(|c| c.requests > 0)
            .min_by(|a, b| a.attainment().total_cmp(&b.attainment()))
    }
}

/// A measured point: the bits of its rate or scale, and its GPUs.
type PointKey = (u64, Option<u32>);

/// A policy, a scenario and a load: what the searches measure at each point.
pub struct Planner {
    raw: RawScenario,
    source: String,
    policy: String,
    pub load: Load,
    /// What meeting the target means at a point (default: the mean over the runs).
    pub criterion: Criterion,
    /// Points measured so far, by (x's bits, GPUs): a search and a curve over the same
    /// points run each simulation once.
    measured: std::cell::RefCell<Vec<(PointKey, Measure)>>,
    /// What a GPU count sizes: the cluster (`None`), or one pool of disaggregated stages.
    pool: Option<Pool>,
}

/// A pool of disaggregated stages whose size a search can choose (`goodput --min-gpus --pool`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    Encode,
    Decode,
}

impl Pool {
    pub fn name(self) -> &'static str {
        match self {
            Pool::Encode => "encode",
            Pool::Decode => "decode",
        }
    }
}

impl Planner {
    /// A planner for `policy` on the scenario `raw` (merged and overridden already). A scenario
    /// replaying a trace is planned from that log, read here once; otherwise from its
    /// generator over `seeds`.
    pub fn new(mut raw: RawScenario, source: &str, policy: &str, seeds: Vec<u64>) -> Result<Self> {
        raw.apply(&Overrides {
            policies: vec![policy.to_string()],
            ..Overrides::default()
        })?;
        let scenario = Scenario::from_raw(raw.clone(), source)?;
        if scenario.policies.len() != 1 {
            return Err(Error::config_hint(
                format!(
                    "`{policy}` names {} policies; capacity is planned for one",
                    scenario.policies.len()
                ),
                "name one policy, e.g. --policy tetriserve",
            ));
        }
        let load = match &scenario.workload {
            WorkloadSource::Synthetic(_) => {
                if seeds.is_empty() {
                    return Err(Error::config_hint(
                        "no seeds to average over",
                        "e.g. --seeds 1,2,3",
                    ));
                }
                Load::Generated { seeds }
            }
            WorkloadSource::Trace { path, .. } => {
                let workload = scenario.load_workload()?;
                let rate_per_min = log_rate_per_min(&workload).ok_or_else(|| {
                    Error::config_hint(
                        format!(
                            "{}: the log needs at least two requests arriving at different times to have a rate to scale",
                            path.display()
                        ),
                        "plan from a longer log, or from a generated workload (drop --trace)",
                    )
                })?;
                Load::Log {
                    path: path.clone(),
                    workload,
                    rate_per_min,
                }
            }
        };
        Ok(Planner {
            raw,
            source: source.to_string(),
            policy: policy.to_string(),
            load,
            criterion: Criterion::default(),
            measured: std::cell::RefCell::new(Vec::new()),
            pool: None,
        })
    }

    /// GPU counts size `pool` instead of the cluster: the scenario must disaggregate its
    /// stages. Each count is the pool's GPUs, the cluster and the other pool as given.
    pub fn sizing_pool(mut self, pool: Pool) -> Result<Self> {
        if self.scenario(None, None, None)?.stages.pools().is_none() {
            return Err(Error::config_hint(
                format!(
                    "--pool {} sizes a pool of disaggregated stages, and the scenario's stages are co-located",
                    pool.name()
                ),
                "plan from a scenario with [stages] mode = \"disaggregated\" (scenarios/beyond/disaggregated.toml), or drop --pool",
            ));
        }
        self.pool = Some(pool);
        Ok(self)
    }

    /// What a GPU count of a search sizes, for reports: `GPUs`, `decode-pool GPUs`.
    pub fn gpus_noun(&self) -> String {
        match self.pool {
            None => "GPUs".into(),
            Some(p) => format!("{}-pool GPUs", p.name()),
        }
    }

    /// The pool a search sizes, if not the cluster.
    pub fn pool(&self) -> Option<Pool> {
        self.pool
    }

    /// Whether `m` meets `target` under this planner's criterion.
    pub fn meets(&self, m: &Measure, target: f64) -> bool {
        m.meets(target, self.criterion)
    }

    /// The policy planned for.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// The same plan with every generated run `factor` times as long (`--requests` scaled),
    /// the stability check's second look; `None` for a log, whose length is its own, or when
    /// the scenario's request count times `factor` passes the bound on requests.
    pub fn with_requests_scaled(&self, factor: usize) -> Result<Option<Planner>> {
        let Load::Generated { seeds } = &self.load else {
            return Ok(None);
        };
        let requests = match self.scenario(None, None, None)?.workload {
            WorkloadSource::Synthetic(w) => w.requests,
            WorkloadSource::Trace { .. } => return Ok(None),
        };
        let Some(more) = requests
            .checked_mul(factor)
            .filter(|&n| n <= crate::workload::MAX_REQUESTS)
        else {
            return Ok(None);
        };
        let mut raw = self.raw.clone();
        raw.apply(&Overrides {
            requests: Some(more),
            ..Overrides::default()
        })?;
        let mut p = Planner::new(raw, &self.source, &self.policy, seeds.clone())?;
        p.criterion = self.criterion;
        p.pool = self.pool;
        Ok(Some(p))
    }

    /// Requests of one generated run (the scenario's `requests`), or of the log.
    pub fn requests_per_run(&self) -> Result<usize> {
        match &self.load {
            Load::Log { workload, .. } => Ok(workload.len()),
            Load::Generated { .. } => match self.scenario(None, None, None)?.workload {
                WorkloadSource::Synthetic(w) => Ok(w.requests),
                WorkloadSource::Trace { .. } => Ok(0),
            },
        }
    }

    /// The validated scenario with `gpus` GPUs (the scenario's own if `None`) and, for a
    /// generated load, `rate` and `seed`.
    fn scenario(
        &self,
        gpus: Option<u32>,
        rate: Option<f64>,
        seed: Option<u64>,
    ) -> Result<Scenario> {
        let mut raw = self.raw.clone();
        let (gpus, encode_gpus, decode_gpus) = match self.pool {
            None => (gpus, None, None),
            Some(Pool::Encode) => (None, gpus, None),
            Some(Pool::Decode) => (None, None, gpus),
        };
        raw.apply(&Overrides {
            gpus,
            encode_gpus,
            decode_gpus,
            rate_per_min: rate,
            seed,
            ..Overrides::default()
        })?;
        Scenario::from_raw(raw, &self.source)
    }

    /// GPUs of the scenario as given (of the pool, when sizing one).
    pub fn gpus(&self) -> Result<u32> {
        let s = self.scenario(None, None, None)?;
        Ok(match (self.pool, s.stages.pools()) {
            (Some(Pool::Encode), Some(p)) => p.encode.gpus,
            (Some(Pool::Decode), Some(p)) => p.decode.gpus,
            _ => s.cluster.total_gpus(),
        })
    }

    /// Measures the load at `x` (a rate in requests per minute for a generated load; the scale
    /// factor for a log) on `gpus` GPUs (the scenario's own if `None`).
    pub fn measure(&self, x: f64, gpus: Option<u32>) -> Result<Measure> {
        let key = (x.to_bits(), gpus);
        if let Some((_, m)) = self.measured.borrow().iter().find(|(k, _)| *k == key) {
            return Ok(m.clone());
        }
        let m = self.measure_afresh(x, gpus)?;
        self.measured.borrow_mut().push((key, m.clone()));
        Ok(m)
    }

    fn measure_afresh(&self, x: f64, gpus: Option<u32>) -> Result<Measure> {
        match &self.load {
            Load::Generated { seeds } => {
                let mut summaries = Vec::with_capacity(seeds.len());
                let mut op = None;
                for &seed in seeds {
                    let s = self.scenario(gpus, Some(x), Some(seed))?;
                    summaries.extend(summarise_workload(&s, &s.load_workload()?)?);
                    op = Some(s.cluster.operating);
                }
                Ok(Measure::of(&summaries, &op.unwrap_or_default()))
            }
            Load::Log { workload, .. } => {
                let s = self.scenario(gpus, None, None)?;
                let summaries = summarise_workload(&s, &workload.time_scaled(x)?)?;
                Ok(Measure::of(&summaries, &s.cluster.operating))
            }
        }
    }

    /// The point of the load as given: the scenario's rate for a generated load, the log at
    /// `time_scale` (default 1) times its rate.
    pub fn own_point(&self, time_scale: Option<f64>) -> Result<f64> {
        match &self.load {
            Load::Log { .. } => Ok(time_scale.unwrap_or(1.0)),
            Load::Generated { .. } => match self.scenario(None, None, None)?.workload {
                WorkloadSource::Synthetic(w) => Ok(w.arrival.mean_rate_per_s() * 60.0),
                WorkloadSource::Trace { .. } => Err(Error::config(
                    "the scenario replays a trace but the plan was made for a generated load",
                )),
            },
        }
    }

    /// The resolutions the policy can never serve within their SLOs on `gpus` GPUs (the
    /// scenario's own if `None`), over every seed's workload or the log (see
    /// [`crate::slo_fit::never_met`]), and the share of the requests they hold: attainment can
    /// never pass `1 - share`. Decided from the cost table, without running.
    pub fn never_met(&self, gpus: Option<u32>) -> Result<(Vec<NeverMet>, f64)> {
        let workloads: Vec<(Scenario, Workload)> = match &self.load {
            Load::Generated { seeds } => seeds
                .iter()
                .map(|&seed| {
                    let s = self.scenario(gpus, None, Some(seed))?;
                    let w = s.load_workload()?;
                    Ok((s, w))
                })
                .collect::<Result<_>>()?,
            Load::Log { workload, .. } => {
                vec![(self.scenario(gpus, None, None)?, workload.clone())]
            }
        };
        let mut all: Vec<NeverMet> = Vec::new();
        let mut total = 0usize;
        for (s, w) in &workloads {
            total += w.len();
            let Some(&kind) = s.policies.first() else {
                continue;
            };
            let found = crate::slo_fit::never_met(
                s.cost_model(),
                &s.cluster,
                &s.policy_config,
                kind,
                w,
                s.skipping.is_some(),
            )?;
            for n in found {
                match all.iter_mut().find(|a| a.resolution == n.resolution) {
                    Some(a) => {
                        a.requests += n.requests;
                        a.of += n.of;
                        a.lone = a.lone.min(n.lone);
                        a.slo = a.slo.max(n.slo);
                    }
                    None => all.push(n),
                }
            }
        }
        let never: usize = all.iter().map(|n| n.requests).sum();
        Ok((all, never as f64 / total.max(1) as f64))
    }

    /// Refuses a search whose target the policy can never reach because some resolutions
    /// can never meet their SLO (see [`Planner::never_met`]); where the target stays within
    /// reach, returns a warning naming them instead.
    pub fn check_reachable(&self, target: f64, gpus: Option<u32>) -> Result<Option<String>> {
        let (never, share) = self.never_met(gpus)?;
        if never.is_empty() {
            return Ok(None);
        }
        let list: Vec<String> = never.iter().map(NeverMet::describe).collect();
        let ceiling = 1.0 - share;
        let on = gpus.map_or_else(String::new, |g| format!(" on up to {g} GPUs"));
        let what = format!(
            "{}{on} can never meet the SLO of {}, so SLO attainment stays at or below {:.1}%",
            self.policy,
            list.join("; "),
            ceiling * 100.0
        );
        // A share of the requests computed as a float: allow for its rounding.
        if ceiling + 1e-9 < target {
            let res: Vec<String> = never.iter().map(|n| n.resolution.to_string()).collect();
            return Err(Error::config_hint(
                format!(
                    "{what}, below the target {:.1}%; no load or cluster size changes that",
                    target * 100.0
                ),
                format!(
                    "choose a policy that can use a larger degree for {r}, loosen the SLO (--slo-scale, or --slo-base {r0}=SECONDS), or leave {r} out of the workload",
                    r = res.join(", "),
                    r0 = res[0],
                ),
            ));
        }
        Ok(Some(what))
    }

    /// Requests behind each point of a search: the log's, or every seed's summed.
    pub fn requests_per_point(&self) -> Result<usize> {
        match &self.load {
            Load::Log { workload, .. } => Ok(workload.len()),
            Load::Generated { seeds } => seeds.iter().try_fold(0usize, |n, &seed| {
                Ok(n + self
                    .scenario(None, None, Some(seed))?
                    .load_workload()?
                    .len())
            }),
        }
    }

    /// A warning when a point rests on too few requests for `target` to mean something:
    /// fewer than [`MIN_ALLOWED_MISSES`] misses allowed (`requests x (1 - target)`), so that
    /// one miss moves attainment across much of the target's margin, or all of it.
    pub fn sample_warning(&self, target: f64) -> Result<Option<String>> {
        let n = self.requests_per_point()?;
        let allowed = n as f64 * (1.0 - target);
        if n == 0 || allowed >= MIN_ALLOWED_MISSES {
            return Ok(None);
        }
        let runs = match &self.load {
            Load::Log { .. } => "one replay of the log".to_string(),
            Load::Generated { seeds } => format!("{} seed(s)", seeds.len()),
        };
        Ok(Some(format!(
            "each point rests on {n} requests ({runs}): one miss moves attainment by {:.1} points, and the {:.0}% target allows {allowed:.1} misses (fewer than {MIN_ALLOWED_MISSES}), so the answer can swing on a single request; replay a longer log, or raise --requests or --seeds, before trusting it",
            100.0 / n as f64,
            target * 100.0,
        )))
    }

    /// The rate in requests per minute of a point `x` of [`Planner::measure`].
    pub fn rate_at(&self, x: f64) -> f64 {
        match &self.load {
            Load::Generated { .. } => x,
            Load::Log { rate_per_min, .. } => x * rate_per_min,
        }
    }

    /// The GPU counts a search may try, up to `max_gpus`: powers of two below the node size
    /// (one partial node), then whole nodes; for a pool, every count from 1. Sizes the policy cannot run on (a fixed degree
    /// larger than the node) or the cluster cannot have (odd nodes of NVLink pairs) are left out.
    pub fn gpu_candidates(&self, max_gpus: u32) -> Result<Vec<u32>> {
        if max_gpus > MAX_SEARCH_GPUS {
            return Err(Error::config_hint(
                format!(
                    "--max-gpus {max_gpus} is more than the {MAX_SEARCH_GPUS} GPUs the search covers"
                ),
                format!("give --max-gpus {MAX_SEARCH_GPUS} or less"),
            ));
        }
        if self.pool.is_some() {
            // A pool has no nodes: every count from one GPU.
            return Ok((1..=max_gpus).collect());
        }
        let per_node = self.scenario(None, None, None)?.cluster.gpus_per_node;
        let need = match self.policy.parse::<PolicyKind>() {
            Ok(PolicyKind::XditSp(k)) => k,
            _ => 1,
        };
        let mut sizes: Vec<u32> = (0..32)
            .map(|i| 1u32 << i)
            .take_while(|&g| g < per_node)
            .collect();
        sizes.extend(
            (1..)
                .map(|n| n * per_node)
                .take_while(|&g| g <= max_gpus.max(per_node)),
        );
        sizes.retain(|&g| g <= max_gpus && g.min(per_node) >= need);
        sizes.retain(|&g| self.scenario(Some(g), None, None).is_ok());
        Ok(sizes)
    }
}

/// The largest cluster `--min-gpus` tries: every whole-node size up to it is a candidate, each
/// checked against the scenario, so the bound keeps the search's set-up short.
pub const MAX_SEARCH_GPUS: u32 = 16_384;

/// The fewest misses a target must allow at a point (`requests x (1 - target)`) before the
/// searches stop warning that the answer rests on too few requests: with fewer, a miss or two
/// more or less (one request's luck) decides whether the target is met.
pub const MIN_ALLOWED_MISSES: f64 = 5.0;

/// How a search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchEnd {
    /// The target is met at the answer and missed one step beyond it.
    Found,
    /// Met even at the top of the range: the answer is at least the top.
    AtTop,
    /// Missed even at the bottom of the range: there is no answer in it.
    BelowRange,
}

impl SearchEnd {
    fn name(self) -> &'static str {
        match self {
            SearchEnd::Found => "found",
            SearchEnd::AtTop => "at-top-of-range",
            SearchEnd::BelowRange => "below-range",
        }
    }
}

/// The result of [`rate_search`].
#[derive(Clone, Debug, PartialEq)]
pub struct RateSearch {
    pub outcome: SearchEnd,
    /// The highest point (rate or scale) found to meet the target, and its measure.
    pub best: Option<(f64, Measure)>,
    /// The lowest point found to miss it (the bracket's other side), and its measure.
    pub missed: Option<(f64, Measure)>,
    pub points: usize,
}

/// Bisects `[lo, hi]` (rates or scales, as [`Planner::measure`] takes them) for the highest
/// point whose attainment is at least `target`, until the bracket is narrower than
/// `tolerance` in the same unit. Measures both ends first.
pub fn rate_search(
    planner: &Planner,
    target: f64,
    (lo, hi): (f64, f64),
    tolerance: f64,
    gpus: Option<u32>,
) -> Result<RateSearch> {
    let mut points = 0;
    let mut at = |x: f64| {
        points += 1;
        planner.measure(x, gpus)
    };
    let low = at(lo)?;
    if !planner.meets(&low, target) {
        return Ok(RateSearch {
            outcome: SearchEnd::BelowRange,
            best: None,
            missed: Some((lo, low)),
            points,
        });
    }
    let high = at(hi)?;
    if planner.meets(&high, target) {
        return Ok(RateSearch {
            outcome: SearchEnd::AtTop,
            best: Some((hi, high)),
            missed: None,
            points,
        });
    }
    let (mut good, mut bad) = ((lo, low), (hi, high));
    while bad.0 - good.0 > tolerance {
        let mid = (good.0 + bad.0) / 2.0;
        if mid <= good.0 || mid >= bad.0 {
            // Adjacent floats: no tolerance smaller than this can be reached, so the search
            // ends after at most about 60 halvings whatever --tolerance says.
            break;
        }
        let m = at(mid)?;
        if planner.meets(&m, target) {
            good = (mid, m);
        } else {
            bad = (mid, m);
        }
    }
    Ok(RateSearch {
        outcome: SearchEnd::Found,
        best: Some(good),
        missed: Some(bad),
        points,
    })
}

/// The result of [`gpu_search`].
#[derive(Clone, Debug, PartialEq)]
pub struct GpuSearch {
    pub outcome: SearchEnd,
    /// The fewest GPUs found to meet the target, and the measure there.
    pub best: Option<(u32, Measure)>,
    /// One step below: the largest size that misses it (none when the answer is the
    /// smallest size, or there is none), and the measure there.
    pub below: Option<(u32, Measure)>,
    /// The sizes searched, ascending.
    pub candidates: Vec<u32>,
    pub points: usize,
}

/// The fewest of `candidates` GPUs (ascending) at which the load at `x` meets `target`:
/// both ends measured first, then bisection on the assumption that attainment rises with GPUs.
pub fn gpu_search(
    planner: &Planner,
    target: f64,
    x: f64,
    candidates: Vec<u32>,
) -> Result<GpuSearch> {
    let (Some(&first), Some(&last)) = (candidates.first(), candidates.last()) else {
        return Err(Error::config_hint(
            "no cluster size fits the policy, the node size and --max-gpus",
            "raise --max-gpus, or choose a policy whose degree fits the nodes",
        ));
    };
    let mut points = 0;
    let mut at = |g: u32| {
        points += 1;
        planner.measure(x, Some(g))
    };
    let top = at(last)?;
    if !planner.meets(&top, target) {
        return Ok(GpuSearch {
            outcome: SearchEnd::BelowRange,
            best: None,
            below: Some((last, top)),
            candidates,
            points,
        });
    }
    if candidates.len() == 1 {
        return Ok(GpuSearch {
            outcome: SearchEnd::Found,
            best: Some((last, top)),
            below: None,
            candidates,
            points,
        });
    }
    let bottom = at(first)?;
    if planner.meets(&bottom, target) {
        return Ok(GpuSearch {
            outcome: SearchEnd::Found,
            best: Some((first, bottom)),
            below: None,
            candidates,
            points,
        });
    }
    // Invariant: candidates[lo] misses, candidates[hi] meets.
    let (mut lo, mut hi) = ((0, bottom), (candidates.len() - 1, top));
    while hi.0 - lo.0 > 1 {
        let mid = (lo.0 + hi.0) / 2;
        let m = at(candidates[mid])?;
        if planner.meets(&m, target) {
            hi = (mid, m);
        } else {
            lo = (mid, m);
        }
    }
    Ok(GpuSearch {
        outcome: SearchEnd::Found,
        best: Some((candidates[hi.0], hi.1)),
        below: Some((candidates[lo.0], lo.1)),
        candidates,
        points,
    })
}
