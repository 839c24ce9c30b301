//! Measurements on the local GPU: the numerics check against the CPU reference, and
//! `tetriserve profile`, which writes a profile CSV the simulator reads.
//!
//! Per-step latency is the median of `repeats` steps after `warmup` ones, timed with CUDA
//! events; the spread is reported as the standard deviation. A degree `k > 1` that the machine
//! cannot run (Ulysses needs `k` GPUs) is *emulated*: one rank's share of the step is measured
//! (1/k of the tokens through the linear layers, 1/k of the heads through attention) and the
//! all-to-all time of the analytic model's link (NVLink at the calibrated bandwidth and
//! latency, see `profiles/README.md`) is added; such rows say `source = emulated-spK`.

use std::fmt::Write as _;

use crate::cluster::Link;
use crate::cost::analytic::{Analytic, PROFILE_HEADER};
use crate::error::{Error, Result};
use crate::real::config::DitConfig;
use crate::real::device::Gpu;
use crate::real::dit::GpuDit;
use crate::real::reference::{CpuDit, CpuInputs};
use crate::workload::Resolution;

/// The short GPU name used in profiles (`h100`, `h200`, ...), from the device name.
pub fn gpu_key(device_name: &str) -> String {
    let lower = device_name.to_lowercase();
    for key in ["h200", "h100", "a100", "a40", "l40s", "l4", "b200", "gh200"] {
        if lower.contains(key) {
            return key.to_string();
        }
    }
    lower.split_whitespace().last().unwrap_or("gpu").to_string()
}

/// Relative L2 error `||got - want|| / ||want||`.
pub fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, w) in got.iter().zip(want) {
        num += f64::from(g - w).powi(2);
        den += f64::from(*w).powi(2);
    }
    if got.len() != want.len() || got.iter().any(|x| !x.is_finite()) {
        return f64::INFINITY;
    }
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

/// One numerics comparison.
#[derive(Clone, Debug)]
pub struct NumericsCheck {
    pub case: String,
    pub relative_error: f64,
}

/// Runs the tiny model on the GPU and on the CPU for a few resolutions, batch sizes and fresh
/// seeds, with the GPU's output buffers poisoned first, and returns the relative errors of the
/// velocities. bf16 storage of every intermediate puts a correct kernel set near 1e-2.
pub fn numerics(gpu: Gpu) -> Result<(Vec<NumericsCheck>, Gpu)> {
    let cfg = DitConfig::tiny();
    let seed = 0x5EED;
    let dit = GpuDit::new(gpu, cfg.clone(), seed)?;
    let cpu = CpuDit::new(cfg.clone(), seed);
    let mut checks = Vec::new();
    for (res, batch, request_seed) in [
        (Resolution::new(64, 32), 1, 11u64),
        (Resolution::new(48, 48), 2, 12),
        (Resolution::new(32, 64), 3, 13),
    ] {
        let ws = dit.workspace(res, batch, 1)?;
        for item in 0..batch {
            dit.load_inputs(&ws, item, request_seed + item as u64)?;
        }
        dit.poison_outputs(&ws)?;
        dit.step(&ws, 1.0)?;
        for item in 0..batch {
            let got = dit.velocity(&ws, item)?;
            let mut inputs = CpuInputs::seeded(&cfg, res, request_seed + item as u64);
            let want = cpu.step(&mut inputs, res, 1.0);
            checks.push(NumericsCheck {
                case: format!("tiny {res} batch {batch} item {item}"),
                relative_error: relative_error(&got, &want),
            });
        }
    }
    Ok((checks, dit.gpu))
}

/// One check of an emulated Ulysses step (see [`ulysses_numerics`]).
#[derive(Clone, Debug)]
pub struct UlyssesCheck {
    pub case: String,
    pub ranks: usize,
    /// Against the plain step on the same GPU.
    pub vs_plain: f64,
    /// Against the CPU reference run as the same ranks.
    pub vs_cpu: f64,
}

