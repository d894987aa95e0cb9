//! # voltarena-env — the control task
//!
//! The task a controller faces, on top of the grid physics of [`voltarena_grid`]: load and PV
//! profiles with their day splits ([`profiles`]), TOML task specs ([`task`]), the multi-agent
//! voltage-control environment (Dec-POMDP, PettingZoo-style parallel API: [`VoltageEnv`], and
//! [`vector::VecEnv`] over threads), rewards ([`reward`]) and metrics ([`metrics`]), the
//! [`Controller`] interface ([`controller`]) with the one deployed-controller pipeline every
//! command evaluates through ([`deploy`]), and the action wrappers between any controller and the
//! grid: the action dead zone and the safety layers ([`safety`]: projection filter and CBF
//! correction, a QP on the LinDistFlow sensitivities).
//!
//! Units as in `voltarena-grid`: MW / Mvar in generator convention, voltages in pu. Actions are
//! a ∈ [−1, 1] per agent; [`action`] defines the one map between actions and reactive setpoints.
//!
//! The physics is re-exported here ([`network`], [`powerflow`] and their main types), so that a
//! user of the environment needs one crate.

// `!(x <= y)` is used on purpose throughout: it is true for NaN, which must count as a failure.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod action;
pub mod controller;
pub mod deploy;
pub mod env;
pub mod metrics;
pub mod profiles;
pub mod reward;
pub mod safety;
pub mod task;
pub mod vector;

pub use controller::Controller;
pub use deploy::{ActionPipeline, Deployed, Deployment, Evaluation, Rollout};
pub use env::{EnvError, ResetOptions, Spaces, Step, VoltageEnv};
pub use metrics::{MetricsAcc, MetricsSummary, StepMetrics};
pub use voltarena_grid::{network, powerflow, Network, NetworkError, C64};
pub use profiles::Split;
pub use task::{Task, TaskError};
pub use voltarena_grid::powerflow::{
    AcOptions, AcSolver, Algorithm, Injection, LinDistFlow, LinDistFlowForm, PowerFlowError,
    Solution, SolveInfo,
};

