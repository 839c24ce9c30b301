//! Which attention a GPU runs: the backends, the one chain they fall back along, and the
//! inputs of `gpu-check`'s attention numerics.
//!
//! Three implementations of [`Ops::attention`](super::ops::Ops::attention), in order of
//! preference, one file each behind the [`GpuAttention`] trait:
//!
//! 1. [`Backend::CudnnFlash`] ([`flash`]): cuDNN's fused flash attention
//!    ([`cudnn`](super::cudnn)); the score matrix never reaches memory. Needs cuDNN 9 found at
//!    run time and a shape it takes.
//! 2. [`Backend::FusedSoftmax`] ([`fused`]): bf16 scores, one in-place softmax kernel, P.V. A
//!    third of the unfused path's scratch traffic.
//! 3. [`Backend::Unfused`] ([`unfused`]): f32 scores, the three-pass softmax into a bf16 copy,
//!    P.V: the original path, kept as the on-GPU oracle of `gpu-check`.
//!
//! The fallback chain is written once, [`Backend::fallback`]: a device takes the first backend
//! it can ([`choose`]), and on a stream ([`GpuAttentions`]) a call or shape the chosen backend
//! cannot take (a shape cuDNN refuses at plan time, unaligned addresses) runs on the next; each
//! fallback says why in one line on stderr. `TETRISERVE_ATTENTION=cudnn|fused|unfused` asks
//! for one (a request for cuDNN where it is unavailable still falls back, with the notice).
//! Adding a backend is a file, a [`Backend`] variant and its place in the chain.

pub mod flash;
pub mod fused;
pub mod unfused;

pub use self::fused::{
    Lane, SOFTMAX_CACHE, SOFTMAX_THREADS, VEC, fused_chunk, fused_mirror, padded_row,
    softmax_lanes, softmax_row_mirror,
};
pub use self::unfused::attention_chunk;
use crate::error::{Error, Result};
use crate::real::cudnn::Status;
use crate::real::gpu::GpuOps;
use crate::real::ops::AttentionShape;

/// The environment variable that picks an attention backend.
pub const ATTENTION_ENV: &str = "TETRISERVE_ATTENTION";

/// An implementation of attention on a GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    CudnnFlash,
    FusedSoftmax,
    Unfused,
}

impl Backend {
    /// Every backend, best first: the first is what a device takes when nothing is asked for.
    pub const ALL: [Backend; 3] = [Backend::CudnnFlash, Backend::FusedSoftmax, Backend::Unfused];

    /// The backend that runs what this one cannot (the fallback chain): cuDNN falls back to
    /// the fused softmax (a missing library, a refused shape, unaligned addresses); the other
    /// two take every call.
    pub fn fallback(self) -> Option<Backend> {
        match self {
            Backend::CudnnFlash => Some(Backend::FusedSoftmax),
            Backend::FusedSoftmax | Backend::Unfused => None,
        }
    }

    /// The name used in reports and in [`ATTENTION_ENV`].
    pub fn name(self) -> &'static str {
        match self {
            Backend::CudnnFlash => "cudnn",
            Backend::FusedSoftmax => "fused",
            Backend::Unfused => "unfused",
        }
    }

    /// A longer description for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Backend::CudnnFlash => "cuDNN fused flash attention",
            Backend::FusedSoftmax => "bf16 scores + fused in-place softmax",
            Backend::Unfused => "f32 scores + three-pass softmax (oracle)",
        }
    }

    /// Parses a value of [`ATTENTION_ENV`].
    pub fn parse(value: &str) -> Result<Backend> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == value.trim())
            .ok_or_else(|| {
                Error::config_hint(
                    format!("{ATTENTION_ENV}={value}: unknown attention backend"),
                    "use cudnn, fused or unfused (or unset it for the best available)",
                )
            })
    }

    /// The backend [`ATTENTION_ENV`] asks for, if set.
    pub fn requested() -> Result<Option<Backend>> {
        match std::env::var(ATTENTION_ENV) {
            Ok(v) if !v.trim().is_empty() => Backend::parse(&v).map(Some),
            _ => Ok(None),
        }
    }
}

/// The backend a device uses, and the notice to print when it is not the one preferred.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub backend: Backend,
    pub notice: Option<String>,
}

/// Chooses the attention backend from the request (`None`: the best available) and what the
/// cuDNN probe found. Only cuDNN can be missing; the other two always run.
pub fn choose(requested: Option<Backend>, cudnn: &Status) -> Choice {
    let backend = requested.unwrap_or(Backend::ALL[0]);
    // Only cuDNN needs a library found at run time; without it, the next in the chain.
    match backend.fallback() {
        Some(next) if backend == Backend::CudnnFlash && !cudnn.is_ready() => Choice {
            backend: next,
            notice: Some(fallback_notice(&cudnn.describe())),
        },
        _ => Choice {
            backend,
            notice: None,
        },
    }
}

