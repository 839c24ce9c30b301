//! Output: formats records and summaries, and writes output directories safely.
//!
//! Formatting functions return bytes; only [`write_dir`] touches the file system. Output
//! directories are written under a temporary name and renamed into place, so a crash or an
//! error never leaves a half-written directory behind.

pub mod plot;
mod table;
mod timeline;

pub use table::{bound_cell, comparison_csv, comparison_table, metric_cells};
pub use timeline::timeline_json;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::metrics::{RunRecords, Summary};

/// `requests.csv`: one row per request, in request order. Times are exact decimal seconds.
pub fn requests_csv(run: &RunRecords) -> String {
    let mut s = String::with_capacity(run.requests.len() * 120);
    s.push_str("id,arrival_s,width,height,steps,steps_done,deadline_s,start_s,finish_s,outcome,latency_s,gpu_seconds,degrees,remaps,node\n");
    for r in &run.requests {
        let finish = r.latency().map(|_| r.end.secs_string()).unwrap_or_default();
        let latency = r.latency().map(|l| l.secs_string()).unwrap_or_default();
        let degrees: Vec<String> = r.degrees().iter().map(|d| d.to_string()).collect();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.id,
            r.arrival.secs_string(),
            r.resolution.width,
            r.resolution.height,
            r.steps,
            r.steps_done,
            r.deadline.secs_string(),
            r.start.map(|t| t.secs_string()).unwrap_or_default(),
            finish,
            r.outcome.as_str(),
            latency,
            r.gpu_time.secs_string(),
            degrees.join(";"),
            r.remaps,
            r.node.map(|n| n.to_string()).unwrap_or_default()
        );
    }
    s
}

/// `works.csv`: one row per dispatched work, in dispatch order (the GPU timeline as a table).
pub fn works_csv(run: &RunRecords) -> String {
    let mut s = String::with_capacity(run.works.len() * 80);
    s.push_str("requests,resolution,node,gpus,start_s,end_s,first_step,steps,remap\n");
    for w in &run.works {
        let requests: Vec<String> = w.requests.iter().map(|r| r.to_string()).collect();
        let gpus: Vec<String> = w
            .gpus
            .global_gpus(run.gpus_per_node)
            .map(|g| g.to_string())
            .collect();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{}",
            requests.join(";"),
            w.resolution,
            w.gpus.node(),
            gpus.join(";"),
            w.start.secs_string(),
            w.end.secs_string(),
            w.first_step,
            w.steps,
            w.remap
        );
    }
    s
}

/// `summary.json`, pretty-printed.
pub fn summary_json(summary: &Summary) -> String {
    let mut s = serde_json::to_string_pretty(summary).expect("summary serialises");
    s.push('\n');
    s
}

/// The files of one run's directory (`timeline.json` only when asked for).
pub fn run_files(run: &RunRecords, summary: &Summary, timeline: bool) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = vec![
        ("requests.csv".into(), requests_csv(run).into_bytes()),
        ("works.csv".into(), works_csv(run).into_bytes()),
        ("summary.json".into(), summary_json(summary).into_bytes()),
    ];
    if timeline {
        files.push(("timeline.json".into(), timeline_json(run).into_bytes()));
    }
    files
}

/// Writes one file atomically: to a sibling temporary file, then renamed onto `path`, so
/// that a reader never sees half of it.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Refuses an existing output directory unless `force`: commands call it before any work, so
/// that a long run does not end in this error.
pub fn check_out_dir(dir: &Path, force: bool) -> Result<()> {
    if dir.exists() && !force {
        return Err(Error::config_hint(
            format!("output directory {} already exists", dir.display()),
            "pass --force to replace it, or choose another --out",
        ));
    }
    Ok(())
}

/// Writes `files` (paths relative to `dir`) as the directory `dir`, atomically.
///
/// Everything is written to a sibling temporary directory first, then renamed onto `dir`.
/// An existing `dir` is an error unless `force`, in which case it is replaced only after the
/// new contents are complete.
pub fn write_dir(dir: &Path, files: &[(PathBuf, Vec<u8>)], force: bool) -> Result<()> {
    check_out_dir(dir, force)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let cleanup = |e: Error| {
        let _ = std::fs::remove_dir_all(&tmp);
        e
    };
    let _ = std::fs::remove_dir_all(&tmp);
    for (rel, bytes) in files {
        let path = tmp.join(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| cleanup(Error::io(p, e)))?;
        }
        std::fs::write(&path, bytes).map_err(|e| cleanup(Error::io(&path, e)))?;
    }
    if dir.exists() {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        std::fs::rename(dir, &old).map_err(|e| cleanup(Error::io(dir, e)))?;
        std::fs::rename(&tmp, dir).map_err(|e| cleanup(Error::io(dir, e)))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, dir).map_err(|e| cleanup(Error::io(dir, e)))?;
    }
    Ok(())
}
