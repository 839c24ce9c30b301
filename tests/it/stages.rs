//! Disaggregated stages: a two-stage schedule worked out by hand (transfers, a decode pool
//! that makes a request late after its steps were in time), zero-cost stages that reproduce
//! the co-located run exactly, every policy's records and the upper bound over random
//! pipelines, the scenario wiring (summary, cost, `stages.csv`) and the refusals.

use std::path::Path;

use proptest::prelude::*;
use tetriserve::Nanos;
use tetriserve::bound::upper_bound;
use tetriserve::cluster::OperatingCost;
use tetriserve::cost::Overheads;
use tetriserve::metrics::invariants::check_run;
use tetriserve::metrics::{Outcome, PoolSlot, RunRecords};
use tetriserve::policy::PolicyKind;
use tetriserve::scenario::{RawScenario, Scenario};
use tetriserve::stages::{self, Deployment, Link, Pool, Pools};
use tetriserve::workload::{StageTimes, Workload};

use crate::util::*;

fn pool(gpus: u32) -> Pool {
    Pool {
        gpus,
        gpu: "tiny".into(),
        operating: OperatingCost::default(),
    }
}

/// Encode `encode_ms` a request; decode `decode_ms_per_1k` per 1,000 tokens; a 1 GB/s link
/// without latency carrying `embedding` bytes and `latent` bytes per token.
fn pools(
    (encode_gpus, decode_gpus): (u32, u32),
    encode_ms: u64,
    decode_ms_per_1k: u64,
    embedding: u64,
    latent: u64,
) -> Pools {
    Pools {
        encode: pool(encode_gpus),
        decode: pool(decode_gpus),
        encode_time: ms(encode_ms),
        decode_per_1k_tokens: ms(decode_ms_per_1k),
        link: Link {
            bytes_per_s: 1_000_000_000,
            latency: Nanos::ZERO,
        },
        embedding_bytes: embedding,
        latent_bytes_per_token: latent,
    }
}

/// What `simulate` does with disaggregated stages: the encode pass, the engine on the
/// denoising stage's workload, the decode pass. The denoising stage's records come back too.
fn run_staged(
    kind: PolicyKind,
    workload: &Workload,
    c: &tetriserve::cluster::Cluster,
    pools: &Pools,
    overheads: Overheads,
) -> (RunRecords, RunRecords, Workload) {
    let encoded = stages::encode(workload, pools).unwrap();
    let denoise = run_kind_with(kind, &encoded.workload, c, overheads).unwrap();
    let mut run = denoise.clone();
    stages::decode(&mut run, workload, pools, &encoded).unwrap();
    (run, denoise, encoded.workload)
}

fn slot(gpu: u32, start_us: u64, end_us: u64) -> PoolSlot {
    PoolSlot {
        gpu,
        start: Nanos(start_us * 1000),
        end: Nanos(end_us * 1000),
    }
}

