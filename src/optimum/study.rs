//! The study behind `tetriserve optimum`: per window of a scenario's workload, the optimum (or
//! the best schedule found and a proven upper bound), the upper bound of `bound.rs`, and how
//! many of the window's requests every policy meets, counted two ways: **in its run over the
//! whole workload** (the headline: the window starts with what the run carries in, late work
//! still holding GPUs and requests placed on nodes, and later arrivals compete with it) and
//! **replayed alone** (the window as a workload of its own, from an empty cluster); in total,
//! how much of the gap between the policies and the bound is the bound's looseness and how
//! much the policies' loss.
//!
//! Both counts are at most the window's optimum: the steps of the window's met requests, kept
//! alone, are a schedule of the window's model (dropping steps only frees GPUs), provided that
//! every batch this splits keeps a batch size of the step times no slower than the one that
//! ran (`docs/optimum.md` has the argument). The study checks that on every batched work of
//! every run and warns where it fails; only the counts it covers raise the optimum's lower end
//! (the larger of the solver's schedule and those counts), and a window is open (a range, not
//! proven) while that stays below the search's proven upper bound.
//!
//! The run over the whole workload stops with the last arrival at or before the latest
//! deadline of the windows: a later arrival cannot change whether a window request is met,
//! since policies are causal and a request's verdict is fixed by its deadline.

use std::collections::HashMap;
use std::ops::Range;

use serde::Serialize;

use super::model::Instance;
use super::solver::solve;
use super::windows;
use crate::cluster::{Cluster, Link};
use crate::cost::StepTimes;
use crate::error::Result;
use crate::metrics::{Outcome, RecordSink, WorkRecord};
use crate::scenario::Scenario;
use crate::simulate::{Outputs, PolicyRun, simulate_workload_into};
use crate::workload::Workload;

/// One window's numbers.
#[derive(Clone, Debug, Serialize)]
pub struct WindowRow {
    /// 1-based, per seed.
    pub window: usize,
    /// The workload's seed.
    pub seed: u64,
    /// Trace labels of the window's first and last requests.
    pub first_id: u64,
    pub last_id: u64,
    /// Arrival of the first request and latest deadline, seconds.
    pub start_s: f64,
    pub end_s: f64,
    pub requests: usize,
    /// Whether the request after the window's last is an idle point (or the workload ends):
    /// then an optimal schedule of the whole workload meets exactly the window's optimum of its
    /// requests, and `optimum - in_run` is exactly what the policy loses there.
    pub ends_at_idle_point: bool,
    /// Requests no schedule can meet, even alone on the cluster.
    pub infeasible: usize,
    /// Groups of requests that compete for GPUs, and the largest one's size.
    pub components: usize,
    pub largest_component: usize,
    /// The optimum lies in `optimum_low..=optimum_high`; equal when proven.
    pub optimum_low: usize,
    pub optimum_high: usize,
    pub proven: bool,
    /// What the solver's own schedule meets (before taking the policies' into account).
    pub solver_met: usize,
    pub search_nodes: u64,
    /// `bound.rs`'s upper bound.
    pub bound: usize,
    /// Met requests per policy, in the scenario's policy order.
    pub policies: Vec<PolicyMet>,
}

/// What one policy meets of a window's requests (or of every window's, in the totals).
#[derive(Clone, Debug, Serialize)]
pub struct PolicyMet {
    pub policy: String,
    /// Met in the policy's run over the whole workload.
    pub in_run: usize,
    /// Met with the window replayed alone, from an empty cluster.
    pub alone: usize,
}

