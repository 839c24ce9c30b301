//! Flags end to end: every flag acts or is refused naming it, `--help` lists only the flags a
//! command acts on, the banner names what runs, SLO scales and time scales act on traces, SLO
//! bases that do not fit the profile are warned about, and attainment per resolution.
//!
//! Hand-computed numbers use the built-in H100 profile: FLUX.1-dev at 1024 px, SP 8, batch 1
//! takes 44.0064 ms a step, so 28 steps take 1.232 s; at SP 2 99.2265 ms (2.778 s).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tetriserve::scenario::{Overrides, Scenario};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tetriserve"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("runs the binary")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs and expects success, returning stdout.
fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "{args:?} failed:\n{}", stderr(&o));
    stdout(&o)
}

/// Runs and expects a refusal, returning stderr.
fn refused(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        !o.status.success(),
        "{args:?} was accepted:\n{}",
        stdout(&o)
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    stderr(&o)
}

/// A fresh directory under the target directory, named for the test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("flags-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The `met` cell of `policy`'s row in `--format csv` output.
fn met(csv: &str, policy: &str) -> u64 {
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|c| *c == "met").unwrap();
    let row = csv
        .lines()
        .find(|l| l.starts_with(&format!("{policy},")))
        .unwrap_or_else(|| panic!("no {policy} row in\n{csv}"));
    row.split(',').nth(col).unwrap().parse().unwrap()
}

#[test]
fn slo_scale_multiplies_a_trace_rows_slo() {
    let dir = scratch("slo-scale");
    // One 1024 px request: 1.232 s at SP 8 against slo_s 1.0 s: missed at scale 1, met at 1.5
    // (1.5 s); a row without slo_s takes scale x the 3 s base: met at 1, missed at 0.4 (1.2 s).
    let given = write(
        &dir,
        "given.csv",
        "id,arrival_s,width,height,steps,slo_s\n0,0,1024,1024,28,1.0\n",
    );
    let empty = write(
        &dir,
        "empty.csv",
        "id,arrival_s,width,height,steps,slo_s\n0,0,1024,1024,28,\n",
    );
    let sim = |trace: &str, scale: &str| {
        let csv = ok(&[
            "simulate",
            "--trace",
            trace,
            "--policy",
            "xdit-sp8",
            "--slo-scale",
            scale,
            "--format",
            "csv",
        ]);
        met(&csv, "xdit-sp8")
    };
    assert_eq!(sim(&given, "1"), 0);
    assert_eq!(sim(&given, "1.5"), 1);
    assert_eq!(sim(&empty, "1"), 1);
    assert_eq!(sim(&empty, "0.4"), 0);
}

#[test]
fn time_scale_replays_a_trace_faster() {
    let dir = scratch("time-scale");
    // Two 1024 px requests at 0 s and 1 s, each 1.232 s alone at SP 8 (all 8 GPUs), slo_s 2 s.
    // At 1x the second starts at 1.232 s and ends at 2.464 s, before its deadline of 3 s.
    // At 4x it arrives at 0.25 s, still starts at 1.232 s, and misses its deadline of 2.25 s.
    let trace = write(
        &dir,
        "two.csv",
        "id,arrival_s,width,height,steps,slo_s\n0,0,1024,1024,28,2\n1,1,1024,1024,28,2\n",
    );
    let sim = |extra: &[&str]| {
        let mut args = vec![
            "simulate", "--trace", &trace, "--policy", "xdit-sp8", "--format", "csv",
        ];
        args.extend_from_slice(extra);
        met(&ok(&args), "xdit-sp8")
    };
    assert_eq!(sim(&[]), 2);
    assert_eq!(sim(&["--time-scale", "1"]), 2);
    assert_eq!(sim(&["--time-scale", "4"]), 1);
    for bad in ["0", "-2", "nan"] {
        let flag = format!("--time-scale={bad}");
        let e = refused(&["simulate", "--trace", &trace, &flag]);
        assert!(e.contains("--time-scale"), "{bad}: {e}");
    }
    let e = refused(&["simulate", "--trace", &trace, "--time-scale", "1e-300"]);
    assert!(
        e.contains("--time-scale") && e.contains("at least 1e-9"),
        "{e}"
    );
    // Gaps that a slow replay carries past the horizon are refused, naming the request.
    let far = write(
        &dir,
        "far.csv",
        "id,arrival_s,width,height,steps,slo_s\n0,0,256,256,28,2\n1,100,256,256,28,2\n",
    );
    let e = refused(&["simulate", "--trace", &far, "--time-scale", "1e-9"]);
    assert!(e.contains("request 1") && e.contains("horizon"), "{e}");
    let e = refused(&["simulate", "--time-scale", "2"]);
    assert!(
        e.contains("--time-scale 2") && e.contains("no trace"),
        "{e}"
    );
}

