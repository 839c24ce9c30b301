//! A run's results for Python: every policy's records and summary, as the command line's
//! files (the same formatting functions, so the same bytes) and as columns that the
//! package turns into pandas DataFrames.

use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use tetriserve::cluster::Cluster;
use tetriserve::metrics::invariants::check_run;
use tetriserve::metrics::{RecordSink, WorkRecord};
use tetriserve::report::{self, WorkRows};
use tetriserve::scenario::Scenario;
use tetriserve::simulate::{Outputs, PolicyRun};

use crate::to_py;

/// Where a binding's runs go: every run kept, with its works or (`works` false) without them,
/// counted into the summary only, as the command line does without `--out`.
pub struct Keep {
    pub works: bool,
    pub runs: Vec<PolicyRun>,
}

/// A sink that keeps the works, or drops them.
pub struct WorkSink(Option<Vec<WorkRecord>>);

impl RecordSink for WorkSink {
    fn work(&mut self, work: &WorkRecord) -> tetriserve::Result<()> {
        if let Some(v) = &mut self.0 {
            v.push(work.clone());
        }
        Ok(())
    }
}

impl Outputs for Keep {
    type Sink = WorkSink;

    fn open(&mut self, _policy: &str, _cluster: &Cluster) -> tetriserve::Result<WorkSink> {
        Ok(WorkSink(self.works.then(Vec::new)))
    }

    fn close(&mut self, sink: WorkSink, mut run: PolicyRun) -> tetriserve::Result<()> {
        run.records.works = sink.0.unwrap_or_default();
        self.runs.push(run);
        Ok(())
    }
}

/// The runs of one `simulate` call, in the order the policies ran.
#[pyclass(module = "tetriserve._core", frozen)]
pub struct Runs {
    runs: Vec<PolicyRun>,
    description: String,
    warnings: Vec<String>,
    /// What ran: its workload is materialised again for [`Runs::check`].
    scenario: Scenario,
    /// Whether the works were kept (`simulate(works=False)` drops them).
    works_kept: bool,
}

impl Runs {
    pub fn new(
        runs: Vec<PolicyRun>,
        description: String,
        scenario: Scenario,
        works_kept: bool,
    ) -> Runs {
        Runs {
            runs,
            description,
            warnings: scenario.warnings.clone(),
            scenario,
            works_kept,
        }
    }

    fn need_works(&self, what: &str) -> PyResult<()> {
        if self.works_kept {
            Ok(())
        } else {
            Err(PyValueError::new_err(format!(
                "{what} needs the works, and this run dropped them: simulate(..., works=True)"
            )))
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
        self.need_works("check()")?;
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

    /// `policy`'s stages.csv (each request's encode and decode on its pools), byte for byte as
    /// `simulate --out` writes it; `None` when the stages are co-located.
    fn stages_csv(&self, policy: &str) -> PyResult<Option<String>> {
        Ok(report::stages_csv(&self.run(policy)?.records))
    }

    /// `policy`'s requests.csv, byte for byte as `simulate --out` writes it.
    fn requests_csv(&self, policy: &str) -> PyResult<String> {
        Ok(report::requests_csv(&self.run(policy)?.records))
    }

    /// `policy`'s works.csv as `simulate --out` writes it (merged rows, or one row per work
    /// when `each`).
    #[pyo3(signature = (policy, each=false))]
    fn works_csv(&self, policy: &str, each: bool) -> PyResult<String> {
        self.need_works("works_csv()")?;
        let rows = if each {
            WorkRows::Each
        } else {
            WorkRows::default()
        };
        Ok(report::works_csv(&self.run(policy)?.records, rows))
    }

    /// Writes the directory `simulate --out DIR` writes (comparison.csv, and per policy
    /// requests.csv, works.csv, summary.json and, with `timeline`, timeline.json), atomically;
    /// an existing directory is replaced only with `force`, by the command line's rules.
    #[pyo3(signature = (out, force=false, timeline=true))]
    fn write(&self, out: std::path::PathBuf, force: bool, timeline: bool) -> PyResult<()> {
        self.need_works("write()")?;
        let limit = timeline.then_some(tetriserve::report::TimelineLimit::DEFAULT);
        tetriserve::cli::write_runs(&out, &self.runs, limit, WorkRows::default(), force, &[])
            .map_err(to_py)
    }

    /// comparison.csv: one row per policy.
    fn comparison_csv(&self) -> String {
        let summaries: Vec<_> = self.runs.iter().map(|r| r.summary.clone()).collect();
        report::comparison_csv(&summaries)
    }

    /// Every policy's requests as columns, one row per request per policy (see [`Columns`]).
    /// Times are integer nanoseconds; `start_ns`, `node` and `prompt_id` may be missing.
    fn request_columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let rows = || {
            self.runs
                .iter()
                .flat_map(|run| run.records.requests.iter().map(move |r| (run, r)))
        };
        let mut c = Columns::new(py);
        c.category("policy", rows().map(|(run, _)| run.summary.policy.as_str()))?;
        c.int("id", rows().map(|(_, r)| r.id))?;
        c.int("arrival_ns", rows().map(|(_, r)| r.arrival.0))?;
        c.int("width", rows().map(|(_, r)| r.resolution.width))?;
        c.int("height", rows().map(|(_, r)| r.resolution.height))?;
        c.int("frames", rows().map(|(_, r)| r.resolution.frames))?;
        c.int("steps", rows().map(|(_, r)| r.steps))?;
        c.int("steps_done", rows().map(|(_, r)| r.steps_done))?;
        c.int("deadline_ns", rows().map(|(_, r)| r.deadline.0))?;
        c.nullable("start_ns", rows().map(|(_, r)| r.start.map(|t| t.0)))?;
        c.int("finish_ns", rows().map(|(_, r)| r.end.0))?;
        c.category("outcome", rows().map(|(_, r)| r.outcome.as_str()))?;
        c.int("gpu_ns", rows().map(|(_, r)| r.gpu_time.0))?;
        c.int("degrees", rows().map(|(_, r)| r.degrees_used))?;
        c.int("remaps", rows().map(|(_, r)| r.remaps))?;
        c.nullable("node", rows().map(|(_, r)| r.node))?;
        c.nullable("prompt_id", rows().map(|(_, r)| r.saved.prompt))?;
        c.boolean("cache_hit", rows().map(|(_, r)| r.saved.cache_hit))?;
        c.int("cached_steps", rows().map(|(_, r)| r.saved.cached_steps))?;
        c.int("skipped_steps", rows().map(|(_, r)| r.saved.skipped_steps))?;
        Ok(c.dict)
    }

    /// Every policy's works as columns, one row per dispatched work, in dispatch order.
    /// `requests` holds each work's request ids (trace ids); `gpus` the global GPU indices.
    fn work_columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.need_works("works")?;
        let rows = || {
            self.runs
                .iter()
                .flat_map(|run| run.records.works.iter().map(move |w| (run, w)))
        };
        let mut c = Columns::new(py);
        c.category("policy", rows().map(|(run, _)| run.summary.policy.as_str()))?;
        let requests: Vec<&[u64]> = rows().map(|(_, w)| w.requests.as_slice()).collect();
        c.dict.set_item("requests", ("list", requests))?;
        c.int("width", rows().map(|(_, w)| w.resolution.width))?;
        c.int("height", rows().map(|(_, w)| w.resolution.height))?;
        c.int("frames", rows().map(|(_, w)| w.resolution.frames))?;
        c.int("node", rows().map(|(_, w)| w.gpus.node()))?;
        let gpus: Vec<Vec<u32>> = rows()
            .map(|(run, w)| w.gpus.global_gpus(run.records.gpus_per_node).collect())
            .collect();
        c.dict.set_item("gpus", ("list", gpus))?;
        c.int("degree", rows().map(|(_, w)| w.gpus.len()))?;
        c.int("start_ns", rows().map(|(_, w)| w.start.0))?;
        c.int("end_ns", rows().map(|(_, w)| w.end.0))?;
        c.int("first_step", rows().map(|(_, w)| w.first_step))?;
        c.int("steps", rows().map(|(_, w)| w.steps))?;
        c.boolean("remap", rows().map(|(_, w)| w.remap))?;
        Ok(c.dict)
    }
}

