//! The trace CSV format: `id,arrival_s,width,height[,frames],steps,slo_s[,encode_s,decode_s][,prompt_id]`.
//!
//! Traces let a run replay exactly the requests of another run, of another tool, or of a
//! production log, and they are how generated workloads are saved for inspection. The format
//! is deliberately plain CSV so that a spreadsheet or three lines of Python can write one.
//!
//! Format (see `traces/README.md` for the user-facing description):
//! - A header line names the columns; columns may come in any order. Required: `arrival_s`
//!   (seconds since the start of the run, >= 0), `width`, `height` (pixels, multiples of 16),
//!   `steps` (denoising steps, >= 1). Optional: `id` (a u64 label reported in outputs;
//!   default: the 0-based row index; must be unique) and `slo_s` (seconds from arrival to
//!   deadline, > 0) and `prompt_id` (a u64 naming the prompt, which an approximate cache
//!   matches requests by; an empty cell: no prompt key) and `frames` (output frames: 1 for an
//!   image, `4k + 1` up to [`MAX_FRAMES`](crate::workload::MAX_FRAMES) for a video clip; absent
//!   or an empty cell: 1) and `encode_s`, `decode_s` (the request's own time on the encode and
//!   decode pools of disaggregated stages, seconds, 0 to [`MAX_STAGE_TIME`]; an empty cell: the
//!   pools' model; see [`StageTimes`]). Column names are matched case-insensitively; any other
//!   column is an error, so that a misspelt `slo_s` is not silently ignored.
//! - A row's `slo_s` is its SLO at scale 1: with [`SloDefaults`] (the scenario's SLO settings,
//!   `--slo-scale`), the deadline is `arrival + scale * slo_s`, so a scale loosens or tightens
//!   every request of a trace alike. A row with no `slo_s` (column absent or cell empty) takes
//!   `scale * base(resolution)`; with neither, the row is an error. Without defaults the scale
//!   is 1. A request finishing exactly at its deadline meets it.
//! - A trace is replayed faster or slower (`simulate --trace --time-scale`) by
//!   [`Workload::time_scaled`] after reading: gaps between arrivals divided by a factor, SLOs
//!   unchanged.
//! - Cells are trimmed; a UTF-8 byte-order mark, CRLF line endings, blank lines and lines
//!   starting with `#` are tolerated. Each record is one line (CSV quoting works, but a quoted
//!   field cannot span lines; no column needs that).
//! - **Arrivals must be non-decreasing in file order.** An out-of-order row is refused (naming
//!   the line) rather than silently sorted, because a trace out of order is more often a
//!   broken export than an intention, and request ids in arrival order are what the rest of
//!   the simulator reports; sorting the file is a one-line fix the user can make knowingly.
//!
//! - `steps` is the request's full step count: a cache hit is a property of the serving
//!   system, applied when the trace is replayed with a cache (`workload/cache.rs`), so [`to_csv`]
//!   writes a hit's steps before the cache shortened them, `prompt_id` only when some
//!   request has a key, `frames` (after `height`) only when some request is a video, and
//!   `encode_s,decode_s` (after `slo_s`) only when some request has a stage time of its own
//!   (otherwise the six columns above, as before: image traces are unchanged).
//!
//! Seconds are read exactly: a plain decimal with at most 9 fractional digits is converted to
//! integer nanoseconds without going through `f64`, and [`to_csv`] writes times with
//! [`Nanos::secs_string`], so `parse_trace(to_csv(w)) == w` holds bit for bit. Other numeric
//! forms (`1e3`, more than 9 decimals) go through `f64` and are rounded to the nanosecond.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, InputError, Result};
use crate::time::Nanos;
use crate::workload::prompt::PromptKey;
use crate::workload::{
    MAX_STAGE_TIME, Request, RequestId, Resolution, SloBases, StageTimes, Workload,
};

/// Where deadlines come from when a trace row has no `slo_s`.
#[derive(Clone, Debug, PartialEq)]
pub struct SloDefaults {
    pub bases: SloBases,
    pub scale: f64,
}

/// The header [`to_csv`] writes; also the full list of accepted column names.
pub const TRACE_HEADER: &str = "id,arrival_s,width,height,steps,slo_s";

const ACCEPTED: [&str; 10] = [
    "id",
    "arrival_s",
    "width",
    "height",
    "frames",
    "steps",
    "slo_s",
    "encode_s",
    "decode_s",
    "prompt_id",
];

/// The header [`to_csv`] writes when some request carries a prompt key.
pub const TRACE_HEADER_WITH_PROMPTS: &str = "id,arrival_s,width,height,steps,slo_s,prompt_id";
const REQUIRED: [&str; 4] = ["arrival_s", "width", "height", "steps"];

/// Column positions, by accepted name.
struct Columns {
    id: Option<usize>,
    arrival: usize,
    width: usize,
    height: usize,
    frames: Option<usize>,
    steps: usize,
    slo: Option<usize>,
    encode: Option<usize>,
    decode: Option<usize>,
    prompt: Option<usize>,
    count: usize,
}

/// Reads the header record into column positions, refusing unknown, duplicate and missing
/// columns.
fn read_header(header: &csv::StringRecord, source: &str, line: u64) -> Result<Columns> {
    let err = |msg: String| InputError::new(source, msg).line(line);
    let mut found: HashMap<&'static str, usize> = HashMap::new();
    let mut unknown: Vec<String> = Vec::new();
    for (i, name) in header.iter().enumerate() {
        let lower = name.to_ascii_lowercase();
        match ACCEPTED.iter().find(|a| **a == lower) {
            Some(a) => {
                if found.insert(a, i).is_some() {
                    return Err(err(format!(
                        "column `{a}` appears twice in the header; expected each column once"
                    ))
                    .field(*a)
                    .into());
                }
            }
            None => unknown.push(format!("`{name}`")),
        }
    }
    if !unknown.is_empty() {
        return Err(err(format!(
            "unknown column(s) {} in the header",
            unknown.join(", ")
        ))
        .hint(format!(
            "accepted columns are {} (arrival_s, width, height and steps are required)",
            ACCEPTED.join(", ")
        ))
        .into());
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|r| !found.contains_key(r))
        .collect();
    if !missing.is_empty() {
        return Err(err(format!(
            "the header lacks required column(s) {}",
            missing.join(", ")
        ))
        .hint(format!(
            "the header should read `{TRACE_HEADER}` (id and slo_s are optional)"
        ))
        .into());
    }
    Ok(Columns {
        id: found.get("id").copied(),
        arrival: found["arrival_s"],
        width: found["width"],
        height: found["height"],
        frames: found.get("frames").copied(),
        steps: found["steps"],
        slo: found.get("slo_s").copied(),
        encode: found.get("encode_s").copied(),
        decode: found.get("decode_s").copied(),
        prompt: found.get("prompt_id").copied(),
        count: header.len(),
    })
}

