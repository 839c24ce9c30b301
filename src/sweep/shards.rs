//! Sweeps beyond one machine: which slice of the grid a process runs (`--shard I/N`, or
//! `--shard auto` inside a batch system's job array), and `merge`, which joins the slices'
//! files into one `results.csv` after checking that they are one complete, consistent set.
//!
//! `auto` reads the job array's environment: Slurm (`SLURM_ARRAY_TASK_ID` with
//! `SLURM_ARRAY_TASK_COUNT`, or `SLURM_ARRAY_TASK_MIN`/`MAX`, so that `--array=1-8` works too),
//! or a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`, with the slice count in
//! `TETRISERVE_SHARDS`, since Kubernetes does not export its `completions`). The recipe is in
//! `docs/job-array.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::digest::{self, Manifest};
use super::results::{self, ResultRow};
use super::{partial_path, results_path};
use crate::error::{Error, Result};

/// `--shard`: a slice `(i, n)` of the grid (0-based), or none.
pub struct Shard;

impl Shard {
    /// Parses `I/N` (0 <= I < N) or `auto`; `env` looks a variable up (the process
    /// environment in the command line, a map in tests).
    pub fn parse(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(usize, usize)> {
        if spec.trim() == "auto" {
            return Shard::from_env(env);
        }
        let parsed = spec.split_once('/').and_then(|(i, n)| {
            Some((
                i.trim().parse::<usize>().ok()?,
                n.trim().parse::<usize>().ok()?,
            ))
        });
        match parsed {
            Some((i, n)) if n > 0 && i < n => Ok((i, n)),
            _ => Err(Error::config_hint(
                format!("--shard `{spec}` is not I/N with 0 <= I < N, nor `auto`"),
                "e.g. --shard 0/4 for the first of four slices; --shard auto inside a Slurm job array or a Kubernetes Indexed Job",
            )),
        }
    }

    /// The slice of this task of a job array.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<(usize, usize)> {
        let num = |name: &str| -> Result<Option<usize>> {
            match env(name) {
                None => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| {
                    Error::config_hint(
                        format!("--shard auto: ${name} is `{v}`, not a whole number"),
                        "it is set by the batch system; run inside the job array, or give --shard I/N",
                    )
                }),
            }
        };
        let checked = |i: usize, n: usize, what: &str| {
            if n > 0 && i < n && n <= MAX_SHARDS {
                Ok((i, n))
            } else {
                Err(Error::config_hint(
                    format!("--shard auto: {what} gives task {i} of {n}"),
                    "the array must be contiguous (e.g. --array=0-7, not 0-14:2); or give --shard I/N",
                ))
            }
        };
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let min = num("SLURM_ARRAY_TASK_MIN")?;
            let max = num("SLURM_ARRAY_TASK_MAX")?;
            let count = num("SLURM_ARRAY_TASK_COUNT")?;
            let (i, n) = match (min, max, count) {
                (Some(lo), Some(hi), c) if lo <= id && id <= hi && hi >= lo => {
                    let Some(n) = (hi - lo).checked_add(1).filter(|n| *n <= MAX_SHARDS) else {
                        return Err(Error::config_hint(
                            format!(
                                "--shard auto: the Slurm array {lo}-{hi} has more than {MAX_SHARDS} tasks"
                            ),
                            "check $SLURM_ARRAY_TASK_MIN and $SLURM_ARRAY_TASK_MAX; or give --shard I/N",
                        ));
                    };
                    if c.is_some_and(|c| c != n) {
                        return Err(Error::config_hint(
                            format!(
                                "--shard auto: the Slurm array {lo}-{hi} has gaps ({} tasks, not {n})",
                                c.unwrap_or_default()
                            ),
                            "use a contiguous array (--array=0-7) so that every slice runs",
                        ));
                    }
                    (id - lo, n)
                }
                (None, None, Some(c)) => (id, c),
                _ => {
                    return Err(Error::config_hint(
                        "--shard auto: $SLURM_ARRAY_TASK_ID is set but not the array's size ($SLURM_ARRAY_TASK_MIN/MAX or $SLURM_ARRAY_TASK_COUNT), or it lies outside it",
                        "run inside `sbatch --array=0-N`, or give --shard I/N",
                    ));
                }
            };
            return checked(i, n, "the Slurm array");
        }
        if let Some(i) = num("JOB_COMPLETION_INDEX")? {
            let n = num("TETRISERVE_SHARDS")?.ok_or_else(|| {
                Error::config_hint(
                    "--shard auto: $JOB_COMPLETION_INDEX is set but $TETRISERVE_SHARDS is not",
                    "set env TETRISERVE_SHARDS to the Job's `completions` (see docs/job-array.md)",
                )
            })?;
            return checked(i, n, "the Indexed Job");
        }
        Err(Error::config_hint(
            "--shard auto: no job array found ($SLURM_ARRAY_TASK_ID and $JOB_COMPLETION_INDEX are unset)",
            "run inside `sbatch --array=0-N` or a Kubernetes Indexed Job, or give --shard I/N (docs/job-array.md)",
        ))
    }
}

