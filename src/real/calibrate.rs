//! Measuring the node a [`RealExecutor`] runs, as the profile its policies plan with.
//!
//! For each resolution and group size `k`, works of 1 and of `1 + S` steps run through the
//! executor itself (ranks, exchanges, latent hand-back: everything a real work does),
//! `repeats` times each after the warm-up, on every aligned group of `k` slots at once: the
//! node loaded, as it is when scheduling matters. (Slots that share hardware, lanes of one
//! GPU or more CPU threads than cores, slow each other down; measured alone, each would look
//! faster than it is under load. On distinct GPUs the two agree.)
//!
//! The ranks time their steps
//! ([`RankJob::steps_ns`](crate::real::executor::RankJob::steps_ns)): a step's time is the
//! long works' step time divided by their steps; a work's per-work overhead is its time
//! outside its steps (inputs, latent upload and download, thread hand-offs) plus the time
//! from its end until the executor's thread takes it in (in a run, the next decision waits
//! that long). Each is the
//! median over the repeats; repeats more than 25% off the median are counted as outliers.
//! Measuring after warm-up keeps one-off costs (allocation, first launches) out of the
//! overhead: those are paid before the clock starts and must not be charged to every work.

use std::time::Duration;

use crate::cluster::Link;
use crate::cost::profile::{CsvRow, Precision, profile_csv};
use crate::error::{Error, Result};
use crate::real::executor::RealExecutor;
use crate::workload::Resolution;

/// One measured (resolution, degree).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRow {
    pub res: Resolution,
    pub degree: usize,
    pub step_ms: f64,
    /// Spread of the per-step estimate over the repeats.
    pub std_ms: f64,
    /// A 1-step work's time beyond its step.
    pub overhead_ms: f64,
    /// Repeats whose per-step estimate is more than 25% away from the median (the median
    /// ignores them; many of them say the machine was busy while measuring).
    pub outliers: usize,
}

