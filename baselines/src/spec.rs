//! The controller registry: one specification of every controller VoltArena runs, with one set of
//! defaults, shared by `rollout`, `compare`, `leaderboard` and `baseline` (and by any front end that
//! builds controllers from text).
//!
//! In a config file a controller is a table tagged by `kind`:
//!
//! ```toml
//! kind = "none"                                   # q ≡ 0
//! kind = "random"                                 # uniform actions in [−1, 1]
//! kind = "droop"                                  # droop = { preset, curve, q_frac, smoothing }, all optional
//! kind = "nested"                                 # or centralized, two_metric, qu2020, tang2024;
//!                                                 # params = { ... } (StepSpec) replaces the defaults
//! kind = "ofo", ofo_config = "configs/x.toml", ofo = "nested"   # a controller of a `baseline` config
//! kind = "rl", run = "runs/<dir>", checkpoint = "best"          # a trained run (voltarena-agents)
//! kind = "external", results = "lab_policy.json"                 # results of a Python policy (leaderboards)
//! ```
//!
//! This crate builds every kind but `rl`, which needs libtorch and is built by `voltarena-agents`.

use crate::droop::DroopSpec;
use crate::ofo::agent::OfoAgent;
use crate::ofo::centralized::Centralized;
use crate::ofo::nested::Nested;
use crate::ofo::qu2020::Qu2020;
use crate::ofo::tang2024::Tang2024;
use crate::ofo::two_metric::TwoMetric;
use crate::ofo::{Network, OfoController, OfoError, OfoModel, StepSpec, Steps};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use voltarena_env::controller::{NoControl, RandomControl};
use voltarena_env::deploy::Checkpoint;
use voltarena_env::{Controller, Task};

/// One controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControllerSpec {
    /// No control: q ≡ 0.
    None {},
    /// Uniform random actions (seeded at every reset).
    Random {},
    /// Volt/VAr droop ([`crate::droop`]).
    Droop {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        droop: Option<DroopSpec>,
    },
    /// Centralized primal–dual gradient projection.
    Centralized {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        params: Option<StepSpec>,
    },
    /// Nested distributed OFO (Zhan et al. 2025, Algorithm 1).
    Nested {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        params: Option<StepSpec>,
    },
    /// Distributed two-metric projection.
    TwoMetric {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        params: Option<StepSpec>,
    },
    /// Qu & Li 2020 (augmented Lagrangian).
    Qu2020 {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        params: Option<StepSpec>,
    },
    /// Tang 2024.
    Tang2024 {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        params: Option<StepSpec>,
    },
    /// An OFO-family controller configured in a `voltarena baseline` config (`[controllers.<ofo>]`).
    Ofo { ofo_config: PathBuf, ofo: String },
    /// Results computed elsewhere — a Python policy scored with `voltarena.leaderboard_entry` on
    /// the leaderboard's own episodes: the per-seed metrics file it wrote (leaderboards only).
    External { results: PathBuf },
    /// A trained RL run: `run` is its directory (absent where a suite trains the run itself).
    Rl {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<PathBuf>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checkpoint: Option<Checkpoint>,
    },
}

/// The OFO family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfoKind {
    Centralized,
    Nested,
    TwoMetric,
    Qu2020,
    Tang2024,
}

impl OfoKind {
    pub const ALL: [OfoKind; 5] = [OfoKind::Centralized, OfoKind::Nested, OfoKind::TwoMetric, OfoKind::Qu2020, OfoKind::Tang2024];

    /// The name used in configs, on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            OfoKind::Centralized => "centralized",
            OfoKind::Nested => "nested",
            OfoKind::TwoMetric => "two_metric",
            OfoKind::Qu2020 => "qu2020",
            OfoKind::Tang2024 => "tang2024",
        }
    }

    pub fn from_name(name: &str) -> Option<OfoKind> {
        OfoKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The settings used when a config gives none, the same rules on every task (docs/OFO.md; tuned
    /// on the validation days of mapdn33, mapdn141 and mapdn322, where one outer iteration is one
    /// 3-min step): every step is relative to the task's X and inverter placement, and the
    /// controllers regulate to 0.015 pu inside the limits. Centralized and Tang: β = 0.3,
    /// α = 2·4/σmax(X_·I)² (dual loop gain 4 through the inverters); nested and two-metric:
    /// K = 10, γ = 0.99/λmax(X), β = 0.75/(4γK), α = 0.1/(β G) (G: [`OfoModel::dual_response`]);
    /// Qu & Li keep their static-case steps (absolute, tuned on rural2_96). The OFO paper's rural2_96
    /// settings are written out in `configs/ofo_rural2_*.toml`.
    pub fn default_params(self) -> StepSpec {
        let reg = StepSpec { epsilon: Some(1e-10), eta: Some(1e-10), ..Default::default() };
        let margin = Some(0.015);
        match self {
            OfoKind::Centralized | OfoKind::Tang2024 => StepSpec { alpha_loop: Some(4.0), beta: Some(0.3), margin_pu: margin, ..reg },
            OfoKind::Nested | OfoKind::TwoMetric => StepSpec { k_inner: Some(10), gamma_rel: Some(0.99), beta_gain: Some(0.75), alpha_gain: Some(0.1), margin_pu: margin, ..reg },
            OfoKind::Qu2020 => StepSpec { alpha: Some(5e-8), beta: Some(0.5), gamma: Some(1e9), c_al: Some(0.01), ..Default::default() },
        }
    }

    /// The controller on `model` with resolved `steps` and the communication faults of `net`.
    pub fn controller(self, model: OfoModel, steps: Steps, net: Network) -> Box<dyn OfoController> {
        match self {
            OfoKind::Centralized => Box::new(Centralized::new(model, steps)),
            OfoKind::Nested => Box::new(Nested::new(model, steps, net)),
            OfoKind::TwoMetric => Box::new(TwoMetric::new(model, steps, net)),
            OfoKind::Qu2020 => Box::new(Qu2020::new(model, steps, net)),
            OfoKind::Tang2024 => Box::new(Tang2024::new(model, steps, net)),
        }
    }
}

/// Communication faults for the distributed controllers.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Failed nodes, as bus indices.
    pub failed_buses: Vec<usize>,
    pub drop_prob: f64,
    /// Retransmissions per message after a timeout ([`Network::retries`]).
    pub retries: usize,
    pub seed: u64,
}

