//! Scheduling policies: strategies that look at a read-only [`View`] of the system and return
//! [`Decision`]s. Only the engine changes state.
//!
//! A policy is called at every decision point (arrivals, completed work, a timer it asked
//! for). It knows nothing about whether time is simulated or measured on real GPUs: it sees
//! `now` and the state, and answers with dispatches ("run request r for q steps on GPU set G"),
//! timers and drops. That is what lets `--real` run the very same scheduler code.
//!
//! Adding a policy: one file here, one [`PolicyKind`] variant, one row in the registry
//! ([`PolicyKind::all`]: name, description, chart colour), one arm in [`build`].

pub mod config;
mod fixed_sp;
mod rssp;
mod run_to_completion;
mod stepwise;
pub mod tetriserve;
mod view;

pub use fixed_sp::FixedSp;
pub use rssp::Rssp;
pub use run_to_completion::{RunToCompletion, VideoPreemption};
pub use stepwise::{Stepwise, StepwiseConfig};
pub use tetriserve::{Tetriserve, TetriserveConfig, Variant};
pub use view::{Phase, RequestState, View};

use std::fmt;
use std::str::FromStr;

use crate::cluster::{Cluster, GpuSet};
use crate::cost::StepTimes;
use crate::error::{Error, Result};
use crate::time::Nanos;
use crate::workload::{RequestId, Resolution, SloBases};

/// The largest batch a single dispatch may carry.
pub const MAX_BATCH: usize = 4;

/// Requests that execute together, step by step, as one batch (all the same resolution).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    ids: [RequestId; MAX_BATCH],
    len: u8,
}

impl Batch {
    pub fn one(id: RequestId) -> Batch {
        Batch {
            ids: [id; MAX_BATCH],
            len: 1,
        }
    }

    /// A batch of up to [`MAX_BATCH`] requests; `None` if empty or too large.
    pub fn of(ids: &[RequestId]) -> Option<Batch> {
        if ids.is_empty() || ids.len() > MAX_BATCH {
            return None;
        }
        let mut b = Batch::one(ids[0]);
        b.ids[..ids.len()].copy_from_slice(ids);
        b.len = ids.len() as u8;
        Some(b)
    }

    pub fn ids(&self) -> &[RequestId] {
        &self.ids[..self.len as usize]
    }

    pub fn len(&self) -> u32 {
        u32::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// "Run these requests for `steps` denoising steps on `gpus`." The SP degree is `gpus.len()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dispatch {
    pub batch: Batch,
    pub steps: u32,
    pub gpus: GpuSet,
}

/// What a policy asks the engine to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Dispatch(Dispatch),
    /// Call the policy again at this time (e.g. the next round boundary).
    WakeAt(Nanos),
    /// Give up on a waiting request: it ends as `dropped` and counts as an SLO miss.
    Drop(RequestId),
    /// End a running request's work at its first step boundary not before now (only where
    /// [`View::can_cut`] says the executor can): the work keeps the steps done by then, and
    /// the request waits again from that boundary with the rest. Cutting at the work's own
    /// end changes nothing. Lets a policy grant many steps at once and still take the GPUs
    /// back at the next step boundary when something more urgent arrives.
    Cut(RequestId),
}

/// A scheduling policy.
pub trait Policy {
    /// The name reported in outputs (`xdit-sp4`, `rssp`, ...).
    fn name(&self) -> &str;

    /// Appends decisions for the current instant to `out` (which arrives empty).
    fn decide(&mut self, view: &View<'_>, out: &mut Vec<Decision>);
}

/// Every policy this build knows, by its command-line name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    /// xDiT with a fixed sequence-parallel degree: `nodes * gpus_per_node / k` static groups.
    XditSp(u32),
    /// Resolution-specific fixed degree (the paper's RSSP baseline).
    Rssp,
    /// TetriServe with the given mechanisms on (the ablation rows of the paper's Table 5).
    Tetriserve(Variant),
    /// Beyond the paper: step-level SP re-planned at every request's step boundary, with
    /// one-step (revocable) grants.
    Stepwise,
}

/// One registered policy: its command-line name, what it does (one line, for
/// `tetriserve policies`), and its colour slot in charts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyInfo {
    pub kind: PolicyKind,
    pub name: &'static str,
    pub description: &'static str,
    /// Index into the chart palette (`report::plot`): fixed per policy, so one policy has one
    /// colour in every chart whatever else the chart shows. Slot 7 (black) is the upper bound's.
    pub colour: usize,
    /// Whether it dispatches batches (of requests of one resolution at the same step) when
    /// the scenario turns batching on; the executor then prepares every batch size.
    pub batches: bool,
}

