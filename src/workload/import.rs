//! Importers for other tools' request traces, turned into this project's [`Workload`].
//!
//! Two formats are read, both leniently in what they ignore and strictly in what they need:
//!
//! - **`vllm-omni`**: the heterogeneous DiT trace replayed by vLLM-Omni's diffusion serving
//!   benchmark (`--dataset trace`), in either of its two forms, told apart by the first
//!   request line: one JSON object per line (`.jsonl`), or one `Request(width=1024,
//!   height=1024, num_inference_steps=28, timestamp=0.5, ...)` per line (`.txt`, the form of
//!   the benchmark's default traces `sd3_trace.txt` and `cogvideox_trace.txt`: Python keyword
//!   arguments with literal values, as the loader `TraceDataset._parse_trace_file` in
//!   `benchmarks/diffusion/diffusion_benchmark_serving.py` of vLLM-Omni reads them with
//!   `ast.literal_eval`). Both need `width`, `height`, `num_inference_steps`, and an arrival
//!   time in seconds (`arrival`, `arrival_s` or `timestamp`), and may give `slo_ms`. Other keys
//!   (`prompt`, `seed`, `fps`, `request_id`, `image_paths`, ...) are ignored. `num_frames` (absent
//!   or 1: an image) makes a request with more frames a video of that many frames
//!   ([`Resolution::video`]; `4k + 1` of them, as the video VAEs encode, e.g. CogVideoX's 49),
//!   whose cost the scenario's model must cover (the analytic `wan2.1-14b`). Where vLLM-Omni's loader
//!   skips a line it cannot read, this one refuses it, naming the line.
//! - **`alibaba-genai`**: a CSV export of a GenAI serving trace with one row per request: an
//!   arrival timestamp in seconds (`timestamp`, `arrival_time`, `submit_time` or `time`) and,
//!   when present, the step count (`num_inference_steps`, `steps` or `inference_steps`; else the
//!   scenario's steps), and the resolution when it has `width` and `height` columns. Rows
//!   without one (most such traces) get it drawn from the chosen mix with the scenario's seed
//!   (stratified or i.i.d., as the scenario says).
//!
//! Arrivals are made relative to the first one and divided by `time_scale` (2.0 replays the
//! trace at twice its rate). Rows are sorted by arrival (stable, so equal times keep file
//! order): production exports are often grouped by worker, not by time. [`import_rows`] keeps
//! a request without an SLO without one (what `trace import` writes: an empty `slo_s` cell,
//! whose deadline the scenario of the replay gives); [`import`] gives it the scenario's
//! `scale x base(resolution)`.

use rayon::prelude::*;

use crate::error::{InputError, Result};
use crate::time::Nanos;
use crate::workload::mix::{Mix, Sampling};
use crate::workload::rng::stream_rng;
use crate::workload::trace::{SloDefaults, TraceRow, count_newlines};
use crate::workload::{Request, RequestId, Resolution, Workload};

/// A trace format this module reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    VllmOmni,
    AlibabaGenai,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<LogFormat, String> {
        match s {
            "vllm-omni" => Ok(LogFormat::VllmOmni),
            "alibaba-genai" => Ok(LogFormat::AlibabaGenai),
            other => Err(format!(
                "unknown trace format `{other}`; expected vllm-omni or alibaba-genai"
            )),
        }
    }
}

/// What an import needs besides the file.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    pub format: LogFormat,
    /// Replay at this many times the trace's rate (> 0).
    pub time_scale: f64,
    /// Resolutions for formats without them.
    pub mix: Mix,
    pub sampling: Sampling,
    pub seed: u64,
    /// Steps for rows without a step count.
    pub steps: u32,
    /// Deadlines for rows without an SLO ([`import`] only).
    pub slo: SloDefaults,
}

/// What [`import_rows`] read: one trace row per request, in arrival order.
#[derive(Clone, Debug)]
pub struct Imported {
    pub rows: Vec<TraceRow>,
    /// The line of the source each row came from.
    pub lines: Vec<u64>,
    /// Whether any row took its resolution from the mix (else the mix and seed are unused).
    pub drew_resolutions: bool,
    /// Whether any row took the scenario's steps (else `--steps` is unused).
    pub defaulted_steps: bool,
}

/// One parsed row before arrivals are rebased and resolutions assigned.
struct Row {
    line: u64,
    arrival_s: f64,
    resolution: Option<Resolution>,
    steps: u32,
    /// Whether `steps` is the scenario's (the row has no step count).
    default_steps: bool,
    slo_s: Option<f64>,
}

/// Reads `text` (from `source`, for messages) in `opts.format`; a row without an SLO gets
/// `opts.slo`'s `scale x base(resolution)`.
pub fn import(text: &str, source: &str, opts: &ImportOptions) -> Result<Workload> {
    let imported = import_rows(text, source, opts)?;
    let horizon_hint = "times must lie within the simulator's horizon (2^62 ns, about 146 years) after the first request";
    let mut requests = Vec::with_capacity(imported.rows.len());
    for (r, &line) in imported.rows.into_iter().zip(&imported.lines) {
        let slo = match r.slo {
            Some(slo) => slo,
            None => {
                opts.slo
                    .bases
                    .scaled(r.resolution, opts.slo.scale)
                    .ok_or_else(|| {
                        InputError::new(
                    source,
                    format!(
                        "no SLO for {} (the row has none and the scenario has no base for it)",
                        r.resolution
                    ),
                )
                .line(line)
                .hint("add slo_ms to the row, or an SLO base for this resolution to the scenario")
                    })?
            }
        };
        requests.push(Request {
            id: RequestId(0),
            label: r.label,
            arrival: r.arrival,
            resolution: r.resolution,
            steps: r.steps,
            deadline: r.arrival.checked_add(slo).ok_or_else(|| {
                InputError::new(source, "arrival + SLO lies beyond the simulator's horizon")
                    .line(line)
                    .field("slo")
                    .hint(horizon_hint)
            })?,
            stages: Default::default(),
        });
    }
    Ok(Workload::from_requests(requests))
}

/// Arrival values in this range of seconds (year 5139 onwards as a Unix time) are taken for
/// Unix times in milliseconds (about 1.7e12 today, 1e14 in the year 5138).
const EPOCH_MS: std::ops::Range<f64> = 1e11..1e14;

