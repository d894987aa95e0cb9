//! index.html: per task a CR-against-QL chart (inline SVG: one point per controller at its median
//! QL and CR over seeds, whiskers the interquartile range in both directions, a numbered label per
//! point and a legend; entries that are not ok are listed under it) and the task's table, sortable by
//! clicking a header (a few lines of inline script; without scripts it is a plain table). Static and
//! self-contained: no external scripts, styles or fonts, so it can be published or opened as is.

use super::report::{communication_cell, EntryOut};
use super::suite::Suite;
use std::fmt::Write;

/// Marker colours, by the controller's position in the suite (the same in every task's chart and
/// table; the number next to a marker is that position + 1).
const COLOURS: [&str; 10] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

// Chart geometry (px): the SVG, the plot frame's margins, the inner padding that keeps markers off
// the frame, the marker radius.
const W: f64 = 880.0;
const H: f64 = 420.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 50.0;
const PAD: f64 = 12.0;
const R: f64 = 5.0;

fn esc(x: &str) -> String {
    x.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A step of 1, 2 or 5 × 10^k giving about `target` intervals over `span`.
fn nice_step(span: f64, target: f64) -> f64 {
    let raw = span / target;
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    mag * if n <= 1.0 {
        1.0
    } else if n <= 2.0 {
        2.0
    } else if n <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// Decimals that print every multiple of `step` exactly.
fn decimals(step: f64) -> usize {
    (-step.log10() - 1e-6).ceil().max(0.0) as usize
}

/// An axis: [lo, hi] with ticks at the multiples of `step` in it.
struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
}

impl Axis {
    fn ticks(&self) -> Vec<f64> {
        let (a, b) = ((self.lo / self.step - 1e-6).ceil() as i64, (self.hi / self.step + 1e-6).floor() as i64);
        (a..=b).map(|i| i as f64 * self.step).collect()
    }
}

/// QL from 0 to a tick a little above the largest q75 (a small span when every controller spends
/// none).
fn ql_axis(max: f64) -> Axis {
    let max = if max > 0.0 { max } else { 1e-3 };
    let step = nice_step(max, 5.0);
    Axis { lo: 0.0, hi: ((max * 1.03) / step - 1e-9).ceil() * step, step }
}

/// CR from a bit below the lowest q25 to 1 (at least 0.01 wide, so a task every controller solves
/// still has an axis).
fn cr_axis(min: f64) -> Axis {
    let lo = (1.0 - (1.0 - min).max(0.01) * 1.12).max(0.0);
    Axis { lo, hi: 1.0, step: nice_step(1.0 - lo, 5.0) }
}

/// A box in pixels (label placement).
#[derive(Clone, Copy)]
struct Rect {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Rect {
    fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
}

/// One plotted entry.
struct Point<'a> {
    e: &'a EntryOut,
    number: usize,
    colour: &'static str,
    x: f64,
    y: f64,
}

/// The controller's number (its position in the suite, from 1) and colour.
fn number_of(suite: &Suite, e: &EntryOut) -> usize {
    suite.controllers.iter().position(|c| c.name == e.controller).map(|i| i + 1).unwrap_or(0)
}

fn colour(number: usize) -> &'static str {
    COLOURS[(number + COLOURS.len() - 1) % COLOURS.len()]
}

fn finite(e: &EntryOut) -> bool {
    ["cr", "ql"].iter().all(|k| e.summary.get(*k).is_some_and(|s| s.median.is_finite() && s.q25.is_finite() && s.q75.is_finite()))
}

/// A coloured number, the marker's key in the legend and the table.
fn badge(number: usize) -> String {
    format!("<span class=\"badge\" style=\"background:{}\">{number}</span>", colour(number))
}

