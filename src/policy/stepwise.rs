//! `stepwise` (beyond the paper): step-level sequence parallelism re-planned at request step
//! boundaries, with grants revocable at every step boundary.
//!
//! TetriServe plans in rounds: GPUs granted at a boundary are held for the whole round, an
//! arrival waits for the next boundary, and every step time is quantised to the round. Three
//! losses follow (docs/stepwise.md, "Where TetriServe loses"): idle tails of rounds
//! whose length whole steps do not fill; hopeless work holding wide sets for a whole round
//! while requests with slack wait; and per-request plans that all start narrow in a burst and
//! all need more GPUs at once later. This policy keeps TetriServe's ingredients (the
//! minimal-GPU-time plan, placement preservation, work conservation, overload shedding) and
//! drops the round:
//!
//! - **Grants end at any step boundary.** A GPU lent to anyone returns to the pool when the
//!   holder's current step ends, so an arrival waits for at most one step of the GPUs'
//!   holders, never a round. With one-step grants (`grants = "one-step"`) every dispatch runs
//!   one denoising step and a request is re-planned at each of its boundaries. With revocable
//!   grants (the default where the executor can cut work, [`View::can_cut`]), a request is
//!   granted every remaining step at once, and a re-plan of its node (at an arrival, a work's
//!   end, or, while an admitted request waits there, the running grants' next boundary)
//!   treats it as if it were at its next boundary: if the plan keeps it on the GPUs it holds
//!   it runs on, else it is cut there ([`Decision::Cut`]). The same steps run on the same
//!   GPUs at the same times as with one-step grants on every hand-computed schedule, in a
//!   fraction of the works and decisions. A grant below the request's need stays one step
//!   long (the GPUs it lacks may be idle at its next boundary).
//! - **Each request runs at the narrowest degree that meets its deadline from now on** (its
//!   *need*): running every remaining step there is on time, so the request never counts on
//!   GPUs it may not get later. As it runs ahead of schedule, its need drops. Over a request's
//!   life this is the minimal-GPU-time plan of `tetriserve/plan.rs`, wide parts first.
//! - **Earliest deadline first, with admission.** A node's requests that can still make it
//!   pass the fluid overload test of `tetriserve/shedding.rs` (Moore-Hodgson on the node's
//!   GPU-seconds); the admitted ones claim their need in deadline order, counting the GPUs
//!   that running requests will need again after their current step. A request whose need is
//!   not idle now is *blocked*: the idle GPUs are reserved for it, and others may use them only
//!   for a step that ends before the blocked request could start anyway (EASY backfilling).
//! - **Work conservation, revocable.** Shed requests get their need only from GPUs the
//!   admitted ones leave (deadline order); late ones run only while no admitted request lives
//!   on the node (one GPU each, fewest remaining steps first), since a late step holds its GPU
//!   for a whole step that cannot count; then this instant's grants double their degree where
//!   a step really gets faster, largest saving first. All of it is reclaimed at the holder's
//!   next step boundary when someone with a deadline needs it.
//!
//! Requests that can no longer meet their deadline (even alone at the fastest degree) are
//! *late*: they are kept in a heap per node and read only as far as idle GPUs reach, so that a
//! growing backlog under overload costs O(log n) per served request, not a scan.
//!
//! - **One queue across nodes.** An arrival goes to the node with the least outstanding work
//!   with a deadline (then the shortest late backlog, then the most idle GPUs). At every
//!   decision, a waiting admitted request that its node cannot start now moves to a node that
//!   serves no request with a deadline and whose idle GPUs fit its need (earliest deadline
//!   first, the tightest fit), paying the latent's hand-off to that node
//!   (`overheads.node_handoff`); SP groups never span nodes.
//! - **A per-work cost is planned per work.** With a dispatch cost (`overheads.dispatch`), a
//!   grant runs as many steps as amortise it (one step when dispatching is free) and, for a
//!   request whose slack cannot pay a dispatch at every grant, as many as its slack requires;
//!   its need counts one dispatch per grant.
//!
//! The policy is causal: it reads only arrived requests and the cost table.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashSet};

use crate::cluster::{Cluster, GpuSet};
use crate::cost::{Overheads, ResClass, StepTimes};
use crate::policy::tetriserve::placement::Placer;
use crate::policy::tetriserve::shedding::{self, ShedJob};
use crate::policy::tetriserve::table::Table;
use crate::policy::tetriserve::{Plan, min_gpu_plan};
use crate::policy::{Batch, Decision, Dispatch, Phase, Policy, PolicyKind, RequestState, View};
use crate::time::Nanos;
use crate::workload::RequestId;

/// One live request of a node, as one decision sees it.
#[derive(Clone, Copy, Debug)]
struct Live {
    id: RequestId,
    class: ResClass,
    deadline: Nanos,
    /// Waiting now (a candidate for a grant), or running until its step ends.
    waiting: bool,
    /// The narrowest degree that meets the deadline with every remaining step there.
    need: u32,
    /// GPUs it holds now (running) or 0.
    holds: u32,
    /// Running a revocable grant, planned as if waiting at its next step boundary: kept if
    /// the plan gives it the GPUs it holds, else cut there.
    revocable: bool,
    /// Least GPU-nanoseconds it needs before its deadline (for admission).
    work: u128,
    shed: bool,
}

