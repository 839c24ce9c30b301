//! NCCL between local GPUs: communicators, the exchanges of a Ulysses all-to-all as grouped
//! send/receive pairs (NCCL has no all-to-all; [`Packed`] says what goes where), and the node
//! of one slot per GPU that the real executor runs on a multi-GPU machine ([`nccl_slots`]).
//!
//! The node's communicator is created once, over every device (`ncclCommInitAll`; its creation
//! time is part of the backend's description): rank `i` of it is device `i`, which is slot
//! `i`. A dispatch on any GPU set then uses it directly: each rank of the group talks to its
//! peers by their slot index, so groups of any shape need no communicator of their own.
//!
//! An exchange on one rank ([`NcclTransport`]), all on its stream, issued by its own thread:
//! the blocks it sends are packed into one contiguous send buffer (the copy kernel, offsets of
//! [`Packed`]); its own blocks are copied locally; one `ncclGroupStart` / `ncclSend` +
//! `ncclRecv` per peer / `ncclGroupEnd`; the received slices are unpacked into the
//! destination. Every fallible step before NCCL comes first, then the ranks meet on the host:
//! a rank that failed is detected there, and its peers fail instead of queuing NCCL calls that
//! would wait on the device forever.
//!
//! `tetriserve gpu-check` runs [`self_test`] on machines with two or more devices. NCCL is
//! loaded at run time like the other CUDA libraries, so a missing libnccl is an error, not a
//! panic. The raw API is used rather than cudarc's safe wrappers, whose destructors panic on
//! NCCL errors.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cudarc::driver::CudaContext;
use cudarc::nccl::{result, sys};

use crate::error::{Error, Result};
use crate::real::config::DitConfig;
use crate::real::device::Gpu;
use crate::real::executor::{RankJob, RankOutput, Runner, Slot, SlotFactory};
use crate::real::gpu::{GpuDevice, GpuOps, GrowBuffer};
use crate::real::model::Weights;
use crate::real::ops::{Ptr, extent};
use crate::real::transport::{Rendezvous, Solo, Transport, local_blocks};
use crate::real::ulysses::{Block, Layout, Packed};

/// Whether libnccl can be loaded (checked without panicking).
pub fn available() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names.
    unsafe { sys::is_culib_present() }
}

fn nccl_err(what: &str, e: result::NcclError) -> Error {
    Error::Executor(format!("NCCL {what}: {:?}", e.0))
}

/// One communicator per device of a GPU set, rank `i` on the set's `i`-th device.
pub struct Communicator {
    comms: Vec<sys::ncclComm_t>,
    /// The devices' contexts, to wait for their streams before the handles go.
    contexts: Vec<Arc<CudaContext>>,
    pub ordinals: Vec<usize>,
    /// How long `ncclCommInitAll` took.
    pub created_in: Duration,
    /// An NCCL call failed on some rank: peers may wait on the device for it forever, so the
    /// handles are aborted ([`abort_all`](Self::abort_all)) rather than destroyed after a wait.
    broken: AtomicBool,
    aborted: AtomicBool,
}

// SAFETY: the handles are opaque pointers to NCCL state that is not tied to the creating
// thread. Each rank's handle is used by one thread at a time (the worker of the slot on that
// device, or the thread running `exchange`/`self_test`), which is what NCCL requires.
unsafe impl Send for Communicator {}
// SAFETY: as above; shared references only hand each rank's thread its own handle.
unsafe impl Sync for Communicator {}

