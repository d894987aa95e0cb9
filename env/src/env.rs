//! The multi-agent voltage-control environment (Dec-POMDP), in the style of PettingZoo's parallel
//! API: `reset(seed, options)`, then `step(actions)` with one action per agent, returning the team
//! reward, `terminated` / `truncated` and per-step metrics; observations (one row per agent) and
//! the global state are read from the environment after each call.
//!
//! One step (clean mode), all from the same instant t:
//! 1. the exogenous data (loads, PV active power) move to time t (interpolated profiles, optional
//!    noise and sub-interval fluctuation);
//! 2. actions a ∈ [−1, 1] become reactive setpoints q = a · scale · √(S² − p²) (Mvar, generator
//!    convention), after faults and lost messages;
//! 3. the power flow (AC or LinDistFlow) gives voltages and losses;
//! 4. reward, metrics and the next observations come from that solved state.
//!
//! Compat mode reproduces MAPDN's timing instead (docs/ENVIRONMENT.md). Nothing here allocates per
//! step, and a power-flow failure is a step result (`metrics.diverged`), never a panic. What the
//! metrics mean and how they add up over episodes is [`crate::metrics`]; they are re-exported here.

use voltarena_grid::powerflow::{AcOptions, AcSolver, Injection, LinDistFlow, LinDistFlowForm, PowerFlowError, Solution, SolveInfo};
use crate::action::{q_available, q_of_action};
pub use crate::metrics::{MetricsAcc, MetricsSummary, StepMetrics};
use crate::profiles::Split;
use crate::task::{Backend, DataNoise, FaultKind, Mode, Task};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use std::sync::Arc;

/// Why a call to the environment was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvError {
    #[error("expected {expected} actions (one per agent), got {got}")]
    ActionCount { expected: usize, got: usize },
    #[error("action of agent {agent} is not a finite number ({value})")]
    InvalidAction { agent: usize, value: f64 },
    #[error("the episode is over: call reset() first")]
    EpisodeOver,
    #[error("no episode start of the {split:?} split gives a solvable power flow after {tries} tries")]
    ResetFailed { split: Split, tries: usize },
    #[error("physics: {0}")]
    Physics(#[from] PowerFlowError),
}

/// Options of one `reset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResetOptions {
    pub split: Split,
    /// Apply the task's data noise (default: the task's setting on train, off on val/test).
    pub data_noise: Option<bool>,
    /// Start at this task step (must be a valid start of the split); random otherwise.
    pub start: Option<usize>,
    /// Keep the exogenous data at the start row for the whole episode (static studies: a
    /// controller iterates against a fixed operating point).
    pub hold_data: bool,
}

impl Default for ResetOptions {
    fn default() -> Self {
        ResetOptions { split: Split::Train, data_noise: None, start: None, hold_data: false }
    }
}

/// The typed spaces of an environment (PettingZoo's `observation_space` / `action_space`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Spaces {
    pub n_agents: usize,
    /// Each agent observes a `Box(obs_dim)` of f32.
    pub obs_dim: usize,
    /// The global state is a `Box(state_dim)` of f32.
    pub state_dim: usize,
    /// Each agent acts with one f64 in [−1, 1].
    pub action_dim: usize,
}

impl Spaces {
    pub const ACTION_LOW: f64 = -1.0;
    pub const ACTION_HIGH: f64 = 1.0;
}

/// What `step` returns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Team reward, the same for every agent.
    pub reward: f64,
    /// The episode ended inside the MDP (power-flow failure; in compat mode also the time limit).
    pub terminated: bool,
    /// The episode hit its time limit (clean mode): bootstrap from the next state.
    pub truncated: bool,
    pub metrics: StepMetrics,
}

/// What one agent can measure locally (for model-based controllers such as droop).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Local {
    /// Voltage magnitude at the inverter's bus (pu, with measurement noise).
    pub v_pu: f64,
    /// Current active power of the PV (MW).
    pub p_mw: f64,
    /// Current reactive setpoint (Mvar).
    pub q_mvar: f64,
    /// Reactive power available, √(S² − p²) (Mvar).
    pub q_avail_mvar: f64,
    /// The task's action scale: a = 1 means q = scale · q_avail.
    pub action_scale: f64,
}