/// The stepwise policy (see the module docs).
pub struct Stepwise {
    /// Its name, from the policy registry.
    name: String,
    config: StepwiseConfig,
    cluster: Cluster,
    overheads: Overheads,
    /// Per class: step times at every degree of a node (batch 1).
    tables: Vec<Table>,
    /// Per class: what one step costs the admission test's plan at every degree, its share
    /// of the per-work dispatch (at the amortising grant length) included.
    planned: Vec<Vec<(u32, Nanos)>>,
    /// Per class: the least of `planned`, what one step costs at the fastest degree.
    fastest: Vec<Nanos>,
    /// Per request: the steps of the work it runs now.
    granted: Vec<u32>,
    /// Per request: the steps of its next grant, as its last pricing planned them.
    plan_grant: Vec<u32>,
    /// Per request: its need (see [`Live::need`]), as its last pricing found it.
    plan_need: Vec<u32>,
    /// Per class: the least a request of it that could be met on arrival could have waited
    /// before starting, and the GPUs it needed then. Late work whose grant holds GPUs longer
    /// than a class's wait leaves that class's need idle (`reserve`).
    tight: Vec<Option<(Nanos, u32)>>,
    node_of: Vec<u32>,
    /// Per request: when the step it runs is expected to end (a plan, not a measurement).
    busy_until: Vec<Nanos>,
    /// Per request: its pricing while it runs, for the `busy_until` it was made with. Until
    /// that end every input of a running request's pricing is fixed (its steps, its grant,
    /// its ready time), so the node's later decisions reuse it instead of pricing it again.
    priced: Vec<Option<(Nanos, Live)>>,
    late: Vec<bool>,
    /// Per node: its requests that can still make it, waiting or running, in arrival order.
    live: Vec<Vec<RequestId>>,
    /// Per node: its late waiting requests, fewest remaining steps first.
    late_heap: Vec<BinaryHeap<Reverse<(u32, RequestId)>>>,
    /// Per node: its late requests running now (at most one per GPU).
    late_running: Vec<Vec<RequestId>>,
    used_groups: HashSet<GpuSet>,
    placer: Placer,
    entries: Vec<Live>,
    order: Vec<usize>,
    /// Per node: whether something happened there at this instant; `touched_list` holds
    /// the same nodes, so that a decision costs what changed, not the cluster's size.
    touched: Vec<bool>,
    touched_list: Vec<u32>,
    /// Per request: what it adds to its node's `outstanding` (remaining steps x cheapest
    /// GPU-time per step) while it is live with a deadline, else `None`.
    counted: Vec<Option<u128>>,
    /// Per node: the sum of its requests' `counted` and how many are counted (kept as
    /// requests arrive, move, complete steps, end or turn late, instead of summed per arrival).
    outstanding: Vec<u128>,
    serving: Vec<u32>,
    /// Nodes serving no request with a deadline (`serving` 0): the only possible lenders.
    not_serving: BTreeSet<u32>,
    /// Requests this decision gives up (hopeless: see [`hopeless`](Stepwise::hopeless)).
    drops: Vec<RequestId>,
    /// The nodes whose last plan left an admitted waiting request without a grant.
    stuck: BTreeSet<u32>,
    /// Whether this decision's grants are revocable (configured, and the executor can cut).
    revocable: bool,
    /// Per request: its running revocable grant, for its step boundaries.
    run: Vec<Option<Run>>,
    /// The revocable grants this node's plan priced (see [`Live::revocable`]), and the
    /// revocable grants that run on after it (kept, or made by it).
    virtual_ids: Vec<RequestId>,
    kept: Vec<RequestId>,
    /// Requests whose grant this decision cuts.
    cuts: Vec<RequestId>,
    /// Per node: how fast its revocable grants drain its `outstanding` work between
    /// decisions, as `a x now - b` GPU-nanoseconds (each grant adds its cheapest GPU time per
    /// step over its step time, and that times when its first step starts). A one-step grant
    /// is recounted at every boundary; a revocable one only when it ends, so without this a
    /// node's outstanding work would stay at what it was when its grants were made.
    drain: Vec<(f64, f64)>,
    /// Per request: what its running revocable grant adds to its node's `drain`.
    drains: Vec<Option<(f64, f64)>>,
    /// Nodes to re-plan at a revocable grant's step boundary (an admitted request waits
    /// there, and a running one's need may drop by then), earliest first.
    wakes: BinaryHeap<Reverse<(Nanos, u32)>>,
}

/// A revocable grant as dispatched: its steps end at `start + lead + j x step`.
#[derive(Clone, Copy, Debug)]
struct Run {
    start: Nanos,
    lead: Nanos,
    step: Nanos,
    steps: u32,
}

impl Run {
    /// The first step boundary not before `now` and the steps done by then (at least one).
    fn next_boundary(&self, now: Nanos) -> (Nanos, u32) {
        let first = self.start + self.lead;
        let step = self.step.0.max(1);
        let j = if now <= first {
            1
        } else {
            (now - first).0.div_ceil(step).max(1)
        };
        let j = j.min(u64::from(self.steps)) as u32;
        (first + times(self.step, j), j)
    }
}

