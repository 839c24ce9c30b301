//! Named random streams derived from a seed: every random draw of a workload (arrivals,
//! resolutions, prompts, the cache's warm-up, skipped steps, imported resolutions) comes from
//! its own stream, so that changing one knob reshuffles nothing else.
//!
//! The derivation is its own module because every generator of the workload uses it and it
//! uses none of them: kept in `generate.rs`, it tied `skipping.rs` and `cache.rs` to the
//! generator, and through it back to `workload/mod.rs`, in an import circle.

use rand::SeedableRng;
use rand_pcg::Pcg64;

/// One SplitMix64 step (Steele, Lea & Flood 2014): advances `state` by the golden-ratio
/// increment and returns the mixed output. Used to spread a seed into RNG state because it
/// is tiny, fixed forever, and turns nearby seeds (0, 1, 2...) into unrelated outputs.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 64-bit FNV-1a of `bytes`: a fixed, documented hash of the stream name (std's
/// `DefaultHasher` is explicitly not stable across Rust releases).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// An RNG for the named stream (`"arrivals"`, `"resolutions"`), derived from `seed` so that
/// streams are independent of each other and of how much of any other stream is consumed.
///
/// Derivation (fixed; changing it changes every generated workload):
/// `key = splitmix64(seed) XOR fnv1a64(stream)`; then four successive SplitMix64 outputs
/// from state `key`, little-endian, form the 32-byte seed of `Pcg64::from_seed` (128-bit
/// state and 128-bit stream increment).
pub fn stream_rng(seed: u64, stream: &str) -> Pcg64 {
    let mut s = seed;
    let mut state = splitmix64(&mut s) ^ fnv1a64(stream.as_bytes());
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_exact_mut(8) {
        chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    Pcg64::from_seed(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn stream_rng_is_fixed_and_streams_differ() {
        let mut a = stream_rng(42, "arrivals");
        let mut b = stream_rng(42, "arrivals");
        let mut c = stream_rng(42, "resolutions");
        let mut d = stream_rng(43, "arrivals");
        let xa: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        let xd: Vec<u64> = (0..4).map(|_| d.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
        assert_ne!(xa, xd);
    }

    #[test]
    fn mixing_functions_match_their_reference_values() {
        // FNV-1a 64 of "a" and SplitMix64's first output from state 0 (published test vectors).
        assert_eq!(fnv1a64(b""), 0xCBF2_9CE4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xAF63_DC4C_8601_EC8C);
        let mut s = 0;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
    }
}
