//! The executor: what actually runs dispatched work. The seam between simulation and hardware.
//!
//! The engine hands every dispatch to an [`Executor`]. [`SimExecutor`] knows from the cost
//! model when the work will end and says so at launch; a hardware executor does not know,
//! returns [`Launch::Pending`], and reports the completion from [`Executor::wait`] when the
//! GPUs signal it. Either way the engine turns the completion into the same
//! [`Event::WorkDone`](crate::engine::Event::WorkDone), so policies cannot tell the two apart.

use crate::cluster::Link;
use crate::cost::{Overheads, ResClass, StepTimes};
use crate::engine::event::WorkId;
use crate::error::{Error, Result};
use crate::policy::Dispatch;
use crate::time::Nanos;
use crate::workload::skipping::{SkipMask, batch_skips};
use crate::workload::{Resolution, Workload};

/// Work handed to an executor: a dispatch plus what the engine knows about its context.
#[derive(Clone, Copy, Debug)]
pub struct Work {
    pub id: WorkId,
    pub dispatch: Dispatch,
    pub class: ResClass,
    pub resolution: Resolution,
    /// The slowest link the GPU set's collectives cross.
    pub link: Link,
    /// Steps of the request(s) already done before this work (0: it includes the first step).
    pub steps_before: u32,
    /// Total steps of the request(s).
    pub total_steps: u32,
    /// The request last ran on a different GPU set: its latent must move.
    pub remap: bool,
    /// This GPU set has never been used as a group before in this run.
    pub new_group: bool,
    /// The request last ran on another node: its latent crosses the inter-node network.
    pub node_moved: bool,
}

impl Work {
    /// Whether this work includes the request's last step (and so its VAE decode).
    pub fn finishes_request(&self) -> bool {
        self.steps_before + self.dispatch.steps == self.total_steps
    }
}

/// When launched work will end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// Known in advance (simulation).
    EndsAt(Nanos),
    /// To be reported by [`Executor::wait`] (real hardware).
    Pending,
}

/// Runs work.
pub trait Executor {
    /// Prepares a run of `workload` with works of the given batch sizes (a hardware executor
    /// allocates and warms up here and restarts its clock; state from an earlier run is
    /// forgotten). Called before every run.
    fn reset(&mut self, workload: &Workload, batches: &[u32]) -> Result<()> {
        let _ = (workload, batches);
        Ok(())
    }

    /// Starts `work` at `now`.
    fn launch(&mut self, now: Nanos, work: &Work) -> Result<Launch>;

    /// Blocks until `until` (or until any pending work completes, if `until` is `None`),
    /// appending `(completion time, work)` for every pending work that completed up to then.
    /// Executors whose launches all return [`Launch::EndsAt`] never have pending work.
    fn wait(&mut self, until: Option<Nanos>, done: &mut Vec<(Nanos, WorkId)>) -> Result<()> {
        let _ = (until, done);
        Ok(())
    }

    /// Whether some launched work has not been reported yet.
    fn has_pending(&self) -> bool {
        false
    }

    /// Whether [`cut`](Executor::cut) can end running work early. Policies see it as
    /// [`View::can_cut`](crate::policy::View::can_cut) and grant one step at a time without it.
    fn can_cut(&self) -> bool {
        false
    }

    /// Ends `work`, started at `start`, at its first step boundary not before `now`: the time
    /// that boundary is reached and the steps done by then (at least one; all of them when the
    /// boundary is the work's own end, which leaves the work as it was). `None` when this
    /// executor cannot cut work.
    fn cut(&mut self, now: Nanos, start: Nanos, work: &Work) -> Result<Option<(Nanos, u32)>> {
        let _ = (now, start, work);
        Ok(None)
    }

    /// The executor's own clock, for executors that run in real time (`None`: simulated time,
    /// which is whatever the engine's events say).
    fn clock(&self) -> Option<Nanos> {
        None
    }

    /// What runs the work, for outputs (`None`: the simulator).
    fn describe(&self) -> Option<String> {
        None
    }

