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
use voltarena_grid::powerflow::{LinDistFlow, LinDistFlowForm, PowerFlowError};
use crate::task::Task;
use clarabel::algebra::CscMatrix;
use clarabel::solver::{DefaultSettingsBuilder, DefaultSolver, IPSolver, SolverStatus, SupportedConeT};
use serde::{Deserialize, Serialize};

/// Why a safety layer cannot be built.
pub type SafetyError = PowerFlowError;

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
        Ok(SafetyLayer { cfg, groups, sens, ldf, pv_bus, sens_scale: 1.0 / (v0 * net.base_mva), n_agents: na, ws, interventions: 0, infeasible: 0, calls: 0, correction_sum: 0.0, fallbacks: 0 })
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
                if ws.dv[i] > u + 1e-7 || -ws.dv[i] > l + 1e-7 {
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
            let mut fast = active_set_qp(&mut g_mul, &mut g_row, &ws.up, &ws.lo, &ws.prop, &ws.at, m, n, self.cfg.slack_weight, &ws.warm_rows, &mut ws.qp);
            if !fast && !ws.warm_rows.is_empty() {
                // A stale warm start can be worse than none: retry cold.
                fast = active_set_qp(&mut g_mul, &mut g_row, &ws.up, &ws.lo, &ws.prop, &ws.at, m, n, self.cfg.slack_weight, &[], &mut ws.qp);
            }
            let sigma = if fast {
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
                let wpen = self.cfg.slack_weight;
                let (sol, sigma) = solve_qp_working_set(&mut g_mul, &mut g_row, &ws.up, &ws.lo, &ws.prop, &ws.at, m, n, wpen, &ws.qp.a, &ws.qp.active).unwrap_or_else(|| {
                    // Last resort: every candidate row.
                    let mut g = vec![0.0; m * n];
                    for (r, row) in g.chunks_exact_mut(n).enumerate() {
                        g_row(r, row);
                    }
                    solve_qp(&g, &ws.up, &ws.lo, &ws.prop, &ws.at, m, n, wpen)
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

/// Buffers of [`active_set_qp`]; its solution is left in `a`, the working rows in `active`.
#[derive(Default)]
struct ActiveSetWork {
    a: Vec<f64>,
    /// Working rows W (the only rows with μ > 0) and their signed coefficients (|W| × n).
    active: Vec<usize>,
    ca: Vec<f64>,
    mu: Vec<f64>,
    /// Trial multipliers, gradient, Newton direction (|W|).
    mu2: Vec<f64>,
    grad: Vec<f64>,
    dir: Vec<f64>,
    free: Vec<bool>,
    hess: Vec<f64>,
    /// Right-hand sides c_W of the working rows.
    cw: Vec<f64>,
    /// Cᵀμ (n).
    ctmu: Vec<f64>,
    ga: Vec<f64>,
    gx: Vec<f64>,
    /// Largest slack (pu) at the solution.
    sigma: f64,
}

impl ActiveSetWork {
    fn push_row(&mut self, j: usize, m: usize, n: usize, g_row: &mut dyn FnMut(usize, &mut [f64])) {
        let at = self.ca.len();
        self.ca.resize(at + n, 0.0);
        g_row(if j < m { j } else { j - m }, &mut self.ca[at..]);
        if j >= m {
            for x in &mut self.ca[at..] {
                *x = -*x;
            }
        }
        self.active.push(j);
        self.mu.push(0.0);
    }

    fn remove_row(&mut self, x: usize, n: usize) {
        self.active.remove(x);
        self.mu.remove(x);
        self.ca.drain(x * n..(x + 1) * n);
    }

    /// a = clip(p − C_Wᵀμ), and the dual function D(μ) = ½‖a − p‖² + μᵀ(C_W a − c_W).
    fn dual(&mut self, mu_trial: bool, p: &[f64], c: &[f64], n: usize) -> f64 {
        let k = self.active.len();
        let mu = if mu_trial { &self.mu2 } else { &self.mu };
        self.ctmu.fill(0.0);
        for x in 0..k {
            if mu[x] != 0.0 {
                for (s, v) in self.ctmu.iter_mut().zip(&self.ca[x * n..(x + 1) * n]) {
                    *s += v * mu[x];
                }
            }
        }
        let mut d = 0.0;
        for i in 0..n {
            self.a[i] = (p[i] - self.ctmu[i]).clamp(-1.0, 1.0);
            d += 0.5 * (self.a[i] - p[i]) * (self.a[i] - p[i]);
        }
        for x in 0..k {
            let row = &self.ca[x * n..(x + 1) * n];
            let ca: f64 = row.iter().zip(&self.a).map(|(r, a)| r * a).sum();
            d += mu[x] * (ca - c[x]);
        }
        d
    }
}

/// min ½‖a − p‖² + w·Σ_j [C_j a − c_j]⁺ over |a| ≤ 1 — the ℓ1-slack QP of [`solve_qp`] — with rows
/// C_j a ≤ c_j: G_r a ≤ up_r + G_r a_t (j = r < m) and −G_r a ≤ lo_r − G_r a_t (j = m + r).
///
/// Solved in the dual: a(μ) = clip(p − Cᵀμ) and D(μ) = ½‖a − p‖² + μᵀ(Ca − c) is concave and
/// differentiable with ∇D = C a(μ) − c, maximised over 0 ≤ μ ≤ w (a multiplier at w is a row that
/// stays violated and pays the penalty). Only a small working set W of rows carries μ > 0: D is
/// maximised over μ_W by a projected Newton method with an Armijo search (Hessian −C_{W,F} C_{W,F}ᵀ
/// on the variables F inside the box), then the most violated row outside W joins W (D rises
/// strictly, so no cycling); rows back at μ = 0 and satisfied leave it. G is never formed:
/// `g_mul(x, out)` writes G·x for all m rows (a tree sweep in the layer) and `g_row(r, out)` one
/// row, fetched when it joins W. Started from the rows of `warm`. Returns false when the budget
/// runs out (the caller then uses the interior-point solver).
#[allow(clippy::too_many_arguments)]
fn active_set_qp(
    g_mul: &mut dyn FnMut(&[f64], &mut [f64]),
    g_row: &mut dyn FnMut(usize, &mut [f64]),
    up: &[f64],
    lo: &[f64],
    p: &[f64],
    at: &[f64],
    m: usize,
    n: usize,
    wpen: f64,
    warm: &[usize],
    w: &mut ActiveSetWork,
) -> bool {
    /// Optimality tolerance on ∇D (pu): 1e-9 pu is far below any voltage that matters, and
    /// above the roundoff of the ridge-regularised Newton steps.
    const TOL: f64 = 1e-9;
    w.ga.clear();
    w.ga.resize(m, 0.0);
    g_mul(at, &mut w.ga);
    let ga = std::mem::take(&mut w.ga);
    let rhs = |j: usize| if j < m { up[j] + ga[j] } else { lo[j - m] - ga[j - m] };
    w.active.clear();
    w.ca.clear();
    w.mu.clear();
    for &j in warm {
        if j < 2 * m && !w.active.contains(&j) {
            w.push_row(j, m, n, g_row);
        }
    }
    w.a.clear();
    w.a.resize(n, 0.0);
    w.ctmu.clear();
    w.ctmu.resize(n, 0.0);
    w.free.clear();
    w.free.resize(n, false);
    w.gx.clear();
    w.gx.resize(m, 0.0);
    w.sigma = 0.0;
    let mut result = false;
    'outer: for _outer in 0..(2 * n + 60) {
        let k = w.active.len();
        w.mu2.clear();
        w.mu2.resize(k, 0.0);
        w.grad.clear();
        w.grad.resize(k, 0.0);
        w.dir.clear();
        w.dir.resize(k, 0.0);
        let mut c_w = std::mem::take(&mut w.cw);
        c_w.clear();
        c_w.extend(w.active.iter().map(|&j| rhs(j)));
        let mut hess = std::mem::take(&mut w.hess);
        // Projected Newton on μ_W.
        let mut d_cur = w.dual(false, p, &c_w, n);
        let mut converged = k == 0;
        for _it in 0..100 {
            if k == 0 {
                break;
            }
            // ∇D_W = C_W a − c_W; free variables of a.
            for x in 0..k {
                let row = &w.ca[x * n..(x + 1) * n];
                w.grad[x] = row.iter().zip(&w.a).map(|(r, a)| r * a).sum::<f64>() - c_w[x];
            }
            for i in 0..n {
                let u = p[i] - w.ctmu[i];
                w.free[i] = u.abs() < 1.0;
            }
            // Optimality of the sub-problem (ascent direction blocked by the bounds 0 and w).
            let kkt = (0..k).all(|x| {
                let (mu, g) = (w.mu[x], w.grad[x]);
                if mu <= 0.0 { g <= TOL } else if mu >= wpen { g >= -TOL } else { g.abs() <= TOL }
            });
            if kkt {
                converged = true;
                break;
            }
            // Projected Newton (Bertsekas 1982): multipliers within ε of a bound that the
            // gradient pushes against form the set A and take a diagonally scaled gradient step;
            // the others a Newton step with H = C_{I,F} C_{I,F}ᵀ (+ ridge), F = variables inside
            // the box. ε shrinks with the scaled projected-gradient norm, so A settles on the
            // true bound set near the optimum.
            let diag = |x: usize, ca: &[f64], free: &[bool]| -> f64 {
                let rx = &ca[x * n..(x + 1) * n];
                (0..n).filter(|&i| free[i]).map(|i| rx[i] * rx[i]).sum::<f64>()
            };
            let mut pg: f64 = 0.0;
            for x in 0..k {
                let h = diag(x, &w.ca, &w.free).max(1e-12);
                let target = (w.mu[x] + w.grad[x] / h).clamp(0.0, wpen);
                pg = pg.max((target - w.mu[x]).abs());
            }
            let eps = pg.min(1e-3 * wpen);
            let bound = |x: usize, mu: &[f64], g: &[f64]| (mu[x] <= eps && g[x] <= 0.0) || (mu[x] >= wpen - eps && g[x] >= 0.0);
            hess.clear();
            hess.resize(k * k, 0.0);
            for x in 0..k {
                for y in x..k {
                    let v = if bound(x, &w.mu, &w.grad) || bound(y, &w.mu, &w.grad) {
                        if x == y { 1.0 } else { 0.0 }
                    } else {
                        let (rx, ry) = (&w.ca[x * n..(x + 1) * n], &w.ca[y * n..(y + 1) * n]);
                        (0..n).filter(|&i| w.free[i]).map(|i| rx[i] * ry[i]).sum()
                    };
                    hess[x * k + y] = v;
                    hess[y * k + x] = v;
                }
            }
            let ridge = 1e-10 * (0..k).map(|x| hess[x * k + x]).fold(0.0, f64::max) + 1e-300;
            for x in 0..k {
                hess[x * k + x] += ridge;
                w.dir[x] = if bound(x, &w.mu, &w.grad) { 0.0 } else { w.grad[x] };
            }
            if !solve_spd(&mut hess, &mut w.dir, k) {
                break;
            }
            for x in 0..k {
                if bound(x, &w.mu, &w.grad) {
                    w.dir[x] = w.grad[x] / diag(x, &w.ca, &w.free).max(1e-12);
                }
            }
            // Armijo search along the projection arc μ(α) = P_[0,w](μ + α d).
            let mut alpha = 1.0;
            let mut improved = false;
            for _ls in 0..40 {
                for x in 0..k {
                    w.mu2[x] = (w.mu[x] + alpha * w.dir[x]).clamp(0.0, wpen);
                }
                let d_new = w.dual(true, p, &c_w, n);
                let lin: f64 = (0..k).map(|x| w.grad[x] * (w.mu2[x] - w.mu[x])).sum();
                let _ = bound;
                if d_new >= d_cur + 1e-4 * lin && d_new >= d_cur {
                    improved = d_new > d_cur;
                    d_cur = d_new;
                    std::mem::swap(&mut w.mu, &mut w.mu2);
                    break;
                }
                alpha *= 0.5;
            }
            // Keep a and Cᵀμ consistent with the accepted μ.
            d_cur = d_cur.max(w.dual(false, p, &c_w, n));
            if !improved {
                // No ascent left: accept a near-optimal point (roundoff of the ridge), else fail.
                converged = (0..k).all(|x| {
                    let (mu, g) = (w.mu[x], w.grad[x]);
                    if mu <= 0.0 { g <= 1e3 * TOL } else if mu >= wpen { g >= -1e3 * TOL } else { g.abs() <= 1e3 * TOL }
                });
                break;
            }
        }
        w.hess = hess;
        w.cw = c_w;
        if !converged {
            break 'outer;
        }
        // Rows of W back at μ = 0 leave it.
        let mut x = 0;
        while x < w.active.len() {
            if w.mu[x] <= 0.0 {
                w.remove_row(x, n);
            } else {
                x += 1;
            }
        }
        // Most violated row outside W (rows in W are at their optimum: satisfied or capped).
        // (a is unchanged: the rows removed had μ = 0.)
        g_mul(&w.a, &mut w.gx);
        let excess = |j: usize, gx: &[f64]| if j < m { gx[j] - rhs(j) } else { -gx[j - m] - rhs(j) };
        let mut viol: Option<(usize, f64)> = None;
        let mut sigma: f64 = 0.0;
        for j in 0..2 * m {
            let e = excess(j, &w.gx);
            sigma = sigma.max(e);
            if e > 1e-9 && !w.active.contains(&j) && viol.is_none_or(|(_, v)| e > v) {
                viol = Some((j, e));
            }
        }
        match viol {
            Some((j, _)) => w.push_row(j, m, n, g_row),
            None => {
                w.sigma = sigma;
                result = true;
                break 'outer;
            }
        }
    }
    w.ga = ga;
    result
}

/// Solves the small symmetric positive definite system M x = r in place (Cholesky; x left in r);
/// false if M is not SPD.
fn solve_spd(mm: &mut [f64], r: &mut [f64], k: usize) -> bool {
    for j in 0..k {
        let mut d = mm[j * k + j];
        for l in 0..j {
            d -= mm[j * k + l] * mm[j * k + l];
        }
        if !(d > 0.0 && d.is_finite()) {
            return false;
        }
        let d = d.sqrt();
        mm[j * k + j] = d;
        for i in j + 1..k {
            let mut v = mm[i * k + j];
            for l in 0..j {
                v -= mm[i * k + l] * mm[j * k + l];
            }
            mm[i * k + j] = v / d;
        }
    }
    for i in 0..k {
        for l in 0..i {
            r[i] -= mm[i * k + l] * r[l];
        }
        r[i] /= mm[i * k + i];
    }
    for i in (0..k).rev() {
        for l in i + 1..k {
            r[i] -= mm[l * k + i] * r[l];
        }
        r[i] /= mm[i * k + i];
    }
    true
}

/// The interior-point solver (allocates) on a working set of rows — `rows` (indices j < 2m as in
/// [`active_set_qp`]) plus those violated at `a0` —, growing by the rows its solution
/// violates until none is: the rows left out then have zero slack and zero multiplier, so this is
/// the solution of the full problem. None if 20 rounds do not settle it.
#[allow(clippy::too_many_arguments)]
fn solve_qp_working_set(
    g_mul: &mut dyn FnMut(&[f64], &mut [f64]),
    g_row: &mut dyn FnMut(usize, &mut [f64]),
    up: &[f64],
    lo: &[f64],
    p: &[f64],
    at: &[f64],
    m: usize,
    n: usize,
    wpen: f64,
    a0: &[f64],
    rows: &[usize],
) -> Option<(Vec<f64>, f64)> {
    let mut gx = vec![0.0; m];
    let d0: Vec<f64> = a0.iter().zip(at).map(|(a, t)| a - t).collect();
    g_mul(&d0, &mut gx);
    let mut set: Vec<usize> = (0..m).filter(|&r| gx[r] > up[r] || -gx[r] > lo[r]).collect();
    for &j in rows {
        let r = if j < m { j } else { j - m };
        if !set.contains(&r) {
            set.push(r);
        }
    }
    let mut row = vec![0.0; n];
    for _round in 0..20 {
        let (mut gs, mut us, mut ls) = (Vec::new(), Vec::new(), Vec::new());
        for &r in &set {
            g_row(r, &mut row);
            gs.extend_from_slice(&row);
            us.push(up[r]);
            ls.push(lo[r]);
        }
        let (sol, sigma) = solve_qp(&gs, &us, &ls, p, at, set.len(), n, wpen);
        if !sigma.is_finite() {
            return None;
        }
        let d: Vec<f64> = sol.iter().zip(at).map(|(a, t)| a - t).collect();
        g_mul(&d, &mut gx);
        let before = set.len();
        for r in 0..m {
            if (gx[r] > up[r] + 1e-9 || -gx[r] > lo[r] + 1e-9) && !set.contains(&r) {
                set.push(r);
            }
        }
        if set.len() == before {
            return Some((sol, sigma));
        }
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The active-set solver lands on Clarabel's optimum whenever it returns.
    #[test]
    fn active_set_equals_the_interior_point_solution() {
        let mut rng = Lcg(42);
        let (mut solved, mut feasible) = (0, 0);
        for _ in 0..300 {
            let n = 2 + (rng.next() * 10.0) as usize;
            let m = 3 + (rng.next() * 30.0) as usize;
            // Positive, strongly correlated rows, like a feeder's sensitivities.
            let base: Vec<f64> = (0..n).map(|_| 0.01 + 0.05 * rng.next()).collect();
            let g: Vec<f64> = (0..m * n).map(|i| base[i % n] * (0.2 + rng.next())).collect();
            let up: Vec<f64> = (0..m).map(|_| 0.06 * rng.next() - 0.015).collect();
            let lo: Vec<f64> = (0..m).map(|_| 0.06 * rng.next()).collect();
            let p: Vec<f64> = (0..n).map(|_| 2.4 * rng.next() - 1.2).collect();
            let at: Vec<f64> = (0..n).map(|_| 2.0 * rng.next() - 1.0).collect();
            let (reference, sigma) = solve_qp(&g, &up, &lo, &p, &at, m, n, 1e3);
            feasible += (sigma < 1e-6) as usize;
            let mut w = ActiveSetWork::default();
            // Cold, and warm-started from a random (possibly wrong) guess of the binding rows.
            let guess: Vec<usize> = (0..(rng.next() * 3.0) as usize).map(|_| (rng.next() * (2 * m) as f64) as usize).collect();
            for (pass, warm) in [&[][..], &guess[..]].into_iter().enumerate() {
            let mut g_mul = |x: &[f64], o: &mut [f64]| {
                for r in 0..m {
                    o[r] = (0..n).map(|c| g[r * n + c] * x[c]).sum();
                }
            };
            let mut g_row = |r: usize, o: &mut [f64]| o.copy_from_slice(&g[r * n..(r + 1) * n]);
            if active_set_qp(&mut g_mul, &mut g_row, &up, &lo, &p, &at, m, n, 1e3, warm, &mut w) {
                let a = &w.a;
                // Within the box; feasible up to the reported slack, checked directly.
                assert!(a.iter().all(|x| x.abs() <= 1.0 + 1e-12));
                for r in 0..m {
                    let v: f64 = (0..n).map(|c| g[r * n + c] * (a[c] - at[c])).sum();
                    assert!(v <= up[r] + w.sigma + 1e-8 && -v <= lo[r] + w.sigma + 1e-8, "row {r}: {v} not in [-{}, {}] + {}", lo[r], up[r], w.sigma);
                }
                assert!((w.sigma - sigma).abs() < 1e-5, "slack {} vs Clarabel {sigma}", w.sigma);
                let d = a.iter().zip(&reference).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
                assert!(d < 1e-5, "active set vs Clarabel: {d}");
                solved += (pass == 0) as usize;
            }
            }
            // The working-set interior point (the fallback) equals the full one.
            let mut g_mul = |x: &[f64], o: &mut [f64]| {
                for r in 0..m {
                    o[r] = (0..n).map(|c| g[r * n + c] * x[c]).sum();
                }
            };
            let mut g_row = |r: usize, o: &mut [f64]| o.copy_from_slice(&g[r * n..(r + 1) * n]);
            let (ws_sol, ws_sigma) = solve_qp_working_set(&mut g_mul, &mut g_row, &up, &lo, &p, &at, m, n, 1e3, &p, &[]).expect("settles");
            let d = ws_sol.iter().zip(&reference).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
            assert!(d < 1e-5 && (ws_sigma - sigma).abs() < 1e-5, "working set vs full: {d}, slack {ws_sigma} vs {sigma}");
        }
        eprintln!("active set solved {solved} of 300 instances cold ({feasible} feasible without slack)");
        assert!(feasible > 50 && feasible < 250, "the instances should mix feasible and infeasible ones ({feasible})");
        assert!(solved * 10 >= 300 * 8, "the fast path should handle most instances, with or without slack ({solved}/300)");
    }
}
