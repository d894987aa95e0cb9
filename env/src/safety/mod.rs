//! Safety layers between any controller and the grid (`docs/SAFETY.md`): a projection filter and a
//! discrete-time CBF correction, both a QP on the LinDistFlow sensitivities, solved by a dual active-set
//! method (`qp.rs`) with Clarabel as the fallback (`fallback.rs`).
//!
//! Anchored one-step predictor (persistence of the exogenous data): v̂(a) = v_t + G(a − a_t),
//! G = S·P, S = ∂v/∂q = X_{M,b(K)}/(v₀ S_b) (pu per Mvar), P = diag(scale·√(S_k² − p_k²)) (Mvar per
//! unit action). The filter solves
//!   min ½‖a − a_prop‖² + w₁·1ᵀ(σ⁺ + σ⁻)
//!   s.t. G(a − a_t) ≤ γ(v̄ − δ − v_t) + σ⁺,  −G(a − a_t) ≤ γ(v_t − v̲ − δ) + σ⁻,  −1 ≤ a ≤ 1,  σ ≥ 0,
//! with γ = 1 for the projection filter and γ ∈ (0, 1] for the CBF (h(t+1) ≥ (1 − γ) h(t) on the
//! upper and lower margins h). Only the voltage rows are soft, so the problem is always feasible;
//! when the slack is needed the step is reported infeasible and the least-violating action is
//! applied (never the unfiltered one). A proposed action that already satisfies the constraints is
//! returned unchanged without a solve. The decentralised variant solves one QP per zone with only
//! that zone's buses and agents.

mod fallback;
mod qp;

use crate::env::VoltageEnv;
use crate::task::Task;
use fallback::{solve_qp, solve_qp_working_set};
use qp::{active_set_qp, ActiveSetWork, SlackQp};
pub use qp::{QpError, QpSettings};
use serde::{Deserialize, Serialize};
use voltarena_grid::powerflow::{LinDistFlow, LinDistFlowForm, PowerFlowError};

/// A proposal whose predicted change is within this of every allowed rise and drop (pu) passes
/// without a solve.
const SCREEN_TOL_PU: f64 = 1e-7;
/// The action counts as changed when some agent's moves by more than this.
const INTERVENED_TOL: f64 = 1e-9;
/// The step counts as infeasible when the slack exceeds this (pu).
const INFEASIBLE_TOL_PU: f64 = 1e-6;

/// Which layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SafetyKind {
    #[default]
    None,
    Projection,
    Cbf,
}

impl std::str::FromStr for SafetyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<SafetyKind, String> {
        match s {
            "none" => Ok(SafetyKind::None),
            "projection" => Ok(SafetyKind::Projection),
            "cbf" => Ok(SafetyKind::Cbf),
            _ => Err(format!("unknown safety layer '{s}'; expected none, projection or cbf")),
        }
    }
}

/// Layer settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SafetyConfig {
    pub kind: SafetyKind,
    /// Margin δ inside the limits for linearisation and forecast error (pu).
    pub margin_pu: f64,
    /// CBF rate γ ∈ (0, 1] (1 = the projection filter).
    pub gamma: f64,
    /// ℓ1 penalty on the voltage slack (action² per pu).
    pub slack_weight: f64,
    /// One QP per zone, each with only its own buses and agents.
    pub decentralized: bool,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig { kind: SafetyKind::None, margin_pu: 0.005, gamma: 0.3, slack_weight: 1e3, decentralized: false }
    }
}

/// Why [`SafetyLayer::new`] refused a configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SafetyError {
    /// A field of [`SafetyConfig`] is outside its range (`expected` states the range).
    #[error("safety.{field}: expected {expected}, got {got}")]
    InvalidSetting { field: &'static str, expected: &'static str, got: f64 },
    /// The LinDistFlow model of the task's network (the sensitivities) cannot be built.
    #[error("safety: cannot build the LinDistFlow model: {0}")]
    Physics(#[from] PowerFlowError),
}

