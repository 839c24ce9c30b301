//! An upper bound on SLO attainment: no policy, online or offline, can meet more deadlines.
//!
//! Each request `i` needs at least `c_i` GPU-seconds inside `[a_i, d_i]` to finish on time: the
//! least GPU time of any way to run its steps within `d_i - a_i`, with steps split
//! *fractionally* between (degree, batch size) configurations (the LP relaxation of the plan,
//! so `c_i` is a lower bound on any real plan, including one that runs some steps batched and
//! others alone). A request that cannot finish in
//! time even at the fastest configuration is never met.
//!
//! **Window argument.** For a window `W = [s, e]`, the requests met whose whole interval lies
//! in `W` run entirely inside `W`, so their `c_i` sum to at most `N (e - s)` (`N` GPUs, any
//! placement; ignoring nodes only loosens the bound). Hence at most `k_W` of them are met,
//! where `k_W` is the largest number of `W`'s requests whose cheapest `c_i` fit `N (e - s)`.
//! For disjoint windows these limits add up; requests not inside any window are counted as
//! met. So for every partition of time into windows,
//! `met <= n_feasible - sum over windows of (|inside(W)| - k_W)`, and the bound is the
//! smallest such value over the partitions of a set of candidate windows, found by dynamic
//! programming over the window ends. Any set of candidates gives a valid bound: trying fewer
//! windows can only loosen it.
//!
//! **Candidate windows.** A window starts at an arrival and ends at a deadline (shrinking any
//! other window to the first arrival and last deadline inside it keeps its requests and cuts
//! its capacity, so it is never worse), and spans at most `reach`, four times the longest
//! request interval (longer windows rarely tighten the bound). Two families:
//! - *recent starts*: for each end, the starts within reach (and at least the shortest
//!   request interval before it), latest first, while the starts visited and requests added
//!   stay within a quota. If walking every start of every end takes at most about 4 M visits
//!   plus 32 per request ([`Family::DEFAULT`]: every paper-sized run, sparse runs of any
//!   size, and 2,000 requests at 4,800 req/min), there is no quota: the family is every
//!   window, and the bound is that of the exhaustive search. Otherwise each end gets an equal
//!   share of the 4 M visits (a tenth of a second).
//! - *geometric lengths* (only when the walks are not exhaustive): for each end `e` and each
//!   of at most 48 lengths `L`, from the shortest request interval up to `reach` in ratios of
//!   at most 2^(1/4), the window from the first arrival at or after `e - L`. Every window that
//!   holds a request lies inside one of this family with the same end and at most 2^(1/4)
//!   times its length; on the paper's workloads the lengths alone stay within 0.35 points of
//!   the exhaustive bound (0.25 at 20,000 to 100,000 requests; `tests` check that every
//!   family stays at or above it).
//!
//! **Sweeps.** For one length, as the end advances the start only moves forward, so a request
//! enters the window once (when the end reaches its deadline, if it arrived at or after the
//! start) and leaves once (when the start passes its arrival): no per-request state. The
//! costs inside live in a Fenwick tree over cost buckets (count and total per bucket): how
//! many of the cheapest fit the window's capacity is a descent of the tree plus one division
//! inside the next bucket. The lengths' sweeps advance over the ends in blocks (in parallel,
//! each with its own tree), and the DP then takes, at each end, the best of their windows and
//! of the walk.
//!
//! **Rounding.** Costs are integers rounded down: `c_i` less a relative 1e-12 (the float error
//! of the LP), in a unit of GPU time large enough that all costs together stay below 2^62
//! (1 GPU-ns for any real workload), against capacities rounded down to the same unit (whole
//! units that fit a capacity fit its integer part). With at most [`MAX_BUCKETS`] distinct
//! costs each cost is its own bucket; with more, costs are grouped into buckets that each
//! span a factor of at most `1 + 2^-k` (the largest `k` that keeps [`MAX_BUCKETS`] buckets:
//! about 10 for real workloads) and every request is counted at its bucket's cheapest cost.
//! Rounding a cost down never makes a set of requests that fits a window stop fitting, so each
//! window admits at least as many requests as with the exact costs, its excess can only
//! shrink, and the bound can only rise: it stays valid, and is no higher than with exact costs
//! on `1 + 2^-k` times the GPUs.
//!
//! **Cost.** Sorting, then O(M n log B) for `M <= 48` lengths and `B <=` [`MAX_BUCKETS`]
//! buckets, plus the walks' fixed number of visits (each O(log B)): near-linear in the
//! requests, with no size limit. One million requests take about a second of CPU.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::cost::{ResClass, StepTimes};
use crate::time::Nanos;
use crate::workload::Workload;

/// The most cost buckets of a window's tree; with more distinct costs they are grouped.
pub const MAX_BUCKETS: usize = 4096;

/// Ends per block of the lengths' sweeps (each sweep runs a block on its own thread, then the
/// DP consumes it).
const BLOCK: usize = 1024;

/// The bound for one workload and cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Bound {
    /// At most this many requests can meet their deadlines.
    pub met: usize,
    pub requests: usize,
    /// Requests that cannot meet their deadline even alone on the cluster.
    pub infeasible: usize,
}

impl Bound {
    pub fn attainment(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.met as f64 / self.requests as f64
        }
    }
}

/// The least GPU-seconds (as f64 nanosecond-GPUs) to run `steps` steps of `class` within
/// `budget`, splitting steps fractionally between configurations; `None` if impossible.
///
/// A configuration is a (degree, batch size) pair: a step of it takes `t` of wall time and
/// costs each image `k t / batch` GPU-time. A schedule may run some steps batched and others
/// alone, at any degrees, so the least cost is the linear program of [`least_cost_mix`] over
/// every configuration.
pub fn min_gpu_time(
    costs: &StepTimes,
    class: ResClass,
    steps: u32,
    budget: Nanos,
    max_degree: u32,
) -> Option<f64> {
    let s = f64::from(steps);
    let b = budget.0 as f64;
    let opts: Vec<(f64, f64)> = costs
        .batches()
        .iter()
        .flat_map(|&batch| {
            (0..)
                .map(|i| 1u32 << i)
                .take_while(move |&k| k <= max_degree)
                .filter_map(move |k| {
                    costs
                        .get(class, k, batch, crate::cluster::Link::NvLink)
                        .map(|t| (t.0 as f64, f64::from(k) * t.0 as f64 / f64::from(batch)))
                })
        })
        .collect();
    least_cost_mix(&opts, |&o| o, s, b)
}

