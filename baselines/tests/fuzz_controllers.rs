//! Controller settings under the mutation fuzzer (grid/tests/fuzz/mod.rs): the `[controllers]`
//! tables of the shipped OFO configs, mutated, read into the registry, built on rural2_96 and run
//! for a few steps. Refusing bad settings (with a message naming the field) is fine; panicking is not.

#[path = "../../grid/tests/fuzz/mod.rs"]
mod fuzz;

use std::sync::Arc;
use voltarena_baselines::{ControllerSet, Faults};
use voltarena_env::{ResetOptions, Split, Task, VoltageEnv};

#[test]
fn controller_settings_never_panic() {
    let task = Arc::new(Task::builtin("rural2_96").unwrap());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut seeds: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("ofo_")).collect();
    seeds.sort();
    // Only the [controllers] part: the scenario keys belong to the baseline command.
    let seeds: Vec<Vec<u8>> = seeds
        .into_iter()
        .map(|p| {
            let t = std::fs::read_to_string(p).unwrap();
            t[t.find("[controllers").unwrap()..].as_bytes().to_vec()
        })
        .collect();
    let mut env = VoltageEnv::new(task.clone()).unwrap();
    let opts = ResetOptions { split: Split::Test, start: None, ..Default::default() };
    let mut actions = vec![0.0; env.n_agents()];
    fuzz::check(fuzz::fuzz("controllers", &seeds, |b| {
        let Ok(doc) = toml::from_str::<toml::Table>(&String::from_utf8_lossy(b)) else { return false };
        let Some(c) = doc.get("controllers").cloned() else { return false };
        let Ok(set) = c.try_into::<ControllerSet>() else { return false };
        let mut any = false;
        for name in set.names() {
            let Ok(mut ctl) = set.build(name, &task, &Faults::default()) else { continue };
            any = true;
            env.reset(3, &opts).unwrap();
            ctl.reset(&env, 3);
            for _ in 0..3 {
                ctl.act(&env, &mut actions);
                if env.step(&actions).is_err() {
                    break;
                }
            }
        }
        any
    }));
}
