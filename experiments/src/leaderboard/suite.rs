//! The suite: what a leaderboard runs (tasks × controllers × seeds, `eval_episodes` test days per
//! seed), read from its TOML file and checked before anything runs, so that a typo fails at once
//! rather than after hours of training. Its hash (FNV-1a of the parsed suite, written back as TOML)
//! names it in leaderboard.json and in the Slurm entry files, so entries of different suites are
//! never merged. Entry k is (tasks[k / n_controllers], controllers[k % n_controllers]): the order of
//! the leaderboard's rows and the index of a Slurm array task.

use crate::CliError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use voltarena_baselines::ControllerSpec;
use voltarena_env::safety::SafetyConfig;
use voltarena_env::Task;

/// One controller of a suite: a registry entry (`kind = ...` with its settings, see
/// `voltarena_baselines::spec`), a name, what sits in front of it, and for RL how each seed's run
/// is obtained (trained by the suite from `train`, or reused from `runs`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SuiteEntry {
    pub name: String,
    /// RL: the training config and overrides (`key=value`); the task is set by the suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<String>,
    /// Extra overrides for one task, e.g. `set_by_task = { rural2_96 = ["total_steps=2400"] }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set_by_task: BTreeMap<String, Vec<String>>,
    /// Safety layer in front of the controller; for RL it replaces the run's own (recorded as an
    /// override in leaderboard.json).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<SafetyConfig>,
    /// Action dead zone in [0, 1); for RL it replaces the run's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_zone: Option<f64>,
    /// RL: evaluate already trained run directories instead of training, per task, one per suite
    /// seed (in the order of `seeds`), e.g. `runs = { mapdn33 = ["runs/a", "runs/b"] }`. With
    /// `train` also given, each run's config must equal the entry's resolved config (same hash, the
    /// run's own seed), so a leaderboard never mixes up what was trained.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub runs: BTreeMap<String, Vec<PathBuf>>,
    /// The controller (RL with `runs`: `checkpoint = "best"` (default: the best validation policy,
    /// the last checkpoint where a run kept none) or `"last"`; runs the suite trains deploy their
    /// last checkpoint).
    #[serde(flatten)]
    pub controller: ControllerSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub name: String,
    pub tasks: Vec<String>,
    pub seeds: Vec<u64>,
    #[serde(default = "ten")]
    pub eval_episodes: usize,
    #[serde(default)]
    pub controllers: Vec<SuiteEntry>,
    /// sbatch options for `--emit-slurm` (flags of the same names override them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmOptions>,
}

/// sbatch options of a suite's job array (`[slurm]`); unset ones keep the defaults of
/// `--emit-slurm` (2 CPUs, 8G, 02:00:00 per array task; no account or partition line).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlurmOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Wall-time limit per array task, e.g. "04:00:00".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Memory per array task, e.g. "16G".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_per_task: Option<usize>,
}

fn ten() -> usize {
    10
}

impl Suite {
    /// Number of leaderboard entries (tasks × controllers).
    pub fn n_entries(&self) -> usize {
        self.tasks.len() * self.controllers.len()
    }

    /// Entry k: (tasks[k / n_controllers], controllers[k % n_controllers]).
    pub fn entry(&self, k: usize) -> (&String, &SuiteEntry) {
        let nc = self.controllers.len();
        (&self.tasks[k / nc], &self.controllers[k % nc])
    }
}

pub use crate::provenance::fnv;

/// Reads and checks a suite file: its controllers through the registry (an unknown kind names the
/// entry), at least one task, seed and controller, unique controller names, `runs` only for the
/// suite's tasks, tasks that exist. Returns the suite and its hash.
pub fn read_suite(path: &Path) -> Result<(Suite, String), CliError> {
    let mut doc = crate::config::read_toml(path, &[])?;
    let controllers = crate::controllers::take_entries(&mut doc, "controllers", &path.display().to_string())?;
    let mut suite: Suite = doc.try_into().map_err(|e: toml::de::Error| CliError::Input(format!("{}: {}", path.display(), e.message())))?;
    suite.controllers = controllers;
    if suite.tasks.is_empty() || suite.seeds.is_empty() || suite.controllers.is_empty() || suite.eval_episodes == 0 {
        return Err(CliError::Input(format!("{}: needs tasks, seeds, controllers and eval_episodes ≥ 1", path.display())));
    }
    let mut names = std::collections::HashSet::new();
    for c in &suite.controllers {
        if !names.insert(&c.name) {
            return Err(CliError::Input(format!("{}: controller name '{}' appears twice", path.display(), c.name)));
        }
        for t in c.runs.keys() {
            if !suite.tasks.contains(t) {
                return Err(CliError::Input(format!("{}: controller '{}': runs.{t}: '{t}' is not one of the suite's tasks", path.display(), c.name)));
            }
        }
    }
    for t in &suite.tasks {
        Task::load(t).map_err(|e| CliError::Input(format!("{}: tasks: {e}", path.display())))?;
    }
    let mut text = toml::to_string(&suite).unwrap_or_default();
    // The hash covers what the suite points at, too: a changed training config, OFO config or
    // external results file makes it another suite.
    for f in suite.referenced_files() {
        let body = std::fs::read(&f).map(|b| fnv(&String::from_utf8_lossy(&b))).unwrap_or_else(|_| "unreadable".into());
        text.push_str(&format!("\n# file {} {body}", f.display()));
    }
    let hash = fnv(&text);
    Ok((suite, hash))
}

impl Suite {
    /// Every path the suite names, as written (relative to the working directory), with who names
    /// it: training configs, OFO configs, external results, run directories (`true`: a folder) and
    /// task files.
    fn named_paths(&self) -> Vec<(String, PathBuf, bool)> {
        let mut v = Vec::new();
        for c in &self.controllers {
            let mut add = |p: &PathBuf, dir: bool| v.push((c.name.clone(), p.clone(), dir));
            c.train.iter().for_each(|p| add(p, false));
            match &c.controller {
                ControllerSpec::Ofo { ofo_config, .. } => add(ofo_config, false),
                ControllerSpec::External { results } => add(results, false),
                ControllerSpec::Rl { run: Some(run), .. } => add(run, true),
                _ => {}
            }
            c.runs.values().flatten().for_each(|r| add(r, true));
        }
        for t in self.tasks.iter().filter(|t| voltarena_env::task::builtin_toml(t).is_none()) {
            v.push(("tasks".into(), PathBuf::from(t), false));
        }
        v
    }

    /// The files whose contents the suite hash covers: every file the suite names, and the
    /// `config.toml` of each run directory.
    pub fn referenced_files(&self) -> Vec<PathBuf> {
        self.named_paths().into_iter().map(|(_, p, dir)| if dir { p.join("config.toml") } else { p }).collect()
    }

    /// The paths the suite names that do not exist relative to `dir` (where the jobs of
    /// `--emit-slurm` will run): (who names it, path).
    pub fn missing_paths(&self, dir: &Path) -> Vec<(String, PathBuf)> {
        self.named_paths().into_iter().filter(|(_, p, _)| !dir.join(p).exists()).map(|(e, p, _)| (e, p)).collect()
    }
}

/// A stored suite with JSON `null`s read as absent keys (leaderboards written before the controller
/// registry stored every unused option as `null`).
pub fn absent_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(m.into_iter().filter(|(_, x)| !x.is_null()).map(|(k, x)| (k, absent_nulls(x))).collect()),
        serde_json::Value::Array(a) => serde_json::Value::Array(a.into_iter().map(absent_nulls).collect()),
        other => other,
    }
}
