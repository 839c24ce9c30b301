//! How the ranks of one sequence-parallel group exchange data: the [`Transport`] interface and
//! the pieces every implementation shares.
//!
//! A Ulysses step on `k` ranks needs two all-to-alls per attention (token shards -> head
//! shards, and back; see [`ulysses`](super::ulysses)). [`model`](super::model) calls
//! [`Transport::exchange`] for both, on every rank, in the same order. Three implementations:
//!
//! - [`HostTransport`] (here): ranks are CPU threads; each posts what it sends, and every rank
//!   copies the blocks addressed to it out of its peers' posts;
//! - [`LaneTransport`](super::lanes::LaneTransport): `k` lanes (streams) on one GPU, the blocks
//!   as device copies ordered by CUDA events;
//! - [`NcclTransport`](super::nccl::NcclTransport): ranks on distinct GPUs, packed NCCL
//!   send/receive pairs.
//!
//! [`Solo`] is the one-rank case (the blocks are local copies) and [`ShareOnly`] runs no
//! exchange at all, for profiling one rank's share of a step.
//!
//! The ranks of a group meet at a [`Rendezvous`]: each posts a value and receives everyone's.
//! A rank that fails calls [`Rendezvous::abort`], which wakes every waiting peer with an error,
//! and a rank whose peers do not arrive within the timeout gives up: no rank can hang.

use std::any::Any;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::real::ops::{Ops, Ptr, extent};
use crate::real::ulysses::Block;

/// Performs the all-to-alls of one rank of a sequence-parallel group over backend `O`.
pub trait Transport<O: Ops> {
    /// This rank's index in the group.
    fn rank(&self) -> usize;
    /// The group's size.
    fn ranks(&self) -> usize;
    /// This rank's part of the all-to-all `blocks` (see [`Block`]): sends the blocks whose
    /// `src_rank` is this rank from its buffer `src`, receives those whose `dst_rank` is this
    /// rank into its buffer `dst`. Ordered after every operation queued before it on `ops`, and
    /// before every one queued after.
    fn exchange(&mut self, ops: &O, blocks: &[Block], src: Ptr, dst: Ptr) -> Result<()>;
    /// Releases the peers after an error on this rank: their exchanges fail instead of waiting.
    fn abort(&self, why: &str);
}

/// Copies the blocks that stay on `rank` (source and destination both `rank`).
pub fn local_blocks<O: Ops>(
    ops: &O,
    rank: usize,
    blocks: &[Block],
    src: Ptr,
    dst: Ptr,
) -> Result<()> {
    for b in blocks
        .iter()
        .filter(|b| b.src_rank == rank && b.dst_rank == rank)
    {
        ops.copy_2d(
            (dst.at(b.dst_offset), b.dst_ld),
            (src.at(b.src_offset), b.src_ld),
            b.rows,
            b.cols,
        )?;
    }
    Ok(())
}

/// A group of one: every block is local.
pub struct Solo;

impl<O: Ops> Transport<O> for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn ranks(&self) -> usize {
        1
    }
    fn exchange(&mut self, ops: &O, blocks: &[Block], src: Ptr, dst: Ptr) -> Result<()> {
        local_blocks(ops, 0, blocks, src, dst)
    }
    fn abort(&self, _why: &str) {}
}

/// Rank `rank` of `ranks` computing its share of a step with no exchange at all: what one rank
/// of a `k`-GPU group computes, for timing it on one device (the profiler adds the modelled
/// all-to-all time). Its outputs are meaningless.
pub struct ShareOnly {
    pub rank: usize,
    pub ranks: usize,
}

impl<O: Ops> Transport<O> for ShareOnly {
    fn rank(&self) -> usize {
        self.rank
    }
    fn ranks(&self) -> usize {
        self.ranks
    }
    fn exchange(&mut self, _ops: &O, _blocks: &[Block], _src: Ptr, _dst: Ptr) -> Result<()> {
        Ok(())
    }
    fn abort(&self, _why: &str) {}
}

