//! `voltarena leaderboard SUITE.toml [--out DIR] [--jobs N]`, `voltarena leaderboard --verify DIR`, and
//! for clusters `--emit-slurm DIR` (job array: `--entry K` per array task, then `--collect OUT`).
//!
//! A suite is tasks × controllers × seeds. For seed s every controller is evaluated on the same
//! `eval_episodes` episodes of the test split (episode seeds 100·s + i, no data noise); RL entries are
//! first trained with seed s (MAPDN's protocol: 5 seeds × 10 episodes, median and interquartile range
//! over seeds). Output: `leaderboard.json` (every entry with its per-seed numbers and provenance: suite
//! hash, training-config hashes, git commit, versions, machine), `leaderboard.md` and a static
//! `index.html`. `--verify DIR` re-runs the suite stored in `DIR/leaderboard.json` and fails naming the
//! first entry whose numbers differ. RL entries may evaluate given run directories (`runs`) instead
//! of training; with `train` also given, a run whose config differs from the entry's is refused
//! (config hash mismatch). Entry k of a suite is (tasks[k / n_controllers], controllers[k % n]); a
//! Slurm array task runs one entry with the same code as a local run, so the collected leaderboard
//! has the same numbers.

use crate::{atomic, CliError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use voltarena_agents::run::{Overrides, RunDir};
use voltarena_agents::train::{Logger, TrainConfig, Trainer};
use voltarena_baselines::{ControllerSpec, Faults};
use voltarena_env::deploy::{Checkpoint, Deployed, Deployment};
use voltarena_env::safety::SafetyConfig;
use voltarena_env::{MetricsSummary, Split, Task, VoltageEnv};

#[derive(clap::Args)]
pub struct Args {
    /// Suite file (TOML), e.g. configs/leaderboard_quick.toml.
    suite: Option<PathBuf>,
    #[arg(long)]
    out: Option<PathBuf>,
    /// Parallel training/evaluation jobs.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Re-run the suite stored in DIR/leaderboard.json and check the numbers are identical.
    #[arg(long, value_name = "DIR")]
    verify: Option<PathBuf>,
    /// Write a Slurm job array (one entry per array task), a collect step and submit.sh into DIR;
    /// results go to --out.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["verify", "entry", "collect"])]
    emit_slurm: Option<PathBuf>,
    /// Run only entry K (task × controller, all seeds) into OUT/entries/K.json (a Slurm array task).
    #[arg(long, value_name = "K", conflicts_with_all = ["verify", "collect"])]
    entry: Option<usize>,
    /// Merge DIR/entries/*.json (written by --entry) into DIR/leaderboard.json, .md and index.html.
    #[arg(long, value_name = "DIR", conflicts_with = "verify")]
    collect: Option<PathBuf>,
}

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
}