impl SafetyConfig {
    /// Checks the ranges: γ ∈ (0, 1], δ finite and ≥ 0, w₁ finite and > 0 (NaN is out of every
    /// range). Checked for every kind, `none` included.
    fn validate(&self) -> Result<(), SafetyError> {
        let bad = |field, expected, got| Err(SafetyError::InvalidSetting { field, expected, got });
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return bad("gamma", "a number in (0, 1]", self.gamma);
        }
        if !(self.margin_pu.is_finite() && self.margin_pu >= 0.0) {
            return bad("margin_pu", "a finite number ≥ 0", self.margin_pu);
        }
        if !(self.slack_weight.is_finite() && self.slack_weight > 0.0) {
            return bad("slack_weight", "a finite number > 0", self.slack_weight);
        }
        Ok(())
    }
}

/// What one filtering did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FilterInfo {
    /// The action was changed.
    pub intervened: bool,
    /// The voltage constraints could not all be met (slack used).
    pub infeasible: bool,
    /// Largest slack (pu).
    pub residual_pu: f64,
    /// ‖a − a_prop‖₂.
    pub correction: f64,
}

/// A safety layer for one task.
pub struct SafetyLayer {
    cfg: SafetyConfig,
    /// Groups of (agents, monitored buses) solved together: one group, or one per zone.
    groups: Vec<(Vec<usize>, Vec<usize>)>,
    /// S = ∂v/∂q (pu per Mvar), dense n_bus × n_agents (rows of the slack are zero); the rows of
    /// the few buses that enter a QP are read from here.
    sens: Vec<f64>,
    /// The LinDistFlow model: S·q over all buses in O(n) by tree sweeps (`x_times`), so the
    /// screening of all monitored buses never forms G.
    ldf: LinDistFlow,
    /// Bus of each agent's inverter, and S = X/(v₀ S_base).
    pv_bus: Vec<usize>,
    sens_scale: f64,
    n_agents: usize,
    /// Tolerances and budgets of the dual active-set solver (always the defaults).
    qp_settings: QpSettings,
    ws: Work,
    pub interventions: usize,
    pub infeasible: usize,
    pub calls: usize,
    pub correction_sum: f64,
    /// QPs that went to the interior-point solver (active set failed: infeasible or degenerate).
    pub fallbacks: usize,
}

/// Preallocated buffers: filtering a step allocates nothing unless the interior-point fallback runs.
#[derive(Default)]
struct Work {
    rho: Vec<f64>,
    a_t: Vec<f64>,
    inj: Vec<f64>,
    dv: Vec<f64>,
    rise: Vec<f64>,
    drop: Vec<f64>,
    /// Candidate rows (monitored buses some action in the box could push over a limit).
    rows: Vec<usize>,
    up: Vec<f64>,
    lo: Vec<f64>,
    prop: Vec<f64>,
    at: Vec<f64>,
    qp: ActiveSetWork,
    /// Warm start: the binding rows (bus, upper?) of the previous step, per group.
    warm: Vec<Vec<(usize, bool)>>,
    warm_rows: Vec<usize>,
}

impl SafetyLayer {
    /// The layer for `task`: checks the settings ([`SafetyError::InvalidSetting`]) and builds the
    /// LinDistFlow sensitivities ([`SafetyError::Physics`] if the network does not allow it).
    pub fn new(task: &Task, cfg: SafetyConfig) -> Result<SafetyLayer, SafetyError> {
        cfg.validate()?;
        let net = &task.network;
        let ldf = LinDistFlow::new(net, LinDistFlowForm::Linear)?;
        let sm = ldf.sensitivities();
        let v0 = ldf.v0();
        let n_bus = net.n_bus();
        let na = task.pvs.len();
        let mut pos = vec![usize::MAX; n_bus];
        for (k, &b) in sm.buses.iter().enumerate() {
            pos[b] = k;
        }
        let mut sens = vec![0.0; n_bus * na];
        for i in 0..n_bus {
            if pos[i] == usize::MAX {
                continue;
            }
            for (k, pv) in task.pvs.iter().enumerate() {
                sens[i * na + k] = if pos[pv.bus] == usize::MAX { 0.0 } else { sm.x[(pos[i], pos[pv.bus])] / (v0 * net.base_mva) };
            }
        }
        let metric: Vec<usize> = task.metric_buses.iter().copied().filter(|&b| b != net.slack).collect();
        let groups: Vec<(Vec<usize>, Vec<usize>)> = if cfg.decentralized {
            task.zones.iter().map(|z| (z.agents.clone(), z.buses.iter().copied().filter(|b| metric.contains(b)).collect())).collect()
        } else {
            vec![((0..na).collect(), metric)]
        };
        let ws = Work {
            rho: vec![0.0; na],
            a_t: vec![0.0; na],
            inj: vec![0.0; n_bus],
            dv: vec![0.0; n_bus],
            rise: vec![0.0; n_bus],
            drop: vec![0.0; n_bus],
            warm: vec![Vec::new(); groups.len()],
            ..Default::default()
        };
        let pv_bus = task.pvs.iter().map(|p| p.bus).collect();
        Ok(SafetyLayer { cfg, groups, sens, ldf, pv_bus, sens_scale: 1.0 / (v0 * net.base_mva), n_agents: na, qp_settings: QpSettings::default(), ws, interventions: 0, infeasible: 0, calls: 0, correction_sum: 0.0, fallbacks: 0 })
    }

