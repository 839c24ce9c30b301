//! `tetriserve gpu-check`: the local GPU probed, the kernels, every attention backend (cuDNN
//! flash, fused softmax, unfused: [`attention`]), lane transport and Ulysses
//! groups checked against the CPU reference, each attention backend and the latent hand-off
//! timed, and NCCL self-tested where there are two or more devices; a Markdown report written
//! as each check finishes.
//!
//! A check that fails ends the report with an error; nothing here is a benchmark (those are
//! `tetriserve profile` and `scripts/gpu-check.sh`).
//!
//! The checks, each a function returning what it measured (the report is
//! [`gpu_check`]'s, one phase per table):
//!
//! - [`numerics`]: the tiny model on the GPU (one rank, [`Solo`]) against [`CpuDit::step`];
//! - [`attention_numerics`], [`attention_timing`]: every attention backend against the CPU
//!   reference, and timed at FLUX.1-dev's shapes;
//! - [`ulysses_numerics`]: `k` lanes of the GPU (`k` threads, one stream and one
//!   [`LaneTransport`] each, meeting at a [`Rendezvous`]) run a `k`-way Ulysses step; the
//!   reassembled velocity must equal the plain step's and [`CpuDit::step_ulysses`]'s;
//! - [`lane_exchange_check`]: the lane transport alone: every element of two all-to-alls run
//!   back to back, checked against [`ulysses::apply`] on the host;
//! - [`hand_off`]: moving a latent through the host and device to device, timed.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::real::config::DitConfig;
use crate::real::device::Gpu;
use crate::real::gpu::attention::{self, Backend};
use crate::real::gpu::{GpuDevice, GpuOps};
use crate::real::init::splitmix;
use crate::real::lanes::LaneTransport;
use crate::real::model::{self, Weights, Workspace};
use crate::real::ops::{AttentionShape, Ops, Ptr};
use crate::real::reference::{CpuDit, CpuInputs};
use crate::real::transport::{Rendezvous, Solo, Transport};
use crate::real::ulysses::{self, Block, Layout};
use crate::workload::Resolution;

/// Writes `writeln!` to `out`, turning a write failure into the command's error.
macro_rules! say {
    ($out:expr) => {
        writeln!($out).map_err(|e| Error::io("<stdout>", e))?
    };
    ($out:expr, $($t:tt)*) => {
        writeln!($out, $($t)*).map_err(|e| Error::io("<stdout>", e))?
    };
}

/// Runs every check on device 0 (NCCL on all devices), reporting to `out` as it goes.
pub fn gpu_check(out: &mut dyn Write) -> Result<()> {
    let probe = super::device::probe()?;
    say!(
        out,
        "devices: {} ({}, compute capability {}.{})",
        probe.devices,
        probe.name,
        probe.capability.0,
        probe.capability.1
    );
    let dev = GpuDevice::open(0)?;
    report_numerics(out, &dev)?;
    report_attention(out, &dev)?;
    report_lanes(out, &dev)?;
    report_ulysses(out, &dev)?;
    drop(dev);
    report_hand_off(out)?;
    report_nccl(out, probe.devices)
}

/// The tiny model on the GPU against the CPU reference; an error past bf16 tolerance.
fn report_numerics(out: &mut dyn Write, dev: &GpuDevice) -> Result<()> {
    let checks = numerics(dev)?;
    say!(out, "| case | relative error vs CPU reference |");
    say!(out, "|---|---|");
    let mut worst = 0.0f64;
    for c in &checks {
        say!(out, "| {} | {:.2e} |", c.case, c.relative_error);
        worst = worst.max(c.relative_error);
    }
    if worst > 0.05 || !worst.is_finite() {
        return Err(Error::Executor(format!(
            "GPU output differs from the CPU reference: worst relative error {worst:.3e} > 5e-2"
        )));
    }
    say!(out, "numerics: ok (worst {worst:.2e}, bf16 tolerance 5e-2)");
    Ok(())
}

/// Every attention backend against the CPU reference (an error past bf16 tolerance), then
/// each one timed at FLUX.1-dev's shapes.
fn report_attention(out: &mut dyn Write, dev: &GpuDevice) -> Result<()> {
    say!(
        out,
        "\nAttention backends against the CPU reference (2 heads of 128, bf16 inputs; this device starts with: {}):",
        dev.attention.backend.describe()
    );
    say!(
        out,
        "| tokens | backend asked | backend that ran | relative error |"
    );
    say!(out, "|---|---|---|---|");
    let mut worst_attn = 0.0f64;
    for c in attention_numerics(dev)? {
        say!(
            out,
            "| {} | {} | {} | {:.2e} |",
            c.tokens,
            c.requested.name(),
            c.ran.name(),
            c.relative_error
        );
        worst_attn = worst_attn.max(c.relative_error);
    }
    if worst_attn > 0.05 || !worst_attn.is_finite() {
        return Err(Error::Executor(format!(
            "an attention backend differs from the CPU reference: worst relative error {worst_attn:.3e} > 5e-2"
        )));
    }
    say!(
        out,
        "attention: ok (worst {worst_attn:.2e}, bf16 tolerance 5e-2)"
    );
    say!(
        out,
        "\nOne attention call of FLUX.1-dev (24 heads of 128, one image; median of 5, CUDA events):"
    );
    say!(
        out,
        "| px | tokens | backend asked | ran | ms | TFLOP/s (4 N^2 H) |"
    );
    say!(out, "|---|---|---|---|---|---|");
    for t in attention_timing(dev, &[1024, 2048])? {
        say!(
            out,
            "| {} | {} | {} | {} | {:.3} | {:.0} |",
            t.px,
            t.tokens,
            t.requested.name(),
            t.ran.name(),
            t.ms,
            t.tflops
        );
    }
    Ok(())
}

