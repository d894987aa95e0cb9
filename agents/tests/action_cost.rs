//! The known action cost (`analytic_q_cost`, `matd3::ActionCost`): that the torch expression is
//! the environment's own reactive-power term, that the replay buffer links each transition to its
//! successor's terms (live and after a checkpoint round trip), and that a run with it is
//! deterministic and refuses the configurations it cannot model.

use std::sync::Arc;
use tch::Tensor;
use voltarena_agents::buffer::{Batch, ReplayBuffer};
use voltarena_agents::matd3::ActionCost;
use voltarena_agents::train::{Logger, TrainConfig, Trainer};
use voltarena_env::deploy::{ActionPipeline, Deployment, Residual};
use voltarena_env::{MetricsSummary, ResetOptions, Split, Task, VoltageEnv};

static TORCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn torch_lock() -> std::sync::MutexGuard<'static, ()> {
    TORCH.lock().unwrap_or_else(|e| e.into_inner())
}

fn task_with_q_weight(name: &str, q_weight: f64) -> Arc<Task> {
    let task = Task::load(name).unwrap();
    let mut spec = task.spec.clone();
    spec.reward.q_weight = q_weight;
    Arc::new(Task::build(spec, &task.source, None).unwrap())
}

/// On real feeders, with random actions through a dead zone and a droop residual: the torch cost
/// of (action, base, range) equals α·mean|q| of the step the environment solved, and the reward
/// of the same step with α = 0 is the reward plus exactly that term — so r = r_v − c(a) holds and
/// the critics' target G = Q + c is what the update computes. With an action scale s < 1 the
/// grid's action stays within ±s of droop's, and the cost follows it — also with droop running on its
/// own under the correction (`Residual::DroopOffset`), and with the action a gain on droop's own
/// output (`Residual::DroopGain`: within ±s·|droop's| of it).
#[test]
fn the_known_cost_is_the_rewards_reactive_power_term() {
    use rand::{RngExt, SeedableRng};
    for (name, scale, residual) in [("mapdn33", 1.0, Residual::Droop), ("mapdn141", 1.0, Residual::Droop), ("mapdn141", 0.3, Residual::Droop), ("mapdn141", 0.3, Residual::DroopOffset), ("mapdn141", 0.8, Residual::DroopGain), ("mapdn141", 0.8, Residual::DroopPivot)] {
        let alpha = 0.37;
        let (with, without) = (task_with_q_weight(name, alpha), task_with_q_weight(name, 0.0));
        let mut envs = [VoltageEnv::new(with.clone()).unwrap(), VoltageEnv::new(without).unwrap()];
        let dep = Deployment { dead_zone: 0.2, residual, action_scale: scale, ..Default::default() };
        let mut pipe = ActionPipeline::new(&with, dep).unwrap();
        let n = envs[0].n_agents();
        let gain = residual == Residual::DroopGain;
        let cost = ActionCost { weight: alpha, dead_zone: 0.2, scale, residual };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let opts = ResetOptions { split: Split::Train, ..Default::default() };
        for e in &mut envs {
            e.reset(7, &opts).unwrap();
        }
        let (mut raw, mut applied) = (vec![0.0; n], vec![0.0; n]);
        let mut nonzero = 0;
        for step in 0..60 {
            for a in raw.iter_mut() {
                *a = rng.random_range(-1.0..=1.0);
            }
            pipe.apply(&envs[0], &raw, &mut applied);
            let base = pipe.base().to_vec();
            for (a, b) in applied.iter().zip(&base) {
                // An offset moves droop's action by at most s, a gain by at most s·|droop's|.
                let reach = if gain { scale * b.abs() } else { scale };
                assert!((a - b).abs() <= reach + 1e-12, "{name} {residual:?}: applied {a} is more than {reach} from droop's {b}");
            }
            let s0 = envs[0].step(&applied).unwrap();
            let s1 = envs[1].step(&applied).unwrap();
            let range: Vec<f64> = (0..n).map(|k| envs[0].q_range_in_force(k)).collect();
            let t = |v: &[f64]| Tensor::from_slice(&v.iter().map(|&x| x as f32).collect::<Vec<f32>>()).view([1, n as i64]);
            let c = cost.cost(&t(&raw), &t(&base), &t(&range)).double_value(&[0, 0]);
            let want = alpha * s0.metrics.ql_mvar;
            assert!((c - want).abs() <= 1e-6 * want.abs().max(1e-3), "{name} step {step}: torch cost {c}, environment's α·QL {want}");
            assert!((s1.reward - s0.reward - want).abs() < 1e-12, "{name} step {step}: r(α=0) − r = {}, α·QL = {want}", s1.reward - s0.reward);
            nonzero += (want > 0.0) as usize;
            if s0.terminated || s0.truncated {
                break;
            }
        }
        assert!(nonzero > 30, "{name}: the check saw reactive power on {nonzero} steps only");
    }
}

