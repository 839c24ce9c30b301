//! The paper's Figure 1: three requests (small, medium, large), five steps each, four GPUs.
//! Fixed SP = 1 and SP = 4 each miss deadlines; TetriServe meets all three by giving the
//! medium request few GPUs first and more later.

use tetriserve::Nanos;
use tetriserve::cluster::Link;
use tetriserve::cost::{CostModel, Overheads, StepTimes};
use tetriserve::engine::{self, SimExecutor};
use tetriserve::error::{Error, Result};
use tetriserve::metrics::RunRecords;
use tetriserve::policy::tetriserve::{RoundLength, TetriserveConfig};
use tetriserve::policy::{self, PolicyConfig, PolicyKind, Variant};
use tetriserve::workload::{Resolution, Workload};

use crate::util::{cluster, ms, req};

const S: Resolution = Resolution::square(256);
const M: Resolution = Resolution::square(512);
const L: Resolution = Resolution::square(1024);

/// Step times (ms) at SP 1 / 2 / 4.
struct Fig1Costs;

impl CostModel for Fig1Costs {
    fn step_time(&self, res: Resolution, k: u32, batch: u32, _link: Link) -> Result<Nanos> {
        let t = match (res.width, k) {
            (256, 1) => 100,
            (256, 2) => 75,
            (256, 4) => 60,
            (512, 1) => 300,
            (512, 2) => 200,
            (512, 4) => 120,
            (1024, 1) => 600,
            (1024, 2) => 300,
            (1024, 4) => 150,
            _ => return Err(Error::Cost("not in the figure".into())),
        };
        Ok(ms(t * u64::from(batch)))
    }
    fn describe(&self) -> String {
        "figure 1".into()
    }
}

fn workload() -> Workload {
    Workload::from_requests(vec![
        req(0, 0, S, 5, 600),
        req(1, 0, M, 5, 1200),
        req(2, 0, L, 5, 1500),
    ])
}

fn run(kind: PolicyKind) -> RunRecords {
    run_with(
        kind,
        Overheads {
            remap_fraction: 0.0,
            ..Overheads::default()
        },
    )
}

fn run_with(kind: PolicyKind, overheads: Overheads) -> RunRecords {
    let w = workload();
    let c = cluster(4);
    let costs = StepTimes::resolve(&Fig1Costs, &w.resolutions(), &c, &[1]).unwrap();
    let config = PolicyConfig {
        tetriserve: TetriserveConfig {
            round: RoundLength::Fixed(ms(300)),
            ..TetriserveConfig::default()
        },
        overheads,
        ..PolicyConfig::default()
    };
    let mut p = policy::build(kind, &c, &costs, &config).unwrap();
    let mut exec = SimExecutor::new(&costs, config.overheads.clone());
    engine::run(&w, &c, &costs, p.as_mut(), &mut exec).unwrap()
}

/// The SP degree of each step of request `label`, from the work records.
fn degrees_per_step(run: &RunRecords, label: u64) -> Vec<u32> {
    let mut d = Vec::new();
    for w in run.works.iter().filter(|w| w.requests.contains(&label)) {
        assert_eq!(w.first_step as usize, d.len(), "steps run in order");
        d.extend(std::iter::repeat_n(w.gpus.len(), w.steps as usize));
    }
    d
}

fn outcomes(run: &RunRecords) -> Vec<&'static str> {
    run.requests.iter().map(|r| r.outcome.as_str()).collect()
}

#[test]
fn fixed_parallelism_misses_deadlines() {
    // SP = 1: S 5 x 100 ms = 0.5 s (met); M 5 x 300 = 1.5 s > 1.2; L 5 x 600 = 3 s > 1.5.
    assert_eq!(
        outcomes(&run(PolicyKind::XditSp(1))),
        ["met", "missed", "missed"]
    );
    // SP = 4, FCFS on one group: S 0-0.3, M 0.3-0.9, L 0.9-1.65 > 1.5 (head-of-line blocking).
    let sp4 = run(PolicyKind::XditSp(4));
    assert_eq!(outcomes(&sp4), ["met", "met", "missed"]);
    assert_eq!(sp4.requests[2].end, ms(1650));
}

#[test]
fn a_dispatch_cost_is_charged_once_per_work() {
    // SP = 4 with 50 ms per work: S 0-0.35, M 0.35-1.0, L 1.0-1.8.
    let sp4 = run_with(
        PolicyKind::XditSp(4),
        Overheads {
            remap_fraction: 0.0,
            dispatch: ms(50),
            ..Overheads::default()
        },
    );
    let ends: Vec<Nanos> = sp4.requests.iter().map(|r| r.end).collect();
    assert_eq!(ends, vec![ms(350), ms(1000), ms(1800)]);
}

/// With rounds of 300 ms (round-aware plan times equal the step times here, except that a
/// 600 ms step does not fit a round), TetriServe's schedule is:
///
/// - t = 0: every request survives waiting, so Algorithm 1 runs nobody (fewest GPUs); work
///   conservation then starts them, earliest deadline first, at the cheapest degree of their
///   plans: S on 1 GPU (3 steps), M on 1 GPU (1 step; its plan is 3 steps at SP1 + 2 at SP4),
///   L on 2 GPUs (1 step).
/// - t = 0.3: S must run now to survive (0.6 + 2 x 60 > 0.6) and finishes at 0.5; M and L
///   keep their GPUs (placement preservation).
/// - t = 0.6: M must run (0.9 + 3 x 120 > 1.2): packed at SP1, then scaled up to SP2 by the
///   idle GPU; L runs one more step at SP2.
/// - t = 0.9: M must finish now: SP4 for its last 2 steps (ends 1.14); L survives waiting.
/// - t = 1.2: L takes all 4 GPUs for its last 2 steps, ending exactly at its deadline, 1.5.
#[test]
fn tetriserve_meets_every_deadline_by_changing_degrees_between_steps() {
    let r = run(PolicyKind::Tetriserve(Variant::FULL));
    assert_eq!(outcomes(&r), ["met", "met", "met"]);
    assert_eq!(degrees_per_step(&r, 0), [1, 1, 1, 1, 1]);
    assert_eq!(
        degrees_per_step(&r, 1),
        [1, 1, 2, 4, 4],
        "the medium request starts narrow and scales up"
    );
    assert_eq!(degrees_per_step(&r, 2), [2, 2, 2, 4, 4]);
    let ends: Vec<Nanos> = r.requests.iter().map(|x| x.end).collect();
    assert_eq!(ends, [ms(500), ms(1140), ms(1500)]);
}
