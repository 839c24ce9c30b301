//! Scenarios: what to simulate, read from TOML, overridden from the command line, and
//! validated into a typed [`Scenario`] before anything runs.
//!
//! Parsing and validation are separate steps (as ripgrep's low/high args): [`RawScenario`]
//! (`layers.rs`) mirrors the file with every key optional, one section type per subsystem
//! kept beside that subsystem's code; layers merge as TOML tables (the embedded default <
//! a file < the flags, `flags.rs`). [`Scenario::from_raw`] asks each section to validate
//! itself (cluster shape, rates, policies against the cluster, the cost source), so that
//! problems are reported naming the file and the key before a single event is simulated.

mod flags;
mod layers;

use std::path::Path;

pub use crate::cost::config::{CostSource, load_profile};
pub use crate::workload::config::WorkloadSource;
pub use flags::{Given, Overrides};
pub use layers::{DEFAULT_SCENARIO, RawScenario, RawSweep, merge};

use crate::cluster::Cluster;
use crate::cost::profile::ProfileTable;
use crate::cost::{CostModel, Overheads};
use crate::error::{Error, Result};
use crate::policy::{PolicyConfig, PolicyKind};
use crate::stages::Deployment;
use crate::time::Nanos;
use crate::workload::Workload;
use crate::workload::cache::CacheSpec;
use crate::workload::config::DEFAULT_SEED;
use crate::workload::skipping::SkipSpec;
use layers::DEFAULT_SOURCE;

/// A validated scenario: everything a run needs, checked.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub cluster: Cluster,
    pub cost: CostSource,
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
    /// Where the text encoder and the VAE run: on the denoising GPUs (the default) or on
    /// pools of their own (`crate::stages`).
    pub stages: Deployment,
}

impl RawScenario {
    /// Applies command-line overrides as the top layer; fails on an inconsistent
    /// `--gpus/--nodes/--gpus-per-node` and on a flag the scenario gives nothing to act on (a
    /// generation flag beside a trace, `--cv` without gamma arrivals, `--time-scale` without
    /// a trace).
    pub fn apply(&mut self, o: &Overrides) -> Result<()> {
        let layer = o.layer(self)?;
        *self = self.under(layer)?;
        o.check_against(self)
    }
}

impl Scenario {
    /// Validates a merged raw scenario, section by section. `source` names it in error
    /// messages.
    pub fn from_raw(raw: RawScenario, source: &str) -> Result<Scenario> {
        Scenario::from_raw_with(raw, source, None)
    }

