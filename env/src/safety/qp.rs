//! The dual active-set solver of the safety layer's QP ([`active_set_qp`]), its settings
//! ([`QpSettings`]) and why it can give up ([`QpError`]; the layer then calls the interior-point
//! fallback).

/// The ℓ1-slack box QP of one safety-layer group (n agents, m candidate buses).
///
/// Units: an action a_k ∈ [−1, 1] is a fraction of agent k's reactive range; G (pu per unit
/// action) is never stored here, the solvers get it as `g_mul` / `g_row` (or dense, in the
/// fallback); the slack σ is in pu and `wpen` in action² per pu, so the objective is in action².
#[derive(Debug, Clone, Copy)]
pub(super) struct SlackQp<'a> {
    /// Allowed voltage rise of each row, γ(v̄ − δ − v_t) (pu, m).
    pub(super) up: &'a [f64],
    /// Allowed voltage drop of each row, γ(v_t − v̲ − δ) (pu, m).
    pub(super) lo: &'a [f64],
    /// The proposed action p (n).
    pub(super) p: &'a [f64],
    /// The action in force a_t (n), the anchor of the predictor v̂(a) = v_t + G(a − a_t).
    pub(super) at: &'a [f64],
    /// Number of rows (candidate buses).
    pub(super) m: usize,
    /// Number of variables (agents).
    pub(super) n: usize,
    /// ℓ1 penalty w on the slack (action² per pu).
    pub(super) wpen: f64,
}

/// Tolerances and budgets of the safety layer's dual active-set solver (`active_set_qp` in
/// `env/src/safety/qp.rs` states the problem and the method; W is its working set of rows, F the
/// actions inside the box, μ the multipliers in [0, w]). The defaults are the values the
/// layer uses (and was benchmarked and tested with, `docs/SAFETY.md`); they are not part of
/// [`SafetyConfig`](super::SafetyConfig), whose values are published with results.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QpSettings {
    /// Optimality tolerance on the dual gradient ∇D = C a − c of the working rows (pu): a
    /// sub-problem is solved when every multiplier strictly inside (0, w) has |∇D_j| ≤ this, and
    /// those at 0 (at w) have ∇D_j ≤ this (≥ −this). 1e-9 pu is far below any voltage that
    /// matters, and above the roundoff of the ridge-regularised Newton steps.
    pub kkt_tol: f64,
    /// When the line search finds no ascent, the sub-problem is still accepted if it meets the
    /// optimality conditions with the tolerance `stall_tol_factor · kkt_tol` (the roundoff of the
    /// ridge); otherwise the solve fails with [`QpError::Stalled`].
    pub stall_tol_factor: f64,
    /// A row outside the working set joins it when violated by more than this (pu).
    pub join_tol: f64,
    /// Working-set rounds (one sub-problem, then one row joins): at most
    /// `rounds_per_variable · n + rounds_base`, else [`QpError::RoundLimit`].
    pub rounds_per_variable: usize,
    /// See `rounds_per_variable`.
    pub rounds_base: usize,
    /// Projected-Newton iterations per sub-problem, else [`QpError::NewtonLimit`].
    pub max_newton_iters: usize,
    /// Floor on the diagonal curvature ‖C_{j,F}‖² ((pu per unit action)²) that scales the
    /// gradient steps of the multipliers at a bound and the projected-gradient measure.
    pub curvature_floor: f64,
    /// Cap of the ε-active threshold relative to w: ε = min(‖scaled projected gradient‖_∞,
    /// `eps_active_rel · w`) (action² per pu, like μ).
    pub eps_active_rel: f64,
    /// Ridge added to the diagonal of the Newton matrix: `ridge_rel · max_j H_jj + ridge_abs`.
    pub ridge_rel: f64,
    /// See `ridge_rel` ((pu per unit action)²).
    pub ridge_abs: f64,
    /// Armijo constant of the sufficient-ascent test D(μ(α)) ≥ D(μ) + `armijo` · ∇Dᵀ(μ(α) − μ).
    pub armijo: f64,
    /// Factor by which the step α (from 1) shrinks at each failed Armijo test.
    pub backtrack: f64,
    /// Armijo tests per line search; if none passes, the iterate stays and the sub-problem ends
    /// (accepted or [`QpError::Stalled`], see `stall_tol_factor`).
    pub max_backtracks: usize,
}

