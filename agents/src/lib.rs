//! Multi-agent reinforcement learning for voltage control on `tch` (libtorch): MADDPG and MATD3
//! with centralised critics, decentralised execution and parameter sharing (one actor for all
//! agents, a one-hot agent id appended to each observation).
//!
//! One file, one job:
//!
//! * [`adam`] — Adam in Rust on the parameters' data (the same numbers on every CPU vendor);
//! * [`buffer`] — the preallocated replay buffer of joint transitions, uniform sampling;
//! * [`checkpoint`] — the resumable checkpoint format (`resume.bin`, replay segments, manifest with
//!   SHA-256): a killed run resumes bit for bit;
//! * [`config`] — a training run as written in `configs/*.toml` ([`config::TrainConfig`]): every
//!   key with its unit and default, and its validation;
//! * [`maddpg`], [`matd3`] — each algorithm, readable top to bottom, with its hyperparameters in
//!   one struct (the `[maddpg]` / `[matd3]` tables);
//! * [`nets`] — the shared actor (feed-forward or GRU) and the centralised critics;
//! * [`normalize`] — optional running normalisation of observations, states and rewards;
//! * [`numerics`] — pins libtorch's CPU kernels, so that a run gives the same numbers on any AVX2 CPU;
//! * [`policy`] — a trained policy as a `Controller`;
//! * [`run`] — a run directory and the system it deploys;
//! * [`train`] — the training loop, training-time evaluation and checkpoints;
//! * [`validate`] — range checks of config keys, naming the key that is out of range.

pub mod adam;
pub mod buffer;
pub mod checkpoint;
pub mod config;
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
