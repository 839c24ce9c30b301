//! Command-line flags that adjust a scenario: each flag declared once, with the scenario key
//! it sets, and applied as the top layer of the scenario (built-in default < file < flags).
//!
//! A flag knows its key so that an error in that key names the flag (`--rate -1`, not the
//! embedded default scenario), and so that a flag the scenario gives nothing to act on (a
//! generation flag beside a trace, `--cv` without gamma arrivals, TetriServe tuning without a
//! TetriServe policy) is refused instead of silently ignored.

use std::path::PathBuf;

use super::{RawScenario, Scenario};
use crate::cluster::config::DEFAULT_GPUS_PER_NODE;
use crate::error::{Error, Result};
use crate::policy::PolicyKind;

/// The most `--slo-base` flags one command takes.
pub const MAX_SLO_BASE_FLAGS: usize = 64;

/// One flag an [`Overrides`] sets: its name, the scenario key it replaces and its value as
/// typed, so that messages can name the flag rather than the key.
#[derive(Clone, Debug, PartialEq)]
pub struct Given {
    pub flag: &'static str,
    pub key: &'static str,
    pub value: String,
    /// A flag that shapes a generated workload, refused beside a trace.
    pub generation: bool,
    /// The value as the scenario layer holds it; `None` where it has no TOML form (an
    /// integer past 2^63 - 1) or where the key is derived (`--gpus`).
    layer: Option<toml::Value>,
}