    /// The warm start the next filtering begins from: per group, the (bus, upper?) rows that were
    /// binding at the previous step. It carries over from step to step (and episode to episode), so
    /// a resumable training checkpoint stores it.
    pub fn warm_start(&self) -> &[Vec<(usize, bool)>] {
        &self.ws.warm
    }

    /// Restores a warm start from [`warm_start`](Self::warm_start); refused if it has another number
    /// of groups or names a bus outside the network.
    pub fn set_warm_start(&mut self, warm: Vec<Vec<(usize, bool)>>) -> Result<(), String> {
        if warm.len() != self.ws.warm.len() {
            return Err(format!("safety-layer warm start for {} groups, this layer has {}", warm.len(), self.ws.warm.len()));
        }
        let n_bus = self.ws.dv.len();
        if let Some(&(b, _)) = warm.iter().flatten().find(|(b, _)| *b >= n_bus) {
            return Err(format!("safety-layer warm start names bus index {b}, the network has {n_bus} buses"));
        }
        self.ws.warm = warm;
        Ok(())
    }

    pub fn config(&self) -> &SafetyConfig {
        &self.cfg
    }

    /// The settings of the dual active-set solver.
    pub fn qp_settings(&self) -> &QpSettings {
        &self.qp_settings
    }

    /// ∂v_i/∂q_k (pu per Mvar).
    pub fn sensitivity(&self, bus: usize, agent: usize) -> f64 {
        self.sens[bus * self.n_agents + agent]
    }

