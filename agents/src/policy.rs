//! A trained policy as an environment [`Controller`]: the deterministic shared actor, with the run's
//! frozen normalisation and recurrent state. Its raw actions reach the grid through the run's
//! [`voltarena_env::Deployment`] (dead zone, safety layer): see [`crate::run::RunDir::deploy`].

use crate::run::RunError;
use crate::train::{Learner, TrainConfig};
use std::path::Path;
use voltarena_env::{Controller, VoltageEnv};

/// The actor of a checkpoint.
pub struct RlPolicy {
    learner: Learner,
    name: String,
    /// The run's frozen normalisation and recurrent state.
    acting: crate::train::Acting,
}

impl RlPolicy {
    /// Loads the networks of a checkpoint folder for a run with config `cfg`.
    pub fn load(cfg: &TrainConfig, checkpoint: &Path, n_agents: usize, obs_dim: usize, state_dim: usize) -> Result<RlPolicy, RunError> {
        let bad = |message: String| RunError::Checkpoint { path: checkpoint.to_path_buf(), message };
        let mut learner = {
            let _g = crate::train::torch_init_lock();
            Learner::new(cfg, n_agents, obs_dim, state_dim).map_err(|e| bad(e.to_string()))?
        };
        learner.load_actor(checkpoint).map_err(|e| bad(e.to_string()))?;
        let norm = crate::normalize::Normalizer::load(checkpoint).map_err(bad)?;
        if (cfg.normalize_obs || cfg.normalize_reward) && norm.is_identity() {
            return Err(bad("the run normalises its inputs but normalizer.json is missing".into()));
        }
        let name = match cfg.algorithm {
            crate::train::Algorithm::Matd3 => "matd3",
            crate::train::Algorithm::Maddpg => "maddpg",
        };
        let acting = crate::train::Acting::new(&learner, norm, n_agents);
        Ok(RlPolicy { learner, name: name.into(), acting })
    }
}

impl Controller for RlPolicy {
    fn name(&self) -> &str {
        &self.name
    }
    fn reset(&mut self, _env: &VoltageEnv, _seed: u64) {
        self.acting.reset();
    }
    fn act(&mut self, env: &VoltageEnv, actions: &mut [f64]) {
        self.acting.act(&self.learner, env, actions);
    }
    /// Decentralised execution on the agents' zone observations.
    fn communication(&self, task: &voltarena_env::Task) -> voltarena_env::controller::Communication {
        voltarena_env::controller::Communication::zone_observations(task)
    }
}