/// Columns for pandas, by name, each `(kind, data...)`: `("int", bytes)` little-endian
/// `int64`s (every integer the records hold is below 2^63), `("bool", bytes)` one byte each,
/// `("int?", bytes, mask)` with a mask byte of 1 where the value is missing, `("category",
/// codes, categories)` with `int64` codes into a list of names, `("list", lists)`. Packed
/// bytes become numpy arrays without a Python object per value.
struct Columns<'py> {
    dict: Bound<'py, PyDict>,
}

impl<'py> Columns<'py> {
    fn new(py: Python<'py>) -> Columns<'py> {
        Columns {
            dict: PyDict::new(py),
        }
    }

    fn int<T: Into<u64>>(&mut self, name: &str, v: impl Iterator<Item = T>) -> PyResult<()> {
        let bytes = packed(v.map(Into::into));
        let b = PyBytes::new(self.dict.py(), &bytes);
        self.dict.set_item(name, ("int", b))
    }

    fn nullable<T: Into<u64>>(
        &mut self,
        name: &str,
        v: impl Iterator<Item = Option<T>>,
    ) -> PyResult<()> {
        let mut mask = Vec::new();
        let values = packed(v.map(|x| {
            mask.push(u8::from(x.is_none()));
            x.map_or(0, Into::into)
        }));
        let py = self.dict.py();
        let item = ("int?", PyBytes::new(py, &values), PyBytes::new(py, &mask));
        self.dict.set_item(name, item)
    }

    fn boolean(&mut self, name: &str, v: impl Iterator<Item = bool>) -> PyResult<()> {
        let bytes: Vec<u8> = v.map(u8::from).collect();
        let b = PyBytes::new(self.dict.py(), &bytes);
        self.dict.set_item(name, ("bool", b))
    }

    fn category<'a>(&mut self, name: &str, v: impl Iterator<Item = &'a str>) -> PyResult<()> {
        let mut names: Vec<&str> = Vec::new();
        let codes = packed(v.map(|s| {
            let i = match names.iter().position(|n| *n == s) {
                Some(i) => i,
                None => {
                    names.push(s);
                    names.len() - 1
                }
            };
            i as u64
        }));
        let item = ("category", PyBytes::new(self.dict.py(), &codes), names);
        self.dict.set_item(name, item)
    }
}

/// Little-endian 8-byte integers.
fn packed(v: impl Iterator<Item = u64>) -> Vec<u8> {
    let mut out = Vec::new();
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}
