//! Hostile paths and interruptions: outputs never written through what tetriserve does not
//! own, a sweep's results locked while written, nothing dropped silently, nothing left behind
//! by an interrupted run, sizes bounded before anything is allocated (docs/bad-input.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::cli::{bin, run, stderr};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A failed command: status 1, no panic, every `expect` in its error.
fn refused(o: &Output, expect: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    for x in expect {
        assert!(e.contains(x), "expected `{x}` in:\n{e}");
    }
}

/// Entries of `dir` that are temporaries (`.NAME.tmp-PID`).
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect()
}

#[cfg(unix)]
#[test]
fn output_files_follow_links_write_through_fifos_and_refuse_directories() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.csv");
    std::fs::write(&real, "old").unwrap();
    let link = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let o = run(&["trace", "generate", "--requests", "3", "-o", s(&link)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&real)
            .unwrap()
            .starts_with("id,arrival_s")
    );

    // trace import writes through the same rules.
    let log = dir.path().join("log.csv");
    std::fs::write(&log, "timestamp\n0\n1\n").unwrap();
    std::fs::write(&real, "old").unwrap();
    let o = run(&[
        "trace",
        "import",
        s(&log),
        "--format",
        "alibaba-genai",
        "-o",
        s(&link),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&real).unwrap().lines().count(), 3);

    // A FIFO stays a FIFO: the trace goes to its reader.
    let fifo = dir.path().join("pipe");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let o = run(&["trace", "generate", "--requests", "3", "-o", s(&fifo)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(reader.join().unwrap().lines().count(), 4);
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );

    // A directory, a dangling link: refused, nothing created.
    refused(
        &run(&["trace", "generate", "--requests", "3", "-o", s(dir.path())]),
        &["is a directory"],
    );
    let dangling = dir.path().join("dangling.csv");
    std::os::unix::fs::symlink(dir.path().join("nowhere.csv"), &dangling).unwrap();
    refused(
        &run(&["trace", "generate", "--requests", "3", "-o", s(&dangling)]),
        &["dangling.csv", "does not exist"],
    );
    assert!(!dir.path().join("nowhere.csv").exists());
    assert!(
        temporaries(dir.path()).is_empty(),
        "{:?}",
        temporaries(dir.path())
    );
}

#[test]
fn force_replaces_only_a_directory_tetriserve_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let sim = |out: &Path, force: bool| {
        let mut a = vec!["simulate", "-p", "rssp", "--requests", "5", "--out", s(out)];
        if force {
            a.push("--force");
        }
        run(&a)
    };
    // A regular file is not a directory to replace, --force or not.
    let file = dir.path().join("FILE");
    std::fs::write(&file, "mine").unwrap();
    refused(&sim(&file, true), &["FILE", "is not a directory"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    // Someone else's directory.
    let theirs = dir.path().join("thesis");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("chapter1.tex"), "text").unwrap();
    refused(&sim(&theirs, true), &["did not write", "made-by.json"]);
    assert!(theirs.join("chapter1.tex").exists());
    // tetriserve's own: replaced, and it records the version that made it.
    let own = dir.path().join("run");
    assert!(sim(&own, false).status.success());
    let made_by = std::fs::read_to_string(own.join("made-by.json")).unwrap();
    assert!(made_by.contains(env!("CARGO_PKG_VERSION")), "{made_by}");
    assert!(sim(&own, true).status.success());
    assert!(
        temporaries(dir.path()).is_empty(),
        "{:?}",
        temporaries(dir.path())
    );
    #[cfg(unix)]
    {
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&own, &link).unwrap();
        refused(&sim(&link, true), &["symbolic link"]);
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}

const SWEEP: &str = "name = \"hostile\"\n[workload]\nrequests = 20\n[sweep]\npolicies = [\"rssp\", \"xdit-sp2\"]\nseeds = [1, 2]\n";

