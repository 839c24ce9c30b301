//! Approximate caching and run-time step skipping: the cache's hits and evictions by hand,
//! identical reduced workloads for every policy, the trace's `prompt_id` round trip, the
//! invariant checker with skipped steps for every policy, byte-identical outputs, and the new
//! scenario keys refused with their names.

use std::path::Path;

use proptest::prelude::*;
use tetriserve::bound::upper_bound;
use tetriserve::cost::{Overheads, StepTimes};
use tetriserve::engine::{self, Executor, SimExecutor};
use tetriserve::metrics::invariants::check_run;
use tetriserve::metrics::{Outcome, RunRecords, WorkRecord};
use tetriserve::policy::{self, PolicyConfig, PolicyKind};
use tetriserve::scenario::{RawScenario, Scenario};
use tetriserve::workload::cache::CacheSpec;
use tetriserve::workload::prompt::{Popularity, PromptKey};
use tetriserve::workload::skipping::{SkipMask, SkipSpec};
use tetriserve::workload::trace::{parse_trace, to_csv};
use tetriserve::workload::{Savings, Workload};

use crate::util::*;

/// A workload of 256 px requests 1 s apart, with the given prompt keys (`None`: no key).
fn keyed(prompts: &[Option<u64>], steps: u32) -> Workload {
    let mut w = Workload::from_requests(
        (0..prompts.len())
            .map(|i| req(i as u64, 1000 * i as u64, SMALL, steps, 60_000))
            .collect(),
    );
    w.ensure_savings();
    for (s, p) in w.savings.iter_mut().zip(prompts) {
        s.prompt = p.map(PromptKey);
    }
    w
}

fn cache(capacity: usize, warmup: usize, popularity: Popularity, k: &[u32]) -> CacheSpec {
    CacheSpec {
        capacity,
        warmup,
        popularity,
        skip_steps: k.to_vec(),
        skip_weights: vec![1.0; k.len()],
    }
}

fn hits(w: &Workload) -> Vec<bool> {
    w.savings.iter().map(|s| s.cache_hit).collect()
}

#[test]
fn lru_hits_and_evictions_by_hand() {
    // Capacity 2: 1, 2 miss; 1 hits (2 is now least recent); 3 evicts 2; 2 evicts 1; 1 evicts
    // 3; a request without a key never hits; 2 then hits (cache holds 2 and 1).
    let mut w = keyed(
        &[
            Some(1),
            Some(2),
            Some(1),
            Some(3),
            Some(2),
            Some(1),
            None,
            Some(2),
        ],
        50,
    );
    cache(2, 0, Popularity::None, &[10])
        .apply(&mut w, 7)
        .unwrap();
    assert_eq!(
        hits(&w),
        vec![false, false, true, false, false, false, false, true]
    );
    let steps: Vec<u32> = w.requests.iter().map(|r| r.steps).collect();
    assert_eq!(steps, vec![50, 50, 40, 50, 50, 50, 50, 40]);
    assert_eq!(w.savings[2].cached_steps, 10);
    assert_eq!(w.savings[3].cached_steps, 0);
}

#[test]
fn a_hit_always_leaves_one_step_to_run() {
    let mut w = keyed(&[Some(4), Some(4), Some(4)], 3);
    cache(8, 0, Popularity::None, &[25])
        .apply(&mut w, 1)
        .unwrap();
    let steps: Vec<u32> = w.requests.iter().map(|r| r.steps).collect();
    assert_eq!(steps, vec![3, 1, 1]);
    assert_eq!(w.savings[1].cached_steps, 2);
}

#[test]
fn warm_up_fills_the_cache_before_the_first_request() {
    // One prompt in the catalogue: every warm-up key is key 0.
    let one = Popularity::Zipf { s: 1.0, prompts: 1 };
    let mut cold = keyed(&[Some(0), Some(5)], 50);
    cache(1, 0, one.clone(), &[5]).apply(&mut cold, 3).unwrap();
    assert_eq!(hits(&cold), vec![false, false]);
    let mut warm = keyed(&[Some(0), Some(5), Some(0)], 50);
    cache(1, 4, one.clone(), &[5]).apply(&mut warm, 3).unwrap();
    // Key 0 was warmed in; key 5 then evicts it (capacity 1), so the third request misses.
    assert_eq!(hits(&warm), vec![true, false, false]);
    // Warm-up keys are not requests: the run has as many records as requests.
    assert_eq!(warm.len(), 3);
    let mut roomy = keyed(&[Some(0), Some(5), Some(0)], 50);
    cache(2, 4, one, &[5]).apply(&mut roomy, 3).unwrap();
    assert_eq!(hits(&roomy), vec![true, false, true]);
}

