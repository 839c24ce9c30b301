//! The GPUs a run schedules onto: nodes, their interconnect, and sets of GPUs.
//!
//! A cluster is `nodes x gpus_per_node` identical GPUs. A sequence-parallel group never spans
//! nodes (Ulysses all-to-alls need NVLink-class bandwidth), so a [`GpuSet`] is one node plus a
//! bit mask of that node's GPUs: any k-subset, not only aligned blocks (the paper warms groups
//! such as `[0,2,3,4]`). Whether a set crosses PCIe depends on the node's [`Topology`].
//! What the GPUs cost to run (price, power) is [`OperatingCost`], used only by the reports.

pub mod config;
mod gpu_set;
mod operating;

pub use gpu_set::{FreeGpus, GpuSet};
pub use operating::OperatingCost;

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The most GPUs one node may have (a [`GpuSet`] mask is a `u64`).
pub const MAX_GPUS_PER_NODE: u32 = 64;

/// The most GPUs a cluster may have: four times the largest the capacity search covers, and a
/// bound that keeps a typo (`--nodes 4294967295`) from allocating per-GPU state for billions.
pub const MAX_GPUS: u64 = 65_536;

/// How the GPUs inside one node talk to each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topology {
    /// Every GPU reaches every other over NVLink through NVSwitch (H100/H200 HGX boards).
    NvSwitch,
    /// GPUs are NVLink-bridged in pairs {0,1}, {2,3}, ...; anything else goes over PCIe (A40).
    NvlinkPairs,
}

impl FromStr for Topology {
    type Err = String;
    fn from_str(s: &str) -> Result<Topology, String> {
        match s {
            "nvswitch" => Ok(Topology::NvSwitch),
            "nvlink-pairs" => Ok(Topology::NvlinkPairs),
            other => Err(format!(
                "unknown topology `{other}`; expected `nvswitch` or `nvlink-pairs`"
            )),
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Topology::NvSwitch => "nvswitch",
            Topology::NvlinkPairs => "nvlink-pairs",
        })
    }
}

/// The slowest link an SP group's collectives cross; the cost model may charge them differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Link {
    NvLink,
    Pcie,
}

impl Link {
    pub const ALL: [Link; 2] = [Link::NvLink, Link::Pcie];

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Link::NvLink => "nvlink",
            Link::Pcie => "pcie",
        })
    }
}

impl FromStr for Link {
    type Err = String;
    fn from_str(s: &str) -> Result<Link, String> {
        match s {
            "nvlink" => Ok(Link::NvLink),
            "pcie" => Ok(Link::Pcie),
            other => Err(format!(
                "unknown link `{other}`; expected `nvlink` or `pcie`"
            )),
        }
    }
}

/// A homogeneous GPU cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    /// GPU model name as used in profiles (`h100`, `a40`, ...).
    pub gpu: String,
    pub nodes: u32,
    pub gpus_per_node: u32,
    pub topology: Topology,
    /// Price and power of one GPU (the built-in assumption for `gpu` unless the scenario
    /// sets it); only reports read it.
    pub operating: OperatingCost,
}

impl Cluster {
    /// Checks the shape and returns the cluster; zero GPUs or oversized nodes are refused.
    pub fn new(
        gpu: impl Into<String>,
        nodes: u32,
        gpus_per_node: u32,
        topology: Topology,
    ) -> Result<Cluster> {
        if nodes == 0 || gpus_per_node == 0 {
            return Err(Error::config_hint(
                format!(
                    "a cluster needs at least one GPU (got {nodes} node(s) x {gpus_per_node} GPU(s))"
                ),
                "set `nodes` and `gpus_per_node` in [cluster], or pass --gpus N",
            ));
        }
        if gpus_per_node > MAX_GPUS_PER_NODE {
            return Err(Error::config(format!(
                "{gpus_per_node} GPUs per node is more than the supported {MAX_GPUS_PER_NODE}"
            )));
        }
        let total = u64::from(nodes) * u64::from(gpus_per_node);
        if total > MAX_GPUS {
            return Err(Error::config_hint(
                format!(
                    "{nodes} node(s) x {gpus_per_node} GPU(s) is {total} GPUs, more than the {MAX_GPUS} a cluster may have"
                ),
                "set fewer `nodes` in [cluster] (--nodes), or a smaller --gpus",
            ));
        }
        if topology == Topology::NvlinkPairs && !gpus_per_node.is_multiple_of(2) {
            return Err(Error::config(format!(
                "topology nvlink-pairs needs an even number of GPUs per node, got {gpus_per_node}"
            )));
        }
        let gpu = gpu.into();
        Ok(Cluster {
            operating: OperatingCost::default_for(&gpu),
            gpu,
            nodes,
            gpus_per_node,
            topology,
        })
    }

    pub fn total_gpus(&self) -> u32 {
        self.nodes * self.gpus_per_node
    }

