//! The [`Ops`] implementation on one CUDA stream: cuBLAS `gemm_ex` for the linear layers,
//! one kernel launch (`kernels/*.cu`) for every other operation, attention through the
//! stream's backends ([`attention`](crate::real::gpu::attention)).
//!
//! Each operation binds the device's context, resolves its [`Ptr`]s through the arena (bounds
//! and types checked), then queues its work; only the host transfers wait. Kept apart from the
//! arena and the launch primitives so that this file reads as the list of operations the
//! model calls, each beside its kernel's arguments.

use std::ffi::c_void;

use cudarc::cublas::sys::{
    cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType_t,
};

use super::GpuOps;
use super::arena::{BF16, F32};
use super::launch::A;
use crate::error::Result;
use crate::real::kernels::Kernel;
use crate::real::ops::{AttentionShape, Ops, Ptr, extent};

impl GpuOps {
    /// A bias kernel (`BiasAdd` or `BiasGelu`) over `rows` rows of `cols` at stride `ld`: its
    /// vectorised twin (a block per row, 16-byte loads) where the rows and the bias are
    /// aligned for it, the element-wise one otherwise.
    fn bias_kernel(
        &self,
        k: Kernel,
        x: Ptr,
        b: Ptr,
        rows: usize,
        cols: usize,
        ld: usize,
    ) -> Result<()> {
        self.bind()?;
        let xa = self.addr_mut(x, extent(rows, cols, ld))?;
        let ba = self.addr(b, cols)?;
        if rows > 0 && crate::real::kernels::vec_fits(cols, ld, xa, ba) {
            let vec = match k {
                Kernel::BiasAdd => Kernel::BiasAddVec,
                _ => Kernel::BiasGeluVec,
            };
            return self.launch(
                vec,
                rows.min(1 << 20) as u32,
                &[
                    A::P(xa),
                    A::P(ba),
                    A::I64(rows as i64),
                    A::I32(cols as i32),
                    A::I32(ld as i32),
                ],
            );
        }
        self.elementwise(
            k,
            rows * cols,
            &[
                A::P(xa),
                A::P(ba),
                A::I64(rows as i64),
                A::I32(cols as i32),
                A::I32(ld as i32),
            ],
        )
    }
}

/// Host values rounded to bf16, as the device stores them.
fn bf16_bits(data: &[f32]) -> Vec<u16> {
    data.iter()
        .map(|&x| half::bf16::from_f32(x).to_bits())
        .collect()
}

impl Ops for GpuOps {
    fn alloc(&mut self, elems: usize) -> Result<Ptr> {
        self.push(elems, BF16)
    }

    fn upload_f32(&mut self, data: &[f32]) -> Result<Ptr> {
        let p = self.push(data.len(), F32)?;
        if !data.is_empty() {
            let a = self.resolve(p, data.len(), F32, true)?;
            // SAFETY: `a` holds data.len() f32 values; the stream is synchronised before `data`
            // can go away.
            unsafe { cudarc::driver::result::memcpy_htod_async(a, data, self.stream.cu_stream()) }
                .map_err(|e| self.err(format!("upload: {e}")))?;
            self.synchronize()?;
        }
        Ok(p)
    }

    fn fill_uniform(&self, dst: Ptr, n: usize, seed: u64, scale: f32) -> Result<()> {
        self.bind()?;
        let a = self.addr_mut(dst, n)?;
        self.elementwise(
            Kernel::FillUniform,
            n,
            &[A::P(a), A::U64(n as u64), A::U64(seed), A::F32(scale)],
        )
    }

