//! # voltarena-grid — the grid physics
//!
//! Everything about the feeder that needs nothing from the control task: the network model
//! ([`network`]: MATPOWER reader, detailed-JSON reader with pandapower's exact branch rows, per-unit
//! branch model, bus-admittance matrix, radial tree view) and the power-flow engine ([`powerflow`]:
//! AC Newton–Raphson, general sparse and radial tree-structured, the LinDistFlow model with its
//! sensitivities and O(n) tree products, and the batch path that solves many scenarios on one
//! network over threads). The task, the multi-agent environment and the safety layers live in
//! `voltarena-env`, on top of this crate.
//!
//! Units: powers at the API are MW / Mvar in **generator convention** (positive = injected into the
//! grid, a load is negative); voltages are per unit of the bus base voltage; angles are radians
//! inside the solvers and degrees in JSON output. Everything is converted to per unit on the
//! case's `baseMVA` in one place ([`powerflow::Injection`] consumers divide by `base_mva`).
//!
//! ```
//! use voltarena_grid::{AcOptions, AcSolver, Injection, Network, Solution};
//!
//! let net = Network::from_matpower_file("../data/networks/case33bw.m")?;
//! let mut solver = AcSolver::new(&net, AcOptions::default())?; // analyses the network once
//! let mut sol = Solution::new(net.n_bus());
//! let (p_mw, q_mvar) = net.injections();
//! let info = solver.solve(Injection { p_mw: &p_mw, q_mvar: &q_mvar }, &mut sol)?; // no allocation
//! // Baran & Wu's classic figures: 202.7 kW of losses, 0.9131 pu at bus 18.
//! assert!((info.p_loss_mw - 0.20268).abs() < 1e-5);
//! assert!((sol.vm_pu[17] - 0.91309).abs() < 1e-5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Nothing in this crate panics on user data: malformed networks give a
//! [`network::NetworkError`] naming file, line and field; non-convergence is a
//! [`powerflow::PowerFlowError`] value.

// `!(x <= y)` is used on purpose throughout: it is true for NaN, which must count as a failure.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod network;
pub mod powerflow;

pub use network::{Network, NetworkError};
pub use powerflow::{
    AcOptions, AcSolver, Algorithm, Injection, LinDistFlow, LinDistFlowForm, PowerFlowError,
    Solution, SolveInfo,
};

/// Complex number type used throughout the physics.
pub type C64 = num_complex::Complex64;
