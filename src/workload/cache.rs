//! Approximate caching (Nirvana, NSDI'24): a request whose prompt matches a cached one skips
//! its first k denoising steps, decided while the workload is materialised.
//!
//! Nirvana keeps intermediate latents of earlier generations; a new request whose prompt is
//! close to a cached one starts from the cached latent at step k instead of from noise, and
//! runs the remaining N - k steps. The simulator models this as:
//!
//! - a fixed-capacity cache of prompt keys with least-recently-used eviction ([`Lru`]; the
//!   TetriServe paper keeps Nirvana's cache "at a fixed size with LRU", §6.3);
//! - warmed before the run by a pre-run stream of `warmup` keys drawn from the same popularity
//!   law (stream `"prompt-warmup"`): the paper warms with the first 10 K requests and measures
//!   after them, so warm-up requests are inserted into the cache but are not part of the
//!   measured run (they have no arrival, no deadline, and no record);
//! - each measured request with a key, in arrival order: a hit if its key is cached (the key
//!   becomes most recent), else a miss that inserts the key (evicting the least recent);
//! - on a hit the request skips k steps, k drawn from [`CacheSpec::skip_steps`] (stream
//!   `"cache-steps"`, one draw per request whether it hits or not, so the k of one request
//!   does not depend on the others' outcomes), capped at `steps - 1` so that at least one step
//!   runs. Its `steps` becomes `steps - k`: every policy, the engine and the upper bound see the
//!   reduced work as the request's work, known at arrival (common random numbers: the cache is
//!   applied once, before any policy runs).
//!
//! The distribution of k is an assumption: Nirvana chooses k in {5, 10, 15, 20, 25} of 50
//! steps from the similarity of the match, and its published per-k shares were not available
//! to us; the default weighs the five values equally (mean k = 15). See `docs/caching.md`.

use std::collections::{BTreeMap, HashMap};

use rand::RngExt;

use crate::error::{Error, Result};
use crate::workload::Workload;
use crate::workload::prompt::{Popularity, PromptKey};
use crate::workload::rng::stream_rng;

/// A validated approximate cache.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheSpec {
    /// Entries (prompt keys) the cache holds, at least 1.
    pub capacity: usize,
    /// Keys inserted before the measured run.
    pub warmup: usize,
    /// The law generated requests and warm-up keys are drawn from.
    pub popularity: Popularity,
    /// Steps a hit skips, and their relative weights (same length, weights positive).
    pub skip_steps: Vec<u32>,
    pub skip_weights: Vec<f64>,
}

impl CacheSpec {
    /// Nirvana's step choices as the TetriServe paper lists them, {5, 10, 15, 20, 25}, weighed
    /// equally (an assumption; see the module docs).
    pub fn nirvana_steps() -> (Vec<u32>, Vec<f64>) {
        (vec![5, 10, 15, 20, 25], vec![1.0; 5])
    }

    /// The reason this cache is unusable, if it is, naming the scenario key to change.
    pub fn validate_keyed(&self) -> std::result::Result<(), (&'static str, String)> {
        if self.warmup > crate::workload::MAX_REQUESTS {
            return Err((
                "workload.cache.warmup_requests",
                format!(
                    "a warm-up of {} requests is more than the {} allowed",
                    self.warmup,
                    crate::workload::MAX_REQUESTS
                ),
            ));
        }
        if self.capacity == 0 {
            return Err((
                "workload.cache.capacity",
                "expected a cache of at least 1 entry".into(),
            ));
        }
        self.popularity.validate_keyed()?;
        if self.skip_steps.is_empty() {
            return Err((
                "workload.cache.skip_steps",
                "expected at least one number of steps a hit skips, such as [5, 10, 15, 20, 25]"
                    .into(),
            ));
        }
        if let Some(k) = self
            .skip_steps
            .iter()
            .find(|&&k| k == 0 || k > crate::workload::MAX_STEPS)
        {
            return Err((
                "workload.cache.skip_steps",
                format!(
                    "a hit skips 1 to {} steps, got {k}",
                    crate::workload::MAX_STEPS
                ),
            ));
        }
        if self.skip_weights.len() != self.skip_steps.len() {
            return Err((
                "workload.cache.skip_weights",
                format!(
                    "expected one weight per entry of skip_steps ({}), got {}",
                    self.skip_steps.len(),
                    self.skip_weights.len()
                ),
            ));
        }
        if let Some(w) = self
            .skip_weights
            .iter()
            .find(|w| !(w.is_finite() && **w > 0.0))
        {
            return Err((
                "workload.cache.skip_weights",
                format!("expected positive weights, got {w}"),
            ));
        }
        Ok(())
    }

