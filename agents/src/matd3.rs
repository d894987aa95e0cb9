//! MATD3 (multi-agent TD3; Ackermann et al. 2019) with centralised training, decentralised
//! execution and parameter sharing — readable top to bottom, hyperparameters in [`Matd3Config`].
//!
//! * one actor μ(o_k ‖ id_k) shared by all agents, and its target copy;
//! * twin centralised critics Q₁, Q₂(s, a₁..a_n) on the global state and every agent's action
//!   (one team reward), and their targets;
//! * critic target y = r + γ (1 − done) min_j Q_j'(s', ã'), ã' = clip(μ'(o') + clip(ε, ±c), ±1),
//!   ε ~ N(0, σ_target) — target policy smoothing;
//! * the actor (and the targets) updated every `policy_delay` critic updates, maximising
//!   Q₁(s, μ(o₁), …, μ(o_n)) — the joint deterministic policy gradient through the shared actor;
//! * Adam, global-norm gradient clipping, soft target updates with rate τ;
//! * optionally a critic warm-up (`actor_warmup`): the first critic updates train the critics
//!   (and move their targets) with the actor held where it starts.
//!
//! With a known action cost ([`ActionCost`], the training config's `analytic_q_cost`): the reward
//! is r = r_v − c(a), where c(a) = α·mean_k |q_k(a)| is the reactive-power term, an exact function
//! of the joint action (given each agent's residual base and action range). The critics then learn
//! G = Q + c — the return without the immediate cost — with target
//! y = r + c(a) + γ (1 − done) (min_j G_j'(s', ã') − c(ã')), and the actor maximises
//! G₁(s, μ(o)) − c(μ(o)): the same objective as Q₁, but the cost's gradient is exact instead of
//! learnt, per agent, from a team reward averaged over every inverter.

use crate::buffer::Batch;
use crate::nets::{clip_grad_norm, load_stores, save_stores, soft_update, Actor, Critic, CriticKind};
use serde::{Deserialize, Serialize};
use voltarena_env::deploy::Residual;
use std::path::Path;
use crate::adam::Adam;
use tch::nn;
use tch::{Device, Kind, Tensor};

