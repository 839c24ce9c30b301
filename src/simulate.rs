//! Runs a scenario: one workload, replayed under every requested policy.
//!
//! The workload is materialised once and shared, so every policy sees the identical trace
//! (common random numbers); the cost model is resolved once, up front, so that a resolution
//! the profile cannot cover is reported before anything runs.

use crate::cluster::Cluster;
use crate::cost::StepTimes;
use crate::engine::{self, Executor, SimExecutor};
use crate::error::{Error, Result};
use crate::metrics::{RecordSink, RunRecords, Summary, WorkRecord, WorkTotals};
use crate::policy::{self, Policy, PolicyKind};
use crate::report::{RunProgress, RunWriter, Staging, TimelineLimit, WorkRows};
use crate::scenario::{Scenario, WorkloadSource};
use crate::workload::{Resolution, Workload};

/// The outcome of one policy on the scenario's workload.
pub struct PolicyRun {
    pub records: RunRecords,
    pub summary: Summary,
}

/// The service's menu of resolutions: the scenario's SLO-base resolutions that the cost model
/// covers (the workload's own, if it covers none). What an online scheduler may know ahead of
/// the requests.
pub fn menu(scenario: &Scenario, workload: &Workload) -> Vec<Resolution> {
    let model = scenario.cost_model();
    let menu: Vec<Resolution> = scenario
        .policy_config
        .slo_bases
        .iter()
        .map(|(r, _)| r)
        .filter(|&r| StepTimes::resolve(model, &[r], &scenario.cluster, &[1]).is_ok())
        .collect();
    if menu.is_empty() {
        workload.resolutions()
    } else {
        menu
    }
}

/// Resolves the scenario's cost model for its menu and `workload`, naming the first request of
/// a resolution the model cannot cover.
pub fn resolve_costs(scenario: &Scenario, workload: &Workload) -> Result<StepTimes> {
    let model = scenario.cost_model();
    for res in workload.resolutions() {
        if let Err(e) = StepTimes::resolve(model, &[res], &scenario.cluster, &[1]) {
            let first = workload
                .requests
                .iter()
                .find(|r| r.resolution == res)
                .expect("resolution from the workload");
            let origin = match &scenario.workload {
                WorkloadSource::Trace { path, .. } => {
                    format!("trace {}: request id {}", path.display(), first.label)
                }
                WorkloadSource::Synthetic(_) => "workload mix".to_string(),
            };
            return Err(Error::Cost(format!(
                "{origin} asks for {res}, which the cost model cannot cover: {e}"
            )));
        }
    }
    StepTimes::resolve_menu(
        model,
        &menu(scenario, workload),
        &workload.resolutions(),
        &scenario.cluster,
        &[1, 2, 4],
    )
}

/// The upper bound on attainment for the scenario's workload ([`crate::bound`]; near-linear in
/// the requests, computed for every run). With run-time step skipping it is computed on the
/// steps that will really compute ([`Workload::with_realised_steps`]): the bound is offline
/// and may know them.
pub fn attainment_bound(scenario: &Scenario, workload: &Workload, costs: &StepTimes) -> f64 {
    crate::bound::upper_bound(
        &workload.with_realised_steps(),
        costs,
        scenario.cluster.total_gpus(),
        scenario.cluster.max_degree(),
    )
    .attainment()
}

/// Runs every policy of the scenario on its workload, in simulation, keeping every record.
pub fn simulate(scenario: &Scenario) -> Result<Vec<PolicyRun>> {
    let mut runs = Collect::default();
    simulate_into(scenario, &mut runs)?;
    Ok(runs.runs)
}

/// Runs every policy of the scenario on its workload, in simulation, handing each run's
/// records to `outputs` as they are produced.
pub fn simulate_into<O: Outputs>(scenario: &Scenario, outputs: &mut O) -> Result<()> {
    let workload = scenario.load_workload()?;
    let costs = resolve_costs(scenario, &workload)?;
    let mut executor = SimExecutor::new(&costs, scenario.overheads().clone());
    run_policies(scenario, &workload, &costs, &mut executor, outputs)
}

/// The summaries of every policy of the scenario on `workload` in place of the scenario's own
/// (a log rescaled in memory, say), in simulation; works are counted, not kept. What capacity
/// planning (`crate::goodput`) runs at each point of its searches.
pub fn summarise_workload(scenario: &Scenario, workload: &Workload) -> Result<Vec<Summary>> {
    let mut outputs = Streamed::new(None, None, false);
    simulate_workload_into(scenario, workload, &mut outputs)?;
    outputs.commit()
}

