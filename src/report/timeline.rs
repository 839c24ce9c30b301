//! `timeline.json`: the run as a Chrome trace (open it in Perfetto or chrome://tracing).
//!
//! One process per node, one thread (track) per GPU, both named by metadata events
//! (`process_name` "node 1", `thread_name` "GPU 9 (node 1, GPU 1 of the node)") and sorted
//! by number. Every row of `works.csv` (a work, or a merged run of works that continue one
//! another: `segments.rs`) becomes one complete ("X") slice on each of its GPUs, named after
//! its request(s) and steps, coloured by resolution through the category, its `args` holding
//! the requests, SP degree, steps, remap and the number of works. A request that missed its
//! deadline gets an instant marker at its finish.
//!
//! The JSON is written event by event as rows arrive ([`TimelineWriter`]), with no document
//! tree: a trace has one event per GPU per row, millions for large runs. A browser cannot
//! open a multi-gigabyte trace, so a writer may keep only the first rows ([`TimelineLimit`]:
//! it counts rows, as the file's size does, not the works they hold); a cut timeline ends
//! with a global instant event saying so, after the last row shown.
//! Times are exact decimal microseconds from integer nanoseconds, so the file is
//! byte-identical across platforms.

use std::collections::HashMap;
use std::io::Write;

use super::push_resolution;
use super::segments::{WorkRows, rows_of};
use crate::metrics::{Outcome, RequestRecord, RunRecords, WorkRecord};
use crate::time::{Nanos, push_uint};

/// How many rows of `works.csv` a timeline shows (each row a work, or a merged run of works).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimelineLimit {
    All,
    /// The first this many rows, in order.
    First(usize),
}

impl TimelineLimit {
    /// What `simulate --out` keeps unless asked for more: a hundred thousand rows make
    /// a trace of some tens of megabytes, which Perfetto and chrome://tracing open quickly.
    pub const DEFAULT: TimelineLimit = TimelineLimit::First(100_000);
}

/// Exact microseconds with three decimals (`12.345`), from nanoseconds.
fn us(t: Nanos) -> String {
    let mut s = String::with_capacity(24);
    push_us(&mut s, t);
    s
}

fn push_us(s: &mut String, t: Nanos) {
    push_uint(s, t.0 / 1000);
    let frac = t.0 % 1000;
    s.push('.');
    s.push(char::from(b'0' + (frac / 100) as u8));
    s.push(char::from(b'0' + (frac / 10 % 10) as u8));
    s.push(char::from(b'0' + (frac % 10) as u8));
}

/// What a finished timeline shows of the run: rows and the works they hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimelineShown {
    pub rows: usize,
    pub rows_seen: usize,
    pub works: u64,
    pub works_seen: u64,
}

impl TimelineShown {
    /// Whether rows were left out.
    pub fn is_cut(&self) -> bool {
        self.rows < self.rows_seen
    }
}

/// Writes a timeline to `out` as rows come, in order.
pub struct TimelineWriter<W: Write> {
    out: W,
    gpus_per_node: u32,
    limit: TimelineLimit,
    first: bool,
    /// Rows and works seen, and shown.
    shown: TimelineShown,
    /// Start of the first row left out: later events are not shown.
    cut_at: Option<Nanos>,
    /// End of the latest row shown.
    last_end: Nanos,
    /// Per request label: the node and first GPU of its latest work shown.
    last_gpu: HashMap<u64, (u32, u32)>,
    /// Scratch text of the current work's events: what comes before the GPU (`tid`) and
    /// after it, the same on every GPU of the work, and the events themselves.
    head: String,
    tail: String,
    event: String,
}

