//! [`RealExecutor`]: the engine's executor on real hardware, with a wall clock.
//!
//! The cluster is one node of `D` *slots*: CPU rank threads ([`cpu_slots`]), lanes of one GPU
//! ([`lanes`](super::lanes)), or GPUs ([`nccl`](super::nccl)). Each slot has a worker thread
//! that owns its [`Slot`] (device state, workspaces). A dispatch of degree `k` on GPU set `S`
//! runs as `k` rank jobs, rank `i` on the `i`-th slot of `S`, meeting at one [`Rendezvous`]
//! for the Ulysses exchanges; the work completes when every rank has reported, at the time the
//! last one did. Two dispatches on disjoint sets run concurrently.
//!
//! A request's latent lives on the host between works: each rank returns the latent rows of
//! its image tokens, the executor reassembles them in rank order, and the request's next work,
//! on any set and at any degree, starts from that latent. So a request that changes degree
//! (1 -> 4 -> 2) denoises exactly as one that does not, up to floating-point rounding. Text
//! embeddings and conditioning vectors are regenerated from the request's seed.
//!
//! Failures end the run cleanly: a failed rank aborts its group (its peers' exchanges fail
//! instead of waiting), the executor aborts every other group in flight and reports the error,
//! and the engine returns the records so far. A rank that waits longer than the timeout for a
//! peer fails the same way, so no group hangs on a missing rank. (A work itself may take as
//! long as it takes: a 2048 px image on one GPU takes minutes.)
//!
//! Step reduction (`docs/caching.md`): a request that hit the approximate cache starts its
//! first work from the stored latent of its prompt key instead of from its own noise, and runs
//! its `steps` (already `N - k`) from there. The store holds one latent per (prompt key,
//! resolution): the latent drawn from the key's seed ([`prompt_seed`]), the same for every
//! request of that key whatever ran before, so the images do not depend on the schedule. (A
//! production cache would store the latent a full run of a similar prompt had at step k; the
//! tiny model's numbers carry no image quality, so what matters here is the starting point and
//! the number of model calls.) A step skipped at run time by every request of a work makes no
//! model call: the latent carries over unchanged. [`model_calls`](RealExecutor::model_calls)
//! counts the calls made.
//!
//! [`reset`](Executor::reset) prepares every workspace the run can need (each resolution,
//! batch size and group size, on every slot) and runs one warm-up step per shape before the
//! clock starts, so first-use allocation is never charged to a request.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine::{Executor, Launch, Work, WorkId};
use crate::error::{Error, Result};
use crate::real::config::DitConfig;
use crate::real::cpu::CpuOps;
use crate::real::model::{self, Weights, Workspace};
use crate::real::ops::Ops;
use crate::real::transport::{HostTransport, Rendezvous, Solo, Transport};
use crate::real::ulysses::Block;
use crate::time::Nanos;
use crate::workload::{Resolution, Savings, Workload};

/// One batch item of a rank job: the request's input seed and, unless the work starts the
/// request, its whole latent `[Ni, C]`.
#[derive(Clone, Debug)]
pub struct Item {
    pub seed: u64,
    pub latent: Option<Arc<Vec<f32>>>,
}

/// What one slot runs for one work: its rank of the group.
#[derive(Clone)]
pub struct RankJob {
    pub work: WorkId,
    pub res: Resolution,
    pub items: Vec<Item>,
    pub steps: u32,
    pub total_steps: u32,
    /// This slot's rank in the group, and the group's slots in rank order.
    pub rank: usize,
    pub members: Arc<Vec<usize>>,
    /// Where the group's ranks meet (host-side exchanges, aborts).
    pub group: Arc<Rendezvous>,
    /// Per step of this work, whether it is skipped (no model call); empty: none is.
    pub skipped: Arc<Vec<bool>>,
    /// Model calls made, counted by rank 0 of each group (one per computed step).
    pub calls: Arc<AtomicU64>,
    /// The longest time any rank of the group spent in the work's steps (nanoseconds): the
    /// work's service time, without inputs, latent upload and download, and hand-offs.
    pub steps_ns: Arc<AtomicU64>,
    /// Time rank 0 spent in the group's exchanges (nanoseconds; CPU ranks only).
    pub exchange_ns: Arc<AtomicU64>,
}

impl RankJob {
    pub fn ranks(&self) -> usize {
        self.members.len()
    }

    /// The flow-matching step size: the request's steps cover `t` from 1 to 0.
    pub fn dt(&self) -> f32 {
        1.0 / self.total_steps.max(1) as f32
    }
}

