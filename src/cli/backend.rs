//! The commands that build the real backend: `profile`, `gpu-check`, `validate`, and the
//! node that `simulate --real` runs on.
//!
//! This file and `lib.rs` are the only code outside `src/real/` that names `crate::real`.

use std::path::{Path, PathBuf};

use super::args::{BackendArgs, DeviceArg, ProfileArgs, SloFrom, ValidateArgs};
use super::output::{describe, print_stdout};
use crate::error::{Error, Result};
use crate::report;
use crate::scenario::{Overrides, Scenario};
use crate::workload::Resolution;

pub(super) fn run_profile(args: ProfileArgs) -> Result<()> {
    use crate::real::profile::{ProfilePlan, ProfileWriter, gpu_key, measure};
    let cfg = crate::real::config::DitConfig::preset(&args.model)?;
    let preset = if args.quick {
        ProfilePlan::quick()
    } else {
        ProfilePlan::full()
    };
    let resolutions = match &args.resolutions {
        Some(px) => px.iter().map(|&p| Resolution::square(p)).collect(),
        None => preset.resolutions.clone(),
    };
    for r in &resolutions {
        r.validate()
            .map_err(|e| Error::config(format!("--resolutions: {e}")))?;
    }
    let degrees = args.degrees.clone().unwrap_or(preset.degrees.clone());
    if let Some(&bad) = degrees
        .iter()
        .find(|d| !d.is_power_of_two() || **d as usize > cfg.heads)
    {
        return Err(Error::config(format!(
            "--degrees: {bad} is not a power of two dividing the {} heads",
            cfg.heads
        )));
    }
    let batches = args.batches.clone().unwrap_or(preset.batches.clone());
    if batches.contains(&0) {
        return Err(Error::config_hint(
            "--batches: a batch of 0 images",
            "give batch sizes of 1 or more",
        ));
    }
    let plan = ProfilePlan {
        resolutions,
        batches,
        degrees,
        warmup: args.warmup.unwrap_or(preset.warmup),
        repeats: args.repeats.unwrap_or(preset.repeats),
    };
    if plan.repeats == 0 {
        return Err(Error::config_hint(
            "--repeats 0: nothing would be timed",
            "time at least one step per configuration",
        ));
    }
    // A bad TETRISERVE_ATTENTION is refused before any device is looked for.
    let requested = crate::real::gpu::attention::Backend::requested()?;
    let probe = crate::real::device::probe()?;
    let total = plan.configs().len();
    eprintln!(
        "profiling {} on {} ({total} configurations{})",
        cfg.name,
        probe.name,
        if args.quick { ", --quick" } else { "" }
    );
    let gpu = crate::real::device::Gpu::open(0)?;
    let attention =
        crate::real::gpu::attention::choose(requested, &crate::real::cudnn::probe()).backend;
    let key = gpu_key(&probe.name);
    let (out, what): (Box<dyn std::io::Write>, String) = match &args.output {
        Some(path) => (
            Box::new(crate::files::create_streamed(path)?),
            path.display().to_string(),
        ),
        None => (Box::new(std::io::stdout()), "<stdout>".into()),
    };
    let mut writer = ProfileWriter::new(out, &what, cfg.name, &key, &probe.name, attention)?;
    let mut written = 0usize;
    let result = measure(gpu, cfg.clone(), &plan, |r, p| {
        let names: Vec<&str> = r.attention.iter().map(|b| b.name()).collect();
        eprintln!(
            "{} {} SP{} batch {}: {:.2} ms (std {:.3}) {}, attention {}",
            p.label(),
            r.res,
            r.degree,
            r.batch,
            r.median_ms,
            r.std_ms,
            r.source,
            names.join(" + ")
        );
        writer.row(r)?;
        written += 1;
        Ok(())
    });
    drop(writer);
    match (result, &args.output) {
        (Ok(_), Some(path)) => {
            eprintln!("wrote {} ({written} rows)", path.display());
            Ok(())
        }
        (Ok(_), None) => Ok(()),
        (Err(e), Some(path)) if written > 0 => {
            eprintln!(
                "profile stopped after {written} of {total} configurations; {} keeps the rows measured",
                path.display()
            );
            Err(e)
        }
        (Err(e), Some(path)) => {
            // Nothing measured: no file with a header alone, which the reader would refuse.
            let _ = std::fs::remove_file(path);
            Err(e)
        }
        (Err(e), None) => Err(e),
    }
}

