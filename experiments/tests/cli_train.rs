//! `voltarena train` / `eval`: run directory contents, resume after the fact, eval contract, bad
//! input. Tiny budgets: this checks the mechanisms, not the learning (docs/RESULTS.md has that).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn voltarena(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_voltarena")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn runs_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("va-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn tiny_args<'a>(runs: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "train", "../configs/matd3_mapdn33.toml", "--runs-dir", runs,
        "--set", "total_steps=600", "--set", "learning_starts=200", "--set", "eval_every=300",
        "--set", "eval_episodes=1", "--set", "checkpoint_every=300", "--set", "matd3.batch_size=32",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn train_writes_a_complete_run_and_eval_reads_it() {
    let runs = runs_dir("full");
    let (code, stdout, stderr) = voltarena(&tiny_args(runs.to_str().unwrap(), &["--seed", "3"]));
    assert_eq!(code, 0, "{stderr}");
    let run = PathBuf::from(stdout.trim());
    for f in ["config.toml", "run.json", "metrics.csv", "best.json", "checkpoint/actor.ot", "checkpoint/critic.ot", "checkpoint/progress.json", "best/actor.ot"] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let prov: Value = serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(prov["seed"], 3);
    assert!(prov["git_commit"].is_string() && prov["tch_version"] == "0.26.0");
    assert!(prov["machine"].is_string() && prov["cpu"]["model"].is_string() && prov["cpu"]["flags"].is_array(), "{prov}");
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(cfg.contains("total_steps = 600") && cfg.contains("seed = 3"), "the resolved config is kept");
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(csv.starts_with("kind,step,episode,return,cr,ql"));
    assert_eq!(csv.lines().filter(|l| l.starts_with("eval,")).count(), 2);
    let tb: Vec<_> = std::fs::read_dir(run.join("tb")).unwrap().collect();
    assert!(!tb.is_empty(), "TensorBoard events written");
    let progress: Value = serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint/progress.json")).unwrap()).unwrap();
    assert_eq!(progress["step"], 600);
    // eval: the contract fields, on the test split.
    let (code, stdout, stderr) = voltarena(&["eval", run.to_str().unwrap(), "--episodes", "2", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let e: Value = serde_json::from_str(&stdout).unwrap();
    for k in ["cr", "ql", "avv_max", "loss_kwh", "violation_rate"] {
        assert!(e[k].is_number(), "{k}");
    }
    assert_eq!(e["episodes"], 2);
    // Same command again: identical numbers.
    let (_, again, _) = voltarena(&["eval", run.to_str().unwrap(), "--episodes", "2", "--json"]);
    assert_eq!(stdout, again);
    // Resume: extend the budget and continue from the checkpoint.
    let (code, _, stderr) = voltarena(&["train", "--resume", run.to_str().unwrap(), "--set", "total_steps=900", "--runs-dir", runs.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let progress: Value = serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint/progress.json")).unwrap()).unwrap();
    assert_eq!(progress["step"], 900);
    assert!(!run.join("checkpoint.tmp").exists() && !run.join("checkpoint.old").exists());
}

#[test]
fn same_seed_same_training_numbers() {
    let runs = runs_dir("det");
    let r = runs.to_str().unwrap();
    let a = voltarena(&tiny_args(r, &["--seed", "5"]));
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a new run directory name
    let b = voltarena(&tiny_args(r, &["--seed", "5"]));
    assert_eq!((a.0, b.0), (0, 0), "{} {}", a.2, b.2);
    let csv = |out: &str| std::fs::read_to_string(Path::new(out.trim()).join("metrics.csv")).unwrap();
    assert_eq!(csv(&a.1), csv(&b.1));
}

#[test]
fn bad_train_and_eval_input() {
    let runs = runs_dir("bad");
    let r = runs.to_str().unwrap();
    let (code, _, err) = voltarena(&["train", "../configs/matd3_mapdn33.toml", "--runs-dir", r, "--set", "matd3.actor_lrr=1e-3"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown field `actor_lrr`"), "{err}");
    let (code, _, err) = voltarena(&["train", "../configs/matd3_mapdn33.toml", "--runs-dir", r, "--set", "algorithm=\"ppo\""]);
    assert_eq!(code, 2);
    assert!(err.contains("ppo"), "{err}");
    // Values out of range are refused by key and range, and a failed start leaves no run directory.
    for (set, key) in [
        ("matd3.gamma=2", "matd3.gamma: expected a number in [0, 1], got 2"),
        ("matd3.tau=0", "matd3.tau: expected a number in (0, 1]"),
        ("matd3.actor_lr=-1e-3", "matd3.actor_lr: expected a finite number > 0"),
        ("buffer_size=16", "buffer_size: expected at least the batch size (256)"),
        ("maddpg.batch_size=0", "maddpg.batch_size: expected an integer ≥ 1"),
        ("safety.gamma=1.5", "safety.gamma: expected a number in (0, 1]"),
        ("task=\"mapdn99\"", "mapdn99"),
        ("explore_sigma_start=-0.1", "explore_sigma_start"),
    ] {
        let (code, _, err) = voltarena(&["train", "../configs/matd3_mapdn33.toml", "--runs-dir", r, "--set", set]);
        assert_eq!(code, 2, "{set}: {err}");
        assert!(err.contains(key) && err.contains("configs/matd3_mapdn33.toml"), "{set}: {err}");
    }
    assert!(!runs.exists() || std::fs::read_dir(&runs).unwrap().next().is_none(), "no run directory left behind");
    let (code, _, err) = voltarena(&["eval", "/no/such/run"]);
    assert_eq!(code, 2);
    assert!(err.contains("/no/such/run"), "{err}");
    let (code, _, err) = voltarena(&["train", "--resume", "/no/such/run"]);
    assert_eq!(code, 2);
    assert!(err.contains("/no/such/run"), "{err}");
    // A checkpoint that is not one: clear error, no panic.
    let fake = runs.join("fake");
    std::fs::create_dir_all(fake.join("checkpoint")).unwrap();
    std::fs::copy("../configs/matd3_mapdn33.toml", fake.join("config.toml")).unwrap();
    std::fs::write(fake.join("checkpoint/progress.json"), "{\"step\": 1, \"episode\": 0, \"updates\": 0}").unwrap();
    std::fs::write(fake.join("checkpoint/actor.ot"), "garbage").unwrap();
    let (code, _, err) = voltarena(&["eval", fake.to_str().unwrap(), "--checkpoint", "last"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("checkpoint") && !err.contains("panicked"), "{err}");
}

/// Every evaluation is a candidate, also those between checkpoints (here the only scheduled
/// checkpoint is the last).
#[test]
fn best_by_return_keeps_the_evaluation_with_the_highest_return() {
    let runs = runs_dir("bestby");
    let r = runs.to_str().unwrap();
    let (code, out, err) = voltarena(&tiny_args(r, &["--set", "best_by=\"return\"", "--set", "eval_every=120", "--set", "checkpoint_every=0"]));
    assert_eq!(code, 0, "{err}");
    let run = PathBuf::from(out.trim());
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    // The eval row with the highest return (the first of equals), from metrics.csv.
    let mut best: Option<(f64, u64)> = None;
    for l in csv.lines().filter(|l| l.starts_with("eval,")) {
        let f: Vec<&str> = l.split(',').collect();
        let (step, ret): (u64, f64) = (f[1].parse().unwrap(), f[3].parse().unwrap());
        if best.is_none_or(|(b, _)| ret > b) {
            best = Some((ret, step));
        }
    }
    let b: Value = serde_json::from_str(&std::fs::read_to_string(run.join("best.json")).unwrap()).unwrap();
    assert_eq!(b["step"].as_u64(), best.map(|x| x.1), "{csv}\n{b}");
    assert!(b["val_return"].is_number());
}

#[test]
fn best_by_pareto_keeps_the_lowest_ql_among_evaluations_no_worse_than_the_first() {
    let runs = runs_dir("bestby_pareto");
    let r = runs.to_str().unwrap();
    let (code, out, err) = voltarena(&tiny_args(r, &["--set", "best_by=\"pareto\"", "--set", "total_steps=960", "--set", "eval_every=120", "--set", "checkpoint_every=120"]));
    assert_eq!(code, 0, "{err}");
    let run = PathBuf::from(out.trim());
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    // From metrics.csv (6-digit values): the first eval row, then the lowest QL, highest CR among
    // the rows with CR ≥ and QL ≤ the first's.
    let rows: Vec<(u64, f64, f64)> = csv.lines().filter(|l| l.starts_with("eval,")).map(|l| {
        let f: Vec<&str> = l.split(',').collect();
        (f[1].parse().unwrap(), f[4].parse().unwrap(), f[5].parse().unwrap())
    }).collect();
    assert!(rows.len() >= 8, "{csv}");
    let (_, cr0, ql0) = rows[0];
    let mut best = rows[0];
    for &(s, cr, ql) in &rows[1..] {
        if cr >= cr0 && ql <= ql0 && (ql < best.2 || (ql == best.2 && cr > best.1)) {
            best = (s, cr, ql);
        }
    }
    let b: Value = serde_json::from_str(&std::fs::read_to_string(run.join("best.json")).unwrap()).unwrap();
    assert_eq!(b["step"].as_u64(), Some(best.0), "{csv}\n{b}");
    // The kept policy is no worse than the first validation on either metric.
    assert!(b["val_cr"].as_f64().unwrap() >= cr0 - 1e-6 && b["val_ql"].as_f64().unwrap() <= ql0 + 1e-6, "{b}");
}
