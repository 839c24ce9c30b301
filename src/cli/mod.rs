//! The command line: the commands that clap definitions (`args.rs`) select.
//!
//! Everything here is plumbing: parse flags, turn them into [`crate::scenario::Overrides`] and a validated
//! [`Scenario`], call the library, print. Results go to stdout; messages for people to stderr.
//! Commands that build the real backend live in `backend.rs`, the only code outside `real` that
//! names it.

mod args;
mod backend;
mod output;
mod robustness;

use std::path::{Path, PathBuf};

pub use args::*;

use crate::error::{Error, Result};
use crate::metrics::Summary;
use crate::policy::PolicyKind;
use crate::report;
use crate::scenario::{Scenario, WorkloadSource};
use backend::{real_node, run_gpu_check, run_profile, run_validate};
pub use output::describe;
use output::print_stdout;
use robustness::run_robustness;

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Simulate(args) => run_simulate(args),
        Command::Trace(TraceCommand::Generate {
            file,
            workload,
            slo,
            output,
        }) => {
            let mut o = crate::scenario::Overrides::default();
            workload.add_to(&mut o);
            slo.add_to(&mut o);
            run_trace_generate(&file, &o, output)
        }
        Command::Trace(TraceCommand::Import {
            input,
            format,
            time_scale,
            file,
            fill,
            output,
        }) => run_trace_import(&input, format, time_scale, &file, &fill, output),
        Command::Profile(args) => run_profile(args),
        Command::Sweep(args) => run_sweep(args),
        Command::Merge { dir } => {
            let (path, rows) = crate::sweep::merge(&dir)?;
            eprintln!(
                "merged {rows} rows into {} (and {})",
                path.display(),
                crate::sweep::results::by_resolution_path(&path).display()
            );
            Ok(())
        }
        Command::Goodput(args) => run_goodput(args),
        Command::Robustness(args) => run_robustness(args),
        Command::Validate(args) => run_validate(args),
        Command::Optimum(args) => run_optimum(args),
        Command::Compare {
            results,
            baseline,
            policy,
            resolution,
            csv,
        } => {
            let files: Vec<&std::path::Path> = results.iter().map(PathBuf::as_path).collect();
            if let Some(path) = &csv {
                check_not_results(path, &files)?;
            }
            // Any way of writing a resolution (`2048`, `video:480p:81`) names it as results do.
            let resolution = resolution.map(|r| {
                r.parse::<crate::workload::Resolution>()
                    .map_or(r, |parsed| parsed.to_string())
            });
            let c = crate::compare::compare(&files, &baseline, &policy, resolution.as_deref())?;
            print_stdout(&c.to_markdown())?;
            if let Some(path) = csv {
                crate::files::write_file(&path, c.to_csv().as_bytes())?;
            }
            Ok(())
        }
        Command::Figures { out, root, only } => {
            if !root.join("scenarios/paper").is_dir() {
                return Err(Error::config_hint(
                    format!("{} has no scenarios/paper/ directory", root.display()),
                    "run from the repository root, or pass --root",
                ));
            }
            let start = std::time::Instant::now();
            let files = crate::figures::generate(&root, &out, &only)?;
            eprintln!(
                "wrote {} files to {} in {:.1} s",
                files.len(),
                out.display(),
                start.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Plot {
            results,
            run,
            window,
            horizon,
            from,
            x,
            y,
            title,
            target,
            caption,
            out,
        } => {
            if run.is_empty() {
                for (set, flag) in [
                    (window.is_some(), "--window"),
                    (horizon.is_some(), "--horizon"),
                    (from.is_some(), "--from"),
                ] {
                    if set {
                        return Err(Error::config_hint(
                            format!(
                                "{flag} shapes the charts of run directories (--run), and a results.csv was given"
                            ),
                            "drop it, or plot run directories with --run DIR",
                        ));
                    }
                }
            } else {
                let seconds = |v: Option<f64>, default: f64, flag: &str| -> Result<f64> {
                    match v.unwrap_or(default) {
                        s if s.is_finite() && s > 0.0 => Ok(s),
                        s => Err(Error::config_hint(
                            format!(
                                "{flag} {}: expected a positive number of seconds",
                                crate::error::show_number(s)
                            ),
                            format!("e.g. {flag} {default}"),
                        )),
                    }
                };
                let window = seconds(window, 60.0, "--window")?;
                let horizon = seconds(horizon, 180.0, "--horizon")?;
                let from = match from.unwrap_or(0.0) {
                    s if s.is_finite() && s >= 0.0 => s,
                    s => {
                        return Err(Error::config_hint(
                            format!(
                                "--from {}: expected seconds into the run, 0 or more",
                                crate::error::show_number(s)
                            ),
                            "e.g. --from 120 --horizon 60",
                        ));
                    }
                };
                let runs = run
                    .iter()
                    .map(|d| crate::figures::load_run(d))
                    .collect::<Result<Vec<_>>>()?;
                let written = crate::figures::plot_runs(&runs, &out, window, from, horizon)?;
                eprintln!(
                    "wrote {} charts (PNG + SVG) into {}/",
                    written.len(),
                    out.display()
                );
                return Ok(());
            }
            let results = results.as_deref().expect("clap requires results or --run");
            let y = crate::sweep::plot::Metric::parse(y.as_deref().unwrap_or("attainment"))?;
            let x = x.as_deref().unwrap_or("slo_scale");
            if let Some(t) = target
                && !t.is_finite()
            {
                return Err(Error::config_hint(
                    format!(
                        "--target {}: expected a number",
                        crate::error::show_number(t)
                    ),
                    "e.g. --target 95 on an attainment chart",
                ));
            }
            let style = crate::sweep::plot::Style {
                title,
                target,
                caption,
            };
            let files = crate::sweep::plot::plot_results(results, x, y, &out, &style)?;
            for f in files {
                eprintln!("wrote {}", f.display());
            }
            Ok(())
        }
        Command::GpuCheck => run_gpu_check(),
        Command::Policies => {
            print_stdout(&policy_listing())?;
            Ok(())
        }
    }
}

