//! Summary statistics of a run: SLO attainment, latency percentiles, GPU time, utilisation,
//! and what the run cost (dollars and energy, from the cluster's [`OperatingCost`]).
//!
//! Conventions (also in README.md):
//! - SLO attainment = met / all requests; dropped and late requests are both failures.
//! - Latency statistics cover completed requests only (met or missed), as the paper's CDFs do.
//! - Percentiles use the nearest-rank method: p-th percentile = the `ceil(p/100 * n)`-th
//!   smallest value. No interpolation, so every reported latency is one a request really had.
//! - GPU time comes in two kinds. *Busy* GPU-hours: degree x duration summed over works, the
//!   time GPUs computed. *Provisioned* GPU-hours: every GPU of the cluster from time 0 to the
//!   makespan (the last request's end), the time GPUs were held; utilisation is their ratio.
//! - Dollars are charged on provisioned time (a cluster is paid for whether busy or not);
//!   energy is busy time at the GPU's board power plus the rest of provisioned time at its
//!   idle power (0 W unless the scenario sets it). Both are divided by *met* images: an image
//!   delivered late earns nothing, so misses raise the price of the ones that count.
//! - With disaggregated stages, the top-level GPU figures are the denoising cluster's; the
//!   encode and decode pools have theirs in `stages`, and the run's dollars and energy count
//!   the pools too (held from time 0 to the same makespan).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cluster::OperatingCost;
use crate::metrics::{Outcome, RunRecords, WorkRecord};
use crate::time::Nanos;

/// Latency over completed requests, in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencyStats {
    pub count: usize,
    pub mean_s: f64,
    pub p50_s: f64,
    pub p90_s: f64,
    pub p99_s: f64,
    pub max_s: f64,
}

impl LatencyStats {
    pub fn from_nanos(mut v: Vec<Nanos>) -> LatencyStats {
        if v.is_empty() {
            return LatencyStats::default();
        }
        v.sort_unstable();
        let sum: u128 = v.iter().map(|x| u128::from(x.0)).sum();
        LatencyStats {
            count: v.len(),
            mean_s: (sum as f64 / v.len() as f64) / 1e9,
            p50_s: percentile(&v, 50.0).as_secs(),
            p90_s: percentile(&v, 90.0).as_secs(),
            p99_s: percentile(&v, 99.0).as_secs(),
            max_s: v[v.len() - 1].as_secs(),
        }
    }
}

/// Nearest-rank percentile of a sorted, non-empty slice.
pub fn percentile(sorted: &[Nanos], p: f64) -> Nanos {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Attainment of one resolution.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResolutionSummary {
    pub requests: usize,
    pub met: usize,
    pub slo_attainment: f64,
    pub latency_mean_s: f64,
}

/// Attainment and load of one node (requests count on the node their last steps ran on).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeSummary {
    pub node: u32,
    pub requests: usize,
    pub met: usize,
    pub slo_attainment: f64,
    pub gpu_seconds: f64,
    /// Busy GPU time of the node / (its GPUs x the run's makespan).
    pub utilization: f64,
}

/// Wall-clock cost of the policy's decisions (measured, so it varies between runs).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SchedulerStats {
    pub decisions: usize,
    pub total_ms: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// What a run cost, at the cluster's assumed price and power (figures are `None` where the
/// price or power is unknown, or, per image, where no image met its deadline).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CostSummary {
    /// The assumptions used: US dollars per GPU-hour, watts busy and idle.
    pub gpu_price_per_hour: Option<f64>,
    pub gpu_power_w: Option<f64>,
    pub gpu_idle_power_w: f64,
    /// Provisioned GPU-hours x price, US dollars.
    pub usd: Option<f64>,
    /// `usd` per 1,000 images that met their deadline.
    pub usd_per_1k_met_images: Option<f64>,
    /// Busy GPU-hours x board power + idle provisioned GPU-hours x idle power, watt-hours.
    pub energy_wh: Option<f64>,
    /// `energy_wh` per image that met its deadline.
    pub wh_per_met_image: Option<f64>,
}

