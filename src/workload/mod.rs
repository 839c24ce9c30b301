//! Requests and the workloads they form: the input side of every run.
//!
//! A [`Workload`] is fully materialised (every arrival, resolution, step count and deadline
//! decided) before a run starts. That is what makes arrivals independent of the policy:
//! every policy of a comparison replays the identical list of requests (common random numbers).
//!
//! - [`arrival`]: arrival processes (Poisson, Gamma with a CV, constant, on/off bursts).
//! - [`mix`]: resolution mixes (Uniform, Skewed, homogeneous, custom weights).
//! - [`generate`]: seeded generation of a workload from a [`generate::WorkloadSpec`].
//! - [`trace`]: the trace CSV format, read and written.
//! - [`prompt`]: prompt keys and their popularity; [`cache`]: approximate caching (Nirvana),
//!   which shortens requests whose prompt hits; [`skipping`]: run-time step skipping masks,
//!   hidden from policies. Their effect on each request is its [`Savings`].
//!
//! [`Workload::time_scaled`] replays a workload at another rate (a log at F times its rate),
//! in integer nanoseconds, so that a trace is read once and rescaled in memory.

pub mod arrival;
pub mod cache;
pub mod config;
pub mod generate;
pub mod import;
pub mod mix;
pub mod prompt;
pub mod rng;
pub mod skipping;
pub mod trace;

use std::fmt;
use std::str::FromStr;

use crate::time::Nanos;

/// The most denoising steps a request may have (DiT pipelines use 20-50; a bound keeps a
/// single request from running a scheduler for hours or writing gigabytes of timeline).
pub const MAX_STEPS: u32 = 10_000;

/// The most requests a generated workload may have (and a cache's warm-up): twenty times the
/// largest documented run, and a bound that keeps a typo (`--requests 4000000000`) from
/// asking for tens of gigabytes before anything runs. Traces are bounded by their file size.
pub const MAX_REQUESTS: usize = 20_000_000;

/// The most frames a video request may have: 1 + 4 x 255 (256 latent frames), past the longest
/// clips current video DiTs generate (Wan2.1 and HunyuanVideo default to 81 and 129 frames).
pub const MAX_FRAMES: u32 = 1021;

/// Frames per latent frame after the first: video VAEs of the Wan2.1 / HunyuanVideo class
/// compress time 4x and keep the first frame on its own, so `F` frames become `1 + (F - 1) / 4`
/// latent frames, and a clip has `4k + 1` frames.
pub const TEMPORAL_COMPRESSION: u32 = 4;

/// The named video sizes of `video:NAME:FRAMES` ([`Resolution::from_str`]): Wan2.1's 480p
/// (832x480) and 720p (1280x720) outputs.
pub const VIDEO_SIZES: [(&str, u32, u32); 2] = [("480p", 832, 480), ("720p", 1280, 720)];

/// What a request generates: an image (`frames == 1`) or a video clip of `frames` frames, at
/// `width` x `height` pixels. Both sides are multiples of 16 (8x VAE downsampling, then 2x2
/// patchify), so the token count is exact; a video's frame count is `4k + 1` (the VAE's 4x
/// temporal compression keeps the first frame on its own).
///
/// An image is written `WIDTHxHEIGHT` (`1024x768`), a video `WIDTHxHEIGHTxFRAMESf`
/// (`1280x720x81f`, 81 frames of 1280x720); every map keyed by resolution (SLO bases, RSSP
/// degrees, cost tables) tells the two apart by the frame count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resolution {
    pub width: u32,
    pub height: u32,
    /// Output frames: 1 for an image.
    pub frames: u32,
}

impl Resolution {
    /// An image of `width` x `height` pixels.
    pub const fn new(width: u32, height: u32) -> Resolution {
        Resolution {
            width,
            height,
            frames: 1,
        }
    }

    /// A square image.
    pub const fn square(px: u32) -> Resolution {
        Resolution::new(px, px)
    }

