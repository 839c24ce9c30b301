//! A stream's memory: the arena of device allocations that [`Ptr`]s address, the frozen
//! arena the streams of one device share, and the plain allocations NCCL maps.
//!
//! Each entry remembers its base address and element size: 2 bytes (bf16 activations and
//! weights) or 4 (f32, the rotary tables of [`upload_f32`](crate::real::ops::Ops::upload_f32)).
//! Every access is checked against the entry's length and type, and writes to shared entries
//! are refused, so a wrong [`Ptr`] is an error, never a stray write. Kept in one place so that
//! every address an operation or an attention backend hands to the device went through
//! `GpuOps::resolve`.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};

use super::{GpuDevice, GpuOps};
use crate::error::Result;
use crate::real::ops::Ptr;

/// One device allocation of the arena.
#[derive(Clone)]
pub(super) struct Entry {
    /// Keeps the allocation alive (shared between arenas after a freeze).
    _mem: Arc<CudaSlice<u8>>,
    addr: u64,
    /// Bytes per element: 2 (bf16) or 4 (f32).
    pub(super) elem: usize,
    /// Length in elements.
    len: usize,
}

/// Bytes of a bf16 value (activations, weights, attention scores of the fused path).
pub(crate) const BF16: usize = 2;
/// Bytes of an f32 value (rotary tables, the unfused path's scores).
pub(crate) const F32: usize = 4;

/// A frozen arena: read-only buffers (weights) that the streams of one device share.
pub struct GpuArena {
    pub(super) dev: GpuDevice,
    pub(super) buffers: Vec<Entry>,
}

impl GpuArena {
    pub fn device(&self) -> &GpuDevice {
        &self.dev
    }

    /// Buffers in the arena.
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }
}

impl Drop for GpuArena {
    fn drop(&mut self) {
        // Freeing goes through the driver, which needs the context on this thread.
        let _ = self.dev.bind();
        self.buffers.clear();
    }
}

impl GpuOps {
    /// The arena's size now: [`release`](Self::release) with it frees every buffer allocated
    /// after this call.
    pub fn mark(&self) -> usize {
        self.shared.buffers.len() + self.local.len()
    }

    /// Frees this arena's own buffers allocated after [`mark`](Self::mark) returned `mark`
    /// (stream-ordered: queued work that uses them finishes first). Their [`Ptr`]s become
    /// invalid.
    pub fn release(&mut self, mark: usize) -> Result<()> {
        self.bind()?;
        let keep = mark.saturating_sub(self.shared.buffers.len());
        self.local.truncate(keep);
        Ok(())
    }

    pub(super) fn entry(&self, buf: u32) -> Option<(&Entry, bool)> {
        let i = buf as usize;
        match self.shared.buffers.get(i) {
            Some(e) => Some((e, false)),
            None => self
                .local
                .get(i - self.shared.buffers.len())
                .map(|e| (e, true)),
        }
    }

    /// The device address of `elems` elements of `elem` bytes at `p`, checked.
    pub(super) fn resolve(&self, p: Ptr, elems: usize, elem: usize, write: bool) -> Result<u64> {
        let (e, writable) = self
            .entry(p.buf)
            .ok_or_else(|| self.err(format!("no buffer {}", p.buf)))?;
        if write && !writable {
            return Err(self.err(format!("buffer {} is shared and read-only", p.buf)));
        }
        if e.elem != elem {
            return Err(self.err(format!(
                "buffer {} holds {}-byte values, used as {elem}-byte ones",
                p.buf, e.elem
            )));
        }
        match p.off.checked_add(elems) {
            Some(end) if end <= e.len => Ok(e.addr + (elem * p.off) as u64),
            _ => Err(self.err(format!(
                "access of {elems} values at {p:?} is outside the buffer of {}",
                e.len
            ))),
        }
    }

    /// The address of `elems` bf16 values at `p` (readable), bounds checked.
    pub fn addr(&self, p: Ptr, elems: usize) -> Result<u64> {
        self.resolve(p, elems, BF16, false)
    }

