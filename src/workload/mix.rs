//! Resolution mixes: which image sizes the requests ask for.
//!
//! The resolution decides almost everything about a request's cost (attention is quadratic
//! in tokens, so a 2048 px image is ~64x the tokens and far more than 64x the work of a
//! 256 px one), so the mix is the second knob of every experiment after the arrival rate.
//! The paper uses two mixes over 256/512/1024/2048 px: Uniform (75 of each of 300 requests)
//! and Skewed (`p_i ∝ exp(alpha * L_i / L_max)`, alpha = 1, L = image tokens), plus
//! homogeneous runs with one resolution. Custom weights cover anything else, video clips
//! beside images included (`custom:1024=90%,video:720p:81=10%`): a mix entry is any
//! resolution [`Resolution::from_str`](std::str::FromStr) reads.
//!
//! Sampling is stratified by default: the paper's "equal numbers" Uniform mix is exactly 75
//! of each, not 300 independent draws, and stratifying removes a source of run-to-run noise
//! that has nothing to do with the scheduler.

use std::fmt;

use rand::{Rng, RngExt};

use crate::workload::Resolution;

/// How resolutions are drawn for `n` requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Sampling {
    /// Exactly round(n * p_i) requests of each resolution (largest-remainder rounding), in a
    /// seeded random order: Uniform with 300 requests gives 75 of each, as in the paper.
    #[default]
    Stratified,
    /// Each request independently.
    Iid,
}

/// A distribution over resolutions.
#[derive(Clone, Debug, PartialEq)]
pub enum Mix {
    /// Equal weight on each resolution.
    Uniform(Vec<Resolution>),
    /// The paper's Skewed mix: p_i proportional to exp(alpha * L_i / L_max), L = image tokens.
    Skewed {
        alpha: f64,
        resolutions: Vec<Resolution>,
    },
    /// One resolution only.
    Homogeneous(Resolution),
    /// Explicit (resolution, weight) pairs; weights need not sum to one.
    Custom(Vec<(Resolution, f64)>),
}

/// The paper's four resolutions: 256, 512, 1024 and 2048 px squares.
pub fn paper_resolutions() -> Vec<Resolution> {
    [256, 512, 1024, 2048]
        .into_iter()
        .map(Resolution::square)
        .collect()
}

/// Why a list of resolutions cannot form a mix (empty, an invalid size, a repeat), if it can't.
/// Repeats are refused because they would silently double a resolution's weight.
fn check_resolutions<'a>(rs: impl IntoIterator<Item = &'a Resolution>) -> Result<(), String> {
    let mut seen: Vec<Resolution> = Vec::new();
    for &r in rs {
        r.validate()?;
        if seen.contains(&r) {
            return Err(format!(
                "resolution {r} is listed twice in the mix; expected each resolution once"
            ));
        }
        seen.push(r);
    }
    if seen.is_empty() {
        return Err("the mix has no resolutions; expected at least one".to_string());
    }
    Ok(())
}

impl Mix {
    /// The paper's Skewed mix: alpha = 1 over [`paper_resolutions`].
    pub fn paper_skewed() -> Mix {
        Mix::Skewed {
            alpha: 1.0,
            resolutions: paper_resolutions(),
        }
    }