/// Runs every policy of the scenario on `workload` in place of the scenario's own, in
/// simulation, handing each run's records to `outputs`; the step times resolved for it come
/// back. What the optimum study (`crate::optimum`) runs on the whole workload and on each
/// window.
pub fn simulate_workload_into<O: Outputs>(
    scenario: &Scenario,
    workload: &Workload,
    outputs: &mut O,
) -> Result<StepTimes> {
    let costs = resolve_costs(scenario, workload)?;
    let mut executor = SimExecutor::new(&costs, scenario.overheads().clone());
    run_policies(scenario, workload, &costs, &mut executor, outputs)?;
    Ok(costs)
}

/// Where the records of each policy's run go: a sink for its works while it runs, then the
/// run's request records and summary when it is over.
pub trait Outputs {
    type Sink: RecordSink;

    /// A sink for the works of `policy`'s run on `cluster`.
    fn open(&mut self, policy: &str, cluster: &Cluster) -> Result<Self::Sink>;

    /// The run is over (or was interrupted): its sink back, and its records, whose works went
    /// to the sink.
    fn close(&mut self, sink: Self::Sink, run: PolicyRun) -> Result<()>;
}

/// [`Outputs`] that keep everything in memory: each run with its works.
#[derive(Default)]
pub struct Collect {
    pub runs: Vec<PolicyRun>,
}

impl Outputs for Collect {
    type Sink = Vec<WorkRecord>;

    fn open(&mut self, _policy: &str, _cluster: &Cluster) -> Result<Vec<WorkRecord>> {
        Ok(Vec::new())
    }

    fn close(&mut self, works: Vec<WorkRecord>, mut run: PolicyRun) -> Result<()> {
        run.records.works = works;
        self.runs.push(run);
        Ok(())
    }
}

/// [`Outputs`] for the command line: each run's files streamed into an output directory being
/// staged (if any), a progress bar on stderr for long runs, and the summaries kept.
pub struct Streamed {
    staging: Option<Staging>,
    timeline: Option<TimelineLimit>,
    rows: WorkRows,
    progress: bool,
    pub summaries: Vec<Summary>,
}

/// A [`Streamed`] run's sink.
pub struct StreamedSink {
    writer: Option<RunWriter>,
    progress: RunProgress,
}

impl RecordSink for StreamedSink {
    fn work(&mut self, work: &WorkRecord) -> Result<()> {
        match &mut self.writer {
            Some(w) => w.work(work),
            None => Ok(()),
        }
    }

    fn progress(&mut self, progress: &crate::metrics::Progress) {
        self.progress.update(progress);
    }
}

impl Streamed {
    /// Runs whose files go under `staging` (`DIR/<policy>/`), with timelines of at most
    /// `timeline` rows (none if `None`), works merged into rows (see [`Streamed::work_rows`]);
    /// `progress` allows the progress bar.
    pub fn new(staging: Option<Staging>, timeline: Option<TimelineLimit>, progress: bool) -> Self {
        Streamed {
            staging,
            timeline,
            rows: WorkRows::default(),
            progress,
            summaries: Vec::new(),
        }
    }

    /// How `works.csv` and `timeline.json` lay out the works: merged runs of works (the
    /// default) or one row per work.
    pub fn work_rows(mut self, rows: WorkRows) -> Self {
        self.rows = rows;
        self
    }

    /// Writes `comparison.csv` and puts the directory in place; the summaries come back.
    pub fn commit(self) -> Result<Vec<Summary>> {
        if let Some(staging) = self.staging {
            staging.write(
                "comparison.csv",
                crate::report::comparison_csv(&self.summaries).as_bytes(),
            )?;
            staging.commit()?;
        }
        Ok(self.summaries)
    }
}

impl Outputs for Streamed {
    type Sink = StreamedSink;

    fn open(&mut self, policy: &str, cluster: &Cluster) -> Result<StreamedSink> {
        let writer = match &self.staging {
            Some(s) => Some(RunWriter::create(
                &s.path(policy),
                policy,
                cluster.total_gpus(),
                cluster.gpus_per_node,
                self.timeline,
                self.rows,
            )?),
            None => None,
        };
        Ok(StreamedSink {
            writer,
            progress: RunProgress::new(policy, self.progress),
        })
    }

    fn close(&mut self, sink: StreamedSink, run: PolicyRun) -> Result<()> {
        sink.progress.finish();
        if let Some(w) = sink.writer
            && let Some(shown) = w.finish(&run.records, &run.summary)?
            && shown.is_cut()
        {
            eprintln!(
                "{}: timeline.json shows the first {} of {} rows of works.csv, {} of {} works (pass --timeline-works all for every row)",
                run.summary.policy, shown.rows, shown.rows_seen, shown.works, shown.works_seen
            );
        }
        self.summaries.push(run.summary);
        Ok(())
    }
}

