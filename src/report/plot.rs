//! Charts (PNG and SVG) for reports and papers, drawn with plotters.
//!
//! Every chart is written twice from the same drawing code: a 1200x750 PNG to look at and an
//! SVG to put into a paper. Text is laid out with DejaVu Sans compiled into the binary, so the
//! output is the same on a machine without any system fonts (CI, a GPU node). Colours follow
//! the Okabe-Ito palette, which stays distinguishable for colour-blind readers, and line
//! series also get a distinct marker shape so that a grey-scale print still tells them apart.
//! Legends never hide data: they go to a spot of the plot that no data reaches (checked
//! against the drawn lines, bands and bars), or else to a strip right of the plot. Latency
//! CDFs have a logarithmic x axis; bars carry error bars when given, and a bar too short to
//! see is drawn as a mark on the baseline with its value written above it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};
use crate::policy::PolicyKind;

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
    /// Logarithmic x axis (base 2) of a line chart, labelled at the powers of two, e.g. for
    /// cluster sizes; points at x <= 0 are left out.
    pub x_log2: bool,
    /// Label the x axis of a line chart at exactly these values (the measured points, say)
    /// instead of round numbers; ignored on a log2 x axis, which is labelled at its powers.
    pub x_ticks: Option<Vec<f64>>,
    /// A line of text under the chart (what was run, where the numbers come from).
    pub caption: Option<String>,
    /// Fixed x range of a GPU timeline (a window of the run), or `None` to fit its boxes.
    pub x_range: Option<(f64, f64)>,
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
    write_both(base, &LineFig { frame, series })
}

/// Writes `<base>.png` and `<base>.svg`: for each group (x tick, e.g. a resolution) one bar per
/// series (e.g. a policy), with values in `values[series][group]`.
/// `ci`, when given, holds the half-width of each bar's error bar (same shape as `values`):
/// a 95% confidence interval over seeds, say.
pub fn grouped_bars(
    base: &Path,
    frame: &Frame,
    groups: &[String],
    series: &[String],
    values: &[Vec<f64>],
    ci: Option<&[Vec<f64>]>,
) -> Result<()> {
    // A shape mismatch is a bug in the caller; say which row is wrong instead of guessing.
    if values.len() != series.len() {
        return Err(Error::config(format!(
            "chart `{}`: {} series names but {} value rows",
            frame.title,
            series.len(),
            values.len()
        )));
    }
    if let Some((i, row)) = values
        .iter()
        .enumerate()
        .find(|(_, r)| r.len() != groups.len())
    {
        return Err(Error::config(format!(
            "chart `{}`: series `{}` has {} values for {} groups",
            frame.title,
            series[i],
            row.len(),
            groups.len()
        )));
    }
    if let Some(ci) = ci
        && (ci.len() != values.len() || ci.iter().zip(values).any(|(c, v)| c.len() != v.len()))
    {
        return Err(Error::config(format!(
            "chart `{}`: the error bars do not have the shape of the values",
            frame.title
        )));
    }
    write_both(
        base,
        &BarsFig {
            frame,
            groups,
            series,
            values,
            ci,
        },
    )
}

/// Writes `<base>.png` and `<base>.svg`: the empirical CDF of each sample set. An infinite
/// sample (a request that never completed) counts in its set's size but is never reached, so
/// that set's curve ends below 1. `marks` are labelled vertical reference lines (deadlines).
pub fn cdf_chart(
    base: &Path,
    frame: &Frame,
    samples: &[(String, Vec<f64>)],
    marks: &[(String, f64)],
) -> Result<()> {
    write_both(
        base,
        &CdfFig {
            frame,
            samples,
            marks,
        },
    )
}

/// Writes `<base>.png` and `<base>.svg`: a GPU timeline, one row per GPU (`gpus` rows), boxes
/// coloured by class with a legend naming `classes`, deadline misses marked.
pub fn gantt(
    base: &Path,
    frame: &Frame,
    gpus: u32,
    gpus_per_node: u32,
    classes: &[String],
    boxes: &[GanttBox],
) -> Result<()> {
    write_both(
        base,
        &GanttFig {
            frame,
            gpus,
            gpus_per_node,
            classes,
            boxes,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Shared layout and style

/// Image size in pixels; the SVG uses the same coordinates so both files look alike.
const SIZE: (u32, u32) = (1200, 750);
/// The font family every text uses; it is registered from the embedded DejaVu Sans.
const FONT: &str = "sans-serif";
const TITLE_PX: f64 = 30.0;
const DESC_PX: f64 = 24.0;
const TICK_PX: f64 = 19.0;
const LEGEND_PX: f64 = 19.0;
const MARGIN: u32 = 18;
/// Extra room on the right so that the last x tick label is not clipped.
const MARGIN_RIGHT: u32 = 36;
const X_LABEL_AREA: u32 = 72;
const Y_LABEL_AREA: u32 = 100;
/// Width reserved in a legend row for the line/marker sample.
const LEGEND_ICON: u32 = 48;
const LEGEND_MARGIN: u32 = 10;
const LINE_WIDTH: u32 = 3;
const MARKER_R: i32 = 5;
/// Above this many boxes a timeline drops box borders and merges boxes that touch within a
/// pixel: the borders would be invisible anyway, and the SVG stays a few megabytes.
const GANTT_DENSE: usize = 20_000;

/// Okabe-Ito (the first eight: distinguishable under the common colour-vision deficiencies),
/// then Paul Tol's wine, green and indigo for policies beyond eight. A policy's slot comes from the
/// policy registry ([`PolicyKind::all`]), so one policy has one colour in every chart; slot 7
/// (black) is the upper bound's. Slots beyond these are derived (`color`).
const PALETTE: [RGBColor; 11] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0xF0, 0xE4, 0x42),
    RGBColor(0x00, 0x00, 0x00),
    RGBColor(0x88, 0x22, 0x55),
    RGBColor(0x11, 0x77, 0x33),
    RGBColor(0x33, 0x22, 0x88),
];
const GRID: RGBColor = RGBColor(0xDD, 0xDD, 0xDD);
const MISS: RGBColor = RGBColor(0xD0, 0x00, 0x00);

/// The label of the dashed upper-bound line, drawn in black.
pub const BOUND_LABEL: &str = "upper bound";

/// The palette slot of a series: a registered policy (also `policy (mix)`) keeps its
/// registry colour, the upper bound is black, other labels use their position.
fn slot(label: &str, position: usize) -> usize {
    let name = label.split(" (").next().unwrap_or(label);
    match PolicyKind::info(name) {
        Some(p) => p.colour,
        None if label == BOUND_LABEL => 7,
        None => position,
    }
}

/// The colour of palette slot `i`: [`PALETTE`]'s, then derived ones, so that any number of
/// policies (or series) gets distinct colours instead of wrapping onto the first ones (a
/// twelfth policy would otherwise look like xdit-sp1). Slot `PALETTE.len() + n` takes hue and
/// lightness from the `n`-th point of the R2 low-discrepancy sequence (Roberts 2018), which
/// spreads any prefix evenly over the plane, at a fixed saturation: each new colour lands
/// away from the earlier ones, and the first thousands are distinct after rounding to 8 bits
/// (a test checks). The fixed slots keep their colours, so existing charts are unchanged.
fn color(i: usize) -> RGBColor {
    if let Some(&c) = PALETTE.get(i) {
        return c;
    }
    // The plastic number g, x^3 = x + 1: R2's steps are 1/g and 1/g^2.
    const G: f64 = 1.324_717_957_244_746;
    let n = (i - PALETTE.len()) as f64;
    let hue = (0.5 + n / G).fract();
    let lightness = 0.30 + 0.35 * (0.5 + n / (G * G)).fract();
    hsl(hue, 0.70, lightness)
}

/// HSL (each in [0, 1]) to 8-bit RGB.
fn hsl(h: f64, s: f64, l: f64) -> RGBColor {
    let q = if l < 0.5 {
        l * (1.0 + s)
    } else {
        l + s - l * s
    };
    let p = 2.0 * l - q;
    let channel = |t: f64| {
        let t = t.rem_euclid(1.0);
        let v = if t < 1.0 / 6.0 {
            p + (q - p) * 6.0 * t
        } else if t < 0.5 {
            q
        } else if t < 2.0 / 3.0 {
            p + (q - p) * (2.0 / 3.0 - t) * 6.0
        } else {
            p
        };
        (v * 255.0).round() as u8
    };
    RGBColor(channel(h + 1.0 / 3.0), channel(h), channel(h - 1.0 / 3.0))
}

/// The colour darkened towards black, for borders that separate adjacent boxes of one colour.
fn darker(c: RGBColor) -> RGBColor {
    let f = |v: u8| (f64::from(v) * 0.6) as u8;
    RGBColor(f(c.0), f(c.1), f(c.2))
}

/// Black or white, whichever reads better on `c`.
fn text_on(c: RGBColor) -> RGBColor {
    let lum = 0.299 * f64::from(c.0) + 0.587 * f64::from(c.1) + 0.114 * f64::from(c.2);
    if lum > 140.0 { BLACK } else { WHITE }
}

/// An error while drawing, carried as text because the backend error types differ.
struct DrawErr(String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawErr {
    fn from(e: DrawingAreaErrorKind<E>) -> DrawErr {
        DrawErr(e.to_string())
    }
}

type Drawn = std::result::Result<(), DrawErr>;

/// A chart that can draw itself on any backend, so PNG and SVG come from one code path.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn;
    fn frame(&self) -> &Frame;
}

/// Pixels under a chart for its caption.
const CAPTION_H: u32 = 44;

/// Draws `fig` on `root`, with the frame's caption, if any, in a strip under the chart.
fn draw_with_caption<F: Figure, DB: DrawingBackend>(
    fig: &F,
    root: &DrawingArea<DB, Shift>,
) -> Drawn {
    let Some(caption) = fig.frame().caption.as_deref().filter(|c| !c.is_empty()) else {
        return fig.draw(root);
    };
    let (w, h) = root.dim_in_pixel();
    let (chart, strip) = root.split_vertically(h.saturating_sub(CAPTION_H));
    strip.fill(&WHITE)?;
    let grey = BLACK.mix(0.75);
    let style = TextStyle::from((FONT, TICK_PX))
        .color(&grey)
        .pos(Pos::new(HPos::Left, VPos::Center));
    // One line; a caption longer than the width is cut with an ellipsis rather than drawn
    // past the edge. The font's measured box runs a few percent short of the drawn text, so
    // a tenth of the width is kept in reserve.
    let room = 0.9 * (f64::from(w) - 2.0 * f64::from(MARGIN));
    let mut text = caption.to_string();
    while text.len() > 1 && text_width(&text, TICK_PX) > room {
        text.pop();
        while !text.is_char_boundary(text.len()) {
            text.pop();
        }
        if text_width(&format!("{text}..."), TICK_PX) <= room {
            text.push_str("...");
            break;
        }
    }
    strip.draw(&Text::new(
        text,
        (MARGIN as i32, (CAPTION_H / 2) as i32),
        style,
    ))?;
    fig.draw(&chart)
}

/// Registers the embedded font once per process. plotters looks fonts up by family name in a
/// global table; without this every text would fail to render on a machine without fonts.
fn fonts() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::config(
            "charts: the embedded DejaVu Sans font could not be loaded",
        ))
    }
}

