//! Measurements on the local GPU: the numerics checks against the CPU reference, the
//! conformance of the lane transport, and `tetriserve profile`, which writes a profile CSV the
//! simulator reads.
//!
//! The model is [`model::step`] on a [`GpuOps`], the same code every backend runs.
//!
//! - [`numerics`]: the tiny model on the GPU (one rank, [`Solo`]) against [`CpuDit::step`];
//! - [`ulysses_numerics`]: `k` lanes of the GPU (`k` threads, one stream and one
//!   [`LaneTransport`] each, meeting at a [`Rendezvous`]) run a `k`-way Ulysses step; the
//!   reassembled velocity must equal the plain step's and [`CpuDit::step_ulysses`]'s;
//! - [`lane_exchange_check`]: the lane transport alone: every element of two all-to-alls run
//!   back to back, checked against [`ulysses::apply`] on the host.
//!
//! Per-step latency is the median of `repeats` steps after `warmup` ones, timed with CUDA
//! events; the spread is reported as the standard deviation. Degree 1 is the plain step. A
//! degree `k > 1` is *emulated*: rank 0 of `k` computes its share of the step with no exchange
//! ([`ShareOnly`]: 1/k of the tokens through the linear layers, 1/k of the heads through
//! attention over all tokens) and the all-to-all time of the analytic model's link (NVLink at
//! the calibrated bandwidth and latency, see `profiles/README.md`) is added; such rows say
//! `source = emulated-spK`.

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::Link;
use crate::cost::analytic::{Analytic, PROFILE_HEADER};
use crate::error::{Error, Result};
use crate::real::attention::{self, Backend};
use crate::real::config::DitConfig;
use crate::real::device::Gpu;
use crate::real::gpu::{GpuDevice, GpuOps};
use crate::real::init::splitmix;
use crate::real::lanes::LaneTransport;
use crate::real::model::{self, Weights, Workspace};
use crate::real::ops::{AttentionShape, Ops, Ptr};
use crate::real::reference::{CpuDit, CpuInputs};
use crate::real::transport::{Rendezvous, ShareOnly, Solo, Transport};
use crate::real::ulysses::{self, Block, Layout};
use crate::workload::Resolution;

/// The short GPU name used in profiles (`h100`, `h200`, ...), from the device name.
pub fn gpu_key(device_name: &str) -> String {
    let lower = device_name.to_lowercase();
    for key in ["h200", "h100", "a100", "a40", "l40s", "l4", "b200", "gh200"] {
        if lower.contains(key) {
            return key.to_string();
        }
    }
    lower.split_whitespace().last().unwrap_or("gpu").to_string()
}

/// Relative L2 error `||got - want|| / ||want||`.
pub fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, w) in got.iter().zip(want) {
        num += f64::from(g - w).powi(2);
        den += f64::from(*w).powi(2);
    }
    if got.len() != want.len() || got.iter().any(|x| !x.is_finite()) {
        return f64::INFINITY;
    }
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

/// One numerics comparison.
#[derive(Clone, Debug)]
pub struct NumericsCheck {
    pub case: String,
    pub relative_error: f64,
}

/// Runs the tiny model on the GPU and on the CPU for a few resolutions, batch sizes and fresh
/// seeds, with the GPU's velocity buffer poisoned (NaN) first, and returns the relative errors
/// of the velocities. bf16 storage of every intermediate puts a correct kernel set near 1e-2.
pub fn numerics(dev: &GpuDevice) -> Result<Vec<NumericsCheck>> {
    let cfg = DitConfig::tiny();
    let seed = 0x5EED;
    let mut ops = GpuOps::new(dev)?;
    let w = Weights::build(&mut ops, cfg.clone(), seed)?;
    let cpu = CpuDit::new(cfg.clone(), seed);
    let mut checks = Vec::new();
    for (res, batch, request_seed) in [
        (Resolution::new(64, 32), 1, 11u64),
        (Resolution::new(48, 48), 2, 12),
        (Resolution::new(32, 64), 3, 13),
    ] {
        let ws = Workspace::new(&mut ops, &cfg, res, batch, 1)?;
        for item in 0..batch {
            model::load_inputs(&ops, &cfg, &ws, item, request_seed + item as u64)?;
        }
        let (v, n) = ws.velocity_buffer(&cfg);
        ops.poison(v, n)?;
        model::step(&ops, &w, &ws, &mut Solo, 1.0)?;
        for item in 0..batch {
            let got = model::velocity_rows(&ops, &w, &ws, item, 0)?;
            let mut inputs = CpuInputs::seeded(&cfg, res, request_seed + item as u64);
            let want = cpu.step(&mut inputs, res, 1.0);
            checks.push(NumericsCheck {
                case: format!("tiny {res} batch {batch} item {item}"),
                relative_error: relative_error(&got, &want),
            });
        }
    }
    Ok(checks)
}

