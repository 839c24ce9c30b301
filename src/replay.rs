//! Replaying a recorded run's own decisions in simulation, and the fidelity error split by
//! cause.
//!
//! A real run and its simulation differ for three reasons: the profiled step times are not
//! the measured ones (*service time*), the real node pays costs per work that the simulator
//! models differently (*per-work overhead*: deciding and launching, inputs, latent upload and
//! download, hand-offs), and, once times differ, the policy decides differently (*schedule
//! divergence*). Replaying the real run's decisions with durations taken from the
//! measurement or from the model isolates each cause:
//!
//! - [`Durations::Measured`]: every work of the real run, on its GPUs, after the same event
//!   and the same delay (its *lag*: decision time minus the event that triggered it: the last
//!   arrival, work end or fired timer of the policy's before it), for its
//!   measured duration. This reproduces the real records to the nanosecond (checked: a replay
//!   that does not is an error in the replay, not a finding).
//! - [`Durations::ModelledSteps`]: the same, with each work's measured steps replaced by the
//!   profiled step times (its measured time outside the steps and its lag kept).
//! - [`Durations::Modelled`]: the same decisions, each work lasting what the simulator
//!   charges (profiled steps plus modelled per-work costs), dispatched the instant its
//!   trigger happens, as the simulator does.
//! - the simulation itself, the policy deciding.
//!
//! Per request, the latency differences between consecutive runs are the service,
//! overhead and divergence terms; they add up to the simulated minus the real latency by
//! construction ([`split`]).
//!
//! Decisions keep their order: a work is dispatched only after every earlier work of the
//! real run that shares a GPU or a request, so the replay runs the same works in the same
//! order on every GPU, whatever the durations.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::cluster::{Cluster, GpuSet};
use crate::cost::{Overheads, StepTimes};
use crate::engine::{self, Executor, Launch, SimExecutor, Work};
use crate::error::{Error, Result};
use crate::metrics::{Outcome, RequestRecord, RunRecords};
use crate::policy::{Batch, Decision, Dispatch, Policy, View};
use crate::time::Nanos;
use crate::workload::{RequestId, Resolution, Workload};

/// What a decision of the recorded run waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    /// The run's start (nothing happened before the decision).
    Start,
    Arrival(RequestId),
    /// The end of the recorded work with this index.
    End(usize),
    /// A timer of the policy's that fired at this time (a round boundary, say): the
    /// simulator decides at it too.
    Timer(Nanos),
}

#[derive(Clone, Debug, PartialEq)]
enum Action {
    Dispatch(Dispatch, u32),
    Drop(RequestId),
}

/// One decision of the recorded run.
#[derive(Clone, Debug, PartialEq)]
struct Item {
    action: Action,
    trigger: Trigger,
    /// Recorded decision time minus the trigger's time.
    lag: Nanos,
    /// For a dispatch, its index in the recorded works.
    work: Option<usize>,
}

/// The decisions of a recorded run, in the order it took them, with what triggered each.
#[derive(Clone, Debug)]
pub struct Schedule {
    items: Vec<Item>,
    /// Per recorded work, its measured duration.
    durations: Vec<Nanos>,
    /// Per recorded work, the measured time of its steps (where the executor measured it).
    steps_time: Vec<Option<Nanos>>,
    /// Recorded work by (first request, steps done before it).
    index: HashMap<(RequestId, u32), usize>,
}

/// How long each replayed work lasts (see the module's docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durations {
    Measured,
    ModelledSteps,
    Modelled,
}

