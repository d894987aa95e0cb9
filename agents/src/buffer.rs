//! Preallocated replay buffer of joint transitions, uniform sampling.
//!
//! One transition: every agent's observation, the global state, every agent's action, the team
//! reward, the next observations and state, and `done` = terminated (a time-limit truncation is
//! not terminal: the target bootstraps through it).

use crate::checkpoint::{CheckpointError, Reader, Writer};
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
    /// The known action cost's terms, when the buffer keeps them ([`ReplayBuffer::with_cost`]).
    pub cost: Option<CostBatch>,
}

/// Per transition and agent, what the reward's reactive-power term is made of besides the action
/// (`crate::matd3::ActionCost`): the residual base the action was added to, and the action range
/// in force (Mvar per unit of action); for the transition itself and for its successor in the
/// episode (the transition's own values where it has none yet: the episode's last step, or the
/// newest transition).
pub struct CostBatch {
    /// [B, n_agents]
    pub base: Tensor,
    pub range: Tensor,
    pub next_base: Tensor,
    pub next_range: Tensor,
    /// Droop's static target at the transition (action units), when the buffer keeps it
    /// ([`ReplayBuffer::keep_droop_target`]).
    pub droop_target: Option<Tensor>,
}

/// Storage of the cost terms: own values, the successor's, and whether a transition continues the
/// previous one's episode (so a decoded buffer links successors as the live one did).
struct CostColumns {
    base: Vec<f32>,
    range: Vec<f32>,
    next_base: Vec<f32>,
    next_range: Vec<f32>,
    continues: Vec<bool>,
    /// Droop's static target per transition and agent (empty unless kept).
    target: Vec<f32>,
    s: [Vec<f32>; 5],
}

pub struct ReplayBuffer {
    cap: usize,
    len: usize,
    head: usize,
    /// Transitions pushed since the start (transition t lives in slot t mod capacity while kept).
    pushed: u64,
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
    cost: Option<CostColumns>,
}

impl ReplayBuffer {
    pub fn new(capacity: usize, n_agents: usize, obs_dim: usize, state_dim: usize) -> ReplayBuffer {
        let o = n_agents * obs_dim;
        ReplayBuffer {
            cap: capacity,
            len: 0,
            head: 0,
            pushed: 0,
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
            cost: None,
        }
    }

    /// A buffer that also keeps the known action cost's terms (see [`push_cost`](Self::push_cost)).
    pub fn with_cost(capacity: usize, n_agents: usize, obs_dim: usize, state_dim: usize) -> ReplayBuffer {
        let mut b = ReplayBuffer::new(capacity, n_agents, obs_dim, state_dim);
        let z = || vec![0.0f32; capacity * n_agents];
        b.cost = Some(CostColumns { base: z(), range: z(), next_base: z(), next_range: z(), continues: vec![false; capacity], target: Vec::new(), s: Default::default() });
        b
    }

    /// Also keep droop's static target per transition ([`push_droop_target`](Self::push_droop_target);
    /// for `matd3.q_budget_reference = "droop_target"`). A no-op for a buffer without cost terms.
    pub fn keep_droop_target(mut self) -> ReplayBuffer {
        let len = self.cap * self.n_agents;
        if let Some(c) = self.cost.as_mut() {
            c.target = vec![0.0; len];
        }
        self
    }

    /// Whether the buffer keeps droop's static targets.
    pub fn has_droop_target(&self) -> bool {
        self.cost.as_ref().is_some_and(|c| !c.target.is_empty())
    }

    /// Droop's static target per agent for the transition just pushed (action units). A no-op
    /// unless the buffer keeps them.
    pub fn push_droop_target(&mut self, target: &[f64]) {
        let (n, cap) = (self.n_agents, self.cap);
        let i = (self.head + cap - 1) % cap;
        if let Some(c) = self.cost.as_mut().filter(|c| !c.target.is_empty()) {
            for (dst, &x) in c.target[i * n..(i + 1) * n].iter_mut().zip(target) {
                *dst = x as f32;
            }
        }
    }

    /// Whether the buffer keeps the cost terms.
    pub fn has_cost(&self) -> bool {
        self.cost.is_some()
    }

