//! The DiT on one GPU: seeded bf16 weights, a workspace per (resolution, batch), and the
//! denoising step of [`reference`](super::reference) with cuBLAS GEMMs (bf16 in, f32
//! accumulate) and the kernels of `kernels/`.
//!
//! Layouts are row-major with raw device pointers: the joint sequence `x` is `[B, N, H]`,
//! text rows first. cuBLAS is column-major, so a row-major `Y[M, out] = X[M, in] . W[in, out]`
//! is issued as the column-major `Y^T = W^T . X^T` (no transposes are materialised).
//! Attention is chunked over queries: for a chunk of `cq` queries, one strided-batched GEMM
//! over heads gives the f32 scores `[heads, cq, N]`, the softmax kernel turns them into bf16
//! probabilities, a second strided-batched GEMM multiplies by V. Memory stays bounded at 2048
//! px (scores for 24 heads x 512 queries x 16,896 keys: 0.8 GB).
//!
//! `share = k > 1` runs one rank's part of a k-way Ulysses step for profiling: the linear
//! layers and element-wise kernels on `1/k` of the rows, attention on `1/k` of the heads over
//! all tokens (the all-to-all itself is not run; [`profile`](super::profile) adds its time).
//!
//! `ranks = k > 1` ([`GpuDit::emulated_workspace`]) runs a whole k-way Ulysses step with the k
//! ranks emulated one after another on this GPU: RoPE on each rank's token shard, the
//! all-to-all of [`ulysses`](super::ulysses) as device copies into per-rank head-shard buffers,
//! attention of each rank on its heads, and the all-to-all back. Row-wise work is the same
//! kernels on the same rows either way. Its output must equal the plain step's within bf16
//! rounding, which checks the SP layout on any single GPU (`tetriserve gpu-check`).

use std::ffi::c_void;

use cudarc::cublas::sys::{
    cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType_t,
};
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaSlice, DevicePtr, LaunchConfig, PushKernelArg};

use crate::error::{Error, Result};
use crate::real::config::{DitConfig, LinearSpec};
use crate::real::device::Gpu;
use crate::real::init::{rope_tables, tensor_seed};
use crate::real::kernels::Kernel;
use crate::real::ulysses::Layout;
use crate::workload::Resolution;

/// A device address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct P(u64);

impl P {
    /// `elems` bf16 values further.
    fn bf(self, elems: usize) -> P {
        P(self.0 + 2 * elems as u64)
    }

    /// `elems` f32 values further.
    fn f32(self, elems: usize) -> P {
        P(self.0 + 4 * elems as u64)
    }
}

/// An owned device allocation and its address.
struct Buf {
    _mem: CudaSlice<u8>,
    ptr: P,
}

impl Buf {
    fn new(gpu: &Gpu, bytes: usize) -> Result<Buf> {
        let mem = gpu.stream.alloc_zeros::<u8>(bytes.max(256)).map_err(|e| {
            Error::Executor(format!(
                "allocating {} MB on {}: {e}",
                bytes >> 20,
                gpu.name
            ))
        })?;
        let ptr = {
            let (ptr, _sync) = mem.device_ptr(&gpu.stream);
            ptr
        };
        Ok(Buf {
            ptr: P(ptr),
            _mem: mem,
        })
    }
}

struct Linear {
    w: Buf,
    b: Buf,
    inp: usize,
    out: usize,
}

/// The model's weights on one GPU.
pub struct GpuDit {
    pub gpu: Gpu,
    pub cfg: DitConfig,
    layers: Vec<Linear>,
}

/// Buffers for one (resolution, batch, share) and, with emulated Ulysses ranks, the
/// per-rank head-shard buffers.
pub struct Workspace {
    pub res: Resolution,
    pub batch: usize,
    pub share: usize,
    /// Emulated Ulysses ranks (1: a plain step).
    pub ranks: usize,
    ulysses: Option<Ulysses>,
    nt: usize,
    ni: usize,
    /// Queries per attention chunk.
    cq: usize,
    x: Buf,
    h: Buf,
    big: Buf,
    attn: Buf,
    y: Buf,
    mid: Buf,
    scores: Buf,
    probs: Buf,
    mods: Buf,
    vs: Buf,
    vec: Buf,
    txt: Buf,
    latent: Buf,
    v: Buf,
    cos: Buf,
    sin: Buf,
}

