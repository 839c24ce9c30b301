//! Run-time step skipping (TeaCache / cache-DiT style, beyond the paper): some denoising steps
//! reuse the previous step's transformer output instead of computing it, and which ones is
//! only known as the request runs.
//!
//! Model: every step of a request after its first `keep_first` (at least 1) is skipped with
//! probability `p`, independently (the first step always computes, since there is nothing
//! earlier to reuse; TeaCache-style methods also keep the first few steps, which shape the
//! image most).
//! The [`SkipMask`]s are drawn while the workload is materialised, one RNG per request derived
//! from the seed and the request's position (stream `"skips:<index>"`), so that every policy
//! meets the identical skips and a change to one request's step count moves no other
//! request's mask.
//!
//! The masks are the executor's knowledge, not the policies': they live in
//! [`Workload::savings`](crate::workload::Workload), which the engine hands to the executor
//! and never puts into the policies' [`View`](crate::policy::View). A skipped step still is a
//! step: the engine counts it, the policy dispatches it, and it keeps its place in the order;
//! it just costs nothing to compute (the simulator charges 0 ns for it, the real executor makes
//! no model call), so works holding skipped steps end early and their GPUs go back to the pool
//! sooner. Policies plan with the nominal count, or with the expected count that
//! [`View::expected_remaining_steps`](crate::policy::View::expected_remaining_steps) gives.

use rand::RngExt;

use crate::error::{Error, Result};
use crate::workload::Workload;
use crate::workload::rng::stream_rng;

/// Parts per million: the unit of [`SkipSpec::probability_ppm`], so that policies read an
/// integer, never a float.
pub const PPM: u32 = 1_000_000;

/// A validated skipping model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkipSpec {
    /// Chance that a step after the first `keep_first` is skipped, in parts per million.
    pub probability_ppm: u32,
    /// Steps at the start of every request that always compute (at least 1).
    pub keep_first: u32,
}

impl SkipSpec {
    /// A model from a probability in `[0, 1)`; `Err` says what was expected.
    pub fn from_probability(p: f64) -> std::result::Result<SkipSpec, String> {
        if !(p.is_finite() && (0.0..1.0).contains(&p)) {
            return Err(format!(
                "expected a probability in [0, 1) that a step is skipped, such as 0.3, got {p}",
                p = crate::error::show_number(p)
            ));
        }
        Ok(SkipSpec {
            probability_ppm: (p * f64::from(PPM)).round() as u32,
            keep_first: 1,
        })
    }

    /// Draws every request's mask (see the module docs).
    pub fn apply(&self, workload: &mut Workload, seed: u64) -> Result<()> {
        if self.probability_ppm >= PPM || self.keep_first == 0 {
            return Err(Error::config(
                "workload.skipping: the probability must be below 1 and keep_first_steps at least 1",
            ));
        }
        workload.ensure_savings();
        for (i, (r, s)) in workload
            .requests
            .iter()
            .zip(&mut workload.savings)
            .enumerate()
        {
            let mut rng = stream_rng(seed, &format!("skips:{i}"));
            let mut mask = SkipMask::with_steps(r.steps);
            for step in self.keep_first..r.steps {
                if rng.random_range(0..PPM) < self.probability_ppm {
                    mask.set(step);
                }
            }
            s.skips = mask;
        }
        workload.skipping = Some(*self);
        Ok(())
    }

    /// Of `remaining` steps of a request that has done `done`, the fewest that may run: the
    /// kept first steps it has not done (every later one may be skipped).
    pub fn fewest_to_run(&self, done: u32, remaining: u32) -> u32 {
        self.keep_first.saturating_sub(done).min(remaining)
    }

    /// Of `remaining` steps of a request that has done `done`, how many are expected to run
    /// (rounded up: a policy planning with it errs towards too much work, never too little).
    pub fn expected_to_run(&self, done: u32, remaining: u32) -> u32 {
        let kept = self.keep_first.saturating_sub(done);
        let skippable = remaining.saturating_sub(kept);
        let skipped = u64::from(skippable) * u64::from(self.probability_ppm) / u64::from(PPM);
        remaining - skipped as u32
    }
}

