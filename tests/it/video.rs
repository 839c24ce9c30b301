//! Video beside images: an image + video mix on the video model runs under every policy with
//! records the invariant checker accepts, clips get their derived SLO base, traces and run
//! directories carry the frame count, image models refuse clips, and image runs write the
//! bytes they wrote before frames existed.

use std::path::Path;

use proptest::prelude::*;

use tetriserve::Nanos;
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

/// Runs `kind` on one tiny GPU with clips preemptible at step boundaries or not.
fn run_preempting(
    kind: tetriserve::policy::PolicyKind,
    w: &tetriserve::workload::Workload,
    gpus: u32,
    mode: tetriserve::policy::VideoPreemption,
) -> tetriserve::metrics::RunRecords {
    use crate::util::*;
    let cluster = cluster(gpus);
    let costs = costs(w, &cluster);
    let config = tetriserve::policy::PolicyConfig {
        rssp_degrees: vec![(SMALL, 1), (LARGE, 2)],
        video_preemption: mode,
        ..tetriserve::policy::PolicyConfig::default()
    };
    let mut policy = tetriserve::policy::build(kind, &cluster, &costs, &config).unwrap();
    let run = run_policy(policy.as_mut(), w, &cluster, &costs).unwrap();
    assert_eq!(check_run(&run, w, None), Vec::<String>::new());
    run
}

