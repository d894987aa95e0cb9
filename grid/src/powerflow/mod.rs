//! Power flow: AC Newton–Raphson (radial tree-structured and general sparse) and LinDistFlow.
//!
//! Every solver follows one pattern: build once from a [`Network`] (all structure analysis and
//! allocation happen there), then call `solve(injection, &mut solution)` as often as needed with
//! no allocation per call. Divergence is an `Err(PowerFlowError::Diverged { .. })` value, never a
//! panic. [`batch`] solves many scenarios on one network over threads.
//!
//! | solver | model | when |
//! |---|---|---|
//! | [`AcSolver`] with [`Algorithm::Radial`] | full AC, Newton–Raphson whose linear system is solved by a backward (leaves → slack) block elimination and a forward substitution over the tree: O(n) per iteration, no fill-in | radial networks with only PQ buses (chosen by [`Algorithm::Auto`]) |
//! | [`AcSolver`] with [`Algorithm::Newton`] | full AC, Newton–Raphson in polar form with faer's sparse LU (symbolic analysis once) | any topology, PV buses |
//! | [`LinDistFlow`] | linearised DistFlow (Baran & Wu), squared or linear voltage form | radial networks |

pub mod batch;
mod lindistflow;
mod newton;
mod radial;

pub use batch::{solve_batch, BatchOutput, Method};
pub use lindistflow::{LinDistFlow, LinDistFlowForm, Sensitivities};

use crate::network::{Admittance, BusKind, Edge, Network};
use crate::C64;

/// Net bus injections for one solve, in bus order, generator convention (load = negative).
///
/// Entries at the reference bus are ignored; at PV buses `q_mvar` is ignored (Q is an output).
#[derive(Debug, Clone, Copy)]
pub struct Injection<'a> {
    /// Active power (MW).
    pub p_mw: &'a [f64],
    /// Reactive power (Mvar).
    pub q_mvar: &'a [f64],
}

/// Bus voltages of a solve; reused across calls (and as the warm start).
#[derive(Debug, PartialEq)]
pub struct Solution {
    /// Voltage magnitudes (pu), bus order.
    pub vm_pu: Vec<f64>,
    /// Voltage angles (radians), bus order.
    pub va_rad: Vec<f64>,
    /// Whether the vectors hold a converged solution (usable as a warm start).
    pub valid: bool,
}

impl Clone for Solution {
    fn clone(&self) -> Self {
        Solution { vm_pu: self.vm_pu.clone(), va_rad: self.va_rad.clone(), valid: self.valid }
    }

    /// Reuses the buffers (the derived version would allocate).
    fn clone_from(&mut self, source: &Self) {
        self.vm_pu.clone_from(&source.vm_pu);
        self.va_rad.clone_from(&source.va_rad);
        self.valid = source.valid;
    }
}

impl Solution {
    /// An empty (invalid) solution for `n` buses.
    pub fn new(n: usize) -> Solution {
        Solution { vm_pu: vec![f64::NAN; n], va_rad: vec![f64::NAN; n], valid: false }
    }

    fn invalidate(&mut self) {
        self.vm_pu.fill(f64::NAN);
        self.va_rad.fill(f64::NAN);
        self.valid = false;
    }
}

/// What a converged solve reports besides the voltages.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SolveInfo {
    /// Newton iterations (linear solves); 0 for the direct LinDistFlow solve.
    pub iterations: u32,
    /// Largest |ΔP| or |ΔQ| at the end (pu on the system base); 0 for LinDistFlow.
    pub max_mismatch_pu: f64,
    /// Series-branch active losses (MW), shunts at buses excluded; LinDistFlow: Σ r·(P²+Q²)/v².
    pub p_loss_mw: f64,
    /// Branch reactive losses (Mvar), line charging included (can be negative).
    pub q_loss_mvar: f64,
    /// Active power delivered by the reference bus (MW, generator convention).
    pub slack_p_mw: f64,
    /// Reactive power delivered by the reference bus (Mvar).
    pub slack_q_mvar: f64,
}

