//! Two-metric update (10)–(11): the tentative setpoint of the nested method (local duals, one-hop
//! X⁻¹-scaled step), then a plain per-node clip instead of the X-norm projection. Cheap and fully
//! local, but the clip after a scaled step is not a valid scaled projection: fixed points are in
//! general not KKT points, and the method can stall or oscillate.

use super::nested::Nested;
use super::{clip, Network, OfoController, OfoModel, Steps};

#[derive(Debug, Clone)]
pub struct TwoMetric {
    model: OfoModel,
    steps: Steps,
    net: Network,
    lam_up: Vec<f64>,
    lam_lo: Vec<f64>,
    m_from_parent: Vec<f64>,
    m_from_child: Vec<f64>,
    m_missing: Vec<bool>,
    q_tilde: Vec<f64>,
}

impl TwoMetric {
    pub fn new(model: OfoModel, steps: Steps, net: Network) -> TwoMetric {
        let n = model.len();
        TwoMetric {
            model,
            steps,
            net,
            lam_up: vec![0.0; n],
            lam_lo: vec![0.0; n],
            m_from_parent: vec![0.0; n],
            m_from_child: vec![0.0; n],
            m_missing: vec![false; n],
            q_tilde: vec![0.0; n],
        }
    }
}

impl OfoController for TwoMetric {
    fn name(&self) -> &str {
        "two_metric"
    }

    /// m_i to the neighbours (one hop).
    fn communication(&self) -> voltarena_env::controller::Communication {
        self.model.neighbour_messages(1)
    }

    fn reset(&mut self) {
        self.lam_up.fill(0.0);
        self.lam_lo.fill(0.0);
        self.m_from_parent.fill(0.0);
        self.m_from_child.fill(0.0);
    }

    fn step(&mut self, v: &[f64], q_max: &[f64], q: &mut [f64]) {
        let s = self.steps;
        Nested::tentative_step(
            &self.model, &s, &mut self.net, &mut self.lam_up, &mut self.lam_lo,
            &mut self.m_from_parent, &mut self.m_from_child, &mut self.m_missing, v, q, &mut self.q_tilde,
        );
        for i in 0..self.model.len() {
            if !self.net.failed[i] {
                q[i] = clip(self.q_tilde[i], q_max[i]); // (10)
            }
        }
    }
}