/// The emulated ranks' layout and their head-shard buffers: q, k, v in (`ranks x N x 3w`
/// bf16, rank-major) and the attention outputs (`ranks x N x w`).
struct Ulysses {
    layout: Layout,
    heads_in: Buf,
    heads_out: Buf,
}

const THREADS: u32 = 256;

fn grid_for(n: usize) -> u32 {
    (n.div_ceil(THREADS as usize)).clamp(1, 1 << 20) as u32
}

impl GpuDit {
    /// Allocates the model on `gpu` and fills every weight from `seed` on the device.
    pub fn new(gpu: Gpu, cfg: DitConfig, seed: u64) -> Result<GpuDit> {
        let mut layers = Vec::new();
        for (i, spec) in cfg.linears().into_iter().enumerate() {
            let w = Buf::new(&gpu, 2 * spec.inp * spec.out)?;
            let b = Buf::new(&gpu, 2 * spec.out)?;
            fill(
                &gpu,
                w.ptr,
                spec.inp * spec.out,
                tensor_seed(seed, 2 * i as u64),
                spec.weight_scale(),
            )?;
            fill(
                &gpu,
                b.ptr,
                spec.out,
                tensor_seed(seed, 2 * i as u64 + 1),
                LinearSpec::BIAS_SCALE,
            )?;
            layers.push(Linear {
                w,
                b,
                inp: spec.inp,
                out: spec.out,
            });
        }
        gpu.synchronize()?;
        Ok(GpuDit { gpu, cfg, layers })
    }

    /// Buffers for `batch` requests at `res`, running a whole step as `ranks` Ulysses ranks
    /// emulated on this GPU (see the module docs). `ranks` must divide the heads.
    pub fn emulated_workspace(
        &self,
        res: Resolution,
        batch: usize,
        ranks: usize,
    ) -> Result<Workspace> {
        let mut ws = self.workspace(res, batch, 1)?;
        if ranks > 1 {
            let n = ws.nt + ws.ni;
            let layout = Layout::new(n, self.cfg.heads, self.cfg.head_dim(), ranks)?;
            let w = layout.width();
            ws.ulysses = Some(Ulysses {
                layout,
                heads_in: Buf::new(&self.gpu, 2 * ranks * n * 3 * w)?,
                heads_out: Buf::new(&self.gpu, 2 * ranks * n * w)?,
            });
            ws.ranks = ranks;
        }
        Ok(ws)
    }

    /// Buffers for `batch` requests at `res`, running share `1/share` of each step.
    pub fn workspace(&self, res: Resolution, batch: usize, share: usize) -> Result<Workspace> {
        let g = &self.gpu;
        let cfg = &self.cfg;
        let (h, m, c) = (cfg.hidden, cfg.mlp(), cfg.latent_channels);
        let (nt, ni) = (cfg.text_tokens, cfg.image_tokens(res));
        let n = nt + ni;
        let share = share.max(1);
        let heads = (cfg.heads / share).max(1);
        // Scores of one chunk: heads x cq x N f32, kept near 1.5 GB.
        let cq = ((1_500_000_000 / (heads * n * 6)).max(64) / 64 * 64)
            .min(n)
            .max(1);
        let bf = |elems: usize| Buf::new(g, 2 * elems);
        let (cos, sin) = rope_tables(nt, res, cfg.head_dim());
        let cos_buf = Buf::new(g, 4 * cos.len())?;
        let sin_buf = Buf::new(g, 4 * sin.len())?;
        upload_f32(g, cos_buf.ptr, &cos)?;
        upload_f32(g, sin_buf.ptr, &sin)?;
        Ok(Workspace {
            res,
            batch,
            share,
            ranks: 1,
            ulysses: None,
            nt,
            ni,
            cq,
            x: bf(batch * n * h)?,
            h: bf(batch * n * h)?,
            big: bf(batch * n * (3 * h + m))?,
            attn: bf(batch * n * h)?,
            y: bf(n * h)?,
            mid: bf(n * m)?,
            scores: Buf::new(g, 4 * heads * cq * n)?,
            probs: bf(heads * cq * n)?,
            mods: bf(2 * batch * 6 * h)?,
            vs: bf(batch * h)?,
            vec: bf(batch * h)?,
            txt: bf(batch * nt * h)?,
            latent: bf(batch * ni * c)?,
            v: bf(batch * ni * c)?,
            cos: cos_buf,
            sin: sin_buf,
        })
    }

