//! Clap definitions: every subcommand, its flags and their help, close together.
//!
//! Only parsing lives here; what a command does is in `cli/mod.rs` (simulation, traces,
//! sweeps, plots) and `cli/backend.rs` (commands that build the real backend).
//!
//! The flags that adjust a scenario come in groups (scenario file, workload generation,
//! deadlines, TetriServe tuning, trace replay, cluster and costs), each a flattened struct
//! with its own help heading, so that a command shows only the groups it acts on; each group
//! adds its values to [`Overrides`], which checks the combinations that depend on the
//! scenario (a generation flag beside a trace, `--cv` without gamma arrivals).

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
        after_help = "Examples:\n  tetriserve sweep -s scenarios/paper/fig07-uniform.toml --out runs/fig7\n  tetriserve sweep -s big.toml --out runs/big --shard 3/16   # one slice of sixteen\n  tetriserve sweep -s big.toml --out /shared/big --shard auto  # inside a Slurm array or Kubernetes Indexed Job\n  tetriserve merge runs/big\n\nA point whose results exist in --out for the same scenario digest is reused; results made from\nanother scenario are refused, naming what changed (--rerun replaces them). docs/job-array.md\nhas the batch-system recipe."
    )]
    Sweep(SweepArgs),
    /// Join the results of a sharded sweep into DIR/results.csv: every shard of one slicing
    /// present and finished, all made from the same scenario (refused otherwise, naming the files).
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
        /// Draw only these figures (comma-separated keys, e.g. `fig13,beyond-cluster-scale`;
        /// an unknown key is refused with the list), replacing only their sections of
        /// README.md.
        #[arg(long, value_name = "KEYS", value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Plot a sweep's results.csv (SLO attainment against one coordinate, one line per
    /// policy), or run directories (latency CDF, attainment and SP degree over time, GPU timelines).
    #[command(
        after_help = "Examples:\n  tetriserve plot runs/fig7/results.csv --x slo_scale --out plots/mine\n  tetriserve plot runs/fig7/results.csv --x rate_per_min --y latency_p99 --out plots/mine\n  tetriserve simulate --out runs/one\n  tetriserve plot --run runs/one/rssp --run runs/one/tetriserve --out plots/one"
    )]
    Plot {
        /// A sweep's results.csv.
        #[arg(required_unless_present = "run", conflicts_with = "run")]
        results: Option<PathBuf>,
        /// Instead: a run directory of `simulate --out DIR` (DIR/<policy>); repeatable.
        #[arg(long, value_name = "DIR")]
        run: Vec<PathBuf>,
        /// With --run: window of the over-time charts, seconds (default 60).
        #[arg(long, value_name = "SECONDS")]
        window: Option<f64>,
        /// With --run: how many seconds of each run the timelines show (default 180).
        #[arg(long, value_name = "SECONDS")]
        horizon: Option<f64>,
        /// With --run: where the timelines start, seconds into the run (default 0), to zoom into
        /// a burst in the middle of a run.
        #[arg(long, value_name = "SECONDS")]
        from: Option<f64>,
        /// With a results.csv: the x coordinate, any grid dimension (slo_scale, the default;
        /// rate_per_min, granularity, cv, gpus, nodes, gpus_per_node, steps, profile, mix,
        /// arrival).
        #[arg(long, conflicts_with = "run")]
        x: Option<String>,
        /// With a results.csv: the y metric, attainment (the default; percent, with the upper
        /// bound dashed), latency_p50, latency_p90, latency_p99 (seconds), gpu_hours (busy),
        /// or a cost column: gpu_hours_busy, gpu_hours_provisioned, usd, usd_per_1k_met_images,
        /// energy_wh, wh_per_met_image.
        #[arg(long, conflicts_with = "run")]
        y: Option<String>,
        /// With a results.csv: the chart's title (default: the metric by the dimension).
        #[arg(long, conflicts_with = "run")]
        title: Option<String>,
        /// With a results.csv: a dashed reference line at this y value, in the metric's unit
        /// (e.g. --target 95 on an attainment chart).
        #[arg(long, value_name = "Y", conflicts_with = "run")]
        target: Option<f64>,
        /// With a results.csv: a line of text under the chart (what was run, the source).
        #[arg(long, conflicts_with = "run")]
        caption: Option<String>,
        /// Output directory (created if missing); each chart is written into it as PNG and SVG,
        /// named after what it shows (e.g. DIR/attainment-vs-slo_scale.png, DIR/latency-cdf.png).
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Capacity planning: the highest arrival rate (or scale of a log's rate) that still meets
    /// a target SLO attainment, or with --min-gpus the fewest GPUs that do; with the cost.
    #[command(
        after_help = "Examples:\n  tetriserve goodput --policy tetriserve --target 0.9 --seeds 1,2,3\n  tetriserve goodput --policy tetriserve --trace my-log.csv --format json\n  tetriserve goodput --policy tetriserve --min-gpus --rate 12\n  tetriserve goodput --policy rssp --min-gpus --trace my-log.csv --time-scale 2"
    )]
    Goodput(GoodputArgs),
    /// Robustness search: random configurations (1-4 nodes, mixes, steps, arrivals, SLOs,
    /// loads, overheads, caching, skipping), every policy on each, and the distribution of the
    /// best policy's attainment minus the best fixed baseline's, worst cases first
    #[command(
        after_help = "Examples:\n  tetriserve robustness --configs 200 --seeds 1,2\n  tetriserve robustness --configs 1000 --out runs/robust   # configs.csv, summary.json, worst/*.toml\n  tetriserve simulate -s runs/robust/worst/01-config-137.toml --seed 1   # replay one\n\nConfiguration I of --sampler-seed S is the same whatever --configs is, so a search can grow."
    )]
    Robustness(RobustnessArgs),
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
        /// Compare the attainment of one resolution (e.g. 2048x2048, or a video clip such as
        /// 832x480x81f or video:480p:81) instead of the overall.
        #[arg(long, value_name = "WxH")]
        resolution: Option<String>,
        /// Also write the per-point table as CSV here.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
    },
    /// Measure the simulator's fidelity: measure the real node (local GPUs, or CPU rank
    /// threads with --device cpu), run a trace on it (--runs times, for the noise floor) and
    /// in simulation with the measured profile, compare request by request, and split the
    /// error by cause (service time, per-work overhead, schedule divergence).
    #[command(
        after_help = "Examples:\n  tetriserve validate --requests 16 --rate 60 --slo-scale 1.5 --out runs/validate\n  tetriserve validate --device cpu --model small --gpus 2 --requests 12 --mix custom:512=1,1024=1 --steps 12\n  tetriserve validate --compare runs/real/tetriserve runs/sim/tetriserve --profile my-profile.csv\n\nOn the CPU, deadlines are relative to the measured node by default (--slo-from)."
    )]
    Validate(ValidateArgs),
    /// The true optimum on small windows of a scenario's workload (an exact search), beside
    /// the upper bound and what every policy meets: how much of the gap is the bound's
    /// looseness and how much the policies' loss.
    #[command(
        after_help = "Examples:\n  tetriserve optimum --window 30 --windows 4\n  tetriserve optimum --mix skewed --rate 24 --window 20 --windows 3 --format csv\n  tetriserve optimum --trace my-log.csv --gpus 4 --policy tetriserve --policy rssp\n  tetriserve optimum --gpus 16 --mix skewed --rate 25 --seeds 1,2,3\n\nWindows start at idle points (every earlier deadline has passed). Each policy's count is the window's requests it meets in its run over the whole workload, and (in brackets) with the window replayed alone; docs/optimum.md has the model."
    )]
    Optimum(OptimumArgs),
}

