//! Simulator fidelity: one trace replayed on real GPUs and in simulation, compared request by
//! request (as Vidur's and LLMServingSim's validations do).
//!
//! `tetriserve validate` measures a profile on the local GPU, runs the trace with `--real`,
//! simulates it with that profile on the same cluster, and hands both runs to [`compare`]
//! ([`study`]: given the real node as an [`Executor`], everything after measuring it).
//! `tetriserve validate --compare REAL_DIR SIM_DIR` compares two run directories written
//! earlier (`simulate --out`), so the analysis also runs where there is no GPU.
//!
//! Besides the differences, the comparison explains them: every real work is set against the
//! steps the profile says it ran, and what is left (input generation, latent upload and
//! download, launches, host scheduling) is reported per work as the *unmodelled overhead*,
//! the cost the simulator would need to charge to close the gap.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::engine::Executor;
use crate::error::{Error, Result};
use crate::metrics::{Outcome, RequestRecord, RunRecords, WorkRecord};
use crate::scenario::Scenario;
use crate::time::Nanos;
use crate::workload::Resolution;

/// One request in both runs.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestDiff {
    pub id: u64,
    pub resolution: Resolution,
    /// Arrival to completion, seconds (`None` if it did not finish in that run).
    pub real_latency_s: Option<f64>,
    pub sim_latency_s: Option<f64>,
    pub real_met: bool,
    pub sim_met: bool,
}

impl RequestDiff {
    /// `|sim - real| / real` of the latency, when both finished.
    pub fn relative_error(&self) -> Option<f64> {
        match (self.real_latency_s, self.sim_latency_s) {
            (Some(r), Some(s)) if r > 0.0 => Some((s - r).abs() / r),
            _ => None,
        }
    }
}

/// Per resolution: how much longer real works took than the profiled steps they ran.
#[derive(Clone, Debug, PartialEq)]
pub struct Overhead {
    pub resolution: Resolution,
    pub works: usize,
    /// Mean over works of (measured duration - steps x profiled step time), milliseconds.
    pub mean_ms: f64,
    /// The same as a fraction of the profiled time.
    pub fraction: f64,
}

/// The whole comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Validation {
    pub requests: Vec<RequestDiff>,
    /// Relative latency error over requests finished in both runs: mean, p90, max.
    pub mean_error: f64,
    pub p90_error: f64,
    pub max_error: f64,
    /// Mean absolute latency difference, seconds.
    pub mean_abs_error_s: f64,
    /// Fraction of requests with the same met/missed verdict.
    pub same_verdict: f64,
    pub real_attainment: f64,
    pub sim_attainment: f64,
    pub real_gpu_s: f64,
    pub sim_gpu_s: f64,
    pub real_makespan_s: f64,
    pub sim_makespan_s: f64,
    pub overheads: Vec<Overhead>,
}