    /// Draws batch item `item`'s inputs (latent, text embedding, conditioning vector) from
    /// request seed `seed`, as [`CpuInputs::seeded`](super::reference::CpuInputs::seeded).
    pub fn load_inputs(&self, ws: &Workspace, item: usize, seed: u64) -> Result<()> {
        let cfg = &self.cfg;
        let (h, c) = (cfg.hidden, cfg.latent_channels);
        fill(
            &self.gpu,
            ws.latent.ptr.bf(item * ws.ni * c),
            ws.ni * c,
            tensor_seed(seed, 0),
            1.0,
        )?;
        fill(
            &self.gpu,
            ws.txt.ptr.bf(item * ws.nt * h),
            ws.nt * h,
            tensor_seed(seed, 1),
            1.0,
        )?;
        fill(
            &self.gpu,
            ws.vec.ptr.bf(item * h),
            h,
            tensor_seed(seed, 2),
            1.0,
        )
    }

    /// Queues one denoising step of every batch item (returns before the GPU finishes).
    pub fn step(&self, ws: &Workspace, dt: f32) -> Result<()> {
        let g = &self.gpu;
        let cfg = &self.cfg;
        let (h, m, c) = (cfg.hidden, cfg.mlp(), cfg.latent_channels);
        let (nt, ni, bsz, k) = (ws.nt, ws.ni, ws.batch, ws.share);
        let n = nt + ni;
        let part = |rows: usize| rows.div_ceil(k);
        let (ldq, ldp) = (3 * h, 3 * h + m);
        let layers = &self.layers;
        let mut li = 0usize;
        macro_rules! next {
            () => {{
                li += 1;
                layers
                    .get(li - 1)
                    .ok_or_else(|| Error::Executor("layer list shorter than the config".into()))
            }};
        }

        // Inputs: text embedding, projected latent, silu(vec).
        let l_in = next!()?;
        for b in 0..bsz {
            let xb = ws.x.ptr.bf(b * n * h);
            copy(g, xb, ws.txt.ptr.bf(b * nt * h), 2 * part(nt) * h)?;
            self.linear(
                ws.latent.ptr.bf(b * ni * c),
                c,
                l_in,
                xb.bf(nt * h),
                h,
                part(ni),
                0.0,
            )?;
            bias(
                g,
                Kernel::BiasAdd,
                xb.bf(nt * h),
                l_in.b.ptr,
                part(ni),
                h,
                h,
            )?;
        }
        elementwise(
            g,
            Kernel::Silu,
            bsz * h,
            &[A::P(ws.vec.ptr), A::P(ws.vs.ptr), A::I64((bsz * h) as i64)],
        )?;

        for _ in 0..cfg.double_blocks {
            let mut streams = Vec::with_capacity(2);
            for _ in 0..2 {
                streams.push([next!()?, next!()?, next!()?, next!()?, next!()?]);
            }
            let rows = [(0, nt), (nt, ni)];
            for (s, l) in streams.iter().enumerate() {
                let md = ws.mods.ptr.bf(s * bsz * 6 * h);
                self.linear(ws.vs.ptr, h, l[0], md, 6 * h, bsz, 0.0)?;
                bias(g, Kernel::BiasAdd, md, l[0].b.ptr, bsz, 6 * h, 6 * h)?;
            }
            for (s, &(off, len)) in rows.iter().enumerate() {
                for b in 0..bsz {
                    let md = ws.mods.ptr.bf((s * bsz + b) * 6 * h);
                    let (xb, hb, qb) = (
                        ws.x.ptr.bf((b * n + off) * h),
                        ws.h.ptr.bf((b * n + off) * h),
                        ws.big.ptr.bf((b * n + off) * ldq),
                    );
                    layernorm(g, xb, hb, md, md.bf(h), part(len), h)?;
                    self.linear(hb, h, streams[s][1], qb, ldq, part(len), 0.0)?;
                    bias(
                        g,
                        Kernel::BiasAdd,
                        qb,
                        streams[s][1].b.ptr,
                        part(len),
                        3 * h,
                        ldq,
                    )?;
                }
            }
            for b in 0..bsz {
                self.attend(
                    ws,
                    ws.big.ptr.bf(b * n * ldq),
                    ldq,
                    ws.attn.ptr.bf(b * n * h),
                )?;
            }
            for (s, &(off, len)) in rows.iter().enumerate() {
                let l = &streams[s];
                for b in 0..bsz {
                    let md = ws.mods.ptr.bf((s * bsz + b) * 6 * h);
                    let (xb, hb) = (
                        ws.x.ptr.bf((b * n + off) * h),
                        ws.h.ptr.bf((b * n + off) * h),
                    );
                    self.linear(
                        ws.attn.ptr.bf((b * n + off) * h),
                        h,
                        l[2],
                        ws.y.ptr,
                        h,
                        part(len),
                        0.0,
                    )?;
                    residual(g, xb, ws.y.ptr, l[2].b.ptr, md.bf(2 * h), part(len), h)?;
                    layernorm(g, xb, hb, md.bf(3 * h), md.bf(4 * h), part(len), h)?;
                    self.linear(hb, h, l[3], ws.mid.ptr, m, part(len), 0.0)?;
                    bias(g, Kernel::BiasGelu, ws.mid.ptr, l[3].b.ptr, part(len), m, m)?;
                    self.linear(ws.mid.ptr, m, l[4], ws.y.ptr, h, part(len), 0.0)?;
                    residual(g, xb, ws.y.ptr, l[4].b.ptr, md.bf(5 * h), part(len), h)?;
                }
            }
        }

        for _ in 0..cfg.single_blocks {
            let (lm, l1, l2) = (next!()?, next!()?, next!()?);
            self.linear(ws.vs.ptr, h, lm, ws.mods.ptr, 3 * h, bsz, 0.0)?;
            bias(g, Kernel::BiasAdd, ws.mods.ptr, lm.b.ptr, bsz, 3 * h, 3 * h)?;
            for b in 0..bsz {
                let md = ws.mods.ptr.bf(b * 3 * h);
                let (xb, hb, pb) = (
                    ws.x.ptr.bf(b * n * h),
                    ws.h.ptr.bf(b * n * h),
                    ws.big.ptr.bf(b * n * ldp),
                );
                layernorm(g, xb, hb, md, md.bf(h), part(n), h)?;
                self.linear(hb, h, l1, pb, ldp, part(n), 0.0)?;
                bias(g, Kernel::BiasAdd, pb, l1.b.ptr, part(n), 3 * h, ldp)?;
                bias(
                    g,
                    Kernel::BiasGelu,
                    pb.bf(3 * h),
                    l1.b.ptr.bf(3 * h),
                    part(n),
                    m,
                    ldp,
                )?;
                self.attend(ws, pb, ldp, ws.attn.ptr.bf(b * n * h))?;
                // [attn, mlp] . W2 as two GEMMs into y: rows [0, H) of W2, then rows [H, H + M).
                gemm(
                    g,
                    ws.attn.ptr.bf(b * n * h),
                    h,
                    l2.w.ptr,
                    h,
                    ws.y.ptr,
                    h,
                    part(n),
                    h,
                    h,
                    0.0,
                )?;
                gemm(
                    g,
                    pb.bf(3 * h),
                    ldp,
                    l2.w.ptr.bf(h * h),
                    h,
                    ws.y.ptr,
                    h,
                    part(n),
                    m,
                    h,
                    1.0,
                )?;
                residual(g, xb, ws.y.ptr, l2.b.ptr, md.bf(2 * h), part(n), h)?;
            }
        }

        let (lf, lo) = (next!()?, next!()?);
        self.linear(ws.vs.ptr, h, lf, ws.mods.ptr, 2 * h, bsz, 0.0)?;
        bias(g, Kernel::BiasAdd, ws.mods.ptr, lf.b.ptr, bsz, 2 * h, 2 * h)?;
        for b in 0..bsz {
            let md = ws.mods.ptr.bf(b * 2 * h);
            let (xb, hb) = (ws.x.ptr.bf((b * n + nt) * h), ws.h.ptr.bf((b * n + nt) * h));
            let (vb, lb) = (ws.v.ptr.bf(b * ni * c), ws.latent.ptr.bf(b * ni * c));
            layernorm(g, xb, hb, md, md.bf(h), part(ni), h)?;
            self.linear(hb, h, lo, vb, c, part(ni), 0.0)?;
            let args = [
                A::P(lb),
                A::P(vb),
                A::P(lo.b.ptr),
                A::F32(dt),
                A::I64(part(ni) as i64),
                A::I32(c as i32),
            ];
            elementwise(g, Kernel::FlowUpdate, part(ni) * c, &args)?;
        }
        Ok(())
    }