/// Per batch item, the latent rows (`Workspace::image_rows(rank)` x C) this rank owns.
pub type RankOutput = Vec<Vec<f32>>;

/// One slot of the node: a CPU rank thread, a lane of a GPU, or a GPU. It lives on its own
/// worker thread.
pub trait Slot {
    /// Runs this slot's rank of `job`; returns once its outputs are on the host.
    fn run(&mut self, job: &RankJob) -> Result<RankOutput>;
}

/// Builds a slot on its worker thread (device state is created where it is used).
pub type SlotFactory = Box<dyn FnOnce() -> Result<Box<dyn Slot>> + Send>;

/// Workspaces of one slot, by (resolution, batch, group size), and the rank loop every backend
/// shares: inputs, latent, steps, outputs.
pub struct Runner<O: Ops> {
    pub ops: O,
    pub weights: Arc<Weights>,
    spaces: HashMap<(Resolution, usize, usize), Workspace>,
}

impl<O: Ops> Runner<O> {
    pub fn new(ops: O, weights: Arc<Weights>) -> Runner<O> {
        Runner {
            ops,
            weights,
            spaces: HashMap::new(),
        }
    }

    /// Runs `job` with transport `t` (this slot's rank of the group).
    pub fn run<T: Transport<O> + ?Sized>(
        &mut self,
        job: &RankJob,
        t: &mut T,
    ) -> Result<RankOutput> {
        let key = (job.res, job.items.len(), job.ranks());
        if !self.spaces.contains_key(&key) {
            let ws = Workspace::new(
                &mut self.ops,
                &self.weights.cfg,
                job.res,
                job.items.len(),
                job.ranks(),
            )?;
            self.spaces.insert(key, ws);
        }
        let ws = &self.spaces[&key];
        let (ops, cfg) = (&self.ops, &self.weights.cfg);
        let result = (|| {
            for (i, item) in job.items.iter().enumerate() {
                model::load_inputs(ops, cfg, ws, i, item.seed)?;
                if let Some(l) = &item.latent {
                    model::set_latent(ops, cfg, ws, i, l)?;
                }
            }
            let steps_from = Instant::now();
            for step in 0..job.steps as usize {
                if job.skipped.get(step).copied().unwrap_or(false) {
                    continue; // Skipped at run time: the latent carries over, no model call.
                }
                // A group aborted elsewhere (another rank failed, the run is ending) stops at
                // the next step boundary, even with no exchange to notice it (one rank).
                if let Some(why) = job.group.aborted() {
                    return Err(Error::Executor(format!("stopped: {why}")));
                }
                model::step(ops, &self.weights, ws, t, job.dt())?;
                if job.rank == 0 {
                    job.calls.fetch_add(1, Ordering::Relaxed);
                }
                // On a GPU the step was only queued: wait for it, so that an abort is seen
                // within one step rather than after the whole work.
                ops.synchronize()?;
            }
            let spent = u64::try_from(steps_from.elapsed().as_nanos()).unwrap_or(u64::MAX);
            job.steps_ns.fetch_max(spent, Ordering::Relaxed);
            (0..job.items.len())
                .map(|i| model::latent_rows(ops, cfg, ws, i, job.rank))
                .collect()
        })();
        if let Err(e) = &result {
            t.abort(&format!("rank {} of work {}: {e}", job.rank, job.work.0));
            // Let queued device work finish before buffers can be reused or freed.
            let _ = self.ops.synchronize();
        }
        result
    }
}

/// A deliberate failure, for testing that a failing rank ends the run cleanly: rank `rank` of
/// the work numbered `work` fails at its first exchange (in the middle of its first step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub work: u32,
    pub rank: usize,
}

/// A CPU rank thread.
struct CpuSlot {
    runner: Runner<CpuOps>,
    fault: Option<Fault>,
}

/// A transport that fails its first exchange (see [`Fault`]), after aborting the group.
struct Failing<'a>(&'a mut HostTransport);

impl Transport<CpuOps> for Failing<'_> {
    fn rank(&self) -> usize {
        Transport::<CpuOps>::rank(self.0)
    }
    fn ranks(&self) -> usize {
        Transport::<CpuOps>::ranks(self.0)
    }
    fn exchange(
        &mut self,
        _: &CpuOps,
        _: &[Block],
        _: crate::real::ops::Ptr,
        _: crate::real::ops::Ptr,
    ) -> Result<()> {
        Err(Error::Executor(
            "injected fault in the middle of a step".into(),
        ))
    }
    fn abort(&self, why: &str) {
        Transport::<CpuOps>::abort(self.0, why)
    }
}

