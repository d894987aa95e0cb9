//! `voltarena rollout --task NAME --controller none|random|droop [--steps N] [--backend ac|lindistflow]
//! [--seed K] [--split train|val|test] [--json]`
//!
//! Runs episodes back to back (episode e is reset with seed K + e) until N steps have been taken
//! (default: one episode) and reports the aggregate metrics. With `--json`:
//! `{"steps": N, "wall_seconds": s, "steps_per_second": x, "metrics": {"cr": .., "ql": ..,
//! "avv_max": .., "violation_rate": .., "loss_kwh": .., "divergences": ..}}` plus extra fields.

use crate::CliError;
use clap::ValueEnum;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use voltarena_baselines::Droop;
use voltarena_env::controller::{NoControl, RandomControl};
use voltarena_env::task::Backend;
use voltarena_env::{Controller, MetricsAcc, ResetOptions, Split, Task, VoltageEnv};

#[derive(Clone, Copy, ValueEnum)]
pub enum ControllerArg {
    None,
    Random,
    Droop,
}

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
    #[arg(long, value_enum)]
    controller: ControllerArg,
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
    /// Safety layer between the controller and the grid.
    #[arg(long, default_value = "none")]
    safety: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Metrics {
    cr: f64,
    ql: f64,
    avv_max: f64,
    violation_rate: f64,
    loss_kwh: f64,
    divergences: usize,
    avv_max_bus: i64,
    violation_pu_mean: f64,
    q_kvarh: f64,
    /// Fraction of steps where the safety layer changed the action.
    safety_intervention_rate: f64,
    /// Mean ‖a − a_proposed‖₂ over steps.
    safety_mean_correction: f64,
    /// Steps where the layer could not meet every linearised constraint.
    safety_infeasible: usize,
    /// QPs the layer's fast dual active-set method left to the interior-point solver.
    safety_fallbacks: usize,
}

#[derive(Serialize)]
struct Output {
    steps: usize,
    wall_seconds: f64,
    steps_per_second: f64,
    /// Mean and largest wall time of one safety-layer filtering (µs; timing, not a metric).
    safety_us_mean: f64,
    safety_us_max: f64,
    metrics: Metrics,
    task: String,
    controller: String,
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
    let mut controller: Box<dyn Controller> = match args.controller {
        ControllerArg::None => Box::new(NoControl),
        ControllerArg::Random => Box::new(RandomControl::default()),
        ControllerArg::Droop => Box::new(Droop::default()),
    };
    let total_steps = args.steps.unwrap_or(task.spec.episode_steps);
    if total_steps == 0 {
        return Err(CliError::Input("--steps must be at least 1".into()));
    }
    let safety_kind: voltarena_env::safety::SafetyKind = args.safety.parse().map_err(CliError::Input)?;
    let mut layer = voltarena_env::safety::SafetyLayer::new(&task, voltarena_env::safety::SafetyConfig { kind: safety_kind, ..Default::default() })
        .map_err(|e| CliError::Input(format!("--safety: {e}")))?;
    let mut proposed = vec![0.0; env.n_agents()];
    let opts = ResetOptions { split, ..Default::default() };
    let mut total = MetricsAcc::new(task.network.n_bus());
    let mut actions = vec![0.0; env.n_agents()];
    let mut steps = 0;
    let mut episodes = 0;
    let (mut filter_s, mut filter_max) = (0.0f64, 0.0f64);
    let t0 = Instant::now();
    while steps < total_steps {
        let seed = args.seed.wrapping_add(episodes as u64);
        env.reset(seed, &opts).map_err(|e| CliError::Other(e.to_string()))?;
        controller.reset(&env, seed);
        episodes += 1;
        loop {
            controller.act(&env, &mut proposed);
            let tf = Instant::now();
            layer.filter(&env, &proposed, &mut actions);
            let dt = tf.elapsed().as_secs_f64();
            (filter_s, filter_max) = (filter_s + dt, filter_max.max(dt));
            let s = env.step(&actions).map_err(|e| CliError::Other(e.to_string()))?;
            steps += 1;
            if s.terminated || s.truncated || steps >= total_steps {
                break;
            }
        }
        total.merge(env.episode_metrics());
    }
    let wall = t0.elapsed().as_secs_f64();
    let m = total.summary(&task.bus_id);
    let out = Output {
        steps,
        wall_seconds: wall,
        steps_per_second: steps as f64 / wall.max(1e-12),
        metrics: Metrics {
            cr: m.cr,
            ql: m.ql,
            avv_max: m.avv_max,
            violation_rate: m.violation_rate,
            loss_kwh: m.loss_kwh,
            divergences: m.divergences,
            avv_max_bus: m.avv_max_bus,
            violation_pu_mean: m.violation_pu_mean,
            q_kvarh: m.q_kvarh,
            safety_intervention_rate: layer.interventions as f64 / steps.max(1) as f64,
            safety_mean_correction: layer.correction_sum / steps.max(1) as f64,
            safety_infeasible: layer.infeasible,
            safety_fallbacks: layer.fallbacks,
        },
        safety_us_mean: 1e6 * filter_s / steps.max(1) as f64,
        safety_us_max: 1e6 * filter_max,
        task: task.spec.name.clone(),
        controller: controller.name().to_string(),
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
        if safety_kind != voltarena_env::safety::SafetyKind::None {
            println!("  safety          {:?}: intervened in {:.1} % of steps, mean correction {:.3}, {} infeasible, {} interior-point fallbacks; {:.1} µs per step (max {:.0})", safety_kind,
                100.0 * out.metrics.safety_intervention_rate, out.metrics.safety_mean_correction, out.metrics.safety_infeasible, out.metrics.safety_fallbacks, out.safety_us_mean, out.safety_us_max);
        }
        println!("  speed           {:.0} steps/s ({:.3} s)", out.steps_per_second, wall);
    }
    Ok(())
}
