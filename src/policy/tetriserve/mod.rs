//! TetriServe: round-based step-level sequence parallelism (the paper's scheduler).
//!
//! Time is cut into rounds of length `tau`. At each round boundary, for every waiting request
//! of a node:
//! 1. `plan.rs`: the fewest GPU-seconds that still meet its deadline, as at most two
//!    (steps, degree) parts;
//! 2. `packing.rs`: Algorithm 1 chooses, per request, "wait" or one part to run this round
//!    (`q = min(steps, floor(tau / T))` steps), maximising the number of requests that can
//!    still meet their deadline after the round, within the node's idle GPUs;
//! 3. `placement.rs`: chosen requests get GPU sets, keeping the set they had when they can
//!    (placement preservation: no latent hand-off, no stall);
//! 4. elastic scale-up (work conservation): requests the packing left waiting start on idle
//!    GPUs at their plan's cheapest degree, earliest deadline first; then idle GPUs go to
//!    running requests whose step time really drops at twice the degree, largest
//!    remaining-time saving first;
//! 5. requests that can no longer meet their deadline run best-effort on one leftover GPU
//!    each (fewest remaining steps first), scaled up only with GPUs nobody else wants, or are
//!    dropped once late by more than a configurable margin (off by default).
//!
//! Under sustained overload those late requests pile up without bound. Each node keeps its
//! waiting requests in a `backlog.rs` index, fed from the view's arrivals and completions:
//! a round looks at the requests that can still make it, and reads late ones only as far as
//! it has idle GPUs to give (and the ones past the drop margin), never the whole backlog.
//!
//! Rounds: when the cluster is idle, an arriving request starts a round at once; otherwise it
//! joins at the next boundary. Boundaries then follow every `tau` while requests are active.
//! `tau = g x T_ref` with `g` steps (default 5, the paper's most robust granularity) and
//! `T_ref` the step time of the largest resolution on the service's menu (the scenario's SLO
//! bases; never the trace, which is the future) at the node's largest degree, so that the
//! most demanding request advances `g` steps per round at full width; then lengthened (by at
//! most 50%) to where whole steps of every menu resolution and degree waste the least of a
//! round. A fixed `tau` can be given instead.
//!
//! Refinements over Algorithm 1 as printed, each a switch on [`TetriserveConfig`] and all
//! off in `scenarios/tetriserve-paper-literal.toml`: plans use round-quantised step times;
//! a round runs as many steps as fit, not only the plan part's share; a request finishing
//! inside the round is judged at its completion, not at the round's end (always on: without
//! it a request whose deadline falls inside a round can never count as saved); idle GPUs
//! are backfilled between boundaries; the round length is snapped to whole steps; selective
//! batching (off by default).
//!
//! Multi-node clusters: each arriving request is assigned, for good, to the node with the
//! least outstanding work (sum over its active requests of remaining steps x cheapest
//! GPU-seconds per step, kept up to date from completions and drops; ties to the lowest
//! index); every node then runs its own rounds.
//!
//! Files: `config.rs` holds [`TetriserveConfig`] and [`Variant`], with every choice the paper
//! leaves open (the one source of their defaults); `table.rs` the step-time tables and the
//! round length; `assign.rs` node assignment; `conservation.rs` work conservation (steps 4);
//! this file the rounds themselves (units, batching, packing, best-effort service, dispatch).

mod assign;
mod backlog;
mod config;
mod conservation;
mod packing;
pub(in crate::policy) mod placement;
mod plan;
pub(in crate::policy) mod shedding;
pub(in crate::policy) mod table;

pub use config::{
    MAX_GRANULARITY, MAX_TAU_MS, MIN_TAU_MS, RoundLength, ShedConfig, ShedRule, TetriserveConfig,
    TetriserveSection, TieBreak, Variant,
};
pub use packing::{Group, Packer, Value};
pub use plan::{Part, Plan, min_gpu_plan};

use std::collections::HashSet;

