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

impl RunningNorm {
    fn write(&self, w: &mut crate::checkpoint::Writer) {
        w.f64(self.count);
        w.f64s(&self.mean);
        w.f64s(&self.m2);
    }
    fn read(r: &mut crate::checkpoint::Reader, what: &str) -> Result<RunningNorm, crate::checkpoint::CheckpointError> {
        Ok(RunningNorm { count: r.f64(what)?, mean: r.f64s(what)?, m2: r.f64s(what)? })
    }
}

impl Normalizer {
    /// The exact statistics (float bits), for resumable checkpoints.
    pub fn write(&self, w: &mut crate::checkpoint::Writer) {
        for n in [&self.obs, &self.state] {
            w.bool(n.is_some());
            if let Some(n) = n {
                n.write(w);
            }
        }
        w.bool(self.reward.is_some());
        if let Some(s) = &self.reward {
            w.f64(s.gamma);
            w.f64(s.ret);
            s.stats.write(w);
        }
    }

    /// Reads [`write`](Self::write)'s output; it must have this normaliser's shape.
    pub fn read(&mut self, r: &mut crate::checkpoint::Reader) -> Result<(), crate::checkpoint::CheckpointError> {
        let bad = |r: &crate::checkpoint::Reader, m: String| crate::checkpoint::CheckpointError::format(r.path(), m);
        let read_norm = |r: &mut crate::checkpoint::Reader, cur: &Option<RunningNorm>, what: &str| -> Result<Option<RunningNorm>, crate::checkpoint::CheckpointError> {
            let on = r.bool(what)?;
            if on != cur.is_some() {
                return Err(bad(r, format!("{what} normalisation is {}, the config says {}", on_off(on), on_off(cur.is_some()))));
            }
            if !on {
                return Ok(None);
            }
            let n = RunningNorm::read(r, what)?;
            let d = cur.as_ref().map(|c| c.mean.len()).unwrap_or(0);
            if n.mean.len() != d || n.m2.len() != d {
                return Err(bad(r, format!("{what} normaliser of width {}, expected {d}", n.mean.len())));
            }
            Ok(Some(n))
        };
        let obs = read_norm(r, &self.obs, "observation")?;
        let state = read_norm(r, &self.state, "state")?;
        let on = r.bool("reward")?;
        if on != self.reward.is_some() {
            return Err(bad(r, format!("reward normalisation is {}, the config says {}", on_off(on), on_off(self.reward.is_some()))));
        }
        let reward = if on {
            let (gamma, ret) = (r.f64("reward gamma")?, r.f64("reward return")?);
            let stats = RunningNorm::read(r, "reward")?;
            if stats.mean.len() != 1 || stats.m2.len() != 1 {
                return Err(bad(r, "reward normaliser must have width 1".into()));
            }
            Some(RewardScale { gamma, ret, stats })
        } else {
            None
        };
        *self = Normalizer { obs, state, reward };
        Ok(())
    }
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}