#[derive(Debug, Clone)]
enum Physics {
    Ac(AcSolver),
    Ldf(LinDistFlow),
}

/// The environment. Cheap to clone (the task is shared).
#[derive(Debug, Clone)]
pub struct VoltageEnv {
    task: Arc<Task>,
    physics: Physics,
    backend: Backend,
    rng: ChaCha8Rng,
    sol: Solution,
    prev_sol: Solution,
    info: SolveInfo,
    // episode
    split: Split,
    noise_on: bool,
    hold_data: bool,
    start: usize,
    t: usize,
    done: bool,
    last_reward: f64,
    // exogenous data (MW / Mvar), the row the physics was solved with and (compat) the next row
    load_p: Vec<f64>,
    load_q: Vec<f64>,
    /// PV active power fed in (after any curtailment) and what the panels offer (MW).
    pv_p: Vec<f64>,
    pv_avail: Vec<f64>,
    /// Caps on each PV's active power set by a curtailing controller (MW; +∞ = none).
    pv_cap: Vec<f64>,
    next_load_p: Vec<f64>,
    next_load_q: Vec<f64>,
    next_pv_p: Vec<f64>,
    fl_load: Vec<f64>,
    fl_pv: Vec<f64>,
    // control (Mvar)
    q: Vec<f64>,
    // physics input
    p_inj: Vec<f64>,
    q_inj: Vec<f64>,
    // outputs
    vm_meas: Vec<f64>,
    /// Per-bus load seen in the zone blocks (MW, Mvar), rebuilt each step.
    cons_p: Vec<f64>,
    cons_q: Vec<f64>,
    obs: Vec<f32>,
    state: Vec<f32>,
    acc: MetricsAcc,
}

impl VoltageEnv {
    /// An environment on the task's own backend.
    pub fn new(task: Arc<Task>) -> Result<VoltageEnv, EnvError> {
        let b = task.spec.backend;
        VoltageEnv::with_backend(task, b)
    }

    /// An environment with the physics backend overridden.
    pub fn with_backend(task: Arc<Task>, backend: Backend) -> Result<VoltageEnv, EnvError> {
        let physics = match backend {
            // Cold (LinDistFlow) start every step: a warm start from a stressed state can land on
            // the low-voltage branch of the power-flow solutions, and the result would then depend
            // on the history. The LinDistFlow start costs about one extra iteration.
            Backend::Ac => Physics::Ac(AcSolver::new(&task.network, AcOptions::default())?),
            Backend::Lindistflow => Physics::Ldf(LinDistFlow::new(&task.network, LinDistFlowForm::Squared)?),
        };
        let n = task.network.n_bus();
        let (nl, np) = (task.loads.len(), task.pvs.len());
        Ok(VoltageEnv {
            physics,
            backend,
            rng: ChaCha8Rng::seed_from_u64(0),
            sol: Solution::new(n),
            prev_sol: Solution::new(n),
            info: SolveInfo::default(),
            split: Split::Train,
            noise_on: false,
            hold_data: false,
            start: 0,
            t: 0,
            done: true,
            last_reward: 0.0,
            load_p: vec![0.0; nl],
            load_q: vec![0.0; nl],
            pv_p: vec![0.0; np],
            pv_avail: vec![0.0; np],
            pv_cap: vec![f64::INFINITY; np],
            next_load_p: vec![0.0; nl],
            next_load_q: vec![0.0; nl],
            next_pv_p: vec![0.0; np],
            fl_load: vec![0.0; nl],
            fl_pv: vec![0.0; np],
            q: vec![0.0; np],
            p_inj: vec![0.0; n],
            q_inj: vec![0.0; n],
            vm_meas: vec![0.0; n],
            cons_p: vec![0.0; n],
            cons_q: vec![0.0; n],
            obs: vec![0.0; np * task.obs_dim()],
            state: vec![0.0; task.state_dim()],
            acc: MetricsAcc::new(n),
            task,
        })
    }

