//! Arrival processes: when requests arrive.
//!
//! The paper drives every experiment with a Poisson process at 12 requests/minute. A simulator
//! that only reproduces the paper would need nothing else, but the interesting question about
//! a deadline-aware scheduler is how it degrades when traffic is burstier than Poisson, so this
//! module also offers Gamma inter-arrivals with a chosen coefficient of variation, evenly
//! spaced (deterministic) arrivals as a control, and on/off bursts.
//!
//! Time is accumulated in `f64` seconds (the sum of the drawn gaps) and each arrival is
//! converted on its own with [`Nanos::from_secs`]. Because the running sum never decreases and
//! the conversion is monotone, the arrivals are non-decreasing; rounding error does not
//! accumulate across requests (each arrival is within half a nanosecond of the exact sum of the
//! `f64` gaps). For on/off traffic the "on-time" clock is converted to integer nanoseconds
//! first and then mapped to wall time with integer arithmetic, so that no arrival can land in
//! an off period through rounding.
//!
//! The draws use `rand_distr`'s `Exp` and `Gamma`; the exact numbers for a seed therefore
//! depend on the locked `rand_distr` version (the sample-trace test notices if they change).

use rand::Rng;
use rand_distr::{Distribution, Exp, Gamma};

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

/// Why `rate_per_s` is unusable, if it is. The reciprocal must be finite too, since the mean
/// gap 1/rate is what the samplers use.
fn check_rate(rate_per_s: f64) -> Result<(), String> {
    if !rate_per_s.is_finite() || rate_per_s <= 0.0 || !(1.0 / rate_per_s).is_finite() {
        return Err(format!(
            "arrival rate must be a finite number of requests per second greater than 0, got {rate_per_s}",
            rate_per_s = crate::error::show_number(rate_per_s)
        ));
    }
    Ok(())
}

/// Gamma shape and scale for mean gap 1/rate and coefficient of variation `cv`:
/// shape = 1/cv^2 (CV of a Gamma is 1/sqrt(shape)), scale = mean/shape = 1/(rate*shape).
fn gamma_params(rate_per_s: f64, cv: f64) -> (f64, f64) {
    let shape = 1.0 / (cv * cv);
    let scale = 1.0 / (rate_per_s * shape);
    (shape, scale)
}

impl ArrivalProcess {
    /// Requests per minute as a Poisson process: the unit the paper quotes rates in.
    pub fn poisson_per_minute(per_minute: f64) -> ArrivalProcess {
        ArrivalProcess::Poisson {
            rate_per_s: per_minute / 60.0,
        }
    }