    fn write(&self, dst: Ptr, data: &[f32]) -> Result<()> {
        self.bind()?;
        if data.is_empty() {
            return Ok(());
        }
        let (e, _) = self
            .entry(dst.buf)
            .ok_or_else(|| self.err(format!("no buffer {}", dst.buf)))?;
        let a = self.resolve(dst, data.len(), e.elem, true)?;
        let s = self.stream.cu_stream();
        let err = |e| self.err(format!("upload: {e}"));
        if e.elem == F32 {
            // SAFETY: `a` holds data.len() f32 values; the stream is synchronised before
            // `data` can go away.
            unsafe { cudarc::driver::result::memcpy_htod_async(a, data, s) }.map_err(err)?;
            self.synchronize()
        } else {
            let bits = bf16_bits(data);
            // SAFETY: `a` holds data.len() bf16 values; the stream is synchronised before
            // `bits` is dropped.
            unsafe { cudarc::driver::result::memcpy_htod_async(a, &bits, s) }.map_err(err)?;
            self.synchronize()
        }
    }

    fn read(&self, src: Ptr, n: usize) -> Result<Vec<f32>> {
        self.bind()?;
        let (e, _) = self
            .entry(src.buf)
            .ok_or_else(|| self.err(format!("no buffer {}", src.buf)))?;
        let a = self.resolve(src, n, e.elem, false)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let s = self.stream.cu_stream();
        let err = |e| self.err(format!("download: {e}"));
        if e.elem == F32 {
            let mut out = vec![0f32; n];
            // SAFETY: `a` holds n f32 values; the stream is synchronised before `out` is read.
            unsafe { cudarc::driver::result::memcpy_dtoh_async(&mut out, a, s) }.map_err(err)?;
            self.synchronize()?;
            Ok(out)
        } else {
            let mut raw = vec![0u16; n];
            // SAFETY: `a` holds n bf16 values; the stream is synchronised before `raw` is read.
            unsafe { cudarc::driver::result::memcpy_dtoh_async(&mut raw, a, s) }.map_err(err)?;
            self.synchronize()?;
            Ok(raw
                .iter()
                .map(|&b| half::bf16::from_bits(b).to_f32())
                .collect())
        }
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
        if rows == 0 || out == 0 {
            return Ok(());
        }
        self.bind()?;
        let xa = self.addr(x, extent(rows, inp, ldx))?;
        let wa = self.addr(w, extent(inp, out, ldw))?;
        let ya = self.addr_mut(y, extent(rows, out, ldy))?;
        let alpha = 1.0f32;
        // SAFETY: the three operands were checked to hold the shapes passed.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.blas.handle(),
                cublasOperation_t::CUBLAS_OP_N,
                cublasOperation_t::CUBLAS_OP_N,
                out as i32,
                rows as i32,
                inp as i32,
                (&alpha) as *const f32 as *const c_void,
                wa as *const c_void,
                cudaDataType_t::CUDA_R_16BF,
                ldw as i32,
                xa as *const c_void,
                cudaDataType_t::CUDA_R_16BF,
                ldx as i32,
                (&beta) as *const f32 as *const c_void,
                ya as *mut c_void,
                cudaDataType_t::CUDA_R_16BF,
                ldy as i32,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| self.err(format!("cuBLAS GEMM ({rows}x{inp} . {inp}x{out}): {e}")))
    }

    fn bias_add(&self, x: Ptr, b: Ptr, rows: usize, cols: usize, ld: usize) -> Result<()> {
        self.bias_kernel(Kernel::BiasAdd, x, b, rows, cols, ld)
    }

    fn bias_gelu(&self, x: Ptr, b: Ptr, rows: usize, cols: usize, ld: usize) -> Result<()> {
        self.bias_kernel(Kernel::BiasGelu, x, b, rows, cols, ld)
    }

    fn silu(&self, x: Ptr, y: Ptr, n: usize) -> Result<()> {
        self.bind()?;
        let (xa, ya) = (self.addr(x, n)?, self.addr_mut(y, n)?);
        self.elementwise(Kernel::Silu, n, &[A::P(xa), A::P(ya), A::I64(n as i64)])
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
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        self.bind()?;
        let args = [
            A::P(self.addr(x, rows * cols)?),
            A::P(self.addr_mut(out, rows * cols)?),
            A::P(self.addr(shift, cols)?),
            A::P(self.addr(scale, cols)?),
            A::I32(rows as i32),
            A::I32(cols as i32),
        ];
        self.launch(Kernel::LayernormModulate, rows as u32, &args)
    }

    fn residual_layernorm_modulate(
        &self,
        (x, y, bias, gate): (Ptr, Ptr, Ptr, Ptr),
        (out, shift, scale): (Ptr, Ptr, Ptr),
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        self.bind()?;
        let args = [
            A::P(self.addr_mut(x, rows * cols)?),
            A::P(self.addr(y, rows * cols)?),
            A::P(self.addr(bias, cols)?),
            A::P(self.addr(gate, cols)?),
            A::P(self.addr_mut(out, rows * cols)?),
            A::P(self.addr(shift, cols)?),
            A::P(self.addr(scale, cols)?),
            A::I32(rows as i32),
            A::I32(cols as i32),
        ];
        self.launch(Kernel::ResidualLayernormModulate, rows as u32, &args)
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
        self.bind()?;
        let args = [
            A::P(self.addr_mut(x, rows * cols)?),
            A::P(self.addr(y, rows * cols)?),
            A::P(self.addr(bias, cols)?),
            A::P(self.addr(gate, cols)?),
            A::I64(rows as i64),
            A::I32(cols as i32),
        ];
        self.elementwise(Kernel::GatedResidual, rows * cols, &args)
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
        self.bind()?;
        let args = [
            A::P(self.addr_mut(latent, rows * cols)?),
            A::P(self.addr(v, rows * cols)?),
            A::P(self.addr(bias, cols)?),
            A::F32(dt),
            A::I64(rows as i64),
            A::I32(cols as i32),
        ];
        self.elementwise(Kernel::FlowUpdate, rows * cols, &args)
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
        self.bind()?;
        let pairs = head_dim / 2;
        let args = [
            A::P(self.addr_mut(qkv, extent(tokens, 2 * heads * head_dim, ld))?),
            A::P(self.resolve(cos, tokens * pairs, F32, false)?),
            A::P(self.resolve(sin, tokens * pairs, F32, false)?),
            A::I32(tokens as i32),
            A::I32(heads as i32),
            A::I32(head_dim as i32),
            A::I32(ld as i32),
        ];
        self.launch(Kernel::Rope, tokens as u32, &args)
    }

    fn reserve_attention(&mut self, shapes: &[AttentionShape]) -> Result<()> {
        self.bind()?;
        for shape in shapes {
            self.attention.reserve(self, shape)?;
        }
        Ok(())
    }

    fn attention(&self, qkv: Ptr, out: Ptr, shape: &AttentionShape) -> Result<()> {
        let (n, heads, d) = (shape.tokens, shape.heads, shape.head_dim);
        if n == 0 || heads == 0 {
            return Ok(());
        }
        self.bind()?;
        let q = self.addr(qkv, extent(n, 3 * shape.cols, shape.ld))?;
        let o = self.addr_mut(out, extent(n, heads * d, shape.ldo))?;
        if heads * d > shape.cols {
            return Err(self.err(format!(
                "{heads} heads of {d} in q/k/v blocks of {} columns",
                shape.cols
            )));
        }
        self.attention.run(self, shape, q, o)
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
        self.bind()?;
        let d = self.addr_mut(dst, extent(rows, cols, dld))?;
        let s = self.addr(src, extent(rows, cols, sld))?;
        // SAFETY: both regions were checked against this arena's live buffers.
        unsafe { self.copy_2d_raw((d, dld), (s, sld), rows, cols) }
    }

    fn synchronize(&self) -> Result<()> {
        self.bind()?;
        self.stream
            .synchronize()
            .map_err(|e| self.err(format!("synchronising: {e}")))
    }
}
