"""VoltArena: real-time voltage control on distribution feeders, from Python.

The environments are VoltArena's Rust environment (``voltarena_env``), not a re-implementation:

- :func:`parallel_env` — one environment as a PettingZoo ``ParallelEnv`` (one agent per PV
  inverter, local observations, a global ``state()``, one team reward).
- :class:`VectorEnv` — ``num_envs`` environments stepped in Rust on threads, numpy arrays in and
  out, Gymnasium's same-step auto-reset.
- :func:`evaluate` — the evaluation protocol of ``voltarena rollout``: a baseline by name (no
  control, droop, the OFO family) or your own policy on the same episodes, with the same metrics.

Units: actions a ∈ [−1, 1] per agent (q = scale · a · q_available, docs/ENVIRONMENT.md), voltages
in pu, powers in MW / Mvar. The networks and profiles of the built-in tasks are inside the package;
nothing is downloaded.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Callable, Dict, Optional, Union

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector import VectorEnv as _GymVectorEnv
from pettingzoo import ParallelEnv

from . import _voltarena

__version__ = _voltarena.__version__

_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
if os.path.isdir(os.path.join(_DATA, "networks")):
    _voltarena.set_data_dir(_DATA)

__all__ = ["parallel_env", "VoltArenaParallelEnv", "VectorEnv", "evaluate", "leaderboard_entry", "tasks", "controllers"]


def tasks() -> list:
    """Names of the built-in tasks (``voltarena task list``)."""
    return list(_voltarena.tasks())


def controllers() -> list:
    """Controllers :func:`evaluate` runs by name."""
    return list(_voltarena.controllers())


def _agent_names(n: int) -> list:
    return [f"agent_{k}" for k in range(n)]


def _seed_stream(seed: Optional[int]) -> np.random.Generator:
    return np.random.default_rng(seed)


def _episode_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**63 - 1))


class VoltArenaParallelEnv(ParallelEnv):
    """A VoltArena task as a PettingZoo ``ParallelEnv``.

    Agents are ``agent_0 … agent_{n-1}``, one per PV inverter in the task's order
    (``agent_buses`` gives each one's bus id). Each observes a ``Box(obs_dim)`` of float32 (its
    zone, docs/ENVIRONMENT.md) and acts with a ``Box(-1, 1, (1,))``. Every agent gets the same team
    reward. ``infos[agent]`` holds the step's metrics (``cr``, ``ql_mvar``, ``v_max_pu``, ...).
    When the episode ends (time limit: truncation; power-flow failure: termination) every agent
    leaves ``agents``; stepping again raises ``RuntimeError`` until ``reset``.

    ``reset(seed=K)`` draws the episode (its start on the split's days) from ``K``; ``reset()``
    without a seed continues the stream of the last seeded reset. ``options`` may hold ``start``
    (a task step that is a valid start of the split) and ``split``.
    """

    metadata = {"name": "voltarena_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, task: str = "mapdn33", mode: Optional[str] = None, backend: Optional[str] = None,
                 split: str = "train", safety: Optional[str] = None, dead_zone: float = 0.0, render_mode=None):
        if render_mode is not None:
            raise ValueError(f"render_mode: VoltArena environments do not render (got {render_mode!r})")
        self._env = _voltarena.Env(task, mode=mode, backend=backend, split=split, safety=safety, dead_zone=dead_zone)
        self.render_mode = None
        self.possible_agents = _agent_names(self._env.n_agents)
        self.agents: list = []
        self.agent_buses = dict(zip(self.possible_agents, self._env.agent_buses))
        self._obs_space = spaces.Box(-np.inf, np.inf, (self._env.obs_dim,), np.float32)
        self._act_space = {a: spaces.Box(-1.0, 1.0, (1,), np.float32) for a in self.possible_agents}
        self.state_space = spaces.Box(-np.inf, np.inf, (self._env.state_dim,), np.float32)
        self.config = json.loads(self._env.config())
        self.episode_steps = self._env.episode_steps
        self._rng = None
        self._state = None
        self._index = {a: k for k, a in enumerate(self.possible_agents)}

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent):
        self._check_agent(agent)
        return self._obs_space

    def action_space(self, agent):
        self._check_agent(agent)
        return self._act_space[agent]

    def _check_agent(self, agent):
        if agent not in self._index:
            raise ValueError(f"unknown agent {agent!r}; agents are agent_0 … agent_{len(self.possible_agents) - 1}")

    def reset(self, seed: Optional[int] = None, options: Optional[dict] = None):
        if seed is not None:
            self._rng = _seed_stream(seed)
            for space in self._act_space.values():
                space.seed(int(self._rng.integers(0, 2**31 - 1)))
        elif self._rng is None:
            self._rng = _seed_stream(None)
        options = options or {}
        obs, state = self._env.reset(_episode_seed(self._rng), start=options.get("start"), split=options.get("split"))
        self._state = state
        self.agents = list(self.possible_agents)
        return {a: obs[k] for k, a in enumerate(self.agents)}, {a: {} for a in self.agents}

    def step(self, actions: Dict[str, Any]):
        if not self.agents:
            raise RuntimeError("the episode is over (or reset() was not called): call reset() first")
        if not isinstance(actions, dict):
            raise ValueError(f"actions: expected a dict {{agent: action}}, got {type(actions).__name__}")
        if set(actions) != set(self.agents):
            missing = sorted(set(self.agents) - set(actions), key=self._index.get)
            extra = sorted(set(actions) - set(self.agents), key=str)
            raise ValueError(f"actions: expected one action per live agent; missing {missing}, unknown {extra}")
        a = np.empty(len(self.possible_agents), dtype=np.float64)
        for agent, v in actions.items():
            v = np.asarray(v, dtype=np.float64)
            if v.size != 1:
                raise ValueError(f"actions[{agent!r}]: expected one number (shape (1,)), got shape {v.shape}")
            a[self._index[agent]] = v.reshape(())
        obs, state, reward, terminated, truncated, info = self._env.step(a)
        self._state = state
        agents = self.agents
        obs_d = {ag: obs[k] for k, ag in enumerate(agents)}
        rew = {ag: reward for ag in agents}
        term = {ag: terminated for ag in agents}
        trunc = {ag: truncated for ag in agents}
        infos = {ag: dict(info) for ag in agents}
        if terminated or truncated:
            self.agents = []
        return obs_d, rew, term, trunc, infos

    def state(self) -> np.ndarray:
        if self._state is None:
            raise RuntimeError("call reset() first")
        return self._state

    def episode_metrics(self) -> dict:
        """Metrics of the episode so far (CR, QL, AVV, violation rate, losses, ...)."""
        return json.loads(self._env.episode_metrics())

    def render(self):
        return None

    def close(self):
        pass


def parallel_env(task: str = "mapdn33", mode: Optional[str] = None, backend: Optional[str] = None,
                 split: str = "train", safety: Optional[str] = None, dead_zone: float = 0.0,
                 render_mode=None) -> VoltArenaParallelEnv:
    """A VoltArena task as a PettingZoo ``ParallelEnv``.

    ``task``: a built-in name (:func:`tasks`) or a task TOML path. ``mode``: ``"clean"`` or
    ``"compat"`` (MAPDN's semantics; default: the task's). ``backend``: ``"ac"`` or
    ``"lindistflow"`` (default: the task's). ``split``: the days episodes come from
    (``"train"``, ``"val"``, ``"test"``). ``safety``: ``None``, ``"projection"`` or ``"cbf"`` — the
    safety layer between the actions and the grid.
    """
    return VoltArenaParallelEnv(task, mode=mode, backend=backend, split=split, safety=safety,
                                dead_zone=dead_zone, render_mode=render_mode)


class VectorEnv(_GymVectorEnv):
    """``num_envs`` copies of a task stepped in Rust on ``threads`` threads (default: all cores).

    Arrays: observations ``[N, agents, obs_dim]`` float32, ``state()`` ``[N, state_dim]``,
    actions ``[N, agents]`` (or ``[N, agents, 1]``), rewards / terminated / truncated ``[N]``.
    Same-step auto-reset: an environment whose episode ends is reset within ``step``; its row of
    the returned observations starts the new episode, and (on steps where one ended) ``infos["final_obs"]``,
    ``infos["final_state"]`` hold the last ones where ``infos["_final"]`` is true. Environment i's
    e-th episode is drawn with seed ``seed + i + N·e``, so a vector run is reproducible and equals
    N single environments reset with those seeds. ``infos`` also holds per-environment step
    metrics (``cr``, ``ql_mvar``, ``v_max_pu``, ``v_min_pu``, ``diverged``).
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, task: str = "mapdn33", num_envs: int = 1, seed: Optional[int] = None,
                 mode: Optional[str] = None, backend: Optional[str] = None, split: str = "train",
                 safety: Optional[str] = None, dead_zone: float = 0.0, threads: Optional[int] = None):
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs: expected a positive integer, got {num_envs!r}")
        self._env = _voltarena.VecEnv(task, int(num_envs), mode=mode, backend=backend, split=split,
                                      safety=safety, dead_zone=dead_zone, threads=threads)
        self.num_envs = int(num_envs)
        self.n_agents = self._env.n_agents
        self.agents = _agent_names(self.n_agents)
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (self.n_agents, self._env.obs_dim), np.float32)
        self.single_action_space = spaces.Box(-1.0, 1.0, (self.n_agents,), np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.num_envs, self.n_agents, self._env.obs_dim), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (self.num_envs, self.n_agents), np.float32)
        self.single_state_space = spaces.Box(-np.inf, np.inf, (self._env.state_dim,), np.float32)
        self.threads = self._env.threads
        self._seed = seed
        self._rng = None
        self._state = None

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        """Resets every environment: environment i with seed ``seed + i``. Without a seed, the
        base seed is drawn from a stream seeded by the last seed given (here or to the
        constructor)."""
        if seed is None and self._seed is not None:
            seed, self._seed = self._seed, None
        if seed is None:
            if self._rng is None:
                self._rng = _seed_stream(None)
            seed = _episode_seed(self._rng)
        else:
            self._rng = _seed_stream(seed)
        obs, state = self._env.reset(int(seed))
        self._state = state
        return obs, {"state": state}

    def step(self, actions):
        a = np.asarray(actions, dtype=np.float64)
        if a.shape == (self.num_envs, self.n_agents, 1):
            a = a[..., 0]
        if a.shape != (self.num_envs, self.n_agents):
            raise ValueError(f"actions: expected shape ({self.num_envs}, {self.n_agents}), got {a.shape}")
        obs, state, reward, terminated, truncated, info = self._env.step(np.ascontiguousarray(a))
        self._state = state
        info["state"] = state
        return obs, reward, terminated, truncated, info

    def state(self) -> np.ndarray:
        if self._state is None:
            raise RuntimeError("call reset() first")
        return self._state

    def close(self, **kwargs):
        pass


