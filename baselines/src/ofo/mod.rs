//! Online feedback optimization (OFO) controllers for inverter reactive power, after Zhan et al.
//! (TPWRS 2025) and the comparison controllers of its Table I (`docs/OFO.md` gives the equations
//! with the equation numbers used in the code comments).
//!
//! Problem (6): min_q qᵀCq s.t. v_min ≤ v(q) ≤ v_max, q ∈ Q = Π[−q̄_i, q̄_i], q̄_i = √(S_i² − p_i²),
//! with the LinDistFlow model v = X q + w (X from cable reactances). Units as in the paper:
//! q in kVar, v in pu, X in pu/kVar, duals λ in kVar²/pu.
//!
//! Each controller is fed, once per outer iteration, the voltage each node measured and each
//! node's reactive limit, and updates the setpoints. The distributed ones are written node by
//! node with explicit messages to neighbours (see [`Network`]), so lost messages and failed nodes
//! can be simulated.

pub mod agent;
pub mod centralized;
pub mod nested;
pub mod qu2020;
pub mod tang2024;
pub mod two_metric;

use faer::linalg::solvers::Solve;
use faer::Mat;
use serde::{Deserialize, Serialize};
use voltarena_env::Task;

const NONE: usize = usize::MAX;

/// The controllable tree: one node per non-slack bus of a radial network. A node holds the inverter
/// of its bus, or none (a node with zero reactive capacity: it measures its voltage, holds its
/// voltage dual and relays the sweeps, so the voltage limits of every bus are watched). On feeders
/// with transformers (mapdn322: 110/20/0.4 kV) the tree runs through them: x of a transformer
/// branch is its series reactance in pu on the system base (LinDistFlow's per-unit model, taps
/// neglected), so one X spans all voltage levels and all zones.
#[derive(Debug, Clone)]
pub struct OfoModel {
    /// Network bus of each node.
    pub bus: Vec<usize>,
    /// Agent (inverter) index of each node; `None` for a bus without one.
    pub agent: Vec<Option<usize>>,
    /// Parent node, `usize::MAX` when the parent is the slack (bus 0 of the paper).
    pub parent: Vec<usize>,
    pub children: Vec<Vec<usize>>,
    /// Nodes in breadth-first order from the slack (parents first); nodes are numbered in this
    /// order, so it is 0..n.
    pub order: Vec<usize>,
    /// Reactance of the cable from each node to its parent (pu/kVar).
    pub x: Vec<f64>,
    /// Resistance of the same cable (pu/kW): v ≈ w + Xq + Rp, for active-power curtailment.
    pub r: Vec<f64>,
    /// X_ii = Σ x over the path slack → i (pu/kVar).
    pub x_path: Vec<f64>,
    /// Cost weights c_i (C = diag(c); 1 in the paper).
    pub c: Vec<f64>,
    pub v_min: f64,
    pub v_max: f64,
}

/// Why a controller cannot be built for a task.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OfoError {
    #[error("the OFO controllers need a radial network with at most one inverter per bus: {0}")]
    Topology(String),
    #[error("{0}")]
    Params(String),
}

