//! Resolution mixes: which image sizes the requests ask for.
// STUB: to be implemented.

use rand::Rng;

use crate::workload::Resolution;

/// How resolutions are drawn for `n` requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Sampling {
    /// Exactly round(n * p_i) requests of each resolution (largest-remainder rounding), in a
    /// seeded random order: Uniform with 300 requests gives 75 of each, as in the paper.
    #[default]
    Stratified,
    /// Each request independently.
    Iid,
}

/// A distribution over resolutions.
#[derive(Clone, Debug, PartialEq)]
pub enum Mix {
    /// Equal weight on each resolution.
    Uniform(Vec<Resolution>),
    /// The paper's Skewed mix: p_i proportional to exp(alpha * L_i / L_max), L = image tokens.
    Skewed {
        alpha: f64,
        resolutions: Vec<Resolution>,
    },
    /// One resolution only.
    Homogeneous(Resolution),
    /// Explicit (resolution, weight) pairs; weights need not sum to one.
    Custom(Vec<(Resolution, f64)>),
}

/// The paper's four resolutions: 256, 512, 1024 and 2048 px squares.
pub fn paper_resolutions() -> Vec<Resolution> {
    [256, 512, 1024, 2048]
        .into_iter()
        .map(Resolution::square)
        .collect()
}

impl Mix {
    /// Why the mix is unusable (no resolutions, negative or all-zero weights, NaN alpha...), if it is.
    pub fn validate(&self) -> Result<(), String> {
        unimplemented!()
    }

    /// Normalised probabilities, in the order the resolutions were given.
    pub fn probabilities(&self) -> Vec<(Resolution, f64)> {
        unimplemented!()
    }

    /// Resolutions for `n` requests.
    pub fn sample<R: Rng + ?Sized>(
        &self,
        n: usize,
        sampling: Sampling,
        rng: &mut R,
    ) -> Vec<Resolution> {
        let _ = (n, sampling, rng);
        unimplemented!()
    }
}

/// Parses a `--mix` value (stub).
pub fn parse_mix(s: &str) -> Result<Mix, String> {
    let _ = s;
    unimplemented!()
}