/// MATD3 hyperparameters (defaults: TD3's, with MAPDN-sized networks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Matd3Config {
    pub actor_hidden: usize,
    /// Recurrent (GRU) shared actor, as MAPDN's agents; its hidden state rides in the replay
    /// buffer next to the observation (stored state, no back-propagation through time).
    #[serde(skip_serializing_if = "crate::nets::is_false")]
    pub actor_gru: bool,
    pub critic_hidden: usize,
    pub actor_lr: f64,
    pub critic_lr: f64,
    /// Discount γ.
    pub gamma: f64,
    /// Soft target update rate τ.
    pub tau: f64,
    pub batch_size: usize,
    /// Critic updates per actor (and target) update.
    pub policy_delay: usize,
    /// σ of the target policy smoothing noise, and its clip c.
    pub target_noise: f64,
    pub target_noise_clip: f64,
    /// Global gradient-norm clip (0 = off).
    pub grad_clip: f64,
    /// Rewards are multiplied by this before learning.
    pub reward_scale: f64,
    /// `centralized` (MATD3), `local` (the ITD3 ablation) or `factored` (V(s) + mean_k U(o_k, a_k):
    /// per-agent credit for many agents, `nets::CriticKind`).
    pub critic: CriticKind,
    /// The actor's last layer starts uniform in ±this (weights and bias; DDPG's 3e-3), so the
    /// first policy acts ≈ 0 — with `residual = "droop"`, ≈ droop — instead of wherever a random
    /// network lands; 0 (default): libtorch's initialisation. Left out of the resolved config when 0.
    #[serde(skip_serializing_if = "crate::nets::is_zero")]
    pub actor_last_init: f64,
    /// Critic updates before the first actor update (critic warm-up): the critics (and their
    /// targets) learn the behaviour policy's values first, so the actor does not follow the
    /// gradient of an untrained critic away from where it starts (with `actor_last_init` and
    /// `residual = "droop"`: away from droop). 0 (default): none. Left out of the resolved config
    /// when 0.
    #[serde(skip_serializing_if = "crate::nets::is_zero_usize")]
    pub actor_warmup: usize,
    /// Reactive-power budget ρ (needs `analytic_q_cost` and `residual = "droop"`): the actor
    /// maximises G(s, μ(o)) − c(μ(o)) − λ·c_held(μ(o)) subject to E[c_held(μ(o))] ≤ ρ·E[c(droop)]
    /// on the replay states, where c_held is the cost the correction reaches when held (droop's
    /// filter integrates a held correction r to r / smoothing, `ActionCost::held_cost`), with the
    /// multiplier λ ≥ 0 raised by dual ascent whenever the policy's mean held cost on an actor batch
    /// is above ρ times droop's on the same states (a constrained-RL Lagrangian, as RCPO, with the
    /// constraint known exactly). ρ = 1: "no more reactive power than droop". 0 (default): off,
    /// λ stays 0. Left out of the resolved config when 0.
    #[serde(skip_serializing_if = "crate::nets::is_zero")]
    pub q_budget: f64,
    /// Dual step size η of λ ← max(0, λ + η·(E c_held(μ) − ρ E c(droop)) / E c(droop)) per actor update
    /// (dimensionless: the violation is relative). Left out of the resolved config at its default.
    #[serde(skip_serializing_if = "is_default_dual_lr")]
    pub q_budget_lr: f64,
    /// What the budget measures a correction from (`BudgetReference`): `"base"` (default, what
    /// the runs of session 14 used), `"droop_target"` or `"droop_alone"`. Left out of the resolved config at its
    /// default.
    #[serde(skip_serializing_if = "BudgetReference::is_base")]
    pub q_budget_reference: BudgetReference,
    /// Behaviour regularisation β of the actor (TD3+BC, Fujimoto & Gu 2021): the actor maximises
    /// J(μ) − β · mean|J| · mean_k (μ_k(o) − a_k)², with J the objective above (Q less the known
    /// costs) and a the replay's actions, so the policy stays where the data are and the critic is
    /// not followed far outside the actions it was fitted on (its scale follows |J|, which grows
    /// with the budget's multiplier). 0 (default): off. Left out of the resolved config when 0.
    #[serde(skip_serializing_if = "crate::nets::is_zero")]
    pub actor_bc: f64,
}

/// Where the reactive-power budget's held cost and its reference are measured from.
///
/// Droop's filter steps q ← q + s·(T − q) from the setpoint in force towards the curve's target T,
/// and a residual correction r is added on top, so with r held the setpoint settles at T + r / s,
/// while the residual base (the filter's output) settles at T + r·(1/s − 1): it already carries
/// most of the held correction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetReference {
    /// c_held = c(base + r / s) against c(base): the base drifts with the policy, so both
    /// count the accumulated correction (the held cost twice).
    #[default]
    Base,
    /// c_held = c(T + r / s) against c(T), droop's static target at the transition's voltages
    /// (kept per transition in the replay): the settled cost of the correction against droop's.
    DroopTarget,
    /// Needs `residual = "droop_offset"` or `"droop_gain"`. The actor is charged λ·c of its action
    /// applied to droop's own filter output at the replay state (base + r, or base·(1 + r)) — but λ's dual step is taken
    /// once per training episode, in closed loop: the deterministic policy and droop alone are run
    /// on that episode's day and λ ← max(0, λ + η (QL_π − ρ QL_droop) / mean QL_droop)
    /// ([`Matd3::closed_loop_dual_step`]). Measured in session 16,
    /// a budget on replay states misses the closed-loop QL both ways: exploration noise makes
    /// droop's own part spend ≈ 10 % more on the replay states than droop alone does (σ 0.2 → 0.15),
    /// and a policy that meets the budget on old replay states spends more on the states it
    /// drives the feeder to itself (ρ = 0.95 met on the replay, +11 % QL on the same training days).
    DroopAlone,
}

impl BudgetReference {
    fn is_base(&self) -> bool {
        *self == BudgetReference::Base
    }
}

/// Default dual step size of the reactive-power budget.
pub const DEFAULT_Q_BUDGET_LR: f64 = 0.05;

fn is_default_dual_lr(x: &f64) -> bool {
    *x == DEFAULT_Q_BUDGET_LR
}

