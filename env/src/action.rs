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