impl Default for QpSettings {
    fn default() -> Self {
        QpSettings {
            kkt_tol: 1e-9,
            stall_tol_factor: 1e3,
            join_tol: 1e-9,
            rounds_per_variable: 2,
            rounds_base: 60,
            max_newton_iters: 100,
            curvature_floor: 1e-12,
            eps_active_rel: 1e-3,
            ridge_rel: 1e-10,
            ridge_abs: 1e-300,
            armijo: 1e-4,
            backtrack: 0.5,
            max_backtracks: 40,
        }
    }
}

/// Why the dual active-set solver gave up (its budget ran out or a step broke down); the problem
/// itself is always feasible, so the layer retries cold or calls the interior-point fallback
/// (counted in [`SafetyLayer::fallbacks`](super::SafetyLayer::fallbacks)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QpError {
    /// Rows kept joining the working set for more rounds than [`QpSettings::rounds_base`] +
    /// [`QpSettings::rounds_per_variable`] · n.
    #[error("dual active set: no solution after the round limit")]
    RoundLimit,
    /// A sub-problem did not meet [`QpSettings::kkt_tol`] in [`QpSettings::max_newton_iters`]
    /// projected-Newton iterations.
    #[error("dual active set: a sub-problem did not converge in the Newton iteration limit")]
    NewtonLimit,
    /// The reduced Newton matrix (with its ridge) was not numerically positive definite.
    #[error("dual active set: the Newton matrix is not positive definite")]
    NotPositiveDefinite,
    /// The line search found no ascent away from an optimum (see
    /// [`QpSettings::stall_tol_factor`]).
    #[error("dual active set: no ascent left away from the optimum")]
    Stalled,
}

