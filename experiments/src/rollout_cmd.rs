//! `voltarena rollout --task NAME --controller none|random|droop|centralized|nested|two_metric|qu2020|tang2024|rl
//! [--run RUN_DIR] [--checkpoint best|last] [--steps N] [--backend ac|lindistflow] [--seed K]
//! [--split train|val|test] [--safety none|projection|cbf] [--json] [--trace FILE.csv]`
//!
//! Runs episodes back to back (episode e is reset with seed K + e) until N steps have been taken
//! (default: one episode) and reports the aggregate metrics. With `--json`:
//! `{"steps": N, "wall_seconds": s, "steps_per_second": x, "metrics": {"cr": .., "ql": ..,
//! "avv_max": .., "violation_rate": .., "loss_kwh": .., "divergences": ..}}` plus extra fields.
//! Controllers come from the registry with their default settings (`voltarena_baselines::spec`);
//! `rl` deploys a trained run behind its own dead zone and safety layer unless `--safety` or
//! `--dead-zone` says otherwise.
//!
//! `--trace FILE.csv` also writes what every inverter saw and did at every step, one row per step
//! and agent (written atomically when the rollout ends): `episode,t,agent,bus,v_pu,q_mvar,
//! q_avail_mvar,p_mw` — episode index, step within it (1 = after the first action), the agent and
//! its bus id, the bus voltage after the step (pu, as its meter reads it), the reactive setpoint in
//! force during the step (Mvar, generator convention), the reactive power the inverter had
//! available (Mvar) and its PV output (MW). Plotting q/q_avail against v shows the Volt/VAr
//! behaviour a controller — a trained policy included — actually implements.

use crate::CliError;
use clap::ValueEnum;
use serde::Serialize;
use std::sync::Arc;
use voltarena_agents::run::Overrides;
use voltarena_baselines::{ControllerSpec, Faults};
use voltarena_env::deploy::{Checkpoint, RolloutMetrics};
use voltarena_env::safety::{SafetyConfig, SafetyKind};
use voltarena_env::task::Backend;
use voltarena_env::{Split, Task, VoltageEnv};