#[derive(Debug, Args)]
pub struct OptimumArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Policy to compare (repeatable; `all` for the paper's set and the policies beyond it, `paper`
    /// for the paper's set only; default: every registered policy the cluster can run).
    #[arg(short, long = "policy", value_name = "POLICY")]
    pub policies: Vec<String>,
    #[command(flatten)]
    pub trace: TraceArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Requests per window (the exact search is meant for 20 to 40).
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub window: usize,
    /// How many windows, one after another from the start of the workload.
    #[arg(long, value_name = "M", default_value_t = 4)]
    pub windows: usize,
    /// Search nodes per window; a window whose search needs more reports its best schedule and
    /// a proven upper bound instead of the optimum.
    #[arg(long, value_name = "NODES", default_value_t = 2_000_000)]
    pub effort: u64,
    /// Generated workloads: study each of these seeds (comma-separated; each seed's windows,
    /// then totals over all), instead of the one `--seed` or the scenario gives.
    #[arg(long, value_name = "S1,S2,..", value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// What to print on stdout: a Markdown table per window with totals, one JSON object, or
    /// CSV rows (one per window, then a total row).
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
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
    /// local GPU; on the CPU, the largest power of two up to 4 that the cores hold).
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
    /// Real runs of the trace (at least 1, at most 20): the first is set against the
    /// simulation, every other against the first, as the noise floor the simulation's error
    /// is judged by.
    #[arg(long, value_name = "R", default_value_t = 2)]
    pub runs: usize,
    /// Write the profile, the runs, validation.md, validation-requests.csv and the error
    /// split (split.md, split.csv) here.
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
    /// Run only slice I of N (0-based): points whose index is I modulo N. `auto` takes I and N
    /// from a job array ($SLURM_ARRAY_TASK_ID/_COUNT, or $JOB_COMPLETION_INDEX with
    /// $TETRISERVE_SHARDS).
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<String>,
    /// Also write every run's directory (requests.csv, works.csv, summary.json).
    #[arg(long)]
    pub runs: bool,
    /// Run every point again, replacing the results in --out (also those made from another scenario).
    #[arg(long)]
    pub rerun: bool,
    /// Worker threads (default: all cores).
    #[arg(short, long)]
    pub jobs: Option<usize>,
}

