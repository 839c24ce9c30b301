//! `tetriserve._core`: the Python extension module. Bindings and conversions only: scenarios
//! resolve through the command line's own flag parser and loader, runs go through the
//! library's engine, and records come back as columns for pandas. The pure-Python package
//! (`python/tetriserve/`) wraps these into `simulate`, `sweep`, `Trace` and `Policy`.

mod policy;
mod records;
mod trace;

use std::path::{Path, PathBuf};

use clap::Parser;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use tetriserve::cli::{Cli, Command};
use tetriserve::policy::PolicyKind;
use tetriserve::scenario::{Overrides, Scenario};
use tetriserve::simulate::Contender;

create_exception!(
    _core,
    TetriserveError,
    PyException,
    "A tetriserve error: bad input, a configuration that cannot run, or a policy's invalid decision. The message is the command line's."
);

/// A library error as the Python exception, with the message the command line prints.
pub(crate) fn to_py(e: tetriserve::Error) -> PyErr {
    TetriserveError::new_err(e.to_string())
}

/// A TOML value from a Python value (dict, list, str, int, float, bool); `key` names it in
/// errors.
fn toml_value(v: &Bound<'_, PyAny>, key: &str) -> PyResult<toml::Value> {
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(toml::Value::Boolean(b.is_true()));
    }
    if v.cast::<PyInt>().is_ok() {
        return Ok(toml::Value::Integer(v.extract::<i64>()?));
    }
    if v.cast::<PyFloat>().is_ok() {
        return Ok(toml::Value::Float(v.extract::<f64>()?));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(toml::Value::String(s.to_str()?.to_string()));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut t = toml::Table::new();
        for (k, item) in d.iter() {
            let k: String = k.extract().map_err(|_| {
                PyTypeError::new_err(format!("scenario key under `{key}` is not a string"))
            })?;
            let sub = if key.is_empty() {
                k.clone()
            } else {
                format!("{key}.{k}")
            };
            t.insert(k, toml_value(&item, &sub)?);
        }
        return Ok(toml::Value::Table(t));
    }
    if v.cast::<PyList>().is_ok() || v.cast::<PyTuple>().is_ok() {
        let mut a = Vec::new();
        for (i, item) in v.try_iter()?.enumerate() {
            a.push(toml_value(&item?, &format!("{key}[{i}]"))?);
        }
        return Ok(toml::Value::Array(a));
    }
    Err(PyTypeError::new_err(format!(
        "scenario key `{key}`: {} is not a TOML value (dict, list, str, int, float or bool)",
        v.get_type().name()?
    )))
}

/// Where a scenario comes from: a file, a dictionary (as TOML text), or the built-in default.
enum Source {
    Default,
    File(PathBuf),
    Text(String),
}

fn source_of(scenario: Option<&Bound<'_, PyAny>>) -> PyResult<Source> {
    let Some(s) = scenario else {
        return Ok(Source::Default);
    };
    if s.is_none() {
        return Ok(Source::Default);
    }
    if let Ok(d) = s.cast::<PyDict>() {
        let toml::Value::Table(t) = toml_value(d.as_any(), "")? else {
            unreachable!("a dict converts to a table")
        };
        return Ok(Source::Text(toml::to_string(&t).map_err(|e| {
            PyTypeError::new_err(format!("scenario dict: {e}"))
        })?));
    }
    match s.extract::<PathBuf>() {
        Ok(p) => Ok(Source::File(p)),
        Err(_) => Err(PyTypeError::new_err(format!(
            "scenario: expected None, a path or a dict, got {}",
            s.get_type().name()?
        ))),
    }
}

/// The name a dictionary scenario has in error messages.
const DICT_SOURCE: &str = "scenario dict";

/// Parses `words` as the flags of `tetriserve <command>`, with clap's message on error.
fn parse_cli(command: &str, words: &[String]) -> PyResult<Command> {
    let argv = ["tetriserve", command]
        .into_iter()
        .map(str::to_string)
        .chain(words.iter().cloned());
    match Cli::try_parse_from(argv) {
        Ok(cli) => Ok(cli.command),
        Err(e) => Err(TetriserveError::new_err(
            e.render()
                .to_string()
                .trim_end()
                .trim_start_matches("error: ")
                .to_string(),
        )),
    }
}

/// Loads a scenario as `tetriserve simulate FLAGS` would (the same flag parser, layering and
/// errors), from a file, a dictionary or the default.
fn load_scenario(source: &Source, overrides: &Overrides) -> PyResult<Scenario> {
    let loaded = match source {
        Source::Default => Scenario::load(None, overrides),
        Source::File(p) => Scenario::load(Some(p), overrides),
        Source::Text(text) => Scenario::load_text(text, DICT_SOURCE, Path::new("."), overrides),
    };
    loaded.map_err(to_py)
}

/// The overrides of `tetriserve simulate FLAGS`, refusing the flags that shape the command
/// line's outputs (a binding returns records instead).
fn simulate_overrides(flags: &[String]) -> PyResult<Overrides> {
    let Command::Simulate(args) = parse_cli("simulate", flags)? else {
        unreachable!("parsed as simulate")
    };
    if args.scenario.scenario.is_some() {
        return Err(TetriserveError::new_err(
            "--scenario: pass the scenario as simulate(scenario=...)",
        ));
    }
    for (set, flag) in [
        (args.out.is_some(), "--out"),
        (args.force, "--force"),
        (args.no_timeline, "--no-timeline"),
        (args.timeline_works.is_some(), "--timeline-works"),
        (args.work_rows.is_some(), "--work-rows"),
        (args.by_resolution, "--by-resolution"),
        (args.format != tetriserve::cli::Format::Table, "--format"),
        (args.real, "--real"),
    ] {
        if set {
            return Err(TetriserveError::new_err(format!(
                "{flag} shapes what the command line prints or writes, or runs hardware; simulate() returns the records (Result.requests, Result.works, Result.requests_csv)"
            )));
        }
    }
    args.backend
        .refuse_unless_real("the Python package simulates only")
        .map_err(to_py)?;
    Ok(args.overrides())
}

