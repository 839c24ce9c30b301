//! The discrete-event engine: the only code that changes the state of a run.
//!
//! [`run`] replays a workload: it turns arrivals and completions into events, asks the policy
//! for decisions at every decision point, checks and applies them, hands work to the executor
//! and records what happened. Each decision point handles *all* events of one instant first
//! (arrivals and completions at the same nanosecond), then calls the policy once.
//!
//! Decisions are checked before they are applied: a dispatch onto busy GPUs, of a request that
//! is not waiting, of more steps than remain, or with a degree that is not a power of two
//! within one node is refused with [`Error::Policy`], never silently "fixed". A policy that
//! leaves requests waiting with nothing scheduled to wake it is reported as stalled.

mod event;
mod executor;
mod queue;

pub use event::{Event, WorkId};
pub use executor::{Executor, Launch, SimExecutor, Work};
pub use queue::EventQueue;

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use crate::cluster::{Cluster, GpuSet};
use crate::cost::StepTimes;
use crate::error::{Error, Result};
use crate::metrics::{
    DecisionTimes, Outcome, Progress, RecordSink, RequestRecord, RunRecords, StepsSaved, WorkRecord,
};
use crate::policy::{Decision, Dispatch, Phase, Policy, RequestState, View};
use crate::time::Nanos;
use crate::workload::{RequestId, Workload};

/// How many consecutive timer-only wake-ups without any progress make a policy "stalled".
const MAX_IDLE_WAKEUPS: u32 = 100_000;

/// Runs `workload` on `cluster` under `policy`, executing work on `executor`.
///
/// `costs` must have been resolved for the workload's resolutions (see [`StepTimes::resolve`]).
pub fn run(
    workload: &Workload,
    cluster: &Cluster,
    costs: &StepTimes,
    policy: &mut dyn Policy,
    executor: &mut dyn Executor,
) -> Result<RunRecords> {
    let mut works = Vec::new();
    let mut records = run_streamed(workload, cluster, costs, policy, executor, &mut works);
    match &mut records {
        Ok(r) => r.works = works,
        Err(Error::Interrupted { partial, .. }) => partial.works = works,
        Err(_) => {}
    }
    records
}

/// [`run`], handing each work to `sink` once it and every work dispatched before it have
/// finished (so in dispatch order), instead of keeping them: the records come back with no
/// works. Memory then grows with the requests, not with the works.
pub fn run_streamed(
    workload: &Workload,
    cluster: &Cluster,
    costs: &StepTimes,
    policy: &mut dyn Policy,
    executor: &mut dyn Executor,
    sink: &mut dyn RecordSink,
) -> Result<RunRecords> {
    Engine::new(workload, cluster, costs, sink)?.run(policy, executor)
}

/// How often, in events, the sink hears of the run's progress.
const PROGRESS_EVERY: u64 = 1 << 14;

/// Arrived requests that have not ended, in arrival (= id) order, as one slice.
///
/// Under sustained overload this holds the whole backlog and requests end at almost every
/// decision point; a scan per ending made runs quadratic in the backlog. An ended request is
/// found by binary search and closed up from its nearer side: FIFO-like policies end the
/// oldest requests, so the few before them move, not the backlog behind them.
#[derive(Default)]
struct Active {
    buf: Vec<RequestId>,
    /// `buf[..head]` is free space left by requests removed from the front.
    head: usize,
}

impl Active {
    fn as_slice(&self) -> &[RequestId] {
        &self.buf[self.head..]
    }

