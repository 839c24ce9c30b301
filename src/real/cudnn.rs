//! cuDNN fused flash attention (SDPA forward) through the backend graph API: the library
//! found and versioned at run time, the operation graph described as plain data, and a small
//! safe wrapper that turns that description into backend descriptors, an execution plan and a
//! call.
//!
//! The graph is the one cuDNN's own frontend lowers its SDPA node to for cuDNN 9 (no mask, no
//! dropout, inference): `S = Q . K^T` (a matmul), `S * scale` (pointwise, the scale passed by
//! value), the softmax as `max` (reduction), `sub`, `exp` (pointwise), `sum` (reduction), the
//! statistics `log(sum) + max` (virtual), `exp / sum` (pointwise, bf16), then `O = P . V`. The
//! runtime-fusion engine recognises the pattern and runs it as one flash-attention kernel: the
//! score matrix never reaches memory.
//!
//! What is data ([`SdpaShape`] -> [`SdpaGraph`]: dims, strides, types, unique ids, the op
//! list) is built and tested on any machine; what needs the library ([`Library`],
//! [`SdpaPlan`]) is only reached after [`probe`] found it. The strides are those of our q/k/v
//! layout ([`Ops::attention`](super::ops::Ops::attention)): head `h` of token `t` at element
//! `t * ld + h * head_dim` of its block, K `cols` elements after Q, V `2 cols` after; the
//! output at `t * ldo + h * head_dim`. No copy or transpose is made: K^T is K's tensor with its
//! last two dims and strides swapped.
//!
//! Versions: the composite graph needs cuDNN 9.0 or newer (8.9.x also ran flash attention
//! fprop, but needed an extra column mask when the key count is not a multiple of 64, which
//! this graph does not build; `libcudnn.so.8` is also not among the names searched). Head dim
//! must be a multiple of 8 and at most 128 here (cuDNN 9.18's support matrix allows 256 on
//! Hopper; 128 is all the models need). A refusal at any step (finalize, heuristics, no engine
//! config that finalizes) is an error string the caller turns into a fallback.

use std::ffi::c_void;

use crate::real::ops::AttentionShape;

use cudarc::cudnn::sys::{
    self, cudnnBackendAttributeName_t as Attr, cudnnBackendAttributeType_t as Ty,
    cudnnBackendDescriptorType_t as Desc, cudnnDataType_t, cudnnStatus_t,
};

/// The environment variable that points the loader at one cuDNN library file, or turns cuDNN
/// off (`off`); unset: the usual names on the library path.
pub const CUDNN_ENV: &str = "TETRISERVE_CUDNN";

/// The oldest cuDNN the graph is built for.
pub const MIN_VERSION: Version = Version {
    major: 9,
    minor: 0,
    patch: 0,
};

