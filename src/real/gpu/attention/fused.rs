//! The fused-softmax attention backend: per chunk of queries, a GEMM writes the scaled scores
//! in bf16 (rows padded to a multiple of 8 values), one kernel (`softmax_inplace_bf16` in
//! `kernels/attention.cu`) turns each row into probabilities in place with 16-byte loads,
//! reading the row once when it fits in registers, then a GEMM multiplies by V: a third of the
//! unfused path's scratch traffic. Every device can run it, so it ends the fallback chain
//! after cuDNN.
//!
//! [`softmax_lanes`] and [`softmax_row_mirror`] are the kernel's indexing and arithmetic
//! written in Rust, and [`fused_mirror`] the whole backend on the CPU, so that index coverage
//! on ragged rows and the rounding it does are tested on any machine; they live beside the
//! GPU path so that a change to one shows next to the other.

use std::cell::RefCell;

use cudarc::cublas::sys::{cublasOperation_t, cudaDataType_t};
use cudarc::driver::{CudaSlice, DevicePtr};

use super::GpuAttention;
use crate::error::Result;
use crate::real::gpu::GpuOps;
use crate::real::gpu::arena::BF16;
use crate::real::gpu::launch::A;
use crate::real::kernels::Kernel;
use crate::real::ops::AttentionShape;

/// Values per 16-byte vector of bf16.
pub const VEC: usize = 8;
/// 16-byte vectors each thread of the softmax kernel keeps in registers
/// (`SOFTMAX_CACHE` in `kernels/attention.cu`).
pub const SOFTMAX_CACHE: usize = 8;
/// Threads per block of the softmax kernel (one block per row).
pub const SOFTMAX_THREADS: usize = 512;

/// The score row stride of the fused path: `tokens` rounded up to a multiple of [`VEC`], so
/// that every row starts 16-byte aligned.
pub fn padded_row(tokens: usize) -> usize {
    tokens.div_ceil(VEC) * VEC
}

/// Queries per chunk of the fused path for `tokens` keys and `heads` heads: the bf16 scores
/// (2 bytes per element, rows padded) near 1.5 GB, a multiple of 64 queries, at least one.
pub fn fused_chunk(tokens: usize, heads: usize) -> usize {
    let per_query = (heads * padded_row(tokens) * 2).max(1);
    ((1_500_000_000 / per_query).max(64) / 64 * 64)
        .min(tokens)
        .max(1)
}

/// How one thread of the softmax kernel covers a row of `n` values with `threads` threads:
/// the vector indices it loads (16 bytes each, values `8 v .. 8 v + 8`) and the scalar tail
/// columns. `cached` says whether the row fits in the threads' registers (read once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lane {
    pub vectors: Vec<usize>,
    pub tail: Vec<usize>,
    pub cached: bool,
}

/// The kernel's partition of a row, thread by thread (the same loops as
/// `softmax_inplace_bf16`).
pub fn softmax_lanes(n: usize, threads: usize) -> Vec<Lane> {
    let vecs = n / VEC;
    let cached = vecs <= SOFTMAX_CACHE * threads;
    (0..threads)
        .map(|t| {
            let vectors = if cached {
                (0..SOFTMAX_CACHE)
                    .map(|j| t + j * threads)
                    .filter(|&v| v < vecs)
                    .collect()
            } else {
                (t..vecs).step_by(threads).collect()
            };
            let tail = (vecs * VEC + t..n).step_by(threads).collect();
            Lane {
                vectors,
                tail,
                cached,
            }
        })
        .collect()
}

/// The kernel's arithmetic on one row: the bf16 scores (as the GEMM wrote them) to bf16
/// probabilities, max and sum in f32, `exp2((x - max) * log2 e)`.
pub fn softmax_row_mirror(row: &mut [f32]) {
    use crate::real::init::bf16_round;
    let max = row.iter().map(|&x| bf16_round(x)).fold(f32::MIN, f32::max);
    let e = |x: f32| ((bf16_round(x) - max) * std::f32::consts::LOG2_E).exp2();
    let sum: f32 = row.iter().map(|&x| e(x)).sum();
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x = bf16_round(e(*x) * inv);
    }
}