impl Schedule {
    /// The decisions of `real`, a run of `workload` whose works were all recorded (in
    /// dispatch order), with `steps_time[i]` the measured time of work `i`'s steps.
    pub fn of(
        real: &RunRecords,
        workload: &Workload,
        steps_time: Vec<Option<Nanos>>,
    ) -> Result<Schedule> {
        let bad = |why: String| Error::Executor(format!("replaying the real run: {why}"));
        if real.requests.len() != workload.requests.len() {
            return Err(bad("its requests are not the workload's".into()));
        }
        let by_label: HashMap<u64, RequestId> =
            workload.requests.iter().map(|r| (r.label, r.id)).collect();
        // Events by time: arrivals, work ends and fired timers.
        let mut events: Vec<(Nanos, Trigger)> = workload
            .requests
            .iter()
            .map(|r| (r.arrival, Trigger::Arrival(r.id)))
            .collect();
        events.extend(
            real.works
                .iter()
                .enumerate()
                .map(|(i, w)| (w.end, Trigger::End(i))),
        );
        events.extend(real.timers.iter().map(|&t| (t, Trigger::Timer(t))));
        events.sort_by_key(|e| e.0);
        let trigger_of = |at: Nanos| -> (Trigger, Nanos) {
            let n = events.partition_point(|e| e.0 <= at);
            match n.checked_sub(1) {
                Some(i) => (events[i].1, at - events[i].0),
                None => (Trigger::Start, at),
            }
        };
        // Decisions in time order; a drop before a dispatch of the same instant.
        let mut timed: Vec<(Nanos, u8, usize, Item)> = Vec::new();
        let mut index = HashMap::new();
        let mut done: HashMap<RequestId, u32> = HashMap::new();
        for (i, w) in real.works.iter().enumerate() {
            if w.works != 1 {
                return Err(bad(format!("work {i} is a merged row")));
            }
            let ids = w
                .requests
                .iter()
                .map(|l| {
                    by_label
                        .get(l)
                        .copied()
                        .ok_or_else(|| bad(format!("work {i} runs unknown request {l}")))
                })
                .collect::<Result<Vec<_>>>()?;
            let batch = Batch::of(&ids).ok_or_else(|| bad(format!("work {i}'s batch")))?;
            let before = *done.get(&ids[0]).unwrap_or(&0);
            if before != w.first_step {
                return Err(bad(format!("work {i} starts at step {}", w.first_step)));
            }
            for id in &ids {
                *done.entry(*id).or_default() += w.steps;
            }
            index.insert((ids[0], w.first_step), i);
            let (trigger, lag) = trigger_of(w.start);
            let dispatch = Dispatch {
                batch,
                steps: w.steps,
                gpus: w.gpus,
            };
            timed.push((
                w.start,
                1,
                i,
                Item {
                    action: Action::Dispatch(dispatch, w.first_step),
                    trigger,
                    lag,
                    work: Some(i),
                },
            ));
        }
        for (i, r) in real.requests.iter().enumerate() {
            if r.outcome == Outcome::Dropped {
                let (trigger, lag) = trigger_of(r.end);
                timed.push((
                    r.end,
                    0,
                    i,
                    Item {
                        action: Action::Drop(RequestId(i as u32)),
                        trigger,
                        lag,
                        work: None,
                    },
                ));
            }
        }
        timed.sort_by_key(|t| (t.0, t.1, t.2));
        if steps_time.len() != real.works.len() {
            return Err(bad("a step time per work is needed".into()));
        }
        Ok(Schedule {
            items: timed.into_iter().map(|t| t.3).collect(),
            durations: real.works.iter().map(|w| w.end - w.start).collect(),
            steps_time,
            index,
        })
    }

    /// Per work of the recorded run, means in milliseconds: the decision lag (decision time
    /// minus the event it followed) and the time outside the work's steps (where timed).
    pub fn per_work_ms(&self) -> (f64, Option<f64>) {
        let works: Vec<&Item> = self.items.iter().filter(|i| i.work.is_some()).collect();
        let n = works.len().max(1) as f64;
        let lag = works.iter().map(|i| i.lag.0 as f64 / 1e6).sum::<f64>() / n;
        let outside: Option<Vec<f64>> = self
            .durations
            .iter()
            .zip(&self.steps_time)
            .map(|(d, s)| s.map(|s| d.0.saturating_sub(s.0) as f64 / 1e6))
            .collect();
        let outside = outside.map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64);
        (lag, outside)
    }

    /// Replays the decisions on `workload` and `cluster`, works lasting as `durations` says
    /// (`costs` and `overheads`: what the simulator charges).
    pub fn replay(
        &self,
        workload: &Workload,
        cluster: &Cluster,
        costs: &StepTimes,
        overheads: &Overheads,
        durations: Durations,
    ) -> Result<RunRecords> {
        let mut policy = Replayer::new(self, durations != Durations::Modelled);
        let mut exec = ReplayExecutor {
            schedule: self,
            full: SimExecutor::new(costs, overheads.clone()),
            steps_only: SimExecutor::new(
                costs,
                Overheads {
                    text_encoder: Nanos::ZERO,
                    vae_decode_per_1k_tokens: Nanos::ZERO,
                    remap_fraction: 0.0,
                    group_setup: Nanos::ZERO,
                    group_setup_on_regroup: false,
                    dispatch: Nanos::ZERO,
                    node_handoff: Nanos::ZERO,
                },
            ),
            durations,
        };
        exec.reset(workload, &[1])?;
        engine::run(workload, cluster, costs, &mut policy, &mut exec)
    }
}

