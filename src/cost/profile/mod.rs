//! Profile tables: measured or generated per-step times read from CSV.
//!
//! The paper's scheduler plans from a table of profiled step times per (resolution, SP degree),
//! not from a formula; this is that table, for one (model, GPU) pair, keyed by resolution,
//! degree, batch size and link.
//!
//! Lookup of `step_time(res, degree, batch, link)`:
//! 1. The rows considered are those of `(degree, batch)` on `link`; if there are none, those on
//!    the other link (a one-link table answers for both; an A40 table's PCIe-only SP 4 rows answer
//!    an NVLink query). No rows for `(degree, batch)` at all is an error naming the gap.
//! 2. A row for exactly `res` gives its `step_ms`.
//! 3. Otherwise, if `res`'s image-token count `N` lies within the rows' token range, the time is
//!    interpolated in `N`: a weighted least-squares fit `t = a + b*N + c*N^2` (weights `1/t^2`)
//!    with three or more distinct token counts, linear interpolation with two. The result must
//!    be positive.
//! 4. Outside the range the lookup fails: extrapolating a profiled curve is not justified.
//!
//! A profile's rows are images (width x height): a video resolution (more than one frame) is
//! refused, never interpolated from an image model's curve.
//!
//! The CSV format (columns by header name, in any order) is documented in `profiles/README.md`;
//! `parse.rs` reads it and `write.rs` writes it, for every part of the crate that makes a profile.

mod fit;
mod parse;
mod row;
mod write;

use std::collections::HashMap;
use std::path::Path;

use self::row::Key;
pub use self::row::ProfileRow;
pub use self::write::{CsvRow, PROFILE_HEADER, Precision, ProfileCsv, profile_csv};
use crate::cluster::Link;
use crate::cost::CostModel;
use crate::error::{Error, Result};
use crate::time::Nanos;
use crate::workload::Resolution;

/// The built-in profiles, embedded at compile time: `(name, CSV text)`.
const BUILTIN: [(&str, &str); 2] = [
    (
        "h100-flux1-dev",
        include_str!("../../../profiles/h100-flux1-dev.csv"),
    ),
    (
        "a40-sd3-medium",
        include_str!("../../../profiles/a40-sd3-medium.csv"),
    ),
];

/// A per-step time table for one (model, GPU) pair.
#[derive(Clone, Debug)]
pub struct ProfileTable {
    model: String,
    gpu: String,
    /// Names the table in errors: a file path or `<builtin NAME>`.
    source: String,
    description: String,
    rows: Vec<ProfileRow>,
    index: HashMap<Key, usize>,
}

/// Refuses rows where a larger image, or a larger batch, is faster than a smaller one at the
/// same degree and link (by more than 5%, which leaves room for measurement noise): such a
/// table is a typo or a broken measurement, and would silently distort every schedule.
fn check_monotone(rows: &[ProfileRow], source: &str) -> Result<()> {
    let tolerance = 0.95;
    for a in rows {
        for b in rows {
            if a.degree != b.degree || a.link != b.link {
                continue;
            }
            let bigger_image = a.batch == b.batch && b.res.tokens() > a.res.tokens();
            let bigger_batch = a.res == b.res && b.batch > a.batch;
            if (bigger_image || bigger_batch) && b.step_ms < a.step_ms * tolerance {
                let what = if bigger_image {
                    "a larger image"
                } else {
                    "a larger batch"
                };
                return Err(Error::Input(
                    crate::error::InputError::new(
                        source,
                        format!(
                            "{} at SP {}, batch {} takes {} ms, less than {} at SP {}, batch {} (line {}) at {} ms: {what} cannot be faster",
                            b.res, b.degree, b.batch, b.step_ms, a.res, a.degree, a.batch, a.line, a.step_ms
                        ),
                    )
                    .line(b.line)
                    .field("step_ms")
                    .hint("check these rows; step times must not fall as images or batches grow"),
                ));
            }
        }
    }
    Ok(())
}