/// The lines of `text` that hold a record, with their 1-based line numbers: every line but
/// blank ones and those starting with `#`. Lines are returned as they are (a CRLF line keeps
/// its `\r`; cells are trimmed later).
///
/// Lines are split here and each is read as one CSV record, rather than letting the `csv`
/// reader see the whole text, because the reader's own line positions are wrong after blank
/// lines and CRLF endings, and line numbers are what make an error actionable. The cost is
/// that a quoted field cannot span lines, which no column of this format needs.
fn record_lines(text: &str) -> impl Iterator<Item = (u64, &str)> {
    let mut rest = Some(text);
    let mut number = 0;
    std::iter::from_fn(move || {
        loop {
            let t = rest?;
            let (line, after) = match memchr::memchr(b'\n', t.as_bytes()) {
                Some(end) => (&t[..end], Some(&t[end + 1..])),
                None => (t, None),
            };
            rest = after;
            number += 1;
            let holds_a_record = match line.as_bytes().first() {
                // The common case, decided without trimming: an ASCII character that is not
                // whitespace (nor a control character) starts the trimmed line too.
                Some(&b) if b > b' ' && b.is_ascii() => b != b'#',
                _ => {
                    let trimmed = line.trim();
                    !trimmed.is_empty() && !trimmed.starts_with('#')
                }
            };
            if holds_a_record {
                return Some((number, line));
            }
        }
    })
}

/// The number of `\n` in `text`, for sizing a vector of rows. Counted per block of 128
/// bytes in a `u8` (which cannot overflow there) because that compiles to a few vector
/// instructions per 16 bytes, where a plain count widens each byte to a `usize` first.
pub(crate) fn count_newlines(text: &str) -> usize {
    text.as_bytes()
        .chunks(128)
        .map(|block| usize::from(block.iter().map(|&b| u8::from(b == b'\n')).sum::<u8>()))
        .sum()
}

/// `cell` without leading and trailing whitespace (Unicode's definition, as `str::trim` and
/// the `csv` crate use), checking its two ends before doing any work.
fn trim_cell(cell: &str) -> &str {
    let plain = |b: Option<&u8>| b.is_some_and(|&b| b > b' ' && b.is_ascii());
    if plain(cell.as_bytes().first()) && plain(cell.as_bytes().last()) {
        cell
    } else {
        cell.trim()
    }
}

/// One line read by the `csv` crate as a record, cells trimmed: the header, and rows with
/// quotes.
fn csv_record(raw: &str, source: &str, line: u64) -> Result<csv::StringRecord> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(raw.as_bytes());
    match reader.records().next() {
        Some(Ok(r)) => Ok(r),
        Some(Err(e)) => Err(InputError::new(source, format!("cannot read the CSV: {e}"))
            .line(line)
            .into()),
        None => Err(InputError::new(source, "cannot read the CSV line")
            .line(line)
            .into()),
    }
}

/// The cells of one row.
///
/// A line without `"` has no quoting, so its cells are exactly the trimmed pieces between
/// commas, as the `csv` crate would read them: those are kept as slices of the text (no
/// allocation), which is what makes reading a million-row trace take a fraction of a second.
/// Lines with quotes go through the `csv` crate.
enum Cells<'a> {
    Plain {
        /// The first cells; a valid header has at most this many columns, so a row with more
        /// is refused by its count before any cell beyond them is read.
        cells: [&'a str; ACCEPTED.len()],
        /// The number of cells in the line.
        count: usize,
    },
    Quoted(csv::StringRecord),
}