#[test]
fn generation_flags_beside_a_trace_are_refused() {
    for flag in [
        ["--rate", "3"],
        ["--mix", "skewed"],
        ["--requests", "5"],
        ["--seed", "1"],
        ["--steps", "10"],
        ["--arrival", "gamma"],
    ] {
        let mut args = vec!["simulate", "--trace", "traces/tiny.csv"];
        args.extend_from_slice(&flag);
        let e = refused(&args);
        assert!(
            e.contains(&format!("{} {}", flag[0], flag[1])) && e.contains("--trace replays"),
            "{flag:?}: {e}"
        );
    }
    // A scenario file's trace counts too; its own generation keys are only defaults.
    let dir = scratch("file-trace");
    let trace = std::fs::canonicalize("traces/tiny.csv").unwrap();
    let scenario = write(
        &dir,
        "s.toml",
        &format!(
            "[workload]\ntrace = \"{}\"\nrate_per_min = 3.0\nmix = \"skewed\"\n",
            trace.display()
        ),
    );
    ok(&["simulate", "-s", &scenario, "--policy", "rssp"]);
    let e = refused(&["simulate", "-s", &scenario, "--rate", "3"]);
    assert!(e.contains("the scenario's workload.trace"), "{e}");
    // `validate` shares the check (refused before any node is built).
    let e = refused(&[
        "validate",
        "--device",
        "cpu",
        "--gpus",
        "2",
        "--trace",
        "traces/tiny.csv",
        "--mix",
        "skewed",
    ]);
    assert!(e.contains("--mix skewed"), "{e}");
    // Comparing two run directories runs nothing: scenario flags are refused there.
    let e = refused(&["validate", "--compare", "a", "b", "--rate", "3"]);
    assert!(e.contains("--compare") && e.contains("--rate 3"), "{e}");
}

#[test]
fn flags_without_anything_to_act_on_are_refused() {
    let e = refused(&["simulate", "--cv", "2"]);
    assert!(e.contains("--cv 2") && e.contains("--arrival gamma"), "{e}");
    let e = refused(&["simulate", "--on-s", "5"]);
    assert!(
        e.contains("--on-s 5") && e.contains("--arrival on-off"),
        "{e}"
    );
    let e = refused(&["simulate", "--policy", "rssp", "--granularity", "3"]);
    assert!(
        e.contains("--granularity 3") && e.contains("no TetriServe"),
        "{e}"
    );
    let e = refused(&["simulate", "--policy", "xdit-sp1", "--tie-break", "work"]);
    assert!(e.contains("--tie-break work"), "{e}");
    let e = refused(&["simulate", "--granularity", "3", "--tau-ms", "100"]);
    assert!(e.contains("--granularity") && e.contains("--tau-ms"), "{e}");
    let e = refused(&["simulate", "--by-resolution", "--format", "json"]);
    assert!(e.contains("--by-resolution"), "{e}");
}

