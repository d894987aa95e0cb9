//! Tasks: a network, its load and PV time series, the agents (one per PV inverter), their zones,
//! the limits, the time resolution and the episode length — defined in TOML.
//!
//! A [`TaskSpec`] is the TOML as written (unknown keys are errors); [`Task::build`] resolves it
//! against the data (network, profiles) into everything the environment needs, and fails with a
//! [`TaskError`] naming the file and the field. Built-in tasks live in `configs/tasks/*.toml` and are
//! compiled into the binary ([`builtin_names`], [`Task::builtin`]).
//!
//! The module's parts: `schema` (the TOML types), `build` ([`Task::build`], step by step) and
//! `layout` ([`ObsLayout`]: where each feature sits in the observations and the state, defined
//! there only); everything public is re-exported here.

mod build;
mod layout;
mod schema;

pub use layout::{ObsLayout, StateBlocks, ZoneBlocks};
pub use schema::{
    AgentFault, Backend, BusItem, BusSet, DataNoise, FaultKind, FaultSpec, LoadProfiles, LoadSpec, Mode,
    NoiseSpec, ObservationSpec, PvPlacement, PvSpec, PvUnit, Rating, RewardSpec, TaskSpec, ZoneList,
    ZoneSource, ZoneSpec,
};

use crate::profiles::{start_ranges, Profiles, Split, DAYS, ROWS_PER_DAY};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use voltarena_grid::network::Network;

/// Built-in task specs, compiled in from `configs/tasks/`.
const BUILTIN: [(&str, &str); 5] = [
    ("mapdn33", include_str!("../../../configs/tasks/mapdn33.toml")),
    ("mapdn141", include_str!("../../../configs/tasks/mapdn141.toml")),
    ("mapdn322", include_str!("../../../configs/tasks/mapdn322.toml")),
    ("rural2_96", include_str!("../../../configs/tasks/rural2_96.toml")),
    ("rural2_96_midday", include_str!("../../../configs/tasks/rural2_96_midday.toml")),
];

/// Names of the built-in tasks.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

/// The TOML text of a built-in task.
pub fn builtin_toml(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

static DATA_DIR: std::sync::RwLock<Option<PathBuf>> = std::sync::RwLock::new(None);

/// Sets the data folder used when `$VOLTARENA_DATA` is not set (the Python package points it at
/// the data it carries); `None` goes back to the default.
pub fn set_data_dir(dir: Option<PathBuf>) {
    *DATA_DIR.write().unwrap_or_else(|e| e.into_inner()) = dir;
}

/// The data folder: `$VOLTARENA_DATA`, else the folder given to [`set_data_dir`], else `./data`
/// when it holds the networks, else the repository's `data/` next to this crate.
pub fn data_dir() -> PathBuf {
    if let Ok(d) = std::env::var("VOLTARENA_DATA") {
        return PathBuf::from(d);
    }
    if let Some(d) = DATA_DIR.read().unwrap_or_else(|e| e.into_inner()).clone() {
        return d;
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
    /// Profile column.
    pub col: usize,
    /// Standard deviation over the year of p (MW), for the data-noise model.
    pub p_std: f64,
    /// Index of its zone in `Task::zones`.
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

/// A task that cannot be built: where and what. Displayed as `SOURCE: FIELD: MESSAGE`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskError {
    /// The task file (or `builtin:NAME`).
    pub source: String,
    /// The field (e.g. `zones.list[2].buses`; `line N` for TOML syntax errors).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl TaskError {
    pub fn new(source: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> TaskError {
        TaskError { source: source.into(), field: field.into(), message: message.into() }
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.source, self.field, self.message)
    }
}

impl std::error::Error for TaskError {}

/// Profiles already loaded, by folder (shared by every task built in the process).
type ProfilesCache = Mutex<Vec<(PathBuf, Arc<Profiles>)>>;

fn profiles_cached(dir: &Path) -> Result<Arc<Profiles>, TaskError> {
    static CACHE: OnceLock<ProfilesCache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = c.iter().find(|(d, _)| d == dir) {
        return Ok(p.clone());
    }
    let p = Arc::new(Profiles::load_dir(dir).map_err(|e| TaskError::new(dir.display().to_string(), "profiles", e.to_string()))?);
    c.push((dir.to_path_buf(), p.clone()));
    Ok(p)
}

impl Task {
    /// A built-in task by name.
    pub fn builtin(name: &str) -> Result<Task, TaskError> {
        let text = BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t).ok_or_else(|| {
            TaskError::new(name, "task", format!("unknown task '{name}'; built-in tasks: {}", builtin_names().join(", ")))
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
            let text = std::fs::read_to_string(path).map_err(|e| TaskError::new(name_or_path, "file", format!("cannot read: {e}")))?;
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
            TaskError::new(source, field.unwrap_or_else(|| "toml".into()), e.message())
        })?;
        Task::build(spec, source, dir)
    }

    /// Agents: one per PV inverter.
    pub fn n_agents(&self) -> usize {
        self.pvs.len()
    }

    /// The observation and state layout for the task's mode and options (cheap: a few integers).
    pub fn layout(&self) -> ObsLayout {
        ObsLayout::new(self.spec.mode, self.spec.observation.angles, self.max_zone, self.network.n_bus(), self.pvs.len())
    }

    /// Length of one agent's observation: 4·max|Z| + 2 with angles, 3·max|Z| + 2 without
    /// ([`ObsLayout::obs_dim`]).
    pub fn obs_dim(&self) -> usize {
        self.layout().obs_dim()
    }

    /// Length of the global state: 4·N + 2·n_pv (bus P, Q, PV p, q, all |V|, all θ;
    /// [`ObsLayout::state_dim`]).
    pub fn state_dim(&self) -> usize {
        self.layout().state_dim()
    }

    /// Days in the profile year.
    pub fn days(&self) -> usize {
        (self.profiles.rows() / ROWS_PER_DAY).min(DAYS)
    }

    /// Valid episode start steps for a split (inclusive ranges, in task steps).
    pub fn start_ranges(&self, split: Split) -> Vec<(usize, usize)> {
        start_ranges(split, self.days(), self.spec.resolution_s, self.spec.episode_steps, self.start_window())
    }

    /// The validated `start_window` in seconds of the day.
    pub fn start_window(&self) -> Option<(u32, u32)> {
        let w = self.spec.start_window.as_ref()?;
        Some((crate::profiles::parse_hhmm(&w[0])?, crate::profiles::parse_hhmm(&w[1])?))
    }
}
