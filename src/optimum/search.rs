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
//! steps at its fastest degree must fit before its deadline; for every window from now (or,
//! in sets of at most 12 jobs, from a later release) to a deadline, the steps each job cannot
//! do outside the window even at its fastest need their least GPU time inside it (the
//! fractional plan of `model`, which counts a batched step at its per-image share), and that
//! must fit in the GPUs the steps in flight leave free there; and a state no better than one
//! already searched without success (same steps left and steps in flight, at a later or equal
//! time, none ending earlier) is not searched again.
//!
//! A first short pass tries the fastest degrees first, which finds tight schedules sooner;
//! the second, complete one tries the cheapest degree that still fits first.
//!
//! Steps of one batch end together; a batch holds requests of one resolution with the same
//! number of steps at the same step, the engine's rule.

use std::collections::HashMap;

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
    /// States searched without success, by their shape (steps left, steps in flight): the
    /// time and the ends of the steps in flight of each.
    failed: HashMap<Vec<u64>, Vec<(u64, Vec<u64>)>>,
    failed_len: usize,
    /// Try the fastest degrees first (the first pass) instead of the cheapest that fits.
    fast_first: bool,
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
        failed: HashMap::new(),
        failed_len: 0,
        fast_first: false,
        trail: Vec::new(),
        max_batch: inst.batches.iter().copied().max().unwrap_or(1),
    };
    // A first, short pass tries the fastest degrees first (it finds tight schedules sooner);
    // the second, with the rest of the nodes, is the complete one of the module header.
    search.fast_first = true;
    search.nodes_left = limit / 4;
    let mut verdict = match search.explore(&state) {
        Some(true) => Verdict::Feasible(search.trail.clone()),
        Some(false) => Verdict::Infeasible,
        None => Verdict::Unknown,
    };
    if verdict == Verdict::Unknown {
        search.fast_first = false;
        search.nodes_left = limit - search.visited;
        search.trail.clear();
        verdict = match search.explore(&state) {
            Some(true) => Verdict::Feasible(search.trail.clone()),
            Some(false) => Verdict::Infeasible,
            None => Verdict::Unknown,
        };
    }
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
        let (shape, times) = self.key(s);
        if self.failed.get(&shape).is_some_and(|seen| {
            seen.iter()
                .any(|(t, ends)| *t <= s.t && ends.iter().zip(&times).all(|(a, b)| a <= b))
        }) {
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
            if self.failed_len > 1 << 20 {
                self.failed.clear();
                self.failed_len = 0;
            }
            let seen = self.failed.entry(shape).or_default();
            if seen.len() < 32 {
                seen.push((s.t, times));
                self.failed_len += 1;
            }
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
        if self.fast_first {
            degrees.sort_by_key(|&(k, step)| (step, k));
        } else {
            degrees
                .sort_by_key(|&(k, step)| (!fits(step), if fits(step) { k } else { u32::MAX - k }));
        }
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
            let Some(cfg) = self.inst.config(class, g.degree, g.members.len() as u32) else {
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
        // Windows from now, and (for small sets, the test being cubic) from each later release.
        let mut starts = vec![s.t];
        if self.set.len() <= 12 {
            starts.extend(
                (0..self.set.len())
                    .filter(|&p| s.left[p] > 0 && self.job(p).release > s.t)
                    .map(|p| self.job(p).release),
            );
            starts.sort_unstable();
            starts.dedup();
        }
        let gpus = self.inst.total_gpus() as f64;
        for &from in &starts {
            for &e in dues.iter().filter(|&&e| e > from) {
                if !self.window_fits(s, from, e, gpus) {
                    return false;
                }
            }
        }
        true
    }

    /// The energetic test on `[from, e]`: the steps each job cannot do outside it (at its
    /// fastest there) need their least GPU time inside, in all at most the GPUs left free.
    fn window_fits(&self, s: &State, from: u64, e: u64, gpus: f64) -> bool {
        let busy: f64 = s
            .runs
            .iter()
            .map(|r| f64::from(r.degree) * r.end.min(e).saturating_sub(from) as f64)
            .sum();
        let capacity = gpus * (e - from) as f64 - busy;
        let mut need = 0.0;
        for p in 0..self.set.len() {
            if s.left[p] == 0 {
                continue;
            }
            let job = self.job(p);
            let ready = self.ready(s, p);
            let outside = from.saturating_sub(ready) + job.due.saturating_sub(e.max(ready));
            let inside = f64::from(s.left[p]) - outside as f64 / job.fastest as f64;
            if inside <= 1e-9 {
                continue;
            }
            let wall = job.due.min(e).saturating_sub(ready.max(from));
            match least_gpu_time(&self.inst.configs[job.class], inside, wall as f64) {
                Some(c) => need += c,
                None => return false,
            }
        }
        // Float slack: only a clear overload prunes.
        need <= capacity * (1.0 + 1e-9) + 1.0
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

    /// A state's shape (steps left; each step in flight: node, degree, jobs) and its times
    /// (now, and each step in flight's end, in the shape's order). A state whose shape failed
    /// at an earlier time with steps ending no later fails too: every schedule from it can be
    /// run from the earlier one, waiting where needed, since nothing is available later there.
    fn key(&self, s: &State) -> (Vec<u64>, Vec<u64>) {
        let mut shape = Vec::with_capacity(s.left.len() + 3 * s.runs.len());
        shape.extend(s.left.iter().map(|&l| u64::from(l)));
        let mut runs: Vec<&Run> = s.runs.iter().collect();
        runs.sort_by(|a, b| a.jobs.cmp(&b.jobs));
        let mut times = Vec::with_capacity(runs.len());
        for r in runs {
            shape.push((u64::from(r.node) << 32) | u64::from(r.degree));
            shape.push(r.jobs.len() as u64);
            shape.extend(r.jobs.iter().map(|&p| p as u64));
            times.push(r.end);
        }
        (shape, times)
    }
}