/// One attention backend against the CPU reference (see [`attention_numerics`]).
#[derive(Clone, Debug)]
pub struct AttentionCheck {
    pub tokens: usize,
    /// The backend asked for, and the one that ran the shape (cuDNN may refuse it).
    pub requested: Backend,
    pub ran: Backend,
    pub relative_error: f64,
}

/// Every attention backend on the GPU against the CPU reference, at head dim 128 for the
/// token counts of [`attention::CHECK_TOKENS`] (2 heads; seeded bf16 inputs; the output
/// poisoned before each run).
pub fn attention_numerics(dev: &GpuDevice) -> Result<Vec<AttentionCheck>> {
    let mut out = Vec::new();
    for (i, &n) in attention::CHECK_TOKENS.iter().enumerate() {
        let shape = attention::check_shape(n);
        let qkv = attention::check_inputs(&shape, 40 + i as u64);
        let want = crate::real::reference::attention(&qkv, shape.ld, n, shape.heads, 128);
        let mut ops = GpuOps::new(dev)?;
        let a = ops.alloc(qkv.len())?;
        ops.write(a, &qkv)?;
        let o = ops.alloc(n * shape.ldo)?;
        for backend in Backend::ALL {
            ops.set_attention(backend);
            ops.reserve_attention(&[shape])?;
            ops.poison(o, n * shape.ldo)?;
            ops.attention(a, o, &shape)?;
            let got = ops.read(o, n * shape.ldo)?;
            out.push(AttentionCheck {
                tokens: n,
                requested: backend,
                ran: ops.attention_backend_for(&shape),
                relative_error: relative_error(&got, &want),
            });
        }
    }
    Ok(out)
}

/// One attention backend timed at a FLUX.1-dev shape (see [`attention_timing`]).
#[derive(Clone, Debug)]
pub struct AttentionTime {
    pub px: u32,
    pub tokens: usize,
    pub requested: Backend,
    pub ran: Backend,
    /// Median of 5 calls after one warm-up (CUDA events), one batch item, all 24 heads.
    pub ms: f64,
    /// `4 N^2 x hidden` FLOPs over that time, TFLOP/s.
    pub tflops: f64,
}

/// Times one attention call of FLUX.1-dev (24 heads of 128, a single block's q/k/v rows of
/// stride 3H + M) per backend at `pxs` (square, 512 text tokens).
pub fn attention_timing(dev: &GpuDevice, pxs: &[u32]) -> Result<Vec<AttentionTime>> {
    let cfg = DitConfig::flux1_dev();
    let (h, m) = (cfg.hidden, cfg.mlp());
    let mut out = Vec::new();
    for &px in pxs {
        let n = cfg.text_tokens + cfg.image_tokens(Resolution::square(px));
        let shape = AttentionShape {
            tokens: n,
            heads: cfg.heads,
            head_dim: cfg.head_dim(),
            ld: 3 * h + m,
            ldo: h,
            cols: h,
        };
        let mut ops = GpuOps::new(dev)?;
        let a = ops.alloc(n * shape.ld)?;
        ops.fill_uniform(a, n * shape.ld, 77, 2.0)?;
        let o = ops.alloc(n * h)?;
        let err =
            |e: cudarc::driver::DriverError| Error::Executor(format!("timing attention: {e}"));
        for backend in Backend::ALL {
            ops.set_attention(backend);
            ops.reserve_attention(&[shape])?;
            let call = |ops: &GpuOps| ops.attention(a, o, &shape);
            call(&ops)?;
            ops.synchronize()?;
            let mut t = Vec::new();
            for _ in 0..5 {
                let start = ops.record_timing_event()?;
                call(&ops)?;
                let end = ops.record_timing_event()?;
                end.synchronize().map_err(err)?;
                t.push(f64::from(start.elapsed_ms(&end).map_err(err)?));
            }
            t.sort_by(f64::total_cmp);
            let ms = t[2];
            let flops = 4.0 * (n as f64).powi(2) * h as f64;
            out.push(AttentionTime {
                px,
                tokens: n,
                requested: backend,
                ran: ops.attention_backend_for(&shape),
                ms,
                tflops: flops / (ms * 1e-3) / 1e12,
            });
        }
    }
    Ok(out)
}

