//! A differential probe for mutation testing (ignored by default): thousands of small random
//! runs, every policy and a spread of configurations, each reduced to one digest line.
//!
//! A surviving mutant is a rule no test pins. To find a case where the rule matters, print the
//! digests of the unmutated code and of the mutant and compare them:
//!
//! ```sh
//! cargo test --profile mutants --test it -- --ignored probe:: --nocapture >before.txt
//! # apply the mutant, then
//! cargo test --profile mutants --test it -- --ignored probe:: --nocapture >after.txt
//! diff before.txt after.txt | head          # cases (smallest first) the mutant changes
//! PROBE_CASE=N cargo test --profile mutants --test it -- --ignored probe:: --nocapture
//! ```
//!
//! `PROBE_CASE=N` prints case N in full (workload, cluster, configuration and schedule), the
//! start of a hand-computed test that pins the rule. `PROBE_CASES` sets how many cases run
//! (default 3,000). Cases are ordered by size, so the first difference is a small one.
//! `PROBE_POLICY=NAME` runs one policy in every case, and `PROBE_MAX_REQUESTS=N` allows up to
//! N requests per case (default 8): a rule that acts only under overload needs more.

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

use tetriserve::cluster::{Cluster, Topology};
use tetriserve::cost::Overheads;
use tetriserve::engine::{self, SimExecutor};
use tetriserve::metrics::RunRecords;
use tetriserve::policy::{PolicyConfig, PolicyKind, StepwiseConfig, Variant};
use tetriserve::time::Nanos;
use tetriserve::workload::Workload;

use crate::util::{LARGE, SMALL, costs, req};

/// A small deterministic generator (xorshift64*), so that a case number names one case on
/// every machine.
struct Gen(u64);