impl Default for Matd3Config {
    fn default() -> Self {
        Matd3Config {
            actor_hidden: 64,
            actor_gru: false,
            critic_hidden: 128,
            actor_lr: 1e-3,
            critic_lr: 1e-3,
            gamma: 0.99,
            tau: 0.005,
            batch_size: 256,
            policy_delay: 2,
            target_noise: 0.2,
            target_noise_clip: 0.5,
            grad_clip: 1.0,
            reward_scale: 1.0,
            critic: CriticKind::Centralized,
            actor_last_init: 0.0,
            actor_warmup: 0,
            q_budget: 0.0,
            q_budget_lr: DEFAULT_Q_BUDGET_LR,
            q_budget_reference: BudgetReference::Base,
            actor_bc: 0.0,
        }
    }
}

impl Matd3Config {
    /// Every hyperparameter in its range (keys as in the `[matd3]` table of a training config).
    pub fn validate(&self) -> Result<(), crate::validate::ConfigError> {
        let common = crate::validate::Common {
            actor_hidden: self.actor_hidden,
            critic_hidden: self.critic_hidden,
            actor_lr: self.actor_lr,
            critic_lr: self.critic_lr,
            gamma: self.gamma,
            tau: self.tau,
            batch_size: self.batch_size,
            grad_clip: self.grad_clip,
            reward_scale: self.reward_scale,
        };
        common.validate("matd3.")?;
        let c = crate::validate::Check { prefix: "matd3." };
        c.at_least("policy_delay", self.policy_delay, 1)?;
        c.non_negative("target_noise", self.target_noise)?;
        c.non_negative("target_noise_clip", self.target_noise_clip)?;
        c.non_negative("actor_last_init", self.actor_last_init)?;
        c.non_negative("q_budget", self.q_budget)?;
        c.non_negative("q_budget_lr", self.q_budget_lr)?;
        c.non_negative("actor_bc", self.actor_bc)?;
        if self.q_budget_reference != BudgetReference::Base && self.q_budget == 0.0 {
            let found = if self.q_budget_reference == BudgetReference::DroopTarget { "\"droop_target\"" } else { "\"droop_alone\"" };
            return Err(crate::validate::ConfigError::new("matd3.q_budget_reference", "\"base\" unless q_budget > 0", found));
        }
        Ok(())
    }
}

/// The reward's reactive-power term as a function of the actions: c(a) = w · mean_k |clamp(b_k +
/// s·dz(a_k), ±1)| · r_k (with a gain residual, |clamp(b_k·(1 + s·dz(a_k)), ±1)| · r_k), with
/// w = α (the reward's `q_weight`) · `reward_scale`, s the action scale, dz the action dead zone,
/// b_k the residual base and r_k the action range in force (Mvar per unit of action) — exactly
/// the environment's α·mean_k |q_k| (tested in `tests/action_cost.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActionCost {
    /// α · reward_scale (per Mvar of mean |q|).
    pub weight: f64,
    /// The action dead zone d ∈ [0, 1).
    pub dead_zone: f64,
    /// The action scale s ∈ (0, 1] (`TrainConfig::action_scale`).
    pub scale: f64,
    /// How the action meets the base: added (`residual = "droop"` / `"droop_offset"`: applied = b +
    /// s·dz(a)), as a gain (`"droop_gain"`: b·(1 + s·dz(a))) or as the curve parameter of
    /// `"droop_pivot"` (`voltarena_env::deploy::pivot(b, s·dz(a))`).
    pub residual: Residual,
}

impl ActionCost {
    /// c(a) per transition, [B, 1], for actions `a` [B, n] (before the dead zone), residual bases
    /// `base` and ranges `range` [B, n].
    pub fn cost(&self, a: &Tensor, base: &Tensor, range: &Tensor) -> Tensor {
        let a = a.clamp(-1.0, 1.0);
        let d = self.dead_zone;
        let dz = if d > 0.0 { a.sign() * (a.abs() - d).relu() / (1.0 - d) } else { a };
        let dz = if self.scale != 1.0 { dz * self.scale } else { dz };
        let applied = match self.residual {
            Residual::DroopGain => base * (dz + 1.0),
            Residual::DroopPivot => {
                // pivot(b, θ): sign(b)·clip((1 + θ)|b| − θ/3, 0, 1) for θ ≥ 0, (1 + θ)·b below.
                let up = base.sign() * (base.abs() * (&dz + 1.0) - &dz * voltarena_env::deploy::PIVOT_POINT).clamp(0.0, 1.0);
                let down = base * (&dz + 1.0);
                up.where_self(&dz.ge(0.0), &down)
            }
            _ => base + dz,
        };
        self.of_applied(&applied, range)
    }