/// Reads `text` (from `source`, for messages) in `opts.format` into trace rows, keeping a row
/// without an SLO without one.
pub fn import_rows(text: &str, source: &str, opts: &ImportOptions) -> Result<Imported> {
    if !(opts.time_scale.is_finite() && opts.time_scale > 0.0) {
        return Err(
            InputError::new(source, "the time scale must be a positive number")
                .field("--time-scale")
                .into(),
        );
    }
    let mut rows = match opts.format {
        LogFormat::VllmOmni => vllm_omni_rows(text, source, BLOCK_BYTES)?,
        LogFormat::AlibabaGenai => alibaba_rows(text, source, opts.steps)?,
    };
    if rows.is_empty() {
        return Err(InputError::new(source, "the trace has no requests").into());
    }
    rows.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s));
    let first = rows[0].arrival_s;
    // Arrivals are seconds. A log of Unix epochs in milliseconds (about 1.7e12 today) read as
    // seconds would stretch every gap a thousandfold and still import; refuse numbers that are
    // only plausible as milliseconds (seconds past the year 5000), unless the time scale
    // already divides by at least a thousand.
    if let Some(r) = rows.iter().find(|r| EPOCH_MS.contains(&r.arrival_s))
        && opts.time_scale < 1000.0
    {
        return Err(InputError::new(
            source,
            format!(
                "the arrival {} is {:.0} years in seconds: it looks like a Unix time in milliseconds",
                r.arrival_s,
                r.arrival_s / (365.25 * 86_400.0)
            ),
        )
        .line(r.line)
        .field("arrival")
        .hint("arrival times are seconds; for milliseconds add --time-scale 1000 (gaps divided by 1000), times any replay speed-up")
        .into());
    }
    let drew_resolutions = rows.iter().any(|r| r.resolution.is_none());
    let defaulted_steps = rows.iter().any(|r| r.default_steps);
    let mut drawn = if drew_resolutions {
        let mut rng = stream_rng(opts.seed, "import-resolutions");
        opts.mix
            .sample(rows.len(), opts.sampling, &mut rng)
            .into_iter()
    } else {
        Vec::new().into_iter()
    };
    let mut out = Vec::with_capacity(rows.len());
    let mut lines = Vec::with_capacity(rows.len());
    for (i, r) in rows.into_iter().enumerate() {
        let resolution = match r.resolution {
            Some(res) => res,
            None => drawn.next().ok_or_else(|| {
                InputError::new(source, "the mix gave no resolution").hint("check --mix")
            })?,
        };
        let horizon_hint = "times must lie within the simulator's horizon (2^62 ns, about 146 years) after the first request";
        let arrival = Nanos::try_from_secs((r.arrival_s - first) / opts.time_scale)
            .ok_or_else(|| {
                InputError::new(
                    source,
                    format!(
                        "the arrival {:?} s after the first request (time scale {:?}) cannot be represented",
                        r.arrival_s - first,
                        opts.time_scale
                    ),
                )
                .line(r.line)
                .field("arrival")
                .hint(horizon_hint)
            })?;
        let slo = match r.slo_s {
            Some(s) => {
                let slo = Nanos::try_from_secs(s)
                    .filter(|t| *t > Nanos::ZERO)
                    .ok_or_else(|| {
                        InputError::new(
                            source,
                            format!(
                                "an SLO of {s} s is not a positive time the simulator can hold"
                            ),
                        )
                        .line(r.line)
                        .field("slo")
                        .hint("SLOs must be at least 1 ns and below the horizon of about 146 years")
                    })?;
                arrival.checked_add(slo).ok_or_else(|| {
                    InputError::new(source, "arrival + SLO lies beyond the simulator's horizon")
                        .line(r.line)
                        .field("slo")
                        .hint(horizon_hint)
                })?;
                Some(slo)
            }
            None => None,
        };
        lines.push(r.line);
        out.push(TraceRow {
            label: i as u64,
            arrival,
            resolution,
            steps: r.steps,
            slo,
        });
    }
    Ok(Imported {
        rows: out,
        lines,
        drew_resolutions,
        defaulted_steps,
    })
}

/// The bytes of text in one block of [`vllm_omni_rows`] (about 7,000 lines like the sample's).
const BLOCK_BYTES: usize = 1 << 20;

/// Each line of a vllm-omni trace stands alone, and parsing JSON is most of an import's time,
/// so blocks of whole lines (about `block_bytes` each) are read in parallel, each numbering
/// its lines from the newlines before it, and joined in file order. The error reported is the
/// first in the file, as when reading line by line.
fn vllm_omni_rows(text: &str, source: &str, block_bytes: usize) -> Result<Vec<Row>> {
    let syntax = Syntax::of(text);
    let blocks = line_blocks(text, block_bytes);
    let newlines: Vec<usize> = blocks.par_iter().map(|b| count_newlines(b)).collect();
    let first_lines = newlines.iter().scan(1u64, |next, n| {
        let first = *next;
        *next += *n as u64;
        Some(first)
    });
    let blocks: Vec<(&str, u64)> = blocks.iter().copied().zip(first_lines).collect();
    let parsed: Vec<Result<Vec<Row>>> = blocks
        .par_iter()
        .map(|&(block, first_line)| vllm_omni_block(block, first_line, source, syntax))
        .collect();
    let mut rows = Vec::with_capacity(parsed.iter().map(|b| b.as_ref().map_or(0, Vec::len)).sum());
    for block in parsed {
        rows.extend(block?);
    }
    Ok(rows)
}

/// `text` cut into pieces of whole lines, each the first line end after `size` bytes (the
/// last piece takes the rest, and may be empty).
fn line_blocks(text: &str, size: usize) -> Vec<&str> {
    let mut blocks = Vec::with_capacity(text.len() / size.max(1) + 1);
    let mut rest = text;
    while let Some(end) = rest
        .as_bytes()
        .get(size..)
        .and_then(|tail| memchr::memchr(b'\n', tail))
    {
        let (block, after) = rest.split_at(size + end + 1);
        blocks.push(block);
        rest = after;
    }
    blocks.push(rest);
    blocks
}

/// How a vllm-omni trace writes its requests: one JSON object per line (the `.jsonl` form of
/// the benchmark's custom dataset), or one `Request(key=value, ...)` per line (the `.txt`
/// form of its trace dataset, read by [`repr`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Syntax {
    Json,
    Repr,
}

impl Syntax {
    /// The first request line decides for the whole file, as in vLLM-Omni's loader: a line
    /// starting `Request(` means the `.txt` form. Blank and `#` lines are skipped.
    fn of(text: &str) -> Syntax {
        let first = text
            .lines()
            .map(|l| l.trim().trim_start_matches('\u{feff}'))
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        match first {
            Some(l) if l.starts_with("Request(") => Syntax::Repr,
            _ => Syntax::Json,
        }
    }
}