/// The paper's default scenario with caching and skipping on, small.
fn scenario_text(extra: &str) -> String {
    format!(
        "seed = 3\n[workload]\nrequests = 60\nrate_per_min = 30.0\nsteps = 50\nmix = \"skewed\"\nsampling = \"iid\"\n{extra}\n[policy]\nrun = [\"xdit-sp1\", \"xdit-sp8\", \"rssp\", \"tetriserve\", \"tetriserve-shed\"]\n"
    )
}

fn load(text: &str) -> tetriserve::error::Result<Scenario> {
    let raw = RawScenario::parse(text, "cache.toml", Path::new("."))?;
    Scenario::from_raw(raw.or(RawScenario::default_scenario()), "cache.toml")
}

const CACHE_ON: &str = "[workload.cache]\nenabled = true\ncapacity = 50\nwarmup_requests = 200\nzipf_s = 1.0\nprompts = 300\n";
const SKIPS_ON: &str = "[workload.skipping]\nprobability = 0.3\n";

#[test]
fn caching_moves_no_arrival_and_every_policy_meets_the_same_reduced_requests() {
    let plain = load(&scenario_text("")).unwrap().load_workload().unwrap();
    let s = load(&scenario_text(&format!("{CACHE_ON}{SKIPS_ON}"))).unwrap();
    let w = s.load_workload().unwrap();
    let arrivals = |w: &Workload| {
        w.requests
            .iter()
            .map(|r| (r.arrival, r.resolution, r.deadline))
            .collect::<Vec<_>>()
    };
    assert_eq!(arrivals(&plain), arrivals(&w));
    let hit_count = w.savings.iter().filter(|s| s.cache_hit).count();
    assert!(hit_count > 5, "{hit_count} hits");
    for (r, s) in w.requests.iter().zip(&w.savings) {
        assert_eq!(r.steps + s.cached_steps, 50);
        assert!(!s.skips.is_skipped(0), "the first step always computes");
    }
    let runs = tetriserve::simulate::simulate(&s).unwrap();
    assert_eq!(runs.len(), 5);
    for run in &runs {
        let errors = check_run(&run.records, &w, None);
        assert!(errors.is_empty(), "{}: {errors:#?}", run.summary.policy);
        let saved = run.summary.savings.as_ref().expect("savings summarised");
        assert_eq!(saved.cache_hits, hit_count);
        assert!(saved.skipped_steps > 0);
        for (a, b) in run.records.requests.iter().zip(&runs[0].records.requests) {
            assert_eq!(
                (a.steps, a.saved.cache_hit, a.saved.cached_steps),
                (b.steps, b.saved.cache_hit, b.saved.cached_steps)
            );
            if a.outcome != Outcome::Dropped && b.outcome != Outcome::Dropped {
                assert_eq!(a.saved.skipped_steps, b.saved.skipped_steps);
            }
        }
    }
}

#[test]
fn requests_csv_is_byte_identical_for_a_seed() {
    let text = scenario_text(&format!("{CACHE_ON}{SKIPS_ON}"));
    let csv = || {
        tetriserve::simulate::simulate(&load(&text).unwrap())
            .unwrap()
            .iter()
            .map(|r| tetriserve::report::requests_csv(&r.records))
            .collect::<Vec<_>>()
    };
    let (a, b) = (csv(), csv());
    assert_eq!(a, b);
    assert!(
        a[0].lines()
            .next()
            .unwrap()
            .ends_with(",prompt_id,cache_hit,cached_steps,skipped_steps")
    );
    assert!(a[0].contains(",true,"), "some request hit");
}

