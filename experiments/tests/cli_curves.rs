//! `voltarena curves`: per-step median and IQR over runs, checked against hand-computed quantiles;
//! malformed metrics are reported by file and line.

use std::path::{Path, PathBuf};
use std::process::Command;

fn voltarena(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_voltarena")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

const HEADER: &str = "kind,step,episode,return,cr,ql,avv_max,violation_rate,loss_kwh,critic_loss,actor_loss\n";

fn fake_run(parent: &Path, name: &str, evals: &[(u64, f64, f64)]) -> PathBuf {
    let d = parent.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let mut s = String::from(HEADER);
    s += "train,240,0,-30.0,0.4,0.6,0.02,0.6,2000.0,0.0,\n";
    for (step, cr, ql) in evals {
        s += &format!("eval,{step},0,-2.0,{cr},{ql},0.0,0.0,6000.0,0.001,\n");
    }
    std::fs::write(d.join("metrics.csv"), s).unwrap();
    d
}

#[test]
fn curves_aggregate_runs_by_median_and_iqr() {
    let root = std::env::temp_dir().join(format!("va-curves-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let a = root.join("a");
    // Four runs: CR at step 100 = 0.90, 0.95, 0.97, 1.00; QL = 0.4, 0.1, 0.3, 0.2.
    for (k, (cr, ql)) in [(0.90, 0.4), (0.95, 0.1), (0.97, 0.3), (1.00, 0.2)].into_iter().enumerate() {
        fake_run(&a, &format!("run-seed{k}"), &[(100, cr, ql), (200, 1.0, 0.05)]);
    }
    let single = fake_run(&root, "single", &[(100, 0.5, 0.7)]);
    let out = root.join("out");
    let (code, _, err) = voltarena(&["curves", &format!("four, runs={}", a.display()), &format!("one={}", single.display()), "--out", out.to_str().unwrap(), "--ref-cr", "1.0"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.join("curves.svg").is_file());
    let csv = std::fs::read_to_string(out.join("curves.csv")).unwrap();
    let row = |prefix: &str| -> Vec<f64> {
        let line = csv.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no row {prefix} in\n{csv}"));
        line[prefix.len()..].split(',').map(|x| x.parse().unwrap()).collect()
    };
    // Quantiles with linear interpolation (numpy's default) of the sorted values:
    // CR [0.90, 0.95, 0.97, 1.00]: q25 = 0.95 − 0.25·0.05 = 0.9375, median 0.96, q75 = 0.97 + 0.25·0.03 = 0.9775;
    // QL [0.1, 0.2, 0.3, 0.4]: 0.175, 0.25, 0.325.
    let want = [4.0, 0.9375, 0.96, 0.9775, 0.175, 0.25, 0.325];
    let got = row("\"four, runs\",100,");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
    }
    assert_eq!(row("\"four, runs\",200,"), vec![4.0, 1.0, 1.0, 1.0, 0.05, 0.05, 0.05]);
    assert_eq!(row("one,100,"), vec![1.0, 0.5, 0.5, 0.5, 0.7, 0.7, 0.7]);

    // A malformed number: named by file, line and column.
    let bad = fake_run(&root, "bad/run", &[(100, 0.9, 0.1)]);
    let text = std::fs::read_to_string(bad.join("metrics.csv")).unwrap().replace("eval,100,0,-2.0,0.9", "eval,100,0,-2.0,zero");
    std::fs::write(bad.join("metrics.csv"), text).unwrap();
    let (code, _, err) = voltarena(&["curves", &format!("bad={}", root.join("bad").display()), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("metrics.csv") && err.contains("line 3") && err.contains("'cr'"), "{err}");
    // No runs, or no NAME=: named.
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let (code, _, err) = voltarena(&["curves", &format!("e={}", root.join("empty").display()), "--out", out.to_str().unwrap()]);
    assert!(code == 2 && err.contains("no run directory"), "{err}");
    let (code, _, err) = voltarena(&["curves", "justadir", "--out", out.to_str().unwrap()]);
    assert!(code == 2 && err.contains("NAME=DIR"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}
