//! The task file's schema: the serde types of a task TOML as written ([`TaskSpec`] and everything
//! it contains), with their defaults. Unknown keys are errors; units are in the field docs (MW,
//! Mvar, kW for PV sizes, pu, s). [`super::Task::build`] resolves a spec against the data.

use crate::reward::Barrier;
use serde::{Deserialize, Serialize};

/// Physics used to step the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Full AC power flow (Newton–Raphson).
    #[default]
    Ac,
    /// LinDistFlow (squared form).
    Lindistflow,
}

/// MAPDN semantics, or the clean semantics that fix MAPDN's quirks (docs/ENVIRONMENT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Clean semantics: one instant per step, normalised observations, time limit as truncation.
    #[default]
    Clean,
    /// MAPDN's semantics, quirks included.
    Compat,
}

/// How loads get their profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadProfiles {
    /// Each load's own SimBench profile from the network file (error if one has none).
    Network,
    /// Loads at or above `commercial_above_mw` cycle through `commercial`, the others through
    /// `household`, in load order.
    BySize,
}

/// `[loads]`: the profiles of the network's loads and their scaling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    pub profiles: LoadProfiles,
    /// Household profile names (SimBench, e.g. `H0-A`) for `by_size`.
    #[serde(default)]
    pub household: Vec<String>,
    /// Commercial profile names (SimBench, e.g. `G0-A`) for `by_size`.
    #[serde(default)]
    pub commercial: Vec<String>,
    /// Nominal active power (MW) from which a load counts as commercial (`by_size`).
    #[serde(default)]
    pub commercial_above_mw: f64,
    /// Scale all loads so that the year's peak of their total active power is this (MW).
    #[serde(default)]
    pub peak_total_mw: Option<f64>,
}

/// Where the PV inverters (the agents) are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PvPlacement {
    /// At the network's static generators, in id order.
    Sgens,
    /// One at every non-slack bus (the network's own static generators are dropped), DC size
    /// uniform in [`dc_kw_min`, `dc_kw_max`] from `seed`.
    EveryBus,
    /// The units listed in `[[pv.units]]` (bus id, DC size, profile).
    Units,
}

/// One explicitly placed PV unit (`placement = "units"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PvUnit {
    /// Bus id (pandapower id).
    pub bus: i64,
    /// Nominal (DC) size (kW).
    pub dc_kw: f64,
    /// PV profile name (`PV1`..`PV8`).
    pub profile: String,
}

/// What the inverter rating S is a multiple of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    /// Of the PV's peak active power over the rating period (MAPDN: the whole file; clean
    /// mode: the training days).
    Peak,
    /// Of the PV's nominal (DC) size.
    Nominal,
}

/// `[pv]`: where the PV inverters (the agents) are, their sizes and ratings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PvSpec {
    pub placement: PvPlacement,
    /// PV profiles (`PV1`..`PV8`): for sgens without one, cycled in sgen order; for `every_bus`,
    /// cycled in bus order.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Scale all PVs so that the year's peak of their total active power is this (MW).
    #[serde(default)]
    pub peak_total_mw: Option<f64>,
    /// Inverter rating S as a multiple of `rating` (≥ 1; default 1.2).
    #[serde(default = "default_rating_factor")]
    pub rating_factor: f64,
    /// What the rating is a multiple of (default: the peak).
    #[serde(default = "default_rating")]
    pub rating: Rating,
    /// Divide each PV profile by its annual maximum, so that the peak output equals the nominal
    /// (DC) size (clear-sky peak) instead of SimBench's 59–63 %.
    #[serde(default)]
    pub normalize_profile: bool,
    /// Smallest nominal (DC) size of `every_bus` (kW).
    #[serde(default)]
    pub dc_kw_min: f64,
    /// Largest nominal (DC) size of `every_bus` (kW).
    #[serde(default)]
    pub dc_kw_max: f64,
    /// Seed of the `every_bus` sizes.
    #[serde(default)]
    pub seed: u64,
    /// The units of `placement = "units"`.
    #[serde(default)]
    pub units: Vec<PvUnit>,
}

fn default_rating_factor() -> f64 {
    1.2
}
fn default_rating() -> Rating {
    Rating::Peak
}

/// A bus id or an inclusive range "a-b".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BusItem {
    /// One bus id (pandapower id).
    Id(i64),
    /// An inclusive range of bus ids, "a-b" (an en dash works too).
    Range(String),
}

/// One `[[zones.list]]`: a named zone and its buses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneList {
    pub name: String,
    /// Bus ids and ranges; zones must not overlap.
    pub buses: Vec<BusItem>,
}

/// Where the zones (the buses each agent observes) come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneSource {
    /// The lists in `[[zones.list]]` (bus ids).
    Lists,
    /// One zone per feeder leaving the slack bus.
    Feeders,
}

/// `[zones]`. Zones without a PV are dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    pub source: ZoneSource,
    /// The zones of `source = "lists"`.
    #[serde(default)]
    pub list: Vec<ZoneList>,
}

/// Which buses count in the reward's voltage term and in CR / violation metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusSet {
    /// Every bus but the slack (clean default).
    #[default]
    NonSlack,
    /// Every bus, slack included (MAPDN).
    All,
}