#[test]
fn a_trace_round_trips_its_prompt_ids_and_replays_to_the_same_hits() {
    let s = load(&scenario_text(CACHE_ON)).unwrap();
    let w = s.load_workload().unwrap();
    let csv = to_csv(&w);
    assert!(csv.starts_with("id,arrival_s,width,height,steps,slo_s,prompt_id\n"));
    // The trace holds the requests before the cache: full step counts.
    let back = parse_trace(&csv, "t.csv", None).unwrap();
    assert!(back.requests.iter().all(|r| r.steps == 50));
    let prompts = |w: &Workload| w.savings.iter().map(|s| s.prompt).collect::<Vec<_>>();
    assert_eq!(prompts(&back), prompts(&w));
    // Replaying it through the same cache gives back the scenario's workload.
    let mut replay = back;
    s.cache
        .as_ref()
        .unwrap()
        .apply(&mut replay, s.seed)
        .unwrap();
    assert_eq!(replay.requests, w.requests);
    assert_eq!(replay.savings, w.savings);
    // An empty cell is no key; a bad one names line and field.
    let t = parse_trace(
        "arrival_s,width,height,steps,slo_s,prompt_id\n0,256,256,28,1,\n1,256,256,28,1,9\n",
        "t.csv",
        None,
    )
    .unwrap();
    assert_eq!(prompts(&t), vec![None, Some(PromptKey(9))]);
    let e = parse_trace(
        "arrival_s,width,height,steps,slo_s,prompt_id\n0,256,256,28,1,x\n",
        "t.csv",
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("t.csv:2") && e.contains("prompt_id"), "{e}");
    // Without keys the trace keeps its six columns.
    assert!(
        to_csv(&load(&scenario_text("")).unwrap().load_workload().unwrap())
            .starts_with("id,arrival_s,width,height,steps,slo_s\n")
    );
}

#[test]
fn skipped_steps_cost_nothing_and_free_the_gpus_early() {
    // 4 steps of 100 ms at SP 1; steps 1 and 2 skipped: the work lasts 200 ms.
    let mut w = Workload::from_requests(vec![
        req(0, 0, SMALL, 4, 10_000),
        req(1, 0, SMALL, 4, 10_000),
    ]);
    w.ensure_savings();
    w.savings[0].skips = SkipMask::of(&[1, 2]);
    let c = cluster(1);
    let run = run_skipping(PolicyKind::XditSp(1), &w, &c);
    assert_eq!(run.requests[0].end, ms(200));
    assert_eq!(run.requests[0].saved.skipped_steps, 2);
    // The second request starts on the freed GPU at 200 ms and skips nothing.
    assert_eq!(run.requests[1].start, Some(ms(200)));
    assert_eq!(run.requests[1].end, ms(600));
    assert!(check_run(&run, &w, Some(&expected(&w, &costs(&w, &c)))).is_empty());
}

/// Runs `kind` the way `simulate` does: the executor reset with the workload (its skip masks).
pub fn run_skipping(
    kind: PolicyKind,
    w: &Workload,
    c: &tetriserve::cluster::Cluster,
) -> RunRecords {
    let config = PolicyConfig {
        rssp_degrees: vec![(SMALL, 1), (LARGE, 2)],
        ..PolicyConfig::default()
    };
    run_skipping_with(kind, w, c, &config)
}

/// [`run_skipping`] with the policies' configuration `config`.
pub fn run_skipping_with(
    kind: PolicyKind,
    w: &Workload,
    c: &tetriserve::cluster::Cluster,
    config: &PolicyConfig,
) -> RunRecords {
    let costs = costs(w, c);
    let mut policy = policy::build(kind, c, &costs, config).unwrap();
    let mut exec = SimExecutor::new(
        &costs,
        Overheads {
            remap_fraction: 0.0,
            ..Overheads::default()
        },
    );
    exec.reset(w, &[1]).unwrap();
    engine::run(w, c, &costs, policy.as_mut(), &mut exec).unwrap()
}

