//! What a GPU costs to run: its rental price per hour and its power draw, for the cost and
//! energy columns of every summary (`$ per 1,000 met images`, `Wh per met image`).
//!
//! These are assumptions, not measurements, and the simulator never uses them to schedule.
//! The built-in defaults (below) come from public figures as of 2026-11 and are meant to be
//! replaced by the `[cluster]` keys `gpu_price_per_hour`, `gpu_power_w` and
//! `gpu_idle_power_w` with what the user actually pays and measures.
//!
//! How they are applied (see `metrics::Summary`): dollars on *provisioned* GPU time (every GPU
//! of the cluster from time 0 to the run's makespan: you pay for what you hold, busy or not),
//! energy on *busy* GPU time at board power plus the provisioned time left idle at idle power.
//! Board power is the most a board may draw (its TDP), so busy energy is an upper estimate.

/// The price and power of one GPU of a cluster; `None` where neither the scenario nor the
/// built-in table knows it (the summary then leaves the dollar or energy figures out).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OperatingCost {
    /// US dollars per GPU-hour.
    pub price_per_hour: Option<f64>,
    /// Power drawn by a busy GPU, watts.
    pub power_w: Option<f64>,
    /// Power drawn by an idle GPU, watts. Not modelled unless set: the default is 0 W, so
    /// energy counts busy time only.
    pub idle_power_w: f64,
}

impl OperatingCost {
    /// The built-in assumption for a GPU type (`h100`, `h200`, `a40`), if there is one.
    ///
    /// Prices are on-demand rental rates per GPU-hour, assumed, as of 2026-11:
    /// - H100 SXM $3.00 and H200 SXM $4.00: inside the "specialty cloud" on-demand ranges
    ///   ($2.50-3.50 and $3.50-4.50) of the Mercatus cloud GPU price survey of May 2026
    ///   (mercatus-ai.com/blog/cloud-gpu-pricing); hyperscalers list more, spot less.
    /// - A40 $0.40: a typical long-tail on-demand rate for this older PCIe board; no dated
    ///   list was at hand, so treat it as the roughest of the three.
    ///
    /// Power is the board power (maximum TDP) of NVIDIA's data sheets: H100 SXM5 700 W,
    /// H200 SXM 700 W, A40 300 W.
    pub fn default_for(gpu: &str) -> OperatingCost {
        let (price, power) = match gpu {
            "h100" => (3.00, 700.0),
            "h200" => (4.00, 700.0),
            "a40" => (0.40, 300.0),
            _ => return OperatingCost::default(),
        };
        OperatingCost {
            price_per_hour: Some(price),
            power_w: Some(power),
            idle_power_w: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_gpus_have_defaults_and_others_none() {
        let h = OperatingCost::default_for("h100");
        assert_eq!((h.price_per_hour, h.power_w), (Some(3.0), Some(700.0)));
        assert_eq!(OperatingCost::default_for("a40").power_w, Some(300.0));
        assert_eq!(
            OperatingCost::default_for("mi300x"),
            OperatingCost::default()
        );
    }
}
