//! Newton–Raphson for radial feeders, with the Newton step solved over the tree.
//!
//! On a radial network the polar Jacobian, written in 2×2 blocks per bus (rows ΔP_i, ΔQ_i;
//! columns Δθ_k, ΔV_k/V_k), has nonzero blocks only on the diagonal and between a bus and its
//! parent. Eliminating buses leaves-first (a backward sweep) creates no fill-in: each bus folds
//! its Schur complement into its parent's diagonal block. A forward sweep from the slack then
//! recovers the step. One iteration costs O(n) small 2×2 operations; convergence is Newton's
//! (2–3 iterations on the shipped cases, pandapower takes 3–4), and the π model with line
//! charging, off-nominal taps and phase-shifting transformers is handled exactly, since the
//! blocks come from the full bus-admittance entries.
//!
//! Layout: every per-bus array is stored in breadth-first order from the slack (position 0), so
//! the sweeps stream through memory: per iteration, a backward pass for currents and mismatches,
//! a pass forming the Jacobian blocks, a backward elimination pass and a forward substitution pass.
//!
//! A cold start begins at the LinDistFlow solution (squared form, with its linearised angles and
//! the transformer shifts), computed in two sweeps without trigonometry: it lies within about
//! 1e-3 pu of the AC solution, which saves one or two Newton iterations over a flat start.

use super::{rotation, Injection, NrCore, PowerFlowError, Solution, SolveInfo};
use crate::network::Tree;
use crate::C64;