/// Which steps of one request are skipped: bit `i` = its step `i` (0-based) is skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkipMask {
    bits: Vec<u64>,
}

impl SkipMask {
    /// No step skipped.
    pub const EMPTY: SkipMask = SkipMask { bits: Vec::new() };

    fn with_steps(steps: u32) -> SkipMask {
        SkipMask {
            bits: vec![0; (steps as usize).div_ceil(64)],
        }
    }

    /// A mask from a list of skipped steps (tests, scripted runs).
    pub fn of(steps: &[u32]) -> SkipMask {
        let mut m = SkipMask::with_steps(steps.iter().max().map_or(0, |s| s + 1));
        for &s in steps {
            m.set(s);
        }
        m
    }

    fn set(&mut self, step: u32) {
        let (word, bit) = ((step / 64) as usize, step % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        self.bits[word] |= 1 << bit;
    }

    pub fn is_skipped(&self, step: u32) -> bool {
        self.bits
            .get((step / 64) as usize)
            .is_some_and(|w| w & (1 << (step % 64)) != 0)
    }

    /// Skipped steps in `first..first + count`.
    pub fn count(&self, first: u32, count: u32) -> u32 {
        (first..first.saturating_add(count))
            .filter(|&s| self.is_skipped(s))
            .count() as u32
    }

    /// Whether no step is skipped.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }
}

/// Whether step `step` of a batched work is skipped: only when every member of the batch
/// skips it. A batched step computes if any of its requests computes it (the forward runs for
/// the batch anyway, at the batch's step time), so both executors, the simulated one that
/// charges the step and the real one that makes the model call, apply this one rule.
/// `masks` holds each member's mask, `None` for a request without one (it skips nothing).
pub fn batch_skips<'a>(masks: impl IntoIterator<Item = Option<&'a SkipMask>>, step: u32) -> bool {
    masks
        .into_iter()
        .all(|m| m.is_some_and(|m| m.is_skipped(step)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batched_step_is_skipped_only_when_every_member_skips_it() {
        let (a, b) = (SkipMask::of(&[1, 2]), SkipMask::of(&[2]));
        assert!(batch_skips([Some(&a), Some(&b)], 2));
        assert!(!batch_skips([Some(&a), Some(&b)], 1));
        assert!(!batch_skips([Some(&a), None], 2), "no mask: skips nothing");
    }

    #[test]
    fn masks_count_their_bits() {
        let m = SkipMask::of(&[1, 3, 70]);
        assert!(m.is_skipped(1) && m.is_skipped(70) && !m.is_skipped(0) && !m.is_skipped(200));
        assert_eq!(m.count(0, 4), 2);
        assert_eq!(m.count(2, 100), 2);
        assert_eq!(m.count(4, 10), 0);
        assert!(SkipMask::default().is_empty() && !m.is_empty());
    }

    #[test]
    fn expected_counts_round_towards_more_work() {
        let s = SkipSpec::from_probability(0.3).unwrap();
        assert_eq!(s.probability_ppm, 300_000);
        // Fresh: 49 skippable x 0.3 = 14.7 -> 14 skipped, 36 to run.
        assert_eq!(s.expected_to_run(0, 50), 36);
        // Started: all 10 skippable -> 3 skipped.
        assert_eq!(s.expected_to_run(40, 10), 7);
        assert_eq!(s.expected_to_run(0, 1), 1);
        // Keeping 5: after 2 done, 3 more are kept of the 13 left; 10 x 0.3 -> 3 skipped.
        let k = SkipSpec { keep_first: 5, ..s };
        assert_eq!(k.expected_to_run(2, 13), 10);
        for bad in [1.0, -0.1, f64::NAN] {
            assert!(
                SkipSpec::from_probability(bad)
                    .unwrap_err()
                    .contains("[0, 1)")
            );
        }
    }
}