/// `<base>.<ext>`, appending rather than replacing, so that `p99.5` keeps its `.5`.
pub fn with_ext(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn write_both<F: Figure>(base: &Path, fig: &F) -> Result<()> {
    fonts()?;
    if let Some(dir) = base.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let failed = |path: &Path, e: DrawErr| {
        Error::config(format!("rendering chart {}: {}", path.display(), e.0))
    };

    // The bitmap backend writes a path: a temporary one, whose bytes then go to the chart's
    // path by the rules of every output file (`files::write_file`). Creating the file first
    // turns a bad path into a proper I/O error naming it (the backend only reports an opaque
    // drawing error).
    let png = with_ext(base, "png");
    let png_name = png
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "chart.png".into());
    let tmp = png.with_file_name(crate::files::temp_name(&png_name) + ".png");
    let _guard = crate::files::TempGuard::new(&tmp);
    fs::File::create(&tmp).map_err(|e| Error::io(&png, e))?;
    let drawn = (|| -> Result<Vec<u8>> {
        {
            let root = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
            draw_with_caption(fig, &root).map_err(|e| failed(&png, e))?;
            root.present().map_err(|e| failed(&png, DrawErr::from(e)))?;
        }
        fs::read(&tmp).map_err(|e| Error::io(&tmp, e))
    })();
    let _ = fs::remove_file(&tmp);
    crate::files::write_file(&png, &drawn?)?;

    let svg = with_ext(base, "svg");
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
        draw_with_caption(fig, &root).map_err(|e| failed(&svg, e))?;
        root.present().map_err(|e| failed(&svg, DrawErr::from(e)))?;
    }
    crate::files::write_file(&svg, text.as_bytes())
}

/// The chart frame every chart type shares: title, margins and room for tick labels and axis
/// descriptions.
fn builder<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    frame: &Frame,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(area);
    b.caption(
        &frame.title,
        (FONT, title_px(&frame.title, area.dim_in_pixel().0)),
    )
    .margin(MARGIN)
    .margin_right(MARGIN_RIGHT)
    .x_label_area_size(X_LABEL_AREA)
    .y_label_area_size(Y_LABEL_AREA);
    b
}

/// The title's font size: the usual one, or smaller (down to two thirds) so that a long title
/// fits the width of its area instead of running off both edges. The font's measured box runs
/// a few percent short of the drawn text, hence the reserve.
fn title_px(title: &str, width: u32) -> f64 {
    let room = 0.92 * f64::from(width.saturating_sub(2 * MARGIN));
    let w = text_width(title, TITLE_PX);
    if w <= room || w <= 0.0 {
        TITLE_PX
    } else {
        (TITLE_PX * room / w).max(TITLE_PX * 2.0 / 3.0)
    }
}

/// Axis descriptions, tick label sizes and a light grid, shared by all charts.
fn style_mesh<'a, 'b, DB: DrawingBackend, X: Ranged, Y: Ranged>(
    mesh: &mut MeshStyle<'a, 'b, X, Y, DB>,
    frame: &Frame,
) {
    mesh.x_desc(frame.x_label.as_str())
        .y_desc(frame.y_label.as_str())
        .axis_desc_style((FONT, DESC_PX))
        .label_style((FONT, TICK_PX))
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(TRANSPARENT)
        .axis_style(BLACK.stroke_width(1))
        .set_all_tick_mark_size(6);
}

/// Tick labels without float noise (`0.30000000000000004`) or needless zeros (`2.50`).
fn tick(v: &f64) -> String {
    let a = v.abs();
    let s = if a == 0.0 {
        return "0".to_string();
    } else if !(1e-3..1e5).contains(&a) {
        return format!("{v:.1e}");
    } else if a >= 100.0 {
        return format!("{v:.0}");
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `[lo, hi]` grown by `frac` of its width on both sides; a single value gets a unit range.
fn pad_range(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - d, hi + d);
    }
    let d = (hi - lo) * frac;
    (lo - d, hi + d)
}

fn finite_min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

// ---------------------------------------------------------------------------------------------
// Legends

/// Estimated pixel size of the plotting area (image minus title, margins and label areas),
/// used to place the legend before the chart is laid out. An error of a few pixels only
/// shifts the safety padding.
const PLOT_W: f64 = (SIZE.0 - MARGIN - MARGIN_RIGHT - Y_LABEL_AREA) as f64;
const PLOT_H: f64 = SIZE.1 as f64 - 2.0 * MARGIN as f64 - X_LABEL_AREA as f64 - TITLE_PX - 12.0;
/// Height of one legend row.
const LEGEND_ROW: f64 = 26.0;

/// Pixel size of a legend box listing `labels`.
fn legend_size(labels: &[&str]) -> (f64, f64) {
    let font = (FONT, LEGEND_PX).into_font();
    let text_w = labels
        .iter()
        .map(|l| {
            font.box_size(l)
                .map(|(w, _)| f64::from(w))
                .unwrap_or(LEGEND_PX * 0.6 * l.chars().count() as f64)
        })
        .fold(0.0, f64::max);
    let w = text_w + f64::from(LEGEND_ICON + 2 * LEGEND_MARGIN);
    let h = labels.len() as f64 * LEGEND_ROW + f64::from(2 * LEGEND_MARGIN);
    (w, h)
}

/// Where a legend goes: inside the plot at a spot that hides no data (horizontal anchor:
/// 0 left, 1 middle, 2 right; top or bottom), or in a strip right of the plot.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Placement {
    Inside { across: u8, top: bool },
    Outside,
}

/// Picks a corner (or the middle of the top or bottom edge) of the plot where the legend
/// covers none of `samples` (data in plot-normalised coordinates: x right, y up, both in
/// [0, 1]), with a margin of a few pixels; when every spot would hide data, the legend goes
/// outside the plot. A legend therefore never covers data.
fn plan_legend(samples: &[(f64, f64)], labels: &[&str]) -> Placement {
    let (w, h) = legend_size(labels);
    let (fw, fh) = ((w + 10.0) / PLOT_W, (h + 10.0) / PLOT_H);
    let pad = (10.0 / PLOT_W, 10.0 / PLOT_H);
    let spots = [
        (2u8, true),
        (0, true),
        (2, false),
        (0, false),
        (1, true),
        (1, false),
    ];
    let free = |(across, top): (u8, bool)| {
        let x0 = match across {
            0 => 0.0,
            1 => 0.5 - fw / 2.0,
            _ => 1.0 - fw,
        };
        let (y0, y1) = if top { (1.0 - fh, 1.0) } else { (0.0, fh) };
        let (x1, x0) = (x0 + fw + pad.0, x0 - pad.0);
        let (y0, y1) = (y0 - pad.1, y1 + pad.1);
        !samples
            .iter()
            .any(|&(x, y)| x >= x0 && x <= x1 && y >= y0 && y <= y1)
    };
    spots
        .into_iter()
        .find(|&s| free(s))
        .map_or(Placement::Outside, |(across, top)| Placement::Inside {
            across,
            top,
        })
}

/// The areas a chart and its legend get: the whole image, or the image less a strip on the
/// right that holds the legend.
fn split_for_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    placement: Placement,
    labels: &[&str],
) -> DrawingArea<DB, Shift> {
    match placement {
        Placement::Inside { .. } => root.clone(),
        Placement::Outside => root.split_horizontally(SIZE.0 - legend_strip(labels)).0,
    }
}

/// Width of the strip an outside legend takes.
fn legend_strip(labels: &[&str]) -> u32 {
    (legend_size(labels).0.ceil() as u32 + MARGIN).clamp(120, 420)
}

