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
//! children's. Messages go through mailboxes (`Network` faults).
//!
//! Failure handling (ours; the paper's surviving text does not specify it, docs/OFO.md):
//! - **Failed node** j (no measurement, no update, setpoint frozen): its parent — or, at the top of
//!   a feeder, its first child — takes over its role. The delegate holds j's duals, fed by the
//!   highest (for λ̄_j) and lowest (for λ̲_j) voltage among j's neighbours, which send it their
//!   measurements; it computes j's tentative setpoint from j's mailboxes (the m of j's neighbours)
//!   and relays j's part of the sweeps, so the X-norm projection moves the live nodes to make up for
//!   what j cannot do. Without it the projection would treat j as content where it is.
//! - **Lost messages**: each sweep message carries the outer iteration it belongs to. A receiver
//!   that misses one uses the last value of the same outer iteration (one inner step old); if it has
//!   none — a value from an earlier outer iteration belongs to another tentative setpoint and would
//!   steer the projection wrong — it and everything computed from that value hold for this inner
//!   step (no update), and the staleness travels with the sums. The one-hop m messages of the
//!   tentative step fall back to the last value received (setpoints move little between outer
//!   iterations).

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
    /// Nodes that missed an m message in the current outer iteration.
    m_missing: Vec<bool>,
    /// D_c as last received by the parent of c; U_π(c) as last received by c; the outer iteration
    /// each was sent in, and whether it was computed from current values only.
    d_from_child: Vec<f64>,
    u_from_parent: Vec<f64>,
    d_round: Vec<u64>,
    u_round: Vec<u64>,
    d_fresh: Vec<bool>,
    u_fresh: Vec<bool>,
    /// Whether each node's D and U in the current inner step rest on current values only.
    d_ok: Vec<bool>,
    u_ok: Vec<bool>,
    /// Outer iterations so far (message stamps).
    round: u64,
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
            m_missing: vec![false; n],
            d_from_child: vec![0.0; n],
            u_from_parent: vec![0.0; n],
            d_round: vec![0; n],
            u_round: vec![0; n],
            d_fresh: vec![false; n],
            u_fresh: vec![false; n],
            d_ok: vec![true; n],
            u_ok: vec![true; n],
            round: 0,
            d_own: vec![0.0; n],
            d_acc: vec![0.0; n],
            u_own: vec![0.0; n],
        }
    }

    /// The tentative setpoints q̃ of the last outer iteration (kVar).
    pub fn tentative(&self) -> &[f64] {
        &self.q_tilde
    }

    /// m_i / q_i: 2c_i + ε for qᵀCq, ε for the weighted qᵀXq (its 2Xq part is local after X⁻¹).
    fn cost_weight(model: &OfoModel, s: &Steps, i: usize) -> f64 {
        if s.weighted {
            s.epsilon
        } else {
            2.0 * model.c[i] + s.epsilon
        }
    }

    /// The live neighbour that takes over failed node `i`: its parent, or at the top of a feeder its
    /// first live child.
    pub(super) fn delegate(model: &OfoModel, failed: &[bool], i: usize) -> Option<usize> {
        let p = model.parent[i];
        if p != NONE && !failed[p] {
            return Some(p);
        }
        model.children[i].iter().copied().find(|&c| !failed[c])
    }

    /// The highest and lowest measured voltage among the live neighbours of failed node `i` (None
    /// when it has no live delegate).
    fn neighbour_voltages(model: &OfoModel, failed: &[bool], v: &[f64], i: usize) -> Option<(f64, f64)> {
        Nested::delegate(model, failed, i)?;
        let p = model.parent[i];
        let live = (p != NONE).then_some(p).into_iter().chain(model.children[i].iter().copied()).filter(|&k| !failed[k]);
        let (mut hi, mut lo) = (f64::NEG_INFINITY, f64::INFINITY);
        for k in live {
            hi = hi.max(v[k]);
            lo = lo.min(v[k]);
        }
        Some((hi, lo))
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
        m_missing: &mut [bool],
        v: &[f64],
        q: &[f64],
        q_tilde: &mut [f64],
    ) {
        let n = model.len();
        for i in 0..n {
            if !net.failed[i] {
                dual_update(&mut lam_up[i], &mut lam_lo[i], v[i], model.v_min, model.v_max, s.alpha, s.eta);
            } else if let Some((hi, lo)) = Nested::neighbour_voltages(model, &net.failed, v, i) {
                // The delegate watches the failed node's limits from its neighbours' voltages.
                let (mut up, mut dn) = (lam_up[i], lam_lo[i]);
                dual_update(&mut up, &mut dn, hi, model.v_min, model.v_max, s.alpha, s.eta);
                let (mut up2, mut dn2) = (lam_up[i], lam_lo[i]);
                dual_update(&mut up2, &mut dn2, lo, model.v_min, model.v_max, s.alpha, s.eta);
                lam_up[i] = up;
                lam_lo[i] = dn2;
            }
        }
        // Every live node (and every delegate for its failed node) sends m_i = (2c_i + ε) q_i to
        // the parent and the children.
        for i in 0..n {
            if net.failed[i] && Nested::delegate(model, &net.failed, i).is_none() {
                continue;
            }
            let m = Nested::cost_weight(model, s, i) * q[i];
            let p = model.parent[i];
            if p != NONE {
                if net.delivered() {
                    m_from_child[i] = m;
                } else {
                    m_missing[p] = true;
                }
            }
            for &c in &model.children[i] {
                if net.delivered() {
                    m_from_parent[c] = m;
                } else {
                    m_missing[c] = true;
                }
            }
        }
        for i in 0..n {
            if net.failed[i] && Nested::delegate(model, &net.failed, i).is_none() {
                q_tilde[i] = q[i];
                continue;
            }
            // A node that missed a neighbour's m this time keeps its last tentative setpoint: the
            // one-hop X⁻¹ term divides by a cable's reactance, so a stale m would move q̃_i far, and
            // q̃_i = q_i would not be neutral either (at the fixed point q̃ ≠ q where limits bind).
            if std::mem::take(&mut m_missing[i]) {
                continue;
            }
            // A failed node's tentative setpoint is its delegate's work, from its mailboxes.
            let mi = Nested::cost_weight(model, s, i) * q[i];
            let mp = if model.parent[i] == NONE { 0.0 } else { m_from_parent[i] };
            let mut xinv = (mi - mp) / model.x[i];
            for &c in &model.children[i] {
                xinv += (mi - m_from_child[c]) / model.x[c];
            }
            // §IV-H (weighted, qᵀXq): X⁻¹∇ = X⁻¹(2Xq + εq) = 2q + X⁻¹εq, the exchanged m being εq.
            let own = if s.weighted { 2.0 * q[i] } else { 0.0 };
            q_tilde[i] = q[i] - s.beta * (own + xinv + lam_up[i] - lam_lo[i]); // (11)
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
        self.round += 1;
        Nested::tentative_step(
            &self.model, &s, &mut self.net, &mut self.lam_up, &mut self.lam_lo,
            &mut self.m_from_parent, &mut self.m_from_child, &mut self.m_missing, v, q, &mut self.q_tilde,
        );
        let m = &self.model;
        let n = m.len();
        // Step 3: warm start (re-clipped to the current Q), or cold start at Proj(q̃).
        for i in 0..n {
            self.qk[i] = clip(if s.warm_start { q[i] } else { self.q_tilde[i] }, q_max[i]);
        }
        let round = self.round;
        let Network { failed, drop_prob, retries, rng } = &mut self.net;
        let (drop_prob, retries) = (*drop_prob, *retries);
        let lossless = drop_prob <= 0.0;
        let mut delivered = || super::delivered_within(rng, drop_prob, retries);
        let (qk, q_tilde) = (&mut self.qk[..n], &self.q_tilde[..n]);
        let (d_own, d_acc, d_from_child) = (&mut self.d_own[..n], &mut self.d_acc[..n], &mut self.d_from_child[..n]);
        let (u_own, u_from_parent) = (&mut self.u_own[..n], &mut self.u_from_parent[..n]);
        let (d_round, u_round, d_fresh, u_fresh) = (&mut self.d_round[..n], &mut self.u_round[..n], &mut self.d_fresh[..n], &mut self.u_fresh[..n]);
        let (d_ok, u_ok) = (&mut self.d_ok[..n], &mut self.u_ok[..n]);
        let (parent, x, failed, q_max) = (&m.parent[..n], &m.x[..n], &failed[..n], &q_max[..n]);
        for _ in 0..s.k_inner {
            // (15) backward sweep, leaves first: D_i = d_i + Σ_children D_c. Each node, once its
            // children have reported, sends D_i to its parent (a failed node's part is relayed by
            // its delegate). A lost message: the parent uses that child's D of an earlier inner
            // step of this outer iteration, else the sum is marked stale.
            d_acc.fill(0.0);
            d_ok.fill(true);
            for i in (0..n).rev() {
                let d = (qk[i] - q_tilde[i]) + d_acc[i];
                d_own[i] = d;
                let p = parent[i];
                if p != NONE {
                    let sent = if lossless || delivered() {
                        d_from_child[i] = d;
                        d_round[i] = round;
                        d_fresh[i] = d_ok[i];
                        d
                    } else {
                        if d_round[i] != round || !d_fresh[i] {
                            d_ok[p] = false;
                        }
                        d_from_child[i]
                    };
                    if !d_ok[i] {
                        d_ok[p] = false;
                    }
                    d_acc[p] += sent;
                }
            }
            // (16) forward sweep: U_i = U_π(i) + x_i D_i, U_π(i) as received from the parent (or
            // of an earlier inner step of this outer iteration); then (17) ∇g_i = 2U_i and the clip
            // step (14) — held where U rests on a stale value.
            for i in 0..n {
                let p = parent[i];
                let (up, ok) = if p == NONE {
                    (0.0, true)
                } else if lossless || delivered() {
                    let u = u_own[p];
                    u_from_parent[i] = u;
                    u_round[i] = round;
                    u_fresh[i] = u_ok[p];
                    (u, u_ok[p])
                } else {
                    (u_from_parent[i], u_round[i] == round && u_fresh[i])
                };
                let u = up + x[i] * d_own[i];
                u_own[i] = u;
                u_ok[i] = ok && d_ok[i];
                if !failed[i] && u_ok[i] {
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
