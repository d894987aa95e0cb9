//! Tasks: a network, its load and PV time series, the agents (one per PV inverter), their zones,
//! the limits, the time resolution and the episode length — defined in TOML.
//!
//! A [`TaskSpec`] is the TOML as written (unknown keys are errors); [`Task::build`] resolves it
//! against the data (network, profiles) into everything the environment needs, and fails with a
//! [`TaskError`] naming the file and the field. Built-in tasks live in `configs/tasks/*.toml` and are
//! compiled into the binary ([`builtin_names`], [`Task::builtin`]).

mod schema;

pub use schema::{
    AgentFault, Backend, BusItem, BusSet, DataNoise, FaultKind, FaultSpec, LoadProfiles, LoadSpec, Mode,
    NoiseSpec, ObservationSpec, PvPlacement, PvSpec, PvUnit, Rating, RewardSpec, TaskSpec, ZoneList,
    ZoneSource, ZoneSpec,
};

use voltarena_grid::network::{DetailedNetwork, LoadError, Network};
use crate::profiles::{start_ranges, Profiles, Split, DAYS};
use rand::{RngExt, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Built-in task specs, compiled in from `configs/tasks/`.
const BUILTIN: [(&str, &str); 4] = [
    ("mapdn33", include_str!("../../../configs/tasks/mapdn33.toml")),
    ("mapdn141", include_str!("../../../configs/tasks/mapdn141.toml")),
    ("mapdn322", include_str!("../../../configs/tasks/mapdn322.toml")),
    ("rural2_96", include_str!("../../../configs/tasks/rural2_96.toml")),
];

/// Names of the built-in tasks.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

/// The data folder: `$VOLTARENA_DATA`, else `./data` when it holds the networks, else the
/// repository's `data/` next to this crate.
pub fn data_dir() -> PathBuf {
    if let Ok(d) = std::env::var("VOLTARENA_DATA") {
        return PathBuf::from(d);
    }
    let local = PathBuf::from("data");
    if local.join("networks").is_dir() {
        return local;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../data"))
}

/// A load of a task: nominal powers (after peak scaling) and its profile columns.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskLoad {
    pub bus: usize,
    pub p_mw: f64,
    pub q_mvar: f64,
    pub p_col: usize,
    pub q_col: usize,
    /// Standard deviation over the year of p and q (MW, Mvar), for the data-noise model.
    pub p_std: f64,
    pub q_std: f64,
}

/// A PV inverter = an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPv {
    pub bus: usize,
    /// Active power per unit of profile factor (MW): p(t) = p_mw × profile(t).
    pub p_mw: f64,
    /// Nominal (DC) size (MW): `p_mw` before `normalize_profile`.
    pub dc_mw: f64,
    /// Inverter rating S (MVA).
    pub s_mva: f64,
    pub col: usize,
    pub p_std: f64,
    pub zone: usize,
}

/// A zone: the buses an agent observes.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub name: String,
    /// Bus indices, sorted by bus id.
    pub buses: Vec<usize>,
    /// Agents (PV indices) in the zone.
    pub agents: Vec<usize>,
}

/// A resolved task.
#[derive(Debug, Clone)]
pub struct Task {
    pub spec: TaskSpec,
    /// Where the spec came from ("builtin:NAME" or a file path).
    pub source: String,
    pub network: Network,
    pub bus_id: Vec<i64>,
    pub loads: Vec<TaskLoad>,
    pub pvs: Vec<TaskPv>,
    pub zones: Vec<Zone>,
    /// Largest zone size.
    pub max_zone: usize,
    /// Buses in the reward's voltage term and in CR.
    pub metric_buses: Vec<usize>,
    /// Observation normalisation: powers are divided by this (MW; the mean inverter rating);
    /// voltages are mapped to (v − 1)/0.05.
    pub power_scale_mw: f64,
    pub normalize: bool,
    /// In-service branches (the reward's mean-loss denominator).
    pub n_branches: usize,
    pub profiles: Arc<Profiles>,
}

/// A task that cannot be built: where and what.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskError {
    /// The task file (or `builtin:NAME`).
    pub source: String,
    /// The field (e.g. `zones.list[2].buses`).
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.source, self.field, self.message)
    }
}

impl std::error::Error for TaskError {}

fn profiles_cached(dir: &Path) -> Result<Arc<Profiles>, TaskError> {
    static CACHE: OnceLock<Mutex<Vec<(PathBuf, Arc<Profiles>)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = c.iter().find(|(d, _)| d == dir) {
        return Ok(p.clone());
    }
    let p = Arc::new(Profiles::load_dir(dir).map_err(|e| TaskError {
        source: dir.display().to_string(),
        field: "profiles".into(),
        message: e.to_string(),
    })?);
    c.push((dir.to_path_buf(), p.clone()));
    Ok(p)
}

