"""Tests of the Python package against PettingZoo's own API checks, the CLI, and the native env."""

import json
import math
import os
import pathlib
import subprocess

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

import voltarena
from voltarena import _voltarena

ROOT = pathlib.Path(__file__).resolve().parents[2]


def cli() -> str:
    """The `voltarena` binary the README's test command builds (cargo test --release)."""
    path = os.environ.get("VOLTARENA_BIN", str(ROOT / "target" / "release" / "voltarena"))
    if not os.path.exists(path):
        pytest.fail(f"the voltarena CLI is not built at {path}: run `cargo build --release -p voltarena-experiments` or set VOLTARENA_BIN")
    return path


def cli_rollout(*args) -> dict:
    out = subprocess.run([cli(), "rollout", *args, "--json"], check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout)


def test_package_carries_its_data():
    if "VOLTARENA_DATA" in os.environ:
        pytest.skip("VOLTARENA_DATA is set")
    d = pathlib.Path(str(_voltarena.data_dir()))
    assert d.parent == pathlib.Path(voltarena.__file__).parent, d
    assert (d / "networks" / "mapdn_case33.json").is_file()
    assert set(voltarena.tasks()) >= {"mapdn33", "mapdn141", "mapdn322", "rural2_96", "rural2_96_midday"}


def test_parallel_api_test_passes():
    parallel_api_test(voltarena.parallel_env("mapdn33"), num_cycles=1000)


def test_parallel_api_test_passes_in_compat_mode_behind_the_projection_filter():
    env = voltarena.parallel_env("mapdn33", mode="compat", safety="projection", backend="lindistflow")
    assert env.config["mode"] == "compat" and env.config["backend"] == "lindistflow"
    assert env.config["deployment"]["safety"]["kind"] == "projection"
    parallel_api_test(env, num_cycles=300)


def test_parallel_seed_test_passes():
    parallel_seed_test(lambda: voltarena.parallel_env("mapdn33"), num_cycles=300)


def test_spaces_and_state():
    env = voltarena.parallel_env("mapdn141", split="test")
    obs, infos = env.reset(seed=3)
    assert env.agents == env.possible_agents and len(env.agents) == 22
    for a in env.agents:
        assert env.observation_space(a).contains(obs[a]), a
        assert env.action_space(a).shape == (1,)
    assert env.state().shape == env.state_space.shape and env.state().dtype == np.float32
    obs, rew, term, trunc, info = env.step({a: np.zeros(1) for a in env.agents})
    assert len(set(rew.values())) == 1, "one team reward"
    for k in ("cr", "ql_mvar", "v_max_pu", "v_min_pu", "loss_mw", "diverged"):
        assert k in info["agent_0"], k
    assert info["agent_0"]["ql_mvar"] == 0.0


def test_episode_ends_by_truncation_and_all_agents_leave():
    env = voltarena.parallel_env("mapdn33", split="val")
    env.reset(seed=1)
    steps = 0
    while env.agents:
        _, _, term, trunc, _ = env.step({a: 0.0 for a in env.agents})
        steps += 1
    assert steps == env.episode_steps and all(trunc.values()) and not any(term.values())
    m = env.episode_metrics()
    assert m["steps"] == steps and 0.0 <= m["cr"] <= 1.0
    with pytest.raises(RuntimeError, match="reset"):
        env.step({a: 0.0 for a in env.possible_agents})


@pytest.mark.parametrize("policy", ["droop", "none", "nested"])
def test_evaluate_equals_the_cli(policy):
    ours = voltarena.evaluate(policy, task="mapdn33", split="test", episodes=10 if policy == "droop" else 2, seed=0)
    steps = str(2400 if policy == "droop" else 480)
    theirs = cli_rollout("--task", "mapdn33", "--controller", policy, "--split", "test", "--steps", steps, "--seed", "0")["metrics"]
    assert ours == theirs