/// Sums over the windows.
#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    pub windows: usize,
    /// Windows whose end is an idle point.
    pub windows_ending_idle: usize,
    pub requests: usize,
    pub optimum_low: usize,
    pub optimum_high: usize,
    pub proven: bool,
    pub bound: usize,
    pub policies: Vec<PolicyMet>,
    /// The policy meeting the most window requests in its runs over the whole workload (first
    /// in order on ties), and how many.
    pub best_in_run: String,
    pub best_in_run_met: usize,
    /// The same with every window replayed alone.
    pub best_alone: String,
    pub best_alone_met: usize,
    /// `bound - optimum`: at least `bound - optimum_high`, at most `bound - optimum_low`.
    pub bound_looseness_low: usize,
    pub bound_looseness_high: usize,
    /// `optimum - best_in_run_met`, between the two ends likewise, and as a percentage of the
    /// optimum (`(optimum_low - best) / optimum_low` .. `(optimum_high - best) / optimum_high`).
    pub policy_loss_low: usize,
    pub policy_loss_high: usize,
    pub policy_loss_percent_low: f64,
    pub policy_loss_percent_high: f64,
    /// `optimum - best_alone_met`, likewise.
    pub policy_loss_alone_low: usize,
    pub policy_loss_alone_high: usize,
    pub policy_loss_alone_percent_low: f64,
    pub policy_loss_alone_percent_high: f64,
}

/// The whole study.
#[derive(Clone, Debug, Serialize)]
pub struct Study {
    pub scenario: String,
    /// The workload's seed, one per study combined ([`Study::combine`]).
    pub seeds: Vec<u64>,
    pub window_size: usize,
    pub effort: u64,
    pub rows: Vec<WindowRow>,
    pub totals: Totals,
    /// What the numbers do not cover: a run whose count the argument for `count <= optimum`
    /// does not hold for (a batch split into a size the model lacks), steps skipped at run
    /// time (not modelled).
    pub warnings: Vec<String>,
}

/// Runs the study on `count` windows of `size` requests of the scenario's workload, the
/// solver visiting at most `effort` search nodes per window.
pub fn study(scenario: &Scenario, size: usize, count: usize, effort: u64) -> Result<Study> {
    let loaded = scenario.load_workload()?;
    let mut warnings = Vec::new();
    if loaded.savings.iter().any(|s| !s.skips.is_empty()) {
        warnings.push(
            "steps skipped at run time are not modelled: the windows and the runs use every step of each request (cache hits stay shorter requests)"
                .to_string(),
        );
    }
    // The requests as the model sees them (skip masks dropped), in the same order.
    let workload = Workload::from_requests(loaded.requests.clone());
    let ranges = windows::cut(&workload, size, count);
    let idle = windows::idle_points(&workload);
    let last_deadline = ranges
        .iter()
        .flat_map(|r| &workload.requests[r.clone()])
        .map(|r| r.deadline)
        .max();
    let upto = last_deadline.map_or(0, |d| workload.requests.partition_point(|r| r.arrival <= d));
    let whole = Runs::simulate(
        scenario,
        &Workload::from_requests(workload.requests[..upto].to_vec()),
    )?;
    let mut rows = Vec::new();
    for (n, range) in ranges.into_iter().enumerate() {
        let ends_idle = idle.get(range.end).copied().unwrap_or(true);
        rows.push(window_row(
            scenario,
            &workload,
            (range, ends_idle),
            &whole,
            n + 1,
            effort,
            &mut warnings,
        )?);
    }
    let totals = totals(&rows);
    Ok(Study {
        scenario: scenario.origin.clone(),
        seeds: vec![scenario.seed],
        window_size: size,
        effort,
        rows,
        totals,
        warnings,
    })
}

impl Study {
    /// Studies of one scenario at several seeds as one: every window of each, totals over all.
    pub fn combine(parts: Vec<Study>) -> Option<Study> {
        let mut parts = parts.into_iter();
        let mut all = parts.next()?;
        for p in parts {
            all.seeds.extend(p.seeds);
            all.rows.extend(p.rows);
            all.warnings.extend(p.warnings);
        }
        all.totals = totals(&all.rows);
        Some(all)
    }
}

/// Every policy's run on one workload: which requests it met, and its batched works (the only
/// ones that keeping a subset of the met requests can change).
struct Runs {
    runs: Vec<Run>,
    costs: StepTimes,
    /// Request label -> index in the workload (labels are unique).
    index: HashMap<u64, usize>,
}

struct Run {
    policy: String,
    met: Vec<bool>,
    batched: Vec<WorkRecord>,
}

