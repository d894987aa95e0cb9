//! Tang et al. 2024 heuristic: the centralized step (9c) with the sensitivity matrix truncated to
//! each node and its neighbours, X̂_ij = X_ij if i = j or i, j adjacent, else 0. Duals are local
//! (9a)–(9b) and neighbours exchange them. For a parent p of i, X_ip = X_pp; for a child c,
//! X_ic = X_ii. The truncation moves the fixed point, leaving a persistent violation.

use super::{clip, dual_update, Network, OfoController, OfoModel, Steps, NONE};

#[derive(Debug, Clone)]
pub struct Tang2024 {
    model: OfoModel,
    steps: Steps,
    net: Network,
    lam_up: Vec<f64>,
    lam_lo: Vec<f64>,
    /// (λ̄ − λ̲) of the parent as received by each node, and of each child as received by its parent.
    y_from_parent: Vec<f64>,
    y_from_child: Vec<f64>,
}

impl Tang2024 {
    pub fn new(model: OfoModel, steps: Steps, net: Network) -> Tang2024 {
        let n = model.len();
        Tang2024 { model, steps, net, lam_up: vec![0.0; n], lam_lo: vec![0.0; n], y_from_parent: vec![0.0; n], y_from_child: vec![0.0; n] }
    }
}

impl OfoController for Tang2024 {
    fn name(&self) -> &str {
        "tang2024"
    }

    /// λ̄ − λ̲ to the neighbours (one hop).
    fn communication(&self) -> voltarena_env::controller::Communication {
        self.model.neighbour_messages(1)
    }

    fn reset(&mut self) {
        self.lam_up.fill(0.0);
        self.lam_lo.fill(0.0);
        self.y_from_parent.fill(0.0);
        self.y_from_child.fill(0.0);
    }

    fn step(&mut self, v: &[f64], q_max: &[f64], q: &mut [f64]) {
        let (m, s) = (&self.model, self.steps);
        let n = m.len();
        for i in 0..n {
            if !self.net.failed[i] {
                dual_update(&mut self.lam_up[i], &mut self.lam_lo[i], v[i], m.v_min, m.v_max, s.alpha, s.eta);
                let y = self.lam_up[i] - self.lam_lo[i];
                if m.parent[i] != NONE && self.net.delivered() {
                    self.y_from_child[i] = y;
                }
                for &c in &m.children[i] {
                    if self.net.delivered() {
                        self.y_from_parent[c] = y;
                    }
                }
            }
        }
        for i in 0..n {
            if self.net.failed[i] {
                continue;
            }
            let yi = self.lam_up[i] - self.lam_lo[i];
            let mut xy = m.x_path[i] * yi;
            if m.parent[i] != NONE {
                xy += m.x_path[m.parent[i]] * self.y_from_parent[i];
            }
            for &c in &m.children[i] {
                xy += m.x_path[i] * self.y_from_child[c];
            }
            q[i] = clip(q[i] - s.beta * ((2.0 * m.c[i] + s.epsilon) * q[i] + xy), q_max[i]);
        }
    }
}