    /// Observation, state and action spaces.
    pub fn spaces(&self) -> Spaces {
        Spaces { n_agents: self.n_agents(), obs_dim: self.obs_dim(), state_dim: self.state_dim(), action_dim: 1 }
    }
    pub fn task(&self) -> &Arc<Task> {
        &self.task
    }
    pub fn backend(&self) -> Backend {
        self.backend
    }
    pub fn n_agents(&self) -> usize {
        self.task.pvs.len()
    }
    pub fn obs_dim(&self) -> usize {
        self.task.obs_dim()
    }
    pub fn state_dim(&self) -> usize {
        self.task.state_dim()
    }
    /// Row-major `n_agents × obs_dim` observations of the current state.
    pub fn observations(&self) -> &[f32] {
        &self.obs
    }
    /// One agent's observation.
    pub fn observation(&self, agent: usize) -> &[f32] {
        let d = self.task.obs_dim();
        &self.obs[agent * d..(agent + 1) * d]
    }
    /// The global state (for centralised critics).
    pub fn state(&self) -> &[f32] {
        &self.state
    }
    /// True bus voltage magnitudes of the last solved state (pu, bus order).
    pub fn vm_pu(&self) -> &[f64] {
        &self.sol.vm_pu
    }
    /// Voltage angles of the last solved state (rad).
    pub fn va_rad(&self) -> &[f64] {
        &self.sol.va_rad
    }
    /// Voltage magnitudes as the buses' meters read them (pu, bus order): the true ones plus the
    /// task's measurement noise. What model-based controllers feed back.
    pub fn measured_vm(&self) -> &[f64] {
        &self.vm_meas
    }
    /// Reactive setpoints in force (Mvar, per agent).
    pub fn q_mvar(&self) -> &[f64] {
        &self.q
    }
    /// PV active power of the current data row (MW, per agent).
    pub fn pv_p_mw(&self) -> &[f64] {
        &self.pv_p
    }
    /// Net bus injections of the last power-flow call (MW, Mvar; generator convention).
    pub fn injections(&self) -> (&[f64], &[f64]) {
        (&self.p_inj, &self.q_inj)
    }
    /// Steps taken in the current episode.
    pub fn t(&self) -> usize {
        self.t
    }
    /// Task step (time index) at which the episode started.
    pub fn start_step(&self) -> usize {
        self.start
    }
    /// Metrics accumulated over the current episode.
    pub fn episode_metrics(&self) -> &MetricsAcc {
        &self.acc
    }
    /// Last power-flow report.
    pub fn solve_info(&self) -> &SolveInfo {
        &self.info
    }

    /// What agent `k` measures at its own bus.
    pub fn local(&self, k: usize) -> Local {
        let pv = &self.task.pvs[k];
        let p = if self.task.spec.mode == Mode::Compat { self.next_pv_p[k] } else { self.pv_p[k] };
        Local {
            v_pu: self.vm_meas[pv.bus],
            p_mw: p,
            q_mvar: self.q[k],
            q_avail_mvar: q_available(pv.s_mva, p),
            action_scale: self.task.spec.action_scale,
        }
    }

    /// Starts an episode. The same seed and options give the same episode, bit for bit.
    pub fn reset(&mut self, seed: u64, opts: &ResetOptions) -> Result<(), EnvError> {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self.split = opts.split;
        self.hold_data = opts.hold_data;
        self.noise_on = opts.data_noise.unwrap_or(opts.split == Split::Train) && self.task.spec.noise.data != DataNoise::None;
        let ranges = self.task.start_ranges(opts.split);
        let total: usize = ranges.iter().map(|(a, b)| b - a + 1).sum();
        const TRIES: usize = 100;
        for _ in 0..TRIES {
            let start = match opts.start {
                Some(s) => s,
                None => {
                    let mut k = self.rng.random_range(0..total);
                    let mut s = 0;
                    for &(a, b) in &ranges {
                        if k <= b - a {
                            s = a + k;
                            break;
                        }
                        k -= b - a + 1;
                    }
                    s
                }
            };
            if self.try_reset(start).is_ok() {
                return Ok(());
            }
            if opts.start.is_some() {
                break;
            }
        }
        Err(EnvError::ResetFailed { split: opts.split, tries: TRIES })
    }

