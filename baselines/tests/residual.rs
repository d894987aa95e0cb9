//! A residual policy on droop (`Deployment::residual = Droop`): a controller whose corrections are
//! all zero deploys as droop itself — the same actions, bit for bit — and a non-zero correction
//! changes them.

use std::sync::Arc;
use voltarena_baselines::Droop;
use voltarena_env::controller::NoControl;
use voltarena_env::deploy::{evaluate, Deployed, Deployment, Residual};
use voltarena_env::{Controller, Split, Task, VoltageEnv};

/// A constant correction for every agent.
struct Constant(f64);
impl Controller for Constant {
    fn name(&self) -> &str {
        "constant"
    }
    fn act(&mut self, _env: &VoltageEnv, actions: &mut [f64]) {
        actions.fill(self.0);
    }
}

/// Evaluates controller `c` behind deployment `d` on test episodes `seeds` of `task`.
fn run(task: &Arc<Task>, c: Box<dyn Controller>, d: Deployment, seeds: &[u64]) -> voltarena_env::Evaluation {
    let mut env = VoltageEnv::new(task.clone()).unwrap();
    let mut dep = Deployed::new(c, task, d).unwrap();
    evaluate(&mut env, &mut dep, Split::Test, seeds, &mut |_, _, _| {}).unwrap()
}

/// Deploys a constant `action` behind `d` (a residual on droop's own filter) for one test episode
/// and checks every applied setpoint against `applied(droop's own setpoint)`, with droop's own
/// filter stepped here by hand from its own last action. Returns how many agent-steps droop acted
/// on and how many the residual changed (so a caller can tell the check saw something).
fn step_by_hand(task: &Arc<Task>, d: Deployment, action: f64, applied: impl Fn(f64) -> f64) -> (usize, usize) {
    use voltarena_env::action::{droop_step_from, DroopCurve};
    use voltarena_env::deploy::RESIDUAL_DROOP_SMOOTHING;
    let mut env = VoltageEnv::new(task.clone()).unwrap();
    let mut dep = Deployed::new(Box::new(Constant(action)), task, d).unwrap();
    let opts = voltarena_env::ResetOptions { split: Split::Test, ..Default::default() };
    env.reset(0, &opts).unwrap();
    dep.reset(&env, 0);
    let n = env.n_agents();
    let (mut act, mut own) = (vec![0.0; n], vec![0.0; n]);
    let (mut moved, mut changed) = (0, 0);
    for t in 0..240 {
        dep.act(&env, &mut act);
        for k in 0..n {
            let from = if t == 0 { env.local(k).q_mvar } else { env.setpoint_of_action(k, own[k]) };
            own[k] = droop_step_from(&env, k, &DroopCurve::DEFAULT, RESIDUAL_DROOP_SMOOTHING, from).0;
            assert_eq!(act[k].to_bits(), applied(own[k]).clamp(-1.0, 1.0).to_bits(), "action {action}, step {t}, agent {k}");
            moved += (own[k].abs() > 1e-3) as usize;
            changed += ((act[k] - own[k]).abs() > 1e-3) as usize;
        }
        if dep.step(&mut env, &act).unwrap().truncated {
            break;
        }
    }
    (moved, changed)
}

#[test]
fn zero_corrections_on_the_droop_residual_are_droop() {
    for name in ["mapdn33", "mapdn141"] {
        let task = Arc::new(Task::load(name).unwrap());
        let run = |c: Box<dyn Controller>, d: Deployment| run(&task, c, d, &[0, 1]);
        let droop = run(Box::new(Droop::default()), Deployment::default());
        let residual = Deployment { residual: Residual::Droop, ..Default::default() };
        let zero = run(Box::new(NoControl), residual);
        assert_eq!(zero.metrics, droop.metrics, "{name}");
        assert_eq!(zero.mean_return.to_bits(), droop.mean_return.to_bits(), "{name}");
        // Inside the dead zone a correction is still zero; outside it, it is not.
        let dz = Deployment { dead_zone: 0.1, ..residual };
        assert_eq!(run(Box::new(Constant(0.05)), dz).metrics, droop.metrics, "{name}");
        assert_ne!(run(Box::new(Constant(0.3)), residual).metrics, droop.metrics, "{name}");
        // The action scale multiplies the corrections (trust region around droop) and, without a
        // residual, the actions (MAPDN's action scale); halving is exact in floating point.
        let half = Deployment { action_scale: 0.5, ..residual };
        assert_eq!(run(Box::new(Constant(0.3)), half).metrics, run(Box::new(Constant(0.15)), residual).metrics, "{name}");
        let quarter = Deployment { action_scale: 0.25, ..Default::default() };
        assert_eq!(run(Box::new(Constant(0.8)), quarter).metrics, run(Box::new(Constant(0.2)), Deployment::default()).metrics, "{name}");
        for bad in [0.0, -0.5, 1.5, f64::NAN] {
            let err = Deployed::new(Box::new(NoControl), &task, Deployment { action_scale: bad, ..Default::default() }).err().expect("refused").to_string();
            assert!(err.contains("action_scale"), "{err}");
        }
    }
}

