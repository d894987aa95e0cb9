//! `voltarena baseline`: the JSON contract, the written files, bad configs.

use serde_json::Value;
use std::process::Command;

fn voltarena(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_voltarena")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("va-baseline-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn static_config_json_contract_and_files() {
    let out = tmp("static");
    let (code, stdout, stderr) = voltarena(&[
        "baseline", "../configs/ofo_rural2_static.toml", "--json", "--out", out.to_str().unwrap(), "--set", "scenario.iterations=80",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    for name in ["none", "droop", "centralized", "nested", "two_metric", "qu2020", "tang2024"] {
        let c = &v["controllers"][name];
        for key in ["avv", "avv_bus", "loss_kwh", "q_kvarh", "max_v", "seconds_per_iteration"] {
            assert!(c[key].is_number(), "{name}.{key}");
        }
        assert_eq!(c["avv_bus"], 65, "the deepest bus is monitored");
    }
    // Control lowers the worst voltage; no control leaves the over-voltage.
    assert!(v["controllers"]["none"]["max_v"].as_f64().unwrap() > 1.06);
    assert!(v["controllers"]["nested"]["max_v"].as_f64().unwrap() < 1.052);
    for f in ["results.json", "results.md", "voltage.svg", "reactive_power.svg"] {
        let p = out.join(f);
        assert!(p.exists() && std::fs::metadata(&p).unwrap().len() > 100, "{f}");
    }
    let svg = std::fs::read_to_string(out.join("voltage.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("nested"));
}

#[test]
fn bad_configs_exit_2_naming_the_problem() {
    let dir = tmp("bad");
    let base = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/ofo_rural2_static.toml")).unwrap();
    let cases = [
        (base.replace("[controllers.tang2024]", "[controllers.opf]"), "unknown field `opf`"),
        (base.replace("start = \"12:00\"", "start = \"25:00\""), "scenario.start"),
        (base.replace("gamma_rel = 0.99", "gamma_rel = 0.99\ngamma = 1.0"), "gamma or gamma_rel, not both"),
        (base.replace("k_inner = 10", "k_inner = 10\nmargin_pu = 0.2"), "margin_pu"),
        (base.replace("iterations = 300", "iterations = 300\nfailed_buses = [999]"), "bus id 999"),
    ];
    for (i, (text, expect)) in cases.iter().enumerate() {
        let f = dir.join(format!("c{i}.toml"));
        std::fs::write(&f, text).unwrap();
        let (code, _, stderr) = voltarena(&["baseline", f.to_str().unwrap(), "--out", dir.to_str().unwrap()]);
        assert_eq!(code, 2, "case {i}: {stderr}");
        assert!(stderr.contains(expect) && !stderr.contains("panicked"), "case {i}: {stderr}");
    }
    let (code, _, stderr) = voltarena(&["baseline", "../configs/ofo_rural2_static.toml", "--set", "scenario"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("KEY=VALUE"), "{stderr}");
}

#[test]
fn a_run_with_overrides_never_replaces_the_configs_published_results() {
    let dir = tmp("variant");
    let cfg = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/ofo_rural2_static.toml");
    let run = |sets: &[&str]| {
        let mut args = vec!["baseline", cfg.to_str().unwrap()];
        for s in sets {
            args.extend(["--set", s]);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_voltarena")).args(&args).current_dir(&dir).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let stdout = run(&["scenario.iterations=3"]);
    let variants: Vec<_> = std::fs::read_dir(dir.join("results")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(variants.len(), 1, "{variants:?}");
    assert!(variants[0].starts_with("ofo_rural2_static-set-") && stdout.contains(&variants[0]), "{variants:?}");
    assert!(!dir.join("results/ofo_rural2_static").exists(), "the config's own folder is left alone");
    // Without overrides: the config's folder, as before.
    run(&[]);
    assert!(dir.join("results/ofo_rural2_static/results.json").exists());
}

#[test]
fn curtailment_removes_what_reactive_power_cannot() {
    // §IV-I analogue: inverters of S = DC size have no reactive power left at full sun.
    let run = |w: &str| -> Value {
        let (code, stdout, stderr) = voltarena(&[
            "baseline", "../configs/ofo_rural2_curtailment.toml", "--json", "--out", tmp("curtail").to_str().unwrap(),
            "--set", "scenario.duration_s=3600", "--set", "scenario.start=\"11:30\"", "--set", &format!("controllers.centralized.curtail_weight={w}"),
        ]);
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str::<Value>(&stdout).unwrap()["controllers"].clone()
    };
    let (with, without) = (run("20.0"), run("0.0"));
    let avv = |v: &Value, c: &str| v[c]["avv"].as_f64().unwrap();
    assert!(avv(&with, "centralized") < avv(&without, "centralized") / 1.5, "{} vs {}", avv(&with, "centralized"), avv(&without, "centralized"));
    let pct = with["centralized"]["curtailed_pct"].as_f64().unwrap();
    assert!(pct > 0.5 && pct < 10.0, "curtailed {pct} %");
    let kwh = with["centralized"]["curtailed_kwh"].as_f64().unwrap() + with["centralized"]["pv_kwh"].as_f64().unwrap();
    assert!((kwh - without["centralized"]["pv_kwh"].as_f64().unwrap()).abs() < 1e-6 * kwh, "fed in + curtailed = what the panels offered");
    for c in ["none", "droop", "nested"] {
        assert!(with[c].get("curtailed_kwh").is_none(), "{c} does not curtail");
    }
}
