//! xDiT with a fixed sequence-parallel degree (the paper's `xDiT SP=k` baselines).
//!
//! Each node is cut into `gpus_per_node / k` static groups of `k` consecutive GPUs. One FCFS
//! queue feeds them: whenever a group is idle, the oldest waiting request runs *all* its steps
//! on it, without preemption, as xDiT serves requests. Groups are tried in order
//! (node 0 group 0 first), so with an idle cluster the lowest-numbered group is used.
//! No deadline awareness, no batching.

use std::collections::{BTreeSet, VecDeque};

use crate::cluster::{Cluster, GpuSet};
use crate::policy::{Batch, Decision, Dispatch, Policy, PolicyKind, View};
use crate::workload::RequestId;

pub struct FixedSp {
    name: String,
    k: u32,
    per_node: u32,
    groups: Vec<GpuSet>,
    /// Idle groups, by index: the lowest is used first.
    idle: BTreeSet<usize>,
    /// Waiting requests, first come first served.
    queue: VecDeque<RequestId>,
}

impl FixedSp {
    /// `k` must divide into the node size (the caller checks `k <= gpus_per_node`; any
    /// remainder GPUs of a node that is not a multiple of `k` stay unused, as with xDiT).
    pub fn new(k: u32, cluster: &Cluster) -> FixedSp {
        let per_node = cluster.gpus_per_node / k;
        let groups: Vec<GpuSet> = (0..cluster.nodes)
            .flat_map(|n| (0..per_node).map(move |g| GpuSet::range(n, g * k, k)))
            .collect();
        let idle = (0..groups.len()).collect();
        FixedSp {
            name: PolicyKind::XditSp(k).to_string(),
            k,
            per_node,
            groups,
            idle,
            queue: VecDeque::new(),
        }
    }

    fn group_of(&self, set: GpuSet) -> usize {
        (set.node() * self.per_node + set.mask().trailing_zeros() / self.k) as usize
    }
}

impl Policy for FixedSp {
    fn name(&self) -> &str {
        &self.name
    }

    /// O(log groups) per dispatch and completion: a FIFO of waiting requests and an ordered
    /// set of idle groups, both kept from the arrivals and completions the view reports.
    fn decide(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        self.queue.extend(view.arrived.iter().copied());
        for &id in view.completed {
            if let Some(g) = view.request(id).gpus {
                self.idle.insert(self.group_of(g));
            }
        }
        while !self.queue.is_empty() {
            let Some(g) = self.idle.pop_first() else {
                return;
            };
            let id = self.queue.pop_front().expect("non-empty");
            let r = view.request(id);
            out.push(Decision::Dispatch(Dispatch {
                batch: Batch::one(id),
                steps: r.remaining_steps(),
                gpus: self.groups[g],
            }));
        }
    }
}