/// `Residual::DroopOffset`: droop runs on its own and the correction is an offset on its output.
/// Zero corrections are droop bit for bit (over two episodes back to back, so droop's own setpoint
/// is taken afresh at each reset); a held correction r stays r above droop's setpoint, where on
/// `Residual::Droop` the same r accumulates through droop's filter to about r / smoothing.
#[test]
fn the_offset_residual_is_droop_at_zero_and_does_not_integrate_a_held_correction() {
    let task = Arc::new(Task::load("mapdn33").unwrap());
    let run = |c: Box<dyn Controller>, d: Deployment, seeds: &[u64]| run(&task, c, d, seeds);
    let offset = Deployment { residual: Residual::DroopOffset, ..Default::default() };
    let droop = run(Box::new(Droop::default()), Deployment::default(), &[0, 1]);
    let zero = run(Box::new(NoControl), offset, &[0, 1]);
    assert_eq!(zero.metrics, droop.metrics);
    assert_eq!(zero.mean_return.to_bits(), droop.mean_return.to_bits());
    // A run's second episode is the same as that episode alone: nothing leaks across a reset.
    let mut per_episode = Vec::new();
    let mut env = VoltageEnv::new(task.clone()).unwrap();
    let mut dep = Deployed::new(Box::new(Constant(0.2)), &task, offset).unwrap();
    evaluate(&mut env, &mut dep, Split::Test, &[0, 1], &mut |i, e, _| if i == 1 { per_episode.push(e.local(0).q_mvar.to_bits()) }).unwrap();
    let mut alone = Vec::new();
    let mut dep = Deployed::new(Box::new(Constant(0.2)), &task, offset).unwrap();
    evaluate(&mut env, &mut dep, Split::Test, &[1], &mut |_, e, _| alone.push(e.local(0).q_mvar.to_bits())).unwrap();
    assert_eq!(per_episode, alone, "the second episode depends on the first");
    // Held correction r = 0.05: the setpoint's distance from droop's own target (action units,
    // averaged over agents and the last 100 steps of an episode).
    let r = 0.05;
    let settled = |d: Deployment| {
        let mut env = VoltageEnv::new(task.clone()).unwrap();
        let mut dep = Deployed::new(Box::new(Constant(r)), &task, d).unwrap();
        let opts = voltarena_env::ResetOptions { split: Split::Test, data_noise: Some(false), ..Default::default() };
        env.reset(0, &opts).unwrap();
        dep.reset(&env, 0);
        let mut act = vec![0.0; env.n_agents()];
        let (mut sum, mut count) = (0.0, 0);
        for t in 0..240 {
            dep.act(&env, &mut act);
            if t >= 140 {
                for (k, a) in act.iter().enumerate() {
                    if a.abs() < 0.99 {
                        sum += a - dep.pipeline().droop_target()[k];
                        count += 1;
                    }
                }
            }
            dep.step(&mut env, &act).unwrap();
        }
        sum / count.max(1) as f64
    };
    let (off, integ) = (settled(offset), settled(Deployment { residual: Residual::Droop, ..Default::default() }));
    assert!((off - r).abs() < 0.3 * r, "offset residual: setpoint − droop target {off}, expected ≈ {r}");
    assert!(integ > 5.0 * r, "droop residual: setpoint − droop target {integ}, expected ≈ {} (r / smoothing)", r / 0.1);
    // The key's name in configs and result files.
    let d: Deployment = toml::from_str("residual = \"droop_offset\"").unwrap();
    assert_eq!(d.residual, Residual::DroopOffset);
}