impl Stepwise {
    pub fn new(
        cluster: &Cluster,
        costs: &StepTimes,
        overheads: Overheads,
        config: StepwiseConfig,
    ) -> Stepwise {
        let classes = costs.classes().len();
        // Plans use the nominal step times (no rounds to quantise them to), so `tau` is moot.
        let tables: Vec<Table> = (0..classes)
            .map(|c| {
                Table::new(cluster, costs, ResClass(c as u16), 1, Nanos(1), false)
                    .expect("batch 1 is always resolved")
            })
            .collect();
        let planned: Vec<Vec<(u32, Nanos)>> = tables
            .iter()
            .map(|t| {
                let share = |step: Nanos| {
                    let g = u64::from(grant_steps(overheads.dispatch, step));
                    step + Nanos(overheads.dispatch.0.div_ceil(g))
                };
                t.times.iter().map(|&(k, step)| (k, share(step))).collect()
            })
            .collect();
        Stepwise {
            name: PolicyKind::Stepwise.to_string(),
            config,
            fastest: planned
                .iter()
                .map(|p| p.iter().map(|&(_, t)| t).min().unwrap_or(Nanos::ZERO))
                .collect(),
            cluster: cluster.clone(),
            overheads,
            tables,
            planned,
            granted: Vec::new(),
            plan_grant: Vec::new(),
            plan_need: Vec::new(),
            tight: vec![None; classes],
            node_of: Vec::new(),
            busy_until: Vec::new(),
            priced: Vec::new(),
            late: Vec::new(),
            live: vec![Vec::new(); cluster.nodes as usize],
            late_heap: vec![BinaryHeap::new(); cluster.nodes as usize],
            late_running: vec![Vec::new(); cluster.nodes as usize],
            used_groups: HashSet::new(),
            placer: Placer::default(),
            entries: Vec::new(),
            order: Vec::new(),
            touched: vec![false; cluster.nodes as usize],
            touched_list: Vec::new(),
            counted: Vec::new(),
            outstanding: vec![0; cluster.nodes as usize],
            serving: vec![0; cluster.nodes as usize],
            not_serving: (0..cluster.nodes).collect(),
            stuck: BTreeSet::new(),
            drops: Vec::new(),
            revocable: false,
            run: Vec::new(),
            virtual_ids: Vec::new(),
            kept: Vec::new(),
            cuts: Vec::new(),
            wakes: BinaryHeap::new(),
            drain: vec![(0.0, 0.0); cluster.nodes as usize],
            drains: Vec::new(),
        }
    }

    /// The steps of the next grant of `id`, at `degree`: what its pricing planned for a
    /// request with a deadline, the amortising length for late work.
    fn grant(&self, id: RequestId, class: ResClass, degree: u32, remaining: u32) -> u32 {
        let g = if self.late[id.index()] {
            grant_steps(
                self.overheads.dispatch,
                self.tables[class.index()].step(degree),
            )
        } else {
            self.plan_grant[id.index()]
        };
        g.min(remaining).max(1)
    }

    /// How long the next grant of `id` at `degree` holds its GPUs: its steps and the dispatch
    /// (text encoder, hand-off and VAE aside).
    fn step(&self, id: RequestId, class: ResClass, degree: u32, remaining: u32) -> Nanos {
        let g = self.grant(id, class, degree, remaining);
        times(self.tables[class.index()].step(degree), g) + self.overheads.dispatch
    }

    /// Step time on exactly the set `gpus` (its link included).
    fn step_on(&self, class: ResClass, gpus: GpuSet) -> Nanos {
        self.tables[class.index()].step_on(&self.cluster, gpus)
    }

    /// Costs outside the steps that a request starting a work now must still pay before its
    /// deadline: the text encoder if it has not started, and the VAE decode at the end.
    fn fixed_costs(&self, s: &RequestState) -> Nanos {
        let mut fixed = self.overheads.vae_decode(s.request.resolution);
        if s.steps_done == 0 {
            fixed += self.overheads.text_encoder;
        }
        // The dispatch is paid per work, and every step is a work: it is in `planned`.
        fixed
    }

    /// Costs the executor charges a one-step work of `s` on `gpus` now: dispatch, text
    /// encoder, hand-off, group set-up, and the VAE decode if it is the last step.
    fn work_cost(&self, s: &RequestState, gpus: GpuSet, step: Nanos, steps: u32) -> Nanos {
        let mut extra = self.overheads.dispatch;
        if s.steps_done == 0 {
            extra += self.overheads.text_encoder;
        }
        let moved = s.gpus.is_some_and(|p| p != gpus);
        if moved {
            extra += Nanos((step.0 as f64 * self.overheads.remap_fraction).ceil() as u64);
        }
        if s.gpus.is_some_and(|p| p.node() != gpus.node()) {
            extra += self.overheads.node_handoff;
        }
        if gpus.len() > 1
            && self.overheads.group_setup > Nanos::ZERO
            && (!self.used_groups.contains(&gpus) || self.overheads.group_setup_on_regroup && moved)
        {
            extra += self.overheads.group_setup;
        }
        if s.remaining_steps() == steps {
            extra += self.overheads.vae_decode(s.request.resolution);
        }
        extra
    }

    /// Takes in arrivals (assigned to the least-loaded node) and completions (late requests
    /// back to their node's heap); marks the nodes where something happened.
    fn take_in(&mut self, view: &View<'_>) {
        for n in self.touched_list.drain(..) {
            self.touched[n as usize] = false;
        }
        if let Some(max) = view.arrived.iter().map(|id| id.index()).max()
            && self.node_of.len() <= max
        {
            self.node_of.resize(max + 1, 0);
            self.busy_until.resize(max + 1, Nanos::ZERO);
            self.granted.resize(max + 1, 0);
            self.plan_grant.resize(max + 1, 1);
            self.plan_need.resize(max + 1, 1);
            self.late.resize(max + 1, false);
            self.counted.resize(max + 1, None);
            self.priced.resize(max + 1, None);
            self.run.resize(max + 1, None);
            self.drains.resize(max + 1, None);
        }
        while let Some(&Reverse((t, node))) = self.wakes.peek()
            && t <= view.now
        {
            self.wakes.pop();
            self.touch(node);
        }
        for &id in view.completed {
            let Some(&node) = self.node_of.get(id.index()) else {
                continue;
            };
            self.touch(node);
            self.run[id.index()] = None;
            self.recount(view, id);
            let s = view.request(id);
            let running = &mut self.late_running[node as usize];
            if let Some(i) = running.iter().position(|&r| r == id) {
                running.swap_remove(i);
            }
            if self.late[id.index()] && s.phase == Phase::Waiting {
                self.late_heap[node as usize].push(Reverse((s.remaining_steps(), id)));
            }
        }
        for &id in view.arrived {
            // The node with the least outstanding work with a deadline, then the shortest
            // late backlog (late work holds GPUs too: a node busy with hopeless work must not
            // look empty), then the most idle GPUs. `route` moves the request later if
            // another node can start it sooner.
            let node = if self.cluster.nodes > 1 {
                (0..self.cluster.nodes)
                    .min_by_key(|&n| {
                        let idle = view.free.node_mask(n).count_ones();
                        let late =
                            self.late_heap[n as usize].len() + self.late_running[n as usize].len();
                        (self.outstanding_at(n, view.now), late, Reverse(idle), n)
                    })
                    .unwrap_or(0)
            } else {
                0
            };
            self.note_slack(view.request(id), view.expected_remaining_steps(id));
            self.node_of[id.index()] = node;
            self.live[node as usize].push(id);
            self.recount(view, id);
            self.touch(node);
        }
    }

