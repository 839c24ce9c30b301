//! The DiT denoising step, written once over [`Ops`] and a [`Transport`]: what one rank of a
//! `k`-way Ulysses group computes (`k = 1`: the whole step).
//!
//! It is the step of [`reference`](super::reference), in the same order, split as Ulysses
//! splits it (see [`ulysses`](super::ulysses)): rank `r` of `k` holds the rows
//! `token_range(r)` of the joint sequence `[text ; image]` (`N = Nt + Ni` rows, text first).
//! Everything row-wise runs on those rows; attention crosses the transport twice (token shards
//! -> head shards, attention over all `N` tokens on `heads / k` heads, and back). A rank owns
//! the latent rows of its image tokens and updates only those; the executor reassembles a
//! request's latent from its ranks' rows after a work.
//!
//! Shapes below: `B` batch items, `R` rows per rank (`ceil(N / k)`), `H` hidden, `M` MLP
//! hidden, `C` latent channels, `w = H / k` columns of a rank's heads.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::real::config::{DitConfig, LinearSpec};
use crate::real::init::{rope_tables, tensor_seed};
use crate::real::ops::{AttentionShape, Linear, Ops, Ptr};
use crate::real::transport::Transport;
use crate::real::ulysses::{Block, Layout};
use crate::workload::Resolution;

/// The model's weights in a backend's memory, seeded as [`CpuDit`](super::reference::CpuDit)
/// and named as FLUX's checkpoint names its modules, so that a block reads like the model it
/// implements.
#[derive(Clone, Debug)]
pub struct Weights {
    pub cfg: DitConfig,
    /// `img_in`: latent channels to hidden.
    pub img_in: Linear,
    pub double_blocks: Vec<DoubleBlock>,
    pub single_blocks: Vec<SingleBlock>,
    pub final_layer: FinalLayer,
}

/// A double-stream (MMDiT) block: text and image each with their own weights.
#[derive(Clone, Copy, Debug)]
pub struct DoubleBlock {
    /// `txt_mod`, `txt_attn`, `txt_mlp`.
    pub txt: StreamWeights,
    /// `img_mod`, `img_attn`, `img_mlp`.
    pub img: StreamWeights,
}

impl DoubleBlock {
    /// The streams in the order of the joint sequence (and of the workspace's segments):
    /// text (stream 0), then image (stream 1).
    pub fn streams(&self) -> [&StreamWeights; 2] {
        [&self.txt, &self.img]
    }
}

/// One stream of a double block.
#[derive(Clone, Copy, Debug)]
pub struct StreamWeights {
    /// `*_mod.lin`: the conditioning vector to (shift, scale, gate) x 2, `[H, 6H]`.
    pub modulation: Linear,
    pub attn: AttnWeights,
    pub mlp: MlpWeights,
}

/// `*_attn`: the q/k/v projection `qkv` `[H, 3H]` and the output projection `proj` `[H, H]`.
#[derive(Clone, Copy, Debug)]
pub struct AttnWeights {
    pub qkv: Linear,
    pub proj: Linear,
}

/// `*_mlp`: `fc1` `[H, M]` (FLUX's `mlp.0`), GELU, `fc2` `[M, H]` (`mlp.2`).
#[derive(Clone, Copy, Debug)]
pub struct MlpWeights {
    pub fc1: Linear,
    pub fc2: Linear,
}

/// A single-stream block.
#[derive(Clone, Copy, Debug)]
pub struct SingleBlock {
    /// `modulation.lin`: (shift, scale, gate), `[H, 3H]`.
    pub modulation: Linear,
    /// `linear1`: q, k, v and the MLP's hidden layer side by side, `[H, 3H + M]`.
    pub linear1: Linear,
    /// `linear2`: `[attn, gelu(mlp)]` back to hidden, `[H + M, H]`.
    pub linear2: Linear,
}

/// `final_layer`.
#[derive(Clone, Copy, Debug)]
pub struct FinalLayer {
    /// `adaLN_modulation`: (shift, scale), `[H, 2H]`.
    pub modulation: Linear,
    /// `linear`: hidden to the velocity's latent channels, `[H, C]`.
    pub linear: Linear,
}

