//! Placement of a round's chosen requests onto GPU sets of one node.
//!
//! With placement preservation, a request keeps the exact set it ran on when that set is idle
//! and the degree is unchanged; otherwise it keeps as much of its old set as it can (growing
//! around it or shrinking inside it); only the rest get fresh sets. Fresh sets are the
//! lowest-numbered idle GPUs (a whole NVLink pair first on paired nodes), widest requests
//! first. Without preservation every request gets a fresh set, in the order given.

use crate::cluster::{Cluster, GpuSet, lowest_bits};
use crate::policy::Batch;

/// A request placed for this round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The request, or the requests batched together.
    pub batch: Batch,
    pub gpus: GpuSet,
    /// Best-effort placement of a request that can no longer meet its deadline.
    pub late: bool,
}

#[derive(Clone, Copy, Debug)]
struct Want {
    batch: Batch,
    degree: u32,
    prev: Option<GpuSet>,
    late: bool,
}

/// Places requests onto the idle GPUs of one node; reused across rounds.
#[derive(Default)]
pub struct Placer {
    node: u32,
    free: u64,
    wants: Vec<Want>,
    placed: Vec<Placed>,
}

impl Placer {
    /// Starts a round on `node` whose idle GPUs are `free`.
    pub fn start(&mut self, node: u32, free: u64) {
        self.node = node;
        self.free = free;
        self.wants.clear();
        self.placed.clear();
    }

    /// Asks for `degree` GPUs for `batch`, which last ran on `prev`.
    pub fn want(&mut self, batch: Batch, degree: u32, prev: Option<GpuSet>, late: bool) {
        let prev = prev.filter(|p| p.node() == self.node);
        self.wants.push(Want {
            batch,
            degree,
            prev,
            late,
        });
    }

    /// Places every pending want that fits; a want that does not fit is discarded.
    pub fn place(&mut self, cluster: &Cluster, preserve: bool) {
        let mut wants = std::mem::take(&mut self.wants);
        if preserve {
            // 1. The same set, unchanged.
            wants.retain(|w| match w.prev {
                Some(p) if p.len() == w.degree && self.free & p.mask() == p.mask() => {
                    self.take(w, p.mask());
                    false
                }
                _ => true,
            });
            // 2. As much of the old set as possible, widest first.
            wants.sort_by_key(|w| std::cmp::Reverse(w.degree));
            wants.retain(|w| {
                let Some(p) = w.prev else { return true };
                let kept = p.mask() & self.free;
                if kept == 0 || self.free.count_ones() < w.degree {
                    return true;
                }
                let have = kept.count_ones();
                let mask = if have >= w.degree {
                    lowest_bits(kept, w.degree)
                } else {
                    match cluster.pick_in_node(self.free & !kept, w.degree - have) {
                        Some(extra) => kept | extra,
                        None => return true,
                    }
                };
                self.take(w, mask);
                false
            });
        }
        // 3. Fresh sets.
        for w in &wants {
            if let Some(mask) = cluster.pick_in_node(self.free, w.degree) {
                self.take(w, mask);
            }
        }
    }

    fn take(&mut self, w: &Want, mask: u64) {
        debug_assert_eq!(self.free & mask, mask);
        self.free &= !mask;
        self.placed.push(Placed {
            batch: w.batch,
            gpus: GpuSet::new(self.node, mask),
            late: w.late,
        });
    }

    /// Idle GPUs left.
    pub fn idle(&self) -> u32 {
        self.free.count_ones()
    }

    pub fn placed(&self) -> &[Placed] {
        &self.placed
    }

    /// The set `placed[i]` would have at twice its degree, using idle GPUs.
    pub fn grown(&self, i: usize, cluster: &Cluster) -> Option<GpuSet> {
        let g = self.placed[i].gpus;
        let extra = cluster.pick_in_node(self.free, g.len())?;
        Some(GpuSet::new(self.node, g.mask() | extra))
    }

