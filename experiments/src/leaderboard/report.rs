//! The report: per entry the median and interquartile range over seeds of CR, QL, AVV, violation
//! rate and losses, written as `leaderboard.json` (every number, with the suite and its provenance,
//! so `--verify` can re-run it), `leaderboard.md` (one table per task) and a static, self-contained
//! `index.html` (per task a CR-against-QL chart and a sortable table; [`super::html`]). A suite with failed
//! entries still writes them all, then exits 2 naming the failures.

use super::suite::Suite;
use crate::provenance::{self, Machine};
use crate::{atomic, CliError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use voltarena_env::controller::Communication;
use voltarena_env::deploy::Deployment;
use voltarena_env::MetricsSummary;

use super::html;

/// Median and interquartile range of one metric over a suite's seeds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub median: f64,
    pub q25: f64,
    pub q75: f64,
}

/// One leaderboard entry (task × controller): its per-seed metrics and their summary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EntryOut {
    pub task: String,
    pub controller: String,
    /// "ok", "n/a" (the controller does not apply to the task), "error", or "missing" (a Slurm array
    /// task wrote no result).
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
    /// What the deployed controller needs from the communication network per control step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communication: Option<Communication>,
    /// Median over seeds of the mean wall time of one control step (µs: controller, dead zone and
    /// safety layer; measured while the suite ran, so it depends on the machine and `--jobs`; not
    /// compared by `--verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_us_per_step: Option<f64>,
}

/// "neighbours, 640 msg" for a table cell.
pub fn communication_cell(e: &EntryOut) -> String {
    match e.communication {
        None => "—".into(),
        Some(c) if c.messages_per_step == 0 => format!("{:?}", c.reach).to_lowercase(),
        Some(c) => format!("{}, {} msg", format!("{:?}", c.reach).to_lowercase(), c.messages_per_step),
    }
}

/// Median and interquartile range over seeds of the leaderboard's metrics.
pub fn summarize(per_seed: &[MetricsSummary]) -> BTreeMap<String, Stats> {
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

/// Linear-interpolation quantile of sorted values (numpy's default); NaN for no values. Also the
/// learning curves' (`voltarena curves`) median and IQR over runs.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let x = q * (sorted.len() - 1) as f64;
    let (i, f) = (x.floor() as usize, x - x.floor());
    if i + 1 < sorted.len() { sorted[i] + f * (sorted[i + 1] - sorted[i]) } else { sorted[i] }
}

/// leaderboard.md: one table per task, median [25 %, 75 %] over seeds.
fn markdown(suite: &Suite, entries: &[EntryOut]) -> String {
    let mut s = format!(
        "# Leaderboard `{}`\n\nSeeds {:?} × {} test-day episodes each (episode seeds 100·s + i; every controller on the same episodes). Median [25 %, 75 %] over seeds.\n",
        suite.name, suite.seeds, suite.eval_episodes
    );
    for t in &suite.tasks {
        s.push_str(&format!("\n## {t}\n\n| controller | CR | QL (Mvar) | AVV max (pu) | violation rate | losses (kWh) | communication per step | µs per step |\n|---|---|---|---|---|---|---|---|\n"));
        for e in entries.iter().filter(|e| &e.task == t) {
            if e.status != "ok" {
                s.push_str(&format!("| {} | {} | | | | {} | | |\n", e.controller, e.status, e.message.clone().unwrap_or_default().replace('|', "/")));
                continue;
            }
            let f = |k: &str, p: usize| {
                let st = &e.summary[k];
                format!("{:.*} [{:.*}, {:.*}]", p, st.median, p, st.q25, p, st.q75)
            };
            let a = &e.summary["avv_max"];
            let us = e.compute_us_per_step.map(|u| format!("{u:.1}")).unwrap_or_default();
            s.push_str(&format!("| {} | {} | {} | {:.1e} [{:.1e}, {:.1e}] | {} | {} | {} | {us} |\n", e.controller, f("cr", 4), f("ql", 4), a.median, a.q25, a.q75, f("violation_rate", 4), f("loss_kwh", 0), communication_cell(e)));
        }
    }
    s
}

/// Writes leaderboard.json, leaderboard.md and index.html; returns the Markdown.
pub fn write_outputs(suite: &Suite, suite_hash: &str, entries: &[EntryOut], out: &Path, wall_seconds: f64) -> Result<String, CliError> {
    let machine = Machine::detect();
    let json = serde_json::json!({
        "suite": suite,
        "suite_hash": suite_hash,
        "git_commit": provenance::git_commit(),
        "versions": provenance::VERSIONS,
        "machine": machine.label(),
        "cpu": machine.cpu,
        "numerics": voltarena_agents::numerics::pin(),
        "created_unix": provenance::now_unix(),
        "wall_seconds": wall_seconds,
        "entries": entries,
    });
    let md = markdown(suite, entries);
    let w = |name: &str, bytes: &[u8]| atomic::write(&out.join(name), bytes).map_err(|e| CliError::Other(e.to_string()));
    w("leaderboard.json", serde_json::to_string_pretty(&json).unwrap_or_default().as_bytes())?;
    w("leaderboard.md", md.as_bytes())?;
    w("index.html", html::page(suite, entries, &md).as_bytes())?;
    Ok(md)
}

/// Exit 2 naming the entries that failed or are missing (the others are already written).
pub fn fail_on_errors(entries: &[EntryOut], out: &Path) -> Result<(), CliError> {
    let errors: Vec<String> = entries.iter().filter(|e| e.status == "error" || e.status == "missing").map(|e| format!("{} / {}: {}", e.task, e.controller, e.message.clone().unwrap_or_default())).collect();
    if !errors.is_empty() {
        return Err(CliError::Input(format!("{} entr{} failed (the others are in {}): {}", errors.len(), if errors.len() == 1 { "y" } else { "ies" }, out.display(), errors.join("; "))));
    }
    Ok(())
}
