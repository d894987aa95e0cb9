//! Droop control: each inverter sets its reactive power from its own voltage by a piecewise-linear
//! Volt/VAr curve (local, no communication).
//!
//! Curve (v1 < v2 ≤ v3 < v4, pu): q = +q_lim below v1 (inject to raise the voltage), linear to 0 at
//! v2, 0 on [v2, v3], linear to −q_lim at v4, −q_lim above. q_lim = `q_frac` · √(S² − p²).
//!
//! The environment measures voltages once per step, so a steep curve applied directly would
//! oscillate (the loop gain X·dq/dv exceeds 1 on the MAPDN feeders). Like MAPDN's MATLAB baseline
//! (q ← 0.9 q + 0.1 Q(v)), the setpoint moves a fraction `smoothing` towards the curve per step:
//! a first-order lag that converges to the curve's steady state.

use voltarena_env::{Controller, VoltageEnv};

pub use voltarena_env::action::DroopCurve;

/// Droop controller for every agent.
#[derive(Debug, Clone)]
pub struct Droop {
    pub curve: DroopCurve,
    /// Fraction of the gap to the curve closed per step (1 = apply the curve directly).
    pub smoothing: f64,
}

impl Droop {
    /// The first-order lag used when none is configured (MAPDN's baseline: q ← 0.9 q + 0.1 Q(v)).
    pub const DEFAULT_SMOOTHING: f64 = 0.1;
}

impl Default for Droop {
    fn default() -> Self {
        Droop { curve: DroopCurve::DEFAULT, smoothing: Droop::DEFAULT_SMOOTHING }
    }
}

/// Droop settings in a config file (every field optional; the defaults are [`Droop::default`]).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DroopSpec {
    /// `"mapdn"`, `"ieee1547_b"` or `"default"`; overridden by `curve` / `q_frac`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Breakpoints (v1, v2, v3, v4) in pu.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve: Option<[f64; 4]>,
    /// Reactive limit as a fraction of √(S² − p²), in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q_frac: Option<f64>,
    /// Fraction of the gap to the curve closed per step, in (0, 1] (1 = apply the curve directly;
    /// default [`Droop::DEFAULT_SMOOTHING`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoothing: Option<f64>,
}

impl DroopSpec {
    /// The controller, or what is wrong with the settings (naming the field).
    pub fn build(&self) -> Result<Droop, crate::ofo::OfoError> {
        use crate::ofo::OfoError;
        let mut curve = match self.preset.as_deref() {
            None | Some("default") => DroopCurve::DEFAULT,
            Some("mapdn") => DroopCurve::MAPDN,
            Some("ieee1547_b") => DroopCurve::IEEE1547_B,
            Some(p) => return Err(OfoError::Params(format!("droop.preset: unknown preset '{p}'; expected mapdn, ieee1547_b or default"))),
        };
        if let Some(c) = self.curve {
            if !(c[0] < c[1] && c[1] <= c[2] && c[2] < c[3]) {
                return Err(OfoError::Params(format!("droop.curve: needs v1 < v2 ≤ v3 < v4, got {c:?}")));
            }
            curve.v = c;
        }
        if let Some(f) = self.q_frac {
            if !(0.0..=1.0).contains(&f) {
                return Err(OfoError::Params(format!("droop.q_frac: expected a fraction in [0, 1], got {f}")));
            }
            curve.q_frac = f;
        }
        let smoothing = self.smoothing.unwrap_or(Droop::DEFAULT_SMOOTHING);
        if !(smoothing > 0.0 && smoothing <= 1.0) {
            return Err(OfoError::Params(format!("droop.smoothing: expected a number in (0, 1], got {smoothing}")));
        }
        Ok(Droop { curve, smoothing })
    }
}

impl Controller for Droop {
    fn name(&self) -> &str {
        "droop"
    }

    fn act(&mut self, env: &VoltageEnv, actions: &mut [f64]) {
        for (k, a) in actions.iter_mut().enumerate() {
            *a = voltarena_env::action::droop_action(env, k, &self.curve, self.smoothing);
        }
    }
}
