#!/usr/bin/env python3
"""PyTorch reference of one FLUX.1-dev denoising step (same block shapes as tetriserve's
real backend: 19 double-stream + 38 single-stream blocks, hidden 3072, 24 heads, MLP 4x,
512 text tokens, RoPE, adaLN modulation), bf16 weights drawn at random, attention through
PyTorch's scaled_dot_product_attention. Prints
`resolution,batch,torch_ms,sdpa_backend,torch_version,cudnn_version` (median of timed steps
after warm-up, CUDA events). The speed anchor for tetriserve's own step time.

--sdpa-backend pins SDPA to one backend (cudnn, flash, efficient, math); `fastest` times each
one PyTorch can run for the shape and reports the fastest, with its name (every backend's time
goes to stderr). `default` leaves the choice to PyTorch."""
import argparse
import sys

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--resolutions", default="256,512,1024,2048")
p.add_argument("--batches", default="1")
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--repeats", type=int, default=3)
p.add_argument("--double", type=int, default=19)
p.add_argument("--single", type=int, default=38)
p.add_argument("--sdpa-backend", default="default", choices=["default", "cudnn", "flash", "efficient", "math", "fastest"])
a = p.parse_args()

H, HEADS, M, NT, C = 3072, 24, 4 * 3072, 512, 64
D = H // HEADS
dev, dt = "cuda", torch.bfloat16
torch.manual_seed(0)


def lin(i, o, scale=1.0):
    return (torch.randn(i, o, device=dev, dtype=dt) * (scale / i**0.5), torch.zeros(o, device=dev, dtype=dt))


def apply(x, l):
    return torch.addmm(l[1], x.reshape(-1, x.shape[-1]), l[0]).reshape(*x.shape[:-1], l[0].shape[1])


doubles = [[[lin(H, 6 * H, 0.1), lin(H, 3 * H), lin(H, H), lin(H, M), lin(M, H)] for _ in range(2)] for _ in range(a.double)]
singles = [[lin(H, 3 * H, 0.1), lin(H, 3 * H + M), lin(H + M, H)] for _ in range(a.single)]
w_in, w_fmod, w_out = lin(C, H), lin(H, 2 * H, 0.1), lin(H, C)


def ln_mod(x, shift, scale):
    return F.layer_norm(x, (H,), eps=1e-6) * (1 + scale[:, None]) + shift[:, None]


def rope(x, cos, sin):  # x: (B, heads, N, D); rotate pairs
    x2 = x.unflatten(-1, (D // 2, 2))
    a0, a1 = x2[..., 0], x2[..., 1]
    return torch.stack((a0 * cos - a1 * sin, a0 * sin + a1 * cos), -1).flatten(-2)


def attention(qkv, cos, sin):
    b, n, _ = qkv.shape
    q, k, v = qkv.view(b, n, 3, HEADS, D).permute(2, 0, 3, 1, 4)
    q, k = rope(q, cos, sin), rope(k, cos, sin)
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, H)


def step(latent, txt, vec, cos, sin):
    b = latent.shape[0]
    x = torch.cat([txt, apply(latent, w_in)], 1)
    vs = F.silu(vec)
    for blk in doubles:
        mods = [apply(vs, s[0]).chunk(6, -1) for s in blk]
        parts = [x[:, :NT], x[:, NT:]]
        qkv = torch.cat([apply(ln_mod(parts[i], mods[i][0], mods[i][1]), blk[i][1]) for i in range(2)], 1)
        att = attention(qkv, cos, sin)
        out = []
        for i, (lo, hi) in enumerate([(0, NT), (NT, x.shape[1])]):
            s, md = blk[i], mods[i]
            xi = parts[i] + md[2][:, None] * apply(att[:, lo:hi], s[2])
            xi = xi + md[5][:, None] * apply(F.gelu(apply(ln_mod(xi, md[3], md[4]), s[3]), approximate="tanh"), s[4])
            out.append(xi)
        x = torch.cat(out, 1)
    for blk in singles:
        shift, scale, gate = apply(vs, blk[0]).chunk(3, -1)
        pr = apply(ln_mod(x, shift, scale), blk[1])
        att = attention(pr[..., : 3 * H].contiguous(), cos, sin)
        mlp = F.gelu(pr[..., 3 * H :], approximate="tanh")
        x = x + gate[:, None] * apply(torch.cat([att, mlp], -1), blk[2])
    shift, scale = apply(vs, w_fmod).chunk(2, -1)
    v = apply(ln_mod(x[:, NT:], shift, scale), w_out)
    return latent + 0.01 * v


def sdpa_backends():
    from torch.nn.attention import SDPBackend

    named = {
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "math": SDPBackend.MATH,
    }
    if a.sdpa_backend == "default":
        return [("default", None)]
    if a.sdpa_backend == "fastest":
        return list(named.items())
    return [(a.sdpa_backend, named[a.sdpa_backend])]


def timed(args, backend):
    import contextlib

    ctx = contextlib.nullcontext
    if backend is not None:
        from torch.nn.attention import sdpa_kernel

        ctx = lambda: sdpa_kernel([backend])  # noqa: E731
    with ctx():
        for _ in range(a.warmup):
            step(*args)
        times = []
        for _ in range(a.repeats):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            step(*args)
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e))
    times.sort()
    return times[len(times) // 2]


cudnn_version = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else "none"
print("resolution,batch,torch_ms,sdpa_backend,torch_version,cudnn_version")
with torch.inference_mode():
    for px in [int(r) for r in a.resolutions.split(",")]:
        for bsz in [int(b) for b in a.batches.split(",")]:
            ni = (px // 16) ** 2
            n = NT + ni
            latent = torch.randn(bsz, ni, C, device=dev, dtype=dt)
            txt = torch.randn(bsz, NT, H, device=dev, dtype=dt)
            vec = torch.randn(bsz, H, device=dev, dtype=dt)
            ang = torch.rand(n, D // 2, device=dev, dtype=torch.float32)
            cos, sin = ang.cos().to(dt), ang.sin().to(dt)
            args = (latent, txt, vec, cos, sin)
            best = None
            for name, backend in sdpa_backends():
                try:
                    ms = timed(args, backend)
                except RuntimeError as err:  # no kernel of this backend for the shape
                    print(f"{px}x{px} batch {bsz}: SDPA {name} unavailable: {str(err).splitlines()[0]}", file=sys.stderr)
                    continue
                print(f"{px}x{px} batch {bsz}: SDPA {name} {ms:.3f} ms", file=sys.stderr, flush=True)
                if best is None or ms < best[1]:
                    best = (name, ms)
            if best is None:
                sys.exit(f"{px}x{px} batch {bsz}: no SDPA backend ran")
            print(f"{px}x{px},{bsz},{best[1]:.3f},{best[0]},{torch.__version__},{cudnn_version}", flush=True)