/// What a rank posts at a rendezvous.
pub type Post = Arc<dyn Any + Send + Sync>;

struct RvState {
    /// Completed meetings.
    generation: u64,
    posted: Vec<Option<Post>>,
    count: usize,
    /// Everyone's posts at the last completed meeting.
    last: Vec<Post>,
    aborted: Option<String>,
}

/// Where the `k` ranks of a group meet: [`meet`](Self::meet) blocks until every rank has
/// posted, then returns all posts (in rank order).
pub struct Rendezvous {
    ranks: usize,
    state: Mutex<RvState>,
    cv: Condvar,
    timeout: Duration,
}

impl Rendezvous {
    /// A meeting point for `ranks` ranks; a rank waits at most `timeout` for its peers.
    pub fn new(ranks: usize, timeout: Duration) -> Rendezvous {
        Rendezvous {
            ranks,
            state: Mutex::new(RvState {
                generation: 0,
                posted: vec![None; ranks],
                count: 0,
                last: Vec::new(),
                aborted: None,
            }),
            cv: Condvar::new(),
            timeout,
        }
    }

    pub fn ranks(&self) -> usize {
        self.ranks
    }

    /// Posts `post` as rank `rank` and waits for the others; everyone's posts, in rank order.
    pub fn meet(&self, rank: usize, post: Post) -> Result<Vec<Post>> {
        let poisoned = || Error::Executor("a rank panicked during an exchange".into());
        let mut s = self.state.lock().map_err(|_| poisoned())?;
        if let Some(why) = &s.aborted {
            return Err(Error::Executor(format!("exchange aborted: {why}")));
        }
        if rank >= self.ranks || s.posted[rank].is_some() {
            return Err(Error::Executor(format!(
                "rank {rank} of {} posted twice or out of range",
                self.ranks
            )));
        }
        s.posted[rank] = Some(post);
        s.count += 1;
        let generation = s.generation;
        if s.count == self.ranks {
            s.last = s
                .posted
                .iter_mut()
                .map(|p| p.take().expect("all posted"))
                .collect();
            s.count = 0;
            s.generation += 1;
            self.cv.notify_all();
            return Ok(s.last.clone());
        }
        let deadline = Instant::now() + self.timeout;
        while s.generation == generation {
            if let Some(why) = &s.aborted {
                return Err(Error::Executor(format!("exchange aborted: {why}")));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let why = format!(
                    "rank {rank} waited {:.1} s for its {} peers",
                    self.timeout.as_secs_f64(),
                    self.ranks - 1
                );
                s.aborted = Some(why.clone());
                self.cv.notify_all();
                return Err(Error::Executor(format!("exchange timed out: {why}")));
            }
            s = self.cv.wait_timeout(s, left).map_err(|_| poisoned())?.0;
        }
        // A fast rank may already have posted for the next meeting; `last` changes only when
        // this rank posts again, so it still holds this meeting's posts.
        Ok(s.last.clone())
    }

    /// Fails every current and future [`meet`](Self::meet) with `why`.
    pub fn abort(&self, why: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.aborted.get_or_insert_with(|| why.to_string());
            self.cv.notify_all();
        }
    }

    /// Whether the group was aborted, and why.
    pub fn aborted(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.aborted.clone())
    }
}

/// Ranks as CPU threads: each rank posts a copy of what it sends; each copies the blocks
/// addressed to it out of its peers' posts.
pub struct HostTransport {
    pub rank: usize,
    pub group: Arc<Rendezvous>,
}