/// The fused-softmax backend's arithmetic on the CPU (bf16 scaled scores, the kernel's
/// softmax, bf16 probabilities, f32 P.V, bf16 output), for a check shape (`ldo` = `cols` =
/// `heads x head_dim`). What `gpu-check` should see from the GPU up to accumulation order.
pub fn fused_mirror(shape: &AttentionShape, qkv: &[f32]) -> Vec<f32> {
    use crate::real::init::bf16_round;
    let (n, d, ld, cols) = (shape.tokens, shape.head_dim, shape.ld, shape.cols);
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0.0f32; n * shape.ldo];
    let mut row = vec![0.0f32; n];
    for h in 0..shape.heads {
        for i in 0..n {
            let q = &qkv[i * ld + h * d..i * ld + (h + 1) * d];
            for (j, s) in row.iter_mut().enumerate() {
                let k = &qkv[j * ld + cols + h * d..j * ld + cols + (h + 1) * d];
                *s = bf16_round(scale * q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>());
            }
            softmax_row_mirror(&mut row);
            let o = &mut out[i * shape.ldo + h * d..i * shape.ldo + (h + 1) * d];
            for (j, p) in row.iter().enumerate() {
                let v = &qkv[j * ld + 2 * cols + h * d..j * ld + 2 * cols + (h + 1) * d];
                for (od, vd) in o.iter_mut().zip(v) {
                    *od += p * vd;
                }
            }
            o.iter_mut().for_each(|x| *x = bf16_round(*x));
        }
    }
    out
}

/// The fused-softmax backend of one stream: its bf16 score scratch (grow-only).
#[derive(Default)]
pub struct Fused {
    scratch: RefCell<Scratch>,
}

/// The bf16 scores of one chunk, `cap` elements.
#[derive(Default)]
struct Scratch {
    scores: Option<CudaSlice<u8>>,
    cap: usize,
}

impl Fused {
    /// Grows the bf16 score scratch to `elems` (never shrinks).
    fn grow(&self, ops: &GpuOps, s: &mut Scratch, elems: usize) -> Result<()> {
        if s.cap >= elems {
            return Ok(());
        }
        s.scores = None;
        s.cap = 0;
        // SAFETY: every score the softmax and P.V read is written by the scores GEMM first.
        let f = unsafe { ops.stream().alloc::<u8>(BF16 * elems) }.map_err(|e| {
            ops.err(format!(
                "allocating {} MB of attention scratch: {e}",
                (BF16 * elems) >> 20
            ))
        })?;
        s.scores = Some(f);
        s.cap = elems;
        Ok(())
    }
}

impl GpuAttention for Fused {
    fn reserve(&self, ops: &GpuOps, shape: &AttentionShape) -> Result<bool> {
        let (n, heads) = (shape.tokens, shape.heads);
        let mut s = self.scratch.borrow_mut();
        self.grow(ops, &mut s, heads * fused_chunk(n, heads) * padded_row(n))?;
        Ok(true)
    }

