//! Deadline-aware GPU allocation: the fewest GPU-seconds that still meet a deadline.
//!
//! For a request with `S` steps left and `B` time until its deadline, the plan splits the
//! steps over at most two SP degrees (the paper's Fig. 6): `s_a` steps at degree `a` and
//! `s_b` at `b`, with `s_a * T(a) + s_b * T(b) <= B`, minimising `s_a * a * T(a) + s_b * b * T(b)`.
//! Because scaling is sublinear, the cheapest degree per step is usually the smallest, and
//! the plan runs as many steps there as the deadline allows and the rest at a faster degree.
//!
//! The search is exact over every one- and two-degree split: for each ordered pair (a, b)
//! with `b` faster but costlier per step, the least `s_b` meeting the budget is
//! `ceil((S * T(a) - B) / (T(a) - T(b)))`, and any more steps at `b` only cost more. Queueing
//! is not part of the budget: the plan assumes the request runs from now on, and the round
//! packing decides whether it actually does.

use crate::time::Nanos;

/// `steps` steps at SP degree `degree`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    pub steps: u32,
    pub degree: u32,
}

/// A request's allocation plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    parts: [Part; 2],
    len: u8,
    /// No split meets the deadline: the plan is "all steps at the fastest degree".
    pub late: bool,
}

impl Plan {
    /// The parts, ascending degree.
    pub fn parts(&self) -> &[Part] {
        &self.parts[..self.len as usize]
    }

    /// GPU time of the whole plan under `times`.
    pub fn gpu_time(&self, times: &[(u32, Nanos)]) -> u128 {
        self.parts()
            .iter()
            .map(|p| {
                let t = times
                    .iter()
                    .find(|(k, _)| *k == p.degree)
                    .expect("planned degree")
                    .1;
                u128::from(p.steps) * u128::from(p.degree) * u128::from(t.0)
            })
            .sum()
    }
}

/// The minimal-GPU-time plan for `steps` steps within `budget`, given the step time at each
/// available degree (`times`, any order, non-empty).
pub fn min_gpu_plan(times: &[(u32, Nanos)], steps: u32, budget: Nanos) -> Plan {
    // u64 throughout (u128 division dominated the round's profile); a product that overflows
    // u64 (steps x time beyond 584 years) makes that candidate infeasible.
    let s = u64::from(steps);
    let b = budget.0;
    // (cost, single part, highest degree) orders candidates: cheapest; at equal cost a
    // two-degree plan (it gives the round packing two ways to fit the request); then narrowest.
    let mut best: Option<((u64, bool, u32), Plan)> = None;
    let mut consider = |key: (u64, bool, u32), plan: Plan| {
        if best.as_ref().is_none_or(|(k, _)| key < *k) {
            best = Some((key, plan));
        }
    };
    for &(ka, ta) in times {
        let (ta_ns, ca) = (ta.0, u64::from(ka).saturating_mul(ta.0));
        let Some(wall_a) = s.checked_mul(ta_ns) else {
            continue;
        };
        if wall_a <= b {
            if let Some(cost) = s.checked_mul(ca) {
                consider((cost, true, ka), single(steps, ka));
            }
            continue; // a alone fits: any mix with a costlier degree costs more.
        }
        for &(kb, tb) in times {
            let (tb_ns, cb) = (tb.0, u64::from(kb).saturating_mul(tb.0));
            if tb_ns >= ta_ns || cb < ca || s.saturating_mul(tb_ns) > b {
                // b must be faster and not cheaper (else b alone dominates), and b alone
                // fast enough.
                continue;
            }
            let sb = (wall_a - b).div_ceil(ta_ns - tb_ns);
            if sb >= s {
                continue; // That is the single-degree plan at b, considered on its own.
            }
            let sa = s - sb;
            let Some(cost) = sa
                .checked_mul(ca)
                .and_then(|x| sb.checked_mul(cb).and_then(|y| x.checked_add(y)))
            else {
                continue;
            };
            let (lo, hi) = if ka < kb {
                ((sa, ka), (sb, kb))
            } else {
                ((sb, kb), (sa, ka))
            };
            let plan = Plan {
                parts: [
                    Part {
                        steps: lo.0 as u32,
                        degree: lo.1,
                    },
                    Part {
                        steps: hi.0 as u32,
                        degree: hi.1,
                    },
                ],
                len: 2,
                late: false,
            };
            consider((cost, false, ka.max(kb)), plan);
        }
    }
    match best {
        Some((_, plan)) => plan,
        None => {
            let &(k, _) = times
                .iter()
                .min_by_key(|&&(k, t)| (t, k))
                .expect("at least one degree");
            Plan {
                late: true,
                ..single(steps, k)
            }
        }
    }
}