    /// Why the parameters are unusable (rate <= 0, cv <= 0, zero-length on period...), if they are.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            ArrivalProcess::Poisson { rate_per_s } | ArrivalProcess::Constant { rate_per_s } => {
                check_rate(rate_per_s)
            }
            ArrivalProcess::Gamma { rate_per_s, cv } => {
                check_rate(rate_per_s)?;
                if !cv.is_finite() || cv <= 0.0 {
                    return Err(format!(
                        "Gamma coefficient of variation must be a finite number greater than 0 \
                         (1 is Poisson, 2-4 is bursty), got {cv}",
                        cv = crate::error::show_number(cv)
                    ));
                }
                let (shape, scale) = gamma_params(rate_per_s, cv);
                if !(shape.is_normal() && scale.is_normal()) {
                    return Err(format!(
                        "Gamma coefficient of variation {cv} at rate {rate_per_s}/s gives an unusable \
                         distribution (shape {shape}, scale {scale}); expected a cv between about 0.01 and 100"
                    ));
                }
                Ok(())
            }
            ArrivalProcess::OnOff {
                rate_per_s,
                on,
                off,
            } => {
                check_rate(rate_per_s)?;
                if on == Nanos::ZERO {
                    return Err("on/off arrivals need an `on` period longer than 0 s".to_string());
                }
                if on.0.checked_add(off.0).is_none() {
                    return Err(format!(
                        "on/off period {on} + {off} is too long to represent; expected on + off below about 584 years"
                    ));
                }
                Ok(())
            }
        }
    }

    /// [`validate`](Self::validate), naming the scenario key at fault: `workload.rate_per_min`,
    /// `workload.cv` or `workload.on_s`.
    pub fn validate_keyed(&self) -> Result<(), (&'static str, String)> {
        let rate = match *self {
            ArrivalProcess::Poisson { rate_per_s }
            | ArrivalProcess::Constant { rate_per_s }
            | ArrivalProcess::Gamma { rate_per_s, .. }
            | ArrivalProcess::OnOff { rate_per_s, .. } => rate_per_s,
        };
        check_rate(rate).map_err(|e| ("workload.rate_per_min", e))?;
        self.validate().map_err(|e| {
            let key = match self {
                ArrivalProcess::Gamma { .. } => "workload.cv",
                ArrivalProcess::OnOff { .. } => "workload.on_s",
                _ => "workload.rate_per_min",
            };
            (key, e)
        })
    }

    /// Long-run mean arrival rate in requests per second.
    pub fn mean_rate_per_s(&self) -> f64 {
        match *self {
            ArrivalProcess::Poisson { rate_per_s }
            | ArrivalProcess::Gamma { rate_per_s, .. }
            | ArrivalProcess::Constant { rate_per_s } => rate_per_s,
            ArrivalProcess::OnOff {
                rate_per_s,
                on,
                off,
            } => {
                let period = on.as_secs() + off.as_secs();
                if period > 0.0 {
                    rate_per_s * on.as_secs() / period
                } else {
                    0.0
                }
            }
        }
    }

    /// `n` arrival times, non-decreasing, drawn from `rng`.
    ///
    /// For Poisson, Gamma and on/off the first gap is drawn like every other (time 0 is not an
    /// arrival); Constant starts at 0. Parameters that fail [`ArrivalProcess::validate`] yield
    /// an empty vector rather than a panic; callers validate first to get the reason.
    pub fn arrivals<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Vec<Nanos> {
        if self.validate().is_err() {
            return Vec::new();
        }
        match *self {
            ArrivalProcess::Poisson { rate_per_s } => match Exp::new(rate_per_s) {
                Ok(exp) => accumulate(n, || exp.sample(rng)),
                Err(_) => Vec::new(),
            },
            ArrivalProcess::Gamma { rate_per_s, cv } => {
                let (shape, scale) = gamma_params(rate_per_s, cv);
                match Gamma::new(shape, scale) {
                    Ok(gamma) => accumulate(n, || gamma.sample(rng)),
                    Err(_) => Vec::new(),
                }
            }
            ArrivalProcess::Constant { rate_per_s } => (0..n)
                .map(|i| Nanos::try_from_secs(i as f64 / rate_per_s).unwrap_or(Nanos::MAX))
                .collect(),
            ArrivalProcess::OnOff {
                rate_per_s,
                on,
                off,
            } => {
                let Ok(exp) = Exp::new(rate_per_s) else {
                    return Vec::new();
                };
                // Poisson in "on-time" (the clock that only runs during on periods), then
                // t_wall = floor(t_on / on) * (on + off) + (t_on mod on), in integer ns so
                // the remainder is strictly less than `on`.
                let period = on.0 + off.0; // no overflow: checked by validate
                accumulate(n, || exp.sample(rng))
                    .into_iter()
                    .map(|t_on| {
                        let k = t_on.0 / on.0;
                        let r = t_on.0 % on.0;
                        k.checked_mul(period)
                            .and_then(|start| start.checked_add(r))
                            .filter(|&t| t < Nanos::HORIZON.0)
                            .map_or(Nanos::MAX, Nanos)
                    })
                    .collect()
            }
        }
    }
}