impl Weights {
    /// Allocates every layer on `ops` and fills it from `seed`, in the order of
    /// [`DitConfig::linears`] (tensor `2 i` the weights of layer `i`, `2 i + 1` its bias), then
    /// names them.
    pub fn build<O: Ops>(ops: &mut O, cfg: DitConfig, seed: u64) -> Result<Weights> {
        let mut layers = Vec::new();
        for (i, spec) in cfg.linears().into_iter().enumerate() {
            let w = ops.alloc(spec.inp * spec.out)?;
            ops.fill_uniform(
                w,
                spec.inp * spec.out,
                tensor_seed(seed, 2 * i as u64),
                spec.weight_scale(),
            )?;
            let b = ops.alloc(spec.out)?;
            ops.fill_uniform(
                b,
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
        ops.synchronize()?;
        Weights::bind(cfg, layers)
    }

    /// Names `layers`, given in the order of [`DitConfig::linears`].
    fn bind(cfg: DitConfig, layers: Vec<Linear>) -> Result<Weights> {
        let mut layers = layers.into_iter();
        let mut next = || {
            layers
                .next()
                .ok_or_else(|| Error::Executor("the layer list is shorter than the config".into()))
        };
        let img_in = next()?;
        let mut double_blocks = Vec::new();
        for _ in 0..cfg.double_blocks {
            // Fields are evaluated in the order written: the order of `linears`.
            let mut stream = || -> Result<StreamWeights> {
                Ok(StreamWeights {
                    modulation: next()?,
                    attn: AttnWeights {
                        qkv: next()?,
                        proj: next()?,
                    },
                    mlp: MlpWeights {
                        fc1: next()?,
                        fc2: next()?,
                    },
                })
            };
            let txt = stream()?;
            let img = stream()?;
            double_blocks.push(DoubleBlock { txt, img });
        }
        let mut single_blocks = Vec::new();
        for _ in 0..cfg.single_blocks {
            single_blocks.push(SingleBlock {
                modulation: next()?,
                linear1: next()?,
                linear2: next()?,
            });
        }
        let final_layer = FinalLayer {
            modulation: next()?,
            linear: next()?,
        };
        Ok(Weights {
            cfg,
            img_in,
            double_blocks,
            single_blocks,
            final_layer,
        })
    }
}

/// One rank's buffers for `batch` requests at `res` in a group of `ranks`. The same workspace
/// serves any rank index of that group size.
pub struct Workspace {
    pub res: Resolution,
    pub batch: usize,
    pub layout: Layout,
    nt: usize,
    ni: usize,
    /// `[B, R, H]`: this rank's rows of the joint sequence.
    x: Ptr,
    /// `[R, H]`: a normalised segment.
    h: Ptr,
    /// `[B, R, 3H + M]`: q, k, v (double blocks, row stride 3H) or q, k, v, MLP (single).
    big: Ptr,
    /// `[B, R, H]`: attention outputs back on this rank's rows.
    attn: Ptr,
    /// `[R, H]` and `[R, M]`: projections and the MLP's hidden layer.
    y: Ptr,
    mid: Ptr,
    /// `[N, 3w]` and `[N, w]`: this rank's heads of every token (ranks > 1 only).
    heads_in: Ptr,
    heads_out: Ptr,
    /// `[2, B, 6H]`: modulation vectors (shift, scale, gate x 2) per stream and item.
    mods: Ptr,
    /// `[B, H]`: conditioning vectors and their silu.
    vec: Ptr,
    vs: Ptr,
    /// `[B, Nt, H]`: text embeddings (all rows; a rank reads its own).
    txt: Ptr,
    /// `[B, Ni, C]`: latents and velocities (all rows; a rank updates its own).
    latent: Ptr,
    v: Ptr,
    /// `[N, head_dim / 2]` f32 rotary tables.
    cos: Ptr,
    sin: Ptr,
    /// The two all-to-alls: into head shards from double-block rows (stride 3H), from
    /// single-block rows (stride 3H + M), and back to token shards (stride H).
    to_heads_double: Vec<Block>,
    to_heads_single: Vec<Block>,
    to_tokens: Vec<Block>,
}

impl Workspace {
    /// Allocates a rank's buffers; fails unless `ranks` is a power of two dividing the heads.
    pub fn new<O: Ops>(
        ops: &mut O,
        cfg: &DitConfig,
        res: Resolution,
        batch: usize,
        ranks: usize,
    ) -> Result<Workspace> {
        let (h, m, c, hd) = (cfg.hidden, cfg.mlp(), cfg.latent_channels, cfg.head_dim());
        let (nt, ni) = (cfg.text_tokens, cfg.image_tokens(res));
        let n = nt + ni;
        if batch == 0 {
            return Err(Error::Executor("a workspace for an empty batch".into()));
        }
        let layout = Layout::new(n, cfg.heads, hd, ranks)?;
        let (r, w) = (layout.shard(), layout.width());
        let (cos, sin) = rope_tables(nt, res, hd, cfg.patch);
        let split = ranks > 1;
        let ws = Workspace {
            res,
            batch,
            layout,
            nt,
            ni,
            x: ops.alloc(batch * r * h)?,
            h: ops.alloc(r * h)?,
            big: ops.alloc(batch * r * (3 * h + m))?,
            attn: ops.alloc(batch * r * h)?,
            y: ops.alloc(r * h)?,
            mid: ops.alloc(r * m)?,
            heads_in: ops.alloc(if split { n * 3 * w } else { 1 })?,
            heads_out: ops.alloc(if split { n * w } else { 1 })?,
            mods: ops.alloc(2 * batch * 6 * h)?,
            vec: ops.alloc(batch * h)?,
            vs: ops.alloc(batch * h)?,
            txt: ops.alloc(batch * nt * h)?,
            latent: ops.alloc(batch * ni * c)?,
            v: ops.alloc(batch * ni * c)?,
            cos: ops.upload_f32(&cos)?,
            sin: ops.upload_f32(&sin)?,
            to_heads_double: layout.to_heads(3, 3 * h),
            to_heads_single: layout.to_heads(3, 3 * h + m),
            to_tokens: layout.to_tokens(h),
        };
        ops.reserve_attention(&ws.attention_shapes(cfg))?;
        Ok(ws)
    }

    /// The shapes of the attention calls of this workspace's step: one rank attends in place
    /// in the double blocks' q/k/v rows (stride 3H) and the single blocks' (3H + M); a rank of
    /// a group attends on its head shard, gathered into `heads_in`.
    pub fn attention_shapes(&self, cfg: &DitConfig) -> Vec<AttentionShape> {
        let h = cfg.hidden;
        let mut shapes = vec![
            self.attention_shape(cfg, 3 * h),
            self.attention_shape(cfg, 3 * h + cfg.mlp()),
        ];
        shapes.dedup();
        shapes
    }

    /// The shape of this rank's attention call over q/k/v rows of stride `ld` (3H in the
    /// double blocks, 3H + M in the single ones): one rank attends in place; a rank of a group
    /// on its head shard, gathered into `heads_in` (stride 3w) whatever `ld` was. The step
    /// calls attention with the shapes announced here, so a backend finds the plan it made.
    fn attention_shape(&self, cfg: &DitConfig, ld: usize) -> AttentionShape {
        let (heads, ld, cols) = if self.layout.ranks == 1 {
            (cfg.heads, ld, cfg.hidden)
        } else {
            let w = self.layout.width();
            (cfg.heads / self.layout.ranks, 3 * w, w)
        };
        AttentionShape {
            tokens: self.layout.tokens,
            heads,
            head_dim: cfg.head_dim(),
            ld,
            ldo: cols,
            cols,
        }
    }

    pub fn ranks(&self) -> usize {
        self.layout.ranks
    }

    /// The velocity buffer `[B, Ni, C]` and its length in values, for checks that poison it
    /// before a step (so that rows a step fails to write show).
    pub fn velocity_buffer(&self, cfg: &DitConfig) -> (Ptr, usize) {
        (self.v, self.batch * self.ni * cfg.latent_channels)
    }

    /// Image rows (0-based in the image) that rank `rank` owns.
    pub fn image_rows(&self, rank: usize) -> Range<usize> {
        let r = self.layout.token_range(rank);
        r.start.max(self.nt) - self.nt..r.end.max(self.nt) - self.nt
    }

    /// Rank `rank`'s rows by stream: `(stream, first local row, rows)`, text (stream 0) first.
    fn segments(&self, rank: usize) -> Vec<(usize, usize, usize)> {
        let r = self.layout.token_range(rank);
        let text = r.start..r.end.min(self.nt);
        let image = r.start.max(self.nt)..r.end;
        [(0, text), (1, image)]
            .into_iter()
            .filter(|(_, x)| !x.is_empty())
            .map(|(s, x)| (s, x.start - r.start, x.len()))
            .collect()
    }
}

/// Draws batch item `item`'s inputs from request seed `seed` (latent, text embedding,
/// conditioning vector: tensors 0, 1, 2 of that seed), as
/// [`CpuInputs::seeded`](super::reference::CpuInputs::seeded).
pub fn load_inputs<O: Ops>(
    ops: &O,
    cfg: &DitConfig,
    ws: &Workspace,
    item: usize,
    seed: u64,
) -> Result<()> {
    let (h, c) = (cfg.hidden, cfg.latent_channels);
    ops.fill_uniform(
        ws.latent.at(item * ws.ni * c),
        ws.ni * c,
        tensor_seed(seed, 0),
        1.0,
    )?;
    ops.fill_uniform(
        ws.txt.at(item * ws.nt * h),
        ws.nt * h,
        tensor_seed(seed, 1),
        1.0,
    )?;
    ops.fill_uniform(ws.vec.at(item * h), h, tensor_seed(seed, 2), 1.0)
}

/// Overwrites item `item`'s whole latent `[Ni, C]`.
pub fn set_latent<O: Ops>(
    ops: &O,
    cfg: &DitConfig,
    ws: &Workspace,
    item: usize,
    latent: &[f32],
) -> Result<()> {
    let n = ws.ni * cfg.latent_channels;
    if latent.len() != n {
        return Err(Error::Executor(format!(
            "a latent of {} values for a {} image ({n} expected)",
            latent.len(),
            ws.res
        )));
    }
    ops.write(ws.latent.at(item * n), latent)
}

/// Item `item`'s latent rows that rank `rank` owns (`image_rows(rank)` x C).
pub fn latent_rows<O: Ops>(
    ops: &O,
    cfg: &DitConfig,
    ws: &Workspace,
    item: usize,
    rank: usize,
) -> Result<Vec<f32>> {
    let c = cfg.latent_channels;
    let rows = ws.image_rows(rank);
    ops.read(
        ws.latent.at((item * ws.ni + rows.start) * c),
        rows.len() * c,
    )
}

/// Item `item`'s velocity rows of the last step that rank `rank` computed (bias included).
pub fn velocity_rows<O: Ops>(
    ops: &O,
    w: &Weights,
    ws: &Workspace,
    item: usize,
    rank: usize,
) -> Result<Vec<f32>> {
    let c = w.cfg.latent_channels;
    let rows = ws.image_rows(rank);
    let out = &w.final_layer.linear;
    let v = ops.read(ws.v.at((item * ws.ni + rows.start) * c), rows.len() * c)?;
    let b = ops.read(out.b, c)?;
    Ok(v.iter().enumerate().map(|(i, x)| x + b[i % c]).collect())
}

/// The step on one rank: owns the borrowed pieces so that block methods read top-down.
struct Step<'a, O: Ops, T: Transport<O> + ?Sized> {
    ops: &'a O,
    ws: &'a Workspace,
    t: &'a mut T,
    cfg: &'a DitConfig,
    rank: usize,
    /// This rank's global rows.
    rows: Range<usize>,
    segments: Vec<(usize, usize, usize)>,
}

/// One denoising step of every batch item on this rank (`t.rank()` of `t.ranks()`); on a GPU
/// it returns once the work is queued. Every rank of the group must call it together.
pub fn step<O: Ops, T: Transport<O> + ?Sized>(
    ops: &O,
    w: &Weights,
    ws: &Workspace,
    t: &mut T,
    dt: f32,
) -> Result<()> {
    if t.ranks() != ws.ranks() || t.rank() >= ws.ranks() {
        return Err(Error::Executor(format!(
            "rank {} of {} on a workspace for {} ranks",
            t.rank(),
            t.ranks(),
            ws.ranks()
        )));
    }
    let rank = t.rank();
    let mut s = Step {
        ops,
        ws,
        cfg: &w.cfg,
        rank,
        rows: ws.layout.token_range(rank),
        segments: ws.segments(rank),
        t,
    };
    s.embed(&w.img_in)?;
    for block in &w.double_blocks {
        s.double_block(block)?;
    }
    for block in &w.single_blocks {
        s.single_block(block)?;
    }
    s.final_layer(&w.final_layer, dt)
}

impl<O: Ops, T: Transport<O> + ?Sized> Step<'_, O, T> {
    fn dims(&self) -> (usize, usize, usize) {
        (self.cfg.hidden, self.cfg.mlp(), self.ws.layout.shard())
    }