/// The registry: every named policy, in the order listings and charts show them. Adding a
/// policy means one row here (and its arm in [`build`]); the `policies` command, the names
/// accepted on the command line and the chart colours all come from this table.
const REGISTRY: [PolicyInfo; 10] = [
    PolicyInfo {
        kind: PolicyKind::XditSp(1),
        name: "xdit-sp1",
        description: "xDiT, fixed SP degree 1: static groups, FCFS, non-preemptive",
        batches: false,
        colour: 0,
    },
    PolicyInfo {
        kind: PolicyKind::XditSp(2),
        name: "xdit-sp2",
        description: "xDiT, fixed SP degree 2: static groups, FCFS, non-preemptive",
        batches: false,
        colour: 1,
    },
    PolicyInfo {
        kind: PolicyKind::XditSp(4),
        name: "xdit-sp4",
        description: "xDiT, fixed SP degree 4: static groups, FCFS, non-preemptive",
        batches: false,
        colour: 2,
    },
    PolicyInfo {
        kind: PolicyKind::XditSp(8),
        name: "xdit-sp8",
        description: "xDiT, fixed SP degree 8: static groups, FCFS, non-preemptive",
        batches: false,
        colour: 3,
    },
    PolicyInfo {
        kind: PolicyKind::Rssp,
        name: "rssp",
        description: "resolution-specific fixed degree, FCFS, any free k-subset",
        batches: false,
        colour: 4,
    },
    PolicyInfo {
        kind: PolicyKind::Tetriserve(Variant::FULL),
        name: "tetriserve",
        description: "the paper's scheduler: step-level SP degrees per round, DP packing, placement preservation, elastic scale-up",
        batches: true,
        colour: 5,
    },
    PolicyInfo {
        kind: PolicyKind::Tetriserve(Variant::DP_ONLY),
        name: "tetriserve-dp",
        description: "ablation: TetriServe's DP packing only",
        batches: true,
        colour: 8,
    },
    PolicyInfo {
        kind: PolicyKind::Tetriserve(Variant::DP_PP),
        name: "tetriserve-dp-pp",
        description: "ablation: DP packing + placement preservation",
        batches: true,
        colour: 6,
    },
    PolicyInfo {
        kind: PolicyKind::Tetriserve(Variant::SHED),
        name: "tetriserve-shed",
        description: "tetriserve + overload shedding (beyond the paper): when a node's GPU-seconds cannot cover every deadline, serve the most expensive requests best-effort instead",
        batches: true,
        colour: 9,
    },
    PolicyInfo {
        kind: PolicyKind::Stepwise,
        name: "stepwise",
        description: "beyond the paper: every request re-planned at each of its own step boundaries at the narrowest degree that meets its deadline, EDF with overload admission; GPUs granted one step at a time and reclaimed at the holder's next step",
        batches: false,
        colour: 10,
    },
];

/// Names that select several policies at once, with what they select.
const GROUPS: [(&str, &str); 3] = [
    (
        "all",
        "the paper's comparison and the policies beyond it (tetriserve-shed, stepwise)",
    ),
    (
        "paper",
        "the baselines and tetriserve (what the paper compares)",
    ),
    ("ablation", "tetriserve-dp, tetriserve-dp-pp, tetriserve"),
];

impl PolicyKind {
    /// The registry: every named policy with its description and colour slot.
    pub fn all() -> &'static [PolicyInfo] {
        &REGISTRY
    }

    /// The policy groups accepted where a list of policies is (`all`, `paper`, `ablation`), with what
    /// they select.
    pub fn groups() -> &'static [(&'static str, &'static str)] {
        &GROUPS
    }

    /// Whether this policy dispatches batches when the scenario turns batching on (its
    /// registry row says; a kind without a row does not).
    pub fn batches(self) -> bool {
        REGISTRY.iter().any(|p| p.kind == self && p.batches)
    }

    /// The registry row of the policy named `name`, if it is registered.
    pub fn info(name: &str) -> Option<&'static PolicyInfo> {
        REGISTRY.iter().find(|p| p.name == name)
    }

    /// What `all` selects on `cluster`: the paper's comparison, then the policies beyond the
    /// paper, so that the default comparison shows the best policy beside the paper's.
    pub fn all_for(cluster: &Cluster) -> Vec<PolicyKind> {
        let mut v = PolicyKind::paper_for(cluster);
        v.extend(PolicyKind::extensions());
        v
    }

    /// What the paper compares that can run on `cluster` (fixed degrees beyond the node size
    /// are left out): the xDiT baselines, RSSP and TetriServe.
    pub fn paper_for(cluster: &Cluster) -> Vec<PolicyKind> {
        let mut v: Vec<PolicyKind> = [1, 2, 4, 8]
            .into_iter()
            .filter(|&k| k <= cluster.gpus_per_node)
            .map(PolicyKind::XditSp)
            .collect();
        v.push(PolicyKind::Rssp);
        v.push(PolicyKind::Tetriserve(Variant::FULL));
        v
    }

    /// TetriServe and its ablations, as in the paper's Table 5.
    pub fn ablation() -> Vec<PolicyKind> {
        vec![
            PolicyKind::Tetriserve(Variant::DP_ONLY),
            PolicyKind::Tetriserve(Variant::DP_PP),
            PolicyKind::Tetriserve(Variant::FULL),
        ]
    }

    /// Policies beyond the paper.
    pub fn extensions() -> Vec<PolicyKind> {
        vec![PolicyKind::Tetriserve(Variant::SHED), PolicyKind::Stepwise]
    }

    /// Names accepted by [`FromStr`] (the registry's, then the groups'), for help texts and
    /// suggestions.
    pub fn names() -> Vec<&'static str> {
        REGISTRY
            .iter()
            .map(|p| p.name)
            .chain(GROUPS.iter().map(|g| g.0))
            .collect()
    }
}

