//! Property tests: every policy (baselines, TetriServe and its ablations), on random
//! workloads and clusters, yields records that pass the invariant checker, and the same
//! inputs give identical records.

use proptest::prelude::*;
use tetriserve::cost::StepTimes;
use tetriserve::metrics::invariants::check_run;
use tetriserve::metrics::{Outcome, WorkRecord};
use tetriserve::policy::PolicyKind;
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
        let mut kinds = PolicyKind::all_for(&c);
        kinds.extend(PolicyKind::ablation());
        for kind in kinds {
            if kind == PolicyKind::Rssp && c.gpus_per_node < 2 {
                continue; // the test's RSSP map sends 512 px to SP 2
            }
            let run = run_kind(kind, &workload, &c).unwrap();
            let errors = check_run(&run, &workload, Some(&expected(&costs)));
            prop_assert!(errors.is_empty(), "{kind}: {errors:#?}");
            // Nobody drops by default; baselines never preempt: one work per request.
            prop_assert!(run.requests.iter().all(|r| r.outcome != Outcome::Dropped));
            if !matches!(kind, PolicyKind::Tetriserve(_)) {
                prop_assert_eq!(run.works.len(), workload.len());
            }
            // Determinism: a second run gives identical records.
            let again = run_kind(kind, &workload, &c).unwrap();
            prop_assert_eq!(&again.requests, &run.requests);
            prop_assert_eq!(&again.works, &run.works);
        }
    }
}