/// The rows of `text`, whose first line is line `first_line` of the file.
fn vllm_omni_block(text: &str, first_line: u64, source: &str, syntax: Syntax) -> Result<Vec<Row>> {
    // A row per line at most, and a valid line names width, height, num_inference_steps and
    // an arrival: more than 48 bytes.
    let mut rows = Vec::with_capacity((count_newlines(text) + 1).min(text.len() / 48 + 1));
    for (i, line) in text.lines().enumerate() {
        let n = first_line + i as u64;
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |field: &str, msg: String| InputError::new(source, msg).line(n).field(field);
        let obj = match syntax {
            Syntax::Json => match serde_json::from_str(line).map_err(|e| {
                InputError::new(source, format!("not a JSON object: {e}"))
                    .line(n)
                    .hint("vllm-omni traces have one JSON object per line")
            })? {
                json::Line::Object(obj) => obj,
                json::Line::NotObject => {
                    return Err(InputError::new(source, "expected a JSON object")
                        .line(n)
                        .into());
                }
            },
            Syntax::Repr => repr::parse(line).map_err(|e| {
                let mut err = InputError::new(source, e.message).line(n).hint(
                    "this trace's first request is `Request(width=..., height=..., ...)`, so every request line must be one (Python keyword syntax)",
                );
                if let Some(key) = e.key {
                    err = err.field(&key);
                }
                err
            })?,
        };
        let uint = |key: &str, value: Option<json::JsonValue>| -> Result<u32> {
            let x = value
                .and_then(json::JsonValue::number)
                .ok_or_else(|| err(key, format!("missing or not a number: `{key}`")))?;
            if x.fract() != 0.0 || x < 1.0 || x > f64::from(u32::MAX) {
                return Err(
                    err(key, format!("`{key}` must be a positive integer, got {x}")).into(),
                );
            }
            Ok(x as u32)
        };
        // Absent (or null): an image. A number: the frame count, 1 for an image, more for a
        // video (4k + 1 frames, as its VAE encodes them: CogVideoX's 49, Wan2.1's 81).
        let frames = match obj.num_frames {
            None | Some(json::JsonValue::Null) => 1,
            Some(v) => match v.number() {
                Some(f)
                    if f.fract() == 0.0
                        && f >= 1.0
                        && f <= f64::from(crate::workload::MAX_FRAMES) =>
                {
                    f as u32
                }
                Some(f) => {
                    return Err(err(
                        "num_frames",
                        format!(
                            "`num_frames` {f} is not a frame count; expected a whole number from 1 (an image, or leave it out) to {}",
                            crate::workload::MAX_FRAMES
                        ),
                    )
                    .into());
                }
                // A string such as "49" is not absent: it may be a video.
                None => {
                    return Err(err(
                        "num_frames",
                        "`num_frames` must be a number (1, or absent, for an image; 49 or 81 for a video)".into(),
                    )
                    .into());
                }
            },
        };
        crate::workload::check_frames(frames).map_err(|m| err("num_frames", m))?;
        let resolution = Resolution::video(
            uint("width", obj.width)?,
            uint("height", obj.height)?,
            frames,
        );
        resolution.validate().map_err(|m| err("width", m))?;
        let steps = uint("num_inference_steps", obj.num_inference_steps)?;
        if steps == 0 || steps > crate::workload::MAX_STEPS {
            return Err(err(
                "num_inference_steps",
                format!(
                    "expected 1 to {} steps, got {steps}",
                    crate::workload::MAX_STEPS
                ),
            )
            .into());
        }
        let arrivals = [
            ("arrival", obj.arrival),
            ("arrival_s", obj.arrival_s),
            ("timestamp", obj.timestamp),
        ];
        let given: Vec<&str> = arrivals
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| *k)
            .collect();
        if given.len() > 1 {
            return Err(err(
                given[0],
                format!(
                    "the request gives its arrival time twice (`{}`); which one holds is unclear",
                    given.join("` and `")
                ),
            )
            .hint("keep one of arrival, arrival_s and timestamp per request")
            .into());
        }
        let (key, value) = arrivals
            .into_iter()
            .find_map(|(k, v)| Some((k, v?)))
            .ok_or_else(|| {
                err("arrival", "no arrival time".into())
                    .hint("give each request `arrival` (seconds since the start)")
            })?;
        let arrival_s = value
            .number()
            .filter(|x| x.is_finite())
            .ok_or_else(|| err(key, format!("`{key}` is not a number")))?;
        let slo_s = match obj.slo_ms {
            None | Some(json::JsonValue::Null) => None,
            Some(v) => {
                let ms = v
                    .number()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| err("slo_ms", "`slo_ms` must be a positive number".into()))?;
                Some(ms / 1000.0)
            }
        };
        rows.push(Row {
            line: n,
            arrival_s,
            resolution: Some(resolution),
            steps,
            default_steps: false,
            slo_s,
        });
    }
    Ok(rows)
}

/// Reading one vllm-omni line without building a `serde_json::Value` (a map and a string per
/// key, which made a million-line trace take seconds): the keys the importer uses are kept as
/// numbers, every other value is parsed and dropped. Values go through the same parser calls
/// as `Value` would, so the same lines are accepted, with the same error messages; as in a
/// `Value`, a repeated key keeps its last value.
mod json {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    /// A line: an object, or any other JSON value.
    pub enum Line {
        Object(Object),
        NotObject,
    }

    /// The keys the importer reads, when present.
    #[derive(Default)]
    pub struct Object {
        pub width: Option<JsonValue>,
        pub height: Option<JsonValue>,
        pub num_inference_steps: Option<JsonValue>,
        pub num_frames: Option<JsonValue>,
        pub arrival: Option<JsonValue>,
        pub arrival_s: Option<JsonValue>,
        pub timestamp: Option<JsonValue>,
        pub slo_ms: Option<JsonValue>,
    }

    /// The value of a key the importer reads.
    #[derive(Clone, Copy)]
    pub enum JsonValue {
        Number(f64),
        Null,
        Other,
    }

    impl JsonValue {
        /// What `serde_json::Value::as_f64` gives: any JSON number, as `f64`.
        pub fn number(self) -> Option<f64> {
            match self {
                JsonValue::Number(x) => Some(x),
                JsonValue::Null | JsonValue::Other => None,
            }
        }
    }

    /// Any JSON value, parsed and dropped.
    struct Discard;

    impl<'de> Deserialize<'de> for Line {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Line, D::Error> {
            d.deserialize_any(LineVisitor)
        }
    }

    impl<'de> Deserialize<'de> for JsonValue {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JsonValue, D::Error> {
            d.deserialize_any(ValueVisitor)
        }
    }

    impl<'de> Deserialize<'de> for Discard {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Discard, D::Error> {
            d.deserialize_any(ValueVisitor).map(|_| Discard)
        }
    }

    /// An object key: the name of a field of [`Object`], or `None` for any other.
    type Slot = fn(&mut Object) -> &mut Option<JsonValue>;
    struct Key(Option<(&'static str, Slot)>);

    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
            d.deserialize_str(KeyVisitor)
        }
    }

    struct KeyVisitor;

