//! A scenario file as written ([`RawScenario`]: every key optional, one section type per
//! subsystem) and how layers of them combine: the embedded default < a file < the flags.
//!
//! Layers merge as TOML tables, once, by one set of rules ([`merge`]), and the result is
//! deserialised into a `RawScenario`; nothing merges field by field. Each section type lives
//! beside the code it configures (`cluster::config`, `cost::config`, `workload::config`,
//! `policy::config`, `policy::tetriserve`) with its defaults and validation.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cluster::config::{ClusterSection, GPU_TYPE_KEYS};
use crate::cost::config::{CostSection, OverheadsSection, looks_like_path};
use crate::error::{Error, InputError, Result};
use crate::policy::config::PolicySection;
use crate::stages::config::StagesSection;
use crate::workload::config::{SloSection, WorkloadSection, same_resolution_key};

/// The default scenario, embedded so that `tetriserve simulate` needs no files.
pub const DEFAULT_SCENARIO: &str = include_str!("../../scenarios/default.toml");
pub(super) const DEFAULT_SOURCE: &str = "<embedded scenarios/default.toml>";

/// A scenario file as written: every key optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: Option<String>,
    pub description: Option<String>,
    pub seed: Option<u64>,
    #[serde(default)]
    pub cluster: ClusterSection,
    #[serde(default)]
    pub cost: CostSection,
    #[serde(default)]
    pub overheads: OverheadsSection,
    #[serde(default)]
    pub workload: WorkloadSection,
    #[serde(default)]
    pub slo: SloSection,
    #[serde(default)]
    pub policy: PolicySection,
    #[serde(default)]
    pub stages: StagesSection,
    /// A grid of runs for `tetriserve sweep`; every list left out is the scenario's value.
    pub sweep: Option<RawSweep>,
}

/// `[sweep]`: the grid of `tetriserve sweep` (`sweep/mod.rs` expands it).
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
    /// With `gpus`: the rate and the request count are those of the scenario's own cluster,
    /// and a point with `k` times its GPUs runs `k` times both (the same load per GPU for the
    /// same time).
    pub scale_load_with_gpus: Option<bool>,
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

    /// `self` laid over `base`: every key `self` leaves unset comes from `base` ([`merge`]).
    pub fn or(self, base: RawScenario) -> RawScenario {
        base.under(table_of(&self))
            .expect("two well-typed scenario layers merge into a well-typed scenario")
    }

    /// `self` with the TOML table `layer` laid over it ([`merge`]), deserialised again.
    pub(super) fn under(&self, layer: toml::Table) -> Result<RawScenario> {
        let mut merged = table_of(self);
        merge(&mut merged, layer);
        toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| {
                Error::config(format!("merging scenario layers: {}", e.message()))
            })
    }
}

/// A typed layer as a TOML table (unset keys absent).
fn table_of(raw: &RawScenario) -> toml::Table {
    // Every field serialises: strings, numbers within TOML's range (they were read from TOML
    // or checked when the flag layer was built), booleans, lists and tables.
    toml::Table::try_from(raw).expect("a scenario layer serialises to TOML")
}

/// Lays `upper` over `lower`, the one place layers combine:
/// - tables merge key by key, recursively; any other value of `upper` (a number, a string, a
///   list) replaces `lower`'s;
/// - a `[cost]` in `upper` that chooses a cost source replaces `lower`'s `[cost]` whole, and
///   drops `lower`'s GPU-type keys of `[cluster]` (the GPU, its topology, price and power
///   describe `lower`'s hardware, and now default to the new cost source's);
/// - a `slo.bases_s` key replaces `lower`'s key for the same resolution however written
///   (`256` and `256x256`);
/// - `policy.tetriserve.granularity_steps` without `tau_ms` drops `lower`'s `tau_ms` (both
///   set the round length, and the upper layer decides);
/// - `workload.arrival` drops `lower`'s keys of an arrival process (`cv`, `on_s`, `off_s`):
///   they shaped `lower`'s arrivals, and a key of another process is refused, not ignored;
/// - `[sweep]` replaces `lower`'s whole: a grid is one unit.
pub fn merge(lower: &mut toml::Table, mut upper: toml::Table) {
    let chooses_cost = upper
        .get("cost")
        .and_then(toml::Value::as_table)
        .is_some_and(|c| c.contains_key("profile") || c.contains_key("analytic"));
    if chooses_cost {
        lower.remove("cost");
        if let Some(toml::Value::Table(cluster)) = lower.get_mut("cluster") {
            for key in GPU_TYPE_KEYS {
                cluster.remove(key);
            }
        }
    }
    if let Some(upper_bases) = table_at(&upper, &["slo", "bases_s"]).cloned()
        && let Some(toml::Value::Table(slo)) = lower.get_mut("slo")
        && let Some(toml::Value::Table(bases)) = slo.get_mut("bases_s")
    {
        bases.retain(|k, _| !upper_bases.keys().any(|u| same_resolution_key(u, k)));
    }
    if let Some(t) = table_at(&upper, &["policy", "tetriserve"])
        && t.contains_key("granularity_steps")
        && !t.contains_key("tau_ms")
        && let Some(toml::Value::Table(policy)) = lower.get_mut("policy")
        && let Some(toml::Value::Table(lower_t)) = policy.get_mut("tetriserve")
    {
        lower_t.remove("tau_ms");
    }
    if table_at(&upper, &["workload"]).is_some_and(|w| w.contains_key("arrival"))
        && let Some(toml::Value::Table(workload)) = lower.get_mut("workload")
    {
        for key in ["cv", "on_s", "off_s"] {
            workload.remove(key);
        }
    }
    if let Some(sweep) = upper.remove("sweep") {
        lower.insert("sweep".into(), sweep);
    }
    deep_merge(lower, upper);
}

fn deep_merge(lower: &mut toml::Table, upper: toml::Table) {
    for (k, v) in upper {
        match (lower.get_mut(&k), v) {
            (Some(toml::Value::Table(l)), toml::Value::Table(u)) => deep_merge(l, u),
            (_, v) => {
                lower.insert(k, v);
            }
        }
    }
}

fn table_at<'a>(t: &'a toml::Table, path: &[&str]) -> Option<&'a toml::Table> {
    let mut at = t;
    for p in path {
        at = at.get(*p)?.as_table()?;
    }
    Some(at)
}

/// For serde's "unknown field `x`, expected one of `a`, `b`", a "did you mean" hint.
fn unknown_key_suggestion(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let near = crate::suggest::closest(key, &expected)?;
    Some(format!("did you mean `{near}`?"))
}