impl Communicator {
    /// Creates the communicators of `ordinals` (at least two distinct devices).
    pub fn new(ordinals: &[usize]) -> Result<Communicator> {
        if !available() {
            return Err(Error::Executor(
                "NCCL (libnccl) was not found: `pip install nvidia-nccl-cu12` (or the CUDA 13 wheel) and add its lib folder to LD_LIBRARY_PATH".into(),
            ));
        }
        if ordinals.len() < 2 {
            return Err(Error::Executor(
                "an NCCL group needs at least two devices".into(),
            ));
        }
        let contexts = ordinals
            .iter()
            .map(|&o| {
                CudaContext::new(o)
                    .map_err(|e| Error::Executor(format!("device {o}: opening the context: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let list: Vec<i32> = ordinals.iter().map(|&o| o as i32).collect();
        let mut comms = vec![std::ptr::null_mut(); list.len()];
        let start = Instant::now();
        // SAFETY: `comms` has room for one handle per listed device.
        unsafe { result::comm_init_all(comms.as_mut_ptr(), list.len() as i32, list.as_ptr()) }
            .map_err(|e| {
                nccl_err(
                    &format!("creating communicators for devices {ordinals:?}"),
                    e,
                )
            })?;
        Ok(Communicator {
            comms,
            contexts,
            ordinals: ordinals.to_vec(),
            created_in: start.elapsed(),
            broken: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
        })
    }

    pub fn ranks(&self) -> usize {
        self.comms.len()
    }

    /// Rank `rank`'s handle; fails once the communicator was aborted.
    fn handle(&self, rank: usize) -> Result<sys::ncclComm_t> {
        if self.aborted.load(Ordering::SeqCst) {
            return Err(Error::Executor("the NCCL communicator was aborted".into()));
        }
        self.comms.get(rank).copied().ok_or_else(|| {
            Error::Executor(format!(
                "NCCL rank {rank} of a communicator of {}",
                self.comms.len()
            ))
        })
    }

    /// Records that an NCCL call failed: peers may be stuck on the device.
    pub fn mark_broken(&self) {
        self.broken.store(true, Ordering::SeqCst);
    }

    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    /// Aborts every rank's handle (once): NCCL kernels still waiting for a peer exit. Only for
    /// a broken communicator being torn down; the handles are unusable afterwards.
    pub fn abort_all(&self) {
        if self.aborted.swap(true, Ordering::SeqCst) {
            return;
        }
        for &c in &self.comms {
            // SAFETY: each handle came from comm_init_all and is aborted once (guarded above).
            let _ = unsafe { result::comm_abort(c) };
        }
    }

    /// Runs one exchange: rank `r` sends `packed.counts[r][d]` bf16 values from
    /// `send[r] + send_start(r, d)` to rank `d`, which receives them at
    /// `recv[d] + recv_start(r, d)`; each rank's calls go on `gpus[r]`'s stream (queued, not
    /// waited for). Buffers are device addresses on the rank's device.
    pub fn exchange(
        &self,
        gpus: &[&Gpu],
        send: &[u64],
        recv: &[u64],
        packed: &Packed,
    ) -> Result<()> {
        let n = self.ranks();
        if gpus.len() != n || send.len() != n || recv.len() != n || packed.counts.len() != n {
            return Err(Error::Executor(format!(
                "an exchange over {n} ranks got {} devices and {}/{} buffers",
                gpus.len(),
                send.len(),
                recv.len()
            )));
        }
        result::group_start().map_err(|e| nccl_err("group start", e))?;
        let mut outcome = Ok(());
        'ranks: for r in 0..n {
            let stream = gpus[r].stream.cu_stream() as sys::cudaStream_t;
            for d in 0..n {
                let out = packed.counts[r][d];
                let inc = packed.counts[d][r];
                // SAFETY: the caller's buffers hold the packed lengths on the rank's device.
                let sent = (out > 0).then(|| unsafe {
                    result::send(
                        (send[r] + 2 * packed.send_start(r, d) as u64) as *const c_void,
                        out,
                        sys::ncclDataType_t::ncclBfloat16,
                        d as i32,
                        self.comms[r],
                        stream,
                    )
                });
                // SAFETY: as above, for the receive buffer.
                let received = (inc > 0).then(|| unsafe {
                    result::recv(
                        (recv[r] + 2 * packed.recv_start(d, r) as u64) as *mut c_void,
                        inc,
                        sys::ncclDataType_t::ncclBfloat16,
                        d as i32,
                        self.comms[r],
                        stream,
                    )
                });
                for x in [sent, received].into_iter().flatten() {
                    if let Err(e) = x {
                        outcome = Err(nccl_err("send/receive", e));
                        break 'ranks;
                    }
                }
            }
        }
        // Always close the group, even after a failed call.
        let end = result::group_end().map_err(|e| nccl_err("group end", e));
        outcome.and(end.map(|_| ()))
    }
}

impl Drop for Communicator {
    fn drop(&mut self) {
        if self.is_broken() {
            // Streams may wait for a peer that never sends: waiting for them would hang.
            self.abort_all();
            return;
        }
        if self.aborted.load(Ordering::SeqCst) {
            return;
        }
        // Destroy the handles only once no queued NCCL work can still use them.
        for ctx in &self.contexts {
            let _ = ctx.synchronize();
        }
        for &c in &self.comms {
            // SAFETY: each handle came from comm_init_all and is destroyed once.
            let _ = unsafe { result::comm_destroy(c) };
        }
    }
}

/// Communicators by GPU set, created on first use (the paper warms a compact overlapping
/// subset ahead of time; here the first step on a new set pays, and the time is recorded).
#[derive(Default)]
pub struct Communicators {
    cache: BTreeMap<Vec<usize>, Communicator>,
}

impl Communicators {
    pub fn get(&mut self, ordinals: &[usize]) -> Result<&Communicator> {
        if !self.cache.contains_key(ordinals) {
            let c = Communicator::new(ordinals)?;
            self.cache.insert(ordinals.to_vec(), c);
        }
        Ok(&self.cache[ordinals])
    }

    /// (GPU set, creation time) of every communicator created so far.
    pub fn created(&self) -> Vec<(Vec<usize>, Duration)> {
        self.cache
            .values()
            .map(|c| (c.ordinals.clone(), c.created_in))
            .collect()
    }
}

/// What [`self_test`] measured.
#[derive(Clone, Debug)]
pub struct SelfTest {
    pub devices: usize,
    pub ranks: usize,
    pub create_ms: f64,
    /// The q/k/v all-to-all of a FLUX.1-dev step at 1024 px across `ranks` GPUs: what one
    /// rank sends to the others (its own share stays local).
    pub exchange_mb: f64,
    pub exchange_ms: f64,
    /// Moving a 2048 px latent from device 0 to device 1 (a degree change across GPU sets).
    pub latent_mb: f64,
    pub latent_ms: f64,
}

/// Checks NCCL on the first 2, 4 or 8 local devices: creates their communicators, runs the
/// q/k/v all-to-all of a Ulysses step of FLUX.1-dev at 1024 px (24 heads of 128, 4,096 image
/// and 512 text tokens) with every element's value encoding where it came from, verifies
/// every received element, and times it; then times a latent hand-off from device 0 to 1.
pub fn self_test(devices: usize) -> Result<SelfTest> {
    let ranks = [8, 4, 2]
        .into_iter()
        .find(|&k| k <= devices)
        .ok_or_else(|| Error::Executor("the NCCL self-test needs two devices".into()))?;
    let gpus: Vec<Gpu> = (0..ranks).map(Gpu::open).collect::<Result<_>>()?;
    let ordinals: Vec<usize> = (0..ranks).collect();
    let comm = Communicator::new(&ordinals)?;
    let lay = Layout::new(4096 + 512, 24, 128, ranks)?;
    let ld = 3 * lay.hidden();
    let blocks = lay.to_heads(3, ld);
    let packed = Packed::new(&blocks, ranks);
    // Send buffers hold, at each position, a code of (source rank, position) in bf16-exact
    // integers below 256; the receiver checks each slice against the codes it expects.
    let code =
        |rank: usize, i: usize| half::bf16::from_f32(((rank * 31 + i) % 251) as f32).to_bits();
    let mut sends = Vec::new();
    let mut recvs = Vec::new();
    for (r, g) in gpus.iter().enumerate() {
        let host: Vec<u16> = (0..packed.send_len(r)).map(|i| code(r, i)).collect();
        let s = g
            .stream
            .clone_htod(&host)
            .map_err(|e| Error::Executor(format!("device {r}: upload: {e}")))?;
        let v = g
            .stream
            .alloc_zeros::<u16>(packed.recv_len(r).max(1))
            .map_err(|e| Error::Executor(format!("device {r}: allocation: {e}")))?;
        sends.push(s);
        recvs.push(v);
    }
    let ptr = |g: &Gpu, s: &cudarc::driver::CudaSlice<u16>| {
        use cudarc::driver::DevicePtr;
        let (p, _sync) = s.device_ptr(&g.stream);
        p
    };
    let send_ptrs: Vec<u64> = gpus.iter().zip(&sends).map(|(g, s)| ptr(g, s)).collect();
    let recv_ptrs: Vec<u64> = gpus.iter().zip(&recvs).map(|(g, s)| ptr(g, s)).collect();
    let refs: Vec<&Gpu> = gpus.iter().collect();
    let sync_all = || gpus.iter().try_for_each(Gpu::synchronize);
    // Warm-up, then timed.
    comm.exchange(&refs, &send_ptrs, &recv_ptrs, &packed)?;
    sync_all()?;
    let start = Instant::now();
    comm.exchange(&refs, &send_ptrs, &recv_ptrs, &packed)?;
    sync_all()?;
    let exchange_ms = start.elapsed().as_secs_f64() * 1e3;
    for (d, (g, v)) in gpus.iter().zip(&recvs).enumerate() {
        let got = g
            .stream
            .clone_dtoh(v)
            .map_err(|e| Error::Executor(format!("device {d}: download: {e}")))?;
        for s in 0..ranks {
            let (from, to, n) = (
                packed.send_start(s, d),
                packed.recv_start(s, d),
                packed.counts[s][d],
            );
            if (0..n).any(|i| got[to + i] != code(s, from + i)) {
                return Err(Error::Executor(format!(
                    "NCCL exchange: device {d} received wrong data from device {s}"
                )));
            }
        }
    }
    // A 2048 px latent (16,384 tokens x 64 channels) from rank 0 to rank 1.
    let latent = 16_384 * 64;
    let mut one_way = vec![vec![0usize; ranks]; ranks];
    one_way[0][1] = latent;
    let hand_off = Packed {
        send_offset: Vec::new(),
        recv_offset: Vec::new(),
        counts: one_way,
    };
    comm.exchange(&refs, &send_ptrs, &recv_ptrs, &hand_off)?;
    sync_all()?;
    let start = Instant::now();
    comm.exchange(&refs, &send_ptrs, &recv_ptrs, &hand_off)?;
    sync_all()?;
    let latent_ms = start.elapsed().as_secs_f64() * 1e3;
    let sent = crate::real::ulysses::sent_by(&blocks, 0);
    Ok(SelfTest {
        devices,
        ranks,
        create_ms: comm.created_in.as_secs_f64() * 1e3,
        exchange_mb: 2.0 * sent as f64 / 1e6,
        exchange_ms,
        latent_mb: 2.0 * latent as f64 / 1e6,
        latent_ms,
    })
}

/// How one all-to-all goes over NCCL: the blocks that cross ranks (a rank's own blocks are
/// local copies) and where they sit in the packed send and receive buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangePlan {
    pub ranks: usize,
    pub remote: Vec<Block>,
    pub packed: Packed,
}

/// What rank `me` moves with one peer: its NCCL rank-pair slices, in bf16 values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerSlices {
    pub peer: usize,
    pub send_start: usize,
    pub send_count: usize,
    pub recv_start: usize,
    pub recv_count: usize,
}

impl ExchangePlan {
    /// Fails if a block names a rank outside the group.
    pub fn new(blocks: &[Block], ranks: usize) -> Result<ExchangePlan> {
        if let Some(b) = blocks
            .iter()
            .find(|b| b.src_rank >= ranks || b.dst_rank >= ranks)
        {
            return Err(Error::Executor(format!(
                "a block from rank {} to rank {} in a group of {ranks}",
                b.src_rank, b.dst_rank
            )));
        }
        let remote: Vec<Block> = blocks
            .iter()
            .filter(|b| b.src_rank != b.dst_rank)
            .copied()
            .collect();
        let packed = Packed::new(&remote, ranks);
        Ok(ExchangePlan {
            ranks,
            remote,
            packed,
        })
    }

    /// The blocks `me` packs, with their offsets in its send buffer.
    pub fn sends(&self, me: usize) -> impl Iterator<Item = (&Block, usize)> {
        self.remote
            .iter()
            .zip(&self.packed.send_offset)
            .filter(move |(b, _)| b.src_rank == me)
            .map(|(b, &o)| (b, o))
    }

    /// The blocks `me` unpacks, with their offsets in its receive buffer.
    pub fn receives(&self, me: usize) -> impl Iterator<Item = (&Block, usize)> {
        self.remote
            .iter()
            .zip(&self.packed.recv_offset)
            .filter(move |(b, _)| b.dst_rank == me)
            .map(|(b, &o)| (b, o))
    }

    /// `me`'s send and receive slices with each other rank (empty pairs left out).
    pub fn peers(&self, me: usize) -> Vec<PeerSlices> {
        let p = &self.packed;
        (0..self.ranks)
            .filter(|&d| d != me)
            .map(|d| PeerSlices {
                peer: d,
                send_start: p.send_start(me, d),
                send_count: p.counts[me][d],
                recv_start: p.recv_start(d, me),
                recv_count: p.counts[d][me],
            })
            .filter(|s| s.send_count > 0 || s.recv_count > 0)
            .collect()
    }
}

/// Grow-only packing buffers of one rank (plain allocations NCCL may map for peers).
#[derive(Default)]
pub struct PackScratch {
    send: GrowBuffer,
    recv: GrowBuffer,
}

/// Rank `rank` of a group of GPUs of the node, exchanging over the node's communicator.
pub struct NcclTransport<'a> {
    pub rank: usize,
    /// The group's slots (= devices = NCCL ranks of the node's communicator), in rank order.
    pub members: &'a [usize],
    pub group: &'a Rendezvous,
    pub comm: &'a Communicator,
    pub scratch: &'a mut PackScratch,
}

impl NcclTransport<'_> {
    fn exchange_inner(&mut self, ops: &GpuOps, blocks: &[Block], src: Ptr, dst: Ptr) -> Result<()> {
        let (me, k) = (self.rank, self.members.len());
        ops.bind()?;
        let plan = ExchangePlan::new(blocks, k)?;
        let comm = self.comm.handle(self.members[me])?;
        let send = self
            .scratch
            .send
            .ensure(ops, 2 * plan.packed.send_len(me))?;
        let recv = self
            .scratch
            .recv
            .ensure(ops, 2 * plan.packed.recv_len(me))?;
        // Everything that can fail before NCCL: resolve the unpack targets, pack, copy locally.
        let unpack: Vec<(u64, &Block, usize)> = plan
            .receives(me)
            .map(|(b, at)| {
                ops.addr_mut(dst.at(b.dst_offset), extent(b.rows, b.cols, b.dst_ld))
                    .map(|d| (d, b, at))
            })
            .collect::<Result<_>>()?;
        for (b, at) in plan.sends(me) {
            let s = ops.addr(src.at(b.src_offset), extent(b.rows, b.cols, b.src_ld))?;
            // SAFETY: the source was checked against a live buffer of this arena; the send
            // buffer holds send_len(me) values, and this block's slice lies in it.
            unsafe {
                ops.copy_2d_raw(
                    (send + 2 * at as u64, b.cols),
                    (s, b.src_ld),
                    b.rows,
                    b.cols,
                )?
            };
        }
        local_blocks(ops, me, blocks, src, dst)?;
        // Every rank got here: none of them will fail to issue its half of the pairs below.
        self.group.meet(me, Arc::new(()))?;
        if let Err(e) = self.pairs(ops, comm, &plan, send, recv) {
            self.comm.mark_broken();
            return Err(e);
        }
        for (d, b, at) in unpack {
            // SAFETY: the destination was checked above; the receive buffer holds
            // recv_len(me) values, and this block's slice lies in it.
            unsafe {
                ops.copy_2d_raw(
                    (d, b.dst_ld),
                    (recv + 2 * at as u64, b.cols),
                    b.rows,
                    b.cols,
                )?
            };
        }
        Ok(())
    }