fn ten() -> usize {
    10
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub median: f64,
    pub q25: f64,
    pub q75: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EntryOut {
    pub task: String,
    pub controller: String,
    /// "ok", "n/a" (the controller does not apply to the task) or "error".
    pub status: String,
    pub message: Option<String>,
    pub seeds: Vec<u64>,
    pub per_seed: Vec<MetricsSummary>,
    pub summary: BTreeMap<String, Stats>,
    /// Hash of the resolved training config (RL entries).
    pub train_config_hash: Option<String>,
    /// Reused run directories (RL entries with `runs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_dirs: Vec<String>,
    /// What sat between the controller and the grid (for RL: the runs' own dead zone and safety
    /// layer, unless `deployment_overridden` names the parts the entry replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<Deployment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployment_overridden: Vec<String>,
}

/// FNV-1a 64-bit of a text (a stable content hash for provenance).
fn fnv(text: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let x = q * (sorted.len() - 1) as f64;
    let (i, f) = (x.floor() as usize, x - x.floor());
    if i + 1 < sorted.len() { sorted[i] + f * (sorted[i + 1] - sorted[i]) } else { sorted[i] }
}

struct Quiet;
impl Logger for Quiet {
    fn train_episode(&mut self, _: usize, _: usize, _: f64, _: &MetricsSummary) {}
    fn update(&mut self, _: usize, _: &voltarena_agents::matd3::UpdateInfo) {}
    fn eval(&mut self, _: usize, _: f64, _: &MetricsSummary) {}
    fn checkpoint(&mut self, _: &Trainer) -> Result<(), String> {
        Ok(())
    }
}

/// What one (task, controller, seed) job gives: its metrics, the training-config hash (RL), the
/// deployment and what of it the entry overrode.
type JobOk = (MetricsSummary, Option<String>, Deployment, Vec<String>);

fn eval_deployed(task: &Arc<Task>, deployed: &mut Deployed, seed: u64, episodes: usize) -> Result<MetricsSummary, String> {
    let mut env = VoltageEnv::new(task.clone()).map_err(|e| e.to_string())?;
    let seeds: Vec<u64> = (0..episodes as u64).map(|i| 100 * seed + i).collect();
    let ev = voltarena_env::deploy::evaluate(&mut env, deployed, Split::Test, &seeds, &mut |_, _, _| {}).map_err(|e| e.to_string())?;
    Ok(ev.metrics)
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
            trainer.run(&mut Quiet).map_err(|x| err(x.to_string()))?;
            std::fs::create_dir_all(run_dir).map_err(|x| err(x.to_string()))?;
            atomic::write(&run_dir.join("config.toml"), text.as_bytes()).map_err(|x| err(x.to_string()))?;
            crate::train_cmd::atomic_dir(&run_dir.join("checkpoint"), |d| trainer.save(d)).map_err(err)?;
            (RunDir::open(run_dir).map_err(|x| err(x.to_string()))?, Checkpoint::Last, fnv(&text))
        }
        other => {
            // A controller that does not apply to the task is "n/a", not an error.
            let (mut deployed, info) = crate::controllers::deploy(other, &task, overrides, &Faults::default()).map_err(|f| match f {
                crate::controllers::DeployFailure::NotApplicable(m) => ("n/a".to_string(), m),
                crate::controllers::DeployFailure::Error(m) => err(m),
            })?;
            let m = eval_deployed(&task, &mut deployed, seed, episodes).map_err(err)?;
            return Ok((m, None, info.deployment, Vec::new()));
        }
    };
    // The deployed run: its own dead zone and safety layer unless the entry overrides them.
    let (mut deployed, info) = crate::controllers::deploy_run(&run, &task, which, overrides).map_err(|f| err(f.message().to_string()))?;
    let overridden = info.run.as_ref().map(|r| r.overridden.iter().map(|s| s.to_string()).collect()).unwrap_or_default();
    let m = eval_deployed(&task, &mut deployed, seed, episodes).map_err(err)?;
    Ok((m, Some(hash), info.deployment, overridden))
}

/// Number of leaderboard entries: entry k is (tasks[k / n_controllers], controllers[k % n_controllers]).
pub fn n_entries(suite: &Suite) -> usize {
    suite.tasks.len() * suite.controllers.len()
}

/// Runs a suite (every entry, or only entry `only`) into `out` with `jobs` parallel workers over the
/// (entry, seed) jobs; returns the entries in suite order.
pub fn run_suite(suite: &Suite, out: &Path, jobs: usize, only: Option<usize>) -> Result<Vec<EntryOut>, CliError> {
    let nc = suite.controllers.len();
    let selected: Vec<usize> = match only {
        Some(k) => vec![k],
        None => (0..n_entries(suite)).collect(),
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
                let (task, e, seed) = (&suite.tasks[k / nc], &suite.controllers[k % nc], suite.seeds[pos]);
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
        let (t, e) = (&suite.tasks[k / nc], &suite.controllers[k % nc]);
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
        };
        for (idx, &(kk, _)) in work.iter().enumerate() {
            if kk != k {
                continue;
            }
            match &results[&idx] {
                Ok((m, h, d, o)) => {
                    out.per_seed.push(m.clone());
                    if out.train_config_hash.is_none() {
                        out.train_config_hash = h.clone();
                    }
                    if out.deployment.is_none() {
                        out.deployment = Some(*d);
                        out.deployment_overridden = o.clone();
                    }
                }
                Err((status, msg)) => {
                    out.status = status.clone();
                    out.message = Some(msg.clone());
                }
            }
        }
        if out.status == "ok" {
            out.summary = summarize(&out.per_seed);
        } else {
            out.per_seed.clear();
        }
        entries.push(out);
    }
    Ok(entries)
}