def test_evaluate_equals_the_cli_on_rural2_midday_with_a_safety_layer():
    ours = voltarena.evaluate("none", task="rural2_96_midday", split="test", episodes=1, seed=1, safety="projection")
    theirs = cli_rollout("--task", "rural2_96_midday", "--controller", "none", "--split", "test", "--seed", "1", "--safety", "projection")["metrics"]
    assert ours == theirs
    assert ours["safety_intervention_rate"] > 0


def test_a_python_policy_is_evaluated_on_the_same_episodes():
    zero = voltarena.evaluate(lambda obs: {a: 0.0 for a in obs}, task="mapdn33", episodes=2, seed=5)
    assert zero == voltarena.evaluate("none", task="mapdn33", episodes=2, seed=5)
    full = voltarena.evaluate(lambda obs: {a: np.ones(1, np.float32) for a in obs}, task="mapdn33", episodes=2, seed=5, full=True)
    assert full["steps"] == 480 and full["episodes"] == 2 and full["controller"] == "python"
    assert full["metrics"]["ql"] > 0


def test_bad_input_raises():
    with pytest.raises(ValueError, match="unknown task"):
        voltarena.parallel_env("mapdn34")
    with pytest.raises(ValueError, match="split"):
        voltarena.parallel_env("mapdn33", split="summer")
    with pytest.raises(ValueError, match="safety"):
        voltarena.parallel_env("mapdn33", safety="magic")
    with pytest.raises(ValueError, match="mode"):
        voltarena.parallel_env("mapdn33", mode="fast")
    with pytest.raises(ValueError, match="unknown controller"):
        voltarena.evaluate("pid", task="mapdn33", episodes=1)
    env = voltarena.parallel_env("mapdn33")
    env.reset(seed=0)
    ok = {a: 0.0 for a in env.agents}
    with pytest.raises(ValueError, match="not a finite number"):
        env.step({**ok, "agent_2": np.array([np.nan])})
    with pytest.raises(ValueError, match="not a finite number"):
        env.step({**ok, "agent_0": math.inf})
    with pytest.raises(ValueError, match="shape"):
        env.step({**ok, "agent_1": np.zeros(2)})
    with pytest.raises(ValueError, match="missing"):
        env.step({a: 0.0 for a in env.agents[1:]})
    with pytest.raises(ValueError, match="unknown"):
        env.step({**ok, "agent_99": 0.0})
    with pytest.raises(ValueError, match="dict"):
        env.step(np.zeros(6))
    env.step(ok)  # the refused steps changed nothing
    assert env._env.t == 1
    with pytest.raises(ValueError, match="not a finite number"):
        voltarena.evaluate(lambda obs: {a: float("nan") for a in obs}, task="mapdn33", episodes=1)
    with pytest.raises(ValueError, match="no action"):
        voltarena.evaluate(lambda obs: {"x": 0.0, **{a: 0.0 for a in list(obs)[1:]}}, task="mapdn33", episodes=1)

    def broken(obs):
        raise KeyError("the lab's own bug")

    with pytest.raises(KeyError, match="the lab's own bug"):
        voltarena.evaluate(broken, task="mapdn33", episodes=1)
    v = voltarena.VectorEnv("mapdn33", num_envs=4, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        v.step(np.zeros((4, 6)))
    v.reset()
    with pytest.raises(ValueError, match="shape"):
        v.step(np.zeros((4, 5)))
    bad = np.zeros((4, 6))
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"actions\[3, 2\]"):
        v.step(bad)
    with pytest.raises(ValueError, match="num_envs"):
        voltarena.VectorEnv("mapdn33", num_envs=0)