    /// Why the mix is unusable (no resolutions, negative or all-zero weights, NaN alpha...), if it is.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Mix::Uniform(rs) => check_resolutions(rs),
            Mix::Skewed { alpha, resolutions } => {
                if !alpha.is_finite() {
                    return Err(format!(
                        "skew alpha must be a finite number (the paper uses 1.0), got {alpha}",
                        alpha = crate::error::show_number(*alpha)
                    ));
                }
                check_resolutions(resolutions)
            }
            Mix::Homogeneous(r) => r.validate(),
            Mix::Custom(pairs) => {
                check_resolutions(pairs.iter().map(|(r, _)| r))?;
                for (r, w) in pairs {
                    if !w.is_finite() || *w < 0.0 {
                        return Err(format!(
                            "weight of {r} must be a finite number >= 0, got {w}",
                            w = crate::error::show_number(*w)
                        ));
                    }
                }
                let total: f64 = pairs.iter().map(|(_, w)| w).sum();
                if !(total > 0.0 && total.is_finite()) {
                    return Err(format!(
                        "mix weights must have a positive, finite sum, got {total}; expected at least one weight > 0",
                        total = crate::error::show_number(total)
                    ));
                }
                Ok(())
            }
        }
    }

    /// The resolutions of the mix, in the order they were given.
    pub fn resolutions(&self) -> Vec<Resolution> {
        match self {
            Mix::Uniform(rs)
            | Mix::Skewed {
                resolutions: rs, ..
            } => rs.clone(),
            Mix::Homogeneous(r) => vec![*r],
            Mix::Custom(pairs) => pairs.iter().map(|(r, _)| *r).collect(),
        }
    }

    /// Normalised probabilities, in the order the resolutions were given. Meaningful only for a
    /// mix that passes [`Mix::validate`].
    pub fn probabilities(&self) -> Vec<(Resolution, f64)> {
        let weights: Vec<(Resolution, f64)> = match self {
            Mix::Uniform(rs) => rs.iter().map(|&r| (r, 1.0)).collect(),
            Mix::Skewed { alpha, resolutions } => {
                let l_max = resolutions
                    .iter()
                    .map(|r| r.tokens())
                    .max()
                    .unwrap_or(1)
                    .max(1) as f64;
                let exps: Vec<f64> = resolutions
                    .iter()
                    .map(|r| alpha * r.tokens() as f64 / l_max)
                    .collect();
                // Subtracting the largest exponent keeps exp() finite for any finite alpha
                // without changing the normalised result.
                let top = exps.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                resolutions
                    .iter()
                    .zip(exps)
                    .map(|(&r, e)| (r, (e - top).exp()))
                    .collect()
            }
            Mix::Homogeneous(r) => vec![(*r, 1.0)],
            Mix::Custom(pairs) => pairs.clone(),
        };
        let total: f64 = weights.iter().map(|(_, w)| w).sum();
        weights.into_iter().map(|(r, w)| (r, w / total)).collect()
    }

    /// How many of `n` requests get each resolution under stratified sampling: floor(n * p_i)
    /// each, then the leftover requests go one at a time to the largest remainders (ties to
    /// the resolution listed first). The counts always sum to `n`.
    pub fn stratified_counts(&self, n: usize) -> Vec<(Resolution, usize)> {
        let probs = self.probabilities();
        let mut counts: Vec<(Resolution, usize)> = Vec::with_capacity(probs.len());
        let mut remainders: Vec<(usize, f64)> = Vec::with_capacity(probs.len());
        for (i, &(r, p)) in probs.iter().enumerate() {
            let exact = n as f64 * p;
            let base = if exact.is_finite() && exact > 0.0 {
                exact.floor() as usize
            } else {
                0
            };
            counts.push((r, base));
            remainders.push((i, exact - base as f64));
        }
        // Floating-point noise could make the floors overshoot n by one; take it back from
        // the smallest remainders so the total is exact.
        let mut total: usize = counts.iter().map(|c| c.1).sum();
        remainders.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for &(i, _) in remainders.iter().rev() {
            if total <= n {
                break;
            }
            if counts[i].1 > 0 {
                counts[i].1 -= 1;
                total -= 1;
            }
        }
        let positive: Vec<usize> = remainders
            .iter()
            .filter(|(i, _)| probs[*i].1 > 0.0)
            .map(|(i, _)| *i)
            .collect();
        let mut k = 0;
        while total < n && !positive.is_empty() {
            counts[positive[k % positive.len()]].1 += 1;
            total += 1;
            k += 1;
        }
        counts
    }

    /// Resolutions for `n` requests.
    pub fn sample<R: Rng + ?Sized>(
        &self,
        n: usize,
        sampling: Sampling,
        rng: &mut R,
    ) -> Vec<Resolution> {
        if n == 0 || self.validate().is_err() {
            return Vec::new();
        }
        match sampling {
            Sampling::Stratified => {
                let mut out: Vec<Resolution> = Vec::with_capacity(n);
                for (r, c) in self.stratified_counts(n) {
                    out.extend(std::iter::repeat_n(r, c));
                }
                fisher_yates(&mut out, rng);
                out
            }
            Sampling::Iid => {
                let probs = self.probabilities();
                let fallback = probs.iter().rev().find(|(_, p)| *p > 0.0).map(|(r, _)| *r);
                (0..n)
                    .filter_map(|_| {
                        let u: f64 = rng.random();
                        let mut cum = 0.0;
                        probs
                            .iter()
                            .find(|(_, p)| {
                                cum += p;
                                u < cum
                            })
                            .map(|(r, _)| *r)
                            .or(fallback)
                    })
                    .collect()
            }
        }
    }
}

