//! Safety-layer time per step: projection filter and CBF on mapdn322 (38 agents, 321 monitored
//! buses) and mapdn33, for random (mostly unsafe) proposals. Run: `cargo bench -p voltarena-env --bench safety`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use std::time::Duration;
use voltarena_env::safety::{SafetyConfig, SafetyKind, SafetyLayer};
use voltarena_env::{ResetOptions, Split, Task, VoltageEnv};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("safety_filter");
    for name in ["mapdn33", "mapdn322"] {
        let task = Arc::new(Task::builtin(name).unwrap());
        let mut env = VoltageEnv::new(task.clone()).unwrap();
        env.reset(3, &ResetOptions { split: Split::Test, ..Default::default() }).unwrap();
        let n = env.n_agents();
        let props: Vec<Vec<f64>> = (0..16).map(|j| (0..n).map(|k| (((k * 7 + j * 3) % 11) as f64 / 5.0) - 1.0).collect()).collect();
        for kind in [SafetyKind::Projection, SafetyKind::Cbf] {
            let mut layer = SafetyLayer::new(&task, SafetyConfig { kind, ..Default::default() }).unwrap();
            let mut out = vec![0.0; n];
            let mut j = 0;
            g.bench_function(format!("{kind:?}/{name}"), |b| {
                b.iter(|| {
                    j = (j + 1) % 16;
                    layer.filter(&env, &props[j], &mut out)
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
