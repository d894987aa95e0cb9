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

#[test]
fn zero_corrections_on_the_droop_residual_are_droop() {
    for name in ["mapdn33", "mapdn141"] {
        let task = Arc::new(Task::load(name).unwrap());
        let run = |c: Box<dyn Controller>, d: Deployment| {
            let mut env = VoltageEnv::new(task.clone()).unwrap();
            let mut dep = Deployed::new(c, &task, d).unwrap();
            evaluate(&mut env, &mut dep, Split::Test, &[0, 1], &mut |_, _, _| {}).unwrap()
        };
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