/// The linear program both the bound and the optimum's pruning solve: the least cost of
/// `steps` (fractional) steps split between options of (wall time per step, cost per step),
/// `min sum x_j c_j` subject to `sum x_j = steps`, `sum x_j t_j <= wall`, `x >= 0`; `None`
/// if even the fastest option cannot fit. With two constraints an optimal vertex uses at most
/// two options, so trying every pair finds it (the faster one taking just enough steps to
/// meet `wall`). `time_cost` reads an option, so callers pass their own tables unconverted.
pub fn least_cost_mix<T>(
    opts: &[T],
    time_cost: impl Fn(&T) -> (f64, f64),
    steps: f64,
    wall: f64,
) -> Option<f64> {
    let mut best: Option<f64> = None;
    let mut keep = |v: f64| best = Some(best.map_or(v, |x: f64| x.min(v)));
    for a in opts {
        let (ta, ca) = time_cost(a);
        if steps * ta <= wall {
            keep(steps * ca);
            continue;
        }
        for b in opts {
            let (tb, cb) = time_cost(b);
            if tb >= ta || steps * tb > wall {
                continue;
            }
            // Fractional steps on b: the least that meets the budget.
            let on_b = (steps * ta - wall) / (ta - tb);
            keep((steps - on_b) * ca + on_b * cb);
        }
    }
    best
}

/// The bound for `workload` on `gpus` GPUs whose nodes have `max_degree` as their largest SP
/// degree, with step times `costs` (resolved for the workload's resolutions).
pub fn upper_bound(workload: &Workload, costs: &StepTimes, gpus: u32, max_degree: u32) -> Bound {
    upper_bound_with(workload, costs, gpus, max_degree, &Family::DEFAULT)
}

/// [`upper_bound`] over the windows of `family`.
pub fn upper_bound_with(
    workload: &Workload,
    costs: &StepTimes,
    gpus: u32,
    max_degree: u32,
    family: &Family,
) -> Bound {
    let (needs, infeasible) = needs(workload, costs, max_degree);
    let n = needs.len();
    let excess = Instance::new(&needs, gpus).max_excess(family);
    Bound {
        met: n - usize::try_from(excess).unwrap_or(n).min(n),
        requests: workload.len(),
        infeasible,
    }
}

/// A feasible request as the search sees it: arrival and deadline (ns), least GPU time
/// (GPU-ns).
#[derive(Clone, Copy, Debug)]
struct Need {
    a: u64,
    d: u64,
    c: f64,
}

/// The feasible requests' needs, and how many requests are infeasible.
fn needs(workload: &Workload, costs: &StepTimes, max_degree: u32) -> (Vec<Need>, usize) {
    // Synthetic workloads repeat (class, steps, interval) a lot; traces need not.
    let mut memo: HashMap<(ResClass, u32, Nanos), Option<f64>> = HashMap::new();
    let mut needs = Vec::with_capacity(workload.len());
    let mut infeasible = 0;
    for r in &workload.requests {
        // A deadline before the arrival: nothing to plan.
        let Some(budget) = r.deadline.0.checked_sub(r.arrival.0).map(Nanos) else {
            infeasible += 1;
            continue;
        };
        let c = costs.class_of(r.resolution).and_then(|class| {
            *memo
                .entry((class, r.steps, budget))
                .or_insert_with(|| min_gpu_time(costs, class, r.steps, budget, max_degree))
        });
        match c {
            Some(c) => needs.push(Need {
                a: r.arrival.0,
                d: r.deadline.0,
                c,
            }),
            None => infeasible += 1,
        }
    }
    (needs, infeasible)
}

/// The longest window tried: four times the longest request interval (at least 1 ns).
fn reach(needs: &[Need]) -> u64 {
    needs
        .iter()
        .map(|n| n.d - n.a)
        .max()
        .unwrap_or(0)
        .saturating_mul(4)
        .max(1)
}

/// Each need's cost in whole units, rounded down, and the unit (GPU-ns): the smallest that
/// keeps the sum of all costs below 2^62, so that no sum of costs can overflow a `u64`.
fn units(needs: &[Need]) -> (Vec<u64>, u128) {
    // Less a relative 1e-12 for the float error of the LP (`as` saturates, and sends NaN to 0:
    // every way down, which keeps the bound valid).
    let raw: Vec<u64> = needs
        .iter()
        .map(|n| (n.c * (1.0 - 1e-12)).floor() as u64)
        .collect();
    let total: u128 = raw.iter().map(|&c| u128::from(c)).sum();
    let unit = (total >> 62) + 1;
    let cost = raw.iter().map(|&c| (u128::from(c) / unit) as u64).collect();
    (cost, unit)
}

/// The capacity of `gpus` over `len` ns in cost units, rounded down: whole units of cost that
/// fit in it still fit, since they sum to an integer.
fn capacity(gpus: u32, unit: u128, len: u64) -> u64 {
    let c = u128::from(gpus) * u128::from(len);
    // The unit is 1 but for absurd costs: skip the 128-bit division then.
    let c = if unit == 1 { c } else { c / unit };
    u64::try_from(c).unwrap_or(u64::MAX)
}

/// Bucket lower ends for `costs`, ascending: every distinct cost if there are at most
/// [`MAX_BUCKETS`], else groups of costs within a factor `1 + 2^-k` of their cheapest, for the
/// largest `k` that keeps at most [`MAX_BUCKETS`] groups.
fn buckets(costs: &[u64]) -> Vec<u64> {
    let mut distinct = costs.to_vec();
    distinct.par_sort_unstable();
    distinct.dedup();
    if distinct.len() <= MAX_BUCKETS {
        return distinct;
    }
    let group = |shift: u32| {
        let mut starts: Vec<u64> = Vec::new();
        for &c in &distinct {
            // Costs are below 2^62, so `v + v` cannot overflow.
            if starts.last().is_none_or(|&v| c > v + (v >> shift)) {
                starts.push(c);
            }
        }
        starts
    };
    // With shift 0 a bucket spans a factor 2: at most 64 of them.
    (0..=20)
        .rev()
        .map(group)
        .find(|s| s.len() <= MAX_BUCKETS)
        .unwrap_or_else(|| group(0))
}