/// Samples a polyline every few pixels (normalised coordinates) so that a legend placed over a
/// segment between two far-apart points still counts as hiding data.
fn sample_polyline(points: &[(f64, f64)], out: &mut Vec<(f64, f64)>) {
    const STEP: f64 = 0.004;
    if let [only] = points {
        out.push(*only);
    }
    for w in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        let n = (((x1 - x0).hypot(y1 - y0)) / STEP)
            .ceil()
            .clamp(1.0, 1000.0) as usize;
        for k in 0..=n {
            let t = k as f64 / n as f64;
            out.push((x0 + (x1 - x0) * t, y0 + (y1 - y0) * t));
        }
    }
}

/// What a legend entry shows before its label.
#[derive(Clone, Copy, Debug)]
enum Icon {
    /// A line sample with the series' marker.
    Line { dashed: bool, shape: usize },
    /// A filled box (bars, timeline classes).
    Swatch,
    /// The deadline-miss marker of the timeline.
    Miss,
}

/// One row of a legend.
struct Entry<'a> {
    label: &'a str,
    colour: RGBColor,
    icon: Icon,
}

/// Draws a framed legend for `entries` on `root` (absolute pixels): inside the plotting area
/// `plot` (pixel ranges) at the spot `placement` names, or right of it.
fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: (std::ops::Range<i32>, std::ops::Range<i32>),
    placement: Placement,
    entries: &[Entry<'_>],
) -> Drawn {
    if entries.is_empty() {
        return Ok(());
    }
    let labels: Vec<&str> = entries.iter().map(|e| e.label).collect();
    let (w, h) = legend_size(&labels);
    let (w, h) = (w.ceil() as i32, h.ceil() as i32);
    let (xs, ys) = plot;
    let inset = 8;
    let (x, y) = match placement {
        Placement::Outside => (xs.end + MARGIN as i32, ys.start),
        Placement::Inside { across, top } => (
            match across {
                0 => xs.start + inset,
                1 => (xs.start + xs.end - w) / 2,
                _ => xs.end - w - inset,
            },
            if top {
                ys.start + inset
            } else {
                ys.end - h - inset
            },
        ),
    };
    root.draw(&Rectangle::new([(x, y), (x + w, y + h)], WHITE.filled()))?;
    root.draw(&Rectangle::new([(x, y), (x + w, y + h)], BLACK.mix(0.5)))?;
    let text =
        TextStyle::from((FONT, LEGEND_PX).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (k, e) in entries.iter().enumerate() {
        let cy = y + LEGEND_MARGIN as i32 + (k as f64 * LEGEND_ROW + LEGEND_ROW / 2.0) as i32;
        let ix = x + LEGEND_MARGIN as i32;
        let c = e.colour;
        match e.icon {
            Icon::Swatch => {
                let corners = [(ix + 4, cy - 8), (ix + 34, cy + 8)];
                root.draw(&Rectangle::new(corners, c.filled()))?;
                root.draw(&Rectangle::new(corners, darker(c).stroke_width(1)))?;
            }
            Icon::Line { dashed, shape } => {
                let half = (LEGEND_ICON as i32 - 12) / 2;
                let cx = ix + half;
                let style = c.stroke_width(LINE_WIDTH);
                for piece in icon_pieces(half, dashed) {
                    let at: Vec<(i32, i32)> =
                        piece.iter().map(|&(px, py)| (cx + px, cy + py)).collect();
                    root.draw(&PathElement::new(at, style))?;
                }
                let marker: Vec<(i32, i32)> = marker_shape(shape)
                    .iter()
                    .map(|&(px, py)| (cx + px, cy + py))
                    .collect();
                root.draw(&Polygon::new(marker, c.filled()))?;
            }
            Icon::Miss => {
                let mx = ix + 18;
                root.draw(&PathElement::new(
                    vec![(mx, cy - 8), (mx, cy + 8)],
                    BLACK.stroke_width(2),
                ))?;
                root.draw(&Polygon::new(
                    vec![(mx - 6, cy - 8), (mx + 6, cy - 8), (mx, cy)],
                    MISS.filled(),
                ))?;
            }
        }
        root.draw_text(e.label, &text, (ix + LEGEND_ICON as i32, cy))?;
    }
    Ok(())
}

/// Outline of marker shape `shape` around (0, 0), in pixels: circle, square, triangle,
/// diamond, inverted triangle. Every shape is a polygon so that all markers have one element
/// type (plotters composes elements statically).
fn marker_shape(shape: usize) -> Vec<(i32, i32)> {
    let r = MARKER_R;
    match shape % 5 {
        0 => (0..16)
            .map(|k| {
                let a = f64::from(k) * std::f64::consts::TAU / 16.0;
                let r = f64::from(r);
                ((r * a.cos()).round() as i32, (r * a.sin()).round() as i32)
            })
            .collect(),
        1 => vec![
            (-r + 1, -r + 1),
            (r - 1, -r + 1),
            (r - 1, r - 1),
            (-r + 1, r - 1),
        ],
        2 => vec![(0, -r - 1), (r + 1, r), (-r - 1, r)],
        3 => vec![(0, -r - 1), (r + 1, 0), (0, r + 1), (-r - 1, 0)],
        _ => vec![(0, r + 1), (r + 1, -r), (-r - 1, -r)],
    }
}

/// The three pieces of a legend line sample (half-length `half` pixels): contiguous for a
/// solid line, with gaps for a dashed one. Three pieces either way keep one element type.
fn icon_pieces(half: i32, dashed: bool) -> [Vec<(i32, i32)>; 3] {
    let (a, b) = if dashed {
        (half * 4 / 9, half * 2 / 9)
    } else {
        (half / 3, half / 3)
    };
    [
        vec![(-half, 0), (-a, 0)],
        vec![(-b, 0), (b, 0)],
        vec![(a, 0), (half, 0)],
    ]
}

// ---------------------------------------------------------------------------------------------
// Line chart

struct LineFig<'a> {
    frame: &'a Frame,
    series: &'a [Series],
}

/// A series' usable points: finite means (positive on a log axis), with a missing or
/// non-finite bound replaced by the mean, sorted by x.
fn clean_points(s: &Series, log: bool) -> Vec<(f64, f64, f64, f64)> {
    let ok = |v: f64| v.is_finite() && (!log || v > 0.0);
    let mut pts: Vec<_> = s
        .points
        .iter()
        .filter(|p| p.0.is_finite() && ok(p.1))
        .map(|&(x, m, lo, hi)| {
            let lo = if ok(lo) { lo.min(m) } else { m };
            let hi = if ok(hi) { hi.max(m) } else { m };
            (x, m, lo, hi)
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}
/// The legend entry of a line series drawn with palette slot `slot`.
fn line_entry(label: &str, slot: usize, dashed: bool) -> Entry<'_> {
    Entry {
        label,
        colour: color(slot),
        icon: Icon::Line {
            dashed,
            shape: slot,
        },
    }
}

impl Figure for LineFig<'_> {
    fn frame(&self) -> &Frame {
        self.frame
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        root.fill(&WHITE)?;
        let log = self.frame.y_log2;
        let x_log = self.frame.x_log2;
        // On a log x axis the data are drawn at log2(x), and only whole powers are labelled.
        let data: Vec<Vec<(f64, f64, f64, f64)>> = self
            .series
            .iter()
            .map(|s| {
                let pts = clean_points(s, log);
                if x_log {
                    pts.into_iter()
                        .filter(|p| p.0 > 0.0)
                        .map(|(x, m, lo, hi)| (x.log2(), m, lo, hi))
                        .collect()
                } else {
                    pts
                }
            })
            .collect();
        let all = || data.iter().flatten();
        let (x0, x1) = finite_min_max(all().map(|p| p.0)).unwrap_or((0.0, 1.0));
        let (x0, x1) = pad_range(x0, x1, 0.03);
        let x_powers = (x1.floor() - x0.ceil() + 1.0).max(1.0) as usize;
        let xlabel = |v: &f64| {
            if (v - v.round()).abs() < 1e-9 {
                format!("{}", v.round().exp2())
            } else {
                String::new()
            }
        };
        let xtick: &dyn Fn(&f64) -> String = if x_log { &xlabel } else { &tick };
        // Work in "axis units": log2(y) on a log axis, so that padding is proportional to
        // what the reader sees.
        let to_axis = |v: f64| if log { v.log2() } else { v };
        let from_axis = |v: f64| if log { v.exp2() } else { v };
        let (mut y0, mut y1) = match self.frame.y_range {
            Some((lo, hi)) if !log || lo > 0.0 => (to_axis(lo), to_axis(hi)),
            _ => {
                let (lo, hi) = finite_min_max(all().flat_map(|p| [p.2, p.3]).map(to_axis))
                    .unwrap_or((0.0, 1.0));
                if log {
                    // Whole powers of two at both ends, so the extreme ticks are labelled.
                    let (lo, hi) = (lo.floor(), hi.ceil().max(lo.floor() + 1.0));
                    (lo - 0.08 * (hi - lo), hi + 0.08 * (hi - lo))
                } else {
                    pad_range(lo, hi, 0.06)
                }
            }
        };
        if y1 <= y0 {
            (y0, y1) = pad_range(y0, y0, 0.0);
        }

        let norm = |x: f64, y: f64| ((x - x0) / (x1 - x0), (to_axis(y) - y0) / (y1 - y0));
        let mut samples = Vec::new();
        for pts in &data {
            for pick in [
                |p: &(f64, f64, f64, f64)| p.1,
                |p: &(f64, f64, f64, f64)| p.2,
                |p: &(f64, f64, f64, f64)| p.3,
            ] {
                let line: Vec<_> = pts.iter().map(|p| norm(p.0, pick(p))).collect();
                sample_polyline(&line, &mut samples);
            }
        }
        let labels: Vec<&str> = self.series.iter().map(|s| s.label.as_str()).collect();
        let placement = plan_legend(&samples, &labels);
        let area = split_for_legend(root, placement, &labels);
        let entries: Vec<Entry<'_>> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| line_entry(&s.label, slot(&s.label, i), s.dashed))
            .collect();

        let mut b = builder(&area, self.frame);
        let ticks = self
            .frame
            .x_ticks
            .clone()
            .filter(|t| !x_log && !t.is_empty());
        let axes = Axes {
            frame: self.frame,
            series: self.series,
            data: &data,
            x_powers: x_log.then_some(x_powers),
            xtick,
        };
        let plot = if log {
            let (lo, hi) = (from_axis(y0), from_axis(y1));
            let powers = (hi.log2().floor() - lo.log2().ceil() + 1.0).max(1.0) as usize;
            let ylabel = |v: &f64| format!("{}", v.round());
            let y = (lo..hi).log_scale().base(2.0);
            match ticks {
                Some(t) => axes.draw(&mut b, Ticked::new(x0..x1, t), y, Some(powers), &ylabel)?,
                None => axes.draw(&mut b, x0..x1, y, Some(powers), &ylabel)?,
            }
        } else {
            match ticks {
                Some(t) => axes.draw(&mut b, Ticked::new(x0..x1, t), y0..y1, None, &tick)?,
                None => axes.draw(&mut b, x0..x1, y0..y1, None, &tick)?,
            }
        };
        draw_legend(root, plot, placement, &entries)
    }
}

