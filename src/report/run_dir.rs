//! A run directory's format: the names of its files, and the reader that turns them back
//! into records.
//!
//! `simulate --out` writes run directories through [`RunWriter`](super::RunWriter) (streamed)
//! and `simulate --real --out` through [`run_files`](super::run_files); both name the files
//! with the constants below, so the two cannot drift apart, and [`read_run`] (what
//! `plot --run` and `validate --compare` read) finds them by the same names. Rows are read by
//! header name into typed rows, and every cell that cannot be read is an
//! [`InputError`] naming the file, the line and the column, as every other reader does.

use std::path::Path;

use serde::Deserialize;

use crate::cluster::GpuSet;
use crate::error::{Error, InputError, Result, limits, read_text};
use crate::metrics::{RequestRecord, RunRecords, StepsSaved, WorkRecord};
use crate::time::Nanos;
use crate::workload::Resolution;

/// One row per request (`report::requests_csv`).
pub const REQUESTS_CSV: &str = "requests.csv";
/// One row per work, or per merged run of works (`report::works_csv`, `segments.rs`).
pub const WORKS_CSV: &str = "works.csv";
/// The run's summary (`report::summary_json`).
pub const SUMMARY_JSON: &str = "summary.json";
/// Each request's passage through disaggregated stages (`report::stages_csv`), written only
/// for runs that have them.
pub const STAGES_CSV: &str = "stages.csv";
/// The Chrome-trace timeline, written only when asked for.
pub const TIMELINE_JSON: &str = "timeline.json";

/// A refused cell: its column and what is wrong.
type Bad = (&'static str, String);

/// Seconds as written by [`Nanos::push_secs`], read by [`Nanos::parse_secs`]. (Cells that
/// need more than serde's own types are kept as text in the rows and converted here, so that
/// an error names its column: csv knows the column only of the errors it makes itself.)
fn secs(field: &'static str, cell: &str) -> std::result::Result<Nanos, Bad> {
    Nanos::parse_secs(cell.trim()).map_err(|m| (field, m))
}

/// An optional seconds cell: empty is `None`.
fn opt_secs(field: &'static str, cell: &str) -> std::result::Result<Option<Nanos>, Bad> {
    let cell = cell.trim();
    (!cell.is_empty()).then(|| secs(field, cell)).transpose()
}

/// A `;`-separated list of integers (`degrees`, `requests`, `gpus`); empty is no item.
fn list(field: &'static str, cell: &str) -> std::result::Result<Vec<u64>, Bad> {
    cell.split(';')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| {
            x.parse()
                .map_err(|_| (field, format!("expected `;`-separated integers, got `{x}`")))
        })
        .collect()
}

/// A row of `requests.csv` (columns by name; `latency_s` is derived, so not read).
#[derive(Deserialize)]
struct RequestRow {
    id: u64,
    arrival_s: String,
    width: u32,
    height: u32,
    /// Written only when some request of the run is a video: absent, every request is an image.
    #[serde(default = "one")]
    frames: u32,
    steps: u32,
    steps_done: u32,
    deadline_s: String,
    start_s: String,
    /// Empty for a dropped request, whose end the file does not keep.
    finish_s: String,
    outcome: String,
    gpu_seconds: String,
    degrees: String,
    remaps: u32,
    node: Option<u32>,
    prompt_id: Option<u64>,
    cache_hit: bool,
    cached_steps: u32,
    skipped_steps: u32,
}

impl RequestRow {
    fn record(self) -> std::result::Result<RequestRecord, Bad> {
        let mut degrees_used = 0u32;
        for d in list("degrees", &self.degrees)? {
            if !d.is_power_of_two() || d > 1 << 31 {
                return Err(("degrees", format!("`{d}` is not a power-of-two SP degree")));
            }
            degrees_used |= 1 << d.trailing_zeros();
        }
        let arrival = secs("arrival_s", &self.arrival_s)?;
        Ok(RequestRecord {
            id: self.id,
            arrival,
            resolution: {
                let r = Resolution::video(self.width, self.height, self.frames);
                r.validate().map_err(|m| ("frames", m))?;
                r
            },
            steps: self.steps,
            steps_done: self.steps_done,
            deadline: secs("deadline_s", &self.deadline_s)?,
            start: opt_secs("start_s", &self.start_s)?,
            // A dropped request's end is not written; its arrival stands in (it has no latency).
            end: opt_secs("finish_s", &self.finish_s)?.unwrap_or(arrival),
            outcome: self.outcome.trim().parse().map_err(|m| ("outcome", m))?,
            gpu_time: secs("gpu_seconds", &self.gpu_seconds)?,
            degrees_used,
            remaps: self.remaps,
            node: self.node,
            saved: StepsSaved {
                prompt: self.prompt_id,
                cache_hit: self.cache_hit,
                cached_steps: self.cached_steps,
                skipped_steps: self.skipped_steps,
            },
        })
    }
}

