//! Training logs (JSON lines) and PNG line plots.
//!
//! Plots use `plotters` with its pure-Rust bitmap backend and an embedded DejaVu Sans
//! (`assets/`, Bitstream Vera licence), so drawing needs no system font library.

use std::io::Write;
use std::path::Path;
use std::sync::Once;

use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::TrainError;
use crate::engine::trainer::StepRecord;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { path: path.display().to_string(), source }
}

/// Appends one JSON object per outer step to a file.
pub struct TrainingLog {
    file: std::io::BufWriter<std::fs::File>,
    path: std::path::PathBuf,
}

impl TrainingLog {
    /// Creates (truncates) the log file.
    pub fn create(path: &Path) -> Result<TrainingLog, TrainError> {
        let file = std::fs::File::create(path).map_err(io_error(path))?;
        Ok(TrainingLog { file: std::io::BufWriter::new(file), path: path.to_path_buf() })
    }

    /// Writes one record as a JSON line.
    pub fn record(&mut self, record: &StepRecord) -> Result<(), TrainError> {
        let line = serde_json::to_string(record).map_err(|e| TrainError::Encoding(e.to_string()))?;
        writeln!(self.file, "{line}").map_err(io_error(&self.path))
    }

    /// Flushes buffered lines to disk.
    pub fn finish(mut self) -> Result<(), TrainError> {
        self.file.flush().map_err(io_error(&self.path))
    }
}

/// One named curve of a plot.
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
}

/// One panel of a figure.
pub struct Panel<'a> {
    /// Panel title.
    pub title: &'a str,
    /// x-axis label.
    pub x_label: &'a str,
    /// y-axis label.
    pub y_label: &'a str,
    /// Plot y on a log scale.
    pub log_y: bool,
    /// The curves.
    pub series: Vec<Series<'a>>,
}

/// Series of at most this many points are drawn with markers.
const MARKED_SERIES_POINTS: usize = 12;

/// Distinct colours (the tab10 palette, then black, gold, teal, maroon, navy and olive), one
/// per series up to 16.
const COLOURS: [RGBColor; 16] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(0, 0, 0),
    RGBColor(255, 200, 0),
    RGBColor(0, 128, 128),
    RGBColor(128, 0, 0),
    RGBColor(0, 0, 128),
    RGBColor(128, 128, 0),
];

/// A tick label for a linear axis spanning `span`: enough decimals to tell ticks apart,
/// scientific notation for very small or large values.
fn tick_label(v: f64, span: f64) -> String {
    let magnitude = v.abs().max(span);
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&magnitude) {
        format!("{v:.2e}")
    } else {
        let decimals = (2.0 - span.log10().floor()).clamp(0.0, 6.0) as usize;
        format!("{v:.decimals$}")
    }
}

