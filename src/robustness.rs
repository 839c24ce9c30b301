//! The robustness search (`tetriserve robustness`): random configurations built to break the
//! best policy, every policy run on each, and the distribution of how far the best policy
//! falls below the best fixed baseline.
//!
//! A claim such as "`stepwise` beats every baseline" is only as good as the workloads it was
//! tried on. The paper grids are one 8-GPU node, so this search samples far wider: 1 to 4
//! nodes of 2, 4 or 8 GPUs, two-resolution mixes (small beside huge is the hard case) and the
//! paper's mixes, 8 to 50 steps, Poisson, bursty gamma, constant and on-off arrivals, SLOs
//! from 0.5x to 3x, offered loads from a fifth of the cluster's capacity to twice it, dispatch,
//! hand-off and group set-up costs, approximate caching and run-time step skipping.
//!
//! Each configuration is a scenario layer laid over the default scenario, written out as a
//! scenario file, so that any configuration the search reports can be replayed with
//! `tetriserve simulate -s FILE`. Configuration `i` of sampler seed `s` is drawn from its own
//! random stream, so it does not depend on how many configurations run or in which order.
//!
//! The load is set from the workload itself: the mean least GPU-time of its requests (every
//! step at the cheapest degree, batch 1) gives the requests per minute the cluster could
//! serve if nothing were ever late; the rate is `load` times that.
//!
//! Each configuration also draws TetriServe's knobs from their whole accepted range (a round
//! of 1 to 1,000 reference steps or a fixed 1 ms to 1 hour, log-uniform; either tie-break),
//! and runs `tetriserve` with them beside its defaults: a knob value whose attainment
//! collapses far below the defaults' is listed like the worst configurations.

use std::path::Path;

use rand::RngExt;
use rayon::prelude::*;
use serde::Serialize;

use crate::cluster::Link;
use crate::error::{Error, Result};
use crate::policy::PolicyKind;
use crate::scenario::{RawScenario, Scenario};
use crate::workload::rng::stream_rng;

/// The most configurations one search runs.
pub const MAX_CONFIGS: usize = 100_000;
/// The most requests per run.
pub const MAX_REQUESTS: usize = 100_000;
/// The most seeds per configuration.
pub const MAX_SEEDS: usize = 100;

/// What a search runs.
#[derive(Clone, Debug)]
pub struct SearchSpec {
    /// How many configurations to sample.
    pub configs: usize,
    /// The seed of the sampler (which configurations are drawn).
    pub sampler_seed: u64,
    /// The workload seeds each configuration runs with (the mean over them is compared).
    pub seeds: Vec<u64>,
    /// Requests per run.
    pub requests: usize,
    /// The policy whose robustness is measured.
    pub policy: PolicyKind,
}

/// One sampled configuration: the scenario keys it sets over the default scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SampledConfig {
    pub index: usize,
    pub nodes: u32,
    pub gpus_per_node: u32,
    pub mix: String,
    pub steps: u32,
    pub arrival: String,
    pub cv: Option<f64>,
    pub on_s: Option<f64>,
    pub off_s: Option<f64>,
    /// Offered load as a fraction of the cluster's capacity (1 = every GPU busy on the
    /// requests' least GPU-time).
    pub load: f64,
    pub slo_scale: f64,
    pub dispatch_ms: f64,
    pub remap_fraction: f64,
    pub group_setup_ms: f64,
    pub group_setup_on_regroup: bool,
    pub cache: bool,
    pub skip_probability: f64,
    /// TetriServe's round: `granularity` steps of the reference request, or `tau_ms`.
    pub granularity: Option<u32>,
    pub tau_ms: Option<f64>,
    /// TetriServe's tie-break (`none` or `work`).
    pub tie_break: String,
}

/// A knob run this many points below TetriServe's defaults counts as a collapse.
pub const COLLAPSE_POINTS: f64 = 20.0;

