//! The interior-point fallback (Clarabel) of the safety layer's QP: on a working set of rows, and
//! on all rows.

use super::qp::SlackQp;
use clarabel::algebra::CscMatrix;
use clarabel::solver::{DefaultSettingsBuilder, DefaultSolver, IPSolver, SolverStatus, SupportedConeT};

/// Rounds of [`solve_qp_working_set`] (each adds the rows its solution violates).
const WORKING_SET_ROUNDS: usize = 20;
/// A row left out of the working set counts as violated above this (pu).
const VIOLATION_TOL_PU: f64 = 1e-9;
/// Iteration limit of Clarabel.
const CLARABEL_MAX_ITER: u32 = 200;

/// The interior-point solver (allocates) on a working set of rows — `rows` (indices j < 2m as in
/// [`active_set_qp`](super::qp::active_set_qp)) plus those violated at `a0` —, growing by the rows
/// its solution violates until none is: the rows left out then have zero slack and zero
/// multiplier, so this is the solution of the full problem. G as in
/// [`active_set_qp`](super::qp::active_set_qp): `g_mul` all rows of G·x, `g_row` one row.
/// Returns (a, max σ) as [`solve_qp`]; None if [`WORKING_SET_ROUNDS`] rounds do not settle it or
/// Clarabel fails.
pub(super) fn solve_qp_working_set(
    g_mul: &mut dyn FnMut(&[f64], &mut [f64]),
    g_row: &mut dyn FnMut(usize, &mut [f64]),
    qp: &SlackQp,
    a0: &[f64],
    rows: &[usize],
) -> Option<(Vec<f64>, f64)> {
    let SlackQp { up, lo, p, at, m, n, wpen } = *qp;
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
    for _round in 0..WORKING_SET_ROUNDS {
        let (mut gs, mut us, mut ls) = (Vec::new(), Vec::new(), Vec::new());
        for &r in &set {
            g_row(r, &mut row);
            gs.extend_from_slice(&row);
            us.push(up[r]);
            ls.push(lo[r]);
        }
        let (sol, sigma) = solve_qp(&gs, &SlackQp { up: &us, lo: &ls, p, at, m: set.len(), n, wpen });
        if !sigma.is_finite() {
            return None;
        }
        let d: Vec<f64> = sol.iter().zip(at).map(|(a, t)| a - t).collect();
        g_mul(&d, &mut gx);
        let before = set.len();
        for r in 0..m {
            if (gx[r] > up[r] + VIOLATION_TOL_PU || -gx[r] > lo[r] + VIOLATION_TOL_PU) && !set.contains(&r) {
                set.push(r);
            }
        }
        if set.len() == before {
            return Some((sol, sigma));
        }
    }
    None
}

/// The full QP by Clarabel (allocates), with G dense (m × n, row-major, pu per unit action):
/// min ½‖a − p‖² + w·1ᵀ(σ⁺+σ⁻) s.t. G(a − a_t) − σ⁺ ≤ up, −G(a − a_t) − σ⁻ ≤ lo, |a| ≤ 1, σ ≥ 0
/// ([`SlackQp`]). Returns (a, max σ in pu); on a numerical failure of the solver, the proposal
/// clipped to the box and σ = ∞.
pub(super) fn solve_qp(g: &[f64], qp: &SlackQp) -> (Vec<f64>, f64) {
    let SlackQp { up, lo, p, at, m, n, wpen: w } = *qp;
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
    let settings = DefaultSettingsBuilder::default().verbose(false).max_iter(CLARABEL_MAX_ITER).build().expect("valid settings");
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
    use crate::safety::qp::tests::{Instance, Lcg};

    /// The working-set interior point (the fallback) equals the full one, on the instances of
    /// the active-set test.
    #[test]
    fn working_set_equals_the_full_qp() {
        let mut rng = Lcg(42);
        for _ in 0..300 {
            let inst = Instance::random(&mut rng);
            let _ = inst.guess(&mut rng); // the same instances as the active-set test
            let qp = inst.qp(1e3);
            let (reference, sigma) = solve_qp(&inst.g, &qp);
            let mut g_mul = |x: &[f64], o: &mut [f64]| inst.mul(x, o);
            let mut g_row = |r: usize, o: &mut [f64]| inst.row(r, o);
            let (ws_sol, ws_sigma) = solve_qp_working_set(&mut g_mul, &mut g_row, &qp, &inst.p, &[]).expect("settles");
            let d = ws_sol.iter().zip(&reference).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
            assert!(d < 1e-5 && (ws_sigma - sigma).abs() < 1e-5, "working set vs full: {d}, slack {ws_sigma} vs {sigma}");
        }
    }
}