/// Draws panels side by side into a PNG.
pub fn line_plot(path: &Path, panels: &[Panel<'_>]) -> Result<(), TrainError> {
    REGISTER.call_once(|| {
        // The font is a fixed, known-good file; a failure would only degrade labels.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let plot_error = |e: String| TrainError::Plot { path: path.display().to_string(), message: e };
    let width = 640 * panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (width, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(e.to_string()))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (panel, area) in panels.iter().zip(&areas) {
        draw_panel(panel, area).map_err(plot_error)?;
    }
    root.present().map_err(|e| plot_error(e.to_string()))?;
    Ok(())
}

fn draw_panel(
    panel: &Panel<'_>,
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
) -> Result<(), String> {
    // the points drawn: finite, and positive y on a log scale
    let drawn: Vec<(f64, f64)> = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|p| p.0.is_finite() && p.1.is_finite() && !(panel.log_y && p.1 <= 0.0))
        .collect();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in &drawn {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.1, 1.0);
    }
    // pad x as y is padded, so points on the range's ends (an SR of exactly 1) stay visible
    let x_pad = if x1 > x0 { (x1 - x0) * 0.05 } else { x0.abs().max(1e-3) * 0.05 };
    (x0, x1) = (x0 - x_pad, x1 + x_pad);
    if y1 <= y0 {
        y1 = y0 + y0.abs().max(1e-9) * 0.1;
    }
    // x data that are whole numbers (years, steps, days) get whole-number ticks: asking for
    // no more ticks than there are distinct values makes the tick step at least 1
    let mut distinct: Vec<f64> = drawn.iter().map(|p| p.0).collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    let whole_x = distinct.len() > 1 && distinct.iter().all(|x| x.fract() == 0.0);
    let x_ticks = if whole_x { distinct.len().min(10) } else { 10 };
    let x_span = (x1 - x0).abs().max(1e-12);
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let mut builder = ChartBuilder::on(area);
    builder.caption(panel.title, ("sans-serif", 20)).margin(12).x_label_area_size(40).y_label_area_size(64);
    if panel.log_y {
        let pad = (y1 / y0).powf(0.05);
        let mut chart =
            builder.build_cartesian_2d(x0..x1, (y0 / pad..y1 * pad).log_scale()).map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc(panel.x_label)
            .y_desc(panel.y_label)
            .x_labels(x_ticks)
            .x_label_formatter(&|v| if whole_x { format!("{v:.0}") } else { tick_label(*v, x_span) })
            .y_labels(10)
            .y_label_formatter(&|v| format!("{v:.2e}"))
            .draw()
            .map_err(|x| e(&x))?;
        draw_curves(&mut chart, panel, |y| y > 0.0)
    } else {
        let pad = (y1 - y0) * 0.05;
        let mut chart = builder.build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad)).map_err(|x| e(&x))?;
        let span = (y1 - y0 + 2.0 * pad).abs().max(1e-12);
        chart
            .configure_mesh()
            .x_desc(panel.x_label)
            .y_desc(panel.y_label)
            .y_labels(8)
            .y_label_formatter(&|v| tick_label(*v, span))
            .x_labels(x_ticks)
            .x_label_formatter(&|v| if whole_x { format!("{v:.0}") } else { tick_label(*v, x_span) })
            .draw()
            .map_err(|x| e(&x))?;
        draw_curves(&mut chart, panel, |_| true)
    }
}

/// Draws a panel's curves (points whose y passes `keep`) and their legend on a chart of any
/// y scale.
fn draw_curves<'a, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    panel: &Panel<'_>,
    keep: impl Fn(f64) -> bool,
) -> Result<(), String>
where
    Y: Ranged<ValueType = f64>,
{
    let e = |e: &dyn std::fmt::Display| e.to_string();
    for (i, series) in panel.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<(f64, f64)> = series
            .points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite() && keep(p.1))
            .collect();
        // short series (a Pareto curve, deciles) get markers, earlier series larger ones, so
        // that points where methods coincide stay visible as rings around each other
        if points.len() <= MARKED_SERIES_POINTS {
            let radius = 3 + 2 * (panel.series.len().saturating_sub(i + 1) as i32).min(8);
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, radius, colour.stroke_width(2))))
                .map_err(|x| e(&x))?;
        }
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(series.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    Ok(())
}

/// The loss-curve figure of a training run: losses on the left, SR / lambda / alpha on the right.
pub fn training_curves(path: &Path, records: &[StepRecord]) -> Result<(), TrainError> {
    let curve = |f: fn(&StepRecord) -> f64| records.iter().map(|r| (r.step as f64, f(r))).collect();
    line_plot(
        path,
        &[
            Panel {
                title: "SBD losses per outer step",
                x_label: "outer step",
                y_label: "loss",
                log_y: false,
                series: vec![
                    Series { label: "L_meta", points: curve(|r| r.l_meta) },
                    Series { label: "L_safety (surrogate)", points: curve(|r| r.l_safety) },
                    Series { label: "L_eff", points: curve(|r| r.l_eff) },
                ],
            },
            Panel {
                title: "Validation SR, mean lambda, mean alpha",
                x_label: "outer step",
                y_label: "value",
                log_y: false,
                series: vec![
                    Series { label: "Safety Rate (true indicator)", points: curve(|r| r.safety_rate) },
                    Series { label: "mean lambda", points: curve(|r| r.mean_lambda) },
                    Series { label: "mean alpha", points: curve(|r| r.mean_alpha) },
                ],
            },
        ],
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn tick_labels_tell_close_ticks_apart() {
        assert_eq!(super::tick_label(0.61, 0.02), "0.6100");
        assert_eq!(super::tick_label(0.612, 0.02), "0.6120");
        assert_eq!(super::tick_label(12.0, 40.0), "12.0");
        assert_eq!(super::tick_label(2e-5, 1e-5), "2.00e-5");
        assert_eq!(super::tick_label(0.0, 1.0), "0");
    }
}