def test_vector_env_equals_single_envs_across_an_auto_reset():
    n, seed = 3, 11
    v = voltarena.VectorEnv("mapdn33", num_envs=n, threads=2)
    obs, info = v.reset(seed=seed)
    singles = [_voltarena.Env("mapdn33") for _ in range(n)]
    episode = [0] * n
    for i, e in enumerate(singles):
        o, s = e.reset(seed + i)
        np.testing.assert_array_equal(obs[i], o)
        np.testing.assert_array_equal(info["state"][i], s)
    rng = np.random.default_rng(0)
    ended = 0
    for t in range(singles[0].episode_steps + 5):
        a = rng.uniform(-1, 1, (n, v.n_agents))
        obs, rew, term, trunc, info = v.step(a)
        for i, e in enumerate(singles):
            o, s, r, te, tr, _ = e.step(a[i])
            assert (rew[i], term[i], trunc[i]) == (r, te, tr)
            if te or tr:
                ended += 1
                assert info["_final"][i]
                np.testing.assert_array_equal(info["final_obs"][i], o)
                np.testing.assert_array_equal(info["final_state"][i], s)
                episode[i] += 1
                o, s = e.reset(seed + i + n * episode[i])
            np.testing.assert_array_equal(obs[i], o)
            np.testing.assert_array_equal(info["state"][i], s)
    assert ended == n


def test_vector_env_runs_are_reproducible():
    def run():
        v = voltarena.VectorEnv("mapdn33", num_envs=8, seed=2)
        v.reset()
        rng = np.random.default_rng(1)
        total = np.zeros(8)
        for _ in range(50):
            _, r, *_ = v.step(rng.uniform(-1, 1, (8, 6)))
            total += r
        return total

    np.testing.assert_array_equal(run(), run())


def test_an_external_entry_sits_on_the_leaderboards_own_episodes(tmp_path):
    zero = tmp_path / "zero.json"
    droop = tmp_path / "droop.json"
    voltarena.leaderboard_entry(lambda obs: {a: 0.0 for a in obs}, "zero", task="mapdn33", seeds=[1, 2], eval_episodes=2, path=str(zero),
                                communication={"reach": "none", "messages_per_step": 0}, provenance={"code": "test"})
    voltarena.leaderboard_entry({1: "droop", 2: "droop"}, "droop by name", task="mapdn33", seeds=[1, 2], eval_episodes=2, path=str(droop))
    suite = tmp_path / "suite.toml"
    suite.write_text(f"""
name = "external-test"
tasks = ["mapdn33"]
seeds = [1, 2]
eval_episodes = 2
[[controllers]]
name = "none"
kind = "none"
[[controllers]]
name = "droop"
kind = "droop"
[[controllers]]
name = "zero policy (Python)"
kind = "external"
results = "{zero}"
[[controllers]]
name = "droop (Python)"
kind = "external"
results = "{droop}"
""")
    out = tmp_path / "lb"
    subprocess.run([cli(), "leaderboard", str(suite), "--out", str(out), "--jobs", "1"], check=True, capture_output=True, cwd=ROOT)
    entries = {e["controller"]: e for e in json.loads((out / "leaderboard.json").read_text())["entries"]}
    assert all(e["status"] == "ok" for e in entries.values()), entries
    assert entries["zero policy (Python)"]["per_seed"] == entries["none"]["per_seed"]
    assert entries["droop (Python)"]["per_seed"] == entries["droop"]["per_seed"]
    assert entries["zero policy (Python)"]["communication"] == {"reach": "none", "messages_per_step": 0}
    assert "zero policy (Python)" in (out / "leaderboard.md").read_text()
    subprocess.run([cli(), "leaderboard", "--verify", str(out), "--jobs", "1"], check=True, capture_output=True, cwd=ROOT)
    # A file for another task, or without a suite seed, is refused naming the file.
    bad = json.loads(zero.read_text())
    bad["per_seed"] = bad["per_seed"][:1]
    zero.write_text(json.dumps(bad))
    r = subprocess.run([cli(), "leaderboard", str(suite), "--out", str(tmp_path / "lb2"), "--jobs", "1"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and "no result for suite seed 2" in r.stderr and str(zero) in r.stderr, r.stderr
