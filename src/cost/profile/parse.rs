//! Reading a profile CSV into validated rows, with errors that name the line and the field.
//!
//! Parsing is separate from lookup so that every check on user input happens once, here, and
//! the lookup code can rely on positive step times, power-of-two degrees and unique keys.

use std::collections::HashMap;

use super::row::{Key, ProfileRow};
use crate::cluster::Link;
use crate::error::{Error, InputError, Result};
use crate::workload::Resolution;

/// The columns a profile may have; matched by header name, in any order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Column {
    Model,
    Gpu,
    Width,
    Height,
    SpDegree,
    Batch,
    StepMs,
    StdMs,
    Source,
    Link,
}

const REQUIRED: [(Column, &str); 7] = [
    (Column::Model, "model"),
    (Column::Gpu, "gpu"),
    (Column::Width, "width"),
    (Column::Height, "height"),
    (Column::SpDegree, "sp_degree"),
    (Column::Batch, "batch"),
    (Column::StepMs, "step_ms"),
];
const OPTIONAL: [(Column, &str); 3] = [
    (Column::StdMs, "std_ms"),
    (Column::Source, "source"),
    (Column::Link, "link"),
];

const FORMAT_HINT: &str = "a profile's header is `model,gpu,width,height,sp_degree,batch,step_ms` plus optional `std_ms`, `source`, `link`; see profiles/README.md";

/// What [`parse`] produces: the (model, gpu) pair and the rows in file order.
pub(super) struct Parsed {
    pub model: String,
    pub gpu: String,
    pub rows: Vec<ProfileRow>,
}

/// Parses and validates profile CSV `text`; `source` names it in errors.
pub(super) fn parse(text: &str, source: &str) -> Result<Parsed> {
    let err = |line: u64, message: String| InputError::new(source, message).line(line);
    // A quoted cell no quote closes would take every later row as its text.
    if let Some((line, _)) = crate::workload::import::unterminated_quote(text) {
        return Err(err(
            line,
            "a quoted field opens here and no quote closes it: it would run to the end of the file, taking every row after it as its text".into(),
        )
        .hint("close the quote, or remove it")
        .into());
    }
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .flexible(true)
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut records = reader.records();

    // The header: the first non-comment line.
    let (header, header_line) = match records.next() {
        None => {
            return Err(InputError::new(
                source,
                "the profile is empty; expected a header line and at least one row",
            )
            .hint(FORMAT_HINT)
            .into());
        }
        Some(r) => {
            let r = r.map_err(|e| csv_error(text, source, e))?;
            let line = line_of(text, r.position());
            (r, line)
        }
    };
    let columns = header_columns(&header, header_line, source)?;

    let mut model_gpu: Option<(String, String, u64)> = None;
    let mut rows: Vec<ProfileRow> = Vec::new();
    let mut seen: HashMap<Key, u64> = HashMap::new();
    for record in records {
        let record = record.map_err(|e| csv_error(text, source, e))?;
        let line = line_of(text, record.position());
        if record.len() != columns.len() {
            return Err(err(
                line,
                format!(
                    "expected {} fields as in the header, found {}",
                    columns.len(),
                    record.len()
                ),
            )
            .hint(FORMAT_HINT)
            .into());
        }
        let (key, row) = parse_row(&record, line, &columns, &mut model_gpu, source)?;
        if let Some(first) = seen.insert(key, line) {
            let Key {
                res,
                degree,
                batch,
                link,
            } = key;
            return Err(err(
                line,
                format!("duplicate row: {res} at SP {degree}, batch {batch}, link {link} is already given on line {first}"),
            )
            .hint("keep one row per resolution, degree, batch and link")
            .into());
        }
        rows.push(row);
    }

    let Some((model, gpu, _)) = model_gpu else {
        return Err(
            InputError::new(source, "the profile has a header but no rows")
                .line(header_line)
                .hint("add at least one row per resolution, SP degree and batch size the run uses")
                .into(),
        );
    };
    Ok(Parsed { model, gpu, rows })
}

/// The header's columns, each known and once, every required one present.
fn header_columns(
    header: &csv::StringRecord,
    header_line: u64,
    source: &str,
) -> Result<Vec<Column>> {
    let err = |line: u64, message: String| InputError::new(source, message).line(line);
    let mut columns: Vec<Column> = Vec::with_capacity(header.len());
    let mut unknown = Vec::new();
    for name in header.iter() {
        let col = REQUIRED
            .iter()
            .chain(OPTIONAL.iter())
            .find(|(_, n)| *n == name)
            .map(|&(c, _)| c);
        match col {
            Some(c) if columns.contains(&c) => {
                return Err(err(
                    header_line,
                    format!("column `{name}` appears twice in the header"),
                )
                .field(name)
                .hint(FORMAT_HINT)
                .into());
            }
            Some(c) => columns.push(c),
            None => unknown.push(name.to_string()),
        }
    }
    if !unknown.is_empty() {
        let names: Vec<String> = unknown.iter().map(|n| format!("`{n}`")).collect();
        return Err(err(
            header_line,
            format!("unknown column(s) {} in the header", names.join(", ")),
        )
        .field(unknown.join(","))
        .hint(FORMAT_HINT)
        .into());
    }
    if let Some((_, name)) = REQUIRED.iter().find(|(c, _)| !columns.contains(c)) {
        return Err(err(
            header_line,
            format!("the header lacks the required column `{name}`"),
        )
        .field(*name)
        .hint(FORMAT_HINT)
        .into());
    }

    Ok(columns)
}