/// A linear f64 axis labelled at given values (the measured points) rather than at round
/// numbers.
struct Ticked {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ticked {
    fn new(range: std::ops::Range<f64>, ticks: Vec<f64>) -> Ticked {
        let ticks = ticks
            .into_iter()
            .filter(|t| t.is_finite() && range.contains(t))
            .collect();
        Ticked {
            inner: range.into(),
            ticks,
        }
    }
}

impl Ranged for Ticked {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: plotters::coord::ranged1d::KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Bold points only: the light grid is not drawn.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

/// What a line chart's axes are drawn from, whatever the coordinate types.
struct Axes<'s> {
    frame: &'s Frame,
    series: &'s [Series],
    data: &'s [Vec<(f64, f64, f64, f64)>],
    /// How many x labels on a log2 x axis (one per power); `None` on a linear one.
    x_powers: Option<usize>,
    xtick: &'s dyn Fn(&f64) -> String,
}

impl Axes<'_> {
    /// Builds the chart on coordinates `x` and `y`, draws the mesh and the lines, and returns
    /// the plotting area's pixel range (for the legend).
    fn draw<'a, 'b, DB, XS, YS>(
        &self,
        b: &mut ChartBuilder<'a, 'b, DB>,
        x: XS,
        y: YS,
        y_labels: Option<usize>,
        ylabel: &dyn Fn(&f64) -> String,
    ) -> Result<(std::ops::Range<i32>, std::ops::Range<i32>), DrawErr>
    where
        DB: DrawingBackend + 'a,
        XS: AsRangedCoord<Value = f64>,
        XS::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
        YS: AsRangedCoord<Value = f64>,
        YS::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let mut chart = b.build_cartesian_2d(x, y)?;
        let mut mesh = chart.configure_mesh();
        style_mesh(&mut mesh, self.frame);
        if let Some(n) = self.x_powers {
            mesh.x_labels(n);
        }
        if let Some(n) = y_labels {
            mesh.y_labels(n);
        }
        mesh.x_label_formatter(self.xtick)
            .y_label_formatter(ylabel)
            .draw()?;
        draw_lines(&mut chart, self.series, self.data)?;
        Ok(chart.plotting_area().get_pixel_range())
    }
}

/// The opacity of each confidence band when `bands` are drawn: 0.2 for up to two, then less,
/// down to 0.06, so that the overlap of all of them stays lighter than a single line.
fn band_alpha(bands: usize) -> f64 {
    (0.4 / bands.max(1) as f64).clamp(0.06, 0.2)
}

/// Bands first (so lines stay on top of every band), then lines with markers.
fn draw_lines<'a, DB: DrawingBackend + 'a, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    series: &[Series],
    data: &[Vec<(f64, f64, f64, f64)>],
) -> Drawn
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    // Overlapping bands add up: the more bands, the lighter each, so that where several
    // overlap the lines still read instead of a dark mud.
    let banded = |pts: &Vec<(f64, f64, f64, f64)>| {
        pts.len() > 1 && pts.iter().any(|p| p.2 != p.1 || p.3 != p.1)
    };
    let bands = data.iter().filter(|pts| banded(pts)).count();
    let alpha = band_alpha(bands);
    for (i, pts) in data.iter().enumerate() {
        let i = slot(&series[i].label, i);
        if banded(pts) {
            let mut poly: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.3)).collect();
            poly.extend(pts.iter().rev().map(|p| (p.0, p.2)));
            chart.draw_series(std::iter::once(Polygon::new(
                poly,
                color(i).mix(alpha).filled(),
            )))?;
        }
    }
    for (i, (s, pts)) in series.iter().zip(data).enumerate() {
        let i = slot(&s.label, i);
        let c = color(i);
        let style = c.stroke_width(LINE_WIDTH);
        let line = pts.iter().map(|p| (p.0, p.1));
        if s.dashed {
            chart.draw_series(DashedLineSeries::new(line, 12, 7, style))?;
        } else {
            chart.draw_series(LineSeries::new(line, style))?;
        }
        // Markers on every point up to ~40 per series; beyond that they merge into a blob.
        let every = pts.len().div_ceil(40).max(1);
        chart.draw_series(
            pts.iter()
                .step_by(every)
                .map(|p| EmptyElement::at((p.0, p.1)) + Polygon::new(marker_shape(i), c.filled())),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Grouped bars

struct BarsFig<'a> {
    frame: &'a Frame,
    groups: &'a [String],
    series: &'a [String],
    values: &'a [Vec<f64>],
    /// Half-widths of the error bars, same shape as `values`, when there are several samples.
    ci: Option<&'a [Vec<f64>]>,
}

/// Fraction of a group's width covered by its bars; the rest separates groups.
const GROUP_FILL: f64 = 0.8;
/// Bars shorter than this many pixels get a visible mark at the baseline and their value
/// written above it, so that a zero reads as "measured zero", not as "missing".
const THIN_BAR_PX: i32 = 3;

impl BarsFig<'_> {
    /// x extent of bar `s` in group `g` (group `g` spans `[g, g + 1]`).
    fn bar_x(&self, g: usize, s: usize) -> (f64, f64) {
        let w = GROUP_FILL / self.series.len().max(1) as f64;
        let left = g as f64 + (1.0 - GROUP_FILL) / 2.0 + s as f64 * w;
        (left + 0.04 * w, left + 0.96 * w)
    }

    /// The error bar half-width of bar `s` in group `g` (0 when there is none).
    fn half(&self, s: usize, g: usize) -> f64 {
        self.ci
            .and_then(|c| c.get(s)?.get(g).copied())
            .filter(|h| h.is_finite() && *h > 0.0)
            .unwrap_or(0.0)
    }
}

