//! A CPU reference of the DiT denoising step, in f32, for checking the GPU kernels.
//!
//! It computes exactly what the device computes (same weights from [`init`](super::init), same
//! layouts, same order of operations), but in f32 without intermediate bf16 rounding, so the
//! GPU result should match it within bf16 tolerance (relative error ~1e-2). It is meant for
//! tiny models: every operation is a plain loop.
//!
//! One step over a batch of `B` requests with `Nt` text and `Ni` image tokens (`N = Nt + Ni`):
//! 1. `x = [txt ; latent . W_in + b_in]` (the joint sequence, text first);
//! 2. `vs = silu(vec)`;
//! 3. each double block, for each stream `s` (text rows, image rows), with
//!    `(shift1, scale1, gate1, shift2, scale2, gate2) = vs . W_mod_s + b`:
//!    `qkv_s = modulate(LN(x_s), shift1, scale1) . W_qkv_s + b`; RoPE on q, k;
//!    joint attention over all `N` tokens; `x_s += gate1 * (attn_s . W_o_s + b)`;
//!    `x_s += gate2 * (gelu(modulate(LN(x_s), shift2, scale2) . W_fc1_s + b) . W_fc2_s + b)`;
//! 4. each single block, with `(shift, scale, gate) = vs . W_mod + b`:
//!    `p = modulate(LN(x), shift, scale) . W_1 + b` (`3H` of q, k, v then `4H` of MLP);
//!    RoPE, attention on the first part, gelu on the second; `x += gate * ([attn, mlp] . W_2 + b)`;
//! 5. `(shift, scale) = vs . W_f + b`; `v = modulate(LN(x_img), shift, scale) . W_out + b`;
//!    the flow-matching update `latent += dt * v`.

use std::ops::Range;

use crate::error::Result;
use crate::real::config::{DitConfig, LinearSpec};
use crate::real::init::{bf16_round, rope_tables, tensor_seed, uniform};
use crate::real::ulysses::{self, Layout};
use crate::workload::Resolution;

/// A linear layer with weights `[inp, out]` (row-major) and a bias.
pub struct CpuLinear {
    pub inp: usize,
    pub out: usize,
    pub w: Vec<f32>,
    pub b: Vec<f32>,
}

impl CpuLinear {
    /// The layer number `index` of a model seeded `seed`, rounded to bf16 as on the device.
    pub fn seeded(spec: LinearSpec, seed: u64, index: usize) -> CpuLinear {
        let ws = tensor_seed(seed, 2 * index as u64);
        let bs = tensor_seed(seed, 2 * index as u64 + 1);
        let scale = spec.weight_scale();
        CpuLinear {
            inp: spec.inp,
            out: spec.out,
            w: (0..spec.inp * spec.out)
                .map(|i| bf16_round(uniform(ws, i as u64, scale)))
                .collect(),
            b: (0..spec.out)
                .map(|i| bf16_round(uniform(bs, i as u64, LinearSpec::BIAS_SCALE)))
                .collect(),
        }
    }

    /// `x[rows, inp] . W + b`, rows read with stride `ld`.
    pub fn apply(&self, x: &[f32], rows: usize, ld: usize) -> Vec<f32> {
        let mut y = vec![0.0; rows * self.out];
        for r in 0..rows {
            let xr = &x[r * ld..r * ld + self.inp];
            let yr = &mut y[r * self.out..(r + 1) * self.out];
            yr.copy_from_slice(&self.b);
            for (i, &xi) in xr.iter().enumerate() {
                let wr = &self.w[i * self.out..(i + 1) * self.out];
                for (o, &wv) in wr.iter().enumerate() {
                    yr[o] += xi * wv;
                }
            }
        }
        y
    }
}

/// Layer norm without affine parameters (eps 1e-6), then `* (1 + scale) + shift`.
pub fn layernorm_modulate(x: &[f32], cols: usize, shift: &[f32], scale: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for (row, o) in x.chunks(cols).zip(out.chunks_mut(cols)) {
        let mean = row.iter().sum::<f32>() / cols as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / cols as f32;
        let inv = 1.0 / (var + 1e-6).sqrt();
        for c in 0..cols {
            o[c] = (row[c] - mean) * inv * (1.0 + scale[c]) + shift[c];
        }
    }
    out
}