/// A transport that adds the time its exchanges take (waiting for peers included) to rank
/// 0's count in [`RankJob::exchange_ns`].
struct Timed<'a> {
    inner: &'a mut HostTransport,
    spent: &'a AtomicU64,
}

impl Transport<CpuOps> for Timed<'_> {
    fn rank(&self) -> usize {
        Transport::<CpuOps>::rank(self.inner)
    }
    fn ranks(&self) -> usize {
        Transport::<CpuOps>::ranks(self.inner)
    }
    fn exchange(
        &mut self,
        ops: &CpuOps,
        blocks: &[Block],
        src: crate::real::ops::Ptr,
        dst: crate::real::ops::Ptr,
    ) -> Result<()> {
        let t0 = Instant::now();
        let r = self.inner.exchange(ops, blocks, src, dst);
        let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.spent.fetch_add(ns, Ordering::Relaxed);
        r
    }
    fn abort(&self, why: &str) {
        Transport::<CpuOps>::abort(self.inner, why)
    }
}

impl Slot for CpuSlot {
    fn run(&mut self, job: &RankJob) -> Result<RankOutput> {
        if job.ranks() == 1 {
            return self.runner.run(job, &mut Solo);
        }
        let mut t = HostTransport {
            rank: job.rank,
            group: job.group.clone(),
        };
        if self.fault
            == Some(Fault {
                work: job.work.0,
                rank: job.rank,
            })
        {
            return self.runner.run(job, &mut Failing(&mut t));
        }
        if job.rank == 0 {
            let spent = job.exchange_ns.clone();
            return self.runner.run(
                job,
                &mut Timed {
                    inner: &mut t,
                    spent: &spent,
                },
            );
        }
        self.runner.run(job, &mut t)
    }
}

/// The cores this process may run on (Linux: its affinity mask; elsewhere: none known).
pub fn allowed_cores() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `set` is a plain bitmask, fully written by sched_getaffinity before it is read.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
                return (0..libc::CPU_SETSIZE as usize)
                    .filter(|&c| libc::CPU_ISSET(c, &set))
                    .collect();
            }
        }
    }
    Vec::new()
}

/// Pins the calling thread to `core`; false where the OS refuses or cannot.
pub fn pin_to(core: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `set` is a plain bitmask initialised by CPU_ZERO; 0 names the calling thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_ZERO(&mut set);
            libc::CPU_SET(core, &mut set);
            return libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0;
        }
    }
    #[allow(unreachable_code)]
    {
        let _ = core;
        false
    }
}

/// `slots` CPU rank threads sharing one copy of `cfg`'s weights (seeded `seed`), exchanging
/// through host memory.
pub fn cpu_slots(
    cfg: &DitConfig,
    slots: usize,
    seed: u64,
    fault: Option<Fault>,
) -> Result<Vec<SlotFactory>> {
    let mut ops = CpuOps::new();
    let weights = Arc::new(Weights::build(&mut ops, cfg.clone(), seed)?);
    let shared = ops.freeze();
    // Pinned one per core where the cores allow it (each rank then keeps its core's caches
    // and is not migrated mid-step); more threads than cores are left to the OS.
    let cores = allowed_cores();
    let pin = slots <= cores.len();
    Ok((0..slots)
        .map(|i| {
            let (weights, shared) = (weights.clone(), shared.clone());
            let core = pin.then(|| cores[i]);
            Box::new(move || {
                if let Some(c) = core {
                    pin_to(c);
                }
                Ok(Box::new(CpuSlot {
                    runner: Runner::new(CpuOps::sharing(shared), weights),
                    fault,
                }) as Box<dyn Slot>)
            }) as SlotFactory
        })
        .collect())
}

/// How the executor was built, for outputs: `device` is what runs (e.g. "CPU", "NVIDIA H200"),
/// `emulated` says whether the slots share one device (timings then are not those of `D`
/// devices).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeBackend {
    pub description: String,
    pub emulated: bool,
}

struct RankDone {
    work: WorkId,
    rank: usize,
    at: Instant,
    result: Result<RankOutput>,
}

struct InFlight {
    labels: Vec<u64>,
    ranks_left: usize,
    parts: Vec<Option<RankOutput>>,
    last: Option<Instant>,
    group: Arc<Rendezvous>,
    finishes: bool,
    steps_ns: Arc<AtomicU64>,
    exchange_ns: Arc<AtomicU64>,
}

