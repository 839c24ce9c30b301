// Bias, GELU (tanh approximation) and SiLU, element-wise, in place where possible.
#include "common.cuh"

__device__ __forceinline__ float gelu(float x) {
    return 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)));
}

// x[r * ld + c] += bias[c] for r < rows, c < cols.
extern "C" __global__ void bias_add_bf16(bf16* x, const bf16* bias, long long rows, int cols, int ld) {
    long long n = rows * cols, stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        long long r = i / cols;
        int c = (int)(i % cols);
        bf16* p = x + r * ld + c;
        *p = f2bf(bf2f(*p) + bf2f(bias[c]));
    }
}

// x = gelu(x + bias), same indexing as bias_add_bf16.
extern "C" __global__ void bias_gelu_bf16(bf16* x, const bf16* bias, long long rows, int cols, int ld) {
    long long n = rows * cols, stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        long long r = i / cols;
        int c = (int)(i % cols);
        bf16* p = x + r * ld + c;
        *p = f2bf(gelu(bf2f(*p) + bf2f(bias[c])));
    }
}

// y = silu(x).
extern "C" __global__ void silu_bf16(const bf16* x, bf16* y, long long n) {
    long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float v = bf2f(x[i]);
        y[i] = f2bf(v / (1.0f + expf(-v)));
    }
}

// Vectorised forms of bias_add_bf16 / bias_gelu_bf16 for cols and ld multiples of 8 and
// 16-byte aligned x and bias: rows r = blockIdx.x, blockIdx.x + gridDim.x, ...; in a row,
// thread t takes the 16-byte vectors t, t + blockDim.x, ... No 64-bit division per element.
// src/real/kernels.rs mirrors the partition (vec_rows_cover) and the choice (vec_fits).
extern "C" __global__ void bias_add_vec_bf16(bf16* x, const bf16* bias, long long rows, int cols, int ld) {
    int vecs = cols >> 3;
    const uint4* b = (const uint4*)bias;
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        uint4* xr = (uint4*)(x + r * ld);
        for (int v = threadIdx.x; v < vecs; v += blockDim.x) {
            float f[8], g[8];
            unpack8(xr[v], f);
            unpack8(b[v], g);
#pragma unroll
            for (int i = 0; i < 8; i++) f[i] += g[i];
            xr[v] = pack8(f);
        }
    }
}

extern "C" __global__ void bias_gelu_vec_bf16(bf16* x, const bf16* bias, long long rows, int cols, int ld) {
    int vecs = cols >> 3;
    const uint4* b = (const uint4*)bias;
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        uint4* xr = (uint4*)(x + r * ld);
        for (int v = threadIdx.x; v < vecs; v += blockDim.x) {
            float f[8], g[8];
            unpack8(xr[v], f);
            unpack8(b[v], g);
#pragma unroll
            for (int i = 0; i < 8; i++) f[i] = gelu(f[i] + g[i]);
            xr[v] = pack8(f);
        }
    }
}