Policy = Union[str, Callable[[Dict[str, np.ndarray]], Dict[str, Any]]]


def evaluate(policy: Policy, task: str = "mapdn33", split: str = "test", episodes: int = 10, seed: int = 0,
             steps: Optional[int] = None, backend: Optional[str] = None, safety: Optional[str] = None,
             dead_zone: float = 0.0, mode: Optional[str] = None, full: bool = False) -> dict:
    """The evaluation protocol of ``voltarena rollout``.

    ``policy``: ``"none"``, ``"random"``, ``"droop"``, an OFO controller (``"centralized"``,
    ``"nested"``, ``"two_metric"``, ``"qu2020"``, ``"tang2024"``) with the registry's default
    settings, or a callable ``obs_dict -> actions_dict`` (observations as in
    :func:`parallel_env`; an action per agent, a number or a one-element array). Episodes are run
    back to back, episode e from seed ``seed + e``, for ``steps`` steps (default: ``episodes`` ×
    the task's episode length). Returns the ``metrics`` object of
    ``voltarena rollout --task T --controller C --split S --steps N --seed K --json`` — ``cr``,
    ``ql``, ``avv_max``, ``violation_rate``, ``loss_kwh``, ``divergences``, ... — equal to it
    number for number; ``full=True`` returns the whole record (steps, episodes, deployment,
    communication, ...).
    """
    if not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise ValueError(f"episodes: expected a positive integer, got {episodes!r}")
    if steps is None:
        steps = int(episodes) * _episode_steps(task, mode)
    kw = dict(split=split, steps=int(steps), seed=int(seed), backend=backend, safety=safety, dead_zone=dead_zone, mode=mode)
    if isinstance(policy, str):
        out = _voltarena.rollout(task, controller=policy, **kw)
    elif callable(policy):
        out = _voltarena.rollout(task, policy=policy, **kw)
    else:
        raise ValueError(f"policy: expected a controller name or a callable, got {type(policy).__name__}")
    out = json.loads(out)
    return out if full else out["metrics"]