#[test]
fn a_sweep_or_merge_into_results_being_written_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.toml");
    std::fs::write(&scenario, SWEEP).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let lock = tetriserve::files::DirLock::acquire(&out, "results.csv", "sweep").unwrap();
    let pid = format!("pid {}", std::process::id());
    refused(
        &run(&["sweep", "-s", s(&scenario), "--out", s(&out)]),
        &["results.csv", "is being written", &pid],
    );
    refused(&run(&["merge", s(&out)]), &["is being written", &pid]);
    // A shard has its own results file.
    let o = run(&[
        "sweep",
        "-s",
        s(&scenario),
        "--out",
        s(&out),
        "--shard",
        "0/2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    drop(lock);
    let o = run(&["sweep", "-s", s(&scenario), "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!out.join(".results.csv.lock").exists());
}

#[test]
fn merge_refuses_a_renamed_copy_of_a_shard() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.toml");
    std::fs::write(&scenario, SWEEP).unwrap();
    let out = dir.path().join("out");
    for i in 0..2 {
        let shard = format!("{i}/2");
        let o = run(&[
            "sweep",
            "-s",
            s(&scenario),
            "--out",
            s(&out),
            "--shard",
            &shard,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    std::fs::copy(
        out.join("results.shard-1-of-2.csv"),
        out.join("results.shard-01-of-2.csv"),
    )
    .unwrap();
    refused(
        &run(&["merge", s(&out)]),
        &["results.shard-01-of-2.csv", "results.shard-1-of-2.csv"],
    );
    std::fs::remove_file(out.join("results.shard-01-of-2.csv")).unwrap();
    // A row of another grid (its digest edited) is refused.
    let p = out.join("results.shard-1-of-2.csv");
    let text = std::fs::read_to_string(&p).unwrap();
    let column = text
        .lines()
        .next()
        .unwrap()
        .split(',')
        .position(|c| c == "digest")
        .unwrap();
    let digest = text
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(column)
        .unwrap()
        .to_string();
    std::fs::write(&p, text.replace(&digest, "0123456789abcdef")).unwrap();
    let by_res = out.join("results-by-resolution.shard-1-of-2.csv");
    let res = std::fs::read_to_string(&by_res).unwrap();
    std::fs::write(&by_res, res.replace(&digest, "0123456789abcdef")).unwrap();
    refused(
        &run(&["merge", s(&out)]),
        &["0123456789abcdef", "not made by this grid"],
    );
}

#[test]
fn compare_csv_never_replaces_sweep_results() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.toml");
    std::fs::write(&scenario, SWEEP).unwrap();
    let out = dir.path().join("out");
    assert!(
        run(&["sweep", "-s", s(&scenario), "--out", s(&out)])
            .status
            .success()
    );
    let results = out.join("results.csv");
    let before = std::fs::read_to_string(&results).unwrap();
    let compare = |csv: &Path| {
        run(&[
            "compare",
            s(&results),
            "--baseline",
            "xdit-sp2",
            "--policy",
            "rssp",
            "--csv",
            s(csv),
        ])
    };
    refused(&compare(&results), &["holds a sweep's results"]);
    refused(
        &compare(&out.join("results-by-resolution.csv")),
        &["holds a sweep's results"],
    );
    assert_eq!(std::fs::read_to_string(&results).unwrap(), before);
    let o = compare(&dir.path().join("cmp.csv"));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn an_unclosed_quote_in_an_imported_log_is_an_error_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.csv");
    let mut text = String::from("timestamp,prompt\n0,a cat\n1,a dog\n2,\"oops\n");
    for i in 3..10_000 {
        text.push_str(&format!("{i},prompt {i}\n"));
    }
    std::fs::write(&log, text).unwrap();
    let out = dir.path().join("t.csv");
    refused(
        &run(&[
            "trace",
            "import",
            s(&log),
            "--format",
            "alibaba-genai",
            "-o",
            s(&out),
        ]),
        &[
            &format!("{}:4: field `prompt`", log.display()),
            "no quote closes it",
        ],
    );
    assert!(!out.exists());
}

#[test]
fn size_like_flags_are_bounded_before_anything_is_allocated() {
    for (args, expect) in [
        (
            &["simulate", "--nodes", "4294967295", "--requests", "5"][..],
            &["--nodes `4294967295`", "more than the 65536"][..],
        ),
        (
            &["simulate", "--gpus", "4294967288", "--requests", "5"],
            &["--gpus `4294967288`", "more than the 65536"],
        ),
        (
            &["simulate", "--requests", "4000000000"],
            &["--requests `4000000000`", "more than the 20000000"],
        ),
        (
            &["trace", "generate", "--requests", "4000000000"],
            &["--requests `4000000000`"],
        ),
        (
            &["goodput", "-p", "rssp", "--requests", "4000000000"],
            &["--requests `4000000000`"],
        ),
    ] {
        refused(&run(args), expect);
    }
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("big.toml");
    std::fs::write(&sc, "[cluster]\nnodes = 100000\n").unwrap();
    refused(
        &run(&["simulate", "-s", s(&sc), "--requests", "5"]),
        &["field `cluster.nodes`", "800000 GPUs"],
    );
    std::fs::write(
        &sc,
        "[workload.cache]\nenabled = true\nwarmup_requests = 4000000000\n",
    )
    .unwrap();
    refused(
        &run(&["simulate", "-s", s(&sc), "--requests", "5"]),
        &["workload.cache.warmup_requests"],
    );
}

#[test]
fn a_sweep_refuses_a_binary_trace_before_reading_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("zero.csv");
    std::fs::write(&trace, vec![0u8; 3 << 20]).unwrap();
    let sc = dir.path().join("z.toml");
    std::fs::write(
        &sc,
        format!(
            "[workload]\ntrace = \"{}\"\n[sweep]\nslo_scales = [1.0]\n",
            trace.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    refused(
        &run(&["sweep", "-s", s(&sc), "--out", s(&out)]),
        &["zero.csv", "NUL byte"],
    );
    assert!(!out.exists());
}

/// Waits up to 60 s for `ready`.
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !ready() {
        assert!(
            start.elapsed().as_secs() < 60,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(unix)]
fn interrupt(child: &std::process::Child) {
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

#[cfg(unix)]
#[test]
fn an_interrupted_run_leaves_no_temporary_and_stale_ones_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut child = bin()
        .args([
            "simulate",
            "-p",
            "tetriserve",
            "--requests",
            "2000000",
            "--out",
            s(&out),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the staging directory", || {
        !temporaries(dir.path()).is_empty()
    });
    interrupt(&child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        temporaries(dir.path()).is_empty(),
        "{:?}",
        temporaries(dir.path())
    );
    assert!(!out.exists());

    // Left by a process that is gone (pids above the kernel's limit never run): removed by
    // the next run into the same place.
    let stale: Vec<PathBuf> = [".run.tmp-4000000000", ".run.tmp-4000000000.old"]
        .iter()
        .map(|n| dir.path().join(n))
        .collect();
    for p in &stale {
        std::fs::create_dir(p).unwrap();
        std::fs::write(p.join("works.csv"), "x").unwrap();
    }
    let o = run(&[
        "simulate",
        "-p",
        "rssp",
        "--requests",
        "5",
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        temporaries(dir.path()).is_empty(),
        "{:?}",
        temporaries(dir.path())
    );
}

#[cfg(unix)]
#[test]
fn an_interrupted_rerun_resumes_from_the_rows_it_finished() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.toml");
    let text = |requests: u32| {
        format!(
            "name = \"rerun\"\n[workload]\nrequests = {requests}\n[sweep]\npolicies = [\"rssp\", \"tetriserve\"]\nseeds = [1, 2, 3, 4, 5, 6]\n"
        )
    };
    std::fs::write(&scenario, text(20)).unwrap();
    let out = dir.path().join("out");
    assert!(
        run(&["sweep", "-s", s(&scenario), "--out", s(&out)])
            .status
            .success()
    );
    let manifest = out.join("results.manifest.json");
    let before = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&scenario, text(100000)).unwrap();
    let mut child = bin()
        .args([
            "sweep",
            "-s",
            s(&scenario),
            "--out",
            s(&out),
            "--rerun",
            "--jobs",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let partial = out.join("results.partial.csv");
    wait_for("a finished row", || {
        std::fs::read_to_string(&partial).is_ok_and(|t| t.lines().count() >= 2)
    });
    interrupt(&child);
    assert_eq!(child.wait().unwrap().code(), Some(130));
    // The complete results still describe the old scenario, and so does their manifest.
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), before);
    // Whole rows only (the last may have been cut short by the interruption).
    let done = std::fs::read_to_string(&partial)
        .unwrap()
        .matches('\n')
        .count()
        - 1;
    assert!((1..12).contains(&done), "{done}");
    // Resuming (no --rerun) reuses the rerun's rows and replaces the old results.
    let o = run(&["sweep", "-s", s(&scenario), "--out", s(&out), "--jobs", "2"]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(e.contains(&format!("{done} reused")), "{e}");
    assert!(
        std::fs::read_to_string(&manifest)
            .unwrap()
            .contains("\"workload.requests\": \"100000\"")
    );
    assert!(!partial.exists());
}

#[test]
fn flags_with_nothing_to_act_on_and_impossible_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.csv");
    std::fs::write(&log, "timestamp\n0\n1\n").unwrap();
    let out = dir.path().join("t.csv");
    // A trace that a replay would refuse is not written.
    refused(
        &run(&[
            "trace",
            "import",
            s(&log),
            "--format",
            "alibaba-genai",
            "--steps",
            "99999",
            "-o",
            s(&out),
        ]),
        &["--steps `99999`", "more than the 10000"],
    );
    assert!(!out.exists());
    // --steps with nothing to fill: every row has its step count.
    let with_steps = dir.path().join("steps.csv");
    std::fs::write(&with_steps, "timestamp,steps\n0,20\n1,30\n").unwrap();
    refused(
        &run(&[
            "trace",
            "import",
            s(&with_steps),
            "--format",
            "alibaba-genai",
            "--steps",
            "40",
        ]),
        &["--steps 40 fills rows without a step count", "steps.csv"],
    );
    refused(
        &run(&["goodput", "-p", "rssp", "--tau-ms", "5", "--requests", "10"]),
        &["--tau-ms 5 tune(s) TetriServe", "rssp"],
    );
    refused(
        &run(&["optimum", "--requests", "10", "--window", "30"]),
        &["--window 30", "no window of 30 requests"],
    );
    let sc = dir.path().join("ts.toml");
    std::fs::write(&sc, "[workload]\ntime_scale = 2.0\n").unwrap();
    refused(
        &run(&["simulate", "-s", s(&sc), "--requests", "5", "-p", "rssp"]),
        &["field `workload.time_scale`", "there is no trace"],
    );
    // Huge numbers are shown short.
    let o = run(&[
        "simulate",
        "--requests",
        "5",
        "-p",
        "tetriserve",
        "--tau-ms",
        "1e300",
    ]);
    refused(&o, &["--tau-ms `1e300`", "got 1e300"]);
    assert!(!stderr(&o).contains("0000000000"), "{}", stderr(&o));
    refused(
        &bin()
            .args([
                "sweep",
                "-s",
                "scenarios/default.toml",
                "--shard",
                "auto",
                "--out",
            ])
            .arg(dir.path().join("out"))
            .env("SLURM_ARRAY_TASK_ID", "0")
            .env("SLURM_ARRAY_TASK_MIN", "0")
            .env("SLURM_ARRAY_TASK_MAX", "18446744073709551615")
            .output()
            .unwrap(),
        &["more than 1000000 tasks"],
    );
}

#[cfg(target_os = "linux")]
#[test]
fn stdout_on_a_full_disk_is_an_error_not_a_panic() {
    for args in [&["policies"][..], &["trace", "generate", "--requests", "3"]] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let o = bin().args(args).stdout(full).output().unwrap();
        refused(&o, &["<stdout>", "No space left"]);
    }
}

#[test]
fn a_torn_header_in_partial_results_does_not_block_resume() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.toml");
    std::fs::write(&scenario, SWEEP).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("results.partial.csv"), "index,dig").unwrap();
    let o = run(&["sweep", "-s", s(&scenario), "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("results.csv"))
            .unwrap()
            .lines()
            .count(),
        5
    );
}

#[cfg(unix)]
#[test]
fn resuming_a_complete_sweep_writes_nothing_and_stale_run_directories_go() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.toml");
    std::fs::write(&scenario, SWEEP).unwrap();
    let out = dir.path().join("out");
    let sweep = || {
        let o = run(&["sweep", "-s", s(&scenario), "--out", s(&out), "--runs"]);
        assert!(o.status.success(), "{}", stderr(&o));
        stderr(&o)
    };
    sweep();
    let stamp = |name: &str| {
        let m = std::fs::metadata(out.join(name)).unwrap();
        (m.ino(), m.mtime_nsec(), m.mtime())
    };
    let files = [
        "results.csv",
        "results-by-resolution.csv",
        "results.manifest.json",
    ];
    let before: Vec<_> = files.iter().map(|f| stamp(f)).collect();
    // A run directory an interrupted sweep was writing, by a process that is gone.
    let stale = out
        .join("runs")
        .join(".00001-rssp-0123456789abcdef.tmp-4000000000");
    std::fs::create_dir(&stale).unwrap();
    let e = sweep();
    assert!(e.contains("4 reused"), "{e}");
    let after: Vec<_> = files.iter().map(|f| stamp(f)).collect();
    assert_eq!(before, after, "a complete sweep's files were rewritten");
    assert!(!stale.exists());
    assert!(temporaries(&out).is_empty(), "{:?}", temporaries(&out));
}
