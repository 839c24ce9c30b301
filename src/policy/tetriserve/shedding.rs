//! Overload shedding for `tetriserve-shed` (not in the paper): which requests to give up on
//! when a node cannot serve all of them in time.
//!
//! The node is seen as one fluid machine doing `capacity` GPU-seconds of work per second
//! (its GPU count). Each job needs at least its minimal-GPU-time plan's work before its
//! deadline. Visiting jobs in earliest-deadline order, whenever the work due by a deadline
//! exceeds what the machine can do by then, the job with the largest shed key seen so far is
//! given up. With the key = the work, this is Moore and Hodgson's rule (1968), which keeps
//! the most jobs on time on one machine; here it keeps the most requests whose work fits the
//! node's fluid capacity. The fluid test is optimistic (no rounds, no degree limits), so it
//! fires only in real overload. Jobs without a key (running requests) count toward the load
//! but are never shed; and nothing is shed for a deadline that unsheddable work alone
//! overloads, since giving jobs up there would save nothing.

use std::collections::BinaryHeap;

use crate::time::Nanos;

/// One request (or batch) as overload shedding sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShedJob {
    pub deadline: Nanos,
    /// Least GPU-nanoseconds of work it needs before its deadline.
    pub work: u128,
    /// Larger keys are shed first; `None`: cannot be shed.
    pub key: Option<u128>,
}

/// The indices (into `jobs`, ascending) of the jobs to shed so that the work due by every
/// deadline fits `gpus x (deadline - now) x capacity`. Among equal keys the later index (the
/// later arrival) goes first. Where unsheddable work alone exceeds a deadline's capacity, the
/// jobs given up there are kept after all (shedding them would not make it fit).
pub fn shed(jobs: &[ShedJob], now: Nanos, gpus: u32, capacity: f64) -> Vec<usize> {
    // The common case without overload, in one pass and no allocation: when all the work
    // fits the earliest deadline's capacity, every deadline's prefix fits its own (prefixes
    // hold less work, later deadlines more capacity), so nothing is shed.
    let earliest = jobs.iter().map(|j| j.deadline).min();
    let total: u128 = jobs.iter().map(|j| j.work).sum();
    if let Some(d) = earliest
        && total as f64 <= capacity * f64::from(gpus) * d.0.saturating_sub(now.0) as f64
    {
        return Vec::new();
    }
    shed_scan(jobs, now, gpus, capacity)
}

