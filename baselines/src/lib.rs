//! Model-based voltage controllers: droop (Volt/VAr curves) and the online-feedback-optimization
//! family of Zhan et al. (TPWRS 2025) with its comparison controllers — centralized primal–dual
//! gradient projection, nested distributed OFO, two-metric, Qu & Li 2020, Tang 2024.
//! [`spec`] is the controller registry every command builds controllers from.
//! Depends on `voltarena-env` only, never on libtorch.

pub mod droop;
pub mod ofo;
pub mod spec;

pub use droop::{Droop, DroopCurve, DroopSpec};
pub use spec::{ControllerSet, ControllerSpec, Faults, OfoKind, SpecError};
