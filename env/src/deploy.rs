//! A controller as it is deployed on the grid, and the one evaluation loop.
//!
//! Between any controller's output and the inverters sit the action wrappers, always in this
//! order:
//!
//! ```text
//! controller ──► raw actions ──► dead zone ──► proposal ──► safety layer (or clip to [−1, 1]) ──► env.step
//! ```
//!
//! [`ActionPipeline`] is that chain; [`Deployed`] is a controller with its pipeline. Training
//! (which adds exploration noise to the raw actions), training-time validation, `eval`, `rollout`,
//! `compare`, `baseline` and `leaderboard` all act through it, so one trained run is the same system
//! wherever it is evaluated. What sits between controller and grid is one serialisable value,
//! [`Deployment`], written into every result.

use crate::controller::Controller;
use crate::env::{EnvError, MetricsAcc, MetricsSummary, ResetOptions, Step, VoltageEnv};
use crate::profiles::Split;
use crate::safety::{FilterInfo, SafetyConfig, SafetyError, SafetyLayer};
use crate::task::Task;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// What sits between a controller and the grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// Dead zone d ∈ [0, 1) of the raw actions (see [`apply_dead_zone`]; 0 = off).
    #[serde(default)]
    pub dead_zone: f64,
    /// The safety layer (`kind = "none"`: the actions are only clipped to [−1, 1]).
    #[serde(default)]
    pub safety: SafetyConfig,
    /// What the controller's actions are added to (after the dead zone, before the safety layer):
    /// nothing, or droop's action (a residual policy: zero output is droop, not no control).
    #[serde(default, skip_serializing_if = "Residual::is_none")]
    pub residual: Residual,
    /// Scale s ∈ (0, 1] of the controller's actions (after the dead zone, before they are added to
    /// the residual base): a_grid = clip(base + s·a, ±1). With `residual = "droop"` it bounds how
    /// far a policy can move from droop (|a_grid − droop| ≤ s, a trust region around a controller
    /// that holds the voltages); with `residual = "droop_gain"` the gain's range 1 ± s; with
    /// `residual = "droop_pivot"` the curve parameter's range θ ∈ [−s, s]; without a
    /// residual it is MAPDN's action scale (|a_grid| ≤ s).
    /// 1 = off (left out when 1).
    #[serde(default = "unit_scale", skip_serializing_if = "is_unit_scale")]
    pub action_scale: f64,
}

impl Default for Deployment {
    fn default() -> Deployment {
        Deployment { dead_zone: 0.0, safety: SafetyConfig::default(), residual: Residual::None, action_scale: 1.0 }
    }
}

/// The default action scale (off); a serde default shared with the training config.
pub fn unit_scale() -> f64 {
    1.0
}

/// Whether an action scale is off (left out of serialised configs).
pub fn is_unit_scale(s: &f64) -> bool {
    *s == 1.0
}

/// Smoothing of the droop a residual policy corrects (`Residual::Droop`): its setpoint moves this
/// fraction towards the curve per step from the setpoint in force, so a correction r held step after
/// step accumulates to r / smoothing at steady state.
pub const RESIDUAL_DROOP_SMOOTHING: f64 = 0.1;

