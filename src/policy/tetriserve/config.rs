//! TetriServe's configuration: the round length, the packing's tie-break, the refinements
//! over the paper's Algorithm 1 and overload shedding ([`TetriserveConfig`]), and which of the
//! paper's mechanisms are on ([`Variant`], the ablation rows).

use crate::time::Nanos;

/// How long a round is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RoundLength {
    /// `g` steps of the reference request (see the module docs).
    Steps(u32),
    /// A fixed length.
    Fixed(Nanos),
}

/// How Algorithm 1 chooses among packings that keep equally many requests alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TieBreak {
    /// Among them, the one that makes the most requests progress, then the one that puts the
    /// most GPU-time to work (then the fewest GPUs): the packing itself keeps GPUs busy.
    Work,
    /// The pseudo-code as printed (the default): the fewest GPUs among equal survivors.
    /// Requests that survive either way are left to work conservation (start of unselected
    /// requests, scale-up, backfill), which hands out idle GPUs by deadline and benefit. With
    /// work conservation on, the two rules end within a point of each other on the default
    /// scenarios; without it (`tetriserve-dp`), `Work` is far better (docs/tetriserve-results.md).
    None,
}

/// Parameters of the TetriServe policy.
#[derive(Clone, Debug, PartialEq)]
pub struct TetriserveConfig {
    pub round: RoundLength,
    pub tie_break: TieBreak,
    /// Drop a request once it is late by more than this; `None` (default) never drops.
    pub drop_late_after: Option<Nanos>,
    /// Plan with the time a step really takes inside rounds, `tau / floor(tau / T(k))`, rather
    /// than `T(k)` (see [`Tetriserve::new`](super::Tetriserve::new)). On by default.
    pub round_aware_plans: bool,
    /// Run as many steps as fit the round, `min(remaining, floor(tau / T))`, instead of the
    /// paper's `min(s_m, floor(tau / T))`. The GPUs are held until the next boundary either
    /// way, so stopping at the plan part's share only idles them. On by default.
    pub fill_rounds: bool,
    /// Between boundaries, when work completes or requests arrive and GPUs are idle, plan
    /// those GPUs for the rest of the round (the same packing over the shorter window). The
    /// paper lets arrivals wait for the next boundary and GPUs idle until it. On by default.
    pub backfill: bool,
    /// Selective batching: identical waiting requests (same resolution, same step, same step
    /// count) of a resolution where batching saves at least 10% GPU-time per image run as one
    /// unit of 2 or 4, when the batch's own plan still meets its earliest deadline. Off by
    /// default: on the paper's scenarios identical requests rarely wait together and it
    /// changes nothing; under an overload of small images it costs attainment (longer batched
    /// steps quantise worse into rounds).
    pub batching: bool,
    /// With `RoundLength::Steps`, lengthen tau (by at most 50%) to where whole steps waste the
    /// least of each round (see `snap_round`). On by default.
    pub snap_rounds: bool,
    /// How `tetriserve-shed` sheds (ignored by the other variants).
    pub shed: ShedConfig,
}

/// Which unit overload shedding gives up first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShedRule {
    /// The one needing the most GPU-seconds (Moore-Hodgson; the default).
    LargestWork,
    /// The one with the latest deadline (what plain earliest-deadline-first admission sheds).
    LatestDeadline,
}

/// Parameters of overload shedding (`tetriserve-shed`). The defaults are the best measured;
/// the others exist for ablations (docs/tetriserve-results.md).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShedConfig {
    pub rule: ShedRule,
    /// The fraction of the node's GPU-seconds the fluid test may promise (1.0: all of them).
    /// Below 1 sheds earlier; above 1 sheds only in deeper overload.
    pub capacity: f64,
    /// Drop shed requests instead of letting them run best-effort on leftover GPUs.
    pub drop: bool,
}

impl Default for ShedConfig {
    fn default() -> ShedConfig {
        ShedConfig {
            rule: ShedRule::LargestWork,
            capacity: 1.0,
            drop: false,
        }
    }
}

impl Default for TetriserveConfig {
    fn default() -> TetriserveConfig {
        TetriserveConfig {
            round: RoundLength::Steps(5),
            tie_break: TieBreak::None,
            drop_late_after: None,
            round_aware_plans: true,
            fill_rounds: true,
            backfill: true,
            batching: false,
            snap_rounds: true,
            shed: ShedConfig::default(),
        }
    }
}

/// Which of the paper's mechanisms are on (Table 5's rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Variant {
    pub placement_preservation: bool,
    pub elastic_scale_up: bool,
    /// Overload shedding (not in the paper; see `shedding.rs`).
    pub shedding: bool,
}

impl Variant {
    pub const DP_ONLY: Variant = Variant {
        placement_preservation: false,
        elastic_scale_up: false,
        shedding: false,
    };
    pub const DP_PP: Variant = Variant {
        placement_preservation: true,
        elastic_scale_up: false,
        shedding: false,
    };
    pub const FULL: Variant = Variant {
        placement_preservation: true,
        elastic_scale_up: true,
        shedding: false,
    };
    /// The full policy plus overload shedding (`tetriserve-shed`).
    pub const SHED: Variant = Variant {
        placement_preservation: true,
        elastic_scale_up: true,
        shedding: true,
    };
}