/// A cuDNN version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// Decodes `cudnnGetVersion()`: `major * 10000 + minor * 100 + patch` since 9.0,
    /// `major * 1000 + minor * 100 + patch` before.
    pub fn from_raw(raw: usize) -> Version {
        let raw = raw as u32;
        if raw >= 90_000 {
            Version {
                major: raw / 10_000,
                minor: raw / 100 % 100,
                patch: raw % 100,
            }
        } else {
            Version {
                major: raw / 1000,
                minor: raw / 100 % 10,
                patch: raw % 100,
            }
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What the probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Turned off by `TETRISERVE_CUDNN=off`.
    Off,
    /// No library could be opened; the names tried.
    Absent { tried: Vec<String> },
    /// Opened, but older than [`MIN_VERSION`].
    TooOld { version: Version, path: String },
    /// Opened and recent enough.
    Ready { version: Version, path: String },
}

impl Status {
    /// One line for people, e.g. for the fallback notice.
    pub fn describe(&self) -> String {
        match self {
            Status::Off => format!("cuDNN turned off ({CUDNN_ENV}=off)"),
            Status::Absent { tried } => format!(
                "cuDNN not found (tried {}; add its lib folder to LD_LIBRARY_PATH, `pip install nvidia-cudnn-cu13`, or set {CUDNN_ENV}=/path/to/libcudnn.so.9)",
                tried.join(", ")
            ),
            Status::TooOld { version, path } => format!(
                "cuDNN {version} at {path} is older than {MIN_VERSION}, which the fused attention graph needs"
            ),
            Status::Ready { version, path } => format!("cuDNN {version} ({path})"),
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Status::Ready { .. })
    }
}

/// The library names to try for a value of [`CUDNN_ENV`] (`None`: unset): the given path
/// alone, or cudarc's candidate names (which include `libcudnn.so.9`). `None` for `off`.
pub fn candidates(env: Option<&str>) -> Option<Vec<String>> {
    match env.map(str::trim) {
        Some("off") | Some("0") | Some("none") => None,
        Some(p) if !p.is_empty() => Some(vec![p.to_string()]),
        _ => Some(cudarc::get_lib_name_candidates("cudnn")),
    }
}

/// Opens the first library among `names` that loads and reads its version (no GPU needed).
/// The opened library stays loaded for the life of the process, so that cudarc's own loader,
/// which opens `libcudnn.so.9` by name, finds the same one.
pub fn probe_names(names: &[String]) -> Status {
    for name in names {
        // SAFETY: loading cuDNN runs its initialisers, which only register its engines.
        let Ok(lib) = (unsafe { libloading::Library::new(name) }) else {
            continue;
        };
        // SAFETY: cudnnGetVersion takes nothing and returns size_t in every cuDNN.
        let version = unsafe {
            match lib.get::<unsafe extern "C" fn() -> usize>(b"cudnnGetVersion\0") {
                Ok(f) => Version::from_raw(f()),
                Err(_) => continue,
            }
        };
        std::mem::forget(lib);
        let path = name.clone();
        return if version >= MIN_VERSION {
            Status::Ready { version, path }
        } else {
            Status::TooOld { version, path }
        };
    }
    Status::Absent {
        tried: names.to_vec(),
    }
}

/// Finds cuDNN as [`CUDNN_ENV`] says (see [`candidates`]). Cached: the answer of the first
/// call holds for the process.
pub fn probe() -> Status {
    static STATUS: std::sync::OnceLock<Status> = std::sync::OnceLock::new();
    STATUS
        .get_or_init(|| {
            let env = std::env::var(CUDNN_ENV).ok();
            match candidates(env.as_deref()) {
                None => Status::Off,
                Some(names) => probe_names(&names),
            }
        })
        .clone()
}

/// The attention problem of one call of [`Ops::attention`](super::ops::Ops::attention) (one
/// batch item), as the graph is built for it.
pub type SdpaShape = AttentionShape;

impl SdpaShape {
    /// Why cuDNN's flash attention cannot take this shape, if it cannot (checked before any
    /// library call, so that a refusal is explained).
    pub fn refusal(&self) -> Option<String> {
        let s = self;
        if s.tokens == 0 || s.heads == 0 {
            return Some("an empty attention".into());
        }
        if !s.head_dim.is_multiple_of(8) || s.head_dim > 128 {
            return Some(format!(
                "head dim {} (cuDNN's flash attention here takes multiples of 8 up to 128)",
                s.head_dim
            ));
        }
        // Every row of Q, K, V, O must start 16-byte aligned (8 bf16 values).
        for (what, v) in [
            ("row stride", s.ld),
            ("output stride", s.ldo),
            ("q/k/v block", s.cols),
        ] {
            if !v.is_multiple_of(8) {
                return Some(format!(
                    "{what} {v} is not a multiple of 8 values (16-byte alignment)"
                ));
            }
        }
        if s.heads * s.head_dim > s.cols {
            return Some(format!(
                "{} heads of {} do not fit q/k/v blocks of {} columns",
                s.heads, s.head_dim, s.cols
            ));
        }
        None
    }
}

/// Element types of the graph's tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    Bf16,
    F32,
}

/// One tensor of the graph. Virtual tensors live only inside the fused kernel; a by-value one
/// is a host scalar passed with the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub uid: i64,
    pub name: &'static str,
    pub dims: [i64; 4],
    pub strides: [i64; 4],
    pub dtype: DType,
    pub is_virtual: bool,
    pub by_value: bool,
}

/// Pointwise modes the graph uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pointwise {
    Mul,
    Sub,
    Exp,
    Log,
    Add,
    Div,
}

/// Reductions the graph uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    Max,
    Add,
}

/// One operation: tensor uids in, one out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpSpec {
    Matmul {
        a: i64,
        b: i64,
        c: i64,
    },
    Pointwise {
        mode: Pointwise,
        x: i64,
        b: Option<i64>,
        y: i64,
    },
    Reduction {
        mode: Reduce,
        x: i64,
        y: i64,
    },
}

/// The SDPA forward graph of one shape, as data.
#[derive(Clone, Debug, PartialEq)]
pub struct SdpaGraph {
    pub shape: SdpaShape,
    pub tensors: Vec<TensorSpec>,
    pub ops: Vec<OpSpec>,
    /// `1 / sqrt(head_dim)`, passed by value as tensor [`uid::SCALE`].
    pub scale: f32,
}

/// Unique ids of the graph's tensors: the four in memory and the scale are the ones a call
/// passes; the others are virtual.
pub mod uid {
    pub const Q: i64 = 1;
    pub const K: i64 = 2;
    pub const V: i64 = 3;
    pub const O: i64 = 4;
    pub const SCALE: i64 = 5;
    pub const S: i64 = 100;
    pub const S_SCALED: i64 = 101;
    pub const MAX: i64 = 102;
    pub const SUB: i64 = 103;
    pub const EXP: i64 = 104;
    pub const SUM: i64 = 105;
    pub const LOG: i64 = 106;
    pub const STATS: i64 = 107;
    pub const P: i64 = 108;
}

