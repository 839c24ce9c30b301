//! [`RealExecutor`]: the engine's executor on local GPUs, with a wall clock.
//!
//! One worker thread per device owns that device's model and workspaces. `launch` hands a
//! work to the worker of its GPU set and returns at once; `wait` sleeps until the next engine
//! event is due or a worker reports a completion, whose measured wall time becomes the same
//! `WorkDone` event the simulator would have produced. Each local device is one single-GPU
//! node of the cluster (sequence parallelism across devices is not run here), so every policy
//! plans with degree 1 on it.
//!
//! A request's latent travels with its work: the worker that ran its last steps sends the
//! latent back, and the next work (on any device) starts from it, so a request that moves
//! between GPUs denoises exactly as one that stays. Text embeddings and conditioning vectors
//! are regenerated from the request's seed on the device.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine::{Executor, Launch, Work, WorkId};
use crate::error::{Error, Result};
use crate::real::config::DitConfig;
use crate::real::device::{Gpu, probe};
use crate::real::dit::{GpuDit, Workspace};
use crate::time::Nanos;
use crate::workload::Resolution;

struct Job {
    work: WorkId,
    res: Resolution,
    /// Per batch item: the request's seed and, unless it starts now, its latent (raw bf16).
    items: Vec<(u64, Option<Vec<u16>>)>,
    steps: u32,
    total_steps: u32,
}

struct Done {
    work: WorkId,
    at: Instant,
    latents: Vec<Vec<u16>>,
    error: Option<String>,
}

/// Runs dispatched work on local CUDA devices.
pub struct RealExecutor {
    start: Instant,
    jobs: Vec<Sender<Job>>,
    done: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    pending: usize,
    /// Per work in flight: the request ids of its batch, to store their latents.
    in_flight: HashMap<WorkId, Vec<u64>>,
    latents: HashMap<u64, Vec<u16>>,
    pub devices: usize,
    pub device_name: String,
}

impl RealExecutor {
    /// Probes the machine, then builds `cfg` with seeded weights on up to `max_devices` local
    /// devices (all of them when `None`). Blocks until every model is ready.
    pub fn new(cfg: DitConfig, max_devices: Option<usize>) -> Result<RealExecutor> {
        let p = probe()?;
        let devices = max_devices.map_or(p.devices, |m| m.min(p.devices)).max(1);
        let (done_tx, done) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel::<Result<()>>();
        let mut jobs = Vec::new();
        let mut workers = Vec::new();
        for ordinal in 0..devices {
            let (tx, rx) = mpsc::channel();
            jobs.push(tx);
            let (cfg, done_tx, ready_tx) = (cfg.clone(), done_tx.clone(), ready_tx.clone());
            workers.push(std::thread::spawn(move || {
                worker(ordinal, cfg, rx, done_tx, ready_tx)
            }));
        }
        for _ in 0..devices {
            ready.recv().map_err(|_| {
                Error::Executor("a GPU worker exited while loading the model".into())
            })??;
        }
        Ok(RealExecutor {
            start: Instant::now(),
            jobs,
            done,
            workers,
            pending: 0,
            in_flight: HashMap::new(),
            latents: HashMap::new(),
            devices,
            device_name: p.name,
        })
    }

    /// Restarts the clock (and forgets latents) for a new run.
    pub fn reset(&mut self) {
        self.start = Instant::now();
        self.latents.clear();
    }

    fn since_start(&self, t: Instant) -> Nanos {
        Nanos(t.saturating_duration_since(self.start).as_nanos() as u64)
    }

    fn complete(&mut self, d: Done, out: &mut Vec<(Nanos, WorkId)>) -> Result<()> {
        self.pending -= 1;
        if let Some(e) = d.error {
            return Err(Error::Executor(e));
        }
        if let Some(labels) = self.in_flight.remove(&d.work) {
            for (label, latent) in labels.into_iter().zip(d.latents) {
                self.latents.insert(label, latent);
            }
        }
        out.push((self.since_start(d.at), d.work));
        Ok(())
    }
}