impl Figure for BarsFig<'_> {
    fn frame(&self) -> &Frame {
        self.frame
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        root.fill(&WHITE)?;
        let n = self.groups.len().max(1);
        let (x0, x1) = (0.0, n as f64);
        let ends = self.values.iter().enumerate().flat_map(|(s, row)| {
            row.iter()
                .enumerate()
                .flat_map(move |(g, v)| [v - self.half(s, g), v + self.half(s, g)])
        });
        let (vmin, vmax) = finite_min_max(ends).unwrap_or((0.0, 1.0));
        let (y0, mut y1) = match self.frame.y_range {
            Some(r) => r,
            None => {
                let hi = if vmax > 0.0 { vmax * 1.1 } else { 1.0 };
                let lo = if vmin < 0.0 { vmin * 1.1 } else { 0.0 };
                (lo, hi)
            }
        };
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        // Bars count as occupied from the baseline to the top of their error bar.
        let base = 0.0f64.clamp(y0, y1);
        let mut samples = Vec::new();
        for (s, row) in self.values.iter().enumerate() {
            for (g, v) in row.iter().enumerate().filter(|(_, v)| v.is_finite()) {
                let (l, r) = self.bar_x(g, s);
                let h = self.half(s, g);
                // A thin bar still shows its value label above the baseline.
                let top = (v + h).max(base + 0.06 * (y1 - y0));
                let (b, t) = (base.min(v - h), base.max(top));
                for k in 0..=8 {
                    let x = (l + (r - l) * k as f64 / 8.0 - x0) / (x1 - x0);
                    let steps = 40;
                    for j in 0..=steps {
                        let y = b + (t - b) * j as f64 / steps as f64;
                        samples.push((x, (y - y0) / (y1 - y0)));
                    }
                }
            }
        }
        let labels: Vec<&str> = self.series.iter().map(String::as_str).collect();
        let placement = plan_legend(&samples, &labels);
        let area = split_for_legend(root, placement, &labels);
        let plot_w = match placement {
            Placement::Outside => PLOT_W - f64::from(legend_strip(&labels)),
            Placement::Inside { .. } => PLOT_W,
        };

        // Long group names are wrapped onto two lines and shrunk before they would run into
        // the neighbouring group's name; a second line gets its own room above the x label.
        let (size, lines) = group_labels(self.groups, 0.95 * plot_w / n as f64);
        let extra = if lines.iter().any(|l| l.len() > 1) {
            size.ceil() as u32
        } else {
            0
        };
        let mut b = builder(&area, self.frame);
        b.x_label_area_size(X_LABEL_AREA + extra);
        let mut chart = b.build_cartesian_2d(x0..x1, y0..y1)?;
        let mut mesh = chart.configure_mesh();
        style_mesh(&mut mesh, self.frame);
        // Category names are drawn by hand at group centres; numeric x ticks make no sense.
        mesh.disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&tick)
            .draw()?;

        let value_style =
            TextStyle::from((FONT, 16.0).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
        let mut entries = Vec::new();
        for (s, (name, row)) in self.series.iter().zip(self.values).enumerate() {
            let c = color(slot(name, s));
            entries.push(Entry {
                label: name,
                colour: c,
                icon: Icon::Swatch,
            });
            for (g, v) in row.iter().enumerate().filter(|(_, v)| v.is_finite()) {
                let (l, r) = self.bar_x(g, s);
                let v = v.clamp(y0, y1);
                let corners = [(l, base.min(v)), (r, base.max(v))];
                let (_, py0) = chart.backend_coord(&(l, base));
                let (_, py1) = chart.backend_coord(&(l, v));
                if (py0 - py1).abs() < THIN_BAR_PX {
                    // A mark at the baseline in the bar's colour, and the value above it.
                    let (px_l, _) = chart.backend_coord(&(l, base));
                    let (px_r, _) = chart.backend_coord(&(r, base));
                    root.draw(&Rectangle::new(
                        [(px_l, py0 - THIN_BAR_PX), (px_r, py0)],
                        darker(c).filled(),
                    ))?;
                    root.draw_text(
                        &tick(&v),
                        &value_style,
                        ((px_l + px_r) / 2, py0 - THIN_BAR_PX - 3),
                    )?;
                } else {
                    chart.draw_series([
                        Rectangle::new(corners, c.filled()),
                        Rectangle::new(corners, darker(c).stroke_width(1)),
                    ])?;
                }
            }
        }
        // Error bars over every bar, so no bar hides a neighbour's whisker.
        for (s, row) in self.values.iter().enumerate() {
            for (g, v) in row.iter().enumerate().filter(|(_, v)| v.is_finite()) {
                let h = self.half(s, g);
                if h <= 0.0 {
                    continue;
                }
                let (l, r) = self.bar_x(g, s);
                let (mid, cap) = ((l + r) / 2.0, (r - l) * 0.25);
                let (lo, hi) = ((v - h).max(y0), (v + h).min(y1));
                let style = BLACK.mix(0.85).stroke_width(2);
                chart.draw_series([
                    PathElement::new(vec![(mid, lo), (mid, hi)], style),
                    PathElement::new(vec![(mid - cap, lo), (mid + cap, lo)], style),
                    PathElement::new(vec![(mid - cap, hi), (mid + cap, hi)], style),
                ])?;
            }
        }

        // Group names centred under each group (laid out before the chart, see above).
        let style =
            TextStyle::from((FONT, size).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (g, name) in lines.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(g as f64 + 0.5, y0));
            for (k, line) in name.iter().enumerate() {
                root.draw_text(line, &style, (x, y + 12 + (k as f64 * size) as i32))?;
            }
        }
        draw_legend(
            root,
            chart.plotting_area().get_pixel_range(),
            placement,
            &entries,
        )
    }
}

/// Width in pixels of `text` at `size`.
fn text_width(text: &str, size: f64) -> f64 {
    (FONT, size)
        .into_font()
        .box_size(text)
        .map_or(size * 0.6 * text.chars().count() as f64, |(w, _)| {
            f64::from(w)
        })
}

/// Greedy word wrap of `text` into lines of at most `width` pixels, or `None` if that needs
/// more than two lines (the x label area has room for two).
fn wrap2(text: &str, size: f64, width: f64) -> Option<Vec<String>> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if text_width(&format!("{line} {word}"), size) <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    let fits = lines.iter().all(|l| text_width(l, size) <= width);
    (fits && lines.len() <= 2).then_some(lines)
}

/// Font size and lines of each group name: one line at full size if every name fits, else the
/// largest size at which every name fits on two lines, else one shrunken line.
fn group_labels(groups: &[String], width: f64) -> (f64, Vec<Vec<String>>) {
    if groups.iter().all(|g| text_width(g, TICK_PX) <= width) {
        return (TICK_PX, groups.iter().map(|g| vec![g.clone()]).collect());
    }
    for size in [TICK_PX, 17.0, 15.0, 13.0] {
        let wrapped: Option<Vec<_>> = groups.iter().map(|g| wrap2(g, size, width)).collect();
        if let Some(lines) = wrapped {
            return (size, lines);
        }
    }
    let widest = groups
        .iter()
        .map(|g| text_width(g, TICK_PX))
        .fold(1.0, f64::max);
    let size = (TICK_PX * width / widest).max(9.0);
    (size, groups.iter().map(|g| vec![g.clone()]).collect())
}

// ---------------------------------------------------------------------------------------------
// CDF

struct CdfFig<'a> {
    frame: &'a Frame,
    samples: &'a [(String, Vec<f64>)],
    marks: &'a [(String, f64)],
}

/// Most points one CDF line is drawn with: beyond a few thousand the steps are narrower than
/// a pixel, and a million-sample CDF would make a huge SVG.
const CDF_POINTS: usize = 2000;

/// The empirical CDF of sorted `v` as a step line: `F(x) = (number of samples <= x) / n`.
fn cdf_steps(v: &[f64], total: usize) -> Vec<(f64, f64)> {
    let n = v.len();
    let total = total.max(n) as f64;
    let mut out = Vec::with_capacity(2 * n.min(CDF_POINTS) + 2);
    out.push((v[0], 0.0));
    if n <= CDF_POINTS {
        for (i, &x) in v.iter().enumerate() {
            out.push((x, i as f64 / total));
            out.push((x, (i + 1) as f64 / total));
        }
    } else {
        for k in 0..=CDF_POINTS {
            let i = (k * (n - 1)) / CDF_POINTS;
            out.push((v[i], (i + 1) as f64 / total));
        }
    }
    out
}
/// Tick values of a logarithmic axis over `[lo, hi]`: 1, 2 and 5 times each power of ten, or
/// only the powers when the range spans more than three decades (the labels would collide).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo) {
        return Vec::new();
    }
    let mults: &[f64] = if hi / lo > 1e3 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let mut out = Vec::new();
    let mut p = 10f64.powi(lo.log10().floor() as i32);
    while p <= hi {
        for m in mults {
            let v = p * m;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        p *= 10.0;
    }
    out
}