pub(super) fn run_gpu_check() -> Result<()> {
    crate::real::check::gpu_check(&mut std::io::stdout().lock())
}

pub(super) fn run_validate(args: ValidateArgs) -> Result<()> {
    use crate::validate::compare;
    if let Some(out) = &args.out {
        report::check_out_dir(out, args.force)?;
    }
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    if args.compare.is_some() {
        if args.gpus.is_some() || args.trace.is_some() {
            return Err(Error::config_hint(
                "--compare reads two run directories; --gpus and --trace choose what to run",
                "drop them, or drop --compare to run",
            ));
        }
        let mut given = args.scenario.overrides().summary();
        if let Some(file) = &args.scenario.scenario {
            given = format!("--scenario {} {given}", file.display());
        }
        if !given.trim().is_empty() {
            return Err(Error::config_hint(
                format!(
                    "--compare reads two run directories; {} choose(s) what to run",
                    given.trim()
                ),
                "drop them, or drop --compare to run",
            ));
        }
        args.backend
            .refuse_unless_real("--compare runs nothing: drop them")?;
    } else if args.profile.is_some() {
        return Err(Error::config_hint(
            "--profile is for --compare: a run measures the node's own profile",
            "drop --profile (the measured one is written as profile.csv with --out)",
        ));
    }
    if !(1..=MAX_RUNS).contains(&args.runs) {
        return Err(Error::config_hint(
            format!(
                "--runs {}: real runs of the trace, 1 to {MAX_RUNS}",
                args.runs
            ),
            "2 or 3 give the noise floor; 1 skips it",
        ));
    }
    if args.compare.is_some() && args.runs != 2 {
        return Err(Error::config_hint(
            "--runs: --compare runs nothing",
            "drop --runs, or drop --compare to run",
        ));
    }
    let mut floor = Vec::new();
    let mut split = None;
    let mut exchanges = Vec::new();
    let (validation, without) = if let Some(dirs) = &args.compare {
        let real = crate::figures::load_run(&dirs[0])?;
        let sim = crate::figures::load_run(&dirs[1])?;
        let profile = args
            .profile
            .as_deref()
            .map(crate::scenario::load_profile)
            .transpose()?;
        let v = compare(&real, &sim, |res, k, b| {
            crate::validate::step_ms(profile.as_ref(), res, k, b)
        })?;
        (v, None)
    } else {
        let mut overrides = args.scenario.overrides();
        overrides.policies = vec![args.policy.clone()];
        overrides.trace = args.trace.clone();
        // The node, and a profile of it measured through the executor itself (every degree
        // the node offers, the trace's resolutions), with its per-work overhead.
        let (mut exec, scenario, node) = real_node_profiled(
            &args.backend,
            args.gpus,
            args.scenario.scenario.as_deref(),
            overrides,
            true,
        )?;
        let node = node.expect("validate always measures the node");
        files.push((PathBuf::from("profile.csv"), node.csv.clone().into_bytes()));
        eprintln!("{}", describe(&scenario));
        for w in &scenario.warnings {
            eprintln!("warning: {w}");
        }
        let study = crate::validate::study(&scenario, &mut exec, args.runs)?;
        drop(exec);
        files.extend(study.files);
        eprintln!(
            "validate: {} on {}: mean latency error {:.1}%, same verdict {:.1}% (per-work overhead {:.3} ms, measured before the run)",
            scenario.policies[0],
            study.executor,
            100.0 * study.validation.mean_error,
            100.0 * study.validation.same_verdict,
            node.dispatch_ms
        );
        match crate::validate::floor_error(&study.floor) {
            Some(f) => eprintln!(
                "validate: noise floor (real vs real, {} more run(s)): mean latency error {:.1}%; the simulation's is {:.2}x the floor: {}",
                study.floor.len(),
                100.0 * f,
                study.validation.mean_error / f,
                if crate::validate::within_floor(&study.validation, &study.floor) == Some(true) {
                    "within it (<= 1.25x)"
                } else {
                    "NOT within it (> 1.25x)"
                }
            ),
            None => eprintln!("validate: no noise floor (--runs 1)"),
        }
        if let Some(sp) = &study.split {
            let all = sp.rows().pop().expect("the all row");
            let m = all.3;
            eprintln!(
                "validate: split of sim - real latency, mean over {} requests: service time {:+.2} ms, per-work overhead {:+.2} ms, schedule divergence {:+.2} ms (total {:+.2} ms of {:.2} ms); replay with measured durations {}",
                all.2,
                m[2],
                m[3],
                m[4],
                m[1],
                m[0],
                if sp.exact { "exact" } else { "NOT exact" }
            );
            if let Some(p) = &sp.per_work {
                eprintln!(
                    "validate: per work of the real run: decision lag {:.3} ms, outside the steps {:.3} ms; the simulator charges {:.3} ms",
                    p.lag_ms, p.outside_ms, p.charged_ms
                );
            }
        }
        for x in &study.exchanges {
            eprintln!(
                "validate: Ulysses exchange at {} SP{}: measured {:.3} ms per step, modelled {} ms (over {} steps)",
                x.resolution,
                x.degree,
                x.measured_ms,
                x.modelled_text(),
                x.steps
            );
        }
        floor = study.floor;
        split = study.split;
        exchanges = study.exchanges;
        (study.validation, Some(study.without_overhead))
    };
    let text = crate::validate::report(
        &validation,
        without.as_ref(),
        &floor,
        split.as_ref(),
        &exchanges,
    );
    if let Some(out) = &args.out {
        files.push((PathBuf::from("validation.md"), text.clone().into_bytes()));
        files.push((
            PathBuf::from("validation-requests.csv"),
            validation.requests_csv().into_bytes(),
        ));
        if let Some(sp) = &split {
            files.push((PathBuf::from("split.md"), sp.to_markdown().into_bytes()));
            files.push((PathBuf::from("split.csv"), sp.to_csv().into_bytes()));
        }
        report::write_dir(out, &files, args.force)?;
        eprintln!("wrote {}", out.display());
    }
    print_stdout(&text)
}