    fn push(&mut self, id: RequestId) {
        // Reclaim the front once it is most of the buffer: amortised O(1) per push.
        if self.head > 1024 && self.head * 2 > self.buf.len() {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.push(id);
    }

    /// Removes `id`, which must be present.
    fn remove(&mut self, id: RequestId) {
        let live = self.as_slice();
        let Ok(at) = live.binary_search(&id) else {
            debug_assert!(false, "an ended request was active");
            return;
        };
        let (head, len) = (self.head, live.len());
        if at < len - 1 - at {
            self.buf.copy_within(head..head + at, head + 1);
            self.head += 1;
        } else {
            self.buf.remove(head + at);
        }
    }
}

struct Engine<'a> {
    sink: &'a mut dyn RecordSink,
    /// The workload, for what caching and skipping saved each request (its records); the
    /// skip masks never reach the policy.
    workload: &'a Workload,
    cluster: &'a Cluster,
    costs: &'a StepTimes,
    states: Vec<RequestState>,
    free: crate::cluster::FreeGpus,
    queue: EventQueue<Event>,
    /// Arrived, not ended, in arrival order.
    active: Active,
    arrived: Vec<RequestId>,
    completed: Vec<RequestId>,
    timer_fired: bool,
    /// Times of pending timers, to avoid queueing duplicates.
    timers: HashSet<Nanos>,
    /// On a real clock, the times of the timers that fired (`RunRecords::timers`).
    fired: Option<Vec<Nanos>>,
    used_groups: HashSet<GpuSet>,
    /// Works not yet handed to the sink, oldest first: `unsent[i]` is work `first_unsent + i`.
    /// A work leaves once it and every older one have finished, so the window spans the
    /// longest work's lifetime, not the run.
    unsent: VecDeque<Unsent>,
    first_unsent: u32,
    /// The running work of each request, for [`Decision::Cut`].
    running_work: Vec<Option<(WorkId, Nanos)>>,
    records: Vec<RecordAcc>,
    ended: usize,
    /// Requests that finished or were dropped since `active` was last compacted.
    just_ended: Vec<RequestId>,
    pending_arrivals: usize,
    running_works: usize,
    /// Events handled so far.
    events: u64,
    decisions: DecisionTimes,
}

/// A work in the engine's window: its record, what was launched, when it ends (when known in
/// advance; a cut moves it earlier) and whether it has.
struct Unsent {
    record: WorkRecord,
    work: Work,
    ends_at: Option<Nanos>,
    done: bool,
}

/// Per-request accumulators that end up in its [`RequestRecord`].
#[derive(Clone, Copy, Default)]
struct RecordAcc {
    gpu_time: u128,
    degrees_used: u32,
    remaps: u32,
    node: Option<u32>,
    end: Option<Nanos>,
    outcome: Option<Outcome>,
}