/// Builds the graph for `shape` (see the module docs); `Err` with the reason for a shape
/// cuDNN's flash attention cannot take.
pub fn sdpa_graph(shape: SdpaShape) -> Result<SdpaGraph, String> {
    if let Some(why) = shape.refusal() {
        return Err(why);
    }
    let (n, h, d) = (
        shape.tokens as i64,
        shape.heads as i64,
        shape.head_dim as i64,
    );
    let (ld, ldo) = (shape.ld as i64, shape.ldo as i64);
    let t = |uid, name, dims, strides, dtype, is_virtual| TensorSpec {
        uid,
        name,
        dims,
        strides,
        dtype,
        is_virtual,
        by_value: false,
    };
    // [batch 1, heads, tokens, head_dim]: head h is `d` columns further, a token `ld` further.
    let bhsd = [1, h, n, d];
    let qkv_strides = [n * ld, d, ld, 1];
    let scores = [1, h, n, n];
    let scores_strides = [h * n * n, n * n, n, 1];
    let rows = [1, h, n, 1];
    let rows_strides = [h * n, n, 1, 1];
    use DType::{Bf16, F32};
    let tensors = vec![
        t(uid::Q, "Q", bhsd, qkv_strides, Bf16, false),
        // K^T: K's tensor with the last two dims (and strides) swapped.
        t(uid::K, "K^T", [1, h, d, n], [n * ld, d, 1, ld], Bf16, false),
        t(uid::V, "V", bhsd, qkv_strides, Bf16, false),
        t(uid::O, "O", bhsd, [n * ldo, d, ldo, 1], Bf16, false),
        TensorSpec {
            by_value: true,
            ..t(uid::SCALE, "scale", [1; 4], [1; 4], F32, false)
        },
        t(uid::S, "S", scores, scores_strides, F32, true),
        t(uid::S_SCALED, "S*scale", scores, scores_strides, F32, true),
        t(uid::MAX, "max", rows, rows_strides, F32, true),
        t(uid::SUB, "S-max", scores, scores_strides, F32, true),
        t(uid::EXP, "exp", scores, scores_strides, F32, true),
        t(uid::SUM, "sum", rows, rows_strides, F32, true),
        t(uid::LOG, "log(sum)", rows, rows_strides, F32, true),
        t(uid::STATS, "stats", rows, rows_strides, F32, true),
        // The probabilities enter the second matmul in the I/O type.
        t(uid::P, "P", scores, scores_strides, Bf16, true),
    ];
    use OpSpec::{Matmul, Pointwise as Pw, Reduction};
    let ops = vec![
        Matmul {
            a: uid::Q,
            b: uid::K,
            c: uid::S,
        },
        Pw {
            mode: Pointwise::Mul,
            x: uid::S,
            b: Some(uid::SCALE),
            y: uid::S_SCALED,
        },
        Reduction {
            mode: Reduce::Max,
            x: uid::S_SCALED,
            y: uid::MAX,
        },
        Pw {
            mode: Pointwise::Sub,
            x: uid::S_SCALED,
            b: Some(uid::MAX),
            y: uid::SUB,
        },
        Pw {
            mode: Pointwise::Exp,
            x: uid::SUB,
            b: None,
            y: uid::EXP,
        },
        Reduction {
            mode: Reduce::Add,
            x: uid::EXP,
            y: uid::SUM,
        },
        Pw {
            mode: Pointwise::Log,
            x: uid::SUM,
            b: None,
            y: uid::LOG,
        },
        Pw {
            mode: Pointwise::Add,
            x: uid::MAX,
            b: Some(uid::LOG),
            y: uid::STATS,
        },
        Pw {
            mode: Pointwise::Div,
            x: uid::EXP,
            b: Some(uid::SUM),
            y: uid::P,
        },
        Matmul {
            a: uid::P,
            b: uid::V,
            c: uid::O,
        },
    ];
    Ok(SdpaGraph {
        shape,
        tensors,
        ops,
        scale: 1.0 / (shape.head_dim as f32).sqrt(),
    })
}

impl SdpaGraph {
    pub fn tensor(&self, uid: i64) -> Option<&TensorSpec> {
        self.tensors.iter().find(|t| t.uid == uid)
    }

    /// Element offsets of Q, K, V from the q/k/v base pointer.
    pub fn offsets(&self) -> [(i64, usize); 3] {
        let c = self.shape.cols;
        [(uid::Q, 0), (uid::K, c), (uid::V, 2 * c)]
    }
}

// ---------------------------------------------------------------------------------------------
// The FFI side: reached only after `probe` returned `Ready`.

/// A cuDNN status as an error string.
fn check(status: cudnnStatus_t, what: &str) -> Result<(), String> {
    if status == cudnnStatus_t::CUDNN_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(format!("cuDNN {what}: {status:?}"))
    }
}

/// A backend descriptor, destroyed on drop.
struct Descriptor(sys::cudnnBackendDescriptor_t);

impl Descriptor {
    fn new(kind: Desc) -> Result<Descriptor, String> {
        let mut d = std::ptr::null_mut();
        // SAFETY: creates a descriptor into `d`.
        check(
            unsafe { sys::cudnnBackendCreateDescriptor(kind, &mut d) },
            &format!("creating {kind:?}"),
        )?;
        Ok(Descriptor(d))
    }

