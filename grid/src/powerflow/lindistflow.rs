//! LinDistFlow (Baran & Wu) on a radial network: the direct solve, the dense sensitivity
//! matrices R and X, and the O(n) tree products X·d and X⁻¹·y.
//!
//! With branch flows P_e, Q_e from parent to child (pu; P_e = −Σ net injections below e) and the
//! series r_e, x_e of each branch (transformers: their series impedance, ratio ignored):
//!
//! * squared form: v_c² = v_p² − 2 (r_e P_e + x_e Q_e), i.e. v² = v₀² + 2 (R p + X q);
//! * linear form:  v_c  = v_p  − (r_e P_e + x_e Q_e)/v₀,  i.e. v = v₀ + (R p + X q)/v₀;
//!
//! where R_ij = Σ r_e and X_ij = Σ x_e over the edges shared by the paths slack→i and slack→j
//! (pu of the system base), p, q the net injections (pu). Line charging and magnetising
//! admittances are ignored (see `docs/` for the error this costs against AC). Angles use the
//! matching linearisation θ_c = θ_p − shift_e − (x_e P_e − r_e Q_e)/v₀².

use super::{check_finite, Injection, PowerFlowError, Solution, SolveInfo};
use crate::network::{Network, Tree};
use faer::Mat;

/// Which LinDistFlow voltage form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinDistFlowForm {
    /// v² = v₀² + 2(Rp + Xq): more accurate (about 2× smaller error on the shipped cases).
    #[default]
    Squared,
    /// v = v₀ + (Rp + Xq)/v₀: linear in p and q, the form OFO controllers use.
    Linear,
}

/// Dense LinDistFlow sensitivity matrices over the non-slack buses.
#[derive(Debug, Clone)]
pub struct Sensitivities {
    /// Bus indices (network order, slack excluded) for the rows and columns.
    pub buses: Vec<usize>,
    /// R_ij = Σ r over the common path (pu); ∂v/∂p = R/v₀ in the linear form.
    pub r: Mat<f64>,
    /// X_ij = Σ x over the common path (pu); ∂v/∂q = X/v₀ in the linear form.
    pub x: Mat<f64>,
}

/// LinDistFlow model of a radial network.
#[derive(Debug, Clone)]
pub struct LinDistFlow {
    form: LinDistFlowForm,
    tree: Tree,
    base_mva: f64,
    v0: f64,
    va0: f64,
    /// Series r, x of the edge from each bus to its parent (pu); 0 at the slack.
    r: Vec<f64>,
    x: Vec<f64>,
    /// Phase shift (rad) from parent to child along each bus's parent edge.
    shift: Vec<f64>,
    // work: flows from parent into each bus (pu)
    pf: Vec<f64>,
    qf: Vec<f64>,
}

impl LinDistFlow {
    /// Builds the model; fails if the in-service network is meshed.
    pub fn new(net: &Network, form: LinDistFlowForm) -> Result<LinDistFlow, PowerFlowError> {
        let adm = net.admittance();
        let tree = crate::network::Tree::build(net.n_bus(), net.slack, &adm.edges)
            .ok_or(PowerFlowError::NotRadial("LinDistFlow"))?;
        let n = net.n_bus();
        let mut r = vec![0.0; n];
        let mut x = vec![0.0; n];
        let mut shift = vec![0.0; n];
        for &c in &tree.order[1..] {
            let e = &adm.edges[tree.parent_edge[c]];
            let z = e.series_impedance();
            r[c] = z.re;
            x[c] = z.im;
            let s = e.shift_deg.to_radians();
            shift[c] = if tree.parent_is_from[c] { s } else { -s };
        }
        let slack = &net.buses[net.slack];
        Ok(LinDistFlow {
            form,
            base_mva: net.base_mva,
            v0: slack.vm_pu,
            va0: slack.va_degree.to_radians(),
            r,
            x,
            shift,
            pf: vec![0.0; n],
            qf: vec![0.0; n],
            tree,
        })
    }