    /// The cost terms of the transition just pushed: per agent its residual base and action range
    /// in force; `continues` = it follows the previously pushed transition in the same episode (that
    /// one's successor values are then these). A no-op for a buffer without cost terms.
    pub fn push_cost(&mut self, base: &[f64], range: &[f64], continues: bool) {
        let (n, cap) = (self.n_agents, self.cap);
        let i = (self.head + cap - 1) % cap;
        let prev = (continues && self.len >= 2).then(|| (i + cap - 1) % cap);
        if let Some(c) = self.cost.as_mut() {
            c.set(i, n, base.iter().map(|&x| x as f32), range.iter().map(|&x| x as f32), continues);
            if let Some(p) = prev {
                c.link(p, i, n);
            }
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
        self.pushed += 1;
    }

    /// Transitions pushed since the start.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// The oldest transition still kept (absolute index).
    pub fn first_kept(&self) -> u64 {
        self.pushed - self.len as u64
    }

    /// Transitions `a..b` (absolute, all still kept) as a replay segment: a checksummed binary file
    /// (format in [`crate::checkpoint`]). A transition's next observation and state are written only
    /// where they differ from the following transition's observation and state (an episode's last
    /// step, and the segment's last transition).
    pub fn encode_segment(&self, a: u64, b: u64) -> Vec<u8> {
        assert!(self.first_kept() <= a && a <= b && b <= self.pushed, "segment {a}..{b} outside the kept {}..{}", self.first_kept(), self.pushed);
        let (o, s, n) = (self.n_agents * self.obs_dim, self.state_dim, self.n_agents);
        let mut w = Writer::default();
        w.buf.extend_from_slice(crate::checkpoint::SEGMENT_MAGIC);
        w.u32(crate::checkpoint::FORMAT_VERSION);
        for d in [self.n_agents, self.obs_dim, self.state_dim] {
            w.usize(d);
        }
        w.u64(a);
        w.u64(b);
        w.bool(self.cost.is_some());
        for t in a..b {
            let i = (t % self.cap as u64) as usize;
            let j = ((t + 1) % self.cap as u64) as usize;
            let chained = t + 1 < b && bits_eq(&self.next_obs[i * o..(i + 1) * o], &self.obs[j * o..(j + 1) * o]) && bits_eq(&self.next_state[i * s..(i + 1) * s], &self.state[j * s..(j + 1) * s]);
            w.bool(!chained);
            w.f32s_raw(&self.obs[i * o..(i + 1) * o]);
            w.f32s_raw(&self.state[i * s..(i + 1) * s]);
            w.f32s_raw(&self.actions[i * n..(i + 1) * n]);
            w.f32s_raw(&[self.reward[i], self.done[i]]);
            if !chained {
                w.f32s_raw(&self.next_obs[i * o..(i + 1) * o]);
                w.f32s_raw(&self.next_state[i * s..(i + 1) * s]);
            }
            if let Some(c) = &self.cost {
                w.bool(c.continues[i]);
                w.f32s_raw(&c.base[i * n..(i + 1) * n]);
                w.f32s_raw(&c.range[i * n..(i + 1) * n]);
                if !c.target.is_empty() {
                    w.f32s_raw(&c.target[i * n..(i + 1) * n]);
                }
            }
        }
        w.finish()
    }

    /// Reads a segment written by [`encode_segment`](Self::encode_segment) into the slots its
    /// transitions had, keeping those at or after `keep_from` (absolute). Returns the segment's range.
    pub fn decode_segment(&mut self, path: &std::path::Path, bytes: &[u8], keep_from: u64) -> Result<(u64, u64), CheckpointError> {
        let mut r = Reader::open(path, bytes, crate::checkpoint::SEGMENT_MAGIC)?;
        for (d, what) in [(self.n_agents, "number of agents"), (self.obs_dim, "observation width"), (self.state_dim, "state width")] {
            let got = r.usize(what)?;
            if got != d {
                return Err(CheckpointError::format(path, format!("{what} {got}, this run has {d}")));
            }
        }
        let (a, b) = (r.u64("first transition")?, r.u64("end transition")?);
        if a > b {
            return Err(CheckpointError::format(path, format!("transitions {a}..{b}")));
        }
        let has_cost = r.bool("cost-columns flag")?;
        if has_cost != self.cost.is_some() {
            let (got, want) = if has_cost { ("has", "does not keep") } else { ("has no", "keeps") };
            return Err(CheckpointError::format(path, format!("the segment {got} action-cost columns; this run {want} them (analytic_q_cost)")));
        }
        // Droop's targets follow the base and range when this run keeps them: a resume builds
        // the buffer from the run's own resolved config.toml, the one its segments were written
        // under (a segment of another layout fails the reader's length checks, naming the file).
        let with_target = self.has_droop_target();
        let mut cost_scratch = vec![0.0f32; if with_target { 3 } else { 2 } * self.n_agents];
        let (o, s, n) = (self.n_agents * self.obs_dim, self.state_dim, self.n_agents);
        let cap = self.cap as u64;
        let mut scratch = vec![0.0f32; o + s + n + 2];
        let mut prev_chained: Option<usize> = None;
        for t in a..b {
            let explicit = r.bool("next-state flag")?;
            r.f32s_to(&mut scratch, "transition")?;
            let keep = t >= keep_from;
            let i = (t % cap) as usize;
            if let Some(p) = prev_chained.take() {
                self.next_obs[p * o..(p + 1) * o].copy_from_slice(&scratch[..o]);
                self.next_state[p * s..(p + 1) * s].copy_from_slice(&scratch[o..o + s]);
            }
            if keep {
                self.obs[i * o..(i + 1) * o].copy_from_slice(&scratch[..o]);
                self.state[i * s..(i + 1) * s].copy_from_slice(&scratch[o..o + s]);
                self.actions[i * n..(i + 1) * n].copy_from_slice(&scratch[o + s..o + s + n]);
                self.reward[i] = scratch[o + s + n];
                self.done[i] = scratch[o + s + n + 1];
            }
            if explicit {
                let mut next = vec![0.0f32; o + s];
                r.f32s_to(&mut next, "next observation and state")?;
                if keep {
                    self.next_obs[i * o..(i + 1) * o].copy_from_slice(&next[..o]);
                    self.next_state[i * s..(i + 1) * s].copy_from_slice(&next[o..]);
                }
            } else if t + 1 == b {
                return Err(CheckpointError::format(path, "the last transition has no next state"));
            } else if keep {
                prev_chained = Some(i);
            }
            if let Some(c) = self.cost.as_mut() {
                let continues = r.bool("continues flag")?;
                r.f32s_to(&mut cost_scratch, "action-cost terms")?;
                if keep {
                    c.set(i, n, cost_scratch[..n].iter().copied(), cost_scratch[n..2 * n].iter().copied(), continues);
                    if with_target {
                        c.target[i * n..(i + 1) * n].copy_from_slice(&cost_scratch[2 * n..]);
                    }
                    if continues && t > keep_from {
                        c.link(((t - 1) % cap) as usize, i, n);
                    }
                }
            }
        }
        r.end()?;
        Ok((a, b))
    }

    /// After the segments covering `pushed − min(pushed, capacity) .. pushed` were decoded: the
    /// buffer's length and write position.
    pub fn set_pushed(&mut self, pushed: u64) {
        self.pushed = pushed;
        self.len = pushed.min(self.cap as u64) as usize;
        self.head = (pushed % self.cap as u64) as usize;
    }

    /// Capacity (transitions).
    pub fn capacity(&self) -> usize {
        self.cap
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
        if let Some(c) = self.cost.as_mut() {
            c.s.iter_mut().for_each(Vec::clear);
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
            if let Some(c) = self.cost.as_mut() {
                for (dst, src) in c.s.iter_mut().zip([&c.base, &c.range, &c.next_base, &c.next_range]) {
                    dst.extend_from_slice(&src[i * a..(i + 1) * a]);
                }
                if !c.target.is_empty() {
                    c.s[4].extend_from_slice(&c.target[i * a..(i + 1) * a]);
                }
            }
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
            cost: self.cost.as_ref().map(|c| {
                let t = |v: &Vec<f32>| Tensor::from_slice(v).view([bi, ai]);
                let droop_target = (!c.target.is_empty()).then(|| t(&c.s[4]));
                CostBatch { base: t(&c.s[0]), range: t(&c.s[1]), next_base: t(&c.s[2]), next_range: t(&c.s[3]), droop_target }
            }),
        }
    }
}

impl CostColumns {
    /// Slot `i`'s own terms; its successor's start as its own (until [`link`](Self::link)).
    fn set(&mut self, i: usize, n: usize, base: impl Iterator<Item = f32>, range: impl Iterator<Item = f32>, continues: bool) {
        for (k, (b, r)) in base.zip(range).enumerate() {
            let j = i * n + k;
            (self.base[j], self.range[j], self.next_base[j], self.next_range[j]) = (b, r, b, r);
        }
        self.continues[i] = continues;
    }

    /// Slot `i` is slot `p`'s successor in an episode.
    fn link(&mut self, p: usize, i: usize, n: usize) {
        for k in 0..n {
            self.next_base[p * n + k] = self.base[i * n + k];
            self.next_range[p * n + k] = self.range[i * n + k];
        }
    }
}

/// Bitwise equality of f32 slices (−0 ≠ +0, NaN = NaN of the same bits).
fn bits_eq(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