#[derive(Debug, Clone)]
pub(super) struct RadialNewton {
    /// Network data and options shared with the sparse solver (bus order).
    core: NrCore,
    /// Bus index of each breadth-first position (position 0 = slack).
    bus: Vec<usize>,
    /// Parent position of each position (0 for the slack's children and for the slack itself).
    par: Vec<usize>,
    /// Y_kk, Y[k, parent], Y[parent, k], bus shunt (pu), by position.
    y_self: Vec<C64>,
    y_cp: Vec<C64>,
    y_pc: Vec<C64>,
    shunt: Vec<C64>,
    /// Series r, x of each position's parent edge (pu), the phase shift along it (rad,
    /// θ_child ≈ θ_parent − shift) and e^{−j·shift}: for the LinDistFlow start.
    r: Vec<f64>,
    x: Vec<f64>,
    shift: Vec<f64>,
    shift_rot: Vec<C64>,
    // State and work, by position.
    v: Vec<C64>,
    vm: Vec<f64>,
    va: Vec<f64>,
    /// Specified injection p + jq (pu).
    spec: Vec<C64>,
    /// Children's current contributions, accumulated during the backward pass.
    cur: Vec<C64>,
    /// Complex power injections S = V conj(I) (pu).
    s: Vec<C64>,
    /// Jacobian blocks: diagonal (becomes D⁻¹ after elimination), J[k, parent], J[parent, k].
    d: Vec<[f64; 4]>,
    u: Vec<[f64; 4]>,
    l: Vec<[f64; 4]>,
    /// Right-hand side after elimination; holds the step after the forward pass (0 at the slack).
    rhs: Vec<[f64; 2]>,
    flow_p: Vec<f64>,
    flow_q: Vec<f64>,
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
        let bus = tree.order.clone();
        let mut pos = vec![0usize; n];
        for (k, &b) in bus.iter().enumerate() {
            pos[b] = k;
        }
        let mut par = vec![0usize; n];
        let mut y_cp = vec![C64::default(); n];
        let mut y_pc = vec![C64::default(); n];
        let mut r = vec![0.0; n];
        let mut x = vec![0.0; n];
        let mut shift = vec![0.0; n];
        let mut shift_rot = vec![C64::new(1.0, 0.0); n];
        for k in 1..n {
            let c = bus[k];
            par[k] = pos[tree.parent[c]];
            let e = &core.edges[tree.parent_edge[c]];
            let s = e.shift_deg.to_radians();
            if tree.parent_is_from[c] {
                y_cp[k] = e.y_tf;
                y_pc[k] = e.y_ft;
                shift[k] = s;
            } else {
                y_cp[k] = e.y_ft;
                y_pc[k] = e.y_tf;
                shift[k] = -s;
            }
            shift_rot[k] = C64::from_polar(1.0, -shift[k]);
            let z = e.series_impedance();
            r[k] = z.re;
            x[k] = z.im;
        }
        RadialNewton {
            y_self: bus.iter().map(|&b| core.diag[b]).collect(),
            shunt: bus.iter().map(|&b| core.bus_shunt[b]).collect(),
            bus,
            par,
            y_cp,
            y_pc,
            r,
            x,
            shift,
            shift_rot,
            v: vec![C64::default(); n],
            vm: vec![0.0; n],
            va: vec![0.0; n],
            spec: vec![C64::default(); n],
            cur: vec![C64::default(); n],
            s: vec![C64::default(); n],
            d: vec![[0.0; 4]; n],
            u: vec![[0.0; 4]; n],
            l: vec![[0.0; 4]; n],
            rhs: vec![[0.0; 2]; n],
            flow_p: vec![0.0; n],
            flow_q: vec![0.0; n],
            core,
        }
    }

    /// Start point: warm from `sol` when allowed and valid, else LinDistFlow (or the flat start
    /// with shifted angles if LinDistFlow gives v² ≤ 0 somewhere).
    fn start(&mut self, sol: &mut Solution) {
        let warm = self.core.start(sol);
        for (k, &b) in self.bus.iter().enumerate() {
            self.vm[k] = sol.vm_pu[b];
            self.va[k] = sol.va_rad[b];
            self.v[k] = self.core.v[b];
        }
        if !warm {
            self.lindistflow_start();
        }
    }

    /// Overwrites the flat start with the LinDistFlow solution (squared form) where it is
    /// meaningful (v² > 0 everywhere); keeps the flat start otherwise.
    fn lindistflow_start(&mut self) {
        let n = self.bus.len();
        for k in (1..n).rev() {
            let p = self.par[k];
            self.flow_p[k] -= self.spec[k].re;
            self.flow_q[k] -= self.spec[k].im;
            if p != 0 {
                self.flow_p[p] += self.flow_p[k];
                self.flow_q[p] += self.flow_q[k];
            }
        }
        let inv_v0sq = 1.0 / (self.vm[0] * self.vm[0]);
        let mut ok = true;
        for k in 1..n {
            let p = self.par[k];
            let (pk, qk) = (self.flow_p[k], self.flow_q[k]);
            self.flow_p[k] = 0.0;
            self.flow_q[k] = 0.0;
            let vp = self.vm[p];
            let w = vp * vp - 2.0 * (self.r[k] * pk + self.x[k] * qk);
            ok &= w > 0.0;
            let vm = w.max(1e-4).sqrt();
            let dtheta = (self.x[k] * pk - self.r[k] * qk) * inv_v0sq;
            self.vm[k] = vm;
            self.va[k] = self.va[p] - dtheta - self.shift[k];
            self.v[k] = self.v[p] * self.shift_rot[k] * rotation(-dtheta) * (vm / vp);
        }
        if !ok {
            for (k, &b) in self.bus.iter().enumerate() {
                self.vm[k] = self.core.vm_start[b];
                self.va[k] = self.core.va_start[b];
                self.v[k] = self.core.v_start[b];
            }
        }
    }

    pub(super) fn solve(&mut self, inj: &Injection, sol: &mut Solution) -> Result<SolveInfo, PowerFlowError> {
        self.core.check(inj)?;
        let n = self.bus.len();
        let inv_base = 1.0 / self.core.base_mva;
        for (k, &b) in self.bus.iter().enumerate() {
            self.spec[k] = C64::new(inj.p_mw[b], inj.q_mvar[b]) * inv_base;
        }
        self.start(sol);
        let mut it = 0u32;
        loop {
            // Backward pass 1: currents and mismatches, leaves first (each bus's current is
            // complete once its children have added theirs).
            let mut worst: f64 = 0.0;
            for k in (1..n).rev() {
                let p = self.par[k];
                let (vk, vp) = (self.v[k], self.v[p]);
                let i_k = self.cur[k] + self.y_self[k] * vk + self.y_cp[k] * vp;
                self.cur[k] = C64::default();
                self.cur[p] += self.y_pc[k] * vk;
                let s_k = vk * i_k.conj();
                self.s[k] = s_k;
                let mis = s_k - self.spec[k];
                self.rhs[k] = [mis.re, mis.im];
                let m = mis.re.abs().max(mis.im.abs());
                if !(m <= worst) {
                    worst = m; // also catches NaN
                }
            }
            let i0 = self.cur[0] + self.y_self[0] * self.v[0];
            self.cur[0] = C64::default();
            let s0 = self.v[0] * i0.conj();
            if worst <= self.core.tol_pu {
                // Branch losses: everything injected minus what bus shunts absorb.
                let mut total = s0 - self.v[0].norm_sqr() * self.shunt[0].conj();
                for k in 1..n {
                    total += self.s[k] - self.v[k].norm_sqr() * self.shunt[k].conj();
                }
                for (k, &b) in self.bus.iter().enumerate() {
                    sol.vm_pu[b] = self.vm[k];
                    sol.va_rad[b] = self.va[k];
                }
                let base = self.core.base_mva;
                return Ok(SolveInfo {
                    iterations: it,
                    max_mismatch_pu: worst,
                    p_loss_mw: total.re * base,
                    q_loss_mvar: total.im * base,
                    slack_p_mw: s0.re * base,
                    slack_q_mvar: s0.im * base,
                });
            }
            if it >= self.core.max_iter || !worst.is_finite() || worst > 1e10 {
                return Err(PowerFlowError::Diverged { iterations: it, max_mismatch_pu: worst });
            }
            // Jacobian blocks (independent per bus).
            for k in 1..n {
                let p = self.par[k];
                let (vk, vp) = (self.v[k], self.v[p]);
                self.d[k] = NrCore::diag_block(vk.norm_sqr() * self.y_self[k].conj(), self.s[k]);
                self.u[k] = NrCore::off_block(vk * (self.y_cp[k] * vp).conj());
                self.l[k] = NrCore::off_block(vp * (self.y_pc[k] * vk).conj());
            }
            // Backward pass 2: eliminate leaves first; d[k] becomes D_k⁻¹. D⁻¹ = adj(D)/det,
            // and the products with adj(D) run beside the division, which shortens the serial
            // leaf-to-root chain. Position 0 (the slack) is not an unknown: updates to it are
            // harmless and ignored. (Forming the blocks inside this loop was measured slower.)
            for k in (1..n).rev() {
                let p = self.par[k];
                let d = self.d[k];
                let det = d[0] * d[3] - d[1] * d[2];
                if !(det.abs() > 1e-300 && det.is_finite()) {
                    return Err(PowerFlowError::Singular(format!("Jacobian block of bus index {}", self.bus[k])));
                }
                let adj = [d[3], -d[1], -d[2], d[0]];
                let rdet = 1.0 / det;
                self.d[k] = [adj[0] * rdet, adj[1] * rdet, adj[2] * rdet, adj[3] * rdet];
                let la = mul(&self.l[k], &adj);
                let lau = mul(&la, &self.u[k]);
                let lar = mulv(&la, &self.rhs[k]);
                let dp = &mut self.d[p];
                for j in 0..4 {
                    dp[j] -= lau[j] * rdet;
                }
                self.rhs[p][0] -= lar[0] * rdet;
                self.rhs[p][1] -= lar[1] * rdet;
            }
            // Forward pass: x_k = D_k⁻¹ (rhs_k − U_k x_parent), x_slack = rhs[0] = 0.
            self.rhs[0] = [0.0; 2];
            for k in 1..n {
                let p = self.par[k];
                let ux = mulv(&self.u[k], &self.rhs[p]);
                let r = [self.rhs[k][0] - ux[0], self.rhs[k][1] - ux[1]];
                let x = mulv(&self.d[k], &r);
                self.rhs[k] = x;
                self.va[k] -= x[0];
                let f = 1.0 - x[1];
                self.vm[k] *= f;
                self.v[k] *= rotation(-x[0]) * f;
            }
            it += 1;
        }
    }
}