    /// `x = [txt ; latent . W_in + b]` on this rank's rows; `vs = silu(vec)`.
    fn embed(&mut self, l_in: &Linear) -> Result<()> {
        let (o, ws) = (self.ops, self.ws);
        let (h, _, r) = self.dims();
        let (nt, ni, c) = (ws.nt, ws.ni, self.cfg.latent_channels);
        for b in 0..ws.batch {
            let xb = ws.x.at(b * r * h);
            for &(stream, at, len) in &self.segments {
                let global = self.rows.start + at;
                if stream == 0 {
                    // Text rows: the embedding as it is.
                    let src = ws.txt.at((b * nt + global) * h);
                    o.copy_2d((xb.at(at * h), h), (src, h), len, h)?;
                } else {
                    // Image rows [len, C] . W_in [C, H] + b.
                    let src = ws.latent.at((b * ni + global - nt) * c);
                    o.gemm((src, c), (l_in.w, h), (xb.at(at * h), h), len, c, h, 0.0)?;
                    o.bias_add(xb.at(at * h), l_in.b, len, h, h)?;
                }
            }
        }
        o.silu(ws.vec, ws.vs, ws.batch * h)
    }

    /// `mods[.., out] = vs . W + b` for every item (`out` = 6H, 3H or 2H).
    fn modulation(&self, l: &Linear, into: Ptr) -> Result<()> {
        let (o, h, bsz) = (self.ops, self.cfg.hidden, self.ws.batch);
        o.gemm(
            (self.ws.vs, h),
            (l.w, l.out),
            (into, l.out),
            bsz,
            h,
            l.out,
            0.0,
        )?;
        o.bias_add(into, l.b, bsz, l.out, l.out)
    }

