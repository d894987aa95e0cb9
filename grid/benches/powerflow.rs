//! Power-flow benchmarks: single solves and 1000-scenario batches on the four networks that
//! power-grid-model was timed on (docs/BENCHMARKS.md has the numbers and the comparison).
//!
//! Run: `cargo bench -p voltarena-env --bench powerflow` (add `-- NAME` to filter).
//! Scenarios: every load scaled by a factor U(0.2, 1.6) per bus (fixed LCG seed), the same
//! recipe as the pandapower reference sets; cold start for every solve, as power-grid-model's
//! batch does.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;
use voltarena_grid::powerflow::{solve_batch, Method};
use voltarena_grid::{AcOptions, AcSolver, Algorithm, Injection, LinDistFlow, LinDistFlowForm, Network, Solution};

const NETS: [&str; 4] = ["case33bw", "lv_rural2_96", "case141", "mapdn_case322"];
const BATCH: usize = 1000;

fn network(name: &str) -> Network {
    Network::from_matpower_file(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../data/networks/{name}.m"))).unwrap()
}

fn scenarios(net: &Network, count: usize) -> (Vec<f64>, Vec<f64>) {
    let (p0, q0) = net.injections();
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut p = Vec::with_capacity(count * p0.len());
    let mut q = Vec::with_capacity(count * p0.len());
    for _ in 0..count {
        for i in 0..p0.len() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let f = 0.2 + 1.4 * ((state >> 11) as f64 / (1u64 << 53) as f64);
            p.push(p0[i] * f);
            q.push(q0[i] * f);
        }
    }
    (p, q)
}

fn single(c: &mut Criterion) {
    let mut g = c.benchmark_group("single");
    for name in NETS {
        let net = network(name);
        let (p, q) = net.injections();
        let mut sol = Solution::new(net.n_bus());
        for (label, algorithm) in [("ac_radial", Algorithm::Radial), ("ac_sparse_newton", Algorithm::Newton)] {
            let mut s = AcSolver::new(&net, AcOptions { algorithm, ..Default::default() }).unwrap();
            g.bench_function(BenchmarkId::new(label, name), |b| {
                b.iter(|| s.solve(black_box(Injection { p_mw: &p, q_mvar: &q }), &mut sol).unwrap())
            });
        }
        let mut ldf = LinDistFlow::new(&net, LinDistFlowForm::Linear).unwrap();
        g.bench_function(BenchmarkId::new("lindistflow", name), |b| {
            b.iter(|| ldf.solve(black_box(Injection { p_mw: &p, q_mvar: &q }), &mut sol).unwrap())
        });
    }
    g.finish();
}

fn batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch1000");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BATCH as u64));
    for name in NETS {
        let net = network(name);
        let (p, q) = scenarios(&net, BATCH);
        for threads in [1, 2] {
            g.bench_function(BenchmarkId::new(format!("ac_{threads}thread"), name), |b| {
                b.iter(|| {
                    let out = solve_batch(&net, Method::Ac(AcOptions::default()), &p, &q, threads).unwrap();
                    assert!(out.converged.iter().all(|c| *c));
                    out
                })
            });
        }
        g.bench_function(BenchmarkId::new("lindistflow_1thread", name), |b| {
            b.iter(|| solve_batch(&net, Method::LinDistFlow(LinDistFlowForm::Linear), &p, &q, 1).unwrap())
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = single, batch
}
criterion_main!(benches);