/// The most real runs `validate --runs` makes.
const MAX_RUNS: usize = 20;

/// A measured profile of the real node, and the per-work overhead measured with it.
pub(super) struct NodeProfile {
    pub(super) csv: String,
    dispatch_ms: f64,
}

/// Builds the real node (`--device`, `--model`, `--gpus`) and the scenario it runs: one node
/// of that many slots. The policies plan with `--profile` if given; otherwise, on the CPU or
/// for a model the scenario's profile does not describe, with a profile of this node measured
/// now (and its per-work overhead), so that plans match what the node does.
pub(super) fn real_node(
    backend: &BackendArgs,
    gpus: Option<u32>,
    scenario_file: Option<&Path>,
    overrides: Overrides,
) -> Result<(
    crate::real::executor::RealExecutor,
    Scenario,
    Option<NodeProfile>,
)> {
    real_node_profiled(backend, gpus, scenario_file, overrides, false)
}

/// [`real_node`], optionally measuring the node even when a profile was given (`validate`).
fn real_node_profiled(
    backend: &BackendArgs,
    gpus: Option<u32>,
    scenario_file: Option<&Path>,
    mut overrides: Overrides,
    always_measure: bool,
) -> Result<(
    crate::real::executor::RealExecutor,
    Scenario,
    Option<NodeProfile>,
)> {
    use crate::real::config::DitConfig;
    use crate::real::node::Device;
    let device = match backend.device.unwrap_or(DeviceArg::Cuda) {
        DeviceArg::Cuda => Device::Cuda,
        DeviceArg::Cpu => Device::Cpu,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let slots = match (gpus, device) {
        (Some(g), _) => g as usize,
        // No more rank threads than cores: threads sharing a core time each other's steps.
        (None, Device::Cpu) => default_cpu_slots(cores),
        (None, Device::Cuda) => crate::real::device::probe()?.devices,
    };
    if device == Device::Cpu && slots > cores {
        eprintln!(
            "warning: {slots} rank threads on {cores} core(s): threads share cores, so step times depend on what else runs"
        );
    }
    let slo_from = match backend.slo_from {
        Some(f) => f,
        None if device == Device::Cpu && overrides.slo_bases.is_empty() => SloFrom::Node,
        None => SloFrom::Scenario,
    };
    if slo_from == SloFrom::Node && !overrides.slo_bases.is_empty() {
        return Err(Error::config_hint(
            "--slo-from node sets every resolution's SLO base from the measured node; --slo-base sets one",
            "drop --slo-base, or pass --slo-from scenario",
        ));
    }
    overrides.gpus = None;
    overrides.nodes = Some(1);
    overrides.gpus_per_node = Some(slots.clamp(1, crate::real::node::MAX_SLOTS) as u32);
    if always_measure && device == Device::Cpu {
        cpu_validation_defaults(&mut overrides, scenario_file.is_some());
    }
    let first = Scenario::load(scenario_file, &overrides)?;
    first.colocated_only("the real backend")?;
    let model = match (&backend.model, device) {
        (Some(m), _) => m.clone(),
        // A validation needs steps that last well beyond the OS's jitter.
        (None, Device::Cpu) if always_measure => "small".to_string(),
        (None, Device::Cpu) => "tiny".to_string(),
        (None, Device::Cuda) => first.model_name().to_string(),
    };
    let cfg = DitConfig::preset(&model)?;
    let top = 1usize << (usize::BITS - 1 - slots.max(1).leading_zeros());
    if !cfg.heads.is_multiple_of(top) {
        return Err(Error::config_hint(
            format!(
                "--gpus {slots}: model {} has {} heads, and Ulysses splits heads, so a group of {top} is impossible",
                cfg.name, cfg.heads
            ),
            "use fewer slots (--gpus) or a model with more heads (--model small has 8)",
        ));
    }
    let measure = always_measure
        || overrides.profile.is_none() && (device == Device::Cpu || cfg.name != first.model_name());
    if !measure && slo_from == SloFrom::Node {
        return Err(Error::config_hint(
            "--slo-from node: nothing is measured, the policies plan with the given profile",
            "drop --profile to measure the node, or pass --slo-from scenario",
        ));
    }
    if !measure && backend.repeats.is_some() {
        return Err(Error::config_hint(
            "--repeats: nothing is measured, the policies plan with the given profile",
            "drop --repeats, or drop --profile to measure the node",
        ));
    }
    eprintln!(
        "real: building {} ({:.1} M parameters, seeded random weights), {slots} slot(s)",
        cfg.name,
        cfg.parameters() as f64 / 1e6
    );
    let mut exec = crate::real::node::open(device, cfg.clone(), slots)?;
    eprintln!("real: {}", exec.backend.description);
    if !measure {
        return Ok((exec, first, None));
    }
    let repeats = backend.repeats.unwrap_or(3);
    let workload = first.load_workload()?;
    eprintln!(
        "real: measuring the node at {} resolution(s) x degrees {:?} ({} repeats)",
        workload.resolutions().len(),
        exec.degrees(),
        repeats
    );
    let rows = crate::real::calibrate::measure(&mut exec, &workload.resolutions(), repeats, |r| {
        eprintln!(
            "  {} SP{}: {:.3} ms/step (median of {repeats}; std {:.3}{}), per-work overhead {:.3} ms",
            r.res,
            r.degree,
            r.step_ms,
            r.std_ms,
            if r.outliers > 0 {
                format!(
                    ", {} outlier repeat(s) beyond 25% of the median",
                    r.outliers
                )
            } else {
                String::new()
            },
            r.overhead_ms
        )
    })?;
    let gpu = match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda => crate::real::profile::gpu_key(&exec.backend.description),
    };
    let csv = crate::real::calibrate::to_csv(cfg.name, &gpu, &exec.backend.description, &rows);
    let dispatch_ms = crate::real::calibrate::dispatch_overhead_ms(&rows);
    let name = "<measured node profile>";
    let profile = crate::cost::profile::ProfileTable::parse(&csv, name)?;
    if slo_from == SloFrom::Node {
        overrides.slo_bases = node_slo_bases(&rows, &workload, dispatch_ms)?;
        let bases: Vec<String> = overrides
            .slo_bases
            .iter()
            .map(|(r, s)| format!("{r} {:.2} ms", s * 1e3))
            .collect();
        eprintln!(
            "real: SLOs relative to the measured node (--slo-from node): base = lone-request time at SP1: {}; deadline = arrival + --slo-scale x base",
            bases.join(", ")
        );
    }
    let mut scenario = Scenario::load_with_profile(scenario_file, &overrides, profile, name)?;
    // Plan for the measured per-work cost (the engine's real clock pays it anyway).
    let dispatch = crate::time::Nanos::from_millis(dispatch_ms);
    scenario.policy_config.overheads.dispatch = dispatch;
    Ok((exec, scenario, Some(NodeProfile { csv, dispatch_ms })))
}

