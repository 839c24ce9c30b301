//! The closed set of things that can happen in a run.

use crate::workload::RequestId;

/// Identifies one dispatched piece of work (index into the run's work records).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkId(pub u32);

/// An event the engine reacts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A request arrives and becomes visible to the policy.
    Arrival(RequestId),
    /// Dispatched work finished; its GPUs are idle again.
    WorkDone(WorkId),
    /// A wake-up the policy asked for.
    Timer,
}