impl CostSummary {
    /// The cost of `busy` and `provisioned` GPU-hours that delivered `met` images in time.
    pub fn of(op: &OperatingCost, busy_h: f64, provisioned_h: f64, met: usize) -> CostSummary {
        let usd = op.price_per_hour.map(|p| p * provisioned_h);
        let idle_h = (provisioned_h - busy_h).max(0.0);
        let energy_wh = op.power_w.map(|w| w * busy_h + op.idle_power_w * idle_h);
        let per_met = |x: Option<f64>, k: f64| x.filter(|_| met > 0).map(|x| x * k / met as f64);
        CostSummary {
            gpu_price_per_hour: op.price_per_hour,
            gpu_power_w: op.power_w,
            gpu_idle_power_w: op.idle_power_w,
            usd,
            usd_per_1k_met_images: per_met(usd, 1000.0),
            energy_wh,
            wh_per_met_image: per_met(energy_wh, 1.0),
        }
    }
}

/// What `summary.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub policy: String,
    /// GPUs of the cluster and per node.
    pub gpus: u32,
    pub gpus_per_node: u32,
    pub requests: usize,
    pub met: usize,
    pub missed: usize,
    pub dropped: usize,
    /// Fraction of all requests that met their deadline.
    pub slo_attainment: f64,
    /// An upper bound on the attainment any policy could reach on this workload and cluster
    /// (see `bound.rs`); every run sets it, `None` only in a summary built outside one.
    pub slo_attainment_bound: Option<f64>,
    pub latency: LatencyStats,
    /// Busy GPU time: degree x duration summed over works, seconds.
    pub gpu_seconds: f64,
    /// The same, in hours.
    pub gpu_hours_busy: f64,
    /// Provisioned GPU time: the cluster's GPUs x the makespan, hours.
    pub gpu_hours_provisioned: f64,
    /// Busy GPU time / provisioned GPU time.
    pub utilization: f64,
    /// Time of the last request's end, seconds.
    pub makespan_s: f64,
    /// Mean SP degree over dispatched step-time (weighted by steps).
    pub mean_degree: f64,
    /// Dollars and energy at the cluster's assumed price and power ([`Summary::price`]; all
    /// `None` in a summary built outside a run).
    pub cost: CostSummary,
    /// Events the engine handled (arrivals, completions, timers) and works dispatched.
    pub events: u64,
    pub works: usize,
    /// Keyed like `"1024x1024"`, ordered by key.
    pub per_resolution: BTreeMap<String, ResolutionSummary>,
    /// One entry per node, in node order.
    pub per_node: Vec<NodeSummary>,
    /// Measured decision times; the only non-deterministic part.
    pub scheduler: SchedulerStats,
    /// What executed the work: absent for the simulator; for `--real`, the backend (and
    /// whether its slots were emulated on one device, so timings are not those of D devices).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    /// What caching and step skipping saved; absent when neither is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savings: Option<SavingsSummary>,
    /// The encode and decode pools of disaggregated stages; absent when co-located.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<StagesSummary>,
}

/// One pool of disaggregated stages over a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PoolSummary {
    pub gpus: u32,
    /// Requests it served.
    pub served: usize,
    /// Its busy GPU-seconds, and their share of its GPUs held over the makespan.
    pub gpu_seconds: f64,
    pub utilization: f64,
    /// Mean time a request waited in its queue, seconds.
    pub wait_mean_s: f64,
    /// The longest wait, seconds.
    pub wait_max_s: f64,
}

/// The encode and decode pools of a run with disaggregated stages.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StagesSummary {
    pub encode: PoolSummary,
    pub decode: PoolSummary,
}