/// Buffers of [`active_set_qp`]; its solution is left in `a`, the working rows in `active`, the
/// largest slack in `sigma`.
#[derive(Default)]
pub(super) struct ActiveSetWork {
    pub(super) a: Vec<f64>,
    /// Working rows W (the only rows with μ > 0) and their signed coefficients (|W| × n).
    pub(super) active: Vec<usize>,
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
    pub(super) sigma: f64,
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

/// Solves the safety layer's ℓ1-slack QP ([`SlackQp`]) by a dual active-set method, without
/// forming G.
///
/// **Problem.** Actions a ∈ [−1, 1]ⁿ (fraction of each inverter's reactive range), the proposal p,
/// the action in force a_t, the sensitivities G (m × n, pu per unit action, given only as the
/// callbacks below), the allowed rise `up` and drop `lo` (pu), the penalty w (action² per pu):
///
///   min ½‖a − p‖² + w·1ᵀ(σ⁺ + σ⁻)  s.t.  G(a − a_t) ≤ up + σ⁺,  −G(a − a_t) ≤ lo + σ⁻,
///   −1 ≤ a ≤ 1,  σ± ≥ 0 (pu)
///
/// — the QP of [`solve_qp`](super::fallback::solve_qp) —, i.e. min ½‖a − p‖² + w·Σ_j [C_j a − c_j]⁺
/// over the box, with 2m rows C_j a ≤ c_j: G_r a ≤ up_r + G_r a_t (j = r < m) and
/// −G_r a ≤ lo_r − G_r a_t (j = m + r).
///
/// **Method.** In the dual: a(μ) = clip(p − Cᵀμ), and D(μ) = ½‖a(μ) − p‖² + μᵀ(C a(μ) − c) is
/// concave and differentiable with ∇D = C a(μ) − c (pu), maximised over 0 ≤ μ ≤ w (action² per
/// pu; a multiplier at w is a row that stays violated and pays the penalty, which is how steps
/// that need slack are solved). Only a small working set W of rows carries μ > 0, started from
/// the rows in `warm` (indices j < 2m; others ignored). Each round:
/// 1. D is maximised over μ_W by a projected Newton method (Bertsekas 1982): multipliers within
///    ε of a bound that the gradient pushes against take a diagonally scaled gradient step, the
///    others a Newton step with H = C_{W,F} C_{W,F}ᵀ (+ ridge) on the variables F inside the box;
///    each step is an Armijo search along the projection arc μ(α) = P_[0,w](μ + α d). It stops
///    when the optimality conditions hold to [`QpSettings::kkt_tol`].
/// 2. Rows of W back at μ = 0 leave it; the most violated row outside W (by more than
///    [`QpSettings::join_tol`]) joins (D rises strictly, so no cycling). When none is violated
///    the solution is found.
///
/// G enters only through `g_mul(x, out)`, which writes G·x for all m rows (a tree sweep in the
/// layer), and `g_row(r, out)`, which writes row r, fetched when it joins W. Allocation-free once
/// the buffers in `w` have grown to the problem's size.
///
/// On `Ok`, `w.a` holds the action (in the box), `w.active` the binding rows (j < 2m, for the next
/// warm start) and `w.sigma` the largest slack (pu; 0 when every row is met). An `Err` says which
/// budget ran out or which step broke down (the caller then retries cold or uses the
/// interior-point fallback).
pub(super) fn active_set_qp(
    g_mul: &mut dyn FnMut(&[f64], &mut [f64]),
    g_row: &mut dyn FnMut(usize, &mut [f64]),
    qp: &SlackQp,
    warm: &[usize],
    s: &QpSettings,
    w: &mut ActiveSetWork,
) -> Result<(), QpError> {
    let SlackQp { up, lo, p, at, m, n, wpen } = *qp;
    let tol = s.kkt_tol;
    let stall_tol = s.stall_tol_factor * s.kkt_tol;
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
    let mut result = Err(QpError::RoundLimit);
    'outer: for _outer in 0..(s.rounds_per_variable * n + s.rounds_base) {
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
        // Projected Newton on μ_W. `converged`: Ok once the sub-problem is solved, else why not.
        let mut d_cur = w.dual(false, p, &c_w, n);
        let mut converged = if k == 0 { Ok(()) } else { Err(QpError::NewtonLimit) };
        for _it in 0..s.max_newton_iters {
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
                if mu <= 0.0 { g <= tol } else if mu >= wpen { g >= -tol } else { g.abs() <= tol }
            });
            if kkt {
                converged = Ok(());
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
                let h = diag(x, &w.ca, &w.free).max(s.curvature_floor);
                let target = (w.mu[x] + w.grad[x] / h).clamp(0.0, wpen);
                pg = pg.max((target - w.mu[x]).abs());
            }
            let eps = pg.min(s.eps_active_rel * wpen);
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
            let ridge = s.ridge_rel * (0..k).map(|x| hess[x * k + x]).fold(0.0, f64::max) + s.ridge_abs;
            for x in 0..k {
                hess[x * k + x] += ridge;
                w.dir[x] = if bound(x, &w.mu, &w.grad) { 0.0 } else { w.grad[x] };
            }
            if !solve_spd(&mut hess, &mut w.dir, k) {
                converged = Err(QpError::NotPositiveDefinite);
                break;
            }
            for x in 0..k {
                if bound(x, &w.mu, &w.grad) {
                    w.dir[x] = w.grad[x] / diag(x, &w.ca, &w.free).max(s.curvature_floor);
                }
            }
            // Armijo search along the projection arc μ(α) = P_[0,w](μ + α d).
            let mut alpha = 1.0;
            let mut improved = false;
            for _ls in 0..s.max_backtracks {
                for x in 0..k {
                    w.mu2[x] = (w.mu[x] + alpha * w.dir[x]).clamp(0.0, wpen);
                }
                let d_new = w.dual(true, p, &c_w, n);
                let lin: f64 = (0..k).map(|x| w.grad[x] * (w.mu2[x] - w.mu[x])).sum();
                let _ = bound;
                if d_new >= d_cur + s.armijo * lin && d_new >= d_cur {
                    improved = d_new > d_cur;
                    d_cur = d_new;
                    std::mem::swap(&mut w.mu, &mut w.mu2);
                    break;
                }
                alpha *= s.backtrack;
            }
            // Keep a and Cᵀμ consistent with the accepted μ.
            d_cur = d_cur.max(w.dual(false, p, &c_w, n));
            if !improved {
                // No ascent left: accept a near-optimal point (roundoff of the ridge), else fail.
                let near = (0..k).all(|x| {
                    let (mu, g) = (w.mu[x], w.grad[x]);
                    if mu <= 0.0 { g <= stall_tol } else if mu >= wpen { g >= -stall_tol } else { g.abs() <= stall_tol }
                });
                converged = if near { Ok(()) } else { Err(QpError::Stalled) };
                break;
            }
        }
        w.hess = hess;
        w.cw = c_w;
        if let Err(e) = converged {
            result = Err(e);
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
            if e > s.join_tol && !w.active.contains(&j) && viol.is_none_or(|(_, v)| e > v) {
                viol = Some((j, e));
            }
        }
        match viol {
            Some((j, _)) => w.push_row(j, m, n, g_row),
            None => {
                w.sigma = sigma;
                result = Ok(());
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::safety::fallback::solve_qp;

    pub(in crate::safety) struct Lcg(pub(in crate::safety) u64);
    impl Lcg {
        pub(in crate::safety) fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// A random instance with dense G (m × n, row-major).
    pub(in crate::safety) struct Instance {
        pub(in crate::safety) n: usize,
        pub(in crate::safety) m: usize,
        pub(in crate::safety) g: Vec<f64>,
        pub(in crate::safety) up: Vec<f64>,
        pub(in crate::safety) lo: Vec<f64>,
        pub(in crate::safety) p: Vec<f64>,
        pub(in crate::safety) at: Vec<f64>,
    }

    impl Instance {
        /// Positive, strongly correlated rows, like a feeder's sensitivities; feasible and
        /// infeasible instances mixed.
        pub(in crate::safety) fn random(rng: &mut Lcg) -> Instance {
            let n = 2 + (rng.next() * 10.0) as usize;
            let m = 3 + (rng.next() * 30.0) as usize;
            let base: Vec<f64> = (0..n).map(|_| 0.01 + 0.05 * rng.next()).collect();
            let g: Vec<f64> = (0..m * n).map(|i| base[i % n] * (0.2 + rng.next())).collect();
            let up: Vec<f64> = (0..m).map(|_| 0.06 * rng.next() - 0.015).collect();
            let lo: Vec<f64> = (0..m).map(|_| 0.06 * rng.next()).collect();
            let p: Vec<f64> = (0..n).map(|_| 2.4 * rng.next() - 1.2).collect();
            let at: Vec<f64> = (0..n).map(|_| 2.0 * rng.next() - 1.0).collect();
            Instance { n, m, g, up, lo, p, at }
        }

        /// A random (possibly wrong) guess of the binding rows, for a warm start.
        pub(in crate::safety) fn guess(&self, rng: &mut Lcg) -> Vec<usize> {
            (0..(rng.next() * 3.0) as usize).map(|_| (rng.next() * (2 * self.m) as f64) as usize).collect()
        }

        pub(in crate::safety) fn qp(&self, wpen: f64) -> SlackQp<'_> {
            SlackQp { up: &self.up, lo: &self.lo, p: &self.p, at: &self.at, m: self.m, n: self.n, wpen }
        }

        pub(in crate::safety) fn mul(&self, x: &[f64], o: &mut [f64]) {
            let (m, n, g) = (self.m, self.n, &self.g);
            for r in 0..m {
                o[r] = (0..n).map(|c| g[r * n + c] * x[c]).sum();
            }
        }

        pub(in crate::safety) fn row(&self, r: usize, o: &mut [f64]) {
            o.copy_from_slice(&self.g[r * self.n..(r + 1) * self.n]);
        }
    }

    /// The active-set solver lands on Clarabel's optimum whenever it returns.
    #[test]
    fn active_set_equals_the_interior_point_solution() {
        let mut rng = Lcg(42);
        let (mut solved, mut feasible) = (0, 0);
        let settings = QpSettings::default();
        for _ in 0..300 {
            let inst = Instance::random(&mut rng);
            let (m, n, g, up, lo, at) = (inst.m, inst.n, &inst.g, &inst.up, &inst.lo, &inst.at);
            let (reference, sigma) = solve_qp(g, &inst.qp(1e3));
            feasible += (sigma < 1e-6) as usize;
            let mut w = ActiveSetWork::default();
            // Cold, and warm-started from a random (possibly wrong) guess of the binding rows.
            let guess = inst.guess(&mut rng);
            for (pass, warm) in [&[][..], &guess[..]].into_iter().enumerate() {
                let mut g_mul = |x: &[f64], o: &mut [f64]| inst.mul(x, o);
                let mut g_row = |r: usize, o: &mut [f64]| inst.row(r, o);
                if active_set_qp(&mut g_mul, &mut g_row, &inst.qp(1e3), warm, &settings, &mut w).is_ok() {
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
        }
        eprintln!("active set solved {solved} of 300 instances cold ({feasible} feasible without slack)");
        assert!(feasible > 50 && feasible < 250, "the instances should mix feasible and infeasible ones ({feasible})");
        assert!(solved * 10 >= 300 * 8, "the fast path should handle most instances, with or without slack ({solved}/300)");
    }

    /// The budgets in the settings are the ones the solver runs under, and running out of one is
    /// reported as such.
    #[test]
    fn budgets_come_from_the_settings_and_fail_with_their_error() {
        let mut rng = Lcg(42);
        let mut w = ActiveSetWork::default();
        let default = QpSettings::default();
        let (mut tried, mut i) = (0, 0);
        while tried < 20 {
            i += 1;
            assert!(i < 1000, "too few instances with binding rows");
            let inst = Instance::random(&mut rng);
            let mut g_mul = |x: &[f64], o: &mut [f64]| inst.mul(x, o);
            let mut g_row = |r: usize, o: &mut [f64]| inst.row(r, o);
            let qp = inst.qp(1e3);
            if active_set_qp(&mut g_mul, &mut g_row, &qp, &[], &default, &mut w).is_err() || w.active.is_empty() {
                continue;
            }
            tried += 1;
            // A row has to join, so no round at all, or no Newton iteration on a sub-problem with
            // a row, cannot solve it.
            let no_rounds = QpSettings { rounds_base: 0, rounds_per_variable: 0, ..default };
            assert_eq!(active_set_qp(&mut g_mul, &mut g_row, &qp, &[], &no_rounds, &mut w), Err(QpError::RoundLimit));
            let no_newton = QpSettings { max_newton_iters: 0, ..default };
            assert_eq!(active_set_qp(&mut g_mul, &mut g_row, &qp, &[], &no_newton, &mut w), Err(QpError::NewtonLimit));
            // Cold, the first round (no rows) only brings in the first violated row.
            let one_round = QpSettings { rounds_base: 1, rounds_per_variable: 0, ..default };
            assert_eq!(active_set_qp(&mut g_mul, &mut g_row, &qp, &[], &one_round, &mut w), Err(QpError::RoundLimit));
        }
    }
}