/// Two denoising GPUs under `xdit-sp1`, 256 px requests of 2 steps (100 ms each at SP 1),
/// one encode GPU (30 ms), one decode GPU (200 ms per 1k tokens: 51.2 ms for 256 tokens), a
/// 1 GB/s link: a 2 MB embedding takes 2 ms, a 256-token latent of 1,000 bytes a token
/// 0.256 ms.
///
/// - r0 at 0: encoded 0-30, ready 32, steps 32-232 on GPU 0, latent in 232.256, decoded
///   232.256-283.456: due 250 + 50 = 300, met.
/// - r1 at 10: waits for the encoder, encoded 30-60, ready 62, steps 62-262 on GPU 1; its
///   stage deadline is 320 - 51.456 = 268.544, which its steps meet; but its latent, in at
///   262.256, waits for r0's decode: decoded 283.456-334.656, past its deadline of 320: missed.
/// - r2 at 500: encoded 500-530, ready 532, steps 532-732, decoded 732.256-783.456, due 800:
///   met.
#[test]
fn a_two_stage_schedule_worked_out_by_hand() {
    let (w, run, denoise, staged) = hand_schedule();
    assert_eq!(check_run(&run, &w, None), Vec::<String>::new());
    let ready: Vec<Nanos> = staged.requests.iter().map(|r| r.arrival).collect();
    assert_eq!(ready, [ms(32), ms(62), ms(532)]);
    assert_eq!(staged.requests[1].deadline, Nanos(268_544_000));
    // The denoising stage met all three of its stage deadlines ...
    assert!(denoise.requests.iter().all(|r| r.outcome == Outcome::Met));
    let st = &run.stages.as_ref().unwrap().requests;
    let encodes: Vec<PoolSlot> = st.iter().map(|s| s.encode).collect();
    assert_eq!(
        encodes,
        [
            slot(0, 0, 30_000),
            slot(0, 30_000, 60_000),
            slot(0, 500_000, 530_000)
        ]
    );
    let decodes: Vec<PoolSlot> = st.iter().map(|s| s.decode.unwrap()).collect();
    assert_eq!(
        decodes,
        [
            slot(0, 232_256, 283_456),
            slot(0, 283_456, 334_656),
            slot(0, 732_256, 783_456)
        ]
    );
    assert_eq!(st[1].decode_ready, Some(Nanos(262_256_000)));
    // ... but the decode pool made r1 late.
    let verdicts: Vec<(Nanos, Nanos, Outcome)> = run
        .requests
        .iter()
        .map(|r| (r.arrival, r.end, r.outcome))
        .collect();
    assert_eq!(
        verdicts,
        [
            (ms(0), Nanos(283_456_000), Outcome::Met),
            (ms(10), Nanos(334_656_000), Outcome::Missed),
            (ms(500), Nanos(783_456_000), Outcome::Met),
        ]
    );
    // A second decode GPU takes r1's latent at once: 262.256 + 51.2 = 313.456, in time.
    let p2 = pools((1, 2), 30, 200, 2_000_000, 1000);
    let (run2, _, _) = run_staged(
        PolicyKind::XditSp(1),
        &w,
        &cluster(2),
        &p2,
        Overheads::default(),
    );
    let r1 = &run2.requests[1];
    assert_eq!((r1.end, r1.outcome), (Nanos(313_456_000), Outcome::Met));
    assert_eq!(
        run2.stages.as_ref().unwrap().requests[1]
            .decode
            .unwrap()
            .gpu,
        1
    );
}

/// A stage deadline never lies before the request is ready: a request whose decode alone
/// outlasts its SLO arrives late at the denoising GPUs, finishes best effort and is missed.
#[test]
fn a_request_whose_decode_outlasts_its_slo_reaches_the_policy_already_late() {
    let w = Workload::from_requests(vec![req(0, 0, SMALL, 1, 40)]);
    // 256 tokens at 200 ms per 1k: a 51.2 ms decode, more than the 40 ms SLO.
    let p = pools((1, 1), 0, 200, 0, 0);
    let (run, _, staged) = run_staged(
        PolicyKind::XditSp(1),
        &w,
        &cluster(1),
        &p,
        Overheads::default(),
    );
    assert_eq!(staged.requests[0].deadline, staged.requests[0].arrival);
    assert_eq!(check_run(&run, &w, None), Vec::<String>::new());
    assert_eq!(run.requests[0].outcome, Outcome::Missed);
    assert_eq!(run.requests[0].end, Nanos(151_200_000));
}

/// A request whose embedding is ready only after its deadline (it queued behind another's
/// encode) reaches the policy due at once, is served best effort, and is missed; the checker
/// accepts its stage deadline at `ready`, past its deadline.
#[test]
fn a_request_ready_after_its_deadline_is_due_on_arrival() {
    let w = Workload::from_requests(vec![req(0, 0, SMALL, 1, 500), req(1, 0, SMALL, 1, 20)]);
    // One encode GPU, 30 ms each: the second is ready at 60 ms, 40 ms past its deadline.
    let p = pools((1, 1), 30, 0, 0, 0);
    let (run, _, staged) = run_staged(
        PolicyKind::XditSp(1),
        &w,
        &cluster(1),
        &p,
        Overheads::default(),
    );
    assert_eq!(
        (staged.requests[1].arrival, staged.requests[1].deadline),
        (ms(60), ms(60))
    );
    assert_eq!(check_run(&run, &w, None), Vec::<String>::new());
    assert_eq!(
        run.requests.iter().map(|r| r.outcome).collect::<Vec<_>>(),
        [Outcome::Met, Outcome::Missed]
    );
}