/// Why a solve produced no voltages.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PowerFlowError {
    /// Newton did not reach the tolerance in the iteration limit (or the iterate blew up).
    #[error("power flow did not converge in {iterations} iterations (largest mismatch {max_mismatch_pu:.3e} pu)")]
    Diverged { iterations: u32, max_mismatch_pu: f64 },
    /// The Jacobian (or the LinDistFlow reactance matrix) is singular.
    #[error("singular matrix in the power-flow solve ({0})")]
    Singular(String),
    /// An injection vector has the wrong length or a non-finite entry.
    #[error("invalid injection: {0}")]
    InvalidInjection(String),
    /// The solver needs a radial network and the network is meshed.
    #[error("{0} needs a radial network; this one is meshed")]
    NotRadial(&'static str),
    /// The chosen algorithm cannot handle this network (e.g. radial Newton with PV buses).
    #[error("{0}")]
    Unsupported(String),
}

/// Which AC algorithm to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// Radial tree-structured Newton when the network is radial with only PQ buses, else sparse Newton.
    #[default]
    Auto,
    /// Tree-structured Newton (radial networks, PQ buses only).
    Radial,
    /// General Newton–Raphson with sparse LU.
    Newton,
}

/// AC solver settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcOptions {
    /// Stop when every |ΔP|, |ΔQ| is below this (MVA). pandapower's default is 1e-8 MVA.
    pub tolerance_mva: f64,
    /// Give up after this many Newton iterations.
    pub max_iterations: u32,
    pub algorithm: Algorithm,
    /// Start from the previous converged [`Solution`] passed in, if any; otherwise from the slack
    /// voltage with transformer-shifted angles.
    pub warm_start: bool,
}

impl Default for AcOptions {
    fn default() -> Self {
        AcOptions { tolerance_mva: 1e-9, max_iterations: 30, algorithm: Algorithm::Auto, warm_start: false }
    }
}

/// Network data and work vectors shared by both Newton solvers.
#[derive(Debug, Clone)]
struct NrCore {
    n: usize,
    slack: usize,
    base_mva: f64,
    tol_pu: f64,
    max_iter: u32,
    warm: bool,
    kind: Vec<BusKind>,
    diag: Vec<C64>,
    bus_shunt: Vec<C64>,
    edges: Vec<Edge>,
    /// Voltage magnitude at REF and PV buses, 1.0 elsewhere (start value).
    vm_start: Vec<f64>,
    va_start: Vec<f64>,
    /// The start voltages as complex numbers (pu).
    v_start: Vec<C64>,
    // work vectors
    v: Vec<C64>,
    cur: Vec<C64>,
    s: Vec<C64>,
    /// Mismatch S_calc − S_spec (pu), entries at the slack unused.
    mis: Vec<C64>,
}

impl NrCore {
    fn new(net: &Network, adm: Admittance, opts: &AcOptions) -> NrCore {
        let n = net.n_bus();
        let va_start = net.shifted_start_angles(&adm);
        let vm_start: Vec<f64> = net
            .buses
            .iter()
            .map(|b| if b.kind == BusKind::Pq { 1.0 } else { b.vm_pu })
            .collect();
        NrCore {
            n,
            slack: net.slack,
            base_mva: net.base_mva,
            tol_pu: opts.tolerance_mva / net.base_mva,
            max_iter: opts.max_iterations,
            warm: opts.warm_start,
            kind: net.buses.iter().map(|b| b.kind).collect(),
            diag: adm.diag,
            bus_shunt: net.buses.iter().map(|b| C64::new(b.gs_mw, b.bs_mvar) / net.base_mva).collect(),
            edges: adm.edges,
            v_start: vm_start.iter().zip(&va_start).map(|(m, a)| C64::from_polar(*m, *a)).collect(),
            vm_start,
            va_start,
            v: vec![C64::default(); n],
            cur: vec![C64::default(); n],
            s: vec![C64::default(); n],
            mis: vec![C64::default(); n],
        }
    }

    fn check(&self, inj: &Injection) -> Result<(), PowerFlowError> {
        if inj.p_mw.len() != self.n || inj.q_mvar.len() != self.n {
            return Err(PowerFlowError::InvalidInjection(format!(
                "expected {} values per vector, got p: {}, q: {}",
                self.n,
                inj.p_mw.len(),
                inj.q_mvar.len()
            )));
        }
        check_finite(inj, self.slack)
    }

