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
            // Per-agent factors gathered once, so each bus row is three contiguous dot products.
            let rho_g: Vec<f64> = agents.iter().map(|&k| rho[k]).collect();
            let da: Vec<f64> = agents.iter().map(|&k| out[k] - a_t[k]).collect();
            let rp: Vec<f64> = agents.iter().map(|&k| 1.0 - a_t[k]).collect();
            let rm: Vec<f64> = agents.iter().map(|&k| 1.0 + a_t[k]).collect();
            let mut row = vec![0.0; n];
            let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
            for &i in buses {
                let srow = &self.sens[i * na..(i + 1) * na];
                for (c, &k) in agents.iter().enumerate() {
                    row[c] = srow[k] * rho_g[c];
                }
                let (dv, rise, drop) = (dot(&row, &da), dot(&row, &rp), dot(&row, &rm));
                let (u, l) = (gamma * (vmax - d - v[i]), gamma * (v[i] - vmin - d));
                if dv > u + 1e-7 || -dv > l + 1e-7 {
                    safe = false;
                }
                if rise > u || drop > l {
                    g.extend_from_slice(&row);
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
            // Fast path: an active-set solve of the hard problem (exact when it converges to a
            // KKT point, checked); Clarabel with voltage slack otherwise (infeasible or degenerate).
            let (sol, sigma) = match active_set_qp(&g, &up, &lo, &prop, &at, m, n) {
                Some(a) => (a, 0.0),
                None => solve_qp(&g, &up, &lo, &prop, &at, m, n, self.cfg.slack_weight),
            };
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

/// min ½‖a − p‖² s.t. C a ≤ c (rows: G_r a ≤ up_r + G_r a_t and −G_r a ≤ lo_r − G_r a_t), |a| ≤ 1,
/// by a primal–dual active-set iteration on the few binding voltage rows (the box handled by
/// fixing variables at their bounds). Returns `None` when it does not reach a verified KKT point
/// within its iteration budget (infeasible or degenerate instances go to the interior-point solver).
#[allow(clippy::too_many_arguments)]
fn active_set_qp(g: &[f64], up: &[f64], lo: &[f64], p: &[f64], at: &[f64], m: usize, n: usize) -> Option<Vec<f64>> {
    const TOL: f64 = 1e-9;
    // Row j < m: +G_j, rhs up_j + G_j a_t; row m + j: −G_j, rhs lo_j − G_j a_t.
    let ga: Vec<f64> = (0..m).map(|r| (0..n).map(|c| g[r * n + c] * at[c]).sum()).collect();
    let coef = |j: usize, c: usize| if j < m { g[j * n + c] } else { -g[(j - m) * n + c] };
    let rhs = |j: usize| if j < m { up[j] + ga[j] } else { lo[j - m] - ga[j - m] };
    let mut active: Vec<usize> = Vec::new();
    let mut a: Vec<f64> = p.iter().map(|x| x.clamp(-1.0, 1.0)).collect();
    let mut mu: Vec<f64> = Vec::new();
    for _outer in 0..60 {
        // Solve the equality problem on the active rows with the box by fixing clipped variables.
        let mut fixed = vec![false; n];
        let mut ok = false;
        for _inner in 0..=n {
            let k = active.len();
            let free: Vec<usize> = (0..n).filter(|&c| !fixed[c]).collect();
            // M = C_A,free C_A,freeᵀ, r = C_A,free p_free + C_A,fixed a_fixed − c_A.
            let mut mm = vec![0.0; k * k];
            let mut r = vec![0.0; k];
            for (x, &jx) in active.iter().enumerate() {
                for (y, &jy) in active.iter().enumerate().skip(x) {
                    let v: f64 = free.iter().map(|&c| coef(jx, c) * coef(jy, c)).sum();
                    mm[x * k + y] = v;
                    mm[y * k + x] = v;
                }
                r[x] = (0..n).map(|c| coef(jx, c) * if fixed[c] { a[c] } else { p[c] }).sum::<f64>() - rhs(jx);
            }
            mu = solve_spd(&mut mm, &mut r, k)?;
            for &c in &free {
                a[c] = p[c] - active.iter().zip(&mu).map(|(&j, m)| coef(j, c) * m).sum::<f64>();
            }
            // Clip the worst out-of-box free variable and repeat.
            let worst = free.iter().copied().filter(|&c| a[c].abs() > 1.0 + TOL).max_by(|&x, &y| a[x].abs().total_cmp(&a[y].abs()));
            match worst {
                Some(c) => {
                    a[c] = a[c].clamp(-1.0, 1.0);
                    fixed[c] = true;
                }
                None => {
                    ok = true;
                    break;
                }
            }
        }
        if !ok {
            return None;
        }
        // Drop the most negative multiplier.
        if let Some((x, _)) = mu.iter().enumerate().filter(|(_, m)| **m < -TOL).min_by(|a, b| a.1.total_cmp(b.1)) {
            active.remove(x);
            continue;
        }
        // Add the most violated row (G a once for both signs).
        let mut viol: Option<(usize, f64)> = None;
        for r in 0..m {
            let gr = &g[r * n..(r + 1) * n];
            let v: f64 = gr.iter().zip(&a).map(|(x, y)| x * y).sum();
            for (j, excess) in [(r, v - rhs(r)), (m + r, -v - rhs(m + r))] {
                if excess > 1e-9 && viol.is_none_or(|(_, e)| excess > e) && !active.contains(&j) {
                    viol = Some((j, excess));
                }
            }
        }
        match viol {
            Some((j, _)) => active.push(j),
            None => {
                // KKT check of the box: a fixed variable must want to leave the box outwards.
                for c in 0..n {
                    let grad = a[c] - p[c] + active.iter().zip(&mu).map(|(&j, m)| coef(j, c) * m).sum::<f64>();
                    if (a[c] >= 1.0 - TOL && grad > 1e-7) || (a[c] <= -1.0 + TOL && grad < -1e-7) {
                        return None;
                    }
                    if a[c].abs() < 1.0 - TOL && grad.abs() > 1e-7 {
                        return None;
                    }
                }
                return Some(a);
            }
        }
    }
    None
}

/// Solves the small symmetric positive definite system M x = r (Cholesky, in place); None if not SPD.
fn solve_spd(mm: &mut [f64], r: &mut [f64], k: usize) -> Option<Vec<f64>> {
    for j in 0..k {
        let mut d = mm[j * k + j];
        for l in 0..j {
            d -= mm[j * k + l] * mm[j * k + l];
        }
        if !(d > 1e-14) {
            return None;
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
    let mut y = r.to_vec();
    for i in 0..k {
        for l in 0..i {
            y[i] -= mm[i * k + l] * y[l];
        }
        y[i] /= mm[i * k + i];
    }
    for i in (0..k).rev() {
        for l in i + 1..k {
            y[i] -= mm[l * k + i] * y[l];
        }
        y[i] /= mm[i * k + i];
    }
    Some(y)
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
            if let Some(a) = active_set_qp(&g, &up, &lo, &p, &at, m, n) {
                assert!(sigma < 1e-6, "active set claimed a solution of an infeasible instance");
                let d = a.iter().zip(&reference).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
                assert!(d < 1e-5, "active set vs Clarabel: {d}");
                solved += 1;
            }
        }
        eprintln!("active set solved {solved} of {feasible} feasible instances");
        assert!(solved * 10 >= feasible * 8, "the fast path should handle most feasible instances ({solved}/{feasible})");
    }
}
