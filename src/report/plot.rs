//! Charts (PNG and SVG) with plotters, using an embedded font (no system fonts needed).
// STUB: to be implemented.

use std::path::Path;

use crate::error::Result;

/// One line of a line chart: points `(x, mean, low, high)`; `low`/`high` bound a shaded
/// confidence band (equal to `mean` when there is none).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64, f64, f64)>,
    /// Draw dashed (e.g. an upper bound or a reference line).
    pub dashed: bool,
}

/// Axes, title and value range of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Fixed y range, or `None` to fit the data.
    pub y_range: Option<(f64, f64)>,
    /// Logarithmic y axis (base 2), e.g. for SP degrees.
    pub y_log2: bool,
}

/// One box of a GPU timeline: `gpu` row, `[start, end)` seconds, a colour class (resolution
/// index) and a label; `missed` marks the last box of a request that missed its deadline.
#[derive(Clone, Debug, PartialEq)]
pub struct GanttBox {
    pub gpu: u32,
    pub start: f64,
    pub end: f64,
    pub class: usize,
    pub label: String,
    pub missed: bool,
}

/// Writes `<base>.png` and `<base>.svg`: one line per series, with confidence bands.
pub fn line_chart(base: &Path, frame: &Frame, series: &[Series]) -> Result<()> {
    let _ = (base, frame, series);
    unimplemented!()
}

/// Writes `<base>.png` and `<base>.svg`: for each group (x tick, e.g. a resolution) one bar per
/// series (e.g. a policy), with values in `values[series][group]`.
pub fn grouped_bars(
    base: &Path,
    frame: &Frame,
    groups: &[String],
    series: &[String],
    values: &[Vec<f64>],
) -> Result<()> {
    let _ = (base, frame, groups, series, values);
    unimplemented!()
}

/// Writes `<base>.png` and `<base>.svg`: the empirical CDF of each sample set.
pub fn cdf_chart(base: &Path, frame: &Frame, samples: &[(String, Vec<f64>)]) -> Result<()> {
    let _ = (base, frame, samples);
    unimplemented!()
}

/// Writes `<base>.png` and `<base>.svg`: a GPU timeline, one row per GPU (`gpus` rows), boxes
/// coloured by class with a legend naming `classes`, deadline misses marked.
pub fn gantt(
    base: &Path,
    frame: &Frame,
    gpus: u32,
    classes: &[String],
    boxes: &[GanttBox],
) -> Result<()> {
    let _ = (base, frame, gpus, classes, boxes);
    unimplemented!()
}