/// Runs the schedule's works for the durations asked.
struct ReplayExecutor<'a> {
    schedule: &'a Schedule,
    full: SimExecutor<'a>,
    steps_only: SimExecutor<'a>,
    durations: Durations,
}

impl Executor for ReplayExecutor<'_> {
    fn reset(&mut self, workload: &Workload, batches: &[u32]) -> Result<()> {
        self.full.reset(workload, batches)?;
        self.steps_only.reset(workload, batches)
    }

    fn launch(&mut self, now: Nanos, work: &Work) -> Result<Launch> {
        let key = (work.dispatch.batch.ids()[0], work.steps_before);
        let i =
            *self.schedule.index.get(&key).ok_or_else(|| {
                Error::Executor("the replay dispatched an unrecorded work".into())
            })?;
        let measured = self.schedule.durations[i];
        let d = match self.durations {
            Durations::Measured => measured,
            Durations::Modelled => self.full.duration(work)?,
            Durations::ModelledSteps => {
                let steps = self.schedule.steps_time[i].ok_or_else(|| {
                    Error::Executor(format!("work {i}: its steps were not timed"))
                })?;
                let outside = measured.0.checked_sub(steps.0).map(Nanos).ok_or_else(|| {
                    Error::Executor(format!("work {i}: its steps outlast the work"))
                })?;
                outside
                    .checked_add(self.steps_only.duration(work)?)
                    .ok_or_else(|| Error::Cost("a replayed work past the horizon".into()))?
            }
        };
        let end = now
            .checked_add(d)
            .ok_or_else(|| Error::Cost("a replayed work past the horizon".into()))?;
        Ok(Launch::EndsAt(end))
    }
}

/// The policy that takes the recorded decisions again.
struct Replayer<'a> {
    schedule: &'a Schedule,
    /// Whether each decision waits its recorded lag after its trigger.
    lags: bool,
    taken: Vec<bool>,
    /// Items before this one are all taken.
    first: usize,
    /// When each recorded work ended in the replay.
    ends: Vec<Option<Nanos>>,
    /// The recorded work each request runs now.
    running: HashMap<RequestId, usize>,
}

impl<'a> Replayer<'a> {
    fn new(schedule: &'a Schedule, lags: bool) -> Replayer<'a> {
        Replayer {
            schedule,
            lags,
            taken: vec![false; schedule.items.len()],
            first: 0,
            ends: vec![None; schedule.durations.len()],
            running: HashMap::new(),
        }
    }
}

impl Policy for Replayer<'_> {
    fn name(&self) -> &str {
        "replay"
    }