/// Compares a real run with its simulation. `step_ms(resolution, degree, batch)` is the
/// profiled step time the simulation used, for the overhead breakdown (`None` where unknown).
pub fn compare(
    real: &RunRecords,
    sim: &RunRecords,
    step_ms: impl Fn(Resolution, u32, u32) -> Option<f64>,
) -> Result<Validation> {
    if real.requests.len() != sim.requests.len()
        || real
            .requests
            .iter()
            .zip(&sim.requests)
            .any(|(a, b)| a.id != b.id || a.resolution != b.resolution)
    {
        return Err(Error::config_hint(
            "the two runs are not of the same requests",
            "compare a real run with the simulation of the same trace (same ids, resolutions)",
        ));
    }
    if real.requests.is_empty() {
        return Err(Error::config("the runs have no requests"));
    }
    let secs = |n: Nanos| n.0 as f64 / 1e9;
    let latency = |r: &RequestRecord| {
        (r.outcome != Outcome::Dropped && r.steps_done == r.steps).then(|| secs(r.end - r.arrival))
    };
    let requests: Vec<RequestDiff> = real
        .requests
        .iter()
        .zip(&sim.requests)
        .map(|(a, b)| RequestDiff {
            id: a.id,
            resolution: a.resolution,
            real_latency_s: latency(a),
            sim_latency_s: latency(b),
            real_met: a.outcome == Outcome::Met,
            sim_met: b.outcome == Outcome::Met,
        })
        .collect();
    let mut errors: Vec<f64> = requests
        .iter()
        .filter_map(RequestDiff::relative_error)
        .collect();
    errors.sort_by(f64::total_cmp);
    let abs: Vec<f64> = requests
        .iter()
        .filter_map(|d| Some((d.sim_latency_s? - d.real_latency_s?).abs()))
        .collect();
    let mean = |v: &[f64]| {
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let p90 = errors
        .get((errors.len() * 9).div_ceil(10).saturating_sub(1))
        .copied()
        .unwrap_or(f64::NAN);
    let n = requests.len() as f64;
    let attainment =
        |v: &[RequestRecord]| v.iter().filter(|r| r.outcome == Outcome::Met).count() as f64 / n;
    let gpu_s = |r: &RunRecords| r.requests.iter().map(|q| secs(q.gpu_time)).sum::<f64>();
    let makespan = |r: &RunRecords| {
        let first = r
            .requests
            .iter()
            .map(|q| q.arrival)
            .min()
            .unwrap_or(Nanos::ZERO);
        let last = r.works.iter().map(|w| w.end).max().unwrap_or(first);
        secs(last - first)
    };
    Ok(Validation {
        mean_error: mean(&errors),
        p90_error: p90,
        max_error: errors.last().copied().unwrap_or(f64::NAN),
        mean_abs_error_s: mean(&abs),
        same_verdict: requests.iter().filter(|d| d.real_met == d.sim_met).count() as f64 / n,
        real_attainment: attainment(&real.requests),
        sim_attainment: attainment(&sim.requests),
        real_gpu_s: gpu_s(real),
        sim_gpu_s: gpu_s(sim),
        real_makespan_s: makespan(real),
        sim_makespan_s: makespan(sim),
        overheads: overheads(&real.works, step_ms),
        requests,
    })
}

/// Unmodelled time of real works, per resolution (works whose step time is unknown are left
/// out). A merged row of a run directory (`works` > 1) counts as its works, its extra time
/// shared among them.
fn overheads(
    works: &[WorkRecord],
    step_ms: impl Fn(Resolution, u32, u32) -> Option<f64>,
) -> Vec<Overhead> {
    // Per resolution, per row: (extra ms, modelled ms, works).
    type Rows = Vec<(f64, f64, usize)>;
    let mut by_res: Vec<(Resolution, Rows)> = Vec::new();
    for w in works {
        let Some(step) = step_ms(w.resolution, w.gpus.len(), w.requests.len() as u32) else {
            continue;
        };
        let modelled = step * f64::from(w.steps);
        let measured = (w.end - w.start).0 as f64 / 1e6;
        let row = (measured - modelled, modelled, w.works as usize);
        match by_res.iter_mut().find(|(r, _)| *r == w.resolution) {
            Some((_, v)) => v.push(row),
            None => by_res.push((w.resolution, vec![row])),
        }
    }
    by_res.sort_by_key(|(r, _)| r.tokens());
    by_res
        .into_iter()
        .map(|(resolution, v)| {
            let extra: f64 = v.iter().map(|x| x.0).sum();
            let modelled: f64 = v.iter().map(|x| x.1).sum();
            let works: usize = v.iter().map(|x| x.2).sum();
            Overhead {
                resolution,
                works,
                mean_ms: extra / works.max(1) as f64,
                fraction: if modelled > 0.0 {
                    extra / modelled
                } else {
                    f64::NAN
                },
            }
        })
        .collect()
}

impl Validation {
    /// The unmodelled time per real work, averaged over every work (milliseconds), if any
    /// work had a profiled step time: what `overheads.dispatch_ms` would have to be.
    pub fn mean_overhead_ms(&self) -> Option<f64> {
        let works: usize = self.overheads.iter().map(|o| o.works).sum();
        (works > 0).then(|| {
            self.overheads
                .iter()
                .map(|o| o.mean_ms * o.works as f64)
                .sum::<f64>()
                / works as f64
        })
    }

    /// Whether it meets the fidelity targets: mean latency error under 5% and the same verdict
    /// for at least 95% of requests.
    pub fn meets_targets(&self) -> bool {
        self.mean_error < 0.05 && self.same_verdict >= 0.95
    }

    /// The aggregate table, the overhead breakdown and the verdict, as Markdown.
    pub fn to_markdown(&self) -> String {
        let pct = |x: f64| format!("{:.1}%", 100.0 * x);
        let mut s = String::from("| | real | simulated |\n|---|---|---|\n");
        let _ = writeln!(
            s,
            "| SLO attainment | {} | {} |",
            pct(self.real_attainment),
            pct(self.sim_attainment)
        );
        let _ = writeln!(
            s,
            "| GPU-seconds | {:.2} | {:.2} |",
            self.real_gpu_s, self.sim_gpu_s
        );
        let _ = writeln!(
            s,
            "| makespan, s | {:.2} | {:.2} |",
            self.real_makespan_s, self.sim_makespan_s
        );
        let finished = self
            .requests
            .iter()
            .filter(|d| d.relative_error().is_some())
            .count();
        let _ = writeln!(
            s,
            "\nLatency error over the {finished} requests finished in both runs: mean {}, p90 {}, max {} (mean absolute {:.3} s); same met/missed verdict for {} of {} requests.",
            pct(self.mean_error),
            pct(self.p90_error),
            pct(self.max_error),
            self.mean_abs_error_s,
            pct(self.same_verdict),
            self.requests.len()
        );
        if !self.overheads.is_empty() {
            s.push_str("\nReal work time beyond the profiled steps (what the simulator does not charge):\n\n| resolution | works | mean extra per work, ms | share of the profiled time |\n|---|---|---|---|\n");
            for o in &self.overheads {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.2} | {} |",
                    o.resolution,
                    o.works,
                    o.mean_ms,
                    pct(o.fraction)
                );
            }
        }
        let _ = writeln!(
            s,
            "\nTargets (mean error < 5%, same verdict >= 95%): {}",
            if self.meets_targets() {
                "met"
            } else {
                "NOT met"
            }
        );
        s
    }

    /// Per request: `id,resolution,real_latency_s,sim_latency_s,relative_error,real_met,sim_met`.
    pub fn requests_csv(&self) -> String {
        let mut s = String::from(
            "id,resolution,real_latency_s,sim_latency_s,relative_error,real_met,sim_met\n",
        );
        let opt =
            |x: Option<f64>, digits: usize| x.map_or(String::new(), |v| format!("{v:.digits$}"));
        for d in &self.requests {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{}",
                d.id,
                d.resolution,
                opt(d.real_latency_s, 6),
                opt(d.sim_latency_s, 6),
                opt(d.relative_error(), 6),
                d.real_met,
                d.sim_met
            );
        }
        s
    }
}

