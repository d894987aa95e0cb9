//! Running a suite: every (entry, seed) pair is one job, and `--jobs N` workers take jobs from one
//! queue in suite order, so the slow part (training RL entries) runs in parallel while the results
//! are put back in suite order, independent of which worker ran what: 1 job or N give the same
//! leaderboard. A job trains an RL entry with the suite's seed (or opens the run directory it
//! reuses, checking it was trained with the entry's config), deploys the controller behind its dead
//! zone and safety layer, and evaluates it on the seed's test days.

use super::report::{summarize, EntryOut};
use super::suite::{fnv, Suite, SuiteEntry};
use crate::{atomic, CliError};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use voltarena_agents::run::{Overrides, RunDir};
use voltarena_agents::train::{Logger, TrainConfig, Trainer};
use voltarena_baselines::{ControllerSpec, Faults};
use voltarena_env::controller::Communication;
use voltarena_env::deploy::{Checkpoint, Deployed, Deployment};
use voltarena_env::{MetricsSummary, Split, Task, VoltageEnv};

/// Runs a suite (every entry, or only entry `only`) into `out` with `jobs` parallel workers over the
/// (entry, seed) jobs; returns the entries in suite order.
pub fn run_suite(suite: &Suite, out: &Path, jobs: usize, only: Option<usize>) -> Result<Vec<EntryOut>, CliError> {
    let selected: Vec<usize> = match only {
        Some(k) => vec![k],
        None => (0..suite.n_entries()).collect(),
    };
    // Jobs (entry, seed position) in suite order; workers pop from the back, so reverse.
    let work: Vec<(usize, usize)> = selected.iter().flat_map(|&k| (0..suite.seeds.len()).map(move |p| (k, p))).collect();
    let mut queue: Vec<(usize, (usize, usize))> = work.iter().copied().enumerate().collect();
    queue.reverse();
    let queue = Mutex::new(queue);
    type JobResult = Result<JobOk, (String, String)>;
    let results: Mutex<BTreeMap<usize, JobResult>> = Mutex::new(BTreeMap::new());
    let bar = indicatif::ProgressBar::new(work.len() as u64);
    std::thread::scope(|sc| {
        for _ in 0..jobs.max(1) {
            let (queue, results, bar) = (&queue, &results, bar.clone());
            sc.spawn(move || loop {
                let job = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                let Some((idx, (k, pos))) = job else { break };
                let ((task, e), seed) = (suite.entry(k), suite.seeds[pos]);
                let dir = out.join("runs").join(task).join(&e.name).join(format!("seed{seed}"));
                let r = run_job(e, task, seed, pos, suite.eval_episodes, &dir);
                results.lock().unwrap_or_else(|p| p.into_inner()).insert(idx, r);
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut entries: Vec<EntryOut> = Vec::new();
    for &k in &selected {
        let (t, e) = suite.entry(k);
        let mut out = EntryOut {
            task: t.clone(),
            controller: e.name.clone(),
            status: "ok".into(),
            message: None,
            seeds: suite.seeds.clone(),
            per_seed: Vec::new(),
            summary: BTreeMap::new(),
            train_config_hash: None,
            run_dirs: e.runs.get(t).map(|r| r.iter().map(|p| p.display().to_string()).collect()).unwrap_or_default(),
            deployment: None,
            deployment_overridden: Vec::new(),
            communication: None,
            compute_us_per_step: None,
        };
        let mut compute = Vec::new();
        for (idx, &(kk, _)) in work.iter().enumerate() {
            if kk != k {
                continue;
            }
            match &results[&idx] {
                Ok(j) => {
                    out.per_seed.push(j.metrics.clone());
                    if out.train_config_hash.is_none() {
                        out.train_config_hash = j.config_hash.clone();
                    }
                    if out.deployment.is_none() {
                        out.deployment = Some(j.deployment);
                        out.deployment_overridden = j.overridden.clone();
                        out.communication = Some(j.communication);
                    }
                    compute.push(j.compute_us_per_step);
                }
                Err((status, msg)) => {
                    out.status = status.clone();
                    out.message = Some(msg.clone());
                }
            }
        }
        if out.status == "ok" {
            out.summary = summarize(&out.per_seed);
            // External entries may not state their compute.
            compute.retain(|x| x.is_finite());
            compute.sort_by(f64::total_cmp);
            out.compute_us_per_step = (!compute.is_empty()).then(|| super::report::quantile(&compute, 0.5));
        } else {
            out.per_seed.clear();
        }
        entries.push(out);
    }
    Ok(entries)
}

/// What one (task, controller, seed) job gives.
pub(super) struct JobOk {
    pub(super) metrics: MetricsSummary,
    /// Hash of the resolved training config (RL).
    pub(super) config_hash: Option<String>,
    pub(super) deployment: Deployment,
    /// What of the deployment the entry overrode.
    pub(super) overridden: Vec<String>,
    pub(super) communication: Communication,
    /// Mean wall time of a control step (µs; timing, not a metric).
    pub(super) compute_us_per_step: f64,
}

/// Evaluates `deployed` on the seed's test days and collects the job's result.
fn finish(task: &Arc<Task>, deployed: &mut Deployed, seed: u64, episodes: usize, config_hash: Option<String>, deployment: Deployment, overridden: Vec<String>) -> Result<JobOk, String> {
    let metrics = eval_deployed(task, deployed, seed, episodes)?;
    Ok(JobOk { metrics, config_hash, deployment, overridden, communication: deployed.communication(task), compute_us_per_step: deployed.compute_us_per_step() })
}

/// One (task, controller, seed) job: Ok(metrics, ...), or Err((status, message)).
fn run_job(e: &SuiteEntry, task_name: &str, seed: u64, seed_pos: usize, episodes: usize, run_dir: &Path) -> Result<JobOk, (String, String)> {
    let err = |m: String| ("error".to_string(), m);
    let task = Arc::new(Task::load(task_name).map_err(|x| err(x.to_string()))?);
    let overrides = Overrides { dead_zone: e.dead_zone, safety: e.safety };
    let (run, which, hash) = match &e.controller {
        ControllerSpec::Rl { checkpoint, .. } if e.runs.contains_key(task_name) => {
            // A reused run directory: it must have been trained with this entry's config.
            let runs = &e.runs[task_name];
            let dir = runs.get(seed_pos).ok_or_else(|| err(format!("runs.{task_name} lists {} run directories for {} seeds", runs.len(), seed_pos + 1)))?;
            let run = RunDir::open(dir).map_err(|x| err(x.to_string()))?;
            let cfg = run.config();
            if cfg.task != task_name {
                return Err(err(format!("run directory {}: trained on task '{}', not '{task_name}'", dir.display(), cfg.task)));
            }
            let text = toml::to_string(cfg).unwrap_or_default();
            if let Some(path) = &e.train {
                let (_, want_text) = resolve_train(e, path, task_name, cfg.seed).map_err(err)?;
                if want_text != text {
                    return Err(err(format!(
                        "config hash mismatch: run directory {} was trained with config {} but the entry resolves {} to {}",
                        dir.display(), fnv(&text), path.display(), fnv(&want_text)
                    )));
                }
            }
            (run, checkpoint.unwrap_or_default(), fnv(&text))
        }
        ControllerSpec::Rl { .. } => {
            let path = e.train.as_ref().ok_or_else(|| err("kind = \"rl\" needs train = \"<config>\" (or runs = { <task> = [<run directory per seed>] })".into()))?;
            let (cfg, text) = resolve_train(e, path, task_name, seed).map_err(err)?;
            let mut trainer = Trainer::new(cfg).map_err(|x| err(x.to_string()))?;
            resume_or_start(&mut trainer, run_dir, &text).map_err(err)?;
            trainer.run(&mut Resumable::new(run_dir)).map_err(|x| err(x.to_string()))?;
            // The finished run keeps its final policy only (no optimiser state or replay buffer).
            crate::train_cmd::atomic_dir(&run_dir.join("checkpoint"), |d| trainer.save(d)).map_err(err)?;
            let _ = std::fs::remove_dir_all(run_dir.join("replay"));
            (RunDir::open(run_dir).map_err(|x| err(x.to_string()))?, Checkpoint::Last, fnv(&text))
        }
        ControllerSpec::External { results } => return super::external::job(results, task_name, seed, episodes).map_err(err),
        other => {
            // A controller that does not apply to the task is "n/a", not an error.
            let (mut deployed, info) = crate::controllers::deploy(other, &task, overrides, &Faults::default()).map_err(|f| match f {
                crate::controllers::DeployFailure::NotApplicable(m) => ("n/a".to_string(), m),
                crate::controllers::DeployFailure::Error(m) => err(m),
            })?;
            return finish(&task, &mut deployed, seed, episodes, None, info.deployment, Vec::new()).map_err(err);
        }
    };
    // The deployed run: its own dead zone and safety layer unless the entry overrides them.
    let (mut deployed, info) = crate::controllers::deploy_run(&run, &task, which, overrides).map_err(|f| err(f.message().to_string()))?;
    let overridden = info.run.as_ref().map(|r| r.overridden.iter().map(|s| s.to_string()).collect()).unwrap_or_default();
    finish(&task, &mut deployed, seed, episodes, Some(hash), info.deployment, overridden).map_err(err)
}

/// The resolved training config of an RL entry for one task and seed, and its text (hashed).
fn resolve_train(e: &SuiteEntry, path: &Path, task_name: &str, seed: u64) -> Result<(TrainConfig, String), String> {
    let mut sets = e.set.clone();
    sets.extend(e.set_by_task.get(task_name).cloned().unwrap_or_default());
    sets.push(format!("task=\"{task_name}\""));
    sets.push(format!("seed={seed}"));
    let doc = crate::config::read_toml(path, &sets).map_err(|x| match x { CliError::Input(m) | CliError::Other(m) => m })?;
    let cfg: TrainConfig = doc.try_into().map_err(|x: toml::de::Error| format!("{}: {}", path.display(), x.message()))?;
    cfg.validate().map_err(|x| format!("{}: {x}", path.display()))?;
    let text = toml::to_string(&cfg).unwrap_or_default();
    Ok((cfg, text))
}

/// Evaluates a deployed controller on the seed's `episodes` test days (episode seeds 100·seed + i,
/// [`voltarena_env::deploy::protocol_seeds`]):
/// the same days for every controller of the suite.
fn eval_deployed(task: &Arc<Task>, deployed: &mut Deployed, seed: u64, episodes: usize) -> Result<MetricsSummary, String> {
    let mut env = VoltageEnv::new(task.clone()).map_err(|e| e.to_string())?;
    let seeds = voltarena_env::deploy::protocol_seeds(seed, episodes);
    let ev = voltarena_env::deploy::evaluate(&mut env, deployed, Split::Test, &seeds, &mut |_, _, _| {}).map_err(|e| e.to_string())?;
    Ok(ev.metrics)
}

/// What identifies an entry's training besides its config: the build that trains it.
fn build_id() -> String {
    format!("{} {}{}", crate::provenance::VOLTARENA_VERSION, crate::provenance::git_commit().unwrap_or_else(|| "unknown".into()), if crate::provenance::git_dirty() { " (dirty)" } else { "" })
}

/// A requeued array task (or a rerun after a crash) resumes its entry's own run directory from its
/// last resumable checkpoint, when that directory was started with the same resolved config by the
/// same build; otherwise the run starts afresh there. A finished run (its checkpoint keeps the
/// final policy only) is trained again: reruns re-check the numbers.
fn resume_or_start(trainer: &mut Trainer, run_dir: &Path, text: &str) -> Result<(), String> {
    let same = std::fs::read_to_string(run_dir.join("config.toml")).is_ok_and(|t| t == text) && std::fs::read_to_string(run_dir.join("build.txt")).is_ok_and(|b| b == build_id());
    if same {
        if let Some(ck) = voltarena_agents::run::resume_checkpoint(run_dir).filter(|c| c.join("resume.bin").exists()) {
            trainer.resume(&ck, &run_dir.join("replay")).map_err(|e| e.to_string())?;
            eprintln!("resuming {} at step {}", run_dir.display(), trainer.progress.step);
            return Ok(());
        }
    }
    for stale in ["checkpoint", "checkpoint.tmp", "checkpoint.old", "replay"] {
        let _ = std::fs::remove_dir_all(run_dir.join(stale));
    }
    std::fs::create_dir_all(run_dir).map_err(|x| format!("{}: {x}", run_dir.display()))?;
    atomic::write(&run_dir.join("config.toml"), text.as_bytes()).map_err(|x| format!("{}: {x}", run_dir.display()))?;
    atomic::write(&run_dir.join("build.txt"), build_id().as_bytes()).map_err(|x| format!("{}: {x}", run_dir.display()))
}

/// How often leaderboard training writes a resumable checkpoint (wall seconds;
/// `VOLTARENA_CHECKPOINT_SECS` overrides). It never changes the numbers, only how much a killed job
/// redoes.
pub const CHECKPOINT_SECS: f64 = 300.0;

/// Training inside a leaderboard logs nothing (many jobs share the terminal), and writes a
/// resumable checkpoint into the job's run directory every [`CHECKPOINT_SECS`] of wall time.
struct Resumable {
    dir: std::path::PathBuf,
    every: f64,
    last: std::time::Instant,
}

impl Resumable {
    fn new(dir: &Path) -> Resumable {
        let every = std::env::var("VOLTARENA_CHECKPOINT_SECS").ok().and_then(|s| s.parse::<f64>().ok()).filter(|s| *s >= 0.0).unwrap_or(CHECKPOINT_SECS);
        Resumable { dir: dir.to_path_buf(), every, last: std::time::Instant::now() }
    }
}

impl Logger for Resumable {
    fn train_episode(&mut self, _: usize, _: usize, _: f64, _: &MetricsSummary) {}
    fn update(&mut self, _: usize, _: &voltarena_agents::matd3::UpdateInfo) {}
    fn eval(&mut self, _: usize, _: f64, _: &MetricsSummary) {}
    fn checkpoint(&mut self, trainer: &Trainer) -> Result<(), String> {
        let replay = self.dir.join("replay");
        crate::train_cmd::atomic_dir(&self.dir.join("checkpoint"), |d| trainer.save_resumable(d, &replay, &[]))?;
        self.last = std::time::Instant::now();
        Ok(())
    }
    fn checkpoint_due(&mut self, _step: usize) -> bool {
        self.last.elapsed().as_secs_f64() >= self.every
    }
}