fn workload_strategy() -> impl Strategy<Value = Workload> {
    prop::collection::vec((0u64..2000, any::<bool>(), 1u32..8, 100u64..3000), 1..30).prop_map(
        |rows| {
            Workload::from_requests(
                rows.into_iter()
                    .enumerate()
                    .map(|(i, (t, big, steps, slo))| {
                        req(i as u64, t, if big { LARGE } else { SMALL }, steps, slo)
                    })
                    .collect(),
            )
        },
    )
}

fn kinds(c: &tetriserve::cluster::Cluster) -> Vec<PolicyKind> {
    let mut kinds = PolicyKind::paper_for(c);
    kinds.extend(PolicyKind::ablation());
    kinds.extend(PolicyKind::extensions());
    kinds.retain(|&k| !(k == PolicyKind::Rssp && c.gpus_per_node < 2));
    kinds
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Stages that cost nothing (instant encode, decode and link) change nothing: every
    /// policy's records are the co-located run's, and so is the bound.
    #[test]
    fn zero_cost_stages_reproduce_the_colocated_run(
        workload in workload_strategy(),
        gpus_log2 in 0u32..3,
        pool_gpus in (1u32..3, 1u32..3),
    ) {
        let c = cluster(1 << gpus_log2);
        let p = pools(pool_gpus, 0, 0, 0, 0);
        for kind in kinds(&c) {
            let colocated = run_kind_with(kind, &workload, &c, Overheads::default()).unwrap();
            let (run, _, staged) = run_staged(kind, &workload, &c, &p, Overheads::default());
            prop_assert_eq!(&staged.requests, &workload.requests);
            prop_assert_eq!(&run.requests, &colocated.requests, "{}", kind);
            prop_assert_eq!(&run.works, &colocated.works, "{}", kind);
            prop_assert_eq!(check_run(&run, &workload, None), Vec::<String>::new());
        }
    }

    /// Every policy on random pipelines: the checker accepts the records (stage order, pool
    /// capacity, the pools' GPUs never shared), no request is met end to end that missed its
    /// stage deadline, and nobody beats the bound computed on the denoising stage's workload.
    #[test]
    fn every_policy_keeps_the_stage_invariants_and_the_bound_on_random_pipelines(
        workload in workload_strategy(),
        gpus_log2 in 0u32..3,
        pool_gpus in (1u32..3, 1u32..3),
        encode_ms in 0u64..80,
        decode_ms_per_1k in 0u64..300,
        embedding in 0u64..50_000_000,
        latent in 0u64..40_000,
    ) {
        let c = cluster(1 << gpus_log2);
        let p = pools(pool_gpus, encode_ms, decode_ms_per_1k, embedding, latent);
        for kind in kinds(&c) {
            let (run, denoise, staged) = run_staged(kind, &workload, &c, &p, Overheads::default());
            let errors = check_run(&run, &workload, None);
            prop_assert!(errors.is_empty(), "{kind}: {errors:#?}");
            let costs = costs(&staged, &c);
            let bound = upper_bound(&staged, &costs, c.total_gpus(), c.max_degree());
            let met: Vec<bool> = run.requests.iter().map(|r| r.outcome == Outcome::Met).collect();
            let count = met.iter().filter(|&&m| m).count();
            prop_assert!(count <= bound.met, "{kind}: met {count} > bound {}", bound.met);
            for (i, d) in denoise.requests.iter().enumerate() {
                prop_assert!(
                    !met[i] || d.outcome == Outcome::Met,
                    "{kind}: request {i} met end to end after missing its stage deadline"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// One more decode GPU never ends a request later (first come, first served, and the
    /// decode pool feeds nothing back): what makes `goodput --pool decode` exact.
    #[test]
    fn a_larger_decode_pool_never_ends_a_request_later(
        workload in workload_strategy(),
        decode_ms_per_1k in 1u64..600,
        latent in 0u64..40_000,
    ) {
        let c = cluster(2);
        let mut before: Option<RunRecords> = None;
        for decode_gpus in 1..5 {
            let p = pools((1, decode_gpus), 10, decode_ms_per_1k, 0, latent);
            let (run, _, _) = run_staged(PolicyKind::Stepwise, &workload, &c, &p, Overheads::default());
            if let Some(b) = &before {
                for (x, y) in b.requests.iter().zip(&run.requests) {
                    prop_assert!(y.end <= x.end, "{} GPUs: request {} ends {} after {}", decode_gpus, y.id, y.end, x.end);
                    prop_assert!(x.outcome != Outcome::Met || y.outcome == Outcome::Met);
                }
            }
            before = Some(run);
        }
    }
}

fn load(text: &str) -> tetriserve::error::Result<Scenario> {
    let raw = RawScenario::parse(text, "stages.toml", Path::new("."))?;
    Scenario::from_raw(raw.or(RawScenario::default_scenario()), "stages.toml")
}

const BASE: &str = "[workload]\nrequests = 60\nrate_per_min = 30.0\n\
    [policy]\nrun = [\"xdit-sp2\", \"tetriserve\", \"stepwise\"]\n";

/// Through `simulate`: pools with no cost give the co-located results; pools with costs move
/// the encoder and the VAE off the denoising GPUs (which no longer pay them), summarise the
/// pools, price them, and write `stages.csv`.
#[test]
fn a_disaggregated_scenario_runs_through_simulate() {
    let colocated = load(BASE).unwrap();
    let free = load(&format!(
        "{BASE}[stages]\nmode = \"disaggregated\"\nlink_latency_us = 0.0\nembedding_mib = 0.0\nlatent_bytes_per_token = 0\n"
    ))
    .unwrap();
    let a = tetriserve::simulate::simulate(&colocated).unwrap();
    let b = tetriserve::simulate::simulate(&free).unwrap();
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a.records.requests, b.records.requests);
        assert_eq!(a.records.works, b.records.works);
        assert_eq!(a.summary.slo_attainment, b.summary.slo_attainment);
    }

    let costly = "[overheads]\ntext_encoder_ms = 40.0\nvae_decode_ms_per_1k_tokens = 60.0\n";
    let s = load(&format!(
        "{BASE}{costly}[stages]\nmode = \"disaggregated\"\nencode_gpus = 2\n"
    ))
    .unwrap();
    let Deployment::Disaggregated(p) = &s.stages else {
        panic!("disaggregated expected")
    };
    assert_eq!(p.encode_time, ms(40));
    assert_eq!(s.overheads().text_encoder, Nanos::ZERO);
    assert_eq!(s.overheads().vae_decode_per_1k_tokens, Nanos::ZERO);
    let w = s.load_workload().unwrap();
    for run in tetriserve::simulate::simulate(&s).unwrap() {
        let name = &run.summary.policy;
        assert_eq!(
            check_run(&run.records, &w, None),
            Vec::<String>::new(),
            "{name}"
        );
        let st = run.summary.stages.as_ref().unwrap();
        assert_eq!((st.encode.gpus, st.decode.gpus), (2, 1));
        assert_eq!(st.encode.served, 60);
        assert!((st.encode.gpu_seconds - 60.0 * 0.040).abs() < 1e-9);
        // Dollars: every GPU, the pools' three too, held over the makespan at $3 an hour.
        let want = 3.0 * f64::from(8 + 3) * run.summary.makespan_s / 3600.0;
        let usd = run.summary.cost.usd.unwrap();
        assert!((usd - want).abs() < 1e-9 * want, "{name}: {usd} vs {want}");
        let files = tetriserve::report::run_files(
            &run.records,
            &run.summary,
            None,
            tetriserve::report::WorkRows::default(),
        );
        let csv = files
            .iter()
            .find(|(p, _)| p.to_str() == Some("stages.csv"))
            .map(|(_, b)| String::from_utf8(b.clone()).unwrap())
            .unwrap();
        assert_eq!(csv.lines().count(), 61);
        assert!(csv.starts_with("id,encode_gpu,encode_start_s"));
    }
    // The same scenario co-located writes no stages.csv and has no stages in its summary.
    let co = load(&format!("{BASE}{costly}")).unwrap();
    let run = &tetriserve::simulate::simulate(&co).unwrap()[0];
    assert!(run.summary.stages.is_none() && run.records.stages.is_none());
    let files = tetriserve::report::run_files(
        &run.records,
        &run.summary,
        None,
        tetriserve::report::WorkRows::default(),
    );
    assert!(files.iter().all(|(p, _)| p.to_str() != Some("stages.csv")));
}

#[test]
fn pool_flags_without_disaggregated_stages_and_disaggregated_real_runs_are_refused() {
    let o = crate::cli::run(&["simulate", "--decode-gpus", "2"]);
    assert!(!o.status.success());
    let e = crate::cli::stderr(&o);
    assert!(
        e.contains("--decode-gpus 2") && e.contains("--stages disaggregated"),
        "{e}"
    );
    // With disaggregated stages the pool flags act.
    let o = crate::cli::run(&[
        "simulate",
        "--stages",
        "disaggregated",
        "--encode-gpus",
        "2",
        "--decode-gpus",
        "3",
        "--requests",
        "10",
        "-p",
        "xdit-sp8",
    ]);
    let e = crate::cli::stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("encode pool 2 x h100") && e.contains("decode pool 3 x h100"),
        "{e}"
    );
    let o = crate::cli::run(&["simulate", "--stages", "split"]);
    let e = crate::cli::stderr(&o);
    assert!(
        !o.status.success() && e.contains("--stages") && e.contains("disaggregated"),
        "{e}"
    );
    let o = crate::cli::run(&[
        "simulate",
        "--real",
        "--device",
        "cpu",
        "--stages",
        "disaggregated",
    ]);
    let e = crate::cli::stderr(&o);
    assert!(!o.status.success() && e.contains("co-located"), "{e}");
}

/// The schedule of `a_two_stage_schedule_worked_out_by_hand`: the workload, the run, the
/// denoising stage's run and its workload.
fn hand_schedule() -> (Workload, RunRecords, RunRecords, Workload) {
    let w = Workload::from_requests(vec![
        req(0, 0, SMALL, 2, 300),
        req(1, 10, SMALL, 2, 310),
        req(2, 500, SMALL, 2, 300),
    ]);
    let p = pools((1, 1), 30, 200, 2_000_000, 1000);
    let (run, denoise, staged) = run_staged(
        PolicyKind::XditSp(1),
        &w,
        &cluster(2),
        &p,
        Overheads::default(),
    );
    (w, run, denoise, staged)
}

/// Each stage rule the checker states, broken once in the hand-computed run, is reported.
#[test]
fn the_checker_notices_every_broken_stage_rule() {
    let (w, run, _, _) = hand_schedule();
    assert_eq!(check_run(&run, &w, None), Vec::<String>::new());
    type Break = fn(&mut RunRecords);
    let cases: [(&str, Break, &str); 11] = [
        (
            "encode before arrival",
            |r| {
                let s = &mut r.stages.as_mut().unwrap().requests[1];
                s.encode.start = ms(5);
                s.encode.end = ms(35);
            },
            "before its arrival",
        ),
        (
            "an encode of another length",
            |r| {
                r.stages.as_mut().unwrap().requests[2].encode.end = ms(531);
            },
            "its encode lasted",
        ),
        (
            "ready before the encode ends",
            |r| {
                r.stages.as_mut().unwrap().requests[0].ready = ms(29);
            },
            "ready at",
        ),
        (
            "a stage deadline before ready",
            |r| {
                r.stages.as_mut().unwrap().requests[0].denoise_deadline = ms(31);
            },
            "stage deadline",
        ),
        (
            "a stage deadline past the deadline",
            |r| {
                r.stages.as_mut().unwrap().requests[0].denoise_deadline = ms(301);
            },
            "stage deadline",
        ),
        (
            "steps before the embedding is ready",
            |r| {
                r.stages.as_mut().unwrap().requests[2].ready = ms(533);
            },
            "starts before",
        ),
        (
            "decode before the latent is in",
            |r| {
                r.stages.as_mut().unwrap().requests[0].decode_ready = Some(ms(240));
            },
            "latent in at",
        ),
        (
            "latent in before the last step ends",
            |r| {
                let s = &mut r.stages.as_mut().unwrap().requests[0];
                s.decode_ready = Some(ms(231));
            },
            "before its last work ended",
        ),
        (
            "an end that is not the decode's",
            |r| {
                r.requests[2].end = ms(790);
            },
            "ends at",
        ),
        (
            "a pool GPU double-booked",
            |r| {
                let s = &mut r.stages.as_mut().unwrap().requests[1];
                let d = s.decode.as_mut().unwrap();
                d.start = Nanos(270_000_000);
                d.end = Nanos(321_200_000);
                r.requests[1].end = d.end;
                r.requests[1].outcome = Outcome::Missed;
                s.decode_ready = Some(Nanos(262_256_000));
            },
            "decode GPU 0 double-booked",
        ),
        (
            "a GPU outside its pool",
            |r| {
                r.stages.as_mut().unwrap().requests[2].encode.gpu = 1;
            },
            "outside its pool",
        ),
    ];
    for (name, brk, needle) in cases {
        let mut broken = run.clone();
        brk(&mut broken);
        let errors = check_run(&broken, &w, None);
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "{name}: expected `{needle}` in {errors:#?}"
        );
    }
    // A dropped request that was decoded.
    let mut broken = run.clone();
    broken.requests[2].outcome = Outcome::Dropped;
    broken.requests[2].steps_done = 1;
    let errors = check_run(&broken, &w, None);
    assert!(
        errors.iter().any(|e| e.contains("dropped but decoded")),
        "{errors:#?}"
    );
}

