//! A checker for the invariants every run must satisfy, whatever the policy.
//!
//! Used by the property tests over random workloads, and available to anyone who writes a
//! policy: run it on your records before trusting your numbers.

use std::collections::BTreeMap;

use crate::metrics::{Outcome, RequestRecord, RunRecords, StageRecord, StageRecords, WorkRecord};
use crate::time::Nanos;
use crate::workload::Workload;

/// Checks `run` (produced from `workload`) and returns every violation found.
///
/// - every request has exactly one record, in order, matching its request;
/// - no GPU runs two works at once; every SP degree is a power of two; every GPU lies in the
///   cluster; a work carries known requests, all of its resolution;
/// - a request's works never overlap, run its steps in order, and none starts before arrival;
/// - a finished request did all its steps; met iff it finished at or before its deadline;
/// - `duration` (when given) says what each work should have lasted, and it did;
/// - what caching and skipping saved a request (its `saved`) is what its workload entry says:
///   the same prompt, cache hit and cached steps, and exactly the skipped steps of its mask
///   among the steps it did. Skipped steps are still steps: in order, counted, on booked GPUs.
/// - with disaggregated stages (`run.stages`): each request is encoded after it arrives, its
///   encode and decode last its own times where its workload entry gives them (a trace's
///   `encode_s`, `decode_s`) and all other encodes alike, its steps start once its embedding
///   is ready, its decode starts once its latent has arrived after its last step, and it ends
///   when its decode ends; a dropped
///   request is never decoded; every pool GPU lies in its pool and runs one request at a time
///   (so no GPU ever runs another stage's work: the pools and the cluster are disjoint).
pub fn check_run(
    run: &RunRecords,
    workload: &Workload,
    duration: Option<&dyn Fn(&WorkRecord) -> Nanos>,
) -> Vec<String> {
    let mut errors = Vec::new();
    if run.requests.len() != workload.len() {
        errors.push(format!(
            "{} records for {} requests",
            run.requests.len(),
            workload.len()
        ));
        return errors;
    }
    check_records(run, workload, &mut errors);

    let mut per_gpu: BTreeMap<u32, Vec<(Nanos, Nanos, usize)>> = BTreeMap::new();
    let mut per_request: BTreeMap<u64, Vec<&WorkRecord>> = BTreeMap::new();
    let nodes = run.gpus / run.gpus_per_node.max(1);
    let by_label: BTreeMap<u64, &crate::metrics::RequestRecord> =
        run.requests.iter().map(|r| (r.id, r)).collect();
    for (i, w) in run.works.iter().enumerate() {
        let outside = run.gpus_per_node < 64 && w.gpus.mask() >> run.gpus_per_node != 0;
        if outside || w.gpus.node() >= nodes {
            errors.push(format!(
                "work {i} runs on {}, outside the cluster of {nodes} node(s) x {} GPUs",
                w.gpus, run.gpus_per_node
            ));
        }
        for r in &w.requests {
            match by_label.get(r) {
                None => errors.push(format!("work {i} carries unknown request {r}")),
                Some(rec) if rec.resolution != w.resolution => errors.push(format!(
                    "work {i} at {} carries request {r} of resolution {}",
                    w.resolution, rec.resolution
                )),
                Some(_) => {}
            }
        }
        if !w.gpus.len().is_power_of_two() {
            errors.push(format!(
                "work {i} runs on {} GPUs, not a power of two",
                w.gpus.len()
            ));
        }
        if w.end < w.start || w.steps == 0 {
            errors.push(format!("work {i} is empty or ends before it starts"));
        }
        if let Some(f) = duration {
            let want = f(w);
            if w.end - w.start != want {
                errors.push(format!(
                    "work {i} lasted {} but should have lasted {}",
                    w.end - w.start,
                    want
                ));
            }
        }
        for g in w.gpus.global_gpus(run.gpus_per_node) {
            per_gpu.entry(g).or_default().push((w.start, w.end, i));
        }
        for &r in &w.requests {
            per_request.entry(r).or_default().push(w);
        }
    }
    for (g, spans) in &mut per_gpu {
        for (a, b) in overlaps(spans) {
            errors.push(format!("GPU {g} double-booked: works {a} and {b} overlap"));
        }
    }
    let stages = run.stages.as_ref();
    if let Some(st) = stages {
        check_stages(run, workload, st, &mut errors);
        if st.requests.len() != run.requests.len() {
            return errors;
        }
    }
    for (i, r) in run.requests.iter().enumerate() {
        let works = per_request.remove(&r.id).unwrap_or_default();
        check_request(r, &works, stages.map(|s| &s.requests[i]), &mut errors);
    }
    errors
}

