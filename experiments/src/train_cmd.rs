//! `voltarena train CONFIG.toml [--set key=value ...] [--seed K] [--resume RUN_DIR]` and
//! `voltarena eval RUN_DIR [--split test] [--episodes N] [--json]`.
//!
//! A run directory holds: `config.toml` (the resolved config), `run.json` (seed, git commit,
//! versions, machine and CPU, command), `metrics.csv`, `tb/` (TensorBoard event files), `checkpoint/`
//! (the latest networks + progress) and `best/` (the best validation policy), both replaced
//! atomically (write a sibling folder, then rename).

use crate::provenance::{self, now_unix, Cpu, Machine};
use crate::{atomic, CliError};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tensorboard_rs::summary_writer::SummaryWriter;
use voltarena_agents::matd3::UpdateInfo;
use voltarena_agents::run::{resume_checkpoint, Overrides, RunDir};
use voltarena_agents::train::{evaluate, Logger, TrainConfig, Trainer};
use voltarena_env::deploy::Checkpoint;
use voltarena_env::{MetricsSummary, Split, Task};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Training config (TOML), e.g. configs/matd3_mapdn33.toml.
    config: Option<PathBuf>,
    /// Override a config value (TOML syntax), e.g. `--set matd3.actor_lr=3e-4`; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    #[arg(long)]
    seed: Option<u64>,
    /// Continue a run from its latest checkpoint (its own config.toml is used).
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// Parent folder of new run directories.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    run_dir: PathBuf,
    #[arg(long, default_value = "test")]
    split: String,
    #[arg(long, default_value_t = 10)]
    episodes: usize,
    /// Which networks: the best validation checkpoint (default) or the last one.
    #[arg(long, default_value = "best")]
    checkpoint: String,
    #[arg(long)]
    json: bool,
}

/// run.json.
#[derive(Serialize)]
struct Provenance {
    seed: u64,
    git_commit: String,
    git_dirty: bool,
    voltarena_version: &'static str,
    tch_version: &'static str,
    libtorch_version: &'static str,
    machine: String,
    /// CPU model and SIMD flags (what decides which numeric kernels ran).
    cpu: Cpu,
    /// The pinned libtorch / MKL / oneDNN instruction-set modes (voltarena_agents::numerics).
    numerics: &'static voltarena_agents::numerics::Numerics,
    command: Vec<String>,
    started_unix: u64,
}

