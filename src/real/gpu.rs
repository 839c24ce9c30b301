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
//! - Attention is chunked over queries: for a chunk of `cq` queries one strided-batched GEMM
//!   over heads gives the f32 scores `[heads, cq, N]`, the softmax kernel turns them into bf16
//!   probabilities, a second strided-batched GEMM multiplies by V. The chunk keeps the scratch
//!   near 1.5 GB (scores for 24 heads x 512 queries x 16,896 keys: 0.8 GB). The scratch is
//!   allocated by [`reserve_attention`](Ops::reserve_attention) (grow-only), so a step whose
//!   workspace exists allocates nothing.
//! - Everything else is one kernel launch (`kernels/*.cu`).
//!
//! Memory is an arena of device allocations, addressed by [`Ptr`] (buffer, offset in
//! elements). Each entry remembers its base address and element size: 2 bytes (bf16
//! activations and weights) or 4 (f32, the rotary tables of [`upload_f32`](Ops::upload_f32)).
//! Every access is checked against the entry's length and type, and writes to shared entries
//! are refused, so a wrong [`Ptr`] is an error, never a stray write.
//!
//! Weights are built once per device and shared read-only by every stream on it (the lanes of
//! [`lanes`](super::lanes)): [`GpuOps::freeze`] turns an arena into an `Arc` that keeps its
//! allocations alive, and [`GpuOps::sharing`] starts an arena whose first buffers are those,
//! with the same [`Ptr`]s, on a new stream with a new cuBLAS handle.
//!
//! CUDA driver calls act on the context current on the calling thread. Worker threads are not
//! the thread that opened the device, so every public operation binds the device's context
//! first (a cheap check when it is already current).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::rc::Rc;
use std::sync::Arc;

use cudarc::cublas::CudaBlas;
use cudarc::cublas::sys::{
    cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType_t,
};
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{
    CudaContext, CudaEvent, CudaSlice, CudaStream, DevicePtr, LaunchConfig, PushKernelArg,
};

use crate::error::{Error, Result};
use crate::real::attention::{self, Backend, Choice};
use crate::real::cudnn::{self, SdpaPlan};
use crate::real::device::Gpu;
use crate::real::kernels::{Kernel, Kernels};
use crate::real::ops::{AttentionShape, Ops, Ptr, extent};

/// An opened device: its context and loaded kernels. Cheap to clone.
#[derive(Clone)]
pub struct GpuDevice {
    pub ordinal: usize,
    pub name: String,
    pub ctx: Arc<CudaContext>,
    kernels: Arc<Kernels>,
    /// The attention backend streams of this device start with (see [`attention`]).
    pub attention: Choice,
}

impl GpuDevice {
    /// Opens device `ordinal` and compiles the kernels for it. Call
    /// [`probe`](super::device::probe) first: this assumes the CUDA libraries exist.
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

/// One device allocation of the arena.
#[derive(Clone)]
struct Entry {
    /// Keeps the allocation alive (shared between arenas after a freeze).
    _mem: Arc<CudaSlice<u8>>,
    addr: u64,
    /// Bytes per element: 2 (bf16) or 4 (f32).
    elem: usize,
    /// Length in elements.
    len: usize,
}

const BF16: usize = 2;
const F32: usize = 4;

/// A frozen arena: read-only buffers (weights) that the streams of one device share.
pub struct GpuArena {
    dev: GpuDevice,
    buffers: Vec<Entry>,
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

/// The attention scratch: f32 scores and bf16 probabilities of one chunk of the unfused path,
/// `cap` elements each; the bf16 scores of the fused-softmax path, `fused_cap` elements; the
/// cuDNN workspace, `workspace_cap` bytes. Grow-only.
#[derive(Default)]
struct Scratch {
    scores: Option<CudaSlice<u8>>,
    probs: Option<CudaSlice<u8>>,
    cap: usize,
    fused: Option<CudaSlice<u8>>,
    fused_cap: usize,
    workspace: Option<CudaSlice<u8>>,
    workspace_cap: usize,
}

/// The cuDNN side of one stream: its handle and a plan per attention shape (`None`: cuDNN
/// refused the shape, which then runs the fused-softmax path).
#[derive(Default)]
struct CudnnState {
    // Declared before the handle: plans are destroyed first.
    plans: BTreeMap<AttentionShape, Option<Rc<SdpaPlan>>>,
    handle: Option<cudnn::Handle>,
}

/// Queries per attention chunk for `tokens` keys and `heads` heads: scores and probabilities
/// (6 bytes per element) near 1.5 GB, a multiple of 64 queries, at least one.
pub fn attention_chunk(tokens: usize, heads: usize) -> usize {
    let per_query = (heads * tokens * 6).max(1);
    ((1_500_000_000 / per_query).max(64) / 64 * 64)
        .min(tokens)
        .max(1)
}

/// The operations of a step on one stream of one device.
pub struct GpuOps {
    dev: GpuDevice,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    shared: Arc<GpuArena>,
    local: Vec<Entry>,
    scratch: RefCell<Scratch>,
    attention: Backend,
    cudnn: RefCell<CudnnState>,
}

const THREADS: u32 = 256;

fn grid_for(n: usize) -> u32 {
    (n.div_ceil(THREADS as usize)).clamp(1, 1 << 20) as u32
}

/// A kernel argument. Kept in a slice that outlives the launch, since the driver reads each
/// argument through a pointer.
#[derive(Clone, Copy)]
enum A {
    P(u64),
    U64(u64),
    I64(i64),
    I32(i32),
    F32(f32),
}

/// A cuBLAS operand: (address, leading dimension, stride between batch entries, type).
type Operand = (u64, usize, i64, cudaDataType_t);

impl GpuOps {
    /// An empty arena on a new stream of `dev`.
    pub fn new(dev: &GpuDevice) -> Result<GpuOps> {
        GpuOps::sharing(Arc::new(GpuArena {
            dev: dev.clone(),
            buffers: Vec::new(),
        }))
    }

