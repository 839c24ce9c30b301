//! `timeline.json`: the run as a Chrome trace (open it in Perfetto or chrome://tracing).
//!
//! One process per node, one thread (track) per GPU. Every work becomes one complete ("X")
//! slice on each of its GPUs, named after its request(s) and coloured by resolution through
//! the category. A request that missed its deadline gets an instant marker at its finish.

use serde_json::{Value, json};

use crate::metrics::{Outcome, RunRecords};
use crate::time::Nanos;

fn us(t: Nanos) -> f64 {
    t.0 as f64 / 1e3
}

pub fn timeline_json(run: &RunRecords) -> String {
    let per_node = run.gpus_per_node.max(1);
    let mut events: Vec<Value> = Vec::with_capacity(run.works.len() * 2 + run.gpus as usize);
    for g in 0..run.gpus {
        events.push(json!({"ph": "M", "name": "thread_name", "pid": g / per_node, "tid": g, "args": {"name": format!("GPU {g}")}}));
    }
    let mut last_gpu = std::collections::HashMap::new();
    for w in &run.works {
        let names: Vec<String> = w.requests.iter().map(|r| format!("r{r}")).collect();
        let name = format!(
            "{} {} steps {}-{}",
            names.join("+"),
            w.resolution,
            w.first_step,
            w.first_step + w.steps - 1
        );
        for g in w.gpus.global_gpus(per_node) {
            events.push(json!({
                "ph": "X", "name": name, "cat": w.resolution.to_string(),
                "pid": w.gpus.node(), "tid": g, "ts": us(w.start), "dur": us(w.end - w.start),
                "args": {"requests": w.requests, "sp_degree": w.gpus.len(), "steps": w.steps, "remap": w.remap},
            }));
        }
        for &r in &w.requests {
            last_gpu.insert(
                r,
                (
                    w.gpus.node(),
                    w.gpus.global_gpus(per_node).next().unwrap_or(0),
                ),
            );
        }
    }
    for r in &run.requests {
        if r.outcome == Outcome::Missed
            && let Some(&(node, gpu)) = last_gpu.get(&r.id)
        {
            events.push(json!({"ph": "i", "s": "t", "name": format!("r{} missed deadline", r.id), "pid": node, "tid": gpu, "ts": us(r.end),
                "args": {"deadline_s": r.deadline.as_secs(), "finish_s": r.end.as_secs()}}));
        }
    }
    let doc = json!({"displayTimeUnit": "ms", "otherData": {"policy": run.policy}, "traceEvents": events});
    let mut s = serde_json::to_string(&doc).expect("timeline serialises");
    s.push('\n');
    s
}