/// What `tetriserve policies` prints: every registered policy and every group name with its
/// one-line description, wrapped under a name column.
fn policy_listing() -> String {
    let rows = PolicyKind::all()
        .iter()
        .map(|p| (p.name, p.description))
        .chain(PolicyKind::groups().iter().copied());
    let width = PolicyKind::names()
        .iter()
        .map(|n| n.len())
        .max()
        .unwrap_or(0)
        + 2;
    let mut out = String::new();
    for (name, description) in rows {
        let mut line = format!("{name:width$}");
        for word in description.split_whitespace() {
            if line.len() + 1 + word.len() > 100 && line.trim_end().len() > width {
                out.push_str(line.trim_end());
                out.push('\n');
                line = " ".repeat(width);
            } else if line.len() > width {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod policy_listing_tests {
    use super::*;

    #[test]
    fn the_listing_names_every_registered_policy_and_group_once() {
        let text = policy_listing();
        let heads: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with(' '))
            .map(|l| l.split_whitespace().next().unwrap_or(""))
            .collect();
        assert_eq!(heads, PolicyKind::names(), "{text}");
        assert!(text.lines().all(|l| l.len() <= 100), "{text}");
        assert!(text.contains("overload shedding"), "{text}");
    }
}

fn run_simulate(args: SimulateArgs) -> Result<()> {
    if args.out.is_none() {
        for (set, flag) in [
            (args.force, "--force"),
            (args.no_timeline, "--no-timeline"),
            (args.timeline_works.is_some(), "--timeline-works"),
            (args.work_rows.is_some(), "--work-rows"),
        ] {
            if set {
                return Err(Error::config_hint(
                    format!("{flag} applies to the files of --out, and no --out was given"),
                    "add --out DIR, or drop it",
                ));
            }
        }
    }
    if args.no_timeline && args.timeline_works.is_some() {
        return Err(Error::config_hint(
            "--timeline-works sizes timeline.json, which --no-timeline leaves out",
            "drop one of them",
        ));
    }
    let rows: report::WorkRows = args.work_rows.map(Into::into).unwrap_or_default();
    let timeline = (!args.no_timeline).then(|| {
        args.timeline_works
            .unwrap_or(crate::report::TimelineLimit::DEFAULT)
    });
    if args.by_resolution && args.format == Format::Json {
        return Err(Error::config_hint(
            "--by-resolution adds columns to the table or CSV; --format json always holds each policy's `per_resolution`",
            "drop --by-resolution, or use --format table or csv",
        ));
    }
    let overrides = args.overrides();
    if !args.real {
        args.backend
            .refuse_unless_real("add --real, or drop them to simulate")?;
    }
    if args.real && (args.cluster.nodes.is_some() || args.cluster.gpus_per_node.is_some()) {
        return Err(Error::config_hint(
            "--real runs one node",
            "use --gpus N for its number of slots (GPUs, lanes or CPU threads)",
        ));
    }
    let extra;
    let runs = if args.real {
        // Refuse an existing output directory before minutes of loading and measuring.
        if let Some(out) = &args.out {
            report::check_out_dir(out, args.force)?;
        }
        let (mut exec, scenario, node) = real_node(
            &args.backend,
            args.cluster.gpus,
            args.scenario.scenario.as_deref(),
            overrides,
        )?;
        eprintln!("{}", describe(&scenario));
        for w in &scenario.warnings {
            eprintln!("warning: {w}");
        }
        // The measured profile the policies planned with goes with the runs.
        extra = node
            .map(|n| vec![(PathBuf::from("profile.csv"), n.csv.into_bytes())])
            .unwrap_or_default();
        match crate::simulate::run_with(&scenario, &mut exec) {
            Ok(runs) => runs,
            Err(failure) => {
                let crate::simulate::RunFailure { error: e, runs } = *failure;
                // Keep what finished before the hardware failed.
                if let Some(out) = &args.out
                    && !runs.is_empty()
                {
                    write_runs(out, &runs, timeline, rows, args.force, &extra)?;
                    eprintln!("wrote the runs so far to {}", out.display());
                }
                return Err(e);
            }
        }
    } else {
        let scenario = Scenario::load(args.scenario.scenario.as_deref(), &overrides)?;
        // Files are written as the runs go, into a staging directory that replaces --out only
        // once every run has finished.
        let staging = match &args.out {
            Some(out) => Some(report::Staging::create(out, args.force)?),
            None => None,
        };
        eprintln!("{}", describe(&scenario));
        for w in &scenario.warnings {
            eprintln!("warning: {w}");
        }
        let mut outputs = crate::simulate::Streamed::new(staging, timeline, true).work_rows(rows);
        crate::simulate::simulate_into(&scenario, &mut outputs)?;
        let summaries = outputs.commit()?;
        if let Some(out) = &args.out {
            eprintln!("wrote {}", out.display());
        }
        return print_summaries(&summaries, args.format, args.by_resolution);
    };
    let summaries: Vec<Summary> = runs.iter().map(|r| r.summary.clone()).collect();

    if let Some(out) = &args.out {
        write_runs(out, &runs, timeline, rows, args.force, &extra)?;
        eprintln!("wrote {}", out.display());
    }
    print_summaries(&summaries, args.format, args.by_resolution)
}

/// The comparison of `summaries` on stdout, in `format`; `by_resolution` adds each policy's
/// attainment per resolution.
fn print_summaries(summaries: &[Summary], format: Format, by_resolution: bool) -> Result<()> {
    let text = match format {
        Format::Table if by_resolution => format!(
            "{}\n{}",
            report::comparison_table(summaries),
            report::resolution_table(summaries)
        ),
        Format::Table => report::comparison_table(summaries),
        Format::Csv if by_resolution => report::comparison_csv_by_resolution(summaries),
        Format::Csv => report::comparison_csv(summaries),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(summaries).expect("summaries serialise");
            s.push('\n');
            s
        }
    };
    print_stdout(&text)
}

/// Refuses a `compare --csv` path that names a sweep's results (one of those compared, its
/// per-resolution file, or any results file with a manifest beside it): the comparison
/// would replace the results it came from.
fn check_not_results(csv: &Path, results: &[&Path]) -> Result<()> {
    let real = |p: &Path| std::fs::canonicalize(p).ok();
    let target = real(csv);
    let names_results = results.iter().any(|r| {
        let by_res = crate::sweep::results::by_resolution_path(r);
        target.is_some() && (target == real(r) || target == real(&by_res))
    });
    let is_sweep_results = crate::sweep::digest::Manifest::path_of(csv).exists();
    if names_results || is_sweep_results {
        return Err(Error::config_hint(
            format!(
                "--csv {}: that file holds a sweep's results; the comparison would replace them",
                csv.display()
            ),
            "give another file, e.g. --csv comparison.csv",
        ));
    }
    Ok(())
}

fn run_trace_generate(
    file: &ScenarioFileArgs,
    overrides: &crate::scenario::Overrides,
    output: Option<PathBuf>,
) -> Result<()> {
    let workload = generated_workload(file.scenario.as_deref(), overrides)?;
    write_trace(&workload, output)
}

/// The workload `trace generate` writes: the scenario's generator (`path`, or the built-in
/// default) with `overrides` applied; a scenario that replays a trace is refused.
pub fn generated_workload(
    path: Option<&Path>,
    overrides: &crate::scenario::Overrides,
) -> Result<crate::workload::Workload> {
    let scenario = Scenario::load(path, overrides)?;
    if let WorkloadSource::Trace { path, .. } = &scenario.workload {
        return Err(Error::config_hint(
            format!(
                "the scenario replays the trace {}; there is nothing to generate",
                path.display()
            ),
            "use a scenario without `workload.trace` (or none)",
        ));
    }
    scenario.load_workload()
}

/// Writes `workload` as trace CSV to `output` (atomically) or to stdout.
fn write_trace(workload: &crate::workload::Workload, output: Option<PathBuf>) -> Result<()> {
    let csv = crate::workload::trace::to_csv(workload);
    match output {
        Some(path) => {
            crate::files::write_file(&path, csv.as_bytes())?;
            eprintln!("wrote {} requests to {}", workload.len(), path.display());
            Ok(())
        }
        None => print_stdout(&csv),
    }
}

fn run_trace_import(
    input: &Path,
    format: crate::workload::import::LogFormat,
    time_scale: f64,
    file: &ScenarioFileArgs,
    fill: &ImportFillArgs,
    output: Option<PathBuf>,
) -> Result<()> {
    use crate::workload::import::{ImportOptions, LogFormat, import_rows};
    if format == LogFormat::VllmOmni
        && let Some(steps) = fill.steps
    {
        return Err(Error::config_hint(
            format!(
                "--steps {steps} fills rows without a step count, and every vllm-omni row has one (num_inference_steps)"
            ),
            "drop --steps",
        ));
    }
    let mut overrides = crate::scenario::Overrides::default();
    fill.add_to(&mut overrides);
    let scenario = Scenario::load(file.scenario.as_deref(), &overrides)?;
    let spec = match scenario.workload {
        WorkloadSource::Synthetic(spec) => spec,
        WorkloadSource::Trace { .. } => {
            return Err(Error::config_hint(
                "the scenario replays a trace; importing needs its mix and steps",
                "use a scenario without `workload.trace` (or none)",
            ));
        }
    };
    let text =
        crate::error::read_text(input, crate::error::limits::TRACE_BYTES, "trace to import")?;
    let opts = ImportOptions {
        format,
        time_scale,
        mix: spec.mix,
        sampling: spec.sampling,
        seed: spec.seed,
        steps: spec.steps,
        slo: crate::workload::trace::SloDefaults {
            bases: spec.slo_bases,
            scale: spec.slo_scale,
        },
    };
    let imported = import_rows(&text, &input.display().to_string(), &opts)?;
    if !imported.defaulted_steps
        && let Some(steps) = fill.steps
    {
        return Err(Error::config_hint(
            format!(
                "--steps {steps} fills rows without a step count, and every row of {} has one",
                input.display()
            ),
            "drop --steps",
        ));
    }
    if !imported.drew_resolutions {
        for (flag, set) in [
            ("--mix", fill.mix.is_some()),
            ("--seed", fill.seed.is_some()),
        ] {
            if set {
                return Err(Error::config_hint(
                    format!(
                        "{flag} draws resolutions for rows without one, and every row of {} has its resolution",
                        input.display()
                    ),
                    format!("drop {flag}"),
                ));
            }
        }
    }
    let csv = crate::workload::trace::rows_to_csv(&imported.rows);
    let without_slo = imported.rows.iter().filter(|r| r.slo.is_none()).count();
    if without_slo > 0 {
        eprintln!(
            "{without_slo} of {} requests have no SLO in the trace: their slo_s is left empty, and a replay gives them --slo-scale x the scenario's base for their resolution",
            imported.rows.len()
        );
    }
    match output {
        Some(path) => {
            crate::files::write_file(&path, csv.as_bytes())?;
            eprintln!(
                "wrote {} requests to {}",
                imported.rows.len(),
                path.display()
            );
            Ok(())
        }
        None => print_stdout(&csv),
    }
}

fn run_sweep(args: SweepArgs) -> Result<()> {
    let shard = match &args.shard {
        None => None,
        Some(s) => Some(crate::sweep::Shard::parse(s, &|k| std::env::var(k).ok())?),
    };
    let (raw, source) = crate::scenario::RawScenario::load_merged(args.scenario.as_deref())?;
    let grid = crate::sweep::Grid::new(raw, &source)?;
    eprintln!(
        "sweep {}: {} runs{}",
        grid.name,
        grid.points.len(),
        shard
            .map(|(i, n)| format!(" (shard {i}/{n})"))
            .unwrap_or_default()
    );
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} runs, {elapsed} elapsed, ETA {eta}",
        )
        .expect("valid template"),
    );
    let opts = crate::sweep::SweepOptions {
        shard,
        write_runs: args.runs,
        rerun: args.rerun,
        jobs: args.jobs,
    };
    let report = crate::sweep::run(&grid, &args.out, &opts, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    eprintln!(
        "{} reused (same scenario digest), {} run: {}",
        report.reused,
        report.ran,
        report.results.display()
    );
    Ok(())
}