    /// The radial tree the model sweeps over.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Slack voltage magnitude v₀ (pu).
    pub fn v0(&self) -> f64 {
        self.v0
    }

    /// Series resistance of the edge from bus `i` to its parent (pu; 0 at the slack).
    pub fn r_to_parent(&self) -> &[f64] {
        &self.r
    }

    /// Series reactance of the edge from bus `i` to its parent (pu; 0 at the slack).
    pub fn x_to_parent(&self) -> &[f64] {
        &self.x
    }

    /// Solves the LinDistFlow model: two O(n) sweeps, no iteration, no allocation.
    pub fn solve(&mut self, inj: Injection<'_>, sol: &mut Solution) -> Result<SolveInfo, PowerFlowError> {
        let n = self.tree.len();
        if inj.p_mw.len() != n || inj.q_mvar.len() != n {
            return Err(PowerFlowError::InvalidInjection(format!(
                "expected {n} values per vector, got p: {}, q: {}",
                inj.p_mw.len(),
                inj.q_mvar.len()
            )));
        }
        check_finite(&inj, self.tree.root)?;
        if sol.vm_pu.len() != n {
            *sol = Solution::new(n);
        }
        let inv_base = 1.0 / self.base_mva;
        let root = self.tree.root;
        // Backward sweep: flow into each bus from its parent = −(net injection of its subtree).
        for &c in self.tree.order[1..].iter().rev() {
            self.pf[c] -= inj.p_mw[c] * inv_base;
            self.qf[c] -= inj.q_mvar[c] * inv_base;
            let p = self.tree.parent[c];
            if p != root {
                self.pf[p] += self.pf[c];
                self.qf[p] += self.qf[c];
            }
        }
        let (v0, v0sq) = (self.v0, self.v0 * self.v0);
        sol.vm_pu[root] = v0;
        sol.va_rad[root] = self.va0;
        let mut ploss = 0.0;
        let mut qloss = 0.0;
        let mut slack_p = 0.0;
        let mut slack_q = 0.0;
        // Forward sweep. vm_pu temporarily holds v² in the squared form.
        if self.form == LinDistFlowForm::Squared {
            sol.vm_pu[root] = v0sq;
        }
        for &c in &self.tree.order[1..] {
            let p = self.tree.parent[c];
            let (pc, qc, r, x) = (self.pf[c], self.qf[c], self.r[c], self.x[c]);
            let drop = r * pc + x * qc;
            let vp_sq = match self.form {
                LinDistFlowForm::Squared => {
                    sol.vm_pu[c] = sol.vm_pu[p] - 2.0 * drop;
                    sol.vm_pu[p]
                }
                LinDistFlowForm::Linear => {
                    sol.vm_pu[c] = sol.vm_pu[p] - drop / v0;
                    sol.vm_pu[p] * sol.vm_pu[p]
                }
            };
            sol.va_rad[c] = sol.va_rad[p] - self.shift[c] - (x * pc - r * qc) / v0sq;
            let s2 = (pc * pc + qc * qc) / vp_sq;
            ploss += r * s2;
            qloss += x * s2;
            if p == root {
                slack_p += pc;
                slack_q += qc;
            }
            self.pf[c] = 0.0;
            self.qf[c] = 0.0;
        }
        if self.form == LinDistFlowForm::Squared {
            let mut ok = true;
            for v in sol.vm_pu.iter_mut() {
                ok &= *v > 0.0;
                *v = v.sqrt();
            }
            if !ok {
                sol.valid = false;
                return Err(PowerFlowError::Diverged { iterations: 0, max_mismatch_pu: f64::INFINITY });
            }
        }
        sol.valid = true;
        Ok(SolveInfo {
            iterations: 0,
            max_mismatch_pu: 0.0,
            p_loss_mw: ploss * self.base_mva,
            q_loss_mvar: qloss * self.base_mva,
            slack_p_mw: slack_p * self.base_mva,
            slack_q_mvar: slack_q * self.base_mva,
        })
    }

