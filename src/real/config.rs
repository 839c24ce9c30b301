//! Diffusion-transformer shapes: the presets the real backend builds, and their sources.
//!
//! The real backend runs the transformer of a model with the right *shapes* and seeded random
//! weights: no weights can be downloaded here, and the compute of a denoising step depends only
//! on the shapes, which is what serving cares about. docs/calibration.md lists the shapes with
//! their sources.

use crate::error::{Error, Result};
use crate::workload::Resolution;

/// The shape of a FLUX-style DiT: double-stream (MMDiT) blocks with separate text and image
/// weights and joint attention, then single-stream blocks over the joint sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct DitConfig {
    pub name: &'static str,
    pub hidden: usize,
    pub heads: usize,
    /// MLP hidden size / hidden size.
    pub mlp_ratio: usize,
    pub double_blocks: usize,
    pub single_blocks: usize,
    /// Text tokens (T5 sequence length in the reference pipelines).
    pub text_tokens: usize,
    /// Latent channels after 2x2 patchify (16 VAE channels x 4).
    pub latent_channels: usize,
    /// Forward passes per step: 2 with classifier-free guidance (run as a doubled batch).
    pub cfg_factor: usize,
    /// Pixels per image token side: 16 for the real models (8x VAE, 2x2 patches). The CPU
    /// backend uses 128 ([`on_cpu`](Self::on_cpu)) so that a 2048 px image is 256 tokens.
    pub patch: usize,
}

impl DitConfig {
    /// FLUX.1-dev: 19 double + 38 single blocks, hidden 3072, 24 heads x 128, MLP ratio 4,
    /// 512 T5 tokens, 64 latent channels, guidance-distilled (no CFG). Source: the model card
    /// and the reference implementation's `FluxParams` (black-forest-labs/flux).
    pub fn flux1_dev() -> DitConfig {
        DitConfig {
            name: "flux1-dev",
            hidden: 3072,
            heads: 24,
            mlp_ratio: 4,
            double_blocks: 19,
            single_blocks: 38,
            text_tokens: 512,
            latent_channels: 64,
            cfg_factor: 1,
            patch: 16,
        }
    }

    /// SD3-Medium: 24 joint (MMDiT) blocks, hidden 1536, 24 heads x 64, 333 text tokens
    /// (77 CLIP + 256 T5), CFG. Built with the same block code as FLUX's double-stream blocks
    /// (its positional embedding is absolute, not RoPE; the cost difference is negligible).
    pub fn sd3_medium() -> DitConfig {
        DitConfig {
            name: "sd3-medium",
            hidden: 1536,
            heads: 24,
            mlp_ratio: 4,
            double_blocks: 24,
            single_blocks: 0,
            text_tokens: 333,
            latent_channels: 64,
            cfg_factor: 2,
            patch: 16,
        }
    }

    /// A tiny model with every kind of block, for numerics checks against the CPU reference.
    pub fn tiny() -> DitConfig {
        DitConfig {
            name: "tiny",
            hidden: 64,
            heads: 4,
            mlp_ratio: 4,
            double_blocks: 1,
            single_blocks: 1,
            text_tokens: 8,
            latent_channels: 16,
            cfg_factor: 1,
            patch: 16,
        }
    }

    /// A small model for the CPU backend: a step of a 2048 px image (256 image tokens on the
    /// CPU) takes tens of milliseconds on one core, so that scheduling is not lost in noise.
    pub fn small() -> DitConfig {
        DitConfig {
            name: "small",
            hidden: 128,
            heads: 8,
            mlp_ratio: 4,
            double_blocks: 1,
            single_blocks: 2,
            text_tokens: 16,
            latent_channels: 16,
            cfg_factor: 1,
            patch: 16,
        }
    }

    /// The names [`preset`](Self::preset) knows.
    pub const PRESETS: &'static str = "flux1-dev, sd3-medium, small, tiny";

