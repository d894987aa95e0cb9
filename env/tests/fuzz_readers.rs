//! The task and profile readers under the mutation fuzzer (grid/tests/fuzz/mod.rs): task TOML
//! (seeded with every shipped task; an accepted task is also built into an environment, reset and
//! stepped) and profile CSV (seeded with the first day of the shipped SimBench files). Refusing is
//! fine; panicking is not.

#[path = "../../grid/tests/fuzz/mod.rs"]
mod fuzz;

use std::io::Read;
use std::sync::Arc;
use voltarena_env::profiles::Profiles;
use voltarena_env::{ResetOptions, Task, VoltageEnv};

#[test]
fn task_reader_never_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/tasks");
    let mut seeds: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    seeds.sort();
    let seeds: Vec<Vec<u8>> = seeds.into_iter().map(|p| std::fs::read(p).unwrap()).collect();
    fuzz::check(fuzz::fuzz("task_toml", &seeds, |b| {
        let Ok(task) = Task::from_toml(&String::from_utf8_lossy(b), "fuzz", None) else { return false };
        if task.spec.episode_steps > 10_000 || task.network.n_bus() > 2_000 {
            return true; // accepted; too large to step inside the fuzz budget
        }
        let Ok(mut env) = VoltageEnv::new(Arc::new(task)) else { return true };
        if env.reset(0, &ResetOptions::default()).is_ok() {
            let a = vec![0.5; env.n_agents()];
            for _ in 0..3 {
                if env.step(&a).is_err() {
                    break;
                }
            }
        }
        true
    }));
}

#[test]
fn profile_reader_never_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/profiles");
    let seeds: Vec<Vec<u8>> = ["simbench2016_pv_15min.csv.gz", "simbench2016_load_15min.csv.gz"]
        .iter()
        .map(|f| {
            let mut text = String::new();
            flate2::read::GzDecoder::new(std::fs::File::open(dir.join(f)).unwrap()).read_to_string(&mut text).unwrap();
            // The first day and a half, six columns: small enough to mutate quickly.
            text.lines().take(150).map(|l| l.split(',').take(6).collect::<Vec<_>>().join(",")).collect::<Vec<_>>().join("\n").into_bytes()
        })
        .collect();
    fuzz::check(fuzz::fuzz("profile_csv", &seeds, |b| {
        let mut p = Profiles::default();
        p.add_csv(b, std::path::Path::new("fuzz.csv")).is_ok()
    }));
}

/// What the long fuzz runs found, kept as regressions: an infinite PV size bound panicked inside
/// the uniform draw of the sizes (docs/FUZZING.md).
#[test]
fn non_finite_numbers_are_refused_naming_the_key() {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/tasks/rural2_96.toml")).unwrap();
    for (from, to, key) in [("dc_kw_max = 10.0", "dc_kw_max = inf", "pv.dc_kw_max"), ("v_max = 1.05", "v_max = nan", "v_max")] {
        assert!(text.contains(from), "{from}");
        let e = Task::from_toml(&text.replace(from, to), "t.toml", None).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains("finite"), "{e}");
    }
}