/// GELU, tanh approximation (as FLUX's MLPs use).
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044715 * x * x * x)).tanh())
}

pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Rotates the q and k parts (the first `2 * heads * head_dim` columns) of each token's row.
pub fn rope(
    qkv: &mut [f32],
    ld: usize,
    tokens: usize,
    heads: usize,
    head_dim: usize,
    cos: &[f32],
    sin: &[f32],
) {
    let pairs = head_dim / 2;
    let hidden = heads * head_dim;
    for t in 0..tokens {
        for part in 0..2 {
            for h in 0..heads {
                for i in 0..pairs {
                    let at = t * ld + part * hidden + h * head_dim + 2 * i;
                    let (a, b) = (qkv[at], qkv[at + 1]);
                    let (c, s) = (cos[t * pairs + i], sin[t * pairs + i]);
                    qkv[at] = a * c - b * s;
                    qkv[at + 1] = a * s + b * c;
                }
            }
        }
    }
}

/// Softmax attention per head: q, k, v are column blocks `[0, H)`, `[H, 2H)`, `[2H, 3H)` of
/// rows with stride `ld`; returns `[tokens, H]`.
pub fn attention(qkv: &[f32], ld: usize, tokens: usize, heads: usize, head_dim: usize) -> Vec<f32> {
    let hidden = heads * head_dim;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut out = vec![0.0; tokens * hidden];
    let mut p = vec![0.0f32; tokens];
    for h in 0..heads {
        for i in 0..tokens {
            let q = &qkv[i * ld + h * head_dim..i * ld + (h + 1) * head_dim];
            for (j, pj) in p.iter_mut().enumerate() {
                let k = &qkv[j * ld + hidden + h * head_dim..j * ld + hidden + (h + 1) * head_dim];
                *pj = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
            }
            let max = p.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for pj in p.iter_mut() {
                *pj = (*pj - max).exp();
                sum += *pj;
            }
            let o = &mut out[i * hidden + h * head_dim..i * hidden + (h + 1) * head_dim];
            for (j, pj) in p.iter().enumerate() {
                let v = &qkv
                    [j * ld + 2 * hidden + h * head_dim..j * ld + 2 * hidden + (h + 1) * head_dim];
                for (od, vd) in o.iter_mut().zip(v) {
                    *od += pj / sum * vd;
                }
            }
        }
    }
    out
}

/// The whole model on the CPU.
pub struct CpuDit {
    pub cfg: DitConfig,
    pub layers: Vec<CpuLinear>,
}

/// One request's inputs: its latent `[Ni, C]`, text embedding `[Nt, H]` and conditioning
/// vector `[H]` (timestep + pooled text), all seeded.
pub struct CpuInputs {
    pub latent: Vec<f32>,
    pub txt: Vec<f32>,
    pub vec: Vec<f32>,
}

impl CpuInputs {
    /// The inputs the device draws for request seed `seed` (tensors 0, 1, 2 of that seed).
    pub fn seeded(cfg: &DitConfig, res: Resolution, seed: u64) -> CpuInputs {
        let ni = cfg.image_tokens(res);
        let draw = |t: u64, n: usize| {
            (0..n)
                .map(|i| bf16_round(uniform(tensor_seed(seed, t), i as u64, 1.0)))
                .collect()
        };
        CpuInputs {
            latent: draw(0, ni * cfg.latent_channels),
            txt: draw(1, cfg.text_tokens * cfg.hidden),
            vec: draw(2, cfg.hidden),
        }
    }
}

impl CpuDit {
    pub fn new(cfg: DitConfig, seed: u64) -> CpuDit {
        let layers = cfg
            .linears()
            .into_iter()
            .enumerate()
            .map(|(i, s)| CpuLinear::seeded(s, seed, i))
            .collect();
        CpuDit { cfg, layers }
    }

