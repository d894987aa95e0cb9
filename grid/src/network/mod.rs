//! Network model: buses, π-model branches, the bus-admittance matrix and the radial tree view.
//!
//! A [`Network`] is built by [`Network::from_matpower_file`] (MATPOWER version-2 `.m` cases) and
//! validated once ([`Network::validate`]): exactly one reference bus, every bus connected to it
//! through in-service branches, no branch with zero series impedance, finite numbers. After
//! validation every solver can rely on these facts and never panics on the data.
//!
//! Bus order is the case file's bus-row order; `Bus::number` keeps the external MATPOWER number.

mod json;
mod matpower;
mod tree;

pub use json::{DetailedNetwork, Load, Sgen};

pub use tree::Tree;

use crate::C64;
use std::fmt;
use std::path::{Path, PathBuf};

/// MATPOWER bus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// Load bus: P and Q specified.
    Pq,
    /// Generator bus with an in-service generator: P and |V| specified.
    Pv,
    /// The reference (slack) bus: |V| and angle specified.
    Ref,
}

/// One bus, with its specified net injection in generator convention (MW / Mvar).
#[derive(Debug, Clone, PartialEq)]
pub struct Bus {
    /// External bus number (MATPOWER `BUS_I`).
    pub number: u32,
    pub kind: BusKind,
    /// Net active injection Σ Pg − Pd (MW, generator convention).
    pub p_inj_mw: f64,
    /// Net reactive injection Σ Qg − Qd (Mvar, generator convention).
    pub q_inj_mvar: f64,
    /// Shunt conductance (MW demanded at 1 pu voltage).
    pub gs_mw: f64,
    /// Shunt susceptance (Mvar injected at 1 pu voltage).
    pub bs_mvar: f64,
    /// Voltage magnitude setpoint (pu) for REF and PV buses, the case's VM otherwise.
    pub vm_pu: f64,
    /// Voltage angle in the case (degrees); used for the reference bus angle.
    pub va_degree: f64,
    /// Base voltage (kV).
    pub base_kv: f64,
    pub vmax_pu: f64,
    pub vmin_pu: f64,
    /// 1-based line of the bus row in the source file (0 when built in code).
    pub line: usize,
}

/// One branch in the MATPOWER π model with an ideal transformer at the from side.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    /// Index of the from bus (position in [`Network::buses`]).
    pub from: usize,
    /// Index of the to bus.
    pub to: usize,
    /// Series resistance (pu).
    pub r: f64,
    /// Series reactance (pu).
    pub x: f64,
    /// Total line-charging susceptance (pu), half at each end.
    pub b: f64,
    /// Total shunt conductance (pu), half at each end: transformer iron losses. MATPOWER files
    /// have no column for it (always 0 there); the detailed JSON networks carry it.
    pub g: f64,
    /// Off-nominal turns ratio at the from side (1.0 for lines; MATPOWER's 0 is read as 1).
    pub ratio: f64,
    /// Phase shift (degrees): the to-side voltage lags the from side by this angle.
    pub shift_deg: f64,
    pub in_service: bool,
    /// 1-based line of the branch row in the source file (0 when built in code).
    pub line: usize,
}

impl Branch {
    /// Series admittance 1 / (r + jx) (pu).
    pub fn series_admittance(&self) -> C64 {
        C64::new(1.0, 0.0) / C64::new(self.r, self.x)
    }

    /// The four entries (Y_ff, Y_ft, Y_tf, Y_tt) of the branch's 2×2 admittance matrix (pu),
    /// MATPOWER convention: τ = ratio·e^{j·shift}, Y_ff = (y_s + j b/2)/|τ|², Y_ft = −y_s/τ*,
    /// Y_tf = −y_s/τ, Y_tt = y_s + j b/2 (plus g/2 with the JSON networks' shunt conductance).
    pub fn admittances(&self) -> [C64; 4] {
        let ys = self.series_admittance();
        let ysh_half = C64::new(self.g / 2.0, self.b / 2.0);
        let tau = C64::from_polar(self.ratio, self.shift_deg.to_radians());
        [
            (ys + ysh_half) / (self.ratio * self.ratio),
            -ys / tau.conj(),
            -ys / tau,
            ys + ysh_half,
        ]
    }
}

