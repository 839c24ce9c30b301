// Seeded initialisation of weights and inputs on the device.
#include "common.cuh"

// out[i] = uniform in [-scale, scale) from (seed, i), exactly as init::uniform on the host.
extern "C" __global__ void fill_uniform_bf16(bf16* out, u64 n, u64 seed, float scale) {
    u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        u64 z = splitmix(seed ^ (i * GOLDEN));
        float u = (float)(z >> 40) / 16777216.0f;
        out[i] = f2bf(__fmul_rn(__fsub_rn(__fmul_rn(2.0f, u), 1.0f), scale));
    }
}