impl<'a> Cells<'a> {
    fn read(raw: &'a str, source: &str, line: u64) -> Result<Cells<'a>> {
        // The `csv` crate drops a byte-order mark that starts its input, here the line (and
        // then finds no record in a line that was only that; it says so).
        let unmarked = raw.strip_prefix('\u{feff}').unwrap_or(raw);
        if unmarked.is_empty() || memchr::memchr(b'"', raw.as_bytes()).is_some() {
            return csv_record(raw, source, line).map(Cells::Quoted);
        }
        let raw = unmarked;
        let mut cells = [""; ACCEPTED.len()];
        let mut count = 0;
        let mut start = 0;
        let mut push = |start: usize, end: usize| {
            if let Some(slot) = cells.get_mut(count) {
                *slot = trim_cell(&raw[start..end]);
            }
            count += 1;
        };
        for (i, b) in raw.bytes().enumerate() {
            if b == b',' {
                push(start, i);
                start = i + 1;
            }
        }
        push(start, raw.len());
        Ok(Cells::Plain { cells, count })
    }

    fn len(&self) -> usize {
        match self {
            Cells::Plain { count, .. } => *count,
            Cells::Quoted(r) => r.len(),
        }
    }

    fn get(&self, i: usize) -> &str {
        match self {
            Cells::Plain { cells, .. } => cells.get(i).copied().unwrap_or(""),
            Cells::Quoted(r) => r.get(i).unwrap_or(""),
        }
    }
}

/// Duplicate id detection.
///
/// While ids only increase (generated traces, and every trace without an `id` column) no id
/// can repeat, and nothing is stored. At the first id that is not greater than the one before,
/// a map from id to line is built from the rows read so far, and every later id is checked
/// against it.
enum SeenIds {
    Increasing { last: Option<u64> },
    Lines(HashMap<u64, u64>),
}

impl SeenIds {
    /// Records `label` on `line`; `Err(first_line)` if it was already used. `earlier` are the
    /// rows read before this one, in file order; `text` is the trace, re-read for their lines
    /// when the map is first needed.
    fn insert(
        &mut self,
        label: u64,
        line: u64,
        earlier: &[Request],
        text: &str,
    ) -> std::result::Result<(), u64> {
        if let SeenIds::Increasing { last } = self {
            if last.is_none_or(|l| label > l) {
                *last = Some(label);
                return Ok(());
            }
            // The first row is the header; each later record line is one of `earlier`.
            let lines = record_lines(text).skip(1).map(|(n, _)| n);
            let mut map = HashMap::with_capacity(earlier.len() + 1);
            map.extend(earlier.iter().map(|r| r.label).zip(lines));
            *self = SeenIds::Lines(map);
        }
        match self {
            SeenIds::Lines(map) => match map.insert(label, line) {
                Some(first) => Err(first),
                None => Ok(()),
            },
            SeenIds::Increasing { .. } => unreachable!("switched to the map above"),
        }
    }
}

/// Refuses an arrival earlier than the previous row's (`previous`: its arrival and line):
/// a trace out of order is more often a broken export than an intention.
fn in_order(arrival: Nanos, previous: Option<(Nanos, u64)>, source: &str, line: u64) -> Result<()> {
    if let Some((prev, prev_line)) = previous
        && arrival < prev
    {
        return Err(InputError::new(
            source,
            format!(
                "arrival_s {} is earlier than {} on line {prev_line}; expected arrivals in non-decreasing order",
                arrival.secs_string(),
                prev.secs_string()
            ),
        )
        .line(line)
        .field("arrival_s")
        .hint("sort the file by arrival_s")
        .into());
    }
    Ok(())
}

/// Refuses a row whose number of fields differs from the header's.
fn check_width(found: usize, expected: usize, source: &str, line: u64) -> Result<()> {
    if found != expected {
        return Err(InputError::new(
            source,
            format!(
                "expected {} fields (as in the header), found {}",
                expected, found
            ),
        )
        .line(line)
        .into());
    }
    Ok(())
}

/// A row's `prompt_id` cell: a prompt key, or none when empty.
fn prompt_key(c: &str, err: &dyn Fn(&str, String) -> Error) -> Result<Option<PromptKey>> {
    if c.is_empty() {
        return Ok(None);
    }
    c.parse::<u64>().map(|k| Some(PromptKey(k))).map_err(|_| {
        err(
            "prompt_id",
            format!(
                "expected a non-negative integer prompt id (or an empty cell for none), got `{c}`"
            ),
        )
    })
}

/// A row's `steps` cell: a whole number from 1 to `MAX_STEPS`.
fn parse_steps(steps_cell: &str, err: &dyn Fn(&str, String) -> Error) -> Result<u32> {
    match steps_cell.parse::<u32>() {
        Ok(0) => Err(err(
            "steps",
            "expected at least 1 denoising step, got 0".to_string(),
        )),
        Ok(s) if s > crate::workload::MAX_STEPS => Err(err(
            "steps",
            format!(
                "{s} steps is more than the {} a request may have",
                crate::workload::MAX_STEPS
            ),
        )),
        Ok(s) => Ok(s),
        Err(_) => Err(err(
            "steps",
            format!("expected a positive whole number of steps, got `{steps_cell}`"),
        )),
    }
}

/// A row's SLO at the defaults' scale: its `slo_s` cell (scaled), or else the scaled base of
/// its resolution; an error naming the row when neither gives a positive time.
fn row_slo(
    slo_cell: Option<&str>,
    has_column: bool,
    slo: Option<&SloDefaults>,
    resolution: Resolution,
    source: &str,
    line: u64,
    err: &dyn Fn(&str, String) -> Error,
) -> Result<Nanos> {
    Ok(match (slo_cell, slo) {
        (Some(c), _) => {
            let v = Nanos::parse_secs(c).map_err(|m| err("slo_s", m))?;
            if v == Nanos::ZERO {
                return Err(err(
                    "slo_s",
                    format!("expected a number of seconds greater than 0, got `{c}`"),
                ));
            }
            match slo {
                Some(d) => scale_slo(v, d.scale).ok_or_else(|| {
                    err(
                        "slo_s",
                        format!(
                            "slo_s {c} at SLO scale {} is not a positive time below the simulator's horizon (2^62 ns, about 146 years)",
                            d.scale
                        ),
                    )
                })?,
                None => v,
            }
        }
        (None, None) => {
            let why = if has_column {
                "the slo_s cell is empty"
            } else {
                "the trace has no slo_s column"
            };
            return Err(InputError::new(source, format!("no SLO for this request: {why} and no SLO defaults were given"))
                .line(line)
                .field("slo_s")
                .hint("add slo_s (seconds from arrival to deadline), or give SLO bases in the scenario ([slo] bases)")
                .into());
        }
        (None, Some(d)) => match d.bases.scaled(resolution, d.scale) {
            Some(v) if v > Nanos::ZERO => v,
            Some(_) => {
                return Err(err(
                    "slo_s",
                    format!(
                        "the default SLO of {resolution} rounds to 0 ns at scale {}",
                        d.scale
                    ),
                ));
            }
            None => {
                return Err(InputError::new(
                    source,
                    format!(
                        "no slo_s for this request and no SLO base for resolution {resolution}"
                    ),
                )
                .line(line)
                .field("slo_s")
                .hint(format!(
                    "add slo_s to this row, or give {resolution} a base: --slo-base {resolution}=SECONDS, or in a scenario file under [slo] bases_s (\"{resolution}\" = SECONDS)"
                ))
                .into());
            }
        },
    })
}

/// Parses trace CSV text. `source` names the file in errors. Rows without `slo_s` (or a trace
/// without that column) take `scale * base(resolution)` from `slo`; with neither, it is an error.
pub fn parse_trace(text: &str, source: &str, slo: Option<&SloDefaults>) -> Result<Workload> {
    if let Some(d) = slo
        && (!d.scale.is_finite() || d.scale <= 0.0)
    {
        return Err(Error::config_hint(
            format!(
                "SLO scale must be a finite number greater than 0, got {}",
                crate::error::show_number(d.scale)
            ),
            "the paper sweeps 1.0 to 1.5",
        ));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let no_requests = || -> Error {
        InputError::new(source, "trace has no requests")
            .hint(format!(
                "expected a header line `{TRACE_HEADER}` followed by one row per request"
            ))
            .into()
    };

    let mut lines = record_lines(text);
    let Some((header_line, header)) = lines.next() else {
        return Err(no_requests());
    };
    let cols = read_header(
        &csv_record(header, source, header_line)?,
        source,
        header_line,
    )?;

    // Room for every row of a valid trace, without growing: each row follows a newline, and
    // has `count - 1` commas and at least `count - 1` non-empty cells (only slo_s may be
    // empty), so the bound stays within a few times the text's size whatever the text.
    let most_rows = count_newlines(text).min((text.len() + 1) / (2 * cols.count - 1));
    let mut requests: Vec<Request> = Vec::with_capacity(most_rows);
    let mut ids = SeenIds::Increasing { last: None };
    let mut prompts: Vec<Option<PromptKey>> = Vec::new();
    let mut previous: Option<(Nanos, u64)> = None;
    for (row, (line, raw)) in lines.enumerate() {
        let record = Cells::read(raw, source, line)?;
        let err = |field: &str, msg: String| -> Error {
            InputError::new(source, msg).line(line).field(field).into()
        };
        check_width(record.len(), cols.count, source, line)?;
        let cell = |i: usize| record.get(i);

        let label = match cols.id {
            None => row as u64,
            Some(i) => cell(i).parse::<u64>().map_err(|_| {
                err(
                    "id",
                    format!("expected a non-negative integer id, got `{}`", cell(i)),
                )
            })?,
        };
        if let Err(first) = ids.insert(label, line, &requests, text) {
            return Err(InputError::new(
                source,
                format!("id {label} is already used on line {first}; expected unique ids"),
            )
            .line(line)
            .field("id")
            .into());
        }

        let arrival = Nanos::parse_secs(cell(cols.arrival)).map_err(|m| err("arrival_s", m))?;
        in_order(arrival, previous, source, line)?;
        previous = Some((arrival, line));

        let side = |name: &str, i: usize| -> Result<u32> {
            cell(i).parse::<u32>().map_err(|_| {
                err(
                    name,
                    format!("expected a whole number of pixels, got `{}`", cell(i)),
                )
            })
        };
        let frames = match cols.frames.map(cell).filter(|c| !c.is_empty()) {
            None => 1,
            Some(c) => {
                let f = c.parse::<u32>().map_err(|_| {
                    err(
                        "frames",
                        format!("expected a whole number of frames (1 for an image), got `{c}`"),
                    )
                })?;
                crate::workload::check_frames(f).map_err(|m| err("frames", m))?;
                f
            }
        };
        let resolution = Resolution::video(
            side("width", cols.width)?,
            side("height", cols.height)?,
            frames,
        );
        resolution.validate().map_err(|m| err("width,height", m))?;

        let steps = parse_steps(cell(cols.steps), &err)?;

        let slo_cell = cols.slo.map(cell).filter(|c| !c.is_empty());
        let slo_ns = row_slo(
            slo_cell,
            cols.slo.is_some(),
            slo,
            resolution,
            source,
            line,
            &err,
        )?;

        if requests.len() >= u32::MAX as usize {
            return Err(err(
                "id",
                format!(
                    "more than {} requests; that many are not supported",
                    u32::MAX
                ),
            ));
        }
        let deadline = arrival.checked_add(slo_ns).ok_or_else(|| {
            err(
                "slo_s",
                "arrival + SLO lies beyond the simulator's horizon (2^62 ns, about 146 years)"
                    .to_string(),
            )
        })?;
        if let Some(i) = cols.prompt {
            prompts.push(prompt_key(cell(i), &err)?);
        }
        let stages = StageTimes {
            encode: stage_time(cols.encode.map(cell), "encode_s", &err)?,
            decode: stage_time(cols.decode.map(cell), "decode_s", &err)?,
        };
        requests.push(Request {
            id: RequestId(requests.len() as u32),
            label,
            arrival,
            resolution,
            steps,
            deadline,
            stages,
        });
    }
    if requests.is_empty() {
        return Err(no_requests());
    }
    let mut workload = Workload {
        requests,
        savings: Vec::new(),
        skipping: None,
    };
    if prompts.iter().any(Option::is_some) {
        workload.ensure_savings();
        for (s, p) in workload.savings.iter_mut().zip(prompts) {
            s.prompt = p;
        }
    }
    // Arrivals were checked non-decreasing and ids given in file order: already a workload,
    // without `Workload::from_requests`'s sorting and renumbering passes.
    debug_assert!(
        workload
            .requests
            .windows(2)
            .all(|w| w[0].arrival <= w[1].arrival)
    );
    Ok(workload)
}

/// A row's `encode_s` or `decode_s` cell: the request's own stage time, or none when the
/// column is absent or the cell empty.
fn stage_time(
    cell: Option<&str>,
    field: &str,
    err: &dyn Fn(&str, String) -> Error,
) -> Result<Option<Nanos>> {
    let Some(c) = cell.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let t = Nanos::parse_secs(c).map_err(|m| err(field, m))?;
    if t > MAX_STAGE_TIME {
        return Err(err(
            field,
            format!(
                "{field} {c} is longer than an hour; expected the stage's seconds (0 to {})",
                MAX_STAGE_TIME.as_secs()
            ),
        ));
    }
    Ok(Some(t))
}

/// `slo` at `scale` (exactly `slo` at scale 1), or `None` when that rounds to 0 ns or passes
/// the horizon.
fn scale_slo(slo: Nanos, scale: f64) -> Option<Nanos> {
    if scale == 1.0 {
        return Some(slo);
    }
    Nanos::try_from_secs(slo.as_secs() * scale).filter(|t| *t > Nanos::ZERO)
}

/// One row of trace CSV as [`rows_to_csv`] writes it; `slo: None` leaves the `slo_s` cell
/// empty, so that the reader takes the request's deadline from the scenario it is replayed in.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceRow {
    pub label: u64,
    pub arrival: Nanos,
    pub resolution: Resolution,
    pub steps: u32,
    pub slo: Option<Nanos>,
}

/// The header [`to_csv`] writes when some request is a video (with `,prompt_id` after it
/// when some request carries a prompt key).
pub const TRACE_HEADER_WITH_FRAMES: &str = "id,arrival_s,width,height,frames,steps,slo_s";

/// The header line for a trace with or without `frames`, `encode_s,decode_s` and
/// `prompt_id`.
fn push_header(out: &mut Vec<u8>, frames: bool, stages: bool, prompts: bool) {
    out.extend_from_slice(if frames {
        TRACE_HEADER_WITH_FRAMES.as_bytes()
    } else {
        TRACE_HEADER.as_bytes()
    });
    if stages {
        out.extend_from_slice(b",encode_s,decode_s");
    }
    if prompts {
        out.extend_from_slice(b",prompt_id");
    }
    out.push(b'\n');
}

/// Renders rows (in arrival order) as trace CSV, as [`to_csv`] does a workload (with a
/// `frames` column when some row is a video).
pub fn rows_to_csv(rows: &[TraceRow]) -> String {
    let mut out = Vec::with_capacity(48 * (rows.len() + 1));
    let frames = rows.iter().any(|r| r.resolution.is_video());
    push_header(&mut out, frames, false, false);
    for r in rows {
        push_row(
            &mut out,
            r.label,
            r.arrival,
            r.resolution,
            frames,
            r.steps,
            r.slo,
        );
        out.push(b'\n');
    }
    String::from_utf8(out).expect("the header, digits, dots, commas and newlines are ASCII")
}

/// Appends one row's `id,arrival_s,width,height[,frames],steps,slo_s` (no newline; `frames`
/// when `with_frames`).
fn push_row(
    out: &mut Vec<u8>,
    label: u64,
    arrival: Nanos,
    resolution: Resolution,
    with_frames: bool,
    steps: u32,
    slo: Option<Nanos>,
) {
    push_digits(out, label, 1);
    out.push(b',');
    push_secs(out, arrival);
    out.push(b',');
    push_digits(out, resolution.width.into(), 1);
    out.push(b',');
    push_digits(out, resolution.height.into(), 1);
    out.push(b',');
    if with_frames {
        push_digits(out, resolution.frames.into(), 1);
        out.push(b',');
    }
    push_digits(out, steps.into(), 1);
    out.push(b',');
    if let Some(slo) = slo {
        push_secs(out, slo);
    }
}

/// Reads a trace file.
pub fn load_trace(path: &Path, slo: Option<&SloDefaults>) -> Result<Workload> {
    let text = crate::error::read_text(path, crate::error::limits::TRACE_BYTES, "trace")?;
    parse_trace(&text, &path.display().to_string(), slo)
}

/// Renders a workload as trace CSV (with `slo_s`), byte-identical for identical workloads.
///
/// One row per request in id (= arrival) order; `id` is the request's label; `steps` its
/// steps before any cache hit; `prompt_id` is written when some request has a key, `frames`
/// when some request is a video, `encode_s,decode_s` when some request has a stage time; times are exact
/// decimal seconds (as [`Nanos::secs_string`] writes them), so [`parse_trace`] gives back the
/// identical workload. Numbers are written digit by digit into one buffer: formatting each
/// through `format!` would cost more than reading the trace back.
pub fn to_csv(workload: &Workload) -> String {
    let mut out = Vec::with_capacity(48 * (workload.len() + 1));
    let prompts = workload.savings.iter().any(|s| s.prompt.is_some());
    let frames = workload.requests.iter().any(|r| r.resolution.is_video());
    let stages = workload.requests.iter().any(|r| r.stages.any());
    push_header(&mut out, frames, stages, prompts);
    for r in &workload.requests {
        let saved = workload.savings_of(r.id);
        push_row(
            &mut out,
            r.label,
            r.arrival,
            r.resolution,
            frames,
            r.steps + saved.cached_steps,
            Some(r.slo()),
        );
        if stages {
            for t in [r.stages.encode, r.stages.decode] {
                out.push(b',');
                if let Some(t) = t {
                    push_secs(&mut out, t);
                }
            }
        }
        if prompts {
            out.push(b',');
            if let Some(p) = saved.prompt {
                push_digits(&mut out, p.0, 1);
            }
        }
        out.push(b'\n');
    }
    String::from_utf8(out).expect("the header, digits, dots, commas and newlines are ASCII")
}

/// Appends `value` in decimal, zero-padded to at least `width` digits.
fn push_digits(out: &mut Vec<u8>, mut value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    while value > 0 || start > digits.len() - width.max(1) {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    out.extend_from_slice(&digits[start..]);
}

/// Appends `t` as [`Nanos::secs_string`] writes it: whole seconds, a dot, nine digits.
fn push_secs(out: &mut Vec<u8>, t: Nanos) {
    push_digits(out, t.0 / 1_000_000_000, 1);
    out.push(b'.');
    push_digits(out, t.0 % 1_000_000_000, 9);
}

/// Writes [`to_csv`] of `workload` to `path`.
pub fn save_trace(path: &Path, workload: &Workload) -> Result<()> {
    crate::files::write_file(path, to_csv(workload).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::arrival::ArrivalProcess;
    use crate::workload::generate::{WorkloadSpec, generate};
    use crate::workload::mix::Mix;
    use proptest::prelude::*;

    fn paper_defaults() -> SloDefaults {
        SloDefaults {
            bases: SloBases::paper(),
            scale: 1.0,
        }
    }

    /// The input error of a failed parse (panics in the test if it is not one).
    fn input_err(text: &str, slo: Option<&SloDefaults>) -> InputError {
        match parse_trace(text, "t.csv", slo) {
            Err(Error::Input(e)) => e,
            other => panic!("expected an input error, got {other:?}"),
        }
    }

    const HEADER: &str = "id,arrival_s,width,height,steps,slo_s\n";

    #[test]
    fn parses_a_full_trace() {
        let text = format!("{HEADER}10,0.5,256,256,28,1.5\n11,1.25,1024,768,50,4\n");
        let w = parse_trace(&text, "t.csv", None).unwrap();
        assert_eq!(w.len(), 2);
        let r = &w.requests[1];
        assert_eq!((r.id.index(), r.label), (1, 11));
        assert_eq!(r.arrival, Nanos(1_250_000_000));
        assert_eq!(r.resolution, Resolution::new(1024, 768));
        assert_eq!(r.steps, 50);
        assert_eq!(r.deadline, Nanos(5_250_000_000));
    }

    #[test]
    fn columns_in_any_order_case_insensitive_ids_default_to_row_index() {
        let text = "Steps, height ,width,arrival_s\n28,512,512,0\n28,256,256,2\n";
        let w = parse_trace(text, "t.csv", Some(&paper_defaults())).unwrap();
        assert_eq!(w.requests[0].label, 0);
        assert_eq!(w.requests[1].label, 1);
        assert_eq!(w.requests[0].slo(), Nanos::from_secs(2.0));
        assert_eq!(w.requests[1].slo(), Nanos::from_secs(1.5));
    }

    #[test]
    fn the_scale_multiplies_slo_s_and_the_bases_of_empty_cells_alike() {
        let text = format!("{HEADER}0,0,1024,1024,28,\n1,1,256,256,28,0.75\n");
        let d = SloDefaults {
            bases: SloBases::paper(),
            scale: 1.5,
        };
        let w = parse_trace(&text, "t.csv", Some(&d)).unwrap();
        // 1024 px has no slo_s: 1.5 x its base of 3 s; 256 px: 1.5 x its slo_s of 0.75 s.
        assert_eq!(w.requests[0].slo(), Nanos::from_secs(4.5));
        assert_eq!(w.requests[1].slo(), Nanos(1_125_000_000));
        // Scale 1 (and no defaults) keep slo_s exactly.
        let one = parse_trace(&text, "t.csv", Some(&paper_defaults())).unwrap();
        assert_eq!(one.requests[1].slo(), Nanos(750_000_000));
        // A scale that carries slo_s past the horizon is refused, naming the row.
        let huge = SloDefaults {
            bases: SloBases::paper(),
            scale: 1e300,
        };
        let e = input_err(&format!("{HEADER}1,1,256,256,28,0.75\n"), Some(&huge));
        assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("slo_s")));
        assert!(e.message.contains("at SLO scale"), "{}", e.message);
    }

    #[test]
    fn rows_without_an_slo_are_written_with_an_empty_cell_and_read_back_from_the_defaults() {
        let rows = [
            TraceRow {
                label: 4,
                arrival: Nanos(250_000_000),
                resolution: Resolution::square(512),
                steps: 20,
                slo: None,
            },
            TraceRow {
                label: 9,
                arrival: Nanos(1_000_000_000),
                resolution: Resolution::square(256),
                steps: 28,
                slo: Some(Nanos(1_200_000_000)),
            },
        ];
        let csv = rows_to_csv(&rows);
        assert_eq!(
            csv,
            format!("{HEADER}4,0.250000000,512,512,20,\n9,1.000000000,256,256,28,1.200000000\n")
        );
        let w = parse_trace(&csv, "t.csv", Some(&paper_defaults())).unwrap();
        assert_eq!(w.requests[0].slo(), Nanos::from_secs(2.0), "512 px base");
        assert_eq!(w.requests[1].slo(), Nanos(1_200_000_000));
    }

    #[test]
    fn missing_slo_without_defaults_names_line_field_and_fix() {
        let e = input_err(
            &format!("{HEADER}0,0,256,256,28,1\n1,1,256,256,28,\n"),
            None,
        );
        assert_eq!((e.line, e.field.as_deref()), (Some(3), Some("slo_s")));
        assert!(e.hint.unwrap().contains("[slo] bases"));
        let e = input_err("arrival_s,width,height,steps\n0,256,256,28\n", None);
        assert!(e.message.contains("no slo_s column"), "{}", e.message);
        // Defaults given, but none for this resolution.
        let e = input_err(
            &format!("{HEADER}0,0,1024,768,28,\n"),
            Some(&paper_defaults()),
        );
        assert!(e.message.contains("1024x768") && e.hint.unwrap().contains("1024x768"));
    }

    #[test]
    fn tolerates_bom_crlf_blank_lines_comments_and_spaces() {
        let text = "\u{feff}id,arrival_s,width,height,steps,slo_s\r\n# a comment\r\n\r\n 1 , 0.5 , 256 , 256 , 28 , 1.5 \r\n";
        let w = parse_trace(text, "t.csv", None).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w.requests[0].label, 1);
        assert_eq!(w.requests[0].arrival, Nanos(500_000_000));
        let quoted = "arrival_s,width,height,steps,slo_s\n\"0.5\",\"256\",256,28,1\n";
        assert_eq!(
            parse_trace(quoted, "t.csv", None).unwrap().requests[0]
                .resolution
                .width,
            256
        );
    }

