//! The networks shared by MADDPG and MATD3: one actor for all agents (parameter sharing, the
//! agent's one-hot id appended to its observation) and a centralised critic on the global state
//! and every agent's action.

use serde::{Deserialize, Serialize};

/// For `skip_serializing_if`: options added after runs were published stay out of resolved configs
/// when off, so earlier config hashes remain valid.
pub fn is_false(b: &bool) -> bool {
    !*b
}

/// For `skip_serializing_if`: a numeric option that is off (0) stays out of the resolved config.
pub fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// For `skip_serializing_if`: a count that is off (0) stays out of the resolved config.
pub fn is_zero_usize(x: &usize) -> bool {
    *x == 0
}
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// What the critics see: everything (MADDPG / MATD3), one agent (the IDDPG / ITD3 ablations: a
/// local critic Q(o_k ‖ id_k, a_k), shared by all agents, trained on the team reward), or the team
/// value factored per agent (`factored`, as VDN / FACMAC's additive mixer with a state bias):
/// Q(s, a) = V(s) + mean_k U(o_k ‖ id_k, a_k), one shared utility network U for every agent.
///
/// The factored critic gives each agent its own action gradient ∂U(o_k, a_k)/∂a_k, learnt from
/// every agent's rows of the batch (B·n rows for one shared network), where a centralised critic
/// has to learn n partial derivatives of one network on [s ‖ a₁..a_n] from B rows — the credit
/// assignment that does not scale to 38–95 agents. Around the operating point a step starts from,
/// the team reward is close to additive in the agents' reactive powers (voltages are linear in q to
/// first order, LinDistFlow), which is what the factorisation assumes; V(s) carries the rest.
/// Its cost grows linearly with the number of agents (as the shared actor's), not with the joint
/// action's width times the state's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CriticKind {
    #[default]
    Centralized,
    Local,
    Factored,
}

impl CriticKind {
    /// (input width, action width) of a critic's network on [input ‖ action]: the centralised one
    /// on (state, n actions), the local one on (observation ‖ one-hot id, own action). (The factored
    /// critic's utility takes [observation ‖ own action] and a learnt per-agent offset instead of the
    /// one-hot id: the same function, without n columns of zeros in every row.)
    pub fn dims(self, n_agents: usize, obs_dim: usize, state_dim: usize) -> (usize, usize) {
        match self {
            CriticKind::Centralized => (state_dim, n_agents),
            CriticKind::Local => (obs_dim + n_agents, 1),
            CriticKind::Factored => (obs_dim, 1),
        }
    }

    /// Critic inputs of a batch: centralised → (state [B, S], actions [B, n]); local → one row per
    /// agent, ([B·n, obs + n], [B·n, 1]); factored → ([B, n, obs], [B, n, 1]) (its utility's rows,
    /// without the id).
    pub fn inputs(self, obs: &Tensor, state: &Tensor, actions: &Tensor) -> (Tensor, Tensor) {
        match self {
            CriticKind::Centralized => (state.shallow_clone(), actions.shallow_clone()),
            CriticKind::Factored => (obs.shallow_clone(), actions.unsqueeze(2)),
            CriticKind::Local => {
                let (b, n) = (obs.size()[0], obs.size()[1]);
                let ids = Tensor::eye(n, (Kind::Float, obs.device())).unsqueeze(0).expand([b, n, n], false);
                (Tensor::cat(&[obs, &ids], 2).view([b * n, -1]), actions.reshape([b * n, 1]))
            }
        }
    }

    /// A per-transition column [B, 1] (reward, done) for each critic row: [B, 1] for the
    /// centralised and factored critics (one team value per transition), [B·n, 1] for local ones.
    pub fn rows(self, x: &Tensor, n_agents: i64) -> Tensor {
        match self {
            CriticKind::Centralized | CriticKind::Factored => x.shallow_clone(),
            CriticKind::Local => x.expand([x.size()[0], n_agents], false).reshape([-1, 1]),
        }
    }
}

