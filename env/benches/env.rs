//! Environment step benchmarks (single thread): data row, actions, power flow, reward, metrics,
//! observations and state — everything `VoltageEnv::step` does. docs/BENCHMARKS.md has the numbers
//! next to MAPDN's measured 76 / 61 / 75 ms per step (+ 8 / 29 / 49 ms observation).
//!
//! Run: `cargo bench -p voltarena-env --bench env`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::sync::Arc;
use std::time::Duration;
use voltarena_env::task::Backend;
use voltarena_env::{ResetOptions, Split, Task, VoltageEnv};

fn step(c: &mut Criterion) {
    let mut g = c.benchmark_group("env_step");
    for name in ["mapdn33", "mapdn141", "mapdn322", "rural2_96"] {
        let task = Arc::new(Task::builtin(name).unwrap());
        for (label, backend) in [("ac", Backend::Ac), ("lindistflow", Backend::Lindistflow)] {
            let mut env = VoltageEnv::with_backend(task.clone(), backend).unwrap();
            let opts = ResetOptions { split: Split::Test, ..Default::default() };
            let mut seed = 0;
            env.reset(seed, &opts).unwrap();
            // Moderate, varying actions (a fixed pattern keeps the comparison across runs exact).
            let n = env.n_agents();
            let patterns: Vec<Vec<f64>> = (0..8).map(|j| (0..n).map(|k| (((k + j) % 5) as f64 - 2.0) * 0.1).collect()).collect();
            let mut j = 0;
            g.bench_function(BenchmarkId::new(label, name), |b| {
                b.iter(|| {
                    j = (j + 1) % 8;
                    let s = env.step(&patterns[j]).unwrap();
                    if s.terminated || s.truncated {
                        seed += 1;
                        env.reset(seed, &opts).unwrap();
                    }
                    s.reward
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = step
}
criterion_main!(benches);
