//! Training numbers do not depend on the kernels the CPU would pick: `voltarena` pins libtorch's,
//! MKL's and oneDNN's instruction sets itself (voltarena_agents::numerics), so a run started with
//! any `ATEN_CPU_CAPABILITY` / `MKL_CBWR` in its environment gives the same metrics.csv — and, as a
//! check that the test can fail, the unpinned program (`VOLTARENA_NUMERICS=native`) does not.

use std::path::Path;
use std::process::Command;

/// Trains a tiny MADDPG run with extra environment variables; returns metrics.csv.
fn train_with(env: &[(&str, &str)], tag: &str) -> String {
    let runs = std::env::temp_dir().join(format!("va-numerics-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&runs);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voltarena"));
    cmd.args([
        "train", "../configs/maddpg_l1_mapdn33.toml", "--runs-dir", runs.to_str().unwrap(), "--seed", "3",
        "--set", "total_steps=960", "--set", "learning_starts=480", "--set", "eval_every=480", "--set", "eval_episodes=2",
        "--set", "checkpoint_every=0",
    ])
    .current_dir(env!("CARGO_MANIFEST_DIR"))
    .env_remove("VOLTARENA_NUMERICS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{tag}: {}", String::from_utf8_lossy(&out.stderr));
    let run = String::from_utf8(out.stdout).unwrap();
    let csv = std::fs::read_to_string(Path::new(run.trim()).join("metrics.csv")).unwrap();
    let _ = std::fs::remove_dir_all(&runs);
    // Losses are logged with 6 digits; compare the whole rows.
    csv
}

#[test]
fn training_numbers_do_not_depend_on_the_cpu_kernels_in_the_environment() {
    let pinned = train_with(&[], "plain");
    for (tag, env) in [
        ("default", vec![("ATEN_CPU_CAPABILITY", "default"), ("MKL_CBWR", "COMPATIBLE")]),
        ("avx2", vec![("ATEN_CPU_CAPABILITY", "avx2")]),
        ("avx512", vec![("ATEN_CPU_CAPABILITY", "avx512"), ("MKL_ENABLE_INSTRUCTIONS", "AVX512")]),
    ] {
        assert_eq!(train_with(&env, tag), pinned, "{tag}: metrics.csv differs");
    }
    // Without the pinning the portable kernels give other numbers: the pinning is what holds. (A CPU
    // without AVX2 is pinned to the portable kernels themselves.)
    #[cfg(target_arch = "x86_64")]
    if !std::arch::is_x86_feature_detected!("avx2") {
        return;
    }
    let native_default = train_with(&[("VOLTARENA_NUMERICS", "native"), ("ATEN_CPU_CAPABILITY", "default"), ("MKL_CBWR", "COMPATIBLE")], "native");
    assert_ne!(native_default, pinned, "the kernel choice is visible in the numbers when not pinned");
}