/// The pairs of one GPU's busy spans `(start, end, what)` that overlap, each with the span
/// that starts before it (sorted in place).
fn overlaps<T: Ord + Copy>(spans: &mut [(Nanos, Nanos, T)]) -> Vec<(T, T)> {
    spans.sort();
    spans
        .windows(2)
        .filter(|pair| pair[1].0 < pair[0].1)
        .map(|pair| (pair[0].2, pair[1].2))
        .collect()
}

/// Disaggregated stages: each request's encode and decode in order, and the pools' GPUs.
fn check_stages(
    run: &RunRecords,
    workload: &Workload,
    st: &StageRecords,
    errors: &mut Vec<String>,
) {
    if st.requests.len() != run.requests.len() {
        errors.push(format!(
            "{} stage records for {} requests",
            st.requests.len(),
            run.requests.len()
        ));
        return;
    }
    let mut encode: BTreeMap<u32, Vec<(Nanos, Nanos, u64)>> = BTreeMap::new();
    let mut decode: BTreeMap<u32, Vec<(Nanos, Nanos, u64)>> = BTreeMap::new();
    // The pool's own encode time: every request without one of its own lasts it.
    let encode_time = st
        .requests
        .iter()
        .zip(&workload.requests)
        .find(|(_, w)| w.stages.encode.is_none())
        .map(|(s, _)| s.encode.end.saturating_sub(s.encode.start));
    for ((r, s), w) in run
        .requests
        .iter()
        .zip(&st.requests)
        .zip(&workload.requests)
    {
        let id = r.id;
        let e = s.encode;
        if e.start < r.arrival || e.end < e.start {
            errors.push(format!(
                "request {id}: encoded from {} to {}, before its arrival at {} or backwards",
                e.start, e.end, r.arrival
            ));
        }
        let lasted = e.end.saturating_sub(e.start);
        match w.stages.encode {
            Some(own) if lasted != own => errors.push(format!(
                "request {id}: its encode lasted {lasted}, not its own encode time {own}"
            )),
            None if Some(lasted) != encode_time => errors.push(format!(
                "request {id}: its encode lasted {lasted}, another's {encode_time:?}"
            )),
            _ => {}
        }
        // The stage deadline lies between ready and the deadline; a request ready only after
        // its deadline is due at once.
        if s.ready < e.end
            || s.denoise_deadline < s.ready
            || s.denoise_deadline > r.deadline.max(s.ready)
        {
            errors.push(format!(
                "request {id}: ready at {} after an encode ending {}, stage deadline {} outside [ready, max(ready, deadline {})]",
                s.ready, e.end, s.denoise_deadline, r.deadline
            ));
        }
        match (r.outcome, s.decode_ready, s.decode) {
            (Outcome::Dropped, None, None) => {}
            (Outcome::Dropped, _, _) => {
                errors.push(format!("request {id} was dropped but decoded"));
            }
            (_, Some(at), Some(d)) => {
                if d.start < at || d.end < d.start || r.end != d.end {
                    errors.push(format!(
                        "request {id}: latent in at {at}, decoded from {} to {}, ends at {}",
                        d.start, d.end, r.end
                    ));
                }
                if let Some(own) = w.stages.decode
                    && d.end.saturating_sub(d.start) != own
                {
                    errors.push(format!(
                        "request {id}: its decode lasted {}, not its own decode time {own}",
                        d.end.saturating_sub(d.start)
                    ));
                }
                decode.entry(d.gpu).or_default().push((d.start, d.end, id));
            }
            _ => errors.push(format!("request {id} finished but was never decoded")),
        }
        encode.entry(e.gpu).or_default().push((e.start, e.end, id));
    }
    for (stage, pool, gpus) in [
        ("encode", &mut encode, st.encode_gpus),
        ("decode", &mut decode, st.decode_gpus),
    ] {
        for (g, spans) in pool.iter_mut() {
            if *g >= gpus {
                errors.push(format!(
                    "{stage} GPU {g} lies outside its pool of {gpus} GPU(s)"
                ));
            }
            for (a, b) in overlaps(spans) {
                errors.push(format!(
                    "{stage} GPU {g} double-booked: requests {a} and {b} overlap"
                ));
            }
        }
    }
}