/// The [`Outputs`] of [`Runs::simulate`].
#[derive(Default)]
struct Keep(Vec<Run>);

/// Keeps the works of more than one request.
#[derive(Default)]
struct Batched(Vec<WorkRecord>);

impl RecordSink for Batched {
    fn work(&mut self, work: &WorkRecord) -> Result<()> {
        if work.requests.len() > 1 {
            self.0.push(work.clone());
        }
        Ok(())
    }
}

impl Outputs for Keep {
    type Sink = Batched;

    fn open(&mut self, _policy: &str, _cluster: &Cluster) -> Result<Batched> {
        Ok(Batched::default())
    }

    fn close(&mut self, sink: Batched, run: PolicyRun) -> Result<()> {
        self.0.push(Run {
            policy: run.summary.policy,
            met: run
                .records
                .requests
                .iter()
                .map(|r| r.outcome == Outcome::Met)
                .collect(),
            batched: sink.0,
        });
        Ok(())
    }
}

impl Runs {
    /// Every policy of the scenario on `workload`, in the scenario's order.
    fn simulate(scenario: &Scenario, workload: &Workload) -> Result<Runs> {
        let mut keep = Keep::default();
        let costs = simulate_workload_into(scenario, workload, &mut keep)?;
        Ok(Runs {
            runs: keep.0,
            costs,
            index: workload
                .requests
                .iter()
                .enumerate()
                .map(|(i, r)| (r.label, i))
                .collect(),
        })
    }

    /// The requests of `range` that policy `p` met, and how many of its batched works keeping
    /// only those requests splits into a batch the model lacks.
    fn met_in(&self, p: usize, range: Range<usize>) -> (usize, usize) {
        let run = &self.runs[p];
        let met = run.met[range.clone()].iter().filter(|&&m| m).count();
        let kept = |w: &WorkRecord| {
            w.requests
                .iter()
                .filter(|l| {
                    self.index
                        .get(l)
                        .is_some_and(|&i| range.contains(&i) && run.met[i])
                })
                .count()
        };
        let split = run
            .batched
            .iter()
            .filter(|w| {
                let k = kept(w);
                k > 0 && !self.in_model(w, k)
            })
            .count();
        (met, split)
    }

    /// Whether `k` of the requests of batched work `w`, at its degree, are a configuration of
    /// the model no slower than the batch that ran (the model times steps on NVLink).
    fn in_model(&self, w: &WorkRecord, k: usize) -> bool {
        let b = w.requests.len();
        if k == b {
            return true;
        }
        let Some(class) = self.costs.class_of(w.resolution) else {
            return false;
        };
        let time = |n: usize| self.costs.get(class, w.gpus.len(), n as u32, Link::NvLink);
        matches!((time(k), time(b)), (Some(kept), Some(ran)) if kept <= ran)
    }
}

fn window_row(
    scenario: &Scenario,
    workload: &Workload,
    (range, ends_at_idle_point): (Range<usize>, bool),
    whole: &Runs,
    window: usize,
    effort: u64,
    warnings: &mut Vec<String>,
) -> Result<WindowRow> {
    let w = windows::window(workload, range.clone());
    let alone = Runs::simulate(scenario, &w)?;
    let costs = &alone.costs;
    let inst = Instance::new(&w, costs, &scenario.cluster, scenario.overheads());
    let sol = solve(&inst, effort);
    let bound = crate::bound::upper_bound(
        &w,
        costs,
        scenario.cluster.total_gpus(),
        scenario.cluster.max_degree(),
    );
    // The counts the argument covers are schedules of the model: the optimum's lower end.
    let mut covered = 0;
    let mut policies = Vec::new();
    for (p, run) in whole.runs.iter().enumerate() {
        debug_assert_eq!(run.policy, alone.runs[p].policy);
        let (in_run, in_run_split) = whole.met_in(p, range.clone());
        let (alone_met, alone_split) = alone.met_in(p, 0..w.len());
        for (met, split, how) in [
            (in_run, in_run_split, "in its run over the whole workload"),
            (alone_met, alone_split, "with the window replayed alone"),
        ] {
            if split == 0 {
                covered = covered.max(met);
            } else {
                warnings.push(format!(
                    "window {window} (seed {}): {} {how} split {split} batch(es) of its met requests into a batch size the step times lack or that runs slower; its count of {met} is not covered by the window's optimum",
                    scenario.seed, run.policy
                ));
            }
        }
        policies.push(PolicyMet {
            policy: run.policy.clone(),
            in_run,
            alone: alone_met,
        });
    }
    let low = sol.lower.max(covered);
    Ok(WindowRow {
        window,
        seed: scenario.seed,
        first_id: w.requests.first().map_or(0, |r| r.label),
        last_id: w.requests.last().map_or(0, |r| r.label),
        start_s: w.requests.first().map_or(0.0, |r| r.arrival.as_secs()),
        end_s: w
            .requests
            .iter()
            .map(|r| r.deadline)
            .max()
            .map_or(0.0, |d| d.as_secs()),
        requests: w.len(),
        ends_at_idle_point,
        infeasible: inst.requests - inst.jobs.len(),
        components: sol.components,
        largest_component: sol.largest_component,
        optimum_low: low.min(sol.upper),
        optimum_high: sol.upper,
        proven: low >= sol.upper,
        solver_met: sol.lower,
        search_nodes: sol.nodes,
        bound: bound.met,
        policies,
    })
}

