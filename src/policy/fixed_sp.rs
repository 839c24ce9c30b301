//! xDiT with a fixed sequence-parallel degree (the paper's `xDiT SP=k` baselines).
//!
//! Each node is cut into `gpus_per_node / k` static groups of `k` consecutive GPUs. One FCFS
//! queue feeds them: whenever a group is idle, the oldest waiting request runs *all* its steps
//! on it, without preemption, as xDiT serves requests. Groups are tried in order
//! (node 0 group 0 first), so with an idle cluster the lowest-numbered group is used.
//! No deadline awareness, no batching.

use crate::cluster::{Cluster, GpuSet};
use crate::policy::{Batch, Decision, Dispatch, Policy, View};

pub struct FixedSp {
    name: String,
    groups: Vec<GpuSet>,
}

impl FixedSp {
    /// `k` must divide into the node size (the caller checks `k <= gpus_per_node`; any
    /// remainder GPUs of a node that is not a multiple of `k` stay unused, as with xDiT).
    pub fn new(k: u32, cluster: &Cluster) -> FixedSp {
        let per_node = cluster.gpus_per_node / k;
        let groups = (0..cluster.nodes)
            .flat_map(|n| (0..per_node).map(move |g| GpuSet::range(n, g * k, k)))
            .collect();
        FixedSp {
            name: format!("xdit-sp{k}"),
            groups,
        }
    }
}

impl Policy for FixedSp {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        let mut waiting = view.waiting();
        for &g in &self.groups {
            if !view.free.is_free(g) {
                continue;
            }
            let Some(r) = waiting.next() else { return };
            out.push(Decision::Dispatch(Dispatch {
                batch: Batch::one(r.id()),
                steps: r.remaining_steps(),
                gpus: g,
            }));
        }
    }
}
