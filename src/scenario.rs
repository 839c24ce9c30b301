//! Scenarios: what to simulate, read from TOML, overridden from the command line, and
//! validated into a typed [`Scenario`] before anything runs.
//!
//! Parsing and validation are separate steps (as ripgrep's low/high args): [`RawScenario`]
//! mirrors the file with every key optional; a file only states what differs from the embedded
//! default scenario (`scenarios/default.toml`), onto which it is merged. [`Scenario::from_raw`]
//! checks everything (cluster shape, rates, policies against the cluster, the cost source) and
//! reports problems naming the file and the key, before a single event is simulated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, Topology};
use crate::cost::analytic::Analytic;
use crate::cost::profile::ProfileTable;
use crate::cost::{CostModel, Overheads};
use crate::error::{Error, InputError, Result};
use crate::policy::tetriserve::{RoundLength, ShedConfig, ShedRule, TieBreak};
use crate::policy::{PolicyConfig, PolicyKind, TetriserveConfig};
use crate::time::Nanos;
use crate::workload::arrival::ArrivalProcess;
use crate::workload::cache::CacheSpec;
use crate::workload::generate::WorkloadSpec;
use crate::workload::mix::{Sampling, parse_mix};
use crate::workload::prompt::Popularity;
use crate::workload::skipping::SkipSpec;
use crate::workload::trace::SloDefaults;
use crate::workload::{Resolution, SloBases, Workload};

/// The default scenario, embedded so that `tetriserve simulate` needs no files.
pub const DEFAULT_SCENARIO: &str = include_str!("../scenarios/default.toml");
const DEFAULT_SOURCE: &str = "<embedded scenarios/default.toml>";