/// Runs dispatched work on the slots of one node, under the wall clock.
pub struct RealExecutor {
    pub cfg: DitConfig,
    pub backend: NodeBackend,
    start: Instant,
    jobs: Vec<Sender<RankJob>>,
    done: Receiver<RankDone>,
    workers: Vec<JoinHandle<()>>,
    in_flight: HashMap<WorkId, InFlight>,
    latents: HashMap<u64, Arc<Vec<f32>>>,
    /// Latents of finished requests, when asked for ([`keep_final_latents`](Self::keep_final_latents)).
    finals: Option<HashMap<u64, Arc<Vec<f32>>>>,
    timeout: Duration,
    /// Internal work ids (warm-up, timing) count down from here.
    next_internal: u32,
    /// A failure seen while completed works were being reported: returned by the next wait,
    /// so that those works are recorded first.
    failed: Option<Error>,
    /// Request labels by request index, for seeds and latents (set by `reset`).
    labels: Vec<u64>,
    /// What caching and skipping did to each request, by request index (empty: nothing).
    savings: Vec<Savings>,
    /// The stored latent of each prompt key, per resolution.
    prompt_latents: HashMap<(u64, Resolution), Arc<Vec<f32>>>,
    /// Model calls of the current run.
    calls: Arc<AtomicU64>,
    /// Per finished work of the current run, the time its steps took (see [`RankJob::steps_ns`]).
    step_times: HashMap<WorkId, Nanos>,
    /// Per finished work of the current run, rank 0's time in exchanges (CPU ranks).
    exchange_times: HashMap<WorkId, Nanos>,
}

/// How long a rank waits for a peer at an exchange before failing its group.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

