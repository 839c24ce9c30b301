//! Video without step-boundary preemption: an adapter that makes any policy run a video clip,
//! once started, to its last step on the GPUs it started on.
//!
//! Every policy here treats a step boundary as a preemption point: `stepwise` re-plans each
//! request at each of its steps, TetriServe at each round, and either may hand a clip's GPUs
//! to a more urgent image there. Systems that serve video beside images differ on exactly this
//! (GenServe pauses clips at step boundaries; a plain pipeline runs a clip to its end), so the
//! simulator can answer "what does step-boundary preemption of video buy the images?" for every
//! policy: this adapter turns every dispatch of a clip into one of all its remaining steps, and
//! drops the policy's cuts of running clips. Images keep the policy's own decisions.
//!
//! The policy inside does not know: it plans with the state the view shows (a running clip
//! holds its GPUs, as any running work does), which is what a deployment that cannot pause a
//! clip would see. The fixed-degree baselines and RSSP already run every request to its end,
//! so for them the adapter changes nothing.

use crate::policy::{Decision, Policy, View};

/// Whether a policy may preempt video clips at step boundaries (`[policy] video_preemption`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VideoPreemption {
    /// A clip may be paused, cut or moved at any step boundary, like an image (the default).
    #[default]
    StepBoundary,
    /// A clip, once started, runs all its remaining steps on the GPUs it started on.
    None,
}

impl VideoPreemption {
    /// The mode called `name`, if any.
    pub fn parse(name: &str) -> Option<VideoPreemption> {
        match name {
            "step-boundary" => Some(VideoPreemption::StepBoundary),
            "none" => Some(VideoPreemption::None),
            _ => None,
        }
    }
}

/// Wraps a policy so that video clips run to completion once started.
pub struct RunToCompletion {
    inner: Box<dyn Policy>,
}

impl RunToCompletion {
    pub fn new(inner: Box<dyn Policy>) -> RunToCompletion {
        RunToCompletion { inner }
    }
}

impl Policy for RunToCompletion {
    /// The inner policy's name: outputs compare a policy with itself under the two modes.
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn decide(&mut self, view: &View<'_>, out: &mut Vec<Decision>) {
        self.inner.decide(view, out);
        out.retain_mut(|d| match d {
            Decision::Dispatch(dispatch) => {
                let ids = dispatch.batch.ids();
                if view.request(ids[0]).request.resolution.is_video() {
                    // A batch shares its resolution, so every member is a clip; it runs until
                    // its first member ends (members of one batch are at the same step, and a
                    // workload's clips have one step count unless a trace says otherwise).
                    dispatch.steps = ids
                        .iter()
                        .map(|&id| view.request(id).remaining_steps())
                        .min()
                        .unwrap_or(dispatch.steps);
                }
                true
            }
            Decision::Cut(id) => !view.request(*id).request.resolution.is_video(),
            Decision::WakeAt(_) | Decision::Drop(_) => true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Cluster, FreeGpus, GpuSet, Topology};
    use crate::cost::{CostModel, StepTimes};
    use crate::policy::{Batch, Dispatch, Phase, RequestState};
    use crate::time::Nanos;
    use crate::workload::{Request, RequestId, Resolution, Workload};

    struct Costs;
    impl CostModel for Costs {
        fn step_time(
            &self,
            _: Resolution,
            _: u32,
            _: u32,
            _: crate::cluster::Link,
        ) -> crate::error::Result<Nanos> {
            Ok(Nanos(10))
        }
        fn describe(&self) -> String {
            "unit costs".into()
        }
    }

    /// Answers every decision point with the decisions it was given.
    struct Scripted(Vec<Decision>);
    impl Policy for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }
        fn decide(&mut self, _: &View<'_>, out: &mut Vec<Decision>) {
            out.extend(self.0.iter().copied());
        }
    }

    /// Two clips at the same step with 3 and 5 steps left, an image, and a running clip and
    /// image: a batch of clips runs until its first member ends, a single clip to its end,
    /// cuts of clips are dropped, and everything about images passes through unchanged.
    #[test]
    fn clips_run_to_their_end_and_only_their_cuts_are_dropped() {
        let clip = Resolution::video(256, 256, 5);
        let image = Resolution::square(256);
        let w = Workload::from_requests(
            [(clip, 3), (clip, 5), (image, 4), (clip, 6), (image, 6)]
                .iter()
                .enumerate()
                .map(|(i, &(resolution, steps))| Request {
                    id: RequestId(0),
                    label: i as u64,
                    arrival: Nanos::ZERO,
                    resolution,
                    steps,
                    deadline: Nanos(1_000),
                    stages: Default::default(),
                })
                .collect(),
        );
        let cluster = Cluster::new("x", 1, 4, Topology::NvSwitch).unwrap();
        let costs = StepTimes::resolve(&Costs, &w.resolutions(), &cluster, &[1, 2]).unwrap();
        let states: Vec<RequestState> = w
            .requests
            .iter()
            .map(|r| {
                let mut s = RequestState::new(r.clone(), costs.class_of(r.resolution).unwrap());
                s.phase = if r.id.0 >= 3 {
                    Phase::Running
                } else {
                    Phase::Waiting
                };
                s
            })
            .collect();
        let free = FreeGpus::new(1, 4);
        let ids: Vec<RequestId> = (0..5).map(RequestId).collect();
        let view = View::new(
            Nanos::ZERO,
            &cluster,
            &costs,
            &free,
            &ids,
            &[],
            &[],
            false,
            &states,
        );
        let one = |i: u32, steps: u32, mask: u64| {
            Decision::Dispatch(Dispatch {
                batch: Batch::one(RequestId(i)),
                steps,
                gpus: GpuSet::new(0, mask),
            })
        };
        let pair = Decision::Dispatch(Dispatch {
            batch: Batch::of(&[RequestId(1), RequestId(0)]).unwrap(),
            steps: 1,
            gpus: GpuSet::new(0, 0b11),
        });
        let mut adapter = RunToCompletion::new(Box::new(Scripted(vec![
            pair,
            one(1, 2, 0b100),
            one(2, 1, 0b1000),
            Decision::Cut(RequestId(3)),
            Decision::Cut(RequestId(4)),
            Decision::WakeAt(Nanos(7)),
            Decision::Drop(RequestId(2)),
        ])));
        let mut out = Vec::new();
        adapter.decide(&view, &mut out);
        let batch = |steps| {
            Decision::Dispatch(Dispatch {
                batch: Batch::of(&[RequestId(1), RequestId(0)]).unwrap(),
                steps,
                gpus: GpuSet::new(0, 0b11),
            })
        };
        assert_eq!(
            out,
            vec![
                batch(3),
                one(1, 5, 0b100),
                one(2, 1, 0b1000),
                Decision::Cut(RequestId(4)),
                Decision::WakeAt(Nanos(7)),
                Decision::Drop(RequestId(2)),
            ]
        );
        assert_eq!(adapter.name(), "scripted");
    }
}