/// In-place Fisher–Yates shuffle (Durstenfeld's form): for i from the end, swap i with a
/// uniform j in 0..=i. Written out rather than taken from `rand::seq` so that the order is
/// defined here and not by a library's implementation choice.
fn fisher_yates<T, R: Rng + ?Sized>(v: &mut [T], rng: &mut R) {
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
}

/// Parses the CLI's `--mix` value.
///
/// Accepted forms (keywords are case-insensitive; resolutions are `WIDTHxHEIGHT` or one
/// number for a square):
/// - `uniform` — the paper's four resolutions, equal weight; `uniform:256,1024x768` for others;
/// - `skewed` — the paper's Skewed mix (alpha 1); `skewed:1.5` for another alpha;
///   `skewed:1.5:256,512,1024` for other resolutions;
/// - `homogeneous:1024`, or just `1024` / `1024x1024` — one resolution;
/// - `custom:256=1,1024=3` — explicit weights; `custom:512=45%,1024=45%,2048=10%` — every
///   entry a percentage, summing to 100 (within rounding, [`PERCENT_SUM_SLACK`]).
///
/// Wherever a resolution goes, a video clip may too: `video:720p:81` (81 frames of 1280x720;
/// `480p` is 832x480, or `video:WIDTHxHEIGHT:FRAMES`) or `1280x720x81f`, as in
/// `custom:1024=90%,video:720p:81=10%`; alone, `video:720p:81` is a homogeneous mix.
pub fn parse_mix(s: &str) -> Result<Mix, String> {
    const FORMS: &str = "expected `uniform`, `uniform:RES,RES,...`, `skewed`, `skewed:ALPHA`, \
                         `skewed:ALPHA:RES,RES,...`, `homogeneous:RES`, `RES` (e.g. 1024x1024) \
                         or `custom:RES=WEIGHT,...` (e.g. custom:256=1,1024=3, or custom:256=25%,1024=75%); \
                         a RES may be a video, `video:720p:81` or `1280x720x81f`";
    let s = s.trim();
    let (kind, rest) = match s.split_once(':') {
        Some((k, r)) => (k.trim().to_ascii_lowercase(), Some(r.trim())),
        None => (s.to_ascii_lowercase(), None),
    };
    let res_list = |list: &str| -> Result<Vec<Resolution>, String> {
        list.split(',').map(|p| p.parse::<Resolution>()).collect()
    };
    let mix = match (kind.as_str(), rest) {
        ("uniform", None) => Mix::Uniform(paper_resolutions()),
        ("uniform", Some(list)) => Mix::Uniform(res_list(list)?),
        ("skewed", None) => Mix::paper_skewed(),
        ("skewed", Some(r)) => {
            let (a, list) = match r.split_once(':') {
                Some((a, list)) => (a.trim(), Some(list)),
                None => (r, None),
            };
            let alpha: f64 = a.parse().map_err(|_| {
                format!("`{a}` in mix `{s}` is not a number; expected a skew alpha such as 1.5")
            })?;
            let resolutions = match list {
                Some(list) => res_list(list)?,
                None => paper_resolutions(),
            };
            Mix::Skewed { alpha, resolutions }
        }
        ("homogeneous", Some(r)) => Mix::Homogeneous(r.parse()?),
        ("video", Some(_)) => Mix::Homogeneous(s.parse()?),
        ("custom", Some(list)) => Mix::Custom(custom_pairs(s, list)?),
        (_, None) if s.parse::<Resolution>().is_ok() => Mix::Homogeneous(s.parse()?),
        _ => return Err(format!("unknown mix `{s}`; {FORMS}")),
    };
    mix.validate().map_err(|e| format!("mix `{s}`: {e}"))?;
    Ok(mix)
}

/// How far the percentages of a `custom:` mix may sum from 100 (rounding, as in 33.3% x 3).
pub const PERCENT_SUM_SLACK: f64 = 0.5;