    #[test]
    fn malformed_rows_are_reported_with_line_and_field() {
        let h = HEADER;
        let cases: Vec<(String, u64, Option<&str>, &str)> = vec![
            (
                format!("{h}0,abc,256,256,28,1\n"),
                2,
                Some("arrival_s"),
                "number of seconds",
            ),
            (
                format!("{h}0,NaN,256,256,28,1\n"),
                2,
                Some("arrival_s"),
                "finite",
            ),
            (
                format!("{h}0,inf,256,256,28,1\n"),
                2,
                Some("arrival_s"),
                "finite",
            ),
            (
                format!("{h}0,-1,256,256,28,1\n"),
                2,
                Some("arrival_s"),
                ">= 0",
            ),
            (
                format!("{h}0,0,256,256,28,1\n1,0,1000,1000,28,1\n"),
                3,
                Some("width,height"),
                "multiple of 16",
            ),
            (
                format!("{h}0,0,0,256,28,1\n"),
                2,
                Some("width,height"),
                "zero side",
            ),
            (
                format!("{h}0,0,-256,256,28,1\n"),
                2,
                Some("width"),
                "whole number of pixels",
            ),
            (
                format!("{h}0,0,256,x,28,1\n"),
                2,
                Some("height"),
                "whole number of pixels",
            ),
            (
                format!("{h}0,0,256,256,0,1\n"),
                2,
                Some("steps"),
                "at least 1",
            ),
            (
                format!("{h}0,0,256,256,2.5,1\n"),
                2,
                Some("steps"),
                "whole number of steps",
            ),
            (
                format!("{h}0,0,256,256,28,0\n"),
                2,
                Some("slo_s"),
                "greater than 0",
            ),
            (format!("{h}0,0,256,256,28,-2\n"), 2, Some("slo_s"), ">= 0"),
            (
                format!("{h}0,0,256,256,28,1,7\n"),
                2,
                None,
                "expected 6 fields",
            ),
            (format!("{h}0,0,256,256,28\n"), 2, None, "found 5"),
            (
                format!("{h}x,0,256,256,28,1\n"),
                2,
                Some("id"),
                "non-negative integer",
            ),
            (
                format!("{h}4,0,256,256,28,1\n5,1,256,256,28,1\n4,2,256,256,28,1\n"),
                4,
                Some("id"),
                "line 2",
            ),
            (
                format!("{h}0,5,256,256,28,1\n1,3,256,256,28,1\n"),
                3,
                Some("arrival_s"),
                "line 2",
            ),
        ];
        for (text, line, field, needle) in cases {
            let e = input_err(&text, None);
            assert_eq!(e.source, "t.csv");
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
            assert_eq!(e.field.as_deref(), field, "{text:?}: {e}");
            assert!(
                e.message.contains(needle),
                "{text:?}: `{}` lacks `{needle}`",
                e.message
            );
        }
        let e = input_err(&format!("{h}0,5,256,256,28,1\n1,3,256,256,28,1\n"), None);
        assert!(e.hint.unwrap().contains("sort the file by arrival_s"));
        // Blank and comment lines still count towards line numbers, with CRLF too.
        let e = input_err(
            "\u{feff}arrival_s,width,height,steps\r\n\r\n# c\r\n0,x,256,28\r\n",
            None,
        );
        assert_eq!(e.line, Some(4), "{e}");
        assert_eq!(
            e.to_string(),
            "t.csv:4: field `width`: expected a whole number of pixels, got `x`"
        );
    }