/// A real run set against its simulations: what `tetriserve validate` reports.
pub struct FidelityStudy {
    /// The real run against its simulation with the measured profile and per-work overhead.
    pub validation: Validation,
    /// The same simulation charging steps only, to show what the per-work overhead explains.
    pub without_overhead: Validation,
    /// Every run's files, under `real/`, `sim/` and `sim-no-overhead/`.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// The real executor's description.
    pub executor: String,
}

/// Runs `scenario`'s first policy on `executor` (the real node, which the scenario's profile
/// and per-work overhead describe), then simulates the same scenario, so that both runs plan
/// identically, and once more without the per-work overhead; compares each simulation with
/// the real run.
pub fn study(scenario: &Scenario, executor: &mut dyn Executor) -> Result<FidelityStudy> {
    let real = crate::simulate::run_with(scenario, executor)
        .map_err(|f| f.error)?
        .remove(0);
    // Where the real executor cannot cut running work, its policies granted one step at a
    // time; the simulations must plan the same way.
    let mut planned = scenario.clone();
    if !executor.can_cut() {
        planned.policy_config.stepwise.revocable_grants = false;
    }
    let sim = crate::simulate::simulate(&planned)?.remove(0);
    let mut bare = planned.clone();
    bare.policy_config.overheads.dispatch = Nanos::ZERO;
    let sim_bare = crate::simulate::simulate(&bare)?.remove(0);
    let mut files = Vec::new();
    for (name, run) in [
        ("real", &real),
        ("sim", &sim),
        ("sim-no-overhead", &sim_bare),
    ] {
        for (file, bytes) in crate::report::run_files(
            &run.records,
            &run.summary,
            None,
            crate::report::WorkRows::Merged,
        ) {
            files.push((PathBuf::from(name).join(file), bytes));
        }
    }
    let profile = match &scenario.cost {
        crate::scenario::CostSource::Profile(p) => Some(p),
        crate::scenario::CostSource::Analytic(_) => None,
    };
    let lookup = |res, k, b| step_ms(profile, res, k, b);
    Ok(FidelityStudy {
        validation: compare(&real.records, &sim.records, lookup)?,
        without_overhead: compare(&real.records, &sim_bare.records, lookup)?,
        files,
        executor: real.summary.executor.clone().unwrap_or_else(|| "?".into()),
    })
}