/// How long a lane waits for its peers in the checks below before failing.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `f(rank, transport)` on `k` threads, one lane each (a new stream sharing nothing but
/// the device), meeting at one rendezvous; the results in rank order. A failing lane aborts
/// the group, so its peers fail instead of waiting.
fn on_lanes<R: Send>(
    k: usize,
    f: impl Fn(usize, &mut LaneTransport) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let group = Arc::new(Rendezvous::new(k, CHECK_TIMEOUT));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..k)
            .map(|rank| {
                let (group, f) = (group.clone(), &f);
                s.spawn(move || {
                    let mut t = LaneTransport {
                        rank,
                        group: group.clone(),
                    };
                    let r = f(rank, &mut t);
                    if let Err(e) = &r {
                        group.abort(&format!("lane {rank}: {e}"));
                    }
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Executor("a lane panicked".into())))
            })
            .collect()
    })
}

/// One check of a Ulysses step on lanes (see [`ulysses_numerics`]).
#[derive(Clone, Debug)]
pub struct UlyssesCheck {
    pub case: String,
    pub ranks: usize,
    /// Against the plain step on the same GPU.
    pub vs_plain: f64,
    /// Against the CPU reference run as the same ranks.
    pub vs_cpu: f64,
}

/// The SP path on one GPU: a tiny model with 8 heads runs each case as a plain step and as a
/// `k`-way Ulysses step on `k` lanes (k = 2, 4, 8: `k` threads, each a stream of its own with
/// a [`LaneTransport`], sharing the weights), from the same inputs; the reassembled
/// velocities must agree within bf16 tolerance with the plain step and with
/// [`CpuDit::step_ulysses`]. Sequences of 20 and 24 tokens make some shards straddle text and
/// image and the last ones short or empty.
pub fn ulysses_numerics(dev: &GpuDevice) -> Result<Vec<UlyssesCheck>> {
    let cfg = DitConfig {
        heads: 8,
        ..DitConfig::tiny()
    };
    let seed = 0x5EED;
    let mut builder = GpuOps::new(dev)?;
    let w = Weights::build(&mut builder, cfg.clone(), seed)?;
    let shared = builder.freeze()?;
    let cpu = CpuDit::new(cfg.clone(), seed);
    let mut checks = Vec::new();
    for (res, request_seed) in [
        (Resolution::new(48, 64), 21u64),
        (Resolution::new(64, 64), 22),
    ] {
        // Each lane (and the plain step) draws the same inputs into a poisoned workspace.
        let run = |ops: &mut GpuOps, t: &mut dyn Transport<GpuOps>| -> Result<Vec<f32>> {
            let ws = Workspace::new(ops, &cfg, res, 1, t.ranks())?;
            model::load_inputs(ops, &cfg, &ws, 0, request_seed)?;
            let (v, n) = ws.velocity_buffer(&cfg);
            ops.poison(v, n)?;
            model::step(ops, &w, &ws, t, 1.0)?;
            model::velocity_rows(ops, &w, &ws, 0, t.rank())
        };
        let want = run(&mut GpuOps::sharing(shared.clone())?, &mut Solo)?;
        for ranks in [2, 4, 8] {
            let parts = on_lanes(ranks, |_, t| run(&mut GpuOps::sharing(shared.clone())?, t))?;
            let got: Vec<f32> = parts.concat();
            let mut inputs = CpuInputs::seeded(&cfg, res, request_seed);
            let reference = cpu.step_ulysses(&mut inputs, res, 1.0, ranks)?;
            checks.push(UlyssesCheck {
                case: format!(
                    "tiny (8 heads) {res}, {} tokens",
                    cfg.text_tokens + cfg.image_tokens(res)
                ),
                ranks,
                vs_plain: relative_error(&got, &want),
                vs_cpu: relative_error(&got, &reference),
            });
        }
    }
    Ok(checks)
}

/// The lane transport's conformance for one group size (see [`lane_exchange_check`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaneCheck {
    pub ranks: usize,
    /// The layouts exchanged, described.
    pub cases: Vec<String>,
    /// Exchanges per case, run back to back.
    pub exchanges: usize,
    /// Destination values compared, and those that differ from the host all-to-all.
    pub elements: usize,
    pub mismatches: usize,
}

/// A bf16-exact code of (`tag`, `rank`, `index`): a finite positive bf16, so that every
/// misplaced element shows (up to one chance in 32,640).
fn code(tag: u64, rank: usize, index: usize) -> f32 {
    let z = splitmix(tag ^ ((rank as u64) << 48) ^ index as u64);
    half::bf16::from_bits((z % 0x7F80) as u16).to_f32()
}