/// `tetriserve optimum`: the windows' optima beside the bound and the policies.
fn run_optimum(args: OptimumArgs) -> Result<()> {
    for (bad, flag, hint) in [
        (
            !(1..=128).contains(&args.window),
            "--window",
            "e.g. --window 30 (the exact search is meant for 20 to 40 requests)",
        ),
        (args.windows == 0, "--windows", "e.g. --windows 4"),
        (args.effort == 0, "--effort", "e.g. --effort 2000000"),
    ] {
        if bad {
            let value = match flag {
                "--window" => args.window.to_string(),
                "--windows" => args.windows.to_string(),
                _ => args.effort.to_string(),
            };
            return Err(Error::config_hint(
                format!("{flag} {value}: expected a number from 1 (--window: up to 128)"),
                hint,
            ));
        }
    }
    let mut overrides = args.scenario.overrides();
    overrides.policies = args.policies.clone();
    args.trace.add_to(&mut overrides);
    args.cluster.add_to(&mut overrides);
    let load = |seed: Option<u64>| -> Result<Scenario> {
        let mut overrides = overrides.clone();
        if seed.is_some() {
            overrides.seed = seed;
        }
        let mut scenario = Scenario::load(args.scenario.scenario.as_deref(), &overrides)?;
        scenario.colocated_only("`tetriserve optimum`")?;
        if args.policies.is_empty() {
            // Every registered policy that fits the cluster, so that a new policy joins the
            // study.
            let per_node = scenario.cluster.gpus_per_node;
            scenario.policies = PolicyKind::all()
                .iter()
                .map(|p| p.kind)
                .filter(|k| !matches!(k, PolicyKind::XditSp(d) if *d > per_node))
                .collect();
        }
        Ok(scenario)
    };
    let base = load(None)?;
    let scenarios = match &args.seeds {
        None => vec![base],
        Some(seeds) => {
            check_seeds(seeds, overrides.seed, &base)?;
            seeds
                .iter()
                .map(|&s| load(Some(s)))
                .collect::<Result<Vec<_>>>()?
        }
    };
    eprintln!("{}", describe(&scenarios[0]));
    if scenarios.len() > 1 {
        let seeds: Vec<String> = scenarios.iter().map(|s| s.seed.to_string()).collect();
        eprintln!(
            "seeds: {} (each seed's windows, then totals over all)",
            seeds.join(",")
        );
    }
    for w in &scenarios[0].warnings {
        eprintln!("warning: {w}");
    }
    let mut parts = Vec::new();
    for scenario in &scenarios {
        let part = crate::optimum::study(scenario, args.window, args.windows, args.effort)?;
        if part.rows.len() < args.windows {
            eprintln!(
                "note: the workload (seed {}) holds {} window(s) of {} requests starting at idle points, not {}",
                scenario.seed,
                part.rows.len(),
                args.window,
                args.windows
            );
        }
        parts.push(part);
    }
    if parts.iter().all(|p| p.rows.is_empty()) {
        return Err(Error::config_hint(
            format!(
                "--window {}: the workload holds no window of {} requests starting at an idle point (it has {} requests)",
                args.window,
                args.window,
                scenarios[0].load_workload().map_or(0, |w| w.len())
            ),
            "give a smaller --window, or more requests (--requests)",
        ));
    }
    let study = crate::optimum::Study::combine(parts).expect("at least one seed");
    for w in &study.warnings {
        eprintln!("warning: {w}");
    }
    for r in &study.rows {
        for p in &r.policies {
            if p.in_run.max(p.alone) > r.optimum_high {
                eprintln!(
                    "warning: window {} (seed {}): {} met {} requests in its run over the whole workload and {} replayed alone, above the proven optimum {}; the model misses a schedule the simulator ran",
                    r.window, r.seed, p.policy, p.in_run, p.alone, r.optimum_high
                );
            }
        }
    }
    let text = match args.format {
        ReportFormat::Table => study.to_table(),
        ReportFormat::Json => study.to_json(),
        ReportFormat::Csv => study.to_csv(),
    };
    print_stdout(&text)
}

