//! Rows of `works.csv` and slices of `timeline.json`: one per work, or one per run of works
//! that continue one another (a *segment*), which is the default.
//!
//! A policy that grants one step at a time (`stepwise`) dispatches a work per denoising step,
//! and a request usually keeps its GPUs from one step to the next: a million requests make
//! 28 million works, most of them the next step of the same batch on the same GPUs, started
//! the nanosecond the previous one ended. [`Segments`] writes such a run of works as one row.
//!
//! A work *continues* the row before it on its GPUs when all of these hold:
//!
//! 1. the same GPU set (node and GPUs: so the same SP degree);
//! 2. the same requests in the same order (so the same batch size and resolution);
//! 3. it starts exactly when the row ends (integer nanoseconds: no gap at all);
//! 4. its first step is the step after the row's last (no step of these requests ran
//!    anywhere else in between);
//! 5. it does not remap (it never does, given 1 and 4: the request stays on its GPUs);
//! 6. no other work ran on any of those GPUs since the row's last work began (only a work of
//!    zero duration could, at the very instant the row ends).
//!
//! The merged row keeps what its works share (requests, resolution, node, GPUs), the first
//! work's `start_s`, `first_step` and `remap`, the last work's `end_s`, the sum of the steps,
//! and the number of works (`works`). Because each work starts when the previous one ended,
//! `end_s - start_s` is exactly the sum of the works' durations, the GPUs were busy all of
//! it, and every total computed from works (GPU-seconds busy, per node, mean degree, steps,
//! works) is the same from merged rows as from one row per work. What a merged row does not
//! keep is the instants inside it where one work ended and the next began. Each work's
//! duration is its computed steps at the row's step time plus its overheads: the per-work
//! dispatch cost in every work, the text encoder in the work holding step 0 and the remap
//! hand-off, the inter-node hand-off and the group set-up only in the first work (the later
//! ones continue on the same GPUs), the VAE decode in the work holding the request's last
//! step, which is the row's last. So a merged row of `n` works lasts its steps plus `n`
//! dispatch costs plus what its first and last works add.
//!
//! Rows come out in the dispatch order of their first work; with one row per work
//! ([`WorkRows::Each`]) that is the dispatch order of the works, each with `works` = 1. A row
//! is handed on once no later work can continue it (a work has started after its end, or
//! used its GPUs) and every row before it has been: memory holds the rows opened while the
//! oldest open row runs, never the run's works.

use std::collections::VecDeque;

use crate::metrics::WorkRecord;
use crate::time::Nanos;

/// One row per work, or merged runs of works (the default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WorkRows {
    /// A run of works that continue one another is one row (see the module's docs).
    #[default]
    Merged,
    /// One row per work, in dispatch order.
    Each,
}

/// No row is open on this GPU.
const NONE: u64 = u64::MAX;

/// A row in the making, and whether a later work may still continue it.
struct Row {
    record: WorkRecord,
    open: bool,
}

/// Turns works, in dispatch order, into rows (see the module's docs).
pub struct Segments {
    rows: WorkRows,
    gpus_per_node: u32,
    /// Rows not yet handed on, in the order of their first work: `queue[i]` is row
    /// `first + i`.
    queue: VecDeque<Row>,
    first: u64,
    /// Per global GPU, the number of the latest row on it (`NONE`: none yet).
    latest: Vec<u64>,
    /// Start of the latest work: no later work starts before it.
    now: Nanos,
}

impl Segments {
    /// Rows of works on nodes of `gpus_per_node` GPUs.
    pub fn new(rows: WorkRows, gpus_per_node: u32) -> Segments {
        Segments {
            rows,
            gpus_per_node,
            queue: VecDeque::new(),
            first: 0,
            latest: Vec::new(),
            now: Nanos::ZERO,
        }
    }

    /// The row numbered `n`, if it is still held.
    fn row_mut(&mut self, n: u64) -> Option<&mut Row> {
        let i = n.checked_sub(self.first)?;
        self.queue.get_mut(usize::try_from(i).ok()?)
    }