    /// Marks `node` as one to re-plan at this instant.
    fn touch(&mut self, node: u32) {
        if !self.touched[node as usize] {
            self.touched[node as usize] = true;
            self.touched_list.push(node);
        }
    }

    /// Brings `id`'s share of its node's outstanding work up to date: remaining steps x
    /// cheapest GPU-time per step while it waits or runs with a deadline, nothing once it
    /// ended or turned late.
    fn recount(&mut self, view: &View<'_>, id: RequestId) {
        let s = view.request(id);
        let now = (!self.late[id.index()] && matches!(s.phase, Phase::Waiting | Phase::Running))
            .then(|| u128::from(s.remaining_steps()) * self.tables[s.class.index()].cheapest());
        self.set_counted(id, now);
    }

    /// Replaces `id`'s counted share (see [`recount`](Stepwise::recount)) with `now`.
    fn set_counted(&mut self, id: RequestId, now: Option<u128>) {
        self.undrain(id);
        let node = self.node_of[id.index()] as usize;
        let before = self.serving[node];
        if let Some(a) = self.counted[id.index()].take() {
            self.outstanding[node] -= a;
            self.serving[node] -= 1;
        }
        if let Some(a) = now {
            self.outstanding[node] += a;
            self.serving[node] += 1;
        }
        self.counted[id.index()] = now;
        match (before, self.serving[node]) {
            (0, n) if n > 0 => {
                self.not_serving.remove(&(node as u32));
            }
            (b, 0) if b > 0 => {
                self.not_serving.insert(node as u32);
            }
            _ => {}
        }
    }

    /// `node`'s outstanding work at `now`, its revocable grants' progress since they were
    /// made taken off (see [`drain`](Stepwise::drain)).
    fn outstanding_at(&self, node: u32, now: Nanos) -> u128 {
        let (a, b) = self.drain[node as usize];
        let done = (a * now.0 as f64 - b).max(0.0) as u128;
        self.outstanding[node as usize].saturating_sub(done)
    }

    /// Takes `id`'s revocable grant out of its node's drain.
    fn undrain(&mut self, id: RequestId) {
        if let Some(Some((a, b))) = self.drains.get_mut(id.index()).map(Option::take) {
            let d = &mut self.drain[self.node_of[id.index()] as usize];
            d.0 -= a;
            d.1 -= b;
        }
    }

    /// Keeps [`tight`](Stepwise::tight) up to date with an arrival: its need on an idle node
    /// and how long it could wait before starting there, with the steps expected to run.
    fn note_slack(&mut self, s: &RequestState, expected_steps: u32) {
        let fixed = self.fixed_costs(s);
        let steps = u64::from(expected_steps);
        let window = s.deadline().saturating_sub(s.request.arrival);
        let fit = self.planned[s.class.index()].iter().find_map(|&(k, t)| {
            let busy = t.checked_times(steps)?.checked_add(fixed)?;
            (busy <= window).then(|| (window - busy, k))
        });
        let slot = &mut self.tight[s.class.index()];
        if let Some(f) = fit
            && slot.is_none_or(|t| f.0 < t.0)
        {
            *slot = Some(f);
        }
    }

    /// The GPUs late work holding GPUs for `hold` must leave idle: the largest need among the
    /// classes whose requests could not wait that long. None when that is the whole node (it
    /// would stop late work for good, and the run with it).
    fn reserve(&self, hold: Nanos) -> u32 {
        let need = self
            .tight
            .iter()
            .flatten()
            .filter(|(slack, _)| hold > *slack)
            .map(|&(_, need)| need)
            .max()
            .unwrap_or(0);
        if need >= self.cluster.gpus_per_node {
            0
        } else {
            need
        }
    }

    /// Whether `id` cannot be met whatever happens: late, and even running only the fewest
    /// of its steps that may run (every skippable one skipped) at the fastest degree, from
    /// now, ends after its deadline.
    fn hopeless(&self, view: &View<'_>, id: RequestId) -> bool {
        if !self.late[id.index()] {
            return false;
        }
        let s = view.request(id);
        self.fastest[s.class.index()]
            .checked_times(u64::from(view.fewest_remaining_steps(id)))
            .and_then(|t| t.checked_add(self.fixed_costs(s)))
            .and_then(|t| t.checked_add(view.now))
            .is_none_or(|end| end > s.deadline())
    }

    /// Gives `id` up (once per decision): it cannot be met, and any GPU it held would only
    /// delay requests that can.
    fn give_up(&mut self, id: RequestId) {
        debug_assert!(self.config.give_up_hopeless);
        if !self.drops.contains(&id) {
            self.drops.push(id);
        }
    }