/// Declares [`Overrides`]: one line per flag, `field: Type => "--flag", "scenario.key",
/// generation`. The struct, [`Overrides::given`] (and so the flag layer, the blame of a bad
/// value and the refusals) all come from this one table, in its order.
macro_rules! overrides {
    ($($(#[$doc:meta])* $field:ident: $ty:ty => $flag:literal, $key:literal, $generation:literal;)*) => {
        /// Command-line values that replace the scenario's (`None` = keep the scenario's).
        #[derive(Clone, Debug, Default)]
        pub struct Overrides {
            /// `--policy` (repeatable): `policy.run`.
            pub policies: Vec<String>,
            /// `--slo-base RES=SECONDS` (repeatable): entries of `slo.bases_s`, each replacing
            /// the scenario's base for its resolution.
            pub slo_bases: Vec<(crate::workload::Resolution, f64)>,
            $($(#[$doc])* pub $field: Option<$ty>,)*
        }

        impl Overrides {
            /// The flags these overrides set, in a fixed order.
            pub fn given(&self) -> Vec<Given> {
                let mut out = Vec::new();
                if !self.policies.is_empty() {
                    out.push(Given {
                        flag: "--policy",
                        key: "policy.run",
                        value: self.policies.join(","),
                        generation: false,
                        layer: toml::Value::try_from(&self.policies).ok(),
                    });
                }
                if !self.slo_bases.is_empty() {
                    let mut bases = toml::Table::new();
                    for (res, secs) in &self.slo_bases {
                        bases.insert(res.to_string(), toml::Value::Float(*secs));
                    }
                    out.push(Given {
                        flag: "--slo-base",
                        key: "slo.bases_s",
                        value: self
                            .slo_bases
                            .iter()
                            .map(|(r, v)| format!("{r}={}", crate::error::show_number(*v)))
                            .collect::<Vec<_>>()
                            .join(","),
                        generation: false,
                        layer: Some(toml::Value::Table(bases)),
                    });
                }
                $(if let Some(v) = &self.$field {
                    out.push(Given {
                        flag: $flag,
                        key: $key,
                        value: Shown::shown(v),
                        generation: $generation,
                        layer: ($key != "cluster")
                            .then(|| Shown::layer(v))
                            .flatten(),
                    });
                })*
                out
            }
        }
    };
}

overrides! {
    trace: PathBuf => "--trace", "workload.trace", false;
    time_scale: f64 => "--time-scale", "workload.time_scale", false;
    profile: String => "--profile", "cost.profile", false;
    /// Total GPUs, split into `cluster.nodes` x `cluster.gpus_per_node` (see `apply`).
    gpus: u32 => "--gpus", "cluster", false;
    nodes: u32 => "--nodes", "cluster.nodes", false;
    gpus_per_node: u32 => "--gpus-per-node", "cluster.gpus_per_node", false;
    seed: u64 => "--seed", "seed", true;
    rate_per_min: f64 => "--rate", "workload.rate_per_min", true;
    arrival: String => "--arrival", "workload.arrival", true;
    cv: f64 => "--cv", "workload.cv", true;
    on_s: f64 => "--on-s", "workload.on_s", true;
    off_s: f64 => "--off-s", "workload.off_s", true;
    requests: usize => "--requests", "workload.requests", true;
    mix: String => "--mix", "workload.mix", true;
    steps: u32 => "--steps", "workload.steps", true;
    slo_scale: f64 => "--slo-scale", "slo.scale", false;
    granularity_steps: u32 => "--granularity", "policy.tetriserve.granularity_steps", false;
    tau_ms: f64 => "--tau-ms", "policy.tetriserve.tau_ms", false;
    tie_break: String => "--tie-break", "policy.tetriserve.tie_break", false;
    stages: String => "--stages", "stages.mode", false;
    encode_gpus: u32 => "--encode-gpus", "stages.encode_gpus", false;
    decode_gpus: u32 => "--decode-gpus", "stages.decode_gpus", false;
    video_preemption: String => "--video-preemption", "policy.video_preemption", false;
}

/// How a flag's value is shown in messages and held in the flag layer.
trait Shown {
    fn shown(&self) -> String;
    fn layer(&self) -> Option<toml::Value>;
}

macro_rules! shown_by_display {
    ($($t:ty),*) => {$(
        impl Shown for $t {
            fn shown(&self) -> String {
                self.to_string()
            }
            fn layer(&self) -> Option<toml::Value> {
                toml::Value::try_from(self).ok()
            }
        }
    )*};
}
shown_by_display!(u32, u64, usize, String);

impl Shown for f64 {
    fn shown(&self) -> String {
        crate::error::show_number(*self)
    }
    fn layer(&self) -> Option<toml::Value> {
        toml::Value::try_from(self).ok()
    }
}

impl Shown for PathBuf {
    fn shown(&self) -> String {
        self.display().to_string()
    }
    fn layer(&self) -> Option<toml::Value> {
        Some(toml::Value::String(self.to_string_lossy().into_owned()))
    }
}

impl Overrides {
    /// The flags as the top scenario layer: a TOML table of the keys they set. `--gpus` is
    /// split here into nodes and GPUs per node, against the GPUs per node of `below`.
    pub(super) fn layer(&self, below: &RawScenario) -> Result<toml::Table> {
        self.check_slo_bases()?;
        let mut layer = toml::Table::new();
        for g in self.given() {
            if g.key == "cluster" {
                continue;
            }
            let value = g.layer.ok_or_else(|| {
                Error::config_hint(
                    format!("{} {}: too large for a scenario value", g.flag, g.value),
                    "give a value of at most 9223372036854775807 (2^63 - 1)",
                )
            })?;
            insert(&mut layer, g.key, value);
        }
        if let Some((nodes, per_node)) = self.shape(below.cluster.gpus_per_node)? {
            insert(
                &mut layer,
                "cluster.nodes",
                toml::Value::from(i64::from(nodes)),
            );
            insert(
                &mut layer,
                "cluster.gpus_per_node",
                toml::Value::from(i64::from(per_node)),
            );
        }
        Ok(layer)
    }

    /// Refuses more than [`MAX_SLO_BASE_FLAGS`] `--slo-base` flags, and two for one
    /// resolution (`2048` and `2048x2048` are the same), which would leave one unused.
    fn check_slo_bases(&self) -> Result<()> {
        if self.slo_bases.len() > MAX_SLO_BASE_FLAGS {
            return Err(Error::config_hint(
                format!(
                    "--slo-base is given {} times, more than the {MAX_SLO_BASE_FLAGS} one command takes",
                    self.slo_bases.len()
                ),
                "set many bases in a scenario file, under [slo] bases_s",
            ));
        }
        for (i, (r, _)) in self.slo_bases.iter().enumerate() {
            if self.slo_bases[..i].iter().any(|(q, _)| q == r) {
                return Err(Error::config_hint(
                    format!("--slo-base sets {r} twice"),
                    format!("give one --slo-base {r}=SECONDS"),
                ));
            }
        }
        Ok(())
    }

    /// The cluster shape `--gpus` asks for (with `--nodes` or `--gpus-per-node` if given),
    /// where `below` is the scenario's GPUs per node; `None` without `--gpus`.
    fn shape(&self, below: Option<u32>) -> Result<Option<(u32, u32)>> {
        let Some(g) = self.gpus else {
            return Ok(None);
        };
        let shape_error = |msg: String| {
            Error::config_hint(
                msg,
                "--gpus is the total; give --nodes or --gpus-per-node so that the other divides it",
            )
        };
        match (self.nodes, self.gpus_per_node) {
            (Some(n), Some(p)) if u64::from(g) != u64::from(n) * u64::from(p) => Err(shape_error(
                format!("--gpus {g} is not --nodes {n} x --gpus-per-node {p}"),
            )),
            (Some(n), _) => {
                if n == 0 || g % n != 0 {
                    return Err(shape_error(format!(
                        "--gpus {g} cannot be split evenly over --nodes {n}"
                    )));
                }
                Ok(Some((n, g / n)))
            }
            (None, p) => {
                // One node of `g` GPUs if it fits the node size, else nodes of that size.
                let per_node = p.or(below).unwrap_or(DEFAULT_GPUS_PER_NODE);
                if p.is_none() && g <= per_node {
                    Ok(Some((1, g)))
                } else if per_node > 0 && g % per_node == 0 {
                    Ok(Some((g / per_node, per_node)))
                } else {
                    Err(shape_error(format!(
                        "--gpus {g} is not a multiple of {per_node} GPUs per node"
                    )))
                }
            }
        }
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
        // `--gpus` sets the cluster's shape: errors in either of its keys are its.
        let sets = |key: &str| {
            key == field
                || (key == "cluster" && matches!(field, "cluster.nodes" | "cluster.gpus_per_node"))
        };
        // `--slo-base` values are checked when parsed: an error in `slo.bases_s` is the file's.
        if let Some(g) = self
            .given()
            .into_iter()
            .find(|g| sets(g.key) && g.flag != "--slo-base")
        {
            return Error::Config {
                message: format!("{} `{}`: {}", g.flag, g.value, ie.message),
                hint: ie.hint.clone(),
            };
        }
        // A key `--arrival` asks for and no flag gives: name the flag that would give it,
        // not the embedded default scenario, which has no such key to fix.
        if let Some(arrival) = &self.arrival {
            let needs = match field {
                "workload.cv" if self.cv.is_none() => Some("--cv CV (1 = Poisson, 2-4 = bursty)"),
                "workload.on_s" | "workload.off_s"
                    if self.on_s.is_none() || self.off_s.is_none() =>
                {
                    Some("--on-s SECONDS and --off-s SECONDS")
                }
                _ => None,
            };
            if let Some(needs) = needs {
                let flag = needs.split(' ').next().unwrap_or(needs);
                return Error::Config {
                    message: format!("--arrival {arrival} needs {flag}: {}", ie.message),
                    hint: Some(format!("add {needs}, or choose another --arrival")),
                };
            }
        }
        e
    }

    /// Refuses flags that the merged scenario `raw` gives nothing to act on.
    pub(super) fn check_against(&self, raw: &RawScenario) -> Result<()> {
        let given = self.given();
        if let Some(trace) = &raw.workload.trace {
            // The seed also draws the cache's warm-up and k, and the skip masks: with either
            // on, `--seed` acts on a trace too.
            let seeded = raw.workload.seeds_a_trace();
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
        let arrival = raw.workload.arrival_name();
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
        if !raw.stages.disaggregated() {
            for (flag, v) in [
                ("--encode-gpus", self.encode_gpus),
                ("--decode-gpus", self.decode_gpus),
            ] {
                if let Some(v) = v {
                    return Err(Error::config_hint(
                        format!(
                            "{flag} {v} sizes a pool of disaggregated stages, and the stages are co-located"
                        ),
                        format!("add --stages disaggregated, or drop {flag}"),
                    ));
                }
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

    /// Refuses TetriServe tuning when no TetriServe variant runs, and `--video-preemption`
    /// when the generated mix holds no video clip (a trace is only read when it runs; its
    /// images ignore the mode).
    pub(super) fn check_policies(&self, scenario: &Scenario) -> Result<()> {
        if let (Some(mode), super::WorkloadSource::Synthetic(spec)) =
            (&self.video_preemption, &scenario.workload)
            && !spec
                .mix
                .probabilities()
                .iter()
                .any(|(r, p)| r.is_video() && *p > 0.0)
        {
            return Err(Error::config_hint(
                format!(
                    "--video-preemption {mode} decides how video clips are preempted, and the mix ({}) holds none",
                    spec.mix
                ),
                "add a clip to the mix (--mix custom:1024=90%,video:480p:81=10%), or drop --video-preemption",
            ));
        }
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
                } else if g.flag == "--slo-base" {
                    g.value
                        .split(',')
                        .map(|b| format!("--slo-base {b}"))
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

/// Sets the dotted `key` (`workload.rate_per_min`) of `table` to `value`.
fn insert(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts = key.split('.').peekable();
    let mut at = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            at.insert(part.to_string(), value);
            return;
        }
        let next = at
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !next.is_table() {
            *next = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(t) = next else {
            return;
        };
        at = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every declared flag names a key the scenario has, with a value of the key's type: a
    /// misspelt key in the `overrides!` table would be refused here as an unknown field.
    #[test]
    fn every_flag_sets_a_real_scenario_key() {
        let all = Overrides {
            policies: vec!["rssp".into()],
            slo_bases: vec![(crate::workload::Resolution::square(2048), 7.5)],
            trace: Some("t.csv".into()),
            time_scale: Some(2.0),
            profile: Some("h100-flux1-dev".into()),
            gpus: Some(16),
            nodes: Some(2),
            gpus_per_node: Some(8),
            seed: Some(3),
            rate_per_min: Some(6.0),
            arrival: Some("gamma".into()),
            cv: Some(2.0),
            on_s: Some(1.0),
            off_s: Some(1.0),
            requests: Some(10),
            mix: Some("uniform".into()),
            steps: Some(20),
            slo_scale: Some(1.5),
            granularity_steps: Some(3),
            tau_ms: Some(100.0),
            tie_break: Some("work".into()),
            stages: Some("disaggregated".into()),
            encode_gpus: Some(2),
            decode_gpus: Some(3),
            video_preemption: Some("none".into()),
        };
        let given = all.given();
        assert_eq!(given.len(), 25, "every flag is reported");
        for g in &given {
            let mut layer = toml::Table::new();
            if g.key == "cluster" {
                continue;
            }
            insert(&mut layer, g.key, g.layer.clone().expect(g.flag));
            let raw: std::result::Result<RawScenario, _> = toml::Value::Table(layer).try_into();
            assert!(raw.is_ok(), "{} sets `{}`: {raw:?}", g.flag, g.key);
        }
        let layer = all.layer(&RawScenario::default()).unwrap();
        let raw: RawScenario = toml::Value::Table(layer).try_into().unwrap();
        assert_eq!(raw.workload.rate_per_min, Some(6.0));
        assert_eq!(raw.policy.tetriserve.tau_ms, Some(100.0));
        assert_eq!(raw.stages.decode_gpus, Some(3));
        assert_eq!(raw.policy.video_preemption.as_deref(), Some("none"));
        assert_eq!(raw.slo.bases_s.get("2048x2048"), Some(&7.5));
        assert_eq!(
            (raw.cluster.nodes, raw.cluster.gpus_per_node),
            (Some(2), Some(8))
        );
    }

    /// A value the scenario cannot hold is refused by the flag, not wrapped or panicked on.
    #[test]
    fn a_seed_past_toml_integers_is_refused_by_name() {
        let o = Overrides {
            seed: Some(u64::MAX),
            ..Overrides::default()
        };
        let e = o.layer(&RawScenario::default()).unwrap_err().to_string();
        assert!(
            e.starts_with("--seed 18446744073709551615: too large"),
            "{e}"
        );
    }
}
