//! `tetriserve profile`: measures the local GPU and writes a profile CSV the simulator reads.
//! (The numerics and lane checks of `gpu-check` are [`check`](super::check)'s.)
//!
//! The model is [`model::step`] on a [`GpuOps`], the same code every backend runs.
//!
//! Per-step latency is the median of `repeats` steps after `warmup` ones, timed with CUDA
//! events; the spread is reported as the standard deviation. Degree 1 is the plain step. A
//! degree `k > 1` is *emulated*: rank 0 of `k` computes its share of the step with no exchange
//! ([`ShareOnly`]: 1/k of the tokens through the linear layers, 1/k of the heads through
//! attention over all tokens) and the all-to-all time of the analytic model's link (NVLink at
//! the calibrated bandwidth and latency, see `profiles/README.md`) is added; such rows say
//! `source = emulated-spK`.

use crate::cluster::Link;
use crate::cost::analytic::Analytic;
use crate::cost::profile::{CsvRow, Precision, ProfileCsv};
use crate::error::{Error, Result};
use crate::real::config::DitConfig;
use crate::real::device::Gpu;
use crate::real::gpu::attention::Backend;
use crate::real::gpu::{GpuDevice, GpuOps};
use crate::real::model::{self, Weights, Workspace};
use crate::real::ops::Ops;
use crate::real::transport::{ShareOnly, Solo, Transport};
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

/// One measured profile row.
#[derive(Clone, Debug)]
pub struct Measured {
    pub res: Resolution,
    pub degree: u32,
    pub batch: u32,
    pub median_ms: f64,
    pub std_ms: f64,
    pub source: String,
    /// The attention backends that ran this row's shapes.
    pub attention: Vec<Backend>,
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

impl ProfilePlan {
    /// The full default plan: 256-2048 px, batches 1, 2, 4, SP 1-8.
    pub fn full() -> ProfilePlan {
        ProfilePlan {
            resolutions: [256, 512, 1024, 2048].map(Resolution::square).to_vec(),
            batches: vec![1, 2, 4],
            degrees: vec![1, 2, 4, 8],
            warmup: 2,
            repeats: 5,
        }
    }

    /// The quick preset for a first profile (under two minutes for FLUX.1-dev on an H100-class
    /// GPU, by the step times measured so far): batch 1 only, SP 1 and the emulated degrees,
    /// one warm-up and three timed steps.
    pub fn quick() -> ProfilePlan {
        ProfilePlan {
            batches: vec![1],
            warmup: 1,
            repeats: 3,
            ..ProfilePlan::full()
        }
    }

    /// Every configuration in measuring order: (resolution, batch, degree).
    pub fn configs(&self) -> Vec<(Resolution, u32, u32)> {
        let mut out = Vec::new();
        for &res in &self.resolutions {
            for &batch in &self.batches {
                for &degree in &self.degrees {
                    out.push((res, batch, degree));
                }
            }
        }
        out
    }
}

/// A configuration's expected cost relative to the others, for the ETA: tokens through the
/// linear layers plus attention's quadratic part (comparable at FLUX.1-dev's 1024 px), per
/// rank's share.
pub fn config_weight(res: Resolution, batch: u32, degree: u32) -> f64 {
    let n = res.tokens() as f64 + 512.0;
    f64::from(batch) * n * (1.0 + n / 4608.0) / f64::from(degree.max(1))
}

/// Where a profile run stands after `done` of `configs`, `elapsed` seconds in.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    /// Seconds left, estimated from the time so far and the weights of the configurations
    /// done and left ([`config_weight`]); `None` before the first is done.
    pub eta_s: Option<f64>,
}

impl Progress {
    pub fn after(configs: &[(Resolution, u32, u32)], done: usize, elapsed_s: f64) -> Progress {
        let w = |c: &[(Resolution, u32, u32)]| -> f64 {
            c.iter().map(|&(r, b, k)| config_weight(r, b, k)).sum()
        };
        let done = done.min(configs.len());
        let (did, left) = (w(&configs[..done]), w(&configs[done..]));
        Progress {
            done,
            total: configs.len(),
            eta_s: (done > 0 && did > 0.0).then(|| elapsed_s * left / did),
        }
    }

