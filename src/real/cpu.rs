//! The CPU backend of [`Ops`]: f32 loops over host buffers.
//!
//! It exists so that the real executor's whole path (scheduler, ranks, all-to-alls, latents,
//! records) runs on machines without a GPU, CI included: `simulate --real --device cpu`. Values
//! are f32 throughout; weights and drawn inputs are rounded to bf16 as on a GPU, so a CPU run
//! and the f32 [`reference`](super::reference) agree to f32 rounding.
//!
//! Buffers live in an arena of `Vec<f32>`. Weights are built once and then shared read-only by
//! every rank ([`CpuOps::sharing`]); each rank allocates its own workspace after them. Inputs
//! read from workspace buffers are copied first, so a call may read and write the same buffer;
//! writing a shared buffer or out of bounds is an error, never undefined behaviour.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::real::init::{bf16_round, uniform};
use crate::real::ops::{AttentionShape, Ops, Ptr, extent};
use crate::real::reference::{gelu, silu};

/// Host buffers: shared read-only ones (weights) first, then this rank's own.
pub struct CpuOps {
    shared: Arc<Vec<Vec<f32>>>,
    local: Vec<RefCell<Vec<f32>>>,
}

/// Refuses arenas beyond this many elements (16 GiB of f32): a CPU model is meant to be small.
const MAX_ELEMS: usize = 1 << 32;

fn err(what: String) -> Error {
    Error::Executor(format!("CPU backend: {what}"))
}

impl Default for CpuOps {
    fn default() -> Self {
        CpuOps::new()
    }
}

impl CpuOps {
    /// An empty arena.
    pub fn new() -> CpuOps {
        CpuOps {
            shared: Arc::new(Vec::new()),
            local: Vec::new(),
        }
    }

    /// Freezes this arena's buffers into a read-only set other ranks can share.
    pub fn freeze(self) -> Arc<Vec<Vec<f32>>> {
        let mut all = (*self.shared).clone();
        all.extend(self.local.into_iter().map(RefCell::into_inner));
        Arc::new(all)
    }

    /// An arena whose first buffers are `shared` (same [`Ptr`]s as where they were built).
    pub fn sharing(shared: Arc<Vec<Vec<f32>>>) -> CpuOps {
        CpuOps {
            shared,
            local: Vec::new(),
        }
    }

    fn local_index(&self, p: Ptr) -> Result<usize> {
        (p.buf as usize)
            .checked_sub(self.shared.len())
            .filter(|&i| i < self.local.len())
            .ok_or_else(|| err(format!("buffer {} is not writable here", p.buf)))
    }

    /// `n` values from `p`: borrowed from a shared buffer, copied from a local one.
    fn get(&self, p: Ptr, n: usize) -> Result<Cow<'_, [f32]>> {
        let oob = || err(format!("read of {n} at {p:?} is out of bounds"));
        if let Some(b) = self.shared.get(p.buf as usize) {
            return b
                .get(p.off..p.off.checked_add(n).ok_or_else(oob)?)
                .map(Cow::Borrowed)
                .ok_or_else(oob);
        }
        let i = self.local_index(p)?;
        let b = self.local[i]
            .try_borrow()
            .map_err(|_| err("buffer busy".into()))?;
        b.get(p.off..p.off.checked_add(n).ok_or_else(oob)?)
            .map(|s| Cow::Owned(s.to_vec()))
            .ok_or_else(oob)
    }

    /// Runs `f` on `n` writable values at `p`.
    fn with_mut<R>(&self, p: Ptr, n: usize, f: impl FnOnce(&mut [f32]) -> R) -> Result<R> {
        let i = self.local_index(p)?;
        let mut b = self.local[i]
            .try_borrow_mut()
            .map_err(|_| err(format!("buffer {} is read and written at once", p.buf)))?;
        let end = p.off.checked_add(n).filter(|&e| e <= b.len());
        match end {
            Some(end) => Ok(f(&mut b[p.off..end])),
            None => Err(err(format!("write of {n} at {p:?} is out of bounds"))),
        }
    }

    fn push(&mut self, v: Vec<f32>) -> Result<Ptr> {
        let id = self.shared.len() + self.local.len();
        let total: usize = self.local.iter().map(|b| b.borrow().len()).sum::<usize>() + v.len();
        if total > MAX_ELEMS {
            return Err(err(format!(
                "workspace of {total} values is beyond the CPU backend's limit of {MAX_ELEMS}; use a smaller model or resolution"
            )));
        }
        self.local.push(RefCell::new(v));
        Ok(Ptr {
            buf: id as u32,
            off: 0,
        })
    }
}