    /// Sets an attribute to `values` (an array of `n` elements of type `ty`).
    fn set<T>(&self, attr: Attr, ty: Ty, values: &[T]) -> Result<(), String> {
        // SAFETY: `values` holds `values.len()` elements of the C type `ty` names (the callers
        // pair them: i64 with INT64, repr(C) enums with their enum types, descriptors with
        // BACKEND_DESCRIPTOR, bool with BOOLEAN).
        check(
            unsafe {
                sys::cudnnBackendSetAttribute(
                    self.0,
                    attr,
                    ty,
                    values.len() as i64,
                    values.as_ptr() as *const c_void,
                )
            },
            &format!("setting {attr:?}"),
        )
    }

    fn finalize(&self, what: &str) -> Result<(), String> {
        // SAFETY: a live descriptor.
        check(
            unsafe { sys::cudnnBackendFinalize(self.0) },
            &format!("finalizing {what}"),
        )
    }
}

impl Drop for Descriptor {
    fn drop(&mut self) {
        // SAFETY: created by cudnnBackendCreateDescriptor, destroyed once.
        unsafe {
            sys::cudnnBackendDestroyDescriptor(self.0);
        }
    }
}

/// A cuDNN handle bound to one CUDA stream.
pub struct Handle(sys::cudnnHandle_t);

