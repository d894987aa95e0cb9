//! Building deployed controllers from the registry ([`ControllerSpec`]) for every command: the
//! baselines build themselves; `kind = "rl"` deploys a run directory through voltarena-agents, with
//! the run's own dead zone and safety layer unless the entry overrides them.

use serde::Serialize;
use voltarena_agents::run::{DeployRecord, Overrides, RunDir};
use voltarena_baselines::{ControllerSpec, Faults, SpecError};
use voltarena_env::deploy::{Checkpoint, Deployed, Deployment};
use voltarena_env::Task;

/// What was deployed, as written next to every result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeployInfo {
    /// The controller's `kind`.
    pub kind: &'static str,
    /// Dead zone and safety layer in front of it.
    pub deployment: Deployment,
    /// RL: the run and checkpoint folder, and which parts of the deployment replace the run's own.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub run: Option<DeployRecord>,
}

/// Why a controller could not be deployed on a task.
pub enum DeployFailure {
    /// The controller does not apply to the task (e.g. OFO on a feeder it cannot model): a result.
    NotApplicable(String),
    /// A mistake in the entry or a file it references.
    Error(String),
}

impl DeployFailure {
    pub fn message(&self) -> &str {
        match self {
            DeployFailure::NotApplicable(m) | DeployFailure::Error(m) => m,
        }
    }
}

/// Deploys `spec` on `task`. Baselines sit behind the entry's `overrides` (default: no dead zone,
/// no safety layer); a run sits behind its own deployment unless `overrides` replaces parts of it.
/// `checkpoint` is used for `kind = "rl"` entries that give none.
pub fn deploy(spec: &ControllerSpec, task: &Task, overrides: Overrides, faults: &Faults) -> Result<(Deployed<'static>, DeployInfo), DeployFailure> {
    match spec {
        ControllerSpec::Rl { run, checkpoint } => {
            let run = run.as_ref().ok_or_else(|| DeployFailure::Error("kind = \"rl\" needs run = \"<run directory>\"".into()))?;
            deploy_run(&RunDir::open(run).map_err(|e| DeployFailure::Error(e.to_string()))?, task, checkpoint.unwrap_or_default(), overrides)
        }
        _ => {
            let ctl = spec.build(task, faults).map_err(|e| match e {
                SpecError::NotApplicable(_) => DeployFailure::NotApplicable(e.to_string()),
                _ => DeployFailure::Error(e.to_string()),
            })?;
            let deployment = Deployment { dead_zone: overrides.dead_zone.unwrap_or(0.0), safety: overrides.safety.unwrap_or_default(), ..Default::default() };
            let deployed = Deployed::new(ctl, task, deployment).map_err(|e| DeployFailure::Error(e.to_string()))?;
            Ok((deployed, DeployInfo { kind: spec.kind(), deployment, run: None }))
        }
    }
}

/// Deploys an open run directory (see [`deploy`]).
pub fn deploy_run(run: &RunDir, task: &Task, which: Checkpoint, overrides: Overrides) -> Result<(Deployed<'static>, DeployInfo), DeployFailure> {
    let (deployed, record) = run.deploy(task, which, &overrides).map_err(|e| DeployFailure::Error(e.to_string()))?;
    Ok((deployed, DeployInfo { kind: "rl", deployment: record.deployment, run: Some(record) }))
}

/// Takes the array `key` (e.g. `controllers`) out of a parsed config and reads each entry on its own,
/// so that an error names the entry (`controllers[2] ("droop")`) and what is wrong with it.
pub fn take_entries<T: serde::de::DeserializeOwned>(doc: &mut toml::Value, key: &str, source: &str) -> Result<Vec<T>, crate::CliError> {
    let bad = |m: String| crate::CliError::Input(format!("{source}: {m}"));
    let Some(table) = doc.as_table_mut() else { return Err(bad("expected a table".into())) };
    let items = match table.remove(key) {
        None => return Ok(Vec::new()),
        Some(toml::Value::Array(a)) => a,
        Some(_) => return Err(bad(format!("{key}: expected an array of tables ([[{key}]])"))),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let name = item.get("name").and_then(|n| n.as_str()).map(|n| format!(" (\"{n}\")")).unwrap_or_default();
            item.try_into().map_err(|e: toml::de::Error| bad(format!("{key}[{i}]{name}: {}", e.message().trim_end())))
        })
        .collect()
}
