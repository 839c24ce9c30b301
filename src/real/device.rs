//! Finding and opening local GPUs, with clean errors when CUDA is absent.
//!
//! cudarc loads the CUDA libraries on first use and panics if one is missing; every path into
//! the real backend goes through [`probe`] first, which checks each library without panicking
//! and says which one is missing and how to provide it.

use std::sync::Arc;

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaStream};

use crate::error::{Error, Result};
use crate::real::kernels::{Kernels, nvrtc_available};

/// What the local machine offers.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub devices: usize,
    /// Device 0's name and compute capability.
    pub name: String,
    pub capability: (i32, i32),
}

/// Checks the CUDA driver, NVRTC and cuBLAS libraries and counts the devices.
pub fn probe() -> Result<Probe> {
    // SAFETY: each call only tries to dlopen the library by its candidate names.
    let (driver, blas) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::cublas::sys::is_culib_present(),
        )
    };
    let missing = |what: &str, hint: &str| {
        Error::Executor(format!("no CUDA device: {what} was not found ({hint})"))
    };
    if !driver {
        return Err(missing(
            "the CUDA driver library (libcuda)",
            "this machine has no NVIDIA driver; `simulate` without --real needs none",
        ));
    }
    if !nvrtc_available() {
        return Err(missing(
            "NVRTC (libnvrtc)",
            "install the CUDA toolkit, or `pip install nvidia-cuda-nvrtc` and add its lib folder to LD_LIBRARY_PATH",
        ));
    }
    if !blas {
        return Err(missing(
            "cuBLAS (libcublas)",
            "install the CUDA toolkit, or `pip install nvidia-cublas` and add its lib folder to LD_LIBRARY_PATH",
        ));
    }
    let devices = CudaContext::device_count().map_err(|e| {
        Error::Executor(format!("no CUDA device: the driver failed to start ({e})"))
    })?;
    if devices < 1 {
        return Err(Error::Executor(
            "no CUDA device: the driver reports none".into(),
        ));
    }
    let ctx =
        CudaContext::new(0).map_err(|e| Error::Executor(format!("opening CUDA device 0: {e}")))?;
    Ok(Probe {
        devices: devices as usize,
        name: ctx.name().unwrap_or_else(|_| "unknown".into()),
        capability: ctx.compute_capability().unwrap_or((0, 0)),
    })
}

/// One opened GPU: context, the stream everything runs on, cuBLAS and the loaded kernels.
pub struct Gpu {
    pub ordinal: usize,
    pub name: String,
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub blas: CudaBlas,
    pub kernels: Kernels,
}

impl Gpu {
    /// Opens device `ordinal`. Call [`probe`] first: this assumes the libraries exist.
    pub fn open(ordinal: usize) -> Result<Gpu> {
        let err = |what: &str, e: String| Error::Executor(format!("device {ordinal}: {what}: {e}"));
        let ctx =
            CudaContext::new(ordinal).map_err(|e| err("opening the context", e.to_string()))?;
        // Everything runs on one stream in order; cudarc's per-buffer event tracking would
        // only add overhead.
        // SAFETY: no buffer is shared between streams.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone())
            .map_err(|e| err("creating the cuBLAS handle", e.to_string()))?;
        let kernels = Kernels::load(&ctx)?;
        let name = ctx.name().unwrap_or_else(|_| "unknown".into());
        Ok(Gpu {
            ordinal,
            name,
            ctx,
            stream,
            blas,
            kernels,
        })
    }

    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| Error::Executor(format!("device {}: {e}", self.ordinal)))
    }
}