/// Median and interquartile range over seeds of the leaderboard's metrics.
fn summarize(per_seed: &[MetricsSummary]) -> BTreeMap<String, Stats> {
    let metric = |f: &dyn Fn(&MetricsSummary) -> f64| {
        let mut v: Vec<f64> = per_seed.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        Stats { median: quantile(&v, 0.5), q25: quantile(&v, 0.25), q75: quantile(&v, 0.75) }
    };
    let mut m = BTreeMap::new();
    m.insert("cr".into(), metric(&|m| m.cr));
    m.insert("ql".into(), metric(&|m| m.ql));
    m.insert("avv_max".into(), metric(&|m| m.avv_max));
    m.insert("violation_rate".into(), metric(&|m| m.violation_rate));
    m.insert("loss_kwh".into(), metric(&|m| m.loss_kwh));
    m
}

fn markdown(suite: &Suite, entries: &[EntryOut]) -> String {
    let mut s = format!(
        "# Leaderboard `{}`\n\nSeeds {:?} × {} test-day episodes each (episode seeds 100·s + i; every controller on the same episodes). Median [25 %, 75 %] over seeds.\n",
        suite.name, suite.seeds, suite.eval_episodes
    );
    for t in &suite.tasks {
        s.push_str(&format!("\n## {t}\n\n| controller | CR | QL (Mvar) | AVV max (pu) | violation rate | losses (kWh) |\n|---|---|---|---|---|---|\n"));
        for e in entries.iter().filter(|e| &e.task == t) {
            if e.status != "ok" {
                s.push_str(&format!("| {} | {} | | | | {} |\n", e.controller, e.status, e.message.clone().unwrap_or_default().replace('|', "/")));
                continue;
            }
            let f = |k: &str, p: usize| {
                let st = &e.summary[k];
                format!("{:.*} [{:.*}, {:.*}]", p, st.median, p, st.q25, p, st.q75)
            };
            let a = &e.summary["avv_max"];
            s.push_str(&format!("| {} | {} | {} | {:.1e} [{:.1e}, {:.1e}] | {} | {} |\n", e.controller, f("cr", 4), f("ql", 4), a.median, a.q25, a.q75, f("violation_rate", 4), f("loss_kwh", 0)));
        }
    }
    s
}