impl RealExecutor {
    /// Starts one worker per slot and waits until every slot is built.
    pub fn new(
        cfg: DitConfig,
        backend: NodeBackend,
        slots: Vec<SlotFactory>,
    ) -> Result<RealExecutor> {
        if slots.is_empty() {
            return Err(Error::Executor("a node needs at least one slot".into()));
        }
        let (done_tx, done) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel::<Result<()>>();
        let mut jobs = Vec::new();
        let mut workers = Vec::new();
        let n = slots.len();
        for (index, factory) in slots.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel();
            jobs.push(tx);
            let (done_tx, ready_tx) = (done_tx.clone(), ready_tx.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("slot-{index}"))
                    .spawn(move || worker(index, factory, rx, done_tx, ready_tx))
                    .map_err(|e| Error::Executor(format!("starting a worker thread: {e}")))?,
            );
        }
        let mut exec = RealExecutor {
            cfg,
            backend,
            start: Instant::now(),
            jobs,
            done,
            workers,
            in_flight: HashMap::new(),
            latents: HashMap::new(),
            finals: None,
            timeout: DEFAULT_TIMEOUT,
            next_internal: u32::MAX,
            failed: None,
            labels: Vec::new(),
            savings: Vec::new(),
            prompt_latents: HashMap::new(),
            calls: Arc::new(AtomicU64::new(0)),
            step_times: HashMap::new(),
            exchange_times: HashMap::new(),
        };
        for _ in 0..n {
            match ready.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    exec.jobs.clear();
                    return Err(Error::Executor(
                        "a slot's worker exited while starting".into(),
                    ));
                }
            }
        }
        Ok(exec)
    }

    /// A node of `slots` CPU rank threads running `cfg` (see [`cpu_slots`]).
    pub fn cpu(cfg: DitConfig, slots: usize, fault: Option<Fault>) -> Result<RealExecutor> {
        let factories = cpu_slots(&cfg, slots, 1, fault)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pinned = slots <= allowed_cores().len();
        let backend = NodeBackend {
            description: format!(
                "CPU: {slots} rank thread(s) on {cores} core(s){}, model {} ({} px per token)",
                if pinned {
                    ", one per core (pinned)"
                } else {
                    ""
                },
                cfg.name,
                cfg.patch
            ),
            emulated: slots > cores,
        };
        RealExecutor::new(cfg, backend, factories)
    }

    /// Slots of the node.
    pub fn slots(&self) -> usize {
        self.jobs.len()
    }

    /// A rank waits at most `timeout` for a peer at an exchange (default [`DEFAULT_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Keeps the final latent of every finished request (see [`final_latents`](Self::final_latents)).
    pub fn keep_final_latents(&mut self) {
        self.finals.get_or_insert_with(HashMap::new);
    }

    /// The final latent of each finished request, by request id (empty unless kept).
    pub fn final_latents(&self) -> Vec<(u64, Arc<Vec<f32>>)> {
        let mut v: Vec<_> = self
            .finals
            .iter()
            .flatten()
            .map(|(k, l)| (*k, l.clone()))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// Model calls (computed steps, one per group step) since the last
    /// [`reset`](Executor::reset): skipped steps and steps a cache hit saved make none.
    pub fn model_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The stored latent of prompt `key` at `res` (see the module docs).
    fn prompt_latent(&mut self, key: u64, res: Resolution) -> Arc<Vec<f32>> {
        let cfg = &self.cfg;
        self.prompt_latents
            .entry((key, res))
            .or_insert_with(|| Arc::new(prompt_latent(cfg, res, key)))
            .clone()
    }

    /// Group sizes a dispatch can have here: powers of two up to the slots that divide the
    /// model's heads.
    pub fn degrees(&self) -> Vec<usize> {
        (0..7)
            .map(|i| 1usize << i)
            .filter(|&k| k <= self.slots() && self.cfg.heads.is_multiple_of(k))
            .collect()
    }

    /// Disjoint groups of `k` slots that, together, use every slot: aligned groups, and the
    /// last `k` slots if `k` does not divide the node. (The last one may overlap the others:
    /// it runs after them.)
    pub fn covering_groups(&self, k: usize) -> Vec<Vec<usize>> {
        let n = self.slots();
        let mut groups = self.aligned_groups(k);
        if !n.is_multiple_of(k) && n >= k {
            groups.push((n - k..n).collect());
        }
        groups
    }

    /// The disjoint groups of `k` consecutive slots, from slot 0 (a node loaded with groups
    /// of `k`).
    pub fn aligned_groups(&self, k: usize) -> Vec<Vec<usize>> {
        (0..self.slots() / k)
            .map(|g| (g * k..(g + 1) * k).collect())
            .collect()
    }

    fn since_start(&self, t: Instant) -> Nanos {
        Nanos(t.saturating_duration_since(self.start).as_nanos() as u64)
    }

    /// Sends each member slot its rank of `job`. Every member is checked before anything is
    /// sent, and a failure part-way aborts the group, so no rank is left waiting for a peer.
    fn send(&mut self, job: RankJob, members: &[usize]) -> Result<()> {
        if let Some(&slot) = members.iter().find(|&&m| m >= self.jobs.len()) {
            return Err(Error::Executor(format!(
                "slot {slot} is outside this node of {} slots",
                self.jobs.len()
            )));
        }
        for (rank, &slot) in members.iter().enumerate() {
            let mut j = job.clone();
            j.rank = rank;
            if self.jobs[slot].send(j).is_err() {
                job.group.abort("a slot's worker has stopped");
                return Err(Error::Executor(format!(
                    "the worker of slot {slot} has stopped"
                )));
            }
        }
        Ok(())
    }

    /// Runs `steps` steps of a fresh request at `res` on slots `members` outside any run
    /// (warm-up, profiling) and returns the wall time until every rank reported.
    pub fn run_now(&mut self, res: Resolution, members: &[usize], steps: u32) -> Result<Duration> {
        Ok(self.run_now_on(res, &[members.to_vec()], steps)?[0])
    }

    /// [`run_now`](Self::run_now) on several disjoint groups at once (a loaded node): each
    /// group's wall time.
    pub fn run_now_on(
        &mut self,
        res: Resolution,
        groups: &[Vec<usize>],
        steps: u32,
    ) -> Result<Vec<Duration>> {
        Ok(self
            .run_batch_on(res, groups, steps, 1)?
            .into_iter()
            .map(|t| t.0)
            .collect())
    }

    /// [`run_now_on`](Self::run_now_on), with each group's time in its steps beside its whole
    /// time (see [`RankJob::steps_ns`]), and how long after the work ended the executor's
    /// thread took it in (what a run's decision waits after a completion): `(whole, steps,
    /// noticed)` per group.
    pub fn run_timed_on(
        &mut self,
        res: Resolution,
        groups: &[Vec<usize>],
        steps: u32,
    ) -> Result<Vec<(Duration, Duration, Duration)>> {
        let first = self.next_internal;
        let times = self.run_batch_on(res, groups, steps, 1)?;
        Ok(times
            .into_iter()
            .enumerate()
            .map(|(i, (t, noticed))| {
                let id = WorkId(first - i as u32);
                let spent = self.step_times.get(&id).map_or(0, |n| n.0);
                (t, Duration::from_nanos(spent), noticed)
            })
            .collect())
    }

    /// [`run_now_on`](Self::run_now_on) with `batch` fresh requests per group.
    /// Per group: the work's time, and how long after its end this thread took it in.
    fn run_batch_on(
        &mut self,
        res: Resolution,
        groups: &[Vec<usize>],
        steps: u32,
        batch: usize,
    ) -> Result<Vec<(Duration, Duration)>> {
        if !self.in_flight.is_empty() {
            return Err(Error::Executor(
                "cannot time work while a run is in flight".into(),
            ));
        }
        let t0 = Instant::now();
        let mut ids = Vec::with_capacity(groups.len());
        for members in groups {
            let work = WorkId(self.next_internal);
            self.next_internal -= 1;
            let items = (0..batch.max(1))
                .map(|i| Item {
                    seed: 0x7E57 + i as u64,
                    latent: None,
                })
                .collect();
            self.launch_job(
                work,
                res,
                items,
                steps,
                steps.max(1),
                members,
                Vec::new(),
                true,
                Arc::new(Vec::new()),
            )?;
            ids.push(work);
        }
        let mut times = vec![None; groups.len()];
        while times.iter().any(Option::is_none) {
            let d = self.recv(None)?;
            if let Some((w, at)) = self.absorb(d)? {
                let i = ids.iter().position(|&x| x == w).expect("one of ours");
                // How long after the last rank finished this thread had taken the work in.
                let noticed = Instant::now().saturating_duration_since(at);
                times[i] = Some((at.saturating_duration_since(t0), noticed));
            }
        }
        Ok(times.into_iter().map(|t| t.expect("all done")).collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn launch_job(
        &mut self,
        work: WorkId,
        res: Resolution,
        items: Vec<Item>,
        steps: u32,
        total_steps: u32,
        members: &[usize],
        labels: Vec<u64>,
        finishes: bool,
        skipped: Arc<Vec<bool>>,
    ) -> Result<()> {
        let ranks = members.len();
        let group = Arc::new(Rendezvous::new(ranks, self.timeout));
        let steps_ns = Arc::new(AtomicU64::new(0));
        let exchange_ns = Arc::new(AtomicU64::new(0));
        let job = RankJob {
            work,
            res,
            items,
            steps,
            total_steps,
            rank: 0,
            members: Arc::new(members.to_vec()),
            group: group.clone(),
            skipped,
            calls: self.calls.clone(),
            steps_ns: steps_ns.clone(),
            exchange_ns: exchange_ns.clone(),
        };
        self.send(job, members)?;
        self.in_flight.insert(
            work,
            InFlight {
                labels,
                ranks_left: ranks,
                parts: vec![None; ranks],
                last: None,
                group,
                finishes,
                steps_ns,
                exchange_ns,
            },
        );
        Ok(())
    }

    /// Waits for one rank report (until `until`, or until one comes).
    fn recv(&mut self, until: Option<Instant>) -> Result<Option<RankDone>> {
        let got = match until {
            Some(limit) => {
                let left = limit.saturating_duration_since(Instant::now());
                match self.done.recv_timeout(left) {
                    Ok(d) => Ok(Some(d)),
                    Err(RecvTimeoutError::Timeout) => Ok(None),
                    Err(RecvTimeoutError::Disconnected) => Err(()),
                }
            }
            None => self.done.recv().map(Some).map_err(|_| ()),
        };
        got.map_err(|()| self.fail("every slot's worker has stopped".into()))
    }

    /// Aborts every group in flight and returns the error to report.
    fn fail(&mut self, why: String) -> Error {
        for f in self.in_flight.values() {
            f.group.abort(&why);
        }
        Error::Executor(why)
    }

    /// Takes in one rank report; the finished work and its completion time once every rank of
    /// it has reported.
    fn absorb(&mut self, d: Option<RankDone>) -> Result<Option<(WorkId, Instant)>> {
        let Some(d) = d else { return Ok(None) };
        let out = match d.result {
            Ok(out) => out,
            Err(e) => {
                let why = format!("rank {} of work {}: {e}", d.rank, d.work.0);
                return Err(self.fail(why));
            }
        };
        let f = self
            .in_flight
            .get_mut(&d.work)
            .ok_or_else(|| Error::Executor(format!("a report for unknown work {}", d.work.0)))?;
        f.parts[d.rank] = Some(out);
        f.ranks_left -= 1;
        f.last = Some(f.last.map_or(d.at, |t| t.max(d.at)));
        if f.ranks_left > 0 {
            return Ok(None);
        }
        let f = self.in_flight.remove(&d.work).expect("present");
        let at = f.last.expect("a rank reported");
        self.step_times
            .insert(d.work, Nanos(f.steps_ns.load(Ordering::Relaxed)));
        self.exchange_times
            .insert(d.work, Nanos(f.exchange_ns.load(Ordering::Relaxed)));
        let parts: Vec<RankOutput> = f
            .parts
            .into_iter()
            .map(|p| p.expect("every rank reported"))
            .collect();
        for (i, label) in f.labels.iter().enumerate() {
            // Rank r holds image rows token_range(r): concatenating in rank order restores
            // the image's row order.
            let latent: Vec<f32> = parts.iter().flat_map(|p| p[i].iter().copied()).collect();
            let latent = Arc::new(latent);
            if f.finishes {
                self.latents.remove(label);
                if let Some(finals) = &mut self.finals {
                    finals.insert(*label, latent);
                }
            } else {
                self.latents.insert(*label, latent);
            }
        }
        Ok(Some((d.work, at)))
    }
}

impl Executor for RealExecutor {
    fn reset(&mut self, workload: &Workload, batches: &[u32]) -> Result<()> {
        if !self.in_flight.is_empty() {
            return Err(Error::Executor("reset with work in flight".into()));
        }
        // The real backend runs an image DiT: a video clip is the simulator's only.
        if let Some(r) = workload.requests.iter().find(|r| r.resolution.is_video()) {
            return Err(Error::Executor(format!(
                "request {} is the {}-frame video {}; the real backend runs an image DiT, so video is simulated only (drop --real)",
                r.label, r.resolution.frames, r.resolution
            )));
        }
        // Warm every workspace the run can need: each resolution, batch size and group size,
        // on every slot (groups that together cover the node).
        for res in workload.resolutions() {
            for &b in batches {
                for k in self.degrees() {
                    let groups = self.covering_groups(k);
                    self.run_batch_on(res, &groups, 1, b as usize)?;
                }
            }
        }
        self.latents.clear();
        if let Some(f) = &mut self.finals {
            f.clear();
        }
        self.failed = None;
        self.labels = workload.requests.iter().map(|r| r.label).collect();
        self.savings = workload.savings.clone();
        self.prompt_latents.clear();
        self.calls = Arc::new(AtomicU64::new(0));
        self.step_times.clear();
        self.exchange_times.clear();
        self.start = Instant::now();
        Ok(())
    }

    fn launch(&mut self, _now: Nanos, work: &Work) -> Result<Launch> {
        let d = &work.dispatch;
        if d.gpus.node() != 0 {
            return Err(Error::Executor(format!(
                "work on node {}: the real backend runs one node",
                d.gpus.node()
            )));
        }
        let members: Vec<usize> = d.gpus.local_gpus().map(|g| g as usize).collect();
        let labels: Vec<u64> = d
            .batch
            .ids()
            .iter()
            .map(|id| {
                self.labels
                    .get(id.index())
                    .copied()
                    .unwrap_or(u64::from(id.0))
            })
            .collect();
        let mut items = Vec::with_capacity(labels.len());
        for (&l, id) in labels.iter().zip(d.batch.ids()) {
            let hit = self
                .savings
                .get(id.index())
                .filter(|s| s.cache_hit)
                .and_then(|s| s.prompt);
            let latent = if work.steps_before == 0 {
                hit.map(|key| self.prompt_latent(key.0, work.resolution))
            } else {
                Some(self.latents.get(&l).cloned().ok_or_else(|| {
                    Error::Executor(format!(
                        "work {} resumes request {l} at step {} but the executor holds no latent for it (it would restart from noise)",
                        work.id.0, work.steps_before
                    ))
                })?)
            };
            items.push(Item {
                seed: request_seed(l),
                latent,
            });
        }
        // A step is skipped when every request of the batch skips it.
        let skips = |step: u32| {
            crate::workload::skipping::batch_skips(
                d.batch
                    .ids()
                    .iter()
                    .map(|id| self.savings.get(id.index()).map(|s| &s.skips)),
                step,
            )
        };
        let skipped: Vec<bool> = (work.steps_before..work.steps_before + d.steps)
            .map(skips)
            .collect();
        let skipped = if skipped.contains(&true) {
            skipped
        } else {
            Vec::new()
        };
        self.launch_job(
            work.id,
            work.resolution,
            items,
            d.steps,
            work.total_steps,
            &members,
            labels,
            work.finishes_request(),
            Arc::new(skipped),
        )?;
        Ok(Launch::Pending)
    }

    fn wait(&mut self, until: Option<Nanos>, out: &mut Vec<(Nanos, WorkId)>) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        loop {
            while let Ok(d) = self.done.try_recv() {
                match self.absorb(Some(d)) {
                    Ok(Some((w, at))) => out.push((self.since_start(at), w)),
                    Ok(None) => {}
                    // Report what completed first; the failure comes with the next wait.
                    Err(e) if !out.is_empty() => {
                        self.failed = Some(e);
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
            if !out.is_empty() {
                return Ok(());
            }
            let now = self.since_start(Instant::now());
            let d = match until {
                Some(t) if now >= t => return Ok(()),
                Some(t) if self.in_flight.is_empty() => {
                    std::thread::sleep(Duration::from_nanos((t - now).0));
                    return Ok(());
                }
                Some(t) => {
                    let limit = Instant::now() + Duration::from_nanos((t - now).0);
                    match self.recv(Some(limit))? {
                        Some(d) => d,
                        None => return Ok(()),
                    }
                }
                None if self.in_flight.is_empty() => return Ok(()),
                None => self
                    .recv(None)?
                    .expect("recv without a limit returns a report"),
            };
            if let Some((w, at)) = self.absorb(Some(d))? {
                out.push((self.since_start(at), w));
            }
        }
    }

    fn has_pending(&self) -> bool {
        !self.in_flight.is_empty()
    }

    fn clock(&self) -> Option<Nanos> {
        Some(self.since_start(Instant::now()))
    }

    fn steps_time(&self, work: WorkId) -> Option<Nanos> {
        self.step_times.get(&work).copied()
    }

    fn exchange_time(&self, work: WorkId) -> Option<Nanos> {
        self.exchange_times.get(&work).copied()
    }

    fn describe(&self) -> Option<String> {
        Some(if self.backend.emulated {
            format!(
                "{} (emulated: the slots share hardware, so timings are not those of independent devices)",
                self.backend.description
            )
        } else {
            self.backend.description.clone()
        })
    }
}

impl Drop for RealExecutor {
    fn drop(&mut self) {
        for f in self.in_flight.values() {
            f.group.abort("the executor is shutting down");
        }
        self.jobs.clear(); // Closing the channels ends the workers.
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// The seed of a request's random inputs.
pub fn request_seed(label: u64) -> u64 {
    crate::real::init::splitmix(label ^ 0xD1FF_5EED)
}

/// The seed of prompt `key`'s stored latent.
pub fn prompt_seed(key: u64) -> u64 {
    crate::real::init::splitmix(key ^ 0xCAC4_E5EE)
}

/// The stored latent of prompt `key` at `res`, `[Ni, C]` on the host: drawn as a request's
/// latent is (tensor 0 of the seed, bf16-rounded), from [`prompt_seed`].
pub fn prompt_latent(cfg: &DitConfig, res: Resolution, key: u64) -> Vec<f32> {
    use crate::real::init::{bf16_round, tensor_seed, uniform};
    let n = cfg.image_tokens(res) * cfg.latent_channels;
    let seed = tensor_seed(prompt_seed(key), 0);
    (0..n)
        .map(|i| bf16_round(uniform(seed, i as u64, 1.0)))
        .collect()
}

fn worker(
    index: usize,
    factory: SlotFactory,
    jobs: Receiver<RankJob>,
    done: Sender<RankDone>,
    ready: Sender<Result<()>>,
) {
    let built =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(factory)).unwrap_or_else(|_| {
            Err(Error::Executor(format!(
                "slot {index} panicked while starting"
            )))
        });
    let mut slot = match built {
        Ok(s) => {
            let _ = ready.send(Ok(()));
            s
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    for job in jobs {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| slot.run(&job)))
            .unwrap_or_else(|_| {
                job.group.abort("a rank panicked");
                Err(Error::Executor(format!("slot {index} panicked")))
            })
            .map_err(|e| Error::Executor(format!("slot {index}: {e}")));
        let report = RankDone {
            work: job.work,
            rank: job.rank,
            at: Instant::now(),
            result,
        };
        if done.send(report).is_err() {
            return;
        }
    }
}