    /// A video clip of `frames` frames of `width` x `height` pixels (`frames == 1`: an image).
    pub const fn video(width: u32, height: u32, frames: u32) -> Resolution {
        Resolution {
            width,
            height,
            frames,
        }
    }

    /// Whether this is a video clip (more than one frame).
    pub const fn is_video(self) -> bool {
        self.frames > 1
    }

    /// Latent frames: `1 + (frames - 1) / 4` (1 for an image; 21 for 81 frames).
    pub fn latent_frames(self) -> u64 {
        1 + u64::from(self.frames.saturating_sub(1) / TEMPORAL_COMPRESSION)
    }

    /// Latent tokens: latent frames x (W/16) x (H/16). 256 px -> 256, 1024 px -> 4096; an
    /// 81-frame 1280x720 clip -> 21 x 80 x 45 = 75,600.
    pub fn tokens(self) -> u64 {
        self.latent_frames() * u64::from(self.width / 16) * u64::from(self.height / 16)
    }

    /// The reason this resolution is unusable, if it is (zero, not a multiple of 16, absurdly
    /// large, or a frame count that is not `4k + 1` up to [`MAX_FRAMES`]).
    pub fn validate(self) -> Result<(), String> {
        const MAX_SIDE: u32 = 16_384;
        if self.width == 0 || self.height == 0 {
            return Err(format!("resolution {self} has a zero side"));
        }
        if !self.width.is_multiple_of(16) || !self.height.is_multiple_of(16) {
            return Err(format!(
                "resolution {self} is not a multiple of 16 on both sides (8x VAE, 2x2 patches)"
            ));
        }
        if self.width > MAX_SIDE || self.height > MAX_SIDE {
            return Err(format!(
                "resolution {self} exceeds the largest supported side of {MAX_SIDE} px"
            ));
        }
        check_frames(self.frames)
    }
}

/// Why `frames` is not a frame count, if it is not: 0, more than [`MAX_FRAMES`], or not
/// `4k + 1` (what a video VAE with 4x temporal compression encodes).
pub fn check_frames(frames: u32) -> Result<(), String> {
    if frames == 0 {
        return Err("a request has at least 1 frame (1: an image), got 0".to_string());
    }
    if frames > MAX_FRAMES {
        return Err(format!(
            "{frames} frames is more than the {MAX_FRAMES} a video request may have"
        ));
    }
    if !(frames - 1).is_multiple_of(TEMPORAL_COMPRESSION) {
        let below = frames - (frames - 1) % TEMPORAL_COMPRESSION;
        return Err(format!(
            "{frames} frames is not 4k + 1 (the video VAE compresses time 4x after the first frame); use {below} or {}",
            below + TEMPORAL_COMPRESSION
        ));
    }
    Ok(())
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.frames == 1 {
            write!(f, "{}x{}", self.width, self.height)
        } else {
            write!(f, "{}x{}x{}f", self.width, self.height, self.frames)
        }
    }
}

impl FromStr for Resolution {
    type Err = String;