/// Shared deterministic actor: [obs ‖ one-hot id] → hidden → hidden → tanh → a ∈ [−1, 1]; or, with
/// `gru`, [obs ‖ id] → hidden → GRU cell (hidden state h) → tanh (MAPDN's recurrent agent).
///
/// The recurrent actor reads its hidden state from the last `hidden` columns of its input
/// ([o ‖ h], "stored state": the replay buffer keeps the h the acting policy had, and updates use it
/// without back-propagation through time) and returns the next state with [`Actor::forward_hidden`].
#[derive(Debug)]
pub struct Actor {
    net: Net,
    n_agents: i64,
}

#[derive(Debug)]
enum Net {
    Mlp(nn::Sequential),
    Gru { l1: nn::Linear, gru: nn::GRU, l3: nn::Linear, obs_dim: i64, hidden: i64 },
}

impl Actor {
    pub fn new(p: &nn::Path, obs_dim: usize, n_agents: usize, hidden: usize) -> Actor {
        let (i, h) = ((obs_dim + n_agents) as i64, hidden as i64);
        let net = nn::seq()
            .add(nn::linear(p / "l1", i, h, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(p / "l2", h, h, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(p / "l3", h, 1, Default::default()))
            .add_fn(|x| x.tanh());
        Actor { net: Net::Mlp(net), n_agents: n_agents as i64 }
    }

    /// The recurrent actor; `obs_dim` is the observation without the hidden state.
    pub fn new_gru(p: &nn::Path, obs_dim: usize, n_agents: usize, hidden: usize) -> Actor {
        let (i, h) = ((obs_dim + n_agents) as i64, hidden as i64);
        let net = Net::Gru {
            l1: nn::linear(p / "l1", i, h, Default::default()),
            gru: nn::gru(p / "gru", h, h, Default::default()),
            l3: nn::linear(p / "l3", h, 1, Default::default()),
            obs_dim: obs_dim as i64,
            hidden: h,
        };
        Actor { net, n_agents: n_agents as i64 }
    }

    /// obs: [B, n_agents, obs_dim (+ hidden)] → actions [B, n_agents].
    pub fn forward(&self, obs: &Tensor) -> Tensor {
        self.forward_hidden(obs).0
    }

    /// Actions [B, n] and, for the recurrent actor, the next hidden state [B, n, hidden] (an empty
    /// tensor for the feed-forward one).
    pub fn forward_hidden(&self, obs: &Tensor) -> (Tensor, Tensor) {
        let b = obs.size()[0];
        let n = self.n_agents;
        let ids = Tensor::eye(n, (Kind::Float, obs.device())).unsqueeze(0).expand([b, n, n], false);
        match &self.net {
            Net::Mlp(net) => (net.forward(&Tensor::cat(&[obs, &ids], 2)).squeeze_dim(2), Tensor::zeros([0], (Kind::Float, obs.device()))),
            Net::Gru { l1, gru, l3, obs_dim, hidden } => {
                use tch::nn::RNN;
                let o = obs.narrow(2, 0, *obs_dim);
                let h = obs.narrow(2, *obs_dim, *hidden).reshape([1, b * n, *hidden]);
                let x = l1.forward(&Tensor::cat(&[&o, &ids], 2).view([b * n, -1])).relu();
                let h2 = gru.step(&x, &nn::GRUState(h)).value();
                let a = l3.forward(&h2.view([b * n, *hidden])).tanh().view([b, n]);
                (a, h2.view([b, n, *hidden]))
            }
        }
    }

    /// Deterministic actions for one joint observation (rows [o] or, recurrent, [o ‖ h]); the
    /// recurrent actor's next hidden state goes to `h_next` (pass an empty slice otherwise).
    pub fn act(&self, obs: &[f32], n_agents: usize, out: &mut [f64], h_next: &mut [f32]) {
        tch::no_grad(|| {
            let (a, h) = self.forward_hidden(&Tensor::from_slice(obs).view([1, n_agents as i64, -1]));
            let a = a.view([-1]);
            for (k, x) in out.iter_mut().enumerate() {
                *x = a.double_value(&[k as i64]);
            }
            if !h_next.is_empty() {
                h.view([-1]).copy_data(h_next, h_next.len());
            }
        });
    }

    /// Width of the recurrent state (0: feed-forward).
    pub fn hidden_dim(&self) -> usize {
        match &self.net {
            Net::Mlp(_) => 0,
            Net::Gru { hidden, .. } => *hidden as usize,
        }
    }
}

/// The recurrent state of every agent while acting: builds the actor's input [o_k ‖ h_k] and keeps
/// the next state until the step is committed. Zero at every episode start.
#[derive(Debug, Clone, Default)]
pub struct Hidden {
    pub h: Vec<f32>,
    pub next: Vec<f32>,
    pub dim: usize,
}

impl Hidden {
    pub fn new(n_agents: usize, dim: usize) -> Hidden {
        Hidden { h: vec![0.0; n_agents * dim], next: vec![0.0; n_agents * dim], dim }
    }

    pub fn reset(&mut self) {
        self.h.fill(0.0);
        self.next.fill(0.0);
    }

    /// out = per agent [obs_k ‖ state_k] (`obs` has n × obs_dim entries).
    pub fn augment(obs: &[f32], state: &[f32], dim: usize, out: &mut Vec<f32>) {
        let n = if dim == 0 { 1 } else { state.len() / dim };
        let od = obs.len() / n.max(1);
        out.clear();
        for k in 0..n {
            out.extend_from_slice(&obs[k * od..(k + 1) * od]);
            out.extend_from_slice(&state[k * dim..(k + 1) * dim]);
        }
    }

    /// The next state becomes the current one.
    pub fn commit(&mut self) {
        std::mem::swap(&mut self.h, &mut self.next);
    }
}

/// Re-initialises every variable of `vs` whose name starts with `prefix` uniform in ±`bound`, from
/// a ChaCha stream seeded with `seed` (not libtorch's generator: the same values on every CPU).
pub fn init_uniform(vs: &nn::VarStore, prefix: &str, bound: f64, seed: u64) {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(k, _)| k.starts_with(prefix)).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let b = bound as f32;
    for (_, mut v) in vars {
        let values: Vec<f32> = (0..v.numel()).map(|_| rng.random_range(-b..=b)).collect();
        tch::no_grad(|| v.copy_(&Tensor::from_slice(&values).view(v.size().as_slice())));
    }
}

/// A critic of [`CriticKind`]: an MLP [input ‖ action] → hidden → hidden → Q (centralised: input =
/// state, action = all actions; local: one agent's row), or, factored, the state value V(s) (an MLP
/// of the same shape) plus the mean over agents of a shared utility U(o_k ‖ id_k, a_k) — an MLP of
/// the same shape on [o_k ‖ a_k] whose first layer adds a learnt offset per agent (what a one-hot id
/// column block would add).
#[derive(Debug)]
pub struct Critic {
    kind: CriticKind,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Mlp(nn::Sequential),
    Factored { u1: nn::Linear, id: Tensor, u2: nn::Linear, u3: nn::Linear, v: nn::Sequential },
}

fn mlp(p: &nn::Path, i: i64, h: i64) -> nn::Sequential {
    nn::seq()
        .add(nn::linear(p / "l1", i, h, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(p / "l2", h, h, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(p / "l3", h, 1, Default::default()))
}

impl Critic {
    /// A critic of `kind` for `n_agents` agents with observation rows of `obs_dim` and a global
    /// state of `state_dim` (variables under `p`; the factored critic's U under `p/u`, V under `p/v`).
    pub fn new(p: &nn::Path, kind: CriticKind, n_agents: usize, obs_dim: usize, state_dim: usize, hidden: usize) -> Critic {
        let (i, a) = kind.dims(n_agents, obs_dim, state_dim);
        let h = hidden as i64;
        let body = match kind {
            CriticKind::Centralized | CriticKind::Local => Body::Mlp(mlp(p, (i + a) as i64, h)),
            CriticKind::Factored => {
                let u = p / "u";
                // The offsets start as a one-hot id block of a first layer on [o ‖ id ‖ a] would.
                let bound = 1.0 / ((i + a + n_agents) as f64).sqrt();
                Body::Factored {
                    u1: nn::linear(&u / "l1", (i + a) as i64, h, Default::default()),
                    id: u.var("id", &[n_agents as i64, h], nn::Init::Uniform { lo: -bound, up: bound }),
                    u2: nn::linear(&u / "l2", h, h, Default::default()),
                    u3: nn::linear(&u / "l3", h, 1, Default::default()),
                    v: mlp(&(p / "v"), state_dim as i64, h),
                }
            }
        };
        Critic { kind, body }
    }

    /// The value of a batch — observations [B, n, obs], states [B, S], actions [B, n]: [B, 1]
    /// (centralised, factored) or [B·n, 1] (local, one row per agent).
    pub fn value(&self, obs: &Tensor, state: &Tensor, actions: &Tensor) -> Tensor {
        let (x, a) = self.kind.inputs(obs, state, actions);
        match &self.body {
            Body::Mlp(net) => net.forward(&Tensor::cat(&[x, a], 1)),
            Body::Factored { u1, id, u2, u3, v } => {
                // [B, n, obs + 1] → [B, n, h] (+ the agent's offset) → [B, n, 1]: U per agent row.
                let h1 = (u1.forward(&Tensor::cat(&[x, a], 2)) + id.unsqueeze(0)).relu();
                let u = u3.forward(&u2.forward(&h1).relu()).squeeze_dim(2);
                v.forward(state) + u.mean_dim([1i64].as_slice(), true, Kind::Float)
            }
        }
    }
}

/// θ_target ← τ θ + (1 − τ) θ_target, variable by variable (same names in both stores).
pub fn soft_update(target: &mut nn::VarStore, online: &nn::VarStore, tau: f64) {
    tch::no_grad(|| {
        let src = online.variables();
        for (name, mut t) in target.variables() {
            let s = &src[&name];
            t.copy_(&(s * tau + &t * (1.0 - tau)));
        }
    });
}

/// Global-norm gradient clipping of every variable in a store.
pub fn clip_grad_norm(vs: &nn::VarStore, max_norm: f64) {
    if max_norm <= 0.0 {
        return;
    }
    tch::no_grad(|| {
        let vars = vs.trainable_variables();
        let mut total = 0.0f64;
        for v in &vars {
            let g = v.grad();
            if g.defined() {
                total += g.pow_tensor_scalar(2).sum(Kind::Double).double_value(&[]);
            }
        }
        let norm = total.sqrt();
        if norm > max_norm {
            let scale = max_norm / (norm + 1e-6);
            for v in &vars {
                let mut g = v.grad();
                if g.defined() {
                    let _ = g.g_mul_scalar_(scale);
                }
            }
        }
    });
}

/// Saves named variable stores into `dir` (one `.ot` file each).
pub fn save_stores(dir: &std::path::Path, stores: &[(&str, &nn::VarStore)]) -> Result<(), tch::TchError> {
    for (name, vs) in stores {
        vs.save(dir.join(name))?;
    }
    Ok(())
}

/// Loads named variable stores from `dir`.
pub fn load_stores(dir: &std::path::Path, stores: &mut [(&str, &mut nn::VarStore)]) -> Result<(), tch::TchError> {
    for (name, vs) in stores.iter_mut() {
        vs.load(dir.join(*name))?;
    }
    Ok(())
}