impl StagesSummary {
    fn of(
        run: &RunRecords,
        stages: &crate::metrics::StageRecords,
        makespan: Nanos,
    ) -> StagesSummary {
        let pool =
            |gpus: u32, slots: &mut dyn Iterator<Item = (Nanos, crate::metrics::PoolSlot)>| {
                let (mut served, mut busy, mut wait, mut wait_max) = (0usize, 0u128, 0u128, 0u64);
                for (at, slot) in slots {
                    served += 1;
                    busy += u128::from((slot.end - slot.start).0);
                    let w = (slot.start - at).0;
                    wait += u128::from(w);
                    wait_max = wait_max.max(w);
                }
                let capacity = u128::from(gpus) * u128::from(makespan.0);
                PoolSummary {
                    gpus,
                    served,
                    gpu_seconds: busy as f64 / 1e9,
                    utilization: if capacity == 0 {
                        0.0
                    } else {
                        busy as f64 / capacity as f64
                    },
                    wait_mean_s: if served == 0 {
                        0.0
                    } else {
                        wait as f64 / served as f64 / 1e9
                    },
                    wait_max_s: wait_max as f64 / 1e9,
                }
            };
        StagesSummary {
            encode: pool(
                stages.encode_gpus,
                &mut stages
                    .requests
                    .iter()
                    .zip(&run.requests)
                    .map(|(s, r)| (r.arrival, s.encode)),
            ),
            decode: pool(
                stages.decode_gpus,
                &mut stages
                    .requests
                    .iter()
                    .filter_map(|s| Some((s.decode_ready?, s.decode?))),
            ),
        }
    }
}

/// What a summary needs of a run's works, accumulated one work at a time, so that a run whose
/// works were streamed to a file is summarised without keeping them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkTotals {
    pub works: usize,
    /// Degree x duration summed over works, nanoseconds: in all and per node.
    gpu_ns: u128,
    node_ns: Vec<u128>,
    /// Steps weighted by degree, and steps.
    deg_steps: u64,
    steps: u64,
}

impl WorkTotals {
    pub fn add(&mut self, w: &WorkRecord) {
        let busy = u128::from(w.gpus.len()) * u128::from((w.end - w.start).0);
        self.works += w.works as usize;
        self.gpu_ns += busy;
        let node = w.gpus.node() as usize;
        if self.node_ns.len() <= node {
            self.node_ns.resize(node + 1, 0);
        }
        self.node_ns[node] += busy;
        self.deg_steps += u64::from(w.gpus.len()) * u64::from(w.steps);
        self.steps += u64::from(w.steps);
    }

    pub fn of(works: &[WorkRecord]) -> WorkTotals {
        let mut t = WorkTotals::default();
        works.iter().for_each(|w| t.add(w));
        t
    }
}

impl Summary {
    /// The summary of a run that kept its works.
    pub fn of(run: &RunRecords) -> Summary {
        Summary::with_totals(run, &WorkTotals::of(&run.works))
    }

