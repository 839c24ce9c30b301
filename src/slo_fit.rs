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
//!
//! [`video_bases`] gives a video resolution that has no SLO base one, by the rule this project
//! set its own image bases by where the paper gives none (the SD3 bases of
//! `scenarios/paper/fig12-sd3-a40.toml`): [`VIDEO_SLO_MULTIPLE`] times a lone request's time at
//! the fastest degree.
//!
//! [`never_met`] answers a narrower question per policy and per request, with the fixed
//! costs counted: which requests of a workload one policy can never serve within their SLOs.
//! Capacity planning stops a search whose target those requests put out of reach.

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

/// A derived video SLO base is this many times a lone clip's service time at its fastest
/// degree: the rule of this project's SD3 bases ("about twice the isolated latency at the
/// fastest degree"), so that every clip can meet its SLO alone but not without parallelism.
pub const VIDEO_SLO_MULTIPLE: u64 = 2;

/// SLO bases for the video resolutions of `resolutions` that `bases` has none for:
/// [`VIDEO_SLO_MULTIPLE`] x (`steps` steps at the fastest degree `cluster` offers, batch 1,
/// plus the fixed costs of one request: text encoder, one dispatch, VAE decode), rounded up to
/// the millisecond. Images are left to the scenario (the paper's bases, or `[slo] bases_s`).
/// A video the cost model cannot time is an error naming it (an image model cannot derive a
/// clip's deadline).
pub fn video_bases(
    model: &dyn CostModel,
    cluster: &Cluster,
    overheads: &crate::cost::Overheads,
    steps: u32,
    resolutions: &[crate::workload::Resolution],
    bases: &crate::workload::SloBases,
) -> crate::error::Result<Vec<(crate::workload::Resolution, Nanos)>> {
    let mut out = Vec::new();
    for &res in resolutions {
        if !res.is_video() || bases.base(res).is_some() || out.iter().any(|(r, _)| *r == res) {
            continue;
        }
        let times = StepTimes::resolve(model, &[res], cluster, &[1]).map_err(|e| {
            crate::error::Error::Cost(format!(
                "the mix asks for the video {res}, which the cost model cannot cover: {e}"
            ))
        })?;
        let Some(class) = times.class_of(res) else {
            continue;
        };
        let (_, step) = times.fastest(class);
        let lone = step
            .checked_times(u64::from(steps))
            .and_then(|t| t.checked_add(overheads.text_encoder))
            .and_then(|t| t.checked_add(overheads.dispatch))
            .and_then(|t| t.checked_add(overheads.vae_decode(res)))
            .and_then(|t| t.checked_times(VIDEO_SLO_MULTIPLE))
            .filter(|t| *t < Nanos::HORIZON)
            .ok_or_else(|| {
                crate::error::Error::Cost(format!(
                    "{res}: {steps} steps at the fastest degree take longer than the simulator's horizon (2^62 ns); no SLO base can be derived"
                ))
            })?;
        // Rounded up to a whole millisecond: the base is shown to people and written in traces.
        let ms = lone.0.div_ceil(1_000_000);
        out.push((res, Nanos(ms.saturating_mul(1_000_000))));
    }
    Ok(out)
}

/// A resolution some of whose requests one policy can never serve within their SLO: even
/// alone on the cluster, at the best degree the policy may use for it, the request's steps
/// plus the fixed costs (text encoder, one dispatch, VAE decode) take longer than its SLO.
/// Decided from the cost table alone, without running anything.
#[derive(Clone, Debug, PartialEq)]
pub struct NeverMet {
    pub resolution: crate::workload::Resolution,
    /// Requests of this resolution that can never meet their SLO, of `of`.
    pub requests: usize,
    pub of: usize,
    /// The degrees the policy may use for it (one for fixed SP and RSSP).
    pub degrees: Vec<u32>,
    /// The shortest lone service time among those requests, and the longest SLO among them.
    pub lone: Nanos,
    pub slo: Nanos,
}

impl NeverMet {
    /// One line for people: `2048x2048: 30 of 30 requests (alone at SP 4: 14.20 s with fixed
    /// costs, SLO 7.50 s)`.
    pub fn describe(&self) -> String {
        let sp: Vec<String> = self.degrees.iter().map(u32::to_string).collect();
        format!(
            "{}: {} of {} requests (alone at SP {}: {:.2} s or more with fixed costs, SLO {:.2} s or less)",
            self.resolution,
            self.requests,
            self.of,
            sp.join("/"),
            self.lone.as_secs(),
            self.slo.as_secs(),
        )
    }
}

/// The resolutions of `workload` that `policy` can never serve within their SLOs on
/// `cluster` (see [`NeverMet`]), in the order of the cost table. Empty when run-time step
/// skipping is on (a skipped step costs nothing, so the lone time is not known in advance).
pub fn never_met(
    model: &dyn CostModel,
    cluster: &Cluster,
    config: &PolicyConfig,
    policy: crate::policy::PolicyKind,
    workload: &crate::workload::Workload,
    skipping: bool,
) -> crate::error::Result<Vec<NeverMet>> {
    use crate::policy::PolicyKind;
    if skipping || workload.requests.is_empty() {
        return Ok(Vec::new());
    }
    let mut resolutions: Vec<crate::workload::Resolution> =
        workload.requests.iter().map(|r| r.resolution).collect();
    resolutions.sort();
    resolutions.dedup();
    let times = StepTimes::resolve(model, &resolutions, cluster, &[1])?;
    let rssp = match policy {
        PolicyKind::Rssp => Some(crate::policy::Rssp::new(cluster, &times, config)?),
        _ => None,
    };
    let o = &config.overheads;
    let mut out: Vec<NeverMet> = Vec::new();
    for (i, &res) in times.classes().iter().enumerate() {
        let class = crate::cost::ResClass(i as u16);
        let degrees: Vec<u32> = match (policy, &rssp) {
            (PolicyKind::XditSp(k), _) => cluster.degrees().filter(|&d| d == k).collect(),
            (_, Some(r)) => vec![r.degrees()[i]],
            _ => cluster.degrees().collect(),
        };
        let Some(step) = degrees.iter().map(|&k| times.step(class, k)).min() else {
            continue;
        };
        let fixed = o
            .text_encoder
            .saturating_add(o.dispatch)
            .saturating_add(o.vae_decode(res));
        let mut never = NeverMet {
            resolution: res,
            requests: 0,
            of: 0,
            degrees,
            lone: Nanos::MAX,
            slo: Nanos::ZERO,
        };
        for r in workload.requests.iter().filter(|r| r.resolution == res) {
            never.of += 1;
            let lone = step.times(u64::from(r.steps)).saturating_add(fixed);
            if lone > r.slo() {
                never.requests += 1;
                never.lone = never.lone.min(lone);
                never.slo = never.slo.max(r.slo());
            }
        }
        if never.requests > 0 {
            out.push(never);
        }
    }
    Ok(out)
}