/// The CR-against-QL chart of one task, its legend and the list of entries it does not plot.
fn chart(suite: &Suite, task: &str, entries: &[&EntryOut]) -> String {
    let plotted: Vec<&EntryOut> = entries.iter().copied().filter(|e| e.status == "ok" && finite(e)).collect();
    let mut s = String::new();
    if plotted.is_empty() {
        s.push_str("<p class=\"note\">No entry to plot.</p>");
    } else {
        let xa = ql_axis(plotted.iter().map(|e| e.summary["ql"].q75.max(e.summary["ql"].median)).fold(0.0, f64::max));
        let ya = cr_axis(plotted.iter().map(|e| e.summary["cr"].q25.min(e.summary["cr"].median)).fold(1.0, f64::min));
        let (x0, x1, y0, y1) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
        let px = |v: f64| x0 + PAD + (v - xa.lo) / (xa.hi - xa.lo) * (x1 - x0 - 2.0 * PAD);
        let py = |v: f64| y1 - PAD - (v - ya.lo) / (ya.hi - ya.lo) * (y1 - y0 - 2.0 * PAD);
        let _ = write!(
            s,
            "<svg class=\"crql\" data-task=\"{t}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{t}: CR against QL, median and interquartile range over seeds\" font-family=\"sans-serif\" font-size=\"12\">",
            t = esc(task)
        );
        // Grid, ticks and tick labels.
        let (dx, dy) = (decimals(xa.step), decimals(ya.step));
        for v in xa.ticks() {
            let x = px(v);
            let _ = write!(s, "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{y0}\" y2=\"{y1}\" stroke=\"#eee\"/><line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{y1}\" y2=\"{}\" stroke=\"#333\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{v:.dx$}</text>", y1 + 5.0, y1 + 19.0);
        }
        for v in ya.ticks() {
            let y = py(v);
            let _ = write!(s, "<line x1=\"{x0}\" x2=\"{x1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><line x1=\"{}\" x2=\"{x0}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#333\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.dy$}</text>", x0 - 5.0, x0 - 8.0, y + 4.0);
        }
        let _ = write!(
            s,
            "<rect x=\"{x0}\" y=\"{y0}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">QL: reactive power spent (Mvar), lower is better</text><text transform=\"translate(18 {}) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">CR: controllable rate, higher is better</text>",
            x1 - x0,
            y1 - y0,
            (x0 + x1) / 2.0,
            H - 10.0,
            (y0 + y1) / 2.0
        );
        let points: Vec<Point> = plotted
            .iter()
            .map(|e| {
                let number = number_of(suite, e);
                Point { e, number, colour: colour(number), x: px(e.summary["ql"].median), y: py(e.summary["cr"].median) }
            })
            .collect();
        // Whiskers first, then the markers on top.
        let mut whiskers = Vec::new();
        for p in &points {
            let (q, c) = (&p.e.summary["ql"], &p.e.summary["cr"]);
            let (xl, xr, yt, yb) = (px(q.q25), px(q.q75), py(c.q75), py(c.q25));
            whiskers.push(Rect { x0: xl - 1.0, y0: p.y - 3.0, x1: xr + 1.0, y1: p.y + 3.0 });
            whiskers.push(Rect { x0: p.x - 3.0, y0: yt - 1.0, x1: p.x + 3.0, y1: yb + 1.0 });
            let _ = write!(
                s,
                "<g stroke=\"{col}\" stroke-width=\"1.5\"><line x1=\"{xl:.1}\" x2=\"{xr:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><line x1=\"{xl:.1}\" x2=\"{xl:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/><line x1=\"{xr:.1}\" x2=\"{xr:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/><line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{yt:.1}\" y2=\"{yb:.1}\"/><line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{yt:.1}\" y2=\"{yt:.1}\"/><line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{yb:.1}\" y2=\"{yb:.1}\"/></g>",
                p.y - 3.0,
                p.y + 3.0,
                p.y - 3.0,
                p.y + 3.0,
                p.x - 3.0,
                p.x + 3.0,
                p.x - 3.0,
                p.x + 3.0,
                col = p.colour,
                x = p.x,
                y = p.y
            );
        }
        for p in &points {
            let (q, c) = (&p.e.summary["ql"], &p.e.summary["cr"]);
            let _ = write!(
                s,
                "<circle class=\"pt\" data-controller=\"{n}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{R}\" fill=\"{}\" stroke=\"#fff\"><title>{} {n}: CR {:.4} [{:.4}, {:.4}], QL {:.4} [{:.4}, {:.4}] Mvar</title></circle>",
                p.x,
                p.y,
                p.colour,
                p.number,
                c.median,
                c.q25,
                c.q75,
                q.median,
                q.q25,
                q.q75,
                n = esc(&p.e.controller)
            );
        }
        s.push_str(&labels(&points, &whiskers, Rect { x0, y0, x1, y1 }));
        s.push_str("</svg>");
        s.push_str("<ul class=\"legend\">");
        for p in &points {
            let _ = write!(s, "<li>{} {}</li>", badge(p.number), esc(&p.e.controller));
        }
        s.push_str("</ul>");
    }
    let rest: Vec<&&EntryOut> = entries.iter().filter(|e| !(e.status == "ok" && finite(e))).collect();
    if !rest.is_empty() {
        s.push_str("<p class=\"note\">Not plotted:</p><ul class=\"notplotted\">");
        for e in rest {
            let why = if e.status == "ok" { "no finite CR/QL".to_string() } else { e.status.clone() };
            let msg = e.message.as_deref().map(|m| format!(": {}", esc(m))).unwrap_or_default();
            let _ = write!(s, "<li>{} {} ({}{msg})</li>", badge(number_of(suite, e)), esc(&e.controller), esc(&why));
        }
        s.push_str("</ul>");
    }
    s
}