/// The base a residual policy's actions are added to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Residual {
    /// The actions reach the grid as they are.
    #[default]
    None,
    /// a_grid = clip(droop(v) + a, ±1): droop with the registry's defaults (curve 0.95 / 0.98 /
    /// 1.02 / 1.05 pu, full range, smoothing 0.1), corrected by the controller. Droop's filter steps
    /// from the setpoint in force, which includes the correction, so a correction r held step after
    /// step accumulates to r / smoothing: the controller's action moves an integrator.
    Droop,
    /// a_grid = clip(d_t + a, ±1), d_t droop's own setpoint: droop (the same curve and smoothing)
    /// runs on its own — its filter steps from its own previous setpoint d_{t−1}, not from the
    /// corrected one in force — and the controller's action is an offset on its output. A held
    /// correction r settles at droop's setpoint + r, and each step's action acts on that step only:
    /// a policy's immediate reward depends on its own action, not on the corrections before it,
    /// and the steady state is a Volt/VAr curve shifted by r(v). Zero output is droop, bit for bit.
    #[serde(rename = "droop_offset")]
    DroopOffset,
    /// a_grid = clip(d_t · (1 + s·a), ±1), d_t droop's own setpoint as with `DroopOffset` (its own
    /// filter, the same curve and smoothing) and s the action scale: the action is a gain on
    /// droop's output, g = 1 + s·a ∈ [1 − s, 1 + s]. A held gain g(v) settles at the Volt/VAr curve g(v)·Q(v): the policy
    /// reshapes droop's curve per agent and step — less reactive power where droop acts but the
    /// voltage does not need it (g < 1), more near the limits (g > 1) — and it cannot spend
    /// reactive power where droop spends none (in the dead band the action has no effect, so
    /// neither has exploration noise there). Zero output is droop, bit for bit.
    #[serde(rename = "droop_gain")]
    DroopGain,
    /// a_grid = [`pivot`]`(d_t, s·a)`, d_t droop's own setpoint as with `DroopOffset`: the action
    /// θ = s·a picks a Volt/VAr curve from a one-parameter family around droop's. For θ ≥ 0 the
    /// curve turns about the point where droop gives a third of the range (0.97 and 1.03 pu):
    /// |q| = clip((1 + θ)|d| − θ/3, 0, 1), so the dead band widens and the curve saturates earlier
    /// (θ = 1 is the curve 0.96/0.975/1.025/1.04 that beats droop on both CR and QL on 141, 322 and
    /// rural2, docs/RESULTS.md); for θ < 0 it is a gain, |q| = (1 + θ)|d|. The sign is droop's. Why:
    /// a gain alone (`DroopGain`) is learnt as one common gain, which moves along droop's own
    /// scaling; the curves that beat droop need less reactive power near the dead band and more
    /// near the limits, which here is one common action. Zero output is droop, bit for bit.
    #[serde(rename = "droop_pivot")]
    DroopPivot,
}

/// The droop magnitude |q| at which `Residual::DroopPivot`'s curves turn (a third of the range:
/// 0.97 / 1.03 pu on the default curve).
pub const PIVOT_POINT: f64 = 1.0 / 3.0;

/// `Residual::DroopPivot`'s map from droop's setpoint `d` (action units) and the curve parameter
/// `theta` to the setpoint applied: sign(d)·clip((1 + θ)|d| − θ·[`PIVOT_POINT`], 0, 1) for θ ≥ 0,
/// (1 + θ)·d for θ < 0 (then clipped to ±1). `pivot(d, 0) == d`.
pub fn pivot(d: f64, theta: f64) -> f64 {
    if theta >= 0.0 {
        // At d = 0 the magnitude clamps to 0 (−θ/3 ≤ 0), so signum(0) = 1 is harmless.
        d.signum() * ((1.0 + theta) * d.abs() - theta * PIVOT_POINT).clamp(0.0, 1.0)
    } else {
        ((1.0 + theta) * d).clamp(-1.0, 1.0)
    }
}

impl Residual {
    pub fn is_none(&self) -> bool {
        *self == Residual::None
    }
}

/// Which saved policy of a trained run to deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Checkpoint {
    /// The best policy on the validation days (by the run's `best_by`: by default highest CR, then
    /// lowest QL); the last checkpoint when
    /// the run kept none (trained without validation).
    #[default]
    Best,
    /// The networks at the end of training.
    Last,
}

impl std::str::FromStr for Checkpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Checkpoint, String> {
        match s {
            "best" => Ok(Checkpoint::Best),
            "last" => Ok(Checkpoint::Last),
            _ => Err(format!("unknown checkpoint '{s}'; expected best or last")),
        }
    }
}

/// Why a deployment cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("dead_zone: expected a fraction in [0, 1), got {0}")]
    DeadZone(f64),
    #[error("action_scale: expected a scale in (0, 1], got {0}")]
    ActionScale(f64),
    #[error("{0}")]
    Safety(#[from] SafetyError),
}

