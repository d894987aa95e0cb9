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

/// Heat map: one row per name, one column per label, colour = value / max (white → dark red);
/// used for per-bus violation frequencies (rows: controllers, columns: buses).
pub fn heatmap(path: &Path, title: &str, x_label: &str, rows: &[String], cols: &[String], values: &[Vec<f64>]) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let (nr, nc) = (rows.len().max(1) as i32, cols.len().max(1) as i32);
    let vmax = values.iter().flatten().copied().filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    let root = SVGBackend::new(path, (1000, 130 + 28 * nr as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{title} (darkest = {vmax:.3})"), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(170)
        .build_cartesian_2d((0..nc - 1).into_segmented(), (0..nr - 1).into_segmented())
        .map_err(|x| e(&x))?;
    let every = (nc / 30).max(1);
    let col_fmt = |x: &SegmentValue<i32>| match x {
        SegmentValue::CenterOf(i) if *i < cols.len() as i32 && i % every == 0 => cols[*i as usize].clone(),
        _ => String::new(),
    };
    let row_fmt = |y: &SegmentValue<i32>| match y {
        SegmentValue::CenterOf(i) if *i < rows.len() as i32 => rows[rows.len() - 1 - *i as usize].clone(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(x_label)
        .x_labels(nc as usize)
        .y_labels(nr as usize)
        .x_label_formatter(&col_fmt)
        .y_label_formatter(&row_fmt)
        .draw()
        .map_err(|x| e(&x))?;
    let mut cells = Vec::new();
    for (r, row) in values.iter().enumerate() {
        let y = rows.len() as i32 - 1 - r as i32;
        for (c, &v) in row.iter().enumerate() {
            let t = if vmax > 0.0 && v.is_finite() { (v / vmax).clamp(0.0, 1.0) } else { 0.0 };
            let color = RGBColor(255 - (t * 75.0) as u8, 255 - (t * 255.0) as u8, 255 - (t * 255.0) as u8);
            let c = c as i32;
            cells.push(Rectangle::new([(SegmentValue::Exact(c), SegmentValue::Exact(y)), (SegmentValue::Exact(c + 1), SegmentValue::Exact(y + 1))], color.filled()));
        }
    }
    chart.draw_series(cells).map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// Horizontal bar panels side by side: one panel per metric, one bar per name.
pub fn bars(path: &Path, names: &[String], panels: &[(&str, Vec<f64>)]) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let n = names.len().max(1) as i32;
    let root = SVGBackend::new(path, (360 * panels.len().max(1) as u32, 90 + 30 * n as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (k, ((title, vals), area)) in panels.iter().zip(areas.iter()).enumerate() {
        let hi = vals.iter().copied().filter(|v| v.is_finite()).fold(0.0f64, f64::max);
        let hi = if hi > 0.0 { hi * 1.1 } else { 1.0 };
        let label = |y: &SegmentValue<i32>| match y {
            SegmentValue::CenterOf(i) if k == 0 && *i < names.len() as i32 => names[names.len() - 1 - *i as usize].clone(),
            _ => String::new(),
        };
        let mut chart = ChartBuilder::on(area)
            .caption(*title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(if k == 0 { 150 } else { 10 })
            .build_cartesian_2d(0.0..hi, (0..n - 1).into_segmented())
            .map_err(|x| e(&x))?;
        chart.configure_mesh().disable_y_mesh().x_labels(4).y_labels(n as usize).y_label_formatter(&label).draw().map_err(|x| e(&x))?;
        let c = COLORS[(k + 2) % COLORS.len()];
        chart
            .draw_series(vals.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, &v)| {
                let y = names.len() as i32 - 1 - i as i32;
                let mut r = Rectangle::new([(0.0, SegmentValue::Exact(y)), (v, SegmentValue::Exact(y + 1))], c.filled());
                r.set_margin(4, 4, 0, 0);
                r
            }))
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// One group of runs for [`bands`]: x values and, per panel, [q25, median, q75] at each x.
pub struct Band {
    pub name: String,
    pub x: Vec<f64>,
    pub panels: Vec<Vec<[f64; 3]>>,
}

/// Stacked panels sharing the x axis: per group a median line and a shaded interquartile band;
/// `refs[k]` draws a dashed-grey reference line on panel k.
pub fn bands(path: &Path, title: &str, x_label: &str, y_labels: &[&str], groups: &[Band], refs: &[Option<f64>]) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let np = y_labels.len().max(1);
    let root = SVGBackend::new(path, (900, 60 + 300 * np as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(|x| e(&x))?;
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    for g in groups {
        for &x in &g.x {
            x0 = x0.min(x);
            x1 = x1.max(x);
        }
    }
    if !(x0 < x1) {
        x0 = if x0.is_finite() { x0 } else { 0.0 };
        x1 = x0 + 1.0;
    }
    for (k, area) in root.split_evenly((np, 1)).iter().enumerate() {
        let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
        for g in groups {
            for v in g.panels.get(k).into_iter().flatten().flatten().filter(|v| v.is_finite()) {
                y0 = y0.min(*v);
                y1 = y1.max(*v);
            }
        }
        if let Some(Some(r)) = refs.get(k) {
            y0 = y0.min(*r);
            y1 = y1.max(*r);
        }
        if !(y0 < y1) {
            y0 = if y0.is_finite() { y0 - 0.5 } else { 0.0 };
            y1 = y0 + 1.0;
        }
        let pad = (y1 - y0) * 0.05;
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(|x| e(&x))?;
        chart.configure_mesh().x_desc(x_label).y_desc(y_labels[k]).x_label_formatter(&|x| format!("{x:.0}")).draw().map_err(|x| e(&x))?;
        if let Some(Some(r)) = refs.get(k) {
            chart.draw_series(DashedLineSeries::new(vec![(x0, *r), (x1, *r)], 6, 4, RGBColor(140, 140, 140).stroke_width(1))).map_err(|x| e(&x))?;
        }
        for (i, g) in groups.iter().enumerate() {
            let Some(rows) = g.panels.get(k) else { continue };
            let c = COLORS[(i + 2) % COLORS.len()];
            let pts: Vec<(f64, [f64; 3])> = g.x.iter().copied().zip(rows.iter().copied()).filter(|(x, r)| x.is_finite() && r.iter().all(|v| v.is_finite())).collect();
            let mut poly: Vec<(f64, f64)> = pts.iter().map(|(x, r)| (*x, r[2])).collect();
            poly.extend(pts.iter().rev().map(|(x, r)| (*x, r[0])));
            chart.draw_series(std::iter::once(Polygon::new(poly, c.mix(0.2).filled()))).map_err(|x| e(&x))?;
            let s = chart.draw_series(LineSeries::new(pts.iter().map(|(x, r)| (*x, r[1])), c.stroke_width(2))).map_err(|x| e(&x))?;
            if k == 0 {
                s.label(g.name.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            }
        }
        if k == 0 {
            chart.configure_series_labels().position(SeriesLabelPosition::LowerRight).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|x| e(&x))?;
        }
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