/// The policy meeting the most by `count` (first in order on ties) and how many.
fn best(policies: &[PolicyMet], count: fn(&PolicyMet) -> usize) -> (String, usize) {
    policies
        .iter()
        .fold(None::<&PolicyMet>, |b, p| match b {
            Some(b) if count(b) >= count(p) => Some(b),
            _ => Some(p),
        })
        .map_or((String::new(), 0), |p| (p.policy.clone(), count(p)))
}

/// `loss` as a percentage of `optimum` (0 for an empty optimum).
fn percent(loss: usize, optimum: usize) -> f64 {
    if optimum == 0 {
        0.0
    } else {
        100.0 * loss as f64 / optimum as f64
    }
}

fn totals(rows: &[WindowRow]) -> Totals {
    let sum = |f: &dyn Fn(&WindowRow) -> usize| rows.iter().map(f).sum::<usize>();
    let mut policies: Vec<PolicyMet> = Vec::new();
    for row in rows {
        for p in &row.policies {
            match policies.iter_mut().find(|q| q.policy == p.policy) {
                Some(q) => {
                    q.in_run += p.in_run;
                    q.alone += p.alone;
                }
                None => policies.push(p.clone()),
            }
        }
    }
    let (best_in_run, best_in_run_met) = best(&policies, |p| p.in_run);
    let (best_alone, best_alone_met) = best(&policies, |p| p.alone);
    let (low, high, bound) = (
        sum(&|r| r.optimum_low),
        sum(&|r| r.optimum_high),
        sum(&|r| r.bound),
    );
    let loss = |best: usize| (low.saturating_sub(best), high.saturating_sub(best));
    let (loss_low, loss_high) = loss(best_in_run_met);
    let (alone_low, alone_high) = loss(best_alone_met);
    Totals {
        windows: rows.len(),
        windows_ending_idle: rows.iter().filter(|r| r.ends_at_idle_point).count(),
        requests: sum(&|r| r.requests),
        optimum_low: low,
        optimum_high: high,
        proven: rows.iter().all(|r| r.proven),
        bound,
        best_in_run,
        best_in_run_met,
        best_alone,
        best_alone_met,
        bound_looseness_low: bound.saturating_sub(high),
        bound_looseness_high: bound.saturating_sub(low),
        policy_loss_low: loss_low,
        policy_loss_high: loss_high,
        policy_loss_percent_low: percent(loss_low, low),
        policy_loss_percent_high: percent(loss_high, high),
        policy_loss_alone_low: alone_low,
        policy_loss_alone_high: alone_high,
        policy_loss_alone_percent_low: percent(alone_low, low),
        policy_loss_alone_percent_high: percent(alone_high, high),
        policies,
    }
}

/// A range `low..=high` as one number when it is one.
fn range(low: usize, high: usize) -> String {
    if low == high {
        low.to_string()
    } else {
        format!("{low}..{high}")
    }
}

