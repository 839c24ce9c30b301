//! Deterministic pseudo-random values shared bit-for-bit by the GPU kernels and the CPU
//! reference, and the rotary position tables.
//!
//! Weights are generated on the device (24 GB for FLUX would take long to copy), so the
//! generator is a pure function of (seed, index) that `kernels/init.cu` implements identically:
//! SplitMix64 of `seed ^ index * golden`, top 24 bits as a uniform in [0, 1).

use crate::workload::Resolution;

pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser.
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in [-scale, scale): element `index` of the tensor seeded `seed`.
pub fn uniform(seed: u64, index: u64, scale: f32) -> f32 {
    let u = (splitmix(seed ^ index.wrapping_mul(GOLDEN)) >> 40) as f32 / (1u64 << 24) as f32;
    (2.0 * u - 1.0) * scale
}

/// The seed of tensor number `tensor` of a model seeded `model_seed`.
pub fn tensor_seed(model_seed: u64, tensor: u64) -> u64 {
    splitmix(model_seed ^ splitmix(tensor))
}

/// Rounds to bfloat16 (nearest, ties to even) and back, as the device stores values.
pub fn bf16_round(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}

/// Rotary tables for the joint sequence (text tokens first, at position 0: identity; then the
/// image tokens in row-major order over the `(H/patch) x (W/patch)` latent grid, rounded up), as `cos` and `sin`
/// of shape `[tokens, head_dim / 2]`.
///
/// The rotary pairs are split over three axes as in FLUX (16 / 56 / 56 of 128 dims): `P/8`
/// pairs for the (always zero) first axis, the rest halved between rows and columns; pair `i`
/// of an axis with `n` pairs turns at `10000^(-i/n)` radians per position.
pub fn rope_tables(
    text_tokens: usize,
    res: Resolution,
    head_dim: usize,
    patch: usize,
) -> (Vec<f32>, Vec<f32>) {
    let pairs = head_dim / 2;
    let p0 = (pairs / 8).max(1);
    let p1 = (pairs - p0) / 2;
    let (rows, cols) = (
        (res.height as usize).div_ceil(patch),
        (res.width as usize).div_ceil(patch),
    );
    let tokens = text_tokens + rows * cols;
    let mut cos = vec![1.0f32; tokens * pairs];
    let mut sin = vec![0.0f32; tokens * pairs];
    for r in 0..rows {
        for c in 0..cols {
            let t = text_tokens + r * cols + c;
            for i in 0..pairs {
                let (pos, j, n) = if i < p0 {
                    (0.0, i, p0)
                } else if i < p0 + p1 {
                    (r as f64, i - p0, p1)
                } else {
                    (c as f64, i - p0 - p1, pairs - p0 - p1)
                };
                let angle = pos * 10000f64.powf(-(j as f64) / n as f64);
                cos[t * pairs + i] = angle.cos() as f32;
                sin[t * pairs + i] = angle.sin() as f32;
            }
        }
    }
    (cos, sin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_its_published_first_output() {
        // SplitMix64 seeded with 0: the first output is 0xE220A8397B1DCDAF.
        assert_eq!(splitmix(0), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn uniform_values_are_in_range_and_centred() {
        let v: Vec<f32> = (0..100_000).map(|i| uniform(7, i, 0.5)).collect();
        assert!(v.iter().all(|x| (-0.5..0.5).contains(x)));
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.005, "{mean}");
        assert_ne!(uniform(7, 1, 1.0), uniform(8, 1, 1.0));
    }

    #[test]
    fn rope_rotates_image_tokens_by_their_grid_position() {
        let (cos, sin) = rope_tables(2, Resolution::new(48, 32), 16, 16);
        let pairs = 8; // p0 = 1, p1 = 3, p2 = 4
        // Text tokens do not rotate.
        assert!(
            cos[..2 * pairs].iter().all(|&c| c == 1.0)
                && sin[..2 * pairs].iter().all(|&s| s == 0.0)
        );
        // Image token (row 1, col 2) is token 2 + 1 * 3 + 2 = 7.
        let t = 7;
        assert_eq!(sin[t * pairs], 0.0, "first axis is always at 0");
        assert!(
            (sin[t * pairs + 1] - 1f32.sin()).abs() < 1e-6,
            "row axis, pair 0: angle = row"
        );
        assert!(
            (sin[t * pairs + 4] - 2f32.sin()).abs() < 1e-6,
            "column axis, pair 0: angle = col"
        );
        let slow = 2.0 * 10000f64.powf(-1.0 / 4.0);
        assert!((cos[t * pairs + 5] as f64 - slow.cos()).abs() < 1e-6);
    }
}