#[derive(Debug, Args)]
pub struct RobustnessArgs {
    /// How many random configurations to run.
    #[arg(long, default_value_t = 200)]
    pub configs: usize,
    /// Workload seeds each configuration runs with; policies are compared on their mean.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub seeds: Vec<u64>,
    /// Seed of the sampler: which configurations are drawn.
    #[arg(long, default_value_t = 1)]
    pub sampler_seed: u64,
    /// Requests per run.
    #[arg(long, default_value_t = 150)]
    pub requests: usize,
    /// The policy whose robustness is measured (against the best of xdit-sp* and rssp).
    #[arg(short, long, default_value = "stepwise")]
    pub policy: String,
    /// How many of the worst configurations to list.
    #[arg(long, default_value_t = 10)]
    pub worst: usize,
    /// Write configs.csv (one row per configuration), summary.json and worst/NN-config-I.toml
    /// (scenario files that replay the worst configurations) into DIR.
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace an existing --out directory.
    #[arg(long)]
    pub force: bool,
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
    /// Plan from this log (trace CSV) instead of a generated workload: search how many times
    /// its rate the cluster holds (arrival gaps divided by the scale, SLOs kept).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Target SLO attainment (0..1).
    #[arg(long, default_value_t = 0.9)]
    pub target: f64,
    /// Generated workloads: seeds averaged at each point, comma-separated (default 1,2,3).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Generated workloads: lowest rate searched, requests per minute (default 1).
    #[arg(long)]
    pub min_rate: Option<f64>,
    /// Generated workloads: highest rate searched, requests per minute (default 120).
    #[arg(long)]
    pub max_rate: Option<f64>,
    /// With --trace: lowest scale of the log's rate searched (default 0.1).
    #[arg(long)]
    pub min_scale: Option<f64>,
    /// With --trace: highest scale of the log's rate searched (default 20).
    #[arg(long)]
    pub max_scale: Option<f64>,
    /// Stop when the bracket is narrower than this many requests per minute (default 0.1).
    #[arg(long, value_name = "REQ_PER_MIN")]
    pub tolerance: Option<f64>,
    /// GPUs of the cluster the rate search runs on (default: the scenario's).
    #[arg(long)]
    pub gpus: Option<u32>,
    /// Instead of the rate: the fewest GPUs (powers of two below the node size, then whole
    /// nodes) that meet --target at --rate, or at the log's rate times --time-scale.
    #[arg(long)]
    pub min_gpus: bool,
    /// With --min-gpus: the largest cluster tried (default 64).
    #[arg(long)]
    pub max_gpus: Option<u32>,
    /// With --min-gpus: size this pool of disaggregated stages instead of the cluster (every
    /// count from 1 to --max-gpus; the scenario's [stages] must be disaggregated).
    #[arg(long, value_enum, value_name = "STAGE")]
    pub pool: Option<PoolArg>,
    /// With --min-gpus and a log: replay it at this many times its rate (default 1).
    #[arg(long, value_name = "F")]
    pub time_scale: Option<f64>,
    /// What meeting --target means at a point: the mean over the seeds, the lower end of its
    /// 95% confidence interval, every seed on its own, or every resolution on its own.
    #[arg(long, value_enum, default_value_t = CriterionArg::Mean)]
    pub criterion: CriterionArg,
    /// Generated workloads: search again with twice --requests per seed, and say whether the
    /// answer holds (a stable answer does not move when the runs get longer).
    #[arg(long)]
    pub stability: bool,
    /// Also measure the whole range and write DIR/curve.csv with DIR/attainment.png/.svg and
    /// DIR/cost.png/.svg: every cluster size up to --max-gpus (with --min-gpus), or
    /// --curve-points loads from the lowest to the highest of the rate search.
    #[arg(long, value_name = "DIR")]
    pub curve: Option<PathBuf>,
    /// With --curve and the rate search: how many loads, evenly spaced (default 8, at most 64).
    #[arg(long, value_name = "N")]
    pub curve_points: Option<usize>,
    /// With --curve: replace an existing DIR (one tetriserve wrote).
    #[arg(long)]
    pub force: bool,
    /// What to print on stdout: a line for people, or one JSON object / CSV row with every field.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
}