impl ProfileTable {
    /// Parses CSV text (`model,gpu,width,height,sp_degree,batch,step_ms[,std_ms][,source][,link]`).
    ///
    /// `source` names the text in errors and in [`CostModel::describe`]. Lines starting with `#`
    /// are comments.
    pub fn parse(text: &str, source: &str) -> Result<ProfileTable> {
        let parsed = parse::parse(text, source)?;
        check_monotone(&parsed.rows, source)?;
        let index = parsed
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (key(r), i))
            .collect();
        Ok(ProfileTable {
            model: parsed.model,
            gpu: parsed.gpu,
            source: source.to_string(),
            description: format!("profile {source}"),
            rows: parsed.rows,
            index,
        })
    }

    pub fn load(path: &Path) -> Result<ProfileTable> {
        let text = crate::error::read_text(path, crate::error::limits::SMALL_BYTES, "profile")?;
        ProfileTable::parse(&text, &path.display().to_string())
    }

    /// A profile shipped inside the binary, by name (`h100-flux1-dev`, `a40-sd3-medium`).
    pub fn builtin(name: &str) -> Option<ProfileTable> {
        let (name, text) = BUILTIN.iter().find(|(n, _)| *n == name)?;
        // The embedded files are checked by the tests; a parse failure cannot reach users.
        let mut table = ProfileTable::parse(text, &format!("<builtin {name}>")).ok()?;
        table.description = format!("profile {name} (builtin)");
        Some(table)
    }

    /// The CSV text of a built-in profile, by name: what a sweep's scenario digest hashes,
    /// so that results made with an older embedded table are not taken for current ones.
    pub fn builtin_text(name: &str) -> Option<&'static str> {
        BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    /// Names of the built-in profiles.
    pub fn builtin_names() -> &'static [&'static str] {
        &["h100-flux1-dev", "a40-sd3-medium"]
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn gpu(&self) -> &str {
        &self.gpu
    }

    /// What errors call the table: its file path, or `<builtin NAME>`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The rows in file order.
    pub fn rows(&self) -> &[ProfileRow] {
        &self.rows
    }

    /// The table as CSV with every column, rows in file order (comments are not kept).
    pub fn to_csv(&self) -> String {
        let rows = self.rows.iter().map(|r| CsvRow {
            res: r.res,
            degree: r.degree,
            batch: r.batch,
            step_ms: r.step_ms,
            std_ms: r.std_ms,
            source: r.source.as_deref().unwrap_or(""),
            link: r.link,
        });
        profile_csv(&self.model, &self.gpu, Precision::Exact, &[], rows)
    }

    /// Step time in milliseconds by the lookup rules of the module header.
    pub fn step_ms(&self, res: Resolution, degree: u32, batch: u32, link: Link) -> Result<f64> {
        let what = || {
            format!(
                "{} on {}, {res} at SP {degree}, batch {batch}",
                self.model, self.gpu
            )
        };
        if let Err(e) = res.validate() {
            return Err(Error::Cost(format!("{}: {e}", self.description)));
        }
        if res.is_video() {
            return Err(Error::Cost(format!(
                "{} times images (width x height rows) and cannot time the {}-frame video {res}; cost video with a video model (analytic model `wan2.1-14b`)",
                self.description, res.frames
            )));
        }
        // Rows for (degree, batch) on the requested link, else on the other one.
        let other = if link == Link::NvLink {
            Link::Pcie
        } else {
            Link::NvLink
        };
        let candidates = [link, other].into_iter().map(|l| {
            let rows: Vec<&ProfileRow> = self
                .rows
                .iter()
                .filter(|r| r.degree == degree && r.batch == batch && r.link == l)
                .collect();
            (l, rows)
        });
        let Some((l, rows)) = candidates.into_iter().find(|(_, rows)| !rows.is_empty()) else {
            let degrees = self.distinct(|r| r.degree);
            let batches = self.distinct(|r| r.batch);
            return Err(Error::Cost(format!(
                "{} has no rows for SP degree {degree} at batch {batch} (it has degrees {degrees:?}, batches {batches:?}), so it cannot time {}; \
                 add rows for that degree and batch (tetriserve profile), or use the analytic model",
                self.description,
                what()
            )));
        };
        if let Some(&i) = self.index.get(&Key {
            res,
            degree,
            batch,
            link: l,
        }) {
            return Ok(self.rows[i].step_ms);
        }
        let n = res.tokens() as f64;
        let points: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| (r.res.tokens() as f64, r.step_ms))
            .collect();
        let lo = rows
            .iter()
            .map(|r| r.res)
            .min_by_key(|r| r.tokens())
            .unwrap_or(res);
        let hi = rows
            .iter()
            .map(|r| r.res)
            .max_by_key(|r| r.tokens())
            .unwrap_or(res);
        if n < lo.tokens() as f64 || n > hi.tokens() as f64 {
            return Err(Error::Cost(format!(
                "{} cannot time {}: {} image tokens lie outside the profiled {lo}..{hi} ({}..{} tokens), and extrapolating \
                 beyond the profiled range is not justified; add rows for {res} (tetriserve profile), or use the analytic model",
                self.description,
                what(),
                res.tokens(),
                lo.tokens(),
                hi.tokens()
            )));
        }
        match fit::interpolate(&points, n) {
            Some(t) if t.is_finite() && t > 0.0 => Ok(t),
            other => Err(Error::Cost(format!(
                "{}: interpolating {} over link {l} gives {} ms, not a positive time; add rows for {res}",
                self.description,
                what(),
                other.map_or("no value".into(), |t| t.to_string())
            ))),
        }
    }

    fn distinct(&self, f: impl Fn(&ProfileRow) -> u32) -> Vec<u32> {
        let mut v: Vec<u32> = self.rows.iter().map(f).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

fn key(r: &ProfileRow) -> Key {
    Key {
        res: r.res,
        degree: r.degree,
        batch: r.batch,
        link: r.link,
    }
}

impl CostModel for ProfileTable {
    fn step_time(&self, res: Resolution, degree: u32, batch: u32, link: Link) -> Result<Nanos> {
        let ms = self.step_ms(res, degree, batch, link)?;
        Nanos::try_from_secs(ms / 1e3)
            .filter(|&t| t > Nanos::ZERO)
            .ok_or_else(|| {
                Error::Cost(format!(
                    "{}: step time {ms} ms for {res} is out of range",
                    self.description
                ))
            })
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::analytic::{Analytic, shipped_profile_csv};
    use crate::error::InputError;

    const HEADER: &str = "model,gpu,width,height,sp_degree,batch,step_ms";

    fn h100() -> ProfileTable {
        ProfileTable::builtin("h100-flux1-dev").expect("builtin h100 profile parses")
    }

    fn a40() -> ProfileTable {
        ProfileTable::builtin("a40-sd3-medium").expect("builtin a40 profile parses")
    }

    fn ms(t: &ProfileTable, w: u32, h: u32, k: u32, b: u32, link: Link) -> f64 {
        t.step_ms(Resolution::new(w, h), k, b, link).unwrap()
    }

    /// Parses `body` under a minimal header and returns the input error it must produce.
    fn input_err(text: &str) -> InputError {
        match ProfileTable::parse(text, "t.csv") {
            Err(Error::Input(e)) => e,
            other => panic!("expected an input error, got {other:?}"),
        }
    }

    /// Checks that a malformed profile is refused naming `line`, `field` and a phrase of the message.
    fn check_err(text: &str, line: u64, field: Option<&str>, phrase: &str) {
        let e = input_err(text);
        assert_eq!(e.source, "t.csv");
        assert_eq!(e.line, Some(line), "line of: {e}");
        assert_eq!(e.field.as_deref(), field, "field of: {e}");
        assert!(
            e.to_string().contains(phrase),
            "expected `{phrase}` in: {e}"
        );
    }

    #[test]
    fn shipped_profiles_match_the_generator_byte_for_byte() {
        for (name, embedded) in BUILTIN {
            let generated = shipped_profile_csv(name)
                .expect("a shipped name")
                .expect("generates");
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("profiles")
                .join(format!("{name}.csv"));
            if std::env::var_os("TETRISERVE_BLESS").is_some() {
                std::fs::write(&path, &generated).unwrap();
                continue;
            }
            assert!(
                embedded == generated,
                "profiles/{name}.csv has drifted from the analytic model; regenerate it with \
                 `TETRISERVE_BLESS=1 cargo test shipped_profiles` and update profiles/README.md"
            );
        }
        assert_eq!(ProfileTable::builtin_names(), BUILTIN.map(|(n, _)| n));
    }

    #[test]
    fn builtins_describe_themselves() {
        let t = h100();
        assert_eq!((t.model(), t.gpu()), ("flux1-dev", "h100"));
        assert_eq!(t.describe(), "profile h100-flux1-dev (builtin)");
        assert_eq!(t.source(), "<builtin h100-flux1-dev>");
        assert_eq!(t.rows().len(), 4 * 4 * 3);
        assert!(
            t.rows()
                .iter()
                .all(|r| r.source.as_deref() == Some("analytic-estimate") && r.std_ms.is_none())
        );
        let a = a40();
        assert_eq!(
            (a.model(), a.gpu(), a.rows().len()),
            ("sd3-medium", "a40", 4 * 4 * 3)
        );
        assert!(ProfileTable::builtin("h100-sd3").is_none());
    }

    #[test]
    fn builtin_h100_profile_reproduces_the_rssp_degrees() {
        let t = h100();
        for ((px, base), want) in [(256, 1.5), (512, 2.0), (1024, 3.0), (2048, 5.0)]
            .into_iter()
            .zip([1, 1, 2, 8])
        {
            let chosen = [1, 2, 4, 8].into_iter().find(|&k| {
                28.0 * t
                    .step_time(Resolution::square(px), k, 1, Link::NvLink)
                    .unwrap()
                    .as_secs()
                    <= base
            });
            assert_eq!(chosen, Some(want), "{px} px");
        }
    }

    #[test]
    fn builtin_gpu_seconds_grow_with_degree() {
        for (t, degrees) in [(h100(), &[1u32, 2, 4, 8][..]), (a40(), &[1, 2, 4][..])] {
            for px in [256, 512, 1024, 2048] {
                for b in [1, 2, 4] {
                    let gpu_s: Vec<f64> = degrees
                        .iter()
                        .map(|&k| f64::from(k) * ms(&t, px, px, k, b, Link::Pcie))
                        .collect();
                    assert!(
                        gpu_s.windows(2).all(|w| w[1] > w[0]),
                        "{} {px} px b{b}: {gpu_s:?}",
                        t.describe()
                    );
                }
            }
        }
    }

    #[test]
    fn exact_rows_and_link_fallback() {
        let a = a40();
        let row = |k, l| {
            a.rows()
                .iter()
                .find(|r| {
                    r.res == Resolution::square(1024)
                        && r.degree == k
                        && r.batch == 1
                        && r.link == l
                })
                .unwrap()
                .step_ms
        };
        assert_eq!(ms(&a, 1024, 1024, 2, 1, Link::Pcie), row(2, Link::Pcie));
        assert_eq!(ms(&a, 1024, 1024, 2, 1, Link::NvLink), row(2, Link::NvLink));
        assert!(row(2, Link::Pcie) > row(2, Link::NvLink));
        // SP 4 has only PCIe rows; SP 1 only NVLink rows: either link gets them.
        assert_eq!(ms(&a, 1024, 1024, 4, 1, Link::NvLink), row(4, Link::Pcie));
        assert_eq!(ms(&a, 1024, 1024, 1, 1, Link::Pcie), row(1, Link::NvLink));
        let t = a
            .step_time(Resolution::square(1024), 4, 1, Link::Pcie)
            .unwrap();
        assert_eq!(t, Nanos::from_millis(row(4, Link::Pcie)));
    }

    #[test]
    fn unlisted_resolutions_interpolate_between_neighbours() {
        let flux = Analytic::preset("flux1-dev", "h100").unwrap();
        for t in [h100(), a40()] {
            for r in t
                .rows()
                .iter()
                .filter(|r| r.res == Resolution::square(1024))
            {
                let (k, b, l) = (r.degree, r.batch, r.link);
                let lo = ms(&t, 512, 512, k, b, l);
                let hi = ms(&t, 1024, 1024, k, b, l);
                let top = ms(&t, 2048, 2048, k, b, l);
                let sq768 = ms(&t, 768, 768, k, b, l);
                let rect = ms(&t, 1024, 768, k, b, l);
                let wide = ms(&t, 1536, 1024, k, b, l);
                assert!(
                    lo < sq768 && sq768 < rect && rect < hi,
                    "{k} {b} {l}: {lo} {sq768} {rect} {hi}"
                );
                assert!(hi < wide && wide < top, "{k} {b} {l}: {hi} {wide} {top}");
                assert_eq!(
                    ms(&t, 768, 1024, k, b, l),
                    rect,
                    "same token count, same time"
                );
            }
        }
        // The shipped profile is the analytic model, which is quadratic in tokens: the fit recovers it.
        let got = ms(&h100(), 768, 768, 2, 1, Link::NvLink);
        let want = flux
            .step_time(Resolution::square(768), 2, 1, Link::NvLink)
            .unwrap()
            .as_millis();
        assert!(
            (got / want - 1.0).abs() < 0.01,
            "768 px SP2: fit {got} vs analytic {want}"
        );
    }

    #[test]
    fn clips_are_refused_even_inside_the_token_range() {
        // 5 frames of 256x256 are 512 tokens, between the profiled 256 and 1024 px images: an
        // image model's curve must not time them.
        let t = h100();
        let clip = Resolution::video(256, 256, 5);
        let e = t
            .step_time(clip, 1, 1, Link::NvLink)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("times images") && e.contains("256x256x5f") && e.contains("wan2.1-14b"),
            "{e}"
        );
        assert!(
            t.step_time(Resolution::new(512, 256), 1, 1, Link::NvLink)
                .is_ok()
        );
    }

    #[test]
    fn extrapolation_is_refused() {
        let t = h100();
        for px in [4096, 128, 2064] {
            let e = t
                .step_time(Resolution::square(px), 2, 1, Link::NvLink)
                .unwrap_err();
            assert!(matches!(e, Error::Cost(_)), "{e:?}");
            let msg = e.to_string();
            assert!(
                msg.contains("extrapolating")
                    && msg.contains("256..16384 tokens")
                    && msg.contains(&format!("{px}x{px}")),
                "{msg}"
            );
            assert!(
                msg.contains("profile h100-flux1-dev (builtin)") && msg.contains("add rows"),
                "{msg}"
            );
        }
    }

    #[test]
    fn missing_degree_or_batch_is_a_cost_error_naming_the_gap() {
        let a = a40();
        for (k, b) in [(8, 1), (2, 3)] {
            let msg = a
                .step_time(Resolution::square(512), k, b, Link::Pcie)
                .unwrap_err()
                .to_string();
            for part in [
                "sd3-medium on a40",
                "512x512",
                &format!("SP degree {k} at batch {b}"),
                "profile a40-sd3-medium (builtin)",
            ] {
                assert!(msg.contains(part), "expected `{part}` in: {msg}");
            }
        }
        let msg = a
            .step_time(Resolution::new(500, 512), 1, 1, Link::NvLink)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("multiple of 16"), "{msg}");
    }

    #[test]
    fn two_point_tables_interpolate_linearly_and_falling_times_are_refused() {
        let text = format!("{HEADER}\nm,g,256,256,1,1,10\nm,g,512,512,1,1,40\n");
        let t = ProfileTable::parse(&text, "two.csv").unwrap();
        // 384x384 has 576 tokens, 5/12 of the way from 256 to 1024.
        assert!((ms(&t, 384, 384, 1, 1, Link::NvLink) - 22.5).abs() < 1e-9);
        // A table whose times fall as images grow (which a positive fit could not follow)
        // is refused when read, naming the offending row.
        let text =
            format!("{HEADER}\nm,g,256,256,1,1,100\nm,g,512,512,1,1,1\nm,g,1024,1024,1,1,100\n");
        let msg = ProfileTable::parse(&text, "bent.csv")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("bent.csv:3: field `step_ms`") && msg.contains("cannot be faster"),
            "{msg}"
        );
        // So is a batch that is faster than a smaller one; 4% faster is tolerated as noise.
        let text = format!("{HEADER}\nm,g,256,256,1,1,10\nm,g,256,256,1,2,7\n");
        assert!(
            ProfileTable::parse(&text, "b.csv")
                .unwrap_err()
                .to_string()
                .contains("a larger batch")
        );
        let text = format!("{HEADER}\nm,g,256,256,1,1,10\nm,g,512,512,1,1,9.6\n");
        assert!(ProfileTable::parse(&text, "noise.csv").is_ok());
    }

    #[test]
    fn malformed_rows_name_their_line_and_field() {
        let ok = "flux1-dev,h100,256,256,1,1,20.5";
        check_err(
            &format!("{HEADER}\n{ok}\nflux1-dev,h100,512,512,1,1,fast\n"),
            3,
            Some("step_ms"),
            "got `fast`",
        );
        check_err(
            &format!("{HEADER}\n{ok}\nflux1-dev,h100,512,512,1,1,-3\n"),
            3,
            Some("step_ms"),
            "positive",
        );
        check_err(
            &format!("{HEADER}\nflux1-dev,h100,512,512,1,1,0\n"),
            2,
            Some("step_ms"),
            "positive",
        );
        check_err(
            &format!("{HEADER}\nflux1-dev,h100,512,512,1,1,inf\n"),
            2,
            Some("step_ms"),
            "finite",
        );
        check_err(
            &format!("{HEADER}\n{ok}\nflux1-dev,h100,512,512,3,1,9\n"),
            3,
            Some("sp_degree"),
            "power of two",
        );
        check_err(
            &format!("{HEADER}\nflux1-dev,h100,512,512,0,1,9\n"),
            2,
            Some("sp_degree"),
            "power of two",
        );
        check_err(
            &format!("{HEADER}\nflux1-dev,h100,512,512,1,0,9\n"),
            2,
            Some("batch"),
            ">= 1",
        );
        check_err(
            &format!("{HEADER}\nflux1-dev,h100,500,512,1,1,9\n"),
            2,
            Some("width"),
            "multiple of 16",
        );
        check_err(
            &format!("{HEADER}\nflux1-dev,h100,512,x,1,1,9\n"),
            2,
            Some("height"),
            "got `x`",
        );
        check_err(
            &format!("{HEADER}\n{ok}\n{ok}\n"),
            3,
            None,
            "already given on line 2",
        );
        check_err(
            &format!("{HEADER}\n{ok}\nsd3-medium,h100,512,512,1,1,9\n"),
            3,
            Some("model"),
            "one (model, gpu) pair",
        );
        check_err(
            &format!("{HEADER}\n{ok}\nflux1-dev,a40,512,512,1,1,9\n"),
            3,
            Some("gpu"),
            "line 2 is for flux1-dev on h100",
        );
        check_err(
            &format!("{HEADER}\n{ok}\nflux1-dev,h100,512,512,1,1\n"),
            3,
            None,
            "expected 7 fields",
        );
        check_err(
            &format!("{HEADER},link\n{ok},ethernet\n"),
            2,
            Some("link"),
            "unknown link `ethernet`",
        );
        check_err(
            &format!("{HEADER},std_ms\n{ok},-1\n"),
            2,
            Some("std_ms"),
            "non-negative",
        );
        check_err(
            &format!("{HEADER}\n,h100,512,512,1,1,9\n"),
            2,
            Some("model"),
            "empty",
        );
    }

    #[test]
    fn bad_headers_and_empty_tables_are_refused() {
        check_err(
            "model,gpu,width,height,sp_degree,batch\nm,g,256,256,1,1\n",
            1,
            Some("step_ms"),
            "lacks the required column `step_ms`",
        );
        check_err(
            &format!("{HEADER},color,mood\nm,g,256,256,1,1,9,red,ok\n"),
            1,
            Some("color,mood"),
            "`color`, `mood`",
        );
        check_err(
            &format!("{HEADER},batch\n"),
            1,
            Some("batch"),
            "appears twice",
        );
        check_err(&format!("# only a comment\n{HEADER}\n"), 2, None, "no rows");
        let e = input_err("");
        assert!(e.to_string().contains("empty") && e.line.is_none(), "{e}");
    }

    #[test]
    fn columns_match_by_name_in_any_order_with_comments() {
        let text = "# a comment\nlink,step_ms,batch,sp_degree,height,width,gpu,model,source,std_ms\n\
                    pcie,12.5,1,2,512,512,a40,sd3-medium,bench-1,0.1\n# another\n\
                    ,30,1,2,1024,1024,a40,sd3-medium,,\n\
                    nvlink,31,1,2,1024,1024,a40,sd3-medium,bench-1,oops\n";
        let e = input_err(text);
        assert_eq!(
            (e.line, e.field.as_deref()),
            (Some(6), Some("std_ms")),
            "{e}"
        );
        let good = text
            .replace("oops", "0.2")
            .replace("\nnvlink,31,1,2,1024", "\nnvlink,31,1,2,2048")
            .replace("2048,1024", "2048,2048");
        let t = ProfileTable::parse(&good, "t.csv").unwrap();
        let r = &t.rows()[0];
        assert_eq!(
            (r.link, r.step_ms, r.std_ms, r.source.as_deref(), r.line),
            (Link::Pcie, 12.5, Some(0.1), Some("bench-1"), 3)
        );
        assert_eq!(
            (t.rows()[1].link, t.rows()[1].line),
            (Link::NvLink, 5),
            "an empty link means nvlink"
        );
        // Round trip through to_csv.
        let again = ProfileTable::parse(&t.to_csv(), "again.csv").unwrap();
        let strip = |t: &ProfileTable| {
            t.rows()
                .iter()
                .map(|r| ProfileRow {
                    line: 0,
                    ..r.clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&again), strip(&t));
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        std::fs::write(&path, format!("{HEADER}\nm,g,256,256,1,1,-1\n")).unwrap();
        let e = ProfileTable::load(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:2: field `step_ms`", path.display())),
            "{e}"
        );
        std::fs::write(&path, format!("{HEADER}\nm,g,256,256,1,1,7\n")).unwrap();
        let t = ProfileTable::load(&path).unwrap();
        assert_eq!(t.describe(), format!("profile {}", path.display()));
        assert!(matches!(
            ProfileTable::load(&dir.path().join("missing.csv")),
            Err(Error::Io { .. })
        ));
    }
}
