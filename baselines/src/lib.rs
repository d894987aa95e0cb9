//! Model-based voltage controllers (droop, the online-feedback-optimization family).
//!
//! Placeholder crate: the controllers arrive with the baselines issue. It depends on
//! `voltarena-env` only, never on libtorch.