/// Each resolution's lone-request time at SP1 on the measured node, seconds: its most steps
/// in `workload` times the measured step time, plus the per-work overhead.
fn node_slo_bases(
    rows: &[crate::real::calibrate::NodeRow],
    workload: &crate::workload::Workload,
    dispatch_ms: f64,
) -> Result<Vec<(Resolution, f64)>> {
    let mut bases = Vec::new();
    for res in workload.resolutions() {
        let steps = workload
            .requests
            .iter()
            .filter(|r| r.resolution == res)
            .map(|r| r.steps)
            .max()
            .unwrap_or(1);
        let step = rows
            .iter()
            .find(|r| r.res == res && r.degree == 1)
            .ok_or_else(|| Error::Executor(format!("{res} was not measured at SP1")))?
            .step_ms;
        // Whole microseconds: the base is shown, and a millisecond step measured to 4 decimals.
        let ms = f64::from(steps) * step + dispatch_ms;
        bases.push((res, (ms * 1e3).round() / 1e6));
    }
    Ok(bases)
}

/// Rank threads on the CPU by default: the largest power of two up to 4 that `cores` hold.
fn default_cpu_slots(cores: usize) -> usize {
    1usize << (usize::BITS - 1 - cores.clamp(1, 4).leading_zeros())
}

