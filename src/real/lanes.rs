//! Lanes: `k` ranks on ONE GPU, each a CUDA stream of its own (NCCL refuses two ranks on one
//! device).
//!
//! A machine with one GPU runs an `N`-slot node as `N` lanes of that GPU: the weights are built
//! once and shared read-only ([`GpuOps::freeze`] / [`GpuOps::sharing`]); each lane has its own
//! stream, cuBLAS handle and workspaces, on its slot's worker thread. The lanes of a group run
//! the same [`model::step`](super::model::step) as ranks on distinct GPUs, and their
//! all-to-alls are device copies ([`LaneTransport`]). Timings are those of one GPU shared by
//! the group (the executor says so: `emulated`).
//!
//! An exchange is stream-ordered, with no host wait:
//!
//! 1. each lane records an event on its stream once its source buffer is produced and posts
//!    (source address, its length, that event) at the group's [`Rendezvous`];
//! 2. each lane makes its stream wait for every peer's event, then queues, on its own stream,
//!    the copy of every block addressed to it, reading the sender's buffer directly;
//! 3. each lane records a second event after its copies and posts it; every lane makes its
//!    stream wait for all of them before going on, so that no lane overwrites its source (or
//!    frees it) while a peer still reads it.
//!
//! Events only ever refer to work already queued, so the streams cannot deadlock; a lane that
//! fails aborts the rendezvous and its peers' exchanges fail instead of waiting.

use std::sync::Arc;

use cudarc::driver::CudaEvent;

use crate::error::{Error, Result};
use crate::real::config::DitConfig;
use crate::real::executor::{RankJob, RankOutput, Runner, Slot, SlotFactory};
use crate::real::gpu::{GpuArena, GpuDevice, GpuOps};
use crate::real::model::Weights;
use crate::real::ops::{Ptr, extent};
use crate::real::transport::{Rendezvous, Solo, Transport};
use crate::real::ulysses::Block;

/// What a lane posts at the first meeting of an exchange.
struct Source {
    /// Device address of the lane's `src` and the bf16 values from there to its buffer's end.
    addr: u64,
    len: usize,
    /// Recorded on the lane's stream after `src` was produced.
    ready: CudaEvent,
}

/// What a lane posts at the second meeting: recorded after its copies out of its peers.
struct Done(CudaEvent);

/// The blocks lane `me` copies in an exchange: those addressed to it, from every lane
/// (itself included), in list order.
pub fn blocks_for(blocks: &[Block], me: usize) -> impl Iterator<Item = &Block> {
    blocks.iter().filter(move |b| b.dst_rank == me)
}

/// Checks that every block a lane copies stays inside the source lengths its peers posted and
/// inside its destination (`dst_len` values).
pub fn check_blocks(blocks: &[Block], me: usize, src_len: &[usize], dst_len: usize) -> Result<()> {
    for b in blocks_for(blocks, me) {
        let from = src_len.get(b.src_rank).copied().ok_or_else(|| {
            Error::Executor(format!(
                "a block from rank {} of {}",
                b.src_rank,
                src_len.len()
            ))
        })?;
        if b.src_offset + extent(b.rows, b.cols, b.src_ld) > from {
            return Err(Error::Executor(format!(
                "a block reads past the {from} values rank {} sent",
                b.src_rank
            )));
        }
        if b.dst_offset + extent(b.rows, b.cols, b.dst_ld) > dst_len {
            return Err(Error::Executor(format!(
                "a block writes past the {dst_len} values of rank {me}'s destination"
            )));
        }
    }
    Ok(())
}

/// Rank `rank` of a group of lanes on one GPU.
pub struct LaneTransport {
    pub rank: usize,
    pub group: Arc<Rendezvous>,
}

impl LaneTransport {
    fn exchange_inner(&mut self, ops: &GpuOps, blocks: &[Block], src: Ptr, dst: Ptr) -> Result<()> {
        let me = self.rank;
        ops.bind()?;
        let len = ops.len_from(src)?;
        let addr = ops.addr(src, len)?;
        let dst_len = ops.len_from(dst)?;
        let dst_addr = ops.addr_mut(dst, dst_len)?;
        let ready = ops.record_event()?;
        let posts = self.group.meet(me, Arc::new(Source { addr, len, ready }))?;
        let sources: Vec<&Source> = posts
            .iter()
            .map(|p| {
                p.downcast_ref::<Source>()
                    .ok_or_else(|| Error::Executor("a lane posted something else".into()))
            })
            .collect::<Result<_>>()?;
        let lens: Vec<usize> = sources.iter().map(|s| s.len).collect();
        // A bad block list fails before this lane queues anything; its peers fail at the
        // second meeting (aborted by the caller).
        check_blocks(blocks, me, &lens, dst_len)?;
        for (r, s) in sources.iter().enumerate() {
            if r != me {
                ops.wait_event(&s.ready)?;
            }
        }
        for b in blocks_for(blocks, me) {
            let from = sources[b.src_rank].addr + 2 * b.src_offset as u64;
            let to = dst_addr + 2 * b.dst_offset as u64;
            // SAFETY: both regions were checked above against the lengths of live buffers on
            // this device (a peer's source stays alive and unwritten until the second meeting's
            // events, which its stream waits for); this stream waits for the peer's `ready`.
            unsafe { ops.copy_2d_raw((to, b.dst_ld), (from, b.src_ld), b.rows, b.cols)? };
        }
        let done = ops.record_event()?;
        let posts = self.group.meet(me, Arc::new(Done(done)))?;
        for (r, p) in posts.iter().enumerate() {
            if r == me {
                continue;
            }
            let d = p
                .downcast_ref::<Done>()
                .ok_or_else(|| Error::Executor("a lane posted something else".into()))?;
            ops.wait_event(&d.0)?;
        }
        Ok(())
    }
}