use crate::cluster::{Cluster, GpuSet};
use crate::cost::{Overheads, ResClass, StepTimes};
use crate::policy::{Batch, Decision, Dispatch, Phase, Policy, PolicyKind, RequestState, View};
use crate::time::Nanos;
use crate::workload::RequestId;

use backlog::{Backlog, late_key};
use placement::Placer;
use table::{BATCH_SIZES, Table};

/// Allocation options of a unit in a round: (degree, steps), `(0, 0)` where unused.
type Options = [(u32, u32); 2];

/// A unit of one round: a request, or requests batched together, and its options.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    batch: Batch,
    class: ResClass,
    /// Allocation options in the order pushed into the packing group.
    options: Options,
}

/// The TetriServe policy.
pub struct Tetriserve {
    /// Its name, from the policy registry.
    name: String,
    variant: Variant,
    config: TetriserveConfig,
    overheads: Overheads,
    tau: Nanos,
    cluster: Cluster,
    /// Per resolution class, per batch size of [`BATCH_SIZES`] (when the cost model has it).
    tables: Vec<[Option<Table>; 3]>,
    /// Per class: the shortest step of any batch a unit can have (batch 1 only, without
    /// batching), any degree and link, if every one of those fits a round (`None`: some step
    /// runs even when it overruns the window). A backfill window shorter than every waiting
    /// request's shortest step dispatches nothing.
    shortest_step: Vec<Option<Nanos>>,
    /// Per node: the end of the round until which backfills find nothing to dispatch there,
    /// unless work arrives or completes on it.
    quiet: Vec<Option<Nanos>>,
    /// Per class: the cheapest GPU-time per step, for node loads.
    cheapest: Vec<u128>,
    /// Per class: the batch sizes worth forming (at least 10% GPU-time saved per image).
    batchable: Vec<Vec<u32>>,
    node_of: Vec<u32>,
    /// Multi-node: per node, the outstanding work of its requests (see `take_in`).
    load: Vec<u128>,
    /// Multi-node: per request, the remaining steps its node's `load` counts.
    counted: Vec<u32>,
    /// Per node: its waiting requests, late ones in best-effort order.
    backlogs: Vec<Backlog>,
    /// The time of the last call (the backlogs rely on it never going back).
    clock: Nanos,
    next_boundary: Option<Nanos>,
    used_groups: HashSet<GpuSet>,
    // Reusable per-round buffers.
    packer: Packer,
    groups: Vec<Group>,
    candidates: Vec<Candidate>,
    choice: Vec<usize>,
    units: Vec<Batch>,
    /// Per unit of `units`: its minimal-GPU-time plan to its earliest deadline, this round.
    plans: Vec<Plan>,
    unselected: Vec<(Nanos, RequestId, Candidate)>,
    batchable_buf: Vec<(ResClass, u32, u32, Nanos, RequestId)>,
    /// A node's waiting requests that can still make it, in arrival order.
    on_time: Vec<RequestId>,
    drops: Vec<RequestId>,
    /// Units shed this round (with shedding), then the late requests served best-effort.
    late: Vec<RequestId>,
    best_effort: Vec<RequestId>,
    /// With shedding: the node's running requests, by GPU set.
    running: Vec<RequestId>,
    placer: Placer,
}