    /// One queue over the cluster: a waiting admitted request that its node cannot start now
    /// (its need is not idle there, or earlier deadlines claim it) moves to the node whose idle
    /// GPUs its need fits most tightly, among the nodes serving no request with a deadline
    /// (earliest deadline first). It then starts there at this instant, paying the latent's
    /// hand-off to the new node (`overheads.node_handoff`). SP groups never span nodes.
    fn route(&mut self, view: &View<'_>) {
        let gpus = self.cluster.gpus_per_node;
        // Only a node with no request with a deadline of its own lends its idle GPUs: moving
        // work onto a node that serves deadlines crowds its admission. Without a lender there
        // is nothing to do, and nothing is priced (the common case under load).
        if !self
            .not_serving
            .iter()
            .any(|&m| view.free.node_mask(m) != 0)
        {
            return;
        }
        // Requests can be stuck only on nodes where something changed or whose last plan left
        // one without a grant (a lender serves no request with a deadline: none is stuck).
        let mut from: Vec<u32> = self.touched_list.clone();
        from.extend(self.stuck.iter().copied());
        from.sort_unstable();
        from.dedup();
        let mut stuck: Vec<(Nanos, RequestId, u32, u32)> = Vec::new();
        let mut entries = std::mem::take(&mut self.entries);
        let mut order = std::mem::take(&mut self.order);
        let mut priced_nodes: Vec<u32> = Vec::new();
        for n in from {
            if self.serving[n as usize] == 0 {
                continue;
            }
            priced_nodes.push(n);
            let mut idle = view.free.node_mask(n).count_ones();
            entries.clear();
            self.price_live(view, n, &mut entries);
            admit(&mut entries, view.now, gpus);
            order.clear();
            order.extend((0..entries.len()).filter(|&i| !entries[i].shed));
            order.sort_unstable_by_key(|&i| (entries[i].deadline, entries[i].id));
            let mut claimable = gpus;
            for &i in &order {
                let e = entries[i];
                if e.revocable {
                    // Running: it keeps its node, and its GPUs, unless re-planned there.
                } else if e.waiting && e.need <= claimable.min(idle) {
                    idle -= e.need;
                } else if e.waiting {
                    stuck.push((e.deadline, e.id, e.need, n));
                }
                claimable -= e.need.min(claimable);
            }
        }
        self.entries = entries;
        self.order = order;
        if stuck.is_empty() {
            return;
        }
        stuck.sort_unstable();
        // The lenders and their idle GPUs, in node order, as they were before this call
        // priced anything: a node priced above served a deadline then, even if its last one
        // ended since (it lends from the next decision on).
        let mut spare: Vec<(u32, u32)> = self
            .not_serving
            .iter()
            .filter(|m| priced_nodes.binary_search(m).is_err())
            .map(|&m| (m, view.free.node_mask(m).count_ones()))
            .filter(|&(_, idle)| idle > 0)
            .collect();
        for (_, id, need, from) in stuck {
            let Some(j) = (0..spare.len())
                .filter(|&j| spare[j].0 != from && spare[j].1 >= need)
                .min_by_key(|&j| (spare[j].1, spare[j].0))
            else {
                continue;
            };
            spare[j].1 -= need;
            let to = spare[j].0 as usize;
            let live = &mut self.live[from as usize];
            if let Some(i) = live.iter().position(|&r| r == id) {
                live.remove(i);
            }
            self.live[to].push(id);
            let share = self.counted[id.index()];
            self.set_counted(id, None);
            self.node_of[id.index()] = to as u32;
            self.set_counted(id, share);
            self.touch(from);
            self.touch(to as u32);
        }
    }

    /// Phase 1 of [`plan_node`](Stepwise::plan_node): drops the node's ended requests, moves
    /// the hopeless ones (late even at the fastest degree) to the late heap, and prices the
    /// rest into `entries` (their need, hold and least GPU time).
    fn price_live(&mut self, view: &View<'_>, node: u32, entries: &mut Vec<Live>) {
        let now = view.now;
        let mut live = std::mem::take(&mut self.live[node as usize]);
        live.retain(|&id| {
            let s = view.request(id);
            let waiting = match s.phase {
                Phase::Waiting => true,
                Phase::Running => false,
                _ => {
                    self.set_counted(id, None);
                    return false;
                }
            };
            // A revocable grant is priced at its next step boundary with the steps left then,
            // unless that boundary is its end.
            let boundary = match self.run[id.index()] {
                Some(r) if self.revocable && !waiting => {
                    Some(r.next_boundary(now)).filter(|&(_, j)| j < r.steps)
                }
                _ => None,
            };
            let revocable = boundary.is_some();
            let ready = if waiting {
                now
            } else if let Some((at, _)) = boundary {
                at
            } else {
                self.busy_until[id.index()].max(now)
            };
            if !waiting
                && !revocable
                && let Some((at, e)) = self.priced[id.index()]
                && at == ready
            {
                entries.push(e);
                return true;
            }
            let fixed = self.fixed_costs(s);
            // Steps left after the one running now, as many as are expected to run when the
            // executor skips steps at run time (planning only: grants are whole steps).
            let running = match boundary {
                Some((_, j)) => j,
                None if waiting => 0,
                None => self.granted[id.index()],
            };
            let steps = view.expected_remaining_steps(id).saturating_sub(running);
            let class = s.class;
            let times = &self.planned[class.index()];
            let finish = |t: Nanos| {
                t.checked_times(u64::from(steps))
                    .and_then(|x| x.checked_add(fixed))
                    .and_then(|x| x.checked_add(ready))
            };
            // The grant (steps per work) with which running every remaining step at a step
            // time of `t` meets the deadline, one dispatch paid per grant, if any: as short as
            // the slack allows the dispatches, and no shorter than `grant_steps` amortises them.
            // A grant computes only the steps expected to run (a skipped step costs nothing but
            // its share of the dispatch), so the amortising length is that of a step of
            // `t x steps / nominal`: with skipping, grants are longer.
            let nominal = s.remaining_steps().saturating_sub(running);
            let dispatch = self.overheads.dispatch;
            let fits = |t: Nanos| -> Option<u32> {
                let end = finish(t).filter(|end| *end <= s.deadline())?;
                if nominal == 0 || dispatch == Nanos::ZERO {
                    return Some(1);
                }
                let works = (s.deadline().0 - end.0) / dispatch.0;
                let works = works.min(u64::from(nominal)) as u32;
                let computed =
                    u128::from(t.0) * u128::from(steps.min(nominal)) / u128::from(nominal);
                let computed = Nanos(computed as u64);
                (works > 0).then(|| {
                    nominal
                        .div_ceil(works)
                        .max(grant_steps(dispatch, computed))
                        .min(nominal)
                })
            };
            let table = &self.tables[class.index()];
            let Some((need, grant)) = table
                .times
                .iter()
                .find_map(|&(k, t)| fits(t).map(|g| (k, g)))
            else {
                self.late[id.index()] = true;
                self.set_counted(id, None);
                if revocable {
                    // Late work is granted step by step: it stops at the next boundary.
                    self.cuts.push(id);
                } else if waiting && self.config.give_up_hopeless && self.hopeless(view, id) {
                    self.give_up(id);
                } else if waiting {
                    // Keyed by the nominal count, which the heap checks entries against.
                    self.late_heap[node as usize].push(Reverse((s.remaining_steps(), id)));
                }
                return false;
            };
            self.plan_grant[id.index()] = grant;
            self.plan_need[id.index()] = need;
            let budget = s.deadline() - ready - fixed;
            let plan: Plan = min_gpu_plan(times, steps, budget);
            let e = Live {
                id,
                class,
                deadline: s.deadline(),
                waiting: waiting || revocable,
                need,
                holds: if waiting || revocable {
                    0
                } else {
                    s.gpus.map_or(0, |g| g.len())
                },
                revocable,
                work: plan.gpu_time(times),
                shed: false,
            };
            self.priced[id.index()] = (!waiting && !revocable).then_some((ready, e));
            entries.push(e);
            true
        });
        self.live[node as usize] = live;
    }

