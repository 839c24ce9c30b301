//! Runs a scenario: one workload, replayed under every requested policy.
//!
//! The workload is materialised once and shared, so every policy sees the identical trace
//! (common random numbers); the cost model is resolved once, up front, so that a resolution
//! the profile cannot cover is reported before anything runs.

use crate::cost::StepTimes;
use crate::engine::{self, Executor, SimExecutor};
use crate::error::{Error, Result};
use crate::metrics::{RunRecords, Summary};
use crate::policy;
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
/// the requests, computed for every run).
pub fn attainment_bound(scenario: &Scenario, workload: &Workload, costs: &StepTimes) -> f64 {
    crate::bound::upper_bound(
        workload,
        costs,
        scenario.cluster.total_gpus(),
        scenario.cluster.max_degree(),
    )
    .attainment()
}

/// Runs every policy of the scenario on its workload, in simulation.
pub fn simulate(scenario: &Scenario) -> Result<Vec<PolicyRun>> {
    let workload = scenario.load_workload()?;
    let costs = resolve_costs(scenario, &workload)?;
    let mut executor = SimExecutor::new(&costs, scenario.overheads.clone());
    run_policies(scenario, &workload, &costs, &mut executor).map_err(|f| f.error)
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
    let workload = scenario.load_workload().map_err(|e| fail(e, Vec::new()))?;
    let costs = resolve_costs(scenario, &workload).map_err(|e| fail(e, Vec::new()))?;
    run_policies(scenario, &workload, &costs, executor)
}

/// The one loop of every run: per policy, a fresh policy, [`Executor::reset`], the engine.
fn run_policies(
    scenario: &Scenario,
    workload: &Workload,
    costs: &StepTimes,
    executor: &mut dyn Executor,
) -> std::result::Result<Vec<PolicyRun>, Box<RunFailure>> {
    let bound = attainment_bound(scenario, workload, costs);
    let mut runs = Vec::with_capacity(scenario.policies.len());
    for &kind in &scenario.policies {
        let mut policy =
            match policy::build(kind, &scenario.cluster, costs, &scenario.policy_config) {
                Ok(p) => p,
                Err(e) => return Err(fail(e, runs)),
            };
        // Batch sizes the policy may dispatch: only TetriServe batches, and only when asked.
        let batches: &[u32] = match kind {
            policy::PolicyKind::Tetriserve(_) if scenario.policy_config.tetriserve.batching => {
                costs.batches()
            }
            _ => &[1],
        };
        if let Err(e) = executor.reset(workload, batches) {
            return Err(fail(e, runs));
        }
        let summarise = |records: RunRecords, executor: &dyn Executor| {
            let mut summary = Summary::of(&records);
            summary.slo_attainment_bound = Some(bound);
            summary.executor = executor.describe();
            PolicyRun { records, summary }
        };
        match engine::run(
            workload,
            &scenario.cluster,
            costs,
            policy.as_mut(),
            executor,
        ) {
            Ok(records) => runs.push(summarise(records, executor)),
            Err(Error::Interrupted {
                cause,
                partial,
                finished,
            }) => {
                runs.push(summarise((*partial).clone(), executor));
                return Err(fail(
                    Error::Interrupted {
                        cause,
                        partial,
                        finished,
                    },
                    runs,
                ));
            }
            Err(e) => return Err(fail(e, runs)),
        }
    }
    Ok(runs)
}