impl<'a> Engine<'a> {
    fn new(
        workload: &'a Workload,
        cluster: &'a Cluster,
        costs: &'a StepTimes,
        sink: &'a mut dyn RecordSink,
    ) -> Result<Engine<'a>> {
        let mut states = Vec::with_capacity(workload.len());
        let mut arrivals = Vec::with_capacity(workload.len());
        for (i, r) in workload.requests.iter().enumerate() {
            if r.id.index() != i || (i > 0 && r.arrival < workload.requests[i - 1].arrival) {
                return Err(Error::config(
                    "workload ids must be dense and in arrival order; build it with Workload::from_requests",
                ));
            }
            if r.steps == 0 {
                return Err(Error::config(format!("request {} has zero steps", r.label)));
            }
            let class = costs.class_of(r.resolution).ok_or_else(|| {
                Error::Cost(format!(
                    "no step times were resolved for {} (request {})",
                    r.resolution, r.label
                ))
            })?;
            states.push(RequestState::new(r.clone(), class));
            arrivals.push((r.arrival, Event::Arrival(r.id)));
        }
        let queue = EventQueue::with_sorted(arrivals);
        Ok(Engine {
            sink,
            workload,
            cluster,
            costs,
            free: cluster.all_free(),
            queue,
            active: Active::default(),
            arrived: Vec::new(),
            completed: Vec::new(),
            timer_fired: false,
            timers: HashSet::new(),
            fired: None,
            used_groups: HashSet::new(),
            unsent: VecDeque::new(),
            first_unsent: 0,
            records: vec![RecordAcc::default(); states.len()],
            running_work: vec![None; states.len()],
            ended: 0,
            just_ended: Vec::new(),
            pending_arrivals: states.len(),
            running_works: 0,
            events: 0,
            decisions: DecisionTimes::default(),
            states,
        })
    }

    fn run(mut self, policy: &mut dyn Policy, executor: &mut dyn Executor) -> Result<RunRecords> {
        let mut decisions = Vec::new();
        let mut done = Vec::new();
        let mut idle_wakeups = 0u32;
        if executor.clock().is_some() {
            self.fired = Some(Vec::new());
        }
        loop {
            if executor.has_pending() || executor.clock().is_some() {
                // A real-time executor also sleeps here until the next event is due.
                if let Err(e) = executor.wait(self.queue.peek_time(), &mut done) {
                    return Err(self.interrupt(e, policy.name()));
                }
                for (t, w) in done.drain(..) {
                    self.queue.push(t, Event::WorkDone(w));
                }
            }
            if self.pending_arrivals == 0
                && self.running_works == 0
                && self.active.as_slice().is_empty()
            {
                break; // Only timers can be left: nothing more can happen.
            }
            let Some((at, event)) = self.queue.pop() else {
                return Err(self.stalled(policy, "no event is pending"));
            };
            self.arrived.clear();
            self.completed.clear();
            self.timer_fired = false;
            let mut happened = self.handle(at, event)?;
            while self.queue.peek_time() == Some(at) {
                let (_, e) = self.queue.pop().expect("peeked");
                happened |= self.handle(at, e)?;
            }
            if !happened {
                continue; // Only the old ends of cut works: nothing changed.
            }
            if let Err(e) = self.send_finished() {
                return Err(self.interrupt(e, policy.name()));
            }
            // Events carry the time they happened; decisions are taken now, which on a
            // real-time executor may be a little later.
            let now = executor.clock().map_or(at, |c| c.max(at));

            decisions.clear();
            {
                let view = View {
                    now,
                    cluster: self.cluster,
                    costs: self.costs,
                    free: &self.free,
                    active: self.active.as_slice(),
                    arrived: &self.arrived,
                    completed: &self.completed,
                    timer: self.timer_fired,
                    states: &self.states,
                    skipping: self.workload.skipping,
                    can_cut: executor.can_cut(),
                };
                let t0 = Instant::now();
                policy.decide(&view, &mut decisions);
                self.decisions.samples.push(t0.elapsed().as_nanos() as u64);
            }
            let progress = !self.arrived.is_empty() || !self.completed.is_empty();
            let mut acted = false;
            for d in &decisions {
                acted |= !matches!(d, Decision::WakeAt(_));
                match self.apply(now, *d, policy.name(), executor) {
                    Ok(()) => {}
                    Err(e @ Error::Executor(_)) => return Err(self.interrupt(e, policy.name())),
                    Err(e) => return Err(e),
                }
            }
            if progress || acted || self.running_works > 0 {
                idle_wakeups = 0;
            } else {
                idle_wakeups += 1;
                if idle_wakeups > MAX_IDLE_WAKEUPS {
                    return Err(
                        self.stalled(policy, "it keeps waking up without dispatching anything")
                    );
                }
            }
            if !self.just_ended.is_empty() {
                for id in self.just_ended.drain(..) {
                    self.active.remove(id);
                }
            }
        }
        self.finish(policy.name())
    }

    /// Hands the sink every work at the front of the window that has finished.
    fn send_finished(&mut self) -> Result<()> {
        while self.unsent.front().is_some_and(|w| w.done) {
            let w = self.unsent.pop_front().expect("non-empty");
            self.first_unsent += 1;
            self.sink.work(&w.record)?;
        }
        Ok(())
    }

    fn stalled(&self, policy: &dyn Policy, why: &str) -> Error {
        let waiting = self.active.as_slice().len();
        Error::Policy {
            policy: policy.name().to_string(),
            message: format!(
                "stalled with {waiting} request(s) not finished and {} GPU(s) idle: {why}",
                self.free.total_free()
            ),
        }
    }

    /// Handles one event; false when it was the old end of a work that was cut since.
    fn handle(&mut self, now: Nanos, event: Event) -> Result<bool> {
        if let Event::WorkDone(w) = event
            && self.is_stale(now, w)
        {
            return Ok(false);
        }
        self.events += 1;
        if self.events.is_multiple_of(PROGRESS_EVERY) {
            self.sink.progress(&Progress {
                now,
                ended: self.ended,
                requests: self.states.len(),
                events: self.events,
            });
        }
        match event {
            Event::Arrival(id) => self.on_arrival(id),
            Event::WorkDone(w) => self.on_work_done(now, w),
            Event::Timer => {
                self.timers.remove(&now);
                self.timer_fired = true;
                if let Some(fired) = &mut self.fired {
                    fired.push(now);
                }
            }
        }
        Ok(true)
    }

    /// Whether `w` ending at `now` is the old end of a work that was cut to end earlier.
    fn is_stale(&self, now: Nanos, w: WorkId) -> bool {
        let Some(i) = w.0.checked_sub(self.first_unsent) else {
            return true; // It ended and left the window.
        };
        self.unsent
            .get(i as usize)
            .is_none_or(|u| u.done || u.ends_at.is_some_and(|t| t != now))
    }

    fn on_arrival(&mut self, id: RequestId) {
        self.pending_arrivals -= 1;
        self.states[id.index()].phase = Phase::Waiting;
        self.active.push(id);
        self.arrived.push(id);
    }

    fn on_work_done(&mut self, now: Nanos, w: WorkId) {
        let u = &mut self.unsent[(w.0 - self.first_unsent) as usize];
        let d = u.work.dispatch;
        u.record.end = now;
        u.done = true;
        let start = u.record.start;
        self.free.release(d.gpus);
        self.running_works -= 1;
        let gpu_time =
            u128::from(d.gpus.len()) * u128::from((now - start).0) / u128::from(d.batch.len());
        for &id in d.batch.ids() {
            self.running_work[id.index()] = None;
            let s = &mut self.states[id.index()];
            s.steps_done += d.steps;
            let acc = &mut self.records[id.index()];
            acc.gpu_time += gpu_time;
            if s.steps_done == s.request.steps {
                s.phase = Phase::Finished;
                self.just_ended.push(id);
                self.ended += 1;
                acc.end = Some(now);
                acc.outcome = Some(if now <= s.request.deadline {
                    Outcome::Met
                } else {
                    Outcome::Missed
                });
            } else {
                s.phase = Phase::Waiting;
            }
            self.completed.push(id);
        }
    }

    fn apply(
        &mut self,
        now: Nanos,
        d: Decision,
        policy: &str,
        executor: &mut dyn Executor,
    ) -> Result<()> {
        let refuse = |message: String| Error::Policy {
            policy: policy.to_string(),
            message,
        };
        match d {
            Decision::WakeAt(t) => {
                if t >= Nanos::HORIZON {
                    return Err(Error::Cost(format!(
                        "{policy} asked to wake beyond the simulator's horizon (about 146 years): the workload's times or the profile's step times are too large"
                    )));
                }
                if t <= now {
                    return Err(refuse(format!(
                        "asked to wake at {t}, which is not after now ({now})"
                    )));
                }
                if self.timers.insert(t) {
                    self.queue.push(t, Event::Timer);
                }
            }
            Decision::Drop(id) => {
                let s = self
                    .states
                    .get_mut(id.index())
                    .ok_or_else(|| refuse(format!("dropped unknown request {id:?}")))?;
                if s.phase != Phase::Waiting {
                    return Err(refuse(format!(
                        "dropped request {} which is {:?}, not waiting",
                        s.request.label, s.phase
                    )));
                }
                s.phase = Phase::Dropped;
                self.just_ended.push(id);
                self.ended += 1;
                let acc = &mut self.records[id.index()];
                acc.end = Some(now);
                acc.outcome = Some(Outcome::Dropped);
            }
            Decision::Cut(id) => self.cut(now, id, executor, &refuse)?,
            Decision::Dispatch(disp) => {
                self.dispatch(now, disp, executor).map_err(|e| match e {
                    Error::Config { message, .. } => refuse(message),
                    other => other,
                })?
            }
        }
        Ok(())
    }

    fn dispatch(&mut self, now: Nanos, d: Dispatch, executor: &mut dyn Executor) -> Result<()> {
        let k = d.gpus.len();
        if d.gpus.node() >= self.cluster.nodes
            || d.gpus.mask() >> self.cluster.gpus_per_node != 0 && self.cluster.gpus_per_node < 64
        {
            return Err(Error::config(format!(
                "dispatched onto {} which is outside the cluster",
                d.gpus
            )));
        }
        if !k.is_power_of_two() || k > self.cluster.gpus_per_node {
            return Err(Error::config(format!(
                "dispatched onto {} GPUs ({}); degrees must be powers of two within a node",
                k, d.gpus
            )));
        }
        if !self.free.is_free(d.gpus) {
            return Err(Error::config(format!(
                "dispatched onto {} but some of those GPUs are busy",
                d.gpus
            )));
        }
        if d.steps == 0 {
            return Err(Error::config("dispatched zero steps".to_string()));
        }
        let first = &self.states[d.batch.ids()[0].index()];
        let (class, steps_before, total) = (first.class, first.steps_done, first.request.steps);
        let mut remap = false;
        let mut node_moved = false;
        for (j, &id) in d.batch.ids().iter().enumerate() {
            let s = self
                .states
                .get(id.index())
                .ok_or_else(|| Error::config(format!("dispatched unknown request {id:?}")))?;
            if s.phase != Phase::Waiting {
                return Err(Error::config(format!(
                    "dispatched request {} which is {:?}, not waiting",
                    s.request.label, s.phase
                )));
            }
            if d.batch.ids()[..j].contains(&id) {
                return Err(Error::config(format!(
                    "request {} appears twice in one batch",
                    s.request.label
                )));
            }
            if s.class != class || s.steps_done != steps_before || s.request.steps != total {
                return Err(Error::config(
                    "a batch must hold requests of one resolution at the same step".to_string(),
                ));
            }
            if d.steps > s.remaining_steps() {
                return Err(Error::config(format!(
                    "dispatched {} steps of request {} which has {} left",
                    d.steps,
                    s.request.label,
                    s.remaining_steps()
                )));
            }
            remap |= s.gpus.is_some_and(|g| g != d.gpus);
            node_moved |= s.gpus.is_some_and(|g| g.node() != d.gpus.node());
        }
        let id = self
            .first_unsent
            .checked_add(self.unsent.len() as u32)
            .map(WorkId)
            .ok_or_else(|| {
                Error::config(format!(
                    "more than {} works in one run; that many are not supported",
                    u32::MAX
                ))
            })?;
        let work = Work {
            id,
            dispatch: d,
            class,
            resolution: self.costs.resolution(class),
            link: self.cluster.link_of(d.gpus),
            steps_before,
            total_steps: total,
            remap,
            new_group: self.used_groups.insert(d.gpus),
            node_moved,
        };
        let launch = executor.launch(now, &work)?;
        self.free.take(d.gpus);
        self.running_works += 1;
        for &rid in d.batch.ids() {
            let s = &mut self.states[rid.index()];
            s.phase = Phase::Running;
            s.first_start.get_or_insert(now);
            let moved = s.gpus.is_some_and(|g| g != d.gpus);
            s.gpus = Some(d.gpus);
            self.running_work[rid.index()] = Some((id, now));
            let acc = &mut self.records[rid.index()];
            acc.degrees_used |= 1 << k.trailing_zeros();
            acc.remaps += u32::from(moved);
            acc.node = Some(d.gpus.node());
        }
        let record = WorkRecord {
            requests: d
                .batch
                .ids()
                .iter()
                .map(|r| self.states[r.index()].request.label)
                .collect(),
            resolution: work.resolution,
            gpus: d.gpus,
            start: now,
            end: now,
            steps: d.steps,
            first_step: steps_before,
            remap,
            works: 1,
        };
        let ends_at = match launch {
            Launch::EndsAt(t) => {
                self.queue.push(t, Event::WorkDone(id));
                Some(t)
            }
            Launch::Pending => None,
        };
        self.unsent.push_back(Unsent {
            record,
            work,
            ends_at,
            done: false,
        });
        Ok(())
    }

    /// Ends `id`'s running work at its first step boundary not before `now` (a no-op when that
    /// is the work's own end): the work's record, dispatch and completion event follow.
    fn cut(
        &mut self,
        now: Nanos,
        id: RequestId,
        executor: &mut dyn Executor,
        refuse: &dyn Fn(String) -> Error,
    ) -> Result<()> {
        let Some(state) = self.states.get(id.index()) else {
            return Err(refuse(format!("cut unknown request {id:?}")));
        };
        let Some((w, start)) = self.running_work[id.index()] else {
            return Err(refuse(format!(
                "cut request {} which is {:?}, not running",
                state.request.label, state.phase
            )));
        };
        let u = &self.unsent[(w.0 - self.first_unsent) as usize];
        if u.work.dispatch.batch.len() > 1 {
            return Err(refuse(format!(
                "cut request {} which runs in a batch; only a work of one request can be cut",
                state.request.label
            )));
        }
        let Some((end, steps)) = executor.cut(now, start, &u.work)? else {
            return Err(refuse(
                "cut running work, which this executor cannot do (View::can_cut is false)"
                    .to_string(),
            ));
        };
        if steps >= u.work.dispatch.steps {
            return Ok(());
        }
        if steps == 0 || end < now {
            return Err(Error::Executor(format!(
                "the executor cut a work to {steps} step(s) ending at {end}, before now ({now})"
            )));
        }
        let u = &mut self.unsent[(w.0 - self.first_unsent) as usize];
        u.work.dispatch.steps = steps;
        u.record.steps = steps;
        u.ends_at = Some(end);
        self.queue.push(end, Event::WorkDone(w));
        Ok(())
    }

    /// The executor failed mid-run (a real GPU ran out of memory, a kernel failed): the error,
    /// with the records so far. Requests that had not finished are reported as dropped.
    fn interrupt(self, cause: Error, policy: &str) -> Error {
        let partial = match self.finish(policy) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let finished = partial
            .requests
            .iter()
            .filter(|r| r.outcome != Outcome::Dropped)
            .count();
        Error::Interrupted {
            cause: Box::new(cause),
            partial: crate::error::PartialRun::new(partial),
            finished,
        }
    }

    /// The records of the run so far; works still in the window (unfinished ones only when
    /// the run was interrupted) go to the sink first, in dispatch order.
    fn finish(mut self, policy: &str) -> Result<RunRecords> {
        for w in std::mem::take(&mut self.unsent) {
            self.sink.work(&w.record)?;
        }
        let requests = self
            .states
            .iter()
            .zip(&self.records)
            .map(|(s, acc)| {
                let r = &s.request;
                let saved = self.workload.savings_of(r.id);
                RequestRecord {
                    id: r.label,
                    arrival: r.arrival,
                    resolution: r.resolution,
                    steps: r.steps,
                    steps_done: s.steps_done,
                    deadline: r.deadline,
                    start: s.first_start,
                    end: acc.end.unwrap_or(r.arrival),
                    outcome: acc.outcome.unwrap_or(Outcome::Dropped),
                    gpu_time: Nanos(acc.gpu_time as u64),
                    degrees_used: acc.degrees_used,
                    remaps: acc.remaps,
                    node: acc.node,
                    saved: StepsSaved {
                        prompt: saved.prompt.map(|p| p.0),
                        cache_hit: saved.cache_hit,
                        cached_steps: saved.cached_steps,
                        skipped_steps: saved.skips.count(0, s.steps_done),
                    },
                }
            })
            .collect();
        Ok(RunRecords {
            policy: policy.to_string(),
            gpus: self.cluster.total_gpus(),
            gpus_per_node: self.cluster.gpus_per_node,
            requests,
            works: Vec::new(),
            events: self.events,
            decisions: self.decisions,
            timers: self.fired.unwrap_or_default(),
            stages: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Removal from either side is `retain` without the removed ids, in any order of
        /// removal, through the front reclaiming too.
        #[test]
        fn active_removal_is_retain(
            n in 0u32..3000,
            pick in proptest::collection::vec(any::<(bool, u8)>(), 3000),
        ) {
            let mut active = Active::default();
            let mut model: Vec<RequestId> = Vec::new();
            for i in 0..n {
                active.push(RequestId(i));
                model.push(RequestId(i));
                let (end, back) = pick[i as usize];
                if end && !model.is_empty() {
                    // End the oldest (FIFO) or one a few from the back.
                    let j = if back % 2 == 0 { 0 } else { model.len() - 1 - (back as usize % model.len()) };
                    let id = model.remove(j);
                    active.remove(id);
                }
                prop_assert_eq!(active.as_slice(), model.as_slice());
            }
        }
    }
}
