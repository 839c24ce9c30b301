//! The CUDA kernels: sources embedded from `kernels/*.cu`, compiled at run time by NVRTC.
//!
//! One `.cu` file per op family, entries named `<op>_<dtype>`; `kernels/common.cuh` is
//! prepended to each source instead of `#include`d, so NVRTC needs no include path. bf16 is
//! handled as raw 16-bit values, so no CUDA header is needed either: the only requirement to
//! compile is libnvrtc, which CI installs from PyPI (`nvidia-cuda-nvrtc`).

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction};
use cudarc::nvrtc::{CompileOptions, Ptx, compile_ptx_with_opts};

use crate::error::{Error, Result};

const COMMON: &str = include_str!("../../kernels/common.cuh");

/// Every kernel source file: (file name, text).
pub const SOURCES: &[(&str, &str)] = &[
    ("init.cu", include_str!("../../kernels/init.cu")),
    ("norm.cu", include_str!("../../kernels/norm.cu")),
    ("activation.cu", include_str!("../../kernels/activation.cu")),
    ("residual.cu", include_str!("../../kernels/residual.cu")),
    ("rope.cu", include_str!("../../kernels/rope.cu")),
    ("attention.cu", include_str!("../../kernels/attention.cu")),
    ("copy.cu", include_str!("../../kernels/copy.cu")),
];

/// Every kernel entry point the backend launches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    FillUniform,
    LayernormModulate,
    ResidualLayernormModulate,
    BiasAdd,
    BiasGelu,
    BiasAddVec,
    BiasGeluVec,
    Silu,
    GatedResidual,
    FlowUpdate,
    Rope,
    Softmax,
    SoftmaxInplace,
    Copy2d,
}

impl Kernel {
    pub const ALL: [Kernel; 14] = [
        Kernel::FillUniform,
        Kernel::LayernormModulate,
        Kernel::ResidualLayernormModulate,
        Kernel::BiasAdd,
        Kernel::BiasGelu,
        Kernel::BiasAddVec,
        Kernel::BiasGeluVec,
        Kernel::Silu,
        Kernel::GatedResidual,
        Kernel::FlowUpdate,
        Kernel::Rope,
        Kernel::Softmax,
        Kernel::SoftmaxInplace,
        Kernel::Copy2d,
    ];

    /// The `extern "C"` name.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::FillUniform => "fill_uniform_bf16",
            Kernel::LayernormModulate => "layernorm_modulate_bf16",
            Kernel::ResidualLayernormModulate => "residual_layernorm_modulate_bf16",
            Kernel::BiasAdd => "bias_add_bf16",
            Kernel::BiasGelu => "bias_gelu_bf16",
            Kernel::BiasAddVec => "bias_add_vec_bf16",
            Kernel::BiasGeluVec => "bias_gelu_vec_bf16",
            Kernel::Silu => "silu_bf16",
            Kernel::GatedResidual => "gated_residual_bf16",
            Kernel::FlowUpdate => "flow_update_bf16",
            Kernel::Rope => "rope_bf16",
            Kernel::Softmax => "softmax_f32_bf16",
            Kernel::SoftmaxInplace => "softmax_inplace_bf16",
            Kernel::Copy2d => "copy_2d_bf16",
        }
    }

    /// The source file that defines it.
    pub fn file(self) -> &'static str {
        match self {
            Kernel::FillUniform => "init.cu",
            Kernel::LayernormModulate | Kernel::ResidualLayernormModulate => "norm.cu",
            Kernel::BiasAdd
            | Kernel::BiasGelu
            | Kernel::BiasAddVec
            | Kernel::BiasGeluVec
            | Kernel::Silu => "activation.cu",
            Kernel::GatedResidual | Kernel::FlowUpdate => "residual.cu",
            Kernel::Rope => "rope.cu",
            Kernel::Softmax | Kernel::SoftmaxInplace => "attention.cu",
            Kernel::Copy2d => "copy.cu",
        }
    }
}

/// Whether the vectorised bias kernels (`bias_*_vec_bf16`) can take a `cols`-wide region of
/// row stride `ld` at byte address `x` with its bias at `bias`: every row and the bias start
/// 16-byte aligned and rows are whole vectors of 8 bf16.
pub fn vec_fits(cols: usize, ld: usize, x: u64, bias: u64) -> bool {
    cols.is_multiple_of(8)
        && ld.is_multiple_of(8)
        && x.is_multiple_of(16)
        && bias.is_multiple_of(16)
}

/// The vectorised bias kernels' partition, mirrored: how many times each element of a
/// `rows x cols` region is visited by `grid` blocks of `threads` threads (each visit being one
/// of the 8 values of a 16-byte vector).
pub fn vec_rows_cover(rows: usize, cols: usize, grid: usize, threads: usize) -> Vec<u8> {
    let mut seen = vec![0u8; rows * cols];
    let vecs = cols / 8;
    for block in 0..grid {
        for r in (block..rows).step_by(grid) {
            for t in 0..threads {
                for v in (t..vecs).step_by(threads) {
                    for c in v * 8..v * 8 + 8 {
                        seen[r * cols + c] += 1;
                    }
                }
            }
        }
    }
    seen
}

/// The full text NVRTC compiles for `file`: common helpers, then the file without its include.
pub fn source(file: &str) -> Option<String> {
    let (_, text) = SOURCES.iter().find(|(f, _)| *f == file)?;
    let common = COMMON.replace("#pragma once", "");
    Some(format!(
        "{common}\n{}",
        text.replace("#include \"common.cuh\"", "")
    ))
}

