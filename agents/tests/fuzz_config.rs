//! The training-config reader under the mutation fuzzer (grid/tests/fuzz/mod.rs): TOML text →
//! `TrainConfig` → range checks, seeded with every shipped training config. Refusing is fine
//! (with a message naming the key); panicking is not.

#[path = "../../grid/tests/fuzz/mod.rs"]
mod fuzz;

use voltarena_agents::config::TrainConfig;

#[test]
fn train_config_reader_never_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(|c: char| c == 'm' || c == 'i'))
        .collect();
    seeds.sort();
    let seeds: Vec<Vec<u8>> = seeds.into_iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(seeds.len() >= 10);
    fuzz::check(fuzz::fuzz("train_toml", &seeds, |b| {
        let Ok(cfg) = toml::from_str::<TrainConfig>(&String::from_utf8_lossy(b)) else { return false };
        match cfg.validate() {
            Ok(()) => true,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                false
            }
        }
    }));
}
