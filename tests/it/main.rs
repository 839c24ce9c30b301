//! Integration tests, one module per area of behaviour.

mod util;

// The binary: default run, bad input, output directories, determinism.
mod cli;
// Flags: each acts or is refused naming it; help per command; trace SLO and time scales.
mod flags;

// Schedules of the baseline policies worked out by hand.
mod baselines;
// The paper's Figure 1 example.
mod figure1;
// TetriServe options: batching, dropping, nodes.
mod stepwise;
mod tetriserve;
// Every shipped scenario loads and runs.
mod scenarios;
// Sweeps: rows match single runs; threads, shards and resumption change nothing.
mod sweep;
// Sweeps as job arrays (Slurm, Kubernetes Indexed Jobs): shards merged equal one sweep.
mod job_array;
// The upper bound on attainment: never below exhaustive search or any policy.
mod bound;
// Every class of bad input: a clean error naming file, line and field.
mod bad_input;
// Hostile output paths, locks, interruptions and sizes: nothing written through what is not
// tetriserve's, nothing dropped silently, nothing left behind.
mod hostile;
// The engine refuses invalid decisions instead of producing wrong numbers.
mod engine;
// Invariants over random workloads, for every baseline policy.
mod invariants;
// Approximate caching and run-time step skipping: hits by hand, same reduced work for all.
mod cache;
// The real executor on the CPU backend: degree changes, concurrent groups, failures, outputs.
mod real_cpu;
// Replaying a run's decisions; the fidelity error split by cause, on hand-built runs.
mod replay;
// The GPU commands' flags on a machine without a GPU: refused by name, nothing left behind.
mod gpu_flags;
// Streamed output directories: identical bytes, cut timelines, nothing left by a failure.
mod outputs;
// The architecture's rules: module headers, forbidden dependency edges, the code map.
mod tidy;
// Causality: requests appended after T change no decision before T, for every policy.
mod causality;
// A differential probe for mutation testing (ignored): small random runs as digests.
mod probe;
// Overload: TetriServe's late backlog against a from-scratch reference at every decision.
mod overload;
// Capacity planning: a log's rate scaled, the fewest GPUs against brute force, cost by hand.
mod capacity;
// Every repository path the docs and the help texts name exists; none names a path outside it.
mod pointers;
// A fast sample of README's numbers re-run: the quick-start table, Table 5, what-if, capacity.
mod claims;
// Video beside images: every policy on a mix, derived SLO bases, refusals, image bytes kept.
mod video;
// The exact optimum on small instances: by hand, against brute force, between policies and bound.
mod optimum;
// Disaggregated encode / decode stages: hand-computed schedules, invariants and bound.
mod stages;
