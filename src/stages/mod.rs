//! Pipeline stages: where a request's text encoding and VAE decoding run.
//!
//! A request passes through three stages: *encode* (the text encoders), *denoise* (its DiT
//! steps, scheduled by the policy) and *decode* (the VAE). Two deployments:
//!
//! - **Co-located** (the default, the paper's setting): encode and decode run on the request's
//!   denoising GPUs, charged as [`Overheads`](crate::cost::Overheads) before its first step and
//!   after its last. Nothing in this module runs.
//! - **Disaggregated**: encode and decode have GPU pools of their own ([`Pools`]); the text
//!   embedding moves from the encode pool to the denoising GPUs, and the latent from them to the
//!   decode pool, over a modelled [`Link`]. Each pool serves its queue first come, first
//!   served, one request per GPU at a time, on the GPU that has been free longest (lowest index
//!   on ties).
//!
//! A disaggregated run is three passes, and the split is exact, not an approximation:
//!
//! 1. [`encode`]: every request gets its encode slot. The encode pool's service time is the
//!    same for every request and its queue is first come, first served, so when a request leaves
//!    it depends on the arrivals only, never on the policy; and requests leave in arrival order.
//!    The denoising stage sees each request arrive when its embedding has reached the denoising
//!    GPUs (`ready`), due at its *stage deadline*: its deadline less the latent's transfer and a
//!    decode on an idle pool (the least the decode stage can take). Policies plan against that
//!    deadline with the encoder and VAE off their GPUs (zero in their overheads).
//! 2. The engine runs the policy on that workload, unchanged.
//! 3. [`decode`]: the decode pool feeds nothing back to the denoising GPUs, so it is replayed
//!    after the run from each request's last step. Each request's record then gets back its
//!    arrival and deadline, ends when its decode ends, and is met iff that is by its deadline.
//!
//! Because the stage deadline is what any schedule must meet for the request to be met, the
//! upper bound computed on the denoising stage's workload is a bound on the pipeline too.

pub mod config;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::cluster::OperatingCost;
use crate::error::{Error, Result};
use crate::metrics::{Outcome, PoolSlot, RequestRecord, RunRecords, StageRecord, StageRecords};
use crate::time::Nanos;
use crate::workload::{Request, RequestId, Resolution, Workload};

/// Where the encode and decode stages run.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Deployment {
    /// On each request's denoising GPUs, as overheads (the default).
    #[default]
    Colocated,
    /// On pools of their own.
    Disaggregated(Pools),
}

impl Deployment {
    /// The pools, when the stages are disaggregated.
    pub fn pools(&self) -> Option<&Pools> {
        match self {
            Deployment::Colocated => None,
            Deployment::Disaggregated(p) => Some(p),
        }
    }
}

/// A pool of GPUs serving one stage.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub gpus: u32,
    /// Its GPU type (`h100`, `a40`, ...).
    pub gpu: String,
    /// Price and power of one of its GPUs (for the run's cost; never for scheduling).
    pub operating: OperatingCost,
}

/// The link between the pools and the denoising GPUs: a latency plus bytes at a rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    pub bytes_per_s: u64,
    pub latency: Nanos,
}

impl Link {
    /// How long `bytes` take: the latency plus the bytes at the link's rate, rounded up to
    /// the nanosecond.
    pub fn transfer(&self, bytes: u64) -> Option<Nanos> {
        let wire = (u128::from(bytes) * 1_000_000_000).div_ceil(u128::from(self.bytes_per_s));
        self.latency.checked_add(Nanos(u64::try_from(wire).ok()?))
    }
}

/// Disaggregated stages: the two pools, their service times and the link.
#[derive(Clone, Debug, PartialEq)]
pub struct Pools {
    pub encode: Pool,
    pub decode: Pool,
    /// The text encoders' time per request on an encode-pool GPU.
    pub encode_time: Nanos,
    /// The VAE decoder's time per 1,000 latent tokens on a decode-pool GPU.
    pub decode_per_1k_tokens: Nanos,
    pub link: Link,
    /// What the encode pool sends per request: the text embedding.
    pub embedding_bytes: u64,
    /// What the denoising GPUs send per latent token: the final latent.
    pub latent_bytes_per_token: u64,
}

impl Pools {
    /// The embedding's transfer to the denoising GPUs.
    pub fn embedding_transfer(&self) -> Result<Nanos> {
        self.link
            .transfer(self.embedding_bytes)
            .ok_or_else(|| too_long("an embedding's transfer"))
    }