/// Checks [`LaneTransport`] on `k` lanes (k divides 8), on two layouts: a short sequence (21
/// tokens, 8 heads of 4: uneven shards, an empty one at k = 8) and FLUX.1-dev's at 512 px
/// (1,536 tokens, 24 heads of 128). Per layout, each lane fills its token shard `A` (rows of
/// a single block's stride `3H + M`) and a head-shard output `E` with codes of (lane, index),
/// then runs, with no host wait in between, the q/k/v all-to-all `A -> B`, an asynchronous
/// overwrite of `A` (a kernel; peers must have read it first), and the way back `E -> D`.
/// Every element of `B` and `D` on every lane is compared with [`ulysses::apply`] on the host.
pub fn lane_exchange_check(dev: &GpuDevice, k: usize) -> Result<LaneCheck> {
    let layouts = [
        (Layout::new(21, 8, 4, k)?, "21 tokens, 8 heads of 4"),
        (
            Layout::new(1024 + 512, 24, 128, k)?,
            "FLUX.1-dev 512 px: 1,536 tokens, 24 heads of 128",
        ),
    ];
    let mut check = LaneCheck {
        ranks: k,
        cases: Vec::new(),
        exchanges: 2,
        elements: 0,
        mismatches: 0,
    };
    for (case, (l, name)) in layouts.iter().enumerate() {
        let (h, w, n) = (l.hidden(), l.width(), l.tokens);
        let ld = 3 * h + 4 * h;
        let to_heads = l.to_heads(3, ld);
        let to_tokens = l.to_tokens(h);
        let (a_len, b_len, e_len, d_len) = (l.shard() * ld, n * 3 * w, n * w, l.shard() * h);
        let tag = 0xC0DE + case as u64;
        let a_codes = |r: usize| (0..a_len).map(|i| code(tag, r, i)).collect::<Vec<f32>>();
        let e_codes = |r: usize| {
            (0..e_len)
                .map(|i| code(tag + 100, r, i))
                .collect::<Vec<f32>>()
        };
        let got = on_lanes(k, |rank, t| {
            let mut ops = GpuOps::new(dev)?;
            let a = ops.alloc(a_len)?;
            let b = ops.alloc(b_len)?;
            let e = ops.alloc(e_len)?;
            let d = ops.alloc(d_len)?;
            ops.write(a, &a_codes(rank))?;
            ops.write(e, &e_codes(rank))?;
            exchange_pair(
                &ops,
                t,
                (&to_heads, a, b),
                (&to_tokens, e, d),
                a_len,
                tag + rank as u64,
            )?;
            Ok((ops.read(b, b_len)?, ops.read(d, d_len)?))
        })?;
        let a_src: Vec<Vec<f32>> = (0..k).map(a_codes).collect();
        let e_src: Vec<Vec<f32>> = (0..k).map(e_codes).collect();
        let mut want_b = vec![vec![0.0f32; b_len]; k];
        let mut want_d = vec![vec![0.0f32; d_len]; k];
        ulysses::apply(&to_heads, &a_src, &mut want_b);
        ulysses::apply(&to_tokens, &e_src, &mut want_d);
        for (r, (gb, gd)) in got.iter().enumerate() {
            for (g, w) in [(gb, &want_b[r]), (gd, &want_d[r])] {
                check.elements += w.len();
                check.mismatches += g
                    .iter()
                    .zip(w.iter())
                    .filter(|(x, y)| x.to_bits() != y.to_bits())
                    .count()
                    + w.len().abs_diff(g.len());
            }
        }
        check.cases.push((*name).to_string());
    }
    Ok(check)
}

/// Two exchanges back to back on one lane, with the first one's source overwritten by a
/// kernel in between (values the host never expects to see in any destination).
fn exchange_pair(
    ops: &GpuOps,
    t: &mut LaneTransport,
    (first, a, b): (&[Block], Ptr, Ptr),
    (second, e, d): (&[Block], Ptr, Ptr),
    a_len: usize,
    seed: u64,
) -> Result<()> {
    t.exchange(ops, first, a, b)?;
    ops.fill_uniform(a, a_len, seed, 1.0)?;
    t.exchange(ops, second, e, d)
}

/// One latent hand-off measurement (see [`hand_off`]).
#[derive(Clone, Debug)]
pub struct HandOff {
    pub res: Resolution,
    pub bytes: usize,
    /// Download then upload through the host: how the executor moves a latent between works.
    pub host_ms: f64,
    /// A device-to-device copy: what a hand-off within one GPU (or a peer copy) costs.
    pub device_ms: f64,
}