    /// A double-stream (MMDiT) block: per stream modulation, attention and MLP, text then
    /// image; the attention is joint over both streams.
    fn double_block(&mut self, block: &DoubleBlock) -> Result<()> {
        let (o, ws) = (self.ops, self.ws);
        let (h, m, r) = self.dims();
        let bsz = ws.batch;
        let ldq = 3 * h;
        // mods[s, b] = (shift1, scale1, gate1, shift2, scale2, gate2), each [H].
        let streams = block.streams();
        for (s, l) in streams.iter().enumerate() {
            self.modulation(&l.modulation, ws.mods.at(s * bsz * 6 * h))?;
        }
        let md = |s: usize, b: usize| ws.mods.at((s * bsz + b) * 6 * h);
        // qkv of each stream's rows: modulate(LN(x), shift1, scale1) . W_qkv + b.
        for b in 0..bsz {
            for &(s, at, len) in &self.segments {
                let (x, q) = (ws.x.at((b * r + at) * h), ws.big.at((b * r + at) * ldq));
                o.layernorm_modulate(x, ws.h, md(s, b), md(s, b).at(h), len, h)?;
                o.gemm(
                    (ws.h, h),
                    (streams[s].attn.qkv.w, ldq),
                    (q, ldq),
                    len,
                    h,
                    ldq,
                    0.0,
                )?;
                o.bias_add(q, streams[s].attn.qkv.b, len, ldq, ldq)?;
            }
        }
        // Joint attention over both streams.
        for b in 0..bsz {
            self.attend(ws.big.at(b * r * ldq), ldq, ws.attn.at(b * r * h), true)?;
        }
        // x += gate1 * (attn . W_o + b); x += gate2 * MLP(modulate(LN(x), shift2, scale2)).
        for b in 0..bsz {
            for &(s, at, len) in &self.segments {
                let (attn, mlp) = (&streams[s].attn, &streams[s].mlp);
                let x = ws.x.at((b * r + at) * h);
                let a = ws.attn.at((b * r + at) * h);
                o.gemm((a, h), (attn.proj.w, h), (ws.y, h), len, h, h, 0.0)?;
                o.residual_layernorm_modulate(
                    (x, ws.y, attn.proj.b, md(s, b).at(2 * h)),
                    (ws.h, md(s, b).at(3 * h), md(s, b).at(4 * h)),
                    len,
                    h,
                )?;
                o.gemm((ws.h, h), (mlp.fc1.w, m), (ws.mid, m), len, h, m, 0.0)?;
                o.bias_gelu(ws.mid, mlp.fc1.b, len, m, m)?;
                o.gemm((ws.mid, m), (mlp.fc2.w, h), (ws.y, h), len, m, h, 0.0)?;
                o.gated_residual(x, ws.y, mlp.fc2.b, md(s, b).at(5 * h), len, h)?;
            }
        }
        Ok(())
    }

