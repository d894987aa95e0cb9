//! The one interface every controller implements — RL policies, OFO, droop, no control — so that
//! comparisons run every controller through identical code.

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

/// Aggregate result of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean undiscounted team return per episode.
    pub mean_return: f64,
    /// Metrics over all steps of all episodes.
    pub metrics: crate::env::MetricsSummary,
    /// Steps run (all episodes).
    pub steps: usize,
    /// Steps at which the safety layer changed the action.
    pub interventions: usize,
}

/// The one evaluation loop used by `eval`, `compare` and `leaderboard`: runs `ctl` (behind `layer`,
/// if any) on one episode per seed of `split`, without data noise, so that every controller given
/// the same seeds sees exactly the same episodes. `on_step(episode index, env, step)` is called
/// after every step (for plots and traces).
pub fn evaluate(
    env: &mut VoltageEnv,
    ctl: &mut dyn Controller,
    mut layer: Option<&mut crate::safety::SafetyLayer>,
    split: crate::profiles::Split,
    seeds: &[u64],
    on_step: &mut dyn FnMut(usize, &VoltageEnv, &crate::env::Step),
) -> Result<Evaluation, crate::env::EnvError> {
    let n = env.n_agents();
    let task = env.task().clone();
    let mut acc = crate::env::MetricsAcc::new(task.network.n_bus());
    let (mut prop, mut act) = (vec![0.0; n], vec![0.0; n]);
    let (mut total, mut steps, mut interventions) = (0.0, 0usize, 0usize);
    let opts = crate::env::ResetOptions { split, data_noise: Some(false), ..Default::default() };
    for (i, &seed) in seeds.iter().enumerate() {
        env.reset(seed, &opts)?;
        ctl.reset(env, seed);
        loop {
            ctl.act(env, &mut prop);
            match layer.as_deref_mut() {
                Some(l) => interventions += l.filter(env, &prop, &mut act).intervened as usize,
                None => {
                    for (a, p) in act.iter_mut().zip(&prop) {
                        *a = p.clamp(-1.0, 1.0);
                    }
                }
            }
            let s = env.step(&act)?;
            total += s.reward;
            steps += 1;
            on_step(i, env, &s);
            if s.terminated || s.truncated {
                break;
            }
        }
        acc.merge(env.episode_metrics());
    }
    Ok(Evaluation { mean_return: total / seeds.len().max(1) as f64, metrics: acc.summary(&task.bus_id), steps, interventions })
}