impl Executor for RealExecutor {
    fn launch(&mut self, _now: Nanos, work: &Work) -> Result<Launch> {
        let d = &work.dispatch;
        if d.gpus.len() != 1 {
            return Err(Error::Executor(format!(
                "work on {} GPUs: the real backend runs each local device as its own node, so degrees above 1 cannot be dispatched",
                d.gpus.len()
            )));
        }
        let device = d.gpus.node() as usize;
        let tx = self
            .jobs
            .get(device)
            .ok_or_else(|| Error::Executor(format!("no local device {device}")))?;
        let labels: Vec<u64> = d.batch.ids().iter().map(|id| u64::from(id.0)).collect();
        let items = labels
            .iter()
            .map(|l| {
                (
                    request_seed(*l),
                    if work.steps_before == 0 {
                        None
                    } else {
                        self.latents.get(l).cloned()
                    },
                )
            })
            .collect();
        tx.send(Job {
            work: work.id,
            res: work.resolution,
            items,
            steps: d.steps,
            total_steps: work.total_steps,
        })
        .map_err(|_| Error::Executor(format!("the worker of device {device} has stopped")))?;
        self.in_flight.insert(work.id, labels);
        self.pending += 1;
        Ok(Launch::Pending)
    }

    fn wait(&mut self, until: Option<Nanos>, out: &mut Vec<(Nanos, WorkId)>) -> Result<()> {
        loop {
            // Drain whatever has already completed.
            while let Ok(d) = self.done.try_recv() {
                self.complete(d, out)?;
            }
            if !out.is_empty() {
                return Ok(());
            }
            let now = self.since_start(Instant::now());
            match until {
                Some(t) if now >= t => return Ok(()),
                Some(t) if self.pending == 0 => {
                    std::thread::sleep(Duration::from_nanos((t - now).0));
                    return Ok(());
                }
                Some(t) => match self.done.recv_timeout(Duration::from_nanos((t - now).0)) {
                    Ok(d) => self.complete(d, out)?,
                    Err(RecvTimeoutError::Timeout) => return Ok(()),
                    Err(RecvTimeoutError::Disconnected) => {
                        return Err(Error::Executor("every GPU worker has stopped".into()));
                    }
                },
                None if self.pending == 0 => return Ok(()),
                None => {
                    let d = self
                        .done
                        .recv()
                        .map_err(|_| Error::Executor("every GPU worker has stopped".into()))?;
                    self.complete(d, out)?;
                }
            }
        }
    }

    fn has_pending(&self) -> bool {
        self.pending > 0
    }

    fn clock(&self) -> Option<Nanos> {
        Some(self.since_start(Instant::now()))
    }
}

impl Drop for RealExecutor {
    fn drop(&mut self) {
        self.jobs.clear(); // Closing the channels ends the workers.
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// The seed of a request's random inputs.
fn request_seed(label: u64) -> u64 {
    crate::real::init::splitmix(label ^ 0xD1FF_5EED)
}

fn worker(
    ordinal: usize,
    cfg: DitConfig,
    jobs: Receiver<Job>,
    done: Sender<Done>,
    ready: Sender<Result<()>>,
) {
    let dit = match Gpu::open(ordinal).and_then(|g| GpuDit::new(g, cfg, 1)) {
        Ok(d) => {
            let _ = ready.send(Ok(()));
            d
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut spaces: HashMap<(Resolution, usize), Workspace> = HashMap::new();
    for job in jobs {
        let work = job.work;
        let result = run_job(&dit, &mut spaces, job);
        let at = Instant::now();
        let (latents, error) = match result {
            Ok(l) => (l, None),
            Err(e) => (Vec::new(), Some(format!("device {ordinal}: {e}"))),
        };
        if done
            .send(Done {
                work,
                at,
                latents,
                error,
            })
            .is_err()
        {
            return;
        }
    }
}

fn run_job(
    dit: &GpuDit,
    spaces: &mut HashMap<(Resolution, usize), Workspace>,
    job: Job,
) -> Result<Vec<Vec<u16>>> {
    let key = (job.res, job.items.len());
    if !spaces.contains_key(&key) {
        // Workspaces of large images are big: keep a few.
        if spaces.len() >= 4 {
            spaces.clear();
        }
        spaces.insert(key, dit.workspace(job.res, job.items.len(), 1)?);
    }
    let ws = &spaces[&key];
    for (i, (seed, latent)) in job.items.iter().enumerate() {
        dit.load_inputs(ws, i, *seed)?;
        if let Some(l) = latent {
            dit.set_latent(ws, i, l)?;
        }
    }
    let dt = 1.0 / job.total_steps.max(1) as f32;
    for _ in 0..job.steps {
        dit.step(ws, dt)?;
    }
    (0..job.items.len()).map(|i| dit.latent(ws, i)).collect()
}