impl Task {
    /// A built-in task by name.
    pub fn builtin(name: &str) -> Result<Task, TaskError> {
        let text = BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).ok_or_else(|| TaskError {
            source: name.to_string(),
            field: "task".into(),
            message: format!("unknown task '{name}'; built-in tasks: {}", builtin_names().join(", ")),
        })?;
        Task::from_toml(text, &format!("builtin:{name}"), None)
    }

    /// A built-in task name, or a path to a task TOML file.
    pub fn load(name_or_path: &str) -> Result<Task, TaskError> {
        if BUILTIN.iter().any(|(n, _)| *n == name_or_path) {
            return Task::builtin(name_or_path);
        }
        let path = Path::new(name_or_path);
        if path.extension().is_some_and(|e| e == "toml") || path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| TaskError {
                source: name_or_path.into(),
                field: "file".into(),
                message: format!("cannot read: {e}"),
            })?;
            return Task::from_toml(&text, name_or_path, path.parent());
        }
        Task::builtin(name_or_path)
    }

    /// Parses and builds a task from TOML text; `dir` is where relative paths start.
    pub fn from_toml(text: &str, source: &str, dir: Option<&Path>) -> Result<Task, TaskError> {
        let spec: TaskSpec = toml::from_str(text).map_err(|e| {
            let field = e.span().map(|s| {
                let line = text[..s.start.min(text.len())].lines().count().max(1);
                format!("line {line}")
            });
            TaskError { source: source.into(), field: field.unwrap_or_else(|| "toml".into()), message: e.message().to_string() }
        })?;
        Task::build(spec, source, dir)
    }

    /// Resolves a spec against the data folder.
    pub fn build(spec: TaskSpec, source: &str, dir: Option<&Path>) -> Result<Task, TaskError> {
        let err = |field: &str, message: String| TaskError { source: source.into(), field: field.into(), message };
        // Scalar checks.
        if spec.resolution_s == 0 || 86_400 % spec.resolution_s != 0 {
            return Err(err("resolution_s", format!("must divide a day (86400 s) evenly, got {}", spec.resolution_s)));
        }
        if spec.episode_steps == 0 {
            return Err(err("episode_steps", "must be at least 1".into()));
        }
        if !(spec.v_min > 0.0 && spec.v_min < spec.v_max) {
            return Err(err("v_min", format!("expected 0 < v_min < v_max, got {} and {}", spec.v_min, spec.v_max)));
        }
        if !(spec.action_scale > 0.0 && spec.action_scale <= 1.0) {
            return Err(err("action_scale", format!("expected 0 < action_scale ≤ 1, got {}", spec.action_scale)));
        }
        if !(spec.pv.rating_factor >= 1.0) {
            return Err(err("pv.rating_factor", format!("inverter rating must be at least the PV size (≥ 1), got {}", spec.pv.rating_factor)));
        }
        if !(0.0..=1.0).contains(&spec.faults.drop_prob) {
            return Err(err("faults.drop_prob", format!("expected a probability in [0, 1], got {}", spec.faults.drop_prob)));
        }
        if spec.noise.data_sigma_frac < 0.0 || spec.noise.fluctuation_sigma < 0.0 || spec.observation.voltage_noise_pu < 0.0 {
            return Err(err("noise", "standard deviations must be ≥ 0".into()));
        }
        if spec.noise.fluctuation_sigma > 0.0 && !(spec.noise.fluctuation_tau_s > 0.0) {
            return Err(err("noise.fluctuation_tau_s", "must be positive".into()));
        }
        let data = data_dir();
        let net_path = [dir.map(|d| d.join(&spec.network)), Some(data.join(&spec.network))]
            .into_iter()
            .flatten()
            .find(|p| p.exists())
            .ok_or_else(|| err("network", format!("file '{}' not found (looked next to the task file and in {})", spec.network, data.display())))?;
        let det: DetailedNetwork = Network::from_json_file(&net_path).map_err(|e| match e {
            LoadError::Io { path, source } => err("network", format!("cannot read {}: {source}", path.display())),
            LoadError::Invalid(e) => err("network", e.to_string()),
        })?;
        let profiles = profiles_cached(&data.join("profiles"))?;
        let rows = profiles.rows();
        let days = rows / crate::profiles::ROWS_PER_DAY;
        let col = |name: &str, field: &str| {
            profiles.column(name).ok_or_else(|| err(field, format!("unknown profile '{name}'")))
        };
        let mut net = det.network.clone();
        if let Some(v) = spec.slack_vm_pu {
            if !(v > 0.5 && v < 1.5) {
                return Err(err("slack_vm_pu", format!("expected a voltage in (0.5, 1.5) pu, got {v}")));
            }
            let slack = net.slack;
            net.buses[slack].vm_pu = v;
        }
        let n = net.n_bus();

        // Loads.
        let mut loads = Vec::new();
        let (mut hh, mut com) = (0usize, 0usize);
        for (k, l) in det.loads.iter().enumerate().filter(|(_, l)| l.in_service) {
            let name = match spec.loads.profiles {
                LoadProfiles::Network => l.profile.clone().ok_or_else(|| {
                    err("loads.profiles", format!("load {} (id {}) has no profile in the network; use profiles = \"by_size\"", k, l.id))
                })?,
                LoadProfiles::BySize => {
                    let (list, i, field) = if l.p_mw >= spec.loads.commercial_above_mw && !spec.loads.commercial.is_empty() {
                        com += 1;
                        (&spec.loads.commercial, com - 1, "loads.commercial")
                    } else {
                        hh += 1;
                        (&spec.loads.household, hh - 1, "loads.household")
                    };
                    if list.is_empty() {
                        return Err(err(field, "needs at least one profile name".into()));
                    }
                    list[i % list.len()].clone()
                }
            };
            let p_col = col(&format!("{name}_pload"), "loads.profiles")?;
            let q_col = col(&format!("{name}_qload"), "loads.profiles")?;
            loads.push(TaskLoad { bus: l.bus, p_mw: l.p_mw, q_mvar: l.q_mvar, p_col, q_col, p_std: 0.0, q_std: 0.0 });
        }
        if let Some(peak) = spec.loads.peak_total_mw {
            if !(peak > 0.0) {
                return Err(err("loads.peak_total_mw", format!("must be positive, got {peak}")));
            }
            let cur = (0..rows).map(|t| loads.iter().map(|l| l.p_mw * profiles.values(l.p_col)[t]).sum::<f64>()).fold(0.0, f64::max);
            if !(cur > 0.0) {
                return Err(err("loads.peak_total_mw", "the loads' total is never positive; cannot scale".into()));
            }
            for l in &mut loads {
                l.p_mw *= peak / cur;
                l.q_mvar *= peak / cur;
            }
        }
        for l in &mut loads {
            l.p_std = l.p_mw.abs() * std_dev(profiles.values(l.p_col));
            l.q_std = l.q_mvar.abs() * std_dev(profiles.values(l.q_col));
        }

        // PV inverters.
        let mut pvs = Vec::new();
        match spec.pv.placement {
            PvPlacement::Sgens => {
                let mut cycle = 0usize;
                let mut sg: Vec<_> = det.sgens.iter().filter(|g| g.in_service).collect();
                sg.sort_by_key(|g| g.id);
                for g in sg {
                    let name = match &g.profile {
                        Some(p) => p.clone(),
                        None => {
                            if spec.pv.profiles.is_empty() {
                                return Err(err("pv.profiles", format!("sgen id {} has no profile; list PV profiles to assign", g.id)));
                            }
                            cycle += 1;
                            spec.pv.profiles[(cycle - 1) % spec.pv.profiles.len()].clone()
                        }
                    };
                    pvs.push(TaskPv { bus: g.bus, p_mw: g.p_mw, dc_mw: 0.0, s_mva: 0.0, col: col(&name, "pv.profiles")?, p_std: 0.0, zone: usize::MAX });
                }
            }
            PvPlacement::EveryBus => {
                if !(spec.pv.dc_kw_min > 0.0 && spec.pv.dc_kw_min <= spec.pv.dc_kw_max) {
                    return Err(err("pv.dc_kw_min", format!("expected 0 < dc_kw_min ≤ dc_kw_max, got {} and {}", spec.pv.dc_kw_min, spec.pv.dc_kw_max)));
                }
                if spec.pv.profiles.is_empty() {
                    return Err(err("pv.profiles", "list at least one PV profile".into()));
                }
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(spec.pv.seed);
                let mut k = 0;
                for b in 0..n {
                    if b == net.slack {
                        continue;
                    }
                    let dc_kw = rng.random_range(spec.pv.dc_kw_min..=spec.pv.dc_kw_max);
                    let name = &spec.pv.profiles[k % spec.pv.profiles.len()];
                    k += 1;
                    pvs.push(TaskPv { bus: b, p_mw: dc_kw / 1000.0, dc_mw: 0.0, s_mva: 0.0, col: col(name, "pv.profiles")?, p_std: 0.0, zone: usize::MAX });
                }
            }
            PvPlacement::Units => {
                for (i, u) in spec.pv.units.iter().enumerate() {
                    let field = format!("pv.units[{i}]");
                    let bus = det
                        .bus_index(u.bus)
                        .ok_or_else(|| err(&format!("{field}.bus"), format!("bus id {} is not in the network", u.bus)))?;
                    if !(u.dc_kw > 0.0) {
                        return Err(err(&format!("{field}.dc_kw"), format!("expected a positive size, got {}", u.dc_kw)));
                    }
                    pvs.push(TaskPv { bus, p_mw: u.dc_kw / 1000.0, dc_mw: 0.0, s_mva: 0.0, col: col(&u.profile, &format!("{field}.profile"))?, p_std: 0.0, zone: usize::MAX });
                }
            }
        }
        if pvs.is_empty() {
            return Err(err("pv", "the task has no PV inverter, hence no agent".into()));
        }
        for g in &mut pvs {
            g.dc_mw = g.p_mw;
        }
        if spec.pv.normalize_profile {
            for g in &mut pvs {
                let peak = profiles.values(g.col).iter().copied().fold(0.0, f64::max);
                if peak > 0.0 {
                    g.p_mw /= peak;
                }
            }
        }
        for (k, pv) in pvs.iter().enumerate() {
            if pv.bus == net.slack {
                return Err(err("pv", format!("PV {k} sits on the slack bus (id {}), where it cannot affect voltages", det.bus_id[pv.bus])));
            }
            if !(pv.p_mw >= 0.0) {
                return Err(err("pv", format!("PV {k} (bus id {}) has a negative size {} MW", det.bus_id[pv.bus], pv.p_mw)));
            }
        }
        if let Some(peak) = spec.pv.peak_total_mw {
            if !(peak > 0.0) {
                return Err(err("pv.peak_total_mw", format!("must be positive, got {peak}")));
            }
            let cur = (0..rows).map(|t| pvs.iter().map(|g| g.p_mw * profiles.values(g.col)[t]).sum::<f64>()).fold(0.0, f64::max);
            if !(cur > 0.0) {
                return Err(err("pv.peak_total_mw", "the PVs never produce; cannot scale".into()));
            }
            for g in &mut pvs {
                g.p_mw *= peak / cur;
                g.dc_mw *= peak / cur;
            }
        }
        // Ratings: MAPDN takes the peak over the whole file; clean mode over the training days.
        let train_rows: Vec<usize> = (0..rows).filter(|&t| spec.mode == Mode::Compat || Split::of_day(t / 96) == Split::Train).collect();
        for g in &mut pvs {
            let vals = profiles.values(g.col);
            g.s_mva = spec.pv.rating_factor
                * match spec.pv.rating {
                    Rating::Peak => g.p_mw * train_rows.iter().map(|&t| vals[t]).fold(0.0, f64::max),
                    Rating::Nominal => g.dc_mw,
                };
            g.p_std = g.p_mw * std_dev(vals);
            if !(g.s_mva > 0.0) {
                return Err(err("pv", format!("PV at bus id {} never produces: its rating would be 0", det.bus_id[g.bus])));
            }
        }

        // Zones.
        let bus_index = |id: i64| det.bus_id.iter().position(|&b| b == id);
        let mut zones: Vec<Zone> = Vec::new();
        let mut zone_of = vec![usize::MAX; n];
        match spec.zones.source {
            ZoneSource::Lists => {
                if spec.zones.list.is_empty() {
                    return Err(err("zones.list", "source = \"lists\" needs at least one [[zones.list]]".into()));
                }
                for (zi, z) in spec.zones.list.iter().enumerate() {
                    let field = format!("zones.list[{zi}].buses");
                    let mut buses = Vec::new();
                    for item in &z.buses {
                        let (a, b) = match item {
                            BusItem::Id(i) => (*i, *i),
                            BusItem::Range(s) => parse_range(s).ok_or_else(|| err(&field, format!("'{s}' is neither a bus id nor a range 'a-b'")))?,
                        };
                        for id in a..=b {
                            let bi = bus_index(id).ok_or_else(|| err(&field, format!("zone '{}': bus id {id} is not in the network", z.name)))?;
                            if zone_of[bi] != usize::MAX {
                                return Err(err(&field, format!("bus id {id} is in both zone '{}' and zone '{}'; zones must not overlap", zones.get(zone_of[bi]).map(|z: &Zone| z.name.as_str()).unwrap_or(&z.name), z.name)));
                            }
                            zone_of[bi] = zones.len();
                            buses.push(bi);
                        }
                    }
                    zones.push(Zone { name: z.name.clone(), buses, agents: Vec::new() });
                }
            }
            ZoneSource::Feeders => {
                let tree = net.tree().ok_or_else(|| err("zones.source", "\"feeders\" needs a radial network".into()))?;
                for &c in tree.children(net.slack) {
                    let mut buses = Vec::new();
                    let mut stack = vec![c];
                    while let Some(b) = stack.pop() {
                        zone_of[b] = zones.len();
                        buses.push(b);
                        stack.extend_from_slice(tree.children(b));
                    }
                    zones.push(Zone { name: format!("feeder{}", zones.len() + 1), buses, agents: Vec::new() });
                }
            }
        }
        for z in &mut zones {
            z.buses.sort_by_key(|&b| det.bus_id[b]);
        }
        for (k, pv) in pvs.iter_mut().enumerate() {
            let z = zone_of[pv.bus];
            if z == usize::MAX {
                return Err(err("zones", format!("PV {k} at bus id {} is in no zone", det.bus_id[pv.bus])));
            }
            pv.zone = z;
            zones[z].agents.push(k);
        }
        zones.retain(|z| !z.agents.is_empty());
        for (zi, z) in zones.iter().enumerate() {
            for &k in &z.agents {
                pvs[k].zone = zi;
            }
        }
        let max_zone = zones.iter().map(|z| z.buses.len()).max().unwrap_or(0);

        // Faults.
        for (i, f) in spec.faults.agents.iter().enumerate() {
            if f.agent >= pvs.len() {
                return Err(err(&format!("faults.agents[{i}].agent"), format!("agent {} does not exist (the task has {})", f.agent, pvs.len())));
            }
            if f.from_step == 0 || f.from_step > f.to_step {
                return Err(err(&format!("faults.agents[{i}]"), format!("expected 1 ≤ from_step ≤ to_step, got {} and {}", f.from_step, f.to_step)));
            }
        }
        // The episode must fit in the test runs (2 days) so that every split can host it.
        if start_ranges(Split::Test, days.min(DAYS), spec.resolution_s, spec.episode_steps).is_empty() {
            return Err(err("episode_steps", format!(
                "{} steps of {} s do not fit in the 2-day test blocks of the day split",
                spec.episode_steps, spec.resolution_s
            )));
        }
        let bus_set = spec.reward.buses.unwrap_or(if spec.mode == Mode::Compat { BusSet::All } else { BusSet::NonSlack });
        let metric_buses = (0..n).filter(|&b| bus_set == BusSet::All || b != net.slack).collect();
        let power_scale_mw = pvs.iter().map(|g| g.s_mva).sum::<f64>() / pvs.len() as f64;
        let normalize = spec.observation.normalize.unwrap_or(spec.mode == Mode::Clean);
        let n_branches = net.active_branches().count();
        Ok(Task {
            n_branches,
            source: source.into(),
            network: net,
            bus_id: det.bus_id,
            loads,
            pvs,
            zones,
            max_zone,
            metric_buses,
            power_scale_mw,
            normalize,
            profiles,
            spec,
        })
    }

    pub fn n_agents(&self) -> usize {
        self.pvs.len()
    }

    /// Length of one agent's observation: 4·max|Z| + 2 with angles, 3·max|Z| + 2 without.
    pub fn obs_dim(&self) -> usize {
        (if self.spec.observation.angles { 4 } else { 3 }) * self.max_zone + 2
    }

    /// Length of the global state: 4·N + 2·n_pv (bus P, Q, PV p, q, all |V|, all θ).
    pub fn state_dim(&self) -> usize {
        4 * self.network.n_bus() + 2 * self.pvs.len()
    }

    /// Days in the profile year.
    pub fn days(&self) -> usize {
        (self.profiles.rows() / crate::profiles::ROWS_PER_DAY).min(DAYS)
    }

    /// Valid episode start steps for a split (inclusive ranges, in task steps).
    pub fn start_ranges(&self, split: Split) -> Vec<(usize, usize)> {
        start_ranges(split, self.days(), self.spec.resolution_s, self.spec.episode_steps)
    }
}

fn parse_range(s: &str) -> Option<(i64, i64)> {
    let s = s.replace('–', "-");
    let (a, b) = s.split_once('-')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

fn std_dev(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n).sqrt()
}
