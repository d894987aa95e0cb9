//! A trained policy as an environment [`Controller`] (deterministic actions from the shared actor).

use crate::train::{Learner, TrainConfig};
use std::path::Path;
use voltarena_env::{Controller, VoltageEnv};

/// The deployed system: the actor, behind the run's safety layer (if any).
pub struct RlPolicy {
    learner: Learner,
    name: String,
    safety: Option<voltarena_env::safety::SafetyLayer>,
    proposed: Vec<f64>,
    /// The run's frozen normalisation, recurrent state and action dead zone.
    acting: crate::train::Acting,
}

impl RlPolicy {
    /// Loads the networks of a checkpoint folder for a run with config `cfg`.
    pub fn load(cfg: &TrainConfig, checkpoint: &Path, n_agents: usize, obs_dim: usize, state_dim: usize) -> Result<RlPolicy, String> {
        let mut learner = Learner::new(cfg, n_agents, obs_dim, state_dim).map_err(|e| e.to_string())?;
        learner.load(checkpoint, 0).map_err(|e| format!("{}: {e}", checkpoint.display()))?;
        let norm = crate::normalize::Normalizer::load(checkpoint)?;
        if (cfg.normalize_obs || cfg.normalize_reward) && norm.is_identity() {
            return Err(format!("{}: the run normalises its inputs but normalizer.json is missing", checkpoint.display()));
        }
        let name = match cfg.algorithm {
            crate::train::Algorithm::Matd3 => "matd3",
            crate::train::Algorithm::Maddpg => "maddpg",
        };
        let acting = crate::train::Acting::new(&learner, norm, cfg.action_dead_zone, n_agents);
        Ok(RlPolicy { learner, name: name.into(), safety: None, proposed: vec![0.0; n_agents], acting })
    }

    /// Puts the run's safety layer between the actor and the grid.
    pub fn with_safety(mut self, task: &voltarena_env::Task, cfg: voltarena_env::safety::SafetyConfig) -> Result<RlPolicy, String> {
        if cfg.kind != voltarena_env::safety::SafetyKind::None {
            self.safety = Some(voltarena_env::safety::SafetyLayer::new(task, cfg).map_err(|e| e.to_string())?);
        }
        Ok(self)
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
        match &mut self.safety {
            None => self.acting.act(&self.learner, env, actions),
            Some(layer) => {
                self.acting.act(&self.learner, env, &mut self.proposed);
                layer.filter(env, &self.proposed, actions);
            }
        }
    }
}
