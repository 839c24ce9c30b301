//! The analytic roofline cost model: a step time from the model's shape and the GPU's numbers.
//!
//! It exists for the hardware and models nobody has profiled, for what-if questions ("what if
//! NVLink were half as fast?"), and to generate the shipped default profiles, whose values are
//! calibrated estimates rather than measurements (see `profiles/README.md`).
//! A step is charged three things, reported separately by [`Analytic::breakdown`]:
//! - a fixed per-step overhead (kernel launches), the same at every degree and batch size;
//! - compute: FLOPs per GPU over an achieved throughput that falls when the per-GPU work is small
//!   (`R_max * m / (m + m_half)`, with `m` the tokens each GPU processes), floored by the time to
//!   stream the weights from HBM once;
//! - Ulysses communication for degree `k > 1`: four all-to-alls per attention layer, each moving
//!   `(k-1)/k` of the local activations, over the slowest link the group crosses.
//!
//! Attention is charged `4 * N^2 * hidden` FLOPs per layer over the `N` tokens that attend
//! jointly, so its share grows with the square of the tokens: an 81-frame 720p clip of the
//! video preset (`wan2.1-14b`, 75,600 tokens) spends most of its step in attention.
//!
//! It leaves out everything outside the denoising step (text encoders, VAE; see
//! [`crate::cost::Overheads`]) and any overlap of communication with compute, which xDiT's
//! Ulysses attention does not do.
//! Every constant is a public field so that users can build custom hardware; the presets document
//! where each number comes from.

mod presets;

use crate::cluster::Link;
use crate::cost::CostModel;
use crate::cost::profile::{CsvRow, Precision, profile_csv};
use crate::error::{Error, Result};
use crate::time::Nanos;
use crate::workload::Resolution;

/// The shape of a diffusion transformer, as far as step time is concerned.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelShape {
    /// Name used in profiles and messages (`flux1-dev`).
    pub name: String,
    /// Text tokens attended to jointly with the image tokens.
    pub text_tokens: u64,
    /// Hidden size: the width of the activations the all-to-alls move.
    pub hidden: u64,
    /// Attention layers per forward pass; each costs `4 * N^2 * hidden` FLOPs and, under Ulysses,
    /// four all-to-alls.
    pub attention_layers: u32,
    /// Weight-GEMM FLOPs per token per forward pass (2 x the per-token parameters).
    pub linear_flops_per_token: f64,
    /// FLOPs per sample that do not scale with tokens (adaLN modulation from the timestep).
    pub per_sample_flops: f64,
    /// Forward passes per image per step: 2 under classifier-free guidance, run as a doubled batch.
    pub cfg_factor: u32,
    /// Bytes of weights read from HBM once per step (bf16).
    pub weight_bytes: f64,
    /// Kernels launched per step; times the GPU's per-launch cost gives the fixed overhead.
    pub kernels_per_step: f64,
    /// Whether it generates video clips: an image model refuses a resolution of more than one
    /// frame rather than time a clip it cannot generate.
    pub video: bool,
}

/// One kind of interconnect as the all-to-alls see it.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkSpec {
    /// Achieved all-to-all bandwidth per GPU per direction, bytes/s.
    pub bytes_per_s: f64,
    /// Fixed latency of one all-to-all, seconds.
    pub alpha_s: f64,
    /// Extra latency per peer of one all-to-all (NCCL sends to each peer), seconds.
    pub alpha_per_peer_s: f64,
}

/// A GPU type: throughput, memory bandwidth, launch cost and links.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuSpec {
    /// Name used in profiles and messages (`h100`).
    pub name: String,
    /// Dense bf16 tensor-core peak, FLOP/s (the datasheet number).
    pub peak_flops: f64,
    /// Fraction of the peak a whole step reaches on large per-GPU work (GEMMs, attention and the
    /// memory-bound element-wise kernels between them together).
    pub max_efficiency: f64,
    /// Tokens per GPU at which the achieved throughput is half of `peak * max_efficiency`:
    /// small GEMMs under-fill the SMs.
    pub half_efficiency_tokens: f64,
    /// HBM bandwidth, bytes/s (only the weight-streaming floor uses it).
    pub hbm_bytes_per_s: f64,
    /// Host-side cost of one kernel launch, seconds.
    pub launch_s: f64,
    /// Links between GPUs of an NVLink domain (NVSwitch node, or a bridged pair).
    pub nvlink: LinkSpec,
    /// Links between GPUs that talk over PCIe.
    pub pcie: LinkSpec,
}

