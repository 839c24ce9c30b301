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
