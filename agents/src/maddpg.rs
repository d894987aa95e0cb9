//! MADDPG (Lowe et al. 2017) with centralised training, decentralised execution and parameter
//! sharing — readable top to bottom, hyperparameters in [`MaddpgConfig`].
//!
//! * one actor μ(o_k ‖ id_k) shared by all agents, and its target copy;
//! * one centralised critic Q(s, a₁..a_n) on the global state and every agent's action (one team
//!   reward), and its target;
//! * critic target y = r + γ (1 − done) Q'(s', μ'(o'₁), …, μ'(o'_n));
//! * actor update every step, maximising Q(s, μ(o₁), …, μ(o_n)) (joint deterministic policy
//!   gradient through the shared actor); soft target updates; Adam; gradient clipping.

use crate::buffer::Batch;
use crate::matd3::UpdateInfo;
use crate::nets::{clip_grad_norm, load_stores, save_stores, soft_update, Actor, Critic, CriticKind};
use serde::{Deserialize, Serialize};
use std::path::Path;
use crate::adam::Adam;
use tch::nn;
use tch::{Device, Kind};

/// MADDPG hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaddpgConfig {
    pub actor_hidden: usize,
    /// Recurrent (GRU) shared actor, as MAPDN's agents; its hidden state rides in the replay
    /// buffer next to the observation (stored state, no back-propagation through time).
    #[serde(skip_serializing_if = "crate::nets::is_false")]
    pub actor_gru: bool,
    pub critic_hidden: usize,
    pub actor_lr: f64,
    pub critic_lr: f64,
    pub gamma: f64,
    pub tau: f64,
    pub batch_size: usize,
    pub grad_clip: f64,
    pub reward_scale: f64,
    /// `centralized` (MADDPG), `local` (the IDDPG ablation) or `factored` (V(s) + mean_k U(o_k, a_k):
    /// per-agent credit for many agents, `nets::CriticKind`).
    pub critic: CriticKind,
    /// The actor's last layer starts uniform in ±this (weights and bias; DDPG's 3e-3), so the
    /// first policy acts ≈ 0 — with `residual = "droop"`, ≈ droop — as `matd3.actor_last_init`;
    /// 0 (default): libtorch's initialisation. Left out of the resolved config when 0.
    #[serde(skip_serializing_if = "crate::nets::is_zero")]
    pub actor_last_init: f64,
}

impl Default for MaddpgConfig {
    fn default() -> Self {
        MaddpgConfig { actor_hidden: 64, actor_gru: false, critic_hidden: 128, actor_lr: 1e-3, critic_lr: 1e-3, gamma: 0.99, tau: 0.005, batch_size: 256, grad_clip: 1.0, reward_scale: 1.0, critic: CriticKind::Centralized, actor_last_init: 0.0 }
    }
}

impl MaddpgConfig {
    /// Every hyperparameter in its range (keys as in the `[maddpg]` table of a training config).
    pub fn validate(&self) -> Result<(), crate::validate::ConfigError> {
        let common = crate::validate::Common {
            actor_hidden: self.actor_hidden,
            critic_hidden: self.critic_hidden,
            actor_lr: self.actor_lr,
            critic_lr: self.critic_lr,
            gamma: self.gamma,
            tau: self.tau,
            batch_size: self.batch_size,
            grad_clip: self.grad_clip,
            reward_scale: self.reward_scale,
        };
        common.validate("maddpg.")?;
        crate::validate::Check { prefix: "maddpg." }.non_negative("actor_last_init", self.actor_last_init)?;
        Ok(())
    }
}

pub struct Maddpg {
    pub cfg: MaddpgConfig,
    actor_vs: nn::VarStore,
    actor: Actor,
    actor_target_vs: nn::VarStore,
    actor_target: Actor,
    critic_vs: nn::VarStore,
    critic: Critic,
    critic_target_vs: nn::VarStore,
    critic_target: Critic,
    actor_opt: Adam,
    critic_opt: Adam,
    updates: usize,
}

impl Maddpg {
    /// Builds the networks (initialised from tch's global seed: call `tch::manual_seed` first);
    /// `seed` drives `actor_last_init`'s draw.
    pub fn new(cfg: MaddpgConfig, n_agents: usize, obs_dim: usize, state_dim: usize, seed: u64) -> Result<Maddpg, tch::TchError> {
        crate::numerics::pin();
        let dev = Device::Cpu;
        let actor_vs = nn::VarStore::new(dev);
        let mk = |p: &nn::Path| if cfg.actor_gru { Actor::new_gru(p, obs_dim, n_agents, cfg.actor_hidden) } else { Actor::new(p, obs_dim, n_agents, cfg.actor_hidden) };
        let actor = mk(&actor_vs.root());
        if cfg.actor_last_init > 0.0 {
            crate::nets::init_uniform(&actor_vs, "l3.", cfg.actor_last_init, seed ^ 0x1A57);
        }
        let mut actor_target_vs = nn::VarStore::new(dev);
        let actor_target = mk(&actor_target_vs.root());
        actor_target_vs.copy(&actor_vs)?;
        // Batches carry [o ‖ h] for the recurrent actor (a local critic sees the same row).
        let obs_in = obs_dim + actor.hidden_dim();
        let critic_vs = nn::VarStore::new(dev);
        let critic = Critic::new(&(critic_vs.root() / "q"), cfg.critic, n_agents, obs_in, state_dim, cfg.critic_hidden);
        let mut critic_target_vs = nn::VarStore::new(dev);
        let critic_target = Critic::new(&(critic_target_vs.root() / "q"), cfg.critic, n_agents, obs_in, state_dim, cfg.critic_hidden);
        critic_target_vs.copy(&critic_vs)?;
        let actor_opt = Adam::new(&actor_vs, cfg.actor_lr);
        let critic_opt = Adam::new(&critic_vs, cfg.critic_lr);
        Ok(Maddpg { cfg, actor_vs, actor, actor_target_vs, actor_target, critic_vs, critic, critic_target_vs, critic_target, actor_opt, critic_opt, updates: 0 })
    }

