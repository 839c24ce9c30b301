//! The waiting requests of one node, indexed so that a round reads only what it uses.
//!
//! Under sustained overload, requests that can no longer meet their deadline (late: all their
//! remaining steps at the fastest degree from now would end after it) pile up without bound,
//! while a round serves at most one of them per idle GPU. Rebuilding and sorting that backlog
//! at every round and backfill makes a run quadratic in its length. Each node keeps instead:
//! - `open`: waiting requests not known to be late (arrivals, requests back from a work),
//!   swept in arrival (id) order at each of the node's rounds; those found late move to
//! - `late`: ordered by (remaining steps, deadline, id), the order in which best-effort service
//!   hands out leftover GPUs, so a round reads only as many as it has idle GPUs;
//! - `by_deadline`: the late ones by (deadline, id), used only when late requests are dropped
//!   after a margin (`drop_late_after`), so a round finds those past it without a scan.
//!
//! Lateness is monotone while a request waits: its remaining steps and deadline are fixed and
//! time only grows, so a request found late stays late until it runs again (it then comes
//! back through `View::completed` and is swept anew).
//!
//! Entries are not removed when a request is dispatched or ends: every read checks an entry
//! against the view (still waiting, with the remaining steps of its key) and discards stale
//! ones, so each entry is paid for once, in O(log n). A round thus costs O(open) plus
//! O(log n) per request served, found late or dropped, instead of O(n log n) in the backlog.
//! Reading the view rather than its own records also keeps a round a function of the view:
//! run twice on one view, it decides the same.

use std::collections::BTreeSet;

use crate::policy::{Phase, RequestState, View};
use crate::time::Nanos;
use crate::workload::RequestId;

/// The order of best-effort service: fewest remaining steps, then earliest deadline, then id.
pub type LateKey = (u32, Nanos, RequestId);

/// `id`'s place in the order of best-effort service, as the view has it now.
pub fn late_key(view: &View<'_>, id: RequestId) -> LateKey {
    let s = view.request(id);
    (s.remaining_steps(), s.deadline(), id)
}

/// Whether the `late` entry `key` still describes a waiting request.
fn current(view: &View<'_>, key: &LateKey) -> bool {
    let s = view.request(key.2);
    s.phase == Phase::Waiting && s.remaining_steps() == key.0
}

/// The waiting (and, for shedding, running) requests of one node.
#[derive(Default)]
pub struct Backlog {
    /// Waiting requests not known to be late, in any order between sweeps; may hold stale ids
    /// and repeats.
    open: Vec<RequestId>,
    late: BTreeSet<LateKey>,
    by_deadline: BTreeSet<(Nanos, RequestId)>,
    /// Requests dispatched on this node, to tell which still run (see [`Backlog::running`]).
    running: Vec<RequestId>,
    /// Reused: late entries found stale while reading.
    stale: Vec<LateKey>,
}

impl Backlog {
    /// `id` is waiting now: it arrived, or came back from a work.
    pub fn add(&mut self, id: RequestId) {
        self.open.push(id);
    }

    /// `id` was dispatched on this node (only needed for [`Backlog::running`]).
    pub fn started(&mut self, id: RequestId) {
        self.running.push(id);
    }

