//! Video beside images: an image + video mix on the video model runs under every policy with
//! records the invariant checker accepts, clips get their derived SLO base, traces and run
//! directories carry the frame count, image models refuse clips, and image runs write the
//! bytes they wrote before frames existed.

use std::path::Path;

use proptest::prelude::*;

use tetriserve::cluster::Link;
use tetriserve::cost::CostModel;
use tetriserve::cost::analytic::Analytic;
use tetriserve::metrics::Outcome;
use tetriserve::metrics::invariants::check_run;
use tetriserve::report::{WorkRows, requests_csv, works_csv};
use tetriserve::scenario::{RawScenario, Scenario, WorkloadSource};
use tetriserve::workload::Resolution;
use tetriserve::workload::trace::{TRACE_HEADER, parse_trace, to_csv};

/// 81 frames of 832x480: 21 latent frames x 30 x 52 = 32,760 tokens.
const CLIP: Resolution = Resolution::video(832, 480, 81);

fn load(text: &str) -> tetriserve::error::Result<Scenario> {
    let raw = RawScenario::parse(text, "video.toml", Path::new("."))?;
    Scenario::from_raw(raw.or(RawScenario::default_scenario()), "video.toml")
}

/// Wan2.1-14B on one node of 8 H100s; images and clips; every policy, the ablations too.
fn mixed(seed: u64, rate: f64) -> String {
    format!(
        "seed = {seed}\n[cost]\nanalytic = {{ model = \"wan2.1-14b\", gpu = \"h100\" }}\n\
         [workload]\nrequests = 40\nrate_per_min = {rate}\nsteps = 20\n\
         mix = \"custom:512=40%,1024=40%,video:480p:81=20%\"\n\
         [slo]\nbases_s = {{ \"256x256\" = 4.7, \"512x512\" = 5.3, \"1024x1024\" = 9.8, \"2048x2048\" = 38.3 }}\n\
         [policy]\nrun = [\"all\", \"ablation\"]\n"
    )
}

