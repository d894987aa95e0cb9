//! The MATPOWER reader: accepted syntax variants, and every kind of malformed input giving an
//! error that names the line and field (never a panic).

use std::path::PathBuf;
use voltarena_grid::network::{Bus, BusKind};
use voltarena_grid::powerflow::{solve_batch, Method};
use voltarena_grid::{AcOptions, AcSolver, Injection, Network, NetworkError, PowerFlowError, Solution};

fn case33() -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/networks/case33bw.m");
    std::fs::read_to_string(p).unwrap()
}

fn parse(text: &str) -> Result<Network, NetworkError> {
    Network::from_matpower_str(text, "test")
}

/// Line number (1-based) of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn reads_case33bw() {
    let net = parse(&case33()).unwrap();
    assert_eq!(net.name, "case33bw");
    assert_eq!(net.n_bus(), 33);
    assert_eq!(net.branches.len(), 32);
    assert_eq!(net.base_mva, 10.0);
    assert_eq!(net.buses[net.slack].kind, BusKind::Ref);
    assert_eq!(net.buses[net.slack].number, 1);
    // Bus 2: Pd = 0.1 MW, Qd = 0.06 Mvar -> injection -0.1, -0.06.
    assert_eq!((net.buses[1].p_inj_mw, net.buses[1].q_inj_mvar), (-0.1, -0.06));
    let tree = net.tree().unwrap();
    assert_eq!(tree.path_from_root(17), (0..=17).collect::<Vec<_>>());
    assert_eq!(tree.children(1), &[2, 18]);
    assert_eq!(tree.max_depth(), 17);
}

