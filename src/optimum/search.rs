//! Whether a set of jobs can all meet their deadlines: a depth-first search over step-level
//! schedules, complete for the model, with a limit on the nodes it visits.
//!
//! **Why decisions at events suffice.** Take any feasible schedule and move its steps as early
//! as they can go, earliest first: a step stops moving at its job's release, at the end of its
//! job's previous step (the same for every member of a batch) or where the GPUs of its node
//! run out, which can only change at the end of some other step. Ends only move earlier, so
//! deadlines still hold. Hence if any schedule exists, one exists whose steps all start at a
//! release or at the end of a step, and the search decides only there: at each such instant,
//! for every idle released job, to start a step (alone or in a batch of jobs of the same
//! resolution at the same step, at any degree, on any node with the GPUs free) or to wait
//! for the next instant. Every schedule of that form is visited unless a prune proves that
//! none below can meet every deadline.
//!
//! **Prunes (each a necessary condition, so the search stays complete).** A job's remaining
//! steps at its fastest degree must fit before its deadline; for every deadline `e`, the
//! least GPU time the jobs due by `e` still need (the fractional plan of `model`, which
//! counts a batched step at its per-image share) must fit in the GPUs left free up to `e`;
//! and a state (time, each job's steps left and when its step in flight ends, the steps in
//! flight) already searched without success is not searched again.
//!
//! Steps of one batch end together; a batch holds requests of one resolution with the same
//! number of steps at the same step, the engine's rule.

use std::collections::HashSet;

use super::model::{Instance, least_gpu_time};

/// A step of the schedule found: one interval on `degree` GPUs of `node`, for the jobs of a
/// batch (indices into [`Instance::jobs`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub start: u64,
    pub end: u64,
    pub node: u32,
    pub degree: u32,
    pub jobs: Vec<usize>,
}

/// What the search concluded about a set of jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every job meets its deadline in this schedule.
    Feasible(Vec<Step>),
    /// No schedule meets every deadline (the search was exhaustive).
    Infeasible,
    /// The node limit was reached first.
    Unknown,
}

/// A step in flight.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Run {
    end: u64,
    node: u32,
    degree: u32,
    jobs: Vec<usize>,
}

#[derive(Clone, Debug)]
struct State {
    t: u64,
    /// Per job of the set (by position): steps not yet started.
    left: Vec<u32>,
    /// Per job: whether a step of it is in flight.
    busy: Vec<bool>,
    runs: Vec<Run>,
    free: Vec<u32>,
}

/// A batch being formed at one instant.
#[derive(Clone, Debug)]
struct Group {
    node: u32,
    degree: u32,
    members: Vec<usize>,
}

struct Search<'a> {
    inst: &'a Instance,
    /// The jobs of the set, as indices into `inst.jobs`.
    set: &'a [usize],
    nodes_left: u64,
    visited: u64,
    failed: HashSet<Vec<u64>>,
    trail: Vec<Step>,
    max_batch: u32,
}

/// Searches for a schedule meeting every deadline of `set` (indices into `inst.jobs`),
/// visiting at most `limit` nodes; returns the verdict and the nodes visited.
pub fn feasible(inst: &Instance, set: &[usize], limit: u64) -> (Verdict, u64) {
    if set.is_empty() {
        return (Verdict::Feasible(Vec::new()), 0);
    }
    let state = State {
        t: set.iter().map(|&j| inst.jobs[j].release).min().unwrap_or(0),
        left: set.iter().map(|&j| inst.jobs[j].steps).collect(),
        busy: vec![false; set.len()],
        runs: Vec::new(),
        free: vec![inst.gpus_per_node; inst.nodes as usize],
    };
    let mut search = Search {
        inst,
        set,
        nodes_left: limit,
        visited: 0,
        failed: HashSet::new(),
        trail: Vec::new(),
        max_batch: inst.batches.iter().copied().max().unwrap_or(1),
    };
    let verdict = match search.explore(&state) {
        Some(true) => Verdict::Feasible(search.trail.clone()),
        Some(false) => Verdict::Infeasible,
        None => Verdict::Unknown,
    };
    (verdict, search.visited)
}