impl Tetriserve {
    pub fn new(
        variant: Variant,
        cluster: &Cluster,
        costs: &StepTimes,
        config: TetriserveConfig,
        overheads: Overheads,
    ) -> Tetriserve {
        let classes = costs.classes().len();
        let class = |c: usize| ResClass(c as u16);
        let tau = table::round_length(&config, cluster, costs);
        let tables: Vec<[Option<Table>; 3]> = (0..classes)
            .map(|c| {
                BATCH_SIZES
                    .map(|b| Table::new(cluster, costs, class(c), b, tau, config.round_aware_plans))
            })
            .collect();
        let cheapest = tables
            .iter()
            .map(|t| {
                t[0].as_ref()
                    .expect("batch 1 is always resolved")
                    .cheapest()
            })
            .collect();
        let batchable = tables
            .iter()
            .map(|t| {
                let one = t[0].as_ref().expect("batch 1").step(1).0 as f64;
                BATCH_SIZES[1..]
                    .iter()
                    .zip(&t[1..])
                    .filter(|(b, tb)| {
                        tb.as_ref()
                            .is_some_and(|tb| (tb.step(1).0 as f64) <= 0.9 * f64::from(**b) * one)
                    })
                    .map(|(b, _)| *b)
                    .collect()
            })
            .collect();
        // Without batching every unit is one request: only the batch-1 table counts.
        let shortest_step = tables
            .iter()
            .map(|t| {
                let usable = if config.batching { &t[..] } else { &t[..1] };
                let t: Vec<&Table> = usable.iter().flatten().collect();
                if t.iter().any(|t| t.fastest > tau) {
                    return None;
                }
                t.iter()
                    .flat_map(|t| t.times.iter().map(|x| x.1).chain(t.pcie.iter().copied()))
                    .min()
            })
            .collect();
        Tetriserve {
            name: PolicyKind::Tetriserve(variant).to_string(),
            variant,
            config,
            overheads,
            tau,
            cluster: cluster.clone(),
            tables,
            shortest_step,
            quiet: vec![None; cluster.nodes as usize],
            cheapest,
            batchable,
            node_of: Vec::new(),
            load: vec![0; cluster.nodes as usize],
            counted: Vec::new(),
            backlogs: (0..cluster.nodes).map(|_| Backlog::default()).collect(),
            clock: Nanos::ZERO,
            next_boundary: None,
            used_groups: HashSet::new(),
            packer: Packer::default(),
            groups: Vec::new(),
            candidates: Vec::new(),
            choice: Vec::new(),
            units: Vec::new(),
            plans: Vec::new(),
            unselected: Vec::new(),
            batchable_buf: Vec::new(),
            on_time: Vec::new(),
            drops: Vec::new(),
            late: Vec::new(),
            best_effort: Vec::new(),
            running: Vec::new(),
            placer: Placer::default(),
        }
    }

    /// The round length in use.
    pub fn tau(&self) -> Nanos {
        self.tau
    }

    /// The table of `class` at the size of `batch`.
    fn table(&self, class: ResClass, batch: u32) -> &Table {
        self.tables[class.index()][batch.trailing_zeros() as usize]
            .as_ref()
            .expect("units only take resolved batch sizes")
    }
    /// work: `extra` always, `vae` if it would include the last step.
    fn steps_within(budget: Nanos, step: Nanos, extra: Nanos, vae: Nanos, remaining: u32) -> u32 {
        if budget <= extra || step == Nanos::ZERO {
            return 0;
        }
        let mut q = ((budget - extra).0 / step.0).min(u64::from(remaining)) as u32;
        if q == remaining && step.times(u64::from(q)) + extra + vae > budget {
            q -= 1;
        }
        q
    }

    /// Fixed costs of running `batch` on `gpus` now (text encoder, hand-off, group set-up),
    /// as the executor will charge them.
    fn extra_cost(
        &self,
        view: &View<'_>,
        batch: Batch,
        gpus: Option<GpuSet>,
        step: Nanos,
    ) -> Nanos {
        let lead = view.request(batch.ids()[0]);
        let mut extra = self.overheads.dispatch;
        if lead.steps_done == 0 {
            extra += self.overheads.text_encoder;
        }
        let moved = gpus.is_some_and(|new| {
            batch
                .ids()
                .iter()
                .any(|&id| view.request(id).gpus.is_some_and(|p| p != new))
        });
        if moved {
            extra += Nanos((step.0 as f64 * self.overheads.remap_fraction).ceil() as u64);
        }
        if let Some(g) = gpus
            && g.len() > 1
            && self.overheads.group_setup > Nanos::ZERO
            && (!self.used_groups.contains(&g) || self.overheads.group_setup_on_regroup && moved)
        {
            extra += self.overheads.group_setup;
        }
        extra
    }

