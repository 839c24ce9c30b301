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
    /// Each further real run of the same trace against the first: the noise floor.
    pub floor: Vec<Validation>,
    /// The simulation's error split by cause, from replays of the real run's decisions.
    pub split: Option<crate::replay::Split>,
    /// Sequence-parallel exchanges of the real run, measured against the profile.
    pub exchanges: Vec<Exchange>,
    /// Every run's files, under `real/`, `sim/` and `sim-no-overhead/` (and `real-2/`, ...,
    /// `replay-measured/`, ...).
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// The real executor's description.
    pub executor: String,
}

/// The mean latency error of the floor's comparisons (`None` with one real run).
pub fn floor_error(floor: &[Validation]) -> Option<f64> {
    (!floor.is_empty())
        .then(|| floor.iter().map(|v| v.mean_error).sum::<f64>() / floor.len() as f64)
}

/// Whether the simulation is as close to the real run as a second real run is: its mean
/// latency error at most 1.25 times the floor's.
pub fn within_floor(validation: &Validation, floor: &[Validation]) -> Option<bool> {
    floor_error(floor).map(|f| validation.mean_error <= 1.25 * f)
}

/// Runs `scenario`'s first policy on `executor` `runs` times (the real node, which the
/// scenario's profile and per-work overhead describe), then simulates the same scenario, so
/// that both runs plan identically, and once more without the per-work overhead; compares
/// each simulation with the first real run, and every other real run with the first (the
/// noise floor). The first real run's decisions are then replayed in simulation
/// ([`crate::replay`]) to split the error by cause.
pub fn study(
    scenario: &Scenario,
    executor: &mut dyn Executor,
    runs: usize,
) -> Result<FidelityStudy> {
    let mut reals = Vec::new();
    let mut steps_time = Vec::new();
    let mut exchange_time = Vec::new();
    for _ in 0..runs.max(1) {
        let run = crate::simulate::run_with(scenario, executor)
            .map_err(|f| f.error)?
            .remove(0);
        if reals.is_empty() {
            let id = |i: usize| crate::engine::WorkId(i as u32);
            steps_time = (0..run.records.works.len())
                .map(|i| executor.steps_time(id(i)))
                .collect();
            exchange_time = (0..run.records.works.len())
                .map(|i| executor.exchange_time(id(i)))
                .collect();
        }
        reals.push(run);
    }
    let real = reals.remove(0);
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
    let profile = match &scenario.cost {
        crate::scenario::CostSource::Profile(p) => Some(p),
        crate::scenario::CostSource::Analytic(_) => None,
    };
    let lookup = |res, k, b| step_ms(profile, res, k, b);
    // The replays, where every step of the real run was timed.
    let mut replays = Vec::new();
    let mut split = None;
    if steps_time.iter().all(Option::is_some) && !real.records.works.is_empty() {
        use crate::replay::{Durations, Schedule};
        let workload = planned.load_workload()?;
        let costs = crate::simulate::resolve_costs(&planned, &workload)?;
        let schedule = Schedule::of(&real.records, &workload, steps_time)?;
        let run = |d| schedule.replay(&workload, &planned.cluster, &costs, planned.overheads(), d);
        let measured = run(Durations::Measured)?;
        let steps = run(Durations::ModelledSteps)?;
        let modelled = run(Durations::Modelled)?;
        let mut sp =
            crate::replay::split(&real.records, &measured, &steps, &modelled, &sim.records);
        let (lag_ms, outside_ms) = schedule.per_work_ms();
        sp.per_work = outside_ms.map(|outside_ms| crate::replay::PerWork {
            works: real.records.works.len(),
            lag_ms,
            outside_ms,
            charged_ms: planned.overheads().dispatch.0 as f64 / 1e6,
        });
        split = Some(sp);
        replays = vec![
            ("replay-measured", measured),
            ("replay-modelled-steps", steps),
            ("replay-modelled", modelled),
        ];
    }
    let mut files = Vec::new();
    let named: Vec<(String, &RunRecords, Option<&crate::metrics::Summary>)> = [
        ("real".to_string(), &real.records, Some(&real.summary)),
        ("sim".to_string(), &sim.records, Some(&sim.summary)),
        (
            "sim-no-overhead".to_string(),
            &sim_bare.records,
            Some(&sim_bare.summary),
        ),
    ]
    .into_iter()
    .chain(
        reals
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("real-{}", i + 2), &r.records, Some(&r.summary))),
    )
    .chain(replays.iter().map(|(n, r)| (n.to_string(), r, None)))
    .collect();
    for (name, records, summary) in named {
        let summary = match summary {
            Some(s) => s.clone(),
            None => crate::metrics::Summary::of(records),
        };
        for (file, bytes) in
            crate::report::run_files(records, &summary, None, crate::report::WorkRows::Each)
        {
            files.push((PathBuf::from(&name).join(file), bytes));
        }
    }
    let floor = reals
        .iter()
        .map(|r| compare(&real.records, &r.records, lookup))
        .collect::<Result<Vec<_>>>()?;
    Ok(FidelityStudy {
        validation: compare(&real.records, &sim.records, lookup)?,
        without_overhead: compare(&real.records, &sim_bare.records, lookup)?,
        floor,
        split,
        exchanges: exchanges(&real.records, &exchange_time, lookup),
        files,
        executor: real.summary.executor.clone().unwrap_or_else(|| "?".into()),
    })
}