impl Transport<GpuOps> for LaneTransport {
    fn rank(&self) -> usize {
        self.rank
    }

    fn ranks(&self) -> usize {
        self.group.ranks()
    }

    fn exchange(&mut self, ops: &GpuOps, blocks: &[Block], src: Ptr, dst: Ptr) -> Result<()> {
        let r = self.exchange_inner(ops, blocks, src, dst);
        if let Err(e) = &r {
            self.group.abort(&format!("lane {}: {e}", self.rank));
        }
        r
    }

    fn abort(&self, why: &str) {
        self.group.abort(why);
    }
}

/// A lane: its stream's operations and workspaces.
struct LaneSlot {
    runner: Runner<GpuOps>,
}

impl Slot for LaneSlot {
    fn run(&mut self, job: &RankJob) -> Result<RankOutput> {
        // The worker thread runs every job; bind again in case anything unbound it.
        self.runner.ops.bind()?;
        if job.ranks() == 1 {
            return self.runner.run(job, &mut Solo);
        }
        let mut t = LaneTransport {
            rank: job.rank,
            group: job.group.clone(),
        };
        self.runner.run(job, &mut t)
    }
}

/// Lane factories sharing `shared` (built on `dev`) and `weights`.
pub fn lane_factories(
    shared: Arc<GpuArena>,
    weights: Arc<Weights>,
    slots: usize,
) -> Vec<SlotFactory> {
    (0..slots)
        .map(|_| {
            let (shared, weights) = (shared.clone(), weights.clone());
            Box::new(move || {
                let ops = GpuOps::sharing(shared)?;
                Ok(Box::new(LaneSlot {
                    runner: Runner::new(ops, weights),
                }) as Box<dyn Slot>)
            }) as SlotFactory
        })
        .collect()
}

/// `slots` lanes on device 0 sharing one copy of the weights (seeded `seed`); the backend's
/// description.
pub fn lane_slots(cfg: &DitConfig, slots: usize, seed: u64) -> Result<(Vec<SlotFactory>, String)> {
    if slots == 0 {
        return Err(Error::Executor("a node needs at least one lane".into()));
    }
    crate::real::device::probe()?;
    let dev = GpuDevice::open(0)?;
    let mut ops = GpuOps::new(&dev)?;
    let weights = Arc::new(Weights::build(&mut ops, cfg.clone(), seed)?);
    let shared = ops.freeze()?;
    let description = format!(
        "CUDA: {slots} lane(s) on one {}, model {}",
        dev.name, cfg.name
    );
    Ok((lane_factories(shared, weights, slots), description))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::ulysses::{self, Layout};

    #[test]
    fn each_lane_copies_exactly_the_blocks_addressed_to_it() {
        // 21 tokens, 8 heads of 2, 4 lanes: the q/k/v all-to-all and the way back. Applying
        // each lane's share of the list (in lane order) equals applying the whole list.
        let l = Layout::new(21, 8, 2, 4).unwrap();
        let ld = 3 * l.hidden() + 1;
        for (blocks, src_len, dst_len) in [
            (l.to_heads(3, ld), l.shard() * ld, l.tokens * 3 * l.width()),
            (
                l.to_tokens(l.hidden()),
                l.tokens * l.width(),
                l.shard() * l.hidden(),
            ),
        ] {
            let src: Vec<Vec<u32>> = (0..4)
                .map(|r| (0..src_len).map(|i| (r * 100_000 + i) as u32).collect())
                .collect();
            let mut want = vec![vec![u32::MAX; dst_len]; 4];
            ulysses::apply(&blocks, &src, &mut want);
            let mut got = vec![vec![u32::MAX; dst_len]; 4];
            let mut copied = 0;
            for me in 0..4 {
                check_blocks(&blocks, me, &[src_len; 4], dst_len).unwrap();
                let mine: Vec<Block> = blocks_for(&blocks, me).copied().collect();
                assert!(mine.iter().all(|b| b.dst_rank == me));
                copied += mine.len();
                ulysses::apply(&mine, &src, &mut got);
            }
            assert_eq!(copied, blocks.len(), "every block is copied once");
            assert_eq!(got, want);
        }
    }

    #[test]
    fn blocks_outside_the_posted_buffers_are_refused() {
        let l = Layout::new(16, 4, 2, 2).unwrap();
        let ld = 3 * l.hidden();
        let blocks = l.to_heads(3, ld);
        let (src_len, dst_len) = (l.shard() * ld, l.tokens * 3 * l.width());
        assert!(check_blocks(&blocks, 1, &[src_len, src_len], dst_len).is_ok());
        assert!(check_blocks(&blocks, 1, &[src_len - 1, src_len], dst_len).is_err());
        assert!(check_blocks(&blocks, 1, &[src_len, src_len], dst_len - 1).is_err());
        assert!(
            check_blocks(&blocks, 1, &[src_len], dst_len).is_err(),
            "a missing peer"
        );
    }
}
