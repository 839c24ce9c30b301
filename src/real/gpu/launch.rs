//! How work reaches a stream: kernel launches (argument lists, grid sizes) and cuBLAS
//! strided-batched GEMMs, the two primitives every operation and every attention backend is
//! built from.
//!
//! Kept apart from the operations so that an attention backend
//! ([`attention`](crate::real::gpu::attention)) queues its GEMMs and kernels through the same
//! checked calls as [`Ops`](crate::real::ops::Ops) does, without reaching into the arena.

use std::ffi::c_void;

use cudarc::cublas::sys::{
    cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType_t,
};
use cudarc::driver::{LaunchConfig, PushKernelArg};

use super::GpuOps;
use crate::error::Result;
use crate::real::kernels::Kernel;

/// Threads per block of the element-wise and row kernels.
pub(crate) const THREADS: u32 = 256;

fn grid_for(n: usize) -> u32 {
    (n.div_ceil(THREADS as usize)).clamp(1, 1 << 20) as u32
}

/// A kernel argument. Kept in a slice that outlives the launch, since the driver reads each
/// argument through a pointer.
#[derive(Clone, Copy)]
pub(crate) enum A {
    P(u64),
    U64(u64),
    I64(i64),
    I32(i32),
    F32(f32),
}

/// A cuBLAS operand: (address, leading dimension, stride between batch entries, type).
pub(crate) type Operand = (u64, usize, i64, cudaDataType_t);

impl GpuOps {
    /// Launches `k` with one block of [`THREADS`] per grid entry.
    pub(crate) fn launch(&self, k: Kernel, grid: u32, args: &[A]) -> Result<()> {
        self.launch_block(k, grid, THREADS, args)
    }

    /// Launches `k` with `grid` blocks of `block` threads.
    pub(crate) fn launch_block(&self, k: Kernel, grid: u32, block: u32, args: &[A]) -> Result<()> {
        let f = self.dev.kernels.get(k);
        let mut b = self.stream.launch_builder(f);
        for a in args {
            match a {
                A::P(p) => b.arg(p),
                A::U64(v) => b.arg(v),
                A::I64(v) => b.arg(v),
                A::I32(v) => b.arg(v),
                A::F32(v) => b.arg(v),
            };
        }
        let cfg = LaunchConfig {
            grid_dim: (grid.max(1), 1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: every caller passes exactly the kernel's parameters, in order, with
        // addresses checked to hold the sizes it passes.
        unsafe { b.launch(cfg) }
            .map(|_| ())
            .map_err(|e| self.err(format!("launching {}: {e}", k.name())))
    }

    /// Launches a grid-stride element-wise kernel over `n` elements.
    pub(crate) fn elementwise(&self, k: Kernel, n: usize, args: &[A]) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.launch(k, grid_for(n), args)
    }

    /// Column-major strided-batched GEMM `C = alpha op(A) op(B) + beta C`, f32 accumulation.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn batched_gemm(
        &self,
        ta: cublasOperation_t,
        tb: cublasOperation_t,
        (m, n, k): (usize, usize, usize),
        alpha: f32,
        a: Operand,
        b: Operand,
        beta: f32,
        c: Operand,
        batch: usize,
    ) -> Result<()> {
        // SAFETY: the caller checked that the operands lie in live allocations large enough for
        // the shapes.
        unsafe {
            cudarc::cublas::result::gemm_strided_batched_ex(
                *self.blas.handle(),
                ta,
                tb,
                m as i32,
                n as i32,
                k as i32,
                (&alpha) as *const f32 as *const c_void,
                a.0 as *const c_void,
                a.3,
                a.1 as i32,
                a.2,
                b.0 as *const c_void,
                b.3,
                b.1 as i32,
                b.2,
                (&beta) as *const f32 as *const c_void,
                c.0 as *mut c_void,
                c.3,
                c.1 as i32,
                c.2,
                batch as i32,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| self.err(format!("cuBLAS batched GEMM ({m}x{n}x{k}, {batch}): {e}")))
    }

    /// `rows` rows of `cols` bf16 values from address `src` (row stride `src.1`) to `dst`
    /// (`dst.1`), queued on this stream.
    ///
    /// # Safety
    /// Both regions must lie in live allocations on this device, and any other stream that
    /// writes `src` or uses `dst` must be ordered with this one (events).
    pub unsafe fn copy_2d_raw(
        &self,
        dst: (u64, usize),
        src: (u64, usize),
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        self.bind()?;
        self.elementwise(
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
}
