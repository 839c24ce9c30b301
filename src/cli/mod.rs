//! The command line: the commands that clap definitions (`args.rs`) select.
//!
//! Everything here is plumbing: parse flags, turn them into [`crate::scenario::Overrides`] and a validated
//! [`Scenario`], call the library, print. Results go to stdout; messages for people to stderr.
//! Commands that build the real backend live in `backend.rs`, the only code outside `real` that
//! names it.

mod args;
mod backend;

use std::io::Write as _;
use std::path::{Path, PathBuf};

pub use args::*;

use crate::error::{Error, Result};
use crate::metrics::Summary;
use crate::policy::PolicyKind;
use crate::report;
use crate::scenario::{Scenario, WorkloadSource};
use crate::workload::arrival::ArrivalProcess;
use backend::{real_node, run_gpu_check, run_profile, run_validate};

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Simulate(args) => run_simulate(args),
        Command::Trace(TraceCommand::Generate { scenario, output }) => {
            run_trace_generate(scenario, output)
        }
        Command::Trace(TraceCommand::Import {
            input,
            format,
            time_scale,
            scenario,
            output,
        }) => run_trace_import(&input, format, time_scale, scenario, output),
        Command::Profile(args) => run_profile(args),
        Command::Sweep(args) => run_sweep(args),
        Command::Merge { dir } => {
            let (path, rows) = crate::sweep::merge(&dir)?;
            eprintln!("merged {rows} rows into {}", path.display());
            Ok(())
        }
        Command::Goodput(args) => run_goodput(args),
        Command::Validate(args) => run_validate(args),
        Command::Compare {
            results,
            baseline,
            policy,
            resolution,
            csv,
        } => {
            let files: Vec<&std::path::Path> = results.iter().map(PathBuf::as_path).collect();
            let c = crate::compare::compare(&files, &baseline, &policy, resolution.as_deref())?;
            print!("{}", c.to_markdown());
            if let Some(path) = csv {
                crate::report::write_file_atomic(&path, c.to_csv().as_bytes())?;
            }
            Ok(())
        }
        Command::Figures { out, root } => {
            if !root.join("scenarios/paper").is_dir() {
                return Err(Error::config_hint(
                    format!("{} has no scenarios/paper/ directory", root.display()),
                    "run from the repository root, or pass --root",
                ));
            }
            let start = std::time::Instant::now();
            let files = crate::figures::generate(&root, &out)?;
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
            x,
            out,
        } => {
            if !run.is_empty() {
                let runs = run
                    .iter()
                    .map(|d| crate::figures::load_run(d))
                    .collect::<Result<Vec<_>>>()?;
                let written =
                    crate::figures::plot_runs(&runs, &out, window.max(1.0), horizon.max(1.0))?;
                eprintln!(
                    "wrote {} charts (PNG + SVG) into {}/",
                    written.len(),
                    out.display()
                );
                return Ok(());
            }
            run_plot(
                results.as_deref().expect("clap requires results or --run"),
                &x,
                &out,
            )
        }
        Command::GpuCheck => run_gpu_check(),
        Command::Policies => {
            print!("{}", policy_listing());
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
    let timeline = (!args.no_timeline).then(|| {
        args.timeline_works
            .unwrap_or(crate::report::TimelineLimit::DEFAULT)
    });
    let mut overrides = args.scenario.overrides();
    overrides.policies = args.policies.clone();
    overrides.trace = args.trace.clone();
    overrides.profile = args.profile.clone();
    overrides.gpus = args.gpus;
    overrides.nodes = args.nodes;
    overrides.gpus_per_node = args.gpus_per_node;
    if !args.real {
        args.backend
            .refuse_unless_real("add --real, or drop them to simulate")?;
    }
    if args.real && (args.nodes.is_some() || args.gpus_per_node.is_some()) {
        return Err(Error::config_hint(
            "--real runs one node",
            "use --gpus N for its number of slots (GPUs, lanes or CPU threads)",
        ));
    }
    let runs = if args.real {
        // Refuse an existing output directory before minutes of loading and measuring.
        if let Some(out) = &args.out {
            report::check_out_dir(out, args.force)?;
        }
        let (mut exec, scenario) = real_node(
            &args.backend,
            args.gpus,
            args.scenario.scenario.as_deref(),
            overrides,
        )?;
        eprintln!("{}", describe(&scenario));
        for w in &scenario.warnings {
            eprintln!("warning: {w}");
        }
        match crate::simulate::run_with(&scenario, &mut exec) {
            Ok(runs) => runs,
            Err(failure) => {
                let crate::simulate::RunFailure { error: e, runs } = *failure;
                // Keep what finished before the hardware failed.
                if let Some(out) = &args.out
                    && !runs.is_empty()
                {
                    write_runs(out, &runs, timeline, args.force)?;
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
        let mut outputs = crate::simulate::Streamed::new(staging, timeline, true);
        crate::simulate::simulate_into(&scenario, &mut outputs)?;
        let summaries = outputs.commit()?;
        if let Some(out) = &args.out {
            eprintln!("wrote {}", out.display());
        }
        return print_summaries(&summaries, args.format);
    };
    let summaries: Vec<Summary> = runs.iter().map(|r| r.summary.clone()).collect();

    if let Some(out) = &args.out {
        write_runs(out, &runs, timeline, args.force)?;
        eprintln!("wrote {}", out.display());
    }
    print_summaries(&summaries, args.format)
}

/// The comparison of `summaries` on stdout, in `format`.
fn print_summaries(summaries: &[Summary], format: Format) -> Result<()> {
    let text = match format {
        Format::Table => report::comparison_table(summaries),
        Format::Csv => report::comparison_csv(summaries),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(summaries).expect("summaries serialise");
            s.push('\n');
            s
        }
    };
    print_stdout(&text)
}

fn run_trace_generate(args: ScenarioArgs, output: Option<PathBuf>) -> Result<()> {
    let scenario = Scenario::load(args.scenario.as_deref(), &args.overrides())?;
    let workload = scenario.load_workload()?;
    write_trace(&workload, output)
}

/// Writes `workload` as trace CSV to `output` (atomically) or to stdout.
fn write_trace(workload: &crate::workload::Workload, output: Option<PathBuf>) -> Result<()> {
    let csv = crate::workload::trace::to_csv(workload);
    match output {
        Some(path) => {
            crate::report::write_file_atomic(&path, csv.as_bytes())?;
            eprintln!("wrote {} requests to {}", workload.len(), path.display());
            Ok(())
        }
        None => print_stdout(&csv),
    }
}

fn run_trace_import(
    input: &Path,
    format: crate::workload::import::Format,
    time_scale: f64,
    args: ScenarioArgs,
    output: Option<PathBuf>,
) -> Result<()> {
    use crate::scenario::WorkloadSource;
    use crate::workload::import::{ImportOptions, import};
    let scenario = Scenario::load(args.scenario.as_deref(), &args.overrides())?;
    let spec = match scenario.workload {
        WorkloadSource::Synthetic(spec) => spec,
        WorkloadSource::Trace { .. } => {
            return Err(Error::config_hint(
                "the scenario replays a trace; importing needs its mix, steps and SLOs",
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
    let workload = import(&text, &input.display().to_string(), &opts)?;
    write_trace(&workload, output)
}

fn run_sweep(args: SweepArgs) -> Result<()> {
    let shard = match &args.shard {
        None => None,
        Some(s) => {
            let parsed = s.split_once('/').and_then(|(i, n)| {
                Some((
                    i.trim().parse::<usize>().ok()?,
                    n.trim().parse::<usize>().ok()?,
                ))
            });
            match parsed {
                Some((i, n)) if n > 0 && i < n => Some((i, n)),
                _ => {
                    return Err(Error::config_hint(
                        format!("--shard `{s}` is not I/N with 0 <= I < N"),
                        "e.g. --shard 0/4 for the first of four slices",
                    ));
                }
            }
        }
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
        "{} run(s), {} already done: {}",
        report.ran,
        report.skipped,
        report.results.display()
    );
    Ok(())
}

fn run_plot(results: &std::path::Path, x: &str, out: &std::path::Path) -> Result<()> {
    use crate::figures::{ResultRow, read_results};
    let rows = read_results(results)?;
    let xf: fn(&ResultRow) -> f64 = match x {
        "slo_scale" => |r| r.scale,
        "rate_per_min" => |r| r.rate,
        "granularity" => |r| r.granularity.parse().unwrap_or(f64::NAN),
        other => {
            return Err(Error::config(format!(
                "--x `{other}`: expected slo_scale, rate_per_min or granularity"
            )));
        }
    };
    // Every other grid dimension must hold one value: points are never averaged over a rate,
    // scale, granularity or scenario silently (mixes become separate lines).
    let distinct = |f: &dyn Fn(&ResultRow) -> String| {
        rows.iter()
            .map(f)
            .collect::<std::collections::BTreeSet<String>>()
    };
    for (name, values) in [
        ("rate_per_min", distinct(&|r| r.rate.to_string())),
        ("slo_scale", distinct(&|r| r.scale.to_string())),
        ("granularity", distinct(&|r| r.granularity.clone())),
        ("scenario", distinct(&|r| r.scenario.clone())),
    ] {
        if name != x && values.len() > 1 {
            let list: Vec<String> = values.into_iter().collect();
            return Err(Error::config_hint(
                format!(
                    "{} has {} values of {name} ({}); a chart against {x} would average over them",
                    results.display(),
                    list.len(),
                    list.join(", ")
                ),
                if name == "scenario" {
                    "keep the rows of one scenario in a copy of the file".to_string()
                } else {
                    format!(
                        "plot against it (--x {name}), or keep the rows of one {name} in a copy of the file"
                    )
                },
            ));
        }
    }
    let mut series: Vec<crate::report::plot::Series> = Vec::new();
    let mixes: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.mix.as_str()).collect();
    for r in &rows {
        let label = if mixes.len() > 1 {
            format!("{} ({})", r.policy, r.mix)
        } else {
            r.policy.clone()
        };
        if !series.iter().any(|s| s.label == label) {
            series.push(crate::report::plot::Series {
                label,
                points: Vec::new(),
                dashed: false,
            });
        }
    }
    for s in &mut series {
        let mut by_x: std::collections::BTreeMap<u64, Vec<f64>> = std::collections::BTreeMap::new();
        for r in rows.iter().filter(|r| {
            let label = if mixes.len() > 1 {
                format!("{} ({})", r.policy, r.mix)
            } else {
                r.policy.clone()
            };
            label == s.label
        }) {
            by_x.entry(xf(r).to_bits()).or_default().push(r.attainment);
        }
        s.points = by_x
            .into_iter()
            .map(|(xb, v)| {
                let (m, h) = crate::sweep::mean_ci95(&v);
                (f64::from_bits(xb), m, (m - h).max(0.0), (m + h).min(1.0))
            })
            .collect();
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let frame = crate::report::plot::Frame {
        title: format!("SLO attainment ({})", results.display()),
        x_label: x.replace('_', " "),
        y_label: "SLO attainment".into(),
        y_range: Some((0.0, 1.0)),
        y_log2: false,
    };
    crate::report::plot::line_chart(out, &frame, &series)?;
    eprintln!("wrote {}.png and {}.svg", out.display(), out.display());
    Ok(())
}

fn run_goodput(args: GoodputArgs) -> Result<()> {
    let (mut raw, source) =
        crate::scenario::RawScenario::load_merged(args.scenario.scenario.as_deref())?;
    raw.apply(&args.scenario.overrides())?;
    let gpus = Scenario::from_raw(raw.clone(), &source)?
        .cluster
        .total_gpus();
    if !(0.0..=1.0).contains(&args.target)
        || args.seeds.is_empty()
        || !(args.min_rate > 0.0 && args.min_rate < args.max_rate)
    {
        return Err(Error::config(
            "goodput needs 0 <= --target <= 1, at least one seed, and 0 < --min-rate < --max-rate",
        ));
    }
    if let Some(s) = args
        .seeds
        .iter()
        .find(|s| args.seeds.iter().filter(|t| t == s).count() > 1)
    {
        return Err(Error::config_hint(
            format!("--seeds lists seed {s} more than once; a repeated seed is the same run"),
            "list distinct seeds, e.g. --seeds 1,2,3",
        ));
    }
    let g = crate::sweep::goodput(
        &raw,
        &source,
        &args.policy,
        args.target,
        &args.seeds,
        (args.min_rate, args.max_rate),
        args.tolerance.max(1e-3),
    )?;
    match g {
        None => println!(
            "{}: below {:.0}% attainment even at {} req/min",
            args.policy,
            args.target * 100.0,
            args.min_rate
        ),
        Some(r) => println!(
            "{}: goodput {:.2} req/min at {:.0}% SLO attainment ({:.3} req/min per GPU, {} GPUs, seeds {:?}){}",
            args.policy,
            r,
            args.target * 100.0,
            r / f64::from(gpus),
            gpus,
            args.seeds,
            if r >= args.max_rate {
                " -- at the top of the search range; raise --max-rate"
            } else {
                ""
            }
        ),
    }
    Ok(())
}

/// Writes `comparison.csv` and every run's files under `out/<policy>/`.
fn write_runs(
    out: &Path,
    runs: &[crate::simulate::PolicyRun],
    timeline: Option<crate::report::TimelineLimit>,
    force: bool,
) -> Result<()> {
    let summaries: Vec<Summary> = runs.iter().map(|r| r.summary.clone()).collect();
    let mut files = vec![(
        PathBuf::from("comparison.csv"),
        report::comparison_csv(&summaries).into_bytes(),
    )];
    for r in runs {
        for (name, bytes) in report::run_files(&r.records, &r.summary, timeline) {
            files.push((PathBuf::from(&r.summary.policy).join(name), bytes));
        }
    }
    report::write_dir(out, &files, force)
}

/// A one-paragraph description of what is about to run.
pub fn describe(s: &Scenario) -> String {
    let workload = match &s.workload {
        WorkloadSource::Synthetic(w) => format!(
            "{} requests, {} arrivals at {:.1} req/min, mix {}, {} steps, SLO scale {}, seed {}",
            w.requests,
            arrival_name(&w.arrival),
            w.arrival.mean_rate_per_s() * 60.0,
            w.mix,
            w.steps,
            w.slo_scale,
            w.seed
        ),
        WorkloadSource::Trace { path, slo } => format!(
            "trace {} (SLO scale {} where rows give no slo_s)",
            path.display(),
            slo.scale
        ),
    };
    let policies: Vec<String> = s.policies.iter().map(PolicyKind::to_string).collect();
    format!(
        "scenario {}: {} node(s) x {} {} ({}), cost: {}\n  workload: {}\n  policies: {}",
        s.name,
        s.cluster.nodes,
        s.cluster.gpus_per_node,
        s.cluster.gpu,
        s.cluster.topology,
        s.cost_model().describe(),
        workload,
        policies.join(", ")
    )
}

fn arrival_name(a: &ArrivalProcess) -> String {
    match a {
        ArrivalProcess::Poisson { .. } => "Poisson".into(),
        ArrivalProcess::Gamma { cv, .. } => format!("Gamma (CV {cv})"),
        ArrivalProcess::Constant { .. } => "constant-rate".into(),
        ArrivalProcess::OnOff { on, off, .. } => format!("on/off ({on} on, {off} off)"),
    }
}

/// Writes to stdout, treating a closed pipe (`| head`) as success.
pub(super) fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("<stdout>", e)),
        Ok(()) => Ok(()),
    }
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
