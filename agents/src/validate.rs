//! Range checks of training configs: a value out of range is refused before anything runs or is
//! written, with an error that names the key, the allowed range and the value.

/// A config value outside its allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: expected {expected}, got {got}")]
pub struct ConfigError {
    /// The key as written in the config file, e.g. `matd3.gamma`.
    pub key: String,
    /// The allowed range, e.g. `a number in [0, 1]`.
    pub expected: String,
    pub got: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, expected: impl Into<String>, got: impl ToString) -> ConfigError {
        ConfigError { key: key.into(), expected: expected.into(), got: got.to_string() }
    }
}

/// Checks against a config's keys, collected under a prefix (`matd3.`, ...).
pub struct Check<'a> {
    pub prefix: &'a str,
}

impl Check<'_> {
    fn err(&self, key: &str, expected: &str, got: impl ToString) -> ConfigError {
        ConfigError::new(format!("{}{key}", self.prefix), expected, got)
    }
    /// x ∈ [lo, hi].
    pub fn closed(&self, key: &str, x: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
        if x >= lo && x <= hi {
            Ok(())
        } else {
            Err(self.err(key, &format!("a number in [{lo}, {hi}]"), x))
        }
    }
    /// x ∈ (lo, hi].
    pub fn left_open(&self, key: &str, x: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
        if x > lo && x <= hi {
            Ok(())
        } else {
            Err(self.err(key, &format!("a number in ({lo}, {hi}]"), x))
        }
    }
    /// x ∈ [lo, hi).
    pub fn right_open(&self, key: &str, x: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
        if x >= lo && x < hi {
            Ok(())
        } else {
            Err(self.err(key, &format!("a number in [{lo}, {hi})"), x))
        }
    }
    /// A finite x > 0.
    pub fn positive(&self, key: &str, x: f64) -> Result<(), ConfigError> {
        if x > 0.0 && x.is_finite() {
            Ok(())
        } else {
            Err(self.err(key, "a finite number > 0", x))
        }
    }
    /// A finite x ≥ 0.
    pub fn non_negative(&self, key: &str, x: f64) -> Result<(), ConfigError> {
        if x >= 0.0 && x.is_finite() {
            Ok(())
        } else {
            Err(self.err(key, "a finite number ≥ 0", x))
        }
    }
    /// An integer n ≥ min.
    pub fn at_least(&self, key: &str, n: usize, min: usize) -> Result<(), ConfigError> {
        if n >= min {
            Ok(())
        } else {
            Err(self.err(key, &format!("an integer ≥ {min}"), n))
        }
    }
}

/// The hyperparameters MADDPG and MATD3 share, in one place: network sizes, learning rates, γ, τ,
/// batch, gradient clip, reward scale.
pub struct Common {
    pub actor_hidden: usize,
    pub critic_hidden: usize,
    pub actor_lr: f64,
    pub critic_lr: f64,
    pub gamma: f64,
    pub tau: f64,
    pub batch_size: usize,
    pub grad_clip: f64,
    pub reward_scale: f64,
}

impl Common {
    /// Every shared value in its range, keys under `prefix` (`matd3.`, `maddpg.`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let c = Check { prefix };
        c.at_least("actor_hidden", self.actor_hidden, 1)?;
        c.at_least("critic_hidden", self.critic_hidden, 1)?;
        c.positive("actor_lr", self.actor_lr)?;
        c.positive("critic_lr", self.critic_lr)?;
        c.closed("gamma", self.gamma, 0.0, 1.0)?;
        c.left_open("tau", self.tau, 0.0, 1.0)?;
        c.at_least("batch_size", self.batch_size, 1)?;
        c.non_negative("grad_clip", self.grad_clip)?;
        c.positive("reward_scale", self.reward_scale)
    }
}