    /// The summary of a run's requests and the totals of its works (kept or streamed).
    pub fn with_totals(run: &RunRecords, totals: &WorkTotals) -> Summary {
        let count = |o: Outcome| run.requests.iter().filter(|r| r.outcome == o).count();
        let (met, missed, dropped) = (
            count(Outcome::Met),
            count(Outcome::Missed),
            count(Outcome::Dropped),
        );
        let n = run.requests.len();
        let latencies: Vec<Nanos> = run.requests.iter().filter_map(|r| r.latency()).collect();

        let gpu_ns = totals.gpu_ns;
        let makespan = run.makespan();
        let capacity = u128::from(run.gpus) * u128::from(makespan.0);
        let (deg_steps, steps) = (totals.deg_steps, totals.steps);

        let mut groups: BTreeMap<crate::workload::Resolution, (usize, usize, Vec<Nanos>)> =
            BTreeMap::new();
        for r in &run.requests {
            let g = groups.entry(r.resolution).or_default();
            g.0 += 1;
            g.1 += usize::from(r.outcome == Outcome::Met);
            g.2.extend(r.latency());
        }
        let per_resolution = groups
            .into_iter()
            .map(|(k, (requests, met, lat))| {
                let l = LatencyStats::from_nanos(lat);
                (
                    k.to_string(),
                    ResolutionSummary {
                        requests,
                        met,
                        slo_attainment: ratio(met, requests),
                        latency_mean_s: l.mean_s,
                    },
                )
            })
            .collect();

        let nodes = (run.gpus / run.gpus_per_node.max(1)).max(1) as usize;
        let mut per_node: Vec<NodeSummary> = (0..nodes as u32)
            .map(|node| NodeSummary {
                node,
                requests: 0,
                met: 0,
                slo_attainment: 0.0,
                gpu_seconds: 0.0,
                utilization: 0.0,
            })
            .collect();
        for r in &run.requests {
            if let Some(n) = r.node.and_then(|n| per_node.get_mut(n as usize)) {
                n.requests += 1;
                n.met += usize::from(r.outcome == Outcome::Met);
            }
        }
        let mut node_ns = totals.node_ns.clone();
        node_ns.resize(nodes, 0);
        let node_capacity = u128::from(run.gpus_per_node) * u128::from(makespan.0);
        for (n, ns) in per_node.iter_mut().zip(node_ns) {
            n.slo_attainment = ratio(n.met, n.requests);
            n.gpu_seconds = ns as f64 / 1e9;
            n.utilization = if node_capacity == 0 {
                0.0
            } else {
                ns as f64 / node_capacity as f64
            };
        }

        Summary {
            policy: run.policy.clone(),
            gpus: run.gpus,
            gpus_per_node: run.gpus_per_node,
            requests: n,
            met,
            missed,
            dropped,
            slo_attainment: ratio(met, n),
            slo_attainment_bound: None,
            latency: LatencyStats::from_nanos(latencies),
            gpu_seconds: gpu_ns as f64 / 1e9,
            gpu_hours_busy: gpu_ns as f64 / NS_PER_HOUR,
            gpu_hours_provisioned: capacity as f64 / NS_PER_HOUR,
            utilization: if capacity == 0 {
                0.0
            } else {
                gpu_ns as f64 / capacity as f64
            },
            makespan_s: makespan.as_secs(),
            mean_degree: if steps == 0 {
                0.0
            } else {
                deg_steps as f64 / steps as f64
            },
            cost: CostSummary::default(),
            per_resolution,
            per_node,
            events: run.events,
            works: totals.works,
            scheduler: scheduler_stats(&run.decisions.samples),
            executor: None,
            savings: SavingsSummary::of(run),
            stages: run
                .stages
                .as_ref()
                .map(|s| StagesSummary::of(run, s, makespan)),
        }
    }
}

/// What approximate caching and run-time step skipping saved over a run (absent from
/// `summary.json` when the workload has neither prompt keys nor skipped steps).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SavingsSummary {
    /// Requests that carried a prompt key, and those of them that hit the cache.
    pub requests_with_prompt: usize,
    pub cache_hits: usize,
    /// `cache_hits` / all requests.
    pub cache_hit_rate: f64,
    /// Steps the cache saved, in all.
    pub cached_steps: u64,
    /// Steps skipped at run time, of those done.
    pub skipped_steps: u64,
    /// Steps done (dispatched), skipped ones included.
    pub steps_done: u64,
}

impl SavingsSummary {
    fn of(run: &RunRecords) -> Option<SavingsSummary> {
        let mut s = SavingsSummary::default();
        for r in &run.requests {
            s.requests_with_prompt += usize::from(r.saved.prompt.is_some());
            s.cache_hits += usize::from(r.saved.cache_hit);
            s.cached_steps += u64::from(r.saved.cached_steps);
            s.skipped_steps += u64::from(r.saved.skipped_steps);
            s.steps_done += u64::from(r.steps_done);
        }
        if s.requests_with_prompt == 0 && s.cache_hits == 0 && s.skipped_steps == 0 {
            return None;
        }
        s.cache_hit_rate = ratio(s.cache_hits, run.requests.len());
        Some(s)
    }
}

impl Summary {
    /// Fills in [`Summary::cost`] for GPUs of the given price and power.
    pub fn price(&mut self, op: &OperatingCost) {
        self.cost = CostSummary::of(
            op,
            self.gpu_hours_busy,
            self.gpu_hours_provisioned,
            self.met,
        );
    }
}

