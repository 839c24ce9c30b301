// Rotary position embedding on the q and k parts of a token's [q | k | v ...] row.
#include "common.cuh"

// One block per token: rotates pairs (2i, 2i+1) of every head of q (columns [0, H)) and k
// (columns [H, 2H)) by the angle whose cos/sin are tables[token * pairs + i].
extern "C" __global__ void rope_bf16(bf16* qkv, const float* cosines, const float* sines, int tokens,
                                     int heads, int head_dim, int ld) {
    long long t = blockIdx.x;
    if (t >= tokens) return;
    int pairs = head_dim / 2, hidden = heads * head_dim;
    for (int j = threadIdx.x; j < 2 * heads * pairs; j += blockDim.x) {
        int part = j / (heads * pairs), rest = j % (heads * pairs);
        int h = rest / pairs, i = rest % pairs;
        bf16* p = qkv + t * ld + part * hidden + h * head_dim + 2 * i;
        float a = bf2f(p[0]), b = bf2f(p[1]);
        float c = cosines[t * pairs + i], s = sines[t * pairs + i];
        p[0] = f2bf(a * c - b * s);
        p[1] = f2bf(a * s + b * c);
    }
}
