//! Streamed output directories: the files written as a run goes are byte-identical to the
//! records formatted at the end (checked against an independent `format!`-based writer and an
//! independent merge of works into rows), a cut timeline says so, and a run that fails leaves
//! no output directory behind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use tetriserve::error::{Error, Result};
use tetriserve::metrics::{Outcome, RecordSink, RunRecords, WorkRecord, WorkTotals};
use tetriserve::report::{Staging, TimelineLimit, WorkRows};
use tetriserve::scenario::{Overrides, Scenario};
use tetriserve::simulate::{self, Outputs, PolicyRun, Streamed, StreamedSink};

fn scenario(policies: &[&str], requests: usize, gpus: u32) -> Scenario {
    Scenario::load(
        None,
        &Overrides {
            policies: policies.iter().map(|p| p.to_string()).collect(),
            requests: Some(requests),
            gpus: Some(gpus),
            rate_per_min: Some(40.0),
            mix: Some("skewed".into()),
            ..Overrides::default()
        },
    )
    .unwrap()
}

fn secs(t: tetriserve::Nanos) -> String {
    format!("{}.{:09}", t.0 / 1_000_000_000, t.0 % 1_000_000_000)
}

/// `requests.csv` as it was first written, with `format!` throughout.
fn reference_requests(run: &RunRecords) -> String {
    let mut s = String::from(
        "id,arrival_s,width,height,steps,steps_done,deadline_s,start_s,finish_s,outcome,latency_s,gpu_seconds,degrees,remaps,node,prompt_id,cache_hit,cached_steps,skipped_steps\n",
    );
    for r in &run.requests {
        let done = r.outcome != Outcome::Dropped;
        let degrees: Vec<String> = r.degrees().iter().map(|d| d.to_string()).collect();
        writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.id,
            secs(r.arrival),
            r.resolution.width,
            r.resolution.height,
            r.steps,
            r.steps_done,
            secs(r.deadline),
            r.start.map(secs).unwrap_or_default(),
            if done { secs(r.end) } else { String::new() },
            r.outcome.as_str(),
            if done {
                secs(r.end - r.arrival)
            } else {
                String::new()
            },
            secs(r.gpu_time),
            degrees.join(";"),
            r.remaps,
            r.node.map(|n| n.to_string()).unwrap_or_default(),
            r.saved.prompt.map(|p| p.to_string()).unwrap_or_default(),
            r.saved.cache_hit,
            r.saved.cached_steps,
            r.saved.skipped_steps
        )
        .unwrap();
    }
    s
}

/// The rows of `works.csv` as the format defines them, the slow way: a work continues the row
/// that is the latest on every one of its GPUs when that row has exactly its GPUs and
/// requests, ends when the work starts, ends at the step before the work's first, and the
/// work does not remap; otherwise it opens a row. Rows in the order they were opened.
fn reference_rows(run: &RunRecords, rows: WorkRows) -> Vec<WorkRecord> {
    if rows == WorkRows::Each {
        return run.works.clone();
    }
    let mut out: Vec<WorkRecord> = Vec::new();
    let mut latest: BTreeMap<u32, usize> = BTreeMap::new();
    for w in &run.works {
        let gpus: Vec<u32> = w.gpus.global_gpus(run.gpus_per_node).collect();
        let on: Vec<Option<usize>> = gpus.iter().map(|g| latest.get(g).copied()).collect();
        let row = on[0].filter(|&i| {
            let r = &out[i];
            on.iter().all(|x| *x == Some(i))
                && r.gpus == w.gpus
                && r.requests == w.requests
                && r.end == w.start
                && r.first_step + r.steps == w.first_step
                && !w.remap
        });
        match row {
            Some(i) => {
                out[i].end = w.end;
                out[i].steps += w.steps;
                out[i].works += 1;
            }
            None => {
                for g in gpus {
                    latest.insert(g, out.len());
                }
                out.push(w.clone());
            }
        }
    }
    out
}