    pub fn preset(name: &str) -> Result<DitConfig> {
        match name {
            "flux1-dev" => Ok(DitConfig::flux1_dev()),
            "sd3-medium" => Ok(DitConfig::sd3_medium()),
            "small" => Ok(DitConfig::small()),
            "tiny" => Ok(DitConfig::tiny()),
            other => Err(Error::config_hint(
                format!("unknown model `{other}` for the real backend"),
                format!("models: {}", DitConfig::PRESETS),
            )),
        }
    }

    /// The same model as the CPU backend runs it: 128 px per token side, so that images up to
    /// 2048 px stay within what f32 loops do in milliseconds. Weights are unchanged.
    pub fn on_cpu(self) -> DitConfig {
        DitConfig { patch: 128, ..self }
    }

    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    pub fn mlp(&self) -> usize {
        self.hidden * self.mlp_ratio
    }

    /// Image tokens of a resolution: `ceil(W / patch) x ceil(H / patch)` (with 16-px patches,
    /// [`Resolution::tokens`]).
    pub fn image_tokens(&self, res: Resolution) -> usize {
        let (rows, cols) = self.grid(res);
        rows * cols
    }

    /// The latent grid of a resolution: (rows, columns) of image tokens.
    pub fn grid(&self, res: Resolution) -> (usize, usize) {
        (
            (res.height as usize).div_ceil(self.patch),
            (res.width as usize).div_ceil(self.patch),
        )
    }

    /// Parameters, for reporting (weights are bf16: two bytes each).
    pub fn parameters(&self) -> usize {
        self.linears().iter().map(|l| l.inp * l.out + l.out).sum()
    }
}

/// What a linear layer is for; decides its initial scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinearKind {
    /// An ordinary projection: weights uniform in +-1/sqrt(fan-in).
    Projection,
    /// adaLN modulation (shift, scale, gate): weights at a tenth of that, so that the
    /// residual stream of a 57-block model with random weights stays in a sane range.
    Modulation,
}

/// One linear layer of the model, in the order tensors are seeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearSpec {
    pub inp: usize,
    pub out: usize,
    pub kind: LinearKind,
}

impl DitConfig {
    /// Every linear layer, in seeding order: the image input projection; per double block the
    /// text stream's then the image stream's modulation, QKV, output, MLP in, MLP out; per
    /// single block modulation, fused QKV+MLP in, fused output; final modulation and output.
    pub fn linears(&self) -> Vec<LinearSpec> {
        let (h, m, c) = (self.hidden, self.mlp(), self.latent_channels);
        let p = |inp, out| LinearSpec {
            inp,
            out,
            kind: LinearKind::Projection,
        };
        let md = |inp, out| LinearSpec {
            inp,
            out,
            kind: LinearKind::Modulation,
        };
        let mut v = vec![p(c, h)];
        for _ in 0..self.double_blocks {
            for _stream in 0..2 {
                v.extend([md(h, 6 * h), p(h, 3 * h), p(h, h), p(h, m), p(m, h)]);
            }
        }
        for _ in 0..self.single_blocks {
            v.extend([md(h, 3 * h), p(h, 3 * h + m), p(h + m, h)]);
        }
        v.extend([md(h, 2 * h), p(h, c)]);
        v
    }
}

impl LinearSpec {
    pub fn weight_scale(&self) -> f32 {
        let s = 1.0 / (self.inp as f32).sqrt();
        match self.kind {
            LinearKind::Projection => s,
            LinearKind::Modulation => 0.1 * s,
        }
    }

    pub const BIAS_SCALE: f32 = 0.02;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flux_has_about_twelve_billion_parameters() {
        // 11.9 B in the released checkpoint, which also holds embedders this backend omits.
        let p = DitConfig::flux1_dev().parameters() as f64 / 1e9;
        assert!((11.0..12.0).contains(&p), "{p} B");
        assert_eq!(DitConfig::flux1_dev().head_dim(), 128);
        assert_eq!(DitConfig::sd3_medium().head_dim(), 64);
    }
}
