//! Hand-computed schedules: 2 GPUs, 3 requests, the tiny cost table in util.rs.
//!
//! r1: 256 px, arrives 0 ms, 10 steps, deadline 1500 ms.
//! r2: 512 px, arrives 100 ms, 5 steps, deadline 1600 ms.
//! r3: 256 px, arrives 200 ms, 10 steps, deadline 1200 ms.

use tetriserve::metrics::Summary;
use tetriserve::policy::PolicyKind;
use tetriserve::workload::Workload;

use crate::util::*;

fn three_requests() -> Workload {
    Workload::from_requests(vec![
        req(1, 0, SMALL, 10, 1500),
        req(2, 100, LARGE, 5, 1500),
        req(3, 200, SMALL, 10, 1000),
    ])
}

#[test]
fn xdit_sp1_runs_each_request_on_its_own_gpu() {
    // r1 on GPU0 0-1000 (10 x 100 ms); r2 on GPU1 100-1600 (5 x 300 ms), finishing exactly at
    // its deadline, which counts as met; r3 waits for GPU0: 1000-2000, missed.
    let run = run_kind(PolicyKind::XditSp(1), &three_requests(), &cluster(2)).unwrap();
    assert_eq!(
        schedule(&run),
        vec![
            (1, Some(ms(0)), ms(1000), "met"),
            (2, Some(ms(100)), ms(1600), "met"),
            (3, Some(ms(1000)), ms(2000), "missed")
        ]
    );
    assert_eq!(run.works[0].gpus.mask(), 0b01);
    assert_eq!(run.works[1].gpus.mask(), 0b10);
    assert_eq!(run.works[2].gpus.mask(), 0b01);
}

#[test]
fn xdit_sp2_serialises_requests_on_one_group() {
    // One group of 2: r1 0-600 (10 x 60), r2 600-1400 (5 x 160), r3 1400-2000 (10 x 60).
    let run = run_kind(PolicyKind::XditSp(2), &three_requests(), &cluster(2)).unwrap();
    assert_eq!(
        schedule(&run),
        vec![
            (1, Some(ms(0)), ms(600), "met"),
            (2, Some(ms(600)), ms(1400), "met"),
            (3, Some(ms(1400)), ms(2000), "missed")
        ]
    );
    let s = Summary::of(&run);
    assert_eq!((s.met, s.missed), (2, 1));
    // GPU time: 2 GPUs x 2000 ms busy.
    assert!((s.gpu_seconds - 4.0).abs() < 1e-9);
    assert!((s.utilization - 1.0).abs() < 1e-9);
}

#[test]
fn rssp_blocks_behind_a_request_that_does_not_fit() {
    // r1 (256 -> SP1) on GPU0 0-1000. r2 (512 -> SP2) needs both GPUs: waits until 1000, runs
    // 1000-1800 and misses 1600. r3 queues behind r2 (strict FCFS) although GPU1 is idle:
    // 1800-2800 on GPU0, missed.
    let run = run_kind(PolicyKind::Rssp, &three_requests(), &cluster(2)).unwrap();
    assert_eq!(
        schedule(&run),
        vec![
            (1, Some(ms(0)), ms(1000), "met"),
            (2, Some(ms(1000)), ms(1800), "missed"),
            (3, Some(ms(1800)), ms(2800), "missed")
        ]
    );
    assert_eq!(run.works[1].gpus.mask(), 0b11);
    assert_eq!(run.requests[1].degrees(), vec![2]);
}

#[test]
fn a_fixed_degree_larger_than_the_node_is_refused() {
    let err =
        run_kind(PolicyKind::XditSp(4), &three_requests(), &cluster(2)).expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("xdit-sp4 needs 4 GPUs"), "{msg}");
}

#[test]
fn simultaneous_arrivals_are_served_in_trace_order() {
    // Three 256 px requests at the same instant on 2 x SP1: labels 7 and 8 start at 0 on GPU0
    // and GPU1, label 9 starts when GPU0 frees at 100 ms (1 step each).
    let w = Workload::from_requests(vec![
        req(7, 0, SMALL, 1, 1000),
        req(8, 0, SMALL, 1, 1000),
        req(9, 0, SMALL, 1, 1000),
    ]);
    let run = run_kind(PolicyKind::XditSp(1), &w, &cluster(2)).unwrap();
    assert_eq!(
        schedule(&run),
        vec![
            (7, Some(ms(0)), ms(100), "met"),
            (8, Some(ms(0)), ms(100), "met"),
            (9, Some(ms(100)), ms(200), "met")
        ]
    );
}
