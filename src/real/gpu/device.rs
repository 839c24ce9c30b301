//! An opened GPU: its context, the kernels compiled for it, and the attention backend its
//! streams start with.
//!
//! Kept apart from the streams ([`GpuOps`](super::GpuOps)) because one device is shared by
//! every lane on it: opening it (context, NVRTC compilation, the attention choice and its
//! notice) happens once per device, a stream per rank.

use std::sync::Arc;

use cudarc::driver::CudaContext;

use crate::error::{Error, Result};
use crate::real::cudnn;
use crate::real::device::Gpu;
use crate::real::gpu::attention::{self, Backend, Choice};
use crate::real::kernels::Kernels;

/// An opened device: its context and loaded kernels. Cheap to clone.
#[derive(Clone)]
pub struct GpuDevice {
    pub ordinal: usize,
    pub name: String,
    pub ctx: Arc<CudaContext>,
    pub(super) kernels: Arc<Kernels>,
    /// The attention backend streams of this device start with (see [`attention`]).
    pub attention: Choice,
}

impl GpuDevice {
    /// Opens device `ordinal` and compiles the kernels for it. Call
    /// [`probe`](crate::real::device::probe) first: this assumes the CUDA libraries exist.
    pub fn open(ordinal: usize) -> Result<GpuDevice> {
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| Error::Executor(format!("device {ordinal}: opening the context: {e}")))?;
        // Streams are ordered explicitly (one stream per rank, events between lanes); cudarc's
        // per-buffer event tracking would only add overhead.
        // SAFETY: no buffer is used on two streams without an explicit event between them.
        unsafe { ctx.disable_event_tracking() };
        let kernels = Kernels::load(&ctx)?;
        let name = ctx.name().unwrap_or_else(|_| "unknown".into());
        Ok(GpuDevice {
            ordinal,
            name,
            ctx,
            kernels: Arc::new(kernels),
            attention: attention_choice()?,
        })
    }

    /// The device of an opened [`Gpu`] (its context and kernels; its stream and cuBLAS handle
    /// are dropped).
    pub fn from_gpu(gpu: Gpu) -> Result<GpuDevice> {
        Ok(GpuDevice {
            ordinal: gpu.ordinal,
            name: gpu.name,
            ctx: gpu.ctx,
            kernels: Arc::new(gpu.kernels),
            attention: attention_choice()?,
        })
    }

    /// Makes this device's context current on the calling thread.
    pub fn bind(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(|e| {
            Error::Executor(format!("device {}: binding the context: {e}", self.ordinal))
        })
    }

    /// Waits for every stream of the device.
    pub fn synchronize(&self) -> Result<()> {
        self.ctx
            .synchronize()
            .map_err(|e| Error::Executor(format!("device {}: {e}", self.ordinal)))
    }
}

/// The attention backend for a device: `TETRISERVE_ATTENTION`'s request, else the best one
/// available; a fall back from cuDNN prints its notice once.
fn attention_choice() -> Result<Choice> {
    let choice = attention::choose(Backend::requested()?, &cudnn::probe());
    if let Some(n) = &choice.notice {
        attention::notice_once(n);
    }
    Ok(choice)
}
