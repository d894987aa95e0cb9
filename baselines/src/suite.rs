//! Building baseline controllers from TOML, and running OFO controllers inside the environment.

use crate::droop::{Droop, DroopCurve};
use crate::ofo::centralized::Centralized;
use crate::ofo::nested::Nested;
use crate::ofo::qu2020::Qu2020;
use crate::ofo::tang2024::Tang2024;
use crate::ofo::two_metric::TwoMetric;
use crate::ofo::{Network, OfoController, OfoError, OfoModel, StepSpec};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use voltarena_env::controller::NoControl;
use voltarena_env::{Controller, Task, VoltageEnv};

/// Droop settings in a config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DroopSpec {
    /// `"mapdn"`, `"ieee1547_b"` or `"default"`; overridden by `curve` / `q_frac`.
    #[serde(default)]
    pub preset: Option<String>,
    /// Breakpoints (v1, v2, v3, v4) in pu.
    #[serde(default)]
    pub curve: Option<[f64; 4]>,
    #[serde(default)]
    pub q_frac: Option<f64>,
    /// Fraction of the gap to the curve closed per step (1 = apply the curve directly).
    #[serde(default)]
    pub smoothing: Option<f64>,
}

impl DroopSpec {
    pub fn build(&self) -> Result<Droop, OfoError> {
        let mut curve = match self.preset.as_deref() {
            None | Some("default") => DroopCurve::DEFAULT,
            Some("mapdn") => DroopCurve::MAPDN,
            Some("ieee1547_b") => DroopCurve::IEEE1547_B,
            Some(p) => return Err(OfoError::Params(format!("unknown droop preset '{p}'; expected mapdn, ieee1547_b or default"))),
        };
        if let Some(c) = self.curve {
            if !(c[0] < c[1] && c[1] <= c[2] && c[2] < c[3]) {
                return Err(OfoError::Params(format!("droop curve needs v1 < v2 ≤ v3 < v4, got {c:?}")));
            }
            curve.v = c;
        }
        if let Some(f) = self.q_frac {
            if !(0.0..=1.0).contains(&f) {
                return Err(OfoError::Params(format!("droop q_frac must be in [0, 1], got {f}")));
            }
            curve.q_frac = f;
        }
        let smoothing = self.smoothing.unwrap_or(1.0);
        if !(smoothing > 0.0 && smoothing <= 1.0) {
            return Err(OfoError::Params(format!("droop smoothing must be in (0, 1], got {smoothing}")));
        }
        Ok(Droop { curve, smoothing })
    }
}

/// The comparison controllers of a baseline config, by their fixed names.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerSet {
    pub none: Option<Empty>,
    pub droop: Option<DroopSpec>,
    pub centralized: Option<StepSpec>,
    pub nested: Option<StepSpec>,
    pub two_metric: Option<StepSpec>,
    pub qu2020: Option<StepSpec>,
    pub tang2024: Option<StepSpec>,
}

/// A controller entry without settings (`[controllers.none]`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Communication faults for the distributed controllers.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Failed nodes, as bus indices.
    pub failed_buses: Vec<usize>,
    pub drop_prob: f64,
    pub seed: u64,
}