/// A policy's name (in outputs, on the command line, as `Policy::name`): its registry row's,
/// the one place names are written. A kind no row names is named by rule: a fixed degree
/// beyond the registry as `FromStr` reads it (`xdit-sp16`), a TetriServe variant by its
/// mechanisms (`tetriserve-dp-es`).
impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = REGISTRY.iter().find(|p| p.kind == *self) {
            return f.write_str(p.name);
        }
        match self {
            PolicyKind::XditSp(k) => write!(f, "xdit-sp{k}"),
            PolicyKind::Tetriserve(v) => {
                f.write_str("tetriserve-dp")?;
                for (on, mechanism) in [
                    (v.placement_preservation, "-pp"),
                    (v.elastic_scale_up, "-es"),
                    (v.shedding, "-shed"),
                ] {
                    if on {
                        f.write_str(mechanism)?;
                    }
                }
                Ok(())
            }
            // Always registered (a test checks): not reached.
            PolicyKind::Rssp | PolicyKind::Stepwise => write!(f, "{self:?}"),
        }
    }
}

impl FromStr for PolicyKind {
    type Err = String;

    fn from_str(s: &str) -> Result<PolicyKind, String> {
        if let Some(k) = s.strip_prefix("xdit-sp")
            && let Ok(k) = k.parse::<u32>()
            && k.is_power_of_two()
        {
            return Ok(PolicyKind::XditSp(k));
        }
        match PolicyKind::info(s) {
            Some(p) => Ok(p.kind),
            None => {
                let names = PolicyKind::names();
                let mut msg = format!(
                    "unknown policy `{s}`; expected one of: {}",
                    names.join(", ")
                );
                if let Some(near) = crate::suggest::closest(s, &names) {
                    msg.push_str(&format!(" (did you mean `{near}`?)"));
                }
                Err(msg)
            }
        }
    }
}

/// Policy parameters that come from the scenario rather than from the policy's name.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    /// RSSP's degree per resolution; resolutions not listed get the smallest degree that meets
    /// their base SLO in isolation (RSSP's definition).
    pub rssp_degrees: Vec<(Resolution, u32)>,
    /// SLO bases, used by RSSP's automatic rule.
    pub slo_bases: SloBases,
    /// Steps per request assumed by RSSP's automatic rule.
    pub steps: u32,
    pub tetriserve: TetriserveConfig,
    pub stepwise: StepwiseConfig,
    /// The costs TetriServe accounts for when fitting work into a round.
    pub overheads: crate::cost::Overheads,
    /// Whether video clips may be preempted at step boundaries ([`RunToCompletion`]).
    pub video_preemption: VideoPreemption,
}

impl Default for PolicyConfig {
    fn default() -> PolicyConfig {
        PolicyConfig {
            rssp_degrees: Rssp::paper_degrees(),
            slo_bases: SloBases::paper(),
            steps: 28,
            tetriserve: TetriserveConfig::default(),
            stepwise: StepwiseConfig::default(),
            overheads: crate::cost::Overheads::default(),
            video_preemption: VideoPreemption::StepBoundary,
        }
    }
}

/// Builds the policy `kind` for `cluster`, or explains why it cannot run there; wrapped in
/// [`RunToCompletion`] when video clips may not be preempted.
pub fn build(
    kind: PolicyKind,
    cluster: &Cluster,
    costs: &StepTimes,
    config: &PolicyConfig,
) -> Result<Box<dyn Policy>> {
    let policy = build_plain(kind, cluster, costs, config)?;
    Ok(match config.video_preemption {
        VideoPreemption::StepBoundary => policy,
        VideoPreemption::None => Box::new(RunToCompletion::new(policy)),
    })
}

