//! TetriServe under sustained overload: the late backlog grows without bound, and the policy
//! keeps it indexed rather than rescanning it. Here a wrapper recomputes, at every decision and
//! from the view alone, what the index stands for (each arrival's node by least outstanding
//! work, the late requests in best-effort order, those past the drop margin), and checks the
//! policy's decisions against it.

use std::collections::BTreeSet;

use tetriserve::Nanos;
use tetriserve::cluster::{Cluster, Topology};
use tetriserve::cost::profile::ProfileTable;
use tetriserve::cost::{Overheads, StepTimes};
use tetriserve::engine::{self, SimExecutor};
use tetriserve::metrics::{Outcome, RunRecords};
use tetriserve::policy::tetriserve::TetriserveConfig;
use tetriserve::policy::{Decision, Phase, Policy, RequestState, Tetriserve, Variant, View};
use tetriserve::workload::RequestId;
use tetriserve::workload::arrival::ArrivalProcess;
use tetriserve::workload::generate::{WorkloadSpec, generate};

type Key = (u32, Nanos, RequestId);

/// TetriServe, with its decisions checked against a from-scratch reference.
struct Checked {
    inner: Tetriserve,
    margin: Option<Nanos>,
    /// The node each arrival goes to, by the reference rule.
    node: Vec<Option<u32>>,
    errors: Vec<String>,
    /// Boundaries where late requests were served, and the longest late list seen.
    served_rounds: usize,
    longest: usize,
    drops: usize,
}

impl Checked {
    fn new(inner: Tetriserve, margin: Option<Nanos>, requests: usize) -> Checked {
        Checked {
            inner,
            margin,
            node: vec![None; requests],
            errors: Vec::new(),
            served_rounds: 0,
            longest: 0,
            drops: 0,
        }
    }

    /// Each arrival to the node with the least remaining steps x cheapest GPU-time per step,
    /// summed over the active requests there (ties to the lowest node).
    fn assign(&mut self, view: &View<'_>) {
        let cheapest = |s: &RequestState| {
            view.cluster
                .degrees()
                .map(|k| u128::from(k) * u128::from(view.costs.step(s.class, k).0))
                .min()
                .unwrap()
        };
        let mut load = vec![0u128; view.cluster.nodes as usize];
        for &id in view.active {
            if let Some(n) = self.node[id.index()] {
                let s = view.request(id);
                load[n as usize] += u128::from(s.remaining_steps()) * cheapest(s);
            }
        }
        for &id in view.arrived {
            let n = (0..view.cluster.nodes)
                .min_by_key(|&n| (load[n as usize], n))
                .unwrap();
            let s = view.request(id);
            load[n as usize] += u128::from(s.remaining_steps()) * cheapest(s);
            self.node[id.index()] = Some(n);
        }
    }
}

