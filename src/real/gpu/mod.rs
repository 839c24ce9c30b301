//! The GPU backend of [`Ops`]: one CUDA stream with its own cuBLAS handle, bf16 storage and
//! f32 accumulation.
//!
//! A [`GpuDevice`] is an opened device: its context and the kernels of `kernels/`, compiled once
//! by NVRTC and shared by everything on that device. A [`GpuOps`] queues every operation on its
//! own stream, in call order, and returns before the device finishes; only
//! [`read`](Ops::read), [`write`](Ops::write), [`upload_f32`](Ops::upload_f32) and
//! [`synchronize`](Ops::synchronize) wait.
//!
//! - GEMMs are cuBLAS `gemm_ex` with bf16 operands and f32 accumulation. cuBLAS is
//!   column-major, so a row-major `Y[M, out] = X[M, in] . W[in, out]` is issued as the
//!   column-major `Y^T = W^T . X^T` (no transposes are materialised).
//! - Attention runs on the stream's attention backends ([`attention`](crate::real::gpu::attention):
//!   cuDNN flash, fused softmax, unfused), each with its own plans and grow-only scratch,
//!   reserved by [`reserve_attention`](Ops::reserve_attention), so a step whose workspace
//!   exists allocates nothing.
//! - Everything else is one kernel launch (`kernels/*.cu`).
//!
//! Memory is an arena of device allocations, addressed by [`Ptr`](crate::real::ops::Ptr) (buffer, offset in
//! elements), checked on every access ([`arena`]).
//!
//! Weights are built once per device and shared read-only by every stream on it (the lanes of
//! [`lanes`](super::lanes)): [`GpuOps::freeze`] turns an arena into an `Arc` that keeps its
//! allocations alive, and [`GpuOps::sharing`] starts an arena whose first buffers are those,
//! with the same [`Ptr`](crate::real::ops::Ptr)s, on a new stream with a new cuBLAS handle.
//!
//! CUDA driver calls act on the context current on the calling thread. Worker threads are not
//! the thread that opened the device, so every public operation binds the device's context
//! first (a cheap check when it is already current).
//!
//! - [`device`]: [`GpuDevice`], opened once per GPU;
//! - [`arena`]: the arena, [`GpuArena`], [`DeviceBuffer`], [`GrowBuffer`];
//! - [`launch`]: kernel launches and strided-batched GEMMs;
//! - [`ops`]: the [`Ops`] implementation.

pub mod arena;
pub mod attention;
pub mod device;
pub mod launch;
pub mod ops;

use std::sync::Arc;

use cudarc::cublas::CudaBlas;
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaEvent, CudaStream};

pub use self::arena::{DeviceBuffer, GpuArena, GrowBuffer};
pub use self::device::GpuDevice;
use crate::error::{Error, Result};
pub use crate::real::gpu::attention::attention_chunk;
use crate::real::gpu::attention::{Backend, GpuAttentions};
use crate::real::ops::{AttentionShape, Ops};

/// The operations of a step on one stream of one device.
pub struct GpuOps {
    dev: GpuDevice,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    shared: Arc<GpuArena>,
    local: Vec<arena::Entry>,
    /// Declared last: the attention scratch, plans and cuDNN handle go after the arena.
    attention: GpuAttentions,
}

impl GpuOps {
    /// An empty arena on a new stream of `dev`.
    pub fn new(dev: &GpuDevice) -> Result<GpuOps> {
        GpuOps::sharing(Arc::new(GpuArena {
            dev: dev.clone(),
            buffers: Vec::new(),
        }))
    }

    /// An arena whose first buffers are `shared` (same [`Ptr`](crate::real::ops::Ptr)s as
    /// where they were built), on a new stream of their device with its own cuBLAS handle.
    pub fn sharing(shared: Arc<GpuArena>) -> Result<GpuOps> {
        let dev = shared.dev.clone();
        dev.bind()?;
        let stream = dev.ctx.new_stream().map_err(|e| {
            Error::Executor(format!("device {}: creating a stream: {e}", dev.ordinal))
        })?;
        GpuOps::sharing_on(shared, stream)
    }

