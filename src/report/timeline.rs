//! `timeline.json`: the run as a Chrome trace (open it in Perfetto or chrome://tracing).
//!
//! One process per node, one thread (track) per GPU. Every work becomes one complete ("X")
//! slice on each of its GPUs, named after its request(s) and coloured by resolution through
//! the category. A request that missed its deadline gets an instant marker at its finish.
//!
//! The JSON is written directly into one string (no intermediate document tree): a trace has
//! one event per GPU per dispatch, millions for large runs. Times are exact decimal
//! microseconds from integer nanoseconds, so the file is byte-identical across platforms.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::metrics::{Outcome, RunRecords};
use crate::time::Nanos;

/// Exact microseconds with three decimals (`12.345`), from nanoseconds.
fn us(t: Nanos) -> String {
    format!("{}.{:03}", t.0 / 1000, t.0 % 1000)
}

pub fn timeline_json(run: &RunRecords) -> String {
    let per_node = run.gpus_per_node.max(1);
    let mut s = String::with_capacity(64 + run.works.len() * 200);
    s.push_str("{\"displayTimeUnit\":\"ms\",\"otherData\":{\"policy\":");
    s.push_str(&serde_json::to_string(&run.policy).expect("a string serialises"));
    s.push_str("},\"traceEvents\":[");
    let mut first = true;
    let mut sep = |s: &mut String| {
        if !first {
            s.push(',');
        }
        first = false;
    };
    for g in 0..run.gpus {
        sep(&mut s);
        let _ = write!(
            s,
            "{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{},\"tid\":{g},\"args\":{{\"name\":\"GPU {g}\"}}}}",
            g / per_node
        );
    }
    let mut last_gpu: HashMap<u64, (u32, u32)> = HashMap::new();
    let mut name = String::new();
    let mut requests = String::new();
    for w in &run.works {
        name.clear();
        requests.clear();
        for (i, r) in w.requests.iter().enumerate() {
            let _ = write!(name, "{}r{r}", if i > 0 { "+" } else { "" });
            let _ = write!(requests, "{}{r}", if i > 0 { "," } else { "" });
        }
        let _ = write!(
            name,
            " {} steps {}-{}",
            w.resolution,
            w.first_step,
            w.first_step + w.steps - 1
        );
        let (ts, dur) = (us(w.start), us(w.end - w.start));
        for g in w.gpus.global_gpus(per_node) {
            sep(&mut s);
            let _ = write!(
                s,
                "{{\"ph\":\"X\",\"name\":\"{name}\",\"cat\":\"{}\",\"pid\":{},\"tid\":{g},\"ts\":{ts},\"dur\":{dur},\"args\":{{\"requests\":[{requests}],\"sp_degree\":{},\"steps\":{},\"remap\":{}}}}}",
                w.resolution,
                w.gpus.node(),
                w.gpus.len(),
                w.steps,
                w.remap
            );
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
            sep(&mut s);
            let _ = write!(
                s,
                "{{\"ph\":\"i\",\"s\":\"t\",\"name\":\"r{} missed deadline\",\"pid\":{node},\"tid\":{gpu},\"ts\":{},\"args\":{{\"deadline_s\":{},\"finish_s\":{}}}}}",
                r.id,
                us(r.end),
                r.deadline.secs_string(),
                r.end.secs_string()
            );
        }
    }
    s.push_str("]}\n");
    s
}