impl Policy for Checked {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn decide(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        self.assign(view);
        self.inner.decide(view, out);
        let now = view.now;
        let boundary = out.iter().any(|d| matches!(d, Decision::WakeAt(_)));
        let dropped: BTreeSet<RequestId> = out
            .iter()
            .filter_map(|d| match d {
                Decision::Drop(id) => Some(*id),
                _ => None,
            })
            .collect();
        self.drops += dropped.len();
        let dispatched: BTreeSet<RequestId> = out
            .iter()
            .filter_map(|d| match d {
                Decision::Dispatch(d) => Some(d.batch.ids().to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        for node in 0..view.cluster.nodes {
            let waiting: Vec<&RequestState> = view
                .active
                .iter()
                .filter(|&&id| self.node[id.index()] == Some(node))
                .map(|&id| view.request(id))
                .filter(|s| s.phase == Phase::Waiting)
                .collect();
            let past: BTreeSet<RequestId> = waiting
                .iter()
                .filter(|s| self.margin.is_some_and(|x| now > s.deadline() + x))
                .map(|s| s.id())
                .collect();
            let mut late: Vec<Key> = waiting
                .iter()
                .filter(|s| !past.contains(&s.id()))
                .filter(|s| {
                    let fastest = view.costs.fastest(s.class).1;
                    now + fastest.times(u64::from(s.remaining_steps())) > s.deadline()
                })
                .map(|s| (s.remaining_steps(), s.deadline(), s.id()))
                .collect();
            late.sort();
            self.longest = self.longest.max(late.len());
            let free = view.free.node_mask(node).count_ones() as usize;
            let node_dropped: BTreeSet<RequestId> = dropped
                .iter()
                .copied()
                .filter(|id| self.node[id.index()] == Some(node))
                .collect();
            // A node round drops every waiting request past the margin; a boundary runs every
            // node that has idle GPUs.
            let round_ran = boundary && free > 0 && !waiting.is_empty();
            if node_dropped != past && (round_ran || !node_dropped.is_empty()) {
                self.errors.push(format!(
                    "t={now}: node {node} dropped {node_dropped:?}, expected {past:?}"
                ));
            }
            let served: Vec<usize> = late
                .iter()
                .enumerate()
                .filter(|(_, k)| dispatched.contains(&k.2))
                .map(|(i, _)| i)
                .collect();
            // Each served request takes one idle GPU, in order; at a boundary every one placed
            // runs (a backfill may leave out one whose step does not fit the window).
            let ok = if boundary {
                served.iter().enumerate().all(|(j, &i)| i == j)
            } else {
                served.iter().all(|&i| i < free)
            };
            if !ok {
                self.errors.push(format!(
                    "t={now}: node {node} served late positions {served:?} of {} with {free} idle GPUs",
                    late.len()
                ));
            }
            self.served_rounds += usize::from(boundary && !served.is_empty());
        }
    }
}

fn overload(gpus: u32, per_minute: f64, requests: usize, config: TetriserveConfig) -> Checked {
    let cluster = Cluster::new("h100", gpus / 8, 8, Topology::NvSwitch).unwrap();
    let mut spec = WorkloadSpec::paper(11);
    spec.requests = requests;
    spec.arrival = ArrivalProcess::poisson_per_minute(per_minute);
    let w = generate(&spec).unwrap();
    let profile = ProfileTable::builtin("h100-flux1-dev").unwrap();
    let costs = StepTimes::resolve(&profile, &w.resolutions(), &cluster, &[1]).unwrap();
    let margin = config.drop_late_after;
    let inner = Tetriserve::new(
        Variant::FULL,
        &cluster,
        &costs,
        config,
        Overheads::default(),
    );
    let mut p = Checked::new(inner, margin, w.len());
    let mut exec = SimExecutor::new(&costs, Overheads::default());
    let run: RunRecords = engine::run(&w, &cluster, &costs, &mut p, &mut exec).unwrap();
    // Every request ran on the node the reference assigned it.
    for r in &run.requests {
        if let Some(n) = r.node {
            let want = p.node[r.id as usize];
            if want != Some(n) {
                p.errors.push(format!(
                    "request {} ran on node {n}, expected {want:?}",
                    r.id
                ));
            }
        }
    }
    let dropped = run
        .requests
        .iter()
        .filter(|r| r.outcome == Outcome::Dropped)
        .count();
    assert_eq!(dropped, p.drops);
    p
}

#[test]
fn late_requests_are_served_in_order_of_remaining_steps_under_overload() {
    let p = overload(8, 60.0, 1200, TetriserveConfig::default());
    assert!(
        p.errors.is_empty(),
        "{:#?}",
        &p.errors[..p.errors.len().min(5)]
    );
    assert!(p.longest > 100, "the backlog grows: {}", p.longest);
    assert!(p.served_rounds > 100, "{}", p.served_rounds);
}

#[test]
fn late_requests_past_the_margin_are_dropped_at_their_nodes_next_round() {
    let config = TetriserveConfig {
        drop_late_after: Some(Nanos::from_secs(5.0)),
        ..Default::default()
    };
    let p = overload(16, 150.0, 1500, config);
    assert!(
        p.errors.is_empty(),
        "{:#?}",
        &p.errors[..p.errors.len().min(5)]
    );
    assert!(p.drops > 200, "{}", p.drops);
    assert!(p.longest > 5, "{}", p.longest);
    assert!(p.served_rounds > 100, "{}", p.served_rounds);
}
