//! The `[workload]` (with `[workload.cache]` and `[workload.skipping]`) and `[slo]` sections
//! of a scenario: their keys as written, their defaults, and their validation into where the
//! requests come from ([`WorkloadSource`]), their deadlines ([`SloDefaults`]) and how caching
//! and skipping shorten them ([`CacheSpec`], [`SkipSpec`]).
//!
//! Every default lives here once, as a constant or in the section's `build`;
//! `scenarios/default.toml` spells them out for users and a test checks that it agrees.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::arrival::ArrivalProcess;
use super::cache::CacheSpec;
use super::generate::WorkloadSpec;
use super::mix::{Sampling, parse_mix};
use super::prompt::Popularity;
use super::skipping::SkipSpec;
use super::trace::SloDefaults;
use super::{Resolution, SloBases};
use crate::error::{Error, InputError, Result};
use crate::time::Nanos;

/// The seed of generated arrivals, resolutions, prompts and skips when none is given.
pub const DEFAULT_SEED: u64 = 42;
/// Requests generated when the scenario gives no count.
pub const DEFAULT_REQUESTS: usize = 300;
/// Mean arrival rate, requests per minute.
pub const DEFAULT_RATE_PER_MIN: f64 = 12.0;
/// Denoising steps per request (FLUX.1-dev's usual count).
pub const DEFAULT_STEPS: u32 = 28;
pub const DEFAULT_ARRIVAL: &str = "poisson";
pub const DEFAULT_MIX: &str = "uniform";
pub const DEFAULT_SAMPLING: &str = "stratified";

/// Where a run's requests come from.
#[derive(Clone, Debug)]
pub enum WorkloadSource {
    Synthetic(WorkloadSpec),
    Trace { path: PathBuf, slo: SloDefaults },
}

/// `[workload]` as written: every key optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSection {
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
    pub cache: CacheSection,
    /// Run-time step skipping: `[workload.skipping]`.
    #[serde(default)]
    pub skipping: SkippingSection,
}

/// `[workload.cache]`: an approximate cache that lets requests with a cached prompt skip
/// their first steps (`workload/cache.rs`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
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
pub struct SkippingSection {
    /// Chance that a step after a request's first `keep_first_steps` is skipped (0: off).
    pub probability: Option<f64>,
    /// Steps at the start of every request that always compute (default 1).
    pub keep_first_steps: Option<u32>,
}

/// `[slo]` as written.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SloSection {
    pub scale: Option<f64>,
    /// Seconds per resolution; left empty, the paper's targets ([`SloBases::paper`]).
    #[serde(default)]
    pub bases_s: BTreeMap<String, f64>,
}

impl SloSection {
    /// The deadlines' bases and scale.
    pub fn build(&self, source: &str) -> Result<SloDefaults> {
        let bad = |message: String| Error::at_key(source, "slo.bases_s", message);
        let mut bases = Vec::new();
        for (k, &v) in &self.bases_s {
            let res: Resolution = k.parse().map_err(bad)?;
            let base = Nanos::try_from_secs(v)
                .filter(|b| *b > Nanos::ZERO)
                .ok_or_else(|| {
                    bad(format!(
                        "base for {k} must be a positive number of seconds, got {v}",
                        v = crate::error::show_number(v)
                    ))
                })?;
            if bases.iter().any(|(r, _)| *r == res) {
                return Err(bad(format!(
                    "`{k}` names {res}, which another key already sets (`256` and `256x256` are the same resolution)"
                )));
            }
            bases.push((res, base));
        }
        let bases = if bases.is_empty() {
            SloBases::paper()
        } else {
            SloBases::new(bases)
        };
        let scale = self.scale.unwrap_or(1.0);
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::at_key(
                source,
                "slo.scale",
                format!(
                    "expected a positive number, got {scale}",
                    scale = crate::error::show_number(scale)
                ),
            ));
        }
        Ok(SloDefaults { bases, scale })
    }
}