impl OfoModel {
    /// The model of a task on a radial network with at most one inverter per bus (rural2_96: one at
    /// every non-slack bus; the MAPDN feeders: some).
    pub fn from_task(task: &Task) -> Result<OfoModel, OfoError> {
        let net = &task.network;
        let ldf = voltarena_env::LinDistFlow::new(net, voltarena_env::LinDistFlowForm::Linear)
            .map_err(|e| OfoError::Topology(e.to_string()))?;
        let tree = ldf.tree();
        let n_bus = net.n_bus();
        let mut agent_of_bus = vec![NONE; n_bus];
        for (k, pv) in task.pvs.iter().enumerate() {
            if agent_of_bus[pv.bus] != NONE {
                return Err(OfoError::Topology(format!("bus id {} has two inverters", task.bus_id[pv.bus])));
            }
            agent_of_bus[pv.bus] = k;
        }
        // Nodes are numbered in breadth-first order from the slack: every parent comes before
        // its children, so the sweeps run over contiguous memory.
        let mut node_of_bus = vec![NONE; n_bus];
        let mut bus = Vec::new();
        for &b in &tree.order {
            if b == net.slack {
                continue;
            }
            node_of_bus[b] = bus.len();
            bus.push(b);
        }
        let n = bus.len();
        // pu on the system base per pu of power → pu per kVar.
        let per_kvar = 1.0 / (net.base_mva * 1000.0);
        let mut parent = vec![NONE; n];
        let mut children = vec![Vec::new(); n];
        let mut x = vec![0.0; n];
        let mut r = vec![0.0; n];
        for i in 0..n {
            let b = bus[i];
            let p = tree.parent[b];
            debug_assert!(p == net.slack || node_of_bus[p] < i);
            if p != net.slack {
                parent[i] = node_of_bus[p];
                children[node_of_bus[p]].push(i);
            }
            x[i] = ldf.x_to_parent()[b] * per_kvar;
            r[i] = ldf.r_to_parent()[b] * per_kvar;
            if !(x[i] > 0.0) {
                return Err(OfoError::Topology(format!("cable above bus id {} has no reactance", task.bus_id[b])));
            }
        }
        let order: Vec<usize> = (0..n).collect();
        let mut x_path = vec![0.0; n];
        for &i in &order {
            x_path[i] = x[i] + if parent[i] == NONE { 0.0 } else { x_path[parent[i]] };
        }
        Ok(OfoModel {
            agent: bus.iter().map(|&b| (agent_of_bus[b] != NONE).then_some(agent_of_bus[b])).collect(),
            bus,
            parent,
            children,
            order,
            x,
            r,
            x_path,
            c: vec![1.0; n],
            v_min: task.spec.v_min,
            v_max: task.spec.v_max,
        })
    }

    pub fn len(&self) -> usize {
        self.bus.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bus.is_empty()
    }

    /// out = X·d by a backward sweep (subtree sums, (15)) and a forward sweep (path sums, (16)).
    pub fn x_times(&self, d: &[f64], out: &mut [f64]) {
        for &i in self.order.iter().rev() {
            let mut s = d[i];
            for &c in &self.children[i] {
                s += out[c];
            }
            out[i] = s; // D_i
        }
        for &i in &self.order {
            let up = if self.parent[i] == NONE { 0.0 } else { out[self.parent[i]] };
            out[i] = up + self.x[i] * out[i]; // U_i
        }
    }

    /// out = R·d by the same two sweeps with the cable resistances.
    pub fn r_times(&self, d: &[f64], out: &mut [f64]) {
        for &i in self.order.iter().rev() {
            let mut s = d[i];
            for &c in &self.children[i] {
                s += out[c];
            }
            out[i] = s;
        }
        for &i in &self.order {
            let up = if self.parent[i] == NONE { 0.0 } else { out[self.parent[i]] };
            out[i] = up + self.r[i] * out[i];
        }
    }

    /// out = X⁻¹·y by the one-hop closed form (5): (X⁻¹y)_i = Σ_{j∈π(i)∪C_i} (y_i − y_j)/x_ij,
    /// y of the slack = 0.
    pub fn x_inv_times(&self, y: &[f64], out: &mut [f64]) {
        for i in 0..self.len() {
            let yp = if self.parent[i] == NONE { 0.0 } else { y[self.parent[i]] };
            let mut s = (y[i] - yp) / self.x[i];
            for &c in &self.children[i] {
                s += (y[i] - y[c]) / self.x[c];
            }
            out[i] = s;
        }
    }

    /// The dense X (pu/kVar), for tests and eigenvalues.
    pub fn dense_x(&self) -> Mat<f64> {
        let n = self.len();
        let mut m = Mat::zeros(n, n);
        let mut e = vec![0.0; n];
        let mut col = vec![0.0; n];
        for j in 0..n {
            e[j] = 1.0;
            self.x_times(&e, &mut col);
            for i in 0..n {
                m[(i, j)] = col[i];
            }
            e[j] = 0.0;
        }
        m
    }

    /// (λ_min, λ_max) of X.
    pub fn eig_range(&self) -> (f64, f64) {
        let x = self.dense_x();
        let ev = x.self_adjoint_eigenvalues(faer::Side::Lower).expect("X is symmetric");
        let lo = ev.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ev.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    }

    /// The deepest node (largest X_ii): the paper's monitored "bus 95".
    pub fn deepest(&self) -> usize {
        (0..self.len()).max_by(|&a, &b| self.x_path[a].total_cmp(&self.x_path[b])).unwrap_or(0)
    }