    /// Dense R and X over the non-slack buses (O(n²) memory; for controllers and tests).
    pub fn sensitivities(&self) -> Sensitivities {
        let root = self.tree.root;
        let buses: Vec<usize> = (0..self.tree.len()).filter(|&i| i != root).collect();
        let m = buses.len();
        // Path sums: Rp[i] = Σ r over the path root→i. R_ij = Rp[lca(i, j)].
        let mut rp = vec![0.0; self.tree.len()];
        let mut xp = vec![0.0; self.tree.len()];
        for &c in &self.tree.order[1..] {
            let p = self.tree.parent[c];
            rp[c] = rp[p] + self.r[c];
            xp[c] = xp[p] + self.x[c];
        }
        let mut r = Mat::zeros(m, m);
        let mut x = Mat::zeros(m, m);
        // R_ij is the path sum at the deepest common ancestor of i and j (O(n² · depth) build).
        let paths: Vec<Vec<usize>> = buses.iter().map(|&b| self.tree.path_from_root(b)).collect();
        for a in 0..m {
            for b in a..m {
                let (pa, pb) = (&paths[a], &paths[b]);
                let mut k = 0;
                while k < pa.len() && k < pb.len() && pa[k] == pb[k] {
                    k += 1;
                }
                let lca = pa[k - 1];
                let (rv, xv) = (rp[lca], xp[lca]);
                r[(a, b)] = rv;
                r[(b, a)] = rv;
                x[(a, b)] = xv;
                x[(b, a)] = xv;
            }
        }
        Sensitivities { buses, r, x }
    }

    /// out = X·d over all buses (the slack entries of `d` are ignored and `out[slack] = 0`),
    /// by a backward sweep (subtree sums) and a forward sweep (path sums): O(n).
    pub fn x_times(&self, d: &[f64], out: &mut [f64]) {
        self.path_product(&self.x, d, out)
    }

    /// out = R·d over all buses, as [`Self::x_times`].
    pub fn r_times(&self, d: &[f64], out: &mut [f64]) {
        self.path_product(&self.r, d, out)
    }

    fn path_product(&self, w: &[f64], d: &[f64], out: &mut [f64]) {
        let root = self.tree.root;
        // Backward: out[c] = D_c = Σ_{subtree(c)} d.
        for &c in &self.tree.order[1..] {
            out[c] = d[c];
        }
        for &c in self.tree.order[1..].iter().rev() {
            let p = self.tree.parent[c];
            if p != root {
                out[p] += out[c];
            }
        }
        // Forward: U_c = U_p + w_c D_c.
        out[root] = 0.0;
        for &c in &self.tree.order[1..] {
            let p = self.tree.parent[c];
            out[c] = out[p] + w[c] * out[c];
        }
    }

    /// out = X⁻¹·y over all buses (slack entries ignored, `out[slack] = 0`), from the one-hop
    /// closed form (X⁻¹y)_i = Σ_{j ∈ parent(i) ∪ children(i)} (y_i − y_j)/x_ij with y_slack = 0.
    /// Needs every branch reactance nonzero ([`PowerFlowError::Singular`] otherwise).
    pub fn x_inv_times(&self, y: &[f64], out: &mut [f64]) -> Result<(), PowerFlowError> {
        let root = self.tree.root;
        out.fill(0.0);
        for &c in &self.tree.order[1..] {
            let xc = self.x[c];
            if xc == 0.0 {
                return Err(PowerFlowError::Singular(format!("X is singular: zero reactance above bus index {c}")));
            }
            let p = self.tree.parent[c];
            let yp = if p == root { 0.0 } else { y[p] };
            let flow = (y[c] - yp) / xc;
            out[c] += flow;
            if p != root {
                out[p] -= flow;
            }
        }
        Ok(())
    }
}
