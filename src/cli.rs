//! The command line: clap definitions (close to the flags) and the commands they run.
//!
//! Everything here is plumbing: parse flags, turn them into [`Overrides`] and a validated
//! [`Scenario`], call the library, print. Results go to stdout; messages for people to stderr.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{Error, Result};
use crate::metrics::Summary;
use crate::policy::PolicyKind;
use crate::report;
use crate::scenario::{Overrides, Scenario, WorkloadSource};
use crate::simulate::simulate;
use crate::workload::Resolution;
use crate::workload::arrival::ArrivalProcess;

const SIMULATE_EXAMPLES: &str = "\
Examples:
  tetriserve simulate                                   # the default scenario, every policy
  tetriserve simulate --policy rssp --slo-scale 1.2     # one policy, looser deadlines
  tetriserve simulate --scenario scenarios/default.toml --rate 18 --seed 7 --out runs/r18
  tetriserve simulate --trace traces/tiny.csv --profile profiles/h100-flux1-dev.csv --gpus 8 --policy xdit-sp4";

#[derive(Debug, Parser)]
#[command(
    name = "tetriserve",
    version,
    about = "Deadline-aware serving of Diffusion Transformers: simulate schedulers on GPU clusters."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay a workload under one or more scheduling policies and compare them.
    #[command(after_help = SIMULATE_EXAMPLES)]
    Simulate(SimulateArgs),
    /// Work with request traces.
    #[command(subcommand)]
    Trace(TraceCommand),
    /// List the scheduling policies.
    Policies,
    /// Measure per-step latency on the local GPU and write a profile CSV the simulator reads.
    #[command(
        after_help = "Example:\n  tetriserve profile --model flux1-dev -o profiles/h100-flux1-dev-measured.csv"
    )]
    Profile(ProfileArgs),
    /// Check the local GPU: libraries, devices, and the kernels against the CPU reference.
    GpuCheck,
    /// Run a scenario's `[sweep]` grid in parallel into DIR/results.csv (resumable).
    #[command(
        after_help = "Examples:\n  tetriserve sweep -s scenarios/paper/fig7-uniform.toml --out runs/fig7\n  tetriserve sweep -s big.toml --out runs/big --shard 3/16   # one slice of a job array\n  tetriserve merge runs/big"
    )]
    Sweep(SweepArgs),
    /// Join the results of a sharded sweep into DIR/results.csv.
    Merge {
        /// The sweep's output directory.
        dir: PathBuf,
    },
    /// Regenerate every figure of the paper's evaluation (in simulation) from scenarios/paper/.
    #[command(after_help = "Example:\n  tetriserve figures --out plots")]
    Figures {
        /// Output directory for the PNG/SVG figures, their data and README.md.
        #[arg(short, long, default_value = "plots")]
        out: PathBuf,
        /// The directory holding scenarios/paper/ (the repository root).
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
    /// Plot a sweep's results.csv (SLO attainment against one coordinate, one line per
    /// policy), or run directories (latency CDF, attainment and SP degree over time, GPU timelines).
    #[command(
        after_help = "Examples:\n  tetriserve plot runs/fig7/results.csv --x slo_scale --out plots/mine\n  tetriserve simulate --out runs/one\n  tetriserve plot --run runs/one/rssp --run runs/one/tetriserve --out plots/one"
    )]
    Plot {
        /// A sweep's results.csv.
        #[arg(required_unless_present = "run")]
        results: Option<PathBuf>,
        /// Instead: a run directory of `simulate --out DIR` (DIR/<policy>); repeatable.
        #[arg(long, value_name = "DIR")]
        run: Vec<PathBuf>,
        /// With --run: window of the over-time charts, seconds.
        #[arg(long, default_value_t = 60.0)]
        window: f64,
        /// With --run: how many seconds of each run the timelines show.
        #[arg(long, default_value_t = 180.0)]
        horizon: f64,
        /// The x coordinate: slo_scale, rate_per_min or granularity.
        #[arg(long, default_value = "slo_scale")]
        x: String,
        /// Output path without extension (PNG and SVG are written).
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Find the highest arrival rate that still meets a target SLO attainment.
    #[command(
        after_help = "Example:\n  tetriserve goodput --policy tetriserve --target 0.9 --seeds 1,2,3"
    )]
    Goodput(GoodputArgs),
    /// Paired comparison of two policies over the seeds of sweep results: mean gain in SLO
    /// attainment per grid point with a 95% confidence interval, wins/ties/losses.
    #[command(
        after_help = "Example:\n  tetriserve sweep -s scenarios/beyond/shed-bursty.toml --out runs/shed\n  tetriserve compare runs/shed/results.csv --baseline tetriserve --policy tetriserve-shed"
    )]
    Compare {
        /// Sweep results.csv files (rows of other policies are ignored).
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// The reference policy.
        #[arg(long)]
        baseline: String,
        /// The policy whose gain over the baseline is measured.
        #[arg(long)]
        policy: String,
        /// Compare the attainment of one resolution (e.g. 2048x2048) instead of the overall.
        #[arg(long, value_name = "WxH")]
        resolution: Option<String>,
        /// Also write the per-point table as CSV here.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
    },
    /// Measure the simulator's fidelity: profile the local GPU, replay a trace on it with
    /// `--real` and in simulation with that profile, and compare request by request.
    #[command(
        after_help = "Examples:\n  tetriserve validate --requests 16 --rate 60 --slo-scale 1.5 --out runs/validate\n  tetriserve validate --compare runs/real/tetriserve runs/sim/tetriserve --profile my-profile.csv"
    )]
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// The policy to replay.
    #[arg(short, long, default_value = "tetriserve")]
    pub policy: String,
    /// Replay this trace CSV instead of generating a workload.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Slots of the node: local GPUs, lanes of one GPU, or CPU rank threads (default: every
    /// local GPU; 4 on the CPU).
    #[arg(long)]
    pub gpus: Option<u32>,
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Instead of running: compare two run directories written by `simulate --out`, the real
    /// run's first (e.g. runs/real/tetriserve runs/sim/tetriserve).
    #[arg(long, num_args = 2, value_names = ["REAL_DIR", "SIM_DIR"])]
    pub compare: Option<Vec<PathBuf>>,
    /// With --compare: the profile the simulation used, for the overhead breakdown.
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// Write the profile, both runs, validation.md and validation-requests.csv here.
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace the output directory if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Scenario TOML with a [sweep] table; keys it leaves out come from the default scenario.
    #[arg(short, long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Output directory (results.csv; with --runs, runs/<point>/).
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
    /// Run only slice I of N (0-based): points whose index is I modulo N.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Also write every run's directory (requests.csv, works.csv, summary.json).
    #[arg(long)]
    pub runs: bool,
    /// Run every point again, even those with results.
    #[arg(long)]
    pub rerun: bool,
    /// Worker threads (default: all cores).
    #[arg(short, long)]
    pub jobs: Option<usize>,
}