    /// Runs the cache over `workload` (its requests' prompt keys in arrival order): sets each
    /// request's [`Savings`] and reduces the `steps` of every hit. `seed` is the scenario's.
    pub fn apply(&self, workload: &mut Workload, seed: u64) -> Result<()> {
        self.validate_keyed()
            .map_err(|(key, m)| Error::config(format!("{key}: {m}")))?;
        let mut lru = Lru::new(self.capacity);
        if let Some(sampler) = self.popularity.sampler() {
            let mut rng = stream_rng(seed, "prompt-warmup");
            for _ in 0..self.warmup {
                lru.access(sampler.sample(&mut rng));
            }
        }
        let total: f64 = self.skip_weights.iter().sum();
        let mut rng = stream_rng(seed, "cache-steps");
        workload.ensure_savings();
        for (r, s) in workload.requests.iter_mut().zip(&mut workload.savings) {
            let u: f64 = rng.random::<f64>() * total;
            let mut acc = 0.0;
            let mut k = *self.skip_steps.last().expect("validated non-empty");
            for (&steps, &w) in self.skip_steps.iter().zip(&self.skip_weights) {
                acc += w;
                if u < acc {
                    k = steps;
                    break;
                }
            }
            let Some(key) = s.prompt else { continue };
            if lru.access(key) {
                let k = k.min(r.steps - 1);
                s.cache_hit = true;
                s.cached_steps = k;
                r.steps -= k;
            }
        }
        Ok(())
    }
}

/// A fixed-capacity set of prompt keys with least-recently-used eviction. Deterministic:
/// recency is a counter, and the least recent key is the smallest counter.
#[derive(Clone, Debug)]
pub struct Lru {
    capacity: usize,
    clock: u64,
    last_use: HashMap<PromptKey, u64>,
    by_age: BTreeMap<u64, PromptKey>,
}

impl Lru {
    pub fn new(capacity: usize) -> Lru {
        Lru {
            capacity,
            clock: 0,
            last_use: HashMap::new(),
            by_age: BTreeMap::new(),
        }
    }

    /// Looks `key` up: `true` on a hit. Either way `key` is then the most recent entry; a miss
    /// that overfills the cache evicts the least recent one. O(log capacity).
    pub fn access(&mut self, key: PromptKey) -> bool {
        self.clock += 1;
        let hit = match self.last_use.insert(key, self.clock) {
            Some(old) => {
                self.by_age.remove(&old);
                true
            }
            None => false,
        };
        self.by_age.insert(self.clock, key);
        if self.last_use.len() > self.capacity
            && let Some((_, oldest)) = self.by_age.pop_first()
        {
            self.last_use.remove(&oldest);
        }
        hit
    }

    pub fn contains(&self, key: PromptKey) -> bool {
        self.last_use.contains_key(&key)
    }

    pub fn len(&self) -> usize {
        self.last_use.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last_use.is_empty()
    }
}