/// `tetriserve optimum --seeds`: distinct seeds of a generated workload, not beside `--seed`.
fn check_seeds(seeds: &[u64], seed: Option<u64>, scenario: &Scenario) -> Result<()> {
    let list = seeds
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    if seeds.is_empty() {
        return Err(Error::config_hint(
            "--seeds: expected at least one seed",
            "e.g. --seeds 1,2,3",
        ));
    }
    if let Some(s) = seed {
        return Err(Error::config_hint(
            format!("--seeds {list} beside --seed {s}: both choose the workload's seed"),
            "give one of them",
        ));
    }
    if let Some(s) = seeds
        .iter()
        .find(|s| seeds.iter().filter(|t| t == s).count() > 1)
    {
        return Err(Error::config_hint(
            format!("--seeds {list}: seed {s} appears twice"),
            "list distinct seeds, e.g. --seeds 1,2,3",
        ));
    }
    if let crate::scenario::WorkloadSource::Trace { path, .. } = &scenario.workload {
        return Err(Error::config_hint(
            format!(
                "--seeds {list}: the workload is the trace {}, which seeds do not change",
                path.display()
            ),
            "drop --seeds, or generate the workload (drop --trace)",
        ));
    }
    Ok(())
}

/// Every flag of `tetriserve goodput` acts in the mode given (a log or a generated workload;
/// the GPU search or the rate search), or is refused naming it.
fn refuse_flags_outside_mode(args: &GoodputArgs, log: bool) -> Result<()> {
    let refuse = |flag: &str, why: &str, hint: &str| -> Result<()> {
        Err(Error::config_hint(format!("{flag} {why}"), hint))
    };
    let s = &args.scenario;
    if log {
        for (set, flag) in [
            (args.seeds.is_some(), "--seeds"),
            (s.workload.seed.is_some(), "--seed"),
            (s.workload.rate.is_some(), "--rate"),
            (s.workload.arrival.is_some(), "--arrival"),
            (s.workload.cv.is_some(), "--cv"),
            (s.workload.on_s.is_some(), "--on-s"),
            (s.workload.off_s.is_some(), "--off-s"),
            (s.workload.requests.is_some(), "--requests"),
            (s.workload.mix.is_some(), "--mix"),
            (s.workload.steps.is_some(), "--steps"),
            (args.min_rate.is_some(), "--min-rate"),
            (args.max_rate.is_some(), "--max-rate"),
        ] {
            if set {
                return refuse(
                    flag,
                    "shapes a generated workload, and this plan replays a log",
                    "scale the log with --min-scale/--max-scale (or --time-scale with --min-gpus), or drop --trace",
                );
            }
        }
    } else {
        for (set, flag) in [
            (args.min_scale.is_some(), "--min-scale"),
            (args.max_scale.is_some(), "--max-scale"),
            (args.time_scale.is_some(), "--time-scale"),
        ] {
            if set {
                return refuse(
                    flag,
                    "scales a log's rate, and no log was given",
                    "add --trace LOG, or use --rate / --min-rate / --max-rate for a generated workload",
                );
            }
        }
    }
    if args.min_gpus {
        for (set, flag) in [
            (args.min_rate.is_some(), "--min-rate"),
            (args.max_rate.is_some(), "--max-rate"),
            (args.min_scale.is_some(), "--min-scale"),
            (args.max_scale.is_some(), "--max-scale"),
            (args.tolerance.is_some(), "--tolerance"),
            (args.gpus.is_some(), "--gpus"),
        ] {
            if set {
                return refuse(
                    flag,
                    "belongs to the rate search, and --min-gpus searches GPUs at one load",
                    "give the load with --rate (or --time-scale for a log), and the largest cluster with --max-gpus",
                );
            }
        }
    } else {
        for (set, flag) in [
            (args.max_gpus.is_some(), "--max-gpus"),
            (args.time_scale.is_some(), "--time-scale"),
            (args.pool.is_some(), "--pool"),
        ] {
            if set {
                return refuse(
                    flag,
                    "belongs to --min-gpus; the rate search chooses the load itself",
                    "add --min-gpus, or drop it",
                );
            }
        }
        if s.workload.rate.is_some() {
            return refuse(
                "--rate",
                "is what the rate search chooses",
                "bound it with --min-rate and --max-rate, or add --min-gpus to search GPUs at that rate",
            );
        }
    }
    Ok(())
}