/// Whether libnvrtc can be loaded (checked without panicking).
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Compiles one source file to PTX for `arch` (e.g. `compute_90`).
pub fn compile(file: &str, arch: &'static str) -> Result<Ptx> {
    if !nvrtc_available() {
        return Err(Error::Executor(
            "libnvrtc was not found; install the CUDA toolkit or `pip install nvidia-cuda-nvrtc` and add its lib folder to LD_LIBRARY_PATH".into(),
        ));
    }
    let src = source(file).ok_or_else(|| Error::Executor(format!("no kernel source {file}")))?;
    let opts = CompileOptions {
        arch: Some(arch),
        name: Some(file.to_string()),
        ..CompileOptions::default()
    };
    compile_ptx_with_opts(src, opts)
        .map_err(|e| Error::Executor(format!("NVRTC failed to compile kernels/{file}: {e}")))
}

/// The loaded kernels of one device, compiled once per file.
pub struct Kernels {
    functions: HashMap<Kernel, CudaFunction>,
}

impl Kernels {
    /// Compiles every source for the device's architecture and loads every entry point.
    pub fn load(ctx: &Arc<CudaContext>) -> Result<Kernels> {
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| Error::Executor(format!("querying the device: {e}")))?;
        let arch = arch_name(major, minor);
        let mut functions = HashMap::new();
        for (file, _) in SOURCES {
            let ptx = compile(file, arch)?;
            let module = ctx
                .load_module(ptx)
                .map_err(|e| Error::Executor(format!("loading kernels/{file}: {e}")))?;
            for k in Kernel::ALL.iter().filter(|k| k.file() == *file) {
                let f = module.load_function(k.name()).map_err(|e| {
                    Error::Executor(format!("loading {} from kernels/{file}: {e}", k.name()))
                })?;
                functions.insert(*k, f);
            }
        }
        Ok(Kernels { functions })
    }

    pub fn get(&self, k: Kernel) -> &CudaFunction {
        &self.functions[&k]
    }
}

/// NVRTC's virtual architecture for a compute capability (falls back to compute_90 for newer
/// chips, whose drivers JIT it).
fn arch_name(major: i32, minor: i32) -> &'static str {
    match (major, minor) {
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 9) => "compute_89",
        (8, _) => "compute_80",
        _ => "compute_90",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_has_a_source_that_defines_it() {
        for k in Kernel::ALL {
            let src = source(k.file()).unwrap();
            assert!(
                src.contains(&format!("void {}(", k.name())),
                "{} not in {}",
                k.name(),
                k.file()
            );
            assert!(!src.contains("#include"), "includes are inlined");
        }
        let files: Vec<&str> = SOURCES.iter().map(|(f, _)| *f).collect();
        let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/kernels"))
            .unwrap()
            .count();
        assert_eq!(
            files.len() + 1,
            on_disk,
            "every .cu in kernels/ is in SOURCES (plus common.cuh)"
        );
    }

    #[test]
    fn the_vectorised_bias_partition_covers_every_element_once() {
        // Ragged row counts, grids smaller and larger than the rows, FLUX's widths.
        for (rows, cols) in [
            (1, 8),
            (3, 24),
            (37, 3072 / 8),
            (513, 3 * 3072 / 8),
            (1137, 64),
        ] {
            for (grid, threads) in [(1, 32), (7, 32), (2048, 256), (rows, 256)] {
                let seen = vec_rows_cover(rows, cols, grid, threads);
                assert!(
                    seen.iter().all(|&s| s == 1),
                    "{rows}x{cols}, {grid}x{threads}"
                );
            }
        }
        assert!(vec_fits(3072, 9216, 0x1000, 0x2000));
        assert!(
            !vec_fits(3072, 9216 + 4, 0x1000, 0x2000),
            "rows not 16-byte aligned"
        );
        assert!(
            !vec_fits(20, 24, 0x1000, 0x2000),
            "a row is not whole vectors"
        );
        assert!(!vec_fits(3072, 9216, 0x1008, 0x2000), "a misaligned base");
    }

    /// Compiles every kernel to PTX for compute_90. Needs libnvrtc: CI installs it and sets
    /// TETRISERVE_REQUIRE_NVRTC=1 so that a missing library fails the test instead of skipping.
    #[test]
    fn every_kernel_compiles_with_nvrtc() {
        if !nvrtc_available() {
            assert!(
                std::env::var_os("TETRISERVE_REQUIRE_NVRTC").is_none(),
                "libnvrtc is required but missing"
            );
            // Written to the process's stderr directly, past the test harness's capture, so
            // that a skip shows in plain `cargo test` output instead of passing silently.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED real::kernels::every_kernel_compiles_with_nvrtc: libnvrtc not found (see .ci/run for how CI installs it; TETRISERVE_REQUIRE_NVRTC=1 makes this a failure)"
            );
            return;
        }
        for (file, _) in SOURCES {
            let ptx = compile(file, "compute_90").unwrap_or_else(|e| panic!("{e}"));
            let text = ptx.to_src();
            for k in Kernel::ALL.iter().filter(|k| k.file() == *file) {
                assert!(
                    text.contains(&format!(".entry {}", k.name())),
                    "{} missing from the PTX of {file}",
                    k.name()
                );
            }
        }
    }
}