    /// `i/N` and the ETA, e.g. `[3/16, ETA 1m05s]`.
    pub fn label(&self) -> String {
        match self.eta_s {
            Some(s) => {
                let s = s.round() as u64;
                format!(
                    "[{}/{}, ETA {}m{:02}s]",
                    self.done,
                    self.total,
                    s / 60,
                    s % 60
                )
            }
            None => format!("[{}/{}]", self.done, self.total),
        }
    }
}

/// Times `repeats` steps after `warmup` ones with CUDA events on `ops`'s stream; milliseconds
/// per step.
pub fn time_steps<T: Transport<GpuOps> + ?Sized>(
    ops: &GpuOps,
    w: &Weights,
    ws: &Workspace,
    t: &mut T,
    warmup: usize,
    repeats: usize,
) -> Result<Vec<f64>> {
    let err = |e: cudarc::driver::DriverError| Error::Executor(format!("timing steps: {e}"));
    for _ in 0..warmup {
        model::step(ops, w, ws, t, 0.0)?;
    }
    ops.synchronize()?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = ops.record_timing_event()?;
        model::step(ops, w, ws, t, 0.0)?;
        let end = ops.record_timing_event()?;
        end.synchronize().map_err(err)?;
        times.push(f64::from(start.elapsed_ms(&end).map_err(err)?));
    }
    Ok(times)
}

/// Measures `plan` for `cfg` on `gpu`; calls `progress` after each row with where the run
/// stands (an error from it ends the run: the caller's output failed). Degree 1 times the
/// plain step; degree `k > 1` times rank 0's share of a `k`-way step and adds the modelled
/// all-to-all (see the module docs). Each row's workspace is freed before the next.
pub fn measure(
    gpu: Gpu,
    cfg: DitConfig,
    plan: &ProfilePlan,
    mut progress: impl FnMut(&Measured, &Progress) -> Result<()>,
) -> Result<Vec<Measured>> {
    let key = gpu_key(&gpu.name);
    let link_model = Analytic::preset(cfg.name, if key == "h200" { "h200" } else { "h100" }).ok();
    let dev = GpuDevice::from_gpu(gpu)?;
    let mut ops = GpuOps::new(&dev)?;
    let w = Weights::build(&mut ops, cfg.clone(), 1)?;
    let configs = plan.configs();
    let started = std::time::Instant::now();
    let mut rows = Vec::new();
    for (i, &(res, batch, degree)) in configs.iter().enumerate() {
        let k = degree.max(1) as usize;
        let mark = ops.mark();
        // Classifier-free guidance runs as a doubled batch.
        let ws = Workspace::new(&mut ops, &cfg, res, batch as usize * cfg.cfg_factor, k)?;
        let mut attention: Vec<Backend> = ws
            .attention_shapes(&cfg)
            .iter()
            .map(|s| ops.attention_backend_for(s))
            .collect();
        attention.sort();
        attention.dedup();
        for item in 0..ws.batch {
            model::load_inputs(&ops, &cfg, &ws, item, 100 + item as u64)?;
        }
        let repeats = plan.repeats.max(1);
        let t = if k == 1 {
            time_steps(&ops, &w, &ws, &mut Solo, plan.warmup, repeats)
        } else {
            let mut share = ShareOnly { rank: 0, ranks: k };
            time_steps(&ops, &w, &ws, &mut share, plan.warmup, repeats)
        };
        drop(ws);
        ops.release(mark)?;
        let mut t = t?;
        t.sort_by(f64::total_cmp);
        let median = t[t.len() / 2];
        let mean = t.iter().sum::<f64>() / t.len() as f64;
        let std = (t.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / t.len() as f64).sqrt();
        let (comm_ms, source) = if k == 1 {
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
            attention,
        };
        progress(
            &row,
            &Progress::after(&configs, i + 1, started.elapsed().as_secs_f64()),
        )?;
        rows.push(row);
    }
    Ok(rows)
}