    impl Visitor<'_> for KeyVisitor {
        type Value = Key;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object key")
        }
        fn visit_str<E>(self, key: &str) -> Result<Key, E> {
            Ok(Key(match key {
                "width" => Some(("width", |o| &mut o.width)),
                "height" => Some(("height", |o| &mut o.height)),
                "num_inference_steps" => {
                    Some(("num_inference_steps", |o| &mut o.num_inference_steps))
                }
                "num_frames" => Some(("num_frames", |o| &mut o.num_frames)),
                "arrival" => Some(("arrival", |o| &mut o.arrival)),
                "arrival_s" => Some(("arrival_s", |o| &mut o.arrival_s)),
                "timestamp" => Some(("timestamp", |o| &mut o.timestamp)),
                "slo_ms" => Some(("slo_ms", |o| &mut o.slo_ms)),
                _ => None,
            }))
        }
    }

    struct LineVisitor;

    impl<'de> Visitor<'de> for LineVisitor {
        type Value = Line;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Line, A::Error> {
            let mut obj = Object::default();
            while let Some(Key(field)) = map.next_key()? {
                match field {
                    Some((name, field)) => {
                        let value = map.next_value()?;
                        // A key given twice would leave the request ambiguous (JSON parsers
                        // differ on which wins).
                        if field(&mut obj).replace(value).is_some() {
                            return Err(serde::de::Error::custom(format!(
                                "the key `{name}` is given twice"
                            )));
                        }
                    }
                    None => {
                        map.next_value::<Discard>()?;
                    }
                }
            }
            Ok(Line::Object(obj))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Line, A::Error> {
            ValueVisitor.visit_seq(seq).map(|_| Line::NotObject)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Line, E> {
            Ok(Line::NotObject)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Line, E> {
            Ok(Line::NotObject)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Line, E> {
            Ok(Line::NotObject)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Line, E> {
            Ok(Line::NotObject)
        }
        fn visit_str<E>(self, _: &str) -> Result<Line, E> {
            Ok(Line::NotObject)
        }
        fn visit_unit<E>(self) -> Result<Line, E> {
            Ok(Line::NotObject)
        }
    }

    struct ValueVisitor;

    impl<'de> Visitor<'de> for ValueVisitor {
        type Value = JsonValue;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonValue, A::Error> {
            while map.next_entry::<Discard, Discard>()?.is_some() {}
            Ok(JsonValue::Other)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonValue, A::Error> {
            while seq.next_element::<Discard>()?.is_some() {}
            Ok(JsonValue::Other)
        }
        fn visit_bool<E>(self, _: bool) -> Result<JsonValue, E> {
            Ok(JsonValue::Other)
        }
        fn visit_i64<E>(self, x: i64) -> Result<JsonValue, E> {
            Ok(JsonValue::Number(x as f64))
        }
        fn visit_u64<E>(self, x: u64) -> Result<JsonValue, E> {
            Ok(JsonValue::Number(x as f64))
        }
        fn visit_f64<E>(self, x: f64) -> Result<JsonValue, E> {
            Ok(JsonValue::Number(x))
        }
        fn visit_str<E>(self, _: &str) -> Result<JsonValue, E> {
            Ok(JsonValue::Other)
        }
        fn visit_unit<E>(self) -> Result<JsonValue, E> {
            Ok(JsonValue::Null)
        }
    }
}

/// Reading one `Request(key=value, ...)` line of a vllm-omni `.txt` trace into the same
/// [`json::Object`] a JSON line gives, so both forms go through the same checks.
///
/// Values are Python literals, as `ast.literal_eval` reads them: numbers (with `_` digit
/// separators), strings in single or double quotes with backslash escapes, `None`, `True`,
/// `False`, and bracketed lists, tuples, dicts and sets (skipped whole). Keys the importer
/// reads keep numbers; `None` is a missing value, as `null` is in JSON.
mod repr {
    use super::json::{JsonValue, Object};

    /// Why a line was refused, and the key it was refused at (if any).
    pub struct ReprError {
        pub message: String,
        pub key: Option<String>,
    }

    fn error(message: impl Into<String>, key: Option<&str>) -> ReprError {
        ReprError {
            message: message.into(),
            key: key.map(str::to_string),
        }
    }

    /// The keys of one `Request(...)` line, or why it is not one.
    pub fn parse(line: &str) -> Result<Object, ReprError> {
        let inner = line
            .strip_prefix("Request(")
            .and_then(|l| l.strip_suffix(')'))
            .ok_or_else(|| error("expected `Request(key=value, ...)`", None))?;
        let mut obj = Object::default();
        let mut seen: Vec<&str> = Vec::new();
        let mut rest = inner.trim_start();
        while !rest.is_empty() {
            let key_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let key = &rest[..key_len];
            let after = rest[key_len..].trim_start();
            let Some(after) = after.strip_prefix('=').filter(|_| !key.is_empty()) else {
                return Err(error(
                    format!("expected `key=value`, found `{}`", clip(rest)),
                    None,
                ));
            };
            if key.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(error(format!("`{key}` is not a key name"), Some(key)));
            }
            if seen.contains(&key) {
                // Python refuses a repeated keyword argument; so does this reader.
                return Err(error(format!("`{key}` is given twice"), Some(key)));
            }
            seen.push(key);
            let after = after.trim_start();
            let len = literal_len(after).map_err(|m| error(m, Some(key)))?;
            let value = value_of(&after[..len]).map_err(|m| error(m, Some(key)))?;
            if let Some(slot) = field(&mut obj, key) {
                *slot = Some(value);
            }
            rest = after[len..].trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r.trim_start();
            } else if !rest.is_empty() {
                return Err(error(
                    format!("expected `,` after `{key}`, found `{}`", clip(rest)),
                    Some(key),
                ));
            }
        }
        Ok(obj)
    }

    /// The start of `s`, for messages.
    fn clip(s: &str) -> String {
        s.chars().take(24).collect()
    }

    /// Where the importer keeps the value of `key`, if it reads that key.
    fn field<'a>(obj: &'a mut Object, key: &str) -> Option<&'a mut Option<JsonValue>> {
        Some(match key {
            "width" => &mut obj.width,
            "height" => &mut obj.height,
            "num_inference_steps" => &mut obj.num_inference_steps,
            "num_frames" => &mut obj.num_frames,
            "arrival" => &mut obj.arrival,
            "arrival_s" => &mut obj.arrival_s,
            "timestamp" => &mut obj.timestamp,
            "slo_ms" => &mut obj.slo_ms,
            _ => return None,
        })
    }

    /// The length in bytes of the literal at the start of `s` (which ends at a `,` or the
    /// end outside brackets and quotes).
    fn literal_len(s: &str) -> Result<usize, String> {
        let bytes = s.as_bytes();
        let mut depth: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                q @ (b'\'' | b'"') => i = string_end(bytes, i, q)?,
                open @ (b'[' | b'(' | b'{') => depth.push(match open {
                    b'[' => b']',
                    b'(' => b')',
                    _ => b'}',
                }),
                // The guard pops the bracket a closer ends; a mismatch is refused here, a
                // match falls through to the no-op arm below.
                close @ (b']' | b')' | b'}') if depth.pop() != Some(close) => {
                    return Err(format!("unbalanced `{}`", char::from(close)));
                }
                b',' if depth.is_empty() => break,
                _ => {}
            }
            i += 1;
        }
        if let Some(close) = depth.last() {
            return Err(format!("missing `{}`", char::from(*close)));
        }
        let len = s[..i].trim_end().len();
        if len == 0 {
            return Err("a key without a value".to_string());
        }
        Ok(len)
    }

    /// The index of the quote closing the string that opens at `start` with `quote`.
    fn string_end(bytes: &[u8], start: usize, quote: u8) -> Result<usize, String> {
        let mut i = start + 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b if b == quote => return Ok(i),
                _ => i += 1,
            }
        }
        Err("a string without its closing quote".to_string())
    }

    /// The value of one literal: a number, `None`, or anything else Python reads as a literal.
    fn value_of(lit: &str) -> Result<JsonValue, String> {
        match lit {
            "None" => return Ok(JsonValue::Null),
            "True" | "False" => return Ok(JsonValue::Other),
            _ => {}
        }
        let first = lit.as_bytes()[0];
        if matches!(first, b'\'' | b'"' | b'[' | b'(' | b'{') {
            // A string ends at its closing quote; anything after it (`'a' 'b'` aside) is not
            // one literal.
            return Ok(JsonValue::Other);
        }
        if first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.') {
            let digits: String = lit.chars().filter(|c| *c != '_').collect();
            // Rust also reads `inf` and `nan`, which are not Python literals; a leading sign
            // or digit rules them out except after a sign.
            let body = digits.trim_start_matches(['-', '+']);
            if body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
                && let Ok(x) = digits.parse::<f64>()
            {
                return Ok(JsonValue::Number(x));
            }
        }
        Err(format!("`{lit}` is not a Python literal"))
    }
}