/// The policy `kind` itself, without adapters.
fn build_plain(
    kind: PolicyKind,
    cluster: &Cluster,
    costs: &StepTimes,
    config: &PolicyConfig,
) -> Result<Box<dyn Policy>> {
    match kind {
        PolicyKind::XditSp(k) => {
            if k > cluster.gpus_per_node {
                return Err(Error::config_hint(
                    format!(
                        "policy xdit-sp{k} needs {k} GPUs in one node, but nodes have {}",
                        cluster.gpus_per_node
                    ),
                    format!(
                        "choose a degree of at most {}, or a cluster with larger nodes",
                        cluster.max_degree()
                    ),
                ));
            }
            Ok(Box::new(FixedSp::new(k, cluster)))
        }
        PolicyKind::Rssp => Ok(Box::new(Rssp::new(cluster, costs, config)?)),
        PolicyKind::Stepwise => Ok(Box::new(Stepwise::new(
            cluster,
            costs,
            config.overheads.clone(),
            config.stepwise,
        ))),
        PolicyKind::Tetriserve(v) => {
            if let tetriserve::RoundLength::Fixed(t) = config.tetriserve.round
                && t == Nanos::ZERO
            {
                return Err(Error::config(
                    "tetriserve: a round of zero length cannot make progress; set tau_ms > 0",
                ));
            }
            Ok(Box::new(Tetriserve::new(
                v,
                cluster,
                costs,
                config.tetriserve.clone(),
                config.overheads.clone(),
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_holds_one_to_max_batch_requests_in_order() {
        let id = RequestId;
        assert_eq!(Batch::of(&[]), None);
        assert_eq!(Batch::of(&[id(1), id(2), id(3), id(4), id(5)]), None);
        let b = Batch::of(&[id(3), id(1)]).unwrap();
        assert_eq!(
            (b.ids(), b.len(), b.is_empty()),
            (&[id(3), id(1)][..], 2, false)
        );
        let one = Batch::one(id(7));
        assert_eq!(
            (one.ids(), one.len(), one.is_empty()),
            (&[id(7)][..], 1, false)
        );
        assert_eq!(Batch::of(&[id(0); MAX_BATCH]).map(|b| b.len()), Some(4));
    }

    #[test]
    fn every_registered_policy_has_a_description_a_distinct_colour_and_round_trips() {
        let all = PolicyKind::all();
        let mut colours = std::collections::BTreeSet::new();
        for p in all {
            assert!(
                p.description.len() > 10,
                "{} has no description: {:?}",
                p.name,
                p.description
            );
            assert!(
                colours.insert(p.colour),
                "{} shares colour slot {} with another policy",
                p.name,
                p.colour
            );
            assert_ne!(
                p.colour, 7,
                "{}: slot 7 (black) is the upper bound's",
                p.name
            );
            assert_eq!(p.kind.to_string(), p.name);
            assert_eq!(p.name.parse::<PolicyKind>(), Ok(p.kind));
        }
        // What the scenario names `all`, `paper` and `ablation` select is registered too.
        let cluster = Cluster::new("h100", 1, 8, crate::cluster::Topology::NvSwitch).unwrap();
        for k in PolicyKind::all_for(&cluster)
            .into_iter()
            .chain(PolicyKind::ablation())
            .chain(PolicyKind::extensions())
        {
            assert!(
                all.iter().any(|p| p.kind == k),
                "{k} is selectable but not registered"
            );
        }
        let names = PolicyKind::names();
        assert_eq!(names.len(), all.len() + PolicyKind::groups().len());
        assert!(names.contains(&"ablation"));
    }

    #[test]
    fn unknown_policy_names_are_refused_with_a_suggestion() {
        let err = "tetriserve-shd".parse::<PolicyKind>().unwrap_err();
        assert!(err.contains("did you mean `tetriserve-shed`"), "{err}");
        assert!(err.contains("xdit-sp1, xdit-sp2"), "{err}");
        // Degrees beyond the registry still parse (a 16-GPU node).
        assert_eq!("xdit-sp16".parse(), Ok(PolicyKind::XditSp(16)));
        assert_eq!(PolicyKind::XditSp(16).to_string(), "xdit-sp16");
        // A variant no row names is named by its mechanisms.
        let es = Variant {
            elastic_scale_up: true,
            ..Variant::DP_ONLY
        };
        assert_eq!(PolicyKind::Tetriserve(es).to_string(), "tetriserve-dp-es");
    }

    #[test]
    fn only_tetriserve_batches() {
        let batching: Vec<&str> = PolicyKind::all()
            .iter()
            .filter(|p| p.kind.batches())
            .map(|p| p.name)
            .collect();
        assert_eq!(
            batching,
            [
                "tetriserve",
                "tetriserve-dp",
                "tetriserve-dp-pp",
                "tetriserve-shed"
            ]
        );
        assert!(!PolicyKind::XditSp(16).batches());
    }
}
