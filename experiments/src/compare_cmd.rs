//! `voltarena compare CONFIG.toml [--json] [--out DIR]`: runs the listed controllers — no control,
//! random, droop, the OFO family, trained RL runs — each optionally behind a safety layer, on exactly
//! the same episodes of a task (seeds `seed .. seed + episodes` of one split, no data noise), and
//! writes `results.json`, `results.md`, `envelope.svg` (the voltage envelope — lowest and highest
//! monitored voltage per step — of the first episode for each controller), `violations.svg` (per-bus
//! heat map: fraction of steps each bus is outside the limits, per controller) and `metrics.svg`
//! (CR, QL and AVV bars).

use crate::{atomic, plot, CliError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use voltarena_agents::run::Overrides;
use voltarena_baselines::{ControllerSpec, Faults};
use voltarena_env::safety::SafetyConfig;
use voltarena_env::task::Backend;
use voltarena_env::{MetricsAcc, MetricsSummary, Split, Task, VoltageEnv};

#[derive(clap::Args)]
pub struct Args {
    /// Comparison config (TOML), e.g. configs/compare_mapdn33.toml.
    config: PathBuf,
    #[arg(long)]
    json: bool,
    /// Output folder (default: results/<config name>).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

/// One controller of the comparison: a registry entry (`kind = ...` and its settings, see
/// `voltarena_baselines::spec`) with a name and, optionally, what sits in front of it. A trained run
/// (`kind = "rl"`, `run = ...`) keeps its own dead zone and safety layer unless `safety` /
/// `dead_zone` are given here (written into results.json as overridden).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    /// Safety layer in front of this controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<SafetyConfig>,
    /// Action dead zone in [0, 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_zone: Option<f64>,
    #[serde(flatten)]
    pub controller: ControllerSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub task: String,
    #[serde(default = "test_split")]
    pub split: Split,
    pub episodes: usize,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub backend: Option<Backend>,
    #[serde(default)]
    pub controllers: Vec<Entry>,
}

fn test_split() -> Split {
    Split::Test
}

#[derive(Serialize)]
struct EntryResult {
    metrics: MetricsSummary,
    mean_return: f64,
    safety_intervention_rate: f64,
    /// Fraction of steps each monitored bus (`monitored_bus_ids` in results.json) was outside the limits.
    bus_violation_rate: Vec<f64>,
    /// Error that prevented the run (the other entries still ran).
    error: Option<String>,
    /// What was deployed (dead zone, safety layer; for runs the checkpoint and any override).
    #[serde(skip_serializing_if = "Option::is_none")]
    deployment: Option<crate::controllers::DeployInfo>,
    /// Communication per control step, and the mean wall time of one (µs; timing, not a metric).
    #[serde(skip_serializing_if = "Option::is_none")]
    communication: Option<voltarena_env::controller::Communication>,
    #[serde(skip_serializing_if = "Option::is_none")]
    compute_us_per_step: Option<f64>,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let source = args.config.display().to_string();
    let mut doc = crate::config::read_toml(&args.config, &args.sets)?;
    let controllers = crate::controllers::take_entries(&mut doc, "controllers", &source)?;
    let mut cfg: Config = doc.try_into().map_err(|e: toml::de::Error| CliError::Input(format!("{source}: {}", e.message())))?;
    cfg.controllers = controllers;
    if cfg.episodes == 0 || cfg.controllers.is_empty() {
        return Err(CliError::Input(format!("{source}: needs episodes ≥ 1 and at least one [[controllers]]")));
    }
    let mut names = std::collections::HashSet::new();
    for c in &cfg.controllers {
        if !names.insert(c.name.clone()) {
            return Err(CliError::Input(format!("{source}: controller name '{}' appears twice", c.name)));
        }
    }
    let task = Arc::new(Task::load(&cfg.task).map_err(|e| CliError::Input(format!("{source}: task: {e}")))?);
    let backend = cfg.backend.unwrap_or(task.spec.backend);
    let out_dir = args.out.clone().unwrap_or_else(|| crate::config::default_out(&args.config, &args.sets, "compare"));
    std::fs::create_dir_all(&out_dir).map_err(|e| CliError::Other(format!("cannot create {}: {e}", out_dir.display())))?;
    let mut results: BTreeMap<String, EntryResult> = BTreeMap::new();
    let mut envelopes = Vec::new();
    let mut order = Vec::new();
    let seeds: Vec<u64> = (0..cfg.episodes as u64).map(|i| cfg.seed + i).collect();
    for e in &cfg.controllers {
        order.push(e.name.clone());
        let overrides = Overrides { dead_zone: e.dead_zone, safety: e.safety };
        let (mut deployed, info) = match crate::controllers::deploy(&e.controller, &task, overrides, &Faults::default()) {
            Ok(x) => x,
            Err(fail) => {
                let msg = fail.message().to_string();
                eprintln!("warning: {}: {msg}", e.name);
                results.insert(e.name.clone(), EntryResult { metrics: MetricsAcc::new(task.network.n_bus()).summary(&task.bus_id), mean_return: f64::NAN, safety_intervention_rate: 0.0, bus_violation_rate: Vec::new(), error: Some(msg), deployment: None, communication: None, compute_us_per_step: None });
                continue;
            }
        };
        let mut env = VoltageEnv::with_backend(task.clone(), backend).map_err(|x| CliError::Input(x.to_string()))?;
        let (mut lo, mut hi) = (Vec::new(), Vec::new());
        // Steps at which each monitored bus is outside [v_min, v_max] (per-bus heat map).
        let mut bus_viol = vec![0usize; task.metric_buses.len()];
        let (vmin, vmax) = (task.spec.v_min, task.spec.v_max);
        let ev = voltarena_env::deploy::evaluate(&mut env, &mut deployed, cfg.split, &seeds, &mut |i, env, s| {
            if i == 0 {
                let t = lo.len() as f64 + 1.0;
                lo.push((t, s.metrics.v_min_pu));
                hi.push((t, s.metrics.v_max_pu));
            }
            let v = env.vm_pu();
            for (c, &b) in bus_viol.iter_mut().zip(&task.metric_buses) {
                *c += (!(v[b] >= vmin && v[b] <= vmax)) as usize;
            }
        })
        .map_err(|x| CliError::Other(x.to_string()))?;
        results.insert(
            e.name.clone(),
            EntryResult {
                metrics: ev.metrics,
                mean_return: ev.mean_return,
                safety_intervention_rate: ev.interventions as f64 / ev.steps.max(1) as f64,
                bus_violation_rate: bus_viol.iter().map(|&c| c as f64 / ev.steps.max(1) as f64).collect(),
                error: None,
                deployment: Some(info),
                communication: Some(deployed.communication(&task)),
                compute_us_per_step: Some(deployed.compute_us_per_step()),
            },
        );
        envelopes.push((e.name.clone(), lo, hi));
    }
    // Outputs.
    let json = serde_json::json!({
        "task": cfg.task, "split": cfg.split, "episodes": cfg.episodes, "episode_seeds": (cfg.seed..cfg.seed + cfg.episodes as u64).collect::<Vec<_>>(),
        "backend": backend, "config": cfg,
        "monitored_bus_ids": task.metric_buses.iter().map(|&b| task.bus_id[b]).collect::<Vec<_>>(), "source": source,
        "git_commit": crate::provenance::git_commit(), "cpu": crate::provenance::Cpu::detect(),
        "controllers": results,
    });
    let text = serde_json::to_string_pretty(&json).map_err(|e| CliError::Other(e.to_string()))?;
    atomic::write(&out_dir.join("results.json"), text.as_bytes()).map_err(|e| CliError::Other(e.to_string()))?;
    let mut md = format!(
        "# Comparison — `{source}`\n\nTask `{}`, {:?} split, {} episodes (seeds {}–{}), backend {:?}; every controller on the same episodes.\n\n| controller | CR | QL (Mvar) | AVV max (pu) | violation rate | losses (kWh) | Σ\\|q\\| (kvarh) | divergences | safety interventions |\n|---|---|---|---|---|---|---|---|---|\n",
        cfg.task, cfg.split, cfg.episodes, cfg.seed, cfg.seed + cfg.episodes as u64 - 1, backend
    );
    for n in &order {
        let r = &results[n];
        match &r.error {
            Some(err) => md.push_str(&format!("| {n} | — | — | — | — | — | — | — | error: {err} |\n")),
            None => {
                let m = &r.metrics;
                md.push_str(&format!(
                    "| {n} | {:.4} | {:.4} | {:.2e} | {:.4} | {:.1} | {:.1} | {} | {:.1} % |\n",
                    m.cr, m.ql, m.avv_max, m.violation_rate, m.loss_kwh, m.q_kvarh, m.divergences, 100.0 * r.safety_intervention_rate
                ));
            }
        }
    }
    atomic::write(&out_dir.join("results.md"), md.as_bytes()).map_err(|e| CliError::Other(e.to_string()))?;
    let mut series = Vec::new();
    let labels: Vec<(String, String)> = envelopes.iter().map(|(n, _, _)| (format!("{n} max"), format!("{n} min"))).collect();
    for ((_, lo, hi), (lmax, lmin)) in envelopes.iter().zip(&labels) {
        series.push(plot::Series { name: lmax, points: hi.clone() });
        series.push(plot::Series { name: lmin, points: lo.clone() });
    }
    plot::lines(&out_dir.join("envelope.svg"), "Voltage envelope, first episode", "step", "v (pu)", &series, &[task.spec.v_min, task.spec.v_max]).map_err(CliError::Other)?;
    let ran: Vec<&String> = order.iter().filter(|n| results[*n].error.is_none()).collect();
    let names: Vec<String> = ran.iter().map(|n| n.to_string()).collect();
    let bus_labels: Vec<String> = task.metric_buses.iter().map(|&b| task.bus_id[b].to_string()).collect();
    let heat: Vec<Vec<f64>> = ran.iter().map(|n| results[*n].bus_violation_rate.clone()).collect();
    plot::heatmap(&out_dir.join("violations.svg"), "Fraction of steps outside the limits, per bus", "bus id", &names, &bus_labels, &heat).map_err(CliError::Other)?;
    let col = |f: &dyn Fn(&MetricsSummary) -> f64| ran.iter().map(|n| f(&results[*n].metrics)).collect::<Vec<f64>>();
    plot::bars(&out_dir.join("metrics.svg"), &names, &[("CR", col(&|m| m.cr)), ("QL (Mvar)", col(&|m| m.ql)), ("AVV max (pu)", col(&|m| m.avv_max))]).map_err(CliError::Other)?;
    if args.json {
        println!("{text}");
    } else {
        print!("{md}");
        println!("\nwritten to {}", out_dir.display());
    }
    let failed: Vec<&String> = order.iter().filter(|n| results[*n].error.is_some()).collect();
    if !failed.is_empty() {
        return Err(CliError::Input(format!("{} entr{} could not run (results of the others are in {}): {}", failed.len(), if failed.len() == 1 { "y" } else { "ies" }, out_dir.display(), failed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))));
    }
    Ok(())
}
