//! Reader for MATPOWER version-2 case files (`.m`).
//!
//! Reads `mpc.version`, `mpc.baseMVA`, `mpc.bus`, `mpc.gen` and `mpc.branch`; other fields
//! (`gencost`, cell arrays such as `bus_name`) are skipped. Comments (`%` to end of line), rows
//! ending in `;` or a newline, comma or blank separators, `...` continuations and
//! out-of-service branches are handled. Every error names the file, the line and the field.

use super::{Branch, Bus, BusKind, Network, NetworkError};
use std::path::Path;

const BUS_COLS: [&str; 13] = [
    "BUS_I", "BUS_TYPE", "PD", "QD", "GS", "BS", "BUS_AREA", "VM", "VA", "BASE_KV", "ZONE", "VMAX",
    "VMIN",
];
const GEN_COLS: [&str; 10] =
    ["GEN_BUS", "PG", "QG", "QMAX", "QMIN", "VG", "MBASE", "GEN_STATUS", "PMAX", "PMIN"];
const BRANCH_COLS: [&str; 11] = [
    "F_BUS", "T_BUS", "BR_R", "BR_X", "BR_B", "RATE_A", "RATE_B", "RATE_C", "TAP", "SHIFT",
    "BR_STATUS",
];
/// Columns that must be present: bus 13, gen up to GEN_STATUS, branch up to BR_STATUS.
const BUS_MIN: usize = 13;
const GEN_MIN: usize = 8;
const BRANCH_MIN: usize = 11;

struct Row {
    line: usize,
    values: Vec<f64>,
}

struct Matrix {
    start_line: usize,
    rows: Vec<Row>,
}

struct Ctx<'a> {
    file: Option<&'a Path>,
}

impl Ctx<'_> {
    fn err(&self, line: usize, field: impl Into<String>, message: impl Into<String>) -> NetworkError {
        NetworkError {
            file: self.file.map(Path::to_path_buf),
            line: (line > 0).then_some(line),
            field: field.into(),
            message: message.into(),
        }
    }
}

