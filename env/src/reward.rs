//! MAPDN's voltage barrier functions and the team reward.
//!
//! r = −( mean_i l_v(v_i) + α · mean_k |q_k| [+ w · mean branch loss] ), v in pu, q in Mvar,
//! losses in MW; the bus set of the mean is the task's `metric_buses`.

use serde::{Deserialize, Serialize};

/// Voltage barrier l_v(v) (MAPDN, `docs/ENVIRONMENT.md` has the table of reference values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Barrier {
    /// |v − 1|
    #[default]
    L1,
    /// 2 (v − 1)²
    L2,
    /// 2|v − 1| − 0.095 outside ±0.05, else −0.01·φ(v; 1, 0.1) + 0.04 (a Gaussian bowl).
    Bowl,
    /// exp(−1/(1 − (1 − |v − 1|)⁴)) for |v − 1| < 1, else 0 (MAPDN's `bump` written in v − 1).
    Bump,
    /// max(0, v − v_max)² + max(0, v_min − v)²
    CourantBeltrami,
    /// max(0, |v − 1| − 0.02) + 10·(max(0, v − v_max) + max(0, v_min − v)): no incentive inside
    /// droop's dead band (0.98–1.02 pu), a linear pull outside it, and a 10× steeper wall beyond the
    /// limits — so reactive power is only worth spending where voltages approach the limits.
    DeadBand,
}

impl Barrier {
    /// The barrier's value at voltage `v` (pu), with the task's limits (Courant–Beltrami only).
    #[inline]
    pub fn value(self, v: f64, v_min: f64, v_max: f64) -> f64 {
        let d = v - 1.0;
        match self {
            Barrier::L1 => d.abs(),
            Barrier::L2 => 2.0 * d * d,
            Barrier::Bowl => {
                if d.abs() > 0.05 {
                    2.0 * d.abs() - 0.095
                } else {
                    const SIGMA: f64 = 0.1;
                    let phi = (-d * d / (2.0 * SIGMA * SIGMA)).exp() / (2.0 * std::f64::consts::PI * SIGMA * SIGMA).sqrt();
                    -0.01 * phi + 0.04
                }
            }
            Barrier::Bump => {
                let a = d.abs();
                if a > 0.0 && a < 1.0 {
                    let w = (1.0 - a).powi(4);
                    (-1.0 / (1.0 - w)).exp()
                } else {
                    0.0
                }
            }
            Barrier::CourantBeltrami => {
                let hi = (v - v_max).max(0.0);
                let lo = (v_min - v).max(0.0);
                hi * hi + lo * lo
            }
            Barrier::DeadBand => (d.abs() - 0.02).max(0.0) + 10.0 * ((v - v_max).max(0.0) + (v_min - v).max(0.0)),
        }
    }
}

impl std::str::FromStr for Barrier {
    type Err = String;
    fn from_str(s: &str) -> Result<Barrier, String> {
        match s {
            "l1" => Ok(Barrier::L1),
            "l2" => Ok(Barrier::L2),
            "bowl" => Ok(Barrier::Bowl),
            "bump" => Ok(Barrier::Bump),
            "courant_beltrami" => Ok(Barrier::CourantBeltrami),
            "dead_band" => Ok(Barrier::DeadBand),
            _ => Err(format!("unknown barrier '{s}'; expected l1, l2, bowl, bump, courant_beltrami or dead_band")),
        }
    }
}