    /// No request was added since the last sweep left nothing waiting (entries may be stale:
    /// `false` does not promise a waiting request).
    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.late.is_empty()
    }

    /// Forgets which requests are late: they are all open again (for when time went back).
    pub fn reopen(&mut self) {
        self.open.extend(self.late.iter().map(|k| k.2));
        self.late.clear();
        self.by_deadline.clear();
    }

    /// Sorts the node's waiting requests at `view.now`. Open ones that are not late go to
    /// `on_time`, in arrival order; late ones join the late order, or `drops` if late by more
    /// than `drop_after` (as do late ones from earlier sweeps now past that margin). `drops`
    /// ends sorted by id. Returns whether the node has a waiting request at all.
    pub fn sweep(
        &mut self,
        view: &View<'_>,
        is_late: impl Fn(&RequestState) -> bool,
        drop_after: Option<Nanos>,
        on_time: &mut Vec<RequestId>,
        drops: &mut Vec<RequestId>,
    ) -> bool {
        let now = view.now;
        let dropping = |s: &RequestState| drop_after.is_some_and(|x| now > s.deadline() + x);
        let mut open = std::mem::take(&mut self.open);
        open.sort_unstable();
        open.dedup();
        let mut any = false;
        open.retain(|&id| {
            let s = view.request(id);
            if s.phase != Phase::Waiting {
                return false;
            }
            any = true;
            if !is_late(s) {
                on_time.push(id);
                return true;
            }
            let key = late_key(view, id);
            if dropping(s) {
                self.late.remove(&key);
                drops.push(id);
            } else {
                self.late.insert(key);
                if drop_after.is_some() {
                    self.by_deadline.insert((s.deadline(), id));
                }
            }
            false
        });
        self.open = open;
        while let Some(&(deadline, id)) = self.by_deadline.first()
            && drop_after.is_some_and(|x| now > deadline + x)
        {
            self.by_deadline.pop_first();
            // Still waiting where this sweep or an earlier one left it: dropped now. Otherwise
            // it ran since; if it waits again it was swept above.
            if self.late.remove(&late_key(view, id)) && view.request(id).phase == Phase::Waiting {
                drops.push(id);
            }
        }
        drops.sort_unstable();
        drops.dedup();
        any || !drops.is_empty() || self.first_late(view).is_some()
    }

    /// The first waiting request in the late order, discarding stale entries before it.
    fn first_late(&mut self, view: &View<'_>) -> Option<RequestId> {
        while let Some(key) = self.late.first() {
            if current(view, key) {
                return Some(key.2);
            }
            self.late.pop_first();
        }
        None
    }

    /// Appends to `out` the first `n` requests of the late order merged with `extra` (waiting
    /// requests that are not in it, in the same order).
    pub fn first_late_n(
        &mut self,
        view: &View<'_>,
        extra: &[RequestId],
        n: usize,
        out: &mut Vec<RequestId>,
    ) {
        let mut stale = std::mem::take(&mut self.stale);
        stale.clear();
        let mut late = self.late.iter().peekable();
        let mut extra = extra.iter().map(|&id| late_key(view, id)).peekable();
        for _ in 0..n {
            while let Some(key) = late.next_if(|k| !current(view, k)) {
                stale.push(*key);
            }
            let take_extra = match (late.peek(), extra.peek()) {
                (None, None) => break,
                (Some(a), Some(b)) => b < *a,
                (None, Some(_)) => true,
                (Some(_), None) => false,
            };
            let key = if take_extra {
                extra.next()
            } else {
                late.next().copied()
            };
            out.extend(key.map(|k| k.2));
        }
        for key in &stale {
            self.late.remove(key);
        }
        self.stale = stale;
    }

    /// The requests running on this node now, by id.
    pub fn running(&mut self, view: &View<'_>) -> &[RequestId] {
        self.running
            .retain(|&id| view.request(id).phase == Phase::Running);
        self.running.sort_unstable();
        self.running.dedup();
        &self.running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cluster::{Cluster, Topology};
    use crate::cost::{CostModel, StepTimes};
    use crate::workload::{Request, Resolution, Workload};

    /// A view at `now` with nothing arriving or completing.
    fn view_at<'a>(
        now: Nanos,
        cluster: &'a Cluster,
        costs: &'a StepTimes,
        free: &'a crate::cluster::FreeGpus,
        all: &'a [RequestId],
        st: &'a [RequestState],
    ) -> View<'a> {
        View::new(now, cluster, costs, free, all, &[], &[], false, st)
    }

    struct Costs;
    impl CostModel for Costs {
        fn step_time(
            &self,
            _res: Resolution,
            _k: u32,
            _b: u32,
            _l: crate::cluster::Link,
        ) -> crate::error::Result<Nanos> {
            Ok(Nanos(10))
        }
        fn describe(&self) -> String {
            "backlog test costs".into()
        }
    }

    /// Requests as (steps, deadline), all arrived and waiting.
    fn states(reqs: &[(u32, u64)]) -> (Cluster, StepTimes, Vec<RequestState>) {
        let w = Workload::from_requests(
            reqs.iter()
                .enumerate()
                .map(|(i, &(steps, deadline))| Request {
                    id: RequestId(0),
                    label: i as u64,
                    arrival: Nanos::ZERO,
                    resolution: Resolution::square(256),
                    steps,
                    deadline: Nanos(deadline),
                    stages: Default::default(),
                })
                .collect(),
        );
        let cluster = Cluster::new("x", 1, 1, Topology::NvSwitch).unwrap();
        let costs = StepTimes::resolve(&Costs, &w.resolutions(), &cluster, &[1]).unwrap();
        let states = w
            .requests
            .iter()
            .map(|r| {
                let mut s = RequestState::new(r.clone(), costs.class_of(r.resolution).unwrap());
                s.phase = Phase::Waiting;
                s
            })
            .collect();
        (cluster, costs, states)
    }

    fn ids(v: &[u32]) -> Vec<RequestId> {
        v.iter().map(|&i| RequestId(i)).collect()
    }

    /// Late at `now` with 10 ns steps, as the policy judges it.
    fn late_at(now: u64) -> impl Fn(&RequestState) -> bool {
        move |s| now + 10 * u64::from(s.remaining_steps()) > s.deadline().0
    }

    #[test]
    fn late_requests_come_in_service_order_whatever_their_arrival() {
        // (steps, deadline): at t = 100 every request but 4 is late.
        let (cluster, costs, mut st) =
            states(&[(5, 120), (3, 90), (3, 80), (9, 50), (1, 1000), (3, 80)]);
        let free = cluster.all_free();
        let all = ids(&[0, 1, 2, 3, 4, 5]);
        let mut b = Backlog::default();
        for &id in all.iter().rev() {
            b.add(id); // any order, and twice
            b.add(id);
        }
        let view = view_at(Nanos(100), &cluster, &costs, &free, &all, &st);
        let (mut on_time, mut drops, mut out) = (Vec::new(), Vec::new(), Vec::new());
        assert!(b.sweep(&view, late_at(100), None, &mut on_time, &mut drops));
        assert_eq!(on_time, ids(&[4]));
        assert!(drops.is_empty());
        b.first_late_n(&view, &[], 10, &mut out);
        // Fewest steps first, then deadline, then id.
        assert_eq!(out, ids(&[2, 5, 1, 0, 3]));
        // Only as many as asked, and requests from elsewhere merge in by the same order.
        out.clear();
        b.first_late_n(&view, &ids(&[4]), 2, &mut out);
        assert_eq!(out, ids(&[4, 2]));

        // Request 2 ran and is back with one step left; 5 is running; 0 finished.
        st[2].steps_done = 2;
        st[5].phase = Phase::Running;
        st[0].phase = Phase::Finished;
        b.add(RequestId(2));
        let view = view_at(Nanos(110), &cluster, &costs, &free, &all, &st);
        on_time.clear();
        assert!(b.sweep(&view, late_at(110), None, &mut on_time, &mut drops));
        out.clear();
        b.first_late_n(&view, &[], 10, &mut out);
        assert_eq!(out, ids(&[2, 1, 3]));
        assert_eq!(b.late.len(), 3, "stale entries are gone once read");
    }

    #[test]
    fn late_requests_past_the_margin_are_dropped_once() {
        let (cluster, costs, mut st) = states(&[(5, 20), (5, 60), (1, 1000), (5, 30)]);
        let free = cluster.all_free();
        let all = ids(&[0, 1, 2, 3]);
        let mut b = Backlog::default();
        all.iter().for_each(|&id| b.add(id));
        let margin = Some(Nanos(25));
        let (mut on_time, mut drops) = (Vec::new(), Vec::new());
        let view = view_at(Nanos(40), &cluster, &costs, &free, &all, &st);
        assert!(b.sweep(&view, late_at(40), margin, &mut on_time, &mut drops));
        // 0 and 3 are past their deadline by less than the margin, 1 is late but not past it.
        assert_eq!((on_time.clone(), drops.clone()), (ids(&[2]), vec![]));
        // Request 3 runs meanwhile; at 90, 0 (70 past) and 1 (30 past) go; 3 (60 past) is
        // running and is not dropped.
        st[3].phase = Phase::Running;
        let view = view_at(Nanos(90), &cluster, &costs, &free, &all, &st);
        on_time.clear();
        assert!(b.sweep(&view, late_at(90), margin, &mut on_time, &mut drops));
        assert_eq!(drops, ids(&[0, 1]));
        // Back from its work, 3 is dropped at the next sweep, once.
        st[3].phase = Phase::Waiting;
        st[3].steps_done = 1;
        st[0].phase = Phase::Dropped;
        st[1].phase = Phase::Dropped;
        b.add(RequestId(3));
        b.add(RequestId(3));
        let view = view_at(Nanos(95), &cluster, &costs, &free, &all, &st);
        on_time.clear();
        drops.clear();
        assert!(b.sweep(&view, late_at(95), margin, &mut on_time, &mut drops));
        assert_eq!(drops, ids(&[3]));
        assert_eq!(on_time, ids(&[2]));
    }

    #[test]
    fn an_empty_node_reports_nothing_waiting() {
        let (cluster, costs, mut st) = states(&[(5, 20)]);
        let free = cluster.all_free();
        let all = ids(&[0]);
        let mut b = Backlog::default();
        b.add(RequestId(0));
        let (mut on_time, mut drops) = (Vec::new(), Vec::new());
        let view = view_at(Nanos(40), &cluster, &costs, &free, &all, &st);
        assert!(b.sweep(&view, late_at(40), None, &mut on_time, &mut drops));
        st[0].phase = Phase::Running;
        b.started(RequestId(0));
        let view = view_at(Nanos(50), &cluster, &costs, &free, &all, &st);
        assert!(!b.sweep(&view, late_at(50), None, &mut on_time, &mut drops));
        assert!(b.is_empty(), "the stale late entry was read and discarded");
        assert_eq!(b.running(&view), ids(&[0]).as_slice());
        st[0].phase = Phase::Finished;
        let view = view_at(Nanos(60), &cluster, &costs, &free, &all, &st);
        assert!(b.running(&view).is_empty());
    }
}
