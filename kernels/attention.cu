// The softmax of chunked attention: scores come from a cuBLAS GEMM (already scaled by
// 1/sqrt(head_dim), in f32), probabilities go to the P.V GEMM in bf16.
#include "common.cuh"

// One block per row of `cols` scores.
extern "C" __global__ void softmax_f32_bf16(const float* scores, bf16* probs, long long rows, int cols) {
    __shared__ float scratch[32];
    long long row = blockIdx.x;
    if (row >= rows) return;
    const float* s = scores + row * cols;
    float m = -3.402823466e38f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, s[c]);
    m = block_max(m, scratch);
    float sum = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) sum += expf(s[c] - m);
    float inv = 1.0f / block_sum(sum, scratch);
    bf16* p = probs + row * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) p[c] = f2bf(expf(s[c] - m) * inv);
}

// The fused-softmax path: scores written in bf16 by the GEMM (already scaled), turned into
// probabilities in place. Rows are `ld` apart, `ld` a multiple of 8, so every row starts
// 16-byte aligned; the first n / 8 * 8 values move as 16-byte vectors, the rest (under 8) one
// by one. When a row's vectors fit in SOFTMAX_CACHE registers per thread the row is read once
// and written once; longer rows are read three times. src/real/attention.rs mirrors this
// partition (softmax_lanes) and arithmetic (softmax_row_mirror).
#define SOFTMAX_CACHE 8
#define LOG2E 1.4426950408889634f

__device__ __forceinline__ float max8(uint4 v) {
    float f[8];
    unpack8(v, f);
    float m = f[0];
#pragma unroll
    for (int i = 1; i < 8; i++) m = fmaxf(m, f[i]);
    return m;
}

__device__ __forceinline__ float sumexp8(uint4 v, float m) {
    float f[8];
    unpack8(v, f);
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; i++) s += exp2f((f[i] - m) * LOG2E);
    return s;
}

__device__ __forceinline__ uint4 probs8(uint4 v, float m, float inv) {
    float f[8];
    unpack8(v, f);
#pragma unroll
    for (int i = 0; i < 8; i++) f[i] = exp2f((f[i] - m) * LOG2E) * inv;
    return pack8(f);
}

// One block per row (blockDim.x a multiple of 32, at most 1024).
extern "C" __global__ void softmax_inplace_bf16(bf16* scores, long long rows, int n, int ld) {
    __shared__ float scratch[32];
    long long row = blockIdx.x;
    if (row >= rows) return;
    bf16* r = scores + row * (long long)ld;
    uint4* rv = (uint4*)r;
    int vecs = n >> 3, t = threadIdx.x, threads = blockDim.x;
    bool cached = vecs <= SOFTMAX_CACHE * threads;
    uint4 cache[SOFTMAX_CACHE];
    float m = -3.402823466e38f;
    if (cached) {
#pragma unroll
        for (int j = 0; j < SOFTMAX_CACHE; j++) {
            int v = t + j * threads;
            if (v < vecs) {
                cache[j] = rv[v];
                m = fmaxf(m, max8(cache[j]));
            }
        }
    } else {
        for (int v = t; v < vecs; v += threads) m = fmaxf(m, max8(rv[v]));
    }
    for (int c = (vecs << 3) + t; c < n; c += threads) m = fmaxf(m, bf2f(r[c]));
    m = block_max(m, scratch);
    float s = 0.0f;
    if (cached) {
#pragma unroll
        for (int j = 0; j < SOFTMAX_CACHE; j++)
            if (t + j * threads < vecs) s += sumexp8(cache[j], m);
    } else {
        for (int v = t; v < vecs; v += threads) s += sumexp8(rv[v], m);
    }
    for (int c = (vecs << 3) + t; c < n; c += threads) s += exp2f((bf2f(r[c]) - m) * LOG2E);
    float inv = 1.0f / block_sum(s, scratch);
    if (cached) {
#pragma unroll
        for (int j = 0; j < SOFTMAX_CACHE; j++) {
            int v = t + j * threads;
            if (v < vecs) rv[v] = probs8(cache[j], m, inv);
        }
    } else {
        for (int v = t; v < vecs; v += threads) rv[v] = probs8(rv[v], m, inv);
    }
    for (int c = (vecs << 3) + t; c < n; c += threads) r[c] = f2bf(exp2f((bf2f(r[c]) - m) * LOG2E) * inv);
}