    fn decide(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        let now = view.now;
        for id in view.completed {
            if let Some(w) = self.running.remove(id) {
                self.ends[w] = Some(now);
            }
        }
        let mut free = view.free.clone();
        // Resources of earlier decisions not taken yet: later ones must not overtake them.
        let mut held_gpus: Vec<GpuSet> = Vec::new();
        let mut held_requests: Vec<RequestId> = Vec::new();
        let mut wake: Option<Nanos> = None;
        while self.first < self.taken.len() && self.taken[self.first] {
            self.first += 1;
        }
        for i in self.first..self.schedule.items.len() {
            if self.taken[i] {
                continue;
            }
            let item = &self.schedule.items[i];
            let due = match item.trigger {
                Trigger::Start => Some(Nanos::ZERO),
                Trigger::Arrival(id) => Some(view.request(id).request.arrival),
                Trigger::End(w) => self.ends[w],
                Trigger::Timer(t) => Some(t),
            }
            .and_then(|t| {
                if self.lags {
                    t.checked_add(item.lag)
                } else {
                    Some(t)
                }
            });
            let (gpus, requests): (Option<GpuSet>, Vec<RequestId>) = match &item.action {
                Action::Dispatch(d, _) => (Some(d.gpus), d.batch.ids().to_vec()),
                Action::Drop(id) => (None, vec![*id]),
            };
            let blocked = requests.iter().any(|r| held_requests.contains(r))
                || gpus.is_some_and(|g| held_gpus.iter().any(|h| h.overlaps(g)));
            let ready = match &item.action {
                Action::Dispatch(d, first_step) => {
                    free.is_free(d.gpus)
                        && requests.iter().all(|&r| {
                            let s = view.request(r);
                            s.phase == crate::policy::Phase::Waiting && s.steps_done == *first_step
                        })
                }
                Action::Drop(id) => view.request(*id).phase == crate::policy::Phase::Waiting,
            };
            match due {
                Some(t) if t <= now && ready && !blocked => {
                    self.taken[i] = true;
                    match &item.action {
                        Action::Dispatch(d, _) => {
                            free.take(d.gpus);
                            for &r in d.batch.ids() {
                                self.running.insert(r, item.work.expect("a work"));
                            }
                            out.push(Decision::Dispatch(*d));
                        }
                        Action::Drop(id) => out.push(Decision::Drop(*id)),
                    }
                    continue;
                }
                Some(t) if t > now => wake = Some(wake.map_or(t, |w: Nanos| w.min(t))),
                _ => {}
            }
            held_requests.extend(requests);
            held_gpus.extend(gpus);
        }
        if let Some(t) = wake {
            out.push(Decision::WakeAt(t));
        }
    }
}

/// Per request: the latency differences between consecutive replays, milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestSplit {
    pub id: u64,
    pub resolution: Resolution,
    /// The degrees its steps ran at in the real run (bit `i`: degree `2^i`).
    pub degrees: u32,
    pub real_ms: f64,
    /// Simulated minus real latency.
    pub total_ms: f64,
    pub service_ms: f64,
    pub overhead_ms: f64,
    pub divergence_ms: f64,
}

/// The error split by cause (see the module's docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub requests: Vec<RequestSplit>,
    /// Requests left out: unfinished in one of the runs.
    pub left_out: usize,
    /// Whether the replay with measured durations reproduced the real run's records exactly.
    pub exact: bool,
    /// What the real run paid per work, for the overhead column: mean decision lag, mean time
    /// outside the steps, and what the simulator charged (`overheads.dispatch`), milliseconds.
    pub per_work: Option<PerWork>,
}

/// Per-work costs, means over the real run's works, milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PerWork {
    pub works: usize,
    pub lag_ms: f64,
    pub outside_ms: f64,
    pub charged_ms: f64,
}

/// The latency of a finished request, nanoseconds.
fn latency(r: &RequestRecord) -> Option<u64> {
    (r.outcome != Outcome::Dropped && r.steps_done == r.steps).then(|| (r.end - r.arrival).0)
}

/// Whether two runs have the same request and work records (decision timings aside).
pub fn same_records(a: &RunRecords, b: &RunRecords) -> bool {
    a.requests == b.requests && a.works == b.works
}

/// Splits `sim` minus `real` per request from the replays of `real`'s decisions: `measured`
/// (which must equal `real`), `modelled_steps` and `modelled` (see [`Durations`]). The terms of
/// each request add up to its total.
pub fn split(
    real: &RunRecords,
    measured: &RunRecords,
    modelled_steps: &RunRecords,
    modelled: &RunRecords,
    sim: &RunRecords,
) -> Split {
    let ms = |ns: i128| ns as f64 / 1e6;
    let mut requests = Vec::new();
    let mut left_out = 0;
    for (i, r) in real.requests.iter().enumerate() {
        let runs = [measured, modelled_steps, modelled, sim];
        let l: Option<Vec<u64>> = std::iter::once(r)
            .chain(runs.iter().map(|x| &x.requests[i]))
            .map(latency)
            .collect();
        let Some(l) = l else {
            left_out += 1;
            continue;
        };
        let d = |a: usize, b: usize| ms(i128::from(l[b]) - i128::from(l[a]));
        requests.push(RequestSplit {
            id: r.id,
            resolution: r.resolution,
            degrees: r.degrees_used,
            real_ms: ms(i128::from(l[0])),
            total_ms: d(0, 4),
            // The measured replay equals the real run; any difference would show here.
            service_ms: d(0, 2),
            overhead_ms: d(2, 3),
            divergence_ms: d(3, 4),
        });
    }
    Split {
        requests,
        left_out,
        exact: same_records(real, measured),
        per_work: None,
    }
}

