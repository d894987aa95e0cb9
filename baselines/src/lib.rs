//! Model-based voltage controllers: droop (Volt/VAr curves) and the online-feedback-optimization
//! family of Zhan et al. (TPWRS 2025) with its comparison controllers — centralized primal–dual
//! gradient projection, nested distributed OFO, two-metric, Qu & Li 2020, Tang 2024.
//! Depends on `voltarena-env` only, never on libtorch.

pub mod droop;
pub mod ofo;
pub mod suite;

pub use droop::{Droop, DroopCurve};