/// `validate --device cpu` without a scenario file or trace: a workload whose works last tens
/// of milliseconds (512 and 1024 px images of 12 steps, the small model) at a load the node
/// serves with some queueing, so that TetriServe changes degrees (12 requests, 120 per
/// minute); each flag given keeps its value.
fn cpu_validation_defaults(overrides: &mut Overrides, scenario_file: bool) {
    if scenario_file || overrides.trace.is_some() {
        return;
    }
    let mut set = Vec::new();
    if overrides.requests.is_none() {
        overrides.requests = Some(12);
        set.push("--requests 12");
    }
    if overrides.mix.is_none() {
        overrides.mix = Some("custom:512=1,1024=1".into());
        set.push("--mix custom:512=1,1024=1");
    }
    if overrides.steps.is_none() {
        overrides.steps = Some(12);
        set.push("--steps 12");
    }
    if overrides.rate_per_min.is_none() {
        overrides.rate_per_min = Some(120.0);
        set.push("--rate 120");
    }
    if !set.is_empty() {
        eprintln!(
            "validate on the cpu: {} (the defaults for a CPU validation; each flag overrides its own)",
            set.join(" ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_rank_threads_default_to_no_more_than_the_cores() {
        let got: Vec<usize> = [0, 1, 2, 3, 4, 7, 16].map(default_cpu_slots).to_vec();
        assert_eq!(got, vec![1, 1, 2, 2, 4, 4, 4]);
    }

    #[test]
    fn the_cpu_validation_defaults_fill_only_what_is_not_given() {
        let mut o = Overrides {
            mix: Some("custom:256=1".into()),
            ..Overrides::default()
        };
        cpu_validation_defaults(&mut o, false);
        assert_eq!(o.mix.as_deref(), Some("custom:256=1"));
        assert_eq!(
            (o.requests, o.steps, o.rate_per_min),
            (Some(12), Some(12), Some(120.0))
        );
        // A scenario file or a trace says what to run: nothing is added.
        let mut o = Overrides::default();
        cpu_validation_defaults(&mut o, true);
        assert_eq!((o.requests, o.mix.clone()), (None, None));
        let mut o = Overrides {
            trace: Some("t.csv".into()),
            ..Overrides::default()
        };
        cpu_validation_defaults(&mut o, false);
        assert_eq!(o.requests, None);
    }
}
