//! Records of a run, and the summary statistics computed from them.
//!
//! The record structs are the output schema: [`report`](crate::report) only formats them.
//! Everything in [`RunRecords`] except [`DecisionTimes`] is a pure function of the inputs and
//! the seed, so two runs produce byte-identical files; decision times are wall-clock
//! measurements of the scheduler and live apart.

pub mod invariants;
mod summary;

pub use summary::{
    CostSummary, LatencyStats, NodeSummary, ResolutionSummary, SavingsSummary, SchedulerStats,
    Summary, WorkTotals,
};

use crate::cluster::GpuSet;
use crate::error::{PartialRun, Result};
use crate::time::Nanos;
use crate::workload::Resolution;

/// How a request ended. The convention: finishing *at* the deadline meets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Finished at or before its deadline.
    Met,
    /// Finished after its deadline.
    Missed,
    /// Given up by the policy (or never run); counts as a miss in SLO attainment.
    Dropped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Met => "met",
            Outcome::Missed => "missed",
            Outcome::Dropped => "dropped",
        }
    }
}

/// The inverse of [`Outcome::as_str`], for reading run directories back.
impl std::str::FromStr for Outcome {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Outcome, String> {
        [Outcome::Met, Outcome::Missed, Outcome::Dropped]
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("expected met, missed or dropped, got `{s}`"))
    }
}

/// One request's fate.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRecord {
    /// The request's label (trace `id`).
    pub id: u64,
    pub arrival: Nanos,
    pub resolution: Resolution,
    pub steps: u32,
    pub steps_done: u32,
    pub deadline: Nanos,
    /// Start of its first step (after queueing).
    pub start: Option<Nanos>,
    /// Completion of its last step (finished requests) or the time it was dropped.
    pub end: Nanos,
    pub outcome: Outcome,
    /// GPU time spent on it: sum over its work of degree x duration / batch size, nanoseconds.
    pub gpu_time: Nanos,
    /// Bit `i` set if some of its steps ran at SP degree `2^i`.
    pub degrees_used: u32,
    /// How many times it resumed on a different GPU set.
    pub remaps: u32,
    /// The node its last steps ran on (`None` if it never ran).
    pub node: Option<u32>,
    /// What approximate caching and step skipping saved it.
    pub saved: StepsSaved,
}

/// What approximate caching and run-time step skipping saved one request (all zero when
/// neither is on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepsSaved {
    /// The prompt key it carried (`prompt_id`).
    pub prompt: Option<u64>,
    /// It hit the approximate cache.
    pub cache_hit: bool,
    /// Steps the cache saved: `steps` is what it had to run after them.
    pub cached_steps: u32,
    /// Of the steps it did, how many were skipped at run time (cost no compute).
    pub skipped_steps: u32,
}

impl RequestRecord {
    /// End-to-end latency of a finished request (arrival to last step).
    pub fn latency(&self) -> Option<Nanos> {
        (self.outcome != Outcome::Dropped).then(|| self.end - self.arrival)
    }

    /// Degrees used, ascending (`[1, 8]`).
    pub fn degrees(&self) -> Vec<u32> {
        (0..32)
            .filter(|i| self.degrees_used & (1 << i) != 0)
            .map(|i| 1u32 << i)
            .collect()
    }
}

/// One dispatched piece of work: some steps of a batch of requests on a GPU set; or, in a
/// run directory's `works.csv`, a run of such works that continue one another back to back
/// on the same GPUs (`works` > 1; see `report`'s segments).
#[derive(Clone, Debug, PartialEq)]
pub struct WorkRecord {
    /// Labels of the requests in the batch.
    pub requests: Vec<u64>,
    pub resolution: Resolution,
    pub gpus: GpuSet,
    pub start: Nanos,
    pub end: Nanos,
    pub steps: u32,
    /// Index of the first step it ran (0-based).
    pub first_step: u32,
    /// Whether the request was moved from another GPU set for it.
    pub remap: bool,
    /// How many dispatched works it holds: 1 from the engine; a merged row's count.
    pub works: u32,
}

/// Where the engine hands finished works, in dispatch order, as the run goes.
///
/// A run of a million requests dispatches millions of works; a sink that writes them to a file
/// as they come keeps memory bounded (see `report::RunWriter`), while `Vec<WorkRecord>` keeps
/// them all (what tests and small runs use). A sink error ends the run with that error.
pub trait RecordSink {
    fn work(&mut self, work: &WorkRecord) -> Result<()>;