    /// Parent–child links among the nodes (the cables a neighbour message crosses).
    pub fn links(&self) -> usize {
        self.parent.iter().filter(|&&p| p != NONE).count()
    }

    /// Nodes with an inverter.
    pub fn n_inverters(&self) -> usize {
        self.agent.iter().filter(|a| a.is_some()).count()
    }

    /// One message each way over every link, `rounds` times.
    pub fn neighbour_messages(&self, rounds: usize) -> voltarena_env::controller::Communication {
        voltarena_env::controller::Communication { reach: voltarena_env::controller::Reach::Neighbours, messages_per_step: 2 * self.links() * rounds }
    }

    /// Whether every node has an inverter (rural2_96).
    pub fn fully_actuated(&self) -> bool {
        self.agent.iter().all(|a| a.is_some())
    }

    /// The largest voltage response of a node to its own dual, G = max_i X_iI X_II⁻¹ X_Ii (pu/kVar),
    /// where I are the nodes with an inverter: how far v_i moves per kVar of the X-norm projection of
    /// a unit step at node i onto the setpoints the inverters can take. Every node an inverter:
    /// G = X_ii of the deepest node.
    pub fn dual_response(&self) -> f64 {
        if self.fully_actuated() {
            return self.x_path[self.deepest()];
        }
        let x = self.dense_x();
        let inv: Vec<usize> = (0..self.len()).filter(|&j| self.agent[j].is_some()).collect();
        if inv.is_empty() {
            return f64::NAN;
        }
        let k = inv.len();
        let xii = Mat::<f64>::from_fn(k, k, |a, b| x[(inv[a], inv[b])]);
        let xi_all = Mat::<f64>::from_fn(k, self.len(), |a, j| x[(inv[a], j)]);
        let Ok(llt) = xii.llt(faer::Side::Lower) else { return f64::NAN };
        let sol = llt.solve(&xi_all); // X_II⁻¹ X_I·
        (0..self.len()).map(|i| (0..k).map(|a| xi_all[(a, i)] * sol[(a, i)]).sum::<f64>()).fold(0.0, f64::max)
    }

    /// The steady-state gain from the duals to the voltages through the inverters, S = λmax(X_·I X_I·)
    /// = σmax(X_·I)² (pu²/kVar²), I the nodes with an inverter: in centralized PDGP q = −X λ / 2c at
    /// rest, so a dual step Δλ moves the voltages by −X_·I X_I· Δλ / 2, and S bounds that gain over
    /// any set of active limits.
    pub fn dual_sensitivity(&self) -> f64 {
        let x = self.dense_x();
        let n = self.len();
        let inv: Vec<usize> = (0..n).filter(|&j| self.agent[j].is_some()).collect();
        let g = Mat::<f64>::from_fn(inv.len(), inv.len(), |a, b| (0..n).map(|i| x[(i, inv[a])] * x[(i, inv[b])]).sum::<f64>());
        g.self_adjoint_eigenvalues(faer::Side::Lower).map(|ev| ev.iter().copied().fold(0.0, f64::max)).unwrap_or(f64::NAN)
    }
}

