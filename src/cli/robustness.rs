//! `tetriserve robustness`: runs the search of `crate::robustness`, prints the distribution
//! and the worst configurations, and writes them (with replayable scenario files) to `--out`.

use std::fmt::Write as _;

use super::args::RobustnessArgs;
use crate::error::{Error, Result};
use crate::policy::PolicyKind;

/// `tetriserve robustness`: the search, its distribution and its worst configurations.
pub fn run_robustness(args: RobustnessArgs) -> Result<()> {
    use crate::robustness::{COLLAPSE_POINTS, SearchSpec, report, run, to_csv, worst, worst_knobs};
    let policy: PolicyKind = args
        .policy
        .parse()
        .map_err(|e: String| Error::config(format!("--policy `{}`: {e}", args.policy)))?;
    if let Some(s) = args
        .seeds
        .iter()
        .find(|s| args.seeds.iter().filter(|t| t == s).count() > 1)
    {
        return Err(Error::config_hint(
            format!("--seeds lists seed {s} more than once; a repeated seed is the same run"),
            "list distinct seeds, e.g. --seeds 1,2",
        ));
    }
    if args.force && args.out.is_none() {
        return Err(Error::config_hint(
            "--force replaces an existing --out directory, and there is no --out",
            "add --out DIR, or drop --force",
        ));
    }
    let staging = match &args.out {
        Some(dir) => Some(crate::report::Staging::create(dir, args.force)?),
        None => None,
    };
    let search = SearchSpec {
        configs: args.configs,
        sampler_seed: args.sampler_seed,
        seeds: args.seeds.clone(),
        requests: args.requests,
        policy,
    };
    let jobs = args.jobs.unwrap_or(0);
    if args.jobs.is_some() && !(1..=crate::sweep::MAX_JOBS).contains(&jobs) {
        return Err(Error::config_hint(
            format!(
                "--jobs {jobs}: expected 1 to {} worker threads",
                crate::sweep::MAX_JOBS
            ),
            "leave --jobs out to use one thread per core",
        ));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| Error::config(format!("starting worker threads: {e}")))?;
    let bar = indicatif::ProgressBar::new(args.configs as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} configurations, {elapsed} elapsed, ETA {eta}",
        )
        .expect("valid template"),
    );
    let tick = || bar.inc(1);
    let outcomes = pool.install(|| run(&search, &tick));
    bar.finish_and_clear();
    let outcomes = outcomes?;
    let rep = report(&search, &outcomes);
    // The report goes to stdout in one write, a full disk or a closed pipe handled there.
    let mut text = String::new();
    let _ = writeln!(
        text,
        "robustness: {} configurations x {} seed(s), {} requests each; {} minus the best fixed baseline (xdit-sp*, rssp), attainment points",
        rep.configs,
        rep.seeds.len(),
        args.requests,
        rep.policy
    );
    let pct: Vec<String> = rep
        .percentiles
        .iter()
        .map(|(p, g)| format!("p{p} {g:+.1}"))
        .collect();
    let _ = writeln!(
        text,
        "  mean {:+.2}, worst {:+.1}; {}; below the baseline in {} (by more than 2 points in {})",
        rep.mean_gap,
        rep.min_gap,
        pct.join(", "),
        rep.below,
        rep.below_2
    );
    let worst_list = worst(&outcomes, args.worst);
    if !worst_list.is_empty() {
        let _ = writeln!(
            text,
            "worst configurations (replay: tetriserve simulate -s FILE --seed SEED, the file from --out DIR/worst/):"
        );
    }
    for (rank, o) in worst_list.iter().enumerate() {
        let c = &o.config;
        let _ = writeln!(
            text,
            "  {:>2}. config {:>5}: {:+6.1} ({} {:.1} vs {} {:.1}, bound {:.1}) {}x{} GPUs, {}, {} steps, {}{}, load {}, {:.2} req/min, SLO {}x{}{}{}",
            rank + 1,
            c.index,
            o.gap(),
            rep.policy,
            o.policy,
            o.best_baseline.0,
            o.best_baseline.1,
            o.bound,
            c.nodes,
            c.gpus_per_node,
            c.mix,
            c.steps,
            c.arrival,
            c.cv.map(|v| format!(" cv {v}")).unwrap_or_default(),
            c.load,
            o.rate_per_min,
            c.slo_scale,
            if c.dispatch_ms > 0.0 {
                format!(", dispatch {} ms", c.dispatch_ms)
            } else {
                String::new()
            },
            if c.cache {
                ", cache".to_string()
            } else {
                String::new()
            },
            if c.skip_probability > 0.0 {
                format!(", skip {}", c.skip_probability)
            } else {
                String::new()
            },
        );
    }
    let _ = writeln!(
        text,
        "tetriserve with knobs drawn over their accepted ranges minus its defaults: mean {:+.2}, worst {:+.1}; collapses (more than {COLLAPSE_POINTS} points below): {}",
        rep.knob_mean_gap, rep.knob_min_gap, rep.knob_collapses
    );
    let worst_knob_list = worst_knobs(&outcomes, args.worst);
    for (rank, o) in worst_knob_list.iter().enumerate() {
        let c = &o.config;
        let _ = writeln!(
            text,
            "  {:>2}. config {:>5}: {:+6.1} ({} vs defaults {:.1}) {}x{} GPUs, {}, {} steps, {}, load {}",
            rank + 1,
            c.index,
            o.knob_gap(),
            c.knobs(),
            o.tetriserve_default,
            c.nodes,
            c.gpus_per_node,
            c.mix,
            c.steps,
            c.arrival,
            c.load,
        );
    }
    super::output::print_stdout(&text)?;
    if let Some(staging) = staging {
        staging.write("configs.csv", to_csv(&outcomes).as_bytes())?;
        for (rank, o) in worst_knob_list.iter().enumerate() {
            staging.write(
                format!("worst-knobs/{:02}-config-{}.toml", rank + 1, o.config.index),
                o.knob_scenario.as_bytes(),
            )?;
        }
        let json = serde_json::to_string_pretty(&rep)
            .map_err(|e| Error::config(format!("serialising the report: {e}")))?;
        staging.write("summary.json", json.as_bytes())?;
        for (rank, o) in worst_list.iter().enumerate() {
            staging.write(
                format!("worst/{:02}-config-{}.toml", rank + 1, o.config.index),
                o.scenario.as_bytes(),
            )?;
        }
        staging.commit()?;
        if let Some(dir) = &args.out {
            eprintln!("wrote {}", dir.display());
        }
    }
    Ok(())
}