/// The pools' summary and cost on the hand-computed schedule: encodes of 30 ms (waits 0,
/// 20 ms, 0), decodes of 51.2 ms (waits 0, 21.2 ms, 0), a makespan of 783.456 ms; dollars
/// and energy add each pool at its own price and power.
#[test]
fn the_pools_summary_and_cost_by_hand() {
    let (_, run, _, _) = hand_schedule();
    let mut s = tetriserve::metrics::Summary::of(&run);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12 * b.abs().max(1.0);
    let makespan = 0.783456;
    assert!(close(s.makespan_s, makespan), "{}", s.makespan_s);
    let st = s.stages.clone().unwrap();
    for (pool, busy, waits) in [
        (&st.encode, 0.090, [0.0, 0.020, 0.0]),
        (&st.decode, 0.1536, [0.0, 0.0212, 0.0]),
    ] {
        assert_eq!((pool.gpus, pool.served), (1, 3));
        assert!(close(pool.gpu_seconds, busy), "{pool:?}");
        assert!(close(pool.utilization, busy / makespan), "{pool:?}");
        assert!(
            close(pool.wait_mean_s, waits.iter().sum::<f64>() / 3.0),
            "{pool:?}"
        );
        assert!(close(pool.wait_max_s, waits[1]), "{pool:?}");
    }
    // $3, $1 and $2 an hour; 700, 100 and 200 W busy, 10 W idle for the pools.
    let op = |price: f64, w: f64, idle: f64| OperatingCost {
        price_per_hour: Some(price),
        power_w: Some(w),
        idle_power_w: idle,
    };
    s.price(&op(3.0, 700.0, 0.0));
    let cluster_usd = s.cost.usd.unwrap();
    assert!(close(cluster_usd, 3.0 * 2.0 * makespan / 3600.0));
    let cluster_wh = s.cost.energy_wh.unwrap();
    s.price_pools(&op(1.0, 100.0, 10.0), &op(2.0, 200.0, 10.0));
    let h = makespan / 3600.0;
    let usd = cluster_usd + 1.0 * h + 2.0 * h;
    assert!(close(s.cost.usd.unwrap(), usd), "{:?}", s.cost);
    let pool_wh = |busy: f64, w: f64| w * busy / 3600.0 + 10.0 * (makespan - busy) / 3600.0;
    let wh = cluster_wh + pool_wh(0.090, 100.0) + pool_wh(0.1536, 200.0);
    assert!(close(s.cost.energy_wh.unwrap(), wh), "{:?}", s.cost);
    assert!(close(
        s.cost.usd_per_1k_met_images.unwrap(),
        usd * 1000.0 / 2.0
    ));
    assert!(close(s.cost.wh_per_met_image.unwrap(), wh / 2.0));
    // Nothing met: no price per met image, however the pools are priced.
    let mut none = run.clone();
    none.requests
        .iter_mut()
        .for_each(|r| r.outcome = Outcome::Missed);
    let mut s0 = tetriserve::metrics::Summary::of(&none);
    s0.price(&op(3.0, 700.0, 0.0));
    s0.price_pools(&op(1.0, 100.0, 10.0), &op(2.0, 200.0, 10.0));
    assert!(close(s0.cost.usd.unwrap(), usd));
    assert_eq!(
        (s0.cost.usd_per_1k_met_images, s0.cost.wh_per_met_image),
        (None, None)
    );
    // An unknown pool price leaves the run's dollars unknown.
    let mut s2 = tetriserve::metrics::Summary::of(&run);
    s2.price(&op(3.0, 700.0, 0.0));
    s2.price_pools(&OperatingCost::default(), &op(2.0, 200.0, 0.0));
    assert_eq!((s2.cost.usd, s2.cost.energy_wh), (None, None));
}