    /// One denoising step of one request: returns the velocity `[Ni, C]` and updates
    /// `inputs.latent` by `dt * v`.
    pub fn step(&self, inputs: &mut CpuInputs, res: Resolution, dt: f32) -> Vec<f32> {
        let cfg = &self.cfg;
        let (h, m, nt) = (cfg.hidden, cfg.mlp(), cfg.text_tokens);
        let ni = cfg.image_tokens(res);
        let n = nt + ni;
        let (heads, hd) = (cfg.heads, cfg.head_dim());
        let (cos, sin) = rope_tables(nt, res, hd, cfg.patch);
        let mut layers = self.layers.iter();
        let mut next = || layers.next().expect("layer list matches the config");

        let mut x = inputs.txt.clone();
        x.extend(next().apply(&inputs.latent, ni, cfg.latent_channels));
        let vs: Vec<f32> = inputs.vec.iter().map(|&v| silu(v)).collect();

        for _ in 0..cfg.double_blocks {
            let streams: Vec<[&CpuLinear; 5]> = (0..2)
                .map(|_| [next(), next(), next(), next(), next()])
                .collect();
            let rows = [(0, nt), (nt, ni)];
            let mods: Vec<Vec<f32>> = streams.iter().map(|s| s[0].apply(&vs, 1, h)).collect();
            let mut qkv = vec![0.0; n * 3 * h];
            for (s, &(start, len)) in rows.iter().enumerate() {
                let md = &mods[s];
                let xn = layernorm_modulate(
                    &x[start * h..(start + len) * h],
                    h,
                    &md[0..h],
                    &md[h..2 * h],
                );
                qkv[start * 3 * h..(start + len) * 3 * h]
                    .copy_from_slice(&streams[s][1].apply(&xn, len, h));
            }
            rope(&mut qkv, 3 * h, n, heads, hd, &cos, &sin);
            let attn = attention(&qkv, 3 * h, n, heads, hd);
            for (s, &(start, len)) in rows.iter().enumerate() {
                let md = &mods[s];
                let y = streams[s][2].apply(&attn[start * h..], len, h);
                gated_add(&mut x[start * h..(start + len) * h], &y, &md[2 * h..3 * h]);
                let xn = layernorm_modulate(
                    &x[start * h..(start + len) * h],
                    h,
                    &md[3 * h..4 * h],
                    &md[4 * h..5 * h],
                );
                let mut mid = streams[s][3].apply(&xn, len, h);
                mid.iter_mut().for_each(|v| *v = gelu(*v));
                let y = streams[s][4].apply(&mid, len, m);
                gated_add(&mut x[start * h..(start + len) * h], &y, &md[5 * h..6 * h]);
            }
        }

        for _ in 0..cfg.single_blocks {
            let (lmod, l1, l2) = (next(), next(), next());
            let md = lmod.apply(&vs, 1, h);
            let xn = layernorm_modulate(&x, h, &md[0..h], &md[h..2 * h]);
            let mut p = l1.apply(&xn, n, h);
            let ld = 3 * h + m;
            rope(&mut p, ld, n, heads, hd, &cos, &sin);
            let attn = attention(&p, ld, n, heads, hd);
            let mut cat = vec![0.0; n * (h + m)];
            for t in 0..n {
                cat[t * (h + m)..t * (h + m) + h].copy_from_slice(&attn[t * h..(t + 1) * h]);
                for j in 0..m {
                    cat[t * (h + m) + h + j] = gelu(p[t * ld + 3 * h + j]);
                }
            }
            let y = l2.apply(&cat, n, h + m);
            gated_add(&mut x, &y, &md[2 * h..3 * h]);
        }

        let (fmod, out) = (next(), next());
        let md = fmod.apply(&vs, 1, h);
        let xn = layernorm_modulate(&x[nt * h..], h, &md[0..h], &md[h..2 * h]);
        let v = out.apply(&xn, ni, h);
        for (l, vi) in inputs.latent.iter_mut().zip(&v) {
            *l += dt * vi;
        }
        v
    }
}

