//! Arrival processes: when requests arrive.
// STUB: to be implemented.

use rand::Rng;

use crate::time::Nanos;

/// A stochastic (or deterministic) arrival process. Rates are requests per second.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrivalProcess {
    /// Exponential inter-arrival times (the paper's default, 12 req/min).
    Poisson { rate_per_s: f64 },
    /// Gamma inter-arrival times with mean 1/rate and coefficient of variation `cv`
    /// (cv = 1 is Poisson; cv 2-4 is bursty).
    Gamma { rate_per_s: f64, cv: f64 },
    /// Evenly spaced arrivals, 1/rate apart, first at time 0.
    Constant { rate_per_s: f64 },
    /// Poisson at `rate_per_s` during `on` periods, silence during `off` periods, starting `on`.
    OnOff {
        rate_per_s: f64,
        on: Nanos,
        off: Nanos,
    },
}

impl ArrivalProcess {
    /// Why the parameters are unusable (rate <= 0, cv <= 0, zero-length on period...), if they are.
    pub fn validate(&self) -> Result<(), String> {
        unimplemented!()
    }

    /// Long-run mean arrival rate in requests per second.
    pub fn mean_rate_per_s(&self) -> f64 {
        unimplemented!()
    }

    /// `n` arrival times, non-decreasing, drawn from `rng`.
    pub fn arrivals<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Vec<Nanos> {
        let _ = (n, rng);
        unimplemented!()
    }
}
