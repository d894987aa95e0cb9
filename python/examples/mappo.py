"""MAPPO on a VoltArena task, in one file (CleanRL style).

Multi-agent PPO with parameter sharing: one Gaussian actor for every inverter (its local
observation plus a one-hot agent id), one centralized critic on the global state (the team reward
is shared, so one value per environment), trained on ``voltarena.VectorEnv`` — the environments
step in Rust on threads, this file only sees numpy arrays. After training the deterministic policy
(the actor's mean) is scored with ``voltarena.evaluate`` on the test days, next to no control,
droop and nested OFO on the same episodes.

    pip install ./python torch
    python python/examples/mappo.py --task mapdn33 --total-steps 400000

Dependencies: voltarena, numpy, torch (the example's only; the package does not need it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch
import torch.nn as nn

import voltarena


@dataclasses.dataclass
class Args:
    task: str = "mapdn33"
    seed: int = 1
    total_steps: int = 400_000  # environment steps (each is one step of every agent)
    num_envs: int = 32
    num_steps: int = 120  # rollout length per environment and update
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    update_epochs: int = 5
    num_minibatches: int = 4
    clip_coef: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 64
    init_log_std: float = -0.5
    reward_scale: float = 0.0  # 0: divide rewards by a running std of the discounted return
    threads: int = 0  # torch and environment threads (0: all cores)
    eval_episodes: int = 10
    eval_seed: int = 0
    out: str = ""  # write the result JSON here


def layer(i, o, std=np.sqrt(2)):
    lin = nn.Linear(i, o)
    nn.init.orthogonal_(lin.weight, std)
    nn.init.zeros_(lin.bias)
    return lin


class Agent(nn.Module):
    """Shared actor π(a | o_k, k) and centralized critic V(s)."""

    def __init__(self, obs_dim, n_agents, state_dim, hidden, init_log_std):
        super().__init__()
        self.n_agents = n_agents
        self.actor = nn.Sequential(layer(obs_dim + n_agents, hidden), nn.Tanh(), layer(hidden, hidden), nn.Tanh(), layer(hidden, 1, 0.01))
        self.log_std = nn.Parameter(torch.full((1,), init_log_std))
        self.critic = nn.Sequential(layer(state_dim, 2 * hidden), nn.Tanh(), layer(2 * hidden, 2 * hidden), nn.Tanh(), layer(2 * hidden, 1, 1.0))
        self.register_buffer("ids", torch.eye(n_agents))

    def actor_in(self, obs):  # obs [..., n_agents, obs_dim]
        ids = self.ids.expand(*obs.shape[:-1], self.n_agents)
        return torch.cat([obs, ids], -1)

    def value(self, state):
        return self.critic(state).squeeze(-1)

    def dist(self, obs):
        mean = self.actor(self.actor_in(obs)).squeeze(-1)
        return torch.distributions.Normal(mean, self.log_std.exp().expand_as(mean))


class ReturnStd:
    """Running std of the discounted return, to scale rewards (as Gymnasium's NormalizeReward)."""

    def __init__(self, n, gamma):
        self.ret, self.gamma = np.zeros(n), gamma
        self.count, self.mean, self.m2 = 1e-4, 0.0, 0.0

    def update(self, r, done):
        self.ret = self.ret * self.gamma * (1 - done) + r
        for x in self.ret:
            self.count += 1
            d = x - self.mean
            self.mean += d / self.count
            self.m2 += d * (x - self.mean)

    @property
    def std(self):
        return float(np.sqrt(self.m2 / self.count) + 1e-8)


def train(args: Args) -> dict:
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    env = voltarena.VectorEnv(args.task, num_envs=args.num_envs, seed=args.seed, threads=args.threads or None)
    n, a_n = args.num_envs, env.n_agents
    obs_dim, state_dim = env.single_observation_space.shape[-1], env.single_state_space.shape[0]
    agent = Agent(obs_dim, a_n, state_dim, args.hidden, args.init_log_std)
    opt = torch.optim.Adam(agent.parameters(), lr=args.lr, eps=1e-5)
    T = args.num_steps
    buf_obs = torch.zeros(T, n, a_n, obs_dim)
    buf_state = torch.zeros(T, n, state_dim)
    buf_act = torch.zeros(T, n, a_n)
    buf_logp = torch.zeros(T, n)
    buf_rew = torch.zeros(T, n)
    buf_done = torch.zeros(T, n)
    buf_val = torch.zeros(T, n)
    scaler = ReturnStd(n, args.gamma)
    obs, info = env.reset(seed=args.seed)
    obs, state = torch.as_tensor(obs), torch.as_tensor(info["state"])
    updates = args.total_steps // (n * T)
    t0, curve = time.time(), []
    for update in range(updates):
        frac = 1.0 - update / updates
        opt.param_groups[0]["lr"] = frac * args.lr
        ep_rew, ep_cr = [], []
        for t in range(T):
            with torch.no_grad():
                d = agent.dist(obs)
                act = d.sample()
                buf_logp[t] = d.log_prob(act).sum(-1)
                buf_val[t] = agent.value(state)
            buf_obs[t], buf_state[t], buf_act[t] = obs, state, act
            nobs, rew, term, trunc, info = env.step(act.clamp(-1, 1).numpy())
            done = np.logical_or(term, trunc)
            scaler.update(rew, done)
            scale = args.reward_scale or 1.0 / scaler.std
            r = torch.as_tensor(rew * scale, dtype=torch.float32)
            if trunc.any():  # time limit: bootstrap from the last state of the ended episode
                fs = torch.as_tensor(info["final_state"][trunc])
                with torch.no_grad():
                    r[torch.as_tensor(trunc)] += args.gamma * agent.value(fs)
            buf_rew[t], buf_done[t] = r, torch.as_tensor(done, dtype=torch.float32)
            ep_rew.append(rew.mean())
            ep_cr.append(info["cr"].mean())
            obs, state = torch.as_tensor(nobs), torch.as_tensor(info["state"])
        with torch.no_grad():  # GAE over the team value
            next_val = agent.value(state)
            adv = torch.zeros(T, n)
            last = torch.zeros(n)
            for t in reversed(range(T)):
                nv = next_val if t == T - 1 else buf_val[t + 1]
                nonterm = 1.0 - buf_done[t]
                delta = buf_rew[t] + args.gamma * nv * nonterm - buf_val[t]
                last = delta + args.gamma * args.gae_lambda * nonterm * last
                adv[t] = last
            ret = adv + buf_val
        b_obs, b_state, b_act = buf_obs.reshape(T * n, a_n, obs_dim), buf_state.reshape(T * n, state_dim), buf_act.reshape(T * n, a_n)
        b_logp, b_adv, b_ret = buf_logp.reshape(-1), adv.reshape(-1), ret.reshape(-1)
        mb = T * n // args.num_minibatches
        for _ in range(args.update_epochs):
            perm = torch.randperm(T * n)
            for k in range(args.num_minibatches):
                i = perm[k * mb:(k + 1) * mb]
                d = agent.dist(b_obs[i])
                logp = d.log_prob(b_act[i]).sum(-1)
                ratio = (logp - b_logp[i]).exp()
                adv_i = (b_adv[i] - b_adv[i].mean()) / (b_adv[i].std() + 1e-8)
                pg = torch.max(-adv_i * ratio, -adv_i * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
                v_loss = 0.5 * ((agent.value(b_state[i]) - b_ret[i]) ** 2).mean()
                loss = pg + args.vf_coef * v_loss - args.ent_coef * d.entropy().sum(-1).mean()
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                opt.step()
        steps = (update + 1) * n * T
        curve.append({"env_steps": steps, "reward": float(np.mean(ep_rew)), "train_cr": float(np.mean(ep_cr))})
        if update % 10 == 0 or update == updates - 1:
            print(f"update {update + 1}/{updates}  env steps {steps}  reward {np.mean(ep_rew):.4f}  train CR {np.mean(ep_cr):.3f}  "
                  f"std {agent.log_std.exp().item():.3f}  {steps / (time.time() - t0):.0f} env steps/s", flush=True)

    def policy(obs_dict):
        o = torch.as_tensor(np.stack([obs_dict[f"agent_{k}"] for k in range(a_n)]))
        with torch.no_grad():
            mean = agent.actor(agent.actor_in(o)).squeeze(-1).clamp(-1, 1).numpy()
        return {f"agent_{k}": float(mean[k]) for k in range(a_n)}

    ev = dict(task=args.task, split="test", episodes=args.eval_episodes, seed=args.eval_seed)
    result = {"args": dataclasses.asdict(args), "train_seconds": time.time() - t0, "curve": curve,
              "test": {"mappo": voltarena.evaluate(policy, **ev), **{c: voltarena.evaluate(c, **ev) for c in ("none", "droop", "nested")}}}
    print(f"test ({args.eval_episodes} episodes, seed {args.eval_seed}):")
    for c, m in result["test"].items():
        print(f"  {c:8s} CR {m['cr']:.4f}  QL {m['ql']:.4f} Mvar  AVV max {m['avv_max']:.2e}")
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(Args):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    args = Args(**vars(p.parse_args()))
    result = train(args)
    if args.out:
        with open(args.out + ".tmp", "w") as fh:
            json.dump(result, fh, indent=1)
        import os

        os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