#[test]
fn syntax_variants_read_the_same_network() {
    let original = parse(&case33()).unwrap();
    // Commas as separators, rows ending in newlines only, trailing comments, a continuation,
    // an unknown cell-array field and several rows on one line.
    let mut text = String::new();
    for line in case33().lines() {
        let t = line.trim();
        if t.starts_with(|c: char| c.is_ascii_digit()) && t.ends_with(';') {
            let row = t.trim_end_matches(';').split_whitespace().collect::<Vec<_>>().join(", ");
            text.push_str(&format!("  {row}  % a comment; with a semicolon\n"));
        } else if t.starts_with("mpc.gen = [") {
            text.push_str("mpc.bus_name = {\n 'a';\n 'b';\n};\n");
            text.push_str(line);
            text.push('\n');
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    let variant = parse(&text).unwrap();
    // Line numbers shift (the added cell array); the values must not.
    let strip = |net: &Network| net.buses.iter().map(|b| Bus { line: 0, ..b.clone() }).collect::<Vec<_>>();
    assert_eq!(strip(&variant), strip(&original));
    assert_eq!(variant.branches.len(), original.branches.len());
    for (a, b) in variant.branches.iter().zip(&original.branches) {
        assert_eq!((a.from, a.to, a.r, a.x, a.b), (b.from, b.to, b.r, b.x, b.b));
    }
    // Two rows on one line, and a row split with '...'.
    let one_line = case33().replacen(
        "\t2\t3\t0.0307595167324",
        "\t2\t3 ...\n\t0.0307595167324",
        1,
    );
    let net = parse(&one_line).unwrap();
    assert_eq!(net.branches[1].r, 0.0307595167324);
}

#[test]
fn out_of_service_branches_are_kept_but_not_used() {
    let text = case33().replacen(
        "mpc.branch = [\n",
        "mpc.branch = [\n\t8\t21\t0.1\t0.1\t0\t0\t0\t0\t0\t0\t0\t-360\t360;\n",
        1,
    );
    let net = parse(&text).unwrap();
    assert_eq!(net.branches.len(), 33);
    assert!(!net.branches[0].in_service);
    assert!(net.tree().is_some(), "a tie line out of service keeps the feeder radial");
}

fn expect_err(text: &str, field: &str, msg: &str, line: Option<usize>) {
    let err = parse(text).expect_err("malformed input must be rejected");
    assert!(err.field.contains(field), "field {:?} should mention {field:?} ({err})", err.field);
    assert!(err.message.contains(msg), "message {:?} should mention {msg:?}", err.message);
    if let Some(l) = line {
        assert_eq!(err.line, Some(l), "{err}");
    }
    let shown = err.to_string();
    assert!(shown.contains(&err.field));
}

#[test]
fn truncated_file() {
    let text = case33();
    let cut = &text[..text.find("\t14\t15\t").unwrap()];
    expect_err(cut, "mpc.branch", "never closed", Some(line_of(&text, "mpc.branch = [")));
}

#[test]
fn bad_number() {
    let text = case33().replacen("\t2\t1\t0.1\t0.06", "\t2\t1\t0.1x\t0.06", 1);
    expect_err(&text, "bus.PD", "'0.1x'", Some(line_of(&text, "0.1x")));
}

#[test]
fn two_reference_buses() {
    let text = case33().replacen("\t2\t1\t0.1\t0.06", "\t2\t3\t0.1\t0.06", 1);
    expect_err(&text, "BUS_TYPE", "several reference buses", None);
}

#[test]
fn no_reference_bus() {
    let text = case33().replacen("\t1\t3\t0\t0", "\t1\t1\t0\t0", 1);
    expect_err(&text, "BUS_TYPE", "no reference bus", None);
}

#[test]
fn islanded_bus() {
    // Bus 33's only branch (32 -> 33) taken out of service.
    let text = case33();
    let row = text.lines().find(|l| l.trim_start().starts_with("32\t33\t")).unwrap();
    let dead = row.replace("\t1\t-360\t360;", "\t0\t-360\t360;");
    let text = text.replacen(row, &dead, 1);
    expect_err(&text, "branch", "not connected", Some(line_of(&text, "\t33\t1\t0.06\t0.04")));
}

#[test]
fn zero_impedance_branch() {
    let text = case33().replacen("0.00575259116172\t0.00293244885684", "0\t0", 1);
    expect_err(&text, "BR_X", "zero series impedance", Some(line_of(&text, "\t1\t2\t0\t0\t0")));
}

#[test]
fn unknown_bus_number() {
    let text = case33().replacen("\t1\t2\t0.00575", "\t1\t99\t0.00575", 1);
    expect_err(&text, "T_BUS", "unknown bus number 99", Some(line_of(&text, "\t1\t99\t")));
}

#[test]
fn too_few_columns_missing_sections_and_versions() {
    let text = case33().replacen("\t2\t1\t0.1\t0.06\t0\t0\t1\t1\t0\t12.66\t1\t1.1\t0.9;", "\t2\t1\t0.1;", 1);
    expect_err(&text, "mpc.bus", "expected 13 columns", None);
    let text = case33().replacen("mpc.baseMVA = 10;", "", 1);
    expect_err(&text, "mpc.baseMVA", "missing", None);
    let text = case33().replacen("mpc.baseMVA = 10;", "mpc.baseMVA = -1;", 1);
    expect_err(&text, "mpc.baseMVA", "positive", None);
    let text = case33().replacen("mpc.version = '2';", "mpc.version = '1';", 1);
    expect_err(&text, "mpc.version", "version '2'", None);
    expect_err("garbage", "mpc.baseMVA", "missing", None);
    expect_err("", "mpc.baseMVA", "missing", None);
}

#[test]
fn file_errors_name_the_file() {
    let err = Network::from_matpower_file("/nonexistent/case.m").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/case.m"));
    let dir = std::env::temp_dir().join(format!("va-mp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.m");
    std::fs::write(&path, case33().replacen("0.1\t0.06", "abc\t0.06", 1)).unwrap();
    let err = Network::from_matpower_file(&path).unwrap_err().to_string();
    assert!(err.contains("bad.m:10:") && err.contains("bus.PD"), "{err}");
}

#[test]
fn nan_and_wrong_length_injections_are_errors_not_panics() {
    let net = parse(&case33()).unwrap();
    let mut s = AcSolver::new(&net, AcOptions::default()).unwrap();
    let mut sol = Solution::new(33);
    let (mut p, q) = net.injections();
    p[5] = f64::NAN;
    let e = s.solve(Injection { p_mw: &p, q_mvar: &q }, &mut sol).unwrap_err();
    assert!(matches!(e, PowerFlowError::InvalidInjection(ref m) if m.contains("bus index 5")), "{e}");
    let e = s.solve(Injection { p_mw: &p[..10], q_mvar: &q }, &mut sol).unwrap_err();
    assert!(matches!(e, PowerFlowError::InvalidInjection(_)));
    // In a batch, the bad row is reported and the others still solve.
    let (p0, q0) = net.injections();
    let pb: Vec<f64> = p0.iter().chain(&p).copied().collect();
    let qb: Vec<f64> = q0.iter().chain(&q).copied().collect();
    let out = solve_batch(&net, Method::Ac(AcOptions::default()), &pb, &qb, 2).unwrap();
    assert_eq!(out.converged, vec![true, false]);
    assert!(out.vm_row(1).iter().all(|v| v.is_nan()));
}

#[test]
fn divergence_is_a_result() {
    let net = parse(&case33()).unwrap();
    let (p, q) = net.injections();
    // 8× the nominal load is beyond the feeder's loadability: no power-flow solution exists.
    let p8: Vec<f64> = p.iter().map(|v| v * 8.0).collect();
    let q8: Vec<f64> = q.iter().map(|v| v * 8.0).collect();
    for algorithm in [voltarena_grid::Algorithm::Radial, voltarena_grid::Algorithm::Newton] {
        let mut s = AcSolver::new(&net, AcOptions { algorithm, ..Default::default() }).unwrap();
        let mut sol = Solution::new(33);
        let e = s.solve(Injection { p_mw: &p8, q_mvar: &q8 }, &mut sol).unwrap_err();
        assert!(matches!(e, PowerFlowError::Diverged { .. } | PowerFlowError::Singular(_)), "{e}");
        assert!(!sol.valid);
        // The solver recovers on the next, feasible call (the failed state is not used as warm start).
        s.solve(Injection { p_mw: &p, q_mvar: &q }, &mut sol).unwrap();
        assert!((sol.vm_pu[17] - 0.913090).abs() < 1e-6);
    }
}