/// `Residual::DroopGain`: the action is a gain 1 + s·a on droop's own output. Zero output is droop
/// bit for bit; every applied setpoint is droop's own times the gain, exactly (an independent
/// rollout of droop's own filter, stepped here by hand, gives the base); a gain of 0 (a = −1, s = 1)
/// is no control and a gain of 2 spends twice droop's reactive power where neither saturates.
#[test]
fn the_gain_residual_is_droop_at_zero_and_scales_droops_own_output() {
    let task = Arc::new(Task::load("mapdn33").unwrap());
    let run = |c: Box<dyn Controller>, d: Deployment| run(&task, c, d, &[0, 1]);
    let gain = Deployment { residual: Residual::DroopGain, ..Default::default() };
    let droop = run(Box::new(Droop::default()), Deployment::default());
    let zero = run(Box::new(NoControl), gain);
    assert_eq!(zero.metrics, droop.metrics);
    assert_eq!(zero.mean_return.to_bits(), droop.mean_return.to_bits());
    assert_eq!(run(Box::new(Constant(-1.0)), gain).metrics, run(Box::new(NoControl), Deployment::default()).metrics, "gain 0 is no control");
    // Step by hand: droop's own filter from its own last action, the applied action its gain 1.6.
    let (moved, _) = step_by_hand(&task, Deployment { action_scale: 0.6, ..gain }, 1.0, |own| own * (1.0 + 0.6));
    assert!(moved > 100, "droop acted on {moved} agent-steps only: the check saw nothing");
    let d: Deployment = toml::from_str("residual = \"droop_gain\"").unwrap();
    assert_eq!(d.residual, Residual::DroopGain);
}

/// `Residual::DroopPivot`: the action picks a curve from a family around droop's. Zero output is
/// droop bit for bit; θ = 1 turns the default curve (0.95/0.98/1.02/1.05) into 0.96/0.975/1.025/1.04
/// exactly (checked against that curve's own response); θ < 0 is a gain; and every applied setpoint
/// is the pivot map of droop's own filter, stepped here by hand.
#[test]
fn the_pivot_residual_is_droop_at_zero_and_turns_droops_curve() {
    use voltarena_env::action::DroopCurve;
    use voltarena_env::deploy::pivot;
    // The static curves: pivot(droop(v), 1) is the steeper curve, at every voltage.
    let steep = DroopCurve { v: [0.96, 0.975, 1.025, 1.04], q_frac: 1.0 };
    for i in 0..=1200 {
        let v = 0.93 + 1.4e-4 * i as f64;
        let (d, want) = (DroopCurve::DEFAULT.response(v), steep.response(v));
        assert!((pivot(d, 1.0) - want).abs() < 1e-9, "v {v}: pivot {} against the curve's {want}", pivot(d, 1.0));
        assert_eq!(pivot(d, 0.0).to_bits(), d.to_bits());
        assert!((pivot(d, -0.4) - 0.6 * d).abs() < 1e-15);
    }
    let task = Arc::new(Task::load("mapdn33").unwrap());
    let run = |c: Box<dyn Controller>, d: Deployment| run(&task, c, d, &[0, 1]);
    let piv = Deployment { residual: Residual::DroopPivot, ..Default::default() };
    let droop = run(Box::new(Droop::default()), Deployment::default());
    let zero = run(Box::new(NoControl), piv);
    assert_eq!(zero.metrics, droop.metrics);
    assert_eq!(zero.mean_return.to_bits(), droop.mean_return.to_bits());
    for theta in [0.6f64, -0.6] {
        let (moved, changed) = step_by_hand(&task, Deployment { action_scale: 0.6, ..piv }, theta.signum(), |own| pivot(own, theta));
        assert!(moved > 100 && changed > 100, "θ {theta}: droop acted on {moved} agent-steps and the pivot changed {changed}: the check saw nothing");
    }
    let d: Deployment = toml::from_str("residual = \"droop_pivot\"").unwrap();
    assert_eq!(d.residual, Residual::DroopPivot);
}
