//! Choosing and building the real backend's node from the command line's `--device`,
//! `--model` and `--gpus`.
//!
//! - `cpu`: `N` rank threads (slots) exchanging through host memory; the model as
//!   [`DitConfig::on_cpu`] runs it.
//! - `cuda` with one local GPU: `N` lanes on it (emulated when `N > 1`: the slots share the
//!   device, so an `N`-GPU schedule runs end to end, with timings of one GPU).
//! - `cuda` with `N <= D` local GPUs: one slot per GPU, groups exchanging over NCCL.

use crate::error::{Error, Result};
use crate::real::config::DitConfig;
use crate::real::executor::{NodeBackend, RealExecutor};

/// Where `--real` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
}

/// The largest node the real backend builds (slots are threads; a GPU set is a 64-bit mask).
pub const MAX_SLOTS: usize = 64;

/// Builds the node: `slots` slots of `device` running `cfg` (seeded weights).
pub fn open(device: Device, cfg: DitConfig, slots: usize) -> Result<RealExecutor> {
    if slots == 0 || slots > MAX_SLOTS {
        return Err(Error::config_hint(
            format!("--gpus {slots}: the real backend builds nodes of 1 to {MAX_SLOTS} slots"),
            "pass --gpus N with N in that range",
        ));
    }
    match device {
        Device::Cpu => RealExecutor::cpu(cfg.on_cpu(), slots, None),
        Device::Cuda => {
            let probe = crate::real::device::probe()?;
            if probe.devices == 1 || slots == 1 {
                let (factories, description) = crate::real::lanes::lane_slots(&cfg, slots, 1)?;
                let backend = NodeBackend {
                    description,
                    emulated: slots > 1,
                };
                RealExecutor::new(cfg, backend, factories)
            } else if slots <= probe.devices {
                let (factories, description) = crate::real::nccl::nccl_slots(&cfg, slots, 1)?;
                let backend = NodeBackend {
                    description,
                    emulated: false,
                };
                RealExecutor::new(cfg, backend, factories)
            } else {
                Err(Error::config_hint(
                    format!(
                        "--gpus {slots} on a machine with {} GPUs: lanes are emulated only on a single GPU",
                        probe.devices
                    ),
                    format!("pass --gpus {} or fewer", probe.devices),
                ))
            }
        }
    }
}
