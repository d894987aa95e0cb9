//! The factored critic (`critic = "factored"`: Q(s, a) = V(s) + mean_k U(o_k ‖ id_k, a_k)), on
//! small problems in seconds: its structure (an agent's action changes Q by an amount that does not
//! depend on the other agents' actions), what it is for (per-agent action gradients that a
//! centralised critic of the same size does not learn from the same data), and that it trains,
//! checkpoints and resumes like the other critics.

use tch::{Kind, Tensor};
use voltarena_agents::buffer::{Batch, ReplayBuffer};
use voltarena_agents::matd3::{Matd3, Matd3Config};
use voltarena_agents::nets::CriticKind;
use voltarena_agents::train::{Logger, TrainConfig, Trainer};
use voltarena_env::MetricsSummary;

static TORCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn torch_lock() -> std::sync::MutexGuard<'static, ()> {
    TORCH.lock().unwrap_or_else(|e| e.into_inner())
}

/// A buffer of `len` random transitions of `n` agents whose team reward is additive in the agents:
/// r = −mean_k (a_k − o_k,0)² (each agent's best action is the first entry of its own
/// observation), γ-free (every transition terminal). The state is every observation concatenated.
fn additive_buffer(n: usize, od: usize, len: usize, seed: u64) -> ReplayBuffer {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut b = ReplayBuffer::new(len, n, od, n * od);
    for _ in 0..len {
        let o: Vec<f32> = (0..n * od).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let a: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let r = -(0..n).map(|k| (a[k] - o[k * od]).powi(2)).sum::<f32>() / n as f32;
        b.push(&o, &o, &a, r, &o, &o, true);
    }
    b
}

/// Fraction of (transition, agent) pairs of `b` where ∂Q₁/∂a_k has the sign of the true
/// gradient −2 (a_k − o_k,0) (pairs with |a_k − o_k,0| < 0.1 left out: there the sign is noise).
fn gradient_sign_agreement(m: &Matd3, b: &Batch) -> f64 {
    let a = b.actions.detach().set_requires_grad(true);
    let q = m.q1(&b.obs, &b.state, &a).sum(Kind::Float);
    let g = Tensor::run_backward(&[q], &[&a], false, false).pop().unwrap();
    let target = b.obs.narrow(2, 0, 1).squeeze_dim(2);
    let want = (&target - &b.actions) * 2.0;
    let clear = (&target - &b.actions).abs().gt(0.1);
    let agree = (g.sign() * want.sign()).gt(0.0).logical_and(&clear).sum(Kind::Float).double_value(&[]);
    agree / clear.sum(Kind::Float).double_value(&[])
}

#[test]
fn an_agents_action_moves_the_factored_value_by_the_same_amount_whatever_the_others_do() {
    let _guard = torch_lock();
    use rand::SeedableRng;
    let (n, od) = (5usize, 4usize);
    let mut buf = additive_buffer(n, od, 64, 1);
    let b = buf.sample(8, &mut rand_chacha::ChaCha8Rng::seed_from_u64(2));
    // Two joint actions that differ in agent 2's action only, in two contexts of the others'.
    let with = |a: &Tensor, k: i64, x: f64| {
        let a = a.copy();
        let _ = a.narrow(1, k, 1).fill_(x);
        a
    };
    let other = b.actions.neg();
    let effect = |m: &Matd3| {
        let d1 = m.q1(&b.obs, &b.state, &with(&b.actions, 2, 0.7)) - m.q1(&b.obs, &b.state, &with(&b.actions, 2, -0.4));
        let d2 = m.q1(&b.obs, &b.state, &with(&other, 2, 0.7)) - m.q1(&b.obs, &b.state, &with(&other, 2, -0.4));
        ((&d1 - &d2).abs().max().double_value(&[]), d1.abs().max().double_value(&[]))
    };
    tch::manual_seed(3);
    let factored = Matd3::new(Matd3Config { critic: CriticKind::Factored, ..Default::default() }, n, od, n * od, 3).unwrap();
    let (diff, size) = effect(&factored);
    assert!(size > 1e-4, "agent 2's action does not move the factored value ({size})");
    assert!(diff < 1e-6 * size.max(1.0), "factored: the effect of agent 2's action depends on the others' by {diff} (effect {size})");
    // A centralised critic has no such structure: the same check tells them apart.
    tch::manual_seed(3);
    let central = Matd3::new(Matd3Config::default(), n, od, n * od, 3).unwrap();
    let (diff, size) = effect(&central);
    assert!(diff > 1e-3 * size, "centralised: the effect did not depend on the others ({diff} of {size})");
}

