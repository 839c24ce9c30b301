//! Windows of a workload small enough for the exact solver, cut at idle points.
//!
//! An *idle point* is a request whose arrival is at or after every earlier request's deadline:
//! no request before it can still be met after it arrives, so the optimum of the whole trace
//! is the sum of the optima of the segments between idle points (a met request runs inside
//! its interval; a missed one need not run at all). A window is the `size` requests that
//! follow an idle point; the next window starts at the first idle point at or after the end
//! of the previous one. Its end need not be an idle point: requests after it may compete with
//! its own for GPUs (what that means for the study's counts is in `study.rs`).

use crate::workload::Workload;

/// Where each window starts and how many requests it holds, at most `count` windows of `size`
/// requests (fewer if the trace runs out).
pub fn cut(workload: &Workload, size: usize, count: usize) -> Vec<std::ops::Range<usize>> {
    let reqs = &workload.requests;
    let idle = idle_points(workload);
    let mut out = Vec::new();
    let mut from = 0;
    while out.len() < count && size > 0 {
        let Some(start) = (from..reqs.len()).find(|&i| idle[i]) else {
            break;
        };
        if start + size > reqs.len() {
            break;
        }
        out.push(start..start + size);
        from = start + size;
    }
    out
}

/// Per request, whether it is an idle point: it arrives at or after every earlier request's
/// deadline (the first request is one).
pub fn idle_points(workload: &Workload) -> Vec<bool> {
    let mut latest = None;
    workload
        .requests
        .iter()
        .map(|r| {
            let idle = latest.is_none_or(|d| r.arrival >= d);
            latest = Some(latest.map_or(r.deadline, |d: crate::time::Nanos| d.max(r.deadline)));
            idle
        })
        .collect()
}

/// The requests of `range` as a workload of their own (ids renumbered, labels kept).
pub fn window(workload: &Workload, range: std::ops::Range<usize>) -> Workload {
    Workload::from_requests(workload.requests[range].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Nanos;
    use crate::workload::{Request, RequestId, Resolution};

    fn w(reqs: &[(u64, u64)]) -> Workload {
        Workload::from_requests(
            reqs.iter()
                .enumerate()
                .map(|(i, &(a, d))| Request {
                    id: RequestId(0),
                    label: i as u64,
                    arrival: Nanos(a),
                    resolution: Resolution::square(256),
                    steps: 1,
                    deadline: Nanos(d),
                    stages: Default::default(),
                })
                .collect(),
        )
    }

    #[test]
    fn windows_start_at_idle_points() {
        // Idle points: 0, 2 (arrives at 10 = the latest deadline), 4; not 1, 3, 5.
        let load = w(&[(0, 10), (5, 8), (10, 20), (12, 30), (30, 35), (31, 40)]);
        assert_eq!(
            idle_points(&load),
            vec![true, false, true, false, true, false]
        );
        assert_eq!(cut(&load, 2, 5), vec![0..2, 2..4, 4..6]);
        // Windows of 3: from 0; the next idle point at or after 3 is 4, and 4..7 runs out.
        assert_eq!(cut(&load, 3, 5), vec![0..3]);
        assert_eq!(cut(&load, 2, 1), vec![0..2]);
        assert_eq!(window(&load, 2..4).requests[0].label, 2);
        assert_eq!(window(&load, 2..4).requests[0].id, RequestId(0));
    }
}