/// The action dead zone: raw actions a map to sign(a)·max(|a| − d, 0)/(1 − d), in place. "No
/// reactive power" becomes the whole interval |a| ≤ d instead of the single point a = 0 that a tanh
/// actor only approaches; the soft threshold is the proximal map of an L1 cost, and the full range
/// [−1, 1] stays reachable. d = 0 leaves the actions untouched.
pub fn apply_dead_zone(d: f64, actions: &mut [f64]) {
    if d > 0.0 {
        for a in actions.iter_mut() {
            *a = a.signum() * (a.abs() - d).max(0.0) / (1.0 - d);
        }
    }
}

/// A raw action that the dead zone maps to `b` (the inverse on b ≠ 0; 0 for b = 0): what a replay
/// buffer stores when a safety layer changed the action.
pub fn dead_zone_preimage(d: f64, b: f64) -> f64 {
    if d > 0.0 && b != 0.0 {
        b.signum() * (d + (1.0 - d) * b.abs())
    } else {
        b
    }
}

/// Counters of an [`ActionPipeline`] since it was built (timing is not part of any metric).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PipelineStats {
    /// Actions passed through.
    pub steps: usize,
    /// Steps at which the safety layer changed the proposal.
    pub interventions: usize,
    /// Steps at which the layer could not meet every linearised constraint.
    pub infeasible: usize,
    /// Σ ‖applied − proposal‖₂.
    pub correction_sum: f64,
    /// QPs the layer's fast method left to the interior-point solver.
    pub fallbacks: usize,
    /// Wall time inside the safety layer: total and largest single call (s).
    pub filter_seconds: f64,
    pub filter_max_seconds: f64,
}

/// The action wrappers between a controller and the grid: dead zone, then safety layer.
/// Allocation-free per step.
pub struct ActionPipeline {
    deployment: Deployment,
    safety: SafetyLayer,
    proposal: Vec<f64>,
    /// The residual base of the last call (droop's actions; zeros without a residual).
    base: Vec<f64>,
    /// Droop's static target of the last call (the curve at each bus voltage, action units;
    /// zeros without a residual).
    target: Vec<f64>,
    /// `Residual::DroopOffset` / `DroopGain` / `DroopPivot`: droop's own action at the last call, and whether its setpoint has
    /// been taken from the environment since the last [`reset`](Self::reset).
    own_a: Vec<f64>,
    own_started: bool,
    stats: PipelineStats,
}

impl ActionPipeline {
    pub fn new(task: &Task, deployment: Deployment) -> Result<ActionPipeline, DeployError> {
        if !(0.0..1.0).contains(&deployment.dead_zone) {
            return Err(DeployError::DeadZone(deployment.dead_zone));
        }
        if !(deployment.action_scale > 0.0 && deployment.action_scale <= 1.0) {
            return Err(DeployError::ActionScale(deployment.action_scale));
        }
        let safety = SafetyLayer::new(task, deployment.safety)?;
        let n = task.n_agents();
        Ok(ActionPipeline { deployment, safety, proposal: vec![0.0; n], base: vec![0.0; n], target: vec![0.0; n], own_a: vec![0.0; n], own_started: false, stats: PipelineStats::default() })
    }

    /// A new episode: with `Residual::DroopOffset`, `DroopGain` or `DroopPivot`, droop's own setpoint is taken from the
    /// environment again at the next step (every other pipeline is stateless between steps). Call
    /// after every `reset` of the environment.
    pub fn reset(&mut self) {
        self.own_started = false;
    }

    /// Computes the residual base (and droop's target) for the environment's present state and, with
    /// `Residual::DroopOffset`, advances droop's own setpoint by one step: what [`apply`](Self::apply)
    /// does before the actions are added. A resumed run calls it for every step it re-takes, so that
    /// droop's own setpoint is where the uninterrupted run had it.
    pub fn advance_base(&mut self, env: &VoltageEnv) {
        let curve = crate::action::DroopCurve::DEFAULT;
        match self.deployment.residual {
            Residual::None => {}
            Residual::Droop => {
                for k in 0..self.base.len() {
                    (self.base[k], self.target[k]) = crate::action::droop_actions(env, k, &curve, RESIDUAL_DROOP_SMOOTHING);
                }
            }
            Residual::DroopOffset | Residual::DroopGain | Residual::DroopPivot => {
                for k in 0..self.base.len() {
                    // Droop's own setpoint: the one in force at an episode's first step, then the
                    // one its own last action put in force (at the active power of that step).
                    let from = if self.own_started { env.setpoint_of_action(k, self.own_a[k]) } else { env.local(k).q_mvar };
                    (self.base[k], self.target[k]) = crate::action::droop_step_from(env, k, &curve, RESIDUAL_DROOP_SMOOTHING, from);
                    self.own_a[k] = self.base[k];
                }
                self.own_started = true;
            }
        }
    }

