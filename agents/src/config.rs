//! A training run as written in `configs/*.toml`: every key of [`TrainConfig`], CleanRL style —
//! all hyperparameters of a run in one place, with their defaults next to them. The per-algorithm
//! tables `[matd3]` and `[maddpg]` are [`Matd3Config`] (`matd3.rs`) and [`MaddpgConfig`]
//! (`maddpg.rs`). Unknown keys are refused; [`TrainConfig::validate`] checks every range and names
//! the first key outside its own. The resolved config (defaults filled in) is the run directory's
//! `config.toml` and its hash; the keys marked "left out when off" are not written when off, so the
//! hashes of earlier runs stay valid.
//!
//! | key | meaning (unit) | default |
//! |---|---|---|
//! | `task` | built-in task name or task TOML path | required |
//! | `algorithm` | `"matd3"` or `"maddpg"` | required |
//! | `seed` | seeds the environment, exploration, sampling and network initialisation | 0 |
//! | `total_steps` | environment steps in total | required |
//! | `learning_starts` | no updates before this step; the actions until then are `warmup_actions` (steps) | 2000 |
//! | `warmup_actions` | what acts before `learning_starts`: `"uniform"` (uniform random actions over the whole range) or `"actor"` (the initial actor plus the exploration noise σ, i.e. with `residual = "droop"` and a small `actor_last_init`, droop plus Gaussian noise: a warm-up that stays near a stabilising controller) (left out when `"uniform"`) | `"uniform"` |
//! | `update_every` | one round of updates every this many environment steps | 1 |
//! | `updates_per_round` | gradient updates per round | 1 |
//! | `buffer_size` | replay capacity (joint transitions, one per step; ≥ the batch size) | 100000 |
//! | `explore_sigma_start` | Gaussian exploration σ at step 0 (action units, a ∈ [−1, 1]) | 0.5 |
//! | `explore_sigma_end` | σ from `explore_decay_steps` on (linear decay in between) | 0.05 |
//! | `explore_decay_steps` | length of the σ decay (steps) | 30000 |
//! | `eval_every` | evaluate the deterministic policy every this many steps (0 = never) | 5000 |
//! | `eval_episodes` | fixed validation-split episodes per evaluation | 5 |
//! | `checkpoint_every` | checkpoint every this many steps (0 = only at the end); every validation is followed by a checkpoint too, so each is a candidate for `best/` | 10000 |
//! | `torch_threads` | libtorch intra-op threads | 1 |
//! | `[safety]` | safety layer in training and evaluation (`voltarena_env::safety::SafetyConfig`, docs/SAFETY.md) | `kind = "none"` |
//! | `normalize_obs` | running normalisation of observations and states (left out when off) | false |
//! | `normalize_reward` | reward scaling by the running std of the discounted return (left out when off) | false |
//! | `store_filtered_action` | with a safety layer, store the applied action (not the proposal) | true |
//! | `action_dead_zone` | dead zone of the actions, fraction of the range, in [0, 1) (left out when 0) | 0 |
//! | `residual` | `"droop"`: the actions are corrections added to droop's (after the dead zone, before the safety layer), and droop's filter steps from the corrected setpoint, so a held correction integrates to 10× itself; `"droop_offset"`: droop runs on its own and the action is an offset on its output (a held correction r stays r; `voltarena_env::deploy::Residual`); `"droop_gain"`: droop runs on its own and the action is a gain 1 + s·a on its output (it reshapes droop's curve; no effect where droop is at rest); `"droop_pivot"`: droop runs on its own and the action θ = s·a picks a curve from a family around droop's (θ > 0 widens the dead band and steepens the curve about \|q\| = 1/3, θ = 1 being 0.96/0.975/1.025/1.04; θ < 0 a gain 1 + θ; `voltarena_env::deploy::pivot`); with a safety layer either needs `store_filtered_action = false` (left out when `"none"`) | `"none"` |
//! | `action_scale` | the actor's actions (after the dead zone) are multiplied by this before they are added to the residual base, in (0, 1]: with `residual = "droop"` a trust region around droop (\|a_grid − droop\| ≤ s), with `"droop_gain"` gains in [1 − s, 1 + s], with `"droop_pivot"` θ ∈ [−s, s], without a residual MAPDN's action scale; with a safety layer it needs `store_filtered_action = false` (left out when 1) | 1 |
//! | `best_by` | which validation result `best/` keeps: `"cr"` (highest CR, then lowest QL), `"return"` (highest mean return: the reward's own trade-off between voltages and reactive power) or `"pareto"` (lowest QL, then highest CR, among the validations no worse than the first one on both CR and QL — the first is the starting policy, droop itself for a residual run — else the first) (left out when `"cr"`) | `"cr"` |
//! | `analytic_q_cost` | MATD3: the reward's reactive-power term α·mean\|q\| enters the actor's objective exactly instead of being learnt by the critics (`matd3::ActionCost`); needs no safety layer, no reward normalisation and a team-value critic (`centralized` or `factored`) (left out when off) | false |
//! | `[reward]` | reward to train with, replacing the task's `[reward]` table (`voltarena_env::task::RewardSpec`; keys not given take its defaults) | the task's |
//! | `[matd3]` | MATD3 hyperparameters ([`Matd3Config`]) | its defaults |
//! | `[maddpg]` | MADDPG hyperparameters ([`MaddpgConfig`]) | its defaults |

