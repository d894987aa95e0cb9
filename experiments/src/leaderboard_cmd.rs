//! `voltarena leaderboard SUITE.toml [--out DIR] [--jobs N]` and `voltarena leaderboard --verify DIR`.
//!
//! A suite is tasks × controllers × seeds. For seed s every controller is evaluated on the same
//! `eval_episodes` episodes of the test split (episode seeds 100·s + i, no data noise); RL entries are
//! first trained with seed s (MAPDN's protocol: 5 seeds × 10 episodes, median and interquartile range
//! over seeds). Output: `leaderboard.json` (every entry with its per-seed numbers and provenance: suite
//! hash, training-config hashes, git commit, versions, machine), `leaderboard.md` and a static
//! `index.html`. `--verify DIR` re-runs the suite stored in `DIR/leaderboard.json` and fails naming the
//! first entry whose numbers differ.

use crate::{atomic, CliError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use voltarena_agents::policy::RlPolicy;
use voltarena_agents::train::{Logger, TrainConfig, Trainer};
use voltarena_baselines::suite::DroopSpec;
use voltarena_env::controller::NoControl;
use voltarena_env::safety::{SafetyConfig, SafetyLayer};
use voltarena_env::{Controller, MetricsSummary, Split, Task, VoltageEnv};

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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SuiteEntry {
    pub name: String,
    /// "none", "droop", "ofo" or "rl".
    pub kind: String,
    #[serde(default)]
    pub droop: Option<DroopSpec>,
    #[serde(default)]
    pub ofo_config: Option<PathBuf>,
    #[serde(default)]
    pub ofo: Option<String>,
    /// RL: the training config and overrides (`key=value`); the task is set by the suite.
    #[serde(default)]
    pub train: Option<PathBuf>,
    #[serde(default)]
    pub set: Vec<String>,
    /// Extra overrides for one task, e.g. `set_by_task = { rural2_96 = ["total_steps=2400"] }`.
    #[serde(default)]
    pub set_by_task: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub safety: Option<SafetyConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub name: String,
    pub tasks: Vec<String>,
    pub seeds: Vec<u64>,
    #[serde(default = "ten")]
    pub eval_episodes: usize,
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

/// libtorch's generator is process-global: network initialisation happens one job at a time so
/// that parallel jobs stay reproducible (training itself uses each job's own generators).
static TORCH_INIT: Mutex<()> = Mutex::new(());

fn eval_controller(task: &Arc<Task>, ctl: &mut dyn Controller, safety: Option<SafetyConfig>, seed: u64, episodes: usize) -> Result<MetricsSummary, String> {
    let mut env = VoltageEnv::new(task.clone()).map_err(|e| e.to_string())?;
    let mut layer = SafetyLayer::new(task, safety.unwrap_or_default()).map_err(|e| e.to_string())?;
    let seeds: Vec<u64> = (0..episodes as u64).map(|i| 100 * seed + i).collect();
    let ev = voltarena_env::controller::evaluate(&mut env, ctl, Some(&mut layer), Split::Test, &seeds, &mut |_, _, _| {}).map_err(|e| e.to_string())?;
    Ok(ev.metrics)
}

/// One (task, controller, seed) job: Ok(summary), or Err((status, message)).
fn run_job(e: &SuiteEntry, task_name: &str, seed: u64, episodes: usize, run_dir: &Path) -> Result<(MetricsSummary, Option<String>), (String, String)> {
    let err = |m: String| ("error".to_string(), m);
    let task = Arc::new(Task::load(task_name).map_err(|x| err(x.to_string()))?);
    match e.kind.as_str() {
        "none" => eval_controller(&task, &mut NoControl, e.safety, seed, episodes).map(|m| (m, None)).map_err(err),
        "droop" => {
            let mut d = e.droop.clone().unwrap_or_else(crate::config::default_droop).build().map_err(|x| err(x.to_string()))?;
            eval_controller(&task, &mut d, e.safety, seed, episodes).map(|m| (m, None)).map_err(err)
        }
        "ofo" => {
            let path = e.ofo_config.as_ref().ok_or_else(|| err("kind = \"ofo\" needs ofo_config".into()))?;
            let name = e.ofo.as_deref().ok_or_else(|| err("kind = \"ofo\" needs ofo".into()))?;
            // A controller that does not apply to the task (OFO needs an inverter at every bus) is
            // "n/a", not an error.
            let mut c = crate::config::ofo_from_config(path, name, &task).map_err(|x| match x {
                crate::config::OfoLoadError::Config(m) => err(m),
                crate::config::OfoLoadError::NotApplicable(m) => ("n/a".to_string(), m),
            })?;
            eval_controller(&task, c.as_mut(), e.safety, seed, episodes).map(|m| (m, None)).map_err(err)
        }
        "rl" => {
            let path = e.train.as_ref().ok_or_else(|| err("kind = \"rl\" needs train = \"<config>\"".into()))?;
            let mut sets = e.set.clone();
            sets.extend(e.set_by_task.get(task_name).cloned().unwrap_or_default());
            sets.push(format!("task=\"{task_name}\""));
            sets.push(format!("seed={seed}"));
            let doc = crate::config::read_toml(path, &sets).map_err(|x| err(match x { CliError::Input(m) | CliError::Other(m) => m }))?;
            let cfg: TrainConfig = doc.try_into().map_err(|x: toml::de::Error| err(format!("{}: {}", path.display(), x.message())))?;
            let text = toml::to_string(&cfg).unwrap_or_default();
            let mut trainer = {
                let _g = TORCH_INIT.lock().unwrap_or_else(|p| p.into_inner());
                Trainer::new(cfg.clone()).map_err(|x| err(x.to_string()))?
            };
            trainer.run(&mut Quiet).map_err(|x| err(x.to_string()))?;
            std::fs::create_dir_all(run_dir).map_err(|x| err(x.to_string()))?;
            let _ = atomic::write(&run_dir.join("config.toml"), text.as_bytes());
            crate::train_cmd::atomic_dir(&run_dir.join("checkpoint"), |d| trainer.save(d)).map_err(err)?;
            let mut policy = RlPolicy::load(&cfg, &run_dir.join("checkpoint"), task.n_agents(), task.obs_dim(), task.state_dim()).map_err(err)?;
            // The run's own safety layer (if any) is part of the deployed system.
            let safety = if cfg.safety.kind != voltarena_env::safety::SafetyKind::None { Some(cfg.safety) } else { e.safety };
            eval_controller(&task, &mut policy, safety, seed, episodes).map(|m| (m, Some(fnv(&text)))).map_err(err)
        }
        other => Err(err(format!("unknown controller kind '{other}'; expected none, droop, ofo or rl"))),
    }
}

/// Runs a whole suite into `out`; returns the entries (also written to disk).
pub fn run_suite(suite: &Suite, out: &Path, jobs: usize) -> Result<Vec<EntryOut>, CliError> {
    let mut work = Vec::new();
    for t in &suite.tasks {
        for (ci, _) in suite.controllers.iter().enumerate() {
            for &s in &suite.seeds {
                work.push((t.clone(), ci, s));
            }
        }
    }
    let total = work.len();
    // Workers pop from the back: reverse, so jobs start in suite order.
    let mut jobs_list: Vec<_> = work.into_iter().enumerate().collect();
    jobs_list.reverse();
    let queue = Arc::new(Mutex::new(jobs_list));
    let results: Arc<Mutex<BTreeMap<usize, Result<(MetricsSummary, Option<String>), (String, String)>>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let keys: Vec<(String, usize, u64)> = {
        let q = queue.lock().unwrap_or_else(|p| p.into_inner());
        let mut k: Vec<(usize, (String, usize, u64))> = q.clone();
        k.sort_by_key(|x| x.0);
        k.into_iter().map(|(_, k)| k).collect()
    };
    let bar = indicatif::ProgressBar::new(total as u64);
    std::thread::scope(|sc| {
        for _ in 0..jobs.max(1) {
            let (queue, results, bar) = (queue.clone(), results.clone(), bar.clone());
            sc.spawn(move || loop {
                let job = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                let Some((idx, (task, ci, seed))) = job else { break };
                let e = &suite.controllers[ci];
                let dir = out.join("runs").join(&task).join(&e.name).join(format!("seed{seed}"));
                let r = run_job(e, &task, seed, suite.eval_episodes, &dir);
                results.lock().unwrap_or_else(|p| p.into_inner()).insert(idx, r);
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    let results = results.lock().unwrap_or_else(|p| p.into_inner());
    let mut entries: Vec<EntryOut> = Vec::new();
    for t in &suite.tasks {
        for (ci, e) in suite.controllers.iter().enumerate() {
            let mut out = EntryOut { task: t.clone(), controller: e.name.clone(), status: "ok".into(), message: None, seeds: suite.seeds.clone(), per_seed: Vec::new(), summary: BTreeMap::new(), train_config_hash: None };
            for (idx, key) in keys.iter().enumerate() {
                if key.0 != *t || key.1 != ci {
                    continue;
                }
                match &results[&idx] {
                    Ok((m, h)) => {
                        out.per_seed.push(m.clone());
                        if out.train_config_hash.is_none() {
                            out.train_config_hash = h.clone();
                        }
                    }
                    Err((status, msg)) => {
                        out.status = status.clone();
                        out.message = Some(msg.clone());
                    }
                }
            }
            if out.status == "ok" {
                let metric = |f: &dyn Fn(&MetricsSummary) -> f64| {
                    let mut v: Vec<f64> = out.per_seed.iter().map(f).collect();
                    v.sort_by(f64::total_cmp);
                    Stats { median: quantile(&v, 0.5), q25: quantile(&v, 0.25), q75: quantile(&v, 0.75) }
                };
                out.summary.insert("cr".into(), metric(&|m| m.cr));
                out.summary.insert("ql".into(), metric(&|m| m.ql));
                out.summary.insert("avv_max".into(), metric(&|m| m.avv_max));
                out.summary.insert("violation_rate".into(), metric(&|m| m.violation_rate));
                out.summary.insert("loss_kwh".into(), metric(&|m| m.loss_kwh));
            } else {
                out.per_seed.clear();
            }
            entries.push(out);
        }
    }
    Ok(entries)
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

pub fn run(args: Args) -> Result<(), CliError> {
    if let Some(dir) = &args.verify {
        let path = dir.join("leaderboard.json");
        let text = std::fs::read_to_string(&path).map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))?;
        let stored: serde_json::Value = serde_json::from_str(&text).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        let suite: Suite = serde_json::from_value(stored["suite"].clone()).map_err(|e| CliError::Input(format!("{}: suite: {e}", path.display())))?;
        let old: Vec<EntryOut> = serde_json::from_value(stored["entries"].clone()).map_err(|e| CliError::Input(format!("{}: entries: {e}", path.display())))?;
        let tmp = std::env::temp_dir().join(format!("voltarena-verify-{}", std::process::id()));
        let new = run_suite(&suite, &tmp, args.jobs)?;
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
    let doc = crate::config::read_toml(&path, &[])?;
    let suite: Suite = doc.try_into().map_err(|e: toml::de::Error| CliError::Input(format!("{}: {}", path.display(), e.message())))?;
    if suite.tasks.is_empty() || suite.seeds.is_empty() || suite.controllers.is_empty() || suite.eval_episodes == 0 {
        return Err(CliError::Input(format!("{}: needs tasks, seeds, controllers and eval_episodes ≥ 1", path.display())));
    }
    for t in &suite.tasks {
        Task::load(t).map_err(|e| CliError::Input(format!("{}: tasks: {e}", path.display())))?;
    }
    let out = args.out.unwrap_or_else(|| PathBuf::from("results").join(format!("leaderboard_{}", suite.name)));
    std::fs::create_dir_all(&out).map_err(|e| CliError::Other(format!("cannot create {}: {e}", out.display())))?;
    let t0 = std::time::Instant::now();
    let entries = run_suite(&suite, &out, args.jobs)?;
    let suite_text = toml::to_string(&suite).unwrap_or_default();
    let json = serde_json::json!({
        "suite": suite,
        "suite_hash": fnv(&suite_text),
        "git_commit": std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()),
        "versions": {"voltarena": env!("CARGO_PKG_VERSION"), "tch": voltarena_agents::TCH_VERSION, "libtorch": voltarena_agents::LIBTORCH_VERSION},
        "machine": format!("{} cores, {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), std::env::consts::ARCH),
        "created_unix": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "wall_seconds": t0.elapsed().as_secs_f64(),
        "entries": entries,
    });
    let md = markdown(&suite, &entries);
    atomic::write(&out.join("leaderboard.json"), serde_json::to_string_pretty(&json).unwrap_or_default().as_bytes()).map_err(|e| CliError::Other(e.to_string()))?;
    atomic::write(&out.join("leaderboard.md"), md.as_bytes()).map_err(|e| CliError::Other(e.to_string()))?;
    atomic::write(&out.join("index.html"), html(&suite, &entries, &md).as_bytes()).map_err(|e| CliError::Other(e.to_string()))?;
    print!("{md}");
    println!("\nwritten to {} in {:.1} s", out.display(), t0.elapsed().as_secs_f64());
    let errors: Vec<String> = entries.iter().filter(|e| e.status == "error").map(|e| format!("{} / {}: {}", e.task, e.controller, e.message.clone().unwrap_or_default())).collect();
    if !errors.is_empty() {
        return Err(CliError::Input(format!("{} entr{} failed (the others are in {}): {}", errors.len(), if errors.len() == 1 { "y" } else { "ies" }, out.display(), errors.join("; "))));
    }
    Ok(())
}
