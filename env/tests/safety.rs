//! Safety layers: on random states the filtered action satisfies the linearised voltage
//! constraints and the capacity box whenever the layer reports the problem feasible, and equals
//! the proposal when that is already safe; on a LinDistFlow plant with the data held, a random
//! policy behind the projection filter never violates the limits.

use std::sync::Arc;
use voltarena_env::controller::RandomControl;
use voltarena_env::safety::{SafetyConfig, SafetyKind, SafetyLayer};
use voltarena_env::task::Backend;
use voltarena_env::{Controller, ResetOptions, Split, Task, VoltageEnv};

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

/// Predicted voltage change G(a − a_t) at every bus, recomputed here from the layer's sensitivity.
fn predicted(layer: &SafetyLayer, env: &VoltageEnv, a: &[f64]) -> Vec<f64> {
    let task = env.task();
    let n = task.network.n_bus();
    (0..n)
        .map(|i| {
            (0..a.len())
                .map(|k| {
                    let l = env.local(k);
                    let rho = task.spec.action_scale * l.q_avail_mvar;
                    let at = if rho > 0.0 { env.q_mvar()[k] / rho } else { 0.0 };
                    layer.sensitivity(i, k) * rho * (a[k] - at)
                })
                .sum()
        })
        .collect()
}

#[test]
fn filtered_actions_satisfy_the_linearised_constraints_and_safe_ones_pass_unchanged() {
    for (name, kind, gamma) in [("mapdn33", SafetyKind::Projection, 1.0), ("mapdn33", SafetyKind::Cbf, 0.3), ("mapdn141", SafetyKind::Projection, 1.0)] {
        let task = Arc::new(Task::builtin(name).unwrap());
        let cfg = SafetyConfig { kind, gamma, ..Default::default() };
        let mut layer = SafetyLayer::new(&task, cfg).unwrap();
        let mut env = VoltageEnv::new(task.clone()).unwrap();
        let mut rng = Lcg(17);
        let n = env.n_agents();
        let (mut checked, mut unchanged) = (0, 0);
        for seed in 0..6 {
            env.reset(seed, &ResetOptions { split: Split::Test, ..Default::default() }).unwrap();
            for _ in 0..40 {
                let a: Vec<f64> = (0..n).map(|_| rng.next()).collect();
                env.step(&a).unwrap(); // a random state with a random action in force
                let proposal: Vec<f64> = (0..n).map(|_| 1.2 * rng.next()).collect();
                let mut out = vec![0.0; n];
                let info = layer.filter(&env, &proposal, &mut out);
                assert!(out.iter().all(|x| x.abs() <= 1.0 + 1e-9), "capacity box");
                let g = if kind == SafetyKind::Projection { 1.0 } else { gamma };
                let v = env.vm_pu();
                let (hi, lo, d) = (task.spec.v_max, task.spec.v_min, cfg.margin_pu);
                let dv = predicted(&layer, &env, &out);
                if !info.infeasible {
                    for &i in &task.metric_buses {
                        if i == task.network.slack {
                            continue;
                        }
                        assert!(dv[i] <= g * (hi - d - v[i]) + 1e-6, "{name} {kind:?}: upper row {i}");
                        assert!(-dv[i] <= g * (v[i] - lo - d) + 1e-6, "{name} {kind:?}: lower row {i}");
                    }
                    checked += 1;
                }
                if !info.intervened {
                    let clipped: Vec<f64> = proposal.iter().map(|x| x.clamp(-1.0, 1.0)).collect();
                    assert_eq!(out, clipped, "an un-intervened action is the (clipped) proposal");
                    unchanged += 1;
                }
                // A proposal that is already safe is returned as is.
                let mut again = vec![0.0; n];
                let info2 = layer.filter(&env, &out, &mut again);
                if !info.infeasible {
                    assert!(!info2.intervened || info2.correction < 1e-3, "{name}: the filtered action is a fixed point ({})", info2.correction);
                }
            }
        }
        assert!(checked > 100, "{name}: {checked} feasible instances checked");
        eprintln!("{name} {kind:?}: {checked} feasible, {unchanged} unchanged of 240");
    }
}

#[test]
fn projection_filter_keeps_a_random_policy_within_limits_on_a_lindistflow_plant() {
    let task = Arc::new(Task::builtin("mapdn33").unwrap());
    let mut env = VoltageEnv::with_backend(task.clone(), Backend::Lindistflow).unwrap();
    let mut layer = SafetyLayer::new(&task, SafetyConfig { kind: SafetyKind::Projection, ..Default::default() }).unwrap();
    let mut ctl = RandomControl::default();
    let per_day = 86_400 / 180;
    let (mut steps, mut violations, mut infeasible) = (0, 0, 0);
    // Held data (the predictor's persistence is exact): a noon and an evening operating point of
    // test days, 100 random proposals each.
    for (day, hour) in [(12, 12), (13, 19), (26, 13), (27, 18)] {
        let start = day * per_day + hour * per_day / 24;
        env.reset(0, &ResetOptions { split: Split::Test, data_noise: Some(false), start: Some(start), hold_data: true }).unwrap();
        ctl.reset(&env, day as u64);
        let (mut prop, mut out) = (vec![0.0; 6], vec![0.0; 6]);
        for _ in 0..100 {
            ctl.act(&env, &mut prop);
            let info = layer.filter(&env, &prop, &mut out);
            let s = env.step(&out).unwrap();
            steps += 1;
            if info.infeasible {
                infeasible += 1;
            } else if s.metrics.cr < 1.0 {
                violations += 1;
            }
        }
    }
    assert_eq!(violations, 0, "violations on feasible steps ({infeasible} infeasible of {steps})");
    assert!(infeasible < steps / 2);
}
