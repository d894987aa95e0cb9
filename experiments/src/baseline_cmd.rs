//! `voltarena baseline CONFIG.toml [--json] [--out DIR]`: runs the configured controllers on the
//! configured scenario (a static operating point iterated to convergence, or a dynamic day
//! segment), writes `results.json`, `results.md` and SVG plots (voltage of the monitored bus over
//! time per controller; its reactive setpoint), and with `--json` prints
//! `{"controllers": {"<name>": {"avv": .., "avv_bus": .., "loss_kwh": .., "q_kvarh": .., "max_v": ..,
//! "seconds_per_iteration": ..}}}`.

use crate::{atomic, plot, CliError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use voltarena_baselines::{ControllerSet, Faults};
use voltarena_env::Deployed;
use voltarena_env::task::{Backend, DataNoise};
use voltarena_env::{ResetOptions, Split, Task, VoltageEnv};

#[derive(clap::Args)]
pub struct Args {
    /// Baseline experiment config (TOML), e.g. configs/ofo_rural2_dynamic.toml.
    config: PathBuf,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Output folder for results.json, results.md and plots (default: results/<config name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override a config value, e.g. `--set scenario.voltage_noise_pu=0.001` (TOML value syntax;
    /// repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The data held at one instant; the controllers iterate against it.
    Static,
    /// The data moving with time.
    Dynamic,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub kind: Kind,
    /// Day of 2016 (0 = 1 January).
    pub day: usize,
    /// Local time "HH:MM" of the first iteration.
    pub start: String,
    /// Seconds between two outer iterations (= plant steps).
    #[serde(default = "two")]
    pub period_s: u32,
    /// Dynamic: length of the run (s).
    #[serde(default)]
    pub duration_s: Option<u32>,
    /// Static: number of outer iterations.
    #[serde(default)]
    pub iterations: Option<usize>,
    /// Gaussian noise on measured voltages (pu).
    #[serde(default)]
    pub voltage_noise_pu: f64,
    /// Sub-interval fluctuation of loads and PV (relative σ; a cloud/variability process).
    #[serde(default)]
    pub fluctuation_sigma: f64,
    /// Failed nodes (bus ids): the whole node is down — no measurement, no update, setpoint
    /// frozen — and the distributed controllers' messages bypass it.
    #[serde(default)]
    pub failed_buses: Vec<i64>,
    /// Stuck inverters (bus ids): the node computes and communicates, but its inverter keeps its
    /// setpoint (applied in the plant, so it hits every controller alike).
    #[serde(default)]
    pub stuck_buses: Vec<i64>,
    /// Probability that a message between neighbours is lost.
    #[serde(default)]
    pub drop_prob: f64,
    /// Retransmissions of a message whose acknowledgement times out, within one iteration period
    /// (default 2): a message is lost only if all 1 + retries transmissions are.
    #[serde(default = "two_retries")]
    pub retries: usize,
    /// Inverter rating S as a multiple of the task's rating basis, replacing the task's
    /// `pv.rating_factor` (rural2_96: S = 1.2 × DC; 1.0 leaves no reactive power at full sun).
    #[serde(default)]
    pub rating_factor: Option<f64>,
    /// Bus whose AVV and trajectory are reported (default: the deepest bus).
    #[serde(default)]
    pub monitor_bus: Option<i64>,
    #[serde(default)]
    pub seed: u64,
}

fn two() -> u32 {
    2
}

fn two_retries() -> usize {
    2
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub task: String,
    /// Physics of the plant: "ac" or "lindistflow".
    pub plant: Backend,
    pub scenario: Scenario,
    pub controllers: ControllerSet,
}

/// Results of one controller (the JSON contract's fields plus extras).
#[derive(Debug, Clone, Serialize)]
pub struct ControllerResult {
    /// Average voltage violation at the monitored bus (pu), ofo.md eq. (20).
    pub avv: f64,
    /// The monitored bus (id).
    pub avv_bus: i64,
    pub loss_kwh: f64,
    pub q_kvarh: f64,
    /// Largest voltage seen at any bus (pu).
    pub max_v: f64,
    pub seconds_per_iteration: f64,
    /// Largest AVV over all buses, and where.
    pub avv_max_any_bus: f64,
    pub iterations: usize,
    pub divergences: usize,
    /// Final setpoints (kVar, agent order).
    pub q_final_kvar: Vec<f64>,
    /// PV energy fed in and curtailed (kWh), and the curtailed share of what the panels offered
    /// (%; §IV-I). Zero curtailment is left out of the JSON.
    pub pv_kwh: f64,
    #[serde(skip_serializing_if = "is_zero")]
    pub curtailed_kwh: f64,
    #[serde(skip_serializing_if = "is_zero")]
    pub curtailed_pct: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

#[derive(Serialize)]
struct JsonOut<'a> {
    controllers: &'a BTreeMap<String, ControllerResult>,
}


/// Runs every configured controller; returns results and the monitored-bus trajectories.
pub fn run_config(cfg: &Config, source: &str) -> Result<(BTreeMap<String, ControllerResult>, Vec<(String, Vec<f64>, Vec<f64>)>, f64), CliError> {
    let bad = |field: &str, msg: String| CliError::Input(format!("{source}: {field}: {msg}"));
    let sc = &cfg.scenario;
    let base = Task::load(&cfg.task).map_err(|e| CliError::Input(format!("{source}: task: {e}")))?;
    if sc.period_s == 0 || 86_400 % sc.period_s != 0 {
        return Err(bad("scenario.period_s", format!("must divide a day evenly, got {}", sc.period_s)));
    }
    let start_s = voltarena_env::profiles::parse_hhmm(&sc.start).ok_or_else(|| bad("scenario.start", format!("expected \"HH:MM\", got '{}'", sc.start)))?;
    if sc.day >= base.days() {
        return Err(bad("scenario.day", format!("expected 0..{}, got {}", base.days(), sc.day)));
    }
    let iterations = match sc.kind {
        Kind::Static => sc.iterations.ok_or_else(|| bad("scenario.iterations", "a static scenario needs the number of outer iterations".into()))?,
        Kind::Dynamic => (sc.duration_s.ok_or_else(|| bad("scenario.duration_s", "a dynamic scenario needs a duration".into()))? / sc.period_s) as usize,
    };
    if iterations == 0 {
        return Err(bad("scenario", "no iterations to run".into()));
    }
    if sc.retries > 100 {
        return Err(bad("scenario.retries", format!("expected at most 100 retransmissions per message, got {}", sc.retries)));
    }
    if !(0.0..=1.0).contains(&sc.drop_prob) {
        return Err(bad("scenario.drop_prob", format!("expected a probability, got {}", sc.drop_prob)));
    }
    let mut spec = base.spec.clone();
    spec.resolution_s = sc.period_s;
    spec.episode_steps = iterations;
    spec.noise.data = DataNoise::None;
    spec.noise.fluctuation_sigma = sc.fluctuation_sigma;
    spec.observation.voltage_noise_pu = sc.voltage_noise_pu;
    if let Some(f) = sc.rating_factor {
        // Smaller (or larger) inverters: S = factor × the task's rating basis (§IV-I's scenario).
        spec.pv.rating_factor = f;
    }
    for id in &sc.stuck_buses {
        let b = base.bus_id.iter().position(|x| x == id).ok_or_else(|| bad("scenario.stuck_buses", format!("bus id {id} is not in the network")))?;
        let agent = base.pvs.iter().position(|p| p.bus == b).ok_or_else(|| bad("scenario.stuck_buses", format!("bus id {id} has no inverter")))?;
        spec.faults.agents.push(voltarena_env::task::AgentFault { agent, from_step: 1, to_step: iterations, kind: voltarena_env::task::FaultKind::Frozen });
    }
    let task = Arc::new(Task::build(spec, source, None).map_err(|e| CliError::Input(e.to_string()))?);
    let monitor = match sc.monitor_bus {
        Some(id) => task.bus_id.iter().position(|&b| b == id).ok_or_else(|| bad("scenario.monitor_bus", format!("bus id {id} is not in the network")))?,
        None => {
            let tree = task.network.tree().ok_or_else(|| bad("task", "the network must be radial".into()))?;
            // The deepest bus (largest path reactance, ties by depth).
            let ldf = voltarena_env::LinDistFlow::new(&task.network, voltarena_env::LinDistFlowForm::Linear).map_err(|e| bad("task", e.to_string()))?;
            let mut xp = vec![0.0; task.network.n_bus()];
            for &c in &tree.order[1..] {
                xp[c] = xp[tree.parent[c]] + ldf.x_to_parent()[c];
            }
            (0..xp.len()).max_by(|&a, &b| xp[a].total_cmp(&xp[b])).unwrap_or(0)
        }
    };
    let mut failed_buses = Vec::new();
    for id in &sc.failed_buses {
        failed_buses.push(task.bus_id.iter().position(|b| b == id).ok_or_else(|| bad("scenario.failed_buses", format!("bus id {id} is not in the network")))?);
    }
    let faults = Faults { failed_buses, drop_prob: sc.drop_prob, retries: sc.retries, seed: sc.seed };
    let start = ((sc.day as u64 * 86_400 + start_s as u64) / sc.period_s as u64) as usize;
    let opts = ResetOptions { split: Split::of_day(sc.day), data_noise: Some(false), start: Some(start), hold_data: sc.kind == Kind::Static };
    let names = cfg.controllers.names();
    if names.is_empty() {
        return Err(bad("controllers", "configure at least one controller".into()));
    }
    let mut results = BTreeMap::new();
    let mut traces = Vec::new();
    for name in names {
        let spec = cfg.controllers.spec(name).map_err(|e| bad(&format!("controllers.{name}"), e))?;
        let ctl = spec.build(&task, &faults).map_err(|e| bad(&format!("controllers.{name}"), e.to_string()))?;
        // The paper's experiments run the controllers bare: no dead zone, no safety layer.
        let mut ctl = Deployed::bare(ctl, &task).map_err(|e| bad(&format!("controllers.{name}"), e.to_string()))?;
        let mut env = VoltageEnv::with_backend(task.clone(), cfg.plant).map_err(|e| bad("plant", e.to_string()))?;
        env.reset(sc.seed, &opts).map_err(|e| CliError::Other(format!("{source}: {e}")))?;
        ctl.reset(&env, sc.seed);
        let mut actions = vec![0.0; env.n_agents()];
        let agent_at_monitor = task.pvs.iter().position(|p| p.bus == monitor);
        let (mut vtrace, mut qtrace) = (Vec::with_capacity(iterations), Vec::with_capacity(iterations));
        let mut max_v: f64 = 0.0;
        let mut ctl_seconds = 0.0;
        let mut done = 0;
        for _ in 0..iterations {
            let t0 = Instant::now();
            ctl.act(&env, &mut actions);
            ctl_seconds += t0.elapsed().as_secs_f64();
            let s = ctl.step(&mut env, &actions).map_err(|e| CliError::Other(e.to_string()))?;
            done += 1;
            if !s.metrics.diverged {
                max_v = max_v.max(s.metrics.v_max_pu);
            }
            vtrace.push(env.vm_pu()[monitor]);
            qtrace.push(agent_at_monitor.map(|k| env.q_mvar()[k] * 1000.0).unwrap_or(f64::NAN));
            if s.terminated || s.truncated {
                break;
            }
        }
        let acc = env.episode_metrics();
        let summary = acc.summary(&task.bus_id);
        results.insert(
            name.to_string(),
            ControllerResult {
                avv: acc.avv(monitor),
                avv_bus: task.bus_id[monitor],
                loss_kwh: acc.loss_kwh,
                q_kvarh: acc.q_kvarh,
                max_v,
                seconds_per_iteration: ctl.controller().seconds_per_iteration().unwrap_or(ctl_seconds / done.max(1) as f64),
                avv_max_any_bus: summary.avv_max,
                iterations: done,
                divergences: acc.divergences,
                q_final_kvar: env.q_mvar().iter().map(|q| q * 1000.0).collect(),
                pv_kwh: acc.pv_kwh,
                curtailed_kwh: acc.curtailed_kwh,
                curtailed_pct: acc.curtailed_pct(),
            },
        );
        traces.push((name.to_string(), vtrace, qtrace));
    }
    Ok((results, traces, sc.period_s as f64))
}

fn markdown(cfg: &Config, source: &str, results: &BTreeMap<String, ControllerResult>, order: &[String]) -> String {
    let central = results.get("centralized").map(|r| r.avv);
    let mut s = String::new();
    s.push_str(&format!("# Baseline results — `{source}`\n\n"));
    s.push_str(&format!(
        "Task `{}`, plant `{:?}`, {:?} scenario: day {} from {}, one outer iteration every {} s. Monitored bus id {}.\n\n",
        cfg.task,
        cfg.plant,
        cfg.scenario.kind,
        cfg.scenario.day,
        cfg.scenario.start,
        cfg.scenario.period_s,
        results.values().next().map(|r| r.avv_bus).unwrap_or(-1)
    ));
    s.push_str("| controller | AVV (pu) | AVV / centralized | losses (kWh) | Σ\\|q\\| (kVarh) | max v (pu) | µs per iteration | divergences |\n|---|---|---|---|---|---|---|---|\n");
    for name in order {
        let r = &results[name];
        let rel = match central {
            Some(c) if c > 0.0 => format!("{:.2}×", r.avv / c),
            Some(_) if r.avv == 0.0 => "1× (both 0)".into(),
            _ => "—".into(),
        };
        s.push_str(&format!(
            "| {name} | {:.3e} | {rel} | {:.3} | {:.3} | {:.4} | {:.2} | {} |\n",
            r.avv, r.loss_kwh, r.q_kvarh, r.max_v, r.seconds_per_iteration * 1e6, r.divergences
        ));
    }
    s
}

pub fn run(args: Args) -> Result<(), CliError> {
    let source = args.config.display().to_string();
    let text = std::fs::read_to_string(&args.config).map_err(|e| CliError::Input(format!("cannot read {source}: {e}")))?;
    let mut doc: toml::Value = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        CliError::Input(format!("{source}{}: {}", line.map(|l| format!(":{l}")).unwrap_or_default(), e.message()))
    })?;
    crate::config::apply_sets(&mut doc, &args.sets).map_err(CliError::Input)?;
    let cfg: Config = doc.try_into().map_err(|e: toml::de::Error| CliError::Input(format!("{source}: {}", e.message())))?;
    let (results, traces, period) = run_config(&cfg, &source)?;
    let out_dir = args.out.clone().unwrap_or_else(|| crate::config::default_out(&args.config, &args.sets, "baseline"));
    std::fs::create_dir_all(&out_dir).map_err(|e| CliError::Other(format!("cannot create {}: {e}", out_dir.display())))?;
    let order: Vec<String> = traces.iter().map(|t| t.0.clone()).collect();
    write_outputs(&out_dir, &cfg, &source, &results, &traces, &order, period)?;
    if args.json {
        println!("{}", serde_json::to_string(&JsonOut { controllers: &results }).map_err(|e| CliError::Other(e.to_string()))?);
    } else {
        print!("{}", markdown(&cfg, &source, &results, &order));
        println!("\nwritten to {}", out_dir.display());
    }
    Ok(())
}

fn write_outputs(
    dir: &Path,
    cfg: &Config,
    source: &str,
    results: &BTreeMap<String, ControllerResult>,
    traces: &[(String, Vec<f64>, Vec<f64>)],
    order: &[String],
    period: f64,
) -> Result<(), CliError> {
    let io = |p: &Path, e: std::io::Error| CliError::Other(format!("cannot write {}: {e}", p.display()));
    let json = serde_json::to_string_pretty(&serde_json::json!({ "config": cfg, "source": source, "controllers": results }))
        .map_err(|e| CliError::Other(e.to_string()))?;
    let p = dir.join("results.json");
    atomic::write(&p, json.as_bytes()).map_err(|e| io(&p, e))?;
    let p = dir.join("results.md");
    atomic::write(&p, markdown(cfg, source, results, order).as_bytes()).map_err(|e| io(&p, e))?;
    let x_scale = if cfg.scenario.kind == Kind::Static { 1.0 } else { period / 3600.0 };
    let x_label = if cfg.scenario.kind == Kind::Static { "outer iteration" } else { "time (h)" };
    let bus = results.values().next().map(|r| r.avv_bus).unwrap_or(-1);
    // At most ~1500 points per line keep the SVGs small (every stride-th iteration).
    let stride = traces.first().map(|t| t.1.len().div_ceil(1500)).unwrap_or(1).max(1);
    let series = |pick: &dyn Fn(&(String, Vec<f64>, Vec<f64>)) -> Vec<f64>| -> Vec<(String, Vec<(f64, f64)>)> {
        traces
            .iter()
            .map(|t| (t.0.clone(), pick(t).iter().enumerate().step_by(stride).map(|(k, y)| ((k + 1) as f64 * x_scale, *y)).collect()))
            .collect()
    };
    let vs = series(&|t| t.1.clone());
    let qs = series(&|t| t.2.clone());
    let v: Vec<plot::Series> = vs.iter().map(|(n, p)| plot::Series { name: n, points: p.clone() }).collect();
    let q: Vec<plot::Series> = qs.iter().map(|(n, p)| plot::Series { name: n, points: p.clone() }).collect();
    let task_limits = Task::load(&cfg.task).map(|t| vec![t.spec.v_min, t.spec.v_max]).unwrap_or_default();
    plot::lines(&dir.join("voltage.svg"), &format!("Voltage at bus {bus}"), x_label, "v (pu)", &v, &task_limits[1..]).map_err(CliError::Other)?;
    plot::lines(&dir.join("reactive_power.svg"), &format!("Reactive power setpoint at bus {bus}"), x_label, "q (kVar)", &q, &[]).map_err(CliError::Other)?;
    Ok(())
}