    /// The latent's transfer to the decode pool.
    pub fn latent_transfer(&self, res: Resolution) -> Result<Nanos> {
        self.latent_bytes_per_token
            .checked_mul(res.tokens())
            .and_then(|b| self.link.transfer(b))
            .ok_or_else(|| too_long(&format!("the transfer of a {res} latent")))
    }

    /// A decode on a decode-pool GPU.
    pub fn decode_time(&self, res: Resolution) -> Result<Nanos> {
        let ns = u128::from(self.decode_per_1k_tokens.0) * u128::from(res.tokens()) / 1000;
        u64::try_from(ns)
            .ok()
            .map(Nanos)
            .filter(|&t| t < Nanos::HORIZON)
            .ok_or_else(|| too_long(&format!("a {res} decode")))
    }

    /// The least time after a request's last step before its image is out: the latent's
    /// transfer and a decode on an idle pool.
    pub fn downstream(&self, res: Resolution) -> Result<Nanos> {
        self.downstream_with(res, self.decode_time(res)?)
    }

    /// `request`'s encode: its own time (a trace's `encode_s`), else the pool's.
    pub fn encode_of(&self, request: &Request) -> Nanos {
        request.stages.encode.unwrap_or(self.encode_time)
    }

    /// `request`'s decode: its own time (a trace's `decode_s`), else the pool's model.
    pub fn decode_of(&self, request: &Request) -> Result<Nanos> {
        match request.stages.decode {
            Some(t) => Ok(t),
            None => self.decode_time(request.resolution),
        }
    }

    /// [`Pools::downstream`] with `request`'s own decode time.
    fn downstream_of(&self, request: &Request) -> Result<Nanos> {
        self.downstream_with(request.resolution, self.decode_of(request)?)
    }

    /// A `res` latent's transfer and then a decode lasting `decode`.
    fn downstream_with(&self, res: Resolution, decode: Nanos) -> Result<Nanos> {
        self.latent_transfer(res)?
            .checked_add(decode)
            .ok_or_else(|| too_long(&format!("a {res} latent's transfer and decode")))
    }
}

fn too_long(what: &str) -> Error {
    Error::config_hint(
        format!("{what} would last beyond the simulator's horizon (2^62 ns)"),
        "check the [stages] and [overheads] values",
    )
}

fn past_horizon(what: &str, id: u64) -> Error {
    Error::config(format!(
        "request {id}: its {what} would end beyond the simulator's horizon (2^62 ns)"
    ))
}

/// Co-located stages are the policies' per-scenario overheads: a workload whose requests
/// carry stage times of their own (a trace's `encode_s`, `decode_s`) is refused rather than
/// run without them.
pub fn refuse_stage_times(workload: &Workload) -> Result<()> {
    match workload.requests.iter().find(|r| r.stages.any()) {
        None => Ok(()),
        Some(r) => Err(Error::config_hint(
            format!(
                "request {} gives its own stage times (the trace's encode_s, decode_s columns), which only disaggregated stages use, but the stages are co-located",
                r.label
            ),
            "run with --stages disaggregated (or [stages] mode = \"disaggregated\" in the scenario), or remove the encode_s and decode_s columns",
        )),
    }
}

/// A first-come-first-served pool of identical GPUs: the next request takes the GPU that has
/// been free longest (the lowest index on ties).
struct Queue {
    free_at: BinaryHeap<Reverse<(Nanos, u32)>>,
}

impl Queue {
    fn new(gpus: u32) -> Queue {
        Queue {
            free_at: (0..gpus).map(|g| Reverse((Nanos::ZERO, g))).collect(),
        }
    }

    /// Serves a request that reaches the pool at `at` for `service`; `None` past the horizon.
    fn serve(&mut self, at: Nanos, service: Nanos) -> Option<PoolSlot> {
        let Reverse((free, gpu)) = self.free_at.pop().expect("a pool has at least one GPU");
        let start = at.max(free);
        let end = start.checked_add(service)?;
        self.free_at.push(Reverse((end, gpu)));
        Some(PoolSlot { gpu, start, end })
    }
}

/// The denoising stage's view of a workload, and each request's stages so far.
pub struct Encoded {
    /// The requests as the policy sees them: arriving when their embedding is ready, due at
    /// their stage deadline; labels, steps, resolutions and savings unchanged. In the order
    /// they are ready, which is the scenario's order unless requests have encode times of
    /// their own (see `order`).
    pub workload: Workload,
    /// Per request of the scenario's workload, in its id order, the decode still to come
    /// (`None`).
    pub stages: Vec<StageRecord>,
    /// Per request of `workload`, its index in the scenario's workload; empty when the two
    /// orders are the same.
    pub order: Vec<u32>,
}