impl Handle {
    /// A handle whose work goes to `stream` (a `CUstream`). The stream's context must be
    /// current on this thread.
    pub fn new(stream: cudarc::driver::sys::CUstream) -> Result<Handle, String> {
        let mut h = std::ptr::null_mut();
        // SAFETY: creates a handle into `h`; then binds it to a live stream.
        unsafe {
            check(sys::cudnnCreate(&mut h), "creating a handle")?;
            let handle = Handle(h);
            check(
                sys::cudnnSetStream(h, stream as sys::cudaStream_t),
                "binding the handle to a stream",
            )?;
            Ok(handle)
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreate, destroyed once.
        unsafe {
            sys::cudnnDestroy(self.0);
        }
    }
}

fn data_type(t: DType) -> cudnnDataType_t {
    match t {
        DType::Bf16 => cudnnDataType_t::CUDNN_DATA_BFLOAT16,
        DType::F32 => cudnnDataType_t::CUDNN_DATA_FLOAT,
    }
}

/// The finalized tensor and operation descriptors of a graph (everything before the
/// operation graph, which needs a handle and so a GPU). Kept together because the operations
/// point at the tensors.
struct Operations {
    tensors: std::collections::HashMap<i64, Descriptor>,
    ops: Vec<Descriptor>,
    keep: Vec<Descriptor>,
}

impl Operations {
    fn build(graph: &SdpaGraph) -> Result<Operations, String> {
        let mut keep = Vec::new();
        let mut tensors = std::collections::HashMap::new();
        for t in &graph.tensors {
            let d = Descriptor::new(Desc::CUDNN_BACKEND_TENSOR_DESCRIPTOR)?;
            d.set(
                Attr::CUDNN_ATTR_TENSOR_DATA_TYPE,
                Ty::CUDNN_TYPE_DATA_TYPE,
                &[data_type(t.dtype)],
            )?;
            d.set(
                Attr::CUDNN_ATTR_TENSOR_DIMENSIONS,
                Ty::CUDNN_TYPE_INT64,
                &t.dims,
            )?;
            d.set(
                Attr::CUDNN_ATTR_TENSOR_STRIDES,
                Ty::CUDNN_TYPE_INT64,
                &t.strides,
            )?;
            d.set(
                Attr::CUDNN_ATTR_TENSOR_UNIQUE_ID,
                Ty::CUDNN_TYPE_INT64,
                &[t.uid],
            )?;
            d.set(
                Attr::CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT,
                Ty::CUDNN_TYPE_INT64,
                &[16i64],
            )?;
            d.set(
                Attr::CUDNN_ATTR_TENSOR_IS_VIRTUAL,
                Ty::CUDNN_TYPE_BOOLEAN,
                &[t.is_virtual],
            )?;
            if t.by_value {
                d.set(
                    Attr::CUDNN_ATTR_TENSOR_IS_BY_VALUE,
                    Ty::CUDNN_TYPE_BOOLEAN,
                    &[true],
                )?;
            }
            d.finalize(t.name)?;
            tensors.insert(t.uid, d);
        }
        let td = |uid: i64| -> Result<sys::cudnnBackendDescriptor_t, String> {
            tensors
                .get(&uid)
                .map(|d| d.0)
                .ok_or_else(|| format!("tensor {uid} missing from the graph"))
        };
        let comp = [cudnnDataType_t::CUDNN_DATA_FLOAT];
        let mut ops = Vec::new();
        for op in &graph.ops {
            match *op {
                OpSpec::Matmul { a, b, c } => {
                    let m = Descriptor::new(Desc::CUDNN_BACKEND_MATMUL_DESCRIPTOR)?;
                    m.set(
                        Attr::CUDNN_ATTR_MATMUL_COMP_TYPE,
                        Ty::CUDNN_TYPE_DATA_TYPE,
                        &comp,
                    )?;
                    m.finalize("a matmul")?;
                    let o = Descriptor::new(Desc::CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR)?;
                    let bd = Ty::CUDNN_TYPE_BACKEND_DESCRIPTOR;
                    o.set(Attr::CUDNN_ATTR_OPERATION_MATMUL_ADESC, bd, &[td(a)?])?;
                    o.set(Attr::CUDNN_ATTR_OPERATION_MATMUL_BDESC, bd, &[td(b)?])?;
                    o.set(Attr::CUDNN_ATTR_OPERATION_MATMUL_CDESC, bd, &[td(c)?])?;
                    o.set(Attr::CUDNN_ATTR_OPERATION_MATMUL_DESC, bd, &[m.0])?;
                    o.finalize("a matmul operation")?;
                    keep.push(m);
                    ops.push(o);
                }
                OpSpec::Pointwise { mode, x, b, y } => {
                    let p = Descriptor::new(Desc::CUDNN_BACKEND_POINTWISE_DESCRIPTOR)?;
                    use sys::cudnnPointwiseMode_t as M;
                    let m = match mode {
                        Pointwise::Mul => M::CUDNN_POINTWISE_MUL,
                        Pointwise::Sub => M::CUDNN_POINTWISE_SUB,
                        Pointwise::Exp => M::CUDNN_POINTWISE_EXP,
                        Pointwise::Log => M::CUDNN_POINTWISE_LOG,
                        Pointwise::Add => M::CUDNN_POINTWISE_ADD,
                        Pointwise::Div => M::CUDNN_POINTWISE_DIV,
                    };
                    p.set(
                        Attr::CUDNN_ATTR_POINTWISE_MODE,
                        Ty::CUDNN_TYPE_POINTWISE_MODE,
                        &[m],
                    )?;
                    p.set(
                        Attr::CUDNN_ATTR_POINTWISE_MATH_PREC,
                        Ty::CUDNN_TYPE_DATA_TYPE,
                        &comp,
                    )?;
                    p.finalize("a pointwise")?;
                    let o = Descriptor::new(Desc::CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR)?;
                    let bd = Ty::CUDNN_TYPE_BACKEND_DESCRIPTOR;
                    o.set(
                        Attr::CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR,
                        bd,
                        &[p.0],
                    )?;
                    o.set(Attr::CUDNN_ATTR_OPERATION_POINTWISE_XDESC, bd, &[td(x)?])?;
                    if let Some(b) = b {
                        o.set(Attr::CUDNN_ATTR_OPERATION_POINTWISE_BDESC, bd, &[td(b)?])?;
                    }
                    o.set(Attr::CUDNN_ATTR_OPERATION_POINTWISE_YDESC, bd, &[td(y)?])?;
                    o.finalize("a pointwise operation")?;
                    keep.push(p);
                    ops.push(o);
                }
                OpSpec::Reduction { mode, x, y } => {
                    let r = Descriptor::new(Desc::CUDNN_BACKEND_REDUCTION_DESCRIPTOR)?;
                    use sys::cudnnReduceTensorOp_t as R;
                    let m = match mode {
                        Reduce::Max => R::CUDNN_REDUCE_TENSOR_MAX,
                        Reduce::Add => R::CUDNN_REDUCE_TENSOR_ADD,
                    };
                    r.set(
                        Attr::CUDNN_ATTR_REDUCTION_OPERATOR,
                        Ty::CUDNN_TYPE_REDUCTION_OPERATOR_TYPE,
                        &[m],
                    )?;
                    r.set(
                        Attr::CUDNN_ATTR_REDUCTION_COMP_TYPE,
                        Ty::CUDNN_TYPE_DATA_TYPE,
                        &comp,
                    )?;
                    r.finalize("a reduction")?;
                    let o = Descriptor::new(Desc::CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR)?;
                    let bd = Ty::CUDNN_TYPE_BACKEND_DESCRIPTOR;
                    o.set(Attr::CUDNN_ATTR_OPERATION_REDUCTION_XDESC, bd, &[td(x)?])?;
                    o.set(Attr::CUDNN_ATTR_OPERATION_REDUCTION_YDESC, bd, &[td(y)?])?;
                    o.set(Attr::CUDNN_ATTR_OPERATION_REDUCTION_DESC, bd, &[r.0])?;
                    o.finalize("a reduction operation")?;
                    keep.push(r);
                    ops.push(o);
                }
            }
        }
        Ok(Operations { tensors, ops, keep })
    }
}

/// A finalized execution plan for one shape, with every descriptor it was built from kept
/// alive, and the workspace it needs.
pub struct SdpaPlan {
    pub graph: SdpaGraph,
    pub workspace: usize,
    /// The engine's index among the heuristics' answers (0: the first choice).
    pub engine: usize,
    plan: Descriptor,
    _keep: Vec<Descriptor>,
}

impl SdpaPlan {
    /// Builds and finalizes the plan: tensors, operations, the operation graph, heuristics
    /// (mode A), then the first engine configuration that finalizes. Done at workspace
    /// creation, never in a timed step.
    pub fn build(handle: &Handle, graph: SdpaGraph) -> Result<SdpaPlan, String> {
        let Operations {
            tensors,
            ops,
            mut keep,
        } = Operations::build(&graph)?;
        let og = Descriptor::new(Desc::CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR)?;
        og.set(
            Attr::CUDNN_ATTR_OPERATIONGRAPH_HANDLE,
            Ty::CUDNN_TYPE_HANDLE,
            &[handle.0],
        )?;
        let op_ptrs: Vec<_> = ops.iter().map(|o| o.0).collect();
        og.set(
            Attr::CUDNN_ATTR_OPERATIONGRAPH_OPS,
            Ty::CUDNN_TYPE_BACKEND_DESCRIPTOR,
            &op_ptrs,
        )?;
        og.finalize("the operation graph")?;

        let heur = Descriptor::new(Desc::CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR)?;
        heur.set(
            Attr::CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH,
            Ty::CUDNN_TYPE_BACKEND_DESCRIPTOR,
            &[og.0],
        )?;
        heur.set(
            Attr::CUDNN_ATTR_ENGINEHEUR_MODE,
            Ty::CUDNN_TYPE_HEUR_MODE,
            &[sys::cudnnBackendHeurMode_t::CUDNN_HEUR_MODE_A],
        )?;
        heur.finalize("the heuristics")?;
        let mut count = 0i64;
        // SAFETY: asks for the number of results only (no array).
        check(
            unsafe {
                sys::cudnnBackendGetAttribute(
                    heur.0,
                    Attr::CUDNN_ATTR_ENGINEHEUR_RESULTS,
                    Ty::CUDNN_TYPE_BACKEND_DESCRIPTOR,
                    0,
                    &mut count,
                    std::ptr::null_mut(),
                )
            },
            "counting the heuristics' engine configurations",
        )?;
        if count <= 0 {
            return Err("cuDNN's heuristics offer no engine for this graph".into());
        }
        let configs: Vec<Descriptor> = (0..count)
            .map(|_| Descriptor::new(Desc::CUDNN_BACKEND_ENGINECFG_DESCRIPTOR))
            .collect::<Result<_, _>>()?;
        let mut raw: Vec<_> = configs.iter().map(|c| c.0).collect();
        let mut got = 0i64;
        // SAFETY: `raw` holds `count` created engine-config descriptors for cuDNN to fill.
        check(
            unsafe {
                sys::cudnnBackendGetAttribute(
                    heur.0,
                    Attr::CUDNN_ATTR_ENGINEHEUR_RESULTS,
                    Ty::CUDNN_TYPE_BACKEND_DESCRIPTOR,
                    count,
                    &mut got,
                    raw.as_mut_ptr() as *mut c_void,
                )
            },
            "reading the heuristics' engine configurations",
        )?;
        let mut last = String::from("no engine configuration finalized");
        for (i, cfg) in configs.iter().enumerate().take(got.max(0) as usize) {
            let plan = Descriptor::new(Desc::CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR)?;
            plan.set(
                Attr::CUDNN_ATTR_EXECUTION_PLAN_HANDLE,
                Ty::CUDNN_TYPE_HANDLE,
                &[handle.0],
            )?;
            plan.set(
                Attr::CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                Ty::CUDNN_TYPE_BACKEND_DESCRIPTOR,
                &[cfg.0],
            )?;
            if let Err(e) = plan.finalize("an execution plan") {
                last = e;
                continue;
            }
            let mut ws = 0i64;
            let mut n = 0i64;
            // SAFETY: reads one int64 into `ws`.
            check(
                unsafe {
                    sys::cudnnBackendGetAttribute(
                        plan.0,
                        Attr::CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                        Ty::CUDNN_TYPE_INT64,
                        1,
                        &mut n,
                        (&mut ws) as *mut i64 as *mut c_void,
                    )
                },
                "reading the workspace size",
            )?;
            keep.extend(tensors.into_values());
            keep.extend(ops);
            keep.push(og);
            keep.push(heur);
            keep.extend(configs);
            return Ok(SdpaPlan {
                graph,
                workspace: ws.max(0) as usize,
                engine: i,
                plan,
                _keep: keep,
            });
        }
        Err(last)
    }

