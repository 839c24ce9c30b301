//! The most requests that can meet their deadlines: a search over the sets of requests met,
//! component by component, with the feasibility search of `search.rs` for each set.
//!
//! For one component (jobs that compete for GPUs), the solver first tries every job, then adds
//! jobs one at a time in deadline order while the set stays feasible (the incumbent), then
//! tries the sets one job smaller at a time, largest first: all sets of `m - 1` jobs, then of
//! `m - 2`, and so on, down to one more than the incumbent. A set is refuted by the energetic
//! test below or by an exhaustive search, and a set containing a refuted one is refuted
//! without search (a superset of an infeasible set is infeasible). If every set of some size
//! is refuted, no larger set is feasible either; the upper bound is the largest size with a
//! set not refuted. When the search runs out of nodes on some set, or a size has too many
//! sets to try ([`MAX_SETS`]), that size stays open: the answer is then the incumbent and the
//! upper bound, not proven.
//!
//! **Energetic test.** For a window `[s, e]` (`s` a release, `e` a deadline of the set), a
//! job released at `r` and due at `d` can advance at most `(max(0, s - r) + max(0, d - e)) /
//! fastest` steps outside the window (its fastest step alone), so the rest must run inside,
//! in at most `min(e, d) - max(s, r)` of wall time; their least GPU time (the fractional plan
//! of `model`) summed over the set must fit in `G (e - s)`, `G` the cluster's GPUs.

use super::model::{Instance, least_gpu_time};
use super::search::{Step, Verdict, feasible};

/// The most sets of one size the solver tries; a size with more stays open.
pub const MAX_SETS: u64 = 20_000;

/// The solver's answer for one instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Solution {
    /// Requests of the workload.
    pub requests: usize,
    /// Requests met in the best schedule found.
    pub lower: usize,
    /// No schedule of the model meets more (proven).
    pub upper: usize,
    /// The requests met (workload indices, ascending) and the schedule that meets them, each
    /// step naming its requests by workload index.
    pub met: Vec<usize>,
    pub schedule: Vec<Step>,
    /// Search nodes visited.
    pub nodes: u64,
    /// Components (groups of requests competing for GPUs) and the largest one's size.
    pub components: usize,
    pub largest_component: usize,
}

impl Solution {
    /// Whether the best schedule found is proven optimal.
    pub fn proven(&self) -> bool {
        self.lower == self.upper
    }
}

/// Solves `inst` visiting at most `effort` search nodes in all (deterministic: the same
/// instance and effort give the same answer).
pub fn solve(inst: &Instance, effort: u64) -> Solution {
    let components = inst.components();
    let mut budget = Budget {
        left: effort,
        per_call: (effort / 16).max(2_000),
        used: 0,
    };
    let mut sol = Solution {
        requests: inst.requests,
        lower: 0,
        upper: 0,
        met: Vec::new(),
        schedule: Vec::new(),
        nodes: 0,
        components: components.len(),
        largest_component: components.iter().map(Vec::len).max().unwrap_or(0),
    };
    for comp in &components {
        let c = solve_component(inst, comp, &mut budget);
        sol.lower += c.lower;
        sol.upper += c.upper;
        sol.met.extend(c.set.iter().map(|&j| inst.jobs[j].request));
        sol.schedule.extend(c.schedule.into_iter().map(|mut s| {
            for j in &mut s.jobs {
                *j = inst.jobs[*j].request;
            }
            s
        }));
    }
    sol.met.sort_unstable();
    sol.schedule
        .sort_by_key(|s| (s.start, s.node, s.jobs.clone()));
    sol.nodes = budget.used;
    sol
}

struct Budget {
    left: u64,
    per_call: u64,
    used: u64,
}

impl Budget {
    fn check(&mut self, inst: &Instance, set: &[usize], share: u64) -> Verdict {
        let limit = self.per_call.min(self.left) / share.max(1);
        let (v, used) = feasible(inst, set, limit);
        self.left -= used.min(self.left);
        self.used += used;
        v
    }
}

struct ComponentAnswer {
    lower: usize,
    upper: usize,
    set: Vec<usize>,
    schedule: Vec<Step>,
}

fn solve_component(inst: &Instance, comp: &[usize], budget: &mut Budget) -> ComponentAnswer {
    let m = comp.len();
    let energy = Energy::new(inst, comp);
    let mut best = ComponentAnswer {
        lower: 0,
        upper: m,
        set: Vec::new(),
        schedule: Vec::new(),
    };
    let all = mask_of(m, &(0..m).collect::<Vec<_>>());
    if energy.fits(all) {
        match budget.check(inst, comp, 1) {
            Verdict::Feasible(s) => {
                best.lower = m;
                best.set = comp.to_vec();
                best.schedule = s;
                return best;
            }
            Verdict::Infeasible => best.upper = m - 1,
            Verdict::Unknown => {}
        }
    } else {
        best.upper = m - 1;
    }
    // Incumbent: add jobs in deadline order while the set stays feasible.
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by_key(|&p| (inst.jobs[comp[p]].due, p));
    let mut chosen: Vec<usize> = Vec::new();
    for &p in &order {
        chosen.push(p);
        let set: Vec<usize> = chosen.iter().map(|&q| comp[q]).collect();
        let fits = energy.fits(mask_of(m, &chosen));
        match fits.then(|| budget.check(inst, &set, 4)) {
            Some(Verdict::Feasible(s)) => {
                best.lower = chosen.len();
                best.set = set;
                best.schedule = s;
            }
            _ => {
                chosen.pop();
            }
        }
    }
    // Sets one size smaller at a time, largest first.
    let mut refuted: Vec<u128> = Vec::new();
    let mut size = best.upper;
    while size > best.lower {
        let dropped = m - size;
        let mut open = false;
        let mut found = None;
        if m > 128 || binomial(m as u64, dropped as u64) > MAX_SETS {
            open = true;
        } else {
            for_each_subset(m, size, &mut |members: &[usize]| {
                let mask = mask_of(m, members);
                if refuted.iter().any(|&r| covers(mask, r)) {
                    return true;
                }
                if !energy.fits(mask) {
                    refuted.push(mask);
                    return true;
                }
                let set: Vec<usize> = members.iter().map(|&q| comp[q]).collect();
                match budget.check(inst, &set, 1) {
                    Verdict::Feasible(s) => {
                        found = Some((set, s));
                        false
                    }
                    Verdict::Infeasible => {
                        refuted.push(mask);
                        true
                    }
                    Verdict::Unknown => {
                        open = true;
                        true
                    }
                }
            });
        }
        if let Some((set, s)) = found {
            best.lower = size;
            best.set = set;
            best.schedule = s;
            break;
        }
        if !open && best.upper == size {
            best.upper = size - 1;
        }
        size -= 1;
    }
    best.set.sort_unstable();
    best
}

