//! The cuDNN flash-attention backend: one fused SDPA kernel per call, the score matrix never
//! reaches memory. The library, its version and the SDPA graph are
//! [`cudnn`]'s; this file holds what one stream keeps: its cuDNN handle, a
//! plan per attention shape and the workspace the plans need.
//!
//! A shape cuDNN refuses at plan time is remembered as refused ([`GpuAttention::refuses`]),
//! so its calls take the next backend of the chain without asking again; the refusal is said
//! once on stderr.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use cudarc::driver::{CudaSlice, DevicePtr};

use super::{GpuAttention, fallback_notice, notice_once};
use crate::error::Result;
use crate::real::cudnn::{self, SdpaPlan};
use crate::real::gpu::GpuOps;
use crate::real::ops::AttentionShape;

/// The cuDNN backend of one stream.
#[derive(Default)]
pub struct Flash {
    // Declared before the plans and handle: the workspace is released first.
    workspace: RefCell<Workspace>,
    state: RefCell<CudnnState>,
}

/// The cuDNN workspace, `cap` bytes. Grow-only.
#[derive(Default)]
struct Workspace {
    mem: Option<CudaSlice<u8>>,
    cap: usize,
}

/// The cuDNN side of one stream: its handle and a plan per attention shape (`None`: cuDNN
/// refused the shape, which then runs the fused-softmax path).
#[derive(Default)]
struct CudnnState {
    // Declared before the handle: plans are destroyed first.
    plans: BTreeMap<AttentionShape, Option<Rc<SdpaPlan>>>,
    handle: Option<cudnn::Handle>,
}

impl Flash {
    /// The cuDNN plan of `shape`, built (and its workspace grown) on first use; `None` when
    /// cuDNN refuses the shape, said once on stderr.
    fn plan(&self, ops: &GpuOps, shape: &AttentionShape) -> Result<Option<Rc<SdpaPlan>>> {
        if let Some(p) = self.state.borrow().plans.get(shape) {
            return Ok(p.clone());
        }
        let mut st = self.state.borrow_mut();
        // cudarc panics on a missing library: only a probed cuDNN is ever called (a stream
        // asked for cuDNN explicitly, as gpu-check does, may lack it).
        let status = cudnn::probe();
        if !status.is_ready() {
            notice_once(&fallback_notice(&status.describe()));
            st.plans.insert(*shape, None);
            return Ok(None);
        }
        if st.handle.is_none() {
            match cudnn::Handle::new(ops.stream().cu_stream()) {
                Ok(h) => st.handle = Some(h),
                Err(e) => {
                    notice_once(&fallback_notice(&e));
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
                notice_once(&fallback_notice(&format!(
                    "cuDNN refused attention over {} tokens x {} heads of {} ({why})",
                    shape.tokens, shape.heads, shape.head_dim
                )));
                None
            }
        };
        st.plans.insert(*shape, plan.clone());
        drop(st);
        if let Some(p) = &plan {
            self.grow_workspace(ops, p.workspace)?;
        }
        Ok(plan)
    }

    /// Grows the cuDNN workspace to `bytes` (never shrinks).
    fn grow_workspace(&self, ops: &GpuOps, bytes: usize) -> Result<()> {
        let mut w = self.workspace.borrow_mut();
        if bytes == 0 || w.cap >= bytes {
            return Ok(());
        }
        w.mem = None;
        // SAFETY: cuDNN's scratch; it writes before it reads.
        let mem = unsafe { ops.stream().alloc::<u8>(bytes) }.map_err(|e| {
            ops.err(format!(
                "allocating {} MB of cuDNN workspace: {e}",
                bytes >> 20
            ))
        })?;
        w.mem = Some(mem);
        w.cap = bytes;
        Ok(())
    }
}

impl GpuAttention for Flash {
    fn refuses(&self, shape: &AttentionShape) -> bool {
        matches!(self.state.borrow().plans.get(shape), Some(None))
    }

    fn reserve(&self, ops: &GpuOps, shape: &AttentionShape) -> Result<bool> {
        Ok(self.plan(ops, shape)?.is_some())
    }

    /// Attention through cuDNN's plan for `shape`; `false` when there is none (refused shape,
    /// or addresses not 16-byte aligned), so the next backend runs it.
    fn run(&self, ops: &GpuOps, shape: &AttentionShape, q: u64, o: u64) -> Result<bool> {
        let Some(plan) = self.plan(ops, shape)? else {
            return Ok(false);
        };
        if !q.is_multiple_of(16) || !o.is_multiple_of(16) {
            return Ok(false);
        }
        let ws = {
            let w = self.workspace.borrow();
            match (&w.mem, plan.workspace) {
                (_, 0) => 0,
                (Some(m), _) => m.device_ptr(ops.stream()).0,
                (None, _) => return Err(ops.err("cuDNN workspace missing")),
            }
        };
        let st = self.state.borrow();
        let handle = st
            .handle
            .as_ref()
            .ok_or_else(|| ops.err("cuDNN handle missing"))?;
        // SAFETY: q and o were checked to hold the shape's extents in this arena's buffers,
        // 16-byte aligned; the workspace holds plan.workspace bytes; the context is bound.
        unsafe { plan.execute(handle, q, o, ws) }.map_err(|e| ops.err(e))?;
        Ok(true)
    }
}