    /// Whether every step of `id`'s class, at any degree and link, is longer than `window`
    /// (never for a class with a step longer than a round, which runs overrunning it).
    fn outlasts(&self, view: &View<'_>, id: RequestId, window: Nanos) -> bool {
        self.shortest_step[view.request(id).class.index()].is_some_and(|t| t > window)
    }

    /// The earliest deadline among a unit's requests.
    fn earliest_deadline(view: &View<'_>, batch: Batch) -> Nanos {
        batch
            .ids()
            .iter()
            .map(|&id| view.request(id).deadline())
            .min()
            .expect("a unit has a request")
    }

    /// The GPU set a unit last ran on, if all its requests ran there.
    fn prev_set(view: &View<'_>, batch: Batch) -> Option<GpuSet> {
        let first = view.request(batch.ids()[0]).gpus?;
        batch
            .ids()
            .iter()
            .all(|&id| view.request(id).gpus == Some(first))
            .then_some(first)
    }

    /// Runs one whole round now, whatever the timers say (what `decide` does at a boundary;
    /// public for benchmarks and tests). Requests must have been seen arriving by `decide`.
    pub fn round(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        self.run_round(view, view.now + self.tau, out);
    }

    /// Plans every node for the window from now to `round_end`: a whole round at a boundary,
    /// or the rest of the current round when backfilling idle GPUs.
    ///
    /// A backfill plans every node with waiting requests and idle GPUs, not only those where
    /// something happened (an arrival, a completion): time alone changes what a node decides.
    /// A waiting request turns late and becomes best-effort work for an idle GPU; a plan that
    /// no longer meets its deadline moves to a faster degree that fits; a shorter window fits
    /// another degree; shedding prices the node's load from now. It skips only the nodes
    /// found quiet: none of their waiting requests' steps fits the rest of the round.
    fn run_round(&mut self, view: &View<'_>, round_end: Nanos, out: &mut Vec<Decision>) {
        // A node found quiet stays so for the rest of the round unless work arrives or
        // completes there (see `run_node_round`).
        for &id in view.arrived.iter().chain(view.completed) {
            let node = self.node_of.get(id.index()).copied().unwrap_or(0);
            self.quiet[node as usize] = None;
        }
        for node in 0..self.cluster.nodes {
            if self.backlogs[node as usize].is_empty()
                || view.free.node_mask(node) == 0
                || self.quiet[node as usize] == Some(round_end)
            {
                continue;
            }
            let mut backlog = std::mem::take(&mut self.backlogs[node as usize]);
            self.run_node_round(view, node, &mut backlog, round_end, out);
            self.backlogs[node as usize] = backlog;
        }
    }

