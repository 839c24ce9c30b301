//! The true optimum on small workloads: the most requests any schedule the simulator could
//! run meets, found (or bracketed) by an exact search, to tell how far the policies are from
//! the best possible and how loose `bound.rs`'s upper bound is.
//!
//! **The model.** Choose the requests to meet and, for each, a schedule of its steps. A step
//! runs on `k` GPUs of one node (`k` a power of two within the node: the step times' degrees)
//! for the step time of its configuration, alone or batched with other requests of the same
//! resolution, the same number of steps and the same step done (the engine's rule), at a batch
//! size the step times have. Steps of a request run one after another, each whole; the first
//! starts no earlier than the arrival plus the text encoder, the last ends no later than the
//! deadline less the VAE decode (as `SimExecutor` charges them). At no instant do a node's
//! steps use more GPUs than it has. Degrees, batches and nodes may change at any step
//! boundary, any number of times.
//!
//! **Every simulated schedule is a schedule of the model** (so no policy meets more than the
//! optimum): a work of the engine is a run of consecutive steps on one GPU set, which the
//! model holds step by step; the model only drops costs the executor adds (remaps, group
//! set-up, dispatch: set to zero, which can only make schedules shorter; the GPU time of the
//! text encoder and the VAE: not charged, only their time on the request's path), and takes
//! each step at the faster of the two links where the engine's set may cross the slower one.
//! With non-zero hand-off or set-up costs the model is therefore looser than the simulator.
//! The model runs the met requests only: a batch that also held missed requests (or, for a
//! window's count in a run over the whole workload, requests outside the window) shrinks to a
//! size the model holds when the step times have it and it is no slower; `study.rs` checks
//! every batched work for that.
//! **Cumulative capacity is exact here**, not a relaxation: the engine lets a step take any
//! `k` free GPUs of a node (`GpuSet` is any subset), so steps whose demands fit a node at every
//! instant are placed by taking free GPUs in start order, and each step keeps its set for its
//! whole interval; only the hand-off a move costs is relaxed, as above.
//!
//! **Every schedule of the model is one `bound.rs` counts** (so the optimum is at most the
//! bound): a met request's steps lie within its interval at configurations of the step
//! times, which costs at least the bound's least GPU time of the request, and its windows'
//! capacity argument holds for any placement (provided, as the bound assumes, that no link
//! is faster than NVLink).
//!
//! **The search.** `model.rs` builds the jobs and splits them into components that never
//! compete; `search.rs` decides whether a set of jobs can all be met (depth-first over the
//! instants where steps start, complete for the model, pruned by necessary conditions);
//! `solver.rs` searches the sets met per component and reports the best schedule and a proven
//! upper bound, equal when proven; `windows.rs` cuts traces at idle points; `study.rs` runs
//! the study of `tetriserve optimum`. The argument and the measured numbers are in
//! `docs/optimum.md`.

mod model;
mod search;
mod solver;
mod study;
mod windows;

pub use model::{Config, Instance, Job, least_gpu_time};
pub use search::{Step, Verdict, feasible};
pub use solver::{MAX_SETS, Solution, solve};
pub use study::{PolicyMet, Study, Totals, WindowRow, study};
pub use windows::{cut, idle_points, window};