    /// A single-stream block: `p = modulate(LN(x)) . W_1 + b` is q, k, v and the MLP's hidden
    /// layer side by side; `x += gate * ([attn(q, k, v), gelu(mlp)] . W_2 + b)`.
    fn single_block(&mut self, block: &SingleBlock) -> Result<()> {
        let (lm, l1, l2) = (&block.modulation, &block.linear1, &block.linear2);
        let (o, ws) = (self.ops, self.ws);
        let (h, m, r) = self.dims();
        let ldp = 3 * h + m;
        let len = self.rows.len();
        self.modulation(lm, ws.mods)?;
        for b in 0..ws.batch {
            let md = ws.mods.at(b * 3 * h);
            let (x, p, a) = (
                ws.x.at(b * r * h),
                ws.big.at(b * r * ldp),
                ws.attn.at(b * r * h),
            );
            o.layernorm_modulate(x, ws.h, md, md.at(h), len, h)?;
            o.gemm((ws.h, h), (l1.w, ldp), (p, ldp), len, h, ldp, 0.0)?;
            o.bias_add(p, l1.b, len, 3 * h, ldp)?;
            o.bias_gelu(p.at(3 * h), l1.b.at(3 * h), len, m, ldp)?;
            self.attend(p, ldp, a, false)?;
            // [attn, mlp] . W_2 as two GEMMs: rows [0, H) of W_2, then rows [H, H + M).
            o.gemm((a, h), (l2.w, h), (ws.y, h), len, h, h, 0.0)?;
            o.gemm(
                (p.at(3 * h), ldp),
                (l2.w.at(h * h), h),
                (ws.y, h),
                len,
                m,
                h,
                1.0,
            )?;
            o.gated_residual(x, ws.y, l2.b, md.at(2 * h), len, h)?;
        }
        Ok(())
    }