/// Running sums of `n` gaps (seconds), each converted to the nearest nanosecond; a sum at or
/// beyond the horizon becomes [`Nanos::MAX`], which the generator refuses.
fn accumulate(n: usize, mut gap: impl FnMut() -> f64) -> Vec<Nanos> {
    let mut t = 0.0f64;
    (0..n)
        .map(|_| {
            t += gap();
            Nanos::try_from_secs(t).unwrap_or(Nanos::MAX)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_pcg::Pcg64;

    fn rng() -> Pcg64 {
        Pcg64::seed_from_u64(7)
    }

    fn gaps_secs(arrivals: &[Nanos]) -> Vec<f64> {
        let mut prev = Nanos::ZERO;
        arrivals
            .iter()
            .map(|&a| {
                let g = (a - prev).as_secs();
                prev = a;
                g
            })
            .collect()
    }

    fn mean_and_cv(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt() / mean)
    }

    fn non_decreasing(a: &[Nanos]) -> bool {
        a.windows(2).all(|w| w[0] <= w[1])
    }

    #[test]
    fn poisson_gaps_have_mean_one_over_rate_and_cv_one() {
        let p = ArrivalProcess::poisson_per_minute(12.0);
        let a = p.arrivals(20_000, &mut rng());
        assert_eq!(a.len(), 20_000);
        assert!(non_decreasing(&a));
        assert!(a[0] > Nanos::ZERO, "the first gap is drawn too");
        let (mean, cv) = mean_and_cv(&gaps_secs(&a));
        assert!((mean - 5.0).abs() < 0.1, "mean gap {mean}");
        assert!((cv - 1.0).abs() < 0.03, "cv {cv}");
    }

    #[test]
    fn gamma_gaps_have_requested_mean_and_cv() {
        for cv_target in [0.5, 3.0] {
            let p = ArrivalProcess::Gamma {
                rate_per_s: 0.2,
                cv: cv_target,
            };
            let a = p.arrivals(50_000, &mut rng());
            assert!(non_decreasing(&a));
            let (mean, cv) = mean_and_cv(&gaps_secs(&a));
            assert!(
                (mean - 5.0).abs() / 5.0 < 0.05,
                "cv {cv_target}: mean gap {mean}"
            );
            assert!(
                (cv - cv_target).abs() / cv_target < 0.1,
                "cv {cv_target}: measured {cv}"
            );
        }
    }

    #[test]
    fn constant_starts_at_zero_and_is_evenly_spaced() {
        let a = ArrivalProcess::Constant { rate_per_s: 4.0 }.arrivals(5, &mut rng());
        let ms: Vec<u64> = a.iter().map(|t| t.0 / 1_000_000).collect();
        assert_eq!(ms, vec![0, 250, 500, 750, 1000]);
    }

    #[test]
    fn on_off_never_arrives_during_off_periods() {
        let on = Nanos::from_secs(10.0);
        let off = Nanos::from_secs(30.0);
        let p = ArrivalProcess::OnOff {
            rate_per_s: 2.0,
            on,
            off,
        };
        let a = p.arrivals(20_000, &mut rng());
        assert!(non_decreasing(&a));
        assert!(a.iter().all(|t| t.0 % (on.0 + off.0) < on.0));
        // Long-run rate is rate * on / (on + off) = 0.5/s.
        assert!((p.mean_rate_per_s() - 0.5).abs() < 1e-12);
        let measured = a.len() as f64 / a.last().unwrap().as_secs();
        assert!((measured - 0.5).abs() < 0.02, "measured rate {measured}");
    }

    #[test]
    fn same_rng_state_gives_same_arrivals() {
        let p = ArrivalProcess::Gamma {
            rate_per_s: 1.0,
            cv: 2.0,
        };
        assert_eq!(p.arrivals(100, &mut rng()), p.arrivals(100, &mut rng()));
    }

    #[test]
    fn validate_rejects_bad_parameters_with_what_is_expected() {
        let bad = [
            ArrivalProcess::Poisson { rate_per_s: 0.0 },
            ArrivalProcess::Poisson { rate_per_s: -1.0 },
            ArrivalProcess::Poisson {
                rate_per_s: f64::NAN,
            },
            ArrivalProcess::Constant {
                rate_per_s: f64::INFINITY,
            },
            ArrivalProcess::Gamma {
                rate_per_s: 1.0,
                cv: 0.0,
            },
            ArrivalProcess::Gamma {
                rate_per_s: 1.0,
                cv: f64::NAN,
            },
            ArrivalProcess::Gamma {
                rate_per_s: 1.0,
                cv: 1e300,
            },
            ArrivalProcess::OnOff {
                rate_per_s: 1.0,
                on: Nanos::ZERO,
                off: Nanos(5),
            },
            ArrivalProcess::OnOff {
                rate_per_s: 1.0,
                on: Nanos::MAX,
                off: Nanos(5),
            },
        ];
        for p in bad {
            let err = p
                .validate()
                .expect_err(&format!("{p:?} should be rejected"));
            assert!(
                err.contains("expected") || err.contains("must") || err.contains("need"),
                "{err}"
            );
            assert!(
                p.arrivals(3, &mut rng()).is_empty(),
                "no panic, no arrivals for {p:?}"
            );
        }
        assert!(
            ArrivalProcess::Gamma {
                rate_per_s: 0.2,
                cv: 3.0
            }
            .validate()
            .is_ok()
        );
        let no_off = ArrivalProcess::OnOff {
            rate_per_s: 1.0,
            on: Nanos(1),
            off: Nanos::ZERO,
        };
        assert!(no_off.validate().is_ok());
    }

    #[test]
    fn mean_rates() {
        assert_eq!(
            ArrivalProcess::poisson_per_minute(12.0).mean_rate_per_s(),
            0.2
        );
        assert_eq!(
            ArrivalProcess::Gamma {
                rate_per_s: 0.3,
                cv: 3.0
            }
            .mean_rate_per_s(),
            0.3
        );
    }
}