/// A scenario file as written: every key optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: Option<String>,
    pub description: Option<String>,
    pub seed: Option<u64>,
    #[serde(default)]
    pub cluster: RawCluster,
    #[serde(default)]
    pub cost: RawCost,
    #[serde(default)]
    pub overheads: RawOverheads,
    #[serde(default)]
    pub workload: RawWorkload,
    #[serde(default)]
    pub slo: RawSlo,
    #[serde(default)]
    pub policy: RawPolicy,
    /// A grid of runs for `tetriserve sweep`; every list left out is the scenario's value.
    pub sweep: Option<RawSweep>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawSweep {
    pub policies: Option<Vec<String>>,
    pub mixes: Option<Vec<String>>,
    pub rates_per_min: Option<Vec<f64>>,
    pub slo_scales: Option<Vec<f64>>,
    pub seeds: Option<Vec<u64>>,
    pub granularity_steps: Option<Vec<u32>>,
    /// Coefficients of variation of gamma arrivals (`[workload] arrival = "gamma"`).
    pub cvs: Option<Vec<f64>>,
    /// Total GPUs of the cluster (split as `--gpus` splits them).
    pub gpus: Option<Vec<u32>>,
    /// Denoising steps per request.
    pub steps: Option<Vec<u32>>,
    /// Cost profiles: built-in names or CSV paths (relative to the scenario file).
    pub profiles: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub gpu: Option<String>,
    pub nodes: Option<u32>,
    pub gpus_per_node: Option<u32>,
    pub topology: Option<String>,
    /// US dollars per GPU-hour (default: the built-in assumption for `gpu`).
    pub gpu_price_per_hour: Option<f64>,
    /// Watts drawn by a busy GPU (default: the board power of `gpu`).
    pub gpu_power_w: Option<f64>,
    /// Watts drawn by an idle GPU (default 0: idle energy not modelled).
    pub gpu_idle_power_w: Option<f64>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCost {
    /// Built-in profile name or CSV path.
    pub profile: Option<String>,
    /// Use the analytic model instead of a profile: `{ model = "flux1-dev", gpu = "h100" }`.
    pub analytic: Option<RawAnalytic>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnalytic {
    pub model: String,
    pub gpu: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverheads {
    pub text_encoder_ms: Option<f64>,
    pub vae_decode_ms_per_1k_tokens: Option<f64>,
    pub remap_fraction: Option<f64>,
    pub group_setup_ms: Option<f64>,
    pub group_setup_on_regroup: Option<bool>,
    pub dispatch_ms: Option<f64>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    /// Replay this trace instead of generating requests.
    pub trace: Option<String>,
    pub requests: Option<usize>,
    /// `poisson`, `gamma`, `constant` or `on-off`.
    pub arrival: Option<String>,
    pub rate_per_min: Option<f64>,
    /// Coefficient of variation of inter-arrival gaps (`gamma`).
    pub cv: Option<f64>,
    /// Burst and silence lengths (`on-off`).
    pub on_s: Option<f64>,
    pub off_s: Option<f64>,
    pub mix: Option<String>,
    /// `stratified` or `iid`.
    pub sampling: Option<String>,
    pub steps: Option<u32>,
    /// Replay `trace` at this many times its rate (arrival times divided by it).
    pub time_scale: Option<f64>,
    /// Approximate caching (Nirvana): `[workload.cache]`.
    #[serde(default)]
    pub cache: RawCache,
    /// Run-time step skipping: `[workload.skipping]`.
    #[serde(default)]
    pub skipping: RawSkipping,
}

/// `[workload.cache]`: an approximate cache that lets requests with a cached prompt skip
/// their first steps (`workload/cache.rs`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub enabled: Option<bool>,
    /// Entries (prompts) the cache holds.
    pub capacity: Option<usize>,
    /// Prompts inserted before the measured run.
    pub warmup_requests: Option<usize>,
    /// `zipf` or `none` (generated requests carry no prompt).
    pub popularity: Option<String>,
    pub zipf_s: Option<f64>,
    /// Catalogue size of the Zipf law.
    pub prompts: Option<u64>,
    /// Steps a hit skips, and their weights.
    pub skip_steps: Option<Vec<u32>>,
    pub skip_weights: Option<Vec<f64>>,
}

/// `[workload.skipping]`: run-time step skipping (`workload/skipping.rs`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawSkipping {
    /// Chance that a step after a request's first `keep_first_steps` is skipped (0: off).
    pub probability: Option<f64>,
    /// Steps at the start of every request that always compute (default 1).
    pub keep_first_steps: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlo {
    pub scale: Option<f64>,
    #[serde(default)]
    pub bases_s: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub run: Option<Vec<String>>,
    #[serde(default)]
    pub rssp: RawRssp,
    #[serde(default)]
    pub tetriserve: RawTetriserve,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTetriserve {
    /// Round length in steps of the reference request (default 5).
    pub granularity_steps: Option<u32>,
    /// A fixed round length instead, milliseconds.
    pub tau_ms: Option<f64>,
    /// `work` (default) or `none`.
    pub tie_break: Option<String>,
    /// Drop requests late by more than this many seconds (default: never).
    pub drop_late_after_s: Option<f64>,
    /// Plan with round-quantised step times (default true).
    pub round_aware_plans: Option<bool>,
    /// Run as many steps as fit a round (default true) instead of the plan part's share.
    pub fill_rounds: Option<bool>,
    /// Plan idle GPUs for the rest of the round when work completes or requests arrive.
    pub backfill: Option<bool>,
    /// Batch identical small-resolution requests (default false).
    pub batching: Option<bool>,
    /// Move the round length to where whole steps waste the least of it (default true).
    pub snap_rounds: Option<bool>,
    /// `tetriserve-shed`: which unit to shed first, `largest-work` (default) or `latest-deadline`.
    pub shed_rule: Option<String>,
    /// `tetriserve-shed`: fraction of the node's GPU-seconds the overload test counts (default 1.0).
    pub shed_capacity: Option<f64>,
    /// `tetriserve-shed`: drop shed requests instead of serving them best-effort (default false).
    pub shed_drop: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRssp {
    #[serde(default)]
    pub degrees: BTreeMap<String, u32>,
}

/// Command-line values that replace the scenario's (`None` = keep the scenario's).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub policies: Vec<String>,
    pub seed: Option<u64>,
    pub rate_per_min: Option<f64>,
    pub slo_scale: Option<f64>,
    pub requests: Option<usize>,
    pub mix: Option<String>,
    pub arrival: Option<String>,
    pub cv: Option<f64>,
    pub on_s: Option<f64>,
    pub off_s: Option<f64>,
    pub steps: Option<u32>,
    pub trace: Option<PathBuf>,
    pub time_scale: Option<f64>,
    pub profile: Option<String>,
    pub gpus: Option<u32>,
    pub nodes: Option<u32>,
    pub gpus_per_node: Option<u32>,
    pub granularity_steps: Option<u32>,
    pub tau_ms: Option<f64>,
    pub tie_break: Option<String>,
}

/// One flag an [`Overrides`] sets: its name, the scenario key it replaces and its value as
/// typed, so that messages can name the flag rather than the key.
#[derive(Clone, Debug, PartialEq)]
pub struct Given {
    pub flag: &'static str,
    pub key: &'static str,
    pub value: String,
    /// A flag that shapes a generated workload, refused beside a trace.
    pub generation: bool,
}

impl Overrides {
    /// The flags these overrides set, in a fixed order.
    pub fn given(&self) -> Vec<Given> {
        fn one<T: std::fmt::Display>(
            out: &mut Vec<Given>,
            flag: &'static str,
            key: &'static str,
            value: &Option<T>,
            generation: bool,
        ) {
            if let Some(v) = value {
                out.push(Given {
                    flag,
                    key,
                    value: v.to_string(),
                    generation,
                });
            }
        }
        let mut out = Vec::new();
        if !self.policies.is_empty() {
            out.push(Given {
                flag: "--policy",
                key: "policy.run",
                value: self.policies.join(","),
                generation: false,
            });
        }
        let trace = self.trace.as_ref().map(|p| p.display().to_string());
        one(&mut out, "--trace", "workload.trace", &trace, false);
        one(
            &mut out,
            "--time-scale",
            "workload.time_scale",
            &self.time_scale,
            false,
        );
        one(&mut out, "--profile", "cost.profile", &self.profile, false);
        one(&mut out, "--gpus", "cluster", &self.gpus, false);
        one(&mut out, "--nodes", "cluster.nodes", &self.nodes, false);
        one(
            &mut out,
            "--gpus-per-node",
            "cluster.gpus_per_node",
            &self.gpus_per_node,
            false,
        );
        one(&mut out, "--seed", "seed", &self.seed, true);
        one(
            &mut out,
            "--rate",
            "workload.rate_per_min",
            &self.rate_per_min,
            true,
        );
        one(
            &mut out,
            "--arrival",
            "workload.arrival",
            &self.arrival,
            true,
        );
        one(&mut out, "--cv", "workload.cv", &self.cv, true);
        one(&mut out, "--on-s", "workload.on_s", &self.on_s, true);
        one(&mut out, "--off-s", "workload.off_s", &self.off_s, true);
        one(
            &mut out,
            "--requests",
            "workload.requests",
            &self.requests,
            true,
        );
        one(&mut out, "--mix", "workload.mix", &self.mix, true);
        one(&mut out, "--steps", "workload.steps", &self.steps, true);
        one(&mut out, "--slo-scale", "slo.scale", &self.slo_scale, false);
        one(
            &mut out,
            "--granularity",
            "policy.tetriserve.granularity_steps",
            &self.granularity_steps,
            false,
        );
        one(
            &mut out,
            "--tau-ms",
            "policy.tetriserve.tau_ms",
            &self.tau_ms,
            false,
        );
        one(
            &mut out,
            "--tie-break",
            "policy.tetriserve.tie_break",
            &self.tie_break,
            false,
        );
        out
    }

    /// `e` restated against the flag that set its key, when one did: a bad `--policy` is the
    /// flag's fault, not the embedded default scenario's.
    pub fn blame(&self, e: Error) -> Error {
        let Error::Input(ie) = &e else {
            return e;
        };
        let Some(field) = ie.field.as_deref() else {
            return e;
        };
        match self.given().into_iter().find(|g| g.key == field) {
            Some(g) => Error::Config {
                message: format!("{} `{}`: {}", g.flag, g.value, ie.message),
                hint: ie.hint.clone(),
            },
            None => e,
        }
    }

    /// Refuses flags that the merged scenario `raw` gives nothing to act on.
    fn check_against(&self, raw: &RawScenario) -> Result<()> {
        let given = self.given();
        if let Some(trace) = &raw.workload.trace {
            // The seed also draws the cache's warm-up and k, and the skip masks: with either
            // on, `--seed` acts on a trace too.
            let seeded = raw.workload.cache.enabled == Some(true)
                || raw.workload.skipping.probability.is_some_and(|p| p > 0.0);
            let generation: Vec<String> = given
                .iter()
                .filter(|g| g.generation && !(seeded && g.flag == "--seed"))
                .map(|g| format!("{} {}", g.flag, g.value))
                .collect();
            if !generation.is_empty() {
                let from = if self.trace.is_some() {
                    "--trace"
                } else {
                    "the scenario's workload.trace"
                };
                return Err(Error::config_hint(
                    format!(
                        "{} shape(s) a generated workload, but {from} replays {trace}, whose rows fix every request's arrival, resolution and steps",
                        generation.join(" ")
                    ),
                    "drop them; to replay the trace faster use --time-scale F, to loosen its deadlines --slo-scale S; or drop the trace to generate requests",
                ));
            }
        } else if let Some(f) = self.time_scale {
            return Err(Error::config_hint(
                format!("--time-scale {f} replays a trace faster or slower, and there is no trace"),
                "add --trace FILE (or workload.trace in the scenario), or drop --time-scale",
            ));
        }
        let arrival = raw.workload.arrival.as_deref().unwrap_or("poisson");
        for (flag, value, needs) in [
            ("--cv", self.cv, "gamma"),
            ("--on-s", self.on_s, "on-off"),
            ("--off-s", self.off_s, "on-off"),
        ] {
            if let Some(v) = value
                && arrival != needs
            {
                return Err(Error::config_hint(
                    format!("{flag} {v} shapes {needs} arrivals, and the arrivals are {arrival}"),
                    format!("add --arrival {needs}, or drop {flag}"),
                ));
            }
        }
        if let (Some(g), Some(t)) = (self.granularity_steps, self.tau_ms) {
            return Err(Error::config_hint(
                format!("--granularity {g} and --tau-ms {t} both set TetriServe's round length"),
                "give one of them",
            ));
        }
        Ok(())
    }

    /// Refuses TetriServe tuning when no TetriServe variant runs.
    fn check_policies(&self, scenario: &Scenario) -> Result<()> {
        if scenario
            .policies
            .iter()
            .any(|p| matches!(p, PolicyKind::Tetriserve(_)))
        {
            return Ok(());
        }
        let tuning: Vec<String> = self
            .given()
            .iter()
            .filter(|g| g.key.starts_with("policy.tetriserve."))
            .map(|g| format!("{} {}", g.flag, g.value))
            .collect();
        if tuning.is_empty() {
            return Ok(());
        }
        let run: Vec<String> = scenario
            .policies
            .iter()
            .map(PolicyKind::to_string)
            .collect();
        Err(Error::config_hint(
            format!(
                "{} tune(s) TetriServe, and no TetriServe policy runs ({})",
                tuning.join(" "),
                run.join(", ")
            ),
            "add --policy tetriserve, or drop them",
        ))
    }

    /// The flags, as typed, for a description of what runs (`--mix skewed --gpus 4`).
    pub fn summary(&self) -> String {
        self.given()
            .iter()
            .map(|g| {
                if g.flag == "--policy" {
                    self.policies
                        .iter()
                        .map(|p| format!("--policy {p}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                } else {
                    format!("{} {}", g.flag, g.value)
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Where a run's cost model comes from.
#[derive(Clone, Debug)]
pub enum CostSource {
    Profile(ProfileTable),
    Analytic(Analytic),
}

/// Where a run's requests come from.
#[derive(Clone, Debug)]
pub enum WorkloadSource {
    Synthetic(WorkloadSpec),
    Trace { path: PathBuf, slo: SloDefaults },
}

/// A validated scenario: everything a run needs, checked.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub cluster: Cluster,
    pub cost: CostSource,
    pub overheads: Overheads,
    pub workload: WorkloadSource,
    pub policies: Vec<PolicyKind>,
    pub policy_config: PolicyConfig,
    /// Things the user should know that do not stop the run (printed on stderr).
    pub warnings: Vec<String>,
    /// What this scenario was made from, for people: the file (or the built-in default) and
    /// the flags that changed it.
    pub origin: String,
    /// A trace workload is replayed at this many times its rate (1 for generated workloads).
    pub time_scale: f64,
    /// Approximate caching, applied while the workload is materialised (`None`: off).
    pub cache: Option<CacheSpec>,
    /// Run-time step skipping (`None`: off).
    pub skipping: Option<SkipSpec>,
}

impl RawScenario {
    /// Parses TOML text; `source` names it in errors, `dir` anchors relative paths in it.
    pub fn parse(text: &str, source: &str, dir: &Path) -> Result<RawScenario> {
        let mut raw: RawScenario = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() as u64 + 1);
            let mut err = InputError::new(source, e.message().trim().to_string());
            if let Some(l) = line {
                err = err.line(l);
            }
            if let Some(near) = unknown_key_suggestion(e.message()) {
                err = err.hint(near);
            }
            Error::Input(err)
        })?;
        let anchor = |p: &mut Option<String>| {
            if let Some(path) = p.as_mut()
                && looks_like_path(path)
                && Path::new(path).is_relative()
            {
                *path = dir.join(&*path).to_string_lossy().into_owned();
            }
        };
        anchor(&mut raw.cost.profile);
        anchor(&mut raw.workload.trace);
        if let Some(profiles) = raw.sweep.as_mut().and_then(|s| s.profiles.as_mut()) {
            for p in profiles {
                let mut slot = Some(std::mem::take(p));
                anchor(&mut slot);
                *p = slot.unwrap_or_default();
            }
        }
        Ok(raw)
    }

    /// Reads a scenario file.
    pub fn load(path: &Path) -> Result<RawScenario> {
        let text =
            crate::error::read_text(path, crate::error::limits::SMALL_BYTES, "scenario file")?;
        let dir = path.parent().unwrap_or(Path::new("."));
        RawScenario::parse(&text, &path.display().to_string(), dir)
    }

    /// A scenario file merged onto the default (or the default itself), and its name for
    /// error messages.
    pub fn load_merged(path: Option<&Path>) -> Result<(RawScenario, String)> {
        Ok(match path {
            Some(p) => (
                RawScenario::load(p)?.or(RawScenario::default_scenario()),
                p.display().to_string(),
            ),
            None => (RawScenario::default_scenario(), DEFAULT_SOURCE.to_string()),
        })
    }

    /// The embedded default scenario.
    pub fn default_scenario() -> RawScenario {
        RawScenario::parse(DEFAULT_SCENARIO, DEFAULT_SOURCE, Path::new("."))
            .expect("the embedded default scenario parses")
    }

    /// `self` with every key it leaves unset taken from `base`. Maps merge key by key.
    pub fn or(self, base: RawScenario) -> RawScenario {
        // A key of this file replaces the base's key for the same resolution, however written
        // (`256` and `256x256`); two keys for one resolution in one file are refused later.
        let mut bases = base.slo.bases_s;
        let same = |a: &str, b: &str| match (a.parse::<Resolution>(), b.parse::<Resolution>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => a == b,
        };
        bases.retain(|k, _| !self.slo.bases_s.keys().any(|u| same(u, k)));
        bases.extend(self.slo.bases_s);
        let mut degrees = base.policy.rssp.degrees;
        degrees.extend(self.policy.rssp.degrees);
        // A scenario choosing a cost source replaces the base's, and then the GPU type and
        // topology default to that source's rather than to the base's hardware.
        let own_cost = self.cost.profile.is_some() || self.cost.analytic.is_some();
        let cost = if own_cost { self.cost } else { base.cost };
        // The base's price and power describe the base's GPU, so they go with it.
        let (base_gpu, base_topology, base_price, base_power, base_idle) = if own_cost {
            (None, None, None, None, None)
        } else {
            (
                base.cluster.gpu,
                base.cluster.topology,
                base.cluster.gpu_price_per_hour,
                base.cluster.gpu_power_w,
                base.cluster.gpu_idle_power_w,
            )
        };
        RawScenario {
            sweep: self.sweep.or(base.sweep),
            name: self.name.or(base.name),
            description: self.description.or(base.description),
            seed: self.seed.or(base.seed),
            cluster: RawCluster {
                gpu: self.cluster.gpu.or(base_gpu),
                nodes: self.cluster.nodes.or(base.cluster.nodes),
                gpus_per_node: self.cluster.gpus_per_node.or(base.cluster.gpus_per_node),
                topology: self.cluster.topology.or(base_topology),
                gpu_price_per_hour: self.cluster.gpu_price_per_hour.or(base_price),
                gpu_power_w: self.cluster.gpu_power_w.or(base_power),
                gpu_idle_power_w: self.cluster.gpu_idle_power_w.or(base_idle),
            },
            cost,
            overheads: RawOverheads {
                text_encoder_ms: self
                    .overheads
                    .text_encoder_ms
                    .or(base.overheads.text_encoder_ms),
                vae_decode_ms_per_1k_tokens: self
                    .overheads
                    .vae_decode_ms_per_1k_tokens
                    .or(base.overheads.vae_decode_ms_per_1k_tokens),
                remap_fraction: self
                    .overheads
                    .remap_fraction
                    .or(base.overheads.remap_fraction),
                group_setup_ms: self
                    .overheads
                    .group_setup_ms
                    .or(base.overheads.group_setup_ms),
                group_setup_on_regroup: self
                    .overheads
                    .group_setup_on_regroup
                    .or(base.overheads.group_setup_on_regroup),
                dispatch_ms: self.overheads.dispatch_ms.or(base.overheads.dispatch_ms),
            },
            workload: RawWorkload {
                trace: self.workload.trace.or(base.workload.trace),
                requests: self.workload.requests.or(base.workload.requests),
                arrival: self.workload.arrival.or(base.workload.arrival),
                rate_per_min: self.workload.rate_per_min.or(base.workload.rate_per_min),
                cv: self.workload.cv.or(base.workload.cv),
                on_s: self.workload.on_s.or(base.workload.on_s),
                off_s: self.workload.off_s.or(base.workload.off_s),
                mix: self.workload.mix.or(base.workload.mix),
                sampling: self.workload.sampling.or(base.workload.sampling),
                steps: self.workload.steps.or(base.workload.steps),
                time_scale: self.workload.time_scale.or(base.workload.time_scale),
                cache: RawCache {
                    enabled: self.workload.cache.enabled.or(base.workload.cache.enabled),
                    capacity: self
                        .workload
                        .cache
                        .capacity
                        .or(base.workload.cache.capacity),
                    warmup_requests: self
                        .workload
                        .cache
                        .warmup_requests
                        .or(base.workload.cache.warmup_requests),
                    popularity: self
                        .workload
                        .cache
                        .popularity
                        .or(base.workload.cache.popularity),
                    zipf_s: self.workload.cache.zipf_s.or(base.workload.cache.zipf_s),
                    prompts: self.workload.cache.prompts.or(base.workload.cache.prompts),
                    skip_steps: self
                        .workload
                        .cache
                        .skip_steps
                        .or(base.workload.cache.skip_steps),
                    skip_weights: self
                        .workload
                        .cache
                        .skip_weights
                        .or(base.workload.cache.skip_weights),
                },
                skipping: RawSkipping {
                    probability: self
                        .workload
                        .skipping
                        .probability
                        .or(base.workload.skipping.probability),
                    keep_first_steps: self
                        .workload
                        .skipping
                        .keep_first_steps
                        .or(base.workload.skipping.keep_first_steps),
                },
            },
            slo: RawSlo {
                scale: self.slo.scale.or(base.slo.scale),
                bases_s: bases,
            },
            policy: RawPolicy {
                run: self.policy.run.or(base.policy.run),
                rssp: RawRssp { degrees },
                tetriserve: RawTetriserve {
                    granularity_steps: self
                        .policy
                        .tetriserve
                        .granularity_steps
                        .or(base.policy.tetriserve.granularity_steps),
                    tau_ms: self
                        .policy
                        .tetriserve
                        .tau_ms
                        .or(base.policy.tetriserve.tau_ms),
                    tie_break: self
                        .policy
                        .tetriserve
                        .tie_break
                        .or(base.policy.tetriserve.tie_break),
                    drop_late_after_s: self
                        .policy
                        .tetriserve
                        .drop_late_after_s
                        .or(base.policy.tetriserve.drop_late_after_s),
                    round_aware_plans: self
                        .policy
                        .tetriserve
                        .round_aware_plans
                        .or(base.policy.tetriserve.round_aware_plans),
                    fill_rounds: self
                        .policy
                        .tetriserve
                        .fill_rounds
                        .or(base.policy.tetriserve.fill_rounds),
                    backfill: self
                        .policy
                        .tetriserve
                        .backfill
                        .or(base.policy.tetriserve.backfill),
                    batching: self
                        .policy
                        .tetriserve
                        .batching
                        .or(base.policy.tetriserve.batching),
                    snap_rounds: self
                        .policy
                        .tetriserve
                        .snap_rounds
                        .or(base.policy.tetriserve.snap_rounds),
                    shed_rule: self
                        .policy
                        .tetriserve
                        .shed_rule
                        .or(base.policy.tetriserve.shed_rule),
                    shed_capacity: self
                        .policy
                        .tetriserve
                        .shed_capacity
                        .or(base.policy.tetriserve.shed_capacity),
                    shed_drop: self
                        .policy
                        .tetriserve
                        .shed_drop
                        .or(base.policy.tetriserve.shed_drop),
                },
            },
        }
    }

    /// Applies command-line overrides; fails on an inconsistent `--gpus/--nodes/--gpus-per-node`
    /// and on a flag the scenario gives nothing to act on (a generation flag beside a trace,
    /// `--cv` without gamma arrivals, `--time-scale` without a trace).
    pub fn apply(&mut self, o: &Overrides) -> Result<()> {
        if !o.policies.is_empty() {
            self.policy.run = Some(o.policies.clone());
        }
        set(&mut self.seed, o.seed);
        set(&mut self.workload.rate_per_min, o.rate_per_min);
        set(&mut self.slo.scale, o.slo_scale);
        set(&mut self.workload.requests, o.requests);
        set(&mut self.workload.mix, o.mix.clone());
        set(&mut self.workload.arrival, o.arrival.clone());
        set(&mut self.workload.cv, o.cv);
        set(&mut self.workload.on_s, o.on_s);
        set(&mut self.workload.off_s, o.off_s);
        set(&mut self.workload.steps, o.steps);
        set(&mut self.workload.time_scale, o.time_scale);
        if o.granularity_steps.is_some() {
            // A granularity on the command line replaces a fixed round length from the file.
            self.policy.tetriserve.tau_ms = None;
        }
        set(
            &mut self.policy.tetriserve.granularity_steps,
            o.granularity_steps,
        );
        set(&mut self.policy.tetriserve.tau_ms, o.tau_ms);
        set(&mut self.policy.tetriserve.tie_break, o.tie_break.clone());
        set(
            &mut self.workload.trace,
            o.trace.as_ref().map(|p| p.to_string_lossy().into_owned()),
        );
        if let Some(p) = &o.profile {
            self.cost = RawCost {
                profile: Some(p.clone()),
                analytic: None,
            };
            // The GPU type (and its usual topology) now come from the profile.
            self.cluster.gpu = None;
            self.cluster.topology = None;
        }
        let shape_error = |msg: String| {
            Error::config_hint(
                msg,
                "--gpus is the total; give --nodes or --gpus-per-node so that the other divides it",
            )
        };
        match (o.gpus, o.nodes, o.gpus_per_node) {
            (Some(g), Some(n), Some(p)) if g != n * p => {
                return Err(shape_error(format!(
                    "--gpus {g} is not --nodes {n} x --gpus-per-node {p}"
                )));
            }
            (Some(g), Some(n), _) => {
                if n == 0 || g % n != 0 {
                    return Err(shape_error(format!(
                        "--gpus {g} cannot be split evenly over --nodes {n}"
                    )));
                }
                self.cluster.nodes = Some(n);
                self.cluster.gpus_per_node = Some(g / n);
            }
            (Some(g), None, p) => {
                // One node of `g` GPUs if it fits the node size, else nodes of that size.
                let per_node = p.or(self.cluster.gpus_per_node).unwrap_or(8);
                if p.is_none() && g <= per_node {
                    self.cluster.nodes = Some(1);
                    self.cluster.gpus_per_node = Some(g);
                } else if per_node > 0 && g % per_node == 0 {
                    self.cluster.nodes = Some(g / per_node);
                    self.cluster.gpus_per_node = Some(per_node);
                } else {
                    return Err(shape_error(format!(
                        "--gpus {g} is not a multiple of {per_node} GPUs per node"
                    )));
                }
            }
            (None, n, p) => {
                set(&mut self.cluster.nodes, n);
                set(&mut self.cluster.gpus_per_node, p);
            }
        }
        o.check_against(self)
    }
}

fn set<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

fn looks_like_path(s: &str) -> bool {
    s.contains('/') || s.contains('\\') || s.ends_with(".csv") || s.ends_with(".toml")
}

/// For serde's "unknown field `x`, expected one of `a`, `b`", a "did you mean" hint.
fn unknown_key_suggestion(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let near = crate::suggest::closest(key, &expected)?;
    Some(format!("did you mean `{near}`?"))
}

impl Scenario {
    /// Validates a merged raw scenario. `source` names it in error messages.
    pub fn from_raw(raw: RawScenario, source: &str) -> Result<Scenario> {
        let bad = |field: &str, message: String| {
            Error::Input(InputError::new(source, message).field(field))
        };
        let need = |field: &str| {
            bad(
                field,
                "missing; the default scenario sets it, so this is a bug".into(),
            )
        };

        let cost = match (&raw.cost.analytic, &raw.cost.profile) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "cost",
                    "gives both `profile` and `analytic`; a run has one cost model".into(),
                ));
            }
            (Some(a), _) => CostSource::Analytic(Analytic::preset(&a.model, &a.gpu)?),
            (None, Some(p)) => CostSource::Profile(load_profile(p).map_err(|e| match e {
                Error::Config { message, hint } => {
                    let e = InputError::new(source, message).field("cost.profile");
                    Error::Input(match hint {
                        Some(h) => e.hint(h),
                        None => e,
                    })
                }
                other => other,
            })?),
            (None, None) => {
                return Err(bad(
                    "cost",
                    "give `profile` (a built-in name or CSV path) or `analytic`".into(),
                ));
            }
        };

        // The cluster's GPU type defaults to the cost source's; a mismatch is refused.
        let cost_gpu = match &cost {
            CostSource::Profile(p) => p.gpu().to_string(),
            CostSource::Analytic(a) => a.gpu.name.to_string(),
        };
        let c = &raw.cluster;
        let gpu = c.gpu.clone().unwrap_or_else(|| cost_gpu.clone());
        if gpu != cost_gpu {
            return Err(Error::config_hint(
                format!(
                    "{source}: the cluster has `{gpu}` GPUs but the cost model describes `{cost_gpu}`"
                ),
                format!(
                    "set [cluster] gpu = \"{cost_gpu}\", or choose a profile measured on {gpu}"
                ),
            ));
        }
        // NVLink-bridged pairs are how A40 nodes are built; HGX boards have NVSwitch.
        let default_topology = if gpu == "a40" {
            "nvlink-pairs"
        } else {
            "nvswitch"
        };
        let topology: Topology = c
            .topology
            .as_deref()
            .unwrap_or(default_topology)
            .parse()
            .map_err(|e: String| bad("cluster.topology", e))?;
        let cluster = Cluster::new(
            gpu,
            c.nodes.ok_or_else(|| need("cluster.nodes"))?,
            c.gpus_per_node
                .ok_or_else(|| need("cluster.gpus_per_node"))?,
            topology,
        )
        .map_err(|e| match e {
            Error::Config { message, hint } => Error::Config {
                message: format!("{source}: [cluster]: {message}"),
                hint,
            },
            other => other,
        })?;
        let mut cluster = cluster;
        let amount = |field: &str, v: Option<f64>, unit: &str| -> Result<Option<f64>> {
            match v {
                Some(x) if !(x.is_finite() && x >= 0.0) => Err(Error::Input(
                    InputError::new(
                        source,
                        format!("expected a non-negative number of {unit}, got {x}"),
                    )
                    .field(field)
                    .hint("leave the key out to use the built-in assumption for the GPU type"),
                )),
                other => Ok(other),
            }
        };
        let defaults = cluster.operating;
        cluster.operating = crate::cluster::OperatingCost {
            price_per_hour: amount(
                "cluster.gpu_price_per_hour",
                c.gpu_price_per_hour,
                "US dollars per GPU-hour",
            )?
            .or(defaults.price_per_hour),
            power_w: amount("cluster.gpu_power_w", c.gpu_power_w, "watts")?.or(defaults.power_w),
            idle_power_w: amount("cluster.gpu_idle_power_w", c.gpu_idle_power_w, "watts")?
                .unwrap_or(defaults.idle_power_w),
        };

        let o = &raw.overheads;
        let ms = |field: &str, v: Option<f64>| -> Result<Nanos> {
            let v = v.unwrap_or(0.0);
            Nanos::try_from_secs(v / 1e3).ok_or_else(|| {
                bad(
                    field,
                    format!("expected a non-negative number of milliseconds, got {v}"),
                )
            })
        };
        let remap_fraction = o.remap_fraction.unwrap_or(0.0);
        if !(remap_fraction.is_finite() && remap_fraction >= 0.0) {
            return Err(bad(
                "overheads.remap_fraction",
                format!("expected a non-negative fraction, got {remap_fraction}"),
            ));
        }
        let overheads = Overheads {
            text_encoder: ms("overheads.text_encoder_ms", o.text_encoder_ms)?,
            vae_decode_per_1k_tokens: ms(
                "overheads.vae_decode_ms_per_1k_tokens",
                o.vae_decode_ms_per_1k_tokens,
            )?,
            remap_fraction,
            group_setup: ms("overheads.group_setup_ms", o.group_setup_ms)?,
            group_setup_on_regroup: o.group_setup_on_regroup.unwrap_or(false),
            dispatch: ms("overheads.dispatch_ms", o.dispatch_ms)?,
        };

        let mut bases = Vec::new();
        for (k, &v) in &raw.slo.bases_s {
            let res: Resolution = k.parse().map_err(|e: String| bad("slo.bases_s", e))?;
            let base = Nanos::try_from_secs(v)
                .filter(|b| *b > Nanos::ZERO)
                .ok_or_else(|| {
                    bad(
                        "slo.bases_s",
                        format!("base for {k} must be a positive number of seconds, got {v}"),
                    )
                })?;
            if let Some((_, _)) = bases.iter().find(|(r, _)| *r == res) {
                return Err(bad(
                    "slo.bases_s",
                    format!(
                        "`{k}` names {res}, which another key already sets (`256` and `256x256` are the same resolution)"
                    ),
                ));
            }
            bases.push((res, base));
        }
        let slo_bases = SloBases::new(bases);
        let scale = raw.slo.scale.unwrap_or(1.0);
        if !(scale.is_finite() && scale > 0.0) {
            return Err(bad(
                "slo.scale",
                format!("expected a positive number, got {scale}"),
            ));
        }
        let seed = raw.seed.unwrap_or(0);

        let w = &raw.workload;
        let steps = w.steps.unwrap_or(28);
        if steps == 0 {
            return Err(bad("workload.steps", "must be at least 1".into()));
        }
        let time_scale = w.time_scale.unwrap_or(1.0);
        if !(time_scale.is_finite() && time_scale > 0.0) {
            return Err(bad(
                "workload.time_scale",
                format!(
                    "expected a positive number (2 replays the trace twice as fast), got {time_scale}"
                ),
            ));
        }
        let workload = match &w.trace {
            Some(path) => WorkloadSource::Trace {
                path: PathBuf::from(path),
                slo: SloDefaults {
                    bases: slo_bases.clone(),
                    scale,
                },
            },
            None => {
                let rate_per_min = w.rate_per_min.unwrap_or(12.0);
                if !(rate_per_min.is_finite() && rate_per_min > 0.0) {
                    return Err(bad(
                        "workload.rate_per_min",
                        format!(
                            "expected a positive number of requests per minute, got {rate_per_min}"
                        ),
                    ));
                }
                let rate_per_s = rate_per_min / 60.0;
                let arrival = match w.arrival.as_deref().unwrap_or("poisson") {
                    "poisson" => ArrivalProcess::Poisson { rate_per_s },
                    "gamma" => ArrivalProcess::Gamma {
                        rate_per_s,
                        cv: w.cv.ok_or_else(|| bad("workload.cv", "gamma arrivals need a coefficient of variation `cv` (1 = Poisson, 2-4 = bursty)".into()))?,
                    },
                    "constant" => ArrivalProcess::Constant { rate_per_s },
                    "on-off" => {
                        let secs = |field: &str, v: Option<f64>| {
                            v.and_then(Nanos::try_from_secs).filter(|n| *n > Nanos::ZERO).ok_or_else(|| bad(field, "on-off arrivals need positive `on_s` and `off_s` (seconds; --on-s and --off-s)".into()))
                        };
                        ArrivalProcess::OnOff { rate_per_s, on: secs("workload.on_s", w.on_s)?, off: secs("workload.off_s", w.off_s)? }
                    }
                    other => return Err(bad("workload.arrival", format!("unknown arrival process `{other}`; expected poisson, gamma, constant or on-off"))),
                };
                arrival.validate_keyed().map_err(|(key, e)| bad(key, e))?;
                let mix = parse_mix(w.mix.as_deref().unwrap_or("uniform"))
                    .map_err(|e| bad("workload.mix", e))?;
                let sampling = match w.sampling.as_deref().unwrap_or("stratified") {
                    "stratified" => Sampling::Stratified,
                    "iid" => Sampling::Iid,
                    other => {
                        return Err(bad(
                            "workload.sampling",
                            format!("unknown sampling `{other}`; expected stratified or iid"),
                        ));
                    }
                };
                let requests = w.requests.unwrap_or(300);
                if requests == 0 {
                    return Err(bad("workload.requests", "must be at least 1".into()));
                }
                WorkloadSource::Synthetic(WorkloadSpec {
                    requests,
                    arrival,
                    mix,
                    sampling,
                    steps,
                    slo_scale: scale,
                    slo_bases: slo_bases.clone(),
                    seed,
                })
            }
        };

        let (cache, skipping) = savings_config(&raw.workload, source)?;

        let names = raw.policy.run.clone().unwrap_or_else(|| vec!["all".into()]);
        let mut policies = Vec::new();
        for n in &names {
            if n == "all" {
                policies.extend(PolicyKind::all_for(&cluster));
            } else if n == "ablation" {
                policies.extend(PolicyKind::ablation());
            } else {
                policies.push(n.parse::<PolicyKind>().map_err(|e| bad("policy.run", e))?);
            }
        }
        let mut seen = std::collections::HashSet::new();
        policies.retain(|p| seen.insert(*p));

        let mut rssp_degrees = Vec::new();
        let mut warnings = Vec::new();
        for (k, &d) in &raw.policy.rssp.degrees {
            let res: Resolution = k
                .parse()
                .map_err(|e: String| bad("policy.rssp.degrees", e))?;
            if d > cluster.gpus_per_node && policies.contains(&PolicyKind::Rssp) {
                // The default map is the paper's 8-GPU configuration; on smaller nodes the
                // entry cannot apply, and RSSP's own rule (smallest degree meeting the SLO
                // in isolation) picks the degree instead.
                warnings.push(format!(
                    "rssp: {res} -> SP {d} does not fit nodes of {} GPUs; using the smallest degree that meets its SLO in isolation",
                    cluster.gpus_per_node
                ));
                continue;
            }
            rssp_degrees.push((res, d));
        }

        let policy_config = PolicyConfig {
            rssp_degrees,
            slo_bases,
            steps,
            tetriserve: tetriserve_config(&raw.policy.tetriserve, source)?,
            overheads: overheads.clone(),
        };
        let cost_model: &dyn CostModel = match &cost {
            CostSource::Profile(p) => p,
            CostSource::Analytic(a) => a,
        };
        warnings.extend(crate::slo_fit::warnings(
            cost_model,
            &cluster,
            &policy_config,
            scale,
            policies.contains(&PolicyKind::Rssp),
        ));
        Ok(Scenario {
            origin: {
                let name = raw.name.as_deref().unwrap_or("unnamed");
                if source == DEFAULT_SOURCE {
                    format!("the built-in default scenario `{name}`")
                } else {
                    format!("scenario `{name}` from {source}")
                }
            },
            time_scale,
            cache,
            skipping,
            name: raw.name.clone().unwrap_or_else(|| "unnamed".into()),
            description: raw.description.clone().unwrap_or_default(),
            seed,
            cluster,
            cost,
            overheads: overheads.clone(),
            workload,
            policies,
            policy_config,
            warnings,
        })
    }

    /// Loads a scenario file (or the default when `path` is `None`), merges it onto the
    /// default scenario, applies overrides and validates.
    ///
    /// An error in a key a flag set names the flag; a flag with nothing to act on is refused.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Scenario> {
        let (mut raw, source) = RawScenario::load_merged(path)?;
        raw.apply(overrides)?;
        let mut scenario = Scenario::from_raw(raw, &source).map_err(|e| overrides.blame(e))?;
        overrides.check_policies(&scenario)?;
        let flags = overrides.summary();
        if !flags.is_empty() {
            scenario.origin = format!("{}, overridden by {flags}", scenario.origin);
        }
        Ok(scenario)
    }

    /// The model the costs describe (`flux1-dev`, `sd3-medium`): what `--real` builds.
    pub fn model_name(&self) -> &str {
        match &self.cost {
            CostSource::Profile(p) => p.model(),
            CostSource::Analytic(a) => &a.model.name,
        }
    }

    pub fn cost_model(&self) -> &dyn CostModel {
        match &self.cost {
            CostSource::Profile(p) => p,
            CostSource::Analytic(a) => a,
        }
    }

    /// Materialises the workload (generated from the seed, or read from the trace), then
    /// runs the approximate cache over it and draws the step-skipping masks, so that every
    /// policy replays the identical, already reduced requests.
    pub fn load_workload(&self) -> Result<Workload> {
        let mut w = match &self.workload {
            WorkloadSource::Synthetic(spec) => {
                let mut w = crate::workload::generate::generate(spec)?;
                if let Some(c) = &self.cache {
                    crate::workload::cache::assign_prompts(&mut w, &c.popularity, self.seed);
                }
                w
            }
            WorkloadSource::Trace { path, slo } => {
                let w = crate::workload::trace::load_trace(path, Some(slo))?;
                w.time_scaled(self.time_scale).map_err(|e| {
                    Error::config_hint(
                        format!("--time-scale {} on {}: {e}", self.time_scale, path.display()),
                        "choose a larger time scale (the gaps between arrivals are divided by it), at least 1e-9",
                    )
                })?
            }
        };
        if let Some(c) = &self.cache {
            c.apply(&mut w, self.seed)?;
        }
        if let Some(s) = &self.skipping {
            s.apply(&mut w, self.seed)?;
        }
        Ok(w)
    }
}

/// `[workload.cache]` and `[workload.skipping]`, validated (each `None` when off).
fn savings_config(w: &RawWorkload, source: &str) -> Result<(Option<CacheSpec>, Option<SkipSpec>)> {
    let bad =
        |field: &str, message: String| Error::Input(InputError::new(source, message).field(field));
    let c = &w.cache;
    let cache = if c.enabled.unwrap_or(false) {
        let popularity = match c.popularity.as_deref().unwrap_or("zipf") {
            "zipf" => Popularity::Zipf {
                s: c.zipf_s.unwrap_or(1.0),
                prompts: c.prompts.unwrap_or(10_000),
            },
            "none" => Popularity::None,
            other => {
                return Err(Error::Input(
                    InputError::new(
                        source,
                        format!("unknown popularity law `{other}`; expected zipf or none"),
                    )
                    .field("workload.cache.popularity")
                    .hint("`zipf` draws prompts by Zipf's law (zipf_s, prompts); `none` gives generated requests no prompt"),
                ));
            }
        };
        let (steps, weights) = CacheSpec::nirvana_steps();
        let weights = match (&c.skip_steps, &c.skip_weights) {
            (_, Some(w)) => w.clone(),
            (Some(s), None) => vec![1.0; s.len()],
            (None, None) => weights,
        };
        let spec = CacheSpec {
            capacity: c.capacity.unwrap_or(1_000),
            warmup: c.warmup_requests.unwrap_or(10_000),
            popularity,
            skip_steps: c.skip_steps.clone().unwrap_or(steps),
            skip_weights: weights,
        };
        spec.validate_keyed().map_err(|(key, m)| bad(key, m))?;
        if w.trace.is_none() && spec.popularity == Popularity::None {
            return Err(Error::Input(
                InputError::new(
                    source,
                    "the cache is enabled but generated requests carry no prompt (popularity = \"none\"), so nothing could ever hit",
                )
                .field("workload.cache.popularity")
                .hint("set popularity = \"zipf\", or enabled = false"),
            ));
        }
        Some(spec)
    } else {
        None
    };
    let p = w.skipping.probability.unwrap_or(0.0);
    let mut skip =
        SkipSpec::from_probability(p).map_err(|m| bad("workload.skipping.probability", m))?;
    skip.keep_first = w.skipping.keep_first_steps.unwrap_or(1);
    if skip.keep_first == 0 {
        return Err(Error::Input(
            InputError::new(
                source,
                "keep_first_steps = 0: a request's first step has no earlier output to reuse, so it always computes",
            )
            .field("workload.skipping.keep_first_steps")
            .hint("set it to 1 (the default) or more"),
        ));
    }
    let skipping = (skip.probability_ppm > 0).then_some(skip);
    Ok((cache, skipping))
}

/// The longest round, in steps of the reference request (`--granularity`).
pub const MAX_GRANULARITY: u32 = 1_000;

/// TetriServe's configuration from a scenario's keys; a key left out takes
/// `TetriserveConfig::default()`, the one source of the defaults.
fn tetriserve_config(raw: &RawTetriserve, source: &str) -> Result<TetriserveConfig> {
    let defaults = TetriserveConfig::default();
    let bad =
        |field: &str, message: String| Error::Input(InputError::new(source, message).field(field));
    let round = match (raw.tau_ms, raw.granularity_steps) {
        (Some(ms), _) => RoundLength::Fixed(
            Nanos::try_from_secs(ms / 1e3)
                .filter(|t| *t > Nanos::ZERO)
                .ok_or_else(|| {
                    bad(
                        "policy.tetriserve.tau_ms",
                        format!("a round must last a positive number of milliseconds, got {ms}"),
                    )
                })?,
        ),
        (None, Some(0)) => {
            return Err(bad(
                "policy.tetriserve.granularity_steps",
                "a round must hold at least one step".into(),
            ));
        }
        (None, Some(g)) if g > MAX_GRANULARITY => {
            return Err(bad(
                "policy.tetriserve.granularity_steps",
                format!(
                    "a round of {g} steps is more than the {MAX_GRANULARITY} allowed (--granularity); the paper uses 5"
                ),
            ));
        }
        (None, Some(g)) => RoundLength::Steps(g),
        (None, None) => defaults.round,
    };
    let tie_break = match raw.tie_break.as_deref() {
        None => defaults.tie_break,
        Some("work") => TieBreak::Work,
        Some("none") => TieBreak::None,
        Some(other) => {
            return Err(bad(
                "policy.tetriserve.tie_break",
                format!("unknown tie-break `{other}`; expected `work` or `none`"),
            ));
        }
    };
    let drop_late_after = match raw.drop_late_after_s {
        None => defaults.drop_late_after,
        Some(s) => Some(Nanos::try_from_secs(s).ok_or_else(|| {
            bad(
                "policy.tetriserve.drop_late_after_s",
                format!("expected a non-negative number of seconds, got {s}"),
            )
        })?),
    };
    let rule = match raw.shed_rule.as_deref() {
        None => defaults.shed.rule,
        Some("largest-work") => ShedRule::LargestWork,
        Some("latest-deadline") => ShedRule::LatestDeadline,
        Some(other) => {
            return Err(bad(
                "policy.tetriserve.shed_rule",
                format!("unknown rule `{other}`; expected `largest-work` or `latest-deadline`"),
            ));
        }
    };
    let capacity = raw.shed_capacity.unwrap_or(defaults.shed.capacity);
    if !(capacity.is_finite() && capacity > 0.0) {
        return Err(bad(
            "policy.tetriserve.shed_capacity",
            format!("expected a positive fraction such as 1.0, got {capacity}"),
        ));
    }
    Ok(TetriserveConfig {
        round,
        tie_break,
        drop_late_after,
        round_aware_plans: raw.round_aware_plans.unwrap_or(defaults.round_aware_plans),
        fill_rounds: raw.fill_rounds.unwrap_or(defaults.fill_rounds),
        backfill: raw.backfill.unwrap_or(defaults.backfill),
        batching: raw.batching.unwrap_or(defaults.batching),
        snap_rounds: raw.snap_rounds.unwrap_or(defaults.snap_rounds),
        shed: ShedConfig {
            rule,
            capacity,
            drop: raw.shed_drop.unwrap_or(defaults.shed.drop),
        },
    })
}

/// A built-in profile by name, or a CSV file by path.
pub fn load_profile(name_or_path: &str) -> Result<ProfileTable> {
    if let Some(p) = ProfileTable::builtin(name_or_path) {
        return Ok(p);
    }
    if looks_like_path(name_or_path) || Path::new(name_or_path).exists() {
        return ProfileTable::load(Path::new(name_or_path));
    }
    Err(Error::config_hint(
        format!("`{name_or_path}` is neither a built-in profile nor a file"),
        format!(
            "built-in profiles: {}; or give a path to a profile CSV",
            ProfileTable::builtin_names().join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_get_a_did_you_mean() {
        let err = RawScenario::parse("[workload]\nrate_per_mn = 3\n", "s.toml", Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("s.toml:2"), "{err}");
        assert!(err.contains("did you mean `rate_per_min`?"), "{err}");
    }

    /// TetriServe's defaults have one source, `TetriserveConfig::default()`: a file that leaves
    /// every `[policy.tetriserve]` key out gets exactly it, and `scenarios/default.toml`, which
    /// spells the defaults out for users, must agree with it.
    #[test]
    fn tetriserve_defaults_have_one_source() {
        let empty = tetriserve_config(&RawTetriserve::default(), "empty.toml").unwrap();
        assert_eq!(empty, TetriserveConfig::default());
        let shipped = Scenario::from_raw(RawScenario::default_scenario(), "default.toml").unwrap();
        assert_eq!(
            shipped.policy_config.tetriserve,
            TetriserveConfig::default(),
            "scenarios/default.toml's [policy.tetriserve] disagrees with TetriserveConfig::default()"
        );
    }

    /// The keys a `Raw*` struct accepts, read from serde's refusal of an unknown one
    /// ("unknown field `x`, expected one of `a`, `b`"), so that no list here can go stale.
    fn keys_of<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> Vec<String> {
        let message = toml::from_str::<T>("no_such_key = 0")
            .unwrap_err()
            .message()
            .to_string();
        let (_, expected) = message
            .split_once("expected")
            .unwrap_or_else(|| panic!("not an unknown-field message: {message}"));
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_scenario_key_is_documented_in_default_toml() {
        let text = DEFAULT_SCENARIO;
        // A key is documented when the file sets it (`key =`, maybe commented out as an
        // example) or opens it as a table (`[key]`, `[policy.key]`).
        let documented = |key: &str| {
            let set = text.match_indices(&format!("{key} =")).any(|(i, _)| {
                i == 0 || matches!(text.as_bytes()[i - 1], b' ' | b'\n' | b'#' | b'{')
            });
            let table = text.contains(&format!("[{key}]")) || text.contains(&format!(".{key}]"));
            set || table
        };
        let sections = [
            ("top level", keys_of::<RawScenario>()),
            ("[cluster]", keys_of::<RawCluster>()),
            ("[cost]", keys_of::<RawCost>()),
            ("[cost] analytic", keys_of::<RawAnalytic>()),
            ("[overheads]", keys_of::<RawOverheads>()),
            ("[workload]", keys_of::<RawWorkload>()),
            ("[workload.cache]", keys_of::<RawCache>()),
            ("[workload.skipping]", keys_of::<RawSkipping>()),
            ("[slo]", keys_of::<RawSlo>()),
            ("[policy]", keys_of::<RawPolicy>()),
            ("[policy.rssp]", keys_of::<RawRssp>()),
            ("[policy.tetriserve]", keys_of::<RawTetriserve>()),
        ];
        let mut missing = Vec::new();
        for (section, keys) in &sections {
            assert!(
                keys.len() >= 2 || *section == "[policy.rssp]",
                "{section}: {keys:?}"
            );
            // `[sweep]` has its own section, documented with the sweep grids.
            for key in keys.iter().filter(|k| *k != "sweep") {
                if !documented(key) {
                    missing.push(format!("{section} {key}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "scenarios/default.toml does not document: {missing:?}"
        );
        // The keys the file sets all parse, and every optional one it sets is used.
        let raw = RawScenario::default_scenario();
        assert_eq!(raw.workload.time_scale, Some(1.0));
        assert!(raw.workload.trace.is_none() && raw.workload.cv.is_none());
    }

    #[test]
    fn a_bad_value_from_a_flag_names_the_flag() {
        let load = |o: Overrides| Scenario::load(None, &o).unwrap_err().to_string();
        let e = load(Overrides {
            policies: vec!["rsp".into()],
            ..Overrides::default()
        });
        assert!(e.starts_with("--policy `rsp`: unknown policy `rsp`"), "{e}");
        assert!(e.contains("did you mean `rssp`"), "{e}");
        assert!(!e.contains("embedded"), "{e}");
        let e = load(Overrides {
            rate_per_min: Some(-1.0),
            ..Overrides::default()
        });
        assert!(
            e.starts_with("--rate `-1`: expected a positive number"),
            "{e}"
        );
        let e = load(Overrides {
            profile: Some("no-such-profile".into()),
            ..Overrides::default()
        });
        assert!(e.starts_with("--profile `no-such-profile`: "), "{e}");
        assert!(e.contains("built-in profiles"), "{e}");
        // The same key set by the file names the file.
        let raw = RawScenario::parse(
            "[workload]\nrate_per_min = -1.0\n",
            "s.toml",
            Path::new("."),
        )
        .unwrap()
        .or(RawScenario::default_scenario());
        let e = Scenario::from_raw(raw, "s.toml").unwrap_err().to_string();
        assert!(
            e.starts_with("s.toml: field `workload.rate_per_min`"),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_name_the_line() {
        let err = RawScenario::parse(
            "seed = 1\n[cluster]\nnodes = \"two\"\n",
            "s.toml",
            Path::new("."),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("s.toml:3"), "{err}");
    }

    #[test]
    fn overrides_beat_the_file_which_beats_the_default() {
        let file = RawScenario::parse(
            "seed = 7\n[workload]\nrate_per_min = 6.0\n",
            "s.toml",
            Path::new("."),
        )
        .unwrap();
        let mut raw = file.or(RawScenario::default_scenario());
        assert_eq!(raw.seed, Some(7));
        assert_eq!(raw.workload.rate_per_min, Some(6.0));
        assert_eq!(raw.workload.requests, Some(300), "from the default");
        raw.apply(&Overrides {
            rate_per_min: Some(18.0),
            gpus: Some(16),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(raw.workload.rate_per_min, Some(18.0));
        assert_eq!(
            (raw.cluster.nodes, raw.cluster.gpus_per_node),
            (Some(2), Some(8))
        );
        raw.apply(&Overrides {
            gpus: Some(4),
            ..Overrides::default()
        })
        .unwrap();
        assert!(
            raw.apply(&Overrides {
                gpus: Some(12),
                nodes: Some(5),
                ..Overrides::default()
            })
            .is_err(),
            "12 GPUs do not split over 5 nodes"
        );
        assert_eq!(
            (raw.cluster.nodes, raw.cluster.gpus_per_node),
            (Some(1), Some(4))
        );
    }
}