    /// Forms the round's units from the node's waiting requests that can still make it
    /// (`on_time`, in arrival order), and their plans; with shedding, moves the units the node
    /// cannot serve in time to `late` (or drops them).
    fn form_units(&mut self, view: &View<'_>, backlog: &mut Backlog, out: &mut Vec<Decision>) {
        let now = view.now;
        self.units.clear();
        self.late.clear();
        let mut batchable = std::mem::take(&mut self.batchable_buf);
        batchable.clear();
        for &id in &self.on_time {
            let s = view.request(id);
            if self.config.batching && !self.batchable[s.class.index()].is_empty() {
                batchable.push((s.class, s.steps_done, s.request.steps, s.deadline(), id));
            } else {
                self.units.push(Batch::one(id));
            }
        }
        // Identical requests (same resolution, same step, same step count), earliest deadline
        // first, in the largest batches whose own plan still meets the earliest deadline.
        batchable.sort();
        let mut i = 0;
        while i < batchable.len() {
            let (class, done, total, deadline, _) = batchable[i];
            let same = batchable[i..]
                .iter()
                .take_while(|b| (b.0, b.1, b.2) == (class, done, total))
                .count();
            let fits = self.batchable[class.index()]
                .iter()
                .rev()
                .copied()
                .find(|&b| {
                    b as usize <= same
                        && !min_gpu_plan(
                            &self.table(class, b).plan_times,
                            total - done,
                            deadline - now,
                        )
                        .late
                });
            let take = fits.unwrap_or(1) as usize;
            let mut ids = [batchable[i].4; crate::policy::MAX_BATCH];
            for (j, b) in batchable[i..i + take].iter().enumerate() {
                ids[j] = b.4;
            }
            self.units
                .push(Batch::of(&ids[..take]).expect("1 to 4 requests"));
            i += take;
        }
        self.batchable_buf = batchable;
        // Keep arrival order among units (deterministic, FCFS-like for equal values); without
        // batching they are in arrival order already.
        if self.config.batching {
            self.units.sort_by_key(|b| b.ids()[0]);
        }
        // Each unit's plan, computed once for shedding and the packing.
        let mut plans = std::mem::take(&mut self.plans);
        plans.clear();
        for b in &self.units {
            let lead = view.request(b.ids()[0]);
            let table = self.table(lead.class, b.len());
            let budget = Self::earliest_deadline(view, *b) - view.now;
            plans.push(min_gpu_plan(
                &table.plan_times,
                lead.remaining_steps(),
                budget,
            ));
        }
        self.plans = plans;
        if self.variant.shedding {
            self.shed(view, backlog.running(view));
            if self.config.shed.drop {
                for i in 0..self.late.len() {
                    let id = self.late[i];
                    self.forget(view, id);
                    out.push(Decision::Drop(id));
                }
                self.late.clear();
            }
        }
    }

    /// Overload shedding (`tetriserve-shed`, see [`shedding`]): moves to the best-effort list
    /// the units that the node cannot serve in time alongside the others. Shed requests still
    /// run on GPUs nobody else wants and count as met if they make it.
    fn shed(&mut self, view: &View<'_>, running_now: &[RequestId]) {
        let now = view.now;
        let mut jobs = Vec::with_capacity(self.units.len());
        for (b, plan) in self.units.iter().zip(&self.plans) {
            let table = self.table(view.request(b.ids()[0]).class, b.len());
            let deadline = Self::earliest_deadline(view, *b);
            let work = plan.gpu_time(&table.plan_times);
            let key = match self.config.shed.rule {
                ShedRule::LargestWork => work,
                ShedRule::LatestDeadline => u128::from(deadline.0),
            };
            jobs.push(shedding::ShedJob {
                deadline,
                work,
                key: Some(key),
            });
        }
        // Running units of the node that can still make it load it too. Members of a batch
        // share its GPU set (no two units do): sorted by set, each batch is priced as one unit.
        let mut running = std::mem::take(&mut self.running);
        running.clear();
        running.extend_from_slice(running_now);
        running.sort_unstable_by_key(|&id| (view.request(id).gpus, id));
        let mut i = 0;
        while i < running.len() {
            let s = view.request(running[i]);
            let size = running[i..]
                .iter()
                .take_while(|&&id| view.request(id).gpus == s.gpus)
                .count()
                .min(crate::policy::MAX_BATCH);
            let batch = if size.is_power_of_two() { size } else { 1 };
            i += batch;
            let deadline = running[i - batch..i]
                .iter()
                .map(|&id| view.request(id).deadline())
                .min()
                .expect("a unit has a request");
            let Some(table) =
                self.tables[s.class.index()][batch.trailing_zeros() as usize].as_ref()
            else {
                continue;
            };
            if deadline < now + table.fastest.times(u64::from(s.remaining_steps())) {
                continue;
            }
            let plan = min_gpu_plan(&table.plan_times, s.remaining_steps(), deadline - now);
            jobs.push(shedding::ShedJob {
                deadline,
                work: plan.gpu_time(&table.plan_times),
                key: None,
            });
        }
        self.running = running;
        let shed = shedding::shed(
            &jobs,
            now,
            self.cluster.gpus_per_node,
            self.config.shed.capacity,
        );
        // Indices ascend and running jobs come after every unit: remove from the back.
        for &j in shed.iter().rev() {
            self.plans.remove(j);
            let b = self.units.remove(j);
            self.late.extend_from_slice(b.ids());
        }
    }