/// Which windows the search tries (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Family {
    /// Visits (starts tried plus requests added) that the recent-start walks may spend in all;
    /// each end's walk gets an equal share.
    pub walk_work: u64,
    /// If walking every start within reach of every end takes at most `walk_work` plus this
    /// many visits per request, the walks do, and the search is exhaustive.
    pub walk_per_request: u64,
    /// The most geometric lengths (0: none).
    pub lengths: usize,
}

impl Family {
    pub const DEFAULT: Family = Family {
        walk_work: 1 << 22,
        walk_per_request: 32,
        lengths: 48,
    };
}

/// One bucket's share of a Fenwick node: how many requests, and their total cost.
#[derive(Clone, Copy, Debug, Default)]
struct Node {
    sum: u64,
    count: u64,
}

/// The costs of the requests inside a window, by bucket: a Fenwick tree of (count, total) over
/// the buckets in ascending cost.
#[derive(Clone, Debug)]
struct Tree {
    /// 1-based: `node[i]` covers buckets `i - lowbit(i) .. i`.
    node: Vec<Node>,
    inside: u64,
    /// The cost of all the requests inside.
    total: u64,
    /// The largest power of two not above the number of buckets.
    top: usize,
}

impl Tree {
    fn new(buckets: usize) -> Tree {
        Tree {
            node: vec![Node::default(); buckets + 1],
            inside: 0,
            total: 0,
            top: if buckets == 0 {
                0
            } else {
                1 << buckets.ilog2()
            },
        }
    }

    fn add(&mut self, bucket: u32, values: &[u64]) {
        let b = bucket as usize;
        let v = values[b];
        self.inside += 1;
        self.total += v;
        let mut i = b + 1;
        while i < self.node.len() {
            self.node[i].sum += v;
            self.node[i].count += 1;
            i += i & i.wrapping_neg();
        }
    }

    fn remove(&mut self, bucket: u32, values: &[u64]) {
        let b = bucket as usize;
        let v = values[b];
        self.inside -= 1;
        self.total -= v;
        let mut i = b + 1;
        while i < self.node.len() {
            self.node[i].sum -= v;
            self.node[i].count -= 1;
            i += i & i.wrapping_neg();
        }
    }

    /// How many of the requests inside fit in `budget` units, cheapest first.
    fn fit(&self, budget: u64, values: &[u64]) -> u64 {
        if self.total <= budget {
            return self.inside;
        }
        // The longest prefix of buckets whose total fits, by binary descent.
        let (mut pos, mut left, mut fit) = (0, budget, 0);
        let mut step = self.top;
        while step > 0 {
            let next = pos + step;
            if next < self.node.len() && self.node[next].sum <= left {
                pos = next;
                left -= self.node[next].sum;
                fit += self.node[next].count;
            }
            step >>= 1;
        }
        // Bucket `pos` (0-based), the next one, does not fit whole (the descent found the
        // longest prefix that fits): as many of its requests as fit, fewer than it holds. It
        // exists and its cost is not 0, or it would have fitted whole (all buckets fit only if
        // the total did).
        fit + left / values[pos]
    }

    /// The requests inside that cannot all be met: those beyond the cheapest that fit.
    fn excess(&self, budget: u64, values: &[u64]) -> u64 {
        self.inside - self.fit(budget, values)
    }
}

/// The requests, sorted and grouped for the search.
struct Instance {
    gpus: u32,
    /// GPU-ns per cost unit.
    unit: u128,
    reach: u64,
    /// The shortest request interval (at least 1 ns).
    shortest: u64,
    /// Distinct arrival times, ascending; group `k`'s requests are
    /// `by_a[a_first[k]..a_first[k + 1]]`, as (deadline, bucket) by deadline.
    arrivals: Vec<u64>,
    a_first: Vec<usize>,
    by_a: Vec<(u64, u32)>,
    /// Distinct deadlines, ascending; group `j`'s requests are `by_d[d_first[j]..d_first[j + 1]]`,
    /// as (arrival, bucket) by arrival.
    deadlines: Vec<u64>,
    d_first: Vec<usize>,
    by_d: Vec<(u64, u32)>,
    /// For each arrival group, how many deadline groups end at or before it: the DP's state
    /// where a window starting there begins.
    before: Vec<usize>,
    /// Each bucket's cost (units): its cheapest request's, ascending.
    values: Vec<u64>,
}

impl Instance {
    fn new(needs: &[Need], gpus: u32) -> Instance {
        let (cost, unit) = units(needs);
        let values = buckets(&cost);
        let bucket = |c: u64| (values.partition_point(|&v| v <= c) - 1) as u32;
        let mut items: Vec<(u64, u64, u32)> = needs
            .iter()
            .zip(&cost)
            .map(|(n, &c)| (n.a, n.d, bucket(c)))
            .collect();
        let group = |items: &[(u64, u64, u32)], key: fn(&(u64, u64, u32)) -> u64| {
            let (mut times, mut first) = (Vec::new(), Vec::new());
            for (i, it) in items.iter().enumerate() {
                if times.last() != Some(&key(it)) {
                    times.push(key(it));
                    first.push(i);
                }
            }
            first.push(items.len());
            (times, first)
        };
        items.par_sort_unstable();
        let (arrivals, a_first) = group(&items, |it| it.0);
        let by_a = items.iter().map(|it| (it.1, it.2)).collect();
        items.par_sort_unstable_by_key(|it| (it.1, it.0));
        let (deadlines, d_first) = group(&items, |it| it.1);
        let by_d = items.iter().map(|it| (it.0, it.2)).collect();
        let mut j = 0;
        let before = arrivals
            .iter()
            .map(|&a| {
                while j < deadlines.len() && deadlines[j] <= a {
                    j += 1;
                }
                j
            })
            .collect();
        Instance {
            gpus,
            unit,
            reach: reach(needs),
            shortest: needs.iter().map(|n| n.d - n.a).min().unwrap_or(0).max(1),
            arrivals,
            a_first,
            by_a,
            deadlines,
            d_first,
            by_d,
            before,
            values,
        }
    }