    fn try_reset(&mut self, start: usize) -> Result<(), PowerFlowError> {
        self.pv_cap.fill(f64::INFINITY);
        self.start = start;
        self.t = 0;
        self.done = false;
        self.last_reward = 0.0;
        self.acc.clear();
        self.sol.valid = false;
        let sigma = self.task.spec.noise.fluctuation_sigma;
        for e in self.fl_load.iter_mut().chain(self.fl_pv.iter_mut()) {
            *e = if sigma > 0.0 { sigma * self.rng.sample::<f64, _>(StandardNormal) } else { 0.0 };
        }
        let compat = self.task.spec.mode == Mode::Compat;
        // Compat: MAPDN's reset applies row 1 and draws a random action; clean: the start row, q = 0.
        self.load_row(if compat { start + 1 } else { start });
        self.commit_row();
        if compat {
            let s = self.task.spec.action_scale;
            for k in 0..self.q.len() {
                let a = self.rng.random_range(-s..=s);
                let pv = &self.task.pvs[k];
                self.q[k] = a * q_available(pv.s_mva, self.pv_p[k]);
            }
        } else {
            self.q.fill(0.0);
        }
        self.solve()?;
        self.measure();
        self.write_observations();
        Ok(())
    }

    /// Advances one step with one action per agent (each clamped to [−1, 1]).
    pub fn step(&mut self, actions: &[f64]) -> Result<Step, EnvError> {
        if self.done {
            return Err(EnvError::EpisodeOver);
        }
        if actions.len() != self.q.len() {
            return Err(EnvError::ActionCount { expected: self.q.len(), got: actions.len() });
        }
        if let Some((k, &v)) = actions.iter().enumerate().find(|(_, a)| !a.is_finite()) {
            return Err(EnvError::InvalidAction { agent: k, value: v });
        }
        let compat = self.task.spec.mode == Mode::Compat;
        self.t += 1;
        if !compat && !self.hold_data {
            self.load_row(self.start + self.t);
            self.commit_row();
        }
        self.apply_caps();
        self.apply_actions(actions);
        self.prev_sol.clone_from(&self.sol); // reuses the buffers: no allocation
        let ok = self.solve().is_ok();
        let mut m = StepMetrics::default();
        let n_pv = self.q.len() as f64;
        m.ql_mvar = self.q.iter().map(|q| q.abs()).sum::<f64>() / n_pv;
        m.pv_mw = self.pv_p.iter().sum();
        m.curtailed_mw = self.pv_avail.iter().zip(&self.pv_p).map(|(a, p)| a - p).sum();
        let reward;
        if ok {
            self.voltage_metrics(&mut m);
            m.loss_mw = self.info.p_loss_mw;
            reward = self.reward(&m);
        } else {
            // Keep the last solved state; the step is a failure with a penalty, and ends.
            self.sol.clone_from(&self.prev_sol);
            m.diverged = true;
            m.cr = 0.0;
            m.v_min_pu = f64::NAN;
            m.v_max_pu = f64::NAN;
            reward = self.last_reward - self.task.spec.reward.divergence_penalty;
        }
        self.last_reward = reward;
        self.accumulate(&m);
        let terminated;
        let truncated;
        if compat {
            // MAPDN: the next row is loaded after the power flow (with fresh noise), without
            // re-solving; `steps` starts at 1 and the episode ends when it reaches the limit.
            let row = if self.hold_data { self.start + 1 } else { self.start + self.t.max(1) };
            self.load_row(row);
            terminated = !ok || self.t + 1 >= self.task.spec.episode_steps;
            truncated = false;
        } else {
            terminated = !ok;
            truncated = ok && self.t >= self.task.spec.episode_steps;
        }
        self.done = terminated || truncated;
        self.measure();
        self.write_observations();
        if compat && !self.done {
            self.commit_row();
        }
        Ok(Step { reward, terminated, truncated, metrics: m })
    }

