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
