//! The commands that build the real backend: `profile`, `gpu-check`, `validate`, and the
//! node that `simulate --real` runs on.
//!
//! This file and `lib.rs` are the only code outside `src/real/` that names `crate::real`.

use std::path::{Path, PathBuf};

use super::{BackendArgs, DeviceArg, ProfileArgs, ValidateArgs, describe, print_stdout};
use crate::error::{Error, Result};
use crate::report;
use crate::scenario::{Overrides, Scenario};
use crate::simulate::simulate;
use crate::workload::Resolution;

pub(super) fn run_profile(args: ProfileArgs) -> Result<()> {
    use crate::real::profile::{ProfilePlan, measure, to_csv};
    let cfg = crate::real::config::DitConfig::preset(&args.model)?;
    let probe = crate::real::device::probe()?;
    let resolutions = args
        .resolutions
        .iter()
        .map(|&p| Resolution::square(p))
        .collect::<Vec<_>>();
    for r in &resolutions {
        r.validate()
            .map_err(|e| Error::config(format!("--resolutions: {e}")))?;
    }
    if let Some(&bad) = args
        .degrees
        .iter()
        .find(|d| !d.is_power_of_two() || **d as usize > cfg.heads)
    {
        return Err(Error::config(format!(
            "--degrees: {bad} is not a power of two dividing the {} heads",
            cfg.heads
        )));
    }
    let plan = ProfilePlan {
        resolutions,
        batches: args.batches.clone(),
        degrees: args.degrees.clone(),
        warmup: args.warmup,
        repeats: args.repeats,
    };
    eprintln!(
        "profiling {} on {} ({} configurations)",
        cfg.name,
        probe.name,
        plan.resolutions.len() * plan.batches.len() * plan.degrees.len()
    );
    let gpu = crate::real::device::Gpu::open(0)?;
    let (rows, key) = measure(gpu, cfg.clone(), &plan, |r| {
        eprintln!(
            "  {} SP{} batch {}: {:.2} ms (std {:.3}) {}",
            r.res, r.degree, r.batch, r.median_ms, r.std_ms, r.source
        );
    })?;
    let csv = to_csv(cfg.name, &key, &probe.name, &rows);
    match args.output {
        Some(path) => {
            std::fs::write(&path, csv).map_err(|e| Error::io(&path, e))?;
            eprintln!("wrote {}", path.display());
            Ok(())
        }
        None => print_stdout(&csv),
    }
}

