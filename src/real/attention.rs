//! Which attention a GPU runs, and the CPU-side arithmetic of the fused-softmax fallback.
//!
//! Three implementations of [`Ops::attention`](super::ops::Ops::attention), in order of
//! preference:
//!
//! 1. [`Backend::CudnnFlash`]: cuDNN's fused flash attention ([`cudnn`](super::cudnn)); the
//!    score matrix never reaches memory. Needs cuDNN 9 found at run time and a shape it takes.
//! 2. [`Backend::FusedSoftmax`]: a GEMM writes the scaled scores in bf16 (rows padded to a
//!    multiple of 8 values), one kernel (`kernels/attention.cu`) turns each row into
//!    probabilities in place with 16-byte loads, reading the row once when it fits in
//!    registers, then a GEMM multiplies by V. A third of the unfused path's scratch traffic.
//! 3. [`Backend::Unfused`]: f32 scores, the three-pass softmax into a bf16 copy, P.V: the
//!    original path, kept as the on-GPU oracle of `gpu-check`.
//!
//! A device takes the first backend it can ([`choose`]), and a shape cuDNN refuses at plan
//! time falls back to 2 for that shape only; each fallback says why in one line on stderr.
//! `TETRISERVE_ATTENTION=cudnn|fused|unfused` asks for one (a request for cuDNN where it is
//! unavailable still falls back, with the notice).
//!
//! [`softmax_lanes`] and [`softmax_row_mirror`] are the kernel's indexing and arithmetic
//! written in Rust, so that index coverage on ragged rows and the rounding it does are tested
//! on any machine.

use crate::error::{Error, Result};
use crate::real::cudnn::Status;

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
    pub const ALL: [Backend; 3] = [Backend::CudnnFlash, Backend::FusedSoftmax, Backend::Unfused];

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
    match requested {
        Some(Backend::Unfused) | Some(Backend::FusedSoftmax) => Choice {
            backend: requested.unwrap_or(Backend::FusedSoftmax),
            notice: None,
        },
        Some(Backend::CudnnFlash) | None => {
            if cudnn.is_ready() {
                Choice {
                    backend: Backend::CudnnFlash,
                    notice: None,
                }
            } else {
                Choice {
                    backend: Backend::FusedSoftmax,
                    notice: Some(fallback_notice(&cudnn.describe())),
                }
            }
        }
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

/// Values per 16-byte vector of bf16.
pub const VEC: usize = 8;
/// 16-byte vectors each thread of the softmax kernel keeps in registers
/// (`SOFTMAX_CACHE` in `kernels/attention.cu`).
pub const SOFTMAX_CACHE: usize = 8;
/// Threads per block of the softmax kernel (one block per row).
pub const SOFTMAX_THREADS: usize = 512;

/// The score row stride of the fused path: `tokens` rounded up to a multiple of [`VEC`], so
/// that every row starts 16-byte aligned.
pub fn padded_row(tokens: usize) -> usize {
    tokens.div_ceil(VEC) * VEC
}

/// Queries per chunk of the fused path for `tokens` keys and `heads` heads: the bf16 scores
/// (2 bytes per element, rows padded) near 1.5 GB, a multiple of 64 queries, at least one.
pub fn fused_chunk(tokens: usize, heads: usize) -> usize {
    let per_query = (heads * padded_row(tokens) * 2).max(1);
    ((1_500_000_000 / per_query).max(64) / 64 * 64)
        .min(tokens)
        .max(1)
}

/// How one thread of the softmax kernel covers a row of `n` values with `threads` threads:
/// the vector indices it loads (16 bytes each, values `8 v .. 8 v + 8`) and the scalar tail
/// columns. `cached` says whether the row fits in the threads' registers (read once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lane {
    pub vectors: Vec<usize>,
    pub tail: Vec<usize>,
    pub cached: bool,
}

/// The kernel's partition of a row, thread by thread (the same loops as
/// `softmax_inplace_bf16`).
pub fn softmax_lanes(n: usize, threads: usize) -> Vec<Lane> {
    let vecs = n / VEC;
    let cached = vecs <= SOFTMAX_CACHE * threads;
    (0..threads)
        .map(|t| {
            let vectors = if cached {
                (0..SOFTMAX_CACHE)
                    .map(|j| t + j * threads)
                    .filter(|&v| v < vecs)
                    .collect()
            } else {
                (t..vecs).step_by(threads).collect()
            };
            let tail = (vecs * VEC + t..n).step_by(threads).collect();
            Lane {
                vectors,
                tail,
                cached,
            }
        })
        .collect()
}

/// The kernel's arithmetic on one row: the bf16 scores (as the GEMM wrote them) to bf16
/// probabilities, max and sum in f32, `exp2((x - max) * log2 e)`.
pub fn softmax_row_mirror(row: &mut [f32]) {
    use crate::real::init::bf16_round;
    let max = row.iter().map(|&x| bf16_round(x)).fold(f32::MIN, f32::max);
    let e = |x: f32| ((bf16_round(x) - max) * std::f32::consts::LOG2_E).exp2();
    let sum: f32 = row.iter().map(|&x| e(x)).sum();
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x = bf16_round(e(*x) * inv);
    }
}

/// Token counts of `gpu-check`'s attention numerics: a multiple of 64, a ragged count, and
/// FLUX.1-dev's 1024 px sequence (4,096 image + 512 text tokens).
pub const CHECK_TOKENS: [usize; 3] = [128, 1137, 4608];