/// Each record matches its request, and what caching and skipping saved it is what its
/// workload entry says.
fn check_records(run: &RunRecords, workload: &Workload, errors: &mut Vec<String>) {
    for (r, q) in run.requests.iter().zip(&workload.requests) {
        if r.id != q.label
            || r.arrival != q.arrival
            || r.deadline != q.deadline
            || r.steps != q.steps
        {
            errors.push(format!(
                "record of request {} does not match the request",
                q.label
            ));
        }
        let saved = workload.savings_of(q.id);
        let want = (
            saved.prompt.map(|p| p.0),
            saved.cache_hit,
            saved.cached_steps,
            saved.skips.count(0, r.steps_done),
        );
        let got = (
            r.saved.prompt,
            r.saved.cache_hit,
            r.saved.cached_steps,
            r.saved.skipped_steps,
        );
        if want != got {
            errors.push(format!(
                "request {}: saved (prompt, hit, cached, skipped) {got:?}, but its workload says {want:?}",
                q.label
            ));
        }
        if r.saved.skipped_steps > r.steps_done {
            errors.push(format!(
                "request {}: {} steps skipped of {} done",
                q.label, r.saved.skipped_steps, r.steps_done
            ));
        }
    }
}

/// One request's works (in dispatch order) against its record: in order after its arrival,
/// its steps in sequence, and a verdict its steps and end support.
/// With disaggregated stages (`stage`), its works follow its embedding's arrival and its
/// latent leaves after them.
fn check_request(
    r: &RequestRecord,
    works: &[&WorkRecord],
    stage: Option<&StageRecord>,
    errors: &mut Vec<String>,
) {
    let mut next_step = 0;
    let mut prev_end = stage.map_or(r.arrival, |s| s.ready);
    for w in works {
        if w.start < prev_end {
            errors.push(format!(
                "request {}: work at {} starts before {} (arrival or previous work end)",
                r.id, w.start, prev_end
            ));
        }
        if w.first_step != next_step {
            errors.push(format!(
                "request {}: work starts at step {} but {} steps were done",
                r.id, w.first_step, next_step
            ));
        }
        next_step += w.steps;
        prev_end = w.end;
    }
    if next_step > r.steps {
        errors.push(format!(
            "request {}: works ran {next_step} steps of its {}",
            r.id, r.steps
        ));
    }
    if next_step != r.steps_done {
        errors.push(format!(
            "request {}: works ran {} steps but the record says {}",
            r.id, next_step, r.steps_done
        ));
    }
    match r.outcome {
        Outcome::Met | Outcome::Missed => {
            if r.steps_done != r.steps {
                errors.push(format!(
                    "request {} finished with {}/{} steps",
                    r.id, r.steps_done, r.steps
                ));
            }
            match stage.map(|s| s.decode_ready) {
                None if r.end != prev_end => errors.push(format!(
                    "request {} ends at {} but its last work ends at {}",
                    r.id, r.end, prev_end
                )),
                Some(Some(at)) if at < prev_end => errors.push(format!(
                    "request {}: its latent reached the decode pool at {at}, before its last work ended at {prev_end}",
                    r.id
                )),
                _ => {}
            }
            if (r.outcome == Outcome::Met) != (r.end <= r.deadline) {
                errors.push(format!(
                    "request {}: verdict {:?} inconsistent with end {} and deadline {}",
                    r.id, r.outcome, r.end, r.deadline
                ));
            }
        }
        Outcome::Dropped => {
            if r.steps_done == r.steps {
                errors.push(format!(
                    "request {} did all its steps but is marked dropped",
                    r.id
                ));
            }
        }
    }
}
