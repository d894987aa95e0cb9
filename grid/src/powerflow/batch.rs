//! Batch power flow: S scenarios (injection vectors) on one network in one call.
//!
//! The solver is built once (tree analysis or sparse symbolic LU) and cloned per worker thread;
//! scenarios are split into contiguous chunks, each thread writes its rows of the preallocated
//! output directly. Every scenario starts from the same cold start, so results do not depend on
//! the number of threads.

use super::{AcOptions, AcSolver, Injection, LinDistFlow, LinDistFlowForm, PowerFlowError, Solution};
use crate::network::Network;

/// The physics used for a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    Ac(AcOptions),
    LinDistFlow(LinDistFlowForm),
}

/// Results of a batch, rows in scenario order, each row in bus order (row-major S × n).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOutput {
    pub n_bus: usize,
    /// Voltage magnitudes (pu); NaN for a scenario that failed.
    pub vm_pu: Vec<f64>,
    /// Voltage angles (rad); NaN for a scenario that failed.
    pub va_rad: Vec<f64>,
    pub converged: Vec<bool>,
    pub iterations: Vec<u32>,
    /// Branch active losses (MW); NaN for a scenario that failed.
    pub p_loss_mw: Vec<f64>,
    /// The error of each failed scenario (None where converged).
    pub errors: Vec<Option<PowerFlowError>>,
}

impl BatchOutput {
    /// Row `s` of the voltage magnitudes.
    pub fn vm_row(&self, s: usize) -> &[f64] {
        &self.vm_pu[s * self.n_bus..(s + 1) * self.n_bus]
    }

    /// Row `s` of the voltage angles.
    pub fn va_row(&self, s: usize) -> &[f64] {
        &self.va_rad[s * self.n_bus..(s + 1) * self.n_bus]
    }
}

#[derive(Clone)]
enum Engine {
    Ac(AcSolver),
    Ldf(LinDistFlow),
}

impl Engine {
    fn solve(&mut self, inj: Injection, sol: &mut Solution) -> Result<super::SolveInfo, PowerFlowError> {
        match self {
            Engine::Ac(s) => s.solve(inj, sol),
            Engine::Ldf(s) => s.solve(inj, sol),
        }
    }
}

/// Solves every scenario. `p_mw` and `q_mvar` are row-major S × n (one row per scenario, bus
/// order, generator convention). `threads = 0` uses all available cores.
///
/// Errors only for a bad call (shape mismatch, unsuitable network); a scenario that diverges or
/// holds a non-finite injection is reported in its row (`converged = false`, `errors[s]`).
pub fn solve_batch(
    net: &Network,
    method: Method,
    p_mw: &[f64],
    q_mvar: &[f64],
    threads: usize,
) -> Result<BatchOutput, PowerFlowError> {
    let n = net.n_bus();
    if p_mw.len() != q_mvar.len() || p_mw.len() % n != 0 {
        return Err(PowerFlowError::InvalidInjection(format!(
            "batch arrays must both hold S × {n} values; got {} and {}",
            p_mw.len(),
            q_mvar.len()
        )));
    }
    let scenarios = p_mw.len() / n;
    let engine = match method {
        Method::Ac(mut o) => {
            o.warm_start = false;
            Engine::Ac(AcSolver::new(net, o)?)
        }
        Method::LinDistFlow(form) => Engine::Ldf(LinDistFlow::new(net, form)?),
    };
    let mut out = BatchOutput {
        n_bus: n,
        vm_pu: vec![f64::NAN; scenarios * n],
        va_rad: vec![f64::NAN; scenarios * n],
        converged: vec![false; scenarios],
        iterations: vec![0; scenarios],
        p_loss_mw: vec![f64::NAN; scenarios],
        errors: vec![None; scenarios],
    };
    if scenarios == 0 {
        return Ok(out);
    }
    let threads = if threads == 0 {
        std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1)
    } else {
        threads
    };
    let threads = threads.clamp(1, scenarios);
    let chunk = scenarios.div_ceil(threads);

    let run = |engine: &mut Engine,
               first: usize,
               vm: &mut [f64],
               va: &mut [f64],
               conv: &mut [bool],
               iters: &mut [u32],
               loss: &mut [f64],
               errs: &mut [Option<PowerFlowError>]| {
        let mut sol = Solution::new(n);
        for k in 0..conv.len() {
            let s = first + k;
            let inj = Injection { p_mw: &p_mw[s * n..(s + 1) * n], q_mvar: &q_mvar[s * n..(s + 1) * n] };
            match engine.solve(inj, &mut sol) {
                Ok(info) => {
                    vm[k * n..(k + 1) * n].copy_from_slice(&sol.vm_pu);
                    va[k * n..(k + 1) * n].copy_from_slice(&sol.va_rad);
                    conv[k] = true;
                    iters[k] = info.iterations;
                    loss[k] = info.p_loss_mw;
                }
                Err(e) => {
                    if let PowerFlowError::Diverged { iterations, .. } = e {
                        iters[k] = iterations;
                    }
                    errs[k] = Some(e);
                }
            }
        }
    };

    if threads == 1 {
        let mut e = engine;
        run(&mut e, 0, &mut out.vm_pu, &mut out.va_rad, &mut out.converged, &mut out.iterations, &mut out.p_loss_mw, &mut out.errors);
        return Ok(out);
    }
    std::thread::scope(|scope| {
        let parts = out
            .vm_pu
            .chunks_mut(chunk * n)
            .zip(out.va_rad.chunks_mut(chunk * n))
            .zip(out.converged.chunks_mut(chunk))
            .zip(out.iterations.chunks_mut(chunk))
            .zip(out.p_loss_mw.chunks_mut(chunk))
            .zip(out.errors.chunks_mut(chunk))
            .enumerate();
        for (t, (((((vm, va), conv), iters), loss), errs)) in parts {
            let mut e = engine.clone();
            let run = &run;
            scope.spawn(move || run(&mut e, t * chunk, vm, va, conv, iters, loss, errs));
        }
    });
    Ok(out)
}