/// Whether the set `mask` holds every member of `sub`.
fn covers(mask: u128, sub: u128) -> bool {
    mask & sub == sub
}

fn mask_of(m: usize, members: &[usize]) -> u128 {
    if m > 128 {
        return 0;
    }
    members.iter().fold(0u128, |acc, &p| acc | 1 << p)
}

fn binomial(n: u64, k: u64) -> u64 {
    let k = k.min(n - k);
    let mut c: u64 = 1;
    for i in 0..k {
        c = c.saturating_mul(n - i) / (i + 1);
        if c > u64::MAX / 2 {
            return u64::MAX;
        }
    }
    c
}

/// Calls `f` on every `size`-subset of `0..m` (ascending members), lexicographic order, until
/// it returns false.
fn for_each_subset(m: usize, size: usize, f: &mut dyn FnMut(&[usize]) -> bool) {
    let mut idx: Vec<usize> = (0..size).collect();
    loop {
        if !f(&idx) {
            return;
        }
        let Some(i) = (0..size).rev().find(|&i| idx[i] != i + m - size) else {
            return;
        };
        idx[i] += 1;
        for j in i + 1..size {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// The energetic test of the module header, with every (window, job) demand computed once.
struct Energy {
    /// Per window: capacity and each job's least GPU time inside (`None`: cannot fit at all).
    windows: Vec<(f64, Vec<Option<f64>>)>,
    /// Per window: a mask of the jobs that must do some work inside.
    touched: Vec<u128>,
    small: bool,
}

impl Energy {
    fn new(inst: &Instance, comp: &[usize]) -> Energy {
        let m = comp.len();
        // Above this many jobs the table grows as m^3: rely on the search's own test.
        let small = m <= 48;
        let mut windows = Vec::new();
        let mut touched = Vec::new();
        if small {
            let mut starts: Vec<u64> = comp.iter().map(|&j| inst.jobs[j].release).collect();
            let mut ends: Vec<u64> = comp.iter().map(|&j| inst.jobs[j].due).collect();
            starts.sort_unstable();
            starts.dedup();
            ends.sort_unstable();
            ends.dedup();
            let gpus = inst.total_gpus() as f64;
            for &s in &starts {
                for &e in ends.iter().filter(|&&e| e > s) {
                    let mut need = Vec::with_capacity(m);
                    let mut mask = 0u128;
                    for (p, &j) in comp.iter().enumerate() {
                        let job = &inst.jobs[j];
                        let outside = s.saturating_sub(job.release) + job.due.saturating_sub(e);
                        let inside = f64::from(job.steps) - outside as f64 / job.fastest as f64;
                        if inside <= 1e-9 {
                            need.push(Some(0.0));
                            continue;
                        }
                        mask |= 1 << p;
                        let wall = job.due.min(e).saturating_sub(job.release.max(s));
                        need.push(least_gpu_time(
                            &inst.configs[job.class],
                            inside,
                            wall as f64,
                        ));
                    }
                    windows.push((gpus * (e - s) as f64, need));
                    touched.push(mask);
                }
            }
        }
        Energy {
            windows,
            touched,
            small,
        }
    }

    /// Whether the set `mask` passes every window.
    fn fits(&self, mask: u128) -> bool {
        if !self.small {
            return true;
        }
        for ((capacity, need), &touch) in self.windows.iter().zip(&self.touched) {
            let mut m = mask & touch;
            let mut sum = 0.0;
            while m != 0 {
                let p = m.trailing_zeros() as usize;
                m &= m - 1;
                match need[p] {
                    Some(c) => sum += c,
                    None => return false,
                }
            }
            if sum > capacity * (1.0 + 1e-9) + 1.0 {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_are_every_combination_once() {
        let mut seen = Vec::new();
        for_each_subset(5, 3, &mut |s: &[usize]| {
            seen.push(s.to_vec());
            true
        });
        assert_eq!(seen.len(), 10);
        assert_eq!(seen[0], vec![0, 1, 2]);
        assert_eq!(seen[9], vec![2, 3, 4]);
        let mut n = 0;
        for_each_subset(4, 0, &mut |s: &[usize]| {
            assert!(s.is_empty());
            n += 1;
            true
        });
        assert_eq!(n, 1);
        assert_eq!(binomial(30, 3), 4060);
        assert_eq!(binomial(4, 4), 1);
    }
}