impl Figure for CdfFig<'_> {
    fn frame(&self) -> &Frame {
        self.frame
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        root.fill(&WHITE)?;
        // Keep the series index of every set (also of skipped ones) so colours stay the same
        // as in the other charts of the report.
        // (series index, label, finite samples sorted, size counting the never-reached ones)
        let sets: Vec<(usize, &str, Vec<f64>, usize)> = self
            .samples
            .iter()
            .enumerate()
            .map(|(i, (l, v))| {
                let total = v.iter().filter(|x| !x.is_nan()).count();
                let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
                v.sort_by(f64::total_cmp);
                (i, l.as_str(), v, total)
            })
            .filter(|(_, _, v, _)| !v.is_empty())
            .collect();
        let marks: Vec<&(String, f64)> = self
            .marks
            .iter()
            .filter(|m| m.1.is_finite() && m.1 > 0.0)
            .collect();
        let (lo, hi) = finite_min_max(
            sets.iter()
                .flat_map(|s| s.2.iter().copied())
                .chain(marks.iter().map(|m| m.1)),
        )
        .unwrap_or((0.0, 1.0));
        // Latencies span orders of magnitude (a 256 px image next to a queued 2048 px one):
        // a logarithmic x axis shows both ends; it needs positive samples.
        let log = lo > 0.0 && hi > lo;
        let (x0, x1) = if log {
            let pad = (hi / lo).powf(0.03);
            (lo / pad, hi * pad)
        } else {
            let x0 = lo.min(0.0);
            (
                x0,
                if hi > x0 {
                    hi + 0.05 * (hi - x0)
                } else {
                    x0 + 1.0
                },
            )
        };
        let to_axis = |x: f64| if log { x.log10() } else { x };
        let (y0, y1) = (0.0, 1.03);
        let lines: Vec<Vec<(f64, f64)>> = sets.iter().map(|s| cdf_steps(&s.2, s.3)).collect();

        let mut samples = Vec::new();
        let (a0, a1) = (to_axis(x0), to_axis(x1));
        for line in &lines {
            let norm: Vec<_> = line
                .iter()
                .map(|&(x, y)| ((to_axis(x) - a0) / (a1 - a0), (y - y0) / (y1 - y0)))
                .collect();
            sample_polyline(&norm, &mut samples);
        }
        // The marks are vertical lines: the legend must not cover them either.
        for m in &marks {
            let x = (to_axis(m.1) - a0) / (a1 - a0);
            sample_polyline(&[(x, 0.0), (x, 1.0)], &mut samples);
        }
        let labels: Vec<&str> = sets.iter().map(|s| s.1).collect();
        let placement = plan_legend(&samples, &labels);
        let area = split_for_legend(root, placement, &labels);
        let entries: Vec<Entry<'_>> = sets
            .iter()
            .map(|(i, label, _, _)| line_entry(label, slot(label, *i), false))
            .collect();

        let mut b = builder(&area, self.frame);
        let plot = if log {
            let mut chart = b.build_cartesian_2d((x0..x1).log_scale(), y0..y1)?;
            let mut mesh = chart.configure_mesh();
            style_mesh(&mut mesh, self.frame);
            if self.frame.y_label.is_empty() {
                mesh.y_desc("fraction of samples");
            }
            // x ticks at 1-2-5 steps are drawn by hand: plotters' log ticks are either the
            // powers of ten alone or every integer multiple, which crowds the labels.
            let none = |_: &f64| String::new();
            mesh.disable_x_mesh()
                .x_labels(0)
                .x_label_formatter(&none)
                .y_label_formatter(&tick)
                .draw()?;
            let ticks = log_ticks(x0, x1);
            chart.draw_series(
                ticks
                    .iter()
                    .map(|&t| PathElement::new(vec![(t, y0), (t, y1)], GRID.stroke_width(1))),
            )?;
            let style =
                TextStyle::from((FONT, TICK_PX).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
            for t in &ticks {
                let (x, y) = chart.backend_coord(&(*t, y0));
                root.draw(&PathElement::new(vec![(x, y), (x, y + 6)], BLACK))?;
                root.draw_text(&tick(t), &style, (x, y + 9))?;
            }
            draw_marks(&mut chart, &marks, root, (y0, y1))?;
            draw_cdf_lines(&mut chart, &sets, &lines)?;
            chart.plotting_area().get_pixel_range()
        } else {
            let mut chart = b.build_cartesian_2d(x0..x1, y0..y1)?;
            let mut mesh = chart.configure_mesh();
            style_mesh(&mut mesh, self.frame);
            if self.frame.y_label.is_empty() {
                mesh.y_desc("fraction of samples");
            }
            mesh.x_label_formatter(&tick)
                .y_label_formatter(&tick)
                .draw()?;
            draw_marks(&mut chart, &marks, root, (y0, y1))?;
            draw_cdf_lines(&mut chart, &sets, &lines)?;
            chart.plotting_area().get_pixel_range()
        };
        draw_legend(root, plot, placement, &entries)
    }
}

/// Vertical dashed reference lines (deadlines), each labelled at its top, rotated to fit.
fn draw_marks<'a, DB: DrawingBackend + 'a, X>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, RangedCoordf64>>,
    marks: &[&(String, f64)],
    root: &DrawingArea<DB, Shift>,
    (y0, y1): (f64, f64),
) -> Drawn
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let ink = RGBColor(0x55, 0x55, 0x55);
    for m in marks {
        chart.draw_series(DashedLineSeries::new(
            [(m.1, y0), (m.1, y1)],
            6,
            5,
            ink.stroke_width(1),
        ))?;
        let (x, y) = chart.backend_coord(&(m.1, y1));
        let style = TextStyle::from((FONT, TICK_PX * 0.8).into_font())
            .color(&ink)
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Right, VPos::Bottom));
        root.draw_text(&m.0, &style, (x - 3, y + 4))?;
    }
    Ok(())
}