    /// `v = modulate(LN(x_img), shift, scale) . W_out` and `latent += dt (v + b)` on this
    /// rank's image rows.
    fn final_layer(&mut self, layer: &FinalLayer, dt: f32) -> Result<()> {
        let (lf, lo) = (&layer.modulation, &layer.linear);
        let (o, ws) = (self.ops, self.ws);
        let (h, _, r) = self.dims();
        let (nt, ni, c) = (ws.nt, ws.ni, self.cfg.latent_channels);
        self.modulation(lf, ws.mods)?;
        for b in 0..ws.batch {
            let md = ws.mods.at(b * 2 * h);
            for &(s, at, len) in &self.segments {
                if s != 1 {
                    continue;
                }
                let row = (b * ni + self.rows.start + at - nt) * c;
                let x = ws.x.at((b * r + at) * h);
                o.layernorm_modulate(x, ws.h, md, md.at(h), len, h)?;
                o.gemm((ws.h, h), (lo.w, c), (ws.v.at(row), c), len, h, c, 0.0)?;
                o.flow_update(ws.latent.at(row), ws.v.at(row), lo.b, dt, len, c)?;
            }
        }
        Ok(())
    }

    /// Attention of this rank's rows `qkv` (stride `ld`; RoPE not yet applied) into `out`
    /// `[rows, H]`: RoPE on its rows, the all-to-all into head shards, attention on its heads
    /// over all tokens, the all-to-all back. One rank attends in place.
    fn attend(&mut self, qkv: Ptr, ld: usize, out: Ptr, double: bool) -> Result<()> {
        let (o, ws, cfg) = (self.ops, self.ws, self.cfg);
        let hd = cfg.head_dim();
        let pairs = hd / 2;
        let start = self.rows.start * pairs;
        if !self.rows.is_empty() {
            let (cos, sin) = (ws.cos.at(start), ws.sin.at(start));
            o.rope(qkv, ld, cos, sin, self.rows.len(), cfg.heads, hd)?;
        }
        let shape = ws.attention_shape(cfg, ld);
        if ws.layout.ranks == 1 {
            return o.attention(qkv, out, &shape);
        }
        let to_heads = if double {
            &ws.to_heads_double
        } else {
            &ws.to_heads_single
        };
        let result = self
            .t
            .exchange(o, to_heads, qkv, ws.heads_in)
            .and_then(|_| o.attention(ws.heads_in, ws.heads_out, &shape))
            .and_then(|_| self.t.exchange(o, &ws.to_tokens, ws.heads_out, out));
        if let Err(e) = &result {
            self.t.abort(&format!("rank {}: {e}", self.rank));
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::real::cpu::CpuOps;
    use crate::real::reference::{CpuDit, CpuInputs};
    use crate::real::transport::{HostTransport, Rendezvous, Solo};

    fn max_rel(got: &[f32], want: &[f32]) -> f32 {
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs())).max(1e-6);
        assert_eq!(got.len(), want.len());
        got.iter()
            .zip(want)
            .fold(0f32, |a, (g, w)| a.max((g - w).abs()))
            / scale
    }

