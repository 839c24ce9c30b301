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