/// Per (resolution, degree > 1): the Ulysses exchanges of the real run's works.
#[derive(Clone, Debug, PartialEq)]
pub struct Exchange {
    pub resolution: Resolution,
    pub degree: u32,
    pub steps: u64,
    /// Measured: one rank's time in the exchanges (waiting for its peers included), per step.
    pub measured_ms: f64,
    /// Modelled: what the profile charges an SP-k step beyond an even share of the SP1 step,
    /// `T(k) - T(1) / k` (exchanges and everything else that does not split).
    pub modelled_ms: Option<f64>,
}

/// The exchanges of `real`'s works at degree > 1 whose exchange time was measured.
pub fn exchanges(
    real: &RunRecords,
    exchange_time: &[Option<Nanos>],
    step_ms: impl Fn(Resolution, u32, u32) -> Option<f64>,
) -> Vec<Exchange> {
    let mut rows: Vec<Exchange> = Vec::new();
    let mut spent: Vec<f64> = Vec::new();
    for (w, t) in real.works.iter().zip(exchange_time) {
        let (Some(t), k) = (t, w.gpus.len()) else {
            continue;
        };
        if k < 2 || w.steps == 0 {
            continue;
        }
        let i = match rows
            .iter()
            .position(|r| r.resolution == w.resolution && r.degree == k)
        {
            Some(i) => i,
            None => {
                let b = w.requests.len() as u32;
                rows.push(Exchange {
                    resolution: w.resolution,
                    degree: k,
                    steps: 0,
                    measured_ms: 0.0,
                    modelled_ms: step_ms(w.resolution, k, b)
                        .zip(step_ms(w.resolution, 1, b))
                        .map(|(tk, t1)| tk - t1 / f64::from(k)),
                });
                spent.push(0.0);
                rows.len() - 1
            }
        };
        rows[i].steps += u64::from(w.steps);
        spent[i] += t.0 as f64 / 1e6;
    }
    for (r, s) in rows.iter_mut().zip(spent) {
        r.measured_ms = s / r.steps.max(1) as f64;
    }
    rows.sort_by_key(|r| (r.resolution.tokens(), r.degree));
    rows
}

impl Exchange {
    /// The modelled time for people: `-` without a profile row, and a negative value said for
    /// what it is (the profile's SP-k step is more than k times faster than its SP1 step, so
    /// the profile leaves no time for exchanges at all).
    pub fn modelled_text(&self) -> String {
        match self.modelled_ms {
            None => "-".into(),
            Some(m) if m < 0.0 => format!(
                "{m:.3} (the profile's SP{} step is more than {} times faster than SP1)",
                self.degree, self.degree
            ),
            Some(m) => format!("{m:.3}"),
        }
    }
}

/// The exchanges as Markdown.
pub fn exchanges_markdown(rows: &[Exchange]) -> String {
    let mut s = String::from(
        "| resolution | degree | steps | exchange per step, measured, ms | modelled: T(k) - T(1)/k, ms |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.3} | {} |",
            r.resolution,
            r.degree,
            r.steps,
            r.measured_ms,
            r.modelled_text()
        );
    }
    s
}