    /// Accepts an image as `"1024x768"` or `"1024"` (square), and a video as
    /// `"1280x720x81f"` (81 frames of 1280x720) or `"video:720p:81"` (a named size of
    /// [`VIDEO_SIZES`], or `video:1280x720:81`).
    fn from_str(s: &str) -> Result<Resolution, String> {
        let s = s.trim();
        const FORMS: &str = "expected WIDTHxHEIGHT such as 1024x1024, one number for a square, WIDTHxHEIGHTxFRAMESf for a video such as 1280x720x81f, or video:720p:81";
        let parse = |p: &str| {
            p.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{s}` is not a resolution; {FORMS}"))
        };
        let res = if let Some(rest) = strip_prefix_ignore_case(s, "video:") {
            let (size, frames) = rest.rsplit_once(':').ok_or_else(|| {
                format!("`{s}` is not a video resolution; expected video:SIZE:FRAMES such as video:720p:81 or video:1280x720:81")
            })?;
            let frames = frames.trim().parse::<u32>().map_err(|_| {
                format!(
                    "`{frames}` in `{s}` is not a number of frames; expected e.g. video:720p:81"
                )
            })?;
            let size = size.trim();
            let (w, h) = match VIDEO_SIZES
                .iter()
                .find(|(name, _, _)| name.eq_ignore_ascii_case(size))
            {
                Some(&(_, w, h)) => (w, h),
                None => match size.split_once(['x', 'X']) {
                    Some((w, h)) => (parse(w)?, parse(h)?),
                    None => {
                        let names: Vec<&str> = VIDEO_SIZES.iter().map(|v| v.0).collect();
                        return Err(format!(
                            "`{size}` in `{s}` is not a video size; expected {} or WIDTHxHEIGHT",
                            names.join(", ")
                        ));
                    }
                },
            };
            Resolution::video(w, h, frames)
        } else {
            let parts: Vec<&str> = s.split(['x', 'X']).collect();
            match parts.as_slice() {
                [side] => Resolution::square(parse(side)?),
                [w, h] => Resolution::new(parse(w)?, parse(h)?),
                [w, h, f] => {
                    let frames = f
                        .trim()
                        .strip_suffix(['f', 'F'])
                        .ok_or_else(|| format!("`{s}` is not a resolution; a video's frame count ends in f (1280x720x81f); {FORMS}"))?;
                    Resolution::video(parse(w)?, parse(h)?, parse(frames)?)
                }
                _ => return Err(format!("`{s}` is not a resolution; {FORMS}")),
            }
        };
        res.validate()?;
        Ok(res)
    }
}

/// `s` without `prefix`, compared case-insensitively (ASCII).
fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Dense index of a request within its workload (`0..workload.len()`), in arrival order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u32);

impl RequestId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One generation request: an image, or a video clip ([`Resolution::frames`] > 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Position in the workload; what policies and the engine use.
    pub id: RequestId,
    /// The id the user gave it (the trace's `id` column); reported in outputs.
    pub label: u64,
    pub arrival: Nanos,
    pub resolution: Resolution,
    /// Denoising steps; each is one transformer forward over all tokens.
    pub steps: u32,
    /// Absolute deadline. A request finishing at exactly `deadline` meets its SLO.
    pub deadline: Nanos,
    /// Its own encode and decode times, where a trace gives them (disaggregated stages).
    pub stages: StageTimes,
}

/// A request's own service times on the disaggregated stages' pools, from a trace's
/// `encode_s` and `decode_s` columns: what a production log measured, or a stage the request
/// skips (0: its prompt embedding was cached, or it asks for the latent itself). `None` takes
/// the pools' model (`stages::Pools`). Only disaggregated stages read them: co-located, the
/// encoder and the VAE are the policies' per-scenario overheads, and a run refuses a trace
/// that gives them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageTimes {
    pub encode: Option<Nanos>,
    pub decode: Option<Nanos>,
}

impl StageTimes {
    /// No time of its own: the pools' model for both stages.
    pub const MODEL: StageTimes = StageTimes {
        encode: None,
        decode: None,
    };

    /// Whether it gives a time for either stage.
    pub fn any(&self) -> bool {
        self.encode.is_some() || self.decode.is_some()
    }
}

/// The longest stage time a trace may give a request: an hour (an encode or a decode is
/// seconds at most; anything longer is a unit slip).
pub const MAX_STAGE_TIME: Nanos = Nanos(3_600_000_000_000);

impl Request {
    /// The SLO as a duration from arrival.
    pub fn slo(&self) -> Nanos {
        self.deadline - self.arrival
    }
}

/// What caching and step skipping did to one request's work.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Savings {
    /// The prompt it asks for (a trace's `prompt_id`, or drawn by the generator).
    pub prompt: Option<prompt::PromptKey>,
    /// It hit the approximate cache.
    pub cache_hit: bool,
    /// Steps the cache saved (k): already taken off the request's `steps`.
    pub cached_steps: u32,
    /// Steps that will be skipped as it runs (indices into its `steps`): the executor's to
    /// know, never shown to policies.
    pub skips: skipping::SkipMask,
}

/// What a request without caching or skipping has.
static NO_SAVINGS: Savings = Savings {
    prompt: None,
    cache_hit: false,
    cached_steps: 0,
    skips: skipping::SkipMask::EMPTY,
};

/// The requests of one run, sorted by arrival (ties keep input order); `requests[i].id == i`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Workload {
    pub requests: Vec<Request>,
    /// Per request (`savings[i]` for `requests[i]`), or empty when no request has a prompt
    /// key, a cache hit or skipped steps. Read it through [`Workload::savings_of`].
    pub savings: Vec<Savings>,
    /// The law the skip masks were drawn from, if steps are skipped at run time: what a policy
    /// may know ahead (an expected step count), unlike the masks themselves.
    pub skipping: Option<skipping::SkipSpec>,
}

impl Workload {
    /// Builds a workload from requests in any order: sorts them stably by arrival and
    /// assigns dense ids.
    pub fn from_requests(mut requests: Vec<Request>) -> Workload {
        requests.sort_by_key(|r| r.arrival);
        for (i, r) in requests.iter_mut().enumerate() {
            r.id = RequestId(i as u32);
        }
        Workload {
            requests,
            savings: Vec::new(),
            skipping: None,
        }
    }

    /// What caching and skipping did to request `id`.
    pub fn savings_of(&self, id: RequestId) -> &Savings {
        self.savings.get(id.index()).unwrap_or(&NO_SAVINGS)
    }

    /// Gives every request its own [`Savings`] entry (all empty) if it has none yet.
    pub fn ensure_savings(&mut self) {
        if self.savings.len() != self.requests.len() {
            self.savings = vec![Savings::default(); self.requests.len()];
        }
    }

    /// The workload as an offline oracle sees it after the run: each request's `steps` less
    /// the steps it will skip at run time, and no masks. What the upper bound on attainment is
    /// computed on (`simulate::attainment_bound`): a skipped step costs nothing, so a bound on
    /// the nominal steps would not bound a run that skipped some; the cache's reduction is
    /// already in `steps`. The same workload when nothing is skipped.
    pub fn with_realised_steps(&self) -> std::borrow::Cow<'_, Workload> {
        if !self.savings.iter().any(|s| !s.skips.is_empty()) {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut w = self.clone();
        for (r, s) in w.requests.iter_mut().zip(&mut w.savings) {
            r.steps -= s.skips.count(0, r.steps);
            s.skips = skipping::SkipMask::default();
        }
        w.skipping = None;
        std::borrow::Cow::Owned(w)
    }

    /// Whether some request hit the cache or has skipped steps.
    pub fn has_savings(&self) -> bool {
        self.savings
            .iter()
            .any(|s| s.cache_hit || !s.skips.is_empty())
    }

    pub fn len(&self) -> usize {
        self.requests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// The same requests at `factor` times the rate: every gap between arrivals divided by
    /// `factor` (the first arrival stays where it is), every SLO (deadline - arrival) kept.
    ///
    /// The factor is rounded to a billionth and the division done on integers (nanoseconds x
    /// 10^9 / (factor x 10^9), to the nearest nanosecond), so a rescaled trace is the same on
    /// every machine. Factors that are not positive and finite, and arrivals or deadlines that
    /// would pass [`Nanos::HORIZON`], are refused. Order and ids are kept: dividing the gaps
    /// by one positive number cannot reorder arrivals.
    pub fn time_scaled(&self, factor: f64) -> crate::error::Result<Workload> {
        const UNIT: f64 = 1e9;
        let scaled = (factor * UNIT).round();
        if !(factor.is_finite() && scaled >= 1.0 && scaled < u64::MAX as f64) {
            return Err(crate::error::Error::config_hint(
                format!("time scale {factor} is not a positive rate factor"),
                "give a positive number such as 2.0 (twice the rate) or 0.5 (half the rate), at least 1e-9",
            ));
        }
        let divisor = scaled as u128;
        let Some(first) = self.requests.first().map(|r| r.arrival) else {
            return Ok(self.clone());
        };
        let mut requests = Vec::with_capacity(self.requests.len());
        for r in &self.requests {
            let offset = u128::from((r.arrival - first).0) * UNIT as u128;
            // Round to the nearest nanosecond: (offset + divisor / 2) / divisor.
            let gap = (offset + divisor / 2) / divisor;
            let arrival = u64::try_from(gap)
                .ok()
                .and_then(|g| first.checked_add(Nanos(g)));
            let deadline = arrival.and_then(|a| a.checked_add(r.slo()));
            let (Some(arrival), Some(deadline)) = (arrival, deadline) else {
                return Err(crate::error::Error::config_hint(
                    format!(
                        "at time scale {factor}, request {} (arrival {} s) would arrive or be due beyond the simulator's horizon (2^62 ns, about 146 years)",
                        r.label,
                        r.arrival.as_secs()
                    ),
                    "use a larger time scale, or a trace with shorter gaps and SLOs",
                ));
            };
            requests.push(Request {
                arrival,
                deadline,
                ..r.clone()
            });
        }
        Ok(Workload {
            requests,
            savings: self.savings.clone(),
            skipping: self.skipping,
        })
    }

    /// Distinct resolutions, sorted by token count then width.
    pub fn resolutions(&self) -> Vec<Resolution> {
        let mut v: Vec<Resolution> = self.requests.iter().map(|r| r.resolution).collect();
        v.sort_by_key(|r| (r.tokens(), r.width, r.height));
        v.dedup();
        v
    }
}

/// Per-resolution SLO base latencies; `deadline = arrival + scale * base(resolution)`.
///
/// Images default to the paper's targets ([`SloBases::paper`]); a video clip of a generated
/// mix without a base gets one derived from the cost model
/// ([`crate::slo_fit::video_bases`]: twice its lone time at the fastest degree).
#[derive(Clone, Debug, PartialEq)]
pub struct SloBases {
    bases: Vec<(Resolution, Nanos)>,
}

impl SloBases {
    pub fn new(mut bases: Vec<(Resolution, Nanos)>) -> SloBases {
        bases.sort_by_key(|(r, _)| (r.tokens(), r.width, r.height));
        SloBases { bases }
    }

    /// The paper's targets: 256 px 1.5 s, 512 px 2 s, 1024 px 3 s, 2048 px 5 s.
    pub fn paper() -> SloBases {
        SloBases::new(vec![
            (Resolution::square(256), Nanos::from_secs(1.5)),
            (Resolution::square(512), Nanos::from_secs(2.0)),
            (Resolution::square(1024), Nanos::from_secs(3.0)),
            (Resolution::square(2048), Nanos::from_secs(5.0)),
        ])
    }

    /// These bases and `extra` (resolutions these have no base for; a repeat keeps the first).
    pub fn with(&self, extra: &[(Resolution, Nanos)]) -> SloBases {
        let mut bases = self.bases.clone();
        for &(r, b) in extra {
            if self.base(r).is_none() {
                bases.push((r, b));
            }
        }
        SloBases::new(bases)
    }

    pub fn base(&self, res: Resolution) -> Option<Nanos> {
        self.bases.iter().find(|(r, _)| *r == res).map(|(_, b)| *b)
    }

    pub fn iter(&self) -> impl Iterator<Item = (Resolution, Nanos)> + '_ {
        self.bases.iter().copied()
    }

    /// `scale * base`, rounded to the nanosecond ([`Nanos::MAX`] beyond the horizon, which
    /// every deadline computation then refuses).
    pub fn scaled(&self, res: Resolution, scale: f64) -> Option<Nanos> {
        self.base(res)
            .map(|b| Nanos::try_from_secs(b.as_secs() * scale).unwrap_or(Nanos::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_follow_the_16_pixel_patch_rule() {
        assert_eq!(Resolution::square(256).tokens(), 256);
        assert_eq!(Resolution::square(2048).tokens(), 16384);
        assert_eq!(Resolution::new(1024, 768).tokens(), 64 * 48);
    }

    #[test]
    fn parses_and_validates_resolutions() {
        assert_eq!(
            "1024x768".parse::<Resolution>(),
            Ok(Resolution::new(1024, 768))
        );
        assert_eq!("512".parse::<Resolution>(), Ok(Resolution::square(512)));
        assert!(
            "1000x1000"
                .parse::<Resolution>()
                .unwrap_err()
                .contains("multiple of 16")
        );
        assert!("0x16".parse::<Resolution>().is_err());
        assert!("abc".parse::<Resolution>().is_err());
    }

    #[test]
    fn video_tokens_match_the_published_shapes() {
        // Wan2.1 (VAE 4x8x8, patch 1x2x2): 81 frames of 1280x720 are 21 x 45 x 80 latent tokens.
        let wan720 = Resolution::video(1280, 720, 81);
        assert_eq!(wan720.latent_frames(), 21);
        assert_eq!(wan720.tokens(), 75_600);
        // Its 480p output, 832x480: 21 x 30 x 52.
        assert_eq!(Resolution::video(832, 480, 81).tokens(), 32_760);
        // CogVideoX (the same compression and patch), 49 frames of 720x480: 13 x 30 x 45.
        assert_eq!(Resolution::video(720, 480, 49).tokens(), 17_550);
        // HunyuanVideo's 129 frames at 720p: 33 x 45 x 80.
        assert_eq!(Resolution::video(1280, 720, 129).tokens(), 118_800);
        // Five frames are two latent frames; one frame is an image, costed as before.
        assert_eq!(Resolution::video(256, 256, 5).tokens(), 512);
        assert_eq!(Resolution::video(1024, 1024, 1), Resolution::square(1024));
        assert_eq!(Resolution::square(1024).tokens(), 4096);
        assert!(!Resolution::square(1024).is_video() && wan720.is_video());
    }

    #[test]
    fn videos_display_and_parse_unambiguously() {
        let p = |s: &str| s.parse::<Resolution>();
        let wan720 = Resolution::video(1280, 720, 81);
        assert_eq!(wan720.to_string(), "1280x720x81f");
        assert_eq!(p("1280x720x81f"), Ok(wan720));
        assert_eq!(p("1280X720X81F"), Ok(wan720));
        assert_eq!(p("video:720p:81"), Ok(wan720));
        assert_eq!(p("Video:720P:81"), Ok(wan720));
        assert_eq!(p("video:1280x720:81"), Ok(wan720));
        assert_eq!(p("video:480p:81"), Ok(Resolution::video(832, 480, 81)));
        // One frame is an image, displayed as one.
        assert_eq!(p("video:480p:1"), Ok(Resolution::new(832, 480)));
        assert_eq!(p("1024x1024x1f").unwrap().to_string(), "1024x1024");
        assert_eq!(Resolution::square(1024).to_string(), "1024x1024");
        for r in [
            wan720,
            Resolution::video(16, 32, 1021),
            Resolution::new(1024, 768),
        ] {
            assert_eq!(p(&r.to_string()), Ok(r), "{r}");
        }
        // Video sorts after the image of the same size (frames are the last key).
        assert!(Resolution::new(1280, 720) < wan720);
    }

    #[test]
    fn bad_frame_counts_are_refused_with_the_reason() {
        let e = |s: &str| s.parse::<Resolution>().unwrap_err();
        assert!(e("1280x720x80f").contains("80 frames is not 4k + 1"));
        assert!(
            e("1280x720x80f").contains("use 77 or 81"),
            "{}",
            e("1280x720x80f")
        );
        assert!(e("1280x720x0f").contains("at least 1 frame"));
        assert!(e("1280x720x1025f").contains("more than the 1021"));
        assert!(e("1280x720x81").contains("ends in f"));
        assert!(e("1280x720xf").contains("not a resolution"));
        assert!(e("1x2x3x4").contains("not a resolution"));
        assert!(e("video:1080q:81").contains("`1080q` in `video:1080q:81` is not a video size"));
        assert!(e("video:720p").contains("video:SIZE:FRAMES"));
        assert!(e("video:720p:many").contains("not a number of frames"));
        assert!(e("video:1000x720:81").contains("multiple of 16"));
        assert_eq!(check_frames(81), Ok(()));
        assert_eq!(check_frames(1), Ok(()));
        assert_eq!(check_frames(MAX_FRAMES), Ok(()));
        assert!(check_frames(MAX_FRAMES + 4).is_err());
    }

    fn at(arrivals_ns: &[u64], slo_ns: u64) -> Workload {
        Workload::from_requests(
            arrivals_ns
                .iter()
                .enumerate()
                .map(|(i, &t)| Request {
                    id: RequestId(0),
                    label: i as u64,
                    arrival: Nanos(t),
                    resolution: Resolution::square(256),
                    steps: 1,
                    deadline: Nanos(t + slo_ns),
                    stages: Default::default(),
                })
                .collect(),
        )
    }

    #[test]
    fn time_scaling_divides_gaps_and_keeps_slos() {
        let w = at(&[5, 7, 11, 20], 100).time_scaled(2.0).unwrap();
        let times: Vec<(u64, u64)> = w
            .requests
            .iter()
            .map(|r| (r.arrival.0, r.deadline.0))
            .collect();
        // Offsets 2, 6, 15 from the first arrival (5) become 1, 3, 7.5 -> 8 (nearest, half up).
        assert_eq!(times, vec![(5, 105), (6, 106), (8, 108), (13, 113)]);
        let slower = at(&[0, 1_000_000_000], 7).time_scaled(0.25).unwrap();
        assert_eq!(slower.requests[1].arrival, Nanos(4_000_000_000));
        assert_eq!(slower.requests[1].slo(), Nanos(7));
        // A factor of one changes nothing; an empty workload stays empty.
        let w = at(&[3, 9, 9, 40], 11);
        assert_eq!(w.time_scaled(1.0).unwrap(), w);
        assert!(Workload::default().time_scaled(3.0).unwrap().is_empty());
    }

    #[test]
    fn time_scaling_refuses_bad_factors_and_unrepresentable_times() {
        let w = at(&[0, 1 << 40], 1);
        for f in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-12] {
            let e = w.time_scaled(f).unwrap_err().to_string();
            assert!(e.contains("not a positive rate factor"), "{f}: {e}");
        }
        // 2^40 ns / 1e-7 = 2^40 x 10^7 ns (about 1.1e19), beyond the 2^62 ns horizon.
        let e = w.time_scaled(1e-7).unwrap_err().to_string();
        assert!(e.contains("beyond the simulator's horizon"), "{e}");
        assert!(e.contains("request 1"), "{e}");
    }

    #[test]
    fn workload_sorts_stably_and_assigns_dense_ids() {
        let mk = |label, t| Request {
            id: RequestId(99),
            label,
            arrival: Nanos(t),
            resolution: Resolution::square(256),
            steps: 1,
            deadline: Nanos(t + 10),
            stages: Default::default(),
        };
        let w = Workload::from_requests(vec![mk(7, 5), mk(8, 1), mk(9, 5)]);
        let labels: Vec<u64> = w.requests.iter().map(|r| r.label).collect();
        assert_eq!(labels, vec![8, 7, 9]);
        assert!(
            w.requests
                .iter()
                .enumerate()
                .all(|(i, r)| r.id.index() == i)
        );
    }
}
