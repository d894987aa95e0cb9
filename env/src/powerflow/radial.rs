//! Newton–Raphson for radial feeders, with the Newton step solved over the tree.
//!
//! On a radial network the polar Jacobian, written in 2×2 blocks per bus (rows ΔP_i, ΔQ_i;
//! columns Δθ_k, ΔV_k/V_k), has nonzero blocks only on the diagonal and between a bus and its
//! parent. Eliminating buses leaves-first (a backward sweep) creates no fill-in: each bus folds
//! its Schur complement into its parent's diagonal block. A forward sweep from the slack then
//! recovers the step. One iteration costs O(n) small 2×2 operations; convergence is Newton's
//! (3–4 iterations on the shipped cases, like pandapower), and the π model with line charging,
//! off-nominal taps and phase-shifting transformers is handled exactly, since the blocks come
//! from the full bus-admittance entries.

use super::{Injection, NrCore, PowerFlowError, Solution, SolveInfo};
use crate::network::Tree;
use crate::C64;

#[derive(Debug, Clone)]
pub(super) struct RadialNewton {
    core: NrCore,
    /// BFS order without the root.
    order: Vec<usize>,
    parent: Vec<usize>,
    /// Y_bus[child, parent] and Y_bus[parent, child] of each bus's parent edge.
    y_cp: Vec<C64>,
    y_pc: Vec<C64>,
    // work: per-bus 2×2 blocks (row-major) and right-hand sides
    d: Vec<[f64; 4]>,
    u: Vec<[f64; 4]>,
    l: Vec<[f64; 4]>,
    rhs: Vec<[f64; 2]>,
}

#[inline(always)]
fn mul(a: &[f64; 4], b: &[f64; 4]) -> [f64; 4] {
    [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
    ]
}

#[inline(always)]
fn mulv(a: &[f64; 4], x: &[f64; 2]) -> [f64; 2] {
    [a[0] * x[0] + a[1] * x[1], a[2] * x[0] + a[3] * x[1]]
}

impl RadialNewton {
    pub(super) fn new(core: NrCore, tree: Tree) -> RadialNewton {
        let n = core.n;
        let mut y_cp = vec![C64::default(); n];
        let mut y_pc = vec![C64::default(); n];
        for &c in &tree.order[1..] {
            let e = &core.edges[tree.parent_edge[c]];
            if tree.parent_is_from[c] {
                y_cp[c] = e.y_tf;
                y_pc[c] = e.y_ft;
            } else {
                y_cp[c] = e.y_ft;
                y_pc[c] = e.y_tf;
            }
        }
        RadialNewton {
            order: tree.order[1..].to_vec(),
            parent: tree.parent,
            y_cp,
            y_pc,
            d: vec![[0.0; 4]; n],
            u: vec![[0.0; 4]; n],
            l: vec![[0.0; 4]; n],
            rhs: vec![[0.0; 2]; n],
            core,
        }
    }

    pub(super) fn solve(&mut self, inj: &Injection, sol: &mut Solution) -> Result<SolveInfo, PowerFlowError> {
        self.core.check(inj)?;
        self.core.start(sol);
        let slack = self.core.slack;
        let mut it = 0u32;
        loop {
            let worst = self.core.mismatch(sol, inj);
            if worst <= self.core.tol_pu {
                return Ok(self.core.info(it, worst));
            }
            if it >= self.core.max_iter || !worst.is_finite() || worst > 1e10 {
                return Err(PowerFlowError::Diverged { iterations: it, max_mismatch_pu: worst });
            }
            // Jacobian blocks.
            let core = &self.core;
            for &c in &self.order {
                let p = self.parent[c];
                self.d[c] = core.diag_block_of(c);
                self.u[c] = NrCore::off_block(core.v[c] * (self.y_cp[c] * core.v[p]).conj());
                self.l[c] = NrCore::off_block(core.v[p] * (self.y_pc[c] * core.v[c]).conj());
                let m = core.mis[c];
                self.rhs[c] = [m.re, m.im];
            }
            // Backward sweep: eliminate leaves first. d[c] is replaced by its inverse.
            for &c in self.order.iter().rev() {
                let d = self.d[c];
                let det = d[0] * d[3] - d[1] * d[2];
                if !(det.abs() > 1e-300) || !det.is_finite() {
                    return Err(PowerFlowError::Singular(format!("Jacobian block of bus index {c}")));
                }
                let inv = [d[3] / det, -d[1] / det, -d[2] / det, d[0] / det];
                self.d[c] = inv;
                let p = self.parent[c];
                if p != slack {
                    let m = mul(&self.l[c], &inv);
                    let mu = mul(&m, &self.u[c]);
                    let mr = mulv(&m, &self.rhs[c]);
                    let dp = &mut self.d[p];
                    for k in 0..4 {
                        dp[k] -= mu[k];
                    }
                    self.rhs[p][0] -= mr[0];
                    self.rhs[p][1] -= mr[1];
                }
            }
            // Forward sweep: x_c = D_c⁻¹ (rhs_c − U_c x_parent), x_slack = 0. rhs holds x.
            for &c in &self.order {
                let p = self.parent[c];
                let mut r = self.rhs[c];
                if p != slack {
                    let ux = mulv(&self.u[c], &self.rhs[p]);
                    r[0] -= ux[0];
                    r[1] -= ux[1];
                }
                let x = mulv(&self.d[c], &r);
                self.rhs[c] = x;
                sol.va_rad[c] -= x[0];
                sol.vm_pu[c] -= sol.vm_pu[c] * x[1];
            }
            it += 1;
        }
    }
}
