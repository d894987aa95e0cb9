//! A trained policy as an environment [`Controller`] (deterministic actions from the shared actor).

use crate::train::{Learner, TrainConfig};
use std::path::Path;
use voltarena_env::{Controller, VoltageEnv};

pub struct RlPolicy {
    learner: Learner,
    n_agents: usize,
    name: String,
}

impl RlPolicy {
    /// Loads the networks of a checkpoint folder for a run with config `cfg`.
    pub fn load(cfg: &TrainConfig, checkpoint: &Path, n_agents: usize, obs_dim: usize, state_dim: usize) -> Result<RlPolicy, String> {
        let mut learner = Learner::new(cfg, n_agents, obs_dim, state_dim).map_err(|e| e.to_string())?;
        learner.load(checkpoint, 0).map_err(|e| format!("{}: {e}", checkpoint.display()))?;
        let name = match cfg.algorithm {
            crate::train::Algorithm::Matd3 => "matd3",
            crate::train::Algorithm::Maddpg => "maddpg",
        };
        Ok(RlPolicy { learner, n_agents, name: name.into() })
    }
}

impl Controller for RlPolicy {
    fn name(&self) -> &str {
        &self.name
    }
    fn act(&mut self, env: &VoltageEnv, actions: &mut [f64]) {
        self.learner.act(env.observations(), self.n_agents, actions);
    }
}