/// The step line of every sample set, with markers at its deciles (those it reaches).
fn draw_cdf_lines<'a, DB: DrawingBackend + 'a, X>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, RangedCoordf64>>,
    sets: &[(usize, &str, Vec<f64>, usize)],
    lines: &[Vec<(f64, f64)>],
) -> Drawn
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    for ((i, label, v, total), line) in sets.iter().zip(lines) {
        let i = slot(label, *i);
        let c = color(i);
        chart.draw_series(LineSeries::new(
            line.iter().copied(),
            c.stroke_width(LINE_WIDTH),
        ))?;
        // Markers at the deciles: enough to tell lines apart in grey-scale, few enough not
        // to hide the steps.
        let (n, total) = (v.len(), (*total).max(v.len()));
        let deciles = (1..=9).filter_map(|d| {
            let k = ((d * total).div_ceil(10)).max(1);
            (k <= n).then(|| (v[k - 1], k as f64 / total as f64))
        });
        chart.draw_series(
            deciles.map(|p| EmptyElement::at(p) + Polygon::new(marker_shape(i), c.filled())),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Gantt

struct GanttFig<'a> {
    frame: &'a Frame,
    gpus: u32,
    /// Rows per node: a dark line separates nodes (0: no separators).
    gpus_per_node: u32,
    classes: &'a [String],
    boxes: &'a [GanttBox],
}

const MISS_LABEL: &str = "deadline missed";

/// Boxes to draw, each `(gpu, start, end, class)`: a request's boxes on one GPU merged when
/// the gap between them is under half a pixel (`merge_s` seconds), so that its rounds read as
/// one block rather than a stripe per work (boxes without a label never merge); for dense timelines, boxes of one class on one
/// GPU merged the same way whatever their request.
fn merged_boxes(boxes: &[GanttBox], merge_s: f64) -> Vec<(u32, f64, f64, usize)> {
    let dense = boxes.len() > GANTT_DENSE;
    let mut v: Vec<(u32, f64, f64, usize, &str)> = boxes
        .iter()
        .filter(|b| b.start.is_finite() && b.end.is_finite())
        .map(|b| {
            (
                b.gpu,
                b.start,
                b.end.max(b.start),
                b.class,
                b.label.as_str(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut out: Vec<(u32, f64, f64, usize, &str)> = Vec::with_capacity(v.len());
    for b in v {
        match out.last_mut() {
            Some(last)
                if last.0 == b.0
                    && last.3 == b.3
                    && (dense || (!b.4.is_empty() && last.4 == b.4))
                    && b.1 - last.2 < merge_s =>
            {
                last.2 = last.2.max(b.2);
            }
            _ => out.push(b),
        }
    }
    out.into_iter()
        .map(|(g, s, e, c, _)| (g, s, e, c))
        .collect()
}

/// Deadline misses on a GPU timeline: a black tick at the end of the box with a red triangle
/// on top of the row.
fn draw_misses<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    boxes: &[GanttBox],
    row_y: &dyn Fn(u32) -> (f64, f64),
    row_px: f64,
) -> Drawn {
    let tri = (row_px * 0.35).clamp(3.0, 8.0) as i32;
    let misses: Vec<(f64, (f64, f64))> = boxes
        .iter()
        .filter(|b| b.missed && b.end.is_finite())
        .map(|b| (b.end, row_y(b.gpu)))
        .collect();
    let tick_w = if row_px >= 12.0 { 2 } else { 1 };
    chart.draw_series(misses.iter().map(|&(t, (lo, hi))| {
        PathElement::new(vec![(t, lo), (t, hi)], BLACK.stroke_width(tick_w))
    }))?;
    chart.draw_series(misses.iter().map(|&(t, (_, hi))| {
        EmptyElement::at((t, hi))
            + Polygon::new(vec![(-tri, -tri), (tri, -tri), (0, tri)], MISS.filled())
            + PathElement::new(
                vec![(-tri, -tri), (tri, -tri), (0, tri), (-tri, -tri)],
                BLACK.stroke_width(1),
            )
    }))?;
    Ok(())
}

impl Figure for GanttFig<'_> {
    fn frame(&self) -> &Frame {
        self.frame
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        root.fill(&WHITE)?;
        // The legend lives in a strip right of the plot: boxes fill every row, so there is no
        // free corner inside the plot.
        let mut entries: Vec<&str> = self.classes.iter().map(String::as_str).collect();
        entries.push(MISS_LABEL);
        let (main, _) = root.split_horizontally(SIZE.0 - legend_strip(&entries));

        // A box on a GPU beyond `gpus` still gets a row rather than vanishing.
        let rows = self
            .boxes
            .iter()
            .map(|b| b.gpu.saturating_add(1))
            .fold(self.gpus, u32::max)
            .max(1);
        let (t0, t1) = finite_min_max(
            self.boxes
                .iter()
                .flat_map(|b| [b.start, b.end])
                .filter(|t| t.is_finite()),
        )
        .unwrap_or((0.0, 1.0));
        let (x0, x1) = match self.frame.x_range {
            Some((lo, hi)) if lo.is_finite() && hi.is_finite() && hi > lo => (lo, hi),
            _ => pad_range(t0, t1, 0.01),
        };
        let (y0, y1) = (0.0, f64::from(rows));

        let mut b = ChartBuilder::on(&main);
        b.caption(
            &self.frame.title,
            (FONT, title_px(&self.frame.title, main.dim_in_pixel().0)),
        )
        .margin(MARGIN)
        .margin_right(MARGIN)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA);
        let mut chart = b.build_cartesian_2d(x0..x1, y0..y1)?;
        let mut mesh = chart.configure_mesh();
        style_mesh(&mut mesh, self.frame);
        // Row names are drawn by hand at row centres.
        mesh.disable_y_mesh()
            .y_labels(0)
            .x_label_formatter(&tick)
            .draw()?;

        let (plot_w, _) = chart.plotting_area().dim_in_pixel();
        let (_, top) = chart.backend_coord(&(x0, y1));
        let (_, bottom) = chart.backend_coord(&(x0, y0));
        let row_px = f64::from(bottom - top) / f64::from(rows);
        let sec_per_px = (x1 - x0) / f64::from(plot_w.max(1));
        // Row `r` occupies y in [rows - r - 1, rows - r], so GPU 0 is at the top.
        let pad = if row_px >= 8.0 { 0.1 } else { 0.0 };
        let row_y = |gpu: u32| {
            let r = f64::from(rows - 1 - gpu.min(rows - 1));
            (r + pad, r + 1.0 - pad)
        };

        if rows <= 64 && row_px >= 6.0 {
            let sep = (1..rows).map(|r| {
                PathElement::new(
                    vec![(x0, f64::from(r)), (x1, f64::from(r))],
                    GRID.stroke_width(1),
                )
            });
            chart.draw_series(sep)?;
        }

        let dense = self.boxes.len() > GANTT_DENSE;
        let drawn = merged_boxes(self.boxes, 0.5 * sec_per_px);
        chart.draw_series(drawn.iter().map(|&(gpu, s, e, class)| {
            let (lo, hi) = row_y(gpu);
            Rectangle::new([(s, lo), (e, hi)], color(class).filled())
        }))?;
        if !dense {
            // White outlines: neighbouring boxes stay apart, and the fills keep the legend's
            // colours however narrow the boxes are.
            chart.draw_series(drawn.iter().map(|&(gpu, s, e, _)| {
                let (lo, hi) = row_y(gpu);
                Rectangle::new([(s, lo), (e, hi)], WHITE.stroke_width(1))
            }))?;
            // Labels only where they fit inside the box.
            if row_px >= 16.0 {
                let size = (row_px * 0.55).min(14.0);
                let font = (FONT, size).into_font();
                for b in self.boxes.iter().filter(|b| !b.label.is_empty()) {
                    let w_px = (b.end - b.start) / sec_per_px;
                    if w_px < 60.0 {
                        continue;
                    }
                    let fits = font
                        .box_size(&b.label)
                        .is_ok_and(|(w, _)| f64::from(w) + 6.0 <= w_px);
                    if !fits {
                        continue;
                    }
                    let (lo, hi) = row_y(b.gpu);
                    let ink = text_on(color(b.class));
                    let style = TextStyle::from(font.clone())
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center));
                    let at = chart.backend_coord(&((b.start + b.end) / 2.0, (lo + hi) / 2.0));
                    root.draw_text(&b.label, &style, at)?;
                }
            }
        }

        // Node boundaries: a dark line between the last GPU of a node and the first of the next.
        if self.gpus_per_node > 0 && self.gpus_per_node < rows {
            let lines = (1..)
                .map(|n| n * self.gpus_per_node)
                .take_while(|&g| g < rows)
                .map(|g| {
                    let y = f64::from(rows - g);
                    PathElement::new(vec![(x0, y), (x1, y)], BLACK.mix(0.7).stroke_width(2))
                });
            chart.draw_series(lines)?;
        }
        draw_misses(&mut chart, self.boxes, &row_y, row_px)?;

        // Row names: every row up to 32 GPUs, every 8th beyond.
        let every = if rows > 32 { 8 } else { 1 };
        let style =
            TextStyle::from((FONT, TICK_PX).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
        let (left, _) = chart.backend_coord(&(x0, y0));
        for gpu in (0..rows).step_by(every) {
            let (lo, hi) = row_y(gpu);
            let (_, y) = chart.backend_coord(&(x0, (lo + hi) / 2.0));
            root.draw_text(&format!("GPU {gpu}"), &style, (left - 10, y))?;
        }

        // Legend: class swatches and the miss marker, in the strip right of the plot.
        let legend: Vec<Entry<'_>> = entries
            .iter()
            .enumerate()
            .map(|(k, name)| Entry {
                label: name,
                colour: color(k),
                icon: if k < self.classes.len() {
                    Icon::Swatch
                } else {
                    Icon::Miss
                },
            })
            .collect();
        draw_legend(
            root,
            chart.plotting_area().get_pixel_range(),
            Placement::Outside,
            &legend,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_has_its_own_colour_and_the_fixed_ones_keep_theirs() {
        for (i, c) in PALETTE.iter().enumerate() {
            assert_eq!(color(i), *c);
        }
        let mut seen = std::collections::HashSet::new();
        for i in 0..3000 {
            let c = color(i);
            assert!(seen.insert((c.0, c.1, c.2)), "slot {i} repeats {c:?}");
        }
        // A twelfth policy no longer takes xdit-sp1's colour.
        assert_ne!(color(PALETTE.len()), color(0));
        assert_eq!(hsl(0.0, 1.0, 0.5), RGBColor(255, 0, 0));
        assert_eq!(hsl(2.0 / 3.0, 1.0, 0.5), RGBColor(0, 0, 255));
    }

    fn frame(title: &str) -> Frame {
        Frame {
            title: title.to_string(),
            x_label: "request rate (req/s)".to_string(),
            y_label: "SLO attainment (%)".to_string(),
            y_range: None,
            y_log2: false,
            x_log2: false,
            x_ticks: None,
            caption: None,
            x_range: None,
        }
    }

    /// Every text element of an SVG written by plotters (one text per element, on its own
    /// line between the tags).
    fn svg_texts(base: &Path) -> Vec<String> {
        let svg = fs::read_to_string(with_ext(base, "svg")).expect("svg written");
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..t.find("</text>")?];
                Some(body.trim().to_string())
            })
            .collect()
    }

    /// Both files exist, the PNG has real content, and the SVG shows every expected text.
    fn check(base: &Path, texts: &[&str]) {
        let png = fs::metadata(with_ext(base, "png")).expect("png written");
        assert!(png.len() > 10_000, "png is only {} bytes", png.len());
        let found = svg_texts(base);
        for t in texts {
            assert!(
                found.iter().any(|f| f == t),
                "svg lacks text `{t}`: {found:?}"
            );
        }
    }

    #[test]
    fn line_chart_writes_bands_dashes_and_legend() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("sub/attainment");
        let series: Vec<Series> = (0..3)
            .map(|s| Series {
                label: format!("policy-{s}"),
                points: (1..=6)
                    .map(|x| {
                        let m = 100.0 - f64::from(x * (s + 1)) * 4.0;
                        (f64::from(x), m, m - 3.0, m + 3.0)
                    })
                    .collect(),
                dashed: s == 2,
            })
            .collect();
        line_chart(&base, &frame("SLO attainment vs load"), &series).unwrap();
        check(
            &base,
            &[
                "SLO attainment vs load",
                "policy-0",
                "policy-2",
                "request rate (req/s)",
            ],
        );
        // The bands are drawn as translucent polygons in the series' colour.
        let svg = fs::read_to_string(with_ext(&base, "svg")).unwrap();
        assert!(svg.contains("<polygon"), "no confidence band drawn");
    }

    #[test]
    fn line_chart_log2_x_axis_labels_powers_of_two() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("sizes");
        let mut f = frame("attainment by cluster size");
        f.x_log2 = true;
        f.y_range = Some((0.0, 100.0));
        let series = vec![Series {
            label: "policy".to_string(),
            points: vec![
                (8.0, 50.0, 40.0, 60.0),
                (16.0, 60.0, 55.0, 65.0),
                (32.0, 70.0, 70.0, 70.0),
                (64.0, 90.0, 85.0, 95.0),
            ],
            dashed: false,
        }];
        line_chart(&base, &f, &series).unwrap();
        check(&base, &["attainment by cluster size", "policy"]);
        let texts = svg_texts(&base);
        for t in ["8", "16", "32", "64"] {
            assert!(
                texts.iter().any(|x| x == t),
                "log2 x axis lacks tick {t}: {texts:?}"
            );
        }
        // Evenly spaced: the ticks sit at equal distances (log2 8, 16, 32, 64 = 3, 4, 5, 6),
        // and nothing between the powers is labelled.
        assert!(
            !texts.iter().any(|x| x == "24" || x == "48" || x == "11.31"),
            "{texts:?}"
        );
    }

    #[test]
    fn a_requests_boxes_merge_across_gaps_under_half_a_pixel_and_no_others() {
        let b = |gpu: u32, start: f64, end: f64, label: &str| GanttBox {
            gpu,
            start,
            end,
            class: 0,
            label: label.into(),
            missed: false,
        };
        let boxes = vec![
            b(0, 0.0, 1.0, "r1"),
            b(0, 1.004, 2.0, "r1"),
            b(0, 2.0, 3.0, "r2"),
            b(0, 3.5, 4.0, "r2"),
            b(1, 0.0, 1.0, "r1"),
        ];
        // Half a pixel is 0.005 s: r1's gap of 4 ms closes, r2's of 0.5 s stays, r1 and r2
        // stay apart though they touch, and GPU 1 keeps its own box.
        let got = merged_boxes(&boxes, 0.005);
        assert_eq!(
            got,
            vec![
                (0, 0.0, 2.0, 0),
                (0, 2.0, 3.0, 0),
                (0, 3.5, 4.0, 0),
                (1, 0.0, 1.0, 0)
            ]
        );
    }

    #[test]
    fn long_titles_shrink_to_fit_and_short_ones_keep_their_size() {
        fonts().unwrap();
        assert_eq!(title_px("Short", 1200), TITLE_PX);
        let long =
            "SLO attainment vs cluster size (Skewed, 24 req/min per 8 GPUs, SLO 1.0x), seeds 1-5";
        let px = title_px(long, 1000);
        assert!((TITLE_PX * 2.0 / 3.0..TITLE_PX).contains(&px), "{px}");
        assert!(text_width(long, px) <= 0.92 * f64::from(1000 - 2 * MARGIN) + 1.0);
    }

    #[test]
    fn a_timeline_shows_the_window_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("window");
        let boxes = vec![GanttBox {
            gpu: 0,
            start: 63.0,
            end: 70.0,
            class: 0,
            label: "r1".into(),
            missed: false,
        }];
        let f = Frame {
            x_range: Some((60.0, 120.0)),
            ..frame("GPU timeline, 60 to 120 s")
        };
        gantt(&base, &f, 1, 1, &["256x256".into()], &boxes).unwrap();
        let texts = svg_texts(&base);
        // Fitted to the box, the axis would span 63-70 s; the window puts 60 and 120 on it.
        for t in ["60", "120"] {
            assert!(texts.iter().any(|x| x == t), "lacks tick {t}: {texts:?}");
        }
    }

    #[test]
    fn bands_get_lighter_as_they_multiply() {
        assert_eq!(band_alpha(1), 0.2);
        assert_eq!(band_alpha(2), 0.2);
        assert_eq!(band_alpha(4), 0.1);
        assert_eq!(band_alpha(40), 0.06);
        // Where all of them overlap, the ink stays under that of an opaque line.
        for n in 1..=10 {
            let covered = 1.0 - (1.0 - band_alpha(n)).powi(n as i32);
            assert!(covered < 0.5, "{n} bands cover {covered}");
        }
    }

    #[test]
    fn x_ticks_label_exactly_the_given_values() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("gpus");
        let mut f = frame("attainment by GPUs");
        f.x_ticks = Some(vec![8.0, 16.0, 24.0, 32.0]);
        let series = vec![Series {
            label: "policy".to_string(),
            points: vec![
                (8.0, 50.0, 50.0, 50.0),
                (16.0, 60.0, 60.0, 60.0),
                (24.0, 80.0, 80.0, 80.0),
                (32.0, 90.0, 90.0, 90.0),
            ],
            dashed: false,
        }];
        line_chart(&base, &f, &series).unwrap();
        let texts = svg_texts(&base);
        for t in ["8", "16", "24", "32"] {
            assert!(texts.iter().any(|x| x == t), "lacks tick {t}: {texts:?}");
        }
        // Round numbers between the measured points are not labelled.
        for t in ["10", "15", "20", "25", "30"] {
            assert!(!texts.iter().any(|x| x == t), "labels {t}: {texts:?}");
        }
    }

    #[test]
    fn line_chart_log2_axis_labels_powers_of_two() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("degrees");
        let mut f = frame("SP degree by resolution");
        f.y_log2 = true;
        let series = vec![Series {
            label: "chosen degree".to_string(),
            points: vec![
                (256.0, 1.0, 1.0, 1.0),
                (512.0, 2.0, 1.0, 4.0),
                (1024.0, 8.0, 4.0, 8.0),
            ],
            dashed: false,
        }];
        line_chart(&base, &f, &series).unwrap();
        check(&base, &["SP degree by resolution", "chosen degree"]);
        let texts = svg_texts(&base);
        for t in ["1", "2", "4", "8"] {
            assert!(
                texts.iter().any(|x| x == t),
                "log2 axis lacks tick {t}: {texts:?}"
            );
        }
        // Only powers of two are labelled on the y axis (x ticks are 400, 600, ...).
        assert!(!texts.iter().any(|x| x == "3" || x == "6"), "{texts:?}");
    }

    #[test]
    fn grouped_bars_names_groups_and_series_and_skips_nan() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("bars");
        let groups: Vec<String> = ["256x256", "512x512", "1024x1024"]
            .map(String::from)
            .to_vec();
        let series: Vec<String> = ["tetriserve", "xdit-sp8"].map(String::from).to_vec();
        let values = vec![vec![0.9, 0.8, 0.7], vec![0.6, f64::NAN, 0.2]];
        grouped_bars(
            &base,
            &frame("Attainment by resolution"),
            &groups,
            &series,
            &values,
            None,
        )
        .unwrap();
        check(
            &base,
            &[
                "Attainment by resolution",
                "256x256",
                "1024x1024",
                "tetriserve",
                "xdit-sp8",
            ],
        );
    }

    #[test]
    fn grouped_bars_rejects_mismatched_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let groups = vec!["a".to_string(), "b".to_string()];
        let series = vec!["s".to_string()];
        let err = grouped_bars(
            &dir.path().join("x"),
            &frame("t"),
            &groups,
            &series,
            &[vec![1.0]],
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("1 values for 2 groups"), "{err}");
    }

    #[test]
    fn cdf_chart_skips_empty_sets() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("latency_cdf");
        let mut f = frame("Latency CDF");
        f.x_label = "latency (s)".to_string();
        f.y_label = "fraction of requests".to_string();
        let a: Vec<f64> = (0..500).map(|i| 1.0 + f64::from(i % 97) * 0.05).collect();
        let b: Vec<f64> = (0..5000).map(|i| 2.0 + f64::from(i % 89) * 0.1).collect();
        let samples = vec![
            ("fast".to_string(), a),
            ("empty".to_string(), vec![]),
            ("slow".to_string(), b),
        ];
        cdf_chart(&base, &f, &samples, &[]).unwrap();
        check(&base, &["Latency CDF", "fast", "slow", "latency (s)"]);
        assert!(
            !svg_texts(&base).iter().any(|t| t == "empty"),
            "empty sample set got a legend entry"
        );
    }

    #[test]
    fn gantt_draws_rows_classes_and_misses() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("timeline");
        let mut f = frame("GPU timeline");
        f.x_label = "time (s)".to_string();
        f.y_label = "GPU".to_string();
        let classes: Vec<String> = ["256x256", "1024x1024"].map(String::from).to_vec();
        let boxes: Vec<GanttBox> = (0..40)
            .map(|i| GanttBox {
                gpu: i % 4,
                start: f64::from(i / 4) * 2.0,
                end: f64::from(i / 4) * 2.0 + 1.8,
                class: (i % 2) as usize,
                label: format!("r{i}"),
                missed: i % 7 == 0,
            })
            .collect();
        gantt(&base, &f, 4, 2, &classes, &boxes).unwrap();
        check(
            &base,
            &[
                "GPU timeline",
                "GPU 0",
                "GPU 3",
                "256x256",
                "1024x1024",
                MISS_LABEL,
            ],
        );
    }

    #[test]
    fn dense_gantt_merges_touching_boxes() {
        let boxes: Vec<GanttBox> = (0..GANTT_DENSE as u32 + 10)
            .map(|i| GanttBox {
                gpu: 0,
                start: f64::from(i),
                end: f64::from(i) + 1.0,
                class: 0,
                label: String::new(),
                missed: false,
            })
            .collect();
        assert_eq!(merged_boxes(&boxes, 0.01).len(), 1);
        assert_eq!(merged_boxes(&boxes[..10], 0.01).len(), 10);
    }

    #[test]
    fn degenerate_inputs_still_render() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let f = frame("Degenerate");
        let flat = Series {
            label: "one point".to_string(),
            points: vec![(3.0, 5.0, f64::NAN, f64::NAN), (f64::NAN, 1.0, 1.0, 1.0)],
            dashed: true,
        };
        line_chart(&d.join("empty_line"), &f, &[]).unwrap();
        line_chart(&d.join("flat_line"), &f, std::slice::from_ref(&flat)).unwrap();
        let mut log = f.clone();
        log.y_log2 = true;
        log.y_range = Some((0.0, 8.0));
        line_chart(&d.join("flat_log"), &log, &[flat]).unwrap();
        grouped_bars(&d.join("empty_bars"), &f, &[], &[], &[], None).unwrap();
        let g = vec!["a".to_string()];
        grouped_bars(&d.join("nan_bars"), &f, &g, &g, &[vec![f64::NAN]], None).unwrap();
        cdf_chart(
            &d.join("empty_cdf"),
            &f,
            &[("none".to_string(), vec![])],
            &[],
        )
        .unwrap();
        cdf_chart(
            &d.join("one_cdf"),
            &f,
            &[("one".to_string(), vec![2.0])],
            &[],
        )
        .unwrap();
        gantt(&d.join("empty_gantt"), &f, 0, 0, &[], &[]).unwrap();
        let stray = GanttBox {
            gpu: 5,
            start: 1.0,
            end: 1.0,
            class: 9,
            label: String::new(),
            missed: true,
        };
        gantt(&d.join("stray_gantt"), &f, 2, 0, &[], &[stray]).unwrap();
        check(&d.join("stray_gantt"), &["GPU 5"]);
    }

    #[test]
    fn unwritable_path_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        fs::write(&file, "x").unwrap();
        // A regular file where a directory should be.
        let err = line_chart(&file.join("chart"), &frame("t"), &[]).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
    }

    #[test]
    fn ticks_have_no_float_noise() {
        assert_eq!(tick(&0.30000000000000004), "0.3");
        assert_eq!(tick(&2.5), "2.5");
        assert_eq!(tick(&1200.0), "1200");
        assert_eq!(tick(&0.0), "0");
        assert_eq!(
            with_ext(Path::new("a/p99.5"), "png"),
            PathBuf::from("a/p99.5.png")
        );
    }
}