use crate::maddpg::MaddpgConfig;
use crate::matd3::Matd3Config;
use crate::validate::{Check, ConfigError};
use serde::{Deserialize, Serialize};
use voltarena_env::deploy::Deployment;

/// Which validation result a run keeps as its best policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BestBy {
    /// Highest CR, then lowest QL.
    #[default]
    Cr,
    /// Highest mean validation return.
    Return,
    /// Lowest QL (then highest CR) among the validations with CR ≥ and QL ≤ the first
    /// validation's; the first validation if no later one qualifies. The first validation is the
    /// starting policy (for `residual = "droop"` with a near-zero last layer and a dead zone, droop
    /// itself), so the run keeps a policy that is no worse than where it started on either metric
    /// and spends the margin on the metric CR does not already saturate.
    Pareto,
}

impl BestBy {
    fn is_cr(&self) -> bool {
        *self == BestBy::Cr
    }

    /// Whether validation result `cand` (CR, QL in Mvar, mean return) replaces the kept `best`,
    /// given the first validation's (CR, QL) `start` (the reference of [`BestBy::Pareto`]).
    /// Differences within 1e-12 count as ties.
    pub fn prefers(self, start: (f64, f64), best: (f64, f64, f64), cand: (f64, f64, f64)) -> bool {
        const EPS: f64 = 1e-12;
        let ((scr, sql), (bcr, bql, bret), (cr, ql, ret)) = (start, best, cand);
        match self {
            BestBy::Cr => cr > bcr + EPS || ((cr - bcr).abs() <= EPS && ql < bql),
            BestBy::Return => ret > bret + EPS,
            BestBy::Pareto => {
                let no_worse = cr >= scr - EPS && ql <= sql + EPS;
                no_worse && (ql < bql - EPS || ((ql - bql).abs() <= EPS && cr > bcr + EPS))
            }
        }
    }
}

/// What acts in the warm-up, before `learning_starts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarmupActions {
    /// Uniform random actions over the whole range [−1, 1] (TD3's and MAPDN's warm-up).
    #[default]
    Uniform,
    /// The initial actor, plus the Gaussian exploration noise of the step (`explore_sigma_*`).
    Actor,
}

impl WarmupActions {
    fn is_uniform(&self) -> bool {
        *self == WarmupActions::Uniform
    }
}

/// Which algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Matd3,
    Maddpg,
}

