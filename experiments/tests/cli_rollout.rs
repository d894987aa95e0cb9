//! `voltarena rollout` and `voltarena task`: the JSON contract, determinism, bad input.

use serde_json::Value;
use std::process::Command;

fn voltarena(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_voltarena")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn rollout(extra: &[&str]) -> Value {
    let mut args = vec!["rollout", "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = voltarena(&args);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn rollout_json_contract_and_determinism() {
    let a = rollout(&["--task", "mapdn33", "--controller", "random", "--steps", "300", "--seed", "7"]);
    for key in ["steps", "wall_seconds", "steps_per_second"] {
        assert!(a[key].is_number(), "{key}");
    }
    for key in ["cr", "ql", "avv_max", "violation_rate", "loss_kwh", "divergences"] {
        assert!(a["metrics"][key].is_number(), "metrics.{key}");
    }
    assert_eq!(a["steps"], 300);
    assert_eq!(a["episodes"], 2, "240-step episodes back to back");
    let b = rollout(&["--task", "mapdn33", "--controller", "random", "--steps", "300", "--seed", "7"]);
    assert_eq!(a["metrics"], b["metrics"], "same seed, same numbers");
    let c = rollout(&["--task", "mapdn33", "--controller", "random", "--steps", "300", "--seed", "8"]);
    assert_ne!(a["metrics"], c["metrics"]);
}

#[test]
fn controllers_and_backends() {
    let none = rollout(&["--task", "mapdn33", "--controller", "none", "--steps", "960"]);
    let droop = rollout(&["--task", "mapdn33", "--controller", "droop", "--steps", "960"]);
    assert_eq!(none["metrics"]["ql"], 0.0);
    assert!(droop["metrics"]["ql"].as_f64().unwrap() > 0.0);
    // Droop acts against the violations that no control leaves.
    assert!(droop["metrics"]["violation_rate"].as_f64().unwrap() < none["metrics"]["violation_rate"].as_f64().unwrap());
    let ldf = rollout(&["--task", "mapdn33", "--controller", "none", "--steps", "960", "--backend", "lindistflow"]);
    assert_eq!(ldf["backend"], "lindistflow");
    let d = (ldf["metrics"]["violation_rate"].as_f64().unwrap() - none["metrics"]["violation_rate"].as_f64().unwrap()).abs();
    assert!(d < 0.1, "LinDistFlow and AC see the same episodes: violation rates differ by {d}");
    let train = rollout(&["--task", "mapdn141", "--controller", "none", "--steps", "50", "--split", "train"]);
    assert_eq!(train["split"], "train");
}

#[test]
fn task_list_and_show() {
    let (code, out, _) = voltarena(&["task", "list"]);
    assert_eq!(code, 0);
    for t in ["mapdn33", "mapdn141", "mapdn322", "rural2_96"] {
        assert!(out.contains(t), "{t} listed");
    }
    let (code, out, _) = voltarena(&["task", "show", "mapdn322"]);
    assert_eq!(code, 0);
    assert!(out.contains("158 per agent") && out.contains("state 1364") && out.contains("38 PV inverters"), "{out}");
    let (code, out, _) = voltarena(&["task", "show", "mapdn33", "--toml"]);
    assert_eq!(code, 0);
    assert!(out.contains("name = \"mapdn33\""));
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let (code, _, err) = voltarena(&["rollout", "--task", "nope", "--controller", "none"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown task 'nope'") && err.contains("mapdn33"), "{err}");
    let dir = std::env::temp_dir().join(format!("va-rollout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("broken.toml");
    std::fs::write(&f, "name = \"x\"\nresolution_s = 180\n").unwrap();
    let (code, _, err) = voltarena(&["rollout", "--task", f.to_str().unwrap(), "--controller", "none"]);
    assert_eq!(code, 2);
    assert!(err.contains("broken.toml") && err.contains("missing field"), "{err}");
    let (code, _, _) = voltarena(&["rollout", "--task", "mapdn33", "--controller", "opf"]);
    assert_eq!(code, 2);
    let (code, _, _) = voltarena(&["rollout", "--task", "mapdn33", "--controller", "none", "--split", "holdout"]);
    assert_eq!(code, 2);
    let (code, _, err) = voltarena(&["task", "show", "nope"]);
    assert_eq!(code, 2);
    assert!(!err.contains("panicked"));
}

#[test]
fn safety_layers_cut_random_violations_by_at_least_four() {
    let none = rollout(&["--task", "mapdn33", "--controller", "random", "--steps", "960", "--safety", "none"]);
    let base = none["metrics"]["violation_rate"].as_f64().unwrap();
    assert!(base > 0.3, "random actions violate often ({base})");
    assert_eq!(none["metrics"]["safety_intervention_rate"], 0.0);
    for layer in ["projection", "cbf"] {
        let r = rollout(&["--task", "mapdn33", "--controller", "random", "--steps", "960", "--safety", layer]);
        let v = r["metrics"]["violation_rate"].as_f64().unwrap();
        assert!(v <= base / 4.0, "{layer}: {v} vs {base}");
        assert!(r["metrics"]["safety_intervention_rate"].as_f64().unwrap() > 0.1);
    }
    let (code, _, err) = voltarena(&["rollout", "--task", "mapdn33", "--controller", "none", "--safety", "magic"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown safety layer 'magic'"), "{err}");
}

#[test]
fn the_trace_holds_every_step_and_inverter_and_adds_up_to_the_reported_ql() {
    let dir = std::env::temp_dir().join(format!("va-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.csv");
    let p = path.to_str().unwrap();
    let r = rollout(&["--task", "mapdn33", "--controller", "droop", "--steps", "300", "--seed", "3", "--trace", p]);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("episode,t,agent,bus,v_pu,q_mvar,q_avail_mvar,p_mw"));
    let rows: Vec<Vec<f64>> = lines.map(|l| l.split(',').map(|x| x.parse::<f64>().unwrap()).collect()).collect();
    let agents = rows.iter().map(|r| r[2] as usize).max().unwrap() + 1;
    assert!(agents > 1);
    assert_eq!(rows.len(), 300 * agents, "one row per step and inverter");
    // Two episodes back to back: 240 steps, then the 60 that make 300.
    assert_eq!(rows.iter().filter(|r| r[0] == 0.0).count(), 240 * agents);
    assert_eq!(rows.iter().filter(|r| r[0] == 1.0).map(|r| r[1] as usize).max(), Some(60));
    for r in &rows {
        assert!(r[4] > 0.8 && r[4] < 1.2, "a voltage in pu: {}", r[4]);
        assert!(r[5].abs() <= r[6] * (1.0 + 1e-5) + 1e-12, "|q| within what the inverter has: {r:?}");
    }
    // The metrics' QL is the time mean of mean_k |q_k|: the trace, summed independently, agrees.
    let ql = rows.iter().map(|r| r[5].abs()).sum::<f64>() / rows.len() as f64;
    let reported = r["metrics"]["ql"].as_f64().unwrap();
    assert!(reported > 0.0);
    assert!((ql - reported).abs() <= 1e-5 * reported, "trace {ql} against reported {reported}");
    // A trace that cannot be written is an error that names the flag, not a panic.
    let (code, _, err) = voltarena(&["rollout", "--task", "mapdn33", "--controller", "none", "--steps", "5", "--trace", "/nonexistent-dir/x.csv"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--trace"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