#[test]
fn an_image_and_video_mix_passes_the_invariant_checker_for_every_policy() {
    for (seed, rate) in [(1, 6.0), (2, 20.0)] {
        let s = load(&mixed(seed, rate)).unwrap();
        let w = s.load_workload().unwrap();
        let clips = w.requests.iter().filter(|r| r.resolution == CLIP).count();
        assert_eq!(clips, 8, "20% of 40, stratified");
        let runs = tetriserve::simulate::simulate(&s).unwrap();
        assert_eq!(
            runs.len(),
            10,
            "xdit-sp1/2/4/8, rssp, tetriserve, shed, stepwise, ablations"
        );
        for run in &runs {
            let name = &run.summary.policy;
            let errors = check_run(&run.records, &w, None);
            assert!(errors.is_empty(), "seed {seed} {name}: {errors:#?}");
            let met = run
                .records
                .requests
                .iter()
                .filter(|r| r.outcome == Outcome::Met)
                .count();
            let bound = run.summary.slo_attainment_bound.unwrap();
            assert!(
                met as f64 <= bound * w.len() as f64 + 1e-9,
                "{name}: {met} met above the bound {bound}"
            );
            // Clips run on GPUs: each finished one did its 20 steps, in works of its resolution.
            for r in run.records.requests.iter().filter(|r| r.resolution == CLIP) {
                assert!(
                    r.steps_done == 20 || r.outcome == Outcome::Dropped,
                    "{name}: clip {} stopped at {}",
                    r.id,
                    r.steps_done
                );
            }
            assert!(
                run.records.works.iter().any(|x| x.resolution == CLIP),
                "{name} ran no clip"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Random image + video workloads on one or two nodes, with and without the fixed costs
    /// (a clip's VAE decode is charged per latent token): every policy's records pass the
    /// checker and none meets more than the upper bound.
    #[test]
    fn random_image_and_video_workloads_pass_the_checker_for_every_policy(
        seed in 0u64..1000,
        rate in prop::sample::select(vec![2.0, 6.0, 20.0]),
        nodes in 1u32..=2,
        gpus_per_node in prop::sample::select(vec![2u32, 4, 8]),
        clips in prop::sample::select(vec![10u32, 30, 60]),
        steps in 4u32..20,
        costs in any::<bool>(),
    ) {
        let overheads = if costs {
            "[overheads]\ntext_encoder_ms = 50.0\nvae_decode_ms_per_1k_tokens = 2.0\ndispatch_ms = 1.0\n"
        } else {
            ""
        };
        let text = format!(
            "seed = {seed}\n[cluster]\nnodes = {nodes}\ngpus_per_node = {gpus_per_node}\n\
             [cost]\nanalytic = {{ model = \"wan2.1-14b\", gpu = \"h100\" }}\n{overheads}\
             [workload]\nrequests = 30\nrate_per_min = {rate}\nsteps = {steps}\n\
             mix = \"custom:512={}%,video:480p:81={clips}%\"\n\
             [slo]\nbases_s = {{ \"512x512\" = 6.0 }}\n\
             [policy]\nrun = [\"all\", \"ablation\"]\n\
             [policy.rssp]\ndegrees = {{ \"256x256\" = 1, \"512x512\" = 1, \"1024x1024\" = 1, \"2048x2048\" = 1 }}\n",
            100 - clips
        );
        let s = load(&text).unwrap();
        let w = s.load_workload().unwrap();
        prop_assert!(w.requests.iter().any(|r| r.resolution == CLIP));
        for run in tetriserve::simulate::simulate(&s).unwrap() {
            let name = &run.summary.policy;
            let errors = check_run(&run.records, &w, None);
            prop_assert!(errors.is_empty(), "{name}: {errors:#?}");
            let met = run.records.requests.iter().filter(|r| r.outcome == Outcome::Met).count();
            let bound = run.summary.slo_attainment_bound.unwrap();
            prop_assert!(met as f64 <= bound * w.len() as f64 + 1e-9, "{name}: {met} > {bound}");
        }
    }
}

#[test]
fn a_clip_without_a_base_gets_twice_its_lone_time_at_the_fastest_degree() {
    let s = load(&mixed(1, 6.0)).unwrap();
    let w = s.load_workload().unwrap();
    // The fastest degree on 8 H100s is 8: 20 steps at SP 8, doubled, rounded up to the ms.
    let wan = Analytic::preset("wan2.1-14b", "h100").unwrap();
    let step = wan.step_time(CLIP, 8, 1, Link::NvLink).unwrap();
    let lone_ns = step.0 * 20;
    let base_ms = (2 * lone_ns).div_ceil(1_000_000);
    // By hand from the roofline: ~0.967 s per step at SP 8, so ~38.7 s for the base.
    assert!((38_600..38_800).contains(&base_ms), "{base_ms} ms");
    let clip = w.requests.iter().find(|r| r.resolution == CLIP).unwrap();
    assert_eq!(clip.slo().0, base_ms * 1_000_000);
    assert!(s.warnings[0].contains("832x480x81f has no SLO base; derived 38."));
    assert_eq!(
        s.policy_config.slo_bases.base(CLIP).map(|b| b.0),
        Some(base_ms * 1_000_000),
        "the clip is on the service's menu"
    );
    // An explicit base wins.
    let text = mixed(1, 6.0).replace(
        "\"256x256\" = 4.7",
        "\"video:480p:81\" = 500, \"256x256\" = 4.7",
    );
    let s = load(&text).unwrap();
    let clip = s
        .load_workload()
        .unwrap()
        .requests
        .into_iter()
        .find(|r| r.resolution == CLIP)
        .unwrap();
    assert_eq!(clip.slo().0, 500_000_000_000);
    assert!(s.warnings.iter().all(|m| !m.contains("has no SLO base")));
}

#[test]
fn image_models_and_profiles_refuse_clips_by_name() {
    // The default scenario's cost is the H100 FLUX.1-dev profile.
    let e = load("[workload]\nmix = \"custom:1024=90%,video:720p:81=10%\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("1280x720x81f") && e.contains("times images") && e.contains("wan2.1-14b"),
        "{e}"
    );
    let e = load(
        "[cost]\nanalytic = { model = \"flux1-dev\", gpu = \"h100\" }\n[workload]\nmix = \"video:480p:81\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("flux1-dev is an image model"), "{e}");
    // With an explicit base the mix loads, and the run refuses it before anything is simulated.
    let s =
        load("[workload]\nmix = \"video:480p:81\"\n[slo]\nbases_s = { \"832x480x81f\" = 60 }\n")
            .unwrap();
    let Err(e) = tetriserve::simulate::simulate(&s) else {
        panic!("a clip on an image profile ran")
    };
    let e = e.to_string();
    assert!(
        e.contains("832x480x81f") && e.contains("cannot cover"),
        "{e}"
    );
    // A frame count the VAE cannot encode is refused where the mix is read.
    let e = load("[workload]\nmix = \"video:480p:80\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("80 frames is not 4k + 1") && e.contains("77 or 81"),
        "{e}"
    );
}

#[test]
fn a_mixed_trace_and_run_directory_round_trip_the_frame_count() {
    let s = load(&mixed(3, 6.0)).unwrap();
    let w = s.load_workload().unwrap();
    let csv = to_csv(&w);
    assert!(
        csv.starts_with("id,arrival_s,width,height,frames,steps,slo_s\n"),
        "{csv}"
    );
    assert!(csv.contains(",832,480,81,20,"), "{csv}");
    assert!(csv.contains(",512,512,1,20,"), "{csv}");
    assert_eq!(parse_trace(&csv, "t.csv", None).unwrap(), w);
    // requests.csv gains the column; works.csv names a clip as it displays.
    let run = tetriserve::simulate::simulate(&s).unwrap().remove(0);
    let requests = requests_csv(&run.records);
    assert!(requests.starts_with("id,arrival_s,width,height,frames,steps,"));
    assert!(requests.contains(",832,480,81,20,20,"), "{requests}");
    let works = works_csv(&run.records, WorkRows::Merged);
    assert!(works.contains(",832x480x81f,"), "{works}");
}

#[test]
fn image_runs_write_no_frames() {
    // Frames appear only where a video does: an image run's files keep the columns they had
    // (byte-for-byte equality with earlier releases is what `scripts/compare-outputs.sh`
    // checks across every shipped scenario).
    let s = load("[workload]\nrequests = 60\nmix = \"skewed\"\n[policy]\nrun = [\"tetriserve\"]\n")
        .unwrap();
    let run = tetriserve::simulate::simulate(&s).unwrap().remove(0);
    let requests = requests_csv(&run.records);
    assert!(
        requests.starts_with("id,arrival_s,width,height,steps,"),
        "{requests}"
    );
    assert!(!requests.contains("frames"));
    let works = works_csv(&run.records, WorkRows::Merged);
    assert!(!works.contains("f,"), "{works}");
    // An image trace keeps its six columns.
    let WorkloadSource::Synthetic(_) = &s.workload else {
        panic!("a generated workload")
    };
    let csv = to_csv(&s.load_workload().unwrap());
    assert!(csv.starts_with(&format!("{TRACE_HEADER}\n")));
}

#[test]
fn the_binary_sweeps_a_video_mix_and_compares_its_clips_however_written() {
    use crate::cli::{run, stderr};
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("g.toml");
    std::fs::write(
        &grid,
        format!(
            "{}[sweep]\npolicies = [\"xdit-sp4\", \"stepwise\"]\nseeds = [1, 2]\n",
            mixed(1, 6.0)
        ),
    )
    .unwrap();
    let out = dir.path().join("runs");
    let o = run(&[
        "sweep",
        "-s",
        grid.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let by_res = std::fs::read_to_string(out.join("results-by-resolution.csv")).unwrap();
    assert!(by_res.contains(",832x480x81f,8,"), "{by_res}");
    let results = out.join("results.csv");
    for name in ["832x480x81f", "video:480p:81"] {
        let o = run(&[
            "compare",
            results.to_str().unwrap(),
            "--baseline",
            "xdit-sp4",
            "--policy",
            "stepwise",
            "--resolution",
            name,
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            text.contains("All 1 points, 832x480x81f attainment"),
            "{text}"
        );
    }
}