/// Step sizes and regularisation, each either absolute or relative to the model (resolved by
/// [`StepSpec::resolve`]). Units as in the module docs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StepSpec {
    /// Dual step α (kVar²/pu²).
    pub alpha: Option<f64>,
    /// α = alpha_gain / (β · G), G = [`OfoModel::dual_response`] (X_ii of the deepest node where
    /// every node has an inverter): the dual loop gain of the distributed controllers there.
    pub alpha_gain: Option<f64>,
    /// α = 2 · alpha_loop / S, S = [`OfoModel::dual_sensitivity`]: the steady-state dual loop gain
    /// of the centralized controller at its most sensitive node.
    pub alpha_loop: Option<f64>,
    /// Primal step β.
    pub beta: Option<f64>,
    /// β = beta_rel · λ_min(X).
    pub beta_rel: Option<f64>,
    /// β = beta_gain / (4 γ K) (nested): the inner loop's K projected-gradient steps of size γ move
    /// the setpoints by ≈ 2γK·X(q̃ − q) along the smooth modes of X, so the tentative step's
    /// −β X⁻¹ 2q contracts them by a factor 1 − beta_gain per outer iteration, on any feeder.
    pub beta_gain: Option<f64>,
    /// Inner projected-gradient step γ (kVar/pu).
    pub gamma: Option<f64>,
    /// γ = gamma_rel / λ_max(X).
    pub gamma_rel: Option<f64>,
    /// Primal regularisation ε and dual regularisation η.
    pub epsilon: Option<f64>,
    pub eta: Option<f64>,
    /// Inner iterations K (nested).
    pub k_inner: Option<usize>,
    /// Start the inner loop from the current setpoints (nested; default true).
    pub warm_start: Option<bool>,
    /// Augmented-Lagrangian penalty (Qu & Li; 1 in their code).
    pub c_al: Option<f64>,
    /// The controller regulates to [v_min + margin, v_max − margin] (pu; default 0): a margin
    /// against the violations an integrating dual lets through before it reacts.
    pub margin_pu: Option<f64>,
    /// The weighted objective of Zhan et al. §IV-H, qᵀXq instead of qᵀCq (it charges feeder-end
    /// inverters more); centralized and nested only (default false).
    pub weighted: Option<bool>,
    /// Active-power curtailment (§IV-I, centralized): the controller also curtails PV infeed c ≥ 0
    /// (kW) at cost `curtail_weight` · Σ c² (kVar²-equivalent per kW²; absent = no curtailment).
    pub curtail_weight: Option<f64>,
}

/// Resolved parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Steps {
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
    pub epsilon: f64,
    pub eta: f64,
    pub k_inner: usize,
    pub warm_start: bool,
    pub c_al: f64,
    pub margin_pu: f64,
    pub weighted: bool,
    /// 0 = no curtailment.
    pub curtail_weight: f64,
}

impl StepSpec {
    pub fn resolve(&self, model: &OfoModel) -> Result<Steps, OfoError> {
        let need_eig = self.beta_rel.is_some() || self.gamma_rel.is_some();
        let (lmin, lmax) = if need_eig { model.eig_range() } else { (f64::NAN, f64::NAN) };
        let gamma = match (self.gamma, self.gamma_rel) {
            (Some(g), None) => g,
            (None, Some(r)) => r / lmax,
            (None, None) => 0.0,
            (Some(_), Some(_)) => return Err(OfoError::Params("set gamma or gamma_rel, not both".into())),
        };
        let k_inner = self.k_inner.unwrap_or(10);
        if !(1..=MAX_K_INNER).contains(&k_inner) {
            return Err(OfoError::Params(format!("k_inner must be in 1..={MAX_K_INNER} (inner iterations per outer one), got {k_inner}")));
        }
        let beta = match (self.beta, self.beta_rel, self.beta_gain) {
            (Some(b), None, None) => b,
            (None, Some(r), None) => r * lmin,
            (None, None, Some(g)) if gamma > 0.0 => g / (4.0 * gamma * k_inner as f64),
            (None, None, Some(_)) => return Err(OfoError::Params("beta_gain needs gamma or gamma_rel (the inner step)".into())),
            (None, None, None) => return Err(OfoError::Params("set beta, beta_rel or beta_gain".into())),
            _ => return Err(OfoError::Params("set one of beta, beta_rel and beta_gain".into())),
        };
        let alpha = match (self.alpha, self.alpha_gain, self.alpha_loop) {
            (Some(a), None, None) => a,
            (None, Some(g), None) => g / (beta * model.dual_response()),
            (None, None, Some(g)) => 2.0 * g / model.dual_sensitivity(),
            (None, None, None) => 0.0,
            _ => return Err(OfoError::Params("set one of alpha, alpha_gain and alpha_loop".into())),
        };
        let s = Steps {
            alpha,
            beta,
            gamma,
            epsilon: self.epsilon.unwrap_or(1e-10),
            eta: self.eta.unwrap_or(1e-10),
            k_inner,
            warm_start: self.warm_start.unwrap_or(true),
            c_al: self.c_al.unwrap_or(1.0),
            margin_pu: self.margin_pu.unwrap_or(0.0),
            weighted: self.weighted.unwrap_or(false),
            curtail_weight: self.curtail_weight.unwrap_or(0.0),
        };
        if !(s.margin_pu >= 0.0 && 2.0 * s.margin_pu < model.v_max - model.v_min) {
            return Err(OfoError::Params(format!("margin_pu must be ≥ 0 and leave a band inside [v_min, v_max], got {}", s.margin_pu)));
        }
        for (name, v) in [("alpha", s.alpha), ("beta", s.beta), ("gamma", s.gamma), ("epsilon", s.epsilon), ("eta", s.eta), ("c_al", s.c_al), ("curtail_weight", s.curtail_weight)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(OfoError::Params(format!("{name} must be a finite number ≥ 0, got {v}")));
            }
        }
        Ok(s)
    }
}