/// A validated power network.
#[derive(Debug, Clone)]
pub struct Network {
    /// Case name (the MATPOWER function name, or the file stem).
    pub name: String,
    /// File the network was read from, for error messages and provenance.
    pub source: Option<PathBuf>,
    /// System power base (MVA).
    pub base_mva: f64,
    pub buses: Vec<Bus>,
    /// All branches of the case, in-service or not, in file order.
    pub branches: Vec<Branch>,
    /// Index of the reference bus.
    pub slack: usize,
}

/// Everything that can be wrong with a network: where it is and what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkError {
    /// The file, when the network came from one.
    pub file: Option<PathBuf>,
    /// 1-based line in that file, when the problem has one.
    pub line: Option<usize>,
    /// The field or section concerned (e.g. `branch.BR_X`, `mpc.baseMVA`).
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for NetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}", p.display())?,
            None => write!(f, "<network>")?,
        }
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": {}: {}", self.field, self.message)
    }
}

impl std::error::Error for NetworkError {}

/// Errors from reading a network file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Invalid(#[from] NetworkError),
}

/// The bus-admittance matrix in compact branch form: a diagonal plus one off-diagonal pair per
/// connected bus pair (parallel branches merged).
///
/// Y_bus = diag(`diag`) + Σ_e (Y_ft e_f e_tᵀ + Y_tf e_t e_fᵀ). This is the form every solver here
/// consumes: mismatches and Jacobians are sums over `edges`, so no general sparse matrix is needed
/// on the hot path.
#[derive(Debug, Clone)]
pub struct Admittance {
    /// Y_ii (pu): branch self-admittances plus bus shunts.
    pub diag: Vec<C64>,
    /// Off-diagonal pairs, one per connected unordered bus pair.
    pub edges: Vec<Edge>,
}

/// One off-diagonal pair of Y_bus, with the branch data LinDistFlow needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    /// Y_bus[from, to] (pu).
    pub y_ft: C64,
    /// Y_bus[to, from] (pu).
    pub y_tf: C64,
    /// Sum of the series admittances of the merged branches (pu).
    pub y_series: C64,
    /// Phase shift from `from` to `to` (degrees, of the first merged branch).
    pub shift_deg: f64,
}

impl Edge {
    /// Series impedance r + jx of the merged branch (pu).
    pub fn series_impedance(&self) -> C64 {
        C64::new(1.0, 0.0) / self.y_series
    }
}