    fn arriving(&self, k: usize) -> &[(u64, u32)] {
        &self.by_a[self.a_first[k]..self.a_first[k + 1]]
    }

    fn due(&self, j: usize) -> &[(u64, u32)] {
        &self.by_d[self.d_first[j]..self.d_first[j + 1]]
    }

    fn capacity(&self, len: u64) -> u64 {
        capacity(self.gpus, self.unit, len)
    }

    /// The largest total excess of disjoint windows of `family`.
    fn max_excess(&self, family: &Family) -> u64 {
        let ends = self.deadlines.len();
        let allowance = (self.by_a.len() as u64)
            .saturating_mul(family.walk_per_request)
            .saturating_add(family.walk_work);
        let exhaustive = self.walk_cost() <= allowance;
        let quota = if exhaustive {
            u64::MAX
        } else {
            family.walk_work / ends.max(1) as u64
        };
        let mut sweeps: Vec<Sweep> = if exhaustive {
            Vec::new()
        } else {
            self.lengths(family.lengths)
                .into_iter()
                .map(|len| Sweep {
                    len,
                    start: 0,
                    tree: Tree::new(self.values.len()),
                })
                .collect()
        };
        let mut rows: Vec<Vec<Option<(usize, u64)>>> =
            vec![Vec::with_capacity(BLOCK); sweeps.len()];
        let mut walk = Walk {
            tree: Tree::new(self.values.len()),
            quota,
            top: 0,
        };
        // g[j]: the largest total excess of disjoint windows ending at the first j deadlines.
        let mut g = vec![0u64; ends + 1];
        for first in (0..ends).step_by(BLOCK) {
            let last = (first + BLOCK).min(ends);
            sweeps
                .par_iter_mut()
                .zip(rows.par_iter_mut())
                .for_each(|(sweep, row)| {
                    row.clear();
                    row.extend((first..last).map(|j| sweep.step(self, j)));
                });
            for j in first..last {
                let mut best = g[j];
                for row in &rows {
                    if let Some((k, excess)) = row[j - first] {
                        best = best.max(g[self.before[k]] + excess);
                    }
                }
                best = best.max(walk.best(self, j, &g));
                g[j + 1] = best;
            }
        }
        g[ends]
    }

    /// What walking every start within reach of every end would visit, at most: per end, the
    /// arrival groups within reach and at least the shortest interval before it, and the fewer
    /// of the requests arriving or due within reach.
    fn walk_cost(&self) -> u64 {
        // Every bound of the span moves forward with the end.
        let (mut k_lo, mut k_hi, mut j_lo, mut cost) = (0, 0, 0, 0u64);
        for (j, &e) in self.deadlines.iter().enumerate() {
            let lo = e.saturating_sub(self.reach);
            while k_lo < self.arrivals.len() && self.arrivals[k_lo] < lo {
                k_lo += 1;
            }
            let latest = e.saturating_sub(self.shortest);
            while k_hi < self.arrivals.len() && self.arrivals[k_hi] <= latest {
                k_hi += 1;
            }
            while j_lo <= j && self.deadlines[j_lo] <= lo {
                j_lo += 1;
            }
            let arriving = self.a_first[k_hi] - self.a_first[k_lo.min(k_hi)];
            let due = self.d_first[j + 1] - self.d_first[j_lo];
            let groups = k_hi.saturating_sub(k_lo);
            cost = cost.saturating_add((groups + arriving.min(due)) as u64);
        }
        cost
    }

    /// The geometric window lengths: from the shortest request interval to `reach`, at most
    /// `max` of them, in ratios of at most 2^(1/4) when `max` allows.
    fn lengths(&self, max: usize) -> Vec<u64> {
        if max == 0 {
            return Vec::new();
        }
        let (lo, hi) = (self.shortest.min(self.reach), self.reach);
        let span = hi as f64 / lo as f64;
        let count = ((span.log2() * 4.0).ceil() as usize + 1).clamp(1, max);
        let mut lengths: Vec<u64> = (0..count)
            .map(|m| {
                if m + 1 == count {
                    hi
                } else {
                    (lo as f64 * span.powf(m as f64 / (count - 1) as f64)) as u64
                }
            })
            .collect();
        lengths.dedup();
        lengths
    }
}

/// Windows of one length ending at each deadline in turn (see the module docs).
struct Sweep {
    len: u64,
    /// The arrival group the window starts at.
    start: usize,
    tree: Tree,
}

impl Sweep {
    /// Moves the window's end to deadline group `j`: its start group and excess, if it has a
    /// start before the end.
    fn step(&mut self, inst: &Instance, j: usize) -> Option<(usize, u64)> {
        let e = inst.deadlines[j];
        let from = e.saturating_sub(self.len);
        while self.start < inst.arrivals.len() && inst.arrivals[self.start] < from {
            // The group's requests due before `e` were added when they fell due (the start
            // was at or before them then); they leave.
            for &(d, b) in inst.arriving(self.start) {
                if d >= e {
                    break;
                }
                self.tree.remove(b, &inst.values);
            }
            self.start += 1;
        }
        let s = *inst.arrivals.get(self.start)?;
        let due = inst.due(j);
        for &(_, b) in &due[due.partition_point(|&(a, _)| a < s)..] {
            self.tree.add(b, &inst.values);
        }
        (s < e).then(|| {
            (
                self.start,
                self.tree.excess(inst.capacity(e - s), &inst.values),
            )
        })
    }
}

/// Windows ending at one deadline and starting at each earlier arrival within reach, latest
/// first, while the visits stay within `quota`.
struct Walk {
    tree: Tree,
    quota: u64,
    /// The arrival groups that can hold a request due by the last end: the walk starts at the
    /// last of them.
    top: usize,
}

