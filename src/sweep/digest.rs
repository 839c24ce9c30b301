//! What a sweep point is: a digest of the fully resolved scenario it runs, and the manifest
//! that records which scenario a results file was made from.
//!
//! A point's result depends on every key of its scenario (cluster, cost, overheads, SLO bases,
//! workload, policy options) and on the bytes of the files it reads (a profile CSV, a replayed
//! trace). Its *resolved* form is the merged raw scenario with the point's values applied,
//! serialised with serde_json and flattened into sorted `key = value` pairs (`cluster.nodes =
//! 2`, `slo.bases_s.1024x1024 = 3.0`; unset keys are absent). A file path is replaced by the
//! file's name and the digest of its bytes, and a built-in profile by its name and the digest
//! of its embedded text, so moving a directory changes nothing and editing a file changes the
//! digest. `description` and the `[sweep]` table are left out of a point: they change no
//! result (the `[sweep]` table is kept in the manifest, which describes the whole grid).
//!
//! The digest is FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3) over the
//! lines `key = value\n` of that map, prefixed by a format tag, written as 16 hex digits.
//! FNV-1a is fixed by its definition, unlike `std`'s `DefaultHasher` (which may change between
//! Rust releases), so a digest written today matches one computed by a later build. It is not
//! a cryptographic hash: it tells results apart, it does not authenticate them.
//!
//! The digest covers a run's inputs, not the simulator that ran them: after changing the
//! simulator itself, run a sweep again with `--rerun`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cost::profile::ProfileTable;
use crate::error::{Error, InputError, Result};
use crate::scenario::RawScenario;

/// Changes when the canonical form changes, so that old digests never match new ones.
const FORMAT: &str = "tetriserve-sweep-point-v1\n";

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A resolved scenario: flattened keys and their canonical JSON values, sorted by key.
pub type Resolved = BTreeMap<String, String>;

/// Digests of the files scenarios name, computed once per path (a grid names the same
/// profile and trace at every point).
#[derive(Default)]
pub struct FileDigests {
    seen: BTreeMap<String, String>,
}

impl FileDigests {
    /// `name (fnv1a64 HEX)` for a file, `builtin NAME (fnv1a64 HEX)` for a built-in profile;
    /// `None` when `value` names neither (validation reports it).
    fn describe(&mut self, value: &str, builtin: bool) -> Result<Option<String>> {
        if let Some(d) = self.seen.get(value) {
            return Ok(Some(d.clone()));
        }
        let d = if let Some(text) = builtin.then(|| ProfileTable::builtin_text(value)).flatten() {
            format!(
                "builtin {value} (fnv1a64 {:016x})",
                fnv1a64(text.as_bytes())
            )
        } else if Path::new(value).is_file() {
            // The reader every input goes through: the same size limit and binary check as
            // the run that reads the file after.
            let (limit, what) = if builtin {
                (crate::error::limits::SMALL_BYTES, "profile")
            } else {
                (crate::error::limits::TRACE_BYTES, "trace")
            };
            let bytes = crate::error::read_text(Path::new(value), limit, what)?.into_bytes();
            let name = Path::new(value)
                .file_name()
                .map_or_else(|| value.to_string(), |n| n.to_string_lossy().into_owned());
            format!("{name} (fnv1a64 {:016x})", fnv1a64(&bytes))
        } else {
            return Ok(None);
        };
        self.seen.insert(value.to_string(), d.clone());
        Ok(Some(d))
    }
}

/// The resolved form of a merged raw scenario; with `with_sweep`, the `[sweep]` table too.
pub fn resolve(raw: &RawScenario, with_sweep: bool, files: &mut FileDigests) -> Result<Resolved> {
    let mut raw = raw.clone();
    raw.description = None;
    if !with_sweep {
        raw.sweep = None;
    }
    if let Some(p) = raw.cost.profile.clone()
        && let Some(d) = files.describe(&p, true)?
    {
        raw.cost.profile = Some(d);
    }
    if let Some(t) = raw.workload.trace.clone()
        && let Some(d) = files.describe(&t, false)?
    {
        raw.workload.trace = Some(d);
    }
    if let Some(profiles) = raw.sweep.as_mut().and_then(|s| s.profiles.as_mut()) {
        for p in profiles.iter_mut() {
            if let Some(d) = files.describe(p, true)? {
                *p = d;
            }
        }
    }
    let value = serde_json::to_value(&raw)
        .map_err(|e| Error::config(format!("serialising the scenario: {e}")))?;
    let mut out = Resolved::new();
    flatten("", &value, &mut out);
    Ok(out)
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Resolved) {
    match v {
        serde_json::Value::Null => {}
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), leaf.to_string());
        }
    }
}

