//! Output directories built in place of a temporary name, and a run's files streamed into one.
//!
//! [`Staging`] is the atomicity: everything goes into a hidden sibling directory, which is
//! renamed onto the output only when complete, and removed if anything fails first (or the
//! staging is dropped), so no reader ever sees half an output directory. [`RunWriter`] is the
//! memory bound: it receives a run's works as the engine finishes them, turns them into rows
//! ([`Segments`]: merged runs of works, or one row per work) and writes `works.csv` and
//! `timeline.json` row by row, so a run of millions of works never holds them, nor their
//! text, in memory; `requests.csv` and `summary.json` follow at the end.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::segments::{Segments, WorkRows};
use super::timeline::{TimelineLimit, TimelineShown, TimelineWriter};
use super::{
    REQUESTS_CSV, STAGES_CSV, SUMMARY_JSON, TIMELINE_JSON, WORKS_CSV, WORKS_HEADER, check_out_dir,
    request_row, requests_header, summary_json, with_frames, work_row,
};
use crate::error::{Error, Result};
use crate::metrics::{RecordSink, RunRecords, Summary, WorkRecord};

/// An output directory being written: files go under a temporary sibling until [`commit`].
///
/// [`commit`]: Staging::commit
pub struct Staging {
    dir: PathBuf,
    tmp: PathBuf,
    committed: bool,
    force: bool,
    /// Removes `tmp` if the process is interrupted.
    _guard: crate::files::TempGuard,
}

impl Staging {
    /// Starts writing `dir`. An existing `dir` is an error unless `force` (then it is
    /// replaced at commit, not before), and even then unless tetriserve wrote it. The new
    /// directory records the version that made it (`made-by.json`). Temporary directories of
    /// the same output left by processes that are gone are removed first.
    pub fn create(dir: &Path, force: bool) -> Result<Staging> {
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
        crate::files::remove_stale_temps(parent, Some(&name));
        let tmp = parent.join(crate::files::temp_name(&name));
        let _ = std::fs::remove_dir_all(&tmp);
        let guard = crate::files::TempGuard::new(&tmp);
        std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let staging = Staging {
            dir: dir.to_path_buf(),
            tmp,
            committed: false,
            force,
            _guard: guard,
        };
        staging.write(
            crate::files::MADE_BY,
            crate::files::made_by_json().as_bytes(),
        )?;
        Ok(staging)
    }

    /// Where `rel` is written now (inside the temporary directory).
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.tmp.join(rel)
    }

    /// Writes one file (its parent directories too).
    pub fn write(&self, rel: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
        let path = self.path(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))
    }

    /// Renames the finished directory into place (replacing an old one, allowed by `force`
    /// at creation, only now).
    pub fn commit(mut self) -> Result<()> {
        let dir = self.dir.clone();
        // Checked again: the path may have changed while the run went.
        check_out_dir(&dir, self.force)?;
        if std::fs::symlink_metadata(&dir).is_ok() {
            let mut old = self.tmp.clone().into_os_string();
            old.push(".old");
            let old = PathBuf::from(old);
            let _guard = crate::files::TempGuard::new(&old);
            std::fs::rename(&dir, &old).map_err(|e| Error::io(&dir, e))?;
            if let Err(e) = std::fs::rename(&self.tmp, &dir) {
                // Put the old directory back: a failed commit leaves the output as it was.
                let _ = std::fs::rename(&old, &dir);
                return Err(Error::io(&dir, e));
            }
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&self.tmp, &dir).map_err(|e| Error::io(&dir, e))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// One run's directory, written as the run goes: `works.csv` and `timeline.json` (if asked
/// for) row by row, `requests.csv` and `summary.json` at [`finish`](RunWriter::finish).
pub struct RunWriter {
    dir: PathBuf,
    gpus_per_node: u32,
    /// Merges works into rows; none when every work is its own row.
    segments: Option<Segments>,
    works_path: PathBuf,
    works: BufWriter<File>,
    row: String,
    timeline: Option<(PathBuf, TimelineWriter<BufWriter<File>>)>,
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 20, f))
        .map_err(|e| Error::io(path, e))
}