/// Counts what the summary needs of each work on its way to the sink.
struct Tally<'a, S> {
    sink: &'a mut S,
    totals: WorkTotals,
}

impl<S: RecordSink> RecordSink for Tally<'_, S> {
    fn work(&mut self, work: &WorkRecord) -> Result<()> {
        self.totals.add(work);
        self.sink.work(work)
    }

    fn progress(&mut self, progress: &crate::metrics::Progress) {
        self.sink.progress(progress);
    }
}

/// A run that failed: the error and every run so far.
pub struct RunFailure {
    pub error: Error,
    pub runs: Vec<PolicyRun>,
}

fn fail(error: Error, runs: Vec<PolicyRun>) -> Box<RunFailure> {
    Box::new(RunFailure { error, runs })
}

/// Runs every policy of the scenario on its workload with `executor` (a hardware executor:
/// the same engine and policies, the clock and the completions are the executor's).
///
/// If the executor fails mid-run, the error comes back with every run so far, the failed one
/// holding what had finished, so that the caller can still write them.
pub fn run_with(
    scenario: &Scenario,
    executor: &mut dyn Executor,
) -> std::result::Result<Vec<PolicyRun>, Box<RunFailure>> {
    let mut runs = Collect::default();
    let result = scenario.load_workload().and_then(|workload| {
        let costs = resolve_costs(scenario, &workload)?;
        run_policies(scenario, &workload, &costs, executor, &mut runs)
    });
    match result {
        Ok(()) => Ok(runs.runs),
        Err(e) => Err(fail(e, runs.runs)),
    }
}

/// A policy to run: one the registry builds, or one built outside the library (a language
/// binding's policy, say) that the same engine, checks and bound run like any other.
pub enum Contender {
    Registered(PolicyKind),
    /// A policy built by the caller; `batches`: whether it may dispatch batches (the executor
    /// then prepares every batch size when the scenario turns batching on).
    Built {
        policy: Box<dyn Policy>,
        batches: bool,
    },
}

/// Runs `contenders` (in place of the scenario's own policies) on the scenario's workload, in
/// simulation, handing each run's records to `outputs`: what a binding runs when some
/// policies are its own.
pub fn simulate_contenders<O: Outputs>(
    scenario: &Scenario,
    contenders: Vec<Contender>,
    outputs: &mut O,
) -> Result<()> {
    let workload = scenario.load_workload()?;
    let costs = resolve_costs(scenario, &workload)?;
    let mut executor = SimExecutor::new(&costs, scenario.overheads().clone());
    let staged = Staged::new(scenario, &workload)?;
    let bound = attainment_bound(scenario, staged.workload(), &costs);
    for contender in contenders {
        let (mut policy, batches) = match contender {
            Contender::Registered(kind) => (
                policy::build(kind, &scenario.cluster, &costs, &scenario.policy_config)?,
                kind.batches(),
            ),
            Contender::Built { policy, batches } => (policy, batches),
        };
        let batches = batch_sizes(scenario, &costs, batches);
        run_one(
            scenario,
            &staged,
            &costs,
            &mut executor,
            outputs,
            policy.as_mut(),
            batches,
            bound,
        )?;
    }
    Ok(())
}

/// Batch sizes a policy may dispatch: only a policy that batches, and only when asked.
fn batch_sizes<'a>(scenario: &Scenario, costs: &'a StepTimes, batches: bool) -> &'a [u32] {
    if batches && scenario.policy_config.tetriserve.batching {
        costs.batches()
    } else {
        &[1]
    }
}

/// The one loop of every run: per policy, a fresh policy, [`Executor::reset`], the engine.
/// An interrupted run is closed with the records so far before the error returns.
fn run_policies<O: Outputs>(
    scenario: &Scenario,
    workload: &Workload,
    costs: &StepTimes,
    executor: &mut dyn Executor,
    outputs: &mut O,
) -> Result<()> {
    let staged = Staged::new(scenario, workload)?;
    let bound = attainment_bound(scenario, staged.workload(), costs);
    for &kind in &scenario.policies {
        let mut policy = policy::build(kind, &scenario.cluster, costs, &scenario.policy_config)?;
        // Batch sizes the policy may dispatch: only a policy the registry says batches, and
        // only when asked.
        let batches = batch_sizes(scenario, costs, kind.batches());
        run_one(
            scenario,
            &staged,
            costs,
            executor,
            outputs,
            policy.as_mut(),
            batches,
            bound,
        )?;
    }
    Ok(())
}