    #[test]
    fn header_problems() {
        let e = input_err("id,arrival_s,width,height,steps,slo,prompt\n", None);
        assert!(
            e.message.contains("`slo`") && e.message.contains("`prompt`"),
            "{}",
            e.message
        );
        assert!(e.hint.unwrap().contains("slo_s"));
        let e = input_err("arrival_s,width,height\n0,256,256\n", None);
        assert!(e.message.contains("steps"));
        let e = input_err("arrival_s,width,height,steps,width\n", None);
        assert_eq!(e.field.as_deref(), Some("width"));
        for empty in ["", "\u{feff}", "\n\n", HEADER, "# only a comment\n"] {
            assert_eq!(
                input_err(empty, None).message,
                "trace has no requests",
                "{empty:?}"
            );
        }
    }

    #[test]
    fn equal_arrivals_are_allowed_and_keep_file_order() {
        let text = format!("{HEADER}7,1,256,256,28,1\n3,1,512,512,28,2\n");
        let w = parse_trace(&text, "t.csv", None).unwrap();
        assert_eq!(
            w.requests.iter().map(|r| r.label).collect::<Vec<_>>(),
            vec![7, 3]
        );
    }

    #[test]
    fn bad_default_scale_is_a_config_error() {
        let d = SloDefaults {
            bases: SloBases::paper(),
            scale: 0.0,
        };
        let r = parse_trace(&format!("{HEADER}0,0,256,256,28,1\n"), "t.csv", Some(&d));
        assert!(matches!(r, Err(Error::Config { .. })));
    }

