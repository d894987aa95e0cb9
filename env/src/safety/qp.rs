//! The dual active-set solver of the safety layer's ℓ1-slack box QP (see [`active_set_qp`]).

/// Buffers of [`active_set_qp`]; its solution is left in `a`, the working rows in `active`.
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

/// min ½‖a − p‖² + w·Σ_j [C_j a − c_j]⁺ over |a| ≤ 1 — the ℓ1-slack QP of [`solve_qp`](super::fallback::solve_qp) — with rows
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
pub(super) fn active_set_qp(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::fallback::{solve_qp, solve_qp_working_set};

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
