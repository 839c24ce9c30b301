//! TetriServe's configuration: the round length, the packing's tie-break, the refinements
//! over the paper's Algorithm 1 and overload shedding ([`TetriserveConfig`]), and which of the
//! paper's mechanisms are on ([`Variant`], the ablation rows); and the scenario's
//! `[policy.tetriserve]` section ([`TetriserveSection`]) that sets it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
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
    /// Let backfills skip the nodes where no step of a waiting request fits the rest of the
    /// round (nothing can be dispatched there). Off, every backfill plans every node with
    /// waiting requests and idle GPUs: the reference the default must match decision for
    /// decision (`tests/it/tetriserve.rs`), about three times as slow on 1,024 GPUs. On by
    /// default; not a scenario key.
    pub skip_quiet_nodes: bool,
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
            skip_quiet_nodes: true,
        }
    }
}

/// The longest round, in steps of the reference request (`--granularity`).
pub const MAX_GRANULARITY: u32 = 1_000;
/// The shortest fixed round (`--tau-ms`): shorter rounds only add wake-ups (a round shorter
/// than a resolution's every step runs one step at a time, overrunning rounds, anyway).
pub const MIN_TAU_MS: f64 = 1.0;
/// The longest fixed round: an hour.
pub const MAX_TAU_MS: f64 = 3_600_000.0;

/// `[policy.tetriserve]` as written: every key optional; a key left out takes
/// [`TetriserveConfig::default`], the one source of the defaults (`scenarios/default.toml`
/// repeats them, checked by a test).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TetriserveSection {
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

impl TetriserveSection {
    /// The configuration these keys describe; `source` names the file in errors.
    pub fn build(&self, source: &str) -> Result<TetriserveConfig> {
        let defaults = TetriserveConfig::default();
        let bad = |field: &str, message: String| Error::at_key(source, field, message);
        let round = match (self.tau_ms, self.granularity_steps) {
            (Some(ms), _) => RoundLength::Fixed(
                Nanos::try_from_secs(ms / 1e3)
                    .filter(|_| (MIN_TAU_MS..=MAX_TAU_MS).contains(&ms))
                    .ok_or_else(|| {
                        bad(
                            "policy.tetriserve.tau_ms",
                            format!(
                                "a round must last {MIN_TAU_MS} to {MAX_TAU_MS} ms (--tau-ms), got {ms}; the default derives it from --granularity", ms = crate::error::show_number(ms)
                            ),
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
        let tie_break = match self.tie_break.as_deref() {
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
        let drop_late_after = match self.drop_late_after_s {
            None => defaults.drop_late_after,
            Some(s) => Some(Nanos::try_from_secs(s).ok_or_else(|| {
                bad(
                    "policy.tetriserve.drop_late_after_s",
                    format!(
                        "expected a non-negative number of seconds, got {s}",
                        s = crate::error::show_number(s)
                    ),
                )
            })?),
        };
        let rule = match self.shed_rule.as_deref() {
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
        let capacity = self.shed_capacity.unwrap_or(defaults.shed.capacity);
        if !(capacity.is_finite() && capacity > 0.0) {
            return Err(bad(
                "policy.tetriserve.shed_capacity",
                format!(
                    "expected a positive fraction such as 1.0, got {capacity}",
                    capacity = crate::error::show_number(capacity)
                ),
            ));
        }
        Ok(TetriserveConfig {
            round,
            tie_break,
            drop_late_after,
            round_aware_plans: self.round_aware_plans.unwrap_or(defaults.round_aware_plans),
            fill_rounds: self.fill_rounds.unwrap_or(defaults.fill_rounds),
            backfill: self.backfill.unwrap_or(defaults.backfill),
            batching: self.batching.unwrap_or(defaults.batching),
            snap_rounds: self.snap_rounds.unwrap_or(defaults.snap_rounds),
            shed: ShedConfig {
                rule,
                capacity,
                drop: self.shed_drop.unwrap_or(defaults.shed.drop),
            },
            skip_quiet_nodes: defaults.skip_quiet_nodes,
        })
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