/// `works.csv` as it was first written, plus the `works` column.
fn reference_works(run: &RunRecords, rows: WorkRows) -> String {
    let mut s =
        String::from("requests,resolution,node,gpus,start_s,end_s,first_step,steps,remap,works\n");
    for w in &reference_rows(run, rows) {
        let requests: Vec<String> = w.requests.iter().map(|r| r.to_string()).collect();
        let gpus: Vec<String> = w
            .gpus
            .global_gpus(run.gpus_per_node)
            .map(|g| g.to_string())
            .collect();
        writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{}",
            requests.join(";"),
            w.resolution,
            w.gpus.node(),
            gpus.join(";"),
            secs(w.start),
            secs(w.end),
            w.first_step,
            w.steps,
            w.remap,
            w.works
        )
        .unwrap();
    }
    s
}

/// The X events of `timeline.json` as they were first written, plus `works`, for one row.
fn reference_work_events(w: &WorkRecord, per_node: u32) -> Vec<String> {
    let us = |t: tetriserve::Nanos| format!("{}.{:03}", t.0 / 1000, t.0 % 1000);
    let names: Vec<String> = w.requests.iter().map(|r| format!("r{r}")).collect();
    let ids: Vec<String> = w.requests.iter().map(|r| r.to_string()).collect();
    let name = format!(
        "{} {} steps {}-{}",
        names.join("+"),
        w.resolution,
        w.first_step,
        w.first_step + w.steps - 1
    );
    w.gpus
        .global_gpus(per_node)
        .map(|g| {
            format!(
                "{{\"ph\":\"X\",\"name\":\"{name}\",\"cat\":\"{}\",\"pid\":{},\"tid\":{g},\"ts\":{},\"dur\":{},\"args\":{{\"requests\":[{}],\"sp_degree\":{},\"steps\":{},\"remap\":{},\"works\":{}}}}}",
                w.resolution,
                w.gpus.node(),
                us(w.start),
                us(w.end - w.start),
                ids.join(","),
                w.gpus.len(),
                w.steps,
                w.remap,
                w.works
            )
        })
        .collect()
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Sibling entries of `dir` left by a staging directory.
fn leftovers(dir: &Path) -> Vec<String> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!(".{name}.")))
        .collect()
}

#[test]
fn streamed_files_are_byte_identical_to_records_formatted_at_the_end() {
    // Two nodes, several policies (remaps, degree changes, misses, one-step works) under load.
    let sc = scenario(&["xdit-sp2", "rssp", "tetriserve", "stepwise"], 120, 16);
    let kept = simulate::simulate(&sc).unwrap();
    for rows in [WorkRows::Merged, WorkRows::Each] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let mut streamed = Streamed::new(
            Some(Staging::create(&out, false).unwrap()),
            Some(TimelineLimit::All),
            false,
        )
        .work_rows(rows);
        simulate::simulate_into(&sc, &mut streamed).unwrap();
        let summaries = streamed.commit().unwrap();
        assert_eq!(summaries.len(), 4);
        for (run, summary) in kept.iter().zip(&summaries) {
            let dir = out.join(&summary.policy);
            assert!(run.records.works.len() > 100, "a run worth checking");
            // Some requests not met (missed, or given up by stepwise), so that every kind of
            // row is written.
            assert!(
                run.records
                    .requests
                    .iter()
                    .any(|r| r.outcome != Outcome::Met)
            );
            assert_eq!(read(&dir, "requests.csv"), reference_requests(&run.records));
            let works = read(&dir, "works.csv");
            assert_eq!(works, reference_works(&run.records, rows));
            // What `simulate --real --out` writes from kept records is the same file.
            assert_eq!(works, tetriserve::report::works_csv(&run.records, rows));
            let merged = works.lines().count() - 1 < run.records.works.len();
            assert_eq!(
                merged,
                rows == WorkRows::Merged && summary.policy == "stepwise",
                "{}: {} rows for {} works",
                summary.policy,
                works.lines().count() - 1,
                run.records.works.len()
            );
            // The summary is the same whether works were kept or streamed (bar wall-clock times).
            assert_eq!(summary.works, run.summary.works);
            assert_eq!(summary.gpu_seconds, run.summary.gpu_seconds);
            assert_eq!(summary.per_node, run.summary.per_node);
            assert_eq!(summary.mean_degree, run.summary.mean_degree);
            // Every row's events appear in order, then the missed-deadline markers.
            let timeline = read(&dir, "timeline.json");
            assert_eq!(
                timeline,
                tetriserve::report::timeline_limited(&run.records, TimelineLimit::All, rows)
            );
            let parsed: serde_json::Value = serde_json::from_str(&timeline).unwrap();
            let events = parsed["traceEvents"].as_array().unwrap();
            let expected: Vec<String> = reference_rows(&run.records, rows)
                .iter()
                .flat_map(|w| reference_work_events(w, run.records.gpus_per_node))
                .collect();
            let xs: Vec<String> = events
                .iter()
                .filter(|e| e["ph"] == "X")
                .map(|e| e.to_string())
                .collect();
            let expected_values: Vec<String> = expected
                .iter()
                .map(|e| {
                    serde_json::from_str::<serde_json::Value>(e)
                        .unwrap()
                        .to_string()
                })
                .collect();
            assert_eq!(xs, expected_values);
            let joined = expected.join(",");
            assert!(timeline.contains(&joined), "X events are written verbatim");
            let missed = run
                .records
                .requests
                .iter()
                .filter(|r| r.outcome == Outcome::Missed)
                .count();
            assert_eq!(events.iter().filter(|e| e["ph"] == "i").count(), missed);
        }
        assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));
    }
}

