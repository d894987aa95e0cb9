//! One learner update (critic + delayed actor + targets) at the MAPDN-33 size: 6 agents, obs 50,
//! state 144, batch 256, twin 128×128 critics — with one intra-op thread (the training default).
//! Run: `cargo bench -p voltarena-agents --bench update` (pinned numerics, as training;
//! `VOLTARENA_NUMERICS=native cargo bench ...` for libtorch's own kernel choice).

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use voltarena_agents::buffer::ReplayBuffer;
use voltarena_agents::maddpg::{Maddpg, MaddpgConfig};
use voltarena_agents::matd3::{Matd3, Matd3Config};

fn bench(c: &mut Criterion) {
    use rand::SeedableRng;
    // The pinned numerics training runs with (VOLTARENA_NUMERICS=native measures the unpinned kernels).
    voltarena_agents::numerics::pin();
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let (n, od, sd) = (6, 50, 144);
    let mut buf = random_buffer(10_000, n, od, sd, 0);
    let mut srng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut matd3 = Matd3::new(Matd3Config::default(), n, od, sd, 0).unwrap();
    let mut maddpg = Maddpg::new(MaddpgConfig::default(), n, od, sd, 0).unwrap();
    // The GRU actor reads [o ‖ h] (hidden 64) from the buffer.
    let hd = 64;
    let mut gbuf = random_buffer(10_000, n, od + hd, sd, 2);
    let mut matd3_gru = Matd3::new(Matd3Config { actor_gru: true, ..Matd3Config::default() }, n, od, sd, 0).unwrap();
    // The independent ablation (ITD3): one local critic row per agent and sample (6 × 256 rows).
    let local = voltarena_agents::nets::CriticKind::Local;
    let mut itd3 = Matd3::new(Matd3Config { critic: local, ..Matd3Config::default() }, n, od, sd, 0).unwrap();
    let mut g = c.benchmark_group("update_6agents_batch256");
    g.bench_function("itd3 local critics (sample + update)", |b| b.iter(|| itd3.update(&buf.sample(256, &mut srng))));
    g.bench_function("matd3 gru actor (sample + update)", |b| b.iter(|| matd3_gru.update(&gbuf.sample(256, &mut srng))));
    g.bench_function("matd3 (sample + update)", |b| b.iter(|| matd3.update(&buf.sample(256, &mut srng))));
    g.bench_function("maddpg (sample + update)", |b| b.iter(|| maddpg.update(&buf.sample(256, &mut srng))));
    g.bench_function("replay sample only", |b| b.iter(|| buf.sample(256, &mut srng).reward.size()));
    g.finish();
    // MATD3 at the sizes of the larger feeders: how an update grows with the number of agents.
    let mut g = c.benchmark_group("matd3_update_by_task_batch256");
    g.sample_size(10);
    for task in ["mapdn33", "mapdn141", "mapdn322", "rural2_96_midday"] {
        let (n, od, sd, mut buf) = task_buffer(task);
        let mut m = Matd3::new(Matd3Config::default(), n, od, sd, 0).unwrap();
        g.bench_function(format!("{task} ({n} agents, obs {od}, state {sd})"), |b| b.iter(|| m.update(&buf.sample(256, &mut srng))));
        // The factored critic V(s) + mean_k U(o_k, a_k): B·n utility rows, as the shared actor's.
        let factored = voltarena_agents::nets::CriticKind::Factored;
        for hidden in [128, 64] {
            let mut m = Matd3::new(Matd3Config { critic: factored, critic_hidden: hidden, ..Matd3Config::default() }, n, od, sd, 0).unwrap();
            g.bench_function(format!("{task} factored critic {hidden}"), |b| b.iter(|| m.update(&buf.sample(256, &mut srng))));
        }
    }
    g.finish();
    // MADDPG at the sizes of the larger feeders, with the critic each shipped MADDPG default uses
    // (configs/maddpg_*.toml: factored 64 on mapdn141 and mapdn322, centralised 128 elsewhere).
    let mut g = c.benchmark_group("maddpg_update_by_task_batch256");
    g.sample_size(10);
    for (task, critic, hidden) in [
        ("mapdn33", voltarena_agents::nets::CriticKind::Centralized, 128),
        ("mapdn141", voltarena_agents::nets::CriticKind::Factored, 64),
        ("mapdn322", voltarena_agents::nets::CriticKind::Factored, 64),
        ("rural2_96_midday", voltarena_agents::nets::CriticKind::Centralized, 128),
    ] {
        let (n, od, sd, mut buf) = task_buffer(task);
        let mut m = Maddpg::new(MaddpgConfig { critic, critic_hidden: hidden, ..MaddpgConfig::default() }, n, od, sd, 0).unwrap();
        g.bench_function(format!("{task} ({n} agents, {critic:?} critic {hidden})"), |b| b.iter(|| m.update(&buf.sample(256, &mut srng))));
    }
    g.finish();
}

/// A replay buffer full of `len` transitions of uniform values in [−1, 1) for `n` agents with
/// observation width `od` and state width `sd`, drawn from ChaCha8 seeded with `seed`.
fn random_buffer(len: usize, n: usize, od: usize, sd: usize, seed: u64) -> ReplayBuffer {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut buf = ReplayBuffer::new(len, n, od, sd);
    let mut r = |k: usize| (0..k).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>();
    for _ in 0..len {
        let (o, s, a, o2, s2, rew) = (r(n * od), r(sd), r(n), r(n * od), r(sd), r(1));
        buf.push(&o, &s, &a, rew[0], &o2, &s2, false);
    }
    buf
}

/// A random replay buffer of 1 000 transitions at `task`'s sizes, and those sizes (agents,
/// observation width, state width).
fn task_buffer(task: &str) -> (usize, usize, usize, ReplayBuffer) {
    let t = voltarena_env::Task::load(task).unwrap();
    let (n, od, sd) = (t.n_agents(), t.obs_dim(), t.state_dim());
    (n, od, sd, random_buffer(1_000, n, od, sd, 3))
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
