//! Paired comparison of two policies over seeds: is one really better, or is it noise?
//!
//! Sweeps run every policy on the same arrivals for a given seed (common random numbers), so
//! the right test is paired: per grid point (every grid dimension but the seed and policy),
//! the gain is `attainment(policy) - attainment(baseline)` seed by seed, and its mean comes
//! with a Student-t 95% confidence interval over the seeds. Across points, the per-seed gains
//! are first averaged over the points (points share their seeds, so they are not
//! independent samples), and the interval is taken over those per-seed means.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, InputError, Result};
use crate::sweep::results::{self, Resolutions, ResultRow};
use crate::sweep::{csv_field, mean_ci95};

/// One grid point of the comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct PointGain {
    pub scenario: String,
    pub profile: String,
    pub gpus: String,
    pub steps: String,
    pub mix: String,
    /// Coefficient of variation of gamma arrivals, empty for other arrivals.
    pub cv: String,
    pub rate_per_min: String,
    pub slo_scale: String,
    pub granularity: String,
    /// Seeds present for both policies.
    pub seeds: usize,
    /// Mean SLO attainment of the baseline and of the policy, percent.
    pub baseline: f64,
    pub policy: f64,
    /// Mean paired gain (percentage points) and its 95% half-width.
    pub gain: f64,
    pub ci95: f64,
    /// Seeds where the policy did better, the same, worse.
    pub wins: usize,
    pub ties: usize,
    pub losses: usize,
}

/// The whole comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// What is compared: `SLO attainment`, or `WxH attainment` for one resolution.
    pub metric: String,
    pub baseline: String,
    pub policy: String,
    pub points: Vec<PointGain>,
    /// Over all points: the mean gain and the 95% half-width over seeds of the per-seed mean
    /// gain, and how many seeds that is.
    pub gain: f64,
    pub ci95: f64,
    pub seeds: usize,
}

/// scenario, profile, gpus, steps, mix, cv, rate, SLO scale, granularity.
type PointKey = [String; 9];

fn point_key(r: &ResultRow) -> PointKey {
    let num = |v: f64| {
        if v.is_nan() {
            String::new()
        } else {
            format!("{v}")
        }
    };
    [
        r.scenario.clone(),
        r.profile.clone(),
        r.gpus.to_string(),
        r.steps.to_string(),
        r.mix.clone(),
        r.cv.map(num).unwrap_or_default(),
        num(r.rate),
        num(r.scale),
        r.granularity.clone(),
    ]
}