/// The digest of a resolved scenario: 16 hex digits.
pub fn digest(r: &Resolved) -> String {
    let mut text = String::from(FORMAT);
    for (k, v) in r {
        text.push_str(k);
        text.push_str(" = ");
        text.push_str(v);
        text.push('\n');
    }
    format!("{:016x}", fnv1a64(text.as_bytes()))
}

/// What changed from `old` to `new`, one `key: old -> new` per key, in key order.
pub fn diff(old: &Resolved, new: &Resolved) -> Vec<String> {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (old.get(k), new.get(k));
            (a != b).then(|| {
                let show = |v: Option<&String>| v.map_or("(unset)".to_string(), Clone::clone);
                format!("{k}: {} -> {}", show(a), show(b))
            })
        })
        .collect()
}

/// What a results file was made from, written beside it as `<results>.manifest.json`: the
/// resolved scenario with its `[sweep]` table, the grid's digest, its size, and the shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The scenario's name.
    pub scenario: String,
    /// The digest of `resolved` (the whole grid: base scenario and `[sweep]` table).
    pub grid: String,
    /// Points in the whole grid (every shard).
    pub points: usize,
    /// `[i, n]` for a shard's file, absent for a whole grid.
    pub shard: Option<(usize, usize)>,
    pub resolved: Resolved,
    /// The version of tetriserve that wrote the results (absent in older manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tetriserve: Option<String>,
    /// Set on the manifest of partial results started by `--rerun`: the complete results
    /// beside them are being replaced, so a resumed sweep does not reuse them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replaces: bool,
    /// Each point's digest, in grid order (absent in older manifests): `merge` checks every
    /// row against it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub digests: Vec<String>,
}

impl Manifest {
    /// The manifest file of a results file: `results.csv` -> `results.manifest.json`.
    pub fn path_of(results: &Path) -> std::path::PathBuf {
        results.with_extension("manifest.json")
    }

    /// Reads a manifest (`None` when there is none).
    pub fn read(path: &Path) -> Result<Option<Manifest>> {
        if !path.exists() {
            return Ok(None);
        }
        let text = crate::error::read_text(path, crate::error::limits::SMALL_BYTES, "manifest")?;
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::Input(
                InputError::new(
                    path.display().to_string(),
                    format!("unreadable manifest: {e}"),
                )
                .line(e.line() as u64)
                .hint("it is written by `tetriserve sweep`; delete it and run with --rerun"),
            )
        })
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::config(format!("serialising the manifest: {e}")))?;
        crate::files::write_file(path, (text + "\n").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_its_published_test_vectors() {
        // From the FNV reference test suite (Fowler, Noll, Vo).
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn a_changed_key_changes_the_digest_and_is_named() {
        let base = RawScenario::default_scenario();
        let mut files = FileDigests::default();
        let a = resolve(&base, false, &mut files).unwrap();
        let mut raw = base.clone();
        raw.cluster.nodes = Some(2);
        raw.slo.bases_s.insert("1024x1024".into(), 4.0);
        raw.description = Some("other words".into());
        let b = resolve(&raw, false, &mut files).unwrap();
        assert_ne!(digest(&a), digest(&b));
        assert_eq!(
            diff(&a, &b),
            vec![
                "cluster.nodes: 1 -> 2".to_string(),
                "slo.bases_s.1024x1024: 3.0 -> 4.0".to_string()
            ]
        );
        // The description changes no result, hence no digest.
        raw.cluster.nodes = a["cluster.nodes"].parse().ok();
        raw.slo.bases_s.insert("1024x1024".into(), 3.0);
        assert_eq!(
            digest(&resolve(&raw, false, &mut files).unwrap()),
            digest(&a)
        );
        assert_eq!(digest(&a).len(), 16);
    }

    #[test]
    fn files_are_named_by_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.csv");
        std::fs::write(&f, "one").unwrap();
        let mut raw = RawScenario::default_scenario();
        raw.cost.profile = Some(f.to_string_lossy().into_owned());
        let one = resolve(&raw, false, &mut FileDigests::default()).unwrap();
        assert_eq!(
            one["cost.profile"],
            format!("\"p.csv (fnv1a64 {:016x})\"", fnv1a64(b"one"))
        );
        std::fs::write(&f, "two").unwrap();
        let two = resolve(&raw, false, &mut FileDigests::default()).unwrap();
        assert_ne!(digest(&one), digest(&two));
        // A built-in profile is named by its embedded text.
        raw.cost.profile = Some("h100-flux1-dev".into());
        let b = resolve(&raw, false, &mut FileDigests::default()).unwrap();
        assert!(b["cost.profile"].starts_with("\"builtin h100-flux1-dev (fnv1a64 "));
    }
}