impl ControllerSet {
    /// The configured names, in the fixed order none, droop, centralized, nested, two_metric,
    /// qu2020, tang2024.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.none.is_some() { v.push("none"); }
        if self.droop.is_some() { v.push("droop"); }
        if self.centralized.is_some() { v.push("centralized"); }
        if self.nested.is_some() { v.push("nested"); }
        if self.two_metric.is_some() { v.push("two_metric"); }
        if self.qu2020.is_some() { v.push("qu2020"); }
        if self.tang2024.is_some() { v.push("tang2024"); }
        v
    }

    /// Builds one configured controller for the task's environment.
    pub fn build(&self, name: &str, task: &Task, faults: &Faults) -> Result<Box<dyn Controller>, OfoError> {
        let ofo = |spec: &StepSpec, make: &dyn Fn(OfoModel, crate::ofo::Steps, Network) -> Box<dyn OfoController>| -> Result<Box<dyn Controller>, OfoError> {
            let model = OfoModel::from_task(task)?;
            let steps = spec.resolve(&model)?;
            let failed: Vec<usize> = faults.failed_buses.iter().filter_map(|b| model.bus.iter().position(|x| x == b)).collect();
            let net = Network::new(model.len(), &failed, faults.drop_prob, faults.seed);
            Ok(Box::new(OfoAgent::new(model.clone(), make(model, steps, net))))
        };
        match name {
            "none" => Ok(Box::new(NoControl)),
            "droop" => Ok(Box::new(self.droop.clone().unwrap_or(DroopSpec { preset: None, curve: None, q_frac: None, smoothing: None }).build()?)),
            "centralized" => ofo(self.centralized.as_ref().ok_or_else(|| missing(name))?, &|m, s, _| Box::new(Centralized::new(m, s))),
            "nested" => ofo(self.nested.as_ref().ok_or_else(|| missing(name))?, &|m, s, n| Box::new(Nested::new(m, s, n))),
            "two_metric" => ofo(self.two_metric.as_ref().ok_or_else(|| missing(name))?, &|m, s, n| Box::new(TwoMetric::new(m, s, n))),
            "qu2020" => ofo(self.qu2020.as_ref().ok_or_else(|| missing(name))?, &|m, s, n| Box::new(Qu2020::new(m, s, n))),
            "tang2024" => ofo(self.tang2024.as_ref().ok_or_else(|| missing(name))?, &|m, s, n| Box::new(Tang2024::new(m, s, n))),
            _ => Err(OfoError::Params(format!("unknown controller '{name}'; expected none, droop, centralized, nested, two_metric, qu2020 or tang2024"))),
        }
    }
}

fn missing(name: &str) -> OfoError {
    OfoError::Params(format!("controller '{name}' is not configured"))
}

/// Runs an [`OfoController`] as an environment [`Controller`]: each node reads its own measured
/// voltage and reactive limit from the environment; the new setpoints become actions.
pub struct OfoAgent {
    model: OfoModel,
    inner: Box<dyn OfoController>,
    v: Vec<f64>,
    q_max: Vec<f64>,
    q: Vec<f64>,
    /// Wall time spent inside the controller's updates (s) and the number of updates.
    pub seconds: f64,
    pub iterations: usize,
    /// Setpoints the controller returned as NaN/∞ (replaced by the setpoint in force).
    pub nonfinite: usize,
}

impl OfoAgent {
    pub fn new(model: OfoModel, inner: Box<dyn OfoController>) -> OfoAgent {
        let n = model.len();
        OfoAgent { model, inner, v: vec![0.0; n], q_max: vec![0.0; n], q: vec![0.0; n], seconds: 0.0, iterations: 0, nonfinite: 0 }
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

    fn reset(&mut self, _env: &VoltageEnv, _seed: u64) {
        self.inner.reset();
        self.seconds = 0.0;
        self.iterations = 0;
    }

    fn act(&mut self, env: &VoltageEnv, actions: &mut [f64]) {
        for i in 0..self.model.len() {
            let l = env.local(self.model.agent[i]);
            self.v[i] = l.v_pu;
            self.q_max[i] = l.q_avail_mvar * 1000.0;
            self.q[i] = l.q_mvar * 1000.0;
        }
        let t0 = Instant::now();
        self.inner.step(&self.v, &self.q_max, &mut self.q);
        self.seconds += t0.elapsed().as_secs_f64();
        self.iterations += 1;
        for i in 0..self.model.len() {
            let l = env.local(self.model.agent[i]);
            if !self.q[i].is_finite() {
                // A diverging controller (e.g. too large steps) keeps the setpoint in force
                // rather than sending garbage to the inverter; its state stays as it is.
                self.q[i] = l.q_mvar * 1000.0;
                self.nonfinite += 1;
            }
            // kVar on both sides of the one action map.
            let full = voltarena_env::action::q_range(l.action_scale, l.q_avail_mvar) * 1000.0;
            actions[self.model.agent[i]] = voltarena_env::action::action_of_q(self.q[i], full);
        }
    }

    fn seconds_per_iteration(&self) -> Option<f64> {
        (self.iterations > 0).then(|| self.seconds / self.iterations as f64)
    }
}
