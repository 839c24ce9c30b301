//! The unfused attention backend: f32 scores, the three-pass softmax into a bf16 copy, P.V.
//! The original GPU path, kept as the on-GPU oracle of `gpu-check` (and for
//! `TETRISERVE_ATTENTION=unfused`).
//!
//! Attention is chunked over queries: for a chunk of `cq` queries one strided-batched GEMM
//! over heads gives the f32 scores `[heads, cq, N]`, the softmax kernel turns them into bf16
//! probabilities, a second strided-batched GEMM multiplies by V. The chunk keeps the scratch
//! near 1.5 GB (scores for 24 heads x 512 queries x 16,896 keys: 0.8 GB).

use std::cell::RefCell;

use cudarc::cublas::sys::{cublasOperation_t, cudaDataType_t};
use cudarc::driver::{CudaSlice, DevicePtr};

use super::GpuAttention;
use crate::error::Result;
use crate::real::gpu::GpuOps;
use crate::real::gpu::arena::{BF16, F32};
use crate::real::gpu::launch::A;
use crate::real::kernels::Kernel;
use crate::real::ops::AttentionShape;

/// Queries per attention chunk for `tokens` keys and `heads` heads: scores and probabilities
/// (6 bytes per element) near 1.5 GB, a multiple of 64 queries, at least one.
pub fn attention_chunk(tokens: usize, heads: usize) -> usize {
    let per_query = (heads * tokens * 6).max(1);
    ((1_500_000_000 / per_query).max(64) / 64 * 64)
        .min(tokens)
        .max(1)
}

/// The unfused backend of one stream: its f32 score and bf16 probability scratch
/// (grow-only).
#[derive(Default)]
pub struct Unfused {
    scratch: RefCell<Scratch>,
}

/// f32 scores and bf16 probabilities of one chunk, `cap` elements each.
#[derive(Default)]
struct Scratch {
    scores: Option<CudaSlice<u8>>,
    probs: Option<CudaSlice<u8>>,
    cap: usize,
}

impl Unfused {
    /// Grows the attention scratch to `elems` scores and probabilities (never shrinks).
    fn grow(&self, ops: &GpuOps, s: &mut Scratch, elems: usize) -> Result<()> {
        if s.cap >= elems {
            return Ok(());
        }
        // Stream-ordered: the old buffers are freed after the work queued on them.
        s.scores = None;
        s.probs = None;
        s.cap = 0;
        let alloc = |bytes: usize| {
            // SAFETY: scratch; every element is written (scores by the GEMM, probabilities by
            // the softmax) before it is read.
            unsafe { ops.stream().alloc::<u8>(bytes) }.map_err(|e| {
                ops.err(format!(
                    "allocating {} MB of attention scratch: {e}",
                    bytes >> 20
                ))
            })
        };
        s.scores = Some(alloc(F32 * elems)?);
        s.probs = Some(alloc(BF16 * elems)?);
        s.cap = elems;
        Ok(())
    }
}

impl GpuAttention for Unfused {
    fn reserve(&self, ops: &GpuOps, shape: &AttentionShape) -> Result<bool> {
        let (n, heads) = (shape.tokens, shape.heads);
        let mut s = self.scratch.borrow_mut();
        self.grow(ops, &mut s, heads * attention_chunk(n, heads) * n)?;
        Ok(true)
    }

    fn run(&self, ops: &GpuOps, shape: &AttentionShape, q: u64, o: u64) -> Result<bool> {
        let (n, heads, d) = (shape.tokens, shape.heads, shape.head_dim);
        let (ld, ldo, cols) = (shape.ld, shape.ldo, shape.cols);
        let chunk = attention_chunk(n, heads);
        let mut s = self.scratch.borrow_mut();
        // Reserved by the workspace; grows only for shapes no workspace announced.
        self.grow(ops, &mut s, heads * chunk * n)?;
        let stream = ops.stream();
        let (scores, probs) = match (&s.scores, &s.probs) {
            (Some(a), Some(b)) => (a.device_ptr(stream).0, b.device_ptr(stream).0),
            _ => return Err(ops.err("attention scratch missing")),
        };
        let scale = 1.0 / (d as f32).sqrt();
        let (bf, f) = (cudaDataType_t::CUDA_R_16BF, cudaDataType_t::CUDA_R_32F);
        let (op_n, op_t) = (
            cublasOperation_t::CUBLAS_OP_N,
            cublasOperation_t::CUBLAS_OP_T,
        );
        let stride = |elems: usize| (BF16 * elems) as u64;
        let mut start = 0;
        while start < n {
            let cq = chunk.min(n - start);
            let nc = (n * cq) as i64;
            // Scores: S^T[N, cq] = K^T . Q per head (column-major), f32.
            ops.batched_gemm(
                op_t,
                op_n,
                (n, cq, d),
                scale,
                (q + stride(cols), ld, d as i64, bf),
                (q + stride(start * ld), ld, d as i64, bf),
                0.0,
                (scores, n, nc, f),
                heads,
            )?;
            let rows = heads * cq;
            ops.launch(
                Kernel::Softmax,
                rows as u32,
                &[
                    A::P(scores),
                    A::P(probs),
                    A::I64(rows as i64),
                    A::I32(n as i32),
                ],
            )?;
            // O^T[d, cq] = V^T . P^T per head, written at row `start`, column h * d of `out`.
            ops.batched_gemm(
                op_n,
                op_n,
                (d, cq, n),
                1.0,
                (q + stride(2 * cols), ld, d as i64, bf),
                (probs, n, nc, bf),
                0.0,
                (o + stride(start * ldo), ldo, d as i64, bf),
                heads,
            )?;
            start += cq;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_chunks_stay_near_the_bound() {
        // FLUX.1-dev at 2048 px: 24 heads, 16,896 tokens -> 576 queries (1.4 GB of scratch).
        let cq = attention_chunk(16_896, 24);
        assert_eq!(cq % 64, 0);
        assert!(24 * cq * 16_896 * 6 <= 1_500_000_000, "{cq}");
        assert!(24 * (cq + 64) * 16_896 * 6 > 1_500_000_000, "{cq}");
        // Short sequences: one chunk of every query.
        assert_eq!(attention_chunk(20, 8), 20);
        assert_eq!(attention_chunk(1, 1), 1);
        // Huge ones never go below 64 queries.
        assert_eq!(attention_chunk(10_000_000, 64), 64);
    }
}