    /// Overwrites batch item `item`'s latent with `raw` (bf16 bits, `[Ni, C]`).
    pub fn set_latent(&self, ws: &Workspace, item: usize, raw: &[u16]) -> Result<()> {
        let n = ws.ni * self.cfg.latent_channels;
        if raw.len() != n {
            return Err(Error::Executor(format!(
                "latent of {} values for a {} image ({n} expected)",
                raw.len(),
                ws.res
            )));
        }
        // SAFETY: the latent slot holds n bf16 values; synchronising keeps `raw` alive long enough.
        unsafe {
            cudarc::driver::result::memcpy_htod_async(
                ws.latent.ptr.bf(item * n).0,
                raw,
                self.gpu.stream.cu_stream(),
            )
        }
        .map_err(|e| Error::Executor(format!("uploading a latent: {e}")))?;
        self.gpu.synchronize()
    }

    /// Batch item `item`'s latent (bf16 bits, `[Ni, C]`), after the queued steps finish.
    pub fn latent(&self, ws: &Workspace, item: usize) -> Result<Vec<u16>> {
        let n = ws.ni * self.cfg.latent_channels;
        let mut raw = vec![0u16; n];
        self.gpu.synchronize()?;
        // SAFETY: the latent slot holds n bf16 values; synchronising completes the copy.
        unsafe {
            cudarc::driver::result::memcpy_dtoh_async(
                &mut raw,
                ws.latent.ptr.bf(item * n).0,
                self.gpu.stream.cu_stream(),
            )
        }
        .map_err(|e| Error::Executor(format!("downloading a latent: {e}")))?;
        self.gpu.synchronize()?;
        Ok(raw)
    }