#[test]
fn on_off_arrivals_take_their_lengths_from_flags() {
    let o = run(&[
        "simulate",
        "--arrival",
        "on-off",
        "--on-s",
        "10",
        "--off-s",
        "50",
        "--requests",
        "8",
        "--policy",
        "rssp",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("on/off (10 s on, 50 s off)"),
        "{}",
        stderr(&o)
    );
    let e = refused(&["simulate", "--arrival", "on-off", "--on-s", "10"]);
    assert!(e.contains("--off-s"), "{e}");
}

#[test]
fn a_bad_flag_value_is_reported_against_the_flag() {
    for (args, start) in [
        (
            &["--policy", "xdit-sp3"][..],
            "error: --policy `xdit-sp3`: unknown policy",
        ),
        (&["--mix", "bad"], "error: --mix `bad`: unknown mix"),
        (
            &["--tie-break", "x"],
            "error: --tie-break `x`: unknown tie-break",
        ),
        (
            &["--arrival", "x"],
            "error: --arrival `x`: unknown arrival process",
        ),
        (&["--steps", "0"], "error: --steps `0`: must be at least 1"),
    ] {
        let mut all = vec!["simulate"];
        all.extend_from_slice(args);
        let e = refused(&all);
        assert!(e.starts_with(start), "{args:?}: {e}");
        assert!(!e.contains("embedded"), "{args:?}: {e}");
    }
}

#[test]
fn the_banner_names_what_runs() {
    let o = run(&[
        "simulate",
        "--mix",
        "skewed",
        "--requests",
        "8",
        "--policy",
        "rssp",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    let first = e.lines().next().unwrap();
    assert_eq!(
        first,
        "running the built-in default scenario `flux-h100-uniform`, overridden by --policy rssp --requests 8 --mix skewed"
    );
    assert!(e.contains("mix skewed"), "{e}");
    let o = run(&[
        "simulate",
        "-s",
        "scenarios/skewed.toml",
        "--requests",
        "8",
        "--policy",
        "rssp",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .lines()
            .next()
            .unwrap()
            .contains("from scenarios/skewed.toml, overridden by"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_lists_only_the_flags_a_command_acts_on() {
    // The flags the help lists (`-s, --scenario <FILE>`), not those its prose mentions; the
    // whole text last.
    let help = |cmd: &[&str]| {
        let mut args = cmd.to_vec();
        args.push("--help");
        let text = ok(&args);
        let mut flags: Vec<String> = text
            .lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with('-'))
            .flat_map(|l| {
                l.split([' ', ','])
                    .take_while(|t| t.is_empty() || t.starts_with('-'))
                    .filter(|t| t.starts_with("--"))
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        flags.push(text);
        flags
    };
    let lists = |flags: &[String], flag: &str| flags.iter().any(|f| f == flag);
    let import = help(&["trace", "import"]);
    for absent in [
        "--rate",
        "--requests",
        "--granularity",
        "--tau-ms",
        "--tie-break",
        "--slo-scale",
        "--slo-base",
        "--arrival",
        "--policy",
    ] {
        assert!(
            !lists(&import, absent),
            "trace import --help shows {absent}"
        );
    }
    for present in ["--mix", "--seed", "--steps", "--time-scale", "--scenario"] {
        assert!(
            lists(&import, present),
            "trace import --help lacks {present}"
        );
    }
    let generate = help(&["trace", "generate"]);
    for absent in [
        "--granularity",
        "--tie-break",
        "--profile",
        "--gpus",
        "--time-scale",
    ] {
        assert!(
            !lists(&generate, absent),
            "trace generate --help shows {absent}"
        );
    }
    for present in ["--rate", "--slo-scale", "--on-s", "--off-s"] {
        assert!(
            lists(&generate, present),
            "trace generate --help lacks {present}"
        );
    }
    let simulate = help(&["simulate"]);
    for present in ["--time-scale", "--on-s", "--by-resolution"] {
        assert!(lists(&simulate, present), "simulate --help lacks {present}");
    }
    let text = simulate.last().unwrap();
    for heading in ["Workload generation", "TetriServe tuning", "Trace replay"] {
        assert!(text.contains(heading), "simulate --help lacks {heading}");
    }
}

#[test]
fn trace_import_writes_slo_s_only_where_the_source_gives_one() {
    let dir = scratch("import");
    let out = dir.join("dit.csv").display().to_string();
    ok(&[
        "trace",
        "import",
        "traces/samples/vllm-omni-dit.jsonl",
        "--format",
        "vllm-omni",
        "-o",
        &out,
    ]);
    let written = std::fs::read_to_string(&out).unwrap();
    let source = std::fs::read_to_string("traces/samples/vllm-omni-dit.jsonl").unwrap();
    let with_slo = source.lines().filter(|l| l.contains("\"slo_ms\"")).count();
    let rows: Vec<&str> = written.lines().skip(1).collect();
    assert_eq!(
        rows.len(),
        source.lines().filter(|l| !l.trim().is_empty()).count()
    );
    assert_eq!(rows.iter().filter(|r| !r.ends_with(',')).count(), with_slo);
    assert!(
        with_slo > 0 && with_slo < rows.len(),
        "the sample mixes both"
    );
    // The first row of the sample gives slo_ms 3000.
    assert!(rows[0].ends_with(",3.000000000"), "{}", rows[0]);
    // The empty cells take --slo-scale x base when replayed.
    ok(&[
        "simulate",
        "--trace",
        &out,
        "--slo-scale",
        "2",
        "--policy",
        "rssp",
    ]);
    // Flags with nothing to fill are refused.
    let e = refused(&[
        "trace",
        "import",
        "traces/samples/vllm-omni-dit.jsonl",
        "--format",
        "vllm-omni",
        "--mix",
        "skewed",
    ]);
    assert!(e.contains("--mix") && e.contains("every row"), "{e}");
    let e = refused(&[
        "trace",
        "import",
        "traces/samples/vllm-omni-dit.jsonl",
        "--format",
        "vllm-omni",
        "--steps",
        "20",
    ]);
    assert!(e.contains("--steps 20"), "{e}");
    // Alibaba rows have no resolution: --mix and --seed act.
    let a = ok(&[
        "trace",
        "import",
        "traces/samples/alibaba-genai.csv",
        "--format",
        "alibaba-genai",
        "--mix",
        "homogeneous:512",
        "--seed",
        "3",
    ]);
    assert!(
        a.lines()
            .skip(1)
            .all(|r| r.contains(",512,512,") && r.ends_with(',')),
        "{a}"
    );
}

#[test]
fn slo_bases_that_do_not_fit_the_profile_are_warned_about() {
    // The a40 profile (analytic estimate) with the default's H100 bases on 4 GPUs: 2048 px
    // takes 557.0190 ms a step at SP 4, 15.60 s for 28 steps, against a 5 s SLO; RSSP's 1024 px
    // degree 2 takes 148.6257 ms a step, 4.16 s, against 3 s, where SP 4 (98.9737 ms, 2.77 s)
    // would meet it.
    let s = Scenario::load(
        None,
        &Overrides {
            profile: Some("a40-sd3-medium".into()),
            gpus: Some(4),
            ..Overrides::default()
        },
    )
    .unwrap();
    let all = s.warnings.join("\n");
    assert!(
        all.contains("2048x2048: a lone request takes 15.60 s at best (SP 4, 28 steps)")
            && all.contains("needs --slo-scale 3.12 or more"),
        "{all}"
    );
    assert!(
        all.contains("rssp: 1024x1024 at its configured SP 2 takes 4.16 s alone")
            && all.contains("SP 4 would meet it"),
        "{all}"
    );
    assert!(all.contains("scenarios/a40-sd3-medium.toml"), "{all}");
    // At --slo-scale 3.2 every resolution fits alone, and RSSP's 1024 px at SP 2 does too.
    let loose = Scenario::load(
        None,
        &Overrides {
            profile: Some("a40-sd3-medium".into()),
            gpus: Some(4),
            slo_scale: Some(3.2),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert!(
        !loose
            .warnings
            .iter()
            .any(|w| w.contains("lone") || w.contains("alone")),
        "{:?}",
        loose.warnings
    );
    // The default scenario fits its own profile.
    let default = Scenario::load(None, &Overrides::default()).unwrap();
    assert!(default.warnings.is_empty(), "{:?}", default.warnings);
}

#[test]
fn attainment_by_resolution_in_the_table_and_the_csv() {
    let dir = scratch("by-resolution");
    // 256 px (one step 13.8 ms ... at most 1 s at SP 1) with a generous 60 s SLO is met; the
    // 1024 px request with slo_s 0.5 s cannot be (1.232 s at best).
    let trace = write(
        &dir,
        "t.csv",
        "id,arrival_s,width,height,steps,slo_s\n0,0,256,256,28,60\n1,0,1024,1024,28,0.5\n",
    );
    let table = ok(&[
        "simulate",
        "--trace",
        &trace,
        "--policy",
        "xdit-sp1",
        "--by-resolution",
    ]);
    let row = table
        .lines()
        .skip_while(|l| !l.starts_with("SLO att. by res"))
        .nth(1)
        .unwrap_or_else(|| panic!("no per-resolution table in\n{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        ["xdit-sp1", "100.0%", "(1/1)", "0.0%", "(0/1)"],
        "{table}"
    );
    let csv = ok(&[
        "simulate",
        "--trace",
        &trace,
        "--policy",
        "xdit-sp1",
        "--by-resolution",
        "--format",
        "csv",
    ]);
    let header = csv.lines().next().unwrap();
    assert!(
        header.ends_with(",slo_attainment_256x256,slo_attainment_1024x1024"),
        "{header}"
    );
    assert!(
        csv.lines().nth(1).unwrap().ends_with(",1.000000,0.000000"),
        "{csv}"
    );
}

/// A workload described in percentages, SLO bases given on the command line, and the
/// messages that name the flag to use.
#[test]
fn percentages_slo_bases_and_gamma_without_cv_speak_in_flags() {
    // Percentages summing to 100 are the mix's weights; 10% of 20 requests is 2 at 2048 px.
    let generate = |extra: &[&str]| {
        let mut args = vec![
            "trace",
            "generate",
            "--requests",
            "20",
            "--mix",
            "custom:512=45%,1024=45%,2048=10%",
        ];
        args.extend_from_slice(extra);
        ok(&args)
    };
    let csv = generate(&[]);
    assert_eq!(csv.lines().filter(|l| l.contains(",2048,2048,")).count(), 2);
    assert_eq!(csv.lines().filter(|l| l.contains(",512,512,")).count(), 9);
    // --slo-base sets the 2048 px base (square shorthand), and --slo-scale still scales it.
    let with_base = generate(&["--slo-base", "2048=7.5", "--slo-scale", "2"]);
    for l in with_base.lines().filter(|l| l.contains(",2048,2048,")) {
        assert!(l.ends_with(",15.000000000"), "{l}");
    }
    // Other resolutions keep the scenario's bases.
    let same = |csv: &str| -> Vec<String> {
        csv.lines()
            .filter(|l| l.contains(",512,512,"))
            .map(String::from)
            .collect()
    };
    assert_eq!(
        same(&generate(&["--slo-base", "2048x2048=7.5"])),
        same(&csv)
    );
    // A resolution without a base: the hint names the flag and the real key.
    let e = refused(&[
        "simulate",
        "--mix",
        "custom:512=50%,4096=50%",
        "--requests",
        "4",
    ]);
    assert!(e.contains("--slo-base 4096x4096=SECONDS"), "{e}");
    assert!(e.contains("[slo] bases_s"), "{e}");
    // ... and with the flag it runs.
    ok(&[
        "simulate",
        "--mix",
        "custom:512=50%,768=50%",
        "--requests",
        "4",
        "--slo-base",
        "768=3",
        "-p",
        "xdit-sp8",
    ]);
    // Percentages mixed with weights, or not summing to 100, are refused by the flag.
    let e = refused(&["simulate", "--mix", "custom:512=45%,1024=55"]);
    assert!(
        e.contains("--mix") && e.contains("mixes percentages and bare weights"),
        "{e}"
    );
    let e = refused(&["simulate", "--mix", "custom:512=45%,1024=45%"]);
    assert!(e.contains("sum to 90%, not 100%"), "{e}");
    // Bad bases: refused by clap (exit 2), naming the flag.
    for (v, needle) in [
        ("2048", "expected RES=SECONDS"),
        ("2048=0", "more than 0 and at most 86400"),
        ("2048=1e9", "more than 0 and at most 86400"),
        ("2048=nan", "more than 0 and at most 86400"),
        ("99999=5", "multiple of 16"),
    ] {
        let o = run(&["simulate", "--slo-base", v]);
        assert!(!o.status.success(), "--slo-base {v} accepted");
        let e = stderr(&o);
        assert!(e.contains("--slo-base") && e.contains(needle), "{v}: {e}");
    }
    let e = refused(&[
        "simulate",
        "--slo-base",
        "2048=1",
        "--slo-base",
        "2048x2048=2",
    ]);
    assert!(e.contains("--slo-base sets 2048x2048 twice"), "{e}");
    let mut many = vec!["simulate".to_string()];
    for i in 1..=65 {
        many.push("--slo-base".into());
        many.push(format!("{}=1", 16 * i));
    }
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let e = refused(&many);
    assert!(e.contains("more than the 64"), "{e}");
    // Gamma arrivals without --cv name the flag, not the embedded default scenario.
    let e = refused(&["simulate", "--arrival", "gamma", "--requests", "4"]);
    assert!(e.contains("--arrival gamma needs --cv"), "{e}");
    assert!(!e.contains("embedded"), "{e}");
    let e = refused(&[
        "simulate",
        "--arrival",
        "on-off",
        "--on-s",
        "2",
        "--requests",
        "4",
    ]);
    assert!(e.contains("--arrival on-off needs --on-s"), "{e}");
}
