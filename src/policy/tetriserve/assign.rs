//! Node assignment (multi-node clusters): each arrival goes, for good, to the node with the
//! least outstanding work, and node loads follow completions and drops; every node then keeps
//! its own backlog of waiting requests.

use crate::policy::{Phase, View};
use crate::workload::RequestId;

use super::Tetriserve;
use super::backlog::Backlog;

impl Tetriserve {
    /// Takes in what happened since the last call: assigns each arrival to the node with the
    /// least outstanding work (sum over its requests of remaining steps x cheapest GPU-time per
    /// step), and adds arrivals and requests back from a work to their node's backlog.
    ///
    /// Node loads are kept up to date from completions and drops rather than summed over the
    /// active requests at each arrival: O(arrivals x nodes + completions) per call.
    pub(super) fn take_in(&mut self, view: &View<'_>) {
        if view.now < self.clock {
            // Lateness found earlier may not hold at an earlier time: judge everyone afresh.
            self.backlogs.iter_mut().for_each(Backlog::reopen);
        }
        self.clock = view.now;
        let multi = self.cluster.nodes > 1;
        if let Some(max) = view.arrived.iter().map(|id| id.index()).max()
            && self.node_of.len() <= max
        {
            self.node_of.resize(max + 1, 0);
            if multi {
                self.counted.resize(max + 1, 0);
            }
        }
        let work = |steps: u32, id: RequestId| {
            u128::from(steps) * self.cheapest[view.request(id).class.index()]
        };
        for &id in view.completed {
            let Some(&node) = self.node_of.get(id.index()) else {
                continue; // never seen arriving: not this policy's
            };
            let node = node as usize;
            if multi {
                let left = view.request(id).remaining_steps();
                self.load[node] -= work(self.counted[id.index()] - left, id);
                self.counted[id.index()] = left;
            }
            if view.request(id).phase == Phase::Waiting {
                self.backlogs[node].add(id);
            }
        }
        for &id in view.arrived {
            let node = if multi {
                let node = (0..self.cluster.nodes)
                    .min_by_key(|&n| (self.load[n as usize], n))
                    .unwrap_or(0);
                let left = view.request(id).remaining_steps();
                self.load[node as usize] += work(left, id);
                self.counted[id.index()] = left;
                node
            } else {
                0
            };
            self.node_of[id.index()] = node;
            self.backlogs[node as usize].add(id);
        }
    }

    /// `id` is dropped: it no longer loads its node.
    pub(super) fn forget(&mut self, view: &View<'_>, id: RequestId) {
        if self.cluster.nodes > 1 {
            let steps = std::mem::take(&mut self.counted[id.index()]);
            let node = self.node_of[id.index()] as usize;
            self.load[node] -= u128::from(steps) * self.cheapest[view.request(id).class.index()];
        }
    }
}
