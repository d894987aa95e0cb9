//! External entries (`kind = "external", results = "FILE"`): results computed elsewhere — a lab's
//! own Python policy, scored with `voltarena.leaderboard_entry` on the leaderboard's own episodes
//! (test days seeded 100·s + i for suite seed s, [`voltarena_env::deploy::protocol_seeds`]) — and
//! read from the JSON file that call wrote (docs/PYTHON.md):
//!
//! ```json
//! {"format": "voltarena-external-entry/1", "name": "my_mappo", "task": "mapdn33",
//!  "eval_episodes": 10, "protocol": "test days 100*seed+i, no data noise",
//!  "per_seed": [{"seed": 1, "metrics": {"steps": 2400, "cr": 0.99, ...}}, ...],
//!  "communication": {"reach": "zone", "messages_per_step": 41},        (optional)
//!  "compute_us_per_step": 35.0,                                         (optional)
//!  "provenance": {...}}                                                 (free-form: code, commit, versions)
//! ```
//!
//! The file must hold the suite's task, its `eval_episodes` and every suite seed; anything else is
//! refused with an error naming the file and the field. `--verify` re-reads the file: it can check
//! that the stored numbers are the file's, not re-run the policy.

use super::scheduler::JobOk;
use serde::Deserialize;
use std::path::Path;
use voltarena_env::controller::Communication;
use voltarena_env::deploy::Deployment;
use voltarena_env::MetricsSummary;

/// The format tag this version reads.
pub const FORMAT: &str = "voltarena-external-entry/1";

#[derive(Debug, Deserialize)]
struct ExternalFile {
    format: String,
    task: String,
    eval_episodes: usize,
    per_seed: Vec<SeedResult>,
    #[serde(default)]
    communication: Option<Communication>,
    #[serde(default)]
    compute_us_per_step: Option<f64>,
    #[serde(default)]
    deployment: Option<Deployment>,
}

#[derive(Debug, Deserialize)]
struct SeedResult {
    seed: u64,
    metrics: MetricsSummary,
}

/// The (task, seed) job of an external entry: that seed's metrics from the file.
pub(super) fn job(path: &Path, task: &str, seed: u64, episodes: usize) -> Result<JobOk, String> {
    let bad = |m: String| format!("{}: {m}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let f: ExternalFile = serde_json::from_str(&text).map_err(|e| bad(format!("line {}: {e}", e.line())))?;
    if f.format != FORMAT {
        return Err(bad(format!("format: expected \"{FORMAT}\", got \"{}\"", f.format)));
    }
    if f.task != task {
        return Err(bad(format!("task: the file holds results on '{}', the suite asks for '{task}'", f.task)));
    }
    if f.eval_episodes != episodes {
        return Err(bad(format!("eval_episodes: the file has {} episodes per seed, the suite {episodes}", f.eval_episodes)));
    }
    let r = f.per_seed.iter().find(|r| r.seed == seed).ok_or_else(|| {
        bad(format!("per_seed: no result for suite seed {seed} (the file has seeds {:?})", f.per_seed.iter().map(|r| r.seed).collect::<Vec<_>>()))
    })?;
    let m = &r.metrics;
    for (k, v) in [("cr", m.cr), ("ql", m.ql), ("avv_max", m.avv_max), ("violation_rate", m.violation_rate)] {
        if !v.is_finite() || v < 0.0 {
            return Err(bad(format!("per_seed[seed {seed}].metrics.{k}: expected a finite number ≥ 0, got {v}")));
        }
    }
    Ok(JobOk {
        metrics: m.clone(),
        config_hash: Some(crate::provenance::fnv(&text)),
        deployment: f.deployment.unwrap_or_default(),
        overridden: Vec::new(),
        communication: f.communication.unwrap_or_default(),
        compute_us_per_step: f.compute_us_per_step.unwrap_or(f64::NAN),
    })
}
