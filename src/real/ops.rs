//! The operations a DiT step is made of, as one interface with a CPU and a GPU implementation.
//!
//! [`model`](super::model) writes the denoising step once, as calls on an [`Ops`]; the CPU
//! backend ([`cpu`](super::cpu), f32 loops) and the GPU backend ([`gpu`](super::gpu), cuBLAS
//! and the kernels of `kernels/`, bf16) implement them. So the block code every rank path runs
//! (CPU threads, GPU lanes, NCCL) is the same code, and `cargo test` checks it against the
//! independent reference in [`reference`](super::reference) on any machine.
//!
//! Memory is addressed by [`Ptr`]: a buffer of the backend's arena and an offset in elements.
//! Tensors are row-major; `ld` is a row stride in elements. Buffers are of the backend's
//! activation type (f32 on the CPU, bf16 on a GPU) except those made by
//! [`Ops::upload_f32`], which always hold f32 (the rotary tables).

use crate::error::Result;

/// A place in a backend's memory: buffer `buf` of its arena, `off` elements in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ptr {
    pub buf: u32,
    pub off: usize,
}

impl Ptr {
    /// `elems` elements further in the same buffer.
    pub fn at(self, elems: usize) -> Ptr {
        Ptr {
            buf: self.buf,
            off: self.off + elems,
        }
    }
}

/// Elements a strided region spans: `rows` rows of `cols` at row stride `ld` (0 if empty).
pub fn extent(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * ld + cols
    }
}

/// A linear layer: weights `[inp, out]` (row-major) and a bias `[out]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    pub w: Ptr,
    pub b: Ptr,
    pub inp: usize,
    pub out: usize,
}

/// The shape of one [`Ops::attention`] call: `heads` heads of `head_dim` over `tokens`
/// tokens, q/k/v rows of stride `ld` with blocks `cols` columns apart, output rows of stride
/// `ldo` (strides in elements). A workspace announces the shapes its step will use, so that a
/// backend can plan them before the step ([`Ops::reserve_attention`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttentionShape {
    pub tokens: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub ld: usize,
    pub ldo: usize,
    pub cols: usize,
}

/// The operations of a DiT step on one device (or one CPU rank). Calls are ordered: each sees
/// the effects of the ones before (a GPU backend queues them on one stream).
pub trait Ops {
    /// A new zeroed buffer of `elems` activation elements.
    fn alloc(&mut self, elems: usize) -> Result<Ptr>;
    /// A new buffer holding `data` as f32 (rotary tables).
    fn upload_f32(&mut self, data: &[f32]) -> Result<Ptr>;
    /// Element `i` of `dst[0..n]` = [`uniform`](super::init::uniform)`(seed, i, scale)`,
    /// rounded to bf16 (as every backend stores weights and inputs).
    fn fill_uniform(&self, dst: Ptr, n: usize, seed: u64, scale: f32) -> Result<()>;
    /// Writes host values to `dst[0..data.len()]` (rounded to the activation type).
    fn write(&self, dst: Ptr, data: &[f32]) -> Result<()>;
    /// Reads `n` values from `src` (waits for queued work).
    fn read(&self, src: Ptr, n: usize) -> Result<Vec<f32>>;

    /// Row-major `Y[rows, out] (ld ldy) = X[rows, inp] (ld ldx) . W[inp, out] (ld ldw) + beta Y`.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        x: (Ptr, usize),
        w: (Ptr, usize),
        y: (Ptr, usize),
        rows: usize,
        inp: usize,
        out: usize,
        beta: f32,
    ) -> Result<()>;
    /// `x[r, c] += b[c]` for `rows` rows of `cols` (row stride `ld`).
    fn bias_add(&self, x: Ptr, b: Ptr, rows: usize, cols: usize, ld: usize) -> Result<()>;
    /// `x[r, c] = gelu(x[r, c] + b[c])` (tanh approximation).
    fn bias_gelu(&self, x: Ptr, b: Ptr, rows: usize, cols: usize, ld: usize) -> Result<()>;
    /// `y[i] = silu(x[i])` for `n` values.
    fn silu(&self, x: Ptr, y: Ptr, n: usize) -> Result<()>;
    /// Layer norm of each row of `x[rows, cols]` (eps 1e-6, no affine), then
    /// `* (1 + scale) + shift`, into `out`.
    fn layernorm_modulate(
        &self,
        x: Ptr,
        out: Ptr,
        shift: Ptr,
        scale: Ptr,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
    /// `x[r, c] += gate[c] * (y[r, c] + bias[c])` (contiguous rows of `cols`).
    fn gated_residual(
        &self,
        x: Ptr,
        y: Ptr,
        bias: Ptr,
        gate: Ptr,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
    /// [`gated_residual`](Ops::gated_residual) on `x`, then
    /// [`layernorm_modulate`](Ops::layernorm_modulate) of the updated `x` into `out`: the
    /// pair every double block runs between its attention and its MLP. A backend may fuse
    /// them (one read of the row instead of three); the default runs the two.
    fn residual_layernorm_modulate(
        &self,
        (x, y, bias, gate): (Ptr, Ptr, Ptr, Ptr),
        (out, shift, scale): (Ptr, Ptr, Ptr),
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        self.gated_residual(x, y, bias, gate, rows, cols)?;
        self.layernorm_modulate(x, out, shift, scale, rows, cols)
    }
    /// The flow-matching update `latent[r, c] += dt * (v[r, c] + bias[c])`.
    fn flow_update(
        &self,
        latent: Ptr,
        v: Ptr,
        bias: Ptr,
        dt: f32,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
    /// Rotates the q and k parts (the first `2 x heads x head_dim` columns) of `tokens` rows of
    /// stride `ld` by the f32 tables `cos`, `sin` (`[tokens, head_dim / 2]`, same first row).
    #[allow(clippy::too_many_arguments)]
    fn rope(
        &self,
        qkv: Ptr,
        ld: usize,
        cos: Ptr,
        sin: Ptr,
        tokens: usize,
        heads: usize,
        head_dim: usize,
    ) -> Result<()>;
    /// Reserves what [`attention`](Ops::attention) needs for each of `shapes` (scratch,
    /// plans), so that the first step neither allocates nor plans. Default: nothing.
    fn reserve_attention(&mut self, shapes: &[AttentionShape]) -> Result<()> {
        let _ = shapes;
        Ok(())
    }
    /// Softmax attention of `shape`: `shape.heads` heads of `shape.head_dim` over
    /// `shape.tokens` tokens; q, k, v are the column blocks `[0, cols)`, `[cols, 2 cols)`,
    /// `[2 cols, 3 cols)` of the rows at `qkv` (stride `shape.ld`); head `h` is columns
    /// `[h d, (h + 1) d)` of each block. Output `[tokens, heads x d]` at `out`, row stride
    /// `shape.ldo`. The shape is the one [`reserve_attention`](Ops::reserve_attention) was
    /// given, so a backend finds its plan by it.
    fn attention(&self, qkv: Ptr, out: Ptr, shape: &AttentionShape) -> Result<()>;
    /// `rows` rows of `cols` elements from `src` (row stride `src.1`) to `dst` (`dst.1`).
    fn copy_2d(&self, dst: (Ptr, usize), src: (Ptr, usize), rows: usize, cols: usize)
    -> Result<()>;
    /// Waits for every queued operation (a no-op on the CPU).
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}
