//! Property tests: every policy (baselines, TetriServe and its ablations), on random
//! workloads and clusters, yields records that pass the invariant checker, and the same
//! inputs give identical records, and none meets more deadlines than the upper bound allows,
//! on NVSwitch and NVLink-pair clusters of one or more nodes, with and without overheads.

use proptest::prelude::*;
use tetriserve::bound::upper_bound;
use tetriserve::cost::StepTimes;
use tetriserve::metrics::invariants::check_run;
use tetriserve::metrics::{Outcome, WorkRecord};
use tetriserve::policy::{PolicyConfig, PolicyKind, StepwiseConfig};
use tetriserve::workload::Workload;

use crate::util::*;

fn workload_strategy() -> impl Strategy<Value = Workload> {
    prop::collection::vec((0u64..3000, any::<bool>(), 1u32..12, 0u64..4000), 1..40).prop_map(
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

fn expected(costs: &StepTimes) -> impl Fn(&WorkRecord) -> tetriserve::Nanos + '_ {
    move |w| {
        costs
            .step(costs.class_of(w.resolution).unwrap(), w.gpus.len())
            .times(u64::from(w.steps))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_policy_satisfies_the_invariants(workload in workload_strategy(), gpus_log2 in 0u32..4) {
        let c = cluster(1 << gpus_log2);
        let costs = costs(&workload, &c);
        let bound = upper_bound(&workload, &costs, c.total_gpus(), c.max_degree());
        let mut kinds = PolicyKind::paper_for(&c);
        kinds.extend(PolicyKind::ablation());
        kinds.extend(PolicyKind::extensions());
        for kind in kinds {
            if kind == PolicyKind::Rssp && c.gpus_per_node < 2 {
                continue; // the test's RSSP map sends 512 px to SP 2
            }
            let run = run_kind(kind, &workload, &c).unwrap();
            let errors = check_run(&run, &workload, Some(&expected(&costs)));
            prop_assert!(errors.is_empty(), "{kind}: {errors:#?}");
            // No policy beats the upper bound.
            let met = run.requests.iter().filter(|r| r.outcome == Outcome::Met).count();
            prop_assert!(met <= bound.met, "{kind}: met {met} > bound {}", bound.met);
            // Only stepwise drops by default, and only what could not be met; baselines never
            // preempt: one work per request.
            let wrong = wrongly_dropped(kind, &run, &costs, &c);
            prop_assert!(wrong.is_empty(), "{kind} dropped {wrong:?}");
            if matches!(kind, PolicyKind::XditSp(_) | PolicyKind::Rssp) {
                prop_assert_eq!(run.works.len(), workload.len());
            }
            // stepwise's one-step grants (its revocable grants are the default) hold every
            // invariant too, and are one step each.
            if kind == PolicyKind::Stepwise {
                let config = PolicyConfig {
                    rssp_degrees: vec![(SMALL, 1), (LARGE, 2)],
                    stepwise: StepwiseConfig { revocable_grants: false, ..Default::default() },
                    ..PolicyConfig::default()
                };
                let mut p = tetriserve::policy::build(kind, &c, &costs, &config).unwrap();
                let one = run_policy(p.as_mut(), &workload, &c, &costs).unwrap();
                let errors = check_run(&one, &workload, Some(&expected(&costs)));
                prop_assert!(errors.is_empty(), "one-step: {errors:#?}");
                let met = one.requests.iter().filter(|r| r.outcome == Outcome::Met).count();
                prop_assert!(met <= bound.met);
                prop_assert!(wrongly_dropped(kind, &one, &costs, &c).is_empty());
                prop_assert!(one.works.iter().all(|w| w.steps == 1));
            }
            // Determinism: a second run gives identical records.
            let again = run_kind(kind, &workload, &c).unwrap();
            prop_assert_eq!(&again.requests, &run.requests);
            prop_assert_eq!(&again.works, &run.works);
        }
    }
}

/// Every policy that can run on `c`, each checked: the run succeeds, its records pass the
/// checker, and every request ends exactly once.
fn check_all(workload: &Workload, c: &tetriserve::cluster::Cluster) {
    let costs = costs(workload, c);
    let mut kinds = PolicyKind::paper_for(c);
    kinds.extend(PolicyKind::ablation());
    kinds.extend(PolicyKind::extensions());
    for kind in kinds {
        let run = match run_kind(kind, workload, c) {
            Ok(r) => r,
            Err(e) if kind == PolicyKind::Rssp && c.gpus_per_node < 2 => {
                assert!(e.to_string().contains("rssp degree 2"), "{e}");
                continue;
            }
            Err(e) => panic!("{kind}: {e}"),
        };
        let errors = check_run(&run, workload, Some(&expected(&costs)));
        assert!(errors.is_empty(), "{kind}: {errors:#?}");
        assert_eq!(run.requests.len(), workload.len());
        assert!(
            run.requests
                .iter()
                .all(|r| r.steps_done == r.steps || r.outcome == Outcome::Dropped),
            "{kind}: someone never finished"
        );
        let wrong = wrongly_dropped(kind, &run, &costs, c);
        assert!(wrong.is_empty(), "{kind} dropped {wrong:?}");
    }
}

/// The requests `kind` dropped that it should not have: any, for every policy but `stepwise`,
/// which gives up only a request that, when dropped, could no longer be met even running every
/// remaining step at the fastest degree of a node.
fn wrongly_dropped(
    kind: PolicyKind,
    run: &tetriserve::metrics::RunRecords,
    costs: &StepTimes,
    c: &tetriserve::cluster::Cluster,
) -> Vec<u64> {
    run.requests
        .iter()
        .filter(|r| r.outcome == Outcome::Dropped)
        .filter(|r| {
            if kind != PolicyKind::Stepwise {
                return true;
            }
            let class = costs.class_of(r.resolution).unwrap();
            let fastest = c
                .degrees()
                .map(|k| {
                    costs
                        .get(class, k, 1, tetriserve::cluster::Link::NvLink)
                        .unwrap()
                })
                .min()
                .unwrap();
            let left = u64::from(r.steps - r.steps_done);
            r.end.0 + fastest.0 * left <= r.deadline.0
        })
        .map(|r| r.id)
        .collect()
}

#[test]
fn a_burst_of_thousands_of_simultaneous_arrivals() {
    let w = Workload::from_requests(
        (0..3000)
            .map(|i| req(i, 0, if i % 3 == 0 { LARGE } else { SMALL }, 5, 2000))
            .collect(),
    );
    check_all(&w, &cluster(8));
}

#[test]
fn a_single_gpu_serves_everything_in_turn() {
    let w = Workload::from_requests(
        (0..50)
            .map(|i| req(i, i * 37, if i % 2 == 0 { LARGE } else { SMALL }, 4, 900))
            .collect(),
    );
    check_all(&w, &cluster(1));
}

#[test]
fn deadlines_already_past_at_arrival_still_finish_best_effort_or_are_given_up() {
    let w = Workload::from_requests((0..40).map(|i| req(i, i * 10, SMALL, 3, 0)).collect());
    check_all(&w, &cluster(4));
    let run = run_kind(
        PolicyKind::Tetriserve(tetriserve::policy::Variant::FULL),
        &w,
        &cluster(4),
    )
    .unwrap();
    assert!(run.requests.iter().all(|r| r.outcome == Outcome::Missed));
    // stepwise gives every one of them up as it arrives: none can be met.
    let run = run_kind(PolicyKind::Stepwise, &w, &cluster(4)).unwrap();
    assert!(
        run.requests
            .iter()
            .all(|r| r.outcome == Outcome::Dropped && r.end == r.arrival && r.steps_done == 0)
    );
}

/// A valid run of two requests on 4 GPUs, then one broken copy per invariant: the checker must
/// notice each (it is what every property test relies on).
/// A way to break a valid run's records.
type Break = fn(&mut tetriserve::metrics::RunRecords);

/// Each case (name, how to break a copy of `run`, a text its error must contain) is caught by
/// the checker.
fn each_break_is_noticed(
    run: &tetriserve::metrics::RunRecords,
    workload: &Workload,
    exact: &dyn Fn(&WorkRecord) -> tetriserve::Nanos,
    cases: &[(&str, Break, &str)],
) {
    for &(name, brk, needle) in cases {
        let mut broken = run.clone();
        brk(&mut broken);
        let errors = check_run(&broken, workload, Some(exact));
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "{name}: expected an error containing `{needle}`, got {errors:?}"
        );
    }
}

#[test]
fn the_checker_notices_each_kind_of_broken_schedule() {
    let workload = Workload::from_requests(vec![
        req(0, 0, SMALL, 4, 10_000),
        req(1, 0, LARGE, 4, 10_000),
    ]);
    let c = cluster(4);
    let run = run_kind(PolicyKind::XditSp(2), &workload, &c).unwrap();
    let costs = costs(&workload, &c);
    let exact = expected(&costs);
    assert_eq!(
        check_run(&run, &workload, Some(&exact)),
        Vec::<String>::new()
    );
    assert!(run.works.len() >= 2);
    let cases: [(&str, Break, &str); 7] = [
        (
            "double booking",
            |r| {
                r.works[1].gpus = r.works[0].gpus;
                r.works[1].start = r.works[0].start;
            },
            "double-booked",
        ),
        (
            "steps out of order",
            |r| r.works[0].first_step = 2,
            "starts at step",
        ),
        (
            "wrong duration",
            |r| r.works[0].end += tetriserve::Nanos(1),
            "should have lasted",
        ),
        (
            "a request ending twice",
            |r| {
                let mut again = r.works[0].clone();
                again.start = r.works.iter().map(|w| w.end).max().unwrap();
                again.end = again.start + (r.works[0].end - r.works[0].start);
                again.first_step = again.steps;
                r.works.push(again);
            },
            "steps of its",
        ),
        (
            "GPU bits outside the node",
            |r| r.works[0].gpus = tetriserve::cluster::GpuSet::new(0, 0b11 << 4),
            "outside the cluster",
        ),
        (
            "a batch member of another resolution",
            |r| r.works[0].requests.push(1),
            "of resolution",
        ),
        (
            "an unknown request",
            |r| r.works[0].requests = vec![99],
            "unknown request",
        ),
    ];
    each_break_is_noticed(&run, &workload, &exact, &cases);
}

/// One broken copy per rule the first table leaves out, each breaking that rule alone where
/// it can: a checker that stopped enforcing any of them (a dropped condition, a flipped
/// comparison) lets its copy through.
#[test]
fn the_checker_notices_every_rule_it_states() {
    let workload = Workload::from_requests(vec![
        req(0, 0, SMALL, 4, 10_000),
        req(1, 0, LARGE, 4, 10_000),
    ]);
    let c = cluster(4);
    let run = run_kind(PolicyKind::XditSp(2), &workload, &c).unwrap();
    let costs = costs(&workload, &c);
    let exact = expected(&costs);
    assert_eq!(run.requests[0].outcome, Outcome::Met);
    let cases: [(&str, Break, &str); 14] = [
        (
            "a record missing",
            |r| {
                r.requests.pop();
            },
            "records for",
        ),
        (
            "a work on a node the cluster lacks",
            |r| r.works[0].gpus = tetriserve::cluster::GpuSet::new(1, r.works[0].gpus.mask()),
            "outside the cluster",
        ),
        ("a work of no steps", |r| r.works[0].steps = 0, "is empty"),
        (
            "a work ending before it starts",
            |r| r.works[0].start = r.works[0].end + tetriserve::Nanos(1),
            "ends before it starts",
        ),
        ("another label", |r| r.requests[0].id = 7, "does not match"),
        (
            "another arrival",
            |r| r.requests[0].arrival += tetriserve::Nanos(1),
            "does not match",
        ),
        (
            "another deadline",
            |r| r.requests[0].deadline += tetriserve::Nanos(1),
            "does not match",
        ),
        ("more steps", |r| r.requests[0].steps += 1, "does not match"),
        (
            "savings the workload does not give",
            |r| r.requests[0].saved.cached_steps = 1,
            "saved (prompt, hit, cached, skipped)",
        ),
        (
            "more steps skipped than done",
            |r| r.requests[0].saved.skipped_steps = r.requests[0].steps_done + 1,
            "steps skipped of",
        ),
        (
            "met with a step left",
            |r| r.requests[0].steps_done -= 1,
            "finished with 3/4 steps",
        ),
        (
            "an end after its last work",
            |r| r.requests[0].end += tetriserve::Nanos(1),
            "but its last work ends at",
        ),
        (
            "missed though on time",
            |r| r.requests[0].outcome = Outcome::Missed,
            "inconsistent with end",
        ),
        (
            "dropped after every step",
            |r| r.requests[0].outcome = Outcome::Dropped,
            "marked dropped",
        ),
    ];
    each_break_is_noticed(&run, &workload, &exact, &cases);
}

/// Runs at the edges of the rules are valid: a cluster of one 64-GPU node (every mask bit in
/// the node), a work of no duration (not ending before it starts), a request ending exactly at
/// its deadline (met), works meeting end to start on a GPU and within a request.
#[test]
fn the_checker_accepts_runs_at_the_edges_of_its_rules() {
    let workload = Workload::from_requests(vec![
        req(0, 0, SMALL, 4, 10_000),
        req(1, 0, LARGE, 4, 10_000),
    ]);
    let c = cluster(4);
    let run = run_kind(PolicyKind::XditSp(2), &workload, &c).unwrap();
    assert!(check_run(&run, &workload, None).is_empty());

    let mut wide = run.clone();
    (wide.gpus, wide.gpus_per_node) = (64, 64);
    assert_eq!(check_run(&wide, &workload, None), Vec::<String>::new());

    // Request 0's works squeezed to no duration, its end with them.
    let mut instant = run.clone();
    for w in instant.works.iter_mut().filter(|w| w.requests.contains(&0)) {
        w.start = tetriserve::Nanos(0);
        w.end = tetriserve::Nanos(0);
    }
    instant.requests[0].end = tetriserve::Nanos(0);
    assert_eq!(check_run(&instant, &workload, None), Vec::<String>::new());

    // Met exactly at the deadline.
    let mut just = Workload::from_requests(vec![req(0, 0, SMALL, 4, 0), req(1, 0, LARGE, 4, 0)]);
    let mut on_time = run.clone();
    for (q, r) in just.requests.iter_mut().zip(&mut on_time.requests) {
        (q.deadline, r.deadline) = (r.end, r.end);
    }
    assert_eq!(check_run(&on_time, &just, None), Vec::<String>::new());

    // One GPU: every work starts as the previous one ends, on the same GPU.
    let c1 = cluster(1);
    let serial = run_kind(PolicyKind::XditSp(1), &workload, &c1).unwrap();
    let touching = serial.works.windows(2).any(|p| p[1].start == p[0].end);
    assert!(touching, "{:?}", serial.works);
    assert_eq!(check_run(&serial, &workload, None), Vec::<String>::new());
}

fn cluster_strategy() -> impl Strategy<Value = tetriserve::cluster::Cluster> {
    (1u32..3, 1u32..4, any::<bool>()).prop_map(|(nodes, per_log2, pairs)| {
        let topology = if pairs {
            tetriserve::cluster::Topology::NvlinkPairs
        } else {
            tetriserve::cluster::Topology::NvSwitch
        };
        tetriserve::cluster::Cluster::new("tiny", nodes, 1 << per_log2, topology).unwrap()
    })
}

fn overheads_strategy() -> impl Strategy<Value = tetriserve::cost::Overheads> {
    (
        0u64..40,
        0u64..20,
        0u32..50,
        0u64..60,
        any::<bool>(),
        0u64..25,
    )
        .prop_map(|(text, vae, remap_pct, setup, on_regroup, dispatch)| {
            tetriserve::cost::Overheads {
                text_encoder: ms(text),
                vae_decode_per_1k_tokens: ms(vae),
                remap_fraction: f64::from(remap_pct) / 100.0,
                group_setup: ms(setup),
                group_setup_on_regroup: on_regroup,
                dispatch: ms(dispatch),
                node_handoff: ms(setup / 2),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The same properties on NVLink-pair and multi-node clusters with every overhead nonzero,
    /// which policies plan with: each work lasts at least its steps on its GPU set's link and at
    /// most that plus every overhead it can be charged; nobody beats the bound; runs repeat.
    #[test]
    fn every_policy_keeps_the_invariants_with_overheads_on_any_topology(
        workload in workload_strategy(),
        c in cluster_strategy(),
        overheads in overheads_strategy(),
    ) {
        let costs = costs(&workload, &c);
        let bound = upper_bound(&workload, &costs, c.total_gpus(), c.max_degree());
        let mut kinds = PolicyKind::paper_for(&c);
        kinds.extend(PolicyKind::ablation());
        kinds.extend(PolicyKind::extensions());
        for kind in kinds {
            if kind == PolicyKind::Rssp && c.gpus_per_node < 2 {
                continue; // the test's RSSP map sends 512 px to SP 2
            }
            let run = run_kind_with(kind, &workload, &c, overheads.clone()).unwrap();
            let errors = check_run(&run, &workload, None);
            prop_assert!(errors.is_empty(), "{kind}: {errors:#?}");
            for w in &run.works {
                let class = costs.class_of(w.resolution).unwrap();
                let batch = w.requests.len() as u32;
                let step = costs.get(class, w.gpus.len(), batch, c.link_of(w.gpus)).unwrap();
                let steps = step.times(u64::from(w.steps));
                let vae = overheads.vae_decode(w.resolution);
                let most = steps.0
                    + overheads.text_encoder.0 * u64::from(batch)
                    + vae.0 * u64::from(batch)
                    + (step.0 as f64 * overheads.remap_fraction).ceil() as u64
                    + 1
                    + overheads.group_setup.0
                    + overheads.dispatch.0
                    + overheads.node_handoff.0;
                let took = w.end.0 - w.start.0;
                prop_assert!(
                    took >= steps.0 && took <= most,
                    "{kind}: a work of {} steps at SP{} took {took} ns, outside [{}, {most}]",
                    w.steps, w.gpus.len(), steps.0
                );
            }
            let met = run.requests.iter().filter(|r| r.outcome == Outcome::Met).count();
            prop_assert!(met <= bound.met, "{kind}: met {met} > bound {}", bound.met);
            let again = run_kind_with(kind, &workload, &c, overheads.clone()).unwrap();
            prop_assert_eq!(&again.requests, &run.requests);
            prop_assert_eq!(&again.works, &run.works);
        }
    }
}