/// Largest number of inner iterations per outer one a config may ask for (the paper uses 10; a
/// control step must stay bounded in time).
pub const MAX_K_INNER: usize = 10_000;

/// One OFO controller: per outer iteration, measured voltages and reactive limits in, setpoints
/// out. All vectors are indexed by node ([`OfoModel`] order), q and limits in kVar.
pub trait OfoController: Send {
    fn name(&self) -> &str;
    /// Forget duals and internal state (new episode).
    fn reset(&mut self);
    /// One outer iteration: `v` measured (pu), `q_max` = √(S² − p²) (kVar), `q` the setpoints in
    /// force, overwritten with the new ones.
    fn step(&mut self, v: &[f64], q_max: &[f64], q: &mut [f64]);
    /// Messages per outer iteration (the controllers are written as message passing; this counts
    /// what they send).
    fn communication(&self) -> voltarena_env::controller::Communication;
    /// After `step`: the curtailment update, for controllers that curtail (§IV-I). `p_avail` is the
    /// PV power on offer (kW, node order; 0 without an inverter), `c` the curtailment in force (kW),
    /// overwritten. Returns false (and leaves `c`) for controllers that do not curtail.
    fn curtail(&mut self, _p_avail: &[f64], _c: &mut [f64]) -> bool {
        false
    }
}

/// Communication faults applied to the distributed controllers' messages.
#[derive(Debug, Clone)]
pub struct Network {
    /// Nodes that have failed: they keep their setpoint, stop updating, and their neighbours
    /// route the sweeps around them (they act as relays with no own contribution).
    pub failed: Vec<bool>,
    /// Probability that one transmission is lost.
    pub drop_prob: f64,
    /// Retransmissions after a missing acknowledgement (timeout) within one iteration period; a
    /// message is lost only if every attempt is (probability drop_prob^(1 + retries)). What a
    /// receiver does then is each controller's fallback.
    pub retries: usize,
    pub(crate) rng: rand_chacha::ChaCha8Rng,
}

impl Network {
    pub fn new(n: usize, failed_nodes: &[usize], drop_prob: f64, seed: u64) -> Network {
        use rand::SeedableRng;
        let mut failed = vec![false; n];
        for &f in failed_nodes {
            if f < n {
                failed[f] = true;
            }
        }
        Network { failed, drop_prob, retries: 0, rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed) }
    }

    /// The same network with `retries` retransmissions per message.
    pub fn with_retries(mut self, retries: usize) -> Network {
        self.retries = retries;
        self
    }

    /// Whether one message gets through (within its retransmissions).
    #[inline]
    pub fn delivered(&mut self) -> bool {
        delivered_within(&mut self.rng, self.drop_prob, self.retries)
    }
}

/// Whether a message gets through in one of its 1 + `retries` attempts.
#[inline]
fn delivered_within(rng: &mut rand_chacha::ChaCha8Rng, drop_prob: f64, retries: usize) -> bool {
    (0..=retries).any(|_| coin(rng, drop_prob))
}

/// A message survives with probability 1 − `drop_prob`.
#[inline]
fn coin(rng: &mut rand_chacha::ChaCha8Rng, drop_prob: f64) -> bool {
    use rand::RngExt;
    drop_prob <= 0.0 || rng.random::<f64>() >= drop_prob
}

/// Projection onto Q: the per-node clip.
#[inline]
pub fn clip(q: f64, q_max: f64) -> f64 {
    q.max(-q_max).min(q_max)
}

/// Local dual updates (9a)–(9b) at one node.
#[inline]
pub fn dual_update(lam_up: &mut f64, lam_lo: &mut f64, v: f64, v_min: f64, v_max: f64, alpha: f64, eta: f64) {
    *lam_up = (*lam_up + alpha * (v - v_max - eta * *lam_up)).max(0.0);
    *lam_lo = (*lam_lo + alpha * (v_min - v - eta * *lam_lo)).max(0.0);
}