#[derive(Clone, Copy, ValueEnum)]
pub enum BackendArg {
    Ac,
    Lindistflow,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SplitArg {
    Train,
    Val,
    Test,
}

#[derive(clap::Args)]
pub struct Args {
    /// Built-in task name (see `voltarena task list`) or a task TOML file.
    #[arg(long)]
    task: String,
    /// A controller of the registry, with its default settings.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(ControllerSpec::NAMES))]
    controller: String,
    /// `--controller rl`: the run directory to deploy.
    #[arg(long, value_name = "RUN_DIR")]
    run: Option<std::path::PathBuf>,
    /// `--controller rl`: which checkpoint.
    #[arg(long, default_value = "best")]
    checkpoint: String,
    /// Total steps (default: one episode).
    #[arg(long)]
    steps: Option<usize>,
    /// Physics backend (default: the task's).
    #[arg(long, value_enum)]
    backend: Option<BackendArg>,
    /// Seed of the first episode; episode e uses seed + e.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,
    /// Safety layer between the controller and the grid (default: none; for `rl`, the run's own).
    #[arg(long)]
    safety: Option<String>,
    /// Action dead zone in [0, 1) (default: 0; for `rl`, the run's own).
    #[arg(long)]
    dead_zone: Option<f64>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Also write every step's per-inverter voltage and reactive power to this CSV file.
    #[arg(long, value_name = "FILE.csv")]
    trace: Option<std::path::PathBuf>,
}

#[derive(Serialize)]
struct Output {
    steps: usize,
    wall_seconds: f64,
    steps_per_second: f64,
    /// Mean and largest wall time of one safety-layer filtering (µs; timing, not a metric).
    safety_us_mean: f64,
    safety_us_max: f64,
    metrics: RolloutMetrics,
    task: String,
    controller: String,
    /// Dead zone and safety layer in front of the controller (and, for `rl`, the run deployed).
    deployment: crate::controllers::DeployInfo,
    /// What the deployed controller needs from the communication network per step, and the mean
    /// wall time of one control step (µs; timing, not a metric).
    communication: voltarena_env::controller::Communication,
    compute_us_per_step: f64,
    backend: Backend,
    split: Split,
    seed: u64,
    episodes: usize,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let task = Arc::new(Task::load(&args.task).map_err(|e| CliError::Input(e.to_string()))?);
    let backend = match args.backend {
        None => task.spec.backend,
        Some(BackendArg::Ac) => Backend::Ac,
        Some(BackendArg::Lindistflow) => Backend::Lindistflow,
    };
    let split = match args.split {
        SplitArg::Train => Split::Train,
        SplitArg::Val => Split::Val,
        SplitArg::Test => Split::Test,
    };
    let mut env = VoltageEnv::with_backend(task.clone(), backend).map_err(|e| CliError::Input(format!("{}: {e}", args.task)))?;
    let mut spec = ControllerSpec::from_name(&args.controller).ok_or_else(|| CliError::Input(format!("--controller: unknown controller '{}'", args.controller)))?;
    if let ControllerSpec::Rl { run, checkpoint } = &mut spec {
        *run = Some(args.run.clone().ok_or_else(|| CliError::Input("--controller rl needs --run RUN_DIR".into()))?);
        *checkpoint = Some(args.checkpoint.parse::<Checkpoint>().map_err(|e| CliError::Input(format!("--checkpoint: {e}")))?);
    } else if args.run.is_some() {
        return Err(CliError::Input("--run is for --controller rl".into()));
    }
    let safety = match &args.safety {
        None => None,
        Some(s) => Some(SafetyConfig { kind: s.parse::<SafetyKind>().map_err(|e| CliError::Input(format!("--safety: {e}")))?, ..Default::default() }),
    };
    let overrides = Overrides { dead_zone: args.dead_zone, safety };
    let (mut controller, info) = crate::controllers::deploy(&spec, &task, overrides, &Faults::default()).map_err(|e| CliError::Input(format!("--controller {}: {}", args.controller, e.message())))?;
    let total_steps = args.steps.unwrap_or(task.spec.episode_steps);
    if total_steps == 0 {
        return Err(CliError::Input("--steps must be at least 1".into()));
    }
    let safety_kind = info.deployment.safety.kind;
    let mut trace = args.trace.as_ref().map(|_| String::from("episode,t,agent,bus,v_pu,q_mvar,q_avail_mvar,p_mw\n"));
    let mut episode = 0usize;
    let mut record = |env: &VoltageEnv, st: &voltarena_env::env::Step| {
        if let Some(out) = trace.as_mut() {
            use std::fmt::Write;
            let t = env.t();
            for k in 0..env.n_agents() {
                let l = env.local(k);
                let bus = env.task().bus_id[env.task().pvs[k].bus];
                let _ = writeln!(out, "{episode},{t},{k},{bus},{:.6},{:.6e},{:.6e},{:.6e}", l.v_pu, l.q_mvar, l.q_avail_mvar, l.p_mw);
            }
            if st.terminated || st.truncated {
                episode += 1;
            }
        }
        true
    };
    let r = voltarena_env::deploy::rollout(&mut env, &mut controller, split, args.seed, total_steps, &mut record).map_err(|e| CliError::Other(e.to_string()))?;
    if let (Some(path), Some(text)) = (&args.trace, &trace) {
        crate::atomic::write(path, text.as_bytes()).map_err(|e| CliError::Other(format!("--trace {}: {e}", path.display())))?;
    }
    let (steps, episodes, wall, m) = (r.steps, r.episodes, r.wall_seconds, r.metrics.clone());
    let st = *controller.pipeline().stats();
    let out = Output {
        steps,
        wall_seconds: wall,
        steps_per_second: steps as f64 / wall.max(1e-12),
        metrics: RolloutMetrics::new(&r, &st),
        safety_us_mean: 1e6 * st.filter_seconds / steps.max(1) as f64,
        safety_us_max: 1e6 * st.filter_max_seconds,
        task: task.spec.name.clone(),
        controller: controller.name().to_string(),
        deployment: info,
        communication: controller.communication(&task),
        compute_us_per_step: controller.compute_us_per_step(),
        backend,
        split,
        seed: args.seed,
        episodes,
    };
    if args.json {
        println!("{}", serde_json::to_string(&out).map_err(|e| CliError::Other(e.to_string()))?);
    } else {
        println!("task {} · controller {} · backend {:?} · split {:?} · {} episode(s), {} steps", out.task, out.controller, backend, split, episodes, steps);
        println!("  CR              {:.4}", m.cr);
        println!("  QL (Mvar)       {:.5}", m.ql);
        println!("  AVV max (pu)    {:.3e} (bus id {})", m.avv_max, m.avv_max_bus);
        println!("  violation rate  {:.4}", m.violation_rate);
        println!("  losses (kWh)    {:.2}", m.loss_kwh);
        println!("  |q| (kvarh)     {:.2}", m.q_kvarh);
        println!("  divergences     {}", m.divergences);
        if let Some(run) = &out.deployment.run {
            println!("  run             {} ({}), dead zone {}{}", run.run, run.checkpoint, run.deployment.dead_zone, if run.overridden.is_empty() { String::new() } else { format!(", overridden: {}", run.overridden.join(", ")) });
        }
        if safety_kind != SafetyKind::None {
            println!("  safety          {:?}: intervened in {:.1} % of steps, mean correction {:.3}, {} infeasible, {} interior-point fallbacks; {:.1} µs per step (max {:.0})", safety_kind,
                100.0 * out.metrics.safety_intervention_rate, out.metrics.safety_mean_correction, out.metrics.safety_infeasible, out.metrics.safety_fallbacks, out.safety_us_mean, out.safety_us_max);
        }
        println!("  speed           {:.0} steps/s ({:.3} s)", out.steps_per_second, wall);
    }
    Ok(())
}
