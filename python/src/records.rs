//! A run's results for Python: every policy's records and summary, as the command line's
//! files (the same formatting functions, so the same bytes) and as columns that the
//! package turns into pandas DataFrames.

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use tetriserve::metrics::invariants::check_run;
use tetriserve::report::{self, WorkRows};
use tetriserve::scenario::Scenario;
use tetriserve::simulate::PolicyRun;

use crate::to_py;

/// The runs of one `simulate` call, in the order the policies ran.
#[pyclass(module = "tetriserve._core", frozen)]
pub struct Runs {
    runs: Vec<PolicyRun>,
    description: String,
    warnings: Vec<String>,
    /// What ran: its workload is materialised again for [`Runs::check`].
    scenario: Scenario,
}

impl Runs {
    pub fn new(runs: Vec<PolicyRun>, description: String, scenario: Scenario) -> Runs {
        Runs {
            runs,
            description,
            warnings: scenario.warnings.clone(),
            scenario,
        }
    }

    fn run(&self, policy: &str) -> PyResult<&PolicyRun> {
        self.runs
            .iter()
            .find(|r| r.summary.policy == policy)
            .ok_or_else(|| {
                PyKeyError::new_err(format!(
                    "no run of policy `{policy}`; ran: {}",
                    self.runs
                        .iter()
                        .map(|r| r.summary.policy.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

#[pymethods]
impl Runs {
    /// The policies that ran, in order.
    #[getter]
    fn policies(&self) -> Vec<String> {
        self.runs.iter().map(|r| r.summary.policy.clone()).collect()
    }

    /// What ran: the command line's description of the scenario.
    #[getter]
    fn description(&self) -> &str {
        &self.description
    }

    /// What the command line warns about before the run.
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    /// The upper bound on SLO attainment for the workload (any policy).
    #[getter]
    fn bound(&self) -> Option<f64> {
        self.runs
            .first()
            .and_then(|r| r.summary.slo_attainment_bound)
    }

    /// Checks every run's records against the library's invariants (no GPU double-booked,
    /// steps in order, verdicts consistent, ...): `{policy: [violation, ...]}`, empty lists
    /// when all hold.
    fn check(&self) -> PyResult<Vec<(String, Vec<String>)>> {
        let workload = self.scenario.load_workload().map_err(to_py)?;
        Ok(self
            .runs
            .iter()
            .map(|r| {
                (
                    r.summary.policy.clone(),
                    check_run(&r.records, &workload, None),
                )
            })
            .collect())
    }

    /// `policy`'s summary.json, as the command line writes it.
    fn summary_json(&self, policy: &str) -> PyResult<String> {
        Ok(report::summary_json(&self.run(policy)?.summary))
    }

    /// `policy`'s requests.csv, byte for byte as `simulate --out` writes it.
    fn requests_csv(&self, policy: &str) -> PyResult<String> {
        Ok(report::requests_csv(&self.run(policy)?.records))
    }

    /// `policy`'s works.csv as `simulate --out` writes it (merged rows, or one row per work
    /// when `each`).
    #[pyo3(signature = (policy, each=false))]
    fn works_csv(&self, policy: &str, each: bool) -> PyResult<String> {
        let rows = if each {
            WorkRows::Each
        } else {
            WorkRows::default()
        };
        Ok(report::works_csv(&self.run(policy)?.records, rows))
    }

    /// comparison.csv: one row per policy.
    fn comparison_csv(&self) -> String {
        let summaries: Vec<_> = self.runs.iter().map(|r| r.summary.clone()).collect();
        report::comparison_csv(&summaries)
    }

    /// Every policy's requests as columns (name -> list), one row per request per policy.
    /// Times are integer nanoseconds; `start_ns`, `node` and `prompt_id` may be None.
    fn request_columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let n: usize = self.runs.iter().map(|r| r.records.requests.len()).sum();
        let mut policy = Vec::with_capacity(n);
        let mut id = Vec::with_capacity(n);
        let mut arrival = Vec::with_capacity(n);
        let mut width = Vec::with_capacity(n);
        let mut height = Vec::with_capacity(n);
        let mut steps = Vec::with_capacity(n);
        let mut steps_done = Vec::with_capacity(n);
        let mut deadline = Vec::with_capacity(n);
        let mut start = Vec::with_capacity(n);
        let mut end = Vec::with_capacity(n);
        let mut outcome = Vec::with_capacity(n);
        let mut gpu = Vec::with_capacity(n);
        let mut degrees = Vec::with_capacity(n);
        let mut remaps = Vec::with_capacity(n);
        let mut node = Vec::with_capacity(n);
        let mut prompt = Vec::with_capacity(n);
        let mut hit = Vec::with_capacity(n);
        let mut cached = Vec::with_capacity(n);
        let mut skipped = Vec::with_capacity(n);
        for run in &self.runs {
            for r in &run.records.requests {
                policy.push(run.summary.policy.as_str());
                id.push(r.id);
                arrival.push(r.arrival.0);
                width.push(r.resolution.width);
                height.push(r.resolution.height);
                steps.push(r.steps);
                steps_done.push(r.steps_done);
                deadline.push(r.deadline.0);
                start.push(r.start.map(|t| t.0));
                end.push(r.end.0);
                outcome.push(r.outcome.as_str());
                gpu.push(r.gpu_time.0);
                degrees.push(r.degrees_used);
                remaps.push(r.remaps);
                node.push(r.node);
                prompt.push(r.saved.prompt);
                hit.push(r.saved.cache_hit);
                cached.push(r.saved.cached_steps);
                skipped.push(r.saved.skipped_steps);
            }
        }
        let d = PyDict::new(py);
        d.set_item("policy", policy)?;
        d.set_item("id", id)?;
        d.set_item("arrival_ns", arrival)?;
        d.set_item("width", width)?;
        d.set_item("height", height)?;
        d.set_item("steps", steps)?;
        d.set_item("steps_done", steps_done)?;
        d.set_item("deadline_ns", deadline)?;
        d.set_item("start_ns", start)?;
        d.set_item("finish_ns", end)?;
        d.set_item("outcome", outcome)?;
        d.set_item("gpu_ns", gpu)?;
        d.set_item("degrees", degrees)?;
        d.set_item("remaps", remaps)?;
        d.set_item("node", node)?;
        d.set_item("prompt_id", prompt)?;
        d.set_item("cache_hit", hit)?;
        d.set_item("cached_steps", cached)?;
        d.set_item("skipped_steps", skipped)?;
        Ok(d)
    }

    /// Every policy's works as columns, one row per dispatched work, in dispatch order.
    /// `requests` holds each work's request ids (trace ids); `gpus` the global GPU indices.
    fn work_columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let n: usize = self.runs.iter().map(|r| r.records.works.len()).sum();
        let mut policy = Vec::with_capacity(n);
        let mut requests = Vec::with_capacity(n);
        let mut width = Vec::with_capacity(n);
        let mut height = Vec::with_capacity(n);
        let mut node = Vec::with_capacity(n);
        let mut gpus = Vec::with_capacity(n);
        let mut degree = Vec::with_capacity(n);
        let mut start = Vec::with_capacity(n);
        let mut end = Vec::with_capacity(n);
        let mut first_step = Vec::with_capacity(n);
        let mut steps = Vec::with_capacity(n);
        let mut remap = Vec::with_capacity(n);
        for run in &self.runs {
            let per_node = run.records.gpus_per_node;
            for w in &run.records.works {
                policy.push(run.summary.policy.as_str());
                requests.push(w.requests.clone());
                width.push(w.resolution.width);
                height.push(w.resolution.height);
                node.push(w.gpus.node());
                gpus.push(w.gpus.global_gpus(per_node).collect::<Vec<u32>>());
                degree.push(w.gpus.len());
                start.push(w.start.0);
                end.push(w.end.0);
                first_step.push(w.first_step);
                steps.push(w.steps);
                remap.push(w.remap);
            }
        }
        let d = PyDict::new(py);
        d.set_item("policy", policy)?;
        d.set_item("requests", requests)?;
        d.set_item("width", width)?;
        d.set_item("height", height)?;
        d.set_item("node", node)?;
        d.set_item("gpus", gpus)?;
        d.set_item("degree", degree)?;
        d.set_item("start_ns", start)?;
        d.set_item("end_ns", end)?;
        d.set_item("first_step", first_step)?;
        d.set_item("steps", steps)?;
        d.set_item("remap", remap)?;
        Ok(d)
    }
}