    /// The round's knapsack input (Algorithm 1): per unit (a batch and its plan), a group of
    /// up to two options (degree, steps this round), each valued by the members that still
    /// meet their deadlines and the tie-break, and the candidate each option stands for.
    fn build_groups(&mut self, view: &View<'_>, round_end: Nanos) {
        let now = view.now;
        let next = round_end;
        let window = round_end - now;
        self.groups.clear();
        self.candidates.clear();
        let units = std::mem::take(&mut self.units);
        for (&batch, plan) in units.iter().zip(&self.plans) {
            let lead = view.request(batch.ids()[0]);
            let (class, left) = (lead.class, lead.remaining_steps());
            let table = self.table(class, batch.len());
            let tmin = table.fastest;
            // Members that make their deadlines if the unit's last step ends at `end`.
            let meeting = |end: Nanos| {
                batch
                    .ids()
                    .iter()
                    .filter(|&&id| end <= view.request(id).deadline())
                    .count() as u32
            };
            let mut group = Group::new(Value {
                survivors: meeting(next + tmin.times(u64::from(left))),
                secondary: 0,
            });
            let mut cand = Candidate {
                batch,
                class,
                options: [(0, 0); 2],
            };
            let vae = self.overheads.vae_decode(lead.request.resolution);
            let prev = Self::prev_set(view, batch);
            // A unit none of whose steps fits a round runs one step at a time, overrunning the
            // round (as `emit` dispatches it), at a boundary or as soon as GPUs come back: a
            // round shorter than a resolution's every step must not leave it unserved, nor
            // make each of its steps wait for the next boundary.
            let never_fits = table.fastest > self.tau;
            let mut add = |degree: u32, steps: u32, step: Nanos, extra: Nanos, overrun: bool| {
                let mut q = Self::steps_within(window, step, extra, vae, steps.min(left));
                if q == 0 && overrun {
                    q = 1;
                }
                if q == 0 || group.options() > 2 {
                    return false;
                }
                let secondary = match self.config.tie_break {
                    // Requests progressing (high bits), then GPU-time used, microseconds.
                    TieBreak::Work => {
                        (u64::from(batch.len()) << 32)
                            + (u64::from(q) * u64::from(degree) * (step.0 / 1000))
                                .min(u64::from(u32::MAX) / 64)
                    }
                    TieBreak::None => 0,
                };
                // Algorithm 1 judges survival at the round's end; a unit that completes inside
                // the round is judged at its actual completion instead, otherwise a request
                // whose deadline falls within the round could never count as saved.
                let survivors = if q == left {
                    meeting(now + step.times(u64::from(q)) + extra + vae)
                } else {
                    // The unit's next step starts at the next boundary, or later if this
                    // round's steps overrun it.
                    let free = (now + step.times(u64::from(q)) + extra).max(next);
                    meeting(free + tmin.times(u64::from(left - q)))
                };
                let i = group.push(
                    degree,
                    Value {
                        survivors,
                        secondary,
                    },
                );
                cand.options[i - 1] = (degree, q);
                true
            };
            let mut any = false;
            for part in plan.parts() {
                let step = table.step(part.degree);
                let extra =
                    self.extra_cost(view, batch, prev.filter(|g| g.len() == part.degree), step);
                let cap = if self.config.fill_rounds {
                    left
                } else {
                    part.steps
                };
                any |= add(part.degree, cap, step, extra, never_fits);
            }
            if !any {
                // No part fits a round (a step longer than tau at the planned degree): offer
                // the narrowest degree that does, so that the request is never starved.
                if let Some(&(k, step)) = table.times.iter().find(|&&(_, t)| t <= window) {
                    let extra = self.extra_cost(view, batch, None, step);
                    add(k, left, step, extra, false);
                }
            }
            self.groups.push(group);
            self.candidates.push(cand);
        }
        self.units = units;
    }

