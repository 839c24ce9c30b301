//! Whether a scenario's SLO bases fit its cost model: warnings, before a run, for deadlines
//! that the hardware cannot meet even with the cluster to itself.
//!
//! SLO bases are written for one model on one GPU (the default's are the paper's FLUX.1-dev
//! targets on H100s); `--profile` swaps the costs and keeps them, and a slower profile then
//! gives attainment near zero for a reason that is not the scheduler's. Two checks, both on a
//! lone request (no queueing, no overheads, `steps` steps of the profile's step time, batch 1):
//!
//! - a resolution whose fastest degree cannot finish within `scale x base`: no policy can meet
//!   any request of it;
//! - RSSP's configured degree for a resolution that cannot finish within `scale x base` while
//!   a larger degree could (RSSP would miss every such request by choice).
//!
//! Resolutions the cost model cannot cover are left to the run, which refuses them only if the
//! workload asks for them. Nothing here stops a run: the warnings go to `Scenario::warnings`.

use crate::cluster::Cluster;
use crate::cost::{CostModel, StepTimes};
use crate::policy::PolicyConfig;
use crate::time::Nanos;

/// The warnings for `config`'s SLO bases at `scale` on `model` and `cluster`; `rssp` says
/// whether RSSP runs (its configured degrees are checked only then).
pub fn warnings(
    model: &dyn CostModel,
    cluster: &Cluster,
    config: &PolicyConfig,
    scale: f64,
    rssp: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let steps = u64::from(config.steps);
    let hint = "the SLO bases ([slo] bases_s) are the scenario's, not the profile's: set ones that fit this hardware in a scenario file, or loosen them with --slo-scale (scenarios/a40-sd3-medium.toml sets up the a40 node)";
    for (res, base) in config.slo_bases.iter() {
        let Ok(times) = StepTimes::resolve(model, &[res], cluster, &[1]) else {
            continue;
        };
        let Some(class) = times.class_of(res) else {
            continue;
        };
        let Some(slo) = Nanos::try_from_secs(base.as_secs() * scale) else {
            continue;
        };
        let (fastest_degree, fastest_step) = times.fastest(class);
        let fastest = fastest_step.times(steps);
        if fastest > slo {
            out.push(format!(
                "{res}: a lone request takes {:.2} s at best (SP {fastest_degree}, {steps} steps) on {}, more than its SLO of {:.2} s (base {:.2} s x scale {scale}); no policy can meet it (it needs --slo-scale {:.2} or more)",
                fastest.as_secs(),
                model.describe(),
                slo.as_secs(),
                base.as_secs(),
                fastest.as_secs() / base.as_secs(),
            ));
            continue;
        }
        if !rssp {
            continue;
        }
        let Some(&(_, degree)) = config.rssp_degrees.iter().find(|(r, _)| *r == res) else {
            continue;
        };
        if !cluster.degrees().any(|k| k == degree) {
            continue;
        }
        let at_degree = times.step(class, degree).times(steps);
        if at_degree > slo {
            let enough = cluster
                .degrees()
                .find(|&k| times.step(class, k).times(steps) <= slo)
                .unwrap_or(fastest_degree);
            out.push(format!(
                "rssp: {res} at its configured SP {degree} takes {:.2} s alone ({steps} steps) on {}, more than its SLO of {:.2} s (base {:.2} s x scale {scale}); SP {enough} would meet it (set [policy.rssp] degrees {{ \"{res}\" = {enough} }} in a scenario file)",
                at_degree.as_secs(),
                model.describe(),
                slo.as_secs(),
                base.as_secs(),
            ));
        }
    }
    if let Some(last) = out.last_mut() {
        last.push_str(&format!("\n  hint: {hint}"));
    }
    out
}