/// Where a quoted CSV field opens that no quote closes (it would run to the end of the file,
/// swallowing every row after it): its 1-based line and 0-based column. Quotes count as the
/// `csv` crate counts them: one opens a quoted field only at the start of a field, and inside
/// one `""` is a quote.
pub fn unterminated_quote(text: &str) -> Option<(u64, usize)> {
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(q) = memchr::memchr(b'"', &b[i..]).map(|k| i + k) {
        let opens = q == 0 || matches!(b[q - 1], b',' | b'\n' | b'\r');
        if !opens {
            i = q + 1;
            continue;
        }
        // The closing quote: one not followed by another.
        let mut j = q + 1;
        loop {
            match memchr::memchr(b'"', &b[j..]).map(|k| j + k) {
                None => {
                    let line_start = b[..q]
                        .iter()
                        .rposition(|&c| c == b'\n')
                        .map_or(0, |k| k + 1);
                    let line = 1 + crate::workload::trace::count_newlines(&text[..q]) as u64;
                    let column = b[line_start..q].iter().filter(|&&c| c == b',').count();
                    return Some((line, column));
                }
                Some(c) if b.get(c + 1) == Some(&b'"') => j = c + 2,
                Some(c) => {
                    i = c + 1;
                    break;
                }
            }
        }
    }
    None
}

