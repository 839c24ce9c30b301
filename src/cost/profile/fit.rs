//! Curve fitting for resolutions a profile does not list: step time against image tokens.
//!
//! A step's cost is a constant (launches, per-sample work) plus a linear part (weight GEMMs,
//! communication) plus a quadratic part (attention) in the token count, so `a + b*N + c*N^2` is
//! the natural curve. It is fitted by weighted least squares with weights `1/t^2`, which
//! minimises *relative* error: a 20 ms step and a 900 ms step count equally.
//!
//! The fit is trusted only where the data has that shape: if it misses any listed row by more
//! than [`FIT_TOLERANCE`] (relative), the time is interpolated linearly between the two listed
//! token counts around the request instead. Either way the result lies between the times of
//! those two neighbours, so a resolution between two rows never costs less (or more) than both.
//! Range checks (no extrapolation) are the caller's job.

/// The largest relative error of the quadratic at a listed row for it to be used.
pub const FIT_TOLERANCE: f64 = 0.10;

/// The time at `n` tokens from `(tokens, ms)` points, or `None` if no curve can be fitted.
///
/// Three or more distinct token counts: the weighted quadratic fit if it matches every row
/// within [`FIT_TOLERANCE`], else linear between the neighbours; either way kept within the
/// neighbours' times. Two: linear interpolation between their (mean) times. One: that time
/// (the same token count in another aspect ratio).
pub(super) fn interpolate(points: &[(f64, f64)], n: f64) -> Option<f64> {
    let mut distinct: Vec<f64> = points.iter().map(|p| p.0).collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    let mean_at = |x: f64| {
        let ts: Vec<f64> = points.iter().filter(|p| p.0 == x).map(|p| p.1).collect();
        ts.iter().sum::<f64>() / ts.len() as f64
    };
    match distinct.len() {
        0 => None,
        1 => Some(mean_at(distinct[0])),
        2 => {
            let (x0, x1) = (distinct[0], distinct[1]);
            let (t0, t1) = (mean_at(x0), mean_at(x1));
            Some(t0 + (t1 - t0) * (n - x0) / (x1 - x0))
        }
        _ => {
            // The listed token counts around `n` (equal when `n` is listed).
            let hi = distinct
                .iter()
                .position(|&x| x >= n)
                .unwrap_or(distinct.len() - 1);
            let lo = if distinct[hi] == n {
                hi
            } else {
                hi.saturating_sub(1)
            };
            let (x0, x1) = (distinct[lo], distinct[hi]);
            let (t0, t1) = (mean_at(x0), mean_at(x1));
            let linear = if x1 > x0 {
                t0 + (t1 - t0) * (n - x0) / (x1 - x0)
            } else {
                t0
            };
            let s = scale(points);
            let curve = quadratic(points).filter(|[a, b, c]| {
                points.iter().all(|&(x, t)| {
                    let y = a + b * (x / s) + c * (x / s) * (x / s);
                    ((y - t) / t).abs() <= FIT_TOLERANCE
                })
            });
            let value = match curve {
                Some([a, b, c]) => a + b * (n / s) + c * (n / s) * (n / s),
                None => linear,
            };
            Some(value.clamp(t0.min(t1), t0.max(t1)))
        }
    }
}

/// Token counts are divided by the largest one so that the normal equations stay well conditioned.
fn scale(points: &[(f64, f64)]) -> f64 {
    points.iter().map(|p| p.0).fold(1.0, f64::max)
}

/// Coefficients `[a, b, c]` of the weighted least-squares quadratic in scaled tokens.
fn quadratic(points: &[(f64, f64)]) -> Option<[f64; 3]> {
    let s = scale(points);
    let mut m = [[0.0f64; 4]; 3];
    for &(n, t) in points {
        let x = n / s;
        let w = 1.0 / (t * t);
        let basis = [1.0, x, x * x];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] += w * basis[i] * basis[j];
            }
            m[i][3] += w * basis[i] * t;
        }
    }
    solve3(m)
}

/// Gaussian elimination with partial pivoting on an augmented 3x4 matrix.
fn solve3(mut m: [[f64; 4]; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let pivot = (col..3).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() < 1e-12 {
            return None;
        }
        m.swap(col, pivot);
        let pivot_row = m[col];
        for (row, r) in m.iter_mut().enumerate() {
            if row != col {
                let f = r[col] / pivot_row[col];
                for (x, p) in r.iter_mut().zip(pivot_row).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    let x = [m[0][3] / m[0][0], m[1][3] / m[1][1], m[2][3] / m[2][2]];
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quadratic_data_is_reproduced_exactly() {
        let f = |n: f64| 3.0 + 0.01 * n + 2e-6 * n * n;
        let pts: Vec<(f64, f64)> = [256.0, 1024.0, 4096.0, 16384.0]
            .iter()
            .map(|&n| (n, f(n)))
            .collect();
        for n in [300.0, 2304.0, 3072.0, 9000.0] {
            let got = interpolate(&pts, n).unwrap();
            assert!(
                (got / f(n) - 1.0).abs() < 1e-9,
                "n={n}: expected {}, got {got}",
                f(n)
            );
        }
    }

    #[test]
    fn two_points_interpolate_linearly_and_one_point_is_returned() {
        let pts = [(100.0, 10.0), (300.0, 30.0), (300.0, 50.0)];
        assert_eq!(
            interpolate(&pts, 200.0),
            Some(25.0),
            "mean of 30 and 50 at 300 tokens is 40"
        );
        assert_eq!(interpolate(&[(100.0, 7.0)], 100.0), Some(7.0));
        assert_eq!(interpolate(&[], 100.0), None);
    }

    #[test]
    fn a_curve_that_does_not_fit_the_rows_gives_way_to_the_neighbours() {
        // 256-1024 px at 100 ms, 1280 and 2048 px at 100 s: no quadratic fits that step, and a
        // 1296 px request (6,561 tokens) lies between two 100 s rows.
        let pts = [
            (256.0, 100.0),
            (1024.0, 100.0),
            (4096.0, 100.0),
            (6400.0, 100_000.0),
            (16384.0, 100_000.0),
        ];
        assert_eq!(interpolate(&pts, 6561.0), Some(100_000.0));
        // Halfway between 1024 and 4096 tokens: between their times, here exactly 100 ms.
        assert_eq!(interpolate(&pts, 2560.0), Some(100.0));
        // Halfway up the step: linear between the neighbours.
        let mid = interpolate(&pts, 5248.0).unwrap();
        assert!((mid - 50_050.0).abs() < 1e-6, "{mid}");
    }

    #[test]
    fn relative_weights_favour_small_times() {
        // Noisy large point: the fit should stay close (relatively) on the small points.
        let pts = [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0), (4.0, 4.4)];
        let got = interpolate(&pts, 1.0).unwrap();
        assert!((got - 1.0).abs() < 0.05, "got {got}");
    }
}
