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
//! smallest such value over the partitions the search tries: dynamic programming over windows
//! whose ends are arrival and deadline times and which span at most four times the longest
//! request interval (any family of windows gives a valid bound; longer windows rarely
//! tighten it). Workloads above [`MAX_REQUESTS`] are not bounded (the search is superlinear).

use crate::cost::{ResClass, StepTimes};
use crate::time::Nanos;
use crate::workload::Workload;

/// The largest workload the bound is computed for.
pub const MAX_REQUESTS: usize = 50_000;

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
/// alone, at any degrees, so the least cost is the linear program
/// `min sum x_j c_j` subject to `sum x_j = steps`, `sum x_j t_j <= budget`, `x >= 0` over
/// every configuration; with two constraints an optimal vertex uses at most two
/// configurations, so trying every pair finds it.
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
    let mut best: Option<f64> = None;
    for &(ta, ca) in &opts {
        if s * ta <= b {
            best = Some(best.map_or(s * ca, |x: f64| x.min(s * ca)));
            continue;
        }
        for &(tb, cb) in &opts {
            if tb >= ta || s * tb > b {
                continue;
            }
            // Fractional steps at b: the least that meets the budget.
            let sb = (s * ta - b) / (ta - tb);
            let cost = (s - sb) * ca + sb * cb;
            best = Some(best.map_or(cost, |x: f64| x.min(cost)));
        }
    }
    best
}

/// The bound for `workload` on `gpus` GPUs whose nodes have `max_degree` as their largest SP
/// degree, with step times `costs` (resolved for the workload's resolutions).
pub fn upper_bound(workload: &Workload, costs: &StepTimes, gpus: u32, max_degree: u32) -> Bound {
    struct Item {
        a: u64,
        d: u64,
        c: f64,
    }
    let mut items = Vec::new();
    let mut infeasible = 0;
    for r in &workload.requests {
        let Some(class) = costs.class_of(r.resolution) else {
            infeasible += 1;
            continue;
        };
        match min_gpu_time(costs, class, r.steps, r.deadline - r.arrival, max_degree) {
            Some(c) => items.push(Item {
                a: r.arrival.0,
                d: r.deadline.0,
                c,
            }),
            None => infeasible += 1,
        }
    }
    let n = items.len();
    // Items by arrival, to find a window's population by binary search.
    items.sort_by_key(|i| (i.a, i.d));
    let arrivals: Vec<u64> = items.iter().map(|i| i.a).collect();
    let mut points: Vec<u64> = items.iter().flat_map(|i| [i.a, i.d]).collect();
    points.sort_unstable();
    points.dedup();
    let cap = f64::from(gpus);
    // Windows longer than a few request intervals rarely add excess that shorter ones miss;
    // any family of windows gives a valid bound, so only those up to `reach` are tried.
    let reach = items
        .iter()
        .map(|i| i.d - i.a)
        .max()
        .unwrap_or(0)
        .saturating_mul(4)
        .max(1);
    let mut costs_in: Vec<f64> = Vec::new();
    let mut excess = |s: u64, e: u64| -> usize {
        costs_in.clear();
        let lo = arrivals.partition_point(|&a| a < s);
        let hi = arrivals.partition_point(|&a| a <= e);
        costs_in.extend(items[lo..hi].iter().filter(|it| it.d <= e).map(|it| it.c));
        costs_in.sort_by(f64::total_cmp);
        let budget = cap * (e - s) as f64 * (1.0 + 1e-12);
        let (mut used, mut fit) = (0.0, 0usize);
        for &c in costs_in.iter() {
            if used + c > budget {
                break;
            }
            used += c;
            fit += 1;
        }
        costs_in.len() - fit
    };
    // g[j]: the largest total excess of a partition of [p_0, p_j] into windows.
    let p = points.len();
    let mut g = vec![0usize; p];
    for j in 1..p {
        let mut best = g[j - 1];
        let first = points.partition_point(|&x| x + reach < points[j]);
        for i in first..j {
            best = best.max(g[i] + excess(points[i], points[j]));
        }
        g[j] = best;
    }
    let excess_total = g.last().copied().unwrap_or(0);
    Bound {
        met: n - excess_total.min(n),
        requests: workload.len(),
        infeasible,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Cluster, Link, Topology};
    use crate::cost::CostModel;
    use crate::error::Result;
    use crate::workload::{Request, RequestId, Resolution};

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
}