fn single(steps: u32, degree: u32) -> Plan {
    let p = Part { steps, degree };
    Plan {
        parts: [p, p],
        len: 1,
        late: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(v: u64) -> Nanos {
        Nanos(v * 1_000_000)
    }

    /// The paper-like profile of a 1024 px image: T(1..8) = 168, 99, 61, 44 ms.
    fn table() -> Vec<(u32, Nanos)> {
        vec![(1, ms(168)), (2, ms(99)), (4, ms(61)), (8, ms(44))]
    }

    #[test]
    fn a_loose_deadline_stays_on_one_gpu() {
        let p = min_gpu_plan(&table(), 28, ms(5000));
        assert_eq!(
            p.parts(),
            &[Part {
                steps: 28,
                degree: 1
            }]
        );
        assert!(!p.late);
    }

    #[test]
    fn a_tighter_deadline_splits_over_two_degrees() {
        // 28 x 168 = 4704 > 4000. Mixing degrees 1 and 2: s2 >= (4704 - 4000) / 69 = 10.2 -> 11
        // steps at SP2, 17 at SP1: 17 x 168 + 11 x 99 = 3945 ms, 17x168 + 11x198 = 5034 GPU-ms.
        let p = min_gpu_plan(&table(), 28, ms(4000));
        assert_eq!(
            p.parts(),
            &[
                Part {
                    steps: 17,
                    degree: 1
                },
                Part {
                    steps: 11,
                    degree: 2
                }
            ]
        );
        assert_eq!(p.gpu_time(&table()), u128::from(ms(5034).0));
    }

    #[test]
    fn an_impossible_deadline_is_late_at_the_fastest_degree() {
        let p = min_gpu_plan(&table(), 28, ms(1000));
        assert!(p.late);
        assert_eq!(
            p.parts(),
            &[Part {
                steps: 28,
                degree: 8
            }]
        );
        assert!(min_gpu_plan(&table(), 1, Nanos::ZERO).late);
    }

    /// Every split of `steps` over at most two degrees, by brute force.
    fn brute_force(times: &[(u32, Nanos)], steps: u32, budget: Nanos) -> Option<u128> {
        let mut best = None;
        for &(ka, ta) in times {
            for &(kb, tb) in times {
                for sb in 0..=steps {
                    let sa = u128::from(steps - sb);
                    let sb = u128::from(sb);
                    if sa * u128::from(ta.0) + sb * u128::from(tb.0) > u128::from(budget.0) {
                        continue;
                    }
                    let cost = sa * u128::from(ka) * u128::from(ta.0)
                        + sb * u128::from(kb) * u128::from(tb.0);
                    best = Some(best.map_or(cost, |b: u128| b.min(cost)));
                }
            }
        }
        best
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn the_plan_is_feasible_and_as_cheap_as_any_two_degree_split(
            raw in prop::collection::vec(1u64..400, 4),
            steps in 1u32..40,
            budget_ms in 0u64..12_000,
        ) {
            let times: Vec<(u32, Nanos)> = raw.iter().enumerate().map(|(i, &t)| (1u32 << i, ms(t))).collect();
            let budget = ms(budget_ms);
            let plan = min_gpu_plan(&times, steps, budget);
            let total: u32 = plan.parts().iter().map(|p| p.steps).sum();
            prop_assert_eq!(total, steps);
            match brute_force(&times, steps, budget) {
                Some(best) => {
                    prop_assert!(!plan.late);
                    let wall: u128 = plan.parts().iter().map(|p| u128::from(p.steps) * u128::from(times.iter().find(|t| t.0 == p.degree).unwrap().1.0)).sum();
                    prop_assert!(wall <= u128::from(budget.0), "plan misses its budget");
                    prop_assert_eq!(plan.gpu_time(&times), best);
                }
                None => prop_assert!(plan.late),
            }
        }
    }
}