/// The lane transport's exchanges, element by element; an error on any mismatch.
fn report_lanes(out: &mut dyn Write, dev: &GpuDevice) -> Result<()> {
    say!(
        out,
        "\nLane transport on one GPU (k lanes = k threads, each a stream; the all-to-alls as device copies ordered by events): two exchanges back to back, every element checked against the host all-to-all:"
    );
    say!(
        out,
        "| lanes | layouts | exchanges | elements checked | mismatches |"
    );
    say!(out, "|---|---|---|---|---|");
    let mut bad = 0usize;
    for k in [2, 4, 8] {
        let c = lane_exchange_check(dev, k)?;
        say!(
            out,
            "| {} | {} | {} | {} | {} |",
            c.ranks,
            c.cases.join("; "),
            c.exchanges,
            c.elements,
            c.mismatches
        );
        bad += c.mismatches;
    }
    if bad > 0 {
        return Err(Error::Executor(format!(
            "the lane transport delivered {bad} wrong element(s)"
        )));
    }
    say!(out, "lane exchanges: ok");
    Ok(())
}

/// Ulysses groups on lanes against the plain step and the CPU ranks; an error past bf16
/// tolerance.
fn report_ulysses(out: &mut dyn Write, dev: &GpuDevice) -> Result<()> {
    say!(
        out,
        "\nUlysses SP on GPU lanes (a k-lane group runs the step; velocities reassembled):"
    );
    let sp = ulysses_numerics(dev)?;
    say!(
        out,
        "| case | ranks | relative error vs plain step (GPU) | vs CPU reference on the same ranks |"
    );
    say!(out, "|---|---|---|---|");
    let mut worst_sp = 0.0f64;
    for c in &sp {
        say!(
            out,
            "| {} | {} | {:.2e} | {:.2e} |",
            c.case,
            c.ranks,
            c.vs_plain,
            c.vs_cpu
        );
        worst_sp = worst_sp.max(c.vs_plain).max(c.vs_cpu);
    }
    if worst_sp > 0.05 || !worst_sp.is_finite() {
        return Err(Error::Executor(format!(
            "a Ulysses step on lanes differs from the plain one: worst relative error {worst_sp:.3e} > 5e-2"
        )));
    }
    say!(
        out,
        "ulysses: ok (worst {worst_sp:.2e}, bf16 tolerance 5e-2)"
    );
    Ok(())
}

/// The latent hand-off timed beside what the simulator charges for it.
fn report_hand_off(out: &mut dyn Write) -> Result<()> {
    // Degree changes move a request's latent; the simulator charges a fraction of a step.
    let gpu = Gpu::open(0)?;
    let shipped = crate::cost::profile::ProfileTable::builtin("h100-flux1-dev")
        .ok_or_else(|| Error::config("the built-in H100 profile is missing"))?;
    let remap = crate::cost::Overheads::default().remap_fraction;
    let resolutions: Vec<Resolution> = [256, 512, 1024, 2048]
        .into_iter()
        .map(Resolution::square)
        .collect();
    say!(
        out,
        "\nLatent hand-off (a degree change moves the latent; median of 5):\n| resolution | latent MB | via host, ms | device copy, ms | simulator charges, ms ({:.2}% of an SP1 step, shipped H100 profile) |\n|---|---|---|---|---|",
        100.0 * remap
    );
    for h in hand_off(&gpu, &resolutions)? {
        use crate::cost::CostModel;
        let step = shipped
            .step_time(h.res, 1, 1, crate::cluster::Link::NvLink)
            .map(|t| t.0 as f64 / 1e6)
            .unwrap_or(f64::NAN);
        say!(
            out,
            "| {} | {:.2} | {:.3} | {:.3} | {:.3} |",
            h.res,
            h.bytes as f64 / 1e6,
            h.host_ms,
            h.device_ms,
            remap * step
        );
    }
    Ok(())
}

/// NCCL's self-test on every device, where there are two or more.
fn report_nccl(out: &mut dyn Write, devices: usize) -> Result<()> {
    if devices >= 2 {
        let t = super::nccl::self_test(devices)?;
        say!(
            out,
            "\nNCCL on {} of {} devices: communicators created in {:.1} ms; Ulysses q/k/v all-to-all of FLUX.1-dev at 1024 px ({:.1} MB sent per rank) verified, {:.3} ms; 2048 px latent device 0 -> 1 ({:.1} MB) {:.3} ms",
            t.ranks,
            t.devices,
            t.create_ms,
            t.exchange_mb,
            t.exchange_ms,
            t.latent_mb,
            t.latent_ms
        );
    } else {
        say!(
            out,
            "\nNCCL: not run (one device; the multi-GPU Ulysses exchange needs two or more)"
        );
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_error_of_known_vectors() {
        assert_eq!(relative_error(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!((relative_error(&[1.1, 0.0], &[1.0, 0.0]) - 0.1).abs() < 1e-6);
        assert!(relative_error(&[f32::NAN, 0.0], &[1.0, 0.0]).is_infinite());
    }
}