/// Whether two `bases_s` keys name the same resolution (`256` and `256x256`): a layer's key
/// replaces a lower layer's key for the same resolution, however written.
pub fn same_resolution_key(a: &str, b: &str) -> bool {
    match (a.parse::<Resolution>(), b.parse::<Resolution>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

impl WorkloadSection {
    /// The arrival process named by `arrival` (default Poisson); flags check against it.
    pub fn arrival_name(&self) -> &str {
        self.arrival.as_deref().unwrap_or(DEFAULT_ARRIVAL)
    }

    /// Denoising steps per generated request.
    pub fn steps(&self, source: &str) -> Result<u32> {
        let steps = self.steps.unwrap_or(DEFAULT_STEPS);
        if steps == 0 {
            return Err(Error::at_key(
                source,
                "workload.steps",
                "must be at least 1",
            ));
        }
        // Checked here, not only when requests are generated: `trace import` fills rows with
        // these steps and must not write a trace that a replay refuses.
        if steps > crate::workload::MAX_STEPS {
            return Err(Error::at_key(
                source,
                "workload.steps",
                format!(
                    "{steps} steps is more than the {} a request may have",
                    crate::workload::MAX_STEPS
                ),
            ));
        }
        Ok(steps)
    }

    /// How much faster than recorded a trace is replayed (1 for generated workloads).
    pub fn time_scale(&self, source: &str) -> Result<f64> {
        let time_scale = self.time_scale.unwrap_or(1.0);
        if !(time_scale.is_finite() && time_scale > 0.0) {
            return Err(Error::at_key(
                source,
                "workload.time_scale",
                format!(
                    "expected a positive number (2 replays the trace twice as fast), got {time_scale}",
                    time_scale = crate::error::show_number(time_scale)
                ),
            ));
        }
        Ok(time_scale)
    }

    /// Whether the seed draws anything for a trace: the cache's warm-up and skipped steps,
    /// or the skip masks.
    pub fn seeds_a_trace(&self) -> bool {
        self.cache.enabled == Some(true) || self.skipping.probability.is_some_and(|p| p > 0.0)
    }

    /// Where the requests come from: the trace, or a generator seeded with `seed`.
    pub fn build(&self, seed: u64, slo: &SloDefaults, source: &str) -> Result<WorkloadSource> {
        let steps = self.steps(source)?;
        let time_scale = self.time_scale(source)?;
        if self.trace.is_none() && time_scale != 1.0 {
            return Err(Error::Input(
                InputError::new(
                    source,
                    format!(
                        "time_scale {} replays a trace faster or slower, and there is no trace",
                        crate::error::show_number(time_scale)
                    ),
                )
                .field("workload.time_scale")
                .hint("add workload.trace, or drop time_scale (for a faster generated workload raise rate_per_min)"),
            ));
        }
        if let Some(path) = &self.trace {
            return Ok(WorkloadSource::Trace {
                path: PathBuf::from(path),
                slo: slo.clone(),
            });
        }
        let bad = |field: &str, message: String| Error::at_key(source, field, message);
        let arrival = self.arrival(source)?;
        let mix = parse_mix(self.mix.as_deref().unwrap_or(DEFAULT_MIX))
            .map_err(|e| bad("workload.mix", e))?;
        let sampling = match self.sampling.as_deref().unwrap_or(DEFAULT_SAMPLING) {
            "stratified" => Sampling::Stratified,
            "iid" => Sampling::Iid,
            other => {
                return Err(bad(
                    "workload.sampling",
                    format!("unknown sampling `{other}`; expected stratified or iid"),
                ));
            }
        };
        let requests = self.requests.unwrap_or(DEFAULT_REQUESTS);
        if requests == 0 {
            return Err(bad("workload.requests", "must be at least 1".into()));
        }
        if requests > crate::workload::MAX_REQUESTS {
            return Err(bad(
                "workload.requests",
                format!(
                    "{requests} requests is more than the {} a generated workload may have",
                    crate::workload::MAX_REQUESTS
                ),
            ));
        }
        Ok(WorkloadSource::Synthetic(WorkloadSpec {
            requests,
            arrival,
            mix,
            sampling,
            steps,
            slo_scale: slo.scale,
            slo_bases: slo.bases.clone(),
            seed,
        }))
    }

    fn arrival(&self, source: &str) -> Result<ArrivalProcess> {
        let bad = |field: &str, message: String| Error::at_key(source, field, message);
        let rate_per_min = self.rate_per_min.unwrap_or(DEFAULT_RATE_PER_MIN);
        if !(rate_per_min.is_finite() && rate_per_min > 0.0) {
            return Err(bad(
                "workload.rate_per_min",
                format!(
                    "expected a positive number of requests per minute, got {rate_per_min}",
                    rate_per_min = crate::error::show_number(rate_per_min)
                ),
            ));
        }
        let rate_per_s = rate_per_min / 60.0;
        // A key of another arrival process would be ignored: refused instead.
        let name = self.arrival_name();
        for (key, given, owner) in [
            ("workload.cv", self.cv.is_some(), "gamma"),
            ("workload.on_s", self.on_s.is_some(), "on-off"),
            ("workload.off_s", self.off_s.is_some(), "on-off"),
        ] {
            if given && name != owner {
                return Err(Error::Input(
                    InputError::new(
                        source,
                        format!("`{key}` shapes {owner} arrivals, and the arrivals are `{name}`"),
                    )
                    .field(key)
                    .hint(format!(
                        "set `workload.arrival = \"{owner}\"` (--arrival {owner}), or drop the key"
                    )),
                ));
            }
        }
        let arrival = match name {
            "poisson" => ArrivalProcess::Poisson { rate_per_s },
            "gamma" => ArrivalProcess::Gamma {
                rate_per_s,
                cv: self.cv.ok_or_else(|| {
                    bad(
                        "workload.cv",
                        "gamma arrivals need a coefficient of variation `cv` (1 = Poisson, 2-4 = bursty)".into(),
                    )
                })?,
            },
            "constant" => ArrivalProcess::Constant { rate_per_s },
            "on-off" => {
                let secs = |field: &str, v: Option<f64>| {
                    v.and_then(Nanos::try_from_secs)
                        .filter(|n| *n > Nanos::ZERO)
                        .ok_or_else(|| {
                            bad(
                                field,
                                "on-off arrivals need positive `on_s` and `off_s` (seconds; --on-s and --off-s)".into(),
                            )
                        })
                };
                ArrivalProcess::OnOff {
                    rate_per_s,
                    on: secs("workload.on_s", self.on_s)?,
                    off: secs("workload.off_s", self.off_s)?,
                }
            }
            other => {
                return Err(bad(
                    "workload.arrival",
                    format!(
                        "unknown arrival process `{other}`; expected poisson, gamma, constant or on-off"
                    ),
                ));
            }
        };
        arrival.validate_keyed().map_err(|(key, e)| bad(key, e))?;
        Ok(arrival)
    }

    /// `[workload.cache]` and `[workload.skipping]`, validated (each `None` when off).
    pub fn savings(&self, source: &str) -> Result<(Option<CacheSpec>, Option<SkipSpec>)> {
        let cache = if self.cache.enabled.unwrap_or(false) {
            let spec = self.cache.build(source)?;
            if self.trace.is_none() && spec.popularity == Popularity::None {
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
        Ok((cache, self.skipping.build(source)?))
    }
}

impl CacheSection {
    /// The cache these keys describe (whether or not it is enabled).
    fn build(&self, source: &str) -> Result<CacheSpec> {
        let popularity = match self.popularity.as_deref().unwrap_or("zipf") {
            "zipf" => Popularity::Zipf {
                s: self.zipf_s.unwrap_or(1.0),
                prompts: self.prompts.unwrap_or(10_000),
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
        let weights = match (&self.skip_steps, &self.skip_weights) {
            (_, Some(w)) => w.clone(),
            (Some(s), None) => vec![1.0; s.len()],
            (None, None) => weights,
        };
        let spec = CacheSpec {
            capacity: self.capacity.unwrap_or(1_000),
            warmup: self.warmup_requests.unwrap_or(10_000),
            popularity,
            skip_steps: self.skip_steps.clone().unwrap_or(steps),
            skip_weights: weights,
        };
        spec.validate_keyed()
            .map_err(|(key, m)| Error::at_key(source, key, m))?;
        Ok(spec)
    }
}

impl SkippingSection {
    /// The skipping these keys describe; `None` when the probability is 0.
    fn build(&self, source: &str) -> Result<Option<SkipSpec>> {
        let p = self.probability.unwrap_or(0.0);
        let mut skip = SkipSpec::from_probability(p)
            .map_err(|m| Error::at_key(source, "workload.skipping.probability", m))?;
        skip.keep_first = self.keep_first_steps.unwrap_or(1);
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
        Ok((skip.probability_ppm > 0).then_some(skip))
    }
}