    /// Fills the velocity buffer with NaNs, so that a step that fails to write it shows.
    pub fn poison_outputs(&self, ws: &Workspace) -> Result<()> {
        let bytes = 2 * ws.batch * ws.ni * self.cfg.latent_channels;
        // SAFETY: the velocity buffer holds `bytes` bytes.
        unsafe {
            cudarc::driver::result::memset_d8_async(
                ws.v.ptr.0,
                0xFF,
                bytes,
                self.gpu.stream.cu_stream(),
            )
        }
        .map_err(|e| Error::Executor(format!("poisoning outputs: {e}")))
    }

    /// The velocity of batch item `item` from the last step (`v + bias`), `[Ni, C]`.
    pub fn velocity(&self, ws: &Workspace, item: usize) -> Result<Vec<f32>> {
        let c = self.cfg.latent_channels;
        let out = self.layers.last().expect("output layer");
        let v = download_bf16(&self.gpu, ws.v.ptr.bf(item * ws.ni * c), ws.ni * c)?;
        let b = download_bf16(&self.gpu, out.b.ptr, c)?;
        Ok(v.iter().enumerate().map(|(i, x)| x + b[i % c]).collect())
    }

    /// Times `repeats` steps after `warmup` ones with CUDA events; milliseconds per step.
    pub fn time_steps(&self, ws: &Workspace, warmup: usize, repeats: usize) -> Result<Vec<f64>> {
        let err = |e: cudarc::driver::DriverError| {
            Error::Executor(format!("timing on {}: {e}", self.gpu.name))
        };
        for _ in 0..warmup {
            self.step(ws, 0.0)?;
        }
        self.gpu.synchronize()?;
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let start = self
                .gpu
                .stream
                .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(err)?;
            self.step(ws, 0.0)?;
            let end = self
                .gpu
                .stream
                .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(err)?;
            end.synchronize().map_err(err)?;
            times.push(f64::from(start.elapsed_ms(&end).map_err(err)?));
        }
        Ok(times)
    }

    /// `Y[rows, out] = X[rows, inp] . W + beta * Y` for layer `l` (bias not added).
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &self,
        x: P,
        ldx: usize,
        l: &Linear,
        y: P,
        ldy: usize,
        rows: usize,
        beta: f32,
    ) -> Result<()> {
        gemm(
            &self.gpu, x, ldx, l.w.ptr, l.out, y, ldy, rows, l.inp, l.out, beta,
        )
    }

    /// Softmax attention of one batch item: q, k, v are the column blocks `[0, H)`, `[H, 2H)`,
    /// `[2H, 3H)` of rows with stride `ld` starting at `qkv`; the output goes to `out` `[N, H]`.
    /// RoPE is applied to q and k first (in place). With emulated ranks, through the
    /// all-to-alls of a Ulysses step.
    fn attend(&self, ws: &Workspace, qkv: P, ld: usize, out: P) -> Result<()> {
        let cfg = &self.cfg;
        let Some(u) = &ws.ulysses else {
            self.rope(ws, qkv, ld, 0..ws.nt + ws.ni)?;
            let heads = (cfg.heads / ws.share).max(1);
            return self.attention(ws, qkv, ld, out, cfg.hidden, heads, cfg.hidden);
        };
        let lay = u.layout;
        let (n, h, w) = (lay.tokens, lay.hidden(), lay.width());
        // Row-wise: each rank rotates its own token shard.
        for r in 0..lay.ranks {
            self.rope(
                ws,
                qkv.bf(lay.token_range(r).start * ld),
                ld,
                lay.token_range(r),
            )?;
        }
        // All-to-all: token shards (rows of `qkv`) -> head shards (rank d at d x N x 3w).
        for b in lay.to_heads(3, ld) {
            copy_2d(
                &self.gpu,
                (
                    u.heads_in.ptr.bf(b.dst_rank * n * 3 * w + b.dst_offset),
                    b.dst_ld,
                ),
                (
                    qkv.bf(lay.token_range(b.src_rank).start * ld + b.src_offset),
                    b.src_ld,
                ),
                b.rows,
                b.cols,
            )?;
        }
        for d in 0..lay.ranks {
            self.attention(
                ws,
                u.heads_in.ptr.bf(d * n * 3 * w),
                3 * w,
                u.heads_out.ptr.bf(d * n * w),
                w,
                lay.heads / lay.ranks,
                w,
            )?;
        }
        // All-to-all back: head-shard outputs -> each rank's rows of `out` [N, H].
        for b in lay.to_tokens(h) {
            copy_2d(
                &self.gpu,
                (
                    out.bf(lay.token_range(b.dst_rank).start * h + b.dst_offset),
                    b.dst_ld,
                ),
                (
                    u.heads_out.ptr.bf(b.src_rank * n * w + b.src_offset),
                    b.src_ld,
                ),
                b.rows,
                b.cols,
            )?;
        }
        Ok(())
    }

    /// RoPE on the q and k of `rows` (global token indices; `qkv` points at the first).
    fn rope(&self, ws: &Workspace, qkv: P, ld: usize, rows: std::ops::Range<usize>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let cfg = &self.cfg;
        let pairs = cfg.head_dim() / 2;
        let args = [
            A::P(qkv),
            A::P(ws.cos.ptr.f32(rows.start * pairs)),
            A::P(ws.sin.ptr.f32(rows.start * pairs)),
            A::I32(rows.len() as i32),
            A::I32(cfg.heads as i32),
            A::I32(cfg.head_dim() as i32),
            A::I32(ld as i32),
        ];
        launch(&self.gpu, Kernel::Rope, rows.len() as u32, &args)
    }

    /// Softmax attention over all `N` tokens for `heads` heads: q, k, v are the column blocks
    /// `[0, cols)`, `[cols, 2 cols)`, `[2 cols, 3 cols)` of rows with stride `ld`; the output
    /// goes to `out` (row stride `ldo`).
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        ws: &Workspace,
        qkv: P,
        ld: usize,
        out: P,
        ldo: usize,
        heads: usize,
        cols: usize,
    ) -> Result<()> {
        let g = &self.gpu;
        let d = self.cfg.head_dim();
        let heads = heads as i32;
        let n = ws.nt + ws.ni;
        let scale = 1.0 / (d as f32).sqrt();
        let mut start = 0;
        while start < n {
            let cq = ws.cq.min(n - start);
            let nc = (n * cq) as i64;
            // Scores: S^T[N, cq] = K^T . Q per head (column-major), f32.
            batched_gemm(
                g,
                Op::T,
                Op::N,
                (n, cq, d),
                scale,
                (qkv.bf(cols), ld, d as i64, cudaDataType_t::CUDA_R_16BF),
                (
                    qkv.bf(start * ld),
                    ld,
                    d as i64,
                    cudaDataType_t::CUDA_R_16BF,
                ),
                0.0,
                (ws.scores.ptr, n, nc, cudaDataType_t::CUDA_R_32F),
                heads,
            )?;
            let rows = i64::from(heads) * cq as i64;
            launch(
                g,
                Kernel::Softmax,
                rows as u32,
                &[
                    A::P(ws.scores.ptr),
                    A::P(ws.probs.ptr),
                    A::I64(rows),
                    A::I32(n as i32),
                ],
            )?;
            // O^T[d, cq] = V^T . P^T per head, written at row `start`, column h * d of `out`.
            batched_gemm(
                g,
                Op::N,
                Op::N,
                (d, cq, n),
                1.0,
                (qkv.bf(2 * cols), ld, d as i64, cudaDataType_t::CUDA_R_16BF),
                (ws.probs.ptr, n, nc, cudaDataType_t::CUDA_R_16BF),
                0.0,
                (
                    out.bf(start * ldo),
                    ldo,
                    d as i64,
                    cudaDataType_t::CUDA_R_16BF,
                ),
                heads,
            )?;
            start += cq;
        }
        Ok(())
    }
}