    #[test]
    fn round_trip_is_lossless() {
        for spec in sample_specs().into_iter().map(|s| s.1) {
            let w = generate(&spec).unwrap();
            assert_eq!(parse_trace(&to_csv(&w), "t.csv", None).unwrap(), w);
        }
        // Odd values: nanosecond arrivals, non-square, big labels.
        let text = format!("{HEADER}18446744073709551615,0.000000001,1024,768,1,0.000000007\n");
        let w = parse_trace(&text, "t.csv", None).unwrap();
        assert_eq!(to_csv(&w), text);
    }

    #[test]
    fn stage_times_round_trip_and_are_written_only_when_some_request_has_one() {
        // Either column alone, empty cells, 0 (a stage the request skips), nanoseconds.
        let text = "id,arrival_s,width,height,steps,slo_s,encode_s,decode_s,prompt_id\n\
                    0,0.000000000,512,512,4,1.000000000,0.000000000,,7\n\
                    1,0.500000000,1024,1024,4,2.000000000,,0.250000001,\n\
                    2,1.000000000,1024,1024,4,2.000000000,,,\n";
        let w = parse_trace(text, "t.csv", None).unwrap();
        let stages: Vec<StageTimes> = w.requests.iter().map(|r| r.stages).collect();
        assert_eq!(
            stages,
            [
                StageTimes {
                    encode: Some(Nanos::ZERO),
                    decode: None
                },
                StageTimes {
                    encode: None,
                    decode: Some(Nanos(250_000_001))
                },
                StageTimes::MODEL,
            ]
        );
        assert_eq!(to_csv(&w), text);
        assert_eq!(parse_trace(&to_csv(&w), "t.csv", None).unwrap(), w);
        // The columns in any order, without the other optional ones; written back after slo_s.
        let moved = "decode_s,arrival_s,width,height,steps,slo_s,encode_s\n0.1,0,512,512,4,1,0.2\n";
        let w = parse_trace(moved, "t.csv", None).unwrap();
        assert_eq!(
            to_csv(&w),
            "id,arrival_s,width,height,steps,slo_s,encode_s,decode_s\n\
             0,0.000000000,512,512,4,1.000000000,0.200000000,0.100000000\n"
        );
        // No request with a time of its own: the columns are not written.
        let empty = "arrival_s,width,height,steps,slo_s,encode_s,decode_s\n0,512,512,4,1,,\n";
        let w = parse_trace(empty, "t.csv", None).unwrap();
        assert_eq!(
            to_csv(&w),
            format!("{TRACE_HEADER}\n0,0.000000000,512,512,4,1.000000000\n")
        );
    }