impl Gen {
    fn new(case: u64) -> Gen {
        Gen(case.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One case: a workload, a cluster, a policy and its configuration.
struct Case {
    workload: Workload,
    cluster: Cluster,
    kind: PolicyKind,
    config: PolicyConfig,
}

const KINDS: [PolicyKind; 8] = [
    PolicyKind::XditSp(1),
    PolicyKind::XditSp(2),
    PolicyKind::Rssp,
    PolicyKind::Tetriserve(Variant::DP_ONLY),
    PolicyKind::Tetriserve(Variant::DP_PP),
    PolicyKind::Tetriserve(Variant::FULL),
    PolicyKind::Tetriserve(Variant::SHED),
    PolicyKind::Stepwise,
];

fn case(n: u64) -> Case {
    let mut g = Gen::new(n);
    // Sizes grow with the case number: the first cases are the smallest.
    let scale = 1 + n / 500;
    let requests = 1 + g.below(2 + scale.min(most_requests() - 2));
    let workload = Workload::from_requests(
        (0..requests)
            .map(|i| {
                let res = if g.chance(50) { SMALL } else { LARGE };
                req(
                    i,
                    g.below(6) * 50,
                    res,
                    1 + g.below(6) as u32,
                    100 + g.below(30) * 50,
                )
            })
            .collect(),
    );
    let nodes = if g.chance(20) { 2 } else { 1 };
    let per_node = [1, 2, 2, 4][g.below(4) as usize];
    let cluster = Cluster::new("tiny", nodes, per_node, Topology::NvSwitch).unwrap();
    let drawn = KINDS[g.below(KINDS.len() as u64) as usize];
    let kind = only_policy().unwrap_or(drawn);
    let ms = |v: u64| Nanos(v * 1_000_000);
    let overheads = Overheads {
        text_encoder: if g.chance(30) { ms(20) } else { Nanos::ZERO },
        vae_decode_per_1k_tokens: if g.chance(20) { ms(5) } else { Nanos::ZERO },
        remap_fraction: if g.chance(30) { 0.1 } else { 0.0 },
        group_setup: if g.chance(20) { ms(30) } else { Nanos::ZERO },
        group_setup_on_regroup: g.chance(50),
        dispatch: if g.chance(30) { ms(5) } else { Nanos::ZERO },
        node_handoff: if g.chance(30) { ms(10) } else { Nanos::ZERO },
    };
    let mut config = PolicyConfig {
        rssp_degrees: vec![(SMALL, 1), (LARGE, 2)],
        stepwise: StepwiseConfig {
            give_up_hopeless: g.chance(50),
            revocable_grants: g.chance(50),
        },
        overheads,
        ..Default::default()
    };
    let t = &mut config.tetriserve;
    t.batching = g.chance(20);
    t.backfill = !g.chance(20);
    t.fill_rounds = !g.chance(20);
    t.round_aware_plans = !g.chance(20);
    t.snap_rounds = !g.chance(20);
    if g.chance(20) {
        t.drop_late_after = Some(ms(g.below(4) * 100));
    }
    Case {
        workload,
        cluster,
        kind,
        config,
    }
}

/// `PROBE_MAX_REQUESTS` (default 8, at least 3): the most requests a case has. More reach
/// overload, where admission sheds requests.
fn most_requests() -> u64 {
    std::env::var("PROBE_MAX_REQUESTS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(8)
        .clamp(3, 64)
}

/// `PROBE_POLICY=NAME`: every case runs that policy (the rest of each case is drawn as
/// without it, so case numbers keep their workloads).
fn only_policy() -> Option<PolicyKind> {
    std::env::var("PROBE_POLICY").ok().map(|v| {
        v.parse()
            .unwrap_or_else(|e| panic!("PROBE_POLICY={v}: {e}"))
    })
}

/// How hard a case is to work out by hand: requests weigh most, then GPUs, then every cost
/// beyond the steps.
fn size(c: &Case) -> u64 {
    let o = &c.config.overheads;
    let costs = [
        o.text_encoder > Nanos::ZERO,
        o.vae_decode_per_1k_tokens > Nanos::ZERO,
        o.remap_fraction > 0.0,
        o.group_setup > Nanos::ZERO,
        o.dispatch > Nanos::ZERO,
        o.node_handoff > Nanos::ZERO && c.cluster.nodes > 1,
    ];
    let steps: u64 = c.workload.requests.iter().map(|r| u64::from(r.steps)).sum();
    100 * c.workload.requests.len() as u64
        + 10 * u64::from(c.cluster.total_gpus())
        + 10 * costs.iter().filter(|&&x| x).count() as u64
        + steps
}

fn run(c: &Case) -> tetriserve::error::Result<RunRecords> {
    let costs = costs(&c.workload, &c.cluster);
    let mut p = tetriserve::policy::build(c.kind, &c.cluster, &costs, &c.config)?;
    let mut exec = SimExecutor::new(&costs, c.config.overheads.clone());
    engine::run(&c.workload, &c.cluster, &costs, p.as_mut(), &mut exec)
}

/// The run as text: every work and every request's outcome.
fn text(run: &tetriserve::error::Result<RunRecords>) -> String {
    let mut s = String::new();
    match run {
        Err(e) => {
            let _ = writeln!(s, "error: {e}");
        }
        Ok(r) => {
            for w in &r.works {
                let _ = writeln!(
                    s,
                    "work {:?} on {} {}..{} ms, {} steps",
                    w.requests,
                    w.gpus,
                    w.start.0 as f64 / 1e6,
                    w.end.0 as f64 / 1e6,
                    w.steps
                );
            }
            for q in &r.requests {
                let _ = writeln!(
                    s,
                    "request {} {} end {} ms",
                    q.id,
                    q.outcome.as_str(),
                    q.end.0 as f64 / 1e6
                );
            }
        }
    }
    s
}

#[test]
#[ignore = "a tool for mutation testing: see the module docs"]
fn digests() {
    let cases: u64 = std::env::var("PROBE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    if let Some(n) = std::env::var("PROBE_CASE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let c = case(n);
        println!(
            "case {n}: {:?} on {} node(s) x {} GPU(s)",
            c.kind, c.cluster.nodes, c.cluster.gpus_per_node
        );
        for r in &c.workload.requests {
            println!(
                "  request {} arrives {} ms, {}, {} steps, deadline {} ms",
                r.label,
                r.arrival.0 / 1_000_000,
                r.resolution,
                r.steps,
                r.deadline.0 / 1_000_000
            );
        }
        println!("  overheads {:?}", c.config.overheads);
        println!("  stepwise {:?}", c.config.stepwise);
        println!("  tetriserve {:?}", c.config.tetriserve);
        print!("{}", text(&run(&c)));
        return;
    }
    for n in 0..cases {
        let c = case(n);
        let mut h = DefaultHasher::new();
        text(&run(&c)).hash(&mut h);
        println!("case {n} {:016x} size {}", h.finish(), size(&c));
    }
}