@functools.lru_cache(maxsize=None)
def _episode_steps(task: str, mode: Optional[str]) -> int:
    return _voltarena.Env(task, mode=mode).episode_steps


EXTERNAL_FORMAT = "voltarena-external-entry/1"


def leaderboard_entry(policy: Union[Policy, Dict[int, Policy]], name: str, task: str = "mapdn33",
                      seeds=(1, 2, 3, 4, 5), eval_episodes: int = 10, path: Optional[str] = None,
                      communication: Optional[dict] = None, provenance: Optional[dict] = None,
                      safety: Optional[str] = None, dead_zone: float = 0.0) -> dict:
    """Scores ``policy`` with the leaderboard's protocol and returns (and, with ``path``, writes
    atomically) an external entry that ``voltarena leaderboard`` takes as
    ``kind = "external", results = "<path>"`` — your algorithm next to ours on identical episodes.

    For each suite seed s the policy runs on ``eval_episodes`` test days seeded 100·s + i without
    data noise, exactly as the leaderboard evaluates its own controllers. ``policy``: a callable
    ``obs_dict -> actions_dict`` (or a controller name) used for every seed, or a dict
    ``{seed: policy}`` — one policy per training seed, as the leaderboard trains its RL entries.
    ``communication``: what the policy needs per step, e.g. ``{"reach": "zone",
    "messages_per_step": 41}`` (none / zone / neighbours / central). ``provenance``: anything that
    identifies the policy (code, commit, checkpoint hashes); the package adds its own versions.
    """
    import platform
    import sys
    import time as _time

    if not isinstance(eval_episodes, (int, np.integer)) or eval_episodes < 1:
        raise ValueError(f"eval_episodes: expected a positive integer, got {eval_episodes!r}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    per_seed, compute, deployment = [], [], None
    for s in seeds:
        p = policy[s] if isinstance(policy, dict) else policy
        kw = dict(controller=p) if isinstance(p, str) else dict(policy=p)
        r = json.loads(_voltarena.evaluate_protocol(task, s, int(eval_episodes), safety=safety, dead_zone=dead_zone, **kw))
        per_seed.append({"seed": s, "metrics": r["metrics"]})
        compute.append(r["compute_us_per_step"])
        deployment = r["deployment"]
    entry = {
        "format": EXTERNAL_FORMAT, "name": name, "task": task, "eval_episodes": int(eval_episodes),
        "protocol": "test days seeded 100*seed+i, no data noise", "per_seed": per_seed,
        "deployment": deployment, "compute_us_per_step": float(np.median(compute)),
        "provenance": {"voltarena": __version__, "python": sys.version.split()[0], "numpy": np.__version__,
                       "platform": platform.platform(), "machine": platform.machine(),
                       "created": _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime()), **(provenance or {})},
    }
    if communication is not None:
        entry["communication"] = communication
    if path is not None:
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as fh:
            json.dump(entry, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    return entry