/// The most slices a grid is cut into (more than any batch system's array).
pub const MAX_SHARDS: usize = 1_000_000;

/// A shard's `(I, N)` and its results file.
type ShardFile = ((usize, usize), PathBuf);

/// `results.shard-I-of-N.csv` -> `(I, N)`.
fn shard_of(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix("results.shard-")?.strip_suffix(".csv")?;
    let (i, n) = rest.split_once("-of-")?;
    Some((i.parse().ok()?, n.parse().ok()?))
}

/// Refuses a file named like a shard but not as a sweep names one (`results.shard-01-of-2.csv`,
/// `results.shard-+1-of-2.csv`): a copy, whose rows would be merged twice.
fn check_shard_name(name: &str, (i, n): (usize, usize), dir: &Path) -> Result<()> {
    let canonical = format!("results.shard-{i}-of-{n}.csv");
    if name == canonical {
        return Ok(());
    }
    Err(Error::config_hint(
        format!(
            "{}: {name} reads as shard {i}/{n}, but a sweep names that shard {canonical}; a renamed copy would be merged twice",
            dir.display()
        ),
        format!("remove or rename {name} (keep only files `tetriserve sweep --shard` wrote)"),
    ))
}

/// The manifests of `shards` (sorted, at least one), checked to describe each its own shard
/// of one grid made from one scenario: shards of different scenarios are refused, naming
/// what differs.
fn manifests_of_one_grid(shards: &[ShardFile]) -> Result<Vec<Manifest>> {
    let mut manifests = Vec::new();
    for (s, p) in shards {
        let mp = Manifest::path_of(p);
        let m = Manifest::read(&mp)?.ok_or_else(|| {
            Error::config_hint(
                format!(
                    "{} is missing, so {} cannot be checked against the other shards",
                    mp.display(),
                    p.display()
                ),
                "run that shard again with --rerun",
            )
        })?;
        if m.shard != Some(*s) {
            return Err(Error::config(format!(
                "{} describes shard {:?}, but sits beside {}",
                mp.display(),
                m.shard,
                p.display()
            )));
        }
        manifests.push(m);
    }
    let first = &manifests[0];
    for (m, (_, p)) in manifests.iter().zip(shards).skip(1) {
        if m.grid != first.grid || m.points != first.points {
            let changes: Vec<String> = digest::diff(&first.resolved, &m.resolved)
                .into_iter()
                .map(|l| format!("  {l}"))
                .collect();
            return Err(Error::config_hint(
                format!(
                    "{} and {} were made from different scenarios or grids; what differs:\n{}",
                    shards[0].1.display(),
                    p.display(),
                    if changes.is_empty() {
                        "  (the scenario's keys are the same: a profile or trace file it reads changed)".to_string()
                    } else {
                        changes.join("\n")
                    }
                ),
                "run every shard from the same scenario file (with --rerun for the odd ones)",
            ));
        }
    }
    Ok(manifests)
}

