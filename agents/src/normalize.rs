//! Optional running normalisation of observations, global states and rewards (as Stable-Baselines3's
//! `VecNormalize`): statistics are updated from every training step, applied when acting and when a
//! minibatch is sampled (the replay buffer keeps the raw values, so old transitions are normalised
//! with the current statistics), saved in checkpoints (`normalizer.json`) and frozen in evaluation.

use serde::{Deserialize, Serialize};

/// Running mean and variance of a feature vector (Welford, f64). Rows of `dim` features — e.g. one
/// row per agent under parameter sharing — all update the same statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningNorm {
    pub count: f64,
    pub mean: Vec<f64>,
    pub m2: Vec<f64>,
}

/// Normalised values are clipped to ±CLIP standard deviations.
pub const CLIP: f64 = 10.0;

impl RunningNorm {
    pub fn new(dim: usize) -> RunningNorm {
        RunningNorm { count: 0.0, mean: vec![0.0; dim], m2: vec![0.0; dim] }
    }

    /// Adds every row of `x` (length a multiple of the dimension).
    pub fn update(&mut self, x: &[f32]) {
        let d = self.mean.len();
        for row in x.chunks_exact(d) {
            self.count += 1.0;
            for (j, &v) in row.iter().enumerate() {
                let v = v as f64;
                let delta = v - self.mean[j];
                self.mean[j] += delta / self.count;
                self.m2[j] += delta * (v - self.mean[j]);
            }
        }
    }

    /// Standard deviation of feature j (1 before two samples; never below 1e-4).
    pub fn std(&self, j: usize) -> f64 {
        if self.count < 2.0 { 1.0 } else { (self.m2[j] / self.count).sqrt().max(1e-4) }
    }

    /// (x − mean)/std, clipped, for every row of `x`, in place.
    pub fn apply(&self, x: &mut [f32]) {
        let d = self.mean.len();
        for row in x.chunks_exact_mut(d) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = ((*v as f64 - self.mean[j]) / self.std(j)).clamp(-CLIP, CLIP) as f32;
            }
        }
    }
}

/// Reward scaling by the running standard deviation of the discounted return (not centred, so the
/// sign of the reward — and what the optimal policy is — does not change).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardScale {
    pub gamma: f64,
    /// Discounted return of the episode so far.
    pub ret: f64,
    pub stats: RunningNorm,
}

impl RewardScale {
    pub fn update(&mut self, r: f64, episode_end: bool) {
        self.ret = self.ret * self.gamma + r;
        self.stats.update(&[self.ret as f32]);
        if episode_end {
            self.ret = 0.0;
        }
    }

    pub fn factor(&self) -> f64 {
        1.0 / self.stats.std(0)
    }
}

/// The normalisers of a run; `None` = off (identity).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Normalizer {
    pub obs: Option<RunningNorm>,
    pub state: Option<RunningNorm>,
    pub reward: Option<RewardScale>,
}

impl Normalizer {
    pub fn new(obs: bool, reward: bool, obs_dim: usize, state_dim: usize, gamma: f64) -> Normalizer {
        Normalizer {
            obs: obs.then(|| RunningNorm::new(obs_dim)),
            state: obs.then(|| RunningNorm::new(state_dim)),
            reward: reward.then(|| RewardScale { gamma, ret: 0.0, stats: RunningNorm::new(1) }),
        }
    }

    pub fn is_identity(&self) -> bool {
        self.obs.is_none() && self.state.is_none() && self.reward.is_none()
    }

    /// Updates the statistics with one training step's observations (all agents) and state.
    pub fn observe(&mut self, obs: &[f32], state: &[f32]) {
        if let Some(n) = &mut self.obs {
            n.update(obs);
        }
        if let Some(n) = &mut self.state {
            n.update(state);
        }
    }

    pub fn observe_reward(&mut self, r: f64, episode_end: bool) {
        if let Some(s) = &mut self.reward {
            s.update(r, episode_end);
        }
    }

    /// Normalises observations (all agents) in place.
    pub fn obs(&self, x: &mut [f32]) {
        if let Some(n) = &self.obs {
            n.apply(x);
        }
    }

    pub fn state(&self, x: &mut [f32]) {
        if let Some(n) = &self.state {
            n.apply(x);
        }
    }

    pub fn reward(&self, r: &mut [f32]) {
        if let Some(s) = &self.reward {
            let f = s.factor() as f32;
            for x in r.iter_mut() {
                *x *= f;
            }
        }
    }

    /// Reads `normalizer.json` from a checkpoint folder; a missing file is the identity (runs from
    /// before normalisation existed, or with it off).
    pub fn load(dir: &std::path::Path) -> Result<Normalizer, String> {
        let p = dir.join("normalizer.json");
        match std::fs::read_to_string(&p) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| format!("{}: {e}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Normalizer::default()),
            Err(e) => Err(format!("{}: {e}", p.display())),
        }
    }

    pub fn save(&self, dir: &std::path::Path) -> Result<(), String> {
        let t = serde_json::to_string(self).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("normalizer.json"), t).map_err(|e| e.to_string())
    }
}