/// Times moving one FLUX latent (`tokens x 64` bf16) per resolution, median of 5 after one
/// warm-up: through the host and device to device.
pub fn hand_off(gpu: &Gpu, resolutions: &[Resolution]) -> Result<Vec<HandOff>> {
    let err = |e: cudarc::driver::DriverError| Error::Executor(format!("hand-off timing: {e}"));
    let mut out = Vec::new();
    for &res in resolutions {
        let n = res.tokens() as usize * DitConfig::flux1_dev().latent_channels;
        let mut host = vec![0u16; n];
        let a = gpu.stream.alloc_zeros::<u16>(n).map_err(err)?;
        let mut b = gpu.stream.alloc_zeros::<u16>(n).map_err(err)?;
        let median = |mut f: Box<dyn FnMut() -> Result<()> + '_>| -> Result<f64> {
            f()?;
            let mut t: Vec<f64> = (0..5)
                .map(|_| {
                    let start = std::time::Instant::now();
                    f().map(|_| start.elapsed().as_secs_f64() * 1e3)
                })
                .collect::<Result<_>>()?;
            t.sort_by(f64::total_cmp);
            Ok(t[2])
        };
        let host_ms = median(Box::new(|| {
            gpu.stream.memcpy_dtoh(&a, &mut host).map_err(err)?;
            gpu.synchronize()?;
            let up = gpu.stream.clone_htod(&host).map_err(err)?;
            gpu.synchronize()?;
            drop(up);
            Ok(())
        }))?;
        let device_ms = median(Box::new(|| {
            gpu.stream.memcpy_dtod(&a, &mut b).map_err(err)?;
            gpu.synchronize()
        }))?;
        out.push(HandOff {
            res,
            bytes: 2 * n,
            host_ms,
            device_ms,
        });
    }
    Ok(out)
}

/// One measured profile row.
#[derive(Clone, Debug)]
pub struct Measured {
    pub res: Resolution,
    pub degree: u32,
    pub batch: u32,
    pub median_ms: f64,
    pub std_ms: f64,
    pub source: String,
    /// The attention backends that ran this row's shapes.
    pub attention: Vec<Backend>,
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct ProfilePlan {
    pub resolutions: Vec<Resolution>,
    pub batches: Vec<u32>,
    pub degrees: Vec<u32>,
    pub warmup: usize,
    pub repeats: usize,
}

impl ProfilePlan {
    /// The full default plan: 256-2048 px, batches 1, 2, 4, SP 1-8.
    pub fn full() -> ProfilePlan {
        ProfilePlan {
            resolutions: [256, 512, 1024, 2048].map(Resolution::square).to_vec(),
            batches: vec![1, 2, 4],
            degrees: vec![1, 2, 4, 8],
            warmup: 2,
            repeats: 5,
        }
    }

    /// The quick preset for a first profile (under two minutes for FLUX.1-dev on an H100-class
    /// GPU, by the step times measured so far): batch 1 only, SP 1 and the emulated degrees,
    /// one warm-up and three timed steps.
    pub fn quick() -> ProfilePlan {
        ProfilePlan {
            batches: vec![1],
            warmup: 1,
            repeats: 3,
            ..ProfilePlan::full()
        }
    }

    /// Every configuration in measuring order: (resolution, batch, degree).
    pub fn configs(&self) -> Vec<(Resolution, u32, u32)> {
        let mut out = Vec::new();
        for &res in &self.resolutions {
            for &batch in &self.batches {
                for &degree in &self.degrees {
                    out.push((res, batch, degree));
                }
            }
        }
        out
    }
}

/// A configuration's expected cost relative to the others, for the ETA: tokens through the
/// linear layers plus attention's quadratic part (comparable at FLUX.1-dev's 1024 px), per
/// rank's share.
pub fn config_weight(res: Resolution, batch: u32, degree: u32) -> f64 {
    let n = res.tokens() as f64 + 512.0;
    f64::from(batch) * n * (1.0 + n / 4608.0) / f64::from(degree.max(1))
}

/// Where a profile run stands after `done` of `configs`, `elapsed` seconds in.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    /// Seconds left, estimated from the time so far and the weights of the configurations
    /// done and left ([`config_weight`]); `None` before the first is done.
    pub eta_s: Option<f64>,
}