impl CpuDit {
    /// One denoising step as `ranks` Ulysses ranks run it (see [`ulysses`]): each rank keeps
    /// only its token shard; q, k, v cross an all-to-all into head shards for attention and
    /// the outputs cross back. Ranks run one after another; the result equals
    /// [`step`](Self::step) up to f32 rounding, which is what the tests check.
    pub fn step_ulysses(
        &self,
        inputs: &mut CpuInputs,
        res: Resolution,
        dt: f32,
        ranks: usize,
    ) -> Result<Vec<f32>> {
        let cfg = &self.cfg;
        let (h, m, nt, c) = (cfg.hidden, cfg.mlp(), cfg.text_tokens, cfg.latent_channels);
        let ni = cfg.image_tokens(res);
        let n = nt + ni;
        let hd = cfg.head_dim();
        let lay = Layout::new(n, cfg.heads, hd, ranks)?;
        let (w, heads) = (lay.width(), cfg.heads / ranks);
        let pairs = hd / 2;
        let (cos, sin) = rope_tables(nt, res, hd, cfg.patch);
        let rows: Vec<Range<usize>> = (0..ranks).map(|r| lay.token_range(r)).collect();
        // A rank's rows split by stream: (stream, first local row, length); text is stream 0.
        let segments = |r: &Range<usize>| -> Vec<(usize, usize, usize)> {
            let text = r.start..r.end.min(nt);
            let image = r.start.max(nt)..r.end;
            [(0, text), (1, image)]
                .into_iter()
                .filter(|(_, x)| !x.is_empty())
                .map(|(s, x)| (s, x.start - r.start, x.len()))
                .collect()
        };
        let mut layers = self.layers.iter();
        let mut next = || layers.next().expect("layer list matches the config");

        let l_in = next();
        let mut xs: Vec<Vec<f32>> = rows
            .iter()
            .map(|r| {
                let mut x = Vec::with_capacity(r.len() * h);
                for t in r.clone() {
                    if t < nt {
                        x.extend_from_slice(&inputs.txt[t * h..(t + 1) * h]);
                    } else {
                        x.extend(l_in.apply(&inputs.latent[(t - nt) * c..], 1, c));
                    }
                }
                x
            })
            .collect();
        let vs: Vec<f32> = inputs.vec.iter().map(|&v| silu(v)).collect();
        // Attention of every rank: token shards `qkv` (row stride `ld`, RoPE not yet applied)
        // -> all-to-all -> attention on each rank's heads -> all-to-all -> `[rows, H]` shards.
        let attend = |qkv: &mut [Vec<f32>], ld: usize| -> Vec<Vec<f32>> {
            for (q, r) in qkv.iter_mut().zip(&rows) {
                let (cs, sn) = (&cos[r.start * pairs..], &sin[r.start * pairs..]);
                rope(q, ld, r.len(), cfg.heads, hd, cs, sn);
            }
            let mut by_head = vec![vec![0.0; n * 3 * w]; ranks];
            ulysses::apply(&lay.to_heads(3, ld), qkv, &mut by_head);
            let outs: Vec<Vec<f32>> = by_head
                .iter()
                .map(|b| attention(b, 3 * w, n, heads, hd))
                .collect();
            let mut back: Vec<Vec<f32>> = rows.iter().map(|r| vec![0.0; r.len() * h]).collect();
            ulysses::apply(&lay.to_tokens(h), &outs, &mut back);
            back
        };

        for _ in 0..cfg.double_blocks {
            let streams: Vec<[&CpuLinear; 5]> = (0..2)
                .map(|_| [next(), next(), next(), next(), next()])
                .collect();
            let mods: Vec<Vec<f32>> = streams.iter().map(|s| s[0].apply(&vs, 1, h)).collect();
            let mut qkv: Vec<Vec<f32>> = Vec::with_capacity(ranks);
            for (x, r) in xs.iter().zip(&rows) {
                let mut q = vec![0.0; r.len() * 3 * h];
                for (s, at, len) in segments(r) {
                    let md = &mods[s];
                    let xn =
                        layernorm_modulate(&x[at * h..(at + len) * h], h, &md[0..h], &md[h..2 * h]);
                    q[at * 3 * h..(at + len) * 3 * h]
                        .copy_from_slice(&streams[s][1].apply(&xn, len, h));
                }
                qkv.push(q);
            }
            let attn = attend(&mut qkv, 3 * h);
            for ((x, a), r) in xs.iter_mut().zip(&attn).zip(&rows) {
                for (s, at, len) in segments(r) {
                    let md = &mods[s];
                    let xr = &mut x[at * h..(at + len) * h];
                    let y = streams[s][2].apply(&a[at * h..], len, h);
                    gated_add(xr, &y, &md[2 * h..3 * h]);
                    let xn = layernorm_modulate(xr, h, &md[3 * h..4 * h], &md[4 * h..5 * h]);
                    let mut mid = streams[s][3].apply(&xn, len, h);
                    mid.iter_mut().for_each(|v| *v = gelu(*v));
                    let y = streams[s][4].apply(&mid, len, m);
                    gated_add(xr, &y, &md[5 * h..6 * h]);
                }
            }
        }

        for _ in 0..cfg.single_blocks {
            let (lmod, l1, l2) = (next(), next(), next());
            let md = lmod.apply(&vs, 1, h);
            let ld = 3 * h + m;
            let mut ps: Vec<Vec<f32>> = xs
                .iter()
                .zip(&rows)
                .map(|(x, r)| {
                    let xn = layernorm_modulate(x, h, &md[0..h], &md[h..2 * h]);
                    l1.apply(&xn, r.len(), h)
                })
                .collect();
            let attn = attend(&mut ps, ld);
            for (((x, a), p), r) in xs.iter_mut().zip(&attn).zip(&ps).zip(&rows) {
                let len = r.len();
                let mut cat = vec![0.0; len * (h + m)];
                for t in 0..len {
                    cat[t * (h + m)..t * (h + m) + h].copy_from_slice(&a[t * h..(t + 1) * h]);
                    for j in 0..m {
                        cat[t * (h + m) + h + j] = gelu(p[t * ld + 3 * h + j]);
                    }
                }
                let y = l2.apply(&cat, len, h + m);
                gated_add(x, &y, &md[2 * h..3 * h]);
            }
        }

        let (fmod, out) = (next(), next());
        let md = fmod.apply(&vs, 1, h);
        // Each rank's image rows, in rank order, are the image in token order.
        let mut v = Vec::with_capacity(ni * c);
        for (x, r) in xs.iter().zip(&rows) {
            for (s, at, len) in segments(r) {
                if s == 1 {
                    let xn =
                        layernorm_modulate(&x[at * h..(at + len) * h], h, &md[0..h], &md[h..2 * h]);
                    v.extend(out.apply(&xn, len, h));
                }
            }
        }
        for (l, vi) in inputs.latent.iter_mut().zip(&v) {
            *l += dt * vi;
        }
        Ok(v)
    }
}