    /// One NCCL group: this rank's sends and receives with each peer, on its stream.
    fn pairs(
        &self,
        ops: &GpuOps,
        comm: sys::ncclComm_t,
        plan: &ExchangePlan,
        send: u64,
        recv: u64,
    ) -> Result<()> {
        let me = self.rank;
        let stream = ops.stream().cu_stream() as sys::cudaStream_t;
        let bf16 = sys::ncclDataType_t::ncclBfloat16;
        result::group_start().map_err(|e| nccl_err("group start", e))?;
        let mut outcome = Ok(());
        for s in plan.peers(me) {
            let peer = self.members[s.peer] as i32;
            // SAFETY: the packed buffers hold send_len(me) / recv_len(me) bf16 values on this
            // device, and these slices lie in them.
            let sent = (s.send_count > 0).then(|| unsafe {
                result::send(
                    (send + 2 * s.send_start as u64) as *const c_void,
                    s.send_count,
                    bf16,
                    peer,
                    comm,
                    stream,
                )
            });
            // SAFETY: as above, for the receive buffer.
            let received = (s.recv_count > 0).then(|| unsafe {
                result::recv(
                    (recv + 2 * s.recv_start as u64) as *mut c_void,
                    s.recv_count,
                    bf16,
                    peer,
                    comm,
                    stream,
                )
            });
            if let Some(Err(e)) = sent.into_iter().chain(received).find(|r| r.is_err()) {
                outcome = Err(nccl_err(&format!("send/receive with device {peer}"), e));
                break;
            }
        }
        // Always close the group, even after a failed call.
        let end = result::group_end().map_err(|e| nccl_err("group end", e));
        outcome.and(end.map(|_| ()))
    }
}

