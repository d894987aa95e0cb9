//! The learning mechanisms on small problems, in seconds: critic regression, soft updates, target
//! smoothing, checkpoints, determinism of a whole (tiny) training run.

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};
use voltarena_agents::buffer::ReplayBuffer;
use voltarena_agents::maddpg::{Maddpg, MaddpgConfig};
use voltarena_agents::matd3::{Matd3, Matd3Config};
use voltarena_agents::nets::soft_update;
use voltarena_agents::train::{Logger, TrainConfig, Trainer};
use voltarena_env::MetricsSummary;

/// libtorch's generator is process-global: tests that create networks take turns.
static TORCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn torch_lock() -> std::sync::MutexGuard<'static, ()> {
    TORCH.lock().unwrap_or_else(|e| e.into_inner())
}

const N: usize = 3;
const OD: usize = 5;
const SD: usize = 7;

fn filled_buffer(seed: u64) -> ReplayBuffer {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut b = ReplayBuffer::new(512, N, OD, SD);
    let mut r = |k: usize| (0..k).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>();
    for i in 0..512 {
        let (o, s, a, o2, s2) = (r(N * OD), r(SD), r(N), r(N * OD), r(SD));
        // A learnable reward: a fixed function of state and actions.
        let reward = s[0] - 0.5 * a.iter().map(|x| x * x).sum::<f32>();
        b.push(&o, &s, &a, reward, &o2, &s2, i % 50 == 49);
    }
    b
}

