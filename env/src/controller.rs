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
