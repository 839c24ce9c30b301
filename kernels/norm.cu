// Layer norm (no affine, eps 1e-6) fused with adaLN modulation: out = LN(x) * (1 + scale) + shift.
#include "common.cuh"

// One block per row of `cols`; shift and scale are `cols` long (one batch item's modulation).
extern "C" __global__ void layernorm_modulate_bf16(const bf16* x, bf16* out, const bf16* shift,
                                                   const bf16* scale, int rows, int cols) {
    __shared__ float scratch[32];
    long long row = blockIdx.x;
    if (row >= rows) return;
    const bf16* xr = x + row * cols;
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) s += bf2f(xr[c]);
    float mean = block_sum(s, scratch) / cols;
    float v = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float d = bf2f(xr[c]) - mean;
        v += d * d;
    }
    float inv = rsqrtf(block_sum(v, scratch) / cols + 1e-6f);
    bf16* o = out + row * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        o[c] = f2bf((bf2f(xr[c]) - mean) * inv * (1.0f + bf2f(scale[c])) + bf2f(shift[c]));
}