    /// Takes the next work (works must come in dispatch order); then [`Segments::ready`]
    /// gives the rows that are complete.
    pub fn push(&mut self, w: &WorkRecord) {
        self.now = self.now.max(w.start);
        let per_node = self.gpus_per_node;
        let merged = self.rows == WorkRows::Merged;
        let first_gpu = w.gpus.global_gpus(per_node).next().map(|g| g as usize);
        if merged && let Some(g) = first_gpu {
            let n = self.latest.get(g).copied().unwrap_or(NONE);
            if let Some(row) = self.row_mut(n)
                && row.open
                && continues(&row.record, w)
            {
                let r = &mut row.record;
                r.end = w.end;
                r.steps += w.steps;
                r.works += w.works;
                return;
            }
        }
        if !merged {
            self.queue.push_back(Row {
                record: w.clone(),
                open: false,
            });
            return;
        }
        // A new row: the rows on its GPUs can no longer be continued.
        let n = self.first + self.queue.len() as u64;
        for g in w.gpus.global_gpus(per_node) {
            let g = g as usize;
            if self.latest.len() <= g {
                self.latest.resize(g + 1, NONE);
            }
            let before = std::mem::replace(&mut self.latest[g], n);
            if let Some(row) = self.row_mut(before) {
                row.open = false;
            }
        }
        self.queue.push_back(Row {
            record: w.clone(),
            open: true,
        });
    }

    /// The next complete row, if the oldest row held is complete.
    pub fn ready(&mut self) -> Option<WorkRecord> {
        let now = self.now;
        let front = self.queue.front()?;
        // A row that ended before the latest work started cannot be continued: works start
        // in dispatch order.
        if front.open && front.record.end >= now {
            return None;
        }
        self.first += 1;
        self.queue.pop_front().map(|r| r.record)
    }

    /// Every row still held, in order: the works are over.
    pub fn finish(&mut self) -> impl Iterator<Item = WorkRecord> + '_ {
        self.queue.drain(..).map(|r| r.record)
    }
}

/// Whether work `w` continues row `r` on the same GPUs (conditions 1 to 5 of the module's
/// docs; the row being open is condition 6).
fn continues(r: &WorkRecord, w: &WorkRecord) -> bool {
    r.gpus == w.gpus
        && r.requests == w.requests
        && r.resolution == w.resolution
        && r.end == w.start
        && r.first_step.checked_add(r.steps) == Some(w.first_step)
        && !w.remap
        && r.steps.checked_add(w.steps).is_some()
        && r.works.checked_add(w.works).is_some()
}

