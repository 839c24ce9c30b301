//! The named model shapes and GPU types of the analytic model, with the source of every number.
//!
//! Shapes come from the models' published architectures (their model cards and reference
//! implementations, named at each preset; docs/calibration.md collects them with the paper's
//! numbers and the datasheets).
//! GPU numbers are datasheet values where one exists; the four fitted constants (`max_efficiency`,
//! `half_efficiency_tokens`, `launch_s` and the all-to-all latencies) were tuned once so that the
//! H100 / FLUX.1-dev preset reproduces the published and paper-implied behaviour listed in
//! `profiles/README.md`, and are reused unchanged for the other GPUs.
//! Changing a constant here changes the shipped profiles; a test then asks for them to be regenerated.

use super::{GpuSpec, LinkSpec, ModelShape};

impl ModelShape {
    /// Names accepted by [`ModelShape::preset`].
    pub const PRESETS: &'static [&'static str] = &["flux1-dev", "sd3-medium", "wan2.1-14b"];

    /// A model shape by name.
    pub fn preset(name: &str) -> Option<ModelShape> {
        match name {
            "flux1-dev" => Some(ModelShape::flux1_dev()),
            "sd3-medium" => Some(ModelShape::sd3_medium()),
            "wan2.1-14b" => Some(ModelShape::wan2_1_14b()),
            _ => None,
        }
    }

    /// FLUX.1-dev: 19 double-stream + 38 single-stream blocks, hidden 3072, 512 T5 tokens.
    ///
    /// Of its 11.90 B parameters, ~3.2 B are adaLN modulation weights applied once per sample;
    /// a token passes through its own stream's weights in the double blocks (~2.16 B) and through
    /// all single-block weights (~4.31 B), so a token costs 2 x 6.47 B = 12.94 GFLOP of GEMMs.
    /// Attention adds `4 * N^2 * 3072` per block over all 57 blocks.
    /// FLUX.1-dev is guidance-distilled: one forward pass per step (no CFG).
    pub fn flux1_dev() -> ModelShape {
        ModelShape {
            name: "flux1-dev".into(),
            text_tokens: 512,
            hidden: 3072,
            attention_layers: 19 + 38,
            linear_flops_per_token: 2.0 * (2.16e9 + 4.31e9),
            per_sample_flops: 2.0 * 3.2e9,
            cfg_factor: 1,
            weight_bytes: 2.0 * 11.90e9,
            // 57 blocks x ~26 kernels (norms, modulation, QKV, RoPE, attention, projections, MLP,
            // gates, residual adds).
            kernels_per_step: 1500.0,
            video: false,
        }
    }

    /// Stable Diffusion 3 Medium: 24 joint (MMDiT) blocks, hidden 1536, 333 text tokens, CFG.
    ///
    /// Per-token parameters, derived from the block shapes: in every joint block a token passes
    /// through its own stream's QKV (3h^2), output projection (h^2) and 4x MLP (8h^2), i.e. 12h^2;
    /// over 24 blocks that is 12 x 1536^2 x 24 = 0.68 B parameters, so 1.36 GFLOP per token.
    /// adaLN modulation (6h^2 per stream per block, again ~0.68 B) is applied once per sample.
    /// Classifier-free guidance runs two passes per step, charged as a doubled batch.
    pub fn sd3_medium() -> ModelShape {
        let h = 1536.0;
        ModelShape {
            name: "sd3-medium".into(),
            text_tokens: 77 + 256,
            hidden: 1536,
            attention_layers: 24,
            linear_flops_per_token: 2.0 * 12.0 * h * h * 24.0,
            per_sample_flops: 2.0 * 6.0 * h * h * 2.0 * 24.0,
            cfg_factor: 2,
            // About 2.0 B parameters in bf16.
            weight_bytes: 2.0 * 2.03e9,
            // 24 joint blocks, each running two streams: ~50 kernels per block.
            kernels_per_step: 1200.0,
            video: false,
        }
    }

    /// Wan2.1-T2V-14B, the video DiT: 40 blocks, hidden 5120, 40 heads x 128, FFN 13824,
    /// patch 1x2x2 on a latent that its VAE compresses 4x in time and 8x8 in space, 512 umT5
    /// text tokens, classifier-free guidance; 81 frames (16 fps) and 50 steps by default.
    ///
    /// Source: the model's reference configuration, `wan/configs/wan_t2v_14B.py` (`dim = 5120`,
    /// `ffn_dim = 13824`, `num_heads = 40`, `num_layers = 40`, `patch_size = (1, 2, 2)`,
    /// `vae_stride = (4, 8, 8)`) and `wan/configs/shared_config.py` (`text_len = 512`,
    /// `frame_num = 81`) in github.com/Wan-Video/Wan2.1, and its model card
    /// (huggingface.co/Wan-AI/Wan2.1-T2V-14B: 480p 832x480 and 720p 1280x720 outputs).
    /// Tokens per step: (1 + (F - 1) / 4) x (H / 16) x (W / 16), so 81 frames at 1280x720 are
    /// 21 x 45 x 80 = 75,600 ([`Resolution::tokens`](crate::workload::Resolution::tokens)).
    ///
    /// Unlike the MMDiTs above, the video tokens attend to each other only (self-attention, the
    /// quadratic term, so `text_tokens` is 0 here) and read the text through cross-attention.
    /// Per video token and block, derived from those shapes: self-attention Q, K, V, O (4h^2),
    /// cross-attention Q and O (2h^2), the two FFN matrices (2 h x 13824), so
    /// 2 x 40 x (6h^2 + 2 h 13824) = 23.9 GFLOP of GEMMs, plus cross-attention's two matrix
    /// products over the 512 text tokens (4 x 512 x h x 40 = 0.42 GFLOP). Per sample: the text's
    /// cross-attention K and V (2 x 2h^2 x 512 x 40 = 2.1 TFLOP, replicated on every GPU of a
    /// Ulysses group). Parameters: 40 x (8h^2 + 2 h 13824) = 14.05 B, in bf16.
    /// Guidance (`sample_guide_scale` 5.0) runs two passes per step, charged as a doubled batch.
    /// Cross-attention shards no sequence, so Ulysses moves only the self-attention's activations.
    pub fn wan2_1_14b() -> ModelShape {
        let (h, ffn, layers, text) = (5120.0, 13824.0, 40.0, 512.0);
        ModelShape {
            name: "wan2.1-14b".into(),
            text_tokens: 0,
            hidden: 5120,
            attention_layers: 40,
            linear_flops_per_token: 2.0 * layers * (6.0 * h * h + 2.0 * h * ffn)
                + 4.0 * text * h * layers,
            per_sample_flops: 2.0 * 2.0 * h * h * text * layers,
            cfg_factor: 2,
            weight_bytes: 2.0 * layers * (8.0 * h * h + 2.0 * h * ffn),
            // 40 blocks x ~30 kernels (norms, modulation, QKV, RoPE, self- and cross-attention,
            // projections, FFN, gates, residual adds).
            kernels_per_step: 1200.0,
            video: true,
        }
    }
}

