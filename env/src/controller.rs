//! The one interface every controller implements — RL policies, OFO, droop, no control — so that
//! comparisons run every controller through identical code; how a controller reaches the grid
//! (dead zone, safety layer) is [`crate::deploy`].

use crate::env::VoltageEnv;
use rand::{RngExt, SeedableRng};

/// A voltage controller: given the environment's current (observed) state, writes one action
/// a ∈ [−1, 1] per agent. Implementations must only read what they are allowed to see: local
/// measurements ([`VoltageEnv::local`]), observations, or (centralised baselines) the model.
pub trait Controller: Send {
    /// Name used in results tables.
    fn name(&self) -> &str;
    /// Called after every `reset` of the environment.
    fn reset(&mut self, _env: &VoltageEnv, _seed: u64) {}
    /// Writes the next actions.
    fn act(&mut self, env: &VoltageEnv, actions: &mut [f64]);
    /// Mean wall time of the controller's own computation per call, when it measures it.
    fn seconds_per_iteration(&self) -> Option<f64> {
        None
    }
    /// Caps on the PV active power (MW per agent; +∞ = none) after the last `act`, for controllers
    /// that also curtail (OFO §IV-I); `None` for reactive-power-only controllers (default). The
    /// evaluation loops pass them to [`VoltageEnv::set_curtailment`] before the step.
    fn curtailment(&self) -> Option<&[f64]> {
        None
    }
    /// What the controller needs from the communication network per control step (default: none,
    /// a purely local controller).
    fn communication(&self, _task: &crate::Task) -> Communication {
        Communication::default()
    }
}

/// How far a controller's information travels per control step, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reach {
    /// Local measurements only.
    #[default]
    None,
    /// Measurements of the agent's zone (MAPDN's observations).
    Zone,
    /// Messages between electrically neighbouring nodes.
    Neighbours,
    /// To and from a central operator.
    Central,
}

/// Communication per control step: how far it reaches and how many point-to-point messages (one
/// number each) it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Communication {
    pub reach: Reach,
    pub messages_per_step: usize,
}

impl Communication {
    /// Both needs together (a controller behind a safety layer).
    pub fn and(self, other: Communication) -> Communication {
        Communication { reach: self.reach.max(other.reach), messages_per_step: self.messages_per_step + other.messages_per_step }
    }

    /// Every agent reads the buses of its zone: Σ_k (|Z_k| − 1) messages.
    pub fn zone_observations(task: &crate::Task) -> Communication {
        let messages = task.zones.iter().map(|z| z.agents.len() * z.buses.len().saturating_sub(1)).sum();
        Communication { reach: Reach::Zone, messages_per_step: messages }
    }
}

/// No control: q ≡ 0.
#[derive(Debug, Clone, Default)]
pub struct NoControl;

impl Controller for NoControl {
    fn name(&self) -> &str {
        "none"
    }
    fn act(&mut self, _env: &VoltageEnv, actions: &mut [f64]) {
        actions.fill(0.0);
    }
}

/// Uniform random actions in [−1, 1] (seeded at every reset).
#[derive(Debug, Clone)]
pub struct RandomControl {
    rng: rand_chacha::ChaCha8Rng,
}

impl Default for RandomControl {
    fn default() -> Self {
        RandomControl { rng: rand_chacha::ChaCha8Rng::seed_from_u64(0) }
    }
}

impl Controller for RandomControl {
    fn name(&self) -> &str {
        "random"
    }
    fn reset(&mut self, _env: &VoltageEnv, seed: u64) {
        self.rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_0FAC_7105);
    }
    fn act(&mut self, _env: &VoltageEnv, actions: &mut [f64]) {
        for a in actions.iter_mut() {
            *a = self.rng.random_range(-1.0..=1.0);
        }
    }
}