    /// The sequence-parallel degrees this cluster can run: powers of two up to the node size.
    pub fn degrees(&self) -> impl Iterator<Item = u32> + '_ {
        (0..32)
            .map(|i| 1u32 << i)
            .take_while(|&k| k <= self.gpus_per_node)
    }

    pub fn max_degree(&self) -> u32 {
        self.degrees().last().unwrap_or(1)
    }

    /// The slowest link collectives on `set` cross.
    pub fn link_of(&self, set: GpuSet) -> Link {
        match self.topology {
            Topology::NvSwitch => Link::NvLink,
            Topology::NvlinkPairs => {
                let mask = set.mask();
                let first_pair = 0b11u64 << (mask.trailing_zeros() & !1);
                if mask & !first_pair == 0 {
                    Link::NvLink
                } else {
                    Link::Pcie
                }
            }
        }
    }

    /// A set of `k` idle GPUs inside one node: the first node (lowest index) with `k` idle GPUs,
    /// its lowest-numbered ones; on NVLink-pair nodes a wholly idle pair is preferred for
    /// `k = 2` so that the group does not cross PCIe.
    pub fn find_free(&self, free: &FreeGpus, k: u32) -> Option<GpuSet> {
        (0..self.nodes).find_map(|node| {
            self.pick_in_node(free.node_mask(node), k)
                .map(|m| GpuSet::new(node, m))
        })
    }

    /// `k` GPUs out of the idle mask `free` of one node, by the rule of [`Cluster::find_free`].
    pub fn pick_in_node(&self, free: u64, k: u32) -> Option<u64> {
        if k == 0 || free.count_ones() < k {
            return None;
        }
        if self.topology == Topology::NvlinkPairs && k == 2 {
            let pairs = (0..self.gpus_per_node / 2).map(|p| 0b11u64 << (2 * p));
            if let Some(pair) = pairs.into_iter().find(|&pair| free & pair == pair) {
                return Some(pair);
            }
        }
        Some(lowest_bits(free, k))
    }

    /// All GPUs of every node, free.
    pub fn all_free(&self) -> FreeGpus {
        FreeGpus::new(self.nodes, self.gpus_per_node)
    }
}

/// The `k` lowest set bits of `mask` (which has at least `k`).
pub fn lowest_bits(mut mask: u64, k: u32) -> u64 {
    let mut out = 0u64;
    for _ in 0..k {
        let bit = mask & mask.wrapping_neg();
        out |= bit;
        mask &= mask - 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degrees_are_powers_of_two_up_to_the_node_size() {
        let c = Cluster::new("h100", 1, 8, Topology::NvSwitch).unwrap();
        assert_eq!(c.degrees().collect::<Vec<_>>(), vec![1, 2, 4, 8]);
        let c = Cluster::new("x", 1, 6, Topology::NvSwitch).unwrap();
        assert_eq!(c.degrees().collect::<Vec<_>>(), vec![1, 2, 4]);
    }

    #[test]
    fn impossible_clusters_are_refused() {
        assert!(Cluster::new("h100", 0, 8, Topology::NvSwitch).is_err());
        assert!(Cluster::new("h100", 1, 0, Topology::NvSwitch).is_err());
        assert!(Cluster::new("h100", 1, 65, Topology::NvSwitch).is_err());
        assert!(Cluster::new("a40", 1, 3, Topology::NvlinkPairs).is_err());
    }

    #[test]
    fn find_free_is_first_fit_and_prefers_whole_pairs() {
        let a = Cluster::new("a40", 2, 4, Topology::NvlinkPairs).unwrap();
        let mut f = a.all_free();
        f.take(GpuSet::new(0, 0b0001));
        assert_eq!(
            a.find_free(&f, 2),
            Some(GpuSet::new(0, 0b1100)),
            "pair (2,3), not the split (1,2)"
        );
        assert_eq!(a.find_free(&f, 3), Some(GpuSet::new(0, 0b1110)));
        assert_eq!(
            a.find_free(&f, 4),
            Some(GpuSet::new(1, 0b1111)),
            "node 0 has only 3 idle"
        );
        f.take(GpuSet::new(0, 0b1000));
        assert_eq!(
            a.find_free(&f, 2),
            Some(GpuSet::new(0, 0b0110)),
            "no whole pair left: lowest two"
        );
        assert_eq!(a.find_free(&f, 5), None);
    }

    #[test]
    fn nvlink_pairs_charge_pcie_for_sets_outside_one_pair() {
        let c = Cluster::new("a40", 1, 4, Topology::NvlinkPairs).unwrap();
        assert_eq!(c.link_of(GpuSet::new(0, 0b0011)), Link::NvLink);
        assert_eq!(c.link_of(GpuSet::new(0, 0b1100)), Link::NvLink);
        assert_eq!(c.link_of(GpuSet::new(0, 0b0100)), Link::NvLink);
        assert_eq!(c.link_of(GpuSet::new(0, 0b0110)), Link::Pcie);
        assert_eq!(c.link_of(GpuSet::new(0, 0b1111)), Link::Pcie);
        let h = Cluster::new("h100", 1, 8, Topology::NvSwitch).unwrap();
        assert_eq!(h.link_of(GpuSet::new(0, 0b1001_0110)), Link::NvLink);
    }
}
