//! One trained run is one system wherever it is evaluated: `eval`, `compare` (an `rl` entry with no
//! `safety` key), `leaderboard` (the run reused) and `rollout --controller rl` deploy it behind its own
//! safety layer and give the same numbers on the same episodes; an explicit override is applied and
//! recorded.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn voltarena(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_voltarena")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

const KEYS: [&str; 5] = ["cr", "ql", "avv_max", "loss_kwh", "violation_rate"];

#[test]
fn a_run_behind_the_projection_filter_is_the_same_system_in_every_command() {
    let dir = std::env::temp_dir().join(format!("va-pipeline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let runs = dir.join("runs");
    // A tiny run trained behind the projection filter (with validation, so it has a best policy).
    let (code, stdout, stderr) = voltarena(&[
        "train", "../configs/matd3_projection_mapdn33.toml", "--runs-dir", runs.to_str().unwrap(), "--seed", "5",
        "--set", "total_steps=480", "--set", "learning_starts=240", "--set", "eval_every=240", "--set", "eval_episodes=1",
        "--set", "checkpoint_every=240", "--set", "matd3.batch_size=32",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let run = PathBuf::from(stdout.trim());
    let run_s = run.to_str().unwrap();

    // eval: seeds 0..2 of the test split, default checkpoint (best).
    let (code, out, err) = voltarena(&["eval", run_s, "--episodes", "3", "--json"]);
    assert_eq!(code, 0, "{err}");
    let eval: Value = serde_json::from_str(&out).unwrap();

    // compare: the same episodes (seed 0, 3 episodes), the run with no safety key, and the same run
    // with the layer explicitly taken away.
    let cfg = dir.join("compare.toml");
    std::fs::write(
        &cfg,
        format!(
            "task = \"mapdn33\"\nsplit = \"test\"\nepisodes = 3\nseed = 0\n\
             [[controllers]]\nname = \"run\"\nkind = \"rl\"\nrun = \"{run_s}\"\n\
             [[controllers]]\nname = \"bare\"\nkind = \"rl\"\nrun = \"{run_s}\"\nsafety = {{ kind = \"none\" }}\n"
        ),
    )
    .unwrap();
    let (code, out, err) = voltarena(&["compare", cfg.to_str().unwrap(), "--json", "--out", dir.join("cmp").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let cmp: Value = serde_json::from_str(&out).unwrap();
    let via_compare = &cmp["controllers"]["run"];
    assert_eq!(via_compare["deployment"]["deployment"]["safety"]["kind"], "projection", "the run's own layer");
    assert!(via_compare["deployment"].get("overridden").is_none(), "nothing overridden");
    assert_eq!(cmp["controllers"]["bare"]["deployment"]["overridden"], serde_json::json!(["safety"]));

    // leaderboard: the run reused for suite seed 0 (episode seeds 100·0 + i = 0, 1, 2).
    let suite = dir.join("suite.toml");
    std::fs::write(
        &suite,
        format!("name = \"pipe\"\ntasks = [\"mapdn33\"]\nseeds = [0]\neval_episodes = 3\n[[controllers]]\nname = \"run\"\nkind = \"rl\"\nruns = {{ mapdn33 = [\"{run_s}\"] }}\n"),
    )
    .unwrap();
    let (code, _, err) = voltarena(&["leaderboard", suite.to_str().unwrap(), "--out", dir.join("lb").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let lb: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("lb/leaderboard.json")).unwrap()).unwrap();
    let via_leaderboard = &lb["entries"][0]["per_seed"][0];
    assert_eq!(lb["entries"][0]["deployment"]["safety"]["kind"], "projection");

    // rollout --controller rl: the same three test episodes back to back.
    let (code, out, err) = voltarena(&["rollout", "--task", "mapdn33", "--controller", "rl", "--run", run_s, "--split", "test", "--steps", "720", "--seed", "0", "--json"]);
    assert_eq!(code, 0, "{err}");
    let roll: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(roll["episodes"], 3);

    for k in KEYS {
        assert!(eval[k].is_number(), "{k}");
        assert_eq!(eval[k], via_compare["metrics"][k], "eval vs compare: {k}");
        assert_eq!(eval[k], via_leaderboard[k], "eval vs leaderboard: {k}");
        assert_eq!(eval[k], roll["metrics"][k], "eval vs rollout: {k}");
    }
    // The layer matters on these episodes: without it the same actor is a different system.
    let bare = &cmp["controllers"]["bare"]["metrics"];
    assert!(KEYS.iter().any(|k| bare[*k] != eval[*k]), "the override took effect");
    let _ = std::fs::remove_dir_all(&dir);
}