#[test]
fn the_factored_critic_learns_each_agents_action_gradient_where_a_centralised_one_does_not() {
    let _guard = torch_lock();
    use rand::SeedableRng;
    let (n, od) = (12usize, 4usize);
    let mut buf = additive_buffer(n, od, 4096, 7);
    let held_out = additive_buffer(n, od, 512, 8).sample(512, &mut rand_chacha::ChaCha8Rng::seed_from_u64(9));
    let mut train = |kind: CriticKind| {
        tch::manual_seed(11);
        // Critic updates only: the actor waits (actor_warmup) so the comparison is the critics'.
        let cfg = Matd3Config { critic: kind, gamma: 0.0, critic_hidden: 64, actor_warmup: 1_000_000, ..Default::default() };
        let mut m = Matd3::new(cfg, n, od, n * od, 11).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        for _ in 0..400 {
            m.update(&buf.sample(128, &mut rng));
        }
        gradient_sign_agreement(&m, &held_out)
    };
    let factored = train(CriticKind::Factored);
    let central = train(CriticKind::Centralized);
    eprintln!("∂Q/∂a_k sign agreement on held-out pairs: factored {factored:.3}, centralised {central:.3}");
    assert!(factored > 0.9, "factored critic: ∂Q/∂a_k has the true gradient's sign on {factored:.3} of held-out pairs");
    assert!(factored > central + 0.1, "factored {factored:.3} vs centralised {central:.3}: no better per-agent credit");
}

struct Checkpointing {
    evals: Vec<(usize, f64, MetricsSummary)>,
    dir: std::path::PathBuf,
}
impl Logger for Checkpointing {
    fn train_episode(&mut self, _: usize, _: usize, _: f64, _: &MetricsSummary) {}
    fn update(&mut self, _: usize, _: &voltarena_agents::matd3::UpdateInfo) {}
    fn eval(&mut self, step: usize, r: f64, m: &MetricsSummary) {
        self.evals.push((step, r, m.clone()));
    }
    fn checkpoint(&mut self, t: &Trainer) -> Result<(), String> {
        let ck = self.dir.join(format!("ck{}", t.progress.step));
        std::fs::create_dir_all(&ck).map_err(|e| e.to_string())?;
        t.save_resumable(&ck, &self.dir.join("replay"), b"")
    }
}

fn config(extra: &str) -> TrainConfig {
    let text = format!(
        "task = \"mapdn33\"\nalgorithm = \"matd3\"\nseed = 4\ntotal_steps = 500\nlearning_starts = 100\neval_every = 100\neval_episodes = 1\n\
         checkpoint_every = 100\nresidual = \"droop\"\naction_dead_zone = 0.1\n{extra}\n[matd3]\nbatch_size = 32\ncritic = \"factored\"\nactor_last_init = 0.003\n"
    );
    let cfg: TrainConfig = toml::from_str(&text).unwrap();
    cfg.validate().unwrap();
    cfg
}

/// With the exact reactive-power cost (which the factored critic takes, one team value per
/// transition), a run trains, is deterministic and resumes from a mid-run checkpoint bit for bit;
/// the local critic is still refused with the cost.
#[test]
fn a_factored_critic_run_with_the_known_cost_is_deterministic_and_resumes_bit_for_bit() {
    let _guard = torch_lock();
    let cfg = config("analytic_q_cost = true");
    let dir = std::env::temp_dir().join(format!("va-factored-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut log = Checkpointing { evals: Vec::new(), dir: dir.clone() };
    Trainer::new(cfg.clone()).unwrap().run(&mut log).unwrap();
    let full = log.evals.clone();
    assert_eq!(full.len(), 5);
    let again = dir.join("again");
    let mut log2 = Checkpointing { evals: Vec::new(), dir: again.clone() };
    Trainer::new(cfg.clone()).unwrap().run(&mut log2).unwrap();
    assert_eq!(log2.evals, full, "the same config and seed gave other validations");
    let mut resumed = Trainer::new(cfg.clone()).unwrap();
    resumed.resume(&dir.join("ck300"), &dir.join("replay")).unwrap().expect("a resumable checkpoint");
    let mut log3 = Checkpointing { evals: Vec::new(), dir: dir.join("resumed") };
    resumed.run(&mut log3).unwrap();
    assert_eq!(log3.evals, full[3..].to_vec(), "the resumed run's validations differ");
    let _ = std::fs::remove_dir_all(&dir);
    // The key round-trips through the resolved config, and the local critic stays refused.
    let text = toml::to_string(&cfg).unwrap();
    assert!(text.contains("critic = \"factored\""), "{text}");
    let mut local = cfg.clone();
    local.matd3.critic = CriticKind::Local;
    let err = local.validate().unwrap_err().to_string();
    assert!(err.contains("analytic_q_cost") && err.contains("local"), "{err}");
}
