//! The real-hardware backend: a FLUX-class DiT on CUDA through cudarc, and an executor that
//! runs the engine's dispatches on local GPUs with a wall clock.
//!
//! CUDA libraries are loaded at run time (cudarc's dynamic loading), so the binary builds,
//! tests and simulates on machines without CUDA; every entry point probes the libraries first
//! and turns their absence into an [`Error::Executor`](crate::Error::Executor), never a panic.
//!
//! - [`config`]: model shapes (FLUX.1-dev, SD3-Medium, a tiny test model);
//! - [`init`]: the seeded weight generator shared with the kernels, rotary tables;
//! - [`reference`]: the CPU f32 reference of one denoising step (also as Ulysses ranks);
//! - [`ulysses`]: the sequence-parallel layout (token shards, head shards, the all-to-alls);
//! - [`kernels`]: the CUDA C sources in `kernels/`, compiled at run time by NVRTC;
//! - [`nccl`]: communicators and all-to-all exchanges between local GPUs (two or more);
//! - [`device`]: library probes and device discovery;
//! - [`ops`], [`model`], [`transport`]: the step written once over an operations interface and
//!   an exchange interface;
//! - [`cpu`], [`gpu`]: the operations on host threads (f32) and on a CUDA stream (cuBLAS GEMMs +
//!   the kernels, bf16);
//! - [`gpu::attention`]: which attention a GPU runs (cuDNN flash, fused softmax, unfused) and the
//!   fallback between them; [`cudnn`]: the cuDNN library probe and the SDPA graph and plan;
//! - [`lanes`]: ranks as streams of one GPU; [`nccl`] ranks as GPUs;
//! - [`executor`]: [`RealExecutor`](executor::RealExecutor), the engine's executor on GPUs;
//! - [`profile`]: measuring a profile CSV on the local GPU; [`check`]: `tetriserve gpu-check`,
//!   the GPU against the CPU reference.

pub mod calibrate;
pub mod check;
pub mod config;
pub mod cpu;
pub mod cudnn;
pub mod device;
pub mod executor;
pub mod gpu;
pub mod init;
pub mod kernels;
pub mod lanes;
pub mod model;
pub mod nccl;
pub mod node;
pub mod ops;
pub mod profile;
pub mod reference;
pub mod transport;
pub mod ulysses;