/// The workload as the denoising GPUs see it: the scenario's own with co-located stages; with
/// disaggregated ones, each request arriving when its embedding is ready and due at its stage
/// deadline ([`crate::stages`]), and what the decode pass needs after each run.
struct Staged<'a> {
    workload: &'a Workload,
    encoded: Option<(&'a crate::stages::Pools, crate::stages::Encoded)>,
}

impl<'a> Staged<'a> {
    fn new(scenario: &'a Scenario, workload: &'a Workload) -> Result<Staged<'a>> {
        let encoded = match scenario.stages.pools() {
            None => {
                crate::stages::refuse_stage_times(workload)?;
                None
            }
            Some(pools) => Some((pools, crate::stages::encode(workload, pools)?)),
        };
        Ok(Staged { workload, encoded })
    }

    /// What the policies and the bound see.
    fn workload(&self) -> &Workload {
        match &self.encoded {
            None => self.workload,
            Some((_, e)) => &e.workload,
        }
    }

    /// Turns a run's records on [`Staged::workload`] into end-to-end records of the scenario's
    /// workload (the decode pass; nothing with co-located stages).
    fn finish(&self, records: &mut RunRecords) -> Result<()> {
        match &self.encoded {
            None => Ok(()),
            Some((pools, e)) => crate::stages::decode(records, self.workload, pools, e),
        }
    }
}

/// One policy's run: [`Executor::reset`], the engine, the summary (with the workload's
/// `bound`) handed to `outputs`.
#[allow(clippy::too_many_arguments)]
fn run_one<O: Outputs>(
    scenario: &Scenario,
    staged: &Staged,
    costs: &StepTimes,
    executor: &mut dyn Executor,
    outputs: &mut O,
    policy: &mut dyn Policy,
    batches: &[u32],
    bound: f64,
) -> Result<()> {
    let workload = staged.workload();
    executor.reset(workload, batches)?;
    let mut sink = outputs.open(policy.name(), &scenario.cluster)?;
    let mut tally = Tally {
        sink: &mut sink,
        totals: WorkTotals::default(),
    };
    let result = engine::run_streamed(
        workload,
        &scenario.cluster,
        costs,
        policy,
        executor,
        &mut tally,
    );
    let totals = tally.totals;
    let summarise = |mut records: RunRecords, executor: &dyn Executor| {
        staged.finish(&mut records)?;
        let mut summary = Summary::with_totals(&records, &totals);
        summary.slo_attainment_bound = Some(bound);
        summary.price(&scenario.cluster.operating);
        if let Some(pools) = scenario.stages.pools() {
            summary.price_pools(&pools.encode.operating, &pools.decode.operating);
        }
        summary.executor = executor.describe();
        Ok::<_, Error>(PolicyRun { records, summary })
    };
    match result {
        Ok(records) => outputs.close(sink, summarise(records, executor)?),
        Err(Error::Interrupted {
            cause,
            partial,
            finished,
        }) => {
            outputs.close(sink, summarise((*partial).clone(), executor)?)?;
            Err(Error::Interrupted {
                cause,
                partial,
                finished,
            })
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::FixedSp;
    use crate::scenario::Overrides;

    #[test]
    fn a_policy_built_outside_runs_exactly_as_its_registered_twin() {
        let o = Overrides {
            requests: Some(40),
            rate_per_min: Some(30.0),
            ..Overrides::default()
        };
        let scenario = Scenario::load(None, &o).unwrap();
        let twin = FixedSp::new(4, &scenario.cluster);
        let mut out = Collect::default();
        simulate_contenders(
            &scenario,
            vec![
                Contender::Registered(PolicyKind::XditSp(4)),
                Contender::Built {
                    policy: Box::new(twin),
                    batches: false,
                },
            ],
            &mut out,
        )
        .unwrap();
        let [a, b] = &out.runs[..] else {
            panic!("two runs expected, got {}", out.runs.len())
        };
        assert_eq!(a.records.requests.len(), 40);
        assert!(!a.records.works.is_empty());
        assert_eq!(a.records.requests, b.records.requests);
        assert_eq!(a.records.works, b.records.works);
        assert!(a.summary.slo_attainment_bound.is_some());
        assert_eq!(
            a.summary.slo_attainment_bound,
            b.summary.slo_attainment_bound
        );
        // And what `simulate` gives the scenario's own run of the same policy.
        let own = Scenario {
            policies: vec![PolicyKind::XditSp(4)],
            ..scenario.clone()
        };
        let runs = simulate(&own).unwrap();
        assert_eq!(runs[0].records.requests, a.records.requests);
        assert_eq!(runs[0].records.works, a.records.works);
    }
}