/// `[reward]`: r = −(mean voltage barrier + α · mean |q| [+ w · mean branch loss] [+ w_v · (1 − CR_t)]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardSpec {
    /// The voltage barrier l_v (default: L1).
    pub barrier: Barrier,
    /// α: weight of the mean |q| term (q in Mvar).
    pub q_weight: f64,
    /// Weight of the mean branch loss (MW) term; 0 = off.
    pub loss_weight: f64,
    /// Weight w of a penalty for every step with a bus outside [v_min, v_max] — the steps CR
    /// counts as failed: r −= w · (1 − CR_t). The barriers price a violation by its depth, so a
    /// feeder-wide average makes a slight violation at one bus cheap next to the reactive power
    /// that prevents it; this term prices it as the benchmark scores it. 0 (default) = off, and
    /// left out of resolved configs.
    #[serde(skip_serializing_if = "crate::metrics::is_zero")]
    pub violation_weight: f64,
    /// Subtracted from the previous reward when the power flow fails (MAPDN: 200).
    pub divergence_penalty: f64,
    /// Buses in the voltage term and in CR; default: all for compat mode, non-slack for clean.
    pub buses: Option<BusSet>,
}

impl Default for RewardSpec {
    fn default() -> Self {
        RewardSpec { barrier: Barrier::L1, q_weight: 0.1, loss_weight: 0.0, violation_weight: 0.0, divergence_penalty: 200.0, buses: None }
    }
}

/// `[observation]`: what the agents observe (the layout: [`super::ObsLayout`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObservationSpec {
    /// Include zone voltage angles.
    pub angles: bool,
    /// Normalise features (default: yes in clean mode, no in compat mode).
    pub normalize: Option<bool>,
    /// Gaussian measurement noise on observed voltage magnitudes (pu, σ).
    pub voltage_noise_pu: f64,
}

impl Default for ObservationSpec {
    fn default() -> Self {
        ObservationSpec { angles: true, normalize: None, voltage_noise_pu: 0.0 }
    }
}

/// Noise on the exogenous data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataNoise {
    #[default]
    None,
    /// Zero-mean Gaussian, σ = `data_sigma_frac` × the element's standard deviation over the year,
    /// clipped to physical ranges (PV ≥ 0, and 0 where the clean value is 0).
    Gaussian,
    /// MAPDN's positive-only x ← x + σ|N(0,1)|.
    HalfNormal,
}

/// `[noise]`: noise on the exogenous data (loads, PV).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoiseSpec {
    /// Noise model on each data row (applied on the train split unless `reset` says otherwise).
    pub data: DataNoise,
    /// Its σ as a fraction of each element's standard deviation over the year.
    pub data_sigma_frac: f64,
    /// Sub-interval fluctuation: multiplicative AR(1) noise on every load and PV, σ (relative).
    pub fluctuation_sigma: f64,
    /// Its correlation time (s).
    pub fluctuation_tau_s: f64,
}

impl Default for NoiseSpec {
    fn default() -> Self {
        NoiseSpec { data: DataNoise::None, data_sigma_frac: 0.01, fluctuation_sigma: 0.0, fluctuation_tau_s: 60.0 }
    }
}

/// What happens to a failed agent's setpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The inverter keeps its last reactive-power setpoint.
    Frozen,
    /// The inverter's reactive power is zero.
    Zero,
}

/// One `[[faults.agents]]`: an agent's inverter fails over a span of steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFault {
    /// Agent (PV) index, 0-based.
    pub agent: usize,
    /// First episode step (1-based) of the failure, inclusive.
    pub from_step: usize,
    /// Last failed step, inclusive.
    pub to_step: usize,
    /// What the failed inverter does.
    pub kind: FaultKind,
}

/// `[faults]`: failed agents and lost action messages.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSpec {
    pub agents: Vec<AgentFault>,
    /// Probability that an agent's action message is lost in a step (the inverter keeps its
    /// previous setpoint).
    pub drop_prob: f64,
}

/// A task as written in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub name: String,
    /// One line for listings.
    #[serde(default)]
    pub description: String,
    /// Detailed JSON network, relative to the TOML file's folder or to the data folder.
    pub network: String,
    /// Seconds per environment step.
    pub resolution_s: u32,
    /// Steps per episode.
    pub episode_steps: usize,
    /// Local times ["HH:MM", "HH:MM"] between which episodes start (default: any time of day),
    /// e.g. daytime windows for a task about PV over-voltages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_window: Option<[String; 2]>,
    /// Lower voltage limit (pu; default 0.95).
    #[serde(default = "default_vmin")]
    pub v_min: f64,
    /// Upper voltage limit (pu; default 1.05).
    #[serde(default = "default_vmax")]
    pub v_max: f64,
    /// Voltage magnitude held at the slack bus (pu); default: the network file's.
    #[serde(default)]
    pub slack_vm_pu: Option<f64>,
    /// Action a ∈ [−1, 1] maps to q = a · action_scale · √(S² − p²).
    pub action_scale: f64,
    /// Physics (default: AC).
    #[serde(default)]
    pub backend: Backend,
    /// Clean or MAPDN-compatible semantics (default: clean).
    #[serde(default)]
    pub mode: Mode,
    pub loads: LoadSpec,
    pub pv: PvSpec,
    pub zones: ZoneSpec,
    #[serde(default)]
    pub reward: RewardSpec,
    #[serde(default)]
    pub observation: ObservationSpec,
    #[serde(default)]
    pub noise: NoiseSpec,
    #[serde(default)]
    pub faults: FaultSpec,
}

fn default_vmin() -> f64 {
    0.95
}
fn default_vmax() -> f64 {
    1.05
}