impl Transport<GpuOps> for NcclTransport<'_> {
    fn rank(&self) -> usize {
        self.rank
    }

    fn ranks(&self) -> usize {
        self.members.len()
    }

    fn exchange(&mut self, ops: &GpuOps, blocks: &[Block], src: Ptr, dst: Ptr) -> Result<()> {
        let r = self.exchange_inner(ops, blocks, src, dst);
        if let Err(e) = &r {
            self.group.abort(&format!(
                "rank {} (device {}): {e}",
                self.rank, self.members[self.rank]
            ));
        }
        r
    }

    fn abort(&self, why: &str) {
        self.group.abort(why);
    }
}

/// One GPU of the node: its stream, weights and workspaces, and the node's communicator.
struct NcclSlot {
    runner: Runner<GpuOps>,
    device: usize,
    comm: Arc<Communicator>,
    scratch: PackScratch,
}

impl Slot for NcclSlot {
    fn run(&mut self, job: &RankJob) -> Result<RankOutput> {
        self.runner.ops.bind()?;
        if job.ranks() == 1 {
            return self.runner.run(job, &mut Solo);
        }
        if job.members.get(job.rank) != Some(&self.device) {
            let why = format!(
                "rank {} of {:?} sent to the slot of device {}",
                job.rank, job.members, self.device
            );
            job.group.abort(&why);
            return Err(Error::Executor(why));
        }
        let mut t = NcclTransport {
            rank: job.rank,
            members: &job.members,
            group: &job.group,
            comm: &self.comm,
            scratch: &mut self.scratch,
        };
        self.runner.run(job, &mut t)
    }
}

