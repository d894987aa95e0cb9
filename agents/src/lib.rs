//! Multi-agent reinforcement learning for voltage control on `tch` (libtorch): MADDPG and MATD3
//! with centralised critics, decentralised execution and parameter sharing (one actor for all
//! agents, a one-hot agent id appended to each observation).
//!
//! Each algorithm is one readable file (`maddpg.rs`, `matd3.rs`) with its hyperparameters in one
//! struct; `nets.rs` holds the shared actor and critic, `buffer.rs` the replay buffer,
//! `normalize.rs` optional running normalisation, `train.rs` the training loop and evaluation, `policy.rs` a trained policy as a `Controller`.

pub mod buffer;
pub mod maddpg;
pub mod matd3;
pub mod nets;
pub mod normalize;
pub mod numerics;
pub mod policy;
pub mod run;
pub mod train;
pub mod validate;

/// The libtorch this crate is built for (tch 0.26 requires PyTorch 2.13.0), for run provenance.
pub const LIBTORCH_VERSION: &str = "2.13.0";
/// The tch version.
pub const TCH_VERSION: &str = "0.26.0";