pub(super) fn run_gpu_check() -> Result<()> {
    let probe = crate::real::device::probe()?;
    println!(
        "devices: {} ({}, compute capability {}.{})",
        probe.devices, probe.name, probe.capability.0, probe.capability.1
    );
    let dev = crate::real::gpu::GpuDevice::open(0)?;
    let checks = crate::real::profile::numerics(&dev)?;
    println!("| case | relative error vs CPU reference |");
    println!("|---|---|");
    let mut worst = 0.0f64;
    for c in &checks {
        println!("| {} | {:.2e} |", c.case, c.relative_error);
        worst = worst.max(c.relative_error);
    }
    if worst > 0.05 || !worst.is_finite() {
        return Err(Error::Executor(format!(
            "GPU output differs from the CPU reference: worst relative error {worst:.3e} > 5e-2"
        )));
    }
    println!("numerics: ok (worst {worst:.2e}, bf16 tolerance 5e-2)");

    println!(
        "\nLane transport on one GPU (k lanes = k threads, each a stream; the all-to-alls as device copies ordered by events): two exchanges back to back, every element checked against the host all-to-all:"
    );
    println!("| lanes | layouts | exchanges | elements checked | mismatches |");
    println!("|---|---|---|---|---|");
    let mut bad = 0usize;
    for k in [2, 4, 8] {
        let c = crate::real::profile::lane_exchange_check(&dev, k)?;
        println!(
            "| {} | {} | {} | {} | {} |",
            c.ranks,
            c.cases.join("; "),
            c.exchanges,
            c.elements,
            c.mismatches
        );
        bad += c.mismatches;
    }
    if bad > 0 {
        return Err(Error::Executor(format!(
            "the lane transport delivered {bad} wrong element(s)"
        )));
    }
    println!("lane exchanges: ok");

    println!("\nUlysses SP on GPU lanes (a k-lane group runs the step; velocities reassembled):");
    let sp = crate::real::profile::ulysses_numerics(&dev)?;
    println!(
        "| case | ranks | relative error vs plain step (GPU) | vs CPU reference on the same ranks |"
    );
    println!("|---|---|---|---|");
    let mut worst_sp = 0.0f64;
    for c in &sp {
        println!(
            "| {} | {} | {:.2e} | {:.2e} |",
            c.case, c.ranks, c.vs_plain, c.vs_cpu
        );
        worst_sp = worst_sp.max(c.vs_plain).max(c.vs_cpu);
    }
    if worst_sp > 0.05 || !worst_sp.is_finite() {
        return Err(Error::Executor(format!(
            "a Ulysses step on lanes differs from the plain one: worst relative error {worst_sp:.3e} > 5e-2"
        )));
    }
    println!("ulysses: ok (worst {worst_sp:.2e}, bf16 tolerance 5e-2)");
    drop(dev);

    // Degree changes move a request's latent; the simulator charges a fraction of a step.
    let gpu = crate::real::device::Gpu::open(0)?;
    let shipped = crate::cost::profile::ProfileTable::builtin("h100-flux1-dev")
        .ok_or_else(|| Error::config("the built-in H100 profile is missing"))?;
    let remap = crate::cost::Overheads::default().remap_fraction;
    let resolutions: Vec<crate::workload::Resolution> = [256, 512, 1024, 2048]
        .into_iter()
        .map(crate::workload::Resolution::square)
        .collect();
    println!(
        "\nLatent hand-off (a degree change moves the latent; median of 5):\n| resolution | latent MB | via host, ms | device copy, ms | simulator charges, ms ({:.2}% of an SP1 step, shipped H100 profile) |\n|---|---|---|---|---|",
        100.0 * remap
    );
    for h in crate::real::profile::hand_off(&gpu, &resolutions)? {
        use crate::cost::CostModel;
        let step = shipped
            .step_time(h.res, 1, 1, crate::cluster::Link::NvLink)
            .map(|t| t.0 as f64 / 1e6)
            .unwrap_or(f64::NAN);
        println!(
            "| {} | {:.2} | {:.3} | {:.3} | {:.3} |",
            h.res,
            h.bytes as f64 / 1e6,
            h.host_ms,
            h.device_ms,
            remap * step
        );
    }
    drop(gpu);

    if probe.devices >= 2 {
        let t = crate::real::nccl::self_test(probe.devices)?;
        println!(
            "\nNCCL on {} of {} devices: communicators created in {:.1} ms; Ulysses q/k/v all-to-all of FLUX.1-dev at 1024 px ({:.1} MB sent per rank) verified, {:.3} ms; 2048 px latent device 0 -> 1 ({:.1} MB) {:.3} ms",
            t.ranks, t.devices, t.create_ms, t.exchange_mb, t.exchange_ms, t.latent_mb, t.latent_ms
        );
    } else {
        println!("\nNCCL: not run (one device; the multi-GPU Ulysses exchange needs two or more)");
    }
    Ok(())
}

