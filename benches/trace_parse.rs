//! Benchmarks of reading request traces from memory (run with `cargo bench --bench trace_parse`).
//!
//! - `parse_trace`: the trace CSV reader on a generated trace of `n` rows (the format
//!   `trace generate` writes and `simulate --trace` reads).
//! - `to_csv`: writing the same workload as trace CSV.
//! - `import_vllm_omni`, `import_alibaba_genai`: `trace import` on `n` rows of each format.
//!
//! Each reports rows per second (divan's item counter) besides the time per run.

use divan::Bencher;
use divan::counter::ItemsCount;
use tetriserve::workload::arrival::ArrivalProcess;
use tetriserve::workload::generate::{WorkloadSpec, generate};
use tetriserve::workload::import::{ImportOptions, LogFormat, import};
use tetriserve::workload::mix::{Mix, Sampling, paper_resolutions};
use tetriserve::workload::trace::{SloDefaults, parse_trace, to_csv};
use tetriserve::workload::{SloBases, Workload};

fn main() {
    divan::main();
}

const ROWS: [usize; 3] = [10_000, 100_000, 1_000_000];

/// `n` paper requests at 80 per second (a busy cluster's rate, so arrivals have many digits).
fn workload(n: usize) -> Workload {
    let mut spec = WorkloadSpec::paper(1);
    spec.requests = n;
    spec.arrival = ArrivalProcess::Poisson { rate_per_s: 80.0 };
    generate(&spec).expect("paper workload")
}

/// The workload as vLLM-Omni JSONL, shaped like `traces/samples/vllm-omni-dit.jsonl` (every
/// other row with an `slo_ms`).
fn vllm_omni_text(w: &Workload) -> String {
    let mut out = String::new();
    for r in &w.requests {
        let slo = if r.label % 2 == 0 {
            format!(", \"slo_ms\": {}", r.slo().0 / 1_000_000)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{{\"prompt\": \"synthetic prompt {}\", \"width\": {}, \"height\": {}, \"num_inference_steps\": {}, \"seed\": {}, \"arrival\": {}{slo}}}\n",
            r.label,
            r.resolution.width,
            r.resolution.height,
            r.steps,
            r.label,
            r.arrival.secs_string(),
        ));
    }
    out
}

/// The workload's arrivals as an Alibaba GenAI CSV export, shaped like
/// `traces/samples/alibaba-genai.csv`.
fn alibaba_text(w: &Workload) -> String {
    let mut out = String::from("request_id,timestamp,model,num_inference_steps\n");
    for r in &w.requests {
        out.push_str(&format!(
            "req-{:07},{},flux,{}\n",
            r.label,
            1_767_225_600.0 + r.arrival.as_secs(),
            r.steps
        ));
    }
    out
}

fn options(format: LogFormat) -> ImportOptions {
    ImportOptions {
        format,
        time_scale: 1.0,
        mix: Mix::Uniform(paper_resolutions()),
        sampling: Sampling::Stratified,
        seed: 1,
        steps: 28,
        slo: SloDefaults {
            bases: SloBases::paper(),
            scale: 1.0,
        },
    }
}

#[divan::bench(args = ROWS, sample_count = 10)]
fn parse_trace_csv(bencher: Bencher, n: usize) {
    let text = to_csv(&workload(n));
    bencher
        .counter(ItemsCount::new(n))
        .bench_local(|| parse_trace(&text, "bench.csv", None).unwrap().len());
}

#[divan::bench(args = ROWS, sample_count = 10)]
fn write_trace_csv(bencher: Bencher, n: usize) {
    let w = workload(n);
    bencher
        .counter(ItemsCount::new(n))
        .bench_local(|| to_csv(&w).len());
}

#[divan::bench(args = ROWS, sample_count = 10)]
fn import_vllm_omni(bencher: Bencher, n: usize) {
    let text = vllm_omni_text(&workload(n));
    let opts = options(LogFormat::VllmOmni);
    bencher
        .counter(ItemsCount::new(n))
        .bench_local(|| import(&text, "bench.jsonl", &opts).unwrap().len());
}

#[divan::bench(args = ROWS, sample_count = 10)]
fn import_alibaba_genai(bencher: Bencher, n: usize) {
    let text = alibaba_text(&workload(n));
    let opts = options(LogFormat::AlibabaGenai);
    bencher
        .counter(ItemsCount::new(n))
        .bench_local(|| import(&text, "bench.csv", &opts).unwrap().len());
}
