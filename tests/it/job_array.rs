//! Sweeps on a batch system, as `docs/job-array.md` runs them: the shards of a grid run as the
//! tasks of a Slurm job array (through `scripts/slurm-sweep.sbatch`) or of a Kubernetes Indexed
//! Job (the environment `scripts/k8s-sweep-job.yaml` gives its pods), into one directory;
//! `merge` then gives exactly the results of one unsharded sweep.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_tetriserve");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const GRID: &str = "[workload]\nrequests = 20\n[sweep]\npolicies = [\"rssp\", \"tetriserve\"]\nslo_scales = [1.0, 1.5]\nseeds = [1, 2]\n";
const ARRAY_VARS: [&str; 6] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_COUNT",
    "JOB_COMPLETION_INDEX",
    "TETRISERVE_SHARDS",
];

/// A command without any job array variables of the machine the tests run on.
fn clean(mut c: Command) -> Command {
    for v in ARRAY_VARS {
        c.env_remove(v);
    }
    c.current_dir(ROOT);
    c
}

fn ok(o: Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn unsharded(scenario: &Path, out: &Path) {
    let mut c = clean(Command::new(BIN));
    c.args(["sweep", "-s"]).arg(scenario).arg("--out").arg(out);
    ok(c.output().unwrap());
}

fn same_results(a: &Path, b: &Path) {
    for name in [
        "results.csv",
        "results-by-resolution.csv",
        "results.manifest.json",
    ] {
        assert_eq!(
            std::fs::read_to_string(a.join(name)).unwrap(),
            std::fs::read_to_string(b.join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn a_slurm_array_runs_the_shards_and_merge_equals_one_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("grid.toml");
    std::fs::write(&scenario, GRID).unwrap();
    let shared = dir.path().join("shared");
    // `sbatch --array=1-3`: task ids 1..3, slices 0..2.
    for id in 1..=3 {
        let mut c = clean(Command::new("bash"));
        c.arg("scripts/slurm-sweep.sbatch")
            .env("SCENARIO", &scenario)
            .env("OUT", &shared)
            .env("TETRISERVE", BIN)
            .env("SLURM_ARRAY_TASK_ID", id.to_string())
            .env("SLURM_ARRAY_TASK_MIN", "1")
            .env("SLURM_ARRAY_TASK_MAX", "3")
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .env("SLURM_CPUS_PER_TASK", "1");
        ok(c.output().unwrap());
        assert!(
            shared
                .join(format!("results.shard-{}-of-3.csv", id - 1))
                .exists()
        );
    }
    let mut c = clean(Command::new(BIN));
    c.arg("merge").arg(&shared);
    ok(c.output().unwrap());
    let alone = dir.path().join("alone");
    unsharded(&scenario, &alone);
    same_results(&shared, &alone);
}

#[test]
fn a_kubernetes_indexed_job_runs_the_shards_and_merge_equals_one_sweep() {
    // The example manifest's completions and TETRISERVE_SHARDS agree.
    let manifest =
        std::fs::read_to_string(Path::new(ROOT).join("scripts/k8s-sweep-job.yaml")).unwrap();
    assert!(manifest.contains("completionMode: Indexed"));
    let completions = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("completions: "))
        .unwrap();
    assert!(
        manifest.contains(&format!(
            "name: TETRISERVE_SHARDS\n              value: \"{completions}\""
        )),
        "TETRISERVE_SHARDS must equal completions ({completions})"
    );
    assert!(manifest.contains("\"--shard\", \"auto\""));
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("grid.toml");
    std::fs::write(&scenario, GRID).unwrap();
    let shared = dir.path().join("shared");
    for index in 0..2 {
        let mut c = clean(Command::new(BIN));
        c.args(["sweep", "--shard", "auto", "-s"])
            .arg(&scenario)
            .arg("--out")
            .arg(&shared)
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .env("TETRISERVE_SHARDS", "2");
        ok(c.output().unwrap());
    }
    let mut c = clean(Command::new(BIN));
    c.arg("merge").arg(&shared);
    ok(c.output().unwrap());
    let alone = dir.path().join("alone");
    unsharded(&scenario, &alone);
    same_results(&shared, &alone);
}

#[test]
fn shard_auto_outside_a_job_array_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = clean(Command::new(BIN));
    c.args(["sweep", "--shard", "auto", "--out"])
        .arg(dir.path().join("out"));
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no job array found") && e.contains("docs/job-array.md"),
        "{e}"
    );
    assert!(!dir.path().join("out").exists());
}