impl Progress {
    pub fn after(configs: &[(Resolution, u32, u32)], done: usize, elapsed_s: f64) -> Progress {
        let w = |c: &[(Resolution, u32, u32)]| -> f64 {
            c.iter().map(|&(r, b, k)| config_weight(r, b, k)).sum()
        };
        let done = done.min(configs.len());
        let (did, left) = (w(&configs[..done]), w(&configs[done..]));
        Progress {
            done,
            total: configs.len(),
            eta_s: (done > 0 && did > 0.0).then(|| elapsed_s * left / did),
        }
    }

    /// `i/N` and the ETA, e.g. `[3/16, ETA 1m05s]`.
    pub fn label(&self) -> String {
        match self.eta_s {
            Some(s) => {
                let s = s.round() as u64;
                format!(
                    "[{}/{}, ETA {}m{:02}s]",
                    self.done,
                    self.total,
                    s / 60,
                    s % 60
                )
            }
            None => format!("[{}/{}]", self.done, self.total),
        }
    }
}

/// Times `repeats` steps after `warmup` ones with CUDA events on `ops`'s stream; milliseconds
/// per step.
pub fn time_steps<T: Transport<GpuOps> + ?Sized>(
    ops: &GpuOps,
    w: &Weights,
    ws: &Workspace,
    t: &mut T,
    warmup: usize,
    repeats: usize,
) -> Result<Vec<f64>> {
    let err = |e: cudarc::driver::DriverError| Error::Executor(format!("timing steps: {e}"));
    for _ in 0..warmup {
        model::step(ops, w, ws, t, 0.0)?;
    }
    ops.synchronize()?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = ops.record_timing_event()?;
        model::step(ops, w, ws, t, 0.0)?;
        let end = ops.record_timing_event()?;
        end.synchronize().map_err(err)?;
        times.push(f64::from(start.elapsed_ms(&end).map_err(err)?));
    }
    Ok(times)
}

/// Measures `plan` for `cfg` on `gpu`; calls `progress` after each row with where the run
/// stands (an error from it ends the run: the caller's output failed). Degree 1 times the
/// plain step; degree `k > 1` times rank 0's share of a `k`-way step and adds the modelled
/// all-to-all (see the module docs). Each row's workspace is freed before the next.
pub fn measure(
    gpu: Gpu,
    cfg: DitConfig,
    plan: &ProfilePlan,
    mut progress: impl FnMut(&Measured, &Progress) -> Result<()>,
) -> Result<Vec<Measured>> {
    let key = gpu_key(&gpu.name);
    let link_model = Analytic::preset(cfg.name, if key == "h200" { "h200" } else { "h100" }).ok();
    let dev = GpuDevice::from_gpu(gpu)?;
    let mut ops = GpuOps::new(&dev)?;
    let w = Weights::build(&mut ops, cfg.clone(), 1)?;
    let configs = plan.configs();
    let started = std::time::Instant::now();
    let mut rows = Vec::new();
    for (i, &(res, batch, degree)) in configs.iter().enumerate() {
        let k = degree.max(1) as usize;
        let mark = ops.mark();
        // Classifier-free guidance runs as a doubled batch.
        let ws = Workspace::new(&mut ops, &cfg, res, batch as usize * cfg.cfg_factor, k)?;
        let mut attention: Vec<Backend> = ws
            .attention_shapes(&cfg)
            .iter()
            .map(|s| ops.attention_backend_for(s))
            .collect();
        attention.sort();
        attention.dedup();
        for item in 0..ws.batch {
            model::load_inputs(&ops, &cfg, &ws, item, 100 + item as u64)?;
        }
        let repeats = plan.repeats.max(1);
        let t = if k == 1 {
            time_steps(&ops, &w, &ws, &mut Solo, plan.warmup, repeats)
        } else {
            let mut share = ShareOnly { rank: 0, ranks: k };
            time_steps(&ops, &w, &ws, &mut share, plan.warmup, repeats)
        };
        drop(ws);
        ops.release(mark)?;
        let mut t = t?;
        t.sort_by(f64::total_cmp);
        let median = t[t.len() / 2];
        let mean = t.iter().sum::<f64>() / t.len() as f64;
        let std = (t.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / t.len() as f64).sqrt();
        let (comm_ms, source) = if k == 1 {
            (0.0, "measured".to_string())
        } else {
            let comm = link_model
                .as_ref()
                .map(|m| m.breakdown(res, degree, batch, Link::NvLink).comm * 1e3)
                .ok_or_else(|| {
                    Error::Executor(format!("no link model for {} on {key}", cfg.name))
                })?;
            (comm, format!("emulated-sp{degree}"))
        };
        let row = Measured {
            res,
            degree,
            batch,
            median_ms: median + comm_ms,
            std_ms: std,
            source,
            attention,
        };
        progress(
            &row,
            &Progress::after(&configs, i + 1, started.elapsed().as_secs_f64()),
        )?;
        rows.push(row);
    }
    Ok(rows)
}

