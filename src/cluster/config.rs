//! The `[cluster]` section of a scenario: its keys as written, their defaults, and their
//! validation into a [`Cluster`].
//!
//! The GPU type is not a free choice: it must be the one the cost model describes (a profile
//! measured on H100s cannot price A40s), so it defaults to the cost source's GPU and a
//! mismatch is refused. The price and power keys override the built-in assumptions of
//! [`OperatingCost::default_for`].

use serde::{Deserialize, Serialize};

use super::{Cluster, OperatingCost, Topology};
use crate::error::{Error, InputError, Result};

/// Nodes of a cluster when the scenario gives none (`scenarios/default.toml` repeats it).
pub const DEFAULT_NODES: u32 = 1;
/// GPUs per node when the scenario gives none: an HGX board.
pub const DEFAULT_GPUS_PER_NODE: u32 = 8;

/// `[cluster]` as written: every key optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    pub gpu: Option<String>,
    pub nodes: Option<u32>,
    pub gpus_per_node: Option<u32>,
    pub topology: Option<String>,
    /// US dollars per GPU-hour (default: the built-in assumption for `gpu`).
    pub gpu_price_per_hour: Option<f64>,
    /// Watts drawn by a busy GPU (default: the board power of `gpu`).
    pub gpu_power_w: Option<f64>,
    /// Watts drawn by an idle GPU (default 0: idle energy not modelled).
    pub gpu_idle_power_w: Option<f64>,
}

/// The keys of [`ClusterSection`] that describe one GPU type: a layer that chooses another
/// cost source (hence maybe another GPU) drops the lower layers' values of these.
pub const GPU_TYPE_KEYS: [&str; 5] = [
    "gpu",
    "topology",
    "gpu_price_per_hour",
    "gpu_power_w",
    "gpu_idle_power_w",
];

impl ClusterSection {
    /// The nodes and GPUs per node this section asks for, defaults filled in.
    pub fn shape(&self) -> (u32, u32) {
        (
            self.nodes.unwrap_or(DEFAULT_NODES),
            self.gpus_per_node.unwrap_or(DEFAULT_GPUS_PER_NODE),
        )
    }

    /// The cluster, for a cost model that describes `cost_gpu` GPUs.
    pub fn build(&self, cost_gpu: &str, source: &str) -> Result<Cluster> {
        let gpu = self.gpu.clone().unwrap_or_else(|| cost_gpu.to_string());
        if gpu != cost_gpu {
            return Err(Error::config_hint(
                format!(
                    "{source}: the cluster has `{gpu}` GPUs but the cost model describes `{cost_gpu}`"
                ),
                format!(
                    "set [cluster] gpu = \"{cost_gpu}\", or choose a profile measured on {gpu}"
                ),
            ));
        }
        let topology: Topology = self
            .topology
            .as_deref()
            .unwrap_or(default_topology(&gpu))
            .parse()
            .map_err(|e: String| Error::at_key(source, "cluster.topology", e))?;
        let (nodes, gpus_per_node) = self.shape();
        let total = u64::from(nodes) * u64::from(gpus_per_node);
        if total > super::MAX_GPUS {
            return Err(Error::Input(
                InputError::new(
                    source,
                    format!(
                        "{nodes} node(s) x {gpus_per_node} GPU(s) is {total} GPUs, more than the {} a cluster may have",
                        super::MAX_GPUS
                    ),
                )
                .field(if self.nodes.is_some() || self.gpus_per_node.is_none() {
                    "cluster.nodes"
                } else {
                    "cluster.gpus_per_node"
                })
                .hint("give fewer nodes (the goodput search covers up to 16384 GPUs)"),
            ));
        }
        let mut cluster =
            Cluster::new(gpu, nodes, gpus_per_node, topology).map_err(|e| match e {
                Error::Config { message, hint } => Error::Config {
                    message: format!("{source}: [cluster]: {message}"),
                    hint,
                },
                other => other,
            })?;
        cluster.operating = self.operating(cluster.operating, source)?;
        Ok(cluster)
    }

    /// The price and power: this section's values over the GPU type's built-in `defaults`.
    fn operating(&self, defaults: OperatingCost, source: &str) -> Result<OperatingCost> {
        let amount = |field: &str, v: Option<f64>, unit: &str| -> Result<Option<f64>> {
            match v {
                Some(x) if !(x.is_finite() && x >= 0.0) => Err(Error::Input(
                    InputError::new(
                        source,
                        format!(
                            "expected a non-negative number of {unit}, got {x}",
                            x = crate::error::show_number(x)
                        ),
                    )
                    .field(field)
                    .hint("leave the key out to use the built-in assumption for the GPU type"),
                )),
                other => Ok(other),
            }
        };
        Ok(OperatingCost {
            price_per_hour: amount(
                "cluster.gpu_price_per_hour",
                self.gpu_price_per_hour,
                "US dollars per GPU-hour",
            )?
            .or(defaults.price_per_hour),
            power_w: amount("cluster.gpu_power_w", self.gpu_power_w, "watts")?.or(defaults.power_w),
            idle_power_w: amount("cluster.gpu_idle_power_w", self.gpu_idle_power_w, "watts")?
                .unwrap_or(defaults.idle_power_w),
        })
    }
}

/// How nodes of a GPU type are usually built: NVLink-bridged pairs for A40s, NVSwitch
/// (HGX boards) otherwise.
pub fn default_topology(gpu: &str) -> &'static str {
    if gpu == "a40" {
        "nvlink-pairs"
    } else {
        "nvswitch"
    }
}