/// What a work should last: its computed steps (a step skipped by every request of the batch
/// is free) at its degree.
fn expected<'a>(
    w: &'a Workload,
    costs: &'a StepTimes,
) -> impl Fn(&WorkRecord) -> tetriserve::Nanos + 'a {
    move |work| {
        let computed = (work.first_step..work.first_step + work.steps)
            .filter(|&s| {
                work.requests.iter().any(|&l| {
                    let id = w.requests.iter().find(|r| r.label == l).unwrap().id;
                    !w.savings_of(id).skips.is_skipped(s)
                })
            })
            .count() as u64;
        costs
            .step(costs.class_of(work.resolution).unwrap(), work.gpus.len())
            .times(computed)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Every policy, on random workloads with skipped steps: no double booking, steps in
    /// order, every request ends exactly once with its skips recorded, works last their
    /// computed steps, and nobody beats the bound computed on the realised steps.
    #[test]
    fn every_policy_keeps_the_invariants_with_skipped_steps(
        rows in prop::collection::vec((0u64..3000, any::<bool>(), 1u32..12, 0u64..4000), 1..30),
        gpus_log2 in 1u32..4,
        p in 0.0f64..0.9,
        seed in 0u64..1000,
    ) {
        let mut w = Workload::from_requests(
            rows.into_iter()
                .enumerate()
                .map(|(i, (t, big, steps, slo))| req(i as u64, t, if big { LARGE } else { SMALL }, steps, slo))
                .collect(),
        );
        SkipSpec::from_probability(p).unwrap().apply(&mut w, seed).unwrap();
        let c = cluster(1 << gpus_log2);
        let costs = costs(&w, &c);
        let bound = upper_bound(&w.with_realised_steps(), &costs, c.total_gpus(), c.max_degree());
        let mut kinds = PolicyKind::paper_for(&c);
        kinds.extend(PolicyKind::ablation());
        kinds.extend(PolicyKind::extensions());
        for kind in kinds {
            let run = run_skipping(kind, &w, &c);
            let errors = check_run(&run, &w, Some(&expected(&w, &costs)));
            prop_assert!(errors.is_empty(), "{kind}: {errors:#?}");
            // Every request ends, or (stepwise only) is given up once it cannot be met even
            // if every step that may be skipped (all but the first) is.
            for r in &run.requests {
                if r.outcome != Outcome::Dropped {
                    prop_assert_eq!(r.steps_done, r.steps);
                    continue;
                }
                prop_assert_eq!(kind, PolicyKind::Stepwise);
                let class = costs.class_of(r.resolution).unwrap();
                let fastest = c
                    .degrees()
                    .map(|k| costs.get(class, k, 1, tetriserve::cluster::Link::NvLink).unwrap())
                    .min()
                    .unwrap();
                let fewest = u64::from(r.steps_done == 0);
                prop_assert!(r.end.0 + fastest.0 * fewest > r.deadline.0, "{:?}", r);
            }
            let met = run.requests.iter().filter(|r| r.outcome == Outcome::Met).count();
            prop_assert!(met <= bound.met, "{kind}: met {met} > bound {}", bound.met);
        }
    }
}

#[test]
fn the_checker_catches_a_record_that_hides_its_skips() {
    let mut w = Workload::from_requests(vec![req(0, 0, SMALL, 4, 10_000)]);
    w.ensure_savings();
    w.savings[0].skips = SkipMask::of(&[3]);
    let c = cluster(1);
    let mut run = run_skipping(PolicyKind::XditSp(1), &w, &c);
    assert!(check_run(&run, &w, None).is_empty());
    run.requests[0].saved.skipped_steps = 0;
    let errors = check_run(&run, &w, None);
    assert!(errors.iter().any(|e| e.contains("saved")), "{errors:?}");
    // A workload without savings is still the plain check.
    assert_eq!(
        w.savings_of(tetriserve::workload::RequestId(5)),
        &Savings::default()
    );
}