/// Roofline estimate for a model shape on a GPU type.
#[derive(Clone, Debug, PartialEq)]
pub struct Analytic {
    pub model: ModelShape,
    pub gpu: GpuSpec,
}

/// One step's time split into its three parts, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Breakdown {
    /// Fixed per-step cost (kernel launches).
    pub overhead: f64,
    /// Compute, including the small-work efficiency loss and the weight-streaming floor.
    pub compute: f64,
    /// Ulysses all-to-alls (zero at degree 1).
    pub comm: f64,
}

impl Breakdown {
    pub fn total(&self) -> f64 {
        self.overhead + self.compute + self.comm
    }

    /// Share of the step spent communicating, the quantity of the paper's Fig. 2.
    pub fn comm_share(&self) -> f64 {
        self.comm / self.total()
    }
}

impl Analytic {
    /// A preset by names: model `flux1-dev` | `sd3-medium` | `wan2.1-14b`, GPU `h100` | `h200` | `a40`.
    pub fn preset(model: &str, gpu: &str) -> Result<Analytic> {
        let shape = ModelShape::preset(model).ok_or_else(|| {
            Error::config_hint(
                format!("unknown analytic model `{model}`"),
                format!("known models: {}", ModelShape::PRESETS.join(", ")),
            )
        })?;
        let spec = GpuSpec::preset(gpu).ok_or_else(|| {
            Error::config_hint(
                format!("unknown analytic GPU `{gpu}`"),
                format!("known GPUs: {}", GpuSpec::PRESETS.join(", ")),
            )
        })?;
        Ok(Analytic {
            model: shape,
            gpu: spec,
        })
    }

    /// The step time of `batch` images at `res` on `degree` GPUs over `link`, split into parts.
    ///
    /// Infallible for what-if exploration: a degree or batch of 0 is treated as 1.
    /// [`CostModel::step_time`] validates its arguments instead.
    pub fn breakdown(&self, res: Resolution, degree: u32, batch: u32, link: Link) -> Breakdown {
        let (m, g) = (&self.model, &self.gpu);
        let k = f64::from(degree.max(1));
        // Classifier-free guidance runs the conditional and unconditional passes as one batch.
        let samples = f64::from(batch.max(1)) * f64::from(m.cfg_factor.max(1));
        let n = (res.tokens() + m.text_tokens) as f64;
        let hidden = m.hidden as f64;

        let overhead = m.kernels_per_step * g.launch_s;

        // Ulysses splits the sequence: each GPU runs all weights on N/k tokens and attends with
        // H/k heads over all N tokens, so both GEMM and attention FLOPs divide by k. Per-sample
        // modulation is replicated on every GPU.
        let attention_per_token = 4.0 * n * hidden * f64::from(m.attention_layers);
        let flops_per_gpu = samples * n * (m.linear_flops_per_token + attention_per_token) / k
            + samples * m.per_sample_flops;
        let tokens_per_gpu = samples * n / k;
        let efficiency = tokens_per_gpu / (tokens_per_gpu + g.half_efficiency_tokens);
        let achieved = g.peak_flops * g.max_efficiency * efficiency;
        let weight_floor = m.weight_bytes / g.hbm_bytes_per_s;
        let compute = (flops_per_gpu / achieved).max(weight_floor);

        let comm = if degree > 1 {
            let l = match link {
                Link::NvLink => &g.nvlink,
                Link::Pcie => &g.pcie,
            };
            // Each all-to-all sends (k-1)/k of the local N/k tokens' activations (bf16) away.
            let bytes = n * hidden * 2.0 * samples / k * (k - 1.0) / k;
            let one = bytes / l.bytes_per_s + l.alpha_s + l.alpha_per_peer_s * (k - 1.0);
            f64::from(m.attention_layers) * 4.0 * one
        } else {
            0.0
        };
        Breakdown {
            overhead,
            compute,
            comm,
        }
    }
}