impl<W: Write> TimelineWriter<W> {
    /// Starts the trace of `policy`'s run on `gpus` GPUs in nodes of `gpus_per_node`.
    pub fn new(
        mut out: W,
        policy: &str,
        gpus: u32,
        gpus_per_node: u32,
        limit: TimelineLimit,
    ) -> std::io::Result<Self> {
        let per_node = gpus_per_node.max(1);
        write!(
            out,
            "{{\"displayTimeUnit\":\"ms\",\"otherData\":{{\"policy\":{}}},\"traceEvents\":[",
            serde_json::to_string(policy).expect("a string serialises")
        )?;
        let mut w = TimelineWriter {
            out,
            gpus_per_node: per_node,
            limit,
            first: true,
            shown: TimelineShown::default(),
            cut_at: None,
            last_end: Nanos::ZERO,
            last_gpu: HashMap::new(),
            head: String::new(),
            tail: String::new(),
            event: String::new(),
        };
        // Names and sort order of the tracks: a process per node, a thread per GPU named by
        // its global number and its place in the node, so a trace viewer lists them in order.
        for node in 0..gpus.div_ceil(per_node) {
            w.sep()?;
            write!(
                w.out,
                "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{node},\"args\":{{\"name\":\"node {node}\"}}}},{{\"ph\":\"M\",\"name\":\"process_sort_index\",\"pid\":{node},\"args\":{{\"sort_index\":{node}}}}}"
            )?;
        }
        for g in 0..gpus {
            let (node, local) = (g / per_node, g % per_node);
            w.sep()?;
            write!(
                w.out,
                "{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{node},\"tid\":{g},\"args\":{{\"name\":\"GPU {g} (node {node}, GPU {local} of the node)\"}}}},{{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":{node},\"tid\":{g},\"args\":{{\"sort_index\":{g}}}}}"
            )?;
        }
        Ok(w)
    }

    fn sep(&mut self) -> std::io::Result<()> {
        if !self.first {
            self.out.write_all(b",")?;
        }
        self.first = false;
        Ok(())
    }

    /// Adds one row of `works.csv` (rows must come in order). Written by hand, not with
    /// `write!`: a run writes millions of these events.
    pub fn work(&mut self, w: &WorkRecord) -> std::io::Result<()> {
        self.shown.rows_seen += 1;
        self.shown.works_seen += u64::from(w.works);
        if self.cut_at.is_some() {
            return Ok(());
        }
        if let TimelineLimit::First(n) = self.limit
            && self.shown.rows >= n
        {
            self.cut_at = Some(w.start);
            return Ok(());
        }
        self.shown.rows += 1;
        self.shown.works += u64::from(w.works);
        self.last_end = self.last_end.max(w.end);
        let tail = &mut self.tail;
        tail.clear();
        tail.push_str(",\"ts\":");
        push_us(tail, w.start);
        tail.push_str(",\"dur\":");
        push_us(tail, w.end - w.start);
        tail.push_str(",\"args\":{\"requests\":[");
        for (i, r) in w.requests.iter().enumerate() {
            if i > 0 {
                tail.push(',');
            }
            push_uint(tail, *r);
        }
        tail.push_str("],\"sp_degree\":");
        push_uint(tail, u64::from(w.gpus.len()));
        tail.push_str(",\"steps\":");
        push_uint(tail, u64::from(w.steps));
        tail.push_str(",\"remap\":");
        tail.push_str(if w.remap { "true" } else { "false" });
        tail.push_str(",\"works\":");
        push_uint(tail, u64::from(w.works));
        tail.push_str("}}");
        let head = &mut self.head;
        head.clear();
        head.push_str("{\"ph\":\"X\",\"name\":\"");
        for (i, r) in w.requests.iter().enumerate() {
            head.push_str(if i > 0 { "+r" } else { "r" });
            push_uint(head, *r);
        }
        head.push(' ');
        push_resolution(head, w.resolution);
        head.push_str(" steps ");
        push_uint(head, u64::from(w.first_step));
        head.push('-');
        push_uint(head, u64::from(w.first_step + w.steps - 1));
        head.push_str("\",\"cat\":\"");
        push_resolution(head, w.resolution);
        head.push_str("\",\"pid\":");
        push_uint(head, u64::from(w.gpus.node()));
        head.push_str(",\"tid\":");
        let mut event = std::mem::take(&mut self.event);
        event.clear();
        for g in w.gpus.global_gpus(self.gpus_per_node) {
            if !self.first {
                event.push(',');
            }
            self.first = false;
            event.push_str(&self.head);
            push_uint(&mut event, u64::from(g));
            event.push_str(&self.tail);
        }
        self.out.write_all(event.as_bytes())?;
        self.event = event;
        let first_gpu = w.gpus.global_gpus(self.gpus_per_node).next().unwrap_or(0);
        for &r in &w.requests {
            self.last_gpu.insert(r, (w.gpus.node(), first_gpu));
        }
        Ok(())
    }