    /// Phase 4 of [`plan_node`](Stepwise::plan_node): late requests get one leftover GPU each,
    /// fewest remaining steps first, read from the node's late heap only as far as they are
    /// served.
    fn serve_late(
        &mut self,
        view: &View<'_>,
        node: u32,
        entries: &[Live],
        block: Option<(Nanos, u32)>,
    ) {
        let now = view.now;
        let mut heap = std::mem::take(&mut self.late_heap[node as usize]);
        let mut skipped = Vec::new();
        //    Only while no admitted request lives on the node: a late step holds its GPU for
        //    a whole step, and an admitted request that needs more GPUs at its next boundary
        //    (or an arrival) must not wait for work that cannot count.
        let serve_late = entries.iter().all(|e| e.shed);
        while serve_late && self.placer.idle() > 0 {
            let Some(Reverse((steps, id))) = heap.pop() else {
                break;
            };
            let s = view.request(id);
            if s.phase != Phase::Waiting || s.remaining_steps() != steps {
                continue; // stale entry: it ended, or was pushed again with fewer steps
            }
            let hopeless = self.hopeless(view, id);
            if hopeless && self.config.give_up_hopeless {
                self.give_up(id);
                continue;
            }
            let idle = self.placer.idle();
            let hold = self.step(id, s.class, 1, s.remaining_steps());
            // Served, hopeless work leaves idle what an arrival that cannot wait would need.
            let reserve = if hopeless { self.reserve(hold) } else { 0 };
            if usable(block, idle, now + hold) == 0 || idle - 1 < reserve {
                skipped.push(Reverse((steps, id)));
                break;
            }
            self.placer.want(Batch::one(id), 1, s.gpus, true);
            self.placer.place(&self.cluster, true);
        }
        heap.extend(skipped);
        self.late_heap[node as usize] = heap;
    }

    /// Phase 6 of [`plan_node`](Stepwise::plan_node): one-step works for every placed grant.
    fn dispatch_placed(&mut self, view: &View<'_>, node: u32, out: &mut Vec<Decision>) {
        let now = view.now;
        let idle = view.free.node_mask(node);
        for p in self.placer.placed() {
            let id = p.batch.ids()[0];
            let s = view.request(id);
            if self.virtual_ids.contains(&id) {
                // A revocable grant: kept where the plan leaves it on its GPUs, else cut.
                if s.gpus == Some(p.gpus) {
                    self.kept.push(id);
                }
                continue;
            }
            if p.gpus.mask() & !idle != 0 {
                continue; // On GPUs a cut frees at their holder's boundary: re-planned then.
            }
            let step = self.step_on(s.class, p.gpus);
            // Below its need a request is behind its plan: granted a step at a time, it is
            // re-planned at its next boundary, as the GPUs it lacks may be idle by then. Late
            // work runs to its end unless an admitted request comes to its node (see
            // `plan_node`), paying one dispatch, not one per step.
            let g = if self.revocable
                && (self.late[id.index()] || p.gpus.len() >= self.plan_need[id.index()])
            {
                s.remaining_steps()
            } else {
                self.grant(id, s.class, p.gpus.len(), s.remaining_steps())
            };
            let lead = self.work_cost(s, p.gpus, step, 0);
            let end = now + self.work_cost(s, p.gpus, step, g) + times(step, g);
            self.busy_until[id.index()] = end;
            self.granted[id.index()] = g;
            self.run[id.index()] = (self.revocable && g > 1).then_some(Run {
                start: now,
                lead,
                step,
                steps: g,
            });
            if self.run[id.index()].is_some() {
                self.kept.push(id);
                if self.counted[id.index()].is_some() {
                    let per_step = self.tables[s.class.index()].cheapest() as f64;
                    let a = per_step / step.0.max(1) as f64;
                    let b = a * (now + lead).0 as f64;
                    let d = &mut self.drain[node as usize];
                    d.0 += a;
                    d.1 += b;
                    self.drains[id.index()] = Some((a, b));
                }
            }
            if self.overheads.group_setup > Nanos::ZERO {
                self.used_groups.insert(p.gpus);
            }
            if self.late[id.index()] {
                self.late_running[node as usize].push(id);
            }
            out.push(Decision::Dispatch(Dispatch {
                batch: p.batch,
                steps: g,
                gpus: p.gpus,
            }));
        }
        for i in 0..self.virtual_ids.len() {
            let id = self.virtual_ids[i];
            if !self.kept.contains(&id) {
                self.cuts.push(id);
            }
        }
    }