/// `validation.md`: the comparison, and the one without the per-work overhead when there is one.
pub fn report(validation: &Validation, without_overhead: Option<&Validation>) -> String {
    let mut text = format!(
        "## Simulated with the measured profile and per-work overhead\n\n{}",
        validation.to_markdown()
    );
    if let Some(w) = without_overhead {
        text.push_str(&format!(
            "\n## Without the per-work overhead\n\nThe same simulation charging steps only (`overheads.dispatch_ms = 0`; the real run's plans are unchanged):\n\n{}",
            w.to_markdown()
        ));
    }
    text
}

/// The profiled step time in milliseconds, if `profile` covers it.
pub fn step_ms(
    profile: Option<&crate::cost::profile::ProfileTable>,
    res: Resolution,
    degree: u32,
    batch: u32,
) -> Option<f64> {
    use crate::cost::CostModel;
    let t = profile?
        .step_time(res, degree, batch, crate::cluster::Link::NvLink)
        .ok()?;
    Some(t.0 as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::GpuSet;
    use crate::metrics::DecisionTimes;

    fn ms(v: u64) -> Nanos {
        Nanos(v * 1_000_000)
    }

    fn request(id: u64, end_ms: u64, deadline_ms: u64, done: bool) -> RequestRecord {
        RequestRecord {
            id,
            arrival: Nanos::ZERO,
            resolution: Resolution::square(256),
            steps: 4,
            steps_done: if done { 4 } else { 2 },
            deadline: ms(deadline_ms),
            start: Some(Nanos::ZERO),
            end: ms(end_ms),
            outcome: if !done {
                Outcome::Dropped
            } else if end_ms <= deadline_ms {
                Outcome::Met
            } else {
                Outcome::Missed
            },
            gpu_time: ms(end_ms),
            degrees_used: 1,
            remaps: 0,
            node: Some(0),
            saved: Default::default(),
        }
    }

    fn run(requests: Vec<RequestRecord>, works: Vec<WorkRecord>) -> RunRecords {
        RunRecords {
            policy: "p".into(),
            gpus: 1,
            gpus_per_node: 1,
            requests,
            works,
            events: 0,
            decisions: DecisionTimes::default(),
        }
    }

    fn work(id: u64, start_ms: u64, end_ms: u64, steps: u32) -> WorkRecord {
        WorkRecord {
            requests: vec![id],
            resolution: Resolution::square(256),
            gpus: GpuSet::new(0, 1),
            start: ms(start_ms),
            end: ms(end_ms),
            steps,
            first_step: 0,
            remap: false,
            works: 1,
        }
    }

    #[test]
    fn errors_verdicts_and_overheads_by_hand() {
        // Real latencies 1.0, 2.0, 4.0 s; simulated 1.1, 2.0, 3.0 s: errors 10%, 0%, 25%.
        // Deadlines 1.05, 3, 3.5: verdicts (met/missed) real M M X, sim X M M -> 1 of 3 agree.
        let real = run(
            vec![
                request(0, 1000, 1050, true),
                request(1, 2000, 3000, true),
                request(2, 4000, 3500, true),
            ],
            vec![
                work(0, 0, 1000, 4),
                work(1, 1000, 2000, 4),
                work(2, 2000, 4000, 8),
            ],
        );
        let sim = run(
            vec![
                request(0, 1100, 1050, true),
                request(1, 2000, 3000, true),
                request(2, 3000, 3500, true),
            ],
            vec![],
        );
        // Profiled steps of 200 ms: works of 4 steps model 800 ms (measured 1000, 1000), of
        // 8 steps 1600 ms (measured 2000): 200, 200, 400 ms extra over 3200 ms modelled.
        let v = compare(&real, &sim, |_, _, _| Some(200.0)).unwrap();
        assert!((v.mean_error - (0.10 + 0.0 + 0.25) / 3.0).abs() < 1e-9);
        assert!((v.max_error - 0.25).abs() < 1e-9);
        assert!((v.p90_error - 0.25).abs() < 1e-9, "p90 of 3 is the largest");
        assert!((v.mean_abs_error_s - (0.1 + 0.0 + 1.0) / 3.0).abs() < 1e-9);
        assert!((v.same_verdict - 1.0 / 3.0).abs() < 1e-9);
        assert!((v.real_attainment - 2.0 / 3.0).abs() < 1e-9);
        assert!((v.sim_attainment - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(v.overheads.len(), 1);
        assert!((v.overheads[0].mean_ms - 800.0 / 3.0).abs() < 1e-6);
        assert!((v.overheads[0].fraction - 800.0 / 3200.0).abs() < 1e-9);
        assert!((v.mean_overhead_ms().unwrap() - 800.0 / 3.0).abs() < 1e-6);
        assert!((v.real_makespan_s - 4.0).abs() < 1e-9);
        assert!(!v.meets_targets());
        let md = v.to_markdown();
        assert!(
            md.contains("NOT met") && md.contains("| 256x256 | 3 | 266.67 | 25.0% |"),
            "{md}"
        );
        assert_eq!(v.requests_csv().lines().count(), 4);

        // Request 2's 8 steps as a merged row of two back-to-back works: the 400 ms extra
        // are shared by two works, so 4 works average 200 ms.
        let mut merged = real.clone();
        merged.works[2].works = 2;
        let v = compare(&merged, &sim, |_, _, _| Some(200.0)).unwrap();
        assert_eq!(v.overheads[0].works, 4);
        assert!((v.overheads[0].mean_ms - 200.0).abs() < 1e-6);
        assert!((v.overheads[0].fraction - 800.0 / 3200.0).abs() < 1e-9);
        assert!((v.mean_overhead_ms().unwrap() - 200.0).abs() < 1e-6);
    }

    #[test]
    fn unfinished_requests_count_for_verdicts_only_and_mismatched_runs_are_refused() {
        let real = run(
            vec![request(0, 1000, 2000, true), request(1, 500, 2000, false)],
            vec![],
        );
        let sim = run(
            vec![request(0, 1000, 2000, true), request(1, 1500, 2000, true)],
            vec![],
        );
        let v = compare(&real, &sim, |_, _, _| None).unwrap();
        assert_eq!(v.mean_error, 0.0);
        assert_eq!(v.same_verdict, 0.5);
        assert!(v.overheads.is_empty());
        assert_eq!(v.mean_overhead_ms(), None);
        let other = run(vec![request(5, 1000, 2000, true)], vec![]);
        assert!(compare(&real, &other, |_, _, _| None).is_err());
    }
}
