//! How long a denoising step takes: the cost models, and the table a run resolves them into.
//!
//! A [`CostModel`] answers "one step of a `res` image at SP degree `k`, batch `b`, over link `l`
//! takes how long?". Two implementations:
//! - [`profile::ProfileTable`]: a table of per-step times read from CSV (measured, or
//!   generated), with documented interpolation between resolutions;
//! - [`analytic::Analytic`]: a roofline estimate from the model's shape and the GPU's
//!   throughput and links, for hardware nobody has profiled.
//!
//! Before a run starts, the model is resolved into [`StepTimes`] for exactly the resolutions,
//! degrees and batch sizes the run can use. Every lookup that could fail fails *there*, with a
//! message naming the resolution; during the run, lookups are infallible array reads.

pub mod analytic;
pub mod config;
pub mod profile;

use crate::cluster::{Cluster, Link, Topology};
use crate::error::{Error, Result};
use crate::time::Nanos;
use crate::workload::Resolution;

/// Per-step execution time of a diffusion transformer on some GPU.
pub trait CostModel {
    /// Time of one denoising step of `batch` images at `res` on `degree` GPUs whose
    /// collectives cross `link`.
    fn step_time(&self, res: Resolution, degree: u32, batch: u32, link: Link) -> Result<Nanos>;

    /// One line saying what this model is (`profile h100-flux1-dev.csv`, `analytic flux1-dev on h100`).
    fn describe(&self) -> String;
}

/// Costs of a request outside its denoising steps, and of moving it between GPU sets.
#[derive(Clone, Debug, PartialEq)]
pub struct Overheads {
    /// Text encoders (T5 + CLIP), charged before the first step, on the first step's GPUs.
    pub text_encoder: Nanos,
    /// VAE decode, charged after the last step, on the last step's GPUs, per 1,000 latent
    /// tokens (a video's tokens count every latent frame).
    pub vae_decode_per_1k_tokens: Nanos,
    /// Hand-off when a request resumes on a GPU set other than its previous one,
    /// as a fraction of one step on the new set (the paper's Table 4 measures <= 0.05%).
    pub remap_fraction: f64,
    /// Cost of setting up a GPU set as an SP group (NCCL communicator set-up): by default paid
    /// the first time each set is used (communicators are cached); with
    /// [`group_setup_on_regroup`](Self::group_setup_on_regroup), every time a request moves
    /// onto a multi-GPU set other than its last. Zero by default: the paper pre-creates and
    /// warms its groups.
    pub group_setup: Nanos,
    /// Charge [`group_setup`](Self::group_setup) on every regroup (no communicator cache), not
    /// only on a set's first use. The regrouping cost placement preservation avoids.
    pub group_setup_on_regroup: bool,
    /// Fixed cost of every work: launching it and moving the request's state in and out
    /// (the real backend regenerates inputs and uploads and downloads the latent each time).
    /// Zero by default; `tetriserve validate` measures what the real backend pays.
    pub dispatch: Nanos,
    /// Moving a request's latent to another node (over the inter-node network) when it
    /// resumes there, on top of the hand-off inside a node (`remap_fraction`). An assumption:
    /// a 2048 px FLUX.1-dev latent is about 2 MiB (256 x 256 x 16 bf16 values), about 0.17 ms
    /// at 100 Gb/s, so the default 0.2 ms covers it with some latency to spare. Only policies
    /// that move requests between nodes pay it (`stepwise`); the others pin them.
    pub node_handoff: Nanos,
}

impl Default for Overheads {
    /// Text encoder and VAE default to zero: the paper runs them off the critical path of the
    /// denoising GPUs and reports latencies dominated by the steps. The remap fraction is the
    /// paper's largest measured hand-off (0.05%).
    fn default() -> Overheads {
        Overheads {
            text_encoder: Nanos::ZERO,
            vae_decode_per_1k_tokens: Nanos::ZERO,
            remap_fraction: 0.0005,
            group_setup: Nanos::ZERO,
            group_setup_on_regroup: false,
            dispatch: Nanos::ZERO,
            node_handoff: Nanos(200_000),
        }
    }
}

