//! Algorithm 1 — nested distributed OFO (Zhan et al., TPWRS 2025), written node by node.
//!
//! Per outer iteration t, at every node i:
//! 1. measure v_i and update the **local** duals λ̄_i, λ̲_i by (9a)–(9b);
//! 2. send m_i = (2c_i + ε) q_i to the parent and the children; compute the tentative setpoint (11)
//!    q̃_i = q_i − β( Σ_{j∈π(i)∪C_i} (m_i − m_j)/x_ij + λ̄_i − λ̲_i )   (row i of X⁻¹, one hop);
//! 3. K inner projected-gradient steps (14) on g(q) = (q − q̃)ᵀX(q − q̃), warm-started at q^t:
//!    d_i = q_i^k − q̃_i; backward sweep (15) D_i = d_i + Σ_c D_c, sent to the parent; forward sweep
//!    (16) U_i = U_π(i) + x_i D_i, sent to the children; q_i^{k+1} = Proj[q_i^k − 2γ U_i]   (17);
//! 4. apply q^{t+1} = q^{t+1,K}.
//!
//! No node sends voltages or duals, and none needs the full X: each knows its own cable and its
//! children's. Messages go through mailboxes (`Network` faults: a lost message leaves the receiver
//! with the last value it got; a failed node freezes its setpoint and relays the sweeps with no
//! contribution of its own).

use super::{clip, dual_update, Network, OfoController, OfoModel, Steps, NONE};

#[derive(Debug, Clone)]
pub struct Nested {
    model: OfoModel,
    steps: Steps,
    net: Network,
    lam_up: Vec<f64>,
    lam_lo: Vec<f64>,
    q_tilde: Vec<f64>,
    qk: Vec<f64>,
    /// Mailboxes, keyed by the child end of each cable:
    /// the parent's m as received by the child, and the child's m as received by the parent.
    m_from_parent: Vec<f64>,
    m_from_child: Vec<f64>,
    /// D_c as last received by the parent of c; U_π(c) as last received by c.
    d_from_child: Vec<f64>,
    u_from_parent: Vec<f64>,
    d_own: Vec<f64>,
    /// Sum of the D values a node received from its children in the current sweep.
    d_acc: Vec<f64>,
    /// U_i of each node in the current sweep.
    u_own: Vec<f64>,
}

impl Nested {
    pub fn new(model: OfoModel, steps: Steps, net: Network) -> Nested {
        let n = model.len();
        Nested {
            model,
            steps,
            net,
            lam_up: vec![0.0; n],
            lam_lo: vec![0.0; n],
            q_tilde: vec![0.0; n],
            qk: vec![0.0; n],
            m_from_parent: vec![0.0; n],
            m_from_child: vec![0.0; n],
            d_from_child: vec![0.0; n],
            u_from_parent: vec![0.0; n],
            d_own: vec![0.0; n],
            d_acc: vec![0.0; n],
            u_own: vec![0.0; n],
        }
    }

    /// The tentative setpoints q̃ of the last outer iteration (kVar).
    pub fn tentative(&self) -> &[f64] {
        &self.q_tilde
    }

    /// Steps 1–2: local duals, one-hop exchange, tentative setpoints. Shared with two-metric.
    pub(super) fn tentative_step(
        model: &OfoModel,
        s: &Steps,
        net: &mut Network,
        lam_up: &mut [f64],
        lam_lo: &mut [f64],
        m_from_parent: &mut [f64],
        m_from_child: &mut [f64],
        v: &[f64],
        q: &[f64],
        q_tilde: &mut [f64],
    ) {
        let n = model.len();
        for i in 0..n {
            if !net.failed[i] {
                dual_update(&mut lam_up[i], &mut lam_lo[i], v[i], model.v_min, model.v_max, s.alpha, s.eta);
            }
        }
        // Every live node sends m_i = (2c_i + ε) q_i to its parent and children.
        for i in 0..n {
            if net.failed[i] {
                continue;
            }
            let m = (2.0 * model.c[i] + s.epsilon) * q[i];
            if model.parent[i] != NONE && net.delivered() {
                m_from_child[i] = m;
            }
            for &c in &model.children[i] {
                if net.delivered() {
                    m_from_parent[c] = m;
                }
            }
        }
        for i in 0..n {
            if net.failed[i] {
                q_tilde[i] = q[i];
                continue;
            }
            let mi = (2.0 * model.c[i] + s.epsilon) * q[i];
            let mp = if model.parent[i] == NONE { 0.0 } else { m_from_parent[i] };
            let mut xinv = (mi - mp) / model.x[i];
            for &c in &model.children[i] {
                xinv += (mi - m_from_child[c]) / model.x[c];
            }
            q_tilde[i] = q[i] - s.beta * (xinv + lam_up[i] - lam_lo[i]); // (11)
        }
    }
}

