//! Causality: a policy's decisions before time T depend only on requests that arrived before
//! T. Appending requests after T (of any resolution) must leave every work started before T
//! unchanged, for every policy.

use tetriserve::Nanos;
use tetriserve::engine::{self, SimExecutor};
use tetriserve::metrics::WorkRecord;
use tetriserve::policy::{self, PolicyKind};
use tetriserve::scenario::{Overrides, Scenario};
use tetriserve::simulate::resolve_costs;
use tetriserve::workload::{Request, Resolution, Workload};

/// Works of `workload` under `kind` on the scenario's cluster, costs resolved as a run does.
fn works(scenario: &Scenario, workload: &Workload, kind: PolicyKind) -> Vec<WorkRecord> {
    let costs = resolve_costs(scenario, workload).unwrap();
    let mut p = policy::build(kind, &scenario.cluster, &costs, &scenario.policy_config).unwrap();
    let mut exec = SimExecutor::new(&costs, scenario.overheads().clone());
    engine::run(workload, &scenario.cluster, &costs, p.as_mut(), &mut exec)
        .unwrap()
        .works
}

fn every_policy(scenario: &Scenario) -> Vec<PolicyKind> {
    let mut kinds = PolicyKind::paper_for(&scenario.cluster);
    kinds.extend(PolicyKind::ablation());
    kinds.extend(PolicyKind::extensions());
    kinds
}

/// `base` plus requests after `t`: `extra` of them, one per resolution in turn.
fn appended(base: &Workload, t: Nanos, resolutions: &[Resolution]) -> Workload {
    let mut requests: Vec<Request> = base.requests.clone();
    let last = base.requests.iter().map(|r| r.arrival).max().unwrap();
    for (i, &res) in resolutions.iter().enumerate() {
        let arrival = t.max(last) + Nanos::from_secs(10.0 + i as f64);
        requests.push(Request {
            label: 1_000_000 + i as u64,
            arrival,
            resolution: res,
            deadline: arrival + Nanos::from_secs(5.0),
            ..base.requests[0].clone()
        });
    }
    Workload::from_requests(requests)
}

fn check(scenario: &Scenario, base: &Workload, extra: &[Resolution]) {
    let last = base.requests.iter().map(|r| r.arrival).max().unwrap();
    let t = last + Nanos::from_secs(10.0);
    let longer = appended(base, last, extra);
    for kind in every_policy(scenario) {
        let a = works(scenario, base, kind);
        let b = works(scenario, &longer, kind);
        let before = |w: &Vec<WorkRecord>| -> Vec<WorkRecord> {
            w.iter().filter(|x| x.start < t).cloned().collect()
        };
        let (a, b) = (before(&a), before(&b));
        assert!(!a.is_empty(), "{kind}: nothing ran before T");
        assert!(
            a == b,
            "{kind}: appending requests after T changed {} of {} works started before T",
            a.iter().zip(&b).filter(|(x, y)| x != y).count() + a.len().abs_diff(b.len()),
            a.len()
        );
    }
}

#[test]
fn appending_a_large_request_later_changes_no_earlier_decision() {
    // The reported case: a flood of 256 px requests, then one 2048 px request 10 s after the
    // last. TetriServe's round length once came from the trace's largest resolution.
    let scenario = Scenario::load(
        None,
        &Overrides {
            requests: Some(120),
            rate_per_min: Some(480.0),
            mix: Some("homogeneous:256".into()),
            steps: Some(50),
            ..Overrides::default()
        },
    )
    .unwrap();
    let base = scenario.load_workload().unwrap();
    check(&scenario, &base, &[Resolution::square(2048)]);
}

#[test]
fn appending_requests_of_every_resolution_later_changes_no_earlier_decision() {
    // A mixed, bursty workload on 8 GPUs, with later requests of resolutions on and off the
    // menu (1536 px is interpolated by the profile).
    for seed in [1, 2] {
        let scenario = Scenario::load(
            None,
            &Overrides {
                seed: Some(seed),
                requests: Some(60),
                rate_per_min: Some(24.0),
                arrival: Some("gamma".into()),
                cv: Some(3.0),
                mix: Some("custom:256=2,512=1,1024=1".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        let base = scenario.load_workload().unwrap();
        check(
            &scenario,
            &base,
            &[
                Resolution::square(2048),
                Resolution::square(1536),
                Resolution::square(256),
            ],
        );
    }
}