impl Overheads {
    pub fn vae_decode(&self, res: Resolution) -> Nanos {
        let ns = u128::from(self.vae_decode_per_1k_tokens.0) * u128::from(res.tokens()) / 1000;
        Nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

/// Dense index of a resolution among those a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResClass(pub u16);

impl ResClass {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A cost model resolved for one run: step times for every (resolution, degree, batch, link)
/// the run can ask for.
#[derive(Clone, Debug)]
pub struct StepTimes {
    classes: Vec<Resolution>,
    /// Per class: whether it is on the service's menu (see [`StepTimes::resolve_menu`]).
    menu: Vec<bool>,
    degrees: u32,
    batches: Vec<u32>,
    /// `[class][log2 degree][batch index][link]`, `None` where the model has no answer
    /// for a batch size > 1 (batch 1 is always present).
    table: Vec<Option<Nanos>>,
    description: String,
}

impl StepTimes {
    /// Resolves `model` for `resolutions` on `cluster`'s degrees and the given batch sizes.
    ///
    /// Batch size 1 must be available for every resolution and degree, otherwise this fails
    /// naming the first gap. Larger batch sizes are optional (`None` when unavailable).
    ///
    /// Every resolution is on the menu (see [`resolve_menu`](Self::resolve_menu)).
    pub fn resolve(
        model: &dyn CostModel,
        resolutions: &[Resolution],
        cluster: &Cluster,
        batches: &[u32],
    ) -> Result<StepTimes> {
        StepTimes::resolve_menu(model, resolutions, &[], cluster, batches)
    }

    /// Resolves `model` for the service's `menu` of resolutions plus `extra` ones (the
    /// workload's, which may lie off the menu).
    ///
    /// The menu is what an online scheduler may know before requests arrive: the resolutions
    /// the service offers. Anything a policy derives from the set of resolutions (TetriServe's
    /// round length) must come from the menu, never from `extra`, which is the future trace.
    pub fn resolve_menu(
        model: &dyn CostModel,
        menu: &[Resolution],
        extra: &[Resolution],
        cluster: &Cluster,
        batches: &[u32],
    ) -> Result<StepTimes> {
        let resolutions: Vec<Resolution> = menu.iter().chain(extra).copied().collect();
        let mut batches: Vec<u32> = batches.iter().copied().filter(|&b| b > 1).collect();
        batches.push(1);
        batches.sort_unstable();
        batches.dedup();
        let degrees = cluster.degrees().count() as u32;
        let mut classes = resolutions;
        classes.sort_by_key(|r| (r.tokens(), r.width, r.height));
        classes.dedup();
        let on_menu: Vec<bool> = classes
            .iter()
            .map(|r| menu.is_empty() || menu.contains(r))
            .collect();
        let mut table = Vec::with_capacity(classes.len() * degrees as usize * batches.len() * 2);
        for &res in &classes {
            for k in cluster.degrees() {
                for &b in &batches {
                    for link in Link::ALL {
                        // On NVSwitch nodes nothing crosses PCIe; on paired nodes a single GPU
                        // never communicates. Both reuse the NVLink entry.
                        let link = if cluster.topology == Topology::NvSwitch || k == 1 {
                            Link::NvLink
                        } else {
                            link
                        };
                        let t = match model.step_time(res, k, b, link) {
                            Ok(t) if t > Nanos::ZERO => Some(t),
                            Ok(_) => {
                                return Err(Error::Cost(format!(
                                    "{} gives a non-positive step time for {res} at SP {k}, batch {b}",
                                    model.describe()
                                )));
                            }
                            Err(e) if b == 1 => return Err(e),
                            Err(_) => None,
                        };
                        table.push(t);
                    }
                }
            }
        }
        Ok(StepTimes {
            classes,
            menu: on_menu,
            degrees,
            batches,
            table,
            description: model.describe(),
        })
    }

    pub fn describe(&self) -> &str {
        &self.description
    }

    /// The run's resolutions, in class order (ascending token count).
    pub fn classes(&self) -> &[Resolution] {
        &self.classes
    }

    /// The classes on the service's menu, ascending (every class when no menu was given).
    pub fn menu(&self) -> impl Iterator<Item = ResClass> + '_ {
        self.menu
            .iter()
            .enumerate()
            .filter(|(_, on)| **on)
            .map(|(i, _)| ResClass(i as u16))
    }

    pub fn class_of(&self, res: Resolution) -> Option<ResClass> {
        self.classes
            .iter()
            .position(|&r| r == res)
            .map(|i| ResClass(i as u16))
    }

    pub fn resolution(&self, class: ResClass) -> Resolution {
        self.classes[class.index()]
    }

    /// Supported batch sizes, ascending (always includes 1).
    pub fn batches(&self) -> &[u32] {
        &self.batches
    }

    /// Largest SP degree resolved (the node size rounded down to a power of two).
    pub fn max_degree(&self) -> u32 {
        1 << (self.degrees - 1)
    }

    fn slot(&self, class: ResClass, degree: u32, batch: u32, link: Link) -> Option<usize> {
        if !degree.is_power_of_two() || degree.trailing_zeros() >= self.degrees {
            return None;
        }
        let b = self.batches.iter().position(|&x| x == batch)?;
        let d = degree.trailing_zeros() as usize;
        let nb = self.batches.len();
        Some((((class.index() * self.degrees as usize) + d) * nb + b) * 2 + link.index())
    }

    /// Step time, or `None` for a degree or batch size the run did not resolve.
    pub fn get(&self, class: ResClass, degree: u32, batch: u32, link: Link) -> Option<Nanos> {
        self.slot(class, degree, batch, link)
            .and_then(|i| self.table[i])
    }

    /// Step time at batch 1 over NVLink: what the schedulers plan with.
    ///
    /// # Panics
    /// If `degree` is not a power of two within the node (a scheduler bug, not user input).
    pub fn step(&self, class: ResClass, degree: u32) -> Nanos {
        self.get(class, degree, 1, Link::NvLink).unwrap_or_else(|| {
            panic!("no step time for degree {degree}: not a power of two within the node")
        })
    }

    /// The fastest degree for `class` and its step time (ties go to the smaller degree).
    pub fn fastest(&self, class: ResClass) -> (u32, Nanos) {
        (0..self.degrees)
            .map(|d| (1u32 << d, self.step(class, 1 << d)))
            .min_by_key(|&(k, t)| (t, k))
            .expect("at least degree 1")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// t = tokens/256 ms / degree + 1 ms; batch b multiplies by b; PCIe adds 5 ms.
    struct Toy;
    impl CostModel for Toy {
        fn step_time(&self, res: Resolution, k: u32, b: u32, link: Link) -> Result<Nanos> {
            if b > 2 {
                return Err(Error::Cost("no batch > 2".into()));
            }
            let pcie = if link == Link::Pcie { 5.0 } else { 0.0 };
            Ok(Nanos::from_millis(
                res.tokens() as f64 / 256.0 / k as f64 * b as f64 + 1.0 + pcie,
            ))
        }
        fn describe(&self) -> String {
            "toy".into()
        }
    }

    #[test]
    fn resolves_every_degree_batch_and_link() {
        let c = Cluster::new("a40", 1, 4, Topology::NvlinkPairs).unwrap();
        let r = [Resolution::square(512), Resolution::square(256)];
        let t = StepTimes::resolve(&Toy, &r, &c, &[1, 2, 4]).unwrap();
        assert_eq!(
            t.classes(),
            &[Resolution::square(256), Resolution::square(512)]
        );
        let c512 = t.class_of(Resolution::square(512)).unwrap();
        assert_eq!(t.step(c512, 1), Nanos::from_millis(5.0));
        assert_eq!(t.step(c512, 4), Nanos::from_millis(2.0));
        assert_eq!(
            t.get(c512, 2, 2, Link::Pcie),
            Some(Nanos::from_millis(10.0))
        );
        assert_eq!(
            t.get(c512, 1, 1, Link::Pcie),
            Some(Nanos::from_millis(5.0)),
            "one GPU never crosses PCIe"
        );
        assert_eq!(t.get(c512, 2, 4, Link::NvLink), None, "batch 4 unavailable");
        assert_eq!(t.get(c512, 8, 1, Link::NvLink), None, "beyond the node");
        assert_eq!(t.get(c512, 3, 1, Link::NvLink), None, "not a power of two");
        assert_eq!(t.fastest(c512), (4, Nanos::from_millis(2.0)));
        assert_eq!(t.max_degree(), 4);
    }
}
