//! Prompt keys and how popular each prompt is: what an approximate cache matches requests by.
//!
//! A request may carry a [`PromptKey`]: two requests with the same key ask for images of
//! prompts close enough that the second may start from the first one's intermediate latent
//! (Nirvana matches CLIP embeddings of prompts; the simulator reduces that match to equality of
//! keys). Traces carry keys in their `prompt_id` column; generated workloads draw them from a
//! [`Popularity`] law on a stream of their own (`"prompts"`), so that turning caching on or
//! changing the law moves no arrival and no resolution.

use rand::{Rng, RngExt};

/// The identity of a prompt (a trace's `prompt_id`; a generated key is the prompt's rank in
/// the catalogue, 0 the most popular).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromptKey(pub u64);

/// The largest catalogue a Zipf law may have: its cumulative table is kept in memory (8 bytes
/// a prompt).
pub const MAX_PROMPTS: u64 = 10_000_000;

/// Which prompts generated requests ask for.
#[derive(Clone, Debug, PartialEq)]
pub enum Popularity {
    /// Requests carry no prompt key (nothing can ever hit a cache).
    None,
    /// Zipf's law over a catalogue of `prompts` prompts: the prompt of rank `r` (1-based) is
    /// asked for with probability proportional to `r^-s`. Web and prompt popularity are
    /// commonly modelled so (Breslau et al., INFOCOM'99, for web objects); the exponent is an
    /// assumption of the scenario, not a measurement.
    Zipf { s: f64, prompts: u64 },
}

impl Popularity {
    /// The reason this law is unusable, if it is, naming the scenario key to change.
    pub fn validate_keyed(&self) -> Result<(), (&'static str, String)> {
        match *self {
            Popularity::None => Ok(()),
            Popularity::Zipf { s, prompts } => {
                if !(s.is_finite() && s >= 0.0) {
                    return Err((
                        "workload.cache.zipf_s",
                        format!(
                            "expected a non-negative Zipf exponent such as 0.8, got {s}",
                            s = crate::error::show_number(s)
                        ),
                    ));
                }
                if prompts == 0 || prompts > MAX_PROMPTS {
                    return Err((
                        "workload.cache.prompts",
                        format!(
                            "expected a catalogue of 1 to {MAX_PROMPTS} prompts, got {prompts}"
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    /// A sampler of keys, or `None` for [`Popularity::None`]. Builds the law's cumulative
    /// table once (O(prompts)).
    pub fn sampler(&self) -> Option<KeySampler> {
        match *self {
            Popularity::None => None,
            Popularity::Zipf { s, prompts } => {
                let mut cdf = Vec::with_capacity(prompts as usize);
                let mut total = 0.0;
                for r in 1..=prompts {
                    total += (r as f64).powf(-s);
                    cdf.push(total);
                }
                Some(KeySampler { cdf, total })
            }
        }
    }
}

/// Draws prompt keys from a discrete law by inverting its cumulative table.
pub struct KeySampler {
    cdf: Vec<f64>,
    total: f64,
}

impl KeySampler {
    /// One key: the first rank whose cumulative weight exceeds a uniform draw (one `f64` of
    /// the RNG per key).
    pub fn sample(&self, rng: &mut impl Rng) -> PromptKey {
        let u: f64 = rng.random::<f64>() * self.total;
        let rank = self.cdf.partition_point(|&c| c <= u);
        PromptKey(rank.min(self.cdf.len() - 1) as u64)
    }

    /// `n` keys in order.
    pub fn keys(&self, n: usize, rng: &mut impl Rng) -> Vec<PromptKey> {
        (0..n).map(|_| self.sample(rng)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::rng::stream_rng;

    #[test]
    fn zipf_ranks_follow_the_law() {
        // s = 1 over 3 prompts: weights 1, 1/2, 1/3 of 11/6 -> 6/11, 3/11, 2/11.
        let law = Popularity::Zipf { s: 1.0, prompts: 3 };
        let keys = law
            .sampler()
            .unwrap()
            .keys(60_000, &mut stream_rng(5, "prompts"));
        let share = |k: u64| keys.iter().filter(|x| x.0 == k).count() as f64 / 60_000.0;
        for (k, want) in [(0, 6.0 / 11.0), (1, 3.0 / 11.0), (2, 2.0 / 11.0)] {
            assert!((share(k) - want).abs() < 0.01, "rank {k}: {}", share(k));
        }
        // s = 0 is uniform; one prompt is always key 0.
        let one = Popularity::Zipf { s: 2.0, prompts: 1 }.sampler().unwrap();
        assert!(
            one.keys(100, &mut stream_rng(1, "p"))
                .iter()
                .all(|k| k.0 == 0)
        );
        assert!(Popularity::None.sampler().is_none());
    }

    #[test]
    fn bad_laws_name_their_key() {
        let key = |p: Popularity| p.validate_keyed().unwrap_err().0;
        assert_eq!(
            key(Popularity::Zipf {
                s: -1.0,
                prompts: 5
            }),
            "workload.cache.zipf_s"
        );
        assert_eq!(
            key(Popularity::Zipf {
                s: f64::NAN,
                prompts: 5
            }),
            "workload.cache.zipf_s"
        );
        assert_eq!(
            key(Popularity::Zipf { s: 1.0, prompts: 0 }),
            "workload.cache.prompts"
        );
        assert_eq!(
            key(Popularity::Zipf {
                s: 1.0,
                prompts: MAX_PROMPTS + 1
            }),
            "workload.cache.prompts"
        );
    }
}