    /// Plans one node with idle GPUs for the window up to `round_end`: requests that can no
    /// longer meet their deadline are dropped past the margin or left to best-effort service;
    /// the others are packed (Algorithm 1), placed, and given the idle GPUs left.
    fn run_node_round(
        &mut self,
        view: &View<'_>,
        node: u32,
        backlog: &mut Backlog,
        round_end: Nanos,
        out: &mut Vec<Decision>,
    ) {
        let now = view.now;
        let window = round_end - now;
        let (mut on_time, mut drops) = (
            std::mem::take(&mut self.on_time),
            std::mem::take(&mut self.drops),
        );
        on_time.clear();
        drops.clear();
        let late = |s: &RequestState| {
            now + self
                .table(s.class, 1)
                .fastest
                .times(u64::from(s.remaining_steps()))
                > s.deadline()
        };
        let waiting = backlog.sweep(
            view,
            late,
            self.config.drop_late_after,
            &mut on_time,
            &mut drops,
        );
        for &id in &drops {
            self.forget(view, id);
            out.push(Decision::Drop(id));
        }
        self.on_time = on_time;
        self.drops = drops;
        if !waiting {
            return;
        }
        // A backfill whose window no waiting request's step fits dispatches nothing: every
        // dispatch needs a step within the window there (but steps longer than a round, for
        // which `shortest_step` is `None`; at a boundary the window is a whole round, which
        // every other class's shortest step fits). Nor will the shorter windows after it in
        // this round, until work arrives or completes on the node: the node is quiet until the
        // round's end. Its on-time requests turn late meanwhile, but their steps fit no better,
        // and none passes a drop margin before the round's end (on time now, each has a step
        // left that outlasts the window). Late requests count only as far as the node's idle
        // GPUs reach into their order (best-effort service places no more than that, and
        // requests turning late join them with steps that do not fit either); with a drop
        // margin, a late one may pass it before the round's end, so they must be none. Shed
        // units may be dropped, though: shedding that drops plans anyway. Without batching, a
        // batch table whose steps overrun a round does not keep a node from being quiet: no
        // unit has that batch.
        if self.config.skip_quiet_nodes
            && !(self.variant.shedding && self.config.shed.drop)
            && self
                .on_time
                .iter()
                .all(|&id| self.outlasts(view, id, window))
        {
            let free = view.free.node_mask(node).count_ones() as usize;
            let mut first = std::mem::take(&mut self.best_effort);
            first.clear();
            backlog.first_late_n(view, &[], free, &mut first);
            let quiet = first.is_empty()
                || (self.config.drop_late_after.is_none()
                    && first.iter().all(|&id| self.outlasts(view, id, window)));
            self.best_effort = first;
            if quiet {
                self.quiet[node as usize] = Some(round_end);
                return;
            }
        }
        self.form_units(view, backlog, out);
        self.build_groups(view, round_end);

        let free = view.free.node_mask(node);
        self.packer
            .pack(&self.groups, free.count_ones(), &mut self.choice);

        self.placer.start(node, free);
        for (cand, &o) in self.candidates.iter().zip(&self.choice) {
            if o > 0 {
                let (degree, _) = cand.options[o - 1];
                self.placer
                    .want(cand.batch, degree, Self::prev_set(view, cand.batch), false);
            }
        }
        self.placer
            .place(&self.cluster, self.variant.placement_preservation);
        if self.variant.elastic_scale_up {
            self.start_unselected(view, window);
            self.scale_up(view, false);
        }
        // Requests that cannot make it (and shed ones): one leftover GPU each, fewest
        // remaining steps first. Each takes one GPU, so only the first `idle` are read.
        self.late.sort_unstable_by_key(|&id| late_key(view, id));
        let mut served = std::mem::take(&mut self.best_effort);
        served.clear();
        backlog.first_late_n(view, &self.late, self.placer.idle() as usize, &mut served);
        for &id in &served {
            if self.placer.idle() == 0 {
                break;
            }
            let prev = view.request(id).gpus;
            self.placer.want(Batch::one(id), 1, prev, true);
            self.placer
                .place(&self.cluster, self.variant.placement_preservation);
        }
        self.best_effort = served;
        if self.variant.elastic_scale_up {
            self.scale_up(view, true);
        }
        let first = out.len();
        self.emit(view, window, out);
        if self.variant.shedding {
            for d in &out[first..] {
                if let Decision::Dispatch(d) = d {
                    d.batch.ids().iter().for_each(|&id| backlog.started(id));
                }
            }
        }
    }