/// Steps of the long works, beyond the short ones'.
const EXTRA_STEPS: u32 = 2;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Measures every resolution at every group size the executor offers.
pub fn measure(
    exec: &mut RealExecutor,
    resolutions: &[Resolution],
    repeats: usize,
    mut progress: impl FnMut(&NodeRow),
) -> Result<Vec<NodeRow>> {
    let repeats = repeats.max(1);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut rows = Vec::new();
    for &res in resolutions {
        for k in exec.degrees() {
            let groups = exec.aligned_groups(k);
            exec.run_now_on(res, &groups, 1)?; // warm-up
            // Per repeat, means over the groups: the time of a step, and a work's time
            // outside its steps (inputs, latent upload and download, hand-offs).
            let mut per_step = Vec::with_capacity(repeats);
            let mut outside = Vec::with_capacity(repeats);
            for _ in 0..repeats {
                let short = exec.run_timed_on(res, &groups, 1)?;
                let long = exec.run_timed_on(res, &groups, 1 + EXTRA_STEPS)?;
                let n = groups.len() as f64;
                per_step.push(
                    long.iter().map(|(_, s, _)| ms(*s)).sum::<f64>()
                        / n
                        / f64::from(1 + EXTRA_STEPS),
                );
                // Outside the steps, plus the wait from a work's end until the executor's
                // thread takes it in: in a run, the next decision waits as long.
                outside.push(
                    short
                        .iter()
                        .chain(&long)
                        .map(|(w, s, noticed)| ms(w.saturating_sub(*s)) + ms(*noticed))
                        .sum::<f64>()
                        / (2.0 * n),
                );
            }
            let mean = per_step.iter().sum::<f64>() / per_step.len() as f64;
            let std = (per_step.iter().map(|x| (x - mean).powi(2)).sum::<f64>()
                / per_step.len() as f64)
                .sqrt();
            let mid = median(per_step.clone());
            let outliers = per_step
                .iter()
                .filter(|&&x| (x - mid).abs() > 0.25 * mid)
                .count();
            // A step below a microsecond is noise: keep the profile's times positive.
            let row = NodeRow {
                res,
                degree: k,
                step_ms: mid.max(1e-3),
                std_ms: std,
                overhead_ms: median(outside),
                outliers,
            };
            progress(&row);
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return Err(Error::Executor("nothing to measure: no resolutions".into()));
    }
    make_monotone(&mut rows);
    Ok(rows)
}

/// Makes the measured rows a profile the simulator can trust, raising (never lowering) noisy
/// times; returns how many rows were raised.
///
/// - A larger image measured faster than a smaller one at the same degree is noise (tiny
///   models are mostly fixed costs): it takes the smaller one's time, so that the profile is
///   one the simulator accepts.
/// - A degree measured with a super-linear speed-up (`k * T(k)` below `j * T(j)` for a
///   smaller degree `j`: more GPUs doing the same step in less GPU-time) is noise too: it
///   would leave the exchanges negative time. `T(k)` is raised to `j * T(j) / k`, a linear
///   speed-up with no exchange.
///
/// Each rule only raises times, so applying them in turn until neither raises anything ends.
pub fn make_monotone(rows: &mut [NodeRow]) -> usize {
    let mut raised = 0;
    let mut by_size: Vec<usize> = (0..rows.len()).collect();
    by_size.sort_by_key(|&i| (rows[i].degree, rows[i].res.tokens()));
    let mut by_degree: Vec<usize> = (0..rows.len()).collect();
    by_degree.sort_by_key(|&i| (rows[i].res, rows[i].degree));
    loop {
        let mut changed = false;
        for w in by_size.windows(2) {
            let (a, b) = (w[0], w[1]);
            if rows[a].degree == rows[b].degree && rows[b].step_ms < rows[a].step_ms {
                rows[b].step_ms = rows[a].step_ms;
                raised += 1;
                changed = true;
            }
        }
        // Per resolution, the largest GPU-time per step of any smaller degree so far.
        let mut most: Option<(Resolution, f64)> = None;
        for &i in &by_degree {
            let k = rows[i].degree.max(1) as f64;
            let gpu_time = k * rows[i].step_ms;
            match most {
                Some((res, m)) if res == rows[i].res => {
                    if gpu_time < m {
                        rows[i].step_ms = m / k;
                        raised += 1;
                        changed = true;
                    } else {
                        most = Some((res, gpu_time));
                    }
                }
                _ => most = Some((rows[i].res, gpu_time)),
            }
        }
        if !changed {
            return raised;
        }
    }
}

/// The per-work overhead to charge: the median over the measured rows.
pub fn dispatch_overhead_ms(rows: &[NodeRow]) -> f64 {
    median(rows.iter().map(|r| r.overhead_ms).collect())
}

/// The rows as a profile CSV (`gpu` is the key the scenario's cluster takes, e.g. `cpu`).
pub fn to_csv(model: &str, gpu: &str, description: &str, rows: &[NodeRow]) -> String {
    let comment = format!(
        "Measured by tetriserve on the real backend's node ({description}): per-step time as the ranks timed the steps of works of {} steps, per-work overhead as works' time outside their steps, medians of repeats; per-work overhead median {:.3} ms.",
        1 + EXTRA_STEPS,
        dispatch_overhead_ms(rows)
    );
    let rows = rows.iter().map(|r| CsvRow {
        res: r.res,
        degree: r.degree as u32,
        batch: 1,
        step_ms: r.step_ms,
        std_ms: Some(r.std_ms),
        source: "measured-node",
        link: Link::NvLink,
    });
    profile_csv(model, gpu, Precision::Fixed4, &[&comment], rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::profile::ProfileTable;

    /// A measured row with no spread, overhead or outliers.
    fn row(px: u32, degree: usize, step_ms: f64) -> NodeRow {
        NodeRow {
            res: Resolution::square(px),
            degree,
            step_ms,
            std_ms: 0.0,
            overhead_ms: 0.0,
            outliers: 0,
        }
    }

    #[test]
    fn a_larger_image_measured_faster_takes_the_smaller_ones_time() {
        let mut rows = vec![
            row(512, 2, 0.87),
            row(256, 2, 0.94),
            row(256, 1, 1.8),
            row(1024, 2, 3.0),
        ];
        assert_eq!(make_monotone(&mut rows), 1);
        let steps: Vec<f64> = rows.iter().map(|r| r.step_ms).collect();
        assert_eq!(steps, vec![0.94, 0.94, 1.8, 3.0]);
        let csv = to_csv("tiny", "cpu", "test", &rows);
        ProfileTable::parse(&csv, "<node>").unwrap();
    }

    #[test]
    fn a_super_linear_speed_up_is_raised_to_a_linear_one() {
        // 256 px: SP2 at 4 ms is 8 ms of GPU-time against SP1's 10: raised to 5 ms. SP4 at
        // 2 ms (8 ms) is raised to 10 / 4 = 2.5 ms. 512 px SP2 at 6 ms is 12 ms against 11:
        // kept, as is its SP4 at 3.5 ms (14 ms).
        let mut rows = vec![
            row(256, 1, 10.0),
            row(256, 2, 4.0),
            row(256, 4, 2.0),
            row(512, 1, 11.0),
            row(512, 2, 6.0),
            row(512, 4, 3.5),
        ];
        assert_eq!(make_monotone(&mut rows), 2);
        let steps: Vec<f64> = rows.iter().map(|r| r.step_ms).collect();
        assert_eq!(steps, vec![10.0, 5.0, 2.5, 11.0, 6.0, 3.5]);
        // Random rows: afterwards both orders hold, no time fell, and a second pass raises
        // nothing.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            1.0 + (seed % 1000) as f64 / 100.0
        };
        for _ in 0..200 {
            let mut rows: Vec<NodeRow> = [256, 512, 1024]
                .iter()
                .flat_map(|&px| [1, 2, 4].map(|k| (px, k)))
                .map(|(px, k)| row(px, k, next()))
                .collect();
            let before: Vec<f64> = rows.iter().map(|r| r.step_ms).collect();
            make_monotone(&mut rows);
            for (r, b) in rows.iter().zip(&before) {
                assert!(r.step_ms >= *b);
            }
            for a in &rows {
                for b in &rows {
                    if a.degree == b.degree && a.res.tokens() < b.res.tokens() {
                        assert!(b.step_ms >= a.step_ms, "{rows:?}");
                    }
                    if a.res == b.res && a.degree < b.degree {
                        let (ga, gb) = (a.degree as f64 * a.step_ms, b.degree as f64 * b.step_ms);
                        assert!(gb >= ga * (1.0 - 1e-12), "{rows:?}");
                    }
                }
            }
            assert_eq!(make_monotone(&mut rows), 0);
        }
    }

    #[test]
    fn the_csv_is_a_profile_the_simulator_reads() {
        let rows = vec![
            NodeRow {
                res: Resolution::square(256),
                degree: 1,
                step_ms: 2.0,
                std_ms: 0.1,
                overhead_ms: 0.5,
                outliers: 0,
            },
            NodeRow {
                res: Resolution::square(256),
                degree: 2,
                step_ms: 1.5,
                std_ms: 0.1,
                overhead_ms: 0.7,
                outliers: 0,
            },
        ];
        let csv = to_csv("tiny", "cpu", "CPU: 2 rank threads", &rows);
        let t = ProfileTable::parse(&csv, "<node>").unwrap();
        assert_eq!(t.rows().len(), 2);
        assert_eq!(t.gpu(), "cpu");
        assert_eq!(dispatch_overhead_ms(&rows), 0.7);
    }
}