    /// Maps a controller's raw actions to the actions the grid gets (`out`); afterwards
    /// [`proposal`](Self::proposal) holds what the safety layer was given (after the dead zone and
    /// the residual base).
    pub fn apply(&mut self, env: &VoltageEnv, raw: &[f64], out: &mut [f64]) -> FilterInfo {
        self.proposal.copy_from_slice(raw);
        apply_dead_zone(self.deployment.dead_zone, &mut self.proposal);
        let scale = self.deployment.action_scale;
        if scale != 1.0 {
            for a in self.proposal.iter_mut() {
                *a *= scale;
            }
        }
        if !self.deployment.residual.is_none() {
            self.advance_base(env);
            let residual = self.deployment.residual;
            for (a, b) in self.proposal.iter_mut().zip(&self.base) {
                *a = match residual {
                    Residual::DroopGain => b * (1.0 + *a),
                    Residual::DroopPivot => pivot(*b, *a),
                    _ => b + *a,
                }
                .clamp(-1.0, 1.0);
            }
        }
        let t0 = Instant::now();
        let info = self.safety.filter(env, &self.proposal, out);
        if self.deployment.safety.kind != crate::safety::SafetyKind::None {
            let dt = t0.elapsed().as_secs_f64();
            self.stats.filter_seconds += dt;
            self.stats.filter_max_seconds = self.stats.filter_max_seconds.max(dt);
        }
        let s = &mut self.stats;
        s.steps += 1;
        s.interventions += info.intervened as usize;
        s.infeasible += info.infeasible as usize;
        s.correction_sum += info.correction;
        s.fallbacks = self.safety.fallbacks;
        info
    }

    /// The safety layer (its warm start, for resumable checkpoints).
    pub fn safety(&self) -> &SafetyLayer {
        &self.safety
    }

    pub fn safety_mut(&mut self) -> &mut SafetyLayer {
        &mut self.safety
    }

    /// The last proposal (raw actions after the dead zone and the residual base, before the safety
    /// layer).
    pub fn proposal(&self) -> &[f64] {
        &self.proposal
    }

    /// The residual base of the last [`apply`](Self::apply): what the raw actions (after the dead
    /// zone) were added to before the clamp to [−1, 1] — droop's actions, or zeros without a
    /// residual.
    pub fn base(&self) -> &[f64] {
        &self.base
    }

    /// Droop's static target at the last [`apply`](Self::apply) (with a droop residual; zeros
    /// otherwise): the setpoint droop's filter moves towards at the present voltages, in action
    /// units. A correction r held on top of the base settles at target + r / smoothing, while the
    /// base itself already carries the correction's accumulated part, so a budget on reactive power
    /// is measured from here, not from [`base`](Self::base).
    pub fn droop_target(&self) -> &[f64] {
        &self.target
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }
}

/// A controller with the action wrappers it is deployed with.
pub struct Deployed<'a> {
    controller: Box<dyn Controller + 'a>,
    pipeline: ActionPipeline,
    raw: Vec<f64>,
    /// Wall time of `act` (controller and pipeline) and its calls: the compute a control step costs.
    act_seconds: f64,
    acts: usize,
}