/// [`shed`] without its shortcut: the scan over deadlines.
fn shed_scan(jobs: &[ShedJob], now: Nanos, gpus: u32, capacity: f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_unstable_by_key(|&i| (jobs[i].deadline, i));
    let mut kept = BinaryHeap::new();
    let mut out = Vec::new();
    let mut due = 0u128;
    for &i in &order {
        let job = jobs[i];
        due += job.work;
        if let Some(key) = job.key {
            kept.push((key, i));
        }
        let can = capacity * f64::from(gpus) * job.deadline.0.saturating_sub(now.0) as f64;
        let before = out.len();
        while due as f64 > can {
            let Some((_, j)) = kept.pop() else {
                break;
            };
            due -= jobs[j].work;
            out.push(j);
        }
        if due as f64 > can {
            // Still over with nothing left to shed: take this deadline's sheds back.
            for j in out.drain(before..) {
                due += jobs[j].work;
                kept.push((jobs[j].key.expect("only keyed jobs are shed"), j));
            }
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Whether the jobs in `set` (a bit mask) meet every EDF prefix constraint.
    fn feasible(jobs: &[ShedJob], set: u32, gpus: u32) -> bool {
        let mut idx: Vec<usize> = (0..jobs.len()).filter(|&i| set >> i & 1 == 1).collect();
        idx.sort_by_key(|&i| jobs[i].deadline);
        let mut due = 0u128;
        idx.iter().all(|&i| {
            due += jobs[i].work;
            due <= u128::from(gpus) * u128::from(jobs[i].deadline.0)
        })
    }

    fn job(deadline: u64, work: u128) -> ShedJob {
        ShedJob {
            deadline: Nanos(deadline),
            work,
            key: Some(work),
        }
    }

    #[test]
    fn sheds_the_largest_job_of_an_overloaded_prefix() {
        // 2 GPUs: by t = 10, 12, 20 the node does 20, 24, 40. Jobs due by 12 need
        // 15 + 8 + 6 = 29 > 24: the 15 goes; then 8 + 6 + 20 = 34 <= 40 keeps the rest.
        let jobs = [job(10, 15), job(12, 8), job(12, 6), job(20, 20)];
        assert_eq!(shed(&jobs, Nanos(0), 2, 1.0), vec![0]);
        // Shedding the latest deadline instead (the later arrival among equals) gives up
        // the 6 at t = 12, and then the 20 as well (15 + 8 + 20 = 43 > 40): one job fewer.
        let by_deadline: Vec<ShedJob> = jobs
            .iter()
            .map(|j| ShedJob {
                key: Some(u128::from(j.deadline.0)),
                ..*j
            })
            .collect();
        assert_eq!(shed(&by_deadline, Nanos(0), 2, 1.0), vec![2, 3]);
        // Half the capacity (10, 12, 20): the 15 goes at t = 10, the 8 at t = 12 (14 > 12),
        // the 20 at t = 20 (26 > 20).
        assert_eq!(shed(&jobs, Nanos(0), 2, 0.5), vec![0, 1, 3]);
        // Time already elapsed counts: at now = 5 the node does 10, 14, 30 by the deadlines.
        assert_eq!(shed(&jobs, Nanos(5), 2, 1.0), vec![0, 3]);
    }

    #[test]
    fn running_work_counts_but_is_never_shed() {
        let running = ShedJob {
            deadline: Nanos(10),
            work: 30,
            key: None,
        };
        // The running job alone overloads t = 10 (30 > 20) but cannot be shed, and a job due
        // later is not shed for it: by t = 20 everything fits (35 <= 40).
        assert_eq!(
            shed(&[running, job(20, 5)], Nanos(0), 2, 1.0),
            Vec::<usize>::new()
        );
        // Nor one due earlier: without it t = 10 is still over (30 > 20), so it stays.
        assert_eq!(
            shed(&[job(5, 5), running], Nanos(0), 2, 1.0),
            Vec::<usize>::new()
        );
        // Where shedding does make room, it happens: 18 running + 5 > 20, 18 alone fits.
        let lighter = ShedJob {
            work: 18,
            ..running
        };
        assert_eq!(shed(&[job(5, 5), lighter], Nanos(0), 2, 1.0), vec![0]);
    }

    proptest! {
        /// The shortcut without overload never changes what is shed.
        #[test]
        fn the_shortcut_agrees_with_the_scan(
            raw in prop::collection::vec((0u64..60, 0u128..80, any::<bool>()), 0..12),
            now in 0u64..30,
            gpus in 1u32..5,
            capacity in prop::sample::select(vec![0.5, 1.0, 1.5]),
        ) {
            let jobs: Vec<ShedJob> = raw
                .iter()
                .map(|&(d, w, keyed)| ShedJob { deadline: Nanos(d), work: w, key: keyed.then_some(w) })
                .collect();
            prop_assert_eq!(
                shed(&jobs, Nanos(now), gpus, capacity),
                shed_scan(&jobs, Nanos(now), gpus, capacity)
            );
        }

        /// Moore-Hodgson is optimal: it keeps as many jobs as the largest feasible subset
        /// (exhaustive search), and what it keeps is feasible.
        #[test]
        fn keeps_the_most_jobs_that_fit(
            raw in prop::collection::vec((1u64..40, 1u128..60), 1..9),
            gpus in 1u32..4,
        ) {
            let jobs: Vec<ShedJob> = raw.iter().map(|&(d, w)| job(d, w)).collect();
            let n = jobs.len();
            let dropped = shed(&jobs, Nanos(0), gpus, 1.0);
            let kept_mask = (0..n as u32)
                .filter(|i| !dropped.contains(&(*i as usize)))
                .fold(0u32, |m, i| m | 1 << i);
            prop_assert!(feasible(&jobs, kept_mask, gpus));
            let best = (0u32..1 << n)
                .filter(|&s| feasible(&jobs, s, gpus))
                .map(u32::count_ones)
                .max()
                .unwrap();
            prop_assert_eq!(kept_mask.count_ones(), best);
        }
    }
}
