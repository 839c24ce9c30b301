//! `tetriserve gpu-check`: the local GPU probed, the kernels, every attention backend (cuDNN
//! flash, fused softmax, unfused: [`attention`](super::attention)), lane transport and Ulysses
//! groups checked against the CPU reference, each attention backend and the latent hand-off
//! timed, and NCCL self-tested where there are two or more devices; a Markdown report written
//! as each check finishes.
//!
//! A check that fails ends the report with an error; nothing here is a benchmark (those are
//! `tetriserve profile` and `scripts/gpu-check.sh`).

use std::io::Write;

use crate::error::{Error, Result};

/// Writes `writeln!` to `out`, turning a write failure into the command's error.
macro_rules! say {
    ($out:expr) => {
        writeln!($out).map_err(|e| Error::io("<stdout>", e))?
    };
    ($out:expr, $($t:tt)*) => {
        writeln!($out, $($t)*).map_err(|e| Error::io("<stdout>", e))?
    };
}

/// Runs every check on device 0 (NCCL on all devices), reporting to `out` as it goes.
pub fn gpu_check(out: &mut dyn Write) -> Result<()> {
    let probe = super::device::probe()?;
    say!(
        out,
        "devices: {} ({}, compute capability {}.{})",
        probe.devices,
        probe.name,
        probe.capability.0,
        probe.capability.1
    );
    let dev = super::gpu::GpuDevice::open(0)?;
    let checks = super::profile::numerics(&dev)?;
    say!(out, "| case | relative error vs CPU reference |");
    say!(out, "|---|---|");
    let mut worst = 0.0f64;
    for c in &checks {
        say!(out, "| {} | {:.2e} |", c.case, c.relative_error);
        worst = worst.max(c.relative_error);
    }
    if worst > 0.05 || !worst.is_finite() {
        return Err(Error::Executor(format!(
            "GPU output differs from the CPU reference: worst relative error {worst:.3e} > 5e-2"
        )));
    }
    say!(out, "numerics: ok (worst {worst:.2e}, bf16 tolerance 5e-2)");

    say!(
        out,
        "\nAttention backends against the CPU reference (2 heads of 128, bf16 inputs; this device starts with: {}):",
        dev.attention.backend.describe()
    );
    say!(
        out,
        "| tokens | backend asked | backend that ran | relative error |"
    );
    say!(out, "|---|---|---|---|");
    let mut worst_attn = 0.0f64;
    for c in super::profile::attention_numerics(&dev)? {
        say!(
            out,
            "| {} | {} | {} | {:.2e} |",
            c.tokens,
            c.requested.name(),
            c.ran.name(),
            c.relative_error
        );
        worst_attn = worst_attn.max(c.relative_error);
    }
    if worst_attn > 0.05 || !worst_attn.is_finite() {
        return Err(Error::Executor(format!(
            "an attention backend differs from the CPU reference: worst relative error {worst_attn:.3e} > 5e-2"
        )));
    }
    say!(
        out,
        "attention: ok (worst {worst_attn:.2e}, bf16 tolerance 5e-2)"
    );
    say!(
        out,
        "\nOne attention call of FLUX.1-dev (24 heads of 128, one image; median of 5, CUDA events):"
    );
    say!(
        out,
        "| px | tokens | backend asked | ran | ms | TFLOP/s (4 N^2 H) |"
    );
    say!(out, "|---|---|---|---|---|---|");
    for t in super::profile::attention_timing(&dev, &[1024, 2048])? {
        say!(
            out,
            "| {} | {} | {} | {} | {:.3} | {:.0} |",
            t.px,
            t.tokens,
            t.requested.name(),
            t.ran.name(),
            t.ms,
            t.tflops
        );
    }

    say!(
        out,
        "\nLane transport on one GPU (k lanes = k threads, each a stream; the all-to-alls as device copies ordered by events): two exchanges back to back, every element checked against the host all-to-all:"
    );
    say!(
        out,
        "| lanes | layouts | exchanges | elements checked | mismatches |"
    );
    say!(out, "|---|---|---|---|---|");
    let mut bad = 0usize;
    for k in [2, 4, 8] {
        let c = super::profile::lane_exchange_check(&dev, k)?;
        say!(
            out,
            "| {} | {} | {} | {} | {} |",
            c.ranks,
            c.cases.join("; "),
            c.exchanges,
            c.elements,
            c.mismatches
        );
        bad += c.mismatches;
    }
    if bad > 0 {
        return Err(Error::Executor(format!(
            "the lane transport delivered {bad} wrong element(s)"
        )));
    }
    say!(out, "lane exchanges: ok");

    say!(
        out,
        "\nUlysses SP on GPU lanes (a k-lane group runs the step; velocities reassembled):"
    );
    let sp = super::profile::ulysses_numerics(&dev)?;
    say!(
        out,
        "| case | ranks | relative error vs plain step (GPU) | vs CPU reference on the same ranks |"
    );
    say!(out, "|---|---|---|---|");
    let mut worst_sp = 0.0f64;
    for c in &sp {
        say!(
            out,
            "| {} | {} | {:.2e} | {:.2e} |",
            c.case,
            c.ranks,
            c.vs_plain,
            c.vs_cpu
        );
        worst_sp = worst_sp.max(c.vs_plain).max(c.vs_cpu);
    }
    if worst_sp > 0.05 || !worst_sp.is_finite() {
        return Err(Error::Executor(format!(
            "a Ulysses step on lanes differs from the plain one: worst relative error {worst_sp:.3e} > 5e-2"
        )));
    }
    say!(
        out,
        "ulysses: ok (worst {worst_sp:.2e}, bf16 tolerance 5e-2)"
    );
    drop(dev);

    // Degree changes move a request's latent; the simulator charges a fraction of a step.
    let gpu = super::device::Gpu::open(0)?;
    let shipped = crate::cost::profile::ProfileTable::builtin("h100-flux1-dev")
        .ok_or_else(|| Error::config("the built-in H100 profile is missing"))?;
    let remap = crate::cost::Overheads::default().remap_fraction;
    let resolutions: Vec<crate::workload::Resolution> = [256, 512, 1024, 2048]
        .into_iter()
        .map(crate::workload::Resolution::square)
        .collect();
    say!(
        out,
        "\nLatent hand-off (a degree change moves the latent; median of 5):\n| resolution | latent MB | via host, ms | device copy, ms | simulator charges, ms ({:.2}% of an SP1 step, shipped H100 profile) |\n|---|---|---|---|---|",
        100.0 * remap
    );
    for h in super::profile::hand_off(&gpu, &resolutions)? {
        use crate::cost::CostModel;
        let step = shipped
            .step_time(h.res, 1, 1, crate::cluster::Link::NvLink)
            .map(|t| t.0 as f64 / 1e6)
            .unwrap_or(f64::NAN);
        say!(
            out,
            "| {} | {:.2} | {:.3} | {:.3} | {:.3} |",
            h.res,
            h.bytes as f64 / 1e6,
            h.host_ms,
            h.device_ms,
            remap * step
        );
    }
    drop(gpu);

    if probe.devices >= 2 {
        let t = super::nccl::self_test(probe.devices)?;
        say!(
            out,
            "\nNCCL on {} of {} devices: communicators created in {:.1} ms; Ulysses q/k/v all-to-all of FLUX.1-dev at 1024 px ({:.1} MB sent per rank) verified, {:.3} ms; 2048 px latent device 0 -> 1 ({:.1} MB) {:.3} ms",
            t.ranks,
            t.devices,
            t.create_ms,
            t.exchange_mb,
            t.exchange_ms,
            t.latent_mb,
            t.latent_ms
        );
    } else {
        say!(
            out,
            "\nNCCL: not run (one device; the multi-GPU Ulysses exchange needs two or more)"
        );
    }
    Ok(())
}