/// The pairs of `custom:RES=WEIGHT,...` (`list`, within the mix `s`): bare weights (relative,
/// any positive sum) or percentages (`512=45%`: every entry a percentage, summing to 100
/// within [`PERCENT_SUM_SLACK`]); a mix of the two is refused, since what `1024=3` would
/// mean beside `512=45%` is a guess.
fn custom_pairs(s: &str, list: &str) -> Result<Vec<(Resolution, f64)>, String> {
    let mut percents = 0usize;
    let mut pairs = Vec::new();
    for item in list.split(',') {
        let (r, w) = item.split_once('=').ok_or_else(|| {
            format!(
                "`{}` in mix `{s}` is not RES=WEIGHT or RES=PERCENT% (e.g. 1024=3 or 1024=45%)",
                item.trim()
            )
        })?;
        let w = w.trim();
        let (number, percent) = match w.strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (w, false),
        };
        let weight: f64 = number.parse().map_err(|_| {
            format!("weight `{w}` in mix `{s}` is not a number; expected e.g. 1024=3 or 1024=45%")
        })?;
        if percent && !(weight.is_finite() && (0.0..=100.0).contains(&weight)) {
            return Err(format!(
                "`{w}` in mix `{s}` is not a percentage from 0% to 100%"
            ));
        }
        percents += usize::from(percent);
        pairs.push((r.parse::<Resolution>()?, weight));
    }
    if percents > 0 && percents < pairs.len() {
        return Err(format!(
            "mix `{s}` mixes percentages and bare weights; give every entry as a percentage (512=45%,2048=55%) or every entry as a weight (512=9,2048=11)"
        ));
    }
    if percents > 0 {
        let total: f64 = pairs.iter().map(|(_, w)| w).sum();
        if (total - 100.0).abs() > PERCENT_SUM_SLACK {
            return Err(format!(
                "the percentages of mix `{s}` sum to {}%, not 100%; fix them, or give bare weights (relative, any sum)",
                crate::error::show_number(total)
            ));
        }
    }
    Ok(pairs)
}