impl<O: Ops> Transport<O> for HostTransport {
    fn rank(&self) -> usize {
        self.rank
    }
    fn ranks(&self) -> usize {
        self.group.ranks()
    }
    fn exchange(&mut self, ops: &O, blocks: &[Block], src: Ptr, dst: Ptr) -> Result<()> {
        let me = self.rank;
        // What this rank's blocks read: one slice from the start of `src` to the end of the
        // furthest block it sends.
        let len = blocks
            .iter()
            .filter(|b| b.src_rank == me && b.rows > 0 && b.cols > 0)
            .map(|b| b.src_offset + extent(b.rows, b.cols, b.src_ld))
            .max()
            .unwrap_or(0);
        let mine: Arc<Vec<f32>> = Arc::new(ops.read(src, len)?);
        let posts = self.group.meet(me, mine)?;
        for b in blocks.iter().filter(|b| b.dst_rank == me) {
            let from = posts[b.src_rank]
                .downcast_ref::<Vec<f32>>()
                .ok_or_else(|| Error::Executor("a peer posted something else".into()))?;
            for r in 0..b.rows {
                let s = b.src_offset + r * b.src_ld;
                let row = from.get(s..s + b.cols).ok_or_else(|| {
                    Error::Executor(format!("rank {} sent a short buffer", b.src_rank))
                })?;
                ops.write(dst.at(b.dst_offset + r * b.dst_ld), row)?;
            }
        }
        // Peers keep reading this meeting's posts after it; they are snapshots, so nothing
        // more is needed before this rank writes `src` again.
        Ok(())
    }
    fn abort(&self, why: &str) {
        self.group.abort(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::cpu::CpuOps;
    use crate::real::ulysses::{self, Layout};

    #[test]
    fn host_ranks_exchange_like_the_direct_copies_twice_in_a_row() {
        // 4 threads, 21 tokens, 8 heads of 2: the q/k/v all-to-all, then the way back, twice;
        // every element checked against `ulysses::apply` on the host.
        let l = Layout::new(21, 8, 2, 4).unwrap();
        let ld = 3 * l.hidden() + 1;
        let blocks = l.to_heads(3, ld);
        let src: Vec<Vec<f32>> = (0..4)
            .map(|r| {
                (0..l.token_range(r).len().max(1) * ld)
                    .map(|i| (r * 10_000 + i) as f32)
                    .collect()
            })
            .collect();
        let mut want = vec![vec![0.0; l.tokens * 3 * l.width()]; 4];
        ulysses::apply(&blocks, &src, &mut want);
        let group = Arc::new(Rendezvous::new(4, Duration::from_secs(10)));
        let got: Vec<Vec<f32>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|r| {
                    let (group, blocks, src) = (group.clone(), &blocks, &src[r]);
                    s.spawn(move || {
                        let mut ops = CpuOps::new();
                        let a = ops.alloc(src.len()).unwrap();
                        ops.write(a, src).unwrap();
                        let b = ops.alloc(l.tokens * 3 * l.width()).unwrap();
                        let mut t = HostTransport { rank: r, group };
                        for _ in 0..2 {
                            t.exchange(&ops, blocks, a, b).unwrap();
                        }
                        ops.read(b, l.tokens * 3 * l.width()).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(got, want);
    }

    #[test]
    fn an_abort_releases_waiting_peers_and_a_missing_peer_times_out() {
        let group = Arc::new(Rendezvous::new(3, Duration::from_secs(30)));
        let start = Instant::now();
        std::thread::scope(|s| {
            let g = group.clone();
            let waiter = s.spawn(move || g.meet(0, Arc::new(())));
            std::thread::sleep(Duration::from_millis(50));
            group.abort("rank 2 failed");
            let e = waiter.join().unwrap().unwrap_err();
            assert!(e.to_string().contains("rank 2 failed"), "{e}");
        });
        assert!(start.elapsed() < Duration::from_secs(5));
        let lonely = Rendezvous::new(2, Duration::from_millis(100));
        let e = lonely.meet(1, Arc::new(())).unwrap_err();
        assert!(e.to_string().contains("timed out"), "{e}");
        assert!(lonely.aborted().is_some());
    }
}
