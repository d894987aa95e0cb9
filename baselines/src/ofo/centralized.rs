//! Centralized primal–dual gradient projection (9a)–(9c).
//!
//! Every node sends its voltage to the operator, which updates all duals (9a)–(9b) and broadcasts
//! them; every node then takes the projected gradient step (9c)
//! q ← Proj_Q[q − β((2C + εI) q + X(λ̄ − λ̲))]. The operator holds the full model (X·y by tree sweeps).

use super::{clip, dual_update, OfoController, OfoModel, Steps};

#[derive(Debug, Clone)]
pub struct Centralized {
    model: OfoModel,
    steps: Steps,
    lam_up: Vec<f64>,
    lam_lo: Vec<f64>,
    diff: Vec<f64>,
    x_diff: Vec<f64>,
    /// λ̄ − λ̲ and R(λ̄ − λ̲), for the curtailment step.
    lam: Vec<f64>,
    r_lam: Vec<f64>,
}

impl Centralized {
    pub fn new(model: OfoModel, steps: Steps) -> Centralized {
        let n = model.len();
        Centralized { model, steps, lam_up: vec![0.0; n], lam_lo: vec![0.0; n], diff: vec![0.0; n], x_diff: vec![0.0; n], lam: vec![0.0; n], r_lam: vec![0.0; n] }
    }

    /// Duals (λ̄, λ̲) (kVar²/pu).
    pub fn duals(&self) -> (&[f64], &[f64]) {
        (&self.lam_up, &self.lam_lo)
    }
}

impl OfoController for Centralized {
    fn name(&self) -> &str {
        "centralized"
    }

    /// Every node's voltage up to the operator, X(λ̄ − λ̲) down to every inverter.
    fn communication(&self) -> voltarena_env::controller::Communication {
        voltarena_env::controller::Communication { reach: voltarena_env::controller::Reach::Central, messages_per_step: self.model.len() + self.model.n_inverters() }
    }

    fn reset(&mut self) {
        self.lam_up.fill(0.0);
        self.lam_lo.fill(0.0);
    }

    /// §IV-I: curtailment c by projected gradient on the Lagrangian, with ∂v/∂c = −R, scaled by 1/w
    /// so that its contraction 1 − 2β does not depend on the weight:
    /// c ← Proj_[0, p_avail][c − (β/w)(2 w c − R(λ̄ − λ̲))] — it curtails where the duals say voltage
    /// is worth more than w c² of energy.
    fn curtail(&mut self, p_avail: &[f64], c: &mut [f64]) -> bool {
        let (m, s) = (&self.model, &self.steps);
        if s.curtail_weight <= 0.0 {
            return false;
        }
        for i in 0..m.len() {
            self.lam[i] = self.lam_up[i] - self.lam_lo[i];
        }
        m.r_times(&self.lam, &mut self.r_lam);
        for i in 0..m.len() {
            let grad = 2.0 * s.curtail_weight * c[i] - self.r_lam[i];
            c[i] = (c[i] - s.beta / s.curtail_weight * grad).clamp(0.0, p_avail[i].max(0.0));
        }
        true
    }

    fn step(&mut self, v: &[f64], q_max: &[f64], q: &mut [f64]) {
        let m = &self.model;
        let s = &self.steps;
        for i in 0..m.len() {
            dual_update(&mut self.lam_up[i], &mut self.lam_lo[i], v[i], m.v_min, m.v_max, s.alpha, s.eta); // (9a), (9b)
            self.diff[i] = self.lam_up[i] - self.lam_lo[i];
            if s.weighted {
                // §IV-H: ∇(qᵀXq) = 2Xq joins the dual term under the one sweep.
                self.diff[i] += 2.0 * q[i];
            }
        }
        m.x_times(&self.diff, &mut self.x_diff);
        for i in 0..m.len() {
            let own = if s.weighted { s.epsilon } else { 2.0 * m.c[i] + s.epsilon };
            let grad = own * q[i] + self.x_diff[i];
            q[i] = clip(q[i] - s.beta * grad, q_max[i]); // (9c)
        }
    }
}
