//! Step-time tables and the round length: what one (resolution, batch size) costs per step
//! at every degree of a node, as rounds see it, and how long a round is (`tau`, from the
//! service's menu of resolutions, snapped to whole steps).

use crate::cluster::{Cluster, GpuSet, Link};
use crate::cost::{ResClass, StepTimes};
use crate::time::Nanos;

use super::config::{RoundLength, TetriserveConfig};

/// Batch sizes a unit may have (the profiles' batch entries).
pub(super) const BATCH_SIZES: [u32; 3] = [1, 2, 4];

/// Step times of one (resolution class, batch size) at every degree of a node.
#[derive(Clone, Debug)]
pub(in crate::policy) struct Table {
    /// (degree, step time over NVLink), ascending degree.
    pub(in crate::policy) times: Vec<(u32, Nanos)>,
    /// (degree, time per step as plans see it): `times`, or with `round_aware_plans` the
    /// round-quantised time `tau / floor(tau / T)`.
    pub(super) plan_times: Vec<(u32, Nanos)>,
    /// Per log2 degree: the step time when the set crosses PCIe.
    pub(super) pcie: Vec<Nanos>,
    pub(in crate::policy) fastest: Nanos,
}

impl Table {
    /// The least GPU-time of one step at any degree (GPUs x step time, nanoseconds).
    pub(in crate::policy) fn cheapest(&self) -> u128 {
        self.times
            .iter()
            .map(|&(k, x)| u128::from(k) * u128::from(x.0))
            .min()
            .expect("degree 1")
    }

    pub(in crate::policy) fn new(
        cluster: &Cluster,
        costs: &StepTimes,
        class: ResClass,
        batch: u32,
        tau: Nanos,
        round_aware: bool,
    ) -> Option<Table> {
        let times: Vec<(u32, Nanos)> = cluster
            .degrees()
            .map(|k| costs.get(class, k, batch, Link::NvLink).map(|t| (k, t)))
            .collect::<Option<_>>()?;
        let pcie = cluster
            .degrees()
            .map(|k| {
                costs
                    .get(class, k, batch, Link::Pcie)
                    .unwrap_or(times[k.trailing_zeros() as usize].1)
            })
            .collect();
        // A unit at degree k advances floor(tau / T(k)) steps per round, so inside rounds a
        // step effectively costs tau / floor(tau / T(k)): more than T(k) whenever T(k) does
        // not divide tau. Planning with the nominal T(k) would promise progress that rounds
        // cannot deliver (the request falls behind and turns late); planning with the
        // effective time keeps the plan honest. Steps longer than a round keep T(k).
        let plan_times = times
            .iter()
            .map(|&(k, x)| {
                let per_round = tau.0 / x.0.max(1);
                (
                    k,
                    if round_aware && per_round > 0 {
                        Nanos(tau.0 / per_round)
                    } else {
                        x
                    },
                )
            })
            .collect();
        let fastest = times.iter().map(|&(_, x)| x).min()?;
        Some(Table {
            times,
            plan_times,
            pcie,
            fastest,
        })
    }

    pub(in crate::policy) fn step(&self, degree: u32) -> Nanos {
        self.times[degree.trailing_zeros() as usize].1
    }

    /// Step time on exactly the set `gpus` (its link included).
    pub(in crate::policy) fn step_on(&self, cluster: &Cluster, gpus: GpuSet) -> Nanos {
        match cluster.link_of(gpus) {
            Link::NvLink => self.step(gpus.len()),
            Link::Pcie => self.pcie[gpus.len().trailing_zeros() as usize],
        }
    }
}

/// The round length: a fixed one, or `g` steps of the menu's largest resolution at the node's
/// largest degree (never a resolution of the trace, which is the future), snapped to whole
/// steps when configured.
pub(super) fn round_length(
    config: &TetriserveConfig,
    cluster: &Cluster,
    costs: &StepTimes,
) -> Nanos {
    match config.round {
        RoundLength::Fixed(t) => t,
        RoundLength::Steps(g) => {
            // The menu's largest class (classes are sorted by token count) at the largest
            // degree: from the service's menu only, so that no decision depends on which
            // resolutions arrive later.
            let reference = costs
                .menu()
                .last()
                .map_or(Nanos(1), |c| costs.step(c, cluster.max_degree()));
            let tau = reference.times(u64::from(g.max(1)));
            if config.snap_rounds {
                let steps: Vec<Nanos> = costs
                    .menu()
                    .flat_map(|c| cluster.degrees().map(move |k| costs.step(c, k)))
                    .collect();
                snap_round(tau, reference, &steps)
            } else {
                tau
            }
        }
    }
    .max(Nanos(1))
}