impl Network {
    /// Reads and validates a MATPOWER version-2 case file.
    pub fn from_matpower_file(path: impl AsRef<Path>) -> Result<Network, LoadError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let default_name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(matpower::parse(&text, Some(path), &default_name)?)
    }

    /// Reads a detailed JSON network (`data/networks/*.json`): the exact branch rows pandapower
    /// solved (`branches_ppc`, with transformer iron-loss conductance), the slack, the bus
    /// injections, and the loads and static generators with their profiles and zone names.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<DetailedNetwork, LoadError> {
        json::read(path.as_ref())
    }

    /// Parses a detailed JSON network from text (no file attached).
    pub fn from_json_str(text: &str) -> Result<DetailedNetwork, NetworkError> {
        json::parse(text, None)
    }

    /// Parses and validates MATPOWER text (no file attached; errors carry line numbers only).
    pub fn from_matpower_str(text: &str, name: &str) -> Result<Network, NetworkError> {
        matpower::parse(text, None, name)
    }

    /// Number of buses.
    pub fn n_bus(&self) -> usize {
        self.buses.len()
    }

    /// In-service branches.
    pub fn active_branches(&self) -> impl Iterator<Item = &Branch> {
        self.branches.iter().filter(|b| b.in_service)
    }

    /// The case's own net injections (MW, Mvar), in bus order.
    pub fn injections(&self) -> (Vec<f64>, Vec<f64>) {
        (
            self.buses.iter().map(|b| b.p_inj_mw).collect(),
            self.buses.iter().map(|b| b.q_inj_mvar).collect(),
        )
    }

    /// Whether any transformer (ratio ≠ 1 or phase shift ≠ 0) is in service.
    pub fn has_transformers(&self) -> bool {
        self.active_branches()
            .any(|b| b.ratio != 1.0 || b.shift_deg != 0.0)
    }

    fn error(&self, line: usize, field: &str, message: String) -> NetworkError {
        NetworkError {
            file: self.source.clone(),
            line: (line > 0).then_some(line),
            field: field.to_string(),
            message,
        }
    }

    /// Checks the facts every solver relies on. Called by the readers; call it again after
    /// building or editing a network in code.
    pub fn validate(&self) -> Result<(), NetworkError> {
        if !(self.base_mva.is_finite() && self.base_mva > 0.0) {
            return Err(self.error(
                0,
                "mpc.baseMVA",
                format!("expected a positive number, found {}", self.base_mva),
            ));
        }
        if self.buses.is_empty() {
            return Err(self.error(0, "mpc.bus", "the case has no buses".into()));
        }
        let refs: Vec<&Bus> = self.buses.iter().filter(|b| b.kind == BusKind::Ref).collect();
        match refs.len() {
            0 => {
                return Err(self.error(
                    0,
                    "bus.BUS_TYPE",
                    "no reference bus (type 3) with an in-service generator; expected exactly one"
                        .into(),
                ))
            }
            1 => {}
            _ => {
                let list: Vec<String> = refs
                    .iter()
                    .map(|b| format!("bus {} (line {})", b.number, b.line))
                    .collect();
                return Err(self.error(
                    refs[1].line,
                    "bus.BUS_TYPE",
                    format!(
                        "several reference buses: {}; expected exactly one",
                        list.join(", ")
                    ),
                ));
            }
        }
        if self.buses[self.slack].kind != BusKind::Ref {
            return Err(self.error(0, "slack", "slack index does not point at the REF bus".into()));
        }
        for b in &self.buses {
            let checks = [
                ("bus.PD/QD/GEN", b.p_inj_mw),
                ("bus.PD/QD/GEN", b.q_inj_mvar),
                ("bus.GS", b.gs_mw),
                ("bus.BS", b.bs_mvar),
                ("bus.VM", b.vm_pu),
                ("bus.VA", b.va_degree),
            ];
            for (field, v) in checks {
                if !v.is_finite() {
                    return Err(self.error(
                        b.line,
                        field,
                        format!("bus {}: expected a finite number, found {v}", b.number),
                    ));
                }
            }
            if b.kind != BusKind::Pq && !(b.vm_pu > 0.0) {
                return Err(self.error(
                    b.line,
                    "gen.VG",
                    format!(
                        "bus {}: voltage setpoint must be positive, found {}",
                        b.number, b.vm_pu
                    ),
                ));
            }
        }
        let n = self.buses.len();
        for br in &self.branches {
            let nums = [("branch.BR_R", br.r), ("branch.BR_X", br.x), ("branch.BR_B", br.b), ("branch.g", br.g),
                ("branch.TAP", br.ratio), ("branch.SHIFT", br.shift_deg)];
            for (field, v) in nums {
                if !v.is_finite() {
                    return Err(self.error(br.line, field, format!("expected a finite number, found {v}")));
                }
            }
            if br.from >= n || br.to >= n {
                return Err(self.error(br.line, "branch.F_BUS/T_BUS", "bus index out of range".into()));
            }
            if !br.in_service {
                continue;
            }
            if br.from == br.to {
                return Err(self.error(
                    br.line,
                    "branch.T_BUS",
                    format!("branch connects bus {} to itself", self.buses[br.from].number),
                ));
            }
            if br.r == 0.0 && br.x == 0.0 {
                return Err(self.error(
                    br.line,
                    "branch.BR_X",
                    format!(
                        "zero series impedance (r = x = 0) between buses {} and {}: the admittance \
                         is infinite; merge the buses or give the branch a small impedance",
                        self.buses[br.from].number, self.buses[br.to].number
                    ),
                ));
            }
            if br.ratio <= 0.0 {
                return Err(self.error(br.line, "branch.TAP", format!("turns ratio must be positive, found {}", br.ratio)));
            }
        }
        // Connectivity: every bus must reach the slack through in-service branches.
        let adj = self.adjacency();
        let mut seen = vec![false; n];
        let mut stack = vec![self.slack];
        seen[self.slack] = true;
        while let Some(i) = stack.pop() {
            for &(j, _) in &adj[i] {
                if !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        let islanded: Vec<&Bus> = self.buses.iter().zip(&seen).filter(|(_, s)| !**s).map(|(b, _)| b).collect();
        if let Some(first) = islanded.first() {
            let list: Vec<String> = islanded.iter().take(10).map(|b| b.number.to_string()).collect();
            return Err(self.error(
                first.line,
                "branch",
                format!(
                    "{} bus(es) not connected to the reference bus {} through in-service branches \
                     (islands): {}{}",
                    islanded.len(),
                    self.buses[self.slack].number,
                    list.join(", "),
                    if islanded.len() > 10 { ", ..." } else { "" }
                ),
            ));
        }
        Ok(())
    }

    /// Neighbours of each bus through in-service branches: (neighbour, branch index).
    pub fn adjacency(&self) -> Vec<Vec<(usize, usize)>> {
        let mut adj = vec![Vec::new(); self.buses.len()];
        for (k, br) in self.branches.iter().enumerate() {
            if br.in_service && br.from != br.to && br.from < adj.len() && br.to < adj.len() {
                adj[br.from].push((br.to, k));
                adj[br.to].push((br.from, k));
            }
        }
        adj
    }

    /// The bus-admittance matrix in compact form (π branch model, bus shunts on the diagonal).
    pub fn admittance(&self) -> Admittance {
        let n = self.buses.len();
        let mut diag: Vec<C64> = self
            .buses
            .iter()
            .map(|b| C64::new(b.gs_mw, b.bs_mvar) / self.base_mva)
            .collect();
        let mut edges: Vec<Edge> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for br in self.active_branches() {
            let [yff, yft, ytf, ytt] = br.admittances();
            diag[br.from] += yff;
            diag[br.to] += ytt;
            let key = (br.from.min(br.to), br.from.max(br.to));
            match index.get(&key) {
                None => {
                    index.insert(key, edges.len());
                    edges.push(Edge {
                        from: br.from,
                        to: br.to,
                        y_ft: yft,
                        y_tf: ytf,
                        y_series: br.series_admittance(),
                        shift_deg: br.shift_deg,
                    });
                }
                Some(&e) => {
                    let edge: &mut Edge = &mut edges[e];
                    if edge.from == br.from {
                        edge.y_ft += yft;
                        edge.y_tf += ytf;
                    } else {
                        edge.y_ft += ytf;
                        edge.y_tf += yft;
                    }
                    edge.y_series += br.series_admittance();
                }
            }
        }
        debug_assert!(diag.len() == n);
        Admittance { diag, edges }
    }

    /// The radial tree view rooted at the slack, or `None` if the in-service network is meshed.
    pub fn tree(&self) -> Option<Tree> {
        Tree::build(self.buses.len(), self.slack, &self.admittance().edges)
    }

    /// Starting angles (radians): the reference angle minus the transformer phase shifts on a
    /// breadth-first path from the slack. A flat start diverges behind the 150° Dyn5 transformers.
    pub fn shifted_start_angles(&self, adm: &Admittance) -> Vec<f64> {
        let n = self.buses.len();
        let mut adj: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
        for e in &adm.edges {
            let s = e.shift_deg.to_radians();
            adj[e.from].push((e.to, -s));
            adj[e.to].push((e.from, s));
        }
        let mut va = vec![f64::NAN; n];
        va[self.slack] = self.buses[self.slack].va_degree.to_radians();
        let mut queue = std::collections::VecDeque::from([self.slack]);
        while let Some(i) = queue.pop_front() {
            for &(j, d) in &adj[i] {
                if va[j].is_nan() {
                    va[j] = va[i] + d;
                    queue.push_back(j);
                }
            }
        }
        va.iter().map(|a| if a.is_nan() { 0.0 } else { *a }).collect()
    }
}