/// The points' numbers, placed next to them: points closer than a marker share one label ("2,3,4");
/// each label takes the first of a few positions around its points that stays inside the frame and
/// clear of the markers, the whiskers and the labels placed before it (the whiskers, then the
/// markers, are given up when no position is clear of them).
fn labels(points: &[Point], whiskers: &[Rect], frame: Rect) -> String {
    let mut clusters: Vec<Vec<usize>> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let near = clusters.iter().position(|c| c.iter().any(|&j| (points[j].x - p.x).hypot(points[j].y - p.y) < 2.0 * R + 2.0));
        match near {
            Some(k) => clusters[k].push(i),
            None => clusters.push(vec![i]),
        }
    }
    let markers: Vec<Rect> = points.iter().map(|p| Rect { x0: p.x - R, y0: p.y - R, x1: p.x + R, y1: p.y + R }).collect();
    let mut placed: Vec<Rect> = Vec::new();
    let mut s = String::new();
    for c in &clusters {
        let text = c.iter().map(|&i| points[i].number.to_string()).collect::<Vec<_>>().join(",");
        let (cx, cy) = (c.iter().map(|&i| points[i].x).sum::<f64>() / c.len() as f64, c.iter().map(|&i| points[i].y).sum::<f64>() / c.len() as f64);
        let (xmin, xmax) = c.iter().map(|&i| points[i].x).fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let (w, h) = (7.2 * text.len() as f64, 12.0);
        // (x of the text's left edge, y of its baseline) for each candidate position.
        let mut candidates = Vec::new();
        for d in [1.0, 2.2, 3.6] {
            let g = (R + 3.0) * d;
            candidates.extend([
                (xmax + g, cy + 4.0),
                (xmin - g - w, cy + 4.0),
                (cx - w / 2.0, cy - g),
                (cx - w / 2.0, cy + g + h - 2.0),
                (xmax + g * 0.8, cy - g * 0.8),
                (xmin - g * 0.8 - w, cy - g * 0.8),
                (xmax + g * 0.8, cy + g * 0.8 + h - 2.0),
                (xmin - g * 0.8 - w, cy + g * 0.8 + h - 2.0),
            ]);
        }
        let rect = |(x, y): (f64, f64)| Rect { x0: x - 1.0, y0: y - h + 1.0, x1: x + w + 1.0, y1: y + 3.0 };
        let inside = |r: &Rect| r.x0 >= frame.x0 + 1.0 && r.x1 <= frame.x1 - 1.0 && r.y0 >= frame.y0 + 1.0 && r.y1 <= frame.y1 - 1.0;
        // Clear of whiskers, markers and labels; else of markers and labels; else of labels.
        let clear = |r: &Rect, level: usize| !placed.iter().any(|o| o.overlaps(r)) && (level > 1 || !markers.iter().any(|m| m.overlaps(r))) && (level > 0 || !whiskers.iter().any(|m| m.overlaps(r)));
        let chosen = (0..3).find_map(|level| candidates.iter().copied().find(|&p| inside(&rect(p)) && clear(&rect(p), level))).unwrap_or(candidates[0]);
        placed.push(rect(chosen));
        let _ = write!(s, "<text class=\"lbl\" x=\"{:.1}\" y=\"{:.1}\" font-weight=\"bold\" stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\">{text}</text>", chosen.0, chosen.1);
    }
    s
}