fn flat(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
}

fn batch_columns(b: &Batch) -> Vec<Vec<f32>> {
    let c = b.cost.as_ref().expect("cost terms");
    [&b.obs, &b.state, &b.actions, &b.reward, &b.next_obs, &b.next_state, &b.done, &c.base, &c.range, &c.next_base, &c.next_range].into_iter().map(flat).collect()
}

/// Transition t of a 7-step episode carries base t + k/10 and range 100 + t for agent k, and its
/// reward is t: a sampled row's successor terms are transition t + 1's inside an episode and its
/// own at an episode's end and for the newest transition — live, and after the buffer went
/// through replay segments (one boundary inside an episode).
#[test]
fn successors_link_within_episodes_and_across_segments() {
    use rand::SeedableRng;
    let (n, od, sd, cap) = (3, 2, 2, 64);
    let mut b = ReplayBuffer::with_cost(cap, n, od, sd);
    let total = 100u64;
    for t in 0..total {
        let o = vec![t as f32; n * od];
        let o2 = vec![t as f32 + 1.0; n * od];
        let s = vec![t as f32; sd];
        let s2 = vec![t as f32 + 1.0; sd];
        b.push(&o, &s, &vec![0.1; n], t as f32, &o2, &s2, t % 7 == 6);
        let base: Vec<f64> = (0..n).map(|k| t as f64 + k as f64 / 10.0).collect();
        b.push_cost(&base, &vec![100.0 + t as f64; n], t % 7 != 0);
    }
    let check = |buf: &mut ReplayBuffer, tag: &str| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let batch = buf.sample(256, &mut rng);
        let cols = batch_columns(&batch);
        let (reward, base, next_base, next_range) = (&cols[3], &cols[7], &cols[9], &cols[10]);
        let mut linked = 0;
        for (row, &r) in reward.iter().enumerate() {
            let t = r as u64;
            let succ = if t % 7 != 6 && t + 1 < total { t + 1 } else { t };
            linked += (succ != t) as usize;
            for k in 0..n {
                assert_eq!(base[row * n + k], t as f32 + k as f32 / 10.0, "{tag}");
                assert_eq!(next_base[row * n + k], succ as f32 + k as f32 / 10.0, "{tag}: transition {t}, agent {k}");
                assert_eq!(next_range[row * n + k], 100.0 + succ as f32, "{tag}");
            }
        }
        assert!(linked > 150, "{tag}");
        cols
    };
    let live = check(&mut b, "live");
    let dir = std::env::temp_dir().join(format!("va-cost-seg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mid = 50; // transition 50 continues 49's episode
    let segs = [b.encode_segment(b.first_kept(), mid), b.encode_segment(mid, total)];
    let mut r = ReplayBuffer::with_cost(cap, n, od, sd);
    for (i, bytes) in segs.iter().enumerate() {
        r.decode_segment(&dir.join(format!("s{i}")), bytes, b.first_kept()).unwrap();
    }
    r.set_pushed(total);
    assert_eq!(check(&mut r, "decoded"), live, "the decoded buffer samples as the live one");
    // A run without the cost terms refuses a segment that has them, saying why.
    let mut plain = ReplayBuffer::new(cap, n, od, sd);
    let err = plain.decode_segment(&dir.join("s0"), &segs[0], 0).unwrap_err().to_string();
    assert!(err.contains("s0") && err.contains("analytic_q_cost"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
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

fn config(extra: &str) -> TrainConfig {
    toml::from_str(&format!(
        "task = \"mapdn33\"\nalgorithm = \"matd3\"\nseed = 3\ntotal_steps = 500\nlearning_starts = 200\n\
         eval_every = 250\neval_episodes = 1\ncheckpoint_every = 0\naction_dead_zone = 0.1\nresidual = \"droop\"\n{extra}\n[matd3]\nbatch_size = 32\n"
    ))
    .unwrap()
}

fn run(cfg: TrainConfig) -> Vec<(usize, f64, MetricsSummary)> {
    let mut t = Trainer::new(cfg).unwrap();
    let mut log = Record(Vec::new());
    t.run(&mut log).unwrap();
    log.0
}

#[test]
fn a_run_with_the_known_cost_is_deterministic_and_refuses_what_it_cannot_model() {
    let _guard = torch_lock();
    let a = run(config("analytic_q_cost = true"));
    assert_eq!(a, run(config("analytic_q_cost = true")), "two runs with one seed differ");
    assert_eq!(a.len(), 2);
    let plain = run(config(""));
    assert_ne!(a.iter().map(|x| x.1).collect::<Vec<_>>(), plain.iter().map(|x| x.1).collect::<Vec<_>>(), "the option changes nothing");
    // Off, the key stays out of the resolved config (earlier runs' hashes hold).
    assert!(!toml::to_string(&config("")).unwrap().contains("analytic_q_cost"));
    let on = TrainConfig { analytic_q_cost: true, ..config("") };
    let mut maddpg = on.clone();
    maddpg.algorithm = voltarena_agents::train::Algorithm::Maddpg;
    let normalized = TrainConfig { normalize_reward: true, ..on.clone() };
    let mut safe = TrainConfig { store_filtered_action: false, ..on.clone() };
    safe.safety.kind = voltarena_env::safety::SafetyKind::Projection;
    for (cfg, why) in [(maddpg, "matd3"), (normalized, "normalize_reward"), (safe, "safety layer")] {
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("analytic_q_cost") && err.contains(why), "{why}: {err}");
    }
}

/// The reactive-power budget (`matd3.q_budget` ρ): λ rises by dual ascent while the actor's mean
/// cost on a batch is above ρ × the residual base's (droop's) on the same states, stays 0 while it
/// is below, adds λ × the held cost to the actor's objective (so a policy over budget spends less
/// than one without it after the same updates), survives the resumable state, and the key is
/// refused where the base's cost is not known exactly; the held cost is checked on numbers worked
/// by hand.
#[test]
fn the_reactive_power_budget_raises_its_multiplier_only_while_it_is_exceeded() {
    use rand::{RngExt, SeedableRng};
    use voltarena_agents::buffer::CostBatch;
    use voltarena_agents::matd3::{Matd3, Matd3Config};
    let _guard = torch_lock();
    let (n, od, sd, b) = (3usize, 4usize, 5usize, 64usize);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut r = |k: usize| Tensor::from_slice(&(0..k).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>());
    let (bi, ni, oi, si) = (b as i64, n as i64, od as i64, sd as i64);
    let batch = Batch {
        obs: r(b * n * od).view([bi, ni, oi]),
        state: r(b * sd).view([bi, si]),
        actions: r(b * n).view([bi, ni]),
        reward: Tensor::zeros([bi, 1], (tch::Kind::Float, tch::Device::Cpu)),
        next_obs: r(b * n * od).view([bi, ni, oi]),
        next_state: r(b * sd).view([bi, si]),
        done: Tensor::zeros([bi, 1], (tch::Kind::Float, tch::Device::Cpu)),
        // Droop absorbs 0.6 of the range everywhere.
        cost: Some(CostBatch { base: Tensor::full([bi, ni], 0.6, (tch::Kind::Float, tch::Device::Cpu)), range: Tensor::ones([bi, ni], (tch::Kind::Float, tch::Device::Cpu)), next_base: Tensor::full([bi, ni], 0.6, (tch::Kind::Float, tch::Device::Cpu)), next_range: Tensor::ones([bi, ni], (tch::Kind::Float, tch::Device::Cpu)), droop_target: None }),
    };
    let cost = ActionCost { weight: 1.0, dead_zone: 0.0, scale: 1.0, residual: Residual::Droop };
    let spent = |m: &Matd3| cost.cost(&m.actor().forward(&batch.obs), &batch.cost.as_ref().unwrap().base, &batch.cost.as_ref().unwrap().range).mean(tch::Kind::Float).double_value(&[]);
    let train = |q_budget: f64| {
        tch::manual_seed(5);
        let cfg = Matd3Config { q_budget, q_budget_lr: 0.5, actor_last_init: 0.003, policy_delay: 1, actor_lr: 1e-3, ..Default::default() };
        let mut m = Matd3::new(cfg, n, od, sd, 5).unwrap();
        m.set_action_cost(Some(cost));
        let start = spent(&m);
        assert!((start - 0.6).abs() < 0.02, "the near-zero actor spends droop's cost: {start}");
        // (relative gap before the update, λ after it)
        let mut trace = Vec::new();
        for _ in 0..40 {
            let gap = (spent(&m) - q_budget * 0.6) / 0.6;
            trace.push((gap, m.update(&batch).q_multiplier));
        }
        (m, trace)
    };
    // ρ = 0.5: the policy starts at ≈ 2× its budget, so λ climbs (first step η·gap = 0.5·0.5); as
    // the weighted cost pulls the actor under budget λ falls back, to 0 and no lower: every move has
    // the gap's sign and size.
    let (over, trace) = train(0.5);
    assert!((trace[0].1 - 0.25).abs() < 0.02, "first step: η·gap = 0.5·0.5, got {}", trace[0].1);
    let mut prev = 0.0;
    for (i, &(gap, l)) in trace.iter().enumerate() {
        assert!((l - (prev + 0.5 * gap).max(0.0)).abs() < 1e-4, "update {i}: λ {prev} → {l} with gap {gap}: {trace:?}");
        prev = l;
    }
    assert!(trace.iter().any(|t| t.0 < 0.0) && trace.iter().take(10).all(|t| t.0 > 0.0), "the actor never came under budget: {trace:?}");
    let lambdas: Vec<f64> = trace.iter().map(|t| t.1).collect();
    assert!(lambdas[..10].windows(2).all(|w| w[1] > w[0]), "λ does not rise while over budget: {lambdas:?}");
    // ρ = 2: under budget from the start, λ stays 0 and the update is the plain one.
    let (under, trace) = train(2.0);
    assert!(trace.iter().all(|t| t.1 == 0.0), "λ moved under budget: {trace:?}");
    let (plain, _) = train(0.0);
    assert_eq!(spent(&under), spent(&plain), "an inactive budget changed the update");
    assert!(spent(&over) < spent(&plain) - 1e-4, "the multiplier did not make the actor spend less: {} vs {}", spent(&over), spent(&plain));
    // The multiplier rides in the resumable state.
    let mut w = voltarena_agents::checkpoint::Writer::default();
    over.write_state(&mut w);
    let bytes = w.buf.clone();
    tch::manual_seed(5);
    let mut back = Matd3::new(over.cfg.clone(), n, od, sd, 5).unwrap();
    back.read_state(&mut voltarena_agents::checkpoint::Reader::nested(std::path::Path::new("state"), &bytes)).unwrap();
    assert_eq!(back.q_multiplier(), over.q_multiplier());
    // Refused without the exact cost or without a residual base; left out of the resolved config at 0.
    let mut no_cost = config("");
    no_cost.matd3.q_budget = 1.0;
    let mut no_base = TrainConfig { analytic_q_cost: true, residual: Residual::None, ..config("") };
    no_base.matd3.q_budget = 1.0;
    for cfg in [no_cost, no_base] {
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("matd3.q_budget"), "{err}");
    }
    let text = toml::to_string(&config("")).unwrap();
    assert!(!text.contains("q_budget"), "{text}");
    // The held cost: a = 0.55 through the dead zone 0.1 is 0.5, × scale 0.1 × gain 10 = 0.5 on top
    // of the base 0.2 (what droop's filter, q ← q + 0.1 (target − q), integrates a held correction to).
    let k = ActionCost { weight: 2.0, dead_zone: 0.1, scale: 0.1, residual: Residual::Droop };
    let t = |x: f32| Tensor::from_slice(&[x]).view([1, 1]);
    let held = k.held_cost(&t(0.55), &t(0.2), &t(3.0), 10.0).double_value(&[0, 0]);
    assert!((held - 2.0 * 0.7 * 3.0).abs() < 1e-5, "{held}");
    let once = k.cost(&t(0.55), &t(0.2), &t(3.0)).double_value(&[0, 0]);
    assert!((once - 2.0 * 0.25 * 3.0).abs() < 1e-5, "{once}");
}

/// Droop's static target (`ActionPipeline::droop_target`) is the curve at each bus voltage, and
/// the base is one filter step from the setpoint in force towards it; a correction r held on top
/// settles (the filter's recursion run in plain numbers) at T + r / s, which `held_cost` with gain
/// 1 / s charges when measured from T — measured from the settled base it counts r / s − r twice.
#[test]
fn a_held_correction_settles_at_droops_target_plus_r_over_s() {
    use voltarena_env::action::{q_range, DroopCurve};
    use voltarena_env::deploy::RESIDUAL_DROOP_SMOOTHING as S;
    let task = Arc::new(Task::load("mapdn33").unwrap());
    let mut env = VoltageEnv::new(task.clone()).unwrap();
    let dep = Deployment { dead_zone: 0.0, residual: Residual::Droop, ..Default::default() };
    let mut pipe = ActionPipeline::new(&task, dep).unwrap();
    let n = env.n_agents();
    env.reset(3, &ResetOptions { split: Split::Train, ..Default::default() }).unwrap();
    let (raw, mut applied) = (vec![0.05; n], vec![0.0; n]);
    let mut active = 0;
    for _ in 0..40 {
        pipe.apply(&env, &raw, &mut applied);
        for k in 0..n {
            let l = env.local(k);
            let range = q_range(l.action_scale, l.q_avail_mvar);
            if range <= 0.0 {
                continue;
            }
            let t = (DroopCurve::DEFAULT.response(l.v_pu) * l.q_avail_mvar / range).clamp(-1.0, 1.0);
            assert!((pipe.droop_target()[k] - t).abs() < 1e-12, "agent {k}: target {} vs the curve's {t}", pipe.droop_target()[k]);
            let base = (l.q_mvar / range + S * (t - l.q_mvar / range)).clamp(-1.0, 1.0);
            assert!((pipe.base()[k] - base).abs() < 1e-12, "agent {k}: base {} vs one filter step {base}", pipe.base()[k]);
            active += (t != 0.0) as usize;
        }
        env.step(&applied).unwrap();
    }
    assert!(active > 0, "droop never acted: the check saw only zero targets");
    // The filter's fixed point with a held correction, in plain numbers.
    let (t, r) = (0.2f64, 0.03f64);
    let mut q = 0.0;
    let mut base = 0.0;
    for _ in 0..400 {
        base = q + S * (t - q);
        q = (base + r).clamp(-1.0, 1.0);
    }
    assert!((q - (t + r / S)).abs() < 1e-9, "settled at {q}, not T + r/s = {}", t + r / S);
    assert!((base - (t + r * (1.0 / S - 1.0))).abs() < 1e-9);
    let cost = ActionCost { weight: 1.0, dead_zone: 0.0, scale: 1.0, residual: Residual::Droop };
    let one = |x: f64| Tensor::from_slice(&[x as f32]).view([1, 1]);
    let held = |from: f64| cost.held_cost(&one(r), &one(from), &one(1.0), 1.0 / S).double_value(&[0, 0]);
    assert!((held(t) - q).abs() < 1e-6, "from the target: {} vs settled {q}", held(t));
    assert!((held(base) - (t + r * (2.0 / S - 1.0))).abs() < 1e-6, "from the base: {}", held(base));
}

/// With `keep_droop_target` the replay keeps droop's target per transition: sampled rows carry
/// their own, live and after replay segments; and with `q_budget_reference = "droop_target"` the
/// first dual step is η·(mean |clamp(T + μ/s)| − ρ·mean |T|) / mean |T| on the batch, worked
/// from the actor's outputs by hand — not the base's.
#[test]
fn the_droop_target_budget_is_measured_from_droops_target() {
    use rand::{RngExt, SeedableRng};
    use voltarena_agents::buffer::CostBatch;
    use voltarena_agents::matd3::{BudgetReference, Matd3, Matd3Config};
    let _guard = torch_lock();
    let (n, od, sd, cap) = (3usize, 2usize, 2usize, 32usize);
    let mut buf = ReplayBuffer::with_cost(cap, n, od, sd).keep_droop_target();
    assert!(buf.has_droop_target() && !ReplayBuffer::with_cost(cap, n, od, sd).has_droop_target());
    for t in 0..40u64 {
        let (o, s) = (vec![t as f32; n * od], vec![t as f32; sd]);
        buf.push(&o, &s, &vec![0.0; n], t as f32, &o, &s, t % 5 == 4);
        buf.push_cost(&vec![0.5; n], &vec![1.0; n], t % 5 != 0);
        buf.push_droop_target(&(0..n).map(|k| t as f64 / 100.0 + k as f64 / 1000.0).collect::<Vec<_>>());
    }
    let rows = |b: &mut ReplayBuffer| {
        let batch = b.sample(64, &mut rand_chacha::ChaCha8Rng::seed_from_u64(2));
        let target = flat(batch.cost.as_ref().unwrap().droop_target.as_ref().expect("targets kept"));
        for (row, r) in flat(&batch.reward).iter().enumerate() {
            for k in 0..n {
                assert!((target[row * n + k] - (*r / 100.0 + k as f32 / 1000.0)).abs() < 1e-7);
            }
        }
        target
    };
    let live = rows(&mut buf);
    let dir = std::env::temp_dir().join(format!("va-target-seg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seg = buf.encode_segment(buf.first_kept(), buf.pushed());
    let mut back = ReplayBuffer::with_cost(cap, n, od, sd).keep_droop_target();
    back.decode_segment(&dir.join("s"), &seg, buf.first_kept()).unwrap();
    back.set_pushed(buf.pushed());
    assert_eq!(rows(&mut back), live);
    let _ = std::fs::remove_dir_all(&dir);

    // The first dual step, from the actor's own outputs.
    let (b, od) = (64usize, 4usize);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let mut r = |k: usize, lo: f32, hi: f32| (0..k).map(|_| rng.random_range(lo..hi)).collect::<Vec<f32>>();
    let (bi, ni, oi, si) = (b as i64, n as i64, od as i64, sd as i64);
    let target = r(b * n, 0.1, 0.4);
    let f = (tch::Kind::Float, tch::Device::Cpu);
    let batch = Batch {
        obs: Tensor::from_slice(&r(b * n * od, -1.0, 1.0)).view([bi, ni, oi]),
        state: Tensor::from_slice(&r(b * sd, -1.0, 1.0)).view([bi, si]),
        actions: Tensor::from_slice(&r(b * n, -1.0, 1.0)).view([bi, ni]),
        reward: Tensor::zeros([bi, 1], f),
        next_obs: Tensor::from_slice(&r(b * n * od, -1.0, 1.0)).view([bi, ni, oi]),
        next_state: Tensor::from_slice(&r(b * sd, -1.0, 1.0)).view([bi, si]),
        done: Tensor::zeros([bi, 1], f),
        cost: Some(CostBatch { base: Tensor::full([bi, ni], 0.9, f), range: Tensor::ones([bi, ni], f), next_base: Tensor::full([bi, ni], 0.9, f), next_range: Tensor::ones([bi, ni], f), droop_target: Some(Tensor::from_slice(&target).view([bi, ni])) }),
    };
    let (rho, eta, gain) = (0.8, 0.5, 10.0);
    let first_step = |reference: BudgetReference| {
        tch::manual_seed(5);
        let cfg = Matd3Config { q_budget: rho, q_budget_lr: eta, q_budget_reference: reference, actor_last_init: 0.01, policy_delay: 1, ..Default::default() };
        let mut m = Matd3::new(cfg, n, od, sd, 5).unwrap();
        m.set_action_cost(Some(ActionCost { weight: 1.0, dead_zone: 0.0, scale: 1.0, residual: Residual::Droop }));
        m.set_budget_gain(gain);
        let mu = flat(&m.actor().forward(&batch.obs));
        (mu, m.update(&batch).q_multiplier)
    };
    let (mu, lambda) = first_step(BudgetReference::DroopTarget);
    let mean = |x: &dyn Fn(usize) -> f64| (0..b * n).map(x).sum::<f64>() / (b * n) as f64;
    let spent = mean(&|j| (target[j] as f64 + gain * (mu[j] as f64).clamp(-1.0, 1.0)).clamp(-1.0, 1.0).abs());
    let droop = mean(&|j| target[j] as f64);
    let want = (eta * (spent - rho * droop) / droop).max(0.0);
    assert!(want > 0.01, "the case does not exceed the budget: {want}");
    assert!((lambda - want).abs() < 1e-5, "λ after the first update {lambda}, by hand {want}");
    let (_, from_base) = first_step(BudgetReference::Base);
    assert!((from_base - want).abs() > 1e-3, "measured from the base the step is the same: {from_base}");
    // The key needs a budget.
    let cfg = Matd3Config { q_budget_reference: BudgetReference::DroopTarget, ..Default::default() };
    assert!(cfg.validate().unwrap_err().to_string().contains("q_budget_reference"));
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

/// A run with the budget measured from droop's target resumes from a mid-run checkpoint (droop's
/// targets ride in the replay segments) and takes the uninterrupted run's steps: its later
/// validations are the same to every bit.
#[test]
fn a_droop_target_budget_run_resumes_bit_for_bit() {
    use voltarena_agents::matd3::BudgetReference;
    let _guard = torch_lock();
    let mut cfg = config("analytic_q_cost = true");
    (cfg.matd3.q_budget, cfg.matd3.q_budget_reference) = (0.9, BudgetReference::DroopTarget);
    assert!(Trainer::new(cfg.clone()).unwrap().buffer().has_droop_target());
    resumes_at_step_300_bit_for_bit(cfg, "target");
}

/// Trains `cfg` (500 steps, checkpoints and validations every 100) to the end, resumes a second
/// trainer from the step-300 checkpoint and checks that its validations are the uninterrupted run's.
fn resumes_at_step_300_bit_for_bit(mut cfg: TrainConfig, name: &str) {
    (cfg.checkpoint_every, cfg.eval_every, cfg.total_steps) = (100, 100, 500);
    let dir = std::env::temp_dir().join(format!("va-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut log = Checkpointing { evals: Vec::new(), dir: dir.clone() };
    Trainer::new(cfg.clone()).unwrap().run(&mut log).unwrap();
    let full = log.evals.clone();
    assert_eq!(full.len(), 5);
    let mut resumed = Trainer::new(cfg).unwrap();
    resumed.resume(&dir.join("ck300"), &dir.join("replay")).unwrap().expect("a resumable checkpoint");
    let mut log2 = Checkpointing { evals: Vec::new(), dir: dir.join("again") };
    resumed.run(&mut log2).unwrap();
    assert_eq!(log2.evals, full[3..].to_vec(), "the resumed run's validations differ ({name})");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run on the offset residual (droop's own setpoint lives in the pipeline) resumes from a
/// checkpoint taken in the middle of an episode (step 300 is 60 steps into the second 240-step
/// episode) and takes the uninterrupted run's steps: the resumed environment and pipeline are
/// re-stepped together. With the closed-loop budget, λ and its running reference come back too.
#[test]
fn an_offset_residual_run_resumes_mid_episode_bit_for_bit() {
    let _guard = torch_lock();
    let mut cfg = config("analytic_q_cost = true\naction_scale = 0.3");
    cfg.residual = Residual::DroopOffset;
    resumes_at_step_300_bit_for_bit(cfg.clone(), "offset");
    (cfg.matd3.q_budget, cfg.matd3.q_budget_reference, cfg.matd3.q_budget_lr) = (0.5, voltarena_agents::matd3::BudgetReference::DroopAlone, 5.0);
    resumes_at_step_300_bit_for_bit(cfg, "offset-budget");
}

/// `q_budget_reference = "droop_alone"`: the budget's reference is droop alone in closed loop on
/// the training episode's day — equal to an independent droop rollout (the droop residual with
/// zero corrections on a fresh environment) — and λ's dual step is taken once per training episode
/// from the policy's and droop's measured QL: after a one-episode run, λ = max(0, η (QL_π / QL_droop
/// − ρ)) to rounding. The key needs the offset residual.
#[test]
fn the_droop_alone_budget_steps_on_closed_loop_reactive_power() {
    use voltarena_agents::matd3::BudgetReference;
    use voltarena_agents::train::Learner;
    let _guard = torch_lock();
    let mut cfg = config("analytic_q_cost = true\naction_scale = 0.3");
    cfg.action_dead_zone = 0.0;
    cfg.residual = Residual::DroopOffset;
    (cfg.total_steps, cfg.learning_starts, cfg.eval_every) = (240, 100, 0);
    (cfg.matd3.q_budget, cfg.matd3.q_budget_reference, cfg.matd3.q_budget_lr, cfg.matd3.actor_lr) = (0.5, BudgetReference::DroopAlone, 2.0, 1e-2);
    let mut t = Trainer::new(cfg.clone()).unwrap();
    assert!(!t.buffer().has_droop_target());
    t.run(&mut Record(Vec::new())).unwrap();
    let (policy, droop) = t.budget_measurement(0).unwrap();
    // Droop alone on the day, independently.
    let n = t.task.n_agents();
    let mut env = VoltageEnv::new(t.task.clone()).unwrap();
    let mut pipe = ActionPipeline::new(&t.task, Deployment { residual: Residual::Droop, ..Deployment::default() }).unwrap();
    let (zeros, mut out) = (vec![0.0; n], vec![0.0; n]);
    env.reset(voltarena_agents::train::episode_seed(cfg.seed, 0), &ResetOptions { split: Split::Train, data_noise: Some(false), ..Default::default() }).unwrap();
    loop {
        pipe.apply(&env, &zeros, &mut out);
        let s = env.step(&out).unwrap();
        if s.terminated || s.truncated {
            break;
        }
    }
    let independent = env.episode_metrics().summary(&t.task.bus_id).ql;
    assert!((droop - independent).abs() <= 1e-9 * independent, "droop alone {droop} vs an independent droop rollout {independent}");
    assert!((policy / droop - 1.0).abs() > 1e-3, "the trained policy spends droop's QL ({policy} vs {droop}): the check below cannot tell λ's inputs apart");
    let lambda = match &t.learner {
        Learner::Matd3(m) => m.q_multiplier(),
        _ => unreachable!(),
    };
    let want = (2.0 * (policy / droop - 0.5)).max(0.0);
    assert!(want > 0.1 && (lambda - want).abs() < 1e-9, "λ {lambda}, by hand {want} (QL {policy} vs droop alone {droop})");
    // Only with the offset residual.
    let mut bad = config("analytic_q_cost = true");
    (bad.matd3.q_budget, bad.matd3.q_budget_reference) = (0.9, BudgetReference::DroopAlone);
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("q_budget_reference") && err.contains("droop_offset"), "{err}");
    // And a budget.
    let err = voltarena_agents::matd3::Matd3Config { q_budget_reference: BudgetReference::DroopAlone, ..Default::default() }.validate().unwrap_err().to_string();
    assert!(err.contains("q_budget > 0") && err.contains("droop_alone"), "{err}");
}
