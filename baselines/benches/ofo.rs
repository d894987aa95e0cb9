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

/// The whole dynamic case: 7200 outer iterations (4 h at one every 2 s) of the nested controller
/// against the AC plant (radial Newton), through the environment — data, power flow, metrics.
fn dynamic_4h(c: &mut Criterion) {
    use std::sync::Arc;
    use voltarena_baselines::spec::{ControllerSet, Faults};
    use voltarena_env::task::DataNoise;
    use voltarena_env::{ResetOptions, Split, VoltageEnv};
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/ofo_rural2_dynamic.toml")).unwrap();
    let doc: toml::Value = toml::from_str(&text).unwrap();
    let set: ControllerSet = doc["controllers"].clone().try_into().unwrap();
    let mut spec = Task::builtin("rural2_96").unwrap().spec;
    spec.resolution_s = 2;
    spec.episode_steps = 7200;
    spec.noise.data = DataNoise::None;
    let task = Arc::new(Task::build(spec, "bench", None).unwrap());
    let opts = ResetOptions { split: Split::Test, data_noise: Some(false), start: Some((181 * 86_400 + 10 * 3600) / 2), hold_data: false };
    let mut g = c.benchmark_group("dynamic_4h_rural2_96_ac");
    g.sample_size(10);
    for name in ["none", "nested", "centralized"] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut env = VoltageEnv::new(task.clone()).unwrap();
                env.reset(0, &opts).unwrap();
                let mut ctl = set.build(name, &task, &Faults::default()).unwrap();
                ctl.reset(&env, 0);
                let mut a = vec![0.0; env.n_agents()];
                for _ in 0..7200 {
                    ctl.act(&env, &mut a);
                    env.step(&a).unwrap();
                }
                env.episode_metrics().loss_kwh
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench, dynamic_4h
}
criterion_main!(benches);
