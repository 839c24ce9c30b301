//! Output: formats records and summaries, and writes output directories safely.
//!
//! Formatting functions return bytes; only [`Staging`] (and [`write_dir`] over it) and
//! [`RunWriter`], which streams a run's files into a staging directory as the run goes, touch
//! the file system. Output directories are written under a temporary name and renamed into
//! place, so a crash or an error never leaves a half-written directory behind.

pub mod plot;
mod progress;
mod run_dir;
mod segments;
mod stream;
mod table;
mod timeline;

pub use progress::RunProgress;
pub use run_dir::{REQUESTS_CSV, STAGES_CSV, SUMMARY_JSON, TIMELINE_JSON, WORKS_CSV, read_run};
pub use segments::{Segments, WorkRows, rows_of};
pub use stream::{RunWriter, Staging};
pub use table::{
    bound_cell, comparison_csv, comparison_csv_by_resolution, comparison_table, metric_cells,
    resolution_table,
};
pub use timeline::{TimelineLimit, TimelineShown, TimelineWriter, timeline_json, timeline_limited};

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::metrics::{RequestRecord, RunRecords, Summary, WorkRecord};
use crate::time::push_uint;

/// The header of `requests.csv`.
const REQUESTS_HEADER: &str = "id,arrival_s,width,height,steps,steps_done,deadline_s,start_s,finish_s,outcome,latency_s,gpu_seconds,degrees,remaps,node,prompt_id,cache_hit,cached_steps,skipped_steps\n";

/// The header of `requests.csv` when some request is a video: `frames` after `height`.
const REQUESTS_HEADER_WITH_FRAMES: &str = "id,arrival_s,width,height,frames,steps,steps_done,deadline_s,start_s,finish_s,outcome,latency_s,gpu_seconds,degrees,remaps,node,prompt_id,cache_hit,cached_steps,skipped_steps\n";

/// Whether `requests.csv` of these requests has a `frames` column (some request is a video;
/// image runs keep the file as it was).
fn with_frames(requests: &[RequestRecord]) -> bool {
    requests.iter().any(|r| r.resolution.is_video())
}

/// The header of `requests.csv`, with or without `frames`.
fn requests_header(frames: bool) -> &'static str {
    if frames {
        REQUESTS_HEADER_WITH_FRAMES
    } else {
        REQUESTS_HEADER
    }
}

/// The header of `works.csv` (a row is a work or a merged run of works: `segments.rs`).
const WORKS_HEADER: &str =
    "requests,resolution,node,gpus,start_s,end_s,first_step,steps,remap,works\n";

/// Appends a resolution as `WxH` (an image) or `WxHxFf` (a video), as it displays.
fn push_resolution(s: &mut String, r: crate::workload::Resolution) {
    push_uint(s, u64::from(r.width));
    s.push('x');
    push_uint(s, u64::from(r.height));
    if r.is_video() {
        s.push('x');
        push_uint(s, u64::from(r.frames));
        s.push('f');
    }
}

/// One row of `requests.csv` (written by hand: a run writes millions); `frames`: the file
/// has that column.
fn request_row(s: &mut String, r: &RequestRecord, frames: bool) {
    push_uint(s, r.id);
    s.push(',');
    r.arrival.push_secs(s);
    s.push(',');
    push_uint(s, u64::from(r.resolution.width));
    s.push(',');
    push_uint(s, u64::from(r.resolution.height));
    s.push(',');
    if frames {
        push_uint(s, u64::from(r.resolution.frames));
        s.push(',');
    }
    push_uint(s, u64::from(r.steps));
    s.push(',');
    push_uint(s, u64::from(r.steps_done));
    s.push(',');
    r.deadline.push_secs(s);
    s.push(',');
    if let Some(t) = r.start {
        t.push_secs(s);
    }
    s.push(',');
    let latency = r.latency();
    if latency.is_some() {
        r.end.push_secs(s);
    }
    s.push(',');
    s.push_str(r.outcome.as_str());
    s.push(',');
    if let Some(l) = latency {
        l.push_secs(s);
    }
    s.push(',');
    r.gpu_time.push_secs(s);
    s.push(',');
    for (i, d) in r.degrees().iter().enumerate() {
        if i > 0 {
            s.push(';');
        }
        push_uint(s, u64::from(*d));
    }
    s.push(',');
    push_uint(s, u64::from(r.remaps));
    s.push(',');
    if let Some(n) = r.node {
        push_uint(s, u64::from(n));
    }
    s.push(',');
    if let Some(p) = r.saved.prompt {
        push_uint(s, p);
    }
    s.push(',');
    s.push_str(if r.saved.cache_hit { "true" } else { "false" });
    s.push(',');
    push_uint(s, u64::from(r.saved.cached_steps));
    s.push(',');
    push_uint(s, u64::from(r.saved.skipped_steps));
    s.push('\n');
}

