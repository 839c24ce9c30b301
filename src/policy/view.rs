//! The read-only snapshot a policy decides from.

use crate::cluster::{Cluster, FreeGpus, GpuSet};
use crate::cost::{ResClass, StepTimes};
use crate::time::Nanos;
use crate::workload::{Request, RequestId};

/// Where a request is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not arrived yet. Policies never see such requests through [`View::active`].
    Future,
    /// Arrived, not running, steps remaining.
    Waiting,
    /// Some of its steps are executing.
    Running,
    /// All steps done.
    Finished,
    /// Given up by the policy.
    Dropped,
}

/// The engine's view of one request.
#[derive(Clone, Debug)]
pub struct RequestState {
    pub request: Request,
    /// Its resolution's index in the run's [`StepTimes`].
    pub class: ResClass,
    pub steps_done: u32,
    pub phase: Phase,
    /// The GPU set it runs on now, or ran on last; `None` before its first dispatch.
    pub gpus: Option<GpuSet>,
    /// When its first step started.
    pub first_start: Option<Nanos>,
}

impl RequestState {
    pub fn new(request: Request, class: ResClass) -> RequestState {
        RequestState {
            request,
            class,
            steps_done: 0,
            phase: Phase::Future,
            gpus: None,
            first_start: None,
        }
    }

    pub fn id(&self) -> RequestId {
        self.request.id
    }

    pub fn remaining_steps(&self) -> u32 {
        self.request.steps - self.steps_done
    }

    pub fn deadline(&self) -> Nanos {
        self.request.deadline
    }
}

/// Everything a policy may look at when it decides. Built by the engine for each decision
/// point; borrowing makes it impossible for a policy to change engine state.
pub struct View<'a> {
    /// The current time on the executor's clock (simulated or measured).
    pub now: Nanos,
    pub cluster: &'a Cluster,
    pub costs: &'a StepTimes,
    /// Idle GPUs.
    pub free: &'a FreeGpus,
    /// Arrived requests that have not ended (waiting or running), in arrival order.
    pub active: &'a [RequestId],
    /// Requests that arrived at this instant, in arrival order.
    pub arrived: &'a [RequestId],
    /// Requests whose dispatched work completed at this instant (some may now be finished).
    pub completed: &'a [RequestId],
    /// Whether a timer the policy asked for fired at this instant.
    pub timer: bool,
    pub(crate) states: &'a [RequestState],
    /// The law of run-time step skipping, when steps are skipped (never which steps are).
    pub(crate) skipping: Option<crate::workload::skipping::SkipSpec>,
    /// Whether running work can be cut at a step boundary ([`Decision::Cut`]): the simulator
    /// can; the hardware backend runs every dispatched step.
    ///
    /// [`Decision::Cut`]: crate::policy::Decision::Cut
    pub can_cut: bool,
}

impl<'a> View<'a> {
    /// Assembles a view. The engine builds one per decision point; benchmarks and tests may
    /// build their own to drive a policy directly. `states` is indexed by request id.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        now: Nanos,
        cluster: &'a Cluster,
        costs: &'a StepTimes,
        free: &'a FreeGpus,
        active: &'a [RequestId],
        arrived: &'a [RequestId],
        completed: &'a [RequestId],
        timer: bool,
        states: &'a [RequestState],
    ) -> View<'a> {
        View {
            now,
            cluster,
            costs,
            free,
            active,
            arrived,
            completed,
            timer,
            states,
            skipping: None,
            can_cut: false,
        }
    }

    /// The view with run-time step skipping drawn from `law` (tests and benchmarks that build
    /// their own views; the engine sets it from the workload).
    pub fn with_skipping(mut self, law: Option<crate::workload::skipping::SkipSpec>) -> View<'a> {
        self.skipping = law;
        self
    }

    /// The view with cuts allowed or not (tests and benchmarks that build their own views).
    pub fn with_cuts(mut self, can_cut: bool) -> View<'a> {
        self.can_cut = can_cut;
        self
    }

    pub fn request(&self, id: RequestId) -> &'a RequestState {
        &self.states[id.index()]
    }

    /// How many of request `id`'s remaining steps are expected to compute: its remaining steps
    /// without run-time skipping; with it, those less the expected share of skippable ones
    /// (rounded towards more work). A policy may plan with this instead of
    /// [`RequestState::remaining_steps`]; it must still dispatch steps by the nominal count
    /// (which steps will be skipped is known only as they run).
    pub fn expected_remaining_steps(&self, id: RequestId) -> u32 {
        let s = &self.states[id.index()];
        match self.skipping {
            None => s.remaining_steps(),
            Some(law) => law.expected_to_run(s.steps_done, s.remaining_steps()),
        }
    }

    /// The fewest of `id`'s remaining steps that may run: all of them without run-time
    /// skipping, else only the first steps that are never skipped. A request late even then
    /// cannot be met whatever is skipped.
    pub fn fewest_remaining_steps(&self, id: RequestId) -> u32 {
        let s = &self.states[id.index()];
        match self.skipping {
            None => s.remaining_steps(),
            Some(law) => law.fewest_to_run(s.steps_done, s.remaining_steps()),
        }
    }

    /// Active requests that are waiting for GPUs, in arrival order.
    pub fn waiting(&self) -> impl Iterator<Item = &'a RequestState> + '_ {
        self.active
            .iter()
            .map(|&id| &self.states[id.index()])
            .filter(|s| s.phase == Phase::Waiting)
    }
}
