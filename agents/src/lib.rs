//! Multi-agent reinforcement-learning controllers (MADDPG, MATD3) on `tch`.
//!
//! Placeholder crate: the algorithms arrive with the agents issue.