impl CostModel for Analytic {
    fn step_time(&self, res: Resolution, degree: u32, batch: u32, link: Link) -> Result<Nanos> {
        res.validate()
            .map_err(|e| Error::Cost(format!("{}: {e}", self.describe())))?;
        if res.is_video() && !self.model.video {
            return Err(Error::Cost(format!(
                "{}: {} is an image model and cannot time the {}-frame video {res}; cost video with a video model (analytic model `wan2.1-14b`)",
                self.describe(),
                self.model.name,
                res.frames
            )));
        }
        if degree == 0 || !degree.is_power_of_two() {
            return Err(Error::Cost(format!(
                "{}: SP degree {degree} is not a power of two >= 1 (Ulysses splits heads evenly)",
                self.describe()
            )));
        }
        if batch == 0 {
            return Err(Error::Cost(format!(
                "{}: batch size 0; a step runs at least one image",
                self.describe()
            )));
        }
        let t = self.breakdown(res, degree, batch, link).total();
        match Nanos::try_from_secs(t) {
            Some(ns) if ns > Nanos::ZERO => Ok(ns),
            _ => Err(Error::Cost(format!(
                "{} gives a step time of {t} s for {res} at SP {degree}, batch {batch}; check the custom hardware constants",
                self.describe()
            ))),
        }
    }

    fn describe(&self) -> String {
        format!("analytic {} on {}", self.model.name, self.gpu.name)
    }
}

/// The `source` value of generated rows: they are estimates, never measurements.
pub const ANALYTIC_SOURCE: &str = "analytic-estimate";

/// Writes a profile CSV from `model` for every resolution x (degree, link) x batch.
///
/// Rows come in the order given (resolution, then configuration, then batch), with step times
/// to four decimals of a millisecond, so the output is byte-for-byte deterministic.
/// Degree-1 configurations should use [`Link::NvLink`] (a single GPU crosses no link).
/// A leading `#` comment says the values are estimates; [`super::profile::ProfileTable`] skips it.
pub fn generate_profile_csv(
    model: &Analytic,
    resolutions: &[Resolution],
    configs: &[(u32, Link)],
    batches: &[u32],
) -> Result<String> {
    let comment = format!(
        "Generated by tetriserve's analytic model ({}): calibrated ESTIMATES, not measurements. See profiles/README.md.",
        model.describe()
    );
    let mut rows = Vec::new();
    for &res in resolutions {
        for &(degree, link) in configs {
            for &batch in batches {
                let t = model.step_time(res, degree, batch, link)?;
                rows.push(CsvRow {
                    res,
                    degree,
                    batch,
                    step_ms: t.as_millis(),
                    std_ms: None,
                    source: ANALYTIC_SOURCE,
                    link,
                });
            }
        }
    }
    Ok(profile_csv(
        &model.model.name,
        &model.gpu.name,
        Precision::Fixed4,
        &[&comment],
        rows,
    ))
}