impl Search<'_> {
    /// `Some(true)`: a schedule from `s` meets every deadline (left in `trail`);
    /// `Some(false)`: none does; `None`: out of nodes.
    fn explore(&mut self, s: &State) -> Option<bool> {
        if s.left.iter().all(|&l| l == 0) {
            // Every step has started, and each was started only if it ends in time.
            return Some(true);
        }
        if self.nodes_left == 0 {
            return None;
        }
        self.nodes_left -= 1;
        self.visited += 1;
        if !self.may_fit(s) {
            return Some(false);
        }
        let key = self.key(s);
        if self.failed.contains(&key) {
            return Some(false);
        }
        // Idle released jobs, earliest deadline first.
        let mut idle: Vec<usize> = (0..self.set.len())
            .filter(|&p| s.left[p] > 0 && !s.busy[p] && self.job(p).release <= s.t)
            .collect();
        idle.sort_by_key(|&p| (self.job(p).due, p));
        let mut groups = Vec::new();
        let mut free = s.free.clone();
        let found = self.choose(s, &idle, 0, &mut groups, &mut free)?;
        if !found {
            if self.failed.len() > 1 << 20 {
                self.failed.clear();
            }
            self.failed.insert(key);
        }
        Some(found)
    }

    fn job(&self, p: usize) -> &super::model::Job {
        &self.inst.jobs[self.set[p]]
    }

    /// Decides for `idle[i..]` in turn, then starts the groups formed and moves on.
    fn choose(
        &mut self,
        s: &State,
        idle: &[usize],
        i: usize,
        groups: &mut Vec<Group>,
        free: &mut Vec<u32>,
    ) -> Option<bool> {
        if i == idle.len() {
            return self.start(s, groups);
        }
        let p = idle[i];
        let job = *self.job(p);
        let class = job.class;
        // Degrees in the order tried: the cheapest that still meets the deadline alone, then
        // faster ones, then slower ones.
        let mut degrees: Vec<(u32, u64)> = self.inst.configs[class]
            .iter()
            .filter(|c| c.batch == 1)
            .map(|c| (c.degree, c.step))
            .collect();
        let left = u64::from(s.left[p]);
        let fits = |step: u64| s.t.saturating_add(step.saturating_mul(left)) <= job.due;
        degrees.sort_by_key(|&(k, step)| (!fits(step), if fits(step) { k } else { u32::MAX - k }));
        for (k, _) in degrees {
            for node in 0..self.inst.nodes as usize {
                if free[node] < k {
                    continue;
                }
                free[node] -= k;
                groups.push(Group {
                    node: node as u32,
                    degree: k,
                    members: vec![p],
                });
                let r = self.choose(s, idle, i + 1, groups, free);
                groups.pop();
                free[node] += k;
                if r != Some(false) {
                    return r;
                }
            }
        }
        // Join a batch formed at this instant: same resolution, same steps, same step.
        for g in 0..groups.len() {
            let head = groups[g].members[0];
            let h = self.job(head);
            if groups[g].members.len() as u32 >= self.max_batch
                || h.class != class
                || h.steps != job.steps
                || s.left[head] != s.left[p]
            {
                continue;
            }
            groups[g].members.push(p);
            let r = self.choose(s, idle, i + 1, groups, free);
            groups[g].members.pop();
            if r != Some(false) {
                return r;
            }
        }
        // Wait for the next instant.
        self.choose(s, idle, i + 1, groups, free)
    }

    /// Starts `groups` at `s.t` (if each is a configuration and its members can still finish
    /// in time), then advances to the next instant.
    fn start(&mut self, s: &State, groups: &[Group]) -> Option<bool> {
        let mut ends = Vec::with_capacity(groups.len());
        for g in groups {
            let class = self.job(g.members[0]).class;
            let Some(cfg) = self
                .inst
                .config(class, g.degree, g.members.len() as u32)
            else {
                return Some(false);
            };
            let end = s.t.saturating_add(cfg.step);
            for &p in &g.members {
                let job = self.job(p);
                let rest = u64::from(s.left[p] - 1).saturating_mul(job.fastest);
                if end.saturating_add(rest) > job.due {
                    return Some(false);
                }
            }
            ends.push(end);
        }
        let mut next = s.clone();
        for (g, &end) in groups.iter().zip(&ends) {
            for &p in &g.members {
                next.left[p] -= 1;
                next.busy[p] = true;
            }
            next.free[g.node as usize] -= g.degree;
            next.runs.push(Run {
                end,
                node: g.node,
                degree: g.degree,
                jobs: g.members.clone(),
            });
            self.trail.push(Step {
                start: s.t,
                end,
                node: g.node,
                degree: g.degree,
                jobs: g.members.iter().map(|&p| self.set[p]).collect(),
            });
        }
        let started = groups.len();
        let r = self.advance(next);
        if r != Some(true) {
            self.trail.truncate(self.trail.len() - started);
        }
        r
    }

    /// Moves `s` to the next instant something can change (a step ends or a job is released)
    /// and explores from there.
    fn advance(&mut self, mut s: State) -> Option<bool> {
        if s.left.iter().all(|&l| l == 0) {
            return Some(true);
        }
        let ends = s.runs.iter().map(|r| r.end);
        let releases = (0..self.set.len())
            .filter(|&p| s.left[p] > 0 && self.job(p).release > s.t)
            .map(|p| self.job(p).release);
        let Some(t) = ends.chain(releases).min() else {
            return Some(false);
        };
        s.t = t;
        let mut k = 0;
        while k < s.runs.len() {
            if s.runs[k].end == t {
                let run = s.runs.swap_remove(k);
                s.free[run.node as usize] += run.degree;
                for p in run.jobs {
                    s.busy[p] = false;
                }
            } else {
                k += 1;
            }
        }
        self.explore(&s)
    }

    /// The necessary conditions of the module header.
    fn may_fit(&self, s: &State) -> bool {
        let mut dues: Vec<u64> = Vec::new();
        for p in 0..self.set.len() {
            if s.left[p] == 0 {
                continue;
            }
            let job = self.job(p);
            let ready = self.ready(s, p);
            if ready.saturating_add(u64::from(s.left[p]).saturating_mul(job.fastest)) > job.due {
                return false;
            }
            dues.push(job.due);
        }
        dues.sort_unstable();
        dues.dedup();
        let gpus = self.inst.total_gpus() as f64;
        for &e in &dues {
            let busy: f64 = s
                .runs
                .iter()
                .map(|r| f64::from(r.degree) * (r.end.min(e).saturating_sub(s.t)) as f64)
                .sum();
            let capacity = gpus * (e - s.t) as f64 - busy;
            let mut need = 0.0;
            for p in 0..self.set.len() {
                let job = self.job(p);
                if s.left[p] == 0 || job.due > e {
                    continue;
                }
                let ready = self.ready(s, p);
                match least_gpu_time(
                    &self.inst.configs[job.class],
                    f64::from(s.left[p]),
                    job.due.saturating_sub(ready) as f64,
                ) {
                    Some(c) => need += c,
                    None => return false,
                }
            }
            // Float slack: only a clear overload prunes.
            if need > capacity * (1.0 + 1e-9) + 1.0 {
                return false;
            }
        }
        true
    }

    /// When job `p`'s next step can start at the earliest.
    fn ready(&self, s: &State, p: usize) -> u64 {
        let mut at = s.t.max(self.job(p).release);
        if s.busy[p] {
            let end = s.runs.iter().find(|r| r.jobs.contains(&p)).map(|r| r.end);
            at = at.max(end.unwrap_or(at));
        }
        at
    }

    fn key(&self, s: &State) -> Vec<u64> {
        let mut key = Vec::with_capacity(1 + s.left.len() + 3 * s.runs.len());
        key.push(s.t);
        key.extend(s.left.iter().map(|&l| u64::from(l)));
        let mut runs = s.runs.clone();
        runs.sort();
        for r in runs {
            key.push(r.end);
            key.push((u64::from(r.node) << 32) | u64::from(r.degree));
            key.push(r.jobs.len() as u64);
            key.extend(r.jobs.iter().map(|&p| p as u64));
        }
        key
    }
}