/// Rounds to 3 decimals, so that written scenario files read well and replay exactly.
fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl SampledConfig {
    /// Configuration `index` of the sampler seeded `sampler_seed`.
    pub fn sample(sampler_seed: u64, index: usize) -> SampledConfig {
        let mut rng = stream_rng(sampler_seed, &format!("robustness:{index}"));
        let nodes = rng.random_range(1..=4u32);
        let gpus_per_node = [2u32, 4, 8][rng.random_range(0..3usize)];
        let mix = if rng.random_bool(0.5) {
            let sizes = [256u32, 512, 1024, 2048];
            let a = rng.random_range(0..4usize);
            let b = (a + rng.random_range(1..4usize)) % 4;
            let (small, large) = (sizes[a.min(b)], sizes[a.max(b)]);
            format!(
                "custom:{small}={},{large}={}",
                rng.random_range(1..=9u32),
                rng.random_range(1..=3u32)
            )
        } else {
            ["uniform", "skewed"][rng.random_range(0..2usize)].to_string()
        };
        let steps = rng.random_range(8..=50u32);
        let (arrival, cv, on_s, off_s) = match rng.random_range(0..4u32) {
            0 => ("poisson", None, None, None),
            1 => ("gamma", Some(r3(rng.random_range(1.5..4.0))), None, None),
            2 => ("constant", None, None, None),
            _ => (
                "on-off",
                None,
                Some(r3(rng.random_range(5.0..60.0))),
                Some(r3(rng.random_range(5.0..120.0))),
            ),
        };
        // Log-uniform: as many configurations between 0.5x and 1x as between 1x and 2x.
        let slo_scale = r3(2f64.powf(rng.random_range(-1.0..(3f64).log2())));
        let load = r3(rng.random_range(0.2..2.0));
        let dispatch_ms = if rng.random_bool(0.5) {
            r3(rng.random_range(0.0..5.0))
        } else {
            0.0
        };
        let remap_fraction = if rng.random_bool(0.5) {
            r3(rng.random_range(0.0..0.05))
        } else {
            0.0005
        };
        let group_setup_ms = if rng.random_bool(0.3) {
            r3(rng.random_range(0.0..50.0))
        } else {
            0.0
        };
        let group_setup_on_regroup = rng.random_bool(0.3);
        let cache = rng.random_bool(0.25);
        let skip_probability = if rng.random_bool(0.25) {
            r3(rng.random_range(0.1..0.4))
        } else {
            0.0
        };
        // Drawn last, so that the workload keys above do not depend on them. Log-uniform over
        // the accepted ranges (config.rs bounds both).
        let (granularity, tau_ms) = if rng.random_bool(0.5) {
            let max = f64::from(crate::policy::tetriserve::MAX_GRANULARITY);
            let g = max.powf(rng.random_range(0.0..=1.0)).round() as u32;
            (Some(g.max(1)), None)
        } else {
            use crate::policy::tetriserve::{MAX_TAU_MS, MIN_TAU_MS};
            let t = MIN_TAU_MS * (MAX_TAU_MS / MIN_TAU_MS).powf(rng.random_range(0.0..=1.0));
            (None, Some(r3(t).clamp(MIN_TAU_MS, MAX_TAU_MS)))
        };
        let tie_break = ["none", "work"][rng.random_range(0..2usize)].to_string();
        SampledConfig {
            index,
            nodes,
            gpus_per_node,
            mix,
            steps,
            arrival: arrival.to_string(),
            cv,
            on_s,
            off_s,
            load,
            slo_scale,
            dispatch_ms,
            remap_fraction,
            group_setup_ms,
            group_setup_on_regroup,
            cache,
            skip_probability,
            granularity,
            tau_ms,
            tie_break,
        }
    }

    /// TetriServe's knobs as drawn, for a human (`granularity 12, tie-break work`).
    pub fn knobs(&self) -> String {
        let round = match (self.granularity, self.tau_ms) {
            (Some(g), _) => format!("granularity {g}"),
            (None, Some(t)) => format!("tau {t} ms"),
            (None, None) => "default round".to_string(),
        };
        format!("{round}, tie-break {}", self.tie_break)
    }

    /// The scenario file that runs `tetriserve` alone with the drawn knobs.
    pub fn knob_scenario_toml(&self, rate_per_min: f64, requests: usize) -> String {
        let mut s = self.scenario_toml_running(rate_per_min, requests, "\"tetriserve\"");
        s.push_str("\n[policy.tetriserve]\n");
        if let Some(g) = self.granularity {
            s.push_str(&format!("granularity_steps = {g}\n"));
        }
        if let Some(t) = self.tau_ms {
            s.push_str(&format!("tau_ms = {t:?}\n"));
        }
        s.push_str(&format!("tie_break = \"{}\"\n", self.tie_break));
        s
    }

    /// The scenario file of this configuration at `rate_per_min`: only what differs from the
    /// default scenario, which `tetriserve simulate -s FILE` lays it over.
    pub fn scenario_toml(&self, rate_per_min: f64, requests: usize, policy: PolicyKind) -> String {
        let run = format!("\"all\", \"tetriserve-shed\", \"{policy}\"");
        self.scenario_toml_running(rate_per_min, requests, &run)
    }

    /// The scenario file with `[policy] run = [run]`.
    fn scenario_toml_running(&self, rate_per_min: f64, requests: usize, run: &str) -> String {
        let mut s = format!(
            "# Robustness search configuration {i} (load {load} of capacity).\n\
             name = \"robustness-{i}\"\n\n\
             [cluster]\nnodes = {nodes}\ngpus_per_node = {gpn}\n\n\
             [overheads]\ndispatch_ms = {dispatch:?}\nremap_fraction = {remap:?}\n\
             group_setup_ms = {setup:?}\ngroup_setup_on_regroup = {regroup}\n\n\
             [workload]\nrequests = {requests}\narrival = \"{arrival}\"\nrate_per_min = {rate:?}\n",
            i = self.index,
            load = self.load,
            nodes = self.nodes,
            gpn = self.gpus_per_node,
            dispatch = self.dispatch_ms,
            remap = self.remap_fraction,
            setup = self.group_setup_ms,
            regroup = self.group_setup_on_regroup,
            arrival = self.arrival,
            rate = r3(rate_per_min),
        );
        if let Some(cv) = self.cv {
            s.push_str(&format!("cv = {cv:?}\n"));
        }
        if let (Some(on), Some(off)) = (self.on_s, self.off_s) {
            s.push_str(&format!("on_s = {on:?}\noff_s = {off:?}\n"));
        }
        s.push_str(&format!("mix = \"{}\"\nsteps = {}\n", self.mix, self.steps));
        if self.cache {
            s.push_str("\n[workload.cache]\nenabled = true\n");
        }
        if self.skip_probability > 0.0 {
            s.push_str(&format!(
                "\n[workload.skipping]\nprobability = {:?}\n",
                self.skip_probability
            ));
        }
        s.push_str(&format!(
            "\n[slo]\nscale = {:?}\n\n[policy]\nrun = [{run}]\n",
            self.slo_scale
        ));
        s
    }
}