/// Saves the trainer into a fresh folder and checks that the policy deployed from it evaluates
/// exactly as the trainer's greedy policy on `episodes` test episodes; returns the folder and the
/// metrics.
fn deployed_acts_as_trained(t: &mut Trainer, cfg: &TrainConfig, tag: &str, episodes: usize) -> (std::path::PathBuf, MetricsSummary) {
    let dir = std::env::temp_dir().join(format!("va-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    t.save(&dir).unwrap();
    let task = t.task.clone();
    let policy = voltarena_agents::policy::RlPolicy::load(cfg, &dir, task.n_agents(), task.obs_dim(), task.state_dim()).unwrap();
    let mut deployed = voltarena_env::Deployed::new(Box::new(policy), &task, cfg.deployment()).unwrap();
    let (_, via_trainer) = t.evaluate(voltarena_env::Split::Test, episodes, 0).unwrap();
    let (_, via_policy) = voltarena_agents::train::evaluate(&task, &mut deployed, voltarena_env::Split::Test, episodes, 0).unwrap();
    assert_eq!(via_trainer, via_policy, "{tag}: the deployed policy acts as the trainer's");
    (dir, via_policy)
}

#[test]
fn critic_loss_falls_on_a_fixed_batch() {
    let _guard = torch_lock();
    use rand::SeedableRng;
    tch::manual_seed(0);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let batch = filled_buffer(2).sample(256, &mut rng);
    let mut m = Matd3::new(Matd3Config { gamma: 0.0, ..Default::default() }, N, OD, SD, 0).unwrap();
    let first = m.update(&batch).critic_loss;
    let mut last = first;
    for _ in 0..300 {
        last = m.update(&batch).critic_loss;
    }
    assert!(last < 0.2 * first, "MATD3 critic loss {first} -> {last}");
    let mut d = Maddpg::new(MaddpgConfig { gamma: 0.0, ..Default::default() }, N, OD, SD, 0).unwrap();
    let first = d.update(&batch).critic_loss;
    for _ in 0..300 {
        last = d.update(&batch).critic_loss;
    }
    assert!(last < 0.2 * first, "MADDPG critic loss {first} -> {last}");
    // The independent ablations (local critics on own observation and action) learn too.
    use voltarena_agents::nets::CriticKind;
    let mut m = Matd3::new(Matd3Config { gamma: 0.0, critic: CriticKind::Local, ..Default::default() }, N, OD, SD, 0).unwrap();
    let first = m.update(&batch).critic_loss;
    for _ in 0..300 {
        last = m.update(&batch).critic_loss;
    }
    assert!(last < 0.5 * first, "ITD3 critic loss {first} -> {last}");
    let mut d = Maddpg::new(MaddpgConfig { gamma: 0.0, critic: CriticKind::Local, ..Default::default() }, N, OD, SD, 0).unwrap();
    let first = d.update(&batch).critic_loss;
    for _ in 0..300 {
        last = d.update(&batch).critic_loss;
    }
    assert!(last < 0.5 * first, "IDDPG critic loss {first} -> {last}");
}

/// `matd3.actor_bc` (TD3+BC): the behaviour term pulls the actor towards the replay's actions —
/// with the batch's actions all 0.9, thirty updates leave μ far closer to 0.9 with β = 10 than
/// without it, and closer than where it started.
#[test]
fn behaviour_regularisation_pulls_the_actor_towards_the_replays_actions() {
    let _guard = torch_lock();
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let batch = filled_buffer(2).sample(256, &mut rng);
    let batch = voltarena_agents::buffer::Batch { actions: Tensor::full([256, N as i64], 0.9, (Kind::Float, Device::Cpu)), ..batch };
    let dist = |m: &Matd3| (m.actor().forward(&batch.obs) - 0.9).square().mean(Kind::Float).double_value(&[]);
    let run = |bc: f64| {
        tch::manual_seed(0);
        let mut m = Matd3::new(Matd3Config { gamma: 0.0, policy_delay: 1, actor_lr: 1e-3, actor_bc: bc, ..Default::default() }, N, OD, SD, 0).unwrap();
        let start = dist(&m);
        for _ in 0..30 {
            m.update(&batch);
        }
        (start, dist(&m))
    };
    let ((start, plain), (_, bc)) = (run(0.0), run(10.0));
    assert!(bc < 0.5 * plain && bc < 0.8 * start, "mean (μ − 0.9)²: start {start}, after β 0 {plain}, after β 10 {bc}");
    let bad = Matd3Config { actor_bc: -1.0, ..Default::default() };
    assert!(bad.validate().unwrap_err().to_string().contains("actor_bc"));
}

#[test]
fn local_critic_inputs_are_one_row_per_agent() {
    use voltarena_agents::nets::CriticKind;
    let _guard = torch_lock();
    let obs = Tensor::arange((2 * N * OD) as i64, (Kind::Float, Device::Cpu)).view([2, N as i64, OD as i64]);
    let state = Tensor::zeros([2, SD as i64], (Kind::Float, Device::Cpu));
    let actions = Tensor::from_slice(&[0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6]).view([2, N as i64]);
    let (s, a) = CriticKind::Local.inputs(&obs, &state, &actions);
    assert_eq!(s.size(), vec![2 * N as i64, (OD + N) as i64]);
    assert_eq!(a.size(), vec![2 * N as i64, 1]);
    // Row (b = 1, k = 2): its own observation, its one-hot id, its own action.
    let row = 1 * N as i64 + 2;
    assert_eq!(s.double_value(&[row, 0]), obs.double_value(&[1, 2, 0]));
    assert_eq!(s.double_value(&[row, OD as i64 + 2]), 1.0);
    assert_eq!(s.double_value(&[row, OD as i64]), 0.0);
    assert!((a.double_value(&[row, 0]) - 0.6).abs() < 1e-7);
    let r = Tensor::from_slice(&[1.0f32, 2.0]).view([2, 1]);
    let rows = CriticKind::Local.rows(&r, N as i64);
    assert_eq!(rows.double_value(&[row, 0]), 2.0);
    assert_eq!(rows.double_value(&[N as i64 - 1, 0]), 1.0);
}

#[test]
fn soft_update_is_the_convex_combination() {
    let _guard = torch_lock();
    tch::manual_seed(3);
    let online = nn::VarStore::new(Device::Cpu);
    let _a = nn::linear(online.root() / "l", 4, 3, Default::default());
    let mut target = nn::VarStore::new(Device::Cpu);
    let _b = nn::linear(target.root() / "l", 4, 3, Default::default());
    let before: Vec<(String, Tensor)> = target.variables().into_iter().map(|(k, v)| (k, v.copy())).collect();
    soft_update(&mut target, &online, 0.1);
    let on = online.variables();
    let after = target.variables();
    for (k, old) in before {
        let expect = &on[&k] * 0.1 + &old * 0.9;
        let diff = (&after[&k] - expect).abs().max().double_value(&[]);
        assert!(diff < 1e-7, "{k}: {diff}");
    }
}

#[test]
fn target_smoothing_stays_within_its_bounds() {
    let _guard = torch_lock();
    tch::manual_seed(4);
    let cfg = Matd3Config { target_noise: 0.5, target_noise_clip: 0.3, ..Default::default() };
    let m = Matd3::new(cfg, N, OD, SD, 0).unwrap();
    let obs = Tensor::randn([1000, N as i64, OD as i64], (Kind::Float, Device::Cpu)) * 3.0;
    let mu = m.target_actions(&obs);
    let a = m.smoothed_target_actions(&obs);
    let dev = (&a - &mu).abs().max().double_value(&[]);
    assert!(dev <= 0.3 + 1e-6, "noise beyond its clip: {dev}");
    assert!(a.abs().max().double_value(&[]) <= 1.0 + 1e-6);
    assert!(dev > 0.05, "smoothing noise is present");
}

#[test]
fn checkpoint_round_trip_gives_the_same_actions() {
    let _guard = torch_lock();
    tch::manual_seed(5);
    let dir = std::env::temp_dir().join(format!("va-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut m = Matd3::new(Matd3Config::default(), N, OD, SD, 0).unwrap();
    use rand::SeedableRng;
    let batch = filled_buffer(6).sample(64, &mut rand_chacha::ChaCha8Rng::seed_from_u64(7));
    for _ in 0..5 {
        m.update(&batch);
    }
    m.save(&dir).unwrap();
    tch::manual_seed(99);
    let mut other = Matd3::new(Matd3Config::default(), N, OD, SD, 0).unwrap();
    let obs: Vec<f32> = (0..N * OD).map(|i| (i as f32 * 0.37).sin()).collect();
    let (mut a, mut b) = (vec![0.0; N], vec![0.0; N]);
    m.act(&obs, N, &mut a);
    other.act(&obs, N, &mut b);
    assert_ne!(a, b, "different initialisations act differently");
    other.load(&dir, 5).unwrap();
    other.act(&obs, N, &mut b);
    assert_eq!(a, b);
    let q = |x: &Matd3| x.q1(&batch.obs, &batch.state, &batch.actions).sum(Kind::Double).double_value(&[]);
    assert_eq!(q(&m), q(&other));
    let _ = nn::seq().forward(&Tensor::zeros([1], (Kind::Float, Device::Cpu)));
}

struct Record(Vec<(usize, f64, MetricsSummary)>);
impl Logger for Record {
    fn train_episode(&mut self, _: usize, _: usize, _: f64, _: &MetricsSummary) {}
    fn update(&mut self, _: usize, _: &voltarena_agents::matd3::UpdateInfo) {}
    fn eval(&mut self, step: usize, r: f64, m: &MetricsSummary) {
        self.0.push((step, r, m.clone()));
    }
    fn checkpoint(&mut self, _: &Trainer) -> Result<(), String> {
        Ok(())
    }
}

fn tiny(algorithm: &str, seed: u64) -> Vec<(usize, f64, MetricsSummary)> {
    let cfg: TrainConfig = toml::from_str(&format!(
        "task = \"mapdn33\"\nalgorithm = \"{algorithm}\"\nseed = {seed}\ntotal_steps = 500\nlearning_starts = 200\n\
         eval_every = 250\neval_episodes = 1\ncheckpoint_every = 0\n[matd3]\nbatch_size = 32\n[maddpg]\nbatch_size = 32\n"
    ))
    .unwrap();
    let mut t = Trainer::new(cfg).unwrap();
    let mut log = Record(Vec::new());
    t.run(&mut log).unwrap();
    log.0
}

#[test]
fn same_seed_same_run_in_deterministic_mode() {
    let _guard = torch_lock();
    for alg in ["matd3", "maddpg"] {
        let a = tiny(alg, 11);
        let b = tiny(alg, 11);
        assert_eq!(a.len(), 2);
        assert_eq!(a, b, "{alg}: two runs with one seed differ");
        let c = tiny(alg, 12);
        assert_ne!(a.iter().map(|x| x.1).collect::<Vec<_>>(), c.iter().map(|x| x.1).collect::<Vec<_>>());
    }
}

#[test]
fn a_safety_layer_acts_during_training_and_evaluation() {
    let _guard = torch_lock();
    let cfg: TrainConfig = toml::from_str(
        "task = \"mapdn33\"\nalgorithm = \"matd3\"\nseed = 2\ntotal_steps = 300\nlearning_starts = 300\n\
         eval_every = 0\ncheckpoint_every = 0\n[safety]\nkind = \"projection\"\n",
    )
    .unwrap();
    let mut t = Trainer::new(cfg).unwrap();
    let mut log = Record(Vec::new());
    t.run(&mut log).unwrap();
    // Random warm-up actions violate often; the layer must have stepped in.
    assert!(t.safety_interventions > 30, "{} interventions", t.safety_interventions);
    let (_, with) = t.evaluate(voltarena_env::Split::Test, 1, 0).unwrap();
    assert!(with.cr >= 0.0 && with.steps == 240);
}

#[test]
fn running_normalisation_matches_direct_statistics() {
    use voltarena_agents::normalize::{Normalizer, RunningNorm};
    // Rows of 2 features; the running mean/variance equal the two-pass ones.
    let rows: Vec<[f32; 2]> = (0..200).map(|i| [(i as f32 * 0.7).sin() * 3.0 + 5.0, (i % 7) as f32 - 1.0]).collect();
    let mut n = RunningNorm::new(2);
    for r in &rows {
        n.update(r);
    }
    for j in 0..2 {
        let mean = rows.iter().map(|r| r[j] as f64).sum::<f64>() / 200.0;
        let var = rows.iter().map(|r| (r[j] as f64 - mean).powi(2)).sum::<f64>() / 200.0;
        assert!((n.mean[j] - mean).abs() < 1e-9 && (n.std(j) - var.sqrt()).abs() < 1e-9);
    }
    let mut x = [rows[3][0], rows[3][1]];
    n.apply(&mut x);
    assert!((x[0] as f64 - (rows[3][0] as f64 - n.mean[0]) / n.std(0)).abs() < 1e-5);
    // Off = identity; reward scaling keeps the sign.
    let mut r = [-2.0f32, 3.0];
    Normalizer::default().reward(&mut r);
    assert_eq!(r, [-2.0, 3.0]);
    let mut on = Normalizer::new(false, true, 2, 2, 0.99);
    for i in 0..100 {
        on.observe_reward(-1.0 - (i % 3) as f64, i % 20 == 19);
    }
    on.reward(&mut r);
    assert!(r[0] < 0.0 && r[1] > 0.0 && r[0] != -2.0);
}

#[test]
fn a_normalised_run_checkpoints_its_statistics_and_deploys_with_them() {
    let _guard = torch_lock();
    let text = "task = \"mapdn33\"\nalgorithm = \"matd3\"\nseed = 4\ntotal_steps = 400\nlearning_starts = 200\n\
                eval_every = 0\ncheckpoint_every = 0\nnormalize_obs = true\nnormalize_reward = true\n[matd3]\nbatch_size = 32\n";
    let cfg: TrainConfig = toml::from_str(text).unwrap();
    let mut t = Trainer::new(cfg.clone()).unwrap();
    t.run(&mut Record(Vec::new())).unwrap();
    let stats = t.norm.obs.clone().unwrap();
    assert_eq!(stats.count, (400 * 6) as f64, "one row per agent per step");
    // The deployed policy acts as the trainer's greedy policy does (same normalised inputs).
    let (dir, _) = deployed_acts_as_trained(&mut t, &cfg, "norm", 1);
    let task = t.task.clone();
    // A run that normalises cannot be deployed without its statistics.
    std::fs::remove_file(dir.join("normalizer.json")).unwrap();
    let err = voltarena_agents::policy::RlPolicy::load(&cfg, &dir, task.n_agents(), task.obs_dim(), task.state_dim()).err().unwrap().to_string();
    assert!(err.contains("normalizer.json"), "{err}");
    // A resumed trainer restores them (exactly, from the resumable checkpoint), and its replay
    // buffer.
    let replay = dir.join("replay");
    t.save_resumable(&dir, &replay, b"logger").unwrap();
    let mut r = Trainer::new(cfg).unwrap();
    assert_eq!(r.resume(&dir, &replay).unwrap().as_deref(), Some(&b"logger"[..]));
    assert_eq!(r.norm.obs.as_ref().unwrap(), &stats);
    assert_eq!(r.norm, t.norm);
    assert_eq!((r.buffer().len(), r.buffer().pushed()), (t.buffer().len(), t.buffer().pushed()));
    assert_eq!(r.buffer().actions(), t.buffer().actions());
}

#[test]
fn every_shipped_training_config_parses_and_names_a_task() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        if text.lines().any(|l| l.starts_with("algorithm")) {
            let cfg: TrainConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            voltarena_env::Task::load(&cfg.task).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n >= 9, "{n} training configs");
}

#[test]
fn the_recurrent_actor_remembers_and_deploys_as_trained() {
    let _guard = torch_lock();
    tch::manual_seed(3);
    // The GRU actor: the same observation with another hidden state acts differently, and the
    // state it returns is the one it reads next.
    let vs = nn::VarStore::new(Device::Cpu);
    let actor = voltarena_agents::nets::Actor::new_gru(&vs.root(), OD, N, 8);
    assert_eq!(actor.hidden_dim(), 8);
    let o = Tensor::rand([1, N as i64, OD as i64], (Kind::Float, Device::Cpu));
    let h0 = Tensor::zeros([1, N as i64, 8], (Kind::Float, Device::Cpu));
    let (a0, h1) = actor.forward_hidden(&Tensor::cat(&[&o, &h0], 2));
    let (a1, h2) = actor.forward_hidden(&Tensor::cat(&[&o, &h1], 2));
    assert!(f64::try_from((&a0 - &a1).abs().max()).unwrap() > 1e-6, "memory changes the action");
    assert!(f64::try_from((&h1 - &h2).abs().max()).unwrap() > 1e-6);
    // A tiny recurrent MATD3 run: deterministic, checkpointed, and the deployed policy (which keeps
    // its own hidden state and resets it each episode) evaluates exactly as the trainer does.
    let text = "task = \"mapdn33\"\nalgorithm = \"matd3\"\nseed = 5\ntotal_steps = 400\nlearning_starts = 200\n\
                eval_every = 200\neval_episodes = 1\ncheckpoint_every = 0\n[matd3]\nbatch_size = 32\nactor_gru = true\nactor_hidden = 16\n";
    let cfg: TrainConfig = toml::from_str(text).unwrap();
    let run = |cfg: &TrainConfig| {
        let mut t = Trainer::new(cfg.clone()).unwrap();
        let mut log = Record(Vec::new());
        t.run(&mut log).unwrap();
        (t, log.0)
    };
    let (mut t, a) = run(&cfg);
    let (_, b) = run(&cfg);
    assert_eq!(a, b, "recurrent runs are deterministic too");
    deployed_acts_as_trained(&mut t, &cfg, "gru", 2);
    assert!(toml::to_string(&cfg).unwrap().contains("actor_gru = true"));
    let plain: TrainConfig = toml::from_str(&text.replace("actor_gru = true\n", "")).unwrap();
    assert!(!toml::to_string(&plain).unwrap().contains("actor_gru"), "off stays out of the resolved config (stable hashes)");
}

#[test]
fn the_action_dead_zone_zeroes_small_actions_and_deploys_as_trained() {
    use voltarena_env::deploy::apply_dead_zone;
    // The soft threshold: zero inside ±d, continuous at ±d, ±1 kept, never stronger than the actor.
    let d = 0.2;
    let mut a = [-1.0, -0.5, -0.2, -0.1, 0.0, 0.15, 0.2, 0.6, 1.0];
    apply_dead_zone(d, &mut a);
    let want = [-1.0, -0.375, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0];
    for (x, w) in a.iter().zip(want) {
        assert!((x - w).abs() < 1e-12, "{a:?}");
    }
    let mut same = [0.3, -0.7];
    apply_dead_zone(0.0, &mut same);
    assert_eq!(same, [0.3, -0.7], "0 = off");

    let _guard = torch_lock();
    let text = "task = \"mapdn33\"\nalgorithm = \"matd3\"\nseed = 6\ntotal_steps = 400\nlearning_starts = 200\n\
                eval_every = 0\ncheckpoint_every = 0\naction_dead_zone = 0.3\n[matd3]\nbatch_size = 32\n";
    let cfg: TrainConfig = toml::from_str(text).unwrap();
    let mut t = Trainer::new(cfg.clone()).unwrap();
    t.run(&mut Record(Vec::new())).unwrap();
    // The deployed policy applies the same map as the trainer's evaluation.
    let (dir, via_policy) = deployed_acts_as_trained(&mut t, &cfg, "dz", 1);
    let task = t.task.clone();
    let load = |cfg: &TrainConfig| {
        let policy = voltarena_agents::policy::RlPolicy::load(cfg, &dir, task.n_agents(), task.obs_dim(), task.state_dim()).unwrap();
        voltarena_env::Deployed::new(Box::new(policy), &task, cfg.deployment()).unwrap()
    };
    // Its actions are the actor's, soft-thresholded: zero where |actor| ≤ 0.3.
    let mut env = voltarena_env::VoltageEnv::new(task.clone()).unwrap();
    env.reset(7, &voltarena_env::ResetOptions { split: voltarena_env::Split::Test, ..Default::default() }).unwrap();
    let obs: Vec<f32> = env.observations().to_vec();
    let mut raw = vec![0.0; task.n_agents()];
    t.learner.act(&obs, task.n_agents(), &mut raw);
    let mut deployed = vec![0.0; task.n_agents()];
    load(&cfg).act(&env, &mut deployed);
    for (r, x) in raw.iter().zip(&deployed) {
        let want = if r.abs() <= 0.3 { 0.0 } else { r.signum() * (r.abs() - 0.3) / 0.7 };
        assert!((x - want).abs() < 1e-12, "actor {r} → {x}");
    }
    // The same networks without the dead zone spend more reactive power.
    let off = TrainConfig { action_dead_zone: 0.0, ..cfg.clone() };
    let (_, without) = voltarena_agents::train::evaluate(&task, &mut load(&off), voltarena_env::Split::Test, 1, 0).unwrap();
    assert!(via_policy.ql < without.ql, "QL {} with the dead zone, {} without", via_policy.ql, without.ql);
    assert!(!toml::to_string(&off).unwrap().contains("action_dead_zone"), "off stays out of the resolved config (stable hashes)");
    // The replay buffer keeps the actor's actions, not the grid's: the uniform warm-up actions are
    // stored as drawn: no exact zeros, although the ≈ 30 % inside ±0.3 were zeros on the grid.
    let warm: TrainConfig = toml::from_str(&text.replace("total_steps = 400", "total_steps = 240").replace("learning_starts = 200", "learning_starts = 240")).unwrap();
    let mut w = Trainer::new(warm).unwrap();
    w.run(&mut Record(Vec::new())).unwrap();
    let a = w.buffer().actions();
    assert_eq!(a.len(), 240 * task.n_agents());
    assert!(a.iter().all(|x| *x != 0.0), "the buffer holds grid actions");
    let inside = a.iter().filter(|x| x.abs() <= 0.3).count() as f64 / a.len() as f64;
    assert!((0.2..0.4).contains(&inside), "{inside} of the stored actions inside ±0.3");
    // Out of range is refused by name.
    let bad = TrainConfig { action_dead_zone: 1.0, ..cfg };
    let err = Trainer::new(bad).err().unwrap().to_string();
    assert!(err.contains("action_dead_zone"), "{err}");
}

#[test]
fn a_small_last_layer_starts_the_actor_near_zero_on_every_cpu() {
    let _guard = torch_lock();
    let obs: Vec<f32> = (0..N * OD).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
    let acts = |init: f64, seed: u64| {
        tch::manual_seed(0);
        let m = Matd3::new(Matd3Config { actor_last_init: init, ..Default::default() }, N, OD, SD, seed).unwrap();
        let mut a = vec![0.0; N];
        m.act(&obs, N, &mut a);
        a
    };
    let (small, default) = (acts(3e-3, 1), acts(0.0, 1));
    let max = |a: &[f64]| a.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    // |a| ≤ tanh(3e-3 · (Σ_j h_j + 1)); the default initialisation acts far from 0 on this input.
    assert!(max(&small) < 0.05 && max(&default) > 3.0 * max(&small), "small {small:?}, default {default:?}");
    // Drawn from the run's own seeded stream: the same values again, others for another seed.
    assert_eq!(small, acts(3e-3, 1));
    assert_ne!(small, acts(3e-3, 2));
    assert!(toml::to_string(&Matd3Config::default()).unwrap().find("actor_last_init").is_none(), "off stays out of resolved configs");
    // MADDPG has the same key, with the same effect.
    let acts_ddpg = |init: f64, seed: u64| {
        tch::manual_seed(0);
        let m = Maddpg::new(MaddpgConfig { actor_last_init: init, ..Default::default() }, N, OD, SD, seed).unwrap();
        let mut a = vec![0.0; N];
        m.act(&obs, N, &mut a);
        a
    };
    let (small, default) = (acts_ddpg(3e-3, 1), acts_ddpg(0.0, 1));
    assert!(max(&small) < 0.05 && max(&default) > 3.0 * max(&small), "maddpg: small {small:?}, default {default:?}");
    assert_eq!(small, acts_ddpg(3e-3, 1));
    assert_ne!(small, acts_ddpg(3e-3, 2));
    assert!(toml::to_string(&MaddpgConfig::default()).unwrap().find("actor_last_init").is_none(), "off stays out of resolved configs");
}

#[test]
fn the_critic_warm_up_holds_the_actor_and_then_lets_it_learn() {
    let _guard = torch_lock();
    use rand::SeedableRng;
    tch::manual_seed(0);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let batch = filled_buffer(3).sample(256, &mut rng);
    let obs: Vec<f32> = (0..N * OD).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut m = Matd3::new(Matd3Config { actor_warmup: 40, ..Default::default() }, N, OD, SD, 0).unwrap();
    let acts = |m: &Matd3| {
        let mut a = vec![0.0; N];
        m.act(&obs, N, &mut a);
        a
    };
    let (start, target_start) = (acts(&m), m.target_actions(&Tensor::from_slice(&obs).view([1, N as i64, OD as i64])));
    let first = m.update(&batch).critic_loss;
    let mut last = first;
    for u in 2..=40 {
        let info = m.update(&batch);
        assert!(info.actor_loss.is_none(), "update {u} is in the warm-up: no actor update");
        last = info.critic_loss;
    }
    assert_eq!(acts(&m), start, "the actor is held through the warm-up");
    let target_now = m.target_actions(&Tensor::from_slice(&obs).view([1, N as i64, OD as i64]));
    assert_eq!(Vec::<f32>::try_from(target_now.flatten(0, -1)).unwrap(), Vec::<f32>::try_from(target_start.flatten(0, -1)).unwrap(), "and so is its target");
    assert!(last < first, "the critics learn meanwhile: {first} -> {last}");
    // Update 42 is the first actor update after the warm-up (policy_delay 2).
    assert!(m.update(&batch).actor_loss.is_none());
    assert!(m.update(&batch).actor_loss.is_some(), "the actor learns after the warm-up");
    assert_ne!(acts(&m), start);
    assert!(toml::to_string(&Matd3Config::default()).unwrap().find("actor_warmup").is_none(), "off stays out of resolved configs");
}

#[test]
fn an_actor_warm_up_acts_near_droop_where_a_uniform_one_spans_the_range() {
    let _guard = torch_lock();
    // A warm-up only (learning_starts = total_steps): what the buffer stores is what acted, as
    // actor actions (residual corrections on top of droop).
    let text = "task = \"mapdn33\"\nalgorithm = \"matd3\"\nseed = 4\ntotal_steps = 240\nlearning_starts = 240\n\
                eval_every = 0\ncheckpoint_every = 0\nresidual = \"droop\"\nwarmup_actions = \"actor\"\n\
                explore_sigma_start = 0.1\nexplore_sigma_end = 0.1\n[matd3]\nbatch_size = 32\nactor_last_init = 1e-6\n";
    let stats = |text: &str| {
        let mut t = Trainer::new(toml::from_str(text).unwrap()).unwrap();
        t.run(&mut Record(Vec::new())).unwrap();
        let a: Vec<f64> = t.buffer().actions().iter().map(|x| *x as f64).collect();
        assert_eq!(a.len(), 240 * t.task.n_agents(), "no episode ended early");
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        let sd = (a.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / a.len() as f64).sqrt();
        (mean, sd)
    };
    // The initial actor is ≈ 0 (droop itself), plus N(0, 0.1²) noise.
    let (mean, sd) = stats(text);
    assert!(mean.abs() < 0.01 && (0.09..0.11).contains(&sd), "actor warm-up: mean {mean}, sd {sd}");
    // The uniform warm-up draws over [−1, 1]: sd 1/√3.
    let (mean, sd) = stats(&text.replace("warmup_actions = \"actor\"\n", ""));
    assert!(mean.abs() < 0.05 && (0.55..0.61).contains(&sd), "uniform warm-up: mean {mean}, sd {sd}");
    let cfg: TrainConfig = toml::from_str(text).unwrap();
    assert!(toml::to_string(&cfg).unwrap().contains("warmup_actions = \"actor\""));
    let off = TrainConfig { warmup_actions: Default::default(), ..cfg };
    assert!(!toml::to_string(&off).unwrap().contains("warmup_actions"), "uniform stays out of resolved configs");
    let err = toml::from_str::<TrainConfig>(&text.replace("\"actor\"", "\"droop\"")).err().unwrap().to_string();
    assert!(err.contains("warmup_actions") || err.contains("unknown variant"), "{err}");
}

#[test]
fn the_action_scale_is_range_checked_and_left_out_when_off() {
    let text = "task = \"mapdn33\"\nalgorithm = \"matd3\"\ntotal_steps = 10\nresidual = \"droop\"\naction_scale = 0.25\n";
    let cfg: TrainConfig = toml::from_str(text).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.deployment().action_scale, 0.25);
    assert!(toml::to_string(&cfg).unwrap().contains("action_scale = 0.25"));
    let off: TrainConfig = toml::from_str(&text.replace("action_scale = 0.25\n", "")).unwrap();
    assert_eq!(off.action_scale, 1.0);
    assert!(!toml::to_string(&off).unwrap().contains("action_scale"), "1 stays out of resolved configs");
    for bad in ["0.0", "1.5", "-0.1"] {
        let c: TrainConfig = toml::from_str(&text.replace("0.25", bad)).unwrap();
        let err = c.validate().err().expect("refused").to_string();
        assert!(err.contains("action_scale"), "{err}");
    }
    // Behind a safety layer the stored filtered action would need the scale's inverse.
    let plain = text.replace("residual = \"droop\"\n", "");
    let safe: TrainConfig = toml::from_str(&format!("{plain}[safety]\nkind = \"projection\"\n")).unwrap();
    assert!(safe.validate().err().expect("refused").to_string().contains("store_filtered_action"));
    let stored_proposals: TrainConfig = toml::from_str(&format!("{plain}store_filtered_action = false\n[safety]\nkind = \"projection\"\n")).unwrap();
    stored_proposals.validate().unwrap();
}

#[test]
fn pareto_selection_keeps_only_policies_no_worse_than_the_start_and_then_the_lowest_ql() {
    use voltarena_agents::config::BestBy;
    // The start (droop's validation, say): CR 0.925, QL 0.323 Mvar; it is also the kept best.
    let start = (0.925, 0.323);
    let best = (0.925, 0.323, -14.5);
    let p = |cand| BestBy::Pareto.prefers(start, best, cand);
    assert!(p((0.928, 0.319, -14.7)), "better on both: replaces the start");
    assert!(p((0.925, 0.320, -20.0)), "same CR, less Q: replaces it whatever the return");
    assert!(!p((0.939, 0.341, -13.7)), "more CR for more Q (the best return): refused");
    assert!(!p((0.921, 0.310, -18.3)), "less Q for less CR: refused");
    assert!(!p((0.925, 0.323, -14.5)), "a tie keeps what it has");
    // Among qualifying ones: the lowest QL, then the highest CR — and always against the start,
    // not against the kept best.
    let kept = (0.9283, 0.3190, -14.7);
    assert!(BestBy::Pareto.prefers(start, kept, (0.9258, 0.3172, -14.9)));
    assert!(!BestBy::Pareto.prefers(start, kept, (0.9300, 0.3200, -14.0)));
    assert!(BestBy::Pareto.prefers(start, kept, (0.9300, 0.3190, -15.0)));
    assert!(!BestBy::Pareto.prefers(start, kept, (0.9200, 0.3000, -15.0)), "below the start's CR");
    // The other rules, on the same numbers.
    assert!(BestBy::Return.prefers(start, best, (0.939, 0.341, -13.7)));
    assert!(BestBy::Cr.prefers(start, best, (0.939, 0.341, -15.0)));
    assert!(!BestBy::Cr.prefers(start, best, (0.921, 0.310, -13.0)));
}