/// Writes a measured profile row by row, flushing each, so that an interrupted run keeps what
/// it measured in a file the profile reader accepts (a header with no rows is refused by the
/// reader, with its message, until the first row is in). The format is the profile module's
/// ([`ProfileCsv`]): `#` comments, the header, one row per configuration.
pub struct ProfileWriter<W: std::io::Write> {
    csv: ProfileCsv<W>,
    /// The device's attention backend: rows whose shapes ran another get a comment.
    attention: Backend,
    what: String,
}

impl<W: std::io::Write> ProfileWriter<W> {
    /// Writes the header: where the numbers come from, the attention backend, the columns.
    /// `what` names the output in errors.
    pub fn new(
        out: W,
        what: &str,
        model: &str,
        gpu: &str,
        device_name: &str,
        attention: Backend,
    ) -> Result<Self> {
        let e = |err| Error::io(what, err);
        let source = format!(
            "Measured by `tetriserve profile` on {device_name}: median of repeated steps (CUDA events); emulated-spK rows add a modelled all-to-all to one rank's measured share."
        );
        let backend = format!("attention: {} ({})", attention.name(), attention.describe());
        let mut csv =
            ProfileCsv::new(out, model, gpu, Precision::Fixed4, &[&source, &backend]).map_err(e)?;
        csv.flush().map_err(e)?;
        Ok(ProfileWriter {
            csv,
            attention,
            what: what.to_string(),
        })
    }

    /// Appends one row (and a comment when some of its attention ran on another backend),
    /// flushed.
    pub fn row(&mut self, r: &Measured) -> Result<()> {
        let e = |err| Error::io(&self.what, err);
        if r.attention.iter().any(|&b| b != self.attention) {
            let names: Vec<&str> = r.attention.iter().map(|b| b.name()).collect();
            self.csv
                .comment(&format!(
                    "{} SP{} batch {}: attention ran on {}",
                    r.res,
                    r.degree,
                    r.batch,
                    names.join(" + ")
                ))
                .map_err(e)?;
        }
        self.csv
            .row(&CsvRow {
                res: r.res,
                degree: r.degree,
                batch: r.batch,
                step_ms: r.median_ms,
                std_ms: Some(r.std_ms),
                source: &r.source,
                link: Link::NvLink,
            })
            .map_err(e)?;
        self.csv.flush().map_err(e)
    }

    pub fn into_inner(self) -> W {
        self.csv.into_inner()
    }
}

