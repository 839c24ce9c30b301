//! Clap definitions: every subcommand, its flags and their help, close together.
//!
//! Only parsing lives here; what a command does is in `cli/mod.rs` (simulation, traces,
//! sweeps, plots) and `cli/backend.rs` (commands that build the real backend).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{Error, Result};
use crate::scenario::Overrides;

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
        after_help = "Examples:\n  tetriserve sweep -s scenarios/paper/fig07-uniform.toml --out runs/fig7\n  tetriserve sweep -s big.toml --out runs/big --shard 3/16   # one slice of a job array\n  tetriserve merge runs/big"
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
        /// Output directory (created if missing); each chart is written into it as PNG and
        /// SVG, named after what it shows.
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
        after_help = "Example:\n  tetriserve sweep -s scenarios/beyond/shed-bursty-cv3.toml --out runs/shed\n  tetriserve compare runs/shed/results.csv --baseline tetriserve --policy tetriserve-shed"
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
    pub(super) fn refuse_unless_real(&self, hint: &str) -> Result<()> {
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
    pub(super) fn overrides(&self) -> Overrides {
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

/// `--timeline-works`: a positive number of works or `all`.
pub(super) fn parse_timeline_works(
    v: &str,
) -> std::result::Result<crate::report::TimelineLimit, String> {
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
