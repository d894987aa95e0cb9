//! Safety layers between any controller and the grid (`docs/SAFETY.md`): a projection filter and a
//! discrete-time CBF correction, both a QP on the LinDistFlow sensitivities solved with Clarabel.
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

use crate::env::VoltageEnv;
use crate::powerflow::{LinDistFlow, LinDistFlowForm, PowerFlowError};
use crate::task::Task;
use clarabel::algebra::CscMatrix;
use clarabel::solver::{DefaultSettingsBuilder, DefaultSolver, IPSolver, SolverStatus, SupportedConeT};
use serde::{Deserialize, Serialize};

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
    /// S = ∂v/∂q (pu per Mvar), dense n_bus × n_agents (rows of the slack are zero).
    sens: Vec<f64>,
    n_agents: usize,
    pub interventions: usize,
    pub infeasible: usize,
    pub calls: usize,
    pub correction_sum: f64,
}

impl SafetyLayer {
    pub fn new(task: &Task, cfg: SafetyConfig) -> Result<SafetyLayer, PowerFlowError> {
        if !(cfg.gamma > 0.0 && cfg.gamma <= 1.0) {
            return Err(PowerFlowError::Unsupported(format!("safety gamma must be in (0, 1], got {}", cfg.gamma)));
        }
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
                sens[i * na + k] = sm.x[(pos[i], pos[pv.bus])] / (v0 * net.base_mva);
            }
        }
        let metric: Vec<usize> = task.metric_buses.iter().copied().filter(|&b| b != net.slack).collect();
        let groups = if cfg.decentralized {
            task.zones.iter().map(|z| (z.agents.clone(), z.buses.iter().copied().filter(|b| metric.contains(b)).collect())).collect()
        } else {
            vec![((0..na).collect(), metric)]
        };
        Ok(SafetyLayer { cfg, groups, sens, n_agents: na, interventions: 0, infeasible: 0, calls: 0, correction_sum: 0.0 })
    }

    pub fn config(&self) -> &SafetyConfig {
        &self.cfg
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
        // Action-to-q scaling and the action in force.
        let mut rho = vec![0.0; na];
        let mut a_t = vec![0.0; na];
        for k in 0..na {
            let l = env.local(k);
            rho[k] = scale * l.q_avail_mvar;
            a_t[k] = if rho[k] > 0.0 { (env.q_mvar()[k] / rho[k]).clamp(-1.0, 1.0) } else { 0.0 };
        }
        let gamma = if self.cfg.kind == SafetyKind::Projection { 1.0 } else { self.cfg.gamma };
        let (vmax, vmin, d) = (task.spec.v_max, task.spec.v_min, self.cfg.margin_pu);
        let v = env.vm_pu();
        let mut info = FilterInfo::default();
        for (agents, buses) in &self.groups {
            if agents.is_empty() || buses.is_empty() {
                continue;
            }
            let n = agents.len();
            // G rows and right-hand sides: G(a − a_t) ≤ up, −G(a − a_t) ≤ lo. Rows that no action
            // in the box can violate are left out of the QP (G ≥ 0, so the extreme changes are
            // G(1 − a_t) and G(1 + a_t)): it keeps the QP to the buses that matter.
            let mut g = Vec::with_capacity(buses.len() * n);
            let (mut up, mut lo) = (Vec::new(), Vec::new());
            let mut safe = true;
            let mut m = 0;
            for &i in buses {
                let (mut dv, mut rise, mut drop) = (0.0, 0.0, 0.0);
                for &k in agents {
                    let gik = self.sens[i * na + k] * rho[k];
                    dv += gik * (out[k] - a_t[k]);
                    rise += gik * (1.0 - a_t[k]);
                    drop += gik * (1.0 + a_t[k]);
                }
                let (u, l) = (gamma * (vmax - d - v[i]), gamma * (v[i] - vmin - d));
                if dv > u + 1e-7 || -dv > l + 1e-7 {
                    safe = false;
                }
                if rise > u || drop > l {
                    g.extend(agents.iter().map(|&k| self.sens[i * na + k] * rho[k]));
                    up.push(u);
                    lo.push(l);
                    m += 1;
                }
            }
            if safe || m == 0 {
                continue;
            }
            let prop: Vec<f64> = agents.iter().map(|&k| out[k]).collect();
            let at: Vec<f64> = agents.iter().map(|&k| a_t[k]).collect();
            let (sol, sigma) = solve_qp(&g, &up, &lo, &prop, &at, m, n, self.cfg.slack_weight);
            for (c, &k) in agents.iter().enumerate() {
                out[k] = sol[c].clamp(-1.0, 1.0);
            }
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
        info.intervened = maxd > 1e-9;
        info.infeasible = info.residual_pu > 1e-6;
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

/// min ½‖a − p‖² + w·1ᵀ(σ⁺+σ⁻) s.t. G(a − a_t) − σ⁺ ≤ up, −G(a − a_t) − σ⁻ ≤ lo, |a| ≤ 1, σ ≥ 0.
/// Returns (a, max σ).
#[allow(clippy::too_many_arguments)]
fn solve_qp(g: &[f64], up: &[f64], lo: &[f64], p: &[f64], at: &[f64], m: usize, n: usize, w: f64) -> (Vec<f64>, f64) {
    let nv = n + 2 * m;
    // P = diag(1 … 1, 0 … 0), upper triangle in CSC.
    let pm = CscMatrix::new(nv, nv, (0..=nv).map(|j| j.min(n)).collect(), (0..n).collect(), vec![1.0; n]);
    let mut q = vec![0.0; nv];
    for c in 0..n {
        q[c] = -p[c];
    }
    for x in q[n..].iter_mut() {
        *x = w;
    }
    // Rows: [0, m) upper voltage, [m, 2m) lower voltage, [2m, 4m) −σ ≤ 0, [4m, 4m+n) a ≤ 1,
    // [4m+n, 4m+2n) −a ≤ 1.
    let rows = 4 * m + 2 * n;
    let mut colptr = Vec::with_capacity(nv + 1);
    let mut rowval = Vec::new();
    let mut nzval = Vec::new();
    colptr.push(0);
    for c in 0..n {
        for r in 0..m {
            let x = g[r * n + c];
            if x != 0.0 {
                rowval.push(r);
                nzval.push(x);
                rowval.push(m + r);
                nzval.push(-x);
            }
        }
        rowval.push(4 * m + c);
        nzval.push(1.0);
        rowval.push(4 * m + n + c);
        nzval.push(-1.0);
        colptr.push(rowval.len());
    }
    for s in 0..2 * m {
        // σ⁺_r enters the upper row r, σ⁻_r the lower row m + r; both with −1, and −σ ≤ 0.
        rowval.push(s);
        nzval.push(-1.0);
        rowval.push(2 * m + s);
        nzval.push(-1.0);
        colptr.push(rowval.len());
    }
    // Sort row indices within each column (CSC requirement).
    for c in 0..nv {
        let (a, b) = (colptr[c], colptr[c + 1]);
        let mut pairs: Vec<(usize, f64)> = rowval[a..b].iter().copied().zip(nzval[a..b].iter().copied()).collect();
        pairs.sort_by_key(|x| x.0);
        for (i, (r, v)) in pairs.into_iter().enumerate() {
            rowval[a + i] = r;
            nzval[a + i] = v;
        }
    }
    let am = CscMatrix::new(rows, nv, colptr, rowval, nzval);
    let mut b = vec![0.0; rows];
    for r in 0..m {
        let ga: f64 = (0..n).map(|c| g[r * n + c] * at[c]).sum();
        b[r] = up[r] + ga;
        b[m + r] = lo[r] - ga;
    }
    for x in b[4 * m..].iter_mut() {
        *x = 1.0;
    }
    let cones = [SupportedConeT::NonnegativeConeT(rows)];
    let settings = DefaultSettingsBuilder::default().verbose(false).max_iter(200).build().expect("valid settings");
    let mut solver = match DefaultSolver::new(&pm, &q, &am, &b, &cones, settings) {
        Ok(s) => s,
        Err(_) => return (p.iter().map(|x| x.clamp(-1.0, 1.0)).collect(), f64::INFINITY),
    };
    solver.solve();
    match solver.solution.status {
        SolverStatus::Solved | SolverStatus::AlmostSolved => {
            let x = &solver.solution.x;
            let sigma = x[n..].iter().copied().fold(0.0, f64::max);
            (x[..n].to_vec(), sigma)
        }
        // The problem is always feasible; a numerical failure keeps the safest simple action:
        // the proposal clipped to the box, reported as infeasible.
        _ => (p.iter().map(|x| x.clamp(-1.0, 1.0)).collect(), f64::INFINITY),
    }
}