impl<'a> Deployed<'a> {
    pub fn new(controller: Box<dyn Controller + 'a>, task: &Task, deployment: Deployment) -> Result<Deployed<'a>, DeployError> {
        Ok(Deployed { controller, pipeline: ActionPipeline::new(task, deployment)?, raw: vec![0.0; task.n_agents()], act_seconds: 0.0, acts: 0 })
    }

    /// The controller behind no wrapper (no dead zone, no safety layer).
    pub fn bare(controller: Box<dyn Controller + 'a>, task: &Task) -> Result<Deployed<'a>, DeployError> {
        Deployed::new(controller, task, Deployment::default())
    }

    pub fn name(&self) -> &str {
        self.controller.name()
    }

    pub fn controller(&self) -> &dyn Controller {
        self.controller.as_ref()
    }

    pub fn pipeline(&self) -> &ActionPipeline {
        &self.pipeline
    }

    pub fn deployment(&self) -> &Deployment {
        self.pipeline.deployment()
    }

    /// Called after every `reset` of the environment.
    pub fn reset(&mut self, env: &VoltageEnv, seed: u64) {
        self.controller.reset(env, seed);
        self.pipeline.reset();
    }

    /// The actions the grid gets now: the controller's, through the pipeline.
    pub fn act(&mut self, env: &VoltageEnv, out: &mut [f64]) -> FilterInfo {
        let t0 = Instant::now();
        self.controller.act(env, &mut self.raw);
        let info = self.pipeline.apply(env, &self.raw, out);
        self.act_seconds += t0.elapsed().as_secs_f64();
        self.acts += 1;
        info
    }

    /// Applies the controller's actions to `env` for one step: the active-power caps of a
    /// curtailing controller (if any), then the step with `actions` (from [`act`](Self::act)).
    pub fn step(&self, env: &mut VoltageEnv, actions: &[f64]) -> Result<Step, EnvError> {
        if let Some(caps) = self.controller.curtailment() {
            env.set_curtailment(caps)?;
        }
        env.step(actions)
    }

    /// Mean wall time of one control step (controller and pipeline) so far, in µs (timing, not a
    /// metric: it depends on the machine and its load).
    pub fn compute_us_per_step(&self) -> f64 {
        1e6 * self.act_seconds / self.acts.max(1) as f64
    }

    /// What the deployed system needs from the communication network per step: the controller's
    /// messages and the safety layer's (a central QP: monitored voltages up, actions down; the
    /// decentralised variant within each zone).
    pub fn communication(&self, task: &Task) -> crate::controller::Communication {
        use crate::controller::{Communication, Reach};
        let own = self.controller.communication(task);
        let s = self.pipeline.deployment().safety;
        let layer = match (s.kind, s.decentralized) {
            (crate::safety::SafetyKind::None, _) => Communication::default(),
            (_, false) => Communication { reach: Reach::Central, messages_per_step: task.metric_buses.len() + task.n_agents() },
            (_, true) => Communication { reach: Reach::Zone, messages_per_step: task.zones.iter().map(|z| z.buses.len() + z.agents.len()).sum() },
        };
        own.and(layer)
    }
}

/// The episodes of leaderboard seed `seed`: test days drawn with seeds 100·seed + i, i <
/// `episodes` — the same for every controller of a suite, and for the Python package's
/// `leaderboard_entry`.
pub fn protocol_seeds(seed: u64, episodes: usize) -> Vec<u64> {
    (0..episodes as u64).map(|i| 100 * seed + i).collect()
}

/// Aggregate result of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean undiscounted team return per episode.
    pub mean_return: f64,
    /// Metrics over all steps of all episodes.
    pub metrics: MetricsSummary,
    /// Steps run (all episodes).
    pub steps: usize,
    /// Steps at which the safety layer changed the action.
    pub interventions: usize,
}

/// The one evaluation loop used by `eval`, training-time validation, `compare` and `leaderboard`:
/// runs `deployed` on one episode per seed of `split`, without data noise, so that every controller
/// given the same seeds sees exactly the same episodes. `on_step(episode index, env, step)` is
/// called after every step (for plots and traces).
pub fn evaluate(
    env: &mut VoltageEnv,
    deployed: &mut Deployed,
    split: Split,
    seeds: &[u64],
    on_step: &mut dyn FnMut(usize, &VoltageEnv, &Step),
) -> Result<Evaluation, EnvError> {
    let task = env.task().clone();
    let mut acc = MetricsAcc::new(task.network.n_bus());
    let mut act = vec![0.0; env.n_agents()];
    let (mut total, mut steps, mut interventions) = (0.0, 0usize, 0usize);
    let opts = ResetOptions { split, data_noise: Some(false), ..Default::default() };
    for (i, &seed) in seeds.iter().enumerate() {
        env.reset(seed, &opts)?;
        deployed.reset(env, seed);
        loop {
            interventions += deployed.act(env, &mut act).intervened as usize;
            let s = deployed.step(env, &act)?;
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

/// Aggregate result of [`rollout`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Steps taken (all episodes).
    pub steps: usize,
    /// Episodes started (the last one may be cut short by the step budget).
    pub episodes: usize,
    /// Metrics over all steps of all episodes.
    pub metrics: MetricsSummary,
    /// Wall time of the loop (s; timing, not a metric).
    pub wall_seconds: f64,
}

/// The loop of `voltarena rollout` and of the Python package's `evaluate`: episodes back to back,
/// episode e reset with `seed + e` on `split` (the task's data-noise setting for that split), until
/// `total_steps` steps have been taken. `on_step` is called after every step; returning `false`
/// stops the loop early (a front end whose policy failed).
pub fn rollout(
    env: &mut VoltageEnv,
    deployed: &mut Deployed,
    split: Split,
    seed: u64,
    total_steps: usize,
    on_step: &mut dyn FnMut(&VoltageEnv, &Step) -> bool,
) -> Result<Rollout, EnvError> {
    let mut total = MetricsAcc::new(env.task().network.n_bus());
    let mut actions = vec![0.0; env.n_agents()];
    let (mut steps, mut episodes) = (0usize, 0usize);
    let opts = ResetOptions { split, ..Default::default() };
    let t0 = Instant::now();
    'episodes: while steps < total_steps {
        let s = seed.wrapping_add(episodes as u64);
        env.reset(s, &opts)?;
        deployed.reset(env, s);
        episodes += 1;
        loop {
            deployed.act(env, &mut actions);
            let st = deployed.step(env, &actions)?;
            steps += 1;
            let go_on = on_step(env, &st);
            if !go_on {
                total.merge(env.episode_metrics());
                break 'episodes;
            }
            if st.terminated || st.truncated || steps >= total_steps {
                break;
            }
        }
        total.merge(env.episode_metrics());
    }
    let wall_seconds = t0.elapsed().as_secs_f64();
    Ok(Rollout { steps, episodes, metrics: total.summary(&env.task().bus_id), wall_seconds })
}

/// The `metrics` object of `voltarena rollout --json` (and of the Python package's `evaluate`):
/// the metrics of a [`Rollout`] and what the safety layer did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutMetrics {
    pub cr: f64,
    pub ql: f64,
    pub avv_max: f64,
    pub violation_rate: f64,
    pub loss_kwh: f64,
    pub divergences: usize,
    pub avv_max_bus: i64,
    pub violation_pu_mean: f64,
    pub q_kvarh: f64,
    /// Fraction of steps where the safety layer changed the action.
    pub safety_intervention_rate: f64,
    /// Mean ‖a − a_proposed‖₂ over steps.
    pub safety_mean_correction: f64,
    /// Steps where the layer could not meet every linearised constraint.
    pub safety_infeasible: usize,
    /// QPs the layer's fast dual active-set method left to the interior-point solver.
    pub safety_fallbacks: usize,
}

impl RolloutMetrics {
    pub fn new(r: &Rollout, st: &PipelineStats) -> RolloutMetrics {
        let m = &r.metrics;
        let n = r.steps.max(1) as f64;
        RolloutMetrics {
            cr: m.cr,
            ql: m.ql,
            avv_max: m.avv_max,
            violation_rate: m.violation_rate,
            loss_kwh: m.loss_kwh,
            divergences: m.divergences,
            avv_max_bus: m.avv_max_bus,
            violation_pu_mean: m.violation_pu_mean,
            q_kvarh: m.q_kvarh,
            safety_intervention_rate: st.interventions as f64 / n,
            safety_mean_correction: st.correction_sum / n,
            safety_infeasible: st.infeasible,
            safety_fallbacks: st.fallbacks,
        }
    }
}