/// The rows as a profile CSV the simulator reads (what [`ProfileWriter`] writes).
pub fn to_csv(
    model: &str,
    gpu: &str,
    device_name: &str,
    attention: Backend,
    rows: &[Measured],
) -> String {
    let mut w = ProfileWriter::new(Vec::new(), "<memory>", model, gpu, device_name, attention)
        .expect("writing to memory");
    for r in rows {
        w.row(r).expect("writing to memory");
    }
    String::from_utf8(w.into_inner()).expect("UTF-8")
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
    fn measured_csv_is_a_valid_profile() {
        let rows = vec![
            Measured {
                res: Resolution::square(256),
                degree: 1,
                batch: 1,
                median_ms: 30.0,
                std_ms: 0.1,
                source: "measured".into(),
                attention: vec![Backend::CudnnFlash],
            },
            Measured {
                res: Resolution::square(256),
                degree: 2,
                batch: 1,
                median_ms: 20.0,
                std_ms: 0.1,
                source: "emulated-sp2".into(),
                attention: vec![Backend::FusedSoftmax],
            },
        ];
        let csv = to_csv(
            "flux1-dev",
            "h100",
            "NVIDIA H100",
            Backend::CudnnFlash,
            &rows,
        );
        let table = ProfileTable::parse(&csv, "<measured>").unwrap();
        assert_eq!(table.rows().len(), 2);
        assert_eq!(table.gpu(), "h100");
        assert!(csv.contains("# attention: cudnn (cuDNN fused flash attention)"));
        assert!(csv.contains("# 256x256 SP2 batch 1: attention ran on fused"));
        assert!(
            !csv.contains("SP1 batch 1: attention"),
            "only rows that differ"
        );
    }

    /// A writer that takes `room` bytes and then fails, like a disk that fills up.
    struct Failing {
        buf: Vec<u8>,
        room: usize,
    }

    impl std::io::Write for Failing {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.buf.len() + b.len() > self.room {
                return Err(std::io::Error::other("disk full"));
            }
            self.buf.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn row(px: u32, degree: u32, ms: f64) -> Measured {
        Measured {
            res: Resolution::square(px),
            degree,
            batch: 1,
            median_ms: ms,
            std_ms: 0.01,
            source: if degree == 1 {
                "measured".into()
            } else {
                format!("emulated-sp{degree}")
            },
            attention: vec![Backend::FusedSoftmax],
        }
    }

    #[test]
    fn an_interrupted_profile_keeps_its_rows_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        let file = std::fs::File::create(&path).unwrap();
        let mut w = ProfileWriter::new(
            file,
            "p.csv",
            "flux1-dev",
            "h200",
            "NVIDIA H200",
            Backend::FusedSoftmax,
        )
        .unwrap();
        // Before any row: the reader refuses the file with its own message.
        let text = std::fs::read_to_string(&path).unwrap();
        let e = ProfileTable::parse(&text, "p.csv").unwrap_err().to_string();
        assert!(e.contains("no rows"), "{e}");
        // Each row is on disk as soon as it is written (the run may die right after).
        w.row(&row(256, 1, 30.5)).unwrap();
        let t1 = ProfileTable::parse(&std::fs::read_to_string(&path).unwrap(), "p.csv").unwrap();
        assert_eq!(t1.rows().len(), 1);
        w.row(&row(256, 2, 18.25)).unwrap();
        drop(w); // killed here: nothing is written at the end
        let t2 = ProfileTable::parse(&std::fs::read_to_string(&path).unwrap(), "p.csv").unwrap();
        assert_eq!(t2.rows().len(), 2);
        assert_eq!(t2.gpu(), "h200");
        // A failing output is an error naming it, never a panic.
        let header = to_csv("m", "g", "d", Backend::Unfused, &[]).len();
        let mut failing = ProfileWriter::new(
            Failing {
                buf: Vec::new(),
                room: header,
            },
            "out.csv",
            "m",
            "g",
            "d",
            Backend::Unfused,
        )
        .unwrap();
        let e = failing.row(&row(512, 1, 1.0)).unwrap_err().to_string();
        assert!(e.contains("out.csv") && e.contains("disk full"), "{e}");
    }

    #[test]
    fn progress_counts_and_weights_the_eta_by_configuration_cost() {
        let plan = ProfilePlan::quick();
        let configs = plan.configs();
        assert_eq!(configs.len(), 16, "4 resolutions x batch 1 x SP 1-8");
        assert!(plan.batches == [1] && plan.degrees.contains(&1) && plan.degrees.len() > 1);
        assert_eq!(Progress::after(&configs, 0, 0.0).label(), "[0/16]");
        // After the first (cheapest) config took 1 s, the rest (2048 px among them) take far
        // more than 15 s: the ETA weighs what is left.
        let p = Progress::after(&configs, 1, 1.0);
        assert_eq!((p.done, p.total), (1, 16));
        let eta = p.eta_s.unwrap();
        let w = |r, b, k| config_weight(Resolution::square(r), b, k);
        let total: f64 = configs
            .iter()
            .map(|&(r, b, k)| config_weight(r, b, k))
            .sum();
        let want = (total - w(256, 1, 1)) / w(256, 1, 1);
        assert!((eta - want).abs() < 1e-9 && eta > 15.0, "{eta}");
        assert_eq!(Progress::after(&configs, 16, 60.0).eta_s, Some(0.0));
        assert_eq!(
            Progress::after(&configs, 16, 60.0).label(),
            "[16/16, ETA 0m00s]"
        );
        // Hand-computed weight: 1024 px = 4096 + 512 tokens, (1 + 1) per token, halved at SP2.
        assert!((w(1024, 1, 2) - 4608.0).abs() < 1e-9);
        assert_eq!(ProfilePlan::full().configs().len(), 48);
    }
}