    /// Exogenous data at task step `tau` into the `next_*` buffers (noise and fluctuation
    /// applied).
    fn load_row(&mut self, tau: usize) {
        let task = &self.task;
        let t_s = tau as f64 * task.spec.resolution_s as f64;
        let spec = &task.spec.noise;
        let (fl_sigma, rho) = if spec.fluctuation_sigma > 0.0 {
            (spec.fluctuation_sigma, (-(task.spec.resolution_s as f64) / spec.fluctuation_tau_s).exp())
        } else {
            (0.0, 0.0)
        };
        let noise = if self.noise_on { spec.data } else { DataNoise::None };
        let (row, w) = task.profiles.position(t_s);
        let frac = spec.data_sigma_frac;
        for (i, l) in task.loads.iter().enumerate() {
            let mut p = l.p_mw * task.profiles.at_position(l.p_col, row, w);
            let mut q = l.q_mvar * task.profiles.at_position(l.q_col, row, w);
            if fl_sigma > 0.0 {
                let e = &mut self.fl_load[i];
                *e = rho * *e + fl_sigma * (1.0 - rho * rho).sqrt() * self.rng.sample::<f64, _>(StandardNormal);
                p *= 1.0 + *e;
                q *= 1.0 + *e;
            }
            match noise {
                DataNoise::None => {}
                DataNoise::Gaussian => {
                    p = (p + frac * l.p_std * self.rng.sample::<f64, _>(StandardNormal)).max(0.0);
                    q += frac * l.q_std * self.rng.sample::<f64, _>(StandardNormal);
                }
                DataNoise::HalfNormal => {
                    p += frac * l.p_std * self.rng.sample::<f64, _>(StandardNormal).abs();
                    q += frac * l.q_std * self.rng.sample::<f64, _>(StandardNormal).abs();
                }
            }
            self.next_load_p[i] = p;
            self.next_load_q[i] = q;
        }
        for (k, g) in task.pvs.iter().enumerate() {
            let base = g.p_mw * task.profiles.at_position(g.col, row, w);
            let mut p = base;
            if fl_sigma > 0.0 {
                let e = &mut self.fl_pv[k];
                *e = rho * *e + fl_sigma * (1.0 - rho * rho).sqrt() * self.rng.sample::<f64, _>(StandardNormal);
                p *= 1.0 + *e;
            }
            match noise {
                DataNoise::None => {}
                DataNoise::Gaussian => {
                    p = if base > 0.0 { p + frac * g.p_std * self.rng.sample::<f64, _>(StandardNormal) } else { 0.0 };
                }
                DataNoise::HalfNormal => p += frac * g.p_std * self.rng.sample::<f64, _>(StandardNormal).abs(),
            }
            // A PV never consumes, and never exceeds its inverter rating.
            self.next_pv_p[k] = p.clamp(0.0, g.s_mva);
        }
    }

    /// Makes the loaded row the one the physics uses.
    fn commit_row(&mut self) {
        self.load_p.copy_from_slice(&self.next_load_p);
        self.load_q.copy_from_slice(&self.next_load_q);
        self.pv_avail.copy_from_slice(&self.next_pv_p);
        self.apply_caps();
    }

    /// PV infeed = what the panels offer, capped by any curtailment.
    fn apply_caps(&mut self) {
        for ((p, a), c) in self.pv_p.iter_mut().zip(&self.pv_avail).zip(&self.pv_cap) {
            *p = a.min(*c);
        }
    }

    /// Caps the PV active power of every inverter from the next step on (MW; +∞ for no cap):
    /// active-power curtailment, for controllers that do it (OFO §IV-I). `reset` lifts every cap.
    pub fn set_curtailment(&mut self, caps_mw: &[f64]) -> Result<(), EnvError> {
        if caps_mw.len() != self.pv_cap.len() {
            return Err(EnvError::ActionCount { expected: self.pv_cap.len(), got: caps_mw.len() });
        }
        if let Some((k, &v)) = caps_mw.iter().enumerate().find(|(_, c)| !(**c >= 0.0)) {
            return Err(EnvError::InvalidAction { agent: k, value: v });
        }
        self.pv_cap.copy_from_slice(caps_mw);
        Ok(())
    }