impl Walk {
    /// The best of `g[start] + excess` over the walk's windows ending at deadline group `j`
    /// (called for each `j` in turn).
    fn best(&mut self, inst: &Instance, j: usize, g: &[u64]) -> u64 {
        let e = inst.deadlines[j];
        // A request due by `e` arrived at least the shortest interval before it.
        let latest = e.saturating_sub(inst.shortest);
        while self.top < inst.arrivals.len() && inst.arrivals[self.top] <= latest {
            self.top += 1;
        }
        let top = self.top;
        let (mut k, mut spent, mut best) = (top, 0u64, 0);
        while k > 0 {
            let s = inst.arrivals[k - 1];
            if e - s > inst.reach {
                break;
            }
            let group = inst.arriving(k - 1);
            let take = group.partition_point(|&(d, _)| d <= e);
            spent = spent.saturating_add(1 + take as u64);
            if spent > self.quota {
                break;
            }
            k -= 1;
            if take == 0 {
                // The same requests as the window starting at the next arrival, with more
                // capacity: never better.
                continue;
            }
            for &(_, b) in &group[..take] {
                self.tree.add(b, &inst.values);
            }
            let excess = self.tree.excess(inst.capacity(e - s), &inst.values);
            best = best.max(g[inst.before[k]] + excess);
        }
        for k in k..top {
            for &(d, b) in inst.arriving(k) {
                if d > e {
                    break;
                }
                self.tree.remove(b, &inst.values);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Cluster, Link, Topology};
    use crate::cost::CostModel;
    use crate::error::Result;
    use crate::workload::{Request, RequestId, Resolution};
    use proptest::prelude::*;

    /// 256 px: 100 ms at SP1, 60 at SP2.
    struct Toy;
    impl CostModel for Toy {
        fn step_time(&self, _res: Resolution, k: u32, b: u32, _l: Link) -> Result<Nanos> {
            Ok(Nanos::from_millis(
                if k == 1 { 100.0 } else { 60.0 } * f64::from(b),
            ))
        }
        fn describe(&self) -> String {
            "toy".into()
        }
    }

    fn req(t: u64, steps: u32, slo: u64) -> Request {
        let ms = |v| Nanos(v * 1_000_000);
        Request {
            id: RequestId(0),
            label: 0,
            arrival: ms(t),
            resolution: Resolution::square(256),
            steps,
            deadline: ms(t + slo),
            stages: Default::default(),
        }
    }

    fn setup(reqs: Vec<Request>, gpus: u32) -> (Workload, StepTimes) {
        let w = Workload::from_requests(reqs);
        let c = Cluster::new("x", 1, gpus, Topology::NvSwitch).unwrap();
        let costs = StepTimes::resolve(&Toy, &w.resolutions(), &c, &[1]).unwrap();
        (w, costs)
    }

    #[test]
    fn fractional_plans_are_a_lower_bound_on_gpu_time() {
        let (_, costs) = setup(vec![req(0, 1, 1)], 2);
        let class = ResClass(0);
        // 10 steps in 1 s: SP1 alone (1 s, 1 GPU-s).
        assert!(
            (min_gpu_time(&costs, class, 10, Nanos::from_secs(1.0), 2).unwrap() - 1e9).abs() < 1.0
        );
        // 10 steps in 0.8 s: x at SP2, 10 - x at SP1: 100(10-x) + 60x = 800 -> x = 5:
        // 5 x 100 x 1 + 5 x 60 x 2 = 1100 GPU-ms.
        assert!(
            (min_gpu_time(&costs, class, 10, Nanos::from_millis(800.0), 2).unwrap() - 1.1e9).abs()
                < 1.0
        );
        assert_eq!(
            min_gpu_time(&costs, class, 10, Nanos::from_millis(500.0), 2),
            None
        );
    }

    #[test]
    fn a_requests_gpu_time_is_planned_for_its_own_interval_not_its_deadline() {
        // Two 6-step requests at 1 s, due 420 ms later, on 3 GPUs (SP1 or SP2). In 420 ms,
        // 6 x 100 ms at SP1 does not fit: x steps at SP2, 100(6 - x) + 60x = 420 -> x = 4.5,
        // 1.5 x 100 + 4.5 x 120 = 690 GPU-ms each. Both need 1,380 > 3 x 420 = 1,260: one
        // fits. (Priced for a budget of 1,420 ms, each would be 600 at SP1, and both fit.)
        let (w, costs) = setup(vec![req(1000, 6, 420), req(1000, 6, 420)], 3);
        assert_eq!(upper_bound(&w, &costs, 3, 2).met, 1);
        let (w, costs) = setup(vec![req(1000, 6, 440), req(1000, 6, 440)], 3);
        // 440 ms: x = 4, 1,360 GPU-ms for both, 1,320 available: still one. 450: x = 3.75,
        // 1,350 against 1,350: both.
        assert_eq!(upper_bound(&w, &costs, 3, 2).met, 1);
        let (w, costs) = setup(vec![req(1000, 6, 450), req(1000, 6, 450)], 3);
        assert_eq!(upper_bound(&w, &costs, 3, 2).met, 2);
    }

    #[test]
    fn requests_no_degree_serves_in_time_are_counted_infeasible() {
        // 10 steps take 600 ms at SP2: due 500 ms after arrival, infeasible; a deadline before
        // the arrival too. The third fits.
        let mut early = req(100, 1, 100);
        early.deadline = Nanos::from_millis(50.0);
        let (w, costs) = setup(vec![req(0, 10, 500), early, req(0, 10, 600)], 2);
        let b = upper_bound(&w, &costs, 2, 2);
        assert_eq!((b.met, b.infeasible, b.requests), (1, 2, 3));
    }

    #[test]
    fn a_cost_that_fills_its_window_exactly_fits_even_when_large() {
        // 2,000 GPU-s in a 2,000 s window on one GPU: it fits, exactly (the float margin
        // rounds costs down, never up, even where a relative 1e-12 is several units).
        let big = 2_000_000_000_000u64;
        let one = Need {
            a: 0,
            d: big,
            c: big as f64,
        };
        assert_eq!(search(&[one], 1, Family::DEFAULT), 0);
        assert_eq!(search(&[one, one], 1, Family::DEFAULT), 1);
        assert_eq!(search(&[one, one], 2, Family::DEFAULT), 0);
    }

    #[test]
    fn costs_beyond_2_to_the_62_are_counted_in_larger_units_against_capacity_in_the_same() {
        // Two requests of 1.25 x 2^61 GPU-ns each, both in one window of 1.5 x 2^61 ns: the
        // costs sum past 2^62, so the unit becomes 2 GPU-ns, and one GPU holds one of them
        // (1.25 <= 1.5), two GPUs both (2.5 <= 3).
        let one = Need {
            a: 0,
            d: 3 << 60,
            c: (5u64 << 59) as f64,
        };
        assert_eq!(units(&[one, one]).1, 2);
        assert_eq!(capacity(3, 2, 1 << 40), 3 << 39);
        assert_eq!(search(&[one, one], 1, Family::DEFAULT), 1);
        assert_eq!(search(&[one, one], 2, Family::DEFAULT), 0);
    }

    #[test]
    fn a_cost_exactly_a_factor_1_plus_2_to_the_minus_k_above_a_bucket_joins_it() {
        // 4,098 distinct costs (beyond MAX_BUCKETS) in pairs s, s + s/2^20: with k = 20 each
        // pair is one bucket, 2,049 of them, each starting at the pair's first cost.
        let mut costs = Vec::new();
        let mut s = 1u64 << 21;
        for _ in 0..2049 {
            costs.push(s);
            costs.push(s + (s >> 20));
            s += (s >> 20) + 1;
        }
        let b = buckets(&costs);
        assert_eq!(b.len(), 2049);
        assert!(b.iter().zip(costs.iter().step_by(2)).all(|(v, c)| v == c));
    }

    #[test]
    fn attainment_is_met_over_requests_and_zero_without_requests() {
        let b = |met, requests| Bound {
            met,
            requests,
            infeasible: 0,
        };
        assert_eq!(b(3, 4).attainment(), 0.75);
        assert_eq!(b(0, 0).attainment(), 0.0);
    }

    #[test]
    fn a_window_too_small_for_everyone_caps_the_count() {
        // Three requests of 10 steps in [0, 1 s] on one GPU: each needs 1 GPU-s; only one fits.
        let (w, costs) = setup(
            vec![req(0, 10, 1000), req(0, 10, 1000), req(0, 10, 1000)],
            1,
        );
        let b = upper_bound(&w, &costs, 1, 1);
        assert_eq!((b.met, b.infeasible), (1, 0));
        // With two GPUs, two fit.
        let (w, costs) = setup(
            vec![req(0, 10, 1000), req(0, 10, 1000), req(0, 10, 1000)],
            2,
        );
        assert_eq!(upper_bound(&w, &costs, 2, 1).met, 2);
        // Spread apart in time, all three fit on one GPU.
        let (w, costs) = setup(
            vec![req(0, 10, 1000), req(1000, 10, 1000), req(2000, 10, 1000)],
            1,
        );
        assert_eq!(upper_bound(&w, &costs, 1, 1).met, 3);
    }

    #[test]
    fn the_default_budget_walks_dense_runs_exhaustively() {
        // Dense runs (20-80 requests in 100 ns, intervals up to 30 ns): walking every window
        // costs more than the 32 visits per request allowed without a budget, but far less
        // than the default budget of 4 M visits, so the default search is the exhaustive one
        // (the oracle). Without that budget the geometric lengths alone stand in, and on some
        // of these runs they miss windows: the bound is looser.
        let mut seed = 0x1234_5678_9abc_def1_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let no_budget = Family {
            walk_work: 0,
            ..Family::DEFAULT
        };
        let (mut dense, mut looser) = (0, 0);
        for _ in 0..200 {
            let n = 20 + next(60) as usize;
            let needs: Vec<Need> = (0..n)
                .map(|_| {
                    let a = next(100);
                    let len = 1 + next(30);
                    Need {
                        a,
                        d: a + len,
                        c: (1 + next(3 * len)) as f64,
                    }
                })
                .collect();
            if Instance::new(&needs, 1).walk_cost() <= 32 * n as u64 {
                continue;
            }
            dense += 1;
            let exact = exhaustive_excess(&needs, 1);
            assert_eq!(search(&needs, 1, Family::DEFAULT), exact);
            let without = search(&needs, 1, no_budget);
            assert!(without <= exact);
            looser += usize::from(without < exact);
        }
        assert!(dense >= 20, "{dense} dense runs");
        assert!(looser >= 1, "no run where the budget matters");
    }

    #[test]
    fn the_walk_cost_counts_the_groups_and_requests_within_reach_of_each_end() {
        // A (0-10 ns), B (5-15), C (40-50): reach 40 ns, shortest interval 10. Per end:
        // 10 ns: starts up to 0 ns, within reach from 0: group {A}, 1 arriving, 1 due: 1 + 1;
        // 15 ns: starts up to 5: groups {A}, {B}, 2 arriving, 2 due: 2 + 2;
        // 50 ns: starts from 10 (reach) up to 40: group {C}, 1 arriving, 2 due since 10
        // (B and C): 1 + 1. In all 8 visits.
        let need = |a, d| Need { a, d, c: 1.0 };
        let needs = vec![need(0, 10), need(5, 15), need(40, 50)];
        assert_eq!(Instance::new(&needs, 1).walk_cost(), 8);
    }

    #[test]
    fn the_walk_cost_counts_only_requests_due_within_reach_and_starts_up_to_the_shortest_interval()
    {
        // Z (0-100), W (500-600), X (950-1,050), Y (990-1,000): reach 400 ns (4 x the longest
        // interval), shortest interval 10. Per end, groups + min(arriving, due):
        // 100: starts from 0 up to 90: {Z}; 1 arriving, 1 due: 1 + 1;
        // 600: starts from 200 up to 590: {W}; 1 arriving; due after 200: W: 1 + 1;
        // 1,000: starts from 600 up to 990: {X}, {Y}; 2 arriving; due after 600: Y only (W's
        // deadline, 600, is the reach's edge; Z's, 100, beyond it): 2 + 1;
        // 1,050: starts from 650 up to 1,040: {X}, {Y}; 2 arriving, 2 due: 2 + 2. In all 11.
        let need = |a, d| Need { a, d, c: 1.0 };
        let needs = vec![
            need(0, 100),
            need(500, 600),
            need(950, 1_050),
            need(990, 1_000),
        ];
        assert_eq!(Instance::new(&needs, 1).walk_cost(), 11);
    }

    #[test]
    fn window_lengths_run_from_the_shortest_interval_to_the_reach_in_ratios_up_to_a_fourth_root_of_2()
     {
        // Intervals of 11 and 15 ns: lengths from 11 to the reach, 60 (4 x 15). Ratios of at
        // most 2^(1/4) need ceil(4 log2(60 / 11)) = 10 of them: 11 lengths, the last exactly
        // the reach (11 x (60 / 11) is 59.99... in floating point).
        let needs = [
            Need {
                a: 0,
                d: 11,
                c: 1.0,
            },
            Need {
                a: 0,
                d: 15,
                c: 1.0,
            },
        ];
        let inst = Instance::new(&needs, 1);
        let l = inst.lengths(48);
        assert_eq!((l.len(), l[0], l[10]), (11, 11, 60));
        // Rounded down to whole nanoseconds: within one of the ratio.
        assert!(
            l.windows(2)
                .all(|w| w[1] as f64 <= w[0] as f64 * 2f64.powf(0.25) + 1.0)
        );
        // At most 3: one between, 11 x (60 / 11)^(1/2) = 25.69, rounded down.
        assert_eq!(inst.lengths(3), vec![11, 25, 60]);
        assert_eq!(inst.lengths(1), vec![60]);
        assert!(inst.lengths(0).is_empty());
    }

    #[test]
    fn a_walk_stops_at_its_quota() {
        // Three requests due together, each needing the whole window: two too many. Walking
        // every start finds the excess of 2; with no budget at all (no visits, no lengths) no
        // window is tried and the search finds none, a valid but loose bound.
        let needs = vec![
            Need {
                a: 0,
                d: 1_000,
                c: 1_000.0,
            };
            3
        ];
        assert_eq!(search(&needs, 1, Family::DEFAULT), 2);
        let nothing = Family {
            walk_work: 0,
            walk_per_request: 0,
            lengths: 0,
        };
        assert_eq!(search(&needs, 1, nothing), 0);
    }

    #[test]
    fn each_end_walks_an_equal_share_of_the_walk_budget() {
        // One GPU. Two requests arrive at 0, due at 100, needing 60 each: the window [0, 100]
        // has an excess of 1. Three more arrive at 900, due at 1,000, needing 10 each. Two
        // ends, 100 and 1,000; walking every start within reach costs 7 visits (per end, each
        // start's group and the requests it adds: 1 + 2 from the end 100, 1 + 3 from 1,000),
        // more than a walk budget of 4 or 6, so the walks are not exhaustive. Each end gets
        // half the budget: with 6, the end 100 reaches the start 0 (3 visits) and finds the
        // excess; with 4 it stops before.
        let need = |a, d, c| Need { a, d, c };
        let mut needs = vec![need(0, 100, 60.0); 2];
        needs.extend([need(900, 1_000, 10.0); 3]);
        let walks = |walk_work| Family {
            walk_work,
            walk_per_request: 0,
            lengths: 0,
        };
        assert_eq!(Instance::new(&needs, 1).walk_cost(), 7);
        assert_eq!(search(&needs, 1, walks(4)), 0);
        assert_eq!(search(&needs, 1, walks(6)), 1);
        assert_eq!(search(&needs, 1, walks(7)), 1);
    }

    /// The search this module ran before the sweeps, kept as the oracle: every window between
    /// two request times (arrivals and deadlines) within reach, each window's costs collected
    /// and sorted, the cheapest taken while they fit. O(points x window x sort). Same integer
    /// costs and capacities as the search.
    fn exhaustive_excess(needs: &[Need], gpus: u32) -> u64 {
        let (cost, unit) = units(needs);
        let mut items: Vec<(u64, u64, u64)> = needs
            .iter()
            .zip(&cost)
            .map(|(n, &c)| (n.a, n.d, c))
            .collect();
        items.sort_unstable();
        let arrivals: Vec<u64> = items.iter().map(|i| i.0).collect();
        let mut points: Vec<u64> = items.iter().flat_map(|i| [i.0, i.1]).collect();
        points.sort_unstable();
        points.dedup();
        let reach = reach(needs);
        let mut inside = Vec::new();
        let mut excess = |s: u64, e: u64| -> u64 {
            inside.clear();
            let lo = arrivals.partition_point(|&a| a < s);
            let hi = arrivals.partition_point(|&a| a <= e);
            inside.extend(items[lo..hi].iter().filter(|it| it.1 <= e).map(|it| it.2));
            inside.sort_unstable();
            let budget = capacity(gpus, unit, e - s);
            let (mut used, mut fit) = (0u64, 0u64);
            for &c in &inside {
                if used + c > budget {
                    break;
                }
                used += c;
                fit += 1;
            }
            inside.len() as u64 - fit
        };
        let p = points.len();
        let mut g = vec![0u64; p];
        for j in 1..p {
            let mut best = g[j - 1];
            let first = points.partition_point(|&x| x.saturating_add(reach) < points[j]);
            for i in first..j {
                best = best.max(g[i] + excess(points[i], points[j]));
            }
            g[j] = best;
        }
        g.last().copied().unwrap_or(0)
    }

    fn search(needs: &[Need], gpus: u32, family: Family) -> u64 {
        Instance::new(needs, gpus).max_excess(&family)
    }

    /// Families that leave the exhaustive walk: lengths only, lengths and short walks, a few
    /// lengths, short walks only.
    const PARTIAL: [Family; 4] = [
        Family {
            walk_work: 0,
            walk_per_request: 0,
            lengths: 48,
        },
        Family {
            walk_work: 40,
            walk_per_request: 0,
            lengths: 48,
        },
        Family {
            walk_work: 0,
            walk_per_request: 0,
            lengths: 2,
        },
        Family {
            walk_work: 100,
            walk_per_request: 0,
            lengths: 0,
        },
    ];

    /// Random needs: arrivals and intervals in `scale` ns units (up to 2^62 ns and beyond),
    /// costs from nothing to three times the interval on one GPU.
    fn needs_strategy() -> impl Strategy<Value = Vec<Need>> {
        (
            prop_oneof![Just(1u64), Just(1_000_000), Just(1 << 40), Just(1 << 56)],
            prop::collection::vec((0u64..40, 1u64..25, 0.0f64..3.0), 0..30),
        )
            .prop_map(|(scale, v)| {
                v.into_iter()
                    .map(|(a, len, f)| Need {
                        a: a * scale,
                        d: (a + len) * scale,
                        c: f * (len * scale) as f64,
                    })
                    .collect()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn the_search_matches_the_exhaustive_one_and_its_subsets_never_beat_it(
            needs in needs_strategy(),
            gpus in prop_oneof![1u32..4, Just(u32::MAX)],
        ) {
            let oracle = exhaustive_excess(&needs, gpus);
            prop_assert!(oracle <= needs.len() as u64);
            // Small workloads: the walks cover every window, so the search is the oracle.
            prop_assert_eq!(search(&needs, gpus, Family::DEFAULT), oracle);
            // Fewer windows: never more excess (never a lower bound) than the oracle.
            for family in PARTIAL {
                let excess = search(&needs, gpus, family);
                prop_assert!(excess <= oracle, "{family:?}: {excess} > {oracle}");
            }
        }

        #[test]
        fn the_tree_fits_the_cheapest_costs_that_fit(
            values in prop::collection::btree_set(0u64..1000, 1..20),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
            removals in 0usize..10,
            budget in 0u64..5000,
        ) {
            let values: Vec<u64> = values.into_iter().collect();
            let mut tree = Tree::new(values.len());
            let mut inside: Vec<usize> = picks.iter().map(|i| i.index(values.len())).collect();
            for &b in &inside {
                tree.add(b as u32, &values);
            }
            for b in inside.drain(..removals.min(inside.len())) {
                tree.remove(b as u32, &values);
            }
            let mut costs: Vec<u64> = inside.iter().map(|&b| values[b]).collect();
            costs.sort_unstable();
            let greedy = costs
                .iter()
                .scan(0u64, |used, &c| {
                    *used += c;
                    Some(*used)
                })
                .take_while(|&used| used <= budget)
                .count() as u64;
            prop_assert_eq!(tree.fit(budget, &values), greedy);
            prop_assert_eq!(tree.excess(budget, &values), costs.len() as u64 - greedy);
        }

        #[test]
        fn the_bound_counts_at_most_the_feasible_requests(
            reqs in prop::collection::vec((0u64..3000, 1u32..20, 50u64..3000), 0..25),
            gpus in 1u32..5,
        ) {
            let (w, costs) = setup(reqs.iter().map(|&(t, steps, slo)| req(t, steps, slo)).collect(), gpus);
            let degree = gpus.min(2);
            let b = upper_bound(&w, &costs, gpus, degree);
            let (needs, infeasible) = needs(&w, &costs, degree);
            prop_assert_eq!(b.infeasible, infeasible);
            prop_assert!(b.met <= b.requests - b.infeasible);
            prop_assert_eq!(b.met as u64, needs.len() as u64 - exhaustive_excess(&needs, gpus));
            for family in PARTIAL {
                prop_assert!(upper_bound_with(&w, &costs, gpus, degree, &family).met >= b.met);
            }
        }
    }

    #[test]
    fn many_distinct_costs_share_buckets_and_the_bound_only_rises() {
        // 6,000 requests of distinct costs (beyond MAX_BUCKETS), in 1 s intervals every 0.1 s
        // on one GPU: four times the demand it can serve.
        let needs: Vec<Need> = (0..6000u64)
            .map(|i| Need {
                a: i * 100_000_000,
                d: i * 100_000_000 + 1_000_000_000,
                c: 1e8 + (i * 7919 % 6000) as f64 * 1e5,
            })
            .collect();
        let (cost, _) = units(&needs);
        let values = buckets(&cost);
        assert!(values.len() <= MAX_BUCKETS && values.len() > MAX_BUCKETS / 4);
        // Each cost is within a factor 1 + 2^-10 above its bucket's value.
        for &c in &cost {
            let v = values[values.partition_point(|&v| v <= c) - 1];
            assert!(v <= c && c - v <= v >> 10, "{c} in bucket {v}");
        }
        let oracle = exhaustive_excess(&needs, 1);
        assert!(oracle > 1000, "crowded: {oracle}");
        // Every family is a subset of the oracle's windows, with costs rounded down; the
        // default and the full set of lengths lose under 1%.
        for (i, family) in [Family::DEFAULT].into_iter().chain(PARTIAL).enumerate() {
            let excess = search(&needs, 1, family);
            assert!(excess <= oracle, "{family:?}: {excess} > {oracle}");
            if i < 3 {
                assert!(
                    excess + oracle / 100 >= oracle,
                    "{family:?}: {excess} vs {oracle}"
                );
            }
        }
    }

    #[test]
    fn extreme_costs_and_times_neither_overflow_nor_panic() {
        // Costs from 0 to beyond u64, times up to 2^62, every GPU count.
        let needs: Vec<Need> = (0..5000u64)
            .map(|i| Need {
                a: (i << 50).min(1 << 62),
                d: ((i << 50) + (1 << 61)).min(1 << 62),
                c: match i % 4 {
                    0 => 0.0,
                    1 => f64::MAX,
                    2 => 2f64.powi(i as i32 % 80),
                    _ => 1e18 * i as f64,
                },
            })
            .collect();
        let values = buckets(&units(&needs).0);
        assert!(values.len() <= MAX_BUCKETS);
        for gpus in [1, 8, u32::MAX] {
            for family in [Family::DEFAULT].into_iter().chain(PARTIAL) {
                assert!(search(&needs, gpus, family) <= needs.len() as u64);
            }
        }
    }
}
