//! The one map between an agent's action and its inverter's reactive setpoint.
//!
//! An action a ∈ [−1, 1] asks for q = a · scale · q̄ (Mvar, generator convention), where
//! q̄ = √(S² − p²) is the reactive power the inverter of rating S (MVA) has left at active power p
//! (MW), and `scale` is the task's `action_scale`. Everything that converts between the two —
//! the environment, droop, the OFO controllers, the safety layers — calls these functions, so the
//! conversion is written once (and the arithmetic, hence every published number, stays the same).

/// Reactive power available at an inverter of rating `s_mva` producing `p_mw`: √(S² − p²) (Mvar;
/// 0 when p ≥ S).
#[inline]
pub fn q_available(s_mva: f64, p_mw: f64) -> f64 {
    (s_mva * s_mva - p_mw * p_mw).max(0.0).sqrt()
}

/// The setpoint an action asks for: clamp(a, −1, 1) · scale · q̄ (Mvar).
#[inline]
pub fn q_of_action(a: f64, scale: f64, q_avail: f64) -> f64 {
    a.clamp(-1.0, 1.0) * scale * q_avail
}

/// The range of setpoints the actions reach: |q| ≤ scale · q̄ (the setpoint of a = 1).
#[inline]
pub fn q_range(scale: f64, q_avail: f64) -> f64 {
    scale * q_avail
}

/// The action that asks for setpoint `q`, in the units of `q_range` (see [`q_range`]), clipped to
/// [−1, 1]; 0 when the inverter has no reactive power left.
#[inline]
pub fn action_of_q(q: f64, q_range: f64) -> f64 {
    if q_range > 0.0 {
        (q / q_range).clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

/// A Volt/VAr curve.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DroopCurve {
    /// Breakpoints (pu).
    pub v: [f64; 4],
    /// Reactive limit as a fraction of the available √(S² − p²).
    pub q_frac: f64,
}

impl DroopCurve {
    /// MAPDN's MATLAB baseline: q = clip(q_max (1 − v)/0.05, ±q_max).
    pub const MAPDN: DroopCurve = DroopCurve { v: [0.95, 1.0, 1.0, 1.05], q_frac: 1.0 };
    /// IEEE 1547-2018 Category B default curve, limit 44 % of rated kVA (capped by √(S² − p²)).
    pub const IEEE1547_B: DroopCurve = DroopCurve { v: [0.92, 0.98, 1.02, 1.08], q_frac: 0.44 };
    /// The curve used when none is configured: full range inside the 0.95–1.05 pu band.
    pub const DEFAULT: DroopCurve = DroopCurve { v: [0.95, 0.98, 1.02, 1.05], q_frac: 1.0 };

    /// q / q_lim ∈ [−1, 1] at voltage v.
    pub fn response(&self, v: f64) -> f64 {
        let [v1, v2, v3, v4] = self.v;
        if v <= v1 {
            1.0
        } else if v < v2 {
            (v2 - v) / (v2 - v1)
        } else if v <= v3 {
            0.0
        } else if v < v4 {
            -(v - v3) / (v4 - v3)
        } else {
            -1.0
        }
    }
}

/// Agent `k`'s droop action at the environment's current state: the target on `curve` at its bus
/// voltage, then a first-order step of `smoothing` from the setpoint in force (1 = the curve
/// directly). What the droop controller (`voltarena_baselines::Droop`) does, and the base of a droop-residual policy
/// (`voltarena_env::deploy::Residual::Droop`).
pub fn droop_action(env: &crate::VoltageEnv, k: usize, curve: &DroopCurve, smoothing: f64) -> f64 {
    droop_actions(env, k, curve, smoothing).0
}

/// Agent `k`'s droop action (as [`droop_action`]) and the curve's own target at its bus voltage
/// (the setpoint the filter moves towards, the action with `smoothing` = 1), both in action units.
pub fn droop_actions(env: &crate::VoltageEnv, k: usize, curve: &DroopCurve, smoothing: f64) -> (f64, f64) {
    droop_step_from(env, k, curve, smoothing, env.local(k).q_mvar)
}

/// Agent `k`'s droop step as [`droop_actions`], but from setpoint `from_q_mvar` instead of the one
/// in force: (action, the curve's target action). With `from_q_mvar` = droop's own previous
/// setpoint, this is droop running on its own whatever else is added to its output
/// (`voltarena_env::deploy::Residual::DroopOffset`).
pub fn droop_step_from(env: &crate::VoltageEnv, k: usize, curve: &DroopCurve, smoothing: f64, from_q_mvar: f64) -> (f64, f64) {
    let l = env.local(k);
    let target = curve.response(l.v_pu) * curve.q_frac * l.q_avail_mvar;
    let q = from_q_mvar + smoothing * (target - from_q_mvar);
    let range = q_range(l.action_scale, l.q_avail_mvar);
    (action_of_q(q, range), action_of_q(target, range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let (s, p, scale) = (0.5, 0.3, 0.8);
        let avail = q_available(s, p);
        assert!((avail - 0.4).abs() < 1e-15);
        for a in [-1.0, -0.37, 0.0, 0.5, 1.0] {
            let q = q_of_action(a, scale, avail);
            assert!((action_of_q(q, q_range(scale, avail)) - a).abs() < 1e-15);
        }
        // Out-of-range actions and setpoints are clipped; no capacity means no action.
        assert_eq!(q_of_action(3.0, scale, avail), q_of_action(1.0, scale, avail));
        assert_eq!(action_of_q(10.0, q_range(scale, avail)), 1.0);
        assert_eq!(q_available(0.5, 0.7), 0.0);
        assert_eq!(action_of_q(0.1, 0.0), 0.0);
    }
}