    /// Re-plans one node: classifies its live requests, admits, grants one-step works.
    fn plan_node(&mut self, view: &View<'_>, node: u32, out: &mut Vec<Decision>) {
        let now = view.now;
        let gpus = self.cluster.gpus_per_node;
        // 1. Live requests: drop the ended, move the hopeless to the late heap, price the rest.
        let mut entries = std::mem::take(&mut self.entries);
        entries.clear();
        self.price_live(view, node, &mut entries);
        // 2. Admission: the fluid overload test sheds the largest works first.
        admit(&mut entries, now, gpus);
        // 3. Admitted requests claim their need in deadline order; the waiting ones get a grant
        //    if it is idle now, or block (reserving the idle GPUs) until it will be.
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        order.extend(0..entries.len());
        order.sort_unstable_by_key(|&i| (entries[i].shed, entries[i].deadline, entries[i].id));
        // Revocable grants are planned as if at their next step boundary: their GPUs are
        // the plan's to give.
        self.virtual_ids.clear();
        self.kept.clear();
        let mut free = view.free.node_mask(node);
        for e in entries.iter().filter(|e| e.revocable) {
            self.virtual_ids.push(e.id);
            free |= view.request(e.id).gpus.map_or(0, |g| g.mask());
        }
        self.placer.start(node, free);
        // Late work runs only while no admitted request lives on the node: its revocable
        // grants end at their next boundary once one does.
        if self.revocable && entries.iter().any(|e| !e.shed) {
            for &id in &self.late_running[node as usize] {
                if let Some(r) = self.run[id.index()]
                    && r.next_boundary(now).1 < r.steps
                {
                    self.cuts.push(id);
                }
            }
        }
        let mut claimable = gpus;
        // A blocked request: when it could start, and how many idle GPUs wait for it.
        let mut block: Option<(Nanos, u32)> = None;
        // Whether an admitted waiting request is left without a grant (for `route`).
        let mut stuck = false;
        for &i in &order {
            let e = entries[i];
            let claim = if e.shed {
                // A shed request gets its need only from what the admitted ones leave.
                let c = if e.need <= claimable { e.need } else { 0 };
                claimable -= c;
                c
            } else {
                let c = if e.need <= claimable {
                    e.need
                } else {
                    pow2_floor(claimable)
                };
                claimable -= c;
                c
            };
            if !e.waiting {
                continue;
            }
            if claim == 0 {
                stuck |= !e.shed;
                continue;
            }
            let idle = self.placer.idle();
            let end = now + self.step(e.id, e.class, claim, view.request(e.id).remaining_steps());
            let d = pow2_floor(usable(block, idle, end).min(claim));
            let prev = view.request(e.id).gpus;
            if d >= 1 && (e.shed || d >= claim) {
                let before = self.placer.placed().len();
                self.placer.want(Batch::one(e.id), d, prev, e.shed);
                self.placer.place(&self.cluster, true);
                if self.placer.placed().len() > before {
                    continue;
                }
            }
            stuck |= !e.shed;
            if block.is_none() && !e.shed {
                block = Some((
                    self.ready_time(view, node, &entries, claim),
                    idle.min(claim),
                ));
            }
        }
        if stuck {
            self.stuck.insert(node);
        } else {
            self.stuck.remove(&node);
        }
        // 4. Late requests: one leftover GPU each, fewest remaining steps first.
        self.serve_late(view, node, &entries, block);
        // 5. Work conservation: double this instant's grants where a step gets faster.
        self.scale_up(view, block, now);
        // 6. One-step works.
        self.dispatch_placed(view, node, out);
        // 7. With an admitted request waiting, the grants kept are re-planned at their next
        //    step boundary, as one-step grants would be.
        if self.revocable && (stuck || block.is_some()) {
            let next = self
                .kept
                .iter()
                .filter_map(|id| self.run[id.index()])
                .map(|r| r.next_boundary(now + Nanos(1)).0)
                .filter(|&t| t > now)
                .min();
            if let Some(t) = next {
                self.wakes.push(Reverse((t, node)));
                out.push(Decision::WakeAt(t));
            }
        }
        self.entries = entries;
        self.order = order;
    }

    /// When `need` GPUs of `node` will be idle: now if they are, else the end of the running
    /// step that frees the last of them (expected ends, earliest first).
    fn ready_time(&self, view: &View<'_>, node: u32, entries: &[Live], need: u32) -> Nanos {
        let mut have = self.placer.idle();
        if have >= need {
            return view.now;
        }
        let mut ends: Vec<(Nanos, u32)> = entries
            .iter()
            .filter(|e| !e.waiting && e.holds > 0)
            .map(|e| (self.busy_until[e.id.index()], e.holds))
            .collect();
        // Late requests run too; their GPUs come back as well.
        ends.extend(self.late_running[node as usize].iter().map(|&id| {
            let k = view.request(id).gpus.map_or(0, |g| g.len());
            (self.busy_until[id.index()], k)
        }));
        ends.sort_unstable();
        for (end, k) in ends {
            have += k;
            if have >= need {
                return end.max(view.now);
            }
        }
        Nanos::MAX
    }