    /// As [`sharing`](Self::sharing), on `stream` (of the same device).
    pub fn sharing_on(shared: Arc<GpuArena>, stream: Arc<CudaStream>) -> Result<GpuOps> {
        let dev = shared.dev.clone();
        dev.bind()?;
        if stream.context().cu_ctx() != dev.ctx.cu_ctx() {
            return Err(Error::Executor(format!(
                "device {}: a stream of another device",
                dev.ordinal
            )));
        }
        let blas = CudaBlas::new(stream.clone()).map_err(|e| {
            Error::Executor(format!(
                "device {}: creating a cuBLAS handle: {e}",
                dev.ordinal
            ))
        })?;
        let attention = GpuAttentions::new(dev.attention.backend);
        Ok(GpuOps {
            dev,
            stream,
            blas,
            shared,
            local: Vec::new(),
            attention,
        })
    }

    /// Waits for this stream, then freezes every buffer (shared and own) into a read-only set
    /// other streams of the device can share ([`sharing`](Self::sharing)).
    pub fn freeze(mut self) -> Result<Arc<GpuArena>> {
        self.synchronize()?;
        let mut buffers = self.shared.buffers.clone();
        buffers.append(&mut self.local);
        Ok(Arc::new(GpuArena {
            dev: self.dev.clone(),
            buffers,
        }))
    }

    pub fn device(&self) -> &GpuDevice {
        &self.dev
    }

    /// The stream every operation is queued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Makes the device's context current on the calling thread.
    pub fn bind(&self) -> Result<()> {
        self.dev.bind()
    }

    /// An error of this device, named with its ordinal and name.
    pub(crate) fn err(&self, what: impl std::fmt::Display) -> Error {
        Error::Executor(format!(
            "device {} ({}): {what}",
            self.dev.ordinal, self.dev.name
        ))
    }

    /// Records an event on this stream (timing enabled), for measuring queued work.
    pub fn record_timing_event(&self) -> Result<CudaEvent> {
        self.bind()?;
        self.stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| self.err(format!("recording an event: {e}")))
    }

    /// Records an event on this stream (no timing), for ordering other streams after the work
    /// queued so far.
    pub fn record_event(&self) -> Result<CudaEvent> {
        self.bind()?;
        self.stream
            .record_event(None)
            .map_err(|e| self.err(format!("recording an event: {e}")))
    }

    /// Makes this stream wait (on the device, not the host) for the work `event` recorded.
    pub fn wait_event(&self, event: &CudaEvent) -> Result<()> {
        self.bind()?;
        self.stream
            .wait(event)
            .map_err(|e| self.err(format!("waiting for an event: {e}")))
    }

    /// The attention backend this stream uses for shapes it can take.
    pub fn attention_backend(&self) -> Backend {
        self.attention.selected()
    }

    /// Switches this stream's attention backend (`gpu-check` runs each one against the CPU
    /// reference). A shape cuDNN refuses still falls back to the fused softmax.
    pub fn set_attention(&mut self, backend: Backend) {
        self.attention.select(backend);
    }

    /// The backend a call of `shape` runs on this stream: cuDNN only for a shape it planned.
    pub fn attention_backend_for(&self, shape: &AttentionShape) -> Backend {
        self.attention.backend_for(shape)
    }
}

impl Drop for GpuOps {
    fn drop(&mut self) {
        // The cuBLAS handle and the buffers are released through the driver, which needs the
        // context on this thread. Buffers are freed stream-ordered: no host wait here.
        let _ = self.dev.bind();
    }
}

#[cfg(test)]
mod tests {
    use crate::real::ops::extent;

    #[test]
    fn extents_of_strided_regions() {
        assert_eq!(extent(0, 5, 9), 0);
        assert_eq!(extent(1, 5, 9), 5);
        assert_eq!(extent(3, 5, 9), 23);
    }
}