/// The shape of `gpu-check`'s attention numerics over `tokens` tokens: 2 heads of 128 (the
/// models' head dim), q/k/v blocks side by side, a contiguous output; small enough for the
/// CPU reference to take seconds at 4,608 tokens.
pub fn check_shape(tokens: usize) -> crate::real::ops::AttentionShape {
    let cols = 2 * 128;
    crate::real::ops::AttentionShape {
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
pub fn check_inputs(shape: &crate::real::ops::AttentionShape, seed: u64) -> Vec<f32> {
    use crate::real::init::{bf16_round, uniform};
    let ld = shape.ld;
    (0..shape.tokens * ld)
        .map(|i| {
            let scale = if i % ld < 2 * shape.cols { 2.0 } else { 1.0 };
            bf16_round(uniform(seed, i as u64, scale))
        })
        .collect()
}

/// The fused-softmax backend's arithmetic on the CPU (bf16 scaled scores, the kernel's
/// softmax, bf16 probabilities, f32 P.V, bf16 output), for a check shape (`ldo` = `cols` =
/// `heads x head_dim`). What `gpu-check` should see from the GPU up to accumulation order.
pub fn fused_mirror(shape: &crate::real::ops::AttentionShape, qkv: &[f32]) -> Vec<f32> {
    use crate::real::init::bf16_round;
    let (n, d, ld, cols) = (shape.tokens, shape.head_dim, shape.ld, shape.cols);
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0.0f32; n * shape.ldo];
    let mut row = vec![0.0f32; n];
    for h in 0..shape.heads {
        for i in 0..n {
            let q = &qkv[i * ld + h * d..i * ld + (h + 1) * d];
            for (j, s) in row.iter_mut().enumerate() {
                let k = &qkv[j * ld + cols + h * d..j * ld + cols + (h + 1) * d];
                *s = bf16_round(scale * q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>());
            }
            softmax_row_mirror(&mut row);
            let o = &mut out[i * shape.ldo + h * d..i * shape.ldo + (h + 1) * d];
            for (j, p) in row.iter().enumerate() {
                let v = &qkv[j * ld + 2 * cols + h * d..j * ld + 2 * cols + (h + 1) * d];
                for (od, vd) in o.iter_mut().zip(v) {
                    *od += p * vd;
                }
            }
            o.iter_mut().for_each(|x| *x = bf16_round(*x));
        }
    }
    out
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
            cpu.attention(a, shape.ld, o, shape.ldo, n, 2, 128, shape.cols)
                .unwrap();
            let got = cpu.read(o, n * shape.ldo).unwrap();
            assert!(crate::real::profile::relative_error(&got, &want) < 1e-5);
            // The fused backend's arithmetic sits inside gpu-check's bf16 tolerance, and
            // away from zero (the rounding is really there).
            let fused = fused_mirror(&shape, &qkv);
            let err = crate::real::profile::relative_error(&fused, &want);
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

    #[test]
    fn every_column_of_a_ragged_row_is_covered_once() {
        for n in [1usize, 7, 8, 9, 128, 1137, 4095, 4608, 16_896, 40_000] {
            for threads in [32, SOFTMAX_THREADS] {
                let lanes = softmax_lanes(n, threads);
                let mut seen = vec![0u8; n];
                for l in &lanes {
                    for &v in &l.vectors {
                        seen[v * VEC..(v + 1) * VEC]
                            .iter_mut()
                            .for_each(|s| *s += 1);
                    }
                    for &c in &l.tail {
                        seen[c] += 1;
                    }
                    assert!(l.tail.len() <= 1, "a tail is shorter than a vector");
                }
                assert!(seen.iter().all(|&s| s == 1), "n {n}, {threads} threads");
                // Rows of FLUX.1-dev up to 2048 px (16,896 tokens) stay in registers.
                assert_eq!(lanes[0].cached, n / VEC <= SOFTMAX_CACHE * threads);
            }
        }
        assert!(softmax_lanes(16_896, SOFTMAX_THREADS)[0].cached);
    }

    #[test]
    fn padded_rows_are_16_byte_aligned_and_chunks_fit() {
        assert_eq!(padded_row(1137), 1144);
        assert_eq!(padded_row(4608), 4608);
        assert_eq!(padded_row(1), 8);
        let cq = fused_chunk(16_896, 24);
        assert_eq!(cq % 64, 0);
        assert!(24 * cq * padded_row(16_896) * 2 <= 1_500_000_000);
        // Three times the unfused path's chunk (6 bytes per score there, 2 here).
        assert!(cq >= 3 * super::super::gpu::attention_chunk(16_896, 24) - 64);
        assert_eq!(fused_chunk(20, 8), 20);
    }

    #[test]
    fn the_mirrored_softmax_matches_the_reference_within_bf16() {
        // Scores as the CPU reference computes them for one row, then the kernel's arithmetic.
        let n = 1137;
        let scores: Vec<f32> = (0..n)
            .map(|i| crate::real::init::uniform(7, i as u64, 6.0))
            .collect();
        let max = scores.iter().copied().fold(f32::MIN, f32::max);
        let sum: f32 = scores.iter().map(|s| (s - max).exp()).sum();
        let want: Vec<f32> = scores.iter().map(|s| (s - max).exp() / sum).collect();
        let mut got = scores.clone();
        softmax_row_mirror(&mut got);
        let err = crate::real::profile::relative_error(&got, &want);
        // bf16 scores (8 bits of mantissa) at |s| <= 6 move exp by up to ~2%; the norm much less.
        assert!(err < 2e-2, "{err}");
        assert!(err > 0.0, "the rounding is mirrored");
        let total: f32 = got.iter().sum();
        assert!((total - 1.0).abs() < 1e-2, "{total}");
    }
}