/// The SP layout on one GPU: a tiny model with 8 heads runs each case as a plain step and as
/// a k-way Ulysses step with emulated ranks (k = 2, 4, 8), from the same inputs; the
/// velocities must agree within bf16 tolerance, with each other and with
/// [`CpuDit::step_ulysses`]. Sequences of 20 and 24 tokens make some shards straddle text and
/// image and the last ones short or empty.
pub fn ulysses_numerics(gpu: Gpu) -> Result<(Vec<UlyssesCheck>, Gpu)> {
    let cfg = DitConfig {
        heads: 8,
        ..DitConfig::tiny()
    };
    let seed = 0x5EED;
    let dit = GpuDit::new(gpu, cfg.clone(), seed)?;
    let cpu = CpuDit::new(cfg.clone(), seed);
    let mut checks = Vec::new();
    for (res, request_seed) in [
        (Resolution::new(48, 64), 21u64),
        (Resolution::new(64, 64), 22),
    ] {
        let plain = dit.workspace(res, 1, 1)?;
        dit.load_inputs(&plain, 0, request_seed)?;
        dit.poison_outputs(&plain)?;
        dit.step(&plain, 1.0)?;
        let want = dit.velocity(&plain, 0)?;
        drop(plain);
        for ranks in [2, 4, 8] {
            let ws = dit.emulated_workspace(res, 1, ranks)?;
            dit.load_inputs(&ws, 0, request_seed)?;
            dit.poison_outputs(&ws)?;
            dit.step(&ws, 1.0)?;
            let got = dit.velocity(&ws, 0)?;
            let mut inputs = CpuInputs::seeded(&cfg, res, request_seed);
            let reference = cpu.step_ulysses(&mut inputs, res, 1.0, ranks)?;
            checks.push(UlyssesCheck {
                case: format!(
                    "tiny (8 heads) {res}, {} tokens",
                    cfg.text_tokens + cfg.image_tokens(res)
                ),
                ranks,
                vs_plain: relative_error(&got, &want),
                vs_cpu: relative_error(&got, &reference),
            });
        }
    }
    Ok((checks, dit.gpu))
}

/// One latent hand-off measurement (see [`hand_off`]).
#[derive(Clone, Debug)]
pub struct HandOff {
    pub res: Resolution,
    pub bytes: usize,
    /// Download then upload through the host: how the executor moves a latent between works.
    pub host_ms: f64,
    /// A device-to-device copy: what a hand-off within one GPU (or a peer copy) costs.
    pub device_ms: f64,
}

/// Times moving one FLUX latent (`tokens x 64` bf16) per resolution, median of 5 after one
/// warm-up: through the host and device to device.
pub fn hand_off(gpu: &Gpu, resolutions: &[Resolution]) -> Result<Vec<HandOff>> {
    let err = |e: cudarc::driver::DriverError| Error::Executor(format!("hand-off timing: {e}"));
    let mut out = Vec::new();
    for &res in resolutions {
        let n = res.tokens() as usize * DitConfig::flux1_dev().latent_channels;
        let mut host = vec![0u16; n];
        let a = gpu.stream.alloc_zeros::<u16>(n).map_err(err)?;
        let mut b = gpu.stream.alloc_zeros::<u16>(n).map_err(err)?;
        let median = |mut f: Box<dyn FnMut() -> Result<()> + '_>| -> Result<f64> {
            f()?;
            let mut t: Vec<f64> = (0..5)
                .map(|_| {
                    let start = std::time::Instant::now();
                    f().map(|_| start.elapsed().as_secs_f64() * 1e3)
                })
                .collect::<Result<_>>()?;
            t.sort_by(f64::total_cmp);
            Ok(t[2])
        };
        let host_ms = median(Box::new(|| {
            gpu.stream.memcpy_dtoh(&a, &mut host).map_err(err)?;
            gpu.synchronize()?;
            let up = gpu.stream.clone_htod(&host).map_err(err)?;
            gpu.synchronize()?;
            drop(up);
            Ok(())
        }))?;
        let device_ms = median(Box::new(|| {
            gpu.stream.memcpy_dtod(&a, &mut b).map_err(err)?;
            gpu.synchronize()
        }))?;
        out.push(HandOff {
            res,
            bytes: 2 * n,
            host_ms,
            device_ms,
        });
    }
    Ok(out)
}