    /// Deterministic actions (see `Matd3::act`: with the recurrent actor the input rows are
    /// [o ‖ h] and the next hidden state goes to `h_next`).
    pub fn act(&self, obs: &[f32], n_agents: usize, out: &mut [f64]) {
        self.act_hidden(obs, n_agents, out, &mut [])
    }

    /// [`Self::act`] that also returns the recurrent actor's next hidden state.
    pub fn act_hidden(&self, obs: &[f32], n_agents: usize, out: &mut [f64], h_next: &mut [f32]) {
        self.actor.act(obs, n_agents, out, h_next)
    }

    /// Width of the actor's recurrent state (0: feed-forward).
    pub fn hidden_dim(&self) -> usize {
        self.actor.hidden_dim()
    }

    pub fn update(&mut self, b: &Batch) -> UpdateInfo {
        let c = &self.cfg;
        let (kind, n) = (c.critic, b.obs.size()[1]);
        let y = tch::no_grad(|| {
            let q_next = self.critic_target.value(&b.next_obs, &b.next_state, &self.actor_target.forward(&b.next_obs));
            kind.rows(&b.reward, n) * c.reward_scale + (1.0 - kind.rows(&b.done, n)) * c.gamma * q_next
        });
        let q = self.critic.value(&b.obs, &b.state, &b.actions);
        let critic_loss = q.mse_loss(&y, tch::Reduction::Mean);
        self.critic_opt.zero_grad();
        critic_loss.backward();
        clip_grad_norm(&self.critic_vs, c.grad_clip);
        self.critic_opt.step();
        let actor_loss = -self.critic.value(&b.obs, &b.state, &self.actor.forward(&b.obs)).mean(Kind::Float);
        self.actor_opt.zero_grad();
        actor_loss.backward();
        clip_grad_norm(&self.actor_vs, c.grad_clip);
        self.actor_opt.step();
        soft_update(&mut self.actor_target_vs, &self.actor_vs, c.tau);
        soft_update(&mut self.critic_target_vs, &self.critic_vs, c.tau);
        self.updates += 1;
        UpdateInfo { critic_loss: critic_loss.double_value(&[]), actor_loss: Some(actor_loss.double_value(&[])), q_mean: q.mean(Kind::Float).double_value(&[]), q_multiplier: 0.0 }
    }

    pub fn updates(&self) -> usize {
        self.updates
    }

    pub fn save(&self, dir: &Path) -> Result<(), tch::TchError> {
        save_stores(dir, &[("actor.ot", &self.actor_vs), ("actor_target.ot", &self.actor_target_vs), ("critic.ot", &self.critic_vs), ("critic_target.ot", &self.critic_target_vs)])
    }

    /// Optimiser moments, update count and random stream (the networks are in the `.ot` files), for
    /// resumable checkpoints.
    pub fn write_state(&self, w: &mut crate::checkpoint::Writer) {
        w.usize(self.updates);
        self.actor_opt.write(w);
        self.critic_opt.write(w);
    }

    /// Reads [`write_state`](Self::write_state)'s output.
    pub fn read_state(&mut self, r: &mut crate::checkpoint::Reader) -> Result<(), crate::checkpoint::CheckpointError> {
        self.updates = r.usize("update count")?;
        self.actor_opt.read(r, "actor optimiser")?;
        self.critic_opt.read(r, "critic optimiser")?;
        Ok(())
    }

    /// Writes the actor alone into `dir`: all a deployed policy needs.
    pub fn save_actor(&self, dir: &Path) -> Result<(), tch::TchError> {
        save_stores(dir, &[("actor.ot", &self.actor_vs)])
    }

    /// Loads the actor alone from `dir` (for acting; the critics and targets stay as built).
    pub fn load_actor(&mut self, dir: &Path) -> Result<(), tch::TchError> {
        load_stores(dir, &mut [("actor.ot", &mut self.actor_vs)])
    }

    /// Loads the four networks from `dir` (optimiser moments restart from zero).
    pub fn load(&mut self, dir: &Path, updates: usize) -> Result<(), tch::TchError> {
        load_stores(dir, &mut [
            ("actor.ot", &mut self.actor_vs),
            ("actor_target.ot", &mut self.actor_target_vs),
            ("critic.ot", &mut self.critic_vs),
            ("critic_target.ot", &mut self.critic_target_vs),
        ])?;
        self.updates = updates;
        Ok(())
    }
}