/// Runs a scenario: `flags` are `tetriserve simulate` flags (the policies among them as
/// `--policy NAME`); `custom` are Python policies, run after the named ones. With no named
/// policy and some custom ones, only the custom ones run. `works`: keep every work's record
/// (else they are counted into the summaries and dropped, as the command line does without
/// `--out`).
#[pyfunction]
#[pyo3(signature = (scenario, flags, custom, works=true))]
fn simulate(
    py: Python<'_>,
    scenario: Option<&Bound<'_, PyAny>>,
    flags: Vec<String>,
    custom: Vec<Bound<'_, PyAny>>,
    works: bool,
) -> PyResult<records::Runs> {
    let source = source_of(scenario)?;
    let overrides = simulate_overrides(&flags)?;
    let named = !overrides.policies.is_empty();
    let scenario = load_scenario(&source, &overrides)?;
    let mut contenders: Vec<Contender> = Vec::new();
    if named || custom.is_empty() {
        contenders.extend(scenario.policies.iter().map(|&k| Contender::Registered(k)));
    }
    let mut errors = Vec::new();
    for obj in &custom {
        let (adapter, error) = policy::PyPolicy::new(py, obj)?;
        errors.push(error);
        contenders.push(Contender::Built {
            batches: adapter.batches(),
            policy: Box::new(adapter),
        });
    }
    let description = describe(&scenario, &contenders);
    let mut outputs = records::Keep {
        works,
        runs: Vec::new(),
    };
    match tetriserve::simulate::simulate_contenders(&scenario, contenders, &mut outputs) {
        Ok(()) => Ok(records::Runs::new(
            outputs.runs,
            description,
            scenario,
            works,
        )),
        Err(e) => {
            // A Python policy that raised stopped the run: its exception, not the engine's.
            for slot in errors {
                if let Some(err) = slot.borrow_mut().take() {
                    return Err(err);
                }
            }
            Err(to_py(e))
        }
    }
}

/// What the command line prints before a run, naming the policies that run (Python ones by
/// their names).
fn describe(scenario: &Scenario, contenders: &[Contender]) -> String {
    let mut s = scenario.clone();
    s.policies = contenders
        .iter()
        .filter_map(|c| match c {
            Contender::Registered(k) => Some(*k),
            Contender::Built { .. } => None,
        })
        .collect();
    let built: Vec<&str> = contenders
        .iter()
        .filter_map(|c| match c {
            Contender::Built { policy, .. } => Some(policy.name()),
            Contender::Registered(_) => None,
        })
        .collect();
    let mut text = tetriserve::cli::describe(&s);
    if !built.is_empty() {
        let (head, tail) = text.split_once("\n  policies: ").unwrap_or((&text, ""));
        let names: Vec<&str> = tail
            .split(", ")
            .filter(|n| !n.is_empty())
            .chain(built)
            .collect();
        text = format!("{head}\n  policies: {}", names.join(", "));
    }
    text
}

/// Runs a sweep as `tetriserve sweep` does (same grid, results file and resume rules) and
/// returns the path of its results CSV.
#[pyfunction]
#[pyo3(signature = (scenario, out, shard=None, runs=false, rerun=false, jobs=None))]
fn sweep(
    scenario: Option<&Bound<'_, PyAny>>,
    out: PathBuf,
    shard: Option<String>,
    runs: bool,
    rerun: bool,
    jobs: Option<usize>,
) -> PyResult<PathBuf> {
    let shard = match &shard {
        None => None,
        Some(s) => {
            Some(tetriserve::sweep::Shard::parse(s, &|k| std::env::var(k).ok()).map_err(to_py)?)
        }
    };
    use tetriserve::scenario::RawScenario;
    // The same sources as `simulate`: a file, a dict (as TOML text) or the default, each laid
    // over the default scenario as `tetriserve sweep -s` lays a file.
    let (raw, source) = match source_of(scenario)? {
        Source::Default => RawScenario::load_merged(None).map_err(to_py)?,
        Source::File(p) => RawScenario::load_merged(Some(&p)).map_err(to_py)?,
        Source::Text(text) => (
            RawScenario::parse(&text, DICT_SOURCE, Path::new("."))
                .map_err(to_py)?
                .or(RawScenario::default_scenario()),
            DICT_SOURCE.to_string(),
        ),
    };
    let grid = tetriserve::sweep::Grid::new(raw, &source).map_err(to_py)?;
    let opts = tetriserve::sweep::SweepOptions {
        shard,
        write_runs: runs,
        rerun,
        jobs,
    };
    let report = tetriserve::sweep::run(&grid, &out, &opts, &|_, _| {}).map_err(to_py)?;
    Ok(report.results)
}

/// The names `policies=` accepts: every registered policy and group.
#[pyfunction]
fn policy_names() -> Vec<&'static str> {
    PolicyKind::names()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("TetriserveError", m.py().get_type::<TetriserveError>())?;
    m.add_function(wrap_pyfunction!(simulate, m)?)?;
    m.add_function(wrap_pyfunction!(sweep, m)?)?;
    m.add_function(wrap_pyfunction!(policy_names, m)?)?;
    m.add_class::<records::Runs>()?;
    m.add_class::<policy::PyGpuSet>()?;
    m.add_class::<policy::PyDecision>()?;
    m.add_class::<policy::PyView>()?;
    m.add_class::<policy::PyRequest>()?;
    m.add_class::<trace::PyTrace>()?;
    Ok(())
}