/// The rows of `works` (in dispatch order).
pub fn rows_of(works: &[WorkRecord], rows: WorkRows, gpus_per_node: u32) -> Vec<WorkRecord> {
    let mut s = Segments::new(rows, gpus_per_node);
    let mut out = Vec::new();
    for w in works {
        s.push(w);
        while let Some(r) = s.ready() {
            out.push(r);
        }
    }
    out.extend(s.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::GpuSet;
    use crate::workload::Resolution;

    /// A one-step work of `requests` on GPUs `mask` of node 0 (4 GPUs per node), from `start`
    /// to `end` milliseconds, at step `step`.
    fn work(requests: &[u64], mask: u64, start: u64, end: u64, step: u32) -> WorkRecord {
        WorkRecord {
            requests: requests.to_vec(),
            resolution: Resolution::square(1024),
            gpus: GpuSet::new(0, mask),
            start: Nanos(start * 1_000_000),
            end: Nanos(end * 1_000_000),
            steps: 1,
            first_step: step,
            remap: false,
            works: 1,
        }
    }

    fn rows(works: &[WorkRecord]) -> Vec<WorkRecord> {
        rows_of(works, WorkRows::Merged, 4)
    }

    /// (requests, start ms, end ms, first step, steps, works) of each row.
    fn brief(rows: &[WorkRecord]) -> Vec<(Vec<u64>, u64, u64, u32, u32, u32)> {
        rows.iter()
            .map(|r| {
                (
                    r.requests.clone(),
                    r.start.0 / 1_000_000,
                    r.end.0 / 1_000_000,
                    r.first_step,
                    r.steps,
                    r.works,
                )
            })
            .collect()
    }

    #[test]
    fn a_requests_back_to_back_steps_on_one_set_are_one_row() {
        let mut ws: Vec<WorkRecord> = (0..4)
            .map(|i| work(&[7], 0b0011, 10 + 5 * i, 15 + 5 * i, 3 + i as u32))
            .collect();
        ws[0].remap = true;
        let r = rows(&ws);
        assert_eq!(brief(&r), [(vec![7], 10, 30, 3, 4, 4)]);
        // The first work's remap and GPUs, the row's times.
        assert!(r[0].remap);
        assert_eq!(r[0].gpus, GpuSet::new(0, 0b0011));
        // One row per work when asked.
        assert_eq!(rows_of(&ws, WorkRows::Each, 4), ws);
    }

    #[test]
    fn a_break_in_set_time_batch_step_or_remap_starts_a_new_row() {
        let base = || vec![work(&[1], 0b01, 0, 10, 0), work(&[1], 0b01, 10, 20, 1)];
        let one = vec![(vec![1], 0, 20, 0, 2, 2)];
        assert_eq!(brief(&rows(&base())), one);
        let split = |second: WorkRecord| {
            let mut ws = base();
            ws[1] = second;
            brief(&rows(&ws)).len()
        };
        // Another GPU set (a larger one holding the first GPU, or another GPU).
        assert_eq!(split(work(&[1], 0b11, 10, 20, 1)), 2);
        assert_eq!(split(work(&[1], 0b10, 10, 20, 1)), 2);
        // A gap of one nanosecond.
        let mut late = work(&[1], 0b01, 10, 20, 1);
        late.start.0 += 1;
        assert_eq!(split(late), 2);
        // Another batch: a request more, or the same ones in another order.
        assert_eq!(split(work(&[1, 2], 0b01, 10, 20, 1)), 2);
        let mut ws = vec![
            work(&[1, 2], 0b01, 0, 10, 0),
            work(&[2, 1], 0b01, 10, 20, 1),
        ];
        assert_eq!(brief(&rows(&ws)).len(), 2);
        ws[1].requests = vec![1, 2];
        assert_eq!(brief(&rows(&ws)).len(), 1);
        // Not the next step.
        assert_eq!(split(work(&[1], 0b01, 10, 20, 2)), 2);
        // A remap.
        let mut moved = work(&[1], 0b01, 10, 20, 1);
        moved.remap = true;
        assert_eq!(split(moved), 2);
        // Another resolution.
        let mut other = work(&[1], 0b01, 10, 20, 1);
        other.resolution = Resolution::square(512);
        assert_eq!(split(other), 2);
    }

    #[test]
    fn a_zero_length_work_on_a_shared_gpu_in_between_breaks_the_row() {
        let ws = vec![
            work(&[1], 0b11, 0, 10, 0),
            work(&[2], 0b10, 10, 10, 0),
            work(&[1], 0b11, 10, 20, 1),
        ];
        assert_eq!(
            brief(&rows(&ws)),
            [
                (vec![1], 0, 10, 0, 1, 1),
                (vec![2], 10, 10, 0, 1, 1),
                (vec![1], 10, 20, 1, 1, 1)
            ]
        );
        // On another GPU it does not.
        let mut ws = ws;
        ws[1].gpus = GpuSet::new(0, 0b100);
        assert_eq!(brief(&rows(&ws))[0], (vec![1], 0, 20, 0, 2, 2));
    }

    #[test]
    fn rows_come_in_the_order_of_their_first_work_once_complete() {
        // Request 1 on GPU 0 for three steps, request 2 on GPU 1 for one, request 3 after it.
        let ws = [
            work(&[1], 0b01, 0, 10, 0),
            work(&[2], 0b10, 0, 5, 0),
            work(&[3], 0b10, 5, 12, 0),
            work(&[1], 0b01, 10, 20, 1),
            work(&[1], 0b01, 20, 30, 2),
            work(&[4], 0b10, 31, 40, 0),
        ];
        let mut s = Segments::new(WorkRows::Merged, 4);
        let mut out = Vec::new();
        let mut held = Vec::new();
        for w in &ws {
            s.push(w);
            while let Some(r) = s.ready() {
                out.push(r);
            }
            held.push(out.len());
        }
        // Request 2's row is complete at the third work, but waits behind request 1's,
        // which no later work can continue once a work starts after it ends (the last one).
        assert_eq!(held, [0, 0, 0, 0, 0, 3]);
        out.extend(s.finish());
        assert_eq!(
            brief(&out),
            [
                (vec![1], 0, 30, 0, 3, 3),
                (vec![2], 0, 5, 0, 1, 1),
                (vec![3], 5, 12, 0, 1, 1),
                (vec![4], 31, 40, 0, 1, 1)
            ]
        );
    }
}