fn alibaba_rows(text: &str, source: &str, default_steps: u32) -> Result<Vec<Row>> {
    let text = text.trim_start_matches('\u{feff}');
    if let Some((line, column)) = unterminated_quote(text) {
        let header: Vec<String> = text
            .lines()
            .next()
            .unwrap_or_default()
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        let mut e = InputError::new(
            source,
            "a quoted field opens here and no quote closes it: it would run to the end of the file, taking every row after it as its text",
        )
        .line(line)
        .hint("close the quote (a quote inside a quoted field is written twice, \"\"), or remove it");
        if line > 1
            && let Some(name) = header.get(column)
        {
            e = e.field(name.as_str());
        }
        return Err(e.into());
    }
    // Headers are trimmed by the reader; cells as they are read (trimming a record in the
    // reader copies it, which dominated the time of a large import).
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .comment(Some(b'#'))
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| InputError::new(source, format!("unreadable header: {e}")).line(1))?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let find = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| header.iter().position(|h| h == n))
    };
    let time_names = ["timestamp", "arrival_time", "submit_time", "time"];
    let time = find(&time_names).ok_or_else(|| {
        InputError::new(source, "no arrival time column")
            .line(1)
            .hint(format!("name it one of: {}", time_names.join(", ")))
    })?;
    let steps_col = find(&["num_inference_steps", "steps", "inference_steps"]);
    // Resolution columns, when the export has them: read, not replaced by draws from the mix.
    let size_cols = match (find(&["width"]), find(&["height"])) {
        (Some(w), Some(h)) => Some((w, h)),
        (None, None) => None,
        (w, _) => {
            let (has, lacks) = if w.is_some() {
                ("width", "height")
            } else {
                ("height", "width")
            };
            return Err(InputError::new(
                source,
                format!("the header has a `{has}` column but no `{lacks}`"),
            )
            .line(1)
            .hint("give both (rows with both cells empty get a resolution drawn from --mix), or neither")
            .into());
        }
    };
    let mut rows = Vec::new();
    let mut rec = csv::ByteRecord::new();
    while rdr.read_byte_record(&mut rec).map_err(|e| {
        let line = e.position().map_or(0, |p| p.line());
        InputError::new(source, format!("malformed CSV: {e}")).line(line)
    })? {
        let n = rec.position().map_or(0, |p| p.line());
        let cell = |c: usize, name: &str| -> Result<&str> {
            let bytes = rec.get(c).ok_or_else(|| {
                InputError::new(source, format!("missing `{name}` cell"))
                    .line(n)
                    .field(name)
            })?;
            // The text is UTF-8 and the reader splits only at ASCII bytes.
            let cell = std::str::from_utf8(bytes).map_err(|e| {
                InputError::new(source, format!("malformed CSV: {e}"))
                    .line(n)
                    .field(name)
            })?;
            Ok(cell.trim())
        };
        let t = cell(time, &header[time])?;
        let arrival_s: f64 = t
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite())
            .ok_or_else(|| {
                InputError::new(source, format!("`{t}` is not a number of seconds"))
                    .line(n)
                    .field(header[time].as_str())
            })?;
        let steps = match steps_col {
            None => default_steps,
            Some(c) => {
                let s = cell(c, &header[c])?;
                s.parse::<u32>()
                    .ok()
                    .filter(|x| (1..=crate::workload::MAX_STEPS).contains(x))
                    .ok_or_else(|| {
                        InputError::new(
                            source,
                            format!(
                                "`{s}` is not a step count from 1 to {}",
                                crate::workload::MAX_STEPS
                            ),
                        )
                        .line(n)
                        .field(header[c].as_str())
                    })?
            }
        };
        let resolution = match size_cols {
            None => None,
            Some((w, h)) => {
                let (ws, hs) = (cell(w, "width")?, cell(h, "height")?);
                if ws.is_empty() && hs.is_empty() {
                    None
                } else {
                    let side = |s: &str, name: &str| -> Result<u32> {
                        s.parse::<u32>().map_err(|_| {
                            InputError::new(source, format!("`{s}` is not a number of pixels"))
                                .line(n)
                                .field(name)
                                .into()
                        })
                    };
                    let r = Resolution::new(side(ws, "width")?, side(hs, "height")?);
                    r.validate()
                        .map_err(|m| InputError::new(source, m).line(n).field("width,height"))?;
                    Some(r)
                }
            }
        };
        rows.push(Row {
            line: n,
            arrival_s,
            resolution,
            steps,
            default_steps: steps_col.is_none(),
            slo_s: None,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::SloBases;

    fn opts(format: LogFormat, time_scale: f64) -> ImportOptions {
        ImportOptions {
            format,
            time_scale,
            mix: Mix::Uniform(crate::workload::mix::paper_resolutions()),
            sampling: Sampling::Stratified,
            seed: 7,
            steps: 28,
            slo: SloDefaults {
                bases: SloBases::paper(),
                scale: 1.0,
            },
        }
    }

    #[test]
    fn vllm_omni_rows_keep_their_fields_and_rebase_time() {
        let text = r#"{"prompt": "a cat", "width": 512, "height": 512, "num_inference_steps": 20, "slo_ms": 2500, "arrival": 10.5}
{"width": 1024, "height": 1024, "num_inference_steps": 28, "arrival": 10.0}
"#;
        let w = import(text, "t.jsonl", &opts(LogFormat::VllmOmni, 2.0)).unwrap();
        // Sorted by arrival: the 1024 px row (t = 10.0) first, at 0; the other at 0.5 / 2.
        let r = &w.requests;
        assert_eq!(r[0].resolution, Resolution::square(1024));
        assert_eq!(r[0].arrival, Nanos(0));
        assert_eq!(r[0].steps, 28);
        // No slo_ms: the scenario's base for 1024 px applies.
        assert_eq!(
            r[0].slo(),
            SloBases::paper().scaled(r[0].resolution, 1.0).unwrap()
        );
        assert_eq!(r[1].arrival, Nanos::from_millis(250.0));
        assert_eq!(r[1].slo(), Nanos::from_millis(2500.0));
        assert_eq!(r[1].steps, 20);
    }

    #[test]
    fn vllm_omni_errors_name_the_line_and_field() {
        let e = import(
            "{\"width\": 512, \"height\": 512, \"arrival\": 0}\n",
            "t.jsonl",
            &opts(LogFormat::VllmOmni, 1.0),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("t.jsonl") && e.contains("num_inference_steps"),
            "{e}"
        );
        let e = import(
            "{\"width\": 512, \"height\": 512, \"num_inference_steps\": 4, \"arrival\": 0}\nnot json\n",
            "t.jsonl",
            &opts(LogFormat::VllmOmni, 1.0),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(":2"), "{e}");
        // A video the VAE cannot encode (not 4k + 1 frames), and one with no SLO base.
        let e = import(
            "{\"width\": 512, \"height\": 512, \"num_inference_steps\": 4, \"num_frames\": 50, \"arrival\": 0}\n",
            "t.jsonl",
            &opts(LogFormat::VllmOmni, 1.0),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("t.jsonl:1")
                && e.contains("num_frames")
                && e.contains("50 frames is not 4k + 1"),
            "{e}"
        );
        let e = import(
            "{\"width\": 512, \"height\": 512, \"num_inference_steps\": 4, \"num_frames\": 49, \"arrival\": 0}\n",
            "t.jsonl",
            &opts(LogFormat::VllmOmni, 1.0),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no SLO for 512x512x49f"), "{e}");
        // A resolution the scenario has no SLO base for, and no slo_ms.
        let e = import(
            "{\"width\": 1024, \"height\": 768, \"num_inference_steps\": 4, \"arrival\": 0}\n",
            "t.jsonl",
            &opts(LogFormat::VllmOmni, 1.0),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("t.jsonl:1") && e.contains("no SLO"), "{e}");
    }

    /// The importer reads each line without building a `serde_json::Value`; it must accept and
    /// refuse the same lines (with the same message) and see the same numbers as one.
    #[test]
    fn vllm_omni_lines_read_as_a_json_value_would() {
        let nested = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let lines = [
            r#"{"prompt": "a cat", "width": 512, "height": 512, "num_inference_steps": 20, "seed": 0, "arrival": 4.876, "slo_ms": 3000}"#,
            r#"{"wid\u0074h": 512, "\"quoted\"": 1, "h\u00e9ight": 2}"#,
            r#"{"width": null, "slo_ms": null, "timestamp": null}"#,
            r#"{"width": "512", "arrival": true, "timestamp": [1, {"a": 2}], "slo_ms": {}}"#,
            r#"{"width": -3, "height": 18446744073709551615, "arrival": -0.5, "num_frames": 1.0}"#,
            r#"{"height": 123456789012345678901234567890, "slo_ms": 1e-9, "arrival": 1E3}"#,
            r#"{"a": {"b": {"width": 5}}, "c": [{"height": 6}]}"#,
            r#"{"seed": 1e400}"#,
            r#"{"prompt": [1, [2, 1e400]]}"#,
            r#"{"width": 1} trailing"#,
            r#"{"width": 1,}"#,
            r#"{"a": "\ud800"}"#,
            "{\"a\": \"control \u{1} character\"}",
            r#"{"width": 01}"#,
            r#"{"width": 1."#,
            r#"{}"#,
            r#"[1, 2, {"width": 3}]"#,
            r#""text""#,
            "12",
            "-0.5",
            "null",
            "true",
            "not json",
            "{",
            &nested,
        ];
        // The one difference: a key the importer reads, given twice, is refused (a JSON value
        // keeps the last).
        let twice = r#"{"width": 512, "width": 1024, "arrival_s": 1}"#;
        let e = serde_json::from_str::<json::Line>(twice)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("the key `width` is given twice"), "{e}");
        for line in lines {
            let value = serde_json::from_str::<serde_json::Value>(line);
            let read = serde_json::from_str::<json::Line>(line);
            match (value, read) {
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{line}"),
                (Ok(serde_json::Value::Object(map)), Ok(json::Line::Object(obj))) => {
                    let keys = [
                        ("width", obj.width),
                        ("height", obj.height),
                        ("num_inference_steps", obj.num_inference_steps),
                        ("num_frames", obj.num_frames),
                        ("arrival", obj.arrival),
                        ("arrival_s", obj.arrival_s),
                        ("timestamp", obj.timestamp),
                        ("slo_ms", obj.slo_ms),
                    ];
                    for (key, read) in keys {
                        let value = map.get(key);
                        assert_eq!(value.is_some(), read.is_some(), "{line}: {key}");
                        assert_eq!(
                            value.and_then(serde_json::Value::as_f64),
                            read.and_then(json::JsonValue::number),
                            "{line}: {key}"
                        );
                        assert_eq!(
                            value.is_some_and(serde_json::Value::is_null),
                            matches!(read, Some(json::JsonValue::Null)),
                            "{line}: {key}"
                        );
                    }
                }
                (Ok(v), Ok(json::Line::NotObject)) => assert!(!v.is_object(), "{line}"),
                (v, _) => panic!("{line}: a JsonValue gives {v:?}, the importer does not"),
            }
        }
    }

    /// Reading in blocks gives the rows and the first error of reading line by line.
    #[test]
    fn vllm_omni_blocks_keep_line_numbers_and_the_first_error() {
        let row = |i: usize| {
            format!(
                r#"{{"width": 512, "height": 512, "num_inference_steps": {}, "arrival": {i}}}"#,
                1 + i % 50
            )
        };
        let mut text = String::from("\u{feff}# a comment\r\n\r\n");
        for i in 0..40 {
            text.push_str(&row(i));
            text.push_str(if i % 3 == 0 { "\r\n" } else { "\n\n" });
        }
        let whole = vllm_omni_rows(&text, "t.jsonl", usize::MAX).unwrap();
        assert_eq!(whole.len(), 40);
        let lines: Vec<u64> = whole.iter().map(|r| r.line).collect();
        for block_bytes in [0, 1, 7, 80, 500, text.len()] {
            assert_eq!(
                line_blocks(&text, block_bytes).concat(),
                text,
                "{block_bytes}"
            );
            let rows = vllm_omni_rows(&text, "t.jsonl", block_bytes).unwrap();
            assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), lines);
            assert_eq!(
                rows.iter()
                    .map(|r| (r.steps, r.arrival_s))
                    .collect::<Vec<_>>(),
                whole
                    .iter()
                    .map(|r| (r.steps, r.arrival_s))
                    .collect::<Vec<_>>()
            );
        }
        // Two bad lines: the earlier is reported, whichever block it is in.
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines[30] =
            r#"{"width": 500, "height": 512, "num_inference_steps": 4, "arrival": 0}"#.into();
        lines[60] = "not json".into();
        let bad = lines.join("\n");
        for block_bytes in [0, 1, 80, 500, usize::MAX] {
            let e = vllm_omni_rows(&bad, "t.jsonl", block_bytes)
                .err()
                .expect("a bad line");
            assert!(
                e.to_string().starts_with("t.jsonl:31: field `width`"),
                "{block_bytes}: {e}"
            );
        }
    }

    #[test]
    fn vllm_omni_txt_sample_imports_as_its_jsonl_twin() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/samples");
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        let o = opts(LogFormat::VllmOmni, 1.0);
        let jsonl = import(&read("vllm-omni-dit.jsonl"), "a.jsonl", &o).unwrap();
        let txt = import(&read("vllm-omni-dit.txt"), "a.txt", &o).unwrap();
        assert_eq!(txt.requests.len(), 24);
        assert_eq!(txt.requests, jsonl.requests);
        // The first request (t = 4.876 s) carries slo_ms=3000.0; the second slo_ms=None.
        assert_eq!(txt.requests[0].slo(), Nanos::from_millis(3000.0));
        assert!((txt.requests[1].arrival.as_secs() - (14.05 - 4.876)).abs() < 1e-6);
    }

    #[test]
    fn vllm_omni_txt_values_are_python_literals() {
        let text = "\n# made up\nRequest(prompt='a, (tricky) \\'one\\'', width=1_024, height=1024, num_inference_steps=28, timestamp=2.5e0, slo_ms=None, image_paths=['x.png', \"y,z\"], extra={'k': (1, 2)}, ok=True)\nRequest(prompt=\"b\", width=512, height=512, num_inference_steps=20, timestamp=3, slo_ms=1500)\n";
        let w = import(text, "t.txt", &opts(LogFormat::VllmOmni, 1.0)).unwrap();
        let r = &w.requests;
        assert_eq!(r[0].resolution, Resolution::square(1024));
        assert_eq!(r[0].steps, 28);
        assert_eq!(
            r[0].slo(),
            SloBases::paper().scaled(r[0].resolution, 1.0).unwrap()
        );
        assert_eq!(r[1].arrival, Nanos::from_millis(500.0));
        assert_eq!(r[1].slo(), Nanos::from_millis(1500.0));
    }

    #[test]
    fn vllm_omni_num_frames_reads_videos() {
        // The form of vLLM-Omni's `cogvideox_trace.txt`: 49 frames of 720x480, with an SLO.
        let text = "Request(width=720, height=480, num_inference_steps=50, timestamp=0, num_frames=49, slo_ms=120000)\n\
                    Request(width=512, height=512, num_inference_steps=20, timestamp=1.5, num_frames=1, slo_ms=2000)\n";
        let w = import(text, "t.txt", &opts(LogFormat::VllmOmni, 1.0)).unwrap();
        let clip = Resolution::video(720, 480, 49);
        assert_eq!(w.requests[0].resolution, clip);
        assert_eq!(w.requests[0].resolution.tokens(), 13 * 30 * 45);
        assert_eq!(w.requests[0].slo(), Nanos::from_secs(120.0));
        assert_eq!(w.requests[1].resolution, Resolution::square(512));
        // JSON lines too; the trace they become keeps the frames and reads back the same.
        let json = "{\"width\": 1280, \"height\": 720, \"num_inference_steps\": 50, \"num_frames\": 81, \"arrival\": 0}\n\
                    {\"width\": 1024, \"height\": 1024, \"num_inference_steps\": 28, \"num_frames\": null, \"arrival\": 2}\n";
        let imported = import_rows(json, "t.jsonl", &opts(LogFormat::VllmOmni, 1.0)).unwrap();
        assert_eq!(
            imported.rows[0].resolution,
            Resolution::video(1280, 720, 81)
        );
        assert_eq!(imported.rows[0].slo, None);
        let csv = crate::workload::trace::rows_to_csv(&imported.rows);
        assert_eq!(
            csv,
            "id,arrival_s,width,height,frames,steps,slo_s\n0,0.000000000,1280,720,81,50,\n1,2.000000000,1024,1024,1,28,\n"
        );
        // Fractional, negative or absurd frame counts are refused by name.
        for (frames, phrase) in [
            ("1.5", "not a frame count"),
            ("-3", "not a frame count"),
            ("4097", "not a frame count"),
        ] {
            let line = format!(
                "{{\"width\": 512, \"height\": 512, \"num_inference_steps\": 4, \"num_frames\": {frames}, \"arrival\": 0, \"slo_ms\": 9}}\n"
            );
            let e = import(&line, "t.jsonl", &opts(LogFormat::VllmOmni, 1.0))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("t.jsonl:1") && e.contains(phrase),
                "{frames}: {e}"
            );
        }
    }

    #[test]
    fn vllm_omni_txt_errors_name_the_line_and_field() {
        let good = "Request(width=512, height=512, num_inference_steps=4, timestamp=0)\n";
        let err = |second: &str| {
            import(
                &format!("{good}{second}\n"),
                "t.txt",
                &opts(LogFormat::VllmOmni, 1.0),
            )
            .unwrap_err()
            .to_string()
        };
        for (line, expect) in [
            (
                "Request(width=512, height=512, timestamp=1)",
                "num_inference_steps",
            ),
            (
                "Request(width=abc, height=512, num_inference_steps=4, timestamp=1)",
                "`abc` is not a Python literal",
            ),
            (
                "Request(width=512, width=256, height=512, num_inference_steps=4, timestamp=1)",
                "`width` is given twice",
            ),
            (
                "Request(width=512, height=512, num_inference_steps=4, timestamp=1, prompt='open)",
                "closing quote",
            ),
            (
                "Request(width=512 height=512, num_inference_steps=4, timestamp=1)",
                "`512 height=512` is not a Python literal",
            ),
            (
                "Request(width=512, height=512, num_inference_steps=4, timestamp=1, num_frames=47)",
                "47 frames is not 4k + 1",
            ),
            (
                "Request(width=512, height=512, num_inference_steps=4)",
                "no arrival time",
            ),
            (
                "{\"width\": 512, \"height\": 512, \"num_inference_steps\": 4, \"timestamp\": 1}",
                "expected `Request(key=value, ...)`",
            ),
            (
                "Request(width=512, height=512, num_inference_steps=4, timestamp=inf)",
                "`inf` is not a Python literal",
            ),
        ] {
            let e = err(line);
            assert!(e.contains("t.txt:2"), "{line}: {e}");
            assert!(e.contains(expect), "{line}: expected `{expect}` in {e}");
        }
        // The field is named where one is at fault.
        let e = err("Request(width=512, height=[1, 2, num_inference_steps=4, timestamp=1)");
        assert!(e.contains("height") && e.contains("missing `]`"), "{e}");
        let e = err("Request(width=512, height=512, num_inference_steps=0, timestamp=1)");
        assert!(e.contains("num_inference_steps"), "{e}");
    }

    #[test]
    fn alibaba_rows_get_resolutions_from_the_mix() {
        let mut text = String::from("request_id,timestamp,model,num_inference_steps\n");
        for i in 0..40 {
            text.push_str(&format!(
                "r{i},{},flux,{}\n",
                1000.0 + f64::from(i) * 3.0,
                20 + i % 3
            ));
        }
        let w = import(&text, "g.csv", &opts(LogFormat::AlibabaGenai, 1.5)).unwrap();
        assert_eq!(w.len(), 40);
        // Stratified over four resolutions: ten each, in some order.
        for res in crate::workload::mix::paper_resolutions() {
            assert_eq!(
                w.requests.iter().filter(|r| r.resolution == res).count(),
                10
            );
        }
        assert_eq!(w.requests[1].arrival, Nanos::from_secs(2.0));
        assert_eq!(w.requests[2].steps, 22);
        // The same seed draws the same resolutions.
        let again = import(&text, "g.csv", &opts(LogFormat::AlibabaGenai, 1.5)).unwrap();
        assert_eq!(again.requests, w.requests);
        // No steps column: the scenario's steps.
        let w = import(
            "timestamp\n5\n6\n",
            "g.csv",
            &opts(LogFormat::AlibabaGenai, 1.0),
        )
        .unwrap();
        assert!(w.requests.iter().all(|r| r.steps == 28));
    }

    #[test]
    fn alibaba_cells_are_trimmed_and_may_be_quoted() {
        let text =
            "\u{feff}Timestamp , Steps\n\u{a0}5 ,\"28\"\u{3000}\n# a comment\n\" 6.5\",\t20\n";
        let w = import(text, "g.csv", &opts(LogFormat::AlibabaGenai, 1.0)).unwrap();
        assert_eq!(w.requests[1].arrival, Nanos::from_secs(1.5));
        assert_eq!((w.requests[0].steps, w.requests[1].steps), (28, 20));
        let e = import(
            "timestamp,steps\n1,28\n2, 0 \n",
            "g.csv",
            &opts(LogFormat::AlibabaGenai, 1.0),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("g.csv:3") && e.contains("`0` is not a step count"),
            "{e}"
        );
    }

    #[test]
    fn an_unclosed_quote_is_an_error_naming_its_line_not_a_short_import() {
        let mut text = String::from("timestamp,prompt,steps\n0,a,28\n1,\"b, c\",28\n");
        text.push_str("2,\"oops,28\n");
        for i in 3..10_000 {
            text.push_str(&format!("{i},p,28\n"));
        }
        let e = import(&text, "g.csv", &opts(LogFormat::AlibabaGenai, 1.0))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("g.csv:4: field `prompt`:"), "{e}");
        assert!(e.contains("no quote closes it"), "{e}");
        // Closed quotes, doubled quotes inside, quotes within a field: all read.
        let ok =
            "timestamp,prompt,steps\n0,\"a \"\"b\"\" c\",28\n1,x\"y,28\n2,\"multi\nline\",28\n";
        assert_eq!(unterminated_quote(ok), None);
        let w = import(ok, "g.csv", &opts(LogFormat::AlibabaGenai, 1.0)).unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!(unterminated_quote("a\n\"\"\""), Some((2, 0)));
    }

    #[test]
    fn alibaba_width_and_height_columns_are_read_not_drawn() {
        let text = "timestamp,width,height\n0,1024,768\n1,,\n2,512,512\n";
        let rows = import_rows(text, "g.csv", &opts(LogFormat::AlibabaGenai, 1.0))
            .unwrap()
            .rows;
        assert_eq!(rows[0].resolution, Resolution::new(1024, 768));
        assert_eq!(rows[2].resolution, Resolution::square(512));
        let e = import_rows(
            "timestamp,width\n0,512\n",
            "g.csv",
            &opts(LogFormat::AlibabaGenai, 1.0),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("g.csv:1") && e.contains("no `height`"), "{e}");
        let e = import_rows(
            "timestamp,width,height\n0,500,512\n",
            "g.csv",
            &opts(LogFormat::AlibabaGenai, 1.0),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("g.csv:2") && e.contains("multiple of 16"), "{e}");
    }

    #[test]
    fn vllm_omni_ambiguous_lines_are_refused() {
        let line = |extra: &str| {
            format!(
                "{{\"width\": 512, \"height\": 512, \"num_inference_steps\": 4, \"arrival\": 0{extra}}}\n"
            )
        };
        for (extra, expect) in [
            (", \"timestamp\": 5", "arrival time twice"),
            (", \"num_frames\": 0", "not a frame count"),
            (", \"width\": 1024", "given twice"),
        ] {
            let e = import(&line(extra), "t.jsonl", &opts(LogFormat::VllmOmni, 1.0))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("t.jsonl:1") && e.contains(expect),
                "{extra}: {e}"
            );
        }
        assert!(
            import(
                &line(", \"num_frames\": 1"),
                "t.jsonl",
                &opts(LogFormat::VllmOmni, 1.0)
            )
            .is_ok()
        );
    }

    #[test]
    fn alibaba_errors_name_the_line_and_field() {
        let e = import(
            "id,when\n1,2\n",
            "g.csv",
            &opts(LogFormat::AlibabaGenai, 1.0),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no arrival time column"), "{e}");
        let e = import(
            "timestamp,steps\n1,28\nsoon,28\n",
            "g.csv",
            &opts(LogFormat::AlibabaGenai, 1.0),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("g.csv:3") && e.contains("timestamp"), "{e}");
        let e = import(
            "timestamp\n1\n",
            "g.csv",
            &opts(LogFormat::AlibabaGenai, 0.0),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("time scale"), "{e}");
    }

    #[test]
    fn times_the_simulator_cannot_hold_are_refused_not_clamped() {
        let row = |arrival: &str, slo: &str| {
            format!(
                r#"{{"width": 512, "height": 512, "num_inference_steps": 20, "arrival": {arrival}{slo}}}"#
            )
        };
        let v = opts(LogFormat::VllmOmni, 1.0);
        // An SLO that rounds to 0 ns.
        let e = import(&row("0", r#", "slo_ms": 1e-9"#), "t.jsonl", &v).unwrap_err();
        assert!(e.to_string().contains("t.jsonl:1"), "{e}");
        // Arrivals whose difference overflows.
        let text = format!("{}\n{}\n", row("-1e308", ""), row("1e308", ""));
        let e = import(&text, "t.jsonl", &v).unwrap_err();
        assert!(
            e.to_string().contains("t.jsonl:2") && e.to_string().contains("horizon"),
            "{e}"
        );
        // A time scale that sends the second arrival past the horizon.
        let text = format!("{}\n{}\n", row("0", ""), row("1", ""));
        let e = import(&text, "t.jsonl", &opts(LogFormat::VllmOmni, 1e-300)).unwrap_err();
        assert!(e.to_string().contains("horizon"), "{e}");
        // An ordinary one still reads.
        assert_eq!(import(&text, "t.jsonl", &v).unwrap().len(), 2);
    }

    #[test]
    fn millisecond_epochs_and_non_numeric_frames_are_refused_not_misread() {
        let row = |arrival: &str, extra: &str| {
            format!(
                r#"{{"width": 512, "height": 512, "num_inference_steps": 20, "arrival": {arrival}{extra}}}"#
            )
        };
        // Unix times in milliseconds, 1.5 s apart: read as seconds they would be 25 min apart.
        let text = format!(
            "{}\n{}\n",
            row("1764460800000", ""),
            row("1764460801500", "")
        );
        let e = import(&text, "t.jsonl", &opts(LogFormat::VllmOmni, 1.0)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("t.jsonl:1") && msg.contains("milliseconds"),
            "{msg}"
        );
        assert!(msg.contains("--time-scale 1000"), "{msg}");
        // With the time scale dividing by a thousand they are read as milliseconds.
        let w = import(&text, "t.jsonl", &opts(LogFormat::VllmOmni, 1000.0)).unwrap();
        assert_eq!(w.requests[1].arrival, Nanos::from_millis(1500.0));
        // Unix times in seconds are fine.
        let secs = format!("{}\n{}\n", row("1764460800", ""), row("1764460801.5", ""));
        let w = import(&secs, "t.jsonl", &opts(LogFormat::VllmOmni, 1.0)).unwrap();
        assert_eq!(w.requests[1].arrival, Nanos::from_millis(1500.0));
        // The same check in the Alibaba CSV.
        let csv = "timestamp\n1764460800000\n1764460801500\n";
        let e = import(csv, "g.csv", &opts(LogFormat::AlibabaGenai, 1.0)).unwrap_err();
        assert!(e.to_string().contains("g.csv:2"), "{e}");
        // num_frames as a string is not taken for absent.
        let e = import(
            &row("0", r#", "num_frames": "49""#),
            "t.jsonl",
            &opts(LogFormat::VllmOmni, 1.0),
        )
        .unwrap_err();
        assert!(e.to_string().contains("num_frames"), "{e}");
        let ok = row("0", r#", "num_frames": 1"#);
        assert!(import(&ok, "t.jsonl", &opts(LogFormat::VllmOmni, 1.0)).is_ok());
    }
}
