//! Seeded generation of a workload from a specification.
//!
//! A comparison between policies is only fair if every policy sees the same requests, and an
//! experiment is only repeatable if the same seed gives the same requests on every machine.
//! This module turns a [`WorkloadSpec`] into a fully materialised [`Workload`] with both
//! properties.
//!
//! Each random quantity comes from its own named stream (`rng.rs`): arrival times from
//! `"arrivals"`, resolutions from `"resolutions"`. Changing the mix therefore leaves every
//! arrival time unchanged, and changing the arrival process leaves the sequence of
//! resolutions unchanged, so a sweep over one knob does not also reshuffle the other.

use crate::error::{Error, Result};
use crate::time::Nanos;
use crate::workload::arrival::ArrivalProcess;
use crate::workload::mix::{Mix, Sampling};
use crate::workload::rng::stream_rng;
use crate::workload::{Request, RequestId, SloBases, Workload};

/// Everything that decides a synthetic workload.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadSpec {
    pub requests: usize,
    pub arrival: ArrivalProcess,
    pub mix: Mix,
    pub sampling: Sampling,
    /// Denoising steps per request.
    pub steps: u32,
    /// Deadline = arrival + slo_scale * base(resolution).
    pub slo_scale: f64,
    pub slo_bases: SloBases,
    pub seed: u64,
}

impl WorkloadSpec {
    /// The paper's default setting (§5.3-5.4): 300 requests, Poisson at 12 req/min, Uniform
    /// over 256/512/1024/2048 px (stratified: 75 each), 28 steps, SLO scale 1.0 over the
    /// paper's base targets. Change fields from here for sweeps.
    pub fn paper(seed: u64) -> WorkloadSpec {
        WorkloadSpec {
            requests: 300,
            arrival: ArrivalProcess::poisson_per_minute(12.0),
            mix: Mix::Uniform(crate::workload::mix::paper_resolutions()),
            sampling: Sampling::Stratified,
            steps: 28,
            slo_scale: 1.0,
            slo_bases: SloBases::paper(),
            seed,
        }
    }
}