    /// w · mean_k |clamp(applied_k, ±1)| · r_k, [B, 1].
    fn of_applied(&self, applied: &Tensor, range: &Tensor) -> Tensor {
        (applied.clamp(-1.0, 1.0).abs() * range).mean_dim([1i64].as_slice(), true, Kind::Float) * self.weight
    }

    /// c with each correction multiplied by `gain` before it meets the base: with `gain` =
    /// 1 / droop's smoothing, the cost a correction reaches when held (droop's first-order filter
    /// starts each step from the setpoint in force, so a held correction r accumulates to
    /// r / smoothing), [B, 1].
    pub fn held_cost(&self, a: &Tensor, base: &Tensor, range: &Tensor, gain: f64) -> Tensor {
        ActionCost { scale: self.scale * gain, ..*self }.cost(a, base, range)
    }

    /// c of the residual base alone (every agent's correction 0: with `residual = "droop"`,
    /// droop's own cost), [B, 1].
    pub fn base_cost(&self, base: &Tensor, range: &Tensor) -> Tensor {
        self.of_applied(base, range)
    }
}

/// Losses of one update.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UpdateInfo {
    pub critic_loss: f64,
    /// Present when the actor was updated.
    pub actor_loss: Option<f64>,
    pub q_mean: f64,
    /// The reactive-power budget's multiplier λ after this update (0 when the budget is off).
    pub q_multiplier: f64,
}

pub struct Matd3 {
    pub cfg: Matd3Config,
    actor_vs: nn::VarStore,
    actor: Actor,
    actor_target_vs: nn::VarStore,
    actor_target: Actor,
    critic_vs: nn::VarStore,
    q1: Critic,
    q2: Critic,
    critic_target_vs: nn::VarStore,
    q1_target: Critic,
    q2_target: Critic,
    actor_opt: Adam,
    critic_opt: Adam,
    updates: usize,
    /// Source of the target-smoothing noise (owned, so runs are reproducible whatever else uses
    /// libtorch's global generator).
    noise_rng: std::cell::RefCell<rand_chacha::ChaCha8Rng>,
    noise_buf: std::cell::RefCell<Vec<f32>>,
    /// The known action cost (None: the critics learn the whole reward).
    cost: Option<ActionCost>,
    /// The closed-loop budget's running sum of droop alone's QL per measured episode (Mvar) and
    /// their count.
    budget_reference_sum: f64,
    budget_episodes: usize,
    /// Multiplier λ ≥ 0 of the reactive-power budget (`q_budget`).
    q_multiplier: f64,
    /// How much a held correction grows at steady state (1 / the residual droop's smoothing).
    budget_gain: f64,
}