    /// Turns placements into dispatches, with the steps that fit the window on the actual set.
    fn emit(&mut self, view: &View<'_>, window: Nanos, out: &mut Vec<Decision>) {
        for p in self.placer.placed() {
            let lead = view.request(p.batch.ids()[0]);
            let table = self.table(lead.class, p.batch.len());
            let step = table.step_on(&self.cluster, p.gpus);
            let extra = self.extra_cost(view, p.batch, Some(p.gpus), step);
            let vae = self.overheads.vae_decode(lead.request.resolution);
            let mut q = Self::steps_within(window, step, extra, vae, lead.remaining_steps());
            if q == 0 {
                // Skip it unless its step never fits a round: its class's every step is longer
                // than a round, or at a boundary, it is late or its step with the fixed costs
                // exceeds a whole round (the next round would not fit it either).
                let never_fits = table.fastest > self.tau;
                let fits_a_round = step + extra <= self.tau;
                if !never_fits && (window < self.tau || (!p.late && fits_a_round)) {
                    continue; // Nothing fits the window (or the hand-off pushed it out).
                }
                q = 1; // Steps longer than a whole round still make progress, overrunning it.
            }
            if self.overheads.group_setup > Nanos::ZERO {
                self.used_groups.insert(p.gpus);
            }
            out.push(Decision::Dispatch(Dispatch {
                batch: p.batch,
                steps: q,
                gpus: p.gpus,
            }));
        }
    }
}
impl Policy for Tetriserve {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        self.take_in(view);
        let round_due = match self.next_boundary {
            None => view
                .active
                .iter()
                .any(|&id| view.request(id).phase == Phase::Waiting),
            Some(t) => view.timer && view.now >= t,
        };
        if !round_due {
            // Between boundaries: offer idle GPUs for the rest of the round.
            if self.config.backfill
                && let Some(end) = self.next_boundary
                && end > view.now
                && (!view.completed.is_empty() || !view.arrived.is_empty())
            {
                self.run_round(view, end, out);
            }
            return;
        }
        if view.active.is_empty() {
            self.next_boundary = None;
            return;
        }
        let next = view.now + self.tau;
        self.run_round(view, next, out);
        self.next_boundary = Some(next);
        out.push(Decision::WakeAt(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Nanos {
        Nanos(v * 1_000_000)
    }

    #[test]
    fn steps_within_a_window_count_fixed_costs() {
        assert_eq!(
            Tetriserve::steps_within(ms(100), ms(30), Nanos::ZERO, Nanos::ZERO, 10),
            3
        );
        assert_eq!(
            Tetriserve::steps_within(ms(100), ms(30), ms(20), Nanos::ZERO, 10),
            2
        );
        // The VAE decode only counts when the work would include the last step.
        assert_eq!(
            Tetriserve::steps_within(ms(100), ms(30), Nanos::ZERO, ms(15), 3),
            2
        );
        assert_eq!(
            Tetriserve::steps_within(ms(100), ms(30), Nanos::ZERO, ms(15), 4),
            3
        );
        assert_eq!(
            Tetriserve::steps_within(ms(10), ms(30), Nanos::ZERO, Nanos::ZERO, 4),
            0
        );
    }
}
