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
    assert!(v["controllers"]["ghost"]["error"].is_string());
    // The same episodes as `rollout --seed 0` (2 episodes of 240 steps).
    let (_, r, _) = voltarena(&["rollout", "--task", "mapdn33", "--controller", "droop", "--steps", "480", "--json"]);
    let r: Value = serde_json::from_str(&r).unwrap();
    assert_eq!(v["controllers"]["droop"]["metrics"]["cr"], r["metrics"]["cr"]);
    assert_eq!(v["controllers"]["droop"]["metrics"]["steps"], 480);
    for f in ["results.json", "results.md", "envelope.svg"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("| none |") && md.contains("| droop |") && md.contains("error:"));
    // Unknown fields and duplicate names are refused up front.
    std::fs::write(&cfg, "task = \"mapdn33\"\nepisodes = 1\n[[controllers]]\nname = \"a\"\nkind = \"none\"\n[[controllers]]\nname = \"a\"\nkind = \"droop\"\n").unwrap();
    let (code, _, stderr) = voltarena(&["compare", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("appears twice"), "{stderr}");
}