    /// Doubles the degree of this instant's grants while idle GPUs remain, the largest saving
    /// of remaining time first (requests with a deadline before late ones), within what a
    /// blocked request leaves usable.
    fn scale_up(&mut self, view: &View<'_>, block: Option<(Nanos, u32)>, now: Nanos) {
        loop {
            let idle = self.placer.idle();
            let mut best: Option<(bool, u128, Nanos, usize)> = None;
            for (i, p) in self.placer.placed().iter().enumerate() {
                let k = p.gpus.len();
                if 2 * k > self.cluster.gpus_per_node {
                    continue;
                }
                let s = view.request(p.batch.ids()[0]);
                let Some(grown) = self.placer.grown(i, &self.cluster) else {
                    continue;
                };
                let (t_now, t_big) = (self.step_on(s.class, p.gpus), self.step_on(s.class, grown));
                if t_big >= t_now {
                    continue;
                }
                if usable(block, idle, now + t_big + self.overheads.dispatch) < k {
                    continue;
                }
                // Served hopeless work (not shed work, which may still make it) keeps the
                // reserve.
                if self.hopeless(view, s.request.id)
                    && idle - k < self.reserve(t_big + self.overheads.dispatch)
                {
                    continue;
                }
                let benefit = u128::from(s.remaining_steps()) * u128::from((t_now - t_big).0);
                let key = (!p.late, benefit, Nanos(u64::MAX - s.deadline().0), i);
                if best.is_none_or(|b| (key.0, key.1, key.2) > (b.0, b.1, b.2)) {
                    best = Some(key);
                }
            }
            let Some((_, _, _, i)) = best else { return };
            self.placer.grow(i, &self.cluster);
        }
    }
}

/// What `[policy.stepwise]` sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepwiseConfig {
    /// Give up a request that cannot be met whatever happens ([`Stepwise::hopeless`]) instead
    /// of serving it best-effort: a step of work that cannot count holds GPUs that requests
    /// arriving meanwhile may need. On by default; off, such work runs on what requests with
    /// deadlines leave, keeping idle what an arrival that cannot wait would need.
    pub give_up_hopeless: bool,
    /// Grant a request with a deadline all its remaining steps at once, and cut the grant at
    /// its next step boundary when a re-plan of its node takes its GPUs or changes its degree
    /// ([`Decision::Cut`]), instead of granting one step at a time. Plans are made at events
    /// (arrivals, works ending) rather than at every step boundary, so a run makes a fraction
    /// of the works and decisions. Only where [`View::can_cut`] (the simulator).
    pub revocable_grants: bool,
}

impl Default for StepwiseConfig {
    fn default() -> StepwiseConfig {
        StepwiseConfig {
            give_up_hopeless: true,
            revocable_grants: true,
        }
    }
}

/// `g` steps of `step`, as a plan's estimate: past the simulator's horizon it is "never"
/// (`Nanos::MAX`); the engine checks the times works really take.
fn times(step: Nanos, g: u32) -> Nanos {
    step.checked_times(u64::from(g)).unwrap_or(Nanos::MAX)
}

/// The most a per-work dispatch may be of a grant's computed time (`grant_steps`).
const DISPATCH_SHARE: f64 = 0.05;

/// The steps of one grant at a step of `step`: one when dispatching is free, else enough that
/// the dispatch is at most a twentieth of the grant (at most 32 steps), so that a per-work
/// cost is not paid at every step while a grant stays short enough to re-plan often. (A
/// tenth cost up to 10% of every request's time in dispatches: under load that is capacity,
/// and near a deadline the margin that run-time skipping's variance needs.)
fn grant_steps(dispatch: Nanos, step: Nanos) -> u32 {
    if dispatch == Nanos::ZERO || step == Nanos::ZERO {
        return 1;
    }
    let g = (dispatch.0 as f64 / (DISPATCH_SHARE * step.0 as f64)).ceil();
    (g as u32).clamp(1, 32)
}

/// Marks the entries the fluid overload test sheds (the largest works first) on a node of
/// `gpus` GPUs.
fn admit(entries: &mut [Live], now: Nanos, gpus: u32) {
    let jobs: Vec<ShedJob> = entries
        .iter()
        .map(|e| ShedJob {
            deadline: e.deadline,
            work: e.work,
            key: Some(e.work),
        })
        .collect();
    for i in shedding::shed(&jobs, now, gpus, 1.0) {
        entries[i].shed = true;
    }
}

/// Idle GPUs a grant whose step ends at `end` may use: all of them, unless a blocked request
/// (`block`: when it could start, and the idle GPUs reserved for it) would wait for that step.
fn usable(block: Option<(Nanos, u32)>, idle: u32, end: Nanos) -> u32 {
    match block {
        Some((start, reserved)) if end > start => idle.saturating_sub(reserved),
        _ => idle,
    }
}

/// The largest power of two not above `n` (0 for 0).
fn pow2_floor(n: u32) -> u32 {
    if n == 0 {
        0
    } else {
        1 << (31 - n.leading_zeros())
    }
}

impl Policy for Stepwise {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        self.revocable = self.config.revocable_grants && view.can_cut;
        self.take_in(view);
        if self.cluster.nodes > 1 {
            self.route(view);
        }
        // In node order, as a scan of every node would visit them.
        let mut nodes = std::mem::take(&mut self.touched_list);
        nodes.sort_unstable();
        for &node in &nodes {
            // A node with no idle GPU may still re-plan its revocable grants.
            if view.free.node_mask(node) != 0 || self.revocable {
                self.plan_node(view, node, out);
            }
        }
        self.touched_list = nodes;
        out.extend(self.drops.drain(..).map(Decision::Drop));
        for id in self.cuts.drain(..) {
            // Its grant now ends at that boundary: plans until then see it running to there.
            if let Some(r) = &mut self.run[id.index()] {
                let (_, j) = r.next_boundary(view.now);
                r.steps = j;
                self.granted[id.index()] = j;
                self.busy_until[id.index()] = r.start + r.lead + times(r.step, j);
            }
            out.push(Decision::Cut(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_of_two_round_down() {
        assert_eq!(
            [0, 1, 2, 3, 4, 7, 8, 9].map(pow2_floor),
            [0, 1, 2, 2, 4, 4, 8, 8]
        );
    }
}
