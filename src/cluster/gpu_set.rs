//! [`GpuSet`]: a set of GPUs inside one node, and [`FreeGpus`]: which GPUs are idle.
//!
//! Both are bit masks so that "is this set free", "allocate", "release" are single
//! instructions: the schedulers call them in their innermost loops.

use std::fmt;

/// A non-empty set of GPUs of one node. GPU `i` of node `n` has the global index
/// `n * gpus_per_node + i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GpuSet {
    node: u32,
    mask: u64,
}

impl GpuSet {
    pub fn new(node: u32, mask: u64) -> GpuSet {
        GpuSet { node, mask }
    }

    /// GPUs `first .. first + len` of `node`.
    pub fn range(node: u32, first: u32, len: u32) -> GpuSet {
        let mask = if len >= 64 {
            u64::MAX
        } else {
            ((1u64 << len) - 1) << first
        };
        GpuSet { node, mask }
    }

    pub fn node(self) -> u32 {
        self.node
    }

    pub fn mask(self) -> u64 {
        self.mask
    }

    /// Number of GPUs: the SP degree of work placed on this set.
    pub fn len(self) -> u32 {
        self.mask.count_ones()
    }

    pub fn is_empty(self) -> bool {
        self.mask == 0
    }

    /// Local GPU indices (within the node), ascending.
    pub fn local_gpus(self) -> impl Iterator<Item = u32> {
        let mut m = self.mask;
        std::iter::from_fn(move || {
            if m == 0 {
                return None;
            }
            let i = m.trailing_zeros();
            m &= m - 1;
            Some(i)
        })
    }

    /// Global GPU indices, ascending.
    pub fn global_gpus(self, gpus_per_node: u32) -> impl Iterator<Item = u32> {
        let base = self.node * gpus_per_node;
        self.local_gpus().map(move |i| base + i)
    }

    pub fn is_subset_of(self, other: GpuSet) -> bool {
        self.node == other.node && self.mask & !other.mask == 0
    }

    pub fn overlaps(self, other: GpuSet) -> bool {
        self.node == other.node && self.mask & other.mask != 0
    }
}

impl fmt::Display for GpuSet {
    /// `n0:[0,2,3]`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}:[", self.node)?;
        for (j, i) in self.local_gpus().enumerate() {
            if j > 0 {
                f.write_str(",")?;
            }
            write!(f, "{i}")?;
        }
        f.write_str("]")
    }
}

/// The idle GPUs of every node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreeGpus {
    free: Vec<u64>,
    gpus_per_node: u32,
}

impl FreeGpus {
    pub fn new(nodes: u32, gpus_per_node: u32) -> FreeGpus {
        let full = if gpus_per_node >= 64 {
            u64::MAX
        } else {
            (1u64 << gpus_per_node) - 1
        };
        FreeGpus {
            free: vec![full; nodes as usize],
            gpus_per_node,
        }
    }

    pub fn nodes(&self) -> u32 {
        self.free.len() as u32
    }

    pub fn gpus_per_node(&self) -> u32 {
        self.gpus_per_node
    }

    /// Free GPUs of `node` as a mask.
    pub fn node_mask(&self, node: u32) -> u64 {
        self.free[node as usize]
    }

    pub fn free_on(&self, node: u32) -> u32 {
        self.free[node as usize].count_ones()
    }

    pub fn total_free(&self) -> u32 {
        self.free.iter().map(|m| m.count_ones()).sum()
    }

    pub fn is_free(&self, set: GpuSet) -> bool {
        (set.node as usize) < self.free.len() && self.free[set.node as usize] & set.mask == set.mask
    }

    /// Marks `set` busy. The caller must have checked [`FreeGpus::is_free`].
    pub fn take(&mut self, set: GpuSet) {
        debug_assert!(self.is_free(set), "taking busy GPUs {set}");
        self.free[set.node as usize] &= !set.mask;
    }

    pub fn release(&mut self, set: GpuSet) {
        debug_assert!(
            self.free[set.node as usize] & set.mask == 0,
            "releasing idle GPUs {set}"
        );
        self.free[set.node as usize] |= set.mask;
    }

    /// The `k` lowest-numbered free GPUs of `node`, if it has that many.
    pub fn lowest_free(&self, node: u32, k: u32) -> Option<GpuSet> {
        let mut m = self.free[node as usize];
        if m.count_ones() < k || k == 0 {
            return None;
        }
        let mut mask = 0u64;
        for _ in 0..k {
            let bit = m & m.wrapping_neg();
            mask |= bit;
            m &= m - 1;
        }
        Some(GpuSet::new(node, mask))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_and_release_track_idle_gpus() {
        let mut f = FreeGpus::new(2, 8);
        let a = GpuSet::new(0, 0b0000_0101);
        assert!(f.is_free(a));
        f.take(a);
        assert!(!f.is_free(a));
        assert!(!f.is_free(GpuSet::new(0, 0b1)));
        assert_eq!(f.free_on(0), 6);
        assert_eq!(f.total_free(), 14);
        assert_eq!(f.lowest_free(0, 3), Some(GpuSet::new(0, 0b0001_1010)));
        f.release(a);
        assert_eq!(f.total_free(), 16);
        assert_eq!(f.lowest_free(1, 9), None);
    }

    #[test]
    fn sets_know_their_gpus() {
        let s = GpuSet::new(1, 0b1011);
        assert_eq!(s.len(), 3);
        assert_eq!(s.local_gpus().collect::<Vec<_>>(), vec![0, 1, 3]);
        assert_eq!(s.global_gpus(8).collect::<Vec<_>>(), vec![8, 9, 11]);
        assert_eq!(s.to_string(), "n1:[0,1,3]");
        assert!(GpuSet::new(1, 0b11).is_subset_of(s));
        assert!(!GpuSet::new(0, 0b11).is_subset_of(s));
        assert_eq!(GpuSet::range(0, 2, 2).mask(), 0b1100);
    }
}