/// Why a controller cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The controller does not apply to the task (e.g. its topology): a result ("n/a"), not a
    /// mistake in the config.
    #[error("{0}")]
    NotApplicable(OfoError),
    /// Bad settings (the message names the field).
    #[error("{0}")]
    Params(OfoError),
    /// A referenced config file cannot be used.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    /// `kind = "rl"` is built by voltarena-agents.
    #[error("kind = \"rl\" is built by voltarena-agents (it needs libtorch)")]
    Rl,
    /// `kind = "external"` holds results, not a controller.
    #[error("kind = \"external\" holds results computed elsewhere; only a leaderboard reads it")]
    External,
}

impl From<OfoError> for SpecError {
    fn from(e: OfoError) -> SpecError {
        match e {
            OfoError::Topology(_) => SpecError::NotApplicable(e),
            OfoError::Params(_) => SpecError::Params(e),
        }
    }
}

impl ControllerSpec {
    /// The controller of a name given on the command line, with default settings.
    pub fn from_name(name: &str) -> Option<ControllerSpec> {
        Some(match name {
            "none" => ControllerSpec::None {},
            "random" => ControllerSpec::Random {},
            "droop" => ControllerSpec::Droop { droop: None },
            "rl" => ControllerSpec::Rl { run: None, checkpoint: None },
            _ => ControllerSpec::ofo(OfoKind::from_name(name)?, None),
        })
    }

    /// Every name [`from_name`](Self::from_name) takes.
    pub const NAMES: [&'static str; 9] = ["none", "random", "droop", "centralized", "nested", "two_metric", "qu2020", "tang2024", "rl"];

    /// An OFO-family controller.
    pub fn ofo(kind: OfoKind, params: Option<StepSpec>) -> ControllerSpec {
        match kind {
            OfoKind::Centralized => ControllerSpec::Centralized { params },
            OfoKind::Nested => ControllerSpec::Nested { params },
            OfoKind::TwoMetric => ControllerSpec::TwoMetric { params },
            OfoKind::Qu2020 => ControllerSpec::Qu2020 { params },
            OfoKind::Tang2024 => ControllerSpec::Tang2024 { params },
        }
    }

    /// The `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            ControllerSpec::None {} => "none",
            ControllerSpec::Random {} => "random",
            ControllerSpec::Droop { .. } => "droop",
            ControllerSpec::Ofo { .. } => "ofo",
            ControllerSpec::Rl { .. } => "rl",
            ControllerSpec::External { .. } => "external",
            other => other.ofo_kind().map(OfoKind::name).unwrap_or("?"),
        }
    }

    /// The OFO controller and its settings, for the OFO kinds.
    fn ofo_kind(&self) -> Option<OfoKind> {
        Some(match self {
            ControllerSpec::Centralized { .. } => OfoKind::Centralized,
            ControllerSpec::Nested { .. } => OfoKind::Nested,
            ControllerSpec::TwoMetric { .. } => OfoKind::TwoMetric,
            ControllerSpec::Qu2020 { .. } => OfoKind::Qu2020,
            ControllerSpec::Tang2024 { .. } => OfoKind::Tang2024,
            _ => return None,
        })
    }

    /// Builds the controller for a task (the deployment — dead zone, safety layer — is the caller's).
    pub fn build(&self, task: &Task, faults: &Faults) -> Result<Box<dyn Controller>, SpecError> {
        match self {
            ControllerSpec::None {} => Ok(Box::new(NoControl)),
            ControllerSpec::Random {} => Ok(Box::new(RandomControl::default())),
            ControllerSpec::Droop { droop } => Ok(Box::new(droop.clone().unwrap_or_default().build()?)),
            ControllerSpec::Ofo { ofo_config, ofo } => ControllerSet::from_file(ofo_config)?.spec(ofo).map_err(|message| SpecError::Config { path: ofo_config.clone(), message })?.build(task, faults),
            ControllerSpec::Rl { .. } => Err(SpecError::Rl),
            ControllerSpec::External { .. } => Err(SpecError::External),
            ControllerSpec::Centralized { params }
            | ControllerSpec::Nested { params }
            | ControllerSpec::TwoMetric { params }
            | ControllerSpec::Qu2020 { params }
            | ControllerSpec::Tang2024 { params } => {
                let kind = self.ofo_kind().ok_or(SpecError::Rl)?;
                let model = OfoModel::from_task(task)?;
                let steps = params.clone().unwrap_or_else(|| kind.default_params()).resolve(&model).map_err(|e| match e {
                    OfoError::Params(m) => SpecError::Params(OfoError::Params(format!("{}.params: {m}", kind.name()))),
                    other => other.into(),
                })?;
                if steps.curtail_weight > 0.0 && kind != OfoKind::Centralized {
                    return Err(SpecError::Params(OfoError::Params(format!("{}.params.curtail_weight: curtailment is implemented for centralized", kind.name()))));
                }
                if steps.weighted && !matches!(kind, OfoKind::Centralized | OfoKind::Nested) {
                    return Err(SpecError::Params(OfoError::Params(format!("{}.params.weighted: the weighted objective is implemented for centralized and nested", kind.name()))));
                }
                let mut model = model;
                model.v_min += steps.margin_pu;
                model.v_max -= steps.margin_pu;
                let failed: Vec<usize> = faults.failed_buses.iter().filter_map(|b| model.bus.iter().position(|x| x == b)).collect();
                let net = Network::new(model.len(), &failed, faults.drop_prob, faults.seed).with_retries(faults.retries);
                Ok(Box::new(OfoAgent::new(model.clone(), kind.controller(model, steps, net))))
            }
        }
    }
}