/// One row of `works.csv` (a work, or a merged run of works).
fn work_row(s: &mut String, w: &WorkRecord, gpus_per_node: u32) {
    for (i, r) in w.requests.iter().enumerate() {
        if i > 0 {
            s.push(';');
        }
        push_uint(s, *r);
    }
    s.push(',');
    push_resolution(s, w.resolution);
    s.push(',');
    push_uint(s, u64::from(w.gpus.node()));
    s.push(',');
    for (i, g) in w.gpus.global_gpus(gpus_per_node).enumerate() {
        if i > 0 {
            s.push(';');
        }
        push_uint(s, u64::from(g));
    }
    s.push(',');
    w.start.push_secs(s);
    s.push(',');
    w.end.push_secs(s);
    s.push(',');
    push_uint(s, u64::from(w.first_step));
    s.push(',');
    push_uint(s, u64::from(w.steps));
    s.push(',');
    s.push_str(if w.remap { "true" } else { "false" });
    s.push(',');
    push_uint(s, u64::from(w.works));
    s.push('\n');
}

/// `requests.csv`: one row per request, in request order. Times are exact decimal seconds.
pub fn requests_csv(run: &RunRecords) -> String {
    let mut s = String::with_capacity(run.requests.len() * 120);
    let frames = with_frames(&run.requests);
    s.push_str(requests_header(frames));
    for r in &run.requests {
        request_row(&mut s, r, frames);
    }
    s
}

/// `stages.csv` (runs with disaggregated stages only): one row per request, in request order,
/// its passage through the encode and decode pools. GPUs are indices in their pool; a request
/// that never finished denoising has empty decode cells. Times are exact decimal seconds.
pub fn stages_csv(run: &RunRecords) -> Option<String> {
    let stages = run.stages.as_ref()?;
    let mut s = String::with_capacity(stages.requests.len() * 120);
    s.push_str(STAGES_HEADER);
    for (r, st) in run.requests.iter().zip(&stages.requests) {
        crate::time::push_uint(&mut s, r.id);
        s.push(',');
        crate::time::push_uint(&mut s, u64::from(st.encode.gpu));
        for t in [
            st.encode.start,
            st.encode.end,
            st.ready,
            st.denoise_deadline,
        ] {
            s.push(',');
            t.push_secs(&mut s);
        }
        s.push(',');
        if let Some(t) = st.decode_ready {
            t.push_secs(&mut s);
        }
        s.push(',');
        if let Some(d) = st.decode {
            crate::time::push_uint(&mut s, u64::from(d.gpu));
            s.push(',');
            d.start.push_secs(&mut s);
            s.push(',');
            d.end.push_secs(&mut s);
        } else {
            s.push_str(",,");
        }
        s.push('\n');
    }
    Some(s)
}

/// The header of [`stages_csv`].
pub const STAGES_HEADER: &str = "id,encode_gpu,encode_start_s,encode_end_s,ready_s,denoise_deadline_s,decode_ready_s,decode_gpu,decode_start_s,decode_end_s\n";

/// `works.csv`: the GPU timeline as a table, one row per dispatched work in dispatch order,
/// or (`WorkRows::Merged`) one per run of works that continue one another, in the dispatch
/// order of their first work (`segments.rs`).
pub fn works_csv(run: &RunRecords, rows: WorkRows) -> String {
    let rows = rows_of(&run.works, rows, run.gpus_per_node);
    let mut s = String::with_capacity(rows.len() * 80);
    s.push_str(WORKS_HEADER);
    for w in &rows {
        work_row(&mut s, w, run.gpus_per_node);
    }
    s
}

/// `summary.json`, pretty-printed.
pub fn summary_json(summary: &Summary) -> String {
    let mut s = serde_json::to_string_pretty(summary).expect("summary serialises");
    s.push('\n');
    s
}

/// The files of one run's directory (`timeline.json` only when asked for, with at most that
/// many rows), its works in `rows`, named as [`RunWriter`] names them (the constants of
/// `run_dir.rs`).
pub fn run_files(
    run: &RunRecords,
    summary: &Summary,
    timeline: Option<TimelineLimit>,
    rows: WorkRows,
) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = vec![
        (REQUESTS_CSV.into(), requests_csv(run).into_bytes()),
        (WORKS_CSV.into(), works_csv(run, rows).into_bytes()),
        (SUMMARY_JSON.into(), summary_json(summary).into_bytes()),
    ];
    if let Some(stages) = stages_csv(run) {
        files.push((STAGES_CSV.into(), stages.into_bytes()));
    }
    if let Some(limit) = timeline {
        files.push((
            TIMELINE_JSON.into(),
            timeline_limited(run, limit, rows).into_bytes(),
        ));
    }
    files
}

/// Refuses an existing output directory unless `force` (and, with it, anything but a directory
/// tetriserve wrote: [`crate::files::check_replaceable_dir`]): commands call it before any
/// work, so that a long run does not end in this error.
pub fn check_out_dir(dir: &Path, force: bool) -> Result<()> {
    crate::files::check_replaceable_dir(dir, force)
}

/// Writes `files` (paths relative to `dir`) as the directory `dir`, atomically (see
/// [`Staging`]). An existing `dir` is an error unless `force`, in which case it is replaced
/// only after the new contents are complete.
pub fn write_dir(dir: &Path, files: &[(PathBuf, Vec<u8>)], force: bool) -> Result<()> {
    let staging = Staging::create(dir, force)?;
    for (rel, bytes) in files {
        staging.write(rel, bytes)?;
    }
    staging.commit()
}