/// Joins the shard files `results.shard-I-of-N.csv` in `dir` into `results.csv` (and its
/// resolution file and manifest), after checking that they are one set: one N, every I from
/// 0 to N-1 present and finished, every shard made from the same grid (manifest digest).
/// Returns the merged file and its number of rows. An existing `results.csv` is replaced.
pub fn merge(dir: &Path) -> Result<(PathBuf, usize)> {
    // Nothing else writes results.csv meanwhile (a sweep of the whole grid, another merge).
    let _lock = crate::files::DirLock::acquire(dir, "results.csv", "merge")?;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut shards: Vec<ShardFile> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let s = p.file_name()?.to_str().and_then(shard_of)?;
            Some((s, p))
        })
        .collect();
    for (s, p) in &shards {
        check_shard_name(
            &p.file_name().unwrap_or_default().to_string_lossy(),
            *s,
            dir,
        )?;
    }
    shards.sort();
    let names = |v: &[&ShardFile]| {
        v.iter()
            .map(|(_, p)| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if shards.is_empty() {
        return Err(Error::config_hint(
            format!(
                "no shard results (results.shard-I-of-N.csv) in {}",
                dir.display()
            ),
            "run `tetriserve sweep --shard I/N --out DIR` (or --shard auto in a job array) for every I first",
        ));
    }
    // One N.
    let mut by_n: BTreeMap<usize, Vec<&ShardFile>> = BTreeMap::new();
    for s in &shards {
        by_n.entry(s.0.1).or_default().push(s);
    }
    if by_n.len() > 1 {
        let sets: Vec<String> = by_n
            .iter()
            .map(|(n, v)| format!("of {n}: {}", names(v)))
            .collect();
        return Err(Error::config_hint(
            format!(
                "{} holds shards of different slicings ({}); they overlap and cannot be one set",
                dir.display(),
                sets.join("; ")
            ),
            "keep the shards of one run (one N) in the directory, or merge each set in its own directory",
        ));
    }
    let n = shards[0].0.1;
    // Every I, finished.
    let missing: Vec<String> = (0..n)
        .filter(|i| !shards.iter().any(|s| s.0.0 == *i))
        .map(|i| {
            results_path(dir, Some((i, n)))
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    if !missing.is_empty() {
        return Err(Error::config_hint(
            format!(
                "{}: {} of {n} shards present; missing {}",
                dir.display(),
                n - missing.len(),
                missing.join(", ")
            ),
            format!(
                "run the missing slices (`tetriserve sweep --shard I/{n} --out {}`, or their job array tasks), then merge again",
                dir.display()
            ),
        ));
    }
    for ((i, _), p) in &shards {
        let partial = partial_path(p);
        if partial.exists() {
            return Err(Error::config_hint(
                format!("shard {i}/{n} did not finish: {} exists", partial.display()),
                format!(
                    "run `tetriserve sweep --shard {i}/{n}` again into the same --out (it resumes)"
                ),
            ));
        }
    }
    let manifests = manifests_of_one_grid(&shards)?;
    let first = &manifests[0];
    // Every shard complete, no index twice.
    let mut rows: Vec<ResultRow> = Vec::new();
    for ((i, _), p) in &shards {
        let got = results::read(p, results::Resolutions::Required)?;
        results::require_costs(p, &got)?;
        let expected: Vec<usize> = (0..first.points).filter(|k| k % n == *i).collect();
        let mut indices: Vec<usize> = got.iter().map(|r| r.index).collect();
        indices.sort_unstable();
        if indices != expected {
            return Err(Error::config_hint(
                format!(
                    "{} holds {} row(s), but shard {i}/{n} of a {}-point grid has {}",
                    p.display(),
                    got.len(),
                    first.points,
                    expected.len()
                ),
                format!("run `tetriserve sweep --shard {i}/{n}` again into the same --out"),
            ));
        }
        // Each row is the grid's point at its index (manifests of older versions list no
        // digests).
        if let Some(r) = got
            .iter()
            .find(|r| first.digests.get(r.index).is_some_and(|d| *d != r.digest))
        {
            return Err(Error::config_hint(
                format!(
                    "{}: the row of point {} has digest {}, but the grid's point {} has {}: the row was not made by this grid",
                    p.display(),
                    r.index,
                    r.digest,
                    r.index,
                    first.digests[r.index]
                ),
                format!("run `tetriserve sweep --shard {i}/{n} --rerun` again into the same --out"),
            ));
        }
        rows.extend(got);
    }
    rows.sort_by_key(|r| r.index);
    let out = dir.join("results.csv");
    results::write_results(&out, &rows)?;
    Manifest {
        shard: None,
        tetriserve: Some(crate::files::VERSION.to_string()),
        ..first.clone()
    }
    .write(&Manifest::path_of(&out))?;
    Ok((out, rows.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn auto_reads_slurm_and_kubernetes_arrays() {
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(Shard::parse("auto", &slurm).unwrap(), (2, 4));
        let count_only = env(&[
            ("SLURM_ARRAY_TASK_ID", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ]);
        assert_eq!(Shard::parse("auto", &count_only).unwrap(), (0, 2));
        let k8s = env(&[("JOB_COMPLETION_INDEX", "1"), ("TETRISERVE_SHARDS", "3")]);
        assert_eq!(Shard::parse("auto", &k8s).unwrap(), (1, 3));
        assert_eq!(Shard::parse("2/5", &env(&[])).unwrap(), (2, 5));
    }

    #[test]
    fn auto_outside_an_array_or_on_a_strided_one_is_refused() {
        let e = Shard::parse("auto", &env(&[])).unwrap_err().to_string();
        assert!(
            e.contains("no job array found") && e.contains("--shard I/N"),
            "{e}"
        );
        let strided = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "6"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        let e = Shard::parse("auto", &strided).unwrap_err().to_string();
        assert!(e.contains("has gaps"), "{e}");
        let e = Shard::parse("auto", &env(&[("JOB_COMPLETION_INDEX", "0")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("TETRISERVE_SHARDS"), "{e}");
        let e = Shard::parse("auto", &env(&[("SLURM_ARRAY_TASK_ID", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a whole number"), "{e}");
        for bad in ["3/3", "1", "a/b", "0/0"] {
            assert!(Shard::parse(bad, &env(&[])).is_err(), "{bad}");
        }
    }

    #[test]
    fn shard_file_names_parse() {
        assert_eq!(shard_of("results.shard-2-of-8.csv"), Some((2, 8)));
        assert_eq!(shard_of("results.shard-2-of-8.partial.csv"), None);
        assert_eq!(shard_of("results.shard-2-of-8.manifest.json"), None);
        assert_eq!(shard_of("results.csv"), None);
    }
}