    /// Ends the trace: a marker for every request that missed its deadline (among those
    /// shown, before the cut), then the cut notice if rows were left out. Returns what it
    /// shows.
    pub fn finish(mut self, requests: &[RequestRecord]) -> std::io::Result<(W, TimelineShown)> {
        for r in requests {
            if r.outcome != Outcome::Missed || self.cut_at.is_some_and(|c| r.end > c) {
                continue;
            }
            if let Some(&(node, gpu)) = self.last_gpu.get(&r.id) {
                self.sep()?;
                write!(
                    self.out,
                    "{{\"ph\":\"i\",\"s\":\"t\",\"name\":\"r{} missed deadline\",\"pid\":{node},\"tid\":{gpu},\"ts\":{},\"args\":{{\"deadline_s\":{},\"finish_s\":{}}}}}",
                    r.id,
                    us(r.end),
                    r.deadline.secs_string(),
                    r.end.secs_string()
                )?;
            }
        }
        if let Some(cut) = self.cut_at {
            self.sep()?;
            write!(
                self.out,
                "{{\"ph\":\"i\",\"s\":\"g\",\"name\":\"timeline cut: the first {} of {} rows are shown, {} of {} works (rows from {} s on are left out; ask for all with --timeline-works all)\",\"pid\":0,\"tid\":0,\"ts\":{}}}",
                self.shown.rows,
                self.shown.rows_seen,
                self.shown.works,
                self.shown.works_seen,
                cut.secs_string(),
                us(self.last_end)
            )?;
        }
        self.out.write_all(b"]}\n")?;
        Ok((self.out, self.shown))
    }
}

/// The whole timeline of a run that kept its works, merged runs of works as one slice.
pub fn timeline_json(run: &RunRecords) -> String {
    timeline_limited(run, TimelineLimit::All, WorkRows::Merged)
}

/// The timeline of a run that kept its works, as `rows`, with at most `limit` rows.
pub fn timeline_limited(run: &RunRecords, limit: TimelineLimit, rows: WorkRows) -> String {
    let mut w = TimelineWriter::new(
        Vec::with_capacity(64 + run.works.len() * 200),
        &run.policy,
        run.gpus,
        run.gpus_per_node,
        limit,
    )
    .expect("writing to memory cannot fail");
    for row in rows_of(&run.works, rows, run.gpus_per_node) {
        w.work(&row).expect("writing to memory cannot fail");
    }
    let (bytes, _) = w
        .finish(&run.requests)
        .expect("writing to memory cannot fail");
    String::from_utf8(bytes).expect("the timeline is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_are_named_after_their_node_and_gpu() {
        let w = TimelineWriter::new(Vec::new(), "p", 4, 2, TimelineLimit::All).unwrap();
        let (bytes, _) = w.finish(&[]).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        let events = json["traceEvents"].as_array().unwrap();
        let named = |kind: &str| -> Vec<(u64, Option<u64>, String)> {
            events
                .iter()
                .filter(|e| e["ph"] == "M" && e["name"] == kind)
                .map(|e| {
                    (
                        e["pid"].as_u64().unwrap(),
                        e["tid"].as_u64(),
                        e["args"]["name"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        assert_eq!(
            named("process_name"),
            [(0, None, "node 0".into()), (1, None, "node 1".into())]
        );
        let threads = named("thread_name");
        assert_eq!(threads.len(), 4);
        assert_eq!(
            threads[3],
            (1, Some(3), "GPU 3 (node 1, GPU 1 of the node)".into())
        );
        let sorted = events
            .iter()
            .filter(|e| e["name"] == "thread_sort_index")
            .count();
        assert_eq!(sorted, 4);
    }
}