#[test]
fn bad_cache_and_skipping_keys_are_refused_by_name() {
    let cases = [
        (
            "[workload.cache]\nenabled = true\ncapacity = 0\n",
            "workload.cache.capacity",
            "at least 1",
        ),
        (
            "[workload.cache]\nenabled = true\npopularity = \"zipff\"\n",
            "workload.cache.popularity",
            "zipf or none",
        ),
        (
            "[workload.cache]\nenabled = true\npopularity = \"none\"\n",
            "workload.cache.popularity",
            "nothing could ever hit",
        ),
        (
            "[workload.cache]\nenabled = true\nzipf_s = -1.0\n",
            "workload.cache.zipf_s",
            "non-negative",
        ),
        (
            "[workload.cache]\nenabled = true\nprompts = 0\n",
            "workload.cache.prompts",
            "catalogue",
        ),
        (
            "[workload.cache]\nenabled = true\nskip_steps = [5, 0]\n",
            "workload.cache.skip_steps",
            "1 to",
        ),
        (
            "[workload.cache]\nenabled = true\nskip_steps = [5, 10]\nskip_weights = [1.0]\n",
            "workload.cache.skip_weights",
            "one weight per entry",
        ),
        (
            "[workload.cache]\nenabled = true\nskip_weights = [1.0, 1.0, 0.0, 1.0, 1.0]\n",
            "workload.cache.skip_weights",
            "positive",
        ),
        (
            "[workload.skipping]\nprobability = 1.5\n",
            "workload.skipping.probability",
            "[0, 1)",
        ),
        (
            "[workload.skipping]\nprobability = 0.2\nkeep_first_steps = 0\n",
            "workload.skipping.keep_first_steps",
            "always computes",
        ),
    ];
    for (extra, field, says) in cases {
        let e = load(&scenario_text(extra)).unwrap_err().to_string();
        assert!(e.starts_with("cache.toml"), "{extra}: {e}");
        assert!(e.contains(&format!("field `{field}`")), "{extra}: {e}");
        assert!(e.contains(says), "{extra}: {e}");
    }
    // A misspelt key is an error with the file's line, not ignored.
    let e = load(&scenario_text("[workload.cache]\nenable = true\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cache.toml:") && e.contains("enable"), "{e}");
}

/// The real executor on the CPU backend: a cache hit starts from its prompt's stored latent
/// and makes `N - k` model calls; a skipped step makes none and leaves the latent as it was.
#[test]
fn the_real_executor_starts_hits_from_the_stored_latent_and_skips_model_calls() {
    use tetriserve::real::config::DitConfig;
    use tetriserve::real::executor::{RealExecutor, prompt_latent, request_seed};
    use tetriserve::real::reference::{CpuDit, CpuInputs};

    // Request 0 misses prompt 7 (6 steps); request 1 hits it and skips k = 2 (4 steps left);
    // request 2 has no prompt and skips its steps 2 and 3 at run time.
    let mut w = keyed(&[Some(7), Some(7), None], 6);
    cache(4, 0, Popularity::None, &[2])
        .apply(&mut w, 1)
        .unwrap();
    w.savings[2].skips = SkipMask::of(&[2, 3]);
    assert_eq!(hits(&w), vec![false, true, false]);
    let c = cluster(2);
    let costs = costs(&w, &c);
    let mut policy =
        policy::build(PolicyKind::XditSp(1), &c, &costs, &PolicyConfig::default()).unwrap();
    let cfg = DitConfig::tiny().on_cpu();
    let mut exec = RealExecutor::cpu(cfg.clone(), 2, None).unwrap();
    exec.keep_final_latents();
    exec.reset(&w, &[1]).unwrap();
    let run = engine::run(&w, &c, &costs, policy.as_mut(), &mut exec).unwrap();
    assert!(run.requests.iter().all(|r| r.outcome != Outcome::Dropped));
    assert_eq!(run.requests[2].saved.skipped_steps, 2);
    assert_eq!(exec.model_calls(), 6 + 4 + 4);

    let model = CpuDit::new(cfg.clone(), 1);
    let reference = |label: u64, start: Option<Vec<f32>>, steps: u32, skipped: &[u32]| {
        let mut x = CpuInputs::seeded(&cfg, SMALL, request_seed(label));
        if let Some(l) = start {
            x.latent = l;
        }
        for s in 0..steps {
            if !skipped.contains(&s) {
                model.step(&mut x, SMALL, 1.0 / steps as f32);
            }
        }
        x.latent
    };
    let want = [
        reference(0, None, 6, &[]),
        reference(1, Some(prompt_latent(&cfg, SMALL, 7)), 4, &[]),
        reference(2, None, 6, &[2, 3]),
    ];
    let finals = exec.final_latents();
    assert_eq!(finals.len(), 3);
    for ((label, got), want) in finals.iter().zip(&want) {
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        let err = got
            .iter()
            .zip(want)
            .fold(0f32, |a, (g, w)| a.max((g - w).abs()))
            / scale;
        assert!(err < 1e-5, "request {label}: relative error {err}");
    }
    // The hit did not start from its own noise.
    let own = reference(1, None, 4, &[]);
    assert!(
        finals[1]
            .1
            .iter()
            .zip(&own)
            .any(|(a, b)| (a - b).abs() > 1e-3)
    );
}