    /// For a finished work of the current run, the measured time of its steps alone (without
    /// its inputs, latent hand-offs and launch), where the executor measures it: what the
    /// fidelity study sets against the profiled step times (`None`: not measured).
    fn steps_time(&self, work: WorkId) -> Option<Nanos> {
        let _ = work;
        None
    }

    /// For a finished work of the current run, the time one of its ranks spent in the
    /// sequence-parallel exchanges (waiting for its peers included), where measured.
    fn exchange_time(&self, work: WorkId) -> Option<Nanos> {
        let _ = work;
        None
    }
}

/// Completes work after the time the cost model says it takes.
///
/// Duration of a work of `q` steps at degree `k`, batch `b`:
/// `q x T(res, k, b, link)`, plus the text encoder if it includes the first step, plus the
/// VAE decode if it includes the last step, plus `ceil(remap_fraction x T)` if the request
/// moved GPU sets, plus the group set-up cost the first time a GPU set is used (or, with
/// `group_setup_on_regroup`, whenever the request moved onto it), plus the per-work dispatch
/// cost.
///
/// With run-time step skipping, a step skipped by every request of the batch costs 0 ns (a
/// batched step computes if any of its requests computes it, at the batch's step time: the
/// cost table has no entry for the smaller batch, and the forward runs for the batch anyway),
/// so `q` is the work's computed steps. The skip masks come from the workload at
/// [`Executor::reset`]; policies never see them.
pub struct SimExecutor<'a> {
    costs: &'a StepTimes,
    overheads: Overheads,
    /// Per request id, the steps skipped at run time (empty: none is).
    skips: Vec<SkipMask>,
}

impl<'a> SimExecutor<'a> {
    pub fn new(costs: &'a StepTimes, overheads: Overheads) -> SimExecutor<'a> {
        SimExecutor {
            costs,
            overheads,
            skips: Vec::new(),
        }
    }

    /// Of the work's steps, those that compute: a step is skipped only when every request of
    /// the batch skips it.
    pub fn computed_steps(&self, work: &Work) -> u32 {
        let d = &work.dispatch;
        if self.skips.is_empty() {
            return d.steps;
        }
        let mask = |id: crate::workload::RequestId| self.skips.get(id.index());
        (work.steps_before..work.steps_before + d.steps)
            .filter(|&step| !batch_skips(d.batch.ids().iter().map(|&id| mask(id)), step))
            .count() as u32
    }

    /// The simulated duration of `work` (see the type's docs).
    pub fn duration(&self, work: &Work) -> Result<Nanos> {
        let d = &work.dispatch;
        let k = d.gpus.len();
        let step = self
            .costs
            .get(work.class, k, d.batch.len(), work.link)
            .ok_or_else(|| {
                Error::Executor(format!(
                    "no step time for {} at SP {k}, batch {}; the profile lacks this batch size",
                    work.resolution,
                    d.batch.len()
                ))
            })?;
        let beyond = || {
            Error::Cost(format!(
                "a work of {} steps of {} at SP {k} would last past the simulator's horizon (about 146 years); check the profile's step times and the requests' step counts",
                d.steps, work.resolution
            ))
        };
        let zero = Nanos::ZERO;
        let hand_off = if work.remap {
            let hand_off = step.0 as f64 * self.overheads.remap_fraction;
            Nanos::try_from_secs(hand_off.ceil() / 1e9).ok_or_else(beyond)?
        } else {
            zero
        };
        let parts = [
            self.overheads.dispatch,
            if work.steps_before == 0 {
                self.overheads.text_encoder
            } else {
                zero
            },
            if work.finishes_request() {
                self.overheads.vae_decode(work.resolution)
            } else {
                zero
            },
            hand_off,
            if k > 1 && (work.new_group || self.overheads.group_setup_on_regroup && work.remap) {
                self.overheads.group_setup
            } else {
                zero
            },
            if work.node_moved {
                self.overheads.node_handoff
            } else {
                zero
            },
        ];
        let steps = step
            .checked_times(u64::from(self.computed_steps(work)))
            .ok_or_else(beyond)?;
        parts
            .into_iter()
            .try_fold(steps, |t, p| t.checked_add(p))
            .ok_or_else(beyond)
    }
}

impl Executor for SimExecutor<'_> {
    fn reset(&mut self, workload: &Workload, _batches: &[u32]) -> Result<()> {
        self.skips = if workload.savings.iter().any(|s| !s.skips.is_empty()) {
            workload.savings.iter().map(|s| s.skips.clone()).collect()
        } else {
            Vec::new()
        };
        Ok(())
    }