    /// Runs `steps` steps of a batch on `ranks` CPU threads; the reassembled latents.
    fn run_ranks(
        cfg: &DitConfig,
        shared: &Arc<Vec<Vec<f32>>>,
        w: &Weights,
        res: Resolution,
        seeds: &[u64],
        ranks: usize,
        steps: usize,
    ) -> Vec<Vec<f32>> {
        let group = Arc::new(Rendezvous::new(ranks, Duration::from_secs(30)));
        let parts: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..ranks)
                .map(|rank| {
                    let (group, shared) = (group.clone(), shared.clone());
                    s.spawn(move || {
                        let mut ops = CpuOps::sharing(shared);
                        let ws = Workspace::new(&mut ops, cfg, res, seeds.len(), ranks).unwrap();
                        for (i, &seed) in seeds.iter().enumerate() {
                            load_inputs(&ops, cfg, &ws, i, seed).unwrap();
                        }
                        let mut t = HostTransport { rank, group };
                        for _ in 0..steps {
                            step(&ops, w, &ws, &mut t, 0.1).unwrap();
                        }
                        (0..seeds.len())
                            .map(|i| latent_rows(&ops, cfg, &ws, i, rank).unwrap())
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        (0..seeds.len())
            .map(|i| parts.iter().flat_map(|p| p[i].iter().copied()).collect())
            .collect()
    }

    #[test]
    fn ranks_over_the_host_transport_equal_the_reference_step() {
        // 8 heads so 8 ranks divide them; 48x64 px with 16-px patches = 12 image + 8 text
        // tokens: shards straddle text and image, and with 8 ranks the last one is empty.
        let cfg = DitConfig {
            heads: 8,
            ..DitConfig::tiny()
        };
        let res = Resolution::new(48, 64);
        let mut ops = CpuOps::new();
        let w = Weights::build(&mut ops, cfg.clone(), 3).unwrap();
        let shared = ops.freeze();
        let reference = CpuDit::new(cfg.clone(), 3);
        let seeds = [5u64, 6];
        let want: Vec<Vec<f32>> = seeds
            .iter()
            .map(|&seed| {
                let mut x = CpuInputs::seeded(&cfg, res, seed);
                for _ in 0..2 {
                    reference.step(&mut x, res, 0.1);
                }
                x.latent
            })
            .collect();
        for ranks in [1, 2, 4, 8] {
            let got = run_ranks(&cfg, &shared, &w, res, &seeds, ranks, 2);
            for (g, want) in got.iter().zip(&want) {
                let e = max_rel(g, want);
                assert!(e < 1e-5, "{ranks} ranks: relative error {e}");
            }
        }
        // One rank through `Solo` is the same step.
        let mut one = CpuOps::sharing(shared.clone());
        let ws = Workspace::new(&mut one, &cfg, res, 1, 1).unwrap();
        load_inputs(&one, &cfg, &ws, 0, 5).unwrap();
        step(&one, &w, &ws, &mut Solo, 0.1).unwrap();
        step(&one, &w, &ws, &mut Solo, 0.1).unwrap();
        let got = latent_rows(&one, &cfg, &ws, 0, 0).unwrap();
        assert!(max_rel(&got, &want[0]) < 1e-5);
        // A group size that does not divide the heads is refused.
        assert!(Workspace::new(&mut one, &cfg, res, 1, 16).is_err());
    }
}