/// `goodput --pool`: which pool of disaggregated stages a GPU search sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PoolArg {
    /// The text encoders' pool.
    Encode,
    /// The VAE decoders' pool.
    Decode,
}

impl From<PoolArg> for crate::goodput::Pool {
    fn from(p: PoolArg) -> Self {
        match p {
            PoolArg::Encode => crate::goodput::Pool::Encode,
            PoolArg::Decode => crate::goodput::Pool::Decode,
        }
    }
}

/// `goodput --criterion`: what meeting the target means at a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CriterionArg {
    /// The mean attainment over the seeds.
    Mean,
    /// The lower end of the mean's 95% confidence interval over the seeds.
    CiLower,
    /// Every seed on its own.
    EverySeed,
    /// Every resolution on its own (its requests pooled over the seeds).
    EveryResolution,
}

impl From<CriterionArg> for crate::goodput::Criterion {
    fn from(c: CriterionArg) -> Self {
        use crate::goodput::Criterion;
        match c {
            CriterionArg::Mean => Criterion::Mean,
            CriterionArg::CiLower => Criterion::CiLower,
            CriterionArg::EverySeed => Criterion::EverySeed,
            CriterionArg::EveryResolution => Criterion::EveryResolution,
        }
    }
}

/// How `goodput` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// One line for people.
    Table,
    /// One JSON object with every field.
    Json,
    /// A header and one row with every field.
    Csv,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Model: flux1-dev, sd3-medium (or tiny).
    #[arg(long, default_value = "flux1-dev")]
    pub model: String,
    /// A first profile in minutes: batch 1, SP 1 and the emulated degrees 2-8, 1 warm-up and
    /// 3 timed steps. Flags given beside it override its values.
    #[arg(long)]
    pub quick: bool,
    /// Square resolutions in pixels, comma-separated [default: 256,512,1024,2048].
    #[arg(long, value_delimiter = ',')]
    pub resolutions: Option<Vec<u32>>,
    /// Batch sizes, comma-separated [default: 1,2,4; --quick: 1].
    #[arg(long, value_delimiter = ',')]
    pub batches: Option<Vec<u32>>,
    /// SP degrees, comma-separated; degrees above 1 are emulated on one GPU (see README)
    /// [default: 1,2,4,8].
    #[arg(long, value_delimiter = ',')]
    pub degrees: Option<Vec<u32>>,
    /// Untimed steps before measuring each configuration [default: 2; --quick: 1].
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Timed steps per configuration (the median is reported) [default: 5; --quick: 3].
    #[arg(long)]
    pub repeats: Option<usize>,
    /// Output CSV (default: stdout). Rows are written as they are measured, so an interrupted
    /// run keeps every row it finished.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Generate a synthetic trace CSV from a scenario's workload settings.
    #[command(
        after_help = "The trace's slo_s column holds each request's SLO at the chosen --slo-scale; replaying it with `simulate --trace` at the default scale 1 keeps those deadlines.\n\nExample:\n  tetriserve trace generate --mix skewed --rate 18 --requests 500 --seed 3 -o traces/skewed-18.csv"
    )]
    Generate {
        #[command(flatten)]
        file: ScenarioFileArgs,
        #[command(flatten)]
        workload: WorkloadArgs,
        #[command(flatten)]
        slo: SloArgs,
        /// Output file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Convert another tool's trace (vLLM-Omni DiT benchmark JSONL, Alibaba GenAI CSV) to trace CSV.
    #[command(
        after_help = "Resolutions missing from the trace are drawn from --mix (with --seed); step counts missing from it are --steps. slo_s is written only where the trace gives an SLO: the other rows get their deadline when replayed (`simulate --trace`: --slo-scale x the scenario's base for the resolution).\n\nExamples:\n  tetriserve trace import traces/samples/vllm-omni-dit.jsonl --format vllm-omni -o dit.csv\n  tetriserve trace import traces/samples/alibaba-genai.csv --format alibaba-genai --mix skewed --time-scale 4 -o genai.csv\n  tetriserve simulate --trace genai.csv --slo-scale 1.5"
    )]
    Import {
        /// The trace to read.
        input: PathBuf,
        /// Its format: vllm-omni or alibaba-genai.
        #[arg(long)]
        format: crate::workload::import::LogFormat,
        /// Replay at this many times the trace's rate (arrival gaps divided by it).
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        #[command(flatten)]
        file: ScenarioFileArgs,
        #[command(flatten)]
        fill: ImportFillArgs,
        /// Output file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// `--scenario`: the file every command that reads a scenario starts from.
#[derive(Debug, Args, Default, Clone)]
pub struct ScenarioFileArgs {
    /// Scenario TOML file; keys it leaves out come from the built-in default scenario.
    #[arg(short, long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
}

/// Flags that shape a generated workload (`[workload]` and `seed` of a scenario).
///
/// They are refused beside a trace (`--trace` or `workload.trace`), which fixes every request.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Workload generation (refused with a trace)")]
pub struct WorkloadArgs {
    /// Random seed for arrivals and resolutions (identical across policies).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Mean arrival rate, requests per minute.
    #[arg(long, value_name = "REQ_PER_MIN")]
    pub rate: Option<f64>,
    /// Arrival process: poisson, gamma (with --cv), constant, on-off (with --on-s, --off-s).
    #[arg(long)]
    pub arrival: Option<String>,
    /// Coefficient of variation of inter-arrival gaps (gamma arrivals; 1 = Poisson, 2-4 = bursty).
    #[arg(long)]
    pub cv: Option<f64>,
    /// Length of each burst, seconds (on-off arrivals: requests arrive at the rate only then).
    #[arg(long, value_name = "SECONDS")]
    pub on_s: Option<f64>,
    /// Length of each silence between bursts, seconds (on-off arrivals).
    #[arg(long, value_name = "SECONDS")]
    pub off_s: Option<f64>,
    /// Number of requests to generate.
    #[arg(long)]
    pub requests: Option<usize>,
    /// Resolution mix: `uniform`, `skewed[:ALPHA]`, `homogeneous:1024`, `custom:256=1,1024=3`
    /// (weights) or `custom:512=45%,1024=45%,2048=10%` (percentages summing to 100). A
    /// resolution may be a video clip, `video:720p:81` or `1280x720x81f` (81 frames of
    /// 1280x720), costed by a video model: `custom:1024=90%,video:720p:81=10%`.
    #[arg(long)]
    pub mix: Option<String>,
    /// Denoising steps per request.
    #[arg(long)]
    pub steps: Option<u32>,
}

/// What `trace import` fills in where the imported trace is silent.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Filling gaps in the trace")]
pub struct ImportFillArgs {
    /// Seed for the resolutions drawn from --mix.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Resolution mix for rows without a resolution (see `simulate --help`).
    #[arg(long)]
    pub mix: Option<String>,
    /// Denoising steps for rows without a step count.
    #[arg(long)]
    pub steps: Option<u32>,
}

/// Deadlines (`[slo]` of a scenario).
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Deadlines")]
pub struct SloArgs {
    /// Deadline = arrival + SCALE x the request's SLO at scale 1: a trace row's slo_s, else the
    /// scenario's base for its resolution ([slo] bases_s).
    #[arg(long, value_name = "SCALE")]
    pub slo_scale: Option<f64>,
    /// A resolution's SLO base in seconds, replacing the scenario's for it ([slo] bases_s;
    /// repeatable, at most 64, one per resolution): `--slo-base 2048=7.5` (a square), `--slo-base 1024x768=4`
    /// or `--slo-base video:720p:81=3000` (a video).
    /// The deadline is still --slo-scale x the base.
    #[arg(long, value_name = "RES=SECONDS", value_parser = parse_slo_base)]
    pub slo_base: Vec<(crate::workload::Resolution, f64)>,
}

/// The largest `--slo-base` in seconds: one day, far past any image's deadline (a larger
/// value is a slip of units, e.g. milliseconds).
pub const MAX_SLO_BASE_S: f64 = 86_400.0;

/// `--slo-base RES=SECONDS`: a valid resolution (as the mix writes it, `2048` a square) and a
/// positive number of seconds up to [`MAX_SLO_BASE_S`].
fn parse_slo_base(v: &str) -> std::result::Result<(crate::workload::Resolution, f64), String> {
    let (res, secs) = v
        .split_once('=')
        .ok_or_else(|| format!("expected RES=SECONDS (e.g. 2048=7.5 or 1024x768=4), got `{v}`"))?;
    let res: crate::workload::Resolution = res.trim().parse()?;
    res.validate()?;
    let secs_text = secs.trim();
    let secs: f64 = secs_text
        .parse()
        .map_err(|_| format!("`{secs_text}` is not a number of seconds (e.g. 2048=7.5)"))?;
    if !(secs.is_finite() && secs > 0.0 && secs <= MAX_SLO_BASE_S) {
        return Err(format!(
            "the base for {res} must be more than 0 and at most {MAX_SLO_BASE_S} seconds (one day), got {}",
            crate::error::show_number(secs)
        ));
    }
    if crate::time::Nanos::try_from_secs(secs).is_none_or(|n| n == crate::time::Nanos::ZERO) {
        return Err(format!(
            "the base for {res}, {} s, rounds to 0 ns; give a positive number of seconds",
            crate::error::show_number(secs)
        ));
    }
    Ok((res, secs))
}

/// TetriServe's tuning (`[policy.tetriserve]`); refused when no TetriServe policy runs.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "TetriServe tuning")]
pub struct TetriserveArgs {
    /// Round length in steps of the reference request (default 5).
    #[arg(long, value_name = "STEPS")]
    pub granularity: Option<u32>,
    /// Fixed round length in milliseconds (instead of --granularity).
    #[arg(long, value_name = "MS")]
    pub tau_ms: Option<f64>,
    /// Tie-break among packings with as many survivors: work or none.
    #[arg(long, value_name = "RULE")]
    pub tie_break: Option<String>,
}

/// A trace to replay instead of a generated workload.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Trace replay")]
pub struct TraceArgs {
    /// Replay this trace CSV instead of generating requests.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Replay the trace at F times its rate: arrival times divided by F (SLOs unchanged), as
    /// `trace import --time-scale` does.
    #[arg(long, value_name = "F")]
    pub time_scale: Option<f64>,
}

/// The cluster and its costs (`[cluster]` and `[cost]` of a scenario).
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Cluster and costs")]
pub struct ClusterArgs {
    /// Cost profile: a built-in name (h100-flux1-dev, a40-sd3-medium) or a CSV file. Only the
    /// costs change: SLO bases and RSSP degrees stay the scenario's (scenarios/a40-sd3-medium.toml
    /// fits the a40 profile).
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
    /// Where the text encoder and VAE run: colocated (on each request's denoising GPUs, the
    /// default) or disaggregated (on pools of their own; `[stages]` in a scenario).
    #[arg(long, value_name = "MODE")]
    pub stages: Option<String>,
    /// GPUs of the encode pool (disaggregated stages; default 1).
    #[arg(long, value_name = "N")]
    pub encode_gpus: Option<u32>,
    /// GPUs of the decode pool (disaggregated stages; default 1).
    #[arg(long, value_name = "N")]
    pub decode_gpus: Option<u32>,
}

/// Every flag that adjusts a scenario's workload, deadlines and TetriServe tuning, with the
/// scenario file: what `simulate`, `validate` and `goodput` share.
#[derive(Debug, Args, Default, Clone)]
pub struct ScenarioArgs {
    /// Scenario TOML file; keys it leaves out come from the built-in default scenario.
    #[arg(short, long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub slo: SloArgs,
    #[command(flatten)]
    pub tetriserve: TetriserveArgs,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Policy to run (repeatable; `all` for the paper's comparison and the policies beyond it,
    /// `paper` for the paper's comparison only, `ablation` for TetriServe's ablations).
    #[arg(short, long = "policy", value_name = "POLICY")]
    pub policies: Vec<String>,
    /// Whether video clips may be preempted at step boundaries: step-boundary (the default:
    /// paused, cut or moved between steps like images) or none (a clip, once started, runs all
    /// its steps on its GPUs). Refused when the generated mix holds no video.
    #[arg(long, value_name = "MODE")]
    pub video_preemption: Option<String>,
    #[command(flatten)]
    pub trace: TraceArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Write each policy's requests.csv, summary.json and timeline.json under `DIR/<policy>/`.
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace an existing --out directory.
    #[arg(long)]
    pub force: bool,
    /// With --out: leave out timeline.json (one event per GPU per row of works.csv: large for
    /// huge runs).
    #[arg(long)]
    pub no_timeline: bool,
    /// With --out: how many rows of works.csv timeline.json shows (a row is a work, or a
    /// merged run of works: see --work-rows), the first N or `all` (default 100000: larger
    /// traces are slow to open in a browser). A cut timeline says so in its last event and
    /// on stderr.
    #[arg(long, value_name = "N|all", value_parser = parse_timeline_works)]
    pub timeline_works: Option<crate::report::TimelineLimit>,
    /// With --out: `merged` (default) writes a run of works that continue one another (the
    /// same batch on the same GPUs, each starting the nanosecond the previous ended, steps in
    /// sequence) as one row of works.csv and one slice of timeline.json, with its count in
    /// the `works` column; `each` writes one row per work.
    #[arg(long, value_enum, value_name = "merged|each")]
    pub work_rows: Option<WorkRowsArg>,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also show each policy's SLO attainment per resolution (table: a second table; csv: one
    /// `slo_attainment_<WxH>` column per resolution; JSON always holds `per_resolution`).
    #[arg(long)]
    pub by_resolution: bool,
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
    /// Real runs only (simulate --real, validate): cuda (local GPUs; one GPU runs --gpus
    /// lanes, emulated) or cpu (rank threads running the CPU model; no GPU needed).
    #[arg(long, value_enum)]
    pub device: Option<DeviceArg>,
    /// Real runs only: the model to build: flux1-dev, sd3-medium, small, tiny (default: the
    /// profile's model on cuda; on cpu, tiny for simulate --real and small for validate).
    #[arg(long)]
    pub model: Option<String>,
    /// Real runs only: timed repeats per (resolution, degree) when the node is measured
    /// (default 3; the node is measured unless --profile gives the plans' step times).
    #[arg(long)]
    pub repeats: Option<usize>,
    /// Real runs only: where the deadlines come from. `node`: each resolution's SLO base is
    /// its lone-request time at SP1 on the measured node (steps x step time + per-work
    /// overhead), times --slo-scale; the default on cpu, whose steps take milliseconds.
    /// `scenario`: the scenario's bases in seconds (the default on cuda, and wherever
    /// --slo-base is given).
    #[arg(long, value_enum, value_name = "node|scenario")]
    pub slo_from: Option<SloFrom>,
}

/// `--slo-from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SloFrom {
    Node,
    Scenario,
}

impl BackendArgs {
    /// Refuses the backend flags where nothing real runs.
    pub fn refuse_unless_real(&self, hint: &str) -> Result<()> {
        if self.device.is_some()
            || self.model.is_some()
            || self.repeats.is_some()
            || self.slo_from.is_some()
        {
            return Err(Error::config_hint(
                "--device, --model, --repeats and --slo-from choose and measure where a real run executes",
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

/// `simulate --work-rows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkRowsArg {
    /// A run of works that continue one another is one row.
    Merged,
    /// One row per work.
    Each,
}

impl From<WorkRowsArg> for crate::report::WorkRows {
    fn from(a: WorkRowsArg) -> Self {
        match a {
            WorkRowsArg::Merged => crate::report::WorkRows::Merged,
            WorkRowsArg::Each => crate::report::WorkRows::Each,
        }
    }
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
    /// The overrides of every group, for [`crate::scenario::Scenario::load`].
    pub fn overrides(&self) -> Overrides {
        let mut o = Overrides::default();
        self.workload.add_to(&mut o);
        self.slo.add_to(&mut o);
        self.tetriserve.add_to(&mut o);
        o
    }
}

impl SimulateArgs {
    /// What `simulate` changes in its scenario: every scenario group, the policies, the trace
    /// and the cluster.
    pub fn overrides(&self) -> Overrides {
        let mut o = self.scenario.overrides();
        o.policies = self.policies.clone();
        o.video_preemption = self.video_preemption.clone();
        self.trace.add_to(&mut o);
        self.cluster.add_to(&mut o);
        o
    }
}

impl WorkloadArgs {
    pub fn add_to(&self, o: &mut Overrides) {
        o.seed = self.seed;
        o.rate_per_min = self.rate;
        o.arrival = self.arrival.clone();
        o.cv = self.cv;
        o.on_s = self.on_s;
        o.off_s = self.off_s;
        o.requests = self.requests;
        o.mix = self.mix.clone();
        o.steps = self.steps;
    }
}

impl ImportFillArgs {
    pub fn add_to(&self, o: &mut Overrides) {
        o.seed = self.seed;
        o.mix = self.mix.clone();
        o.steps = self.steps;
    }
}

impl SloArgs {
    pub fn add_to(&self, o: &mut Overrides) {
        o.slo_scale = self.slo_scale;
        o.slo_bases = self.slo_base.clone();
    }
}

impl TetriserveArgs {
    pub fn add_to(&self, o: &mut Overrides) {
        o.granularity_steps = self.granularity;
        o.tau_ms = self.tau_ms;
        o.tie_break = self.tie_break.clone();
    }
}

impl TraceArgs {
    pub fn add_to(&self, o: &mut Overrides) {
        o.trace = self.trace.clone();
        o.time_scale = self.time_scale;
    }
}

impl ClusterArgs {
    pub fn add_to(&self, o: &mut Overrides) {
        o.profile = self.profile.clone();
        o.gpus = self.gpus;
        o.nodes = self.nodes;
        o.gpus_per_node = self.gpus_per_node;
        o.stages = self.stages.clone();
        o.encode_gpus = self.encode_gpus;
        o.decode_gpus = self.decode_gpus;
    }
}

/// `--timeline-works`: a positive number of rows or `all`.
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
            "expected a positive number of rows or `all`, got `{v}`"
        )),
    }
}