impl Drop for NcclSlot {
    fn drop(&mut self) {
        if self.comm.is_broken() {
            // This device's stream may wait forever for a peer's NCCL call: abort the handles
            // so that it drains, and leak the packing buffers rather than wait for it.
            self.comm.abort_all();
            std::mem::forget(std::mem::take(&mut self.scratch));
        }
    }
}

/// One slot per local GPU (`devices` of them), ranks exchanging over NCCL; the backend's
/// description. The node's communicator is created here, once; each slot opens its device,
/// compiles the kernels and builds the weights on its own worker thread.
pub fn nccl_slots(
    cfg: &DitConfig,
    devices: usize,
    seed: u64,
) -> Result<(Vec<SlotFactory>, String)> {
    let probe = crate::real::device::probe()?;
    if devices < 2 || devices > probe.devices {
        return Err(Error::Executor(format!(
            "an NCCL node of {devices} GPUs on a machine with {}: it needs 2 to {}",
            probe.devices, probe.devices
        )));
    }
    let ordinals: Vec<usize> = (0..devices).collect();
    let comm = Arc::new(Communicator::new(&ordinals)?);
    let description = format!(
        "CUDA: {devices} GPU(s) ({}) over NCCL (communicator for the node created in {:.1} ms), model {}",
        probe.name,
        comm.created_in.as_secs_f64() * 1e3,
        cfg.name
    );
    let factories = (0..devices)
        .map(|device| {
            let (comm, cfg) = (comm.clone(), cfg.clone());
            Box::new(move || {
                let dev = GpuDevice::open(device)?;
                let mut ops = GpuOps::new(&dev)?;
                let weights = Arc::new(Weights::build(&mut ops, cfg, seed)?);
                Ok(Box::new(NcclSlot {
                    runner: Runner::new(ops, weights),
                    device,
                    comm,
                    scratch: PackScratch::default(),
                }) as Box<dyn Slot>)
            }) as SlotFactory
        })
        .collect();
    Ok((factories, description))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::ulysses;

    /// Runs a plan on host buffers as the ranks would: pack, local copies, the NCCL slices
    /// (rank `me`'s send slice to `d` lands at `d`'s receive slice from `me`), unpack.
    #[allow(clippy::needless_range_loop)]
    fn emulate(blocks: &[Block], ranks: usize, src: &[Vec<u32>], dst_len: usize) -> Vec<Vec<u32>> {
        let plan = ExchangePlan::new(blocks, ranks).unwrap();
        let p = &plan.packed;
        let mut send: Vec<Vec<u32>> = (0..ranks).map(|r| vec![u32::MAX; p.send_len(r)]).collect();
        let mut dst = vec![vec![u32::MAX; dst_len]; ranks];
        for me in 0..ranks {
            for (b, at) in plan.sends(me) {
                for r in 0..b.rows {
                    let s = b.src_offset + r * b.src_ld;
                    send[me][at + r * b.cols..at + (r + 1) * b.cols]
                        .copy_from_slice(&src[me][s..s + b.cols]);
                }
            }
            let local: Vec<Block> = blocks
                .iter()
                .filter(|b| b.src_rank == me && b.dst_rank == me)
                .copied()
                .collect();
            ulysses::apply(&local, src, &mut dst);
        }
        let mut recv: Vec<Vec<u32>> = (0..ranks).map(|r| vec![u32::MAX; p.recv_len(r)]).collect();
        for me in 0..ranks {
            for s in plan.peers(me) {
                // Both sides agree on the size of each direction.
                let theirs = plan
                    .peers(s.peer)
                    .into_iter()
                    .find(|t| t.peer == me)
                    .unwrap();
                assert_eq!(s.send_count, theirs.recv_count);
                assert_eq!(s.recv_count, theirs.send_count);
                let from = &send[me][s.send_start..s.send_start + s.send_count];
                recv[s.peer][theirs.recv_start..theirs.recv_start + s.send_count]
                    .copy_from_slice(from);
            }
        }
        for me in 0..ranks {
            for (b, at) in plan.receives(me) {
                for r in 0..b.rows {
                    let d = b.dst_offset + r * b.dst_ld;
                    dst[me][d..d + b.cols]
                        .copy_from_slice(&recv[me][at + r * b.cols..at + (r + 1) * b.cols]);
                }
            }
            assert!(
                recv[me].iter().all(|&v| v != u32::MAX),
                "every received value is used"
            );
        }
        dst
    }

    #[test]
    fn the_nccl_plan_of_both_all_to_alls_equals_the_direct_copies() {
        for ranks in [2, 4, 8] {
            // 21 tokens of 8 heads of 2: on 8 ranks, shards of 3 and an empty last one.
            let l = Layout::new(21, 8, 2, ranks).unwrap();
            let ld = 3 * l.hidden() + 5;
            for (blocks, src_len, dst_len) in [
                (l.to_heads(3, ld), l.shard() * ld, l.tokens * 3 * l.width()),
                (
                    l.to_tokens(l.hidden()),
                    l.tokens * l.width(),
                    l.shard() * l.hidden(),
                ),
            ] {
                let src: Vec<Vec<u32>> = (0..ranks)
                    .map(|r| (0..src_len).map(|i| (r * 1_000_000 + i) as u32).collect())
                    .collect();
                let mut want = vec![vec![u32::MAX; dst_len]; ranks];
                ulysses::apply(&blocks, &src, &mut want);
                assert_eq!(emulate(&blocks, ranks, &src, dst_len), want, "k = {ranks}");
            }
        }
    }

    #[test]
    fn plans_leave_local_blocks_out_and_refuse_foreign_ranks() {
        let l = Layout::new(32, 8, 2, 4).unwrap();
        let blocks = l.to_heads(3, 48);
        let plan = ExchangePlan::new(&blocks, 4).unwrap();
        assert!(plan.remote.iter().all(|b| b.src_rank != b.dst_rank));
        // 8 rows x 3 parts x 4 columns to each of the 3 others, nothing to itself.
        assert_eq!(
            plan.packed.send_len(0),
            crate::real::ulysses::sent_by(&blocks, 0)
        );
        assert_eq!(plan.packed.send_len(0), 3 * 8 * 3 * 4);
        let peers = plan.peers(0);
        assert_eq!(peers.len(), 3);
        assert_eq!(
            peers
                .iter()
                .map(|p| (p.peer, p.send_start, p.send_count))
                .collect::<Vec<_>>(),
            vec![(1, 0, 96), (2, 96, 96), (3, 192, 96)]
        );
        assert_eq!(
            peers[0].recv_start, 0,
            "rank 0 receives rank 1's slice first"
        );
        assert!(
            ExchangePlan::new(&blocks, 2).is_err(),
            "blocks of 4 ranks in a group of 2"
        );
    }
}