    /// Filters `proposed` (one action per agent) for the environment's current state into `out`.
    pub fn filter(&mut self, env: &VoltageEnv, proposed: &[f64], out: &mut [f64]) -> FilterInfo {
        out.copy_from_slice(proposed);
        for a in out.iter_mut() {
            *a = a.clamp(-1.0, 1.0);
        }
        if self.cfg.kind == SafetyKind::None {
            return FilterInfo::default();
        }
        self.calls += 1;
        let task = env.task();
        let scale = task.spec.action_scale;
        let na = self.n_agents;
        let ws = &mut self.ws;
        // Action-to-q scaling and the action in force.
        for k in 0..na {
            let l = env.local(k);
            ws.rho[k] = crate::action::q_range(scale, l.q_avail_mvar);
            ws.a_t[k] = crate::action::action_of_q(env.q_mvar()[k], ws.rho[k]);
        }
        let gamma = if self.cfg.kind == SafetyKind::Projection { 1.0 } else { self.cfg.gamma };
        let (vmax, vmin, d) = (task.spec.v_max, task.spec.v_min, self.cfg.margin_pu);
        let v = env.vm_pu();
        let mut info = FilterInfo::default();
        let (ldf, pv_bus, ss) = (&self.ldf, &self.pv_bus, self.sens_scale);
        // out = S·(ρ ∘ x) over all buses, x_c for the group's c-th agent, by two O(n) tree sweeps.
        let sweep = |inj: &mut [f64], out: &mut [f64], agents: &[usize], rho: &[f64], x: &dyn Fn(usize, usize) -> f64| {
            inj.fill(0.0);
            for (c, &k) in agents.iter().enumerate() {
                inj[pv_bus[k]] += ss * rho[k] * x(c, k);
            }
            ldf.x_times(inj, out);
        };
        for (gi, (agents, buses)) in self.groups.iter().enumerate() {
            if agents.is_empty() || buses.is_empty() {
                continue;
            }
            let n = agents.len();
            // Predicted change G(a − a_t), and the largest rise/drop any action in the box can
            // cause (G ≥ 0: G(1 − a_t) and G(1 + a_t)). Rows no action can violate are left out
            // of the QP, which keeps it to the buses that matter.
            let (a_t, rho) = (&ws.a_t, &ws.rho);
            let o: &[f64] = out;
            sweep(&mut ws.inj, &mut ws.dv, agents, rho, &|_, k| o[k] - a_t[k]);
            sweep(&mut ws.inj, &mut ws.rise, agents, rho, &|_, k| 1.0 - a_t[k]);
            sweep(&mut ws.inj, &mut ws.drop, agents, rho, &|_, k| 1.0 + a_t[k]);
            let mut safe = true;
            ws.rows.clear();
            ws.up.clear();
            ws.lo.clear();
            for &i in buses {
                let (u, l) = (gamma * (vmax - d - v[i]), gamma * (v[i] - vmin - d));
                if ws.dv[i] > u + SCREEN_TOL_PU || -ws.dv[i] > l + SCREEN_TOL_PU {
                    safe = false;
                }
                if ws.rise[i] > u || ws.drop[i] > l {
                    ws.rows.push(i);
                    ws.up.push(u);
                    ws.lo.push(l);
                }
            }
            let m = ws.rows.len();
            if safe || m == 0 {
                ws.warm[gi].clear();
                continue;
            }
            ws.prop.clear();
            ws.prop.extend(agents.iter().map(|&k| out[k]));
            ws.at.clear();
            ws.at.extend(agents.iter().map(|&k| ws.a_t[k]));
            // Warm start from the rows that were binding at the previous step.
            ws.warm_rows.clear();
            for &(bus, upper) in &ws.warm[gi] {
                if let Some(r) = ws.rows.iter().position(|&b| b == bus) {
                    ws.warm_rows.push(if upper { r } else { m + r });
                }
            }
            // Fast path: the dual active-set method on the slack QP (infeasible steps included);
            // Clarabel when its budget runs out. G·x over the candidate rows by a sweep, G's rows
            // from the dense S only when they bind.
            let (rows, rho, sens) = (&ws.rows, &ws.rho, &self.sens);
            let (inj, full) = (&mut ws.inj, &mut ws.dv);
            let mut g_mul = |x: &[f64], o: &mut [f64]| {
                sweep(inj, full, agents, rho, &|c, _| x[c]);
                for (o, &i) in o.iter_mut().zip(rows) {
                    *o = full[i];
                }
            };
            let mut g_row = |r: usize, o: &mut [f64]| {
                let srow = &sens[rows[r] * na..(rows[r] + 1) * na];
                for (o, &k) in o.iter_mut().zip(agents) {
                    *o = srow[k] * rho[k];
                }
            };
            let problem = SlackQp { up: &ws.up, lo: &ws.lo, p: &ws.prop, at: &ws.at, m, n, wpen: self.cfg.slack_weight };
            let mut fast = active_set_qp(&mut g_mul, &mut g_row, &problem, &ws.warm_rows, &self.qp_settings, &mut ws.qp);
            if fast.is_err() && !ws.warm_rows.is_empty() {
                // A stale warm start can be worse than none: retry cold.
                fast = active_set_qp(&mut g_mul, &mut g_row, &problem, &[], &self.qp_settings, &mut ws.qp);
            }
            let sigma = if fast.is_ok() {
                ws.warm[gi].clear();
                for &j in &ws.qp.active {
                    ws.warm[gi].push(if j < m { (ws.rows[j], true) } else { (ws.rows[j - m], false) });
                }
                for (c, &k) in agents.iter().enumerate() {
                    out[k] = ws.qp.a[c].clamp(-1.0, 1.0);
                }
                ws.qp.sigma
            } else {
                ws.warm[gi].clear();
                self.fallbacks += 1;
                let (sol, sigma) = solve_qp_working_set(&mut g_mul, &mut g_row, &problem, &ws.qp.a, &ws.qp.active).unwrap_or_else(|| {
                    // Last resort: every candidate row.
                    let mut g = vec![0.0; m * n];
                    for (r, row) in g.chunks_exact_mut(n).enumerate() {
                        g_row(r, row);
                    }
                    solve_qp(&g, &problem)
                });
                for (c, &k) in agents.iter().enumerate() {
                    out[k] = sol[c].clamp(-1.0, 1.0);
                }
                sigma
            };
            info.residual_pu = info.residual_pu.max(sigma);
        }
        let mut corr = 0.0;
        let mut maxd: f64 = 0.0;
        for k in 0..na {
            let dk = out[k] - proposed[k].clamp(-1.0, 1.0);
            corr += dk * dk;
            maxd = maxd.max(dk.abs());
        }
        info.correction = corr.sqrt();
        info.intervened = maxd > INTERVENED_TOL;
        info.infeasible = info.residual_pu > INFEASIBLE_TOL_PU;
        if info.intervened {
            self.interventions += 1;
        }
        if info.infeasible {
            self.infeasible += 1;
        }
        self.correction_sum += info.correction;
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_are_refused_naming_the_field_and_the_range() {
        let task = Task::builtin("mapdn33").unwrap();
        let base = SafetyConfig { kind: SafetyKind::Cbf, ..Default::default() };
        let cases = [
            (SafetyConfig { gamma: 2.0, ..base }, "safety.gamma: expected a number in (0, 1], got 2"),
            (SafetyConfig { gamma: 0.0, ..base }, "safety.gamma: expected a number in (0, 1], got 0"),
            (SafetyConfig { gamma: -0.5, ..base }, "safety.gamma: expected a number in (0, 1], got -0.5"),
            (SafetyConfig { gamma: f64::NAN, ..base }, "safety.gamma: expected a number in (0, 1], got NaN"),
            (SafetyConfig { margin_pu: -0.01, ..base }, "safety.margin_pu: expected a finite number ≥ 0, got -0.01"),
            (SafetyConfig { margin_pu: f64::INFINITY, ..base }, "safety.margin_pu: expected a finite number ≥ 0, got inf"),
            (SafetyConfig { margin_pu: f64::NAN, ..base }, "safety.margin_pu: expected a finite number ≥ 0, got NaN"),
            (SafetyConfig { slack_weight: 0.0, ..base }, "safety.slack_weight: expected a finite number > 0, got 0"),
            (SafetyConfig { slack_weight: -1e3, ..base }, "safety.slack_weight: expected a finite number > 0, got -1000"),
            (SafetyConfig { slack_weight: f64::INFINITY, ..base }, "safety.slack_weight: expected a finite number > 0, got inf"),
            (SafetyConfig { slack_weight: f64::NAN, ..base }, "safety.slack_weight: expected a finite number > 0, got NaN"),
            // Checked whatever the kind.
            (SafetyConfig { kind: SafetyKind::None, gamma: 1.5, ..base }, "safety.gamma: expected a number in (0, 1], got 1.5"),
            (SafetyConfig { kind: SafetyKind::Projection, slack_weight: 0.0, ..base }, "safety.slack_weight: expected a finite number > 0, got 0"),
        ];
        for (cfg, msg) in cases {
            let e = SafetyLayer::new(&task, cfg).err().unwrap_or_else(|| panic!("{cfg:?} accepted"));
            assert!(matches!(e, SafetyError::InvalidSetting { .. }), "{e:?}");
            assert_eq!(e.to_string(), msg);
        }
        // The ends of the ranges that belong to them, and the defaults.
        for cfg in [base, SafetyConfig::default(), SafetyConfig { gamma: 1.0, margin_pu: 0.0, slack_weight: 1e-6, ..base }] {
            let layer = SafetyLayer::new(&task, cfg).unwrap();
            assert_eq!(*layer.config(), cfg);
            assert_eq!(*layer.qp_settings(), QpSettings::default());
        }
        // The physics error is wrapped, with its own message.
        let e = SafetyError::from(PowerFlowError::NotRadial("LinDistFlow"));
        assert_eq!(e.to_string(), "safety: cannot build the LinDistFlow model: LinDistFlow needs a radial network; this one is meshed");
    }
}