/// The `--mix` form of the mix: `parse_mix(&mix.to_string())` gives the mix back.
impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |rs: &[Resolution]| {
            rs.iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Mix::Uniform(rs) if *rs == paper_resolutions() => write!(f, "uniform"),
            Mix::Uniform(rs) => write!(f, "uniform:{}", list(rs)),
            Mix::Skewed { alpha, resolutions } if *resolutions == paper_resolutions() => {
                write!(f, "skewed:{alpha}")
            }
            Mix::Skewed { alpha, resolutions } => write!(f, "skewed:{alpha}:{}", list(resolutions)),
            Mix::Homogeneous(r) => write!(f, "homogeneous:{r}"),
            Mix::Custom(pairs) => {
                let items: Vec<String> = pairs.iter().map(|(r, w)| format!("{r}={w}")).collect();
                write!(f, "custom:{}", items.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_pcg::Pcg64;

    fn rng() -> Pcg64 {
        Pcg64::seed_from_u64(11)
    }

    fn count(v: &[Resolution], r: Resolution) -> usize {
        v.iter().filter(|&&x| x == r).count()
    }

    #[test]
    fn custom_mixes_take_percentages_summing_to_100_but_not_mixed_with_weights() {
        let m = parse_mix("custom:512=45%,1024=45%,2048=10%").unwrap();
        let p = m.probabilities();
        assert_eq!(p[0].0, Resolution::square(512));
        assert!(
            (p[0].1 - 0.45).abs() < 1e-12 && (p[2].1 - 0.10).abs() < 1e-12,
            "{p:?}"
        );
        // Rounded thirds are accepted; a sum far from 100 is not.
        assert!(parse_mix("custom:256=33.3%,512=33.3%,1024=33.3%").is_ok());
        let e = parse_mix("custom:512=45%,1024=45%").unwrap_err();
        assert!(e.contains("sum to 90%, not 100%"), "{e}");
        let e = parse_mix("custom:512=45%,1024=55").unwrap_err();
        assert!(e.contains("mixes percentages and bare weights"), "{e}");
        let e = parse_mix("custom:512=150%,1024=-50%").unwrap_err();
        assert!(e.contains("not a percentage from 0% to 100%"), "{e}");
        let e = parse_mix("custom:512=x%").unwrap_err();
        assert!(e.contains("not a number"), "{e}");
        // Bare weights work as before, and the mix prints back to a form that parses.
        assert_eq!(parse_mix(&m.to_string()).unwrap().probabilities(), p);
    }

    #[test]
    fn video_entries_weigh_like_images() {
        let clip = Resolution::video(1280, 720, 81);
        assert_eq!(parse_mix("video:720p:81").unwrap(), Mix::Homogeneous(clip));
        assert_eq!(parse_mix("1280x720x81f").unwrap(), Mix::Homogeneous(clip));
        let m = parse_mix("custom:1024=90%,video:720p:81=10%").unwrap();
        assert_eq!(
            m,
            Mix::Custom(vec![(Resolution::square(1024), 90.0), (clip, 10.0)])
        );
        assert_eq!(m.to_string(), "custom:1024x1024=90,1280x720x81f=10");
        assert_eq!(
            parse_mix(&m.to_string()).unwrap().probabilities(),
            m.probabilities()
        );
        // 20 requests: 18 images and 2 clips, exactly (stratified).
        let v = m.sample(20, Sampling::Stratified, &mut rng());
        assert_eq!(count(&v, clip), 2);
        let u = parse_mix("uniform:512,video:480p:81").unwrap();
        assert_eq!(
            u.resolutions(),
            vec![Resolution::square(512), Resolution::video(832, 480, 81)]
        );
        // Skewed weighs by tokens, a clip's included: 75,600 tokens against 4,096.
        let p = parse_mix("skewed:1:1024,video:720p:81")
            .unwrap()
            .probabilities();
        let want = 1.0 / (1.0 + (4096.0_f64 / 75_600.0 - 1.0).exp());
        assert!((p[1].1 - want).abs() < 1e-12, "{p:?}");
        // The same clip twice (however written) is refused, and a bad frame count says why.
        assert!(
            parse_mix("custom:video:720p:81=1,1280x720x81f=2")
                .unwrap_err()
                .contains("twice")
        );
        assert!(parse_mix("video:720p:80").unwrap_err().contains("4k + 1"));
        assert!(
            parse_mix("video:4k:81")
                .unwrap_err()
                .contains("not a video size")
        );
    }

    #[test]
    fn skewed_alpha_one_matches_the_paper() {
        let p = Mix::paper_skewed().probabilities();
        let rounded: Vec<f64> = p
            .iter()
            .map(|(_, p)| (p * 1000.0).round() / 1000.0)
            .collect();
        assert_eq!(rounded, vec![0.167, 0.175, 0.211, 0.447]);
        assert!((p.iter().map(|x| x.1).sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn skewed_survives_huge_alpha() {
        let p = Mix::Skewed {
            alpha: 5000.0,
            resolutions: paper_resolutions(),
        }
        .probabilities();
        assert!(p.iter().all(|x| x.1.is_finite()));
        assert_eq!(p[3].1, 1.0);
        let q = Mix::Skewed {
            alpha: -5000.0,
            resolutions: paper_resolutions(),
        }
        .probabilities();
        assert_eq!(q[0].1, 1.0);
    }

    #[test]
    fn stratified_uniform_300_is_exactly_75_each_in_shuffled_order() {
        let v = Mix::Uniform(paper_resolutions()).sample(300, Sampling::Stratified, &mut rng());
        assert_eq!(v.len(), 300);
        for r in paper_resolutions() {
            assert_eq!(count(&v, r), 75);
        }
        // Shuffled: the first 75 are not all the same resolution.
        assert!(v[..75].iter().any(|&r| r != v[0]));
    }

    #[test]
    fn stratified_counts_use_largest_remainder_with_ties_by_order() {
        // 300 * (0.167, 0.175, 0.211, 0.447) = 50.2, 52.5, 63.4, 134.0 (approximately).
        let c: Vec<usize> = Mix::paper_skewed()
            .stratified_counts(300)
            .into_iter()
            .map(|c| c.1)
            .collect();
        assert_eq!(c.iter().sum::<usize>(), 300);
        let exact: Vec<f64> = Mix::paper_skewed()
            .probabilities()
            .iter()
            .map(|p| 300.0 * p.1)
            .collect();
        for (c, e) in c.iter().zip(&exact) {
            assert!((*c as f64 - e).abs() < 1.0, "{c} vs {e}");
        }
        // Three equal weights, 4 requests: remainders tie, the first listed gets the extra one.
        let m = Mix::Uniform(vec![
            Resolution::square(256),
            Resolution::square(512),
            Resolution::square(1024),
        ]);
        let c: Vec<usize> = m.stratified_counts(4).into_iter().map(|c| c.1).collect();
        assert_eq!(c, vec![2, 1, 1]);
        let c: Vec<usize> = m.stratified_counts(5).into_iter().map(|c| c.1).collect();
        assert_eq!(c, vec![2, 2, 1]);
    }

    #[test]
    fn zero_weight_resolutions_are_never_drawn() {
        let m = Mix::Custom(vec![
            (Resolution::square(256), 0.0),
            (Resolution::square(512), 2.0),
        ]);
        for sampling in [Sampling::Stratified, Sampling::Iid] {
            let v = m.sample(1000, sampling, &mut rng());
            assert_eq!(count(&v, Resolution::square(512)), 1000);
        }
    }

    #[test]
    fn iid_frequencies_follow_the_probabilities() {
        let m = Mix::Custom(vec![
            (Resolution::square(256), 1.0),
            (Resolution::square(1024), 3.0),
        ]);
        let v = m.sample(40_000, Sampling::Iid, &mut rng());
        let frac = count(&v, Resolution::square(1024)) as f64 / v.len() as f64;
        assert!((frac - 0.75).abs() < 0.01, "{frac}");
    }

    #[test]
    fn sampling_is_deterministic_for_a_seed() {
        let m = Mix::paper_skewed();
        for s in [Sampling::Stratified, Sampling::Iid] {
            assert_eq!(m.sample(50, s, &mut rng()), m.sample(50, s, &mut rng()));
        }
    }

    #[test]
    fn validate_rejects_bad_mixes() {
        let r = Resolution::square(256);
        let bad = [
            Mix::Uniform(vec![]),
            Mix::Uniform(vec![r, r]),
            Mix::Uniform(vec![Resolution::square(100)]),
            Mix::Skewed {
                alpha: f64::NAN,
                resolutions: paper_resolutions(),
            },
            Mix::Homogeneous(Resolution::new(0, 16)),
            Mix::Custom(vec![(r, -1.0)]),
            Mix::Custom(vec![(r, 0.0)]),
            Mix::Custom(vec![(r, f64::INFINITY)]),
        ];
        for m in bad {
            assert!(m.validate().is_err(), "{m:?}");
            assert!(m.sample(3, Sampling::Iid, &mut rng()).is_empty());
        }
    }

    #[test]
    fn parses_every_cli_form() {
        let p = |s: &str| parse_mix(s).unwrap();
        assert_eq!(p("uniform"), Mix::Uniform(paper_resolutions()));
        assert_eq!(p("Uniform"), Mix::Uniform(paper_resolutions()));
        assert_eq!(
            p("uniform:256,1024x768"),
            Mix::Uniform(vec![Resolution::square(256), Resolution::new(1024, 768)])
        );
        assert_eq!(p("skewed"), Mix::paper_skewed());
        assert_eq!(
            p("skewed:1.5"),
            Mix::Skewed {
                alpha: 1.5,
                resolutions: paper_resolutions()
            }
        );
        assert_eq!(
            p("skewed:2:256,512"),
            Mix::Skewed {
                alpha: 2.0,
                resolutions: vec![Resolution::square(256), Resolution::square(512)]
            }
        );
        assert_eq!(
            p("homogeneous:1024"),
            Mix::Homogeneous(Resolution::square(1024))
        );
        assert_eq!(p("1024x1024"), Mix::Homogeneous(Resolution::square(1024)));
        assert_eq!(p("512"), Mix::Homogeneous(Resolution::square(512)));
        assert_eq!(
            p("custom:256=1, 1024=3"),
            Mix::Custom(vec![
                (Resolution::square(256), 1.0),
                (Resolution::square(1024), 3.0)
            ])
        );
    }

    #[test]
    fn parse_errors_say_what_is_expected() {
        assert!(
            parse_mix("zipf")
                .unwrap_err()
                .contains("expected `uniform`")
        );
        assert!(parse_mix("skewed:abc").unwrap_err().contains("skew alpha"));
        assert!(parse_mix("custom:256").unwrap_err().contains("RES=WEIGHT"));
        assert!(
            parse_mix("custom:256=x")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(parse_mix("custom:256=-1").unwrap_err().contains(">= 0"));
        assert!(
            parse_mix("homogeneous:1000")
                .unwrap_err()
                .contains("multiple of 16")
        );
        assert!(parse_mix("uniform:256,256").unwrap_err().contains("twice"));
    }

    #[test]
    fn display_round_trips_through_parse() {
        for s in [
            "uniform",
            "uniform:256,1024x768",
            "skewed",
            "skewed:1.5",
            "skewed:2:256,512",
            "1024",
            "custom:256=1,1024=3",
        ] {
            let m = parse_mix(s).unwrap();
            assert_eq!(parse_mix(&m.to_string()).unwrap(), m, "{s} -> {m}");
        }
    }
}
