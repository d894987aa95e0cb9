//! Reader for the detailed JSON networks (`data/networks/*.json`; field by field in
//! `data/README.md`). Bus numbers are the pandapower ids; buses are ordered by their contiguous
//! `idx`, which is the order of every array in `data/reference/`.

use super::{Branch, Bus, BusKind, LoadError, Network, NetworkError};
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
struct RawNet {
    name: String,
    base_mva: f64,
    slack: RawSlack,
    buses: Vec<RawBus>,
    loads: Vec<RawElement>,
    sgens: Vec<RawElement>,
    bus_injection_mw: Vec<f64>,
    bus_injection_mvar: Vec<f64>,
    branches_ppc: Vec<RawBranch>,
}

#[derive(Deserialize)]
struct RawSlack {
    bus: i64,
    vm_pu: f64,
    va_degree: f64,
}

#[derive(Deserialize)]
struct RawBus {
    id: i64,
    idx: usize,
    vn_kv: f64,
}

#[derive(Deserialize)]
struct RawBranch {
    from_bus: i64,
    to_bus: i64,
    r_pu: f64,
    x_pu: f64,
    g_pu: f64,
    b_pu: f64,
    tap: f64,
    shift_deg: f64,
    status: i64,
}

#[derive(Deserialize)]
struct RawElement {
    id: i64,
    bus: i64,
    p_mw: f64,
    q_mvar: f64,
    #[serde(default = "one")]
    scaling: f64,
    in_service: bool,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    sn_mva: Option<f64>,
}

fn one() -> f64 {
    1.0
}

/// A load of the detailed network (constant power).
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// pandapower id.
    pub id: i64,
    /// Bus index (position in `Network::buses`).
    pub bus: usize,
    /// Nominal demand (MW / Mvar, scaling applied; consumption positive).
    pub p_mw: f64,
    pub q_mvar: f64,
    pub in_service: bool,
    /// SimBench profile name, if any.
    pub profile: Option<String>,
}

/// A static generator (PV) of the detailed network.
#[derive(Debug, Clone, PartialEq)]
pub struct Sgen {
    pub id: i64,
    /// Bus index.
    pub bus: usize,
    /// Nominal active power (MW, scaling applied).
    pub p_mw: f64,
    pub q_mvar: f64,
    /// Rated apparent power (MVA), when the data give one.
    pub sn_mva: Option<f64>,
    pub in_service: bool,
    /// Element name; in the MAPDN networks, the zone.
    pub name: Option<String>,
    /// SimBench PV profile name, if any.
    pub profile: Option<String>,
}

/// A detailed network: the physics (`network`) plus its elements.
#[derive(Debug, Clone)]
pub struct DetailedNetwork {
    pub network: Network,
    /// pandapower id of each bus, in bus order (also `network.buses[i].number`).
    pub bus_id: Vec<i64>,
    pub loads: Vec<Load>,
    pub sgens: Vec<Sgen>,
}

impl DetailedNetwork {
    /// Bus index of a pandapower bus id.
    pub fn bus_index(&self, id: i64) -> Option<usize> {
        self.bus_id.iter().position(|&b| b == id)
    }
}

pub(super) fn read(path: &Path) -> Result<DetailedNetwork, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io { path: path.to_path_buf(), source })?;
    Ok(parse(&text, Some(path))?)
}

/// Parses a detailed JSON network; `path` (if any) goes into errors and the network's `source`.
pub(super) fn parse(text: &str, path: Option<&Path>) -> Result<DetailedNetwork, NetworkError> {
    let err = |line: Option<usize>, field: &str, message: String| NetworkError {
        file: path.map(Path::to_path_buf),
        line,
        field: field.to_string(),
        message,
    };
    let raw: RawNet = serde_json::from_str(text).map_err(|e| {
        err(Some(e.line()), "json", format!("{e}; expected a detailed network (see data/README.md)"))
    })?;
    let n = raw.buses.len();
    let mut buses_sorted: Vec<&RawBus> = raw.buses.iter().collect();
    buses_sorted.sort_by_key(|b| b.idx);
    for (k, b) in buses_sorted.iter().enumerate() {
        if b.idx != k {
            return Err(err(None, "buses[].idx", format!("idx values must be 0..{n} exactly; missing {k}")).into());
        }
    }
    let bus_id: Vec<i64> = buses_sorted.iter().map(|b| b.id).collect();
    let index: std::collections::HashMap<i64, usize> = bus_id.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let lookup = |id: i64, field: &str| -> Result<usize, NetworkError> {
        index.get(&id).copied().ok_or_else(|| err(None, field, format!("unknown bus id {id}")))
    };
    let slack = lookup(raw.slack.bus, "slack.bus")?;
    if raw.bus_injection_mw.len() != n || raw.bus_injection_mvar.len() != n {
        return Err(err(None, "bus_injection_mw", format!("expected {n} values (one per bus)")).into());
    }
    let buses = buses_sorted
        .iter()
        .enumerate()
        .map(|(i, b)| Bus {
            number: b.id.max(0) as u32,
            kind: if i == slack { BusKind::Ref } else { BusKind::Pq },
            p_inj_mw: raw.bus_injection_mw[i],
            q_inj_mvar: raw.bus_injection_mvar[i],
            gs_mw: 0.0,
            bs_mvar: 0.0,
            vm_pu: if i == slack { raw.slack.vm_pu } else { 1.0 },
            va_degree: if i == slack { raw.slack.va_degree } else { 0.0 },
            base_kv: b.vn_kv,
            vmax_pu: 2.0,
            vmin_pu: 0.0,
            line: 0,
        })
        .collect();
    let mut branches = Vec::with_capacity(raw.branches_ppc.len());
    for br in &raw.branches_ppc {
        branches.push(Branch {
            from: lookup(br.from_bus, "branches_ppc[].from_bus")?,
            to: lookup(br.to_bus, "branches_ppc[].to_bus")?,
            r: br.r_pu,
            x: br.x_pu,
            b: br.b_pu,
            g: br.g_pu,
            ratio: if br.tap == 0.0 { 1.0 } else { br.tap },
            shift_deg: br.shift_deg,
            in_service: br.status > 0,
            line: 0,
        });
    }
    let network = Network {
        name: raw.name,
        source: path.map(Path::to_path_buf),
        base_mva: raw.base_mva,
        buses,
        branches,
        slack,
    };
    network.validate()?;
    let loads = raw
        .loads
        .iter()
        .map(|l| {
            Ok(Load {
                id: l.id,
                bus: lookup(l.bus, "loads[].bus")?,
                p_mw: l.p_mw * l.scaling,
                q_mvar: l.q_mvar * l.scaling,
                in_service: l.in_service,
                profile: l.profile.clone(),
            })
        })
        .collect::<Result<Vec<_>, NetworkError>>()?;
    let sgens = raw
        .sgens
        .iter()
        .map(|g| {
            Ok(Sgen {
                id: g.id,
                bus: lookup(g.bus, "sgens[].bus")?,
                p_mw: g.p_mw * g.scaling,
                q_mvar: g.q_mvar * g.scaling,
                sn_mva: g.sn_mva,
                in_service: g.in_service,
                name: g.name.clone(),
                profile: g.profile.clone(),
            })
        })
        .collect::<Result<Vec<_>, NetworkError>>()?;
    Ok(DetailedNetwork { network, bus_id, loads, sgens })
}
