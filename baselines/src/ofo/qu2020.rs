//! Qu & Li, IEEE TPWRS 2020 (OPTDIST-VC), transcribed from the update equations of the authors'
//! public MATLAB code, with cost Σ ½ a_i q_i² (a_i = 2c_i, b = 0, ρ_ℓ = 0) for problem (6).
//!
//! State: a virtual setpoint q̂ (the applied one is Proj_Q q̂), a capacity multiplier ξ with
//! augmented-Lagrangian penalty c_AL, and voltage duals. Per iteration, at node i:
//!   G_i = max{min{ξ_i + c_AL(q̂_i − q_lo,i), 0}, ξ_i + c_AL(q̂_i − q_hi,i)}
//!   q̂ ← q̂ − α[λ̄ − λ̲ + X⁻¹(∇C(q̂) + G)]            (X⁻¹ one hop: neighbours exchange ∇C + G)
//!   ξ_i ← ξ_i + β(q̂_i − q_lo,i) | ξ_i + β(q̂_i − q_hi,i) | (1 − β/c_AL) ξ_i   (by case)
//!   λ̄_i ← [λ̄_i + γ(v_i − v_max)]⁺, λ̲_i ← [λ̲_i + γ(v_min − v_i)]⁺
//! Naming follows Qu & Li: `alpha` is the primal step, `beta` the ξ step, `gamma` the dual step.
//! Their code works on squared voltages in MVA-pu; here, as for the other controllers, on |V| (pu)
//! with q in kVar.

use super::{clip, Network, OfoController, OfoModel, Steps, NONE};

#[derive(Debug, Clone)]
pub struct Qu2020 {
    model: OfoModel,
    steps: Steps,
    net: Network,
    q_hat: Vec<f64>,
    xi: Vec<f64>,
    lam_up: Vec<f64>,
    lam_lo: Vec<f64>,
    g_own: Vec<f64>,
    g_from_parent: Vec<f64>,
    g_from_child: Vec<f64>,
    started: bool,
}

impl Qu2020 {
    pub fn new(model: OfoModel, steps: Steps, net: Network) -> Qu2020 {
        let n = model.len();
        Qu2020 {
            model,
            steps,
            net,
            q_hat: vec![0.0; n],
            xi: vec![0.0; n],
            lam_up: vec![0.0; n],
            lam_lo: vec![0.0; n],
            g_own: vec![0.0; n],
            g_from_parent: vec![0.0; n],
            g_from_child: vec![0.0; n],
            started: false,
        }
    }
}

impl OfoController for Qu2020 {
    fn name(&self) -> &str {
        "qu2020"
    }

    /// ∇C(q̂) + G to the neighbours (one hop).
    fn communication(&self) -> voltarena_env::controller::Communication {
        self.model.neighbour_messages(1)
    }

    fn reset(&mut self) {
        self.xi.fill(0.0);
        self.lam_up.fill(0.0);
        self.lam_lo.fill(0.0);
        self.g_from_parent.fill(0.0);
        self.g_from_child.fill(0.0);
        self.started = false;
    }

    fn step(&mut self, v: &[f64], q_max: &[f64], q: &mut [f64]) {
        let (m, s) = (&self.model, self.steps);
        let n = m.len();
        if !self.started {
            self.q_hat.copy_from_slice(q);
            self.started = true;
        }
        let c_al = s.c_al;
        for i in 0..n {
            if self.net.failed[i] {
                continue;
            }
            self.lam_up[i] = (self.lam_up[i] + s.gamma * (v[i] - m.v_max)).max(0.0);
            self.lam_lo[i] = (self.lam_lo[i] + s.gamma * (m.v_min - v[i])).max(0.0);
            let (lo, hi) = (-q_max[i], q_max[i]);
            let g = (self.xi[i] + c_al * (self.q_hat[i] - lo)).min(0.0).max(self.xi[i] + c_al * (self.q_hat[i] - hi));
            self.g_own[i] = 2.0 * m.c[i] * self.q_hat[i] + g; // ∇C(q̂) + G
            if m.parent[i] != NONE && self.net.delivered() {
                self.g_from_child[i] = self.g_own[i];
            }
            for &c in &m.children[i] {
                if self.net.delivered() {
                    self.g_from_parent[c] = self.g_own[i];
                }
            }
        }
        for i in 0..n {
            if self.net.failed[i] {
                continue;
            }
            let gp = if m.parent[i] == NONE { 0.0 } else { self.g_from_parent[i] };
            let mut xinv = (self.g_own[i] - gp) / m.x[i];
            for &c in &m.children[i] {
                xinv += (self.g_own[i] - self.g_from_child[c]) / m.x[c];
            }
            self.q_hat[i] -= s.alpha * (self.lam_up[i] - self.lam_lo[i] + xinv);
            q[i] = clip(self.q_hat[i], q_max[i]);
            let (lo, hi) = (-q_max[i], q_max[i]);
            let t = self.q_hat[i] + self.xi[i] / c_al;
            self.xi[i] = if t < lo {
                self.xi[i] + s.beta * (self.q_hat[i] - lo)
            } else if t > hi {
                self.xi[i] + s.beta * (self.q_hat[i] - hi)
            } else {
                (1.0 - s.beta / c_al) * self.xi[i]
            };
        }
    }
}