/// Draws a prompt key for every request of a generated workload (stream `"prompts"`, one key
/// per request in arrival order), so that arrivals and resolutions stay where they were.
pub fn assign_prompts(workload: &mut Workload, popularity: &Popularity, seed: u64) {
    let Some(sampler) = popularity.sampler() else {
        return;
    };
    let mut rng = stream_rng(seed, "prompts");
    workload.ensure_savings();
    for s in &mut workload.savings {
        s.prompt = Some(sampler.sample(&mut rng));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Nanos;
    use crate::workload::{Request, RequestId, Resolution};

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let k = PromptKey;
        let mut c = Lru::new(2);
        assert!(!c.access(k(1)));
        assert!(!c.access(k(2)));
        // 1 becomes most recent; inserting 3 evicts 2, the least recent.
        assert!(c.access(k(1)));
        assert!(!c.access(k(3)));
        assert!(c.contains(k(1)) && c.contains(k(3)) && !c.contains(k(2)));
        assert_eq!(c.len(), 2);
        // 2 misses again and evicts 1 (3 was used after 1).
        assert!(!c.access(k(2)));
        assert!(!c.contains(k(1)));
        assert!(c.access(k(3)) && c.access(k(2)));
    }

    #[test]
    fn an_empty_cache_is_empty_until_its_first_key() {
        let mut c = Lru::new(2);
        assert!(c.is_empty());
        c.access(PromptKey(1));
        assert!(!c.is_empty());
    }

    /// A cache of `capacity` with skip choices `steps` weighed `weights`, no warm-up.
    fn spec(capacity: usize, steps: Vec<u32>, weights: Vec<f64>) -> CacheSpec {
        CacheSpec {
            capacity,
            warmup: 0,
            popularity: Popularity::None,
            skip_steps: steps,
            skip_weights: weights,
        }
    }

    #[test]
    fn a_hit_skips_one_of_the_step_choices_drawn_by_weight() {
        // 60 requests of 20 steps, all with the same prompt: the first misses, the other 59
        // hit, each skipping 5 or 10 steps (equal weights). Both choices are drawn (all 59 the
        // same would have probability 2^-58), and the skipped steps leave the rest to run.
        let requests = (0..60)
            .map(|i| Request {
                id: RequestId(0),
                label: i,
                arrival: Nanos(i * 1_000),
                resolution: Resolution::square(512),
                steps: 20,
                deadline: Nanos(i * 1_000 + 1_000_000),
                stages: Default::default(),
            })
            .collect();
        let mut w = Workload::from_requests(requests);
        w.ensure_savings();
        for s in &mut w.savings {
            s.prompt = Some(PromptKey(7));
        }
        let prompts = w.clone();
        spec(1, vec![5, 10], vec![1.0, 1.0])
            .apply(&mut w, 3)
            .unwrap();
        assert!(!w.savings[0].cache_hit);
        let skipped: Vec<u32> = w.savings[1..].iter().map(|s| s.cached_steps).collect();
        assert!(w.savings[1..].iter().all(|s| s.cache_hit));
        assert!(skipped.iter().all(|&k| k == 5 || k == 10), "{skipped:?}");
        assert!(skipped.contains(&5) && skipped.contains(&10), "{skipped:?}");
        for (r, s) in w.requests.iter().zip(&w.savings) {
            assert_eq!(r.steps + s.cached_steps, 20);
        }
        // Weighed 3 to 1, 5 steps are drawn for about three hits in four: more than half of
        // the 59 (fewer than half has probability under 1e-4).
        let mut w = prompts;
        spec(1, vec![5, 10], vec![3.0, 1.0])
            .apply(&mut w, 3)
            .unwrap();
        let fives = w.savings.iter().filter(|s| s.cached_steps == 5).count();
        assert!(fives > 30, "{fives} of 59 hits skipped 5 steps");
    }

    #[test]
    fn the_warm_up_is_bounded() {
        let mut c = spec(1, vec![5], vec![1.0]);
        c.warmup = crate::workload::MAX_REQUESTS;
        assert!(c.validate_keyed().is_ok());
        c.warmup += 1;
        assert_eq!(
            c.validate_keyed().unwrap_err().0,
            "workload.cache.warmup_requests"
        );
    }

    #[test]
    fn a_cache_of_one_hits_only_repeats() {
        let mut c = Lru::new(1);
        let hits: Vec<bool> = [5, 5, 6, 5, 5]
            .iter()
            .map(|&x| c.access(PromptKey(x)))
            .collect();
        assert_eq!(hits, vec![false, true, false, false, true]);
    }
}