/// `validation.md`: the comparison, the noise floor (further real runs against the first),
/// the error split by cause, and the comparison without the per-work overhead when there is
/// one.
pub fn report(
    validation: &Validation,
    without_overhead: Option<&Validation>,
    floor: &[Validation],
    split: Option<&crate::replay::Split>,
    exchanges: &[Exchange],
) -> String {
    let mut text = format!(
        "## Simulated with the measured profile and per-work overhead\n\n{}",
        validation.to_markdown()
    );
    if let Some(f) = floor_error(floor) {
        let pct = |x: f64| format!("{:.1}%", 100.0 * x);
        text.push_str(&format!(
            "\n## Noise floor: the real run against itself\n\nThe same trace run again on the same node ({} more run(s)), compared with the first run as the simulation is:\n\n| | sim vs real | real vs real (mean of runs) |\n|---|---|---|\n| mean latency error | {} | {} |\n| p90 latency error | {} | {} |\n| same verdict | {} | {} |\n\nThe simulation's mean error is {:.2}x the floor: {} (the target is at most 1.25x: the simulator is then as close to the run as the run is to itself).\n",
            floor.len(),
            pct(validation.mean_error),
            pct(f),
            pct(validation.p90_error),
            pct(floor.iter().map(|v| v.p90_error).sum::<f64>() / floor.len() as f64),
            pct(validation.same_verdict),
            pct(floor.iter().map(|v| v.same_verdict).sum::<f64>() / floor.len() as f64),
            validation.mean_error / f,
            if within_floor(validation, floor) == Some(true) {
                "within the floor"
            } else {
                "NOT within the floor"
            }
        ));
    }
    if let Some(sp) = split {
        text.push_str(&format!(
            "\n## The error split by cause\n\nThe real run's own decisions replayed in simulation: with its measured durations (reproduces it), with profiled step times (service time), with the simulator's per-work costs and no decision lag (per-work overhead); then the simulation with the policy deciding (schedule divergence). Per resolution and the degrees its requests ran at in the real run:\n\n{}",
            sp.to_markdown()
        ));
    }
    if !exchanges.is_empty() {
        text.push_str(&format!(
            "\n## Ulysses exchanges on real ranks\n\nRank 0's time in the all-to-alls per step (waiting for its peers included), against what the profile charges an SP-k step beyond an even share of the SP1 step:\n\n{}",
            exchanges_markdown(exchanges)
        ));
    }
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
            timers: Vec::new(),
            stages: None,
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
    #[test]
    fn the_verdict_is_judged_against_the_noise_floor() {
        // Real latencies 1.0 and 2.0 s; a second real run 1.1 and 2.0 (floor: 5%); a
        // simulation 1.06 and 2.0 (3%, within the floor) or 1.2 and 2.0 (10%, 2x the floor).
        let at = |a: u64, b: u64| {
            run(
                vec![request(0, a, 5000, true), request(1, b, 5000, true)],
                vec![],
            )
        };
        let real = at(1000, 2000);
        let floor = vec![compare(&real, &at(1100, 2000), |_, _, _| None).unwrap()];
        assert!((floor_error(&floor).unwrap() - 0.05).abs() < 1e-9);
        let close = compare(&real, &at(1060, 2000), |_, _, _| None).unwrap();
        let far = compare(&real, &at(1200, 2000), |_, _, _| None).unwrap();
        assert_eq!(within_floor(&close, &floor), Some(true));
        assert_eq!(within_floor(&far, &floor), Some(false));
        assert_eq!(within_floor(&far, &[]), None);
        let text = report(&far, None, &floor, None, &[]);
        assert!(
            text.contains("2.00x the floor: NOT within the floor"),
            "{text}"
        );
        assert!(
            text.contains("| mean latency error | 10.0% | 5.0% |"),
            "{text}"
        );
    }

    #[test]
    fn exchanges_are_per_step_and_set_against_the_profile() {
        // Two SP2 works of 4 and 2 steps with 8 and 4 ms in exchanges: 2 ms per step. The
        // profile: 10 ms at SP1, 6 ms at SP2: it charges 6 - 10/2 = 1 ms beyond an even split.
        let mut a = work(0, 0, 100, 4);
        a.gpus = GpuSet::new(0, 0b11);
        let mut b = work(0, 100, 150, 2);
        b.gpus = GpuSet::new(0, 0b11);
        let solo = work(1, 0, 50, 4);
        let real = run(vec![], vec![a, b, solo]);
        let times = [Some(ms(8)), Some(ms(4)), Some(Nanos::ZERO)];
        let rows = exchanges(&real, &times, |_, k, _| {
            Some(if k == 1 { 10.0 } else { 6.0 })
        });
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].degree, rows[0].steps), (2, 6));
        assert!((rows[0].measured_ms - 2.0).abs() < 1e-9);
        assert!((rows[0].modelled_ms.unwrap() - 1.0).abs() < 1e-9);
        assert!(exchanges_markdown(&rows).contains("| 256x256 | 2 | 6 | 2.000 | 1.000 |"));
        // A profile whose SP2 step is more than twice as fast as SP1 (4 ms against 10):
        // -1 ms, said for what it is rather than read as a negative exchange.
        let odd = exchanges(&real, &times, |_, k, _| {
            Some(if k == 1 { 10.0 } else { 4.0 })
        });
        assert_eq!(
            odd[0].modelled_text(),
            "-1.000 (the profile's SP2 step is more than 2 times faster than SP1)"
        );
    }
}