/// A cuBLAS operand: (address, leading dimension, stride between batch entries, type).
type Operand = (P, usize, i64, cudaDataType_t);

#[derive(Clone, Copy)]
enum Op {
    N,
    T,
}

impl Op {
    fn cublas(self) -> cublasOperation_t {
        match self {
            Op::N => cublasOperation_t::CUBLAS_OP_N,
            Op::T => cublasOperation_t::CUBLAS_OP_T,
        }
    }
}

/// Column-major strided-batched GEMM `C = alpha op(A) op(B) + beta C`, f32 accumulation.
#[allow(clippy::too_many_arguments)]
fn batched_gemm(
    g: &Gpu,
    ta: Op,
    tb: Op,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    a: Operand,
    b: Operand,
    beta: f32,
    c: Operand,
    batch: i32,
) -> Result<()> {
    // SAFETY: the callers pass addresses of live allocations large enough for the shapes.
    unsafe {
        cudarc::cublas::result::gemm_strided_batched_ex(
            *g.blas.handle(),
            ta.cublas(),
            tb.cublas(),
            m as i32,
            n as i32,
            k as i32,
            (&alpha) as *const f32 as *const c_void,
            a.0.0 as *const c_void,
            a.3,
            a.1 as i32,
            a.2,
            b.0.0 as *const c_void,
            b.3,
            b.1 as i32,
            b.2,
            (&beta) as *const f32 as *const c_void,
            c.0.0 as *mut c_void,
            c.3,
            c.1 as i32,
            c.2,
            batch,
            cublasComputeType_t::CUBLAS_COMPUTE_32F,
            cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    }
    .map_err(|e| Error::Executor(format!("cuBLAS batched GEMM ({m}x{n}x{k}, {batch}): {e}")))
}

/// Row-major `Y[rows, out] (ld ldy) = X[rows, inp] (ld ldx) . W[inp, out] (ld ldw) + beta Y`,
/// bf16 in and out, f32 accumulation.
#[allow(clippy::too_many_arguments)]
fn gemm(
    g: &Gpu,
    x: P,
    ldx: usize,
    w: P,
    ldw: usize,
    y: P,
    ldy: usize,
    rows: usize,
    inp: usize,
    out: usize,
    beta: f32,
) -> Result<()> {
    if rows == 0 {
        return Ok(());
    }
    let alpha = 1.0f32;
    // SAFETY: the callers pass addresses of live allocations large enough for the shapes.
    unsafe {
        cudarc::cublas::result::gemm_ex(
            *g.blas.handle(),
            cublasOperation_t::CUBLAS_OP_N,
            cublasOperation_t::CUBLAS_OP_N,
            out as i32,
            rows as i32,
            inp as i32,
            (&alpha) as *const f32 as *const c_void,
            w.0 as *const c_void,
            cudaDataType_t::CUDA_R_16BF,
            ldw as i32,
            x.0 as *const c_void,
            cudaDataType_t::CUDA_R_16BF,
            ldx as i32,
            (&beta) as *const f32 as *const c_void,
            y.0 as *mut c_void,
            cudaDataType_t::CUDA_R_16BF,
            ldy as i32,
            cublasComputeType_t::CUBLAS_COMPUTE_32F,
            cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    }
    .map_err(|e| Error::Executor(format!("cuBLAS GEMM ({rows}x{inp} . {inp}x{out}): {e}")))
}

/// A kernel argument. Kept in a slice that outlives the launch, since the driver reads each
/// argument through a pointer.
#[derive(Clone, Copy)]
enum A {
    P(P),
    U64(u64),
    I64(i64),
    I32(i32),
    F32(f32),
}

/// Launches `k` with one block of [`THREADS`] per grid entry.
fn launch(g: &Gpu, k: Kernel, grid: u32, args: &[A]) -> Result<()> {
    let f = g.kernels.get(k);
    let mut b = g.stream.launch_builder(f);
    for a in args {
        match a {
            A::P(p) => b.arg(&p.0),
            A::U64(v) => b.arg(v),
            A::I64(v) => b.arg(v),
            A::I32(v) => b.arg(v),
            A::F32(v) => b.arg(v),
        };
    }
    let cfg = LaunchConfig {
        grid_dim: (grid.max(1), 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: every caller passes exactly the kernel's parameters, in order, with buffers
    // large enough for the sizes it passes.
    unsafe { b.launch(cfg) }
        .map(|_| ())
        .map_err(|e| Error::Executor(format!("launching {}: {e}", k.name())))
}

/// Launches a grid-stride element-wise kernel over `n` elements.
fn elementwise(g: &Gpu, k: Kernel, n: usize, args: &[A]) -> Result<()> {
    launch(g, k, grid_for(n), args)
}

fn fill(g: &Gpu, ptr: P, n: usize, seed: u64, scale: f32) -> Result<()> {
    elementwise(
        g,
        Kernel::FillUniform,
        n,
        &[A::P(ptr), A::U64(n as u64), A::U64(seed), A::F32(scale)],
    )
}

fn bias(g: &Gpu, k: Kernel, x: P, b: P, rows: usize, cols: usize, ld: usize) -> Result<()> {
    elementwise(
        g,
        k,
        rows * cols,
        &[
            A::P(x),
            A::P(b),
            A::I64(rows as i64),
            A::I32(cols as i32),
            A::I32(ld as i32),
        ],
    )
}

fn residual(g: &Gpu, x: P, y: P, b: P, gate: P, rows: usize, cols: usize) -> Result<()> {
    elementwise(
        g,
        Kernel::GatedResidual,
        rows * cols,
        &[
            A::P(x),
            A::P(y),
            A::P(b),
            A::P(gate),
            A::I64(rows as i64),
            A::I32(cols as i32),
        ],
    )
}

fn layernorm(g: &Gpu, x: P, out: P, shift: P, scale: P, rows: usize, cols: usize) -> Result<()> {
    if rows == 0 {
        return Ok(());
    }
    launch(
        g,
        Kernel::LayernormModulate,
        rows as u32,
        &[
            A::P(x),
            A::P(out),
            A::P(shift),
            A::P(scale),
            A::I32(rows as i32),
            A::I32(cols as i32),
        ],
    )
}

/// `rows` rows of `cols` bf16 values from `src` (row stride `ld`) to `dst` (its own stride).
fn copy_2d(g: &Gpu, dst: (P, usize), src: (P, usize), rows: usize, cols: usize) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    elementwise(
        g,
        Kernel::Copy2d,
        rows * cols,
        &[
            A::P(dst.0),
            A::I64(dst.1 as i64),
            A::P(src.0),
            A::I64(src.1 as i64),
            A::I64(rows as i64),
            A::I32(cols as i32),
        ],
    )
}

fn copy(g: &Gpu, dst: P, src: P, bytes: usize) -> Result<()> {
    // SAFETY: both ranges lie in live allocations.
    unsafe { cudarc::driver::result::memcpy_dtod_async(dst.0, src.0, bytes, g.stream.cu_stream()) }
        .map_err(|e| Error::Executor(format!("device copy: {e}")))
}

fn upload_f32(g: &Gpu, dst: P, data: &[f32]) -> Result<()> {
    // SAFETY: dst holds data.len() f32 values; the copy completes before `data` is dropped.
    unsafe { cudarc::driver::result::memcpy_htod_async(dst.0, data, g.stream.cu_stream()) }
        .map_err(|e| Error::Executor(format!("upload: {e}")))?;
    g.synchronize()
}

fn download_bf16(g: &Gpu, src: P, n: usize) -> Result<Vec<f32>> {
    let mut raw = vec![0u16; n];
    g.synchronize()?;
    // SAFETY: src holds n bf16 values; the copy completes before `raw` is read.
    unsafe { cudarc::driver::result::memcpy_dtoh_async(&mut raw, src.0, g.stream.cu_stream()) }
        .map_err(|e| Error::Executor(format!("download: {e}")))?;
    g.synchronize()?;
    Ok(raw
        .iter()
        .map(|&b| half::bf16::from_bits(b).to_f32())
        .collect())
}