fn strip_comment(line: &str) -> &str {
    // '%' starts a comment unless inside a quoted string.
    let mut in_str = false;
    for (i, c) in line.char_indices() {
        match c {
            '\'' => in_str = !in_str,
            '%' if !in_str => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Parses one matrix body into rows. `body` holds (line number, text) pieces between `[` and `]`.
fn parse_rows(
    ctx: &Ctx,
    section: &str,
    cols: &[&str],
    pieces: &[(usize, String)],
) -> Result<Vec<Row>, NetworkError> {
    let mut rows = Vec::new();
    let mut current: Vec<f64> = Vec::new();
    let mut current_line = 0;
    for (line, text) in pieces {
        let (text, continues) = match text.trim_end().strip_suffix("...") {
            Some(t) => (t.to_string(), true),
            None => (text.clone(), false),
        };
        let parts: Vec<&str> = text.split(';').collect();
        for (pi, part) in parts.iter().enumerate() {
            for tok in part.split(|c: char| c.is_whitespace() || c == ',').filter(|t| !t.is_empty()) {
                if current.is_empty() {
                    current_line = *line;
                }
                let col = current.len();
                let field = match cols.get(col) {
                    Some(name) => format!("{section}.{name}"),
                    None => format!("{section} column {}", col + 1),
                };
                let v: f64 = tok.parse().map_err(|_| {
                    ctx.err(*line, field, format!("expected a number, found '{tok}'"))
                })?;
                current.push(v);
            }
            let row_ends = pi + 1 < parts.len() || !continues;
            if row_ends && !current.is_empty() {
                rows.push(Row { line: current_line, values: std::mem::take(&mut current) });
            }
        }
    }
    if !current.is_empty() {
        rows.push(Row { line: current_line, values: current });
    }
    Ok(rows)
}

fn scalar_value(ctx: &Ctx, line: usize, field: &str, rhs: &str) -> Result<f64, NetworkError> {
    let t = rhs.trim().trim_end_matches(';').trim();
    t.parse::<f64>()
        .map_err(|_| ctx.err(line, field, format!("expected a number, found '{t}'")))
}

pub(super) fn parse(text: &str, file: Option<&Path>, default_name: &str) -> Result<Network, NetworkError> {
    let ctx = Ctx { file };
    let mut name = default_name.to_string();
    let mut version: Option<(usize, String)> = None;
    let mut base_mva: Option<(usize, f64)> = None;
    let mut bus: Option<Matrix> = None;
    let mut gen: Option<Matrix> = None;
    let mut branch: Option<Matrix> = None;

    // Open matrix/cell: (field, start line, closing char, pieces)
    let mut open: Option<(String, usize, char, Vec<(usize, String)>)> = None;

    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = strip_comment(raw);
        if let Some((field, start, close, mut pieces)) = open.take() {
            if let Some(pos) = line.find(close) {
                pieces.push((lineno, line[..pos].to_string()));
                if close == ']' {
                    let cols: &[&str] = match field.as_str() {
                        "bus" => &BUS_COLS,
                        "gen" => &GEN_COLS,
                        "branch" => &BRANCH_COLS,
                        _ => &[],
                    };
                    let rows = parse_rows(&ctx, &field, cols, &pieces)?;
                    let m = Matrix { start_line: start, rows };
                    match field.as_str() {
                        "bus" => bus = Some(m),
                        "gen" => gen = Some(m),
                        "branch" => branch = Some(m),
                        _ => {}
                    }
                }
            } else {
                pieces.push((lineno, line.to_string()));
                open = Some((field, start, close, pieces));
            }
            continue;
        }
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(rest) = t.strip_prefix("function") {
            if let Some((_, n)) = rest.split_once('=') {
                let n = n.trim();
                if !n.is_empty() {
                    name = n.to_string();
                }
            }
            continue;
        }
        let Some(rest) = t.strip_prefix("mpc.") else { continue };
        let Some((field, rhs)) = rest.split_once('=') else { continue };
        let field = field.trim().to_string();
        let rhs = rhs.trim();
        if let Some(after) = rhs.strip_prefix('[').or_else(|| rhs.strip_prefix('{')) {
            let close = if rhs.starts_with('[') { ']' } else { '}' };
            if let Some(pos) = after.find(close) {
                // One-line matrix.
                if close == ']' {
                    let cols: &[&str] = match field.as_str() {
                        "bus" => &BUS_COLS,
                        "gen" => &GEN_COLS,
                        "branch" => &BRANCH_COLS,
                        _ => &[],
                    };
                    let rows = parse_rows(&ctx, &field, cols, &[(lineno, after[..pos].to_string())])?;
                    let m = Matrix { start_line: lineno, rows };
                    match field.as_str() {
                        "bus" => bus = Some(m),
                        "gen" => gen = Some(m),
                        "branch" => branch = Some(m),
                        _ => {}
                    }
                }
            } else {
                open = Some((field, lineno, close, vec![(lineno, after.to_string())]));
            }
            continue;
        }
        match field.as_str() {
            "version" => version = Some((lineno, rhs.trim_end_matches(';').trim().trim_matches('\'').to_string())),
            "baseMVA" => base_mva = Some((lineno, scalar_value(&ctx, lineno, "mpc.baseMVA", rhs)?)),
            _ => {}
        }
    }

    if let Some((field, start, close, _)) = open {
        return Err(ctx.err(
            start,
            format!("mpc.{field}"),
            format!("matrix opened here is never closed with '{close}' (truncated file?)"),
        ));
    }
    if let Some((line, v)) = &version {
        if v != "2" {
            return Err(ctx.err(*line, "mpc.version", format!("only version '2' cases are supported, found '{v}'")));
        }
    }
    let (base_line, base_mva) =
        base_mva.ok_or_else(|| ctx.err(0, "mpc.baseMVA", "missing; expected e.g. 'mpc.baseMVA = 100;'"))?;
    if !(base_mva.is_finite() && base_mva > 0.0) {
        return Err(ctx.err(base_line, "mpc.baseMVA", format!("expected a positive number, found {base_mva}")));
    }
    let bus = bus.ok_or_else(|| ctx.err(0, "mpc.bus", "missing bus matrix"))?;
    let branch = branch.ok_or_else(|| ctx.err(0, "mpc.branch", "missing branch matrix"))?;
    let gen = gen.unwrap_or(Matrix { start_line: 0, rows: Vec::new() });
    if bus.rows.is_empty() {
        return Err(ctx.err(bus.start_line, "mpc.bus", "the bus matrix is empty"));
    }

    // Buses.
    let mut index = std::collections::HashMap::new();
    let mut buses = Vec::with_capacity(bus.rows.len());
    let mut types = Vec::with_capacity(bus.rows.len());
    for row in &bus.rows {
        let v = &row.values;
        if v.len() < BUS_MIN {
            return Err(ctx.err(row.line, "mpc.bus", format!("expected {BUS_MIN} columns, found {}", v.len())));
        }
        let num = integer(&ctx, row.line, "bus.BUS_I", v[0])?;
        if num == 0 {
            return Err(ctx.err(row.line, "bus.BUS_I", "bus numbers must be positive"));
        }
        if index.insert(num, buses.len()).is_some() {
            return Err(ctx.err(row.line, "bus.BUS_I", format!("bus number {num} appears twice")));
        }
        let ty = integer(&ctx, row.line, "bus.BUS_TYPE", v[1])?;
        match ty {
            1..=3 => {}
            4 => {
                return Err(ctx.err(
                    row.line,
                    "bus.BUS_TYPE",
                    format!("bus {num} is isolated (type 4); remove it and its branches"),
                ))
            }
            _ => return Err(ctx.err(row.line, "bus.BUS_TYPE", format!("expected 1 (PQ), 2 (PV) or 3 (REF), found {ty}"))),
        }
        for (c, field) in [(2, "PD"), (3, "QD"), (4, "GS"), (5, "BS"), (7, "VM"), (8, "VA"), (9, "BASE_KV")] {
            if !v[c].is_finite() {
                return Err(ctx.err(row.line, format!("bus.{field}"), format!("bus {num}: expected a finite number, found {}", v[c])));
            }
        }
        types.push(ty);
        buses.push(Bus {
            number: num,
            kind: BusKind::Pq,
            p_inj_mw: -v[2],
            q_inj_mvar: -v[3],
            gs_mw: v[4],
            bs_mvar: v[5],
            vm_pu: v[7],
            va_degree: v[8],
            base_kv: v[9],
            vmax_pu: v[11],
            vmin_pu: v[12],
            line: row.line,
        });
    }

    // Generators.
    let mut has_gen = vec![false; buses.len()];
    for row in &gen.rows {
        let v = &row.values;
        if v.len() < GEN_MIN {
            return Err(ctx.err(row.line, "mpc.gen", format!("expected at least {GEN_MIN} columns, found {}", v.len())));
        }
        let num = integer(&ctx, row.line, "gen.GEN_BUS", v[0])?;
        let &i = index
            .get(&num)
            .ok_or_else(|| ctx.err(row.line, "gen.GEN_BUS", format!("unknown bus number {num}")))?;
        for (c, field) in [(1, "PG"), (2, "QG"), (5, "VG"), (7, "GEN_STATUS")] {
            if !v[c].is_finite() {
                return Err(ctx.err(row.line, format!("gen.{field}"), format!("expected a finite number, found {}", v[c])));
            }
        }
        if v[7] > 0.0 {
            let b = &mut buses[i];
            b.p_inj_mw += v[1];
            b.q_inj_mvar += v[2];
            if !has_gen[i] {
                b.vm_pu = v[5];
                has_gen[i] = true;
            }
        }
    }
    let mut slack = None;
    for (i, b) in buses.iter_mut().enumerate() {
        b.kind = match types[i] {
            3 => BusKind::Ref,
            2 if has_gen[i] => BusKind::Pv,
            _ => BusKind::Pq,
        };
        if b.kind == BusKind::Ref && slack.is_none() {
            slack = Some(i);
        }
    }

    // Branches.
    let mut branches = Vec::with_capacity(branch.rows.len());
    for row in &branch.rows {
        let v = &row.values;
        if v.len() < BRANCH_MIN {
            return Err(ctx.err(row.line, "mpc.branch", format!("expected at least {BRANCH_MIN} columns, found {}", v.len())));
        }
        let mut ends = [0usize; 2];
        for (k, field) in [(0, "branch.F_BUS"), (1, "branch.T_BUS")] {
            let num = integer(&ctx, row.line, field, v[k])?;
            ends[k] = *index
                .get(&num)
                .ok_or_else(|| ctx.err(row.line, field, format!("unknown bus number {num}")))?;
        }
        for c in [2, 3, 4, 8, 9, 10] {
            if !v[c].is_finite() {
                return Err(ctx.err(row.line, format!("branch.{}", BRANCH_COLS[c]), format!("expected a finite number, found {}", v[c])));
            }
        }
        branches.push(Branch {
            from: ends[0],
            to: ends[1],
            r: v[2],
            x: v[3],
            b: v[4],
            g: 0.0,
            ratio: if v[8] == 0.0 { 1.0 } else { v[8] },
            shift_deg: v[9],
            in_service: v[10] > 0.0,
            line: row.line,
        });
    }

    let net = Network {
        name,
        source: file.map(Path::to_path_buf),
        base_mva,
        buses,
        branches,
        slack: slack.unwrap_or(0),
    };
    net.validate()?;
    Ok(net)
}

fn integer(ctx: &Ctx, line: usize, field: &str, v: f64) -> Result<u32, NetworkError> {
    if v.is_finite() && v.fract() == 0.0 && v >= 0.0 && v <= u32::MAX as f64 {
        Ok(v as u32)
    } else {
        Err(ctx.err(line, field, format!("expected a non-negative integer, found {v}")))
    }
}