impl Encoded {
    /// The scenario workload's index of `workload`'s request at `index`.
    pub fn original(&self, index: usize) -> usize {
        self.order.get(index).map_or(index, |&i| i as usize)
    }
}

/// Pass 1: runs every request of `workload` through the encode pool (see the module docs).
///
/// With the pool's one encode time, requests leave the pool in the order they came. A trace
/// may give requests encode times of their own (`encode_s`), and then a short encode can
/// overtake a long one on another GPU: the denoising stage's workload is then sorted by the
/// time each is ready (ties keep the scenario's order) and renumbered, as the engine needs,
/// and [`Encoded::order`] maps it back.
pub fn encode(workload: &Workload, pools: &Pools) -> Result<Encoded> {
    let transfer = pools.embedding_transfer()?;
    let mut queue = Queue::new(pools.encode.gpus);
    let mut denoise = workload.clone();
    let mut stages = Vec::with_capacity(workload.len());
    for r in &mut denoise.requests {
        let slot = queue
            .serve(r.arrival, pools.encode_of(r))
            .ok_or_else(|| past_horizon("encode", r.label))?;
        let ready = slot
            .end
            .checked_add(transfer)
            .ok_or_else(|| past_horizon("embedding's transfer", r.label))?;
        // Due when the latent's transfer and an idle decode still fit before the deadline;
        // not before it is ready (it is then late on arrival).
        let downstream = pools.downstream_of(r)?;
        let denoise_deadline = r
            .deadline
            .0
            .checked_sub(downstream.0)
            .map(Nanos)
            .filter(|&d| d >= ready)
            .unwrap_or(ready);
        r.arrival = ready;
        r.deadline = denoise_deadline;
        stages.push(StageRecord {
            encode: slot,
            ready,
            denoise_deadline,
            decode_ready: None,
            decode: None,
        });
    }
    let mut order = Vec::new();
    if !denoise.requests.is_sorted_by_key(|r| r.arrival) {
        order = (0..denoise.requests.len() as u32).collect();
        order.sort_by_key(|&i| denoise.requests[i as usize].arrival);
        let mut requests = Vec::with_capacity(order.len());
        let mut savings = Vec::with_capacity(denoise.savings.len());
        for (id, &i) in order.iter().enumerate() {
            let mut r = denoise.requests[i as usize].clone();
            r.id = RequestId(id as u32);
            requests.push(r);
            if let Some(s) = denoise.savings.get(i as usize) {
                savings.push(s.clone());
            }
        }
        denoise.requests = requests;
        denoise.savings = savings;
    }
    Ok(Encoded {
        workload: denoise,
        stages,
        order,
    })
}