/// Writes a measured profile row by row, flushing each, so that an interrupted run keeps what
/// it measured in a file the profile reader accepts (a header with no rows is refused by the
/// reader, with its message, until the first row is in). The format is the one
/// `cost/profile/parse.rs` reads: `#` comments, [`PROFILE_HEADER`], one row per configuration.
pub struct ProfileWriter<W: std::io::Write> {
    out: W,
    model: String,
    gpu: String,
    /// The device's attention backend: rows whose shapes ran another get a comment.
    attention: Backend,
    what: String,
}

impl<W: std::io::Write> ProfileWriter<W> {
    /// Writes the header: where the numbers come from, the attention backend, the columns.
    /// `what` names the output in errors.
    pub fn new(
        mut out: W,
        what: &str,
        model: &str,
        gpu: &str,
        device_name: &str,
        attention: Backend,
    ) -> Result<Self> {
        let e = |err| Error::io(what, err);
        writeln!(
            out,
            "# Measured by `tetriserve profile` on {device_name}: median of repeated steps (CUDA events); emulated-spK rows add a modelled all-to-all to one rank's measured share."
        )
        .map_err(e)?;
        writeln!(
            out,
            "# attention: {} ({})",
            attention.name(),
            attention.describe()
        )
        .map_err(e)?;
        writeln!(out, "{PROFILE_HEADER}").map_err(e)?;
        out.flush().map_err(e)?;
        Ok(ProfileWriter {
            out,
            model: model.to_string(),
            gpu: gpu.to_string(),
            attention,
            what: what.to_string(),
        })
    }