impl GpuSpec {
    /// Names accepted by [`GpuSpec::preset`].
    pub const PRESETS: &'static [&'static str] = &["h100", "h200", "a40"];

    /// A GPU type by name.
    pub fn preset(name: &str) -> Option<GpuSpec> {
        match name {
            "h100" => Some(GpuSpec::h100()),
            "h200" => Some(GpuSpec::h200()),
            "a40" => Some(GpuSpec::a40()),
            _ => None,
        }
    }

    /// H100 SXM on an 8-GPU NVSwitch board: the calibrated reference.
    pub fn h100() -> GpuSpec {
        GpuSpec {
            name: "h100".into(),
            // Datasheet dense bf16 peak.
            peak_flops: 989e12,
            // 470 TFLOP/s for a whole step: xDiT's compiled FLUX at 1024 px reaches ~49% of peak with
            // overheads included. It puts a 1024 px step on one GPU at ~0.17 s (between xDiT's
            // compiled 0.154 s and eager 0.24 s) and a 2048 px step at ~0.9 s, the RSSP-consistent
            // regime of docs/calibration.md.
            max_efficiency: 0.475,
            // Fitted: a GEMM of M = 192 rows against FLUX's 3072 x 12288 weights fills about one wave
            // of tiles on 132 SMs, and half the peak is what such a GEMM reaches. It makes small
            // images scale poorly with SP degree (the paper's Insight 2) and batch sublinearly.
            half_efficiency_tokens: 192.0,
            // HBM3: only the weight-streaming floor uses it, and it binds for no shipped entry.
            hbm_bytes_per_s: 3.35e12,
            // ~2 us per launch with torch.compile / CUDA graphs partly hiding the host: 3 ms per FLUX step.
            launch_s: 2e-6,
            nvlink: LinkSpec {
                // NVLink 4 moves 450 GB/s per direction; NCCL all-to-all reaches ~75-80% of it.
                bytes_per_s: 350e9,
                // Fitted to Fig. 2 of the paper (communication > 30% of a 256/512 px step at SP 8,
                // batch 4, but < 10% at 2048 px): NCCL all-to-all latency on 2-8 GPUs (tens of
                // microseconds) plus the reshapes and dispatch around each call in xDiT.
                alpha_s: 20e-6,
                alpha_per_peer_s: 5e-6,
            },
            pcie: LinkSpec {
                // PCIe 5.0 x16: ~64 GB/s raw per direction, ~40 GB/s achievable for collectives.
                // No H100 preset path uses it (NVSwitch), but what-if runs may.
                bytes_per_s: 40e9,
                alpha_s: 30e-6,
                alpha_per_peer_s: 10e-6,
            },
        }
    }

    /// H200: the H100's compute and NVLink with 141 GB of HBM3e at 4.8 TB/s.
    ///
    /// The faster memory only moves the weight-streaming floor, which binds nowhere in the shipped
    /// grid, so H200 steps equal H100 steps there.
    pub fn h200() -> GpuSpec {
        GpuSpec {
            name: "h200".into(),
            hbm_bytes_per_s: 4.8e12,
            ..GpuSpec::h100()
        }
    }

    /// A40 48 GB, NVLink-bridged in pairs, otherwise PCIe 4.0 (the paper's SD3 testbed).
    pub fn a40() -> GpuSpec {
        GpuSpec {
            name: "a40".into(),
            // Datasheet dense bf16 tensor peak (~150 TFLOP/s).
            peak_flops: 149.7e12,
            // Same whole-step efficiency as the calibrated H100 (no published A40 step timings).
            max_efficiency: 0.475,
            // 84 SMs instead of 132 fill with proportionally fewer rows: 192 x 84 / 132 ~ 122.
            half_efficiency_tokens: 128.0,
            // GDDR6, 696 GB/s.
            hbm_bytes_per_s: 696e9,
            launch_s: 2e-6,
            nvlink: LinkSpec {
                // The bridge carries 112.5 GB/s in total, 56 GB/s per direction; ~78% achieved as on H100.
                bytes_per_s: 44e9,
                alpha_s: 20e-6,
                alpha_per_peer_s: 5e-6,
            },
            pcie: LinkSpec {
                // PCIe 4.0 x16: ~25 GB/s achievable per direction, less when GPUs share a root
                // complex during all-to-alls.
                bytes_per_s: 20e9,
                alpha_s: 30e-6,
                alpha_per_peer_s: 10e-6,
            },
        }
    }
}