impl Summary {
    /// Adds the pools of disaggregated stages (GPUs of the given price and power, held over
    /// the makespan) to [`Summary::cost`], after [`Summary::price`]: a figure stays `None` when
    /// any part's price or power is unknown.
    pub fn price_pools(&mut self, encode: &OperatingCost, decode: &OperatingCost) {
        let Some(stages) = &self.stages else {
            return;
        };
        let mut usd = self.cost.usd;
        let mut energy = self.cost.energy_wh;
        for (op, pool) in [(encode, &stages.encode), (decode, &stages.decode)] {
            let held_h = f64::from(pool.gpus) * self.makespan_s / 3600.0;
            let part = CostSummary::of(op, pool.gpu_seconds / 3600.0, held_h, self.met);
            usd = usd.zip(part.usd).map(|(a, b)| a + b);
            energy = energy.zip(part.energy_wh).map(|(a, b)| a + b);
        }
        let per_met =
            |x: Option<f64>, k: f64| x.filter(|_| self.met > 0).map(|x| x * k / self.met as f64);
        self.cost.usd = usd;
        self.cost.usd_per_1k_met_images = per_met(usd, 1000.0);
        self.cost.energy_wh = energy;
        self.cost.wh_per_met_image = per_met(energy, 1.0);
    }
}

const NS_PER_HOUR: f64 = 3600.0 * 1e9;

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn scheduler_stats(samples: &[u64]) -> SchedulerStats {
    if samples.is_empty() {
        return SchedulerStats::default();
    }
    let mut v: Vec<Nanos> = samples.iter().map(|&s| Nanos(s)).collect();
    v.sort_unstable();
    let total: u128 = samples.iter().map(|&s| u128::from(s)).sum();
    SchedulerStats {
        decisions: v.len(),
        total_ms: total as f64 / 1e6,
        mean_us: total as f64 / v.len() as f64 / 1e3,
        p50_us: percentile(&v, 50.0).0 as f64 / 1e3,
        p99_us: percentile(&v, 99.0).0 as f64 / 1e3,
        max_us: v[v.len() - 1].0 as f64 / 1e3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_charges_provisioned_dollars_and_busy_energy_per_met_image() {
        let op = OperatingCost {
            price_per_hour: Some(2.0),
            power_w: Some(500.0),
            idle_power_w: 100.0,
        };
        // 3 busy of 8 provisioned GPU-hours, 4 met images: $16, 3 x 500 + 5 x 100 = 2000 Wh.
        let c = CostSummary::of(&op, 3.0, 8.0, 4);
        assert_eq!(c.usd, Some(16.0));
        assert_eq!(c.usd_per_1k_met_images, Some(4000.0));
        assert_eq!(c.energy_wh, Some(2000.0));
        assert_eq!(c.wh_per_met_image, Some(500.0));
        let none_met = CostSummary::of(&op, 3.0, 8.0, 0);
        assert_eq!(
            (none_met.usd, none_met.usd_per_1k_met_images),
            (Some(16.0), None)
        );
        let unknown = CostSummary::of(&OperatingCost::default(), 3.0, 8.0, 4);
        assert_eq!((unknown.usd, unknown.energy_wh), (None, None));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Nanos> = (1..=10).map(Nanos).collect();
        assert_eq!(percentile(&v, 50.0), Nanos(5));
        assert_eq!(percentile(&v, 90.0), Nanos(9));
        assert_eq!(percentile(&v, 99.0), Nanos(10));
        assert_eq!(percentile(&v, 0.0), Nanos(1));
        assert_eq!(percentile(&[Nanos(7)], 99.0), Nanos(7));
    }

    #[test]
    fn latency_stats_of_known_values() {
        let s = LatencyStats::from_nanos(vec![
            Nanos(3_000_000_000),
            Nanos(1_000_000_000),
            Nanos(2_000_000_000),
        ]);
        assert_eq!(s.count, 3);
        assert_eq!(s.mean_s, 2.0);
        assert_eq!(s.p50_s, 2.0);
        assert_eq!(s.max_s, 3.0);
    }
}
