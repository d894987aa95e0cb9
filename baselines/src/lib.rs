//! Model-based voltage controllers: droop (Volt/VAr curves) now; the online-feedback-optimization
//! family arrives with the baselines issue. Depends on `voltarena-env` only, never on libtorch.

pub mod droop;

pub use droop::{Droop, DroopCurve};