    /// Doubles `placed[i]`'s degree with idle GPUs (see [`Placer::grown`]).
    pub fn grow(&mut self, i: usize, cluster: &Cluster) {
        if let Some(g) = self.grown(i, cluster) {
            self.free &= !g.mask();
            self.placed[i].gpus = g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Topology;
    use crate::workload::RequestId;

    fn one(i: u32) -> Batch {
        Batch::one(RequestId(i))
    }

    fn h100() -> Cluster {
        Cluster::new("h100", 1, 8, Topology::NvSwitch).unwrap()
    }

    fn set(mask: u64) -> Option<GpuSet> {
        Some(GpuSet::new(0, mask))
    }

    #[test]
    fn preservation_keeps_old_sets_and_fresh_requests_take_the_rest() {
        let mut p = Placer::default();
        p.start(0, 0xff);
        p.want(one(0), 2, None, false); // new request
        p.want(one(1), 4, set(0b1111_0000), false); // same set, same width
        p.want(one(2), 2, set(0b0000_0001), false); // grows around GPU 0
        p.place(&h100(), true);
        let got: Vec<(u32, u64)> = p
            .placed()
            .iter()
            .map(|x| (x.batch.ids()[0].0, x.gpus.mask()))
            .collect();
        assert_eq!(
            got,
            vec![(1, 0b1111_0000), (2, 0b0000_0011), (0, 0b0000_1100)]
        );
        assert_eq!(p.idle(), 0);
    }

    #[test]
    fn without_preservation_sets_are_fresh_in_order() {
        let mut p = Placer::default();
        p.start(0, 0xff);
        p.want(one(0), 2, None, false);
        p.want(one(1), 4, set(0b1111_0000), false);
        p.place(&h100(), false);
        let got: Vec<(u32, u64)> = p
            .placed()
            .iter()
            .map(|x| (x.batch.ids()[0].0, x.gpus.mask()))
            .collect();
        assert_eq!(got, vec![(0, 0b0000_0011), (1, 0b0011_1100)]);
    }

    #[test]
    fn with_preservation_the_widest_want_is_placed_first() {
        // Asked narrow first, placed widest first: the 2-GPU want takes GPUs 0-1 and the
        // 1-GPU want GPU 2. In the order asked, the 1-GPU want would take GPU 0 and leave
        // the pair 1-2, which straddles the pairs the cluster's groups are made of.
        let mut p = Placer::default();
        p.start(0, 0b1111);
        p.want(one(0), 1, None, false);
        p.want(one(1), 2, None, false);
        p.place(
            &Cluster::new("h100", 1, 4, Topology::NvSwitch).unwrap(),
            true,
        );
        let got: Vec<(u32, u64)> = p
            .placed()
            .iter()
            .map(|x| (x.batch.ids()[0].0, x.gpus.mask()))
            .collect();
        assert_eq!(got, vec![(1, 0b0011), (0, 0b0100)]);
        // A want whose old set is partly idle keeps it only where enough GPUs are idle: with
        // one idle GPU, a 2-GPU want that ran on 0-1 is not placed at all.
        let mut p = Placer::default();
        p.start(0, 0b0001);
        p.want(one(0), 2, set(0b0011), false);
        p.place(&h100(), true);
        assert!(p.placed().is_empty());
        assert_eq!(p.idle(), 1);
    }

    #[test]
    fn shrinking_stays_inside_the_old_set_and_growth_uses_idle_gpus() {
        let mut p = Placer::default();
        p.start(0, 0b1111_1100);
        p.want(one(0), 2, set(0b1111_0000), false);
        p.place(&h100(), true);
        assert_eq!(p.placed()[0].gpus.mask(), 0b0011_0000);
        assert_eq!(p.grown(0, &h100()).map(|g| g.mask()), Some(0b0011_1100));
        p.grow(0, &h100());
        assert_eq!(p.idle(), 2);
        assert_eq!(p.grown(0, &h100()), None, "4 more GPUs are not idle");
    }
}