/// `x[r, c] += gate[c] * y[r, c]`.
fn gated_add(x: &mut [f32], y: &[f32], gate: &[f32]) {
    let cols = gate.len();
    for (i, (xv, yv)) in x.iter_mut().zip(y).enumerate() {
        *xv += gate[i % cols] * yv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn layernorm_of_a_known_row() {
        // [1, 2, 3, 4]: mean 2.5, variance 1.25; normalised (-1.3416, -0.4472, 0.4472, 1.3416).
        let out = layernorm_modulate(
            &[1.0, 2.0, 3.0, 4.0],
            4,
            &[0.0, 1.0, 0.0, 0.0],
            &[0.0, 0.0, 1.0, 0.0],
        );
        let want = [
            -1.341_640_1,
            -0.447_213_6 + 1.0,
            2.0 * 0.447_213_6,
            1.341_640_1,
        ];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-4, "{out:?}");
        }
    }

    #[test]
    fn activations_at_known_points() {
        assert!(close(gelu(0.0), 0.0));
        assert!((gelu(1.0) - 0.841_192).abs() < 1e-5);
        assert!((gelu(-1.0) + 0.158_808).abs() < 1e-5);
        assert!(close(silu(0.0), 0.0));
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6);
    }

    #[test]
    fn rope_rotates_q_and_k_pairs() {
        // One token, one head of dim 2: q = (1, 0), k = (0, 1), v untouched, quarter turn.
        let mut qkv = vec![1.0, 0.0, 0.0, 1.0, 5.0, 6.0];
        rope(&mut qkv, 6, 1, 1, 2, &[0.0], &[1.0]);
        assert!(close(qkv[0], 0.0) && close(qkv[1], 1.0), "{qkv:?}");
        assert!(close(qkv[2], -1.0) && close(qkv[3], 0.0));
        assert_eq!(&qkv[4..], &[5.0, 6.0]);
    }

    #[test]
    fn attention_weights_values_by_softmax_of_scores() {
        // Two tokens, one head of dim 1: q = k = (1, 2) -> scores of token 1: (2, 4);
        // softmax = (0.1192, 0.8808); v = (10, 20) -> 18.808.
        let qkv = vec![1.0, 1.0, 10.0, 2.0, 2.0, 20.0];
        let out = attention(&qkv, 3, 2, 1, 1);
        let p = 1.0 / (1.0 + 2f32.exp());
        assert!(
            (out[1] - (p * 10.0 + (1.0 - p) * 20.0)).abs() < 1e-4,
            "{out:?}"
        );
        let p0 = 1.0 / (1.0 + 1f32.exp());
        assert!(
            (out[0] - (p0 * 10.0 + (1.0 - p0) * 20.0)).abs() < 1e-4,
            "{out:?}"
        );
    }

    #[test]
    fn linear_applies_weights_and_bias() {
        let l = CpuLinear {
            inp: 2,
            out: 1,
            w: vec![2.0, 3.0],
            b: vec![0.5],
        };
        assert_eq!(l.apply(&[1.0, 1.0, 0.0, 2.0], 2, 2), vec![5.5, 6.5]);
    }

    #[test]
    fn a_ulysses_step_on_k_ranks_equals_the_unsplit_step() {
        // 8 heads so that 8 ranks divide them; 48x64 px = 12 image + 8 text = 20 tokens, which
        // 8 ranks split 3/3/3/3/3/3/2/0 and 4 ranks 5/5/5/5 (shards straddle text and image).
        let cfg = DitConfig {
            heads: 8,
            ..DitConfig::tiny()
        };
        let res = Resolution::new(48, 64);
        let model = CpuDit::new(cfg.clone(), 3);
        let mut plain = CpuInputs::seeded(&cfg, res, 5);
        let want = model.step(&mut plain, res, 0.1);
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        for ranks in [1, 2, 4, 8] {
            let mut split = CpuInputs::seeded(&cfg, res, 5);
            let got = model.step_ulysses(&mut split, res, 0.1, ranks).unwrap();
            assert_eq!(got.len(), want.len());
            let err = got
                .iter()
                .zip(&want)
                .fold(0f32, |a, (g, w)| a.max((g - w).abs()));
            assert!(
                err <= 1e-5 * scale,
                "{ranks} ranks: max error {err} (scale {scale})"
            );
            assert_eq!(split.latent.len(), plain.latent.len());
        }
        // A rank count that does not divide the heads is refused, not mis-split.
        let mut x = CpuInputs::seeded(&cfg, res, 5);
        assert!(model.step_ulysses(&mut x, res, 0.1, 16).is_err());
    }

    #[test]
    fn tiny_model_step_is_finite_deterministic_and_moves_the_latent() {
        let cfg = DitConfig::tiny();
        let res = Resolution::new(32, 64);
        let model = CpuDit::new(cfg.clone(), 1);
        let mut a = CpuInputs::seeded(&cfg, res, 9);
        let before = a.latent.clone();
        let v = model.step(&mut a, res, 0.1);
        assert_eq!(v.len(), 8 * cfg.latent_channels);
        assert!(v.iter().all(|x| x.is_finite()));
        assert!(v.iter().any(|x| x.abs() > 1e-3));
        let mut b = CpuInputs::seeded(&cfg, res, 9);
        assert_eq!(model.step(&mut b, res, 0.1), v);
        for ((l, l0), vi) in a.latent.iter().zip(&before).zip(&v) {
            assert!((l - (l0 + 0.1 * vi)).abs() < 1e-6);
        }
    }
}