    #[test]
    fn a_bad_stage_time_names_its_line_and_field() {
        for (cell, field, says) in [
            ("-0.1,", "encode_s", ">= 0"),
            ("abc,", "encode_s", "expected a number of seconds"),
            ("NaN,", "encode_s", "finite"),
            (",3600.000000001", "decode_s", "longer than an hour"),
            (",1e9", "decode_s", "longer than an hour"),
        ] {
            let text = format!(
                "arrival_s,width,height,steps,slo_s,encode_s,decode_s\n0,512,512,4,1,0,0\n1,512,512,4,1,{cell}\n"
            );
            let e = input_err(&text, None);
            assert_eq!(
                (e.line, e.field.as_deref()),
                (Some(3), Some(field)),
                "{cell}: {e}"
            );
            assert!(e.to_string().contains(says), "{cell}: {e}");
        }
        // An hour exactly is accepted.
        let text = "arrival_s,width,height,steps,slo_s,decode_s\n0,512,512,4,1,3600\n";
        assert_eq!(
            parse_trace(text, "t.csv", None).unwrap().requests[0]
                .stages
                .decode,
            Some(MAX_STAGE_TIME)
        );
    }

    #[test]
    fn frames_round_trip_and_are_written_only_for_videos() {
        // What the generator writes for an image + video mix, the reader gives back.
        let spec = WorkloadSpec {
            mix: crate::workload::mix::parse_mix("custom:512=80%,video:480p:81=20%").unwrap(),
            slo_bases: SloBases::paper()
                .with(&[(Resolution::video(832, 480, 81), Nanos::from_secs(90.0))]),
            ..WorkloadSpec::paper(7)
        };
        let w = generate(&spec).unwrap();
        let csv = to_csv(&w);
        assert!(
            csv.starts_with("id,arrival_s,width,height,frames,steps,slo_s\n"),
            "{csv}"
        );
        assert!(csv.contains(",832,480,81,28,90.000000000\n"), "{csv}");
        assert!(csv.contains(",512,512,1,28,2.000000000\n"), "{csv}");
        assert_eq!(parse_trace(&csv, "t.csv", None).unwrap(), w);
        // Imported rows too.
        let rows: Vec<TraceRow> = w
            .requests
            .iter()
            .map(|r| TraceRow {
                label: r.label,
                arrival: r.arrival,
                resolution: r.resolution,
                steps: r.steps,
                slo: Some(r.slo()),
            })
            .collect();
        assert_eq!(rows_to_csv(&rows), csv);
        // Images only: the six columns, as before.
        let images = generate(&WorkloadSpec::paper(7)).unwrap();
        assert!(to_csv(&images).starts_with(&format!("{TRACE_HEADER}\n")));
        // Absent, empty or 1: an image; the column may sit anywhere.
        let text = "arrival_s,frames,width,height,steps,slo_s\n0,,512,512,4,1\n1,1,512,512,4,1\n2,81,1280,720,4,1\n";
        let w = parse_trace(text, "t.csv", None).unwrap();
        let res: Vec<Resolution> = w.requests.iter().map(|r| r.resolution).collect();
        assert_eq!(
            res,
            vec![
                Resolution::square(512),
                Resolution::square(512),
                Resolution::video(1280, 720, 81)
            ]
        );
        assert_eq!(w.requests[2].resolution.tokens(), 75_600);
    }

    #[test]
    fn bad_frames_name_the_file_line_and_field() {
        let header = "id,arrival_s,width,height,frames,steps,slo_s\n";
        for (cell, phrase) in [
            ("x", "expected a whole number of frames"),
            ("-5", "expected a whole number of frames"),
            ("2.5", "expected a whole number of frames"),
            ("0", "at least 1 frame"),
            ("80", "80 frames is not 4k + 1"),
            ("2000", "more than the 1021"),
        ] {
            let text = format!("{header}0,0,512,512,1,4,1\n1,1,512,512,{cell},4,1\n");
            let e = input_err(&text, None);
            assert_eq!(e.source, "t.csv");
            assert_eq!(e.line, Some(3), "{cell}");
            assert_eq!(e.field.as_deref(), Some("frames"), "{cell}");
            assert!(e.message.contains(phrase), "{cell}: {}", e.message);
        }
        // A video with no SLO base: the row's resolution is named as it displays.
        let text = format!("{header}0,0,1280,720,81,4,\n");
        let e = input_err(&text, Some(&paper_defaults()));
        assert!(e.message.contains("1280x720x81f"), "{}", e.message);
    }

    /// Lines without quotes are split here; the `csv` crate reads the same cells from them.
    #[test]
    fn plain_lines_split_as_the_csv_crate_reads_them() {
        let lines = [
            "1,2,3",
            " 1 , 2 ,3 ",
            "1,2,3\r",
            "\t1\t,,3",
            ",",
            "a,\u{a0}b\u{3000},c\u{2003}",
            "x\u{feff},y",
            "1,2,3,4,5,6,7,8,9",
            "é,ü , ß",
            "\u{b}1\u{c},2",
            "\u{feff}1,2",
            "\u{feff}\u{feff} 1,\u{feff}2",
            " \u{feff}1,2",
        ];
        for raw in lines {
            let csv = csv_record(raw, "t.csv", 1).unwrap();
            match Cells::read(raw, "t.csv", 1).unwrap() {
                Cells::Plain { cells, count } => {
                    assert_eq!(count, csv.len(), "{raw:?}");
                    for (i, cell) in cells.iter().enumerate().take(count) {
                        assert_eq!(*cell, &csv[i], "{raw:?} cell {i}");
                    }
                }
                Cells::Quoted(_) => panic!("{raw:?} has no quotes"),
            }
        }
        assert!(matches!(
            Cells::read("\"1\",2", "t.csv", 1).unwrap(),
            Cells::Quoted(_)
        ));
        // A line of only a byte-order mark holds no record, for the csv crate and here.
        let refused = |r: Result<_>| r.err().map(|e: Error| e.to_string());
        assert_eq!(
            refused(Cells::read("\u{feff}", "t.csv", 1).map(|_| ())),
            refused(csv_record("\u{feff}", "t.csv", 1).map(|_| ()))
        );
        assert!(refused(Cells::read("\u{feff}", "t.csv", 1).map(|_| ())).is_some());
    }

