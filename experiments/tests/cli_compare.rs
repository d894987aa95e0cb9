//! `voltarena compare`: every controller on the same episodes; broken entries keep the others.

use serde_json::Value;
use std::process::Command;

fn voltarena(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_voltarena")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn compare_runs_everyone_on_the_same_episodes_and_keeps_partial_results() {
    let dir = std::env::temp_dir().join(format!("va-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        "task = \"mapdn33\"\nsplit = \"test\"\nepisodes = 2\n\
         [[controllers]]\nname = \"none\"\nkind = \"none\"\n\
         [[controllers]]\nname = \"droop\"\nkind = \"droop\"\n\
         [[controllers]]\nname = \"ghost\"\nkind = \"rl\"\nrun = \"/no/such/run\"\n",
    )
    .unwrap();
    let out = dir.join("out");
    let (code, stdout, stderr) = voltarena(&["compare", cfg.to_str().unwrap(), "--json", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2, "a broken entry is an error");
    assert!(stderr.contains("ghost") && stderr.contains("/no/such/run"), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["episode_seeds"], serde_json::json!([0, 1]));
    assert!(v["cpu"]["model"].is_string() && v["cpu"]["flags"].is_array(), "{}", v["cpu"]);
    assert!(v["controllers"]["ghost"]["error"].is_string());
    // The same episodes as `rollout --seed 0` (2 episodes of 240 steps).
    let (_, r, _) = voltarena(&["rollout", "--task", "mapdn33", "--controller", "droop", "--steps", "480", "--json"]);
    let r: Value = serde_json::from_str(&r).unwrap();
    assert_eq!(v["controllers"]["droop"]["metrics"]["cr"], r["metrics"]["cr"]);
    assert_eq!(v["controllers"]["droop"]["metrics"]["steps"], 480);
    for f in ["results.json", "results.md", "envelope.svg", "violations.svg", "metrics.svg"] {
        assert!(out.join(f).exists(), "{f}");
    }
    // Per-bus violation frequencies agree with the aggregate: a step with a violation has at least
    // one violating bus, so max_b rate_b ≤ violation_rate ≤ Σ_b rate_b.
    let ids = v["monitored_bus_ids"].as_array().unwrap();
    for name in ["none", "droop"] {
        let rates: Vec<f64> = v["controllers"][name]["bus_violation_rate"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(rates.len(), ids.len());
        let vr = v["controllers"][name]["metrics"]["violation_rate"].as_f64().unwrap();
        let (mx, sum) = (rates.iter().cloned().fold(0.0, f64::max), rates.iter().sum::<f64>());
        assert!(mx <= vr + 1e-12 && vr <= sum + 1e-12, "{name}: max {mx} vr {vr} sum {sum}");
    }
    let none_rates = v["controllers"]["none"]["bus_violation_rate"].as_array().unwrap();
    assert!(none_rates.iter().any(|x| x.as_f64().unwrap() > 0.0), "no control violates somewhere on mapdn33 test days");
    let heat = std::fs::read_to_string(out.join("violations.svg")).unwrap();
    assert!(heat.contains("<svg") && heat.contains("none") && heat.contains("droop"));
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("| none |") && md.contains("| droop |") && md.contains("error:"));
    // Unknown fields and duplicate names are refused up front.
    std::fs::write(&cfg, "task = \"mapdn33\"\nepisodes = 1\n[[controllers]]\nname = \"a\"\nkind = \"none\"\n[[controllers]]\nname = \"a\"\nkind = \"droop\"\n").unwrap();
    let (code, _, stderr) = voltarena(&["compare", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("appears twice"), "{stderr}");
}

/// The shipped droop-curve comparison runs on any task (`--set task=...`) and its curves reach the
/// controllers: a curve whose |response| is pointwise at least the default's (a narrower dead band,
/// the same saturation points) spends more reactive power on the same episodes.
#[test]
fn the_shipped_droop_curve_comparison_runs_and_its_curves_reach_the_controllers() {
    let dir = std::env::temp_dir().join(format!("va-compare-curves-{}", std::process::id()));
    let out = dir.join("out");
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/compare_droop_curves.toml");
    let (code, stdout, stderr) =
        voltarena(&["compare", cfg, "--set", "task=\"mapdn33\"", "--set", "episodes=1", "--json", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["task"], "mapdn33");
    let ql = |name: &str| v["controllers"][name]["metrics"]["ql"].as_f64().unwrap_or_else(|| panic!("{name}: {}", v["controllers"][name]));
    assert!(ql("droop 0.95/0.99/1.01/1.05") > ql("droop"), "{} vs {}", ql("droop 0.95/0.99/1.01/1.05"), ql("droop"));
    assert!(ql("droop mapdn") > ql("droop"));
    assert!(ql("droop q_frac 0.5") < ql("droop"));
    assert_eq!(ql("none"), 0.0);
    assert!(v["controllers"]["none + projection"]["safety_intervention_rate"].as_f64().unwrap() > 0.0);
    std::fs::remove_dir_all(&dir).ok();
}