#[derive(Debug, Args)]
pub struct GoodputArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// The policy to measure.
    #[arg(short, long = "policy")]
    pub policy: String,
    /// Target SLO attainment (0..1).
    #[arg(long, default_value_t = 0.9)]
    pub target: f64,
    /// Seeds averaged at each rate, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub seeds: Vec<u64>,
    /// Search range, requests per minute.
    #[arg(long, default_value_t = 1.0)]
    pub min_rate: f64,
    #[arg(long, default_value_t = 120.0)]
    pub max_rate: f64,
    /// Stop when the bracket is narrower than this (req/min).
    #[arg(long, default_value_t = 0.1)]
    pub tolerance: f64,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Model: flux1-dev, sd3-medium (or tiny).
    #[arg(long, default_value = "flux1-dev")]
    pub model: String,
    /// Square resolutions in pixels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "256,512,1024,2048")]
    pub resolutions: Vec<u32>,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub batches: Vec<u32>,
    /// SP degrees, comma-separated; degrees above 1 are emulated on one GPU (see README).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    pub degrees: Vec<u32>,
    /// Untimed steps before measuring each configuration.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed steps per configuration (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Output CSV (default: stdout).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Generate a synthetic trace CSV from a scenario's workload settings.
    #[command(
        after_help = "Example:\n  tetriserve trace generate --mix skewed --rate 18 --requests 500 --seed 3 -o traces/skewed-18.csv"
    )]
    Generate {
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Output file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Convert another tool's trace (vLLM-Omni DiT benchmark JSONL, Alibaba GenAI CSV) to trace CSV.
    #[command(
        after_help = "Resolutions missing from the trace come from --mix (with --seed); SLOs missing from it from the scenario (--slo-scale).\n\nExamples:\n  tetriserve trace import traces/samples/vllm-omni-dit.jsonl --format vllm-omni -o dit.csv\n  tetriserve trace import traces/samples/alibaba-genai.csv --format alibaba-genai --mix skewed --time-scale 4 -o genai.csv\n  tetriserve simulate --trace genai.csv"
    )]
    Import {
        /// The trace to read.
        input: PathBuf,
        /// Its format: vllm-omni or alibaba-genai.
        #[arg(long)]
        format: crate::workload::import::Format,
        /// Replay at this many times the trace's rate (arrival gaps divided by it).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Output file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// Flags that select and adjust a scenario (shared by `simulate` and `trace generate`).
#[derive(Debug, Args, Default)]
pub struct ScenarioArgs {
    /// Scenario TOML file; keys it leaves out come from the built-in default scenario.
    #[arg(short, long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Random seed for arrivals and resolutions (identical across policies).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Mean arrival rate, requests per minute.
    #[arg(long, value_name = "REQ_PER_MIN")]
    pub rate: Option<f64>,
    /// Arrival process: poisson, gamma, constant, on-off.
    #[arg(long)]
    pub arrival: Option<String>,
    /// Coefficient of variation of inter-arrival gaps (gamma arrivals).
    #[arg(long)]
    pub cv: Option<f64>,
    /// Number of requests to generate.
    #[arg(long)]
    pub requests: Option<usize>,
    /// Resolution mix: `uniform`, `skewed[:ALPHA]`, `homogeneous:1024`, `custom:256=1,1024=3`.
    #[arg(long)]
    pub mix: Option<String>,
    /// Denoising steps per request.
    #[arg(long)]
    pub steps: Option<u32>,
    /// Deadline = arrival + SCALE x per-resolution base SLO.
    #[arg(long, value_name = "SCALE")]
    pub slo_scale: Option<f64>,
    /// TetriServe round length in steps of the reference request (default 5).
    #[arg(long, value_name = "STEPS")]
    pub granularity: Option<u32>,
    /// TetriServe fixed round length in milliseconds (instead of --granularity).
    #[arg(long, value_name = "MS")]
    pub tau_ms: Option<f64>,
    /// TetriServe tie-break among packings with as many survivors: work or none.
    #[arg(long, value_name = "RULE")]
    pub tie_break: Option<String>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Policy to run (repeatable; `all` for every policy the cluster supports).
    #[arg(short, long = "policy", value_name = "POLICY")]
    pub policies: Vec<String>,
    /// Replay this trace CSV instead of generating requests.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Cost profile: a built-in name (h100-flux1-dev, a40-sd3-medium) or a CSV file.
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// Total GPUs (one node if it fits the node size, else nodes of --gpus-per-node).
    #[arg(long)]
    pub gpus: Option<u32>,
    /// Number of nodes.
    #[arg(long)]
    pub nodes: Option<u32>,
    /// GPUs per node.
    #[arg(long)]
    pub gpus_per_node: Option<u32>,
    /// Write each policy's requests.csv, summary.json and timeline.json under `DIR/<policy>/`.
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace an existing --out directory.
    #[arg(long)]
    pub force: bool,
    /// With --out: leave out timeline.json (one event per GPU per dispatch: large for huge runs).
    #[arg(long)]
    pub no_timeline: bool,
    /// With --out: how many works timeline.json shows, the first N in dispatch order or `all`
    /// (default 100000: larger traces are slow to open in a browser). A cut timeline says so
    /// in its last event and on stderr.
    #[arg(long, value_name = "N|all", value_parser = parse_timeline_works)]
    pub timeline_works: Option<crate::report::TimelineLimit>,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Run for real instead of simulating: one node of --gpus slots (local GPUs, lanes of one
    /// GPU, or CPU rank threads with --device cpu) runs the DiT (seeded random weights) under
    /// the same policies; times are measured.
    #[arg(long)]
    pub real: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// Where a real run executes (`simulate --real`, `validate`).
#[derive(Debug, Args, Default)]
pub struct BackendArgs {
    /// With --real: cuda (local GPUs; one GPU runs --gpus lanes, emulated) or cpu (rank
    /// threads running the CPU model; no GPU needed).
    #[arg(long, value_enum)]
    pub device: Option<DeviceArg>,
    /// With --real: the model to build: flux1-dev, sd3-medium, small, tiny (default: the
    /// profile's model on cuda, tiny on cpu).
    #[arg(long)]
    pub model: Option<String>,
    /// With --real: timed repeats per (resolution, degree) when the node is measured
    /// (default 3; the node is measured unless --profile gives the plans' step times).
    #[arg(long)]
    pub repeats: Option<usize>,
}

impl BackendArgs {
    /// Refuses the backend flags where nothing real runs.
    fn refuse_unless_real(&self, hint: &str) -> Result<()> {
        if self.device.is_some() || self.model.is_some() || self.repeats.is_some() {
            return Err(Error::config_hint(
                "--device, --model and --repeats choose and measure where a real run executes",
                hint,
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Cuda,
    Cpu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A human-readable comparison table.
    Table,
    /// comparison.csv.
    Csv,
    /// Every policy's summary.json, as a JSON array.
    Json,
}

impl ScenarioArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            seed: self.seed,
            rate_per_min: self.rate,
            arrival: self.arrival.clone(),
            cv: self.cv,
            requests: self.requests,
            mix: self.mix.clone(),
            steps: self.steps,
            slo_scale: self.slo_scale,
            granularity_steps: self.granularity,
            tau_ms: self.tau_ms,
            tie_break: self.tie_break.clone(),
            ..Overrides::default()
        }
    }
}

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
                    "wrote {} charts (PNG + SVG) next to {}",
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
            println!(
                "xdit-sp1, xdit-sp2, xdit-sp4, xdit-sp8  fixed SP degree, static groups, FCFS, non-preemptive (xDiT)"
            );
            println!(
                "rssp                                    resolution-specific fixed degree, FCFS, any free k-subset"
            );
            println!(
                "tetriserve                              the paper's scheduler: step-level SP degrees per round, DP packing,\n                                        placement preservation, elastic scale-up"
            );
            println!(
                "tetriserve-dp, tetriserve-dp-pp         ablations: DP packing only; DP + placement preservation"
            );
            println!(
                "tetriserve-shed                         tetriserve + overload shedding (beyond the paper): when a node's\n                                        GPU-seconds cannot cover every deadline, serve the most expensive\n                                        requests best-effort instead"
            );
            println!(
                "all                                     the baselines and tetriserve (what the paper compares)"
            );
            println!(
                "ablation                                tetriserve-dp, tetriserve-dp-pp, tetriserve"
            );
            Ok(())
        }
    }
}

/// `--timeline-works`: a positive number of works or `all`.
fn parse_timeline_works(v: &str) -> std::result::Result<crate::report::TimelineLimit, String> {
    use crate::report::TimelineLimit;
    if v.eq_ignore_ascii_case("all") {
        return Ok(TimelineLimit::All);
    }
    match v.parse::<usize>() {
        Ok(n) if n > 0 => Ok(TimelineLimit::First(n)),
        _ => Err(format!(
            "expected a positive number of works or `all`, got `{v}`"
        )),
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

fn run_profile(args: ProfileArgs) -> Result<()> {
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

fn run_gpu_check() -> Result<()> {
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

fn run_validate(args: ValidateArgs) -> Result<()> {
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

/// A measured profile of the real node, and the per-work overhead measured with it.
struct NodeProfile {
    csv: String,
    dispatch_ms: f64,
}

/// Builds the real node (`--device`, `--model`, `--gpus`) and the scenario it runs: one node
/// of that many slots. The policies plan with `--profile` if given; otherwise, on the CPU or
/// for a model the scenario's profile does not describe, with a profile of this node measured
/// now (and its per-work overhead), so that plans match what the node does.
fn real_node(
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
fn print_stdout(text: &str) -> Result<()> {
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
