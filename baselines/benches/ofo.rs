//! OFO iteration benchmarks on rural2_96 (95 controllable nodes): one outer iteration of each
//! controller (nested: K = 10 inner iterations, i.e. 20 tree sweeps), as a node-by-node message
//! passing computation on one core. The paper reports 0.93 ms per nested iteration.
//!
//! Run: `cargo bench -p voltarena-baselines --bench ofo`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use voltarena_baselines::ofo::centralized::Centralized;
use voltarena_baselines::ofo::nested::Nested;
use voltarena_baselines::ofo::tang2024::Tang2024;
use voltarena_baselines::ofo::two_metric::TwoMetric;
use voltarena_baselines::ofo::{Network, OfoController, OfoModel, StepSpec};
use voltarena_env::Task;

fn bench(c: &mut Criterion) {
    let task = Task::builtin("rural2_96").unwrap();
    let m = OfoModel::from_task(&task).unwrap();
    let n = m.len();
    let nested_spec = StepSpec { beta_rel: Some(300.0), gamma_rel: Some(0.99), alpha_gain: Some(0.7), k_inner: Some(10), ..Default::default() };
    let central_spec = StepSpec { alpha: Some(3e5), beta: Some(0.2), ..Default::default() };
    let v: Vec<f64> = (0..n).map(|i| 1.03 + 0.03 * ((i * 37 % 11) as f64 / 10.0)).collect();
    let q_max: Vec<f64> = (0..n).map(|i| 3.0 + (i % 7) as f64).collect();
    let mut ctls: Vec<Box<dyn OfoController>> = vec![
        Box::new(Nested::new(m.clone(), nested_spec.resolve(&m).unwrap(), Network::new(n, &[], 0.0, 0))),
        Box::new(Centralized::new(m.clone(), central_spec.resolve(&m).unwrap())),
        Box::new(TwoMetric::new(m.clone(), nested_spec.resolve(&m).unwrap(), Network::new(n, &[], 0.0, 0))),
        Box::new(Tang2024::new(m.clone(), central_spec.resolve(&m).unwrap(), Network::new(n, &[], 0.0, 0))),
    ];
    let mut g = c.benchmark_group("ofo_outer_iteration_rural2_96");
    for ctl in ctls.iter_mut() {
        let mut q = vec![0.0; n];
        let name = ctl.name().to_string();
        g.bench_function(name, |b| b.iter(|| ctl.step(&v, &q_max, &mut q)));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