    /// Agent `k`'s action range in force: the Mvar per unit of action (`action_scale` · √(S² − p²))
    /// at the active power the last step was solved with — after [`step`](Self::step), the setpoint
    /// the step applied is q_k = a_k · this (a_k the clamped action, before any fault or capacity
    /// clip). What the reward's reactive-power term α·mean_k |q_k| is made of, per unit of action.
    pub fn q_range_in_force(&self, k: usize) -> f64 {
        crate::action::q_range(self.task.spec.action_scale, q_available(self.task.pvs[k].s_mva, self.pv_p[k]))
    }

    /// The setpoint (Mvar) a step without faults or lost messages puts in force for agent `k`'s
    /// action `a` at the active power the last step was solved with: clamp(a, ±1) · scale · q̄,
    /// clipped to q̄ — what the inverter holds after such a step asked for `a`.
    pub fn setpoint_of_action(&self, k: usize, a: f64) -> f64 {
        let avail = q_available(self.task.pvs[k].s_mva, self.pv_p[k]);
        q_of_action(a, self.task.spec.action_scale, avail).clamp(-avail, avail)
    }

    /// PV active power the panels offer now, before curtailment (MW, per agent).
    pub fn pv_available_mw(&self) -> &[f64] {
        &self.pv_avail
    }

    fn apply_actions(&mut self, actions: &[f64]) {
        let task = &self.task;
        let scale = task.spec.action_scale;
        let drop = task.spec.faults.drop_prob;
        for (k, &a) in actions.iter().enumerate() {
            let pv = &task.pvs[k];
            let avail = q_available(pv.s_mva, self.pv_p[k]);
            let mut q = q_of_action(a, scale, avail);
            if drop > 0.0 && self.rng.random::<f64>() < drop {
                q = self.q[k]; // message lost: the inverter keeps its setpoint
            }
            for f in &task.spec.faults.agents {
                if f.agent == k && (f.from_step..=f.to_step).contains(&self.t) {
                    q = match f.kind {
                        FaultKind::Frozen => self.q[k],
                        FaultKind::Zero => 0.0,
                    };
                }
            }
            // Capacity may have shrunk since the setpoint was made (p rose): clip.
            self.q[k] = q.clamp(-avail, avail);
        }
    }

