//! An [`OfoController`] as an environment [`Controller`]: each node reads its own measured voltage
//! and reactive limit, the new setpoints become actions through the one action map. A node without
//! an inverter measures its voltage (its dual watches it) and has no reactive power (q̄ = 0).

use super::{OfoController, OfoModel};
use std::time::Instant;
use voltarena_env::{Controller, VoltageEnv};

/// Runs an [`OfoController`] as an environment [`Controller`]: each node reads its own measured
/// voltage and reactive limit from the environment; the new setpoints become actions.
pub struct OfoAgent {
    model: OfoModel,
    inner: Box<dyn OfoController>,
    v: Vec<f64>,
    q_max: Vec<f64>,
    q: Vec<f64>,
    /// Curtailment (kW, node order), PV power on offer (kW) and the caps it sets (MW, per agent).
    c: Vec<f64>,
    p_avail: Vec<f64>,
    caps: Vec<f64>,
    curtails: bool,
    /// Wall time spent inside the controller's updates (s) and the number of updates.
    pub seconds: f64,
    pub iterations: usize,
    /// Setpoints the controller returned as NaN/∞ (replaced by the setpoint in force).
    pub nonfinite: usize,
}

impl OfoAgent {
    pub fn new(model: OfoModel, inner: Box<dyn OfoController>) -> OfoAgent {
        let n = model.len();
        let na = model.agent.iter().flatten().map(|k| k + 1).max().unwrap_or(0);
        OfoAgent { model, inner, v: vec![0.0; n], q_max: vec![0.0; n], q: vec![0.0; n], c: vec![0.0; n], p_avail: vec![0.0; n], caps: vec![f64::INFINITY; na], curtails: false, seconds: 0.0, iterations: 0, nonfinite: 0 }
    }

    /// Setpoints after the last update (kVar, node order).
    pub fn setpoints(&self) -> &[f64] {
        &self.q
    }

    pub fn model(&self) -> &OfoModel {
        &self.model
    }
}

impl Controller for OfoAgent {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn reset(&mut self, env: &VoltageEnv, _seed: u64) {
        self.inner.reset();
        self.c.fill(0.0);
        self.caps.clear();
        self.caps.resize(env.n_agents(), f64::INFINITY);
        self.seconds = 0.0;
        self.iterations = 0;
    }

    fn act(&mut self, env: &VoltageEnv, actions: &mut [f64]) {
        for i in 0..self.model.len() {
            match self.model.agent[i] {
                Some(k) => {
                    let l = env.local(k);
                    self.v[i] = l.v_pu;
                    self.q_max[i] = l.q_avail_mvar * 1000.0;
                    self.q[i] = l.q_mvar * 1000.0;
                }
                None => {
                    self.v[i] = env.measured_vm()[self.model.bus[i]];
                    self.q_max[i] = 0.0;
                    self.q[i] = 0.0;
                }
            }
        }
        let t0 = Instant::now();
        self.inner.step(&self.v, &self.q_max, &mut self.q);
        for i in 0..self.model.len() {
            self.p_avail[i] = self.model.agent[i].map(|k| env.pv_available_mw()[k] * 1000.0).unwrap_or(0.0);
        }
        self.curtails = self.inner.curtail(&self.p_avail, &mut self.c);
        if self.curtails {
            for i in 0..self.model.len() {
                if let Some(k) = self.model.agent[i] {
                    self.caps[k] = (self.p_avail[i] - self.c[i]).max(0.0) / 1000.0;
                }
            }
        }
        self.seconds += t0.elapsed().as_secs_f64();
        self.iterations += 1;
        // Agents the model has no node for (an inverter at the slack bus) stay at q = 0.
        actions.fill(0.0);
        for i in 0..self.model.len() {
            let Some(k) = self.model.agent[i] else { continue };
            let l = env.local(k);
            if !self.q[i].is_finite() {
                // A diverging controller (e.g. too large steps) keeps the setpoint in force
                // rather than sending garbage to the inverter; its state stays as it is.
                self.q[i] = l.q_mvar * 1000.0;
                self.nonfinite += 1;
            }
            // kVar on both sides of the one action map.
            let full = voltarena_env::action::q_range(l.action_scale, l.q_avail_mvar) * 1000.0;
            actions[k] = voltarena_env::action::action_of_q(self.q[i], full);
        }
    }

    fn curtailment(&self) -> Option<&[f64]> {
        self.curtails.then_some(&self.caps[..])
    }

    fn communication(&self, _task: &voltarena_env::Task) -> voltarena_env::controller::Communication {
        self.inner.communication()
    }

    fn seconds_per_iteration(&self) -> Option<f64> {
        (self.iterations > 0).then(|| self.seconds / self.iterations as f64)
    }
}