/// One data row at `line`: its key and its validated fields. The first row fixes the profile's
/// (model, gpu) pair in `model_gpu`; every later row must repeat it.
fn parse_row(
    record: &csv::StringRecord,
    line: u64,
    columns: &[Column],
    model_gpu: &mut Option<(String, String, u64)>,
    source: &str,
) -> Result<(Key, ProfileRow)> {
    let err = |line: u64, message: String| InputError::new(source, message).line(line);
    let get = |col: Column| -> Option<&str> {
        columns
            .iter()
            .position(|&c| c == col)
            .and_then(|i| record.get(i))
    };
    let field_err = |name: &str, message: String| err(line, message).field(name);
    let required = |col: Column, name: &str| -> Result<&str> {
        match get(col) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(field_err(name, "is empty; a value is required".into())
                .hint(FORMAT_HINT)
                .into()),
        }
    };
    let uint = |col: Column, name: &str, what: &str| -> Result<u32> {
        let v = required(col, name)?;
        v.parse::<u32>()
            .map_err(|_| field_err(name, format!("expected {what}, got `{v}`")).into())
    };

    let model = required(Column::Model, "model")?;
    let gpu = required(Column::Gpu, "gpu")?;
    match &*model_gpu {
        None => *model_gpu = Some((model.to_string(), gpu.to_string(), line)),
        Some((m, g, first)) if m != model || g != gpu => {
            return Err(field_err(
                if m != model { "model" } else { "gpu" },
                format!("row is for {model} on {gpu}, but line {first} is for {m} on {g}; a profile holds one (model, gpu) pair"),
            )
            .hint("split the rows into one file per model and GPU")
            .into());
        }
        Some(_) => {}
    }

    let width = uint(
        Column::Width,
        "width",
        "a width in pixels (a multiple of 16)",
    )?;
    let height = uint(
        Column::Height,
        "height",
        "a height in pixels (a multiple of 16)",
    )?;
    let res = Resolution::new(width, height);
    if let Err(e) = res.validate() {
        let field = if width == 0 || !width.is_multiple_of(16) {
            "width"
        } else {
            "height"
        };
        return Err(field_err(field, e).into());
    }
    let degree = uint(
        Column::SpDegree,
        "sp_degree",
        "a power-of-two SP degree (1, 2, 4, 8, ...)",
    )?;
    if degree == 0 || !degree.is_power_of_two() {
        return Err(field_err(
            "sp_degree",
            format!("expected a power of two >= 1, got {degree}"),
        )
        .hint("Ulysses splits attention heads evenly, so SP degrees are 1, 2, 4, 8, ...")
        .into());
    }
    let batch = uint(Column::Batch, "batch", "a batch size >= 1")?;
    if batch == 0 {
        return Err(field_err("batch", "expected a batch size >= 1, got 0".into()).into());
    }
    let step_ms = parse_ms(required(Column::StepMs, "step_ms")?)
        .filter(|&t| t > 0.0 && crate::time::Nanos::try_from_secs(t / 1e3).is_some())
        .ok_or_else(|| {
            field_err(
                "step_ms",
                format!(
                    "expected a positive, finite time in milliseconds, got `{}`",
                    get(Column::StepMs).unwrap_or_default()
                ),
            )
            .hint("step_ms is the mean time of one denoising step, e.g. 171.5")
        })?;
    let std_ms = match get(Column::StdMs) {
        None | Some("") => None,
        Some(v) => Some(parse_ms(v).filter(|&s| s >= 0.0).ok_or_else(|| {
            field_err(
                "std_ms",
                format!(
                    "expected a non-negative, finite standard deviation in milliseconds, got `{v}`"
                ),
            )
            .hint("leave std_ms empty when it is unknown")
        })?),
    };
    let source_col = get(Column::Source)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let link = match get(Column::Link) {
        None | Some("") => Link::NvLink,
        Some(v) => v.parse::<Link>().map_err(|e| {
            field_err("link", e).hint(
                "use `nvlink` for GPUs on one NVLink domain, `pcie` when the group crosses PCIe",
            )
        })?,
    };

    let key = Key {
        res,
        degree,
        batch,
        link,
    };
    let row = ProfileRow {
        res,
        degree,
        batch,
        link,
        step_ms,
        std_ms,
        source: source_col,
        line,
    };
    Ok((key, row))
}

/// The 1-based line a record starts on, counted from its byte offset.
///
/// The `csv` crate's own line numbers skip `#` comment lines, and a record's byte offset points at
/// any comment or blank lines before it; both would point users at the wrong line.
fn line_of(text: &str, pos: Option<&csv::Position>) -> u64 {
    let bytes = text.as_bytes();
    let mut at = pos.map_or(0, |p| p.byte() as usize).min(bytes.len());
    while at < bytes.len() && matches!(bytes[at], b'#' | b'\n' | b'\r') {
        at = bytes[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| at + i + 1);
    }
    1 + bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64
}

/// A finite number of milliseconds, or `None`.
fn parse_ms(v: &str) -> Option<f64> {
    v.parse::<f64>().ok().filter(|t| t.is_finite())
}

/// Converts a low-level CSV error (invalid UTF-8, I/O) into an input error with its line.
fn csv_error(text: &str, source: &str, e: csv::Error) -> Error {
    let mut ie = InputError::new(source, format!("unreadable CSV: {e}"));
    if let Some(pos) = e.position() {
        ie.line = Some(line_of(text, Some(pos)));
    }
    ie.into()
}
