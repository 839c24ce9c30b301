//! RSSP, resolution-specific sequence parallelism (the paper's "oracle static configuration").
//!
//! Each resolution always runs at one fixed degree, chosen offline: by default the paper's
//! 256->1, 512->1, 1024->2, 2048->8. A resolution without a configured degree gets the smallest
//! degree whose `steps x step time` meets its base SLO in isolation (the rule the paper's
//! choice follows from under a sound profile), or the fastest degree if none does.
//!
//! Queueing is strict FCFS: the oldest waiting request starts as soon as any `k` GPUs of one
//! node are idle (any k-subset, first fit over nodes; a whole NVLink pair first on paired
//! nodes), and runs all its steps without preemption. A request that does not fit blocks
//! those behind it (head-of-line blocking, as in a FCFS engine); there is no backfilling.

use crate::cluster::Cluster;
use crate::cost::StepTimes;
use crate::error::{Error, Result};
use crate::policy::{Batch, Decision, Dispatch, Policy, PolicyConfig, PolicyKind, View};
use crate::workload::Resolution;

pub struct Rssp {
    /// Its name, from the policy registry.
    name: String,
    /// Degree per resolution class of the run's [`StepTimes`].
    degree: Vec<u32>,
    /// Waiting requests, first come first served.
    queue: std::collections::VecDeque<crate::workload::RequestId>,
}

impl Rssp {
    /// The paper's configuration.
    pub fn paper_degrees() -> Vec<(Resolution, u32)> {
        vec![
            (Resolution::square(256), 1),
            (Resolution::square(512), 1),
            (Resolution::square(1024), 2),
            (Resolution::square(2048), 8),
        ]
    }

    pub fn new(cluster: &Cluster, costs: &StepTimes, config: &PolicyConfig) -> Result<Rssp> {
        let mut degree = Vec::with_capacity(costs.classes().len());
        for (i, &res) in costs.classes().iter().enumerate() {
            let class = crate::cost::ResClass(i as u16);
            let k = match config.rssp_degrees.iter().find(|(r, _)| *r == res) {
                Some(&(_, k)) => {
                    if !k.is_power_of_two() || k > cluster.gpus_per_node {
                        return Err(Error::config_hint(
                            format!(
                                "rssp degree {k} for {res} is not a power of two within a node of {} GPUs",
                                cluster.gpus_per_node
                            ),
                            "set [policy.rssp] degrees to powers of two no larger than gpus_per_node",
                        ));
                    }
                    k
                }
                None => auto_degree(cluster, costs, class, config),
            };
            degree.push(k);
        }
        Ok(Rssp {
            name: PolicyKind::Rssp.to_string(),
            degree,
            queue: std::collections::VecDeque::new(),
        })
    }

    /// The degree this policy uses for each of the run's resolutions.
    pub fn degrees(&self) -> &[u32] {
        &self.degree
    }
}

/// Smallest degree meeting the base SLO in isolation; the fastest degree if none does.
fn auto_degree(
    cluster: &Cluster,
    costs: &StepTimes,
    class: crate::cost::ResClass,
    config: &PolicyConfig,
) -> u32 {
    let res = costs.resolution(class);
    if let Some(base) = config.slo_bases.base(res) {
        for k in cluster.degrees() {
            if costs.step(class, k).times(u64::from(config.steps)) <= base {
                return k;
            }
        }
    }
    costs.fastest(class).0
}

impl Policy for Rssp {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        self.queue.extend(view.arrived.iter().copied());
        if self.queue.is_empty() {
            return;
        }
        let mut free = view.free.clone();
        while let Some(&id) = self.queue.front() {
            let r = view.request(id);
            let k = self.degree[r.class.index()];
            let Some(gpus) = view.cluster.find_free(&free, k) else {
                return;
            };
            free.take(gpus);
            self.queue.pop_front();
            out.push(Decision::Dispatch(Dispatch {
                batch: Batch::one(id),
                steps: r.remaining_steps(),
                gpus,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Link, Topology};
    use crate::cost::CostModel;
    use crate::time::Nanos;
    use crate::workload::SloBases;

    /// 256 px: 100 / 60 / 40 ms at SP 1 / 2 / 4; 512 px: three times that.
    struct Costs;
    impl CostModel for Costs {
        fn step_time(&self, res: Resolution, k: u32, _b: u32, _l: Link) -> Result<Nanos> {
            let ms = match k {
                1 => 100.0,
                2 => 60.0,
                _ => 40.0,
            } * if res.width == 256 { 1.0 } else { 3.0 };
            Ok(Nanos::from_millis(ms))
        }
        fn describe(&self) -> String {
            "rssp test costs".into()
        }
    }

    fn degrees(bases: &[(u32, f64)], explicit: Vec<(Resolution, u32)>) -> Result<Vec<u32>> {
        let cluster = Cluster::new("x", 1, 4, Topology::NvSwitch).unwrap();
        let res = [Resolution::square(256), Resolution::square(512)];
        let costs = StepTimes::resolve(&Costs, &res, &cluster, &[1]).unwrap();
        let config = PolicyConfig {
            rssp_degrees: explicit,
            slo_bases: SloBases::new(
                bases
                    .iter()
                    .map(|&(px, s)| (Resolution::square(px), Nanos::from_secs(s)))
                    .collect(),
            ),
            steps: 10,
            ..PolicyConfig::default()
        };
        Rssp::new(&cluster, &costs, &config).map(|r| r.degrees().to_vec())
    }

    #[test]
    fn the_automatic_degree_is_the_smallest_that_meets_the_base_alone() {
        // 10 steps of 256 px: 1.0 / 0.6 / 0.4 s; of 512 px: 3.0 / 1.8 / 1.2 s.
        assert_eq!(
            degrees(&[(256, 1.0), (512, 2.0)], vec![]).unwrap(),
            vec![1, 2]
        );
        assert_eq!(
            degrees(&[(256, 0.7), (512, 1.2)], vec![]).unwrap(),
            vec![2, 4]
        );
        // No degree meets it, or no base at all: the fastest degree.
        assert_eq!(degrees(&[(256, 0.3)], vec![]).unwrap(), vec![4, 4]);
        // A listed degree wins over the rule; an impossible one is refused.
        let listed = vec![(Resolution::square(512), 1)];
        assert_eq!(
            degrees(&[(256, 1.0), (512, 2.0)], listed).unwrap(),
            vec![1, 1]
        );
        assert!(degrees(&[], vec![(Resolution::square(256), 3)]).is_err());
        assert!(degrees(&[], vec![(Resolution::square(256), 8)]).is_err());
    }
}