impl Ops for CpuOps {
    fn alloc(&mut self, elems: usize) -> Result<Ptr> {
        if elems > MAX_ELEMS {
            return Err(err(format!("a buffer of {elems} values is too large")));
        }
        self.push(vec![0.0; elems])
    }

    fn upload_f32(&mut self, data: &[f32]) -> Result<Ptr> {
        self.push(data.to_vec())
    }

    fn fill_uniform(&self, dst: Ptr, n: usize, seed: u64, scale: f32) -> Result<()> {
        self.with_mut(dst, n, |d| {
            for (i, v) in d.iter_mut().enumerate() {
                *v = bf16_round(uniform(seed, i as u64, scale));
            }
        })
    }

    fn write(&self, dst: Ptr, data: &[f32]) -> Result<()> {
        self.with_mut(dst, data.len(), |d| d.copy_from_slice(data))
    }

    fn read(&self, src: Ptr, n: usize) -> Result<Vec<f32>> {
        Ok(self.get(src, n)?.into_owned())
    }

    fn gemm(
        &self,
        (x, ldx): (Ptr, usize),
        (w, ldw): (Ptr, usize),
        (y, ldy): (Ptr, usize),
        rows: usize,
        inp: usize,
        out: usize,
        beta: f32,
    ) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        let xs = self.get(x, extent(rows, inp, ldx))?;
        let ws = self.get(w, extent(inp, out, ldw))?;
        self.with_mut(y, extent(rows, out, ldy), |ys| {
            for r in 0..rows {
                let yr = &mut ys[r * ldy..r * ldy + out];
                if beta == 0.0 {
                    yr.fill(0.0);
                } else {
                    yr.iter_mut().for_each(|v| *v *= beta);
                }
                for (i, &xi) in xs[r * ldx..r * ldx + inp].iter().enumerate() {
                    let wr = &ws[i * ldw..i * ldw + out];
                    for (yo, &wo) in yr.iter_mut().zip(wr) {
                        *yo += xi * wo;
                    }
                }
            }
        })
    }

    fn bias_add(&self, x: Ptr, b: Ptr, rows: usize, cols: usize, ld: usize) -> Result<()> {
        let bs = self.get(b, cols)?;
        self.with_mut(x, extent(rows, cols, ld), |xs| {
            for r in 0..rows {
                for (v, bv) in xs[r * ld..r * ld + cols].iter_mut().zip(bs.iter()) {
                    *v += bv;
                }
            }
        })
    }

    fn bias_gelu(&self, x: Ptr, b: Ptr, rows: usize, cols: usize, ld: usize) -> Result<()> {
        let bs = self.get(b, cols)?;
        self.with_mut(x, extent(rows, cols, ld), |xs| {
            for r in 0..rows {
                for (v, bv) in xs[r * ld..r * ld + cols].iter_mut().zip(bs.iter()) {
                    *v = gelu(*v + bv);
                }
            }
        })
    }

    fn silu(&self, x: Ptr, y: Ptr, n: usize) -> Result<()> {
        let xs = self.get(x, n)?;
        self.with_mut(y, n, |ys| {
            for (o, &v) in ys.iter_mut().zip(xs.iter()) {
                *o = silu(v);
            }
        })
    }

    fn layernorm_modulate(
        &self,
        x: Ptr,
        out: Ptr,
        shift: Ptr,
        scale: Ptr,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let xs = self.get(x, rows * cols)?;
        let (sh, sc) = (self.get(shift, cols)?, self.get(scale, cols)?);
        let normed = crate::real::reference::layernorm_modulate(&xs, cols, &sh, &sc);
        self.with_mut(out, rows * cols, |o| o.copy_from_slice(&normed))
    }

    fn gated_residual(
        &self,
        x: Ptr,
        y: Ptr,
        bias: Ptr,
        gate: Ptr,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let ys = self.get(y, rows * cols)?;
        let (bs, gs) = (self.get(bias, cols)?, self.get(gate, cols)?);
        self.with_mut(x, rows * cols, |xs| {
            for (i, (xv, yv)) in xs.iter_mut().zip(ys.iter()).enumerate() {
                let c = i % cols;
                *xv += gs[c] * (yv + bs[c]);
            }
        })
    }

    fn flow_update(
        &self,
        latent: Ptr,
        v: Ptr,
        bias: Ptr,
        dt: f32,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let vs = self.get(v, rows * cols)?;
        let bs = self.get(bias, cols)?;
        self.with_mut(latent, rows * cols, |ls| {
            for (i, (l, vv)) in ls.iter_mut().zip(vs.iter()).enumerate() {
                *l += dt * (vv + bs[i % cols]);
            }
        })
    }

    fn rope(
        &self,
        qkv: Ptr,
        ld: usize,
        cos: Ptr,
        sin: Ptr,
        tokens: usize,
        heads: usize,
        head_dim: usize,
    ) -> Result<()> {
        if tokens == 0 {
            return Ok(());
        }
        let pairs = head_dim / 2;
        let (cs, sn) = (
            self.get(cos, tokens * pairs)?,
            self.get(sin, tokens * pairs)?,
        );
        self.with_mut(qkv, extent(tokens, 2 * heads * head_dim, ld), |q| {
            crate::real::reference::rope(q, ld, tokens, heads, head_dim, &cs, &sn)
        })
    }

    fn attention(&self, qkv: Ptr, out: Ptr, shape: &AttentionShape) -> Result<()> {
        let AttentionShape {
            tokens,
            heads,
            head_dim,
            ld,
            ldo,
            cols,
        } = *shape;
        let qs = self.get(qkv, extent(tokens, 3 * cols, ld))?;
        let scale = 1.0 / (head_dim as f32).sqrt();
        self.with_mut(out, extent(tokens, heads * head_dim, ldo), |o| {
            let mut p = vec![0.0f32; tokens];
            for h in 0..heads {
                let (qc, kc, vc) = (h * head_dim, cols + h * head_dim, 2 * cols + h * head_dim);
                for i in 0..tokens {
                    let q = &qs[i * ld + qc..i * ld + qc + head_dim];
                    for (j, pj) in p.iter_mut().enumerate() {
                        let k = &qs[j * ld + kc..j * ld + kc + head_dim];
                        *pj = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
                    }
                    let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0.0;
                    for pj in p.iter_mut() {
                        *pj = (*pj - max).exp();
                        sum += *pj;
                    }
                    let row = &mut o[i * ldo + h * head_dim..i * ldo + (h + 1) * head_dim];
                    row.fill(0.0);
                    for (j, pj) in p.iter().enumerate() {
                        let v = &qs[j * ld + vc..j * ld + vc + head_dim];
                        let w = pj / sum;
                        for (od, vd) in row.iter_mut().zip(v) {
                            *od += w * vd;
                        }
                    }
                }
            }
        })
    }

    fn copy_2d(
        &self,
        (dst, dld): (Ptr, usize),
        (src, sld): (Ptr, usize),
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        let s = self.get(src, extent(rows, cols, sld))?;
        self.with_mut(dst, extent(rows, cols, dld), |d| {
            for r in 0..rows {
                d[r * dld..r * dld + cols].copy_from_slice(&s[r * sld..r * sld + cols]);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_with_strides_and_beta_by_hand() {
        let mut o = CpuOps::new();
        // X = [[1, 2], [3, 4]] in rows of stride 3; W = [[1, 0, 2], [0, 1, 1]].
        let x = o.alloc(6).unwrap();
        o.write(x, &[1.0, 2.0, 9.0, 3.0, 4.0, 9.0]).unwrap();
        let w = o.alloc(6).unwrap();
        o.write(w, &[1.0, 0.0, 2.0, 0.0, 1.0, 1.0]).unwrap();
        let y = o.alloc(6).unwrap();
        o.write(y, &[1.0; 6]).unwrap();
        o.gemm((x, 3), (w, 3), (y, 3), 2, 2, 3, 0.5).unwrap();
        assert_eq!(o.read(y, 6).unwrap(), vec![1.5, 2.5, 4.5, 3.5, 4.5, 10.5]);
    }

    #[test]
    fn shared_buffers_are_read_only_and_aliasing_is_refused() {
        let mut o = CpuOps::new();
        let w = o.alloc(4).unwrap();
        o.write(w, &[1.0, 2.0, 3.0, 4.0]).unwrap();
        let shared = o.freeze();
        let mut rank = CpuOps::sharing(shared);
        assert_eq!(rank.read(w, 4).unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
        assert!(rank.write(w, &[0.0]).is_err(), "weights are read-only");
        let a = rank.alloc(4).unwrap();
        assert_ne!(a.buf, w.buf);
        rank.copy_2d((a, 2), (w, 2), 2, 2).unwrap();
        assert_eq!(rank.read(a, 4).unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
        assert!(rank.read(a.at(3), 2).is_err(), "out of bounds");
    }
}
