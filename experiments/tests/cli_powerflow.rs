//! `voltarena powerflow` end to end: the JSON contract, results against pandapower, bad input.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data").join(rel)
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("va-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn voltarena(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_voltarena")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn reference(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data(&format!("reference/{name}"))).unwrap()).unwrap()
}

fn max_diff(a: &Value, b: &Value) -> f64 {
    a.as_array().unwrap().iter().zip(b.as_array().unwrap()).map(|(x, y)| (x.as_f64().unwrap() - y.as_f64().unwrap()).abs()).fold(0.0, f64::max)
}

#[test]
fn base_case_output_follows_the_contract_and_matches_pandapower() {
    let net = data("networks/case33bw.m");
    let (code, stdout, stderr) = voltarena(&["powerflow", "--network", net.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    for key in ["vm_pu", "va_degree", "converged", "iterations", "p_loss_mw", "solve_seconds"] {
        assert!(out.get(key).is_some(), "missing {key}");
    }
    assert_eq!(out["vm_pu"].as_array().unwrap().len(), 1);
    assert_eq!(out["converged"], serde_json::json!([true]));
    let base = reference("case33bw_base.json");
    assert!(max_diff(&out["vm_pu"][0], &base["vm_pu"]) < 1e-8);
    assert!(max_diff(&out["va_degree"][0], &base["va_degree"]) < 1e-6);
    assert!((out["p_loss_mw"][0].as_f64().unwrap() - base["loss_mw"].as_f64().unwrap()).abs() < 1e-8);
    assert!(out["solve_seconds"].as_f64().unwrap() >= 0.0);
}

#[test]
fn scenario_file_rows_match_pandapower_in_order() {
    let random = reference("mapdn_case33_random.json");
    let ops = random["ops"].as_array().unwrap();
    let scen = serde_json::json!({
        "p_inj_mw": ops.iter().map(|o| o["p_inj_mw"].clone()).collect::<Vec<_>>(),
        "q_inj_mvar": ops.iter().map(|o| o["q_inj_mvar"].clone()).collect::<Vec<_>>(),
    });
    let sf = tmp("scen.json");
    std::fs::write(&sf, scen.to_string()).unwrap();
    let of = tmp("out.json");
    let net = data("networks/mapdn_case33.m");
    let (code, stdout, stderr) = voltarena(&["powerflow", "--network", net.to_str().unwrap(), "--scenarios", sf.to_str().unwrap(), "--output", of.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty());
    let out: Value = serde_json::from_str(&std::fs::read_to_string(&of).unwrap()).unwrap();
    assert_eq!(out["vm_pu"].as_array().unwrap().len(), 50);
    for (s, op) in ops.iter().enumerate() {
        assert!(max_diff(&out["vm_pu"][s], &op["vm_pu"]) < 1e-8, "row {s}");
        assert_eq!(out["converged"][s], true);
    }
    // LinDistFlow through the same contract: within the published error bound.
    let (code, stdout, _) = voltarena(&["powerflow", "--network", net.to_str().unwrap(), "--scenarios", sf.to_str().unwrap(), "--method", "lindistflow"]);
    assert_eq!(code, 0);
    let ldf: Value = serde_json::from_str(&stdout).unwrap();
    let bound = random["summary"]["lindistflow_sq_max_err"].as_f64().unwrap() * 1.01 + 1e-5;
    for (s, op) in ops.iter().enumerate() {
        assert!(max_diff(&ldf["vm_pu"][s], &op["vm_pu"]) < bound, "ldf row {s}");
        assert_eq!(ldf["iterations"][s], 0);
    }
}

#[test]
fn divergent_rows_are_reported_not_fatal() {
    let base = reference("case33bw_base.json");
    let p: Vec<f64> = base["p_inj_mw"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let q: Vec<f64> = base["q_inj_mvar"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let p8: Vec<f64> = p.iter().map(|v| v * 8.0).collect();
    let q8: Vec<f64> = q.iter().map(|v| v * 8.0).collect();
    let sf = tmp("diverge.json");
    std::fs::write(&sf, serde_json::json!({"p_inj_mw": [p, p8], "q_inj_mvar": [q, q8]}).to_string()).unwrap();
    let net = data("networks/case33bw.m");
    let (code, stdout, stderr) = voltarena(&["powerflow", "--network", net.to_str().unwrap(), "--scenarios", sf.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["converged"], serde_json::json!([true, false]));
    assert!(out["vm_pu"][1][5].is_null());
    assert!(out["errors"][1].as_str().unwrap().contains("did not converge"));
}

#[test]
fn bad_input_exits_2_with_file_and_field() {
    let net = data("networks/case33bw.m");
    let net_s = net.to_str().unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("short.json", r#"{"p_inj_mw": [[0.0, 1.0]], "q_inj_mvar": [[0.0, 1.0]]}"#.into(), "p_inj_mw[0] has 2 values; expected 33"),
        ("rows.json", format!(r#"{{"p_inj_mw": [{z}, {z}], "q_inj_mvar": [{z}]}}"#, z = serde_json::json!(vec![0.0; 33])), "2 rows but q_inj_mvar has 1"),
        ("nan.json", r#"{"p_inj_mw": [[NaN]], "q_inj_mvar": [[0]]}"#.into(), "line 1"),
        ("typo.json", r#"{"p_inj": [[0]], "q_inj_mvar": [[0]]}"#.into(), "unknown field `p_inj`"),
        ("str.json", r#"{"p_inj_mw": [["x"]], "q_inj_mvar": [[0]]}"#.into(), "invalid type"),
    ];
    for (name, body, expect) in cases {
        let f = tmp(name);
        std::fs::write(&f, body).unwrap();
        let (code, _, stderr) = voltarena(&["powerflow", "--network", net_s, "--scenarios", f.to_str().unwrap()]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.contains(name) && stderr.contains(expect), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
    // A malformed network names file, line and field.
    let bad = tmp("two_slacks.m");
    let text = std::fs::read_to_string(&net).unwrap().replacen("\t2\t1\t0.1\t0.06", "\t2\t3\t0.1\t0.06", 1);
    std::fs::write(&bad, text).unwrap();
    let (code, _, stderr) = voltarena(&["powerflow", "--network", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("two_slacks.m:10: bus.BUS_TYPE: several reference buses"), "{stderr}");
    // Unknown flag values are clap errors (exit 2).
    let (code, _, _) = voltarena(&["powerflow", "--network", net_s, "--method", "dc"]);
    assert_eq!(code, 2);
    let (code, _, stderr) = voltarena(&["powerflow", "--network", "/no/such.m"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/no/such.m"));
}