/// The one-line stderr notice of a fall back from cuDNN to the fused softmax.
pub fn fallback_notice(why: &str) -> String {
    format!("attention: {why}; using bf16 scores + fused softmax instead")
}

/// Prints `notice` on stderr unless this process already printed it (lanes of one device, and
/// every workspace of a run, would otherwise repeat it).
pub fn notice_once(notice: &str) {
    static SEEN: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if seen.insert(notice.to_string()) {
        eprintln!("{notice}");
    }
}

/// One attention backend on one GPU stream, holding what it keeps between calls (plans,
/// grow-only scratch). Its calls get q/k/v and the output as device addresses that
/// [`Ops::attention`](super::ops::Ops::attention) checked against the arena.
pub trait GpuAttention {
    /// Whether this backend already knows it cannot take `shape` (cuDNN refused its plan), so
    /// that the shape's calls go to the next backend of the chain.
    fn refuses(&self, shape: &AttentionShape) -> bool {
        let _ = shape;
        false
    }

    /// Plans `shape` and grows the scratch its calls need, so that a step neither plans nor
    /// allocates; `false` when this backend cannot take the shape.
    fn reserve(&self, ops: &GpuOps, shape: &AttentionShape) -> Result<bool>;

    /// Queues attention of `shape` from the q/k/v rows at `q` into `o`; `false` (nothing
    /// queued) when this backend cannot take this call.
    fn run(&self, ops: &GpuOps, shape: &AttentionShape, q: u64, o: u64) -> Result<bool>;
}

/// The attention backends of one GPU stream and the one it asks for. Every call and every
/// reservation walks the fallback chain from there to the first backend that takes it: the
/// one place that chooses per call.
pub struct GpuAttentions {
    selected: Backend,
    // In the order their memory was always released: the unfused scratch, the fused scratch,
    // then cuDNN's workspace, plans and handle.
    unfused: unfused::Unfused,
    fused: fused::Fused,
    flash: flash::Flash,
}

impl GpuAttentions {
    /// The backends of a new stream, asking for `selected`.
    pub fn new(selected: Backend) -> GpuAttentions {
        GpuAttentions {
            selected,
            unfused: Default::default(),
            fused: Default::default(),
            flash: Default::default(),
        }
    }

    /// The backend asked for.
    pub fn selected(&self) -> Backend {
        self.selected
    }

    /// Asks for `backend` from now on (plans and scratch of the others are kept).
    pub fn select(&mut self, backend: Backend) {
        self.selected = backend;
    }

    fn get(&self, backend: Backend) -> &dyn GpuAttention {
        match backend {
            Backend::CudnnFlash => &self.flash,
            Backend::FusedSoftmax => &self.fused,
            Backend::Unfused => &self.unfused,
        }
    }

    /// The backend a call of `shape` runs: the one asked for unless it already refused the
    /// shape (then the next in the chain).
    pub fn backend_for(&self, shape: &AttentionShape) -> Backend {
        let mut backend = self.selected;
        while self.get(backend).refuses(shape) {
            match backend.fallback() {
                Some(next) => backend = next,
                None => break,
            }
        }
        backend
    }

    /// Reserves `shape` on the first backend of the chain that takes it.
    pub fn reserve(&self, ops: &GpuOps, shape: &AttentionShape) -> Result<()> {
        self.walk(ops, shape, |b| b.reserve(ops, shape))
    }

    /// Runs attention of `shape` on the first backend of the chain that takes the call.
    pub fn run(&self, ops: &GpuOps, shape: &AttentionShape, q: u64, o: u64) -> Result<()> {
        self.walk(ops, shape, |b| b.run(ops, shape, q, o))
    }

    /// Tries `take` on each backend of the chain from the one `shape` runs on, until one
    /// takes it.
    fn walk(
        &self,
        ops: &GpuOps,
        shape: &AttentionShape,
        mut take: impl FnMut(&dyn GpuAttention) -> Result<bool>,
    ) -> Result<()> {
        let mut backend = self.backend_for(shape);
        loop {
            if take(self.get(backend))? {
                return Ok(());
            }
            backend = backend.fallback().ok_or_else(|| {
                ops.err(format!(
                    "no attention backend takes {} tokens x {} heads of {}",
                    shape.tokens, shape.heads, shape.head_dim
                ))
            })?;
        }
    }
}

/// Token counts of `gpu-check`'s attention numerics: a multiple of 64, a ragged count, and
/// FLUX.1-dev's 1024 px sequence (4,096 image + 512 text tokens).
pub const CHECK_TOKENS: [usize; 3] = [128, 1137, 4608];

/// The shape of `gpu-check`'s attention numerics over `tokens` tokens: 2 heads of 128 (the
/// models' head dim), q/k/v blocks side by side, a contiguous output; small enough for the
/// CPU reference to take seconds at 4,608 tokens.
pub fn check_shape(tokens: usize) -> AttentionShape {
    let cols = 2 * 128;
    AttentionShape {
        tokens,
        heads: 2,
        head_dim: 128,
        ld: 3 * cols,
        ldo: cols,
        cols,
    }
}