    /// Appends one row (and a comment when some of its attention ran on another backend),
    /// flushed.
    pub fn row(&mut self, r: &Measured) -> Result<()> {
        let e = |err| Error::io(&self.what, err);
        if r.attention.iter().any(|&b| b != self.attention) {
            let names: Vec<&str> = r.attention.iter().map(|b| b.name()).collect();
            writeln!(
                self.out,
                "# {} SP{} batch {}: attention ran on {}",
                r.res,
                r.degree,
                r.batch,
                names.join(" + ")
            )
            .map_err(e)?;
        }
        writeln!(
            self.out,
            "{},{},{},{},{},{},{:.4},{:.4},{},nvlink",
            self.model,
            self.gpu,
            r.res.width,
            r.res.height,
            r.degree,
            r.batch,
            r.median_ms,
            r.std_ms,
            r.source
        )
        .map_err(e)?;
        self.out.flush().map_err(e)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The rows as a profile CSV the simulator reads (what [`ProfileWriter`] writes).
pub fn to_csv(
    model: &str,
    gpu: &str,
    device_name: &str,
    attention: Backend,
    rows: &[Measured],
) -> String {
    let mut w = ProfileWriter::new(Vec::new(), "<memory>", model, gpu, device_name, attention)
        .expect("writing to memory");
    for r in rows {
        w.row(r).expect("writing to memory");
    }
    String::from_utf8(w.into_inner()).expect("UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::profile::ProfileTable;

    #[test]
    fn gpu_names_map_to_profile_keys() {
        assert_eq!(gpu_key("NVIDIA H100 80GB HBM3"), "h100");
        assert_eq!(gpu_key("NVIDIA H200"), "h200");
        assert_eq!(gpu_key("NVIDIA A40"), "a40");
    }

    #[test]
    fn relative_error_of_known_vectors() {
        assert_eq!(relative_error(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!((relative_error(&[1.1, 0.0], &[1.0, 0.0]) - 0.1).abs() < 1e-6);
        assert!(relative_error(&[f32::NAN, 0.0], &[1.0, 0.0]).is_infinite());
    }

    #[test]
    fn measured_csv_is_a_valid_profile() {
        let rows = vec![
            Measured {
                res: Resolution::square(256),
                degree: 1,
                batch: 1,
                median_ms: 30.0,
                std_ms: 0.1,
                source: "measured".into(),
                attention: vec![Backend::CudnnFlash],
            },
            Measured {
                res: Resolution::square(256),
                degree: 2,
                batch: 1,
                median_ms: 20.0,
                std_ms: 0.1,
                source: "emulated-sp2".into(),
                attention: vec![Backend::FusedSoftmax],
            },
        ];
        let csv = to_csv(
            "flux1-dev",
            "h100",
            "NVIDIA H100",
            Backend::CudnnFlash,
            &rows,
        );
        let table = ProfileTable::parse(&csv, "<measured>").unwrap();
        assert_eq!(table.rows().len(), 2);
        assert_eq!(table.gpu(), "h100");
        assert!(csv.contains("# attention: cudnn (cuDNN fused flash attention)"));
        assert!(csv.contains("# 256x256 SP2 batch 1: attention ran on fused"));
        assert!(
            !csv.contains("SP1 batch 1: attention"),
            "only rows that differ"
        );
    }

    /// A writer that takes `room` bytes and then fails, like a disk that fills up.
    struct Failing {
        buf: Vec<u8>,
        room: usize,
    }

    impl std::io::Write for Failing {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.buf.len() + b.len() > self.room {
                return Err(std::io::Error::other("disk full"));
            }
            self.buf.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn row(px: u32, degree: u32, ms: f64) -> Measured {
        Measured {
            res: Resolution::square(px),
            degree,
            batch: 1,
            median_ms: ms,
            std_ms: 0.01,
            source: if degree == 1 {
                "measured".into()
            } else {
                format!("emulated-sp{degree}")
            },
            attention: vec![Backend::FusedSoftmax],
        }
    }

    #[test]
    fn an_interrupted_profile_keeps_its_rows_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        let file = std::fs::File::create(&path).unwrap();
        let mut w = ProfileWriter::new(
            file,
            "p.csv",
            "flux1-dev",
            "h200",
            "NVIDIA H200",
            Backend::FusedSoftmax,
        )
        .unwrap();
        // Before any row: the reader refuses the file with its own message.
        let text = std::fs::read_to_string(&path).unwrap();
        let e = ProfileTable::parse(&text, "p.csv").unwrap_err().to_string();
        assert!(e.contains("no rows"), "{e}");
        // Each row is on disk as soon as it is written (the run may die right after).
        w.row(&row(256, 1, 30.5)).unwrap();
        let t1 = ProfileTable::parse(&std::fs::read_to_string(&path).unwrap(), "p.csv").unwrap();
        assert_eq!(t1.rows().len(), 1);
        w.row(&row(256, 2, 18.25)).unwrap();
        drop(w); // killed here: nothing is written at the end
        let t2 = ProfileTable::parse(&std::fs::read_to_string(&path).unwrap(), "p.csv").unwrap();
        assert_eq!(t2.rows().len(), 2);
        assert_eq!(t2.gpu(), "h200");
        // A failing output is an error naming it, never a panic.
        let header = to_csv("m", "g", "d", Backend::Unfused, &[]).len();
        let mut failing = ProfileWriter::new(
            Failing {
                buf: Vec::new(),
                room: header,
            },
            "out.csv",
            "m",
            "g",
            "d",
            Backend::Unfused,
        )
        .unwrap();
        let e = failing.row(&row(512, 1, 1.0)).unwrap_err().to_string();
        assert!(e.contains("out.csv") && e.contains("disk full"), "{e}");
    }

    #[test]
    fn progress_counts_and_weights_the_eta_by_configuration_cost() {
        let plan = ProfilePlan::quick();
        let configs = plan.configs();
        assert_eq!(configs.len(), 16, "4 resolutions x batch 1 x SP 1-8");
        assert!(plan.batches == [1] && plan.degrees.contains(&1) && plan.degrees.len() > 1);
        assert_eq!(Progress::after(&configs, 0, 0.0).label(), "[0/16]");
        // After the first (cheapest) config took 1 s, the rest (2048 px among them) take far
        // more than 15 s: the ETA weighs what is left.
        let p = Progress::after(&configs, 1, 1.0);
        assert_eq!((p.done, p.total), (1, 16));
        let eta = p.eta_s.unwrap();
        let w = |r, b, k| config_weight(Resolution::square(r), b, k);
        let total: f64 = configs
            .iter()
            .map(|&(r, b, k)| config_weight(r, b, k))
            .sum();
        let want = (total - w(256, 1, 1)) / w(256, 1, 1);
        assert!((eta - want).abs() < 1e-9 && eta > 15.0, "{eta}");
        assert_eq!(Progress::after(&configs, 16, 60.0).eta_s, Some(0.0));
        assert_eq!(
            Progress::after(&configs, 16, 60.0).label(),
            "[16/16, ETA 0m00s]"
        );
        // Hand-computed weight: 1024 px = 4096 + 512 tokens, (1 + 1) per token, halved at SP2.
        assert!((w(1024, 1, 2) - 4608.0).abs() < 1e-9);
        assert_eq!(ProfilePlan::full().configs().len(), 48);
    }
}