/// A training run, as written in `configs/*_mapdn33.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Built-in task name or task TOML path.
    pub task: String,
    pub algorithm: Algorithm,
    #[serde(default)]
    pub seed: u64,
    /// Environment steps in total.
    pub total_steps: usize,
    /// No updates before this many steps; until then `warmup_actions` act.
    #[serde(default = "d_learning_starts")]
    pub learning_starts: usize,
    /// What acts before `learning_starts`: uniform random actions (default), or the initial
    /// actor with the exploration noise — on a feeder where uniform random reactive power
    /// collapses the grid (mapdn322), a residual actor that starts as droop keeps the warm-up's
    /// data near a controller that holds the voltages.
    #[serde(default, skip_serializing_if = "WarmupActions::is_uniform")]
    pub warmup_actions: WarmupActions,
    /// One round of updates every this many environment steps.
    #[serde(default = "one")]
    pub update_every: usize,
    #[serde(default = "one")]
    pub updates_per_round: usize,
    #[serde(default = "d_buffer")]
    pub buffer_size: usize,
    /// Gaussian exploration σ (on the action in [−1, 1]), decayed linearly.
    #[serde(default = "d_sigma_start")]
    pub explore_sigma_start: f64,
    #[serde(default = "d_sigma_end")]
    pub explore_sigma_end: f64,
    #[serde(default = "d_decay")]
    pub explore_decay_steps: usize,
    /// Evaluate the deterministic policy every this many steps on `eval_episodes` fixed episodes
    /// of the validation split.
    #[serde(default = "d_eval_every")]
    pub eval_every: usize,
    #[serde(default = "d_eval_episodes")]
    pub eval_episodes: usize,
    #[serde(default = "d_ckpt")]
    pub checkpoint_every: usize,
    /// libtorch intra-op threads (1 is fastest and stable on a shared 2-core machine).
    #[serde(default = "one")]
    pub torch_threads: usize,
    /// Safety layer between the policy and the grid, in training and in evaluation:
    /// `[safety] kind = "projection" | "cbf"` (docs/SAFETY.md).
    #[serde(default)]
    pub safety: voltarena_env::safety::SafetyConfig,
    /// Running normalisation of observations and global states (actor and critic inputs), and
    /// reward scaling by the running std of the discounted return (`normalize.rs`); saved with
    /// checkpoints and frozen in evaluation. Off by default (clean-mode observations are already
    /// scaled by the task).
    #[serde(default, skip_serializing_if = "crate::nets::is_false")]
    pub normalize_obs: bool,
    #[serde(default, skip_serializing_if = "crate::nets::is_false")]
    pub normalize_reward: bool,
    /// What the replay buffer stores when a safety layer is on: the action the layer applied
    /// (`true`, default) or the policy's proposal (`false`).
    #[serde(default = "yes")]
    pub store_filtered_action: bool,
    /// Dead zone of the agents' actions, as a fraction of the action range (0 = off, default): the
    /// grid receives the soft-thresholded action sign(a)·max(|a| − d, 0)/(1 − d), so "no reactive
    /// power" is a whole interval of actor outputs instead of the single point a = 0 that a tanh
    /// actor only approaches — the soft threshold is the proximal map of the L1 reactive-power cost,
    /// and the full range stays reachable. The replay buffer and the critics keep the actor's action
    /// a (the dead zone is part of the environment as the agents see it); evaluation and deployed
    /// policies apply the same map.
    #[serde(default, skip_serializing_if = "crate::nets::is_zero")]
    pub action_dead_zone: f64,
    /// What the actor's actions are added to: `"none"` or `"droop"` (a residual policy on top of
    /// droop with the registry's defaults: zero output is droop). In training, evaluation and
    /// deployment alike.
    #[serde(default, skip_serializing_if = "voltarena_env::deploy::Residual::is_none")]
    pub residual: voltarena_env::deploy::Residual,
    /// Scale s ∈ (0, 1] of the actor's actions before they reach the residual base (`Deployment::
    /// action_scale`): with `residual = "droop"` the policy stays within ±s of droop, in training
    /// (also the warm-up's and the exploration's actions) and wherever it is deployed.
    #[serde(default = "voltarena_env::deploy::unit_scale", skip_serializing_if = "voltarena_env::deploy::is_unit_scale")]
    pub action_scale: f64,
    /// Which validation result `best/` keeps (`"cr"`: highest CR, then lowest QL; `"return"`:
    /// highest mean return, which weighs voltages against reactive power as the reward does).
    #[serde(default, skip_serializing_if = "BestBy::is_cr")]
    pub best_by: BestBy,
    /// MATD3 with the known action cost: the reward's reactive-power term α·mean_k |q_k| is an
    /// exact function of the actions (given the residual base and each inverter's range in force),
    /// so the critics learn the return without the immediate term and the actor's objective adds
    /// it exactly (`matd3::ActionCost`). Each agent then gets the exact gradient of its own
    /// reactive power instead of a critic's estimate of its share of a team average.
    #[serde(default, skip_serializing_if = "crate::nets::is_false")]
    pub analytic_q_cost: bool,
    /// The reward to train with, if not the task's (the metrics — CR, QL, AVV — do not depend on
    /// it, so runs stay comparable): e.g. `[reward] barrier = "bowl"`.
    #[serde(default)]
    pub reward: Option<voltarena_env::task::RewardSpec>,
    #[serde(default)]
    pub matd3: Matd3Config,
    #[serde(default)]
    pub maddpg: MaddpgConfig,
}