/// Checks everything about `spec` that would make generation fail or produce nonsense, with
/// messages that say which setting to change.
fn validate(spec: &WorkloadSpec) -> Result<()> {
    if spec.requests == 0 {
        return Err(Error::config_hint(
            "workload has 0 requests; expected at least 1",
            "set `requests` to 1 or more",
        ));
    }
    if u32::try_from(spec.requests).is_err() {
        return Err(Error::config(format!(
            "workload has {} requests; at most {} are supported",
            spec.requests,
            u32::MAX
        )));
    }
    if spec.steps == 0 {
        return Err(Error::config_hint(
            "requests need at least 1 denoising step, got 0",
            "set `steps` (FLUX.1-dev runs use 28)",
        ));
    }
    if spec.steps > crate::workload::MAX_STEPS {
        return Err(Error::config_hint(
            format!(
                "{} steps is more than the {} a request may have",
                spec.steps,
                crate::workload::MAX_STEPS
            ),
            "set `workload.steps` (--steps); FLUX.1-dev runs use 28",
        ));
    }
    if !spec.slo_scale.is_finite() || spec.slo_scale <= 0.0 {
        return Err(Error::config_hint(
            format!(
                "SLO scale must be a finite number greater than 0, got {}",
                crate::error::show_number(spec.slo_scale)
            ),
            "the paper sweeps 1.0 to 1.5",
        ));
    }
    spec.arrival
        .validate()
        .map_err(|e| Error::config(format!("arrival process: {e}")))?;
    spec.mix
        .validate()
        .map_err(|e| Error::config(format!("resolution mix: {e}")))?;
    for res in spec.mix.resolutions() {
        match spec.slo_bases.scaled(res, spec.slo_scale) {
            None => {
                return Err(Error::config_hint(
                    format!("resolution {res} of the mix has no SLO base latency"),
                    format!(
                        "give it one with --slo-base {res}=SECONDS, or in a scenario file under [slo] bases_s (\"{res}\" = SECONDS); or remove {res} from the mix"
                    ),
                ));
            }
            Some(Nanos::ZERO) => {
                return Err(Error::config(format!(
                    "the SLO of {res} rounds to 0 ns at scale {}; expected a positive deadline",
                    spec.slo_scale
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Generates the workload; fails with a clear message on invalid parameters or a
/// resolution with no SLO base.
///
/// Request `i` (in arrival order) gets label `i`, the `i`-th arrival of the `"arrivals"`
/// stream, the `i`-th resolution of the `"resolutions"` stream, `spec.steps` steps and the
/// deadline `arrival + slo_scale * base(resolution)`.
pub fn generate(spec: &WorkloadSpec) -> Result<Workload> {
    validate(spec)?;
    let arrivals = spec
        .arrival
        .arrivals(spec.requests, &mut stream_rng(spec.seed, "arrivals"));
    let resolutions = spec.mix.sample(
        spec.requests,
        spec.sampling,
        &mut stream_rng(spec.seed, "resolutions"),
    );
    if arrivals.len() != spec.requests || resolutions.len() != spec.requests {
        // Unreachable after `validate`; reported rather than panicking.
        return Err(Error::config(
            "internal: the arrival process or mix produced the wrong number of requests",
        ));
    }
    let mut requests = Vec::with_capacity(spec.requests);
    for (i, (arrival, resolution)) in arrivals.into_iter().zip(resolutions).enumerate() {
        let slo = spec
            .slo_bases
            .scaled(resolution, spec.slo_scale)
            .ok_or_else(|| Error::config(format!("resolution {resolution} has no SLO base")))?;
        let deadline = arrival.checked_add(slo).ok_or_else(|| {
            Error::config_hint(
                format!(
                    "request {i} would arrive or be due {} after the start, beyond the simulator's horizon of {:.0} years",
                    if arrival >= Nanos::HORIZON {
                        "more than 146 years".to_string()
                    } else {
                        format!("{:.3e} s", arrival.as_secs() + slo.as_secs())
                    },
                    Nanos::HORIZON.as_secs() / (365.25 * 86_400.0)
                ),
                "raise workload.rate_per_min (--rate) or lower workload.requests (--requests)",
            )
        })?;
        requests.push(Request {
            id: RequestId(i as u32),
            label: i as u64,
            arrival,
            resolution,
            steps: spec.steps,
            deadline,
            stages: Default::default(),
        });
    }
    Ok(Workload::from_requests(requests))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Resolution;
    use crate::workload::mix::paper_resolutions;

    #[test]
    fn paper_default_has_75_of_each_resolution() {
        let w = generate(&WorkloadSpec::paper(42)).unwrap();
        assert_eq!(w.len(), 300);
        for r in paper_resolutions() {
            assert_eq!(w.requests.iter().filter(|q| q.resolution == r).count(), 75);
        }
        assert!(w.requests.windows(2).all(|p| p[0].arrival <= p[1].arrival));
        assert!(
            w.requests
                .iter()
                .enumerate()
                .all(|(i, r)| r.label == i as u64 && r.id.index() == i)
        );
        for r in &w.requests {
            assert_eq!(r.steps, 28);
            assert_eq!(r.slo(), SloBases::paper().base(r.resolution).unwrap());
        }
        // 300 requests at 12/min span about 25 minutes.
        let span = w.requests.last().unwrap().arrival.as_secs();
        assert!((1200.0..1800.0).contains(&span), "span {span}");
    }

    #[test]
    fn same_seed_same_workload_different_seed_different() {
        let a = generate(&WorkloadSpec::paper(1)).unwrap();
        let b = generate(&WorkloadSpec::paper(1)).unwrap();
        let c = generate(&WorkloadSpec::paper(2)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let arr = |w: &Workload| w.requests.iter().map(|r| r.arrival).collect::<Vec<_>>();
        let res = |w: &Workload| w.requests.iter().map(|r| r.resolution).collect::<Vec<_>>();
        assert_ne!(arr(&a), arr(&c));
        assert_ne!(res(&a), res(&c));
    }

    #[test]
    fn changing_the_mix_keeps_arrivals_and_vice_versa() {
        let base = WorkloadSpec::paper(7);
        let arr = |w: &Workload| w.requests.iter().map(|r| r.arrival).collect::<Vec<_>>();
        let res = |w: &Workload| w.requests.iter().map(|r| r.resolution).collect::<Vec<_>>();
        let w0 = generate(&base).unwrap();

        let skewed = WorkloadSpec {
            mix: Mix::paper_skewed(),
            sampling: Sampling::Iid,
            ..base.clone()
        };
        let w1 = generate(&skewed).unwrap();
        assert_eq!(arr(&w0), arr(&w1));
        assert_ne!(res(&w0), res(&w1));

        let bursty = WorkloadSpec {
            arrival: ArrivalProcess::Gamma {
                rate_per_s: 0.2,
                cv: 3.0,
            },
            ..base.clone()
        };
        let w2 = generate(&bursty).unwrap();
        assert_ne!(arr(&w0), arr(&w2));
        assert_eq!(res(&w0), res(&w2));

        // The SLO scale changes deadlines only.
        let looser = WorkloadSpec {
            slo_scale: 1.5,
            ..base
        };
        let w3 = generate(&looser).unwrap();
        assert_eq!(arr(&w0), arr(&w3));
        assert_eq!(res(&w0), res(&w3));
        for (a, b) in w0.requests.iter().zip(&w3.requests) {
            assert_eq!(b.slo(), Nanos::from_secs(a.slo().as_secs() * 1.5));
        }
    }

    #[test]
    fn invalid_specs_are_config_errors_that_say_what_to_do() {
        let msg = |spec: WorkloadSpec| match generate(&spec) {
            Err(e @ Error::Config { .. }) => e.to_string(),
            other => panic!("expected a config error, got {other:?}"),
        };
        let base = WorkloadSpec::paper(0);
        assert!(
            msg(WorkloadSpec {
                requests: 0,
                ..base.clone()
            })
            .contains("at least 1")
        );
        assert!(
            msg(WorkloadSpec {
                steps: 0,
                ..base.clone()
            })
            .contains("at least 1 denoising step")
        );
        assert!(
            msg(WorkloadSpec {
                slo_scale: 0.0,
                ..base.clone()
            })
            .contains("SLO scale")
        );
        assert!(
            msg(WorkloadSpec {
                slo_scale: f64::NAN,
                ..base.clone()
            })
            .contains("SLO scale")
        );
        let bad_rate = ArrivalProcess::Poisson { rate_per_s: -1.0 };
        assert!(
            msg(WorkloadSpec {
                arrival: bad_rate,
                ..base.clone()
            })
            .contains("arrival process")
        );
        assert!(
            msg(WorkloadSpec {
                mix: Mix::Uniform(vec![]),
                ..base.clone()
            })
            .contains("resolution mix")
        );
        let odd = Mix::Homogeneous(Resolution::new(1024, 768));
        let m = msg(WorkloadSpec { mix: odd, ..base });
        assert!(m.contains("1024x768") && m.contains("[slo] bases"), "{m}");
    }
}
