//! `voltarena leaderboard`: a tiny suite twice gives the same leaderboard (apart from timestamps),
//! `--verify` confirms it, tampering is caught by entry, broken entries keep the others.

use serde_json::Value;
use std::process::Command;

fn voltarena(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_voltarena")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

const SUITE: &str = r#"
name = "tiny"
tasks = ["mapdn33"]
seeds = [1, 2]
eval_episodes = 1

[[controllers]]
name = "none"
kind = "none"

[[controllers]]
name = "droop"
kind = "droop"

[[controllers]]
name = "nested"
kind = "nested"

[[controllers]]
name = "matd3"
kind = "rl"
train = "../configs/matd3_mapdn33.toml"
set = ["total_steps=300", "learning_starts=150", "eval_every=0", "checkpoint_every=0", "matd3.batch_size=32"]
"#;

/// Drops what is measured rather than computed: timestamps, wall time, and each entry's
/// `compute_us_per_step` (wall time of a control step; not compared by `--verify` either).
fn strip(v: &mut Value) {
    v.as_object_mut().unwrap().remove("created_unix");
    v.as_object_mut().unwrap().remove("wall_seconds");
    for e in v["entries"].as_array_mut().into_iter().flatten() {
        e.as_object_mut().unwrap().remove("compute_us_per_step");
    }
}

#[test]
fn reruns_are_identical_and_verify_checks_them() {
    let dir = std::env::temp_dir().join(format!("va-lb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let suite = dir.join("suite.toml");
    std::fs::write(&suite, SUITE).unwrap();
    let (a, b) = (dir.join("a"), dir.join("b"));
    for (out, jobs) in [(&a, "2"), (&b, "1")] {
        let (code, _, err) = voltarena(&["leaderboard", suite.to_str().unwrap(), "--out", out.to_str().unwrap(), "--jobs", jobs]);
        assert_eq!(code, 0, "{err}");
    }
    let read = |p: &std::path::Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p.join("leaderboard.json")).unwrap()).unwrap() };
    let (mut ja, mut jb) = (read(&a), read(&b));
    strip(&mut ja);
    strip(&mut jb);
    assert_eq!(ja, jb, "two runs (2 jobs and 1 job) must agree apart from timestamps");
    let entries = ja["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[2]["status"], "ok", "OFO runs on mapdn33 (buses without an inverter are zero-capacity nodes)");
    assert!(entries[3]["train_config_hash"].is_string());
    assert!(ja["suite_hash"].is_string() && ja["git_commit"].is_string() || ja["git_commit"].is_null());
    assert!(ja["machine"].is_string() && ja["cpu"]["model"].is_string() && ja["cpu"]["flags"].is_array(), "{}", ja["cpu"]);
    for f in ["leaderboard.md", "index.html"] {
        assert!(a.join(f).exists(), "{f}");
    }
    let html = std::fs::read_to_string(a.join("index.html")).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.contains("droop"));
    // One CR-against-QL chart (one task) with a marker per ok entry, and the sortable table.
    assert_eq!(html.matches("<svg class=\"crql\" data-task=\"mapdn33\"").count(), 1);
    assert_eq!(html.matches("<circle class=\"pt\"").count(), entries.iter().filter(|e| e["status"] == "ok").count());
    assert!(html.contains("<table class=\"sortable\"") && html.contains("<script>") && html.contains(">communication per step</th>") && html.contains(">µs per step</th>"));
    let (code, out, err) = voltarena(&["leaderboard", "--verify", a.to_str().unwrap(), "--jobs", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("verified: 4 entries"));
    // Tampered numbers: the mismatch names the entry.
    let mut t = read(&a);
    t["entries"][1]["per_seed"][0]["cr"] = Value::from(0.123);
    std::fs::write(a.join("leaderboard.json"), t.to_string()).unwrap();
    let (code, _, err) = voltarena(&["leaderboard", "--verify", a.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("mapdn33 / droop"), "{err}");
}

#[test]
fn broken_entries_are_reported_and_the_rest_kept() {
    let dir = std::env::temp_dir().join(format!("va-lb-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let suite = dir.join("suite.toml");
    // An unknown kind is refused before anything runs, naming the entry.
    std::fs::write(&suite, "name = \"bad\"\ntasks = [\"mapdn33\"]\nseeds = [1]\neval_episodes = 1\n[[controllers]]\nname = \"none\"\nkind = \"none\"\n[[controllers]]\nname = \"oops\"\nkind = \"opf\"\n").unwrap();
    let out = dir.join("o");
    let (code, _, err) = voltarena(&["leaderboard", suite.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("controllers[1] (\"oops\")") && err.contains("unknown variant `opf`"), "{err}");
    assert!(!out.join("leaderboard.json").exists());
    // An entry that fails while running is reported; the others are kept.
    std::fs::write(&suite, "name = \"bad\"\ntasks = [\"mapdn33\"]\nseeds = [1]\neval_episodes = 1\n[[controllers]]\nname = \"none\"\nkind = \"none\"\n[[controllers]]\nname = \"oops\"\nkind = \"ofo\"\nofo_config = \"/no/such.toml\"\nofo = \"nested\"\n").unwrap();
    let (code, stdout, err) = voltarena(&["leaderboard", suite.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("oops") && err.contains("/no/such.toml"), "{err}");
    assert!(stdout.contains("| none |"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(out.join("leaderboard.json")).unwrap()).unwrap();
    assert_eq!(v["entries"][0]["status"], "ok");
    std::fs::write(&suite, "name = \"bad\"\ntasks = [\"mapdn99\"]\nseeds = [1]\n[[controllers]]\nname = \"none\"\nkind = \"none\"\n").unwrap();
    let (code, _, err) = voltarena(&["leaderboard", suite.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("mapdn99"), "{err}");
    let (code, _, err) = voltarena(&["leaderboard", "--verify", "/no/such/dir"]);
    assert_eq!(code, 2);
    assert!(err.contains("/no/such/dir"), "{err}");
}

const SMALL: &str = r#"
name = "small"
tasks = ["mapdn33"]
seeds = [1, 2]
eval_episodes = 1

[[controllers]]
name = "none"
kind = "none"

[[controllers]]
name = "droop"
kind = "droop"

[[controllers]]
name = "matd3"
kind = "rl"
train = "../configs/matd3_mapdn33.toml"
set = ["total_steps=200", "learning_starts=100", "eval_every=0", "checkpoint_every=0", "matd3.batch_size=32"]
"#;

#[test]
fn slurm_array_entries_collect_to_the_local_numbers_and_run_dirs_are_reused() {
    let dir = std::env::temp_dir().join(format!("va-lb-slurm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let suite = dir.join("suite.toml");
    std::fs::write(&suite, SMALL).unwrap();
    let local = dir.join("local");
    let (code, _, err) = voltarena(&["leaderboard", suite.to_str().unwrap(), "--out", local.to_str().unwrap(), "--jobs", "2"]);
    assert_eq!(code, 0, "{err}");
    // Emission: an array over the 3 entries, a collect step, a submit script.
    let (slurm, cluster) = (dir.join("slurm"), dir.join("cluster"));
    let (code, out, err) = voltarena(&["leaderboard", suite.to_str().unwrap(), "--emit-slurm", slurm.to_str().unwrap(), "--out", cluster.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 entries"), "{out}");
    let array = std::fs::read_to_string(slurm.join("leaderboard.sbatch")).unwrap();
    assert!(array.starts_with("#!/bin/bash") && array.contains("#SBATCH --array=0-2") && array.contains("--entry \"$SLURM_ARRAY_TASK_ID\""), "{array}");
    let collect = std::fs::read_to_string(slurm.join("collect.sbatch")).unwrap();
    assert!(collect.contains("--collect"), "{collect}");
    let submit = std::fs::read_to_string(slurm.join("submit.sh")).unwrap();
    assert!(submit.contains("--dependency=afterany"), "{submit}");
    // What the array tasks run, in reverse order (tasks finish in any order), then collect.
    let copy = slurm.join("suite.toml");
    for k in ["2", "1", "0"] {
        let (code, _, err) = voltarena(&["leaderboard", copy.to_str().unwrap(), "--entry", k, "--out", cluster.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
    }
    let entry: Value = serde_json::from_str(&std::fs::read_to_string(cluster.join("entries").join("0.json")).unwrap()).unwrap();
    assert!(entry["cpu"]["model"].is_string() && entry["cpu"]["flags"].is_array(), "{entry}");
    let (code, _, err) = voltarena(&["leaderboard", copy.to_str().unwrap(), "--collect", cluster.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let read = |p: &std::path::Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p.join("leaderboard.json")).unwrap()).unwrap() };
    let (mut a, mut b) = (read(&local), read(&cluster));
    strip(&mut a);
    strip(&mut b);
    assert_eq!(a, b, "collected Slurm entries must equal the local run");
    // A missing array result is reported by name; the others are kept.
    std::fs::remove_file(cluster.join("entries").join("1.json")).unwrap();
    let (code, _, err) = voltarena(&["leaderboard", copy.to_str().unwrap(), "--collect", cluster.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("mapdn33 / droop") && err.contains("1.json"), "{err}");
    assert_eq!(read(&cluster)["entries"][0]["status"], "ok");

    // Reusing the locally trained run directories gives the same numbers without training.
    let run = |s: u32| local.join("runs/mapdn33/matd3").join(format!("seed{s}")).display().to_string();
    let reuse = format!(
        "{SMALL}\n[[controllers]]\nname = \"matd3 (reused)\"\nkind = \"rl\"\ntrain = \"../configs/matd3_mapdn33.toml\"\nset = [\"total_steps=200\", \"learning_starts=100\", \"eval_every=0\", \"checkpoint_every=0\", \"matd3.batch_size=32\"]\nruns = {{ mapdn33 = [\"{}\", \"{}\"] }}\n",
        run(1),
        run(2)
    );
    std::fs::write(&suite, &reuse).unwrap();
    let re = dir.join("reuse");
    let (code, _, err) = voltarena(&["leaderboard", suite.to_str().unwrap(), "--out", re.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v = read(&re);
    assert_eq!(v["entries"][3]["per_seed"], v["entries"][2]["per_seed"]);
    assert_eq!(v["entries"][3]["train_config_hash"], v["entries"][2]["train_config_hash"]);
    assert_eq!(v["entries"][3]["run_dirs"][0], run(1));
    // A run trained with another config is refused (hash mismatch); a missing run directory too.
    std::fs::write(&suite, reuse.replace("\"matd3.batch_size=32\"]\nruns", "\"matd3.batch_size=64\"]\nruns")).unwrap();
    let (code, _, err) = voltarena(&["leaderboard", suite.to_str().unwrap(), "--out", re.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("matd3 (reused)") && err.contains("config hash mismatch"), "{err}");
    assert_eq!(read(&re)["entries"][2]["status"], "ok", "partial results kept");
    std::fs::write(&suite, reuse.replace(&run(2), "/no/such/run")).unwrap();
    let (code, _, err) = voltarena(&["leaderboard", suite.to_str().unwrap(), "--out", re.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("/no/such/run") && err.contains("missing"), "{err}");
}

#[test]
fn a_controller_that_does_not_apply_is_na_not_an_error() {
    // Two inverters at one bus: the OFO model (one node per bus) does not apply.
    let dir = std::env::temp_dir().join(format!("va-lb-na-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let net = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/networks/mapdn_case33.json");
    let task = dir.join("double.toml");
    std::fs::write(
        &task,
        format!(
            "name = \"double\"\nnetwork = \"{}\"\nresolution_s = 180\nepisode_steps = 20\nv_min = 0.95\nv_max = 1.05\naction_scale = 0.8\n\
             [loads]\nprofiles = \"by_size\"\nhousehold = [\"H0-A\"]\ncommercial = [\"G0-A\"]\ncommercial_above_mw = 0.2\n\
             [pv]\nplacement = \"units\"\nrating = \"nominal\"\n\
             [[pv.units]]\nbus = 12\ndc_kw = 500\nprofile = \"PV1\"\n[[pv.units]]\nbus = 12\ndc_kw = 300\nprofile = \"PV2\"\n\
             [zones]\nsource = \"feeders\"\n",
            net.display()
        ),
    )
    .unwrap();
    let suite = dir.join("suite.toml");
    std::fs::write(&suite, format!("name = \"na\"\ntasks = [\"{}\"]\nseeds = [1]\neval_episodes = 1\n[[controllers]]\nname = \"none\"\nkind = \"none\"\n[[controllers]]\nname = \"nested\"\nkind = \"nested\"\n", task.display())).unwrap();
    let out = dir.join("o");
    let (code, _, err) = voltarena(&["leaderboard", suite.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "n/a is a result, not a failure: {err}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(out.join("leaderboard.json")).unwrap()).unwrap();
    assert_eq!(v["entries"][0]["status"], "ok");
    assert_eq!(v["entries"][1]["status"], "n/a");
    assert!(v["entries"][1]["message"].as_str().unwrap().contains("two inverters"), "{}", v["entries"][1]["message"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn slurm_collect_refuses_stale_entries_of_an_earlier_submission_and_emit_checks_paths_and_options() {
    let dir = std::env::temp_dir().join(format!("va-lb-stale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let suite = dir.join("suite.toml");
    let text = "name = \"stale\"\ntasks = [\"mapdn33\"]\nseeds = [1]\neval_episodes = 1\n[slurm]\naccount = \"lab\"\ntime = \"00:30:00\"\n\
                [[controllers]]\nname = \"none\"\nkind = \"none\"\n[[controllers]]\nname = \"droop\"\nkind = \"droop\"\n[[controllers]]\nname = \"nested\"\nkind = \"nested\"\n";
    std::fs::write(&suite, text).unwrap();
    let (slurm, cluster) = (dir.join("slurm"), dir.join("cluster"));
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let emit = |extra: &[&str]| {
        let mut a = vec!["leaderboard".to_string(), s(&suite), "--emit-slurm".into(), s(&slurm), "--out".into(), s(&cluster)];
        a.extend(extra.iter().map(|x| x.to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (code, out, err) = voltarena(&a);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("submission"), "{out}");
        std::fs::read_to_string(slurm.join("submission.txt")).unwrap().trim().to_string()
    };
    // sbatch options: the suite's [slurm] table, overridden by flags; requeue on preemption.
    let first = emit(&["--partition", "short", "--time", "01:00:00"]);
    let array = std::fs::read_to_string(slurm.join("leaderboard.sbatch")).unwrap();
    for line in ["#SBATCH --account=lab", "#SBATCH --partition=short", "#SBATCH --time=01:00:00", "#SBATCH --requeue", &format!("--submission {first}")] {
        assert!(array.contains(line), "{line}\n{array}");
    }
    let copy = s(&slurm.join("suite.toml"));
    let entry = |k: &str, sub: &str| {
        let (code, _, err) = voltarena(&["leaderboard", &copy, "--entry", k, "--out", &s(&cluster), "--submission", sub]);
        assert_eq!(code, 0, "{err}");
    };
    for k in ["0", "1", "2"] {
        entry(k, &first);
    }
    // A new submission whose array task 1 was cancelled: 1.json is the earlier submission's.
    let second = emit(&[]);
    assert_ne!(first, second);
    entry("0", &second);
    entry("2", &second);
    let (code, _, err) = voltarena(&["leaderboard", &copy, "--collect", &s(&cluster), "--submission", &second]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("mapdn33 / droop") && err.contains("stale") && err.contains(&first), "{err}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(cluster.join("leaderboard.json")).unwrap()).unwrap();
    assert_eq!(v["entries"][1]["status"], "missing");
    assert_eq!(v["entries"][0]["status"], "ok");
    // Emitting from a folder where the suite's relative paths do not resolve is refused, naming them.
    std::fs::write(&suite, format!("{text}[[controllers]]\nname = \"matd3\"\nkind = \"rl\"\ntrain = \"configs/matd3_mapdn33.toml\"\n")).unwrap();
    let (code, _, err) = voltarena(&["leaderboard", &s(&suite), "--emit-slurm", &s(&dir.join("slurm2")), "--out", &s(&cluster)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("matd3: configs/matd3_mapdn33.toml") && err.contains("--workdir"), "{err}");
    assert!(!dir.join("slurm2").exists(), "nothing written");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (code, _, err) = voltarena(&["leaderboard", &s(&suite), "--emit-slurm", &s(&dir.join("slurm2")), "--out", &s(&cluster), "--workdir", &s(&root)]);
    assert_eq!(code, 0, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The committed seed studies re-evaluate bit for bit from their committed policies, on whatever
/// machine runs the tests (CI's CPU may differ from the one that trained them).
#[test]
fn every_committed_seed_study_verifies() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut studies: Vec<_> = std::fs::read_dir(root.join("results")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("rl_") && p.join("leaderboard.json").exists() && p.join("runs").is_dir()).collect();
    studies.sort();
    assert!(studies.len() >= 2, "rl_mapdn33_seeds and rl_mapdn141_seeds at least: {studies:?}");
    for dir in studies {
        let out = Command::new(env!("CARGO_BIN_EXE_voltarena")).args(["leaderboard", "--verify", dir.to_str().unwrap(), "--jobs", "2"]).current_dir(root).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {err}", dir.display());
        assert!(err.contains("verified") || String::from_utf8_lossy(&out.stdout).contains("verified"), "{}: {err}", dir.display());
    }
}
