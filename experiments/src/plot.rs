//! Line plots written as SVG (plotters, SVG backend: no fonts or system libraries needed).

use plotters::prelude::*;
use std::path::Path;

/// One named series of (x, y) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(0, 0, 0),
    RGBColor(230, 159, 0),
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
];

/// Writes a line chart; horizontal reference lines (e.g. voltage limits) are drawn dashed-grey.
pub fn lines(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series], refs: &[f64]) -> Result<(), String> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for s in series {
        for &(x, y) in &s.points {
            if x.is_finite() && y.is_finite() {
                x0 = x0.min(x);
                x1 = x1.max(x);
                y0 = y0.min(y);
                y1 = y1.max(y);
            }
        }
    }
    for &r in refs {
        y0 = y0.min(r);
        y1 = y1.max(r);
    }
    if !(x0 < x1) {
        x1 = x0 + 1.0;
    }
    if !(y0 < y1) {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let pad = (y1 - y0) * 0.05;
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    let e = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
        .map_err(|x| e(&x))?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw().map_err(|x| e(&x))?;
    for &r in refs {
        chart.draw_series(LineSeries::new(vec![(x0, r), (x1, r)], RGBColor(160, 160, 160).stroke_width(1))).map_err(|x| e(&x))?;
    }
    for (k, s) in series.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        chart
            .draw_series(LineSeries::new(s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()), c.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