/// A row of `works.csv`: a work, or a merged run of `works` works.
#[derive(Deserialize)]
struct WorkRow {
    requests: String,
    resolution: String,
    node: u32,
    gpus: String,
    start_s: String,
    end_s: String,
    first_step: u32,
    steps: u32,
    remap: bool,
    /// Files written before rows were merged have no such column: each row is one work.
    #[serde(default = "one")]
    works: u32,
}

fn one() -> u32 {
    1
}

impl WorkRow {
    /// `gpus` holds global GPU indices; the record keeps the node and a mask within it.
    fn record(self, gpus_per_node: u32) -> std::result::Result<WorkRecord, Bad> {
        let first = u64::from(self.node) * u64::from(gpus_per_node);
        let mut mask = 0u64;
        for g in list("gpus", &self.gpus)? {
            let local = g
                .checked_sub(first)
                .filter(|&l| l < u64::from(gpus_per_node).min(64));
            let Some(local) = local else {
                return Err((
                    "gpus",
                    format!(
                        "GPU {g} is not on node {} ({gpus_per_node} GPUs per node, as summary.json says)",
                        self.node
                    ),
                ));
            };
            mask |= 1 << local;
        }
        if self.works == 0 || self.works > self.steps {
            return Err((
                "works",
                format!(
                    "a row holds at least one work and at most one per step; got {} work(s) for {} step(s)",
                    self.works, self.steps
                ),
            ));
        }
        Ok(WorkRecord {
            requests: list("requests", &self.requests)?,
            resolution: self
                .resolution
                .trim()
                .parse()
                .map_err(|m| ("resolution", m))?,
            gpus: GpuSet::new(self.node, mask),
            start: secs("start_s", &self.start_s)?,
            end: secs("end_s", &self.end_s)?,
            first_step: self.first_step,
            steps: self.steps,
            remap: self.remap,
            works: self.works,
        })
    }
}

/// What the reader needs of `summary.json`.
#[derive(Deserialize)]
struct SummaryHead {
    policy: String,
    gpus: u32,
    gpus_per_node: u32,
}

/// Reads the rows of one CSV file of the run directory, each turned into a record by
/// `record`; an unreadable cell, or one `record` refuses, names file, line and column.
fn read_rows<R: for<'de> Deserialize<'de>, T>(
    path: &Path,
    record: impl Fn(R) -> std::result::Result<T, Bad>,
) -> Result<Vec<T>> {
    let source = path.display().to_string();
    let text = read_text(path, limits::TRACE_BYTES, "run file")?;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| InputError::new(&source, format!("unreadable header: {e}")).line(1))?
        .clone();
    let mut out = Vec::new();
    let mut row = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut row) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                return Err(InputError::new(&source, format!("unreadable row: {e}"))
                    .line(line)
                    .into());
            }
        }
        let line = row.position().map_or(line, |p| p.line());
        let bad = |field: &str, message: String| -> Error {
            InputError::new(&source, message)
                .line(line)
                .field(field)
                .hint(format!(
                    "{} is written by `simulate --out`; was it edited or truncated?",
                    path.file_name().unwrap_or_default().to_string_lossy()
                ))
                .into()
        };
        let typed: R = row.deserialize(Some(&header)).map_err(|e| {
            let (field, message) = match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => (
                    err.field()
                        .and_then(|i| header.get(i as usize))
                        .unwrap_or("")
                        .to_string(),
                    err.kind().to_string(),
                ),
                _ => (String::new(), e.to_string()),
            };
            if field.is_empty() {
                Error::from(InputError::new(&source, message).line(line))
            } else {
                bad(&field, message)
            }
        })?;
        out.push(record(typed).map_err(|(field, message)| bad(field, message))?);
    }
    Ok(out)
}

