// Strided 2-D copies: the device side of the Ulysses all-to-all (src/real/ulysses.rs), and
// the packing of strided blocks into contiguous NCCL send buffers.
#include "common.cuh"

// dst[r * dst_ld + c] = src[r * src_ld + c] for r < rows, c < cols.
extern "C" __global__ void copy_2d_bf16(bf16* dst, long long dst_ld, const bf16* src, long long src_ld,
                                        long long rows, int cols) {
    long long n = rows * cols, stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        long long r = i / cols;
        int c = (int)(i % cols);
        dst[r * dst_ld + c] = src[r * src_ld + c];
    }
}
