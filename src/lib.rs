//! tetriserve: deadline-aware serving of Diffusion Transformers, as a discrete-event
//! simulator with a real-hardware backend.
//!
//! Data flows one way: a [`workload`] (trace) enters the [`engine`], which asks a
//! [`policy`] for decisions at every decision point, hands the resulting work to an
//! executor (simulated from a [`cost`] model, or real GPUs), and collects records that
//! [`metrics`] summarises and [`report`] writes. See ARCHITECTURE.md for the map.

pub mod bound;
pub mod cli;
pub mod cluster;
pub mod compare;
pub mod cost;
pub mod engine;
pub mod error;
pub mod figures;
pub mod files;
pub mod goodput;
pub mod metrics;
pub mod optimum;
pub mod policy;
pub mod real;
pub mod replay;
pub mod report;
pub mod robustness;
pub mod scenario;
pub mod simulate;
pub mod slo_fit;
pub mod stages;
pub mod suggest;
pub mod sweep;
pub mod time;
pub mod validate;
pub mod workload;

pub use error::{Error, InputError, Result};
pub use time::Nanos;
