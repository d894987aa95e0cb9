//! A training run directory, and the system it deploys.
//!
//! A run directory holds its resolved `config.toml`, `checkpoint/` (the last networks) and, when the
//! run validated, `best/` (the best validation policy). The deployed system is the actor of one
//! checkpoint behind the run's own [`Deployment`] — the dead zone and safety layer it was trained
//! with — unless the caller overrides them explicitly ([`Overrides`]), and [`DeployRecord`] says
//! which. `eval`, `compare`, `rollout` and `leaderboard` all deploy runs through [`RunDir::deploy`].

use crate::policy::RlPolicy;
use crate::train::TrainConfig;
use serde::Serialize;
use std::path::{Path, PathBuf};
use voltarena_env::deploy::{Checkpoint, DeployError, Deployed, Deployment};
use voltarena_env::safety::SafetyConfig;
use voltarena_env::Task;

/// Why a run cannot be deployed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("run directory {}: missing (no config.toml)", .0.display())]
    Missing(PathBuf),
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    #[error("run directory {}: trained on task '{trained}', not '{task}'", run.display())]
    TaskMismatch { run: PathBuf, trained: String, task: String },
    #[error("run directory {}: {message}", run.display())]
    Task { run: PathBuf, message: String },
    #[error("run directory {}: {source}", run.display())]
    Deploy { run: PathBuf, source: DeployError },
}

/// Replacements for a run's own deployment; `None` keeps the run's.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Overrides {
    pub dead_zone: Option<f64>,
    pub safety: Option<SafetyConfig>,
}

/// What was deployed: written next to every result of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeployRecord {
    pub run: String,
    /// The checkpoint folder that was loaded.
    pub checkpoint: String,
    pub deployment: Deployment,
    /// Which parts of the deployment replace the run's own (`"dead_zone"`, `"safety"`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<&'static str>,
}

/// An existing run directory with a valid config.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
    cfg: TrainConfig,
}

/// The checkpoint folder `dir`, or `dir.old` when a swap was interrupted (see the atomic writes of
/// `voltarena train`); `None` when neither holds a checkpoint.
pub fn existing_checkpoint(dir: &Path) -> Option<PathBuf> {
    if dir.join("progress.json").exists() {
        return Some(dir.to_path_buf());
    }
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let old = dir.with_file_name(format!("{name}.old"));
    old.join("progress.json").exists().then_some(old)
}

/// The checkpoint a resumed run starts from: `RUN_DIR/checkpoint/`; when a swap was interrupted
/// (no `checkpoint/`), the complete replacement `checkpoint.tmp/` (its manifest matches its files)
/// or else the previous `checkpoint.old/`. `None`: the run was stopped before its first checkpoint.
pub fn resume_checkpoint(run: &Path) -> Option<PathBuf> {
    let dir = run.join("checkpoint");
    if dir.join("progress.json").exists() {
        return Some(dir);
    }
    let tmp = run.join("checkpoint.tmp");
    if matches!(crate::checkpoint::verify_manifest(&tmp), Ok(true)) && tmp.join("progress.json").exists() {
        return Some(tmp);
    }
    existing_checkpoint(&dir)
}

impl RunDir {
    /// Reads and validates `path/config.toml`.
    pub fn open(path: &Path) -> Result<RunDir, RunError> {
        let file = path.join("config.toml");
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(RunError::Missing(path.to_path_buf())),
            Err(e) => return Err(RunError::Config { path: file, message: e.to_string() }),
        };
        let cfg: TrainConfig = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1)).unwrap_or(0);
            RunError::Config { path: file.clone(), message: format!("line {line}: {}", e.message()) }
        })?;
        cfg.validate().map_err(|e| RunError::Config { path: file.clone(), message: e.to_string() })?;
        Ok(RunDir { path: path.to_path_buf(), cfg })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// The checkpoint folder of `which`: `best/` falls back to `checkpoint/` when the run kept no
    /// best policy (trained without validation).
    pub fn checkpoint(&self, which: Checkpoint) -> Result<PathBuf, RunError> {
        let last = existing_checkpoint(&self.path.join("checkpoint"));
        let found = match which {
            Checkpoint::Best => existing_checkpoint(&self.path.join("best")).or(last),
            Checkpoint::Last => last,
        };
        let dir = found.ok_or_else(|| RunError::Checkpoint { path: self.path.clone(), message: format!("no {} checkpoint (checkpoint/progress.json missing)", if which == Checkpoint::Best { "best or last" } else { "last" }) })?;
        // A checkpoint whose files do not match its manifest (truncated, corrupted) is refused.
        crate::checkpoint::verify_manifest(&dir).map_err(|e| RunError::Checkpoint { path: dir.clone(), message: e.to_string() })?;
        Ok(dir)
    }

    /// Deploys the actor of `which` on `task`, behind the run's own dead zone and safety layer or
    /// the ones `overrides` gives.
    pub fn deploy(&self, task: &Task, which: Checkpoint, overrides: &Overrides) -> Result<(Deployed<'static>, DeployRecord), RunError> {
        let trained = Task::load(&self.cfg.task).map_err(|e| RunError::Task { run: self.path.clone(), message: e.to_string() })?;
        if trained.spec.name != task.spec.name || trained.obs_dim() != task.obs_dim() || trained.state_dim() != task.state_dim() || trained.n_agents() != task.n_agents() {
            return Err(RunError::TaskMismatch { run: self.path.clone(), trained: trained.spec.name.clone(), task: task.spec.name.clone() });
        }
        let dir = self.checkpoint(which)?;
        let policy = RlPolicy::load(&self.cfg, &dir, task.n_agents(), task.obs_dim(), task.state_dim())?;
        let mut deployment = self.cfg.deployment();
        let mut overridden = Vec::new();
        if let Some(d) = overrides.dead_zone {
            deployment.dead_zone = d;
            overridden.push("dead_zone");
        }
        if let Some(s) = overrides.safety {
            deployment.safety = s;
            overridden.push("safety");
        }
        let deployed = Deployed::new(Box::new(policy), task, deployment).map_err(|source| RunError::Deploy { run: self.path.clone(), source })?;
        let record = DeployRecord { run: self.path.display().to_string(), checkpoint: dir.display().to_string(), deployment, overridden };
        Ok((deployed, record))
    }
}
