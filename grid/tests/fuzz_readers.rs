//! The network readers under the mutation fuzzer (tests/fuzz/mod.rs): MATPOWER `.m` text and the
//! detailed JSON networks, seeded with every shipped network. Refusing is fine; panicking is not.

mod fuzz;

use voltarena_grid::Network;

fn seeds(ext: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/networks");
    let mut v: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == ext)).collect();
    v.sort();
    v.into_iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn matpower_reader_never_panics() {
    fuzz::check(fuzz::fuzz("matpower", &seeds("m"), |b| Network::from_matpower_str(&String::from_utf8_lossy(b), "fuzz").is_ok()));
}

#[test]
fn json_network_reader_never_panics() {
    // The large networks make slow seeds; the small and medium ones cover the format.
    let s: Vec<Vec<u8>> = seeds("json").into_iter().filter(|b| b.len() < 150_000).collect();
    fuzz::check(fuzz::fuzz("json_network", &s, |b| Network::from_json_str(&String::from_utf8_lossy(b)).is_ok()));
}