/// A set of degrees as `1`, `1+2`, ...
fn degrees_label(bits: u32) -> String {
    let v: Vec<String> = (0..32)
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| (1u64 << i).to_string())
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join("+")
    }
}

impl Split {
    /// Rows per (resolution, degrees used in the real run), then all: requests, mean real
    /// latency, and the mean of each signed term (ms), with the terms' share of the real
    /// latency.
    pub fn rows(&self) -> Vec<(String, String, usize, [f64; 5])> {
        let mut keys: Vec<(u64, Resolution, u32)> = self
            .requests
            .iter()
            .map(|r| (r.resolution.tokens(), r.resolution, r.degrees))
            .collect();
        keys.sort_by_key(|k| (k.0, k.2));
        keys.dedup();
        let mean = |v: &[&RequestSplit]| -> [f64; 5] {
            let n = v.len().max(1) as f64;
            let f = |g: fn(&RequestSplit) -> f64| v.iter().map(|r| g(r)).sum::<f64>() / n;
            [
                f(|r| r.real_ms),
                f(|r| r.total_ms),
                f(|r| r.service_ms),
                f(|r| r.overhead_ms),
                f(|r| r.divergence_ms),
            ]
        };
        let mut rows = Vec::new();
        for (_, res, deg) in keys {
            let v: Vec<&RequestSplit> = self
                .requests
                .iter()
                .filter(|r| r.resolution == res && r.degrees == deg)
                .collect();
            rows.push((res.to_string(), degrees_label(deg), v.len(), mean(&v)));
        }
        let all: Vec<&RequestSplit> = self.requests.iter().collect();
        rows.push(("all".into(), String::new(), all.len(), mean(&all)));
        rows
    }

    /// The table as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::from(
            "| resolution | real degrees | requests | real latency, ms | sim - real, ms | service time, ms | per-work overhead, ms | schedule divergence, ms |\n|---|---|---|---|---|---|---|---|\n",
        );
        for (res, deg, n, m) in self.rows() {
            let pct = |x: f64| {
                if m[0] > 0.0 {
                    format!("{x:+.2} ({:+.1}%)", 100.0 * x / m[0])
                } else {
                    format!("{x:+.2}")
                }
            };
            let _ = writeln!(
                s,
                "| {res} | {deg} | {n} | {:.2} | {} | {} | {} | {} |",
                m[0],
                pct(m[1]),
                pct(m[2]),
                pct(m[3]),
                pct(m[4])
            );
        }
        if let Some(p) = &self.per_work {
            let _ = writeln!(
                s,
                "\nPer work of the real run (mean over {} works): decision lag {:.3} ms (from the arrival, work end or policy timer a decision followed to the decision) and {:.3} ms outside the steps (inputs, latent upload and download, hand-offs); the simulator charges {:.3} ms per work and no lag.",
                p.works, p.lag_ms, p.outside_ms, p.charged_ms
            );
        }
        let _ = writeln!(
            s,
            "\nMeans over requests finished in every run ({} left out); each term is signed (simulated minus real), and service + overhead + divergence = sim - real for every request. The real run's decisions replayed with its measured durations reproduce its records {}.",
            self.left_out,
            if self.exact {
                "exactly"
            } else {
                "NOT exactly (the split is not trustworthy)"
            }
        );
        s
    }

    /// Per request: `id,resolution,real_degrees,real_ms,total_ms,service_ms,overhead_ms,divergence_ms`.
    pub fn to_csv(&self) -> String {
        let mut s = String::from(
            "id,resolution,real_degrees,real_ms,total_ms,service_ms,overhead_ms,divergence_ms\n",
        );
        for r in &self.requests {
            let _ = writeln!(
                s,
                "{},{},{},{:.6},{:.6},{:.6},{:.6},{:.6}",
                r.id,
                r.resolution,
                degrees_label(r.degrees),
                r.real_ms,
                r.total_ms,
                r.service_ms,
                r.overhead_ms,
                r.divergence_ms
            );
        }
        s
    }
}