/// One configuration's result: every policy's mean attainment over the seeds.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigResult {
    pub config: SampledConfig,
    pub rate_per_min: f64,
    /// (policy, mean attainment in percent), in the scenario's policy order.
    pub attainment: Vec<(String, f64)>,
    /// The best fixed baseline (xDiT at a fixed degree, or RSSP) and its mean attainment.
    pub best_baseline: (String, f64),
    /// The measured policy's mean attainment.
    pub policy: f64,
    /// The mean upper bound on attainment over the seeds, percent.
    pub bound: f64,
    /// The scenario file that replays it.
    pub scenario: String,
    /// `tetriserve`'s mean attainment with its default knobs and with the drawn ones.
    pub tetriserve_default: f64,
    pub tetriserve_knobs: f64,
    /// The scenario file that replays the knob run.
    pub knob_scenario: String,
}

impl ConfigResult {
    /// The measured policy minus the best fixed baseline, in points.
    pub fn gap(&self) -> f64 {
        self.policy - self.best_baseline.1
    }

    /// `tetriserve` with the drawn knobs minus with its defaults, in points.
    pub fn knob_gap(&self) -> f64 {
        self.tetriserve_knobs - self.tetriserve_default
    }
}

fn is_baseline(name: &str) -> bool {
    name == "rssp" || name.starts_with("xdit-sp")
}