/// Writes a capacity curve into `st`: `curve.csv` and its charts.
fn write_curve(
    st: &crate::report::Staging,
    planner: &crate::goodput::Planner,
    target: f64,
    axis: crate::goodput::curve::Axis,
    points: &[crate::goodput::curve::Point],
    at: &str,
) -> Result<()> {
    use crate::goodput::curve;
    let csv = curve::to_csv(axis, planner.criterion.name(), target, points);
    crate::files::write_file(&st.path("curve.csv"), csv.as_bytes())?;
    curve::draw(
        &st.path(""),
        axis,
        planner.policy(),
        target,
        &format!("{at}, {}", crate::goodput::load_phrase(planner)),
        points,
    )?;
    Ok(())
}

fn run_goodput(args: GoodputArgs) -> Result<()> {
    use crate::goodput::{Load, Planner, curve, gpu_report, gpu_search, rate_report, rate_search};
    let refuse = |flag: &str, why: &str, hint: &str| -> Result<()> {
        Err(Error::config_hint(format!("{flag} {why}"), hint))
    };
    if !(0.0..=1.0).contains(&args.target) {
        return refuse(
            "--target",
            &format!(
                "is {}, not an attainment between 0 and 1",
                crate::error::show_number(args.target)
            ),
            "e.g. --target 0.9",
        );
    }
    if let Some(seeds) = &args.seeds
        && let Some(s) = seeds
            .iter()
            .find(|s| seeds.iter().filter(|t| t == s).count() > 1)
    {
        return refuse(
            "--seeds",
            &format!("lists seed {s} more than once; a repeated seed is the same run"),
            "list distinct seeds, e.g. --seeds 1,2,3",
        );
    }
    let (mut raw, source) =
        crate::scenario::RawScenario::load_merged(args.scenario.scenario.as_deref())?;
    let mut overrides = args.scenario.overrides();
    overrides.trace = args.trace.clone();
    raw.apply(&overrides).map_err(|e| overrides.blame(e))?;
    let seeds = args.seeds.clone().unwrap_or_else(|| vec![1, 2, 3]);
    let mut planner =
        Planner::new(raw, &source, &args.policy, seeds).map_err(|e| overrides.blame(e))?;
    planner.criterion = args.criterion.into();
    if let Some(pool) = args.pool {
        planner = planner.sizing_pool(pool.into())?;
    }
    let log = matches!(planner.load, Load::Log { .. });

    refuse_flags_outside_mode(&args, log)?;
    if args.stability && log {
        return refuse(
            "--stability",
            "runs the search again on longer generated runs, and a log has its own length",
            "replay a longer log, or drop --trace to plan from a generated workload",
        );
    }
    if args.curve.is_none() {
        for (set, flag) in [
            (args.curve_points.is_some(), "--curve-points"),
            (args.force, "--force"),
        ] {
            if set {
                return refuse(
                    flag,
                    "belongs to --curve, and no --curve DIR was given",
                    "add --curve DIR, or drop it",
                );
            }
        }
    }
    if args.min_gpus && args.curve_points.is_some() {
        return refuse(
            "--curve-points",
            "spaces the loads of a rate curve, and --min-gpus draws every cluster size",
            "drop --curve-points",
        );
    }
    let curve_points = args.curve_points.unwrap_or(8);
    if !(2..=64).contains(&curve_points) {
        return refuse(
            "--curve-points",
            &format!("is {curve_points}: a curve needs 2 to 64 points"),
            "e.g. --curve-points 8",
        );
    }
    if matches!(planner.criterion, crate::goodput::Criterion::CiLower)
        && let Load::Generated { seeds } = &planner.load
        && seeds.len() < 2
    {
        return refuse(
            "--criterion ci-lower",
            "needs a confidence interval, and one seed gives none",
            "give two or more seeds, e.g. --seeds 1,2,3",
        );
    }
    let staging = match &args.curve {
        Some(dir) => Some(crate::report::Staging::create(dir, args.force)?),
        None => None,
    };
    // TetriServe's tuning acts only when the policy searched is a TetriServe variant.
    if !matches!(
        args.policy.parse::<PolicyKind>(),
        Ok(PolicyKind::Tetriserve(_))
    ) {
        let tuning: Vec<String> = overrides
            .given()
            .iter()
            .filter(|g| g.key.starts_with("policy.tetriserve."))
            .map(|g| format!("{} {}", g.flag, g.value))
            .collect();
        if !tuning.is_empty() {
            return refuse(
                &tuning.join(" "),
                &format!(
                    "tune(s) TetriServe, and the policy searched is {}",
                    args.policy
                ),
                "drop them, or search --policy tetriserve",
            );
        }
    }

    if let Some(w) = planner.sample_warning(args.target)? {
        eprintln!("warning: {w}");
    }
    let report = if args.min_gpus {
        let x = planner.own_point(args.time_scale)?;
        if !(x.is_finite() && x > 0.0) {
            return refuse(
                "--time-scale",
                &format!("is {}, not a positive factor", crate::error::show_number(x)),
                "e.g. --time-scale 2 for twice the log's rate",
            );
        }
        let max_gpus = args.max_gpus.unwrap_or(64);
        let candidates = planner.gpu_candidates(max_gpus)?;
        if let Some(w) = planner.check_reachable(args.target, candidates.last().copied())? {
            eprintln!("warning: {w}");
        }
        if let Some(st) = &staging {
            let xs: Vec<f64> = candidates.iter().map(|&g| f64::from(g)).collect();
            // With --pool the sizes are the pool's, the rest of the cluster fixed.
            let axis = match planner.pool() {
                Some(p) => curve::Axis::Pool(p),
                None => curve::Axis::Gpus,
            };
            let points = curve::measure(&planner, args.target, axis, &xs, x, None)?;
            let at = match &planner.load {
                Load::Log { .. } => format!("{x}x the log's rate"),
                Load::Generated { .. } => format!("{x} req/min"),
            };
            write_curve(st, &planner, args.target, axis, &points, &at)?;
        }
        let r = gpu_search(&planner, args.target, x, candidates.clone())?;
        let mut report = gpu_report(&planner, args.target, x, &r);
        if args.stability
            && let Some(longer) = planner.with_requests_scaled(2)?
        {
            let n = longer.requests_per_run()?;
            let again = gpu_search(&longer, args.target, x, candidates)?;
            let (a, b) = (
                r.best.as_ref().map(|b| b.0),
                again.best.as_ref().map(|b| b.0),
            );
            let show = |g: Option<u32>| {
                g.map_or_else(|| "none in range".to_string(), |g| format!("{g} GPUs"))
            };
            report.add_stability(n, b.map(f64::from), a == b, (show(a), show(b)), "");
        }
        report
    } else {
        let (lo, hi, flags) = match &planner.load {
            Load::Log { .. } => (
                args.min_scale.unwrap_or(0.1),
                args.max_scale.unwrap_or(20.0),
                "--min-scale < --max-scale",
            ),
            Load::Generated { .. } => (
                args.min_rate.unwrap_or(1.0),
                args.max_rate.unwrap_or(120.0),
                "--min-rate < --max-rate",
            ),
        };
        if !(lo > 0.0 && lo < hi && hi.is_finite()) {
            return refuse(
                "the search range",
                &format!("[{lo}, {hi}] is not 0 < low < high"),
                &format!("give 0 < {flags}"),
            );
        }
        let tolerance = args.tolerance.unwrap_or(0.1);
        if !(tolerance.is_finite() && tolerance > 0.0) {
            return refuse(
                "--tolerance",
                &format!("is {tolerance}, not a positive rate"),
                "e.g. --tolerance 0.1 (requests per minute)",
            );
        }
        if let Some(w) = planner.check_reachable(args.target, args.gpus)? {
            eprintln!("warning: {w}");
        }
        // The tolerance is in requests per minute; a log's search runs on its scale.
        let step = planner.rate_at(1.0);
        if let Some(st) = &staging {
            let xs = curve::spaced(lo, hi, curve_points);
            let points = curve::measure(
                &planner,
                args.target,
                curve::Axis::Rate,
                &xs,
                0.0,
                args.gpus,
            )?;
            let at = match args.gpus {
                Some(g) => format!("{g} GPUs"),
                None => format!("{} GPUs", planner.gpus()?),
            };
            write_curve(st, &planner, args.target, curve::Axis::Rate, &points, &at)?;
        }
        let r = rate_search(&planner, args.target, (lo, hi), tolerance / step, args.gpus)?;
        let gpus = match args.gpus {
            Some(g) => g,
            None => planner.gpus()?,
        };
        let mut report = rate_report(&planner, args.target, gpus, (lo, hi), &r);
        if args.stability
            && let Some(longer) = planner.with_requests_scaled(2)?
        {
            let n = longer.requests_per_run()?;
            let again = rate_search(&longer, args.target, (lo, hi), tolerance / step, args.gpus)?;
            let (a, b) = (
                r.best.as_ref().map(|b| longer.rate_at(b.0)),
                again.best.as_ref().map(|b| longer.rate_at(b.0)),
            );
            // Stable: the answers agree within the search's tolerance or 5%, whichever is wider.
            let stable = match (a, b) {
                (Some(a), Some(b)) => (a - b).abs() <= tolerance.max(0.05 * a.abs()),
                (None, None) => true,
                _ => false,
            };
            let show = |v: Option<f64>| {
                v.map_or_else(
                    || "none in range".to_string(),
                    |v| format!("{v:.2} req/min"),
                )
            };
            report.add_stability(
                n,
                b,
                stable,
                (show(a), show(b)),
                " (within 5% or --tolerance)",
            );
        }
        report
    };
    if let Some(st) = staging {
        st.commit()?;
    }
    let text = match args.format {
        ReportFormat::Table => format!("{}\n", report.line),
        ReportFormat::Json => report.to_json(),
        ReportFormat::Csv => report.to_csv(),
    };
    print_stdout(&text)
}

/// Writes `comparison.csv` and every run's files under `out/<policy>/` (what `simulate --out`
/// writes; the Python package's `Result.write`).
pub fn write_runs(
    out: &Path,
    runs: &[crate::simulate::PolicyRun],
    timeline: Option<crate::report::TimelineLimit>,
    rows: report::WorkRows,
    force: bool,
    extra: &[(PathBuf, Vec<u8>)],
) -> Result<()> {
    let summaries: Vec<Summary> = runs.iter().map(|r| r.summary.clone()).collect();
    let mut files = vec![(
        PathBuf::from("comparison.csv"),
        report::comparison_csv(&summaries).into_bytes(),
    )];
    files.extend(extra.iter().cloned());
    for r in runs {
        for (name, bytes) in report::run_files(&r.records, &r.summary, timeline, rows) {
            files.push((PathBuf::from(&r.summary.policy).join(name), bytes));
        }
    }
    report::write_dir(out, &files, force)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
