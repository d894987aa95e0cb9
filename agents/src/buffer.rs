//! Preallocated replay buffer of joint transitions, uniform sampling.
//!
//! One transition: every agent's observation, the global state, every agent's action, the team
//! reward, the next observations and state, and `done` = terminated (a time-limit truncation is
//! not terminal: the target bootstraps through it).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

/// A sampled minibatch as tensors (row = transition).
pub struct Batch {
    /// [B, n_agents, obs_dim]
    pub obs: Tensor,
    /// [B, state_dim]
    pub state: Tensor,
    /// [B, n_agents]
    pub actions: Tensor,
    /// [B, 1]
    pub reward: Tensor,
    pub next_obs: Tensor,
    pub next_state: Tensor,
    /// [B, 1], 1 where the episode terminated
    pub done: Tensor,
}

pub struct ReplayBuffer {
    cap: usize,
    len: usize,
    head: usize,
    n_agents: usize,
    obs_dim: usize,
    state_dim: usize,
    obs: Vec<f32>,
    state: Vec<f32>,
    actions: Vec<f32>,
    reward: Vec<f32>,
    next_obs: Vec<f32>,
    next_state: Vec<f32>,
    done: Vec<f32>,
    // sampling scratch
    s_obs: Vec<f32>,
    s_state: Vec<f32>,
    s_actions: Vec<f32>,
    s_reward: Vec<f32>,
    s_next_obs: Vec<f32>,
    s_next_state: Vec<f32>,
    s_done: Vec<f32>,
}

impl ReplayBuffer {
    pub fn new(capacity: usize, n_agents: usize, obs_dim: usize, state_dim: usize) -> ReplayBuffer {
        let o = n_agents * obs_dim;
        ReplayBuffer {
            cap: capacity,
            len: 0,
            head: 0,
            n_agents,
            obs_dim,
            state_dim,
            obs: vec![0.0; capacity * o],
            state: vec![0.0; capacity * state_dim],
            actions: vec![0.0; capacity * n_agents],
            reward: vec![0.0; capacity],
            next_obs: vec![0.0; capacity * o],
            next_state: vec![0.0; capacity * state_dim],
            done: vec![0.0; capacity],
            s_obs: Vec::new(),
            s_state: Vec::new(),
            s_actions: Vec::new(),
            s_reward: Vec::new(),
            s_next_obs: Vec::new(),
            s_next_state: Vec::new(),
            s_done: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The stored joint actions, one row of `n_agents` per transition in storage order (for tests
    /// and diagnostics).
    pub fn actions(&self) -> &[f32] {
        &self.actions[..self.len * self.n_agents]
    }

    /// Stores one transition (overwrites the oldest when full).
    #[allow(clippy::too_many_arguments)]
    pub fn push(&mut self, obs: &[f32], state: &[f32], actions: &[f32], reward: f32, next_obs: &[f32], next_state: &[f32], done: bool) {
        let (o, s, a, i) = (self.n_agents * self.obs_dim, self.state_dim, self.n_agents, self.head);
        self.obs[i * o..(i + 1) * o].copy_from_slice(obs);
        self.state[i * s..(i + 1) * s].copy_from_slice(state);
        self.actions[i * a..(i + 1) * a].copy_from_slice(actions);
        self.reward[i] = reward;
        self.next_obs[i * o..(i + 1) * o].copy_from_slice(next_obs);
        self.next_state[i * s..(i + 1) * s].copy_from_slice(next_state);
        self.done[i] = if done { 1.0 } else { 0.0 };
        self.head = (self.head + 1) % self.cap;
        self.len = (self.len + 1).min(self.cap);
    }

    /// A uniform minibatch of `b` transitions (with replacement).
    pub fn sample(&mut self, b: usize, rng: &mut ChaCha8Rng) -> Batch {
        self.sample_normalized(b, rng, &crate::normalize::Normalizer::default())
    }

    /// A uniform minibatch, normalised with the current statistics of `norm`.
    pub fn sample_normalized(&mut self, b: usize, rng: &mut ChaCha8Rng, norm: &crate::normalize::Normalizer) -> Batch {
        let (o, s, a) = (self.n_agents * self.obs_dim, self.state_dim, self.n_agents);
        for v in [&mut self.s_obs, &mut self.s_state, &mut self.s_actions, &mut self.s_reward, &mut self.s_next_obs, &mut self.s_next_state, &mut self.s_done] {
            v.clear();
        }
        for _ in 0..b {
            let i = rng.random_range(0..self.len);
            self.s_obs.extend_from_slice(&self.obs[i * o..(i + 1) * o]);
            self.s_state.extend_from_slice(&self.state[i * s..(i + 1) * s]);
            self.s_actions.extend_from_slice(&self.actions[i * a..(i + 1) * a]);
            self.s_reward.push(self.reward[i]);
            self.s_next_obs.extend_from_slice(&self.next_obs[i * o..(i + 1) * o]);
            self.s_next_state.extend_from_slice(&self.next_state[i * s..(i + 1) * s]);
            self.s_done.push(self.done[i]);
        }
        norm.obs(&mut self.s_obs);
        norm.obs(&mut self.s_next_obs);
        norm.state(&mut self.s_state);
        norm.state(&mut self.s_next_state);
        norm.reward(&mut self.s_reward);
        let (bi, ai, oi, si) = (b as i64, a as i64, self.obs_dim as i64, s as i64);
        Batch {
            obs: Tensor::from_slice(&self.s_obs).view([bi, ai, oi]),
            state: Tensor::from_slice(&self.s_state).view([bi, si]),
            actions: Tensor::from_slice(&self.s_actions).view([bi, ai]),
            reward: Tensor::from_slice(&self.s_reward).view([bi, 1]),
            next_obs: Tensor::from_slice(&self.s_next_obs).view([bi, ai, oi]),
            next_state: Tensor::from_slice(&self.s_next_state).view([bi, si]),
            done: Tensor::from_slice(&self.s_done).view([bi, 1]),
        }
    }
}