    /// An arena whose first buffers are `shared` (same [`Ptr`]s as where they were built), on
    /// a new stream of their device with its own cuBLAS handle.
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
        let attention = dev.attention.backend;
        Ok(GpuOps {
            dev,
            stream,
            blas,
            shared,
            local: Vec::new(),
            scratch: RefCell::new(Scratch::default()),
            attention,
            cudnn: RefCell::new(CudnnState::default()),
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

    fn err(&self, what: impl std::fmt::Display) -> Error {
        Error::Executor(format!(
            "device {} ({}): {what}",
            self.dev.ordinal, self.dev.name
        ))
    }

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

    fn entry(&self, buf: u32) -> Option<(&Entry, bool)> {
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
    fn resolve(&self, p: Ptr, elems: usize, elem: usize, write: bool) -> Result<u64> {
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

    /// `rows` rows of `cols` bf16 values from address `src` (row stride `src.1`) to `dst`
    /// (`dst.1`), queued on this stream.
    ///
    /// # Safety
    /// Both regions must lie in live allocations on this device, and any other stream that
    /// writes `src` or uses `dst` must be ordered with this one (events).
    pub unsafe fn copy_2d_raw(
        &self,
        dst: (u64, usize),
        src: (u64, usize),
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        self.bind()?;
        self.elementwise(
            Kernel::Copy2d,
            rows * cols,
            &[
                A::P(dst.0),
                A::I64(dst.1 as i64),
                A::P(src.0),
                A::I64(src.1 as i64),
                A::I64(rows as i64),
                A::I32(cols as i32),
            ],
        )
    }

    fn push(&mut self, elems: usize, elem: usize) -> Result<Ptr> {
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

    /// Launches `k` with one block of [`THREADS`] per grid entry.
    fn launch(&self, k: Kernel, grid: u32, args: &[A]) -> Result<()> {
        self.launch_block(k, grid, THREADS, args)
    }

    /// Launches `k` with `grid` blocks of `block` threads.
    fn launch_block(&self, k: Kernel, grid: u32, block: u32, args: &[A]) -> Result<()> {
        let f = self.dev.kernels.get(k);
        let mut b = self.stream.launch_builder(f);
        for a in args {
            match a {
                A::P(p) => b.arg(p),
                A::U64(v) => b.arg(v),
                A::I64(v) => b.arg(v),
                A::I32(v) => b.arg(v),
                A::F32(v) => b.arg(v),
            };
        }
        let cfg = LaunchConfig {
            grid_dim: (grid.max(1), 1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: every caller passes exactly the kernel's parameters, in order, with
        // addresses checked to hold the sizes it passes.
        unsafe { b.launch(cfg) }
            .map(|_| ())
            .map_err(|e| self.err(format!("launching {}: {e}", k.name())))
    }

    /// Launches a grid-stride element-wise kernel over `n` elements.
    fn elementwise(&self, k: Kernel, n: usize, args: &[A]) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.launch(k, grid_for(n), args)
    }

    fn bias_kernel(
        &self,
        k: Kernel,
        x: Ptr,
        b: Ptr,
        rows: usize,
        cols: usize,
        ld: usize,
    ) -> Result<()> {
        self.bind()?;
        let xa = self.addr_mut(x, extent(rows, cols, ld))?;
        let ba = self.addr(b, cols)?;
        if rows > 0 && crate::real::kernels::vec_fits(cols, ld, xa, ba) {
            let vec = match k {
                Kernel::BiasAdd => Kernel::BiasAddVec,
                _ => Kernel::BiasGeluVec,
            };
            return self.launch(
                vec,
                rows.min(1 << 20) as u32,
                &[
                    A::P(xa),
                    A::P(ba),
                    A::I64(rows as i64),
                    A::I32(cols as i32),
                    A::I32(ld as i32),
                ],
            );
        }
        self.elementwise(
            k,
            rows * cols,
            &[
                A::P(xa),
                A::P(ba),
                A::I64(rows as i64),
                A::I32(cols as i32),
                A::I32(ld as i32),
            ],
        )
    }

    /// Column-major strided-batched GEMM `C = alpha op(A) op(B) + beta C`, f32 accumulation.
    #[allow(clippy::too_many_arguments)]
    fn batched_gemm(
        &self,
        ta: cublasOperation_t,
        tb: cublasOperation_t,
        (m, n, k): (usize, usize, usize),
        alpha: f32,
        a: Operand,
        b: Operand,
        beta: f32,
        c: Operand,
        batch: usize,
    ) -> Result<()> {
        // SAFETY: the caller checked that the operands lie in live allocations large enough for
        // the shapes.
        unsafe {
            cudarc::cublas::result::gemm_strided_batched_ex(
                *self.blas.handle(),
                ta,
                tb,
                m as i32,
                n as i32,
                k as i32,
                (&alpha) as *const f32 as *const c_void,
                a.0 as *const c_void,
                a.3,
                a.1 as i32,
                a.2,
                b.0 as *const c_void,
                b.3,
                b.1 as i32,
                b.2,
                (&beta) as *const f32 as *const c_void,
                c.0 as *mut c_void,
                c.3,
                c.1 as i32,
                c.2,
                batch as i32,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| self.err(format!("cuBLAS batched GEMM ({m}x{n}x{k}, {batch}): {e}")))
    }

    /// The attention backend this stream uses for shapes it can take.
    pub fn attention_backend(&self) -> Backend {
        self.attention
    }

    /// Switches this stream's attention backend (`gpu-check` runs each one against the CPU
    /// reference). A shape cuDNN refuses still falls back to the fused softmax.
    pub fn set_attention(&mut self, backend: Backend) {
        self.attention = backend;
    }

    /// The backend a call of `shape` runs on this stream: cuDNN only for a shape it planned.
    pub fn attention_backend_for(&self, shape: &AttentionShape) -> Backend {
        match self.attention {
            Backend::CudnnFlash => match self.cudnn.borrow().plans.get(shape) {
                Some(Some(_)) | None => Backend::CudnnFlash,
                Some(None) => Backend::FusedSoftmax,
            },
            b => b,
        }
    }

    /// The cuDNN plan of `shape`, built (and its workspace grown) on first use; `None` when
    /// cuDNN refuses the shape, said once on stderr.
    fn cudnn_plan(&self, shape: &AttentionShape) -> Result<Option<Rc<SdpaPlan>>> {
        if let Some(p) = self.cudnn.borrow().plans.get(shape) {
            return Ok(p.clone());
        }
        let mut st = self.cudnn.borrow_mut();
        // cudarc panics on a missing library: only a probed cuDNN is ever called (a stream
        // asked for cuDNN explicitly, as gpu-check does, may lack it).
        let status = cudnn::probe();
        if !status.is_ready() {
            attention::notice_once(&attention::fallback_notice(&status.describe()));
            st.plans.insert(*shape, None);
            return Ok(None);
        }
        if st.handle.is_none() {
            match cudnn::Handle::new(self.stream.cu_stream()) {
                Ok(h) => st.handle = Some(h),
                Err(e) => {
                    attention::notice_once(&attention::fallback_notice(&e));
                    st.plans.insert(*shape, None);
                    return Ok(None);
                }
            }
        }
        let handle = st.handle.as_ref().expect("created above");
        let built = cudnn::sdpa_graph(*shape).and_then(|g| SdpaPlan::build(handle, g));
        let plan = match built {
            Ok(p) => Some(Rc::new(p)),
            Err(why) => {
                attention::notice_once(&attention::fallback_notice(&format!(
                    "cuDNN refused attention over {} tokens x {} heads of {} ({why})",
                    shape.tokens, shape.heads, shape.head_dim
                )));
                None
            }
        };
        st.plans.insert(*shape, plan.clone());
        drop(st);
        if let Some(p) = &plan {
            self.grow_workspace(p.workspace)?;
        }
        Ok(plan)
    }

    /// Grows the cuDNN workspace to `bytes` (never shrinks).
    fn grow_workspace(&self, bytes: usize) -> Result<()> {
        let mut s = self.scratch.borrow_mut();
        if bytes == 0 || s.workspace_cap >= bytes {
            return Ok(());
        }
        s.workspace = None;
        // SAFETY: cuDNN's scratch; it writes before it reads.
        let w = unsafe { self.stream.alloc::<u8>(bytes) }.map_err(|e| {
            self.err(format!(
                "allocating {} MB of cuDNN workspace: {e}",
                bytes >> 20
            ))
        })?;
        s.workspace = Some(w);
        s.workspace_cap = bytes;
        Ok(())
    }

    /// Grows the fused path's bf16 score scratch to `elems` (never shrinks).
    fn grow_fused(&self, s: &mut Scratch, elems: usize) -> Result<()> {
        if s.fused_cap >= elems {
            return Ok(());
        }
        s.fused = None;
        s.fused_cap = 0;
        // SAFETY: every score the softmax and P.V read is written by the scores GEMM first.
        let f = unsafe { self.stream.alloc::<u8>(BF16 * elems) }.map_err(|e| {
            self.err(format!(
                "allocating {} MB of attention scratch: {e}",
                (BF16 * elems) >> 20
            ))
        })?;
        s.fused = Some(f);
        s.fused_cap = elems;
        Ok(())
    }

    /// Attention through cuDNN's plan for `shape`; `false` when there is none (refused shape,
    /// or addresses not 16-byte aligned), so the caller runs the fused path.
    fn attention_cudnn(&self, shape: &AttentionShape, q: u64, o: u64) -> Result<bool> {
        let Some(plan) = self.cudnn_plan(shape)? else {
            return Ok(false);
        };
        if !q.is_multiple_of(16) || !o.is_multiple_of(16) {
            return Ok(false);
        }
        let ws = {
            let s = self.scratch.borrow();
            match (&s.workspace, plan.workspace) {
                (_, 0) => 0,
                (Some(w), _) => w.device_ptr(&self.stream).0,
                (None, _) => return Err(self.err("cuDNN workspace missing")),
            }
        };
        let st = self.cudnn.borrow();
        let handle = st
            .handle
            .as_ref()
            .ok_or_else(|| self.err("cuDNN handle missing"))?;
        // SAFETY: q and o were checked to hold the shape's extents in this arena's buffers,
        // 16-byte aligned; the workspace holds plan.workspace bytes; the context is bound.
        unsafe { plan.execute(handle, q, o, ws) }.map_err(|e| self.err(e))?;
        Ok(true)
    }

    /// The fused-softmax path (see [`attention`]): per chunk of queries, bf16 scaled scores
    /// from one strided-batched GEMM over heads (rows padded to 16 bytes), the in-place
    /// softmax, and P.V.
    fn attention_fused(&self, shape: &AttentionShape, q: u64, o: u64) -> Result<()> {
        let (n, heads, d) = (shape.tokens, shape.heads, shape.head_dim);
        let (ld, ldo, cols) = (shape.ld, shape.ldo, shape.cols);
        let ldc = attention::padded_row(n);
        let chunk = attention::fused_chunk(n, heads);
        let mut s = self.scratch.borrow_mut();
        self.grow_fused(&mut s, heads * chunk * ldc)?;
        let scores = match &s.fused {
            Some(f) => f.device_ptr(&self.stream).0,
            None => return Err(self.err("attention scratch missing")),
        };
        let scale = 1.0 / (d as f32).sqrt();
        let bf = cudaDataType_t::CUDA_R_16BF;
        let (op_n, op_t) = (
            cublasOperation_t::CUBLAS_OP_N,
            cublasOperation_t::CUBLAS_OP_T,
        );
        let stride = |elems: usize| (BF16 * elems) as u64;
        let mut start = 0;
        while start < n {
            let cq = chunk.min(n - start);
            let per_head = (ldc * cq) as i64;
            // S^T[N, cq] (column stride ldc) = scale K^T . Q per head, written in bf16.
            self.batched_gemm(
                op_t,
                op_n,
                (n, cq, d),
                scale,
                (q + stride(cols), ld, d as i64, bf),
                (q + stride(start * ld), ld, d as i64, bf),
                0.0,
                (scores, ldc, per_head, bf),
                heads,
            )?;
            let rows = heads * cq;
            self.launch_block(
                Kernel::SoftmaxInplace,
                rows as u32,
                attention::SOFTMAX_THREADS as u32,
                &[
                    A::P(scores),
                    A::I64(rows as i64),
                    A::I32(n as i32),
                    A::I32(ldc as i32),
                ],
            )?;
            self.batched_gemm(
                op_n,
                op_n,
                (d, cq, n),
                1.0,
                (q + stride(2 * cols), ld, d as i64, bf),
                (scores, ldc, per_head, bf),
                0.0,
                (o + stride(start * ldo), ldo, d as i64, bf),
                heads,
            )?;
            start += cq;
        }
        Ok(())
    }

    /// Grows the attention scratch to `elems` scores and probabilities (never shrinks).
    fn grow_scratch(&self, s: &mut Scratch, elems: usize) -> Result<()> {
        if s.cap >= elems {
            return Ok(());
        }
        // Stream-ordered: the old buffers are freed after the work queued on them.
        s.scores = None;
        s.probs = None;
        s.cap = 0;
        let alloc = |bytes: usize| {
            // SAFETY: scratch; every element is written (scores by the GEMM, probabilities by
            // the softmax) before it is read.
            unsafe { self.stream.alloc::<u8>(bytes) }.map_err(|e| {
                self.err(format!(
                    "allocating {} MB of attention scratch: {e}",
                    bytes >> 20
                ))
            })
        };
        s.scores = Some(alloc(F32 * elems)?);
        s.probs = Some(alloc(BF16 * elems)?);
        s.cap = elems;
        Ok(())
    }
}

impl Drop for GpuOps {
    fn drop(&mut self) {
        // The cuBLAS handle and the buffers are released through the driver, which needs the
        // context on this thread. Buffers are freed stream-ordered: no host wait here.
        let _ = self.dev.bind();
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

fn bf16_bits(data: &[f32]) -> Vec<u16> {
    data.iter()
        .map(|&x| half::bf16::from_f32(x).to_bits())
        .collect()
}

impl Ops for GpuOps {
    fn alloc(&mut self, elems: usize) -> Result<Ptr> {
        self.push(elems, BF16)
    }

    fn upload_f32(&mut self, data: &[f32]) -> Result<Ptr> {
        let p = self.push(data.len(), F32)?;
        if !data.is_empty() {
            let a = self.resolve(p, data.len(), F32, true)?;
            // SAFETY: `a` holds data.len() f32 values; the stream is synchronised before `data`
            // can go away.
            unsafe { cudarc::driver::result::memcpy_htod_async(a, data, self.stream.cu_stream()) }
                .map_err(|e| self.err(format!("upload: {e}")))?;
            self.synchronize()?;
        }
        Ok(p)
    }

    fn fill_uniform(&self, dst: Ptr, n: usize, seed: u64, scale: f32) -> Result<()> {
        self.bind()?;
        let a = self.addr_mut(dst, n)?;
        self.elementwise(
            Kernel::FillUniform,
            n,
            &[A::P(a), A::U64(n as u64), A::U64(seed), A::F32(scale)],
        )
    }

    fn write(&self, dst: Ptr, data: &[f32]) -> Result<()> {
        self.bind()?;
        if data.is_empty() {
            return Ok(());
        }
        let (e, _) = self
            .entry(dst.buf)
            .ok_or_else(|| self.err(format!("no buffer {}", dst.buf)))?;
        let a = self.resolve(dst, data.len(), e.elem, true)?;
        let s = self.stream.cu_stream();
        let err = |e| self.err(format!("upload: {e}"));
        if e.elem == F32 {
            // SAFETY: `a` holds data.len() f32 values; the stream is synchronised before
            // `data` can go away.
            unsafe { cudarc::driver::result::memcpy_htod_async(a, data, s) }.map_err(err)?;
            self.synchronize()
        } else {
            let bits = bf16_bits(data);
            // SAFETY: `a` holds data.len() bf16 values; the stream is synchronised before
            // `bits` is dropped.
            unsafe { cudarc::driver::result::memcpy_htod_async(a, &bits, s) }.map_err(err)?;
            self.synchronize()
        }
    }

    fn read(&self, src: Ptr, n: usize) -> Result<Vec<f32>> {
        self.bind()?;
        let (e, _) = self
            .entry(src.buf)
            .ok_or_else(|| self.err(format!("no buffer {}", src.buf)))?;
        let a = self.resolve(src, n, e.elem, false)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let s = self.stream.cu_stream();
        let err = |e| self.err(format!("download: {e}"));
        if e.elem == F32 {
            let mut out = vec![0f32; n];
            // SAFETY: `a` holds n f32 values; the stream is synchronised before `out` is read.
            unsafe { cudarc::driver::result::memcpy_dtoh_async(&mut out, a, s) }.map_err(err)?;
            self.synchronize()?;
            Ok(out)
        } else {
            let mut raw = vec![0u16; n];
            // SAFETY: `a` holds n bf16 values; the stream is synchronised before `raw` is read.
            unsafe { cudarc::driver::result::memcpy_dtoh_async(&mut raw, a, s) }.map_err(err)?;
            self.synchronize()?;
            Ok(raw
                .iter()
                .map(|&b| half::bf16::from_bits(b).to_f32())
                .collect())
        }
    }

    fn gemm(
        &self,
        (x, ldx): (Ptr, usize),
        (w, ldw): (Ptr, usize),
        (y, ldy): (Ptr, usize),
        rows: usize,
        inp: usize,
        out: usize,
        beta: f32,
    ) -> Result<()> {
        if rows == 0 || out == 0 {
            return Ok(());
        }
        self.bind()?;
        let xa = self.addr(x, extent(rows, inp, ldx))?;
        let wa = self.addr(w, extent(inp, out, ldw))?;
        let ya = self.addr_mut(y, extent(rows, out, ldy))?;
        let alpha = 1.0f32;
        // SAFETY: the three operands were checked to hold the shapes passed.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                *self.blas.handle(),
                cublasOperation_t::CUBLAS_OP_N,
                cublasOperation_t::CUBLAS_OP_N,
                out as i32,
                rows as i32,
                inp as i32,
                (&alpha) as *const f32 as *const c_void,
                wa as *const c_void,
                cudaDataType_t::CUDA_R_16BF,
                ldw as i32,
                xa as *const c_void,
                cudaDataType_t::CUDA_R_16BF,
                ldx as i32,
                (&beta) as *const f32 as *const c_void,
                ya as *mut c_void,
                cudaDataType_t::CUDA_R_16BF,
                ldy as i32,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| self.err(format!("cuBLAS GEMM ({rows}x{inp} . {inp}x{out}): {e}")))
    }

    fn bias_add(&self, x: Ptr, b: Ptr, rows: usize, cols: usize, ld: usize) -> Result<()> {
        self.bias_kernel(Kernel::BiasAdd, x, b, rows, cols, ld)
    }

    fn bias_gelu(&self, x: Ptr, b: Ptr, rows: usize, cols: usize, ld: usize) -> Result<()> {
        self.bias_kernel(Kernel::BiasGelu, x, b, rows, cols, ld)
    }

    fn silu(&self, x: Ptr, y: Ptr, n: usize) -> Result<()> {
        self.bind()?;
        let (xa, ya) = (self.addr(x, n)?, self.addr_mut(y, n)?);
        self.elementwise(Kernel::Silu, n, &[A::P(xa), A::P(ya), A::I64(n as i64)])
    }

    fn layernorm_modulate(
        &self,
        x: Ptr,
        out: Ptr,
        shift: Ptr,
        scale: Ptr,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        self.bind()?;
        let args = [
            A::P(self.addr(x, rows * cols)?),
            A::P(self.addr_mut(out, rows * cols)?),
            A::P(self.addr(shift, cols)?),
            A::P(self.addr(scale, cols)?),
            A::I32(rows as i32),
            A::I32(cols as i32),
        ];
        self.launch(Kernel::LayernormModulate, rows as u32, &args)
    }

    fn residual_layernorm_modulate(
        &self,
        (x, y, bias, gate): (Ptr, Ptr, Ptr, Ptr),
        (out, shift, scale): (Ptr, Ptr, Ptr),
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        self.bind()?;
        let args = [
            A::P(self.addr_mut(x, rows * cols)?),
            A::P(self.addr(y, rows * cols)?),
            A::P(self.addr(bias, cols)?),
            A::P(self.addr(gate, cols)?),
            A::P(self.addr_mut(out, rows * cols)?),
            A::P(self.addr(shift, cols)?),
            A::P(self.addr(scale, cols)?),
            A::I32(rows as i32),
            A::I32(cols as i32),
        ];
        self.launch(Kernel::ResidualLayernormModulate, rows as u32, &args)
    }

    fn gated_residual(
        &self,
        x: Ptr,
        y: Ptr,
        bias: Ptr,
        gate: Ptr,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        self.bind()?;
        let args = [
            A::P(self.addr_mut(x, rows * cols)?),
            A::P(self.addr(y, rows * cols)?),
            A::P(self.addr(bias, cols)?),
            A::P(self.addr(gate, cols)?),
            A::I64(rows as i64),
            A::I32(cols as i32),
        ];
        self.elementwise(Kernel::GatedResidual, rows * cols, &args)
    }

    fn flow_update(
        &self,
        latent: Ptr,
        v: Ptr,
        bias: Ptr,
        dt: f32,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        self.bind()?;
        let args = [
            A::P(self.addr_mut(latent, rows * cols)?),
            A::P(self.addr(v, rows * cols)?),
            A::P(self.addr(bias, cols)?),
            A::F32(dt),
            A::I64(rows as i64),
            A::I32(cols as i32),
        ];
        self.elementwise(Kernel::FlowUpdate, rows * cols, &args)
    }

    fn rope(
        &self,
        qkv: Ptr,
        ld: usize,
        cos: Ptr,
        sin: Ptr,
        tokens: usize,
        heads: usize,
        head_dim: usize,
    ) -> Result<()> {
        if tokens == 0 {
            return Ok(());
        }
        self.bind()?;
        let pairs = head_dim / 2;
        let args = [
            A::P(self.addr_mut(qkv, extent(tokens, 2 * heads * head_dim, ld))?),
            A::P(self.resolve(cos, tokens * pairs, F32, false)?),
            A::P(self.resolve(sin, tokens * pairs, F32, false)?),
            A::I32(tokens as i32),
            A::I32(heads as i32),
            A::I32(head_dim as i32),
            A::I32(ld as i32),
        ];
        self.launch(Kernel::Rope, tokens as u32, &args)
    }

    fn reserve_attention(&mut self, shapes: &[AttentionShape]) -> Result<()> {
        self.bind()?;
        for shape in shapes {
            let (n, heads) = (shape.tokens, shape.heads);
            let mut backend = self.attention_backend_for(shape);
            if backend == Backend::CudnnFlash && self.cudnn_plan(shape)?.is_none() {
                backend = Backend::FusedSoftmax;
            }
            let mut s = self.scratch.borrow_mut();
            match backend {
                Backend::CudnnFlash => {}
                Backend::FusedSoftmax => self.grow_fused(
                    &mut s,
                    heads * attention::fused_chunk(n, heads) * attention::padded_row(n),
                )?,
                Backend::Unfused => {
                    self.grow_scratch(&mut s, heads * attention_chunk(n, heads) * n)?
                }
            }
        }
        Ok(())
    }

    fn attention(
        &self,
        qkv: Ptr,
        ld: usize,
        out: Ptr,
        ldo: usize,
        tokens: usize,
        heads: usize,
        head_dim: usize,
        cols: usize,
    ) -> Result<()> {
        if tokens == 0 || heads == 0 {
            return Ok(());
        }
        self.bind()?;
        let (n, d) = (tokens, head_dim);
        let q = self.addr(qkv, extent(n, 3 * cols, ld))?;
        let o = self.addr_mut(out, extent(n, heads * d, ldo))?;
        if heads * d > cols {
            return Err(self.err(format!(
                "{heads} heads of {d} in q/k/v blocks of {cols} columns"
            )));
        }
        let shape = AttentionShape {
            tokens,
            heads,
            head_dim,
            ld,
            ldo,
            cols,
        };
        match self.attention {
            Backend::CudnnFlash => {
                if self.attention_cudnn(&shape, q, o)? {
                    return Ok(());
                }
                return self.attention_fused(&shape, q, o);
            }
            Backend::FusedSoftmax => return self.attention_fused(&shape, q, o),
            Backend::Unfused => {}
        }
        let chunk = attention_chunk(n, heads);
        let mut s = self.scratch.borrow_mut();
        // Reserved by the workspace; grows only for shapes no workspace announced.
        self.grow_scratch(&mut s, heads * chunk * n)?;
        let (scores, probs) = match (&s.scores, &s.probs) {
            (Some(a), Some(b)) => (a.device_ptr(&self.stream).0, b.device_ptr(&self.stream).0),
            _ => return Err(self.err("attention scratch missing")),
        };
        let scale = 1.0 / (d as f32).sqrt();
        let (bf, f) = (cudaDataType_t::CUDA_R_16BF, cudaDataType_t::CUDA_R_32F);
        let (op_n, op_t) = (
            cublasOperation_t::CUBLAS_OP_N,
            cublasOperation_t::CUBLAS_OP_T,
        );
        let stride = |elems: usize| (BF16 * elems) as u64;
        let mut start = 0;
        while start < n {
            let cq = chunk.min(n - start);
            let nc = (n * cq) as i64;
            // Scores: S^T[N, cq] = K^T . Q per head (column-major), f32.
            self.batched_gemm(
                op_t,
                op_n,
                (n, cq, d),
                scale,
                (q + stride(cols), ld, d as i64, bf),
                (q + stride(start * ld), ld, d as i64, bf),
                0.0,
                (scores, n, nc, f),
                heads,
            )?;
            let rows = heads * cq;
            self.launch(
                Kernel::Softmax,
                rows as u32,
                &[
                    A::P(scores),
                    A::P(probs),
                    A::I64(rows as i64),
                    A::I32(n as i32),
                ],
            )?;
            // O^T[d, cq] = V^T . P^T per head, written at row `start`, column h * d of `out`.
            self.batched_gemm(
                op_n,
                op_n,
                (d, cq, n),
                1.0,
                (q + stride(2 * cols), ld, d as i64, bf),
                (probs, n, nc, bf),
                0.0,
                (o + stride(start * ldo), ldo, d as i64, bf),
                heads,
            )?;
            start += cq;
        }
        Ok(())
    }

    fn copy_2d(
        &self,
        (dst, dld): (Ptr, usize),
        (src, sld): (Ptr, usize),
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        self.bind()?;
        let d = self.addr_mut(dst, extent(rows, cols, dld))?;
        let s = self.addr(src, extent(rows, cols, sld))?;
        // SAFETY: both regions were checked against this arena's live buffers.
        unsafe { self.copy_2d_raw((d, dld), (s, sld), rows, cols) }
    }

    fn synchronize(&self) -> Result<()> {
        self.bind()?;
        self.stream
            .synchronize()
            .map_err(|e| self.err(format!("synchronising: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_chunks_stay_near_the_bound() {
        // FLUX.1-dev at 2048 px: 24 heads, 16,896 tokens -> 576 queries (1.4 GB of scratch).
        let cq = attention_chunk(16_896, 24);
        assert_eq!(cq % 64, 0);
        assert!(24 * cq * 16_896 * 6 <= 1_500_000_000, "{cq}");
        assert!(24 * (cq + 64) * 16_896 * 6 > 1_500_000_000, "{cq}");
        // Short sequences: one chunk of every query.
        assert_eq!(attention_chunk(20, 8), 20);
        assert_eq!(attention_chunk(1, 1), 1);
        // Huge ones never go below 64 queries.
        assert_eq!(attention_chunk(10_000_000, 64), 64);
    }

    #[test]
    fn extents_of_strided_regions() {
        assert_eq!(extent(0, 5, 9), 0);
        assert_eq!(extent(1, 5, 9), 5);
        assert_eq!(extent(3, 5, 9), 23);
    }
}