/// Records what the view says of each request's remaining steps, dispatching each request
/// whole on GPU 0 when it is free.
struct Observer {
    seen: Vec<(u64, u32, u32)>,
}

impl tetriserve::policy::Policy for Observer {
    fn name(&self) -> &str {
        "observer"
    }

    fn decide(
        &mut self,
        view: &tetriserve::policy::View<'_>,
        out: &mut Vec<tetriserve::policy::Decision>,
    ) {
        use tetriserve::cluster::GpuSet;
        use tetriserve::policy::{Batch, Decision, Dispatch};
        for &id in view.arrived {
            let s = view.request(id);
            self.seen.push((
                s.request.label,
                s.remaining_steps(),
                view.expected_remaining_steps(id),
            ));
        }
        let gpu = GpuSet::new(0, 1);
        if let Some(s) = view.waiting().next()
            && view.free.is_free(gpu)
        {
            out.push(Decision::Dispatch(Dispatch {
                batch: Batch::one(s.request.id),
                steps: s.remaining_steps(),
                gpus: gpu,
            }));
        }
    }
}

#[test]
fn policies_see_the_nominal_and_the_expected_step_counts_never_the_mask() {
    // 50 steps at skip probability 0.3: 49 skippable -> 14 expected skipped, 36 to run,
    // whatever the drawn mask skips.
    let mut w = Workload::from_requests(vec![
        req(0, 0, SMALL, 50, 60_000),
        req(1, 10, SMALL, 50, 60_000),
    ]);
    SkipSpec::from_probability(0.3)
        .unwrap()
        .apply(&mut w, 9)
        .unwrap();
    let drawn: Vec<u32> = w.savings.iter().map(|s| s.skips.count(0, 50)).collect();
    let c = cluster(1);
    let costs = costs(&w, &c);
    let mut observer = Observer { seen: Vec::new() };
    let mut exec = SimExecutor::new(&costs, Overheads::default());
    exec.reset(&w, &[1]).unwrap();
    let run = engine::run(&w, &c, &costs, &mut observer, &mut exec).unwrap();
    assert_eq!(observer.seen, vec![(0, 50, 36), (1, 50, 36)]);
    let recorded: Vec<u32> = run.requests.iter().map(|r| r.saved.skipped_steps).collect();
    assert_eq!(recorded, drawn);
    assert!(drawn.iter().all(|&d| d > 0));
    // Without skipping the expected count is the nominal one.
    let plain = Workload::from_requests(vec![req(0, 0, SMALL, 50, 60_000)]);
    let mut observer = Observer { seen: Vec::new() };
    let mut exec = SimExecutor::new(&costs, Overheads::default());
    engine::run(&plain, &c, &costs, &mut observer, &mut exec).unwrap();
    assert_eq!(observer.seen, vec![(0, 50, 50)]);
}

#[test]
fn seed_acts_on_a_trace_only_when_caching_or_skipping_draws_from_it() {
    use tetriserve::scenario::Overrides;
    let dir = std::env::temp_dir().join(format!("tetriserve-cache-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let s = load(&scenario_text(CACHE_ON)).unwrap();
    let trace = dir.join("t.csv");
    std::fs::write(&trace, to_csv(&s.load_workload().unwrap())).unwrap();
    let file = dir.join("s.toml");
    let with = |extra: &str| {
        std::fs::write(&file, scenario_text(extra)).unwrap();
        Scenario::load(
            Some(&file),
            &Overrides {
                trace: Some(trace.clone()),
                seed: Some(3),
                ..Overrides::default()
            },
        )
    };
    // With the cache, the same seed replays the trace to the generated workload's hits.
    let replay = with(CACHE_ON).unwrap().load_workload().unwrap();
    assert_eq!(replay.requests, s.load_workload().unwrap().requests);
    assert!(with(SKIPS_ON).is_ok());
    let e = with("").unwrap_err().to_string();
    assert!(e.contains("--seed 3"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