    /// Per chunk of queries, bf16 scaled scores from one strided-batched GEMM over heads (rows
    /// padded to 16 bytes), the in-place softmax, and P.V.
    fn run(&self, ops: &GpuOps, shape: &AttentionShape, q: u64, o: u64) -> Result<bool> {
        let (n, heads, d) = (shape.tokens, shape.heads, shape.head_dim);
        let (ld, ldo, cols) = (shape.ld, shape.ldo, shape.cols);
        let ldc = padded_row(n);
        let chunk = fused_chunk(n, heads);
        let mut s = self.scratch.borrow_mut();
        self.grow(ops, &mut s, heads * chunk * ldc)?;
        let scores = match &s.scores {
            Some(f) => f.device_ptr(ops.stream()).0,
            None => return Err(ops.err("attention scratch missing")),
        };
        let scale = 1.0 / (d as f32).sqrt();
        let bf = cudaDataType_t::CUDA_R_16BF;
        let (op_n, op_t) = (
            cublasOperation_t::CUBLAS_OP_N,
            cublasOperation_t::CUBLAS_OP_T,
        );
        let stride = |elems: usize| (BF16 * elems) as u64;
        let mut start = 0;
        while start < n {
            let cq = chunk.min(n - start);
            let per_head = (ldc * cq) as i64;
            // S^T[N, cq] (column stride ldc) = scale K^T . Q per head, written in bf16.
            ops.batched_gemm(
                op_t,
                op_n,
                (n, cq, d),
                scale,
                (q + stride(cols), ld, d as i64, bf),
                (q + stride(start * ld), ld, d as i64, bf),
                0.0,
                (scores, ldc, per_head, bf),
                heads,
            )?;
            let rows = heads * cq;
            ops.launch_block(
                Kernel::SoftmaxInplace,
                rows as u32,
                SOFTMAX_THREADS as u32,
                &[
                    A::P(scores),
                    A::I64(rows as i64),
                    A::I32(n as i32),
                    A::I32(ldc as i32),
                ],
            )?;
            ops.batched_gemm(
                op_n,
                op_n,
                (d, cq, n),
                1.0,
                (q + stride(2 * cols), ld, d as i64, bf),
                (scores, ldc, per_head, bf),
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
    fn every_column_of_a_ragged_row_is_covered_once() {
        for n in [1usize, 7, 8, 9, 128, 1137, 4095, 4608, 16_896, 40_000] {
            for threads in [32, SOFTMAX_THREADS] {
                let lanes = softmax_lanes(n, threads);
                let mut seen = vec![0u8; n];
                for l in &lanes {
                    for &v in &l.vectors {
                        seen[v * VEC..(v + 1) * VEC]
                            .iter_mut()
                            .for_each(|s| *s += 1);
                    }
                    for &c in &l.tail {
                        seen[c] += 1;
                    }
                    assert!(l.tail.len() <= 1, "a tail is shorter than a vector");
                }
                assert!(seen.iter().all(|&s| s == 1), "n {n}, {threads} threads");
                // Rows of FLUX.1-dev up to 2048 px (16,896 tokens) stay in registers.
                assert_eq!(lanes[0].cached, n / VEC <= SOFTMAX_CACHE * threads);
            }
        }
        assert!(softmax_lanes(16_896, SOFTMAX_THREADS)[0].cached);
    }

    #[test]
    fn padded_rows_are_16_byte_aligned_and_chunks_fit() {
        assert_eq!(padded_row(1137), 1144);
        assert_eq!(padded_row(4608), 4608);
        assert_eq!(padded_row(1), 8);
        let cq = fused_chunk(16_896, 24);
        assert_eq!(cq % 64, 0);
        assert!(24 * cq * padded_row(16_896) * 2 <= 1_500_000_000);
        // Three times the unfused path's chunk (6 bytes per score there, 2 here).
        assert!(cq >= 3 * super::super::unfused::attention_chunk(16_896, 24) - 64);
        assert_eq!(fused_chunk(20, 8), 20);
    }

    #[test]
    fn the_mirrored_softmax_matches_the_reference_within_bf16() {
        // Scores as the CPU reference computes them for one row, then the kernel's arithmetic.
        let n = 1137;
        let scores: Vec<f32> = (0..n)
            .map(|i| crate::real::init::uniform(7, i as u64, 6.0))
            .collect();
        let max = scores.iter().copied().fold(f32::MIN, f32::max);
        let sum: f32 = scores.iter().map(|s| (s - max).exp()).sum();
        let want: Vec<f32> = scores.iter().map(|s| (s - max).exp() / sum).collect();
        let mut got = scores.clone();
        softmax_row_mirror(&mut got);
        let err = crate::real::check::relative_error(&got, &want);
        // bf16 scores (8 bits of mantissa) at |s| <= 6 move exp by up to ~2%; the norm much less.
        assert!(err < 2e-2, "{err}");
        assert!(err > 0.0, "the rounding is mirrored");
        let total: f32 = got.iter().sum();
        assert!((total - 1.0).abs() < 1e-2, "{total}");
    }
}