/// `request` with stage times of its own, in milliseconds.
fn own(
    mut r: tetriserve::workload::Request,
    encode: Option<u64>,
    decode: Option<u64>,
) -> tetriserve::workload::Request {
    r.stages = StageTimes {
        encode: encode.map(ms),
        decode: decode.map(ms),
    };
    r
}

/// Stage times of a request's own (a trace's `encode_s`, `decode_s`), worked out by hand: two
/// encode GPUs, one decode GPU, the hand schedule's link (a 2 ms embedding, a 0.256 ms
/// latent), two denoising GPUs under `xdit-sp1` (256 px, 2 steps of 100 ms).
///
/// - r0 at 0 encodes for 200 ms (its own time) on GPU 0: ready at 202, due at 500.
/// - r1 at 10 encodes for 0 ms (a cached embedding) on GPU 1: ready at 12, so it overtakes r0
///   and the denoising stage sees it first. Its steps run 12-212 on GPU 0. It asks for the
///   latent itself (decode 0 ms): in at 212.256, out at once. Due at 260 (its stage deadline
///   260 - 0.256 = 259.744): met.
/// - r0's steps run 202-402 on GPU 1 (GPU 0 is busy until 212); its latent is in at 402.256
///   and decoded in the pool's 51.2 ms, to 453.456: met.
///
/// The records come back in the scenario's order.
#[test]
fn requests_with_stage_times_of_their_own_worked_out_by_hand() {
    let w = Workload::from_requests(vec![
        own(req(0, 0, SMALL, 2, 500), Some(200), None),
        own(req(1, 10, SMALL, 2, 250), Some(0), Some(0)),
    ]);
    let p = pools((2, 1), 30, 200, 2_000_000, 1000);
    let encoded = stages::encode(&w, &p).unwrap();
    assert_eq!(encoded.order, [1, 0]);
    let labels: Vec<u64> = encoded.workload.requests.iter().map(|r| r.label).collect();
    assert_eq!(labels, [1, 0]);
    assert_eq!(encoded.workload.requests[0].arrival, ms(12));
    assert_eq!(encoded.workload.requests[0].deadline, Nanos(259_744_000));
    let (run, denoise, staged) = run_staged(
        PolicyKind::XditSp(1),
        &w,
        &cluster(2),
        &p,
        Overheads::default(),
    );
    assert_eq!(staged.requests, encoded.workload.requests);
    let denoised: Vec<(u64, Nanos, Nanos)> = denoise
        .works
        .iter()
        .map(|x| (x.requests[0], x.start, x.end))
        .collect();
    assert_eq!(denoised, [(1, ms(12), ms(212)), (0, ms(202), ms(402))]);
    assert_eq!(check_run(&run, &w, None), Vec::<String>::new());
    let st = &run.stages.as_ref().unwrap().requests;
    let slots: Vec<(PoolSlot, PoolSlot)> =
        st.iter().map(|s| (s.encode, s.decode.unwrap())).collect();
    assert_eq!(
        slots,
        [
            (slot(0, 0, 200_000), slot(0, 402_256, 453_456)),
            (slot(1, 10_000, 10_000), slot(0, 212_256, 212_256)),
        ]
    );
    let verdicts: Vec<(u64, Nanos, Nanos, Outcome)> = run
        .requests
        .iter()
        .map(|r| (r.id, r.arrival, r.end, r.outcome))
        .collect();
    assert_eq!(
        verdicts,
        [
            (0, ms(0), Nanos(453_456_000), Outcome::Met),
            (1, ms(10), Nanos(212_256_000), Outcome::Met),
        ]
    );
    // The checker holds each request to its own times.
    let mut broken = run.clone();
    broken.stages.as_mut().unwrap().requests[0].encode.end = ms(201);
    let errors = check_run(&broken, &w, None);
    assert!(
        errors.iter().any(|e| e.contains("not its own encode time")),
        "{errors:#?}"
    );
    let mut broken = run.clone();
    let s = &mut broken.stages.as_mut().unwrap().requests[1];
    s.decode.as_mut().unwrap().end = Nanos(212_300_000);
    broken.requests[1].end = Nanos(212_300_000);
    let errors = check_run(&broken, &w, None);
    assert!(
        errors.iter().any(|e| e.contains("not its own decode time")),
        "{errors:#?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every policy on random pipelines whose requests have stage times of their own: the
    /// checker accepts the records (each request held to its own times), no request is met
    /// end to end that missed its stage deadline, and nobody beats the bound computed on the
    /// denoising stage's workload (in the order the requests are ready).
    #[test]
    fn stage_times_of_their_own_keep_the_invariants_and_the_bound(
        workload in workload_strategy(),
        times in prop::collection::vec((prop::option::of(0u64..400), prop::option::of(0u64..300)), 30),
        gpus_log2 in 0u32..3,
        pool_gpus in (1u32..4, 1u32..3),
        encode_ms in 0u64..80,
    ) {
        let requests = workload
            .requests
            .iter()
            .zip(&times)
            .map(|(r, &(e, d))| own(r.clone(), e, d))
            .collect();
        let workload = Workload::from_requests(requests);
        let c = cluster(1 << gpus_log2);
        let p = pools(pool_gpus, encode_ms, 100, 1_000_000, 1000);
        let encoded = stages::encode(&workload, &p).unwrap();
        let costs = costs(&encoded.workload, &c);
        let bound = upper_bound(&encoded.workload, &costs, c.total_gpus(), c.max_degree());
        for kind in kinds(&c) {
            let (run, denoise, _) = run_staged(kind, &workload, &c, &p, Overheads::default());
            let errors = check_run(&run, &workload, None);
            prop_assert!(errors.is_empty(), "{kind}: {errors:#?}");
            let met = run.requests.iter().filter(|r| r.outcome == Outcome::Met).count();
            prop_assert!(met <= bound.met, "{kind}: met {met} > bound {}", bound.met);
            for (i, d) in denoise.requests.iter().enumerate() {
                let r = &run.requests[encoded.original(i)];
                prop_assert_eq!(r.id, d.id);
                prop_assert!(
                    r.outcome != Outcome::Met || d.outcome == Outcome::Met,
                    "{}: request {} met end to end after missing its stage deadline", kind, r.id
                );
            }
        }
    }
}

/// Co-located stages are the policies' overheads: a trace giving requests stage times of
/// their own is refused there, and runs with disaggregated stages.
#[test]
fn stage_times_of_their_own_need_disaggregated_stages() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.csv");
    std::fs::write(
        &trace,
        "id,arrival_s,width,height,steps,slo_s,encode_s,decode_s\n7,0,1024,1024,28,30,0.5,\n8,1,1024,1024,28,30,,0\n",
    )
    .unwrap();
    let t = trace.to_str().unwrap();
    let o = crate::cli::run(&["simulate", "--trace", t, "-p", "xdit-sp8"]);
    let e = crate::cli::stderr(&o);
    assert!(
        !o.status.success() && e.contains("request 7") && e.contains("--stages disaggregated"),
        "{e}"
    );
    let out = dir.path().join("out");
    let o = crate::cli::run(&[
        "simulate",
        "--trace",
        t,
        "-p",
        "xdit-sp8",
        "--stages",
        "disaggregated",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", crate::cli::stderr(&o));
    let stages_csv = std::fs::read_to_string(out.join("xdit-sp8").join("stages.csv")).unwrap();
    assert!(stages_csv.lines().count() == 3, "{stages_csv}");
}

/// The decode pass refuses records or stage records that do not match the workload one for
/// one, either of them, rather than pair requests up wrongly.
#[test]
fn the_decode_pass_refuses_records_of_another_workload() {
    let w = Workload::from_requests(vec![req(0, 0, SMALL, 2, 500), req(1, 10, SMALL, 2, 500)]);
    let p = pools((1, 1), 30, 200, 2_000_000, 1000);
    let encoded = stages::encode(&w, &p).unwrap();
    let denoise = run_kind_with(
        PolicyKind::XditSp(1),
        &encoded.workload,
        &cluster(2),
        Overheads::default(),
    )
    .unwrap();
    let mut run = denoise.clone();
    assert!(stages::decode(&mut run, &w, &p, &encoded).is_ok());
    let mut fewer = denoise.clone();
    fewer.requests.pop();
    let e = stages::decode(&mut fewer, &w, &p, &encoded).unwrap_err();
    assert!(
        e.to_string()
            .contains("1 records and 2 stage records for 2 requests"),
        "{e}"
    );
    let mut short = stages::encode(&w, &p).unwrap();
    short.stages.pop();
    let e = stages::decode(&mut denoise.clone(), &w, &p, &short).unwrap_err();
    assert!(
        e.to_string()
            .contains("2 records and 1 stage records for 2 requests"),
        "{e}"
    );
}