/// The scenario of one configuration at one rate, validated.
fn scenario(text: &str, index: usize) -> Result<Scenario> {
    let source = format!("<robustness configuration {index}>");
    let raw =
        RawScenario::parse(text, &source, Path::new("."))?.or(RawScenario::default_scenario());
    Scenario::from_raw(raw, &source)
}

/// The rate at which configuration `c` offers `c.load` of its cluster's capacity.
fn rate_for(c: &SampledConfig, search: &SearchSpec) -> Result<f64> {
    let probe_text = c.scenario_toml(12.0, search.requests, search.policy);
    let probe = scenario(&probe_text, c.index)?;
    let workload = probe.load_workload()?;
    let model = probe.cost_model();
    let mut gpu_ns = 0f64;
    for r in &workload.requests {
        let step = model.step_time(r.resolution, 1, 1, Link::NvLink)?;
        gpu_ns += step.0 as f64 * f64::from(r.steps);
    }
    let per_request_s = gpu_ns / 1e9 / workload.requests.len().max(1) as f64;
    let gpus = f64::from(c.nodes * c.gpus_per_node);
    Ok(c.load * gpus * 60.0 / per_request_s.max(1e-9))
}

/// Runs configuration `index` on every seed.
pub fn run_one(search: &SearchSpec, index: usize) -> Result<ConfigResult> {
    let c = SampledConfig::sample(search.sampler_seed, index);
    let rate = r3(rate_for(&c, search)?).max(0.001);
    let text = c.scenario_toml(rate, search.requests, search.policy);
    let base = scenario(&text, index)?;
    let knob_text = c.knob_scenario_toml(rate, search.requests);
    let knob_base = scenario(&knob_text, index)?;
    let mut sums: Vec<(String, f64)> = Vec::new();
    let mut bound = 0.0;
    let mut knobs = 0.0;
    let with_seed = |base: &Scenario, seed: u64| {
        let mut s = base.clone();
        s.seed = seed;
        if let crate::scenario::WorkloadSource::Synthetic(spec) = &mut s.workload {
            spec.seed = seed;
        }
        s
    };
    for &seed in &search.seeds {
        let k = with_seed(&knob_base, seed);
        for sm in crate::simulate::summarise_workload(&k, &k.load_workload()?)? {
            knobs += sm.slo_attainment * 100.0 / search.seeds.len() as f64;
        }
        let s = with_seed(&base, seed);
        let workload = s.load_workload()?;
        let summaries = crate::simulate::summarise_workload(&s, &workload)?;
        for sm in summaries {
            bound += sm.slo_attainment_bound.unwrap_or(1.0) * 100.0
                / (search.seeds.len() as f64 * s.policies.len() as f64);
            match sums.iter_mut().find(|(p, _)| *p == sm.policy) {
                Some(e) => e.1 += sm.slo_attainment * 100.0,
                None => sums.push((sm.policy.clone(), sm.slo_attainment * 100.0)),
            }
        }
    }
    let n = search.seeds.len() as f64;
    for e in &mut sums {
        e.1 /= n;
    }
    let best_baseline = sums
        .iter()
        .filter(|(p, _)| is_baseline(p))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .cloned()
        .ok_or_else(|| Error::config("no fixed baseline fits the cluster"))?;
    let name = search.policy.to_string();
    let policy = sums
        .iter()
        .find(|(p, _)| *p == name)
        .map(|(_, a)| *a)
        .ok_or_else(|| Error::config(format!("policy {name} did not run")))?;
    let tetriserve_default = sums
        .iter()
        .find(|(p, _)| p == "tetriserve")
        .map(|(_, a)| *a)
        .ok_or_else(|| Error::config("tetriserve did not run"))?;
    Ok(ConfigResult {
        config: c,
        rate_per_min: rate,
        attainment: sums,
        best_baseline,
        policy,
        bound,
        scenario: text,
        tetriserve_default,
        tetriserve_knobs: knobs,
        knob_scenario: knob_text,
    })
}