/// Replaces `dir` atomically by what `fill` writes into a sibling temporary folder.
pub fn atomic_dir(dir: &Path, fill: impl FnOnce(&Path) -> Result<(), String>) -> Result<(), String> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.with_file_name(format!("{name}.tmp"));
    let old = dir.with_file_name(format!("{name}.old"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fill(&tmp)?;
    let _ = std::fs::remove_dir_all(&old);
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

struct RunLogger {
    dir: PathBuf,
    csv: std::fs::File,
    /// Bytes of metrics.csv written (what a resumed run truncates it back to).
    csv_len: u64,
    tb: SummaryWriter,
    bar: ProgressBar,
    /// Best validation (CR, QL, mean return) so far.
    best: Option<(f64, f64, f64)>,
    last_update: UpdateInfo,
    last_eval: Option<(f64, f64, f64)>,
    best_by: voltarena_agents::config::BestBy,
    /// The first validation's (CR, QL): the reference of `best_by = "pareto"`.
    start: Option<(f64, f64)>,
}

impl RunLogger {
    fn row(&mut self, kind: &str, step: usize, episode: usize, ret: f64, m: &MetricsSummary) {
        let u = self.last_update;
        let _ = writeln!(
            self.csv,
            "{kind},{step},{episode},{ret:.6},{:.6},{:.6},{:.6e},{:.6},{:.4},{:.6},{}",
            m.cr,
            m.ql,
            m.avv_max,
            m.violation_rate,
            m.loss_kwh,
            u.critic_loss,
            u.actor_loss.map(|a| format!("{a:.6}")).unwrap_or_default()
        );
        let _ = self.csv.flush();
        self.csv_len = self.csv.metadata().map(|m| m.len()).unwrap_or(self.csv_len);
    }

    /// What this logger needs to go on exactly where a checkpoint left off (float bits).
    fn state(&self) -> Vec<u8> {
        let mut w = voltarena_agents::checkpoint::Writer::default();
        w.u64(self.csv_len);
        for triple in [self.best, self.last_eval] {
            w.bool(triple.is_some());
            let (a, b, c) = triple.unwrap_or_default();
            w.f64(a);
            w.f64(b);
            w.f64(c);
        }
        let u = self.last_update;
        w.f64(u.critic_loss);
        w.bool(u.actor_loss.is_some());
        w.f64(u.actor_loss.unwrap_or_default());
        w.f64(u.q_mean);
        // Only where it is used, so that checkpoints of the other selections keep their format.
        if self.best_by == voltarena_agents::config::BestBy::Pareto {
            w.bool(self.start.is_some());
            let (a, b) = self.start.unwrap_or_default();
            w.f64(a);
            w.f64(b);
        }
        w.buf
    }

    fn restore(&mut self, blob: &[u8], ckpt: &Path) -> Result<(), String> {
        let e = |e: voltarena_agents::checkpoint::CheckpointError| e.to_string();
        let path = ckpt.join("resume.bin");
        let mut r = voltarena_agents::checkpoint::Reader::nested(&path, blob);
        self.csv_len = r.u64("metrics.csv length").map_err(e)?;
        let mut pairs = [None, None];
        for p in pairs.iter_mut() {
            let on = r.bool("logger value").map_err(e)?;
            let (a, b, c) = (r.f64("logger value").map_err(e)?, r.f64("logger value").map_err(e)?, r.f64("logger value").map_err(e)?);
            *p = on.then_some((a, b, c));
        }
        (self.best, self.last_eval) = (pairs[0], pairs[1]);
        let critic_loss = r.f64("critic loss").map_err(e)?;
        let has_actor = r.bool("actor loss").map_err(e)?;
        let actor_loss = r.f64("actor loss").map_err(e)?;
        self.last_update = UpdateInfo { critic_loss, actor_loss: has_actor.then_some(actor_loss), q_mean: r.f64("q mean").map_err(e)?, q_multiplier: 0.0 };
        if self.best_by == voltarena_agents::config::BestBy::Pareto {
            let on = r.bool("first validation").map_err(e)?;
            let (a, b) = (r.f64("first validation").map_err(e)?, r.f64("first validation").map_err(e)?);
            self.start = on.then_some((a, b));
        }
        r.end().map_err(e)?;
        // Rows written after the checkpoint are written again by the resumed run.
        let len = self.csv.metadata().map_err(|e| e.to_string())?.len();
        if len < self.csv_len {
            return Err(format!("{}: {len} bytes, shorter than the {} its checkpoint recorded", self.dir.join("metrics.csv").display(), self.csv_len));
        }
        self.csv.set_len(self.csv_len).map_err(|e| format!("{}: {e}", self.dir.join("metrics.csv").display()))?;
        Ok(())
    }
}

impl Logger for RunLogger {
    fn step(&mut self, step: usize) {
        self.bar.set_position(step as u64);
    }

    fn train_episode(&mut self, step: usize, episode: usize, ret: f64, m: &MetricsSummary) {
        self.row("train", step, episode, ret, m);
        self.tb.add_scalar("train/return", ret as f32, step);
        self.tb.add_scalar("train/cr", m.cr as f32, step);
        self.tb.add_scalar("train/ql", m.ql as f32, step);
        self.tb.add_scalar("train/divergences", m.divergences as f32, step);
        let eval = self.last_eval.map(|(cr, ql, _)| format!(" · val CR {cr:.3} QL {ql:.3}")).unwrap_or_default();
        self.bar.set_message(format!("ep {episode} return {ret:.2} CR {:.3}{eval}", m.cr));
    }

    fn update(&mut self, step: usize, info: &UpdateInfo) {
        self.last_update = *info;
        if step % 100 == 0 {
            self.tb.add_scalar("loss/critic", info.critic_loss as f32, step);
            if let Some(a) = info.actor_loss {
                self.tb.add_scalar("loss/actor", a as f32, step);
            }
            self.tb.add_scalar("loss/q_mean", info.q_mean as f32, step);
            if info.q_multiplier > 0.0 {
                self.tb.add_scalar("loss/q_multiplier", info.q_multiplier as f32, step);
            }
        }
    }

    fn eval(&mut self, step: usize, ret: f64, m: &MetricsSummary) {
        self.row("eval", step, 0, ret, m);
        self.tb.add_scalar("eval/return", ret as f32, step);
        self.tb.add_scalar("eval/cr", m.cr as f32, step);
        self.tb.add_scalar("eval/ql", m.ql as f32, step);
        self.tb.flush();
        self.last_eval = Some((m.cr, m.ql, ret));
        self.start.get_or_insert((m.cr, m.ql));
    }

    fn checkpoint(&mut self, trainer: &Trainer) -> Result<(), String> {
        let step = trainer.progress.step.max(1);
        self.tb.add_scalar("safety/intervention_rate", trainer.safety_interventions as f32 / step as f32, step);
        self.tb.add_scalar("safety/infeasible", trainer.safety_infeasible as f32, step);
        // The best policy first, the resumable checkpoint last: the checkpoint is the commit point,
        // and a run killed between the two redoes the stretch and rewrites the same best policy.
        if let Some((cr, ql, ret)) = self.last_eval {
            let start = self.start.unwrap_or((cr, ql));
            let better = self.best.is_none_or(|b| self.best_by.prefers(start, b, (cr, ql, ret)));
            if better {
                atomic_dir(&self.dir.join("best"), |d| trainer.save(d))?;
                self.best = Some((cr, ql, ret));
                let _ = atomic::write(&self.dir.join("best.json"), format!("{{\"step\": {}, \"val_cr\": {cr}, \"val_ql\": {ql}, \"val_return\": {ret}}}", trainer.progress.step).as_bytes());
            }
        }
        let state = self.state();
        let replay = self.dir.join("replay");
        atomic_dir(&self.dir.join("checkpoint"), |d| trainer.save_resumable(d, &replay, &state))?;
        Ok(())
    }
}

fn load_config(doc: toml::Value, source: &str) -> Result<TrainConfig, CliError> {
    doc.try_into().map_err(|e: toml::de::Error| CliError::Input(format!("{source}: {}", e.message())))
}

pub fn train(args: TrainArgs) -> Result<(), CliError> {
    let mut trainer = None;
    let (cfg, dir, resume_from) = match &args.resume {
        Some(run) => {
            let path = run.join("config.toml");
            let doc = crate::config::read_toml(&path, &args.sets)?;
            let cfg = load_config(doc, &path.display().to_string())?;
            // Stopped before its first checkpoint: the run starts over in its own directory.
            let ckpt = resume_checkpoint(run);
            if ckpt.is_none() {
                eprintln!("{}: no checkpoint yet, training starts over in this run directory", run.display());
            }
            (cfg, run.clone(), ckpt)
        }
        None => {
            let path = args.config.clone().ok_or_else(|| CliError::Input("train needs CONFIG.toml or --resume RUN_DIR".into()))?;
            let mut doc = crate::config::read_toml(&path, &args.sets)?;
            if let Some(seed) = args.seed {
                doc.as_table_mut().map(|t| t.insert("seed".into(), toml::Value::Integer(seed as i64)));
            }
            let cfg = load_config(doc, &path.display().to_string())?;
            // Validate and build everything before the run directory exists, so that a config that
            // fails at start leaves nothing behind.
            trainer = Some(Trainer::new(cfg.clone()).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?);
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
            // A fresh directory: create_dir fails if it exists, so parallel runs never share one.
            std::fs::create_dir_all(&args.runs_dir).map_err(|e| CliError::Other(format!("cannot create {}: {e}", args.runs_dir.display())))?;
            let base = format!("{stem}-seed{}-{}", cfg.seed, now_unix());
            let mut k = 1;
            let dir = loop {
                let d = args.runs_dir.join(if k == 1 { base.clone() } else { format!("{base}-{k}") });
                match std::fs::create_dir(&d) {
                    Ok(()) => break d,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && k < 1000 => k += 1,
                    Err(e) => return Err(CliError::Other(format!("cannot create {}: {e}", d.display()))),
                }
            };
            (cfg, dir, None)
        }
    };
    let mut trainer = match trainer {
        Some(t) => t,
        None => Trainer::new(cfg.clone()).map_err(|e| CliError::Input(format!("{}: {e}", dir.join("config.toml").display())))?,
    };
    let mut logger_state = None;
    if let Some(ckpt) = &resume_from {
        logger_state = trainer.resume(ckpt, &dir.join("replay")).map_err(|e| CliError::Input(e.to_string()))?;
        eprintln!("resuming {} at step {} of {}", dir.display(), trainer.progress.step, cfg.total_steps);
        if logger_state.is_none() {
            eprintln!("{}: written before checkpoints were resumable: networks and progress restored, optimiser state and replay buffer start afresh (the numbers will differ from an uninterrupted run)", ckpt.display());
        }
    }
    if args.resume.is_none() {
        let toml_text = toml::to_string(&cfg).map_err(|e| CliError::Other(e.to_string()))?;
        atomic::write(&dir.join("config.toml"), toml_text.as_bytes()).map_err(|e| CliError::Other(e.to_string()))?;
    }
    if resume_from.is_none() || !dir.join("run.json").exists() {
        let machine = Machine::detect();
        let prov = Provenance {
            seed: cfg.seed,
            git_commit: provenance::git_commit().unwrap_or_else(|| "unknown".into()),
            git_dirty: provenance::git_dirty(),
            voltarena_version: provenance::VOLTARENA_VERSION,
            tch_version: provenance::TCH_VERSION,
            libtorch_version: provenance::LIBTORCH_VERSION,
            machine: machine.label(),
            cpu: machine.cpu,
            numerics: voltarena_agents::numerics::pin(),
            command: std::env::args().collect(),
            started_unix: now_unix(),
        };
        atomic::write(&dir.join("run.json"), serde_json::to_string_pretty(&prov).unwrap_or_default().as_bytes()).map_err(|e| CliError::Other(e.to_string()))?;
    }
    let csv_path = dir.join("metrics.csv");
    // A fresh start (also one in the directory of a run stopped before its first checkpoint) writes
    // metrics.csv from its header; a resumed run truncates it to what its checkpoint had written.
    let fresh = resume_from.is_none();
    let mut csv = OpenOptions::new().create(true).append(true).open(&csv_path).map_err(|e| CliError::Other(format!("{}: {e}", csv_path.display())))?;
    if fresh || csv.metadata().map(|m| m.len() == 0).unwrap_or(true) {
        csv.set_len(0).map_err(|e| CliError::Other(format!("{}: {e}", csv_path.display())))?;
        let _ = writeln!(csv, "kind,step,episode,return,cr,ql,avv_max,violation_rate,loss_kwh,critic_loss,actor_loss");
        let _ = csv.flush();
    }
    let csv_len = csv.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(cfg.total_steps as u64);
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps (ETA {eta}) {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.set_position(trainer.progress.step as u64);
    let mut log = RunLogger {
        tb: SummaryWriter::new(dir.join("tb")),
        dir: dir.clone(),
        csv,
        csv_len,
        bar,
        best: None,
        last_update: UpdateInfo::default(),
        last_eval: None,
        best_by: cfg.best_by,
        start: None,
    };
    if let (Some(blob), Some(ckpt)) = (&logger_state, &resume_from) {
        log.restore(blob, ckpt).map_err(CliError::Input)?;
    }
    let t0 = std::time::Instant::now();
    trainer.run(&mut log).map_err(|e| CliError::Other(e.to_string()))?;
    log.tb.flush();
    log.bar.finish();
    write_curve(&dir).map_err(CliError::Other)?;
    eprintln!("run finished in {:.1} s: {}", t0.elapsed().as_secs_f64(), dir.display());
    println!("{}", dir.display());
    Ok(())
}

/// `curve.svg`: validation CR and QL (Mvar) against environment steps, from `metrics.csv`.
pub fn write_curve(dir: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).map_err(|e| format!("{}: {e}", dir.join("metrics.csv").display()))?;
    let (mut cr, mut ql, mut tr) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 6 {
            continue;
        }
        let (step, c, q) = (f[1].parse::<f64>().unwrap_or(f64::NAN), f[4].parse::<f64>().unwrap_or(f64::NAN), f[5].parse::<f64>().unwrap_or(f64::NAN));
        match f[0] {
            "eval" => {
                cr.push((step, c));
                ql.push((step, q));
            }
            "train" => tr.push((step, c)),
            _ => {}
        }
    }
    // Training-episode CR as a 10-episode moving average.
    let smooth: Vec<(f64, f64)> = (0..tr.len()).map(|i| {
        let lo = i.saturating_sub(9);
        (tr[i].0, tr[lo..=i].iter().map(|p| p.1).sum::<f64>() / (i - lo + 1) as f64)
    }).collect();
    crate::plot::lines(
        &dir.join("curve.svg"),
        "Learning curve (validation days: CR and QL; training episodes: CR, 10-episode mean)",
        "environment steps",
        "CR / QL (Mvar)",
        &[
            crate::plot::Series { name: "val CR", points: cr },
            crate::plot::Series { name: "val QL (Mvar)", points: ql },
            crate::plot::Series { name: "train CR (exploring)", points: smooth },
        ],
        &[],
    )
}

#[derive(Serialize)]
struct EvalOut {
    cr: f64,
    ql: f64,
    avv_max: f64,
    loss_kwh: f64,
    violation_rate: f64,
    episodes: usize,
    split: Split,
    checkpoint: String,
    mean_return: f64,
    divergences: usize,
}

pub fn eval(args: EvalArgs) -> Result<(), CliError> {
    let run = RunDir::open(&args.run_dir).map_err(|e| CliError::Input(e.to_string()))?;
    let split: Split = args.split.parse().map_err(CliError::Input)?;
    let which: Checkpoint = args.checkpoint.parse().map_err(|e| CliError::Input(format!("--checkpoint: {e}")))?;
    if args.episodes == 0 {
        return Err(CliError::Input("--episodes must be at least 1".into()));
    }
    let task = Arc::new(Task::load(&run.config().task).map_err(|e| CliError::Input(e.to_string()))?);
    // The deployed system: the actor behind the run's own dead zone and safety layer.
    let (mut deployed, record) = run.deploy(&task, which, &Overrides::default()).map_err(|e| CliError::Input(e.to_string()))?;
    let (ret, m) = evaluate(&task, &mut deployed, split, args.episodes, 0).map_err(|e| CliError::Other(e.to_string()))?;
    let ckpt = PathBuf::from(&record.checkpoint);
    let out = EvalOut {
        cr: m.cr,
        ql: m.ql,
        avv_max: m.avv_max,
        loss_kwh: m.loss_kwh,
        violation_rate: m.violation_rate,
        episodes: args.episodes,
        split,
        checkpoint: ckpt.display().to_string(),
        mean_return: ret,
        divergences: m.divergences,
    };
    if args.json {
        println!("{}", serde_json::to_string(&out).map_err(|e| CliError::Other(e.to_string()))?);
    } else {
        println!("{} on {} {:?} episodes ({}):", args.run_dir.display(), args.episodes, split, out.checkpoint);
        println!("  CR {:.4} · QL {:.5} Mvar · AVV max {:.3e} pu · violation rate {:.4} · losses {:.1} kWh · return {:.3}", m.cr, m.ql, m.avv_max, m.violation_rate, m.loss_kwh, ret);
    }
    Ok(())
}