/// Reads a run directory written by `simulate --out` or `simulate --real --out`
/// (`requests.csv`, `works.csv`, `summary.json`) back into records, for charts and
/// comparisons. What the files do not hold (events, decision times, a dropped request's end)
/// is left empty.
pub fn read_run(dir: &Path) -> Result<RunRecords> {
    let path = dir.join(SUMMARY_JSON);
    let text = read_text(&path, limits::SMALL_BYTES, "run summary")?;
    let head: SummaryHead = serde_json::from_str(&text).map_err(|e| {
        InputError::new(path.display().to_string(), e.to_string())
            .line(e.line() as u64)
            .hint("summary.json is written by `simulate --out`; was it edited or truncated?")
    })?;
    let requests = read_rows(&dir.join(REQUESTS_CSV), RequestRow::record)?;
    let works = read_rows(&dir.join(WORKS_CSV), |w: WorkRow| {
        w.record(head.gpus_per_node)
    })?;
    Ok(RunRecords {
        policy: head.policy,
        gpus: head.gpus,
        gpus_per_node: head.gpus_per_node,
        requests,
        works,
        events: 0,
        decisions: Default::default(),
        timers: Vec::new(),
        stages: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Outcome;
    use crate::report::WorkRows;

    fn request(id: u64, outcome: Outcome) -> RequestRecord {
        RequestRecord {
            id,
            arrival: Nanos(1_500_000_000),
            resolution: Resolution::new(512, 512),
            steps: 20,
            steps_done: 20,
            deadline: Nanos(9_000_000_001),
            start: Some(Nanos(2_000_000_000)),
            end: Nanos(5_250_000_000),
            outcome,
            gpu_time: Nanos(6_000_000_007),
            degrees_used: 0b1010,
            remaps: 1,
            node: Some(1),
            saved: StepsSaved {
                prompt: Some(42),
                cache_hit: true,
                cached_steps: 8,
                skipped_steps: 3,
            },
        }
    }

    fn run() -> RunRecords {
        let mut dropped = request(1, Outcome::Dropped);
        dropped.start = None;
        dropped.end = dropped.arrival;
        dropped.node = None;
        dropped.degrees_used = 0;
        dropped.saved = StepsSaved::default();
        RunRecords {
            policy: "rssp".into(),
            gpus: 8,
            gpus_per_node: 4,
            requests: vec![request(0, Outcome::Met), dropped],
            works: vec![WorkRecord {
                requests: vec![0],
                resolution: Resolution::new(512, 512),
                gpus: GpuSet::new(1, 0b0110),
                start: Nanos(2_000_000_000),
                end: Nanos(5_250_000_000),
                first_step: 0,
                steps: 20,
                remap: false,
                works: 1,
            }],
            events: 0,
            decisions: Default::default(),
            timers: Vec::new(),
            stages: None,
        }
    }

    fn write(dir: &Path, run: &RunRecords) {
        let summary = crate::metrics::Summary::of(run);
        for (name, bytes) in super::super::run_files(run, &summary, None, WorkRows::Each) {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }

    #[test]
    fn a_written_run_reads_back_as_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let run = run();
        write(dir.path(), &run);
        assert_eq!(read_run(dir.path()).unwrap(), run);
    }

    #[test]
    fn a_merged_row_reads_back_with_its_works_and_old_files_hold_one_per_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = run();
        // Request 0's 20 steps as four back-to-back works of 5 steps on one set.
        let whole = run.works[0].clone();
        let quarter = (whole.end - whole.start).0 / 4;
        run.works = (0..4u32)
            .map(|i| WorkRecord {
                start: Nanos(whole.start.0 + u64::from(i) * quarter),
                end: Nanos(whole.start.0 + u64::from(i + 1) * quarter),
                first_step: 5 * i,
                steps: 5,
                ..whole.clone()
            })
            .collect();
        let summary = crate::metrics::Summary::of(&run);
        for (name, bytes) in super::super::run_files(&run, &summary, None, WorkRows::Merged) {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let back = read_run(dir.path()).unwrap();
        assert_eq!(
            back.works,
            [WorkRecord {
                works: 4,
                ..whole.clone()
            }]
        );
        let totals = crate::metrics::WorkTotals::of(&back.works);
        assert_eq!(totals, crate::metrics::WorkTotals::of(&run.works));
        // A works.csv without the column (written before rows were merged): one work a row.
        let p = dir.path().join(WORKS_CSV);
        let text = std::fs::read_to_string(&p).unwrap();
        let old: String = text
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
            .collect();
        std::fs::write(&p, old).unwrap();
        assert_eq!(read_run(dir.path()).unwrap().works, [whole]);
    }

    #[test]
    fn a_bad_cell_is_named_by_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &run());
        let p = dir.path().join(REQUESTS_CSV);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replacen(",6.000000007,", ",six,", 1)).unwrap();
        let e = read_run(dir.path()).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:2: field `gpu_seconds`: ", p.display())),
            "{e}"
        );
        assert!(e.contains("expected a number of seconds, got `six`"), "{e}");

        write(dir.path(), &run());
        let p = dir.path().join(WORKS_CSV);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replacen(",5;6,", ",5;9,", 1)).unwrap();
        let e = read_run(dir.path()).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}:2: field `gpus`: GPU 9 is not on node 1",
                p.display()
            )),
            "{e}"
        );

        // A row of no work, or of more works than steps.
        for (works, steps) in [("0", "20"), ("21", "20")] {
            write(dir.path(), &run());
            let p = dir.path().join(WORKS_CSV);
            let text = std::fs::read_to_string(&p).unwrap();
            let bad = text.replacen(",0,20,false,1\n", &format!(",0,{steps},false,{works}\n"), 1);
            assert_ne!(bad, text);
            std::fs::write(&p, bad).unwrap();
            let e = read_run(dir.path()).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("{}:2: field `works`: ", p.display())),
                "{e}"
            );
            assert!(
                e.contains(&format!("got {works} work(s) for 20 step(s)")),
                "{e}"
            );
        }
    }
}