    fn launch(&mut self, now: Nanos, work: &Work) -> Result<Launch> {
        let end = now.checked_add(self.duration(work)?).ok_or_else(|| {
            Error::Cost(format!(
                "the run's clock would pass the simulator's horizon (about 146 years) at {now} plus a work of {} steps: the workload's times or the profile's step times are too large",
                work.dispatch.steps
            ))
        })?;
        Ok(Launch::EndsAt(end))
    }

    fn can_cut(&self) -> bool {
        true
    }

    /// The boundaries of a work are the ends of its prefixes: the first `j` steps, dispatched
    /// alone, with the same start-up costs and no final decode unless `j` is every step.
    /// Their times rise with `j`, so the first one not before `now` is found by bisection.
    fn cut(&mut self, now: Nanos, start: Nanos, work: &Work) -> Result<Option<(Nanos, u32)>> {
        let end_of = |j: u32| -> Result<Nanos> {
            let mut prefix = *work;
            prefix.dispatch.steps = j;
            start
                .checked_add(self.duration(&prefix)?)
                .ok_or_else(|| Error::Cost("a cut work would end past the horizon".into()))
        };
        let (mut lo, mut hi) = (1, work.dispatch.steps);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if end_of(mid)? >= now {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(Some((end_of(lo)?, lo)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Cluster, GpuSet, Topology};
    use crate::cost::CostModel;
    use crate::policy::Batch;
    use crate::workload::RequestId;

    struct Flat;
    impl CostModel for Flat {
        fn step_time(&self, _: Resolution, _: u32, _: u32, _: Link) -> Result<Nanos> {
            Ok(Nanos::from_millis(10.0))
        }
        fn describe(&self) -> String {
            "flat".into()
        }
    }

    #[test]
    fn group_setup_is_charged_on_first_use_or_on_every_regroup() {
        let res = Resolution::square(256);
        let cluster = Cluster::new("x", 1, 4, Topology::NvSwitch).unwrap();
        let costs = StepTimes::resolve(&Flat, &[res], &cluster, &[1]).unwrap();
        let work = |gpus: GpuSet, remap: bool, new_group: bool| Work {
            id: WorkId(0),
            dispatch: Dispatch {
                batch: Batch::one(RequestId(0)),
                steps: 2,
                gpus,
            },
            class: costs.class_of(res).unwrap(),
            resolution: res,
            link: Link::NvLink,
            steps_before: 2,
            total_steps: 8,
            remap,
            new_group,
            node_moved: false,
        };
        let overheads = |on_regroup| Overheads {
            remap_fraction: 0.0,
            group_setup: Nanos::from_millis(100.0),
            group_setup_on_regroup: on_regroup,
            ..Overheads::default()
        };
        let ms = |t: Nanos| t.0 / 1_000_000;
        let pair = GpuSet::new(0, 0b11);
        for on_regroup in [false, true] {
            let e = SimExecutor::new(&costs, overheads(on_regroup));
            // First use of a set: always charged; steps are 2 x 10 ms.
            assert_eq!(ms(e.duration(&work(pair, false, true)).unwrap()), 120);
            // A cached set the request did not move onto: never.
            assert_eq!(ms(e.duration(&work(pair, false, false)).unwrap()), 20);
            // Moving onto a cached set: only without a communicator cache.
            let moved = ms(e.duration(&work(pair, true, false)).unwrap());
            assert_eq!(moved, if on_regroup { 120 } else { 20 });
            // One GPU never sets up a group.
            let one = GpuSet::new(0, 0b1);
            assert_eq!(ms(e.duration(&work(one, true, true)).unwrap()), 20);
        }
    }
}