    fn solve(&mut self) -> Result<(), PowerFlowError> {
        self.p_inj.fill(0.0);
        self.q_inj.fill(0.0);
        for (i, l) in self.task.loads.iter().enumerate() {
            self.p_inj[l.bus] -= self.load_p[i];
            self.q_inj[l.bus] -= self.load_q[i];
        }
        for (k, g) in self.task.pvs.iter().enumerate() {
            self.p_inj[g.bus] += self.pv_p[k];
            self.q_inj[g.bus] += self.q[k];
        }
        let inj = Injection { p_mw: &self.p_inj, q_mvar: &self.q_inj };
        let r = match &mut self.physics {
            Physics::Ac(s) => s.solve(inj, &mut self.sol),
            Physics::Ldf(s) => s.solve(inj, &mut self.sol),
        };
        match r {
            Ok(info) => {
                self.info = info;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn measure(&mut self) {
        let sigma = self.task.spec.observation.voltage_noise_pu;
        for i in 0..self.vm_meas.len() {
            let v = self.sol.vm_pu[i];
            self.vm_meas[i] = if sigma > 0.0 { v + sigma * self.rng.sample::<f64, _>(StandardNormal) } else { v };
        }
    }

    /// Voltage metrics of a solved step; also adds each bus's violation to the episode's AVV sums.
    fn voltage_metrics(&mut self, m: &mut StepMetrics) {
        let (lo, hi) = (self.task.spec.v_min, self.task.spec.v_max);
        let (mut vmin, mut vmax) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut any = false;
        for &b in &self.task.metric_buses {
            let v = self.sol.vm_pu[b];
            vmin = vmin.min(v);
            vmax = vmax.max(v);
            let viol = (v - hi).max(0.0) + (lo - v).max(0.0);
            if viol > 0.0 {
                any = true;
                m.violation_pu += viol;
                m.max_violation_pu = m.max_violation_pu.max(viol);
                self.acc.avv_sum[b] += viol;
            }
        }
        m.cr = if any { 0.0 } else { 1.0 };
        m.v_min_pu = vmin;
        m.v_max_pu = vmax;
    }

    fn reward(&self, m: &StepMetrics) -> f64 {
        let spec = &self.task.spec;
        let b = spec.reward.barrier;
        let buses = &self.task.metric_buses;
        let v_term = buses.iter().map(|&i| b.value(self.sol.vm_pu[i], spec.v_min, spec.v_max)).sum::<f64>() / buses.len() as f64;
        let mut r = v_term + spec.reward.q_weight * m.ql_mvar;
        if spec.reward.loss_weight != 0.0 {
            r += spec.reward.loss_weight * m.loss_mw / self.task.n_branches.max(1) as f64;
        }
        if spec.reward.violation_weight != 0.0 {
            r += spec.reward.violation_weight * (1.0 - m.cr);
        }
        -r
    }

    fn accumulate(&mut self, m: &StepMetrics) {
        let dt_h = self.task.spec.resolution_s as f64 / 3600.0;
        self.acc.add_step(m, dt_h, self.q.len());
    }

    /// Observations and state from the current solved state, at the offsets of the task's
    /// [`ObsLayout`](crate::task::ObsLayout).
    fn write_observations(&mut self) {
        let task = &self.task;
        let compat = task.spec.mode == Mode::Compat;
        let norm = task.normalize;
        let ps = if norm { 1.0 / task.power_scale_mw } else { 1.0 };
        let vnorm = |v: f64| if norm { (v - 1.0) / 0.05 } else { v };
        let n = task.network.n_bus();
        let layout = task.layout();
        let d = layout.obs_dim();
        // Per-bus load for the zone blocks: the net consumption the physics was solved with, with
        // every PV's p and q added back (zones partition the buses, so "the zone's PVs at a bus"
        // are all PVs at that bus). Clean: the same row, i.e. pure load. Compat: MAPDN's mix with
        // the *next* row's PV p.
        let pv_now: &[f64] = if compat { &self.next_pv_p } else { &self.pv_p };
        for b in 0..n {
            self.cons_p[b] = -self.p_inj[b];
            self.cons_q[b] = -self.q_inj[b];
        }
        for (k, pv) in task.pvs.iter().enumerate() {
            self.cons_p[pv.bus] += pv_now[k];
            self.cons_q[pv.bus] += self.q[k];
        }
        // Agents of one zone share everything but their own p and q: write the zone's block once
        // (into its first agent's row), copy it to the others.
        for z in &task.zones {
            let first = z.agents[0];
            let at = layout.zone(z.buses.len());
            {
                let row = &mut self.obs[first * d..(first + 1) * d];
                row.fill(0.0);
                for (j, &b) in z.buses.iter().enumerate() {
                    row[at.p + j] = (self.cons_p[b] * ps) as f32;
                    row[at.q + j] = (self.cons_q[b] * ps) as f32;
                    row[at.v + j] = vnorm(self.vm_meas[b]) as f32;
                    if let Some(theta) = at.theta {
                        row[theta + j] = self.sol.va_rad[b] as f32;
                    }
                }
            }
            for &k in &z.agents[1..] {
                self.obs.copy_within(first * d..(first + 1) * d, k * d);
            }
            for &k in &z.agents {
                self.obs[k * d + at.own_p] = (pv_now[k] * ps) as f32;
                self.obs[k * d + at.own_q] = (self.q[k] * ps) as f32;
            }
        }
        // Global state (compat: angles in degrees).
        let at = layout.state();
        let s = &mut self.state;
        for b in 0..n {
            s[at.p + b] = (-self.p_inj[b] * ps) as f32;
            s[at.q + b] = (-self.q_inj[b] * ps) as f32;
            s[at.v + b] = vnorm(self.sol.vm_pu[b]) as f32;
            let va = self.sol.va_rad[b];
            s[at.theta + b] = if compat { va.to_degrees() } else { va } as f32;
        }
        for k in 0..task.pvs.len() {
            s[at.pv_p + k] = (pv_now[k] * ps) as f32;
            s[at.pv_q + k] = (self.q[k] * ps) as f32;
        }
    }
}