    proptest! {
        #[test]
        fn plain_split_matches_the_csv_crate(raw in "[0-9a,. \t\r\u{a0}\u{3000}\u{feff}é#]{0,40}") {
            // Blank lines are skipped before any splitting.
            prop_assume!(!raw.trim().is_empty());
            match (csv_record(&raw, "t.csv", 1), Cells::read(&raw, "t.csv", 1)) {
                (Ok(csv), Ok(cells)) => {
                    prop_assert_eq!(cells.len(), csv.len());
                    for (i, cell) in csv.iter().enumerate().take(ACCEPTED.len()) {
                        prop_assert_eq!(cells.get(i), cell);
                    }
                }
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => prop_assert!(false, "{:?} / {:?}", a.map(|_| ()), b.map(|_| ())),
            }
        }

        #[test]
        fn record_lines_are_the_non_blank_non_comment_lines(
            text in "[0a#, \t\r\n\u{a0}\u{3000}]{0,60}"
        ) {
            let expected: Vec<(u64, &str)> = text
                .split('\n')
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty() && !l.trim().starts_with('#'))
                .map(|(i, l)| (i as u64 + 1, l))
                .collect();
            prop_assert_eq!(record_lines(&text).collect::<Vec<_>>(), expected);
        }

        #[test]
        fn written_seconds_match_secs_string(ns in 0..Nanos::HORIZON.0, small in 0u64..2_000_000_000) {
            for t in [Nanos(ns), Nanos(small)] {
                let mut out = Vec::new();
                push_secs(&mut out, t);
                prop_assert_eq!(String::from_utf8(out).unwrap(), t.secs_string());
            }
        }

        #[test]
        fn newlines_are_counted(text in "[a\n]{0,600}") {
            prop_assert_eq!(count_newlines(&text), text.matches('\n').count());
        }
    }

    /// Rows with quotes (read by the `csv` crate) and without (split here) give the same
    /// requests, whatever the spacing, line endings and comments around them.
    #[test]
    fn quoted_and_plain_rows_read_alike() {
        let plain =
            format!("{HEADER}1,0.5,256,256,28,1.5\n2,1.25,1024,768,50,4\n3,2,512,512,20,\n");
        let mixed = "\u{feff}ID , Arrival_s,width,height,steps,slo_s\r\n\
                     # quoted cells\r\n\
                     \"1\",\" 0.5 \",\"256\",256,28,\"1.5\"\r\n\
                     \r\n\
                     2 ,1.25 , 1024,768 ,50,4 \r\n\
                     \t# indented comment\n\
                     \"3\", 2,512,\"512\",20,\"\"\n";
        let d = paper_defaults();
        assert_eq!(
            parse_trace(mixed, "t.csv", Some(&d)).unwrap(),
            parse_trace(&plain, "t.csv", Some(&d)).unwrap()
        );
        // Errors in quoted rows name their line too; the field count includes quoted cells.
        let e = input_err(
            &format!("{HEADER}1,0,256,256,28,1\n\n\"2\",\"x\",256,256,28,1\n"),
            None,
        );
        assert_eq!((e.line, e.field.as_deref()), (Some(4), Some("arrival_s")));
        let e = input_err(&format!("{HEADER}\"1\",0,256,256,28,1,\"\"\n"), None);
        assert_eq!(e.message, "expected 6 fields (as in the header), found 7");
    }

    #[test]
    fn repeated_ids_are_found_after_increasing_ones() {
        // Increasing ids, then one repeating an id three rows back (lines 2 to 7, with a
        // comment and a blank line in between).
        let text = format!(
            "{HEADER}10,0,256,256,28,1\n20,0,256,256,28,1\n# c\n\n30,1,256,256,28,1\n20,2,256,256,28,1\n"
        );
        let e = input_err(&text, None);
        assert_eq!((e.line, e.field.as_deref()), (Some(7), Some("id")));
        assert_eq!(
            e.message,
            "id 20 is already used on line 3; expected unique ids"
        );
        // Ids out of order but unique are fine; a later repeat is found against the earlier
        // ones and the later ones alike.
        let unique = format!(
            "{HEADER}5,0,256,256,28,1\n3,0,256,256,28,1\n9,1,256,256,28,1\n4,1,256,256,28,1\n"
        );
        let w = parse_trace(&unique, "t.csv", None).unwrap();
        assert_eq!(
            w.requests.iter().map(|r| r.label).collect::<Vec<_>>(),
            vec![5, 3, 9, 4]
        );
        for (repeat, first_line) in [(5, 2), (3, 3), (9, 4), (4, 5)] {
            let e = input_err(&format!("{unique}{repeat},2,256,256,28,1\n"), None);
            assert_eq!(e.line, Some(6));
            assert!(
                e.message.contains(&format!(
                    "id {repeat} is already used on line {first_line};"
                )),
                "{}",
                e.message
            );
        }
        // The first id not above the previous one can itself be the repeat.
        let e = input_err(
            &format!("{HEADER}7,0,256,256,28,1\n7,0,256,256,28,1\n"),
            None,
        );
        assert_eq!((e.line, e.message.contains("line 2")), (Some(3), true));
    }

    #[test]
    fn load_trace_names_a_missing_file() {
        let e = load_trace(Path::new("/nonexistent/trace.csv"), None).unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
        assert!(e.to_string().contains("/nonexistent/trace.csv"));
    }

    #[test]
    fn save_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.csv");
        let w = generate(&WorkloadSpec {
            requests: 20,
            ..WorkloadSpec::paper(3)
        })
        .unwrap();
        save_trace(&path, &w).unwrap();
        assert_eq!(load_trace(&path, None).unwrap(), w);
    }

    /// The committed synthetic samples and the specs that generate them (documented in
    /// `traces/README.md`).
    fn sample_specs() -> Vec<(&'static str, WorkloadSpec)> {
        let paper = WorkloadSpec::paper(42);
        vec![
            ("uniform-12rpm-300.csv", paper.clone()),
            (
                "skewed-12rpm-300.csv",
                WorkloadSpec {
                    mix: Mix::paper_skewed(),
                    ..paper.clone()
                },
            ),
            (
                "bursty-gamma-cv3-300.csv",
                WorkloadSpec {
                    arrival: ArrivalProcess::Gamma {
                        rate_per_s: 12.0 / 60.0,
                        cv: 3.0,
                    },
                    ..paper
                },
            ),
        ]
    }

    /// Regenerates the sample traces and compares them byte for byte with the committed files,
    /// so they never drift from the generator. After an intended change to the generator, run
    /// with `TETRISERVE_REGEN_TRACES=1` to rewrite them.
    #[test]
    fn sample_traces_match_the_generator() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces");
        let regen = std::env::var_os("TETRISERVE_REGEN_TRACES").is_some();
        for (name, spec) in sample_specs() {
            let csv = to_csv(&generate(&spec).unwrap());
            let path = dir.join(name);
            if regen {
                std::fs::write(&path, &csv).unwrap();
            }
            let committed = std::fs::read_to_string(&path).unwrap();
            assert!(
                committed == csv,
                "{} differs from the generator; see traces/README.md",
                path.display()
            );
            assert_eq!(load_trace(&path, None).unwrap().len(), 300);
        }
    }

    #[test]
    fn tiny_sample_needs_slo_defaults_for_its_empty_cell() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/tiny.csv");
        let e = load_trace(&path, None).unwrap_err();
        assert!(e.to_string().contains("slo_s"), "{e}");
        let w = load_trace(&path, Some(&paper_defaults())).unwrap();
        assert!(
            w.requests
                .iter()
                .any(|r| r.resolution == Resolution::new(1024, 768))
        );
        assert!(w.resolutions().len() >= 3);
    }
}