/// One measured profile row.
#[derive(Clone, Debug)]
pub struct Measured {
    pub res: Resolution,
    pub degree: u32,
    pub batch: u32,
    pub median_ms: f64,
    pub std_ms: f64,
    pub source: String,
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct ProfilePlan {
    pub resolutions: Vec<Resolution>,
    pub batches: Vec<u32>,
    pub degrees: Vec<u32>,
    pub warmup: usize,
    pub repeats: usize,
}

/// Measures `plan` for `cfg` on `gpu`; calls `progress` after each row.
pub fn measure(
    gpu: Gpu,
    cfg: DitConfig,
    plan: &ProfilePlan,
    mut progress: impl FnMut(&Measured),
) -> Result<(Vec<Measured>, String)> {
    let key = gpu_key(&gpu.name);
    let link_model = Analytic::preset(cfg.name, if key == "h200" { "h200" } else { "h100" }).ok();
    let dit = GpuDit::new(gpu, cfg.clone(), 1)?;
    let mut rows = Vec::new();
    for &res in &plan.resolutions {
        for &batch in &plan.batches {
            for &degree in &plan.degrees {
                // Classifier-free guidance runs as a doubled batch.
                let ws = dit.workspace(res, batch as usize * cfg.cfg_factor, degree as usize)?;
                for item in 0..ws.batch {
                    dit.load_inputs(&ws, item, 100 + item as u64)?;
                }
                let mut t = dit.time_steps(&ws, plan.warmup, plan.repeats.max(1))?;
                drop(ws);
                t.sort_by(f64::total_cmp);
                let median = t[t.len() / 2];
                let mean = t.iter().sum::<f64>() / t.len() as f64;
                let std =
                    (t.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / t.len() as f64).sqrt();
                let (comm_ms, source) = if degree == 1 {
                    (0.0, "measured".to_string())
                } else {
                    let comm = link_model
                        .as_ref()
                        .map(|m| m.breakdown(res, degree, batch, Link::NvLink).comm * 1e3)
                        .ok_or_else(|| {
                            Error::Executor(format!("no link model for {} on {key}", cfg.name))
                        })?;
                    (comm, format!("emulated-sp{degree}"))
                };
                let row = Measured {
                    res,
                    degree,
                    batch,
                    median_ms: median + comm_ms,
                    std_ms: std,
                    source,
                };
                progress(&row);
                rows.push(row);
            }
        }
    }
    Ok((rows, key))
}

/// The rows as a profile CSV the simulator reads.
pub fn to_csv(model: &str, gpu: &str, device_name: &str, rows: &[Measured]) -> String {
    let mut s = format!(
        "# Measured by `tetriserve profile` on {device_name}: median of repeated steps (CUDA events); emulated-spK rows add a modelled all-to-all to one rank's measured share.\n{PROFILE_HEADER}\n"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{model},{gpu},{},{},{},{},{:.4},{:.4},{},nvlink",
            r.res.width, r.res.height, r.degree, r.batch, r.median_ms, r.std_ms, r.source
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::profile::ProfileTable;

    #[test]
    fn gpu_names_map_to_profile_keys() {
        assert_eq!(gpu_key("NVIDIA H100 80GB HBM3"), "h100");
        assert_eq!(gpu_key("NVIDIA H200"), "h200");
        assert_eq!(gpu_key("NVIDIA A40"), "a40");
    }

    #[test]
    fn relative_error_of_known_vectors() {
        assert_eq!(relative_error(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!((relative_error(&[1.1, 0.0], &[1.0, 0.0]) - 0.1).abs() < 1e-6);
        assert!(relative_error(&[f32::NAN, 0.0], &[1.0, 0.0]).is_infinite());
    }

    #[test]
    fn measured_csv_is_a_valid_profile() {
        let rows = vec![
            Measured {
                res: Resolution::square(256),
                degree: 1,
                batch: 1,
                median_ms: 30.0,
                std_ms: 0.1,
                source: "measured".into(),
            },
            Measured {
                res: Resolution::square(256),
                degree: 2,
                batch: 1,
                median_ms: 20.0,
                std_ms: 0.1,
                source: "emulated-sp2".into(),
            },
        ];
        let csv = to_csv("flux1-dev", "h100", "NVIDIA H100", &rows);
        let table = ProfileTable::parse(&csv, "<measured>").unwrap();
        assert_eq!(table.rows().len(), 2);
        assert_eq!(table.gpu(), "h100");
    }
}