/// Runs every configuration of `search` (in parallel), calling `done` after each; the
/// outcomes are in configuration order whatever the threads.
pub fn run(search: &SearchSpec, done: &(dyn Fn() + Sync)) -> Result<Vec<ConfigResult>> {
    if search.configs == 0 || search.configs > MAX_CONFIGS {
        return Err(Error::config_hint(
            format!(
                "--configs {}: expected 1 to {MAX_CONFIGS} configurations",
                search.configs
            ),
            "e.g. --configs 200",
        ));
    }
    if search.seeds.is_empty() || search.seeds.len() > MAX_SEEDS {
        return Err(Error::config_hint(
            format!("--seeds: expected 1 to {MAX_SEEDS} seeds"),
            "e.g. --seeds 1,2",
        ));
    }
    if search.requests == 0 || search.requests > MAX_REQUESTS {
        return Err(Error::config_hint(
            format!(
                "--requests {}: expected 1 to {MAX_REQUESTS} requests per run",
                search.requests
            ),
            "e.g. --requests 150",
        ));
    }
    (0..search.configs)
        .into_par_iter()
        .map(|i| {
            let r = run_one(search, i);
            done();
            r
        })
        .collect()
}

/// The distribution of gaps, and the worst configurations.
#[derive(Clone, Debug, Serialize)]
pub struct GapDistribution {
    pub configs: usize,
    pub seeds: Vec<u64>,
    pub policy: String,
    pub mean_gap: f64,
    pub min_gap: f64,
    /// Gap percentiles (nearest rank): 1, 5, 10, 25, 50.
    pub percentiles: Vec<(u32, f64)>,
    /// Configurations where the policy is more than 2 points below the best baseline.
    pub below_2: usize,
    /// Configurations where it is below at all (by more than 0.05 points).
    pub below: usize,
    /// `tetriserve` with the drawn knobs minus its defaults: mean, worst, and how many
    /// configurations collapse (more than [`COLLAPSE_POINTS`] below the defaults).
    pub knob_mean_gap: f64,
    pub knob_min_gap: f64,
    pub knob_collapses: usize,
}

pub fn report(search: &SearchSpec, outcomes: &[ConfigResult]) -> GapDistribution {
    let mut gaps: Vec<f64> = outcomes.iter().map(ConfigResult::gap).collect();
    gaps.sort_by(f64::total_cmp);
    let pick = |p: u32| {
        let rank = ((f64::from(p) / 100.0) * gaps.len() as f64).ceil() as usize;
        gaps[rank.clamp(1, gaps.len()) - 1]
    };
    GapDistribution {
        configs: outcomes.len(),
        seeds: search.seeds.clone(),
        policy: search.policy.to_string(),
        mean_gap: gaps.iter().sum::<f64>() / gaps.len().max(1) as f64,
        min_gap: gaps.first().copied().unwrap_or(0.0),
        percentiles: [1, 5, 10, 25, 50].map(|p| (p, pick(p))).to_vec(),
        below_2: gaps.iter().filter(|g| **g < -2.0).count(),
        below: gaps.iter().filter(|g| **g < -0.05).count(),
        knob_mean_gap: outcomes.iter().map(ConfigResult::knob_gap).sum::<f64>()
            / outcomes.len().max(1) as f64,
        knob_min_gap: outcomes
            .iter()
            .map(ConfigResult::knob_gap)
            .min_by(f64::total_cmp)
            .unwrap_or(0.0),
        knob_collapses: outcomes
            .iter()
            .filter(|o| o.knob_gap() < -COLLAPSE_POINTS)
            .count(),
    }
}