    /// I = Y V; S = V conj(I); mismatch at non-slack buses. Returns the largest |ΔP| / |ΔQ|
    /// over the equations that are present (NaN-propagating).
    fn mismatch(&mut self, inj: &Injection) -> f64 {
        for i in 0..self.n {
            self.cur[i] = self.diag[i] * self.v[i];
        }
        for e in &self.edges {
            self.cur[e.from] += e.y_ft * self.v[e.to];
            self.cur[e.to] += e.y_tf * self.v[e.from];
        }
        let inv_base = 1.0 / self.base_mva;
        let mut worst: f64 = 0.0;
        for i in 0..self.n {
            self.s[i] = self.v[i] * self.cur[i].conj();
            if i == self.slack {
                continue;
            }
            let dp = self.s[i].re - inj.p_mw[i] * inv_base;
            let dq = if self.kind[i] == BusKind::Pq { self.s[i].im - inj.q_mvar[i] * inv_base } else { 0.0 };
            self.mis[i] = C64::new(dp, dq);
            let m = dp.abs().max(dq.abs());
            if !(m <= worst) {
                worst = m; // also catches NaN
            }
        }
        worst
    }

    /// Sets the start point in `sol` and `v`: warm if allowed and valid, else the slack voltage
    /// with transformer-shifted angles. Returns whether the start was warm.
    fn start(&mut self, sol: &mut Solution) -> bool {
        if sol.vm_pu.len() != self.n {
            *sol = Solution::new(self.n);
        }
        let warm = self.warm && sol.valid && sol.vm_pu.iter().all(|v| v.is_finite() && *v > 0.0);
        if !warm {
            sol.vm_pu.copy_from_slice(&self.vm_start);
            sol.va_rad.copy_from_slice(&self.va_start);
            self.v.copy_from_slice(&self.v_start);
        } else {
            // Keep the setpoints of REF/PV buses exact.
            for i in 0..self.n {
                if self.kind[i] != BusKind::Pq {
                    sol.vm_pu[i] = self.vm_start[i];
                }
            }
            sol.va_rad[self.slack] = self.va_start[self.slack];
            for i in 0..self.n {
                self.v[i] = C64::from_polar(sol.vm_pu[i], sol.va_rad[i]);
            }
        }
        warm
    }

    /// Applies a Newton step at bus i: θ −= dθ, V ← V (1 − dlnv). The complex voltage is
    /// updated by rotation, so no sin/cos of the full angle is evaluated per iteration.
    #[inline(always)]
    fn step(&mut self, sol: &mut Solution, i: usize, dtheta: f64, dlnv: f64) {
        sol.va_rad[i] -= dtheta;
        let f = 1.0 - dlnv;
        sol.vm_pu[i] *= f;
        self.v[i] *= rotation(-dtheta) * f;
    }

    /// Losses and slack power from the last `mismatch` evaluation.
    fn info(&self, iterations: u32, max_mismatch_pu: f64) -> SolveInfo {
        let mut total = C64::default();
        for i in 0..self.n {
            total += self.s[i] - self.v[i].norm_sqr() * self.bus_shunt[i].conj();
        }
        SolveInfo {
            iterations,
            max_mismatch_pu,
            p_loss_mw: total.re * self.base_mva,
            q_loss_mvar: total.im * self.base_mva,
            slack_p_mw: self.s[self.slack].re * self.base_mva,
            slack_q_mvar: self.s[self.slack].im * self.base_mva,
        }
    }

    /// Real 2×2 Jacobian block of bus i with respect to (θ_k, ln V_k) for an off-diagonal entry,
    /// from a = V_i conj(Y_ik V_k): [[∂P/∂θ, ∂P/∂lnV], [∂Q/∂θ, ∂Q/∂lnV]] row-major.
    #[inline(always)]
    fn off_block(a: C64) -> [f64; 4] {
        [a.im, a.re, -a.re, a.im]
    }

    /// Diagonal block of bus i from b = |V_i|² conj(Y_ii) and s = S_i.
    #[inline(always)]
    fn diag_block(b: C64, s: C64) -> [f64; 4] {
        [b.im - s.im, b.re + s.re, s.re - b.re, b.im + s.im]
    }

    fn diag_block_of(&self, i: usize) -> [f64; 4] {
        let b = self.v[i].norm_sqr() * self.diag[i].conj();
        Self::diag_block(b, self.s[i])
    }
}