/// The comparison controllers of a `voltarena baseline` config (`[controllers.<name>]`), by their
/// fixed names; each table holds that controller's settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerSet {
    pub none: Option<Empty>,
    pub droop: Option<DroopSpec>,
    pub centralized: Option<StepSpec>,
    pub nested: Option<StepSpec>,
    pub two_metric: Option<StepSpec>,
    pub qu2020: Option<StepSpec>,
    pub tang2024: Option<StepSpec>,
}

/// A controller entry without settings (`[controllers.none]`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

impl ControllerSet {
    /// The `[controllers]` table of a baseline config file.
    pub fn from_file(path: &Path) -> Result<ControllerSet, SpecError> {
        let err = |message: String| SpecError::Config { path: path.to_path_buf(), message };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let doc: toml::Table = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1)).unwrap_or(0);
            err(format!("line {line}: {}", e.message()))
        })?;
        doc.get("controllers").cloned().ok_or_else(|| err("no [controllers] table".into()))?.try_into().map_err(|e: toml::de::Error| err(format!("controllers: {}", e.message())))
    }

    /// The configured names, in the fixed order none, droop, centralized, nested, two_metric,
    /// qu2020, tang2024.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.none.is_some() {
            v.push("none");
        }
        if self.droop.is_some() {
            v.push("droop");
        }
        for k in OfoKind::ALL {
            if self.params(k).is_some() {
                v.push(k.name());
            }
        }
        v
    }

    fn params(&self, k: OfoKind) -> Option<&StepSpec> {
        match k {
            OfoKind::Centralized => self.centralized.as_ref(),
            OfoKind::Nested => self.nested.as_ref(),
            OfoKind::TwoMetric => self.two_metric.as_ref(),
            OfoKind::Qu2020 => self.qu2020.as_ref(),
            OfoKind::Tang2024 => self.tang2024.as_ref(),
        }
    }

    /// The specification of one configured controller.
    pub fn spec(&self, name: &str) -> Result<ControllerSpec, String> {
        let missing = || format!("controller '{name}' is not configured in [controllers]");
        match name {
            "none" => self.none.as_ref().map(|_| ControllerSpec::None {}).ok_or_else(missing),
            "droop" => self.droop.clone().map(|d| ControllerSpec::Droop { droop: Some(d) }).ok_or_else(missing),
            _ => {
                let k = OfoKind::from_name(name).ok_or_else(|| format!("unknown controller '{name}'; expected none, droop, centralized, nested, two_metric, qu2020 or tang2024"))?;
                self.params(k).map(|p| ControllerSpec::ofo(k, Some(p.clone()))).ok_or_else(missing)
            }
        }
    }

    /// Builds one configured controller for the task's environment.
    pub fn build(&self, name: &str, task: &Task, faults: &Faults) -> Result<Box<dyn Controller>, SpecError> {
        self.spec(name).map_err(|m| SpecError::Params(OfoError::Params(m)))?.build(task, faults)
    }
}