/// One GPU, tiny costs (a 512 px step: 300 ms; 256 px: 100 ms). A 5-frame 512 px clip of 10
/// steps arrives at 0 with 10 s to spare; a 256 px image of 2 steps arrives at 450 ms, due at
/// 850 ms. With step-boundary preemption `stepwise` cuts the clip at its boundary at 600 ms,
/// serves the image 600-800 (met), and resumes the clip at 800 for its 8 steps left (ends 3200).
/// Without it the clip keeps the GPU to 3000, and the image cannot be met.
#[test]
fn without_step_boundary_preemption_a_clip_keeps_its_gpu_and_the_image_misses() {
    use crate::util::*;
    use tetriserve::policy::{PolicyKind, VideoPreemption};
    let clip = Resolution::video(512, 512, 5);
    let w = tetriserve::workload::Workload::from_requests(vec![
        req(0, 0, clip, 10, 10_000),
        req(1, 450, SMALL, 2, 400),
    ]);
    let pre = run_preempting(PolicyKind::Stepwise, &w, 1, VideoPreemption::StepBoundary);
    assert_eq!(
        schedule(&pre),
        vec![
            (0, Some(ms(0)), ms(3200), "met"),
            (1, Some(ms(600)), ms(800), "met")
        ]
    );
    let clip_works_of = |run: &tetriserve::metrics::RunRecords| -> Vec<(Nanos, Nanos, u32)> {
        run.works
            .iter()
            .filter(|x| x.resolution == clip)
            .map(|x| (x.start, x.end, x.steps))
            .collect()
    };
    let clip_works = clip_works_of(&pre);
    assert_eq!(
        clip_works.iter().map(|x| x.2).sum::<u32>(),
        10,
        "{clip_works:?}"
    );
    assert!(clip_works.iter().any(|x| x.1 == ms(600)), "{clip_works:?}");
    let none = run_preempting(PolicyKind::Stepwise, &w, 1, VideoPreemption::None);
    assert_eq!(clip_works_of(&none), vec![(ms(0), ms(3000), 10)]);
    let image = &none.requests[1];
    assert_ne!(image.outcome, Outcome::Met, "{:?}", schedule(&none));
    assert!(
        image.start.is_none_or(|s| s >= ms(3000)),
        "{:?}",
        schedule(&none)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// Random image + video workloads with `video_preemption = "none"`: every policy's records
    /// pass the checker and stay under the bound, every clip that started ran all its steps
    /// in one work on one GPU set, and the baselines, which never preempt, are unchanged.
    #[test]
    fn without_video_preemption_every_clip_runs_in_one_work(
        seed in 0u64..1000,
        rate in prop::sample::select(vec![6.0, 20.0]),
        gpus_per_node in prop::sample::select(vec![2u32, 4, 8]),
        steps in 4u32..16,
    ) {
        let text = |mode: &str| format!(
            "seed = {seed}\n[cluster]\nnodes = 1\ngpus_per_node = {gpus_per_node}\n\
             [cost]\nanalytic = {{ model = \"wan2.1-14b\", gpu = \"h100\" }}\n\
             [workload]\nrequests = 30\nrate_per_min = {rate}\nsteps = {steps}\n\
             mix = \"custom:512=40%,1024=30%,video:480p:81=30%\"\n\
             [slo]\nbases_s = {{ \"512x512\" = 6.0, \"1024x1024\" = 10.0 }}\n\
             [policy]\nrun = [\"all\", \"ablation\"]\nvideo_preemption = \"{mode}\"\n\
             [policy.rssp]\ndegrees = {{ \"512x512\" = 1, \"1024x1024\" = 2 }}\n"
        );
        let s = load(&text("none")).unwrap();
        let w = s.load_workload().unwrap();
        let plain = tetriserve::simulate::simulate(&load(&text("step-boundary")).unwrap()).unwrap();
        for (run, before) in tetriserve::simulate::simulate(&s).unwrap().iter().zip(&plain) {
            let name = &run.summary.policy;
            prop_assert_eq!(name, &before.summary.policy);
            let errors = check_run(&run.records, &w, None);
            prop_assert!(errors.is_empty(), "{name}: {errors:#?}");
            let met = run.records.requests.iter().filter(|r| r.outcome == Outcome::Met).count();
            let bound = run.summary.slo_attainment_bound.unwrap();
            prop_assert!(met as f64 <= bound * w.len() as f64 + 1e-9, "{name}: {met} > {bound}");
            for r in run.records.requests.iter().filter(|r| r.resolution.is_video()) {
                let works: Vec<_> = run
                    .records
                    .works
                    .iter()
                    .filter(|x| x.requests.contains(&r.id))
                    .collect();
                prop_assert!(works.len() <= 1, "{name}: clip {} ran in {} works", r.id, works.len());
                if let Some(x) = works.first() {
                    prop_assert_eq!((x.first_step, x.steps), (0, steps), "{}: clip {}", name, r.id);
                }
            }
            if name.starts_with("xdit") || name == "rssp" {
                // Decision times are measured wall-clock figures; the rest must match.
                prop_assert_eq!(&run.records.requests, &before.records.requests, "{} changed", name);
                prop_assert_eq!(&run.records.works, &before.records.works, "{} changed", name);
            }
        }
    }
}

/// Without clips the mode changes nothing: every policy's records are identical.
#[test]
fn image_runs_are_identical_whatever_the_video_preemption() {
    use crate::util::*;
    use tetriserve::policy::{PolicyKind, VideoPreemption};
    let w = tetriserve::workload::Workload::from_requests(
        (0..24)
            .map(|i| {
                let res = if i % 3 == 0 { LARGE } else { SMALL };
                req(i, 90 * i, res, 3 + (i % 4) as u32, 900 + 40 * (i % 5))
            })
            .collect(),
    );
    for p in PolicyKind::all() {
        if matches!(p.kind, PolicyKind::XditSp(8)) {
            continue;
        }
        let a = run_preempting(p.kind, &w, 4, VideoPreemption::StepBoundary);
        let b = run_preempting(p.kind, &w, 4, VideoPreemption::None);
        // Decision times are measured wall-clock figures; the rest must match.
        assert_eq!(
            (a.requests, a.works, a.events),
            (b.requests, b.works, b.events),
            "{}",
            p.name
        );
    }
}

/// The key and the flag take the two modes by name, and refuse others naming the key, or a
/// mix without clips naming the flag.
#[test]
fn the_video_preemption_key_and_flag_are_checked() {
    let err = load("[policy]\nvideo_preemption = \"never\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("policy.video_preemption") && err.contains("\"none\""),
        "{err}"
    );
    let o = tetriserve::scenario::Overrides {
        video_preemption: Some("none".into()),
        ..Default::default()
    };
    let err = Scenario::load(None, &o).unwrap_err().to_string();
    assert!(
        err.contains("--video-preemption none") && err.contains("holds none"),
        "{err}"
    );
    let o = tetriserve::scenario::Overrides {
        video_preemption: Some("none".into()),
        mix: Some("custom:1024=90%,video:480p:81=10%".into()),
        profile: None,
        ..Default::default()
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/beyond/video-mix.toml");
    let s = Scenario::load(Some(&path), &o).unwrap();
    assert_eq!(
        s.policy_config.video_preemption,
        tetriserve::policy::VideoPreemption::None
    );
}

/// A run without step-boundary preemption says so beside its policies.
#[test]
fn the_run_header_names_a_run_without_video_preemption() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tetriserve"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "simulate",
            "-s",
            "scenarios/beyond/video-mix.toml",
            "-p",
            "xdit-sp8",
            "--requests",
            "10",
            "--video-preemption",
            "none",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("policies: xdit-sp8 (video clips run to their end once started"),
        "{text}"
    );
}