fn html(suite: &Suite, entries: &[EntryOut], md: &str) -> String {
    let esc = |x: &str| x.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let mut body = String::new();
    for t in &suite.tasks {
        body.push_str(&format!("<h2>{}</h2><table><tr><th>controller</th><th>CR median [IQR]</th><th>QL (Mvar)</th><th>violation rate</th><th>losses (kWh)</th></tr>", esc(t)));
        let ok: Vec<&EntryOut> = entries.iter().filter(|e| &e.task == t).collect();
        for e in &ok {
            if e.status != "ok" {
                body.push_str(&format!("<tr><td>{}</td><td colspan=4>{}: {}</td></tr>", esc(&e.controller), esc(&e.status), esc(&e.message.clone().unwrap_or_default())));
                continue;
            }
            let st = |k: &str| &e.summary[k];
            body.push_str(&format!(
                "<tr><td>{}</td><td>{:.4} [{:.4}, {:.4}]</td><td>{:.4}</td><td>{:.4}</td><td>{:.0}</td></tr>",
                esc(&e.controller), st("cr").median, st("cr").q25, st("cr").q75, st("ql").median, st("violation_rate").median, st("loss_kwh").median
            ));
        }
        body.push_str("</table>");
        // Bars: median CR with the interquartile range.
        let rows: Vec<&&EntryOut> = ok.iter().filter(|e| e.status == "ok").collect();
        let h = 24 * rows.len() + 30;
        body.push_str(&format!("<svg width=\"640\" height=\"{h}\" role=\"img\" aria-label=\"median CR\">"));
        for (i, e) in rows.iter().enumerate() {
            let c = &e.summary["cr"];
            let y = 10 + 24 * i;
            let w = |x: f64| 200.0 + 400.0 * x.clamp(0.0, 1.0);
            body.push_str(&format!(
                "<text x=\"195\" y=\"{}\" text-anchor=\"end\" font-size=\"12\">{}</text><rect x=\"200\" y=\"{y}\" width=\"{:.1}\" height=\"16\" fill=\"#4477aa\"/><line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"black\"/>",
                y + 12, esc(&e.controller), w(c.median) - 200.0, w(c.q25), w(c.q75), y + 8, y + 8
            ));
        }
        body.push_str(&format!("<text x=\"200\" y=\"{}\" font-size=\"11\">CR 0</text><text x=\"600\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">1</text></svg>", h - 4, h - 4));
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>VoltArena leaderboard {}</title><style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head><body><h1>VoltArena leaderboard <code>{}</code></h1><p>Seeds {:?} × {} test-day episodes; median and interquartile range over seeds. Provenance in leaderboard.json.</p>{}<details><summary>Markdown</summary><pre>{}</pre></details></body></html>",
        esc(&suite.name), esc(&suite.name), suite.seeds, suite.eval_episodes, body, esc(md)
    )
}

fn read_suite(path: &Path) -> Result<(Suite, String), CliError> {
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
    let text = toml::to_string(&suite).unwrap_or_default();
    let hash = fnv(&text);
    Ok((suite, hash))
}

fn git_commit() -> Option<String> {
    std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Writes leaderboard.json, leaderboard.md and index.html; returns the Markdown.
fn write_outputs(suite: &Suite, suite_hash: &str, entries: &[EntryOut], out: &Path, wall_seconds: f64) -> Result<String, CliError> {
    let json = serde_json::json!({
        "suite": suite,
        "suite_hash": suite_hash,
        "git_commit": git_commit(),
        "versions": {"voltarena": env!("CARGO_PKG_VERSION"), "tch": voltarena_agents::TCH_VERSION, "libtorch": voltarena_agents::LIBTORCH_VERSION},
        "machine": format!("{} cores, {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), std::env::consts::ARCH),
        "created_unix": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "wall_seconds": wall_seconds,
        "entries": entries,
    });
    let md = markdown(suite, entries);
    let w = |name: &str, bytes: &[u8]| atomic::write(&out.join(name), bytes).map_err(|e| CliError::Other(e.to_string()));
    w("leaderboard.json", serde_json::to_string_pretty(&json).unwrap_or_default().as_bytes())?;
    w("leaderboard.md", md.as_bytes())?;
    w("index.html", html(suite, entries, &md).as_bytes())?;
    Ok(md)
}

fn fail_on_errors(entries: &[EntryOut], out: &Path) -> Result<(), CliError> {
    let errors: Vec<String> = entries.iter().filter(|e| e.status == "error" || e.status == "missing").map(|e| format!("{} / {}: {}", e.task, e.controller, e.message.clone().unwrap_or_default())).collect();
    if !errors.is_empty() {
        return Err(CliError::Input(format!("{} entr{} failed (the others are in {}): {}", errors.len(), if errors.len() == 1 { "y" } else { "ies" }, out.display(), errors.join("; "))));
    }
    Ok(())
}

/// One entry's result as written by `--entry K` (a Slurm array task) and merged by `--collect`.
#[derive(Serialize, Deserialize)]
struct EntryFile {
    suite_hash: String,
    index: usize,
    wall_seconds: f64,
    entry: EntryOut,
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// `--emit-slurm DIR`: a job-array script (one leaderboard entry per array task), a collect script,
/// and `submit.sh` that submits both with a dependency.
fn emit_slurm(suite_path: &Path, suite: &Suite, dir: &Path, out: &Path) -> Result<(), CliError> {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    std::fs::create_dir_all(dir.join("logs")).map_err(|e| CliError::Other(format!("cannot create {}: {e}", dir.display())))?;
    let suite_copy = dir.join("suite.toml");
    let text = std::fs::read_to_string(suite_path).map_err(|e| CliError::Input(format!("cannot read {}: {e}", suite_path.display())))?;
    let w = |name: &str, body: &str| atomic::write(&dir.join(name), body.as_bytes()).map_err(|e| CliError::Other(e.to_string()));
    w("suite.toml", &text)?;
    let n = n_entries(suite);
    let nc = suite.controllers.len();
    let mut list = String::from("# array index\ttask\tcontroller\n");
    for k in 0..n {
        list.push_str(&format!("{k}\t{}\t{}\n", suite.tasks[k / nc], suite.controllers[k % nc].name));
    }
    w("entries.tsv", &list)?;
    let root = abs(&std::env::current_dir().unwrap_or_default());
    let exe = std::env::current_exe().map(|p| abs(&p)).unwrap_or_else(|_| PathBuf::from("voltarena"));
    let (suite_abs, out_abs, logs) = (abs(&suite_copy), abs(out), abs(&dir.join("logs")));
    let head = |name: &str| {
        format!(
            "#!/bin/bash\n# Generated by `voltarena leaderboard --emit-slurm` for suite '{}' ({} entries × {} seeds).\n#SBATCH --job-name=voltarena-{}-{name}\n",
            suite.name, n, suite.seeds.len(), suite.name
        )
    };
    let common = format!(
        "set -euo pipefail\n# Relative paths in the suite (configs, run directories) are relative to the project root.\ncd {}\nVOLTARENA=${{VOLTARENA:-{}}}\n",
        shell_quote(&root), shell_quote(&exe)
    );
    let array = format!(
        "{}#SBATCH --array=0-{}\n#SBATCH --cpus-per-task=2\n#SBATCH --mem=8G\n#SBATCH --time=02:00:00\n#SBATCH --output={}/%A_%a.out\n{common}# One leaderboard entry (task × controller, all seeds) per array task; its seeds run on the\n# task's CPUs. The result lands in OUT/entries/<index>.json.\n\"$VOLTARENA\" leaderboard {} --entry \"$SLURM_ARRAY_TASK_ID\" --out {} --jobs \"${{SLURM_CPUS_PER_TASK:-1}}\"\n",
        head("entry"), n - 1, logs.display(), shell_quote(&suite_abs), shell_quote(&out_abs)
    );
    let collect = format!(
        "{}#SBATCH --cpus-per-task=1\n#SBATCH --mem=2G\n#SBATCH --time=00:10:00\n#SBATCH --output={}/collect_%j.out\n{common}# Merges OUT/entries/*.json into leaderboard.json/.md and index.html (same numbers as a local run).\n\"$VOLTARENA\" leaderboard {} --collect {}\n",
        head("collect"), logs.display(), shell_quote(&suite_abs), shell_quote(&out_abs)
    );
    let submit = format!(
        "#!/bin/bash\n# Submits the entry array, then the collect step once every array task has ended (afterany:\n# failed entries are reported by the collect step, the others kept).\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\njid=$(sbatch --parsable leaderboard.sbatch)\nsbatch --dependency=afterany:\"${{jid%%;*}}\" collect.sbatch\necho \"submitted array $jid and its collect step\"\n"
    );
    w("leaderboard.sbatch", &array)?;
    w("collect.sbatch", &collect)?;
    w("submit.sh", &submit)?;
    #[cfg(unix)]
    for f in ["leaderboard.sbatch", "collect.sbatch", "submit.sh"] {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o755));
    }
    println!("{n} entries; submit with: bash {}", dir.join("submit.sh").display());
    Ok(())
}

/// A stored suite with JSON `null`s read as absent keys (leaderboards written before the controller
/// registry stored every unused option as `null`).
fn absent_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(m.into_iter().filter(|(_, x)| !x.is_null()).map(|(k, x)| (k, absent_nulls(x))).collect()),
        serde_json::Value::Array(a) => serde_json::Value::Array(a.into_iter().map(absent_nulls).collect()),
        other => other,
    }
}

pub fn run(args: Args) -> Result<(), CliError> {
    if let Some(dir) = &args.verify {
        let path = dir.join("leaderboard.json");
        let text = std::fs::read_to_string(&path).map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))?;
        let stored: serde_json::Value = serde_json::from_str(&text).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        let suite: Suite = serde_json::from_value(absent_nulls(stored["suite"].clone())).map_err(|e| CliError::Input(format!("{}: suite: {e}", path.display())))?;
        let old: Vec<EntryOut> = serde_json::from_value(stored["entries"].clone()).map_err(|e| CliError::Input(format!("{}: entries: {e}", path.display())))?;
        let tmp = std::env::temp_dir().join(format!("voltarena-verify-{}", std::process::id()));
        let new = run_suite(&suite, &tmp, args.jobs, None)?;
        let _ = std::fs::remove_dir_all(&tmp);
        for (a, b) in old.iter().zip(&new) {
            if a.per_seed != b.per_seed || a.status != b.status {
                return Err(CliError::Other(format!("verify: entry {} / {} differs from {}", a.task, a.controller, path.display())));
            }
        }
        if old.len() != new.len() {
            return Err(CliError::Other(format!("verify: {} entries stored, {} re-run", old.len(), new.len())));
        }
        println!("verified: {} entries identical to {}", new.len(), path.display());
        return Ok(());
    }
    let path = args.suite.ok_or_else(|| CliError::Input("leaderboard needs SUITE.toml or --verify DIR".into()))?;
    let (suite, suite_hash) = read_suite(&path)?;
    let out = args.out.unwrap_or_else(|| PathBuf::from("results").join(format!("leaderboard_{}", suite.name)));
    if let Some(dir) = &args.emit_slurm {
        return emit_slurm(&path, &suite, dir, &out);
    }
    if let Some(cdir) = &args.collect {
        // Merge the per-entry files of a (Slurm) run.
        let mut entries = Vec::new();
        let mut wall = 0.0;
        let nc = suite.controllers.len();
        for k in 0..n_entries(&suite) {
            let f = cdir.join("entries").join(format!("{k}.json"));
            let (t, c) = (&suite.tasks[k / nc], &suite.controllers[k % nc].name);
            let missing = |m: String| EntryOut { task: t.clone(), controller: c.clone(), status: "missing".into(), message: Some(m), seeds: suite.seeds.clone(), per_seed: Vec::new(), summary: BTreeMap::new(), train_config_hash: None, run_dirs: Vec::new(), deployment: None, deployment_overridden: Vec::new() };
            let entry = match std::fs::read_to_string(&f) {
                Err(e) => missing(format!("{}: {e} (array task {k} did not finish)", f.display())),
                Ok(text) => match serde_json::from_str::<EntryFile>(&text) {
                    Err(e) => missing(format!("{}: {e}", f.display())),
                    Ok(ef) if ef.suite_hash != suite_hash || ef.index != k => missing(format!("{}: written for another suite (hash {}, entry {}) than {} (hash {suite_hash}, entry {k})", f.display(), ef.suite_hash, ef.index, path.display())),
                    Ok(ef) => {
                        wall += ef.wall_seconds;
                        ef.entry
                    }
                },
            };
            entries.push(entry);
        }
        let md = write_outputs(&suite, &suite_hash, &entries, cdir, wall)?;
        print!("{md}");
        println!("\ncollected {} entries into {}", entries.len(), cdir.display());
        return fail_on_errors(&entries, cdir);
    }
    std::fs::create_dir_all(&out).map_err(|e| CliError::Other(format!("cannot create {}: {e}", out.display())))?;
    let t0 = std::time::Instant::now();
    if let Some(k) = args.entry {
        let n = n_entries(&suite);
        if k >= n {
            return Err(CliError::Input(format!("--entry {k}: the suite {} has entries 0..{}", path.display(), n - 1)));
        }
        let entry = run_suite(&suite, &out, args.jobs, Some(k))?.remove(0);
        let f = out.join("entries").join(format!("{k}.json"));
        std::fs::create_dir_all(out.join("entries")).map_err(|e| CliError::Other(format!("cannot create {}: {e}", out.display())))?;
        let ef = EntryFile { suite_hash, index: k, wall_seconds: t0.elapsed().as_secs_f64(), entry };
        atomic::write(&f, serde_json::to_string_pretty(&ef).unwrap_or_default().as_bytes()).map_err(|e| CliError::Other(e.to_string()))?;
        println!("entry {k} ({} / {}): {} → {}", ef.entry.task, ef.entry.controller, ef.entry.status, f.display());
        return fail_on_errors(std::slice::from_ref(&ef.entry), &out);
    }
    let entries = run_suite(&suite, &out, args.jobs, None)?;
    let md = write_outputs(&suite, &suite_hash, &entries, &out, t0.elapsed().as_secs_f64())?;
    print!("{md}");
    println!("\nwritten to {} in {:.1} s", out.display(), t0.elapsed().as_secs_f64());
    fail_on_errors(&entries, &out)
}
