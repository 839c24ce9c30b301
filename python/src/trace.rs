//! Traces for Python: generated (as `tetriserve trace generate`), imported (as `tetriserve
//! trace import`), read and written in the library's trace CSV format, and as columns.

use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::PyDict;

use tetriserve::cli::{Command, TraceCommand};
use tetriserve::workload::Workload;

use crate::{parse_cli, to_py};

/// A workload: requests with arrival, resolution, steps and deadline.
#[pyclass(name = "Trace", module = "tetriserve._core", frozen)]
pub struct PyTrace {
    workload: Workload,
}

#[pymethods]
impl PyTrace {
    /// Generates a workload as `tetriserve trace generate [-s SCENARIO] FLAGS` does.
    #[staticmethod]
    #[pyo3(signature = (scenario, flags))]
    fn generate(scenario: Option<PathBuf>, flags: Vec<String>) -> PyResult<PyTrace> {
        let Command::Trace(TraceCommand::Generate {
            file,
            workload,
            slo,
            output,
        }) = parse_cli("trace", &with_sub("generate", &flags))?
        else {
            return Err(crate::TetriserveError::new_err(
                "expected the flags of `trace generate`",
            ));
        };
        if output.is_some() || file.scenario.is_some() {
            return Err(crate::TetriserveError::new_err(
                "--output/--scenario: pass them as Trace.generate(scenario=...) and Trace.write(path)",
            ));
        }
        let mut o = tetriserve::scenario::Overrides::default();
        workload.add_to(&mut o);
        slo.add_to(&mut o);
        let workload =
            tetriserve::cli::generated_workload(scenario.as_deref(), &o).map_err(to_py)?;
        Ok(PyTrace { workload })
    }

    /// Reads a trace CSV as `tetriserve simulate --trace PATH` replays it: `flags` hold
    /// `--trace` and any other `simulate` flag (`--slo-scale`, `--time-scale`), and rows
    /// without `slo_s` get the scenario's deadline for their resolution.
    #[staticmethod]
    #[pyo3(signature = (scenario, flags))]
    fn read(scenario: Option<&Bound<'_, PyAny>>, flags: Vec<String>) -> PyResult<PyTrace> {
        let source = crate::source_of(scenario)?;
        let overrides = crate::simulate_overrides(&flags)?;
        let scenario = crate::load_scenario(&source, &overrides)?;
        let workload = scenario.load_workload().map_err(to_py)?;
        Ok(PyTrace { workload })
    }

    /// Imports another tool's log as `tetriserve trace import INPUT FLAGS` does (through a
    /// trace CSV written to `scratch`, which is then read back).
    #[staticmethod]
    fn import_log(input: PathBuf, flags: Vec<String>, scratch: PathBuf) -> PyResult<PyTrace> {
        let mut words = vec![
            "import".to_string(),
            input.display().to_string(),
            "--output".to_string(),
            scratch.display().to_string(),
        ];
        words.extend(flags);
        let cmd = parse_cli("trace", &words)?;
        tetriserve::cli::run(tetriserve::cli::Cli { command: cmd }).map_err(to_py)?;
        let trace = format!("--trace={}", scratch.display());
        PyTrace::read(None, vec![trace])
    }

    /// Writes the trace CSV (atomically) that `read` and `simulate(trace=...)` accept.
    fn write(&self, path: PathBuf) -> PyResult<()> {
        let csv = tetriserve::workload::trace::to_csv(&self.workload);
        tetriserve::files::write_file(Path::new(&path), csv.as_bytes()).map_err(to_py)
    }

    /// The trace CSV as text.
    fn to_csv(&self) -> String {
        tetriserve::workload::trace::to_csv(&self.workload)
    }

    fn __len__(&self) -> usize {
        self.workload.len()
    }

    /// The requests as columns: `id` (the trace's), times in integer nanoseconds.
    fn columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let r = &self.workload.requests;
        let d = PyDict::new(py);
        d.set_item("id", r.iter().map(|q| q.label).collect::<Vec<_>>())?;
        d.set_item(
            "arrival_ns",
            r.iter().map(|q| q.arrival.0).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "width",
            r.iter().map(|q| q.resolution.width).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "height",
            r.iter().map(|q| q.resolution.height).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "frames",
            r.iter().map(|q| q.resolution.frames).collect::<Vec<_>>(),
        )?;
        d.set_item("steps", r.iter().map(|q| q.steps).collect::<Vec<_>>())?;
        d.set_item(
            "deadline_ns",
            r.iter().map(|q| q.deadline.0).collect::<Vec<_>>(),
        )?;
        Ok(d)
    }
}

fn with_sub(sub: &str, flags: &[String]) -> Vec<String> {
    std::iter::once(sub.to_string())
        .chain(flags.iter().cloned())
        .collect()
}