    /// How far the run is, every few thousand events (for a progress display). Ignored by
    /// default.
    fn progress(&mut self, _progress: &Progress) {}
}

impl RecordSink for Vec<WorkRecord> {
    fn work(&mut self, work: &WorkRecord) -> Result<()> {
        self.push(work.clone());
        Ok(())
    }
}

/// A sink's view of a run in progress.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Simulated (or measured) time now.
    pub now: Nanos,
    /// Requests that have ended (finished or dropped), and all of them.
    pub ended: usize,
    pub requests: usize,
    /// Events handled so far.
    pub events: u64,
}

/// The typed face of the records an interrupted run carries (see `error::PartialRun`).
impl PartialRun {
    pub fn new(records: RunRecords) -> PartialRun {
        PartialRun(Box::new(records))
    }
}

impl std::ops::Deref for PartialRun {
    type Target = RunRecords;

    fn deref(&self) -> &RunRecords {
        self.0
            .downcast_ref()
            .expect("PartialRun::new is the only constructor, and it holds RunRecords")
    }
}

impl std::ops::DerefMut for PartialRun {
    fn deref_mut(&mut self) -> &mut RunRecords {
        self.0
            .downcast_mut()
            .expect("PartialRun::new is the only constructor, and it holds RunRecords")
    }
}

impl std::fmt::Debug for PartialRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        RunRecords::fmt(self, f)
    }
}

/// Wall-clock time the policy took per decision point, nanoseconds. Not deterministic.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecisionTimes {
    pub samples: Vec<u64>,
}

/// Everything a run produced.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecords {
    pub policy: String,
    /// GPUs in the cluster (for utilisation).
    pub gpus: u32,
    pub gpus_per_node: u32,
    /// One per request, in request-id order.
    pub requests: Vec<RequestRecord>,
    /// In dispatch order; empty when the run streamed its works to a [`RecordSink`].
    pub works: Vec<WorkRecord>,
    /// Events the engine handled (arrivals, completions, timers).
    pub events: u64,
    pub decisions: DecisionTimes,
    /// On a real clock (the hardware or CPU backend), the times of the policy's timers that
    /// fired (the times it asked for), in order: a decision taken at a round boundary follows
    /// its timer, not the last arrival or work end, and the replay of the run needs to know
    /// (`crate::replay`). Empty in simulation, where decisions are taken at their events.
    pub timers: Vec<crate::time::Nanos>,
    /// With disaggregated stages (`crate::stages`): each request's passage through the encode
    /// and decode pools. `None` when the stages are co-located (the default).
    pub stages: Option<StageRecords>,
}

/// One GPU of a stage pool busy with one request: which GPU, from when to when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSlot {
    /// Index of the GPU in its pool (`0..pool size`).
    pub gpu: u32,
    pub start: Nanos,
    pub end: Nanos,
}

/// A request's passage through disaggregated stages. Its denoising steps are its works; its
/// `RequestRecord` has the end-to-end arrival, deadline, end (the decode's end) and verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageRecord {
    /// Its text encoding on the encode pool.
    pub encode: PoolSlot,
    /// When its embedding had reached the denoising GPUs: the encode's end plus the transfer.
    /// The policy saw it arrive then.
    pub ready: Nanos,
    /// The deadline its denoising was planned against: its deadline less the latent's transfer
    /// and a decode on an idle pool (not before `ready`).
    pub denoise_deadline: Nanos,
    /// When its latent reached the decode pool (its last step's end plus the transfer), and
    /// its decode there; `None` for a request that never finished denoising.
    pub decode_ready: Option<Nanos>,
    pub decode: Option<PoolSlot>,
}

/// Every request's [`StageRecord`] (in request-id order) and the pools they ran on.
#[derive(Clone, Debug, PartialEq)]
pub struct StageRecords {
    pub encode_gpus: u32,
    pub decode_gpus: u32,
    pub requests: Vec<StageRecord>,
}

impl RunRecords {
    /// Time of the last event that mattered: the latest request end.
    pub fn makespan(&self) -> Nanos {
        self.requests
            .iter()
            .map(|r| r.end)
            .max()
            .unwrap_or(Nanos::ZERO)
    }
}
