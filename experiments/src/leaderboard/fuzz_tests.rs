//! The CLI's own readers under the mutation fuzzer (grid/tests/fuzz/mod.rs): suite TOML (seeded
//! with the shipped suites), external-entry JSON (seeded with an entry of the format docs/PYTHON.md
//! gives) and the runs' metrics.csv read by `voltarena curves` (seeded with committed runs' files).
//! Refusing is fine; panicking is not.

#[path = "../../../grid/tests/fuzz/mod.rs"]
mod fuzz;

use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("va-fuzz-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join("input")
}

#[test]
fn suite_reader_never_panics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let seeds = vec![
        std::fs::read(root.join("configs/leaderboard_quick.toml")).unwrap(),
        b"name = \"s\"\ntasks = [\"mapdn33\"]\nseeds = [1, 2]\neval_episodes = 2\n[slurm]\naccount = \"a\"\ncpus_per_task = 4\n[[controllers]]\nname = \"none\"\nkind = \"none\"\n[[controllers]]\nname = \"x\"\nkind = \"external\"\nresults = \"r.json\"\n[[controllers]]\nname = \"n\"\nkind = \"nested\"\nparams = { k_inner = 10, gamma_rel = 0.99, beta_gain = 0.75, alpha_gain = 0.1 }\n".to_vec(),
    ];
    let file = scratch("suite");
    fuzz::check(fuzz::fuzz("suite_toml", &seeds, |b| {
        std::fs::write(&file, b).unwrap();
        super::suite::read_suite(&file).is_ok()
    }));
}

#[test]
fn external_entry_reader_never_panics() {
    let m = r#"{"steps": 480, "cr": 0.99, "ql": 0.05, "avv_max": 1e-4, "avv_max_bus": 17, "violation_rate": 0.01, "violation_pu_mean": 1e-3, "loss_kwh": 900.0, "q_kvarh": 4000.0, "divergences": 0}"#;
    let seed = format!(
        r#"{{"format": "voltarena-external-entry/1", "name": "p", "task": "mapdn33", "eval_episodes": 2, "protocol": "x",
 "per_seed": [{{"seed": 1, "metrics": {m}}}, {{"seed": 2, "metrics": {m}}}],
 "deployment": {{"dead_zone": 0.0}}, "communication": {{"reach": "zone", "messages_per_step": 41}}, "compute_us_per_step": 3.5, "provenance": {{}}}}"#
    );
    let file = scratch("external");
    std::fs::write(&file, &seed).unwrap();
    assert!(super::external::job(&file, "mapdn33", 2, 2).is_ok(), "the seed itself is valid");
    fuzz::check(fuzz::fuzz("external_json", &[seed.into_bytes()], |b| {
        std::fs::write(&file, b).unwrap();
        super::external::job(&file, "mapdn33", 2, 2).is_ok()
    }));
}

#[test]
fn metrics_csv_reader_never_panics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/rl_mapdn33");
    let seeds: Vec<Vec<u8>> = ["matd3", "maddpg"].iter().map(|r| std::fs::read(root.join(r).join("metrics.csv")).unwrap()).collect();
    let file = scratch("metrics");
    fuzz::check(fuzz::fuzz("metrics_csv", &seeds, |b| {
        std::fs::write(&file, b).unwrap();
        crate::curves_cmd::read_eval_rows(&file).is_ok()
    }));
}