impl TrainConfig {
    /// Every value in its range (the algorithm tables included), naming the first key that is not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = Check { prefix: "" };
        c.at_least("total_steps", self.total_steps, 1)?;
        c.at_least("update_every", self.update_every, 1)?;
        c.at_least("updates_per_round", self.updates_per_round, 1)?;
        c.at_least("torch_threads", self.torch_threads, 1)?;
        c.non_negative("explore_sigma_start", self.explore_sigma_start)?;
        c.non_negative("explore_sigma_end", self.explore_sigma_end)?;
        if self.eval_every > 0 {
            c.at_least("eval_episodes", self.eval_episodes, 1)?;
        }
        c.right_open("action_dead_zone", self.action_dead_zone, 0.0, 1.0)?;
        if !(self.action_scale > 0.0 && self.action_scale <= 1.0) {
            return Err(ConfigError::new("action_scale", "a scale in (0, 1]", self.action_scale));
        }
        if self.action_scale != 1.0 && self.safety.kind != voltarena_env::safety::SafetyKind::None && self.store_filtered_action {
            return Err(ConfigError::new("store_filtered_action", "false when action_scale < 1 runs behind a safety layer", "true"));
        }
        if let Some(r) = &self.reward {
            c.non_negative("reward.q_weight", r.q_weight)?;
            c.non_negative("reward.loss_weight", r.loss_weight)?;
            c.non_negative("reward.violation_weight", r.violation_weight)?;
        }
        // The buffer's filtered action is the dead zone's preimage of the applied one; with a residual
        // base that preimage would need the base too.
        if !self.residual.is_none() && self.safety.kind != voltarena_env::safety::SafetyKind::None && self.store_filtered_action {
            return Err(ConfigError::new("store_filtered_action", "false when residual = \"droop\" runs behind a safety layer", "true"));
        }
        if self.analytic_q_cost {
            // The cost is exact only for the action the actor chose reaching the grid unchanged, in
            // the reward's own units, with one critic over the joint action.
            if self.algorithm != Algorithm::Matd3 {
                return Err(ConfigError::new("analytic_q_cost", "false unless algorithm = \"matd3\"", "true"));
            }
            if self.safety.kind != voltarena_env::safety::SafetyKind::None {
                return Err(ConfigError::new("analytic_q_cost", "false with a safety layer (the applied action is not the actor's)", "true"));
            }
            if self.normalize_reward {
                return Err(ConfigError::new("analytic_q_cost", "false with normalize_reward (the cost is in the reward's own units)", "true"));
            }
            if self.matd3.critic == crate::nets::CriticKind::Local {
                return Err(ConfigError::new("analytic_q_cost", "false with matd3.critic = \"local\" (one team value per transition: centralized or factored)", "true"));
            }
        }
        if self.matd3.q_budget > 0.0 && self.algorithm == Algorithm::Matd3 && (!self.analytic_q_cost || self.residual.is_none()) {
            // The budget is droop's own exact cost on the replay states.
            return Err(ConfigError::new("matd3.q_budget", "0 unless analytic_q_cost = true and residual = \"droop\", \"droop_offset\", \"droop_gain\" or \"droop_pivot\"", self.matd3.q_budget));
        }
        if self.matd3.q_budget_reference == crate::matd3::BudgetReference::DroopAlone && !matches!(self.residual, voltarena_env::deploy::Residual::DroopOffset | voltarena_env::deploy::Residual::DroopGain | voltarena_env::deploy::Residual::DroopPivot) {
            // Droop alone is the reference only where the base is droop's own, unmoved by the offsets' past.
            return Err(ConfigError::new("matd3.q_budget_reference", "\"base\" or \"droop_target\" unless residual = \"droop_offset\", \"droop_gain\" or \"droop_pivot\"", "\"droop_alone\""));
        }
        self.matd3.validate()?;
        self.maddpg.validate()?;
        let batch = match self.algorithm {
            Algorithm::Matd3 => self.matd3.batch_size,
            Algorithm::Maddpg => self.maddpg.batch_size,
        };
        if self.buffer_size < batch {
            return Err(ConfigError::new("buffer_size", format!("at least the batch size ({batch})"), self.buffer_size));
        }
        Ok(())
    }

    /// What sits between the run's actor and the grid, in training and wherever the run is
    /// deployed: its action dead zone and safety layer.
    pub fn deployment(&self) -> Deployment {
        Deployment { dead_zone: self.action_dead_zone, safety: self.safety, residual: self.residual, action_scale: self.action_scale }
    }
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn d_learning_starts() -> usize {
    2000
}
fn d_buffer() -> usize {
    100_000
}
fn d_sigma_start() -> f64 {
    0.5
}
fn d_sigma_end() -> f64 {
    0.05
}
fn d_decay() -> usize {
    30_000
}
fn d_eval_every() -> usize {
    5000
}
fn d_eval_episodes() -> usize {
    5
}
fn d_ckpt() -> usize {
    10_000
}