impl Matd3 {
    /// Builds the networks (initialised from tch's global seed: call `tch::manual_seed` first);
    /// `seed` drives the target-smoothing noise.
    pub fn new(cfg: Matd3Config, n_agents: usize, obs_dim: usize, state_dim: usize, seed: u64) -> Result<Matd3, tch::TchError> {
        crate::numerics::pin();
        let dev = Device::Cpu;
        let actor_vs = nn::VarStore::new(dev);
        let mk = |p: &nn::Path| if cfg.actor_gru { Actor::new_gru(p, obs_dim, n_agents, cfg.actor_hidden) } else { Actor::new(p, obs_dim, n_agents, cfg.actor_hidden) };
        let actor = mk(&actor_vs.root());
        if cfg.actor_last_init > 0.0 {
            crate::nets::init_uniform(&actor_vs, "l3.", cfg.actor_last_init, seed ^ 0x1A57);
        }
        let mut actor_target_vs = nn::VarStore::new(dev);
        let actor_target = mk(&actor_target_vs.root());
        actor_target_vs.copy(&actor_vs)?;
        // Batches carry [o ‖ h] for the recurrent actor (a local critic sees the same row).
        let obs_in = obs_dim + actor.hidden_dim();
        let critic_vs = nn::VarStore::new(dev);
        let q1 = Critic::new(&(critic_vs.root() / "q1"), cfg.critic, n_agents, obs_in, state_dim, cfg.critic_hidden);
        let q2 = Critic::new(&(critic_vs.root() / "q2"), cfg.critic, n_agents, obs_in, state_dim, cfg.critic_hidden);
        let mut critic_target_vs = nn::VarStore::new(dev);
        let q1_target = Critic::new(&(critic_target_vs.root() / "q1"), cfg.critic, n_agents, obs_in, state_dim, cfg.critic_hidden);
        let q2_target = Critic::new(&(critic_target_vs.root() / "q2"), cfg.critic, n_agents, obs_in, state_dim, cfg.critic_hidden);
        critic_target_vs.copy(&critic_vs)?;
        let actor_opt = Adam::new(&actor_vs, cfg.actor_lr);
        let critic_opt = Adam::new(&critic_vs, cfg.critic_lr);
        Ok(Matd3 {
            cfg,
            actor_vs,
            actor,
            actor_target_vs,
            actor_target,
            critic_vs,
            q1,
            q2,
            critic_target_vs,
            q1_target,
            q2_target,
            actor_opt,
            critic_opt,
            updates: 0,
            noise_rng: std::cell::RefCell::new(rand::SeedableRng::seed_from_u64(seed)),
            noise_buf: std::cell::RefCell::new(Vec::new()),
            cost: None,
            q_multiplier: 0.0,
            budget_reference_sum: 0.0,
            budget_episodes: 0,
            budget_gain: 1.0,
        })
    }

    /// Learn with the known action cost (batches must carry its terms; centralised critics only).
    pub fn set_action_cost(&mut self, cost: Option<ActionCost>) {
        self.cost = cost;
    }

    /// The factor by which the residual base's dynamics multiply a held correction at steady state
    /// (`q_budget` charges the cost at that level): 1 / `RESIDUAL_DROOP_SMOOTHING` with
    /// `residual = "droop"`; 1 (default) for a base that does not integrate the correction.
    pub fn set_budget_gain(&mut self, gain: f64) {
        self.budget_gain = gain;
    }

    /// Deterministic actions for one joint observation [n_agents × obs_dim] (row-major; with the
    /// recurrent actor [n_agents × (obs_dim + hidden)], and the next hidden state goes to `h_next`).
    pub fn act(&self, obs: &[f32], n_agents: usize, out: &mut [f64]) {
        self.act_hidden(obs, n_agents, out, &mut [])
    }

    /// [`Self::act`] that also returns the recurrent actor's next hidden state.
    pub fn act_hidden(&self, obs: &[f32], n_agents: usize, out: &mut [f64], h_next: &mut [f32]) {
        self.actor.act(obs, n_agents, out, h_next)
    }

    /// Width of the actor's recurrent state (0: feed-forward).
    pub fn hidden_dim(&self) -> usize {
        self.actor.hidden_dim()
    }