/// The outcomes from the worst knob gap up, `n` of them.
pub fn worst_knobs(outcomes: &[ConfigResult], n: usize) -> Vec<&ConfigResult> {
    worst_by(outcomes, n, ConfigResult::knob_gap)
}

/// The outcomes from the worst gap up, `n` of them.
pub fn worst(outcomes: &[ConfigResult], n: usize) -> Vec<&ConfigResult> {
    worst_by(outcomes, n, ConfigResult::gap)
}

/// The `n` outcomes with the lowest `gap`, lowest first (ties by configuration index).
fn worst_by(
    outcomes: &[ConfigResult],
    n: usize,
    gap: fn(&ConfigResult) -> f64,
) -> Vec<&ConfigResult> {
    let mut v: Vec<&ConfigResult> = outcomes.iter().collect();
    v.sort_by(|a, b| {
        gap(a)
            .total_cmp(&gap(b))
            .then(a.config.index.cmp(&b.config.index))
    });
    v.truncate(n);
    v
}

/// One CSV row per configuration: its keys, the rate, the baseline, the policy and the gap.
pub fn to_csv(outcomes: &[ConfigResult]) -> String {
    let mut out = String::from(
        "index,nodes,gpus_per_node,mix,steps,arrival,cv,on_s,off_s,load,rate_per_min,slo_scale,dispatch_ms,remap_fraction,group_setup_ms,group_setup_on_regroup,cache,skip_probability,best_baseline,best_baseline_attainment,policy_attainment,gap,bound,granularity,tau_ms,tie_break,tetriserve_default,tetriserve_knobs\n",
    );
    let opt = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
    for o in outcomes {
        let c = &o.config;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{},{},{},{:.3},{:.3}\n",
            c.index,
            c.nodes,
            c.gpus_per_node,
            crate::sweep::results::csv_field(&c.mix),
            c.steps,
            c.arrival,
            opt(c.cv),
            opt(c.on_s),
            opt(c.off_s),
            c.load,
            o.rate_per_min,
            c.slo_scale,
            c.dispatch_ms,
            c.remap_fraction,
            c.group_setup_ms,
            c.group_setup_on_regroup,
            c.cache,
            c.skip_probability,
            o.best_baseline.0,
            o.best_baseline.1,
            o.policy,
            o.gap(),
            o.bound,
            c.granularity.map(|g| g.to_string()).unwrap_or_default(),
            opt(c.tau_ms),
            c.tie_break,
            o.tetriserve_default,
            o.tetriserve_knobs,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every configuration the sampler draws is a scenario the reader accepts and validates,
    /// and drawing it again gives the same one (it depends on its index only).
    #[test]
    fn sampled_configurations_are_valid_scenarios_and_reproducible() {
        for i in 0..200 {
            let c = SampledConfig::sample(7, i);
            assert_eq!(c, SampledConfig::sample(7, i));
            assert!((1..=4).contains(&c.nodes) && [2, 4, 8].contains(&c.gpus_per_node));
            let text = c.scenario_toml(10.0, 20, PolicyKind::Stepwise);
            let s = scenario(&text, i).unwrap_or_else(|e| panic!("{i}: {e}\n{text}"));
            assert_eq!(s.cluster.total_gpus(), c.nodes * c.gpus_per_node);
            assert!(s.policies.contains(&PolicyKind::Stepwise));
        }
        assert_ne!(SampledConfig::sample(7, 0), SampledConfig::sample(8, 0));
    }

    /// The load sets the rate: twice the load, twice the rate, on the same requests.
    #[test]
    fn the_rate_is_proportional_to_the_load() {
        let search = SearchSpec {
            configs: 1,
            sampler_seed: 1,
            seeds: vec![1],
            requests: 30,
            policy: PolicyKind::Stepwise,
        };
        let mut c = SampledConfig::sample(1, 3);
        c.load = 0.5;
        let half = rate_for(&c, &search).unwrap();
        c.load = 1.0;
        let full = rate_for(&c, &search).unwrap();
        assert!(
            half > 0.0 && (full / half - 2.0).abs() < 1e-9,
            "{half} {full}"
        );
    }
}