impl RunWriter {
    /// Starts the files of `policy`'s run on `gpus` GPUs (nodes of `gpus_per_node`) in `dir`
    /// (created), its works as `rows`, with a timeline of at most `timeline` rows, or none.
    pub fn create(
        dir: &Path,
        policy: &str,
        gpus: u32,
        gpus_per_node: u32,
        timeline: Option<TimelineLimit>,
        rows: WorkRows,
    ) -> Result<RunWriter> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let works_path = dir.join(WORKS_CSV);
        let mut works = create(&works_path)?;
        works
            .write_all(WORKS_HEADER.as_bytes())
            .map_err(|e| Error::io(&works_path, e))?;
        let timeline = match timeline {
            None => None,
            Some(limit) => {
                let path = dir.join(TIMELINE_JSON);
                let w = TimelineWriter::new(create(&path)?, policy, gpus, gpus_per_node, limit)
                    .map_err(|e| Error::io(&path, e))?;
                Some((path, w))
            }
        };
        Ok(RunWriter {
            dir: dir.to_path_buf(),
            gpus_per_node,
            segments: (rows == WorkRows::Merged).then(|| Segments::new(rows, gpus_per_node)),
            works_path,
            works,
            row: String::new(),
            timeline,
        })
    }

    /// Writes one row to `works.csv` and the timeline.
    fn row(&mut self, row: &WorkRecord) -> Result<()> {
        self.row.clear();
        work_row(&mut self.row, row, self.gpus_per_node);
        self.works
            .write_all(self.row.as_bytes())
            .map_err(|e| Error::io(&self.works_path, e))?;
        if let Some((path, t)) = &mut self.timeline {
            t.work(row).map_err(|e| Error::io(&*path, e))?;
        }
        Ok(())
    }

    /// Writes the rest once the run is over; returns what the timeline shows, if there is one.
    pub fn finish(mut self, run: &RunRecords, summary: &Summary) -> Result<Option<TimelineShown>> {
        let rest: Vec<WorkRecord> = match &mut self.segments {
            Some(s) => s.finish().collect(),
            None => Vec::new(),
        };
        for row in &rest {
            self.row(row)?;
        }
        let RunWriter {
            dir,
            works_path,
            mut works,
            timeline,
            ..
        } = self;
        works.flush().map_err(|e| Error::io(&works_path, e))?;
        let mut shown = None;
        if let Some((path, t)) = timeline {
            let (mut out, s) = t.finish(&run.requests).map_err(|e| Error::io(&path, e))?;
            out.flush().map_err(|e| Error::io(&path, e))?;
            shown = Some(s);
        }
        let path = dir.join(REQUESTS_CSV);
        let mut out = create(&path)?;
        let mut row = String::with_capacity(256);
        let frames = with_frames(&run.requests);
        out.write_all(requests_header(frames).as_bytes())
            .map_err(|e| Error::io(&path, e))?;
        for r in &run.requests {
            row.clear();
            request_row(&mut row, r, frames);
            out.write_all(row.as_bytes())
                .map_err(|e| Error::io(&path, e))?;
        }
        out.flush().map_err(|e| Error::io(&path, e))?;
        if let Some(stages) = super::stages_csv(run) {
            let path = dir.join(STAGES_CSV);
            std::fs::write(&path, stages).map_err(|e| Error::io(&path, e))?;
        }
        let path = dir.join(SUMMARY_JSON);
        std::fs::write(&path, summary_json(summary)).map_err(|e| Error::io(&path, e))?;
        Ok(shown)
    }
}

impl RecordSink for RunWriter {
    fn work(&mut self, work: &WorkRecord) -> Result<()> {
        let Some(segments) = &mut self.segments else {
            return self.row(work);
        };
        segments.push(work);
        while let Some(row) = self.segments.as_mut().and_then(Segments::ready) {
            self.row(&row)?;
        }
        Ok(())
    }
}