    /// The address of `elems` bf16 values at `p` in one of this arena's own (writable)
    /// buffers, bounds checked.
    pub fn addr_mut(&self, p: Ptr, elems: usize) -> Result<u64> {
        self.resolve(p, elems, BF16, true)
    }

    /// bf16 values from `p` to the end of its buffer.
    pub fn len_from(&self, p: Ptr) -> Result<usize> {
        let (e, _) = self
            .entry(p.buf)
            .ok_or_else(|| self.err(format!("no buffer {}", p.buf)))?;
        e.len
            .checked_sub(p.off)
            .ok_or_else(|| self.err(format!("{p:?} is past the end of its buffer")))
    }

    /// Fills `n` bf16 values at `p` with NaNs (all bits set), so that a step that fails to
    /// write them shows.
    pub fn poison(&self, p: Ptr, n: usize) -> Result<()> {
        self.bind()?;
        let a = self.addr_mut(p, n)?;
        if n == 0 {
            return Ok(());
        }
        // SAFETY: `a` addresses `n` bf16 values of a live allocation (checked above).
        unsafe {
            cudarc::driver::result::memset_d8_async(a, 0xFF, BF16 * n, self.stream.cu_stream())
        }
        .map_err(|e| self.err(format!("poisoning: {e}")))
    }

    /// A plain device allocation of `bytes` bytes (`cuMemAlloc`, not the stream-ordered pool,
    /// so that NCCL may map it for peers), freed after this stream finishes.
    pub fn alloc_raw(&self, bytes: usize) -> Result<DeviceBuffer> {
        self.bind()?;
        // SAFETY: a plain allocation; the buffer frees it once.
        let addr = unsafe { cudarc::driver::result::malloc_sync(bytes.max(256)) }
            .map_err(|e| self.err(format!("allocating {} MB: {e}", bytes >> 20)))?;
        Ok(DeviceBuffer {
            addr,
            bytes,
            stream: self.stream.clone(),
        })
    }

    /// A new zeroed entry of `elems` values of `elem` bytes at the end of the arena.
    pub(super) fn push(&mut self, elems: usize, elem: usize) -> Result<Ptr> {
        self.bind()?;
        let bytes = (elems * elem).max(256);
        let mem = self
            .stream
            .alloc_zeros::<u8>(bytes)
            .map_err(|e| self.err(format!("allocating {} MB: {e}", bytes >> 20)))?;
        let addr = {
            let (p, _sync) = mem.device_ptr(&self.stream);
            p
        };
        let id = self.mark();
        self.local.push(Entry {
            _mem: Arc::new(mem),
            addr,
            elem,
            len: elems,
        });
        Ok(Ptr {
            buf: id as u32,
            off: 0,
        })
    }
}

/// A plain device allocation (see [`GpuOps::alloc_raw`]); freed once its stream is idle.
pub struct DeviceBuffer {
    addr: u64,
    bytes: usize,
    stream: Arc<CudaStream>,
}

impl DeviceBuffer {
    pub fn addr(&self) -> u64 {
        self.addr
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // Queued work may still use the buffer (cuMemFree is not stream-ordered).
        let _ = self.stream.synchronize();
        // SAFETY: allocated by `alloc_raw`, freed once; the context is bound by `synchronize`.
        let _ = unsafe { cudarc::driver::result::free_sync(self.addr) };
    }
}

/// A grow-only [`DeviceBuffer`]: scratch reused across calls of different sizes.
#[derive(Default)]
pub struct GrowBuffer(Option<DeviceBuffer>);

impl GrowBuffer {
    /// The address of at least `bytes` bytes, allocated on `ops`'s device if the buffer is
    /// smaller (waiting for its stream to free the old one).
    pub fn ensure(&mut self, ops: &GpuOps, bytes: usize) -> Result<u64> {
        match &self.0 {
            Some(b) if b.bytes >= bytes => Ok(b.addr),
            _ => {
                self.0 = None;
                let b = ops.alloc_raw(bytes)?;
                let a = b.addr;
                self.0 = Some(b);
                Ok(a)
            }
        }
    }
}
