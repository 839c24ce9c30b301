//! What the commands print: the description of what is about to run, and stdout that
//! tolerates a closed pipe. Shared by the simulator's commands (`mod.rs`) and the real
//! backend's (`backend.rs`).

use std::io::Write as _;

use crate::error::{Error, Result};
use crate::policy::{PolicyKind, VideoPreemption};
use crate::scenario::{Scenario, WorkloadSource};
use crate::workload::arrival::ArrivalProcess;

/// A one-paragraph description of what is about to run: where the scenario came from (its
/// file or the built-in default, and the flags that changed it), then what it resolved to.
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
            "trace {}{}, deadline = arrival + {} x (the row's slo_s, or the base for its resolution)",
            path.display(),
            if s.time_scale == 1.0 {
                String::new()
            } else {
                format!(" at {}x its rate", s.time_scale)
            },
            slo.scale
        ),
    };
    let policies: Vec<String> = s.policies.iter().map(PolicyKind::to_string).collect();
    // A profile measured on CPU rank threads: they exchange through host memory.
    let topology = if s.cluster.gpu == "cpu" {
        "rank threads, host memory".to_string()
    } else {
        s.cluster.topology.to_string()
    };
    let stages = match s.stages.pools() {
        None => String::new(),
        Some(p) => format!(
            "\n  stages: disaggregated: encode pool {} x {} ({:.1} ms a request), decode pool {} x {} ({:.1} ms per 1k tokens), link {:.0} GB/s + {:.0} us",
            p.encode.gpus,
            p.encode.gpu,
            p.encode_time.as_millis(),
            p.decode.gpus,
            p.decode.gpu,
            p.decode_per_1k_tokens.as_millis(),
            p.link.bytes_per_s as f64 / 1e9,
            p.link.latency.as_secs() * 1e6
        ),
    };
    format!(
        "running {}\n  cluster: {} node(s) x {} {} ({}), cost: {}{stages}\n  workload: {}\n  policies: {}",
        s.origin,
        s.cluster.nodes,
        s.cluster.gpus_per_node,
        s.cluster.gpu,
        topology,
        s.cost_model().describe(),
        workload,
        policies.join(", "),
    ) + match s.policy_config.video_preemption {
        VideoPreemption::StepBoundary => "",
        VideoPreemption::None => {
            " (video clips run to their end once started: video_preemption = \"none\")"
        }
    }
}

fn arrival_name(a: &ArrivalProcess) -> String {
    match a {
        ArrivalProcess::Poisson { .. } => "Poisson".into(),
        ArrivalProcess::Gamma { cv, .. } => format!("Gamma (CV {cv})"),
        ArrivalProcess::Constant { .. } => "constant-rate".into(),
        ArrivalProcess::OnOff { on, off, .. } => {
            format!("on/off ({} s on, {} s off)", on.as_secs(), off.as_secs())
        }
    }
}

/// Writes to stdout, treating a closed pipe (`| head`) as success.
pub fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("<stdout>", e)),
        Ok(()) => Ok(()),
    }
}