/// A percentage range `low..high` as one number when it rounds to one.
fn percent_range(low: f64, high: f64) -> String {
    let (l, h) = (format!("{low:.1}"), format!("{high:.1}"));
    if l == h {
        format!("{l}%")
    } else {
        format!("{l}..{h}%")
    }
}

impl Study {
    /// The policies compared, in column order.
    fn policy_names(&self) -> Vec<&str> {
        self.totals
            .policies
            .iter()
            .map(|p| p.policy.as_str())
            .collect()
    }

    /// Whether the rows come from more than one seed (the table then names each row's seed).
    fn several_seeds(&self) -> bool {
        self.seeds.len() > 1
    }

    /// A Markdown table per window, then the totals in sentences. Each policy's cell is the
    /// window's requests met in its run over the whole workload, then, in brackets, met with
    /// the window replayed alone.
    pub fn to_table(&self) -> String {
        let names = self.policy_names();
        let seeds = self.several_seeds();
        let mut out = String::new();
        out.push_str("Each policy: the window's requests it meets in its run over the whole workload (in brackets: with the window replayed alone, from an empty cluster).\n\n");
        out.push_str(if seeds {
            "| seed | window |"
        } else {
            "| window |"
        });
        out.push_str(" requests | components (largest) | bound | optimum |");
        for n in &names {
            out.push_str(&format!(" {n} |"));
        }
        out.push('\n');
        out.push_str(if seeds { "| --- | --- |" } else { "| --- |" });
        out.push_str(" --- | --- | --- | --- |");
        out.push_str(&" --- |".repeat(names.len()));
        out.push('\n');
        for r in &self.rows {
            if seeds {
                out.push_str(&format!("| {} ", r.seed));
            }
            out.push_str(&format!(
                "| {} ({:.0}-{:.0} s) | {} | {} ({}) | {} | {}{} |",
                r.window,
                r.start_s,
                r.end_s,
                r.requests,
                r.components,
                r.largest_component,
                r.bound,
                range(r.optimum_low, r.optimum_high),
                if r.proven { "" } else { " (open)" },
            ));
            for n in &names {
                let cell = r
                    .policies
                    .iter()
                    .find(|p| p.policy == *n)
                    .map_or("-".into(), |p| format!("{} ({})", p.in_run, p.alone));
                out.push_str(&format!(" {cell} |"));
            }
            out.push('\n');
        }
        let t = &self.totals;
        out.push_str(&format!(
            "| total{} | {} | | {} | {}{} |",
            if seeds { " | " } else { "" },
            t.requests,
            t.bound,
            range(t.optimum_low, t.optimum_high),
            if t.proven { "" } else { " (open)" },
        ));
        for p in &t.policies {
            out.push_str(&format!(" {} ({}) |", p.in_run, p.alone));
        }
        out.push_str("\n\n");
        out.push_str(&format!(
            "Bound looseness (bound - optimum): {} of {} requests.\n\
             Policy loss in the run over the whole workload (optimum - best policy, {} with {}): {}, {} of the optimum ({} of {} windows end at an idle point).\n\
             Policy loss with each window replayed alone ({} with {}): {}, {} of the optimum.\n",
            range(t.bound_looseness_low, t.bound_looseness_high),
            t.requests,
            t.best_in_run,
            t.best_in_run_met,
            range(t.policy_loss_low, t.policy_loss_high),
            percent_range(t.policy_loss_percent_low, t.policy_loss_percent_high),
            t.windows_ending_idle,
            t.windows,
            t.best_alone,
            t.best_alone_met,
            range(t.policy_loss_alone_low, t.policy_loss_alone_high),
            percent_range(
                t.policy_loss_alone_percent_low,
                t.policy_loss_alone_percent_high
            ),
        ));
        if !t.proven {
            out.push_str("Open windows: the search did not prove its best schedule optimal within its effort; the optimum lies in the range shown.\n");
        }
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain data serialises") + "\n"
    }