pub(super) fn run_validate(args: ValidateArgs) -> Result<()> {
    use crate::validate::compare;
    if let Some(out) = &args.out {
        report::check_out_dir(out, args.force)?;
    }
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut extra_text = String::new();
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
    let validation = if let Some(dirs) = &args.compare {
        let real = crate::figures::load_run(&dirs[0])?;
        let sim = crate::figures::load_run(&dirs[1])?;
        let profile = args
            .profile
            .as_deref()
            .map(crate::scenario::load_profile)
            .transpose()?;
        compare(&real, &sim, |res, k, b| {
            step_ms(profile.as_ref(), res, k, b)
        })?
    } else {
        let mut overrides = args.scenario.overrides();
        overrides.policies = vec![args.policy.clone()];
        overrides.trace = args.trace.clone();
        // 1. The node, and a profile of it measured through the executor itself (every degree
        //    the node offers, the trace's resolutions), with its per-work overhead.
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
        // 2. The real run (planned with the measured profile and per-work overhead).
        let real = crate::simulate::run_with(&scenario, &mut exec)
            .map_err(|f| f.error)?
            .remove(0);
        drop(exec);
        // 3. Its simulation with the same profile, overhead and policy configuration, so
        //    both runs plan identically; 4. the same without the per-work overhead, to show
        //    what that one cost explains.
        let sim = simulate(&scenario)?.remove(0);
        let mut bare = scenario.clone();
        bare.overheads.dispatch = crate::time::Nanos::ZERO;
        let sim_bare = simulate(&bare)?.remove(0);
        for (name, run) in [
            ("real", &real),
            ("sim", &sim),
            ("sim-no-overhead", &sim_bare),
        ] {
            for (file, bytes) in report::run_files(&run.records, &run.summary, None) {
                files.push((PathBuf::from(name).join(file), bytes));
            }
        }
        let profile = match &scenario.cost {
            crate::scenario::CostSource::Profile(p) => Some(p),
            crate::scenario::CostSource::Analytic(_) => None,
        };
        let lookup = |res, k, b| step_ms(profile, res, k, b);
        let without = compare(&real.records, &sim_bare.records, lookup)?;
        extra_text = format!(
            "\n## Without the per-work overhead\n\nThe same simulation charging steps only (`overheads.dispatch_ms = 0`; the real run's plans are unchanged):\n\n{}",
            without.to_markdown()
        );
        let v = compare(&real.records, &sim.records, lookup)?;
        eprintln!(
            "validate: {} on {}: mean latency error {:.1}%, same verdict {:.1}% (per-work overhead {:.3} ms, measured before the run)",
            scenario.policies[0],
            real.summary.executor.as_deref().unwrap_or("?"),
            100.0 * v.mean_error,
            100.0 * v.same_verdict,
            node.dispatch_ms
        );
        v
    };
    let text = format!(
        "## Simulated with the measured profile and per-work overhead\n\n{}{extra_text}",
        validation.to_markdown()
    );
    if let Some(out) = &args.out {
        files.push((PathBuf::from("validation.md"), text.clone().into_bytes()));
        files.push((
            PathBuf::from("validation-requests.csv"),
            validation.requests_csv().into_bytes(),
        ));
        report::write_dir(out, &files, args.force)?;
        eprintln!("wrote {}", out.display());
    }
    print_stdout(&text)
}

/// A measured profile of the real node, and the per-work overhead measured with it.
struct NodeProfile {
    csv: String,
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
) -> Result<(crate::real::executor::RealExecutor, Scenario)> {
    let (exec, scenario, _) = real_node_profiled(backend, gpus, scenario_file, overrides, false)?;
    Ok((exec, scenario))
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
    let slots = match (gpus, device) {
        (Some(g), _) => g as usize,
        (None, Device::Cpu) => 4,
        (None, Device::Cuda) => crate::real::device::probe()?.devices,
    };
    overrides.gpus = None;
    overrides.nodes = Some(1);
    overrides.gpus_per_node = Some(slots.clamp(1, crate::real::node::MAX_SLOTS) as u32);
    let first = Scenario::load(scenario_file, &overrides)?;
    let model = match (&backend.model, device) {
        (Some(m), _) => m.clone(),
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
            "  {} SP{}: {:.3} ms/step (std {:.3}), per-work overhead {:.3} ms",
            r.res, r.degree, r.step_ms, r.std_ms, r.overhead_ms
        )
    })?;
    let gpu = match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda => crate::real::profile::gpu_key(&exec.backend.description),
    };
    let csv = crate::real::calibrate::to_csv(cfg.name, &gpu, &exec.backend.description, &rows);
    let dispatch_ms = crate::real::calibrate::dispatch_overhead_ms(&rows);
    let dir = tempfile_dir()?;
    let path = dir.join("node-profile.csv");
    std::fs::write(&path, &csv).map_err(|e| Error::io(&path, e))?;
    if overrides.profile.is_none() || always_measure {
        overrides.profile = Some(path.display().to_string());
    }
    let loaded = Scenario::load(scenario_file, &overrides);
    let _ = std::fs::remove_dir_all(&dir);
    let mut scenario = loaded?;
    // Plan for the measured per-work cost (the engine's real clock pays it anyway).
    let dispatch = crate::time::Nanos::from_millis(dispatch_ms);
    scenario.overheads.dispatch = dispatch;
    scenario.policy_config.overheads.dispatch = dispatch;
    Ok((exec, scenario, Some(NodeProfile { csv, dispatch_ms })))
}

/// The profiled step time in milliseconds, if `profile` covers it.
fn step_ms(
    profile: Option<&crate::cost::profile::ProfileTable>,
    res: crate::workload::Resolution,
    degree: u32,
    batch: u32,
) -> Option<f64> {
    use crate::cost::CostModel;
    let t = profile?
        .step_time(res, degree, batch, crate::cluster::Link::NvLink)
        .ok()?;
    Some(t.0 as f64 / 1e6)
}

/// A fresh private directory under the system's temporary directory.
fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "tetriserve-validate-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}