    /// Queues the attention on the handle's stream: `qkv` is the device address of Q (K and V
    /// follow at the graph's offsets), `out` of O, `workspace` at least
    /// [`workspace`](Self::workspace) bytes (or 0 when it is 0).
    ///
    /// # Safety
    /// The addresses must hold the shape's extents on the handle's device, 16-byte aligned,
    /// and the handle's context must be current.
    pub unsafe fn execute(
        &self,
        handle: &Handle,
        qkv: u64,
        out: u64,
        workspace: u64,
    ) -> Result<(), String> {
        let mut scale = self.graph.scale;
        let bf16 = 2u64;
        let mut uids = Vec::with_capacity(5);
        let mut ptrs: Vec<*mut c_void> = Vec::with_capacity(5);
        for (uid, off) in self.graph.offsets() {
            uids.push(uid);
            ptrs.push((qkv + bf16 * off as u64) as *mut c_void);
        }
        uids.push(uid::O);
        ptrs.push(out as *mut c_void);
        uids.push(uid::SCALE);
        ptrs.push((&mut scale) as *mut f32 as *mut c_void);
        let pack = Descriptor::new(Desc::CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR)?;
        pack.set(
            Attr::CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS,
            Ty::CUDNN_TYPE_INT64,
            &uids,
        )?;
        pack.set(
            Attr::CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS,
            Ty::CUDNN_TYPE_VOID_PTR,
            &ptrs,
        )?;
        pack.set(
            Attr::CUDNN_ATTR_VARIANT_PACK_WORKSPACE,
            Ty::CUDNN_TYPE_VOID_PTR,
            &[workspace as *mut c_void],
        )?;
        pack.finalize("the variant pack")?;
        // SAFETY: the caller vouches for the addresses; `scale` outlives the call, which reads
        // by-value scalars before it returns.
        check(
            unsafe { sys::cudnnBackendExecute(handle.0, self.plan.0, pack.0) },
            "running the attention plan",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flux(tokens: usize) -> SdpaShape {
        // FLUX.1-dev, one rank: q/k/v of a double block (ld 3H) or a single one (3H + M).
        SdpaShape {
            tokens,
            heads: 24,
            head_dim: 128,
            ld: 3 * 3072,
            ldo: 3072,
            cols: 3072,
        }
    }

    #[test]
    fn versions_decode_both_schemes() {
        assert_eq!(Version::from_raw(91900).to_string(), "9.19.0");
        assert_eq!(Version::from_raw(90100).to_string(), "9.1.0");
        assert_eq!(Version::from_raw(8906).to_string(), "8.9.6");
        assert!(Version::from_raw(8906) < MIN_VERSION);
        assert!(Version::from_raw(90000) >= MIN_VERSION);
    }

    #[test]
    fn descriptors_follow_our_layout_for_ragged_token_counts() {
        for n in [128usize, 1137, 4608] {
            let g = sdpa_graph(flux(n)).unwrap();
            let (n, ld) = (n as i64, 9216i64);
            let q = g.tensor(uid::Q).unwrap();
            assert_eq!(q.dims, [1, 24, n, 128]);
            // Head h starts 128 columns further, token t one row (ld) further.
            assert_eq!(q.strides, [n * ld, 128, ld, 1]);
            let k = g.tensor(uid::K).unwrap();
            assert_eq!(k.dims, [1, 24, 128, n], "K enters transposed");
            assert_eq!(k.strides, [n * ld, 128, 1, ld]);
            assert_eq!(g.tensor(uid::V).unwrap().strides, q.strides);
            let o = g.tensor(uid::O).unwrap();
            assert_eq!(o.strides, [n * 3072, 128, 3072, 1]);
            assert_eq!(g.offsets(), [(uid::Q, 0), (uid::K, 3072), (uid::V, 6144)]);
            // Element (h, t, i) of Q by the strides is the element our layout puts there.
            let (h, t, i) = (23i64, n - 1, 127i64);
            let at = |s: [i64; 4]| h * s[1] + t * s[2] + i * s[3];
            assert_eq!(at(q.strides), t * ld + h * 128 + i);
            assert_eq!(at(o.strides), t * 3072 + h * 128 + i);
            // The scores and softmax rows live only inside the kernel.
            for u in [uid::S, uid::S_SCALED, uid::SUB, uid::EXP, uid::P] {
                let s = g.tensor(u).unwrap();
                assert!(s.is_virtual && s.dims == [1, 24, n, n], "{}", s.name);
                assert_eq!(s.strides, [24 * n * n, n * n, n, 1]);
            }
            for u in [uid::MAX, uid::SUM, uid::STATS] {
                assert_eq!(g.tensor(u).unwrap().dims, [1, 24, n, 1]);
            }
            assert_eq!(g.tensor(uid::P).unwrap().dtype, DType::Bf16);
            assert!(g.tensor(uid::SCALE).unwrap().by_value);
            assert!((g.scale - 1.0 / 128f32.sqrt()).abs() < 1e-9);
        }
    }

    #[test]
    fn every_op_reads_tensors_written_before_it() {
        let g = sdpa_graph(flux(1137)).unwrap();
        let mut known: Vec<i64> = g
            .tensors
            .iter()
            .filter(|t| !t.is_virtual)
            .map(|t| t.uid)
            .collect();
        for op in &g.ops {
            let (ins, out) = match *op {
                OpSpec::Matmul { a, b, c } => (vec![a, b], c),
                OpSpec::Pointwise { x, b, y, .. } => (std::iter::once(x).chain(b).collect(), y),
                OpSpec::Reduction { x, y, .. } => (vec![x], y),
            };
            for i in ins {
                assert!(known.contains(&i), "{op:?} reads {i} before it is written");
            }
            assert!(g.tensor(out).is_some());
            known.push(out);
        }
        assert_eq!(g.ops.len(), 10);
        assert!(matches!(
            g.ops.last(),
            Some(OpSpec::Matmul { c: uid::O, .. })
        ));
        // Every virtual tensor is written by exactly one op.
        for t in g.tensors.iter().filter(|t| t.is_virtual) {
            let writers = g
                .ops
                .iter()
                .filter(|op| match **op {
                    OpSpec::Matmul { c, .. } => c == t.uid,
                    OpSpec::Pointwise { y, .. } | OpSpec::Reduction { y, .. } => y == t.uid,
                })
                .count();
            assert_eq!(writers, 1, "{}", t.name);
        }
    }

    #[test]
    fn shapes_cudnn_cannot_take_are_refused_with_the_reason() {
        let tiny = SdpaShape {
            head_dim: 4,
            ..flux(20)
        };
        assert!(sdpa_graph(tiny).unwrap_err().contains("head dim 4"));
        let wide = SdpaShape {
            head_dim: 256,
            ..flux(20)
        };
        assert!(sdpa_graph(wide).unwrap_err().contains("up to 128"));
        let odd = SdpaShape {
            ld: 3 * 3072 + 4,
            ..flux(20)
        };
        assert!(sdpa_graph(odd).unwrap_err().contains("16-byte"));
        let crowded = SdpaShape {
            cols: 1024,
            ..flux(20)
        };
        assert!(sdpa_graph(crowded).unwrap_err().contains("do not fit"));
        // The Ulysses head shard of a 4-way group: 6 heads, blocks of 768 columns.
        let shard = SdpaShape {
            tokens: 1137,
            heads: 6,
            head_dim: 128,
            ld: 3 * 768,
            ldo: 768,
            cols: 768,
        };
        assert!(sdpa_graph(shard).is_ok());
    }

    #[test]
    fn the_loader_reports_what_it_tried() {
        assert_eq!(candidates(Some("off")), None);
        assert_eq!(
            candidates(Some("/path/to/libcudnn.so.9")),
            Some(vec!["/path/to/libcudnn.so.9".to_string()])
        );
        let default = candidates(None).unwrap();
        assert!(default.iter().any(|n| n == "libcudnn.so.9"), "{default:?}");
        let missing = "/nonexistent/tetriserve/libcudnn.so.9".to_string();
        let status = probe_names(std::slice::from_ref(&missing));
        assert_eq!(
            status,
            Status::Absent {
                tried: vec![missing.clone()]
            }
        );
        assert!(status.describe().contains(&missing));
        assert!(status.describe().contains("LD_LIBRARY_PATH"));
    }

    /// Opens the library a machine has (`TETRISERVE_CUDNN`, else the usual names) and reads
    /// its version: no GPU needed. `pip install nvidia-cudnn-cu13` and its lib folder on
    /// LD_LIBRARY_PATH (or TETRISERVE_CUDNN pointing at libcudnn.so.9) make it run here;
    /// TETRISERVE_REQUIRE_CUDNN=1 makes a missing library a failure instead of a skip.
    #[test]
    fn a_present_library_opens_and_reads_its_version() {
        let env = std::env::var(CUDNN_ENV).ok();
        let Some(names) = candidates(env.as_deref()) else {
            return;
        };
        match probe_names(&names) {
            Status::Ready { version, path } => {
                assert!(
                    version >= MIN_VERSION && version.major < 100,
                    "{version} at {path}"
                );
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "real::cudnn: found cuDNN {version} at {path}"
                );
            }
            other => {
                assert!(
                    std::env::var_os("TETRISERVE_REQUIRE_CUDNN").is_none(),
                    "cuDNN is required but: {}",
                    other.describe()
                );
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED real::cudnn::a_present_library_opens_and_reads_its_version: {}",
                    other.describe()
                );
            }
        }
    }

    /// With cuDNN present (no GPU needed), every tensor, matmul, pointwise and reduction
    /// descriptor of the graph finalizes: the attribute types and values are ones cuDNN takes.
    /// Only the operation graph onwards needs a device handle.
    #[test]
    fn the_graph_descriptors_finalize_in_a_real_cudnn() {
        let env = std::env::var(CUDNN_ENV).ok();
        let Some(names) = candidates(env.as_deref()) else {
            return;
        };
        if !probe_names(&names).is_ready() {
            return;
        }
        // cuDNN loads its engine libraries at the first finalize, and one of them links
        // libcuda.so.1 (the driver): a machine without a driver cannot go further.
        // SAFETY: only tries to dlopen the driver library.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED real::cudnn::the_graph_descriptors_finalize_in_a_real_cudnn: cuDNN is here but libcuda.so.1 is not (its engine library links it)"
            );
            return;
        }
        for n in [128usize, 1137, 4608] {
            let g = sdpa_graph(flux(n)).unwrap();
            let built = Operations::build(&g).unwrap_or_else(|e| panic!("N = {n}: {e}"));
            assert_eq!(built.tensors.len(), g.tensors.len());
            assert_eq!(built.ops.len(), g.ops.len());
        }
    }
}