/// Pass 3: replays the decode pool after the denoising run, and turns `records` (the engine's,
/// on [`Encoded::workload`]) into end-to-end records of `workload`'s requests, in its order.
pub fn decode(
    records: &mut RunRecords,
    workload: &Workload,
    pools: &Pools,
    encoded: &Encoded,
) -> Result<()> {
    if records.requests.len() != workload.len() || encoded.stages.len() != workload.len() {
        return Err(Error::config(format!(
            "the decode pass got {} records and {} stage records for {} requests",
            records.requests.len(),
            encoded.stages.len(),
            workload.len()
        )));
    }
    if !encoded.order.is_empty() {
        // Back to the scenario's order: the denoising stage's records follow its own.
        let mut back: Vec<Option<RequestRecord>> = vec![None; records.requests.len()];
        for (r, &i) in std::mem::take(&mut records.requests)
            .into_iter()
            .zip(&encoded.order)
        {
            back[i as usize] = Some(r);
        }
        records.requests = back
            .into_iter()
            .map(|r| r.expect("`order` is a permutation"))
            .collect();
    }
    let mut stages = encoded.stages.clone();
    // Reaching the decode pool: the last step's end plus the latent's transfer.
    let mut arrivals = Vec::with_capacity(records.requests.len());
    for (i, r) in records.requests.iter().enumerate() {
        if r.outcome == Outcome::Dropped {
            continue;
        }
        let at = r
            .end
            .checked_add(pools.latent_transfer(r.resolution)?)
            .ok_or_else(|| past_horizon("latent's transfer", r.id))?;
        arrivals.push((at, i));
    }
    arrivals.sort_unstable();
    let mut queue = Queue::new(pools.decode.gpus);
    for (at, i) in arrivals {
        let service = pools.decode_of(&workload.requests[i])?;
        let r = &mut records.requests[i];
        let slot = queue
            .serve(at, service)
            .ok_or_else(|| past_horizon("decode", r.id))?;
        stages[i].decode_ready = Some(at);
        stages[i].decode = Some(slot);
        r.end = slot.end;
    }
    for (r, w) in records.requests.iter_mut().zip(&workload.requests) {
        r.arrival = w.arrival;
        r.deadline = w.deadline;
        if r.outcome != Outcome::Dropped {
            r.outcome = if r.end <= r.deadline {
                Outcome::Met
            } else {
                Outcome::Missed
            };
        }
    }
    records.stages = Some(StageRecords {
        encode_gpus: pools.encode.gpus,
        decode_gpus: pools.decode.gpus,
        requests: stages,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Request;

    fn pools(encode_gpus: u32, decode_gpus: u32) -> Pools {
        let pool = |gpus| Pool {
            gpus,
            gpu: "h100".into(),
            operating: OperatingCost::default(),
        };
        Pools {
            encode: pool(encode_gpus),
            decode: pool(decode_gpus),
            encode_time: Nanos(10),
            decode_per_1k_tokens: Nanos(1000),
            link: Link {
                bytes_per_s: 1_000_000_000,
                latency: Nanos(1),
            },
            embedding_bytes: 4,
            latent_bytes_per_token: 1,
        }
    }

    #[test]
    fn a_transfer_is_the_latency_plus_the_bytes_at_the_rate_rounded_up() {
        let link = Link {
            bytes_per_s: 3_000_000_000,
            latency: Nanos(7),
        };
        assert_eq!(link.transfer(0), Some(Nanos(7)));
        // 10 bytes at 3 bytes per ns: 3.33 ns, rounded up to 4.
        assert_eq!(link.transfer(10), Some(Nanos(11)));
        assert_eq!(link.transfer(9), Some(Nanos(10)));
    }

    #[test]
    fn a_decode_reaching_the_horizon_is_refused_one_short_of_it_is_not() {
        // 1000 x 2^50 ns per 1,000 tokens x 4,096 tokens (1024 px) is exactly 2^62 ns.
        let mut p = pools(1, 1);
        let res = Resolution::square(1024);
        p.decode_per_1k_tokens = Nanos(1000 << 50);
        assert!(p.decode_time(res).is_err());
        assert!(p.downstream(res).is_err());
        p.decode_per_1k_tokens = Nanos((1000 << 50) - 1);
        assert_eq!(p.decode_time(res).unwrap(), Nanos((1 << 62) - 5));
    }

    #[test]
    fn the_encode_pool_serves_first_come_first_served_on_the_gpu_free_longest() {
        // Two GPUs, 10 ns per encode, 4-byte embeddings (1 + 4 ns). Arrivals 0, 0, 0, 25:
        // the first two start at once (GPUs 0, 1), the third waits for GPU 0 (10..20), the
        // fourth finds GPU 1 free since 10 and GPU 0 since 20, and takes GPU 1.
        let w = Workload::from_requests(
            [0, 0, 0, 25]
                .iter()
                .map(|&a| Request {
                    id: crate::workload::RequestId(0),
                    label: 0,
                    arrival: Nanos(a),
                    resolution: Resolution::new(256, 256),
                    steps: 1,
                    deadline: Nanos(1000),
                    stages: Default::default(),
                })
                .collect(),
        );
        let p = pools(2, 1);
        let e = encode(&w, &p).unwrap();
        let slots: Vec<(u32, u64, u64)> = e
            .stages
            .iter()
            .map(|s| (s.encode.gpu, s.encode.start.0, s.encode.end.0))
            .collect();
        assert_eq!(slots, [(0, 0, 10), (1, 0, 10), (0, 10, 20), (1, 25, 35)]);
        let ready: Vec<u64> = e.workload.requests.iter().map(|r| r.arrival.0).collect();
        assert_eq!(ready, [15, 15, 25, 40]);
        // 256 px is 256 tokens: a 1 + 256 ns transfer and a 256 ns decode leave 1000 - 513.
        assert!(e.workload.requests.iter().all(|r| r.deadline == Nanos(487)));
    }
}