/// The X-norm projection (13) by plain projected gradient (14) on one machine, without message
/// passing: `iters` steps q ← Proj_Q[q − 2γ X(q − q̃)] from `q` (in place). The reference the
/// distributed inner loop is tested against.
pub fn pgd_x_projection(model: &OfoModel, q_tilde: &[f64], q_max: &[f64], gamma: f64, iters: usize, q: &mut [f64], work: &mut [Vec<f64>; 2]) {
    let n = model.len();
    let [d, xd] = work;
    d.resize(n, 0.0);
    xd.resize(n, 0.0);
    for _ in 0..iters {
        for i in 0..n {
            d[i] = q[i] - q_tilde[i];
        }
        model.x_times(d, xd);
        for i in 0..n {
            q[i] = clip(q[i] - 2.0 * gamma * xd[i], q_max[i]);
        }
    }
}

impl OfoController for Nested {
    fn name(&self) -> &str {
        "nested"
    }

    /// m_i to the neighbours once, then K inner rounds of D up and U down every link.
    fn communication(&self) -> voltarena_env::controller::Communication {
        self.model.neighbour_messages(1 + self.steps.k_inner)
    }

    fn reset(&mut self) {
        self.lam_up.fill(0.0);
        self.lam_lo.fill(0.0);
        self.m_from_parent.fill(0.0);
        self.m_from_child.fill(0.0);
        self.d_from_child.fill(0.0);
        self.u_from_parent.fill(0.0);
    }

    fn step(&mut self, v: &[f64], q_max: &[f64], q: &mut [f64]) {
        let s = self.steps;
        Nested::tentative_step(
            &self.model, &s, &mut self.net, &mut self.lam_up, &mut self.lam_lo,
            &mut self.m_from_parent, &mut self.m_from_child, v, q, &mut self.q_tilde,
        );
        let m = &self.model;
        let n = m.len();
        // Step 3: warm start (re-clipped to the current Q), or cold start at Proj(q̃).
        for i in 0..n {
            self.qk[i] = clip(if s.warm_start { q[i] } else { self.q_tilde[i] }, q_max[i]);
        }
        let Network { failed, drop_prob, rng } = &mut self.net;
        let drop_prob = *drop_prob;
        let lossless = drop_prob <= 0.0;
        let mut delivered = || super::coin(rng, drop_prob);
        let (qk, q_tilde) = (&mut self.qk[..n], &self.q_tilde[..n]);
        let (d_own, d_acc, d_from_child) = (&mut self.d_own[..n], &mut self.d_acc[..n], &mut self.d_from_child[..n]);
        let (u_own, u_from_parent) = (&mut self.u_own[..n], &mut self.u_from_parent[..n]);
        let (parent, x, failed, q_max) = (&m.parent[..n], &m.x[..n], &failed[..n], &q_max[..n]);
        for _ in 0..s.k_inner {
            // (15) backward sweep, leaves first: D_i = d_i + Σ_children D_c. Each node, once its
            // children have reported, sends D_i to its parent (the parent sums what it receives;
            // a lost message leaves it with that child's previous D).
            d_acc.fill(0.0);
            for i in (0..n).rev() {
                let own = if failed[i] { 0.0 } else { qk[i] - q_tilde[i] };
                let d = own + d_acc[i];
                d_own[i] = d;
                let p = parent[i];
                if p != NONE {
                    let sent = if lossless || delivered() {
                        d_from_child[i] = d;
                        d
                    } else {
                        d_from_child[i]
                    };
                    d_acc[p] += sent;
                }
            }
            // (16) forward sweep: U_i = U_π(i) + x_i D_i, U_π(i) as received from the parent;
            // then (17) ∇g_i = 2U_i and the clip step (14).
            for i in 0..n {
                let p = parent[i];
                let up = if p == NONE {
                    0.0
                } else if lossless || delivered() {
                    let u = u_own[p];
                    u_from_parent[i] = u;
                    u
                } else {
                    u_from_parent[i]
                };
                let u = up + x[i] * d_own[i];
                u_own[i] = u;
                if !failed[i] {
                    qk[i] = clip(qk[i] - s.gamma * 2.0 * u, q_max[i]);
                }
            }
        }
        // Step 4.
        for i in 0..n {
            if !self.net.failed[i] {
                q[i] = self.qk[i];
            }
        }
    }
}