    /// Q₁ of a batch (for tests and diagnostics).
    pub fn q1(&self, obs: &Tensor, state: &Tensor, actions: &Tensor) -> Tensor {
        self.q1.value(obs, state, actions)
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// One critic update, and every `policy_delay`-th time an actor and target update.
    pub fn update(&mut self, b: &Batch) -> UpdateInfo {
        let c = &self.cfg;
        // Critic target with target policy smoothing.
        let (kind, n) = (c.critic, b.obs.size()[1]);
        let cost = self.cost.map(|k| (k, b.cost.as_ref().expect("a batch with the action-cost terms")));
        let y = tch::no_grad(|| {
            let next_a = self.smoothed_target_actions(&b.next_obs);
            let mut q_next = self.q1_target.value(&b.next_obs, &b.next_state, &next_a).min_other(&self.q2_target.value(&b.next_obs, &b.next_state, &next_a));
            let mut r = kind.rows(&b.reward, n) * c.reward_scale;
            if let Some((k, t)) = cost {
                // G' − c(ã') is Q' at the successor; r + c(a) is the reward without its cost.
                q_next = q_next - k.cost(&next_a, &t.next_base, &t.next_range);
                r = r + k.cost(&b.actions, &t.base, &t.range);
            }
            r + (1.0 - kind.rows(&b.done, n)) * c.gamma * q_next
        });
        let q1 = self.q1.value(&b.obs, &b.state, &b.actions);
        let q2 = self.q2.value(&b.obs, &b.state, &b.actions);
        let critic_loss = q1.mse_loss(&y, tch::Reduction::Mean) + q2.mse_loss(&y, tch::Reduction::Mean);
        self.critic_opt.zero_grad();
        critic_loss.backward();
        clip_grad_norm(&self.critic_vs, c.grad_clip);
        self.critic_opt.step();
        self.updates += 1;
        let mut info = UpdateInfo { critic_loss: critic_loss.double_value(&[]), actor_loss: None, q_mean: q1.mean(Kind::Float).double_value(&[]), q_multiplier: 0.0 };
        if self.updates % c.policy_delay.max(1) == 0 {
            if self.updates > c.actor_warmup {
                let mu = self.actor.forward(&b.obs);
                let mut objective = self.q1.value(&b.obs, &b.state, &mu);
                let mut budget_gap = None;
                if let Some((k, t)) = cost {
                    objective = objective - k.cost(&mu, &t.base, &t.range);
                    if c.q_budget > 0.0 {
                        // The budget is on the cost the correction reaches when held, the
                        // closed-loop cost; the one-step cost is 1/gain of it.
                        let from = match c.q_budget_reference {
                            BudgetReference::Base | BudgetReference::DroopAlone => &t.base,
                            BudgetReference::DroopTarget => t.droop_target.as_ref().expect("a batch with droop's targets"),
                        };
                        let held = k.held_cost(&mu, from, &t.range, self.budget_gain);
                        let spent = held.mean(Kind::Float).double_value(&[]);
                        let droop = k.base_cost(from, &t.range).mean(Kind::Float).double_value(&[]);
                        budget_gap = Some((spent - c.q_budget * droop) / droop.max(1e-12));
                        objective = objective - held * self.q_multiplier;
                    }
                }
                if c.actor_bc > 0.0 {
                    let scale = objective.abs().mean(Kind::Float).detach();
                    let dev = (&mu - &b.actions).square().mean_dim([1i64].as_slice(), true, Kind::Float);
                    objective = objective - dev * scale * c.actor_bc;
                }
                let actor_loss = -objective.mean(Kind::Float);
                self.actor_opt.zero_grad();
                actor_loss.backward();
                clip_grad_norm(&self.actor_vs, c.grad_clip);
                self.actor_opt.step();
                info.actor_loss = Some(actor_loss.double_value(&[]));
                if let Some(gap) = budget_gap.filter(|_| c.q_budget_reference != BudgetReference::DroopAlone) {
                    // Dual ascent on the budget E c_held(μ) ≤ ρ E c(droop), on this batch's gap before the step.
                    self.q_multiplier = (self.q_multiplier + c.q_budget_lr * gap).max(0.0);
                }
                soft_update(&mut self.actor_target_vs, &self.actor_vs, c.tau);
            }
            soft_update(&mut self.critic_target_vs, &self.critic_vs, c.tau);
        }
        info.q_multiplier = self.q_multiplier;
        info
    }

    /// The closed-loop budget's dual step (`q_budget_reference = "droop_alone"`, once per training
    /// episode) on the QL the policy spent and droop alone spent on the episode's day (Mvar):
    /// λ ← max(0, λ + η (spent − ρ·reference) / mean reference), the mean over every episode
    /// measured so far. Normalising by the running mean, not by the day's own droop QL, makes the
    /// steps average to the gap of the *mean* QL the metric compares (measured: per-day ratios on
    /// days where droop spends almost nothing reached 4 and ran λ away).
    pub fn closed_loop_dual_step(&mut self, spent: f64, reference: f64) {
        self.budget_reference_sum += reference;
        self.budget_episodes += 1;
        let mean = self.budget_reference_sum / self.budget_episodes as f64;
        if mean > 1e-12 {
            let gap = (spent - self.cfg.q_budget * reference) / mean;
            self.q_multiplier = (self.q_multiplier + self.cfg.q_budget_lr * gap).max(0.0);
        }
    }

    /// The reactive-power budget's multiplier λ (0 when `q_budget` is off).
    pub fn q_multiplier(&self) -> f64 {
        self.q_multiplier
    }

    /// Target policy smoothing: clip(μ'(o') + clip(ε, ±c), ±1), ε ~ N(0, σ_target).
    pub fn smoothed_target_actions(&self, next_obs: &Tensor) -> Tensor {
        let c = &self.cfg;
        let a = self.actor_target.forward(next_obs);
        let mut buf = self.noise_buf.borrow_mut();
        let mut rng = self.noise_rng.borrow_mut();
        buf.clear();
        let dist = rand_distr::Normal::new(0.0f32, c.target_noise as f32).expect("σ ≥ 0");
        for _ in 0..a.numel() {
            buf.push(rand_distr::Distribution::sample(&dist, &mut *rng).clamp(-c.target_noise_clip as f32, c.target_noise_clip as f32));
        }
        let noise = Tensor::from_slice(&buf).view(a.size().as_slice());
        (a + noise).clamp(-1.0, 1.0)
    }

    /// The target actor's actions μ'(o').
    pub fn target_actions(&self, next_obs: &Tensor) -> Tensor {
        self.actor_target.forward(next_obs)
    }

    /// Number of critic updates so far.
    pub fn updates(&self) -> usize {
        self.updates
    }

    /// Writes the four networks into `dir` (the caller makes the directory swap atomic).
    pub fn save(&self, dir: &Path) -> Result<(), tch::TchError> {
        save_stores(dir, &[("actor.ot", &self.actor_vs), ("actor_target.ot", &self.actor_target_vs), ("critic.ot", &self.critic_vs), ("critic_target.ot", &self.critic_target_vs)])
    }

    /// Optimiser moments, update count and random stream (the networks are in the `.ot` files), for
    /// resumable checkpoints.
    pub fn write_state(&self, w: &mut crate::checkpoint::Writer) {
        w.usize(self.updates);
        self.actor_opt.write(w);
        self.critic_opt.write(w);
        w.chacha(&self.noise_rng.borrow());
        if self.cfg.q_budget > 0.0 {
            // Only with the budget on, so checkpoints of runs without it keep their format.
            w.f64(self.q_multiplier);
            if self.cfg.q_budget_reference == BudgetReference::DroopAlone {
                w.f64(self.budget_reference_sum);
                w.usize(self.budget_episodes);
            }
        }
    }

    /// Reads [`write_state`](Self::write_state)'s output.
    pub fn read_state(&mut self, r: &mut crate::checkpoint::Reader) -> Result<(), crate::checkpoint::CheckpointError> {
        self.updates = r.usize("update count")?;
        self.actor_opt.read(r, "actor optimiser")?;
        self.critic_opt.read(r, "critic optimiser")?;
        *self.noise_rng.borrow_mut() = r.chacha("target-noise random stream")?;
        if self.cfg.q_budget > 0.0 {
            self.q_multiplier = r.f64("reactive-power budget multiplier")?;
            if self.cfg.q_budget_reference == BudgetReference::DroopAlone {
                self.budget_reference_sum = r.f64("closed-loop budget's reference sum")?;
                self.budget_episodes = r.usize("closed-loop budget's episode count")?;
            }
        }
        Ok(())
    }

    /// Writes the actor alone into `dir`: all a deployed policy needs.
    pub fn save_actor(&self, dir: &Path) -> Result<(), tch::TchError> {
        save_stores(dir, &[("actor.ot", &self.actor_vs)])
    }

    /// Loads the actor alone from `dir` (for acting; the critics and targets stay as built).
    pub fn load_actor(&mut self, dir: &Path) -> Result<(), tch::TchError> {
        load_stores(dir, &mut [("actor.ot", &mut self.actor_vs)])
    }

    /// Loads the four networks from `dir` (optimiser moments restart from zero).
    pub fn load(&mut self, dir: &Path, updates: usize) -> Result<(), tch::TchError> {
        load_stores(dir, &mut [
            ("actor.ot", &mut self.actor_vs),
            ("actor_target.ot", &mut self.actor_target_vs),
            ("critic.ot", &mut self.critic_vs),
            ("critic_target.ot", &mut self.critic_target_vs),
        ])?;
        self.updates = updates;
        Ok(())
    }
}