/// Compares `policy` with `baseline` over the rows of sweep results files: overall SLO
/// attainment, or with `resolution` (e.g. `2048x2048`) that resolution's attainment. Points
/// keep the order in which the files first list them (the sweep's grid order).
pub fn compare(
    files: &[&Path],
    baseline: &str,
    policy: &str,
    resolution: Option<&str>,
) -> Result<Comparison> {
    if baseline == policy {
        return Err(Error::config_hint(
            format!("`{policy}` compared with itself"),
            "give two different policies to --baseline and --policy",
        ));
    }
    // point -> seed -> (baseline, policy) attainment in percent, points in first-seen order.
    let mut order: Vec<PointKey> = Vec::new();
    let mut table: BTreeMap<PointKey, BTreeMap<String, [Option<f64>; 2]>> = BTreeMap::new();
    let mut policies_seen = std::collections::BTreeSet::new();
    for path in files {
        let source = path.display().to_string();
        let how = if resolution.is_some() {
            Resolutions::Required
        } else {
            Resolutions::IfPresent
        };
        let rows = results::read(path, how)?;
        if rows.is_empty() {
            return Err(Error::Input(
                InputError::new(&source, "the results file has a header but no rows")
                    .hint("run `tetriserve sweep` to fill it"),
            ));
        }
        for (i, r) in rows.iter().enumerate() {
            let line = i as u64 + 2;
            policies_seen.insert(r.policy.clone());
            let slot = if r.policy == baseline {
                0
            } else if r.policy == policy {
                1
            } else {
                continue;
            };
            let value = match resolution {
                None => r.attainment,
                // A resolution the run did not have leaves the point out.
                Some(res) => match r.per_resolution.get(res) {
                    Some(c) => c.attainment,
                    None => continue,
                },
            };
            let key = point_key(r);
            if !table.contains_key(&key) {
                order.push(key.clone());
            }
            let cell = &mut table
                .entry(key)
                .or_default()
                .entry(r.seed.to_string())
                .or_default()[slot];
            if cell.is_some() {
                return Err(Error::Input(
                    InputError::new(
                        &source,
                        format!("a second row for {} at this grid point and seed", r.policy),
                    )
                    .line(line)
                    .hint("give each sweep's results once (a merged results.csv holds its shards)"),
                ));
            }
            *cell = Some(100.0 * value);
        }
    }
    for name in [baseline, policy] {
        if !policies_seen.contains(name) {
            return Err(Error::config_hint(
                format!("no results for policy `{name}`"),
                format!(
                    "the results hold: {}",
                    policies_seen.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    let mut points = Vec::new();
    let mut per_seed: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for key in order {
        let seeds = &table[&key];
        let [
            scenario,
            profile,
            gpus,
            steps,
            mix,
            cv,
            rate_per_min,
            slo_scale,
            granularity,
        ] = key;
        let pairs: Vec<(&String, f64, f64)> = seeds
            .iter()
            .filter_map(|(s, [b, p])| Some((s, (*b)?, (*p)?)))
            .collect();
        if pairs.is_empty() {
            continue;
        }
        let diffs: Vec<f64> = pairs.iter().map(|&(_, b, p)| p - b).collect();
        for (&(s, _, _), d) in pairs.iter().zip(&diffs) {
            per_seed.entry(s.clone()).or_default().push(*d);
        }
        let (gain, ci95) = mean_ci95(&diffs);
        let n = pairs.len() as f64;
        points.push(PointGain {
            scenario,
            profile,
            gpus,
            steps,
            mix,
            cv,
            rate_per_min,
            slo_scale,
            granularity,
            seeds: pairs.len(),
            baseline: pairs.iter().map(|p| p.1).sum::<f64>() / n,
            policy: pairs.iter().map(|p| p.2).sum::<f64>() / n,
            gain,
            ci95,
            wins: diffs.iter().filter(|&&d| d > 1e-9).count(),
            ties: diffs.iter().filter(|&&d| d.abs() <= 1e-9).count(),
            losses: diffs.iter().filter(|&&d| d < -1e-9).count(),
        });
    }
    if points.is_empty() {
        return Err(Error::config_hint(
            format!("no grid point has a seed with results for both `{baseline}` and `{policy}`"),
            "run both policies in the same sweep (policies = [..] in its [sweep] table)",
        ));
    }
    let seed_means: Vec<f64> = per_seed
        .values()
        .map(|v| v.iter().sum::<f64>() / v.len() as f64)
        .collect();
    let (gain, ci95) = mean_ci95(&seed_means);
    Ok(Comparison {
        metric: resolution.map_or("SLO attainment".into(), |r| format!("{r} attainment")),
        baseline: baseline.to_string(),
        policy: policy.to_string(),
        points,
        gain,
        ci95,
        seeds: seed_means.len(),
    })
}

/// `± half-width`, or `± n/a` from a single seed (no interval can be estimated).
fn interval(half: f64, seeds: usize) -> String {
    if seeds < 2 {
        "± n/a".into()
    } else {
        format!("± {half:.2}")
    }
}

impl Comparison {
    /// A Markdown table, one row per point, then the overall line.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "{} (%) of {} against {}, paired by seed:\n\n| scenario | profile | GPUs | steps | mix | cv | rate/min | SLO scale | g | seeds | {} | {} | gain (pp, 95% CI) | w/t/l |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
            self.metric, self.policy, self.baseline, self.baseline, self.policy
        );
        for p in &self.points {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:+.2} {} | {}/{}/{} |",
                p.scenario,
                p.profile,
                p.gpus,
                p.steps,
                p.mix,
                p.cv,
                p.rate_per_min,
                p.slo_scale,
                p.granularity,
                p.seeds,
                p.baseline,
                p.policy,
                p.gain,
                interval(p.ci95, p.seeds),
                p.wins,
                p.ties,
                p.losses
            );
        }
        let _ = writeln!(
            s,
            "\nAll {} points, {}: {} - {} = {:+.2} {} percentage points (95% CI over {} seeds of the per-seed mean gain).",
            self.points.len(),
            self.metric,
            self.policy,
            self.baseline,
            self.gain,
            interval(self.ci95, self.seeds),
            self.seeds
        );
        s
    }

    /// CSV, one row per point.
    pub fn to_csv(&self) -> String {
        let mut s = String::from(
            "scenario,profile,gpus,steps,mix,cv,rate_per_min,slo_scale,granularity,seeds,baseline,policy,baseline_attainment_pct,policy_attainment_pct,gain_pp,ci95_pp,wins,ties,losses\n",
        );
        for p in &self.points {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{},{},{},{:.4},{:.4},{:.4},{},{},{},{}",
                csv_field(&p.scenario),
                csv_field(&p.profile),
                p.gpus,
                p.steps,
                csv_field(&p.mix),
                p.cv,
                p.rate_per_min,
                p.slo_scale,
                csv_field(&p.granularity),
                p.seeds,
                csv_field(&self.baseline),
                csv_field(&self.policy),
                p.baseline,
                p.policy,
                p.gain,
                if p.seeds < 2 {
                    String::new()
                } else {
                    format!("{:.4}", p.ci95)
                },
                p.wins,
                p.ties,
                p.losses
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::results::{ResolutionCell, write_results};

    /// A results row: `policy` at SLO scale `scale` and `seed`, attaining `a` of 100 requests.
    fn row(mix: &str, scale: f64, seed: u64, policy: &str, a: f64) -> ResultRow {
        let met = (a * 100.0).round() as usize;
        ResultRow {
            index: 0,
            digest: format!(
                "{:016x}",
                crate::sweep::digest::fnv1a64(format!("{mix}{scale}{seed}{policy}").as_bytes())
            ),
            scenario: "s".into(),
            policy: policy.into(),
            mix: mix.into(),
            arrival: "poisson".into(),
            cv: None,
            rate: 12.0,
            scale,
            seed,
            granularity: "5".into(),
            steps: 28,
            gpus: 8,
            nodes: 1,
            gpus_per_node: 8,
            profile: "h100-flux1-dev".into(),
            requests: 100,
            met,
            missed: 100 - met,
            dropped: 0,
            attainment: a,
            latency_mean: 1.0,
            latency_p50: 1.0,
            latency_p90: 1.0,
            latency_p99: 1.0,
            gpu_seconds: 1.0,
            utilization: 0.5,
            mean_degree: 1.0,
            bound: f64::NAN,
            gpu_hours_busy: 0.25,
            gpu_hours_provisioned: 1.0,
            usd: 3.0,
            usd_per_1k_met_images: 30.0,
            energy_wh: 350.0,
            wh_per_met_image: 3.5,
            per_resolution: [(
                "256x256".to_string(),
                ResolutionCell {
                    requests: 100,
                    met,
                    attainment: a,
                },
            )]
            .into_iter()
            .collect(),
        }
    }

    fn write(dir: &Path, name: &str, rows: &[ResultRow]) -> std::path::PathBuf {
        let p = dir.join(name);
        let rows: Vec<ResultRow> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| ResultRow {
                index: i,
                ..r.clone()
            })
            .collect();
        write_results(&p, &rows).unwrap();
        p
    }

    #[test]
    fn gains_are_paired_by_seed_per_point() {
        let dir = tempfile::tempdir().unwrap();
        // Point 1.0: gains 2, 4 (seed 3 lacks the policy and is left out). Point 1.5: 0, 0.
        let u = "uniform";
        let f = write(
            dir.path(),
            "results.csv",
            &[
                row(u, 1.0, 1, "a", 0.50),
                row(u, 1.0, 1, "b", 0.52),
                row(u, 1.0, 2, "a", 0.60),
                row(u, 1.0, 2, "b", 0.64),
                row(u, 1.0, 3, "a", 0.10),
                row(u, 1.5, 1, "a", 0.90),
                row(u, 1.5, 1, "b", 0.90),
                row(u, 1.5, 2, "a", 0.80),
                row(u, 1.5, 2, "b", 0.80),
                row(u, 1.5, 2, "c", 0.10),
            ],
        );
        let c = compare(&[&f], "a", "b", None).unwrap();
        assert_eq!(c.points.len(), 2);
        let p = &c.points[0];
        assert_eq!((p.slo_scale.as_str(), p.seeds), ("1", 2));
        assert!((p.baseline - 55.0).abs() < 1e-9 && (p.policy - 58.0).abs() < 1e-9);
        assert!((p.gain - 3.0).abs() < 1e-9);
        // sd of (2, 4) = sqrt(2); t(1) = 12.706; half-width = 12.706 * sqrt(2) / sqrt(2).
        assert!((p.ci95 - 12.706).abs() < 1e-6, "{}", p.ci95);
        assert_eq!((p.wins, p.ties, p.losses), (2, 0, 0));
        assert_eq!((c.points[1].gain, c.points[1].ties), (0.0, 2));
        // Per seed over points: seed 1 (2 + 0) / 2 = 1, seed 2 (4 + 0) / 2 = 2.
        assert!((c.gain - 1.5).abs() < 1e-9);
        assert_eq!(c.seeds, 2);
        assert!(c.to_markdown().contains("| +3.00 ± 12.71 | 2/0/0 |"));
        assert_eq!(c.to_csv().lines().count(), 3);
    }

    #[test]
    fn one_seed_has_no_interval_and_commas_are_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let m = "custom:256=1,512=1";
        let f = write(
            dir.path(),
            "results.csv",
            &[row(m, 1.0, 1, "a", 0.5), row(m, 1.0, 1, "b", 0.6)],
        );
        let c = compare(&[&f], "a", "b", None).unwrap();
        assert!(
            c.to_markdown().contains("+10.00 ± n/a"),
            "{}",
            c.to_markdown()
        );
        let csv = c.to_csv();
        let mut rows = csv::Reader::from_reader(csv.as_bytes());
        let header = rows.headers().unwrap().clone();
        let row = rows.records().next().unwrap().unwrap();
        assert_eq!(row.len(), header.len());
        let mix = header.iter().position(|h| h == "mix").unwrap();
        assert_eq!(&row[mix], m);
    }

    #[test]
    fn one_resolution_can_be_compared() {
        let dir = tempfile::tempdir().unwrap();
        let cell = |requests, met| ResolutionCell {
            requests,
            met,
            attainment: met as f64 / requests as f64,
        };
        let mut a = row("u", 1.0, 1, "a", 0.5);
        a.per_resolution = [
            ("256x256".into(), cell(40, 40)),
            ("2048x2048".into(), cell(60, 10)),
        ]
        .into_iter()
        .collect();
        a.met = 50;
        a.missed = 50;
        let mut b = row("u", 1.0, 1, "b", 0.5);
        b.per_resolution = [
            ("256x256".into(), cell(40, 20)),
            ("2048x2048".into(), cell(60, 30)),
        ]
        .into_iter()
        .collect();
        b.met = 50;
        b.missed = 50;
        let p = write(dir.path(), "results.csv", &[a, b]);
        let big = compare(&[&p], "a", "b", Some("2048x2048")).unwrap();
        assert!((big.points[0].gain - 100.0 * (30.0 - 10.0) / 60.0).abs() < 1e-3);
        assert_eq!(big.metric, "2048x2048 attainment");
        let small = compare(&[&p], "a", "b", Some("256x256")).unwrap();
        assert_eq!(small.points[0].gain, -50.0);
        assert!(compare(&[&p], "a", "b", Some("512x512")).is_err());
        // Without the resolution file, a resolution cannot be compared.
        std::fs::remove_file(dir.path().join("results-by-resolution.csv")).unwrap();
        let e = compare(&[&p], "a", "b", Some("256x256"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("results-by-resolution.csv: missing"), "{e}");
        assert!(compare(&[&p], "a", "b", None).is_ok());
    }

    #[test]
    fn unknown_policies_and_bad_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "results.csv", &[row("u", 1.0, 1, "a", 0.5)]);
        let e = compare(&[&f], "a", "zz", None).unwrap_err().to_string();
        assert!(
            e.contains("`zz`") && e.contains("the results hold: a"),
            "{e}"
        );
        let text = std::fs::read_to_string(&f)
            .unwrap()
            .replace(",0.500000,", ",half,");
        let g = dir.path().join("g.csv");
        std::fs::write(&g, text).unwrap();
        let e = compare(&[&g], "a", "b", None).unwrap_err().to_string();
        assert!(e.contains("g.csv:2: field `slo_attainment`"), "{e}");
        let e = compare(&[&f], "a", "a", None).unwrap_err().to_string();
        assert!(e.contains("compared with itself"), "{e}");
        let e = compare(&[&f, &f], "a", "zz", None).unwrap_err().to_string();
        assert!(e.contains("a second row for a"), "{e}");
        let h = dir.path().join("h.csv");
        std::fs::write(&h, "policy,seed,digest\na,1,x\n").unwrap();
        let e = compare(&[&h], "a", "b", None).unwrap_err().to_string();
        assert!(e.contains("no column `index`"), "{e}");
    }
}
