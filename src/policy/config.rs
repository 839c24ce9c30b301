//! The `[policy]` section of a scenario (`run`, `[policy.rssp]`, `[policy.tetriserve]`): the
//! keys as written, their defaults, and their validation into the policies to run and the
//! [`PolicyConfig`] they are built with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::tetriserve::TetriserveSection;
use super::{PolicyKind, Rssp, VideoPreemption};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::workload::Resolution;

/// RSSP's degree per resolution, as [`PolicyConfig`](super::PolicyConfig) holds them.
pub type RsspDegrees = Vec<(Resolution, u32)>;

/// What runs when the scenario names no policy.
pub const DEFAULT_RUN: &str = "all";

/// `[policy]` as written.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    pub run: Option<Vec<String>>,
    #[serde(default)]
    pub rssp: RsspSection,
    #[serde(default)]
    pub tetriserve: TetriserveSection,
    #[serde(default)]
    pub stepwise: StepwiseSection,
    /// `"step-boundary"` (the default) or `"none"`: whether video clips may be preempted at
    /// step boundaries ([`VideoPreemption`]).
    pub video_preemption: Option<String>,
}

/// `[policy.stepwise]`: what `stepwise` does with a request that cannot be met whatever
/// happens (`hopeless = "give-up"`, the default, or `"serve"`, best-effort), and how long its
/// grants are (`grants = "revocable"`, the default where the executor can cut work, or
/// `"one-step"`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepwiseSection {
    pub hopeless: Option<String>,
    pub grants: Option<String>,
}

impl StepwiseSection {
    /// The policy's configuration, or an error naming the key.
    pub fn build(&self, source: &str) -> Result<crate::policy::StepwiseConfig> {
        let mut config = crate::policy::StepwiseConfig::default();
        match self.hopeless.as_deref() {
            None => {}
            Some("give-up") => config.give_up_hopeless = true,
            Some("serve") => config.give_up_hopeless = false,
            Some(other) => {
                return Err(Error::at_key(
                    source,
                    "policy.stepwise.hopeless",
                    format!("expected \"give-up\" or \"serve\", got \"{other}\""),
                ));
            }
        }
        match self.grants.as_deref() {
            None => {}
            Some("revocable") => config.revocable_grants = true,
            Some("one-step") => config.revocable_grants = false,
            Some(other) => {
                return Err(Error::at_key(
                    source,
                    "policy.stepwise.grants",
                    format!("expected \"revocable\" or \"one-step\", got \"{other}\""),
                ));
            }
        }
        Ok(config)
    }
}

/// `[policy.rssp]`: RSSP's degree per resolution; left empty, the paper's
/// ([`Rssp::paper_degrees`]).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RsspSection {
    #[serde(default)]
    pub degrees: BTreeMap<String, u32>,
}

impl PolicySection {
    /// `video_preemption`, or an error naming the key.
    pub fn video_preemption(&self, source: &str) -> Result<VideoPreemption> {
        match self.video_preemption.as_deref() {
            None => Ok(VideoPreemption::default()),
            Some(name) => VideoPreemption::parse(name).ok_or_else(|| {
                Error::at_key(
                    source,
                    "policy.video_preemption",
                    format!("expected \"step-boundary\" or \"none\", got \"{name}\""),
                )
            }),
        }
    }

    /// The policies to run on `cluster`, `all`, `paper` and `ablation` expanded, each once.
    pub fn policies(&self, cluster: &Cluster, source: &str) -> Result<Vec<PolicyKind>> {
        let default = [DEFAULT_RUN.to_string()];
        let names = self.run.as_deref().unwrap_or(&default);
        let mut policies = Vec::new();
        for n in names {
            if n == "all" {
                policies.extend(PolicyKind::all_for(cluster));
            } else if n == "paper" {
                policies.extend(PolicyKind::paper_for(cluster));
            } else if n == "ablation" {
                policies.extend(PolicyKind::ablation());
            } else {
                policies.push(
                    n.parse::<PolicyKind>()
                        .map_err(|e| Error::at_key(source, "policy.run", e))?,
                );
            }
        }
        let mut seen = std::collections::HashSet::new();
        policies.retain(|p| seen.insert(*p));
        Ok(policies)
    }

    /// RSSP's listed degrees that fit `cluster`, and a warning for each that does not (when
    /// RSSP runs): on smaller nodes than the map was written for, RSSP's own rule (the
    /// smallest degree meeting the SLO in isolation) picks the degree instead.
    pub fn rssp_degrees(
        &self,
        cluster: &Cluster,
        rssp_runs: bool,
        source: &str,
    ) -> Result<(RsspDegrees, Vec<String>)> {
        let listed = if self.rssp.degrees.is_empty() {
            Rssp::paper_degrees()
        } else {
            let mut listed = Vec::new();
            for (k, &d) in &self.rssp.degrees {
                let res: Resolution = k
                    .parse()
                    .map_err(|e: String| Error::at_key(source, "policy.rssp.degrees", e))?;
                listed.push((res, d));
            }
            // In resolution order, as the paper's map and the SLO bases are (stable: of two
            // keys for one resolution, the first in key order is the one looked up).
            listed.sort_by_key(|(r, _)| (r.tokens(), r.width, r.height));
            listed
        };
        let mut degrees = Vec::new();
        let mut warnings = Vec::new();
        for (res, d) in listed {
            if d > cluster.gpus_per_node && rssp_runs {
                warnings.push(format!(
                    "rssp: {res} -> SP {d} does not fit nodes of {} GPUs; using the smallest degree that meets its SLO in isolation",
                    cluster.gpus_per_node
                ));
                continue;
            }
            degrees.push((res, d));
        }
        Ok((degrees, warnings))
    }
}