/// e^{jd}: a Taylor polynomial (exact to rounding) for the small angle steps Newton takes near
/// convergence, `sin_cos` otherwise.
#[inline(always)]
pub(crate) fn rotation(d: f64) -> C64 {
    let d2 = d * d;
    if d.abs() <= 2e-3 {
        // The late Newton steps: a short series, truncation error below 1e-21.
        let s = d * (1.0 + d2 * (-1.0 / 6.0 + d2 * (1.0 / 120.0)));
        let c = 1.0 + d2 * (-0.5 + d2 * (1.0 / 24.0 - d2 * (1.0 / 720.0)));
        C64::new(c, s)
    } else if d.abs() <= 0.25 {
        // Horner form of the Taylor series; truncation error below 3e-18 for |d| <= 0.25.
        const S: [f64; 6] = [1.0, -1.0 / 6.0, 1.0 / 120.0, -1.0 / 5040.0, 1.0 / 362880.0, -1.0 / 39916800.0];
        const C: [f64; 7] =
            [1.0, -0.5, 1.0 / 24.0, -1.0 / 720.0, 1.0 / 40320.0, -1.0 / 3628800.0, 1.0 / 479001600.0];
        let s = d * (S[0] + d2 * (S[1] + d2 * (S[2] + d2 * (S[3] + d2 * (S[4] + d2 * S[5])))));
        let c = C[0] + d2 * (C[1] + d2 * (C[2] + d2 * (C[3] + d2 * (C[4] + d2 * (C[5] + d2 * C[6])))));
        C64::new(c, s)
    } else {
        let (s, c) = d.sin_cos();
        C64::new(c, s)
    }
}

fn check_finite(inj: &Injection, slack: usize) -> Result<(), PowerFlowError> {
    for (i, (p, q)) in inj.p_mw.iter().zip(inj.q_mvar).enumerate() {
        if i != slack && !(p.is_finite() && q.is_finite()) {
            return Err(PowerFlowError::InvalidInjection(format!(
                "bus index {i}: injection must be finite, got p = {p} MW, q = {q} Mvar"
            )));
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum AcInner {
    Radial(radial::RadialNewton),
    Newton(Box<newton::SparseNewton>),
}

/// AC power flow on one network: the algorithm is picked at construction (see [`Algorithm`]).
#[derive(Debug, Clone)]
pub struct AcSolver {
    inner: AcInner,
}

impl AcSolver {
    /// Analyses the network (tree or sparse symbolic factorisation) and allocates all work space.
    pub fn new(net: &Network, options: AcOptions) -> Result<AcSolver, PowerFlowError> {
        let adm = net.admittance();
        let only_pq = net.buses.iter().enumerate().all(|(i, b)| i == net.slack || b.kind == BusKind::Pq);
        let tree = if only_pq { crate::network::Tree::build(net.n_bus(), net.slack, &adm.edges) } else { None };
        let inner = match (options.algorithm, tree) {
            (Algorithm::Auto | Algorithm::Radial, Some(tree)) => {
                AcInner::Radial(radial::RadialNewton::new(NrCore::new(net, adm, &options), tree))
            }
            (Algorithm::Radial, None) if !only_pq => {
                return Err(PowerFlowError::Unsupported(
                    "the radial solver handles PQ buses only; this network has PV buses (use algorithm = \"newton\")".into(),
                ))
            }
            (Algorithm::Radial, None) => return Err(PowerFlowError::NotRadial("the radial AC solver")),
            (Algorithm::Auto | Algorithm::Newton, _) => {
                AcInner::Newton(Box::new(newton::SparseNewton::new(NrCore::new(net, adm, &options))?))
            }
        };
        Ok(AcSolver { inner })
    }

    /// The algorithm in use (never `Auto`).
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            AcInner::Radial(_) => Algorithm::Radial,
            AcInner::Newton(_) => Algorithm::Newton,
        }
    }

    /// Solves for the given injections. On success `sol` holds the voltages; on error it is
    /// filled with NaN and marked invalid. Never allocates (after the first call).
    pub fn solve(&mut self, inj: Injection<'_>, sol: &mut Solution) -> Result<SolveInfo, PowerFlowError> {
        let r = match &mut self.inner {
            AcInner::Radial(s) => s.solve(&inj, sol),
            AcInner::Newton(s) => s.solve(&inj, sol),
        };
        if r.is_err() {
            sol.invalidate();
        } else {
            sol.valid = true;
        }
        r
    }
}