/// The round length in `tau..=1.5 tau` that wastes the least time to whole-step quantisation:
/// a unit at step time `T` idles `tau mod T` of every round. Never shorter than `tau`, and
/// the reference step (`reference`, of which `tau` holds `g`) may idle at most 5% of a round,
/// so the most demanding request keeps its pace. Candidates are the multiples of every step
/// time in range; the score is the mean idle fraction over the step times that fit a round;
/// ties go to the candidate closest to `tau`.
fn snap_round(tau: Nanos, reference: Nanos, steps: &[Nanos]) -> Nanos {
    let (lo, hi) = (tau.0, tau.0 + tau.0 / 2);
    let waste = |t: u64| -> f64 {
        let fitting: Vec<u64> = steps
            .iter()
            .map(|s| s.0)
            .filter(|&s| s > 0 && s <= t)
            .collect();
        if fitting.is_empty() {
            return 1.0;
        }
        fitting
            .iter()
            .map(|&s| (t % s) as f64 / t as f64)
            .sum::<f64>()
            / fitting.len() as f64
    };
    let keeps_pace = |t: u64| reference.0 == 0 || (t % reference.0) * 20 <= t;
    let mut best = (waste(tau.0), 0u64, tau.0);
    for &s in steps {
        if s.0 == 0 {
            continue;
        }
        let mut m = lo.div_ceil(s.0);
        while m * s.0 <= hi {
            let t = m * s.0;
            let key = (waste(t), t.abs_diff(tau.0), t);
            if keeps_pace(t)
                && (key.0 < best.0 || (key.0 == best.0 && (key.1, key.2) < (best.1, best.2)))
            {
                best = key;
            }
            m += 1;
        }
    }
    Nanos(best.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Nanos {
        Nanos(v * 1_000_000)
    }

    #[test]
    fn snapped_rounds_hold_whole_steps() {
        // One step time of 30 ms: 121 ms wastes 1 ms per round; 150 ms (5 steps) wastes none
        // and is the closest such length that is not shorter.
        assert_eq!(snap_round(ms(121), Nanos::ZERO, &[ms(30)]), ms(150));
        assert_eq!(snap_round(ms(119), Nanos::ZERO, &[ms(30)]), ms(120));
        // Already aligned: unchanged.
        assert_eq!(snap_round(ms(150), ms(30), &[ms(30), ms(50)]), ms(150));
        // 100 and 40 ms: 200 ms holds both exactly, and is within +50% of 140 ms...
        assert_eq!(
            snap_round(ms(140), Nanos::ZERO, &[ms(100), ms(40)]),
            ms(200)
        );
        // ...unless the reference step of 140 ms would idle 60 of every 200 ms.
        assert_eq!(
            snap_round(ms(140), ms(140), &[ms(100), ms(40), ms(140)]),
            ms(140)
        );
        // A 24 ms reference at 5 steps (120 ms) and a 31 ms step: 124 ms holds four 31 ms
        // steps and idles only 4 ms (3%) of the reference.
        assert_eq!(snap_round(ms(120), ms(24), &[ms(24), ms(31)]), ms(124));
        // The 5% rule where it alone decides. 40 ms reference at 5 steps (200 ms), steps of
        // 100, 60 and 40 ms: 300 ms would waste less (0, 0 and 20 ms: 2.2% on average, against
        // 3.3% for 200 ms) but idles the reference 20 of every 300 ms (6.7%): kept at 200.
        assert_eq!(
            snap_round(ms(200), ms(40), &[ms(100), ms(60), ms(40)]),
            ms(200)
        );
        // At the edge: a 19 ms reference (95 ms) and a 25 ms step. 100 ms wastes the least
        // (2.5% on average) and idles the reference 5 of 100 ms, exactly 5%: allowed. (Else
        // 133 ms, seven reference steps, would be next.)
        assert_eq!(snap_round(ms(95), ms(19), &[ms(19), ms(25)]), ms(100));
    }
}