#[test]
fn merged_rows_read_back_to_the_totals_of_the_works() {
    // Stepwise on two nodes under load: one-step works, most merged.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut sc = scenario(&["stepwise"], 120, 16);
    sc.policy_config.stepwise.revocable_grants = false;
    let mut streamed = Streamed::new(Some(Staging::create(&out, false).unwrap()), None, false);
    simulate::simulate_into(&sc, &mut streamed).unwrap();
    let summary = streamed.commit().unwrap().remove(0);
    let kept = simulate::simulate(&sc).unwrap().remove(0);
    let back = tetriserve::report::read_run(&out.join("stepwise")).unwrap();
    assert!(
        back.works.len() * 3 < kept.records.works.len(),
        "rows merge works"
    );
    // Every total of the works (GPU time in all and per node, degree-weighted steps, steps,
    // works) is the same from the rows.
    assert_eq!(
        WorkTotals::of(&back.works),
        WorkTotals::of(&kept.records.works)
    );
    let again = tetriserve::metrics::Summary::of(&back);
    assert_eq!(again.gpu_seconds, summary.gpu_seconds);
    assert_eq!(again.per_node, summary.per_node);
    assert_eq!(again.mean_degree, summary.mean_degree);
    assert_eq!(again.works, summary.works);
    assert_eq!(again.utilization, summary.utilization);
    // The rows are a valid run: no GPU double-booked, every request's steps in order.
    let workload = sc.load_workload().unwrap();
    let errors = tetriserve::metrics::invariants::check_run(&back, &workload, None);
    assert!(errors.is_empty(), "{errors:?}");
    // Each row's works ran its steps back to back: the rows' works and steps sum to the run's.
    let steps: u64 = back.works.iter().map(|w| u64::from(w.steps)).sum();
    let kept_steps: u64 = kept.records.works.iter().map(|w| u64::from(w.steps)).sum();
    assert_eq!(steps, kept_steps);
}