/// A numeric table cell: the median with its interquartile range, sorted by the median.
fn stat_cell(e: &EntryOut, k: &str, p: usize) -> String {
    match e.summary.get(k) {
        None => "<td>—</td>".into(),
        Some(st) => format!("<td data-v=\"{}\">{:.*} <span class=\"iqr\">[{:.*}, {:.*}]</span></td>", st.median, p, st.median, p, st.q25, p, st.q75),
    }
}

/// The task's table; `th` carries what the script sorts by (text or the cells' `data-v`) and which
/// direction a first click sorts (the better end first).
fn table(suite: &Suite, task: &str, entries: &[&EntryOut]) -> String {
    let mut s = format!("<table class=\"sortable\" data-task=\"{}\"><thead><tr>", esc(task));
    for (name, kind, first, title) in [
        ("#", "num", "asc", "the controller's position in the suite"),
        ("controller", "text", "asc", ""),
        ("CR", "num", "desc", "controllable rate: share of steps without a voltage violation"),
        ("QL (Mvar)", "num", "asc", "reactive power spent"),
        ("AVV max (pu)", "num", "asc", "largest average voltage violation of a bus"),
        ("violation rate", "num", "asc", ""),
        ("losses (kWh)", "num", "asc", ""),
        ("communication per step", "num", "asc", "how far messages reach; sorted by messages per step"),
        ("µs per step", "num", "asc", "wall time of one control step (machine-dependent)"),
    ] {
        let title = if title.is_empty() { String::new() } else { format!(" title=\"{title}\"") };
        let _ = write!(s, "<th data-type=\"{kind}\" data-first=\"{first}\"{title}>{}</th>", esc(name));
    }
    s.push_str("</tr></thead><tbody>");
    for (i, e) in entries.iter().enumerate() {
        let n = number_of(suite, e);
        if e.status != "ok" {
            let msg = e.message.as_deref().map(|m| format!(": {}", esc(m))).unwrap_or_default();
            let _ = write!(s, "<tr class=\"na\" data-i=\"{i}\"><td>{}</td><td>{}</td><td colspan=\"7\"><b>{}</b>{msg}</td></tr>", badge(n), esc(&e.controller), esc(&e.status));
            continue;
        }
        let _ = write!(s, "<tr data-i=\"{i}\"><td data-v=\"{n}\">{}</td><td>{}</td>", badge(n), esc(&e.controller));
        s.push_str(&stat_cell(e, "cr", 4));
        s.push_str(&stat_cell(e, "ql", 4));
        match e.summary.get("avv_max") {
            None => s.push_str("<td>—</td>"),
            Some(a) => {
                let _ = write!(s, "<td data-v=\"{}\">{:.1e} <span class=\"iqr\">[{:.1e}, {:.1e}]</span></td>", a.median, a.median, a.q25, a.q75);
            }
        }
        s.push_str(&stat_cell(e, "violation_rate", 4));
        s.push_str(&stat_cell(e, "loss_kwh", 0));
        match e.communication {
            None => s.push_str("<td>—</td>"),
            Some(c) => {
                let _ = write!(s, "<td data-v=\"{}\">{}</td>", c.messages_per_step, esc(&communication_cell(e)));
            }
        }
        match e.compute_us_per_step {
            None => s.push_str("<td>—</td>"),
            Some(u) => {
                let _ = write!(s, "<td data-v=\"{u}\">{u:.1}</td>");
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// Sorting by a header: ok rows by the column (numbers by `data-v`, text by content; rows without a
/// value after those with one), rows that are not ok always last, ties in suite order. A first
/// click sorts in the header's `data-first` direction, the next reverses it.
const SORT_JS: &str = r#"(function(){
document.querySelectorAll("table.sortable").forEach(function(t){
  t.classList.add("js");
  var hs=t.tHead.rows[0].cells;
  Array.prototype.forEach.call(hs,function(th,col){
    th.tabIndex=0;
    function go(){
      var cur=th.getAttribute("aria-sort"), asc=cur?cur!=="ascending":th.dataset.first!=="desc", text=th.dataset.type==="text";
      Array.prototype.forEach.call(hs,function(h){h.removeAttribute("aria-sort");});
      th.setAttribute("aria-sort",asc?"ascending":"descending");
      var b=t.tBodies[0];
      Array.prototype.map.call(b.rows,function(r){
        var c=r.cells[col], k=null, rank=2;
        if(!r.classList.contains("na")&&c){
          if(text){k=c.textContent;rank=0;}
          else{k=parseFloat(c.dataset.v);rank=isNaN(k)?1:0;}
        }
        return {r:r,k:k,rank:rank,i:+r.dataset.i};
      }).sort(function(a,z){
        if(a.rank!==z.rank)return a.rank-z.rank;
        var d=a.rank?0:(text?a.k.localeCompare(z.k):a.k-z.k);
        return (asc?d:-d)||a.i-z.i;
      }).forEach(function(x){b.appendChild(x.r);});
    }
    th.addEventListener("click",go);
    th.addEventListener("keydown",function(e){if(e.key==="Enter"||e.key===" "){e.preventDefault();go();}});
  });
});
})();"#;

const CSS: &str = "body{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0 2em;font-size:14px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td[data-v]{white-space:nowrap}.iqr{display:block;color:#777;font-size:85%}tr.na td{color:#777}\
table.js th{cursor:pointer;user-select:none}table.js th::after{content:\"\\a0\\2195\";color:#bbb}\
table.js th[aria-sort=ascending]::after{content:\"\\a0\\25B2\";color:#333}table.js th[aria-sort=descending]::after{content:\"\\a0\\25BC\";color:#333}\
svg.crql{max-width:100%;height:auto;display:block}\
.badge{display:inline-block;min-width:1.4em;padding:0 .2em;border-radius:.7em;color:#fff;font-weight:bold;font-size:85%;text-align:center}\
ul.legend{list-style:none;padding:0;margin:.3em 0 .8em;display:flex;flex-wrap:wrap;gap:.3em 1.4em}\
ul.notplotted{margin:.2em 0 1em;color:#555;font-size:90%}p.note{margin:.4em 0 0;color:#555;font-size:90%}";

/// The page: per task the chart and the table, the Markdown folded underneath.
pub(super) fn page(suite: &Suite, entries: &[EntryOut], md: &str) -> String {
    let mut body = String::new();
    for t in &suite.tasks {
        let rows: Vec<&EntryOut> = entries.iter().filter(|e| &e.task == t).collect();
        let _ = write!(body, "<h2 id=\"{0}\">{0}</h2>", esc(t));
        body.push_str(&chart(suite, t, &rows));
        body.push_str(&table(suite, t, &rows));
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>VoltArena leaderboard {n}</title><style>{CSS}</style></head><body><h1>VoltArena leaderboard <code>{n}</code></h1><p>Seeds {:?} × {} test-day episodes; median and interquartile range over seeds. Provenance in leaderboard.json.</p><p>Per task: CR (controllable rate) against QL (reactive power spent), one point per controller at its medians, whiskers its interquartile ranges; up and to the left is better. The numbers are the controllers' positions in the suite, as in the tables. Click a column header to sort (with JavaScript on).</p>{body}<details><summary>Markdown</summary><pre>{}</pre></details><script>{SORT_JS}</script></body></html>",
        suite.seeds,
        suite.eval_episodes,
        esc(md),
        n = esc(&suite.name)
    )
}

#[cfg(test)]
mod tests {
    use super::super::report::EntryOut;
    use super::super::suite::{absent_nulls, Suite};
    use super::*;

    /// The committed quick leaderboard (its entries predate the communication and compute fields).
    fn stored() -> (Suite, Vec<EntryOut>) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../results/leaderboard_quick/leaderboard.json");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        (serde_json::from_value(absent_nulls(v["suite"].clone())).unwrap(), serde_json::from_value(v["entries"].clone()).unwrap())
    }

    #[test]
    fn one_chart_per_task_with_a_marker_per_ok_entry_and_sortable_tables() {
        let (suite, mut entries) = stored();
        // The stored leaderboard has every entry ok; one entry is marked as not applicable here so the
        // page's "not plotted" list is exercised too.
        let last = entries.iter().rposition(|e| e.task == suite.tasks[0]).unwrap();
        entries[last].status = "n/a".into();
        let html = page(&suite, &entries, "# md");
        // VOLTARENA_HTML_OUT=file writes the page (to look at it in a browser).
        if let Ok(out) = std::env::var("VOLTARENA_HTML_OUT") {
            std::fs::write(out, &html).unwrap();
        }
        assert!(html.starts_with("<!doctype html>") && html.ends_with("</html>"));
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<link"), "self-contained");
        let charts: Vec<&str> = html.split("<svg class=\"crql\"").skip(1).map(|c| c.split("</svg>").next().unwrap()).collect();
        assert_eq!(charts.len(), suite.tasks.len());
        for (t, c) in suite.tasks.iter().zip(&charts) {
            assert!(c.starts_with(&format!(" data-task=\"{t}\"")), "{t}");
            let ok: Vec<&EntryOut> = entries.iter().filter(|e| &e.task == t && e.status == "ok").collect();
            assert!(!ok.is_empty());
            assert_eq!(c.matches("<circle class=\"pt\"").count(), ok.len(), "{t}");
            for e in &ok {
                assert!(c.contains(&format!("data-controller=\"{}\"", esc(&e.controller))), "{t} / {}", e.controller);
            }
        }
        // Entries that are not ok are listed under the chart, not plotted.
        let not_ok: Vec<&EntryOut> = entries.iter().filter(|e| e.status != "ok").collect();
        assert!(!not_ok.is_empty());
        for e in not_ok {
            let i = suite.tasks.iter().position(|t| t == &e.task).unwrap();
            assert!(!charts[i].contains(&format!("data-controller=\"{}\"", esc(&e.controller))), "{} / {}", e.task, e.controller);
            let section = html.split(&format!("<h2 id=\"{}\">", e.task)).nth(1).unwrap().split("<table").next().unwrap();
            let listed = section.split("<ul class=\"notplotted\">").nth(1).unwrap().split("</ul>").next().unwrap();
            assert!(listed.contains(&format!("{} ({}", esc(&e.controller), esc(&e.status))), "{} / {}", e.task, e.controller);
        }
        // Sortable tables, one per task, with the new columns.
        assert_eq!(html.matches("<table class=\"sortable\"").count(), suite.tasks.len());
        assert!(html.contains("<script>") && html.contains("aria-sort") && html.contains("<th data-type=\"num\" data-first=\"desc\" title=\"controllable rate"));
        for h in ["AVV max (pu)", "communication per step", "µs per step"] {
            assert!(html.contains(&format!(">{h}</th>")), "{h}");
        }
    }

    #[test]
    fn axes_fit_the_data() {
        let cr = cr_axis(0.8250);
        assert!(cr.lo < 0.825 && cr.lo > 0.75 && cr.hi == 1.0, "{}", cr.lo);
        let cr = cr_axis(1.0);
        assert!(cr.lo < 1.0 && cr.lo >= 0.985, "{}", cr.lo);
        assert_eq!(cr.ticks().last().map(|v| (v * 1e9).round()), Some(1e9));
        let cr = cr_axis(0.4090);
        assert!(cr.lo > 0.3 && cr.lo < 0.409 && cr.ticks().iter().all(|&v| v >= cr.lo && v <= 1.0 + 1e-9) && cr.ticks().len() >= 3, "{} {:?}", cr.lo, cr.ticks());
        let ql = ql_axis(0.1932);
        assert!(ql.lo == 0.0 && ql.hi >= 0.1932 && ql.hi <= 0.25, "{}", ql.hi);
        assert!(ql_axis(0.0).hi > 0.0);
        assert_eq!((decimals(0.05), decimals(0.002), decimals(1.0), decimals(0.01)), (2, 3, 0, 2));
    }

    #[test]
    fn labels_stay_apart_and_inside_the_frame() {
        let e = EntryOut { task: "t".into(), controller: "c".into(), status: "ok".into(), message: None, seeds: vec![], per_seed: vec![], summary: Default::default(), train_config_hash: None, run_dirs: vec![], deployment: None, deployment_overridden: vec![], communication: None, compute_us_per_step: None };
        // A tight crowd in the top-left corner and two coincident points.
        let at = [(90.0, 30.0), (104.0, 30.0), (118.0, 32.0), (96.0, 44.0), (111.0, 46.0), (300.0, 200.0), (300.0, 200.0)];
        let points: Vec<Point> = at.iter().enumerate().map(|(i, &(x, y))| Point { e: &e, number: i + 1, colour: colour(i + 1), x, y }).collect();
        let frame = Rect { x0: LEFT, y0: TOP, x1: W - RIGHT, y1: H - BOTTOM };
        let svg = labels(&points, &[], frame);
        let boxes: Vec<(Rect, String)> = svg
            .split("<text class=\"lbl\" x=\"")
            .skip(1)
            .map(|t| {
                let x: f64 = t.split('"').next().unwrap().parse().unwrap();
                let y: f64 = t.split("y=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
                let text = t.split('>').nth(1).unwrap().split('<').next().unwrap().to_string();
                (Rect { x0: x, y0: y - 11.0, x1: x + 7.0 * text.len() as f64, y1: y + 2.0 }, text)
            })
            .collect();
        assert_eq!(boxes.len(), 6, "the coincident points share a label: {svg}");
        assert!(boxes.iter().any(|(_, t)| t == "6,7"), "{svg}");
        for (i, (a, ta)) in boxes.iter().enumerate() {
            assert!(a.x0 >= frame.x0 && a.x1 <= frame.x1 && a.y0 >= frame.y0 && a.y1 <= frame.y1, "{ta} outside the frame");
            for (b, tb) in &boxes[i + 1..] {
                assert!(!a.overlaps(b), "labels {ta} and {tb} overlap: {svg}");
            }
            for p in &points {
                assert!(!a.overlaps(&Rect { x0: p.x - R, y0: p.y - R, x1: p.x + R, y1: p.y + R }), "label {ta} covers marker {}", p.number);
            }
        }
    }
}