    /// [`from_raw`](Self::from_raw), with `cost` (when given) in place of the cost source
    /// the raw scenario names.
    fn from_raw_with(raw: RawScenario, source: &str, cost: Option<CostSource>) -> Result<Scenario> {
        let cost = match cost {
            Some(c) => c,
            None => raw.cost.build(source)?,
        };
        let cluster = raw.cluster.build(cost.gpu(), source)?;
        let overheads = raw.overheads.build(source)?;
        let mut slo = raw.slo.build(source)?;
        let seed = raw.seed.unwrap_or(DEFAULT_SEED);
        let steps = raw.workload.steps(source)?;
        let time_scale = raw.workload.time_scale(source)?;
        let mut workload = raw.workload.build(seed, &slo, source)?;
        // A video clip of the mix without an SLO base gets one derived from the cost model.
        let mut notes = Vec::new();
        if let WorkloadSource::Synthetic(spec) = &mut workload {
            let derived = crate::slo_fit::video_bases(
                cost.model(),
                &cluster,
                &overheads,
                steps,
                &spec.mix.resolutions(),
                &slo.bases,
            )?;
            for (res, base) in &derived {
                notes.push(format!(
                    "{res} has no SLO base; derived {:.3} s, {} x its lone time at the fastest degree on {} ({steps} steps); set one with --slo-base {res}=SECONDS",
                    base.as_secs(),
                    crate::slo_fit::VIDEO_SLO_MULTIPLE,
                    cost.model().describe()
                ));
            }
            if !derived.is_empty() {
                slo.bases = slo.bases.with(&derived);
                spec.slo_bases = slo.bases.clone();
            }
        }
        let (cache, skipping) = raw.workload.savings(source)?;
        let policies = raw.policy.policies(&cluster, source)?;
        let rssp_runs = policies.contains(&PolicyKind::Rssp);
        let (rssp_degrees, mut warnings) = raw.policy.rssp_degrees(&cluster, rssp_runs, source)?;
        warnings.splice(0..0, notes);
        let stages = raw.stages.build(&cluster.gpu, &overheads, source)?;
        // Disaggregated, the encoder and the VAE run on their pools: the denoising GPUs, and
        // the policies that plan them, no longer pay them.
        let overheads = match &stages {
            Deployment::Colocated => overheads,
            Deployment::Disaggregated(_) => Overheads {
                text_encoder: Nanos::ZERO,
                vae_decode_per_1k_tokens: Nanos::ZERO,
                ..overheads
            },
        };
        let policy_config = PolicyConfig {
            rssp_degrees,
            slo_bases: slo.bases.clone(),
            steps,
            tetriserve: raw.policy.tetriserve.build(source)?,
            stepwise: raw.policy.stepwise.build(source)?,
            overheads,
            video_preemption: raw.policy.video_preemption(source)?,
        };
        warnings.extend(crate::slo_fit::warnings(
            cost.model(),
            &cluster,
            &policy_config,
            slo.scale,
            rssp_runs,
        ));
        let name = raw.name.unwrap_or_else(|| "unnamed".into());
        Ok(Scenario {
            origin: if source == DEFAULT_SOURCE {
                format!("the built-in default scenario `{name}`")
            } else {
                format!("scenario `{name}` from {source}")
            },
            time_scale,
            cache,
            skipping,
            stages,
            name,
            description: raw.description.unwrap_or_default(),
            seed,
            cluster,
            cost,
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
        Scenario::load_with(path, overrides, None)
    }

    /// [`load`](Self::load) with a profile held in memory (a node just measured) as the cost
    /// model, as if it were given by `--profile NAME`: the GPU type, topology, price and power
    /// then default to the profile's, and the run's description names it `NAME`.
    pub fn load_with_profile(
        path: Option<&Path>,
        overrides: &Overrides,
        profile: ProfileTable,
        name: &str,
    ) -> Result<Scenario> {
        let overrides = Overrides {
            profile: Some(name.to_string()),
            ..overrides.clone()
        };
        Scenario::load_with(path, &overrides, Some(CostSource::Profile(profile)))
    }

    /// [`load`](Self::load) for a scenario given as TOML text rather than a file (a language
    /// binding's dictionary): `source` names it in error messages, and relative paths in it
    /// (a trace, a profile) resolve against `dir`.
    pub fn load_text(
        text: &str,
        source: &str,
        dir: &Path,
        overrides: &Overrides,
    ) -> Result<Scenario> {
        let raw = RawScenario::parse(text, source, dir)?.or(RawScenario::default_scenario());
        Scenario::load_raw(raw, source.to_string(), overrides, None)
    }

    fn load_with(
        path: Option<&Path>,
        overrides: &Overrides,
        cost: Option<CostSource>,
    ) -> Result<Scenario> {
        let (raw, source) = RawScenario::load_merged(path)?;
        Scenario::load_raw(raw, source, overrides, cost)
    }

    /// Applies `overrides` to a scenario merged onto the default, validates it, and checks
    /// the flags against it.
    fn load_raw(
        mut raw: RawScenario,
        source: String,
        overrides: &Overrides,
        cost: Option<CostSource>,
    ) -> Result<Scenario> {
        raw.apply(overrides)?;
        let mut scenario =
            Scenario::from_raw_with(raw, &source, cost).map_err(|e| overrides.blame(e))?;
        overrides.check_policies(&scenario)?;
        let flags = overrides.summary();
        if !flags.is_empty() {
            scenario.origin = format!("{}, overridden by {flags}", scenario.origin);
        }
        Ok(scenario)
    }

    /// The model the costs describe (`flux1-dev`, `sd3-medium`): what `--real` builds.
    pub fn model_name(&self) -> &str {
        self.cost.model_name()
    }

    pub fn cost_model(&self) -> &dyn CostModel {
        self.cost.model()
    }

    /// Refuses disaggregated stages for `what` (a command or backend that models co-located
    /// stages only).
    pub fn colocated_only(&self, what: &str) -> Result<()> {
        match self.stages {
            Deployment::Colocated => Ok(()),
            Deployment::Disaggregated(_) => Err(Error::config_hint(
                format!("{what} runs co-located stages only, and this scenario disaggregates them"),
                "drop --stages disaggregated (or set `mode = \"colocated\"` in [stages]); simulate disaggregated stages without it",
            )),
        }
    }

    /// The costs outside steps: the executor charges them and the policies plan with them,
    /// so they are kept once, in the policies' configuration.
    pub fn overheads(&self) -> &Overheads {
        &self.policy_config.overheads
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_scenario_given_as_text_loads_as_the_same_file_would() {
        let text = "[workload]\nrequests = 40\nrate_per_min = 20.0\n";
        let dir = std::env::temp_dir().join(format!("tetriserve-load-text-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("s.toml");
        std::fs::write(&file, text).unwrap();
        let o = Overrides {
            seed: Some(9),
            ..Overrides::default()
        };
        let from_file = Scenario::load(Some(&file), &o).unwrap();
        let from_text = Scenario::load_text(text, "scenario dict", &dir, &o).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let (a, b) = (
            from_file.load_workload().unwrap(),
            from_text.load_workload().unwrap(),
        );
        assert_eq!(a.requests.len(), 40);
        assert_eq!(a.requests, b.requests);
        assert_eq!(from_text.policies, from_file.policies);
        assert!(
            from_text.origin.contains("scenario dict"),
            "{}",
            from_text.origin
        );
        // An error names the text's source and line.
        let e = Scenario::load_text(
            "\n[workload]\nrequests = \"many\"\n",
            "scenario dict",
            &dir,
            &o,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("scenario dict:3"), "{e}");
    }

    use super::*;
    use crate::cluster::config::ClusterSection;
    use crate::cost::config::{AnalyticSection, CostSection, OverheadsSection};
    use crate::policy::TetriserveConfig;
    use crate::policy::config::{PolicySection, RsspSection};
    use crate::policy::tetriserve::TetriserveSection;
    use crate::workload::config::{CacheSection, SkippingSection, SloSection, WorkloadSection};
    use std::path::Path;

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
        let empty = crate::policy::tetriserve::TetriserveSection::default()
            .build("empty.toml")
            .unwrap();
        assert_eq!(empty, TetriserveConfig::default());
        let shipped = Scenario::from_raw(RawScenario::default_scenario(), "default.toml").unwrap();
        assert_eq!(
            shipped.policy_config.tetriserve,
            TetriserveConfig::default(),
            "scenarios/default.toml's [policy.tetriserve] disagrees with TetriserveConfig::default()"
        );
    }

    /// Every default has one source, the code of its section (`DEFAULT_*` constants,
    /// `Overheads::default`, `TetriserveConfig::default`, `SloBases::paper`,
    /// `Rssp::paper_degrees`); `scenarios/default.toml` repeats them for users. A scenario
    /// giving only what has no default (the cost source) must resolve exactly as the shipped
    /// default scenario does.
    #[test]
    fn every_default_has_one_source() {
        let shipped = RawScenario::default_scenario();
        let bare = RawScenario {
            name: shipped.name.clone(),
            description: shipped.description.clone(),
            cost: shipped.cost.clone(),
            ..RawScenario::default()
        };
        let resolved = |raw: RawScenario| {
            let s = Scenario::from_raw(raw, DEFAULT_SOURCE).unwrap();
            format!(
                "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{}\n{:?}",
                s.cluster,
                s.policy_config,
                s.workload,
                s.policies,
                s.cache,
                s.skipping,
                s.seed,
                s.time_scale,
                s.model_name(),
                s.warnings,
            )
        };
        let (code, file) = (resolved(bare), resolved(shipped));
        for (c, f) in code.lines().zip(file.lines()) {
            assert_eq!(
                c, f,
                "scenarios/default.toml disagrees with the code's default"
            );
        }
    }

    /// `[workload.cache]` and `[workload.skipping]` are commented out in
    /// `scenarios/default.toml` (so that scenarios without them keep their sweep digests),
    /// with "the values shown are the defaults": uncommented, they must change nothing.
    #[test]
    fn commented_defaults_are_the_code_defaults() {
        let mut uncommented = String::new();
        let mut section = "";
        for line in DEFAULT_SCENARIO.lines() {
            if line.starts_with('[') {
                section = line.trim();
                uncommented.push_str(line);
            } else if matches!(
                section,
                "[workload.cache]" | "[workload.skipping]" | "[stages]"
            ) && let Some(rest) = line.strip_prefix("# ")
                && rest.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                })
            {
                uncommented.push_str(rest);
            } else {
                uncommented.push_str(line);
            }
            uncommented.push('\n');
        }
        let shown = RawScenario::parse(&uncommented, "uncommented", Path::new(".")).unwrap();
        // Disaggregated, the stages shown build the pools the code's defaults build.
        let disaggregated = |s: crate::stages::config::StagesSection| {
            let s = crate::stages::config::StagesSection {
                mode: Some("disaggregated".into()),
                ..s
            };
            s.build("h100", &Overheads::default(), "s").unwrap()
        };
        assert_eq!(shown.stages.encode_gpu.as_deref(), Some("h100"), "read");
        assert_eq!(
            disaggregated(shown.stages.clone()),
            disaggregated(Default::default())
        );
        let shown = shown.workload;
        assert_eq!(
            shown.cache.capacity,
            Some(1000),
            "the cache's keys were read"
        );
        assert_eq!(shown.skipping.keep_first_steps, Some(1));
        let on = |mut w: WorkloadSection| {
            w.cache.enabled = Some(true);
            w.skipping.probability = Some(0.25);
            format!("{:?}", w.savings("s").unwrap())
        };
        assert_eq!(on(shown), on(WorkloadSection::default()));
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
            ("[cluster]", keys_of::<ClusterSection>()),
            ("[cost]", keys_of::<CostSection>()),
            ("[cost] analytic", keys_of::<AnalyticSection>()),
            ("[overheads]", keys_of::<OverheadsSection>()),
            ("[workload]", keys_of::<WorkloadSection>()),
            ("[workload.cache]", keys_of::<CacheSection>()),
            ("[workload.skipping]", keys_of::<SkippingSection>()),
            ("[slo]", keys_of::<SloSection>()),
            ("[policy]", keys_of::<PolicySection>()),
            ("[policy.rssp]", keys_of::<RsspSection>()),
            ("[policy.tetriserve]", keys_of::<TetriserveSection>()),
            (
                "[stages]",
                keys_of::<crate::stages::config::StagesSection>(),
            ),
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