#[test]
fn a_cut_timeline_shows_the_first_rows_and_says_so() {
    // Stepwise's rows merge several one-step works each: the cut counts rows, and says how
    // many works they hold.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cut");
    let sc = scenario(&["stepwise"], 60, 8);
    let mut streamed = Streamed::new(
        Some(Staging::create(&out, false).unwrap()),
        Some(TimelineLimit::First(5)),
        false,
    );
    simulate::simulate_into(&sc, &mut streamed).unwrap();
    streamed.commit().unwrap();
    let kept = simulate::simulate(&sc).unwrap();
    let rows = reference_rows(&kept[0].records, WorkRows::Merged);
    let works = kept[0].records.works.len();
    let shown: u32 = rows[..5].iter().map(|r| r.works).sum();
    assert!(shown > 5, "the first rows merge works");
    let timeline = read(&out.join("stepwise"), "timeline.json");
    let parsed: serde_json::Value = serde_json::from_str(&timeline).unwrap();
    let events = parsed["traceEvents"].as_array().unwrap();
    let expected: usize = rows[..5].iter().map(|w| w.gpus.len() as usize).sum();
    assert_eq!(events.iter().filter(|e| e["ph"] == "X").count(), expected);
    let notice = events.last().unwrap();
    assert_eq!(notice["s"], "g");
    let text = notice["name"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "first 5 of {} rows are shown, {shown} of {works} works",
            rows.len()
        )),
        "{text}"
    );
    // Markers only for misses before the cut.
    let cut = rows[5].start;
    for e in events.iter().filter(|e| e["s"] == "t") {
        let finish: f64 = e["args"]["finish_s"].as_f64().unwrap();
        assert!(finish <= cut.as_secs() + 1e-9);
    }
    // works.csv is never cut.
    assert_eq!(
        read(&out.join("stepwise"), "works.csv").lines().count(),
        rows.len() + 1
    );
}

/// Streams like [`Streamed`], but the `fail_at`-th work of the second run fails to write.
struct FailingDisk {
    inner: Streamed,
    runs: usize,
    fail_at: usize,
}

struct FailingSink {
    inner: StreamedSink,
    left: Option<usize>,
}

impl RecordSink for FailingSink {
    fn work(&mut self, work: &WorkRecord) -> Result<()> {
        if let Some(n) = &mut self.left {
            if *n == 0 {
                return Err(Error::io(
                    "works.csv",
                    std::io::Error::other("no space left on device"),
                ));
            }
            *n -= 1;
        }
        self.inner.work(work)
    }
}

impl Outputs for FailingDisk {
    type Sink = FailingSink;

    fn open(
        &mut self,
        policy: &str,
        cluster: &tetriserve::cluster::Cluster,
    ) -> Result<FailingSink> {
        self.runs += 1;
        Ok(FailingSink {
            inner: self.inner.open(policy, cluster)?,
            left: (self.runs == 2).then_some(self.fail_at),
        })
    }

    fn close(&mut self, sink: FailingSink, run: PolicyRun) -> Result<()> {
        self.inner.close(sink.inner, run)
    }
}

#[test]
fn a_run_that_fails_midway_leaves_no_output_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = scenario(&["xdit-sp1", "tetriserve"], 60, 8);

    // A new directory: nothing at all is left.
    let out = tmp.path().join("new");
    let mut failing = FailingDisk {
        inner: Streamed::new(
            Some(Staging::create(&out, false).unwrap()),
            Some(TimelineLimit::All),
            false,
        ),
        runs: 0,
        fail_at: 20,
    };
    let err = simulate::simulate_into(&sc, &mut failing).unwrap_err();
    assert!(err.to_string().contains("no space left"), "{err}");
    drop(failing);
    assert!(!out.exists());
    assert!(leftovers(&out).is_empty(), "{:?}", leftovers(&out));

    // Replacing a directory (--force): the old one stays whole.
    let old = tmp.path().join("old");
    std::fs::create_dir(&old).unwrap();
    // An earlier run's directory (--force replaces only what tetriserve wrote).
    std::fs::write(old.join("comparison.csv"), "previous run").unwrap();
    let mut failing = FailingDisk {
        inner: Streamed::new(
            Some(Staging::create(&old, true).unwrap()),
            Some(TimelineLimit::All),
            false,
        ),
        runs: 0,
        fail_at: 0,
    };
    simulate::simulate_into(&sc, &mut failing).unwrap_err();
    drop(failing);
    assert_eq!(read(&old, "comparison.csv"), "previous run");
    assert_eq!(std::fs::read_dir(&old).unwrap().count(), 1);
    assert!(leftovers(&old).is_empty(), "{:?}", leftovers(&old));
}