/// Regenerates a shipped profile by name (`h100-flux1-dev`, `a40-sd3-medium`) from its preset and grid.
///
/// The committed files under `profiles/` must equal this output byte for byte (a test checks it).
pub fn shipped_profile_csv(name: &str) -> Option<Result<String>> {
    let squares: Vec<Resolution> = [256, 512, 1024, 2048]
        .into_iter()
        .map(Resolution::square)
        .collect();
    let batches = [1, 2, 4];
    let (model, gpu, configs): (&str, &str, &[(u32, Link)]) = match name {
        "h100-flux1-dev" => (
            "flux1-dev",
            "h100",
            &[
                (1, Link::NvLink),
                (2, Link::NvLink),
                (4, Link::NvLink),
                (8, Link::NvLink),
            ],
        ),
        // SP 2 inside a bridged pair runs over NVLink, across pairs over PCIe; any 4 A40s span two
        // pairs, so SP 4 always crosses PCIe.
        "a40-sd3-medium" => (
            "sd3-medium",
            "a40",
            &[
                (1, Link::NvLink),
                (2, Link::NvLink),
                (2, Link::Pcie),
                (4, Link::Pcie),
            ],
        ),
        _ => return None,
    };
    Some(
        Analytic::preset(model, gpu)
            .and_then(|a| generate_profile_csv(&a, &squares, configs, &batches)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEGREES: [u32; 4] = [1, 2, 4, 8];
    /// The paper's SLO bases at 1.0x, seconds, per square resolution.
    const SLO: [(u32, f64); 4] = [(256, 1.5), (512, 2.0), (1024, 3.0), (2048, 5.0)];
    /// The first-estimate table of docs/calibration.md: seconds per step at batch 1, SP 1/2/4/8.
    const SUGGESTED: [(u32, [f64; 4]); 4] = [
        (256, [0.022, 0.020, 0.018, 0.018]),
        (512, [0.050, 0.036, 0.028, 0.025]),
        (1024, [0.180, 0.106, 0.064, 0.045]),
        (2048, [0.890, 0.468, 0.247, 0.139]),
    ];

    fn flux() -> Analytic {
        Analytic::preset("flux1-dev", "h100").unwrap()
    }

    fn secs(a: &Analytic, px: u32, k: u32, b: u32, link: Link) -> f64 {
        a.step_time(Resolution::square(px), k, b, link)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn rssp_degrees_are_the_smallest_meeting_the_slo_at_28_steps() {
        let a = flux();
        for ((px, base), want) in SLO.into_iter().zip([1, 1, 2, 8]) {
            let chosen = DEGREES
                .into_iter()
                .find(|&k| 28.0 * secs(&a, px, k, 1, Link::NvLink) <= base);
            assert_eq!(chosen, Some(want), "{px} px");
        }
        // Margins, so that small constant changes do not flip the choice.
        let lat = |px, k| 28.0 * secs(&a, px, k, 1, Link::NvLink);
        assert!(lat(512, 1) < 2.0 * 0.85, "512 SP1 {}", lat(512, 1));
        assert!(lat(1024, 1) > 3.0 * 1.3, "1024 SP1 {}", lat(1024, 1));
        assert!(lat(1024, 2) < 3.0 * 0.96, "1024 SP2 {}", lat(1024, 2));
        assert!(lat(2048, 4) > 5.0 * 1.2, "2048 SP4 {}", lat(2048, 4));
        assert!(lat(2048, 8) < 5.0 * 0.96, "2048 SP8 {}", lat(2048, 8));
    }

    #[test]
    fn stays_near_the_suggested_table() {
        let a = flux();
        for (px, row) in SUGGESTED {
            for (k, want) in DEGREES.into_iter().zip(row) {
                let got = secs(&a, px, k, 1, Link::NvLink);
                let ratio = got / want;
                let band = if px == 256 { 0.7..1.5 } else { 0.85..1.15 };
                assert!(
                    band.contains(&ratio),
                    "{px} px SP{k}: suggested {want}, got {got:.4} (x{ratio:.2})"
                );
            }
        }
        let one = secs(&a, 1024, 1, 1, Link::NvLink);
        assert!(
            (0.154..0.24).contains(&one),
            "1024 px SP1 {one} s: between xDiT compiled and eager"
        );
    }

    #[test]
    fn gpu_seconds_grow_with_degree_and_time_never_explodes() {
        let a = flux();
        for (px, _) in SLO {
            for b in [1, 2, 4] {
                let t: Vec<f64> = DEGREES
                    .iter()
                    .map(|&k| secs(&a, px, k, b, Link::NvLink))
                    .collect();
                for i in 1..4 {
                    let (k0, k1) = (f64::from(DEGREES[i - 1]), f64::from(DEGREES[i]));
                    assert!(
                        k1 * t[i] > k0 * t[i - 1],
                        "{px} px b{b}: k*T not increasing at SP{}: {t:?}",
                        DEGREES[i]
                    );
                    assert!(
                        t[i] <= t[0],
                        "{px} px b{b}: SP{} slower than one GPU: {t:?}",
                        DEGREES[i]
                    );
                }
                if px >= 512 {
                    assert!(
                        t.windows(2).all(|w| w[1] < w[0]),
                        "{px} px b{b}: more GPUs must help: {t:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn communication_share_at_sp8_batch4_matches_fig2() {
        let a = flux();
        let share = |px| {
            a.breakdown(Resolution::square(px), 8, 4, Link::NvLink)
                .comm_share()
        };
        assert!(share(256) > 0.30, "256 px: {}", share(256));
        assert!(share(512) > 0.30, "512 px: {}", share(512));
        assert!(share(2048) < 0.10, "2048 px: {}", share(2048));
        // And it rises with degree for small images.
        let s = |k| {
            a.breakdown(Resolution::square(256), k, 4, Link::NvLink)
                .comm_share()
        };
        assert!(s(2) < s(4) && s(4) < s(8), "{} {} {}", s(2), s(4), s(8));
        assert_eq!(
            a.breakdown(Resolution::square(256), 1, 4, Link::NvLink)
                .comm,
            0.0
        );
    }

    #[test]
    fn batching_is_sublinear_for_small_images_and_linear_for_large() {
        let a = flux();
        let ratio = |px, k| secs(&a, px, k, 4, Link::NvLink) / secs(&a, px, k, 1, Link::NvLink);
        assert!(ratio(256, 1) < 3.5, "256 SP1 b4/b1 {}", ratio(256, 1));
        assert!(ratio(256, 8) < 2.0, "256 SP8 b4/b1 {}", ratio(256, 8));
        assert!(ratio(2048, 1) > 3.9, "2048 SP1 b4/b1 {}", ratio(2048, 1));
        assert!(ratio(2048, 1) <= 4.0, "2048 SP1 b4/b1 {}", ratio(2048, 1));
    }

    #[test]
    fn a40_pcie_is_slower_and_cfg_doubles_the_batch() {
        let a = Analytic::preset("sd3-medium", "a40").unwrap();
        for px in [256, 512, 1024, 2048] {
            let nv = secs(&a, px, 2, 1, Link::NvLink);
            let pcie = secs(&a, px, 2, 1, Link::Pcie);
            assert!(pcie > nv, "{px} px SP2: pcie {pcie} <= nvlink {nv}");
            assert_eq!(
                secs(&a, px, 1, 1, Link::Pcie),
                secs(&a, px, 1, 1, Link::NvLink),
                "one GPU crosses no link"
            );
        }
        let mut no_cfg = a.clone();
        no_cfg.model.cfg_factor = 1;
        assert_eq!(
            secs(&a, 1024, 2, 1, Link::Pcie),
            secs(&no_cfg, 1024, 2, 2, Link::Pcie)
        );
        // The PCIe all-to-all is the bottleneck the paper describes for SD3 at SP 4.
        let share = a
            .breakdown(Resolution::square(1024), 4, 1, Link::Pcie)
            .comm_share();
        assert!(share > 0.25, "1024 px SP4 over PCIe: comm share {share}");
    }

    #[test]
    fn custom_hardware_answers_what_if_questions() {
        let base = flux();
        let mut slow = base.clone();
        slow.gpu.nvlink.bytes_per_s /= 2.0;
        let r = Resolution::square(1024);
        let (b, s) = (
            base.breakdown(r, 4, 1, Link::NvLink),
            slow.breakdown(r, 4, 1, Link::NvLink),
        );
        assert!(s.comm > b.comm && s.compute == b.compute && s.overhead == b.overhead);
        // The H200 differs only in HBM, which binds nowhere in the shipped grid.
        let h200 = Analytic::preset("flux1-dev", "h200").unwrap();
        assert_eq!(
            secs(&h200, 256, 8, 1, Link::NvLink),
            secs(&base, 256, 8, 1, Link::NvLink)
        );
        let mut tiny_hbm = base.clone();
        tiny_hbm.gpu.hbm_bytes_per_s = 1e9;
        assert!(
            secs(&tiny_hbm, 256, 8, 1, Link::NvLink) > 20.0,
            "the weight-streaming floor applies"
        );
    }

    #[test]
    fn wan_clip_step_by_hand() {
        let a = Analytic::preset("wan2.1-14b", "h100").unwrap();
        let clip = Resolution::video(1280, 720, 81);
        // N = 21 x 45 x 80 = 75,600 tokens, two samples (guidance), h = 5120, 40 blocks.
        // Per token: GEMMs 2 x 40 x (6 h^2 + 2 h 13824) = 23,907,532,800, cross-attention over
        // 512 text tokens 4 x 512 x h x 40 = 419,430,400, self-attention 4 x N x h x 40 =
        // 61,931,520,000. Per sample: text K/V 2 x 2 h^2 x 512 x 40 = 2,147,483,648,000.
        let per_token: f64 = 23_907_532_800.0 + 419_430_400.0 + 61_931_520_000.0;
        let flops = 2.0 * 75_600.0 * per_token + 2.0 * 2_147_483_648_000.0;
        assert_eq!(flops, 13_046_577_627_136_000.0);
        // Achieved: 989 T x 0.475 x 151,200 / (151,200 + 192) = 469.14 TFLOP/s.
        let achieved: f64 = 989e12 * 0.475 * 151_200.0 / 151_392.0;
        let compute = flops / achieved;
        assert!((compute - 27.8072).abs() < 1e-4, "{compute}");
        let b = a.breakdown(clip, 1, 1, Link::NvLink);
        assert_eq!(b.overhead, 1200.0 * 2e-6);
        assert!((b.compute - compute).abs() < 1e-9 * compute, "{b:?}");
        assert_eq!(b.comm, 0.0);
        // SP 8: an eighth of the token FLOPs, the text K/V on every GPU; four all-to-alls per
        // block of 75,600 x 5120 x 2 B x 2 samples / 8 x 7/8 = 169,344,000 B at 350 GB/s, plus
        // 20 us + 7 x 5 us: 160 x (0.483840 ms + 0.055 ms) = 86.2144 ms.
        let flops8 = 2.0 * 75_600.0 * per_token / 8.0 + 2.0 * 2_147_483_648_000.0;
        let compute8 = flops8 / (989e12 * 0.475 * 18_900.0 / 19_092.0);
        let b8 = a.breakdown(clip, 8, 1, Link::NvLink);
        assert!((b8.compute - compute8).abs() < 1e-9 * compute8, "{b8:?}");
        assert!((b8.comm - 0.0862144).abs() < 1e-12, "{b8:?}");
        let t = a.step_time(clip, 8, 1, Link::NvLink).unwrap().as_secs();
        assert!((t - 3.603_457_8).abs() < 1e-6, "{t}");
        // Attention is quadratic in the tokens: 72% of the clip's token FLOPs, 12% of a
        // 1024 px image's (4,096 tokens) on the same model.
        assert!((61_931_520_000.0 / per_token - 0.718).abs() < 1e-3);
        let image = Resolution::square(1024);
        let attn = |r: Resolution| 4.0 * r.tokens() as f64 * 5120.0 * 40.0;
        let share = attn(image) / (attn(image) + 24_326_963_200.0);
        assert!((share - 0.121).abs() < 1e-3, "{share}");
        // Doubling the frames (161 = 41 latent frames, 1.95x the tokens) nearly quadruples
        // the attention and less than quadruples the step.
        let long = a.breakdown(Resolution::video(1280, 720, 161), 1, 1, Link::NvLink);
        let ratio = long.compute / b.compute;
        assert!((3.0..3.8).contains(&ratio), "{ratio}");
    }

    #[test]
    fn image_models_refuse_clips_and_the_video_model_times_images() {
        let clip = Resolution::video(832, 480, 81);
        let e = flux()
            .step_time(clip, 1, 1, Link::NvLink)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("flux1-dev is an image model")
                && e.contains("832x480x81f")
                && e.contains("wan2.1-14b"),
            "{e}"
        );
        let wan = Analytic::preset("wan2.1-14b", "h100").unwrap();
        // An image is a one-frame clip: 4,096 tokens at 1024 px, cheaper than the clip.
        let image = wan
            .step_time(Resolution::square(1024), 8, 1, Link::NvLink)
            .unwrap();
        let video = wan.step_time(clip, 8, 1, Link::NvLink).unwrap();
        assert!(image < video);
        assert!(!flux().model.video && wan.model.video);
    }

    #[test]
    fn invalid_arguments_and_names_are_errors() {
        let a = flux();
        let r = Resolution::square(512);
        for (k, b) in [(3, 1), (0, 1), (6, 1), (2, 0)] {
            let e = a.step_time(r, k, b, Link::NvLink).unwrap_err().to_string();
            assert!(e.contains("analytic flux1-dev on h100"), "{e}");
        }
        assert!(
            a.step_time(Resolution::new(500, 512), 1, 1, Link::NvLink)
                .is_err()
        );
        let e = Analytic::preset("flux2", "h100").unwrap_err().to_string();
        assert!(e.contains("flux2") && e.contains("sd3-medium"), "{e}");
        let e = Analytic::preset("flux1-dev", "b200")
            .unwrap_err()
            .to_string();
        assert!(e.contains("b200") && e.contains("a40"), "{e}");
        assert_eq!(a.describe(), "analytic flux1-dev on h100");
    }

    #[test]
    fn generated_csv_is_deterministic_and_labelled_as_estimates() {
        let a = flux();
        let csv = generate_profile_csv(
            &a,
            &[Resolution::new(1024, 768)],
            &[(1, Link::NvLink), (2, Link::NvLink)],
            &[1, 2],
        )
        .unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(
            lines[0].starts_with("# ") && lines[0].contains("ESTIMATES"),
            "{}",
            lines[0]
        );
        assert_eq!(lines[1], crate::cost::profile::PROFILE_HEADER);
        assert_eq!(lines.len(), 2 + 4);
        let t = a
            .step_time(Resolution::new(1024, 768), 2, 2, Link::NvLink)
            .unwrap()
            .as_millis();
        assert_eq!(
            lines[5],
            format!("flux1-dev,h100,1024,768,2,2,{t:.4},,analytic-estimate,nvlink")
        );
        assert_eq!(
            generate_profile_csv(&a, &[Resolution::square(512)], &[(3, Link::NvLink)], &[1]).ok(),
            None
        );
        assert!(shipped_profile_csv("nope").is_none());
    }
}