    /// A header and one row per window, then a `total` row: per policy, `in_run_<policy>`
    /// (met in its run over the whole workload) then `alone_<policy>` (window replayed alone).
    pub fn to_csv(&self) -> String {
        let names = self.policy_names();
        let mut out = String::from(
            "window,seed,first_id,last_id,start_s,end_s,requests,ends_at_idle_point,infeasible,components,largest_component,bound,optimum_low,optimum_high,proven,solver_met,search_nodes",
        );
        for n in &names {
            out.push_str(&format!(",in_run_{n}"));
        }
        for n in &names {
            out.push_str(&format!(",alone_{n}"));
        }
        out.push('\n');
        let cells = |policies: &[PolicyMet], out: &mut String| {
            for count in [|p: &PolicyMet| p.in_run, |p: &PolicyMet| p.alone] {
                for n in &names {
                    let met = policies.iter().find(|p| p.policy == *n).map(count);
                    out.push_str(&format!(
                        ",{}",
                        met.map_or(String::new(), |m| m.to_string())
                    ));
                }
            }
        };
        for r in &self.rows {
            out.push_str(&format!(
                "{},{},{},{},{:.3},{:.3},{},{},{},{},{},{},{},{},{},{},{}",
                r.window,
                r.seed,
                r.first_id,
                r.last_id,
                r.start_s,
                r.end_s,
                r.requests,
                r.ends_at_idle_point,
                r.infeasible,
                r.components,
                r.largest_component,
                r.bound,
                r.optimum_low,
                r.optimum_high,
                r.proven,
                r.solver_met,
                r.search_nodes
            ));
            cells(&r.policies, &mut out);
            out.push('\n');
        }
        let t = &self.totals;
        out.push_str(&format!(
            "total,,,,,,{},{},,,,{},{},{},{},,",
            t.requests, t.windows_ending_idle, t.bound, t.optimum_low, t.optimum_high, t.proven
        ));
        cells(&t.policies, &mut out);
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{GpuSet, Topology};
    use crate::time::Nanos;
    use crate::workload::Resolution;

    fn work(labels: &[u64]) -> WorkRecord {
        WorkRecord {
            requests: labels.to_vec(),
            resolution: Resolution::square(256),
            gpus: GpuSet::range(0, 0, 1),
            start: Nanos(0),
            end: Nanos(1),
            steps: 1,
            first_step: 0,
            remap: false,
            works: 1,
        }
    }

    #[test]
    fn a_window_counts_its_met_requests_and_the_batches_it_splits_out_of_the_model() {
        // Shipped H100 profile, 256 px on one GPU, batches 1, 2 and 4 (no 3), each slower
        // than the smaller ones.
        let profile = crate::scenario::load_profile("h100-flux1-dev").unwrap();
        let cluster = Cluster::new("h100", 1, 8, Topology::NvSwitch).unwrap();
        let res = Resolution::square(256);
        let costs = StepTimes::resolve(&profile, &[res], &cluster, &[1, 2, 4]).unwrap();
        let class = costs.class_of(res).unwrap();
        let t = |b| costs.get(class, 1, b, Link::NvLink).unwrap();
        assert!(t(1) <= t(2) && t(2) <= t(4));
        // Labels 10..=15 at indices 0..=5; index 4 (label 14) missed.
        let runs = Runs {
            runs: vec![Run {
                policy: "p".into(),
                met: vec![true, true, true, true, false, true],
                batched: vec![
                    work(&[10, 11, 12, 13]),
                    work(&[12, 13]),
                    work(&[13, 15]),
                    work(&[14, 15]),
                ],
            }],
            costs,
            index: (10..16).zip(0..6).collect(),
        };
        // Window 1..5 (labels 11-14): 11, 12, 13 met. The first batch keeps three of four
        // (no batch of 3); the second keeps both; the third one of two (batch 1, faster);
        // the fourth none.
        assert_eq!(runs.met_in(0, 1..5), (3, 1));
        // The whole workload: every batch keeps a size the step times have.
        assert_eq!(runs.met_in(0, 0..6), (5, 0));
        assert_eq!(runs.met_in(0, 4..5), (0, 0));
    }
}