/// Seeded q/k/v rows for a check of `shape` (`tokens x ld` values, bf16-exact): q and k in
/// [-2, 2) so that the softmax is far from uniform, v in [-1, 1).
pub fn check_inputs(shape: &AttentionShape, seed: u64) -> Vec<f32> {
    use crate::real::init::{bf16_round, uniform};
    let ld = shape.ld;
    (0..shape.tokens * ld)
        .map(|i| {
            let scale = if i % ld < 2 * shape.cols { 2.0 } else { 1.0 };
            bf16_round(uniform(seed, i as u64, scale))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::cudnn::Version;

    #[test]
    fn the_check_inputs_and_references_agree_on_the_cpu() {
        use crate::real::ops::Ops;
        for n in [128, 1137] {
            let shape = check_shape(n);
            assert!(
                crate::real::cudnn::sdpa_graph(shape).is_ok(),
                "cuDNN takes it"
            );
            let qkv = check_inputs(&shape, 3);
            assert!(qkv.iter().all(|&x| x == crate::real::init::bf16_round(x)));
            assert!(qkv.iter().any(|&x| x.abs() > 1.0), "q/k reach past 1");
            // The reference step's attention and the CPU backend's op agree (f32 rounding).
            let want = crate::real::reference::attention(&qkv, shape.ld, n, 2, 128);
            let mut cpu = crate::real::cpu::CpuOps::new();
            let a = cpu.alloc(qkv.len()).unwrap();
            cpu.write(a, &qkv).unwrap();
            let o = cpu.alloc(n * shape.ldo).unwrap();
            cpu.attention(a, o, &shape).unwrap();
            let got = cpu.read(o, n * shape.ldo).unwrap();
            assert!(crate::real::check::relative_error(&got, &want) < 1e-5);
            // The fused backend's arithmetic sits inside gpu-check's bf16 tolerance, and
            // away from zero (the rounding is really there).
            let fused = fused_mirror(&shape, &qkv);
            let err = crate::real::check::relative_error(&fused, &want);
            assert!(err < 5e-2 && err > 1e-4, "n {n}: {err}");
        }
    }

    #[test]
    fn without_cudnn_the_fused_softmax_is_chosen_with_a_notice() {
        let absent = Status::Absent {
            tried: vec!["/nonexistent/libcudnn.so.9".into()],
        };
        for requested in [None, Some(Backend::CudnnFlash)] {
            let c = choose(requested, &absent);
            assert_eq!(c.backend, Backend::FusedSoftmax);
            let notice = c.notice.unwrap();
            assert!(notice.starts_with("attention: cuDNN not found"), "{notice}");
            assert!(notice.contains("/nonexistent/libcudnn.so.9"), "{notice}");
            assert!(notice.ends_with("using bf16 scores + fused softmax instead"));
            assert!(!notice.contains('\n'), "one line");
        }
        let old = Status::TooOld {
            version: Version::from_raw(8906),
            path: "libcudnn.so".into(),
        };
        let c = choose(None, &old);
        assert_eq!(c.backend, Backend::FusedSoftmax);
        assert!(
            c.notice
                .unwrap()
                .contains("8.9.6 at libcudnn.so is older than 9.0.0")
        );
        assert!(
            choose(None, &Status::Off)
                .notice
                .unwrap()
                .contains("turned off")
        );
    }

    #[test]
    fn with_cudnn_it_is_first_and_explicit_requests_win() {
        let ready = Status::Ready {
            version: Version::from_raw(91900),
            path: "libcudnn.so.9".into(),
        };
        assert_eq!(
            choose(None, &ready),
            Choice {
                backend: Backend::CudnnFlash,
                notice: None
            }
        );
        assert_eq!(
            choose(Some(Backend::Unfused), &ready).backend,
            Backend::Unfused
        );
        assert_eq!(
            choose(Some(Backend::FusedSoftmax), &ready).backend,
            Backend::FusedSoftmax
        );
    }

    #[test]
    fn the_fallback_chain_with_the_library_pointed_at_nothing() {
        // What a GPU machine does when TETRISERVE_CUDNN names a missing file.
        let names = crate::real::cudnn::candidates(Some("/nonexistent/dir/libcudnn.so.9")).unwrap();
        let status = crate::real::cudnn::probe_names(&names);
        let c = choose(None, &status);
        assert_eq!(c.backend, Backend::FusedSoftmax);
        assert!(c.notice.unwrap().contains("/nonexistent/dir/libcudnn.so.9"));
    }

    #[test]
    fn backend_names_round_trip_and_unknown_ones_are_refused() {
        for b in Backend::ALL {
            assert_eq!(Backend::parse(b.name()).unwrap(), b);
        }
        let e = Backend::parse("flash").unwrap_err().to_string();
        assert!(e.contains("TETRISERVE_ATTENTION=flash"), "{e}");
        assert!(e.contains("cudnn, fused or unfused"), "{e}");
    }
}
